/**
 * A cache fill that stalls mid-body must not hang its coalesced waiters, or every later request
 * for the key: the fill has a deadline (s3.timeout + time for 1 MiB/s of max_item_size).
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIAE2EFILL", secretAccessKey: "e2e-fill-secret" };
let s3: S3Fixture;
let px: ProxyProcess;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...CREDS, buckets: ["data"] }] });
  await s3.put("data", "stall.txt", "x".repeat(200));
  px = await startProxy(`server: { address: 127.0.0.1, port: 0 }
cache:
  enabled: true
  memory: { max_item_size_mb: 0.5, max_cache_size_mb: 16 }
buckets:
${bucketYaml({ name: "c", prefix: "/c", bucket: "data", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: "    cache: { enabled: true }\n" })}`.replace("secret_key: \"e2e-fill-secret\" }", "secret_key: \"e2e-fill-secret\", timeout: 0.5, retry: { max_attempts: 1 } }"));
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

test("a fill whose body stalls ends in 504 for every waiter within its deadline, and the key fills normally afterwards", async () => {
  // One byte per second: the 200-byte body would take 200 s; the deadline is 0.5 s + 0.5 s.
  s3.faults.set("/data/stall.txt", { kind: "slowBody", bytesPerTick: 1, ms: 1000, times: 1 });
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: 5 }, () => fetch(px.url("/c/stall.txt")).then(async (r) => ({ status: r.status, body: await r.json() as { error: string } }))));
  const elapsed = performance.now() - started;
  for (const r of results) expect(r).toEqual({ status: 504, body: expect.objectContaining({ error: "GatewayTimeout" }) });
  expect(elapsed).toBeLessThan(10_000);
  expect(s3.requests.filter((r) => !r.admin && r.pathname === "/data/stall.txt" && r.method === "GET")).toHaveLength(1);

  const next = await fetch(px.url("/c/stall.txt"));
  expect(next.status).toBe(200);
  expect(next.headers.get("x-cache")).toBe("MISS");
  expect(await next.text()).toBe("x".repeat(200));
  const hit = await fetch(px.url("/c/stall.txt"));
  expect(hit.headers.get("x-cache")).toBe("HIT");
  await hit.body?.cancel();
});
