import { afterAll, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cache } from "../../src/cache/cache.ts";
import { MemoryLayer } from "../../src/cache/memory.ts";
import { registerCacheMetrics } from "../../src/cache/metrics.ts";
import { Registry } from "../../src/observe/registry.ts";
import { serveWithCache } from "../../src/cache/serve.ts";
import type { CachedObject, CacheLayer, LayerStats } from "../../src/cache/types.ts";
import { bytesOf, tick } from "./helpers.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const dir = mkdtempSync(join(tmpdir(), "yatagarasu-cache-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A toy disk layer (async, bodies are Bun.file) — enough to show a layer joins without touching serve.ts. */
class ToyDiskLayer implements CacheLayer {
  readonly name = "disk";
  private readonly meta = new Map<string, Omit<CachedObject, "body">>();
  /**
   * Each layer its own folder: two of them in one cache sharing one file per key (a lower layer's
   * hit promoted into the other rewrote the very file being served, which read back empty now and
   * then: the "layer that throws" case failed once in a loaded CI).
   */
  private readonly dir = mkdtempSync(join(dir, "layer-"));
  async get(key: string) {
    const m = this.meta.get(key);
    return m && { ...m, body: Bun.file(join(this.dir, encodeURIComponent(key))), tpl: undefined };
  }
  /** Writes in progress (the cache does not await a layer's put), so tests can wait for them. */
  private readonly pending = new Set<Promise<void>>();
  put(obj: CachedObject): Promise<void> {
    const p = (async () => {
      await Bun.write(join(this.dir, encodeURIComponent(obj.key)), obj.body);
      const { body: _b, tpl: _t, ...m } = obj;
      this.meta.set(obj.key, m);
    })();
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }
  async settled(): Promise<void> {
    await Promise.all([...this.pending]);
  }
  async delete(key: string) {
    return this.meta.delete(key);
  }
  async purgePrefix(prefix: string) {
    let n = 0;
    for (const k of [...this.meta.keys()]) if (k.startsWith(prefix) && this.meta.delete(k)) n++;
    return n;
  }
  stats(): LayerStats {
    return { items: this.meta.size, bytes: 0, evictions: 0, maxBytes: 0, buckets: {} };
  }
}

test("a hit in a lower (disk-like) layer is served from the file and promoted to memory", async () => {
  const memory = new MemoryLayer(1 << 20, 1 << 20);
  const disk = new ToyDiskLayer();
  const cache = new Cache([memory, disk]);
  const now = Date.now();
  await disk.put({ key: "b/k", body: new Blob([bytesOf(5000)]), headers: { etag: '"d"', "content-length": "5000" }, storedAt: now, expiresAt: now + 60_000, size: 5000 });
  const upstream = async () => {
    throw new Error("must not be called");
  };
  const args = { cache, bucket: "b", key: "k", method: "GET" as const, policy: { defaultTtlSeconds: 60, maxItemBytes: 1 << 20 }, upstream };

  const fromDisk = await serveWithCache({ ...args, reqHeaders: new Headers() });
  expect(fromDisk.cacheStatus).toBe("HIT");
  expect(fromDisk.response.headers.get("content-length")).toBe("5000");
  expect(new Uint8Array(await fromDisk.response.arrayBuffer())).toEqual(bytesOf(5000));

  const ranged = await serveWithCache({ ...args, reqHeaders: new Headers({ range: "bytes=4990-" }) });
  expect(ranged.response.status).toBe(206);
  expect(new Uint8Array(await ranged.response.arrayBuffer())).toEqual(bytesOf(5000).subarray(4990));

  await waitFor(() => memory.peek("b/k") !== undefined, { message: "the lower layer's hit to be promoted to memory" });
  expect(memory.peek("b/k")?.size).toBe(5000);

  // a fill writes to every layer
  const filled = await serveWithCache({ ...args, key: "new", reqHeaders: new Headers(), upstream: async () => new Response("fresh") });
  expect(filled.cacheStatus).toBe("MISS");
  await disk.settled();
  expect(await (await disk.get("b/new"))!.body.text()).toBe("fresh");
  expect(await cache.purgeAll()).toBe(2);
  expect(disk.stats().items).toBe(0);
});

test("a purge counts the objects removed from the layer that held the most (a disk layer holds more than memory; it counted memory's only)", async () => {
  const memory = new MemoryLayer(1 << 20, 1 << 20);
  const disk = new ToyDiskLayer();
  const cache = new Cache([memory, disk]);
  const now = Date.now();
  const obj = (key: string) => ({ key, body: new Blob(["x"]), headers: { "content-length": "1" }, storedAt: now, expiresAt: now + 60_000, size: 1 });
  for (const k of ["b/1", "b/2", "b/3", "c/1"]) await disk.put(obj(k));
  await memory.put(obj("b/1"));
  expect(await cache.purgeBucket("b")).toBe(3);
  expect(await cache.purgeAll()).toBe(1);
});

/** A disk stand-in whose writes wait for `release()` (a slow disk's write of a new version, the old file still in place). */
class HeldWriteLayer extends ToyDiskLayer {
  private gate: Promise<void> | undefined;
  release: () => void = () => {};
  holdWrites(): void {
    this.gate = new Promise<void>((r) => (this.release = r));
  }
  override put(obj: CachedObject): Promise<void> {
    return (this.gate ?? Promise.resolve()).then(() => super.put(obj));
  }
}

test("a stale entry in a higher layer does not hide a fresh one below it: a replica whose disk still held the old copy while its write of the new one (in Redis already) was under way went upstream again", async () => {
  const memory = new MemoryLayer(1 << 20, 200); // the new version (300 bytes) does not fit in memory
  const disk = new HeldWriteLayer();
  const shared = new ToyDiskLayer();
  const cache = new Cache([memory, disk, shared]);
  const t = Date.now();
  const version = (etag: string, size: number, at: number, maxAge = 1) => ({ key: "b/k", body: new Blob([bytesOf(size)]), headers: { etag, "content-length": String(size), "cache-control": `max-age=${maxAge}` }, storedAt: at, expiresAt: at + maxAge * 1000, size });
  await disk.put(version('"old"', 100, t - 1100));
  await memory.put(version('"old"', 100, t - 1100));
  disk.holdWrites();
  cache.put(version('"new"', 300, t, 60)); // memory drops its old copy; the disk's write waits
  await shared.settled();
  expect(memory.peek("b/k")).toBeUndefined();
  expect((await disk.get("b/k"))?.headers.etag).toBe('"old"');
  let calls = 0;
  const upstream = async () => {
    calls++;
    return new Response(bytesOf(300), { headers: { etag: '"new"' } });
  };
  const args = { cache, bucket: "b", key: "k", method: "GET" as const, policy: { defaultTtlSeconds: 60, maxItemBytes: 1 << 20 }, upstream };
  const got = await serveWithCache({ ...args, reqHeaders: new Headers() });
  expect(got.cacheStatus).toBe("HIT");
  expect(got.response.headers.get("etag")).toBe('"new"');
  expect(new Uint8Array(await got.response.arrayBuffer())).toEqual(bytesOf(300));
  expect(calls).toBe(0);
  disk.release();
  await disk.settled();

  // memory's own stale copy (answered synchronously) does not hide a fresh one below it either
  const small = new Cache([new MemoryLayer(1 << 20, 1 << 20), shared]);
  small.layers[0]!.put(version('"old"', 100, t - 1100));
  const fromShared = await serveWithCache({ ...args, cache: small, reqHeaders: new Headers() });
  expect(fromShared.cacheStatus).toBe("HIT");
  expect(fromShared.response.headers.get("etag")).toBe('"new"');
  expect(calls).toBe(0);
  // with no fresh copy anywhere, the stale one is revalidated as before
  const alone = new Cache([new MemoryLayer(1 << 20, 1 << 20), new ToyDiskLayer()]);
  alone.layers[0]!.put(version('"old"', 100, t - 1100));
  expect((await serveWithCache({ ...args, cache: alone, reqHeaders: new Headers() })).cacheStatus).toBe("MISS");
  expect(calls).toBe(1);
});

/** A shared-layer stand-in whose purges wait for `release()` (a Redis SCAN/UNLINK over several round trips). */
class SlowPurgeLayer extends ToyDiskLayer {
  private gate: Promise<void> | undefined;
  release: () => void = () => {};
  holdPurges(): void {
    this.gate = new Promise<void>((r) => (this.release = r));
  }
  override async purgePrefix(prefix: string) {
    await this.gate;
    return super.purgePrefix(prefix);
  }
  override async delete(key: string) {
    await this.gate;
    return super.delete(key);
  }
}

test("a lookup made while a purge is still going through the lower layers serves what it found there but never copies it up (it would outlive the purge)", async () => {
  for (const kind of ["bucket", "all", "key"] as const) {
    const memory = new MemoryLayer(1 << 20, 1 << 20);
    const lower = new SlowPurgeLayer();
    const cache = new Cache([memory, lower]);
    const now = Date.now();
    await lower.put({ key: "b/k", body: new Blob(["old"]), headers: { etag: '"old"', "content-length": "3" }, storedAt: now, expiresAt: now + 60_000, size: 3 });
    lower.holdPurges();
    const purge = kind === "bucket" ? cache.purgeBucket("b") : kind === "all" ? cache.purgeAll() : cache.purgeObject("b", "k");
    // begun after the purge was recorded, before the lower layer is purged: the old entry is found
    const found = await cache.get("b/k");
    expect(await found?.body.text()).toBe("old");
    for (let i = 0; i < 20; i++) await tick();
    expect(memory.peek("b/k")).toBeUndefined();
    lower.release();
    await purge;
    expect(await cache.get("b/k")).toBeUndefined();
    expect(memory.peek("b/k")).toBeUndefined();
    // once the purge is over, a lower-layer hit is promoted again
    await lower.put({ key: "b/k", body: new Blob(["new"]), headers: { etag: '"new"', "content-length": "3" }, storedAt: now, expiresAt: now + 60_000, size: 3 });
    expect(await (await cache.get("b/k"))?.body.text()).toBe("new");
    await waitFor(() => memory.peek("b/k") !== undefined, { message: "the lower layer's hit to be promoted to memory" });
    expect(memory.peek("b/k")?.headers.etag).toBe('"new"');
  }
});

test("while a purge goes through the lower layers, fills that asked the upstream after it began are coalesced and cached as usual (they have the current object)", async () => {
  const memory = new MemoryLayer(1 << 20, 1 << 20);
  const lower = new SlowPurgeLayer();
  const cache = new Cache([memory, lower]);
  lower.holdPurges();
  const purge = cache.purgeBucket("b");
  let calls = 0;
  let release!: () => void;
  const answered = new Promise<void>((r) => (release = r));
  const upstream = async () => {
    calls++;
    await answered;
    return new Response("current", { headers: { etag: '"c"' } });
  };
  const args = { cache, bucket: "b", key: "hot", method: "GET" as const, reqHeaders: new Headers(), policy: { defaultTtlSeconds: 60, maxItemBytes: 1 << 20 }, upstream };
  const all = Promise.all(Array.from({ length: 20 }, () => serveWithCache({ ...args })));
  for (let i = 0; i < 20; i++) await tick();
  release();
  for (const r of await all) expect(await r.response.text()).toBe("current");
  expect(calls).toBe(1);
  await waitFor(() => memory.peek("b/hot") !== undefined, { message: "the lower layer's hit to be promoted to memory" });
  expect(memory.peek("b/hot")).toBeDefined();
  lower.release();
  await purge;
});

test("a layer that throws (synchronously) while a peer's or this process's purge goes through it does not leave the purge under way: the key is cached again afterwards", async () => {
  class Throwing extends ToyDiskLayer {
    override delete(_key: string): Promise<boolean> {
      throw new Error("sync");
    }
    override purgePrefix(_prefix: string): Promise<number> {
      throw new Error("sync");
    }
  }
  const memory = new MemoryLayer(1 << 20, 1 << 20);
  const lower = new ToyDiskLayer();
  const cache = new Cache([memory, new Throwing(), lower]);
  await cache.applyPeer({ kind: "key", key: "b/k" });
  await cache.applyPeer({ kind: "prefix", prefix: "b/" });
  await cache.purgeObject("b", "k");
  await cache.purgeBucket("b");
  const now = Date.now();
  await lower.put({ key: "b/k", body: new Blob(["v"]), headers: { etag: '"v"', "content-length": "1" }, storedAt: now, expiresAt: now + 60_000, size: 1 });
  expect(await (await cache.get("b/k"))?.body.text()).toBe("v");
  await waitFor(() => memory.peek("b/k") !== undefined, { message: "the lower layer's hit to be promoted to memory" });
  expect(memory.peek("b/k")).toBeDefined();
});

test("yatagarasu_cache_layer_evictions_total counts each layer's evictions (the total counted memory's only: a disk layer evicting on every fill never showed)", async () => {
  const memory = new MemoryLayer(1 << 20, 1 << 20);
  class EvictingDisk extends ToyDiskLayer {
    override stats(): LayerStats {
      return { ...super.stats(), evictions: 7 };
    }
  }
  const cache = new Cache([memory, new EvictingDisk()]);
  const registry = new Registry();
  registerCacheMetrics(registry, cache);
  const now = Date.now();
  // three 400 KiB objects in a 1 MiB memory layer: the first is evicted
  for (const k of ["b/1", "b/2", "b/3"]) await memory.put({ key: k, body: new Blob([new Uint8Array(400 * 1024)]), headers: { "content-length": String(400 * 1024) }, storedAt: now, expiresAt: now + 60_000, size: 400 * 1024 });
  const text = registry.render();
  expect(/^yatagarasu_cache_layer_evictions_total\{layer="memory"\} (\d+)$/m.exec(text)?.[1]).toBe("1");
  expect(/^yatagarasu_cache_layer_evictions_total\{layer="disk"\} (\d+)$/m.exec(text)?.[1]).toBe("7");
});
