/**
 * One object being written to the disk layer: a temporary file in the layer's own tmp/ folder
 * (same filesystem, so the final rename is atomic), the head first, then the body as it comes.
 * Only a body of exactly the announced size is handed to the layer (which renames it into place);
 * anything else, a failure, a purge or a shutdown deletes the temporary file. A crash leaves only
 * a tmp/ file, which the next start removes; it is never under objects/, so never served.
 */
import { constants, fstatSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { mkdir, open, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { CRC_DIGITS, crcDigits } from "./disk-format.ts";
import type { FillFile } from "./fill-tap.ts";
import type { LayerWriter, ObjectMeta } from "./types.ts";

/** Which file an entry's name held when it was indexed (disk.ts: a hit checks it is still that file). */
export interface FileIdentity {
  ino: number;
  mtimeMs: number;
}

/** What a write needs from its layer. */
export interface WriteTarget {
  /** Moves a complete temporary file into place and indexes it; false when it was not wanted after all. */
  adopt(w: DiskWrite): Promise<boolean>;
  /** A write failed (disk full, permissions...): counted and logged by the layer; `w`, the write that failed, ends. */
  failed(err: unknown, what: string, w?: DiskWrite): void;
  /** A write ended either way (shutdown waits for the ones in progress). */
  ended(w: DiskWrite): void;
}

export class DiskWrite implements LayerWriter {
  private readonly fh: Promise<FileHandle>;
  /** Bytes before the body: the file will be headBytes + meta.size long. */
  readonly headBytes: number;
  /** Body bytes written to the temporary file so far. */
  written = 0;
  /** CRC-32 of those bytes (written in the file's head at the commit: disk-format.ts). */
  private crc = 0;
  private finished = false;
  private gone: Promise<void> | undefined;
  /** LayerWriter: the temporary file, which requests following the fill read (fill-tap.ts). */
  readonly file: FillFile;
  /** The disk room the layer set aside for this file (bytes), until it is stored or ends. */
  reservation = 0;
  /** Its place in the order the layer opened writes and began revalidations (DiskLayer.opens): which version came last. */
  seen = 0;
  /** The complete file's inode and modification time (set before adopt: the rename keeps both). */
  identity: FileIdentity = { ino: 0, mtimeMs: 0 };

  constructor(
    private readonly target: WriteTarget,
    readonly meta: ObjectMeta,
    /** Absolute path of the temporary file. */
    readonly tmp: string,
    /** The layer's purge-log point when the write began. */
    readonly since: number,
    private readonly fsync: boolean,
    /** The file's head (disk-format.ts encodeHead: the object's metadata and the stamp of its store). */
    head: Uint8Array,
  ) {
    this.headBytes = head.byteLength;
    this.fh = openCreating(tmp).then(async (fh) => {
      try {
        await writeAll(fh, head);
        return fh;
      } catch (err) {
        await fh.close().catch(() => {});
        throw err;
      }
    });
    this.fh.catch(() => {}); // observed by write/commit; never an unhandled rejection
    const ino = this.fh.then((fh) => fstatSync(fh.fd).ino);
    ino.catch(() => {}); // (awaited by followers; as fh)
    this.file = { path: tmp, bodyOffset: this.headBytes, opened: ino };
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.finished) throw new Error("disk write already ended");
    if (this.written + chunk.byteLength > this.meta.size) {
      await this.abort();
      throw new Error("body longer than announced");
    }
    try {
      const fh = await this.fh;
      await writeAll(fh, chunk);
      // Requests following the fill read the file up to what was written (fill-tap.ts): in a
      // file cut behind the writer's back this chunk lands at the new end, in place of bytes
      // already counted, and they were answered it as those. Checked at once (fstat: about a
      // microsecond), before the bytes count as written.
      const size = fstatSync(fh.fd).size;
      if (size !== this.headBytes + this.written + chunk.byteLength) throw new Error(`the temporary file was changed behind the writer's back: ${size} bytes, not ${this.headBytes + this.written + chunk.byteLength}`);
    } catch (err) {
      // (abandoned meanwhile, a shutdown or a failed fill: its file handle closed under this write on purpose, no disk error)
      if (!this.finished) this.target.failed(err, "write", this);
      await this.abort();
      throw err;
    }
    this.written += chunk.byteLength;
    this.crc = Bun.hash.crc32(chunk, this.crc);
  }

  /** Writes a whole Blob (a put of an object already in memory, or a copy of another file). */
  async writeBlob(body: Blob): Promise<void> {
    try {
      for await (const chunk of body.stream()) await this.write(chunk as Uint8Array);
    } catch (err) {
      // (the Blob's own read failed: the write ends, as a chunk's failure ends it; a file-backed
      // body's file gone, a revalidation's copy of a file purged meanwhile, here or by another
      // process on a shared folder, is no disk error)
      if (!this.finished && (err as { code?: string }).code !== "ENOENT") this.target.failed(err, "write", this);
      await this.abort();
      throw err;
    }
  }

  async commit(): Promise<boolean> {
    if (this.finished) return false;
    if (this.written !== this.meta.size) {
      await this.abort();
      return false;
    }
    this.finished = true;
    const done = this.store();
    // (an abort during the commit, the layer closing, waits for it: the temporary file is renamed or deleted by then)
    this.gone = done.then(noop, noop);
    return done;
  }

  private async store(): Promise<boolean> {
    try {
      const fh = await this.fh;
      let st;
      try {
        await writeCrc(this.tmp, this.headBytes - CRC_DIGITS, crcDigits(this.crc));
        if (this.fsync) await fh.sync();
        st = await fh.stat();
        // A whole second, which a revalidation rewriting the times in place can put back exactly
        // (disk.ts refreshTimes): another process sharing the folder that indexed the file
        // otherwise took that revalidation for a change behind its back, and deleted the file.
        // (read again: a file system may keep a coarser time)
        await fh.utimes(st.atime, Math.floor(st.mtimeMs / 1000));
        st = await fh.stat();
      } finally {
        await fh.close();
      }
      // (appended to, never written at an offset: a file cut short or grown behind the writer's
      // back has another length here, where its bytes would otherwise have been stored with a
      // hole of zeros where the cut part was, and served as the object)
      const size = this.headBytes + this.meta.size;
      if (st.size !== size) throw new Error(`the temporary file was changed behind the writer's back: ${st.size} bytes, not ${size}`);
      this.identity = { ino: st.ino, mtimeMs: st.mtimeMs };
      return await this.target.adopt(this);
    } catch (err) {
      this.target.failed(err, "commit", this);
      await unlink(this.tmp).catch(() => {});
      return false;
    } finally {
      this.target.ended(this);
    }
  }

  /** Abandons the write: closes and deletes the temporary file; resolves once it is gone. */
  abort(): Promise<void> {
    if (this.finished) return this.gone ?? Promise.resolve();
    this.finished = true;
    this.gone = this.fh
      .then((fh) => fh.close())
      .catch(() => {})
      .then(() => unlink(this.tmp))
      .catch(() => {})
      .finally(() => this.target.ended(this));
    return this.gone;
  }
}

const noop = () => {};

async function writeAll(fh: FileHandle, buf: Uint8Array): Promise<void> {
  let off = 0;
  while (off < buf.byteLength) {
    const { bytesWritten } = await fh.write(buf, off, buf.byteLength - off);
    if (bytesWritten <= 0) throw new Error("short write");
    off += bytesWritten;
  }
}

/**
 * Opens a new temporary file, for appending (see store: a file cut behind the writer's back stays
 * short, never gets a hole); its folder is recreated if it was removed behind the layer's back
 * (an operator's `rm -rf` of the cache folder: fills would otherwise fail until a restart).
 */
/**
 * Writes the body's CRC-32 over its placeholder in the head, at `at`: through a handle of its own,
 * the writer's appends whatever the offset (O_APPEND).
 */
async function writeCrc(tmp: string, at: number, digits: Uint8Array): Promise<void> {
  const fh = await open(tmp, constants.O_WRONLY | (constants.O_NOFOLLOW ?? 0));
  try {
    const { bytesWritten } = await fh.write(digits, 0, digits.byteLength, at);
    if (bytesWritten !== digits.byteLength) throw new Error("the CRC-32 could not be written in the head");
  } finally {
    await fh.close();
  }
}

async function openCreating(tmp: string): Promise<FileHandle> {
  try {
    return await open(tmp, "ax", FILE_MODE);
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") throw err;
    await mkdir(dirname(tmp), { recursive: true, mode: CACHE_DIR_MODE });
    return open(tmp, "ax", FILE_MODE);
  }
}

/**
 * Owner-only: a cached object may be one only a token holder may read (auth, OPA, OpenFGA), and
 * under the usual umask (022) its file was world-readable, so any local user could read around
 * the proxy's authorization. The rename into objects/ keeps the mode.
 */
const FILE_MODE = 0o600;
/** The layer's folders (objects/, tmp/ and those under them): owner-only too, as nginx makes its cache levels. */
export const CACHE_DIR_MODE = 0o700;
