/**
 * The cache facade over the configured layers (fastest first): lookup with promotion, store to all,
 * purges, resize, the in-flight table used for request coalescing, and the counters behind
 * GET /admin/cache/stats and the yatagarasu_cache_* metrics.
 */
import type { CachedObject, CacheLayer, LayerStats, MaybePromise } from "./types.ts";
import type { FlightOutcome } from "./flight.ts";

/** Request counters of one bucket (kept by the serving flow). */
export interface BucketCounters {
  /** Served from a fresh entry without calling upstream. */
  hits: number;
  /** Not servable from the cache: went upstream to fill (or joined a fill); includes upstream errors. */
  misses: number;
  /** Joined another request's in-flight fill/revalidation instead of calling upstream. */
  coalesced: number;
  /** Stale entry confirmed by a 304 from upstream (body not transferred again). */
  revalidated: number;
  /** Passed through without using or filling the cache (range miss, oversize object). */
  bypassed: number;
}

export interface BucketStats extends BucketCounters {
  evictions: number;
  items: number;
  bytes: number;
}

export interface CacheStats {
  total: BucketStats;
  buckets: Record<string, BucketStats>;
  /** Per-layer view: items, bytes, maxBytes, evictions. */
  layers: Record<string, Omit<LayerStats, "buckets">>;
}

const newCounters = (): BucketCounters => ({ hits: 0, misses: 0, coalesced: 0, revalidated: 0, bypassed: 0 });
const noop = () => {};

export class Cache {
  readonly layers: readonly CacheLayer[];
  /** In-flight upstream fills/revalidations by cache key (request coalescing). */
  readonly inflight = new Map<string, Promise<FlightOutcome>>();
  private readonly first: CacheLayer;
  private readonly counters = new Map<string, BucketCounters>();
  /** Bumped by every purge: a fill that started before a purge does not store its result. */
  private epochValue = 0;

  constructor(layers: CacheLayer[]) {
    if (layers.length === 0) throw new Error("a cache needs at least one layer");
    this.layers = layers;
    this.first = layers[0]!;
  }

  get epoch(): number {
    return this.epochValue;
  }

  /** First layer holding `key` wins; a hit in a lower layer is copied into the layers above it (in the background). */
  get(key: string): MaybePromise<CachedObject | undefined> {
    const hit = this.first.get(key);
    if (this.layers.length === 1 || (hit !== undefined && !(hit instanceof Promise))) return hit;
    return this.getSlow(key, hit);
  }

  private async getSlow(key: string, firstHit: MaybePromise<CachedObject | undefined>): Promise<CachedObject | undefined> {
    const found = await firstHit;
    if (found !== undefined) return found;
    for (let i = 1; i < this.layers.length; i++) {
      const obj = await this.layers[i]!.get(key);
      if (obj !== undefined) {
        this.promote(obj, i);
        return obj;
      }
    }
    return undefined;
  }

  /** Copies `obj` into layers[0..upTo) with its bytes in memory (a lower layer may hand out a file). */
  private promote(obj: CachedObject, upTo: number): void {
    obj.body
      .arrayBuffer()
      .then((buf) => {
        const copy: CachedObject = { ...obj, body: new Blob([buf]), headers: { ...obj.headers }, tpl: undefined };
        for (let i = 0; i < upTo; i++) this.settle(this.layers[i]!.put(copy));
      })
      .catch(noop);
  }

  /** Stores in every layer. Slow layers are not awaited; their failures are dropped (a layer logs its own). */
  put(obj: CachedObject): void {
    for (const layer of this.layers) this.settle(layer.put(obj));
  }

  private settle(r: MaybePromise<unknown>): void {
    if (r instanceof Promise) r.catch(noop);
  }

  async delete(key: string): Promise<boolean> {
    this.epochValue++;
    const results = await Promise.all(this.layers.map((l) => l.delete(key)));
    return results.some(Boolean);
  }

  /** Removes everything; returns the number of entries removed from the first layer. */
  purgeAll(): Promise<number> {
    return this.purgePrefix("");
  }

  purgeBucket(bucket: string): Promise<number> {
    return this.purgePrefix(bucket + "/");
  }

  async purgeObject(bucket: string, key: string): Promise<number> {
    return (await this.delete(bucket + "/" + key)) ? 1 : 0;
  }

  /** Hot reload removed a bucket: drop its entries and its counters. */
  async removeBucket(bucket: string): Promise<number> {
    const n = await this.purgeBucket(bucket);
    this.counters.delete(bucket);
    return n;
  }

  private async purgePrefix(prefix: string): Promise<number> {
    this.epochValue++;
    const counts = await Promise.all(this.layers.map((l) => l.purgePrefix(prefix)));
    return counts[0] ?? 0;
  }

  /** New memory capacity / item limit (bytes) after a reload; layers that cannot resize ignore it. */
  resize(maxBytes: number, maxItemBytes?: number): void {
    for (const l of this.layers) l.resize?.(maxBytes, maxItemBytes);
  }

  /** The live counter object of a bucket (created on first use). */
  counter(bucket: string): BucketCounters {
    let c = this.counters.get(bucket);
    if (c === undefined) this.counters.set(bucket, (c = newCounters()));
    return c;
  }

  /**
   * Snapshot for GET /admin/cache/stats and for the metrics renderer:
   * hits/misses/coalesced per bucket → yatagarasu_cache_{hits,misses,coalesced}_total{bucket};
   * total.evictions/bytes/items → yatagarasu_cache_evictions_total, _bytes, _items.
   * items/bytes/evictions come from the first (memory) layer.
   */
  stats(): CacheStats {
    const first = this.first.stats();
    const total: BucketStats = { ...newCounters(), evictions: first.evictions, items: first.items, bytes: first.bytes };
    const buckets: Record<string, BucketStats> = {};
    const names = new Set([...this.counters.keys(), ...Object.keys(first.buckets)]);
    for (const name of names) {
      const c = this.counters.get(name) ?? newCounters();
      const l = first.buckets[name] ?? { items: 0, bytes: 0, evictions: 0 };
      buckets[name] = { ...c, evictions: l.evictions, items: l.items, bytes: l.bytes };
      total.hits += c.hits;
      total.misses += c.misses;
      total.coalesced += c.coalesced;
      total.revalidated += c.revalidated;
      total.bypassed += c.bypassed;
    }
    const layers: CacheStats["layers"] = {};
    for (const l of this.layers) {
      const { buckets: _b, ...rest } = l === this.first ? first : l.stats();
      layers[l.name] = rest;
    }
    return { total, buckets, layers };
  }
}
