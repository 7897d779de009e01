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

export async function measureAdmitted(lanes: number, ms: number, ask: (lane: number) => Promise<Outcome>, concurrency = 4): Promise<RateMeasure> {
  let n = 0;
  const refusedLast = new Array<boolean>(lanes).fill(false);
  const allRefused = () => refusedLast.every(Boolean);
  // Drain: ask until the latest answer of every lane is a refusal.
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!allRefused()) {
        const lane = n++ % lanes;
        refusedLast[lane] = (await ask(lane)) === "refused";
      }
    }),
  );
  const m: RateMeasure = { admitted: 0, refused: 0, other: new Map(), perLane: new Array<number>(lanes).fill(0), seconds: 0 };
  refusedLast.fill(false);
  const t0 = performance.now();
  let done = false;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!done) {
        const lane = n++ % lanes;
        const o = await ask(lane);
        if (done) break; // answered after the window closed
        if (o === "admitted") {
          m.admitted++;
          m.perLane[lane]++;
        } else if (o === "refused") m.refused++;
        else m.other.set(o, (m.other.get(o) ?? 0) + 1);
        if (performance.now() - t0 >= ms) {
          refusedLast[lane] = o === "refused";
          if (allRefused()) {
            done = true;
            m.seconds = (performance.now() - t0) / 1000;
          }
        }
      }
    }),
  );
  return m;
}
