/**
 * The response cache: public API and construction from the config.
 *
 *   const cache = createCache(config.cache, { baseDir, log, share, worker, stores: cacheStores(config) });  // once (kept across reloads)
 *   registerCacheMetrics(metrics.registry, cache);
 *   const policy = bucketCachePolicy(config.cache, bucket); // null → don't use the cache for this bucket
 *   const { response, cacheStatus, passthrough } = await serveWithCache({ cache, bucket: bucket.name, key, method, reqHeaders, policy, upstream });
 *   await cache.close();                                    // shutdown: Redis connections, unfinished disk writes
 *
 * On reload: refuse it when cacheRestartKey changed; else applyCacheConfig(cache, newConfig.cache),
 * cache.setStores(cacheStores(newConfig)), and cache.removeBucket(name) for removed buckets (a
 * bucket that reads another store, or stops caching: cache.purgeBucket(name)). At start the disk
 * layer drops by itself what those purges would have dropped (the stores recorded in its files).
 */
import type { CacheConfig } from "../config/schema.ts";
import { Cache } from "./cache.ts";
import { buildLayers, type CacheDeps } from "./config.ts";
import type { DiskLayer } from "./disk.ts";

export { Cache, type BucketCounters, type BucketStats, type CacheStats, type LayerView } from "./cache.ts";
export { MemoryLayer, entryBytes, ENTRY_OVERHEAD } from "./memory.ts";
export { DiskLayer } from "./disk.ts";
export { RedisLayer } from "./redis.ts";
export { freshnessSeconds, pickHeaders } from "./freshness.ts";
export { type CachePolicy, type UpstreamFetch } from "./flight.ts";
export { serveHit, serveWithCache, withCacheStatus, type CacheStatus, type ServeArgs, type ServeResult } from "./serve.ts";
export { bucketCachePolicy, cacheRestartChanges, cacheRestartKey, cacheStores, diskDir, retireOtherDiskLayouts, storeStamp, upstreamIdentity, type CacheDeps } from "./config.ts";
export { registerCacheMetrics } from "./metrics.ts";
export type { CachedObject, CacheLayer, LayerStats, LayerHealth, BucketLayerStats, MaybePromise } from "./types.ts";

const MiB = 1024 * 1024;

/** Builds the layers listed in `cache_layers` (memory is built even when disabled, so a reload can enable it). */
export function createCache(cfg: CacheConfig, deps: CacheDeps = {}): Cache {
  return new Cache(buildLayers(cfg, deps));
}

/**
 * After a reload: new capacities and item limits (layers evict down if smaller). TTLs apply through
 * the per-call policy. Which layers exist and where (cacheRestartKey) needs a restart.
 */
export function applyCacheConfig(cache: Cache, cfg: CacheConfig): void {
  cache.resize(Math.floor(cfg.memory.max_cache_size_mb * MiB), Math.floor(cfg.memory.max_item_size_mb * MiB));
  const disk = cache.layer("disk") as DiskLayer | undefined;
  if (disk && cfg.disk) disk.resize(Math.floor((cfg.disk.max_disk_size_mb * MiB) / disk.share), Math.floor(cfg.disk.max_item_size_mb * MiB));
  if (cfg.redis) cache.layer("redis")?.resize?.(0, Math.floor(cfg.redis.max_item_size_mb * MiB));
}
