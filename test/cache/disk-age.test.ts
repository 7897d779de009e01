/**
 * The disk layer under revalidations whose 304 carries an Age (an upstream cache in front of the
 * origin: a CDN, GCS's edge): the entry is refreshed in place (its 16 bytes of times), as for a
 * 304 without one, and every answer from it counts the age the 304 came with, after a restart too.
 * Stored as a header, each 304's Age differed from the file's, and the whole object was copied to
 * a new file at every revalidation.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cache } from "../../src/cache/cache.ts";
import { DiskLayer } from "../../src/cache/disk.ts";
import { dateBytes, dateOffset, decodeHead, encodeHead, HEAD_BYTES } from "../../src/cache/disk-format.ts";
import { serveWithCache } from "../../src/cache/serve.ts";
import { waitFor } from "../helpers/wait.ts";
import { bytesOf, controlledUpstream, tick } from "./helpers.ts";

setDefaultTimeout(30_000);

const root = mkdtempSync(join(tmpdir(), "yata-disk-age-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const ETAG = '"v1"';
const SIZE = 256 * 1024;
const policy = { ttlSeconds: 600, defaultTtlSeconds: 3600, maxItemBytes: 8 << 20 };

/** The object files under dir/objects, with their inodes. */
function files(dir: string): string[] {
  const base = join(dir, "objects");
  if (!existsSync(base)) return [];
  return readdirSync(base).flatMap((sub) => readdirSync(join(base, sub)).map((f) => `${join(base, sub, f)}#${statSync(join(base, sub, f)).ino}`));
}

/** A disk layer over `dir`, its index read. */
async function openDisk(dir: string): Promise<DiskLayer> {
  const d = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 8 << 20 });
  await d.ready;
  return d;
}

test("a 304 with an Age refreshes the disk file in place, and answers from it count that Age", async () => {
  const dir = join(root, "d1");
  let clock = 1_700_000_000_000;
  let disk = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 8 << 20 });
  await disk.ready;
  let cache = new Cache([disk]);
  const up = controlledUpstream();
  const serve = () => serveWithCache({ cache, bucket: "b", key: "k", method: "GET", reqHeaders: new Headers(), policy, upstream: up.fn, now: () => clock });

  const first = serve();
  await tick();
  up.respond(new Response(bytesOf(SIZE), { headers: { etag: ETAG, "content-length": String(SIZE), "cache-control": "max-age=60", age: "10" } }));
  expect((await first).response.headers.get("age")).toBe("10");
  // (the file in place and in the index: a rename done on the thread pool shows the file before
  // the layer has indexed it, and a revalidation asked then found no entry to make conditional)
  await waitFor(async () => files(dir).length === 1 && (await disk.get("b/k")) !== undefined);
  const stored = files(dir);

  for (const age of ["5", "30", "0"]) {
    clock += 61_000; // stale whatever the age: revalidated
    const next = serve();
    await waitFor(() => up.waiting === 1);
    expect(up.calls.at(-1)).toEqual({ "if-none-match": ETAG });
    up.respond(new Response(null, { status: 304, headers: { etag: ETAG, age } }));
    const revalidated = await next;
    expect([revalidated.cacheStatus, revalidated.response.headers.get("age")]).toEqual(["REVALIDATED", age]);
    await waitFor(async () => (await disk.get("b/k"))?.expiresAt === clock + (60 - Number(age)) * 1000);
    expect(files(dir)).toEqual(stored); // the same file: only its times rewritten
    clock += 2_000;
    const hit = await serve();
    expect([hit.cacheStatus, hit.response.headers.get("age")]).toEqual(["HIT", String(Number(age) + 2)]);
    expect(new Uint8Array(await hit.response.arrayBuffer())).toEqual(bytesOf(SIZE));
  }

  // The index rebuilt from the file at the next start: the same age.
  await disk.close();
  disk = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 8 << 20 });
  await disk.ready;
  cache = new Cache([disk]);
  clock += 3_000;
  const restored = await serve();
  expect([restored.cacheStatus, restored.response.headers.get("age")]).toEqual(["HIT", "5"]);
  await disk.close();
});

test("a 304's Date is the entry's from then on: rewritten in place with the times, after a restart too (the stored one was kept)", async () => {
  const dir = join(root, "d3");
  let clock = 1_700_000_000_000;
  let disk = await openDisk(dir);
  const cache = new Cache([disk]);
  const up = controlledUpstream();
  const serve = () => serveWithCache({ cache, bucket: "b", key: "k", method: "GET", reqHeaders: new Headers(), policy, upstream: up.fn, now: () => clock });
  const date = (ms: number) => new Date(ms).toUTCString();

  const first = serve();
  await tick();
  up.respond(new Response(bytesOf(SIZE), { headers: { etag: ETAG, "content-length": String(SIZE), "cache-control": "max-age=60", date: date(clock) } }));
  await (await first).response.arrayBuffer();
  await waitFor(async () => files(dir).length === 1 && (await disk.get("b/k")) !== undefined);
  const stored = files(dir);
  expect((await disk.get("b/k"))?.date).toBe(clock);

  for (const later of [61_000, 86_400_000]) {
    clock += later; // stale: revalidated
    const next = serve();
    await waitFor(() => up.waiting === 1);
    up.respond(new Response(null, { status: 304, headers: { etag: ETAG, date: date(clock) } }));
    expect((await next).cacheStatus).toBe("REVALIDATED");
    await waitFor(async () => (await disk.get("b/k"))?.storedAt === clock);
    expect([(await disk.get("b/k"))?.date, files(dir)]).toEqual([clock, stored]); // the same file, its Date rewritten
  }
  await disk.close();
  disk = await openDisk(dir);
  expect(await disk.get("b/k")).toMatchObject({ date: clock, storedAt: clock, expiresAt: clock + 60_000 });
  await disk.close();
});

test("the Date's slot in a file's head: rewritten in place, read back; an earlier release's head (no slot) is told apart", () => {
  const meta = { key: "b/k", headers: { "content-length": "3" }, storedAt: 1, expiresAt: 2, size: 3 };
  for (const date of [1_700_000_000_000, 0, -1000, undefined]) {
    const head = encodeHead({ ...meta, date: 5 });
    head.set(dateBytes(date), dateOffset(head.byteLength));
    expect(decodeHead(head, head.byteLength + 3)).toMatchObject({ date, dateSlot: true, crc: 0 }); // (the CRC placeholder after it untouched)
  }
  const old = new TextEncoder().encode(JSON.stringify({ key: "b/k", headers: meta.headers, date: 1_700_000_000_000, crc: "00000000" }));
  const head = new Uint8Array(HEAD_BYTES + old.byteLength);
  head.set(encodeHead({ ...meta, date: 5 }).subarray(0, HEAD_BYTES));
  new DataView(head.buffer).setUint32(28, old.byteLength, true);
  head.set(old, HEAD_BYTES);
  expect(decodeHead(head, head.byteLength + 3)).toMatchObject({ date: 1_700_000_000_000, dateSlot: false });
});

test("a new version fetched with an Age larger than the time since the old one was stored replaces it on disk", async () => {
  const at = { clock: 1_700_000_000_000 };
  const disk = await openDisk(join(root, "d2"));
  const [cache, up] = [new Cache([disk]), controlledUpstream()];
  const serve = () => serveWithCache({ cache, bucket: "b", key: "k", method: "GET", reqHeaders: new Headers(), policy, upstream: up.fn, now: () => at.clock });

  const first = serve();
  await tick();
  up.respond(new Response(bytesOf(SIZE), { headers: { etag: ETAG, "content-length": String(SIZE), "cache-control": "max-age=60" } }));
  await (await first).response.arrayBuffer();
  await waitFor(async () => (await disk.get("b/k")) !== undefined);

  // Stale: revalidated, and a CDN in front answers the new version it has held for 100 s.
  at.clock += 61_000;
  const next = serve();
  await waitFor(() => up.waiting === 1);
  const v2 = bytesOf(SIZE).map((b) => b ^ 0xff);
  up.respond(new Response(v2, { headers: { etag: '"v2"', "content-length": String(SIZE), "cache-control": "max-age=3600", age: "100" } }));
  expect(new Uint8Array(await (await next).response.arrayBuffer())).toEqual(v2);
  await waitFor(async () => (await disk.get("b/k"))?.headers.etag === '"v2"', { timeoutMs: 5_000, message: () => "the new version on disk" });

  at.clock += 2_000;
  const hit = await serve();
  expect([hit.cacheStatus, hit.response.headers.get("age")]).toEqual(["HIT", "102"]);
  expect(new Uint8Array(await hit.response.arrayBuffer())).toEqual(v2);
  await disk.close();
});
