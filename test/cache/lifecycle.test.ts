import { beforeEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { Cache } from "../../src/cache/cache.ts";
import { entryBytes, MemoryLayer } from "../../src/cache/memory.ts";
import { serveWithCache, type ServeArgs } from "../../src/cache/serve.ts";
import { bucketCachePolicy, createCache, applyCacheConfig } from "../../src/cache/index.ts";
import { CacheSchema } from "../../src/config/schema.ts";
import { bytesOf, controlledUpstream, instantUpstream, tick } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const LM = "Wed, 21 Oct 2015 07:28:00 GMT";
const policy = { ttlSeconds: 600, defaultTtlSeconds: 3600, maxItemBytes: 10_000 };
let clock = 0;
let cache: Cache;
let memory: MemoryLayer;

beforeEach(() => {
  clock = 1_000_000;
  memory = new MemoryLayer(1 << 20, 10_000);
  cache = new Cache([memory]);
});

type Up = (extra: Record<string, string>, signal: AbortSignal) => Promise<Response>;
function serve(upstream: Up, opts: { bucket?: string; key?: string; h?: Record<string, string>; method?: "GET" | "HEAD" } = {}, extra: Partial<ServeArgs> = {}) {
  return serveWithCache({
    cache, bucket: opts.bucket ?? "b", key: opts.key ?? "k", method: opts.method ?? "GET",
    reqHeaders: new Headers(opts.h ?? {}), policy, upstream, now: () => clock, ...extra,
  });
}
const text = (r: Response) => r.text();

describe("expiry and revalidation", () => {
  test("a 304 refreshes expiry and headers without moving the body again (REVALIDATED)", async () => {
    const up = controlledUpstream();
    const first = serve(up.fn);
    await tick();
    up.respond(new Response("version-1", { headers: { etag: '"v1"', "cache-control": "max-age=10" } }));
    expect((await first).cacheStatus).toBe("MISS");
    const body = memory.peek("b/k")!.body;

    clock += 11_000; // stale
    const stale = Array.from({ length: 10 }, () => serve(up.fn));
    await tick();
    expect(up.calls.length).toBe(2); // revalidation is coalesced
    expect(up.calls[1]).toEqual({ "if-none-match": '"v1"' });
    up.respond(new Response(null, { status: 304, headers: { etag: '"v1"', "cache-control": "max-age=20", "x-amz-request-id": "R" } }));
    const results = await Promise.all(stale);
    expect(results.map((r) => r.cacheStatus)).toEqual(Array(10).fill("REVALIDATED"));
    expect(results.map((r) => r.upstreamCalls).reduce((a, b) => a + b)).toBe(1);
    for (const r of results) expect(await text(r.response)).toBe("version-1");

    const entry = memory.peek("b/k")!;
    expect(entry.body).toBe(body); // same Blob: the body was not refetched
    expect(entry.headers["cache-control"]).toBe("max-age=20");
    expect(entry.headers["x-amz-request-id"]).toBeUndefined();
    expect(entry.storedAt).toBe(clock);
    clock += 19_000;
    const hit = await serve(up.fn);
    expect(hit.cacheStatus).toBe("HIT");
    expect(hit.response.headers.get("cache-control")).toBe("max-age=20");
    expect(hit.response.headers.get("age")).toBe("19");
    expect(cache.stats().buckets.b).toMatchObject({ revalidated: 10, coalesced: 9 });
  });

  test("a 200 on revalidation replaces the entry (MISS)", async () => {
    let version = 1;
    const up = instantUpstream((extra) =>
      extra["if-none-match"] === `"v${version}"`
        ? new Response(null, { status: 304 })
        : new Response(`version-${version}`, { headers: { etag: `"v${version}"`, "cache-control": "max-age=10" } }),
    );
    await serve(up.fn);
    version = 2;
    clock += 11_000;
    const r = await serve(up.fn);
    expect(up.calls[1]).toEqual({ "if-none-match": '"v1"' });
    expect(r.cacheStatus).toBe("MISS");
    expect(await text(r.response)).toBe("version-2");
    const hit = await serve(up.fn);
    expect(hit.cacheStatus).toBe("HIT");
    expect(await text(hit.response)).toBe("version-2");
    expect(hit.response.headers.get("etag")).toBe('"v2"');
  });

  test("without an ETag, revalidation uses If-Modified-Since", async () => {
    const up = instantUpstream(() => new Response("x", { headers: { "last-modified": LM, "cache-control": "max-age=0" } }));
    await serve(up.fn);
    await serve(up.fn);
    expect(up.calls[1]).toEqual({ "if-modified-since": LM });
  });

  test("a 304 naming another Last-Modified is not the stored response, even one a century apart (0099 vs 1999)", async () => {
    let n = 0;
    const up = instantUpstream(() =>
      ++n === 2
        ? new Response(null, { status: 304, headers: { "last-modified": "Fri, 01 Jan 1999 00:00:00 GMT" } })
        : new Response(`v${n}`, { headers: { "last-modified": n === 1 ? "Thu, 01 Jan 0099 00:00:00 GMT" : "Fri, 01 Jan 1999 00:00:00 GMT", "cache-control": "max-age=0" } }),
    );
    await serve(up.fn);
    const r = await serve(up.fn);
    // (Date.parse read both as 1999: the 304 was taken for the stored 0099 object, v1 served as current)
    expect([up.calls.length, await text(r.response)]).toEqual([3, "v3"]);
  });

  test("a 404 on revalidation drops the entry", async () => {
    let gone = false;
    const up = instantUpstream(() => (gone ? new Response("no", { status: 404 }) : new Response("x", { headers: { etag: '"e"', "cache-control": "max-age=1" } })));
    await serve(up.fn);
    gone = true;
    clock += 2_000;
    expect((await serve(up.fn)).response.status).toBe(404);
    expect(memory.stats().items).toBe(0);
  });

  test("bucket ttl_seconds applies when upstream has no max-age; the policy is per call", async () => {
    const up = instantUpstream(() => new Response("x", { headers: { etag: '"e"' } }));
    await serve(up.fn, {}, { policy: { ...policy, ttlSeconds: 5 } });
    expect(memory.peek("b/k")!.expiresAt).toBe(clock + 5_000);
    await serve(up.fn, { key: "k2" }, { policy: { ...policy, ttlSeconds: undefined } });
    expect(memory.peek("b/k2")!.expiresAt).toBe(clock + 3_600_000);
  });
});

describe("never stored", () => {
  for (const cc of ["no-store", "private", "private, max-age=600"]) {
    test(`Cache-Control: ${cc} → served (MISS), not stored`, async () => {
      const up = instantUpstream(() => new Response("secret", { headers: { "cache-control": cc } }));
      const r = await serve(up.fn);
      expect(r.cacheStatus).toBe("MISS");
      expect(await text(r.response)).toBe("secret");
      expect(memory.stats().items).toBe(0);
      expect((await serve(up.fn)).upstreamCalls).toBe(1);
    });
  }

  test("no-cache is stored but revalidated on every use", async () => {
    const up = instantUpstream((extra) => (extra["if-none-match"] ? new Response(null, { status: 304 }) : new Response("x", { headers: { etag: '"e"', "cache-control": "no-cache" } })));
    await serve(up.fn);
    expect(memory.stats().items).toBe(1);
    const r = await serve(up.fn);
    expect(r.cacheStatus).toBe("REVALIDATED");
    expect(up.calls.length).toBe(2);
  });
});

describe("purge, reload, resize", () => {
  const up = instantUpstream(() => new Response(bytesOf(100), { headers: { etag: '"e"' } }));
  async function fill() {
    for (const [bucket, key] of [["a", "1"], ["a", "2"], ["b", "1"], ["b", "dir/2"]] as const) await serve(up.fn, { bucket, key });
    expect(memory.stats().items).toBe(4);
  }
  test("purge by object, by bucket, everything", async () => {
    await fill();
    expect(await cache.purgeObject("a", "1")).toBe(1);
    expect(await cache.purgeObject("a", "1")).toBe(0);
    expect(memory.keys().sort()).toEqual(["a/2", "b/1", "b/dir/2"]);
    expect(await cache.purgeBucket("b")).toBe(2);
    expect(memory.keys()).toEqual(["a/2"]);
    expect(await cache.purgeAll()).toBe(1);
    expect(memory.stats()).toMatchObject({ items: 0, bytes: 0 });
  });

  test("removeBucket (hot reload) drops entries and counters", async () => {
    await fill();
    expect(await cache.removeBucket("a")).toBe(2);
    expect(Object.keys(cache.stats().buckets)).toEqual(["b"]);
  });

  test("a fill in flight during a purge does not store its (possibly stale) result", async () => {
    const slow = controlledUpstream();
    const r = serve(slow.fn);
    await tick();
    await cache.purgeBucket("b");
    slow.respond(new Response("old"));
    expect(await (await r).response.text()).toBe("old");
    expect(memory.stats().items).toBe(0);
  });

  test("resize evicts down; the config helpers", async () => {
    await fill();
    const before = memory.stats().bytes;
    const lru = entryBytes(memory.peek("a/1")!);
    cache.resize(before - 1); // one byte short: the least recently used entry (a/1) goes
    expect(memory.keys()).toEqual(["b/dir/2", "b/1", "a/2"]);
    expect(cache.stats().total).toMatchObject({ items: 3, evictions: 1, bytes: before - lru });
    expect(cache.stats().buckets.a).toMatchObject({ items: 1, evictions: 1 });

    const cfg = CacheSchema.parse({ enabled: true, memory: { max_item_size_mb: 10, max_cache_size_mb: 1024, default_ttl_seconds: 3600 } });
    const c = createCache(cfg);
    expect(c.layers.map((l) => l.name)).toEqual(["memory"]);
    expect(c.stats().layers.memory!.maxBytes).toBe(1024 * 1024 * 1024);
    applyCacheConfig(c, { ...cfg, memory: { ...cfg.memory, max_cache_size_mb: 1 } });
    expect(c.stats().layers.memory!.maxBytes).toBe(1024 * 1024);
    expect(bucketCachePolicy(cfg, { cache: { enabled: true, ttl_seconds: 600, max_item_size_mb: 5 } })).toEqual({
      ttlSeconds: 600, defaultTtlSeconds: 3600, maxItemBytes: 5 * 1024 * 1024,
    });
    expect(bucketCachePolicy(cfg, { cache: { enabled: true, max_item_size_mb: 50 } })!.maxItemBytes).toBe(10 * 1024 * 1024);
    expect(bucketCachePolicy(cfg, { cache: { enabled: false } })).toBeNull();
    expect(bucketCachePolicy(cfg, {})).toBeNull();
    expect(bucketCachePolicy({ ...cfg, enabled: false }, { cache: { enabled: true } })).toBeNull();
  });
});

describe("stats", () => {
  test("shape for /admin/cache/stats and the metrics", async () => {
    const up = instantUpstream(() => new Response(bytesOf(100)));
    await serve(up.fn, { bucket: "a" });
    await serve(up.fn, { bucket: "a" });
    await serve(up.fn, { bucket: "c" });
    const s = cache.stats();
    const e = memory.stats().bytes / 2;
    expect(s.total).toEqual({ hits: 1, misses: 2, coalesced: 0, revalidated: 0, stale: 0, bypassed: 0, evictions: 0, items: 2, bytes: 2 * e });
    expect(s.buckets.a).toEqual({ hits: 1, misses: 1, coalesced: 0, revalidated: 0, stale: 0, bypassed: 0, evictions: 0, items: 1, bytes: e });
    expect(s.layers.memory).toMatchObject({ items: 2, bytes: 2 * e, evictions: 0 });
  });
});

describe("a HEAD and a fill whose body stalls", () => {
  /** An upstream whose 200 sends its headers (Content-Length 5) and 2 bytes, then nothing until the fill's deadline aborts it. */
  function stallingUpstream() {
    let calls = 0;
    const fn = async (_extra: Record<string, string>, signal: AbortSignal) => {
      calls++;
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new TextEncoder().encode("ab"));
          signal.addEventListener("abort", () => c.error(signal.reason), { once: true });
        },
      });
      return new Response(body, { headers: { "content-length": "5", etag: '"e1"', "content-type": "text/plain", "x-amz-meta-a": "1" } });
    };
    return { fn, calls: () => calls };
  }
  const stalling = { ...policy, fillTimeoutMs: 150 };

  test("a HEAD miss is answered from the fill's headers, not the fill's 504 once its body stalls; a HEAD joining a GET's fill too, the GET still 504", async () => {
    const up = stallingUpstream();
    const head = await serve(up.fn, { method: "HEAD" }, { policy: stalling });
    expect([head.cacheStatus, head.response.status, head.response.headers.get("content-length"), head.response.headers.get("etag"), head.response.headers.get("x-amz-meta-a")]).toEqual(["MISS", 200, "5", '"e1"', "1"]);
    expect(await head.response.text()).toBe("");
    // (a conditional HEAD is answered from them too)
    const get = serve(up.fn, { key: "k2" }, { policy: stalling });
    const joined = await serve(up.fn, { key: "k2", method: "HEAD", h: { "if-none-match": '"e1"' } }, { policy: stalling });
    expect([joined.cacheStatus, joined.response.status]).toEqual(["MISS", 304]);
    expect(await get.catch((e: { code?: string }) => e.code)).toBe("GatewayTimeout");
    expect(up.calls()).toBe(2);
    expect(memory.peek("b/k")).toBeUndefined(); // (nothing stored: the body never came whole)
  });
});
