/**
 * The README's ACL line (Running several replicas → What the Redis must allow) is enough: a Redis
 * user created with exactly that line runs the cache layer (fills through the purge generations,
 * a large item over its own connections, purges of a key, a bucket and everything, a replica's
 * catch-up from the stream) and the shared rate limits, with no command refused.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout } from "bun:test";
import { RedisClient } from "bun";
import { Cache } from "../../src/cache/cache.ts";
import { MemoryLayer } from "../../src/cache/memory.ts";
import { RedisLayer } from "../../src/cache/redis.ts";
import { serveWithCache } from "../../src/cache/serve.ts";
import { RedisRateLimiter } from "../../src/limits/redis-limiter.ts";
import { clientTest } from "../clients/run.ts";
import { startRedis, type RedisServer } from "../fixtures/services.ts";
import { recordingLogger } from "../helpers/logger.ts";
import { waitFor } from "../helpers/wait.ts";
import { bytesOf, instantUpstream, object } from "./helpers.ts";

setDefaultTimeout(30_000);
const test = clientTest("redisServer");

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

/** The ACL SETUSER line of the README, with its PASSWORD placeholder filled in. */
async function readmeAcl(password: string): Promise<string[]> {
  const readme = await Bun.file(new URL("../../README.md", import.meta.url)).text();
  const line = readme.split("\n").map((l) => l.trim()).find((l) => l.startsWith("ACL SETUSER yatagarasu "));
  if (line === undefined) throw new Error("README: no ACL SETUSER yatagarasu line");
  return line.split(/\s+/).slice(1).map((w) => (w === ">PASSWORD" ? `>${password}` : w));
}

test.each(["", "/1"])("a Redis user created with the README's ACL line runs the cache layer and the shared rate limits, nothing refused (URL path %p)", async (db) => {
  const admin = new RedisClient(redis.url);
  await admin.send("ACL", await readmeAcl("Acl-pw-42"));
  const url = redis.url.replace("redis://", "redis://yatagarasu:Acl-pw-42@") + db;
  if (db !== "") await admin.send("SELECT", [db.slice(1)]);
  const log = recordingLogger();
  const layers: RedisLayer[] = [];
  const newLayer = async () => {
    const l = new RedisLayer({ url, keyPrefix: "yatagarasu:", maxItemBytes: 8 << 20, connectTimeoutMs: 1000, operationTimeoutMs: 1000, log, minBackoffMs: 20, maxBackoffMs: 200 });
    layers.push(l);
    await waitFor(() => l.health().up, { message: () => `the layer up (${l.health().reason})` });
    return l;
  };
  const limiter = new RedisRateLimiter({ server: { rate_limit: { enabled: true, global: { requests_per_second: 1000, burst: 1000 }, per_ip: { requests_per_second: 100, burst: 100, max_entries: 1000, idle_seconds: 60 } } }, buckets: [] }, { url, timeoutMs: 500, share: 1, log, retryMs: 50 });
  try {
    const aRedis = await newLayer();
    const aMemory = new MemoryLayer(16 << 20, 8 << 20);
    const a = new Cache([aMemory, aRedis]);
    // a fill: fillToken and putIf (the generations), small and large (its own connections)
    for (const [key, size] of [["k", 3000], ["big", 2 << 20]] as const) {
      const up = instantUpstream(() => new Response(bytesOf(size), { headers: { etag: '"x"', "content-length": String(size) } }));
      const args = { bucket: "b", key, method: "GET" as const, reqHeaders: new Headers(), policy: { defaultTtlSeconds: 60, maxItemBytes: 8 << 20 }, upstream: up.fn };
      expect((await serveWithCache({ ...args, cache: a })).cacheStatus).toBe("MISS");
      await waitFor(() => admin.exists(`yatagarasu:obj:b/${key}`), { message: `${key} to reach Redis` });
      const got = await aRedis.get(`b/${key}`);
      expect(got?.size).toBe(size);
      expect(new Uint8Array(await got!.body.arrayBuffer())).toEqual(bytesOf(size));
    }
    // purges, while a second replica is away; it catches up from the stream when it comes
    await a.purgeObject("b", "k");
    await a.purgeBucket("b");
    await a.purgeAll();
    const bMemory = new MemoryLayer(1 << 20, 1 << 20);
    const b = new Cache([bMemory, await newLayer()]);
    b.put(object("c/1", 10, { etag: '"r"' }, Date.now(), 60));
    await a.purgeBucket("c");
    await waitFor(() => bMemory.peek("c/1") === undefined, { message: "the purge to reach the second replica" });
    // the limits: shared, and a check runs the script
    await limiter.whenShared(true);
    expect((await limiter.check("10.0.0.1")).ok).toBe(true);
    expect(limiter.shared).toBe(true);
    for (const l of layers) expect(l.errors()).toBe(0);
    expect(log.lines.filter((x) => x.level !== "info")).toEqual([]);
    expect(JSON.stringify(log.lines)).not.toContain("NOPERM");
  } finally {
    limiter.close();
    for (const l of layers) l.close();
    await admin.send("ACL", ["DELUSER", "yatagarasu"]);
    admin.close();
  }
});

test("a user made with the ACL line of a release before STRLEN (no +strlen) still gets its large entries: read as before, not a miss each", async () => {
  const admin = new RedisClient(redis.url);
  await admin.send("ACL", (await readmeAcl("Acl-pw-43")).filter((w) => w !== "+strlen"));
  const url = redis.url.replace("redis://", "redis://yatagarasu:Acl-pw-43@");
  const log = recordingLogger();
  const layer = new RedisLayer({ url, keyPrefix: "yatagarasu:", maxItemBytes: 8 << 20, connectTimeoutMs: 1000, operationTimeoutMs: 1000, log, minBackoffMs: 20, maxBackoffMs: 200 });
  try {
    await waitFor(() => layer.health().up, { message: () => `the layer up (${layer.health().reason})` });
    const size = 2 << 20;
    const up = instantUpstream(() => new Response(bytesOf(size), { headers: { etag: '"x"', "content-length": String(size) } }));
    const args = { bucket: "b", key: "old-acl", method: "GET" as const, reqHeaders: new Headers(), policy: { defaultTtlSeconds: 60, maxItemBytes: 8 << 20 }, upstream: up.fn };
    expect((await serveWithCache({ ...args, cache: new Cache([layer]) })).cacheStatus).toBe("MISS");
    await waitFor(() => admin.exists("yatagarasu:obj:b/old-acl"), { message: "the entry to reach Redis" });
    for (let i = 0; i < 2; i++) {
      const got = await layer.get("b/old-acl");
      expect(got?.size).toBe(size);
      expect(new Uint8Array(await got!.body.arrayBuffer())).toEqual(bytesOf(size));
    }
    expect(layer.errors()).toBe(0);
  } finally {
    layer.close();
    await admin.send("ACL", ["DELUSER", "yatagarasu"]);
    admin.close();
  }
});
