/**
 * The parts of BucketUpstream.send (src/s3/upstream.ts) that do not need the bucket: the request's
 * shape and its checks, header hygiene, and sending over fetch with a guarded body.
 *
 * How each client sends a streamed body (measured on Bun 1.4.5 with a raw Bun.listen server):
 * - fetch, `body: ReadableStream` + an explicit `content-length` header: sends Content-Length
 *   (without the header it sends Transfer-Encoding: chunked, which S3 answers with 411). A stream
 *   that errors mid-body makes fetch cut the connection short; but one that errors AFTER its last
 *   byte, or runs longer than the header says, reaches the server as a complete request first.
 *   Hence the guard (guardedBodyStream): exact length, last byte held back until the source ends.
 * - the own HTTP/1.1 client (src/s3/http1/): Content-Length from the pool, the same guard.
 * - a request's own body, framed by its Content-Length (src/http/framed-body.ts): fetch takes it
 *   natively (fetchFramed), whichever client the bucket uses otherwise. It cannot run long or end
 *   short without failing, so it needs no guard.
 */
import { fetchedAnswer } from "../http/headers.ts";
import { BUN_LISTENER_IDLE_SECONDS, framedBodyPeer } from "../http/framed-body.ts";
import { watchReceiveQueue } from "../http/receive-queue.ts";
import { timerDelay } from "../config/durations.ts";
import { guardedBodyStream, isValidContentLength, type GuardedBody, UpstreamProtocolError, UpstreamTimeoutError } from "./http1/index.ts";
import { framedTimeoutMs, heldBodyDue } from "./http1/budget.ts";
import { isOwnedBytes, markOwnedBytes } from "../http/owned-response.ts";
import { stallGuarded } from "../http/stall-guard.ts";
import { isSignablePayloadHash, sha256Hex, UNSIGNED_PAYLOAD } from "./sigv4.ts";
import type { UpstreamTiming } from "./upstream.ts";

/** The methods of the S3 operations (src/s3/operations/). */
export type UpstreamMethod = "GET" | "HEAD" | "PUT" | "POST" | "DELETE";

interface SendCommon {
  method: UpstreamMethod;
  /** The object key, decoded; "" for a bucket-level request (ListObjects, DeleteObjects, HeadBucket...). */
  key: string;
  /** Decoded query parameters (subresources such as ["uploads", ""], ["uploadId", id]); signed and sent in canonical form. */
  query?: ReadonlyArray<readonly [string, string]>;
  /**
   * Extra headers, signed and sent (names lower-cased). Host, Connection, Content-Length,
   * Transfer-Encoding, Expect, Authorization and the headers the signer sets (x-amz-date,
   * x-amz-content-sha256, x-amz-security-token) belong to send(): given here, they are dropped.
   */
  headers?: Record<string, string>;
  /**
   * x-amz-content-sha256: hex SHA-256 of the body, UNSIGNED-PAYLOAD, or
   * STREAMING-UNSIGNED-PAYLOAD-TRAILER (an aws-chunked body). Default: the hash of a bytes body
   * (computed), UNSIGNED-PAYLOAD for a stream, the empty-body hash without a body.
   */
  payloadHash?: string;
  signal: AbortSignal;
  timing: UpstreamTiming;
  /** Caps the attempts below s3.retry.max_attempts (a streamed body always gets exactly one). */
  maxAttempts?: number;
  /**
   * How long an attempt waits for the answer's head, in place of s3.timeout: for a call whose
   * caller gives up sooner on its own yet wants the late answer (a form upload's Create, whose
   * upload is aborted once its id is known).
   */
  timeoutMs?: number;
  /**
   * The request is conditional on an object's state through its body (a DeleteObjects with
   * <ETag>s), as If-Match / If-None-Match make one through headers: not resent (isResendable).
   */
  conditional?: boolean;
  /**
   * A streamed body's chunks are this request's own, referenced nowhere else (an upstream
   * response's body piped into another upstream request: a copy across buckets). The own client
   * then frees each chunk as soon as it is copied into its write batch (releaseChunk) instead of
   * leaving it to the collector: a 1 GiB streamed copy grew the proxy's RSS by 50-60 MiB without.
   */
  releaseChunks?: boolean;
  /**
   * S3 answers this write's 2xx empty (PutObject, UploadPart, DeleteObject, the tagging writes,
   * AbortMultipartUpload; not a copy, whose 200 S3 may hold open for minutes with whitespace): one
   * with a body of unknown length (chunked, until close) is read inside the attempt as a GET's is
   * (held up to buffer_threshold_bytes), so a body cut short fails the attempt (502) instead of
   * being discarded unread behind a 200.
   */
  emptyAnswer?: boolean;
  /**
   * A read whose 2xx body is read whole anyway (a listing: buffered XML): one of unknown length
   * (S3 sends listings chunked) is held inside the attempt as emptyAnswer's is, so a body cut,
   * stalled or trickling below the floor fails the attempt (retried, failed over to another
   * replica) instead of a 502, or a 504 at server.request_timeout, after the head.
   */
  holdAnswer?: boolean;
}

/**
 * One signed request (see BucketUpstream.send). A body always has an exact length: bytes carry
 * theirs, a stream must declare it (the type requires it; send() also checks at run time), and it
 * goes out as Content-Length, never chunked (S3 answers 411 to a PUT without a length).
 */
export type SendRequest = SendCommon &
  (
    | { body?: Uint8Array | null; contentLength?: number }
    | { body: ReadableStream<Uint8Array>; contentLength: number }
  );

export interface PreparedSend {
  body: Uint8Array | ReadableStream<Uint8Array> | null;
  streamed: boolean;
  payloadHash: string | undefined;
  headers: Record<string, string>;
}

/** Headers send() owns (framing, hop-by-hop, the signature's own). */
const OWNED_HEADERS = new Set([
  "host", "connection", "keep-alive", "content-length", "transfer-encoding", "te", "upgrade", "expect",
  "authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token",
]);
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_HEADER_VALUE = /[\0\r\n]/;

/** Checks a request's arguments (TypeError on bad ones) and settles its payload hash and headers. */
export function prepareSend(req: SendRequest): PreparedSend {
  const body = req.body ?? null;
  const streamed = body !== null && !(body instanceof Uint8Array);
  if (streamed) {
    if (!(body instanceof ReadableStream)) throw new TypeError("the request body must be bytes or a ReadableStream");
    if (!isValidContentLength(req.contentLength)) throw new TypeError("a streamed request body needs its exact length (contentLength)");
  } else if (req.contentLength !== undefined && req.contentLength !== (body === null ? 0 : body.byteLength)) {
    throw new TypeError("contentLength does not match the body's size");
  }
  const payloadHash = req.payloadHash ?? (body === null ? undefined : streamed ? UNSIGNED_PAYLOAD : sha256Hex(body as Uint8Array));
  if (payloadHash !== undefined && !isSignablePayloadHash(payloadHash)) throw new TypeError("invalid payloadHash");
  const headers: Record<string, string> = {};
  const given = req.headers;
  if (given !== undefined) {
    // (for-in, not Object.keys: no array per request; `given` is a plain record)
    for (const name in given) {
      const value = given[name];
      if (!HEADER_NAME.test(name)) throw new TypeError("invalid request header name");
      // The name only: a value may be a secret.
      if (typeof value !== "string" || BAD_HEADER_VALUE.test(value)) throw new TypeError(`invalid value for request header ${name}`);
      const lower = name.toLowerCase();
      if (!OWNED_HEADERS.has(lower)) headers[lower] = value;
    }
  }
  return { body, streamed, payloadHash, headers };
}

const EMPTY_BODY = new Uint8Array(0);

export { FRAMED_FLOOR_BYTES_PER_SECOND, framedTimeoutMs } from "./http1/budget.ts";

/** A response's Content-Length, or -1 when it has none or it is not a plain decimal. */
export function contentLengthOf(res: Response): number {
  const v = res.headers.get("content-length");
  return v !== null && /^\d{1,15}$/.test(v) ? Number(v) : -1;
}

/**
 * A fetch answer whose Content-Length is at most `upTo`, read whole inside the attempt, as the own
 * client reads one (src/s3/http1/exchange.ts): a body the upstream cuts short is then this
 * attempt's failure (UpstreamProtocolError: 502, or retried), whatever the caller does with the
 * body next. A write's caller discards its 2xx body unread: an upstream that announced a body and
 * closed before it was answered 200 on fetch where the own client answered 502. Bounded like an
 * upload's body: s3.timeout plus the body at 16 KiB/s, after which `abort` is aborted; a body
 * over STALL_CHECKED_FROM also by s3.timeout without a byte, as the own client's sweep bounds it
 * (readStallChecked). Answers without a length, or longer, are returned as they are. `res` has a
 * body (a GET's 200 or 206; writeAnswer returns one without, a 204's): its `body` is not read
 * here, which made a ReadableStream for each answer the fetch client read whole.
 */
export async function wholeAnswer(res: Response, upTo: number, abort: AbortController, timeoutMs: number): Promise<Response> {
  const length = contentLengthOf(res);
  if (length < 0 || length > upTo) return res;
  if (length > STALL_CHECKED_FROM) return readStallChecked(res, length, abort, timeoutMs);
  const timer = setTimeout(() => abort.abort(new UpstreamTimeoutError("the upstream stalled while sending the object")), framedTimeoutMs(timeoutMs, length));
  let body: ArrayBuffer;
  try {
    body = await res.arrayBuffer();
  } catch {
    if (abort.signal.aborted) throw abort.signal.reason;
    throw new UpstreamProtocolError("the upstream connection failed while sending the object", true, true);
  } finally {
    clearTimeout(timer);
  }
  if (body.byteLength !== length) throw new UpstreamProtocolError(`the upstream sent ${body.byteLength} of the ${length} bytes it announced`, true, true);
  const whole = new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  markOwnedBytes(whole);
  return whole;
}

/**
 * Up to this length wholeAnswer reads a body with arrayBuffer() (one await: the small answers of
 * the hot path), bounded by its whole deadline alone, at most s3.timeout plus 4 s. A longer body's
 * deadline leaves a silent upstream minutes (65 s for 1 MiB at s3.timeout 1, past
 * server.request_timeout: answered 504 there, and no other replica asked), so it is read chunk by
 * chunk and also failed after s3.timeout without a byte.
 */
const STALL_CHECKED_FROM = 64 * 1024;

/** wholeAnswer's read of a body over STALL_CHECKED_FROM: one timer, moved on only when it fires. */
async function readStallChecked(res: Response, length: number, abort: AbortController, timeoutMs: number): Promise<Response> {
  const from = performance.now();
  const due = from + framedTimeoutMs(timeoutMs, length);
  let last = from;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const check = () => {
    const now = performance.now();
    if (now >= due || now - last >= timeoutMs) abort.abort(new UpstreamTimeoutError(now >= due ? "the upstream sent the object too slowly" : "the upstream stalled while sending the object"));
    else timer = setTimeout(check, Math.min(due, last + timeoutMs) - now);
  };
  timer = setTimeout(check, Math.min(due - from, timeoutMs));
  let whole: Response;
  try {
    // (read as a body of unknown length up to `length`: answered as bytes when it ends within it)
    whole = await holdUnknownLength(res, length, abort.signal, () => {
      last = performance.now();
    });
  } finally {
    clearTimeout(timer);
  }
  const got = isOwnedBytes(whole) ? contentLengthOf(whole) : -1;
  if (got === length) return whole;
  whole.body?.cancel().catch(() => {});
  throw new UpstreamProtocolError(got < 0 ? `the upstream sent more than the ${length} bytes it announced` : `the upstream sent ${got} of the ${length} bytes it announced`, true, true);
}

/**
 * wholeAnswer for a write's answer: an empty one (a PUT's usual) has nothing to cut, so no timer and
 * no copy. A 2xx without a length is held (holdPaced) when the request says S3 sends it empty or
 * read whole (SendRequest.emptyAnswer, holdAnswer: `held`). A body still a stream after that is
 * stall-checked (resultStallChecked), but a GET's 2xx not held: an object streamed to its client.
 */
function writeAnswer(res: Response, upTo: number, abort: AbortController, timeoutMs: number, held: boolean | undefined, method: UpstreamMethod): Response | Promise<Response> {
  // (no body, a 204's: returned as it is)
  if (res.body === null || res.headers.get("content-length") === "0") return res;
  const length = contentLengthOf(res);
  if (held !== true || res.status < 200 || res.status > 299 || upTo <= 0 || length >= 0) {
    const read = wholeAnswer(res, upTo, abort, timeoutMs);
    // (one of a length up to upTo is read whole, bytes with nothing left to stall, and a GET's 2xx
    // is an object streamed to its client: neither takes the check's closure)
    if ((length >= 0 && length <= upTo) || (method === "GET" && held !== true && res.status >= 200 && res.status <= 299)) return read;
    return stallCheckedOnceRead(read, timeoutMs);
  }
  return stallCheckedOnceRead(holdPaced(res, upTo, abort, timeoutMs), timeoutMs);
}

/** resultStallChecked once `read` is in (its own function: a closure in writeAnswer made JSC give every call of it a scope). */
function stallCheckedOnceRead(read: Promise<Response>, timeoutMs: number): Promise<Response> {
  return read.then((answer) => resultStallChecked(answer, timeoutMs));
}

/**
 * `answer`, when its body is still a stream (a length over what wholeAnswer or holdPaced read, none
 * at all on an error, a result not held), with that body failed (GatewayTimeout: 504, S3 front 503
 * ServiceUnavailable) once a read waits `timeoutMs` (s3.timeout): the stall check the own client's
 * sweep makes on every body, which fetch has none of once the head is in. Every document read whole
 * from a fetch answer goes through here: a listing, ListParts, ListMultipartUploads, a tagging or
 * configuration document over server.buffer_threshold_bytes, an error body, a write's result
 * (CreateMultipartUpload, DeleteObjects, Complete, copies) that sent its head and then stalled
 * waited for server.request_timeout (or Bun's fetch's 5 minutes on a kept-alive answer).
 */
function resultStallChecked(answer: Response, timeoutMs: number): Response {
  if (answer.body === null || isOwnedBytes(answer)) return answer;
  const body = stallGuarded(answer.body, { ms: timeoutMs, budgetMs: Infinity, detail: () => "The upstream stalled while sending its answer" });
  return new Response(body, { status: answer.status, statusText: answer.statusText, headers: answer.headers });
}

/**
 * holdUnknownLength on fetch's answers (a GET's, a write's), as the own client holds one
 * (src/s3/http1/exchange.ts): the deadline moves with each chunk (heldBodyDue), so a body trickling
 * below the floor fails the attempt soon after s3.timeout, as a known length's does; and one
 * silent for s3.timeout fails it then, as the own client's sweep fails it (the moving deadline
 * alone gave a body silent after 512 KiB 34 s at s3.timeout 1: past server.request_timeout, no
 * other replica asked).
 */
export async function holdPaced(res: Response, upTo: number, abort: AbortController, timeoutMs: number): Promise<Response> {
  const from = performance.now();
  const cap = framedTimeoutMs(timeoutMs, upTo);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = (received: number) => {
    clearTimeout(timer);
    const due = heldBodyDue(from, timeoutMs, received, cap) - performance.now();
    const silent = timeoutMs < due;
    timer = setTimeout(() => abort.abort(new UpstreamTimeoutError(silent ? "the upstream stalled while sending the object" : "the upstream sent the object too slowly")), Math.max(0, silent ? timeoutMs : due));
  };
  arm(0);
  try {
    return await holdUnknownLength(res, upTo, abort.signal, arm);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A fetch answer of unknown length, read until it ends (then answered as bytes, with its length)
 * or passes `upTo` (then handed over as a stream: the chunks read so far, then the rest). A body
 * that fails before either is this attempt's failure (retried, failed over), not a 200 cut short.
 */
export async function holdUnknownLength(res: Response, upTo: number, signal: AbortSignal, progress?: (received: number) => void): Promise<Response> {
  const reader = res.body!.getReader();
  const held: Uint8Array[] = [];
  let bytes = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        // (answered as bytes of the Content-Length it now has, as an owned answer is)
        const headers = new Headers(res.headers);
        headers.delete("transfer-encoding");
        headers.set("content-length", String(bytes));
        const whole = new Response(held.length === 1 ? held[0] : Buffer.concat(held, bytes), { status: res.status, statusText: res.statusText, headers });
        markOwnedBytes(whole);
        return whole;
      }
      held.push(value);
      bytes += value.byteLength;
      if (bytes > upTo) break;
      progress?.(bytes);
    }
  } catch {
    reader.cancel().catch(() => {});
    if (signal.aborted) throw signal.reason;
    throw new UpstreamProtocolError("the upstream connection failed while sending the object", true, true);
  }
  let i = 0;
  const rest = new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      if (i < held.length) {
        ctrl.enqueue(held[i]!);
        held[i++] = EMPTY_BODY;
        return;
      }
      const { done, value } = await reader.read();
      if (done) ctrl.close();
      else ctrl.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return new Response(rest, { status: res.status, statusText: res.statusText, headers: res.headers });
}

/**
 * The slowest body Bun.serve's listener lets live: it restarts a connection's 60 s idle clock only
 * once 16 KiB x 60 = 960 KiB arrived since the last restart, and checks in 4 s ticks, so a client
 * can take up to 64 s per 960 KiB (15 KiB/s) and then stall for 64 s more before it is cut. A framed
 * upload's budget is counted at 12 KiB/s (below that, with a margin) plus that last stall and a
 * margin, so a client that stops sending is always cut by the listener first (its request ends as
 * the client's, 499, counted by no breaker), never answered 504 as if the upstream were slow: with
 * s3.timeout plus the body at 16 KiB/s, three clients that sent half of a 100-byte PUT and stopped
 * got 504 at ~25 s and opened the bucket's circuit breaker for everyone (and one that sent 959 KiB
 * at once, 2 KiB at 55 s, then nothing, got 504 at 88 s with the budget at a 70 s floor).
 */
const FRAMED_CLIENT_FLOOR_BYTES_PER_SECOND = 12 * 1024;
export const FRAMED_STALL_MS = (BUN_LISTENER_IDLE_SECONDS + 10) * 1000;

/** What in-process tests lower to see a silent upstream's timeout in seconds (production: FRAMED_STALL_MS). */
export const framedLimits = { stallMs: FRAMED_STALL_MS };

/** The whole-request budget of a framed upload of `contentLength` bytes (see fetchFramed). */
export function framedBudgetMs(timeoutMs: number, contentLength: number): number {
  return timerDelay(timeoutMs + Math.ceil((contentLength / FRAMED_CLIENT_FLOOR_BYTES_PER_SECOND) * 1000) + framedLimits.stallMs);
}

/**
 * One request whose body is a framed request body (src/http/framed-body.ts), handed to fetch as it
 * is: Bun pipes it without JavaScript per chunk, so no chunk is seen here and no idle timer of our
 * own can run. fetch's `timeout` is a budget for the WHOLE request, not an idle timer (Bun 1.4.5
 * checks it in 4 s ticks: it fires 4-8 s late): given s3.timeout alone, an upload still flowing
 * was cut after s3.timeout (503/504). It gets framedBudgetMs: s3.timeout plus the time the body
 * takes at 12 KiB/s plus 70 s, an upper bound for an upstream that takes the body and never
 * answers, past the longest a stalled client keeps the listener's connection. Stalls end sooner:
 * a client that stops sending leaves the listener's connection idle, which its idle timeout (60 s)
 * closes, and that cuts the upstream request; an upstream that stops reading leaves the client's
 * socket's receive queue full, which watchReceiveQueue sees after `timeoutMs` (504). Throws UpstreamTimeoutError for the budget; the client's abort
 * reason when the client left (the body failed with it, and fetch cut the upstream request short).
 */
export async function fetchFramed(
  fetchImpl: typeof fetch,
  method: UpstreamMethod,
  url: string,
  headers: Record<string, string>,
  body: ReadableStream<Uint8Array>,
  contentLength: number,
  clientSignal: AbortSignal,
  timeoutMs: number,
  timing: UpstreamTiming | undefined,
  answerUpTo: number,
  emptyAnswer?: boolean,
): Promise<Response> {
  headers["content-length"] = String(contentLength);
  // Given up by its deadline (request_timeout passed while an authorizer or the admission queue
  // held it): nothing is sent, as on the other paths; given up while sending: cut. A write the
  // client was told failed must never land later, over a newer one.
  if (timing?.abandoned !== undefined) {
    body.cancel(timing.abandoned).catch(() => {});
    throw timing.abandoned;
  }
  const ctrl = exchangeController(clientSignal, timing);
  const signal = ctrl.signal;
  // An upstream that stops reading the body: 504 after s3.timeout, as on the JavaScript path, not
  // the listener's idle cut 60 s later with no answer (logged as the client's 499).
  const peer = framedBodyPeer(body);
  const unwatch = peer === undefined ? undefined : watchReceiveQueue(peer, timeoutMs, () => ctrl.abort(new UpstreamTimeoutError("upstream stopped reading the request body")));
  try {
    // keepalive off toward an http endpoint: Bun's fetch pool keeps an idle socket ~5 minutes (not
    // the own client's 15 s), and a burst of uploads to an upstream that keeps idle connections
    // open held that many sockets that long. A streamed body goes on a fresh connection on the own
    // client too; a TCP connect is small beside a body over 64 KiB. (https keeps its pool: a TLS
    // handshake is not, and S3 closes idle connections itself.)
    const keepalive = !url.startsWith("http:");
    const res = fetchedAnswer(await fetchImpl(url, { method, headers, body, signal, decompress: false, redirect: "manual", duplex: "half", keepalive, timeout: framedBudgetMs(timeoutMs, contentLength) } as RequestInit));
    unwatch?.();
    return await writeAnswer(res, answerUpTo, ctrl, timeoutMs, emptyAnswer, method);
  } catch (err) {
    if (clientSignal.aborted) throw clientSignal.reason;
    if (timing?.abandoned !== undefined) throw timing.abandoned;
    if (signal.reason instanceof UpstreamTimeoutError) throw signal.reason;
    if ((err as Error)?.name === "TimeoutError") throw new UpstreamTimeoutError("the upload and the upstream's answer took longer than their budget");
    throw err;
  } finally {
    unwatch?.();
  }
}

/**
 * One controller for a fetch exchange's timeouts, the client's abort (forwarded by a listener, which
 * stays attached so a client abort also stops the body read: AbortSignal.any() cost ~10-15 % of
 * proxied req/s in bench/load.ts) and the request being given up by its deadline (abandonUpstream:
 * the exchange, its body read included, is cut).
 */
export function exchangeController(clientSignal: AbortSignal, timing: UpstreamTiming | undefined): AbortController {
  const ctrl = new AbortController();
  if (clientSignal.aborted) ctrl.abort(clientSignal.reason);
  else clientSignal.addEventListener("abort", () => ctrl.abort(clientSignal.reason), { once: true });
  if (timing !== undefined) {
    if (timing.abandoned !== undefined) ctrl.abort(timing.abandoned);
    else (timing.onAbandon ??= []).push(() => ctrl.abort(timing.abandoned));
  }
  return ctrl;
}

/**
 * One request over fetch. Throws UpstreamTimeoutError when the response head does not come within
 * `timeoutMs` of the body being handed over (or of the start, without a streamed body), or when
 * fetch stops taking body chunks for `timeoutMs`; the guard's RequestBodyError when the body failed.
 */
export async function fetchWithBody(
  fetchImpl: typeof fetch,
  method: UpstreamMethod,
  url: string,
  headers: Record<string, string>,
  body: Uint8Array | ReadableStream<Uint8Array> | null,
  contentLength: number | undefined,
  clientSignal: AbortSignal,
  timeoutMs: number,
  timing: UpstreamTiming | undefined,
  answerUpTo: number,
  emptyAnswer?: boolean,
): Promise<Response> {
  const ctrl = exchangeController(clientSignal, timing);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stallCheck: ReturnType<typeof setInterval> | undefined;
  // Set once the answer's head is in (or the attempt failed): a body that ends after an early answer must
  // not arm the head timer again, past the `finally` that cleared it (it aborted the answer
  // s3.timeout later, while the client was reading it).
  let settled = false;
  // The streamed body's last byte was handed to fetch (a success before it cannot be the store's).
  let bodySent = false;
  const armHeadTimer = () => {
    bodySent = true;
    if (stallCheck !== undefined) clearInterval(stallCheck);
    stallCheck = undefined;
    if (settled) return;
    timer = setTimeout(() => ctrl.abort(new UpstreamTimeoutError("upstream did not send response headers in time")), timeoutMs);
  };
  let init: Uint8Array | ReadableStream<Uint8Array> | undefined;
  let guarded: GuardedBody | undefined;
  if (body instanceof ReadableStream) {
    const g = guardedBodyStream(body, contentLength!, armHeadTimer);
    guarded = g;
    headers["content-length"] = String(contentLength);
    init = g.stream;
    // fetch pulls the next chunk once the previous one is written, so no pull for timeoutMs while
    // not waiting for the source means the upstream stopped reading.
    stallCheck = setInterval(() => {
      if (!g.waitingForSource && performance.now() - g.lastChunkAt > timeoutMs) ctrl.abort(new UpstreamTimeoutError("upstream stopped reading the request body"));
    }, Math.min(timeoutMs, 1000));
  } else {
    init = body ?? (method === "PUT" || method === "POST" ? EMPTY_BODY : undefined);
    armHeadTimer();
  }
  try {
    const res = fetchedAnswer(await fetchImpl(url, { method, headers, body: init, signal: ctrl.signal, decompress: false, redirect: "manual", duplex: "half" } as RequestInit));
    settled = true;
    clearTimeout(timer);
    if (guarded !== undefined && !bodySent && res.status < 300) {
      // (as the own client's: src/s3/http1/exchange.ts startBody)
      res.body?.cancel().catch(() => {});
      const err = new UpstreamProtocolError("upstream answered success before the request body was sent");
      ctrl.abort(err); // (fetch would go on sending the body)
      throw err;
    }
    // (a HEAD's answer has no body, whatever its Content-Length says)
    return method === "HEAD" ? res : await writeAnswer(res, answerUpTo, ctrl, timeoutMs, emptyAnswer, method);
  } catch (err) {
    guarded?.abandon(err);
    // The client's abort first: the guard may have seen the abandoned body as a short one.
    if (clientSignal.aborted) throw clientSignal.reason;
    if (guarded?.failure !== undefined) throw guarded.failure;
    if (ctrl.signal.aborted) throw ctrl.signal.reason;
    throw err;
  } finally {
    settled = true;
    clearTimeout(timer);
    if (stallCheck !== undefined) clearInterval(stallCheck);
  }
}
