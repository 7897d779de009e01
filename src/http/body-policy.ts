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
import { drainRefusedBody } from "../server/refused-body.ts";

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

/**
 * A body announced by Transfer-Encoding alone (chunked: no Content-Length, or 0), whose length is
 * told only when it ends, so that it may be empty: `0\r\n\r\n` (some HTTP stacks frame every
 * request so, bodiless ones too; S3 accepts them).
 */
export function chunkedOnly(h: Headers): boolean {
  const len = h.get("content-length");
  return (len === null || len.trim() === "0") && h.has("transfer-encoding");
}

/**
 * Whether a chunked body (chunkedOnly) turns out empty, for a request that takes none: read until
 * it ends or shows a byte. One that is not empty is read and dropped within the refused-body
 * drain's bounds (src/server/refused-body.ts) before its refusal, which then closes the connection
 * (REFUSED_BODY_CLOSE), as the refusal of a chunked body left unread does. A body that fails
 * (malformed, the client gone) is not empty. ctx.readingBody is set meanwhile: a client that
 * never ends its body is late (RequestTimeout), not the upstream.
 */
export async function chunkedBodyEmpty(req: Request, ctx: { readingBody: boolean }): Promise<boolean> {
  const body = req.body;
  if (body === null) return true;
  ctx.readingBody = true;
  const reader = body.getReader();
  let empty = false;
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) empty = true;
      if (r.done || r.value.byteLength > 0) break;
    }
  } catch {
    // (failed: not empty)
  } finally {
    reader.releaseLock();
  }
  if (!empty) await drainRefusedBody(body);
  ctx.readingBody = false;
  return empty;
}

/** The headers of a refusal after chunkedBodyEmpty found a body: the connection closes (the drain may have stopped at its bounds). */
export const REFUSED_BODY_CLOSE: Readonly<Record<string, string>> = Object.freeze({ connection: "close" });

/**
 * A Content-Length sent twice with one value, which the listeners join ("2, 2"), made that one
 * value again, in place (RFC 9110 §8.6 lets a recipient do so; S3 and Go's server do). Go programs
 * that copy a presigned request's signed headers send `Content-Length` and `content-length`
 * (rclone before 1.59 on every single-part upload): left joined, the SigV4 check ran over "2, 2"
 * and refused them. Differing values never get here: both listeners answer those 400.
 */
export function collapseRepeatedLength(h: Headers): void {
  const len = h.get("content-length");
  if (len === null || !len.includes(",")) return;
  const values = len.split(",").map((v) => v.trim());
  if (values.every((v) => v === values[0])) h.set("content-length", values[0]!);
}
