/**
 * Which rate limiter a config generation gets: none (no limit configured), the in-memory one
 * (server.rate_limit.backend: memory, the default; workers split the rates), or the Redis-shared
 * one (backend: redis; see redis-limiter.ts).
 */
import { anyRateLimit } from "../config/rate-limit.ts";
import type { Logger } from "../observe/log.ts";
import { RateLimiter, type RateCheck, type RateLimitSource, type ServerRateLimit } from "./rate-limiter.ts";
import { RedisRateLimiter } from "./redis-limiter.ts";

/** What the admit phase asks. The memory limiter answers synchronously; the Redis one may answer with a promise. */
export interface Limiter {
  check(clientIp: string, bucket?: string): RateCheck | Promise<RateCheck>;
  close?(): void;
  /** Settles once the limits are shared, or the first attempt to share them has ended (a bounded wait: Redis). */
  started?(): Promise<void>;
}

/** The config the limiter reads: the limits, the backend, and the cache's Redis (the default URL). */
export interface LimiterSource extends RateLimitSource {
  server: {
    rate_limit?: ServerRateLimit & { backend?: "memory" | "redis"; redis_url?: string; redis_key_prefix?: string; redis_timeout_ms?: number; instances?: number };
  };
  cache?: unknown;
}

/** The Redis URL the shared limits use: server.rate_limit.redis_url, else cache.redis.url. */
export function limiterRedisUrl(cfg: LimiterSource): string | undefined {
  const cacheRedis = (cfg.cache as { redis?: { url?: string; key_prefix?: string } } | undefined)?.redis;
  return cfg.server.rate_limit?.redis_url ?? cacheRedis?.url;
}

/** The prefix of the shared limits' keys: server.rate_limit.redis_key_prefix, else cache.redis.key_prefix (undefined: the default). */
export function limiterKeyPrefix(cfg: LimiterSource): string | undefined {
  return cfg.server.rate_limit?.redis_key_prefix ?? (cfg.cache as { redis?: { key_prefix?: string } } | undefined)?.redis?.key_prefix;
}

export function buildLimiter(cfg: LimiterSource, opts: { share: number; log: Logger; connect?: boolean; previous?: Limiter }): Limiter | undefined {
  const rl = cfg.server.rate_limit;
  if (!anyRateLimit(cfg)) return undefined;
  if (rl?.backend !== "redis") return RateLimiter.fromConfig(cfg, { share: opts.share });
  const url = limiterRedisUrl(cfg);
  // Validation refuses backend: redis without a URL; this is the second line of defence.
  if (url === undefined) throw new Error("server.rate_limit.backend is redis but neither server.rate_limit.redis_url nor cache.redis.url is set");
  const keyPrefix = limiterKeyPrefix(cfg);
  return new RedisRateLimiter(cfg, {
    url,
    keyPrefix,
    timeoutMs: rl.redis_timeout_ms ?? 50,
    share: opts.share * (rl.instances ?? 1),
    log: opts.log,
    connect: opts.connect,
    reported: opts.previous instanceof RedisRateLimiter && opts.previous.redisUrl === url ? opts.previous.lastReported : undefined,
    previous: opts.previous instanceof RedisRateLimiter ? opts.previous : undefined,
  });
}
