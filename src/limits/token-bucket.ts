/**
 * A token bucket with continuous refill. Pure: the clock is injected (milliseconds, monotonic
 * preferred — `performance.now()` is the default), so tests drive time by hand.
 */

export type Clock = () => number;
export const monotonicClock: Clock = () => performance.now();

/**
 * The longest Retry-After sent, in seconds: 2^31, what RFC 9111 (1.2.2) has a recipient take for
 * any larger delay. A config's `requests_per_second: 1e-300` waited 1e300 s for a token, and
 * String() wrote that `9.999999999999999e+299`, which is no delay-seconds.
 */
export const MAX_RETRY_AFTER = 2 ** 31;

export type TakeResult = { ok: true } | { ok: false; retryAfterSeconds: number };

/** The one admitted result, shared so the hot path does not allocate. */
export const ADMIT: { readonly ok: true } = Object.freeze({ ok: true as const });

export class TokenBucket {
  /** Capacity; at least 1 so a bucket can always admit a single request eventually. */
  readonly capacity: number;
  private tokens: number;
  /** Clock reading at the last refill (also "last seen" for the per-IP table). */
  last: number;

  constructor(
    readonly ratePerSec: number,
    burst: number,
    private readonly now: Clock = monotonicClock,
  ) {
    if (!(ratePerSec > 0) || !Number.isFinite(ratePerSec)) throw new RangeError("ratePerSec must be a positive number");
    if (!(burst > 0)) throw new RangeError("burst must be positive");
    this.capacity = Math.max(1, burst);
    this.tokens = this.capacity;
    this.last = now();
  }

  /** Refills up to `now` and returns the tokens currently available. */
  available(): number {
    const t = this.now();
    const elapsed = t - this.last;
    // A clock that steps backwards must neither add nor remove tokens.
    if (elapsed > 0) {
      const next = this.tokens + (elapsed * this.ratePerSec) / 1000;
      this.tokens = next < this.capacity ? next : this.capacity;
    }
    this.last = t;
    return this.tokens;
  }

  /**
   * Takes `n` tokens if available. Otherwise nothing is taken and the answer carries the whole
   * seconds (at least 1) until `n` tokens — for the default n = 1, one token — will be there.
   */
  take(n = 1): TakeResult {
    if (this.available() >= n) {
      this.tokens -= n;
      return ADMIT;
    }
    return { ok: false, retryAfterSeconds: this.retryAfter(n) };
  }

  /**
   * As if the bucket had been left with one token at clock reading `at` (≤ now) and refilled at its
   * rate since, unless it holds less: a bucket known spent then (elsewhere: a shared limit refused).
   */
  drainedAt(at: number): void {
    const t = this.available();
    const refilled = 1 + ((this.last - at) * this.ratePerSec) / 1000;
    if (refilled < t) this.tokens = refilled;
  }

  /** Removes `n` tokens without checking (the caller has checked with `available()`). */
  consume(n = 1): void {
    this.tokens -= n;
  }

  /** Whole seconds until `n` tokens are available (n capped at capacity), minimum 1, at most MAX_RETRY_AFTER. */
  retryAfter(n = 1): number {
    const missing = Math.min(n, this.capacity) - this.tokens;
    // The epsilon keeps float noise (1.0000000000000002 s) from costing a whole extra second.
    const s = Math.ceil(missing / this.ratePerSec - 1e-9);
    return s > 1 ? (s < MAX_RETRY_AFTER ? s : MAX_RETRY_AFTER) : 1;
  }
}
