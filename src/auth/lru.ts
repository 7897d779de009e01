/**
 * A bounded map with per-entry expiry and least-recently-used eviction, for verified tokens and
 * authorization decisions. Built on the one LRU of the project (src/limits/lru.ts: Map + linked
 * list, O(1) eviction even under a flood of distinct keys).
 */
import { LruMap } from "../limits/lru.ts";

export class TtlLru<V> {
  private readonly lru: LruMap<{ value: V; expiresAt: number }> | undefined;

  constructor(readonly maxEntries: number) {
    this.lru = maxEntries > 0 ? new LruMap(maxEntries) : undefined;
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  get(key: string, now: number): V | undefined {
    const e = this.lru?.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= now) {
      this.lru!.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V, expiresAt: number): void {
    this.lru?.set(key, { value, expiresAt });
  }

  clear(): void {
    this.lru?.clear();
  }
}
