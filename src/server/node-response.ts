/**
 * Writing a fetch-style Response to a node:http ServerResponse (the node engine).
 *
 * A response whose body fails must never look complete to the client (a CDN would cache it):
 * - the body fails before the status line went out: the client gets an error answer instead
 *   (502, or 504 for an upstream stall), with the request id;
 * - it fails after: the connection is cut, so a chunked body lacks its terminating chunk and a
 *   Content-Length body is short. Never `res.end()` after a failure: that would complete it.
 *   (Bun's node:http answers `res.destroy()` before the head with a clean-looking empty 200, so
 *   the first case must answer explicitly.)
 * - a body longer or shorter than the Content-Length it was declared with is such a failure: no
 *   byte past the declared length is written (they would be read as the next response on the
 *   connection), and a short one is cut, never ended.
 *
 * A client that stops reading is bounded as Bun.serve's idleTimeout bounds it on the bun engine:
 * when the socket has taken nothing for `idleMs` (60 s) while a write waits for it, the connection
 * is destroyed (the body's stream is cancelled: its slot and upstream connection are released, and
 * the access log says ClientClosedRequest). Without it such a client held both forever. A reader
 * that keeps taking bytes, however slowly, is not cut; nor is a wait for the upstream
 * (request_timeout governs that).
 *
 * A body held in memory (a memory-cache hit, marked with its Blob, src/http/blob-body.ts) is written
 * in slices of SLICE_BYTES, one at a time as the socket takes them: its stream would hand node:http
 * large fresh buffers, which it keeps for a client that does not read (one copy of the object each).
 *
 * The result says what was sent and whether the body failed, for the access log and metrics.
 */
import { isLiveBody } from "../http/live-body.ts";
import type http from "node:http";
import { ProxyError, toProxyError } from "../errors.ts";
import { SMALL_GENERATED_BODY_BYTES } from "../http/body-policy.ts";
import { blobBodyOf } from "../http/blob-body.ts";
import { BUN_LISTENER_IDLE_SECONDS } from "../http/framed-body.ts";
import { reportSent } from "../http/delivery-report.ts";

/** How long a write may wait for a client that takes nothing (ms): Bun.serve's idleTimeout. */
export const NODE_IDLE_MS = BUN_LISTENER_IDLE_SECONDS * 1000;

/** The slices a body held in memory is written in. */
const SLICE_BYTES = 64 * 1024;

export interface NodeWriteResult {
  /** The status line sent (the Response's, or the error status that replaced it). */
  status: number;
  /** Body bytes handed to the socket. */
  bytes: number;
  /** Set when the response was not completed: the body failed (upstream) or the client went away. */
  error?: unknown;
  /** The error answer's code, when one replaced the response before its head went out. */
  code?: string;
}

class ClientGone extends Error {
  constructor() {
    super("client went away");
    this.name = "ClientGone";
  }
}

/** A body that does not match the Content-Length its head declares: the response is cut, never completed. */
class BodyLengthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BodyLengthError";
  }
}

/** The answer that replaces a response whose body failed before anything was sent. */
function failedBodyAnswer(err: unknown): ProxyError {
  const pe = toProxyError(err);
  // A body read that fails is the upstream's failure (fetch reports it as a TypeError), not ours.
  return pe.code === "InternalError" ? new ProxyError("BadGateway", { detail: "The upstream connection failed while sending the object", cause: err }) : pe;
}

/** What the writer reads a body from: the body's stream, or the slices of a Blob held in memory. */
interface BodySource {
  read(): Promise<{ done: true; value?: undefined } | { done: false; value: Uint8Array }>;
  cancel(): Promise<void>;
}

function blobSlices(blob: Blob): BodySource {
  let offset = 0;
  const size = blob.size;
  return {
    async read() {
      if (offset >= size) return { done: true };
      const start = offset;
      offset = Math.min(size, start + SLICE_BYTES);
      // (a copy of one slice: Bun has no view of a Blob's bytes)
      const value = await (start === 0 && offset === size ? blob : blob.slice(start, offset)).bytes();
      return { done: false, value };
    },
    cancel: () => Promise.resolve(),
  };
}

/**
 * Waits until the socket has taken what `res` holds ('drain'; 'finish' once ended), or the client
 * is gone. A client that takes nothing for `idleMs` (what `res` holds does not shrink) has its
 * connection destroyed.
 */
function drained(res: http.ServerResponse, idleMs: number, event: "drain" | "finish" = "drain"): Promise<void> {
  return new Promise<void>((resolve) => {
    let held = res.writableLength;
    let sent = res.socket?.bytesWritten;
    let lastProgress = performance.now();
    // Checked a few times per period: cut between idleMs and 1.25 × idleMs after the last byte taken.
    const timer = setInterval(
      () => {
        const now = performance.now();
        const socket = res.socket;
        // (a pipelined answer queued behind another has no socket yet: it waits its turn, it is
        // not idle; the socket taking the answer ahead of it is progress too)
        if (socket == null || res.writableLength !== held || socket.bytesWritten !== sent) {
          held = res.writableLength;
          sent = socket?.bytesWritten;
          lastProgress = now;
        } else if (now - lastProgress >= idleMs) {
          res.destroy(); // 'close' follows
        }
      },
      Math.max(1, Math.floor(idleMs / 4)),
    );
    const go = () => {
      clearInterval(timer);
      res.off(event, go);
      res.off("close", go);
      resolve();
    };
    res.once(event, go);
    res.once("close", go);
  });
}

/** How a listener writes an error it answers itself (the S3 front: S3's XML). */
export type ErrorAnswer = (err: ProxyError, requestId: string) => Response;

/** The plain front's (and the control plane's) JSON error. */
export const plainErrorAnswer: ErrorAnswer = (err, requestId) => err.toResponse(requestId);

export async function writeNodeResponse(res: http.ServerResponse, response: Response, isHead: boolean, idleMs = NODE_IDLE_MS, answerOf: ErrorAnswer = plainErrorAnswer): Promise<NodeWriteResult> {
  let result: NodeWriteResult = { status: response.status, bytes: 0, error: new Error("not written") };
  try {
    result = await write(res, response, isHead, idleMs, answerOf);
    return result;
  } finally {
    const e = result.error;
    reportSent(response, {
      status: result.status,
      bytes: result.bytes,
      error: e === undefined ? undefined : e instanceof ClientGone ? "ClientClosedRequest" : (result.code ?? "BodyIncomplete"),
      replaced: result.code !== undefined,
    });
  }
}

async function write(res: http.ServerResponse, response: Response, isHead: boolean, idleMs: number, answerOf: ErrorAnswer): Promise<NodeWriteResult> {
  res.statusCode = response.status;
  for (const [k, v] of response.headers) res.setHeader(k, v);
  const blob = blobBodyOf(response);
  const body = blob === undefined ? response.body : null;
  if ((!body && !blob) || isHead || response.status === 204 || response.status === 304) {
    body?.cancel().catch(() => {});
    res.end();
    return { status: response.status, bytes: 0 };
  }
  let reader: BodySource | undefined;
  let bytes = 0;
  // Small generated bodies (errors, JSON) without a length are buffered so they carry a
  // Content-Length too. An upstream body of unknown length (S3 answering chunked) is never
  // buffered whole: past SMALL_GENERATED_BODY_BYTES it streams chunked, with backpressure.
  const pending: Uint8Array[] = [];
  // The length the head declares: never more bytes than it (the rest would reach the client, on a
  // kept-alive connection, as the answer to its next request), nor a clean end before it (the
  // client would wait for the rest). Bun's node:http enforces neither.
  const declaredValue = response.headers.get("content-length");
  const declared = declaredValue !== null && /^\d{1,15}$/.test(declaredValue) ? Number(declaredValue) : -1;
  try {
    // (a file body, a disk-cache hit, is opened here: with no file descriptor left this throws)
    reader = blob !== undefined ? blobSlices(blob) : body!.getReader();
    if (declaredValue === null && !isLiveBody(response)) {
      let size = 0;
      while (size <= SMALL_GENERATED_BODY_BYTES) {
        const { done, value } = await reader.read();
        if (done) {
          const buf = Buffer.concat(pending);
          res.setHeader("content-length", buf.byteLength);
          res.end(buf);
          return { status: response.status, bytes: buf.byteLength };
        }
        pending.push(value);
        size += value.byteLength;
      }
    }
    for (;;) {
      const next = pending.shift();
      const { done, value } = next ? { done: false, value: next } : await reader.read();
      if (done) break;
      if (declared >= 0 && bytes + value.byteLength > declared) throw new BodyLengthError("a response body longer than its Content-Length");
      bytes += value.byteLength;
      if (!res.write(value)) {
        // 'close' may already have fired (client gone): waiting for it would hang forever.
        if (res.destroyed) throw new ClientGone();
        await drained(res, idleMs);
        if (res.destroyed) throw new ClientGone();
      }
    }
    if (declared >= 0 && bytes !== declared) throw new BodyLengthError("a response body shorter than its Content-Length");
    res.end();
    // The last bytes the socket has not taken yet are held to the same bound (else the connection
    // of a client that stopped reading stayed open forever).
    if (!res.writableFinished && !res.destroyed) void drained(res, idleMs, "finish");
    return { status: response.status, bytes };
  } catch (err) {
    (reader ?? body)?.cancel().catch(() => {});
    if (!res.headersSent && !res.destroyed && !(err instanceof ClientGone)) {
      // Nothing sent yet: answer the failure instead of a truncated (or empty) success.
      const pe = failedBodyAnswer(err);
      const answer = answerOf(pe, response.headers.get("x-request-id") ?? response.headers.get("x-amz-request-id") ?? "");
      const text = Buffer.from(await answer.arrayBuffer());
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      res.statusCode = answer.status;
      for (const [k, v] of answer.headers) res.setHeader(k, v);
      res.setHeader("content-length", text.byteLength);
      res.end(text);
      return { status: answer.status, bytes: text.byteLength, error: err, code: pe.code };
    }
    res.destroy();
    return { status: response.status, bytes, error: err };
  }
}
