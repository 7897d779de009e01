/**
 * Entries the previous release (5d9d45c) wrote into a layer that outlives the process (disk, Redis)
 * and this release would not store. An answer of an object encrypted with a customer key (SSE-C:
 * x-amz-server-side-encryption-customer-algorithm among its stored headers), which a fill never has
 * the key for, was stored and served as a HIT to every reader; this release stores none, but the
 * copies the previous release left on disk and in Redis were still served, to every reader, until
 * their TTL, and a look-alike's 304 without the header kept them fresh for ever.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { Cache } from "../../src/cache/cache.ts";
import { MemoryLayer } from "../../src/cache/memory.ts";
import { serveWithCache } from "../../src/cache/serve.ts";
import { bytesOf, instantUpstream, object } from "./helpers.ts";

setDefaultTimeout(30_000);

const SSEC = { "x-amz-server-side-encryption-customer-algorithm": "AES256", "x-amz-server-side-encryption-customer-key-md5": "bWQ1bWQ1bWQ1bWQ1bWQ1bQ==" };
const policy = { ttlSeconds: 60, defaultTtlSeconds: 3600, maxItemBytes: 1 << 20 };

test("an SSE-C entry a previous release left in a lower layer is a miss, deleted there, and the upstream is asked (never a HIT)", async () => {
  const memory = new MemoryLayer(1 << 20, 1 << 20);
  const lower = new MemoryLayer(1 << 20, 1 << 20);
  const cache = new Cache([memory, lower]);
  const now = Date.now();
  await lower.put(object("b/secret", 100, { etag: '"s"', ...SSEC }, now, 60));
  await lower.put(object("b/plain", 100, { etag: '"p"', "x-amz-server-side-encryption": "AES256" }, now, 60));
  expect(await cache.get("b/secret", undefined, undefined, policy)).toBeUndefined();
  expect(lower.peek("b/secret")).toBeUndefined();
  // (SSE-S3 and SSE-KMS answers are stored and served as before)
  expect((await cache.get("b/plain", undefined, undefined, policy))?.headers["x-amz-server-side-encryption"]).toBe("AES256");

  await lower.put(object("b/secret", 100, { etag: '"s"', ...SSEC }, now, 60));
  const up = instantUpstream(() => new Response(bytesOf(100), { headers: { etag: '"s"', "content-length": "100", ...SSEC } }));
  const served = await serveWithCache({ cache, bucket: "b", key: "secret", method: "GET", reqHeaders: new Headers(), policy, upstream: up.fn });
  expect(served.cacheStatus).toBe("MISS");
  expect(up.calls).toHaveLength(1);
  await cache.idle();
  expect(memory.peek("b/secret")).toBeUndefined();
  expect(lower.peek("b/secret")).toBeUndefined();
});
