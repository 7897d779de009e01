/**
 * U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR and U+0085 NEL in a client-chosen path or
 * key: JSON allows them raw, but a reader splitting on Unicode line breaks (str.splitlines(),
 * JavaScript before ES2019, some shippers) cuts the record there; the other C1 controls (U+009B, a
 * terminal's CSI) have no place raw in a log either. The access line (fast and generic JSON paths),
 * other JSON log lines and the audit trail write them escaped (\u2028, \u2029, \u0085, \u009b),
 * still parsing back to the same value.
 */
import { afterAll, expect, test, setDefaultTimeout } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAuditTrail } from "../../src/observe/audit.ts";
import { createLogger, nullLogger, type AccessRecord, type Fields } from "../../src/observe/log.ts";
import { Registry } from "../../src/observe/registry.ts";
import type { RequestContext } from "../../src/proxy/context.ts";

setDefaultTimeout(30_000);

const dir = mkdtempSync(join(tmpdir(), "yata-linesep-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LS = "\u2028";
const PS = "\u2029";
const NEL = "\u0085"; // a line break to str.splitlines()
const CSI = "\u009b"; // C1: a terminal's control sequence introducer
const PATH = `/b/a${LS}b${PS}c${NEL}d${CSI}.txt`;
const QUOTED = `/b/"q"${LS}.txt`; // the slow path (a quote) with a separator too

/** The raw text of what `write` logged (one JSON format logger, optional base fields). */
function written(write: (log: ReturnType<typeof createLogger>) => void, base?: Fields): string {
  const file = join(dir, `${Math.random()}.log`);
  const fd = openSync(file, "w");
  const log = createLogger({ level: "info", format: "json", fd, base });
  write(log);
  log.flush();
  closeSync(fd);
  return readFileSync(file, "utf8");
}

/** Each line parses, the text holds no raw separator, and splitting on every Unicode line break gives the same lines. */
function checkLines(text: string): Array<Record<string, unknown>> {
  expect(text).not.toContain(LS);
  expect(text).not.toContain(PS);
  expect(text).not.toMatch(/[\u0080-\u009f]/);
  const lines = text.split("\n").filter((l) => l !== "");
  expect(text.split(/\r\n|[\n\r\u2028\u2029\u0085\v\f\u001c-\u001e]/).filter((l) => l !== "")).toEqual(lines);
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

const rec: AccessRecord = { request_id: "r1", method: "GET", path: PATH, bucket: "b", status: 200, bytes: 5, duration_ms: 1, ttfb_ms: 1, upstream_ms: 0.5, client_ip: "10.0.0.1", subject: `al${PS}i${NEL}ce`, copy_source: `b/k${LS}${NEL}` };

test("access line, fast JSON path: path, subject and copy_source carry \\u2028 / \\u2029 escaped", () => {
  const text = written((log) => {
    log.access(rec);
    log.access({ ...rec, path: QUOTED });
  });
  expect(text).toContain("/b/a\\u2028b\\u2029c\\u0085d\\u009b.txt");
  expect(text).toContain('/b/\\"q\\"\\u2028.txt');
  const [a, b] = checkLines(text);
  expect(a).toMatchObject({ path: PATH, subject: `al${PS}i${NEL}ce`, copy_source: `b/k${LS}${NEL}` });
  expect(b!.path).toBe(QUOTED);
});

test("access line, generic JSON path (a base field that is undefined) and any other JSON log line: escaped too", () => {
  const text = written(
    (log) => {
      log.access(rec);
      log.warn("something about a key", { key: `k${LS}${PS}` });
    },
    { pid: undefined, note: `n${LS}` },
  );
  const [a, b] = checkLines(text);
  expect(a).toMatchObject({ msg: "request", path: PATH, note: `n${LS}` });
  expect(b).toMatchObject({ msg: "something about a key", key: `k${LS}${PS}` });
});

test("access line, fast path with base fields: a base value with a separator is escaped", () => {
  const [a] = checkLines(written((log) => log.access(rec), { service: `s${PS}` }));
  expect(a).toMatchObject({ service: `s${PS}`, path: PATH });
});

test("audit trail: a key (and identity) with U+2028/U+2029/U+0085/C1 is one line, escaped", async () => {
  const auditDir = mkdtempSync(join(dir, "audit-"));
  const audit = createAuditTrail({ enabled: true, path: join(auditDir, "audit.log"), max_size_mb: 10, max_files: 1 } as never, { baseDir: auditDir, log: nullLogger, registry: new Registry() })!;
  const ctx = { front: "plain", status: 200, id: "r2", principal: "jwt", subject: `bob${LS}`, clientIp: "10.0.0.1", action: "s3:GetObject", method: "GET", bucket: { name: "b" }, key: `a${LS}b${PS}c${NEL}d${CSI}.txt`, bytes: 5, start: performance.now() } as unknown as RequestContext;
  audit.record(ctx);
  await audit.close();
  const text = readFileSync(join(auditDir, "audit.log"), "utf8");
  expect(text).toContain("a\\u2028b\\u2029c\\u0085d\\u009b.txt");
  const [l] = checkLines(text);
  expect(l).toMatchObject({ key: `a${LS}b${PS}c${NEL}d${CSI}.txt`, identity: `bob${LS}`, request_id: "r2" });
});

test("JSON lines and the audit trail escape DEL and the bidi controls too, as the text format does (a key could read as another in a terminal)", async () => {
  const sneaky = "a\u202eexe.txt\u2066b\u2069c\u007f.t\u200fx\u200e\u061ct";
  const text = written((log) => log.access({ ...rec, path: `/b/${sneaky}` }));
  expect(text).toContain("a\\u202eexe.txt\\u2066b\\u2069c\\u007f.t\\u200fx\\u200e\\u061ct");
  expect(text).not.toMatch(/[\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/);
  expect(JSON.parse(text.trim()).path).toBe(`/b/${sneaky}`);
  const auditDir = mkdtempSync(join(dir, "audit-bidi-"));
  const audit = createAuditTrail({ enabled: true, path: join(auditDir, "audit.log"), max_size_mb: 10, max_files: 1 } as never, { baseDir: auditDir, log: nullLogger, registry: new Registry() })!;
  audit.record({ front: "plain", status: 200, id: "r3", principal: "jwt", subject: "bob", clientIp: "10.0.0.1", action: "s3:GetObject", method: "GET", bucket: { name: "b" }, key: sneaky, bytes: 5, start: performance.now() } as unknown as RequestContext);
  await audit.close();
  const line = readFileSync(join(auditDir, "audit.log"), "utf8");
  expect(line).not.toMatch(/[\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/);
  expect(JSON.parse(line.trim()).key).toBe(sneaky);
});
