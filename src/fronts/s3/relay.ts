/**
 * The upstream's answer to a write, relayed to the S3 client: on success the headers a client may
 * see (ETag as the upstream gave it, checksums, version id) and S3's XML documents with the
 * upstream bucket replaced by the proxy bucket; on failure S3's error code and status, with our
 * RequestId and never the upstream's internals (its request ids, host id, bucket name,
 * canonical request).
 *
 * An upstream that refuses the proxy's own credentials (SignatureDoesNotMatch, InvalidAccessKeyId,
 * ExpiredToken...) is an operator problem, not the client's: it becomes AccessDenied, as on reads.
 */
import { connectionListed, keepHeaders } from "../../http/headers.ts";
import { isOwnedBytes } from "../../http/owned-response.ts";
import { CHECKSUM_VALUE_HEADERS } from "../../s3/operations/common.ts";
import type { RequestContext } from "../../proxy/context.ts";
import type { S3RequestContext } from "./front.ts";
import { CREDENTIAL_CODES, s3Error, S3_ERRORS, type S3Error, type S3ErrorCode } from "./errors.ts";
import type { ProxyError } from "../../errors.ts";
import { s3Fail } from "./fail.ts";
import { readErrorPrefix, redirectDetail, relayedRetryAfter, s3RequestIdOf, SLOW_DOWN_REASON } from "../../s3/errors.ts";
import { parseXml, XmlError, type XmlElement } from "./xml-reader.ts";
import { ReplicaSet, type ObjectUpstream } from "../../s3/replicas.ts";

/** Upstream XML answers the front reads (Complete, DeleteObjects, Create, Copy results): a 1,000-key DeleteResult fits. */
export const MAX_RESULT_BODY = 8 * 1024 * 1024;

/** Headers of a write's answer the client gets as the upstream sent them. */
const PASSED = new Set([
  "etag",
  "x-amz-version-id",
  "x-amz-delete-marker",
  "x-amz-copy-source-version-id",
  ...CHECKSUM_VALUE_HEADERS,
  "x-amz-checksum-type",
  "x-amz-checksum-algorithm",
  "x-amz-server-side-encryption",
  "x-amz-server-side-encryption-bucket-key-enabled",
  "x-amz-expiration",
  // CreateMultipartUpload's, when a lifecycle rule aborts incomplete uploads (SDKs: AbortDate, AbortRuleId)
  "x-amz-abort-date",
  "x-amz-abort-rule-id",
]);


const isPassed = (name: string) => PASSED.has(name);

/**
 * Whether the upstream's answer passes `name` to the client: fields its Connection header names are
 * hop-by-hop (RFC 9110 §7.6.1), for the proxy only, as on reads (src/http/headers.ts). Undefined
 * `hop` (the usual keep-alive / close) is one compare.
 */
const passes = (name: string, hop: string[] | undefined) => PASSED.has(name) && (hop === undefined || !hop.includes(name));

/** passes() with `hop`, as keepHeaders' predicate (made apart: a closure in emptyAnswer gave it a scope on every write). */
const passingWithout = (hop: string[]) => (name: string) => passes(name, hop);

/** The elements of an upstream <Error> besides Code and Message that reach the client (relay.ts errorOf). */
const RELAYED_DETAILS = new Set(["Condition", "ArgumentName", "ArgumentValue", "PartNumberRequested", "ActualPartCount", "ProposedSize", "MinSizeAllowed", "MaxSizeAllowed", "PartNumber"]);
/** A detail's value: a plain word or number (no dots: a host name is no detail). */
const DETAIL_VALUE = /^[A-Za-z0-9_-]{1,64}$/;
/**
 * An <ArgumentValue>: the client's own text for the argument its <ArgumentName> names (the proxy
 * passes the client's arguments as sent), relayed up to S3's longest key (1,024 characters) and
 * without control characters (escaped when written, errors.ts). Not held to DETAIL_VALUE, which is
 * for the other details (numbers, a condition's name; no dots, as a host name is no detail): S3's
 * version ids and keys hold `+`, `/` and `.`, and such a value was dropped (54dbd346).
 */
const ARGUMENT_VALUE = /^[^\x00-\x1f\x7f]{1,1024}$/;
/**
 * Arguments whose value is the proxy's own, not the client's (its signature, credential, session
 * token, date, payload hash, host, a SigV2 query's key and signature; the upstream's continuation
 * token, the client's being the proxy's, list-token.ts; the copy source with the upstream's
 * bucket): their <ArgumentValue> is never relayed.
 */
const OWN_ARGUMENT = /^(?:authorization|host|awsaccesskeyid|signature|continuation-token|x-amz-(?:security-token|date|content-sha256|credential|signature|signedheaders|algorithm|expires|copy-source))$/i;

export function relayedHeaders(ctx: RequestContext, res: Response | undefined): Headers {
  const h = new Headers({ "x-amz-request-id": ctx.id });
  // One pass over the upstream's few headers (cheaper than a lookup per name on every PUT).
  if (res !== undefined) {
    const hop = connectionListed(res.headers);
    res.headers.forEach((v, name) => passes(name, hop) && h.set(name, v));
  }
  return h;
}

/** An answer without a body (PUT, UploadPart, DELETE, Abort). */
export function emptyAnswer(ctx: RequestContext, res: Response, status = res.status): Response {
  if (status === res.status && isOwnedBytes(res)) {
    // The own client's bodiless answer (an owned one with a body has its Content-Length): sent as
    // it is, headers filtered in place, instead of a second Headers and Response per write.
    const h = res.headers;
    const length = h.get("content-length");
    if (length === null || length === "0") {
      const hop = connectionListed(h);
      keepHeaders(h, hop === undefined ? isPassed : passingWithout(hop));
      h.set("x-amz-request-id", ctx.id);
      return res;
    }
  }
  res.body?.cancel().catch(() => {});
  return new Response(null, { status, headers: relayedHeaders(ctx, res) });
}

/**
 * An UploadPart the upstream answered 2xx without the ETag S3 always gives: S3's 500
 * InternalError (the SDKs retry it), not a 200 without one (a multipart client had no ETag to
 * name the part by in its Complete). (A PutObject's is relayed without one: its object is stored,
 * and a WebDAV-style store, whose 201/204 is a success, gives none.)
 */
export function noEtagFailure(res: Response): never {
  res.body?.cancel().catch(() => {});
  throw s3Fail(s3Error("InternalError", "The upstream stored the data but answered without an ETag."));
}

/** An XML answer the front wrote (with the upstream's relayed headers). */
export function xmlAnswer(ctx: RequestContext, res: Response | undefined, xml: string, status = 200): Response {
  const headers = relayedHeaders(ctx, res);
  headers.set("content-type", "application/xml");
  ctx.bytes = Buffer.byteLength(xml);
  return new Response(xml, { status, headers });
}

import { readUpstreamCapped } from "../../http/read-capped.ts";
export { readUpstreamCapped };

/**
 * What an upstream's error message must not carry to a client: a URL, an ARN, an IPv4 or IPv6
 * address (bracketed or not), a hostname (any `name.tld`, not a list of known TLDs:
 * `rgw1.dc2.acme.de` went through), a single-label host with its port (`minio-3:9000`,
 * `localhost:9000`: a shared read's refusal relays its message too), an e-mail-like `user@host`, a 12-digit number (an account id),
 * an access key id or any other 16+ upper-case token. A message that has one is replaced by S3's
 * fixed text. (Any bracket and any number of 9 digits or more were refused before: S3's own
 * "valid types: [CRC32, ...]" and every size of 100 MB or more, a 5 GiB MaxSizeAllowed too, lost
 * their words.)
 */
const NAMES_INTERNALS = /:\/\/|\barn:|\b\d{1,3}(?:\.\d{1,3}){3}\b|\b[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,}|\[[0-9A-Fa-f:.%]+\]|@|\b[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z][A-Za-z0-9-]+\b|\b[A-Za-z][A-Za-z0-9-]*:\d{1,5}\b|\b\d{12}\b|\b[A-Z0-9]{16,}\b/;

/**
 * Codes whose upstream message is never relayed: S3's texts for them say nothing a client can act
 * on, and a store's say who refused and where (`Access Denied by <host> for user <name>`).
 */
const FIXED_MESSAGE_CODES: ReadonlySet<string> = new Set(["AccessDenied", "InternalError", "ServiceUnavailable", "SlowDown", "NoSuchBucket", "AccountProblem", "AllAccessDisabled"]);

/** Whether `message` names the bucket (any of them) as a word of its own (a bucket "up" is not named by "upload"). */
function namesBucket(message: string, bucket: string | readonly string[]): boolean {
  if (typeof bucket !== "string") return bucket.some((b) => namesBucket(message, b));
  if (bucket === "") return false;
  for (let i = message.indexOf(bucket); i >= 0; i = message.indexOf(bucket, i + 1)) {
    const before = i === 0 ? "" : message[i - 1]!;
    const after = message[i + bucket.length] ?? "";
    if (!BUCKET_CHAR.test(before) && !BUCKET_CHAR.test(after)) return true;
  }
  return false;
}
const BUCKET_CHAR = /^[A-Za-z0-9.-]$/;

/**
 * The S3 error an <Error> document (or its absence) stands for, given the answer's status. A 503
 * (SlowDown, ServiceUnavailable: SDKs retry them) carries Retry-After, the upstream's or 1.
 */
export function errorOf(status: number, doc: XmlElement | undefined, upstreamBucket: string | readonly string[], retryAfter?: string | null): S3Error {
  const e = errorCode(status, doc, upstreamBucket);
  if (e.status === 503) e.headers = { "retry-after": relayedRetryAfter(retryAfter) };
  return e;
}

/**
 * A DeleteResult entry's <Error> (Key, Code, Message) as the client may see it: the same rules as
 * a whole answer's error (credential codes as AccessDenied, a code S3 does not have as
 * InternalError, the message only when it names nothing of the upstream).
 */
export function entryErrorOf(entry: XmlElement, upstreamBucket: string): { code: string; message: string } {
  const e = errorCode(200, entry, upstreamBucket);
  return { code: e.code, message: e.message };
}

/** An upstream <Error>'s code (1 to 64 characters, as a read's is taken: src/s3/errors.ts parseS3ErrorCode), or undefined. */
function upstreamCodeOf(doc: XmlElement | undefined): string | undefined {
  const code = doc?.name === "Error" ? doc.children.find((c) => c.name === "Code")?.text.trim() : undefined;
  return code !== undefined && code.length > 0 && code.length <= 64 ? code : undefined;
}

function errorCode(status: number, doc: XmlElement | undefined, upstreamBucket: string | readonly string[]): S3Error {
  const code = upstreamCodeOf(doc);
  const message = doc?.name === "Error" ? doc.children.find((c) => c.name === "Message")?.text : undefined;
  if (code !== undefined && CREDENTIAL_CODES.has(code)) return s3Error("AccessDenied");
  if (code !== undefined && Object.hasOwn(S3_ERRORS, code)) {
    const known = code as S3ErrorCode;
    const e = s3Error(known);
    // S3's messages say what was wrong ("Part number must be an integer between 1 and 10000");
    // kept when they name nothing of the upstream: not its bucket, nor what looks like a host,
    // an address, a URL, an ARN or an access key (a store's message may carry its internals).
    if (message !== undefined && message.length <= 1024 && !FIXED_MESSAGE_CODES.has(known) && !namesBucket(message, upstreamBucket) && !NAMES_INTERNALS.test(message)) e.message = message;
    // (S3 never answers 429: a store's throttle is S3's 503, which the SDKs back off from)
    if (status >= 400 && status !== e.status && status !== 429) e.status = status;
    // S3's details that say what was wrong (which precondition failed, which argument, which part
    // of how many, the sizes allowed), when they are short plain words or numbers
    for (const c of doc!.children) {
      if (!RELAYED_DETAILS.has(c.name)) continue;
      const value = c.text.trim();
      const safe = c.name === "ArgumentValue" ? ARGUMENT_VALUE.test(value) : DETAIL_VALUE.test(value) && !NAMES_INTERNALS.test(value);
      if (safe && !namesBucket(value, upstreamBucket)) e.details = { ...e.details, [c.name]: value };
    }
    // (an ArgumentValue only beside the ArgumentName it is the value of, and only the client's)
    const d = e.details;
    if (d?.ArgumentValue !== undefined && (d.ArgumentName === undefined || OWN_ARGUMENT.test(d.ArgumentName))) {
      delete d.ArgumentValue;
      if (Object.keys(d).length === 0) delete e.details;
    }
    if (e.details?.ArgumentValue !== undefined) e.upstreamArgument = true;
    return e;
  }
  if (status === 404) return s3Error("NoSuchKey");
  if (status === 403) return s3Error("AccessDenied");
  if (status === 409) return s3Error("OperationAborted");
  if (status === 411) return s3Error("MissingContentLength");
  if (status === 412) return s3Error("PreconditionFailed");
  // (the upstream's head limit passed by the client's headers: S3's own word for it, see mapS3Error)
  if (status === 431) return s3Error("RequestHeaderSectionTooLarge");
  // (a HEAD's refusal has no body to name its code: 416 is a range or, with ?partNumber, a part)
  if (status === 416) return s3Error("InvalidRange");
  // (a HEAD's refusal of a delete marker's version, or of what the store does not implement: the
  // status is S3's word, and the SDKs retry a 500 where they give up on a 405 or 501)
  if (status === 405) return s3Error("MethodNotAllowed");
  if (status === 501) return s3Error("NotImplemented");
  if (status === 503) return s3Error("ServiceUnavailable");
  if (status === 429) return s3Error("SlowDown");
  if (status >= 300 && status < 400) return s3Error("InternalError", redirectDetail(status, code));
  if (status >= 500 || status < 400) return s3Error("InternalError");
  return s3Error("InvalidRequest");
}

/**
 * A shared read's upstream refusal (GetObject, HeadObject: proxy/phases/object.ts, cached bucket
 * or not) as `e`, the error fromProxyError made of it, with S3's message and details relayed from
 * the error document it carries (s3/errors.ts errorFromResponse), by the rules a write's refusal
 * follows (errorOf). Only when errorOf reads the same code from it: the code, status and headers
 * stay `e`'s. The message and details were S3's catalogue text alone ("Invalid Argument"), where a
 * versioned read or a write said what was wrong. `upstreamBuckets`: every bucket the answer may
 * have come from (a replica's too), none of which a relayed word may name.
 */
export function withUpstreamWords(e: S3Error, cause: unknown, upstreamBuckets: readonly string[]): S3Error {
  const c = cause as { s3Status?: unknown; s3Body?: unknown } | undefined;
  if (!(c?.s3Body instanceof Uint8Array) || typeof c.s3Status !== "number") return e;
  const doc = tryParse(c.s3Body);
  if (doc?.name !== "Error") return e;
  const relayed = errorCode(c.s3Status, doc, upstreamBuckets);
  if (relayed.code !== e.code) return e;
  const out: S3Error = { ...e, message: relayed.message, details: relayed.details === undefined ? e.details : { ...relayed.details, ...e.details } };
  if (relayed.upstreamArgument === true) out.upstreamArgument = true;
  return out;
}

/**
 * `e` as the client may see it: an upstream's <ArgumentValue> only when it is the client's own text
 * (in the key, a query argument's or a header's value). ARGUMENT_VALUE holds it to no rule of what
 * it may name (a key or version id holds dots, `/`, `+`), so a store's value that the client did not
 * write (its host and port, an access key id: `<ArgumentValue>rgw1.dc2.acme.de:7480</ArgumentValue>`)
 * was relayed as is.
 */
export function clientsArgument(e: S3Error, ctx: RequestContext): S3Error {
  const value = e.upstreamArgument === true ? e.details?.ArgumentValue : undefined;
  if (value === undefined || clientWrote(ctx, value)) return e;
  const { ArgumentValue: _, ...details } = e.details!;
  const out: S3Error = { ...e, details };
  delete out.upstreamArgument;
  return out;
}

function clientWrote(ctx: RequestContext, value: string): boolean {
  if (ctx.key.includes(value)) return true;
  for (const [, v] of (ctx as S3RequestContext).s3?.query ?? []) if (v.includes(value)) return true;
  for (const [, v] of ctx.req.headers) if (v.includes(value)) return true;
  return false;
}

/** The upstream buckets a bucket's reads may be answered from (each replica's). */
export function upstreamBucketsOf(upstream: ObjectUpstream): string[] {
  return upstream instanceof ReplicaSet ? upstream.replicas.map((r) => r.upstream.bucket) : [upstream.primary().bucket];
}

/** Parses an XML answer, or undefined when it is not XML. */
export function tryParse(bytes: Uint8Array | undefined): XmlElement | undefined {
  if (bytes === undefined || bytes.byteLength === 0) return undefined;
  try {
    return parseXml(bytes, { maxBytes: MAX_RESULT_BODY, maxElements: 200_000, lenient: true });
  } catch (e) {
    if (e instanceof XmlError) return undefined;
    throw e;
  }
}

/**
 * An upstream error answer's document: its first 64 KiB (readErrorPrefix, within its wait),
 * parsed when they are the whole body. An error longer than that (S3's InvalidPart echoes the
 * client's <ETag>, which may be 100 KB) is its <Code> alone, read from its start, with S3's own
 * message: it was no document at all, the error guessed from the status (400 InvalidRequest
 * "Invalid Request" for the InvalidPart).
 */
export async function readErrorDoc(res: Response): Promise<XmlElement | undefined> {
  if (res.body === null) return undefined;
  const read = await readErrorPrefix(res);
  if (read.whole) return tryParse(read.decoded ?? read.raw);
  return read.code === undefined ? undefined : { name: "Error", attrs: {}, text: "", children: [{ name: "Code", attrs: {}, children: [], text: read.code }] };
}

/** Whether `doc` is S3's error document with its code. */
function isCodedError(doc: XmlElement | undefined): boolean {
  return doc?.name === "Error" && doc.children.some((c) => c.name === "Code");
}

/**
 * A 200 whose result document is not the one asked for (`doc`: what it held, parsed): S3's
 * <Error> in a 200 (a failure after the head went out, as a Complete's or a copy's may) is that
 * error, anything else (cut short, not XML, another root) the upstream's failure. As relayError's,
 * its access line keeps the upstream's request id, and an answer with no S3 code names its status
 * (upstream_error HTTP_200): until 2026-12-07 neither, the line read as the proxy's own failure.
 */
export function resultFail(res: Response, doc: XmlElement | undefined, upstreamBucket: string | readonly string[]): ProxyError {
  return s3Fail(errorOf(res.status, doc, upstreamBucket), s3RequestIdOf(res.headers), isCodedError(doc) ? undefined : res.status, upstreamCodeOf(doc));
}

/**
 * Throws the client's version of an upstream error answer (its body read by readErrorDoc).
 * `notFound`: what a 404 that names no code is (an operation on an upload id: NoSuchUpload, as S3
 * answers it; NoSuchKey by default).
 */
export async function relayError(res: Response, upstreamBucket: string | readonly string[], notFound?: S3ErrorCode): Promise<never> {
  const doc = await readErrorDoc(res);
  const coded = isCodedError(doc);
  // (a 503 with S3's reason phrase and no readable code, as a HEAD's: S3's SlowDown)
  const slowDown = res.status === 503 && doc?.name !== "Error" && SLOW_DOWN_REASON.test(res.statusText);
  const e = slowDown
    ? s3Error("SlowDown", undefined, undefined, { "retry-after": relayedRetryAfter(res.headers.get("retry-after")) })
    : res.status === 404 && !coded && notFound !== undefined
      ? s3Error(notFound)
      : errorOf(res.status, doc, upstreamBucket, res.headers.get("retry-after"));
  throw s3Fail(e, s3RequestIdOf(res.headers), coded ? undefined : res.status, upstreamCodeOf(doc));
}
