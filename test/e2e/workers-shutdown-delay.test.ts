/**
 * server.shutdown_delay with server.workers: 2. A SIGTERM to worker 0 (what a supervisor that
 * signals the main pid sends) must make every worker answer /health and /ready 503 for the whole
 * delay, not worker 0 alone: a load balancer's checks land on any worker (SO_REUSEPORT), and one
 * that keeps saying 200 keeps the instance in rotation until its listeners close under the clients.
 * (Until session 27 the children heard of the signal only when worker 0's delay had ended.)
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { startProxy, stoppedWorkers } from "./harness.ts";

setDefaultTimeout(60_000);

let s3: S3Fixture;
beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true }], credentials: [] });
  await s3.put("data", "obj.txt", "shared body");
});
afterAll(async () => {
  await s3?.stop();
});

test("SIGTERM to worker 0 with shutdown_delay: every worker answers /health 503 during the delay while objects are still served, then the group exits 0", async () => {
  const DELAY_S = 4;
  await using px = await startProxy(
    // (logging at debug: a 200 /health's access line, which tells which worker answered, is at debug)
    `server: { address: 127.0.0.1, port: 0, workers: 2, shutdown_timeout: 10, shutdown_delay: ${DELAY_S} }\nlogging: { level: debug }\n` +
      `buckets:\n  - name: one\n    path_prefix: /one\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n`,
  );
  await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "listening" && l.worker === w)));
  const health = async () => (await fetch(px.url("/health"), { headers: { connection: "close" } })).status;
  // Both workers serve (new connections spread over them), and say 200 before the signal.
  await waitFor(
    async () => {
      await Promise.all(Array.from({ length: 4 }, health));
      return [0, 1].every((w) => px.logs().some((l) => l.msg === "request" && l.path === "/health" && l.worker === w));
    },
    { timeoutMs: 10_000, intervalMs: 0, message: "both workers to answer /health" },
  );

  const signalledAt = Date.now();
  px.signal("SIGTERM");
  await px.waitForLog((l) => l.msg === "not ready: waiting before closing the listeners" && l.worker === 0);
  const mark = px.logs().length;
  // Well inside the delay: ask until the child has answered some.
  const seen: number[] = [];
  await waitFor(
    async () => {
      seen.push(...(await Promise.all(Array.from({ length: 4 }, health))));
      return px.logs().slice(mark).some((l) => l.msg === "request" && l.path === "/health" && l.worker === 1);
    },
    { timeoutMs: (DELAY_S - 1) * 1000, intervalMs: 50, message: "worker 1 to answer /health during the delay" },
  );
  expect(Date.now() - signalledAt).toBeLessThan(DELAY_S * 1000);
  expect(seen.every((s) => s === 503)).toBe(true);
  const during = px.logs().slice(mark).filter((l) => l.msg === "request" && l.path === "/health");
  expect(during.filter((l) => l.worker === 1).every((l) => l.status === 503)).toBe(true);
  // Objects are still served by both during the delay.
  expect(await (await fetch(px.url("/one/obj.txt"), { headers: { connection: "close" } })).text()).toBe("shared body");

  expect(await px.exited).toBe(0);
  // The listeners closed only once the delay had passed.
  expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(DELAY_S * 1000 - 200);
  expect(px.logs().find((l) => l.msg === "not ready: waiting before closing the listeners" && l.worker === 1)).toBeDefined();
  expect(stoppedWorkers(px)).toEqual([0, 1]);
});

test("a second signal during the delay cuts it short on every worker: the group exits at once", async () => {
  await using px = await startProxy(
    `server: { address: 127.0.0.1, port: 0, workers: 2, shutdown_timeout: 10, shutdown_delay: 30 }\n` +
      `buckets:\n  - name: one\n    path_prefix: /one\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n`,
  );
  await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "listening" && l.worker === w)));
  px.signal("SIGTERM");
  await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "not ready: waiting before closing the listeners" && l.worker === w)));
  const at = Date.now();
  px.signal("SIGTERM");
  expect(await px.exited).toBe(0);
  expect(Date.now() - at).toBeLessThan(10_000);
});

test("a child killed during the drain is logged by worker 0 (its transfers end unlogged otherwise); the children it ends itself are not", async () => {
  await using px = await startProxy(
    `server: { address: 127.0.0.1, port: 0, workers: 3, shutdown_timeout: 10, shutdown_delay: 30 }\n` +
      `buckets:\n  - name: one\n    path_prefix: /one\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n`,
  );
  const listening = await Promise.all([0, 1, 2].map((w) => px.waitForLog((l) => l.msg === "listening" && l.worker === w)));
  px.signal("SIGTERM");
  await Promise.all([0, 1, 2].map((w) => px.waitForLog((l) => l.msg === "not ready: waiting before closing the listeners" && l.worker === w)));
  process.kill(Number(listening[1].pid), "SIGKILL");
  const line = await px.waitForLog((l) => l.msg === "worker exited during the drain");
  expect(line).toMatchObject({ level: "error", worker: 0, child: 1, signal: "SIGKILL" });
  // Worker 2 drains as asked (a second signal cuts it short): it ends with 0, not news.
  px.signal("SIGTERM");
  expect(await px.exited).toBe(0);
  expect(px.logs().filter((l) => l.msg === "worker exited during the drain")).toEqual([line]);
  expect(px.logs().some((l) => l.msg === "worker exited unexpectedly; restarting")).toBe(false);
});
