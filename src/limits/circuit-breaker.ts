/**
 * A per-upstream circuit breaker.
 *
 *   closed ──(failure_threshold consecutive failures)──▶ open
 *   open ──(timeout_seconds elapsed)──▶ half_open
 *   half_open: at most half_open_max_requests probes in flight, others rejected;
 *              success_threshold successes ▶ closed, any failure ▶ open (timer restarts).
 *
 * What counts as a failure is the caller's decision (5xx, timeouts, connection errors — not 4xx).
 * Every admitted request must call `release(success)` or `drop()` exactly once; a second call is a
 * no-op. `drop()` is for a request whose outcome says nothing about the upstream (its client went
 * away, its upload body failed): it frees a half-open probe slot and counts neither way, so an
 * abandoned probe cannot close the breaker, nor an abandoned request reset the failure streak.
 * A release, a drop, or a body's end (`bodyEnded`) from a request admitted in an earlier state
 * period (e.g. admitted while closed, finishing while half-open) is ignored, so stale results
 * never count as probe results, nor reopen (or reset the body streak of) a breaker that moved on.
 */
import type { CircuitBreakerConfig } from "../config/schema.ts";
import { monotonicClock, type Clock } from "./token-bucket.ts";

export type BreakerState = "closed" | "open" | "half_open";
export const BREAKER_STATE_CODE: Readonly<Record<BreakerState, 0 | 1 | 2>> = { closed: 0, open: 1, half_open: 2 };

/** An admitted request's handle: see the module comment. */
export interface Ticket {
  readonly ok: true;
  /** The request's outcome: a success or a failure of the upstream. */
  release(success: boolean): void;
  /** The request ended without saying anything about the upstream: frees its slot, counts nothing. */
  drop(): void;
  /**
   * How the request's streamed body ended, after a successful release (see recordBody). Shared by
   * the requests of one state period (no allocation per request).
   */
  readonly bodyEnded: (whole: boolean) => void;
}

export type Admission = Ticket | { ok: false; retryAfterSeconds: number };

/** One admitted request (a class: one allocation per request, its methods shared). */
class Admitted implements Ticket {
  readonly ok = true as const;
  private done = false;
  readonly bodyEnded: (whole: boolean) => void;
  constructor(
    private readonly breaker: CircuitBreaker,
    private readonly period: number,
    /** Holds one of half-open's half_open_max_requests probe slots (see tryAcquire's `slot`). */
    private readonly slot: boolean,
  ) {
    this.bodyEnded = breaker.bodyRecorder;
  }
  release(success: boolean): void {
    if (this.done) return;
    this.done = true;
    this.breaker.settle(this.period, success, this.slot);
  }
  drop(): void {
    if (this.done) return;
    this.done = true;
    this.breaker.settle(this.period, undefined, this.slot);
  }
}
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
  /** recordBody for the requests admitted in the current period (replaced on every transition; a ticket's bodyEnded). */
  bodyRecorder: (whole: boolean) => void = this.recorderFor(0);

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

  /**
   * `slot: false` admits a half-open request without taking a probe slot: one whose duration is
   * its client's, not the upstream's (an upload whose body arrives at the client's pace). Holding a
   * slot, a slow upload refused every other request of the bucket for as long as its body took,
   * over an upstream that already answered. Its outcome still counts.
   */
  tryAcquire(slot = true): Admission {
    this.advance();
    switch (this.current) {
      case "closed":
        return this.admit(false);
      case "open": {
        const left = Math.ceil((this.openedAt + this.timeoutMs - this.now()) / 1000);
        return { ok: false, retryAfterSeconds: left > 1 ? left : 1 };
      }
      case "half_open":
        if (!slot) return this.admit(false);
        if (this.probes >= this.cfg.half_open_max_requests) return { ok: false, retryAfterSeconds: 1 };
        this.probes++;
        return this.admit(true);
    }
  }

  /**
   * A successful readiness probe of the upstream: in half-open, one trial success (without a
   * slot). A replica no read reaches (a healthy primary ahead of it), or a bucket without traffic,
   * never closed its half-open breaker: its state gauge said 2 and the breaker alerts fired for
   * good over an upstream that answered every probe. Elsewhere nothing: a closed breaker's failure
   * streak is the data path's, and a failed probe is no trial (a probe refused for its own reasons,
   * a HEAD of the bucket under credentials that may read objects only, must not reopen it).
   */
  probeSucceeded(): void {
    if (this.state === "half_open") this.settle(this.period, true, false);
  }

  private admit(slot: boolean): Admission {
    return new Admitted(this, this.period, slot);
  }

  /** A ticket's release (`success`) or drop (undefined): for Admitted only. Ignored when it comes from an earlier period. */
  settle(period: number, success: boolean | undefined, slot = true): void {
    if (period !== this.period) return;
    if (this.current === "closed") {
      if (success === true) this.failures = 0;
      else if (success === false && ++this.failures >= this.cfg.failure_threshold) this.transition("open");
    } else if (this.current === "half_open") {
      if (slot) this.probes--;
      if (success === false) this.transition("open");
      else if (success === true && ++this.successes >= this.cfg.success_threshold) this.transition("closed");
    }
  }

  /**
   * How a streamed body ended, after its request was released as a success at the response head:
   * whole, or failed on the upstream's side (cut, stalled). Body failures are counted apart
   * (consecutive, reset by a whole body), since every one of them follows a head that succeeded:
   * an upstream that answers heads and then cuts every body opens the breaker after
   * failure_threshold of them; in half-open, one opens it again. `period`: the state period the
   * request was admitted in (a ticket's bodyEnded passes it); a body of an earlier one is ignored.
   */
  recordBody(whole: boolean, period: number): void {
    if (period !== this.period) return;
    if (whole) {
      this.bodyFailures = 0;
      return;
    }
    // (the state is the one the request was admitted in, closed or half-open: any transition starts a new period)
    if (this.current === "closed") {
      if (++this.bodyFailures >= this.cfg.failure_threshold) this.transition("open");
    } else if (this.current === "half_open") {
      this.transition("open");
    }
  }

  private recorderFor(period: number): (whole: boolean) => void {
    return (whole) => this.recordBody(whole, period);
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
    this.bodyRecorder = this.recorderFor(this.period);
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
