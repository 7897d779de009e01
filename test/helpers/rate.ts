/**
 * Measures what a rate limiter admits under saturating load, in a way a busy machine cannot skew.
 *
 * A token bucket admits `rate × time` only while it is neither empty nor idle. On a loaded test
 * machine the client can stall for a few hundred milliseconds; a bucket that fills up during a
 * stall wastes tokens and the count comes out low, through no fault of the limiter. So the window
 * starts when every lane (limiter, process) has just refused a request (all buckets empty), and
 * ends, once `ms` have passed, only when every lane has refused again: every token that accrued in
 * the window has been used, and none from before it. With a capacity (burst) of at least one
 * second's worth, stalls under a second cost nothing, and admitted ≈ rate × seconds.
 *
 * "Just refused" is told by when the refused request was SENT, not when its answer was read: the
 * limiter decides as it gets the request (Redis, another process, keeps deciding while this one
 * stalls), so answers read after a stall of this process are refusals of before it, while the
 * buckets refilled meanwhile. Counted as the window's end, the stall's tokens were in its seconds
 * but never asked for (80/s measured as 65/s after a 300 ms stall). The window's ends are the
 * sends of one refusal per lane, all within SPAN_MS of each other and, for the end, sent once `ms`
 * had passed; answers to requests sent before the end are counted, later ones not.
 */
export type Outcome = "admitted" | "refused" | string;

export interface RateMeasure {
  admitted: number;
  refused: number;
  /** Anything else (errors, other statuses), by outcome. */
  other: Map<string, number>;
  perLane: number[];
  seconds: number;
}

/** How close together the sends of the refusals that open and close the window are (one per lane). */
const SPAN_MS = 50;

export async function measureAdmitted(lanes: number, ms: number, ask: (lane: number) => Promise<Outcome>, concurrency = 4): Promise<RateMeasure> {
  let n = 0;
  /** Per lane, its latest-sent answered request: when it was sent, and whether it was refused. */
  const last = Array.from({ length: lanes }, () => ({ sent: -Infinity, refused: false }));
  /** The latest send of the lanes' refusals when each lane's latest answer is a refusal sent at `from` or later, all within SPAN_MS; undefined otherwise. */
  const allRefusedAt = (from: number): number | undefined => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const l of last) {
      if (!l.refused || l.sent < from) return undefined;
      lo = Math.min(lo, l.sent);
      hi = Math.max(hi, l.sent);
    }
    return hi - lo <= SPAN_MS ? hi : undefined;
  };
  const answered = (lane: number, sent: number, o: Outcome) => {
    if (sent > last[lane]!.sent) last[lane] = { sent, refused: o === "refused" };
  };
  // Drain: ask until the latest answer of every lane is a refusal.
  let t0: number | undefined;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (t0 === undefined) {
        const lane = n++ % lanes;
        const sent = performance.now();
        answered(lane, sent, await ask(lane));
        t0 ??= allRefusedAt(-Infinity);
      }
    }),
  );
  const start = t0!;
  const m: RateMeasure = { admitted: 0, refused: 0, other: new Map(), perLane: new Array<number>(lanes).fill(0), seconds: 0 };
  for (const l of last) l.refused = false;
  let end: number | undefined;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (end === undefined) {
        const lane = n++ % lanes;
        const sent = performance.now();
        const o = await ask(lane);
        if (end !== undefined && sent > end) break; // sent after the window closed
        if (o === "admitted") {
          m.admitted++;
          m.perLane[lane]++;
        } else if (o === "refused") m.refused++;
        else m.other.set(o, (m.other.get(o) ?? 0) + 1);
        answered(lane, sent, o);
        end ??= allRefusedAt(start + ms);
      }
    }),
  );
  m.seconds = (end! - start) / 1000;
  return m;
}
