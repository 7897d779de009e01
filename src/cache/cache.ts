/**
 * The cache facade over the configured layers (fastest first): lookup with promotion, store to all,
 * streaming writers, purges (and the invalidations other processes publish), resize, the
 * in-flight table used for request coalescing, and the counters behind GET /admin/cache/stats and
 * the yatagarasu_cache_* metrics.
 */
import type { CachedObject, CacheLayer, FillToken, LayerHealth, LayerStats, LayerWriter, MaybePromise, ObjectMeta, RemoteInvalidation, SharedWait } from "./types.ts";
import { isFileBody } from "./types.ts";
import type { CachePolicy, FlightOutcome } from "./flight.ts";
import { freshnessSeconds } from "./freshness.ts";
import type { FillTap } from "./fill-tap.ts";
import { type EntryBound, MemoryLayer } from "./memory.ts";
import { DiskLayer } from "./disk.ts";
import { RedisLayer } from "./redis.ts";
import { PurgeLog } from "./purge-log.ts";
import { tracedLayerGet } from "../observe/trace/client.ts";
import type { Span } from "../observe/trace/span.ts";

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
  /** Stale entry answered because its revalidation failed (the store down, a 5xx: stale_if_error_seconds). */
  stale: number;
  /** Passed through without using or filling the cache (range miss, oversize object). */
  bypassed: number;
}

export interface BucketStats extends BucketCounters {
  evictions: number;
  items: number;
  bytes: number;
}

export interface LayerView extends Omit<LayerStats, "buckets"> {
  /** HITs served from this layer. */
  hits: number;
  errors: number;
  /** Present for layers that can be unavailable (Redis). */
  health?: LayerHealth;
}

export interface CacheStats {
  total: BucketStats;
  buckets: Record<string, BucketStats>;
  /** Per-layer view: items, bytes, maxBytes, evictions, hits, errors, health. */
  layers: Record<string, LayerView>;
}

/**
 * The other processes of this host's group (server.workers), which share no layer but Redis: each
 * local purge is sent to them, and settles once they have applied it (or a deadline passed), so a
 * write's answer comes after every worker dropped the key.
 */
export interface PeerBus {
  publish(inv: RemoteInvalidation): Promise<void>;
}

const newCounters = (): BucketCounters => ({ hits: 0, misses: 0, coalesced: 0, revalidated: 0, stale: 0, bypassed: 0 });
/** Adds `c` into `into` (the totals, a removed bucket's retired counts). */
function addCounters(into: BucketCounters, c: BucketCounters): void {
  into.hits += c.hits;
  into.misses += c.misses;
  into.coalesced += c.coalesced;
  into.revalidated += c.revalidated;
  into.stale += c.stale;
  into.bypassed += c.bypassed;
}
const noop = () => {};

/**
 * What a layer's purge call gives, or `failed` when it fails, synchronously (a throw) or not: a
 * purge goes on through the other layers and always ends (PurgeLog.end).
 */
function settled<T, F = undefined>(call: () => MaybePromise<T>, failed?: F): Promise<T | F> {
  try {
    return Promise.resolve(call()).catch(() => failed as F);
  } catch {
    return Promise.resolve(failed as F);
  }
}

/** What a bucket's policy bounds in an entry read from a lower layer (Cache.get). */
export type EntryBounds = Pick<CachePolicy, "ttlSeconds" | "defaultTtlSeconds" | "maxItemBytes">;

/**
 * `obj` (from a layer below the first) fresh for no longer than this proxy would have stored it
 * for: from its storedAt, its own stored s-maxage or max-age, else the bucket's TTL. An entry of a
 * layer that outlives the process or is shared (disk, Redis: written under the layer's names by
 * another program, or under a longer TTL before a reload) was trusted with any expiresAt, and its
 * copy promoted into memory stayed fresh that long, after its Redis key had expired or was gone.
 * Null for one this proxy never stores (cappedTtl): an SSE-C object's answer, which releases up to
 * 5d9d45c stored and served as a HIT to every reader (a miss now, deleted from that layer).
 */
function entryWithin(obj: CachedObject, policy: EntryBounds): CachedObject | null {
  if (obj.headers["x-amz-server-side-encryption-customer-algorithm"] !== undefined) return null;
  const ttl = freshnessSeconds(obj.headers["cache-control"] ?? null, policy.ttlSeconds, policy.defaultTtlSeconds);
  // (a storedAt in the future, as such an entry may claim, counts from now: from its claim, it was
  // fresh that much longer, and its If-Range dates strong)
  const now = Date.now();
  const storedAt = obj.storedAt <= now ? obj.storedAt : now;
  const until = storedAt + (ttl ?? 0) * 1000;
  if (obj.expiresAt <= until && storedAt === obj.storedAt) return obj;
  return { ...obj, storedAt, expiresAt: obj.expiresAt <= until ? obj.expiresAt : until };
}

export class Cache {
  readonly layers: readonly CacheLayer[];
  /** In-flight upstream fills/revalidations by cache key (request coalescing). */
  readonly inflight = new Map<string, Promise<FlightOutcome>>();
  /**
   * Streaming fills (objects too big to buffer, written to disk as they stream) in progress, by
   * cache key: a miss for the key follows the fill from its file instead of going upstream.
   */
  readonly fills = new Map<string, FillTap>();
  private readonly first: CacheLayer;
  /** The first layer answers synchronously (memory): the hot path may ask it without a promise. */
  private readonly syncFirst: boolean;
  private readonly counters = new Map<string, BucketCounters>();
  /** HITs served by layers below the first, by layer name. */
  private readonly lowerHits = new Map<string, number>();
  /**
   * The counters of buckets a reload removed, by name (added up if a bucket is removed more than
   * once): still in the totals and the metrics, whose counters never go down.
   */
  private readonly retired = new Map<string, BucketCounters>();
  /** Keys being copied into faster layers (one copy at a time per key). */
  private readonly promoting = new Set<string>();
  /** Every purge, local or remote: a fill or copy of a key purged after it began does not store its result. */
  private readonly purges = new PurgeLog();
  private peers: PeerBus | undefined;
  /** The shared layer that keeps purge generations (Redis): a fill stores only if none changed since it began. */
  private readonly guard: CacheLayer | undefined;
  /** Whether a shared layer (Redis) is among the layers: only then does a request count its wait on it (SharedWait). */
  readonly shared: boolean;
  /** Fills' stores waiting for the shared layer's verdict (putGuarded). */
  private readonly storing = new Set<Promise<void>>();

  constructor(layers: CacheLayer[]) {
    if (layers.length === 0) throw new Error("a cache needs at least one layer");
    this.layers = layers;
    this.first = layers[0]!;
    this.syncFirst = this.first instanceof MemoryLayer;
    for (const l of layers) l.onRemoteInvalidation?.((inv) => this.applyRemote(l, inv));
    this.guard = layers.find((l) => l.fillToken !== undefined && l.putIf !== undefined);
    this.shared = this.guard !== undefined;
    // A disk that survived a restart missed the purges made meanwhile: its restored entries are
    // held until the Redis layer has replayed them from the purge stream (or dropped them).
    const disk = layers.find((l) => l instanceof DiskLayer) as DiskLayer | undefined;
    const redis = layers.find((l) => l instanceof RedisLayer) as RedisLayer | undefined;
    if (disk !== undefined && redis !== undefined) {
      disk.hold();
      redis.setCheckpoint(disk);
    }
  }

  /**
   * Read by a fill before it asks upstream: the purge generations of its key in the shared layer
   * (undefined without one, or while it is down). Pass it to put/openWriter. `wait`: the request's
   * lookup (get), whose wait on the shared layer it shares.
   */
  fillToken(key: string, wait?: SharedWait): MaybePromise<FillToken | undefined> {
    return this.guard?.fillToken?.(key, wait);
  }

  /** The current point in the purge log (see purgedSince). */
  get epoch(): number {
    return this.purges.now;
  }

  /** Whether `key` was purged (locally or by another process) after point `since` (an `epoch` value). */
  purgedSince(since: number, key: string): boolean {
    return this.purges.purgedSince(since, key);
  }

  layer(name: string): CacheLayer | undefined {
    return this.layers.find((l) => l.name === name);
  }

  /** The first layer's entry when it answers synchronously; never starts a lookup in a slower layer. */
  getFirst(key: string): CachedObject | undefined {
    return this.syncFirst ? (this.first.get(key) as CachedObject | undefined) : undefined;
  }

  /**
   * First layer holding `key` wins; a hit in a lower layer is copied into the layers above it (in
   * the background). `trace` (a recording request span): each layer's lookup gets a span. `wait`:
   * the request's wait on the shared layer (fillToken). `policy`: the bucket's, whose largest item a
   * lower layer's entry may not exceed, nor be fresh longer than it would store it (entryWithin).
   * `now`: the request's clock (default: the time of the lookup), by which an entry is fresh.
   */
  get(key: string, trace?: Span, wait?: SharedWait, policy?: EntryBounds, now?: number): MaybePromise<CachedObject | undefined> {
    const hit = trace === undefined ? this.first.get(key, wait) : tracedLayerGet(this.first, key, trace, wait);
    if (this.layers.length === 1 || (hit !== undefined && !(hit instanceof Promise))) return hit;
    return this.getSlow(key, hit, trace, wait, policy, now);
  }

  /**
   * `stale`, the first layer's entry (answered synchronously, no longer fresh): a fresh entry of its
   * key in a lower layer, else `stale` itself (see getSlow). The stale path only: a hit never asks.
   */
  below(key: string, stale: CachedObject, trace: Span | undefined, wait: SharedWait | undefined, policy: EntryBounds, now: number): MaybePromise<CachedObject | undefined> {
    return this.layers.length === 1 ? stale : this.getSlow(key, stale, trace, wait, policy, now);
  }

  /**
   * The first fresh entry of the layers, top down; else the first stale one (revalidated). A stale
   * entry in a higher layer hid a fresh one below it: a replica whose disk still held the old copy
   * while its write of the new one (stored in Redis by another replica, or by this one's own fill,
   * whose store counts as done once Redis has it) was under way revalidated upstream again.
   */
  private async getSlow(key: string, firstHit: MaybePromise<CachedObject | undefined>, trace?: Span, wait?: SharedWait, policy?: EntryBounds, now = Date.now()): Promise<CachedObject | undefined> {
    const epoch = this.purges.now;
    const found = await Promise.resolve(firstHit).catch(() => undefined);
    if (found !== undefined && now < found.expiresAt) return found;
    let stale = found;
    const maxBytes = policy?.maxItemBytes;
    for (let i = 1; i < this.layers.length; i++) {
      // A layer answers a miss for its own failures; a throw is one more failure, not the client's.
      const got = await Promise.resolve(trace === undefined ? this.layers[i]!.get(key, wait, maxBytes) : tracedLayerGet(this.layers[i]!, key, trace, wait, maxBytes)).catch(() => undefined);
      const obj = got === undefined || policy === undefined ? got : entryWithin(got, policy);
      if (obj === null) {
        void settled(() => this.layers[i]!.delete(key));
        continue;
      }
      if (obj !== undefined && now >= obj.expiresAt) stale ??= obj;
      else if (obj !== undefined) {
        // Found before a purge that happened while we asked, or in a layer a purge under way has
        // not reached yet: serve it, but do not copy it upward.
        if (!this.purges.purgedSince(epoch, key) && !this.purges.purging(key)) this.promote(obj, i);
        return obj;
      }
    }
    return stale;
  }

  /** Counts a HIT served by a layer below the first (`obj.source`). */
  countLowerHit(source: string): void {
    this.lowerHits.set(source, (this.lowerHits.get(source) ?? 0) + 1);
  }

  /** Copies `obj` into layers[0..upTo) that would keep it, reading a file-backed body only when one of them needs the bytes. */
  private promote(obj: CachedObject, upTo: number): void {
    if (this.promoting.has(obj.key)) return;
    const targets = this.layers.slice(0, upTo).filter((l) => l.accepts?.(obj.size, obj.key, obj.headers) ?? true);
    if (targets.length === 0) return;
    this.promoting.add(obj.key);
    const copy: CachedObject = { ...obj, headers: { ...obj.headers }, tpl: undefined, source: undefined };
    void this.putInto(targets, copy).finally(() => this.promoting.delete(obj.key));
  }

  /**
   * Stores in every layer that would keep it. Slow layers are not awaited; their failures are
   * dropped (a layer logs its own). A local layer that won't keep it drops its older version, or
   * that older version, found first, would be served (or revalidated) forever.
   * A fill's store that waits for the shared layer's verdict (putGuarded) is returned: its flight
   * stays joinable until then (serve.ts), the object being in no layer meanwhile.
   */
  put(obj: CachedObject, fill?: { since: number; token: FillToken | undefined }): Promise<void> | undefined {
    const targets = this.layers.filter((l) => l.accepts?.(obj.size, obj.key, obj.headers) ?? true);
    const guard = this.guard;
    if (guard === undefined || fill === undefined) {
      this.dropOlder(obj.key, targets);
      void this.putInto(targets, obj);
      return undefined;
    }
    const p = this.putGuarded(obj, targets, guard, fill).catch(noop);
    this.storing.add(p);
    void p.then(() => this.storing.delete(p));
    return p;
  }

  /** Resolves once the fills' stores begun so far are done or refused (shutdown, tests). */
  async idle(): Promise<void> {
    while (this.storing.size > 0) await Promise.all([...this.storing]);
  }

  /**
   * A fill's result: stored in the shared layer only if no purge of its key reached it since the
   * fill began (atomically, putIf), and in the local layers only after that check passed and no
   * purge arrived here either; a purge made anywhere before the store leaves the fill stored
   * nowhere. A fill that began while the shared layer was down (no token) is stored locally only.
   */
  private async putGuarded(obj: CachedObject, targets: readonly CacheLayer[], guard: CacheLayer, fill: { since: number; token: FillToken | undefined }): Promise<void> {
    let verdict: boolean | undefined;
    if (fill.token !== undefined) verdict = await guard.putIf!(obj, fill.token, targets.includes(guard)).catch(() => undefined);
    if (verdict === false || this.purges.purgedSince(fill.since, obj.key)) return;
    this.dropOlder(obj.key, targets);
    await this.putInto(
      targets.filter((l) => l !== guard),
      obj,
    );
  }

  /** Removes `key` from the local layers not in `kept` (a shared layer's entry expires by itself). */
  private dropOlder(key: string, kept: readonly CacheLayer[]): void {
    for (const l of this.layers) if (!kept.includes(l) && l.onRemoteInvalidation === undefined) this.settle(l.delete(key));
  }

  /**
   * A file-backed body (from the disk layer) is read into memory once for the layers that hold
   * bytes; if a purge happens meanwhile, the copy is dropped.
   */
  private async putInto(targets: readonly CacheLayer[], obj: CachedObject): Promise<void> {
    const epoch = this.purges.now;
    let inMemory: CachedObject | undefined;
    for (const layer of targets) {
      if (!isFileBody(obj.body) || layer.storesFiles === true) {
        this.settle(layer.put(obj));
        continue;
      }
      if (inMemory === undefined) {
        let bytes: ArrayBuffer;
        try {
          bytes = await obj.body.arrayBuffer();
        } catch {
          return; // the file went away: nothing to copy
        }
        // A file cut short since the disk layer checked it reads short, with no error: kept, that
        // copy was sent by every memory hit as a whole 200 of fewer bytes (a Blob's own length).
        if (bytes.byteLength !== obj.size) return;
        inMemory = { ...obj, body: new Blob([bytes]), tpl: undefined, source: undefined };
      }
      if (this.purges.purgedSince(epoch, obj.key)) return;
      this.settle(layer.put(inMemory));
    }
  }

  /**
   * A writer for a body too big to buffer, fed while it streams to the first client; undefined
   * when no layer takes objects of that size as a stream. Nothing is stored if a purge happens
   * before the commit.
   */
  openWriter(meta: ObjectMeta, since: number = this.purges.now, token?: FillToken): LayerWriter | undefined {
    const writers: LayerWriter[] = [];
    const kept: CacheLayer[] = [];
    for (const l of this.layers) {
      if (l.openWriter === undefined || l.accepts?.(meta.size, meta.key, meta.headers) === false) continue;
      const w = l.openWriter(meta);
      if (w === undefined) continue;
      writers.push(w);
      kept.push(l);
    }
    if (writers.length === 0) return undefined;
    const abort = () => {
      for (const w of writers) w.abort();
    };
    return {
      write: (chunk) => (writers.length === 1 ? writers[0]!.write(chunk) : Promise.all(writers.map((w) => w.write(chunk))).then(noop)),
      commit: async () => {
        if (this.purges.purgedSince(since, meta.key)) {
          abort();
          return false;
        }
        // Purged through another process since the fill began (the shared layer's generations)?
        const verdict = token !== undefined ? await this.guard?.putIf?.(meta, token, false).catch(() => undefined) : undefined;
        if (verdict === false || this.purges.purgedSince(since, meta.key)) {
          abort();
          return false;
        }
        const done = await Promise.all(writers.map((w) => w.commit()));
        if (done.some(Boolean)) this.dropOlder(meta.key, kept);
        return done.some(Boolean);
      },
      abort,
      file: writers.find((w) => w.file !== undefined)?.file,
    };
  }

  private settle(r: MaybePromise<unknown>): void {
    if (r instanceof Promise) r.catch(noop);
  }

  /**
   * A purged key's fill in flight keeps serving the requests that joined it (they were concurrent
   * with the write) and stores nothing (purgedSince), but no request may join it any more: one
   * that arrives after the write was answered must see the new object (S3's read-after-write), so
   * it starts a fill of its own. The same holds for a streaming fill its followers read.
   */
  private detachFlights(what: string, exact: boolean): void {
    for (const table of [this.inflight, this.fills] as Map<string, unknown>[]) {
      if (exact) table.delete(what);
      else for (const k of [...table.keys()]) if (k.startsWith(what)) table.delete(k);
    }
  }

  async delete(key: string): Promise<boolean> {
    const purge = this.purges.begin(key, true);
    this.detachFlights(key, true);
    try {
      const [results] = await Promise.all([Promise.all(this.layers.map((l) => settled(() => l.delete(key), false))), this.peers?.publish({ kind: "key", key })]);
      return results.some(Boolean);
    } finally {
      this.purges.end(purge);
    }
  }

  /** server.workers: the group's other processes, told of every local purge (see PeerBus). */
  setPeers(bus: PeerBus | undefined): void {
    this.peers = bus;
  }

  /**
   * A purge another process of this host's group made: dropped here from every layer that is this
   * process's own (memory, its disk folder). A shared layer (Redis) was purged by the process that
   * made it, and publishes it to the other hosts itself.
   */
  async applyPeer(inv: RemoteInvalidation): Promise<void> {
    const purge = this.purges.begin(inv.kind === "key" ? inv.key : inv.prefix, inv.kind === "key");
    this.detachFlights(inv.kind === "key" ? inv.key : inv.prefix, inv.kind === "key");
    const own = this.layers.filter((l) => l.onRemoteInvalidation === undefined);
    await Promise.all(own.map((l) => settled(() => (inv.kind === "key" ? l.delete(inv.key) : l.purgePrefix(inv.prefix))))).finally(() => this.purges.end(purge));
  }

  /** Removes everything; returns the number of objects removed (from the layer that held the most). */
  purgeAll(): Promise<number> {
    return this.purgePrefix("");
  }

  purgeBucket(bucket: string): Promise<number> {
    return this.purgePrefix(bucket + "/");
  }

  async purgeObject(bucket: string, key: string): Promise<number> {
    return (await this.delete(bucket + "/" + key)) ? 1 : 0;
  }

  /** One key purged in each of `buckets` (those that read one store): the number of copies removed. A bucket whose purge fails counts 0. */
  async purgeObjectIn(buckets: readonly string[], key: string): Promise<number> {
    if (buckets.length === 1) return this.purgeObject(buckets[0]!, key).catch(() => 0);
    const counts = await Promise.all(buckets.map((name) => this.purgeObject(name, key).catch(() => 0)));
    return counts.reduce((a, n) => a + n, 0);
  }

  /** Hot reload removed a bucket: drop its entries and its counters. */
  async removeBucket(bucket: string): Promise<number> {
    const n = await this.purgeBucket(bucket);
    const c = this.counters.get(bucket);
    if (c !== undefined) {
      const r = this.retired.get(bucket) ?? newCounters();
      addCounters(r, c);
      this.retired.set(bucket, r);
    }
    this.counters.delete(bucket);
    return n;
  }

  private async purgePrefix(prefix: string): Promise<number> {
    const purge = this.purges.begin(prefix, false);
    this.detachFlights(prefix, false);
    try {
      const [counts] = await Promise.all([Promise.all(this.layers.map((l) => settled(() => l.purgePrefix(prefix), 0))), this.peers?.publish({ kind: "prefix", prefix })]);
      // (an object is in one layer or several: the count of the layer that held the most, not their sum)
      return Math.max(0, ...counts);
    } finally {
      this.purges.end(purge);
    }
  }

  /** Another process purged (published through a shared layer): drop it from every other layer here; resolves once they did. */
  private applyRemote(from: CacheLayer, inv: RemoteInvalidation): Promise<unknown> {
    const purge = this.purges.begin(inv.kind === "key" ? inv.key : inv.prefix, inv.kind === "key");
    this.detachFlights(inv.kind === "key" ? inv.key : inv.prefix, inv.kind === "key");
    const done: Promise<unknown>[] = [];
    for (const l of this.layers) {
      if (l === from) continue;
      done.push(settled(() => (inv.kind === "key" ? l.delete(inv.key) : l.purgePrefix(inv.prefix))));
    }
    return Promise.all(done).finally(() => this.purges.end(purge));
  }

  /** After a reload: the caching buckets and their stores' stamps (cacheStores), for the layers that record them (disk, Redis). */
  setStores(stores: ReadonlyMap<string, string>): void {
    for (const l of this.layers) l.setStores?.(stores);
  }

  /**
   * After a reload that changed these buckets' TTL (their ttl_seconds or default_ttl_seconds) or
   * lowered their largest item (`policies`, by bucket name): their entries in memory bounded by
   * their new policy as an entry of a lower layer is when read (entryWithin, and the layers' item
   * limit): one now too large is dropped, the others fresh for no longer than the new TTL from when
   * they were stored. They stayed HITs until the old TTL ran out. A fill of such a bucket still
   * under way (begun on the old policy) stores nothing, as after a purge: it stored its answer under
   * the old TTL and size limit. Memory is walked once for them all.
   */
  boundBuckets(policies: ReadonlyMap<string, EntryBounds>): void {
    const bounds = new Map<string, EntryBound>();
    for (const [bucket, policy] of policies) {
      this.purges.prefix(bucket + "/");
      bounds.set(bucket, { maxItemBytes: policy.maxItemBytes, until: (obj) => entryWithin(obj, policy)?.expiresAt ?? 0 });
    }
    const memory = this.layer("memory");
    if (memory instanceof MemoryLayer) memory.bound(bounds);
  }

  /** New memory capacity / item limit (bytes) after a reload; other layers are resized by name (applyCacheConfig). */
  resize(maxBytes: number, maxItemBytes?: number): void {
    this.layer("memory")?.resize?.(maxBytes, maxItemBytes);
  }

  /** The live counter object of a bucket (created on first use). */
  counter(bucket: string): BucketCounters {
    let c = this.counters.get(bucket);
    if (c === undefined) this.counters.set(bucket, (c = newCounters()));
    return c;
  }

  /**
   * Hits and misses per bucket since start, for the metrics (counters): the configured buckets'
   * and those of buckets a reload removed (a bucket removed and configured again counts on).
   */
  meteredCounts(): Record<string, { hits: number; misses: number; stale: number }> {
    const out: Record<string, { hits: number; misses: number; stale: number }> = {};
    for (const [name, r] of this.retired) out[name] = { hits: r.hits, misses: r.misses, stale: r.stale };
    for (const [name, c] of this.counters) {
      const o = (out[name] ??= { hits: 0, misses: 0, stale: 0 });
      o.hits += c.hits;
      o.misses += c.misses;
      o.stale += c.stale;
    }
    return out;
  }

  /** Settles when every layer is ready to serve or has stopped waiting for its service (start-up waits for it before listening). */
  async started(): Promise<void> {
    await Promise.all(this.layers.map((l) => l.started?.()));
  }

  /** Closes every layer (connections, timers, unfinished temporary files). */
  async close(): Promise<void> {
    await Promise.all(this.layers.map((l) => Promise.resolve(l.close?.()).catch(noop)));
  }

  /**
   * Snapshot for GET /admin/cache/stats and for the metrics renderer:
   * hits/misses/stale per bucket → yatagarasu_cache_{hits,misses,stale}_total{bucket}, coalesced → yatagarasu_cache_coalesced_total;
   * total.evictions/bytes/items → yatagarasu_cache_evictions_total, _bytes, _items.
   * items/bytes/evictions come from the first (memory) layer; `layers` has each layer's own.
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
      addCounters(total, c);
    }
    for (const r of this.retired.values()) addCounters(total, r);
    // HITs counted by the layer that served them (source set), the first layer's own excepted:
    // a disk-first cache (`cache_layers: [disk]`, `[disk, redis]`) tags every disk hit with
    // source "disk", and subtracting those from its own count reported 0 disk hits.
    let lower = 0;
    for (const [name, n] of this.lowerHits) if (name !== this.first.name) lower += n;
    const layers: CacheStats["layers"] = {};
    for (const l of this.layers) {
      const { buckets: _b, ...rest } = l === this.first ? first : l.stats();
      const hits = l === this.first ? total.hits - lower : (this.lowerHits.get(l.name) ?? 0);
      const health = l.health?.();
      layers[l.name] = { ...rest, hits, errors: l.errors?.() ?? 0, ...(health ? { health } : undefined) };
    }
    return { total, buckets, layers };
  }
}
