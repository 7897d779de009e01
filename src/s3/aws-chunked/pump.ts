/**
 * Runs a synchronous push parser ("stage") over a byte stream as a pull-driven ReadableStream.
 *
 * - Backpressure: the source is read only when the consumer asks for more (highWaterMark 0), so
 *   what is held is what one source read produced plus what the stage keeps (at most one chunk).
 * - Errors: a stage error (a PayloadError) or a source error ERRORS the output stream (never a clean
 *   close), cancels the source, and rejects `finished`. A consumer fed from the stream (an upstream
 *   PUT) therefore sees an aborted body, not a complete one. Output the stage pushed before it
 *   failed (verified chunks) is still handed over first, then the stream errors on the next read.
 * - Hold-back: with a Content-Length toward the upstream, releasing the last byte completes the
 *   upstream request, so the piece that completes the body is held until the stage's end() checks
 *   (final chunk signature, trailer, checksums, no trailing garbage) passed. With `total` the held
 *   piece is the one that reaches `total` bytes (nothing else is delayed); without it every piece is
 *   delayed by one.
 */
import { PayloadError, truncatedError } from "./errors.ts";

export interface Stage {
  /** Consume one source piece; push releasable output to `out`. Throws PayloadError. */
  feed(piece: Uint8Array, out: Uint8Array[]): void;
  /** The source ended: validate and push what remains. Throws PayloadError. */
  end(out: Uint8Array[]): void;
  /** The pipe is over (ended, failed or cancelled): let go of what the stage still reserves. */
  dispose?(): void;
}

export type HoldBack = "none" | "last-piece" | { total: number };

export interface Piped {
  stream: ReadableStream<Uint8Array>;
  /** Resolves when the whole body passed; rejects with the PayloadError (or the cancel reason). */
  finished: Promise<void>;
  /**
   * Bytes the stage let through so far (a piece held back included): for a decoder, the payload
   * that arrived, framing not counted; a body cut half-way counts what came before the cut.
   */
  passed(): number;
}

/**
 * The longest the source may keep a read waiting (a client that stopped sending mid-body): S3 ends
 * such an upload with 400 RequestTimeout after about 20 s. Only a pending read counts: while the
 * consumer (the upstream) is slow, nothing is read and nothing is timed.
 */
export const SOURCE_IDLE_MS = 20_000;

const idleError = () => new PayloadError("RequestTimeout", "idle", "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.");

/**
 * A listener that closes a connection whose body arrives too slowly (Bun.serve: see
 * src/http/framed-body.ts, LISTENER_SLOW_BODY). With `slow`, a client that kept the pipe waiting for
 * `waitMs` while fewer than `bytes` arrived is answered 400 RequestTimeout shortly before the
 * listener would close the connection with no answer at all. Only time spent waiting for the
 * client counts (a slow upstream is not the client's fault), so the proxy never answers first
 * where the listener would not have cut.
 */
export interface SlowSource {
  readonly bytes: number;
  readonly waitMs: number;
}

/**
 * `idleMs`: how long one read of `source` may wait (Infinity: not timed, for a source that
 * times its own: see encoder.ts); `slow`: see SlowSource.
 */
export function pipeStage(source: ReadableStream<Uint8Array>, stage: Stage, hold: HoldBack, idleMs = SOURCE_IDLE_MS, slow?: SlowSource): Piped {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const finished = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  finished.catch(() => {}); // the caller may only watch the stream

  const reader = source.getReader();
  const out: Uint8Array[] = [];
  const total = typeof hold === "object" ? hold.total : -1;
  let released = 0;
  let passed = 0;
  let held: Uint8Array | undefined;
  let over = false;
  let deferred: unknown;
  // (slow) the listener's count: bytes since it last restarted, and the time spent waiting for them
  let windowBytes = 0;
  let waited = 0;

  const fail = (err: unknown): void => {
    stage.dispose?.();
    over = true;
    out.length = 0;
    held = undefined;
    reject(err);
    reader.cancel(err).catch(() => {});
  };

  /** Enqueue what `out` holds, minus the held-back piece. True when something was enqueued. */
  const release = (controller: ReadableStreamDefaultController<Uint8Array>): boolean => {
    let sent = false;
    const n = out.length;
    for (let i = 0; i < n; i++) passed += out[i].length;
    if (hold === "last-piece") {
      if (n === 0) return false;
      if (held) {
        controller.enqueue(held);
        sent = true;
      }
      for (let i = 0; i < n - 1; i++) controller.enqueue(out[i]);
      held = out[n - 1];
      out.length = 0;
      return sent || n > 1;
    }
    for (let i = 0; i < n; i++) {
      const p = out[i];
      if (p.length === 0) continue;
      if (released + p.length >= total && total >= 0) {
        // The piece that completes the declared length (a stage never pushes past it).
        held = held ? Buffer.concat([held, p]) : p;
        continue;
      }
      released += p.length;
      controller.enqueue(p);
      sent = true;
    }
    out.length = 0;
    return sent;
  };

  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (deferred !== undefined) throw deferred;
        if (over) return;
        for (;;) {
          let r: Awaited<ReturnType<typeof reader.read>>;
          let timer: ReturnType<typeof setTimeout> | undefined;
          const began = slow ? performance.now() : 0;
          try {
            const read = reader.read();
            const ms = slow ? Math.min(idleMs, Math.max(0, slow.waitMs - waited)) : idleMs;
            // (Infinity: a source timed by its own stage, such as a decoder's output)
            r = ms === Infinity ? await read : await Promise.race([read, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(idleError()), ms)))]);
          } catch (err) {
            const e = err instanceof PayloadError ? err : truncatedError(err);
            fail(e);
            throw e; // errors the output stream
          } finally {
            clearTimeout(timer);
          }
          if (slow && !r.done) {
            waited += performance.now() - began;
            windowBytes += r.value.length;
            if (windowBytes >= slow.bytes) windowBytes = waited = 0;
          }
          try {
            if (r.done) {
              stage.end(out);
              stage.dispose?.();
              if (held) controller.enqueue(held);
              held = undefined;
              for (const p of out) {
                if (p.length === 0) continue;
                passed += p.length;
                controller.enqueue(p);
              }
              out.length = 0;
              over = true;
              controller.close();
              resolve();
              return;
            }
            if (r.value.length > 0) stage.feed(r.value, out);
          } catch (err) {
            // What the stage pushed before it failed was verified (e.g. chunk 1 when chunk 2's
            // signature is wrong): hand it over and error on the next pull, since erroring now
            // would discard the queue.
            const sent = out.length > 0 && release(controller);
            fail(err);
            if (!sent) throw err;
            deferred = err;
            return;
          }
          if (out.length > 0 && release(controller)) return;
        }
      },
      cancel(reason) {
        if (over) return;
        fail(reason ?? new Error("The body stream was cancelled"));
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, finished, passed: () => passed };
}
