/**
 * The audit trail when the disk says no, and at shutdown:
 * - a read-only folder: requests are served as usual (and promptly), failures are counted per
 *   attempt and logged once; once the folder is writable again the queued lines are written;
 * - the real process: the timer flushes within about a second, and SIGTERM writes what is queued.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { S3Fixture } from "../fixtures/s3.ts";
import { startProxy } from "../e2e/harness.ts";
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

test("the real process: lines reach the file within ~1 s, and SIGTERM flushes what is still queued", async () => {
  const dir = tempDir();
  try {
    const path = join(dir, "audit.log");
    const px = await startProxy(
      `server: { address: 127.0.0.1, port: 0 }\naudit: { enabled: true, path: "${path}" }\nbuckets:\n` +
        `  - name: open\n    path_prefix: /open\n    s3: { bucket: data, endpoint: "${s3.endpoint}", access_key: "AKIDUPSTREAMREAD", secret_key: "upstream-secret-key-0123456789" }\n`,
    );
    try {
      await (await fetch(px.url("/open/doc.txt"), { headers: { "x-request-id": "first" } })).text();
      const t0 = performance.now();
      await waitFor(() => existsSync(path) && readFileSync(path, "utf8").includes('"first"'), { timeoutMs: 3000, intervalMs: 25 });
      expect(performance.now() - t0).toBeLessThan(2500);
      for (let i = 0; i < 3; i++) await (await fetch(px.url("/open/doc.txt"), { headers: { "x-request-id": `last${i}` } })).text();
    } finally {
      expect(await px.stop()).toBe(0);
    }
    const ids = parseLines(readFileSync(path, "utf8")).map((l) => l.request_id);
    expect(ids).toEqual(["first", "last0", "last1", "last2"]);
  } finally {
    removeDir(dir);
  }
}, 20_000);
