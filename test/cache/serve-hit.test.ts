import { beforeEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { Cache } from "../../src/cache/cache.ts";
import { MemoryLayer } from "../../src/cache/memory.ts";
import { serveWithCache, type ServeArgs } from "../../src/cache/serve.ts";
import { ProxyError } from "../../src/errors.ts";
import { bytesOf, instantUpstream } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const ETAG = '"0123456789abcdef"';
const LM = "Wed, 21 Oct 2015 07:28:00 GMT";
const SIZE = 1000;
const BODY = bytesOf(SIZE);
const s3Headers = {
  etag: ETAG,
  "last-modified": LM,
  "content-type": "application/octet-stream",
  "content-length": String(SIZE),
  "x-amz-meta-color": "blue",
  "x-amz-request-id": "REQ1",
};

// (after LM: an If-Modified-Since later than the clock is ignored)
const T0 = Date.UTC(2026, 0, 1);
let clock = T0;
let cache: Cache;
let up: ReturnType<typeof instantUpstream>;
const policy = { ttlSeconds: 600, defaultTtlSeconds: 3600, maxItemBytes: 10_000 };

function serve(h: Record<string, string> = {}, method: "GET" | "HEAD" = "GET", extra: Partial<ServeArgs> = {}) {
  return serveWithCache({ cache, bucket: "b", key: "obj.bin", method, reqHeaders: new Headers(h), policy, upstream: up.fn, now: () => clock, ...extra });
}
const bytes = async (r: Response) => new Uint8Array(await r.arrayBuffer());

beforeEach(async () => {
  clock = T0;
  cache = new Cache([new MemoryLayer(1 << 20, 10_000)]);
  // (the upstream's clock the test's: its Date is when it answers)
  up = instantUpstream(() => new Response(BODY, { headers: { ...s3Headers, date: new Date(clock).toUTCString() } }));
  const first = await serve();
  expect(first.cacheStatus).toBe("MISS");
  expect(first.upstreamCalls).toBe(1);
  expect(first.response.headers.get("x-cache")).toBe("MISS");
  expect(await bytes(first.response)).toEqual(BODY);
});

describe("HIT", () => {
  test("full body from memory with stored headers, Age and X-Cache", async () => {
    clock += 7_500;
    const r = await serve();
    expect(r).toMatchObject({ cacheStatus: "HIT", upstreamCalls: 0, passthrough: false });
    const h = r.response.headers;
    expect(r.response.status).toBe(200);
    expect(h.get("x-cache")).toBe("HIT");
    expect(h.get("age")).toBe("7");
    expect(h.get("etag")).toBe(ETAG);
    expect(h.get("last-modified")).toBe(LM);
    expect(h.get("content-length")).toBe("1000");
    expect(h.get("content-type")).toBe("application/octet-stream");
    expect(h.get("x-amz-meta-color")).toBe("blue");
    expect(h.get("accept-ranges")).toBe("bytes");
    expect(h.get("x-amz-request-id")).toBeNull(); // not stored
    expect(await bytes(r.response)).toEqual(BODY);
    expect(up.calls.length).toBe(1);
    expect(cache.stats().buckets.b).toMatchObject({ hits: 1, misses: 1, items: 1 });
  });

  test("responses share the prebuilt headers safely, and Age moves with the clock", async () => {
    const a = (await serve()).response;
    const b = (await serve()).response;
    a.headers.set("x-request-id", "one");
    expect(b.headers.get("x-request-id")).toBeNull();
    expect((await serve()).response.headers.get("x-request-id")).toBeNull();
    clock += 2_000;
    expect((await serve()).response.headers.get("age")).toBe("2");
  });

  test("HEAD: headers and the object's Content-Length, no body", async () => {
    const r = await serve({}, "HEAD");
    expect(r.cacheStatus).toBe("HIT");
    expect(r.response.headers.get("content-length")).toBe("1000");
    expect(r.response.body).toBeNull();
  });
});

describe("Range from a cached body", () => {
  const range = async (spec: string) => (await serve({ range: spec })).response;
  test.each([
    ["bytes=0-0", 0, 0],
    ["bytes=999-999", 999, 999],
    ["bytes=-10", 990, 999],
    ["bytes=990-", 990, 999],
    ["bytes=100-199", 100, 199],
    ["bytes=500-5000", 500, 999],
  ])("%s → 206", async (spec, s, e) => {
    const r = await range(spec);
    expect(r.status).toBe(206);
    expect(r.headers.get("content-range")).toBe(`bytes ${s}-${e}/1000`);
    expect(r.headers.get("content-length")).toBe(String(e - s + 1));
    expect(r.headers.get("x-cache")).toBe("HIT");
    expect(await bytes(r)).toEqual(BODY.subarray(s, e + 1));
    expect(up.calls.length).toBe(1);
  });

  test("the prebuilt 206 base keeps Age current and never leaks a previous Content-Range", async () => {
    await range("bytes=0-9");
    clock += 3_000;
    const r = await range("bytes=10-");
    expect(r.headers.get("age")).toBe("3");
    expect(r.headers.get("content-range")).toBe("bytes 10-999/1000");
    expect(r.headers.get("content-length")).toBe("990");
    const full = (await serve()).response;
    expect(full.headers.get("content-range")).toBeNull();
    expect(full.headers.get("content-length")).toBe("1000");
  });

  test("unsatisfiable → 416 ProxyError with Content-Range: bytes */size", async () => {
    for (const spec of ["bytes=1000-", "bytes=-0"]) {
      const err = await serve({ range: spec }).catch((e) => e);
      expect(err).toBeInstanceOf(ProxyError);
      expect(err.status).toBe(416);
      expect(err.headers).toEqual({ "content-range": "bytes */1000", "x-cache": "HIT", "x-cache-layer": "memory" });
    }
  });

  test("a HEAD with Range answers as the GET would, without the body (S3's HeadObject; an uncached bucket alike)", async () => {
    const head = (await serve({ range: "bytes=2-5" }, "HEAD")).response;
    expect(head.status).toBe(206);
    expect(head.headers.get("content-range")).toBe("bytes 2-5/1000");
    expect(head.headers.get("content-length")).toBe("4");
    expect(head.body).toBeNull();
    const err = await serve({ range: "bytes=1000-" }, "HEAD").catch((e) => e);
    expect(err).toBeInstanceOf(ProxyError);
    expect(err.status).toBe(416);
    expect((await serve({ range: "bytes=0-1,5-6" }, "HEAD")).response.status).toBe(200);
  });

  test("ignored ranges and a failing If-Range get the full 200", async () => {
    expect((await range("bytes=0-1,5-6")).status).toBe(200);
    expect((await range("items=0-1")).status).toBe(200);
    expect((await serve({ range: "bytes=0-1", "if-range": '"old"' })).response.status).toBe(200);
    expect((await serve({ range: "bytes=0-1", "if-range": ETAG })).response.status).toBe(206);
    expect((await serve({ range: "bytes=0-1", "if-range": LM })).response.status).toBe(206);
  });

  test("If-Range with Last-Modified matches only when the entry's upstream Date is a second or more after it (RFC 9110 §8.8.2.2)", async () => {
    // An object stored in the very second it was last modified (by the upstream's Date): it may
    // have changed again within that second, under the same Last-Modified. The date is then a weak
    // validator: the whole 200.
    const lm = Date.parse(LM);
    for (const [storedAt, status] of [[lm + 400, 200], [lm + 999, 200], [lm + 1000, 206]] as const) {
      clock = storedAt;
      cache = new Cache([new MemoryLayer(1 << 20, 10_000)]);
      await bytes((await serve()).response);
      clock = storedAt + 5_000;
      const hit = await serve({ range: "bytes=0-1", "if-range": LM });
      expect(`${storedAt - lm}: ${hit.cacheStatus} ${hit.response.status}`).toBe(`${storedAt - lm}: HIT ${status}`);
      await hit.response.arrayBuffer();
      // (a weak entity-tag never matches either)
      expect((await serve({ range: "bytes=0-1", "if-range": `W/${ETAG}` })).response.status).toBe(200);
    }
  });
});

describe("conditionals from cache", () => {
  test("If-None-Match / If-Modified-Since → 304 with validators, no body", async () => {
    for (const h of <Record<string, string>[]>[{ "if-none-match": ETAG }, { "if-none-match": `"x", W/${ETAG}` }, { "if-modified-since": LM }]) {
      const r = await serve(h);
      expect(r.cacheStatus).toBe("HIT");
      expect(r.response.status).toBe(304);
      expect(r.response.headers.get("etag")).toBe(ETAG);
      expect(r.response.headers.get("last-modified")).toBe(LM);
      expect(r.response.body).toBeNull();
    }
    expect((await serve({ "if-none-match": '"other"' })).response.status).toBe(200);
    expect((await serve({ "if-modified-since": "Tue, 20 Oct 2015 07:28:00 GMT" })).response.status).toBe(200);
    expect(up.calls.length).toBe(1);
  });

  test("an If-Modified-Since later than now is ignored, as S3 does: 200, not 304 (GET and HEAD)", async () => {
    const future = new Date(clock + 86_400_000).toUTCString();
    for (const method of ["GET", "HEAD"] as const) {
      const r = await serve({ "if-modified-since": future }, method);
      expect(r.cacheStatus).toBe("HIT");
      expect(r.response.status).toBe(200);
    }
    // the current second itself is not later than now
    clock += 1_500;
    expect((await serve({ "if-modified-since": new Date(clock).toUTCString() })).response.status).toBe(304);
    expect(up.calls.length).toBe(1);
  });

  test("an object whose Expires has passed is revalidated on its next use, not served from the cache for the TTL", async () => {
    const expired = { ...s3Headers, expires: "Thu, 01 Jan 2015 00:00:00 GMT" };
    up = instantUpstream((extra) => (extra["if-none-match"] === ETAG ? new Response(null, { status: 304, headers: { etag: ETAG } }) : new Response(BODY, { headers: expired })));
    expect((await serve({}, "GET", { key: "old.bin" })).cacheStatus).toBe("MISS");
    clock += 1_000;
    const again = await serve({}, "GET", { key: "old.bin" });
    expect(again.cacheStatus).toBe("REVALIDATED");
    expect(await bytes(again.response)).toEqual(BODY);
    expect(up.calls).toEqual([{}, { "if-none-match": ETAG }]);
  });

  test("If-Match / If-Unmodified-Since failures → 412 ProxyError", async () => {
    for (const h of <Record<string, string>[]>[{ "if-match": '"other"' }, { "if-unmodified-since": "Tue, 20 Oct 2015 07:28:00 GMT" }]) {
      const err = await serve(h).catch((e) => e);
      expect(err).toBeInstanceOf(ProxyError);
      expect(err.code).toBe("PreconditionFailed");
      // a HIT names its layer, whatever its status (README: "A HIT says where it came from")
      expect(err.headers).toEqual({ "x-cache": "HIT", "x-cache-layer": "memory" });
    }
    expect((await serve({ "if-match": ETAG })).response.status).toBe(200);
  });

  test("the prebuilt 304 follows Age", async () => {
    expect((await serve({ "if-none-match": ETAG })).response.headers.get("age")).toBe("0");
    clock += 4_000;
    const r = (await serve({ "if-none-match": ETAG })).response;
    expect(r.headers.get("age")).toBe("4");
    expect(r.headers.get("x-cache")).toBe("HIT");
    expect(r.headers.get("content-length")).toBeNull();
  });

  test("304 beats Range", async () => {
    expect((await serve({ "if-none-match": ETAG, range: "bytes=0-1" })).response.status).toBe(304);
  });

  test("a conditional request on a miss fills the cache and answers 304 locally", async () => {
    await cache.purgeAll();
    const r = await serve({ "if-none-match": ETAG });
    expect(r).toMatchObject({ cacheStatus: "MISS", upstreamCalls: 1 });
    expect(r.response.status).toBe(304);
    expect(up.calls.at(-1)).toEqual({}); // the client's validators are not forwarded on a fill
    expect((await serve()).cacheStatus).toBe("HIT");
  });
});

describe("a 304 for an answer passed on from the upstream (too large to store: BYPASS)", () => {
  const big = { ...s3Headers, "cache-control": "max-age=60", expires: "Thu, 01 Jan 2099 00:00:00 GMT" };
  const tiny = { ttlSeconds: 600, defaultTtlSeconds: 3600, maxItemBytes: 100 };

  test("carries what its 200 carries: the cache headers, and no Age of its own (RFC 9110 §15.4.5, RFC 9111 §5.1)", async () => {
    up = instantUpstream(() => new Response(BODY, { headers: big }));
    const whole = await serve({}, "GET", { policy: tiny, key: "big.bin" });
    expect(whole.cacheStatus).toBe("BYPASS");
    await whole.response.arrayBuffer();
    const r = await serve({ "if-none-match": ETAG }, "GET", { policy: tiny, key: "big.bin" });
    expect([r.cacheStatus, r.response.status]).toEqual(["BYPASS", 304]);
    const h = r.response.headers;
    for (const name of ["etag", "last-modified", "cache-control", "expires"]) expect(`${name}: ${h.get(name)}`).toBe(`${name}: ${whole.response.headers.get(name)}`);
    expect(whole.response.headers.get("age")).toBeNull();
    expect(h.get("age")).toBeNull();
  });

  test("an upstream's own Age (a cache behind this one) is carried, as its 200 carries it", async () => {
    up = instantUpstream(() => new Response(BODY, { headers: { ...big, age: "42" } }));
    const r = await serve({ "if-none-match": ETAG }, "GET", { policy: tiny, key: "big.bin" });
    expect([r.cacheStatus, r.response.status, r.response.headers.get("age")]).toEqual(["BYPASS", 304, "42"]);
  });
});
