/** Caps the number of requests in flight (server.max_concurrent_requests). */
export class ConcurrencyLimiter {
  private n = 0;

  /** `max` may be changed at runtime (config reload); requests already in flight are kept. */
  constructor(public max: number) {
    if (!(max >= 1)) throw new RangeError("max must be >= 1");
  }

  /** Enters if below the cap; a `true` answer must be paired with exactly one `leave()`. */
  tryEnter(): boolean {
    if (this.n >= this.max) return false;
    this.n++;
    return true;
  }

  leave(): void {
    if (this.n > 0) this.n--;
  }

  get inFlight(): number {
    return this.n;
  }
}
