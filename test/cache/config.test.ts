/**
 * The cache's config: strict validation of cache_layers and the disk/redis sections (messages
 * name the YAML path), per-bucket policies with a disk layer, what needs a restart, and where a
 * worker's disk folder is.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bucketCachePolicy, cacheRestartChanges, cacheRestartKey, diskDir } from "../../src/cache/index.ts";
import { purgeUnservedFolder, retireOtherLayouts } from "../../src/cache/config.ts";
import { takeLock } from "../../src/cache/disk-scan.ts";
import { keyHash, objectPath } from "../../src/cache/disk-format.ts";
import { redisTarget } from "../../src/cache/redis-link.ts";
import { ConfigError, parseConfig } from "../../src/config/load.ts";
import { CacheSchema } from "../../src/config/schema.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const MiB = 1024 * 1024;

function configError(cache: string): string {
  const yaml = `cache:\n${cache}\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: x } }\n`;
  try {
    parseConfig(yaml, { env: {} });
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("the config was accepted");
}

describe("validation", () => {
  test("the original project's shape is accepted, with defaults", () => {
    const c = CacheSchema.parse({
      enabled: true,
      cache_layers: ["memory", "disk", "redis"],
      memory: { max_item_size_mb: 10, max_cache_size_mb: 256, default_ttl_seconds: 3600 },
      disk: { path: "/var/cache/yatagarasu", max_disk_size_mb: 10240, max_item_size_mb: 1024 },
      redis: { url: "redis://cache.internal:6379/2", key_prefix: "yatagarasu:", max_item_size_mb: 10, connect_timeout_ms: 500 },
    });
    expect(c.disk).toEqual({ path: "/var/cache/yatagarasu", max_disk_size_mb: 10240, max_item_size_mb: 1024, fsync: false, verify_at_start: true });
    expect(c.redis).toEqual({ url: "redis://cache.internal:6379/2", key_prefix: "yatagarasu:", max_item_size_mb: 10, connect_timeout_ms: 500, operation_timeout_ms: 500 });
    expect(CacheSchema.parse({ cache_layers: ["redis"], redis: { url: "rediss://:pw@h:6380" } }).redis!.key_prefix).toBe("yatagarasu:");
  });

  test.each([
    ["  cache_layers: [memory, ssd]", "cache.cache_layers[1]", "unknown cache layer, got \"ssd\"; use memory, disk, redis"],
    ["  cache_layers: []", "cache.cache_layers", "list at least one layer"],
    ["  cache_layers: [memory, memory]", "cache.cache_layers", "a layer is listed twice"],
    ["  cache_layers: [disk, memory]\n  disk: { path: /tmp/c }", "cache.cache_layers", "fastest first: memory, disk, redis"],
    ["  cache_layers: [memory, disk]", "cache.disk", "the cache.disk section is required"],
    ["  cache_layers: [memory, redis]", "cache.redis", "the cache.redis section is required"],
    ["  disk: { path: /tmp/c }", "cache.disk", "cache_layers does not list disk"],
    ["  redis: { url: redis://h }", "cache.redis", "cache_layers does not list redis"],
    ["  cache_layers: [disk]\n  disk: { path: /tmp/c, max_disk_size_mb: 10, max_item_size_mb: 11 }", "cache.disk.max_item_size_mb", "must not exceed max_disk_size_mb (10), got 11"],
    ["  memory: { max_cache_size_mb: 1024, max_item_size_mb: 2048 }", "cache.memory.max_item_size_mb", "must not exceed max_cache_size_mb (1024), got 2048"],
    ["  cache_layers: [disk]\n  disk: { path: /tmp/c, max_size: 10 }", "cache.disk", "max_size"],
    ["  cache_layers: [disk]\n  disk: { path: '' }", "cache.disk.path", "must not be empty"],
    ["  cache_layers: [redis]\n  redis: { url: 'http://h:6379' }", "cache.redis.url", "must be a redis:// or rediss:// URL"],
    ["  cache_layers: [redis]\n  redis: { url: 'redis://yatagarasu:ab/cd@127.0.0.1:6379/2' }", "cache.redis.url", "in the user name or password must be percent-encoded (%2F, %3F, %23, %40, %25)"],
    ["  cache_layers: [redis]\n  redis: { url: 'redis://yatagarasu:ab#cd@127.0.0.1:6379' }", "cache.redis.url", "must be percent-encoded"],
    ["  cache_layers: [redis]\n  redis: { url: 'redis://yatagarasu:50%off@127.0.0.1:6379/0' }", "cache.redis.url", "must be percent-encoded"],
    ["  cache_layers: [redis]\n  redis: { url: 'redis://yatagarasu:pw%@127.0.0.1:6379/0' }", "cache.redis.url", "must be percent-encoded"],
    ["  cache_layers: [redis]\n  redis: { url: 'redis://us%zzer:pw@127.0.0.1:6379/0' }", "cache.redis.url", "must be percent-encoded"],
    ["  cache_layers: [redis]\n  redis: { url: 'redis://yatagarasu:p@ss/w0rd#x@127.0.0.1:6379/0' }", "cache.redis.url", "must be percent-encoded"],
    ["  cache_layers: [redis]\n  redis: { url: 'redis://yatagarasu:p@ss@127.0.0.1:6379/0' }", "cache.redis.url", "must be percent-encoded"],
    ["  cache_layers: [redis]\n  redis: { url: 'redis://h', key_prefix: '' }", "cache.redis.key_prefix", "must not be empty"],
    ["  cache_layers: [redis]\n  redis: { url: 'redis://h', max_item_size_mb: 600 }", "cache.redis.max_item_size_mb", "must be at most 511, got 600: a Redis string"],
    ["  cache_layers: [redis]\n  redis: { url: 'redis://h', connect_timeout_ms: 0 }", "cache.redis.connect_timeout_ms", ""],
    ["  cache_layers: [redis]\n  redis: { url: 'redis://h', ttl_seconds: 5 }", "cache.redis", "ttl_seconds"],
  ])("%s → an error at %s", (yaml, path, message) => {
    const msg = configError(yaml);
    expect(msg).toContain(path);
    expect(msg).toContain(message);
  });

  test("a Redis URL's password never appears in a validation message", () => {
    const msg = configError("  cache_layers: [redis]\n  redis: { url: 'http://user:s3cr3t@h' }");
    expect(msg).not.toContain("s3cr3t");
  });

  test("logs name Redis by scheme, host and database only", () => {
    expect(redisTarget("redis://user:s3cr3t@cache.internal:6380/2")).toBe("redis://cache.internal:6380/2");
    expect(redisTarget("rediss://:pw@h")).toBe("rediss://h");
  });
});

describe("policy", () => {
  const cfg = CacheSchema.parse({
    enabled: true,
    cache_layers: ["memory", "disk", "redis"],
    memory: { max_item_size_mb: 2 },
    disk: { path: "/c", max_item_size_mb: 500 },
    redis: { url: "redis://h", max_item_size_mb: 8 },
  });

  test("the item limit is the largest layer's; buffered up to the largest memory/Redis item; deadlines from s3.timeout", () => {
    expect(bucketCachePolicy(cfg, { cache: { enabled: true }, s3: { timeout: 20 } })).toEqual({
      ttlSeconds: undefined,
      defaultTtlSeconds: 3600,
      maxItemBytes: 500 * MiB,
      bufferBytes: 8 * MiB,
      fillTimeoutMs: 28_000,
      stallTimeoutMs: 20_000,
    });
    expect(bucketCachePolicy(cfg, { cache: { enabled: true, max_item_size_mb: 5 } })).toEqual({ ttlSeconds: undefined, defaultTtlSeconds: 3600, maxItemBytes: 5 * MiB });
    expect(bucketCachePolicy(cfg, { cache: { enabled: true, max_item_size_mb: 5000 } })!.maxItemBytes).toBe(500 * MiB);
  });

  test("with replicas: the fill's deadline is every replica's own timeout plus the body's allowance; fillBodyMs is that allowance", () => {
    const policy = bucketCachePolicy(cfg, { cache: { enabled: true }, s3: { timeout: 20, replicas: [{ timeout: 60 }, {}, { timeout: 5 }] } });
    expect(policy).toMatchObject({ fillTimeoutMs: 68_000 + 28_000 + 13_000, fillBodyMs: 8_000 });
    expect(bucketCachePolicy(cfg, { cache: { enabled: true }, s3: { timeout: 20 } })!.fillBodyMs).toBeUndefined();
  });

  test("stale_if_error_seconds: the bucket's, else the cache section's (default 0: off, absent from the policy); negative or fractional refused", () => {
    expect(bucketCachePolicy(cfg, { cache: { enabled: true } })!.staleIfErrorSeconds).toBeUndefined();
    expect(bucketCachePolicy(cfg, { cache: { enabled: true, stale_if_error_seconds: 30 } })!.staleIfErrorSeconds).toBe(30);
    const withDefault = CacheSchema.parse({ enabled: true, stale_if_error_seconds: 600 });
    expect(bucketCachePolicy(withDefault, { cache: { enabled: true } })!.staleIfErrorSeconds).toBe(600);
    expect(bucketCachePolicy(withDefault, { cache: { enabled: true, stale_if_error_seconds: 0 } })!.staleIfErrorSeconds).toBeUndefined();
    expect(CacheSchema.safeParse({ stale_if_error_seconds: -1 }).success).toBe(false);
    expect(CacheSchema.safeParse({ stale_if_error_seconds: 1.5 }).success).toBe(false);
  });

  test("disk only: buffered up to memory.max_item_size_mb, larger objects stream to disk", () => {
    const disk = CacheSchema.parse({ enabled: true, cache_layers: ["disk"], memory: { max_item_size_mb: 3 }, disk: { path: "/c" } });
    expect(bucketCachePolicy(disk, { cache: { enabled: true } })).toMatchObject({ maxItemBytes: 1024 * MiB, bufferBytes: 3 * MiB });
  });
});

describe("restart and folders", () => {
  const base = { enabled: true, cache_layers: ["memory", "disk"], disk: { path: "/c" } };

  test("sizes and TTLs reload; which layers exist and where needs a restart", () => {
    const key = cacheRestartKey(CacheSchema.parse(base));
    expect(cacheRestartKey(CacheSchema.parse({ ...base, disk: { path: "/c", max_disk_size_mb: 2000 }, memory: { max_cache_size_mb: 1 } }))).toBe(key);
    expect(cacheRestartKey(CacheSchema.parse({ ...base, disk: { path: "/d" } }))).not.toBe(key);
    expect(cacheRestartKey(CacheSchema.parse({ ...base, enabled: false }))).not.toBe(key);
    expect(cacheRestartKey(CacheSchema.parse({ enabled: false }))).toBe(cacheRestartKey(CacheSchema.parse({ enabled: true })));
  });

  // A reload that wrote the same folder another way ("cache" -> "./cache/", or its absolute path)
  // was refused as "cache.disk.path changed ... restart the process".
  test("disk.path is compared as the folder it names, resolved against the config's folder", () => {
    const at = (path: string) => CacheSchema.parse({ ...base, disk: { path } });
    for (const same of ["./cache/", "/etc/yata/cache", "/etc/yata/x/../cache"]) {
      expect(cacheRestartKey(at(same), "/etc/yata")).toBe(cacheRestartKey(at("cache"), "/etc/yata"));
      expect(cacheRestartChanges(at("cache"), at(same), "/etc/yata")).toEqual([]);
    }
    expect(cacheRestartKey(at("cache2"), "/etc/yata")).not.toBe(cacheRestartKey(at("cache"), "/etc/yata"));
    expect(cacheRestartChanges(at("cache"), at("/var/cache"), "/etc/yata")).toEqual(["cache.disk.path"]);
  });

  test("the memory layer added or removed beside the disk layer needs a restart too (it was accepted and ignored)", () => {
    const withMemory = CacheSchema.parse(base);
    const diskOnly = CacheSchema.parse({ ...base, cache_layers: ["disk"] });
    expect(cacheRestartKey(diskOnly)).not.toBe(cacheRestartKey(withMemory));
    expect(cacheRestartChanges(withMemory, diskOnly)).toEqual(["cache.cache_layers"]);
    expect(cacheRestartChanges(diskOnly, withMemory)).toEqual(["cache.cache_layers"]);
    expect(cacheRestartChanges(withMemory, CacheSchema.parse({ ...base, memory: { max_cache_size_mb: 1 } }))).toEqual([]);
  });

  test("a refused reload names what changed (it said only 'the redis connection', for a key_prefix or a timeout too), never the Redis URL itself", () => {
    const redis = { enabled: true, cache_layers: ["memory", "redis"], redis: { url: "redis://:Secret-pw@h:6379", key_prefix: "a:" } };
    const old = CacheSchema.parse(redis);
    expect(cacheRestartChanges(old, CacheSchema.parse({ ...redis, redis: { ...redis.redis, operation_timeout_ms: 800 } }))).toEqual(["cache.redis.operation_timeout_ms"]);
    expect(cacheRestartChanges(old, CacheSchema.parse({ ...redis, redis: { ...redis.redis, key_prefix: "b:", connect_timeout_ms: 900 } }))).toEqual(["cache.redis.key_prefix", "cache.redis.connect_timeout_ms"]);
    expect(cacheRestartChanges(old, CacheSchema.parse({ ...redis, redis: { ...redis.redis, url: "redis://:Other-pw@h:6379" } }))).toEqual(["cache.redis.url"]);
    expect(cacheRestartChanges(old, CacheSchema.parse({ ...redis, cache_layers: ["memory"] }))).toEqual(["cache.cache_layers"]);
    // (named with how an unwritten cache.enabled follows the buckets: the first bucket given a cache under a section without `enabled` was refused for a key never written)
    expect(cacheRestartChanges(old, CacheSchema.parse({ ...redis, enabled: false }))).toEqual(["cache.enabled (which, when not written, is on once any bucket sets cache: { enabled: true } and off while none does)"]);
    expect(cacheRestartChanges(CacheSchema.parse(base), CacheSchema.parse({ ...base, disk: { path: "/d", fsync: true } }))).toEqual(["cache.disk.path", "cache.disk.fsync"]);
    expect(cacheRestartChanges(old, CacheSchema.parse({ ...redis, redis: { ...redis.redis, max_item_size_mb: 1 } }))).toEqual([]);
  });

  test("a relative path is relative to the config file's folder; workers get their own folder", () => {
    const disk = { path: "cache", max_disk_size_mb: 100, max_item_size_mb: 10, fsync: false, verify_at_start: true };
    expect(diskDir(disk, { baseDir: "/etc/yata" })).toBe("/etc/yata/cache");
    expect(diskDir({ ...disk, path: "/var/c" }, { baseDir: "/etc/yata", share: 4, worker: 2 })).toBe("/var/c/worker-2");
    expect(diskDir({ ...disk, path: "/var/c" }, { share: 4, worker: undefined })).toBe("/var/c/worker-0");
  });
});

describe("retireOtherLayouts: the disk folders another server.workers left", () => {
  const layout = () => {
    const base = mkdtempSync(join(tmpdir(), "yata-layout-"));
    for (const d of ["objects/ab", "tmp", "worker-0/objects", "worker-1/objects", "worker-2/objects", "elsewhere"]) mkdirSync(join(base, d), { recursive: true });
    writeFileSync(join(base, "objects/ab/f"), "x");
    writeFileSync(join(base, "redis-position-8080.json"), "{}");
    return base;
  };
  test("a single process deletes the workers' folders; a group's worker 0 deletes the single layout's and those of workers >= N; another worker deletes nothing", () => {
    for (const [deps, left] of [
      [{ share: 1 }, ["elsewhere", "objects", "redis-position-8080.json", "tmp"]],
      [{ share: 2, worker: 0 }, ["elsewhere", "redis-position-8080.json", "worker-0", "worker-1"]],
      [{ share: 3, worker: 0 }, ["elsewhere", "redis-position-8080.json", "worker-0", "worker-1", "worker-2"]],
      [{ share: 2, worker: 1 }, ["elsewhere", "objects", "redis-position-8080.json", "tmp", "worker-0", "worker-1", "worker-2"]],
    ] as const) {
      const base = layout();
      try {
        retireOtherLayouts({ path: base } as never, deps);
        expect([deps, readdirSync(base).sort()]).toEqual([deps, [...left]]);
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    }
    // a folder not there yet: nothing to do
    expect(retireOtherLayouts({ path: join(tmpdir(), "yata-layout-absent-zz") } as never, { share: 1 })).toEqual([]);
  });

  test("a layout another proxy is running on (its lock names a live process, another instance) is left alone: a start with another server.workers deleted its whole disk cache", () => {
    for (const [deps, locked, left] of [
      [{ share: 1, instance: "8081" }, "worker-1", ["elsewhere", "objects", "redis-position-8080.json", "tmp", "worker-1"]],
      [{ share: 2, worker: 0, instance: "8081" }, ".", ["elsewhere", "instance-8080.lock", "objects", "redis-position-8080.json", "tmp", "worker-0", "worker-1"]],
      // (its own instance's lock: this group's earlier layout, retired as before)
      // (and its purge-stream position there, of the files deleted: read, stale, by a later start back on that layout)
      [{ share: 2, worker: 0, instance: "8080" }, ".", ["elsewhere", "instance-8080.lock", "worker-0", "worker-1"]],
    ] as const) {
      const base = layout();
      try {
        takeLock(join(base, locked), "8080");
        retireOtherLayouts({ path: base } as never, deps);
        expect([deps, readdirSync(base).sort()]).toEqual([deps, [...left]]);
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    }
  });
});

describe("takeLock", () => {
  test("the lock is written aside and renamed into place: a start reading it meanwhile sees the old text or the new, never the empty file a rewrite in place leaves for a moment", () => {
    const dir = mkdtempSync(join(tmpdir(), "yata-lock-"));
    try {
      const file = join(dir, "instance-8080.lock");
      expect(takeLock(dir, "8080", false, false)).toBe(true);
      const before = readFileSync(file, "utf8");
      expect(before).toEndWith(" starting\n");
      // a reader that opened the file before the rewrite: renamed over, its file keeps the old text whole
      const fd = openSync(file, "r");
      try {
        expect(takeLock(dir, "8080", true, true)).toBe(true);
        expect(readFileSync(fd, "utf8")).toBe(before);
      } finally {
        closeSync(fd);
      }
      expect(readFileSync(file, "utf8")).toBe(before.replace(" starting", ""));
      expect(readdirSync(dir)).toEqual(["instance-8080.lock"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("purgeUnservedFolder: a purge applied to the folder of a worker slot with no process", () => {
  test("a key's files go, the others' stay; a prefix empties the folder's objects", () => {
    const base = mkdtempSync(join(tmpdir(), "yata-unserved-"));
    const cfg = CacheSchema.parse({ enabled: true, cache_layers: ["memory", "disk"], disk: { path: base } });
    const files = (w: number) => readdirSync(join(base, `worker-${w}`, "objects"), { recursive: true }).filter((f) => String(f).endsWith(".obj")).length;
    try {
      for (const [w, key, version] of [[1, "b/k", "v1"], [1, "b/k", "v2"], [1, "b/other", "v1"], [0, "b/k", "v1"]] as const) {
        const path = join(base, `worker-${w}`, objectPath(keyHash(key), version));
        mkdirSync(join(path, ".."), { recursive: true });
        writeFileSync(path, "x");
      }
      purgeUnservedFolder(cfg, { share: 2, worker: 1 }, { kind: "key", key: "b/k" });
      expect([files(0), files(1)]).toEqual([1, 1]);
      purgeUnservedFolder(cfg, { share: 2, worker: 1 }, { kind: "key", key: "b/absent" });
      expect([files(0), files(1)]).toEqual([1, 1]);
      purgeUnservedFolder(cfg, { share: 2, worker: 1 }, { kind: "prefix", prefix: "b/" });
      expect(readdirSync(join(base, "worker-1"))).toEqual([]);
      expect(files(0)).toBe(1);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
