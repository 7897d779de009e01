/**
 * The proxy with no file descriptor left (a connection flood, or a container's low `ulimit -n`):
 * the proxy runs under `prlimit --nofile`, its descriptor table is filled with kept-alive client
 * connections, and a disk-cache hit (whose file is opened only as the answer is written) is asked
 * on one of them, or an object whose upstream connection cannot be opened. Either is a 503 with
 * Retry-After, the process stays up, the cached file stays, the upstream is not blamed (its circuit
 * breaker stays closed), and once the connections close the object is served again without a restart.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { startProxy } from "./harness.ts";

setDefaultTimeout(60_000);

const LIMIT = 64;
const OBJECT = new Uint8Array(256 * 1024).map((_, i) => (i * 7) & 0xff);

let s3: S3Fixture;
let cacheRoot: string;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true }], credentials: [] });
  await s3.put("data", "obj.bin", OBJECT);
  cacheRoot = mkdtempSync(join(tmpdir(), "yata-fd-"));
});

afterAll(async () => {
  await s3?.stop();
  rmSync(cacheRoot, { recursive: true, force: true });
});

/** A raw kept-alive connection: sends a GET of `path` and resolves with the answer's head. */
function exchange(sock: net.Socket, path: string): Promise<string> {
  return answer(sock, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, path);
}

/** Writes `bytes` (the end of a request) and resolves with the answer's head. */
function answer(sock: net.Socket, bytes: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const onData = (d: Buffer) => {
      text += d.toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return;
      sock.off("data", onData);
      resolve(text.slice(0, end));
    };
    sock.on("data", onData);
    sock.once("error", reject);
    sock.once("close", () => reject(new Error(`the connection closed without an answer to ${path}`)));
    sock.write(bytes);
  });
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
}

const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/**
 * `n` GETs of /data/obj.bin on connections accepted first, their heads begun (an idle connection
 * may be closed to make room), finished once the table is full. Several at once: a descriptor freed
 * meanwhile may let one through. At least one must be refused, and every refusal is a 503 with
 * Retry-After.
 */
async function askWhenFull(port: number, pid: number, socks: net.Socket[], n: number): Promise<number> {
  const askers: net.Socket[] = [];
  for (let i = 0; i < n; i++) {
    const asker = await accepted(port, socks);
    asker.write("GET /data/obj.bin HTTP/1.1\r\nHost: x\r\n");
    askers.push(asker);
  }
  await fill(port, pid, socks);
  const heads = await Promise.all(askers.map((a) => answer(a, "\r\n", "/data/obj.bin")));
  const refused = heads.filter((h) => !h.startsWith("HTTP/1.1 200"));
  expect(refused.length).toBeGreaterThan(0);
  for (const head of refused) {
    expect(head).toStartWith("HTTP/1.1 503");
    expect(head.toLowerCase()).toContain("retry-after: 1");
  }
  return refused.length;
}

/**
 * Fills the proxy's descriptor table with connections whose request head is still arriving (more
 * than LIMIT: the rest wait in the backlog). Such a connection is not idle: it is not closed to
 * make room.
 */
async function fill(port: number, pid: number, socks: net.Socket[]): Promise<void> {
  for (let i = 0; i < LIMIT; i++) {
    const s = await connect(port);
    s.on("error", () => {});
    s.write("GET /health HTTP/1.1\r\nHost: x\r\n");
    socks.push(s);
  }
  await waitFor(() => fds(pid) >= LIMIT, { timeoutMs: 10_000, message: () => `the proxy's descriptor table to fill (${fds(pid)} of ${LIMIT})` });
}

/** A connection accepted (and answered once) while descriptors are left. */
async function accepted(port: number, socks: net.Socket[]): Promise<net.Socket> {
  const s = await connect(port);
  socks.push(s);
  expect(await exchange(s, "/health")).toStartWith("HTTP/1.1 200");
  return s;
}

test("server.workers: 2, a child that dies while the primary has no descriptor left is started again once there are: the group does not exit", async () => {
  await using px = await startProxy(`server: { address: 127.0.0.1, port: 0, workers: 2, shutdown_timeout: 1 }\nbuckets:\n  - { name: data, path_prefix: /data, s3: { bucket: data, endpoint: "${s3.endpoint}" } }\n`, {
    prefix: ["prlimit", `--nofile=${LIMIT}:${LIMIT}`, "--"],
  });
  const child = await px.waitForLog((l) => l.msg === "listening" && l.worker === 1);
  const socks: net.Socket[] = [];
  const open = async () => {
    const s = await connect(px.port);
    s.on("error", () => {});
    // (a head still arriving: not an idle connection, never closed to make room)
    s.write("GET /health HTTP/1.1\r\nHost: x\r\n");
    socks.push(s);
  };
  try {
    // The shared port spreads the connections over both processes: more, until the primary's table is full, then some waiting in its backlog.
    await waitFor(async () => (await open(), fds(px.proc.pid) >= LIMIT), { timeoutMs: 20_000, message: () => `the primary's descriptor table to fill (${fds(px.proc.pid)} of ${LIMIT})` });
    for (let i = 0; i < LIMIT; i++) await open();
    process.kill(Number(child.pid), "SIGKILL");
    await px.waitForLog((l) => l.msg === "could not start a worker; retrying" && l.child === 1, 20_000);
  } finally {
    for (const s of socks) s.destroy();
  }
  await px.waitForLog((l) => l.msg === "listening" && l.worker === 1 && l.pid !== child.pid, 20_000);
  expect(px.proc.exitCode).toBeNull();
  expect(await px.stop()).toBe(0);
});

describe.each(["bun", "node"])("engine %s", (engine) => {
  test("a disk-cache hit with no file descriptor left is a 503 with Retry-After; the process stays up and serves the object again once connections close", async () => {
    const dir = join(cacheRoot, engine);
    await using px = await startProxy(
      `server: { address: 127.0.0.1, port: 0, engine: ${engine}, shutdown_timeout: 1 }
cache:
  cache_layers: [disk]
  disk: { path: ${dir}, max_disk_size_mb: 16 }
buckets:
  - name: data
    path_prefix: /data
    s3: { bucket: data, endpoint: "${s3.endpoint}" }
    cache: { enabled: true }
`,
      { prefix: ["prlimit", `--nofile=${LIMIT}:${LIMIT}`, "--"] },
    );
    const pid = px.proc.pid;
    const first = await fetch(px.url("/data/obj.bin"));
    expect(new Uint8Array(await first.arrayBuffer())).toEqual(OBJECT);
    await px.waitForLog((l) => l.msg === "request" && l.cache === "MISS");
    const file = await waitFor(() => readdirSync(dir, { recursive: true }).find((f) => String(f).endsWith(".obj")), { message: "the cached file" });

    const socks: net.Socket[] = [];
    let refused: number;
    try {
      refused = await askWhenFull(px.port, pid, socks, 4);
    } finally {
      for (const s of socks) s.destroy();
    }
    // The node engine's writer opens the file: a refused hit is logged as the 503 it was (it was
    // logged 200). Bun.serve opens it after the line is written (README, Known limits).
    if (engine === "node") {
      const logged503 = () => px.logs().filter((l) => l.msg === "request" && l.path === "/data/obj.bin" && l.cache === "HIT" && l.status === 503 && l.error === "ServiceUnavailable").length;
      await waitFor(() => logged503() >= refused, { message: () => `${refused} hits logged 503 (${logged503()})` });
      expect(logged503()).toBe(refused);
    }

    const again = await waitFor(
      async () => {
        const r = await fetch(px.url("/data/obj.bin"));
        if (r.status === 200) return r;
        await r.body?.cancel();
        return undefined;
      },
      { timeoutMs: 10_000, message: "a 200 once the connections are closed" },
    );
    expect(again.headers.get("x-cache")).toBe("HIT");
    expect(new Uint8Array(await again.arrayBuffer())).toEqual(OBJECT);
    expect(readdirSync(dir, { recursive: true })).toContain(file);
    expect(px.proc.exitCode).toBeNull();
    expect(px.logs().filter((l) => l.msg === "unhandled rejection" || l.msg === "listener error")).toEqual([]);
  });
});

test("an upstream connection that cannot be opened for want of a descriptor is a 503 with Retry-After, not the upstream's 502, and does not open its circuit breaker", async () => {
  const SLOW = 4;
  s3.faults.set("/data/slow*", { kind: "delay", ms: 15_000 });
  await using px = await startProxy(
    // (one attempt, no background probe: fewer chances for a descriptor freed meanwhile)
    `server: { address: 127.0.0.1, port: 0, shutdown_timeout: 1, readiness_probe_interval_seconds: 3600 }
buckets:
  - name: data
    path_prefix: /data
    s3:
      bucket: data
      endpoint: "${s3.endpoint}"
      retry: { max_attempts: 1 }
      circuit_breaker: { failure_threshold: 1, timeout_seconds: 600 }
`,
    { prefix: ["prlimit", `--nofile=${LIMIT}:${LIMIT}`, "--"] },
  );
  const socks: net.Socket[] = [];
  try {
    // Every upstream connection the pool has is busy with a slow answer: the next request needs a new one.
    const since = s3.requests.length;
    for (let i = 0; i < SLOW; i++) (await accepted(px.port, socks)).write(`GET /data/slow${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await waitFor(() => s3.requests.slice(since).filter((r) => r.pathname.startsWith("/data/slow")).length === SLOW, { message: "the slow requests upstream" });
    await askWhenFull(px.port, px.proc.pid, socks, 6);
  } finally {
    for (const s of socks) s.destroy();
    s3.faults.delete("/data/slow*");
  }

  const again = await waitFor(
    async () => {
      const r = await fetch(px.url("/data/obj.bin"));
      if (r.status === 200) return r;
      // (an open breaker's 503 is final: it would say so for 600 s)
      if ((await r.text()).includes("CircuitOpen")) throw new Error("the circuit breaker opened");
      return undefined;
    },
    { timeoutMs: 10_000, message: "a 200 once the connections are closed" },
  );
  expect(new Uint8Array(await again.arrayBuffer())).toEqual(OBJECT);
  expect(px.proc.exitCode).toBeNull();
});

describe.each(["bun", "node"])("engine %s", (engine) => {
  test("more kept-alive clients than descriptors are all answered: idle connections are closed when none is left (they held the table for the 60 s idle timeout, the rest waiting in the backlog)", async () => {
    await using px = await startProxy(`server: { address: 127.0.0.1, port: 0, engine: ${engine}, shutdown_timeout: 1 }\nbuckets:\n  - { name: data, path_prefix: /data, s3: { bucket: data, endpoint: "${s3.endpoint}" } }\n`, {
      prefix: ["prlimit", `--nofile=${LIMIT}:${LIMIT}`, "--"],
    });
    const socks: net.Socket[] = [];
    let answered = 0;
    try {
      for (let i = 0; i < 3 * LIMIT; i++) {
        const s = await connect(px.port);
        s.on("error", () => {});
        socks.push(s);
        void exchange(s, "/health").then(
          (head) => head.startsWith("HTTP/1.1 200") && answered++,
          () => {},
        );
      }
      await waitFor(() => answered === socks.length, { timeoutMs: 20_000, message: () => `every client answered (${answered} of ${socks.length})` });
    } finally {
      for (const s of socks) s.destroy();
    }
    expect(px.logs().some((l) => l.msg === "out of file descriptors: idle kept-alive connections closed")).toBe(true);
    expect(px.proc.exitCode).toBeNull();
  });
});

test("/metrics scraped with no descriptor left reports process_open_fds at process_max_fds (the series vanished at the limit)", async () => {
  await using px = await startProxy(
    `server: { address: 127.0.0.1, port: 0, shutdown_timeout: 1 }\nmetrics: { enabled: true, address: 127.0.0.1, port: 0 }\nbuckets:\n  - { name: data, path_prefix: /data, s3: { bucket: data, endpoint: "${s3.endpoint}" } }\n`,
    { prefix: ["prlimit", `--nofile=${LIMIT}:${LIMIT}`, "--"] },
  );
  const socks: net.Socket[] = [];
  let text: string;
  try {
    const scraper = await connect(px.metricsPort!);
    socks.push(scraper);
    scraper.write("GET /metrics HTTP/1.1\r\nHost: x\r\n");
    await fill(px.port, px.proc.pid, socks);
    text = await new Promise<string>((resolve, reject) => {
      let got = "";
      scraper.on("data", (d) => {
        got += d.toString("latin1");
        const head = /content-length: (\d+)/i.exec(got);
        const end = got.indexOf("\r\n\r\n");
        if (head && end >= 0 && got.length - end - 4 >= Number(head[1])) resolve(got.slice(end + 4));
      });
      scraper.once("close", () => reject(new Error(`the scrape was cut: ${got.slice(0, 200)}`)));
      scraper.write("\r\n");
    });
  } finally {
    for (const s of socks) s.destroy();
  }
  const sample = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1]);
  expect(sample("process_max_fds")).toBe(LIMIT);
  expect(sample("process_open_fds")).toBe(LIMIT);
});

test("a first authorizer request (Bun's first fetch) made with no descriptor left is answered, not the process's exit", async () => {
  // (nothing listens at the authorizer's address: a refused port; fail mode closed: 503)
  const spare = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const opaPort = spare.port;
  spare.stop(true);
  await using px = await startProxy(
    `server: { address: 127.0.0.1, port: 0, shutdown_timeout: 1 }
buckets:
  - name: data
    path_prefix: /data
    s3: { bucket: data, endpoint: "${s3.endpoint}" }
    authorization: { type: opa, opa_url: "http://127.0.0.1:${opaPort}", opa_policy_path: x/allow }
`,
    { prefix: ["prlimit", `--nofile=${LIMIT}:${LIMIT}`, "--"] },
  );
  const socks: net.Socket[] = [];
  try {
    const asker = await accepted(px.port, socks);
    asker.write("GET /data/obj.bin HTTP/1.1\r\nHost: x\r\n");
    await fill(px.port, px.proc.pid, socks);
    expect(await answer(asker, "\r\n", "/data/obj.bin")).toStartWith("HTTP/1.1 503");
  } finally {
    for (const s of socks) s.destroy();
  }
  expect(px.proc.exitCode).toBeNull();
});
