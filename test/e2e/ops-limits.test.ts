/**
 * Admission limits end to end: per-IP, global and per-bucket rate limits (429 + Retry-After) and
 * the concurrency cap (503 Overloaded + Retry-After), each on its own real proxy process (the
 * limits are process-wide) in front of one S3 fixture, with yatagarasu_rate_limited_total.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
let perIp: ProxyProcess;
let global: ProxyProcess;
let perBucket: ProxyProcess;
let capped: ProxyProcess;

const METRICS = `metrics: { enabled: true, address: 127.0.0.1, port: 0 }\n`;
const bucket = (name: string, extra = "") => `  - name: ${name}\n    path_prefix: /${name}\n    s3: { bucket: data, endpoint: "${s3.endpoint}"${extra} }\n`;

async function rateLimited(px: ProxyProcess, scope: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
  const series = `yatagarasu_rate_limited_total{scope="${scope}"} `;
  const line = text.split("\n").find((l) => l.startsWith(series));
  return line === undefined ? undefined : Number(line.slice(series.length));
}

async function get(px: ProxyProcess, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(px.url(path), { headers });
  const body = await res.text();
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body };
}

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true }], credentials: [] });
  await s3.put("data", "a.txt", "aaa", { contentType: "text/plain" });
  await s3.put("data", "slow.txt", "slow body", { contentType: "text/plain" });
  [perIp, global, perBucket, capped] = await Promise.all([
    startProxy(
      `server: { address: 127.0.0.1, port: 0, trusted_proxies: ["127.0.0.1/32"], rate_limit: { enabled: true, per_ip: { requests_per_second: 1, burst: 2 } } }\n${METRICS}buckets:\n${bucket("pub")}`,
    ),
    startProxy(`server: { address: 127.0.0.1, port: 0, rate_limit: { enabled: true, global: { requests_per_second: 1, burst: 2 } } }\n${METRICS}buckets:\n${bucket("pub")}`),
    startProxy(
      `server: { address: 127.0.0.1, port: 0 }\n${METRICS}buckets:\n${bucket("limited", ", rate_limit: { requests_per_second: 1, burst: 2 }")}${bucket("free")}`,
    ),
    startProxy(`server: { address: 127.0.0.1, port: 0, max_concurrent_requests: 1 }\n${METRICS}buckets:\n${bucket("pub")}`),
  ]);
});
afterAll(async () => {
  await Promise.all([perIp, global, perBucket, capped].map((p) => p?.stop()));
  await s3?.stop();
});

describe("rate limits", () => {
  test("per_ip: a client's third quick request gets 429 with Retry-After >= 1, another client is still admitted", async () => {
    const a = { "x-forwarded-for": "10.0.0.1" };
    expect((await get(perIp, "/pub/a.txt", a)).status).toBe(200);
    expect((await get(perIp, "/pub/a.txt", a)).status).toBe(200);
    const third = await get(perIp, "/pub/a.txt", a);
    expect(third.status).toBe(429);
    expect(Number(third.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(third.body)).toMatchObject({ error: "TooManyRequests", message: "Rate limit exceeded (per_ip)" });
    expect((await get(perIp, "/pub/a.txt", { "x-forwarded-for": "10.0.0.2" })).status).toBe(200);
    expect(await rateLimited(perIp, "per_ip")).toBe(1);
    expect(await rateLimited(perIp, "global")).toBe(0);
  });

  test("health and readiness endpoints are not rate limited", async () => {
    const a = { "x-forwarded-for": "10.0.0.1" };
    for (let i = 0; i < 5; i++) expect((await get(perIp, "/health", a)).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await get(perIp, "/ready", a)).status).not.toBe(429);
    expect(await rateLimited(perIp, "per_ip")).toBe(1);
  });

  test("global: the third quick request from any client gets 429 with Retry-After >= 1", async () => {
    expect((await get(global, "/pub/a.txt")).status).toBe(200);
    expect((await get(global, "/pub/a.txt")).status).toBe(200);
    const third = await get(global, "/pub/a.txt");
    expect(third.status).toBe(429);
    expect(Number(third.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(third.body)).toMatchObject({ error: "TooManyRequests", message: "Rate limit exceeded (global)" });
    expect(await rateLimited(global, "global")).toBe(1);
    expect(await rateLimited(global, "per_ip")).toBe(0);
  });

  test("bucket s3.rate_limit: the limited bucket refuses its third quick request, another bucket is unaffected", async () => {
    expect((await get(perBucket, "/limited/a.txt")).status).toBe(200);
    expect((await get(perBucket, "/limited/a.txt")).status).toBe(200);
    const third = await get(perBucket, "/limited/a.txt");
    expect(third.status).toBe(429);
    expect(Number(third.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(third.body)).toMatchObject({ error: "TooManyRequests", message: "Rate limit exceeded (bucket)" });
    for (let i = 0; i < 4; i++) expect((await get(perBucket, "/free/a.txt")).status).toBe(200);
    expect(await rateLimited(perBucket, "bucket")).toBe(1);
  });
});

describe("concurrency cap", () => {
  test("max_concurrent_requests 1: while one slow request is in flight the next gets 503 Overloaded with Retry-After; the slot frees afterwards", async () => {
    s3.faults.set("/data/slow.txt", { kind: "delay", ms: 800 });
    try {
      const slow = fetch(capped.url("/pub/slow.txt"));
      await s3.waitForRequest((r) => r.pathname === "/data/slow.txt");
      const second = await get(capped, "/pub/a.txt");
      expect(second.status).toBe(503);
      expect(second.retryAfter).toBe("1");
      expect(JSON.parse(second.body)).toMatchObject({ error: "Overloaded" });
      const first = await slow;
      expect(first.status).toBe(200);
      expect(await first.text()).toBe("slow body");
      expect((await get(capped, "/pub/a.txt")).status).toBe(200);
      expect(await rateLimited(capped, "concurrency")).toBe(1);
    } finally {
      s3.faults.delete("/data/slow.txt");
    }
  });
});

describe("rate limits across a reload", () => {
  test("a reload that leaves the limits as they were keeps the spent budgets (it gave every client a fresh burst); one that changes them starts new ones", async () => {
    const yaml = (timeout: number, burst: number) =>
      `server: { address: 127.0.0.1, port: 0, request_timeout: ${timeout}, rate_limit: { enabled: true, per_ip: { requests_per_second: 0.01, burst: ${burst} } } }\nbuckets:\n${bucket("pub")}`;
    await using px = await startProxy(yaml(30, 2));
    expect((await get(px, "/pub/a.txt")).status).toBe(200);
    expect((await get(px, "/pub/a.txt")).status).toBe(200);
    expect((await get(px, "/pub/a.txt")).status).toBe(429);
    const reloaded = (generation: number) => px.waitForLog((l) => l.msg === "config reloaded" && l.generation === generation);
    // another request_timeout only: the budget stays spent
    px.writeConfig(yaml(31, 2));
    px.signal("SIGHUP");
    await reloaded(2);
    expect((await get(px, "/pub/a.txt")).status).toBe(429);
    // the limits themselves changed: new budgets
    px.writeConfig(yaml(31, 3));
    px.signal("SIGHUP");
    await reloaded(3);
    expect((await get(px, "/pub/a.txt")).status).toBe(200);
  });
});
