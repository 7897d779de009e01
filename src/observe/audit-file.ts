/**
 * The audit trail's file: an append-only text file with size-based rotation, written off the
 * request path.
 *
 * - `append(line)` only queues (a string push); the disk is written by one asynchronous flush at a
 *   time (node:fs/promises, so the event loop never waits for the disk), at least every
 *   `flushIntervalMs`, sooner once `flushBytes` are waiting, and at `close()`.
 * - The queue is bounded (`queueBytes`): when the disk cannot keep up or is failing, new lines are
 *   dropped and counted, never buffered without limit and never waited for.
 * - Rotation: before a line that would take the file past `maxBytes`, path → path.1 → path.2 …
 *   → path.<maxFiles> (the oldest is overwritten). A file passes `maxBytes` only when it holds a
 *   single line longer than that.
 * - Failures (read-only folder, full disk, a folder gone) are counted per attempt and logged once
 *   per state change (failing / writing again); the lines stay queued and are retried at the next
 *   flush. A write that stopped half-way keeps its unwritten bytes, so no line is doubled or cut.
 * - The file moved or deleted under the process (logrotate's `mv`, `rm -rf` of the folder): before
 *   writing, at most about once a second (every timer flush) and at `reopen()` (a reload), the
 *   path's device and inode are compared with the open file's. When the path names another file or
 *   none, that is logged and counted once, and the path is opened again (its folder recreated when
 *   it was there before), so no line goes to an unlinked file; if it cannot be, the failure path
 *   above takes over.
 */
import { constants } from "node:fs";
import { mkdir, open, rename, stat, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import type { Logger } from "./log.ts";

const APPEND = constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | (constants.O_NONBLOCK ?? 0);

export interface AuditFileOptions {
  path: string;
  maxBytes: number;
  maxFiles: number;
  log: Logger;
  /** Called once per failed open/write/rotate. */
  onError?: () => void;
  /** Called with the number of lines lost (queue full, or still failing at close). */
  onDrop?: (lines: number) => void;
  /** Largest amount of text waiting for the disk (default 8 MiB, counted in UTF-16 units). */
  queueBytes?: number;
  flushIntervalMs?: number;
  flushBytes?: number;
}

export class AuditFile {
  private queue: string[] = [];
  private queued = 0;
  /** Unwritten tail of a write that stopped half-way; written before anything queued. */
  private rest: Buffer | undefined;
  private fh: FileHandle | undefined;
  private size = 0;
  /**
   * The open file is a regular file. Anything else (a pipe, a device: `/dev/stdout` in a container,
   * `/dev/null`) is never rotated: rotating renamed the path, so `audit.path: /dev/stdout` moved
   * the /dev/stdout symlink to /dev/stdout.1 and went on in a regular file it created in its place.
   */
  private rotatable = true;
  private flushing: Promise<void> | undefined;
  private failing = false;
  private dropping = false;
  private closed = false;
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly queueBytes: number;
  private readonly flushBytes: number;
  /** Device and inode of the open file: the path must still name it (see checkPath). */
  private dev = 0;
  private ino = 0;
  /** When the path was last compared with the open file (performance.now()). */
  private checkedAt = 0;
  /** Compare at the next drain whatever the time (set by the timer and by reopen()). */
  private recheck = false;
  /** The file was open once: its folder existed, so a folder removed since is recreated. */
  private opened = false;

  constructor(private readonly o: AuditFileOptions) {
    this.queueBytes = o.queueBytes ?? 8 * 1024 * 1024;
    this.flushBytes = o.flushBytes ?? 256 * 1024;
    this.timer = setInterval(() => {
      this.recheck = true;
      void this.flush();
    }, o.flushIntervalMs ?? 1000);
    this.timer.unref?.();
  }

  /** Text waiting for the disk (UTF-16 units). */
  get pending(): number {
    return this.queued + (this.rest?.length ?? 0);
  }

  /** Queues one line (with its newline). Never waits, never throws. */
  append(line: string): void {
    if (this.closed) {
      this.o.onDrop?.(1);
      return;
    }
    if (this.pending + line.length > this.queueBytes) {
      if (!this.dropping) {
        this.dropping = true;
        this.o.log.warn("audit trail queue full: dropping events until the file is writable again", { path: this.o.path, queued_bytes: this.queued });
      }
      this.o.onDrop?.(1);
      return;
    }
    this.queue.push(line);
    this.queued += line.length;
    if (this.queued >= this.flushBytes && this.flushing === undefined && !this.failing) void this.flush();
  }

  /** Writes what is queued (one flush at a time; a call during a flush waits for it and flushes again). */
  async flush(): Promise<void> {
    while (this.flushing !== undefined) await this.flushing;
    if (this.queue.length === 0 && this.rest === undefined) return;
    this.flushing = this.drain().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  /**
   * Checks now that the path still names the open file, reopening it (and recreating its folder)
   * if it does not, then writes what is queued. A reload (SIGHUP) calls it: after a logrotate-style
   * `mv` or a removed folder, the file is back at its path even before the next event.
   */
  async reopen(): Promise<void> {
    if (this.closed) return;
    this.recheck = true;
    while (this.flushing !== undefined) await this.flushing;
    this.flushing = this.drain().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  /** Stops the timer, writes what is queued (one attempt) and closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.timer);
    await this.flush();
    this.closed = true;
    const lost = this.queue.length + (this.rest !== undefined ? linesIn(this.rest) : 0);
    if (lost > 0) {
      this.o.onDrop?.(lost);
      this.o.log.error("audit trail closed with events not written", { path: this.o.path, events: lost });
    }
    this.queue = [];
    this.queued = 0;
    this.rest = undefined;
    await this.fh?.close().catch(() => {});
    this.fh = undefined;
  }

  private async drain(): Promise<void> {
    try {
      if (this.recheck || (this.fh !== undefined && performance.now() - this.checkedAt >= CHECK_INTERVAL_MS)) await this.checkPath();
      while (this.rest !== undefined || this.queue.length > 0) {
        const fh = await this.openFile();
        if (this.rest !== undefined) {
          const b = this.rest;
          this.rest = undefined;
          await this.writeAll(fh, b);
          continue;
        }
        let room = this.o.maxBytes - this.size;
        const first = Buffer.byteLength(this.queue[0]);
        if (first > room && this.size > 0 && this.rotatable) {
          await this.rotate();
          continue;
        }
        // Whole lines that fit (at least one, into an empty file).
        let n = 0;
        const parts: string[] = [];
        while (n < this.queue.length) {
          const len = n === 0 ? first : Buffer.byteLength(this.queue[n]);
          if (n > 0 && len > room) break;
          parts.push(this.queue[n]);
          room -= len;
          n++;
        }
        const taken = this.queue.splice(0, n);
        for (const l of taken) this.queued -= l.length;
        await this.writeAll(fh, Buffer.from(parts.join("")));
      }
      if (this.failing) {
        this.failing = false;
        this.o.log.info("audit trail writing again", { path: this.o.path });
      }
      this.dropping = false;
    } catch (err) {
      this.o.onError?.();
      if (!this.failing) {
        this.failing = true;
        const e = err as { code?: string; message?: string };
        this.o.log.error("audit trail cannot be written; events stay queued (bounded) and are retried every second", { path: this.o.path, error: e?.code ?? e?.message ?? String(err) });
      }
      // Reopen next time: the folder may have been fixed, or replaced.
      const fh = this.fh;
      this.fh = undefined;
      await fh?.close().catch(() => {});
    }
  }

  /**
   * Whether the path still names the open file; if not (moved, deleted, replaced), logs and counts
   * it once and opens the path again. A path that cannot be looked at (EACCES…) keeps the file.
   */
  private async checkPath(): Promise<void> {
    const asked = this.recheck;
    this.recheck = false;
    this.checkedAt = performance.now();
    const fh = this.fh;
    if (fh === undefined) {
      // reopen() while not open: a file that was written before is recreated now.
      if (asked && this.opened) await this.openFile();
      return;
    }
    let gone: string | undefined;
    try {
      const st = await stat(this.o.path);
      if (st.dev !== this.dev || st.ino !== this.ino) gone = "replaced";
    } catch (err) {
      const code = (err as { code?: string })?.code;
      if (code === "ENOENT" || code === "ENOTDIR") gone = "missing";
    }
    if (gone === undefined) return;
    this.o.onError?.();
    this.o.log.warn("audit trail file was moved or deleted: opening its path again", { path: this.o.path, found: gone });
    this.fh = undefined;
    await fh.close().catch(() => {});
    await this.openFile();
  }

  /**
   * Opened as "a" is, but without waiting: a FIFO with no reader held the open (and with it the
   * drain: SIGTERM never finished) for ever; it now fails (ENXIO) like any unwritable path, and
   * the events wait in the queue.
   */
  private async openFile(): Promise<FileHandle> {
    if (this.fh !== undefined) return this.fh;
    let fh: FileHandle;
    try {
      fh = await open(this.o.path, APPEND, 0o640);
    } catch (err) {
      // A folder removed after the file was written in it is recreated (once per attempt).
      if ((err as { code?: string })?.code !== "ENOENT" || !this.opened) throw err;
      await mkdir(dirname(this.o.path), { recursive: true, mode: 0o750 });
      this.o.log.info("audit trail folder recreated", { path: this.o.path });
      fh = await open(this.o.path, APPEND, 0o640);
    }
    try {
      const st = await fh.stat();
      this.size = st.size;
      this.rotatable = st.isFile();
      this.dev = st.dev;
      this.ino = st.ino;
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    this.fh = fh;
    this.opened = true;
    this.checkedAt = performance.now();
    return fh;
  }

  /** Writes `b` whole; on failure the unwritten tail is kept in `rest` and the error rethrown. */
  private async writeAll(fh: FileHandle, b: Buffer): Promise<void> {
    let off = 0;
    try {
      while (off < b.length) {
        const { bytesWritten } = await fh.write(b, off, b.length - off);
        if (bytesWritten <= 0) throw Object.assign(new Error("no bytes written"), { code: "EIO" });
        off += bytesWritten;
        this.size += bytesWritten;
      }
    } catch (err) {
      this.rest = b.subarray(off);
      throw err;
    }
  }

  private async rotate(): Promise<void> {
    const p = this.o.path;
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
    for (let i = this.o.maxFiles - 1; i >= 1; i--) {
      await rename(`${p}.${i}`, `${p}.${i + 1}`).catch((err: { code?: string }) => {
        if (err?.code !== "ENOENT") throw err;
      });
    }
    await rename(p, `${p}.1`);
    this.size = 0;
  }
}

/** How often, at most, the path is compared with the open file outside the timer's flushes. */
const CHECK_INTERVAL_MS = 1000;

/** Lines (newlines) in an unwritten tail: what is lost if it is never written. */
function linesIn(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
  return n;
}
