/**
 * Structured logs: JSON lines (or `key=value` text) on stdout.
 *
 * Lines are queued and written once per event-loop turn, so a busy proxy makes one write(2)
 * per turn instead of one per request, without ever blocking (see createLogger). `flush()` hands
 * what is queued to the writer at once (used at exit).
 *
 * Secrets never get here by construction: callers pass only paths (never query strings), ids and
 * numbers; `scrub()` is a last line of defence that redacts fields whose NAME looks secret.
 */
import { writeSync } from "node:fs";

export type Level = "trace" | "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50 };
const SECRET_NAME = /secret|password|token|authorization|api_key|access_key|credential/i;

export type Fields = Record<string, unknown>;

export interface Logger {
  readonly level: Level;
  /** A reload's logging section: level and format apply from the next line on. */
  reconfigure?(o: { level: Level; format: "json" | "text" }): void;
  enabled(level: Level): boolean;
  /** `always`: written whatever the level (the start's `listening` line when it tells a port `port: 0` chose, which nothing else logs; a reload's success line). */
  log(level: Level, msg: string, fields?: Fields, always?: boolean): void;
  trace(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** The per-request access line (info, msg "request"); same output as `info("request", fields)`, built without the generic path. */
  access(rec: AccessRecord): void;
  flush(): void;
}

/** The access log fields, in their output order; the optional ones are omitted when undefined. */
export interface AccessRecord {
  request_id: string;
  method: string;
  path: string;
  bucket: string;
  status: number;
  bytes: number;
  /** Arrival to the end of the body (sent, failed or abandoned). */
  duration_ms: number;
  /** Arrival to the response head. */
  ttfb_ms: number;
  upstream_ms: number;
  client_ip: string;
  /** "s3" or "control" (omitted for the plain front). */
  front?: string;
  /** The S3 front's operation (GetObject, PutObject, UploadPart, CompleteMultipartUpload, CopyObject...). */
  operation?: string;
  /** CopyObject / UploadPartCopy: the source as the client named it ("bucket/key", decoded). */
  copy_source?: string;
  /** Request body bytes taken from the client and passed on (the payload, aws-chunked framing not counted); omitted for a request without a body. */
  bytes_in?: number;
  /** The authenticated identity (JWT sub, S3 identity), when there is one. */
  subject?: string;
  /** The STS session (its id) a request was signed with, or that an AssumeRoleWithWebIdentity issued. */
  session?: string;
  /** The S3 front: true for a request signed in its query string (a presigned URL); omitted otherwise. */
  presigned?: true;
  cache?: string;
  error?: string;
  /** Why a token or a claim rule was refused (InvalidToken, Forbidden): the client-safe detail, never the token or a claim's value. */
  reason?: string;
  s3_error?: string;
  /** The upstream's x-amz-request-id of a refusal (what AWS support and CloudTrail know the request by). */
  s3_request_id?: string;
  /** The S3 front: the access key id a request refused before its signature verified named (which client is misconfigured); unverified. */
  access_key_id?: string;
  /** Why no answer came from the upstream: the failure's code (ECONNREFUSED, DEPTH_ZERO_SELF_SIGNED_CERT, EPROTO, ...), never its message. */
  upstream_error?: string;
  attempts?: number;
  /** The replica that answered (buckets with s3.replicas). */
  replica?: string;
  /** Tracing on: the request's trace and server span (W3C hex ids). */
  trace_id?: string;
  span_id?: string;
}
const ACCESS_KEYS = ["request_id", "method", "path", "bucket", "status", "bytes", "duration_ms", "ttfb_ms", "upstream_ms", "client_ip", "front", "operation", "copy_source", "bytes_in", "subject", "session", "presigned", "cache", "error", "reason", "s3_error", "s3_request_id", "access_key_id", "upstream_error", "attempts", "replica", "trace_id", "span_id"];

// U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR: JSON.stringify leaves them raw (valid
// JSON), but a reader that splits on Unicode line breaks (JavaScript before ES2019, some log
// shippers, editors, str.splitlines()) cuts the record there; str.splitlines() also cuts at U+0085
// (NEL). A client controls a path or a key, so every JSON line written here (and the audit
// trail's) carries them escaped: \u2028, \u2029, \u0085 (and the rest of C1, below), and, as
// the text format does, DEL and the bidirectional controls (U+202A-202E, U+2066-2069), which make
// a line read differently from what it holds (a key can show another key's name in a terminal).
const UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const UNSAFE_G = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const escapeUnsafe = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/**
 * `json` (JSON text) with U+2028/U+2029, DEL, the C1 controls (U+0080-U+009F) and the bidi controls escaped; the same
 * string when it has none (the usual case). U+0085 (NEL) is a line break to str.splitlines() and
 * others, and the rest of C1 (U+009B is a terminal's CSI) has no business raw in a log a person
 * may `tail`. One regex test: ~90 ns on a 375-character access line (Bun 1.4.5).
 */
export function escapeLineSeparators(json: string): string {
  return UNSAFE.test(json) ? json.replace(UNSAFE_G, escapeUnsafe) : json;
}

// Characters JSON.stringify escapes (quote, backslash, C0 controls, lone surrogates), and those it
// does not that a log line must not carry raw (above): a plain string (the usual path, key, id)
// takes one regex test.
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]/;
const jstr = (s: string): string => (NEEDS_ESCAPE.test(s) ? escapeLineSeparators(JSON.stringify(s)) : `"${s}"`);
const jnum = (n: number): string => (Number.isFinite(n) ? `${n}` : "null");

let isoMs = -1;
let isoText = "";
/** `new Date().toISOString()`, computed at most once per millisecond. */
function isoNow(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

function scrub(fields: Fields): Fields {
  for (const k in fields) {
    // (an access key id is no secret: S3's own SignatureDoesNotMatch body shows it; the access line's is the key a refused request named)
    if (SECRET_NAME.test(k) && k !== "token_source" && k !== "access_key_id") fields[k] = "[REDACTED]";
  }
  return fields;
}

// What a text line must not carry raw: JSON.stringify escapes C0 controls (ESC included), quotes,
// backslashes and lone surrogates; DEL, C1 controls (U+009B is a terminal's CSI) and the bidi
// and line-separator characters are escaped here too, so a client's path, key or token claim can
// neither forge a line nor drive the terminal of whoever reads the log.
const TEXT_QUOTE = /[\s"=\\\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]/u; // (u: lone surrogates only)
const TEXT_EXTRA = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function textValue(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  if (!TEXT_QUOTE.test(s)) return s;
  return JSON.stringify(s).replace(TEXT_EXTRA, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** What log lines may wait in memory while the log reader does not take them (beyond: dropped, counted). */
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

/**
 * Lines for `fd`, queued and written once per event-loop turn; `droppedLine` is the line telling how
 * many were dropped, written once the reader takes data again.
 */
function lineWriter(fd: number, droppedLine: (count: number) => string): { enqueue(line: string): void; flush(): void } {
  let queue: string[] = [];
  let queued = 0;
  let scheduled = false;
  // stdout (and stderr) are written through Bun's FileSink, which never blocks the event loop: a
  // log reader that stops reading (a stalled shipper, a full pipe) must not stop the proxy (with a
  // blocking write(2) it froze every request and /health). While a write is pending, lines wait
  // here, at most MAX_QUEUED_BYTES; beyond, they are dropped and counted, and the count is logged
  // once the reader takes data again.
  const sink = fd === 1 ? Bun.stdout.writer() : fd === 2 ? Bun.stderr.writer() : undefined;
  let pending = false;
  let dropped = 0;

  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      setImmediate(turn);
    }
  };

  /** What is queued, as one string (the queue emptied). */
  const take = (): string => {
    const out = queue.join("");
    queue = [];
    queued = 0;
    return out;
  };

  /** Hands `out` to the writer; while the reader has not taken it, further lines wait (resume). */
  const put = (out: string) => {
    if (sink === undefined) {
      try {
        writeSync(fd, out);
      } catch {
        // stdout closed (EPIPE): nothing sensible to do; never crash the proxy over a log line.
      }
      return;
    }
    try {
      sink.write(out);
      const flushed = sink.flush();
      if (flushed instanceof Promise) {
        pending = true;
        flushed.then(resume, resume);
      }
    } catch {
      // as above
    }
  };

  /** The once-per-turn write. */
  const turn = () => {
    scheduled = false;
    if (!pending && queue.length > 0) put(take());
  };

  const resume = () => {
    pending = false;
    if (dropped > 0) {
      queue.unshift(droppedLine(dropped));
      dropped = 0;
    }
    if (queue.length > 0) schedule();
  };

  const enqueue = (line: string) => {
    if (queued + line.length > MAX_QUEUED_BYTES) {
      dropped++;
      return;
    }
    queue.push(line);
    queued += line.length;
    schedule();
  };

  /** Hands what is queued to the writer now (at exit), unless the reader is known to be stalled (a blocking write would hold the exit). */
  const flush = () => {
    scheduled = false;
    if (queue.length === 0) return;
    const out = take();
    if (!pending) put(out);
  };

  return { enqueue, flush };
}

export function createLogger(opts: { level: Level; format: "json" | "text"; fd?: number; base?: Fields }): Logger {
  let level = opts.level;
  let min = RANK[level];
  let fmt = opts.format;
  const base = opts.base ?? {};
  const { enqueue, flush } = lineWriter(opts.fd ?? 1, (count) => format("warn", "log lines dropped", { count, reason: "the log reader did not keep up" }));

  const format = (level: Level, msg: string, fields: Fields | undefined): string => {
    const rec: Fields = { ts: isoNow(), level, msg, ...base, ...(fields ? scrub(fields) : undefined) };
    if (fmt === "json") return `${escapeLineSeparators(JSON.stringify(rec))}\n`;
    let line = `${rec.ts} ${level.toUpperCase()} ${msg}`;
    for (const k in rec) if (k !== "ts" && k !== "level" && k !== "msg" && rec[k] !== undefined) line += ` ${k}=${textValue(rec[k])}`;
    return `${line}\n`;
  };

  const log = (level: Level, msg: string, fields?: Fields, always?: boolean) => {
    if (RANK[level] < min && always !== true) return;
    enqueue(format(level, msg, fields));
  };

  // The JSON access line: base fields serialized once. A base that shares a name with an access
  // field (never the case in practice) takes the generic path, which keeps the spread's ordering.
  const baseJson = Object.keys(base).length === 0 ? "" : escapeLineSeparators(JSON.stringify(base)).slice(1, -1);
  const plainBase = !ACCESS_KEYS.some((k) => k in base) && !Object.values(base).some((v) => v === undefined);
  let fastAccess = fmt === "json" && plainBase;
  const access = (r: AccessRecord) => {
    const lvl = accessLevel(r.status, r.bucket, r.error);
    if (RANK[lvl] < min) return;
    if (!fastAccess) {
      const f: Fields = {};
      for (const k of ACCESS_KEYS) if ((r as unknown as Fields)[k] !== undefined) f[k] = (r as unknown as Fields)[k];
      return log(lvl, "request", f);
    }
    let line = `{"ts":"${isoNow()}","level":"${lvl}","msg":"request"${baseJson === "" ? "" : `,${baseJson}`},"request_id":${jstr(r.request_id)},"method":${jstr(r.method)},"path":${jstr(r.path)},"bucket":${jstr(r.bucket)},"status":${jnum(r.status)},"bytes":${jnum(r.bytes)},"duration_ms":${jnum(r.duration_ms)},"ttfb_ms":${jnum(r.ttfb_ms)},"upstream_ms":${jnum(r.upstream_ms)},"client_ip":${jstr(r.client_ip)}`;
    if (r.front !== undefined) line += `,"front":${jstr(r.front)}`;
    if (r.operation !== undefined) line += `,"operation":${jstr(r.operation)}`;
    if (r.copy_source !== undefined) line += `,"copy_source":${jstr(r.copy_source)}`;
    if (r.bytes_in !== undefined) line += `,"bytes_in":${jnum(r.bytes_in)}`;
    if (r.subject !== undefined) line += `,"subject":${jstr(r.subject)}`;
    if (r.session !== undefined) line += `,"session":${jstr(r.session)}`;
    if (r.presigned !== undefined) line += `,"presigned":true`;
    if (r.cache !== undefined) line += `,"cache":${jstr(r.cache)}`;
    if (r.error !== undefined) line += `,"error":${jstr(r.error)}`;
    if (r.reason !== undefined) line += `,"reason":${jstr(r.reason)}`;
    if (r.s3_error !== undefined) line += `,"s3_error":${jstr(r.s3_error)}`;
    if (r.s3_request_id !== undefined) line += `,"s3_request_id":${jstr(r.s3_request_id)}`;
    if (r.access_key_id !== undefined) line += `,"access_key_id":${jstr(r.access_key_id)}`;
    if (r.upstream_error !== undefined) line += `,"upstream_error":${jstr(r.upstream_error)}`;
    if (r.attempts !== undefined) line += `,"attempts":${jnum(r.attempts)}`;
    if (r.replica !== undefined) line += `,"replica":${jstr(r.replica)}`;
    if (r.trace_id !== undefined) line += `,"trace_id":"${r.trace_id}","span_id":"${r.span_id}"`;
    enqueue(`${line}}\n`);
  };

  return {
    get level() {
      return level;
    },
    reconfigure(o) {
      level = o.level;
      min = RANK[level];
      fmt = o.format;
      fastAccess = fmt === "json" && plainBase;
    },
    access,
    enabled: (level) => RANK[level] >= min,
    log,
    trace: (m, f) => log("trace", m, f),
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
    flush,
  };
}

/**
 * An access line's level: `warn` for a 5xx (the upstream failed, timed out or was refused to it,
 * the proxy failed or was overloaded), so a deployment logging at `warn` sees failing requests, not
 * only the probe's view of an upstream; `debug` for a health or readiness probe answered 2xx
 * (bucket `_health`: /health, /ready), which a kubelet or load balancer sends every few seconds
 * (one info line each flooded the log); `info` for the rest, 501 NotImplemented included (a
 * request this proxy does not serve, such as SSE-C or SigV4a: the client's, not a failure), and a
 * probe's 503 `Draining` from a shutdown signal on (what shutdown_delay is for: every rolling
 * deploy wrote a warn line per probe through it).
 */
export function accessLevel(status: number, bucket: string, error?: string): "debug" | "info" | "warn" {
  if (status >= 500) return status !== 501 && error !== "Draining" ? "warn" : "info";
  return status < 300 && bucket === "_health" ? "debug" : "info";
}

/** A logger that discards everything (tests, benchmarks). */
export const nullLogger: Logger = createLogger({ level: "error", format: "json", fd: -1 });
