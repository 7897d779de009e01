/**
 * PostObject: S3's browser-based upload (an HTML form or FormData POSTed to /<bucket>), with a
 * SigV4-signed POST policy (post-policy.ts) instead of a signed request.
 *
 * 1. The fields up to the one named `file` are read (at most 20 KiB, as S3), then the file streams
 *    on (form-data.ts); S3 ignores whatever follows the file, and so does this.
 * 2. Who: the form's x-amz-credential (a configured identity or an STS session with its
 *    x-amz-security-token), proven by x-amz-signature over the policy. Then the policy: not expired,
 *    every condition met, no field it does not name.
 * 3. What: the `key` field (`${filename}` replaced by the file's name), checked like any key; the
 *    identity needs `write` on a read-write bucket and the bucket's authorizer s3:PutObject on it.
 * 4. The file goes to the bucket's primary: up to 5 MiB as one PutObject of exactly its length;
 *    larger, as a multipart upload of 5 MiB parts (S3's smallest; aborted on any failure), so
 *    memory stays at two part buffers per upload (one filling while the other goes up; the first
 *    grows with a small file, so a 100 KiB upload holds 256 KiB, a large one 10 MiB) and S3
 *    still gets every length up front. A 1 GiB form upload grows the proxy's RSS by 19-21 MiB
 *    (test/e2e/s3-front-upload-memory.test.ts holds it under 64 MiB): the request's chunks are
 *    freed as they are copied (FormReader's releaseChunks); left to the garbage collector they
 *    piled up to 25-50 MiB, 65 once on a loaded CI host.
 *    content-length-range is enforced as the file streams (past the maximum reading stops:
 *    EntityTooLarge, naming the file's size as S3's does, from the form's Content-Length, and the
 *    connection is closed, the rest unread; EntityTooSmall at its end); nothing is stored then.
 * 5. The answer, as S3's: success_action_redirect → 303 to it with bucket, key and etag;
 *    success_action_status 200 or 201 (a PostResponse document), else 204; ETag and Location,
 *    and the write's headers from the upstream's answer (x-amz-version-id, encryption...).
 *
 * Checked: a Content-MD5 field and an x-amz-checksum-* field against the file (BadDigest; the
 * checksum is stored with the object when it goes up as one PutObject, and so is the one an
 * x-amz-checksum-algorithm field alone asks for, computed here); refused as PutObject refuses the
 * headers (writes.ts unkeptSettingOf): Object Lock, SSE-C and KMS key, grant and append fields.
 * Passed on to the object: Content-Type (the field; else S3's binary/octet-stream),
 * Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires, x-amz-meta-*,
 * and the tags of a `tagging` field (S3's XML Tagging document, sent as x-amz-tagging).
 */
import { quotedEtag } from "../../http/conditional.ts";
import { ProxyError } from "../../errors.ts";
import { authorize, mayAlso } from "../../proxy/phases/authorize.ts";
import type { RequestContext } from "../../proxy/context.ts";
import { abortMultipartUpload, completeMultipartUpload, createMultipartUpload, putObject, uploadPart, type CompletedPart, type OperationContext } from "../../s3/operations/index.ts";
import type { BucketUpstream } from "../../s3/upstream.ts";
import { ALGORITHM, parseAmzDate, utf8HeaderValue } from "../../s3/sigv4.ts";
import { s3RequestIdOf } from "../../s3/errors.ts";
import { checkScope, CREDENTIAL_FORM, parseCredential } from "./auth-params.ts";
import { s3Error, type S3Error } from "./errors.ts";
import { isRefusal, s3ErrorOf, s3Fail } from "./fail.ts";
import { FormDataError, formBoundary, FormReader } from "./form-data.ts";
import type { S3RequestContext } from "./front.ts";
import { adoptPrincipal, type S3Principal } from "./identities.ts";
import { accessRefusal, mayAccess } from "./permissions.ts";
import { checkPostPolicy, type PostPolicy } from "./post-policy.ts";
import { HEADER_VALUE } from "./operations.ts";
import { errorOf, MAX_RESULT_BODY, readUpstreamCapped, relayedHeaders, relayError, tryParse } from "./relay.ts";
import { objectLocation } from "./location.ts";
import { keyRefusal, MAX_KEY_BYTES } from "./route.ts";
import { signingKeyFor } from "./signing-keys.ts";
import { MAX_UPLOAD_BYTES } from "./upload-body.ts";
import { sameSignature } from "./verify.ts";
import { aclsNotSupported, callOf, MAX_USER_METADATA_BYTES, OWNER_ONLY_ACLS, unkeptSettingOf, writeUpstream, XML_ELEMENT_LIMITS } from "./writes.ts";
import { purgeWritten } from "../purge.ts";
import { LISTENER_SLOW_BODY, ownsBodyChunks } from "../../http/framed-body.ts";
import { pipeStage, SOURCE_IDLE_MS } from "../../s3/aws-chunked/pump.ts";
import { isPayloadError } from "../../s3/aws-chunked/errors.ts";
import { endToEnd } from "../../http/headers.ts";
import { el, S3_XMLNS, XML_DECL } from "./xml.ts";
import { childText, parseXml, XmlError, type XmlElement } from "./xml-reader.ts";
import { taggingHeader, tagsOf } from "./tagging.ts";
import { expectationsFromHeaders, PayloadVerifier, type PayloadExpectations } from "../../s3/checksum/verify.ts";
import { algorithmFromHeaderName, CHECKSUM_ALGORITHMS, checksumBase64, checksumHeaderName, create, type ChecksumAlgorithm } from "../../s3/checksum.ts";
import { isUnkeptChecksumName, payloadS3Error, UNKEPT_ALGORITHMS, unkeptAlgorithm, unkeptChecksum } from "./upload-body.ts";

/** S3's limit on the fields before the file. */
const MAX_FIELD_BYTES = 20 * 1024;
/** The part buffer's size to start with (it doubles up to POST_PART_BYTES). */
const FIRST_BUFFER_BYTES = 256 * 1024;
/** The file goes up in parts of this size once it is larger (S3's minimum part size). */
const POST_PART_BYTES = 5 * 1024 * 1024;
/** Headers of the object a form field may set (lower-case field names). */
const OBJECT_FIELDS = new Set(["content-type", "cache-control", "content-disposition", "content-encoding", "content-language", "expires"]);

/**
 * How long the form's client may keep a read of its body waiting, as for any upload body (the
 * pump's rules, upload-body.ts): S3's ~20 s for a client gone quiet, and the listener's slow-body
 * rule (LISTENER_SLOW_BODY), so a stalled form is answered 400 RequestTimeout before Bun.serve
 * would close its connection unanswered. In-process tests lower it.
 */
export const formBodyLimits = { idleMs: SOURCE_IDLE_MS, slow: LISTENER_SLOW_BODY };
const PASS_THROUGH = { feed: (piece: Uint8Array, out: Uint8Array[]) => void out.push(piece), end: () => {} };

const fail = (e: S3Error): never => {
  throw s3Fail(e);
};
const missing = (name: string) => s3Error("InvalidArgument", `Bucket POST must contain a field named '${name}'.  If it is specified, please check the order of the fields.`, { ArgumentName: name });

/**
 * The principal the form's credential and signature prove, against the identities live now: the
 * fields arrive after the request began, and a reload meanwhile (a key removed, a secret changed,
 * the session key rotated) must hold for a check made after it.
 */
function authenticate(ctx: RequestContext, fields: ReadonlyMap<string, string>, now: number): S3Principal {
  const api = ctx.svc.runtime.s3Api;
  if (api === undefined) return fail(s3Error("AccessDenied"));
  if (fields.has("awsaccesskeyid") || fields.has("signature")) fail(s3Error("InvalidRequest", "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."));
  const algorithm = fields.get("x-amz-algorithm");
  const credential = fields.get("x-amz-credential");
  const date = fields.get("x-amz-date");
  const signature = fields.get("x-amz-signature");
  const policy = fields.get("policy");
  // A form with none of them is anonymous: anonymous requests never write through this proxy.
  if (algorithm === undefined && credential === undefined && signature === undefined && policy === undefined) fail(s3Error("AccessDenied"));
  for (const [name, v] of [["x-amz-algorithm", algorithm], ["x-amz-credential", credential], ["x-amz-date", date], ["x-amz-signature", signature], ["policy", policy]] as const) {
    if (v === undefined) fail(missing(name));
  }
  if (algorithm !== ALGORITHM) fail(s3Error("InvalidArgument", "Unsupported x-amz-algorithm: use AWS4-HMAC-SHA256", { ArgumentName: "x-amz-algorithm", ArgumentValue: algorithm!.slice(0, 64) }));
  // The credential scope and date as a presigned URL's are checked (auth-params.ts).
  const credentialError = (detail: string, details?: Record<string, string>) => s3Error("InvalidArgument", `Invalid x-amz-credential; ${detail}`, { ArgumentName: "x-amz-credential", ...details });
  const scope = parseCredential(credential!);
  if (scope === undefined) return fail(credentialError(CREDENTIAL_FORM));
  const scopeProblem = checkScope(scope, api.region, credentialError);
  if (scopeProblem !== undefined) fail(scopeProblem);
  const { accessKeyId, date: day, region } = scope;
  if (parseAmzDate(date!) === undefined || date!.slice(0, 8) !== day) fail(s3Error("InvalidArgument", "x-amz-date must be yyyymmddThhmmssZ of the credential's day", { ArgumentName: "x-amz-date" }));
  const principal = api.lookup(accessKeyId, fields.get("x-amz-security-token"), now);
  if (principal === undefined) return fail(s3Error("InvalidAccessKeyId", undefined, { AWSAccessKeyId: accessKeyId }));
  if (!("secretAccessKey" in principal)) return fail(principal);
  const expected = signingKeyFor(api.keyCache, accessKeyId, principal.secretAccessKey, day, region).keyed.copy().update(policy!).digest("hex");
  if (!sameSignature(expected, signature!)) fail(s3Error("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.", { AWSAccessKeyId: accessKeyId }));
  return principal;
}

/** The object's key: the `key` field with ${filename} replaced, checked as a path's key is. */
function objectKey(fields: ReadonlyMap<string, string>, filename: string | undefined): string {
  const raw = fields.get("key");
  if (raw === undefined) return fail(missing("key"));
  const base = (filename ?? "").split(/[\\/]/).pop() ?? "";
  // (a function: a replacement string reads `$$`, `$&`, `` $` `` and `$'` as patterns, and a file
  // named $$cash.pdf was stored as $cash.pdf, one named x$`y under x<the key field's text before>y)
  const key = raw.replaceAll("${filename}", () => base);
  if (key === "") fail(s3Error("InvalidArgument", "User key must have a length greater than 0.", { ArgumentName: "key" }));
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) fail(s3Error("KeyTooLongError", undefined, { Size: String(Buffer.byteLength(key)), MaxSizeAllowed: String(MAX_KEY_BYTES) }));
  const refusal = keyRefusal(key);
  if (refusal !== undefined) fail(s3Error("InvalidArgument", refusal, { ArgumentName: "key" }));
  return key;
}

/**
 * The object's headers from the form (Content-Type defaults to S3's binary/octet-stream), and its
 * tags from the `tagging` field (an XML Tagging document, checked as PutObjectTagging's).
 */
function objectHeaders(fields: ReadonlyMap<string, string>): Record<string, string> {
  const out: Record<string, string> = { "content-type": "binary/octet-stream" };
  let metadataBytes = 0;
  for (const [name, value] of fields) {
    if (!OBJECT_FIELDS.has(name) && !name.startsWith("x-amz-meta-")) continue;
    // (a field is UTF-8 text; a header value is bytes, one Latin-1 character each: its UTF-8 bytes,
    // as S3 stores it. As text, "é" went upstream as one Latin-1 byte and "日" was refused.)
    const wire = utf8HeaderValue(value);
    if (!HEADER_VALUE.test(wire) || !/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) fail(s3Error("InvalidArgument", `${name} is not a valid header value`, { ArgumentName: name }));
    out[name] = wire;
    if (name.startsWith("x-amz-meta-")) metadataBytes += name.length - 11 + wire.length;
  }
  // S3's 2 KiB of user metadata, as for PutObject (writes.ts objectSettingsProblem)
  if (metadataBytes > MAX_USER_METADATA_BYTES) fail(s3Error("MetadataTooLarge", undefined, { MaxSizeAllowed: String(MAX_USER_METADATA_BYTES) }));
  const acl = fields.get("acl");
  if (acl !== undefined && !OWNER_ONLY_ACLS.has(acl.trim().toLowerCase())) fail(aclsNotSupported());
  // What PutObject refuses rather than drops (Object Lock, customer or KMS keys, an append, a
  // grant) is refused as a form field too: the object would be stored without it.
  const unkept = unkeptSettingOf(settingFields(fields));
  if (unkept !== undefined) fail(unkept);
  const tagging = fields.get("tagging");
  if (tagging !== undefined) {
    let doc: XmlElement;
    try {
      doc = parseXml(tagging, { maxElements: XML_ELEMENT_LIMITS.Tagging });
    } catch (err) {
      if (err instanceof XmlError) return fail(s3Error("MalformedXML", "The XML in the tagging field was not well-formed or did not validate against S3's schema."));
      throw err;
    }
    if (doc.name !== "Tagging") fail(s3Error("MalformedXML", "The XML in the tagging field was not well-formed or did not validate against S3's schema."));
    const tags = tagsOf(doc);
    if (tags.length > 0) out["x-amz-tagging"] = taggingHeader(tags);
  }
  // The object's headers go upstream in a PutObject (or CreateMultipartUpload), whose header
  // section S3 takes up to 8 KB: within the fields' 20 KiB, header fields such as a long
  // Content-Disposition, percent-encoded tags (up to 9 bytes a character) and the rest made a head
  // of up to ~62 KB, close to the upstream head limit (64 KiB) and refused by S3 itself.
  let headerBytes = 0;
  for (const name in out) headerBytes += name.length + out[name]!.length + 4; // (name: value CRLF)
  if (headerBytes > MAX_OBJECT_HEADER_BYTES)
    fail(s3Error("RequestHeaderSectionTooLarge", `The form fields that become the object's headers (Content-Type, Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires, x-amz-meta-*, tagging) take ${headerBytes} bytes as headers; S3 takes at most ${MAX_OBJECT_HEADER_BYTES} bytes of headers in a PUT.`));
  return out;
}

/** S3's limit on a PUT request's header section (8 KB), which the form's object headers must fit (objectHeaders). */
const MAX_OBJECT_HEADER_BYTES = 8 * 1024;

/** The form's x-amz-* setting fields (not its credentials, signature or metadata) as the headers PutObject would carry them in. */
function settingFields(fields: ReadonlyMap<string, string>): Headers {
  const out = new Headers();
  for (const [name, value] of fields) {
    if (!name.startsWith("x-amz-") || name.startsWith("x-amz-meta-") || POST_AUTH_FIELDS.has(name)) continue;
    try {
      out.set(name, utf8HeaderValue(value));
    } catch {
      out.set(name, "?"); // (present is what counts: a value no header can hold still names the setting)
    }
  }
  return out;
}
const POST_AUTH_FIELDS = new Set(["x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature", "x-amz-security-token"]);

/**
 * What the file is checked against, as S3 checks a form's file (BadDigest): its Content-MD5 and
 * x-amz-checksum-crc32 / -crc32c / -crc64nvme / -sha1 / -sha256 fields (one at most: S3's
 * InvalidRequest for two; InvalidDigest or InvalidRequest for a value that is no such digest).
 * A checksum field this proxy neither checks nor carries (-sha512, -xxhash*) is its 501. The
 * checksum fields were dropped: the file was stored unchecked, a wrong value answered 204.
 */
function expectedDigests(fields: ReadonlyMap<string, string>): PayloadExpectations {
  // (a record, not Headers: a field's value may be text no header holds, non-Latin-1 or with a
  // line break, which Headers refused with a TypeError, a 500; the checks below refuse it as S3 does)
  const h: Record<string, string> = {};
  for (const [name, value] of fields) {
    if (isUnkeptChecksumName(name)) fail(unkeptChecksum(name));
    if (name === "content-md5" || algorithmFromHeaderName(name) !== undefined) h[name] = value.trim();
  }
  try {
    return expectationsFromHeaders(h, { payloadKnown: true });
  } catch (e) {
    if (isPayloadError(e)) return fail(payloadS3Error(e));
    throw e;
  }
}

/**
 * The checksum S3 is asked to compute and store (an x-amz-checksum-algorithm field without its
 * value, as boto3's generate_presigned_post sends it): the proxy computes it over the buffered file
 * and sends it with the single PutObject (a multipart upload's file is stored without it, as a
 * checksum field's is). It was ignored: the object was stored with no checksum. Beside a checksum
 * value field it must name that field's algorithm (the value is then the one checked and stored):
 * another is S3's InvalidRequest, as for PutObject's x-amz-sdk-checksum-algorithm beside another
 * x-amz-checksum-* header; it was accepted, the algorithm ignored.
 */
function checksumToCompute(fields: ReadonlyMap<string, string>, digests: PayloadExpectations): ChecksumAlgorithm | undefined {
  const raw = fields.get("x-amz-checksum-algorithm");
  if (raw === undefined) return undefined;
  const algorithm = raw.trim().toUpperCase();
  if (UNKEPT_ALGORITHMS.has(algorithm)) fail(unkeptAlgorithm(algorithm));
  if (!(CHECKSUM_ALGORITHMS as readonly string[]).includes(algorithm) || (digests.checksum !== undefined && digests.checksum.algorithm !== algorithm)) {
    fail(s3Error("InvalidRequest", "Value for x-amz-checksum-algorithm header is invalid."));
  }
  return digests.checksum === undefined ? (algorithm as ChecksumAlgorithm) : undefined;
}

/**
 * The multipart upload a form's file goes up as once it outgrows one part: created when its
 * first part is ready, its parts sent one at a time and in order, completed, or aborted when the
 * upload fails. Open work from its Create until completed or aborted: a shutdown waits for it,
 * and says which it gave up on.
 */
class FormMultipart {
  /** The upstream's upload id: set once it made the upload, cleared once it completed (nothing left to abort). */
  uploadId: string | undefined;
  /** The part going up (its buffer is free again once it settled). */
  inFlight: Promise<void> | undefined;
  private readonly parts: CompletedPart[] = [];
  private readonly open: Record<string, string>;
  private closeWork: (() => void) | undefined;

  constructor(
    private readonly ctx: RequestContext,
    private readonly upstream: BucketUpstream,
    private readonly key: string,
    private readonly headers: Record<string, string>,
    private readonly call: OperationContext,
    /** The full-object checksum the upload is created with (FULL_OBJECT_ALGORITHMS), if any: each part carries its own, the Complete the file's. */
    private readonly checksum: ChecksumAlgorithm | undefined,
  ) {
    this.open = { bucket: upstream.bucket, key };
  }

  /**
   * The proxy's own calls on the upload it makes, its Create and its abort, are not cut by the
   * client's signal (a client gone, or cut, while the Create was on its way left the upload the
   * upstream made behind, its id never read), each bounded on its own.
   */
  private own(): OperationContext {
    return { signal: AbortSignal.timeout(OWN_CALL_MS), timing: this.call.timing };
  }

  /** Aborts the upload `id` (best effort: its parts must not linger, nor ever become an object); a failure is logged. */
  private async abandon(id: string): Promise<void> {
    const { ctx, upstream, key } = this;
    const res = await abortMultipartUpload(upstream, { key, uploadId: id }, this.own()).catch((err: unknown) => err);
    if (res instanceof Response) await res.body?.cancel().catch(() => {});
    // (204, or 404: gone already; anything else leaves its parts stored, and billed, until a lifecycle rule's AbortIncompleteMultipartUpload)
    if (!(res instanceof Response) || (!res.ok && res.status !== 404)) {
      ctx.svc.log.warn("a form upload's multipart upload could not be aborted: its parts stay in the bucket until it is aborted (aws s3api abort-multipart-upload) or a lifecycle rule removes it", {
        request_id: ctx.id,
        bucket: upstream.bucket,
        key,
        upload_id: id,
        ...(res instanceof Response ? { status: res.status } : { error: res instanceof Error ? res.name : "unknown" }),
      });
    }
  }

  private async start(): Promise<void> {
    const { ctx, upstream, key, headers, open } = this;
    const close = (this.closeWork = ctx.svc.openWork.add(open));
    // (the Create's answer is waited for up to OWN_CALL_MS, the form's client only s3.timeout:
    // cut at s3.timeout, a Create the store carried out late left its upload there, empty, its id
    // never read)
    const algorithm = this.checksum;
    const create = algorithm === undefined ? headers : { ...headers, "x-amz-checksum-algorithm": algorithm, "x-amz-checksum-type": "FULL_OBJECT" };
    const creating = createMultipartUpload(upstream, { key, headers: create }, { ...this.own(), timeoutMs: OWN_CALL_MS });
    // A client gone meanwhile, or the Create unanswered at s3.timeout, is answered now (its buffers
    // released, reserved in the shared budget): waited for, a Create the store was slow to answer
    // held them up to OWN_CALL_MS after it left (a pile of them made other uploads SlowDown); the
    // upload it makes is aborted once it is known, its open work closed only then (a shutdown
    // waits for that abort too).
    const created = await untilGone(creating, this.call.signal, upstream.timeoutMs, (late) => {
      this.closeWork = undefined;
      void creating
        .then(async (res) => {
          const id = res.status === 200 ? uploadIdOf(await readUpstreamCapped(res, MAX_RESULT_BODY).catch(() => undefined)) : undefined;
          if (res.status !== 200) await res.body?.cancel().catch(() => {});
          if (id !== undefined) {
            open.upload_id = id;
            if (late) ctx.svc.log.info("a form upload's CreateMultipartUpload was answered after s3.timeout: the upload it made is aborted", { request_id: ctx.id, bucket: upstream.bucket, key, upload_id: id });
            await this.abandon(id);
          }
        })
        .catch(() => {})
        .finally(close);
    });
    if (created.status !== 200) return relayError(created, upstream.bucket);
    const id = uploadIdOf(await readUpstreamCapped(created, MAX_RESULT_BODY));
    if (id === undefined) return fail(s3Error("InternalError", "The upstream did not start the upload."));
    this.uploadId = id;
    open.upload_id = id;
  }

  private async send(body: Uint8Array, partNumber: number): Promise<void> {
    const algorithm = this.checksum;
    const sum = algorithm === undefined ? undefined : checksumBase64(algorithm, body);
    const checksum = sum === undefined ? undefined : { name: checksumHeaderName(algorithm!), value: sum };
    const res = await uploadPart(this.upstream, { key: this.key, uploadId: this.uploadId!, partNumber, body, checksum }, this.call);
    const etag = res.headers.get("etag");
    if (!res.ok || etag === null) return relayUploadError(res, this.upstream.bucket);
    await res.body?.cancel().catch(() => {});
    this.parts[partNumber - 1] = sum === undefined ? { partNumber, etag } : { partNumber, etag, [`checksum${algorithm!}`]: sum };
  }

  /** `body` goes up as the next part (the upload made first), once the part before it settled. */
  async sendNext(body: Uint8Array): Promise<void> {
    if (this.uploadId === undefined) await this.start();
    if (this.inFlight !== undefined) await this.inFlight; // one part at a time; its buffer is free after
    this.inFlight = this.send(body, this.parts.length + 1);
    this.inFlight.catch(() => {}); // awaited at the next part or at the end
  }

  /** Completes the upload once its last part is in (`sum`: the whole file's checksum, when it was created with one); the object's ETag. */
  async complete(sum: string | undefined): Promise<Stored> {
    const { upstream } = this;
    await this.inFlight;
    const algorithm = this.checksum;
    const headers = algorithm === undefined || sum === undefined ? undefined : { [checksumHeaderName(algorithm)]: sum, "x-amz-checksum-type": "FULL_OBJECT" };
    const done = await completeMultipartUpload(upstream, { key: this.key, uploadId: this.uploadId!, parts: this.parts, headers }, this.call);
    if (done.status !== 200) return relayUploadError(done, upstream.bucket);
    const doc = tryParse(await readUpstreamCapped(done, MAX_RESULT_BODY));
    if (doc?.name !== "CompleteMultipartUploadResult") return fail(ownUploadError(errorOf(done.status, doc, upstream.bucket)));
    this.uploadId = undefined;
    // (a bare ETag some S3-compatible stores write, quoted as S3 writes it: quotedEtag)
    return { etag: quotedEtag(childText(doc, "ETag")?.trim() ?? ""), upstream: done };
  }

  /** After the upload, whatever became of it (its part in flight settled): an upload not completed is aborted, its open work closed. */
  async close(): Promise<void> {
    // (not with the client's signal: it may be why the upload failed)
    if (this.uploadId !== undefined) await this.abandon(this.uploadId);
    this.closeWork?.();
  }
}

/**
 * Streams the file part upstream within the policy's size range; its ETag. Nothing is stored on
 * failure. Memory: two part buffers per upload, filled in turn, so the client keeps sending into
 * one while the other goes up (one part in flight at a time, parts in order: FormMultipart).
 */
async function uploadFile(ctx: RequestContext, form: FormReader, key: string, headers: Record<string, string>, policy: PostPolicy, digests: PayloadExpectations, compute: ChecksumAlgorithm | undefined): Promise<Stored> {
  // (the file's MD5 and checksum, when the form gave them to check: compared before the object is
  // stored, by the single PutObject or the Complete; a multipart upload refused then is aborted: FormMultipart.close)
  const verifier = digests.contentMd5 === undefined && digests.checksum === undefined ? undefined : new PayloadVerifier(digests);
  // (the checksum x-amz-checksum-algorithm alone asks for, computed as the file comes)
  const computing = compute === undefined ? undefined : create(compute);
  const algorithm = digests.checksum?.algorithm ?? compute;
  const upstream = writeUpstream(ctx);
  const call = callOf(ctx);
  const max = Math.min(policy.maxLength, MAX_UPLOAD_BYTES);
  // The first buffer grows with the file (most browser uploads are far below a part); once a part
  // has gone up, both are full-size. Every byte of them is reserved in the process's budget.
  const budget = ctx.svc.formBuffers;
  let reserved = 0;
  const allocate = (size: number, replacing = 0): Uint8Array => {
    if (!budget.tryReserve(size - replacing)) {
      const e = s3Error("SlowDown", "Too many browser form uploads are in progress: retry shortly.");
      e.headers = { "retry-after": "1" };
      throw s3Fail(e);
    }
    reserved += size - replacing;
    return new Uint8Array(size);
  };
  const buffers = [allocate(FIRST_BUFFER_BYTES)];
  let current = 0;
  let filled = 0;
  let total = 0;
  const multipart = new FormMultipart(ctx, upstream, key, headers, call, algorithm !== undefined && FULL_OBJECT_ALGORITHMS.has(algorithm) ? algorithm : undefined);
  /** The full current buffer goes up as the next part; filling goes on in the other one. */
  const flush = async () => {
    await multipart.sendNext(buffers[current]!.subarray(0, filled));
    if (buffers.length === 1) buffers.push(allocate(POST_PART_BYTES));
    current = 1 - current;
    filled = 0;
  };
  ctx.uploading = true;
  try {
    for await (const chunk of form.body()) {
      total += chunk.byteLength;
      if (total > max) {
        // Reading stops here, and the answer closes the connection (the rest is never read: it
        // was, up to 5 GiB, before the answer). S3 names the file's size (ProposedSize), which is
        // not known while its end is unread: the form's Content-Length less the usual closing
        // delimiter was 2 bytes short without the final CRLF and counted fields after the file
        // (which S3 ignores) as file, and the bytes read so far are not its size either. Left
        // out, as S3 leaves it out where it cannot know it.
        const e = s3Error("EntityTooLarge", undefined, { MaxSizeAllowed: String(max) });
        e.headers = { connection: "close" };
        fail(e);
      }
      verifier?.update(chunk);
      computing?.update(chunk);
      let at = 0;
      while (at < chunk.byteLength) {
        // a full buffer goes up only when more follows: a file of exactly 5 MiB is one PutObject
        if (filled === POST_PART_BYTES) await flush();
        const n = Math.min(chunk.byteLength - at, POST_PART_BYTES - filled);
        if (filled + n > buffers[current]!.byteLength) {
          const grown = allocate(Math.min(POST_PART_BYTES, Math.max(2 * buffers[current]!.byteLength, filled + n)), buffers[current]!.byteLength);
          grown.set(buffers[current]!.subarray(0, filled));
          buffers[current] = grown;
        }
        buffers[current]!.set(chunk.subarray(at, at + n), filled);
        filled += n;
        at += n;
      }
    }
    if (total < policy.minLength) fail(s3Error("EntityTooSmall", undefined, { ProposedSize: String(total), MinSizeAllowed: String(policy.minLength) }));
    try {
      verifier?.finish();
    } catch (e) {
      if (isPayloadError(e)) fail(payloadS3Error(e));
      throw e;
    }
    // (a checksum field goes with the single PutObject, so the object keeps it, as on S3, and so
    // does a CRC one with the multipart upload of a larger file, as its full-object checksum; a
    // SHA one there is checked here, not stored: S3 has only composite SHA checksums for
    // multipart uploads. One asked for by x-amz-checksum-algorithm alone is computed here:
    // checksumToCompute)
    const sum = digests.checksum?.value ?? computing?.digestBase64();
    if (multipart.uploadId === undefined) {
      const body = buffers[current]!.subarray(0, filled);
      const put = sum === undefined ? headers : { ...headers, [checksumHeaderName(algorithm!)]: sum };
      const res = await putObject(upstream, { key, headers: put, body }, call);
      // (not one the upstream's Connection header names: hop-by-hop, the proxy's alone, as relay.ts drops it)
      const etag = endToEnd(res.headers, "etag");
      if (!res.ok) return relayError(res, upstream.bucket);
      await res.body?.cancel().catch(() => {});
      return { etag: etag ?? "", upstream: res };
    }
    if (filled > 0) await flush();
    return await multipart.complete(sum);
  } finally {
    ctx.uploading = false;
    // The access log's bytes_in: the file's bytes that came (the form's other fields not counted).
    ctx.bytesIn = total;
    // The part in flight settles first: its buffer is the upload's until then (released before, a
    // failing upload held up to a part outside the budget), and an abort during it could leave
    // that part behind.
    await multipart.inFlight?.catch(() => {});
    budget.release(reserved);
    await multipart.close();
  }
}

/** The UploadId of a CreateMultipartUpload result; undefined when there is none. */
function uploadIdOf(body: Uint8Array | undefined): string | undefined {
  const doc = body === undefined ? undefined : tryParse(body);
  const id = doc === undefined ? undefined : childText(doc, "UploadId");
  return id === "" ? undefined : id;
}

/**
 * `p`, or `signal`'s reason as soon as it aborts (the client gone), or the upstream's timeout
 * (GatewayTimeout, as s3.timeout answers) once `timeoutMs` passed: `p` then goes on, and
 * `onGone` (called then, `late` for the timeout) takes care of what it answers.
 */
function untilGone<T>(p: Promise<T>, signal: AbortSignal | undefined, timeoutMs: number, onGone: (late: boolean) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settle = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", gone);
    };
    const give = (err: unknown, late: boolean) => {
      settle();
      reject(err);
      onGone(late);
    };
    const gone = () => give(signal!.reason, false);
    if (signal?.aborted === true) return gone();
    signal?.addEventListener("abort", gone, { once: true });
    timer = setTimeout(() => give(new ProxyError("GatewayTimeout", { detail: "The upstream did not answer the upload's creation in time" }), true), timeoutMs);
    p.then(
      (v) => (settle(), resolve(v)),
      (err: unknown) => (settle(), reject(err)),
    );
  });
}

/** The algorithms S3 keeps as a multipart upload's full-object checksum (x-amz-checksum-type FULL_OBJECT); SHA-1 and SHA-256 have only composite ones. */
const FULL_OBJECT_ALGORITHMS: ReadonlySet<ChecksumAlgorithm> = new Set(["CRC32", "CRC32C", "CRC64NVME"]);

/** The bound of the proxy's own Create and abort of a form upload's multipart upload. */
const OWN_CALL_MS = 30_000;

/**
 * The codes of a refusal of the multipart upload the proxy made for a large form file (its parts,
 * its Complete): another client aborted it (NoSuchUpload), or its parts were lost. The form's
 * client made no upload and can do nothing about one: it is S3's answer to a POST whose store
 * failed inside it, 500 InternalError (which clients retry). NoSuchUpload was shown to the form.
 */
const OWN_UPLOAD_CODES: ReadonlySet<string> = new Set(["NoSuchUpload", "InvalidPart", "InvalidPartOrder"]);

function ownUploadError(e: S3Error): S3Error {
  return OWN_UPLOAD_CODES.has(e.code) ? s3Error("InternalError") : e;
}

/** relayError for a call on the proxy's own upload (a codeless 404 is its NoSuchUpload), as ownUploadError answers it. */
function relayUploadError(res: Response, upstreamBucket: string): Promise<never> {
  return relayError(res, upstreamBucket, "NoSuchUpload").catch((err: unknown) => {
    const e = err instanceof ProxyError ? s3ErrorOf(err) : undefined;
    throw e !== undefined && OWN_UPLOAD_CODES.has(e.code) ? s3Fail(ownUploadError(e), s3RequestIdOf(res.headers)) : err;
  });
}

/** The stored object's ETag, and the upstream's answer that stored it (PutObject, or CompleteMultipartUpload). */
interface Stored {
  etag: string;
  upstream: Response;
}

function answer(ctx: RequestContext, fields: ReadonlyMap<string, string>, key: string, stored: Stored): Response {
  const etag = stored.etag;
  const location = objectLocation(ctx, ctx.bucketName, key);
  // the write's headers a client may see (x-amz-version-id on a versioned store, encryption,
  // expiration, checksums), as S3's PostObject answers them; they were dropped, ETag alone kept
  const headers: Record<string, string> = Object.fromEntries(relayedHeaders(ctx, stored.upstream));
  headers.location = location;
  if (etag !== "") headers.etag = etag;
  const field = fields.get("success_action_redirect") ?? fields.get("redirect");
  if (field !== undefined && /^https?:\/\/[^\s]+$/i.test(field)) {
    // A field is UTF-8 text, a header value bytes: what is not printable ASCII goes as its UTF-8,
    // percent-encoded (as a browser's URL parser does). Set as it was, a character above U+00FF
    // threw (500 InternalError, the object stored), one in U+0080..U+00FF went as a Latin-1 byte,
    // and a control character reached the wire (the bun engine sent a malformed answer).
    const redirect = /^[\x21-\x7e]*$/.test(field) ? field : field.replace(/[^\x21-\x7e]/gu, encodeURIComponent);
    const q = `bucket=${encodeURIComponent(ctx.bucketName)}&key=${encodeURIComponent(key)}&etag=${encodeURIComponent(etag)}`;
    // (the query goes before a fragment: after it, the browser would never send it)
    const hash = redirect.indexOf("#");
    const base = hash < 0 ? redirect : redirect.slice(0, hash);
    headers.location = base + (base.includes("?") ? "&" : "?") + q + (hash < 0 ? "" : redirect.slice(hash));
    return new Response(null, { status: 303, headers });
  }
  const status = fields.get("success_action_status");
  if (status === "201") {
    const xml = XML_DECL + `<PostResponse xmlns="${S3_XMLNS}">` + el("Location", location) + el("Bucket", ctx.bucketName) + el("Key", key) + el("ETag", etag) + "</PostResponse>";
    ctx.bytes = Buffer.byteLength(xml);
    return new Response(xml, { status: 201, headers: { ...headers, "content-type": "application/xml" } });
  }
  return new Response(null, { status: status === "200" ? 200 : 204, headers });
}

export async function postObjectOp(ctx: RequestContext): Promise<Response> {
  const boundary = formBoundary(ctx.req.headers.get("content-type"));
  if (boundary === undefined) fail(s3Error("PreconditionFailed", "Bucket POST must be of the enclosure-type multipart/form-data", { Condition: "Bucket POST must be of the enclosure-type multipart/form-data" }));
  const length = ctx.req.headers.get("content-length");
  if (length !== null && Number(length) > MAX_UPLOAD_BYTES + MAX_FIELD_BYTES + 64 * 1024) {
    // (the connection closed after the answer: the body is never read, rather than read and dropped)
    const e = s3Error("EntityTooLarge");
    e.headers = { connection: "close" };
    fail(e);
  }
  if (ctx.req.body === null) fail(s3Error("IncorrectNumberOfFilesInPostRequest"));
  // Each chunk is copied into a part buffer (or read as a field) before the next is asked for.
  // (through the pump, which times a client that stops sending: unwatched, the form waited for
  // the listener's idle timeout, ~68 s, and its connection was closed with no answer)
  const body = pipeStage(ctx.req.body!, PASS_THROUGH, "none", formBodyLimits.idleMs, formBodyLimits.slow).stream;
  const form = new FormReader(body, boundary!, { releaseChunks: ownsBodyChunks(ctx.req) });
  try {
    const fields = new Map<string, string>();
    let fieldBytes = 0;
    let file: { filename?: string } | undefined;
    // (the fields are read whole before anything goes upstream: server.request_timeout passing now is the client's, RequestTimeout)
    ctx.readingBody = true;
    for (let part = await form.nextPart(); part !== undefined; part = await form.nextPart()) {
      const name = part.name.toLowerCase();
      if (name === "file") {
        file = part;
        break;
      }
      // (the name counts before the value is read: counted after, fields with empty values
      // passed the limit unchecked, and a body of distinct long names was held whole)
      fieldBytes += Buffer.byteLength(name);
      const value = fieldBytes > MAX_FIELD_BYTES ? undefined : await form.text(MAX_FIELD_BYTES - fieldBytes);
      if (value === undefined) fail(s3Error("MaxPostPreDataLengthExceeded"));
      fieldBytes += Buffer.byteLength(value!);
      if (fields.has(name)) fail(s3Error("InvalidArgument", `Bucket POST can only contain one field named '${name.slice(0, 64)}'.`, { ArgumentName: name.slice(0, 64) }));
      fields.set(name, value!);
    }
    ctx.readingBody = false;
    if (file === undefined) fail(s3Error("IncorrectNumberOfFilesInPostRequest"));
    // S3 asks for the key before the signature: a form whose file came first has no fields (those
    // after the file are ignored), and S3's words name the cause (an HTML form, file input on top).
    if (!fields.has("key")) fail(missing("key"));
    const now = (ctx as S3RequestContext).s3!.api.now();
    let principal: S3Principal;
    try {
      principal = authenticate(ctx, fields, now);
    } catch (err) {
      ctx.svc.metrics.auth("invalid");
      throw err;
    }
    adoptPrincipal(ctx, principal);
    // The bucket a condition names is the one posted to (a `bucket` field cannot change it).
    const forPolicy = new Map(fields);
    forPolicy.set("bucket", ctx.bucketName);
    const policy = checkPostPolicy(fields.get("policy")!, forPolicy, now);
    if ("code" in policy) return fail(policy);
    const key = objectKey(fields, file!.filename);
    ctx.key = key;
    ctx.path = `/${ctx.bucketName}/${key}`;
    // Grants, rules, the authorizer and the store as live now too (see authenticate): the write is
    // decided after the fields came, on the bucket as it is then; one gone meanwhile is refused.
    const live = ctx.svc.runtime;
    const liveBucket = live.buckets.get(ctx.bucketName);
    if (liveBucket === undefined) fail(s3Error("NoSuchBucket", undefined, { BucketName: ctx.bucketName }));
    ctx.bucket = liveBucket;
    // (a session whose token's key a reload removed: InvalidToken, as its other requests)
    if (!mayAccess(live, principal, liveBucket!, "s3:PutObject")) fail(accessRefusal(live, principal, ctx.svc.metrics));
    // (counted once the grants allow the form, as s3Permit counts any other request: a form they
    // refuse is one outcome, forbidden)
    ctx.svc.metrics.auth("success");
    await authorize(ctx);
    const headers = objectHeaders(fields);
    const digests = expectedDigests(fields);
    const compute = checksumToCompute(fields, digests);
    // tags set by the form need s3:PutObjectTagging too, as x-amz-tagging on PutObject does (front.ts)
    if (headers["x-amz-tagging"] !== undefined && !(await mayAlso(ctx, "s3:PutObjectTagging"))) {
      throw new ProxyError("Forbidden", { detail: "The authorization policy denied setting the object's tags" });
    }
    // (purged unless refused: a write whose answer was lost may have landed, see purgeIfUnsure; a
    // refused form, over its policy's size, a bad digest or the upstream's 4xx, stored nothing)
    const stored = await uploadFile(ctx, form, key, headers, policy, digests, compute).catch(async (err: unknown) => {
      if (!isRefusal(err, ctx.timing.attempts)) await purgeWritten(ctx, key);
      throw err;
    });
    await purgeWritten(ctx, key);
    return answer(ctx, fields, key, stored);
  } catch (err) {
    // the form itself was broken (read before the file or in it: either way nothing is stored)
    if (err instanceof FormDataError) throw s3Fail(s3Error("MalformedPOSTRequest", err.message));
    // the client stopped sending (RequestTimeout); one that went away is the runner's (499)
    if (isPayloadError(err) && err.code === "RequestTimeout" && !ctx.req.signal.aborted) throw s3Fail(s3Error("RequestTimeout"));
    throw err;
  } finally {
    ctx.readingBody = false;
    form.cancel();
  }
}
