/**
 * Clients that read a response's head and then stop reading (never closing), on the node engine
 * (node:http under Bun):
 * - they are cut after the listener's idle period (60 s; YATAGARASU_NODE_IDLE_MS here), as
 *   Bun.serve's idleTimeout cuts them on the bun engine: before, each held its request slot and
 *   its upstream connection forever (with max_concurrent_requests: 8, eight of them made every
 *   later request a 503);
 * - stalled readers of a memory-cache hit share the cached bytes: before, each held its own copy
 *   of the object (100 of them on a 10 MB object: ~400 MB).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { startInProcess, startProxy, type ProxyProcess } from "./harness.ts";

setDefaultTimeout(60_000);

const MiB = 1024 * 1024;
const BIG = 24 * MiB;
const HIT = 16 * MiB;

let s3: S3Fixture;
const held: Socket[] = [];

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "pub", public: true }], credentials: [] });
  const big = new Uint8Array(BIG);
  for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 255;
  await s3.put("pub", "big.bin", big);
  await s3.put("pub", "hit.bin", big.subarray(0, HIT));
  await s3.put("pub", "small.txt", "small");
});
afterAll(async () => {
  await s3?.stop();
});

function config(extra: string): string {
  return `server: { address: 127.0.0.1, port: 0, engine: node${extra} }
cache:
  enabled: true
  cache_layers: [memory]
  memory: { max_item_size_mb: 32, max_cache_size_mb: 128 }
buckets:
  - name: pub
    path_prefix: /pub
    s3: { bucket: pub, endpoint: "${s3.endpoint}" }
  - name: mem
    path_prefix: /mem
    s3: { bucket: pub, endpoint: "${s3.endpoint}" }
    cache: { enabled: true }
`;
}

/** A GET from `localAddress`: its status and X-Cache (status 0 when it failed). */
function get(px: ProxyProcess, path: string, localAddress: string): Promise<{ status: number; cache?: string }> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port: px.port, path, localAddress, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, cache: res.headers["x-cache"] as string | undefined }));
    });
    req.on("error", () => resolve({ status: 0 }));
    req.end();
  });
}

/** A connection from `localAddress` that asks for `path`, reads the first bytes (the head) and then nothing. */
function hold(px: ProxyProcess, path: string, localAddress: string): Promise<{ socket: Socket; status: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: px.port, localAddress });
    held.push(s);
    s.once("data", (d) => {
      s.pause(); // never read the rest
      resolve({ socket: s, status: d.toString("latin1").split("\r\n")[0]! });
    });
    s.once("error", reject);
    s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
}

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
}

describe("node engine: a client that stops reading", () => {
  let px: ProxyProcess;
  beforeAll(async () => {
    px = await startProxy(config(", max_concurrent_requests: 2"), { env: { YATAGARASU_NODE_IDLE_MS: "1000" } });
  });
  afterAll(async () => {
    for (const s of held.splice(0)) s.destroy(); // (else the drain at SIGTERM waits for them)
    await px?.stop();
  });

  test("is disconnected after the idle period (1 s here, 60 s by default): its slot is released, the access log says ClientClosedRequest", async () => {
    const a = await hold(px, "/pub/big.bin", "127.0.0.2");
    const b = await hold(px, "/pub/big.bin", "127.0.0.3");
    expect([a.status, b.status]).toEqual(["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]);
    // Both slots are held while their bodies wait for the clients.
    expect((await get(px, "/pub/small.txt", "127.0.0.4")).status).toBe(503);
    // Cut after about a second of nothing taken (before: never).
    const started = performance.now();
    await waitFor(() => px.logs().filter((l) => l.msg === "request" && l.path === "/pub/big.bin" && l.error === "ClientClosedRequest").length === 2, {
      timeoutMs: 10_000,
      message: () => `two ClientClosedRequest access lines; got ${JSON.stringify(px.logs().filter((l) => l.msg === "request"))}`,
    });
    expect(performance.now() - started).toBeGreaterThanOrEqual(500);
    for (const l of px.logs().filter((l) => l.msg === "request" && l.path === "/pub/big.bin")) {
      expect(l).toMatchObject({ status: 200, error: "ClientClosedRequest" }); // (as on the bun engine)
      expect(l.bytes as number).toBeLessThan(BIG);
    }
    expect((await get(px, "/pub/small.txt", "127.0.0.4")).status).toBe(200);
    // The connections were closed: reading on, each client gets less than the object, then the end.
    for (const { socket } of [a, b]) {
      let got = 0;
      socket.on("data", (d: Buffer) => (got += d.byteLength));
      const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
      socket.resume();
      await closed;
      expect(got).toBeLessThan(BIG);
    }
  });

  test("a slow reader that keeps taking bytes is not cut", async () => {
    const s = connect({ host: "127.0.0.1", port: px.port, localAddress: "127.0.0.5" });
    held.push(s);
    let got = 0;
    let head = "";
    const closed = new Promise<void>((resolve) => s.once("close", () => resolve()));
    s.on("data", (d: Buffer) => {
      if (head === "") head = d.toString("latin1").split("\r\n")[0]!;
      got += d.byteLength;
      // a reader far slower than the socket: a pause of half the idle period per 4 MiB read
      if (got % (4 * MiB) < d.byteLength) {
        s.pause();
        setTimeout(() => s.resume(), 500);
      }
    });
    s.write("GET /pub/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await closed;
    expect(head).toBe("HTTP/1.1 200 OK");
    expect(got).toBeGreaterThan(BIG); // the whole body and its head
    expect(px.logs().find((l) => l.msg === "request" && l.client_ip === "127.0.0.5")).toMatchObject({ status: 200, bytes: BIG });
  });
});

describe("node engine: stalled readers of a memory-cache hit", () => {
  let px: ProxyProcess;
  beforeAll(async () => {
    px = await startProxy(config(""));
  });
  afterAll(async () => {
    for (const s of held.splice(0)) s.destroy(); // (else the drain at SIGTERM waits for them)
    await px?.stop();
  });

  test("a hit's body, whole or a range, is the object's bytes (sent in slices)", async () => {
    const object = new Uint8Array(BIG);
    for (let i = 0; i < object.length; i += 4096) object[i] = (i / 4096) & 255;
    await fetch(px.url("/mem/hit.bin")).then((r) => r.arrayBuffer()); // stored
    const whole = await fetch(px.url("/mem/hit.bin"));
    expect(whole.headers.get("x-cache")).toBe("HIT");
    expect(Buffer.from(await whole.arrayBuffer()).equals(Buffer.from(object.subarray(0, HIT)))).toBe(true);
    const part = await fetch(px.url("/mem/hit.bin"), { headers: { range: "bytes=65535-200000" } });
    expect([part.status, part.headers.get("x-cache"), part.headers.get("content-length")]).toEqual([206, "HIT", String(200000 - 65535 + 1)]);
    expect(Buffer.from(await part.arrayBuffer()).equals(Buffer.from(object.subarray(65535, 200001)))).toBe(true);
  });

  test("share the cached bytes: 50 of them on a 16 MiB object grow the proxy's memory by far less than a copy each", async () => {
    expect((await get(px, "/mem/hit.bin", "127.0.0.1")).cache).toBe("HIT");
    // A few readers first, so what any connection costs once (buffers, code paths) is in the baseline.
    for (let i = 0; i < 3; i++) expect((await hold(px, "/mem/hit.bin", `127.0.2.${2 + i}`)).status).toBe("HTTP/1.1 200 OK");
    Bun.gc(true);
    const before = rssKiB(px.proc.pid);
    for (let i = 0; i < 50; i++) expect((await hold(px, "/mem/hit.bin", `127.0.1.${2 + i}`)).status).toBe("HTTP/1.1 200 OK");
    // Whatever each connection holds is in place once the socket stopped taking bytes: the peak
    // over a short while, so no collection in between hides it.
    let peak = 0;
    const until = performance.now() + 2000;
    while (performance.now() < until) {
      peak = Math.max(peak, rssKiB(px.proc.pid));
      await Bun.sleep(100); // sampling interval of a memory reading, not a wait for an event
    }
    const grownMiB = (peak - before) / 1024;
    // One copy per reader would be 50 × 16 MiB (what the kernel's socket buffers take aside):
    // before, ~10 MiB each. Now a 64 KiB slice each, plus the connections.
    expect(grownMiB).toBeLessThan((50 * HIT) / MiB / 8);
  });
});

describe("node engine: pipelined answers", () => {
  test("an answer queued behind a download read steadily is not cut while it waits its turn (its own idle timer cut the connection)", async () => {
    // in process: the listener reads YATAGARASU_NODE_IDLE_MS when it starts
    const before = process.env.YATAGARASU_NODE_IDLE_MS;
    process.env.YATAGARASU_NODE_IDLE_MS = "1000";
    await using px = await startInProcess(config(""));
    if (before === undefined) delete process.env.YATAGARASU_NODE_IDLE_MS;
    else process.env.YATAGARASU_NODE_IDLE_MS = before;
    await (await fetch(px.url("/mem/hit.bin"))).arrayBuffer(); // (a memory hit from now on)
    const s = connect({ host: "127.0.0.1", port: px.port });
    let got = 0;
    let closed = false;
    s.on("close", () => (closed = true));
    s.on("error", () => {});
    // ~5 MiB/s: each 16 MiB answer takes about 3 s, longer than the idle period (1 s here)
    let tick = 0;
    s.on("data", (d: Buffer) => {
      got += d.byteLength;
      tick += d.byteLength;
      if (tick >= 256 * 1024) s.pause();
    });
    const get1 = "GET /mem/hit.bin HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write(get1 + get1);
    try {
      await waitFor(
        () => {
          tick = 0;
          s.resume();
          return closed || got >= 2 * HIT + 2 * 200;
        },
        { timeoutMs: 30_000, intervalMs: 50, message: () => `both answers (${got} bytes so far)` },
      );
      expect(closed).toBe(false);
      expect(got).toBeGreaterThanOrEqual(2 * HIT);
    } finally {
      s.destroy();
    }
  });
});
