/**
 * The memory cache end to end: the real proxy process in front of the real S3 fixture, with
 * `fixture.requests` as the proof of what reached upstream.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { nowSec, sign } from "../fixtures/jwt.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SECRET = "e2e-cache-hs256-secret-0123456789";
const CREDS = { accessKeyId: "AKIAE2ECACHE", secretAccessKey: "e2e-cache-secret" };

let s3: S3Fixture;
let px: ProxyProcess;

/** GET/HEAD requests the proxy sent to S3 for one object (probes and seeding excluded). */
const upstream = (key: string, method?: string) => s3.requests.filter((r) => !r.admin && r.pathname === `/data/${key}` && (method === undefined || r.method === method));

function bucket(name: string, prefix: string, extra = "") {
  return bucketYaml({ name, prefix, bucket: "data", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra });
}

const bytes = (n: number, seed: number) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
};
const BIG = bytes(1_500_000, 7); // > max_item_size_mb: 1

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...CREDS, buckets: ["data"] }] });
  for (const k of ["headrange.txt", "headfill.txt", "hit.txt", "coalesce.txt", "cond.txt", "range.txt", "rangemiss.txt", "rangerefused.txt", "head.txt", "nocache.txt", "private-bucket.txt"]) await s3.put("data", k, `body of ${k}\n`);
  await s3.put("data", "range.bin", bytes(1000, 1));
  await s3.put("data", "big.bin", BIG);
  await s3.put("data", "bigrange.bin", BIG);
  await s3.put("data", "nostore.txt", "no-store body", { cacheControl: "no-store" });
  await s3.put("data", "private.txt", "private body", { cacheControl: "private, max-age=600" });
  await s3.put("data", "short.txt", "short-lived body", { cacheControl: "max-age=1" });
  px = await startProxy(`server: { address: 127.0.0.1, port: 0 }
jwt:
  enabled: true
  algorithm: HS256
  secret: "${SECRET}"
cache:
  enabled: true
  memory: { max_item_size_mb: 1, max_cache_size_mb: 64, default_ttl_seconds: 60 }
buckets:
${bucket("c", "/c", "    cache: { enabled: true }\n")}${bucket("nc", "/nc")}${bucket("pc", "/pc", "    cache: { enabled: true }\n    auth: { enabled: true, claims: [{ claim: role, operator: equals, value: reader }] }\n")}`);
});

afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

describe("hits and misses", () => {
  test("a client that leaves while its miss is being filled is logged 499 ClientClosedRequest with 0 bytes (it was logged 200 with the object's bytes) and the upstream time it waited; the fill goes on and the next GET is a HIT", async () => {
    await s3.put("data", "leaver.txt", "body of leaver.txt\n");
    s3.faults.set("/data/leaver.txt", { kind: "delay", ms: 1500, times: 1, method: "GET" });
    try {
      const ac = new AbortController();
      const res = fetch(px.url("/c/leaver.txt"), { signal: ac.signal, headers: { "x-request-id": "the-leaver" } }).catch(() => "aborted");
      await s3.waitForRequest((r) => r.method === "GET" && r.pathname === "/data/leaver.txt");
      ac.abort();
      expect(await res).toBe("aborted");
      const line = await px.waitForLog((l) => l.msg === "request" && l.request_id === "the-leaver");
      expect({ status: line.status, bytes: line.bytes, error: line.error, cache: line.cache }).toEqual({ status: 499, bytes: 0, error: "ClientClosedRequest", cache: "MISS" });
      // It waited on the upstream all along (its fill's attempt still in flight): not 0, as it was.
      expect(line.upstream_ms).toBeGreaterThan(0);
      expect(line.upstream_ms).toBeLessThanOrEqual(line.duration_ms as number);
    } finally {
      s3.faults.delete("/data/leaver.txt");
    }
    // The leaver is logged at once (not when the fill ends): a GET right after it joins the fill
    // still under way (MISS, coalesced, no second upstream GET) or finds it stored (HIT).
    const next = await fetch(px.url("/c/leaver.txt"));
    expect(await next.text()).toBe("body of leaver.txt\n");
    const after = await fetch(px.url("/c/leaver.txt"));
    expect([after.headers.get("x-cache"), await after.text()]).toEqual(["HIT", "body of leaver.txt\n"]);
    expect(upstream("leaver.txt", "GET")).toHaveLength(1);
  });

  test("the first GET is a MISS, the second a HIT with Age and no upstream request", async () => {
    const first = await fetch(px.url("/c/hit.txt"));
    expect(first.status).toBe(200);
    expect(first.headers.get("x-cache")).toBe("MISS");
    expect(await first.text()).toBe("body of hit.txt\n");
    expect(upstream("hit.txt")).toHaveLength(1);
    const second = await fetch(px.url("/c/hit.txt"));
    expect(second.status).toBe(200);
    expect(second.headers.get("x-cache")).toBe("HIT");
    expect(second.headers.get("age")).toMatch(/^\d+$/);
    expect(second.headers.get("content-length")).toBe("16");
    expect(await second.text()).toBe("body of hit.txt\n");
    expect(upstream("hit.txt")).toHaveLength(1);
  });

  test("50 concurrent misses for one key make exactly one upstream GET", async () => {
    s3.faults.set("/data/coalesce.txt", { kind: "delay", ms: 300, times: 1, method: "GET" });
    try {
      const all = await Promise.all(Array.from({ length: 50 }, () => fetch(px.url("/c/coalesce.txt")).then(async (r) => ({ status: r.status, body: await r.text(), x: r.headers.get("x-cache") }))));
      for (const r of all) expect(r).toEqual({ status: 200, body: "body of coalesce.txt\n", x: "MISS" });
      expect(upstream("coalesce.txt", "GET")).toHaveLength(1);
      expect(s3.faults.hits("/data/coalesce.txt")).toBe(1);
    } finally {
      s3.faults.delete("/data/coalesce.txt");
    }
  });

  test("HEAD on a cached object is answered from the cache", async () => {
    await (await fetch(px.url("/c/head.txt"))).text();
    const before = upstream("head.txt").length;
    const res = await fetch(px.url("/c/head.txt"), { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-cache")).toBe("HIT");
    expect(res.headers.get("content-length")).toBe("17");
    expect(await res.text()).toBe("");
    expect(upstream("head.txt")).toHaveLength(before);
  });
});

test("a HEAD miss fills the cache with the whole object: the next GET is a HIT with the full body", async () => {
  const head = await fetch(px.url("/c/headfill.txt"), { method: "HEAD" });
  expect(head.status).toBe(200);
  expect(head.headers.get("x-cache")).toBe("MISS");
  expect(head.headers.get("content-length")).toBe("21");
  expect(await head.text()).toBe("");
  expect(upstream("headfill.txt", "GET")).toHaveLength(1);
  const get = await fetch(px.url("/c/headfill.txt"));
  expect(get.headers.get("x-cache")).toBe("HIT");
  expect(await get.text()).toBe("body of headfill.txt\n");
  expect(upstream("headfill.txt")).toHaveLength(1);
});

describe("conditional and range requests", () => {
  test("If-None-Match on a cached object answers 304 from the cache", async () => {
    const first = await fetch(px.url("/c/cond.txt"));
    await first.text();
    const etag = first.headers.get("etag")!;
    expect(etag).toMatch(/^"[0-9a-f]{32}"$/);
    const before = upstream("cond.txt").length;
    const res = await fetch(px.url("/c/cond.txt"), { headers: { "if-none-match": etag } });
    expect(res.status).toBe(304);
    expect(res.headers.get("x-cache")).toBe("HIT");
    expect(res.headers.get("etag")).toBe(etag);
    expect(await res.text()).toBe("");
    expect(upstream("cond.txt")).toHaveLength(before);
  });

  test("Range on a cached object answers 206 with the right bytes from the cache; an unsatisfiable one 416", async () => {
    const full = bytes(1000, 1);
    await (await fetch(px.url("/c/range.bin"))).arrayBuffer();
    const before = upstream("range.bin").length;
    const res = await fetch(px.url("/c/range.bin"), { headers: { range: "bytes=100-199" } });
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe("bytes 100-199/1000");
    expect(res.headers.get("content-length")).toBe("100");
    expect(res.headers.get("x-cache")).toBe("HIT");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(full.slice(100, 200));
    const suffix = await fetch(px.url("/c/range.bin"), { headers: { range: "bytes=-10" } });
    expect(suffix.status).toBe(206);
    expect(suffix.headers.get("content-range")).toBe("bytes 990-999/1000");
    expect(new Uint8Array(await suffix.arrayBuffer())).toEqual(full.slice(990));
    const bad = await fetch(px.url("/c/range.bin"), { headers: { range: "bytes=5000-6000" } });
    expect(bad.status).toBe(416);
    expect(bad.headers.get("content-range")).toBe("bytes */1000");
    await bad.body?.cancel();
    expect(upstream("range.bin")).toHaveLength(before);
  });

  test("a HEAD with Range answers as on an uncached bucket (S3's HeadObject: 206 with the range's length, 416): miss, hit, and an object too large to cache", async () => {
    const head = async (path: string, range: string) => {
      const r = await fetch(px.url(path), { method: "HEAD", headers: { range } });
      expect((await r.arrayBuffer()).byteLength).toBe(0);
      return { status: r.status, length: r.headers.get("content-length"), range: r.headers.get("content-range") };
    };
    const want = { status: 206, length: "4", range: "bytes 2-5/22" };
    expect(await head("/nc/headrange.txt", "bytes=2-5")).toEqual(want);
    expect(await head("/c/headrange.txt", "bytes=2-5")).toEqual(want); // a miss
    await (await fetch(px.url("/c/headrange.txt"))).arrayBuffer(); // filled
    const hit = await fetch(px.url("/c/headrange.txt"), { method: "HEAD", headers: { range: "bytes=2-5" } });
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(await head("/c/headrange.txt", "bytes=2-5")).toEqual(want);
    expect(await head("/c/headrange.txt", "bytes=-3")).toEqual({ status: 206, length: "3", range: "bytes 19-21/22" });
    expect(await head("/c/headrange.txt", "bytes=100-")).toEqual({ status: 416, length: expect.any(String), range: "bytes */22" });
    expect(await head("/nc/headrange.txt", "bytes=100-")).toMatchObject({ status: 416, range: "bytes */22" });
    expect(await head("/c/bigrange.bin", "bytes=0-9")).toEqual({ status: 206, length: "10", range: `bytes 0-9/${BIG.length}` });
  });

  test("a Range miss goes upstream (BYPASS) and does not fill the cache", async () => {
    const res = await fetch(px.url("/c/rangemiss.txt"), { headers: { range: "bytes=0-3" } });
    expect(res.status).toBe(206);
    expect(res.headers.get("x-cache")).toBe("BYPASS");
    expect(res.headers.get("content-range")).toBe("bytes 0-3/22");
    expect(await res.text()).toBe("body");
    const seen = upstream("rangemiss.txt");
    expect(seen).toHaveLength(1);
    expect(seen[0].headers.range).toBe("bytes=0-3");
    const next = await fetch(px.url("/c/rangemiss.txt"));
    expect(next.headers.get("x-cache")).toBe("MISS");
    expect(await next.text()).toBe("body of rangemiss.txt\n");
    expect(upstream("rangemiss.txt")).toHaveLength(2);
  });

  test("the upstream's refusal of a Range miss (416, or 412 with If-Match) says X-Cache: BYPASS too, as every answer of a cached bucket", async () => {
    // Relayed as errors, they went out without X-Cache.
    const cases: Array<[Record<string, string>, number]> = [[{ range: "bytes=5000-" }, 416], [{ range: "bytes=0-1", "if-match": '"not-the-etag"' }, 412]];
    for (const [headers, status] of cases) {
      const res = await fetch(px.url("/c/rangerefused.txt"), { headers });
      await res.arrayBuffer();
      expect(`${res.status} ${res.headers.get("x-cache")}`).toBe(`${status} BYPASS`);
    }
  });
});

describe("what is not stored", () => {
  test("an object larger than max_item_size streams intact with X-Cache BYPASS and is not cached", async () => {
    for (let i = 1; i <= 2; i++) {
      const res = await fetch(px.url("/c/big.bin"));
      expect(res.status).toBe(200);
      expect(res.headers.get("x-cache")).toBe("BYPASS");
      const got = new Uint8Array(await res.arrayBuffer());
      expect(got.length).toBe(BIG.length);
      expect(Buffer.compare(got, BIG)).toBe(0);
      expect(upstream("big.bin", "GET")).toHaveLength(i);
    }
  });

  test("Cache-Control no-store and private objects are served but never stored", async () => {
    for (const [key, body] of [["nostore.txt", "no-store body"], ["private.txt", "private body"]]) {
      for (let i = 1; i <= 2; i++) {
        const res = await fetch(px.url(`/c/${key}`));
        expect(res.status).toBe(200);
        expect(res.headers.get("x-cache")).toBe("MISS");
        expect(await res.text()).toBe(body);
        expect(upstream(key, "GET")).toHaveLength(i);
      }
    }
  });

  test("a bucket without cache.enabled is never cached, even with the global cache on", async () => {
    for (let i = 1; i <= 2; i++) {
      const res = await fetch(px.url("/nc/nocache.txt"));
      expect(res.status).toBe(200);
      expect(res.headers.get("x-cache")).toBeNull();
      expect(await res.text()).toBe("body of nocache.txt\n");
      expect(upstream("nocache.txt", "GET")).toHaveLength(i);
    }
  });
});

describe("expiry", () => {
  test("after max-age elapses the next GET revalidates with If-None-Match, S3 answers 304, X-Cache REVALIDATED", async () => {
    const first = await fetch(px.url("/c/short.txt"));
    expect(first.headers.get("x-cache")).toBe("MISS");
    const etag = first.headers.get("etag")!;
    expect(await first.text()).toBe("short-lived body");
    // The condition is the TTL itself: wait until max-age=1 has elapsed.
    await new Promise((r) => setTimeout(r, 1100));
    const res = await fetch(px.url("/c/short.txt"));
    expect(res.status).toBe(200);
    expect(res.headers.get("x-cache")).toBe("REVALIDATED");
    expect(await res.text()).toBe("short-lived body");
    const seen = upstream("short.txt", "GET");
    expect(seen).toHaveLength(2);
    expect(seen[1].headers["if-none-match"]).toBe(etag);
    expect(seen[1].status).toBe(304);
    const hit = await fetch(px.url("/c/short.txt"));
    expect(hit.headers.get("x-cache")).toBe("HIT");
    await hit.text();
    expect(upstream("short.txt", "GET")).toHaveLength(2);
  });
});

describe("no auth bypass through the cache", () => {
  test("a cached private object still needs a valid token satisfying the claims", async () => {
    const reader = await sign({ sub: "r", role: "reader", exp: nowSec() + 600 }, { alg: "HS256", key: SECRET });
    const guest = await sign({ sub: "g", role: "guest", exp: nowSec() + 600 }, { alg: "HS256", key: SECRET });
    const fill = await fetch(px.url("/pc/private-bucket.txt"), { headers: { authorization: `Bearer ${reader}` } });
    expect(fill.headers.get("x-cache")).toBe("MISS");
    expect(await fill.text()).toBe("body of private-bucket.txt\n");
    const hit = await fetch(px.url("/pc/private-bucket.txt"), { headers: { authorization: `Bearer ${reader}` } });
    expect(hit.headers.get("x-cache")).toBe("HIT");
    await hit.text();

    const anon = await fetch(px.url("/pc/private-bucket.txt"));
    expect(anon.status).toBe(401);
    expect(anon.headers.get("x-cache")).toBeNull();
    expect(await anon.text()).not.toContain("body of private-bucket");
    const forbidden = await fetch(px.url("/pc/private-bucket.txt"), { headers: { authorization: `Bearer ${guest}` } });
    expect(forbidden.status).toBe(403);
    expect(forbidden.headers.get("x-cache")).toBeNull();
    expect(await forbidden.text()).not.toContain("body of private-bucket");
    const headAnon = await fetch(px.url("/pc/private-bucket.txt"), { method: "HEAD" });
    expect(headAnon.status).toBe(401);
    expect(upstream("private-bucket.txt")).toHaveLength(1);
  });
});
