/**
 * The audit trail when the disk says no, and at shutdown:
 * - a read-only folder: requests are served as usual (and promptly), failures are counted per
 *   attempt and logged once; once the folder is writable again the queued lines are written;
 * - the folder removed (rm -rf) or the file moved away (logrotate's mv): noticed within about a
 *   second and on SIGHUP, logged and counted, the file recreated at its path; no event is lost;
 * - the real process: the timer flushes within about a second, and SIGTERM writes what is queued.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import type { S3Fixture } from "../fixtures/s3.ts";
import { startProxy, type ProxyProcess } from "../e2e/harness.ts";
import { waitFor } from "../helpers/wait.ts";
import { makeReadOnly, parseLines, removeDir, startAuditEnv, startFixture, tempDir } from "./audit-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
beforeAll(async () => {
  s3 = await startFixture();
});
afterAll(() => s3?.stop());

test("a read-only folder: serving continues, each failed attempt is counted, logged once; written once writable again", async () => {
  const dir = tempDir();
  const undo = await makeReadOnly(dir);
  try {
    await using env = await startAuditEnv(s3, `  enabled: true\n  path: ${join(dir, "audit.log")}\n`);
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const r = await fetch(env.url("/open/doc.txt"), { headers: { "x-request-id": `ro${i}` } });
      expect([r.status, await r.text()]).toEqual([200, "0123456789"]);
      expect(performance.now() - t0).toBeLessThan(2000);
      await env.app.audit!.flush(); // an attempt (the timer's job, made deterministic)
    }
    expect(existsSync(join(dir, "audit.log"))).toBe(false);
    expect(env.metric("yatagarasu_audit_write_errors_total")).toBeGreaterThanOrEqual(5);
    expect(env.metric('yatagarasu_audit_events_total{result="allowed"}')).toBe(5);
    expect(env.metric("yatagarasu_audit_queue_bytes")).toBeGreaterThan(0);
    const failing = env.log.lines.filter((l) => l.msg.startsWith("audit trail cannot be written"));
    expect(failing.length).toBe(1);
    expect(failing[0].level).toBe("error");
    expect(["EACCES", "EPERM", "EROFS"]).toContain(String(failing[0].fields?.error));
    // /health still answers while the trail is failing
    expect((await fetch(env.url("/health"))).status).toBe(200);

    await undo();
    const lines = await env.lines();
    expect(lines.map((l) => l.request_id)).toEqual(["ro0", "ro1", "ro2", "ro3", "ro4"]);
    expect(env.log.lines.filter((l) => l.msg === "audit trail writing again").length).toBe(1);
    expect(env.metric("yatagarasu_audit_queue_bytes")).toBe(0);
    expect(env.metric("yatagarasu_audit_dropped_total")).toBe(0);
  } finally {
    await undo();
    removeDir(dir);
  }
});

test("the folder removed under the process (rm -rf): noticed within ~1 s, counted and logged once, recreated; no event lost", async () => {
  const dir = tempDir();
  try {
    const path = join(dir, "aud", "audit.log");
    mkdirSync(join(dir, "aud"));
    await using env = await startAuditEnv(s3, `  enabled: true\n  path: ${path}\n  max_size_mb: 1\n  max_files: 2\n`);
    await (await fetch(env.url("/open/doc.txt"), { headers: { "x-request-id": "before" } })).text();
    expect((await env.lines()).map((l) => l.request_id)).toEqual(["before"]);
    rmSync(join(dir, "aud"), { recursive: true });
    const ids = Array.from({ length: 30 }, (_, i) => `gone${i}`);
    for (const id of ids) expect((await fetch(env.url("/open/doc.txt"), { headers: { "x-request-id": id } })).status).toBe(200);
    // the timer's next flush notices the path names no file, recreates it and writes there
    await waitFor(() => existsSync(path) && parseLines(readFileSync(path, "utf8")).length === 30, { timeoutMs: 5000, message: "the recreated audit file" });
    expect(parseLines(readFileSync(path, "utf8")).map((l) => l.request_id)).toEqual(ids);
    expect(env.metric("yatagarasu_audit_write_errors_total")).toBe(1);
    expect(env.metric("yatagarasu_audit_dropped_total")).toBe(0);
    expect(env.log.lines.filter((l) => l.msg.startsWith("audit trail file was moved or deleted")).length).toBe(1);
  } finally {
    removeDir(dir);
  }
});

/** The real process with its audit trail at `path`, one bucket /open on the fixture. */
const auditedProxyYaml = (path: string) =>
  `server: { address: 127.0.0.1, port: 0 }\naudit: { enabled: true, path: "${path}" }\nbuckets:\n` +
  `  - name: open\n    path_prefix: /open\n    s3: { bucket: data, endpoint: "${s3.endpoint}", access_key: "AKIDUPSTREAMREAD", secret_key: "upstream-secret-key-0123456789" }\n`;

/**
 * Runs `during` against the real process with its audit trail at `<dir>/audit.log`, stops it
 * (exit 0), then `after` with the file's path; the folder is removed in any case.
 */
async function withAuditedProxy(during: (px: ProxyProcess, path: string, dir: string) => Promise<void>, after: (path: string) => void): Promise<void> {
  const dir = tempDir();
  try {
    const path = join(dir, "audit.log");
    const px = await startProxy(auditedProxyYaml(path));
    try {
      await during(px, path, dir);
    } finally {
      expect(await px.stop()).toBe(0);
    }
    after(path);
  } finally {
    removeDir(dir);
  }
}
const get = async (px: ProxyProcess, id: string) => (await fetch(px.url("/open/doc.txt"), { headers: { "x-request-id": id } })).text();
const ids = (file: string) => parseLines(readFileSync(file, "utf8")).map((l) => l.request_id);

test("the real process: a file moved away (logrotate's mv) is back at its path after SIGHUP; later events go there", () =>
  withAuditedProxy(
    async (px, path) => {
      await get(px, "first");
      await waitFor(() => existsSync(path) && readFileSync(path, "utf8").includes('"first"'), { timeoutMs: 10_000, message: "the first line" });
      renameSync(path, `${path}.1`);
      px.signal("SIGHUP");
      await waitFor(() => existsSync(path), { timeoutMs: 5000, message: "the audit file reopened at its path" });
      await get(px, "second");
    },
    (path) => {
      expect(ids(`${path}.1`)).toEqual(["first"]);
      expect(ids(path)).toEqual(["second"]);
    },
  ), 20_000);

test("the real process: a reload that writes audit.path another way (relative to the config's folder) is no change: it applies", () =>
  withAuditedProxy(
    async (px, _path, dir) => {
      const from = px.logs().length;
      // (it was refused: "the audit section cannot change on reload", comparing the paths as written)
      px.writeConfig(auditedProxyYaml(join(relative(dirname(px.configPath), dir), ".", "audit.log")).replace("buckets:\n", "logging: { level: info }\nbuckets:\n"));
      px.signal("SIGHUP");
      const line = await waitFor(() => px.logs().slice(from).find((l) => l.msg === "config reloaded" || l.msg === "config reload failed; the previous config keeps serving"));
      expect([line.msg, line.error]).toEqual(["config reloaded", undefined]);
      await get(px, "after");
    },
    (path) => expect(ids(path)).toEqual(["after"]),
  ), 20_000);

test("the real process: lines reach the file within ~1 s, and SIGTERM flushes what is still queued", () =>
  withAuditedProxy(
    async (px, path) => {
      await get(px, "first");
      const t0 = performance.now();
      await waitFor(() => existsSync(path) && readFileSync(path, "utf8").includes('"first"'), { timeoutMs: 3000, intervalMs: 25 });
      expect(performance.now() - t0).toBeLessThan(2500);
      for (let i = 0; i < 3; i++) await get(px, `last${i}`);
    },
    (path) => expect(ids(path)).toEqual(["first", "last0", "last1", "last2"]),
  ), 20_000);
