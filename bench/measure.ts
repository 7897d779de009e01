/**
 * ns per op, for the figures bench/*.bench.test.ts print and their sanity ceilings: `warmup` calls,
 * then `iterations` calls in ROUNDS rounds, the fastest round's mean. One timing over all of them
 * counted every pause of the process as the code's (two test files at a time under bun test
 * --parallel=2, other work on the host: sigv4's GET signing measured 66 µs against its 50 µs
 * ceiling, ~5 µs on a quiet host); a round the scheduler left alone says what the code costs.
 */
const ROUNDS = 10;

export function measure(fn: (i: number) => unknown, iterations: number, warmup = Math.ceil(iterations / 10)): number {
  let sink: unknown;
  for (let i = 0; i < warmup; i++) sink = fn(i);
  const per = Math.max(1, Math.floor(iterations / ROUNDS));
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const start = Bun.nanoseconds();
    for (let i = r * per; i < (r + 1) * per; i++) sink = fn(i);
    best = Math.min(best, (Bun.nanoseconds() - start) / per);
  }
  if (sink === Symbol.for("never")) console.log(sink); // keep results observable
  return best;
}

export async function measureAsync(fn: (i: number) => Promise<unknown>, iterations: number, warmup = Math.ceil(iterations / 10)): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const per = Math.max(1, Math.floor(iterations / ROUNDS));
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const start = Bun.nanoseconds();
    for (let i = r * per; i < (r + 1) * per; i++) await fn(i);
    best = Math.min(best, (Bun.nanoseconds() - start) / per);
  }
  return best;
}
