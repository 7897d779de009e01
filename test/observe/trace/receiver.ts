/**
 * An OTLP/HTTP test receiver (a collector's /v1/traces on Bun.serve, port 0): decodes every
 * ExportTraceServiceRequest (JSON) it gets, keeps the raw bodies (for secret greps) and the spans,
 * flattened. Modes: "ok" (200 {}), "fail" (503), "hang" (no answer until set back or closed).
 */
import { waitFor } from "../../helpers/wait.ts";

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  traceState: string | undefined;
  name: string;
  kind: number;
  start: bigint;
  end: bigint;
  status: number;
  attrs: Record<string, string | number | boolean>;
  resource: Record<string, string | number | boolean>;
}

type AnyValue = { stringValue?: string; intValue?: number | string; doubleValue?: number; boolValue?: boolean };
type KeyValue = { key: string; value: AnyValue };

function decodeAttrs(list: KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    if (value.stringValue !== undefined) out[key] = value.stringValue;
    else if (value.intValue !== undefined) out[key] = Number(value.intValue);
    else if (value.doubleValue !== undefined) out[key] = value.doubleValue;
    else if (value.boolValue !== undefined) out[key] = value.boolValue;
    else throw new Error(`attribute ${key} has no known value type: ${JSON.stringify(value)}`);
  }
  return out;
}

/** Decodes one OTLP/JSON body strictly enough that a malformed export fails the test. */
export function decodeExport(body: string): ReceivedSpan[] {
  const req = JSON.parse(body) as { resourceSpans: Array<{ resource: { attributes: KeyValue[] }; scopeSpans: Array<{ scope: { name: string }; spans: any[] }> }> };
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans) {
    const resource = decodeAttrs(rs.resource.attributes);
    for (const ss of rs.scopeSpans) {
      for (const s of ss.spans) {
        if (!/^[0-9a-f]{32}$/.test(s.traceId) || !/^[0-9a-f]{16}$/.test(s.spanId)) throw new Error(`bad ids ${s.traceId} ${s.spanId}`);
        if (s.parentSpanId !== undefined && !/^[0-9a-f]{16}$/.test(s.parentSpanId)) throw new Error(`bad parent ${s.parentSpanId}`);
        if (!/^\d+$/.test(s.startTimeUnixNano) || !/^\d+$/.test(s.endTimeUnixNano)) throw new Error("times must be decimal strings");
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId,
          traceState: s.traceState,
          name: s.name,
          kind: s.kind,
          start: BigInt(s.startTimeUnixNano),
          end: BigInt(s.endTimeUnixNano),
          status: s.status?.code ?? 0,
          attrs: decodeAttrs(s.attributes),
          resource,
        });
      }
    }
  }
  return out;
}

export type ReceiverMode = "ok" | "fail" | "hang";

export interface OtlpReceiver extends Disposable {
  readonly url: string;
  readonly port: number;
  readonly bodies: string[];
  readonly spans: ReceivedSpan[];
  /** Export requests received (answered or not), with their headers. */
  readonly posts: Array<{ path: string; contentType: string | null; headers: Headers }>;
  mode: ReceiverMode;
  /** Spans of one trace. */
  trace(traceId: string): ReceivedSpan[];
  /** Waits until `pred` holds over the spans received so far. */
  waitFor<T>(pred: (spans: ReceivedSpan[]) => T | undefined | false, timeoutMs?: number): Promise<T>;
  close(): void;
}

export function startReceiver(): OtlpReceiver {
  const bodies: string[] = [];
  const spans: ReceivedSpan[] = [];
  const posts: OtlpReceiver["posts"] = [];
  let held: Array<() => void> = [];
  const r = {
    mode: "ok" as ReceiverMode,
  };
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const path = new URL(req.url).pathname;
      posts.push({ path, contentType: req.headers.get("content-type"), headers: req.headers });
      const body = await req.text();
      if (r.mode === "hang") {
        await new Promise<void>((resolve) => held.push(resolve));
        return new Response("{}", { status: 503 });
      }
      if (r.mode === "fail") return new Response("unavailable", { status: 503 });
      if (path !== "/v1/traces") return new Response("not found", { status: 404 });
      bodies.push(body);
      spans.push(...decodeExport(body));
      return new Response("{}", { headers: { "content-type": "application/json" } });
    },
  });
  const release = () => {
    for (const h of held) h();
    held = [];
  };
  return {
    url: `http://127.0.0.1:${server.port}`,
    port: server.port!,
    bodies,
    spans,
    posts,
    get mode() {
      return r.mode;
    },
    set mode(m: ReceiverMode) {
      r.mode = m;
      if (m !== "hang") release();
    },
    trace: (traceId) => spans.filter((s) => s.traceId === traceId),
    waitFor: (pred, timeoutMs = 5000) => waitFor(() => pred(spans), { timeoutMs, message: () => `spans; received so far: ${JSON.stringify(spans.map((s) => [s.name, s.traceId]))}` }) as never,
    close() {
      release();
      server.stop(true);
    },
    [Symbol.dispose]() {
      this.close();
    },
  };
}
