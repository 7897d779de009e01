/**
 * A streaming fill (an object too big to buffer, written to the disk layer while it streams) that
 * other requests for the same key follow instead of going upstream themselves: each follower reads
 * the body from the file being written, at its own pace, waiting for more as the fill goes on.
 *
 * - Memory stays flat: a follower holds one chunk at a time, read from the file (pread); nothing
 *   of the object is kept in memory for it.
 * - A follower never paces the fill: it reads what is already in the file and waits for the rest.
 *   Once a request follows, the fill reads upstream at the disk's pace, not at its first client's
 *   (see teeToWriter), so a slow first client does not slow the followers either.
 * - A fill that fails (upstream cut or stalled, a length other than announced) ends every
 *   follower's body with that error: a cut body, never a short one that looks complete. A whole
 *   body ends only once the upstream body ended at exactly the announced length. A disk error (the
 *   disk full, the file gone or cut behind the writer's back) is not the upstream's: a follower
 *   goes on with the rest of its range from the upstream (Range + If-Match the fill's ETag: the
 *   same object, or a cut as before).
 * - The followers of one fill share one read handle, opened by the first and closed when the last
 *   one ends or goes away; a fill that is over (committed or failed) can no longer be joined.
 * - Per process: the fills other workers run are not seen here.
 */
import { fstatSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import type { ObjectMeta } from "./types.ts";
import { sameEtag } from "../http/conditional.ts";

/** Largest read a follower makes at once. */
const FOLLOW_CHUNK_BYTES = 256 * 1024;

/** Where a streaming writer puts the body (a file-backed layer's temporary file). */
export interface FillFile {
  path: string;
  /** Where the body starts in the file. */
  bodyOffset: number;
  /** Settles once the file exists, with its inode (rejects when it could not be created). */
  opened: Promise<number>;
}

/**
 * Bytes [pos, end) of the object from the upstream after a disk error: a body of exactly them,
 * or undefined when the upstream cannot give them as the same object (no ETag, another answer).
 */
export type ResumeFromUpstream = (pos: number, end: number, signal: AbortSignal) => Promise<ReadableStream<Uint8Array> | undefined>;

export class FillTap {
  /** Body bytes in the file (writes completed), readable through any handle. */
  written = 0;
  /** Writes to the file begun (writing) and checked (advance): a write's bytes may be in the file before it is checked. */
  private begun = 0;
  private checked = 0;
  /** complete: the upstream body ended at exactly meta.size bytes, all of them in the file. */
  state: "filling" | "complete" | "failed" = "filling";
  error: unknown;
  /** The failure was the disk's (a write or a read of the file), not the upstream's. */
  diskFailed = false;
  /** Called once per request that starts following (the leader then reads upstream at the disk's pace). */
  onFollow: (() => void) | undefined;
  /** Called when a following request is done with the fill (read to its end, left, or answered otherwise). */
  onUnfollow: (() => void) | undefined;
  /** Requests following the fill now (their cursors open). */
  followers = 0;
  /** The replica the fill reads from (a bucket with replicas): named in its followers' access lines. */
  replica: string | undefined;
  /** Called once when the fill is over (committed or not): it can no longer be joined. */
  onEnd: (() => void) | undefined;
  private over = false;
  private markOver!: () => void;
  /** Resolves when the fill is over (committed or not). */
  readonly ended = new Promise<void>((resolve) => (this.markOver = resolve));
  private wakers: (() => void)[] = [];
  private handle: Promise<FileHandle> | undefined;
  private refs = 0;

  constructor(
    readonly meta: ObjectMeta,
    /** The cache's purge-log point when the fill began. */
    readonly since: number,
    private readonly file: FillFile,
  ) {}

  /** Whether a request may still start following. */
  get joinable(): boolean {
    return !this.over && this.state !== "failed";
  }

  /** Readers waiting for a change (tests). */
  get waiting(): number {
    return this.wakers.length;
  }

  /** Read handles open (tests). */
  get readers(): number {
    return this.refs;
  }

  /** A write to the file begins: its bytes may be read before it is checked (see settled). */
  writing(): void {
    this.begun++;
  }

  /** A write was checked (the file has exactly what was written): its bytes count. */
  advance(bytes: number): void {
    this.written += bytes;
    this.checked++;
    this.wake();
  }

  /**
   * Once every write begun so far is checked, true (false: the fill failed): bytes read from the
   * file before this call were the object's. A file cut behind the writer's back gets the next
   * write at its new end, where a reader finds it in place of bytes already counted; that write's
   * check fails the fill (a disk error), and what was read meanwhile must not be used.
   */
  async settled(): Promise<boolean> {
    const mark = this.begun;
    while (this.checked < mark && this.state !== "failed") await this.changed();
    return this.state !== "failed";
  }

  complete(): void {
    if (this.state !== "filling") return;
    this.state = "complete";
    this.wake();
  }

  fail(err: unknown, disk = false): void {
    if (this.state !== "filling") return;
    this.state = "failed";
    this.diskFailed = disk;
    this.error = err ?? new Error("The cache fill failed");
    this.end();
    this.wake();
  }

  /** The fill is over (after its commit, or its failure). */
  end(): void {
    if (this.over) return;
    this.over = true;
    this.onEnd?.();
    this.markOver();
  }

  /** A cursor over the body for a request that follows the fill; undefined when it cannot (gone, failed). */
  async follow(): Promise<FillCursor | undefined> {
    const c = await this.acquire();
    if (c !== undefined) {
      c.follower = true;
      this.followers++;
      this.onFollow?.();
    }
    return c;
  }

  /** A cursor over the body (its read handle opened); undefined when the file cannot be read. */
  async acquire(): Promise<FillCursor | undefined> {
    if (!this.joinable) return undefined;
    this.refs++;
    const handle = (this.handle ??= this.openFile());
    let fh: FileHandle;
    try {
      fh = await handle;
    } catch {
      if (this.handle === handle) this.handle = undefined;
      this.release();
      return undefined;
    }
    if (this.state === "failed") {
      this.release();
      return undefined;
    }
    return new FillCursor(this, fh, this.file.bodyOffset);
  }

  /** Resolves at the next change (bytes written, completion, failure). */
  changed(): Promise<void> {
    return new Promise((resolve) => this.wakers.push(resolve));
  }

  /** A cursor is done with the handle: the last one closes it. */
  release(): void {
    this.refs--;
    if (this.refs > 0 || this.handle === undefined) return;
    const h = this.handle;
    this.handle = undefined;
    h.then((fh) => fh.close()).catch(() => {});
  }

  private async openFile(): Promise<FileHandle> {
    const ino = await this.file.opened;
    const fh = await open(this.file.path, "r");
    // The file being written, not another moved to its name (read as the object's, a 200).
    if (fstatSync(fh.fd).ino !== ino) {
      await fh.close().catch(() => {});
      throw new Error("The cache file being filled was replaced");
    }
    return fh;
  }

  private wake(): void {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }
}

/** One reader's position in a fill's body: [pos, end). */
export class FillCursor {
  pos = 0;
  end: number;
  /** A following request's (FillTap.follow), not the leader's own. */
  follower = false;
  private closed = false;

  constructor(
    private readonly tap: FillTap,
    private readonly fh: FileHandle,
    private readonly bodyOffset: number,
  ) {
    this.end = tap.meta.size;
  }

  /**
   * The next chunk, once it is in the file; undefined at the end (a whole body: once the fill is
   * complete). Throws the fill's error when it failed. Releases the handle at the end or failure.
   */
  async next(): Promise<Uint8Array | undefined> {
    const tap = this.tap;
    for (;;) {
      if (this.closed) return undefined;
      if (this.pos >= this.end && (this.end < tap.meta.size || tap.state === "complete")) {
        this.close();
        return undefined;
      }
      if (tap.state === "failed") {
        this.close();
        throw tap.error;
      }
      const available = Math.min(tap.written, this.end) - this.pos;
      if (available > 0) {
        const buf = new Uint8Array(Math.min(available, FOLLOW_CHUNK_BYTES));
        let n: number;
        try {
          ({ bytesRead: n } = await this.fh.read(buf, 0, buf.byteLength, this.bodyOffset + this.pos));
        } catch (err) {
          this.close();
          throw err;
        }
        if (this.closed) return undefined;
        const good = await tap.settled();
        if (this.closed) return undefined;
        if (!good) {
          this.close();
          throw tap.error;
        }
        if (n <= 0) {
          this.close();
          throw new Error("The cache file being filled ended early");
        }
        this.pos += n;
        return n === buf.byteLength ? buf : buf.subarray(0, n);
      }
      await tap.changed();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.tap.release();
    if (this.follower) {
      this.tap.followers--;
      this.tap.onUnfollow?.();
    }
  }
}

/** A follower's body: [start, end) of the fill, pulled at the client's pace; cancelling releases the handle. */
export function followerBody(cursor: FillCursor, start: number, end: number, tap?: FillTap, resume?: ResumeFromUpstream): ReadableStream<Uint8Array> {
  cursor.pos = start;
  cursor.end = end;
  const reading = new FillReader(cursor, end, tap, resume);
  return new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        const chunk = await reading.next();
        if (chunk !== undefined) c.enqueue(chunk);
        else if (!reading.stopped) c.close();
      },
      cancel() {
        reading.stop();
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * One reader's bytes [cursor.pos, end) of a fill: from the file, and after a disk error (the fill's
 * write, or this reader's own read of the file) the rest from the upstream through `resume`; an
 * upstream failure, or a rest the upstream cannot give as the same object, is this reader's cut.
 */
export class FillReader {
  stopped = false;
  /** The rest from the upstream, once a disk error came: `left` bytes still to come. */
  private rest: { reader: Reader; left: number } | undefined;
  /** Aborts the resume's upstream request when the reader stops (before or after it answered). */
  private resuming: AbortController | undefined;

  constructor(
    private readonly cursor: FillCursor,
    private readonly end: number,
    private readonly tap: FillTap | undefined,
    private readonly resume: ResumeFromUpstream | undefined,
  ) {}

  /** The next chunk; undefined at the end or once stopped. Throws a cut (never a short body). */
  async next(): Promise<Uint8Array | undefined> {
    if (this.rest === undefined) {
      try {
        return await this.cursor.next();
      } catch (err) {
        if (this.stopped) return undefined;
        this.rest = await this.restFromUpstream(err);
        if (this.stopped) return undefined;
      }
    }
    const rest = this.rest;
    const r = await rest.reader.read();
    if (r.done) {
      if (rest.left !== 0) throw new Error("The upstream ended the rest of the object early");
      return undefined;
    }
    rest.left -= r.value.byteLength;
    if (rest.left < 0) {
      this.stop();
      throw new Error("The upstream sent more than the rest of the object");
    }
    return r.value;
  }

  stop(): void {
    this.stopped = true;
    this.cursor.close();
    this.resuming?.abort();
    this.rest?.reader.cancel().catch(() => {});
  }

  private async restFromUpstream(err: unknown): Promise<{ reader: Reader; left: number }> {
    const { tap, resume, end } = this;
    const pos = this.cursor.pos;
    if (tap === undefined || resume === undefined || pos >= end) throw err;
    const disk = tap.state === "failed" && err === tap.error ? tap.diskFailed : true;
    if (!disk) throw err;
    this.resuming = new AbortController();
    const body = await resume(pos, end, this.resuming.signal).catch(() => undefined);
    if (body === undefined) throw err;
    // (the cast: one reader type for the DOM's and node:stream/web's)
    const reader = body.getReader() as unknown as Reader;
    if (this.stopped) reader.cancel().catch(() => {});
    return { reader, left: end - pos };
  }
}

/** What is used of a stream's default reader. */
interface Reader {
  read(): Promise<{ done: true; value?: undefined } | { done: false; value: Uint8Array }>;
  cancel(): Promise<void>;
}

/**
 * The resume of a fill's readers through `upstream`: bytes [pos, end) of the object with the
 * fill's ETag (If-Match: another version is a 412, no resume), taken only as the exact 206 that
 * names that ETag. The fill's ETag is quoted (quotedEtag, where the answer was read) even when the
 * store sent it bare (`ETag: abc123`); such a store may compare If-Match with its bare tag as text
 * and refuse the quoted one (412) though the object is unchanged: a 412 is asked once more with
 * the bare tag, which matches only that same tag.
 */
export function resumeThrough(upstream: (extra: Record<string, string>, signal: AbortSignal) => Promise<Response>, meta: ObjectMeta): ResumeFromUpstream | undefined {
  const etag = meta.headers.etag;
  if (etag === undefined || etag.startsWith("W/")) return undefined;
  return async (pos, end, signal) => {
    const range = `bytes=${pos}-${end - 1}`;
    let res = await upstream({ range, "if-match": etag }, signal);
    if (res.status === 412 && etag.charCodeAt(0) === 34 && etag.length > 2) {
      void res.body?.cancel().catch(() => {});
      res = await upstream({ range, "if-match": etag.slice(1, -1) }, signal);
    }
    return exactRest(res, etag, pos, end, meta.size);
  };
}

/** `res`'s body when it is exactly bytes [pos, end) of the `size`-byte object tagged `etag` (quoted or not), else undefined (the body cancelled). */
function exactRest(res: Response, etag: string, pos: number, end: number, size: number): ReadableStream<Uint8Array> | undefined {
  const range = res.headers.get("content-range");
  // The answer's own ETag too: a replica (or S3-compatible store) that ignores If-Match answered
  // another version's bytes of the same size, spliced after the fill's as one complete body.
  const answered = res.headers.get("etag");
  if (res.status !== 206 || res.body === null || range?.trim() !== `bytes ${pos}-${end - 1}/${size}` || answered === null || !sameEtag(answered, etag)) {
    void res.body?.cancel().catch(() => {});
    return undefined;
  }
  return res.body as ReadableStream<Uint8Array>;
}
