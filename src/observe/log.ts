/**
 * Structured logs: JSON lines (or `key=value` text) on stdout.
 *
 * Lines are queued and written once per event-loop turn, so a busy proxy makes one write(2)
 * per turn instead of one per request. `flush()` writes synchronously (used at exit).
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
  enabled(level: Level): boolean;
  log(level: Level, msg: string, fields?: Fields): void;
  trace(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  flush(): void;
}

function scrub(fields: Fields): Fields {
  for (const k in fields) {
    if (SECRET_NAME.test(k) && k !== "token_source") fields[k] = "[REDACTED]";
  }
  return fields;
}

function textValue(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

export function createLogger(opts: { level: Level; format: "json" | "text"; fd?: number; base?: Fields }): Logger {
  const min = RANK[opts.level];
  const fd = opts.fd ?? 1;
  const base = opts.base ?? {};
  let queue: string[] = [];
  let scheduled = false;

  const flush = () => {
    scheduled = false;
    if (queue.length === 0) return;
    const out = queue.join("");
    queue = [];
    try {
      writeSync(fd, out);
    } catch {
      // stdout closed (EPIPE): nothing sensible to do; never crash the proxy over a log line.
    }
  };

  const format = (level: Level, msg: string, fields: Fields | undefined): string => {
    const rec: Fields = { ts: new Date().toISOString(), level, msg, ...base, ...(fields ? scrub(fields) : undefined) };
    if (opts.format === "json") return `${JSON.stringify(rec)}\n`;
    let line = `${rec.ts} ${level.toUpperCase()} ${msg}`;
    for (const k in rec) if (k !== "ts" && k !== "level" && k !== "msg" && rec[k] !== undefined) line += ` ${k}=${textValue(rec[k])}`;
    return `${line}\n`;
  };

  const log = (level: Level, msg: string, fields?: Fields) => {
    if (RANK[level] < min) return;
    queue.push(format(level, msg, fields));
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };

  return {
    level: opts.level,
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

/** A logger that discards everything (tests, benchmarks). */
export const nullLogger: Logger = createLogger({ level: "error", format: "json", fd: -1 });
