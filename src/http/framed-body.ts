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
const FRAMED_LENGTH: unique symbol = Symbol("yatagarasu.framedLength");
const JS_BODY: unique symbol = Symbol("yatagarasu.jsBody");

interface Marks {
  [FRAMED_LENGTH]?: number;
  [JS_BODY]?: true;
}

/** A request whose body is built in JavaScript (the node engine's): never handed over as framed. */
export function markJsBody(req: Request): void {
  (req as Request & Marks)[JS_BODY] = true;
}

/**
 * `req.body`, marked as framed by `length` when the listener frames it (Content-Length, no
 * Transfer-Encoding, a Bun.serve body). Null for a request without a body.
 */
export function framedRequestBody(req: Request, length: number): ReadableStream<Uint8Array> | null {
  const body = req.body as (ReadableStream<Uint8Array> & Marks) | null;
  if (body === null || (req as Request & Marks)[JS_BODY] === true || req.headers.get("transfer-encoding") !== null) return body;
  if (req.headers.get("content-length") !== String(length)) return body;
  body[FRAMED_LENGTH] = length;
  return body;
}

/** True when `stream` is a request body that gives exactly `length` bytes or fails (see above). */
export function isFramedBody(stream: ReadableStream<Uint8Array>, length: number): boolean {
  return (stream as ReadableStream<Uint8Array> & Marks)[FRAMED_LENGTH] === length && !stream.locked;
}
