/**
 * The disk layer's files hold objects of buckets only a token holder may read (auth, OPA,
 * OpenFGA, ip_filter): they are created owner-only (0600), whatever the umask, so another local
 * user cannot read around the proxy's authorization (they were 0644 under the usual umask 022;
 * nginx's proxy_cache writes its files 0600 too).
 */
import { afterAll, expect, test, setDefaultTimeout } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cache } from "../../src/cache/cache.ts";
import { DiskLayer } from "../../src/cache/disk.ts";
import { serveWithCache } from "../../src/cache/serve.ts";
import { waitFor } from "../helpers/wait.ts";
import { instantUpstream } from "./helpers.ts";

setDefaultTimeout(30_000);

const root = mkdtempSync(join(tmpdir(), "yata-disk-mode-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const files = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));

test("a cached object's file, and the folders it is in, are readable by their owner only", async () => {
  const old = process.umask(0o022);
  try {
    const disk = new DiskLayer({ dir: join(root, "d"), maxBytes: 64 << 20, maxItemBytes: 8 << 20 });
    await disk.ready;
    const cache = new Cache([disk]);
    const policy = { ttlSeconds: 600, defaultTtlSeconds: 3600, maxItemBytes: 8 << 20, bufferBytes: 1 << 20, stallTimeoutMs: 300 };
    const up = instantUpstream(() => new Response("secret", { headers: { etag: '"e"', "content-length": "6" } }));
    const r = await serveWithCache({ cache, bucket: "private", key: "k", method: "GET", reqHeaders: new Headers(), policy, upstream: up.fn });
    await r.response.arrayBuffer();
    await waitFor(() => disk.keys().includes("private/k"), { message: "the disk fill to be committed" });
    const objs = files(join(disk.dir, "objects"));
    expect(objs).toHaveLength(1);
    expect((statSync(objs[0]!).mode & 0o777).toString(8)).toBe("600");
    // and its folders (objects/, objects/xx/, tmp/) are the owner's only
    for (const dir of [join(disk.dir, "objects"), join(objs[0]!, ".."), join(disk.dir, "tmp")]) expect([dir, (statSync(dir).mode & 0o777).toString(8)]).toEqual([dir, "700"]);
  } finally {
    process.umask(old);
  }
});

test("a cache folder made before (objects/ and tmp/ 0755, files 0644) is made owner-only at start", async () => {
  const dir = join(root, "old");
  mkdirSync(join(dir, "objects", "ab"), { recursive: true, mode: 0o755 });
  mkdirSync(join(dir, "tmp"), { recursive: true, mode: 0o755 });
  chmodSync(join(dir, "objects"), 0o755);
  chmodSync(join(dir, "tmp"), 0o755);
  const disk = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 8 << 20 });
  await disk.ready;
  for (const sub of ["objects", "tmp"]) expect([sub, (statSync(join(dir, sub)).mode & 0o777).toString(8)]).toEqual([sub, "700"]);
});

test("a folder outside the cache folder that tmp/ or objects/ links to keeps its mode", async () => {
  const dir = join(root, "linked");
  mkdirSync(dir, { recursive: true });
  for (const sub of ["objects", "tmp"]) {
    const outside = join(root, `outside-${sub}`);
    mkdirSync(outside, { mode: 0o755 });
    chmodSync(outside, 0o755);
    symlinkSync(outside, join(dir, sub));
  }
  const disk = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 8 << 20 });
  await disk.ready;
  for (const sub of ["objects", "tmp"]) expect([sub, (statSync(join(root, `outside-${sub}`)).mode & 0o777).toString(8)]).toEqual([sub, "755"]);
  await disk.close();
});
