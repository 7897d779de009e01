/**
 * The README's Observability section names what the proxy writes: every field an access line can
 * carry is in its "Logs" item, and every metric family is in its metrics table.
 */
import { afterAll, expect, test, setDefaultTimeout } from "bun:test";
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type AccessRecord } from "../../src/observe/log.ts";
import { Metrics } from "../../src/observe/metrics.ts";

setDefaultTimeout(30_000);

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
    front: "s3", operation: "GetObject", copy_source: "b/k", bytes_in: 1, subject: "s", session: "x", presigned: true, cache: "HIT", error: "E", reason: "r",
    s3_error: "E", s3_request_id: "i", access_key_id: "AKID", upstream_error: "ECONNREFUSED", attempts: 2, replica: "east", trace_id: "0".repeat(32), span_id: "0".repeat(16),
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

test("every X-Cache value the cache can answer is in the README's X-Cache line and the Logs item's `cache` list", () => {
  // (CacheStatus is a type: its members are read from its declaration, so a new one, STALE, fails this until documented)
  const decl = /export type CacheStatus = ([^;]+);/.exec(readFileSync(join(ROOT, "src/cache/serve.ts"), "utf8"));
  expect(decl).not.toBeNull();
  const values = [...decl![1]!.matchAll(/"([A-Z]+)"/g)].map((m) => m[1]!);
  expect(values.length).toBeGreaterThanOrEqual(5);
  const xCache = /Cached buckets add `X-Cache: ([^`]+)`/.exec(README);
  expect(xCache).not.toBeNull();
  expect(values.filter((v) => !xCache![1]!.split(" | ").includes(v))).toEqual([]);
  const cacheField = /`cache` \(([^)]+)\)/.exec(item("Logs"));
  expect(cacheField).not.toBeNull();
  expect(values.filter((v) => !cacheField![1]!.includes(`\`${v}\``))).toEqual([]);
});

test("every metric family the proxy registers is in the README's metrics table, with its type and labels, and no other", () => {
  // Every family registered anywhere in src/ (cache layers, audit, tracing, readiness too), with its type.
  const types = new Map<string, string>();
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith(".ts")) for (const m of readFileSync(p, "utf8").matchAll(/\.(counter|gauge|histogram)\(\s*"((?:yatagarasu|process)_[a-z0-9_]+)"/g)) types.set(m[2], m[1]);
    }
  };
  walk(join(ROOT, "src"));
  expect(types.size).toBeGreaterThan(40);
  const rows = new Map<string, string[]>();
  for (const line of README.split("\n")) {
    const r = /^\| `((?:yatagarasu|process)_[a-z0-9_]+)` \| (\w+) \|([^|]*)\|/.exec(line);
    if (r) rows.set(r[1], [r[2], r[3].trim().replace(/`/g, "")]);
  }
  expect([...types.keys()].filter((n) => !rows.has(n)).sort()).toEqual([]);
  // ...and every row names a family the proxy registers (a renamed or removed one leaves no row behind).
  expect([...rows.keys()].filter((n) => !types.has(n)).sort()).toEqual([]);
  for (const [n, t] of types) expect([n, rows.get(n)?.[0]]).toEqual([n, t]);
  // The labels of those the Metrics class registers, as /metrics shows them.
  for (const f of new Metrics({ version: "test", buckets: ["b"] }).snapshot()) expect([f.name, rows.get(f.name)?.[1]]).toEqual([f.name, f.labelNames.join(", ")]);
});
