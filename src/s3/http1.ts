/**
 * A small keep-alive HTTP/1.1 client over `Bun.connect`, for plain-http S3-compatible upstreams.
 *
 * Scope: GET and HEAD without a request body, one request at a time per socket (no pipelining).
 * It exists because Bun's fetch() costs ~2x the CPU per small proxied request; https stays on fetch.
 *
 * Design notes
 * - One shared handler object for every socket; per-socket state lives in `socket.data` (a `Conn`),
 *   per-request state in a `Req`. No per-request timers, AbortSignal listeners or closures beyond the
 *   promise executor: timeouts and aborts are checked by one unref'd interval per pool that runs only
 *   while requests are in flight (`sweep`).
 * - Response framing follows RFC 9112 §6.3. Anything we do not understand is an UpstreamProtocolError
 *   and the socket is destroyed; a socket is reused only after a cleanly framed, completely read
 *   response with no trailing bytes.
 * - Bun hands every `data` event a fresh Buffer (verified on Bun 1.4.5: chunks are never overwritten),
 *   so body chunks are enqueued as zero-copy subarrays.
 * - Request headers may carry credentials: they never appear in error messages.
 */
import type { Socket, SocketHandler } from "bun";

export class UpstreamTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UpstreamTimeoutError";
  }
}

/** Malformed response from upstream (or the upstream closed the connection mid-response). */
export class UpstreamProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UpstreamProtocolError";
  }
}

export interface Http1RequestOptions {
  /** Reject with UpstreamTimeoutError when the complete response head has not arrived within this many ms,
   *  and (after the head) error the body when no body bytes arrive for this many ms (stall). */
  timeoutMs: number;
  /** Optional: when it becomes aborted, the request is abandoned (socket destroyed) and the promise rejects
   *  with signal.reason (or the body stream errors with it). Checked before sending and on each sweep tick. */
  signal?: AbortSignal;
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
}

const MAX_HEAD = 64 * 1024;
const MAX_CHUNK_LINE = 4096;
const MAX_TRAILERS = 64 * 1024;
const STREAM_HWM = 64 * 1024;
const CRLFCRLF = Buffer.from("\r\n\r\n");

// Request phases
const P_HEAD = 0; // waiting for (the rest of) the response head
const P_BODY = 1; // head parsed, reading the body
const P_DONE = 2; // finished, failed or abandoned

// Body framing
const M_NONE = 0;
const M_LENGTH = 1;
const M_CHUNKED = 2;
const M_CLOSE = 3;

// Chunked decoder states
const C_SIZE = 0;
const C_EXT = 1;
const C_SIZE_LF = 2;
const C_DATA = 3;
const C_DATA_CR = 4;
const C_DATA_LF = 5;
const C_TRAILER_START = 6;
const C_TRAILER_LINE = 7;
const C_TRAILER_LF = 8;
const C_END_LF = 9;
const C_DONE = 10;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\0\r\n]/;
/** Path: origin-form, no whitespace or control characters. */
const BAD_PATH = /[\0-\x20\x7f]/;
/** In a received head: a CR not followed by LF, an LF not preceded by CR, or NUL. */
const BAD_HEAD_CHARS = /\r(?!\n)|(?<!\r)\n|\0/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([0-9]{3})(?: ([^]*))?$/;
const DIGITS = /^[0-9]+$/;

const MID_BODY = "upstream closed the connection mid-body";

function noop(): void {}

/** Trim optional whitespace (SP / HTAB only, not other Unicode spaces). */
function trimOws(s: string, from: number): string {
  let a = from;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 32 || s.charCodeAt(b - 1) === 9)) b--;
  return s.slice(a, b);
}

/** True when a comma-separated header value contains `token` (case-insensitive). */
function hasToken(value: string, token: string): boolean {
  const parts = value.toLowerCase().split(",");
  for (let i = 0; i < parts.length; i++) if (parts[i].trim() === token) return true;
  return false;
}

const STREAM_STRATEGY: QueuingStrategy<Uint8Array> = { highWaterMark: STREAM_HWM, size: (chunk?: Uint8Array) => chunk!.byteLength };

/** Underlying source of a streamed response body (methods on a prototype: no per-request closures). */
class BodySource {
  constructor(private readonly req: Req) {}
  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.req.ctrl = controller;
  }
  pull(): void {
    const req = this.req;
    if (req.paused && req.phase === P_BODY && req.conn !== null) {
      req.paused = false;
      req.conn.socket?.resume();
    }
  }
  cancel(): void {
    const req = this.req;
    if (req.phase === P_DONE) return;
    req.ctrl = null; // the stream is already cancelled: nothing to error
    req.pool.fail(req, new Error("response body cancelled"));
  }
}

/** One in-flight request. */
class Req {
  conn: Conn | null = null;
  phase = P_HEAD;
  settled = false;
  retried = false;
  gotByte = false;
  progressed = false;
  paused = false;
  lastProgress = 0;
  /** Unwritten tail of the request after a partial write. */
  pending: Buffer | null = null;
  // head accumulation (only when the head spans several data events)
  hbuf: Buffer | null = null;
  hlen = 0;
  scanFrom = 0;
  // response
  status = 0;
  statusText = "";
  headers: Headers | null = null;
  keepAlive = true;
  // body
  mode = M_NONE;
  remaining = 0;
  buf: Buffer | null = null;
  bufOff = 0;
  ctrl: ReadableStreamDefaultController<Uint8Array> | null = null;
  cstate = C_SIZE;
  csize = 0;
  cdigits = 0;
  cline = 0;
  ctrailer = 0;

  constructor(
    readonly pool: Http1Pool,
    readonly isHead: boolean,
    readonly head: string,
    readonly timeoutMs: number,
    readonly signal: AbortSignal | undefined,
    readonly started: number,
    readonly resolve: (r: Response) => void,
    readonly reject: (e: unknown) => void,
  ) {}
}

/** One socket (connecting, in use, or idle). */
class Conn {
  socket: Socket<Conn> | null = null;
  req: Req | null = null;
  closed = false;
  idle = false;
  reused = false;
  idleSince = 0;
  constructor(readonly pool: Http1Pool) {}

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.idle) this.pool.removeIdle(this);
    // terminate() calls the close handler synchronously; `closed` makes it a no-op.
    this.socket?.terminate();
  }
}

const handlers: SocketHandler<Conn, "buffer"> = {
  binaryType: "buffer",
  open(socket) {
    const conn = socket.data;
    conn.socket = socket;
    if (conn.closed || conn.req === null) {
      // abandoned while connecting (timeout, abort, pool closed)
      conn.closed = true;
      socket.terminate();
      return;
    }
    socket.setNoDelay(true);
    conn.pool.send(conn, conn.req);
  },
  data(socket, data) {
    socket.data.pool.onData(socket.data, data);
  },
  drain(socket) {
    const conn = socket.data;
    const req = conn.req;
    if (req === null || req.pending === null || conn.closed) return;
    const n = socket.write(req.pending);
    if (n < 0) return; // closing; the close handler deals with it
    req.pending = n < req.pending.length ? req.pending.subarray(n) : null;
  },
  close(socket, err) {
    socket.data.pool.onClose(socket.data, err);
  },
  error(socket, err) {
    socket.data.pool.onClose(socket.data, err);
  },
  connectError(socket, err) {
    socket.data.pool.onConnectError(socket.data, err);
  },
};

export class Http1Pool {
  private readonly host: string;
  private readonly port: number;
  private readonly hostHeader: string;
  private readonly maxIdle: number;
  private readonly idleTimeoutMs: number;
  private readonly bufferBodyUpTo: number;
  private readonly sweepIntervalMs: number;
  private readonly idle: Conn[] = [];
  private readonly inflight = new Set<Req>();
  private sweepTimer: ReturnType<typeof setInterval> | null = null;
  private idleTimer: ReturnType<typeof setInterval> | null = null;
  private closedPool = false;
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
  }

  /** Idle sockets currently pooled. */
  get idleCount(): number {
    return this.idle.length;
  }

  request(method: "GET" | "HEAD", path: string, headers: Record<string, string>, opts: Http1RequestOptions): Promise<Response> {
    const signal = opts.signal;
    if (signal !== undefined && signal.aborted) return Promise.reject(signal.reason);
    if (this.closedPool) return Promise.reject(new Error("upstream connection pool is closed"));
    if (method !== "GET" && method !== "HEAD") return Promise.reject(new Error("only GET and HEAD are supported"));
    if (path.charCodeAt(0) !== 47 || BAD_PATH.test(path)) return Promise.reject(new Error("invalid request target"));
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.hostHeader}\r\n`;
    for (const name in headers) {
      const value = headers[name];
      if (!TOKEN.test(name)) return Promise.reject(new Error("invalid request header name"));
      if (typeof value !== "string" || BAD_VALUE.test(value)) return Promise.reject(new Error(`invalid value for request header ${name}`));
      // The pool owns Host and the framing headers: no body is ever sent.
      const n = name.length;
      if (n === 4 || n === 14 || n === 17) {
        const lower = name.toLowerCase();
        if (lower === "host" || lower === "content-length" || lower === "transfer-encoding") continue;
      }
      head += `${name}: ${value}\r\n`;
    }
    head += "\r\n";
    const timeoutMs = opts.timeoutMs;
    const started = performance.now();
    return new Promise<Response>((resolve, reject) => {
      const req = new Req(this, method === "HEAD", head, timeoutMs, signal, started, resolve, reject);
      this.inflight.add(req);
      if (this.sweepTimer === null) {
        this.sweepTimer = setInterval(this.boundSweep, this.sweepIntervalMs);
        this.sweepTimer.unref();
      }
      this.acquire(req);
    });
  }

  /** Close every socket (idle and in use; in-flight requests reject/error), stop the timers. */
  close(): void {
    this.closedPool = true;
    const err = new Error("upstream connection pool closed");
    for (const req of this.inflight) this.fail(req, err);
    while (this.idle.length > 0) this.idle[this.idle.length - 1].destroy();
    this.stopSweep();
    if (this.idleTimer !== null) {
      clearInterval(this.idleTimer);
      this.idleTimer = null;
    }
  }

  // ---- connection management -------------------------------------------------------------

  private acquire(req: Req): void {
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

  private connect(req: Req): void {
    const conn = new Conn(this);
    conn.req = req;
    req.conn = conn;
    try {
      Bun.connect<Conn>({ hostname: this.host, port: this.port, data: conn, socket: handlers }).catch(noop);
    } catch (err) {
      this.onConnectError(conn, err as Error);
    }
  }

  /** Write the request head (called on open for fresh sockets, at once for pooled ones). */
  send(conn: Conn, req: Req): void {
    const socket = conn.socket!;
    const head = req.head;
    const n = socket.write(head);
    if (n < 0) {
      // The pooled socket was already closed by the peer.
      this.onClose(conn, undefined);
      return;
    }
    // Partial write (full socket buffer): keep the unwritten tail for `drain`.
    if (n !== head.length || n !== Buffer.byteLength(head)) {
      const bytes = Buffer.from(head);
      if (n < bytes.length) req.pending = bytes.subarray(n);
    }
  }

  private release(conn: Conn): void {
    conn.req = null;
    if (this.closedPool || this.idle.length >= this.maxIdle || conn.closed) {
      conn.destroy();
      return;
    }
    const socket = conn.socket!;
    socket.unref();
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
      } else if (req.phase === P_HEAD) {
        if (now - req.started > req.timeoutMs) this.fail(req, new UpstreamTimeoutError("upstream did not send response headers in time"));
      } else if (req.progressed || req.paused) {
        req.progressed = false;
        req.lastProgress = now;
      } else if (now - req.lastProgress > req.timeoutMs) {
        this.fail(req, new UpstreamTimeoutError("upstream stalled mid-body"));
      }
    }
    if (this.inflight.size === 0) this.stopSweep();
  }

  // ---- request completion -----------------------------------------------------------------

  /** Abandon a request: destroy its socket, reject the promise or error the body stream. */
  fail(req: Req, err: unknown): void {
    if (req.phase === P_DONE) return;
    req.phase = P_DONE;
    this.inflight.delete(req);
    const conn = req.conn;
    req.conn = null;
    req.paused = false;
    if (conn !== null) {
      conn.req = null;
      conn.destroy();
    }
    if (!req.settled) {
      req.settled = true;
      req.reject(err);
    } else if (req.ctrl !== null) {
      const ctrl = req.ctrl;
      req.ctrl = null;
      try {
        ctrl.error(err);
      } catch {
        // stream already closed or errored
      }
    }
  }

  /** The body is complete: pool or close the socket. */
  private finish(req: Req, leftover: boolean): void {
    req.phase = P_DONE;
    this.inflight.delete(req);
    const conn = req.conn!;
    req.conn = null;
    if (req.paused) {
      req.paused = false;
      conn.socket?.resume();
    }
    // A request tail still unwritten (the server answered early) would corrupt the next request.
    if (req.keepAlive && !leftover && req.pending === null) this.release(conn);
    else {
      conn.req = null;
      conn.destroy();
    }
  }

  private settle(req: Req, body: Buffer | ReadableStream<Uint8Array> | null): void {
    let res: Response;
    try {
      res = new Response(body, { status: req.status, statusText: req.statusText, headers: req.headers! });
    } catch {
      this.fail(req, new UpstreamProtocolError("invalid upstream response status"));
      return;
    }
    req.settled = true;
    req.resolve(res);
  }

  // ---- socket events ----------------------------------------------------------------------

  onConnectError(conn: Conn, err: Error): void {
    conn.closed = true;
    const req = conn.req;
    conn.req = null;
    if (req === null || req.conn !== conn) return;
    const code = (err as { code?: unknown }).code;
    const detail = typeof code === "string" ? code : "connection failed";
    this.fail(req, new Error(`upstream ${this.host}:${this.port} is unreachable (${detail})`));
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
      if (!req.gotByte && conn.reused && !req.retried && !this.closedPool) {
        // A stale keep-alive socket: GET/HEAD are idempotent, retry once on a fresh connection.
        req.retried = true;
        req.conn = null;
        req.pending = null;
        const signal = req.signal;
        if (signal !== undefined && signal.aborted) {
          req.phase = P_DONE;
          this.inflight.delete(req);
          req.settled = true;
          req.reject(signal.reason);
          return;
        }
        this.connect(req);
        return;
      }
      this.fail(req, new UpstreamProtocolError("upstream closed the connection before sending a complete response head"));
      return;
    }
    // P_BODY
    if (req.mode === M_CLOSE && err === undefined) {
      req.phase = P_DONE;
      this.inflight.delete(req);
      req.conn = null;
      const ctrl = req.ctrl;
      req.ctrl = null;
      if (ctrl !== null) {
        try {
          ctrl.close();
        } catch {
          // already cancelled
        }
      }
      return;
    }
    this.fail(req, new UpstreamProtocolError(MID_BODY));
  }

  onData(conn: Conn, data: Buffer): void {
    const req = conn.req;
    if (req === null || conn.closed) {
      // Unsolicited bytes on an idle socket: it can no longer be trusted.
      conn.destroy();
      return;
    }
    req.gotByte = true;
    req.progressed = true;
    if (req.phase === P_HEAD) {
      const rest = this.feedHead(req, data);
      if (rest === null) return;
      this.startBody(req, rest);
    } else if (req.phase === P_BODY) {
      this.feedBody(req, data);
    }
  }

  /** Accumulate head bytes; returns the bytes after the final head, or null when waiting (or failed). */
  private feedHead(req: Req, data: Buffer): Buffer | null {
    let buf: Buffer;
    if (req.hbuf === null) {
      buf = data;
    } else {
      const need = req.hlen + data.length;
      if (need > req.hbuf.length) {
        const grown = Buffer.allocUnsafe(Math.max(need, req.hbuf.length * 2));
        req.hbuf.copy(grown, 0, 0, req.hlen);
        req.hbuf = grown;
      }
      data.copy(req.hbuf, req.hlen);
      req.hlen = need;
      buf = req.hbuf.subarray(0, need);
    }
    for (;;) {
      const idx = buf.indexOf(CRLFCRLF, req.scanFrom);
      if (idx < 0) {
        if (buf.length > MAX_HEAD) {
          this.fail(req, new UpstreamProtocolError("upstream response head too large"));
          return null;
        }
        if (req.hbuf === null) {
          const hb = Buffer.allocUnsafe(Math.max(1024, buf.length * 2));
          buf.copy(hb, 0);
          req.hbuf = hb;
          req.hlen = buf.length;
        } else if (buf.byteOffset !== req.hbuf.byteOffset || buf.buffer !== req.hbuf.buffer) {
          // buf is the tail after an interim response: keep only that
          buf.copy(req.hbuf, 0);
          req.hlen = buf.length;
        }
        req.scanFrom = Math.max(0, buf.length - 3);
        return null;
      }
      const end = idx + 4;
      if (end > MAX_HEAD) {
        this.fail(req, new UpstreamProtocolError("upstream response head too large"));
        return null;
      }
      if (!this.parseHead(req, buf, idx)) return null;
      const rest = buf.subarray(end);
      req.scanFrom = 0;
      if (req.status >= 100 && req.status < 200) {
        // Interim response (101 was rejected by parseHead): discard, the final head follows.
        if (rest.length === 0) {
          req.hbuf = null;
          req.hlen = 0;
          return null;
        }
        buf = rest;
        continue;
      }
      req.hbuf = null;
      return rest;
    }
  }

  /** Parse status line and headers of buf[0, idx). Returns false (after failing the request) on error. */
  private parseHead(req: Req, buf: Buffer, idx: number): boolean {
    const text = buf.toString("latin1", 0, idx);
    if (BAD_HEAD_CHARS.test(text)) return this.protocolError(req, "invalid characters in upstream response head");
    const lines = text.split("\r\n");
    const m = STATUS_LINE.exec(lines[0]);
    if (m === null) return this.protocolError(req, "malformed upstream status line");
    const status = +m[2];
    if (status < 100 || status === 101) return this.protocolError(req, `unexpected upstream status ${status}`);
    const http10 = m[1] === "0";
    const headers = new Headers();
    let contentLength = -1;
    let te: string | null = null;
    let connection: string | null = null;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      const c0 = line.charCodeAt(0);
      if (c0 === 32 || c0 === 9) return this.protocolError(req, "obsolete line folding in upstream response");
      const colon = line.indexOf(":");
      if (colon <= 0) return this.protocolError(req, "malformed upstream response header");
      const name = line.slice(0, colon);
      if (!TOKEN.test(name)) return this.protocolError(req, "malformed upstream response header");
      const value = trimOws(line, colon + 1);
      const n = name.length;
      if (n === 14 || n === 17 || n === 10) {
        const lower = name.toLowerCase();
        if (lower === "content-length") {
          const parts = value.split(",");
          for (let j = 0; j < parts.length; j++) {
            const p = trimOws(parts[j], 0);
            if (!DIGITS.test(p) || p.length > 15) return this.protocolError(req, "invalid upstream Content-Length");
            const v = +p;
            if (contentLength !== -1 && contentLength !== v) return this.protocolError(req, "conflicting upstream Content-Length values");
            contentLength = v;
          }
        } else if (lower === "transfer-encoding") {
          te = te === null ? value : `${te}, ${value}`;
        } else if (lower === "connection") {
          connection = connection === null ? value : `${connection}, ${value}`;
        }
      }
      try {
        headers.append(name, value);
      } catch {
        return this.protocolError(req, "malformed upstream response header");
      }
    }
    req.status = status;
    if (status < 200) return true; // interim response: the caller skips it
    req.statusText = m[3] ?? "";
    req.headers = headers;
    if (connection !== null) {
      if (hasToken(connection, "close")) req.keepAlive = false;
      else if (http10 && !hasToken(connection, "keep-alive")) req.keepAlive = false;
    } else if (http10) {
      req.keepAlive = false;
    }
    if (req.isHead || status === 204 || status === 304) {
      req.mode = M_NONE;
    } else if (status === 205) {
      // 205 has no content; reuse the socket only when that is explicit.
      req.mode = M_NONE;
      if (contentLength !== 0 || te !== null) req.keepAlive = false;
    } else if (te !== null) {
      const codings = te.toLowerCase().split(",");
      if (codings[codings.length - 1].trim() === "chunked") {
        req.mode = M_CHUNKED;
        // TE with CL (request smuggling shape) or TE on HTTP/1.0: decode, but never reuse.
        if (contentLength !== -1 || http10) req.keepAlive = false;
      } else {
        req.mode = M_CLOSE;
        req.keepAlive = false;
      }
    } else if (contentLength !== -1) {
      req.mode = M_LENGTH;
      req.remaining = contentLength;
    } else {
      req.mode = M_CLOSE;
      req.keepAlive = false;
    }
    return true;
  }

  private protocolError(req: Req, message: string): false {
    this.fail(req, new UpstreamProtocolError(message));
    return false;
  }

  /** The head is parsed; `rest` holds whatever followed it in the same read. */
  private startBody(req: Req, rest: Buffer): void {
    const mode = req.mode;
    if (mode === M_NONE) {
      this.settle(req, null);
      if (req.phase !== P_DONE) this.finish(req, rest.length > 0);
      return;
    }
    req.phase = P_BODY;
    if (mode === M_LENGTH && !req.isHead && req.remaining <= this.bufferBodyUpTo) {
      const cl = req.remaining;
      if (rest.length >= cl) {
        // Whole body in this read: zero-copy view (Bun does not reuse data buffers).
        this.settle(req, rest.length === cl ? rest : rest.subarray(0, cl));
        if (req.phase !== P_DONE) this.finish(req, rest.length > cl);
        return;
      }
      const buf = Buffer.allocUnsafe(cl);
      rest.copy(buf, 0);
      req.buf = buf;
      req.bufOff = rest.length;
      req.remaining = cl - rest.length;
      return;
    }
    // Streamed body.
    const stream = new ReadableStream<Uint8Array>(new BodySource(req), STREAM_STRATEGY);
    this.settle(req, stream);
    if (req.phase === P_DONE) return;
    if (mode === M_LENGTH && req.remaining === 0) {
      this.closeStream(req);
      this.finish(req, rest.length > 0);
      return;
    }
    if (rest.length > 0) this.feedBody(req, rest);
  }

  private feedBody(req: Req, data: Buffer): void {
    const mode = req.mode;
    if (mode === M_LENGTH) {
      const n = data.length;
      const take = n <= req.remaining ? n : req.remaining;
      req.remaining -= take;
      if (req.buf !== null) {
        data.copy(req.buf, req.bufOff, 0, take);
        req.bufOff += take;
        if (req.remaining === 0) {
          const body = req.buf;
          req.buf = null;
          this.settle(req, body);
          if (req.phase !== P_DONE) this.finish(req, n > take);
        }
        return;
      }
      if (take > 0) this.enqueue(req, take === n ? data : data.subarray(0, take));
      if (req.remaining === 0 && req.phase === P_BODY) {
        this.closeStream(req);
        this.finish(req, n > take);
      }
    } else if (mode === M_CHUNKED) {
      this.feedChunked(req, data);
    } else {
      this.enqueue(req, data);
    }
  }

  private enqueue(req: Req, chunk: Buffer): void {
    const ctrl = req.ctrl;
    if (ctrl === null) return;
    ctrl.enqueue(chunk);
    const ds = ctrl.desiredSize;
    if (ds !== null && ds <= 0 && !req.paused && req.phase === P_BODY && req.conn !== null) {
      req.paused = true;
      req.conn.socket?.pause();
    }
  }

  private closeStream(req: Req): void {
    const ctrl = req.ctrl;
    req.ctrl = null;
    if (ctrl === null) return;
    try {
      ctrl.close();
    } catch {
      // cancelled meanwhile
    }
  }

  private feedChunked(req: Req, data: Buffer): void {
    const n = data.length;
    let i = 0;
    while (i < n) {
      switch (req.cstate) {
        case C_DATA: {
          const take = Math.min(req.csize, n - i);
          this.enqueue(req, data.subarray(i, i + take));
          if (req.phase !== P_BODY) return; // failed/cancelled during enqueue
          i += take;
          req.csize -= take;
          if (req.csize === 0) req.cstate = C_DATA_CR;
          break;
        }
        case C_SIZE: {
          const c = data[i++];
          const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (d >= 0) {
            if (++req.cdigits > 12) return void this.protocolError(req, "invalid chunk size from upstream");
            req.csize = req.csize * 16 + d;
            req.cline++;
          } else if (req.cdigits === 0) {
            return void this.protocolError(req, "invalid chunk size from upstream");
          } else if (c === 13) {
            req.cstate = C_SIZE_LF;
          } else if (c === 59 || c === 32 || c === 9) {
            req.cstate = C_EXT;
          } else {
            return void this.protocolError(req, "invalid chunk size from upstream");
          }
          break;
        }
        case C_EXT: {
          const c = data[i++];
          if (c === 13) req.cstate = C_SIZE_LF;
          else if (c === 10 || c === 0 || ++req.cline > MAX_CHUNK_LINE) return void this.protocolError(req, "invalid chunk extension from upstream");
          break;
        }
        case C_SIZE_LF: {
          if (data[i++] !== 10) return void this.protocolError(req, "invalid chunk size line from upstream");
          req.cdigits = 0;
          req.cline = 0;
          if (req.csize === 0) req.cstate = C_TRAILER_START;
          else req.cstate = C_DATA;
          break;
        }
        case C_DATA_CR: {
          if (data[i++] !== 13) return void this.protocolError(req, "missing CRLF after chunk data from upstream");
          req.cstate = C_DATA_LF;
          break;
        }
        case C_DATA_LF: {
          if (data[i++] !== 10) return void this.protocolError(req, "missing CRLF after chunk data from upstream");
          req.cstate = C_SIZE;
          break;
        }
        case C_TRAILER_START: {
          const c = data[i++];
          if (c === 13) req.cstate = C_END_LF;
          else if (c === 10 || c === 0 || c === 32 || c === 9) return void this.protocolError(req, "malformed chunked trailer from upstream");
          else req.cstate = C_TRAILER_LINE;
          if (++req.ctrailer > MAX_TRAILERS) return void this.protocolError(req, "upstream chunked trailers too large");
          break;
        }
        case C_TRAILER_LINE: {
          const c = data[i++];
          if (c === 13) req.cstate = C_TRAILER_LF;
          else if (c === 10 || c === 0) return void this.protocolError(req, "malformed chunked trailer from upstream");
          if (++req.ctrailer > MAX_TRAILERS) return void this.protocolError(req, "upstream chunked trailers too large");
          break;
        }
        case C_TRAILER_LF: {
          if (data[i++] !== 10) return void this.protocolError(req, "malformed chunked trailer from upstream");
          req.cstate = C_TRAILER_START;
          break;
        }
        case C_END_LF: {
          if (data[i++] !== 10) return void this.protocolError(req, "malformed chunked trailer from upstream");
          req.cstate = C_DONE;
          this.closeStream(req);
          this.finish(req, i < n);
          return;
        }
        default:
          return;
      }
    }
  }
}

const shared = new Map<string, Http1Pool>();

/**
 * Shared pools keyed by endpoint, Host and body-buffering limit (a reload that changes
 * server.buffer_threshold_bytes gets a pool of its own; the old one's idle sockets expire).
 * Other options: the first caller's win.
 */
export function sharedPool(opts: Http1PoolOptions): Http1Pool {
  const key = `${opts.host}:${opts.port}|${opts.hostHeader}|${opts.bufferBodyUpTo ?? ""}`;
  let pool = shared.get(key);
  if (pool === undefined) {
    pool = new Http1Pool(opts);
    shared.set(key, pool);
  }
  return pool;
}

export function closeSharedPools(): void {
  for (const pool of shared.values()) pool.close();
  shared.clear();
}
