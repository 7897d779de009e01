import { heapStats } from "bun:jsc";

/**
 * The cells (JavaScriptCore objects) one call of `fn` allocates, by type, averaged over `n` calls
 * after a warm-up, with a full collection before and none expected between (counts are exact for
 * a synchronous `fn`; a collection could only lower them). For allocation budgets of hot paths.
 */
export async function cellsPerCall(fn: () => unknown, n = 200): Promise<Record<string, number>> {
  for (let i = 0; i < 200; i++) {
    const r = fn();
    if (r instanceof Promise) await r;
  }
  Bun.gc(true);
  const before = heapStats().objectTypeCounts as Record<string, number>;
  for (let i = 0; i < n; i++) {
    const r = fn(); // (awaited only when it is a promise: a synchronous fn's loop allocates nothing of its own)
    if (r instanceof Promise) await r;
  }
  const after = heapStats().objectTypeCounts as Record<string, number>;
  const out: Record<string, number> = {};
  for (const [type, count] of Object.entries(after)) out[type] = (count - (before[type] ?? 0)) / n;
  return out;
}
