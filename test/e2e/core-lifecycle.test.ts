/** Process lifecycle of the real server: graceful drain on SIGTERM/SIGINT. */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
let config: string;
const BIG = 200_000;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "life", public: true }], credentials: [] });
  await s3.put("life", "slow.txt", "finished after the signal");
  await s3.put("life", "a.txt", "a");
  await s3.put("life", "big.bin", "x".repeat(BIG));
  config = `server: { address: 127.0.0.1, port: 0, shutdown_timeout: 10 }\nbuckets:\n${bucketYaml({ name: "life", prefix: "/life", bucket: "life", endpoint: s3.endpoint })}`;
});
afterAll(async () => {
  await s3?.stop();
});

/** Resolves "connected" or the socket error code (e.g. ECONNREFUSED). */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve("connected");
    });
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
  });
}

/** A chunked body's bytes, up to its last chunk. */
function dechunk(s: string): string {
  let out = "";
  for (let i = 0; ; ) {
    const eol = s.indexOf("\r\n", i);
    const n = parseInt(s.slice(i, eol), 16);
    if (!(n > 0)) return out;
    out += s.slice(eol + 2, eol + 2 + n);
    i = eol + 2 + n + 2;
  }
}

test("SIGTERM lets an in-flight slow response finish with 200 and Connection: close (a keep-alive client does not reuse a connection about to close), refuses new connections, then exits 0", async () => {
  await using px = await startProxy(config);
  s3.faults.set("/life/slow.txt", { kind: "delay", ms: 1000, times: 1 });
  const inflight = fetch(px.url("/life/slow.txt"));
  await s3.waitForRequest((r) => r.pathname === "/life/slow.txt" && r.fault === "delay");
  px.signal("SIGTERM");
  await px.waitForLog((l) => l.msg === "draining");
  expect(await tryConnect(px.port)).toBe("ECONNREFUSED");
  const res = await inflight;
  expect([res.status, res.headers.get("connection"), await res.text()]).toEqual([200, "close", "finished after the signal"]);
  expect(await px.exited).toBe(0);
  expect(px.logs().some((l) => l.msg === "stopped")).toBe(true);
});

// The tests below run at once: each has its own proxy process (and keys and faults of its own on
// the shared fixture), and mostly waits on a slow upstream or a drain. The one above stays alone:
// it checks that its closed port refuses, which a proxy starting meanwhile could take.
test.concurrent("engine node: an answer given during the drain closes its connection, so the drain ends with the requests in flight, not at shutdown_timeout", async () => {
  await using px = await startProxy(config.replace("port: 0,", "port: 0, engine: node,"));
  // (a key of its own: waitForRequest also sees the requests of the tests before)
  await s3.put("life", "slow-node.txt", "finished after the signal");
  s3.faults.set("/life/slow-node.txt", { kind: "delay", ms: 1000, times: 1 });
  const inflight = fetch(px.url("/life/slow-node.txt"));
  await s3.waitForRequest((r) => r.pathname === "/life/slow-node.txt" && r.fault === "delay");
  px.signal("SIGTERM");
  await px.waitForLog((l) => l.msg === "draining");
  const res = await inflight;
  expect([res.status, res.headers.get("connection"), await res.text()]).toEqual([200, "close", "finished after the signal"]);
  expect(await px.exited).toBe(0);
  expect(px.logs().some((l) => String(l.msg).includes("shutdown timeout reached"))).toBe(false);
});

test.concurrent("engine node: a keep-alive connection whose answer began before the signal is closed once that answer ends, so the drain does not wait for shutdown_timeout", async () => {
  // (buffer_threshold_bytes small: the trickled object streams, its head sent before the signal)
  await using px = await startProxy(config.replace("port: 0,", "port: 0, engine: node, buffer_threshold_bytes: 4096,"));
  await s3.put("life", "trickle-node.bin", "y".repeat(BIG));
  s3.faults.set("/life/trickle-node.bin", { kind: "slowBody", bytesPerTick: 16_384, ms: 150, times: 1 });
  const sock = connect(px.port, "127.0.0.1");
  let got = "";
  const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
  const head = new Promise<void>((resolve) =>
    sock.on("data", (d: Buffer) => {
      got += d.toString("latin1");
      if (got.includes("\r\n\r\n")) resolve();
    }),
  );
  sock.write("GET /life/trickle-node.bin HTTP/1.1\r\nHost: proxy\r\n\r\n");
  await head;
  expect(got.startsWith("HTTP/1.1 200")).toBe(true);
  expect(got.toLowerCase()).not.toContain("connection: close");
  px.signal("SIGTERM");
  await px.waitForLog((l) => l.msg === "draining");
  // The whole answer arrives, then the server closes the connection, idle since.
  await closed;
  expect(got.toLowerCase()).toContain("transfer-encoding: chunked");
  expect(dechunk(got.slice(got.indexOf("\r\n\r\n") + 4))).toBe("y".repeat(BIG));
  expect(await px.exited).toBe(0);
  expect(px.logs().some((l) => String(l.msg).includes("shutdown timeout reached"))).toBe(false);
});

test.concurrent("SIGINT drains and exits 0", async () => {
  await using px = await startProxy(config);
  expect(await (await fetch(px.url("/life/a.txt"))).text()).toBe("a");
  px.signal("SIGINT");
  expect(await px.exited).toBe(0);
  expect(px.logs().find((l) => l.msg === "draining")?.signal).toBe("SIGINT");
});

test.concurrent("server.shutdown_delay: after SIGTERM /ready answers 503 while requests are still served, then the drain closes the listeners and the process exits 0", async () => {
  await using px = await startProxy(config.replace("shutdown_timeout: 10", "shutdown_timeout: 10, shutdown_delay: 2"));
  for (let i = 0; i < 200 && (await fetch(px.url("/ready"))).status !== 200; i++) await Bun.sleep(25); // (until the bucket was probed)
  expect((await fetch(px.url("/ready"))).status).toBe(200);
  px.signal("SIGTERM");
  await px.waitForLog((l) => l.msg === "not ready: waiting before closing the listeners");
  const ready = await fetch(px.url("/ready"));
  expect(ready.status).toBe(503);
  expect(((await ready.json()) as { reasons: string[] }).reasons).toContain("shutting down");
  expect(await (await fetch(px.url("/life/a.txt"))).text()).toBe("a"); // still served
  expect(await px.exited).toBe(0);
  const msgs = px.logs().map((l) => l.msg);
  expect(msgs.indexOf("draining")).toBeGreaterThan(msgs.indexOf("not ready: waiting before closing the listeners"));
});

test.concurrent("an upload still arriving when shutdown_timeout cuts the drain gets its access line (ClientClosedRequest) before the exit (it had none unless the audit trail was on)", async () => {
  const W = { accessKeyId: "AKIDLIFECYCLEWRITER", secretAccessKey: "lifecycle-writer-secret-0123456789" };
  await using up = await startS3Fixture({ buckets: [{ name: "life" }], credentials: [{ ...W, buckets: ["life"], write: true }] });
  const rw = `server: { address: 127.0.0.1, port: 0, shutdown_timeout: 1 }\nbuckets:\n${bucketYaml({ name: "life", prefix: "/life", bucket: "life", endpoint: up.endpoint, key: W.accessKeyId, secret: W.secretAccessKey, extra: "    access: read-write\n    auth: { anonymous_writes: true }\n" })}`;
  await using px = await startProxy(rw);
  const s = connect(px.port, "127.0.0.1");
  await new Promise((r) => s.once("connect", r));
  s.on("error", () => {});
  s.write("PUT /life/cut-upload.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + "u".repeat(10_000));
  await up.waitForRequest((e) => e.method === "PUT" && e.pathname === "/life/cut-upload.bin"); // (the upload is in flight upstream)
  px.signal("SIGTERM");
  expect(await px.exited).toBe(0);
  s.destroy();
  const line = px.logs().find((l) => l.msg === "request" && l.path === "/life/cut-upload.bin");
  expect(line).toMatchObject({ method: "PUT", status: 499 });
  expect(await up.exists("life", "cut-upload.bin")).toBe(false);
});

test.concurrent("SIGUSR1 and SIGUSR2 are ignored (a copied logrotate `kill -USR1` killed the process); SIGQUIT drains and exits 0 like SIGTERM", async () => {
  await using px = await startProxy(config);
  px.signal("SIGUSR1");
  px.signal("SIGUSR2");
  await px.waitForLog((l) => l.msg === "signal ignored" && l.signal === "SIGUSR2");
  expect(await (await fetch(px.url("/life/a.txt"))).text()).toBe("a");
  px.signal("SIGQUIT");
  expect(await px.exited).toBe(0);
  expect(px.logs().find((l) => l.msg === "draining")?.signal).toBe("SIGQUIT");
});

test.concurrent("a second SIGTERM during the drain cuts it short: the cut transfer still gets its access line and audit line (ClientClosedRequest), then exit 0", async () => {
  // (a small buffer_threshold_bytes: the trickled body, of unknown length, is held only up to it, then streams)
  await using px = await startProxy(`${config.replace("shutdown_timeout: 10", "shutdown_timeout: 10, buffer_threshold_bytes: 4096")}audit: { enabled: true, path: audit.log }\n`);
  s3.faults.set("/life/big.bin", { kind: "slowBody", bytesPerTick: 1000, ms: 50 });
  try {
    const res = await fetch(px.url("/life/big.bin"));
    expect(res.status).toBe(200);
    const body = res.arrayBuffer().then(
      () => "complete",
      () => "cut",
    );
    px.signal("SIGTERM");
    await px.waitForLog((l) => l.msg === "draining");
    px.signal("SIGTERM");
    expect(await px.exited).toBe(0);
    expect(await body).toBe("cut");
    const access = px.logs().find((l) => l.msg === "request" && l.path === "/life/big.bin");
    expect(access).toMatchObject({ status: 200, error: "ClientClosedRequest" });
    const msgs = px.logs().map((l) => l.msg);
    expect(msgs).toContain("second signal: cutting the drain short");
    expect(Number(access!.bytes)).toBeLessThan(BIG);
    expect(msgs.indexOf("request")).toBeLessThan(msgs.indexOf("stopped"));
    const audit = readFileSync(join(px.dir, "audit.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(audit.find((a) => a.key === "big.bin")).toMatchObject({ status: 200, result: "failed", reason: "ClientClosedRequest", bytes: access!.bytes });
  } finally {
    s3.faults.delete("/life/big.bin");
  }
});
