/**
 * The Redis link's bulk connections (large stores and reads, redis-link.ts runBulk): one command
 * at a time, each deadline from its own turn. Pipelined, every deadline ran from its call while
 * Redis still moved the commands before it, so two or three 20 MiB fills at once all timed out,
 * and the first timeout closed the connection under the others: none stored, every read a miss.
 * The commands here are the test's own (an awaited gate stands for Redis moving bytes), so the
 * order is checked, not a speed.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { BULK_QUEUE_BYTES, RedisLink, STORE_BYTES_PER_SECOND } from "../../src/cache/redis-link.ts";
import { startRedis, type RedisServer } from "../fixtures/services.ts";
import { waitFor } from "../helpers/wait.ts";
import { tcpRelay } from "./relay.ts";

setDefaultTimeout(30_000);

let redis: RedisServer;
let link: RedisLink;

beforeAll(async () => {
  redis = await startRedis();
  link = new RedisLink({ url: redis.url, connectTimeoutMs: 2000, operationTimeoutMs: 50, channel: "bulk-test", onMessage() {}, onUp: async () => {} });
  await waitFor(() => link.up, { message: "the link to come up" });
});
afterAll(async () => {
  link?.close();
  await redis?.stop();
});

const MiB = 1 << 20;
/** How long a large read may wait for its turn beyond operation_timeout_ms: BULK_QUEUE_BYTES at the assumed throughput (1.28 s). */
const BULK_WAIT_MS = Math.ceil((BULK_QUEUE_BYTES / STORE_BYTES_PER_SECOND) * 1000);
/** A promise and its resolver. */
function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { p, open };
}

test("one command at a time per connection: the next starts when the one before settles, and a deadline counts from the command's own turn", async () => {
  const events: string[] = [];
  const first = gate();
  // A, 10 MiB: a deadline of 50 ms + 200 ms; it holds the connection 120 ms, longer than B's
  // whole deadline (1 MiB: 50 ms + 20 ms), had that counted from B's call
  const a = link.runBulk("store", "A", 10 * MiB, async (c) => {
    events.push("A starts");
    await first.p;
    await c.send("PING", []);
    events.push("A ends");
    return "a";
  });
  const b = link.runBulk("store", "B", MiB, async (c) => {
    events.push("B starts");
    await c.send("PING", []);
    return "b";
  });
  await waitFor(() => events.includes("A starts"));
  await Bun.sleep(0);
  expect(events).toEqual(["A starts"]);
  setTimeout(() => first.open(), 120);
  expect(await Promise.all([a, b])).toEqual(["a", "b"]);
  expect(events).toEqual(["A starts", "A ends", "B starts"]);
});

test("a command that runs out of time fails alone: the one queued behind it runs on a fresh connection", async () => {
  const stuck = link.runBulk("read", "stuck", MiB, () => new Promise<never>(() => {}));
  const next = link.runBulk("read", "next", MiB, (c) => c.send("PING", []));
  await expect(stuck).rejects.toThrow("stuck: no answer within 70 ms");
  expect(await next).toBe("PONG");
  expect(link.up).toBe(true);
});

test("more than BULK_QUEUE_BYTES waiting: refused at once (a read's miss), not queued", async () => {
  const hold = gate();
  const running = link.runBulk("read", "running", MiB, async () => (await hold.p, "done"));
  const queued = link.runBulk("read", "queued", BULK_QUEUE_BYTES - MiB, (c) => c.send("PING", []));
  await expect(link.runBulk("read", "over", 2 * MiB, (c) => c.send("PING", []))).rejects.toThrow("bytes already wait for the read connection");
  hold.open();
  expect(await running).toBe("done");
  expect(await queued).toBe("PONG");
});

test("a large read whose turn does not come within operation_timeout_ms + BULK_WAIT_MS (a Redis slower than 50 MiB/s) is refused then, a miss: reads queued behind slow ones do not each wait for all of them (16 clients at once: the last waited 9 s)", async () => {
  const hold = gate();
  // holds the read connection 12 s at most (within its own deadline: 800 MiB is 50 ms + 16 s), far
  // beyond the refusal (1.33 s), so the bound below leaves a paused test process several seconds
  // (held 3 s with a bound of 2.9 s, a 3.2 s pause failed it)
  let started = false;
  const running = link.runBulk("read", "slow", 800 * MiB, async () => ((started = true), await hold.p, "done"));
  await waitFor(() => started);
  const opened = setTimeout(() => hold.open(), 12_000);
  const at = performance.now();
  await expect(link.runBulk("read", "behind", MiB, (c) => c.send("PING", []))).rejects.toThrow("its turn on the read connection did not come within");
  const waited = performance.now() - at;
  expect(waited).toBeGreaterThanOrEqual(50 + BULK_WAIT_MS - 5);
  expect(waited).toBeLessThan(10_000);
  hold.open();
  clearTimeout(opened);
  expect(await running).toBe("done");
  // the connection's queue goes on: the next read runs at once
  expect(await link.runBulk("read", "after", MiB, (c) => c.send("PING", []))).toBe("PONG");
  expect(link.up).toBe(true);
});

test("a bulk connection whose handshake Redis does not answer in time, this process stalled at the wait's deadline: the command fails as `connect: no answer within` connect_timeout_ms; it was Bun's `Connection closed` (its own connect timeout was the wait itself, and came first after the stall)", async () => {
  const relay = await tcpRelay(redis.port);
  const slow = new RedisLink({ url: `redis://127.0.0.1:${relay.port}`, connectTimeoutMs: 200, operationTimeoutMs: 50, channel: "bulk-test", onMessage() {}, onUp: async () => {} });
  try {
    await waitFor(() => slow.up, { message: "the link to come up" });
    relay.holdOn(/HELLO/); // the bulk connection's handshake never reaches Redis
    const read = slow.runBulk("read", "GET", MiB, (c) => c.send("PING", []));
    await waitFor(() => relay.holding(), { message: "the handshake sent" });
    // This process stalled at the wait's deadline (a starved CPU): the wait gives Redis its 200 ms
    // again from then (redis-wait.ts), past the 200 ms Bun's own connect timeout had.
    const end = performance.now() + 300;
    while (performance.now() < end);
    await expect(read).rejects.toThrow("connect: no answer within 200 ms");
  } finally {
    slow.close();
    relay.close();
  }
});

// With new connections to Redis unanswered and the established ones working (a firewall or a
// conntrack table dropping new flows), each large read opened its own connection and waited
// connect_timeout_ms for it, then missed: every large lookup paid the whole connect wait.
test("a large connection whose connect failed is not tried again before its hold: the large commands meanwhile are refused at once (each waited connect_timeout_ms)", async () => {
  const relay = await tcpRelay(redis.port);
  const l = new RedisLink({ url: `redis://127.0.0.1:${relay.port}`, connectTimeoutMs: 150, operationTimeoutMs: 50, minBackoffMs: 400, maxBackoffMs: 800, channel: "bulk-hold", onMessage() {}, onUp: async () => {} });
  try {
    await waitFor(() => l.up, { message: "the link to come up" });
    relay.holdOn(/HELLO/); // the next connection's handshake never reaches Redis
    await expect(l.runBulk("read", "GET", MiB, (c) => c.send("PING", []))).rejects.toThrow("connect: no answer within 150 ms");
    const accepted = relay.accepted();
    const t = performance.now();
    await expect(l.runBulk("read", "GET", MiB, (c) => c.send("PING", []))).rejects.toThrow("GET: the read connection could not be opened (connect: no answer within 150 ms); tried again within 400 ms");
    expect(performance.now() - t).toBeLessThan(100);
    expect(relay.accepted()).toBe(accepted); // no connection tried meanwhile
    expect(l.up).toBe(true);
    relay.release();
    // once the hold is over, a large command opens a connection again
    await waitFor(async () => (await l.runBulk("read", "GET", MiB, (c) => c.send("PING", [])).catch(() => undefined)) === "PONG", { message: "a read connection again" });
  } finally {
    l.close();
    relay.close();
  }
});
