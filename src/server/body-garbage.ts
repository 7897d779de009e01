/**
 * The node engine's request bodies come as a fresh Buffer per chunk (node:http's Readable under
 * Bun), garbage once forwarded, and JavaScriptCore collects such buffers late: a 1 GiB upload
 * saw-toothed the proxy's RSS up by 45-70 MiB (a PutObject) and 75 MiB (a browser form's
 * PostObject), over the 64 MiB an upload may add. An async hint (Bun.gc(false)) changed nothing,
 * and a full collection every 16 MiB of body cost ~1 s of CPU per GiB. So every CHECK_BYTES of
 * body, process-wide, the RSS is read (~8 µs), and a full collection runs only when the RSS has
 * grown GROWTH_BYTES past where the last one left it: measured (bench A/B, 100 MiB PutObjects,
 * s3_api.engine node) the peak growth fell from 64-71 to 47-56 MiB, for ~0.3 s more CPU per GiB
 * uploaded (2.2 → 2.5 s/GiB). The bun engine needs none of it (Bun.serve's body goes to fetch()
 * natively, or arrives in chunks JavaScriptCore frees in time).
 */
const CHECK_BYTES = 4 << 20;
const GROWTH_BYTES = 40 << 20;

/** A counter of body bytes forwarded that collects when the RSS has grown too far since the last collection. */
export function bodyGarbageWatch(rss: () => number = process.memoryUsage.rss, collect: () => void = () => Bun.gc(true)): (bytes: number) => void {
  let unchecked = 0;
  /** The RSS after the last collection (or the lowest seen since): the level growth is measured from. */
  let floor = -1;
  return (bytes) => {
    unchecked += bytes;
    if (unchecked < CHECK_BYTES) return;
    unchecked = 0;
    const now = rssOrUndefined(rss);
    if (now === undefined) return;
    if (floor < 0 || now < floor) {
      floor = now;
      return;
    }
    if (now - floor < GROWTH_BYTES) return;
    collect();
    floor = rssOrUndefined(rss) ?? -1;
  };
}

/**
 * The RSS, or undefined when it cannot be read: Bun reads it from /proc, which takes a file
 * descriptor, and a process with none left threw from a timer (an uncaught exception: the idle
 * collector's tick stopped the whole process at once when descriptors ran out).
 */
function rssOrUndefined(rss: () => number): number | undefined {
  try {
    return rss();
  } catch {
    return undefined;
  }
}

/** The process's own (every node-engine request body counts toward it). */
export const bodyBytesForwarded = bodyGarbageWatch();

/**
 * The bun engine's garbage is collected late too: JavaScriptCore collects when allocation (a
 * streamed body's socket chunks count as extra memory) passes a threshold, and an idle process
 * allocates nothing, so whatever garbage the last burst left stays resident until the next one.
 * After the bench gate's load (bench/load.ts: 1 KiB GETs and PUTs, 100 MiB streams and uploads)
 * the proxy's RSS read 98-125 MiB with 24-40 MiB of it garbage (heapStats: heapSize 24-40 MiB,
 * 7.6 after a full collection), 88 MiB once collected; runs of the same code read 87-107 MiB in
 * CI, depending on where in a collection cycle the load stopped. So every IDLE_CHECK_MS the
 * process's CPU time and RSS are read (no per-request work), and when the last interval was idle
 * (under IDLE_CPU_SHARE of a core) and the RSS has grown IDLE_GROWTH_BYTES past where the last
 * collection left it (or the lowest seen since), one full collection runs: once per burst, never
 * under load.
 */
const IDLE_CHECK_MS = 1_000;
const IDLE_CPU_SHARE = 0.05;
const IDLE_GROWTH_BYTES = 8 << 20;
const IDLE_GROWTH_MAX = 64 << 20;

export interface IdleCollectOptions {
  rss?: () => number;
  /** CPU time used so far, µs. */
  cpuMicros?: () => number;
  collect?: () => void;
  everyMs?: number;
}

/** One tick of the idle collector: `elapsedMs` since the last. Exported for tests. */
export function idleCollector(o: IdleCollectOptions = {}): (elapsedMs: number) => boolean {
  const rss = o.rss ?? process.memoryUsage.rss;
  const cpuMicros =
    o.cpuMicros ??
    (() => {
      const u = process.cpuUsage();
      return u.user + u.system;
    });
  const collect = o.collect ?? (() => Bun.gc(true));
  let floor = -1;
  // The growth that starts a collection: doubled (up to IDLE_GROWTH_MAX) after one that freed
  // little, since that growth was live (a memory cache filling under light load) and every 8 MiB
  // of it cost a full collection (14-38 ms, the process stopped); back to IDLE_GROWTH_BYTES after
  // one that freed a quarter of it.
  let growth = IDLE_GROWTH_BYTES;
  let cpu = cpuMicros();
  return (elapsedMs) => {
    const nowCpu = cpuMicros();
    const busy = nowCpu - cpu > elapsedMs * 1000 * IDLE_CPU_SHARE;
    cpu = nowCpu;
    const now = rssOrUndefined(rss);
    if (now === undefined) return false;
    if (floor < 0 || now < floor) floor = now;
    if (busy || now - floor < growth) return false;
    collect();
    const after = rssOrUndefined(rss);
    growth = after !== undefined && now - after < growth / 4 ? Math.min(growth * 2, IDLE_GROWTH_MAX) : IDLE_GROWTH_BYTES;
    floor = after ?? -1;
    cpu = cpuMicros();
    return true;
  };
}

/** Starts the idle collector (an unref'd timer); returns what stops it. */
export function collectWhenIdle(o: IdleCollectOptions = {}): () => void {
  const every = o.everyMs ?? IDLE_CHECK_MS;
  const tick = idleCollector(o);
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    tick(now - last);
    last = now;
  }, every);
  timer.unref?.();
  return () => clearInterval(timer);
}
