/**
 * A minimal OTLP/HTTP (JSON) span exporter: a bounded queue, batches, one export in flight.
 *
 * Why not the OpenTelemetry JS SDK (sdk-trace-base's BatchSpanProcessor + exporter-trace-otlp-http)?
 * Issue 15: the SDK unless it costs more than 5% on the signed 1 KiB GET benchmark at ratio 1.0.
 * That request costs ~40-50 µs of CPU, so the budget is ~2-2.5 µs, and a traced request makes
 * two spans (server + upstream attempt). The A/B that decided it (a scratch micro-benchmark, not
 * in the repo): 100k requests paced at 20k/s, each a server span and a client child span with 8
 * attributes, batched (512) and exported as OTLP/HTTP JSON to a null collector in another process;
 * CPU time of the process (all threads) until the collector had every span; Bun 1.4.5 on the
 * shared 2-core machine (load 4-8, so absolute figures are inflated and noisy), 3 interleaved rounds:
 *   harness alone                                                          0.7-1.1 µs/request
 *   OpenTelemetry SDK (api 1.10, sdk-trace-base 2.12, otlp-http 0.301)     22.0 / 27.8 / 55.3 µs/request
 *   this exporter                                                          14.2 / 15.4 / 15.5 µs/request
 * The SDK costs ~2x this exporter and ~10x the budget (this exporter: ~6x at ratio 1.0), so
 * the project stays dependency-free. Of this exporter's cost, creating the spans is ~1-1.5 µs per
 * request and the JSON encoding most of the rest (see otlp.ts): tracing every request of a busy
 * proxy is not free, so production setups sample (sample_ratio); unsampled requests carry ids only.
 *
 * Never blocks a request: add() is a push onto an array (or a counted drop when the queue is
 * full); encoding and sending happen on timers, one request at a time, each with a timeout. A
 * collector that is down or slow therefore costs at most one pending fetch, and spans beyond
 * max_queue_spans are dropped and counted (yatagarasu_tracing_spans_dropped_total{reason}).
 * A failed export is not retried (its spans are counted as dropped): retrying would only pile
 * up behind a collector that is already failing. A collector's partial success (a 2xx naming
 * rejected spans) counts those spans as dropped (export_failed), the rest as exported.
 */
import type { CounterChild } from "../registry.ts";
import { encodeSpans, type Resource } from "./otlp.ts";
import type { Span } from "./span.ts";
import { urlForLogs } from "../../util/text.ts";

export interface TraceCounters {
  exported: CounterChild;
  droppedQueueFull: CounterChild;
  droppedExportFailed: CounterChild;
}

export interface ExporterOptions {
  /** The full traces URL (…/v1/traces). */
  url: string;
  /** Extra request headers (e.g. the collector's authentication); never logged. */
  headers: Record<string, string>;
  resource: Resource;
  maxQueue: number;
  maxBatch: number;
  intervalMs: number;
  timeoutMs: number;
  counters: TraceCounters;
  fetch?: typeof fetch;
  /** Export trouble, logged once per change (failing / recovered). */
  log?: (level: "info" | "warn", msg: string, fields: Record<string, unknown>) => void;
}

export class OtlpExporter {
  private queue: Span[] = [];
  private inflight: Promise<void> | undefined;
  private kick: ReturnType<typeof setTimeout> | undefined;
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly headers: Record<string, string>;
  private readonly fetchImpl: typeof fetch;
  private failing = false;
  /** The collector's last answer was a partial success (some spans rejected): logged once per change. */
  private rejecting = false;
  private closed = false;

  constructor(private readonly o: ExporterOptions) {
    this.headers = { ...o.headers, "content-type": "application/json" };
    this.fetchImpl = o.fetch ?? fetch;
    this.timer = setInterval(() => this.exportNext(), o.intervalMs);
    this.timer.unref?.();
  }

  /** Queues an ended span; drops (and counts) it when the queue is full. O(1), never waits. */
  add(span: Span): void {
    const q = this.queue;
    if (q.length >= this.o.maxQueue || this.closed) {
      this.o.counters.droppedQueueFull.value++;
      return;
    }
    q.push(span);
    // A full batch goes out at once rather than at the next interval (on a timer: not in the
    // request's own turn of the event loop).
    if (q.length >= this.o.maxBatch && this.inflight === undefined && this.kick === undefined) {
      this.kick = setTimeout(() => {
        this.kick = undefined;
        this.exportNext();
      }, 0);
    }
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Starts exporting the next batch unless one is in flight. */
  private exportNext(): void {
    if (this.inflight !== undefined || this.queue.length === 0) return;
    const batch = this.queue.length <= this.o.maxBatch ? this.queue : this.queue.slice(0, this.o.maxBatch);
    this.queue = batch === this.queue ? [] : this.queue.slice(this.o.maxBatch);
    this.inflight = this.send(batch).finally(() => {
      this.inflight = undefined;
      if (this.queue.length >= this.o.maxBatch && !this.closed) this.exportNext();
    });
  }

  private async send(batch: Span[]): Promise<void> {
    let error: string | undefined;
    let rejected = 0;
    try {
      const res = await this.fetchImpl(this.o.url, {
        method: "POST",
        headers: this.headers,
        body: encodeSpans(batch, this.o.resource),
        signal: AbortSignal.timeout(this.o.timeoutMs),
        // Not followed: the spans (paths, keys, client addresses) and the configured headers (a
        // collector token) would go wherever the Location points. A 3xx is a failed export.
        redirect: "manual",
      });
      const answer = await drain(res);
      if (res.ok) rejected = Math.min(batch.length, rejectedSpans(answer));
      else error = res.status >= 300 && res.status < 400 ? `HTTP ${res.status} redirect not followed` : `HTTP ${res.status}`;
    } catch (err) {
      const name = (err as Error)?.name;
      error = name === "TimeoutError" ? `no answer within ${this.o.timeoutMs} ms` : "collector unreachable";
    }
    if (error === undefined) {
      // OTLP partial success: a 2xx whose ExportTraceServiceResponse counts rejected spans. Those
      // were not stored: dropped, as a failed export's are.
      this.o.counters.exported.value += batch.length - rejected;
      this.o.counters.droppedExportFailed.value += rejected;
      if (rejected > 0 && !this.rejecting) {
        this.o.log?.("warn", "trace export partially rejected by the collector; the rejected spans are dropped", { endpoint: urlForLogs(this.o.url), rejected_spans: rejected });
      }
      this.rejecting = rejected > 0;
      if (this.failing) this.o.log?.("info", "trace export recovered", { endpoint: urlForLogs(this.o.url) });
      this.failing = false;
      return;
    }
    this.o.counters.droppedExportFailed.value += batch.length;
    if (!this.failing) this.o.log?.("warn", "trace export failed; spans are dropped until the collector answers", { endpoint: urlForLogs(this.o.url), error });
    this.failing = true;
  }

  /** Exports everything queued (in batches) within `timeoutMs`; whatever is left then is dropped and counted. */
  async flush(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if (this.inflight === undefined) this.exportNext();
      const current = this.inflight;
      if (current === undefined) return;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([current, new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, deadline - performance.now()))))]);
      clearTimeout(timer);
    }
    this.o.counters.droppedExportFailed.value += this.queue.length;
    this.queue = [];
  }

  /** Stops the timers, flushes (bounded by `timeoutMs`); spans added afterwards are dropped. */
  async shutdown(timeoutMs: number): Promise<void> {
    clearInterval(this.timer);
    if (this.kick !== undefined) clearTimeout(this.kick);
    this.kick = undefined;
    await this.flush(timeoutMs);
    this.closed = true;
  }
}

/** The most of a collector's answer read (OTLP's is a small ExportTraceServiceResponse). */
export const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * Reads the answer's body to its end, which frees the connection for keep-alive, unless it is
 * longer than MAX_ANSWER_BYTES: then it is cancelled (the connection closes). Reading it whole
 * (arrayBuffer) held whatever a broken collector sent, until export_timeout_ms: ~1 GB in 3 s.
 */
async function drain(res: Response): Promise<Uint8Array[] | undefined> {
  const body = res.body;
  if (body === null) return undefined;
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return chunks;
      bytes += value.byteLength;
      if (bytes > MAX_ANSWER_BYTES) {
        await reader.cancel();
        return undefined;
      }
      chunks.push(value);
    }
  } catch {
    // a body cut or timed out: the status already said how the export went
    return undefined;
  }
}

/**
 * The rejected spans an OTLP/JSON answer reports (`partialSuccess.rejectedSpans`, an int64 that
 * protobuf's JSON mapping may write as a string; snake_case accepted too), 0 when it names none or
 * is not JSON.
 */
function rejectedSpans(answer: Uint8Array[] | undefined): number {
  if (answer === undefined || answer.length === 0) return 0;
  try {
    const doc = JSON.parse(Buffer.concat(answer).toString("utf8")) as Record<string, unknown> | null;
    const partial = (doc?.partialSuccess ?? doc?.partial_success) as Record<string, unknown> | null | undefined;
    const n = Number(partial?.rejectedSpans ?? partial?.rejected_spans ?? 0);
    return Number.isInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}
