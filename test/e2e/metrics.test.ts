/**
 * The Prometheus listener end to end: a separate port, every family with HELP and TYPE, exact
 * request counts after real traffic, process metrics, bounded labels (no object keys or paths),
 * and /metrics on the main port answering 404.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { rawHttp, rawStatus } from "../helpers/raw-http.ts";
import { parseConfig } from "../../src/config/load.ts";
import { listenMetrics } from "../../src/server.ts";
import { hmacToken, nowSec } from "../fixtures/jwt.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SECRET = "metrics-e2e-secret-0123456789abcdef";
let s3: S3Fixture;
let px: ProxyProcess;
let text: string;
let errorBodyBytes = 0;
let anonBodyBytes = 0;

function sample(series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true, publicList: true }], credentials: [] });
  await s3.put("data", "hello.txt", "hello world\n", { contentType: "text/plain" });
  px = await startProxy(
    `server: { address: 127.0.0.1, port: 0 }\n` +
      `metrics: { enabled: true, address: 127.0.0.1, port: 0 }\n` +
      `jwt: { enabled: true, algorithm: HS256, secret: "${SECRET}" }\n` +
      `buckets:\n` +
      `  - name: pub\n    path_prefix: /pub\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n` +
      `  - name: priv\n    path_prefix: /priv\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n    auth: { enabled: true }\n`,
  );
  // Real traffic: 5 × 200 on pub, 50 distinct missing keys (404), 1 HEAD, auth missing + success on priv.
  for (let i = 0; i < 5; i++) {
    const res = await fetch(px.url("/pub/hello.txt"));
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  }
  await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const res = await fetch(px.url(`/pub/dir-zq${i}/secretive-object-name-${i}.bin`));
      expect(res.status).toBe(404);
      errorBodyBytes += (await res.arrayBuffer()).byteLength;
    }),
  );
  const head = await fetch(px.url("/pub/hello.txt"), { method: "HEAD" });
  expect(head.status).toBe(200);
  const anon = await fetch(px.url("/priv/hello.txt"));
  expect(anon.status).toBe(401);
  anonBodyBytes = (await anon.arrayBuffer()).byteLength;
  const token = hmacToken({ alg: "HS256", typ: "JWT" }, { sub: "u1", exp: nowSec() + 300 }, SECRET);
  const authed = await fetch(px.url("/priv/hello.txt"), { headers: { authorization: `Bearer ${token}` } });
  expect(authed.status).toBe(200);
  await authed.arrayBuffer();

  const res = await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
  text = await res.text();
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

test("the metrics listener is a separate port from the proxy port", () => {
  expect(px.metricsPort).toBeNumber();
  expect(px.metricsPort).not.toBe(px.port);
});

test("every sample belongs to a family with HELP and TYPE lines", () => {
  const help = new Set<string>();
  const type = new Map<string, string>();
  const samples = new Set<string>();
  for (const line of text.split("\n")) {
    if (line.startsWith("# HELP ")) help.add(line.split(" ")[2]);
    else if (line.startsWith("# TYPE ")) type.set(line.split(" ")[2], line.split(" ")[3]);
    else if (line.trim() !== "") samples.add(/^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)![0]);
  }
  expect(samples.size).toBeGreaterThan(10);
  for (const s of samples) {
    const family = type.has(s) ? s : s.replace(/_(bucket|sum|count)$/, "");
    expect({ sample: s, type: type.has(family), help: help.has(family) }).toEqual({ sample: s, type: true, help: true });
  }
  for (const family of [
    "yatagarasu_http_requests_total",
    "yatagarasu_http_request_duration_seconds",
    "yatagarasu_http_requests_in_flight",
    "yatagarasu_http_response_bytes_total",
    "yatagarasu_s3_requests_total",
    "yatagarasu_s3_request_duration_seconds",
    "yatagarasu_s3_retries_total",
    "yatagarasu_auth_total",
    "yatagarasu_rate_limited_total",
    "yatagarasu_config_reloads_total",
    "yatagarasu_config_generation",
    "yatagarasu_build_info",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_start_time_seconds",
  ]) {
    expect({ family, help: help.has(family), type: type.has(family) }).toEqual({ family, help: true, type: true });
  }
  expect(type.get("yatagarasu_http_requests_total")).toBe("counter");
  expect(type.get("yatagarasu_http_request_duration_seconds")).toBe("histogram");
  expect(type.get("yatagarasu_http_requests_in_flight")).toBe("gauge");
});

test("request counters, bytes and the duration histogram match the traffic sent", () => {
  expect(sample('yatagarasu_http_requests_total{bucket="pub",method="GET",status="200"}')).toBe(5);
  expect(sample('yatagarasu_http_requests_total{bucket="pub",method="GET",status="404"}')).toBe(50);
  expect(sample('yatagarasu_http_requests_total{bucket="pub",method="HEAD",status="200"}')).toBe(1);
  expect(sample('yatagarasu_http_requests_total{bucket="priv",method="GET",status="401"}')).toBe(1);
  expect(sample('yatagarasu_http_requests_total{bucket="priv",method="GET",status="200"}')).toBe(1);
  // (by method: a slow upload's time is not a GET's)
  expect(sample('yatagarasu_http_request_duration_seconds_count{bucket="pub",method="GET"}')).toBe(55);
  expect(sample('yatagarasu_http_request_duration_seconds_bucket{bucket="pub",method="GET",le="+Inf"}')).toBe(55);
  expect(sample('yatagarasu_http_request_duration_seconds_count{bucket="pub",method="HEAD"}')).toBe(1);
  expect(sample('yatagarasu_http_request_duration_seconds_sum{bucket="pub",method="GET"}')).toBeGreaterThan(0);
  expect(sample("yatagarasu_http_requests_in_flight")).toBe(0);
  // the objects' bytes and the 404s' error documents (what was sent)
  expect(errorBodyBytes).toBeGreaterThan(50 * 50);
  expect(sample('yatagarasu_http_response_bytes_total{bucket="pub"}')).toBe(5 * 12 + errorBodyBytes);
  expect(sample('yatagarasu_http_response_bytes_total{bucket="priv"}')).toBe(12 + anonBodyBytes);
});

test("upstream, auth and build metrics", () => {
  expect(sample('yatagarasu_s3_requests_total{bucket="pub",status="200"}')).toBe(6);
  expect(sample('yatagarasu_s3_requests_total{bucket="pub",status="404"}')).toBe(50);
  expect(sample('yatagarasu_s3_request_duration_seconds_count{bucket="pub"}')).toBe(56);
  expect(sample('yatagarasu_s3_retries_total{bucket="pub"}')).toBe(0);
  expect(sample('yatagarasu_auth_total{result="missing"}')).toBe(1);
  expect(sample('yatagarasu_auth_total{result="success"}')).toBe(1);
  // the build's commit, as its listening line names it ("source" from source), not only the version every build of a release shares
  const commit = px.logs().find((l) => l.msg === "listening")?.commit;
  expect(commit).toBeString();
  expect(sample(`yatagarasu_build_info{version="0.1.0",commit="${commit}"}`)).toBe(1);
  expect(sample("yatagarasu_config_generation")).toBe(1);
  expect(sample("process_resident_memory_bytes")).toBeGreaterThan(1024 * 1024);
  expect(sample("process_cpu_seconds_total")).toBeGreaterThan(0);
  expect(sample("process_open_fds")).toBeGreaterThan(2);
  const start = sample("process_start_time_seconds")!;
  expect(start).toBeLessThanOrEqual(Date.now() / 1000);
  expect(start).toBeGreaterThan(Date.now() / 1000 - 600);
});

test("labels never carry object keys or request paths", () => {
  expect(text).not.toContain("secretive-object-name");
  expect(text).not.toContain("dir-zq");
  expect(text).not.toContain("hello.txt");
  expect(text).not.toContain("/pub");
  const bucketLabels = new Set([...text.matchAll(/bucket="([^"]*)"/g)].map((m) => m[1]));
  expect([...bucketLabels].sort()).toEqual(["_admin", "_health", "_metrics", "_none", "priv", "pub"]);
});

test("/metrics on the main port is 404 (metrics live on their own listener)", async () => {
  const res = await fetch(px.url("/metrics"));
  expect(res.status).toBe(404);
  expect(await res.json()).toMatchObject({ error: "NotFound" });
});

test("the metrics listener answers only /metrics", async () => {
  const res = await fetch(`http://127.0.0.1:${px.metricsPort}/pub/hello.txt`);
  expect(res.status).toBe(404);
  await res.arrayBuffer();
});

const raw = rawHttp;
const statusOf = rawStatus;
const bodyOf = (r: string) => r.slice(r.indexOf("\r\n\r\n") + 4);

// Before: each of these made `new URL(req.url)` throw in the metrics listener, which had no error
// handler and Bun.serve's development mode on: a 500 with ~50 KB of Bun's HTML error page (the
// stack, source lines of src/server.ts, the working directory).
test("the metrics listener: raw requests without a Host, with an empty or bad one, a CONNECT → plain 200/400/404, never an error page", async () => {
  const port = px.metricsPort!;
  const cases: Array<[string, number]> = [
    ["GET /x HTTP/1.0\r\n\r\n", 404],
    ["GET /metrics HTTP/1.0\r\n\r\n", 200],
    ["GET /metrics HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n", 200],
    ["GET /metrics HTTP/1.1\r\nHost: u:p@a\r\nConnection: close\r\n\r\n", 400],
    ["GET /metrics HTTP/1.1\r\nHost: a:abc\r\nConnection: close\r\n\r\n", 400],
    ["CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\nConnection: close\r\n\r\n", 404],
    // (a body declared above 128 MiB, Bun's default cap, got its bare 413 with no body; never read)
    ["POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 200000000\r\n\r\n", 405],
    ["PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 200000000\r\n\r\n", 404],
  ];
  for (const [head, want] of cases) {
    const r = await raw(port, head);
    expect([head, statusOf(r)]).toEqual([head, want]);
    expect(r.length).toBeLessThan(want === 200 ? 1 << 20 : 512);
    // (every refusal in plain text that says what is wrong)
    if (want !== 200) expect([head, /^content-type: text\/plain/im.test(r), bodyOf(r).length > 10]).toEqual([head, true, true]);
    for (const leak of ["<html", "Error:", "server.ts", process.cwd()]) expect(bodyOf(r)).not.toContain(leak);
  }
  // the main listener answers the same requests in its own JSON (no HTML, no stack)
  for (const [head] of cases) {
    const r = await raw(px.port, head);
    expect([head, statusOf(r) >= 400 && statusOf(r) < 500]).toEqual([head, true]);
    for (const leak of ["<html", "server.ts", process.cwd()]) expect(r).not.toContain(leak);
  }
});

test("the metrics listener: a render that fails is a plain 500, not Bun's developer error page", async () => {
  const cfg = parseConfig(
    "server: { address: 127.0.0.1, port: 0 }\nmetrics: { enabled: true, address: 127.0.0.1, port: 0 }\n" +
      `buckets:\n  - name: pub\n    path_prefix: /pub\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n`,
  );
  const errors: unknown[] = [];
  const log = { error: (msg: string, fields?: unknown) => errors.push([msg, fields]) } as unknown as Parameters<typeof listenMetrics>[2];
  const m = listenMetrics(cfg, () => Promise.reject(new Error("render failed")), log);
  try {
    const r = await raw(m.port, "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(statusOf(r)).toBe(500);
    expect(bodyOf(r)).toBe("Internal error\n");
    expect(errors).toEqual([["metrics listener error", { error: "render failed" }]]);
  } finally {
    await m.stop(true);
  }
});
