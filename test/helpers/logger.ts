/** A Logger that keeps every line it is given (for tests that check what was logged, and how often). */
import type { Logger } from "../../src/observe/log.ts";

export interface RecordedLine {
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

export function recordingLogger(): Logger & { lines: RecordedLine[] } {
  const lines: RecordedLine[] = [];
  const log = (level: string, msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
  return {
    lines,
    level: "info",
    enabled: () => true,
    log: (level, msg, fields) => log(level, msg, fields),
    trace: (m, f) => log("trace", m, f),
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
    access: () => {},
    flush: () => {},
  };
}
