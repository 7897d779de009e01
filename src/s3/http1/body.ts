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

import { OBSERVE_BODY, type BodyObserver, type ObservableBody } from "../../http/observed-body.ts";

const STREAM_HWM = 64 * 1024;

const STREAM_STRATEGY: QueuingStrategy<Uint8Array> = { highWaterMark: STREAM_HWM, size: (chunk?: Uint8Array) => chunk!.byteLength };

/** Underlying source of one streamed body (methods on a prototype: no per-request closures). */
export class BodySource {
  private ctrl: ReadableStreamDefaultController<Uint8Array> | null = null;
  /** Set through the stream's OBSERVE_BODY hook (src/http/observed-body.ts). */
  private observer: BodyObserver | null = null;
  /**
   * What happened before an observer was attached: the socket delivers body bytes with the head
   * (often hundreds of KiB in the first read), and a small body can even end, before the response
   * that carries the stream is built. Reported to the observer when it attaches.
   */
  private unobservedBytes = 0;
  private unobservedEnd: { error?: unknown; cancelled?: boolean } | null = null;
  constructor(private readonly owner: BodyOwner) {}

  /** A stream over this source (start() runs synchronously, so push() works at once). */
  stream(): ReadableStream<Uint8Array> {
    const s = new ReadableStream<Uint8Array>(this, STREAM_STRATEGY) as ReadableStream<Uint8Array> & ObservableBody;
    s[OBSERVE_BODY] = (observer) => this.attach(observer);
    return s;
  }

  private attach(observer: BodyObserver): void {
    if (this.unobservedBytes > 0) observer.data(this.unobservedBytes);
    this.unobservedBytes = 0;
    const ended = this.unobservedEnd;
    if (ended !== null) {
      this.unobservedEnd = null;
      observer.end(ended.error, ended.cancelled);
    } else this.observer = observer;
  }

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.ctrl = controller;
  }

  pull(): void {
    this.owner.resumeReading();
  }

  cancel(): void {
    const wasOpen = this.ctrl !== null;
    this.ctrl = null; // the stream is already cancelled: nothing to close or error
    if (wasOpen) this.endObserved(undefined, true);
    this.owner.bodyCancelled();
  }

  private endObserved(error?: unknown, cancelled?: boolean): void {
    const o = this.observer;
    this.observer = null;
    if (o !== null) o.end(error, cancelled);
    else this.unobservedEnd = { error, cancelled };
  }

  /** Queues a chunk. Returns false when the consumer's queue is full: the caller should pause reading. */
  push(chunk: Uint8Array): boolean {
    const ctrl = this.ctrl;
    if (ctrl === null) return true;
    ctrl.enqueue(chunk);
    const o = this.observer;
    if (o !== null) o.data(chunk.byteLength);
    else this.unobservedBytes += chunk.byteLength;
    const ds = ctrl.desiredSize;
    return ds === null || ds > 0;
  }

  /** The body is complete. */
  close(): void {
    const ctrl = this.ctrl;
    this.ctrl = null;
    if (ctrl === null) return;
    this.endObserved();
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
    const observed = this.observer !== null;
    this.endObserved(err);
    try {
      // An observer has the real error; `undefined` makes Bun.serve cut the connection quietly.
      ctrl.error(observed ? undefined : err);
    } catch {
      // stream already closed or errored
    }
  }
}
