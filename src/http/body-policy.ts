/**
 * When a body is read whole before it is answered, in one place.
 *
 * Bun.serve drops Content-Length on a ReadableStream body (oven-sh/bun#10507) but keeps it for
 * bytes, so an upstream body whose declared length is at most server.buffer_threshold_bytes is
 * read whole and answered as bytes (exact Content-Length); larger ones stream. The own HTTP/1.1
 * upstream client reads such bodies itself before handing the response over (same threshold).
 * The node engine keeps an explicit Content-Length while streaming, so it only needs to buffer
 * small generated bodies that have none (errors, JSON).
 */

/** node engine: a body without Content-Length up to this size is buffered to give it one. */
export const SMALL_GENERATED_BODY_BYTES = 64 * 1024;

/** True when an upstream body that declared `length` bytes (-1: none) is read whole first. */
export function bufferUpstreamBody(length: number, threshold: number): boolean {
  return length >= 0 && length <= threshold;
}

/** A request announcing a body: a Content-Length other than 0, or Transfer-Encoding. */
export function announcesBody(h: Headers): boolean {
  const len = h.get("content-length");
  return (len !== null && len.trim() !== "0") || h.has("transfer-encoding");
}
