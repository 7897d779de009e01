/**
 * Cross-field rules of server.rate_limit (called from validate.ts): the Redis backend needs a
 * Redis, and redis_url and redis_key_prefix mean something only with it.
 */
import type { PathSegment } from "./path.ts";
import { redisUrlProblem, type RawConfig } from "./schema.ts";

export function rateLimitIssues(cfg: RawConfig): Array<{ path: PathSegment[]; message: string }> {
  const rl = cfg.server.rate_limit;
  if (rl === undefined) return [];
  const issues: Array<{ path: PathSegment[]; message: string }> = [];
  const at = (...p: PathSegment[]) => ["server", "rate_limit", ...p];
  // The cache's Redis section belongs to the cache layers; only its url is read here.
  const cacheUrl = (cfg.cache as { redis?: { url?: unknown } }).redis?.url;
  if (rl.backend !== "redis") {
    for (const k of ["redis_url", "redis_key_prefix"] as const)
      if (rl[k] !== undefined) issues.push({ path: at(k), message: "is only used with backend: redis (set server.rate_limit.backend: redis, or remove it)" });
    return issues;
  }
  if (rl.redis_url !== undefined) {
    const problem = redisUrlProblem(rl.redis_url);
    if (problem !== undefined) issues.push({ path: at("redis_url"), message: problem });
  } else if (typeof cacheUrl !== "string" || cacheUrl === "") {
    issues.push({ path: at("backend"), message: "backend redis needs a Redis: set server.rate_limit.redis_url (or cache.redis.url)" });
  }
  return issues;
}

/**
 * Whether a config gets a rate limiter at all (buildLimiter; --check's summary says so): the
 * global and per-IP limits (server.rate_limit.enabled), or any bucket's s3.rate_limit, which
 * applies whatever enabled says, shared in Redis with backend: redis.
 */
export function anyRateLimit(cfg: { server: { rate_limit?: { enabled?: boolean } }; buckets: readonly { s3: { rate_limit?: unknown } }[] }): boolean {
  return !!cfg.server.rate_limit?.enabled || cfg.buckets.some((b) => b.s3.rate_limit);
}
