/**
 * Start-up with a Redis layer: the process listens once its first connection to Redis (and the
 * catch-up) is done, so its first request is served from a warm Redis (until 2026-12-06 the first
 * one or two requests missed it while it connected, and went to S3); a Redis that does not answer
 * delays the start by connect_timeout_ms + operation_timeout_ms at most. Likewise the rate limits
 * shared through Redis: a new process's first requests are counted in them (until 2026-12-06 they
 * were decided locally, with full buckets, until it had found Redis). A stop signal during that
 * wait stops the process before it serves, as one while its config loads does; a scrape of the
 * primary's metrics while its children wait is not held for them, and a child whose primary dies
 * meanwhile stops instead of serving on alone.
 */
import { RedisClient } from "bun";
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startRedis, type RedisServer } from "../fixtures/services.ts";
import { bucketYaml, command, startProxy } from "../e2e/harness.ts";
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "../helpers/wait.ts";
import { alive, childrenOf } from "../helpers/procs.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers on a loaded machine need more.
setDefaultTimeout(60_000);

const CREDS = { accessKeyId: "AKIAREDISSTART", secretAccessKey: "redis-start-secret" };
let s3: S3Fixture;
let redis: RedisServer;

beforeAll(async () => {
  [s3, redis] = await Promise.all([startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...CREDS, buckets: ["data"] }] }), startRedis()]);
  await s3.put("data", "a.txt", "body of a.txt\n");
});

afterAll(async () => {
  await Promise.all([s3?.stop(), redis?.stop()]);
});

/** `ms`: connect_timeout_ms and operation_timeout_ms (300: a silent Redis's bounded wait; a live Redis's tests, which measure no wait, allow 5000). */
const config = (url: string, ms = 300) => `server: { address: 127.0.0.1, port: 0 }
cache: { enabled: true, cache_layers: [memory, redis], redis: { url: "${url}", key_prefix: "start:", connect_timeout_ms: ${ms}, operation_timeout_ms: ${ms} } }
buckets:
${bucketYaml({ name: "c", prefix: "/c", bucket: "data", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: "    cache: { enabled: true }\n" })}`;

const upstreamGets = () => s3.requests.filter((r) => !r.admin && r.method === "GET" && r.pathname === "/data/a.txt").length;

// 300 ms was a MISS on a loaded host (bun test --parallel=2): the start gave up on a Redis that answered later
const LIVE_MS = 5000;

test("a process's first request, as soon as it listens, is a HIT from a warm Redis", async () => {
  const a = await startProxy(config(redis.url, LIVE_MS));
  try {
    await waitFor(async () => (await fetch(a.url("/ready"))).status === 200, { message: "the proxy to be ready" });
    expect((await fetch(a.url("/c/a.txt"))).headers.get("x-cache")).toBe("MISS");
    const client = new RedisClient(redis.url);
    try {
      await waitFor(async () => await client.exists("start:obj:c/a.txt"), { message: "the fill to reach Redis" });
    } finally {
      client.close();
    }
  } finally {
    await a.stop();
  }
  const before = upstreamGets();
  for (let i = 0; i < 3; i++) {
    const b = await startProxy(config(redis.url, LIVE_MS));
    try {
      const r = await fetch(b.url("/c/a.txt"));
      expect({ status: r.status, x: r.headers.get("x-cache"), layer: r.headers.get("x-cache-layer"), body: await r.text() }).toEqual({ status: 200, x: "HIT", layer: "redis", body: "body of a.txt\n" });
    } finally {
      await b.stop();
    }
  }
  expect(upstreamGets()).toBe(before);
});

// These four run at once: each mostly waits on a Redis of its own that never answers, and has
// its own proxy; none of them counts the fixture's requests, Redis keys or another's logs.
test.concurrent("a Redis that accepts the connection but never answers delays the start by a bounded time, then is skipped", async () => {
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    const t0 = performance.now();
    const p = await startProxy(config(`redis://127.0.0.1:${silent.port}`));
    try {
      // connect_timeout_ms + operation_timeout_ms (600 ms) at most, plus a loaded machine's start-up.
      expect(performance.now() - t0).toBeLessThan(10_000);
      const r = await fetch(p.url("/c/a.txt"));
      expect({ status: r.status, body: await r.text() }).toEqual({ status: 200, body: "body of a.txt\n" });
      const ready = (await (await fetch(p.url("/ready"))).json()) as { cache_layers: { redis: { up: boolean } } };
      expect(ready.cache_layers.redis.up).toBe(false);
    } finally {
      await p.stop();
    }
  } finally {
    silent.stop(true);
  }
});

// (no wall-clock bound: 12 s from the spawn, which a loaded host's start-up alone exceeded. What the
// cap guards is that the process listens before its first connection's attempt has run out: with
// timeouts of 60 s each that attempt, and the layer's first state, "connecting", lasts 60 s at
// least; a start that waited it out listens with the layer "down", after the harness gave up.)
test.concurrent("with Redis timeouts of 60 s each, a Redis that never answers delays the start by the 5 s cap only (it waited connect_timeout_ms + operation_timeout_ms): it listens while its first connection is still being tried", async () => {
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    const p = await startProxy(config(`redis://127.0.0.1:${silent.port}`, 60_000));
    try {
      const ready = (await (await fetch(p.url("/ready"))).json()) as { cache_layers: { redis: { up: boolean; state: string } } };
      expect(ready.cache_layers.redis).toMatchObject({ up: false, state: "connecting" });
      expect((await fetch(p.url("/c/a.txt"))).status).toBe(200);
    } finally {
      await p.stop();
    }
  } finally {
    silent.stop(true);
  }
});

test.concurrent("a child whose primary is killed while the child waits for Redis stops, and never listens alone on the port", async () => {
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  let child: number | undefined;
  try {
    const px = await startProxy(pairConfig(silent.port, "orphan:", 2000));
    try {
      await px.waitForLog((l) => l.msg === "primary started");
      [child] = await waitForChildren(px, 1, silent.port);
      px.signal("SIGKILL");
      await px.exited;
      // (until 2026-12-06 it missed the primary's going while it waited: it listened once the wait
      // was over and served on alone for good, holding the port a restarted primary then could not take)
      await waitFor(() => !alive(child!), { timeoutMs: 10_000, message: "the orphaned child to exit" });
      expect(px.logs().filter((l) => l.msg === "listening" && l.worker === 1)).toHaveLength(1);
    } finally {
      await px.stop();
    }
  } finally {
    if (child !== undefined && alive(child)) process.kill(child, "SIGKILL");
    silent.stop(true);
  }
});

test.concurrent("a scrape of the primary's metrics while its children wait for Redis is answered at once, not after a second", async () => {
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    const px = await startProxy(`server: { address: 127.0.0.1, port: 0, workers: 3 }
metrics: { enabled: true, address: 127.0.0.1, port: 0 }
cache: { enabled: true, cache_layers: [memory, redis], redis: { url: "redis://127.0.0.1:${silent.port}", key_prefix: "scrape:", connect_timeout_ms: 5000, operation_timeout_ms: 5000 } }
buckets:
${bucketYaml({ name: "c", prefix: "/c", bucket: "data", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey })}`);
    try {
      // (the primary waited for Redis in vain: the children it starts with the group do not wait
      // again; their replacements do, as a process starting alone does)
      await px.waitForLog((l) => l.msg === "primary started", 30_000);
      await waitForChildren(px, 2, silent.port);
      const took: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        const r = await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`);
        expect(r.status).toBe(200);
        expect(await r.text()).toContain("yatagarasu_http_requests_total");
        took.push(performance.now() - t0);
      }
      // (until 2026-12-06 each waited a second for the starting children, which answer no scrape before they serve)
      expect(Math.min(...took)).toBeLessThan(500);
      expect(px.logs().filter((l) => l.msg === "listening").map((l) => l.worker as number).sort()).toEqual([0, 1, 2]);
    } finally {
      await px.stop();
    }
  } finally {
    silent.stop(true);
  }
});

test("a process's first requests, as soon as it listens, are counted in the shared rate limits", async () => {
  const limited = `server:
  address: 127.0.0.1
  port: 0
  rate_limit: { backend: redis, redis_url: "${redis.url}", redis_timeout_ms: 200, global: { requests_per_second: 0.01, burst: 3 } }
buckets:
${bucketYaml({ name: "c", prefix: "/c", bucket: "data", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey })}`;
  const a = await startProxy(limited);
  try {
    await waitFor(async () => ((await (await fetch(a.url("/ready"))).json()) as { rate_limit?: { shared?: boolean } }).rate_limit?.shared === true, { message: "the limits to be shared" });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await fetch(a.url("/c/a.txt"))).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
  } finally {
    await a.stop();
  }
  // The shared budget is spent (it refills one request per 100 s): a new process's first request is refused too.
  const b = await startProxy(limited);
  try {
    expect((await fetch(b.url("/c/a.txt"))).status).toBe(429);
  } finally {
    await b.stop();
  }
});

for (const workers of [1, 2]) {
  test(`a stop signal while the start waits for Redis exits 0 at once, before serving (workers: ${workers})`, async () => {
    // Accepts the connections and never answers: the start waits connect_timeout_ms + operation_timeout_ms (20 s).
    let connections = 0;
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: () => void connections++, data() {} } });
    const dir = mkdtempSync(join(tmpdir(), "yata-redis-start-"));
    try {
      const file = join(dir, "config.yaml");
      writeFileSync(
        file,
        `server: { address: 127.0.0.1, port: 0, workers: ${workers} }
cache: { enabled: true, cache_layers: [memory, redis], redis: { url: "redis://127.0.0.1:${silent.port}", key_prefix: "stop:", connect_timeout_ms: 10000, operation_timeout_ms: 10000 } }
buckets:
${bucketYaml({ name: "c", prefix: "/c", bucket: "data", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey })}`,
      );
      const p = Bun.spawn([...command(), "--config", file], { stdout: "pipe", stderr: "pipe" });
      const out = new Response(p.stdout).text();
      const err = new Response(p.stderr).text();
      // (until 2026-12-06 it waited the whole wait out, then listened, started its children and drained)
      await waitFor(() => connections > 0, { message: "the proxy to connect to Redis" });
      const t0 = performance.now();
      p.kill("SIGTERM");
      const code = await p.exited;
      const ms = performance.now() - t0;
      const lines = (await out).split("\n").filter(Boolean).map((l) => JSON.parse(l) as { msg: string; signal?: string });
      expect({ code, stderr: await err }).toEqual({ code: 0, stderr: "" });
      expect(lines.filter((l) => l.msg === "listening" || l.msg === "primary started")).toEqual([]);
      expect(lines.find((l) => l.msg === "stopped before serving")?.signal).toBe("SIGTERM");
      expect(ms).toBeLessThan(8_000);
    } finally {
      silent.stop(true);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** Whether process `pid` holds a TCP connection to 127.0.0.1:`port` (its socket inodes in /proc/net/tcp). */
function connectedTo(pid: number, port: number): boolean {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`, { encoding: "utf8" }) ?? "");
      if (m) inodes.add(m[1]!);
    }
  } catch {
    return false;
  }
  const remote = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1).some((l) => {
    const f = l.trim().split(/\s+/);
    return f[2] === remote && inodes.has(f[9]!);
  });
}

/**
 * The group's `n` children have listened (without waiting for the silent Redis at `port`: the
 * primary did); each is then killed, and its replacement is waiting for that Redis. Their pids.
 */
async function waitForChildren(px: Awaited<ReturnType<typeof startProxy>>, n: number, port: number): Promise<number[]> {
  await waitFor(() => px.logs().filter((l) => l.msg === "listening" && l.worker !== 0).length === n, { timeoutMs: 20_000, message: "the children to listen" });
  const first = childrenOf(px.proc.pid);
  for (const pid of first) process.kill(pid, "SIGKILL");
  return waitFor(
    () => {
      const waiting = childrenOf(px.proc.pid).filter((pid) => !first.includes(pid) && connectedTo(pid, port));
      return waiting.length === n ? waiting : undefined;
    },
    { timeoutMs: 20_000, message: "the restarted children to wait for Redis" },
  );
}

/** A group of two whose cache's Redis is at `port`, with both its timeouts `ms`. */
const pairConfig = (port: number, prefix: string, ms: number) => `server: { address: 127.0.0.1, port: 0, workers: 2 }
cache: { enabled: true, cache_layers: [memory, redis], redis: { url: "redis://127.0.0.1:${port}", key_prefix: "${prefix}", connect_timeout_ms: ${ms}, operation_timeout_ms: ${ms} } }
buckets:
${bucketYaml({ name: "c", prefix: "/c", bucket: "data", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey })}`;

test("a group whose primary waited for Redis in vain: its children do not wait again (they listened up to 5 s after it)", async () => {
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    const px = await startProxy(pairConfig(silent.port, "twice:", 2500));
    try {
      await px.waitForLog((l) => l.msg === "primary started", 30_000);
      const t0 = performance.now();
      await px.waitForLog((l) => l.msg === "listening" && l.worker === 1, 30_000);
      // a child's own start-up only (the wait is 5 s)
      expect(performance.now() - t0).toBeLessThan(3_000);
    } finally {
      await px.stop();
    }
  } finally {
    silent.stop(true);
  }
});
