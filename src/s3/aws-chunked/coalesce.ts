/**
 * Small pieces of a body that is held (a signed chunk until its signature is checked, a re-framed
 * chunk until it is full), copied together instead of kept as views. Each view and its own buffer
 * cost ~200 bytes: a client dripping its body in 16-byte TCP segments (each one a piece of the
 * request stream) made a held 16 MiB chunk take ~220 MiB of heap, the held-chunk budget counting
 * 15 MiB of it. Pieces of SMALL_PIECE bytes and more are kept as views (no copy for the SDKs'
 * bodies, which arrive in large pieces).
 */
const SMALL_PIECE = 4096;
const STAGE_BYTES = 64 * 1024;

export class Coalescer {
  private buf: Uint8Array | undefined;
  private used = 0;

  /** Appends `part` to `into`, a small one through the staging buffer; `room`: the bytes still to come, `part` included (sizes the buffer). */
  push(part: Uint8Array, into: Uint8Array[], room: number): void {
    if (part.length >= SMALL_PIECE) {
      this.flush(into);
      into.push(part);
      return;
    }
    if (this.buf !== undefined && this.used + part.length > this.buf.length) {
      this.flush(into);
      this.buf = undefined;
    }
    if (this.buf === undefined) {
      this.buf = new Uint8Array(Math.max(part.length, Math.min(STAGE_BYTES, room)));
      this.used = 0;
    }
    this.buf.set(part, this.used);
    this.used += part.length;
  }

  /**
   * Appends what is staged to `into`. The staging buffer's unused rest stays for the next small
   * pieces: a tiny piece between two large ones would otherwise take a staging buffer of its own
   * (16 bytes held in 64 KiB, a chunk costing 16 times its size).
   */
  flush(into: Uint8Array[]): void {
    if (this.buf === undefined || this.used === 0) return;
    into.push(this.buf.subarray(0, this.used));
    this.buf = this.used < this.buf.length ? this.buf.subarray(this.used) : undefined;
    this.used = 0;
  }

  drop(): void {
    this.buf = undefined;
  }
}
