/**
 * A span: what one operation of a trace did, from when to when. Deliberately small (see the
 * measurement in exporter.ts): a class with plain fields, attributes in a plain object, times from
 * performance.now() converted to Unix nanoseconds only when exported.
 *
 * A span either records (sampled: it goes to the exporter when it ends) or not. A non-recording
 * span still has ids, so the access line names the trace and `traceparent` still goes to S3 and
 * the authorizers with the sampled flag off (they must not sample what we did not); its children
 * are itself, and setting attributes or ending it does nothing.
 */
import { formatTraceparent, newSpanId } from "./context.ts";

export type AttrValue = string | number | boolean;

/** OTLP span kinds. */
export const SpanKind = { INTERNAL: 1, SERVER: 2, CLIENT: 3 } as const;
export type SpanKindValue = (typeof SpanKind)[keyof typeof SpanKind];

/** OTLP status codes. */
export const SpanStatus = { UNSET: 0, OK: 1, ERROR: 2 } as const;

/** Where ended recording spans go (the Tracer, which hands them to its current exporter). */
export interface SpanSink {
  add(span: Span): void;
}

export class Span {
  readonly attrs: Record<string, AttrValue> = {};
  status: number = SpanStatus.UNSET;
  /** performance.now() at the end; -1 while running. */
  endTime = -1;

  constructor(
    /** undefined: a non-recording span. */
    private readonly sink: SpanSink | undefined,
    readonly traceId: string,
    readonly spanId: string,
    readonly parentSpanId: string | undefined,
    readonly traceState: string | undefined,
    public name: string,
    readonly kind: SpanKindValue,
    /** performance.now() at the start. */
    readonly startTime: number,
  ) {}

  get recording(): boolean {
    return this.sink !== undefined;
  }

  /**
   * Sets an attribute; undefined values are skipped. `key`: a constant OpenTelemetry-style name
   * (letters, digits, ".", "_"; it is exported unescaped). Never give it a token, a key or a secret.
   */
  set(key: string, value: AttrValue | undefined): void {
    if (this.sink !== undefined && value !== undefined) this.attrs[key] = value;
  }

  /** A span under this one, started now (a non-recording span is its own child: see the module comment). */
  child(name: string, kind: SpanKindValue): Span {
    if (this.sink === undefined) return this;
    return new Span(this.sink, this.traceId, newSpanId(), this.spanId, this.traceState, name, kind, performance.now());
  }

  /** Marks the span failed; `type` is a low-cardinality class of error (OpenTelemetry's error.type). */
  fail(type: string): void {
    if (this.sink === undefined) return;
    this.status = SpanStatus.ERROR;
    this.attrs["error.type"] = type;
  }

  /** Ends the span (once; later calls do nothing) and hands it to the exporter. */
  end(at: number = performance.now()): void {
    if (this.endTime >= 0 || this.sink === undefined) return;
    this.endTime = at;
    this.sink.add(this);
  }

  traceparent(): string {
    return formatTraceparent(this.traceId, this.spanId, this.sink !== undefined);
  }

  /** Adds traceparent (and the caller's tracestate, passed on unchanged) to outgoing headers. */
  inject(headers: Record<string, string>): void {
    headers.traceparent = formatTraceparent(this.traceId, this.spanId, this.sink !== undefined);
    if (this.traceState !== undefined) headers.tracestate = this.traceState;
  }
}
