/**
 * The audit trail's file writer on its own: rotation by size (exact file contents, oldest dropped),
 * the bounded queue (drops counted, never waited for), a full disk (/dev/full: ENOSPC on every
 * write) counted per attempt and logged once, recovery, and the flush at close.
 */
import { afterEach, expect, test, setDefaultTimeout } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditFile } from "../../src/observe/audit-file.ts";
import { waitFor } from "../helpers/wait.ts";
import { makeReadOnly, recordingLog } from "./audit-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);


const dirs: string[] = [];
const files: AuditFile[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "yata-audit-file-"));
  dirs.push(d);
  return d;
}
function make(o: ConstructorParameters<typeof AuditFile>[0]): AuditFile {
  const f = new AuditFile(o);
  files.push(f);
  return f;
}
afterEach(async () => {
  for (const f of files.splice(0)) await f.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const line = (i: number) => `{"n":${String(i).padStart(4, "0")},"pad":"xxxxxxxxxx"}\n`; // 30 bytes

test("rotation: whole lines up to max bytes per file, path → path.1 → path.2, the oldest dropped", async () => {
  const dir = tempDir();
  const path = join(dir, "audit.log");
  const f = make({ path, maxBytes: 100, maxFiles: 2, log: recordingLog(), flushIntervalMs: 60_000 });
  for (let i = 0; i < 14; i++) f.append(line(i));
  await f.flush();
  // 3 lines (90 bytes) fit in 100; 14 lines = 4 full files + 2 lines: files 0-2, 3-5, 6-8, 9-11, 12-13.
  const read = (p: string) => readFileSync(p, "utf8");
  expect(read(path)).toBe(line(12) + line(13));
  expect(read(`${path}.1`)).toBe(line(9) + line(10) + line(11));
  expect(read(`${path}.2`)).toBe(line(6) + line(7) + line(8));
  expect(existsSync(`${path}.3`)).toBe(false);
  for (const p of [path, `${path}.1`, `${path}.2`]) expect(statSync(p).size).toBeLessThanOrEqual(100);
});

test("rotation counts what the file already held (a restart appends, then rotates at the limit)", async () => {
  const dir = tempDir();
  const path = join(dir, "audit.log");
  const a = make({ path, maxBytes: 100, maxFiles: 3, log: recordingLog(), flushIntervalMs: 60_000 });
  a.append(line(0));
  a.append(line(1));
  await a.close();
  const b = make({ path, maxBytes: 100, maxFiles: 3, log: recordingLog(), flushIntervalMs: 60_000 });
  b.append(line(2));
  b.append(line(3));
  await b.close();
  expect(readFileSync(`${path}.1`, "utf8")).toBe(line(0) + line(1) + line(2));
  expect(readFileSync(path, "utf8")).toBe(line(3));
});

test("a path that is no regular file (/dev/stdout in a container, here a link to /dev/null) is written without rotating: rotation renamed the link and wrote a regular file in its place", async () => {
  const dir = tempDir();
  const path = join(dir, "stdout");
  symlinkSync("/dev/null", path);
  const f = make({ path, maxBytes: 100, maxFiles: 2, log: recordingLog(), flushIntervalMs: 60_000 });
  for (let i = 0; i < 14; i++) f.append(line(i));
  await f.flush();
  expect(readlinkSync(path)).toBe("/dev/null");
  expect(existsSync(`${path}.1`)).toBe(false);
});

test("a line longer than max bytes is written whole, alone in its file", async () => {
  const path = join(tempDir(), "audit.log");
  const f = make({ path, maxBytes: 40, maxFiles: 5, log: recordingLog(), flushIntervalMs: 60_000 });
  const long = `{"k":"${"y".repeat(60)}"}\n`;
  f.append(line(0));
  f.append(long);
  f.append(line(1));
  await f.flush();
  expect([readFileSync(`${path}.2`, "utf8"), readFileSync(`${path}.1`, "utf8"), readFileSync(path, "utf8")]).toEqual([line(0), long, line(1)]);
});

test("the timer flushes without being asked; close() writes the rest", async () => {
  const path = join(tempDir(), "audit.log");
  const f = make({ path, maxBytes: 1 << 20, maxFiles: 2, log: recordingLog(), flushIntervalMs: 20 });
  f.append(line(1));
  // (without the timer nothing is written before close(): the bound, 10 s, is only a loaded host's pause)
  await waitFor(() => existsSync(path) && readFileSync(path, "utf8") === line(1), { timeoutMs: 10_000, message: "the timer's flush" });
  const g = make({ path: join(tempDir(), "b.log"), maxBytes: 1 << 20, maxFiles: 2, log: recordingLog(), flushIntervalMs: 60_000 });
  g.append(line(2));
  await g.close();
  expect(readFileSync(g["o"].path, "utf8")).toBe(line(2));
});

test("a full disk (/dev/full): counted per attempt, logged once, lines kept (bounded), extra ones dropped and counted", async () => {
  const log = recordingLog();
  let errors = 0;
  let dropped = 0;
  const f = make({ path: "/dev/full", maxBytes: 1 << 30, maxFiles: 1, log, onError: () => errors++, onDrop: (n) => (dropped += n), queueBytes: 100, flushIntervalMs: 60_000 });
  f.append(line(0));
  f.append(line(1));
  f.append(line(2));
  f.append(line(3)); // 4 × 30 > 100: dropped
  expect(dropped).toBe(1);
  for (let i = 0; i < 3; i++) await f.flush();
  expect(errors).toBe(3);
  const failing = log.lines.filter((l) => l.msg.startsWith("audit trail cannot be written"));
  expect(failing.length).toBe(1);
  expect(failing[0].fields).toMatchObject({ path: "/dev/full", error: "ENOSPC" });
  expect(log.lines.filter((l) => l.msg.startsWith("audit trail queue full")).length).toBe(1);
  expect(f.pending).toBe(90); // the three queued lines wait for the disk
  // Never waits, never throws: append() gives nothing to wait for (no promise), tries no write of
  // the failing disk in the caller's turn (errors unchanged), and counts the drops at once (a
  // wall-clock bound on the loop, 200 ms, failed on a loaded host).
  const results = new Set<unknown>();
  for (let i = 0; i < 1000; i++) results.add(f.append(line(i)));
  expect([...results]).toEqual([undefined]);
  expect(errors).toBe(3);
  expect(dropped).toBe(1001);
  await f.close();
  expect(dropped).toBe(1004); // still failing at close: the queued three are lost, and counted
});

test("recovery: a folder that appears later gets the queued lines, and 'writing again' is logged once", async () => {
  const log = recordingLog();
  let errors = 0;
  const dir = join(tempDir(), "later");
  const path = join(dir, "audit.log");
  const f = make({ path, maxBytes: 1 << 20, maxFiles: 2, log, onError: () => errors++, flushIntervalMs: 60_000 });
  f.append(line(0));
  await f.flush();
  expect(errors).toBe(1);
  expect(log.lines.find((l) => l.level === "error")?.fields).toMatchObject({ error: "ENOENT" });
  const { mkdirSync } = await import("node:fs");
  mkdirSync(dir);
  f.append(line(1));
  await f.flush();
  expect(readFileSync(path, "utf8")).toBe(line(0) + line(1));
  expect(log.lines.filter((l) => l.msg === "audit trail writing again").length).toBe(1);
  expect(errors).toBe(1);
});

test("the folder removed (rm -rf): noticed at the next timer flush, logged and counted once, folder and file recreated, no line lost to the deleted file", async () => {
  const log = recordingLog();
  let errors = 0;
  const dir = join(tempDir(), "aud");
  mkdirSync(dir);
  const path = join(dir, "audit.log");
  const f = make({ path, maxBytes: 1 << 20, maxFiles: 2, log, onError: () => errors++, flushIntervalMs: 20 });
  f.append(line(0));
  await waitFor(() => existsSync(path) && readFileSync(path, "utf8") === line(0), { timeoutMs: 10_000, message: "the timer's flush" });
  await f.flush(); // the timer's flush has ended (one still running would take the next lines to the open file, as before the removal)
  rmSync(dir, { recursive: true });
  for (let i = 1; i <= 3; i++) f.append(line(i));
  await waitFor(() => existsSync(path) && readFileSync(path, "utf8") === line(1) + line(2) + line(3), { timeoutMs: 10_000, message: "the recreated file" });
  expect(errors).toBe(1);
  const noticed = log.lines.filter((l) => l.msg.startsWith("audit trail file was moved or deleted"));
  expect(noticed.length).toBe(1);
  expect(noticed[0].fields).toMatchObject({ path, found: "missing" });
  f.append(line(4));
  await f.flush();
  expect(readFileSync(path, "utf8")).toBe(line(1) + line(2) + line(3) + line(4));
  expect(errors).toBe(1);
});

test("moved away (logrotate's mv) then reopen() (a reload): the next lines go to a new file at the path, the moved one keeps the old", async () => {
  const log = recordingLog();
  let errors = 0;
  const path = join(tempDir(), "audit.log");
  const f = make({ path, maxBytes: 1 << 20, maxFiles: 2, log, onError: () => errors++, flushIntervalMs: 60_000 });
  f.append(line(0));
  await f.flush();
  renameSync(path, `${path}.old`);
  await f.reopen(); // nothing queued: the file is back at its path at once
  expect(existsSync(path)).toBe(true);
  f.append(line(1));
  await f.flush();
  expect(readFileSync(`${path}.old`, "utf8")).toBe(line(0));
  expect(readFileSync(path, "utf8")).toBe(line(1));
  expect(errors).toBe(1);
  // another file put at the path (logrotate's `create`) is noticed too
  renameSync(path, `${path}.old2`);
  writeFileSync(path, "");
  f.append(line(2));
  await f.reopen();
  expect(readFileSync(path, "utf8")).toBe(line(2));
  expect(readFileSync(`${path}.old2`, "utf8")).toBe(line(1));
  expect(log.lines.filter((l) => l.msg.startsWith("audit trail file was moved or deleted")).map((l) => l.fields?.found)).toEqual(["missing", "replaced"]);
});

test("a removed folder that cannot be recreated: the README's 'folder gone' (logged once, counted per attempt, lines kept) until it can", async () => {
  const log = recordingLog();
  let errors = 0;
  let dropped = 0;
  const parent = tempDir();
  const dir = join(parent, "aud");
  mkdirSync(dir);
  const path = join(dir, "audit.log");
  const f = make({ path, maxBytes: 1 << 20, maxFiles: 2, log, onError: () => errors++, onDrop: (n) => (dropped += n), flushIntervalMs: 60_000 });
  f.append(line(0));
  await f.flush();
  rmSync(dir, { recursive: true });
  const undo = await makeReadOnly(parent);
  try {
    f.append(line(1));
    await f.reopen(); // noticed (1) and the reopening fails (2)
    f.append(line(2));
    await f.reopen(); // fails again (3)
    expect(errors).toBe(3);
    expect(existsSync(dir)).toBe(false);
    expect(log.lines.filter((l) => l.msg.startsWith("audit trail file was moved or deleted")).length).toBe(1);
    expect(log.lines.filter((l) => l.msg.startsWith("audit trail cannot be written")).length).toBe(1);
    expect(f.pending).toBe(60);
  } finally {
    await undo();
  }
  await f.reopen();
  expect(readFileSync(path, "utf8")).toBe(line(1) + line(2));
  expect(log.lines.filter((l) => l.msg === "audit trail writing again").length).toBe(1);
  expect(dropped).toBe(0);
});

// A FIFO with no reader: the open waited for one for ever, and the drain (SIGTERM) with it.
test("a FIFO with no reader: the open fails at once (counted, lines kept), close() does not wait for a reader", async () => {
  const dir = tempDir();
  const fifo = join(dir, "audit.fifo");
  expect(await Bun.spawn(["mkfifo", fifo]).exited).toBe(0);
  const log = recordingLog();
  let errors = 0;
  const f = make({ path: fifo, maxBytes: 1 << 30, maxFiles: 1, log, onError: () => errors++, onDrop: () => {}, queueBytes: 1000, flushIntervalMs: 60_000 });
  f.append(line(0));
  await f.flush();
  expect(errors).toBe(1);
  expect(f.pending).toBe(30);
  await f.close();
});
