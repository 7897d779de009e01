/**
 * A per-upstream circuit breaker.
 *
 *   closed ──(failure_threshold consecutive failures)──▶ open
 *   open ──(timeout_seconds elapsed)──▶ half_open
 *   half_open: at most half_open_max_requests probes in flight, others rejected;
 *              success_threshold successes ▶ closed, any failure ▶ open (timer restarts).
 *
 * What counts as a failure is the caller's decision (5xx, timeouts, connection errors — not 4xx).
 * Every admitted request must call `release(success)` exactly once; a second call is a no-op.
 * A release from a request admitted in an earlier state period (e.g. admitted while closed,
 * finishing while half-open) is ignored, so stale results never count as probe results.
 */
import type { CircuitBreakerConfig } from "../config/schema.ts";
import { monotonicClock, type Clock } from "./token-bucket.ts";

export type BreakerState = "closed" | "open" | "half_open";
export const BREAKER_STATE_CODE: Readonly<Record<BreakerState, 0 | 1 | 2>> = { closed: 0, open: 1, half_open: 2 };

export type Admission = { ok: true; release(success: boolean): void } | { ok: false; retryAfterSeconds: number };
export type StateChangeListener = (to: BreakerState, from: BreakerState) => void;

export class CircuitBreaker {
  private current: BreakerState = "closed";
  /** Incremented on every transition; releases from an older period are ignored. */
  private period = 0;
  private failures = 0;
  /** Consecutive streamed bodies that failed upstream after a good head (recordBody). */
  private bodyFailures = 0;
  private successes = 0;
  private probes = 0;
  private openedAt = 0;
  private readonly timeoutMs: number;

  constructor(
    private readonly cfg: CircuitBreakerConfig,
    private readonly now: Clock = monotonicClock,
    /** Called after every transition; exceptions it throws are swallowed. */
    public onStateChange?: StateChangeListener,
  ) {
    this.timeoutMs = cfg.timeout_seconds * 1000;
  }

  /** The current state; an open breaker whose timeout has passed reports (and becomes) half_open. */
  get state(): BreakerState {
    this.advance();
    return this.current;
  }

  /** 0 closed, 1 open, 2 half_open (the value of yatagarasu_circuit_breaker_state). */
  get stateCode(): 0 | 1 | 2 {
    return BREAKER_STATE_CODE[this.state];
  }

  tryAcquire(): Admission {
    this.advance();
    switch (this.current) {
      case "closed":
        return this.admit();
      case "open": {
        const left = Math.ceil((this.openedAt + this.timeoutMs - this.now()) / 1000);
        return { ok: false, retryAfterSeconds: left > 1 ? left : 1 };
      }
      case "half_open":
        if (this.probes >= this.cfg.half_open_max_requests) return { ok: false, retryAfterSeconds: 1 };
        this.probes++;
        return this.admit();
    }
  }

  private admit(): Admission {
    const period = this.period;
    let done = false;
    return {
      ok: true,
      release: (success: boolean) => {
        if (done) return;
        done = true;
        if (period === this.period) this.record(success);
      },
    };
  }

  /**
   * How a streamed body ended, after its request was released as a success at the response head:
   * whole, or failed on the upstream's side (cut, stalled). Body failures are counted apart
   * (consecutive, reset by a whole body), since every one of them follows a head that succeeded:
   * an upstream that answers heads and then cuts every body opens the breaker after
   * failure_threshold of them; in half-open, one opens it again.
   */
  recordBody(whole: boolean): void {
    if (whole) {
      this.bodyFailures = 0;
      return;
    }
    this.advance();
    if (this.current === "closed") {
      if (++this.bodyFailures >= this.cfg.failure_threshold) this.transition("open");
    } else if (this.current === "half_open") {
      this.transition("open");
    }
  }

  private record(success: boolean): void {
    if (this.current === "closed") {
      if (success) this.failures = 0;
      else if (++this.failures >= this.cfg.failure_threshold) this.transition("open");
    } else if (this.current === "half_open") {
      this.probes--;
      if (!success) this.transition("open");
      else if (++this.successes >= this.cfg.success_threshold) this.transition("closed");
    }
  }

  private advance(): void {
    if (this.current === "open" && this.now() - this.openedAt >= this.timeoutMs) this.transition("half_open");
  }

  private transition(to: BreakerState): void {
    const from = this.current;
    this.current = to;
    this.period++;
    this.failures = 0;
    this.bodyFailures = 0;
    this.successes = 0;
    this.probes = 0;
    if (to === "open") this.openedAt = this.now();
    if (this.onStateChange) {
      try {
        this.onStateChange(to, from);
      } catch {
        // A listener (metrics, logging) must never break request handling.
      }
    }
  }
}
