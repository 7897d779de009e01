/**
 * Phase: serve an object (GET/HEAD), from the cache when the bucket caches, else from S3; then
 * build the client's response. Shared by both fronts (the plain front's GET, the S3 front's
 * GetObject/HeadObject).
 *
 * If-Range is made to hold here, whatever the upstream does with it (S3 does not document it):
 * the Range goes upstream without If-Range, and a 206 whose validators do not match If-Range is
 * replaced by the whole current object (200), so a client resuming a download with a stale ETag
 * never splices new bytes onto old ones. The cache applies the same rule to stored objects.
 */
import { serveHit, serveWithCache, withCacheStatus } from "../../cache/index.ts";
import { ProxyError } from "../../errors.ts";
import { bufferUpstreamBody } from "../../http/body-policy.ts";
import { ifRangeAllows, ifRangeMayMatch, parseHttpDate, type Validators } from "../../http/conditional.ts";
import { dropChecksumHeaders, forwardRequestHeaders, keepPassedResponseHeaders, passResponseHeaders, UNTYPED_CONTENT_TYPE } from "../../http/headers.ts";
import { isOwnedBytes } from "../../http/owned-response.ts";
import { answersRange, readableContentRange, unreadableContentRange, upstreamRange, wholeRangeOf200 } from "../../http/range.ts";
import { mapAnswer } from "../../http/map-answer.ts";
import { errorFromResponse, s3RequestIdOf } from "../../s3/errors.ts";
import { replicaOf } from "../../s3/replicas.ts";
import type { UpstreamTiming } from "../../s3/upstream.ts";
import type { RequestContext } from "../context.ts";
import { meteredBody } from "../deliver.ts";

type ObjectMethod = "GET" | "HEAD";

export function serveObject(ctx: RequestContext): Response | Promise<Response> {
  if (!ctx.bucket!.sandboxed) return serveObjectAsStored(ctx);
  return mapAnswer(serveObjectAsStored(ctx), sandboxed);
}

/**
 * User content (a read-write bucket's objects): an uploaded HTML, SVG or XML page rendered by a
 * browser from the proxy's origin would run its script there, with that origin's cookies and the
 * viewer's `?token=` in its URL. `sandbox` makes such a page a unique opaque origin without
 * script; `nosniff` keeps a browser from guessing text/html for another type. Images, downloads
 * and media are unaffected.
 */
export function sandboxed(res: Response): Response {
  res.headers.set("content-security-policy", "sandbox");
  res.headers.set("x-content-type-options", "nosniff");
  return res;
}

function serveObjectAsStored(ctx: RequestContext): Response | Promise<Response> {
  const bucket = ctx.bucket!;
  const method = ctx.method as ObjectMethod;
  if (bucket.cachePolicy) {
    // A traced request skips the synchronous shortcut: serveWithCache looks up every layer with a span each.
    const hit = ctx.span?.recording === true ? undefined : serveHit(ctx.svc.cache, bucket.name, ctx.key, method, ctx.req.headers);
    if (hit !== undefined) {
      ctx.cache = "HIT";
      ctx.bytes = bodyBytes(hit, method);
      return hit;
    }
    return serveCached(ctx, method);
  }
  return fetchAndRespond(ctx, method);
}

/**
 * The upstream's answer, relayed. (A function of its own: its closure over `ctx` made
 * serveObjectAsStored allocate a scope on every request, a cache hit's too.)
 */
function fetchAndRespond(ctx: RequestContext, method: ObjectMethod): Promise<Response> {
  return getObject(ctx, method, forwardRequestHeaders(ctx.req.headers), ctx.req.signal).then((upstream) => respond(ctx, upstream, method));
}

/**
 * The upstream GET/HEAD with the client's range/validators. Resolves with S3's answer for any
 * status (see BucketUpstream.fetchObject). Handles If-Range as described above.
 */
export function getObject(ctx: RequestContext, method: ObjectMethod, forward: Record<string, string>, signal: AbortSignal): Promise<Response> {
  const upstream = ctx.bucket!.upstream;
  const ifRange = forward["if-range"];
  // Not async: the common request (no If-Range) returns the upstream's own promise, one less per request.
  if (ifRange === undefined) return upstream.fetchObject(method, ctx.key, forward, signal, ctx.timing);
  return fetchIfRange((headers) => upstream.fetchObject(method, ctx.key, headers, signal, ctx.timing), forward, ifRange);
}

/**
 * The upstream read of `fetch` with If-Range made to hold (see above): `forward` carries the
 * client's headers, If-Range among them, which never goes upstream. The S3 front's version reads
 * use it too (version "null" is overwritten in place).
 */
export async function fetchIfRange(fetch: (headers: Record<string, string>) => Promise<Response>, forward: Record<string, string>, ifRange: string): Promise<Response> {
  delete forward["if-range"];
  if (forward.range === undefined) return fetch(forward);
  // A weak entity-tag, a list or anything unreadable can never match (strong comparison of one
  // validator): the answer is the whole object.
  if (!ifRangeMayMatch(ifRange.trim())) {
    delete forward.range;
    return fetch(forward);
  }
  const res = await fetch(forward);
  if (res.status !== 206 && res.status !== 416) return res;
  if (res.status === 206 && ifRangeAllows(ifRange, validators(res))) return res;
  // The range was for another version (or may have been: a 416 carries no validators): ask for
  // the whole object. If it turns out to be the version the client holds, its range really was
  // unsatisfiable, when the same replica said both: a 416 from a secondary whose lagging copy is
  // shorter (the primary failed the first read) is no answer about the primary's version.
  res.body?.cancel().catch(() => {});
  delete forward.range;
  const whole = await fetch(forward);
  if (res.status === 416 && whole.status === 200 && replicaOf(res) === replicaOf(whole) && ifRangeAllows(ifRange, validators(whole))) {
    whole.body?.cancel().catch(() => {});
    return res;
  }
  return whole;
}

/** An answer's validators, with its Date (If-Range takes its Last-Modified as strong only a second or more before it). */
function validators(res: Response): Validators {
  const h = res.headers;
  return { etag: h.get("etag") ?? undefined, lastModified: h.get("last-modified") ?? undefined, date: parseHttpDate(h.get("date") ?? "") };
}

async function serveCached(ctx: RequestContext, method: ObjectMethod): Promise<Response> {
  const bucket = ctx.bucket!;
  const result = await serveWithCache({
    cache: ctx.svc.cache,
    bucket: bucket.name,
    key: ctx.key,
    method,
    reqHeaders: ctx.req.headers,
    policy: bucket.cachePolicy!,
    // Always GET: a HEAD miss still fills the cache (serveWithCache answers the HEAD itself).
    // `signal`: a fill's own (its deadline: it does not die with the client that started it),
    // or the client's for a request that bypasses the cache.
    // Every request this makes asks for the stored checksums (x-amz-checksum-mode: ENABLED), whoever
    // the client: a fill is shared (its waiters, followers and replayed answers), so what it asks
    // must not be its first client's choice. An answer streamed from the upstream to a client (an
    // object too large to buffer, a disk fill's first client) carries them only when that client
    // asked (passedChecksums); a copy built from the cache never does (headers.ts, FRAMING_HEADERS).
    // A fill's attempts on a bucket with replicas are bounded one by one (fillBodyMs).
    upstream: (extra, signal) => {
      const policy = bucket.cachePolicy!;
      const headers = { ...extra, "x-amz-checksum-mode": "ENABLED" };
      if (signal === ctx.req.signal) {
        // (this request's own trip upstream, bypassing the cache: its deadline applies)
        ctx.timing.attemptBodyMs = undefined;
        ctx.timing.attemptHoldBytes = policy.bufferBytes ?? policy.maxItemBytes;
        return getObject(ctx, "GET", headers, signal);
      }
      return fillRead(ctx, headers, signal, policy.fillBodyMs, policy.bufferBytes ?? policy.maxItemBytes);
    },
    signal: ctx.req.signal,
    since: ctx.cacheSince,
    trace: ctx.span?.recording === true ? ctx.span : undefined,
  }).catch((err: unknown) => {
    // A client that left while its fill was under way is answered at once (serve.ts,
    // untilClientGone): its access line says it missed.
    if (ctx.req.signal.aborted) ctx.cache = "MISS";
    throw err;
  });
  if (method === "HEAD" && result.passthrough && result.response.status === 403) {
    // A HEAD miss is answered from a GET. S3 refuses the GET of an object it can still describe
    // (an archived one: 403 InvalidObjectState; one under a KMS key the proxy may not decrypt
    // with) while its HeadObject answers 200 with StorageClass and Restore: the HEAD asks that,
    // as an uncached bucket's HEAD does (it was 403 AccessDenied on a cached bucket only).
    result.response.body?.cancel().catch(() => {});
    ctx.timing.attemptBodyMs = undefined; // (the client's request now, not a fill's bounded attempt)
    ctx.timing.attemptHoldBytes = undefined;
    const head = await getObject(ctx, "HEAD", forwardRequestHeaders(ctx.req.headers), ctx.req.signal);
    result.response = head;
    result.cacheStatus = "BYPASS";
    result.replica = undefined;
  }
  ctx.cache = result.cacheStatus;
  // (served from what another request's upstream answer gave: the replica that gave it)
  if (result.replica !== undefined && ctx.timing.replica === undefined) ctx.timing.replica = result.replica;
  if (result.following === true && result.response.body !== null) {
    // Read from a streaming fill in progress: metered like a streamed body, cut if the fill fails.
    const res = result.response;
    return new Response(meteredBody(ctx, res.body!, Number(res.headers.get("content-length") ?? -1)), { status: res.status, headers: res.headers });
  }
  if (!result.passthrough) {
    ctx.bytes = bodyBytes(result.response, method);
    return result.response;
  }
  let res: Response;
  try {
    res = passedChecksums(await respond(ctx, result.response, method), ctx.req.headers);
  } catch (err) {
    // An upstream refusal relayed (412, 416, 403...) says X-Cache too, as every answer of a cached bucket.
    throw withCacheStatus(err, result.cacheStatus);
  }
  res.headers.set("x-cache", result.cacheStatus);
  return res;
}

/**
 * A fill's upstream read: shared by every request that joins its flight, so it runs under its own
 * deadlines (the fill's, s3.timeout), never its leader's server.request_timeout. Under the leader's
 * timing, the leader's deadline cut the fill, and every waiter that joined it was answered 504
 * ("took longer than the proxy allows") long before its own deadline, over an upstream about to
 * answer. The attempts, their time and the replica are the leader's access line's, copied back
 * when the read settles (unless the leader was given up meanwhile: its line is written).
 * `bodyMs`/`holdBytes`: see UpstreamTiming's attemptBodyMs and attemptHoldBytes.
 */
function fillRead(ctx: RequestContext, headers: Record<string, string>, signal: AbortSignal, bodyMs: number | undefined, holdBytes: number): Promise<Response> {
  const own = ctx.timing;
  const timing: UpstreamTiming = { upstreamMs: 0, attempts: 0, trace: own.trace, attemptBodyMs: bodyMs, attemptHoldBytes: holdBytes, attemptFrom: undefined, replica: undefined, abandoned: undefined, onAbandon: undefined, fill: undefined };
  // (seen by the leader's access line if it is written meanwhile: a client that left counts the
  // time its fill has waited so far)
  own.fill = timing;
  const settled = () => {
    if (own.abandoned !== undefined) return;
    own.fill = undefined;
    own.upstreamMs += timing.upstreamMs;
    own.attempts = timing.attempts;
    if (timing.replica !== undefined) own.replica = timing.replica;
  };
  const read = ctx.bucket!.upstream.fetchObject("GET", ctx.key, headers, signal, timing);
  read.then(settled, settled);
  return read;
}

/** The object's checksum headers stay on an answer only for a client that asked for them, as S3 sends them. */
function passedChecksums(res: Response, req: Headers): Response {
  if (req.get("x-amz-checksum-mode")?.toUpperCase() !== "ENABLED") dropChecksumHeaders(res.headers);
  return res;
}

/** Body bytes a response built from the cache sends (its Content-Length; none for HEAD). */
function bodyBytes(res: Response, method: string): number {
  return method === "HEAD" ? 0 : Number(res.headers.get("content-length") ?? 0);
}

/** Statuses that are answers to an object request, not errors. */
const ANSWERS = new Set([200, 206, 304]);

/** The request headers a 412 answers (RFC 9110 §13.1: If-Match and If-Unmodified-Since; any condition is taken). */
const CONDITIONS = ["if-match", "if-unmodified-since", "if-none-match", "if-modified-since"];

/** A GetObject/HeadObject of one part (S3's ?partNumber=). */
const PART_QUERY = /[?&]partNumber=/;

/**
 * Builds the client response from S3's (200/206/304; 412/416 and errors are thrown as ProxyError).
 * Synchronous when the answer is ready (a Response, not a promise, from a `then` callback saves
 * the promise adoption's extra ticks on every request); a body still to be read makes it async.
 */
export function respond(ctx: RequestContext, upstream: Response, method: ObjectMethod): Response | Promise<Response> {
  const status = upstream.status;
  if (!ANSWERS.has(status)) {
    if (status === 412 || status === 416) {
      upstream.body?.cancel().catch(() => {});
      if (status === 412 && !CONDITIONS.some((name) => ctx.req.headers.has(name))) {
        throw new ProxyError("BadGateway", { detail: "The upstream answered 412 Precondition Failed to a request without a condition" });
      }
      const headers: Record<string, string> = {};
      const cr = upstream.headers.get("content-range");
      if (status === 416 && cr) headers["content-range"] = cr;
      // (the upstream's answer, told apart from one the proxy gave from its cache: the access line's
      // s3_request_id, what AWS support and CloudTrail know the request by, as for any other refusal;
      // the body, S3's <Error>, is not read: the status is the answer)
      throw new ProxyError(status === 412 ? "PreconditionFailed" : "RangeNotSatisfiable", { headers, cause: { s3RequestId: s3RequestIdOf(upstream.headers) } });
    }
    return errorFromResponse(upstream, method).then((e) => {
      throw e;
    });
  }
  if (status === 200) {
    if (wholeRangeOf200(upstream)) upstream.headers.delete("content-range");
  } else if (!answersRequest(ctx, upstream)) {
    upstream.body?.cancel().catch(() => {});
    throw new ProxyError("BadGateway", { detail: status === 304 ? "The upstream answered 304 Not Modified to a request without a condition" : mismatched206(upstream.headers.get("content-range")) });
  }
  // A part's answer (?partNumber) keeps the part's checksum, as S3 sends it.
  const range = status === 206 && !PART_QUERY.test(ctx.query);
  if (isOwnedBytes(upstream)) {
    // The own client's answer, body already read whole: answered as it is, headers filtered in place.
    if (!keepPassedResponseHeaders(upstream.headers) && status !== 304) upstream.headers.set("content-type", UNTYPED_CONTENT_TYPE);
    if (status === 304) upstream.headers.delete("content-length"); // (see below)
    if (range) dropChecksumHeaders(upstream.headers);
    if (range && method === "HEAD") rangeLength(upstream.headers);
    if (method === "GET" && status !== 304) ctx.bytes = Number(upstream.headers.get("content-length") ?? 0);
    return upstream;
  }
  const headers = passResponseHeaders(upstream.headers, new Headers());
  if (status !== 304 && !headers.has("content-type")) headers.set("content-type", UNTYPED_CONTENT_TYPE);
  if (range) dropChecksumHeaders(headers);
  if (range && method === "HEAD") rangeLength(headers);
  if (method === "HEAD" || status === 304) {
    upstream.body?.cancel().catch(() => {});
    // A 304 goes out without a Content-Length, as the cache's own 304 (respond.ts): an upstream's
    // (0 for a 26-byte object, say) was relayed, against RFC 9110 §8.6, by an uncached bucket only.
    if (status === 304) headers.delete("content-length");
    return new Response(null, { status, headers });
  }
  const declared = upstream.headers.get("content-length");
  const length = declared === null ? -1 : Number(declared);
  if (bufferUpstreamBody(length, ctx.rt.config.server.buffer_threshold_bytes)) return respondBuffered(ctx, upstream, status, headers, length);
  if (upstream.body === null) return new Response(null, { status, headers });
  return new Response(meteredBody(ctx, upstream.body, length), { status, headers });
}

/**
 * A HEAD's 206 whose upstream sent no length (its HEAD answered chunked): the length its GET would
 * send, the range's (RFC 9110 §8.6), from the Content-Range. Without one, the bun engine said
 * `Transfer-Encoding: chunked` (server.ts headAnswer) where the range's bytes are known.
 */
function rangeLength(headers: Headers): void {
  if (headers.has("content-length")) return;
  const m = /^bytes (\d{1,15})-(\d{1,15})\//.exec(headers.get("content-range") ?? "");
  if (m !== null && Number(m[2]) >= Number(m[1])) headers.set("content-length", String(Number(m[2]) - Number(m[1]) + 1));
}

/**
 * Whether a 206 or 304 answers what was asked: a 304 only to a request with If-None-Match or
 * If-Modified-Since, a 206 only with the very range the request's Range header asked for (as
 * forwarded: upstreamRange), or for a part (S3's ?partNumber= is answered 206 with the part's
 * range). A store that answers otherwise (a 206 of some bytes to a GET of the whole object, 304 to
 * a plain GET) had its answer relayed as the object.
 */
function answersRequest(ctx: RequestContext, upstream: Response): boolean {
  const h = ctx.req.headers;
  if (upstream.status === 304) return h.has("if-none-match") || h.has("if-modified-since");
  // (a part's 206 names the part's range, whatever was asked: a byte range all the same)
  if (PART_QUERY.test(ctx.query)) return readableContentRange(upstream.headers.get("content-range"));
  const range = h.get("range");
  return answersRange(range === null ? undefined : upstreamRange(range), upstream.headers.get("content-range"));
}

/** The 502's words for a 206 that does not answer the request: its Content-Range missing or no byte range, else another range than asked. */
function mismatched206(contentRange: string | null): string {
  if (!readableContentRange(contentRange)) return unreadableContentRange(206, contentRange === null);
  return "The upstream answered with other bytes than those asked for (its 206 Partial Content does not match the request's Range)";
}

/** A known-size body keeps Content-Length under Bun.serve (a stream would lose it): read it whole first. */
async function respondBuffered(ctx: RequestContext, upstream: Response, status: number, headers: Headers, length: number): Promise<Response> {
  let body: ArrayBuffer;
  try {
    body = await upstream.arrayBuffer();
  } catch (err) {
    throw new ProxyError("BadGateway", { detail: "The upstream connection failed while sending the object", cause: err });
  }
  if (body.byteLength !== length) throw new ProxyError("BadGateway", { detail: "The upstream sent a body of another length than it announced" });
  ctx.bytes = body.byteLength;
  return new Response(body, { status, headers });
}
