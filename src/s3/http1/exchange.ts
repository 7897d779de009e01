/**
 * One request/response exchange: its state, and reading the response off the socket — the head
 * (through the pure parser), then the body by its framing: buffered whole (small Content-Length),
 * or streamed through a BodySource (large Content-Length, chunked through the pure decoder, or
 * close-delimited).
 *
 * A socket is handed back to the pool only after a cleanly framed, completely read response with
 * no trailing bytes; anything else destroys it. Whatever the upstream gets wrong is an
 * UpstreamProtocolError.
 */
import { BodySource, type BodyOwner } from "./body.ts";
import { framedTimeoutMs, heldBodyDue } from "./budget.ts";
import { ChunkedDecoder, type ChunkedSink } from "./chunked.ts";
import type { Conn } from "./conn.ts";
import { UpstreamProtocolError, UpstreamTimeoutError } from "./errors.ts";
import { parseResponseHead, type ResponseHead } from "./head.ts";
import type { Http1Pool } from "./pool.ts";
import type { StreamBodyWriter } from "./request-body.ts";
import { markOwnedBytes } from "../../http/owned-response.ts";

/** Waiting for (the rest of) the response head. */
export const P_HEAD = 0;
/** Head parsed, reading the body. */
export const P_BODY = 1;
/** Finished, failed or abandoned. */
export const P_DONE = 2;

export class Exchange implements BodyOwner, ChunkedSink {
  conn: Conn | null = null;
  phase = P_HEAD;
  settled = false;
  /** Already retried once after a stale keep-alive socket. */
  retried = false;
  gotByte = false;
  /** Bytes arrived since the last sweep (the stall timer restarts). */
  progressed = false;
  /** The socket is paused because the consumer's queue is full. */
  paused = false;
  lastProgress = 0;
  /** When the current TCP connect began (connect timeout). */
  connectStarted = 0;
  /** Unwritten tail of the request after a partial write. */
  pending: Uint8Array | null = null;
  /** A bytes request body, written in one write with the head (replayable on a fresh socket). */
  requestBody: Uint8Array | null = null;
  /** Pumps a streamed request body (null without one, or with a bytes body sent with the head). */
  writer: StreamBodyWriter | null = null;
  /** When the response-head timeout starts: at `started`, or once a streamed body is all sent. */
  headFrom: number;
  // head accumulation (only when the head spans several data events)
  private hbuf: Buffer | null = null;
  private hlen = 0;
  private scanFrom = 0;
  head: ResponseHead | null = null;
  // body
  private remaining = 0;
  private buf: Buffer | null = null;
  private bufOff = 0;
  private body: BodySource | null = null;
  private decoder: ChunkedDecoder | null = null;
  /** A body of unknown length (chunked, close-delimited) held until it ends or passes bufferBodyUpTo. */
  private pre: Buffer[] | null = null;
  private preBytes = 0;
  /** The held chunked body passed bufferBodyUpTo in the read being decoded: streamHeld once it is. */
  private overflowed = false;
  /** When the held body of unknown length began, and the most its hold may take (see heldBodyDue). */
  private preFrom = 0;
  private preCap = 0;
  /**
   * While a body is read whole before the answer is handed over (a known length up to
   * bufferBodyUpTo, or one of unknown length held): when it must have ended (performance.now()
   * clock; the sweep fails the attempt past it). As fetch's path bounds it: s3.timeout plus the
   * body at 16 KiB/s. A body trickling in steadily (never a stall) otherwise held its attempt, and
   * the failover to another replica, until the request's own deadline.
   */
  holdUntil = Infinity;

  /** The request's abandonment mark (Http1RequestOptions.abandon), looked at on each sweep. */
  abandon: { readonly abandoned?: unknown } | undefined = undefined;
  /** Called when the streamed body of an answer already handed over ends: whole (true) or failed on the upstream's side (false). */
  onBodyEnd: ((ok: boolean) => void) | undefined = undefined;
  /** The body is streamed to the caller (not read whole before the answer was handed over). */
  streamed = false;
  /** Http1RequestOptions.holdUnknownLength. */
  holdUnknownLength = false;

  constructor(
    readonly pool: Http1Pool,
    readonly isHead: boolean,
    /** The request head (a bytes body is `requestBody`, written with it). */
    readonly requestHead: string | Uint8Array,
    readonly timeoutMs: number,
    readonly connectTimeoutMs: number,
    readonly signal: AbortSignal | undefined,
    readonly started: number,
    readonly resolve: (r: Response) => void,
    readonly reject: (e: unknown) => void,
  ) {
    this.headFrom = started;
  }

  /** Bytes from the socket. */
  receive(data: Buffer): void {
    this.gotByte = true;
    this.progressed = true;
    if (this.phase === P_HEAD) {
      const rest = this.receiveHead(data);
      if (rest !== null) this.startBody(rest);
    } else if (this.phase === P_BODY) {
      this.receiveBody(data);
    }
  }

  /** Hands the failure to whoever is waiting: the promise, or the body's reader. */
  deliverError(err: unknown): void {
    if (!this.settled) {
      this.settled = true;
      this.reject(err);
      return;
    }
    // The answer was handed over and its body then failed on the upstream's side (cut, stalled,
    // malformed): the caller counts it (the breaker), since the attempt itself looked fine.
    if (this.onBodyEnd !== undefined && (err instanceof UpstreamTimeoutError || err instanceof UpstreamProtocolError)) this.onBodyEnd(false);
    const body = this.body;
    this.body = null;
    body?.error(err);
  }

  /** The held body passed bufferBodyUpTo: the answer is handed over as a stream, the held chunks first. */
  private streamHeld(): void {
    const held = this.pre!;
    this.pre = null;
    this.holdUntil = Infinity;
    const source = new BodySource(this);
    this.body = source;
    this.streamed = true;
    this.settle(source.stream());
    if (this.phase !== P_BODY) return;
    for (const chunk of held) this.enqueue(chunk);
  }

  /** The body ended cleanly (its framing's end, or a close-delimited body's clean close). */
  endOfStream(): void {
    const held = this.pre;
    if (held !== null) {
      // (held whole: answered as bytes of the Content-Length it now has, as an owned answer is)
      this.pre = null;
      const h = this.head!.headers;
      h.delete("transfer-encoding");
      h.set("content-length", String(this.preBytes));
      this.settle(held.length === 1 ? held[0] : Buffer.concat(held, this.preBytes));
      return;
    }
    const body = this.body;
    this.body = null;
    body?.close();
  }

  // ---- BodyOwner / ChunkedSink ----------------------------------------------------------------

  resumeReading(): void {
    if (this.paused && this.phase === P_BODY && this.conn !== null) {
      this.paused = false;
      this.conn.socket?.resume();
    }
  }

  bodyCancelled(): void {
    if (this.phase === P_DONE) return;
    this.body = null;
    this.pool.fail(this, new Error("response body cancelled"));
  }

  onChunkData(chunk: Uint8Array): void {
    this.enqueue(chunk);
  }

  // ---- head -----------------------------------------------------------------------------------

  /** Accumulates head bytes; returns the bytes after the final head, or null when waiting (or failed). */
  private receiveHead(data: Buffer): Buffer | null {
    let buf: Buffer;
    if (this.hbuf === null) {
      buf = data;
    } else {
      const need = this.hlen + data.length;
      if (need > this.hbuf.length) {
        const grown = Buffer.allocUnsafe(Math.max(need, this.hbuf.length * 2));
        this.hbuf.copy(grown, 0, 0, this.hlen);
        this.hbuf = grown;
      }
      data.copy(this.hbuf, this.hlen);
      this.hlen = need;
      buf = this.hbuf.subarray(0, need);
    }
    for (;;) {
      const r = parseResponseHead(buf, this.isHead, this.scanFrom);
      if (r.kind === "incomplete") {
        if (this.hbuf === null) {
          const hb = Buffer.allocUnsafe(Math.max(1024, buf.length * 2));
          buf.copy(hb, 0);
          this.hbuf = hb;
        } else if (buf.byteOffset !== this.hbuf.byteOffset || buf.buffer !== this.hbuf.buffer) {
          buf.copy(this.hbuf, 0); // the tail after an interim response: keep only that
        }
        this.hlen = buf.length;
        this.scanFrom = r.scanFrom;
        return null;
      }
      if (r.kind === "error") {
        this.pool.fail(this, new UpstreamProtocolError(r.message));
        return null;
      }
      this.scanFrom = 0;
      const rest = buf.subarray(r.end);
      if (r.kind === "interim") {
        // 100 Continue, 103 Early Hints: discarded, the final head follows.
        if (rest.length === 0) {
          this.hbuf = null;
          this.hlen = 0;
          return null;
        }
        buf = rest;
        continue;
      }
      this.hbuf = null;
      this.head = r.head;
      return rest;
    }
  }

  // ---- body -----------------------------------------------------------------------------------

  /** The head is parsed; `rest` holds whatever followed it in the same read. */
  private startBody(rest: Buffer): void {
    // A success before the request was all sent (a bytes body's tail still pending, a stream not
    // yet ended) cannot be the store's answer to that body (S3 answers a write once it has every
    // byte): relayed, the client was told 200 for an object the store never got. An early refusal
    // (403, 400...) is the store's to give, and passes.
    if (this.head!.status < 300 && (this.pending !== null || (this.writer !== null && !this.writer.complete))) {
      this.pool.fail(this, new UpstreamProtocolError("upstream answered success before the request body was sent"));
      return;
    }
    const framing = this.head!.framing;
    if (framing === "none") {
      this.settle(null);
      if (this.phase !== P_DONE) this.pool.finish(this, rest.length > 0);
      return;
    }
    this.phase = P_BODY;
    if (framing === "length") {
      const cl = this.head!.contentLength;
      this.remaining = cl;
      if (cl <= this.pool.bufferBodyUpTo) {
        if (rest.length >= cl) {
          // Whole body in this read: a zero-copy view (Bun does not reuse data buffers).
          this.settle(rest.length === cl ? rest : rest.subarray(0, cl));
          if (this.phase !== P_DONE) this.pool.finish(this, rest.length > cl);
          return;
        }
        // (an error's body is not held: it streams, and its reader waits for it only so long,
        // readErrorPrefix; held, one announced long and never sent failed the answer as a timeout)
        if (this.head!.status < 300) {
          this.holdUntil = performance.now() + framedTimeoutMs(this.timeoutMs, cl);
          const buf = Buffer.allocUnsafe(cl);
          rest.copy(buf, 0);
          this.buf = buf;
          this.bufOff = rest.length;
          this.remaining = cl - rest.length;
          return;
        }
      }
    }
    const code = this.head!.status;
    if (this.holdUnknownLength && framing !== "length" && code >= 200 && code < 300 && this.pool.bufferBodyUpTo > 0) {
      // A body of unknown length (chunked, or until close) is held as a known-length one is, up to
      // bufferBodyUpTo, before the answer is handed over: a body cut, stalled or malformed in that
      // span fails the attempt (retried, or failed over to another replica) instead of a 200 cut
      // short; one that ends within it is answered as bytes (with a length). Past it, the answer is
      // handed over and streamed, what was held first.
      this.pre = [];
      this.preBytes = 0;
      this.preFrom = performance.now();
      this.preCap = framedTimeoutMs(this.timeoutMs, this.pool.bufferBodyUpTo);
      this.holdUntil = heldBodyDue(this.preFrom, this.timeoutMs, 0, this.preCap);
      if (framing === "chunked") this.decoder = new ChunkedDecoder();
      if (rest.length > 0) this.receiveBody(rest);
      return;
    }
    // Streamed body.
    const source = new BodySource(this);
    this.body = source;
    this.streamed = true;
    const stream = source.stream();
    if (framing === "chunked") {
      // The bytes that came with the head are decoded before the answer is handed over: a body
      // malformed from its first chunk is a failed attempt (502, or retried), not a 200 whose
      // connection is cut before the client reads a byte.
      const decoder = (this.decoder = new ChunkedDecoder());
      const status = rest.length > 0 ? decoder.feed(rest, this) : "more";
      if (this.phase !== P_BODY) return; // cancelled meanwhile
      if (status === "error") {
        this.pool.fail(this, new UpstreamProtocolError(decoder.error));
        return;
      }
      this.settle(stream);
      if (this.phase !== P_BODY || status !== "done") return;
      this.endOfStream();
      this.pool.finish(this, decoder.end < rest.length);
      return;
    }
    this.settle(stream);
    if (this.phase === P_DONE) return;
    if (framing === "length" && this.remaining === 0) {
      this.endOfStream();
      this.pool.finish(this, rest.length > 0);
      return;
    }
    if (rest.length > 0) this.receiveBody(rest);
  }

  private receiveBody(data: Buffer): void {
    const decoder = this.decoder;
    if (decoder !== null) {
      const status = decoder.feed(data, this);
      if (this.phase !== P_BODY) return; // failed or cancelled meanwhile
      if (status === "error") {
        // (a held body is handed over only below: malformed in this read, it fails the attempt)
        this.pool.fail(this, new UpstreamProtocolError(decoder.error));
        return;
      }
      if (this.overflowed) {
        this.overflowed = false;
        this.streamHeld();
        if (this.phase !== P_BODY) return;
      }
      if (status === "done") {
        this.endOfStream();
        this.pool.finish(this, decoder.end < data.length);
      }
      return;
    }
    if (this.head!.framing !== "length") {
      this.enqueue(data); // close-delimited
      return;
    }
    const n = data.length;
    const take = n <= this.remaining ? n : this.remaining;
    this.remaining -= take;
    if (this.buf !== null) {
      data.copy(this.buf, this.bufOff, 0, take);
      this.bufOff += take;
      if (this.remaining === 0) {
        const body = this.buf;
        this.buf = null;
        this.settle(body);
        if (this.phase !== P_DONE) this.pool.finish(this, n > take);
      }
      return;
    }
    if (take > 0) this.enqueue(take === n ? data : data.subarray(0, take));
    if (this.remaining === 0 && this.phase === P_BODY) {
      this.endOfStream();
      this.pool.finish(this, n > take);
    }
  }

  private enqueue(chunk: Uint8Array): void {
    const pre = this.pre;
    if (pre !== null) {
      pre.push(chunk as Buffer);
      this.preBytes += chunk.byteLength;
      // (a chunked body is handed over once the whole read is decoded, receiveBody: handed over in
      // the middle of it, a malformed chunk later in the same read failed a stream nothing observed
      // yet, a 200 cut before its first byte and Bun's print of the error, not a failed attempt)
      if (this.preBytes > this.pool.bufferBodyUpTo) {
        if (this.decoder !== null) this.overflowed = true;
        else this.streamHeld();
      }
      else this.holdUntil = heldBodyDue(this.preFrom, this.timeoutMs, this.preBytes, this.preCap);
      return;
    }
    const body = this.body;
    if (body === null) return;
    if (!body.push(chunk) && !this.paused && this.phase === P_BODY && this.conn !== null) {
      this.paused = true;
      this.conn.socket?.pause();
    }
  }

  private settle(body: Buffer | ReadableStream<Uint8Array> | null): void {
    const head = this.head!;
    let res: Response;
    try {
      res = new Response(body, { status: head.status, statusText: head.statusText, headers: head.headers });
    } catch {
      this.pool.fail(this, new UpstreamProtocolError("invalid upstream response status"));
      return;
    }
    if (!(body instanceof ReadableStream)) markOwnedBytes(res);
    this.settled = true;
    this.resolve(res);
  }
}
