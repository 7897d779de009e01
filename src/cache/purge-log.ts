/**
 * Which keys were purged since a point in time, so that a fill, a copy or a write that began
 * before a purge of ITS key does not store its (possibly stale) result, while work on other keys
 * goes on. A purge of one object must not discard a 1 GiB disk fill of another.
 *
 * Bounded: only the last LIMIT purges are remembered; a question about a point older than that
 * is answered "yes, purged" (dropping a fill is always safe).
 */
const LIMIT = 1024;

interface Purge {
  seq: number;
  /** A key (exact) or a key prefix ("" = everything). */
  what: string;
  exact: boolean;
}

export class PurgeLog {
  private seq = 0;
  private readonly purges: Purge[] = [];

  /** The current point: pass it to `purgedSince` later. */
  get now(): number {
    return this.seq;
  }

  key(key: string): void {
    this.add(key, true);
  }

  prefix(prefix: string): void {
    this.add(prefix, false);
  }

  /** Whether `key` was purged after point `since`. */
  purgedSince(since: number, key: string): boolean {
    if (since >= this.seq) return false;
    const oldest = this.purges[0];
    if (oldest === undefined || since < oldest.seq - 1) return true; // forgotten: assume so
    for (let i = this.purges.length - 1; i >= 0; i--) {
      const p = this.purges[i]!;
      if (p.seq <= since) break;
      if (p.exact ? p.what === key : key.startsWith(p.what)) return true;
    }
    return false;
  }

  private add(what: string, exact: boolean): void {
    this.purges.push({ seq: ++this.seq, what, exact });
    if (this.purges.length > LIMIT) this.purges.splice(0, this.purges.length - LIMIT);
  }
}
