/**
 * What the S3 front's write operations share: the upstream they write to (the bucket's primary,
 * never a read replica), the call context (the client's abort cuts the upstream request), sending
 * a verified upload body (server.request_timeout waits while it streams; a body that fails
 * becomes S3's error for it), reading a small XML request body, and invalidating the cache.
 */
import { ProxyError } from "../../errors.ts";
import { readCapped } from "../../http/read-capped.ts";
import type { RequestContext } from "../../proxy/context.ts";
import type { OperationContext } from "../../s3/operations/index.ts";
import { RequestBodyError, type BucketUpstream } from "../../s3/upstream.ts";
import { s3Error, type S3Error } from "./errors.ts";
import { s3ErrorOf, s3Fail } from "./fail.ts";
import type { S3RequestContext } from "./front.ts";
import { bodyFailure, isUnkeptChecksumName, prepareUploadBody, unkeptChecksum, type PreparedBody } from "./upload-body.ts";
import { parseXml, XmlError, type XmlElement } from "./xml-reader.ts";
import { tagProblem } from "./tagging.ts";
import { parseRawQuery } from "./uri.ts";

/** Canned ACLs that change nothing on a bucket whose objects all belong to its owner. */
export const OWNER_ONLY_ACLS: ReadonlySet<string> = new Set(["private", "bucket-owner-full-control"]);
/** Every grant header S3 takes (PutObject, CopyObject, CreateMultipartUpload, PutObjectAcl, PutBucketAcl). */
export const GRANT_HEADERS = ["x-amz-grant-full-control", "x-amz-grant-read", "x-amz-grant-read-acp", "x-amz-grant-write", "x-amz-grant-write-acp"] as const;

/** Whether a request's ACL headers grant anyone but the owner (a canned ACL other than OWNER_ONLY_ACLS, any x-amz-grant-*). */
export function grantsOthers(h: Headers): boolean {
  const acl = h.get("x-amz-acl");
  return (acl !== null && !OWNER_ONLY_ACLS.has(acl.trim().toLowerCase())) || GRANT_HEADERS.some((n) => h.has(n));
}

export const aclsNotSupported = (): S3Error => s3Error("AccessControlListNotSupported", "The bucket does not allow ACLs");

/**
 * PutObject, CopyObject, CreateMultipartUpload: ACLs, Object Lock and customer or KMS keys are
 * refused (unkeptSetting, below), and so is an append (x-amz-write-offset-bytes). ACLs are not implemented, so an ACL that would
 * grant anything (a canned ACL other than private / bucket-owner-full-control, any x-amz-grant-*)
 * is refused as S3 refuses it on a bucket with ACLs disabled (its default since 2023), instead of
 * being silently dropped. rclone's and others' default `x-amz-acl: private` passes.
 */
export function refuseAcls(ctx: RequestContext): void {
  const h = requestHeaders(ctx);
  // Every x-amz-* header present was signed (verification refuses others): the signed names say
  // whether there is anything to look at, without a header lookup on every upload (a presigned
  // URL's hoisted headers are in the query, not among the signed names: looked at).
  const signed = (ctx as S3RequestContext).s3?.payload?.signedHeaders;
  if (signed !== undefined && h === ctx.req.headers && !signed.some(mayRefuse) && !h.has(UNKEPT_WRITE_CONDITION)) return;
  const refused = unkeptSettingOf(h) ?? objectSettingsProblem(h, ctx.operation === "CopyObject");
  if (refused !== undefined) throw s3Fail(refused);
}

/** S3's limit on an object's user metadata: the UTF-8 bytes of every name (after x-amz-meta-) and value. */
export const MAX_USER_METADATA_BYTES = 2048;

/**
 * The user metadata and the x-amz-tagging header of a write, checked as S3 checks them (at most
 * 2 KiB of metadata: MetadataTooLarge; tags: at most 10, keys of 1-128 and values of at most 256
 * characters, no key twice: InvalidTag). An upstream that does not check (MinIO with its larger
 * limits, s3rver) would otherwise store what S3 refuses. A copy that keeps the source's metadata
 * or tags (directive COPY, the default) ignores those headers, as S3 does.
 */
export function objectSettingsProblem(h: Headers, copy: boolean): S3Error | undefined {
  const replaceMeta = !copy || (h.get("x-amz-metadata-directive") ?? "").trim() === "REPLACE";
  if (replaceMeta) {
    let bytes = 0;
    // (a header value is bytes, one Latin-1 character each as the listener gives them: its length
    // is its byte count; Buffer.byteLength would count every byte above 0x7F twice)
    for (const [name, value] of h) {
      if (name.startsWith("x-amz-meta-")) bytes += name.length - 11 + value.length;
      // A checksum the proxy neither checks nor carries (x-amz-checksum-sha512, -xxhash64, …): the
      // plain front dropped it and stored the body unchecked, a wrong value answered 200 where S3
      // answers BadDigest (the S3 front refuses it in upload-body.ts too).
      else if (!copy && isUnkeptChecksumName(name)) return unkeptChecksum(name);
    }
    if (bytes > MAX_USER_METADATA_BYTES) return s3Error("MetadataTooLarge", undefined, { MaxSizeAllowed: String(MAX_USER_METADATA_BYTES) });
  }
  const tagging = h.get("x-amz-tagging");
  if (tagging !== null && (!copy || (h.get("x-amz-tagging-directive") ?? "").trim() === "REPLACE")) {
    // (URL query parameters: read as the S3 front reads a query)
    const tags = parseRawQuery(tagging);
    // A header that is no such query S3 refuses as a whole, InvalidArgument (its message says so),
    // before it checks any tag: a key given twice (`a=1&a=2`: it was InvalidTag), an empty key
    // (`=v`), or a pair with a second `=` (`TagSet=[{Key=k,Value=v}]`).
    if (tags === undefined || !isTaggingQuery(tagging, tags)) return s3Error("InvalidArgument", "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.", { ArgumentName: "x-amz-tagging" });
    return tagProblem(tags);
  }
  return undefined;
}

/** Whether an x-amz-tagging header (`raw`, read as `tags`) is URL query parameters of distinct, non-empty names, each pair with one `=` at most. */
function isTaggingQuery(raw: string, tags: ReadonlyArray<readonly [string, string]>): boolean {
  for (const pair of raw.split("&")) if (pair.indexOf("=") !== pair.lastIndexOf("=")) return false;
  const names = new Set<string>();
  for (const [name] of tags) {
    if (name === "" || names.has(name)) return false;
    names.add(name);
  }
  return true;
}

/** A signed header name refuseAcls has to look at. */
const mayRefuse = (n: string) => n === "x-amz-acl" || n === STORAGE_CLASS || n.startsWith("x-amz-meta-") || n === "x-amz-tagging" || n.startsWith("x-amz-grant-") || n.startsWith("x-amz-object-lock-") || n.startsWith("x-amz-server-side-encryption") || n.startsWith("x-amz-copy-source-server-side-encryption") || n === WRITE_OFFSET;

/** S3's append (x-amz-write-offset-bytes: write at this offset of the existing object). */
const WRITE_OFFSET = "x-amz-write-offset-bytes";

/**
 * The first setting of a write that the proxy would not carry to the upstream (refuseAcls,
 * unkeptSetting), as S3's error; undefined when there is none. The plain front refuses
 * the same headers on its PUT.
 */
export function unkeptSettingOf(h: Headers): S3Error | undefined {
  if (grantsOthers(h)) return aclsNotSupported();
  // An append sent as a plain PutObject would replace the object with the appended bytes.
  if (h.has(WRITE_OFFSET)) return s3Error("NotImplemented", "Appending to an object (x-amz-write-offset-bytes) is not supported through this proxy: the request would replace the object.", { Header: WRITE_OFFSET });
  return unkeptWriteCondition(h) ?? unkeptSetting(h);
}

/** A write's If-Unmodified-Since (UNKEPT_WRITE_CONDITION) as S3's error, or undefined without one. */
export function unkeptWriteCondition(h: Headers): S3Error | undefined {
  if (!h.has(UNKEPT_WRITE_CONDITION)) return undefined;
  return s3Error("NotImplemented", `A write conditional on ${UNKEPT_WRITE_CONDITION} is not supported through this proxy (only If-Match and If-None-Match are): the object would be written without the condition.`, { Header: UNKEPT_WRITE_CONDITION });
}

/**
 * An HTTP precondition S3 does not take on a write (PutObject, CopyObject and
 * CompleteMultipartUpload take If-Match and If-None-Match only), which RFC 9110 applies to any method: refused (501), as on a delete
 * (unkeptDeleteCondition), rather than dropped and the object overwritten whatever its date.
 */
const UNKEPT_WRITE_CONDITION = "if-unmodified-since";

/**
 * Settings a client makes a write with for safety or compliance, which this proxy does not carry
 * to the upstream: refused, as S3 refuses what a bucket is not set up for, rather than answered
 * 200 with the setting silently gone (an object written "under retention" that is not, "encrypted
 * with my key" that is not).
 * - Object Lock (x-amz-object-lock-mode, -retain-until-date, -legal-hold): 400 InvalidRequest, S3's
 *   answer on a bucket without Object Lock.
 * - Customer-provided keys (SSE-C, x-amz-server-side-encryption-customer-*, and a copy source's)
 *   and KMS keys (x-amz-server-side-encryption: aws:kms or aws:kms:dsse): 501 NotImplemented.
 *   `x-amz-server-side-encryption: AES256` (SSE-S3, S3's default for every object since 2023)
 *   passes: it asks for nothing the upstream does not already do. Any other value (`aes256`,
 *   `bogus`) is S3's 400 InvalidArgument.
 */
function unkeptSetting(h: Headers): S3Error | undefined {
  for (const name of OBJECT_LOCK_HEADERS) {
    if (h.has(name)) return s3Error("InvalidRequest", `Object Lock settings (${name}) are not supported through this proxy: the object would be written without them.`);
  }
  // (dropped, not the client's to set, but a class S3 does not have is the client's error there)
  const storageClass = h.get(STORAGE_CLASS);
  if (storageClass !== null && !STORAGE_CLASSES.has(storageClass)) return s3Error("InvalidStorageClass", undefined, { StorageClassRequested: storageClass.slice(0, 64) });
  const sse = h.get("x-amz-server-side-encryption")?.trim();
  if (sse !== undefined && sse !== "AES256") {
    // (a value that is no encryption method at all is the client's error, as S3 answers it)
    if (!KMS_METHODS.has(sse)) return s3Error("InvalidArgument", "The encryption method specified is not supported", { ArgumentName: "x-amz-server-side-encryption", ArgumentValue: sse.slice(0, 64) });
    return s3Error("NotImplemented", `Server-side encryption ${JSON.stringify(sse)} is not supported through this proxy; objects are stored with the bucket's default encryption (AES256).`);
  }
  for (const name of CUSTOMER_KEY_HEADERS) if (h.has(name)) return customerKeyRefusal(name);
  return undefined;
}

const customerKeyRefusal = (name: string) => s3Error("NotImplemented", `Customer-provided or KMS encryption keys (${name}) are not supported through this proxy; objects are stored with the bucket's default encryption.`);

/**
 * An UploadPartCopy's copy-source customer key (x-amz-copy-source-server-side-encryption-customer-*),
 * as CopyObject refuses it (unkeptSetting); undefined without one. Dropped, the upstream read the
 * source without it and answered that the key was missing, though the client had sent it.
 */
export function unkeptSourceKey(h: Headers): S3Error | undefined {
  for (const name of SOURCE_KEY_HEADERS) if (h.has(name)) return customerKeyRefusal(name);
  return undefined;
}
const SOURCE_KEY_HEADERS = ["x-amz-copy-source-server-side-encryption-customer-algorithm", "x-amz-copy-source-server-side-encryption-customer-key"];
const STORAGE_CLASS = "x-amz-storage-class";
/**
 * The storage classes of S3's general-purpose buckets (the proxy's buckets are such), exactly as
 * written: S3 refuses `standard`. The rest of S3's StorageClass enumeration is other stores':
 * EXPRESS_ONEZONE directory buckets', OUTPOSTS S3 on Outposts', SNOW Snowball Edge's, FSX_OPENZFS
 * and FSX_ONTAP those of access points to FSx file systems; a general-purpose bucket answers them
 * 400 InvalidStorageClass, as here (they were accepted and dropped, the object stored as STANDARD).
 */
const STORAGE_CLASSES: ReadonlySet<string> = new Set(["STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR"]);
/** S3's encryption methods besides AES256 (SSE-S3): SSE-KMS and DSSE-KMS. */
const KMS_METHODS: ReadonlySet<string> = new Set(["aws:kms", "aws:kms:dsse"]);
const OBJECT_LOCK_HEADERS = ["x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date", "x-amz-object-lock-legal-hold"];
const CUSTOMER_KEY_HEADERS = [
  "x-amz-server-side-encryption-customer-algorithm",
  "x-amz-server-side-encryption-customer-key",
  "x-amz-server-side-encryption-aws-kms-key-id",
  "x-amz-server-side-encryption-context",
  ...SOURCE_KEY_HEADERS,
];

/**
 * DeleteObject's conditions that the proxy does not carry to the upstream, as S3's error; undefined
 * when there is none. If-Match (S3's conditional delete: an ETag or `*`) is carried. Refused, so
 * that a delete the client made conditional is never done unconditionally:
 * - x-amz-if-match-last-modified-time, x-amz-if-match-size: S3's conditions for directory buckets
 *   only (the proxy's buckets are general purpose): 501 NotImplemented, naming the header;
 * - If-None-Match, If-Unmodified-Since: HTTP preconditions S3 does not document for DeleteObject
 *   (RFC 9110 applies them to any method): 501 NotImplemented too, rather than dropped.
 * If-Modified-Since is not looked at: RFC 9110 has a recipient ignore it on a method other than GET
 * and HEAD. The plain front refuses the same on its DELETE.
 */
export function unkeptDeleteCondition(h: Headers): S3Error | undefined {
  for (const name of UNKEPT_DELETE_CONDITIONS) {
    if (h.has(name)) return s3Error("NotImplemented", `A delete conditional on ${name} is not supported through this proxy (only If-Match is): the object would be deleted without the condition.`, { Header: name });
  }
  return undefined;
}
const UNKEPT_DELETE_CONDITIONS = ["x-amz-if-match-last-modified-time", "x-amz-if-match-size", "if-none-match", "if-unmodified-since"];

/** The request's headers as S3 reads them (a presigned URL's hoisted x-amz-* headers included: see S3State.headers). */
export function requestHeaders(ctx: RequestContext): Headers {
  return (ctx as S3RequestContext).s3?.headers ?? ctx.req.headers;
}

/**
 * `read` of `res`, an upstream's 200 answer to a long-running operation (CompleteMultipartUpload,
 * CopyObject, UploadPartCopy: S3 sends its head at once, then whitespace while it works, "several
 * minutes" for a large Complete), with the request's deadline put off as for an upload body
 * (ctx.uploading): s3.timeout's stall check on the body bounds it instead (cut at
 * server.request_timeout, the client got a 503 while S3 finished the object). The check is the
 * upstream client's on both: the own client's sweep, send.ts's resultStallChecked for fetch.
 */
export async function readingResult<T>(ctx: RequestContext, res: Response, read: (res: Response) => Promise<T>): Promise<T> {
  const was = ctx.uploading;
  ctx.uploading = true;
  try {
    return await read(res);
  } finally {
    ctx.uploading = was;
  }
}

/** Awaits `p`, a read of the whole request body, with ctx.readingBody set (see RequestContext). */
export async function readingBody<T>(ctx: RequestContext, p: Promise<T>): Promise<T> {
  ctx.readingBody = true;
  try {
    return await p;
  } finally {
    ctx.readingBody = false;
  }
}

/** Writes go to the primary: a replica set's secondaries are for reads (src/s3/replicas.ts). */
export function writeUpstream(ctx: RequestContext): BucketUpstream {
  return ctx.bucket!.upstream.primary();
}

export function callOf(ctx: RequestContext): OperationContext {
  return { signal: ctx.req.signal, timing: ctx.timing };
}

/**
 * An upload's failure (its upstream write threw), as the client gets it: a body that failed
 * (RequestBodyError: the upstream request was cut, nothing stored) is the verification's S3 error;
 * anything else is returned as it is (a client that went away is left to the runner: 499). Ends
 * the upload's ctx.uploading (which put off server.request_timeout while the body streamed: the
 * client's pace bounds it, the idle timeout, the stall check) and records what arrived (bytesIn).
 */
export async function uploadFailure(ctx: RequestContext, body: PreparedBody, err: unknown): Promise<unknown> {
  try {
    return err instanceof RequestBodyError && !ctx.req.signal.aborted ? s3Fail(await bodyFailure(body)) : err;
  } finally {
    ctx.uploading = false;
    ctx.bytesIn = bodyBytesIn(body, false);
  }
}

/**
 * The access log's bytes_in for an upload body once its upstream request is over: what really
 * arrived, never merely what was declared (a cut upload must not be logged with its length).
 * - bytes read whole (a small body): their length;
 * - a body verified or decoded on its way (pipeStage): the payload it let through;
 * - a body passed on untouched (nothing to check on the way): on Bun the framed pass-through
 *   (src/http/framed-body.ts), where fetch takes the listener's body natively, with no JavaScript
 *   per chunk, so nothing here can count it (wrapping it to count would bring back the per-chunk
 *   JavaScript the pass-through exists to avoid). An upstream 2xx to a request of that exact
 *   Content-Length means the whole body came and was sent: its length is logged then, and
 *   nothing otherwise (a cut body is never logged with the length it declared).
 */
export function bodyBytesIn(body: PreparedBody, upstreamOk: boolean): number | undefined {
  const b = body.args.body;
  if (b instanceof Uint8Array) return b.byteLength;
  if (body.arrived !== undefined) return body.arrived();
  return upstreamOk ? body.length : undefined;
}


/** S3 XML request bodies (CompleteMultipartUpload, DeleteObjects) are read whole up to this size. */
export const MAX_XML_BODY = 4 * 1024 * 1024;

/**
 * Reads and parses a small XML request body (any payload mode, verified), at most MAX_XML_BODY.
 * MalformedXML for anything that is not XML (or not UTF-8), MaxMessageLengthExceeded beyond the cap.
 */
export async function readXmlBody(ctx: RequestContext, root: ClientDocument, opts: { objectChecksums?: boolean } = {}): Promise<XmlElement> {
  const payload = (ctx as S3RequestContext).s3!.payload!;
  let body: PreparedBody;
  try {
    body = prepareUploadBody(ctx.req, payload, MAX_XML_BODY, { reframe: false, budget: ctx.svc.formBuffers, objectChecksums: opts.objectChecksums });
  } catch (err) {
    const e = err instanceof ProxyError ? s3ErrorOf(err) : undefined;
    if (e?.code === "EntityTooLarge") throw s3Fail(s3Error("MaxMessageLengthExceeded"));
    throw err;
  }
  const stream = body.args.body;
  let bytes: Uint8Array;
  if (stream instanceof Uint8Array) {
    bytes = stream;
    ctx.bytesIn = bytes.byteLength;
  } else {
    try {
      bytes = await readingBody(ctx, readWhole(stream, body.length));
    } catch {
      // (the access log's bytes_in: what came before the failure, when it was counted)
      ctx.bytesIn = body.arrived?.();
      if (ctx.req.signal.aborted) throw ctx.req.signal.reason;
      throw s3Fail(await bodyFailure(body));
    }
    // (one longer than announced: what came of it)
    ctx.bytesIn = bytes.byteLength === body.length ? bytes.byteLength : (body.arrived?.() ?? bytes.byteLength);
    // A plain body without checks passes unverified: its length is still S3's to keep.
    if (bytes.byteLength !== body.length) throw s3Fail(s3Error("IncompleteBody"));
  }
  return parseClientXml(bytes, root);
}

/**
 * The elements of each client document's largest form S3 takes, counted as the XML reader counts
 * them (every start tag): the reader refuses the next one before parsing on (its 100,000 default
 * cost a 4 MiB body 60-200 ms of the event loop, where a Delete needs 6,002).
 * - Delete: <Quiet> and 1,000 <Object>s, each with Key, VersionId, ETag, LastModifiedTime, Size.
 * - CompleteMultipartUpload: 10,000 <Part>s with PartNumber, ETag and each of the 5 checksum
 *   elements a part may carry (a client may send several: counting one refused such a valid body as
 *   MalformedXML past 40,001 elements).
 * - Tagging: a bucket's 50 tags (an object takes 10: 11 to 50 still get S3's InvalidTag).
 * - AccessControlPolicy: Owner (ID, DisplayName) and S3's 100 grants, each a Grant with Permission
 *   and a Grantee with ID, DisplayName, EmailAddress and URI.
 * - CreateBucketConfiguration: LocationConstraint, Location (Type, Name), Bucket (DataRedundancy,
 *   Type) and 50 tags (Tags, each Tag with Key and Value).
 */
export const XML_ELEMENT_LIMITS = {
  Delete: 2 + 1000 * 6,
  CompleteMultipartUpload: 1 + 10_000 * (3 + 5),
  Tagging: 2 + 50 * 3,
  AccessControlPolicy: 5 + 100 * 7,
  CreateBucketConfiguration: 8 + 50 * 3,
} as const;
type ClientDocument = keyof typeof XML_ELEMENT_LIMITS;

/** A client's XML document whose root must be `root`, within its kind's limits: MalformedXML for anything else. */
export function parseClientXml(bytes: Uint8Array | string, root: ClientDocument): XmlElement {
  let doc: XmlElement;
  try {
    doc = parseXml(bytes, { maxBytes: MAX_XML_BODY, maxElements: XML_ELEMENT_LIMITS[root] });
  } catch (e) {
    if (e instanceof XmlError) throw s3Fail(malformed());
    throw e;
  }
  if (doc.name !== root) throw s3Fail(malformed());
  return doc;
}

/**
 * A body of `length` bytes (at most MAX_XML_BODY) read into one buffer, its pieces copied as they
 * come (readCapped: new Response(stream).arrayBuffer() kept every piece until the end, so a 4 MiB
 * body dripped in 16-byte TCP segments took ~50 MiB). More bytes than `length` end the read: the
 * result's length then differs from `length`, as a short body's does.
 */
export async function readWhole(stream: ReadableStream<Uint8Array>, length: number): Promise<Uint8Array> {
  return (await readCapped({ body: stream, headers: NO_HEADERS }, length)) ?? new Uint8Array(length === 0 ? 1 : 0);
}

const NO_HEADERS = new Headers();

export function malformed(): S3Error {
  return s3Error("MalformedXML");
}

/**
 * The one child named `name` of a client's document, or undefined. S3's request schemas name each
 * field at most once: a second one (two `<PartNumber>` in a part, two `<TagSet>`) is MalformedXML,
 * never the first one taken and the other dropped.
 */
export function single(node: XmlElement, name: string): XmlElement | undefined {
  let found: XmlElement | undefined;
  for (const c of node.children) {
    if (c.name !== name) continue;
    if (found !== undefined) throw s3Fail(malformed());
    found = c;
  }
  return found;
}

/** The text of the one child named `name` (see single), which holds text only: `<Key>a<b/></Key>` is MalformedXML. */
export function fieldText(node: XmlElement, name: string): string | undefined {
  const c = single(node, name);
  if (c !== undefined && c.children.length > 0) throw s3Fail(malformed());
  return c?.text;
}

/** S3's part numbers: an integer 1..10000. */
export function partNumberOf(text: string | undefined): number | S3Error {
  // Digits only: a query value " 1" or "+1" is not a part number (an XML body's is trimmed by its caller).
  const v = text ?? "";
  const n = /^\d{1,5}$/.test(v) ? Number(v) : NaN;
  if (n >= 1 && n <= 10_000) return n;
  return s3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive", { ArgumentName: "partNumber", ArgumentValue: v.slice(0, 32) });
}

/** The multipart upload a request names (?uploadId=): a missing or empty one is NoSuchUpload. */
export function uploadIdOf(ctx: RequestContext): string {
  const id = queryValue(ctx, "uploadId") ?? "";
  if (id === "") throw s3Fail(s3Error("NoSuchUpload"));
  return id;
}

/** The part an UploadPart or UploadPartCopy names: ?partNumber= (checked first), then ?uploadId=. */
export function uploadPartOf(ctx: RequestContext): { partNumber: number; uploadId: string } {
  const partNumber = partNumberOf(queryValue(ctx, "partNumber"));
  if (typeof partNumber !== "number") throw s3Fail(partNumber);
  return { partNumber, uploadId: uploadIdOf(ctx) };
}

/** The value of a query parameter (the last one, as S3 reads them), or undefined. */
export function queryValue(ctx: RequestContext, name: string): string | undefined {
  let out: string | undefined;
  for (const [k, v] of (ctx as S3RequestContext).s3!.query) if (k === name) out = v;
  return out;
}
