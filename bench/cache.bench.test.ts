import { expect, test, setDefaultTimeout } from "bun:test";

// Figures, not assertions on time; on a loaded machine a measurement can take longer than bun's 5 s default.
setDefaultTimeout(120_000);
import { Cache } from "../src/cache/cache.ts";
import { makeObject } from "../src/cache/freshness.ts";
import { MemoryLayer } from "../src/cache/memory.ts";
import { serveWithCache } from "../src/cache/serve.ts";
import { measure as measureOps, measureAsync as measureOpsAsync } from "./measure.ts";

/** ns per op of `fn` (bench/measure.ts: the fastest of its rounds). */
const measure = (fn: () => unknown, iterations = 500_000, warmup = 50_000): number => measureOps(fn, iterations, warmup);
const measureAsync = (fn: () => Promise<unknown>, iterations = 200_000, warmup = 20_000): Promise<number> => measureOpsAsync(fn, iterations, warmup);

const report = (label: string, ns: number) => console.log(`${label}: ${ns.toFixed(0)} ns/op`);

const S3_HEADERS = {
  etag: '"9b2cf535f27731c974343645a3985328"',
  "last-modified": "Wed, 21 Oct 2015 07:28:00 GMT",
  "content-type": "image/jpeg",
  "cache-control": "max-age=600",
};
const N = 10_000;
const keys = Array.from({ length: N }, (_, i) => `products/photos/2024/${i}/IMG_${i}.jpg`);
const body = new Blob([new Uint8Array(1024).fill(7)]);

function filledCache(): { cache: Cache; memory: MemoryLayer } {
  const memory = new MemoryLayer(1 << 30, 10 << 20);
  const now = Date.now();
  for (const k of keys) memory.put(makeObject(k, body, { ...S3_HEADERS }, now, 3600));
  return { cache: new Cache([memory]), memory };
}

test("memory LRU get of a present key among 10k entries", () => {
  const { memory } = filledCache();
  const same = keys[5000]!;
  let i = 0;
  const nsSame = measure(() => memory.get(same));
  const nsCycling = measure(() => memory.get(keys[(i = (i + 7919) % N)]!)); // relinks every time
  report("memory get, same key (already most recent)", nsSame);
  report("memory get, cycling over 10k keys (LRU relink)", nsCycling);
  expect(nsCycling).toBeLessThan(5_000);
});

test("serveWithCache HIT → Response (1 KiB)", async () => {
  const { cache } = filledCache();
  const reqHeaders = new Headers({ "user-agent": "bench/1.0", accept: "*/*" });
  const policy = { ttlSeconds: 600, defaultTtlSeconds: 3600, maxItemBytes: 10 << 20 };
  const upstream = () => Promise.reject(new Error("must not be called"));
  const args = { cache, bucket: "products", key: "photos/2024/42/IMG_42.jpg", method: "GET" as const, reqHeaders, policy, upstream };
  const first = await serveWithCache(args);
  expect(first.cacheStatus).toBe("HIT");
  expect(first.response.headers.get("content-length")).toBe("1024");

  const ns = await measureAsync(() => serveWithCache(args));
  report("serveWithCache HIT → Response (awaited, incl. Date.now, 5 header lookups)", ns);
  const rangeArgs = { ...args, reqHeaders: new Headers({ range: "bytes=0-99" }) };
  const nsRange = await measureAsync(() => serveWithCache(rangeArgs));
  report("serveWithCache HIT with Range → 206", nsRange);
  const condArgs = { ...args, reqHeaders: new Headers({ "if-none-match": S3_HEADERS.etag }) };
  const nsCond = await measureAsync(() => serveWithCache(condArgs));
  report("serveWithCache HIT with If-None-Match → 304", nsCond);
  const baseline = measure(() => new Response(body));
  report("baseline: new Response(blob) with no headers", baseline);
  expect(ns).toBeLessThan(20_000);
});
