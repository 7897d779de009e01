/**
 * aws-chunked request bodies (Content-Encoding: aws-chunked), decoded as a stream.
 *
 * decodeAwsChunked() turns the framed body into the payload, verifying on the way, for every mode
 * a client may name in x-amz-content-sha256:
 * - STREAMING-AWS4-HMAC-SHA256-PAYLOAD: every chunk signature, in the chain from the seed;
 * - STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: the same, plus the trailer signature and checksum;
 * - STREAMING-UNSIGNED-PAYLOAD-TRAILER: the trailer checksum named by x-amz-trailer.
 * It also checks the decoded length against x-amz-decoded-content-length, and any Content-MD5 /
 * x-amz-checksum-* header expectations against the decoded bytes.
 *
 * The output stream ERRORS with a PayloadError on any failure (never closes cleanly), and the
 * piece that completes the payload is released only after every check passed; an upstream PUT
 * fed from it with Content-Length = decodedLength is therefore aborted, never completed, by a bad
 * body. Invalid options (bad headers) throw a PayloadError synchronously, before any byte is read.
 */
import { algorithmFromHeaderName } from "./checksum.ts";
import { PayloadVerifier, type PayloadExpectations } from "./checksum/verify.ts";
import { ChunkedDecoder, type ChunkSigningContext } from "./aws-chunked/decoder.ts";
import { PayloadError } from "./aws-chunked/errors.ts";
import { pipeStage, SOURCE_IDLE_MS, type Piped, type SlowSource } from "./aws-chunked/pump.ts";
import type { ByteBudget } from "../limits/byte-budget.ts";

export { PayloadError, isPayloadError, type PayloadErrorCode, type PayloadErrorReason } from "./aws-chunked/errors.ts";
export { maxAwsChunkedLength, type ChunkSigningContext } from "./aws-chunked/decoder.ts";
export {
  encodeAwsChunkedUnsignedTrailer,
  awsChunkedEncodedLength,
  DEFAULT_ENCODE_CHUNK_SIZE,
  type UnsignedTrailerEncoding,
} from "./aws-chunked/encoder.ts";
export { buildAwsChunkedBody, chunkStringToSign, trailerStringToSign, type BuiltBody, type BuildOptions } from "./aws-chunked/build.ts";

export type StreamingMode =
  | "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
  | "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
  | "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

export const STREAMING_MODES: readonly StreamingMode[] = [
  "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
  "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
  "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
];

function isStreamingMode(contentSha256: string | null | undefined): contentSha256 is StreamingMode {
  return (STREAMING_MODES as readonly (string | null | undefined)[]).includes(contentSha256);
}

/** Clients use 64 KiB; a chunk is held whole while its signature is checked, so cap it. */
const DEFAULT_MAX_CHUNK_SIZE = 16 * 1024 * 1024;

export interface DecodeOptions {
  /** The x-amz-content-sha256 value. */
  mode: StreamingMode;
  /** Required for the two signed modes (from the verified Authorization header). */
  signing?: ChunkSigningContext;
  /** x-amz-decoded-content-length (required by S3 for aws-chunked; the caller answers 411 without). */
  decodedContentLength: number;
  /** The x-amz-trailer header, e.g. "x-amz-checksum-crc32". */
  trailer?: string | null;
  /** Content-MD5 / x-amz-checksum-* headers to check on the decoded bytes (expectationsFromHeaders). */
  expect?: PayloadExpectations;
  /** Default 16 MiB. */
  maxChunkSize?: number;
  /** The process-wide budget of held (signed) chunks; beyond it, 503 SlowDown. */
  budget?: ByteBudget;
  /** S3's 8 KiB minimum for every chunk but the last; default 0 = not enforced (the SDKs' unsigned
   *  trailer mode frames whatever the body stream yields). */
  minChunkSize?: number;
  /** The listener's rule for a body that arrives too slowly (pipeStage). */
  slow?: SlowSource;
}

export interface DecodedBody extends Piped {
  /** The computed checksum of the decoded payload for the trailer algorithm, after `finished`. */
  trailerChecksum(): string | undefined;
}

function invalid(message: string): PayloadError {
  return new PayloadError("InvalidRequest", "bad-header", message);
}

export function decodeAwsChunked(source: ReadableStream<Uint8Array>, opts: DecodeOptions): DecodedBody {
  const { decoder, verifier, trailerAlgorithm } = newDecoder(opts);
  const piped = pipeStage(source, decoder, { total: opts.decodedContentLength }, SOURCE_IDLE_MS, opts.slow);
  return {
    ...piped,
    trailerChecksum: () => (trailerAlgorithm ? verifier.computed(trailerAlgorithm) : undefined),
  };
}

export interface DecodedBytes {
  /** The payload: x-amz-decoded-content-length bytes, every check passed. */
  payload: Uint8Array;
  /** The trailer's checksum header and value (the client's, checked against the payload), when there is a trailer. */
  trailer?: { name: string; value: string };
}

/**
 * A decoder of a whole aws-chunked body (read into memory), with the same checks as
 * decodeAwsChunked (every chunk signature, the trailer signature and checksum, the decoded length):
 * the returned function, called once, gives the payload or throws the PayloadError of the first
 * failure. Impossible headers throw here, before the body is read. Any body the stream decoder
 * accepts is at most maxAwsChunkedLength(decodedContentLength, minChunkSize) bytes long.
 */
export function awsChunkedBytesDecoder(opts: DecodeOptions): (body: Uint8Array) => DecodedBytes {
  const { decoder, verifier, trailerAlgorithm, trailerHeader } = newDecoder(opts);
  return (body) => {
    const out: Uint8Array[] = [];
    try {
      decoder.feed(body, out);
      decoder.end(out);
    } finally {
      decoder.dispose();
    }
    let payload: Uint8Array;
    if (out.length === 1) payload = out[0]!;
    else {
      payload = new Uint8Array(opts.decodedContentLength);
      let at = 0;
      for (const p of out) {
        payload.set(p, at);
        at += p.byteLength;
      }
    }
    return { payload, trailer: trailerAlgorithm === undefined ? undefined : { name: trailerHeader!, value: verifier.computed(trailerAlgorithm)! } };
  };
}

/** The decoder and verifier of `opts` (throws a PayloadError for impossible headers). */
function newDecoder(opts: DecodeOptions) {
  if (!isStreamingMode(opts.mode)) throw invalid("Unsupported x-amz-content-sha256 streaming mode.");
  const signed = opts.mode !== "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
  const trailers = opts.mode !== "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
  if (signed && !opts.signing) throw new TypeError("signed aws-chunked modes need the signing context");
  const total = opts.decodedContentLength;
  if (!Number.isSafeInteger(total) || total < 0) throw invalid("x-amz-decoded-content-length is not valid.");

  const trailerHeader = opts.trailer?.trim().toLowerCase() || undefined;
  if (trailerHeader !== undefined && !trailers) throw invalid("x-amz-trailer is only allowed with a trailer streaming mode.");
  const trailerAlgorithm = trailerHeader === undefined ? undefined : algorithmFromHeaderName(trailerHeader);
  if (trailerHeader !== undefined && trailerAlgorithm === undefined) throw invalid("The value specified in the x-amz-trailer header is not supported.");
  const expect: PayloadExpectations = { ...opts.expect };
  delete expect.length; // the decoder checks the decoded length itself
  delete expect.sha256Hex; // a streaming mode, not a payload hash
  if (trailerAlgorithm && expect.checksum) {
    throw invalid("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.");
  }

  const verifier = new PayloadVerifier(expect, trailerAlgorithm);
  const decoder = new ChunkedDecoder({
    signing: signed ? opts.signing : undefined,
    trailers,
    decodedLength: total,
    trailerName: trailerHeader,
    verifier,
    maxChunkSize: opts.maxChunkSize ?? DEFAULT_MAX_CHUNK_SIZE,
    minChunkSize: opts.minChunkSize ?? 0,
    budget: opts.budget,
  });
  return { decoder, verifier, trailerAlgorithm, trailerHeader };
}
