/**
 * Replicas with memory + disk + a shared Redis layer against one "S3" (a map the upstream reads):
 *
 * - a replica restarted on its disk folder does not serve what was overwritten or deleted while it
 *   was down: its restored entries are held until it replayed the purge stream from the position
 *   its disk saved (or dropped when that position is missing or trimmed away, or while Redis is
 *   unreachable at start);
 * - a fill that began before a write and ends after the write's purge stores its (old) object
 *   nowhere: not in Redis, not in its own memory or disk (the purge generations in Redis).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { RedisClient } from "bun";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cache } from "../../src/cache/cache.ts";
import { DiskLayer } from "../../src/cache/disk.ts";
import { MemoryLayer } from "../../src/cache/memory.ts";
import { RedisLayer } from "../../src/cache/redis.ts";
import { serveWithCache } from "../../src/cache/serve.ts";
import { startRedis, type RedisServer } from "../fixtures/services.ts";
import { waitFor } from "../helpers/wait.ts";
import { tcpRelay } from "./relay.ts";

setDefaultTimeout(30_000);

let redis: RedisServer;
let raw: RedisClient;
let root: string;
const open: Cache[] = [];

beforeAll(async () => {
  redis = await startRedis();
  raw = new RedisClient(redis.url);
  await raw.connect();
  root = mkdtempSync(join(tmpdir(), "yata-redis-consistency-"));
});
afterAll(async () => {
  await Promise.all(open.map((c) => c.close()));
  raw?.close();
  await redis?.stop();
  rmSync(root, { recursive: true, force: true });
});

/** The object store behind every replica: key → body (absent: 404). */
function s3() {
  const objects = new Map<string, string>();
  const calls: string[] = [];
  /** Calls held by the test: each resolves with what the store held when it was made. */
  const held: { key: string; body: string | undefined; release: () => void }[] = [];
  let holding = false;
  const answer = (body: string | undefined) =>
    body === undefined ? new Response("<Error><Code>NoSuchKey</Code></Error>", { status: 404 }) : new Response(body, { headers: { etag: `"${Bun.hash(body).toString(16)}"`, "content-length": String(body.length) } });
  const upstream = (key: string) => () => {
    calls.push(key);
    const body = objects.get(key);
    if (!holding) return Promise.resolve(answer(body));
    return new Promise<Response>((resolve) => held.push({ key, body, release: () => resolve(answer(body)) }));
  };
  return { objects, calls, held, upstream, hold: (on: boolean) => (holding = on) };
}

type Lines = { level: string; msg: string }[];
function replica(opts: { prefix: string; dir?: string; url?: string; disk?: boolean; instance?: string; log?: Lines; runIdTouchMs?: number }): { cache: Cache; redis: RedisLayer; disk?: DiskLayer; memory: MemoryLayer } {
  const lines = opts.log;
  const log = lines && { info: (msg: string) => void lines.push({ level: "info", msg }), warn: (msg: string) => void lines.push({ level: "warn", msg }) };
  const r = new RedisLayer({ url: opts.url ?? redis.url, keyPrefix: opts.prefix, maxItemBytes: 1 << 20, connectTimeoutMs: 300, operationTimeoutMs: 300, minBackoffMs: 20, maxBackoffMs: 100, log, runIdTouchMs: opts.runIdTouchMs });
  const layers = [];
  const memory = new MemoryLayer(1 << 20, 1 << 20);
  layers.push(memory);
  const disk = opts.dir !== undefined ? new DiskLayer({ dir: opts.dir, maxBytes: 1 << 24, maxItemBytes: 1 << 20, instance: opts.instance }) : undefined;
  // (its listeners bound, as cli.ts says once they are: its position is written only then)
  disk?.claimLock();
  if (disk) layers.push(disk);
  layers.push(r);
  const cache = new Cache(layers);
  open.push(cache);
  return { cache, redis: r, disk, memory };
}

async function read(cache: Cache, store: ReturnType<typeof s3>, key: string) {
  const res = await serveWithCache({ cache, bucket: "b", key, method: "GET", reqHeaders: new Headers(), policy: { defaultTtlSeconds: 600, maxItemBytes: 1 << 20 }, upstream: store.upstream("b/" + key) });
  return { status: res.response.status, x: res.cacheStatus, layer: res.response.headers.get("x-cache-layer"), body: await res.response.text() };
}

const up = (r: RedisLayer) => waitFor(() => r.health().up, { message: "the redis layer to come up" });

/** `use` with a client of the Redis at `url`, closed after. */
async function withRedis<T>(url: string, use: (c: RedisClient) => Promise<T>): Promise<T> {
  const c = new RedisClient(url);
  await c.connect();
  try {
    return await use(c);
  } finally {
    c.close();
  }
}

/** A fills x and y ("old x", "old y") from the store; waits until both are in the Redis at `url`. */
async function fillOldXY(a: { cache: Cache }, store: ReturnType<typeof s3>, prefix: string, url: string): Promise<void> {
  store.objects.set("b/x", "old x");
  store.objects.set("b/y", "old y");
  expect(await read(a.cache, store, "x")).toMatchObject({ x: "MISS", body: "old x" });
  expect(await read(a.cache, store, "y")).toMatchObject({ x: "MISS", body: "old y" });
  await withRedis(url, (check) => waitFor(async () => (await check.exists(prefix + "obj:b/x")) && (await check.exists(prefix + "obj:b/y")), { message: "the fills to reach Redis" }));
}

/** A: fills k1, k2, k3 into its disk; stops. Returns its folder. */
async function firstLife(prefix: string, store: ReturnType<typeof s3>): Promise<string> {
  const dir = mkdtempSync(join(root, "a-"));
  const a = replica({ prefix, dir });
  await up(a.redis);
  for (const k of ["k1", "k2", "k3"]) {
    store.objects.set("b/" + k, `old ${k}`);
    expect(await read(a.cache, store, k)).toMatchObject({ x: "MISS", body: `old ${k}` });
  }
  await waitFor(() => a.disk!.keys().length === 3, { message: "the fills to reach A's disk" });
  await a.cache.idle?.();
  await a.cache.close();
  return dir;
}

/**
 * A (instance 8081) and C (8082) share a folder; A fills k ("one") and kept, then stops. While A is
 * down k is overwritten ("two") through another replica; C hears the purge (it holds no copy),
 * saves a later position, and stops too.
 */
async function purgedWhileOneOfTwoDown(prefix: string): Promise<{ store: ReturnType<typeof s3>; dir: string }> {
  const store = s3();
  const dir = mkdtempSync(join(root, "shared-"));
  const a = replica({ prefix, dir, instance: "8081" });
  const c = replica({ prefix, dir, instance: "8082" });
  await Promise.all([up(a.redis), up(c.redis)]);
  store.objects.set("b/k", "one");
  store.objects.set("b/kept", "kept");
  expect(await read(a.cache, store, "k")).toMatchObject({ x: "MISS", body: "one" });
  expect(await read(a.cache, store, "kept")).toMatchObject({ x: "MISS", body: "kept" });
  await waitFor(() => a.disk!.keys().length === 2, { message: "the fills to reach the shared disk" });
  await a.cache.idle?.();
  await a.cache.close(); // A stops (its lock dropped, its position saved)
  const b = replica({ prefix, dir: mkdtempSync(join(root, "b-")) });
  await up(b.redis);
  store.objects.set("b/k", "two");
  await b.cache.delete("b/k");
  await c.cache.delete("b/unrelated"); // (C's position moves past k's purge)
  await c.cache.idle?.();
  await c.cache.close();
  return { store, dir };
}

describe("a replica restarted on its disk folder", () => {
  test("replays the purges made while it was down: the overwritten and deleted objects are not served, the others are (from disk)", async () => {
    const prefix = "restart1:";
    const store = s3();
    const dir = await firstLife(prefix, store);
    const b = replica({ prefix, dir: mkdtempSync(join(root, "b-")) });
    await up(b.redis);
    store.objects.set("b/k1", "new k1");
    await b.cache.delete("b/k1"); // what a PutObject through B does once S3 answered
    store.objects.delete("b/k2");
    await b.cache.delete("b/k2");

    const a2 = replica({ prefix, dir });
    // Before its Redis layer caught up: the restored entries are held (misses), never served.
    expect(await read(a2.cache, store, "k2")).toMatchObject({ status: 404 });
    await up(a2.redis);
    expect(await read(a2.cache, store, "k1")).toMatchObject({ x: "MISS", body: "new k1" });
    expect(await read(a2.cache, store, "k2")).toMatchObject({ status: 404 });
    expect(await read(a2.cache, store, "k3")).toMatchObject({ x: "HIT", layer: "disk", body: "old k3" });
  });

  test("two processes sharing one disk folder: the one restarted replays from its own position, not the later one the other saved (it served its stale file until TTL)", async () => {
    const { store, dir } = await purgedWhileOneOfTwoDown("restart-shared:");
    const a2 = replica({ prefix: "restart-shared:", dir, instance: "8081" });
    await up(a2.redis);
    expect(await read(a2.cache, store, "k")).toMatchObject({ x: "MISS", body: "two" });
  });

  test("the other process restarted while the first is still down indexes the first one's files up to date: it replays from the older position of the two (it served the stopped instance's file, purged meanwhile, as a disk HIT)", async () => {
    const { store, dir } = await purgedWhileOneOfTwoDown("restart-adopt:");
    // C restarts, A still down: A's files are no running instance's, so C indexes them.
    const c2 = replica({ prefix: "restart-adopt:", dir, instance: "8082" });
    await up(c2.redis);
    expect(await read(c2.cache, store, "k")).toMatchObject({ x: "MISS", body: "two" });
    expect(await read(c2.cache, store, "kept")).toMatchObject({ x: "HIT", layer: "disk", body: "kept" });
  });

  test("the adopter's position moves the stopped instance's too: a later start does not replay from where that instance stopped (once the stream was trimmed past it, every entry was dropped)", async () => {
    const { store, dir } = await purgedWhileOneOfTwoDown("adopt-moves:");
    const c2 = replica({ prefix: "adopt-moves:", dir, instance: "8082" });
    await up(c2.redis);
    expect(await read(c2.cache, store, "kept")).toMatchObject({ x: "HIT", layer: "disk", body: "kept" });
    await c2.cache.delete("b/unrelated-2"); // (C's position moves on)
    await c2.cache.idle?.();
    await c2.cache.close();
    const position = (instance: string) => JSON.parse(readFileSync(join(dir, `redis-position-${instance}.json`), "utf8")) as { id: string };
    expect(position("8081").id).toBe(position("8082").id);
  });

  test("the stream was trimmed past its saved position: its restored entries are dropped", async () => {
    const prefix = "restart2:";
    const store = s3();
    const dir = await firstLife(prefix, store);
    const b = replica({ prefix, dir: mkdtempSync(join(root, "b-")) });
    await up(b.redis);
    store.objects.set("b/k1", "new k1");
    await b.cache.delete("b/k1");
    await raw.send("XTRIM", [prefix + "invalidations", "MAXLEN", "0"]); // as MAXLEN does under many purges
    await b.cache.delete("b/other");

    const a2 = replica({ prefix, dir });
    await up(a2.redis);
    expect(a2.disk!.keys()).toEqual([]); // k3's copy too: what was purged cannot be known
    expect(await read(a2.cache, store, "k1")).toMatchObject({ x: "MISS", body: "new k1" });
    expect(await read(a2.cache, store, "k3")).toMatchObject({ body: "old k3", layer: "redis" }); // Redis's copy, purged by no one
  });

  test("Redis unreachable at its start: restored entries are not served until it caught up; then the ones not purged are", async () => {
    const prefix = "restart3:";
    const store = s3();
    const dir = await firstLife(prefix, store);
    const b = replica({ prefix, dir: mkdtempSync(join(root, "b-")) });
    await up(b.redis);
    const relay = await tcpRelay(redis.port);
    try {
      relay.cut();
      store.objects.set("b/k1", "new k1");
      await b.cache.delete("b/k1");
      store.objects.delete("b/k2");
      await b.cache.delete("b/k2");

      const a2 = replica({ prefix, dir, url: `redis://127.0.0.1:${relay.port}` });
      await waitFor(() => a2.redis.health().state === "down", { message: "A's Redis layer to be down" });
      expect(await read(a2.cache, store, "k1")).toMatchObject({ x: "MISS", body: "new k1" });
      expect(await read(a2.cache, store, "k2")).toMatchObject({ status: 404 });
      const callsK3 = store.calls.filter((c) => c === "b/k3").length;
      expect(await read(a2.cache, store, "k3")).toMatchObject({ x: "MISS", body: "old k3" }); // held: asked upstream
      expect(store.calls.filter((c) => c === "b/k3").length).toBe(callsK3 + 1);
      relay.restore();
      await up(a2.redis);
      expect(await read(a2.cache, store, "k1")).toMatchObject({ body: "new k1" });
      expect(await read(a2.cache, store, "k2")).toMatchObject({ status: 404 });
    } finally {
      relay.close();
    }
  });

  test("without a saved position (first start with a Redis layer, or another key_prefix) its restored entries are dropped", async () => {
    const prefix = "restart4:";
    const store = s3();
    const dir = await firstLife(prefix, store);
    const a2 = replica({ prefix: "restart4-other:", dir });
    await up(a2.redis);
    expect(a2.disk!.keys()).toEqual([]);
    expect(await read(a2.cache, store, "k3")).toMatchObject({ x: "MISS", body: "old k3" });
  });
});

describe("Redis lost its data (restarted without persistence): every replica empties its local layers at its next catch-up", () => {
  // A Redis of their own: these tests restart it.
  let lossy: RedisServer;
  beforeAll(async () => {
    lossy = await startRedis();
  });
  afterAll(async () => {
    await lossy?.stop();
  });
  const on = (opts: { prefix: string; dir?: string; url?: string; log?: Lines }) => replica({ ...opts, url: opts.url ?? lossy.url });
  /** A purge through a replica started for it (after the restart: the stream's new life). */
  async function purgeThrough(prefix: string, key: string) {
    const b = on({ prefix });
    await up(b.redis);
    await b.cache.delete(key);
    await b.cache.close();
  }
  async function fillAndStop(prefix: string, store: ReturnType<typeof s3>) {
    const dir = mkdtempSync(join(root, "life-"));
    const a = on({ prefix, dir });
    await up(a.redis);
    store.objects.set("b/x", "old x");
    expect(await read(a.cache, store, "x")).toMatchObject({ x: "MISS", body: "old x" });
    await waitFor(() => a.disk!.keys().length === 1, { message: "the fill to reach A's disk" });
    await a.cache.idle?.();
    await a.cache.close();
    return dir;
  }

  test("a first start before any purge ever, then a purge and the loss while it was down: its disk entry is not served", async () => {
    const prefix = "life-a:";
    const store = s3();
    const dir = await fillAndStop(prefix, store);
    store.objects.set("b/x", "new x");
    await purgeThrough(prefix, "b/x");
    await lossy.kill();
    await lossy.start();
    const a2 = on({ prefix, dir });
    await up(a2.redis);
    expect(await read(a2.cache, store, "x")).toMatchObject({ x: "MISS", body: "new x" });
  });

  test("a saved position in a stream that was lost and created again by a later purge: its disk entry is not served", async () => {
    const prefix = "life-b:";
    const store = s3();
    await purgeThrough(prefix, "b/before"); // the stream exists: A's position is a real id
    const dir = await fillAndStop(prefix, store);
    store.objects.set("b/x", "new x");
    await purgeThrough(prefix, "b/x");
    await lossy.kill();
    await lossy.start();
    await purgeThrough(prefix, "b/other"); // a new stream, whose ids come after A's position
    const a2 = on({ prefix, dir });
    await up(a2.redis);
    expect(await read(a2.cache, store, "x")).toMatchObject({ x: "MISS", body: "new x" });
  });

  test("a running replica cut off while a purge is made, then Redis loses it and a purge creates the stream again: reconnected, it does not serve its memory's copy", async () => {
    const prefix = "life-c:";
    const store = s3();
    const relay = await tcpRelay(lossy.port);
    try {
      const logA: Lines = [];
      const a = on({ prefix, url: `redis://127.0.0.1:${relay.port}`, log: logA });
      await up(a.redis);
      await purgeThrough(prefix, "b/y"); // a stream exists
      store.objects.set("b/x", "old x");
      expect(await read(a.cache, store, "x")).toMatchObject({ x: "MISS", body: "old x" });
      await a.cache.idle?.();
      relay.cut();
      await waitFor(() => a.redis.health().state === "down", { message: "A's Redis layer to be down" });
      store.objects.set("b/x", "new x");
      await purgeThrough(prefix, "b/x");
      await lossy.kill();
      await lossy.start();
      await purgeThrough(prefix, "b/y");
      relay.restore();
      await up(a.redis);
      expect(await read(a.cache, store, "x")).toMatchObject({ x: "MISS", body: "new x" });
      // logged: its local layers emptied
      expect(logA.filter((l) => l.level === "info" && l.msg.includes("the purge stream has another life"))).toHaveLength(1);
    } finally {
      relay.close();
    }
  });

  test("no loss: a first start before any purge ever, restarted with none made meanwhile, serves its disk entries (and after a purge of another key too)", async () => {
    const prefix = "life-none:";
    const store = s3();
    const dir = await fillAndStop(prefix, store);
    const a2 = on({ prefix, dir });
    await up(a2.redis);
    expect(await read(a2.cache, store, "x")).toMatchObject({ x: "HIT", layer: "disk", body: "old x" });
    await a2.cache.idle?.();
    await a2.cache.close();
    await purgeThrough(prefix, "b/other");
    const a3 = on({ prefix, dir });
    await up(a3.redis);
    expect(await read(a3.cache, store, "x")).toMatchObject({ x: "HIT", layer: "disk", body: "old x" });
  });
});

describe("a fill racing a write", () => {
  async function race(opts: { withPeers: boolean }) {
    const prefix = opts.withPeers ? "race-w:" : "race:";
    const store = s3();
    store.objects.set("b/x", "old x");
    const a = replica({ prefix, dir: mkdtempSync(join(root, "ra-")) });
    const b = replica({ prefix });
    const c = replica({ prefix });
    await Promise.all([up(a.redis), up(b.redis), up(c.redis)]);
    if (opts.withPeers) b.cache.setPeers({ publish: (inv) => a.cache.applyPeer(inv) }); // server.workers: 2, B and A one proxy
    store.hold(true);
    const filling = read(a.cache, store, "x");
    await waitFor(() => store.held.length === 1, { message: "A's fill to reach S3" });
    store.hold(false);
    // The write through B, answered: S3 has the new object, B purged (Redis DEL, stream, publish).
    store.objects.set("b/x", "new x");
    await b.cache.delete("b/x");
    // A's fill read the old object before the write; it ends now.
    store.held.shift()!.release();
    expect(await filling).toMatchObject({ body: "old x" });
    await a.cache.idle?.();
    expect(await read(a.cache, store, "x")).toMatchObject({ body: "new x" });
    expect(await read(c.cache, store, "x")).toMatchObject({ body: "new x" });
    await c.cache.idle?.();
    // A fill with no write meanwhile is stored as before: Redis HIT for a fresh replica.
    const d = replica({ prefix });
    await up(d.redis);
    await waitFor(() => raw.exists(prefix + "obj:b/x"), { message: "C's fill to reach Redis" });
    expect(await read(d.cache, store, "x")).toMatchObject({ x: "HIT", layer: "redis", body: "new x" });
  }

  test("between replicas: once the write is answered, the filling replica and a third one read the new object", () => race({ withPeers: false }));
  test("between the workers of one proxy (purges over IPC too)", () => race({ withPeers: true }));
});

// (Until a purge's stream entry and its message became one Redis script, a replica could hear a
// later purge's message before an earlier one's, whose entry was already made: its position moved
// past the earlier purge. Messages now come in the stream's order, and a replica misses one only
// with the connection that carried it: the catch-up from the stream at its reconnect covers it.)
describe("a purge message a replica missed", () => {
  test("a replica whose subscription lost one purge's message (its connection silently dropped, then closed) catches that purge up from the stream when it reconnects: it does not serve its memory's copy", async () => {
    const prefix = "missed:";
    const store = s3();
    const relay = await tcpRelay(redis.port);
    try {
      const b = replica({ prefix });
      const c = replica({ prefix, url: `redis://127.0.0.1:${relay.port}` });
      await Promise.all([up(b.redis), up(c.redis)]);
      // y purged through B: C hears it (its position is that purge's entry).
      const before = c.cache.epoch;
      await b.cache.delete("b/y");
      await waitFor(() => c.cache.purgedSince(before, "b/y"), { message: "B's purge of y to reach C" });
      store.objects.set("b/x", "old x");
      expect(await read(c.cache, store, "x")).toMatchObject({ x: "MISS", body: "old x" });
      await c.cache.idle?.();
      expect(await read(c.cache, store, "x")).toMatchObject({ x: "HIT", layer: "memory", body: "old x" });
      // C's subscription goes silent (its connection still open): x's purge through B, entry and
      // message, reaches the stream but not C.
      expect(relay.blackhole(/SUBSCRIBE/i)).toBe(1);
      const subscribed = relay.sent("SUBSCRIBE");
      const heard = c.cache.epoch;
      store.objects.set("b/x", "new x");
      await b.cache.delete("b/x");
      const entries = async () => ((await raw.send("XRANGE", [prefix + "invalidations", "-", "+"])) as [string, string[]][]).map(([, f]) => f[f.indexOf("v") + 1]);
      expect(await entries()).toEqual(["b/y", "b/x"]);
      expect(c.cache.purgedSince(heard, "b/x")).toBe(false);
      expect(await read(c.cache, store, "x")).toMatchObject({ x: "HIT", layer: "memory", body: "old x" }); // (the message is lost)
      // Then the connection closes; C reconnects and subscribes again, and reads the stream from its position.
      relay.cut();
      await waitFor(() => c.redis.health().state === "down", { message: "C's Redis layer to be down" });
      relay.restore();
      await Promise.all([up(c.redis), waitFor(() => relay.sent("SUBSCRIBE") > subscribed, { message: "C to subscribe again" })]);
      expect(await read(c.cache, store, "x")).toMatchObject({ x: "MISS", body: "new x" });
    } finally {
      relay.close();
    }
  });
});

describe("a purge heard while reconnecting", () => {
  test("a later purge's message that arrives before the catch-up does not move the catch-up past a purge missed while cut off: the replica does not serve its memory's copy", async () => {
    const prefix = "reconnect:";
    const store = s3();
    const relay = await tcpRelay(redis.port);
    try {
      const b = replica({ prefix });
      // C reaches Redis through the relay; its commands may take a while (each reply late below).
      const r = new RedisLayer({ url: `redis://127.0.0.1:${relay.port}`, keyPrefix: prefix, maxItemBytes: 1 << 20, connectTimeoutMs: 3000, operationTimeoutMs: 3000, minBackoffMs: 20, maxBackoffMs: 100 });
      const c = new Cache([new MemoryLayer(1 << 20, 1 << 20), r]);
      open.push(c);
      await Promise.all([up(b.redis), up(r)]);
      await b.cache.delete("b/y"); // a stream exists
      store.objects.set("b/x", "old x");
      expect(await read(c, store, "x")).toMatchObject({ x: "MISS", body: "old x" });
      await c.idle?.();
      expect(await read(c, store, "x")).toMatchObject({ x: "HIT", layer: "memory", body: "old x" });
      relay.cut();
      await waitFor(() => r.health().state === "down", { message: "C's Redis layer to be down" });
      // x written through B while C is cut off: C misses its message.
      store.objects.set("b/x", "new x");
      await b.cache.delete("b/x");
      // C reconnects (each reply 150 ms late); y is purged once its subscription is made, so that
      // y's message reaches C before C catches up.
      relay.delayResponses(150);
      const subscribed = relay.sent("SUBSCRIBE");
      relay.restore();
      await waitFor(() => relay.sent("SUBSCRIBE") > subscribed, { message: "C to subscribe again" });
      await b.cache.delete("b/y");
      await up(r);
      relay.delayResponses(0);
      expect(await read(c, store, "x")).toMatchObject({ x: "MISS", body: "new x" });
    } finally {
      relay.close();
    }
  });
});

describe("Redis restored from an older snapshot (an RDB, an AOF that lost its last second, a lagging replica promoted): the purges after it are lost", () => {
  let snap: RedisServer;
  beforeAll(async () => {
    snap = await startRedis();
  });
  afterAll(async () => {
    await snap?.stop();
  });

  test("the objects they deleted, back in Redis, are served by no replica: Redis's objects and every replica's local layers are dropped, and the stream gets a new life; logged", async () => {
    const prefix = "rollback:";
    const store = s3();
    const logA: Lines = [];
    const a = replica({ prefix, url: snap.url, dir: mkdtempSync(join(root, "rb-a-")), log: logA });
    const b = replica({ prefix, url: snap.url });
    await Promise.all([up(a.redis), up(b.redis)]);
    await b.cache.delete("b/before"); // a stream with an entry
    await fillOldXY(a, store, prefix, snap.url);
    const epochBefore = await withRedis(snap.url, async (check) => {
      const epoch = JSON.stringify(await check.send("XINFO", ["GROUPS", prefix + "invalidations"]));
      await check.send("SAVE", []);
      return epoch;
    });
    store.objects.set("b/x", "new x");
    await b.cache.delete("b/x"); // the PUT's purge: in the stream after the snapshot
    await waitFor(() => a.memory.peek("b/x") === undefined, { message: "the purge to reach A" });
    await snap.kill();
    await Promise.all([waitFor(() => !a.redis.health().up), waitFor(() => !b.redis.health().up)]);
    await snap.start(); // loads the snapshot: obj:b/x is back, the purge is not in the stream
    await Promise.all([up(a.redis), up(b.redis)]);
    expect(await read(a.cache, store, "x")).toMatchObject({ x: "MISS", body: "new x" });
    expect(await read(b.cache, store, "x")).toMatchObject({ body: "new x" });
    expect(await read(b.cache, store, "y")).toMatchObject({ x: "MISS", body: "old y" }); // everything in Redis went
    expect(await withRedis(snap.url, async (after) => JSON.stringify(await after.send("XINFO", ["GROUPS", prefix + "invalidations"])))).not.toBe(epochBefore);
    expect(logA.filter((l) => l.level === "info" && /purge stream (went back|has another life)/.test(l.msg)).length).toBeGreaterThanOrEqual(1);
  });

  test("restarted with its snapshot while a write's purge could not reach it (queued on a replica that went away before Redis came back): no replica serves the replaced object from Redis; logged", async () => {
    const prefix = "restarted:";
    const store = s3();
    const logA: Lines = [];
    const a = replica({ prefix, url: snap.url, log: logA });
    const b = replica({ prefix, url: snap.url });
    await Promise.all([up(a.redis), up(b.redis)]);
    await fillOldXY(a, store, prefix, snap.url);
    await withRedis(snap.url, (check) => check.send("SAVE", []));
    await snap.kill();
    await Promise.all([waitFor(() => !a.redis.health().up), waitFor(() => !b.redis.health().up)]);
    // A write through B while Redis is down: its purge is queued in B, which then stops (a rolling
    // deploy): the purge never reaches Redis.
    store.objects.set("b/x", "new x");
    await b.cache.delete("b/x");
    await b.cache.close();
    await snap.start(); // loads the snapshot: obj:b/x (the old object) is back
    await up(a.redis);
    const c = replica({ prefix, url: snap.url });
    await up(c.redis);
    expect(await read(c.cache, store, "x")).toMatchObject({ x: "MISS", body: "new x" });
    expect(await read(c.cache, store, "y")).toMatchObject({ x: "MISS", body: "old y" }); // everything in Redis went
    expect(logA.filter((l) => l.level === "info" && /Redis restarted since it was last seen/.test(l.msg)).length).toBe(1);
    // Connected again without a restart: nothing dropped (C's fill of y is a Redis HIT for D).
    await withRedis(snap.url, (again) => waitFor(() => again.exists(prefix + "obj:b/y"), { message: "C's fill to reach Redis" }));
    const d = replica({ prefix, url: snap.url });
    await up(d.redis);
    expect(await read(d.cache, store, "y")).toMatchObject({ x: "HIT", layer: "redis", body: "old y" });
  });

  test("the recorded run_id is read now and then (an allkeys-lru Redis would evict it as its least used key) and put back when it is gone", async () => {
    const prefix = "run-id-touch:";
    const a = replica({ prefix, url: snap.url, runIdTouchMs: 50 });
    await up(a.redis);
    await withRedis(snap.url, async (check) => {
      const id = await check.get(prefix + "run-id");
      expect(id).toMatch(/^[0-9a-f]{40}$/);
      await check.del(prefix + "run-id"); // evicted
      await waitFor(async () => (await check.get(prefix + "run-id")) === id, { message: "the run-id key to be put back" });
    });
  });

  test("the recorded run_id replaced while connected by another program's key of another type is put back, as at connect: the next connection to the same Redis drops nothing (it took the key for another run_id's and dropped every object in Redis)", async () => {
    const prefix = "run-id-wrongtype:";
    const log: Lines = [];
    const a = replica({ prefix, url: snap.url, runIdTouchMs: 50, log });
    await up(a.redis);
    await withRedis(snap.url, async (check) => {
      const id = await check.get(prefix + "run-id");
      await check.del(prefix + "run-id");
      await check.send("HSET", [prefix + "run-id", "a", "b"]);
      await waitFor(async () => String(await check.send("TYPE", [prefix + "run-id"])) === "string" && (await check.get(prefix + "run-id")) === id, { message: "the run-id key to be put back" });
    });
    const b = replica({ prefix, url: snap.url, log });
    await up(b.redis);
    expect(log.filter((l) => /Redis restarted since it was last seen/.test(l.msg))).toEqual([]);
  });
});
