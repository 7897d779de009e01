/**
 * A body the upstream cuts before any byte of it reached the client is that replica's failure, on
 * the fetch client too (https endpoints, AWS, `upstream_client: fetch`): the object phase reads a
 * body up to buffer_threshold_bytes whole, and that read now happens inside the attempt, as the own
 * client's does, so the next replica answers, the metrics count the primary's failure and its
 * breaker can open. Before, the attempt "succeeded" at the response head and the client got 502.
 *
 * The primary is reached through a TCP relay that cuts each answer after 1000 bytes, head
 * included, as a connection reset mid-body would (the S3 fixture answers with Content-Length).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { tcpRelay } from "../cache/relay.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { STARTUP_MS, startProxy, type ProxyProcess } from "./harness.ts";

setDefaultTimeout(30_000);

const KEY = { accessKeyId: "AKIABODYFAILOVER0001", secretAccessKey: "body/failover/secret/EXAMPLE/0000000000" };
let primary: S3Fixture;
let secondary: S3Fixture;
let relay: Awaited<ReturnType<typeof tcpRelay>>;
let px: ProxyProcess;

async function metric(series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
  for (const line of text.split("\n")) if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  return 0;
}

const body = (c: string) => c.repeat(64 * 1024);

beforeAll(async () => {
  primary = await startS3Fixture({ buckets: [{ name: "p-bucket" }], credentials: [{ ...KEY, buckets: ["p-bucket"] }] });
  secondary = await startS3Fixture({ buckets: [{ name: "s-bucket" }], credentials: [{ ...KEY, buckets: ["s-bucket"] }] });
  await primary.put("p-bucket", "cut.bin", body("P"));
  await secondary.put("s-bucket", "cut.bin", body("S"));
  relay = await tcpRelay(Number(new URL(primary.endpoint).port));
  const replica = (name: string, bucket: string, endpoint: string, priority: number) =>
    `        - { name: ${name}, bucket: ${bucket}, region: us-east-1, endpoint: "${endpoint}", access_key: "${KEY.accessKeyId}", secret_key: "${KEY.secretAccessKey}", priority: ${priority} }\n`;
  px = await startProxy(
    `server: { address: 127.0.0.1, port: 0, upstream_client: fetch }\n` +
      `metrics: { enabled: true, address: 127.0.0.1, port: 0 }\n` +
      `buckets:\n  - name: products\n    path_prefix: /products\n    s3:\n` +
      `      retry: { max_attempts: 2, initial_backoff_ms: 5, max_backoff_ms: 10 }\n` +
      `      circuit_breaker: { failure_threshold: 3, success_threshold: 1, timeout_seconds: 30, half_open_max_requests: 1 }\n` +
      `      replicas:\n` +
      replica("primary", "p-bucket", `http://127.0.0.1:${relay.port}`, 1) +
      replica("secondary", "s-bucket", secondary.endpoint, 2),
  );
}, STARTUP_MS + 30_000); // (two fixtures and a proxy: a loaded host may take a while to start the proxy, harness.ts STARTUP_MS)

afterAll(async () => {
  await px?.stop();
  relay?.close();
  await primary?.stop();
  await secondary?.stop();
});

describe("a body cut mid-way on the fetch client", () => {
  test("whole: the primary answers", async () => {
    const res = await fetch(px.url("/products/cut.bin"));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(body("P"));
  });

  test("cut after 1000 bytes: the secondary answers every time, the primary's failures are counted, and its breaker opens", async () => {
    const failures = 'yatagarasu_s3_replica_requests_total{bucket="products",replica="primary",result="failure"}';
    const before = await metric(failures);
    relay.truncateResponses(1000);
    try {
      for (let i = 0; i < 4; i++) {
        const res = await fetch(px.url("/products/cut.bin"));
        expect(res.status).toBe(200);
        expect(await res.text()).toBe(body("S"));
      }
      // three failures open the breaker: the fourth request went straight to the secondary
      expect(await metric(failures)).toBe(before + 3);
      expect(await metric(`yatagarasu_s3_replica_circuit_breaker_state{bucket="products",replica="primary"}`)).toBe(1);
      expect(await metric(`yatagarasu_s3_replica_requests_total{bucket="products",replica="primary",result="skipped"}`)).toBeGreaterThan(0);
    } finally {
      relay.truncateResponses(undefined);
    }
  });
});

describe("a cache fill cut mid-body on the fetch client (an object above buffer_threshold_bytes, within the cache's item size)", () => {
  let cached: ProxyProcess;
  beforeAll(async () => {
    await primary.put("p-bucket", "fill.bin", body("F").repeat(4)); // 256 KiB
    await secondary.put("s-bucket", "fill.bin", body("G").repeat(4));
    const replica = (name: string, bucket: string, endpoint: string, priority: number) =>
      `        - { name: ${name}, bucket: ${bucket}, region: us-east-1, endpoint: "${endpoint}", access_key: "${KEY.accessKeyId}", secret_key: "${KEY.secretAccessKey}", priority: ${priority} }\n`;
    cached = await startProxy(
      `server: { address: 127.0.0.1, port: 0, upstream_client: fetch, buffer_threshold_bytes: 65536 }\n` +
        `metrics: { enabled: true, address: 127.0.0.1, port: 0 }\n` +
        `cache: { enabled: true, memory: { max_item_size_mb: 1, max_cache_size_mb: 8 } }\n` +
        `buckets:\n  - name: cached\n    path_prefix: /cached\n    cache: { enabled: true }\n` +
        `    s3: { bucket: p-bucket, region: us-east-1, endpoint: "http://127.0.0.1:${relay.port}", access_key: "${KEY.accessKeyId}", secret_key: "${KEY.secretAccessKey}", retry: { max_attempts: 1, initial_backoff_ms: 0, max_backoff_ms: 0 } }\n` +
        `  - name: replicated\n    path_prefix: /replicated\n    cache: { enabled: true }\n    s3:\n      retry: { max_attempts: 1 }\n` +
        `      circuit_breaker: { failure_threshold: 1, success_threshold: 1, timeout_seconds: 60, half_open_max_requests: 1 }\n      replicas:\n` +
        replica("primary", "p-bucket", `http://127.0.0.1:${relay.port}`, 1) +
        replica("secondary", "s-bucket", secondary.endpoint, 2),
    );
  }, STARTUP_MS + 30_000);
  afterAll(async () => {
    await cached?.stop();
  });

  test("502 BadGateway naming the cut (it was 500 'Internal error', logged as an unexpected error), nothing cached; whole again once the upstream is", async () => {
    relay.truncateResponses(100_000);
    try {
      const res = await fetch(cached.url("/cached/fill.bin"));
      expect(res.status).toBe(502);
      expect(await res.json()).toMatchObject({ error: "BadGateway" });
    } finally {
      relay.truncateResponses(undefined);
    }
    const whole = await fetch(cached.url("/cached/fill.bin"));
    expect([whole.status, whole.headers.get("x-cache"), (await whole.text()).length]).toEqual([200, "MISS", 256 * 1024]);
    expect(cached.output()).not.toContain("unexpected error");
  });

  // The fill's body (above buffer_threshold_bytes) is read after the head, which the breaker had
  // counted a success; on the fetch client nothing counted its cut: failed over every time, the
  // primary's breaker stayed closed.
  test("with replicas: the secondary answers, and the cut is charged to the primary's breaker (it opens)", async () => {
    const state = async () => {
      const text = await (await fetch(`http://127.0.0.1:${cached.metricsPort}/metrics`)).text();
      return text.split("\n").find((l) => l.startsWith('yatagarasu_s3_replica_circuit_breaker_state{bucket="replicated",replica="primary"} '))?.split(" ")[1];
    };
    relay.truncateResponses(100_000);
    try {
      const res = await fetch(cached.url("/replicated/fill.bin"));
      expect([res.status, await res.text()]).toEqual([200, body("G").repeat(4)]);
      expect(await state()).toBe("1");
    } finally {
      relay.truncateResponses(undefined);
    }
  });
});
