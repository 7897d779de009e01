/**
 * Two proxy processes on one config but for their disk folders, sharing a redis-server, in front
 * of the real S3 fixture: a fill through one is a Redis HIT on the other; a purge through one
 * reaches the other's memory and disk by its published message (not their TTL); Redis killed under load costs no request, shows
 * in /ready as degraded (still 200) and in the metrics, and the layer comes back by itself.
 * (The 3-replica haproxy cluster test builds on the same parts.)
 */
import { RedisClient } from "bun";
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { nowSec, sign } from "../fixtures/jwt.ts";
import { startRedis, type RedisServer } from "../fixtures/services.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "../e2e/harness.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SECRET = "redis-e2e-hs256-secret-0123456789abc";
const CREDS = { accessKeyId: "AKIAREDISE2E", secretAccessKey: "redis-e2e-secret" };
const KEYS = Array.from({ length: 20 }, (_, i) => `k${i}.txt`);

let s3: S3Fixture;
let redis: RedisServer;
let dir: string;
let a: ProxyProcess;
let b: ProxyProcess;
let admin: string;

const upstreamGets = (key: string) => s3.requests.filter((r) => !r.admin && r.method === "GET" && r.pathname === `/data/${key}`).length;

async function get(px: ProxyProcess, path: string) {
  const r = await fetch(px.url(path));
  return { status: r.status, x: r.headers.get("x-cache"), layer: r.headers.get("x-cache-layer"), body: await r.text() };
}

async function metric(px: ProxyProcess, line: string): Promise<string | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
  return text.split("\n").find((l) => l.startsWith(line));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "yata-redis-e2e-"));
  [s3, redis] = await Promise.all([startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...CREDS, buckets: ["data"] }] }), startRedis()]);
  for (const k of ["a.txt", "b.txt", ...KEYS]) await s3.put("data", k, `body of ${k}\n`);
  admin = await sign({ sub: "ops", role: "admin", exp: nowSec() + 600 }, { alg: "HS256", key: SECRET });
  // (Redis timeouts of 5 s: nothing here measures them (a killed Redis is a closed connection, seen
  // at once). At 300 ms a Redis slow to answer on a loaded host, right after its restart above
  // all, failed a store or a reconnect's commands: A's fill never reached Redis, or the layer came
  // back after the wait.)
  const config = `server: { address: 127.0.0.1, port: 0 }
metrics: { enabled: true, address: 127.0.0.1, port: 0 }
jwt:
  enabled: true
  algorithm: HS256
  secret: "${SECRET}"
  admin_claims: [{ claim: role, operator: equals, value: admin }]
cache:
  enabled: true
  cache_layers: [memory, disk, redis]
  memory: { max_item_size_mb: 1, max_cache_size_mb: 16, default_ttl_seconds: 600 }
  disk: { path: "\${DISK_DIR}", max_disk_size_mb: 64, max_item_size_mb: 16 }
  redis: { url: "\${REDIS_URL}", key_prefix: "e2e:", connect_timeout_ms: 5000, operation_timeout_ms: 5000 }
buckets:
${bucketYaml({ name: "c", prefix: "/c", bucket: "data", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: "    cache: { enabled: true }\n" })}`;
  // Each its own disk folder: both listen on port 0, so on one folder they were one instance
  // ("instance-0") to each other, each taking the other's lock and indexing, evicting and deleting
  // the other's files (the README: instances on one folder need distinct ports).
  const env = (name: string) => ({ REDIS_URL: redis.url, DISK_DIR: join(dir, name), YATAGARASU_PROBE_INTERVAL_MS: "100" });
  [a, b] = await Promise.all([startProxy(config, { env: env("a") }), startProxy(config, { env: env("b") })]);
  for (const px of [a, b]) await waitFor(async () => (await fetch(px.url("/ready"))).status === 200, { message: "the proxy to be ready" });
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([s3?.stop(), redis?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe("shared through Redis", () => {
  test("the two proxies share no disk folder: neither holds or warns of the other's lock", () => {
    for (const px of [a, b]) expect(px.logs().filter((l) => typeof l.msg === "string" && l.msg.includes("lock")).map((l) => l.msg)).toEqual([]);
  });

  test("a fill through one replica is a Redis HIT on the other (X-Cache-Layer says so), then a memory HIT", async () => {
    expect(await get(a, "/c/a.txt")).toMatchObject({ status: 200, x: "MISS", body: "body of a.txt\n" });
    // A's Redis fill lands after its answer: asking B before it is in Redis would be a MISS that B
    // fills into its own memory (then never a Redis HIT), so wait for the key first.
    await waitFor(async () => {
      const client = new RedisClient(redis.url);
      try {
        return await client.exists("e2e:obj:c/a.txt");
      } finally {
        client.close();
      }
    }, { message: "A's fill to reach Redis" });
    expect(await get(b, "/c/a.txt")).toMatchObject({ x: "HIT", layer: "redis", body: "body of a.txt\n" });
    expect(await get(b, "/c/a.txt")).toMatchObject({ x: "HIT", layer: "memory", body: "body of a.txt\n" });
    expect(upstreamGets("a.txt")).toBe(1);
  });

  test("a purge through one replica makes the next GET a miss on every replica (its published message, not the 600 s TTL)", async () => {
    await get(a, "/c/b.txt");
    await waitFor(async () => (await get(b, "/c/b.txt")).x === "HIT");
    // A's fill reaches its own memory only after Redis took it (putGuarded: shared layer first), so
    // B can hit in Redis a moment before A's memory holds it: A's answer then comes from Redis,
    // which copies it upward. Wait for A's memory to hold it before the purge.
    await waitFor(async () => (await get(a, "/c/b.txt")).layer === "memory", { message: "A's memory to hold b.txt" });
    const purged = await fetch(a.url("/admin/cache/purge/c/b.txt"), { method: "POST", headers: { authorization: `Bearer ${admin}` } });
    expect(purged.status).toBe(200);
    const before = upstreamGets("b.txt");
    // B's own memory and disk copies are dropped by the published invalidation (not by a TTL: 600 s).
    // The message takes under a millisecond on one host; the bound (10 s, it was 1 s) is a loaded
    // host's pause of either process, and still far below the TTL that would otherwise drop it.
    await waitFor(async () => (await get(b, "/c/b.txt")).x === "MISS", { timeoutMs: 10_000, message: "B to miss after A's purge" });
    expect(upstreamGets("b.txt")).toBe(before + 1);
  });
  test("a miss that comes after a fill answered but before Redis took the object joins that fill (the object was in no layer until then: a second upstream GET)", async () => {
    // 1 MiB: stored over the bulk connection (a large value takes a while to send); its EVAL held
    // by CLIENT PAUSE WRITE (reads go on) for as long as the store's deadline lets it wait
    await s3.put("data", "large.bin", "L".repeat(1 << 20));
    const client = new RedisClient(redis.url);
    try {
      await client.send("CLIENT", ["PAUSE", "5000", "WRITE"]);
      try {
        expect(await get(a, "/c/large.bin")).toMatchObject({ status: 200, x: "MISS" });
        expect((await get(a, "/c/large.bin")).status).toBe(200);
      } finally {
        await client.send("CLIENT", ["UNPAUSE"]);
      }
    } finally {
      client.close();
    }
    expect(upstreamGets("large.bin")).toBe(1);
  });
});

describe("Redis failure is not an outage", () => {
  test("Redis killed under load: 0 failed requests, /ready degraded but 200, layer_up 0; Redis back: the layer resumes by itself", async () => {
    let failed = 0;
    let done = 0;
    let stop = false;
    const load = async (px: ProxyProcess) => {
      for (let i = 0; !stop || done < 2000; i++) {
        const r = await fetch(px.url(`/c/${KEYS[i % KEYS.length]}`)).catch(() => undefined);
        if (r === undefined || r.status !== 200) failed++;
        else if ((await r.text()) !== `body of ${KEYS[i % KEYS.length]}\n`) failed++;
        done++;
      }
    };
    const running = Promise.all([load(a), load(b), load(a), load(b)]);
    await waitFor(() => done >= 200, { timeoutMs: 30_000 });
    await redis.kill();
    for (const px of [a, b]) {
      await waitFor(async () => {
        const r = await fetch(px.url("/ready"));
        const body = (await r.json()) as { degraded?: string[]; cache_layers?: Record<string, { up: boolean }> };
        return r.status === 200 && body.cache_layers?.redis?.up === false && body.degraded?.some((d) => d.startsWith("cache layer redis"));
      }, { message: "/ready to show the Redis layer degraded (still 200)" });
      expect(await metric(px, 'yatagarasu_cache_layer_up{layer="redis"}')).toBe('yatagarasu_cache_layer_up{layer="redis"} 0');
    }
    await waitFor(() => done >= 1500, { timeoutMs: 30_000 });
    await redis.start();
    stop = true;
    await running;
    expect(failed).toBe(0);
    expect(done).toBeGreaterThanOrEqual(2000);
    for (const px of [a, b]) {
      await waitFor(async () => (await metric(px, 'yatagarasu_cache_layer_up{layer="redis"}')) === 'yatagarasu_cache_layer_up{layer="redis"} 1', { timeoutMs: 15_000, message: "the layer to come back" }); // (reconnects back off up to 2.5 s)
      const ready = (await (await fetch(px.url("/ready"))).json()) as { degraded?: string[] };
      expect(ready.degraded ?? []).not.toContainEqual(expect.stringContaining("cache layer redis"));
      expect(px.logs().filter((l) => l.msg === "redis cache layer unavailable: skipped until it answers again")).toHaveLength(1);
    }
    // Shared again: a new fill through A is a Redis HIT on B.
    // Shared again: A's fill reaches Redis (written after A answered, so wait for the key before
    // asking B: a B request that came first would fill B's memory from S3 instead).
    await s3.put("data", "after.txt", "after\n");
    await get(a, "/c/after.txt");
    const client = new RedisClient(redis.url);
    try {
      await waitFor(async () => (await client.keys("e2e:*after.txt*")).length > 0, { message: "A's fill to reach Redis" });
    } finally {
      client.close();
    }
    expect((await get(b, "/c/after.txt")).layer).toBe("redis");
  }, 60_000);
});
