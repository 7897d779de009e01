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
    const now = rss();
    if (floor < 0 || now < floor) {
      floor = now;
      return;
    }
    if (now - floor < GROWTH_BYTES) return;
    collect();
    floor = rss();
  };
}

/** The process's own (every node-engine request body counts toward it). */
export const bodyBytesForwarded = bodyGarbageWatch();
