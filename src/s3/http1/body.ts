/**
 * The body source: the ReadableStream side of a streamed response body. It queues what the
 * socket delivers and tells its owner when the consumer's queue is full (pause the socket) and
 * when the consumer wants more (resume it): backpressure reaches the upstream's TCP window.
 *
 * Bun hands every socket `data` event a fresh Buffer (verified on Bun 1.4.5: chunks are never
 * overwritten), so chunks are queued as zero-copy subarrays.
 */

/** What the source reports back to (the request that reads the socket). */
export interface BodyOwner {
  /** The consumer pulled: resume reading the socket if it was paused. */
  resumeReading(): void;
  /** The consumer cancelled the stream: abandon the request. */
  bodyCancelled(): void;
}

const STREAM_HWM = 64 * 1024;

export const STREAM_STRATEGY: QueuingStrategy<Uint8Array> = { highWaterMark: STREAM_HWM, size: (chunk?: Uint8Array) => chunk!.byteLength };

/** Underlying source of one streamed body (methods on a prototype: no per-request closures). */
export class BodySource {
  private ctrl: ReadableStreamDefaultController<Uint8Array> | null = null;
  constructor(private readonly owner: BodyOwner) {}

  /** A stream over this source (start() runs synchronously, so push() works at once). */
  stream(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>(this, STREAM_STRATEGY);
  }

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.ctrl = controller;
  }

  pull(): void {
    this.owner.resumeReading();
  }

  cancel(): void {
    this.ctrl = null; // the stream is already cancelled: nothing to close or error
    this.owner.bodyCancelled();
  }

  /** Queues a chunk. Returns false when the consumer's queue is full: the caller should pause reading. */
  push(chunk: Uint8Array): boolean {
    const ctrl = this.ctrl;
    if (ctrl === null) return true;
    ctrl.enqueue(chunk);
    const ds = ctrl.desiredSize;
    return ds === null || ds > 0;
  }

  /** The body is complete. */
  close(): void {
    const ctrl = this.ctrl;
    this.ctrl = null;
    if (ctrl === null) return;
    try {
      ctrl.close();
    } catch {
      // cancelled meanwhile
    }
  }

  /** The body failed: the consumer's next read rejects with `err`. */
  error(err: unknown): void {
    const ctrl = this.ctrl;
    this.ctrl = null;
    if (ctrl === null) return;
    try {
      ctrl.error(err);
    } catch {
      // stream already closed or errored
    }
  }
}
