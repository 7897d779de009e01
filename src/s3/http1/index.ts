/**
 * The native HTTP/1.1 upstream client (plain-http endpoints), split by concern:
 *   pool.ts      connection pool, LIFO idle sockets, the sweep timer (timeouts, aborts)
 *   pools.ts     UpstreamPools: the pools of one process, owned by the App
 *   conn.ts      one socket and the shared socket handlers
 *   exchange.ts  one request/response: reading the head and the body off the socket
 *   request.ts   serializing the request head (pure)
 *   request-body.ts  sending a request body: exact length, last byte held back, backpressure
 *   head.ts      parsing the response head and deciding the framing (pure)
 *   chunked.ts   the chunked decoder (pure, incremental)
 *   body.ts      the ReadableStream source with backpressure
 *   errors.ts    UpstreamTimeoutError, UpstreamConnectTimeoutError, UpstreamProtocolError
 */

export { RequestBodyError, UpstreamConnectTimeoutError, UpstreamProtocolError, UpstreamTimeoutError } from "./errors.ts";
export { ExactLength, guardedBodyStream, isValidContentLength, type GuardedBody, type RequestBody } from "./request-body.ts";
export type { Http1Method } from "./request.ts";
export { Http1Pool, type Http1PoolOptions, type Http1RequestOptions } from "./pool.ts";
export { UpstreamPools } from "./pools.ts";

