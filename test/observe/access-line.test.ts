/**
 * The access line's request-body fields (operation, copy_source, bytes_in): written by the fast
 * JSON path as the generic path writes them (same names, same order), escaped where a client
 * controls the value (a copy source is a key), omitted when undefined, and in the text format.
 */
import { afterAll, expect, test, setDefaultTimeout } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type AccessRecord, type Fields } from "../../src/observe/log.ts";

setDefaultTimeout(30_000);

const dir = mkdtempSync(join(tmpdir(), "yata-accessline-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function linesOf(o: { format: "json" | "text"; base?: Fields; level?: "info" | "warn" }, records: AccessRecord[]): string[] {
  const file = join(dir, `${Math.random()}.log`);
  const fd = openSync(file, "w");
  const log = createLogger({ level: o.level ?? "info", format: o.format, fd, base: o.base });
  for (const r of records) log.access(r);
  log.flush();
  closeSync(fd);
  return readFileSync(file, "utf8").split("\n").filter((l) => l !== "");
}

const base: AccessRecord = { request_id: "r1", method: "PUT", path: "/b/k", bucket: "b", status: 200, bytes: 0, duration_ms: 1.5, ttfb_ms: 1, upstream_ms: 0.5, client_ip: "10.0.0.1" };
const upload: AccessRecord = { ...base, front: "s3", operation: "CopyObject", copy_source: 'b/a "quoted"\nkey', bytes_in: 1048576, subject: "writer", session: "AbCdEfGhIjKlMnOp" };

test("JSON: operation, copy_source and bytes_in after front, escaped; omitted when undefined", () => {
  const [withBody, get] = linesOf({ format: "json" }, [upload, { ...base, method: "GET", front: "s3", operation: "GetObject", bytes: 10 }]);
  const l = JSON.parse(withBody!) as Record<string, unknown>;
  expect(l).toMatchObject({ front: "s3", operation: "CopyObject", copy_source: 'b/a "quoted"\nkey', bytes_in: 1048576, subject: "writer" });
  expect(Object.keys(l).slice(Object.keys(l).indexOf("front"), Object.keys(l).indexOf("front") + 6)).toEqual(["front", "operation", "copy_source", "bytes_in", "subject", "session"]);
  expect(get).not.toContain("session");
  expect(get).not.toContain("bytes_in");
  expect(get).not.toContain("copy_source");
  expect(JSON.parse(get!)).toMatchObject({ operation: "GetObject", bytes: 10 });
});

test("JSON: the fast path writes what the generic path writes (same keys, same order)", () => {
  // a base field that is undefined sends every access line through the generic path
  const [fast] = linesOf({ format: "json", base: { pid: 7 } }, [upload]);
  const [generic] = linesOf({ format: "json", base: { pid: 7, gone: undefined } }, [upload]);
  const strip = (s: string) => s.replace(/"ts":"[^"]*"/, "");
  expect(strip(fast!)).toBe(strip(generic!));
});

test("text: the new fields as key=value, the copy source quoted", () => {
  const [line] = linesOf({ format: "text" }, [upload]);
  expect(line).toContain(" operation=CopyObject ");
  expect(line).toContain(" bytes_in=1048576 ");
  expect(line).toContain(' copy_source="b/a \\"quoted\\"\\nkey" ');
  expect(line!.split("\n").length).toBe(1);
});

test("a 5xx line is at warn (a 501 and every 4xx at info), on both JSON paths and in text; a warn-level log keeps only those", () => {
  // (every access line was at info: a deployment logging at warn saw no failing request at all)
  const statuses = [200, 404, 499, 500, 501, 502, 503, 504];
  const records = statuses.map((status) => ({ ...base, request_id: `s${status}`, status }));
  const level = (l: string) => (JSON.parse(l) as { level: string }).level;
  const expected = ["info", "info", "info", "warn", "info", "warn", "warn", "warn"];
  expect(linesOf({ format: "json" }, records).map(level)).toEqual(expected);
  expect(linesOf({ format: "json", base: { gone: undefined } }, records).map(level)).toEqual(expected);
  expect(linesOf({ format: "text" }, records).map((l) => l.split(" ")[1])).toEqual(expected.map((e) => e.toUpperCase()));
  const kept = linesOf({ format: "json", level: "warn" }, records).map((l) => (JSON.parse(l) as { status: number }).status);
  expect(kept).toEqual([500, 502, 503, 504]);
});
