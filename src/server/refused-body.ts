/**
 * The unread rest of a body whose answer is the connection's last (the request said
 * `Connection: close`): read and dropped before the answer is sent, within bounds.
 *
 * Why: both engines close the connection after such an answer, and a socket closed with bytes it
 * has not read goes out as a TCP reset (RFC 9112 §9.6, "the TCP reset problem"), which can reach
 * the client before it has read the answer. A refused upload (403 AccessDenied, 401...) answered
 * at once, before its body, was closed under a client still sending: @aws-sdk/client-s3 (2025
 * defaults: a stream body sent chunked, `Expect: 100-continue`, `Connection: close` on a fresh
 * client) got `write EPIPE` and no status 1-4 times in 12 for a 20 MiB body on the bun engine
 * (Bun.serve sends the 100 itself, so the body was already on its way); a raw client saw EPIPE
 * before it finished writing on both engines. Kept alive, a connection drains such a body on its
 * own (Bun.serve drops it, the node engine resumes it), so only answers that close wait for it.
 *
 * Bounds: REFUSED_DRAIN_BYTES and REFUSED_DRAIN_MS. Past either the answer goes out all the same
 * and the connection closes under the rest, as S3 does with a large refused upload (clients
 * reading the answer only after their whole body, boto's broken pipe, see the same there).
 *
 * Kept alive, the engines dropped any unread body at the client's pace (a PUT declaring 1 GiB,
 * refused 403 or 405 at once, was read for as long as the client sent, ~60 s and more), where S3
 * answers such a request and closes. A declared length past REFUSED_DRAIN_BYTES, or a chunked body
 * (its length untold), now has its answer close the connection as if the request had asked it to,
 * under the same bounds; a refused body of a declared length within them keeps its connection.
 */
import type http from "node:http";

/** At most this much of a refused body is read before its closing answer (a 64 MiB upload drains on loopback in ~30 ms). */
export const REFUSED_DRAIN_BYTES = 64 * 1024 * 1024;
/** ...and for at most this long (a client that withholds its body is not waited for longer). */
export const REFUSED_DRAIN_MS = 5_000;

/** What the tests lower. */
export const refusedDrainLimits = { bytes: REFUSED_DRAIN_BYTES, ms: REFUSED_DRAIN_MS };

/** Whether a Connection field value holds `close`. */
export function asksClose(connection: string | null | undefined): boolean {
  return connection != null && /(?:^|,)[ \t]*close[ \t]*(?:,|$)/i.test(connection);
}

/** Whether a body so framed may pass the byte bound: chunked, or a Content-Length above it (a request with both is refused by either engine). */
export function unboundedBody(contentLength: string | null | undefined, transferEncoding: string | null | undefined): boolean {
  return contentLength != null ? Number(contentLength) > refusedDrainLimits.bytes : transferEncoding != null;
}

/**
 * Whether `req`, whose answer closes its connection, has a body the handler left unread that the
 * drain can reach the end of: one whose Content-Length passes REFUSED_DRAIN_BYTES is answered at
 * once (read to the bound, it met the reset all the same, after waiting; a client that declared
 * 5 GiB and waits for the answer before sending waited REFUSED_DRAIN_MS for nothing).
 */
export function unreadBody(req: Request): boolean {
  if (req.body === null || req.bodyUsed || req.body.locked) return false;
  if (req.headers.get("transfer-encoding") !== null) return true;
  const length = Number(req.headers.get("content-length") ?? 0);
  return length > 0 && length <= refusedDrainLimits.bytes;
}

/** Reads and drops the rest of a Bun.serve request body, within the bounds; resolves (never rejects) when done or past them. */
export async function drainRefusedBody(body: ReadableStream<Uint8Array>): Promise<void> {
  const reader = body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, refusedDrainLimits.ms);
  });
  let read = 0;
  try {
    while (read <= refusedDrainLimits.bytes) {
      const r = await Promise.race([reader.read(), late.then(() => undefined)]);
      if (r === undefined || r.done) break;
      read += r.value.byteLength;
    }
  } catch {
    // the client went away or sent a malformed body: nothing more to read
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
}

/** The node engine's: waits until node:http has read (resumed, dropped) the rest of `req`, within the bounds. */
export function refusedBodyRead(req: http.IncomingMessage): Promise<void> {
  // (a declared length past the bound is not waited for: see unreadBody)
  if (req.complete || req.destroyed || Number(req.headers["content-length"] ?? 0) > refusedDrainLimits.bytes) return Promise.resolve();
  return new Promise((resolve) => {
    let read = 0;
    const done = () => {
      clearTimeout(timer);
      req.off("data", count);
      req.off("end", done);
      req.off("close", done);
      resolve();
    };
    const count = (chunk: Uint8Array) => {
      read += chunk.byteLength;
      if (read > refusedDrainLimits.bytes) done();
    };
    const timer = setTimeout(done, refusedDrainLimits.ms);
    req.on("data", count);
    req.on("end", done);
    req.on("close", done);
  });
}
