/**
 * Rate limits shared through Redis, over HTTP: two proxy Apps (two "processes", each with its own
 * listener, limiter and Redis connection) behind a client that alternates between them, against a
 * real redis-server. The configured global limit holds for both together within ±10 %; Redis
 * killed mid-load gives no failed request (each App falls back to its local share); Redis back:
 * shared again, without a restart.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout } from "bun:test";
import { RedisClient } from "bun";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { RedisRateLimiter } from "../../src/limits/index.ts";
import { listenBun, type Listener } from "../../src/server.ts";
import { clientTest } from "../clients/run.ts";
import { startRedis, type RedisServer } from "../fixtures/services.ts";
import { recordingLogger } from "../helpers/logger.ts";
import { measureAdmitted } from "../helpers/rate.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const test = clientTest("redisServer");

const RATE = 60;
/** One second's worth: a client stall shorter than that costs no tokens (see measureAdmitted). */
const BURST = 60;

let redis: RedisServer;
let upstream: ReturnType<typeof Bun.serve>;
const apps: Array<{ app: App; listener: Listener; log: ReturnType<typeof recordingLogger> }> = [];
let configText = "";

const limiterOf = (app: App) => app.runtime.limiter as RedisRateLimiter;

beforeAll(async () => {
  redis = await startRedis();
  // A stand-in S3 that answers every read at once: the test is about admission, not objects.
  upstream = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok", { headers: { "content-type": "text/plain" } }) });
  const yaml =
    `server:\n` +
    `  address: 127.0.0.1\n` +
    `  port: 0\n` +
    `  rate_limit: { backend: redis, redis_url: "${redis.url}", redis_timeout_ms: 500, instances: 2, global: { requests_per_second: ${RATE}, burst: ${BURST} } }\n` +
    `buckets:\n` +
    `  - { name: pub, path_prefix: /pub, s3: { bucket: data, endpoint: "http://127.0.0.1:${upstream.port}" } }\n`;
  configText = yaml;
  for (let i = 0; i < 2; i++) {
    const config = parseConfig(yaml, { env: {} });
    const log = recordingLogger();
    const app = await App.create(config, { log, probeIntervalMs: 60_000 });
    apps.push({ app, listener: listenBun(app, config), log });
  }
  await Promise.all(apps.map(({ app }) => limiterOf(app).whenShared(true)));
});

afterAll(async () => {
  for (const { app, listener } of apps) {
    await listener.stop(true);
    app.close();
  }
  upstream?.stop(true);
  await redis?.stop();
});

async function get(app: number): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${apps[app].listener.port}/pub/x.txt`);
    await res.arrayBuffer();
    return res.status;
  } catch {
    return -1;
  }
}

/** Client loops alternating between the two Apps for `ms`, paced; every status is counted. */
async function load(ms: number, during?: (answered: () => number) => Promise<void>) {
  const statuses = new Map<number, number>();
  const t0 = performance.now();
  let n = 0;
  const loops = Array.from({ length: 4 }, async () => {
    while (performance.now() - t0 < ms) {
      const status = await get(n++ % 2);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      await Bun.sleep(2); // pacing (at most about 4 × 400 requests/s), not a wait
    }
  });
  await Promise.all([...loops, during?.(() => n)]);
  return statuses;
}

/**
 * The admitted rate of both Apps together (see measureAdmitted). `lanes` maps each lane to an App:
 * LOPSIDED sends seven requests of eight to the first App.
 */
const measure = (ms: number, lanes = [0, 1]) =>
  measureAdmitted(lanes.length, ms, async (lane) => {
    const status = await get(lanes[lane]);
    return status === 200 ? "admitted" : status === 429 ? "refused" : `status ${status}`;
  });

const LOPSIDED = [0, 0, 0, 0, 0, 0, 0, 1];
const firstAppShare = (m: { perLane: number[]; admitted: number }) => m.perLane.slice(0, 7).reduce((a, b) => a + b, 0) / m.admitted;

const within10 = (actual: number, expected: number) => {
  expect(actual).toBeGreaterThanOrEqual(expected * 0.9);
  expect(actual).toBeLessThanOrEqual(expected * 1.1);
};

/** A config with a per-address budget (`burst` requests) that does not refill during a test; `extra`: more rate_limit fields. */
const perIpConfig = (burst: number, extra = "") =>
  `server:\n` +
  `  address: 127.0.0.1\n` +
  `  port: 0\n` +
  `  rate_limit: { backend: redis, redis_url: "${redis.url}",${extra} redis_timeout_ms: 500, per_ip: { requests_per_second: 0.001, burst: ${burst} } }\n` +
  `buckets:\n` +
  `  - { name: pub, path_prefix: /pub, s3: { bucket: data, endpoint: "http://127.0.0.1:${upstream.port}" } }\n`;

describe("server.rate_limit.backend: redis", () => {
  test("two processes share the global limit: together they admit the configured rate (±10 %)", async () => {
    // Seven requests of eight go to the first App. Shared, it gets about 7/8 of the rate; were
    // each App limited alone (its 1/instances share), it could not pass half.
    const r = await measure(2000, LOPSIDED);
    expect([...r.other.keys()]).toEqual([]); // nothing failed
    expect(r.refused).toBeGreaterThan(r.admitted); // the limit was reached
    within10(r.admitted, RATE * r.seconds);
    expect(firstAppShare(r)).toBeGreaterThan(0.7);
  }, 15_000);

  test("Redis killed mid-load: no failed request (local shares); Redis back: shared again by itself", async () => {
    const during = await load(1500, async (answered) => {
      await waitFor(() => answered() >= 200, { message: "the load to be under way" }); // kill it mid-load, not before
      await redis.kill();
    });
    expect([...during.keys()].filter((s) => s !== 200 && s !== 429)).toEqual([]);
    expect(during.get(200)).toBeGreaterThan(0);
    await waitFor(() => apps.every(({ app }) => !limiterOf(app).shared), { message: "both Apps to decide locally" });
    for (const { log } of apps) expect(log.lines.filter((l) => l.level === "warn" && l.msg.includes("local share")).length).toBe(1);
    const ready = (await (await fetch(`http://127.0.0.1:${apps[0].listener.port}/ready`)).json()) as { rate_limit?: { backend: string; shared: boolean }; degraded?: string[] };
    expect(ready.rate_limit).toEqual({ backend: "redis", shared: false });
    expect(ready.degraded).toContain("rate limits: Redis unavailable, each process enforces its local share");
    expect(apps[0].app.metrics.render()).toMatch(/^yatagarasu_rate_limit_shared 0$/m);

    // Locally each App enforces 1/instances (1/2) of the rate: together, still about the rate.
    const local = await measure(1500);
    expect([...local.other.keys()]).toEqual([]);
    within10(local.admitted, RATE * local.seconds);
    for (const n of local.perLane) within10(n, (RATE / 2) * local.seconds);

    await redis.start();
    await Promise.all(apps.map(({ app }) => limiterOf(app).whenShared(true)));
    const back = await measure(1500, LOPSIDED);
    expect([...back.other.keys()]).toEqual([]);
    within10(back.admitted, RATE * back.seconds);
    expect(firstAppShare(back)).toBeGreaterThan(0.7); // shared again
    expect(apps[0].app.metrics.render()).toMatch(/^yatagarasu_rate_limit_shared 1$/m);
    for (const { log } of apps) expect(log.lines.filter((l) => l.msg === "rate limits are shared through Redis").length).toBe(2);
  }, 20_000);
});

test("a reload that keeps Redis shared logs nothing about it (each change is logged once)", async () => {
  const { app, log } = apps[0]!;
  await limiterOf(app).whenShared(true);
  const shared = () => log.lines.filter((l) => l.msg === "rate limits are shared through Redis").length;
  const before = shared();
  const r = await app.reload(undefined, { text: configText.replace("  port: 0\n", "  port: 0\n  request_timeout: 31\n"), file: "reload.yaml", baseDir: "/tmp" });
  expect(r.ok).toBe(true);
  const next = limiterOf(app);
  // shared once its first check found Redis (as it was: nothing to say)
  await next.whenShared(true);
  expect(shared()).toBe(before);
});

test("a reload that leaves the limits as they were keeps the budgets spent so far (no fresh local burst while a new connection finds Redis)", async () => {
  // Its own App, with a per-address budget (no other test here limits addresses) that does not refill during the test.
  const yaml = perIpConfig(2);
  const config = parseConfig(yaml, { env: {} });
  const app = await App.create(config, { log: recordingLogger(), probeIntervalMs: 60_000 });
  const listener = listenBun(app, config);
  try {
    await limiterOf(app).whenShared(true);
    const status = async () => {
      const res = await fetch(`http://127.0.0.1:${listener.port}/pub/x.txt`);
      await res.arrayBuffer();
      return res.status;
    };
    const spent: number[] = [];
    for (let i = 0; i < 3; i++) spent.push(await status());
    expect(spent).toEqual([200, 200, 429]);
    const r = await app.reload(undefined, { text: yaml.replace("  port: 0\n", "  port: 0\n  request_timeout: 31\n"), file: "reload.yaml", baseDir: "/tmp" });
    expect(r.ok).toBe(true);
    // A request arriving right after the swap: the client's budget is spent, whichever limiter decides.
    const first = await app.runtime.limiter!.check("127.0.0.1", "pub");
    expect(first.ok).toBe(false);
    const after: number[] = [];
    for (let i = 0; i < 3; i++) after.push(await status());
    expect(after).toEqual([429, 429, 429]);
  } finally {
    await listener.stop(true);
    app.close();
  }
});

test("server.rate_limit.redis_key_prefix keeps two deployments' limits apart on one Redis with the cache off (the prefix came only from cache.redis.key_prefix, which needs the cache's Redis layer)", async () => {
  const yaml = (prefix: string) => perIpConfig(1, ` redis_key_prefix: "${prefix}",`);
  const two = await Promise.all(["deploy-a:", "deploy-b:"].map((p) => App.create(parseConfig(yaml(p), { env: {} }), { log: recordingLogger(), probeIntervalMs: 60_000 })));
  try {
    await Promise.all(two.map((app) => limiterOf(app).whenShared(true)));
    // Each deployment's one-request budget for this address is its own.
    expect((await two[0]!.runtime.limiter!.check("10.9.9.9")).ok).toBe(true);
    expect((await two[1]!.runtime.limiter!.check("10.9.9.9")).ok).toBe(true);
    expect((await two[0]!.runtime.limiter!.check("10.9.9.9")).ok).toBe(false);
    const probe = new RedisClient(redis.url);
    try {
      expect(await probe.exists("deploy-a:rl:ip:10.9.9.9")).toBe(true);
      expect(await probe.exists("deploy-b:rl:ip:10.9.9.9")).toBe(true);
    } finally {
      probe.close();
    }
  } finally {
    for (const app of two) app.close();
  }
});

test("a reload that changes the limits: the new limiter is shared before it decides (it decided locally, with full local buckets, until its connection found Redis)", async () => {
  const yaml = perIpConfig(2, ` redis_key_prefix: "reload-change:",`);
  const app = await App.create(parseConfig(yaml, { env: {} }), { log: recordingLogger(), probeIntervalMs: 60_000 });
  try {
    await limiterOf(app).whenShared(true);
    for (let i = 0; i < 2; i++) expect((await app.runtime.limiter!.check("10.8.8.8", "pub")).ok).toBe(true);
    const before = app.runtime.limiter;
    // A bucket limit added: a new limiter (the per-address budget, in Redis, is the same and spent).
    const r = await app.reload(undefined, { text: yaml.replace("s3: { bucket: data,", "s3: { rate_limit: { requests_per_second: 1000 }, bucket: data,"), file: "reload.yaml", baseDir: "/tmp" });
    expect(r.ok).toBe(true);
    expect(app.runtime.limiter).not.toBe(before);
    expect(limiterOf(app).shared).toBe(true);
    expect((await app.runtime.limiter!.check("10.8.8.8", "pub")).ok).toBe(false);
  } finally {
    app.close();
  }
});
