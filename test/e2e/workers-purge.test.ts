/**
 * server.workers: 2 with a memory and a disk cache: a write, a delete or an admin purge in either
 * process clears the key in both before it is answered (src/workers.ts, "Cache purges"), so no
 * worker serves the old or the deleted object afterwards; a worker restarted after a crash gets
 * the purges its slot missed meanwhile (its disk folder outlived it). Which worker served a
 * request is read from its access line (`worker`); requests go on new connections, which the
 * kernel spreads across both.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nowSec, sign } from "../fixtures/jwt.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { STARTUP_MS, startProxy, type ProxyProcess } from "./harness.ts";

setDefaultTimeout(60_000);

const SECRET = "e2e-workers-purge-hs256-secret-0123456789";
const UP = { accessKeyId: "AKIDWORKERSPURGE", secretAccessKey: "workers-purge-upstream-secret-0123456789" };
let s3: S3Fixture;
let px: ProxyProcess;
/** The disk cache's folder, kept across the groups of the last test. */
let disk: string;

async function startGroup(): Promise<ProxyProcess> {
  const group = await startProxy(
    `server: { address: 127.0.0.1, port: 0, workers: 2 }\n` +
      `jwt: { enabled: true, algorithm: HS256, secret: "${SECRET}", admin_claims: [{ claim: role, operator: equals, value: admin }] }\n` +
      `cache: { enabled: true, cache_layers: [memory, disk], disk: { enabled: true, path: "${disk}", max_disk_size_mb: 64 } }\n` +
      `buckets:\n  - name: rw\n    path_prefix: /rw\n    access: read-write\n    auth: { anonymous_writes: true }\n    cache: { enabled: true, ttl_seconds: 600 }\n` +
      `    s3: { bucket: data, endpoint: "${s3.endpoint}", access_key: "${UP.accessKeyId}", secret_key: "${UP.secretAccessKey}" }\n`,
  );
  await Promise.all([0, 1].map((w) => group.waitForLog((l) => l.msg === "listening" && l.worker === w)));
  return group;
}

beforeAll(async () => {
  disk = mkdtempSync(join(tmpdir(), "yata-workers-purge-"));
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...UP, buckets: ["data"], write: true }] });
  px = await startGroup();
}, STARTUP_MS + 30_000);
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
  rmSync(disk, { recursive: true, force: true });
});

const close = { connection: "close" };
const lines = (path: string) => px.logs().filter((l) => l.msg === "request" && l.path === path && l.method === "GET");

/**
 * GETs `path` on new connections until both workers have answered one since this call began (and,
 * with `hit`, answered it from their cache); every answer must be `expected` ("404" for none).
 */
async function readFromBoth(path: string, expected: string, hit = false): Promise<void> {
  const from = lines(path).length;
  const bodies: string[] = [];
  await waitFor(
    async () => {
      const res = await fetch(px.url(path), { headers: close });
      bodies.push(res.status === 404 ? "404" : await res.text());
      await px.waitForLog(() => lines(path).length >= from + bodies.length);
      const since = lines(path).slice(from).filter((l) => !hit || l.cache === "HIT");
      return new Set(since.map((l) => l.worker)).size === 2;
    },
    { timeoutMs: 30_000, intervalMs: 0, message: () => `both workers to answer ${path} (${bodies.length} requests)` },
  );
  expect(new Set(bodies)).toEqual(new Set([expected]));
}

const diskFiles = (worker: number) => readdirSync(join(disk, `worker-${worker}`, "objects"), { recursive: true }).filter((f) => String(f).endsWith(".obj")).length;

/**
 * Both workers hold `path` (v1, in memory and on disk); worker 1 is then killed, its replacements
 * too, until its slot stays empty for at least 2 s (each quick exit doubles the pause before the
 * next restart: 1 s, then 2 s), and a PUT of v2 made meanwhile: with a single 1 s pause a slow
 * PUT on a loaded machine could land after the replacement had started. Returns the index of the
 * last kill's exit line in the group's log (the replacement's "listening" comes after it).
 */
async function writeWhileWorker1IsDown(path: string, key: string): Promise<number> {
  const files = diskFiles(1);
  await s3.put("data", key, "v1");
  await readFromBoth(path, "v1");
  await waitFor(() => diskFiles(1) > files, { message: () => "worker 1's disk file" });
  const exits = () => px.logs().filter((l) => l.msg === "worker exited unexpectedly; restarting" && l.child === 1 && l.signal === "SIGKILL");
  for (;;) {
    const pid = Number(px.logs().findLast((l) => l.msg === "listening" && l.worker === 1)!.pid);
    const before = exits().length;
    process.kill(pid, "SIGKILL");
    await waitFor(() => exits().length > before, { message: () => "worker 1's exit" });
    const exit = exits().at(-1)!;
    if (Number(exit.restart_in_ms) >= 2000) {
      expect((await fetch(px.url(path), { method: "PUT", body: "v2", headers: close })).status).toBe(200);
      return px.logs().indexOf(exit);
    }
    // (its replacement's line, after this exit: waitForLog searches the whole log, and from the
    // third kill on found an earlier replacement's line at once, whose killed process gave ESRCH)
    const at = px.logs().indexOf(exit);
    await waitFor(() => px.logs().some((l, i) => i > at && l.msg === "listening" && l.worker === 1), { timeoutMs: 20_000, message: "worker 1's replacement" });
  }
}

// (first: worker 1 has just started)
test("a write made while a worker is down: its replacement does not serve the old object from its disk folder", async () => {
  const killed = await writeWhileWorker1IsDown("/rw/r.txt", "r.txt");
  const put = px.logs().findIndex((l) => l.msg === "request" && l.method === "PUT" && l.path === "/rw/r.txt");
  const replacement = () => px.logs().findIndex((l, i) => i > killed && l.msg === "listening" && l.worker === 1);
  // (the replacement starts after a back-off of at least 2 s, then as long as a start takes: a
  // loaded host, two test files at a time beside it, took longer than the default 5 s once)
  await waitFor(() => replacement() >= 0, { timeoutMs: 20_000, message: () => "worker 1's replacement" });
  expect(put).toBeLessThan(replacement());
  await readFromBoth("/rw/r.txt", "v2");
});

test("a PUT and a DELETE through one worker: no worker serves the old or the deleted object", async () => {
  await s3.put("data", "k.txt", "v1");
  await readFromBoth("/rw/k.txt", "v1", true); // both workers hold v1
  expect((await fetch(px.url("/rw/k.txt"), { method: "PUT", body: "v2", headers: close })).status).toBe(200);
  await readFromBoth("/rw/k.txt", "v2");
  await readFromBoth("/rw/k.txt", "v2", true);
  expect((await fetch(px.url("/rw/k.txt"), { method: "DELETE", headers: close })).status).toBe(204);
  await readFromBoth("/rw/k.txt", "404");
});

test("an admin purge (on whichever worker takes it) clears both", async () => {
  const admin = await sign({ sub: "ops", role: "admin", exp: nowSec() + 600 }, { alg: "HS256", key: SECRET });
  for (const version of ["v3", "v4", "v5"]) {
    await readFromBoth("/rw/p.txt", version === "v3" ? "404" : version === "v4" ? "v3" : "v4", version !== "v3");
    await s3.put("data", "p.txt", version); // behind the proxy's back: only a purge makes it seen
    const res = await fetch(px.url("/admin/cache/purge/rw/p.txt"), { method: "POST", headers: { authorization: `Bearer ${admin}`, ...close } });
    expect(res.status).toBe(200);
    // (the count is the answering worker's own: the answer names it)
    const answer = (await res.json()) as { purged: number; worker?: number };
    expect([0, 1]).toContain(answer.worker!);
    await readFromBoth("/rw/p.txt", version);
  }
  const stats = (await (await fetch(px.url("/admin/cache/stats"), { headers: { authorization: `Bearer ${admin}`, ...close } })).json()) as { worker?: number };
  expect([0, 1]).toContain(stats.worker!);
});

test("a write made while a worker is down, then the group restarted before its replacement: no worker serves the old object", async () => {
  expect(await px.stop()).toBe(0);
  px = await startGroup(); // (worker 1 has just started)
  const killed = await writeWhileWorker1IsDown("/rw/s.txt", "s.txt");
  const stopped = px;
  expect(await stopped.stop()).toBe(0);
  expect(stopped.logs().some((l, i) => i > killed && l.msg === "listening" && l.worker === 1)).toBe(false);
  px = await startGroup(); // on the same disk folders
  await readFromBoth("/rw/s.txt", "v2");
}, 180_000); // (two group starts, a worker killed until its restart waits 2 s, a graceful stop and two rounds of reads on both workers: each waits for its condition, and their sum passed 60 s on a loaded host)
