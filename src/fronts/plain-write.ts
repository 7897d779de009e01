/**
 * Writes on the plain front: `PUT /<prefix>/<key>` (the body streamed to S3) and
 * `DELETE /<prefix>/<key>`, on buckets with `access: read-write` only (read-only buckets answer
 * 405 with Allow, as before).
 *
 * Who may write:
 * - a bucket with auth: a valid JWT that passes jwt.claims, auth.claims and auth.write_claims
 *   (the last ones apply to writes only, so a rule can allow reads and deny writes), then the
 *   bucket's authorizer asked with s3:PutObject / s3:DeleteObject;
 * - a bucket without auth: nobody, unless auth.anonymous_writes says anyone may (an open bucket
 *   that is also writable is rarely what was meant, so it takes a second key to say so).
 * `writeRefusal` is the rule; the S3 front's web-identity sessions (which act as their token's
 * user) can ask it too.
 *
 * Uploads:
 * - Content-Length is required (411 without, also for chunked bodies: S3 needs the length before
 *   the first byte, and a chunked body's length is known only at its end). A body of at most
 *   64 KiB is read whole and sent as bytes (retried after an upstream 5xx, as a GET is); a larger
 *   one is streamed to the bucket's primary upstream with exactly that length, never buffered. A
 *   body that ends early or a client that disconnects sends nothing, or cuts the upstream request
 *   before its last byte: nothing is stored.
 * - At most server.security_limits.max_body_size bytes (default 10 MiB), and never more than S3's
 *   5 GiB single PUT: 413 EntityTooLarge, from the header, before any byte is read.
 * - What describes the object passes through (Content-Type, Content-MD5, x-amz-meta-*,
 *   Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires, checksums,
 *   If-Match / If-None-Match: src/s3/operations/put-object.ts); S3's refusals come back as errors
 *   naming S3's code (BadDigest, …).
 * - 200 with the ETag S3 gave (header and JSON body). DELETE: 204, also for a key that did not
 *   exist (S3's answer). A DELETE with If-Match (an ETag, or `*`) is S3's conditional delete: 412
 *   when the object's ETag differs (it stays), 404 when there is no object; If-None-Match,
 *   If-Unmodified-Since and S3's x-amz-if-match-last-modified-time / -size are refused (501), not
 *   dropped.
 * A successful write purges the key from every cache layer (memory, disk, Redis and, through
 * Redis, every other replica's layers) before it is answered.
 */
import { framedRequestBody } from "../http/framed-body.ts";
import { chunkedBodyEmpty, chunkedOnly, REFUSED_BODY_CLOSE } from "../http/body-policy.ts";
import { UNSIGNED_PAYLOAD } from "../s3/sigv4.ts";
import { SMALL_BODY_BYTES } from "./s3/upload-body.ts";
import { endToEnd } from "../http/headers.ts";
import { describeRule, firstFailedRule, type Claims } from "../auth/rules.ts";
import { ProxyError } from "../errors.ts";
import type { RequestContext } from "../proxy/context.ts";
import type { BucketRuntime } from "../runtime.ts";
import { errorFromResponse } from "../s3/errors.ts";
import { mayAlso } from "../proxy/phases/authorize.ts";
import { purgeIfUnsure, purgeWritten } from "./purge.ts";
import { objectSettingsProblem, unkeptDeleteCondition, unkeptSettingOf } from "./s3/writes.ts";
import { deleteObject, putObject } from "../s3/operations/index.ts";
import { RequestBodyError } from "../s3/upstream.ts";

/** S3's largest single PUT. */
/** A DELETE's refusal of a body. */
export const DELETE_BODY = "A DELETE takes no body";

const MAX_PUT_BYTES = 5 * 1024 ** 3;

export const READ_ALLOW = "GET, HEAD, OPTIONS";
export const WRITE_ALLOW = "GET, HEAD, PUT, DELETE, OPTIONS";

/**
 * Why `claims` (undefined: anonymous) may not write to `bucket`, or undefined when it may. Only
 * the write-specific rules: the caller has already checked the bucket's read rules (jwt.claims,
 * auth.claims) for a token.
 */
export function writeRefusal(bucket: BucketRuntime, claims: Claims | undefined): string | undefined {
  const cfg = bucket.cfg;
  if (cfg.access !== "read-write") return "This bucket is read-only";
  // (no token helps here: a bucket without auth takes writes from anyone, with anonymous_writes, or from no one)
  if (!bucket.authRequired) return cfg.auth.anonymous_writes ? undefined : "This bucket takes no writes through this front: it has no auth (auth.enabled) and does not allow anonymous writes (auth.anonymous_writes)";
  if (claims === undefined) return "Authentication required";
  const failed = firstFailedRule(cfg.auth.write_claims, claims);
  return failed === undefined ? undefined : `Writes need: ${describeRule(failed)}`;
}

/** The upload limit of the plain front, in bytes. */
export function uploadLimit(ctx: RequestContext): number {
  return Math.min(ctx.rt.config.server.security_limits.max_body_size, MAX_PUT_BYTES);
}

/** What sets uploadLimit, for the messages that name it: max_body_size, or S3's 5 GiB when max_body_size is larger. */
export function uploadLimitSource(ctx: RequestContext): string {
  return ctx.rt.config.server.security_limits.max_body_size < MAX_PUT_BYTES ? "server.security_limits.max_body_size" : "5 GiB, S3's largest single upload";
}

/** A PUT's length from its headers (route time, before anything is read): 400, 411 or 413. */
export function uploadLength(ctx: RequestContext): number {
  const h = ctx.req.headers;
  const declared = h.get("content-length");
  if (declared === null) {
    const chunked = h.get("transfer-encoding") !== null;
    throw new ProxyError("LengthRequired", { detail: chunked ? "Chunked uploads are not accepted: send the body with a Content-Length" : "An upload needs a Content-Length" });
  }
  // (any run of digits is a length: 17 or more are simply too large, not "not a number")
  if (!/^\d+$/.test(declared)) throw new ProxyError("BadRequest", { detail: "Content-Length is not a number" });
  const n = Number(declared);
  if (n > MAX_PUT_BYTES) throw new ProxyError("EntityTooLarge", { detail: "A single upload is at most 5 GiB" });
  const limit = uploadLimit(ctx);
  // (the S3 API front named only when it is on: without s3_api the way it named did not exist)
  const past = ctx.rt.s3Api === undefined ? "" : "; larger files go through the S3 API front as multipart uploads";
  if (n > limit) throw new ProxyError("EntityTooLarge", { detail: `This proxy accepts uploads of at most ${limit} bytes (server.security_limits.max_body_size)${past}` });
  // The plain front stores the body as sent: aws-chunked framing would become the object.
  if (/(^|,)\s*aws-chunked\s*(,|$)/i.test(h.get("content-encoding") ?? "")) throw new ProxyError("BadRequest", { detail: "aws-chunked bodies are for the S3 API, not the plain front" });
  return n;
}

/** An S3 refusal of a write as the client's error: S3's code named for a 400 or a 409 (a conflicting conditional write), EntityTooLarge and NotImplemented kept. */
async function writeError(res: Response, method: string): Promise<ProxyError> {
  const e = await errorFromResponse(res, method);
  const s3Code = (e.cause as { s3Code?: string } | undefined)?.s3Code;
  if (s3Code === "EntityTooLarge") return new ProxyError("EntityTooLarge", { cause: e.cause });
  // S3 refuses a header it does not implement (If-None-Match with an ETag instead of "*"): the
  // client's request, not a failing upstream (which a 502 would say).
  if (s3Code === "NotImplemented" && res.status === 501) return new ProxyError("NotImplemented", { detail: "The upstream does not implement a header of this request (NotImplemented)", cause: e.cause });
  if ((e.code === "BadRequest" || e.code === "Conflict") && s3Code !== undefined && /^[A-Za-z]{1,64}$/.test(s3Code)) {
    return new ProxyError(e.code, { detail: `The upstream refused the request (${s3Code})`, cause: e.cause });
  }
  return e;
}

/**
 * A small body (at most SMALL_BODY_BYTES, as the S3 front's), read whole before anything goes
 * upstream: sent as bytes, it is replayable (an upstream 5xx is retried, s3.retry) and goes over a
 * pooled upstream connection, without a stream on either side. Streamed, it had one attempt (the
 * upstream's 500 answered 502) and a fresh upstream connection per PUT.
 */
async function readWhole(req: Request, length: number): Promise<Uint8Array> {
  let bytes: Uint8Array | undefined;
  try {
    bytes = await req.bytes();
  } catch (err) {
    if (req.signal.aborted) throw err;
  }
  if (bytes === undefined || bytes.byteLength !== length) throw new ProxyError("BadRequest", { detail: "The request body ended before its Content-Length" });
  return bytes;
}

/** A larger body, streamed to the upstream with its exact length (natively on Bun: framed-body.ts). */
function streamedBody(req: Request, length: number): { body: Uint8Array } | { body: ReadableStream<Uint8Array>; contentLength: number } {
  const source = framedRequestBody(req, length);
  return source === null ? { body: new Uint8Array(0) } : { body: source, contentLength: length };
}

async function purge(ctx: RequestContext): Promise<void> {
  await purgeWritten(ctx, ctx.key);
}

export async function servePut(ctx: RequestContext): Promise<Response> {
  const req = ctx.req;
  // What the S3 front refuses (an ACL that grants, Object Lock, customer or KMS keys, an append;
  // metadata over 2 KiB, tags S3 refuses) is refused here too: the object would be written
  // without it (an append would replace it), or stored where S3 itself would refuse it.
  const unkept = unkeptSettingOf(req.headers) ?? objectSettingsProblem(req.headers, false);
  if (unkept !== undefined) throw new ProxyError(unkept.status === 501 ? "NotImplemented" : "BadRequest", { detail: unkept.message });
  // Tags set by the write (x-amz-tagging) need s3:PutObjectTagging too, as on the S3 front
  // (s3Authorize): a policy that refuses tagging is not bypassed by tags on a plain-front PUT.
  if (req.headers.has("x-amz-tagging") && !(await mayAlso(ctx, "s3:PutObjectTagging")))
    throw new ProxyError("Forbidden", { detail: "The authorization policy denied setting the object's tags" });
  const length = uploadLength(ctx);
  let res: Response;
  // (the body arrives at its client's pace, read whole or streamed: server.request_timeout waits)
  ctx.uploading = true;
  try {
    const body = length <= SMALL_BODY_BYTES ? { body: length === 0 ? new Uint8Array(0) : await readWhole(req, length), payloadHash: UNSIGNED_PAYLOAD } : streamedBody(req, length);
    res = await purgeIfUnsure(ctx, [ctx.key], () => putObject(ctx.bucket!.upstream.primary(), { key: ctx.key, headers: req.headers, ...body }, { signal: req.signal, timing: ctx.timing }));
  } catch (err) {
    // A client that left is answered 499 by the runner; a body that ended early while it stayed is its error.
    if (err instanceof RequestBodyError && !req.signal.aborted) throw new ProxyError("BadRequest", { detail: "The request body ended before its Content-Length", cause: err });
    throw err;
  } finally {
    ctx.uploading = false;
  }
  // The access log's bytes_in. The body went upstream untouched (on Bun natively, see
  // src/http/framed-body.ts: no JavaScript per chunk, nothing to count it with): an upstream 2xx
  // to a request of exactly this Content-Length means all of it came and was sent. Otherwise
  // nothing is logged, never the declared length of a body that may have been cut.
  if (res.ok) ctx.bytesIn = length;
  // Any 2xx stored the object (S3 answers 200; some S3-compatible gateways 201 Created).
  if (!res.ok) throw await writeError(res, "PUT");
  await discardAnswer(res);
  await purge(ctx);
  // (an ETag the upstream's Connection header names is hop-by-hop, RFC 9110 §7.6.1: the proxy's
  // alone, which the S3 front's writes drop too, src/fronts/s3/relay.ts)
  const etag = endToEnd(res.headers, "etag");
  const out = JSON.stringify({ key: ctx.key, etag });
  ctx.bytes = Buffer.byteLength(out);
  const headers: Record<string, string> = { "content-type": "application/json", "cache-control": "no-store" };
  if (etag !== null) headers.etag = etag;
  return new Response(out, { status: 200, headers });
}

/**
 * The body of a write's 2xx, which S3 sends empty: read when it says so (the connection goes back
 * to the pool), else cancelled, never waited for. An upstream that sent the head and then stalled
 * its body held the client's answer until server.request_timeout (504 after 30 s for a write the
 * store had taken within milliseconds); the S3 front's writes already answered (emptyAnswer).
 */
async function discardAnswer(res: Response): Promise<void> {
  if (res.body === null) return;
  if (res.headers.get("content-length") === "0") await res.arrayBuffer().catch(() => {});
  else await res.body.cancel().catch(() => {});
}

export async function serveDelete(ctx: RequestContext): Promise<Response> {
  // A conditional delete: If-Match (an ETag, or *) goes to S3, which deletes only when it holds
  // (412 otherwise, 404 when there is no object). The conditions S3 would not be given
  // (If-None-Match, If-Unmodified-Since, S3's directory-bucket x-amz-if-match-*) are refused,
  // never dropped: the delete would happen without them.
  const unkept = unkeptDeleteCondition(ctx.req.headers);
  if (unkept !== undefined) throw new ProxyError("NotImplemented", { detail: unkept.message });
  // A chunked body (route let it pass: its length is told when it ends) is no body when it turns
  // out empty (`0\r\n\r\n`: some HTTP stacks frame a bodiless request so); with content it is refused.
  if (chunkedOnly(ctx.req.headers) && !(await chunkedBodyEmpty(ctx.req, ctx))) throw new ProxyError("BadRequest", { detail: DELETE_BODY, headers: REFUSED_BODY_CLOSE });
  const ifMatch = ctx.req.headers.get("if-match") ?? undefined;
  const res = await purgeIfUnsure(ctx, [ctx.key], () => deleteObject(ctx.bucket!.upstream.primary(), { key: ctx.key, ...(ifMatch === undefined ? {} : { ifMatch }) }, { signal: ctx.req.signal, timing: ctx.timing }));
  // (any 2xx: S3 answers 204, a gateway may say 200 or 202; the object is gone either way)
  if (!res.ok) throw await writeError(res, "DELETE");
  await discardAnswer(res);
  await purge(ctx);
  return new Response(null, { status: 204, headers: { "cache-control": "no-store" } });
}
