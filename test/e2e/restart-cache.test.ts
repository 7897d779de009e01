/**
 * A RESTART must leave the disk cache as a reload would: a bucket pointed at another store, or
 * whose cache is off, has its cached objects dropped. The cache is keyed by the proxy bucket's
 * name, and before, the disk index was rebuilt at start with no record of each bucket's store or
 * cache state:
 * - a bucket repointed from up-b to up-a across a restart answered X-Cache: HIT (disk) with up-b's
 *   object;
 * - a bucket restarted with its cache off, written through the proxy (no purge: it does not
 *   cache), then restarted with its cache on answered the version cached before the write.
 * The Redis layer had the same problem when every replica restarted with the bucket repointed:
 * the entry filled from the old store was a Redis HIT. Each entry now carries its store's stamp.
 * Real proxy processes (restarted for real) on one disk folder, in front of the S3 fixture.
 */
import { RedisClient } from "bun";
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, command, startProxy, type ProxyProcess } from "./harness.ts";
import { startRedis, type RedisServer } from "../fixtures/services.ts";
import { waitFor } from "../helpers/wait.ts";

setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIARESTARTCACHE", secretAccessKey: "restart-cache-secret" };

let s3: S3Fixture;
let dir: string;
let px: ProxyProcess | undefined;
let redis: RedisServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "yata-restart-cache-"));
  redis = await startRedis();
  s3 = await startS3Fixture({ buckets: [{ name: "up-a" }, { name: "up-b" }, { name: "rw" }], credentials: [{ ...CREDS, buckets: ["up-a", "up-b", "rw"], write: true }] });
  await s3.put("up-a", "hello.txt", "hello from up-a");
  await s3.put("up-b", "hello.txt", "hello from up-b");
  await s3.put("rw", "v.txt", "version 1");
});

afterAll(async () => {
  await px?.stop();
  await Promise.all([s3?.stop(), redis?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

/** `other` reads `upstream`; `rw` (read-write, anonymous writes) caches when `rwCached`. */
const config = (o: { upstream: string; rwCached: boolean; folder: string; withOther?: boolean }) => `server: { address: 127.0.0.1, port: 0 }
cache:
  enabled: true
  cache_layers: [memory, disk]
  memory: { max_item_size_mb: 1, max_cache_size_mb: 16, default_ttl_seconds: 600 }
  disk: { path: "${join(dir, o.folder)}", max_disk_size_mb: 64, max_item_size_mb: 16 }
buckets:
${o.withOther === false ? "" : bucketYaml({ name: "other", prefix: "/other", bucket: o.upstream, endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: "    cache: { enabled: true }\n" })}${bucketYaml({
  name: "rw",
  prefix: "/rw",
  bucket: "rw",
  endpoint: s3.endpoint,
  key: CREDS.accessKeyId,
  secret: CREDS.secretAccessKey,
  extra: `    access: read-write\n    auth: { anonymous_writes: true }\n    cache: { enabled: ${o.rwCached} }\n`,
})}`;

async function get(path: string) {
  const r = await fetch(px!.url(path));
  return { body: await r.text(), cache: r.headers.get("x-cache"), layer: r.headers.get("x-cache-layer") };
}

const objectFiles = (folder: string) => {
  const base = join(dir, folder, "objects");
  try {
    return readdirSync(base).flatMap((sub) => readdirSync(join(base, sub)));
  } catch {
    return [];
  }
};

/** Stops the running proxy (gracefully) and starts one on `yaml`. */
async function restart(yaml: string) {
  if (px !== undefined) expect(await px.stop()).toBe(0);
  px = await startProxy(yaml);
}

test("a bucket pointed at another store across a restart: its disk entries are dropped, never a HIT with the old store's object", async () => {
  await restart(config({ upstream: "up-b", rwCached: true, folder: "a" }));
  expect(await get("/other/hello.txt")).toEqual({ body: "hello from up-b", cache: "MISS", layer: null });
  await waitFor(() => objectFiles("a").length === 1, { message: "the disk fill" });

  // Restarted on the same store: the disk entry survives the restart (memory is empty).
  await restart(config({ upstream: "up-b", rwCached: true, folder: "a" }));
  expect(await get("/other/hello.txt")).toEqual({ body: "hello from up-b", cache: "HIT", layer: "disk" });

  // Restarted pointed at up-a: up-b's object must not be served.
  await restart(config({ upstream: "up-a", rwCached: true, folder: "a" }));
  expect(await get("/other/hello.txt")).toEqual({ body: "hello from up-a", cache: "MISS", layer: null });
  expect(px!.logs().find((l) => l.msg === "disk cache index rebuilt")).toMatchObject({ objects: 0, dropped_other_store: 1 });
  await waitFor(() => objectFiles("a").length === 1, { message: "the new disk fill (the old file gone)" });

  // And the entry filled from up-a is kept by the next restart on up-a.
  await restart(config({ upstream: "up-a", rwCached: true, folder: "a" }));
  expect(await get("/other/hello.txt")).toEqual({ body: "hello from up-a", cache: "HIT", layer: "disk" });
});

test("a bucket restarted with its cache off, written meanwhile, then restarted with it on: the version cached before is never served", async () => {
  await restart(config({ upstream: "up-a", rwCached: true, folder: "b" }));
  expect(await get("/rw/v.txt")).toEqual({ body: "version 1", cache: "MISS", layer: null });
  await waitFor(() => objectFiles("b").length === 1, { message: "the disk fill" });

  await restart(config({ upstream: "up-a", rwCached: false, folder: "b" }));
  const put = await fetch(px!.url("/rw/v.txt"), { method: "PUT", body: "version 2" });
  expect(put.status).toBe(200);
  expect(await get("/rw/v.txt")).toEqual({ body: "version 2", cache: null, layer: null });

  await restart(config({ upstream: "up-a", rwCached: true, folder: "b" }));
  expect(await get("/rw/v.txt")).toEqual({ body: "version 2", cache: "MISS", layer: null });
});

test("a bucket removed from the config across a restart, then configured again: its entries from before are not served", async () => {
  await restart(config({ upstream: "up-a", rwCached: true, folder: "c" }));
  expect(await get("/other/hello.txt")).toEqual({ body: "hello from up-a", cache: "MISS", layer: null });
  await waitFor(() => objectFiles("c").length === 1, { message: "the disk fill" });

  await restart(config({ upstream: "up-a", rwCached: true, folder: "c", withOther: false }));
  await s3.put("up-a", "hello.txt", "hello from up-a, written while `other` was not configured");
  await restart(config({ upstream: "up-a", rwCached: true, folder: "c" }));
  expect(await get("/other/hello.txt")).toEqual({ body: "hello from up-a, written while `other` was not configured", cache: "MISS", layer: null });
  await s3.put("up-a", "hello.txt", "hello from up-a");
});

test("Redis: every replica restarted with the bucket pointed at another store never gets the old store's entry from Redis", async () => {
  const yaml = (upstream: string) => `server: { address: 127.0.0.1, port: 0 }
cache:
  enabled: true
  cache_layers: [memory, redis]
  memory: { max_item_size_mb: 1, max_cache_size_mb: 16, default_ttl_seconds: 600 }
  redis: { url: "${redis.url}", key_prefix: "rc:", connect_timeout_ms: 1000, operation_timeout_ms: 1000 }
buckets:
${bucketYaml({ name: "other", prefix: "/other", bucket: upstream, endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: "    cache: { enabled: true }\n" })}`;
  const raw = new RedisClient(redis.url);
  try {
    // Ready, with the Redis layer connected (until then a lookup skips it: a miss, not a Redis HIT).
    const ready = () =>
      waitFor(
        async () => {
          const r = await fetch(px!.url("/ready"));
          const body = (await r.json()) as { cache_layers?: Record<string, { up: boolean }> };
          return r.status === 200 && body.cache_layers?.redis?.up === true;
        },
        { message: "the proxy to be ready (Redis up)" },
      );
    await restart(yaml("up-b"));
    await ready();
    expect(await get("/other/hello.txt")).toEqual({ body: "hello from up-b", cache: "MISS", layer: null });
    await waitFor(async () => await raw.exists("rc:obj:other/hello.txt"), { message: "the Redis fill" });

    await restart(yaml("up-b")); // the same store: a Redis HIT after the restart
    await ready();
    expect(await get("/other/hello.txt")).toEqual({ body: "hello from up-b", cache: "HIT", layer: "redis" });

    await restart(yaml("up-a"));
    await ready();
    expect(await get("/other/hello.txt")).toEqual({ body: "hello from up-a", cache: "MISS", layer: null });
    // The fill replaced the entry: up-a's from now on.
    await waitFor(async () => (await raw.get("rc:obj:other/hello.txt"))?.includes("hello from up-a"), { message: "the Redis fill from up-a" });
    await restart(yaml("up-a"));
    await ready();
    expect(await get("/other/hello.txt")).toEqual({ body: "hello from up-a", cache: "HIT", layer: "redis" });
  } finally {
    raw.close();
  }
});

test("server.workers changed and back (1 -> 2 -> 1): the folders of the layout not in use are deleted at start, so an object replaced meanwhile is never served from them", async () => {
  const yaml = (workers: number) => config({ upstream: "up-a", rwCached: true, folder: "w" }).replace("port: 0 }", `port: 0, workers: ${workers} }`);
  await restart(yaml(1));
  expect((await fetch(px!.url("/rw/w.txt"), { method: "PUT", body: "old" })).status).toBe(200);
  expect(await get("/rw/w.txt")).toEqual({ body: "old", cache: "MISS", layer: null });
  await waitFor(() => objectFiles("w").length === 1, { message: "the disk fill" });

  await restart(yaml(2));
  // both workers up (the write below may land on either)
  await waitFor(() => px!.logs().filter((l) => l.msg === "listening").length === 2, { message: "both workers listening" });
  expect((await fetch(px!.url("/rw/w.txt"), { method: "PUT", body: "new" })).status).toBe(200);
  expect(px!.logs().find((l) => l.msg === "disk cache: folders of another server.workers layout deleted")).toMatchObject({ folders: ["objects", "tmp"] });

  await restart(yaml(1));
  expect(await get("/rw/w.txt")).toEqual({ body: "new", cache: "MISS", layer: null });
  expect(px!.logs().find((l) => l.msg === "disk cache: folders of another server.workers layout deleted")).toMatchObject({ folders: ["worker-0", "worker-1"] });
});

test("a second instance with another server.workers on a port in use exits 3 and deletes nothing: the running instance keeps its disk cache", async () => {
  await restart(config({ upstream: "up-a", rwCached: true, folder: "second" }));
  expect(await get("/other/hello.txt")).toMatchObject({ body: "hello from up-a", cache: "MISS" });
  await waitFor(() => objectFiles("second").length === 1, { message: "the disk fill" });
  const file = join(dir, "second-instance.yaml");
  await Bun.write(file, config({ upstream: "up-a", rwCached: true, folder: "second" }).replace("port: 0 }", `port: ${px!.port}, workers: 2 }`));
  const other = Bun.spawn([...command(), "--config", file], { stdout: "pipe", stderr: "pipe" });
  expect(await other.exited).toBe(3);
  expect(await new Response(other.stdout).text()).not.toContain("layout deleted");
  expect(objectFiles("second").length).toBe(1);
  expect(await get("/other/hello.txt")).toEqual({ body: "hello from up-a", cache: "HIT", layer: "memory" });
});
