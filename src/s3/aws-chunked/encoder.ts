/**
 * Frames a decoded body as STREAMING-UNSIGNED-PAYLOAD-TRAILER toward S3, with the checksum computed
 * on the way as the trailer (what the AWS SDKs send since 2025).
 *
 * When this is needed: only when the upstream must receive a checksum that is known at the end of
 * the body (SHA-1/SHA-256 parts of a multipart upload created with that algorithm; keeping the
 * client's checksum stored on the object). Otherwise send the verified decoded body with
 * Content-Length = x-amz-decoded-content-length, which is simpler for every upstream.
 *
 * Chunks are exactly `chunkSize` bytes except the last, so the encoded length is known up front and
 * the request carries an exact Content-Length (S3 answers 411 to a chunked PUT without one unless
 * x-amz-decoded-content-length is set; we send both). At most one chunk is held, as views into the
 * source's pieces. A source shorter or longer than `decodedLength` errors the stream before the
 * final chunk is written, so the upstream never sees a complete body.
 */
import { base64Length, checksumHeaderName, create, type ChecksumAlgorithm } from "../checksum.ts";
import { PayloadError } from "./errors.ts";
import { pipeStage, type Piped } from "./pump.ts";
import { Coalescer } from "./coalesce.ts";

export const DEFAULT_ENCODE_CHUNK_SIZE = 64 * 1024;
const MIN_ENCODE_CHUNK_SIZE = 8 * 1024; // S3's minimum for every chunk but the last

export interface UnsignedTrailerEncoding extends Piped {
  /** Headers for the upstream request (sign x-amz-content-sha256 as given here). */
  headers: Record<string, string>;
  encodedLength: number;
}

/** Length of the aws-chunked framing of `decodedLength` bytes with a checksum trailer. */
export function awsChunkedEncodedLength(decodedLength: number, algorithm: ChecksumAlgorithm, chunkSize = DEFAULT_ENCODE_CHUNK_SIZE): number {
  const full = Math.floor(decodedLength / chunkSize);
  const rest = decodedLength % chunkSize;
  const frame = (size: number) => size.toString(16).length + 2 + size + 2;
  let len = full * frame(chunkSize) + (rest > 0 ? frame(rest) : 0);
  len += 3; // "0\r\n"
  len += checksumHeaderName(algorithm).length + 1 + base64Length(algorithm) + 2 + 2;
  return len;
}

const ascii = (s: string) => Buffer.from(s, "latin1");

export function encodeAwsChunkedUnsignedTrailer(
  source: ReadableStream<Uint8Array>,
  algorithm: ChecksumAlgorithm,
  opts: { decodedLength: number; chunkSize?: number },
): UnsignedTrailerEncoding {
  const chunkSize = opts.chunkSize ?? DEFAULT_ENCODE_CHUNK_SIZE;
  const total = opts.decodedLength;
  if (!Number.isSafeInteger(total) || total < 0) throw new RangeError("decodedLength must be a non-negative integer");
  if (!Number.isSafeInteger(chunkSize) || chunkSize < MIN_ENCODE_CHUNK_SIZE) throw new RangeError("chunkSize must be at least 8 KiB");

  const sum = create(algorithm);
  const fullHeader = ascii(chunkSize.toString(16) + "\r\n");
  const CRLF_FULL_HEADER = ascii("\r\n" + chunkSize.toString(16) + "\r\n");
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  // (the pieces of the chunk being filled: small ones copied together, see coalesce.ts)
  const small = new Coalescer();
  let seen = 0;
  let started = false; // a chunk was written: the next header starts with the previous CRLF

  const emit = (size: number, out: Uint8Array[]) => {
    out.push(size === chunkSize ? (started ? CRLF_FULL_HEADER : fullHeader) : ascii((started ? "\r\n" : "") + size.toString(16) + "\r\n"));
    started = true;
    let need = size;
    while (need > 0) {
      const p = pending[0];
      if (p.length <= need) {
        out.push(p);
        need -= p.length;
        pending.shift();
      } else {
        out.push(p.subarray(0, need));
        pending[0] = p.subarray(need);
        need = 0;
      }
    }
    pendingBytes -= size;
  };

  const piped = pipeStage(
    source,
    {
      feed(piece, out) {
        if (seen + piece.length > total) {
          throw new PayloadError("InvalidRequest", "too-long", "The body is longer than its declared length.");
        }
        seen += piece.length;
        sum.update(piece);
        small.push(piece, pending, total - seen + piece.length);
        pendingBytes += piece.length;
        if (pendingBytes < chunkSize) return;
        small.flush(pending);
        while (pendingBytes >= chunkSize) emit(chunkSize, out);
      },
      end(out) {
        if (seen < total) {
          throw new PayloadError("IncompleteBody", "short", "You did not provide the number of bytes specified by the Content-Length HTTP header.");
        }
        small.flush(pending);
        if (pendingBytes > 0) emit(pendingBytes, out);
        pending = [];
        out.push(ascii((started ? "\r\n" : "") + "0\r\n" + checksumHeaderName(algorithm) + ":" + sum.digestBase64() + "\r\n\r\n"));
      },
    },
    "none",
    // Not timed here: the source times itself (an upload's decoder, each read of the client; a
    // copy's source, stall-guard.ts). Timed, a signed chunk the decoder holds until it is whole
    // (up to 16 MiB, arriving steadily) counted as the source's silence: 400 RequestTimeout after
    // 20 s for a client still sending.
    Infinity,
  );

  const encodedLength = awsChunkedEncodedLength(total, algorithm, chunkSize);
  return {
    ...piped,
    encodedLength,
    headers: {
      "content-encoding": "aws-chunked",
      "content-length": String(encodedLength),
      "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
      "x-amz-decoded-content-length": String(total),
      "x-amz-trailer": checksumHeaderName(algorithm),
    },
  };
}
