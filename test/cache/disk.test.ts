/**
 * The disk layer alone: atomic writes, the index rebuilt at start, a missing or truncated file is
 * a miss (never wrong bytes), LRU by bytes, revalidation in place, purges racing writes.
 */
import { afterAll, describe, expect, setSystemTime, test, setDefaultTimeout } from "bun:test";
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, statSync, symlinkSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiskLayer, describeFsError, diskRoomWarning, onDisk } from "../../src/cache/disk.ts";
import { buildLayers, retireOtherDiskLayouts } from "../../src/cache/config.ts";
import { readObjectFile } from "../../src/cache/disk-scan.ts";
import { CacheSchema } from "../../src/config/schema.ts";
import { bodyIntact, HEAD_BYTES, keyHash } from "../../src/cache/disk-format.ts";
import { isFileBody, type CachedObject } from "../../src/cache/types.ts";
import { waitFor } from "../helpers/wait.ts";
import { bytesOf, object } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const root = mkdtempSync(join(tmpdir(), "yata-disk-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => join(root, `d${++n}`);

const NOW = 1_700_000_000_000;
const headersOf = (etag = '"e1"') => ({ etag, "content-type": "application/pdf", "last-modified": "Wed, 21 Oct 2015 07:28:00 GMT" });
/** A streaming write's metadata: `size` bytes under `key`, fresh for a minute. */
const writerMeta = (key: string, size: number) => ({ key, headers: { ...headersOf(), "content-length": String(size) }, storedAt: NOW, expiresAt: NOW + 60_000, size });
const obj = (key: string, size: number, etag?: string, ttl = 60) => object(key, size, headersOf(etag), NOW, ttl);

async function open(dir: string, maxBytes = 64 << 20, maxItemBytes = 16 << 20): Promise<DiskLayer> {
  const d = new DiskLayer({ dir, maxBytes, maxItemBytes });
  await d.ready;
  return d;
}

/** The object files under dir/objects. */
function files(dir: string): string[] {
  const out: string[] = [];
  const base = join(dir, "objects");
  if (!existsSync(base)) return out;
  for (const sub of readdirSync(base)) for (const f of readdirSync(join(base, sub))) out.push(join(base, sub, f));
  return out;
}

async function bodyOf(o: CachedObject | undefined): Promise<Uint8Array> {
  expect(o).toBeDefined();
  return new Uint8Array(await o!.body.arrayBuffer());
}

describe("store and find", () => {
  test("an object comes back from its file: same bytes, headers and times, a file-backed body", async () => {
    const d = await open(freshDir());
    await d.put(obj("b/a.pdf", 100_000));
    const got = await d.get("b/a.pdf");
    expect(got).toMatchObject({ key: "b/a.pdf", size: 100_000, storedAt: NOW, expiresAt: NOW + 60_000, source: "disk" });
    expect(got!.headers).toEqual({ ...headersOf(), "content-length": "100000" });
    expect(isFileBody(got!.body)).toBe(true);
    expect(got!.body.size).toBe(100_000);
    expect(await bodyOf(got)).toEqual(bytesOf(100_000));
    expect(await d.get("b/other")).toBeUndefined();
    expect(d.stats()).toMatchObject({ items: 1, buckets: { b: { items: 1 } } });
    expect(d.stats().bytes).toBe(onDisk(statSync(files(d.dir)[0]!).size)); // (whole 4 KiB blocks)
  });

  test("the cache folder removed while running (rm -rf): the next fills recreate it and are served from it", async () => {
    const dir = freshDir();
    const d = await open(dir);
    await d.put(obj("b/one", 1000));
    rmSync(dir, { recursive: true, force: true });
    await d.put(obj("b/two", 2000));
    const got = await d.get("b/two");
    expect(await bodyOf(got)).toEqual(bytesOf(2000));
    expect(existsSync(join(dir, "tmp"))).toBe(true);
    expect(d.errors()).toBe(0);
  });

  test("a zero-byte object is an object", async () => {
    const d = await open(freshDir());
    await d.put(obj("b/empty", 0));
    expect((await d.get("b/empty"))!.size).toBe(0);
    expect(await bodyOf(await d.get("b/empty"))).toEqual(new Uint8Array(0));
  });

  test("a new version replaces the old one: one file per key", async () => {
    const d = await open(freshDir());
    await d.put(obj("b/k", 1000, '"v1"'));
    await d.put({ ...obj("b/k", 2000, '"v2"'), storedAt: NOW + 1 });
    expect((await d.get("b/k"))!.headers.etag).toBe('"v2"');
    expect(await bodyOf(await d.get("b/k"))).toEqual(bytesOf(2000));
    expect(files(d.dir)).toHaveLength(1);
    expect(d.stats().items).toBe(1);
  });

  test("an object over the item limit is not stored, and drops the older version", async () => {
    const d = await open(freshDir(), 1 << 20, 10_000);
    await d.put(obj("b/k", 5000));
    await d.put(obj("b/k", 20_000));
    expect(await d.get("b/k")).toBeUndefined();
    expect(files(d.dir)).toHaveLength(0);
    expect(d.accepts(10_000)).toBe(true);
    expect(d.accepts(10_001)).toBe(false);
  });
});

/**
 * Runs `fn` with a disk layer over a fresh tmpfs of `size` (a small volume that fills up; mounting
 * needs root), then closes the layer and unmounts. `open` makes the layer from the mount point.
 */
async function onTmpfs(size: string, open: (dir: string) => DiskLayer, fn: (d: DiskLayer, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "yata-disk-tmpfs-"));
  const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  expect(mounted.exitCode, mounted.stderr.toString()).toBe(0);
  let d: DiskLayer | undefined;
  try {
    d = open(dir);
    await d.ready;
    await fn(d, dir);
  } finally {
    await d?.close();
    Bun.spawnSync(["umount", dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("two writes of one key", () => {
  test("a lookup under way while a later write replaces the key's file finds the new version, never a miss (a second fill of the key made it a MISS meanwhile)", async () => {
    const dir = freshDir();
    const d1 = await open(dir);
    await d1.put(obj("b/k", 1000, '"old"'));
    await d1.close();
    const d = await open(dir);
    // (restored: its first lookup checks its CRC, here held until the write below is in place)
    const old = (d as unknown as { lru: { peek(k: string): { unchecked: boolean; checking?: Promise<string> } } }).lru.peek("b/k");
    await waitFor(() => !old.unchecked, { message: "the check made at start" });
    const checked = Promise.withResolvers<string>();
    old.unchecked = true;
    old.checking = checked.promise;
    const w = d.openWriter({ ...writerMeta("b/k", 10), headers: { ...headersOf('"new"'), "content-length": "10" } })!;
    await w.write(bytesOf(10));
    const lookup = d.get("b/k");
    expect(await w.commit()).toBe(true);
    checked.resolve("intact");
    const got = await lookup;
    expect(got?.headers.etag).toBe('"new"');
    expect(await bodyOf(got)).toEqual(bytesOf(10));
    await d.close();
  });
});

describe("a file system smaller than max_disk_size_mb", () => {
  // The disk filled up long before max_disk_size_mb (a small volume, or one shared with other
  // data): every later fill failed with ENOSPC and nothing new was cached until an operator freed
  // room. A tmpfs of 6 MiB stands for the full volume (mounting needs root).
  test.skipIf(process.getuid?.() !== 0)("ENOSPC evicts the least recently used files: new objects are cached again, no temporary file is left", async () => {
    const warnings: string[] = [];
    const log = { info() {}, warn: (msg: string) => void warnings.push(msg) };
    await onTmpfs("6m", (dir) => new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 2 << 20, log }), async (d, dir) => {
      const MiB = 1 << 20;
      for (let i = 0; i < 14; i++) await d.put(obj(`b/k${i}`, MiB));
      // the newest objects are cached and whole; the oldest made room for them
      for (const k of ["b/k12", "b/k13"]) expect([k, (await bodyOf(await d.get(k))).byteLength]).toEqual([k, MiB]);
      expect(await d.get("b/k0")).toBeUndefined();
      expect(d.stats().evictions).toBeGreaterThan(0);
      expect(warnings).toContain("disk cache: the file system is full; evicting least recently used objects");
      expect(readdirSync(join(dir, "tmp"))).toEqual([]);
      // and the start said so: 64 MiB configured on a 6 MiB volume
      expect(warnings[0]).toBe("disk cache: max_disk_size_mb is larger than the file system holding the folder; objects are evicted when it fills");
    });
  });
});

describe("disk errors in the log", () => {
  // One `disk cache error` line per 30 s in all: a folder made read-only after it filled up logged
  // ENOSPC, and the EROFS every fill then failed with went unsaid for up to 30 s.
  test.skipIf(process.getuid?.() !== 0)("another error than the one just logged has its own line at once; the same one again waits", async () => {
    const errors: unknown[] = [];
    const log = { info() {}, warn: (msg: string, f?: Record<string, unknown>) => void (msg === "disk cache error" && errors.push(f?.error)) };
    await onTmpfs("2m", (dir) => new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 4 << 20, log }), async (d, dir) => {
      await d.put(obj("b/big", 3 << 20)); // larger than the file system
      await d.put(obj("b/big2", 3 << 20));
      expect(errors).toEqual(["ENOSPC"]);
      expect(Bun.spawnSync(["mount", "-o", "remount,ro", dir]).exitCode).toBe(0);
      await d.put(obj("b/small", 1000));
      await d.put(obj("b/small2", 1000));
      expect(errors).toEqual(["ENOSPC", "EROFS"]);
      expect(Bun.spawnSync(["mount", "-o", "remount,rw", dir]).exitCode).toBe(0);
    });
  });
});

describe("max_disk_size_mb larger than the file system, shared by worker processes", () => {
  // Each of N workers gets max_disk_size_mb / N (and its own folder on the same file system): the
  // start-up check compared that part with the file system, so 64 MiB over 4 workers on a 20 MiB
  // volume (16 MiB each) was not said, though the workers together fill it.
  test.skipIf(process.getuid?.() !== 0)("is logged at start when the workers' parts together exceed it", async () => {
    const warnings: string[] = [];
    const log = { info() {}, warn: (m: string) => void warnings.push(m) };
    await onTmpfs("20m", (dir) => new DiskLayer({ dir: join(dir, "worker-0"), maxBytes: 16 << 20, maxItemBytes: 1 << 20, share: 4, instance: "w0", log }), async () => {
      expect(warnings).toContain("disk cache: max_disk_size_mb is larger than the file system holding the folder; objects are evicted when it fills");
    });
  });
});

describe("max_disk_size_mb larger than the free space on the file system", () => {
  // Only a size over the file system's whole size was said (at start; --check said nothing of
  // space): a 200 GB cache on a 252 GB disk with 70 GB free started silently, then filled the
  // disk for its other users. Said once the index is rebuilt (the cache's own files there count as room).
  const MiB = 1 << 20;
  const volume = () => {
    const fs = statfsSync(root);
    return { total: fs.blocks * fs.frsize, free: fs.bavail * fs.bsize };
  };
  // (a file system whose free space is its whole size, an empty tmpfs, has no size between them)
  test.skipIf(volume().total - volume().free < 64 * MiB)("is a warning at start, not a refusal: the layer starts and caches", async () => {
    const { total, free } = volume();
    // (between the free space and the whole size: the root's reserved blocks alone keep them apart on ext4)
    const maxBytes = Math.floor((free + total) / 2);
    const warnings: string[] = [];
    const dir = freshDir();
    const d = new DiskLayer({ dir, maxBytes, maxItemBytes: 1 << 20, log: { info() {}, warn: (m: string) => void warnings.push(m) } });
    await d.ready;
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`^cache\\.disk: max_disk_size_mb \\(${Math.round(maxBytes / MiB)} MiB\\) is more than the file system holding ${dir} has free \\(\\d+ MiB\\): the cache fills it, then evicts its least recently used objects and holds less than configured, and the file system's other users find it full; free some space, lower max_disk_size_mb, or set a folder on another file system$`));
    await d.put(obj("b/k", 10));
    expect(await bodyOf(await d.get("b/k"))).toEqual(bytesOf(10));
    await d.close();
    // room enough: nothing said
    warnings.length = 0;
    const small = new DiskLayer({ dir: freshDir(), maxBytes: 64 * MiB, maxItemBytes: 1 << 20, log: { info() {}, warn: (m: string) => void warnings.push(m) } });
    await small.ready;
    await small.close();
    expect(warnings).toEqual([]);
  });

  test("what the cache's files already take there counts as room (a full cache restarting is no warning); a folder not made yet is looked at through its parent", () => {
    const { free } = volume();
    const dir = join(freshDir(), "not", "made");
    const configured = free + 512 * MiB;
    expect(diskRoomWarning(dir, configured, () => 1024 * MiB)).toBeUndefined();
    expect(diskRoomWarning(dir, configured, () => 0)).toStartWith(`cache.disk: max_disk_size_mb (${Math.round(configured / MiB)} MiB) is more than the file system holding ${dir} has free (`);
    expect(diskRoomWarning(dir, configured, () => 256 * MiB)).toContain(", besides the 256 MiB the cache's files take there): ");
    // (the folder is not walked while the free space is enough)
    expect(diskRoomWarning(dir, 1, () => { throw new Error("walked"); })).toBeUndefined();
  });
});

describe("max_disk_size_mb against the file system, with server.workers", () => {
  // Each worker's layer said the group's warning: with server.workers N, N identical lines.
  const MiB = 1 << 20;
  const volume = () => {
    const fs = statfsSync(root);
    return { total: fs.blocks * fs.frsize, free: fs.bavail * fs.bsize };
  };
  /** The warnings of a group of 3 processes' disk layers (buildLayers, workers 0-2) for `mb`. */
  async function groupWarnings(mb: number): Promise<string[]> {
    const warnings: string[] = [];
    const log = { info() {}, warn: (m: string) => void warnings.push(m) };
    const cfg = CacheSchema.parse({ enabled: true, cache_layers: ["disk"], disk: { path: freshDir(), max_disk_size_mb: mb, max_item_size_mb: 1 } });
    const layers = [0, 1, 2].flatMap((worker) => buildLayers(cfg, { log, share: 3, worker, instance: "8080" })) as DiskLayer[];
    try {
      await Promise.all(layers.map((l) => l.ready));
    } finally {
      await Promise.all(layers.map((l) => l.close()));
    }
    return warnings;
  }

  test("larger than the file system: said once for the group (its worker 0), not by each worker", async () => {
    const warnings = await groupWarnings(Math.ceil((volume().total * 2) / MiB));
    expect(warnings).toEqual(["disk cache: max_disk_size_mb is larger than the file system holding the folder; objects are evicted when it fills"]);
  });

  test.skipIf(volume().total - volume().free < 64 * MiB)("more than the file system has free: said once for the group (its worker 0), not by each worker", async () => {
    const { total, free } = volume();
    const warnings = await groupWarnings(Math.floor((free + total) / 2 / MiB));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("worker-0 has free (");
  });
});

describe("a fill that fails on a full file system", () => {
  // The failed fill's room (its full size, set aside when it began) was still counted when the
  // layer evicted down to 90 %: one large fill failing emptied the cache, though its room was
  // given back a moment later.
  test.skipIf(process.getuid?.() !== 0)("evicts down to 90 % of what the layer holds, not the failed write's size more", async () => {
    await onTmpfs("6m", (dir) => new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 8 << 20 }), async (d) => {
      const MiB = 1 << 20;
      for (let i = 0; i < 5; i++) await d.put(obj(`b/k${i}`, MiB));
      expect(d.stats().items).toBe(5);
      await d.put(obj("b/big", 4 * MiB)); // ENOSPC part-way: about 1 MiB is free
      await waitFor(() => d.stats().evictions > 0, { message: "the layer to evict" });
      // 90 % of five 1 MiB files: the oldest goes, the other four stay
      expect(d.stats().evictions).toBe(1);
      for (const k of ["b/k1", "b/k2", "b/k3", "b/k4"]) expect([k, (await bodyOf(await d.get(k))).byteLength]).toEqual([k, MiB]);
    });
  });

  // The lower cap held its minute whatever happened on the volume meanwhile: once another writer's
  // file that had filled it was gone, an object larger than the cap was still not cached (a
  // BYPASS at every request for up to a minute) though the volume had room for it again.
  test.skipIf(process.getuid?.() !== 0)("room freed on the volume during the lower cap's minute: an object larger than the cap that fits again is cached", async () => {
    await onTmpfs("6m", (dir) => new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 8 << 20 }), async (d, dir) => {
      const MiB = 1 << 20;
      writeFileSync(join(dir, "filler"), new Uint8Array(5 * MiB)); // another writer's file: about 1 MiB left
      await d.put(obj("b/big", 2 * MiB)); // ENOSPC part-way: the cap falls to under 1 MiB for a minute
      expect(await d.get("b/big")).toBeUndefined();
      unlinkSync(join(dir, "filler")); // the other writer's file goes: 6 MiB free again
      await d.put(obj("b/big", 2 * MiB));
      expect((await bodyOf(await d.get("b/big"))).byteLength).toBe(2 * MiB);
    });
  });

  // The cap was 90 % of what the layer held: an object larger than the volume's free room, on an
  // empty layer, capped it at nothing, and nothing was cached for a minute.
  test("an object too large for the file system's free room does not stop an empty layer caching the objects that fit", async () => {
    const d = await open(freshDir());
    try {
      const w = d.openWriter({ key: "b/huge", headers: headersOf(), storedAt: NOW, expiresAt: NOW + 60_000, size: 12 << 20 })!;
      expect(w).toBeDefined();
      // the volume full part-way through (this folder's file system has room to spare)
      d.failed(Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" }), "write", w as never);
      await (w as unknown as { abort(): Promise<void> }).abort();
      await d.put(obj("b/small", 1024));
      expect((await bodyOf(await d.get("b/small"))).byteLength).toBe(1024);
    } finally {
      await d.close();
    }
  });
});

describe("the lower cap after a full file system", () => {
  // Its minute was measured on the wall clock: a clock stepped forward (NTP, a resumed VM) ended it
  // at once, and one stepped back an hour held the lower cap for that hour more.
  test("holds its minute on the monotonic clock: a wall clock stepped forward does not end it", async () => {
    const d = await open(freshDir(), 4 << 20, 4 << 20);
    const big = Math.floor(3.8 * (1 << 20));
    try {
      const w = d.openWriter(writerMeta("b/huge", 2 << 20))!;
      d.failed(Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" }), "write", w as never);
      await (w as unknown as { abort(): Promise<void> }).abort();
      // (the cap is 90 % of the configured 4 MiB for the minute: a 3.8 MiB object is not taken)
      await d.put(obj("b/a", big));
      expect(await d.get("b/a")).toBeUndefined();
      setSystemTime(new Date(Date.now() + 120_000));
      await d.put(obj("b/b", big));
      expect(await d.get("b/b")).toBeUndefined();
    } finally {
      setSystemTime();
      await d.close();
    }
  });
});

describe("a cached file this process cannot read", () => {
  // As an unprivileged user (root reads a mode-000 file): a file it cannot open was a HIT whose
  // body Bun.serve failed to open after the head, a 500 for every request of the key until a restart.
  const setpriv = Bun.which("setpriv");
  test.skipIf(process.getuid?.() !== 0 || setpriv === null)("a file made unreadable (chmod 000) is a miss and leaves the index; the next fill is served", async () => {
    const dir = mkdtempSync(join(tmpdir(), "yata-disk-nobody-"));
    try {
      Bun.spawnSync(["chmod", "777", dir]);
      const script = join(dir, "probe.ts");
      writeFileSync(script, `
import { chmodSync } from "node:fs";
import { DiskLayer } from ${JSON.stringify(join(import.meta.dir, "../../src/cache/disk.ts"))};
const d = new DiskLayer({ dir: ${JSON.stringify(join(dir, "cache"))}, maxBytes: 1 << 24, maxItemBytes: 1 << 22 });
await d.ready;
const body = new Blob([new Uint8Array(5000).fill(7)]);
const obj = { key: "b/k", body, headers: { etag: '"e"' }, storedAt: Date.now(), expiresAt: Date.now() + 60000, size: 5000, tpl: undefined, source: "memory" };
await d.put(obj);
const hit = await d.get("b/k");
const file = (hit!.body as any).name as string;
chmodSync(file, 0);
const after = await d.get("b/k");
const items = d.stats().items;
await d.put({ ...obj, storedAt: Date.now() + 1 });
const again = await d.get("b/k");
console.log(JSON.stringify({ hit: hit !== undefined, after: after === undefined ? "miss" : "hit", items, again: again ? (await again.body.bytes()).length : -1 }));
`);
      const p = Bun.spawn([setpriv!, "--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, script], { stdout: "pipe", stderr: "pipe", cwd: dir });
      const [out, err] = [await new Response(p.stdout).text(), await new Response(p.stderr).text()];
      expect(await p.exited, err).toBe(0);
      expect(JSON.parse(out.trim().split("\n").pop()!)).toEqual({ hit: true, after: "miss", items: 0, again: 5000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a file that cannot be deleted", () => {
  test("an eviction or purge whose unlink fails (not ENOENT) is counted as a disk error, not silent; an empty folder made in a file's place (mkdir) goes with its entry, no error (its unlink failed, EISDIR: counted, warned, retried every 5 s and at every start)", async () => {
    const warned: Array<Record<string, unknown>> = [];
    const d = new DiskLayer({ dir: freshDir(), maxBytes: 64 << 20, maxItemBytes: 16 << 20, log: { info() {}, warn: (m: string, f?: Record<string, unknown>) => void (m === "disk cache error" && warned.push(f ?? {})) } });
    await d.ready;
    await d.put(obj("b/one", 1000));
    const emptied = files(d.dir)[0]!;
    rmSync(emptied);
    mkdirSync(emptied);
    const empty = d.errors();
    expect(await d.get("b/one")).toBeUndefined();
    expect([existsSync(emptied), d.errors()]).toEqual([false, empty]);
    await d.put(obj("b/one", 1000));
    const file = files(d.dir)[0]!;
    // A folder (holding a file) in place of the file: unlink fails (EISDIR / EPERM) even as root.
    rmSync(file);
    mkdirSync(file);
    writeFileSync(join(file, "x"), "x");
    const before = d.errors();
    expect(await d.delete("b/one")).toBe(true);
    await waitFor(() => d.errors() > before, { message: "the failed unlink to be counted" });
    // (the warning names the file, relative to the cache folder: it named none)
    expect(warned[0]).toMatchObject({ operation: "unlink", file: file.slice(d.dir.length + 1) });
    // a file already gone is not an error
    await d.put(obj("b/two", 1000));
    rmSync(files(d.dir).find((f) => !f.startsWith(file))!);
    const errors = d.errors();
    await d.delete("b/two");
    expect(d.errors()).toBe(errors);
  });
});

describe("a purged file that cannot be deleted, across a restart", () => {
  // As an unprivileged user (root deletes from a read-only folder): a purge whose unlink failed
  // left the old version's file in place, and the index rebuilt at the next start served it as a
  // HIT (a black-box pass: a write through the proxy while the cache folder was not writable,
  // then a restart with the folder writable again, answered the overwritten object for its TTL).
  const setpriv = Bun.which("setpriv");
  const cases: [string, boolean][] = [
    ["the file is made unreadable as an object: the restarted layer misses it", false],
    // (the file not writable either, as on a file system mounted read-only: it could not be marked,
    // and the restarted layer served it once the folder was writable again)
    ["nor marked (the file read-only too): deleted at close once the folder is writable again; the restarted layer misses it", true],
  ];
  for (const [name, fileReadOnly] of cases) {
    test.skipIf(process.getuid?.() !== 0 || setpriv === null)(name, async () => {
      const dir = mkdtempSync(join(tmpdir(), "yata-disk-nobody-"));
      try {
        Bun.spawnSync(["chmod", "777", dir]);
        const script = join(dir, "probe.ts");
        writeFileSync(script, `
import { chmodSync } from "node:fs";
import { dirname } from "node:path";
import { DiskLayer } from ${JSON.stringify(join(import.meta.dir, "../../src/cache/disk.ts"))};
const dir = ${JSON.stringify(join(dir, "cache"))};
const d = new DiskLayer({ dir, maxBytes: 1 << 24, maxItemBytes: 1 << 22 });
await d.ready;
const body = new Blob([new Uint8Array(5000).fill(7)]);
const obj = { key: "b/k", body, headers: { etag: '"e"', "content-length": "5000" }, storedAt: Date.now(), expiresAt: Date.now() + 60000, size: 5000, tpl: undefined, source: "memory" };
await d.put(obj);
const hit = await d.get("b/k");
const file = (hit!.body as any).name as string;
chmodSync(dirname(file), 0o555); // the folder is not writable: the purge cannot unlink the file
if (${fileReadOnly}) chmodSync(file, 0o444);
const purged = await d.delete("b/k");
const errors = d.errors();
const served = hit ? (await hit.body.bytes()).length : -1; // a response already holding the file still gets its body
chmodSync(dirname(file), 0o755);
await d.close();
const again = new DiskLayer({ dir, maxBytes: 1 << 24, maxItemBytes: 1 << 22 });
await again.ready;
const after = await again.get("b/k");
console.log(JSON.stringify({ purged, errors, served, after: after === undefined ? "miss" : "hit" }));
`);
        const p = Bun.spawn([setpriv!, "--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, script], { stdout: "pipe", stderr: "pipe", cwd: dir });
        const [out, err] = [await new Response(p.stdout).text(), await new Response(p.stderr).text()];
        expect(await p.exited, err).toBe(0);
        expect(JSON.parse(out.trim().split("\n").pop()!)).toEqual({ purged: true, errors: 1, served: 5000, after: "miss" });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe("LRU by bytes", () => {
  test("the least recently used files go first; the total stays under the budget", async () => {
    const one = onDisk(HEAD_BYTES + 200 + 10_000); // about one object's file, in whole blocks
    const d = await open(freshDir(), 3 * one + 100, 20_000);
    for (const k of ["1", "2", "3"]) await d.put(obj(`b/${k}`, 10_000));
    expect(d.stats().items).toBe(3);
    await d.get("b/1"); // 1 is now the most recent
    await d.put(obj("b/4", 10_000));
    expect(d.keys()).toEqual(["b/4", "b/1", "b/3"]);
    expect(d.stats()).toMatchObject({ items: 3, evictions: 1 });
    expect(d.stats().bytes).toBeLessThanOrEqual(3 * one + 100);
    expect(files(d.dir)).toHaveLength(3); // the evicted file is gone from disk too
    const sizes = files(d.dir).reduce((a, f) => a + onDisk(statSync(f).size), 0);
    expect(sizes).toBe(d.stats().bytes);
  });

  test("writes in progress count against the budget: their room is set aside at once (older objects evicted for it), a write with no room left is not cached, and the room comes back when a write ends (six 15 MiB fills took a 40 MiB folder to 78 MiB)", async () => {
    const size = 100_000;
    const one = onDisk(HEAD_BYTES + 200 + size); // about one object's file, in whole blocks: what a write sets aside
    const max = 3 * one + 100;
    const d = await open(freshDir(), max, 200_000);
    for (const k of ["1", "2"]) await d.put(obj(`b/${k}`, size));
    const meta = (key: string) => ({ key, headers: { "content-length": String(size) }, storedAt: NOW, expiresAt: NOW + 60_000, size });
    const onDiskNow = () => [...files(d.dir), ...readdirSync(join(d.dir, "tmp")).map((f) => join(d.dir, "tmp", f))].reduce((a, f) => a + onDisk(statSync(f).size), 0);
    const w1 = d.openWriter(meta("b/w1"))!;
    const w2 = d.openWriter(meta("b/w2"))!;
    expect(d.keys()).toEqual(["b/2"]); // b/1 made room for the two writes
    const w3 = d.openWriter(meta("b/w3"))!;
    expect(d.keys()).toEqual([]);
    expect(d.openWriter(meta("b/w4"))).toBeUndefined(); // no room left: not cached
    for (const w of [w1, w2, w3]) await w.write(bytesOf(size));
    expect(onDiskNow()).toBeLessThanOrEqual(max);
    // (awaited: the file leaves the folder when unlink's syscall ends, before its promise settles
    // and the room comes back; polling the folder raced that on a loaded host)
    await w3.abort();
    expect(readdirSync(join(d.dir, "tmp"))).toHaveLength(2); // the aborted write's file deleted
    const w4 = d.openWriter(meta("b/w4"))!; // its room came back
    await w4.write(bytesOf(size));
    for (const w of [w1, w2, w4]) expect(await w.commit()).toBe(true);
    expect(d.keys().sort()).toEqual(["b/w1", "b/w2", "b/w4"]);
    expect(d.stats().bytes).toBeLessThanOrEqual(max);
    expect(onDiskNow()).toBeLessThanOrEqual(max);
    // and with nothing in progress, a new write evicts the least recently used object for its room
    await d.get("b/w1");
    await d.put(obj("b/5", size));
    expect(d.keys()).toEqual(["b/5", "b/w1", "b/w4"]);
  });

  test("resize evicts down", async () => {
    const d = await open(freshDir());
    for (const k of ["1", "2", "3"]) await d.put(obj(`b/${k}`, 10_000));
    const per = d.stats().bytes / 3;
    d.resize(Math.ceil(per * 1.5));
    expect(d.keys()).toEqual(["b/3"]);
    expect(d.stats().evictions).toBe(2);
  });
});

describe("max_item_size_mb lowered", () => {
  test("a write in progress when max_item_size_mb is lowered below its size is not stored (as resize evicts such objects)", async () => {
    const d = await open(freshDir());
    const meta = writerMeta("b/big", 30_000);
    const w = d.openWriter(meta)!;
    await w.write(bytesOf(30_000).subarray(0, 10_000));
    d.resize(64 << 20, 20_000); // a reload: items of at most 20,000 bytes now
    await w.write(bytesOf(30_000).subarray(10_000));
    expect(await w.commit()).toBe(false);
    expect(await d.get("b/big")).toBeUndefined();
    expect(files(d.dir)).toHaveLength(0);
    expect(readdirSync(join(d.dir, "tmp"))).toEqual([]);
  });

  test("a restart with a lower max_item_size_mb drops the larger objects found on disk", async () => {
    const dir = freshDir();
    const d1 = await open(dir);
    await d1.put(obj("b/big", 30_000));
    await d1.put(obj("b/small", 1_000));
    await d1.close();
    const d2 = await open(dir, 64 << 20, 20_000);
    expect(await d2.get("b/big")).toBeUndefined();
    expect(d2.keys()).toEqual(["b/small"]);
    expect(files(dir)).toHaveLength(1);
  });
});

describe("restart", () => {
  test("a new layer on the same folder rebuilds the index: objects, headers, times, LRU order", async () => {
    const dir = freshDir();
    const d1 = await open(dir);
    await d1.put(obj("b/old", 3000, '"o"'));
    await d1.put(obj("c/new", 4000, '"n"'));
    await d1.close();
    const d2 = await open(dir);
    expect(d2.stats()).toMatchObject({ items: 2, bytes: d1.stats().bytes });
    expect((await d2.get("b/old"))!.headers.etag).toBe('"o"');
    expect(await bodyOf(await d2.get("c/new"))).toEqual(bytesOf(4000));
    expect((await d2.get("c/new"))!.expiresAt).toBe(NOW + 60_000);
  });

  // Files' modification times are whole seconds (DiskWrite.store): the objects written within one
  // second came back in the order of their hashes, and the next eviction took any of them first.
  test("objects written within one second come back least recently written first: the first written is evicted first", async () => {
    const dir = freshDir();
    const d1 = await open(dir);
    const keys = ["b/1", "b/2", "b/3", "b/4", "b/5", "b/6", "b/7", "b/8"];
    // (fetched a millisecond apart: files changed within one tick of a coarse kernel clock have one ctime)
    for (const [i, k] of keys.entries()) await d1.put(object(k, 1000, headersOf(), NOW + i));
    expect(d1.keys()).toEqual([...keys].reverse());
    await d1.close();
    const d2 = await open(dir);
    expect(d2.keys()).toEqual([...keys].reverse());
    await d2.close();
  });

  test("lookups made while the index is rebuilt wait for it", async () => {
    const dir = freshDir();
    const d1 = await open(dir);
    for (let i = 0; i < 50; i++) await d1.put(obj(`b/${i}`, 100));
    const d2 = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 1 << 20 });
    expect((await d2.get("b/49"))?.size).toBe(100); // asked before `ready`
  });

  // A folder of 100,000 objects took 11-20 s to read on a loaded host: every request of a cached
  // bucket waited that long after a restart, while /ready said 200.
  test("but at most lookupWaitMs (default 1 s): past it a lookup is a miss (said once in the log), not held; once rebuilt the key is served", async () => {
    const dir = freshDir();
    const d1 = await open(dir);
    for (let i = 0; i < 50; i++) await d1.put(obj(`b/${i}`, 100));
    const logged: string[] = [];
    const d2 = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 1 << 20, lookupWaitMs: 0, log: { info: (m) => void logged.push(m), warn() {} } });
    expect(await d2.get("b/49")).toBeUndefined(); // asked before `ready`: not waited for
    expect(await d2.get("b/48")).toBeUndefined();
    expect(logged.filter((m) => m.startsWith("disk cache index still being rebuilt"))).toHaveLength(1);
    await d2.ready;
    expect((await d2.get("b/49"))?.size).toBe(100);
    await d2.close();
  });

  test("a truncated, a corrupt and a foreign file are deleted at start, never indexed", async () => {
    const dir = freshDir();
    const d1 = await open(dir);
    await d1.put(obj("b/cut", 5000));
    await d1.put(obj("b/grown", 5000));
    await d1.put(obj("b/good", 5000));
    const byKey = async (k: string) => (await d1.get(k))!.body as unknown as { name: string };
    truncateSync((await byKey("b/cut")).name, HEAD_BYTES + 100 + 2500);
    appendFileSync((await byKey("b/grown")).name, "extra");
    const sub = join(dir, "objects", "ab");
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, "ab" + "0".repeat(30) + ".x1.obj"), "not an object file at all, just bytes");
    const d2 = await open(dir);
    expect(d2.keys()).toEqual(["b/good"]);
    expect(await d2.get("b/cut")).toBeUndefined();
    expect(await d2.get("b/grown")).toBeUndefined();
    expect(files(dir)).toHaveLength(1);
  });

  // The body's CRC-32 left the head out: a byte of the stored headers changed on disk at the same
  // length (bit rot, an edit) was served after a restart as the object's own Content-Type or ETag.
  test("a stored header changed at the same length (Content-Type, ETag) is deleted at start, never served; a revalidated head (times and Date rewritten in place) is kept", async () => {
    const dir = freshDir();
    const d1 = await open(dir);
    for (const k of ["b/type", "b/etag", "b/fresh"]) await d1.put(obj(k, 5000, '"e1"'));
    await d1.put({ ...obj("b/fresh", 5000, '"e1"'), storedAt: NOW + 5000, expiresAt: NOW + 99_000, date: NOW + 4000 }); // refreshed in place
    await waitFor(async () => (await d1.get("b/fresh"))?.expiresAt === NOW + 99_000, { message: "the refresh written" });
    const fileOf = async (k: string) => ((await d1.get(k))!.body as unknown as { name: string }).name;
    const edit = async (k: string, from: string, to: string) => {
      const f = await fileOf(k);
      const bytes = readFileSync(f);
      const at = bytes.indexOf(from);
      expect(at).toBeGreaterThan(0);
      bytes.write(to, at, "latin1");
      writeFileSync(f, bytes);
    };
    await edit("b/type", "application/pdf", "application/pdg");
    await edit("b/etag", '"etag":"\\"e1', '"etag":"\\"e2');
    await d1.close();
    const d2 = await open(dir);
    expect(d2.keys()).toEqual(["b/fresh"]);
    expect(await d2.get("b/type")).toBeUndefined();
    expect(await d2.get("b/etag")).toBeUndefined();
    expect((await d2.get("b/fresh"))!.expiresAt).toBe(NOW + 99_000);
    expect(files(dir)).toHaveLength(1);
    await d2.close();
  });

  test("a file whose stored headers HTTP cannot carry (a character above U+00FF) is deleted at start, never indexed (every hit was a 500)", async () => {
    const dir = freshDir();
    const d1 = await open(dir);
    await d1.put(obj("b/good", 100, '"good"'));
    await d1.put(obj("b/bad", 100, '"abcd"'));
    await d1.close();
    const bad = files(dir).find((f) => readFileSync(f).includes("abcd"))!;
    const bytes = readFileSync(bad);
    bytes.set(Buffer.from("a\u0100b"), bytes.indexOf("abcd")); // 4 bytes in UTF-8 too: the head stays framed
    writeFileSync(bad, bytes);
    const d2 = await open(dir);
    expect(d2.keys()).toEqual(["b/good"]);
    expect(files(dir)).toHaveLength(1);
    await d2.close();
  });

  // A FIFO under objects/ (or a symlink to one) made the rebuild's open() wait for a writer
  // forever: every lookup and purge waits for `ready`, so each cached request was a 504 after
  // request_timeout, a write hung after it was stored, and a stop never finished.
  test.skipIf(process.platform === "win32")("a FIFO, a symlink to one and a folder in place of an object file do not hold the rebuild", async () => {
    const dir = freshDir();
    const d1 = await open(dir);
    await d1.put(obj("b/good", 5000));
    await d1.close();
    const sub = join(dir, "objects", "ab");
    mkdirSync(sub, { recursive: true });
    const fifo = join(sub, "ab" + "1".repeat(30) + ".x1.obj");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const outside = join(root, `fifo-${n}`);
    expect(Bun.spawnSync(["mkfifo", outside]).exitCode).toBe(0);
    symlinkSync(outside, join(sub, "ab" + "2".repeat(30) + ".x1.obj"));
    mkdirSync(join(sub, "ab" + "3".repeat(30) + ".x1.obj"));
    const d2 = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 16 << 20 });
    const done = await Promise.race([d2.ready.then(() => "ready"), Bun.sleep(3000).then(() => "stuck")]);
    expect(done).toBe("ready");
    expect(d2.keys()).toEqual(["b/good"]);
    await d2.close();
  });

  // tmp/ a symbolic link to a folder outside: the rebuild deleted every file in that folder (any
  // name in tmp/ was taken for a crashed write's). objects/<h2> a link to a folder outside: its
  // files with an object's name were indexed and served, or deleted as "not an object".
  test("the rebuild deletes nothing outside the folder through a symbolic link, and indexes nothing through one", async () => {
    const dir = freshDir();
    const d1 = await open(dir);
    await d1.put(obj("b/good", 5000));
    await d1.close();
    const [good] = files(dir);
    const outside = join(root, `outside-${n}`);
    mkdirSync(outside);
    writeFileSync(join(outside, "important.txt"), "keep me");
    const named = join(outside, "cd" + "0".repeat(30) + ".x1.obj");
    writeFileSync(named, "keep me too");
    // a copy of an object file, outside the folder, under a name the layer would index
    const sub = good!.split("/").at(-2)!;
    const copy = join(root, `outside-objects-${n}`);
    mkdirSync(copy);
    writeFileSync(join(copy, good!.split("/").at(-1)!), readFileSync(good!));
    rmSync(join(dir, "objects", sub), { recursive: true });
    symlinkSync(copy, join(dir, "objects", sub));
    symlinkSync(outside, join(dir, "objects", "cd"));
    rmSync(join(dir, "tmp"), { recursive: true });
    symlinkSync(outside, join(dir, "tmp"));
    const d2 = await open(dir);
    expect(readdirSync(outside).sort()).toEqual([named.split("/").at(-1)!, "important.txt"]);
    expect(readdirSync(copy)).toHaveLength(1);
    expect(d2.keys()).toEqual([]);
    expect(await d2.get("b/good")).toBeUndefined();
    // the links under objects/ are gone (not their targets): new objects are written inside the folder
    await d2.put(obj("b/good", 5000));
    expect(readdirSync(copy)).toHaveLength(1);
    expect(files(dir)).toHaveLength(1);
    await d2.close();
  });

  test("a file in place of a folder under objects/ is removed at start: its keys are stored again (every fill failed with ENOTDIR)", async () => {
    const dir = freshDir();
    mkdirSync(join(dir, "objects"), { recursive: true });
    writeFileSync(join(dir, "objects", keyHash("b/a").slice(0, 2)), "not a folder");
    const d = await open(dir);
    await d.put(obj("b/a", 5000));
    expect((await d.get("b/a"))?.size).toBe(5000);
    expect(d.errors()).toBe(0);
    await d.close();
  });

  /**
   * The folder a crash between a write's rename and the unlink of the older version leaves: the
   * file of `older` then, written later, the file of `newer` (written in a folder of its own and
   * moved in: an older file put back, or unlinked under a second name, gets a new ctime).
   */
  async function twoVersions(older: CachedObject, newer: CachedObject): Promise<string> {
    const dir = freshDir();
    const a = await open(dir);
    await a.put(older);
    await a.close();
    await clockTicks(statSync(files(dir)[0]!).ctimeMs);
    const other = freshDir();
    const b = await open(other);
    await b.put(newer);
    await b.close();
    const [file] = files(other);
    renameSync(file!, join(dir, "objects", file!.split("/").at(-2)!, file!.split("/").at(-1)!));
    expect(files(dir)).toHaveLength(2);
    return dir;
  }

  /** Until a file changed now gets a later ctime than `ctimeMs` (a kernel's coarse clock gives one to every change within a tick). */
  const clockTicks = (ctimeMs: number) =>
    waitFor(() => {
      const probe = join(root, "tick");
      writeFileSync(probe, "");
      return statSync(probe).ctimeMs > ctimeMs;
    });

  // The version written last is the newer one, not the one with the later storedAt: an answer that
  // came with Age (a CDN in front) is stored as fetched that long ago, and the older version was
  // kept, the newer deleted (its object served again after the restart).
  test("two versions of one key, the newer fetched with an Age (storedAt earlier than the older's): the one written last is kept", async () => {
    const dir = await twoVersions(obj("b/k", 100, '"old"'), { ...obj("b/k", 200, '"new"'), storedAt: NOW - 3_600_000 });
    const c = await open(dir);
    expect((await c.get("b/k"))!.headers.etag).toBe('"new"');
    expect(files(dir)).toHaveLength(1);
  });

  test("two versions of one key (a crash between rename and unlink): the newer is kept", async () => {
    const dir = await twoVersions(obj("b/k", 100, '"old"'), { ...obj("b/k", 200, '"new"'), storedAt: NOW + 5 });
    const c = await open(dir);
    expect((await c.get("b/k"))!.headers.etag).toBe('"new"');
    expect(files(dir)).toHaveLength(1);
  });
});

describe("restart: the store each file was read from", () => {
  const A = new Map([
    ["b", "store-b-1"],
    ["c", "store-c-1"],
  ]);
  async function openWith(dir: string, stores: ReadonlyMap<string, string>, log?: { info: (m: string, f?: Record<string, unknown>) => void; warn: () => void }): Promise<DiskLayer> {
    const d = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 16 << 20, stores, log });
    await d.ready;
    return d;
  }
  const rebuilt = () => {
    const lines: Record<string, unknown>[] = [];
    return { lines, info: (m: string, f?: Record<string, unknown>) => void (m === "disk cache index rebuilt" && lines.push(f!)), warn: () => {} };
  };

  test("files of a bucket now reading another store, or no longer caching (or gone), are deleted at start; the others are kept", async () => {
    const dir = freshDir();
    const d1 = await openWith(dir, A);
    await d1.put(obj("b/k", 100));
    await d1.put(obj("c/k", 100));
    await d1.put(obj("c/j", 100));
    await d1.close();
    const same = await openWith(dir, A); // the same stores: all kept
    expect(same.keys().sort()).toEqual(["b/k", "c/j", "c/k"]);
    await same.close();
    const log = rebuilt();
    // b reads another store; c does not cache (or is not configured) any more.
    const d2 = await openWith(dir, new Map([["b", "store-b-2"]]), log);
    expect(d2.keys()).toEqual([]);
    expect(await d2.get("b/k")).toBeUndefined();
    expect(files(dir)).toHaveLength(0);
    expect(log.lines[0]).toMatchObject({ objects: 0, dropped_other_store: 1, dropped_not_cached: 2, dropped_unrecorded: 0 });
    // Switched back: nothing comes back.
    const d3 = await openWith(dir, A);
    expect(d3.keys()).toEqual([]);
  });

  test("a file written by an earlier version (no store recorded) is dropped at start: its store cannot be known", async () => {
    const dir = freshDir();
    const legacy = await open(dir); // no stores: writes no stamp, as a version before them did
    await legacy.put(obj("b/old", 100));
    await legacy.close();
    expect(readFileSync(files(dir)[0]!).toString("latin1")).not.toContain('"store"');
    const log = rebuilt();
    const d = await openWith(dir, A, log);
    expect(d.keys()).toEqual([]);
    expect(files(dir)).toHaveLength(0);
    expect(log.lines[0]).toMatchObject({ dropped_unrecorded: 1 });
  });

  test("the stamp is inside the object's own file (written before the one rename that makes it visible): a stamped file cut short is never served", async () => {
    const dir = freshDir();
    const d1 = await openWith(dir, A);
    await d1.put(obj("b/k", 5000));
    const f = files(dir)[0]!;
    expect(readFileSync(f).subarray(0, 400).toString("latin1")).toContain('"store":"store-b-1"');
    // A crash mid-write leaves only a temporary file; a file cut behind our back is not an object.
    truncateSync(f, 40);
    const d2 = await openWith(dir, A);
    expect(d2.keys()).toEqual([]);
    expect(files(dir)).toHaveLength(0);
  });

  test("after a reload (setStores) new files carry the new store, and survive a restart on it", async () => {
    const dir = freshDir();
    const d1 = await openWith(dir, A);
    d1.setStores(new Map([["b", "store-b-2"]]));
    await d1.put(obj("b/new", 100));
    const w = d1.openWriter(writerMeta("b/streamed", 10))!;
    await w.write(bytesOf(10));
    expect(await w.commit()).toBe(true);
    await d1.close();
    const d2 = await openWith(dir, new Map([["b", "store-b-2"]]));
    expect(d2.keys().sort()).toEqual(["b/new", "b/streamed"]);
    expect(await bodyOf(await d2.get("b/streamed"))).toEqual(bytesOf(10));
  });
});

describe("two proxies sharing one folder", () => {
  const at = (dir: string, instance: string, stores: ReadonlyMap<string, string>) => {
    const d = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 16 << 20, stores, instance });
    // (its listeners bound, as cli.ts says once they are: the folder marked shared only then)
    return d.ready.then(async () => (await d.claimLock(), d));
  };
  test("a start that never bound its listeners (exit 3) leaves the folder as it found it: its lock gone, no instances-shared, and no Redis stream position (it wrote one, over a running instance's of the same port too); once bound, all are written", async () => {
    const dir = freshDir();
    const a = await at(dir, "8080", new Map());
    const before = readdirSync(dir).sort();
    const failed = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 16 << 20, instance: "8081" });
    await failed.ready;
    failed.savePosition("stream", "1-0", "life");
    await failed.close();
    expect(readdirSync(dir).sort()).toEqual(before);
    const bound = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 16 << 20, instance: "8081" });
    await bound.ready;
    bound.savePosition("stream", "1-0", "life");
    bound.claimLock();
    await bound.close();
    expect(readdirSync(dir).sort()).toEqual([...before, "instances-shared", "redis-position-8081.json"].sort());
    await a.close();
  });

  test("a start that never bound its listeners (exit 3) deletes no file: those of buckets it does not cache, older copies of a key and items past its max_item_size_mb went (another config's cache, its proxy stopped, lost with a mistaken start); once bound, they go", async () => {
    const dir = freshDir();
    const a = await at(dir, "8080", new Map([["x", "store-x"]]));
    await a.put(obj("x/k", 5000));
    await a.put(obj("x/big", 50_000));
    await a.close();
    // an older copy of x/k beside the current one (a crash between the rename and the unlink)
    const [current] = files(dir).filter((f) => statSync(f).size < 50_000);
    copyFileSync(current!, current!.replace(/\.[0-9a-z]+\.obj$/, ".0a.obj"));
    const before = files(dir).sort();
    expect(before).toHaveLength(3);
    const opts = { dir, maxBytes: 64 << 20, maxItemBytes: 10_000, instance: "8080" };
    const failed = new DiskLayer({ ...opts, stores: new Map([["y", "store-y"]]) });
    await failed.ready;
    await failed.close();
    const smaller = new DiskLayer({ ...opts, stores: new Map([["x", "store-x"]]) });
    await smaller.ready;
    expect(smaller.keys()).toEqual(["x/k"]);
    await smaller.close();
    expect(files(dir).sort()).toEqual(before);
    const bound = await at(dir, "8080", new Map([["y", "store-y"]]));
    expect(files(dir)).toEqual([]);
    await bound.close();
  });

  test("an empty or garbled lock (a start whose lock write failed on a full file system left it empty) is no running process's: read as pid 0 or -1, alive, the next start on the port was warned another process held it and did not take it", async () => {
    for (const text of ["", "-1 x"]) {
      const dir = freshDir();
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "instance-8081.lock"), text);
      const warnings: string[] = [];
      const d = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 16 << 20, instance: "8081", log: { info() {}, warn: (m: string) => void warnings.push(m) } });
      await d.ready;
      expect(warnings.filter((w) => w.includes("holds this instance's lock"))).toEqual([]);
      expect(readFileSync(join(dir, "instance-8081.lock"), "utf8")).not.toBe(text); // (taken: this start's)
      await d.close();
    }
  });

  test("a lock written aside by a process that stopped before renaming it (instance-<port>.lock.<pid>.tmp) is removed at start; a running process's is left", async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    const dead = Bun.spawn(["true"]);
    await dead.exited;
    const stale = join(dir, `instance-8081.lock.${dead.pid}.tmp`);
    const running = join(dir, `instance-8082.lock.${process.ppid}.tmp`);
    writeFileSync(stale, `${dead.pid} x\n`);
    writeFileSync(running, `${process.ppid} x\n`);
    const d = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 16 << 20, instance: "8081" });
    await d.ready;
    expect([existsSync(stale), existsSync(running)]).toEqual([false, true]);
    await d.close();
  });

  test.skipIf(process.getuid?.() !== 0)("a start on a full file system (its lock write failing, ENOSPC: exit 3) leaves no empty lock behind", () => {
    const mnt = mkdtempSync(join(tmpdir(), "yata-disk-full-"));
    const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt]);
    expect(mounted.exitCode, mounted.stderr.toString()).toBe(0);
    try {
      const dir = join(mnt, "cache");
      for (const sub of ["objects", "tmp"]) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
      expect(() => writeFileSync(join(mnt, "filler"), new Uint8Array(1 << 20))).toThrow("ENOSPC");
      expect(() => new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 16 << 20, instance: "8081" })).toThrow("(ENOSPC)");
      expect(readdirSync(dir).sort()).toEqual(["objects", "tmp"]);
    } finally {
      Bun.spawnSync(["umount", mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });

  test("a start neither deletes nor indexes the files of another instance running on the folder (it deleted those of buckets it does not cache, and the other served misses); once that one stopped, they are dropped as before", async () => {
    const dir = freshDir();
    const a = await at(dir, "8080", new Map([["x", "store-x"]]));
    await a.put(obj("x/k", 5000));
    const b = await at(dir, "8081", new Map([["y", "store-y"]]));
    await b.put(obj("y/k", 5000));
    expect(b.keys()).toEqual(["y/k"]);
    expect(await bodyOf(await a.get("x/k"))).toEqual(bytesOf(5000));
    // b restarts while a runs: a's file is still a's
    await b.close();
    const b2 = await at(dir, "8081", new Map([["y", "store-y"]]));
    expect(b2.keys()).toEqual(["y/k"]);
    expect(await bodyOf(await a.get("x/k"))).toEqual(bytesOf(5000));
    // a stopped for good: its files are no longer anyone's, and go as files of a bucket b does not cache
    await a.close();
    await b2.close();
    const b3 = await at(dir, "8081", new Map([["y", "store-y"]]));
    expect(b3.keys()).toEqual(["y/k"]);
    expect(files(dir)).toHaveLength(1);
    await b3.close();
  });

  /** 8080 writes x/old and stops; 8081 starts meanwhile and adopts the file. */
  const adoptedBy8081 = async (dir: string, x: ReadonlyMap<string, string>) => {
    const a = await at(dir, "8080", x);
    await a.put(obj("x/old", 5000));
    await a.close();
    const b = await at(dir, "8081", x);
    expect(b.keys()).toEqual(["x/old"]);
    return b;
  };

  test("a proxy back after another adopted its files (a start while it was down) takes back none of them while the adopter runs: each file is counted by one proxy; they are its own again once the adopter stopped", async () => {
    const dir = freshDir();
    const x = new Map([["x", "store-x"]]);
    // b starts while a is down: it adopts a's file
    const b = await adoptedBy8081(dir, x);
    // a comes back: the file is b's now (b counts it, evicts it, purges it), not a's too
    const a2 = await at(dir, "8080", x);
    expect(a2.keys()).toEqual([]);
    await a2.put(obj("x/new", 5000));
    expect(b.keys()).toEqual(["x/old"]);
    expect(await bodyOf(await b.get("x/old"))).toEqual(bytesOf(5000));
    // b stopped: a's next start takes back its files, both
    await b.close();
    await a2.close();
    const a3 = await at(dir, "8080", x);
    expect(a3.keys().sort()).toEqual(["x/new", "x/old"]);
    await a3.close();
  });

  test("the adopter's revalidation of an adopted file (its times rewritten in place, which changes the file's ctime) leaves it the adopter's: the proxy back on the folder took it back, and both counted it", async () => {
    const dir = freshDir();
    const x = new Map([["x", "store-x"]]);
    const b = await adoptedBy8081(dir, x);
    const [file] = files(dir);
    const changed = statSync(file!).ctimeMs;
    // (the clock past the file's ctime, whose granularity is the kernel's tick)
    await waitFor(() => Date.now() > changed + 50, { message: "the clock to move on" });
    const found = (await b.get("x/old"))!;
    await b.put({ ...found, storedAt: NOW + 1, expiresAt: NOW + 100_000, source: undefined });
    expect(statSync(file!).ctimeMs).toBeGreaterThan(changed);
    const a2 = await at(dir, "8080", x);
    expect(a2.keys()).toEqual([]);
    expect(await bodyOf(await b.get("x/old"))).toEqual(bytesOf(5000));
    await Promise.all([a2.close(), b.close()]);
  });

  test("a purge reaches the files of an instance that stopped (no running instance's): they were purged by none until a start adopted them, and then served, purged, by the adopter or by their own proxy back; a running instance's own copy is its own", async () => {
    const dir = freshDir();
    const x = new Map([["x", "store-x"]]);
    const a = await at(dir, "8080", x);
    for (const k of ["x/k", "x/p/1", "x/p/2", "x/q"]) await a.put(obj(k, 5000));
    const b = await at(dir, "8081", x);
    await b.put(obj("x/k", 4000));
    const c = await at(dir, "8082", x);
    await c.put(obj("x/p/1", 3000));
    // a stops while b and c run: its files are no running instance's
    await a.close();
    /** The files of `key` written by the stopped 8080. */
    const ofA = async (key: string) => {
      const out: string[] = [];
      for (const f of files(dir).filter((f) => f.includes(keyHash(key)))) {
        const r = await readObjectFile(f, keyHash(key));
        if (typeof r !== "string" && r.owner === "8080") out.push(f);
      }
      return out;
    };
    expect(await ofA("x/k")).toHaveLength(1);
    expect(await b.delete("x/k")).toBe(true);
    await waitFor(async () => (await ofA("x/k")).length === 0, { message: "the stopped instance's copy of x/k to be purged" });
    expect(await b.purgePrefix("x/p/")).toBe(0);
    await waitFor(async () => (await ofA("x/p/1")).length + (await ofA("x/p/2")).length === 0, { message: "the stopped instance's copies under x/p/ to be purged" });
    // c's own copy is c's (its own proxy purges it), and a's file of another key stays
    expect(await bodyOf(await c.get("x/p/1"))).toEqual(bytesOf(3000));
    expect(await ofA("x/q")).toHaveLength(1);
    await Promise.all([b.close(), c.close()]);
    // a back: none of its purged files, c's own copy (not purged through c) adopted
    const a2 = await at(dir, "8080", x);
    expect(a2.keys().sort()).toEqual(["x/p/1", "x/q"]);
    expect(await bodyOf(await a2.get("x/p/1"))).toEqual(bytesOf(3000));
    await a2.close();
  });

  test("an instance of the previous release started beside one of this release (it writes no instances-shared): once it stops, a purge through the running one reaches its files; none did, and its proxy back (upgraded) served them purged", async () => {
    const dir = freshDir();
    const x = new Map([["x", "store-x"]]);
    const a = await at(dir, "8080", x);
    const b = await at(dir, "8081", x);
    // (the previous release takes the lock but marks nothing: as if b were one)
    rmSync(join(dir, "instances-shared"), { force: true });
    await b.put(obj("x/k", 4000));
    await waitFor(() => existsSync(join(dir, "instances-shared")), { message: "the running instance to see the other's lock and mark the folder shared" });
    await b.close();
    expect(await a.delete("x/k")).toBe(false);
    await waitFor(() => files(dir).length === 0, { message: "the stopped instance's copy of x/k to be purged" });
    await a.close();
    const b2 = await at(dir, "8081", x);
    expect(b2.keys()).toEqual([]);
    await b2.close();
  });

  test("workers 1 -> 2 -> 1: the purge-stream position it left in the single layout goes with its files, and back there the position of another's files it adopts is read without its own (stale: another life of the stream, its files gone, the adopted ones were dropped with it)", async () => {
    const dir = freshDir();
    const cfg = CacheSchema.parse({ enabled: true, cache_layers: ["memory", "disk"], disk: { path: dir } });
    const x = new Map([["x", "store-x"]]);
    const position = (instance: string, id: string, epoch: string) => writeFileSync(join(dir, `redis-position-${instance}.json`), JSON.stringify({ stream: "s", id, epoch }));
    const a = await at(dir, "8080", x);
    await a.put(obj("x/k", 5000));
    await a.close();
    position("8080", "5-0", "life-1");
    // a restarts with server.workers: 2: its worker 0 retires the single layout, its files and its position
    await retireOtherDiskLayouts(cfg, { share: 2, worker: 0, instance: "8080" });
    expect(existsSync(join(dir, "redis-position-8080.json"))).toBe(false);
    // (left there, as a later start found it)
    position("8080", "5-0", "life-1");
    // another proxy runs on the folder meanwhile (Redis lost its data since: a new life), and stops
    const c = await at(dir, "8081", x);
    await c.put(obj("x/c", 5000));
    await c.close();
    position("8081", "9-0", "life-2");
    // a comes back with one worker: it adopts c's files, up to date with c's position
    const a2 = await at(dir, "8080", x);
    expect(a2.keys()).toEqual(["x/c"]);
    expect(a2.loadPosition("s")).toEqual({ id: "9-0", epoch: "life-2" });
    await a2.close();
  });
  test("workers 1 -> 2 -> 1 beside another proxy on the folder: its files there go when it leaves the layout, the other's stay (kept with the folder, they were served again, the object replaced meanwhile)", async () => {
    const dir = freshDir();
    const cfg = CacheSchema.parse({ enabled: true, cache_layers: ["memory", "disk"], disk: { path: dir } });
    const a = await at(dir, "8080", new Map([["x", "store-x"]]));
    await a.put(obj("x/k", 5000));
    const b = await at(dir, "8081", new Map([["x", "store-x"]]));
    await b.put(obj("x/other", 5000));
    await a.close();
    // a restarts with server.workers: 2 (its worker 0 retires the single layout, where b runs)...
    await retireOtherDiskLayouts(cfg, { share: 2, worker: 0, instance: "8080" });
    // ... and with 1 again: what it cached in the folder before is not served (a write through it meanwhile purged its workers' folders only)
    const a2 = await at(dir, "8080", new Map([["x", "store-x"]]));
    expect(a2.keys()).toEqual([]);
    expect(await bodyOf(await b.get("x/other"))).toEqual(bytesOf(5000));
    await Promise.all([a2.close(), b.close()]);
  });
  test("a file this release cannot read (a later format, written by a newer release of the other proxy) in a folder another instance runs on is left alone, by a start there and by the cleanup of a layout this instance left (both deleted it: the other's object was lost)", async () => {
    const dir = freshDir();
    const cfg = CacheSchema.parse({ enabled: true, cache_layers: ["memory", "disk"], disk: { path: dir } });
    const x = new Map([["x", "store-x"]]);
    const b = await at(dir, "8081", x);
    await b.put(obj("x/other", 5000));
    const [file] = files(dir);
    const later = readFileSync(file!);
    later.set(new TextEncoder().encode("YTC9"), 0); // (a format this release does not know)
    const unknown = join(dir, "objects", keyHash("x/later").slice(0, 2), `${keyHash("x/later")}.zzzzzzzz1.obj`);
    mkdirSync(join(unknown, ".."), { recursive: true });
    writeFileSync(unknown, later);
    // a starts on the folder b runs on, then leaves that layout (server.workers: 2)
    const a = await at(dir, "8080", x);
    expect(existsSync(unknown)).toBe(true);
    await a.close();
    await retireOtherDiskLayouts(cfg, { share: 2, worker: 0, instance: "8080" });
    expect(existsSync(unknown)).toBe(true);
    expect(await bodyOf(await b.get("x/other"))).toEqual(bytesOf(5000));
    // once no other instance runs on the folder, such a file is no one's: dropped as before
    await b.close();
    const b2 = await at(dir, "8081", x);
    expect(existsSync(unknown)).toBe(false);
    await b2.close();
  });
});

describe("never wrong bytes", () => {
  test("a file deleted behind the layer's back is a miss and leaves the index", async () => {
    const d = await open(freshDir());
    await d.put(obj("b/k", 1000));
    rmSync(files(d.dir)[0]!);
    expect(await d.get("b/k")).toBeUndefined();
    expect(d.stats().items).toBe(0);
  });

  test("a file truncated behind the layer's back is a miss (and is deleted)", async () => {
    const d = await open(freshDir());
    await d.put(obj("b/k", 10_000));
    const f = files(d.dir)[0]!;
    truncateSync(f, statSync(f).size - 1);
    expect(await d.get("b/k")).toBeUndefined();
    expect(existsSync(f)).toBe(false);
  });

  test("a body changed at the same length while the process was down (bit rot) is a miss after the restart, never served: its CRC-32, recorded when written, is checked before its first hit (and in the background); the file is deleted, a disk error counted", async () => {
    const dir = freshDir();
    const d1 = await open(dir);
    for (const k of ["b/rotten", "b/rotten-late", "b/sound"]) await d1.put(obj(k, 100_000));
    await d1.close();
    for (const k of ["b/rotten", "b/rotten-late"]) {
      const f = files(dir).find((f) => readFileSync(f).includes(k))!;
      const bytes = readFileSync(f);
      bytes[bytes.byteLength - 50_000] ^= 0x10; // one bit, mid-body
      writeFileSync(f, bytes);
    }
    const d2 = await open(dir);
    expect(await d2.get("b/rotten")).toBeUndefined();
    expect(await bodyOf(await d2.get("b/sound"))).toEqual(bytesOf(100_000));
    await waitFor(() => !d2.keys().includes("b/rotten-late"), { message: "the background check to drop the other damaged file" });
    expect(files(dir)).toHaveLength(1);
    expect(d2.errors()).toBe(2);
    await d2.put(obj("b/rotten", 100_000));
    expect(await bodyOf(await d2.get("b/rotten"))).toEqual(bytesOf(100_000));
  });

  /** A layer restarted on `dir` holding b/k, whose CRC-32 checks' answers are held until `release` (the background pass asks first: `checks`). */
  async function heldChecks(dir: string) {
    const d1 = await open(dir);
    await d1.put(obj("b/k", 100_000));
    await d1.close();
    const d = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 16 << 20 });
    // (a large file's read-through takes that long, and a file unlinked while it is read is read to its end all the same)
    type Result = "intact" | "damaged" | "unreadable";
    type Checked = { file: string; bodyOffset: number; size: number; crc?: number | undefined; unchecked: boolean; checking?: Promise<Result> | undefined };
    const layer = d as unknown as { check(e: Checked): Promise<Result> };
    const out = { d, checks: 0, release: () => {} };
    const held = new Promise<void>((r) => (out.release = r));
    layer.check = (e) => {
      out.checks++;
      e.checking ??= bodyIntact(e.file, e.bodyOffset, e.size, e.crc!).then((r) => held.then((): Result => ((e.unchecked = r !== "intact"), r === "gone" ? "damaged" : r)));
      return e.checking;
    };
    await d.ready;
    return out;
  }

  test("a key purged while its first hit after a restart waits for the CRC-32 check is a miss, never the purged file (Bun opened it after the head: a 500)", async () => {
    const dir = freshDir();
    const h = await heldChecks(dir);
    const hit = h.d.get("b/k");
    await waitFor(() => h.checks >= 2, { message: "the hit to wait for the check (the background pass asks first)" });
    expect(await h.d.delete("b/k")).toBe(true);
    h.release();
    expect(await hit).toBeUndefined();
    expect(files(dir)).toHaveLength(0);
    await h.d.close();
  });

  test("a key purged while a revalidation's put after a restart waits for the CRC-32 check is not stored again: no copy from the purged file (its write was left open, its room reserved, until a restart)", async () => {
    const dir = freshDir();
    const h = await heldChecks(dir);
    // (the same body, other headers: a copy of the file with the new head)
    const put = h.d.put(object("b/k", 100_000, { ...headersOf(), "cache-control": "max-age=5" }, NOW, 60));
    await waitFor(() => h.checks >= 2, { message: "the put to wait for the check" });
    expect(await h.d.delete("b/k")).toBe(true);
    h.release();
    await put;
    expect(await h.d.get("b/k")).toBeUndefined();
    expect(readdirSync(join(dir, "tmp"))).toEqual([]);
    expect((h.d as unknown as { reserved: number }).reserved).toBe(0);
    await h.d.close();
  });

  /** A folder holding one object file of `size` bytes under `key`, written by a layer since closed: [folder, file]. */
  async function oneFile(key: string, size: number): Promise<[string, string]> {
    const dir = freshDir();
    const d1 = await open(dir);
    await d1.put(obj(key, size));
    await d1.close();
    return [dir, files(dir)[0]!];
  }

  test("bodyIntact tells a damaged body from a file gone or unreadable (no descriptor left, EISDIR here): only a damaged one is deleted as bit rot; the others say nothing of the bytes", async () => {
    const [dir, f] = await oneFile("b/k", 10_000);
    const size = 10_000;
    const bodyOffset = readFileSync(f).byteLength - size;
    const crc = Bun.hash.crc32(readFileSync(f).subarray(bodyOffset)) >>> 0;
    expect(await bodyIntact(f, bodyOffset, size, crc)).toBe("intact");
    expect(await bodyIntact(f + ".missing", bodyOffset, size, crc)).toBe("gone");
    expect(await bodyIntact(dir, bodyOffset, size, crc)).toBe("unreadable");
    const bytes = readFileSync(f);
    bytes[bodyOffset + 5] ^= 1;
    writeFileSync(f, bytes);
    expect(await bodyIntact(f, bodyOffset, size, crc)).toBe("damaged");
  });

  test("a file written today is one the previous release (749f3f6: \"YTC1\", 32 + metaLen + size bytes, the JSON's key and headers) keeps at start, so a rollback or an older replica on the folder does not delete the cache; its CRC-32 is in the head, checked after a restart", async () => {
    const [dir, f] = await oneFile("b/k", 10_000);
    const bytes = readFileSync(f);
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    expect(v.getUint32(0, true)).toBe(0x31435459);
    const metaLen = v.getUint32(28, true);
    expect(bytes.byteLength).toBe(HEAD_BYTES + metaLen + v.getFloat64(20, true));
    const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(HEAD_BYTES, HEAD_BYTES + metaLen)));
    expect(meta.key).toBe("b/k");
    expect(meta.crc).toBe((Bun.hash.crc32(bytes.subarray(HEAD_BYTES + metaLen)) >>> 0).toString(16).padStart(8, "0"));
    bytes[bytes.byteLength - 5_000] ^= 0x10;
    writeFileSync(f, bytes);
    const d2 = await open(dir);
    expect(await d2.get("b/k")).toBeUndefined();
    expect(d2.errors()).toBe(1);
    await d2.close();
  });

  test("verify_at_start: false checks nothing at start (a large folder is not read through; served as written, as before the CRC)", async () => {
    const [dir, f] = await oneFile("b/rotten", 100_000);
    const bytes = readFileSync(f);
    bytes[bytes.byteLength - 50_000] ^= 0x10;
    writeFileSync(f, bytes);
    const d2 = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 16 << 20, verify: false });
    await d2.ready;
    const served = await bodyOf(await d2.get("b/rotten"));
    expect(served.byteLength).toBe(100_000);
    expect(served).not.toEqual(bytesOf(100_000));
    expect(d2.errors()).toBe(0);
    await d2.close();
  });

  test("an object file replaced by a symbolic link (to a file outside of the same size) is a miss, never its target's bytes", async () => {
    const dir = freshDir();
    const d = await open(dir);
    await d.put(obj("b/k", 10_000));
    const f = files(d.dir)[0]!;
    const outside = join(root, `outside-${n}`);
    writeFileSync(outside, new Uint8Array(statSync(f).size).fill(0x5a)); // a secret of exactly the file's length
    rmSync(f);
    symlinkSync(outside, f);
    expect(await d.get("b/k")).toBeUndefined();
    expect(d.stats().items).toBe(0);
    expect(existsSync(outside)).toBe(true); // the link is removed, never what it points to
    expect(readFileSync(outside)[0]).toBe(0x5a);
  });

  test("a folder of objects/ replaced by a symbolic link (to a folder outside): the next fill of a key there is stored in a folder of the layer's again, never written through the link (it was, served from there, and left there after a restart)", async () => {
    const d = await open(freshDir());
    const outside = join(root, `outside-folder-${n}`);
    mkdirSync(outside);
    const sub = join(d.dir, "objects", keyHash("b/k").slice(0, 2));
    rmSync(sub, { recursive: true, force: true });
    symlinkSync(outside, sub);
    await d.put(obj("b/k", 10_000));
    expect([readdirSync(outside), statSync(sub, { throwIfNoEntry: false })?.isDirectory(), (await bodyOf(await d.get("b/k"))).length]).toEqual([[], true, 10_000]);
    expect(existsSync(outside)).toBe(true); // the link is removed, never what it points to
  });

  test("a file replaced behind the layer's back by another of the same length (moved over it, or rewritten in place) is a miss, never the other file's bytes", async () => {
    const d = await open(freshDir());
    await d.put(obj("b/moved", 10_000));
    await d.put(obj("b/rewritten", 10_000));
    const [moved, rewritten] = ["b/moved", "b/rewritten"].map((k) => files(d.dir).find((f) => readFileSync(f).includes(k))!);
    const other = join(root, `other-${n}`);
    writeFileSync(other, new Uint8Array(statSync(moved!).size).fill(0x5a));
    renameSync(other, moved!); // a new file (another inode) under the name
    const bytes = readFileSync(rewritten!);
    bytes.fill(0x5a, bytes.byteLength - 10_000);
    writeFileSync(rewritten!, bytes); // the same inode, other bytes
    expect(await d.get("b/moved")).toBeUndefined();
    expect(await d.get("b/rewritten")).toBeUndefined();
    expect(d.stats().items).toBe(0);
  });

  test("a revalidation rewriting a file's times in place is no change behind the layer's back: the entry stays a hit", async () => {
    const d = await open(freshDir());
    await d.put(obj("b/k", 5000));
    const found = (await d.get("b/k"))!;
    // (rounds: a hit whose stat ran during a revalidation that ended before the hit looked at it
    // is a narrow window, missed in some runs)
    for (let round = 0; round < 10; round++) {
      const refreshes = Array.from({ length: 20 }, (_, i) => d.put({ ...found, storedAt: NOW + round * 100 + i, expiresAt: NOW + 100_000 + i, source: undefined }));
      const during = await Promise.all(Array.from({ length: 20 }, () => d.get("b/k")));
      await Promise.all(refreshes);
      for (const o of during) expect(await bodyOf(o)).toEqual(bytesOf(5000));
    }
    expect(await bodyOf(await d.get("b/k"))).toEqual(bytesOf(5000));
  });

  test("a folder shared by two processes (README): one's revalidation, rewriting the file's times in place, is no change behind the other's back: a hit in both, the file kept", async () => {
    const dir = freshDir();
    const a = await open(dir);
    await a.put(obj("b/k", 5000));
    const b = await open(dir); // indexes a's file at its start
    const [file] = files(dir);
    const written = statSync(file!).mtimeMs;
    // (the clock past the file's modification time, whose granularity is the kernel's tick)
    await waitFor(() => Date.now() > written + 50, { message: "the clock to move on" });
    const found = (await a.get("b/k"))!;
    await a.put({ ...found, storedAt: NOW + 1, expiresAt: NOW + 100_000, source: undefined });
    expect(await bodyOf(await b.get("b/k"))).toEqual(bytesOf(5000));
    expect(await bodyOf(await a.get("b/k"))).toEqual(bytesOf(5000));
    expect(files(dir)).toEqual([file!]);
  });

  test("a response holding a file keeps its bytes when the object is replaced or purged meanwhile", async () => {
    const d = await open(freshDir());
    await d.put(obj("b/k", 50_000, '"v1"'));
    const held = await d.get("b/k");
    const reading = held!.body.stream().getReader();
    const first = await reading.read(); // the file is open now
    await d.put({ ...object("b/k", 50_000, headersOf('"v2"'), NOW + 1), body: new Blob([new Uint8Array(50_000).fill(7)]) });
    await d.purgePrefix("");
    const rest: Uint8Array[] = [first.value!];
    for (let r = await reading.read(); !r.done; r = await reading.read()) rest.push(r.value);
    expect(new Uint8Array(await new Blob(rest).arrayBuffer())).toEqual(bytesOf(50_000));
  });
});

describe("atomic writes", () => {
  test("an object whose body cannot be read (a file-backed body whose file is gone) is not stored, and its write ends: no temporary file, no room kept", async () => {
    const d = await open(freshDir());
    const gone = join(root, `gone-${n}`);
    writeFileSync(gone, bytesOf(5000));
    const o = { ...obj("b/k", 5000), body: Bun.file(gone) };
    rmSync(gone);
    await d.put(o);
    expect(await d.get("b/k")).toBeUndefined();
    await waitFor(() => readdirSync(join(d.dir, "tmp")).length === 0, { message: "the temporary file to be deleted" });
    expect((d as unknown as { reserved: number }).reserved).toBe(0);
    await d.close();
  });

  test("a streaming write is invisible until committed, and committed only at exactly its size", async () => {
    const d = await open(freshDir());
    const meta = writerMeta("b/s", 3000);
    const w = d.openWriter(meta)!;
    await w.write(bytesOf(3000).subarray(0, 1000));
    expect(await d.get("b/s")).toBeUndefined();
    expect(files(d.dir)).toHaveLength(0);
    await w.write(bytesOf(3000).subarray(1000, 2999));
    expect(await w.commit()).toBe(false); // one byte short
    expect(await d.get("b/s")).toBeUndefined();
    expect(readdirSync(join(d.dir, "tmp"))).toEqual([]);

    const w2 = d.openWriter(meta)!;
    await w2.write(bytesOf(3000));
    expect(w2.write(new Uint8Array(1))).rejects.toThrow("longer");
    expect(await d.get("b/s")).toBeUndefined();

    const w3 = d.openWriter(meta)!;
    await w3.write(bytesOf(3000).subarray(0, 2000));
    await w3.write(bytesOf(3000).subarray(2000));
    expect(await w3.commit()).toBe(true);
    expect(await bodyOf(await d.get("b/s"))).toEqual(bytesOf(3000));
    expect(readdirSync(join(d.dir, "tmp"))).toEqual([]);
  });

  test("a write of a key purged after it began is dropped; a write of another key is not", async () => {
    const d = await open(freshDir());
    const meta = (key: string) => ({ key, headers: { "content-length": "10" }, storedAt: NOW, expiresAt: NOW + 60_000, size: 10 });
    const a = d.openWriter(meta("b/a"))!;
    const other = d.openWriter(meta("c/x"))!;
    await a.write(bytesOf(10));
    await other.write(bytesOf(10));
    await d.purgePrefix("b/");
    expect(await a.commit()).toBe(false);
    expect(await other.commit()).toBe(true);
    expect(d.keys()).toEqual(["c/x"]);
  });

  test("an aborted write leaves nothing; close() abandons the writes in progress and resolves once their temporary files are gone (a stop left them for the next start)", async () => {
    const d = await open(freshDir());
    const w = d.openWriter({ key: "b/a", headers: { "content-length": "10" }, storedAt: NOW, expiresAt: NOW, size: 10 })!;
    await w.write(bytesOf(5));
    w.abort();
    const w2 = d.openWriter({ key: "b/b", headers: { "content-length": "10" }, storedAt: NOW, expiresAt: NOW, size: 10 })!;
    await w2.write(bytesOf(5));
    // one being committed as the layer closes: stored or deleted by the time close() resolves
    const w3 = d.openWriter({ key: "b/c", headers: { "content-length": "10" }, storedAt: NOW, expiresAt: NOW, size: 10 })!;
    await w3.write(bytesOf(10));
    const committed = w3.commit();
    await d.close();
    expect(readdirSync(join(d.dir, "tmp"))).toEqual([]);
    expect(files(d.dir).length).toBe((await committed) ? 1 : 0);
    // and none opened once closing (it would be left behind)
    expect(d.openWriter({ key: "b/d", headers: { "content-length": "10" }, storedAt: NOW, expiresAt: NOW, size: 10 })).toBeUndefined();
  });

  test("a temporary file cut short or grown behind the writer's back is not stored (it was, with zeros where the cut part had been, and served)", async () => {
    const d = await open(freshDir());
    const size = 2 << 20;
    for (const [key, change] of [
      ["b/cut", (tmp: string) => truncateSync(tmp, 0)],
      ["b/grown", (tmp: string) => appendFileSync(tmp, new Uint8Array(10))],
    ] as const) {
      const w = d.openWriter(writerMeta(key, size))!;
      await w.write(new Uint8Array(size / 2).fill(1));
      const [tmp] = readdirSync(join(d.dir, "tmp"));
      change(join(d.dir, "tmp", tmp!));
      // (the write that finds the file changed fails at once: requests following the fill read it)
      expect(w.write(new Uint8Array(size / 2).fill(2))).rejects.toThrow(/changed behind the writer's back/);
      expect(await w.commit()).toBe(false);
      expect(await d.get(key)).toBeUndefined();
    }
    expect(files(d.dir)).toEqual([]);
    expect(readdirSync(join(d.dir, "tmp"))).toEqual([]);
    expect(d.errors()).toBe(2);
    // and a write left alone is stored as before
    const w = d.openWriter(writerMeta("b/whole", size))!;
    await w.write(bytesOf(size));
    expect(await w.commit()).toBe(true);
    expect(await bodyOf(await d.get("b/whole"))).toEqual(bytesOf(size));
  });

  test("a process killed in the middle of a fill leaves no object; its temporary file is removed at the next start", async () => {
    const dir = freshDir();
    const script = join(root, "crash-writer.ts");
    writeFileSync(
      script,
      `import { DiskLayer } from ${JSON.stringify(join(import.meta.dir, "../../src/cache/disk.ts"))};
const d = new DiskLayer({ dir: ${JSON.stringify(dir)}, maxBytes: 1 << 30, maxItemBytes: 1 << 30 });
await d.ready;
const w = d.openWriter({ key: "b/big", headers: { "content-length": String(8 << 20) }, storedAt: 1, expiresAt: 2, size: 8 << 20 });
await w.write(new Uint8Array(4 << 20).fill(1));
console.log("half written");
await new Promise(() => {});
`,
    );
    const child = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "inherit" });
    const reader = child.stdout.getReader();
    let out = "";
    while (!out.includes("half written")) {
      const r = await reader.read();
      if (r.done) break;
      out += new TextDecoder().decode(r.value);
    }
    expect(out).toContain("half written");
    expect(readdirSync(join(dir, "tmp"))).toHaveLength(1);
    child.kill("SIGKILL");
    await child.exited;
    const d = await open(dir);
    expect(await d.get("b/big")).toBeUndefined();
    expect(d.stats().items).toBe(0);
    expect(readdirSync(join(dir, "tmp"))).toEqual([]);
    expect(files(dir)).toHaveLength(0);
  });

  test("a live writer's temporary file is left alone by another process starting on the folder", async () => {
    const dir = freshDir();
    const d = await open(dir);
    const w = d.openWriter({ key: "b/a", headers: { "content-length": "10" }, storedAt: NOW, expiresAt: NOW + 60_000, size: 10 })!;
    await w.write(bytesOf(4));
    await open(dir); // scans: this process is alive, its temporary file stays
    await w.write(bytesOf(6));
    expect(await w.commit()).toBe(true);
  });

  test("a crashed writer not yet reaped by its parent (a zombie: kill(pid, 0) still succeeds) is gone: its temporary file is removed at start (a proxy killed -9 and restarted before its parent reaped it left its .part file until the next start)", async () => {
    const dir = freshDir();
    mkdirSync(join(dir, "tmp"), { recursive: true });
    // `sleep 0` exits at once; its parent becomes `sleep`, which never reaps it: a zombie until the parent is killed.
    const pidFile = join(dir, "zombie.pid");
    // (echo: a builtin, so the shell waits for no other child, which would reap `sleep 0` too)
    const parent = Bun.spawn(["sh", "-c", `sleep 0 & echo $! > ${pidFile}; exec sleep 60`]);
    try {
      await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").endsWith("\n"), { message: "the child's pid" });
      const pid = Number(readFileSync(pidFile, "utf8").trim());
      await waitFor(() => / Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\)/, "")), { message: "the child to be a zombie" });
      const left = join(dir, "tmp", `${pid}.0123456789ab.${crypto.randomUUID()}.part`);
      writeFileSync(left, new Uint8Array(300_000));
      await open(dir);
      expect(existsSync(left)).toBe(false);
    } finally {
      parent.kill("SIGKILL");
      await parent.exited;
    }
  });

  test("temporary files left by an earlier process with this process's pid (PID 1 in a container, every start) are removed at start; this start's own are not", async () => {
    const dir = freshDir();
    mkdirSync(join(dir, "tmp"), { recursive: true });
    // A crashed earlier run that had this pid: a name written by this version (another start id), and one by an older version (pid only).
    const earlier = join(dir, "tmp", `${process.pid}.0123456789ab.${crypto.randomUUID()}.part`);
    const older = join(dir, "tmp", `${process.pid}.${crypto.randomUUID()}.part`);
    writeFileSync(earlier, new Uint8Array(300_000));
    writeFileSync(older, new Uint8Array(1000));
    const d = await open(dir);
    // This start's own write in progress when the folder is scanned again (another layer opened on it).
    const w = d.openWriter({ key: "b/a", headers: { "content-length": "10" }, storedAt: NOW, expiresAt: NOW + 60_000, size: 10 })!;
    await w.write(bytesOf(4));
    expect(existsSync(earlier)).toBe(false);
    expect(existsSync(older)).toBe(false);
    expect(readdirSync(join(dir, "tmp"))).toHaveLength(1);
    await open(dir);
    expect(readdirSync(join(dir, "tmp"))).toHaveLength(1);
    await w.write(bytesOf(6));
    expect(await w.commit()).toBe(true);
    expect((await d.get("b/a"))?.size).toBe(10);
  });
  test("a temporary file whose pid now names a process started after it was written (the pid reused) is removed at start; a live writer's is kept", async () => {
    // The writer crashed mid-fill, its pid since taken by another process (another worker of a
    // group restarted in a fresh container, an unrelated program): the half file was kept, on disk
    // and uncounted by max_disk_size_mb, for as long as that process ran.
    const other = Bun.spawn(["sleep", "30"]);
    try {
      const dir = freshDir();
      mkdirSync(join(dir, "tmp"), { recursive: true });
      const left = join(dir, "tmp", `${other.pid}.0123456789ab.${crypto.randomUUID()}.part`);
      writeFileSync(left, new Uint8Array(100_000));
      const hourAgo = new Date(Date.now() - 3_600_000);
      utimesSync(left, hourAgo, hourAgo);
      const live = join(dir, "tmp", `${other.pid}.ba9876543210.${crypto.randomUUID()}.part`);
      writeFileSync(live, new Uint8Array(1000)); // written after the process started: it may be its writer
      await open(dir);
      expect(existsSync(left)).toBe(false);
      expect(existsSync(live)).toBe(true);
    } finally {
      other.kill("SIGKILL");
      await other.exited;
    }
  });
});

describe("revalidation", () => {
  test("same body, same headers: only the times are rewritten, in place", async () => {
    const d = await open(freshDir());
    await d.put(obj("b/k", 5000));
    const f = files(d.dir)[0]!;
    const before = statSync(f).ino;
    const found = (await d.get("b/k"))!;
    await d.put({ ...found, storedAt: NOW + 100_000, expiresAt: NOW + 200_000, source: undefined });
    expect(files(d.dir)).toEqual([f]);
    expect(statSync(f).ino).toBe(before);
    const after = (await d.get("b/k"))!;
    expect(after).toMatchObject({ storedAt: NOW + 100_000, expiresAt: NOW + 200_000 });
    const d2 = await open(d.dir); // persisted, not only in the index
    expect((await d2.get("b/k"))!.expiresAt).toBe(NOW + 200_000);
  });

  test("same body, new headers, the object over half of max_disk_size_mb: its own file is never evicted to make room for the copy (it was, and the object was gone); others are", async () => {
    const d = await open(freshDir(), 1_000_000, 900_000);
    await d.put(obj("b/other", 100_000));
    await d.put(obj("b/big", 600_000));
    // a revalidation (same ETag and size), one header changed: copied from its own file
    await d.put(object("b/big", 600_000, { ...headersOf(), "content-type": "application/x-pdf" }, NOW + 1000, 60));
    const again = await d.get("b/big");
    expect(again?.headers["content-type"]).toBe("application/x-pdf");
    expect(new Uint8Array(await again!.body.arrayBuffer())).toEqual(bytesOf(600_000));
    expect(d.keys()).toEqual(["b/big"]); // the least recently used other object made room
    expect(d.stats().evictions).toBe(1); // it alone (the source was evicted too; whether the copy still found its file was a race)
    expect(files(d.dir)).toHaveLength(1);
  });

  test("a revalidation whose file is deleted just before it is rewritten or copied (a purge of the key, here or by another process on a shared folder) is a miss, no disk error: it counted one and logged `disk cache error` refresh (or write) ENOENT, which the YatagarasuDiskCacheFailing alert counts", async () => {
    const warnings: string[] = [];
    const log = { info() {}, warn: (msg: string) => warnings.push(msg), error() {}, debug() {} } as never;
    const d = new DiskLayer({ dir: freshDir(), maxBytes: 64 << 20, maxItemBytes: 16 << 20, log });
    await d.ready;
    for (const newHeaders of [{}, { "cache-control": "max-age=5" }] as Record<string, string>[]) {
      await d.put(obj("b/k", 5000));
      const f = files(d.dir)[0]!;
      const found = (await d.get("b/k"))!;
      // same body: its times rewritten in place, or (new headers) copied from its file
      const revalidation = d.put({ ...found, headers: { ...found.headers, ...newHeaders }, storedAt: NOW + 100_000, expiresAt: NOW + 200_000, source: undefined });
      rmSync(f); // deleted as the revalidation starts (before its file is opened)
      await revalidation;
      expect(await d.get("b/k")).toBeUndefined();
      expect(files(d.dir)).toEqual([]);
    }
    expect({ errors: d.errors(), warnings }).toEqual({ errors: 0, warnings: [] });
  });

  test("same body, new headers: a new version copied from the old file", async () => {
    const d = await open(freshDir());
    await d.put(obj("b/k", 5000));
    const found = (await d.get("b/k"))!;
    await d.put({ ...found, headers: { ...found.headers, "cache-control": "max-age=5" }, storedAt: NOW + 1, source: undefined });
    const again = (await d.get("b/k"))!;
    expect(again.headers["cache-control"]).toBe("max-age=5");
    expect(await bodyOf(again)).toEqual(bytesOf(5000));
    expect(files(d.dir)).toHaveLength(1);
  });
});

describe("purge", () => {
  test("by key, by bucket prefix, everything: index and files", async () => {
    const d = await open(freshDir());
    for (const k of ["a/1", "a/2", "b/1", "b/dir/2"]) await d.put(obj(k, 100));
    expect(await d.delete("a/1")).toBe(true);
    expect(await d.delete("a/1")).toBe(false);
    expect(await d.purgePrefix("b/")).toBe(2);
    expect(d.keys()).toEqual(["a/2"]);
    expect(files(d.dir)).toHaveLength(1);
    expect(await d.purgePrefix("")).toBe(1);
    expect(files(d.dir)).toHaveLength(0);
    expect(d.stats()).toMatchObject({ items: 0, bytes: 0 });
  });

  test("a purge is durable: a restart does not bring the object back", async () => {
    const dir = freshDir();
    const d = await open(dir);
    await d.put(obj("b/k", 100));
    await d.purgePrefix("b/");
    expect((await open(dir)).stats().items).toBe(0);
  });
});

test("an unusable folder is a clear error naming the key and the path", () => {
  const file = join(root, "a-file");
  writeFileSync(file, "x");
  expect(() => new DiskLayer({ dir: join(file, "sub"), maxBytes: 1 << 20, maxItemBytes: 1 << 10 })).toThrow(`cache.disk.path: cannot use ${join(file, "sub")}: a part of the path is a file, not a folder (ENOTDIR)`);
});

test("start-up names why as --check does: a symbolic link to nothing, or `objects` a file (it said a bare ENOENT or EEXIST)", () => {
  const dangling = join(root, "dangling-start");
  symlinkSync(join(root, "no-such-mount"), dangling);
  expect(() => new DiskLayer({ dir: dangling, maxBytes: 1 << 20, maxItemBytes: 1 << 10 })).toThrow(`cache.disk.path: cannot use ${dangling}: it is a symbolic link to nothing (ENOENT)`);
  const objFile = join(root, "objects-a-file");
  mkdirSync(objFile);
  writeFileSync(join(objFile, "objects"), "x");
  expect(() => new DiskLayer({ dir: objFile, maxBytes: 1 << 20, maxItemBytes: 1 << 10 })).toThrow(`cache.disk.path: cannot use ${objFile}: ${join(objFile, "objects")} in it is a file, not a folder (EEXIST)`);
});

test("a folder on a full file system (or past its user's quota) says so: start-up had exit 3 with a bare ENOSPC", () => {
  expect(describeFsError(Object.assign(new Error("no space"), { code: "ENOSPC" }))).toBe("the file system holding it is full (ENOSPC): free some space on it, or set a folder on another one");
  expect(describeFsError(Object.assign(new Error("quota"), { code: "EDQUOT" }))).toBe("this user's disk quota there is used up (EDQUOT): raise it, free some space, or set a folder on another file system");
});

test("the budget counts whole 4 KiB blocks: 200 one-byte objects in a 400 KiB layer keep about 100 (counted by bytes, all 200 stayed, taking 800 KiB)", async () => {
  const d = await open(freshDir(), 400 * 1024, 20_000);
  for (let i = 0; i < 200; i++) await d.put(obj(`b/tiny-${i}`, 1));
  expect(d.stats().items).toBeLessThanOrEqual(100);
  expect(d.stats().bytes).toBeLessThanOrEqual(400 * 1024);
  // (an eviction started when a write reserves its room unlinks in the background: the files follow the index at once, not within the put)
  const onDiskNow = () => files(d.dir).reduce((a, f) => a + onDisk(statSync(f, { throwIfNoEntry: false })?.size ?? 0), 0);
  await waitFor(() => onDiskNow() <= 400 * 1024, { timeoutMs: 5000, message: () => `the files within 400 KiB (${onDiskNow()})` });
});

describe("a write abandoned while a chunk of it is being written", () => {
  test("is no disk error: a shutdown (close) or an abort racing the write counts and logs none (each clean stop of a process with a fill in progress logged `disk cache error` ERR_OUT_OF_RANGE)", async () => {
    const warnings: string[] = [];
    const log = { info() {}, warn: (msg: string) => warnings.push(msg), error() {}, debug() {} } as never;
    const d = new DiskLayer({ dir: freshDir(), maxBytes: 64 << 20, maxItemBytes: 16 << 20, log });
    await d.ready;
    const w = d.openWriter(writerMeta("b/big", 8 << 20))!;
    await w.write(bytesOf(1 << 20));
    const inFlight = w.write(bytesOf(4 << 20)).then(
      () => "written",
      () => "refused",
    );
    await d.close(); // the layer stops while the chunk is written
    expect(["written", "refused"]).toContain(await inFlight);
    const a = await open(freshDir());
    const w2 = a.openWriter(writerMeta("b/other", 8 << 20))!;
    await w2.write(bytesOf(1 << 20));
    const racing = w2.write(bytesOf(4 << 20)).catch(() => {});
    await w2.abort();
    await racing;
    expect({ errors: d.errors(), warnings, abortErrors: a.errors() }).toEqual({ errors: 0, warnings: [], abortErrors: 0 });
  });
});
