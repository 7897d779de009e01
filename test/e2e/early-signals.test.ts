/**
 * Signals that arrive while the process starts, before its handlers for serving are installed
 * (here: while it waits on its config, a named pipe nobody has written yet). Before, the default
 * actions applied: SIGTERM killed it with 143 and no log line, SIGHUP with 129 (a reload asked
 * right after a start, or during the second a large config takes to validate). Now a stop asked
 * then exits 0 before serving, and a reload asked then is applied once it serves.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync, writeFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { bucketYaml, command } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
let dir: string;
beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "early", public: true }], credentials: [] });
  dir = mkdtempSync(join(tmpdir(), "yata-early-"));
});
afterAll(async () => {
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const config = (prefix: string) => `server: { address: 127.0.0.1, port: 0 }\nbuckets:\n${bucketYaml({ name: "b", prefix, bucket: "early", endpoint: s3.endpoint })}`;

/** Starts the proxy on a config that is a named pipe; resolves once the process has opened it (its JS runs, the config is not read yet). */
async function startOnPipe(name: string) {
  const path = join(dir, name);
  expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
  const proc = Bun.spawn([...command(), "--config", path], { stdout: "pipe", stderr: "pipe" });
  let out = "";
  void (async () => {
    for await (const c of proc.stdout) out += new TextDecoder().decode(c);
  })();
  // Non-blocking: fails (ENXIO) until the process has the pipe open for reading.
  const fd = await waitFor(
    () => {
      try {
        return openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 15_000, intervalMs: 5, message: "the proxy opening its config" },
  );
  return { proc, fd, path, out: () => out };
}

test("SIGTERM while the config is being read: exits 0 before serving, with a log line (was: killed, 143)", async () => {
  const p = await startOnPipe("term.yaml");
  try {
    p.proc.kill("SIGTERM");
    writeSync(p.fd, config("/b"));
  } finally {
    closeSync(p.fd);
  }
  expect(await p.proc.exited).toBe(0);
  expect(p.out()).toContain('"msg":"stopped before serving"');
  expect(p.out()).not.toContain('"msg":"listening"');
});

test("SIGHUP while the config is being read: the process serves, then reloads (was: killed, 129)", async () => {
  const p = await startOnPipe("hup.yaml");
  // The reload reads the path again: a plain file by then, with another prefix (renamed over the
  // pipe first: the process reads the start-up config from the pipe it has open).
  const next = join(dir, "hup.next");
  writeFileSync(next, config("/after"));
  renameSync(next, p.path);
  try {
    p.proc.kill("SIGHUP");
    writeSync(p.fd, config("/before"));
  } finally {
    closeSync(p.fd);
  }
  try {
    await waitFor(() => p.out().includes('"msg":"config reloaded"') || p.proc.exitCode !== null, { timeoutMs: 15_000, message: "the reload" });
    expect(p.proc.exitCode).toBeNull();
    expect(p.out()).toContain('"generation":2');
  } finally {
    p.proc.kill("SIGTERM");
    expect(await p.proc.exited).toBe(0);
  }
});
