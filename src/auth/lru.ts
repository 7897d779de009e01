/**
 * A bounded map with per-entry expiry and least-recently-used eviction (a Map keeps insertion
 * order; a hit re-inserts the entry at the end, eviction drops the first). Used for verified tokens
 * and for authorization decisions.
 */
export class TtlLru<V> {
  private readonly map = new Map<string, { value: V; expiresAt: number }>();

  constructor(readonly maxEntries: number) {}

  get size(): number {
    return this.map.size;
  }

  get(key: string, now: number): V | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    this.map.delete(key);
    if (e.expiresAt <= now) return undefined;
    this.map.set(key, e);
    return e.value;
  }

  set(key: string, value: V, expiresAt: number): void {
    if (this.maxEntries <= 0) return;
    this.map.delete(key);
    while (this.map.size >= this.maxEntries) {
      const oldest = this.map.keys().next();
      if (oldest.done) break;
      this.map.delete(oldest.value);
    }
    this.map.set(key, { value, expiresAt });
  }

  clear(): void {
    this.map.clear();
  }
}
