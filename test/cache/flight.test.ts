import { beforeEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { Cache } from "../../src/cache/cache.ts";
import { capFreshness } from "../../src/cache/freshness.ts";
import { MemoryLayer } from "../../src/cache/memory.ts";
import { serveWithCache, type ServeArgs } from "../../src/cache/serve.ts";
import type { CacheLayer } from "../../src/cache/types.ts";
import { bytesOf, chunkedBody, controlledUpstream, tick } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const ETAG = '"v1"';
const LIMIT = 10_000;
const policy = { ttlSeconds: 600, defaultTtlSeconds: 3600, maxItemBytes: LIMIT };
let clock = 0;
let cache: Cache;
let memory: MemoryLayer;
let up: ReturnType<typeof controlledUpstream>;

beforeEach(() => {
  clock = 1_000_000;
  memory = new MemoryLayer(1 << 20, LIMIT);
  cache = new Cache([memory]);
  up = controlledUpstream();
});

function serve(h: Record<string, string> = {}, method: "GET" | "HEAD" = "GET", extra: Partial<ServeArgs> = {}) {
  return serveWithCache({ cache, bucket: "b", key: "k", method, reqHeaders: new Headers(h), policy, upstream: up.fn, now: () => clock, ...extra });
}
const ok = (size: number, headers: Record<string, string> = {}) =>
  new Response(bytesOf(size), { headers: { etag: ETAG, "content-length": String(size), ...headers } });
const bytes = async (r: Response) => new Uint8Array(await r.arrayBuffer());

describe("coalescing", () => {
  test("50 concurrent misses make exactly one upstream request; everyone gets the bytes", async () => {
    const all = Array.from({ length: 50 }, () => serve());
    await tick();
    expect(up.calls.length).toBe(1);
    expect(cache.inflight.size).toBe(1);
    up.respond(ok(1024));
    const results = await Promise.all(all);
    expect(results.map((r) => r.upstreamCalls).reduce((a, b) => a + b)).toBe(1);
    for (const r of results) {
      expect(r.cacheStatus).toBe("MISS");
      expect(r.response.headers.get("content-length")).toBe("1024");
      expect(await bytes(r.response)).toEqual(bytesOf(1024));
    }
    expect(cache.inflight.size).toBe(0);
    expect(cache.stats().buckets.b).toMatchObject({ misses: 50, coalesced: 49, hits: 0, items: 1 });
    expect((await serve()).cacheStatus).toBe("HIT");
    expect(up.calls.length).toBe(1);
  });

  test("read-after-write: a request that arrives after a purge of its key never joins the fill that began before it", async () => {
    for (const purge of [() => cache.delete("b/k"), () => cache.purgeBucket("b"), () => cache.purgeAll()]) {
      const before = serve(); // a fill of the old object begins
      await tick();
      const calls = up.calls.length;
      const joined = serve(); // concurrent with the write: may get the old object
      await tick();
      await purge(); // the write is answered after this
      const after = serve(); // sent after the write: must not get the old object
      await tick();
      expect(up.calls.length).toBe(calls + 1); // its own trip upstream
      up.respond(ok(10, { etag: '"old"' }));
      up.respond(ok(20, { etag: '"new"' }));
      expect((await before).response.headers.get("etag")).toBe('"old"');
      expect((await joined).response.headers.get("etag")).toBe('"old"');
      const fresh = await after;
      expect([fresh.response.headers.get("etag"), (await bytes(fresh.response)).byteLength]).toEqual(['"new"', 20]);
      // only the fill that began after the purge was stored
      expect((await serve()).response.headers.get("etag")).toBe('"new"');
      expect(cache.inflight.size).toBe(0);
      await cache.purgeAll();
    }
  });

  test("a thrown upstream error reaches every waiter, is not cached, and the next request retries", async () => {
    const boom = new Error("connect ECONNREFUSED");
    const all = Array.from({ length: 20 }, () => serve().then(() => "resolved", (e) => e));
    await tick();
    up.fail(boom);
    for (const r of await Promise.all(all)) expect(r).toBe(boom);
    expect(memory.stats().items).toBe(0);
    expect(cache.inflight.size).toBe(0);
    const next = serve();
    await tick();
    expect(up.calls.length).toBe(2);
    up.respond(ok(10));
    expect((await next).cacheStatus).toBe("MISS");
  });

  test("a non-200 (503) is replayed to every waiter with its body, and not cached", async () => {
    const all = Array.from({ length: 5 }, () => serve());
    await tick();
    up.respond(new Response("<Error><Code>SlowDown</Code></Error>", { status: 503, headers: { "x-amz-request-id": "R" } }));
    for (const r of await Promise.all(all)) {
      expect(r).toMatchObject({ cacheStatus: "MISS", passthrough: true });
      expect(r.response.status).toBe(503);
      expect(r.response.headers.get("x-amz-request-id")).toBe("R");
      expect(await r.response.text()).toContain("SlowDown");
    }
    expect(memory.stats().items).toBe(0);
    const next = serve();
    await tick();
    expect(up.calls.length).toBe(2);
    up.respond(ok(10));
    await next;
  });

  test("a 404 is not cached (the next request asks S3 again)", async () => {
    const first = serve();
    await tick();
    up.respond(new Response("nope", { status: 404 }));
    expect((await first).response.status).toBe(404);
    const second = serve();
    await tick();
    expect(up.calls.length).toBe(2);
    up.respond(new Response("nope", { status: 404 }));
    expect((await second).response.status).toBe(404);
  });
});

describe("a flight kept joinable while a shared layer (Redis) takes its object", () => {
  /** A shared layer that holds nothing and whose stores (putIf) wait until released. */
  const slowShared = () => {
    const held: Array<(stored: boolean) => void> = [];
    const stats = { items: 0, bytes: 0, evictions: 0, maxBytes: 0, buckets: {} };
    const layer: CacheLayer = {
      name: "redis",
      get: () => undefined,
      put: () => {},
      delete: () => false,
      purgePrefix: () => 0,
      stats: () => stats,
      fillToken: () => ["0", "0", "0"],
      putIf: () => new Promise<boolean>((resolve) => held.push(resolve)),
    };
    return { layer, release: () => held.splice(0).forEach((r) => r(true)) };
  };

  test("is joined while its object is fresh, and no longer once it is stale: that request asks upstream (it was answered the stale copy as fresh, never revalidated)", async () => {
    const shared = slowShared();
    cache = new Cache([memory, shared.layer]);
    const first = serve();
    await tick();
    up.respond(ok(100, { "cache-control": "max-age=1" }));
    expect((await first).cacheStatus).toBe("MISS");
    clock += 500;
    const fresh = await serve();
    expect([up.calls.length, await fresh.response.text()]).toEqual([1, new TextDecoder().decode(bytesOf(100))]);
    clock += 1000; // its store still under way
    const later = serve();
    await tick();
    expect(up.calls.length).toBe(2);
    up.respond(ok(100, { "cache-control": "max-age=1" }));
    expect((await later).cacheStatus).toBe("MISS");
    shared.release();
    await cache.idle();
  });
});

describe("a client that goes away while its fill is under way", () => {
  test("its request ends at once (ClientClosedRequest), the fill goes on for the others and the cache", async () => {
    const leaderGone = new AbortController();
    const waiterGone = new AbortController();
    const leader = serve({}, "GET", { signal: leaderGone.signal });
    await tick();
    const waiter = serve({}, "GET", { signal: waiterGone.signal });
    const stays = serve();
    await tick();
    expect(up.calls.length).toBe(1);
    const reason = new Error("client gone");
    leaderGone.abort(reason);
    waiterGone.abort(reason);
    // Both settle while the upstream has not answered (it answers only below). Before the fix both
    // stayed pending until it did (a drain cut short then exited before their access lines were
    // written): this await never ended, and the test timed out.
    const settled = await Promise.allSettled([leader, waiter]);
    expect(settled.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    up.respond(ok(1024));
    const r = await stays;
    expect(r.cacheStatus).toBe("MISS");
    expect(await bytes(r.response)).toEqual(bytesOf(1024));
    expect((await serve()).cacheStatus).toBe("HIT");
    expect(up.calls.length).toBe(1);
  });

  test("a leader's own stream that arrives after its client left is cancelled", async () => {
    const gone = new AbortController();
    const leader = serve({}, "GET", { signal: gone.signal });
    await tick();
    gone.abort(new Error("client gone"));
    // (settled before the upstream answers, below)
    expect(await leader.then(() => "answered", (e: Error) => e.message)).toBe("client gone");
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        c.enqueue(bytesOf(1024));
      },
      cancel() {
        cancelled = true;
      },
    });
    up.respond(new Response(body, { headers: { etag: ETAG, "content-length": String(LIMIT * 10) } })); // too big to store: streamed to the leader only
    for (let i = 0; i < 20 && !cancelled; i++) await tick();
    expect(cancelled).toBe(true);
  });
});

describe("object size", () => {
  test("known length over the limit: the leader streams it, waiters go upstream themselves, nothing stored", async () => {
    const leader = serve();
    const waiters = [serve(), serve()];
    await tick();
    up.respond(ok(LIMIT + 1));
    const l = await leader;
    expect(l).toMatchObject({ cacheStatus: "BYPASS", upstreamCalls: 1, passthrough: true });
    expect(await bytes(l.response)).toEqual(bytesOf(LIMIT + 1));
    await tick();
    expect(up.calls.length).toBe(3);
    while (up.waiting > 0) up.respond(ok(LIMIT + 1));
    for (const w of await Promise.all(waiters)) {
      expect(w).toMatchObject({ cacheStatus: "BYPASS", upstreamCalls: 1 });
      expect((await bytes(w.response)).length).toBe(LIMIT + 1);
    }
    expect(memory.stats().items).toBe(0);
  });

  test("unknown length crossing the limit mid-stream: the whole body is delivered, nothing stored", async () => {
    const leader = serve();
    await tick();
    up.respond(new Response(chunkedBody(25, 1000), { headers: { etag: ETAG } })); // 25 000 bytes > 10 000
    const l = await leader;
    expect(l.cacheStatus).toBe("BYPASS");
    const got = await bytes(l.response);
    expect(got.length).toBe(25_000);
    for (let i = 0; i < 25; i++) expect(got[i * 1000]).toBe(i);
    expect(memory.stats().items).toBe(0);
  });

  test("unknown length under the limit is buffered and stored with its real Content-Length", async () => {
    const leader = serve();
    await tick();
    up.respond(new Response(chunkedBody(5, 1000), { headers: { etag: ETAG } }));
    const l = await leader;
    expect(l.cacheStatus).toBe("MISS");
    expect(l.response.headers.get("content-length")).toBe("5000");
    expect(memory.stats().items).toBe(1);
  });

  test("HEAD on an oversize miss: headers only", async () => {
    const leader = serve({}, "HEAD");
    await tick();
    up.respond(ok(LIMIT + 1));
    const l = await leader;
    expect(l.cacheStatus).toBe("BYPASS");
    expect(l.response.body).toBeNull();
    expect(l.response.headers.get("content-length")).toBe(String(LIMIT + 1));
  });

  test("oversize miss with a matching If-None-Match → 304 without sending the body", async () => {
    const leader = serve({ "if-none-match": ETAG });
    await tick();
    up.respond(ok(LIMIT + 1));
    const l = await leader;
    expect(l.response.status).toBe(304);
    expect(l.response.headers.get("etag")).toBe(ETAG);
  });
});

describe("defensive", () => {
  test("a body shorter than its Content-Length (e.g. a HEAD answer to a fill) is neither stored nor shared", async () => {
    const head = serve({}, "HEAD");
    const get = serve();
    await tick();
    up.respond(new Response(null, { headers: { etag: ETAG, "content-length": "1024" } }));
    const h = await head;
    // (the HEAD is answered from the 200's head, as soon as it is read: MISS; the body is not its concern)
    expect(h.cacheStatus).toBe("MISS");
    expect(h.response.headers.get("content-length")).toBe("1024");
    await tick();
    expect(up.calls.length).toBe(2); // the GET waiter asked upstream itself
    up.respond(ok(1024));
    expect((await bytes((await get).response)).length).toBe(1024);
    expect(memory.stats().items).toBe(0);
  });
});

describe("an answer marked with capFreshness (a secondary replica's)", () => {
  test("a fill is shared with the waiters of its flight, stored for the cap only, then revalidated; an unmarked answer gets its own freshness again", async () => {
    const all = [serve(), serve({}, "HEAD")];
    await tick();
    up.respond(capFreshness(ok(100, { "cache-control": "max-age=3600" }), 5));
    for (const r of await Promise.all(all)) expect(r.cacheStatus).toBe("MISS");
    expect(up.calls.length).toBe(1);
    expect(memory.get("b/k")?.expiresAt).toBe(clock + 5000);
    clock += 4999;
    expect((await serve({}, "HEAD")).cacheStatus).toBe("HIT");
    clock += 1;
    const next = serve();
    await tick();
    expect(up.calls.at(-1)).toEqual({ "if-none-match": ETAG });
    up.respond(new Response(null, { status: 304, headers: { etag: ETAG } })); // the primary's
    expect((await next).cacheStatus).toBe("REVALIDATED");
    expect(memory.get("b/k")?.expiresAt).toBe(clock + 3_600_000); // its own max-age again
  });

  test("a 304 refreshes a stored entry for the cap only", async () => {
    const first = serve();
    await tick();
    up.respond(ok(100));
    await first;
    expect(memory.get("b/k")?.expiresAt).toBe(clock + 600_000);
    clock += 600_000;
    const all = [serve(), serve({}, "HEAD")];
    await tick();
    up.respond(capFreshness(new Response(null, { status: 304, headers: { etag: ETAG } }), 2));
    for (const r of await Promise.all(all)) expect(r.cacheStatus).toBe("REVALIDATED");
    expect(memory.get("b/k")?.expiresAt).toBe(clock + 2000);
    clock += 2000;
    const again = serve();
    await tick();
    expect(up.calls.length).toBe(3);
    up.respond(ok(100));
    expect((await again).cacheStatus).toBe("MISS");
  });

  test("no-store stays unstored; a TTL shorter than the cap is kept", async () => {
    const a = serve();
    await tick();
    up.respond(capFreshness(ok(10, { "cache-control": "no-store" }), 5));
    expect((await a).cacheStatus).toBe("MISS");
    expect(memory.stats().items).toBe(0);
    const b = serve();
    await tick();
    up.respond(capFreshness(ok(10, { "cache-control": "max-age=1" }), 5));
    await b;
    expect(memory.get("b/k")?.expiresAt).toBe(clock + 1000);
  });
});

describe("a stale entry", () => {
  test("a stale entry replaced by a 200 that is not stored itself (no-store; too big) is dropped, not kept to be asked about again", async () => {
    for (const replacement of [ok(10, { etag: '"v2"', "cache-control": "no-store" }), ok(LIMIT + 1, { etag: '"v2"' })]) {
      const first = serve();
      await tick();
      up.respond(ok(10, { "cache-control": "max-age=1" }));
      await first;
      expect(memory.stats().items).toBe(1);
      clock += 2000; // stale: revalidated with its validators
      const next = serve();
      await tick();
      expect(up.calls.at(-1)?.["if-none-match"]).toBe(ETAG);
      up.respond(replacement);
      expect((await next).cacheStatus).toBe(replacement.headers.get("cache-control") === "no-store" ? "MISS" : "BYPASS");
      expect(memory.stats().items).toBe(0);
      // the next request asks without validators of an object the upstream no longer has
      const after = serve();
      await tick();
      expect(up.calls.at(-1)?.["if-none-match"]).toBeUndefined();
      up.respond(ok(10, { etag: '"v2"', "cache-control": "no-store" }));
      await after;
    }
  });
});

describe("Range on a miss", () => {
  test("goes upstream with the client's range and validators, BYPASS, nothing stored", async () => {
    const r = serve({ range: "bytes=0-9", "if-match": ETAG, "user-agent": "x" });
    await tick();
    expect(up.calls[0]).toEqual({ range: "bytes=0-9", "if-match": ETAG });
    up.respond(new Response(bytesOf(10), { status: 206, headers: { "content-range": "bytes 0-9/100" } }));
    const res = await r;
    expect(res).toMatchObject({ cacheStatus: "BYPASS", upstreamCalls: 1, passthrough: true });
    expect(res.response.status).toBe(206);
    expect(memory.stats().items).toBe(0);
  });

  test("joins a fill already in flight and is answered from its bytes", async () => {
    const full = serve();
    const ranged = serve({ range: "bytes=-4" });
    await tick();
    expect(up.calls.length).toBe(1);
    up.respond(ok(100));
    await full;
    const r = (await ranged).response;
    expect(r.status).toBe(206);
    expect(r.headers.get("content-range")).toBe("bytes 96-99/100");
    expect(await bytes(r)).toEqual(bytesOf(100).subarray(96));
  });
});

describe("an upstream answer that comes with Age (an upstream cache held it: RFC 9111 §4.2.3)", () => {
  test("is fresh for what is left of its lifetime, and every answer from it counts the age it came with", async () => {
    const first = serve();
    await tick();
    up.respond(ok(100, { "cache-control": "public, max-age=600", age: "500" }));
    const miss = await first;
    expect([miss.cacheStatus, miss.response.headers.get("age")]).toEqual(["MISS", "500"]);
    expect(memory.get("b/k")?.expiresAt).toBe(clock + 100_000);
    clock += 40_000;
    const hit = await serve();
    expect([hit.cacheStatus, hit.response.headers.get("age")]).toEqual(["HIT", "540"]);
    const head304 = await serve({ "if-none-match": ETAG });
    expect([head304.response.status, head304.response.headers.get("age")]).toEqual([304, "540"]);
    clock += 60_000; // 600 s old: stale, revalidated
    const next = serve();
    await tick();
    expect(up.calls.at(-1)).toEqual({ "if-none-match": ETAG });
    up.respond(new Response(null, { status: 304, headers: { etag: ETAG } })); // from the origin: age 0
    const revalidated = await next;
    expect([revalidated.cacheStatus, revalidated.response.headers.get("age")]).toEqual(["REVALIDATED", "0"]);
    expect(memory.get("b/k")?.expiresAt).toBe(clock + 600_000);
  });

  test("one already past its lifetime is stale on arrival: the next request revalidates", async () => {
    const first = serve();
    await tick();
    up.respond(ok(100, { "cache-control": "max-age=60", age: "90" }));
    expect((await first).response.headers.get("age")).toBe("90");
    const next = serve();
    await tick();
    expect(up.calls.length).toBe(2);
    up.respond(new Response(null, { status: 304, headers: { etag: ETAG, age: "7" } }));
    const revalidated = await next;
    expect([revalidated.cacheStatus, revalidated.response.headers.get("age")]).toEqual(["REVALIDATED", "7"]);
    expect(memory.get("b/k")?.expiresAt).toBe(clock + 53_000);
  });
});
