/**
 * What a successful write or delete does to the cache, on both fronts: the key is purged from
 * every caching bucket that reads the store the write landed in (BucketRuntime.cacheMates), in
 * every layer, and through the shared layer's purge log on the other replicas. A bucket that does
 * not cache may still write to a store another bucket caches: its writes purge that bucket.
 */
import type { RequestContext } from "../proxy/context.ts";

/** undefined when no bucket caches the store (no promise, no tick, per write). */
export function purgeWritten(ctx: RequestContext, key: string): Promise<unknown> | undefined {
  const mates = ctx.bucket!.cacheMates;
  if (mates.length === 0) return undefined;
  const cache = ctx.svc.cache;
  if (mates.length === 1) return cache.purgeObject(mates[0]!, key).catch(() => 0);
  return Promise.all(mates.map((name) => cache.purgeObject(name, key).catch(() => 0)));
}
