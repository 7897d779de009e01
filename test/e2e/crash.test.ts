/**
 * Defect 4: the crash policy, on the real process. An uncaught exception or an unhandled
 * rejection is logged as fatal (message and stack), the listener stops accepting, in-flight
 * requests get at most server.shutdown_timeout, and the process exits 70.
 *
 * The error is injected by test/fixtures/crash-hook.ts, preloaded through BUN_OPTIONS: nothing
 * in src/ carries a test hook.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const HOOK = join(import.meta.dir, "../fixtures/crash-hook.ts");
const SECRET = "jwt-secret-never-logged-5b7f-0123456789";
let s3: S3Fixture;

const config = (shutdownTimeout: number) =>
  `server: { address: 127.0.0.1, port: 0, shutdown_timeout: ${shutdownTimeout} }\n` +
  `jwt: { secret: "${SECRET}" }\n` +
  `buckets:\n  - name: one\n    path_prefix: /one\n    s3: { bucket: data, endpoint: "${s3.endpoint}", timeout: 60 }\n`;
const crashing = (mode: "throw" | "reject") => ({ env: { BUN_OPTIONS: `--preload ${HOOK}`, CRASH_HOOK: mode } });

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true }], credentials: [] });
  await s3.put("data", "slow.txt", "slow body", { contentType: "text/plain" });
  await s3.put("data", "stuck.txt", "never sent", { contentType: "text/plain" });
});
afterAll(async () => {
  await s3?.stop();
});

/** The status of a request sent now, or "refused" when nothing accepts it. */
const statusNow = (url: string) =>
  fetch(url, { keepalive: false }).then(
    async (r) => (await r.arrayBuffer(), r.status),
    () => "refused" as const,
  );

test("uncaught exception: logged as fatal with its stack, no new requests, the in-flight one finishes, exit 70", async () => {
  await using px = await startProxy(config(10), crashing("throw"));
  s3.faults.set("/data/slow.txt", { kind: "delay", ms: 1500 });
  try {
    const inflight = fetch(px.url("/one/slow.txt"));
    await s3.waitForRequest((r) => r.method === "GET" && r.pathname === "/data/slow.txt");
    px.signal("SIGUSR2");
    const fatal = await px.waitForLog((l) => l.fatal === true);
    expect(fatal).toMatchObject({ level: "error", msg: "uncaught exception", error: "injected exception from crash-hook", exit_code: 70 });
    expect(String(fatal.stack)).toContain("crash-hook");

    expect(await statusNow(px.url("/health"))).not.toBe(200);
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("slow body");
    expect(await px.exited).toBe(70);

    const msgs = px.logs().map((l) => l.msg);
    expect(msgs.indexOf("uncaught exception")).toBeLessThan(msgs.indexOf("draining"));
    expect(msgs.indexOf("draining")).toBeLessThan(msgs.indexOf("stopped"));
    expect(px.output()).not.toContain(SECRET);
  } finally {
    s3.faults.delete("/data/slow.txt");
  }
}, 30_000);

test("the drain after a crash is bounded by server.shutdown_timeout", async () => {
  await using px = await startProxy(config(1), crashing("throw"));
  s3.faults.set("/data/stuck.txt", { kind: "delay", ms: 30_000 });
  try {
    const inflight = fetch(px.url("/one/stuck.txt")).then(
      (r) => r.arrayBuffer(),
      () => undefined,
    );
    await s3.waitForRequest((r) => r.method === "GET" && r.pathname === "/data/stuck.txt");
    px.signal("SIGUSR2");
    await px.waitForLog((l) => l.fatal === true);
    expect(await px.exited).toBe(70);
    // Timed by the proxy's own log timestamps (the pipe may deliver lines late to this process).
    const at = (msg: string) => Date.parse(String(px.logs().find((l) => l.msg === msg)?.ts));
    const ms = at("stopped") - at("uncaught exception");
    expect(px.logs().some((l) => l.msg === "shutdown timeout reached: closing remaining connections")).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(5000);
    await inflight;
  } finally {
    s3.faults.delete("/data/stuck.txt");
  }
}, 30_000);

test("unhandled rejection: the same policy (fatal, drained, exit 70)", async () => {
  await using px = await startProxy(config(10), crashing("reject"));
  px.signal("SIGUSR2");
  const fatal = await px.waitForLog((l) => l.fatal === true);
  expect(fatal).toMatchObject({ level: "error", msg: "unhandled rejection", error: "injected rejection from crash-hook", exit_code: 70 });
  expect(String(fatal.stack)).toContain("crash-hook");
  expect(await px.exited).toBe(70);
  expect(px.logs().some((l) => l.msg === "stopped")).toBe(true);
  expect(px.output()).not.toContain(SECRET);
}, 30_000);

test("without the hook's trigger the same process serves and stops with 0 (the hook alone changes nothing)", async () => {
  const px = await startProxy(config(10), crashing("throw"));
  expect(await statusNow(px.url("/health"))).toBe(200);
  expect(await px.stop()).toBe(0);
}, 30_000);
