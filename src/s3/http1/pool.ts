/**
 * A small keep-alive HTTP/1.1 client over `Bun.connect`, for plain-http S3-compatible upstreams:
 * the connection pool (LIFO idle sockets, reaped when unused) and the timers.
 *
 * Scope: GET, HEAD, PUT, POST and DELETE, one request at a time per socket (no pipelining). A
 * request body always goes with an exact Content-Length (./request-body.ts), never chunked.
 * It exists because Bun's fetch() costs ~2x the CPU per small proxied request; https stays on fetch.
 *
 * No per-request timers, AbortSignal listeners or closures beyond the promise executor: connect
 * timeouts, head timeouts, body stalls and aborts are all checked by one unref'd interval per pool
 * (`sweep`) that runs only while requests are in flight.
 */
import { descriptorLeft } from "../../util/descriptors.ts";
import { Conn, handlers } from "./conn.ts";
import { UpstreamConnectTimeoutError, UpstreamProtocolError, UpstreamTimeoutError } from "./errors.ts";
import { Exchange, P_BODY, P_DONE, P_HEAD } from "./exchange.ts";
import { BAD_VALUE, buildRequestHead, type Http1Method } from "./request.ts";
import { isValidContentLength, type RequestBody, StreamBodyWriter } from "./request-body.ts";

export interface Http1RequestOptions {
  /** Reject with UpstreamTimeoutError when the complete response head has not arrived within this many ms
   *  (connecting included), and (after the head) error the body when no body bytes arrive for this many ms (stall). */
  timeoutMs: number;
  /** Reject with UpstreamConnectTimeoutError when a new TCP connection is not established within this
   *  many ms (a pooled socket skips it). Default: no separate limit (timeoutMs still bounds it). */
  connectTimeoutMs?: number;
  /** Optional: when it becomes aborted, the request is abandoned (socket destroyed) and the promise rejects
   *  with signal.reason (or the body stream errors with it). Checked before sending and on each sweep tick. */
  signal?: AbortSignal;
  /** Optional: once its `abandoned` is set (the request's deadline passed), the request is abandoned as for `signal`, rejecting with that value. */
  abandon?: { readonly abandoned?: unknown };
  /** A request body. Bytes go out with the head and may be replayed on a fresh socket; a stream is
   *  pumped with backpressure and sent once. The response-head timeout starts once a stream is all
   *  sent; while sending, a socket that takes no bytes for `timeoutMs` is a stall. */
  body?: RequestBody | null;
  /** Exact body length, sent as Content-Length. Required with a stream; with bytes it must match. */
  contentLength?: number;
  /**
   * A request that is not idempotent: sent on a fresh connection (never a pooled one, which the
   * upstream may close as the request goes out), and never resent once written (the upstream may
   * have applied it before closing).
   */
  noResend?: boolean;
  /** Called when a streamed body, once handed over, ends: whole (true), or failed on the upstream's side (false: cut, stalled, malformed). */
  onBodyEnd?: (ok: boolean) => void;
  /**
   * A 2xx whose body has no length (chunked, until close) is held up to bufferBodyUpTo
   * before it is handed over, as a known-length one is (an object GET: a cut there fails the
   * attempt; a PUT's, SendRequest.emptyAnswer). Without it such a body streams from its first byte
   * (a Complete's long-held answer).
   */
  holdUnknownLength?: boolean;
  /** A streamed body's chunks are the request's own: each is freed once copied (SendRequest.releaseChunks). */
  releaseChunks?: boolean;
}

export interface Http1PoolOptions {
  host: string;
  port: number;
  /** Value of the Host header, e.g. "127.0.0.1:9000". */
  hostHeader: string;
  /** Idle keep-alive sockets kept, default 256. */
  maxIdle?: number;
  /** An idle socket unused this long is closed, default 15000. */
  idleTimeoutMs?: number;
  /** Bodies with Content-Length <= this are read completely before the promise resolves. Default 1 MiB. */
  bufferBodyUpTo?: number;
  /** Sweep interval for timeouts and aborts, default 100 ms (unref'd, runs only while requests are in flight). */
  sweepIntervalMs?: number;
  /** Connects given up on (timed out, aborted) but still pending, past which new ones wait their turn (see connect). Default 64. */
  maxAbandonedConnects?: number;
}

/** Conn.connectState: its connect is under way for a request, given up on while pending, or over. */
const SETTLED = 0;
const CONNECTING = 1;
const ABANDONED = 2;

/** sendWithBody's scratch buffer: allocated at this size, grown up to SCRATCH_MAX (larger requests get their own). */
const SCRATCH_MIN = 16 * 1024;
const SCRATCH_MAX = 128 * 1024;

export class Http1Pool {
  readonly host: string;
  readonly port: number;
  readonly bufferBodyUpTo: number;
  private readonly hostHeader: string;
  private readonly maxIdle: number;
  private readonly idleTimeoutMs: number;
  private readonly sweepIntervalMs: number;
  private readonly idle: Conn[] = [];
  private readonly inflight = new Set<Exchange>();
  private sweepTimer: ReturnType<typeof setInterval> | null = null;
  private idleTimer: ReturnType<typeof setInterval> | null = null;
  private closedPool = false;
  /** Retired: serves what still comes, but keeps no idle socket. */
  private retired = false;
  /** Where sendWithBody composes head + body (grown on demand up to SCRATCH_MAX). */
  private scratch: Buffer | null = null;
  private readonly maxAbandonedConnects: number;
  /** Connects under way that a request still waits on. */
  private connecting = 0;
  /** Connects given up on that are still pending (Bun.connect cannot be cancelled): each holds a descriptor. */
  private abandonedConnects = 0;
  private readonly boundSweep = () => this.sweep();
  private readonly boundReap = () => this.reapIdle(performance.now());

  constructor(opts: Http1PoolOptions) {
    if (BAD_VALUE.test(opts.hostHeader)) throw new Error("invalid Host header value");
    this.host = opts.host;
    this.port = opts.port;
    this.hostHeader = opts.hostHeader;
    this.maxIdle = opts.maxIdle ?? 256;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 15_000;
    this.bufferBodyUpTo = opts.bufferBodyUpTo ?? 1024 * 1024;
    this.sweepIntervalMs = opts.sweepIntervalMs ?? 100;
    this.maxAbandonedConnects = opts.maxAbandonedConnects ?? 64;
  }

  /** Idle sockets currently pooled. */
  get idleCount(): number {
    return this.idle.length;
  }

  /** Requests in flight (head or body still being read). */
  get inflightCount(): number {
    return this.inflight.size;
  }

  request(method: Http1Method, path: string, headers: Record<string, string>, opts: Http1RequestOptions): Promise<Response> {
    const signal = opts.signal;
    if (signal !== undefined && signal.aborted) return Promise.reject(signal.reason);
    if (opts.abandon?.abandoned !== undefined) return Promise.reject(opts.abandon.abandoned);
    if (this.closedPool) return Promise.reject(new Error("upstream connection pool is closed"));
    const body = opts.body ?? null;
    let head: string | Uint8Array | Error;
    let writer: StreamBodyWriter | null = null;
    let bytesBody: Uint8Array | null = null;
    if (body === null) {
      if (opts.contentLength !== undefined && opts.contentLength !== 0) return Promise.reject(new Error("a content length was given without a body"));
      head = buildRequestHead(method, path, this.hostHeader, headers, opts.contentLength);
    } else if (body instanceof Uint8Array) {
      if (opts.contentLength !== undefined && opts.contentLength !== body.byteLength) return Promise.reject(new Error("the content length does not match the body's size"));
      head = buildRequestHead(method, path, this.hostHeader, headers, body.byteLength);
      bytesBody = body;
    } else {
      if (!isValidContentLength(opts.contentLength)) return Promise.reject(new Error("a streamed request body needs its exact length"));
      head = buildRequestHead(method, path, this.hostHeader, headers, opts.contentLength);
      writer = new StreamBodyWriter(body, opts.contentLength, opts.releaseChunks === true);
    }
    if (head instanceof Error) return Promise.reject(head);
    const timeoutMs = opts.timeoutMs;
    const connectTimeoutMs = opts.connectTimeoutMs ?? Infinity;
    const started = performance.now();
    // (withResolvers, not an executor: a closure over this function's scope was two more cells per request)
    const { promise, resolve, reject } = Promise.withResolvers<Response>();
    const req = new Exchange(this, method === "HEAD", head, timeoutMs, connectTimeoutMs, signal, started, resolve, reject);
    req.writer = writer;
    req.requestBody = bytesBody;
    req.abandon = opts.abandon;
    req.onBodyEnd = opts.onBodyEnd;
    req.holdUnknownLength = opts.holdUnknownLength === true;
    if (opts.noResend === true) req.retried = true; // (as if already resent once: the stale-socket resend is skipped)
    this.inflight.add(req);
    if (this.sweepTimer === null) {
      this.sweepTimer = setInterval(this.boundSweep, this.sweepIntervalMs);
      this.sweepTimer.unref();
    }
    this.acquire(req);
    return promise;
  }

  /** Close every socket (idle and in use; in-flight requests reject/error), stop the timers. */
  close(): void {
    this.closedPool = true;
    const err = new Error("upstream connection pool closed");
    for (const req of this.inflight) this.fail(req, err);
    this.retire();
    this.stopSweep();
  }

  /**
   * Retire the pool gracefully (a reload replaced it): idle sockets close now; requests in flight
   * finish normally, and so does any request still made on it, but no socket is pooled again. The
   * timers stop by themselves once nothing is in flight.
   */
  retire(): void {
    this.retired = true;
    while (this.idle.length > 0) this.idle[this.idle.length - 1].destroy();
    if (this.idleTimer !== null) {
      clearInterval(this.idleTimer);
      this.idleTimer = null;
    }
  }

  // ---- connection management -------------------------------------------------------------

  private acquire(req: Exchange): void {
    // A streamed body is read once: on a pooled socket the upstream had already closed (its idle
    // timeout racing our reuse), the first chunks are gone by the time the close shows, so the
    // request can be neither retried nor completed (a valid upload answered 503). It gets a fresh
    // connection; the socket goes to the pool after it, as any other.
    // A request that may not be resent (noResend, marked `retried` from the start) gets a fresh
    // connection too: a pooled socket closing under it would leave its outcome unknown.
    if (req.writer !== null || req.retried) {
      this.connect(req);
      return;
    }
    const idle = this.idle;
    while (idle.length > 0) {
      const conn = idle.pop()!;
      conn.idle = false;
      if (conn.closed) continue;
      if (req.started - conn.idleSince > this.idleTimeoutMs) {
        conn.destroy();
        continue;
      }
      conn.reused = true;
      conn.req = req;
      req.conn = conn;
      conn.socket!.ref();
      this.send(conn, req);
      return;
    }
    this.connect(req);
  }

  private connect(req: Exchange): void {
    // A connect given up on stays pending until the kernel gives up on its SYN (~2 minutes toward a
    // black-holed endpoint), holding a descriptor: at requests/s × attempts × 127 s, a dead endpoint
    // without a breaker ran the process out of descriptors. Past maxAbandonedConnects of them, one
    // connect at a time probes the endpoint (the first to open resumes the others); the rest fail
    // at once, as that probe would, with the same error a connect timeout gives.
    if (this.abandonedConnects >= this.maxAbandonedConnects && this.connecting > 0) {
      this.fail(req, new UpstreamConnectTimeoutError(`upstream ${this.host}:${this.port} is not accepting connections (${this.abandonedConnects} earlier connects still pending)`));
      return;
    }
    const conn = new Conn(this);
    conn.connectState = CONNECTING;
    this.connecting++;
    conn.req = req;
    req.conn = conn;
    req.connectStarted = performance.now();
    try {
      const settled = () => this.connectSettled(conn);
      Bun.connect<Conn>({ hostname: this.host, port: this.port, data: conn, socket: handlers }).then(settled, settled);
    } catch (err) {
      this.onConnectError(conn, err as Error);
    }
  }

  /** Write the request head (called on open for fresh sockets, at once for pooled ones). */
  send(conn: Conn, req: Exchange): void {
    const socket = conn.socket!;
    const head = req.requestHead;
    if (req.requestBody !== null) return this.sendWithBody(conn, req, head, req.requestBody);
    const n = socket.write(head);
    if (n < 0) {
      // The pooled socket was already closed by the peer.
      this.onClose(conn, undefined);
      return;
    }
    // Partial write (full socket buffer): keep the unwritten tail for `drain`.
    if (typeof head !== "string") {
      if (n < head.byteLength) req.pending = head.subarray(n);
    } else if (n !== head.length || n !== Buffer.byteLength(head)) {
      const bytes = Buffer.from(head);
      if (n < bytes.length) req.pending = bytes.subarray(n);
    }
    if (req.writer !== null) req.writer.start(this, req);
  }

  /**
   * Head and bytes body in one write (one syscall for a small PUT or an XML body), composed in a
   * scratch buffer the pool reuses: a fresh Buffer per request (allocUnsafe) was 4.7 % of a 1 KiB
   * PutObject's CPU samples. socket.write copies what it takes, so only an unwritten tail is copied
   * out (into `pending`).
   */
  private sendWithBody(conn: Conn, req: Exchange, head: string | Uint8Array, body: Uint8Array): void {
    const headBytes = typeof head === "string" ? Buffer.byteLength(head) : head.byteLength;
    const total = headBytes + body.byteLength;
    let out: Buffer;
    if (total <= SCRATCH_MAX) {
      if (this.scratch === null || this.scratch.byteLength < total) this.scratch = Buffer.allocUnsafe(Math.max(total, SCRATCH_MIN));
      out = this.scratch;
    } else {
      // A large body (a browser form's 8 MiB part) is not copied: the head goes first, then the
      // body's own bytes; what the socket does not take waits as a view of it in `pending`.
      const n = conn.socket!.write(head);
      if (n < 0) {
        this.onClose(conn, undefined);
        return;
      }
      if (n === headBytes) {
        const m = conn.socket!.write(body);
        if (m < 0) {
          this.onClose(conn, undefined);
          return;
        }
        if (m < body.byteLength) req.pending = body.subarray(m);
        return;
      }
      // the head only partly written (rare): the rest of it and the body, in one buffer
      const rest = (typeof head === "string" ? Buffer.from(head) : head).subarray(n);
      out = Buffer.allocUnsafe(rest.byteLength + body.byteLength);
      out.set(rest, 0);
      out.set(body, rest.byteLength);
      req.pending = out;
      return;
    }
    if (typeof head === "string") out.write(head, 0);
    else out.set(head, 0);
    out.set(body, headBytes);
    // (offset and length, not a subarray: no view of the scratch buffer per request)
    const n = conn.socket!.write(out, 0, total);
    if (n < 0) {
      // The pooled socket was already closed by the peer.
      this.onClose(conn, undefined);
      return;
    }
    if (n < total) req.pending = out === this.scratch ? Buffer.from(out.subarray(n, total)) : out.subarray(n, total);
  }

  private release(conn: Conn): void {
    conn.req = null;
    if (this.retired || this.idle.length >= this.maxIdle || conn.closed) {
      conn.destroy();
      return;
    }
    conn.socket!.unref();
    conn.idle = true;
    conn.idleSince = performance.now();
    this.idle.push(conn);
    if (this.idleTimer === null) {
      this.idleTimer = setInterval(this.boundReap, Math.max(50, Math.min(this.idleTimeoutMs / 2, 5000)));
      this.idleTimer.unref();
    }
  }

  /** Called by Conn.destroy for pooled sockets. */
  removeIdle(conn: Conn): void {
    conn.idle = false;
    const i = this.idle.lastIndexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
  }

  private reapIdle(now: number): void {
    const idle = this.idle;
    // Oldest sockets are at the bottom of the LIFO stack.
    while (idle.length > 0 && now - idle[0].idleSince > this.idleTimeoutMs) idle[0].destroy();
    if (idle.length === 0 && this.idleTimer !== null) {
      clearInterval(this.idleTimer);
      this.idleTimer = null;
    }
  }

  private stopSweep(): void {
    if (this.sweepTimer !== null) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
  }

  private sweep(): void {
    const now = performance.now();
    for (const req of this.inflight) {
      const signal = req.signal;
      if (signal !== undefined && signal.aborted) {
        this.fail(req, signal.reason);
      } else if (req.abandon !== undefined && req.abandon.abandoned !== undefined) {
        this.fail(req, req.abandon.abandoned);
      } else if (req.phase === P_HEAD) {
        const conn = req.conn;
        // Still connecting: the socket appears on `open`. A connect timeout wins over the head
        // timeout when both passed, as the more precise diagnosis.
        const writer = req.writer;
        if (conn !== null && conn.socket === null && now - req.connectStarted > req.connectTimeoutMs) {
          this.fail(req, new UpstreamConnectTimeoutError(`upstream ${this.host}:${this.port} did not accept the connection within ${req.connectTimeoutMs} ms`));
        } else if (writer !== null && writer.started && !writer.complete) {
          // Sending a streamed body: the head timeout starts when it is all sent. A socket that
          // takes nothing for the timeout is a stalled upstream; a slow source is the client's
          // pace, bounded by the front (its idle timeout, the client's abort signal).
          if (req.pending !== null && now - writer.lastProgress > req.timeoutMs) this.fail(req, new UpstreamTimeoutError("upstream stopped reading the request body"));
          else writer.flushBatch(req);
        } else if (now - req.headFrom > req.timeoutMs) {
          this.fail(req, new UpstreamTimeoutError("upstream did not send response headers in time"));
        }
      } else if (req.progressed || req.paused) {
        req.progressed = false;
        req.lastProgress = now;
        if (now > req.holdUntil) this.fail(req, new UpstreamTimeoutError("the upstream sent the object too slowly"));
      } else if (now - req.lastProgress > req.timeoutMs) {
        this.fail(req, new UpstreamTimeoutError("upstream stalled mid-body"));
      } else if (now > req.holdUntil) {
        this.fail(req, new UpstreamTimeoutError("the upstream sent the object too slowly"));
      }
    }
    if (this.inflight.size === 0) this.stopSweep();
  }

  // ---- request completion -----------------------------------------------------------------

  /** Abandon a request: destroy its socket, reject the promise or error the body stream. */
  fail(req: Exchange, err: unknown): void {
    if (req.phase === P_DONE) return;
    req.phase = P_DONE;
    this.inflight.delete(req);
    const conn = req.conn;
    req.conn = null;
    req.paused = false;
    if (conn !== null) {
      // A connect still pending stays pending (Bun.connect cannot be cancelled): `open` finds the
      // Conn closed and terminates the socket, or the kernel gives up on the SYN.
      if (conn.connectState === CONNECTING) {
        conn.connectState = ABANDONED;
        this.connecting--;
        this.abandonedConnects++;
      }
      conn.req = null;
      conn.destroy();
    }
    req.writer?.stop(err);
    req.deliverError(err);
  }

  /** The body is complete: pool or close the socket. */
  finish(req: Exchange, leftover: boolean): void {
    req.phase = P_DONE;
    if (req.streamed && req.onBodyEnd !== undefined) req.onBodyEnd(true);
    this.inflight.delete(req);
    const conn = req.conn!;
    req.conn = null;
    if (req.paused) {
      req.paused = false;
      conn.socket?.resume();
    }
    // A request tail still unwritten (the server answered early) would corrupt the next request.
    const writer = req.writer;
    if (req.head!.keepAlive && !leftover && req.pending === null && (writer === null || writer.complete)) this.release(conn);
    else {
      conn.req = null;
      conn.destroy();
    }
    // Answered before the body was all sent: stop sending (the upstream has refused it). Only
    // then: an Error (with its stack trace) per finished upload cost ~5 µs for nothing.
    if (writer !== null && !writer.complete) writer.stop(new Error("upstream answered before the request body was sent"));
  }

  // ---- socket events ----------------------------------------------------------------------

  /** A connect ended (opened or failed): it no longer counts as under way or abandoned. */
  private connectSettled(conn: Conn): void {
    if (conn.connectState === CONNECTING) this.connecting--;
    else if (conn.connectState === ABANDONED) this.abandonedConnects--;
    conn.connectState = SETTLED;
  }

  onConnectError(conn: Conn, err: Error): void {
    this.connectSettled(conn);
    conn.closed = true;
    const req = conn.req;
    conn.req = null;
    if (req === null || req.conn !== conn) return;
    // Bun.connect reports a socket(2) refused for want of a file descriptor as ECONNREFUSED: the
    // upstream was blamed (502, the breaker counting it) for the proxy's own connection flood.
    const reported = (err as { code?: unknown }).code;
    const code = reported === "ECONNREFUSED" && !descriptorLeft() ? "EMFILE" : reported;
    const detail = typeof code === "string" ? code : "connection failed";
    // (the code kept on the error: the access log's upstream_error and /ready name it, never the message)
    this.fail(req, Object.assign(new Error(`upstream ${this.host}:${this.port} is unreachable (${detail})`), typeof code === "string" ? { code } : undefined));
  }

  onClose(conn: Conn, err: Error | undefined): void {
    const wasClosed = conn.closed;
    conn.closed = true;
    if (conn.idle) this.removeIdle(conn);
    const req = conn.req;
    conn.req = null;
    if (!wasClosed && conn.socket !== null) conn.socket.terminate(); // after `error`, make sure it is gone
    if (req === null || req.conn !== conn || req.phase === P_DONE) return;
    if (req.phase === P_HEAD) {
      if (!req.gotByte && conn.reused && !req.retried && !this.closedPool && (req.writer === null || !req.writer.consumed)) {
        // A stale keep-alive socket: nothing reached the upstream, retry once on a fresh
        // connection (a bytes body is resent with the head; a stream only if nothing was read).
        req.retried = true;
        req.conn = null;
        req.pending = null;
        const signal = req.signal;
        if (signal !== undefined && signal.aborted) {
          this.fail(req, signal.reason);
          return;
        }
        this.connect(req);
        return;
      }
      this.fail(req, new UpstreamProtocolError("upstream closed the connection before sending a complete response head", true));
      return;
    }
    // P_BODY: a clean close ends a close-delimited body; anything else cut the body short.
    if (req.phase === P_BODY && req.head!.framing === "close" && err === undefined) {
      req.phase = P_DONE;
      this.inflight.delete(req);
      req.conn = null;
      // (a whole streamed body, as finish() reports one: it resets the breaker's body-failure streak)
      if (req.streamed && req.onBodyEnd !== undefined) req.onBodyEnd(true);
      req.endOfStream();
      return;
    }
    this.fail(req, new UpstreamProtocolError("upstream closed the connection mid-body", true, true));
  }

  onData(conn: Conn, data: Buffer): void {
    const req = conn.req;
    if (req === null || conn.closed) {
      // Unsolicited bytes on an idle socket: it can no longer be trusted.
      conn.destroy();
      return;
    }
    req.receive(data);
  }
}
