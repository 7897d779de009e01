/**
 * The README's Observability section names what the proxy writes: every field an access line can
 * carry is in its "Logs" item.
 */
import { afterAll, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type AccessRecord } from "../../src/observe/log.ts";

const ROOT = join(import.meta.dir, "../..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const dir = mkdtempSync(join(tmpdir(), "yata-obsdocs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The text of the README item that starts with `- **<title>:**`, up to the next item. */
function item(title: string): string {
  const start = README.indexOf(`- **${title}:**`);
  expect(start).toBeGreaterThan(0);
  const end = README.indexOf("\n- **", start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

test("every field of an access line is documented in the README's Logs item", () => {
  // Every field set, so the line has each one the logger can write.
  const rec: Required<AccessRecord> = {
    request_id: "r", method: "GET", path: "/b/k", bucket: "b", status: 200, bytes: 1, duration_ms: 1, ttfb_ms: 1, upstream_ms: 1, client_ip: "10.0.0.1",
    front: "s3", operation: "GetObject", copy_source: "b/k", bytes_in: 1, subject: "s", session: "x", cache: "HIT", error: "E", reason: "r",
    s3_error: "E", s3_request_id: "i", upstream_error: "ECONNREFUSED", attempts: 2, replica: "east", trace_id: "0".repeat(32), span_id: "0".repeat(16),
  };
  const file = join(dir, "access.log");
  const fd = openSync(file, "w");
  const log = createLogger({ level: "info", format: "json", fd });
  log.access(rec);
  log.flush();
  closeSync(fd);
  const fields = Object.keys(JSON.parse(readFileSync(file, "utf8").trim()) as object).filter((k) => !["ts", "level", "msg"].includes(k));
  expect(fields.length).toBe(Object.keys(rec).length);
  const logs = item("Logs");
  expect(fields.filter((f) => !new RegExp(`[\`, ]${f}[\`,]`).test(logs))).toEqual([]);
});
