/**
 * Requests following a streaming fill read its temporary file (fill-tap.ts). A file cut behind
 * the writer's back (an operator's `truncate`, a cleaner) got the next chunk appended at its new
 * end, where followers read it in place of bytes already counted: they were answered other bytes
 * of the object, as a 200. Now the write that finds the file changed fails the fill (a disk
 * error: the followers take the rest from the upstream), and bytes read while a write was in
 * flight are used only once it is checked. A file moved over the temporary file's name before a
 * request followed was opened by name and its bytes answered as the object's.
 */
import { afterAll, expect, test, setDefaultTimeout } from "bun:test";
import { appendFileSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiskLayer } from "../../src/cache/disk.ts";
import { FillTap, followerBody, type ResumeFromUpstream } from "../../src/cache/fill-tap.ts";
import { teeToWriter } from "../../src/cache/stream-fill.ts";
import type { LayerWriter, ObjectMeta } from "../../src/cache/types.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); a loaded machine needs more.
setDefaultTimeout(30_000);

const root = mkdtempSync(join(tmpdir(), "yata-fill-truncate-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const SIZE = 2 << 20;
const HALF = SIZE / 2;
const BODY = crypto.getRandomValues(new Uint8Array(SIZE));
const meta: ObjectMeta = { key: "b/k", headers: { etag: '"e1"', "content-length": String(SIZE) }, storedAt: 0, expiresAt: 60_000, size: SIZE };
/** The upstream's answer to a resume: exactly the object's bytes asked for. */
const resume: ResumeFromUpstream = async (pos, end) => new Response(BODY.slice(pos, end)).body!;

async function readAll(body: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(body).arrayBuffer());
}

/** An upstream body the test feeds. */
function upstream() {
  let ctrl!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (ctrl = c) }, { highWaterMark: 0 });
  return { body, send: (b: Uint8Array) => ctrl.enqueue(b), end: () => ctrl.close() };
}

/**
 * A fill whose first half is in the file and followed; then `change` is done to the temporary
 * file and the second half arrives. What the follower and the leader's client get.
 */
async function fillChangedMidway(dir: string, change: (tmp: string) => void) {
  const d = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 16 << 20 });
  await d.ready;
  const w = d.openWriter(meta)!;
  const tap = new FillTap(meta, 0, w.file!);
  const up = upstream();
  const client = teeToWriter(up.body, w, SIZE, undefined, () => {}, tap, resume).getReader();
  up.send(BODY.slice(0, HALF));
  const first = await client.read();
  await waitFor(() => tap.written === HALF, { message: "the first half in the file" });
  const cursor = (await tap.follow())!;
  expect(cursor).toBeDefined();
  const follower = followerBody(cursor, 0, SIZE, tap, resume);
  const [tmp] = readdirSync(join(dir, "tmp"));
  change(join(dir, "tmp", tmp!));
  up.send(BODY.slice(HALF));
  up.end();
  await waitFor(() => tap.state !== "filling", { message: "the fill to end" });
  const rest: Uint8Array[] = [];
  for (;;) {
    const r = await client.read();
    if (r.done) break;
    rest.push(r.value);
  }
  const leader = new Uint8Array([...first.value!, ...(await readAll(new Blob(rest).stream()))]);
  return { follower: await readAll(follower), leader, tap, d };
}

test("a temporary file cut (to nothing, or midway) or grown behind the writer's back: the followers and the leader's client get the object's bytes, never others", async () => {
  for (const [name, change] of [
    ["cut to nothing", (tmp: string) => truncateSync(tmp, 0)],
    ["cut midway", (tmp: string) => truncateSync(tmp, statSync(tmp).size - HALF / 2)],
    ["grown", (tmp: string) => appendFileSync(tmp, new Uint8Array(100))],
  ] as const) {
    const dir = join(root, name.replace(/ /g, "-"));
    const { follower, leader, tap, d } = await fillChangedMidway(dir, change);
    expect({ name, follower: follower.byteLength, same: Buffer.from(follower).equals(BODY) }).toEqual({ name, follower: SIZE, same: true });
    expect({ name, leader: leader.byteLength, same: Buffer.from(leader).equals(BODY) }).toEqual({ name, leader: SIZE, same: true });
    // a disk error (counted), the object not stored
    expect(tap.state).toBe("failed");
    expect(d.errors()).toBe(1);
    expect(await d.get(meta.key)).toBeUndefined();
    await d.close();
  }
});

test("bytes a follower reads while a write is in flight are used only once that write is checked: a file cut before it had the write land where the follower was reading", async () => {
  const path = join(root, "gated.part");
  const HEAD = 10;
  writeFileSync(path, new Uint8Array(HEAD));
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let writes = 0;
  let appended = 0;
  // A writer like DiskWrite (appends, then checks the file's length), whose second write's check
  // waits for the test: the window between a chunk landing in the file and its check.
  const writer: LayerWriter = {
    file: { path, bodyOffset: HEAD, opened: Promise.resolve(statSync(path).ino) },
    async write(chunk) {
      appendFileSync(path, chunk);
      if (++writes === 2) await gate;
      if (statSync(path).size !== HEAD + appended + chunk.byteLength) throw new Error("the temporary file was changed behind the writer's back");
      appended += chunk.byteLength;
    },
    commit: async () => true,
    abort: () => {},
  };
  const tap = new FillTap(meta, 0, writer.file!);
  const up = upstream();
  const client = teeToWriter(up.body, writer, SIZE, undefined, () => {}, tap, resume).getReader();
  up.send(BODY.slice(0, HALF));
  await client.read();
  await waitFor(() => tap.written === HALF, { message: "the first half in the file" });
  const cursor = (await tap.follow())!;
  const follower = followerBody(cursor, 0, SIZE, tap, resume).getReader();
  truncateSync(path, 0);
  up.send(BODY.slice(HALF));
  up.end();
  await waitFor(() => statSync(path).size === HALF, { message: "the second half to land in the cut file" });
  // The follower reads [0, HALF), counted as written: in the file now, the second half's bytes.
  let answered = false;
  const first = follower.read().then((r) => ((answered = true), r));
  await waitFor(() => answered || tap.waiting > 0, { message: "the follower to read" });
  release();
  const chunks: Uint8Array[] = [];
  let r = await first;
  while (!r.done) {
    chunks.push(r.value);
    r = await follower.read();
  }
  const got = new Uint8Array(await new Blob(chunks).arrayBuffer());
  expect(got.byteLength).toBe(SIZE);
  expect(Buffer.from(got).equals(BODY)).toBe(true);
  await client.cancel();
});

test("a temporary file replaced by another (moved over its name) before a request follows: the fill is not followed, never the other file's bytes", async () => {
  const dir = join(root, "replaced");
  const d = new DiskLayer({ dir, maxBytes: 64 << 20, maxItemBytes: 16 << 20 });
  await d.ready;
  const w = d.openWriter(meta)!;
  await w.write(BODY.slice(0, HALF));
  const tap = new FillTap(meta, 0, w.file!);
  tap.advance(HALF);
  const [tmp] = readdirSync(join(dir, "tmp"));
  const other = join(root, "other.part");
  writeFileSync(other, new Uint8Array(statSync(join(dir, "tmp", tmp!)).size).fill(7));
  renameSync(other, join(dir, "tmp", tmp!));
  expect(await tap.follow()).toBeUndefined();
  expect(tap.readers).toBe(0);
  w.abort();
  await d.close();
});
