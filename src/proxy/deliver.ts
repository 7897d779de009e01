/**
 * The step that always runs, once per request, after the body has been sent or has failed:
 * release the admission slot, count the request, write the access line.
 *
 * A body of known size (bytes, Blob) is handed to the listener whole, so it is accounted for when
 * the response is returned (on the node engine, when its writer reports it sent). A streamed body goes through `meteredBody`, which counts the bytes as
 * the listener pulls them and calls `finish` when the stream ends, errors or is cancelled. So the
 * log records the bytes actually sent, time to first byte and total time, and a body that broke
 * mid-stream is logged as the error it is, never as a 200 with its declared length.
 */
import { toProxyError } from "../errors.ts";
import { OBSERVE_BODY, type ObservableBody } from "../http/observed-body.ts";
import { onSent, writerReports, type Delivered } from "../http/delivery-report.ts";
import { clientIp, isWriteAction, type RequestContext } from "./context.ts";
import { accessLevel } from "../observe/log.ts";
import { endRequestSpan } from "../observe/trace/request.ts";
import type { UpstreamTiming } from "../s3/upstream.ts";
import { PROCESS_HOST_ID } from "../fronts/s3/errors.ts";

export function deliver(ctx: RequestContext, res: Response): Response {
  // The client left before the answer was ready (a cache fill it waited on, which goes on for
  // the others, finished after it left): nothing will be sent, so it is logged and audited as
  // the 499 ClientClosedRequest it is, never as a 200 with the bytes it did not get.
  if (ctx.req.signal.aborted) return gone(ctx, res);
  ctx.status = res.status;
  res.headers.set("x-request-id", ctx.id);
  // S3 answers every request with x-amz-request-id and x-amz-id-2: the SDKs report them (RequestId,
  // the extended request id) with each call. (An error's x-amz-id-2 names its request: kept; the
  // status, not a header lookup, tells it.)
  if (ctx.front === "s3") {
    res.headers.set("x-amz-request-id", ctx.id);
    if (res.status < 400) res.headers.set("x-amz-id-2", PROCESS_HOST_ID);
  }
  // Stopping (a stop signal, its shutdown_delay included): the connection is closed after this
  // answer, and says so, as the node engine's listener does. Bun.serve closed it silently after the
  // answer: a keep-alive client (Python's http.client, boto3) that reused it got RemoteDisconnected.
  if (ctx.svc.draining) res.headers.set("connection", "close");
  ctx.ttfbMs = performance.now() - ctx.start;
  if (ctx.streaming) return res;
  // A body of known size on the node engine: its writer says what the client really got (it left
  // mid-body, or the file of a disk-cache hit could not be opened or read), logged when it is sent.
  // (The engine first: reading `res.body` makes Bun wrap a bytes or Blob body in a ReadableStream
  // and its source, two objects per answer for the collector: +0.3 to +1.3 µs per answer in a hot
  // loop with its GC, bench/README.md "Where the time goes".)
  if (writerReports(ctx.req) && res.body !== null) onSent(res, (d) => sent(ctx, d));
  else finish(ctx);
  return res;
}

function sent(ctx: RequestContext, d: Delivered | undefined): void {
  // (held back while a refused body is drained: the slots go now, the line when it is sent)
  if (d === undefined) return leaveSlots(ctx);
  ctx.status = d.status;
  ctx.bytes = d.bytes;
  if (d.replaced) ctx.errorCode = d.error;
  else if (d.error !== undefined) ctx.bodyError = d.error;
  finish(ctx);
}

function gone(ctx: RequestContext, res: Response): Response {
  ctx.status = 499;
  ctx.errorCode = "ClientClosedRequest";
  ctx.bodyError = undefined;
  ctx.streaming = false;
  ctx.bytes = 0;
  ctx.ttfbMs = performance.now() - ctx.start;
  finish(ctx);
  res.body?.cancel().catch(() => {});
  return new Response(null, { status: 499 });
}

/** The error codes of a 503 that tells the client to slow down (S3's SlowDown; the plain front's Overloaded, a concurrency or upload cap). */
function isThrottle(code: string | undefined): boolean {
  return code === "SlowDown" || code === "Overloaded";
}

/** Gives back the request's admission and upload slots (once). */
function leaveSlots(ctx: RequestContext): void {
  if (ctx.entered !== undefined) ctx.svc.concurrency.leave(ctx.entered);
  if (ctx.uploadSlot !== undefined) ctx.svc.uploads.leave(ctx.uploadSlot);
  ctx.entered = ctx.uploadSlot = undefined;
}

export function finish(ctx: RequestContext): void {
  if (ctx.finished) return;
  ctx.finished = true;
  ctx.streaming = false;
  const svc = ctx.svc;
  leaveSlots(ctx);
  svc.metrics.inFlight(-1);
  svc.metrics.observeRequest(ctx.bucketName, ctx.method, ctx.status, ctx.ttfbMs / 1000, ctx.bytes);
  if (ctx.bodyError !== undefined) svc.metrics.bodyFailed(ctx.bucketName, ctx.bodyError);
  // (a limit's refusal or the upstream's SlowDown: a 503 that is no failure, told apart for the error-ratio alert)
  if (ctx.status === 503 && isThrottle(ctx.errorCode ?? ctx.s3Code)) svc.metrics.throttle(ctx.bucketName);
  const write = writeOperationOf(ctx);
  // (an error code with a status below 400: a failure S3-style after a 200 head, src/fronts/s3/patient.ts)
  if (write !== undefined) svc.metrics.observeWrite(ctx.bucketName, write, ctx.status, ctx.status >= 400 || ctx.bodyError !== undefined || ctx.errorCode !== undefined ? (ctx.errorCode ?? ctx.s3Code ?? ctx.bodyError) : undefined);
  if (ctx.bytesIn !== undefined) svc.metrics.receivedBytes(ctx.bucketName, ctx.bytesIn);
  svc.audit?.record(ctx);
  const log = svc.log;
  if (ctx.bodyError !== undefined && ctx.bodyError !== "ClientClosedRequest") {
    log.warn("response body failed", { request_id: ctx.id, bucket: ctx.bucketName, status: ctx.status, bytes: ctx.bytes, declared_bytes: ctx.declaredBytes >= 0 ? ctx.declaredBytes : undefined, error: ctx.bodyError });
  }
  // (at the line's own level: a 5xx is at warn, which a log at warn keeps)
  if (log.enabled(accessLevel(ctx.status, ctx.bucketName, ctx.errorCode))) {
    const total = performance.now() - ctx.start;
    log.access({
      request_id: ctx.id,
      method: ctx.method,
      path: ctx.path,
      bucket: ctx.bucketName,
      status: ctx.status,
      bytes: ctx.bytes,
      duration_ms: Math.round(total * 1000) / 1000,
      ttfb_ms: Math.round(ctx.ttfbMs * 1000) / 1000,
      // (with an attempt still in flight: a cache fill its client left goes on without it, and a
      // drain cut by shutdown_timeout writes the line before the attempt ends)
      upstream_ms: Math.round(waitedUpstream(ctx.timing) * 1000) / 1000,
      client_ip: clientIp(ctx),
      front: ctx.front === "plain" ? undefined : ctx.front,
      operation: ctx.operation,
      copy_source: ctx.copySource,
      bytes_in: ctx.bytesIn,
      subject: ctx.subject,
      session: ctx.session,
      presigned: ctx.presigned ? true : undefined,
      cache: ctx.cache,
      error: ctx.bodyError ?? ctx.errorCode,
      reason: ctx.bodyError === undefined ? ctx.errorReason : undefined,
      s3_error: ctx.s3Code,
      s3_request_id: ctx.s3RequestId,
      access_key_id: ctx.accessKeyId,
      upstream_error: ctx.upstreamError,
      attempts: ctx.timing.attempts > 1 ? ctx.timing.attempts : undefined,
      replica: ctx.timing.replica,
      trace_id: ctx.traceId,
      span_id: ctx.spanId,
    });
  }
  // Tracing: the request's server span ends with its body (src/observe/trace/request.ts).
  if (ctx.span !== undefined) endRequestSpan(ctx, ctx.span);
}

/** The S3 front's listings of a bucket's uploads and of an upload's parts. */
const UPLOAD_LISTINGS: ReadonlySet<string> = new Set(["ListParts", "ListMultipartUploads"]);

/**
 * The write a request is, as the metrics name it: the S3 front's operation when its action writes
 * (PutObject, UploadPart, CompleteMultipartUpload, CopyObject, DeleteObjects, PostObject, ...,
 * named even when the request was refused before its signature verified), and the plain front's
 * PUT and DELETE (refused or not). Undefined for reads, listings and the presign endpoint.
 */
function writeOperationOf(ctx: RequestContext): string | undefined {
  // (ListParts and ListMultipartUploads have write actions, as a read-only bucket refuses them, but are listings)
  if (ctx.front === "s3") return ctx.operation !== undefined && isWriteAction(ctx.action) && !UPLOAD_LISTINGS.has(ctx.operation) ? ctx.operation : undefined;
  if (ctx.front !== "plain") return undefined;
  return ctx.method === "PUT" ? "PutObject" : ctx.method === "DELETE" ? "DeleteObject" : undefined;
}

/** The error code a failed body read is logged under. */
function bodyErrorCode(ctx: RequestContext, err: unknown): string {
  if (ctx.req.signal.aborted) return "ClientClosedRequest";
  const e = toProxyError(err);
  if (e.code === "GatewayTimeout") return "UpstreamStalled";
  return "UpstreamBodyIncomplete";
}

/**
 * Wraps a streamed body so the bytes are counted as the listener pulls them, and `finish` runs
 * when it ends. `declared` is the Content-Length announced (-1 if none): a body that ends short of
 * it is a failure. A failure errors the client-facing stream with `undefined`, which makes Bun.serve
 * (and the node writer) cut the connection without completing the response, so no client or cache
 * can take a truncated body for a whole one; an Error value would also make Bun print an
 * unstructured stack trace on stderr (the failure is logged here instead, with the request id).
 */
export function meteredBody(ctx: RequestContext, src: ReadableStream<Uint8Array>, declared: number): ReadableStream<Uint8Array> {
  ctx.streaming = true;
  ctx.declaredBytes = declared;
  // A source that reports its own progress (the own HTTP/1.1 client, which also enforces the
  // declared length) is observed, not wrapped: no extra stream layer per chunk.
  const observe = (src as ReadableStream<Uint8Array> & ObservableBody)[OBSERVE_BODY];
  if (observe !== undefined) {
    observe({
      data(n) {
        ctx.bytes += n;
      },
      end(error, cancelled) {
        if (cancelled) ctx.bodyError = "ClientClosedRequest";
        else if (error !== undefined) ctx.bodyError = bodyErrorCode(ctx, error);
        else if (declared >= 0 && ctx.bytes !== declared) ctx.bodyError = "UpstreamBodyIncomplete";
        // A body that ended before its response was delivered (a small body complete in the
        // first packet, reported as the observer attaches): `deliver` finishes it, status known.
        if (ctx.status === 0) ctx.streaming = false;
        else finish(ctx);
      },
    });
    return src;
  }
  const reader = src.getReader();
  const fail = (c: ReadableStreamDefaultController<Uint8Array>, code: string) => {
    ctx.bodyError = code;
    finish(ctx);
    c.error(undefined);
  };
  return new ReadableStream<Uint8Array>(
    {
      pull(c) {
        return reader.read().then(
          (r) => {
            if (r.done) {
              if (declared >= 0 && ctx.bytes !== declared) return fail(c, "UpstreamBodyIncomplete");
              finish(ctx);
              c.close();
              return;
            }
            ctx.bytes += r.value.byteLength;
            if (declared >= 0 && ctx.bytes > declared) {
              reader.cancel().catch(() => {});
              return fail(c, "UpstreamBodyTooLong");
            }
            c.enqueue(r.value);
          },
          (err) => fail(c, bodyErrorCode(ctx, err)),
        );
      },
      cancel(reason) {
        if (!ctx.finished) {
          ctx.bodyError = "ClientClosedRequest";
          finish(ctx);
        }
        return reader.cancel(reason).catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * The time a request waited on the upstream so far, its attempt in flight included, and its cache
 * fill's (a fill runs under a timing of its own: fillRead), whose client may leave before it ends.
 */
function waitedUpstream(t: UpstreamTiming, now = performance.now()): number {
  const own = t.upstreamMs + (t.attemptFrom === undefined ? 0 : now - t.attemptFrom);
  return t.fill === undefined ? own : own + waitedUpstream(t.fill, now);
}
