/**
 * A reload that points a cached bucket at another store (another S3 bucket, endpoint or replica
 * set) drops the bucket's cached objects: they are the old store's, and the cache is keyed by the
 * proxy bucket's name. Before, the old bucket's objects were served as HITs until their TTL.
 * A reload that changes nothing about the store keeps them. A request admitted before such a
 * reload that reaches the cache after it (held by its authorizer) may be answered from the old
 * store, but what it read is neither stored (memory, disk) nor served to a later request.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DiskLayer } from "../../src/cache/disk.ts";
import { OpaServer } from "../fixtures/opa.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

setDefaultTimeout(30_000);

let s3: S3Fixture;
let px: InProcessProxy;
const dir = mkdtempSync(join(tmpdir(), "yata-reload-cache-"));
const configPath = join(dir, "config.yaml");
const yaml = (upstream: string, level = "warn", cached = true, ttl = "") =>
  `server: { address: 127.0.0.1, port: 0, readiness_probe_interval_seconds: 3600 }\nlogging: { level: ${level} }\ncache: { enabled: true, memory: { max_item_size_mb: 1 } }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: upstream, endpoint: s3.endpoint, extra: `    cache: { enabled: ${cached}${ttl} }\n` })}`;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "first-bucket", public: true }, { name: "second-bucket", public: true }], credentials: [] });
  await s3.put("first-bucket", "hello.txt", "from the first bucket");
  await s3.put("second-bucket", "hello.txt", "from the second bucket");
  writeFileSync(configPath, yaml("first-bucket"));
  px = await startInProcess(yaml("first-bucket"), { configPath, probeIntervalMs: 3_600_000 });
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const get = async () => {
  const res = await fetch(px.url("/pub/hello.txt"));
  return { body: await res.text(), cache: res.headers.get("x-cache") };
};

test("a reload that changes nothing about the store keeps the cached objects; one that repoints the bucket drops them", async () => {
  expect(await get()).toEqual({ body: "from the first bucket", cache: "MISS" });
  expect(await get()).toEqual({ body: "from the first bucket", cache: "HIT" });

  writeFileSync(configPath, yaml("first-bucket", "error")); // the same store
  expect((await px.app.reload()).ok).toBe(true);
  expect(await get()).toEqual({ body: "from the first bucket", cache: "HIT" });

  writeFileSync(configPath, yaml("second-bucket")); // another S3 bucket behind the same name
  expect((await px.app.reload()).ok).toBe(true);
  expect(await get()).toEqual({ body: "from the second bucket", cache: "MISS" });
  expect(await get()).toEqual({ body: "from the second bucket", cache: "HIT" });
});

test("a reload that gives a cached bucket another access key drops its entries: an object the old key could read is not served on to the new one's callers (a rotated secret with the same key keeps them)", async () => {
  const locked = await startS3Fixture({
    buckets: [{ name: "locked" }],
    credentials: [
      { accessKeyId: "AKIAWIDEREADER000001", secretAccessKey: "wide-reader-secret-0123456789", buckets: ["locked"] },
      { accessKeyId: "AKIANARROWREADER0001", secretAccessKey: "narrow-reader-secret-012345678", buckets: [] },
    ],
  });
  const cfgPath = join(dir, "locked.yaml");
  const lockedYaml = (key: string, secret: string) =>
    `server: { address: 127.0.0.1, port: 0, readiness_probe_interval_seconds: 3600 }\nlogging: { level: warn }\ncache: { enabled: true, memory: { max_item_size_mb: 1 } }\nbuckets:\n${bucketYaml({ name: "sec", prefix: "/sec", bucket: "locked", endpoint: locked.endpoint, key, secret, extra: "    cache: { enabled: true }\n" })}`;
  let p: InProcessProxy | undefined;
  try {
    await locked.put("locked", "report.txt", "for the wide key only");
    writeFileSync(cfgPath, lockedYaml("AKIAWIDEREADER000001", "wide-reader-secret-0123456789"));
    p = await startInProcess(lockedYaml("AKIAWIDEREADER000001", "wide-reader-secret-0123456789"), { configPath: cfgPath, probeIntervalMs: 3_600_000 });
    const read = async () => {
      const res = await fetch(p!.url("/sec/report.txt"));
      return { status: res.status, cache: res.headers.get("x-cache"), body: res.status === 200 ? await res.text() : (await res.body?.cancel(), "") };
    };
    expect(await read()).toEqual({ status: 200, cache: "MISS", body: "for the wide key only" });
    expect(await read()).toEqual({ status: 200, cache: "HIT", body: "for the wide key only" });
    // the same key, its secret only rotated (here: written again as it is): kept
    writeFileSync(cfgPath, lockedYaml("AKIAWIDEREADER000001", "wide-reader-secret-0123456789").replace("level: warn", "level: error"));
    expect((await p.app.reload()).ok).toBe(true);
    expect((await read()).cache).toBe("HIT");
    // a narrower key: the store refuses it, and the cache no longer answers for it
    writeFileSync(cfgPath, lockedYaml("AKIANARROWREADER0001", "narrow-reader-secret-012345678"));
    expect((await p.app.reload()).ok).toBe(true);
    const after = await read();
    expect(after.status).toBe(403);
    expect(after.cache).not.toBe("HIT");
  } finally {
    await p?.stop();
    await locked.stop();
  }
});

test("a reload that adds, reorders or removes a replica beside an unchanged primary keeps the cached objects (replicas hold the same objects: every proxy reloading at once purged every layer, a cluster-wide miss storm); one that replaces the primary drops them", async () => {
  const cfgPath = join(dir, "replicas.yaml");
  const replica = (name: string, bucket: string, priority: number) => `        - { name: ${name}, bucket: ${bucket}, endpoint: "${s3.endpoint}", priority: ${priority} }\n`;
  const replicasYaml = (...list: string[]) =>
    `server: { address: 127.0.0.1, port: 0, readiness_probe_interval_seconds: 3600 }\nlogging: { level: warn }\ncache: { enabled: true, memory: { max_item_size_mb: 1 } }\nbuckets:\n  - name: rep\n    path_prefix: /rep\n    cache: { enabled: true }\n    s3:\n      replicas:\n${list.join("")}`;
  let p: InProcessProxy | undefined;
  const read = async () => {
    const res = await fetch(p!.url("/rep/hello.txt"));
    return { body: await res.text(), cache: res.headers.get("x-cache") };
  };
  const reload = async (...list: string[]) => {
    writeFileSync(cfgPath, replicasYaml(...list));
    expect((await p!.app.reload()).ok).toBe(true);
  };
  try {
    writeFileSync(cfgPath, replicasYaml(replica("a", "first-bucket", 1)));
    p = await startInProcess(replicasYaml(replica("a", "first-bucket", 1)), { configPath: cfgPath, probeIntervalMs: 3_600_000 });
    expect(await read()).toEqual({ body: "from the first bucket", cache: "MISS" });
    await reload(replica("a", "first-bucket", 1), replica("b", "second-bucket", 2)); // a replica added
    expect(await read()).toEqual({ body: "from the first bucket", cache: "HIT" });
    await reload(replica("a", "first-bucket", 1), replica("c", "second-bucket", 2), replica("b", "first-bucket", 3)); // one more, the others reordered
    expect(await read()).toEqual({ body: "from the first bucket", cache: "HIT" });
    await reload(replica("a", "first-bucket", 1)); // back to the primary alone
    expect(await read()).toEqual({ body: "from the first bucket", cache: "HIT" });
    await reload(replica("z", "second-bucket", 1)); // the only store replaced
    expect(await read()).toEqual({ body: "from the second bucket", cache: "MISS" });
  } finally {
    await p?.stop();
  }
});

test("a reload that switches a bucket's cache off drops its entries: switched on again later, it never serves what was cached before", async () => {
  writeFileSync(configPath, yaml("second-bucket"));
  expect((await px.app.reload()).ok).toBe(true);
  await get();
  expect((await get()).cache).toBe("HIT");
  writeFileSync(configPath, yaml("second-bucket", "warn", false));
  expect((await px.app.reload()).ok).toBe(true);
  await s3.put("second-bucket", "hello.txt", "changed while the cache was off");
  writeFileSync(configPath, yaml("second-bucket"));
  expect((await px.app.reload()).ok).toBe(true);
  expect(await get()).toEqual({ body: "changed while the cache was off", cache: "MISS" });
});

test("a reload that shortens a bucket's TTL applies to the objects already in memory: fresh no longer than the new TTL from when they were stored (they were HITs until the old one ran out)", async () => {
  writeFileSync(configPath, yaml("second-bucket", "warn", true, ", ttl_seconds: 600"));
  expect((await px.app.reload()).ok).toBe(true);
  await s3.put("second-bucket", "hello.txt", "stored under a 600 s TTL");
  await px.app.cache.purgeBucket("pub");
  expect(await get()).toEqual({ body: "stored under a 600 s TTL", cache: "MISS" });
  expect(await get()).toEqual({ body: "stored under a 600 s TTL", cache: "HIT" });
  // the same TTL written again (another level): still fresh
  writeFileSync(configPath, yaml("second-bucket", "error", true, ", ttl_seconds: 600"));
  expect((await px.app.reload()).ok).toBe(true);
  expect((await get()).cache).toBe("HIT");
  // shortened to 0: stale at once, revalidated (and fresh again for 0 s: revalidated each time)
  writeFileSync(configPath, yaml("second-bucket", "warn", true, ", ttl_seconds: 0"));
  expect((await px.app.reload()).ok).toBe(true);
  expect(await get()).toEqual({ body: "stored under a 600 s TTL", cache: "REVALIDATED" });
  await s3.put("second-bucket", "hello.txt", "changed upstream");
  expect(await get()).toEqual({ body: "changed upstream", cache: "MISS" });
  // the bucket's own TTL left out: default_ttl_seconds, shortened the same way
  writeFileSync(configPath, yaml("second-bucket").replace("memory: { max_item_size_mb: 1 }", "memory: { max_item_size_mb: 1, default_ttl_seconds: 600 }"));
  expect((await px.app.reload()).ok).toBe(true);
  expect((await get()).body).toBe("changed upstream");
  expect((await get()).cache).toBe("HIT");
  writeFileSync(configPath, yaml("second-bucket").replace("memory: { max_item_size_mb: 1 }", "memory: { max_item_size_mb: 1, default_ttl_seconds: 0 }"));
  expect((await px.app.reload()).ok).toBe(true);
  expect((await get()).cache).toBe("REVALIDATED");
});

test("a fill under way when a reload shortens its bucket's TTL does not store what it read fresh for the old TTL", async () => {
  writeFileSync(configPath, yaml("second-bucket", "warn", true, ", ttl_seconds: 600"));
  expect((await px.app.reload()).ok).toBe(true);
  await s3.put("second-bucket", "fill.txt", "filled across the reload");
  let release!: () => void;
  s3.faults.set("/second-bucket/fill.txt", { kind: "delay", ms: 10_000, until: new Promise<void>((r) => (release = r)), times: 1 });
  const early = fetch(px.url("/pub/fill.txt"));
  await s3.waitForRequest((r) => r.method === "GET" && r.pathname === "/second-bucket/fill.txt");
  writeFileSync(configPath, yaml("second-bucket", "warn", true, ", ttl_seconds: 0"));
  expect((await px.app.reload()).ok).toBe(true);
  release();
  const first = await early;
  expect({ body: await first.text(), cache: first.headers.get("x-cache") }).toEqual({ body: "filled across the reload", cache: "MISS" });
  const next = await fetch(px.url("/pub/fill.txt"));
  expect({ body: await next.text(), cache: next.headers.get("x-cache") }).toEqual({ body: "filled across the reload", cache: "MISS" });
});

test("a reload that lowers a bucket's max_item_size_mb drops its larger objects from memory, as the lower layers no longer serve them (they were HITs until evicted or stale)", async () => {
  writeFileSync(configPath, yaml("second-bucket", "warn", true, ", max_item_size_mb: 1"));
  expect((await px.app.reload()).ok).toBe(true);
  await s3.put("second-bucket", "large.bin", "L".repeat(300_000));
  await s3.put("second-bucket", "small.txt", "small");
  const read = async (key: string) => {
    const res = await fetch(px.url(`/pub/${key}`));
    return { size: (await res.arrayBuffer()).byteLength, cache: res.headers.get("x-cache") };
  };
  for (const key of ["large.bin", "small.txt"]) await read(key);
  expect(await read("large.bin")).toEqual({ size: 300_000, cache: "HIT" });
  writeFileSync(configPath, yaml("second-bucket", "warn", true, ", max_item_size_mb: 0.25"));
  expect((await px.app.reload()).ok).toBe(true);
  // over the bucket's limit now: passed through, as an object never cached (and not stored again)
  expect(await read("large.bin")).toEqual({ size: 300_000, cache: "BYPASS" });
  expect(await read("large.bin")).toEqual({ size: 300_000, cache: "BYPASS" });
  expect(await read("small.txt")).toEqual({ size: 5, cache: "HIT" });
});

test("a reload that changes default_ttl_seconds bounds every cached bucket's objects in memory in one walk over memory (a walk per bucket held the event loop 2.5 s for 100 buckets and 200,000 entries)", async () => {
  const names = ["pub", "pub2", "pub3"];
  const three = (ttl: number) =>
    yaml("second-bucket").replace("memory: { max_item_size_mb: 1 }", `memory: { max_item_size_mb: 1, default_ttl_seconds: ${ttl} }`) +
    names.slice(1).map((name) => bucketYaml({ name, prefix: `/${name}`, bucket: "second-bucket", endpoint: s3.endpoint, extra: "    cache: { enabled: true }\n" })).join("");
  writeFileSync(configPath, three(600));
  expect((await px.app.reload()).ok).toBe(true);
  await s3.put("second-bucket", "walk.txt", "walked");
  const read = async (name: string) => (await fetch(px.url(`/${name}/walk.txt`))).headers.get("x-cache");
  for (const name of names) await read(name);
  expect(await Promise.all(names.map(read))).toEqual(["HIT", "HIT", "HIT"]);
  // (the memory layer's walks over its entries, counted during the reload)
  const lru = (px.app.cache.layers.find((l) => l.name === "memory") as unknown as { lru: { newestFirst: () => IterableIterator<unknown> } }).lru;
  const walk = lru.newestFirst;
  let walks = 0;
  lru.newestFirst = function (this: unknown) {
    walks++;
    return walk.call(this);
  };
  try {
    writeFileSync(configPath, three(0));
    expect((await px.app.reload()).ok).toBe(true);
  } finally {
    lru.newestFirst = walk;
  }
  expect(walks).toBe(1);
  expect(await Promise.all(names.map(read))).toEqual(["REVALIDATED", "REVALIDATED", "REVALIDATED"]);
});

test("a request held by its authorizer across a reload that repoints its bucket is answered from the old store, but that object is never served afterwards, nor kept on disk across a restart", async () => {
  using opa = OpaServer.start({ "yatagarasu/allow": () => true });
  const diskDir = join(dir, "held-disk");
  const heldPath = join(dir, "held.yaml");
  const held = (upstream: string) =>
    `server: { address: 127.0.0.1, port: 0, readiness_probe_interval_seconds: 3600 }\nlogging: { level: warn }\ncache: { enabled: true, cache_layers: [memory, disk], disk: { path: "${diskDir}", max_disk_size_mb: 50, max_item_size_mb: 10 } }\nbuckets:\n${bucketYaml({
      name: "held",
      prefix: "/held",
      bucket: upstream,
      endpoint: s3.endpoint,
      extra: `    cache: { enabled: true, ttl_seconds: 600 }\n    authorization: { type: opa, opa_url: "${opa.url}", opa_policy_path: yatagarasu/allow, opa_cache_ttl_seconds: 0, opa_timeout_ms: 10000 }\n`,
    })}`;
  await s3.put("first-bucket", "held.txt", "held: first bucket");
  await s3.put("second-bucket", "held.txt", "held: second bucket");
  writeFileSync(heldPath, held("first-bucket"));
  let p = await startInProcess(held("first-bucket"), { configPath: heldPath, probeIntervalMs: 3_600_000 });
  const getHeld = async () => {
    const res = await fetch(p.url("/held/held.txt"));
    return { body: await res.text(), cache: res.headers.get("x-cache"), layer: res.headers.get("x-cache-layer") };
  };
  try {
    opa.hang();
    const asked = opa.requests.length;
    const early = fetch(p.url("/held/held.txt")); // admitted on the old config, then held by OPA
    await waitFor(() => opa.requests.length > asked, { message: "the request held by its authorizer" });
    writeFileSync(heldPath, held("second-bucket"));
    expect((await p.app.reload()).ok).toBe(true);
    opa.restore();
    const first = await early;
    expect({ status: first.status, body: await first.text() }).toEqual({ status: 200, body: "held: first bucket" }); // it began before the reload

    expect(await getHeld()).toEqual({ body: "held: second bucket", cache: "MISS", layer: null });
    expect(await getHeld()).toEqual({ body: "held: second bucket", cache: "HIT", layer: "memory" });
    const disk = p.app.cache.layer("disk") as DiskLayer;
    await waitFor(() => disk.keys().includes("held/held.txt"), { message: "the new object on disk" });
    await p.stop();
    p = await startInProcess(held("second-bucket"), { configPath: heldPath, probeIntervalMs: 3_600_000 });
    expect(await getHeld()).toEqual({ body: "held: second bucket", cache: "HIT", layer: "disk" });
  } finally {
    await p.stop();
  }
});
