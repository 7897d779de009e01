/**
 * The text log format (logging.format: text): a value a client controls (a path, an S3 key, a
 * token's claim) is quoted and escaped when it holds anything a reader could mistake for the
 * line's structure or a terminal could act on. Before, only whitespace, '"' and '=' were quoted:
 * an S3 key holding ESC sequences reached the log raw and cleared or recoloured the terminal of
 * whoever tailed it.
 */
import { afterAll, expect, test, setDefaultTimeout } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../src/observe/log.ts";

setDefaultTimeout(30_000);

const dir = mkdtempSync(join(tmpdir(), "yata-logtext-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function linesOf(write: (log: ReturnType<typeof createLogger>) => void): string[] {
  const file = join(dir, `${Math.random()}.log`);
  const fd = openSync(file, "w");
  const log = createLogger({ level: "info", format: "text", fd });
  write(log);
  log.flush();
  closeSync(fd);
  return readFileSync(file, "utf8").split("\n").filter((l) => l !== "");
}

test("control characters, DEL, C1 controls, bidi overrides and line separators in a value are escaped; the line stays one line of printable text", () => {
  const hostile = "x\u001b[2J\u001b[1;31mFAKE\u001b[0m\b\b\u007f\u009b31m\u202egnp.exe\u2028INFO forged=1\r\nERROR forged";
  const out = linesOf((log) => log.info("request", { path: `/pub/${hostile}`, subject: "u\u001b]0;title\u0007" }));
  expect(out.length).toBe(1);
  const line = out[0];
  expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
  expect(line).toContain(String.raw`path="/pub/x\u001b[2J`);
  expect(line).toContain(String.raw`\u007f\u009b31m\u202egnp.exe\u2028INFO forged=1\r\nERROR forged"`);
  expect(line).toContain(String.raw`subject="u\u001b]0;title\u0007"`);
  // a lone surrogate is escaped too
  expect(linesOf((log) => log.info("request", { key: "a\ud800b" }))[0]).toContain(String.raw`key="a\ud800b"`);
  // reading the quoted value back gives the original
  const m = /path=("(?:[^"\\]|\\.)*")/.exec(line)!;
  expect(JSON.parse(m[1])).toBe(`/pub/${hostile}`);
});

test("plain values (an emoji too) stay bare; values with spaces, quotes or '=' are quoted as before", () => {
  const [line] = linesOf((log) => log.info("request", { path: "/pub/a.txt", status: 200, ua: "curl/8 x", q: "a=b", emoji: "😀" }));
  expect(line).toEndWith(` INFO request path=/pub/a.txt status=200 ua="curl/8 x" q="a=b" emoji=😀`);
});
