/**
 * Which keys were purged since a point in time, so that a fill, a copy or a write that began
 * before a purge of ITS key does not store its (possibly stale) result, while work on other keys
 * goes on. A purge of one object must not discard a 1 GiB disk fill of another.
 *
 * Bounded: only the last LIMIT purges are remembered; a question about a point older than that
 * is answered "yes, purged" (dropping a fill is always safe).
 *
 * A purge is recorded when it begins, but its layers go one after another (a Redis prefix purge is
 * a SCAN and UNLINK over several round trips): a lookup that began after the purge was recorded
 * can still find an old entry in a layer not yet purged. While a purge begun with `begin()` has not
 * `end()`ed, `purging(key)` says so: such a hit is served (it is concurrent with the purge) but
 * never copied into the layers above, where it would outlive the purge. Only that copy waits: a
 * fill that asked the upstream after the purge began has the current object, and is cached and
 * joined as usual (`purgedSince` is about points in time, not about purges under way).
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
  /** Purges whose layers are still being purged (begin..end). */
  private readonly active = new Set<Purge>();

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

  /** Records a purge whose layers are being purged now: pass what it returns to `end()` once they are. */
  begin(what: string, exact: boolean): object {
    const p = this.add(what, exact);
    this.active.add(p);
    return p;
  }

  end(purge: object): void {
    this.active.delete(purge as Purge);
  }

  /** Whether a purge of `key` is under way (begun, its layers not all purged yet). */
  purging(key: string): boolean {
    if (this.active.size === 0) return false;
    for (const p of this.active) if (p.exact ? p.what === key : key.startsWith(p.what)) return true;
    return false;
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

  private add(what: string, exact: boolean): Purge {
    const p = { seq: ++this.seq, what, exact };
    this.purges.push(p);
    if (this.purges.length > LIMIT) this.purges.splice(0, this.purges.length - LIMIT);
    return p;
  }
}
