/**
 * Bodies that stream from the upstream to one client (a bypass, or a streaming fill that also
 * writes them to a layer, the disk), pulled at the client's pace.
 *
 * - Memory stays flat: the upstream is read only when the client asks for more, and the file may
 *   fall at most MAX_PENDING_WRITE_BYTES behind the client before the client waits for it (a chunk
 *   handed to the client and to the file is one buffer, not a copy). So a slow client never makes
 *   the proxy hold the object, and a fast one is slowed to the disk's pace only when the disk
 *   really lags.
 * - A stalled upstream ends the body: a read that waits longer than `stallMs` aborts the fill's
 *   request and errors the client's stream (a cut body, never one that looks complete).
 * - The client going away does not waste the transfer: the rest is read into the file at the
 *   disk's pace and committed, so the next request is a hit. A fill is committed only when the
 *   body ended cleanly with exactly the declared length. Such a fill holds an upstream connection
 *   that no request slot counts any more, so at most MAX_ORPHAN_DRAINS of them run at once per
 *   process; beyond that a fill nobody reads is dropped (upstream cancelled, nothing stored):
 *   clients that each start a large object and leave at once cannot pile up downloads.
 *   A fill that requests follow is theirs, and goes on.
 * - Other requests for the object may follow the fill from its file (fill-tap.ts): then the rest
 *   is read into the file at the disk's pace too, and the client reads on from the file.
 */
import { ProxyError } from "../errors.ts";
import { FillReader, type FillCursor, type FillTap, type ResumeFromUpstream } from "./fill-tap.ts";
import type { LayerWriter } from "./types.ts";

/** How far the file may fall behind the client before the client waits for it. */
const MAX_PENDING_WRITE_BYTES = 4 * 1024 * 1024;

/** Fills read on after their client left, with no request following them (per process). */
export const MAX_ORPHAN_DRAINS = 8;
let orphanDrains = 0;
/** How many such fills run now (tests). */
export function runningOrphanDrains(): number {
  return orphanDrains;
}

type ReadResult = { done: true; value?: undefined } | { done: false; value: Uint8Array };
/** What is used of a stream's default reader. */
interface Reader {
  read(): Promise<ReadResult>;
  cancel(reason?: unknown): Promise<void>;
}

const stalledError = () => new ProxyError("GatewayTimeout", { detail: "The upstream stalled while sending the object" });

/**
 * Reads with a stall guard: when a read waits longer than `stallMs`, `onStall` aborts the request
 * and the read fails (whatever the reader does with the abort: some end the stream cleanly when
 * cancelled, which must not pass for the end of the body).
 */
function stallGuard(reader: Reader, stallMs: number | undefined, onStall: () => void): () => Promise<ReadResult> {
  if (stallMs === undefined) return () => reader.read();
  let stalled = false;
  return () => {
    const timer = setTimeout(() => {
      stalled = true;
      onStall();
      reader.cancel(stalledError()).catch(() => {});
    }, stallMs);
    return reader.read().then(
      (r) => {
        clearTimeout(timer);
        if (stalled) throw stalledError();
        return r;
      },
      (err) => {
        clearTimeout(timer);
        throw stalled ? stalledError() : err;
      },
    );
  };
}

/** The upstream body for one client, with the stall guard. */
export function watchStalls(body: ReadableStream<Uint8Array>, stallMs: number | undefined, onStall: () => void): ReadableStream<Uint8Array> {
  if (stallMs === undefined) return body;
  const reader = body.getReader() as unknown as Reader;
  const read = stallGuard(reader, stallMs, onStall);
  return new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        const r = await read();
        if (r.done) c.close();
        else c.enqueue(r.value);
      },
      cancel(reason) {
        return reader.cancel(reason).catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * The upstream body for one client, written to `writer` as it goes (see the module comment).
 * `declared`: the Content-Length the object was announced with; anything else is not committed.
 * `tap`: what requests following the fill read (fill-tap.ts): told of every chunk in the file, of
 * the end and of a failure. Once one follows, the upstream is read into the file at the disk's pace
 * (as when the client goes away) and this client's body comes from the file too, from where it
 * was: neither a slow client nor a slow follower paces the others.
 */
export function teeToWriter(body: ReadableStream<Uint8Array>, writer: LayerWriter, declared: number, stallMs: number | undefined, onStall: () => void, tap?: FillTap, resume?: ResumeFromUpstream): ReadableStream<Uint8Array> {
  const reader = body.getReader() as unknown as Reader;
  const read = stallGuard(reader, stallMs, onStall);
  let total = 0;
  let pending = 0;
  let chain: Promise<void> = Promise.resolve();
  let writing = true;
  let settled = false;
  /** The upstream body ended (read done). */
  let upstreamDone = false;
  /** The upstream is read into the file regardless of the client (drain). */
  let draining = false;
  /** A read of this client's pull is in progress. */
  let pulling = false;
  /** A request follows: the client is to read from the file (cursor opened, not yet switched). */
  let wantFile = false;
  /** This fill counts in orphanDrains (read on for nobody). */
  let orphan = false;
  let next: FillCursor | undefined;
  /** The client's body now comes from the file (after a disk error, from the upstream: FillReader). */
  let fromFile: FillReader | undefined;
  let cancelled = false;

  const unorphan = () => {
    if (!orphan) return;
    orphan = false;
    orphanDrains--;
  };
  const abandon = (err?: unknown, disk = false) => {
    unorphan();
    if (settled) return;
    settled = true;
    writing = false;
    writer.abort();
    tap?.fail(err ?? new ProxyError("BadGateway", { detail: "The cache fill failed" }), disk);
  };
  const toFile = (chunk: Uint8Array) => {
    total += chunk.byteLength;
    if (!writing) return;
    if (total > declared) return abandon(new ProxyError("BadGateway", { detail: "The upstream sent more than it announced" }));
    pending += chunk.byteLength;
    chain = chain.then(
      () => {
        if (!writing) return;
        tap?.writing();
        return writer.write(chunk);
      },
    ).then(
      () => {
        pending -= chunk.byteLength;
        if (writing) tap?.advance(chunk.byteLength);
      },
      (err) => abandon(err, true), // the file failed (disk full...): the client's body goes on without it
    );
  };
  const ended = async () => {
    upstreamDone = true;
    await chain;
    unorphan();
    if (settled || !writing) return;
    settled = true;
    if (total !== declared) {
      writer.abort();
      tap?.fail(new ProxyError("BadGateway", { detail: "The upstream sent a body of another length than it announced" }));
      return;
    }
    tap?.complete();
    await writer.commit().catch(() => false);
    tap?.end();
  };
  /** The client went away, or requests follow: read the rest into the file, at the disk's pace. */
  const drain = async () => {
    if (draining) return;
    draining = true;
    let failure: unknown;
    try {
      for (;;) {
        if (pending > MAX_PENDING_WRITE_BYTES) await chain;
        if (!writing) break;
        const r = await read();
        if (r.done) return await ended();
        toFile(r.value);
      }
    } catch (err) {
      failure = err; // upstream failed or stalled: nothing to commit
    }
    abandon(failure);
    reader.cancel().catch(() => {});
  };
  /** This client's body continues from the file, at its position; the upstream is drained into the file. */
  const switchToFile = () => {
    const c = next;
    next = undefined;
    if (c === undefined) return;
    if (draining || settled || upstreamDone || cancelled) return c.close();
    c.pos = total; // every byte read so far was handed to the client
    fromFile = new FillReader(c, declared, tap, resume);
    void drain();
  };
  /**
   * The client left and no request follows: the fill is read on for nobody, within the process's
   * budget (false: over it, the fill was dropped). Asked again whenever the last follower leaves.
   */
  const readForNobody = (): boolean => {
    if (!cancelled || settled || !writing || orphan || (tap !== undefined && tap.followers > 0)) return true;
    if (orphanDrains >= MAX_ORPHAN_DRAINS) {
      abandon(new ProxyError("BadGateway", { detail: "The cache fill was dropped: its client left" }));
      reader.cancel().catch(() => {});
      return false;
    }
    orphan = true;
    orphanDrains++;
    return true;
  };
  const follow = () => {
    unorphan(); // (it is read for someone again)
    if (wantFile || draining || settled || upstreamDone || tap === undefined) return;
    wantFile = true;
    void tap.acquire().then((c) => {
      if (c === undefined) return; // the client stays on the upstream
      next = c;
      if (!pulling) switchToFile();
    });
  };
  if (tap !== undefined) {
    tap.onFollow = follow;
    tap.onUnfollow = () => void readForNobody();
  }

  return new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        if (fromFile !== undefined) {
          const chunk = await fromFile.next();
          if (chunk !== undefined) c.enqueue(chunk);
          else if (!cancelled) c.close();
          return;
        }
        pulling = true;
        try {
          if (pending > MAX_PENDING_WRITE_BYTES) await chain;
          let r: ReadResult;
          try {
            r = await read();
          } catch (err) {
            abandon(err);
            throw err;
          }
          if (r.done) {
            c.close();
            void ended();
            return;
          }
          toFile(r.value);
          c.enqueue(r.value);
        } finally {
          pulling = false;
          if (next !== undefined) switchToFile();
        }
      },
      cancel() {
        cancelled = true;
        if (fromFile !== undefined) {
          const stopped = fromFile.stop(); // the drain goes on, for the followers, or for nobody within the budget
          readForNobody();
          return stopped;
        }
        next?.close();
        next = undefined;
        if (writing && !settled) {
          if (readForNobody()) void drain();
        } else reader.cancel().catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
}
