/**
 * yatagarasu_cache_layer_hits_total{layer} (and /admin/cache/stats' layers.*.hits) for a cache
 * whose first layer is not memory (`cache_layers: [disk]`, `[disk, redis]`): every disk hit carries
 * `source: "disk"` and was counted as a "lower" hit, then subtracted from the first layer's
 * count, so a disk-only cache reported 0 disk hits however many it served.
 */
import { afterAll, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cache } from "../../src/cache/cache.ts";
import { DiskLayer } from "../../src/cache/disk.ts";
import { MemoryLayer } from "../../src/cache/memory.ts";
import { serveWithCache } from "../../src/cache/serve.ts";
import { waitFor } from "../helpers/wait.ts";
import { instantUpstream } from "./helpers.ts";

setDefaultTimeout(30_000);

const root = mkdtempSync(join(tmpdir(), "yata-layer-hits-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const policy = { ttlSeconds: 600, defaultTtlSeconds: 3600, maxItemBytes: 8 << 20, bufferBytes: 1 << 20, stallTimeoutMs: 300 };

async function hitsAfterThreeGets(cache: Cache, disk: DiskLayer) {
  const up = instantUpstream(() => new Response("hello", { headers: { etag: '"e"', "content-length": "5" } }));
  const get = () => serveWithCache({ cache, bucket: "b", key: "k", method: "GET", reqHeaders: new Headers(), policy, upstream: up.fn });
  await (await get()).response.arrayBuffer();
  await waitFor(() => disk.keys().includes("b/k"), { message: "the disk fill to be committed" });
  for (let i = 0; i < 3; i++) {
    const r = await get();
    expect(r.cacheStatus).toBe("HIT");
    await r.response.arrayBuffer();
  }
  return cache.stats();
}

test("a disk-only cache counts its hits in layers.disk.hits", async () => {
  const disk = new DiskLayer({ dir: join(root, "only"), maxBytes: 64 << 20, maxItemBytes: 8 << 20 });
  await disk.ready;
  const s = await hitsAfterThreeGets(new Cache([disk]), disk);
  expect(s.total.hits).toBe(3);
  expect(s.layers.disk!.hits).toBe(3);
});

test("memory + disk: the memory hits stay memory's (unchanged)", async () => {
  const disk = new DiskLayer({ dir: join(root, "two"), maxBytes: 64 << 20, maxItemBytes: 8 << 20 });
  await disk.ready;
  const s = await hitsAfterThreeGets(new Cache([new MemoryLayer(16 << 20, 1 << 20), disk]), disk);
  expect(s.total.hits).toBe(3);
  expect(s.layers.memory!.hits + s.layers.disk!.hits).toBe(3);
});

test("a bucket removed by a reload does not take its hits out of layers.*.hits (a counter never goes down)", async () => {
  const memory = new MemoryLayer(16 << 20, 1 << 20);
  const cache = new Cache([memory]);
  const up = instantUpstream(() => new Response("hello", { headers: { etag: '"e"', "content-length": "5" } }));
  for (const bucket of ["gone", "kept"]) {
    for (let i = 0; i < 3; i++) {
      const r = await serveWithCache({ cache, bucket, key: "k", method: "GET", reqHeaders: new Headers(), policy, upstream: up.fn });
      await r.response.arrayBuffer();
    }
  }
  const before = cache.stats();
  expect(before.layers.memory!.hits).toBe(4);
  await cache.removeBucket("gone");
  const after = cache.stats();
  expect(Object.keys(after.buckets)).toEqual(["kept"]);
  expect(after.layers.memory!.hits).toBe(4);
});
