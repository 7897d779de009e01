/**
 * Bytes written and hashed (or sliced into one string) from a buffer kept for the process, by the
 * synchronous writers of the request paths (the signer's canonical request and string to sign,
 * the own client's request head; SigV4 verification hashes its own the same way). Writing each
 * piece into it replaces joining a string per piece (a rope cell each, flattened again when
 * hashed or sent).
 */

/** Node's Buffer methods Bun has too, untyped in @types/node. */
export interface TextBuffer extends Buffer {
  utf8Write(s: string, offset: number, length?: number): number;
  latin1Write(s: string, offset: number, length?: number): number;
  utf8Slice(start?: number, end?: number): string;
  latin1Slice(start?: number, end?: number): string;
}

/** Text that is the same bytes in Latin-1 and in UTF-8. */
export const ASCII_TEXT = /^[\x00-\x7f]*$/;

/** Lowercase hex digits as bytes. */
export const HEX_DIGITS = new Uint8Array(16).map((_, i) => "0123456789abcdef".charCodeAt(i));

/**
 * A growable scratch buffer. Only for code that writes and reads it with no await in between:
 * one serves every request that way, and nothing of it outlives the call that wrote it.
 */
export class Scratch {
  buf: TextBuffer;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size) as TextBuffer;
  }

  /**
   * Writes `s` at `at`, one byte per character (its Latin-1 bytes: ASCII text, or bytes carried
   * as characters), or as UTF-8 when `utf8` (twice as slow); the offset after it.
   */
  put(s: string, at: number, utf8 = false): number {
    if (!utf8) {
      this.room(at, s.length);
      return at + this.buf.latin1Write(s, at);
    }
    this.room(at, s.length * 3);
    return at + this.buf.utf8Write(s, at);
  }

  /** The first `n` bytes as a string: one character per byte, or decoded as UTF-8 when `utf8`. */
  text(n: number, utf8 = false): string {
    return utf8 ? this.buf.utf8Slice(0, n) : this.buf.latin1Slice(0, n);
  }

  /** Writes the two bytes `a` and `b` (a line end, a separator) at `at`; the offset after them. */
  put2(a: number, b: number, at: number): number {
    this.room(at, 2);
    this.buf[at] = a;
    this.buf[at + 1] = b;
    return at + 2;
  }

  /** The first `n` bytes of `bytes` as lowercase hex at `at`; the offset after them. */
  putHex(bytes: Uint8Array, n: number, at: number): number {
    this.room(at, 2 * n);
    return writeHex(this.buf, bytes, n, at);
  }

  /** The first `n` bytes, as a view kept per length (see viewOf). */
  view(n: number): Uint8Array {
    return viewOf(this.buf, n);
  }

  /** Grows the buffer (keeping its first `at` bytes) so that `more` bytes fit after `at`. */
  private room(at: number, more: number): void {
    if (at + more <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(at + more, this.buf.length * 2)) as TextBuffer;
    this.buf.copy(bigger, 0, 0, at);
    this.buf = bigger;
  }
}

/**
 * The first `n` bytes of a scratch buffer, as a view kept per length: hashing takes a whole
 * TypedArray, and a subarray per request is an object per request. Views of a buffer that was
 * replaced (grown) are dropped with it.
 */
const VIEWS = new WeakMap<Uint8Array, Uint8Array[]>();
/** Longer contents (rare) get a view each time: at most this many views are kept per buffer. */
const MAX_VIEW = 4096;
export function viewOf(buf: Uint8Array, n: number): Uint8Array {
  if (n > MAX_VIEW) return buf.subarray(0, n);
  let views = VIEWS.get(buf);
  if (views === undefined) VIEWS.set(buf, (views = new Array<Uint8Array>(MAX_VIEW + 1))); // (sized: indexed storage, not a sparse map)
  return (views[n] ??= buf.subarray(0, n));
}

/** The first `n` bytes of `bytes` as lowercase hex into `b` at `at` (room for 2n bytes there); the offset after them. */
export function writeHex(b: Uint8Array, bytes: Uint8Array, n: number, at: number): number {
  for (let i = 0; i < n; i++) {
    const x = bytes[i]!;
    b[at++] = HEX_DIGITS[x >> 4]!;
    b[at++] = HEX_DIGITS[x & 15]!;
  }
  return at;
}
