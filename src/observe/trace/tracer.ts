/**
 * The Tracer: the App's one entry point to tracing (it outlives reloads; `configure` applies a new
 * `tracing` section). It starts request spans from the client's trace context, samples, and hands
 * ended spans to its current exporter.
 *
 * Disabled, it costs the request path one boolean check (`tracer.enabled` in createContext) and
 * nothing else: no span, no ids, no traceparent header.
 */
import { tracesUrl, type TracingConfig } from "../../config/tracing.ts";
import type { Registry } from "../registry.ts";
import { CounterChild } from "../registry.ts";
import { newSpanId, newTraceId, remoteParent } from "./context.ts";
import { OtlpExporter, type TraceCounters } from "./exporter.ts";
import { RatioSampler } from "./sampler.ts";
import { Span, SpanKind, type SpanKindValue, type SpanSink } from "./span.ts";

export interface TracerDeps {
  /** Where the export counters are registered (yatagarasu_tracing_*). */
  registry?: Registry;
  log?: (level: "info" | "warn", msg: string, fields: Record<string, unknown>) => void;
  fetch?: typeof fetch;
  version?: string;
}

/** How long a reload or a shutdown waits for the spans already queued to be exported. */
const FLUSH_TIMEOUT_MS = 2000;

function counters(registry: Registry | undefined): TraceCounters {
  if (registry === undefined) return { exported: new CounterChild(), droppedQueueFull: new CounterChild(), droppedExportFailed: new CounterChild() };
  const dropped = registry.counter("yatagarasu_tracing_spans_dropped_total", "Spans not exported: queue_full (the export queue was full), export_failed (the collector refused, timed out or was unreachable, or rejected them in a partial success).", ["reason"]);
  return {
    exported: registry.counter("yatagarasu_tracing_spans_exported_total", "Spans the OTLP collector accepted.").labels(),
    droppedQueueFull: dropped.labels("queue_full"),
    droppedExportFailed: dropped.labels("export_failed"),
  };
}

export class Tracer implements SpanSink {
  /** Read by every request: the only cost of tracing when it is off. */
  enabled = false;
  readonly counters: TraceCounters;
  private sampler = new RatioSampler(1);
  private exporter: OtlpExporter | undefined;
  private applied = "";

  constructor(
    cfg: TracingConfig | undefined,
    private readonly deps: TracerDeps = {},
  ) {
    this.counters = counters(deps.registry);
    if (cfg !== undefined) this.configure(cfg);
  }

  /** Applies a (new) tracing section. An unchanged one changes nothing; otherwise the old exporter is flushed in the background. */
  configure(cfg: TracingConfig): void {
    const key = JSON.stringify(cfg);
    if (key === this.applied) return;
    this.applied = key;
    const old = this.exporter;
    this.exporter = undefined;
    void old?.shutdown(FLUSH_TIMEOUT_MS);
    this.enabled = cfg.enabled && cfg.otlp_endpoint !== undefined;
    if (!this.enabled) return;
    this.sampler = new RatioSampler(cfg.sample_ratio);
    this.exporter = new OtlpExporter({
      url: tracesUrl(cfg.otlp_endpoint!),
      headers: cfg.headers ?? {},
      resource: { serviceName: cfg.service_name, serviceVersion: this.deps.version ?? "" },
      maxQueue: cfg.max_queue_spans,
      maxBatch: cfg.max_export_batch,
      intervalMs: cfg.export_interval_ms,
      timeoutMs: cfg.export_timeout_ms,
      counters: this.counters,
      fetch: this.deps.fetch,
      log: this.deps.log,
    });
  }

  add(span: Span): void {
    if (this.exporter !== undefined) this.exporter.add(span);
    else this.counters.droppedQueueFull.value++; // tracing was switched off while the span ran
  }

  /**
   * The server span of a request: under the client's traceparent when it sent a valid one (its
   * sampled flag decides), else the root of a new trace sampled by sample_ratio. Unsampled, it is
   * a non-recording span (ids only). Call only when `enabled`.
   */
  startRequest(headers: Headers, start: number, method: string): Span {
    const parent = remoteParent(headers);
    const traceId = parent?.traceId ?? newTraceId();
    const sampled = this.sampler.sample(traceId, parent?.sampled);
    return new Span(sampled ? this : undefined, traceId, newSpanId(), parent?.spanId, parent?.traceState, method, SpanKind.SERVER, start);
  }

  /** A span with no request behind it (a background JWKS fetch): a new trace, sampled by ratio; undefined when off or not sampled. */
  startRoot(name: string, kind: SpanKindValue): Span | undefined {
    if (!this.enabled) return undefined;
    const traceId = newTraceId();
    if (!this.sampler.sampleNew(traceId)) return undefined;
    return new Span(this, traceId, newSpanId(), undefined, undefined, name, kind, performance.now());
  }

  /** Spans waiting for export (tests, diagnostics). */
  get queued(): number {
    return this.exporter?.queued ?? 0;
  }

  /** Exports what is queued, within `timeoutMs` (the rest is dropped and counted). */
  async flush(timeoutMs: number = FLUSH_TIMEOUT_MS): Promise<void> {
    await this.exporter?.flush(timeoutMs);
  }

  /** Graceful shutdown: flush, then stop the export timer. */
  async shutdown(timeoutMs: number = FLUSH_TIMEOUT_MS): Promise<void> {
    const e = this.exporter;
    this.exporter = undefined;
    this.enabled = false;
    await e?.shutdown(timeoutMs);
  }
}
