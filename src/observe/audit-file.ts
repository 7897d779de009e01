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
 */
import { open, rename, type FileHandle } from "node:fs/promises";
import type { Logger } from "./log.ts";

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
  private flushing: Promise<void> | undefined;
  private failing = false;
  private dropping = false;
  private closed = false;
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly queueBytes: number;
  private readonly flushBytes: number;

  constructor(private readonly o: AuditFileOptions) {
    this.queueBytes = o.queueBytes ?? 8 * 1024 * 1024;
    this.flushBytes = o.flushBytes ?? 256 * 1024;
    this.timer = setInterval(() => void this.flush(), o.flushIntervalMs ?? 1000);
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
        if (first > room && this.size > 0) {
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

  private async openFile(): Promise<FileHandle> {
    if (this.fh !== undefined) return this.fh;
    const fh = await open(this.o.path, "a", 0o640);
    try {
      this.size = (await fh.stat()).size;
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    this.fh = fh;
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

/** Lines (newlines) in an unwritten tail: what is lost if it is never written. */
function linesIn(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
  return n;
}
