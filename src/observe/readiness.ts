/**
 * Background upstream probes for /ready: one cheap signed HEAD per bucket every `intervalMs`,
 * never one per /ready call (a load balancer polling /ready must not become load on S3).
 */
import type { BucketUpstream } from "../s3/upstream.ts";

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
  private waiters: Array<() => void> = [];
  rounds = 0;

  constructor(
    private readonly upstreams: readonly BucketUpstream[],
    private readonly intervalMs = 5000,
    private readonly timeoutMs = 2000,
  ) {
    for (const u of upstreams) this.states.set(u.name, { ok: false, reason: "not probed yet" });
  }

  start(): void {
    void this.round();
    this.timer = setInterval(() => void this.round(), this.intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
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
        this.upstreams.map(async (u) => {
          const r = await u.probe(this.timeoutMs);
          this.states.set(u.name, { ...r, checked_at: new Date().toISOString() });
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

  state(name: string): BucketProbeState | undefined {
    return this.states.get(name);
  }
}
