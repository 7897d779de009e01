/**
 * The set of upstream connection pools one process uses, owned by whoever creates it (the App):
 * no module-level state. Buckets that reach the same endpoint with the same Host share a pool.
 */
import { Http1Pool, type Http1PoolOptions } from "./pool.ts";

export class UpstreamPools {
  private readonly pools = new Map<string, Http1Pool>();

  /**
   * The pool for these options, made on first use. Keyed by endpoint, Host and body-buffering
   * limit (a reload that changes server.buffer_threshold_bytes gets a pool of its own); the other
   * options are the first caller's.
   */
  get(opts: Http1PoolOptions): Http1Pool {
    const key = `${opts.host}:${opts.port}|${opts.hostHeader}|${opts.bufferBodyUpTo ?? ""}`;
    let pool = this.pools.get(key);
    if (pool === undefined) {
      pool = new Http1Pool(opts);
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** Pools currently held. */
  get size(): number {
    return this.pools.size;
  }

  /**
   * After a reload: forget every pool not in `keep` and retire it (its idle sockets close now;
   * requests still in flight on it, or made by the old generation, finish; nothing is pooled
   * again). Returns how many were retired.
   */
  retainOnly(keep: Iterable<Http1Pool>): number {
    const kept = new Set(keep);
    let retired = 0;
    for (const [key, pool] of this.pools) {
      if (kept.has(pool)) continue;
      this.pools.delete(key);
      pool.retire();
      retired++;
    }
    return retired;
  }

  /** Shutdown: close every pool now (in-flight requests fail) and forget them. */
  close(): void {
    for (const pool of this.pools.values()) pool.close();
    this.pools.clear();
  }
}
