/** server.request_timeout is enforced: the whole wait for a response head (all retries included) is bounded. */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
let px: ProxyProcess;
const KEY = { accessKeyId: "AKIAREQTIMEOUT000000", secretAccessKey: "request-timeout-secret-0123456789abcdefg" };

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rt" }], credentials: [{ ...KEY, buckets: ["rt"] }] });
  await s3.put("rt", "slow.txt", "slow body");
  await s3.put("rt", "ok.txt", "ok body");
  // Each attempt may wait 20 s for S3 (s3.timeout), 3 attempts; the whole request only 0.6 s.
  px = await startProxy(
    `server: { address: 127.0.0.1, port: 0, request_timeout: 0.6 }\nbuckets:\n  - name: rt\n    path_prefix: /rt\n    s3:\n      bucket: rt\n      endpoint: "${s3.endpoint}"\n      access_key: ${KEY.accessKeyId}\n      secret_key: "${KEY.secretAccessKey}"\n      timeout: 20\n      retry: { max_attempts: 3, initial_backoff_ms: 0, max_backoff_ms: 0 }\n`,
  );
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

test("an upstream slower than request_timeout (but within s3.timeout) → 504 after request_timeout", async () => {
  // S3 holds its answer until the test is done (s3.timeout, 20 s, would end the attempt first):
  // without request_timeout the 504 comes after 20 s at the earliest; with it after 0.6 s. The
  // bound between (10 s) leaves a loaded host's pause several seconds (3 s failed under a 2.6 s
  // pause of the proxy).
  const { promise: done, resolve: release } = Promise.withResolvers<void>();
  s3.faults.set("/rt/slow.txt", { kind: "delay", ms: 30_000, until: done });
  try {
    const started = performance.now();
    const res = await fetch(px.url("/rt/slow.txt"), { headers: { "x-request-id": "rt-slow" } });
    const took = performance.now() - started;
    expect(res.status).toBe(504);
    expect(((await res.json()) as { error: string }).error).toBe("GatewayTimeout");
    expect(took).toBeGreaterThanOrEqual(550);
    expect(took).toBeLessThan(10_000);
    const line = await px.waitForLog((l) => l.msg === "request" && l.request_id === "rt-slow");
    expect(line.status).toBe(504);
  } finally {
    release();
    s3.faults.delete("/rt/slow.txt");
  }
});

test("requests within the deadline are unaffected, and the proxy keeps serving after a timeout", async () => {
  const res = await fetch(px.url("/rt/ok.txt"));
  expect(res.status).toBe(200);
  expect(await res.text()).toBe("ok body");
});

/**
 * An upstream that sends a response head, then trickles the body (a byte every 100 ms: never a
 * stall). The client gets 504 at request_timeout, and the upstream exchange must be cut with it,
 * not left reading for as long as the upstream likes (a connection and a file descriptor each,
 * outside max_concurrent_requests). Both upstream clients: the own pool and fetch.
 */
test("after a request_timeout 504 the upstream exchange is cut (a trickling body), with either upstream client", async () => {
  const closed: number[] = [];
  const opened: number[] = [];
  const trickles = new Set<ReturnType<typeof setInterval>>();
  const upstream = Bun.listen<{ timer?: ReturnType<typeof setInterval> }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = {};
        opened.push(performance.now());
      },
      data(s) {
        if (s.data.timer !== undefined) return;
        s.write("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n");
        const timer = setInterval(() => s.write("x"), 100); // the upstream's pace, what is under test
        s.data.timer = timer;
        trickles.add(timer);
      },
      close(s) {
        if (s.data.timer !== undefined) {
          clearInterval(s.data.timer);
          trickles.delete(s.data.timer);
        }
        closed.push(performance.now());
      },
      error() {},
    },
  });
  const proxies: ProxyProcess[] = [];
  try {
    for (const client of ["auto", "fetch"]) {
      const p = await startProxy(
        `server: { address: 127.0.0.1, port: 0, request_timeout: 0.6, upstream_client: ${client} }\nbuckets:\n  - name: t\n    path_prefix: /t\n    s3: { bucket: trickle, endpoint: "http://127.0.0.1:${upstream.port}", timeout: 30 }\n`,
      );
      proxies.push(p);
      const before = closed.length;
      const res = await fetch(p.url("/t/trickle.txt"));
      expect({ client, status: res.status }).toEqual({ client, status: 504 });
      await res.arrayBuffer();
      const answeredAt = performance.now();
      // cut within a sweep or two of the deadline, not after the 1000 bytes (100 s); the bound
      // leaves a loaded host's pause several seconds (3 s failed under a 3.2 s pause of the proxy)
      await waitFor(() => closed.length > before, { timeoutMs: 20_000, message: () => `${client}: the upstream connection is still open ${Math.round(performance.now() - answeredAt)} ms after the 504` });
      expect(closed.at(-1)! - answeredAt).toBeLessThan(20_000);
    }
    expect(opened.length).toBeGreaterThanOrEqual(2);
  } finally {
    for (const p of proxies) await p.stop();
    for (const t of trickles) clearInterval(t);
    upstream.stop(true);
  }
});
