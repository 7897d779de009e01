/**
 * Request rate limits: one global bucket, one bucket per client IP, one per S3 bucket.
 *
 * A request is admitted only if every applicable bucket has a token; tokens are taken from all of
 * them only then. So a client rejected by its per-IP limit does not drain the global budget.
 *
 * The per-IP table is bounded (the original project's map grew without limit):
 *  - entries idle for `idle_seconds` are dropped (swept lazily, at most once per clock second),
 *    but never before they have refilled: a dropped entry is a full bucket, so dropping one sooner
 *    gave a client that waited idle_seconds a whole burst again (100 an hour, idle 300 s: 100
 *    every five minutes);
 *  - the table never holds more than `max_entries`; inserting into a full table evicts the least
 *    recently used entry. An evicted client simply starts again with a full bucket —
 *    at worst one extra burst for that client, which is accepted in exchange for bounded memory.
 *
 * `share` (N worker processes): each process enforces rate/N and burst/N so the sum stays at the
 * configured totals. Buckets never hold less than one token (see TokenBucket), so a tiny
 * burst divided by many workers admits slightly more than configured rather than nothing.
 * `max_entries` is per process. `server.rate_limit.enabled: false` turns off the global and per-IP
 * limits only; a bucket's own `s3.rate_limit` applies whenever it is present.
 */
import type { RateConfig } from "../config/schema.ts";
import { LruMap } from "../util/lru.ts";
import { ADMIT, monotonicClock, TokenBucket, type Clock } from "./token-bucket.ts";

export type RateScope = "global" | "per_ip" | "bucket";
export type RateCheck = { ok: true } | { ok: false; scope: RateScope; retryAfterSeconds: number };

/** Shape of `server.rate_limit` after schema parsing. */
export interface ServerRateLimit {
  enabled?: boolean;
  global?: RateConfig;
  per_ip?: RateConfig & { max_entries: number; idle_seconds: number };
}

export interface RateLimiterOptions {
  /** Number of processes sharing the configured limits (default 1). */
  share?: number;
  now?: Clock;
}

/** The parts of the whole config the limiter reads. */
export interface RateLimitSource {
  server: { rate_limit?: ServerRateLimit };
  buckets: readonly { name: string; s3: { rate_limit?: RateConfig } }[];
}

export class RateLimiter {
  private readonly now: Clock;
  private readonly share: number;
  private readonly global: TokenBucket | undefined;
  private readonly ipRate: number = 0;
  private readonly ipBurst: number = 0;
  private readonly idleMs: number = 0;
  private readonly perIpOn: boolean;
  /** Least recently used first; entries are moved to the end on every access. */
  private readonly ips: LruMap<TokenBucket>;
  private readonly bucketLimits = new Map<string, TokenBucket>();
  private nextSweep = -Infinity;

  static fromConfig(cfg: RateLimitSource, opts: RateLimiterOptions = {}): RateLimiter {
    const buckets: Record<string, RateConfig | undefined> = {};
    for (const b of cfg.buckets) buckets[b.name] = b.s3.rate_limit;
    return new RateLimiter(cfg.server.rate_limit, buckets, opts);
  }

  constructor(
    server: ServerRateLimit | undefined,
    buckets: Record<string, RateConfig | undefined> = {},
    opts: RateLimiterOptions = {},
  ) {
    const share = opts.share ?? 1;
    if (!(share >= 1) || !Number.isFinite(share)) throw new RangeError("share must be a finite number >= 1");
    this.share = share;
    this.now = opts.now ?? monotonicClock;
    const on = server !== undefined && server.enabled !== false;
    this.global = on && server.global ? this.makeBucket(server.global) : undefined;
    const ip = on ? server.per_ip : undefined;
    this.perIpOn = ip !== undefined;
    if (ip) {
      this.ipRate = ip.requests_per_second / share;
      this.ipBurst = (ip.burst ?? ip.requests_per_second) / share;
      this.idleMs = Math.max(ip.idle_seconds * 1000, (Math.max(1, this.ipBurst) / this.ipRate) * 1000);
    }
    this.ips = new LruMap(ip ? Math.max(1, Math.floor(ip.max_entries)) : 1);
    for (const [name, rate] of Object.entries(buckets)) {
      if (rate) this.bucketLimits.set(name, this.makeBucket(rate));
    }
  }

  /** True when at least one limit is configured (callers may skip `check` otherwise). */
  get active(): boolean {
    return this.global !== undefined || this.perIpOn || this.bucketLimits.size > 0;
  }

  /** Current number of per-IP entries (never above `max_entries`). */
  get perIpSize(): number {
    return this.ips.size;
  }

  /**
   * Admits or rejects one request from `clientIp` to `bucket` (the configured bucket name; omit
   * when the request maps to no bucket). Scopes are checked global, per_ip, bucket; the first that
   * has no token is reported, with the wait until every scope has one.
   */
  check(clientIp: string, bucket?: string): RateCheck {
    const g = this.global;
    const ip = this.perIpOn ? this.ipEntry(clientIp) : undefined;
    const b = bucket === undefined ? undefined : this.bucketLimits.get(bucket);
    // Refill every bucket (this also stamps the per-IP entry's last-access time) before deciding.
    const gOk = g === undefined || g.available() >= 1;
    const ipOk = ip === undefined || ip.available() >= 1;
    const bOk = b === undefined || b.available() >= 1;
    if (!gOk || !ipOk || !bOk) {
      // Retry-After: until every short scope has a token (the first one's own wait sent a client
      // back to be refused by the next: 1 s for its address, then 100 s for the bucket).
      const wait = Math.max(gOk ? 1 : g!.retryAfter(1), ipOk ? 1 : ip!.retryAfter(1), bOk ? 1 : b!.retryAfter(1));
      return { ok: false, scope: !gOk ? "global" : !ipOk ? "per_ip" : "bucket", retryAfterSeconds: wait };
    }
    g?.consume();
    ip?.consume();
    b?.consume();
    return ADMIT;
  }

  /**
   * The `scope` limit (`key`: the address, or the bucket's name) was found spent at clock reading
   * `at`: its bucket here holds no more than it has refilled since (TokenBucket.drainedAt); a
   * per-IP entry is made for it if need be.
   */
  spentAt(scope: RateScope, key: string, at: number): void {
    const b = scope === "global" ? this.global : scope === "bucket" ? this.bucketLimits.get(key) : this.perIpOn ? this.ipEntry(key) : undefined;
    b?.drainedAt(at);
  }

  /** Drops per-IP entries idle for longer than `idle_seconds`. Called lazily by `check`. */
  prune(): void {
    const now = this.now();
    this.nextSweep = now + 1000;
    // Entries are in last-access order, so the idle ones are all at the front.
    for (let e = this.ips.oldest(); e !== undefined && now - e.last >= this.idleMs; e = this.ips.oldest()) {
      this.ips.deleteOldest();
    }
  }

  private ipEntry(clientIp: string): TokenBucket {
    if (this.now() >= this.nextSweep) this.prune();
    let entry = this.ips.get(clientIp);
    if (entry === undefined) {
      entry = new TokenBucket(this.ipRate, this.ipBurst, this.now);
      this.ips.insert(clientIp, entry); // evicts the least recently used entry when full
    }
    return entry;
  }

  private makeBucket(rate: RateConfig): TokenBucket {
    return new TokenBucket(rate.requests_per_second / this.share, (rate.burst ?? rate.requests_per_second) / this.share, this.now);
  }
}
