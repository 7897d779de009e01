/** server.rate_limit.backend and its Redis: what loads, what is refused and why. */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { parseConfig } from "../../src/config/load.ts";
import { buildLimiter, limiterRedisUrl, RateLimiter } from "../../src/limits/index.ts";
import { nullLogger } from "../../src/observe/log.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const cfg = (rateLimit: string) => `server:\n  rate_limit: ${rateLimit}\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: data } }\n`;
const problems = (yaml: string): string => {
  try {
    parseConfig(yaml, { env: {} });
  } catch (e) {
    return (e as Error).message;
  }
  return "";
};

describe("server.rate_limit.backend", () => {
  test("memory is the default, with its defaults for the Redis settings; the limiter is the synchronous in-memory one", () => {
    const c = parseConfig(cfg("{ global: { requests_per_second: 10 } }"), { env: {} });
    expect(c.server.rate_limit).toMatchObject({ backend: "memory", redis_timeout_ms: 50, instances: 1 });
    expect(buildLimiter(c, { share: 1, log: nullLogger, connect: false })).toBeInstanceOf(RateLimiter);
  });

  test("redis with its own URL loads", () => {
    const c = parseConfig(cfg(`{ backend: redis, redis_url: "redis://:pw@10.0.0.5:6379/2", instances: 3, global: { requests_per_second: 10 } }`), { env: {} });
    expect(c.server.rate_limit).toMatchObject({ backend: "redis", instances: 3 });
    expect(limiterRedisUrl(c)).toBe("redis://:pw@10.0.0.5:6379/2");
  });

  test("redis without a Redis, a non-Redis URL, a URL without the redis backend, an unknown backend: each refused with what to do", () => {
    expect(problems(cfg("{ backend: redis, global: { requests_per_second: 10 } }"))).toContain(
      "server.rate_limit.backend: backend redis needs a Redis: set server.rate_limit.redis_url (or cache.redis.url)",
    );
    const bad = problems(cfg(`{ backend: redis, redis_url: "http://user:secret@h:1" }`));
    expect(bad).toContain("server.rate_limit.redis_url: must be a redis:// or rediss:// URL");
    expect(bad).not.toContain("secret");
    expect(problems(cfg(`{ redis_url: "redis://h:6379" }`))).toContain("server.rate_limit.redis_url: is only used with backend: redis");
    expect(problems(cfg("{ backend: memcached }"))).toContain('unknown rate_limit backend, got "memcached"; use memory or redis');
  });

  test("without redis_url, the cache's Redis is used", () => {
    const src = { server: { rate_limit: { backend: "redis" as const } }, buckets: [], cache: { redis: { url: "redis://cache:6379" } } };
    expect(limiterRedisUrl(src)).toBe("redis://cache:6379");
    expect(limiterRedisUrl({ ...src, server: { rate_limit: { backend: "redis", redis_url: "redis://rl:6379" } } })).toBe("redis://rl:6379");
  });
});
