/**
 * A process-wide budget of bytes held by request bodies the proxy must buffer (a browser form
 * upload's part buffers, src/fronts/s3/post-object.ts): what they may hold together, so many
 * concurrent uploads cannot exhaust memory. `max` may change at runtime (config reload); bytes
 * already reserved are kept.
 */
export class ByteBudget {
  private used = 0;

  constructor(public max: number) {
    if (!(max >= 0)) throw new RangeError("max must be >= 0");
  }

  /** Reserves `n` bytes if they fit; a `true` answer must be paired with release(n). */
  tryReserve(n: number): boolean {
    if (this.used + n > this.max) return false;
    this.used += n;
    return true;
  }

  release(n: number): void {
    this.used = Math.max(0, this.used - n);
  }

  get reserved(): number {
    return this.used;
  }
}
