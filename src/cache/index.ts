/**
 * The response cache: public API and construction from the config.
 *
 *   const cache = createCache(config.cache);               // once (and keep it across reloads)
 *   const policy = bucketCachePolicy(config.cache, bucket); // null → don't use the cache for this bucket
 *   const { response, cacheStatus, passthrough } = await serveWithCache({ cache, bucket: bucket.name, key, method, reqHeaders, policy, upstream });
 *
 * On reload: applyCacheConfig(cache, newConfig.cache); cache.removeBucket(name) for removed buckets.
 */
import type { BucketConfig, CacheConfig } from "../config/schema.ts";
import { Cache } from "./cache.ts";
import type { CachePolicy } from "./flight.ts";
import { MemoryLayer } from "./memory.ts";
import type { CacheLayer } from "./types.ts";

export { Cache, type BucketCounters, type BucketStats, type CacheStats } from "./cache.ts";
export { MemoryLayer, entryBytes, ENTRY_OVERHEAD } from "./memory.ts";
export { freshnessSeconds, pickHeaders } from "./freshness.ts";
export { type CachePolicy, type UpstreamFetch } from "./flight.ts";
export { serveHit, serveWithCache, type CacheStatus, type ServeArgs, type ServeResult } from "./serve.ts";
export type { CachedObject, CacheLayer, LayerStats, BucketLayerStats, MaybePromise } from "./types.ts";

const MiB = 1024 * 1024;

/** Builds the layers listed in `cache_layers` (today: memory). Built even when disabled, so a reload can enable it. */
export function createCache(cfg: CacheConfig): Cache {
  const layers: CacheLayer[] = [];
  for (const name of cfg.cache_layers) {
    if (name === "memory") {
      layers.push(new MemoryLayer(Math.floor(cfg.memory.max_cache_size_mb * MiB), Math.floor(cfg.memory.max_item_size_mb * MiB)));
    }
  }
  if (layers.length === 0) layers.push(new MemoryLayer(Math.floor(cfg.memory.max_cache_size_mb * MiB), Math.floor(cfg.memory.max_item_size_mb * MiB)));
  return new Cache(layers);
}

/** After a reload: new capacity / item limit (evicts down if smaller). TTLs apply through the per-call policy. */
export function applyCacheConfig(cache: Cache, cfg: CacheConfig): void {
  cache.resize(Math.floor(cfg.memory.max_cache_size_mb * MiB), Math.floor(cfg.memory.max_item_size_mb * MiB));
}

/**
 * The policy of one bucket, or null when the bucket must not use the cache (global `cache.enabled`
 * and the bucket's `cache.enabled` must both be true). The bucket's max_item_size_mb is capped by the
 * global one (the memory layer would refuse larger items anyway).
 */
export function bucketCachePolicy(cfg: CacheConfig, bucket: Pick<BucketConfig, "cache">): CachePolicy | null {
  if (!cfg.enabled || bucket.cache?.enabled !== true) return null;
  const globalMax = cfg.memory.max_item_size_mb;
  const itemMb = Math.min(bucket.cache.max_item_size_mb ?? globalMax, globalMax);
  return {
    ttlSeconds: bucket.cache.ttl_seconds,
    defaultTtlSeconds: cfg.memory.default_ttl_seconds,
    maxItemBytes: Math.floor(itemMb * MiB),
  };
}
