import { makeObject } from "../../src/cache/freshness.ts";
import type { CachedObject } from "../../src/cache/types.ts";

/**
 * A cached object of `size` bytes (value i & 255 at offset i) fresh for `ttl` seconds from `now`,
 * with the upstream Date `now` (as this release stores every fill: an entry without one is an
 * earlier release's, revalidated when read back from disk or Redis, storedExpiry).
 */
export function object(key: string, size: number, headers: Record<string, string> = {}, now = 0, ttl = 60): CachedObject {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = i & 255;
  return makeObject(key, new Blob([bytes]), { ...headers }, now, ttl, now);
}

export function bytesOf(size: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = i & 255;
  return b;
}

/**
 * An upstream whose answers the test releases by hand: every call records its extra headers and
 * waits on a promise the test resolves (or rejects) — no timers involved.
 */
export function controlledUpstream() {
  const calls: Record<string, string>[] = [];
  const pending: { resolve: (r: Response) => void; reject: (e: unknown) => void }[] = [];
  const fn = (extra: Record<string, string>) => {
    calls.push(extra);
    return new Promise<Response>((resolve, reject) => pending.push({ resolve, reject }));
  };
  return {
    fn,
    calls,
    /** Answers the oldest unanswered call. */
    respond(r: Response) {
      const p = pending.shift();
      if (p === undefined) throw new Error("no pending upstream call");
      p.resolve(r);
    },
    fail(e: unknown) {
      const p = pending.shift();
      if (p === undefined) throw new Error("no pending upstream call");
      p.reject(e);
    },
    get waiting() {
      return pending.length;
    },
  };
}

/** An upstream answering every call at once with `make(extra)`. */
export function instantUpstream(make: (extra: Record<string, string>) => Response) {
  const calls: Record<string, string>[] = [];
  return {
    calls,
    fn: async (extra: Record<string, string>) => {
      calls.push(extra);
      return make(extra);
    },
  };
}

/** A body stream of `chunks` chunks of `chunkSize` bytes, no Content-Length. */
export function chunkedBody(chunks: number, chunkSize: number): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (i === chunks) return c.close();
      const b = new Uint8Array(chunkSize).fill(i++ & 255);
      c.enqueue(b);
    },
  });
}

/** Lets pending promise callbacks run (microtasks and one macrotask turn). */
export const tick = () => new Promise<void>((r) => setImmediate(r));
