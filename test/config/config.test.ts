import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, formatIssues, loadConfig, parseConfig, shownArgument, type ConfigIssue } from "../../src/config/load.ts";
import { bucketCachePolicy, bucketItemCapNote, cacheOffNote, cacheUnusedNote, cgroupMemoryLimit, diskShareNote, memoryLimitNote } from "../../src/cache/config.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const B = `buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n`;

function issues(yaml: string, env: Record<string, string | undefined> = {}): ConfigIssue[] {
  try {
    parseConfig(yaml, { env });
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

// A bucket's max_item_size_mb above every layer's was capped in silence: the original README's
// `max_size: "1GB"`, rewritten as the refusal said (`max_item_size_mb` here), as 1024 over the
// memory layer's default 10 MiB cached nothing over 10 MiB, and --check said nothing.
test("a bucket's cache.max_item_size_mb above the largest item its layers keep is noted, naming the bucket, the layers and what to change", () => {
  const cached = (size: number, cache = "") => parseConfig(`${cache}${B}    cache: { enabled: true, max_item_size_mb: ${size} }\n`, { env: {} });
  expect(bucketItemCapNote(cached(1024))).toBe(
    "cache.max_item_size_mb of bucket b (1024 MiB) is more than the largest object the cache layers keep (memory 10 MiB): objects over 10 MiB are not cached; raise cache.memory.max_item_size_mb (a disk layer keeps large objects), or lower the bucket's to 10 or less",
  );
  // within a layer's limit (a disk layer's 1024 MiB default), or the cache switched off: nothing to say
  const disk = "cache: { cache_layers: [memory, disk], disk: { path: /tmp/d } }\n";
  expect([bucketItemCapNote(cached(10)), bucketItemCapNote(cached(1024, disk)), bucketItemCapNote(cached(1024, "cache: { enabled: false }\n"))]).toEqual([undefined, undefined, undefined]);
  expect(bucketItemCapNote(cached(2048, disk))).toContain("(memory 10 MiB, disk 1024 MiB): objects over 1024 MiB are not cached; raise cache.memory.max_item_size_mb or cache.disk.max_item_size_mb");
});

describe("Redis URLs and the original's redis_db / redis_password", () => {
  const redis = (r: string) => `cache:\n  cache_layers: [memory, redis]\n  redis: ${r}\n${B}`;
  const said = (yaml: string) => issues(yaml).map((i) => `${i.path}: ${i.message}`);

  // Passed --check, then the server died at start: "Invalid database number in Redis URL" (an unhandled rejection).
  test("a database Bun's client would refuse is refused by validation, naming cache.redis.url", () => {
    for (const path of ["/notanumber", "/-1", "/1.5", "/3/x", "/0/", "//", "/99999999999", "/%33", "/%203"]) {
      expect(said(redis(`{ url: "redis://:SEKRETPW@127.0.0.1:6379${path}" }`))).toEqual([expect.stringMatching(/^cache\.redis\.url: the database number .* whole number from 0 to 2147483647/)]);
    }
    expect(issues(redis(`{ url: "redis://:SEKRETPW@127.0.0.1:6379/x" }`))[0]!.message).not.toContain("SEKRET");
    for (const ok of ["redis://h", "redis://h/", "redis://h:6379/0", "redis://h/15", "rediss://u:p@h:6380/2147483647", "redis://[::1]:6379/1"]) expect(parseConfig(redis(`{ url: "${ok}" }`), { env: {} }).cache.redis!.url).toBe(ok);
  });

  test("a scheme or a port Bun's client would refuse is refused too", () => {
    expect(said(redis(`{ url: "http://127.0.0.1:6379" }`))).toEqual([expect.stringMatching(/^cache\.redis\.url: must be a redis:\/\/ or rediss:\/\/ URL/)]);
    expect(said(redis(`{ url: "redis://127.0.0.1:0" }`))).toEqual([expect.stringMatching(/^cache\.redis\.url: port 0 is no Redis port/)]);
    expect(said(redis(`{ url: "redis://127.0.0.1:99999" }`))).toEqual([expect.stringMatching(/^cache\.redis\.url: must be a redis/)]);
    const rl = `server:\n  rate_limit: { backend: redis, redis_url: "redis://h:6379/notanumber" }\n${B}`;
    expect(said(rl)).toEqual([expect.stringMatching(/^server\.rate_limit\.redis_url: the database number/)]);
  });

  test("the original's redis_db must be a whole number, named as redis_db", () => {
    for (const db of ['"notanumber"', '"-1"', "-1", "1.5", '""', "99999999999"]) {
      expect(said(redis(`{ enabled: true, redis_url: "redis://127.0.0.1:6379", redis_db: ${db} }`))).toEqual(["cache.redis.redis_db: must be a whole number from 0 to 2147483647 (the Redis database)"]);
    }
    expect(parseConfig(redis(`{ enabled: true, redis_url: "redis://127.0.0.1:6379", redis_db: "5" }`), { env: {} }).cache.redis!.url).toBe("redis://127.0.0.1:6379/5");
  });

  // The URL's password and database used to win silently over redis_password / redis_db.
  test("redis_password and redis_db given beside a URL that has them: the same value is fine, a different one is refused naming both", () => {
    expect(said(redis(`{ enabled: true, redis_url: "redis://:UrlPW@127.0.0.1:6379/3", redis_password: "OtherPW", redis_db: 5 }`))).toEqual([
      "cache.redis.redis_password: differs from the password in cache.redis.redis_url: give the password in one place (remove redis_password, or the password from the URL)",
      "cache.redis.redis_db: (5) differs from the database in cache.redis.redis_url (its path): give the database in one place (remove redis_db, or the path from the URL)",
    ]);
    expect(issues(redis(`{ enabled: true, redis_url: "redis://:UrlPW@127.0.0.1:6379/3", redis_password: "OtherPW" }`))[0]!.message).not.toMatch(/UrlPW|OtherPW/);
    const same = parseConfig(redis(`{ enabled: true, redis_url: "redis://:p%40ss@127.0.0.1:6379/3", redis_password: "p@ss", redis_db: "3" }`), { env: {} });
    expect(same.cache.redis!.url).toBe("redis://:p%40ss@127.0.0.1:6379/3");
  });
});

describe("parseConfig", () => {
  test("a minimal config (one bucket) is valid and gets defaults", () => {
    const c = parseConfig(B, { env: {} });
    expect(c.server.address).toBe("0.0.0.0");
    expect(c.server.port).toBe(8080);
    expect(c.server.engine).toBe("bun");
    expect(c.buckets[0].path_prefix).toBe("/b");
    expect(c.buckets[0].s3.region).toBe("us-east-1");
    expect(Object.isFrozen(c.buckets[0].s3)).toBe(true);
  });

  test("a bucket's cache.enabled is in force without a top-level cache section (the original's bucket override); an explicit top-level false switches it off, and says so", () => {
    const cachedBucket = `${B}    cache: { enabled: true, ttl_seconds: 60 }\n`;
    const implicit = parseConfig(cachedBucket, { env: {} });
    expect(implicit.cache.enabled).toBe(true);
    expect(bucketCachePolicy(implicit.cache, implicit.buckets[0]!)).toMatchObject({ ttlSeconds: 60 });
    expect(cacheOffNote(implicit)).toBeUndefined();
    // no bucket asks: the cache stays off
    expect(parseConfig(B, { env: {} }).cache.enabled).toBe(false);
    const off = parseConfig(`cache: { enabled: false }\n${cachedBucket}`, { env: {} });
    expect(off.cache.enabled).toBe(false);
    expect(bucketCachePolicy(off.cache, off.buckets[0]!)).toBeNull();
    expect(cacheOffNote(off)).toContain("not cached although their own cache.enabled is true: b");
    // the cache on (and its layers listed by --check) but no bucket opting in: nothing is cached, and that is said
    expect(cacheUnusedNote(parseConfig(`cache: { enabled: true }\n${B}`, { env: {} }))).toStartWith("cache.enabled is true but no bucket sets its own cache: { enabled: true }, so nothing is cached");
    expect([cacheUnusedNote(implicit), cacheUnusedNote(parseConfig(B, { env: {} })), cacheUnusedNote(off)]).toEqual([undefined, undefined, undefined]);
    // a disk layer set up with the top-level enabled left out and no bucket opting in: the cache stayed off, --check said only `cache off`
    const diskOnly = parseConfig(`cache: { cache_layers: [memory, disk], disk: { path: /tmp/d } }\n${B}`, { env: {} });
    expect(diskOnly.cache.enabled).toBe(false);
    expect(cacheUnusedNote(diskOnly)).toStartWith("cache.cache_layers lists disk but no bucket sets its own cache: { enabled: true }, so nothing is cached and the disk layer is never used: add it to each bucket");
    expect(cacheUnusedNote(parseConfig(`cache: { cache_layers: [memory, disk], disk: { path: /tmp/d } }\n${cachedBucket}`, { env: {} }))).toBeUndefined();
  });

  test("workers whose disk share is below max_item_size_mb are told which objects are never disk-cached (80 MiB over 2 workers with 60 MiB items said nothing)", () => {
    const disk = (d: string) => parseConfig(`cache: { enabled: true, cache_layers: [memory, disk], disk: { path: /tmp/d, ${d} } }\n${B}`, { env: {} }).cache;
    expect(diskShareNote(disk("max_disk_size_mb: 80, max_item_size_mb: 60"), 2)).toStartWith(
      "cache.disk: with 2 worker processes each holds 1/2 of max_disk_size_mb (40 MiB), less than max_item_size_mb (60 MiB), so objects over 40 MiB are never disk-cached: raise max_disk_size_mb to at least 120",
    );
    expect(diskShareNote(disk("max_disk_size_mb: 80, max_item_size_mb: 60"), 1)).toBeUndefined();
    expect(diskShareNote(disk("max_disk_size_mb: 120, max_item_size_mb: 60"), 2)).toBeUndefined();
    expect(diskShareNote(parseConfig(`cache: { enabled: false, cache_layers: [memory, disk], disk: { path: /tmp/d, max_disk_size_mb: 80, max_item_size_mb: 60 } }\n${B}`, { env: {} }).cache, 4)).toBeUndefined();
  });

  test("a memory layer that cannot fill within the container's memory limit is said at start and by --check (the default 1024 MiB under a 512 MiB limit outgrows it as it fills, unsaid)", () => {
    const MiB = 1024 * 1024;
    const cache = (c: string) => parseConfig(`cache: { ${c} }\n${B}`, { env: {} }).cache;
    expect(memoryLimitNote(cache("enabled: true"), 1, 512 * MiB)).toBe(
      "cache.memory.max_cache_size_mb (1024 MiB) does not fit this container's memory limit (512 MiB): a full memory layer takes about 1.6 times its size and a process about 80 MiB of its own, 1719 MiB in all, so the kernel would kill the process (OOM) as the cache fills; lower max_cache_size_mb to at most 270, or raise the limit",
    );
    expect(memoryLimitNote(cache("enabled: true, memory: { max_cache_size_mb: 256 }"), 1, 512 * MiB)).toBeUndefined();
    expect(memoryLimitNote(cache("enabled: true, memory: { max_cache_size_mb: 256 }"), 2, 512 * MiB)).toStartWith("cache.memory.max_cache_size_mb (256 MiB in each of 2 worker processes) does not fit this container's memory limit (512 MiB): ");
    expect(memoryLimitNote(cache("enabled: true"), 1, 64 * MiB)).toEndWith("as the cache fills; raise the limit");
    // no limit, a cache off, or no memory layer: nothing to say
    expect(memoryLimitNote(cache("enabled: true"), 1, undefined)).toBeUndefined();
    expect(memoryLimitNote(cache("enabled: false"), 1, 512 * MiB)).toBeUndefined();
    expect(memoryLimitNote(cache("enabled: true, cache_layers: [disk], disk: { path: /tmp/d }"), 1, 512 * MiB)).toBeUndefined();
    // cgroup v2's memory.max, v1's memory.limit_in_bytes; "max" and v1's page-rounded 2^63 are no
    // limit; the lowest of the process's group (/proc/self/cgroup's path) and every group above it
    // (a limit on a parent, a pod's or a slice's: only the mount root's was read)
    const dir = mkdtempSync(join(tmpdir(), "yata-cgroup-"));
    try {
      const file = (name: string, text: string) => (mkdirSync(join(dir, name, ".."), { recursive: true }), writeFileSync(join(dir, name), text), join(dir, name));
      const limit = (root: string, self: string) => cgroupMemoryLimit(join(dir, root), file(`${root}.self`, self));
      file("v2/memory.max", "max\n");
      file("v2/kubepods/pod1/memory.max", "536870912\n");
      file("v2/kubepods/pod1/c1/memory.max", "max\n");
      expect(limit("v2", "0::/kubepods/pod1/c1\n")).toBe(512 * MiB);
      expect(limit("v2", "0::/\n")).toBeUndefined();
      file("v2/kubepods/pod1/c1/memory.max", "1073741824\n");
      expect(limit("v2", "0::/kubepods/pod1/c1\n")).toBe(512 * MiB);
      expect(limit("v2", "0::/../../elsewhere\n")).toBeUndefined();
      // (in a container with its own cgroup namespace: "/", the mount root's own)
      file("ns/memory.max", "268435456\n");
      expect(limit("ns", "0::/\n")).toBe(256 * MiB);
      // v1: the memory controller's line, its folder under the mount's memory/
      file("v1/memory/memory.limit_in_bytes", "9223372036854771712\n");
      file("v1/memory/slice/memory.limit_in_bytes", "268435456\n");
      expect(limit("v1", "4:memory:/slice/svc\n3:cpu:/\n0::/\n")).toBe(256 * MiB);
      expect(limit("v1", "4:memory:/\n")).toBeUndefined();
      expect(cgroupMemoryLimit(join(dir, "none"), join(dir, "none.self"))).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a cache.memory section while the memory layer is not used (left out of cache_layers, or no bucket cached) is a warning naming its keys and file:line (it was read by nothing, unsaid)", () => {
    const BC = B.replace("    s3:", "    cache: { enabled: true }\n    s3:");
    const warned = (yaml: string) => parseConfig(yaml, { env: {}, file: "/etc/y/config.yaml" }).warnings?.filter((w) => w.includes("cache.memory")) ?? [];
    // (with the cache on, default_ttl_seconds is every layer's freshness: not named)
    expect(warned(`cache:\n  cache_layers: [disk]\n  disk: { path: /tmp/d }\n  memory: { max_cache_size_mb: 64, default_ttl_seconds: 60 }\n${BC}`)).toEqual([
      "/etc/y/config.yaml:4: cache.memory.max_cache_size_mb has no effect: cache.cache_layers (disk) leaves the memory layer out: add memory to cache_layers to use it, or remove it",
    ]);
    expect(warned(`cache:\n  memory:\n    max_item_size_mb: 5\n    max_cache_size_mb: 64\n${B}`)).toEqual([
      "/etc/y/config.yaml:2: cache.memory.max_item_size_mb, cache.memory.max_cache_size_mb have no effect: no bucket is cached (a bucket caches only with its own cache: { enabled: true }), so there is no memory layer",
    ]);
    // used: nothing said
    expect(warned(`cache:\n  memory: { max_cache_size_mb: 64 }\n${BC}`)).toEqual([]);
    expect(warned(`cache:\n  cache_layers: [disk]\n  disk: { path: /tmp/d }\n  memory: { default_ttl_seconds: 60 }\n${BC}`)).toEqual([]);
    // With the disk alone, cache.memory.max_item_size_mb (its default: 10, or max_cache_size_mb when
    // smaller) is how much of an object a fill reads whole before the client gets it: in use, not
    // named (both were said to have no effect); with Redis beside the disk, Redis's limit is.
    const diskOnly = (memory: string) => {
      const c = parseConfig(`cache:\n  cache_layers: [disk]\n  disk: { path: /tmp/d }\n  memory: ${memory}\n${BC}`, { env: {} });
      return { bufferBytes: bucketCachePolicy(c.cache, c.buckets[0]!)?.bufferBytes, warned: c.warnings?.filter((w) => w.includes("cache.memory")) ?? [] };
    };
    expect(diskOnly("{ max_item_size_mb: 2 }")).toEqual({ bufferBytes: 2 * 1024 * 1024, warned: [] });
    expect(diskOnly("{ max_cache_size_mb: 4 }")).toEqual({ bufferBytes: 4 * 1024 * 1024, warned: [] });
    expect(diskOnly("{ max_cache_size_mb: 64 }").warned).toEqual(["line 4: cache.memory.max_cache_size_mb has no effect: cache.cache_layers (disk) leaves the memory layer out: add memory to cache_layers to use it, or remove it"]);
    expect(warned(`cache:\n  cache_layers: [disk, redis]\n  disk: { path: /tmp/d }\n  redis: { url: "redis://127.0.0.1:6379" }\n  memory: { max_item_size_mb: 2 }\n${BC}`)).toEqual([
      "/etc/y/config.yaml:5: cache.memory.max_item_size_mb has no effect: cache.cache_layers (disk, redis) leaves the memory layer out: add memory to cache_layers to use it, or remove it",
    ]);
  });

  test("a disk max_item_size_mb left out is each worker's share when smaller (workers: 2 over 256 MiB took 256 MiB items and warned to change two keys never written)", () => {
    const disk = (server: string, d: string) => parseConfig(`server: { ${server} }\ncache: { enabled: true, cache_layers: [memory, disk], disk: { path: /tmp/d, ${d} } }\n${B}`, { env: {} }).cache;
    const two = disk("workers: 2", "max_disk_size_mb: 256");
    expect(two.disk?.max_item_size_mb).toBe(128);
    expect(diskShareNote(two, 2)).toBeUndefined();
    expect(disk("workers: 1", "max_disk_size_mb: 256").disk?.max_item_size_mb).toBe(256);
    expect(disk("workers: 4", "max_disk_size_mb: 10240").disk?.max_item_size_mb).toBe(1024);
    // written, it is kept, and the note still says what it costs
    expect(disk("workers: 2", "max_disk_size_mb: 256, max_item_size_mb: 200").disk?.max_item_size_mb).toBe(200);
  });

  test("the original's audit_log and server.coalescing sections load, with what to write instead", () => {
    const c = parseConfig(`server: { coalescing: { enabled: true, strategy: streaming } }\naudit_log:\n  enabled: true\n  outputs: [file, syslog]\n  file: { path: /var/log/yata/audit.log, max_file_size_mb: 50, max_backup_files: 5 }\n${B}`, { env: {} });
    expect(c.audit).toEqual({ enabled: true, path: "/var/log/yata/audit.log", max_size_mb: 50, max_files: 5 });
    expect(c.notes).toEqual([
      expect.stringContaining("audit_log.outputs (the original's) lists syslog: the audit trail is written to its file only"),
      expect.stringContaining("audit_log (the original's section) is read as `audit`"),
      expect.stringContaining("server.coalescing (the original's) is built in"),
    ]);
    expect(parseConfig(`server: { coalescing: { enabled: false } }\n${B}`, { env: {} }).notes).toEqual([expect.stringContaining("server.coalescing.enabled: false (the original's) cannot be honoured")]);
    expect(issues(`audit_log: { enabled: false }\naudit: { enabled: false }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual(["audit_log: both `audit_log` (the original's form) and `audit` are given: keep `audit` only"]);
  });

  test("a key of the original's audit_log section that it never had (a typo) is an error naming it, not dropped with the audit trail left off", () => {
    const said = (yaml: string) => issues(yaml).map((i) => `${i.line}: ${i.path}: ${i.message}`);
    // `enable` for `enabled`: dropped before, so the audit trail was silently off and --check said OK
    expect(said(`${B}audit_log:\n  enable: true\n  outputs: [file]\n  file:\n    path: /var/log/yata/audit.log\n    max_file_size: 10\n`)).toEqual([
      "6: audit_log.enable: unknown key 'enable'",
      "10: audit_log.file.max_file_size: unknown key 'max_file_size'",
    ]);
    expect(said(`${B}audit_log: true\n`)).toEqual([expect.stringMatching(/^5: audit_log: must be a mapping/)]);
    // every key the original read still loads (its syslog / s3 outputs, log level, rotation and buffer: not written here)
    const c = parseConfig(
      `${B}audit_log:\n  enabled: true\n  outputs: [file, syslog, s3]\n  log_level: warn\n  file: { path: /var/log/yata/audit.log, max_file_size_mb: 50, max_backup_files: 5, rotation_policy: size, buffer_size: 1024 }\n  syslog: { address: "localhost:514", protocol: tcp, facility: local3 }\n  s3_export: { bucket: audit-logs, region: us-east-1, path_prefix: /logs/, export_interval_seconds: 120 }\n`,
      { env: {} },
    );
    expect(c.audit).toEqual({ enabled: true, path: "/var/log/yata/audit.log", max_size_mb: 50, max_files: 5 });
    // ... and what they ask for that is not done is said (until 2026-12-07 dropped in silence)
    expect(c.notes).toEqual([
      expect.stringContaining("audit_log.outputs (the original's) lists syslog, s3"),
      "audit_log.log_level: warn (the original's) has no effect here: the audit trail has a line for every request on a front (allowed, denied or failed; its `result` tells them apart)",
      "audit_log.file.buffer_size (the original's) has no effect here: audit lines are written at least once a second, sooner once 256 KiB are waiting",
      expect.stringContaining("audit_log (the original's section) is read as `audit`"),
    ]);
    const daily = parseConfig(`${B}audit_log:\n  enabled: true\n  log_level: info\n  file: { path: /var/log/yata/audit.log, rotation_policy: daily }\n`, { env: {} });
    expect(daily.notes).toEqual([
      "audit_log.file.rotation_policy: daily (the original's) has no effect here: the audit file rotates by size only (max_file_size_mb, read as audit.max_size_mb)",
      expect.stringContaining("audit_log (the original's section) is read as `audit`"),
    ]);
    // values the original refused too
    expect(said(`${B}audit_log:\n  enabled: true\n  log_level: warning\n  file:\n    path: /var/log/yata/audit.log\n    rotation_policy: hourly\n    buffer_size: -1\n`)).toEqual([
      '7: audit_log.log_level: expected one of debug, info, warn, error, got "warning"',
      '10: audit_log.file.rotation_policy: expected one of size, daily, got "hourly"',
      "11: audit_log.file.buffer_size: must be a whole number of bytes, at least 0",
    ]);
  });

  test("a problem with a key written in the original's words is reported at that key and its line, not at the name it is read as", () => {
    const said = (yaml: string) => issues(yaml).map((i) => `${i.line}: ${i.path}: ${i.message}`);
    const disk = said(`${B}cache:\n  cache_layers: [memory, disk]\n  disk:\n    enabled: true\n    cache_dir: 5\n    max_disk_cache_size_mb: 0\n`);
    expect(disk).toEqual([expect.stringMatching(/^9: cache\.disk\.cache_dir: expected a string/), expect.stringMatching(/^10: cache\.disk\.max_disk_cache_size_mb: must be more than 0, got 0$/)]);
    const redis = said(`${B}cache:\n  cache_layers: [memory, redis]\n  redis:\n    redis_url: "http://localhost:6379"\n    redis_key_prefix: 7\n`);
    expect(redis).toEqual([expect.stringMatching(/^8: cache\.redis\.redis_url: must be a redis:\/\/ or rediss:\/\/ URL/), expect.stringMatching(/^9: cache\.redis\.redis_key_prefix: expected a string/)]);
    const audit = said(`${B}audit_log:\n  enabled: true\n  file:\n    path: 42\n    max_file_size_mb: -1\n    max_backup_files: "x"\n`);
    expect(audit).toEqual([
      expect.stringMatching(/^8: audit_log\.file\.path: expected a string/),
      expect.stringMatching(/^9: audit_log\.file\.max_file_size_mb: must be more than 0 and at most 1048576, got -1$/),
      expect.stringMatching(/^10: audit_log\.file\.max_backup_files: expected a number/),
    ]);
    // a path the original's form leaves out: named where it goes, at the section's line
    // (it said "audit.enabled needs a file: set audit.path", and an `audit:` beside `audit_log:` is refused)
    expect(said(`${B}audit_log:\n  enabled: true\n  outputs: [file]\n`)).toEqual([expect.stringMatching(/^5: audit_log\.file\.path: required while the audit trail is enabled/)]);
    expect(said(`${B}audit_log:\n  enabled: true\n  outputs: [file]\n`)[0]).not.toContain("audit.path");
  });

  test("the metrics listener on the main listener's port is refused when one of the two addresses is the wildcard, as for the S3 API", () => {
    const said = (yaml: string) => issues(yaml).map((i) => `${i.path}: ${i.message}`);
    const clash = ["metrics.port: the metrics listener must not use the proxy's own address and port"];
    // passed --check, then the start failed: "metrics address 127.0.0.1:28080 is already in use" (by the proxy itself)
    expect(said(`server: { address: "0.0.0.0:28080" }\nmetrics: { enabled: true, address: 127.0.0.1, port: 28080 }\n${B}`)).toEqual(clash);
    expect(said(`server: { address: 127.0.0.1, port: 28080 }\nmetrics: { enabled: true, address: "::", port: 28080 }\n${B}`)).toEqual(clash);
    expect(said(`server: { address: 127.0.0.1, port: 28080 }\nmetrics: { enabled: true, port: 28080 }\n${B}`)).toEqual(clash);
    // two specific addresses may share a port, and so may the IPv4 wildcard and an IPv6 address (it binds both)
    expect(parseConfig(`server: { address: 127.0.0.1, port: 28080 }\nmetrics: { enabled: true, address: 127.0.0.2, port: 28080 }\n${B}`, { env: {} }).metrics.port).toBe(28080);
    expect(parseConfig(`server: { address: "::1", port: 28080 }\nmetrics: { enabled: true, address: 0.0.0.0, port: 28080 }\n${B}`, { env: {} }).metrics.port).toBe(28080);
    expect(said(`server: { address: "::", port: 28080 }\nmetrics: { enabled: true, address: 0.0.0.0, port: 28080 }\n${B}`)).toEqual(clash);
    // one address written two ways (passed --check; the start failed: "metrics address [0:0:0:0:0:0:0:1]:28080 is already in use")
    for (const [main, metrics] of [["::1", "0:0:0:0:0:0:0:1"], ["127.0.0.1", "::ffff:127.0.0.1"], ["0::0", "127.0.0.1"], ["[::1]", "0::1"]]) {
      expect(said(`server: { address: "${main}", port: 28080 }\nmetrics: { enabled: true, address: "${metrics}", port: 28080 }\n${B}`)).toEqual(clash);
    }
    // localhost is the loopback (passed --check; the start failed: "metrics address 127.0.0.1:28080 is already in use", by the proxy's own main listener)
    for (const [main, metrics] of [["localhost", "127.0.0.1"], ["LocalHost.", "::1"], ["localhost", "localhost"], ["localhost", "0.0.0.0"]]) {
      expect(said(`server: { address: "${main}", port: 28080 }\nmetrics: { enabled: true, address: "${metrics}", port: 28080 }\n${B}`)).toEqual(clash);
    }
    expect(parseConfig(`server: { address: localhost, port: 28080 }\nmetrics: { enabled: true, address: 127.0.0.2, port: 28080 }\n${B}`, { env: {} }).metrics.port).toBe(28080);
  });

  test("the original's cache layer `enabled` given as a string (\"true\") is named as a type problem, not as an unknown key of a section cache_layers lacks", () => {
    const said = (yaml: string) => issues(yaml).map((i) => `${i.line}: ${i.path}: ${i.message}`);
    // it said: "cache.redis is set but cache_layers does not list redis" (the file has no cache_layers) and "unknown key 'enabled'"
    expect(said(`${B}cache:\n  redis:\n    enabled: "true"\n    redis_url: "redis://127.0.0.1:6379"\n`)).toEqual(["7: cache.redis.enabled: expected a boolean, got a string (write true or false, without quotes)"]);
    expect(said(`${B}cache:\n  disk:\n    enabled: 1\n    cache_dir: /tmp/yata-d\n`)).toEqual(["7: cache.disk.enabled: expected a boolean, got a number (write true or false)"]);
  });

  test("cache.redis.max_item_size_mb is at most 511: 512 was accepted, but an entry (body and metadata in one Redis string) that size exceeds Redis's 512 MB proto-max-bulk-len and was refused at every fill", () => {
    const redis = (mb: number) => `cache:\n  cache_layers: [memory, redis]\n  redis: { url: "redis://127.0.0.1:6379", max_item_size_mb: ${mb} }\n${B}`;
    expect(parseConfig(redis(511), { env: {} }).cache.redis).toMatchObject({ max_item_size_mb: 511 });
    const said = issues(redis(512));
    expect(said.map((i) => i.path)).toEqual(["cache.redis.max_item_size_mb"]);
    expect(said[0]!.message).toStartWith("must be at most 511, got 512: ");
  });

  test("a small disk layer needs no max_item_size_mb: its default (1024) shrinks to max_disk_size_mb; written larger, it is a problem", () => {
    const small = parseConfig(`cache:\n  cache_layers: [memory, disk]\n  disk: { path: /tmp/yata-d, max_disk_size_mb: 500 }\n${B}`, { env: {} });
    expect(small.cache.disk).toMatchObject({ max_disk_size_mb: 500, max_item_size_mb: 500 });
    expect(parseConfig(`cache:\n  cache_layers: [memory, disk]\n  disk: { path: /tmp/yata-d }\n${B}`, { env: {} }).cache.disk).toMatchObject({ max_item_size_mb: 1024 });
    expect(issues(`cache:\n  cache_layers: [memory, disk]\n  disk: { path: /tmp/yata-d, max_disk_size_mb: 500, max_item_size_mb: 600 }\n${B}`).map((i) => i.path)).toEqual(["cache.disk.max_item_size_mb"]);
    // the original's form with a small disk
    expect(parseConfig(`cache:\n  cache_layers: [memory, disk]\n  disk: { enabled: true, cache_dir: /tmp/yata-d, max_disk_cache_size_mb: 10 }\n${B}`, { env: {} }).cache.disk).toMatchObject({ max_disk_size_mb: 10, max_item_size_mb: 10 });
  });

  test("the original's cache keys (its src/cache/config.rs) load as ours: disk cache_dir / max_disk_cache_size_mb / sendfile, redis redis_url / redis_password / redis_db / redis_key_prefix, enabled", () => {
    const c = parseConfig(
      `cache:\n  enabled: true\n  cache_layers: [memory, disk, redis]\n` +
        `  disk: { enabled: true, cache_dir: /tmp/yata-disk, max_disk_cache_size_mb: 2048, sendfile: { enabled: true } }\n` +
        `  redis: { enabled: true, redis_url: "redis://127.0.0.1:6379", redis_password: "p@ss/word", redis_db: 2, redis_key_prefix: "yata:", redis_ttl_seconds: 300 }\n${B}`,
      { env: {} },
    );
    expect(c.cache.disk).toMatchObject({ path: "/tmp/yata-disk", max_disk_size_mb: 2048 });
    expect(c.cache.redis).toMatchObject({ key_prefix: "yata:" });
    const url = new URL(c.cache.redis!.url);
    expect([decodeURIComponent(url.password), url.pathname, url.host]).toEqual(["p@ss/word", "/2", "127.0.0.1:6379"]);
    expect(c.notes).toEqual([expect.stringContaining("redis_ttl_seconds (the original's) has no effect here")]);
    // a layer the original had switched off, and cache_layers does not list: ignored, as there
    const off = parseConfig(`cache:\n  enabled: true\n  disk: { enabled: false, cache_dir: /x }\n  redis: { enabled: false, redis_url: "redis://h:1" }\n${B}`, { env: {} });
    expect([off.cache.disk, off.cache.redis, off.cache.cache_layers]).toEqual([undefined, undefined, ["memory"]]);
    // contradictions and what is not supported are named
    expect(issues(`cache:\n  enabled: true\n  cache_layers: [memory, disk]\n  disk: { enabled: false, cache_dir: /x, path: /y }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual([
      "cache.disk.enabled: cache_layers lists disk but this says it is off: remove disk from cache_layers, or this line",
      "cache.disk.cache_dir: `cache_dir` (the original's name) and `path` are both given: keep `path`",
    ]);
    expect(issues(`cache:\n  warming: { enabled: true }\n${B}`).map((i) => i.path)).toEqual(["cache.warming"]);
    // the original's full-stack example: redis turned on by its `enabled: true`, no cache_layers (refused before: "cache_layers does not list redis")
    const full = parseConfig(`cache:\n  enabled: true\n  memory: { max_cache_size_mb: 100, default_ttl_seconds: 300 }\n  redis: { enabled: true, redis_url: "redis://redis:6379", redis_ttl_seconds: 3600 }\n${B}`, { env: {} });
    expect([full.cache.cache_layers, full.cache.redis?.url]).toEqual([["memory", "redis"], "redis://redis:6379"]);
    // the original's kustomize production overlay: each key named with what to write instead
    expect(issues(`cache:\n  enabled: true\n  memory: { max_capacity: 536870912, ttl_seconds: 600 }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual([
      "cache.memory.max_capacity: write the memory cache's size as `max_cache_size_mb` (in MiB: 536870912 bytes is 512)",
      "cache.memory.ttl_seconds: write the memory cache's freshness as `default_ttl_seconds` (a bucket's own is its `cache.ttl_seconds`)",
    ]);
    expect(full.notes).toContainEqual(expect.stringContaining("cache.cache_layers is not given: the layers the original's `enabled: true` turns on are used (memory, redis)"));
  });

  test("a value of the wrong type says what was expected and what it got (never the value), not 'required'", () => {
    const one = (yaml: string) => issues(yaml).map((i) => `${i.path}: ${i.message}`);
    expect(one(`server: { port: "8080" }\n${B}`)).toEqual(["server.port: expected a number, got a string (write it without quotes)"]);
    expect(one(`server: { request_timeout: 5s }\n${B}`)).toEqual(["server.request_timeout: expected a number, got a string (a plain number: seconds, bytes or a count, no unit)"]);
    // a port is no count of seconds or bytes: `port: 8080x` was told "seconds, bytes or a count, no unit"
    expect(one(`server: { port: 8080x }\n${B}`)).toEqual(["server.port: expected a number, got a string (a port number, 0-65535, without quotes)"]);
    expect(one(`metrics: { port: 9090/tcp }\n${B}`)).toEqual(["metrics.port: expected a number, got a string (a port number, 0-65535, without quotes)"]);
    expect(one(`server: { port: 8080.5 }\n${B}`)).toEqual(["server.port: expected an integer, got a number with a fraction"]);
    expect(one(`server: { port: 1e400 }\n${B}`)).toEqual(["server.port: expected a number, got infinity (.inf, or a number too large to hold: YAML reads 1e400 as infinity)"]);
    expect(one(`server: { port: .inf }\n${B}`)).toEqual(["server.port: expected a number, got infinity (.inf, or a number too large to hold: YAML reads 1e400 as infinity)"]);
    expect(one(`server:\n  port: \${A:-\${B:-8080}}\n${B}`)).toEqual(["server.port: ${A:-${…}} is not supported: a default is taken as written, so write it without a variable (only ${VAR} and ${VAR:-default} are substituted)"]);
    expect(one(`cache: { enabled: yes }\n${B}`)).toEqual(["cache.enabled: expected a boolean, got a string (write true or false, without quotes)"]);
    expect(one(`metrics: true\n${B}`)).toEqual(["metrics: expected a mapping, got a boolean"]);
    // (a z.record: zod's own word, "expected a record", is not YAML's)
    expect(one(`s3_api:\n  enabled: true\n  credentials:\n    - { access_key_id: AKIA1, secret_access_key: app1secretapp1secret, identity: app, buckets: [b] }\n${B}`)).toEqual(["s3_api.credentials[0].buckets: expected a mapping, got a list (each bucket's name maps to its permissions: write buckets: { b: [read, list] })"]);
    expect(one(`tracing: { enabled: true, otlp_endpoint: "http://127.0.0.1:4318", headers: [a] }\n${B}`)).toEqual(["tracing.headers: expected a mapping, got a list"]);
    // a key that takes two forms names both (zod said only "Invalid input")
    expect(one(`server: { workers: "four" }\n${B}`)).toEqual(['server.workers: expected a number or "auto", got a string']);
    expect(one(`server: { workers: "2" }\n${B}`)).toEqual(['server.workers: expected a number or "auto", got a string (write it without quotes)']);
    expect(one(`server:\n  ~: 1\n${B}`)).toEqual(["server.: an empty key (written '', ~ or null): remove it"]);
    // a value outside a fixed set says the values, the value given, and the one it differs from in case (zod said "Invalid option: expected one of "trace"|...")
    expect(one(`logging: { level: INFO }\n${B}`)).toEqual(['logging.level: expected one of trace, debug, info, warn, error, got "INFO" (the values are lower case: did you mean info?)']);
    expect(one(`server: { engine: Bun }\n${B}`)).toEqual(['server.engine: expected one of bun, node, got "Bun" (the values are lower case: did you mean bun?)']);
    expect(one(`server: { upstream_client: Fetch }\n${B}`)).toEqual(['server.upstream_client: expected one of auto, fetch, got "Fetch" (the values are lower case: did you mean fetch?)']);
    expect(one(`logging: { level: loud }\n${B}`)).toEqual(['logging.level: expected one of trace, debug, info, warn, error, got "loud"']);
    expect(one(`logging: { level: 3 }\n${B}`)).toEqual(["logging.level: expected one of trace, debug, info, warn, error, got an integer"]);
    // (a long value given is cut, as keys are: 200 KB of it made a 200 KB line, in the log and the admin reload's answer too)
    expect(one(`logging: { level: "${"x".repeat(200_000)}" }\n${B}`)).toEqual([`logging.level: expected one of trace, debug, info, warn, error, got "${"x".repeat(61)}..."`]);
    expect(issues(`logging:\n  level: \${LL}\n${B}`, { LL: "Debug" }).map((i) => `${i.path}: ${i.message}`)).toEqual(["logging.level: expected one of trace, debug, info, warn, error, got the value of ${LL} (the values are lower case: set LL to debug)"]);
    // quoted alike: the value of a variable is never shown (it was: got "s3cr3t-value")
    expect(issues(`logging: { format: "\${LF}" }\n${B}`, { LF: "s3cr3t-value" }).map((i) => `${i.path}: ${i.message}`)).toEqual(["logging.format: expected one of json, text, got the value of ${LF}"]);
    expect(issues(`logging:\n  level: '\${LL}'\n${B}`, { LL: "Debug" }).map((i) => `${i.path}: ${i.message}`)).toEqual(["logging.level: expected one of trace, debug, info, warn, error, got the value of ${LL} (the values are lower case: set LL to debug)"]);
    // nor among other text (it was: got "xs3cr3t-value"); a default written in the file is the file's, shown
    expect(issues(`logging:\n  level: x\${LL}\n  format: "x\${LF}"\n${B}`, { LF: "s3cr3t-value", LL: "s3cr3t-2" }).map((i) => `${i.path}: ${i.message}`)).toEqual(["logging.level: expected one of trace, debug, info, warn, error, got a value holding ${LL}", "logging.format: expected one of json, text, got a value holding ${LF}"]);
    expect(one(`logging: { format: "x\${NOPE_UNSET_LF:-y}" }\n${B}`)).toEqual(['logging.format: expected one of json, text, got "xy"']);
    // a number out of range says the range and the value given, in the project's words (zod's were "Too big: expected number to be <=64")
    expect(one(`server: { workers: 100 }\n${B}`)).toEqual(["server.workers: must be from 1 to 64, got 100"]);
    expect(one(`server: { port: 70000 }\n${B}`)).toEqual(["server.port: must be from 0 to 65535, got 70000"]);
    expect(one(`metrics: { port: -1 }\n${B}`)).toEqual(["metrics.port: must be from 0 to 65535, got -1"]);
    // past 2^53 a whole number met zod's safe-integer bound too: a second problem naming a range the key does not have
    // ("must be from 0 to 9007199254740991", and for -1e20 "from -9007199254740991 to 65535")
    // and the number is shown as written, not as JavaScript rounded it (it said "got 9007199254740992")
    expect(one(`server: { port: 9007199254740993 }\n${B}`)).toEqual(["server.port: must be from 0 to 65535, got 9007199254740993"]);
    expect(one(`server: { port: -1e20 }\n${B}`)).toEqual(["server.port: must be from 0 to 65535, got -1e20"]);
    // so is an unquoted ${VAR}'s value (PORT=9007199254740993 said "got 9007199254740992")
    expect(issues(`server:\n  port: \${PORT}\n${B}`, { PORT: "9007199254740993" }).map((i) => `${i.path}: ${i.message}`)).toEqual(["server.port: must be from 0 to 65535, got 9007199254740993"]);
    expect(one(`x-a: &big 9007199254740993\nserver: { request_timeout: *big }\n${B}`)).toEqual(["server.request_timeout: must be at most 2147483 seconds (about 24.8 days), got 9007199254740993: a longer wait does not fit a timer"]);
    expect(one(`cache: { enabled: true, cache_layers: [memory], memory: { max_item_size_mb: 9007199254740993 } }\n${B}`)).toEqual(["cache.memory.max_item_size_mb: must not exceed max_cache_size_mb (1024), got 9007199254740993"]);
    // and a number too small to hold, read as 0 (it said "got 0" of a value the file does not hold)
    expect(one(`server: { request_timeout: !!float 1e-400 }\n${B}`)).toEqual(["server.request_timeout: must be from 0.001 to 2147483, got 1e-400"]);
    expect(one(`server: { request_timeout: -1e-400 }\n${B}`)).toEqual(["server.request_timeout: must be from 0.001 to 2147483, got -1e-400"]);
    expect(issues(`server:\n  request_timeout: \${T}\n${B}`, { T: "1e-400" }).map((i) => `${i.path}: ${i.message}`)).toEqual(["server.request_timeout: must be from 0.001 to 2147483, got 1e-400"]);
    expect(one(`server: { request_timeout: 0.0e5 }\n${B}`)).toEqual(["server.request_timeout: must be from 0.001 to 2147483, got 0"]);
    // a port written as a number that is not whole, read as 0 (a random port) or the whole number next to it, loaded silently
    expect(issues(`server:\n  port: 1e-400\n${B}`).map((i) => `${i.line} ${i.path}: ${i.message}`)).toEqual(["2 server.port: a port is a whole number from 0 to 65535, and 1e-400 is not one (YAML reads it as 0, a random port): write the port's digits"]);
    expect(one(`metrics: { port: 9090.0000000000000001 }\n${B}`)).toEqual(["metrics.port: a port is a whole number from 0 to 65535, and 9090.0000000000000001 is not one (YAML reads it as 9090): write the port's digits"]);
    expect(issues(`s3_api:\n  port: \${P}\n${B}`, { P: "0.1e-400" }).map((i) => `${i.path}: ${i.message}`)).toEqual(["s3_api.port: a port is a whole number from 0 to 65535, and 0.1e-400 is not one (YAML reads it as 0, a random port): write the port's digits"]);
    // (a whole one written with a point or an exponent is one)
    expect(parseConfig(`server: { port: 8.08e3 }\nmetrics: { port: 0.0 }\n${B}`)).toMatchObject({ server: { port: 8080 }, metrics: { port: 0 } });
    // where 0 is allowed (off, none) it loaded silently as 0: refused, at its key (a zero written otherwise, 0.0e5, is 0)
    const underflow = (v: string) => `${v} is too small for a number to hold: YAML reads it as 0, and it would load as 0 (here: off, or none); write 0 if that is meant, or a larger number`;
    expect(one(`cache: { stale_if_error_seconds: !!float 1e-400 }\n${B}`)).toEqual([`cache.stale_if_error_seconds: ${underflow("1e-400")}`]);
    expect(issues(`server:\n  shutdown_delay: \${D}\n${B}`, { D: "-1e-400" }).map((i) => `${i.path}: ${i.message}`)).toEqual([`server.shutdown_delay: ${underflow("-1e-400")}`]);
    expect(() => parseConfig(`cache: { stale_if_error_seconds: 0.0e5 }\n${B}`)).not.toThrow();
    // a key with no upper bound of its own met only the safe-integer one: "must be from 1 to 9007199254740991", a range the key does not have
    expect(one(`server: { max_concurrent_requests: 12345678901234567890123 }\n${B}`)).toEqual(["server.max_concurrent_requests: must be at most 9007199254740991, got 12345678901234567890123: a larger whole number is not held exactly"]);
    expect(one(`cache: { stale_if_error_seconds: 9007199254740993 }\n${B}`)).toEqual(["cache.stale_if_error_seconds: must be at most 9007199254740991, got 9007199254740993: a larger whole number is not held exactly"]);
    expect(one(`server: { request_timeout: -1 }\n${B}`)).toEqual(["server.request_timeout: must be from 0.001 to 2147483, got -1"]);
    // a wait under a timer's 1 ms step passed --check and answered every request 504 after 1 ms
    expect(one(`server: { request_timeout: 1e-9 }\n${B}`)).toEqual(["server.request_timeout: must be from 0.001 to 2147483, got 1e-9"]);
    expect(one(B.replace("endpoint:", "timeout: 0.0004, endpoint:"))).toEqual(["buckets[0].s3.timeout: must be from 0.001 to 2147483, got 0.0004"]);
    expect(one(`server: { shutdown_timeout: 1e-9 }\n${B}`)).toEqual(["server.shutdown_timeout: must be 0 or at least 0.001 (1 ms, a timer's smallest step), got 1e-9"]);
    expect(one(`server: { shutdown_timeout: -1 }\n${B}`)).toEqual(["server.shutdown_timeout: must be from 0 to 2147483, got -1"]);
    expect(parseConfig(`server: { shutdown_timeout: 0, request_timeout: 0.001 }\n${B}`, { env: {} }).server.request_timeout).toBe(0.001);
    expect(one(`cache: { memory: { max_item_size_mb: 0 } }\n${B}`)).toEqual(["cache.memory.max_item_size_mb: must be more than 0, got 0"]);
    // a whole number's exclusive bound reads as the inclusive one past it ("more than 0" for a count)
    expect(one(B.replace("endpoint:", "circuit_breaker: { failure_threshold: 0 }, endpoint:"))).toEqual(["buckets[0].s3.circuit_breaker.failure_threshold: must be at least 1, got 0"]);
    expect(one(B.replace("endpoint:", "retry: { max_attempts: 0 }, endpoint:"))).toEqual(["buckets[0].s3.retry.max_attempts: must be from 1 to 10, got 0"]);
    // a leeway of hours kept every expired token good; a token limit under any signed token refused them all
    expect(one(`jwt: { leeway_seconds: 1000000000000 }\n${B}`)).toEqual(["jwt.leeway_seconds: must be from 0 to 3600, got 1000000000000"]);
    expect(one(`jwt: { max_token_bytes: 10 }\n${B}`)).toEqual(["jwt.max_token_bytes: must be from 256 to 1048576, got 10"]);
    expect(one(`jwt: { audience: 12345 }\n${B}`)).toContain("jwt.audience: expected a string or a list, got an integer");
    const secret = one(B.replace("endpoint:", "access_key: k, secret_key: [hunter2-secret], endpoint:"));
    expect(secret).toEqual(["buckets[0].s3.secret_key: expected a string, got a list"]);
    expect(one(`server: { port: 1 }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { endpoint: "http://127.0.0.1:9" } }\n`)).toEqual(["buckets[0].s3.bucket: required (or list the bucket's replicas under s3.replicas)"]);
  });

  // The original README's fragments (a bucket with only auth, a config of logging: alone) were
  // told a bare "buckets[0].s3: required", "buckets: required": what goes there was not said.
  test("a section the config cannot do without, left out, says what to write there", () => {
    const said = (yaml: string) => issues(yaml).map((i) => `${i.path}: ${i.message}`);
    expect(said(`buckets:\n  - { auth: { enabled: false } }\n`)).toEqual([
      "buckets[0].name: required (a unique name, used in metrics and the admin API)",
      "buckets[0].path_prefix: required (the URL prefix it serves, such as /products)",
      "buckets[0].s3: required (the S3 bucket this prefix serves: `s3: { bucket: my-bucket, region: us-east-1 }`, with its endpoint and access_key/secret_key as needed)",
    ]);
    expect(said(`logging: { level: info }\n`)).toEqual(["buckets: required (the buckets to serve, a list of `- name: ..., path_prefix: /..., s3: { bucket: ..., region: ... }`; see the configuration reference)"]);
  });

  test("an unquoted secret that starts with * (a YAML alias to no anchor): its key and line, never its text", () => {
    const found = issues(B.replace("endpoint:", "access_key: k, secret_key: *MyLiteralS3cret, endpoint:"));
    expect(found.map((i) => `${i.line}: ${i.path}: ${i.message}`)).toEqual(["4: buckets[0].s3.secret_key: an alias (*name) that names no anchor: quote a value that starts with *"]);
    expect(JSON.stringify(found)).not.toContain("MyLiteralS3cret");
  });

  test("a number or true/false where text goes says YAML read it so and to quote it; the original's `address: 8080` says where a port goes (both said only \"expected a string, got an integer\")", () => {
    const got = issues(`server:\n  address: 8080\njwt:\n  enabled: true\n  secret: 123456789012345678901234567890123\n${B.replace("bucket: bkt", "bucket: 2024")}`).map((i) => `${i.line} ${i.path}: ${i.message}`);
    expect(got).toEqual([
      "2 server.address: expected a string, got an integer (an address such as 0.0.0.0, or host:port as the original wrote it; a port alone goes in server.port)",
      "5 jwt.secret: expected a string, got an integer (YAML reads an unquoted number as one: write it in quotes to make it text)",
      "9 buckets[0].s3.bucket: expected a string, got an integer (YAML reads an unquoted number as one: write it in quotes to make it text)",
    ]);
    expect(issues(`jwt:\n  enabled: true\n  secret: true\n${B}`).map((i) => i.message)).toEqual(["expected a string, got a boolean (YAML reads an unquoted true or false as one: write it in quotes to make it text)"]);
  });

  test("a value outside a fixed set with its own message names the value given, and the value it is likely a slip of (it said only \"unknown operator; use one of ...\")", () => {
    const said = (jwt: string, bucket = "") => issues(`jwt:\n  enabled: true\n  secret: "${"s".repeat(32)}"\n${jwt}\n${B.replace("path_prefix: /b", `path_prefix: /b${bucket}`)}`).map((i) => `${i.line} ${i.path}: ${i.message}`);
    expect(said("  algorithm: hs256", "\n    access: readonly")).toEqual([
      "4 jwt.algorithm: unsupported algorithm, got \"hs256\"; use one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA (the values are case-sensitive: did you mean HS256?)",
      "8 buckets[0].access: unknown access, got \"readonly\"; use read-only or read-write (did you mean read-only?)",
    ]);
    expect(said("  claims: [{ claim: role, operator: equal, value: admin }]\n  token_sources: [{ type: headers, name: X-Token }]")).toEqual([
      "4 jwt.claims[0].operator: unknown operator, got \"equal\"; use one of equals, in, contains, gt, lt, gte, lte, exists (did you mean equals?)",
      "5 jwt.token_sources[0].type: unknown token source type, got \"headers\"; use bearer, header or query (did you mean header?)",
    ]);
    // (the slip the original's README warns of: `bearer_header` is `bearer`; `query_param` is `query`)
    expect(said("  token_sources: [{ type: bearer_header }, { type: query_param, name: t }]")).toEqual([
      "4 jwt.token_sources[0].type: unknown token source type, got \"bearer_header\"; use bearer, header or query (did you mean bearer?)",
      "4 jwt.token_sources[1].type: unknown token source type, got \"query_param\"; use bearer, header or query (did you mean query?)",
    ]);
    // (a value from a ${VAR} is named by the variable, never shown)
    const fromVar = issues(`jwt:\n  enabled: true\n  secret: "${"s".repeat(32)}"\n  algorithm: \${ALG}\n${B}`, { ALG: "hs256-Alg-Value-7" }).map((i) => i.message);
    expect(fromVar).toEqual(["unsupported algorithm, got the value of ${ALG}; use one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"]);
  });

  test("a key of a fixed set that was left out says required and the choices, not 'unknown operator' or zod's 'Invalid option' as if one had been written", () => {
    const S = "0123456789abcdef0123456789abcdef";
    const said = (jwt: string) => issues(`jwt: { enabled: true, secret: "${S}", ${jwt} }\n${B}`).map((i) => `${i.path}: ${i.message}`);
    expect(said("claims: [{ claim: role, value: admin }]")).toEqual(["jwt.claims[0].operator: required: one of equals, in, contains, gt, lt, gte, lte, exists"]);
    expect(said("token_sources: [{ name: x-token }]")).toEqual(["jwt.token_sources[0].type: required: one of bearer, header, query"]);
    expect(said(`keys: [{ id: k1, secret: "${S}" }]`)).toEqual(["jwt.keys[0].algorithm: required: one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"]);
    // one written but not in the set is still named as such
    expect(said("claims: [{ claim: role, operator: is, value: admin }]")).toEqual(["jwt.claims[0].operator: unknown operator, got \"is\"; use one of equals, in, contains, gt, lt, gte, lte, exists"]);
  });

  test("a contains rule with an empty value is refused: every string contains it, so the rule admitted any token with the claim", () => {
    const S = "0123456789abcdef0123456789abcdef";
    const said = (yaml: string) => issues(yaml).map((i) => `${i.path}: ${i.message}`);
    const msg = "operator contains needs a non-empty value (every string contains the empty string: the rule would admit any token whose claim is a string)";
    expect(said(`jwt: { enabled: true, secret: "${S}", claims: [{ claim: scope, operator: contains, value: "" }] }\n${B}`)).toEqual([`jwt.claims[0].value: ${msg}`]);
    // (what an env variable given an empty default leaves: `${GROUP:-}`)
    expect(issues(`jwt: { enabled: true, secret: "${S}", admin_claims: [{ claim: groups, operator: contains, value: "\${GROUP:-}" }] }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual([`jwt.admin_claims[0].value: ${msg}`]);
    const bucketRule = B.replace("    s3:", `    auth: { enabled: true, claims: [{ claim: team, operator: contains, value: "" }] }\n    s3:`);
    expect(said(`jwt: { enabled: true, secret: "${S}" }\n${bucketRule}`)).toEqual([`buckets[0].auth.claims[0].value: ${msg}`]);
    // a non-empty value, and an empty one for equals (which no non-empty claim meets), stay valid
    const ok = parseConfig(`jwt: { enabled: true, secret: "${S}", claims: [{ claim: scope, operator: contains, value: "read" }, { claim: x, operator: equals, value: "" }] }\n${B}`, { env: {} });
    expect(ok.jwt!.claims.map((r) => r.value)).toEqual(["read", ""]);
  });

  test("an alias above its anchor (blocks moved around) says where the anchor is, not that there is none", () => {
    const s3 = "{ bucket: bkt, endpoint: \"http://127.0.0.1:9000\" }";
    const yaml = `buckets:\n  - name: a\n    path_prefix: /a\n    s3: *s3\n  - name: b\n    path_prefix: /b\n    s3: &s3 ${s3}\n`;
    expect(issues(yaml).map((i) => `${i.line}: ${i.path}: ${i.message}`)).toEqual([
      "4: buckets[0].s3: an alias (*name) above its anchor (&name, line 7): an anchor must come before its aliases: move the anchored value up",
    ]);
    // (as a key too; and the anchor first is fine)
    expect(issues(`buckets:\n  - name: a\n    *k : 1\n    path_prefix: /a\n    s3: { bucket: bkt, endpoint: &k "http://127.0.0.1:9000" }\n`).map((i) => `${i.line}: ${i.message}`)).toContain(
      "3: an alias (*name) above its anchor (&name, line 5): an anchor must come before its aliases: move the anchored value up",
    );
    expect(parseConfig(`buckets:\n  - name: b\n    path_prefix: /b\n    s3: &s3 ${s3}\n  - name: a\n    path_prefix: /a\n    s3: *s3\n`, { env: {} }).buckets[1]!.s3.bucket).toBe("bkt");
  });

  test("an HMAC secret shorter than 32 bytes is refused (RFC 7518; also catches a placeholder left unexpanded)", () => {
    const jwt = (secret: string) => `jwt: { secret: "${secret}" }\n${B}`;
    expect(issues(jwt("$JWT_SECRET")).map((i) => `${i.path}: ${i.message}`)).toEqual(["jwt.secret: an HMAC secret must be at least 32 bytes (RFC 7518 §3.2); this one is 11"]);
    expect(issues(jwt("a")).map((i) => i.path)).toEqual(["jwt.secret"]);
    expect(parseConfig(jwt("x".repeat(32)), { env: {} }).jwt?.secret).toBe("x".repeat(32));
    const keys = `jwt: { keys: [{ id: k1, algorithm: HS256, secret: short-one }] }\n${B}`;
    expect(issues(keys).map((i) => i.path)).toEqual(["jwt.keys[0].secret"]);
  });

  test("a jwks_url with only HS* algorithms is refused at jwt.jwks_url (every JWKS key was skipped: /ready stayed 503, every reload was refused); with an asymmetric algorithm it passes", () => {
    const S = "0123456789abcdef0123456789abcdef";
    const hsOnly = `jwt: { enabled: true, secret: "${S}", jwks_url: "https://idp.example.com/jwks" }\n${B}`;
    expect(issues(hsOnly).map((i) => `${i.line}: ${i.path}: ${i.message}`)).toEqual([
      "1: jwt.jwks_url: a jwks_url is set but no algorithm its keys could verify is configured (HS256): JWKS keys serve RS*, PS*, ES* or EdDSA; list those in jwt.algorithms (or remove jwks_url)",
    ]);
    const two = `jwt: { enabled: true, algorithm: HS512, algorithms: [HS256], secret: "${S}", jwks_url: "https://idp.example.com/jwks" }\n${B}`;
    expect(issues(two).map((i) => i.message)).toEqual(["a jwks_url is set but no algorithm its keys could verify is configured (HS512, HS256): JWKS keys serve RS*, PS*, ES* or EdDSA; list those in jwt.algorithms (or remove jwks_url)"]);
    expect(parseConfig(`jwt: { enabled: true, secret: "${S}", algorithms: [RS256], jwks_url: "https://idp.example.com/jwks" }\n${B}`, { env: {} }).jwt?.jwks_url).toBe("https://idp.example.com/jwks");
  });

  test("an HMAC secret that is a PEM key or certificate (the issuer's public key: anyone could sign HS* tokens with it) is refused, from the file or ${VAR}, never shown", () => {
    const pem = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "pem" }).toString();
    const msg = "holds a PEM key or certificate, not an HMAC secret: anyone with the public key could sign HS* tokens with it; a public key goes in a file named by rsa_public_key_path, ecdsa_public_key_path, public_key_path or a jwt.keys entry's path (the value is not shown)";
    const inline = issues(`jwt: { enabled: true, secret: ${JSON.stringify(pem)} }\n${B}`);
    expect(inline.map((i) => `${i.path}: ${i.message}`)).toEqual([`jwt.secret: ${msg}`]);
    expect(issues(`jwt:\n  enabled: true\n  secret: "\${JWT_SECRET}"\n${B}`, { JWT_SECRET: pem }).map((i) => `${i.path}: ${i.message}`)).toEqual([`jwt.secret: ${msg}`]);
    const keys = issues(`jwt: { enabled: true, keys: [{ id: k1, algorithm: HS256, secret: ${JSON.stringify(pem)} }] }\n${B}`);
    expect(keys.map((i) => `${i.path}: ${i.message}`)).toEqual([`jwt.keys[0].secret: ${msg}`]);
    expect(JSON.stringify([inline, keys])).not.toContain(pem.split("\n")[1]!);
  });

  test("an invisible character pasted into a JWT identifier (a claim rule's claim, jwt.issuer, jwt.audience, a query token source's name) is refused, named and placed", () => {
    const S = "0123456789abcdef0123456789abcdef";
    const said = (jwt: string, bucket = "") => issues(`jwt: { enabled: true, secret: "${S}", ${jwt} }\n${B}${bucket}`).map((i) => `${i.path}: ${i.message}`);
    const zwsp = (at: number) => `contains U+200B (zero width space) at position ${at}: a character that cannot be seen in the config, most likely pasted by mistake; remove it`;
    expect(said('issuer: "https://idp.example.com\u200b"')).toEqual([`jwt.issuer: ${zwsp(24)}`]);
    expect(said('audience: ["api", "web\u00a0"]')).toEqual(["jwt.audience[1]: contains U+00A0 (no-break space) at position 4: a character that cannot be seen in the config, most likely pasted by mistake; remove it"]);
    expect(said('token_sources: [{ type: query, name: "token\u200b" }]')).toEqual([`jwt.token_sources[0].name: ${zwsp(6)}`]);
    expect(said('admin_claims: [{ claim: "role\u200b", operator: equals, value: admin }]')).toEqual([`jwt.admin_claims[0].claim: ${zwsp(5)}`]);
    const bucket = '    access: read-write\n    auth: { enabled: true, claims: [{ claim: "\u200bteam", operator: equals, value: a }], write_claims: [{ claim: "role\u200b", operator: equals, value: w }] }\n';
    expect(said("", bucket)).toEqual([`buckets[0].auth.claims[0].claim: ${zwsp(1)}`, `buckets[0].auth.write_claims[0].claim: ${zwsp(5)}`]);
    // a token source's prefix keeps its trailing space ("Token "), and values are not identifiers
    expect(parseConfig(`jwt: { enabled: true, secret: "${S}", token_sources: [{ type: header, name: x-auth, prefix: "Token " }], claims: [{ claim: "https://example.com/roles", operator: contains, value: "a b" }] }\n${B}`, { env: {} }).jwt!.token_sources[0]!.prefix).toBe("Token ");
  });

  test("cache keys the original's test configs set and its code never read load with a note naming what does the job here; memory.enabled: false is refused with the way to say it", () => {
    const c = parseConfig(
      `cache:\n  enabled: true\n  cache_layers: [memory, redis]\n` +
        `  memory: { enabled: true, max_memory_cache_size_mb: 10, max_entry_size_bytes: 1000 }\n` +
        `  redis: { redis_url: "redis://127.0.0.1:6379", connection_timeout_ms: 5000, min_pool_size: 5, max_pool_size: 20 }\n${B}`,
      { env: {} },
    );
    expect(c.notes).toEqual([
      "cache.memory.enabled has no effect (the original never read it either): the memory layer is on when cache_layers lists memory (the default)",
      "cache.memory.max_memory_cache_size_mb has no effect (the original never read it either): the memory layer's size is cache.memory.max_cache_size_mb",
      "cache.memory.max_entry_size_bytes has no effect (the original never read it either): the largest object the memory layer keeps is cache.memory.max_item_size_mb",
      "cache.redis.connection_timeout_ms has no effect (the original never read it either): the connect timeout is cache.redis.connect_timeout_ms",
      "cache.redis.min_pool_size has no effect (the original never read it either): one pipelined connection serves every request",
      "cache.redis.max_pool_size has no effect (the original never read it either): one pipelined connection serves every request",
    ]);
    expect(c.cache.memory).toMatchObject({ max_cache_size_mb: 1024, max_item_size_mb: 10 });
    expect(issues(`cache:\n  memory: { enabled: false }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual([
      "cache.memory.enabled: the memory layer is on when cache_layers lists memory (the original never read this key, and kept its memory layer): for no memory layer, write cache_layers without memory",
    ]);
  });

  test("the original's load-test cache keys (cache.layers, memory max_memory_cache_mb / max_entry_size_mb) load with a note, as its code ignored them", () => {
    // config/loadtest/config.loadtest-diskcache.yaml of the original, as written
    const c = parseConfig(
      `cache:\n  layers: ["memory", "disk"]\n  memory:\n    enabled: true\n    max_memory_cache_mb: 256\n    max_entry_size_mb: 10\n` +
        `  disk:\n    enabled: true\n    cache_dir: "/tmp/yatagarasu-dc"\n    max_disk_cache_size_mb: 1024\n${B}`,
      { env: {} },
    );
    expect(c.notes).toEqual([
      "cache.layers has no effect (the original never read it either): the layers are listed in cache.cache_layers",
      "cache.memory.enabled has no effect (the original never read it either): the memory layer is on when cache_layers lists memory (the default)",
      "cache.memory.max_memory_cache_mb has no effect (the original never read it either): the memory layer's size is cache.memory.max_cache_size_mb",
      "cache.memory.max_entry_size_mb has no effect (the original never read it either): the largest object the memory layer keeps is cache.memory.max_item_size_mb",
      "cache.cache_layers is not given: the layers the original's `enabled: true` turns on are used (memory, disk); write cache_layers: [memory, disk] to say so",
    ]);
    expect(c.cache.cache_layers).toEqual(["memory", "disk"]);
    expect(c.cache.memory).toMatchObject({ max_cache_size_mb: 1024, max_item_size_mb: 10 });
    // config/benchmark/config.benchmark-minio.yaml: `layers: []` ("cache disabled")
    expect(parseConfig(`cache:\n  layers: []\n${B}`, { env: {} }).cache.cache_layers).toEqual(["memory"]);
    // `layers` listing sections written as here (no original `enabled: true`): the layers meant,
    // under the other name. It read "cache.disk is set but cache_layers does not list disk: add it
    // there" and the same of redis, though the file listed both; one problem, at `layers`'s line.
    const ours = `cache:\n  layers: [memory, disk, redis]\n  disk: { path: /tmp/d }\n  redis: { url: "redis://127.0.0.1:6379" }\n${B}`;
    expect(issues(ours).map((i) => `${i.line} ${i.path}: ${i.message}`)).toEqual([
      "2 cache.layers: rename it cache_layers: the layers are listed there (`layers`, a key of the original's test configs, was never read, by the original either), and cache.disk and cache.redis are set for layers it lists",
    ]);
    // (checked as if renamed: a problem with the list is at its line too)
    expect(issues(ours.replace("[memory, disk, redis]", "[disk, memory]")).map((i) => `${i.line} ${i.path}: ${i.message}`)).toEqual([
      "2 cache.layers: rename it cache_layers: the layers are listed there (`layers`, a key of the original's test configs, was never read, by the original either), and cache.disk is set for layers it lists",
      "2 cache.layers: list the layers fastest first: memory, disk, redis",
      "4 cache.redis: cache.redis is set but cache_layers does not list redis: add it there or remove this section",
    ]);
  });

  test("jwt.token_sources: [] loads with JWT off (the original's own e2e configs); with JWT on it is refused, saying what to write", () => {
    // the original's tests/e2e config, as written
    const c = parseConfig(`jwt:\n  enabled: false\n  secret: "dummy-secret"\n  algorithm: "HS256"\n  token_sources: []\n  claims: []\n${B}`, { env: {} });
    expect(c.jwt!.enabled).toBe(false);
    expect(issues(`jwt: { enabled: true, secret: "s-0123456789abcdef0123456789abcdef", token_sources: [] }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual([
      "jwt.token_sources: JWT is enabled but no token source is listed: list at least one, or leave token_sources out for the default (Authorization: Bearer)",
    ]);
  });

  test("jwt.secret: \"\" loads with JWT off (the original's configs write `jwt: { enabled: false, secret: \"\" }`); with JWT on it is refused once", () => {
    expect(parseConfig(`jwt: { enabled: false, secret: "" }\n${B}`, { env: {} }).jwt!.enabled).toBe(false);
    expect(parseConfig(`jwt:\n  enabled: false\n  secret: ""\n  algorithm: HS256\n${B}`, { env: {} }).jwt!.enabled).toBe(false);
    // (saying what to write: it said only "must not be empty")
    const empty = "jwt.secret: must not be empty: write the HMAC secret tokens are signed with (at least 32 bytes, such as \"${JWT_SECRET}\"), or remove the key when tokens are checked with a public key or jwks_url";
    expect(issues(`jwt: { enabled: true, secret: "" }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual([empty]);
    expect(issues(`jwt: { enabled: true, secret: "", algorithm: RS256, jwks_url: "https://idp.test/jwks" }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual([empty]);
  });

  // It said only "a secret is set but no HS* algorithm is configured".
  test("a jwt.secret beside asymmetric algorithms only names them and says what to write", () => {
    expect(issues(`jwt: { secret: "s-0123456789abcdef0123456789abcdef", algorithm: RS256, jwks_url: "https://idp.test/jwks" }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual([
      "jwt.secret: a secret is set but no HS* algorithm is configured (RS256): list HS256 (or HS384, HS512) in jwt.algorithms, or remove the secret",
    ]);
  });

  test("${VAR} is substituted from the environment", () => {
    const c = parseConfig(B.replace("bkt", "\"${BKT}\""), { env: { BKT: "from-env" } });
    expect(c.buckets[0].s3.bucket).toBe("from-env");
  });

  test("${VAR:-default} uses the default when VAR is unset, and VAR when set", () => {
    const y = B.replace("bkt", "\"${BKT:-fallback}\"");
    expect(parseConfig(y, { env: {} }).buckets[0].s3.bucket).toBe("fallback");
    expect(parseConfig(y, { env: { BKT: "set" } }).buckets[0].s3.bucket).toBe("set");
  });

  test("a substituted secret containing YAML syntax does not change the structure", () => {
    const y = B.replace(' }', ', access_key: AK, secret_key: "${SK}" }');
    expect(parseConfig(y, { env: { SK: "a: b # c\nd" } }).buckets[0].s3.secret_key).toBe("a: b # c\nd");
  });

  // A secret that holds `${` beside other text: what follows was echoed by --check and the logs
  // ("${q7Zp…} is not supported", "environment variable q7Zp… is not set").
  test("a `${` inside a secret's value (beside other text) is never shown in an issue; `$${` is a literal `${`", () => {
    const front = (sk: string) => `s3_api:\n  enabled: true\n  port: 0\n  credentials:\n    - access_key_id: AKIATESTTESTTEST\n      secret_access_key: "${sk}"\n      identity: app\n      buckets: { b: [read] }\n${B}`;
    for (const sk of ["Xk9${q7Zp2mLw8RtY4vBn6c", "Xk9${q7Zp2mLw8RtY4vBn6c}Tail", "Xk9${q7Zp2mLw8RtY4vBn6c:?x}Tail"]) {
      const got = issues(front(sk));
      expect({ sk, paths: got.map((i) => i.path) }).toEqual({ sk, paths: ["s3_api.credentials[0].secret_access_key"] });
      expect(got[0]!.message).toContain("not shown");
      expect(got[0]!.message).not.toContain("q7Zp");
    }
    // the escape
    expect(parseConfig(front("Xk9$${q7Zp2mLw8RtY4vBn6c}Tail"), { env: {} }).s3_api!.credentials[0]!.secret_access_key).toBe("Xk9${q7Zp2mLw8RtY4vBn6c}Tail");
    // a secret that is one placeholder still names its variable (the name is not the secret)
    expect(issues(front("${NOPE_SK}")).map((i) => i.message)).toEqual(["environment variable NOPE_SK is not set"]);
    // and any other key still says which variable
    expect(issues(B.replace("bkt", '"a-${NOPE_B}"')).map((i) => i.message)).toEqual(["environment variable NOPE_B is not set"]);
    // an item of a list of secrets is one too (it was echoed)
    const previous = `s3_api:\n  enabled: true\n  port: 0\n  sts:\n    session_key: "${"k".repeat(40)}"\n    previous_session_keys: ["Xk9\${q7Zp2mLw8RtY4vBn6c}Tail0123456789abcdefghijklmn"]\n  credentials: []\njwt:\n  enabled: true\n  secret: "${"s".repeat(40)}"\n${B}`;
    const got = issues(previous);
    expect(got.map((i) => i.path)).toContain("s3_api.sts.previous_session_keys[0]");
    for (const i of got) expect(i.message).not.toContain("q7Zp");
  });

  test("a shell form that is not substituted (${VAR:?msg}, ${VAR:=x}) is a problem naming the variable and the operator, not a literal value", () => {
    const yaml = `buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, region: "\${REG:?region required}", access_key: AK, secret_key: "\${SK:=hunter2}" }\n`;
    const found = issues(yaml, { REG: "us-east-1", SK: "x" }).map((i) => `${i.line}: ${i.path}: ${i.message}`);
    expect(found.sort()).toEqual([
      "4: buckets[0].s3.region: ${REG:?…} is not supported: only ${VAR} and ${VAR:-default} are substituted",
      "4: buckets[0].s3.secret_key: ${SK:=…} is not supported: only ${VAR} and ${VAR:-default} are substituted",
    ]);
    expect(found.join("\n")).not.toContain("hunter2");
  });

  test("a `${` before no variable name (${1AK}, ${ AK }) is a problem, not a literal value sent as a credential; in a secret it is not shown; $${ stays the escape", () => {
    const yaml = `buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, region: "\${ REG }", access_key: "\${1AK}", secret_key: "x\${9hunter2}y" }\n`;
    const found = issues(yaml, { REG: "us-east-1" }).map((i) => `${i.line}: ${i.path}: ${i.message}`);
    expect(found.sort()).toEqual([
      "4: buckets[0].s3.access_key: ${1AK} is not a placeholder: a variable name is letters, digits and _, not starting with a digit (a literal `${` is written `$${`)",
      "4: buckets[0].s3.region: ${ REG } is not a placeholder: a variable name is letters, digits and _, not starting with a digit (a literal `${` is written `$${`)",
      expect.stringMatching(/^4: buckets\[0\]\.s3\.secret_key: holds a `\$\{` that is not a placeholder/),
    ]);
    expect(found.join("\n")).not.toContain("hunter2");
    const escaped = parseConfig(yaml.replace('"\${1AK}"', '"$$\${1AK}"').replace('"\${ REG }"', "us-east-1").replace('"x\${9hunter2}y"', "sk"), { env: {} });
    expect(escaped.buckets[0]!.s3.access_key).toBe("${1AK}");
  });

  test("a variable inside a default (${A:-${B}}, as shells and Compose allow) is a problem, not the literal text ${B} as the value", () => {
    // it loaded with access_key and secret_key the literal "${SK}" (sent to S3 so), and a jwt.secret said "this one is 7 bytes"
    const yaml = `jwt:\n  secret: "\${JWT_OLD:-\${JWT_NEW}}"\nbuckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, access_key: "\${AK:-\${DEFAULT_AK}}", secret_key: "x\${SK:-\${DEFAULT_SK}}y" }\n`;
    const found = issues(yaml, { JWT_NEW: "j".repeat(40), DEFAULT_AK: "AKIA", DEFAULT_SK: "sk" }).map((i) => `${i.line}: ${i.path}: ${i.message}`);
    expect(found.sort()).toEqual([
      "2: jwt.secret: ${JWT_OLD:-${…}} is not supported: a default is taken as written, so write it without a variable (only ${VAR} and ${VAR:-default} are substituted)",
      "6: buckets[0].s3.access_key: ${AK:-${…}} is not supported: a default is taken as written, so write it without a variable (only ${VAR} and ${VAR:-default} are substituted)",
      "6: buckets[0].s3.secret_key: ${SK:-${…}} is not supported: a default is taken as written, so write it without a variable (only ${VAR} and ${VAR:-default} are substituted)",
    ]);
    // a default with a lone $ or braces of its own still works
    expect(parseConfig(B.replace(" }", ', access_key: "${NOPE:-a$b}", secret_key: s }'), { env: {} }).buckets[0].s3.access_key).toBe("a$b");
  });

  test("the values substituted into a config are bounded in all: past the bound, an error naming the variable and the key, once", () => {
    // (unbounded: each of a 1 MiB file's references built a copy of its variable's value, 10 GB for 100,000 references to a 100 KB one)
    const MIB = "m".repeat(1024 * 1024);
    const refs = (n: number) => `notes:\n${Array.from({ length: n }, () => '  - "${BIG}"\n').join("")}${B}`;
    const budget = (yaml: string, env: Record<string, string>) => issues(yaml, env).filter((i) => i.message.includes("substituted into the config"));
    expect(budget(refs(4), { BIG: MIB })).toEqual([]);
    expect(budget(refs(200), { BIG: MIB })).toEqual([
      { path: "notes[4]", message: `environment variable BIG (${MIB.length} characters) takes the values substituted into the config over ${4 * MIB.length} characters in all: substitute smaller values, or fewer times`, line: 6 },
    ]);
    // in a mapping too, the key named is the first one past the bound in the file's order (the walk read mappings last key first: x-2 was named)
    const keys = `${Array.from({ length: 6 }, (_, i) => `x-${i + 1}: "\${BIG}"\n`).join("")}${B}`;
    expect(budget(keys, { BIG: MIB }).map((i) => [i.path, i.line])).toEqual([["x-5", 5]]);
    const one = budget(B.replace("bkt", '"${HUGE}"'), { HUGE: MIB.repeat(5) });
    expect(one.map((i) => [i.path, i.message.slice(0, 46)])).toEqual([["buckets[0].s3.bucket", `environment variable HUGE (${5 * MIB.length} characters)`]]);
    // in a secret, the variable is not named (what follows a `\${` there may be part of the secret)
    const secret = budget(`jwt:\n  secret: "x\${HUGE}"\n${B}`, { HUGE: MIB.repeat(5) });
    expect(secret.map((i) => [i.path, i.message.includes("HUGE")])).toEqual([["jwt.secret", false]]);
  });

  test("a missing variable is reported with its YAML path and line", () => {
    expect(issues(B.replace("bkt", "\"${NOPE_VAR}\""))).toEqual([{ path: "buckets[0].s3.bucket", message: "environment variable NOPE_VAR is not set", line: 4 }]);
    expect(issues(B.replace("bkt", "\"${EMPTY_VAR}\""), { EMPTY_VAR: "" })).toEqual([{ path: "buckets[0].s3.bucket", message: "environment variable EMPTY_VAR is set but empty (give it a value, or write ${EMPTY_VAR:-default} to use a default when it is empty)", line: 4 }]);
    // unquoted, a value that reads as a number takes that type: named, with the fix, never echoed
    const typed = issues(`jwt:\n  secret: \${NUM_SECRET}\n${B}`, { NUM_SECRET: "123456789012345678901234567890123456" });
    expect(typed).toEqual([{ path: "jwt.secret", message: '${NUM_SECRET} was written without quotes and its value reads as a number or boolean: write "${NUM_SECRET}" (quoted) to keep it a string', line: 2 }]);
    const either = issues(`jwt:\n  audience: \${AUD}\n${B}`, { AUD: "12345" });
    expect(either).toContainEqual({ path: "jwt.audience", message: '${AUD} was written without quotes and its value reads as a number or boolean: write "${AUD}" (quoted) to keep it a string', line: 2 });
  });

  test("a variable behind a string where a number or a boolean goes is named: $NAME (never substituted) and a ${NAME} whose value is of the wrong type (never shown)", () => {
    const bare = issues(`server:\n  port: $PORT\nmetrics:\n  enabled: $METRICS_ON\n${B}`);
    expect(bare).toEqual([
      { path: "server.port", message: "expected a number, got a string (it looks like an environment variable: write ${PORT}, only that form is substituted)", line: 2 },
      { path: "metrics.enabled", message: "expected a boolean, got a string (it looks like an environment variable: write ${METRICS_ON}, only that form is substituted)", line: 4 },
    ]);
    const wrong = issues(`server:\n  port: \${PORT}\n  workers: \${WORKERS}\nmetrics:\n  enabled: \${METRICS_ON}\n${B}`, { PORT: "abc-7f3", WORKERS: "many-7f3", METRICS_ON: "yes-7f3" });
    expect(wrong).toEqual([
      { path: "server.port", message: "expected a number, got a string (the value of ${PORT}, which is not a number: set PORT to a plain number)", line: 2 },
      { path: "server.workers", message: 'expected a number or "auto", got a string (the value of ${WORKERS}, which is not a number: set WORKERS to a plain number)', line: 3 },
      { path: "metrics.enabled", message: "expected a boolean, got a string (the value of ${METRICS_ON}, which is not true or false: set METRICS_ON to true or false)", line: 5 },
    ]);
    expect(JSON.stringify(wrong)).not.toContain("7f3");
  });

  test("an invalid S3 bucket name says why and gives the rule (a one-letter name got only 'is not a valid S3 bucket name'; the rule is S3's, with what is accepted beyond it: it said 2 to 255, and a 2-character name then got a warning to rename it), for a replica too", () => {
    const rule = "S3 bucket names are 3 to 63 characters (accepted here: up to 255, as a legacy us-east-1 bucket's, and 2 with a warning) of letters, digits, '.', '-' and '_', starting with a letter or a digit";
    expect(issues(B.replace("bkt", "b"))).toEqual([{ path: "buckets[0].s3.bucket", message: `is not a valid S3 bucket name (it is 1 character long): ${rule}`, line: 4 }]);
    expect(issues(B.replace("bkt", "-bkt")).map((i) => i.message)).toEqual([`is not a valid S3 bucket name (it does not start with a letter or a digit): ${rule}`]);
    expect(issues(B.replace("bkt", '"b kt"')).map((i) => i.message)).toEqual([`is not a valid S3 bucket name (it holds a character other than those): ${rule}`]);
    const replica = `buckets:\n  - name: b\n    path_prefix: /b\n    s3:\n      replicas:\n        - { name: r1, bucket: x, region: us-east-1, endpoint: "http://127.0.0.1:9000" }\n`;
    expect(issues(replica).map((i) => `${i.path}: ${i.message}`)).toEqual([`buckets[0].s3.replicas[0].bucket: is not a valid S3 bucket name (it is 1 character long): ${rule}`]);
  });

  test("YAML merge keys (<<: *anchor) work, with anchors kept under top-level x-* keys (as in Compose files)", () => {
    const yaml = `x-defaults: &s3defaults\n  endpoint: "http://127.0.0.1:9000"\n  region: us-east-1\n  access_key: "\${AK}"\n  secret_key: "\${SK}"\nbuckets:\n  - name: a\n    path_prefix: /a\n    s3: { <<: *s3defaults, bucket: one }\n  - name: b\n    path_prefix: /b\n    s3:\n      <<: *s3defaults\n      bucket: two\n      region: eu-west-1\n`;
    const c = parseConfig(yaml, { env: { AK: "AKIAMERGE0001", SK: "merge-secret-0123456789" } });
    expect(c.buckets.map((b) => [b.name, b.s3.bucket, b.s3.region, b.s3.access_key, b.s3.endpoint])).toEqual([
      ["a", "one", "us-east-1", "AKIAMERGE0001", "http://127.0.0.1:9000"],
      ["b", "two", "eu-west-1", "AKIAMERGE0001", "http://127.0.0.1:9000"],
    ]);
    // an unset variable in the anchored block is still reported
    expect(issues(yaml, { SK: "merge-secret-0123456789" }).map((i) => i.message)).toContain("environment variable AK is not set");
    // once, at the anchor: not again as a wrong type wherever it was merged
    const typed = `x-d: &d\n  endpoint: "http://127.0.0.1:9000"\n  timeout: \${NOPE_T}\nbuckets:\n  - name: a\n    path_prefix: /a\n    s3: { <<: *d, bucket: one }\n  - name: b\n    path_prefix: /b\n    s3: { <<: *d, bucket: two }\n`;
    expect(issues(typed).map((i) => `${i.line}: ${i.path}: ${i.message}`)).toEqual(["3: x-d.timeout: environment variable NOPE_T is not set"]);
    // two merge keys in one mapping: named as written
    expect(issues(`x-d: &d { region: us-east-1 }\nbuckets:\n  - name: a\n    path_prefix: /a\n    s3: { <<: *d, <<: *d, bucket: one, endpoint: "http://127.0.0.1:9000" }\n`).map((i) => i.message)).toEqual(["duplicate key '<<' (first defined at line 5)"]);
  });

  test("an unset variable in a number field is reported once (not also as a string where a number is expected)", () => {
    const found = issues(`server:\n  port: \${NOPE_PORT}\n${B}`);
    expect(found).toEqual([{ path: "server.port", message: "environment variable NOPE_PORT is not set", line: 2 }]);
  });

  test("an unquoted ${VAR} whose value is not valid YAML on its own stays that string: never parsed, never echoed in an error", () => {
    const yaml = `server:\n  port: \${PORT}\nbuckets:\n  - name: b\n    path_prefix: /b\n    s3:\n      bucket: bkt\n      access_key: AKIAEXAMPLE\n      secret_key: \${SK}\n`;
    for (const secret of ["[TopSecretabc", "{x", '"x', "%x", "@x", "*x", "!x", "&x", "|x", ">x", "a: b", "- x", "# x", "`x"]) {
      let c;
      try {
        c = parseConfig(yaml, { env: { SK: secret, PORT: "8089" } });
      } catch (e) {
        expect(String((e as Error).message)).not.toContain(secret.slice(1));
        throw e;
      }
      expect(c.buckets[0].s3.secret_key).toBe(secret);
      expect(c.server.port).toBe(8089); // (a number still takes its type)
    }
  });

  test("an unquoted ${VAR} inside a flow mapping: one problem, on its line, saying why and the two ways out (not a cascade of eleven)", () => {
    const got = issues(`server:\n  rate_limit:\n    per_ip: { requests_per_second: \${PERIP:-10}, burst: 20 }\n${B}`);
    expect(got).toHaveLength(1);
    expect(got[0]!.line).toBe(3);
    expect(got[0]!.message).toContain("an unquoted ${VAR} inside { } or [ ] is read as YAML syntax: for a number or a boolean (a port, a size, true/false) write that mapping in block style");
    expect(got[0]!.message).toContain('for a string, quote it: "${VAR}"');
  });

  test("an unquoted ${VAR} inside { } or [ ] after a quoted value, on a later line of the collection, or in a JSON config: the same one problem, at the ${", () => {
    const cases: Array<[string, number, number]> = [
      [`server: { address: "127.0.0.1", port: \${P} }\n${B}`, 1, 40],
      [`server: {\n  address: "127.0.0.1",\n  port: \${P}\n}\n${B}`, 3, 10],
      [`server:\n  trusted_proxies: ["10.0.0.0/8", \${NET}]\n${B}`, 2, 36],
      [`{"server": {"address": "127.0.0.1", "port": \${P}},\n "buckets": [{"name": "b", "path_prefix": "/b", "s3": {"bucket": "bkt", "endpoint": "http://127.0.0.1:9000"}}]}\n`, 1, 46],
    ];
    for (const [yaml, line, column] of cases) {
      const got = issues(yaml, { P: "8080", NET: "10.1.0.0/16" });
      expect(got).toHaveLength(1);
      expect(got[0]!).toMatchObject({ line, column });
      expect(got[0]!.message).toContain("an unquoted ${VAR} inside { } or [ ] is read as YAML syntax");
    }
  });

  test("a syntax error on a long line of brackets is told at once (the ${VAR}-in-brackets check was quadratic in them: minutes, cut at 30 s)", () => {
    // 100,000 "[" in a plain scalar, then a stray ": " (a syntax error on that line): the yaml
    // package reads it in milliseconds; the check for an unquoted ${ inside brackets scanned on from
    // every "[" (72 s on a loaded 2-core host; a few ms in one pass)
    const started = performance.now();
    const got = issues(`x-junk: a${"[".repeat(100_000)} b: c\n${B}`);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(got[0]!).toMatchObject({ line: 1 });
    expect(got[0]!.message).toStartWith("invalid YAML:");
    expect(got[0]!.message).not.toContain("${VAR}");
    // the check itself still tells a ${ inside brackets from one after them or in quotes
    expect(issues(`server: { port: \${P} }\n${B}`, { P: "1" })[0]!.message).toContain("an unquoted ${VAR} inside { } or [ ]");
    expect(issues(`x-a: a[b] b: "\${P}"\n${B}`, { P: "1" })[0]!.message).not.toContain("${VAR}");
  });

  test("an unknown key names its full path", () => {
    const got = issues(B.replace(' }', ", bogus: 1 }"));
    expect(got).toEqual([{ path: "buckets[0].s3.bogus", message: "unknown key 'bogus'", line: 4 }]);
  });

  test("an unknown key that is a typo of a key the mapping takes says which one (at any depth: a bucket's s3 section, a list entry)", () => {
    const cases: Array<[string, string, string]> = [
      [`server:\n  prot: 1\n${B}`, "server.prot", "port"],
      [`server:\n  max-concurrent-requests: 5\n${B}`, "server.max-concurrent-requests", "max_concurrent_requests"],
      [`server:\n  Workers: 2\n${B}`, "server.Workers", "workers"],
      [B.replace(" }", ", acess_key: x }"), "buckets[0].s3.acess_key", "access_key"],
      [B.replace(" }", ", retry: { max_atempts: 2 } }"), "buckets[0].s3.retry.max_atempts", "max_attempts"],
      [`cache:\n  memroy: {}\n${B}`, "cache.memroy", "memory"],
      [`jwt:\n  secret: "${"s".repeat(32)}"\n  keys: [{ idd: k, algorithm: HS256, secret: "${"k".repeat(32)}" }]\n${B}`, "jwt.keys[0].idd", "id"],
    ];
    for (const [yaml, path, like] of cases) {
      const got = issues(yaml).find((i) => i.path === path);
      expect(got?.message).toBe(`unknown key '${path.split(".").at(-1)}' (did you mean '${like}'?)`);
    }
    // (nothing close: no guess)
    expect(issues(`server:\n  zzzzzzzz: 1\n${B}`)).toEqual([{ path: "server.zzzzzzzz", message: "unknown key 'zzzzzzzz'", line: 2 }]);
  });

  // A misspelled required key was two problems: `requests_per_secnd` gave "unknown key ... (did you
  // mean 'requests_per_second'?)" and "requests_per_second: required", the latter at another line
  // for a bucket's `path_prefx` (the entry's first).
  test("a misspelled required key is one problem: the typo, naming the key meant, without that key's 'required'", () => {
    const typo = (yaml: string) => issues(yaml).map((i) => `${i.line} ${i.path}: ${i.message}`);
    expect(typo(`server:\n  rate_limit:\n    per_ip: { requests_per_secnd: 5 }\n${B}`)).toEqual(["3 server.rate_limit.per_ip.requests_per_secnd: unknown key 'requests_per_secnd' (did you mean 'requests_per_second'?)"]);
    expect(typo(B.replace("path_prefix", "path_prefx"))).toEqual(["3 buckets[0].path_prefx: unknown key 'path_prefx' (did you mean 'path_prefix'?)"]);
    expect(typo(B.replace("{ bucket:", "{ buckt:"))).toEqual(["4 buckets[0].s3.buckt: unknown key 'buckt' (did you mean 'bucket'?)"]);
    // AWS's names of a credential, and the other front's: a bucket's s3 takes access_key/secret_key,
    // the S3 front's credentials access_key_id/secret_access_key (each was a bare "unknown key",
    // and in the S3 front's credentials also both keys "required": four problems for two lines)
    expect(typo(B.replace("{ bucket:", "{ access_key_id: AKIA1, secret_access_key: s, bucket:"))).toEqual([
      "4 buckets[0].s3.access_key_id: unknown key 'access_key_id' (did you mean 'access_key'?)",
      "4 buckets[0].s3.secret_access_key: unknown key 'secret_access_key' (did you mean 'secret_key'?)",
    ]);
    expect(typo(B.replace("{ bucket:", "{ AWS_ACCESS_KEY_ID: AKIA1, aws_secret_access_key: s, aws_session_token: t, bucket:")).map((l) => l.slice(l.indexOf("(")))).toEqual([
      "(did you mean 'access_key'?)",
      "(did you mean 'secret_key'?)",
      "(did you mean 'session_token'?)",
    ]);
    const front = (keys: string) => `s3_api:\n  enabled: true\n  port: 0\n  credentials:\n    - { ${keys}, identity: app, buckets: { b: [read] } }\n${B}`;
    expect(typo(front("aws_access_key_id: AKIATESTTESTTEST, aws_secret_access_key: secretsecretsecret1234"))).toEqual([
      "5 s3_api.credentials[0].aws_access_key_id: unknown key 'aws_access_key_id' (did you mean 'access_key_id'?)",
      "5 s3_api.credentials[0].aws_secret_access_key: unknown key 'aws_secret_access_key' (did you mean 'secret_access_key'?)",
    ]);
    expect(typo(front("access_key: AKIATESTTESTTEST, secret_key: secretsecretsecret1234")).map((l) => l.slice(l.indexOf("(")))).toEqual(["(did you mean 'access_key_id'?)", "(did you mean 'secret_access_key'?)"]);
    // (a required key missing beside an unknown key that is no typo of it is still said)
    expect(typo(B.replace("path_prefix: /b", "zzzzzzzz: /b"))).toEqual(["2 buckets[0].path_prefix: required (the URL prefix it serves, such as /products)", "3 buckets[0].zzzzzzzz: unknown key 'zzzzzzzz'"]);
  });

  // A documented key in the wrong section (a bucket's `region` beside `s3:`, a top-level `port`)
  // read a bare "unknown key 'region'", though the README documents `region`.
  test("an unknown key that is a key of a section one level down or up says where it goes", () => {
    const got = (yaml: string, path: string) => issues(yaml).find((i) => i.path === path)?.message;
    const bucket = `buckets:\n  - name: b\n    path_prefix: /b\n`;
    expect(got(`${bucket}    region: us-east-1\n    s3: { bucket: bkt }\n`, "buckets[0].region")).toBe("unknown key 'region' (a key of another section: buckets[0].s3.region)");
    expect(got(`${bucket}    claims: []\n    s3: { bucket: bkt }\n`, "buckets[0].claims")).toBe("unknown key 'claims' (a key of another section: buckets[0].auth.claims)");
    expect(got(`${bucket}    s3: { bucket: bkt, cache: { enabled: true } }\n`, "buckets[0].s3.cache")).toBe("unknown key 'cache' (a key of another section: buckets[0].cache)");
    expect(got(`port: 8080\n${B}`, "port")).toBe("unknown key 'port' (a key of another section: server.port, metrics.port or s3_api.port)");
    // other tools' Redis settings (host, port, password, db): each was a bare "unknown key"
    const redis = " (the connection is one URL, url: redis://host:6379/0, rediss:// for TLS, its password and database in it, redis://:PASSWORD@host:6379/2, or beside it as redis_password and redis_db)";
    const split = `cache:\n  cache_layers: [memory, redis]\n  redis: { host: r, port: 6379, password: p, db: 1, url: "redis://r:6379" }\n${B}`;
    expect(["host", "port", "password", "db"].map((k) => got(split, `cache.redis.${k}`))).toEqual(["host", "port", "password", "db"].map((k) => `unknown key '${k}'${redis}`));
    // the top-level cache section and a bucket's share a name: a key of one in the other said a bare "unknown key"
    expect(got(`cache:\n  ttl_seconds: 600\n${B}`, "cache.ttl_seconds")).toBe("unknown key 'ttl_seconds' (a key of another section: buckets[].cache.ttl_seconds)");
    expect(got(`${bucket}    s3: { bucket: bkt }\n    cache: { enabled: true, cache_layers: [memory] }\n`, "buckets[0].cache.cache_layers")).toBe("unknown key 'cache_layers' (a key of another section: cache.cache_layers)");
    // a typo still gets its guess, and a key known nowhere near gets nothing
    expect(got(`${bucket}    s3: { bucket: bkt, regoin: us-east-1 }\n`, "buckets[0].s3.regoin")).toBe("unknown key 'regoin' (did you mean 'region'?)");
    expect(got(`server:\n  zzzzzzzz: 1\n${B}`, "server.zzzzzzzz")).toBe("unknown key 'zzzzzzzz'");
  });

  test("a config path or argument is shown without its password in both its forms (`https://h`, resolved `https:/h`), one holding / or = too; a name shown otherwise than written is said once above its problems", () => {
    expect(["https://u:p@h/x.yaml", "/cwd/https:/u:p@h/x.yaml", "a:se/cr=et@b", "/cwd/a:se/cr=et@b", "--config=u:p/w@h", "https://u:se/cr@h/x", "me@host.yaml", "user@host:path", "http://h:8080/a@b", "https://u:p@h:8080/a@b"].map(shownArgument)).toEqual([
      "https://h/x.yaml",
      "/cwd/https:/h/x.yaml",
      "***@b",
      "/cwd/***@b",
      "--config=***@h",
      "https://***@h/x",
      "me@host.yaml",
      "user@host:path",
      // (a port and a path holding an `@` read alike as a password of digits, a `/` and more: hidden)
      "http://***@b",
      // (a password may hold `@` and `/` as well as a path: the last `@` ends what is hidden)
      "https://***@b",
    ]);
    // a password holding `:/` (read as a folded scheme, `usr:PW1:/`), an unencoded `@`, `#` or `?`, or starting with `/`, showed part of it
    const malformed = ["cfg usr:PW1:/XQZ@host", "/cwd/usr:PW1:/XQZ@host/x.yaml", "usr:PW/x:/PW2@h", "https://u:PW1:/XQZ@host/x", "https://u:PW1@XQZ#PW2@h/x", "https://u:PW1@XQZ?PW2@h/x", "https://u:PW1@XQZ/PW2@h/x", "https://u:PW1#XQZ@h/x", "https://u:PW1?XQZ@h/x", "https://u:/PW1@h/x", "/cwd/https:/u:/PW1@h/x", "--config=https://u:PW1@XQZ#PW2@h/x"];
    expect(malformed.map(shownArgument)).toEqual(["cfg ***@host", "/cwd/***@host/x.yaml", "***@h", "https://***@host/x", "https://***@h/x", "https://***@h/x", "https://***@h/x", "https://***@h/x", "https://***@h/x", "https://***@h/x", "/cwd/https:/***@h/x", "--config=https://***@h/x"]);
    for (const shown of malformed.map(shownArgument)) expect(shown).not.toMatch(/PW|XQZ/);
    // a password of digits up to a `/` (read as a port and a path) was shown whole
    expect(["redis://u:1234/PW2@h", "redis://:6379/PW2@h", "https://u:12?PW2@h/x", "http://h:8080/a:PW1@b"].map(shownArgument)).toEqual(["redis://***@h", "redis://***@h", "https://***@h/x", "http://***@b"]);
    // one whose user information is plain loses it whole, with an `@` in its password too
    expect(["https://u:p@ss@h/x", "https://tok@h/x", "http://h/a@b"].map(shownArgument)).toEqual(["https://h/x", "https://h/x", "http://h/a@b"]);
    // a password holding white space, without a scheme, was shown whole (neither of its words holds user:password@host)
    expect(["a:se cr@b", "a:se\tcr@b", "--config=a:se cr@b", `a:"se cr"@b`, "x a:s e c@r@b", "a:se%20cr@b", "me x:y@b", "x:1 me@b", "user@host:path x@b", "a:s@e cr@b", "--config=a:s@e\tc r@b"].map(shownArgument)).toEqual([
      "***@b",
      "***@b",
      "--config=***@b",
      "***@b",
      "x ***@b",
      "***@b",
      "me ***@b",
      "***@b",
      "user@host:path x@b",
      // (a password holding an `@` and white space: its part after the `@` was shown, `***@e cr@b`)
      "***@b",
      "--config=***@b",
    ]);
    const two: ConfigIssue[] = [
      { path: "server.port", message: "bad", line: 2 },
      { path: "buckets", message: "worse", line: 3, column: 4 },
    ];
    const long = `/d/${"x".repeat(220)}.yaml`;
    expect(formatIssues(two, long)).toBe(`${long.slice(0, 200)}... (${long.length} characters):\nline 2: server.port: bad\nline 3, column 4: buckets: worse`);
    expect(formatIssues(two, "/d/u:p@h.yaml")).toBe("/d/***@h.yaml:\nline 2: server.port: bad\nline 3, column 4: buckets: worse");
    // a name shown as written, or one problem, keeps the file:line form
    expect(formatIssues(two, "/d/c.yaml")).toBe("/d/c.yaml:2: server.port: bad\n/d/c.yaml:3:4: buckets: worse");
    expect(formatIssues(two.slice(0, 1), "/d/u:p@h.yaml")).toBe("/d/***@h.yaml:2: server.port: bad");
  });

  test("a long unknown key is shown cut (64 characters): a line read as a key (a file that is no config, a secret pasted where a key goes) is not printed whole", () => {
    const line = `root:$6$${"s".repeat(86)}:19000:0:99999:7:::`;
    const got = issues(`${B}${line}: 1\n`);
    // (a key's name and ':' before the rest: only the name, as a `secret_key:value` glued in { } is)
    const shown = "root:…";
    expect(got).toEqual([{ path: shown, message: `unknown key '${shown}'`, line: 5 }]);
    expect(JSON.stringify(got)).not.toContain("s".repeat(60));
  });

  test("a `key:value` written without a space inside { } (JSON's habit) is one key to YAML: its problem names the key and hides the value, a secret's too", () => {
    const S3S = "s3cr3t-value-0123456789abcdefABCD";
    const JS = "jwt-s3cr3t-0123456789abcdefABCDEFGHIJ";
    const yaml = `server: { port: 1 }\njwt: { enabled: true, algorithm: HS256, secret:${JS} }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, access_key: AK, secret_key:${S3S}, secret_key:${S3S} } }\n`;
    const got = issues(yaml);
    expect(got).toContainEqual({ path: "jwt.secret:…", message: "unknown key 'secret:…' (a ':' with no space after it: inside { } YAML reads `secret:value` as one key; write `secret: value`)", line: 2 });
    expect(got.some((i) => i.path === "buckets[0].s3.secret_key:…" && i.message.startsWith("duplicate key 'secret_key:…'"))).toBe(true);
    for (const s of [S3S, JS, S3S.slice(0, 20), JS.slice(0, 20)]) expect(JSON.stringify(got)).not.toContain(s);
    // the name as other configs spell it (MinIO's JS client: secretKey; an env file: SECRET_KEY; a typo: secret-key) hides it too
    for (const name of ["secretKey", "SECRET_KEY", "secret-key"]) {
      const named = issues(`buckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, access_key: AK, ${name}:${S3S} } }\n`);
      expect(named).toContainEqual({ path: `buckets[0].s3.${name}:…`, message: `unknown key '${name}:…'`, line: 2 });
      expect(JSON.stringify(named)).not.toContain(S3S.slice(0, 8));
    }
    // a claim name that is a URL keeps its ':' (it is no glued value)
    expect(issues(`${B}"https://example.com/roles": 1\n`).map((i) => i.path)).toEqual(["https://example.com/roles"]);
    // and so does a credential's claim name, `cognito:groups`, `urn:example:role` (it was `cognito:…`)
    const claims = (c: string) => `${B}s3_api:\n  credentials:\n    - { access_key_id: AKIDCLAIMS1, secret_access_key: abcdefghijklmnopqrstu, identity: a, buckets: { b: [read] }, claims: { ${c} } }\n`;
    expect(issues(claims(`"cognito:groups": [a], "cognito:groups": [b]`))).toEqual([{ path: "s3_api.credentials[0].claims.cognito:groups", message: "duplicate key 'cognito:groups' (first defined at line 7)", line: 7 }]);
    expect(issues(claims(`urn:example:role: a, urn:example:role: b`)).map((i) => i.path)).toEqual(["s3_api.credentials[0].claims.urn:example:role"]);
  });

  test("a long unknown key is cut before a character outside the BMP, never between its halves: the problem goes into JSON (log lines, the admin API's reload answer), where half a pair is a lone \\ud83d strict readers refuse", () => {
    const key = `${"a".repeat(60)}\u{1F600}${"b".repeat(10)}`;
    const got = issues(`${B}${key}: 1\n`);
    const shown = `${"a".repeat(60)}...`;
    expect(got).toEqual([{ path: shown, message: `unknown key '${shown}'`, line: 5 }]);
    expect(JSON.stringify(got)).not.toContain("\\ud83d");
  });

  test("a long listen address and a long duplicate key are cut before a character outside the BMP too, never between its halves", () => {
    const address = `${"h".repeat(76)}\u{1F600}${"x".repeat(10)}`;
    const bad = issues(`server: { address: "${address}" }\n${B}`);
    expect(bad.map((i) => i.path)).toEqual(["server.address"]);
    expect(bad[0]!.message).toContain(`"${"h".repeat(76)}..."`);
    expect(JSON.stringify(bad)).not.toContain("\\ud83d");
    const key = `${"d".repeat(56)}\u{1F600}${"e".repeat(10)}`;
    const dup = issues(`${B}${key}: 1\n${key}: 2\n`);
    expect(dup.some((i) => i.message.startsWith(`duplicate key '${"d".repeat(56)}...'`))).toBe(true);
    expect(JSON.stringify(dup)).not.toContain("\\ud83d");
  });

  test("a key holding control characters is printed escaped: the report never carries a terminal escape or a carriage return", () => {
    // `"x\e[2J\rserver": 1` cleared the terminal of whoever ran --check, or hid the problem behind a CR.
    const err = (() => {
      try {
        parseConfig(`${B}"x\\e[2J\\rserver\\u202e": 1\n`, { env: {}, file: "c.yaml" });
      } catch (e) {
        return e as ConfigError;
      }
    })()!;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe("c.yaml:5: x\\x1b[2J\\rserver\\u202e: unknown key 'x\\x1b[2J\\rserver\\u202e' (it contains U+001B (a control character) at position 2: a character that cannot be seen in the config, most likely pasted by mistake; remove it)");
    expect(err.issues[0]!.path).toBe("x\x1b[2J\rserver\u202e"); // (the issue itself is data, as it was: JSON logs escape it)
  });

  test("malformed YAML reports the line of the error", () => {
    const got = issues(`server:\n  port: 1\nbuckets: [\n  - a: b\n`);
    expect(got.length).toBeGreaterThan(0);
    expect(got[0].message).toStartWith("invalid YAML");
    expect(got[0].line).toBe(4);
  });

  // An unclosed bracket or quote is found at the end of the file: the report names the line where
  // it was opened, never a line past the last one.
  for (const [name, text, line, what] of [
    ["a flow map never closed", "server:\n  port: 1\nbuckets:\n  - name: a\n    s3: { bucket: b, region: r\n", 5, "'{'"],
    ["a flow sequence never closed", "server:\n  port: 1\nbuckets: [\n", 3, "'['"],
    ['a double quote never closed', 'server:\n  address: "127.0.0.1\n  port: 1\n', 2, 'quote (")'],
    ["a single quote never closed", "server:\n  address: 'it''s\n", 2, "quote (')"],
    ['an escaped double quote is no closing one', 'a: "x\\"\n', 1, 'quote (")'],
  ] as const) {
    test(`malformed YAML: ${name} is reported on the line it was opened`, () => {
      const got = issues(text);
      expect(got[0].message).toStartWith("invalid YAML");
      expect(got[0].message).toContain(`the ${what} opened on line ${line} is never closed`);
      expect(got[0].line).toBe(line);
    });
  }

  test("malformed YAML: an error inside the file keeps its line and names the bracket never closed", () => {
    const got = issues("server: {\n  port: 8080,\n  address: x\n\nbuckets: []\n");
    expect(got[0].line).toBe(5);
    expect(got[0].message).toContain("the '{' opened on line 1 is never closed");
  });

  test("a duplicate path_prefix is rejected", () => {
    const y = B + `  - name: c\n    path_prefix: /b/\n    s3: { bucket: bkt2 }\n`;
    expect(issues(y)).toEqual([{ path: "buckets[1].path_prefix", message: "duplicate path_prefix '/b' (also buckets[0])", line: 6 }]);
  });

  for (const reserved of ["/health", "/ready", "/admin", "/metrics", "/admin/x"]) {
    test(`a path_prefix colliding with ${reserved} is rejected`, () => {
      const got = issues(B.replace("path_prefix: /b", `path_prefix: ${reserved}`));
      expect(got).toHaveLength(1);
      expect(got[0].path).toBe("buckets[0].path_prefix");
      expect(got[0].message).toContain("collides with the proxy's own");
    });
  }

  test("a section left without a value (every line under it commented out) says to write its keys or remove it (it said only \"expected a mapping, got null\")", () => {
    const got = issues(`jwt:\n#  enabled: true\n#  secret: \${JWT_SECRET}\n${B}    auth:\n`);
    const why = "expected a mapping, got null (the key has no value, as when every line under it is commented out: write its keys indented below it, or remove the key)";
    expect(got).toEqual([
      { path: "jwt", message: why, line: 1 },
      { path: "buckets[0].auth", message: why, line: 8 },
    ]);
  });

  test("a required section, or a list entry, left without a value is not told it may be removed (an empty s3: said \"or remove the key\")", () => {
    const got = issues(`buckets:\n  -\n  - name: b\n    path_prefix: /b\n    s3:\n`);
    const why = (what: string, end: string) => `expected a mapping, got null (the ${what} has no value, as when every line under it is commented out: write its keys indented below it${end})`;
    expect(got).toEqual([
      { path: "buckets[0]", message: why("entry", ", or remove the entry"), line: 2 },
      { path: "buckets[1].s3", message: why("key", "; it is required"), line: 5 },
    ]);
  });

  test("an empty cache.redis: (or cache.disk:) that cache_layers lists is told to go with its layer: removed alone, it is \"the cache.redis section is required\"", () => {
    const why = (end: string) => `expected a mapping, got null (the key has no value, as when every line under it is commented out: write its keys indented below it${end})`;
    expect(issues(`cache:\n  cache_layers: [memory, redis]\n  redis:\n${B}`)).toEqual([{ path: "cache.redis", message: why(", or remove it and redis from cache_layers"), line: 3 }]);
    expect(issues(`cache:\n  cache_layers: [memory, disk]\n  disk:\n${B}`)).toEqual([{ path: "cache.disk", message: why(", or remove it and disk from cache_layers"), line: 3 }]);
    // not listed: removing it is all it takes
    expect(issues(`cache:\n  cache_layers: [memory, disk]\n  redis:\n${B}`)).toEqual([{ path: "cache.redis", message: why(", or remove the key"), line: 3 }]);
  });

  // No-break spaces are what copying YAML out of a web page or a chat leaves as indentation; the
  // report said "unknown key '  port'" or "server.port: unknown key 'port'" (a zero width space
  // before it), or only a YAML error, and the key looked right to whoever read it.
  test("an unknown key, or a YAML error on a line, holding a character no one can see names it and where it is", () => {
    const nbsp = issues(`server:\n\u00a0\u00a0port: 1\n${B}`).map((i) => `${i.line} ${i.path}: ${i.message}`);
    expect(nbsp).toEqual(["1 server: expected a mapping, got null (the key has no value, as when every line under it is commented out: write its keys indented below it, or remove the key)", "2 \u00a0\u00a0port: unknown key '\u00a0\u00a0port' (it contains U+00A0 (no-break space) at position 1: a character that cannot be seen in the config, most likely pasted by mistake; remove it)"]);
    const zw = issues(`server:\n  \u200bport: 1\n${B}`).map((i) => `${i.line} ${i.path}: ${i.message}`);
    expect(zw).toEqual(["2 server.\u200bport: unknown key '\u200bport' (it contains U+200B (zero width space) at position 1: a character that cannot be seen in the config, most likely pasted by mistake; remove it)"]);
    const syntax = issues(`buckets:\n  - name: b\n    path_prefix: /b\n    s3:\n      bucket: bkt\n    \u00a0\u00a0region: us-east-1\n      endpoint: "http://127.0.0.1:9000"\n`);
    expect(syntax[0]).toEqual({
      path: "",
      line: 6,
      column: 15,
      message: "invalid YAML: Nested mappings are not allowed in compact mappings (line 6 holds U+00A0 (no-break space) at column 5, which YAML reads as text, not as a space: retype that part of the line)",
    });
    // A plain unknown key, and a syntax error on a line of visible characters, say what they said.
    expect(issues(`server:\n  prot: 1\n${B}`).map((i) => i.message)).toEqual(["unknown key 'prot' (did you mean 'port'?)"]);
    expect(issues(`server:\n  port: [1\n`)[0]!.message).not.toContain("holds U+");
  });

  // A zero width space or a no-break space pasted into a name or prefix passed --check, and the
  // bucket answered only URLs holding that character (404 for every request that looked right).
  test("a bucket name or path_prefix holding an invisible or space character is refused, naming the code point, its position and the line", () => {
    const at = (name: string, prefix: string) => issues(`server: { port: 1 }\n${B}  - name: "${name}"\n    path_prefix: "${prefix}"\n    s3: { bucket: bkt2, endpoint: "http://127.0.0.1:9000" }\n`).map((i) => `${i.line} ${i.path}: ${i.message}`);
    const tail = ": a character that cannot be seen in the config, most likely pasted by mistake; remove it";
    expect(at("pics", "/test\\u200b")).toEqual([`7 buckets[1].path_prefix: contains U+200B (zero width space) at position 6${tail}`]);
    expect(at("pi\\u00a0cs", "/pics")).toEqual([`6 buckets[1].name: contains U+00A0 (no-break space) at position 3${tail}`]);
    expect(at("\\ufeffpics", "/pics ")).toEqual([`6 buckets[1].name: contains U+FEFF (zero width no-break space, the byte order mark) at position 1${tail}`, `7 buckets[1].path_prefix: contains U+0020 (space) at the end (position 6)${tail}`]);
    expect(at(" pics", "/pi\\tcs")).toEqual([`6 buckets[1].name: contains U+0020 (space) at the start (position 1)${tail}`, `7 buckets[1].path_prefix: contains U+0009 (character tabulation) at position 4${tail}`]);
    expect(at("pics\\u2063", "/p\\u3000")).toEqual([`6 buckets[1].name: contains U+2063 (invisible separator) at position 5${tail}`, `7 buckets[1].path_prefix: contains U+3000 (ideographic space) at position 3${tail}`]);
    // (named by kind where the table has no name: U+FFF9, a format character; astral characters count as one)
    expect(at("\\U0001F600\\ufff9", "/p")).toEqual([`6 buckets[1].name: contains U+FFF9 (an invisible format character) at position 2${tail}`]);
    // A space between other characters is seen, and stays allowed; so do letters of any script.
    expect(parseConfig(`${B}  - name: "has space"\n    path_prefix: "/with space/ü写真"\n    s3: { bucket: bkt2, endpoint: "http://127.0.0.1:9000" }\n`, { env: {} }).buckets.map((b) => [b.name, b.path_prefix])).toEqual([["b", "/b"], ["has space", "/with space/ü写真"]]);
  });

  test("a path_prefix not starting with / is rejected", () => {
    expect(issues(B.replace("path_prefix: /b", "path_prefix: b"))).toEqual([{ path: "buckets[0].path_prefix", message: 'must start with /, got "b" (write "/b")', line: 3 }]);
    // (an empty one: `(write "/")` alone led to a bucket catching every path)
    expect(issues(B.replace("path_prefix: /b", 'path_prefix: ""'))).toEqual([{ path: "buckets[0].path_prefix", message: `must start with /, got "" (write the URL prefix the bucket serves, such as "/products"; "/" makes it serve every path no other bucket's prefix takes)`, line: 3 }]);
    // (from a \${VAR}: named, its value never shown)
    expect(issues(B.replace("path_prefix: /b", "path_prefix: ${P}"), { P: "Prefix-Value-3" })[0]!.message).toBe("must start with /, got the value of ${P}");
  });

  test("access_key without secret_key is rejected on secret_key", () => {
    const got = issues(B.replace(' }', ", access_key: AK }"));
    expect(got).toEqual([{ path: "buckets[0].s3.secret_key", message: "access_key and secret_key must be given together (or neither, for anonymous access)", line: 4 }]);
  });

  // A trailing newline (a secret file read through ${VAR}) in a credential sent in a header passed
  // --check (a note) and then failed every request as "the upstream connection closed" (502).
  test("an access_key or session_token with a line break or control character is refused, never shown", () => {
    const y = B.replace(' }', ', access_key: "${AK}", secret_key: sk-0123456789, session_token: "${ST}" }');
    const got = issues(y, { AK: "AKIASEKRET\n", ST: "tok\u0001SEKRET" });
    expect(got.map((i) => i.path)).toEqual(["buckets[0].s3.access_key", "buckets[0].s3.session_token"]);
    expect(got[0]!.message).toContain("contains a line break");
    expect(got[1]!.message).toContain("contains a control character");
    for (const i of got) expect(i.message).not.toContain("SEKRET");
    expect(parseConfig(y, { env: { AK: "AKIAOK", ST: "tok en" } }).buckets[0]!.s3.access_key).toBe("AKIAOK");
    const r = `buckets:\n  - name: b\n    path_prefix: /b\n    s3:\n      replicas:\n        - { name: a, bucket: bkt, endpoint: "http://127.0.0.1:9000", access_key: "\${AK}", secret_key: sk-0123456789 }\n`;
    expect(issues(r, { AK: "AKIASEKRET\r\n" }).map((i) => `${i.path}: ${i.message.slice(0, 30)}`)).toEqual(["buckets[0].s3.replicas[0].access_key: contains a line break (the new"]);
  });

  // A curly quote pasted from a document passed --check, then every request carrying the value
  // failed before it left the proxy: fetch refuses a header value outside Latin-1 ("Header
  // 'Authorization' has invalid value"), an OpenFGA check with it was an outage (its fail mode).
  test("an access_key, session_token or openfga_api_token holding a character outside Latin-1 is refused, never shown", () => {
    const y = `buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000", access_key: "\${AK}", secret_key: sk-0123456789, session_token: "\${ST}" }\n    auth: { enabled: true }\n    authorization: { type: openfga, openfga_endpoint: "http://127.0.0.1:1", openfga_store_id: "01HXYZ", openfga_api_token: "\${FT}" }\njwt: { enabled: true, secret: "0123456789abcdef0123456789abcdef" }\n`;
    const got = issues(y, { AK: "\u201cAKIASEKRET\u201d", ST: "tokSEKRET\u2014x", FT: "fgaSEKRET\u00a0\u2019" });
    expect(got.map((i) => i.path)).toEqual(["buckets[0].s3.access_key", "buckets[0].s3.session_token", "buckets[0].authorization.openfga_api_token"]);
    for (const i of got) {
      expect(i.message).toContain("a character outside Latin-1");
      expect(i.message).not.toContain("SEKRET");
    }
    expect(got[2]!.message).toContain("sent to OpenFGA in a request header");
    // Latin-1 itself (a no-break space, é) goes through a header as it is.
    expect(parseConfig(y, { env: { AK: "AKIAOK", ST: "tok\u00e9", FT: "fga\u00a0tok" } }).buckets[0]!.authorization?.openfga_api_token).toBe("fga\u00a0tok");
  });

  // "must be a valid http(s) URL" for `127.0.0.1:9000` (and "must be an http:// or https:// URL"
  // for `minio:9000`, which parses as scheme `minio:`) left the reader to guess what was wrong.
  test("an endpoint or URL key written without its scheme (host:port) says so", () => {
    const end = ": it has no scheme: write http:// or https:// before the host";
    const at = (v: string) => issues(B.replace("http://127.0.0.1:9000", v)).map((i) => i.message);
    expect(at("127.0.0.1:9000")).toEqual([`must be a valid http(s) URL${end}`]);
    expect(at("minio:9000")).toEqual([`must be an http:// or https:// URL${end}`]);
    expect(at("s3.example.com")).toEqual([`must be a valid http(s) URL${end}`]);
    expect(issues(`jwt: { algorithm: RS256, jwks_url: "idp.example.com:8443/jwks.json" }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual([`jwt.jwks_url: must be an http:// or https:// URL${end}`]);
    const rep = issues(`buckets:\n  - name: b\n    path_prefix: /b\n    s3: { replicas: [{ name: r, bucket: bkt, endpoint: "minio:9000" }] }\n`);
    expect(rep.map((i) => `${i.path}: ${i.message}`)).toEqual([`buckets[0].s3.replicas[0].endpoint: must be an http:// or https:// URL${end}`]);
    // another scheme, or no URL at all, is not told to add one
    expect(at("ftp://x")).toEqual(["must be an http:// or https:// URL"]);
    expect(at("not a url")).toEqual(["must be a valid http(s) URL"]);
  });

  test("an invalid endpoint URL is rejected", () => {
    const got = issues(B.replace("http://127.0.0.1:9000", "not a url"));
    expect(got).toEqual([{ path: "buckets[0].s3.endpoint", message: "must be a valid http(s) URL", line: 4 }]);
  });

  test("a non-http endpoint scheme is rejected", () => {
    const got = issues(B.replace("http://127.0.0.1:9000", "ftp://example.com"));
    expect(got.map((i) => i.path)).toEqual(["buckets[0].s3.endpoint"]);
  });

  test('address "0.0.0.0:8081" sets host and port', () => {
    const c = parseConfig(`server: { address: "0.0.0.0:8081" }\n${B}`, { env: {} });
    expect(c.server.address).toBe("0.0.0.0");
    expect(c.server.port).toBe(8081);
  });

  test("a port given both in address and in port is rejected", () => {
    const got = issues(`server: { address: "0.0.0.0:8081", port: 9000 }\n${B}`);
    expect(got).toEqual([{ path: "server.port", message: "the port is given twice: in server.address (8081) and in server.port", line: 1 }]);
  });

  test("a per-bucket auth.jwt (legacy) is rejected with a hint to use top-level jwt", () => {
    const got = issues(B + `    auth: { enabled: true, jwt: { secret: x } }\n`);
    expect(got[0].path).toBe("buckets[0].auth.jwt");
    expect(got[0].message).toContain("put the JWT settings in the top-level `jwt:` section");
    // and, in the same report, what the config without that key still lacks
    expect(got.slice(1)).toEqual([{ path: "buckets[0].auth.enabled", message: expect.stringContaining("auth is enabled but there is no top-level `jwt:` section"), line: 5 }]);
  });

  // The original README's `auth: { enabled: true } # Requires JWT` with no `jwt:` was told only
  // "auth is enabled but there is no enabled top-level `jwt:` section": nothing of what to write.
  test("a bucket's auth.enabled with no jwt section, or with jwt.enabled false, says what to write", () => {
    const tail = ", or set this bucket's `auth.enabled: false` to serve it without a token";
    expect(issues(B + `    auth: { enabled: true }\n`).map((i) => `${i.path}: ${i.message}`)).toEqual([
      "buckets[0].auth.enabled: auth is enabled but there is no top-level `jwt:` section to check tokens with: add one (`jwt: { secret: \"${JWT_SECRET}\", algorithm: HS256 }`, or with `jwks_url` or a public key file; see the configuration reference)" + tail,
    ]);
    expect(issues(`jwt: { enabled: false, secret: "" }\n` + B + `    auth: { enabled: true }\n`).map((i) => `${i.path}: ${i.message}`)).toEqual([
      "buckets[0].auth.enabled: auth is enabled but the top-level `jwt:` section has `enabled: false`: set `jwt.enabled: true` (its default)" + tail,
    ]);
  });

  test("the original README's token-source pitfall (param_name / header_name) says to write `name`, and nothing else about those entries", () => {
    const got = issues(`jwt: { secret: "s-0123456789abcdef0123456789abcdef", token_sources: [{ type: query, param_name: token }, { type: header, header_name: X-Auth-Token }] }\n${B}`);
    expect(got.map((i) => i.path)).toEqual(["jwt.token_sources[0].param_name", "jwt.token_sources[1].header_name"]);
    for (const i of got) expect(i.message).toContain("is given as `name`");
  });

  // The original README: "The `name` field is required for header and query types", "The `prefix`
  // field is optional for header types". Both were refused without saying what to write
  // ("token source header needs a name", "prefix only applies to token sources of type header").
  test("a header or query token source without name, or a prefix on a bearer or query source, says what to write", () => {
    const got = issues(`jwt: { secret: "s-0123456789abcdef0123456789abcdef", token_sources: [{ type: header }, { type: query }, { type: bearer, prefix: "Bearer " }, { type: query, name: t, prefix: "x" }] }\n${B}`);
    expect(got.map((i) => `${i.path}: ${i.message}`)).toEqual([
      "jwt.token_sources[0].name: token source header needs a name: the header the token is read from (`{ type: header, name: X-Auth-Token }`)",
      "jwt.token_sources[1].name: token source query needs a name: the query parameter the token is read from (`{ type: query, name: token }`)",
      "jwt.token_sources[2].prefix: prefix only applies to token sources of type header: remove it (bearer already takes what follows `Bearer `)",
      "jwt.token_sources[3].prefix: prefix only applies to token sources of type header: remove it (a query parameter's value is the token itself)",
    ]);
  });

  test("the original README's `s3: { bucket: team-a-bucket, ... }` says the '...' is a placeholder to fill in (it said only \"buckets[0].s3....: unknown key '...'\")", () => {
    const got = issues(`buckets:\n  - name: team-a\n    path_prefix: /team-a\n    s3: { bucket: "team-a-bucket", ... }\n`);
    expect(got).toEqual([{ path: "buckets[0].s3....", message: "'...' stands for the rest of this section in the original README's examples: write the section's keys in its place (see the configuration reference)", line: 4 }]);
  });

  test("a file or folder path starting with ~ is refused (it is not expanded: `path: ~/yata-cache` made a folder named '~' in the config's folder)", () => {
    const got = issues(
      `server:\n  https: { cert_path: ~/cert.pem, key_path: "~me/key.pem" }\ncache:\n  cache_layers: [memory, disk]\n  disk: { path: ~/yata-cache }\naudit: { enabled: true, path: "~" }\njwt: { enabled: true, algorithm: RS256, public_key_path: ~/jwt.pem, keys: [{ id: k, algorithm: RS256, path: ~/k.pem }] }\n${B}`,
    );
    const msg = "a leading ~ is not expanded here (a shell does that, not the config): write the full path, or ${HOME}/… (environment variables are substituted)";
    expect(got.map((i) => `${i.path}: ${i.message}`)).toEqual(
      ["server.https.cert_path", "server.https.key_path", "cache.disk.path", "audit.path", "jwt.public_key_path", "jwt.keys[0].path"].map((p) => `${p}: ${msg}`),
    );
    // nor is $HOME (only ${HOME} is substituted: it made a folder named "$HOME")
    expect(issues(`cache:\n  cache_layers: [memory, disk]\n  disk: { path: $HOME/yata-cache }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual([
      "cache.disk.path: $HOME is not substituted (it looks like an environment variable: write ${HOME}, only that form is substituted)",
    ]);
    // (a name that merely starts with "~" inside a folder, or ${HOME}, is fine)
    const ok = parseConfig(`cache:\n  cache_layers: [memory, disk]\n  disk: { path: "\${HOME}/yata-cache" }\naudit: { enabled: true, path: ./~audit.log }\n${B}`, { env: { HOME: "/home/me" } });
    expect([ok.cache.disk?.path, ok.audit?.path]).toEqual(["/home/me/yata-cache", "./~audit.log"]);
  });

  // The original's config.example.yaml offered these sections (its code never read them): a bare
  // "unknown key" left the user to guess which of our keys does the job.
  test("the original example's shutdown / limits / rate_limiting / circuit_breaker sections and https.min_tls_version name what to write instead", () => {
    const got = issues(
      `server:\n  https: { cert_path: c.pem, key_path: k.pem, min_tls_version: "1.2" }\nshutdown: { timeout_seconds: 30 }\nlimits: { max_request_body_size: 10MB }\nrate_limiting: { enabled: true, requests_per_second: 100 }\ncircuit_breaker: { failure_threshold: 5 }\n${B}`,
    ).filter((i) => !i.path.endsWith("_path"));
    expect(got.map((i) => i.path)).toEqual(["server.https.min_tls_version", "shutdown", "limits", "rate_limiting", "circuit_breaker"]);
    expect(got[0]!.message).toContain("TLS 1.2");
    expect(got[1]!.message).toContain("server.shutdown_timeout");
    expect(got[2]!.message).toContain("server.security_limits");
    expect(got[3]!.message).toContain("server.rate_limit");
    expect(got[4]!.message).toContain("s3.circuit_breaker");
  });

  // `--check` said OK, and no client can send such a header: every request to an auth bucket was 401.
  test("a header token source whose name HTTP cannot carry (a space, ':', a non-ASCII letter, a control character) is refused", () => {
    for (const name of ["X Auth", "X:Auth", "é", "X-Auth\u0000"]) {
      const got = issues(`jwt: { secret: "s-0123456789abcdef0123456789abcdef", token_sources: [{ type: header, name: ${JSON.stringify(name)} }] }\n${B}`);
      expect({ name, got: got.map((i) => `${i.path}: ${i.message}`) }).toEqual({ name, got: ["jwt.token_sources[0].name: is not a header name HTTP can carry (letters, digits and !#$%&'*+-.^_`|~ only)"] });
    }
    expect(parseConfig(`jwt: { secret: "s-0123456789abcdef0123456789abcdef", token_sources: [{ type: header, name: X-Auth-Token }] }\n${B}`, { env: {} }).jwt!.token_sources[0]!.name).toBe("X-Auth-Token");
  });

  test("claims_verification (legacy) is rejected with a hint to use claims", () => {
    const got = issues(`jwt: { secret: s, claims_verification: [] }\n${B}`);
    expect(got).toEqual([
      { path: "jwt.claims_verification", message: "`claims_verification` is spelled `claims` (top-level `jwt.claims`, or a bucket's `auth.claims`)", line: 1 },
      // every problem in one report: the short secret is listed too, not found only after the rename
      { path: "jwt.secret", message: "an HMAC secret must be at least 32 bytes (RFC 7518 §3.2); this one is 1", line: 1 },
    ]);
  });

  // They said only "required for type opa" / "required for type openfga".
  test("an opa or openfga authorization without its URL, policy path or store id says what goes there", () => {
    const J = `jwt: { secret: "s-0123456789abcdef0123456789abcdef" }\nbuckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n    auth: { enabled: true }\n`;
    const said = (authz: string) => issues(`${J}    authorization: ${authz}\n`).map((i) => `${i.path}: ${i.message}`);
    expect(["opa", "openfga"].map((type) => said(`{ type: ${type} }`))).toEqual([
      [
        "buckets[0].authorization.opa_url: required for type opa: the OPA server's URL (`opa_url: http://127.0.0.1:8181`)",
        "buckets[0].authorization.opa_policy_path: required for type opa: the policy rule asked, as a path (`opa_policy_path: yatagarasu/allow`)",
      ],
      [
        "buckets[0].authorization.openfga_endpoint: required for type openfga: the OpenFGA server's URL (`openfga_endpoint: http://127.0.0.1:8080`)",
        "buckets[0].authorization.openfga_store_id: required for type openfga: the id of the store its checks are asked in (`openfga_store_id: 01H…`)",
      ],
    ]);
  });

  test("authorization keys without their opa_ / openfga_ prefix (url, store_id, an opa: section) are refused naming the key to write", () => {
    const J = `jwt: { secret: "s-0123456789abcdef0123456789abcdef" }\nbuckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n    auth: { enabled: true }\n`;
    const hints = (authz: string) => issues(`${J}    authorization: ${authz}\n`).filter((i) => !/required for type/.test(i.message)).map((i) => `${i.path}: ${i.message}`);
    const pre = "the authorization keys carry their type's prefix: write";
    expect(hints(`{ type: opa, url: "http://opa:8181", policy_path: a/allow, timeout_ms: 100 }`)).toEqual([
      `buckets[0].authorization.url: ${pre} \`opa_url\``,
      `buckets[0].authorization.policy_path: ${pre} \`opa_policy_path\``,
      `buckets[0].authorization.timeout_ms: ${pre} \`opa_timeout_ms\``,
    ]);
    expect(hints(`{ type: openfga, endpoint: "http://fga:8080", store_id: s1, fail_mode: open }`)).toEqual([
      `buckets[0].authorization.endpoint: ${pre} \`openfga_endpoint\``,
      `buckets[0].authorization.store_id: ${pre} \`openfga_store_id\``,
      `buckets[0].authorization.fail_mode: ${pre} \`openfga_fail_mode\``,
    ]);
    expect(hints(`{ type: opa, opa: { url: "http://opa:8181" } }`)).toEqual([
      "buckets[0].authorization.opa: write the OPA settings beside `type`, each key with the prefix opa_ (e.g. `opa_url`), not in an `opa:` section",
    ]);
    // a type that is refused (or absent) names both
    expect(hints(`{ type: rego, cache_ttl_seconds: 5 }`).filter((i) => i.includes("cache_ttl"))).toEqual([
      `buckets[0].authorization.cache_ttl_seconds: ${pre} \`opa_cache_ttl_seconds\` (type: opa) or \`openfga_cache_ttl_seconds\` (type: openfga)`,
    ]);
  });

  test("several problems are all listed at once", () => {
    const y = `server: { bogus: 1 }\nbuckets:\n  - name: b\n    path_prefix: nope\n    s3: { bucket: bkt, endpoint: "x", extra: 1 }\n`;
    const got = issues(y).map((i) => i.path).sort();
    expect(got).toEqual(["buckets[0].path_prefix", "buckets[0].s3.endpoint", "buckets[0].s3.extra", "server.bogus"]);
  });

  test("ConfigError.message lists file:line: path: message per issue", () => {
    try {
      parseConfig(B.replace("bkt", "\"${NOPE_VAR}\""), { env: {}, file: "c.yaml" });
      throw new Error("not thrown");
    } catch (err) {
      expect((err as Error).message).toBe("c.yaml:4: buckets[0].s3.bucket: environment variable NOPE_VAR is not set");
    }
  });
});

describe("loadConfig", () => {
  test("a missing file is a ConfigError saying file not found", async () => {
    const err = await loadConfig("/nonexistent/dir/yata.yaml").catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe("/nonexistent/dir/yata.yaml: cannot read config: file not found");
  });
});

describe("URLs", () => {
  test("an endpoint with a ':' and no port is refused (it parsed as the scheme's default port)", () => {
    for (const ep of ["http://127.0.0.1:", "http://h:/x", "http://[::1]:"]) {
      expect(issues(`buckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, endpoint: "${ep}" } }\n`).map((i) => i.message)).toContain("has a ':' with no port after it: give the port, or leave out the ':'");
    }
    for (const ep of ["http://127.0.0.1:9000", "http://[::1]", "https://s3.example.com/path"]) {
      expect(() => parseConfig(`buckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, endpoint: "${ep}" } }\n`)).not.toThrow();
    }
  });

  // "must be a valid http(s) URL" (or zod's "Invalid URL") alone, for the form people write an IPv6 endpoint in.
  test("an IPv6 host without its brackets is named as such, in every URL-valued key", () => {
    const hint = ": an IPv6 host goes in brackets (http://[::1]:9000)";
    const bucket = (s3: string) => `buckets:\n  - { name: b, path_prefix: /b, s3: { ${s3} } }\n`;
    const ok = bucket(`bucket: bkt, endpoint: "http://[::1]:9000"`);
    for (const [yaml, path, message] of [
      [bucket(`bucket: bkt, endpoint: "http://::1:9000"`), "buckets[0].s3.endpoint", "must be a valid http(s) URL"],
      [bucket(`replicas: [{ name: r, bucket: bkt, endpoint: "http://fd00::2:9000" }]`), "buckets[0].s3.replicas[0].endpoint", "must be a valid http(s) URL"],
      [`jwt: { enabled: true, jwks_url: "https://2001:db8::1/jwks.json" }\n${ok}`, "jwt.jwks_url", "is not a URL"],
      [`tracing: { enabled: true, otlp_endpoint: "http://::1:4318" }\n${ok}`, "tracing.otlp_endpoint", "must be an http(s) URL"],
      [`s3_api: { enabled: true, port: 0, public_url: "http://::1:9000", credentials: [{ access_key_id: AKIATESTTESTTEST, secret_access_key: secretsecretsecret1234, identity: app, buckets: { b: [read] } }] }\n${ok}`, "s3_api.public_url", "must be an http(s) URL"],
    ] as const) {
      expect(issues(yaml).map((i) => `${i.path}: ${i.message}`)).toEqual([`${path}: ${message}${hint}`]);
    }
    expect(issues(bucket(`bucket: bkt, endpoint: "not a url"`)).map((i) => i.message)).toEqual(["must be a valid http(s) URL"]);
    // a Redis URL too, past a user name and password it never echoes
    const redis = (url: string) => issues(`cache: { cache_layers: [memory, redis], redis: { url: "${url}" } }\n${ok}`).map((i) => `${i.path}: ${i.message}`);
    expect(redis("redis://:s3cr3t@fd00::2:6379/0")).toEqual(["cache.redis.url: must be a redis:// or rediss:// URL with a host (e.g. redis://host:6379/0): an IPv6 host goes in brackets (redis://[::1]:6379/0)"]);
    expect(redis("redis://::1:6379")).toEqual(["cache.redis.url: must be a redis:// or rediss:// URL with a host (e.g. redis://host:6379/0): an IPv6 host goes in brackets (redis://[::1]:6379/0)"]);
  });
});

describe("every problem in one run", () => {
  test("a cache_layers rule that fails does not hide the file's other problems (it ran inside the parse and stopped the rest)", () => {
    const got = issues(`buckets: [{name: b, path_prefix: /health, s3: {bucket: abc, region: us-east-1}}]\njwt: {enabled: true, algorithm: HS256, secret: "short"}\ncache: {cache_layers: [memory, disk]}\n`);
    expect(got.map((i) => i.path).sort()).toEqual(["buckets[0].path_prefix", "cache.disk", "jwt.secret"]);
  });
});

describe("listen addresses", () => {
  const S3 = `s3_api:\n  enabled: true\n  port: 0\n  credentials: [{ access_key_id: AKIATESTTESTTEST, secret_access_key: secretsecretsecret1234, identity: app, buckets: { b: [read] } }]\n`;
  const at = (field: "server" | "metrics" | "s3_api", a: string) =>
    field === "server" ? `server: { address: ${JSON.stringify(a)} }\n${B}` : field === "metrics" ? `metrics: { enabled: true, address: ${JSON.stringify(a)} }\n${B}` : `${S3.replace("port: 0", `address: ${JSON.stringify(a)}\n  port: 0`)}${B}`;

  // Each passed --check and failed at start: "baseURI must have a hostname", getaddrinfo ENOTFOUND.
  test("a malformed address is refused naming the field and the accepted forms", () => {
    for (const field of ["server", "metrics", "s3_api"] as const) {
      for (const a of [":18103", "127.0.0.1:", "http://127.0.0.1:18104", "127.0.0.1 ", " localhost", "[::1", "a b", "host/x", "-bad-", "127.0.0.1:18105 "]) {
        const got = issues(at(field, a));
        expect(got.map((i) => i.path)).toEqual([`${field}.address`]);
        expect(got[0]!.message).toContain("an IPv4 address (0.0.0.0, 127.0.0.1), an IPv6 address (::, ::1 or [::1]) or a host name");
      }
      // host:port is the original's form for server.address only; the others take a port key
      expect(issues(at(field === "server" ? "metrics" : field, "127.0.0.1:9000"))[0]!.message).toContain("the port goes in the port key");
    }
  });

  test("IPv4, IPv6 (bracketed or not) and host names load; server.address also takes :port (the original's form); brackets are taken off", () => {
    for (const [a, host] of [["0.0.0.0", "0.0.0.0"], ["::", "::"], ["::1", "::1"], ["[::1]", "::1"], ["localhost", "localhost"], ["my_svc.ns.svc.cluster.local", "my_svc.ns.svc.cluster.local"]]) {
      expect(parseConfig(at("server", a!), { env: {} }).server.address).toBe(host!);
      expect(parseConfig(at("metrics", a!), { env: {} }).metrics.address).toBe(host!);
      expect(parseConfig(at("s3_api", a!), { env: {} }).s3_api!.address).toBe(host!);
    }
    expect(parseConfig(at("server", "0.0.0.0:8080"), { env: {} }).server).toMatchObject({ address: "0.0.0.0", port: 8080 });
    expect(parseConfig(at("server", "[::1]:18097"), { env: {} }).server).toMatchObject({ address: "::1", port: 18097 });
    // a link-local address with its zone: "[fe80::1%eth0]" loaded, "[fe80::1%eth0]:18098" was "not a listen address"
    expect(parseConfig(at("server", "[fe80::1%eth0]:18098"), { env: {} }).server).toMatchObject({ address: "fe80::1%eth0", port: 18098 });
    expect(parseConfig(at("server", "[fe80::1%eth0]"), { env: {} }).server.address).toBe("fe80::1%eth0");
  });

  // Passed --check, and the bind failed at start with a bare "EINVAL: invalid argument, listen".
  test("a link-local address without its zone is refused, saying how to name the interface", () => {
    for (const field of ["server", "metrics", "s3_api"] as const)
      for (const a of ["fe80::1", "[FE80::1]", "febf::1"]) expect(issues(at(field, a))).toEqual([expect.objectContaining({ path: `${field}.address`, message: `${JSON.stringify(a)} is a link-local address, which needs its interface: write it with a zone, as fe80::1%eth0` })]);
    expect(issues(at("server", "[fe80::1]:18099"))[0]!.message).toBe('"fe80::1" is a link-local address, which needs its interface: write it with a zone, as fe80::1%eth0');
    expect(parseConfig(at("metrics", "fec0::1"), { env: {} }).metrics.address).toBe("fec0::1");
  });
});

// "::ffff:10.0.0.0/8" loaded as ::/8 (IPv6 notation: the prefix counts all 128 bits), which holds
// every IPv4 address: an allowlist meant for 10.0.0.0/8 let in every IPv4 client, and
// trusted_proxies believed every IPv4 client's X-Forwarded-For.
test("an IPv4-mapped address with a prefix under 96 (trusted_proxies, ip_filter) is refused, saying what it covers and how to write the IPv4 range", () => {
  const filter = (list: string, c: string) => `buckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }, ip_filter: { ${list}: ["${c}"] } }\n`;
  for (const [c, msg] of [
    ["::ffff:10.0.0.0/8", "'::ffff:10.0.0.0/8' is the IPv6 range ::/8, which holds every IPv4 address: for an IPv4 range write 10.0.0.0/8, or ::ffff:10.0.0.0/104"],
    ["::FFFF:a00:0/16", "'::FFFF:a00:0/16' is the IPv6 range ::/16, which holds every IPv4 address: for an IPv4 range write 10.0.0.0/16, or ::ffff:10.0.0.0/112"],
    ["::ffff:10.1.2.3/64", "'::ffff:10.1.2.3/64' is the IPv6 range ::/64, which holds every IPv4 address: for an IPv4 range write it as IPv4, or IPv4-mapped with a prefix of 96 or more"],
  ] as const) {
    expect(issues(`server: { trusted_proxies: ["${c}"] }\n${B}`)).toEqual([expect.objectContaining({ path: "server.trusted_proxies[0]", message: msg })]);
    for (const list of ["allowlist", "blocklist"]) expect(issues(filter(list, c))).toEqual([expect.objectContaining({ path: `buckets[0].ip_filter.${list}[0]`, message: msg })]);
  }
  for (const c of ["::ffff:10.0.0.0/104", "::ffff:0:0/96", "10.0.0.0/8", "::/8", "::/0", "2001:db8::/32", "::ffff:10.0.0.7"]) {
    expect(parseConfig(`server: { trusted_proxies: ["${c}"] }\n${B}`, { env: {} }).server.trusted_proxies).toEqual([c]);
    expect(parseConfig(filter("allowlist", c), { env: {} }).buckets[0]!.ip_filter.allowlist).toEqual([c]);
  }
  expect(issues(`server: { trusted_proxies: ["1::2::3"] }\n${B}`)[0]!.message).toBe("'1::2::3' is not an IP address or CIDR range");
});

describe("listener rules", () => {
  test("server.https.ciphers naming no suite TLS knows is refused at --check, naming the key (the listener would fail to start); one naming a known suite passes", () => {
    const bad = issues(`server:\n  https: { cert_path: /nonexistent.pem, key_path: /nonexistent.key, ciphers: "RC4-FOREVER" }\n${B}`);
    expect(bad.find((i) => i.path === "server.https.ciphers")?.message).toBe("names no cipher suite TLS 1.2 knows (OpenSSL syntax, e.g. ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256; leave it out for the default)");
    const good = issues(`server:\n  https: { cert_path: /nonexistent.pem, key_path: /nonexistent.key, ciphers: "ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256" }\n${B}`);
    expect(good.find((i) => i.path === "server.https.ciphers")).toBeUndefined();
  });

  // node:tls sets TLS 1.3 names aside, so createSecureContext took them; the listener then did not
  // start (`could not start: error:100000b1:SSL routines:OPENSSL_internal:NO_CIPHER_MATCH`).
  test("server.https.ciphers naming TLS 1.3 suites only (TLS_AES_128_GCM_SHA256) is refused at --check, as the listener refuses it; beside a TLS 1.2 suite it passes", () => {
    const at = (ciphers: string) => issues(`server:\n  https: { cert_path: /nonexistent.pem, key_path: /nonexistent.key, ciphers: "${ciphers}" }\n${B}`).find((i) => i.path === "server.https.ciphers");
    for (const c of ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256", "TLS_NOPE"])
      expect([c, at(c)?.message]).toEqual([c, "names no cipher suite TLS 1.2 knows (OpenSSL syntax, e.g. ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256; leave it out for the default): TLS 1.3's suites (TLS_…) are not chosen here, TLS 1.3 offers its own"]);
    expect(at("TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256")).toBeUndefined();
    // (the TLS library also separates names with spaces or commas: the listener takes these)
    expect(at("TLS_AES_128_GCM_SHA256 ECDHE-RSA-AES128-GCM-SHA256")).toBeUndefined();
    expect(at("TLS_AES_128_GCM_SHA256,ECDHE-RSA-AES128-GCM-SHA256")).toBeUndefined();
    expect(at("TLS_AES_128_GCM_SHA256:RC4-FOREVER")?.message).toStartWith("names no cipher suite TLS 1.2 knows");
  });

  // ECDHE-ECDSA suites only beside an RSA certificate (or ECDHE-RSA ones beside an ECDSA one): the
  // listener started, every TLS 1.2 handshake failed (alert handshake failure), --check said OK.
  test("server.https.ciphers naming only suites the certificate's key cannot serve is refused, naming the key type; a list with one it can serve, or with aliases, passes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "yata-ciphers-key-"));
    try {
      const pair = async (name: string, newkey: string[]) => {
        const gen = Bun.spawn(["openssl", "req", "-x509", "-newkey", ...newkey, "-nodes", "-days", "1", "-subj", "/CN=t", "-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.pem`)], { stdout: "ignore", stderr: "ignore" });
        expect(await gen.exited).toBe(0);
      };
      // (1024 bits: quicker to make, and a note, not a refusal)
      await Promise.all([pair("rsa", ["rsa:1024"]), pair("ec", ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])]);
      const at = (name: string, ciphers: string) => {
        try {
          parseConfig(`server:\n  https: { cert_path: "${join(dir, `${name}.pem`)}", key_path: "${join(dir, `${name}.key`)}", ciphers: "${ciphers}" }\n${B}`, { env: {} });
          return [];
        } catch (err) {
          if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
          throw err;
        }
      };
      expect(at("rsa", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305")).toEqual([
        "server.https.ciphers: names no TLS 1.2 suite the certificate's RSA key can serve (ECDHE-RSA-… and RSA suites take an RSA key): every TLS 1.2 handshake would fail; add ECDHE-RSA-AES128-GCM-SHA256, or leave it out for the default",
      ]);
      expect(at("ec", "ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256")).toEqual([
        "server.https.ciphers: names no TLS 1.2 suite the certificate's ECDSA key can serve (ECDHE-ECDSA-… suites take an ECDSA or Ed25519 key): every TLS 1.2 handshake would fail; add ECDHE-ECDSA-AES128-GCM-SHA256, or leave it out for the default",
      ]);
      expect(at("ec", "ECDHE-RSA-AES128-GCM-SHA256:ecdhe-ecdsa-aes128-gcm-sha256")).toEqual([]);
      expect(at("rsa", "ECDHE-ECDSA-AES128-GCM-SHA256:AES256-GCM-SHA384")).toEqual([]);
      expect(at("rsa", "ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-RSA-AES128-GCM-SHA256")).toEqual([]);
      // (aliases are expanded by the TLS library: not judged here)
      expect(at("rsa", "ECDHE+AESGCM:!aRSA")).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a PEM's text given as server.https.key_path / cert_path (or a jwt key path) is refused without echoing it: no private key in --check, start-up or reload output", () => {
    const key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCSECRETSECRETSECRET\n-----END PRIVATE KEY-----\n";
    const cert = "-----BEGIN CERTIFICATE-----\nMIIDCERTBODYCERTBODY\n-----END CERTIFICATE-----\n";
    const yaml = `server:\n  https:\n    cert_path: "\${TLS_CERT}"\n    key_path: "\${TLS_KEY}"\n${B}`;
    const got = issues(yaml, { TLS_KEY: key, TLS_CERT: cert });
    const text = got.map((i) => `${i.path}: ${i.message}`).join("\n");
    expect(text).not.toContain("MIIE");
    expect(text).not.toContain("SECRET");
    expect(text).not.toContain("CERTBODY");
    expect(got.find((i) => i.path === "server.https.key_path")?.message).toBe("holds a private key's PEM text, not a file path: write the PEM to a file and give its path (the value is not shown)");
    expect(got.find((i) => i.path === "server.https.cert_path")?.message).toBe("holds PEM text, not a file path: write the PEM to a file and give its path (the value is not shown)");
    const nl = issues(`server:\n  https:\n    cert_path: "\${P}"\n    key_path: /nonexistent.key\n${B}`, { P: "/etc/tls/secret-dir/cert.pem\n" });
    expect(nl.find((i) => i.path === "server.https.cert_path")?.message).toBe("contains a line break (the newline of a secret file?): give the file's path alone (the value is not shown)");
  });

  test("a PEM in base64 on one line (a Kubernetes Secret's data value) given as a path is refused without echoing it: it was printed whole in 'cannot read <value>'", () => {
    const key = Buffer.from("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCSECRETSECRETSECRET\n-----END PRIVATE KEY-----\n").toString("base64");
    const cert = Buffer.from("-----BEGIN CERTIFICATE-----\nMIIDCERTBODYCERTBODY\n-----END CERTIFICATE-----\n").toString("base64");
    const got = issues(`server:\n  https:\n    cert_path: "\${TLS_CERT}"\n    key_path: "\${TLS_KEY}"\n${B}`, { TLS_KEY: key, TLS_CERT: cert });
    const text = got.map((i) => `${i.path}: ${i.message}`).join("\n");
    expect(text).not.toContain(key.slice(0, 40));
    expect(text).not.toContain(cert.slice(0, 40));
    expect(got.find((i) => i.path === "server.https.key_path")?.message).toBe("holds a private key's PEM text in base64, not a file path: write the decoded PEM to a file and give its path (the value is not shown)");
    expect(got.find((i) => i.path === "server.https.cert_path")?.message).toBe("holds PEM text in base64, not a file path: write the decoded PEM to a file and give its path (the value is not shown)");
    // a jwt key path too
    const jwt = issues(`jwt:\n  enabled: true\n  algorithm: RS256\n  rsa_public_key_path: "\${K}"\n${B}`, { K: key });
    expect(jwt.map((i) => i.message).join("\n")).not.toContain(key.slice(0, 40));
  });

  test("https with engine: node is refused with what to do instead (node:http would serve plain HTTP)", () => {
    const got = issues(`server: { engine: node, https: { cert_path: /nonexistent.pem, key_path: /nonexistent.key } }\n${B}`);
    expect(got.some((i) => i.path === "server.https" && i.message.includes("engine: node does not serve TLS"))).toBe(true);
  });
  test("https with s3_api.engine: node (or server.engine node inherited) is refused: the S3 listener served plain HTTP, STS keys in clear", () => {
    const s3 = `s3_api:\n  enabled: true\n  port: 0\n  engine: node\n  credentials: [{ access_key_id: AKIATESTTESTTEST, secret_access_key: secretsecretsecret1234, identity: app, buckets: { b: [read] } }]\n`;
    const got = issues(`server: { https: { cert_path: /nonexistent.pem, key_path: /nonexistent.key } }\n${s3}${B}`);
    expect(got.filter((i) => i.path.startsWith("s3_api")).map((i) => `${i.path}: ${i.message}`)).toEqual(["s3_api.engine: node does not serve TLS, and server.https is on: use engine: bun for the S3 listener, or terminate TLS in front of the proxy"]);
    expect(() => parseConfig(`${s3}${B}`)).not.toThrow(); // without https, node is fine
    // inherited from server.engine: named as such (it read "s3_api.engine: s3_api.engine: node ..." for a key never written)
    const inherited = issues(`server: { engine: node, https: { cert_path: /nonexistent.pem, key_path: /nonexistent.key } }\n${s3.replace("  engine: node\n", "")}${B}`);
    expect(inherited.filter((i) => i.path.startsWith("s3_api")).map((i) => `${i.path}: ${i.message}`)).toEqual(["s3_api: the S3 listener takes server.engine (node), which does not serve TLS, and server.https is on: set s3_api.engine: bun, or terminate TLS in front of the proxy"]);
  });
  test("every reserved control path collides with a bucket prefix", () => {
    for (const p of ["/health", "/ready", "/metrics", "/admin", "/admin/x"]) {
      expect(issues(B.replace("path_prefix: /b", `path_prefix: ${p}`)).some((i) => i.message.includes("collides with the proxy's own"))).toBe(true);
    }
  });
});

describe("bucket names, regions and endpoints that would misbehave are refused with where and why", () => {
  const bucketYaml = (name: string, s3: string) => `buckets:\n  - name: ${JSON.stringify(name)}\n    path_prefix: /b\n    s3: { bucket: bkt, ${s3} }\n`;
  test("a name with '/' (the admin purge path) or starting with '_' (the proxy's own metric labels); a region with a space; an endpoint with a query or fragment", () => {
    expect(issues(bucketYaml("a/b", `endpoint: "http://127.0.0.1:9000"`)).map((i) => i.path)).toEqual(["buckets[0].name"]);
    expect(issues(bucketYaml("_health", `endpoint: "http://127.0.0.1:9000"`))[0]?.message).toContain("must not start with '_'");
    // (a dot segment: POST /admin/cache/purge/.. could never reach it)
    for (const dots of [".", ".."]) expect(issues(bucketYaml(dots, `endpoint: "http://127.0.0.1:9000"`)).map((i) => `${i.path}: ${i.message}`)).toEqual(["buckets[0].name: must not be '.' or '..' (a dot segment: the admin API's purge path and the S3 front can never name it)"]);
    expect(issues(bucketYaml("b", `region: "us east", endpoint: "http://127.0.0.1:9000"`)).map((i) => i.path)).toEqual(["buckets[0].s3.region"]);
    expect(issues(bucketYaml("b", `endpoint: "http://127.0.0.1:9000/some/path?x=1#frag"`))[0]).toMatchObject({ path: "buckets[0].s3.endpoint" });
    // credentials that look like templates nobody expanded are named (never shown) in a note
    const tmpl = parseConfig(bucketYaml("b", `endpoint: "http://127.0.0.1:9000", access_key: "$AWS_KEY", secret_key: "{{ .Values.secret }}"`), { env: {} });
    expect(tmpl.notes).toEqual([
      "buckets[0].s3.access_key looks like a template that was not expanded ($VAR or {{ }}): only ${VAR} is substituted here, so it is sent to S3 as written",
      "buckets[0].s3.secret_key looks like a template that was not expanded ($VAR or {{ }}): only ${VAR} is substituted here, so it is sent to S3 as written",
    ]);
    // so are the other secrets (a replica's keys, the JWT and STS keys, an S3 front secret): `secret: $JWT_SECRET` loaded silently when the name was 32 characters or more, and every token was refused
    const others = parseConfig(
      `buckets:\n  - name: b\n    path_prefix: /b\n    s3:\n      replicas:\n        - { name: r1, bucket: bkt, endpoint: "http://127.0.0.1:9000", access_key: AKIAREPLICA, secret_key: $REPLICA_SECRET, priority: 1 }\n` +
        `jwt: { enabled: true, secret: $YATAGARASU_JWT_SIGNING_SECRET_FROM_VAULT, keys: [{ id: k2, algorithm: HS256, secret: "{{ .Values.jwtKey2 }}-0123456789abcdef" }] }\n` +
        `s3_api:\n  enabled: true\n  sts: { enabled: true, session_key: $STS_SESSION_KEY_FROM_THE_VAULT_0123 }\n  credentials: [{ access_key_id: AKIA1, secret_access_key: "{{ .Values.app1 }}", identity: app, buckets: { b: [read] } }]\n`,
      { env: {} },
    );
    expect(others.notes).toEqual([
      "buckets[0].s3.replicas[0].secret_key looks like a template that was not expanded ($VAR or {{ }}): only ${VAR} is substituted here, so it is sent to S3 as written",
      "s3_api.credentials[0].secret_access_key looks like a template that was not expanded ($VAR or {{ }}): only ${VAR} is substituted here, so it is used as written",
      "s3_api.sts.session_key looks like a template that was not expanded ($VAR or {{ }}): only ${VAR} is substituted here, so it is used as written",
      "jwt.secret looks like a template that was not expanded ($VAR or {{ }}): only ${VAR} is substituted here, so it is used as written",
      "jwt.keys[0].secret looks like a template that was not expanded ($VAR or {{ }}): only ${VAR} is substituted here, so it is used as written",
    ]);
    // a secret with whitespace at an end (a secret file's newline) is named, never shown
    const padded = parseConfig(bucketYaml("b", `endpoint: "http://127.0.0.1:9000", access_key: " AKIAPADDED", secret_key: "padded-secret-value\\n"`), { env: {} });
    // (it says which end and what is there: a leading space was guessed to be a secret file's newline,
    // and a value padded at both ends was said only to end with whitespace)
    expect(padded.notes).toEqual([
      "buckets[0].s3.access_key starts with a space: it is used as written, whitespace included, so signatures or tokens made with the trimmed value are refused",
      "buckets[0].s3.secret_key ends with a newline (the last line end of a secret file or of echo?): it is used as written, whitespace included, so signatures or tokens made with the trimmed value are refused",
    ]);
    expect(JSON.stringify(padded.notes)).not.toContain("padded-secret-value");
    const both = parseConfig(bucketYaml("b", `endpoint: "http://127.0.0.1:9000", access_key: "AKIAPADDED  ", secret_key: "\\tpadded-secret-value\\u00a0\\r\\n"`), { env: {} });
    expect(both.notes).toEqual([
      "buckets[0].s3.access_key ends with 2 spaces: it is used as written, whitespace included, so signatures or tokens made with the trimmed value are refused",
      "buckets[0].s3.secret_key starts with a tab and ends with 3 whitespace characters (U+00A0 U+000D U+000A) (the last line end of a secret file or of echo?): it is used as written, whitespace included, so signatures or tokens made with the trimmed value are refused",
    ]);
    expect(issues(`server: { address: "999.1.1.1" }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual(["server.address: '999.1.1.1' is not an IPv4 address (each part 0-255)"]);
    // A part with a leading zero is octal to the system's resolver: "127.0.0.010" passed as 127.0.0.10
    // and the listener was bound to 127.0.0.8 (metrics' and the S3 API's too).
    const octal = "'127.0.0.010' has a part written with a leading zero, which the system reads as octal (it would listen on 127.0.0.8): write 127.0.0.10";
    expect(issues(`server: { address: "127.0.0.010" }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual([`server.address: ${octal}`]);
    expect(issues(`server: { address: "127.0.0.010:8080" }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual([`server.address: ${octal}`]);
    expect(issues(`metrics: { enabled: true, address: "127.0.0.010", port: 9090 }\n${B}`).map((i) => `${i.path}: ${i.message}`)).toEqual([`metrics.address: ${octal}`]);
    expect(issues(`s3_api: { enabled: true, address: "192.168.001.010", port: 9000 }\n${B}`)[0]?.message).toContain("(it would listen on 192.168.1.8): write 192.168.1.10");
    expect(issues(`server: { address: "127.0.0.09" }\n${B}`)[0]?.message).toContain("(it is not that address to the system): write 127.0.0.9");
    expect(parseConfig(`server: { address: "10.0.0.0" }\n${B}`, { env: {} }).server.address).toBe("10.0.0.0");
    // A multicast or broadcast address binds (Linux lets it) and logs "listening", but no TCP
    // connection can ever reach it: refused, as an address that is not this machine's is at start.
    for (const [field, a] of [["server.address", "224.0.0.1"], ["server.address", "255.255.255.255"], ["metrics.address", "239.1.2.3"], ["s3_api.address", "ff02::1"], ["server.address", "[ff05::2]:8080"]] as const) {
      const yaml = field === "server.address" ? `server: { address: "${a}" }\n${B}` : field === "metrics.address" ? `metrics: { enabled: true, address: "${a}", port: 9090 }\n${B}` : `s3_api: { enabled: true, address: "${a}", port: 9000 }\n${B}`;
      expect(issues(yaml).map((i) => `${i.path}: ${i.message.replace(/'[^']*'/, "…")}`)).toEqual([`${field}: … is a multicast or broadcast address: no client can connect to a listener there (give an address of this machine, or 0.0.0.0 / :: for all of them)`]);
    }
    expect(parseConfig(`server: { address: "223.255.255.254" }\n${B}`, { env: {} }).server.address).toBe("223.255.255.254");
    // digits and dots in another count are no host name either (they passed, to fail at start: "does not resolve")
    for (const a of ["1.2.3.4.5", "10.1", "127.0.0.1."]) expect({ a, paths: issues(`server: { address: "${a}" }\n${B}`).map((i) => i.path) }).toEqual({ a, paths: ["server.address"] });
    // hexadecimal parts are an IPv4 address to the resolver, not a host name: "0x7f.1" was bound to 127.0.0.1 and logged as 0x7f.1
    for (const a of ["0x7f.1", "0x7f000001", "0X7F.0.0.1", "0x7f.0.0.1:8080"]) {
      expect({ a, problems: issues(`server: { address: "${a}" }\n${B}`).map((i) => `${i.path}: ${i.message.replace(/"[^"]*"/, "…")}`) }).toEqual({ a, problems: ["server.address: … is an IPv4 address written with hexadecimal parts, which the system reads as an address, not a host name: write it as four decimal parts (127.0.0.1)"] });
    }
    expect(parseConfig(`server: { address: "0xcafe.example" }\n${B}`, { env: {} }).server.address).toBe("0xcafe.example");
    expect(parseConfig(bucketYaml("My_Bucket.v2-x", `region: eu-west-3, endpoint: "http://127.0.0.1:9000/minio"`)).buckets[0]!.name).toBe("My_Bucket.v2-x");
  });
});

// force_path_style: false with an IP endpoint sent `Host: bkt.[::1]:9000` (not a host at all) or
// `bkt.10.0.0.5:9000`, and --check said OK; AWS's SDKs use path-style for an IP endpoint.
test("force_path_style: false with an IP address endpoint (IPv6 or IPv4; a replica's too) is refused: no name to put the bucket in front of", () => {
  const one = (ep: string, fps: string) => `buckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, endpoint: "${ep}"${fps} } }\n`;
  for (const [ep, host] of [["http://[::1]:9000", "[::1]"], ["https://[2001:db8::5]", "[2001:db8::5]"], ["http://10.0.0.5:9000", "10.0.0.5"]] as const) {
    const msg = `force_path_style: false puts the bucket's name in front of the endpoint's host, and ${host} is an IP address: remove it (path-style), or give the endpoint's host name`;
    expect(issues(one(ep, ", force_path_style: false"))).toEqual([expect.objectContaining({ path: "buckets[0].s3.force_path_style", message: msg })]);
    const replicas = `buckets:\n  - name: b\n    path_prefix: /b\n    s3:\n      replicas:\n        - { name: p, bucket: bkt, endpoint: "http://minio.internal:9000", force_path_style: false }\n        - { name: s, bucket: bkt, endpoint: "${ep}", force_path_style: false }\n`;
    expect(issues(replicas)).toEqual([expect.objectContaining({ path: "buckets[0].s3.replicas[1].force_path_style", message: msg })]);
    expect(() => parseConfig(one(ep, ""), { env: {} })).not.toThrow();
    expect(() => parseConfig(one(ep, ", force_path_style: true"), { env: {} })).not.toThrow();
  }
  expect(() => parseConfig(one("http://minio.internal:9000", ", force_path_style: false"), { env: {} })).not.toThrow();
});

describe("durations that become timers (at most 2^31-1 ms: a longer delay fired after 1 ms)", () => {
  const said = (yaml: string) => issues(yaml).map((i) => `${i.path}: ${i.message}`);
  const bucket = (s3: string) => `buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000"${s3} }\n`;
  test("s3.timeout, connect_timeout, a replica's timeout, retry backoffs, breaker, request/shutdown timeouts, JWKS refresh, authorizer timeouts: refused beyond the limit, naming it", () => {
    const cases: Array<[string, string]> = [
      [bucket(", timeout: 10000000"), "buckets[0].s3.timeout"],
      [bucket(", connect_timeout: 3000000"), "buckets[0].s3.connect_timeout"],
      [bucket(", retry: { max_backoff_ms: 3000000000 }"), "buckets[0].s3.retry.max_backoff_ms"],
      [bucket(", circuit_breaker: { timeout_seconds: 2147484 }"), "buckets[0].s3.circuit_breaker.timeout_seconds"],
      [`server: { shutdown_timeout: 3000000 }\n${B}`, "server.shutdown_timeout"],
      [`server: { request_timeout: 3000000 }\n${B}`, "server.request_timeout"],
      [`jwt: { enabled: true, secret: "0123456789abcdef0123456789abcdef", jwks_refresh_interval_secs: 3000000 }\n${B}`, "jwt.jwks_refresh_interval_secs"],
    ];
    for (const [yaml, path] of cases) expect(said(yaml)).toEqual([expect.stringMatching(new RegExp(`^${path.replace(/[[\].]/g, "\\$&")}: must be at most 2147483(647 ms|  seconds| seconds) \\(about 24\\.8 days\\)`))]);
    // the limit itself is accepted
    expect(parseConfig(bucket(", timeout: 2147483"), { env: {} }).buckets[0]!.s3.timeout).toBe(2147483);
    expect(parseConfig(`server: { shutdown_timeout: 2147483 }\n${B}`, { env: {} }).server.shutdown_timeout).toBe(2147483);
    // a delay computed from one (a cache fill's: s3.timeout plus a second per buffered MiB) stays within a timer too
    const longest = parseConfig(`cache: { enabled: true }\nbuckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000", timeout: 2147483 }\n    cache: { enabled: true }\n`, { env: {} });
    expect(bucketCachePolicy(longest.cache, longest.buckets[0]!)!.fillTimeoutMs).toBe(2 ** 31 - 1);
  });
});

test("a refused value does not bring checks of its siblings judged against the default standing in for it", () => {
  const said = issues(`jwt: { enabled: true, algorithm: ES512, public_key_path: nope.pem }\n${B}`).map((i) => `${i.path}: ${i.message}`);
  expect(said).toHaveLength(1);
  expect(said[0]).toStartWith("jwt.algorithm: unsupported algorithm");
});

test("a check held back beside a refused value is announced: the report says more checks wait", () => {
  const held = (yaml: string) => {
    try {
      parseConfig(yaml, { env: {} });
    } catch (err) {
      if (err instanceof ConfigError) return { more: err.more, said: err.issues.map((i) => `${i.path}: ${i.message}`) };
    }
    throw new Error("expected a ConfigError");
  };
  // a short session_key beside a refused max_session_seconds (its length check is held back)
  const sts = held(`jwt: { enabled: true, secret: "0123456789abcdef0123456789abcdef" }\ns3_api:\n  enabled: true\n  sts: { enabled: true, session_key: short, max_session_seconds: 100 }\n${B}`);
  expect(sts.said).toHaveLength(1);
  expect(sts.said[0]).toStartWith("s3_api.sts.max_session_seconds:");
  expect(sts.more).toBe(true);
  // an endpoint with a password beside a refused timeout
  const ep = held(`buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://u:p@127.0.0.1:9000", timeout: 3000000 }\n`);
  expect(ep.said).toHaveLength(1);
  expect(ep.said[0]).toStartWith("buckets[0].s3.timeout:");
  expect(ep.more).toBe(true);
  // nothing held back: no such claim
  expect(held(`buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000", timeout: 3000000 }\n`).more).toBe(false);
});

test("a refused secret_access_key (read by no check across keys) holds none back: a short sts.session_key is said in the same run (it waited for the next)", () => {
  const yaml = `jwt:\n  enabled: true\n  secret: \${JWT_SECRET}\ns3_api:\n  enabled: true\n  sts: { enabled: true, session_key: "\${STS_KEY}" }\n  credentials:\n    - { access_key_id: AKIARWTEST, secret_access_key: "\${RW_SK}", identity: rw, buckets: { b: [read] } }\n${B}`;
  const run = (env: Record<string, string>) => {
    try {
      parseConfig(yaml, { env });
    } catch (err) {
      if (err instanceof ConfigError) return { more: err.more, said: err.issues.map((i) => `${i.path}: ${i.message}`) };
    }
    throw new Error("expected a ConfigError");
  };
  expect(run({ STS_KEY: "short", RW_SK: "short" })).toEqual({
    more: false,
    said: ["jwt.secret: environment variable JWT_SECRET is not set", "s3_api.sts.session_key: must be at least 32 bytes, got 5", "s3_api.credentials[0].secret_access_key: must be at least 16 characters, got 5 characters"],
  });
  // (left out, it is required, and still holds nothing back)
  expect(run({ STS_KEY: "short", RW_SK: "short", JWT_SECRET: "0123456789abcdef0123456789abcdef" }).said).toEqual(["s3_api.sts.session_key: must be at least 32 bytes, got 5", "s3_api.credentials[0].secret_access_key: must be at least 16 characters, got 5 characters"]);
  expect(issues(yaml.replace(', secret_access_key: "${RW_SK}"', ""), { STS_KEY: "short", JWT_SECRET: "0123456789abcdef0123456789abcdef" }).map((i) => `${i.path}: ${i.message}`)).toEqual(["s3_api.sts.session_key: must be at least 32 bytes, got 5", "s3_api.credentials[0].secret_access_key: required"]);
});

describe("settings accepted but read by nothing are said (notes)", () => {
  test("authorization keys of the other type: named, never their values", () => {
    const c = parseConfig(
      `jwt: { enabled: true, secret: "0123456789abcdef0123456789abcdef" }\nbuckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n    auth: { enabled: true }\n    authorization: { type: openfga, openfga_endpoint: "http://127.0.0.1:1", openfga_store_id: "01HXYZ", opa_url: "http://127.0.0.1:2", opa_timeout_ms: 50 }\n  - name: c\n    path_prefix: /c\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n    authorization: { type: opa, opa_url: "http://127.0.0.1:2", opa_policy_path: "x/allow", openfga_api_token: "SEKRET-TOKEN" }\n`,
      { env: {} },
    );
    expect(c.notes).toEqual([
      "buckets[0].authorization.opa_url, buckets[0].authorization.opa_timeout_ms have no effect with type: openfga (only the openfga_ keys are read)",
      "buckets[1].authorization.openfga_api_token has no effect with type: opa (only the opa_ keys are read)",
    ]);
    expect(JSON.stringify(c.notes)).not.toContain("SEKRET");
    // keys of the chosen type only: nothing to say
    expect(parseConfig(`buckets:\n  - name: c\n    path_prefix: /c\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n    authorization: { type: opa, opa_url: "http://127.0.0.1:2", opa_policy_path: "x/allow" }\n`, { env: {} }).notes).toBeUndefined();
  });

  test("the original's metrics section beside a proxy on every address says /metrics listens on the loopback only (a scrape from another host found nothing)", () => {
    const notes = (server: string, metrics: string) => parseConfig(`server: { address: "${server}" }\nmetrics: { enabled: true${metrics} }\n${B}`, { env: {} }).notes;
    const note = "metrics.address is not set, so /metrics listens on 127.0.0.1 only while the proxy listens on every address: a Prometheus on another host (a Kubernetes scrape of the pod) cannot reach it; set metrics.address: 0.0.0.0 to serve it there, or 127.0.0.1 to keep it local and this note quiet";
    expect(notes("0.0.0.0:8080", ", port: 9090")).toEqual([note]);
    expect(notes("::", "")).toEqual([note]);
    // said where the listener is: nothing to add
    expect(notes("0.0.0.0", ', address: "127.0.0.1"')).toBeUndefined();
    expect(notes("127.0.0.1:8080", "")).toBeUndefined();
    // server.address left out is every address too (the note followed only a written one)
    expect(parseConfig(`metrics: { enabled: true }\n${B}`, { env: {} }).notes).toEqual([note]);
    expect(parseConfig(`server: { port: 8081 }\nmetrics: { enabled: true }\n${B}`, { env: {} }).notes).toEqual([note]);
    expect(parseConfig(`server: { port: 8081 }\nmetrics: { enabled: false }\n${B}`, { env: {} }).notes).toBeUndefined();
  });

  test("an S3 API without an address beside a proxy kept on the loopback says it listens on every address (it was reachable from other hosts, in silence)", () => {
    const s3 = (server: string, api: string) => parseConfig(`server: { address: "${server}" }\ns3_api: { credentials: [] ${api}}\n${B}`, { env: {} }).notes;
    const note = (a: string) => `s3_api.address is not set, so the S3 API listens on every address (0.0.0.0, its default) while server.address keeps the proxy on the loopback (${a}): other hosts can reach the S3 API; set s3_api.address: 127.0.0.1 to keep it local too, or 0.0.0.0 to serve it there and quiet this note`;
    for (const a of ["127.0.0.1", "127.0.0.1:8080", "localhost", "::1", "[::1]:8080"]) expect(s3(a, "")).toEqual([note(a)]);
    // the address written (either way), the S3 API off, or the proxy itself on every address: nothing to say
    expect([s3("127.0.0.1", ", address: 0.0.0.0 "), s3("127.0.0.1", ", address: 127.0.0.1 "), s3("127.0.0.1", ", enabled: false "), s3("0.0.0.0", ""), s3("10.0.0.5", "")]).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  test("the original's disk.sendfile: false (disk hits always use sendfile here)", () => {
    const c = parseConfig(`cache:\n  cache_layers: [memory, disk]\n  disk: { cache_dir: /tmp/yata-sendfile-note, sendfile: false }\n${B}`, { env: {} });
    expect(c.notes).toEqual([expect.stringContaining("cache.disk.sendfile: false (the original's) has no effect here")]);
    expect(parseConfig(`cache:\n  cache_layers: [memory, disk]\n  disk: { cache_dir: /tmp/yata-sendfile-note, sendfile: true }\n${B}`, { env: {} }).notes).toBeUndefined();
    // the original's own form (its SendfileConfig, config.example.yaml): `{ enabled, threshold_bytes }`,
    // dropped in silence until 2026-12-07 (a misspelt key in it too)
    const disk = (sendfile: string) => `cache:\n  cache_layers: [memory, disk]\n  disk:\n    cache_dir: /tmp/yata-sendfile-note\n    sendfile:\n${sendfile}${B}`;
    expect(parseConfig(disk(`      enabled: false\n      threshold_bytes: 1048576\n`), { env: {} }).notes).toEqual([
      "cache.disk.sendfile.enabled: false (the original's) has no effect here: disk-cache hits are always sent with sendfile (Bun.file), whatever their size",
      "cache.disk.sendfile.threshold_bytes (the original's) has no effect here: disk-cache hits are always sent with sendfile (Bun.file), whatever their size",
    ]);
    expect(parseConfig(disk(`      enabled: true\n`), { env: {} }).notes).toBeUndefined();
    expect(issues(disk(`      enabeld: false\n      threshold_bytes: -1\n`)).map((i) => `${i.line} ${i.path}: ${i.message}`)).toEqual([
      "6 cache.disk.sendfile.enabeld: unknown key 'enabeld': the original's sendfile section has `enabled` and `threshold_bytes`, and neither has an effect here (disk-cache hits are always sent with sendfile)",
      "7 cache.disk.sendfile.threshold_bytes: must be a whole number of bytes, at least 0, got -1",
    ]);
    expect(issues(disk(`      enabled: "no"\n`)).map((i) => `${i.path}: ${i.message}`)).toEqual(['cache.disk.sendfile.enabled: expected a boolean, got a string (write true or false, without quotes)']);
  });
});

// A replica's region and endpoint missed the bucket's checks (only the primary's reach them): a
// secondary in "EU West 1" (a SigV4 scope S3 refuses) or at an endpoint with ?query (dropped) passed --check.
test("each replica's region and endpoint query are checked as a single endpoint's are, at the replica's own place", () => {
  const two = (p: string, s: string) => `buckets:\n  - name: b\n    path_prefix: /b\n    s3:\n      replicas:\n        - { name: p, bucket: bkt, ${p} }\n        - { name: s, bucket: bkt, ${s} }\n`;
  const said = (yaml: string) => issues(yaml).map((i) => `${i.path}: ${i.message}`);
  const region = "'EU West 1' is not a region name (lowercase letters, digits and '-', as us-east-1)";
  const query = "must not have a query or a fragment: they would be dropped (give the scheme, host, port and, for a path-based store, its path)";
  const ok = `region: eu-west-1, endpoint: "http://127.0.0.1:9000/s3/"`;
  expect(said(two(ok, `region: "EU West 1", endpoint: "http://127.0.0.1:9001"`))).toEqual([`buckets[0].s3.replicas[1].region: ${region}`]);
  expect(said(two(ok, `endpoint: "http://127.0.0.1:9001/x?foo=1"`))).toEqual([`buckets[0].s3.replicas[1].endpoint: ${query}`]);
  expect(said(two(`region: "EU West 1", endpoint: "http://127.0.0.1:9001#f"`, ok))).toEqual([`buckets[0].s3.replicas[0].endpoint: ${query}`, `buckets[0].s3.replicas[0].region: ${region}`]);
  expect(said(`buckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, region: "EU West 1", endpoint: "http://127.0.0.1:9001?x" } }\n`)).toEqual([`buckets[0].s3.region: ${region}`, `buckets[0].s3.endpoint: ${query}`]);
  expect(() => parseConfig(two(ok, `region: auto, endpoint: "https://acct.r2.cloudflarestorage.com"`), { env: {} })).not.toThrow();
});

// The object URL AWS's console shows, its host naming the bucket, pasted as the endpoint loaded: every
// key was then read under my-bucket/ (path-style), each GET a 404.
test("an AWS endpoint that is the bucket's own URL (my-bucket.s3.<region>.amazonaws.com) is refused, naming the store's URL to write; a replica's too", () => {
  const said = (s3: string) => issues(`buckets:\n  - name: b\n    path_prefix: /b\n    s3: { ${s3} }\n`).map((i) => `${i.line} ${i.path}: ${i.message}`);
  expect(said(`bucket: my.bkt, region: eu-west-1, endpoint: "https://my.bkt.s3.eu-west-1.amazonaws.com/"`)).toEqual([
    "4 buckets[0].s3.endpoint: is the bucket's own URL (its host names the bucket my.bkt, so every key would be read under my.bkt/): write the store's, https://s3.eu-west-1.amazonaws.com, or leave endpoint out for AWS",
  ]);
  expect(said(`bucket: bkt, region: cn-north-1, endpoint: "https://BKT.s3.cn-north-1.amazonaws.com.cn"`)[0]).toEndWith("write the store's, https://s3.cn-north-1.amazonaws.com.cn, or leave endpoint out for AWS");
  const replica = `replicas:\n        - { name: p, bucket: bkt, region: us-east-1 }\n        - { name: s, bucket: bkt2, region: us-west-2, endpoint: "https://bkt2.s3-us-west-2.amazonaws.com" }`;
  expect(issues(`buckets:\n  - name: b\n    path_prefix: /b\n    s3:\n      ${replica}\n`).map((i) => `${i.path}: ${i.message}`)).toEqual([
    "buckets[0].s3.replicas[1].endpoint: is the bucket's own URL (its host names the bucket bkt2, so every key would be read under bkt2/): write the store's, https://s3-us-west-2.amazonaws.com, or leave endpoint out for AWS",
  ]);
  // (the store's own URL, another bucket's host, a compose service named as the bucket, R2's account host: taken)
  for (const ok of [`bucket: bkt, endpoint: "https://s3.us-east-1.amazonaws.com"`, `bucket: bkt, endpoint: "https://other.s3.amazonaws.com"`, `bucket: minio, endpoint: "http://minio:9000"`, `bucket: acct, region: auto, endpoint: "https://acct.r2.cloudflarestorage.com"`])
    expect(() => parseConfig(`buckets:\n  - name: b\n    path_prefix: /b\n    s3: { ${ok} }\n`, { env: {} })).not.toThrow();
});

// A bound with its own message said what was allowed only ("must be at most 2147483 seconds ..."),
// and a check across keys named the other key without either value: which value was refused?
test("every bound names the value given (a number; a string's length, never the string), at the key's line, including the checks across keys", () => {
  const got = issues(
    `server:\n  shutdown_timeout: \${LONG}\ntracing: { service_name: "${"s".repeat(300)}" }\n` +
      `buckets:\n  - name: b\n    path_prefix: /b\n    s3:\n      bucket: bkt\n      timeout: 99999999999\n`,
    { LONG: "3000000" },
  ).map((i) => `${i.line} ${i.path}: ${i.message}`);
  expect(got).toEqual([
    "2 server.shutdown_timeout: must be at most 2147483 seconds (about 24.8 days), got 3000000: a longer wait does not fit a timer",
    "3 tracing.service_name: must be at most 255 characters, got 300 characters",
    "9 buckets[0].s3.timeout: must be at most 2147483 seconds (about 24.8 days), got 99999999999: a longer wait does not fit a timer",
  ]);
  const across = issues(`server: { address: "0.0.0.0:70000" }\ncache:\n  memory: { max_cache_size_mb: 10, max_item_size_mb: 20 }\n${B.replace("s3: { bucket: bkt,", "s3: { bucket: bkt, retry: { initial_backoff_ms: 500, max_backoff_ms: 100 },")}`).map((i) => `${i.line} ${i.path}: ${i.message}`);
  expect(across).toEqual([
    "1 server.address: port must be at most 65535, got 70000",
    "3 cache.memory.max_item_size_mb: must not exceed max_cache_size_mb (10), got 20",
    "7 buckets[0].s3.retry.max_backoff_ms: must be at least initial_backoff_ms (500), got 100",
  ]);
});

// Accepted, it made every object between 4 GiB and the setting a 502 at once: its buffer could not be allocated.
test("server.buffer_threshold_bytes above 4 GiB (the largest buffer Bun makes) is refused, naming the key", () => {
  const said = (yaml: string) => issues(yaml).map((i) => `${i.path}: ${i.message}`);
  const at = (n: number) => `server: { buffer_threshold_bytes: ${n} }\n${B}`;
  expect(said(at(2 ** 32 + 1))).toEqual(["server.buffer_threshold_bytes: must be at most 4294967296 (4 GiB), got 4294967297: a larger body cannot be held in one buffer (larger objects stream)"]);
  expect(said(at(10 * 1024 ** 3))).toHaveLength(1);
  expect(parseConfig(at(2 ** 32), { env: {} }).server.buffer_threshold_bytes).toBe(2 ** 32);
});

describe("rate limits within what a limiter can hold", () => {
  const rate = (r: string) => `server:\n  rate_limit: { global: ${r} }\n${B}`;
  const said = (yaml: string) => issues(yaml).map((i) => `${i.path}: ${i.message}`);
  test("a rate below one request in ~12 days, above a billion a second, or a burst above a billion is refused, naming the key", () => {
    expect(said(rate("{ requests_per_second: 1e-300 }"))).toEqual([expect.stringMatching(/^server\.rate_limit\.global\.requests_per_second: must be at least 0\.000001/)]);
    expect(said(rate("{ requests_per_second: 1e10 }"))).toEqual([expect.stringMatching(/^server\.rate_limit\.global\.requests_per_second: must be at most/)]);
    expect(said(rate("{ requests_per_second: 1, burst: 1e300 }"))).toEqual([expect.stringMatching(/^server\.rate_limit\.global\.burst: must be at most/)]);
    expect(parseConfig(rate("{ requests_per_second: 0.000001, burst: 1000000000 }"), { env: {} }).server.rate_limit!.global!.requests_per_second).toBe(1e-6);
  });
});
