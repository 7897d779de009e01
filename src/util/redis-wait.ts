/**
 * A Redis answer awaited with a deadline, for both Redis clients (the cache layer's link and the
 * shared rate limits).
 */

/**
 * `p`, or a rejection ("<what>: no answer within <ms> ms") once it has not settled within `ms`. The refusal waits one
 * more turn of the event loop: after a stall of this process (a GC pause, a starved CPU) the timer
 * and an answer that came meanwhile are both due, and timers run first, so a Redis that had
 * answered in time was taken for a slow one (the cache layer down and logged, the rate limits
 * local with a fresh burst).
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what?: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => setTimeout(() => reject(new Error(`${what ? `${what}: ` : ""}no answer within ${ms} ms`)), 0), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
