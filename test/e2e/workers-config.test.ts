/**
 * server.workers: 2, where a child's config comes from: the primary is the only process that reads
 * the config file. A child gets the exact text the primary validated (at spawn, and with every
 * reload), so the file on disk changing between the primary's read and a child's start or reload
 * can never make the processes of one generation serve different configs:
 * - a child restarted after a crash serves the primary's current config and generation, not the
 *   file as it is now (edited but not reloaded), and not an invalid file (no crash loop);
 * - a child that cannot apply what the primary sent (a PEM file the config names, relative to the
 *   config file's folder, gone since the primary validated it) waits for the primary's next
 *   config instead of exiting over and over;
 * - a reload whose file is replaced right after the primary read it leaves every process on what
 *   the primary read (the config path is a named pipe here: whoever opens it after the primary
 *   gets another config, so a second reader shows deterministically).
 */
import { generateKeyPairSync } from "node:crypto";
import { closeSync, constants, mkdtempSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(60_000);

let s3: S3Fixture;

const config = (names: string[]) =>
  // (logging at debug: servedConfigs tells the workers apart by the access lines of 200 /ready answers, at debug)
  `server: { address: 127.0.0.1, port: 0, workers: 2 }\nlogging: { level: debug }\nbuckets:\n` +
  names.map((n) => `  - name: ${n}\n    path_prefix: /${n}\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n`).join("");

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true }], credentials: [] });
  await s3.put("data", "obj.txt", "shared body", { contentType: "text/plain" });
});
afterAll(async () => {
  await s3?.stop();
});

async function startGroup(names: string[]): Promise<{ px: ProxyProcess; pids: number[] }> {
  const px = await startProxy(config(names));
  const listening = await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "listening" && l.worker === w)));
  return { px, pids: listening.map((l) => Number(l.pid)) };
}

/** Kills the child with SIGKILL and waits until its replacement listens. */
async function restartChild(px: ProxyProcess, pid: number): Promise<Record<string, unknown>> {
  process.kill(pid, "SIGKILL");
  return px.waitForLog((l) => l.msg === "listening" && l.worker === 1 && Number(l.pid) !== pid, 20_000);
}

/**
 * What every process serves: /ready (its generation and bucket names) over fresh connections
 * (SO_REUSEPORT spreads them over both processes) until each process has answered at least
 * `perWorker` of them since log line `since` (the access log names the process). Returns the
 * distinct answers.
 */
async function servedConfigs(px: ProxyProcess, since: Record<string, unknown>, perWorker = 3): Promise<string[]> {
  const seen = new Set<string>();
  const answered = (w: number) =>
    px
      .logs()
      .slice(px.logs().indexOf(since))
      .filter((l) => l.msg === "request" && l.path === "/ready" && l.worker === w).length;
  await waitFor(
    async () => {
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          const res = await fetch(px.url("/ready"), { headers: { connection: "close" } });
          const body = (await res.json()) as { generation: number; buckets: Record<string, unknown> };
          seen.add(JSON.stringify({ generation: body.generation, buckets: Object.keys(body.buckets).sort() }));
        }),
      );
      return answered(0) >= perWorker && answered(1) >= perWorker;
    },
    { timeoutMs: 20_000, intervalMs: 0, message: () => `both workers to answer /ready (worker 0: ${answered(0)}, worker 1: ${answered(1)})` },
  );
  return [...seen];
}

const served = (generation: number, buckets: string[]) => JSON.stringify({ generation, buckets: [...buckets].sort() });

test("a child restarted after a crash serves the primary's config and generation, not the file edited since (and not reloaded)", async () => {
  const group = await startGroup(["one"]);
  await using px = group.px;
  // One reload first: the restarted child must also come back on the primary's generation (2), not 1.
  px.writeConfig(config(["one", "two"]));
  px.signal("SIGHUP");
  await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "config reloaded" && l.worker === w && l.generation === 2)));

  // Edited on disk, not reloaded: nobody serves it until a reload.
  px.writeConfig(config(["one", "two", "three"]));
  const restarted = await restartChild(px, group.pids[1]);
  expect(await servedConfigs(px, restarted)).toEqual([served(2, ["one", "two"])]);
  // A bucket only the file has: 404 from every process, over many connections.
  const statuses = await Promise.all(Array.from({ length: 16 }, async () => (await fetch(px.url("/three/obj.txt"), { headers: { connection: "close" } })).status));
  expect(new Set(statuses)).toEqual(new Set([404]));

  // The next reload brings both to the file's config, together.
  px.signal("SIGHUP");
  const lines = await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "config reloaded" && l.worker === w && l.generation === 3)));
  for (const l of lines) expect(l).toMatchObject({ buckets: 3 });
  expect(await px.stop()).toBe(0);
});

test("a child restarted while the file on disk is invalid starts on the primary's config: no crash loop", async () => {
  const group = await startGroup(["one"]);
  await using px = group.px;
  px.writeConfig("server: { port: [not, a, port] }\nbuckets: nope\n");
  const restarted = await restartChild(px, group.pids[1]);
  expect(await servedConfigs(px, restarted)).toEqual([served(1, ["one"])]);
  // Restarted once (the kill), and the replacement stays up.
  expect(px.logs().filter((l) => l.msg === "worker exited unexpectedly; restarting").length).toBe(1);
  const res = await fetch(px.url("/one/obj.txt"), { headers: { connection: "close" } });
  expect(res.status).toBe(200);
  // A reload of the invalid file: nobody changes.
  px.signal("SIGHUP");
  await px.waitForLog((l) => l.msg === "config reload failed; the previous config keeps serving" && l.worker === 0);
  expect(await servedConfigs(px, px.logs().at(-1)!)).toEqual([served(1, ["one"])]);
  expect(px.logs().filter((l) => l.msg === "worker exited unexpectedly; restarting").length).toBe(1);
  expect(await px.stop()).toBe(0);
});

test("a reload whose file changes right after the primary read it: every process runs what the primary read", async () => {
  const group = await startGroup(["one"]);
  await using px = group.px;
  // The config path becomes a named pipe: the first reader (the primary, reloading) gets three
  // buckets, any later reader two.
  const fifo = join(px.dir, "config.fifo");
  const mk = Bun.spawnSync(["mkfifo", fifo]);
  expect(mk.exitCode).toBe(0);
  renameSync(fifo, px.configPath);
  const first = config(["one", "two", "three"]);
  const later = config(["one", "two"]);
  let readers = 0;
  let feeding = true;
  const mark = px.logs().length;
  const feeder = (async () => {
    while (feeding) {
      let fd: number;
      try {
        // Non-blocking: fails (ENXIO) until a process has the pipe open for reading.
        fd = openSync(px.configPath, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch {
        await Bun.sleep(2); // polling for a reader of the pipe
        continue;
      }
      const firstReader = readers++ === 0;
      try {
        writeSync(fd, firstReader ? first : later);
      } finally {
        closeSync(fd);
      }
      // The next open must not reach the same reader (it would read both texts as one file): after
      // the first, wait until the primary has read it to the end and acted on it.
      if (firstReader) await px.waitForLog((l) => l.worker === 0 && (l.msg === "config reloaded" || String(l.msg).startsWith("config reload failed")));
      else await Bun.sleep(20); // lets a later reader see end-of-file before the next open
    }
  })();
  try {
    px.signal("SIGHUP");
    const primary = await px.waitForLog((l) => l.msg === "config reloaded" && l.worker === 0);
    expect(primary).toMatchObject({ generation: 2, buckets: 3 });
    const child = await px.waitForLog((l) => l.msg === "config reloaded" && l.worker === 1);
    expect(child).toMatchObject({ generation: 2, buckets: 3 });
    expect(px.logs().slice(mark).filter((l) => l.msg === "config reload failed; the previous config keeps serving")).toEqual([]);
    expect(await servedConfigs(px, child)).toEqual([served(2, ["one", "two", "three"])]);
    // Only the primary read the file.
    expect(readers).toBe(1);
  } finally {
    feeding = false;
    await feeder;
    rmSync(px.configPath, { force: true });
  }
  expect(await px.stop()).toBe(0);
});

// The last three run at once: each has its own group and mostly waits (a child restarted after
// 1, 2, 4 s; a crash loop's window; a group stopping).
test.concurrent("a restarted child that cannot apply the primary's config (a PEM file it names is gone) waits for the next one: no crash loop", async () => {
  const pem = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }).toString();
  const yaml = config(["one"]).replace("buckets:\n", "jwt: { enabled: true, algorithm: ES256, ecdsa_public_key_path: jwt.pem }\nbuckets:\n");
  const px = await startProxy(yaml, { files: { "jwt.pem": pem } });
  await using _ = px;
  const pids = (await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "listening" && l.worker === w)))).map((l) => Number(l.pid));
  rmSync(join(px.dir, "jwt.pem"));
  process.kill(pids[1], "SIGKILL");
  await waitFor(() => px.output().includes("cannot apply the primary's config (generation 1); waiting for its next one"), { timeoutMs: 15_000, message: () => px.output() });
  // Still waiting 2 s later, not restarted over and over.
  const restarts = () => px.logs().filter((l) => l.msg === "worker exited unexpectedly; restarting").length;
  await Bun.sleep(2000); // the window a crash loop (one restart a second) would show in
  expect(restarts()).toBe(1);
  // The PEM back, a reload: the waiting child starts on the primary's new generation, the PEM resolved in the config file's folder.
  writeFileSync(join(px.dir, "jwt.pem"), pem);
  px.signal("SIGHUP");
  const started = await px.waitForLog((l) => l.msg === "listening" && l.worker === 1 && Number(l.pid) !== pids[1]);
  expect(started.generation).toBe(2);
  expect(await servedConfigs(px, started)).toEqual([served(2, ["one"])]);
  expect(restarts()).toBe(1);
  expect(await px.stop()).toBe(0);
});

test.concurrent("a child that cannot start (its disk cache folder is a file: exit 3) is restarted after 1, 2, 4... s, not every second for ever; the primary keeps serving", async () => {
  // It was respawned once a second as long as the group ran, the error log filling.
  const dc = mkdtempSync(join(tmpdir(), "yata-workers-dc-"));
  writeFileSync(join(dc, "worker-1"), "not a folder");
  const yaml = config(["one"]).replace("buckets:\n", `cache: { enabled: true, cache_layers: [memory, disk], disk: { path: "${dc}", max_disk_size_mb: 10 } }\nbuckets:\n`);
  const px = await startProxy(yaml);
  await using _ = px;
  await using _dc = { [Symbol.asyncDispose]: async () => rmSync(dc, { recursive: true, force: true }) };
  const restarts = () => px.logs().filter((l) => l.msg === "worker exited unexpectedly; restarting");
  await waitFor(() => restarts().length >= 3, { timeoutMs: 30_000, message: () => px.output() });
  expect(restarts().slice(0, 3).map((l) => l.restart_in_ms)).toEqual([1000, 2000, 4000]);
  expect((await fetch(px.url("/one/obj.txt"), { headers: { connection: "close" } })).status).toBe(200);
  expect(await px.stop()).toBe(0);
});

test.concurrent("SIGTERM to the primary while a child is still starting stops the whole group (the child missed the shutdown message and the group never stopped)", async () => {
  for (let round = 0; round < 3; round++) {
    const px = await startProxy(config(["one"]));
    await using _ = px;
    await px.waitForLog((l) => l.msg === "primary started");
    px.signal("SIGTERM");
    const code = await Promise.race([px.exited, new Promise<string>((r) => setTimeout(() => r("still running 15 s after SIGTERM"), 15_000))]);
    expect(`round ${round}: ${code}`).toBe(`round ${round}: 0`);
  }
});
