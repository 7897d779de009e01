/** The OTLP/JSON encoding, the exporter's queue and batches against a test receiver, and the `tracing` config section. */
import { afterAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { parseConfig } from "../../../src/config/load.ts";
import { tracesUrl } from "../../../src/config/tracing.ts";
import { Registry } from "../../../src/observe/registry.ts";
import { OtlpExporter } from "../../../src/observe/trace/exporter.ts";
import { encodeSpans, unixNanos } from "../../../src/observe/trace/otlp.ts";
import { Span, SpanKind, type SpanSink } from "../../../src/observe/trace/span.ts";
import { Tracer } from "../../../src/observe/trace/tracer.ts";
import { waitFor } from "../../helpers/wait.ts";
import { decodeExport, startReceiver } from "./receiver.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const receiver = startReceiver();
afterAll(() => receiver.close());

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const none: SpanSink = { add() {} };
let n = 0;
function ended(attrs: Record<string, string | number | boolean> = {}, name = "GET"): Span {
  const s = new Span(none, TRACE, (++n).toString(16).padStart(16, "0"), "00f067aa0ba902b7", "rojo=1", name, SpanKind.CLIENT, performance.now());
  for (const [k, v] of Object.entries(attrs)) s.set(k, v);
  s.end();
  return s;
}

function exporter(over: Partial<ConstructorParameters<typeof OtlpExporter>[0]> = {}) {
  const registry = new Registry();
  const t = new Tracer(undefined, { registry }); // only for its registered counters
  const logs: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
  const e = new OtlpExporter({
    url: `${receiver.url}/v1/traces`,
    headers: {},
    resource: { serviceName: "svc", serviceVersion: "9.9" },
    maxQueue: 100,
    maxBatch: 10,
    intervalMs: 60_000, // exports only on a full batch or a flush, so the tests decide when
    timeoutMs: 2000,
    counters: t.counters,
    log: (level, msg, fields) => logs.push({ level, msg, fields }),
    ...over,
  });
  return { e, c: t.counters, logs, registry };
}

describe("OTLP/JSON encoding", () => {
  test("ids, parent, trace state, kind, times and every attribute type decode as sent; strings are escaped", () => {
    const before = BigInt(Date.now()) * 1_000_000n;
    const s = ended({ str: 'a "quoted"\nline \\ é 😀', int: 42, neg: -7, dbl: 1.5, yes: true, no: false }, 'GET "x"');
    const [got] = decodeExport(encodeSpans([s], { serviceName: "svc", serviceVersion: "1.2" }));
    expect(got).toMatchObject({ traceId: TRACE, spanId: s.spanId, parentSpanId: "00f067aa0ba902b7", traceState: "rojo=1", name: 'GET "x"', kind: 3, status: 0 });
    expect(got.attrs).toEqual({ str: 'a "quoted"\nline \\ é 😀', int: 42, neg: -7, dbl: 1.5, yes: true, no: false });
    expect(got.resource).toMatchObject({ "service.name": "svc", "service.version": "1.2", "process.pid": process.pid });
    expect(got.end).toBeGreaterThanOrEqual(got.start);
    // Unix nanoseconds near now (timeOrigin + performance.now(): within a second of Date.now()).
    expect(got.start > before - 1_000_000_000n && got.start < before + 1_000_000_000n).toBe(true);
  });

  test("a root span has no parentSpanId; a failed one has status 2", () => {
    const s = new Span(none, TRACE, "1111111111111111", undefined, undefined, "root", SpanKind.SERVER, performance.now());
    s.fail("500");
    s.end();
    const [got] = decodeExport(encodeSpans([s], { serviceName: "svc", serviceVersion: "" }));
    expect(got.parentSpanId).toBeUndefined();
    expect(got.traceState).toBeUndefined();
    expect(got).toMatchObject({ kind: 2, status: 2, attrs: { "error.type": "500" } });
  });

  test("unixNanos: exact digits, sub-millisecond part zero-padded, rounding carried into the millisecond", () => {
    expect(unixNanos(0.25, 1_700_000_000_000.5)).toBe("1700000000000750000");
    expect(unixNanos(0.000001, 1_700_000_000_000)).toBe("1700000000000000001"); // 1 ns is kept
    expect(unixNanos(0.9999999999, 1_700_000_000_000)).toBe("1700000000001000000");
    expect(unixNanos(12_345.6789, 1_700_000_000_000.5)).toBe("1700000012346178900");
  });
});

describe("exporter", () => {
  test("a full batch goes out at once; flush sends the rest; everything is counted as exported", async () => {
    const { e, c } = exporter();
    const before = receiver.spans.length;
    const spans = Array.from({ length: 23 }, () => ended({ k: "v" }));
    for (const s of spans) e.add(s);
    await receiver.waitFor((all) => all.length >= before + 20); // two full batches, no flush needed
    await e.flush(2000);
    const got = receiver.spans.slice(before).map((s) => s.spanId);
    expect(got.sort()).toEqual(spans.map((s) => s.spanId).sort());
    expect(c.exported.value).toBe(23);
    expect(receiver.posts.at(-1)).toMatchObject({ path: "/v1/traces", contentType: "application/json" });
    await e.shutdown(1000);
  });

  test("a full queue drops new spans and counts them; add() never waits", async () => {
    const { e, c, registry } = exporter({ maxQueue: 5, maxBatch: 5 });
    receiver.mode = "hang"; // the first batch stays in flight
    try {
      for (let i = 0; i < 5; i++) e.add(ended());
      await waitFor(() => e.queued === 0); // taken as one batch, now in flight
      // Never waits: add() gives nothing to wait for (no promise) and the 1,000 are counted in the
      // caller's own turn (a wall-clock bound on the loop, 200 ms, failed on a loaded host).
      const posts = receiver.posts.length;
      const results = new Set<unknown>();
      for (let i = 0; i < 1000; i++) results.add(e.add(ended()));
      expect([...results]).toEqual([undefined]);
      expect(receiver.posts.length).toBe(posts);
      expect(e.queued).toBe(5);
      expect(c.droppedQueueFull.value).toBe(995);
      expect(registry.render()).toContain('yatagarasu_tracing_spans_dropped_total{reason="queue_full"} 995');
    } finally {
      receiver.mode = "ok";
    }
    await e.shutdown(2000);
  });

  test("a collector that refuses: the batch is dropped and counted, logged once (no secret header value), then the recovery once", async () => {
    const { e, c, logs } = exporter({ headers: { authorization: "Bearer collector-secret-123" } });
    receiver.mode = "fail";
    try {
      for (let i = 0; i < 3; i++) e.add(ended());
      await e.flush(2000);
      for (let i = 0; i < 3; i++) e.add(ended());
      await e.flush(2000);
    } finally {
      receiver.mode = "ok";
    }
    expect(c.droppedExportFailed.value).toBe(6);
    expect(logs.filter((l) => l.level === "warn")).toHaveLength(1);
    expect(logs[0]).toMatchObject({ msg: "trace export failed; spans are dropped until the collector answers", fields: { error: "HTTP 503", endpoint: `${receiver.url}/v1/traces` } });
    e.add(ended());
    await e.flush(2000);
    expect(c.exported.value).toBe(1);
    expect(logs.at(-1)).toMatchObject({ level: "info", msg: "trace export recovered" });
    expect(JSON.stringify(logs)).not.toContain("collector-secret-123");
    // The configured headers do reach the collector.
    expect(receiver.posts.at(-1)!.headers.get("authorization")).toBe("Bearer collector-secret-123");
    await e.shutdown(1000);
  });

  test("a collector that does not answer: the export times out, its spans are counted as failed", async () => {
    const { e, c, logs } = exporter({ timeoutMs: 100 });
    receiver.mode = "hang";
    try {
      for (let i = 0; i < 4; i++) e.add(ended());
      await e.flush(3000);
    } finally {
      receiver.mode = "ok";
    }
    expect(c.droppedExportFailed.value).toBe(4);
    expect(logs[0].fields.error).toBe("no answer within 100 ms");
    await e.shutdown(1000);
  });

  test("a redirect is not followed (the spans and the collector token would go where it points): counted as failed", async () => {
    for (const status of [302, 307, 308]) {
      const redirector = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response(null, { status, headers: { location: `${receiver.url}/v1/traces` } }) });
      try {
        const posts = receiver.posts.length;
        const { e, c, logs } = exporter({ url: `http://127.0.0.1:${redirector.port}/v1/traces`, headers: { authorization: "Bearer collector-secret-123" } });
        e.add(ended());
        await e.flush(3000);
        expect(c.droppedExportFailed.value).toBe(1);
        expect(logs[0].fields.error).toBe(`HTTP ${status} redirect not followed`);
        expect(receiver.posts.length).toBe(posts);
        await e.shutdown(1000);
      } finally {
        redirector.stop(true);
      }
    }
  });

  test("a collector answering an endless body: at most MAX_ANSWER_BYTES of it is read, the status counts", async () => {
    let sent = 0;
    const chunk = new Uint8Array(1 << 20);
    const endless = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: async (req) => {
        await req.arrayBuffer();
        return new Response(
          new ReadableStream({
            pull(c) {
              if (sent >= 2 ** 30) return c.close(); // a bound for the test itself
              sent += chunk.length;
              c.enqueue(chunk);
            },
          }),
        );
      },
    });
    try {
      const { e, c } = exporter({ url: `http://127.0.0.1:${endless.port}/v1/traces`, timeoutMs: 2000 });
      e.add(ended());
      await e.flush(5000);
      expect(c.exported.value).toBe(1);
      // Read whole (until the export timeout), it was hundreds of MiB in memory; now the socket
      // buffers' worth the server could push before the connection closed.
      expect(sent).toBeLessThan(32 * 2 ** 20);
      await e.shutdown(1000);
    } finally {
      endless.stop(true);
    }
  });

  test("a collector's partial success (200 naming rejected spans): those are counted as dropped, the rest as exported, logged once", async () => {
    const answers = [
      { partialSuccess: { rejectedSpans: "2", errorMessage: "too big" } }, // int64 as protobuf's JSON mapping writes it
      { partialSuccess: { rejectedSpans: 1 } },
      { partialSuccess: {} },
      { partialSuccess: { rejectedSpans: 99 } }, // never more than were sent
    ];
    let i = 0;
    const collector = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: async (req) => {
        await req.arrayBuffer();
        return Response.json(answers[i++]);
      },
    });
    try {
      const { e, c, logs } = exporter({ url: `http://127.0.0.1:${collector.port}/v1/traces` });
      const batch = async (n: number) => {
        for (let j = 0; j < n; j++) e.add(ended());
        await e.flush(3000);
      };
      await batch(3);
      expect({ exported: c.exported.value, dropped: c.droppedExportFailed.value }).toEqual({ exported: 1, dropped: 2 });
      await batch(3);
      expect({ exported: c.exported.value, dropped: c.droppedExportFailed.value }).toEqual({ exported: 3, dropped: 3 });
      await batch(3);
      expect({ exported: c.exported.value, dropped: c.droppedExportFailed.value }).toEqual({ exported: 6, dropped: 3 });
      await batch(2);
      expect({ exported: c.exported.value, dropped: c.droppedExportFailed.value }).toEqual({ exported: 6, dropped: 5 });
      const warns = logs.filter((l) => l.level === "warn");
      // once when the rejections start, once again when they start again after a full success
      expect(warns).toHaveLength(2);
      expect(warns[0]).toMatchObject({ fields: { rejected_spans: 2, endpoint: `http://127.0.0.1:${collector.port}/v1/traces` } });
      await e.shutdown(1000);
    } finally {
      collector.stop(true);
    }
  });

  test("a collector that is down: counted as failed, nothing thrown", async () => {
    const dead = Bun.serve({ port: 0, fetch: () => new Response() });
    const port = dead.port;
    dead.stop(true);
    const { e, c, logs } = exporter({ url: `http://127.0.0.1:${port}/v1/traces` });
    e.add(ended());
    await e.flush(3000);
    expect(c.droppedExportFailed.value).toBe(1);
    expect(logs[0].fields.error).toBe("collector unreachable");
    await e.shutdown(1000);
  });

  test("shutdown exports what is queued, then drops (and counts) late spans", async () => {
    const { e, c } = exporter({ maxBatch: 50 });
    const before = receiver.spans.length;
    for (let i = 0; i < 7; i++) e.add(ended());
    expect(receiver.spans.length).toBe(before); // below a batch, long interval: nothing sent yet
    await e.shutdown(2000);
    expect(receiver.spans.length).toBe(before + 7);
    e.add(ended());
    expect(c.droppedQueueFull.value).toBe(1);
  });

  test("the interval sends a partial batch", async () => {
    const { e, c } = exporter({ intervalMs: 20 });
    e.add(ended());
    await waitFor(() => c.exported.value === 1);
    await e.shutdown(1000);
  });
});

describe("tracer", () => {
  const section = (url: string, extra: Record<string, unknown> = {}) => ({ enabled: true, otlp_endpoint: url, sample_ratio: 1, service_name: "svc", max_queue_spans: 100, max_export_batch: 50, export_interval_ms: 600_000, export_timeout_ms: 2000, ...extra });

  test("off: no span; on: request spans under a valid traceparent, else new roots; startRoot follows the ratio", async () => {
    const t = new Tracer(undefined);
    expect(t.enabled).toBe(false);
    expect(t.startRoot("x", SpanKind.CLIENT)).toBeUndefined();
    t.configure(section(receiver.url));
    expect(t.enabled).toBe(true);
    const child = t.startRequest(new Headers({ traceparent: `00-${TRACE}-00f067aa0ba902b7-01` }), performance.now(), "GET");
    expect(child).toMatchObject({ traceId: TRACE, parentSpanId: "00f067aa0ba902b7", recording: true });
    const root = t.startRequest(new Headers(), performance.now(), "GET");
    expect(root.parentSpanId).toBeUndefined();
    expect(root.traceId).not.toBe(TRACE);
    const unsampled = t.startRequest(new Headers({ traceparent: `00-${TRACE}-00f067aa0ba902b7-00` }), performance.now(), "GET");
    expect(unsampled.recording).toBe(false);
    expect(unsampled.child("x", SpanKind.CLIENT)).toBe(unsampled); // ids only: no new span
    expect(unsampled.traceparent()).toBe(`00-${TRACE}-${unsampled.spanId}-00`);
    t.configure(section(receiver.url, { sample_ratio: 0 }));
    expect(t.startRoot("x", SpanKind.CLIENT)).toBeUndefined();
    expect(t.startRequest(new Headers(), performance.now(), "GET").recording).toBe(false);
    await t.shutdown(1000);
  });

  test("a reload that changes the section flushes the old exporter to its endpoint and sends new spans to the new one; switching off stops spans", async () => {
    const other = startReceiver();
    try {
      const t = new Tracer(section(receiver.url));
      const a = t.startRequest(new Headers(), performance.now(), "GET");
      a.end();
      t.configure(section(receiver.url)); // unchanged: nothing happens
      expect(t.queued).toBe(1);
      t.configure(section(other.url));
      expect(t.queued).toBe(0);
      await receiver.waitFor((all) => all.some((s) => s.spanId === a.spanId));
      const b = t.startRequest(new Headers(), performance.now(), "GET");
      b.end();
      await t.flush(2000);
      expect(other.spans.map((s) => s.spanId)).toEqual([b.spanId]);
      const running = t.startRequest(new Headers(), performance.now(), "GET");
      t.configure({ ...section(other.url), enabled: false });
      expect(t.enabled).toBe(false);
      running.end(); // ended after tracing was switched off: dropped and counted
      expect(t.counters.droppedQueueFull.value).toBe(1);
      await t.shutdown(1000);
    } finally {
      other.close();
    }
  });
});

describe("tracing config", () => {
  const cfg = (tracing: string) => `tracing: ${tracing}\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: data } }\n`;
  const problems = (yaml: string, env: Record<string, string> = { OTLP_TOKEN: "tok-secret-777" }): string => {
    try {
      parseConfig(yaml, { env });
    } catch (e) {
      return (e as Error).message;
    }
    return "";
  };

  test("off by default, with OpenTelemetry's batch defaults; a full section loads", () => {
    expect(parseConfig(cfg("{}"), { env: {} }).tracing).toEqual({
      enabled: false,
      sample_ratio: 1,
      service_name: "yatagarasu",
      max_queue_spans: 2048,
      max_export_batch: 512,
      export_interval_ms: 5000,
      export_timeout_ms: 10000,
    });
    const c = parseConfig(cfg(`{ enabled: true, otlp_endpoint: "http://otel:4318", sample_ratio: 0.1, headers: { authorization: "Bearer \${OTLP_TOKEN}" } }`), { env: { OTLP_TOKEN: "t" } });
    expect(c.tracing).toMatchObject({ enabled: true, otlp_endpoint: "http://otel:4318", sample_ratio: 0.1, headers: { authorization: "Bearer t" } });
  });

  test("each mistake is refused at its path, never echoing a header value", () => {
    expect(problems(cfg("{ enabled: true }"))).toContain("tracing.otlp_endpoint: is required when tracing is enabled");
    expect(problems(cfg(`{ otlp_endpoint: "ftp://x" }`))).toContain("tracing.otlp_endpoint: must be an http(s) URL");
    expect(problems(cfg(`{ otlp_endpoint: "http://u:pw@otel:4318" }`))).toContain("tracing.otlp_endpoint: must not contain a user name or password");
    expect(problems(cfg("{ sample_ratio: 1.5 }"))).toContain("tracing.sample_ratio: must be within 0..1, got 1.5");
    expect(problems(cfg("{ sample_ratio: -0.1 }"))).toContain("tracing.sample_ratio: must be within 0..1, got -0.1");
    expect(problems(cfg("{ max_queue_spans: 100, max_export_batch: 200 }"))).toContain("tracing.max_export_batch: must not exceed max_queue_spans (100), got 200");
    expect(problems(cfg("{ exporter: otlp }"))).toContain("tracing");
    const h = problems(cfg(`{ headers: { "bad name": "\${OTLP_TOKEN}", traceparent: "\${OTLP_TOKEN}", x-ok: "a\\nb", x-curly: "Bearer \u201ctok-secret-777\u201d" } }`));
    expect(h).toContain("is not a valid header name");
    expect(h).toContain("is set by the exporter itself");
    expect(h).toContain("must not contain line breaks or NUL");
    // (pasted from a document: fetch refused every export, logged as "collector unreachable")
    expect(h).toContain("tracing.headers.x-curly: holds a character outside Latin-1");
    expect(h).not.toContain("tok-secret-777");
  });

  // A control character other than a tab (an ESC or a DEL left in a secret) passed --check; fetch
  // sent it as it was and the collector refused every export (HTTP 400): no span ever arrived.
  test("a header value holding a control character is refused, never shown; a tab inside is a header's own whitespace", () => {
    for (const c of ["\u0001", "\u001b", "\u007f", "\u000b"]) {
      const h = problems(cfg(`{ headers: { authorization: "\${OTLP_TOKEN}" } }`), { OTLP_TOKEN: `Bearer tok-secret-888${c}x` });
      expect({ c, h }).toEqual({ c, h: expect.stringContaining("tracing.headers.authorization: holds a control character") });
      expect(h).not.toContain("tok-secret-888");
    }
    expect(parseConfig(cfg(`{ headers: { x-scope: "\${V}" } }`), { env: { V: "a\tb" } }).tracing.headers).toEqual({ "x-scope": "a\tb" });
  });

  test("tracesUrl adds /v1/traces to a bare origin only", () => {
    expect(tracesUrl("http://otel:4318")).toBe("http://otel:4318/v1/traces");
    expect(tracesUrl("http://otel:4318/")).toBe("http://otel:4318/v1/traces");
    expect(tracesUrl("https://gw.example/otlp/v1/traces")).toBe("https://gw.example/otlp/v1/traces");
  });
});
