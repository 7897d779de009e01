/**
 * Sampling: parent-based, with a trace-id ratio for new traces (OpenTelemetry's
 * ParentBased(TraceIdRatioBased(ratio))).
 *
 * - A request with a valid traceparent follows its `sampled` flag: the caller decided, and every
 *   service of the trace must agree or the trace has holes.
 * - A new trace is sampled when its trace id falls below ratio × 2^56 (the id's last 14 hex
 *   digits). Deciding from the id, not from a fresh random number, means every process that sees
 *   the same new trace id with the same ratio decides the same way.
 */

const SPACE = 2 ** 56;

export class RatioSampler {
  private readonly bound: number;

  constructor(readonly ratio: number) {
    if (!(ratio >= 0 && ratio <= 1)) throw new RangeError("sample ratio must be within 0..1");
    this.bound = ratio * SPACE;
  }

  /** Whether a new trace with this id is recorded. */
  sampleNew(traceId: string): boolean {
    if (this.ratio >= 1) return true;
    if (this.ratio <= 0) return false;
    return parseInt(traceId.slice(18), 16) < this.bound;
  }

  /** Parent-based: a remote parent's flag wins; otherwise the ratio decides. */
  sample(traceId: string, parentSampled: boolean | undefined): boolean {
    return parentSampled ?? this.sampleNew(traceId);
  }
}
