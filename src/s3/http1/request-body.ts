/**
 * Sending a request body with an exact Content-Length, so that a body that fails is an ABORTED
 * request upstream, never a complete one (S3 would store a complete one).
 *
 * ExactLength (pure; the fetch path uses it too) passes the body's bytes through, refuses a body
 * longer or shorter than declared, and holds back the body's LAST byte until the source has
 * reported its end. A source that errors after producing every byte (any source may fail late:
 * a checksum verified at the end, a client that disconnects) therefore never completes the
 * request: the connection is cut at least one byte short.
 *
 * StreamBodyWriter (native client) pumps a ReadableStream into the socket, copying its chunks into
 * one write batch of WRITE_BATCH_BYTES, written when full, at the body's end, and on each sweep of
 * the pool (a slow source). A partial write parks the rest in the exchange's `pending` and waits
 * for the socket's `drain` before reading on, so backpressure reaches the source and at most one
 * batch is held per upload.
 */
import type { Exchange } from "./exchange.ts";
import { RequestBodyError } from "./errors.ts";
import type { Http1Pool } from "./pool.ts";
import { releaseChunk } from "../../http/framed-body.ts";

/** A request body: bytes (replayable, so retried like a bodiless request) or a stream (sent once). */
export type RequestBody = Uint8Array | ReadableStream<Uint8Array>;

export class ExactLength {
  private remaining: number;
  private held: Uint8Array | null = null;

  constructor(readonly length: number) {
    this.remaining = length;
  }

  /** Bytes taken from the source so far (a held-back byte included). */
  get received(): number {
    return this.length - this.remaining;
  }

  /** The part of `chunk` to send now. Throws RequestBodyError when the body runs past its length. */
  next(chunk: Uint8Array): Uint8Array {
    if (!(chunk instanceof Uint8Array)) throw new RequestBodyError("request body stream gave a chunk that is not bytes");
    const n = chunk.byteLength;
    if (n === 0) return chunk;
    if (n > this.remaining) throw new RequestBodyError(`request body longer than its declared length of ${this.length} bytes`);
    this.remaining -= n;
    if (this.remaining > 0) return chunk;
    this.held = chunk.subarray(n - 1);
    return chunk.subarray(0, n - 1);
  }

  /** The source ended: the held-back last byte to send (null for an empty body). Throws when short. */
  end(): Uint8Array | null {
    if (this.remaining > 0) throw new RequestBodyError(`request body ended after ${this.received} of ${this.length} bytes`);
    const h = this.held;
    this.held = null;
    return h;
  }
}

/** A length the clients can frame: a non-negative safe integer. */
export function isValidContentLength(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

function noop(): void {}

/**
 * Socket writes of a streamed body are batched up to this size. Bun's request bodies arrive in
 * 64 KiB chunks; written one by one, each is a send() and a wake-up of the upstream (on loopback,
 * both paid on the proxy's thread). Copied into 256 KiB batches, a 100 MiB
 * upload through the S3 front cost the proxy 13-18 % less CPU per GiB (median 3.4 against 4.1
 * s/GiB over 14 interleaved rounds on a loaded 2-core host; 1 MiB batches did no better).
 */
export const WRITE_BATCH_BYTES = 256 * 1024;

export class StreamBodyWriter {
  private readonly guard: ExactLength;
  private reader: { cancel(reason?: unknown): Promise<void> } | null = null;
  private stopped = false;
  private wake: (() => void) | null = null;
  /** Bytes taken from the source and not yet written: batch[0, batchLen). Only touched while nothing is pending. */
  private batch: Buffer | null = null;
  private batchLen = 0;
  started = false;
  /** Every byte is in the socket: the response-head timeout runs from here. */
  complete = false;
  /** A chunk was taken from the source: the body can no longer be replayed on another socket. */
  consumed = false;
  /** Last time the socket took bytes (the stall check while sending). */
  lastProgress = 0;

  /** `releaseChunks`: the source's chunks are this body's own, freed once copied into the batch (see SendRequest.releaseChunks). */
  constructor(private readonly stream: ReadableStream<Uint8Array>, length: number, private readonly releaseChunks = false) {
    this.guard = new ExactLength(length);
  }

  /** The head is written (on the first socket or, for an unconsumed body, a fresh one): pump. */
  start(pool: Http1Pool, req: Exchange): void {
    this.lastProgress = performance.now();
    if (this.started) return; // a reconnect: the running pump writes to req.conn, whichever it is
    this.started = true;
    void this.run(pool, req);
  }

  /** The socket took the whole pending tail. */
  drained(): void {
    this.lastProgress = performance.now();
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** The exchange ended (failed, aborted, or answered early): release the source. */
  stop(reason: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.batch = null;
    const w = this.wake;
    this.wake = null;
    w?.();
    if (this.complete) return;
    if (this.reader !== null) this.reader.cancel(reason).catch(noop);
    else this.stream.cancel(reason).catch(noop);
  }

  /**
   * Called on each sweep of the pool: a batch still waiting to fill up (a slow client) is written
   * now, so the upstream never waits on our buffer for longer than a sweep interval.
   */
  flushBatch(req: Exchange): void {
    if (this.batchLen > 0 && req.pending === null) this.flush(req);
  }

  private async run(pool: Http1Pool, req: Exchange): Promise<void> {
    try {
      let reader: ReturnType<ReadableStream<Uint8Array>["getReader"]>;
      try {
        reader = this.stream.getReader();
      } catch (err) {
        throw new RequestBodyError("request body stream is not readable (locked or already read)", { cause: err });
      }
      this.reader = reader;
      for (;;) {
        const r = await reader.read();
        if (this.stopped) return;
        if (r.done) {
          const last = this.guard.end();
          if (last !== null && !(await this.push(req, last))) return;
          if (this.batchLen > 0 && !((await this.writable(req)) && this.flush(req))) return;
          if (!(await this.writable(req))) return;
          this.complete = true;
          this.batch = null;
          req.headFrom = performance.now();
          return;
        }
        this.consumed = true;
        const out = this.guard.next(r.value);
        if (out.byteLength > 0 && !(await this.push(req, out))) return;
      }
    } catch (err) {
      if (this.stopped) return;
      pool.fail(req, err instanceof RequestBodyError ? err : new RequestBodyError("request body stream failed", { cause: err }));
    }
  }

  /** Resolves when nothing is pending on the socket; false when the exchange ended meanwhile. */
  private async writable(req: Exchange): Promise<boolean> {
    while (req.pending !== null && !this.stopped) await new Promise<void>((resolve) => (this.wake = resolve));
    return !this.stopped && req.conn !== null && req.conn.socket !== null;
  }

  /** Adds `bytes` to the batch, writing the batch when it is full. False when the exchange ended. */
  private async push(req: Exchange, bytes: Uint8Array): Promise<boolean> {
    // The batch may be in the socket's pending tail: it is only written to once that drained.
    if (req.pending !== null && !(await this.writable(req))) return false;
    const n = bytes.byteLength;
    if (this.batchLen + n > WRITE_BATCH_BYTES && this.batchLen > 0) {
      if (!this.flush(req)) return false;
      if (req.pending !== null && !(await this.writable(req))) return false;
    }
    if (n >= WRITE_BATCH_BYTES) {
      // nothing to gain from a copy; a chunk the socket took whole is in the kernel: freed
      const ok = this.write(req, bytes);
      if (ok && this.releaseChunks && req.pending === null) releaseChunk(bytes);
      return ok;
    }
    if (this.batch === null) this.batch = Buffer.allocUnsafe(WRITE_BATCH_BYTES);
    this.batch.set(bytes, this.batchLen);
    this.batchLen += n;
    // (a whole buffer only: a view, such as the part ExactLength sends before its held-back last
    // byte, is left alone)
    if (this.releaseChunks) releaseChunk(bytes);
    return true;
  }

  /** Writes the batch (nothing may be pending). */
  private flush(req: Exchange): boolean {
    const n = this.batchLen;
    this.batchLen = 0;
    return this.write(req, this.batch!.subarray(0, n));
  }

  /** Writes `bytes` now (nothing may be pending); an unwritten tail waits for `drain`. */
  private write(req: Exchange, bytes: Uint8Array): boolean {
    const socket = req.conn?.socket;
    if (this.stopped || socket == null) return false;
    const n = socket.write(bytes);
    // Closed under us: the socket's close handler ends the exchange (and stops this writer).
    if (n < 0) return false;
    this.lastProgress = performance.now();
    if (n < bytes.byteLength) req.pending = bytes.subarray(n);
    return true;
  }
}

/** The state of a body sent through guardedBodyStream (read by the fetch path). */
export interface GuardedBody {
  readonly stream: ReadableStream<Uint8Array>;
  /** Why the body failed (the stream errored with it), if it did. */
  failure: RequestBodyError | undefined;
  /** Waiting for the source (a slow client), as opposed to waiting for the consumer to pull. */
  waitingForSource: boolean;
  /** performance.now() of the last chunk handed to the consumer. */
  lastChunkAt: number;
  /** The request failed or was abandoned: release the source (fetch does not cancel a body on abort). */
  abandon(reason: unknown): void;
}

/**
 * For clients that take a ReadableStream body (fetch): `source` through ExactLength, one chunk
 * per pull (highWaterMark 0: nothing read ahead). Errors with a RequestBodyError when the source
 * fails or its length is wrong, before the last byte goes out; `onEnd` runs once the last byte
 * was handed over. Cancelling it cancels the source.
 */
export function guardedBodyStream(source: ReadableStream<Uint8Array>, length: number, onEnd: () => void): GuardedBody {
  const guard = new ExactLength(length);
  let reader: ReturnType<ReadableStream<Uint8Array>["getReader"]>;
  try {
    reader = source.getReader();
  } catch (err) {
    throw new RequestBodyError("request body stream is not readable (locked or already read)", { cause: err });
  }
  let cancelled = false;
  const state: GuardedBody = {
    stream: new ReadableStream<Uint8Array>(
      {
        async pull(ctrl) {
          state.waitingForSource = true;
          try {
            for (;;) {
              const r = await reader.read();
              if (cancelled) return; // the consumer went away: not a body failure
              if (r.done) {
                const last = guard.end();
                if (last !== null) ctrl.enqueue(last);
                ctrl.close();
                onEnd();
                return;
              }
              const out = guard.next(r.value);
              if (out.byteLength > 0) {
                ctrl.enqueue(out);
                return;
              }
            }
          } catch (err) {
            state.failure = err instanceof RequestBodyError ? err : new RequestBodyError("request body stream failed", { cause: err });
            reader.cancel(state.failure).catch(noop);
            ctrl.error(state.failure);
          } finally {
            state.waitingForSource = false;
            state.lastChunkAt = performance.now();
          }
        },
        cancel(reason) {
          cancelled = true;
          return reader.cancel(reason);
        },
      },
      { highWaterMark: 0 },
    ),
    failure: undefined,
    waitingForSource: false,
    lastChunkAt: performance.now(),
    abandon(reason) {
      if (cancelled) return;
      cancelled = true;
      reader.cancel(reason).catch(noop);
    },
  };
  return state;
}
