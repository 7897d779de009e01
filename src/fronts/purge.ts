/**
 * What a successful write or delete does to the cache, on both fronts: the key is purged from
 * every caching bucket that reads the store the write landed in (BucketRuntime.cacheMates), in
 * every layer, and through the shared layer's purge log on the other replicas. A bucket that does
 * not cache may still write to a store another bucket caches: its writes purge that bucket.
 */
import type { BucketConfig } from "../config/schema.ts";
import type { RequestContext } from "../proxy/context.ts";
import { cacheMatesOf, type Runtime } from "../runtime.ts";

/** Per generation: the buckets that may hold a cached copy of what a bucket writes (Runtime's cacheMates rule). */
const matesByRuntime = new WeakMap<Runtime, (b: BucketConfig) => string[]>();

/**
 * The buckets a write's purge must reach: the mates of the generation the write was admitted in
 * and, after a reload since (a write takes as long as its body does), those of the current one,
 * which may cache the store too (a bucket added on it, or whose cache was switched on): a GET
 * through such a bucket while the write was under way cached the old object, which its purge then
 * missed (served as a HIT after the write's answer, until its TTL).
 */
function matesOf(ctx: RequestContext): readonly string[] {
  const own = ctx.bucket!.cacheMates;
  const now = ctx.svc.runtime;
  if (now === ctx.rt) return own;
  let of = matesByRuntime.get(now);
  if (of === undefined) matesByRuntime.set(now, (of = cacheMatesOf(now.config)));
  const later = of(ctx.bucket!.cfg);
  return later.every((n) => own.includes(n)) ? own : [...new Set([...own, ...later])];
}

/** undefined when no bucket caches the store (no promise, no tick, per write). */
export function purgeWritten(ctx: RequestContext, key: string): Promise<unknown> | undefined {
  const mates = matesOf(ctx);
  if (mates.length === 0) return undefined;
  return ctx.svc.cache.purgeObjectIn(mates, key);
}

/**
 * Runs a write's upstream exchange. When its outcome is unknown to the proxy (it threw: no answer
 * in time, the connection cut or reset once the request went out; or it was answered 5xx) the
 * upstream may have applied it all the same, so the keys are purged then too: a purge costs one
 * refill, a kept copy was served as current for the rest of its TTL (a PUT or DELETE whose answer
 * was lost left the old object, or a deleted one, served as a HIT while the store held the new
 * one or none). A definite refusal (a 4xx to the first attempt) changed nothing and purges nothing.
 */
export function purgeIfUnsure<T extends { status: number }>(ctx: RequestContext, keys: readonly string[], run: () => Promise<T>): Promise<T> {
  // (no bucket caches the store: the write as it is, no extra frame per write)
  return matesOf(ctx).length === 0 ? run() : purgingIfUnsure(ctx, keys, run);
}

async function purgingIfUnsure<T extends { status: number }>(ctx: RequestContext, keys: readonly string[], run: () => Promise<T>): Promise<T> {
  let res: T;
  try {
    res = await run();
  } catch (err) {
    await purgeAfterLoss(ctx, keys);
    throw err;
  }
  const purging = purgeUnsureAnswer(ctx, keys, res.status);
  if (purging !== undefined) await purging;
  return res;
}

/**
 * purgeIfUnsure's step for a write that threw (its outcome unknown), for a caller that awaits the
 * write itself (PutObject: no closure, no extra async layer per write).
 */
export async function purgeAfterLoss(ctx: RequestContext, keys: readonly string[]): Promise<void> {
  if (matesOf(ctx).length === 0) return;
  await Promise.all(keys.map((k) => purgeWritten(ctx, k)));
  // The store may apply the write after the proxy gave up on its answer (S3 commits a body it
  // took whole): a read in between cached the old object again, then served as a HIT for its
  // TTL while the store held the new one (or none). Purged once more, s3.timeout later (holding
  // the names, not the request), unless it never went out (refused by an open breaker).
  if (ctx.timing.attempts > 0) purgeLater(ctx.svc.cache, matesOf(ctx), keys, ctx.bucket!.cfg.s3.timeout * 1000);
}

/** purgeIfUnsure's step for a write answered `status`: the keys' purge when that leaves its outcome unsure, else undefined. */
export function purgeUnsureAnswer(ctx: RequestContext, keys: readonly string[], status: number): Promise<unknown> | undefined {
  // (a 4xx to a resent write says nothing of the attempt before it, which may have landed)
  if (!(status >= 500 || (status >= 400 && ctx.timing.attempts > 1)) || matesOf(ctx).length === 0) return undefined;
  return Promise.all(keys.map((k) => purgeWritten(ctx, k)));
}

/**
 * purgeAfterLoss's second purge, `ms` later. Its own function so that the timer's closure holds
 * the names alone: made in purgeAfterLoss it shared the scope that holds `ctx` (captured by the
 * purge above), and kept the request, its body stream and the held chunks until it fired.
 */
function purgeLater(cache: RequestContext["svc"]["cache"], mates: readonly string[], keys: readonly string[], ms: number): void {
  setTimeout(() => void Promise.all(keys.map((k) => cache.purgeObjectIn(mates, k))), ms).unref();
}
