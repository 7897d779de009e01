/**
 * Background upstream probes for /ready: one cheap signed HEAD per bucket (per replica, for
 * buckets with s3.replicas) every `intervalMs`, never one per /ready call (a load balancer
 * polling /ready must not become load on S3).
 */

/** Something to probe: a bucket's upstream (id: the bucket name) or one replica (id: probeId(bucket, replica)). */
export interface ProbeTarget {
  readonly id: string;
  /** What the probe asks (endpoint, bucket, credentials...): a reload keeps the last result of a target whose key is unchanged. */
  readonly key?: string;
  /** Where the probe goes (scheme, host and port: "http://127.0.0.1:9000"), named in the log line of a failure. */
  readonly upstream?: string;
  probe(timeoutMs: number): Promise<{ ok: boolean; reason?: string; note?: string }>;
}

/** The probe id of one replica of a bucket. */
export const probeId = (bucket: string, replica: string): string => `${bucket}\u0000${replica}`;

/** Where a probe's change of state is told (the process log): `warn` when a target stops being ready, `info` when it is again. */
export type ProbeLog = (level: "info" | "warn", msg: string, fields: Record<string, unknown>) => void;

/** The log fields naming a probe target: its bucket, and its replica for one of s3.replicas. */
function targetFields(id: string): Record<string, unknown> {
  const cut = id.indexOf("\u0000");
  return cut < 0 ? { bucket: id } : { bucket: id.slice(0, cut), replica: id.slice(cut + 1) };
}

export interface BucketProbeState {
  ok: boolean;
  reason?: string;
  note?: string;
  checked_at?: string;
}

export class Prober {
  private readonly states = new Map<string, BucketProbeState>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private running = false;
  /** Set by stop(): a probe still in flight then (its connection cut by the shutdown's pool close, or a reload's retired generation) is neither recorded nor logged. */
  private stopped = false;
  private waiters: Array<() => void> = [];
  /**
   * Targets the replaced generation last logged as not ready whose probe a reload changed (their
   * result is not carried over): their first answer here is logged as ready again (a bucket whose
   * endpoint or credentials a reload fixed had a "not ready" line and never one saying it was back).
   */
  private readonly downBefore = new Set<string>();
  /** Targets the generation replacing this one no longer probes: a probe of theirs still in flight is not logged (their last line is the reload's). */
  private readonly removed = new Set<string>();
  rounds = 0;

  constructor(
    private readonly targets: readonly ProbeTarget[],
    private readonly intervalMs = 5000,
    private readonly timeoutMs = 2000,
    /** The generation a reload replaces: its last results carry over for targets it probed the same way (else every reload answered /ready 503 "not probed yet" until the new generation's first round). */
    previous?: Prober,
    /**
     * Told when a target's state changes: a target that stops being ready (or whose first probe
     * fails, or whose reason for not being ready changes) at `warn`, one ready again at `info`.
     * Without it a bucket whose upstream went away was visible only on /ready and
     * `yatagarasu_ready`: nothing in the log, at any level.
     */
    private readonly log?: ProbeLog,
  ) {
    for (const t of targets) {
      const was = previous !== undefined && t.key !== undefined ? previous.carried(t.id, t.key) : undefined;
      this.states.set(t.id, was ?? { ok: false, reason: "not probed yet" });
      const before = was === undefined ? previous?.state(t.id) : undefined;
      // (or one the replaced generation had itself from its own predecessor, not probed since: two
      // reloads in a row, the second changing the probe again or not: its "not probed yet" carried)
      if ((before !== undefined && !before.ok && before.checked_at !== undefined) || previous?.downBefore.has(t.id) === true) this.downBefore.add(t.id);
    }
    // A target the reload removed (its bucket, or its replica) whose last line was "not ready" gets
    // a closing one: it had none, and a log reader kept the bucket down for good.
    if (previous === undefined) return;
    const kept = new Set(targets.map((t) => t.id));
    for (const [id, was] of previous.states) {
      if (kept.has(id)) continue;
      previous.removed.add(id);
      if (!was.ok && (was.checked_at !== undefined || previous.downBefore.has(id))) log?.("info", "upstream probe: no longer probed", { ...targetFields(id), reason: "removed by a reload" });
    }
  }

  /** The last result for `id` when it was probed with `key`. */
  private carried(id: string, key: string): BucketProbeState | undefined {
    const t = this.targets.find((x) => x.id === id);
    return t !== undefined && t.key === key ? this.states.get(id) : undefined;
  }

  start(): void {
    this.stopped = false;
    void this.round();
    this.timer = setInterval(() => void this.round(), this.intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Resolves after the next completed probe round (tests and `--check` use it; never a sleep). */
  nextRound(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async round(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await Promise.all(
        this.targets.map(async (t) => {
          const r = await t.probe(this.timeoutMs);
          if (this.stopped) return; // (a shutdown closed its upstream connection: no "probe failed" warning for that)
          const was = this.states.get(t.id);
          this.states.set(t.id, { ...r, checked_at: new Date().toISOString() });
          if (this.log !== undefined && was !== undefined && !this.removed.has(t.id)) this.tell(t, was, r);
        }),
      );
      this.rounds++;
    } finally {
      this.running = false;
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    }
  }

  /** Logs a change of a target's state (`was`: its state before this probe; "not probed yet" has no checked_at). */
  private tell({ id, upstream }: ProbeTarget, was: BucketProbeState, now: { ok: boolean; reason?: string }): void {
    const probed = was.checked_at !== undefined || this.downBefore.delete(id);
    if (now.ok) {
      if (probed && !was.ok) this.log!("info", "upstream probe: ready again", targetFields(id));
      return;
    }
    if (probed && !was.ok && was.reason === now.reason) return; // (still down, for the same reason: said already)
    // (the upstream is named here, never in /ready's reasons, which anyone reaching the listener reads)
    this.log!("warn", "upstream probe failed: not ready", { ...targetFields(id), ...(upstream ? { upstream } : undefined), reason: now.reason ?? "unknown" });
  }

  /** The last probe of a bucket (by name) or of a replica (by probeId). */
  state(id: string): BucketProbeState | undefined {
    return this.states.get(id);
  }
}
