/**
 * The chunked transfer-coding decoder (RFC 9112 §7.1): an incremental state machine with no I/O.
 * Feed it bytes as they arrive, split anywhere; it hands out the data as zero-copy slices of the
 * input and says whether it needs more, is done (and where the message ended), or failed.
 *
 * Strict: a chunk size is 1-12 hex digits (at most 2^48-1, so it stays an exact JS number), the
 * size line and the data end in CRLF exactly, chunk extensions are skipped but bounded, and
 * trailer fields are checked for shape, bounded, and discarded.
 */

export type ChunkedStatus = "more" | "done" | "error";

/** Receives the decoded data (an object rather than a callback: no closure per request). */
export interface ChunkedSink {
  onChunkData(chunk: Uint8Array): void;
}

const MAX_SIZE_DIGITS = 12;
const MAX_CHUNK_LINE = 4096;
const MAX_TRAILERS = 64 * 1024;

// States
const SIZE = 0;
const EXT = 1;
const SIZE_LF = 2;
const DATA = 3;
const DATA_CR = 4;
const DATA_LF = 5;
const TRAILER_START = 6;
const TRAILER_LINE = 7;
const TRAILER_LF = 8;
const END_LF = 9;
const DONE = 10;
const FAILED = 11;

export class ChunkedDecoder {
  private state = SIZE;
  private size = 0;
  private digits = 0;
  private line = 0;
  private trailer = 0;
  /** After "done": the index in the last fed buffer just past the message (bytes after it are not ours). */
  end = 0;
  /** After "error": why. */
  error = "";

  /**
   * Decodes `data`, calling `sink.onChunkData` with each slice of body data in order. Returns "more" when
   * all of `data` was consumed and the message is not finished, "done" (see `end`) or "error"
   * (see `error`). Once done or failed, further calls return the same status.
   */
  feed(data: Uint8Array, sink: ChunkedSink): ChunkedStatus {
    if (this.state === DONE) {
      this.end = 0; // the message ended before this buffer: none of it is ours
      return "done";
    }
    const n = data.length;
    let i = 0;
    while (i < n) {
      switch (this.state) {
        case DATA: {
          const take = Math.min(this.size, n - i);
          sink.onChunkData(data.subarray(i, i + take));
          i += take;
          this.size -= take;
          if (this.size === 0) this.state = DATA_CR;
          break;
        }
        case SIZE: {
          const c = data[i++];
          const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (d >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail("invalid chunk size from upstream");
            this.size = this.size * 16 + d;
            this.line++;
          } else if (this.digits === 0) {
            return this.fail("invalid chunk size from upstream");
          } else if (c === 13) {
            this.state = SIZE_LF;
          } else if (c === 59 || c === 32 || c === 9) {
            this.state = EXT;
          } else {
            return this.fail("invalid chunk size from upstream");
          }
          break;
        }
        case EXT: {
          const c = data[i++];
          if (c === 13) this.state = SIZE_LF;
          else if (c === 10 || c === 0 || ++this.line > MAX_CHUNK_LINE) return this.fail("invalid chunk extension from upstream");
          break;
        }
        case SIZE_LF: {
          if (data[i++] !== 10) return this.fail("invalid chunk size line from upstream");
          this.digits = 0;
          this.line = 0;
          this.state = this.size === 0 ? TRAILER_START : DATA;
          break;
        }
        case DATA_CR: {
          if (data[i++] !== 13) return this.fail("missing CRLF after chunk data from upstream");
          this.state = DATA_LF;
          break;
        }
        case DATA_LF: {
          if (data[i++] !== 10) return this.fail("missing CRLF after chunk data from upstream");
          this.state = SIZE;
          break;
        }
        case TRAILER_START: {
          const c = data[i++];
          if (c === 13) this.state = END_LF;
          else if (c === 10 || c === 0 || c === 32 || c === 9) return this.fail("malformed chunked trailer from upstream");
          else this.state = TRAILER_LINE;
          if (++this.trailer > MAX_TRAILERS) return this.fail("upstream chunked trailers too large");
          break;
        }
        case TRAILER_LINE: {
          const c = data[i++];
          if (c === 13) this.state = TRAILER_LF;
          else if (c === 10 || c === 0) return this.fail("malformed chunked trailer from upstream");
          if (++this.trailer > MAX_TRAILERS) return this.fail("upstream chunked trailers too large");
          break;
        }
        case TRAILER_LF: {
          if (data[i++] !== 10) return this.fail("malformed chunked trailer from upstream");
          this.state = TRAILER_START;
          break;
        }
        case END_LF: {
          if (data[i++] !== 10) return this.fail("malformed chunked trailer from upstream");
          this.state = DONE;
          this.end = i;
          return "done";
        }
        default:
          return "error";
      }
    }
    return this.state === FAILED ? "error" : "more";
  }

  private fail(message: string): "error" {
    this.state = FAILED;
    this.error = message;
    return "error";
  }
}
