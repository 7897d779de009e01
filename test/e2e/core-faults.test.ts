/** Upstream failures through the real server: S3 throttling, 5xx, timeouts, upstream down. */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
let px: ProxyProcess;
const KEY = { accessKeyId: "AKIAFAULTS0000000000", secretAccessKey: "faults-secret-0123456789abcdefghijklmnopq" };

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "faults" }], credentials: [{ ...KEY, buckets: ["faults"] }] });
  for (const k of ["slow.txt", "e500.txt", "delay.txt", "down.txt", "ok.txt", "reset.txt"]) await s3.put("faults", k, `body of ${k}`);
  px = await startProxy(
    `server: { address: 127.0.0.1, port: 0 }\nbuckets:\n  - name: faults\n    path_prefix: /faults\n    s3:\n      bucket: faults\n      endpoint: "${s3.endpoint}"\n      access_key: ${KEY.accessKeyId}\n      secret_key: "${KEY.secretAccessKey}"\n      timeout: 0.5\n      retry: { max_attempts: 1 }\n`,
  );
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

async function errorOf(path: string): Promise<{ status: number; headers: Headers; body: string }> {
  const res = await fetch(px.url(path), { headers: { "x-request-id": `f-${path.replace(/\W/g, "")}` } });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

function expectCleanBody(body: string, code: string): void {
  expect(JSON.parse(body)).toMatchObject({ error: code });
  expect(Object.keys(JSON.parse(body)).sort()).toEqual(["error", "message", "request_id"]);
  expect(body).not.toContain("<");
  expect(body).not.toContain(KEY.secretAccessKey);
  expect(body).not.toContain("    at ");
}

test("S3 SlowDown (503, not retried with max_attempts: 1) → 503 SlowDown with Retry-After", async () => {
  s3.faults.set("/faults/slow.txt", { kind: "slowdown" });
  const r = await errorOf("/faults/slow.txt");
  expect(r.status).toBe(503);
  expect(r.headers.get("retry-after")).toBe("1");
  expectCleanBody(r.body, "SlowDown");
  expect(s3.faults.hits("/faults/slow.txt")).toBe(1);
});

test("a HEAD's SlowDown told only by MinIO's x-minio-error-code header (503 Service Unavailable, no body) → the 503 SlowDown a GET's gets, headers only (Retry-After), logged as SlowDown (was ServiceUnavailable, an outage)", async () => {
  const minio = { kind: "error", status: 503, code: "SlowDown", message: "Please reduce your request rate.", headers: { "x-minio-error-code": "SlowDown" } } as const;
  s3.faults.set("/faults/minio-slow.txt", minio);
  const shape = (r: Response) => {
    const h = Object.fromEntries([...r.headers].filter(([k]) => !["date", "x-request-id", "content-length", "transfer-encoding"].includes(k)));
    return { status: r.status, headers: h };
  };
  const get = await fetch(px.url("/faults/minio-slow.txt"), { headers: { "x-request-id": "f-minio-get" } });
  expectCleanBody(await get.text(), "SlowDown");
  const head = await fetch(px.url("/faults/minio-slow.txt"), { method: "HEAD", headers: { "x-request-id": "f-minio-head" } });
  expect(shape(head)).toEqual(shape(get));
  expect(head.headers.get("retry-after")).toBe("1");
  // (what the operator sees: a throttle, as the GET's, not an outage: ServiceUnavailable, warn, upstream_error HTTP_503)
  const lineOf = async (id: string) => {
    const l = await px.waitForLog((e) => e.msg === "request" && e.request_id === id);
    return { level: l.level, status: l.status, error: l.error, s3_error: l.s3_error, upstream_error: l.upstream_error };
  };
  expect(await lineOf("f-minio-head")).toEqual(await lineOf("f-minio-get"));
  expect(await lineOf("f-minio-head")).toMatchObject({ status: 503, error: "SlowDown", s3_error: "SlowDown" });
  expect(s3.faults.hits("/faults/minio-slow.txt")).toBe(2);
});

test("S3 500 InternalError → 502 BadGateway", async () => {
  s3.faults.set("/faults/e500.txt", { kind: "error500" });
  const r = await errorOf("/faults/e500.txt");
  expect(r.status).toBe(502);
  expectCleanBody(r.body, "BadGateway");
});

test("a connection reset by S3 after the request went out → 502 BadGateway 'closed before it answered' (the upstream was reached: not 'could not be reached')", async () => {
  s3.faults.set("/faults/reset.txt", { kind: "reset" });
  const r = await errorOf("/faults/reset.txt");
  expect(r.status).toBe(502);
  expectCleanBody(r.body, "BadGateway");
  expect(r.body).toContain("The upstream connection closed before it answered");
  // a HEAD alike (the fixture wrote a bare 200 head for it once, relayed as 200)
  const head = await fetch(px.url("/faults/reset.txt"), { method: "HEAD" });
  expect(head.status).toBe(502);
});

test("S3 cutting a body held whole (within buffer_threshold_bytes) after 1 of its 2 MiB → 502 BadGateway, logged UpstreamProtocolError", async () => {
  await s3.put("faults", "cut.bin", new Uint8Array(2 * 1024 * 1024).fill(1));
  s3.faults.set("/faults/cut.bin", { kind: "truncate", afterBytes: 1_000_000, times: 1 });
  const r = await errorOf("/faults/cut.bin");
  expect(r.status).toBe(502);
  expectCleanBody(r.body, "BadGateway");
  expect(r.body).toContain("The upstream connection failed while sending the object");
  const line = await px.waitForLog((e) => e.msg === "request" && e.path === "/faults/cut.bin");
  expect([line.status, line.upstream_error]).toEqual([502, "UpstreamProtocolError"]);
});

test("S3 slower than s3.timeout (0.5 s) → 504 GatewayTimeout", async () => {
  // S3 answers after 30 s (or once the test is done): without the timeout the 504 would come at
  // request_timeout (30 s), if at all. The bound (10 s) leaves a loaded host's pause several
  // seconds (3.5 s, against an upstream that answered at 10 s, failed under a 3.6 s pause).
  const { promise: done, resolve: release } = Promise.withResolvers<void>();
  s3.faults.set("/faults/delay.txt", { kind: "delay", ms: 30_000, until: done });
  try {
    const started = performance.now();
    const r = await errorOf("/faults/delay.txt");
    const took = performance.now() - started;
    expect(r.status).toBe(504);
    expectCleanBody(r.body, "GatewayTimeout");
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(10_000);
  } finally {
    release();
  }
});

test("the access log names the upstream error code of a failed request, and the upstream's request id (what AWS support and CloudTrail know it by)", async () => {
  const line = await px.waitForLog((l) => l.msg === "request" && l.request_id === "f-faultse500txt");
  expect(line).toMatchObject({ status: 502, error: "BadGateway", s3_error: "InternalError", bucket: "faults" });
  expect(String(line.s3_request_id)).toMatch(/^[0-9A-F]{16}$/); // (the fixture's x-amz-request-id, as S3's)
});

test("a 412 or 416 the upstream answered (no cache) names the upstream's request id in the access line, as its other refusals do (it had none: a line could not tell it from the proxy's own)", async () => {
  const [p412, p416] = await Promise.all([
    fetch(px.url("/faults/ok.txt"), { headers: { "x-request-id": "f-412", "if-match": '"not-the-etag"' } }),
    fetch(px.url("/faults/ok.txt"), { headers: { "x-request-id": "f-416", range: "bytes=5000-6000" } }),
  ]);
  expect([p412.status, p416.status]).toEqual([412, 416]);
  await Promise.all([p412.text(), p416.text()]);
  for (const [id, error] of [["f-412", "PreconditionFailed"], ["f-416", "RangeNotSatisfiable"]] as const) {
    const line = await px.waitForLog((l) => l.msg === "request" && l.request_id === id);
    expect(line).toMatchObject({ error, bucket: "faults" });
    expect(String(line.s3_request_id)).toMatch(/^[0-9A-F]{16}$/);
  }
});

test("S3 down (not listening) → 502 UpstreamUnreachable, and it serves again once S3 is back", async () => {
  await s3.pause();
  try {
    const r = await errorOf("/faults/down.txt");
    expect(r.status).toBe(502);
    expectCleanBody(r.body, "UpstreamUnreachable");
  } finally {
    await s3.resume();
  }
  const ok = await fetch(px.url("/faults/ok.txt"));
  expect(ok.status).toBe(200);
  expect(await ok.text()).toBe("body of ok.txt");
});
