/**
 * An upstream body failed when it stalls: fetch (https endpoints) checks no stall once the head
 * is in, and an answer kept alive (src/fronts/s3/patient.ts) has no client timeout to end it
 * either. Leaf module (the S3 front's streamed copies and its long operations' results use it).
 */
import { ProxyError } from "../errors.ts";

export interface StallGuard {
  /** A read that waits this long fails the body (s3.timeout, in ms). */
  ms: number;
  /** The most the reads may wait in all (a trickle, never silent `ms` long); Infinity: no bound. */
  budgetMs: number;
  /** The error's detail: `stalled`, one read waited `ms`; else the reads took `budgetMs` in all. */
  detail: (stalled: boolean) => string;
  /** Called once, with the detail, when the guard fails the body. */
  onFail?: (detail: string) => void;
  /** Called with each chunk's length as it passes. */
  onBytes?: (n: number) => void;
}

/**
 * `body`, its chunks passed as they are, failed with a GatewayTimeout (and the upstream's body
 * cancelled) when a read waits `g.ms`, or the reads `g.budgetMs` in all. Only a read that waits
 * counts: a consumer that holds the body back (a slow destination) is not the upstream's stall.
 */
export function stallGuarded(body: ReadableStream<Uint8Array>, g: StallGuard): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  /** When the pending read started; -1 while none is pending. */
  let waitingSince = -1;
  /** How long the reads that completed waited, in all. */
  let waited = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  let ended = false;
  const stop = () => {
    ended = true;
    clearInterval(timer);
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        // (the check starts with the first read: a body its consumer drops unread, without
        // cancelling it, leaves no timer behind)
        if (timer === undefined && !ended) {
          timer = setInterval(() => {
            if (waitingSince < 0) return;
            const waiting = performance.now() - waitingSince;
            const stalled = waiting >= g.ms;
            if (!stalled && waited + waiting < g.budgetMs) return;
            stop();
            const err = new ProxyError("GatewayTimeout", { detail: g.detail(stalled) });
            g.onFail?.(err.message);
            reader.cancel(err).catch(() => {});
            c.error(err);
          }, Math.max(50, Math.min(1000, g.ms / 4)));
        }
        waitingSince = performance.now();
        try {
          const r = await reader.read();
          waited += performance.now() - waitingSince;
          waitingSince = -1;
          if (r.done) {
            stop();
            c.close();
          } else {
            g.onBytes?.(r.value.byteLength);
            c.enqueue(r.value);
          }
        } catch (err) {
          stop();
          c.error(err);
        }
      },
      cancel(reason) {
        stop();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
