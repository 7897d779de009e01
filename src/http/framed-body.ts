/**
 * A request's own body stream, framed by its Content-Length, handed to fetch() as it is.
 *
 * Why: Bun's fetch() takes a Bun.serve request body natively: no JavaScript runs per chunk. Read
 * chunk by chunk in JavaScript instead (the own client's StreamBodyWriter, or fetch with a stream
 * wrapped in JavaScript), a 100 MiB upload cost the proxy 1.74-1.84 s of CPU per GiB; handed over
 * natively 0.92 (bench/upload-floors.ts, same run: nginx proxy_pass with request buffering off
 * 1.43). With 2 cores shared by the client, the proxy and the origin, that CPU is throughput.
 *
 * It is safe only for a body that gives exactly its declared length or fails: the upstream then
 * sees a complete request or a cut one, never a complete request with the wrong bytes. Bun.serve
 * frames a body with Content-Length and no Transfer-Encoding itself: bytes past the length are
 * the next request, and a client that closes early (fully or half) aborts the request, which
 * makes fetch cut its upstream connection short (checked on Bun 1.4.5 with a raw upstream). A
 * body the proxy must check on the way (a payload hash, Content-MD5, checksums) or decode
 * (aws-chunked) is not framed: it goes through the JavaScript path.
 *
 * The node engine builds request bodies in JavaScript from node:http (listenNode marks them): they
 * are never framed.
 */
import type { SlowSource } from "../s3/aws-chunked/pump.ts";
import type { Peer } from "./receive-queue.ts";

const FRAMED_LENGTH: unique symbol = Symbol("yatagarasu.framedLength");
const JS_BODY: unique symbol = Symbol("yatagarasu.jsBody");
const PEER: unique symbol = Symbol("yatagarasu.peer");

interface Marks {
  [FRAMED_LENGTH]?: number;
  [JS_BODY]?: true;
  [PEER]?: () => Peer | undefined;
}

/**
 * Marks a Bun.serve request that announces a body of framedBodyLimits.minBytes or more with its
 * connection (see framedBodyPeer), asked only if its body is framed. Only such requests: a mark on
 * every PUT would cost each 1 KiB PutObject an allocation and give its Request another shape.
 */
export function markPeer(req: Request, srv: Pick<Bun.Server<undefined>, "requestIP" | "port">): void {
  const length = req.headers.get("content-length");
  if (length === null || !(Number(length) >= framedBodyLimits.minBytes)) return;
  // (asked later, when the body is handed over: requestIP reads the live connection)
  (req as Request & Marks)[PEER] = () => {
    const ip = srv.requestIP(req);
    return ip === null || srv.port === undefined ? undefined : { localPort: srv.port, address: ip.address, port: ip.port };
  };
}

/** The client's connection of a framed body, when the listener marked it (src/http/receive-queue.ts watches it). */
export function framedBodyPeer(stream: ReadableStream<Uint8Array>): Peer | undefined {
  return (stream as ReadableStream<Uint8Array> & Marks)[PEER]?.();
}

/** A request whose body is built in JavaScript (the node engine's): never handed over as framed. */
export function markJsBody(req: Request): void {
  (req as Request & Marks)[JS_BODY] = true;
}

/**
 * Whether the chunks `req.body` gives are the reader's own, to release once used (releaseChunk):
 * a Bun.serve body's are (each a fresh ArrayBuffer of its own); the node engine's come from
 * node:http Buffers, which may share memory, so never.
 */
export function ownsBodyChunks(req: Request): boolean {
  return (req as Request & Marks)[JS_BODY] !== true;
}

/**
 * Frees a request body chunk's memory now, not at the next garbage collection: the chunk's
 * ArrayBuffer is detached (ArrayBuffer.prototype.transfer to an empty one), so the caller must hold
 * no other view of it. Only a chunk that is its whole ArrayBuffer is released (a view into a larger
 * one may share it with others).
 *
 * Why: a body read in JavaScript leaves one 64 KiB ArrayBuffer of garbage per chunk, and Bun's
 * garbage collector lets tens of MiB of them pile up between collections: reading a 1 GiB
 * Bun.serve body chunk by chunk grew RSS by 35-43 MiB, 17-19 MiB with each chunk released once
 * copied (Bun 1.4.5, five runs each); a browser form upload's proxy grew by up to 65 MiB on a
 * loaded host before (the 64 MiB test failed once in CI).
 */
export function releaseChunk(chunk: Uint8Array): void {
  const buffer = chunk.buffer as ArrayBuffer & { transfer?: (n: number) => ArrayBuffer; detached?: boolean };
  if (chunk.byteOffset !== 0 || buffer.byteLength !== chunk.byteLength || buffer.detached === true || typeof buffer.transfer !== "function") return;
  try {
    buffer.transfer(0);
  } catch {
    // not detachable (a SharedArrayBuffer, a WebAssembly memory): left to the collector
  }
}

/** Bun.serve's idle timeout (seconds), set by listenBun. */
export const BUN_LISTENER_IDLE_SECONDS = 60;

/**
 * Bun.serve (uWebSockets underneath) counts a connection whose request body arrives slower than
 * 16 KiB/s as idle: unless 16 KiB x idleTimeout bytes arrive within one idle period, it closes
 * the connection when the period ends, with no answer, however steadily the bytes come (measured
 * on Bun 1.4.5: idleTimeout 10, a body at 10 KB/s cut after 12 s, at 15 KB/s kept; 1 byte/s cut
 * after 60 s with the proxy's 60). node:http under Bun has no such rule (10 B/s for 80 s kept).
 * As a SlowSource (the body pump's rule): `bytes` restart the listener's count (16 KiB x
 * idleTimeout); after `waitMs` spent waiting for the client (the period minus a margin) the proxy
 * answers first.
 */
export const LISTENER_SLOW_BYTES_PER_SECOND = 16 * 1024;
/**
 * The listener's rule for slow bodies: Bun.serve's, which the node engine applies too (server.ts
 * watchedNodeBody, the same 16 KiB per second of its 60 s idle period).
 */
export const LISTENER_SLOW_BODY: SlowSource = { bytes: LISTENER_SLOW_BYTES_PER_SECOND * BUN_LISTENER_IDLE_SECONDS, waitMs: (BUN_LISTENER_IDLE_SECONDS - 5) * 1000 };

/**
 * A body below this size is never handed over natively: it goes through the JavaScript path, whose
 * stall check and response-head timer (s3.timeout) see an upstream that stops reading.
 *
 * Why: handed over natively, no chunk is seen, so an upstream that takes the head and then reads
 * nothing cannot be told from a client that stopped sending (fetchFramed's budget waits out the
 * listener's idle period for the latter). A body that fits in the socket buffers on the way
 * leaves the client whole, so the listener never cuts it either: with s3.timeout 3 the client
 * waited 110 s for a 400 KB PUT, 240 s for 2 MB (Bun 1.4.5; on loopback an 8 MiB body still left
 * the client whole, a 32 MiB one did not). Larger bodies back up into the client, whose connection
 * the listener's idle timeout then closes. The JavaScript path costs ~1 ms of CPU per MiB more
 * (bench/upload-floors.ts), which an upload below this pays once.
 */
export const FRAMED_MIN_BYTES = 32 * 1024 * 1024;

/** What in-process tests lower to see the native path with small bodies (production: FRAMED_MIN_BYTES). */
export const framedBodyLimits = { minBytes: FRAMED_MIN_BYTES };

/**
 * `req.body`, marked as framed by `length` when the listener frames it (Content-Length, no
 * Transfer-Encoding, a Bun.serve body) and it is at least FRAMED_MIN_BYTES. Null for a request
 * without a body.
 */
export function framedRequestBody(req: Request, length: number): ReadableStream<Uint8Array> | null {
  const body = req.body as (ReadableStream<Uint8Array> & Marks) | null;
  if (body === null || length < framedBodyLimits.minBytes || (req as Request & Marks)[JS_BODY] === true || req.headers.get("transfer-encoding") !== null) return body;
  if (req.headers.get("content-length") !== String(length)) return body;
  body[FRAMED_LENGTH] = length;
  body[PEER] = (req as Request & Marks)[PEER];
  return body;
}

/** True when `stream` is a request body that gives exactly `length` bytes or fails (see above). */
export function isFramedBody(stream: ReadableStream<Uint8Array>, length: number): boolean {
  return (stream as ReadableStream<Uint8Array> & Marks)[FRAMED_LENGTH] === length && !stream.locked;
}
