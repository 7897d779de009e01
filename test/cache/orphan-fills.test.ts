/**
 * A streaming fill whose client left reads on into the file for nobody: it holds an upstream
 * connection that no request slot counts. At most MAX_ORPHAN_DRAINS run at once per process; beyond
 * that such a fill is dropped (upstream cancelled, nothing stored). Before, every client that
 * started a large object and left at once added a download that ran to its end, unbounded.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { MAX_ORPHAN_DRAINS, runningOrphanDrains, teeToWriter } from "../../src/cache/stream-fill.ts";
import type { LayerWriter } from "../../src/cache/types.ts";
import { waitFor } from "../helpers/wait.ts";

setDefaultTimeout(30_000);

/** An upstream body that sends one chunk, then one more each time `step()` is called, until `end()`. */
function pacedUpstream() {
  let ctrl!: ReadableStreamDefaultController<Uint8Array>;
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      ctrl = c;
      c.enqueue(new Uint8Array(1024).fill(1));
    },
    cancel() {
      cancelled = true;
    },
  });
  return {
    body,
    step: () => ctrl.enqueue(new Uint8Array(1024).fill(2)),
    end: () => ctrl.close(),
    get cancelled() {
      return cancelled;
    },
  };
}

function fakeWriter() {
  const w = { written: 0, aborted: false, committed: false } as { written: number; aborted: boolean; committed: boolean } & LayerWriter;
  w.write = async (c: Uint8Array) => void (w.written += c.byteLength);
  w.commit = async () => (w.committed = true);
  w.abort = () => void (w.aborted = true);
  return w;
}

test(`at most ${MAX_ORPHAN_DRAINS} fills read on for nobody; the next one whose client leaves is dropped, and a finished one frees its place`, async () => {
  const SIZE = 3 * 1024;
  const fills = Array.from({ length: MAX_ORPHAN_DRAINS + 2 }, () => ({ up: pacedUpstream(), writer: fakeWriter() }));
  for (const f of fills) {
    const client = teeToWriter(f.up.body, f.writer, SIZE, undefined, () => {}).getReader();
    expect((await client.read()).value?.byteLength).toBe(1024);
    await client.cancel(); // the client leaves after its first chunk
  }
  expect(runningOrphanDrains()).toBe(MAX_ORPHAN_DRAINS);
  const kept = fills.slice(0, MAX_ORPHAN_DRAINS);
  const dropped = fills.slice(MAX_ORPHAN_DRAINS);
  for (const f of dropped) {
    expect(f.up.cancelled).toBe(true);
    expect(f.writer.aborted).toBe(true);
  }
  for (const f of kept) expect(f.up.cancelled || f.writer.aborted).toBe(false);
  // the kept ones are still read into their files, to the end, and committed
  for (const f of kept) {
    f.up.step();
    f.up.step();
    f.up.end();
  }
  await waitFor(() => kept.every((f) => f.writer.committed), { timeoutMs: 5000, message: "the kept fills to be committed" });
  expect(kept.every((f) => f.writer.written === SIZE)).toBe(true);
  expect(runningOrphanDrains()).toBe(0);
  // a place is free again: the next orphan fill reads on
  const next = { up: pacedUpstream(), writer: fakeWriter() };
  const client = teeToWriter(next.up.body, next.writer, 2048, undefined, () => {}).getReader();
  await client.read();
  await client.cancel();
  expect(runningOrphanDrains()).toBe(1);
  next.up.step();
  next.up.end();
  await waitFor(() => next.writer.committed, { timeoutMs: 5000, message: "the next fill to be committed" });
  expect(runningOrphanDrains()).toBe(0);
});

test("a fill that fails or stalls while read for nobody frees its place", async () => {
  const f = { up: pacedUpstream(), writer: fakeWriter() };
  const client = teeToWriter(f.up.body, f.writer, 1 << 20, 50, () => {}).getReader();
  await client.read();
  await client.cancel();
  expect(runningOrphanDrains()).toBe(1);
  await waitFor(() => f.writer.aborted, { timeoutMs: 5000, message: "the stalled fill to be abandoned" });
  expect(runningOrphanDrains()).toBe(0);
});

test("a request that follows the fill and leaves (a conditional GET answered 304 from it) does not exempt it from the budget", async () => {
  const fills: Array<{ up: ReturnType<typeof pacedUpstream>; writer: ReturnType<typeof fakeWriter> }> = [];
  for (let i = 0; i < MAX_ORPHAN_DRAINS * 3; i++) {
    const f = { up: pacedUpstream(), writer: fakeWriter() };
    fills.push(f);
    // a tap as FillTap keeps it: followers counted, onFollow / onUnfollow called around them
    const tap = { onFollow: undefined as undefined | (() => void), onUnfollow: undefined as undefined | (() => void), followers: 0, acquire: async () => undefined, fail() {}, writing() {}, advance() {}, complete() {}, end() {} };
    const client = teeToWriter(f.up.body, f.writer, 1 << 30, undefined, () => {}, tap as never).getReader();
    await client.read();
    await client.cancel(); // the client leaves
    tap.followers++; // a conditional GET joins the fill...
    tap.onFollow!();
    tap.followers--; // ...and is answered 304 from its headers: its cursor closes at once
    tap.onUnfollow!();
  }
  expect(fills.filter((f) => !f.up.cancelled && !f.writer.aborted)).toHaveLength(MAX_ORPHAN_DRAINS);
  expect(runningOrphanDrains()).toBe(MAX_ORPHAN_DRAINS);
  for (const f of fills) if (!f.up.cancelled) f.up.end(); // (ends the kept ones: another length than declared, not stored)
  await waitFor(() => runningOrphanDrains() === 0, { timeoutMs: 5000, message: "the kept fills to end" });
});
