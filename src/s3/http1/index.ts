/**
 * The native HTTP/1.1 upstream client (plain-http endpoints), split by concern:
 *   pool.ts      connection pool, LIFO idle sockets, the sweep timer (timeouts, aborts)
 *   pools.ts     UpstreamPools: the pools of one process, owned by the App
 *   conn.ts      one socket and the shared socket handlers
 *   exchange.ts  one request/response: reading the head and the body off the socket
 *   request.ts   serializing the request head (pure)
 *   head.ts      parsing the response head and deciding the framing (pure)
 *   chunked.ts   the chunked decoder (pure, incremental)
 *   body.ts      the ReadableStream source with backpressure
 *   errors.ts    UpstreamTimeoutError, UpstreamConnectTimeoutError, UpstreamProtocolError
 */
import type { Http1Pool, Http1PoolOptions } from "./pool.ts";
import { UpstreamPools } from "./pools.ts";

export { UpstreamConnectTimeoutError, UpstreamProtocolError, UpstreamTimeoutError } from "./errors.ts";
export { Http1Pool, type Http1PoolOptions, type Http1RequestOptions } from "./pool.ts";
export { UpstreamPools } from "./pools.ts";

/**
 * Transitional: one process-wide UpstreamPools for callers that are not handed one yet.
 * @deprecated pass an App-owned UpstreamPools instead (BucketUpstream's `pools` dependency).
 */
export const defaultPools = new UpstreamPools();

/** @deprecated use UpstreamPools.get. */
export function sharedPool(opts: Http1PoolOptions): Http1Pool {
  return defaultPools.get(opts);
}

/** @deprecated use UpstreamPools.close. */
export function closeSharedPools(): void {
  defaultPools.close();
}
