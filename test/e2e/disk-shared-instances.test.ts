/**
 * Proxies (other ports) sharing one disk cache folder, as real processes: each holds
 * instance-<port>.lock while it runs, and a start leaves alone the files of an instance whose lock
 * names a running process. A second start on a running instance's port (a mistake, or an
 * orchestrator starting the new one before the old one is gone) cannot bind and exits 3; before,
 * it had rewritten the lock with its own pid on its way (the cache opens before the listeners
 * bind), so the running proxy's files looked like a stopped instance's to the next start of
 * another proxy on the folder, which deleted them (here: a bucket it does not cache).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { encodeHead, keyHash, newVersion, objectPath } from "../../src/cache/disk-format.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { freePort } from "../fixtures/services.ts";
import { waitFor } from "../helpers/wait.ts";
import { bucketYaml, runCli, startProxy, type ProxyProcess } from "./harness.ts";

setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIASHAREDINSTANCES", secretAccessKey: "shared-instances-secret" };

let s3: S3Fixture;
let dir: string;
const running: ProxyProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "yata-shared-instances-"));
  s3 = await startS3Fixture({ buckets: [{ name: "up-a" }], credentials: [{ ...CREDS, buckets: ["up-a"] }] });
  await s3.put("up-a", "hello.txt", "hello from up-a");
});

afterAll(async () => {
  await Promise.all(running.map((p) => p.stop()));
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const config = (port: number, cached: boolean, folder = "cache") => `server: { address: 127.0.0.1, port: ${port} }
metrics: { enabled: false }
cache:
  enabled: true
  cache_layers: [disk]
  disk: { path: "${join(dir, folder)}", max_disk_size_mb: 64, max_item_size_mb: 16 }
buckets:
${bucketYaml({ name: "other", prefix: "/other", bucket: "up-a", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: `    cache: { enabled: ${cached} }\n` })}`;

/** The object files in the shared folder. */
const objectFiles = () => [...new Bun.Glob("objects/*/*.obj").scanSync(join(dir, "cache"))];

async function get(px: ProxyProcess, path: string) {
  const r = await fetch(px.url(path));
  return { body: await r.text(), cache: r.headers.get("x-cache"), layer: r.headers.get("x-cache-layer") };
}

/** The CLI started on a config (`<name>.yaml`, `config(port, ...args)`) whose port another server holds: it must fail to bind (exit 3). */
async function startOnBusyPort(name: string, ...args: [cached: boolean, folder: string]) {
  const busy = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("taken") });
  try {
    const path = join(dir, `${name}.yaml`);
    writeFileSync(path, config(busy.port!, ...args));
    return await runCli(["--config", path]);
  } finally {
    busy.stop(true);
  }
}

test("a second start on a running proxy's port fails without taking its lock: another proxy started on the folder afterwards keeps the running one's files", async () => {
  const port = freePort();
  const p = await startProxy(config(port, true));
  running.push(p);
  expect(await get(p, "/other/hello.txt")).toEqual({ body: "hello from up-a", cache: "MISS", layer: null });
  await waitFor(() => objectFiles().length === 1, { message: "the disk fill" });
  const lock = join(dir, "cache", `instance-${port}.lock`);
  const held = readFileSync(lock, "utf8");

  // The same config started again: the port is taken.
  const again = join(dir, "again.yaml");
  writeFileSync(again, config(port, true));
  const second = await runCli(["--config", again]);
  expect(second.code).toBe(3);
  expect(second.stdout).toContain("another running process holds this instance's lock");
  expect(readFileSync(lock, "utf8")).toBe(held);

  // Another proxy (another port) on the folder, whose config does not cache the bucket.
  const q = await startProxy(config(0, false));
  running.push(q);
  expect(await q.waitForLog((l) => l.msg === "disk cache index rebuilt")).toMatchObject({ objects: 0, dropped_not_cached: 0 });
  expect(objectFiles().length).toBe(1);
  expect(await get(p, "/other/hello.txt")).toEqual({ body: "hello from up-a", cache: "HIT", layer: "disk" });
});

test("a folder emptied while its proxy runs (rm -rf of its contents) gets the proxy's lock back with its next fill: another proxy started on the folder afterwards took the running one's files for a stopped one's (here: deleted them, a bucket it does not cache)", async () => {
  const port = freePort();
  const p = await startProxy(config(port, true, "emptied"));
  running.push(p);
  const folder = join(dir, "emptied");
  const files = () => [...new Bun.Glob("objects/*/*.obj").scanSync(folder)];
  expect(await get(p, "/other/hello.txt")).toMatchObject({ cache: "MISS" });
  await waitFor(() => files().length === 1, { message: "the disk fill" });
  for (const name of readdirSync(folder)) rmSync(join(folder, name), { recursive: true, force: true });
  // (its file gone: a miss, filled again into the emptied folder)
  expect(await get(p, "/other/hello.txt")).toMatchObject({ cache: "MISS" });
  await waitFor(() => files().length === 1, { message: "the disk fill into the emptied folder" });
  expect(readFileSync(join(folder, `instance-${port}.lock`), "utf8")).toStartWith(`${p.proc.pid} `);

  const q = await startProxy(config(0, false, "emptied"));
  running.push(q);
  expect(await q.waitForLog((l) => l.msg === "disk cache index rebuilt")).toMatchObject({ objects: 0, dropped_not_cached: 0 });
  expect(await get(p, "/other/hello.txt")).toEqual({ body: "hello from up-a", cache: "HIT", layer: "disk" });
  expect(p.logs().filter((l) => String(l.msg).includes("its lock is written again"))).toHaveLength(1);
});

test("a folder emptied while two proxies run on it: the one whose fill lands in the folders the other made again (its rename found nothing gone) gets its lock back too; without it, another proxy started on the folder deleted that one's files", async () => {
  const folder = join(dir, "emptied-shared");
  const [port1, port2] = [freePort(), freePort()];
  const p1 = await startProxy(config(port1, true, "emptied-shared"));
  running.push(p1);
  const p2 = await startProxy(config(port2, true, "emptied-shared"));
  running.push(p2);
  const files = () => [...new Bun.Glob("objects/*/*.obj").scanSync(folder)];
  for (const p of [p1, p2]) expect(await get(p, "/other/hello.txt")).toMatchObject({ cache: "MISS" });
  await waitFor(() => files().length === 2, { message: "both disk fills" });
  for (const name of readdirSync(folder)) rmSync(join(folder, name), { recursive: true, force: true });
  // p1's fill makes objects/<xx>/ again (and writes its lock); p2's then finds it there
  expect(await get(p1, "/other/hello.txt")).toMatchObject({ cache: "MISS" });
  await waitFor(() => files().length === 1, { message: "p1's fill into the emptied folder" });
  expect(await get(p2, "/other/hello.txt")).toMatchObject({ cache: "MISS" });
  await waitFor(() => files().length === 2, { message: "p2's fill into the emptied folder" });
  const locks = () => readdirSync(folder).filter((n) => n.endsWith(".lock")).sort();
  // (a lock is made, then written: read as soon as it was there, p2's was once found empty)
  const p2Lock = () => (locks().includes(`instance-${port2}.lock`) ? readFileSync(join(folder, `instance-${port2}.lock`), "utf8") : "");
  await waitFor(() => locks().length === 2 && p2Lock().startsWith(`${p2.proc.pid} `), { message: () => `both locks back, p2's naming it (${locks().join(", ")}; p2's: ${JSON.stringify(p2Lock())})` });

  const q = await startProxy(config(0, false, "emptied-shared"));
  running.push(q);
  expect(await q.waitForLog((l) => l.msg === "disk cache index rebuilt")).toMatchObject({ dropped_not_cached: 0 });
  expect(await get(p2, "/other/hello.txt")).toEqual({ body: "hello from up-a", cache: "HIT", layer: "disk" });
});

test("a start that fails to bind (its port in use) beside a running proxy leaves the folder as it found it: it left its lock, and wrote instances-shared, never removed, after which every purge scanned the folder", async () => {
  const p = await startProxy(config(0, true, "alone"));
  running.push(p);
  await p.waitForLog((l) => l.msg === "disk cache index rebuilt");
  const folder = () => readdirSync(join(dir, "alone")).sort();
  const before = folder();
  const r = await startOnBusyPort("busy", true, "alone");
  expect(r.code).toBe(3);
  expect(r.stderr).toContain(`is already in use`);
  expect(folder()).toEqual(before);
});

test("a start that fails to bind, with a config that does not cache the bucket, deletes none of the files of the folder's stopped proxy (its index rebuild deleted them before the bind failed)", async () => {
  const p = await startProxy(config(0, true, "mistaken"));
  expect(await get(p, "/other/hello.txt")).toMatchObject({ cache: "MISS" });
  const files = () => [...new Bun.Glob("objects/*/*.obj").scanSync(join(dir, "mistaken"))];
  await waitFor(() => files().length === 1, { message: "the disk fill" });
  await p.stop();
  const r = await startOnBusyPort("mistaken", false, "mistaken");
  expect(r.code).toBe(3);
  expect(files()).toHaveLength(1);
});

test("a start that fails to bind exits at once, its lock removed: it waited for the disk index rebuild first (a folder of 40,000 files: 11 s, where it took 0.6 s)", async () => {
  // 4,000 files an earlier release wrote (no store stamp): the rebuild drops them all, so a start
  // that waited for it left none, one that exits at once (before the rebuild got far) leaves most
  const folder = join(dir, "large");
  const now = Date.now();
  for (let i = 0; i < 4000; i++) {
    const key = `other/k${i}`;
    const file = join(folder, objectPath(keyHash(key), newVersion()));
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, Buffer.concat([encodeHead({ key, headers: { "content-length": "1" }, storedAt: now, expiresAt: now + 3_600_000, size: 1, date: now }), Buffer.from("x")]));
  }
  const r = await startOnBusyPort("large", true, "large");
  expect(r.code).toBe(3);
  const left = readdirSync(join(folder, "objects"), { recursive: true }).filter((n) => String(n).endsWith(".obj")).length;
  expect({ waitedForTheRebuild: left === 0, lock: readdirSync(folder).filter((n) => n.endsWith(".lock")) }).toEqual({ waitedForTheRebuild: false, lock: [] });
});
