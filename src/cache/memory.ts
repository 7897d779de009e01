/**
 * The memory layer: an LRU bounded by bytes, O(1) get/put. Recency is the project's one LRU
 * (src/util/lru.ts: a doubly linked list over a Map; Map delete+re-insert to move a key was
 * measured at tens of µs per hit in JSC once the map churns); this file adds the byte and
 * per-bucket accounting.
 */
import { LruMap } from "../util/lru.ts";
import { bucketOf, type BucketLayerStats, type CachedObject, type CacheLayer, type LayerStats } from "./types.ts";

/**
 * Fixed per-entry allowance for the node, the object, its Blob and the prebuilt Headers. Measured
 * (black-box pass, 2026-12-03): 20,000 one-byte objects cached and hit once grew RSS by ~2.9 KB
 * each, of which the body, key and header strings are a few hundred bytes; at the 320 bytes
 * counted before, a 1 GiB cache of tiny objects would have used ~6 GiB.
 */
export const ENTRY_OVERHEAD = 2048;

/**
 * Header names and values are held up to three times per entry: the stored record and the prebuilt
 * 200 and 206 Headers the serving code keeps with it (respond.ts, HitTemplate), each string with its
 * own allocation. Counted once, an object with 2 KB of x-amz-meta-* was accounted 4.2 KB and cost
 * ~7 KB of RSS once stored, ~9 KB once served whole, by range and as a 304 (measured 2026-12-05:
 * 64 MiB of such entries held ~2.2x that), so a cache of metadata-heavy objects outgrew its size.
 */
const HEADER_COPIES = 4;
/** Measured alike: 1-byte objects under 1000-byte keys cost ~1.7 KB more each than under short keys. */
const KEY_COPIES = 2;

/** Bytes an entry is accounted for: body + key and header names and values (times what holds them) + ENTRY_OVERHEAD. */
export function entryBytes(obj: Pick<CachedObject, "size" | "key" | "headers">): number {
  let headers = 0;
  for (const name in obj.headers) headers += name.length + obj.headers[name]!.length;
  return obj.size + KEY_COPIES * obj.key.length + HEADER_COPIES * headers + ENTRY_OVERHEAD;
}

interface Entry {
  readonly key: string;
  readonly obj: CachedObject;
  readonly bytes: number;
  readonly bucket: BucketLayerStats;
}

/** A bucket's bounds after a reload (MemoryLayer.bound): its largest item, and how long an entry may stay fresh. */
export interface EntryBound {
  maxItemBytes: number;
  /** The latest expiry `obj` may have (0: expired). */
  until: (obj: CachedObject) => number;
}

/** The index of `key`'s `n`th '/' (n >= 1), or -1. */
function nthSlash(key: string, n: number): number {
  let at = -1;
  for (let i = 0; i < n; i++) {
    at = key.indexOf("/", at + 1);
    if (at < 0) return -1;
  }
  return at;
}

export class MemoryLayer implements CacheLayer {
  readonly name = "memory";
  /** Recency order; the bound is in bytes (evictDown), so the entry count is unbounded. */
  private readonly lru = new LruMap<Entry>(Infinity);
  private bytes = 0;
  private evictions = 0;
  private readonly perBucket = new Map<string, BucketLayerStats>();

  constructor(
    private maxBytes: number,
    private maxItemBytes: number,
  ) {}

  get(key: string): CachedObject | undefined {
    return this.lru.get(key)?.obj;
  }

  /**
   * Whether put() would keep an object of `size` body bytes under `key` with `headers`: the same
   * accounting as put()'s (entryBytes). Its body alone was weighed before, so an object with large
   * metadata was accepted, its file-backed body read for it on every lower-layer hit (promotion),
   * and then not kept.
   */
  accepts(size: number, key: string, headers: Readonly<Record<string, string>>): boolean {
    return size <= this.maxItemBytes && entryBytes({ size, key, headers }) <= this.maxBytes;
  }

  /** Looks without touching recency (tests, admin). */
  peek(key: string): CachedObject | undefined {
    return this.lru.peek(key)?.obj;
  }

  /** Stores `obj` as most recent. An object over the item limit, or bigger than the whole cache, is not stored (and any older version of it is dropped). */
  put(obj: CachedObject): void {
    const bytes = entryBytes(obj);
    this.delete(obj.key);
    if (obj.size > this.maxItemBytes || bytes > this.maxBytes) return;
    const name = bucketOf(obj.key);
    let b = this.perBucket.get(name);
    if (b === undefined) this.perBucket.set(name, (b = { items: 0, bytes: 0, evictions: 0 }));
    this.lru.insert(obj.key, { key: obj.key, obj, bytes, bucket: b });
    this.bytes += bytes;
    b.items++;
    b.bytes += bytes;
    this.evictDown();
  }

  delete(key: string): boolean {
    const e = this.lru.peek(key);
    if (e === undefined) return false;
    this.remove(e);
    return true;
  }

  purgePrefix(prefix: string): number {
    let count = 0;
    for (const e of [...this.lru.newestFirst()]) {
      if (e.key.startsWith(prefix)) {
        this.remove(e);
        count++;
      }
    }
    for (const [name, b] of this.perBucket) if (b.items === 0 && (name + "/").startsWith(prefix)) this.perBucket.delete(name);
    return count;
  }

  /**
   * Bounds the entries of the buckets in `bounds` (by bucket name: an entry's key is "bucket/key")
   * by their bucket's policy after a reload that changed it: one over its `maxItemBytes` is
   * evicted, the others' expiry brought forward to `until(entry)` where that is sooner (a lower
   * layer's entry is bounded as it is read, Cache.get; one held here was checked against its stored
   * expiry alone). One walk over the entries, however many buckets changed: a walk per bucket held
   * the event loop 2.5 s for 100 buckets and 200,000 entries (a default_ttl_seconds change).
   */
  bound(bounds: ReadonlyMap<string, EntryBound>): void {
    // (a bucket's name may hold a '/' itself: its entries' keys are looked up at that many slashes)
    const depths = [...new Set([...bounds.keys()].map((name) => name.split("/").length))];
    let over: Entry[] | undefined;
    for (const e of this.lru.newestFirst()) {
      let b: EntryBound | undefined;
      for (let i = 0; b === undefined && i < depths.length; i++) {
        const slash = nthSlash(e.key, depths[i]!);
        if (slash >= 0) b = bounds.get(e.key.slice(0, slash));
      }
      if (b === undefined) continue;
      if (e.obj.size > b.maxItemBytes) {
        (over ??= []).push(e); // (evicted after the walk: not while iterating the list)
        continue;
      }
      const t = b.until(e.obj);
      if (t < e.obj.expiresAt) e.obj.expiresAt = t;
    }
    if (over !== undefined) for (const e of over) this.evict(e);
  }

  /** Applies a new capacity and item limit; evicts least-recently-used entries (and now-oversized ones) until it fits. */
  resize(maxBytes: number, maxItemBytes: number = this.maxItemBytes): void {
    this.maxBytes = maxBytes;
    if (maxItemBytes < this.maxItemBytes) {
      for (const e of [...this.lru.newestFirst()]) if (e.obj.size > maxItemBytes) this.evict(e);
    }
    this.maxItemBytes = maxItemBytes;
    this.evictDown();
  }

  stats(): LayerStats {
    const buckets: Record<string, BucketLayerStats> = {};
    for (const [name, b] of this.perBucket) buckets[name] = { ...b };
    return { items: this.lru.size, bytes: this.bytes, evictions: this.evictions, maxBytes: this.maxBytes, buckets };
  }

  /** Keys from most to least recently used (tests). */
  keys(): string[] {
    return [...this.lru.newestFirst()].map((e) => e.key);
  }

  private evictDown(): void {
    for (let e = this.lru.oldest(); this.bytes > this.maxBytes && e !== undefined; e = this.lru.oldest()) this.evict(e);
  }

  private evict(e: Entry): void {
    this.remove(e);
    this.evictions++;
    e.bucket.evictions++;
  }

  private remove(e: Entry): void {
    this.lru.delete(e.key);
    this.bytes -= e.bytes;
    e.bucket.items--;
    e.bucket.bytes -= e.bytes;
  }
}
