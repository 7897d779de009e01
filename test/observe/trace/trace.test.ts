/**
 * Tracing end to end: the App and its listener in this process, in front of the S3 fixture, a
 * JWKS endpoint and an OPA stand-in, exporting to an OTLP/HTTP test receiver. The receiver's
 * decoded spans, the fixture's request log (headers included) and the access log are the proof.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "../../../src/app.ts";
import { parseConfig } from "../../../src/config/load.ts";
import { createLogger } from "../../../src/observe/log.ts";
import { listenBun, type Listener } from "../../../src/server.ts";
import { JwksServer, makeKeyPair, signWith, tempDir, type TestKey } from "../../fixtures/jwt.ts";
import { OpaServer } from "../../fixtures/opa.ts";
import { startS3Fixture, type RequestLogEntry, type S3Fixture } from "../../fixtures/s3.ts";
import { waitFor } from "../../helpers/wait.ts";
import { startReceiver, type OtlpReceiver, type ReceivedSpan } from "./receiver.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIATRACETEST", secretAccessKey: "trace-test-s3-secret-key-0123456789" };
const SERVER = 2;
const CLIENT = 3;
const INTERNAL = 1;

interface Running {
  app: App;
  url(path: string): string;
  /** Parsed JSON lines the logger wrote so far. */
  lines(): Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** The App + Bun listener with a logger that writes JSON lines to a file (for the access lines). */
async function start(yaml: string): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), "yata-trace-"));
  const logPath = join(dir, "log.jsonl");
  const fd = openSync(logPath, "w");
  const log = createLogger({ level: "info", format: "json", fd });
  const config = parseConfig(yaml, {});
  const app = await App.create(config, { log });
  const listener: Listener = listenBun(app, config);
  return {
    app,
    url: (p) => `http://127.0.0.1:${listener.port}${p}`,
    lines: () => {
      log.flush();
      return readFileSync(logPath, "utf8")
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l));
    },
    stop: async () => {
      await listener.stop(true);
      await app.tracer?.shutdown(1000);
      await app.close();
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const bucketYaml = (s3: S3Fixture, name: string, extra = "") =>
  `  - name: ${name}\n    path_prefix: /${name}\n    s3: { bucket: data, endpoint: "${s3.endpoint}", access_key: "${CREDS.accessKeyId}", secret_key: "${CREDS.secretAccessKey}", retry: { max_attempts: 3, initial_backoff_ms: 1, max_backoff_ms: 2 } }\n${extra}`;

/** The proxy's own requests for one object (not the fixture's seeding, not readiness probes). */
const upstream = (s3: S3Fixture, key: string): RequestLogEntry[] => s3.requests.filter((r) => !r.admin && r.pathname === `/data/${key}`);

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER = "00f067aa0ba902b7";

let s3: S3Fixture;
let otlp: OtlpReceiver;
let jwks: JwksServer;
let opa: OpaServer;
let keys: { dir: string; cleanup: () => void };
let key: TestKey;
let token: string;
let px: Running;

beforeAll(async () => {
  keys = tempDir();
  key = await makeKeyPair("RS256", keys.dir, "trace-kid");
  jwks = JwksServer.start([key.jwk]);
  opa = OpaServer.start({ "yatagarasu/allow": (input) => input?.jwt_claims?.sub === "alice" });
  otlp = startReceiver();
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...CREDS, buckets: ["data"] }] });
  for (const k of ["tree.txt", "query.txt", "plain.txt", "unsampled.txt", "fresh.txt"]) await s3.put("data", k, `body of ${k}\n`);
  token = await signWith(key, { sub: "alice", exp: Math.floor(Date.now() / 1000) + 600 });
  // (opa_timeout_ms: the default 100 ms, which nothing here measures, was a 503 on a loaded host)
  px = await start(`server: { address: 127.0.0.1, port: 0 }
jwt:
  enabled: true
  algorithm: RS256
  jwks_url: "${jwks.url}"
  token_sources: [{ type: bearer }, { type: query, name: access_token }]
cache:
  enabled: true
  memory: { max_item_size_mb: 1, max_cache_size_mb: 16, default_ttl_seconds: 60 }
tracing:
  enabled: true
  otlp_endpoint: "${otlp.url}"
  sample_ratio: 1.0
  service_name: yatagarasu-test
  export_interval_ms: 20
buckets:
${bucketYaml(s3, "c", `    cache: { enabled: true }\n    auth: { enabled: true }\n    authorization: { type: opa, opa_url: "${opa.url}", opa_policy_path: yatagarasu/allow, opa_cache_ttl_seconds: 0, opa_timeout_ms: 5000 }\n`)}${bucketYaml(s3, "p")}`);
  await waitFor(() => jwks.fetchCount > 0);
});

afterAll(async () => {
  await px?.stop();
  await s3?.stop();
  otlp?.close();
  jwks?.close();
  opa?.close();
  keys?.cleanup();
});

/**
 * Resolves once everything ended so far has been exported: spans leave the queue in order, so
 * once a marker request's server span (ended after them) has arrived, so have they.
 */
let markers = 0;
async function afterNextExport(): Promise<void> {
  const id = `7bf92f3577b34da6a3ce929d0e00${(0x10000 + ++markers).toString(16).slice(1)}`;
  expect((await fetch(px.url("/p/fresh.txt"), { headers: { traceparent: `00-${id}-${CALLER}-01` } })).status).toBe(200);
  await otlp.waitFor((all) => all.some((s) => s.traceId === id && s.kind === SERVER));
}

const one = (spans: ReceivedSpan[], pred: (s: ReceivedSpan) => boolean, what: string): ReceivedSpan => {
  const found = spans.filter(pred);
  if (found.length !== 1) throw new Error(`expected one ${what}, got ${found.length}: ${JSON.stringify(spans.map((s) => s.name))}`);
  return found[0];
};

describe("a request with a retry and a cache miss", () => {
  let server: ReceivedSpan;
  let spans: ReceivedSpan[];

  beforeAll(async () => {
    s3.faults.set("/data/tree.txt", { kind: "error500", times: 1 });
    const res = await fetch(px.url("/c/tree.txt"), { headers: { authorization: `Bearer ${token}`, traceparent: `00-${TRACE}-${CALLER}-01`, tracestate: "rojo=00f067aa0ba902b7" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-cache")).toBe("MISS");
    expect(await res.text()).toBe("body of tree.txt\n");
    // server + OPA call + memory lookup + two upstream attempts
    spans = await otlp.waitFor((all) => (all.filter((s) => s.traceId === TRACE).length >= 5 ? all.filter((s) => s.traceId === TRACE) : undefined));
    server = one(spans, (s) => s.kind === SERVER, "server span");
  });

  test("the server span continues the caller's trace under its span, with the HTTP attributes and the proxy's own", () => {
    expect(server.parentSpanId).toBe(CALLER);
    expect(server.traceState).toBe("rojo=00f067aa0ba902b7");
    expect(server.name).toBe("GET s3:GetObject");
    expect(server.status).toBe(0);
    expect(server.attrs).toMatchObject({
      "http.request.method": "GET",
      "url.path": "/c/tree.txt",
      "url.scheme": "http",
      "server.address": "127.0.0.1",
      "client.address": "127.0.0.1",
      "network.protocol.version": "1.1",
      "http.response.status_code": 200,
      "http.response.body.size": "body of tree.txt\n".length,
      "yatagarasu.bucket": "c",
      "yatagarasu.s3.action": "s3:GetObject",
      "aws.s3.key": "tree.txt",
      "yatagarasu.cache": "MISS",
      "enduser.id": "alice",
      "yatagarasu.upstream.attempts": 2,
    });
    expect(server.resource["service.name"]).toBe("yatagarasu-test");
  });

  test("every other span is a child of the server span, inside its time", () => {
    for (const s of spans) {
      if (s === server) continue;
      expect(s.parentSpanId).toBe(server.spanId);
      expect(s.start >= server.start && s.end <= server.end).toBe(true);
    }
    expect(spans).toHaveLength(5);
  });

  test("one client span per upstream attempt: the 500 then the 200, the retry marked; each sent its own traceparent to S3, which verified the signature", () => {
    const attempts = spans.filter((s) => s.kind === CLIENT && s.attrs["rpc.service"] === "S3").sort((a, b) => Number(a.start - b.start));
    expect(attempts).toHaveLength(2);
    expect(attempts[0]).toMatchObject({ name: "GET", status: 2, attrs: { "http.response.status_code": 500, "error.type": "500", "aws.s3.bucket": "data", "aws.s3.key": "tree.txt", "server.address": "127.0.0.1", "server.port": s3.port } });
    expect(attempts[0].attrs["http.request.resend_count"]).toBeUndefined();
    expect(attempts[1]).toMatchObject({ status: 0, attrs: { "http.response.status_code": 200, "http.request.resend_count": 1 } });
    const seen = upstream(s3, "tree.txt");
    expect(seen.map((r) => r.status)).toEqual([500, 200]);
    expect(seen.map((r) => r.headers.traceparent)).toEqual(attempts.map((a) => `00-${TRACE}-${a.spanId}-01`));
    expect(seen.map((r) => r.headers.tracestate)).toEqual(["rojo=00f067aa0ba902b7", "rojo=00f067aa0ba902b7"]);
    // traceparent is not among the signed headers (SigV4 stays valid; the 200 above is the proof).
    expect(seen[1].headers.authorization).not.toContain("traceparent");
  });

  test("the cache lookup is a span (memory: miss), and so is the OPA call, which got the trace context", () => {
    const lookup = one(spans, (s) => s.kind === INTERNAL, "cache lookup");
    expect(lookup).toMatchObject({ name: "cache lookup memory", attrs: { "yatagarasu.cache.layer": "memory", "yatagarasu.cache.result": "miss" } });
    const authz = one(spans, (s) => s.name.startsWith("POST "), "OPA call");
    expect(authz).toMatchObject({ kind: CLIENT, name: "POST /v1/data/{policy}", attrs: { "http.request.method": "POST", "http.response.status_code": 200, "yatagarasu.authz.decision": "allow", "url.full": `${opa.url}/v1/data/yatagarasu/allow` } });
    const asked = opa.requests.filter((r) => r.headers.get("traceparent")?.includes(TRACE));
    expect(asked.map((r) => r.headers.get("traceparent"))).toEqual([`00-${TRACE}-${authz.spanId}-01`]);
    expect(asked[0].headers.get("tracestate")).toBe("rojo=00f067aa0ba902b7");
    // The policy input carries no trace fields: tracing is not part of the decision.
    expect(JSON.stringify(asked[0].body)).not.toContain(TRACE);
  });

  test("the access line names the trace and the server span", () => {
    const line = px.lines().find((l) => l.msg === "request" && l.path === "/c/tree.txt");
    expect(line).toMatchObject({ trace_id: TRACE, span_id: server.spanId, status: 200 });
  });

  test("the next GET is a HIT: one lookup span (hit, fresh), no upstream attempt", async () => {
    const id = "5bf92f3577b34da6a3ce929d0e0e4737";
    const res = await fetch(px.url("/c/tree.txt"), { headers: { authorization: `Bearer ${token}`, traceparent: `00-${id}-${CALLER}-01` } });
    expect(res.headers.get("x-cache")).toBe("HIT");
    await afterNextExport();
    const got = otlp.trace(id);
    expect(got.map((s) => s.name).sort()).toEqual(["GET s3:GetObject", "POST /v1/data/{policy}", "cache lookup memory"]);
    expect(one(got, (s) => s.kind === INTERNAL, "lookup").attrs).toMatchObject({ "yatagarasu.cache.result": "hit", "yatagarasu.cache.fresh": true });
  });
});

describe("trace context", () => {
  test("an invalid traceparent is ignored: a new trace starts, and S3 gets that one", async () => {
    const res = await fetch(px.url("/p/plain.txt"), { headers: { traceparent: `00-${TRACE.toUpperCase()}-${CALLER}-01`, tracestate: "rojo=1" } });
    expect(res.status).toBe(200);
    const line = await waitFor(() => px.lines().find((l) => l.msg === "request" && l.path === "/p/plain.txt"));
    const traceId = line.trace_id as string;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(traceId).not.toBe(TRACE);
    const spans = await otlp.waitFor((all) => (all.filter((s) => s.traceId === traceId).length >= 2 ? all.filter((s) => s.traceId === traceId) : undefined));
    const server = one(spans, (s) => s.kind === SERVER, "server span");
    expect(server.parentSpanId).toBeUndefined();
    expect(server.traceState).toBeUndefined();
    const attempt = one(spans, (s) => s.kind === CLIENT, "attempt");
    expect(upstream(s3, "plain.txt")[0].headers.traceparent).toBe(`00-${traceId}-${attempt.spanId}-01`);
    expect(upstream(s3, "plain.txt")[0].headers.tracestate).toBeUndefined();
  });

  test("a caller's unsampled trace is honoured: nothing exported, the context still reaches S3 unsampled, the log still names it", async () => {
    const id = "6bf92f3577b34da6a3ce929d0e0e4738";
    const res = await fetch(px.url("/p/unsampled.txt"), { headers: { traceparent: `00-${id}-${CALLER}-00` } });
    expect(res.status).toBe(200);
    const sent = upstream(s3, "unsampled.txt")[0].headers.traceparent!;
    expect(sent).toMatch(new RegExp(`^00-${id}-[0-9a-f]{16}-00$`));
    const line = await waitFor(() => px.lines().find((l) => l.msg === "request" && l.path === "/p/unsampled.txt"));
    expect(line.trace_id).toBe(id);
    await afterNextExport();
    expect(otlp.trace(id)).toHaveLength(0);
  });

  test("the JWKS fetch is a span of its own (a root: a fetch serves every waiting request) and sent traceparent", async () => {
    const fetchSpan = await otlp.waitFor((all) => all.find((s) => s.name === "GET jwks"));
    expect(fetchSpan).toMatchObject({ kind: CLIENT, parentSpanId: undefined, status: 0, attrs: { "http.request.method": "GET", "http.response.status_code": 200, "url.full": jwks.url, "yatagarasu.jwks.keys": 1 } });
    expect(jwks.requests[0].headers.get("traceparent")).toBe(`00-${fetchSpan.traceId}-${fetchSpan.spanId}-01`);
  });
});

describe("secrets", () => {
  test("no token, key or secret in any exported byte, even with the token in the query string", async () => {
    const res = await fetch(px.url(`/c/query.txt?access_token=${token}&x=1`));
    expect(res.status).toBe(200);
    const line = await waitFor(() => px.lines().find((l) => l.msg === "request" && l.path === "/c/query.txt"));
    await otlp.waitFor((all) => all.some((s) => s.traceId === line.trace_id && s.kind === SERVER));
    const server = otlp.trace(line.trace_id as string).find((s) => s.kind === SERVER)!;
    expect(server.attrs["url.path"]).toBe("/c/query.txt");
    const all = otlp.bodies.join("\n");
    const [header, payload, signature] = token.split(".");
    for (const secret of [token, signature, `${header}.${payload}`, CREDS.secretAccessKey, "access_token="]) expect(all).not.toContain(secret);
    expect(otlp.bodies.length).toBeGreaterThan(0);
  });
});

describe("a collector that hangs, then is gone", () => {
  let hanging: OtlpReceiver;
  let px2: Running;

  beforeAll(async () => {
    hanging = startReceiver();
    hanging.mode = "hang";
    px2 = await start(`server: { address: 127.0.0.1, port: 0 }
tracing: { enabled: true, otlp_endpoint: "${hanging.url}", max_queue_spans: 8, max_export_batch: 4, export_interval_ms: 10, export_timeout_ms: 5000 }
buckets:
${bucketYaml(s3, "p")}`);
  });
  afterAll(async () => {
    hanging.close();
    await px2?.stop();
  });

  test("requests keep answering at once while an export hangs for seconds; spans beyond the queue are dropped and counted", async () => {
    const tracer = px2.app.tracer!;
    for (let i = 0; i < 30; i++) {
      const t0 = performance.now();
      const res = await fetch(px2.url("/p/plain.txt"));
      expect(res.status).toBe(200);
      await res.text();
      // The export in flight waits up to 5 s: a request that waited for it would take that long.
      expect(performance.now() - t0).toBeLessThan(1000);
    }
    expect(hanging.posts.length).toBe(1); // one export in flight, no pile-up
    expect(tracer.counters.droppedQueueFull.value).toBeGreaterThan(0);
    expect(px2.app.metrics.render()).toMatch(/yatagarasu_tracing_spans_dropped_total\{reason="queue_full"\} [1-9]/);
  });

  test("with the collector gone, requests still answer and the failed exports are counted", async () => {
    const tracer = px2.app.tracer!;
    hanging.close(); // releases the hung export (a 503) and stops listening: later exports are refused
    const before = tracer.counters.droppedExportFailed.value;
    for (let i = 0; i < 10; i++) expect((await fetch(px2.url("/p/plain.txt"))).status).toBe(200);
    await waitFor(() => tracer.counters.droppedExportFailed.value > before);
  });
});

describe("graceful shutdown", () => {
  test("spans still queued are exported by shutdown", async () => {
    const rx = startReceiver();
    const px3 = await start(`server: { address: 127.0.0.1, port: 0 }
tracing: { enabled: true, otlp_endpoint: "${rx.url}", export_interval_ms: 600000 }
buckets:
${bucketYaml(s3, "p")}`);
    try {
      for (let i = 0; i < 3; i++) expect((await fetch(px3.url("/p/plain.txt"))).status).toBe(200);
      await waitFor(() => px3.app.tracer!.queued === 6); // 3 × (server + attempt), waiting for the (long) interval
      expect(rx.spans).toHaveLength(0);
      await px3.app.tracer!.shutdown(2000);
      expect(rx.spans).toHaveLength(6);
      expect(px3.app.tracer!.counters.exported.value).toBe(6);
    } finally {
      await px3.stop();
      rx.close();
    }
  });
});

describe("tracing off (the default)", () => {
  test("no traceparent goes to S3 (even when the client sent one), no trace fields in the access line", async () => {
    const off = await start(`server: { address: 127.0.0.1, port: 0 }
buckets:
${bucketYaml(s3, "p")}`);
    try {
      expect(off.app.tracer!.enabled).toBe(false);
      const res = await fetch(off.url("/p/query.txt"), { headers: { traceparent: `00-${TRACE}-${CALLER}-01` } });
      expect(res.status).toBe(200);
      const line = await waitFor(() => off.lines().find((l) => l.msg === "request" && l.path === "/p/query.txt"));
      expect(line.trace_id).toBeUndefined();
      expect(line.span_id).toBeUndefined();
      const sent = upstream(s3, "query.txt").at(-1)!;
      expect(sent.status).toBe(200);
      expect(sent.headers.traceparent).toBeUndefined();
    } finally {
      await off.stop();
    }
  });
});
