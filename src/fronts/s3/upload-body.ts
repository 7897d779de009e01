/**
 * A client's upload body, turned into what goes upstream: verified as it streams, never buffered
 * whole (but a body of at most SMALL_BODY_BYTES, `small` below, read whole and verified before
 * anything is sent), and failing (the stream errors, never ends cleanly) on anything wrong, so
 * that the upstream request is aborted and S3 stores nothing.
 *
 * By payload mode (x-amz-content-sha256, as verifySigV4 classified it):
 * - hex SHA-256: checked here on the way (XAmzContentSHA256Mismatch) AND forwarded as the upstream
 *   request's payload hash, so the upstream checks it too;
 * - UNSIGNED-PAYLOAD: streamed as it is (Content-MD5 / x-amz-checksum-* headers checked here when
 *   present; they are forwarded too);
 * - STREAMING-AWS4-HMAC-SHA256-PAYLOAD: decoded; each chunk's signature is checked in the chain
 *   before its bytes are released (one chunk held at most); the decoded payload goes upstream with
 *   Content-Length = x-amz-decoded-content-length;
 * - STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER and STREAMING-UNSIGNED-PAYLOAD-TRAILER: decoded and
 *   checked the same way (plus the trailer signature, and the trailer checksum against the
 *   decoded bytes), then re-framed toward the upstream as STREAMING-UNSIGNED-PAYLOAD-TRAILER with
 *   the same checksum algorithm and fixed-size chunks, so the upstream stores (and checks again)
 *   the client's checksum: a multipart upload created with a checksum algorithm needs it on every
 *   part. The upstream request has an exact Content-Length either way.
 *
 * `reframe: false` (small XML bodies the front reads itself): always the decoded payload.
 * `small: true`: a plain body of at most SMALL_BODY_BYTES is left unread (`readWhole`) for
 * readSmallBody, and so is an aws-chunked one whose decoded payload is at most that
 * (`readFramed`): readSmallBody reads it whole (its framing bounded by maxAwsChunkedLength),
 * decodes and verifies all of it, then it goes upstream as bytes with the trailer's checksum as
 * its x-amz-checksum-* header, replayable like a small plain body.
 *
 * Length rules (checked from the headers, before a byte is read): Content-Length is required
 * unless the body is aws-chunked with x-amz-decoded-content-length (411 MissingContentLength), and
 * the payload may not exceed `maxBytes` (EntityTooLarge).
 */
import type { ByteBudget } from "../../limits/byte-budget.ts";
import { awsChunkedBytesDecoder, decodeAwsChunked, encodeAwsChunkedUnsignedTrailer, type DecodedBytes, isPayloadError, maxAwsChunkedLength, type ChunkSigningContext, type PayloadError, type StreamingMode } from "../../s3/aws-chunked.ts";
import { framedRequestBody, LISTENER_SLOW_BODY } from "../../http/framed-body.ts";
import { readCapped } from "../../http/read-capped.ts";
import { algorithmFromHeaderName, CHECKSUM_ALGORITHMS, checksumHeaderName, type ChecksumAlgorithm } from "../../s3/checksum.ts";
import { expectationsFromHeaders, PayloadVerifier, verifyPayloadStream, type PayloadExpectations } from "../../s3/checksum/verify.ts";
import type { UploadBodyArgs } from "../../s3/operations/index.ts";
import { UNSIGNED_PAYLOAD } from "../../s3/sigv4.ts";
import { s3Error, type S3Error } from "./errors.ts";
import { s3Fail } from "./fail.ts";
import type { PayloadMode } from "./verify.ts";

export const GiB = 1024 ** 3;
/** S3's largest single PUT and largest part. */
export const MAX_UPLOAD_BYTES = 5 * GiB;
/** Chunk size of the re-framed trailer mode toward the upstream (S3 wants >= 8 KiB but the last). */
export const REFRAME_CHUNK_BYTES = 256 * 1024;
/**
 * A plain body up to this size is read whole (readSmallBody): it is what one read of the request
 * stream hands over anyway (Bun reads 64 KiB at a time), it skips the stream machinery that costs
 * more than the bytes for a small PUT, and it makes the upstream request replayable (retried on
 * 5xx and connect errors, like a GET). Larger bodies always stream.
 */
export const SMALL_BODY_BYTES = 64 * 1024;

/** How the client's body is covered by its signature (from verifySigV4). */
export interface PayloadInfo {
  mode: PayloadMode;
  /** The x-amz-content-sha256 value (or UNSIGNED-PAYLOAD for a presigned URL without one). */
  hash: string;
  /** The chunk-signature chain's seed, for the two signed streaming modes. */
  signing?: ChunkSigningContext;
  /** The signed header names, when the request's signature verified (every x-amz-* header present is among them). */
  signedHeaders?: readonly string[];
  /** `hash` is the x-amz-content-sha256 header's value, checked with the signature (header auth; a presigned URL's may come from its query). */
  headerHash?: boolean;
}

export interface PreparedBody {
  /** The body arguments of putObject / uploadPart. */
  args: UploadBodyArgs;
  /** The payload's length (decoded, for aws-chunked). */
  length: number;
  /** Settles when the verifying stages finished: rejects with the PayloadError that failed the body. */
  finished: Promise<void> | undefined;
  /** A small plain body left unread for readSmallBody, with what it must satisfy. */
  readWhole?: PayloadExpectations;
  /** A small aws-chunked body (decoded length at most SMALL_BODY_BYTES) left unread for readSmallBody, to be decoded with these options (`framedLength`: its Content-Length, checked against maxLength; undefined for chunked transfer coding). */
  readFramed?: { decode: (body: Uint8Array) => DecodedBytes; maxLength: number; framedLength: number | undefined };
  /**
   * The payload bytes that came through so far, for a body verified or decoded on its way
   * (pipeStage's count, aws-chunked framing not counted). Undefined for bytes read whole (their
   * length is args.body's) and for a stream passed on untouched (see writes.ts bodyBytesIn).
   */
  arrived?: () => number;
}

const STREAMING: Record<string, StreamingMode> = {
  streaming: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
  "streaming-trailer": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
  "streaming-unsigned-trailer": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
};
const LENGTH = /^\d{1,16}$/;
/** S3's smallest aws-chunked chunk but the last. */
const MIN_CHUNK_BYTES = 8192;
/** Placeholder body of a small upload not read yet (readSmallBody replaces the arguments). */
const EMPTY = new Uint8Array(0);

/** x-amz-checksum-* headers that are S3's but no checksum value: the algorithm, the type, the mode. */
const CHECKSUM_SETTINGS: ReadonlySet<string> = new Set(["x-amz-checksum-algorithm", "x-amz-checksum-type", "x-amz-checksum-mode"]);
const KEPT_CHECKSUMS: ReadonlySet<string> = new Set(CHECKSUM_ALGORITHMS.map(checksumHeaderName));

/** An x-amz-checksum-* name (lower-case) this proxy neither checks nor carries upstream. */
export function isUnkeptChecksumName(name: string): boolean {
  return name.startsWith("x-amz-checksum-") && !KEPT_CHECKSUMS.has(name) && !CHECKSUM_SETTINGS.has(name);
}

/**
 * The first checksum header of a body that this proxy can neither check nor carry: S3's newer
 * algorithms (x-amz-checksum-sha512, -md5, -xxhash64, -xxhash3, -xxhash128). Dropped, the body was
 * stored unchecked, a wrong value answered 200 where S3 answers BadDigest. `signed`: the signed
 * names of a verified request (every x-amz-* header present is among them: no header scan).
 */
function unkeptChecksumHeader(headers: Headers, signed: readonly string[] | undefined): string | undefined {
  if (signed !== undefined) {
    for (const name of signed) if (isUnkeptChecksumName(name)) return name;
    return undefined;
  }
  for (const name of headers.keys()) if (isUnkeptChecksumName(name)) return name;
  return undefined;
}

/** S3's newer checksum algorithms, which this proxy neither computes nor carries: refused, never dropped. */
export const UNKEPT_ALGORITHMS: ReadonlySet<string> = new Set(["SHA512", "MD5", "XXHASH64", "XXHASH3", "XXHASH128"]);

/** 501 for an x-amz-checksum-algorithm (header or form field) naming one of UNKEPT_ALGORITHMS. */
export const unkeptAlgorithm = (algorithm: string): S3Error =>
  s3Error("NotImplemented", `The checksum algorithm ${algorithm} is not supported through this proxy (CRC32, CRC32C, CRC64NVME, SHA1 and SHA256 are).`, { Header: "x-amz-checksum-algorithm" });

export const unkeptChecksum = (name: string): S3Error =>
  s3Error("NotImplemented", `The checksum ${name} is not supported through this proxy (x-amz-checksum-crc32, -crc32c, -crc64nvme, -sha1 and -sha256 are): the body would be stored unchecked.`, { Header: name.slice(0, 64) });

/** The S3 error a body-verification failure is answered with. */
export function payloadS3Error(e: PayloadError): S3Error {
  return s3Error(e.code, e.message, e.details);
}

const fail = (e: S3Error): never => {
  throw s3Fail(e);
};

function tooLarge(size: number | bigint, max: number): never {
  return fail(s3Error("EntityTooLarge", undefined, { ProposedSize: String(size), MaxSizeAllowed: String(max) }));
}

/** S3 reads a length as a 64-bit integer: one up to this is a length (too large), not garbage. */
const MAX_LONG = 2n ** 63n - 1n;

/**
 * A length header's value, or undefined when absent; InvalidArgument when it is not a length;
 * EntityTooLarge (`max`) for one past 2^53, which no number here holds exactly (its digits are
 * the ProposedSize: it was InvalidArgument, where S3 answers EntityTooLarge).
 */
function lengthHeader(headers: Headers, name: string, max: number): number | undefined {
  const raw = headers.get(name);
  if (raw === null) return undefined;
  const v = raw.trim();
  if (!LENGTH.test(v) || !Number.isSafeInteger(Number(v))) {
    const n = /^\d{1,64}$/.test(v) ? BigInt(v) : -1n;
    if (n > max && n <= MAX_LONG) return tooLarge(n, max);
    return fail(s3Error("InvalidArgument", `${name} is not a valid length.`, { ArgumentName: name }));
  }
  return Number(v);
}

function isAwsChunkedEncoding(value: string | null): boolean {
  return value !== null && value.split(",").some((s) => s.trim().toLowerCase() === "aws-chunked");
}

/**
 * The verified upstream body of an upload. Throws (synchronously, as a ProxyError carrying S3's
 * error) for a missing or impossible length, a body over `maxBytes`, or malformed checksum headers.
 */
export function prepareUploadBody(req: Request, payload: PayloadInfo, maxBytes: number, opts: { reframe?: boolean; small?: boolean; budget?: ByteBudget; objectChecksums?: boolean } = {}): PreparedBody {
  const headers = req.headers;
  const unkept = unkeptChecksumHeader(headers, payload.signedHeaders);
  if (unkept !== undefined) return fail(unkeptChecksum(unkept));
  let exp: PayloadExpectations;
  try {
    // Header auth's x-amz-content-sha256 was read and checked with the signature (and the length
    // is read below, for each kind of body): it is not read again.
    exp = expectationsFromHeaders(headers, { signed: payload.signedHeaders, objectChecksums: opts.objectChecksums, payloadKnown: payload.headerHash === true });
  } catch (e) {
    if (isPayloadError(e)) return fail(payloadS3Error(e));
    throw e;
  }
  const streaming = STREAMING[payload.mode];
  if (streaming === undefined) {
    if (isAwsChunkedEncoding(headers.get("content-encoding"))) {
      return fail(s3Error("InvalidArgument", "Content-Encoding aws-chunked needs a STREAMING-* x-amz-content-sha256.", { ArgumentName: "x-amz-content-sha256" }));
    }
    const length = lengthHeader(headers, "content-length", maxBytes);
    if (length === undefined) return fail(s3Error("MissingContentLength"));
    if (length > maxBytes) return tooLarge(length, maxBytes);
    exp.length = length;
    if (payload.mode === "sha256") exp.sha256Hex = payload.hash;
    else if (exp.sha256Hex !== undefined) delete exp.sha256Hex;
    const payloadHash = payload.mode === "sha256" ? payload.hash : UNSIGNED_PAYLOAD;
    // A small body is read whole by readSmallBody with req.bytes(), and req.body is not touched:
    // making the request's ReadableStream first costs a 1 KiB PUT ~4 us (Bun.serve floor, 6 rounds).
    // A missing or short body is IncompleteBody there, as below.
    if (opts.small === true && length <= SMALL_BODY_BYTES) return { args: { body: EMPTY, contentLength: length, payloadHash }, length, finished: undefined, readWhole: exp };
    const needsCheck = exp.sha256Hex !== undefined || exp.contentMd5 !== undefined || exp.checksum !== undefined;
    // Nothing to check on the way: the body may go upstream natively (src/http/framed-body.ts).
    const source = needsCheck ? req.body : framedRequestBody(req, length);
    if (source === null && length > 0) return fail(s3Error("IncompleteBody"));
    if (source === null) return { args: { body: new Uint8Array(0), payloadHash }, length: 0, finished: undefined };
    if (!needsCheck) return { args: { body: source, contentLength: length, payloadHash }, length, finished: undefined };
    const checked = verifyPayloadStream(source, exp, LISTENER_SLOW_BODY);
    return { args: { body: checked.stream, contentLength: length, payloadHash }, length, finished: checked.finished, arrived: checked.passed };
  }

  // aws-chunked: the payload's length is x-amz-decoded-content-length; the framed length may be unknown.
  const decodedLength = lengthHeader(headers, "x-amz-decoded-content-length", maxBytes);
  if (decodedLength === undefined) return fail(s3Error("MissingContentLength", "You must provide the x-amz-decoded-content-length header with an aws-chunked body."));
  if (decodedLength > maxBytes) return tooLarge(decodedLength, maxBytes);
  // Neither Content-Length nor Transfer-Encoding: HTTP says there is no body at all (S3: 411).
  if (headers.get("content-length") === null && headers.get("transfer-encoding") === null) return fail(s3Error("MissingContentLength"));
  const trailer = headers.get("x-amz-trailer");
  // (one of S3's newer algorithms in the trailer: refused before the body, not after all of it came)
  if (trailer !== null && isUnkeptChecksumName(trailer.trim().toLowerCase())) return fail(unkeptChecksum(trailer.trim().toLowerCase()));
  // (a framing longer than the payload can take would fail to decode: refused unread, small or
  // streamed; one longer than any framing of `maxBytes` is S3's EntityTooLarge: the small path said
  // InvalidRequest, the streaming one read on, waiting for bytes that would never decode)
  const framedLength = lengthHeader(headers, "content-length", maxBytes);
  const maxLength = maxAwsChunkedLength(decodedLength, MIN_CHUNK_BYTES);
  if (framedLength !== undefined && framedLength > maxLength) {
    if (framedLength > maxAwsChunkedLength(maxBytes, MIN_CHUNK_BYTES)) return tooLarge(framedLength, maxBytes);
    return fail(framedTooLong());
  }
  if (opts.small === true && decodedLength <= SMALL_BODY_BYTES) {
    let decode: (body: Uint8Array) => DecodedBytes;
    try {
      decode = awsChunkedBytesDecoder({ mode: streaming, signing: payload.signing, decodedContentLength: decodedLength, trailer, expect: exp, minChunkSize: MIN_CHUNK_BYTES });
    } catch (e) {
      if (isPayloadError(e)) return fail(payloadS3Error(e));
      throw e;
    }
    return { args: { body: EMPTY, contentLength: decodedLength, payloadHash: UNSIGNED_PAYLOAD }, length: decodedLength, finished: undefined, readFramed: { decode, maxLength, framedLength } };
  }
  const source = req.body;
  if (source === null) return fail(s3Error("IncompleteBody"));
  let decoded: ReturnType<typeof decodeAwsChunked>;
  try {
    // S3 refuses a chunk under 8 KiB that is not the last, in every streaming mode (403
    // InvalidChunkSizeError, as the SDKs' issue reports show): a client that passes here then
    // passes there, and a body cannot be cut into per-byte HMACs.
    decoded = decodeAwsChunked(source, { mode: streaming, signing: payload.signing, decodedContentLength: decodedLength, trailer, expect: exp, minChunkSize: MIN_CHUNK_BYTES, budget: opts.budget, slow: LISTENER_SLOW_BODY });
  } catch (e) {
    if (isPayloadError(e)) return fail(payloadS3Error(e));
    throw e;
  }
  const algorithm = trailer === null ? undefined : algorithmFromHeaderName(trailer.trim().toLowerCase());
  if (algorithm === undefined || opts.reframe === false) {
    return { args: { body: decoded.stream, contentLength: decodedLength, payloadHash: UNSIGNED_PAYLOAD }, length: decodedLength, finished: decoded.finished, arrived: decoded.passed };
  }
  return reframed(decoded, algorithm, decodedLength, trailer!.trim().toLowerCase());
}

/**
 * The decoded payload re-framed toward the upstream as STREAMING-UNSIGNED-PAYLOAD-TRAILER with the
 * client's trailer checksum. (Its own function: the closure over `framed` made prepareUploadBody
 * allocate a scope on every upload, a small plain one too.)
 */
function reframed(decoded: ReturnType<typeof decodeAwsChunked>, algorithm: ChecksumAlgorithm, decodedLength: number, trailer: string): PreparedBody {
  const framed = encodeAwsChunkedUnsignedTrailer(decoded.stream, algorithm, { decodedLength, chunkSize: REFRAME_CHUNK_BYTES });
  // The decoder's failure is the one to report (the encoder only sees its source erroring).
  const finished = decoded.finished.then(() => framed.finished);
  finished.catch(() => {});
  return {
    args: { body: framed.stream, contentLength: framed.encodedLength, awsChunked: { decodedLength, trailer } },
    length: decodedLength,
    finished,
    // the payload as decoded, not the framing it is sent on with
    arrived: decoded.passed,
  };
}

/**
 * `prepared` with a small plain body (prepareUploadBody's `small`) read whole and verified: bytes
 * to send, replayable. Anything else is returned as it is (a stream). Throws S3's error for a
 * body that fails its checks or ends early.
 */
export async function readSmallBody(req: Request, prepared: PreparedBody): Promise<PreparedBody> {
  if (prepared.readWhole === undefined) {
    if (prepared.readFramed !== undefined) return readFramedBody(req, prepared.readFramed);
    return prepared.args.contentLength === 0 ? readEmptyStream(req, prepared) : prepared;
  }
  let bytes: Uint8Array;
  try {
    bytes = await req.bytes();
  } catch (err) {
    return unreadBody(req, err);
  }
  return wholeBodyRead(prepared, bytes);
}

/** req.bytes() of a small body failed: the client's abort as it is, anything else IncompleteBody. */
export function unreadBody(req: Request, err: unknown): never {
  if (req.signal.aborted) throw err;
  return fail(s3Error("IncompleteBody"));
}

/**
 * `prepared`'s small plain body (`readWhole`) checked once read (`bytes`, all of req.bytes()): its
 * length and its checksums; throws S3's error. Apart from readSmallBody so that PutObject and
 * UploadPart await req.bytes() themselves (an async layer less per small upload).
 */
export function wholeBodyRead(prepared: PreparedBody, bytes: Uint8Array): PreparedBody {
  const exp = prepared.readWhole!;
  if (bytes.byteLength !== prepared.length) return fail(s3Error("IncompleteBody"));
  try {
    if (exp.sha256Hex !== undefined || exp.contentMd5 !== undefined || exp.checksum !== undefined) {
      const v = new PayloadVerifier(exp);
      v.update(bytes);
      v.finish();
    }
  } catch (e) {
    if (isPayloadError(e)) return fail(payloadS3Error(e));
    throw e;
  }
  // (the placeholder replaced in place: a new PreparedBody and arguments were two objects per small upload)
  prepared.args.body = bytes;
  prepared.readWhole = undefined;
  return prepared;
}

/**
 * A small aws-chunked body (prepareUploadBody's `readFramed`) read whole, at most its framing's
 * bound, then decoded and verified completely (chunk signatures, trailer signature and checksum,
 * length) before anything goes upstream: the payload as bytes, replayable, with the trailer's
 * checksum as its x-amz-checksum-* header, so the upstream checks and stores it as the trailer's.
 */
async function readFramedBody(req: Request, framed: NonNullable<PreparedBody["readFramed"]>): Promise<PreparedBody> {
  let bytes: Uint8Array | undefined;
  try {
    // (a declared length was checked against the bound; chunked transfer coding is read up to it)
    bytes = framed.framedLength !== undefined ? await req.bytes() : await readCapped(req, framed.maxLength);
  } catch (err) {
    if (req.signal.aborted) throw err;
    return fail(s3Error("IncompleteBody"));
  }
  if (bytes === undefined) return fail(framedTooLong());
  let decoded: DecodedBytes;
  try {
    decoded = framed.decode(bytes);
  } catch (e) {
    if (isPayloadError(e)) return fail(payloadS3Error(e));
    throw e;
  }
  return { args: { body: decoded.payload, payloadHash: UNSIGNED_PAYLOAD, checksum: decoded.trailer }, length: decoded.payload.byteLength, finished: undefined };
}

/**
 * An aws-chunked body longer than its decoded length's framing can be, refused unread: more bytes
 * than declared, or chunks under S3's 8 KiB (a client framing 20 KB in 100-byte chunks was told its
 * body held more bytes than x-amz-decoded-content-length, which it did not). Both are named: which
 * one it is shows only in the bytes.
 */
const framedTooLong = (): S3Error =>
  s3Error("InvalidRequest", `The aws-chunked body is longer than x-amz-decoded-content-length bytes framed in chunks of at least ${MIN_CHUNK_BYTES} bytes (all but the last) can be: it holds more bytes than declared, or chunks under ${MIN_CHUNK_BYTES} bytes.`);

/**
 * A verified stream whose payload is empty (aws-chunked with x-amz-decoded-content-length: 0) read
 * to its end before anything goes upstream. The guard that keeps a failed body from being stored
 * holds back the body's last byte until every check passed; an empty payload has no byte to hold,
 * and `Content-Length: 0` makes the request head alone a complete PUT: a bad final-chunk signature,
 * a body longer than declared or a bad trailer was answered as an error while S3 stored an empty
 * object over the old one. So the framing (final chunk, trailer, signatures) is checked first and
 * the upstream gets an empty body only once it passed.
 */
async function readEmptyStream(req: Request, prepared: PreparedBody): Promise<PreparedBody> {
  const body = prepared.args.body;
  if (!(body instanceof ReadableStream) || prepared.finished === undefined) return prepared;
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      // Cannot happen (the decoder refuses bytes past the declared length); refuse rather than drop them.
      if (value !== undefined && value.byteLength > 0) return fail(s3Error("InvalidRequest", "The body carries more bytes than x-amz-decoded-content-length."));
    }
    await prepared.finished;
  } catch (err) {
    if (req.signal.aborted) throw err;
    return fail(await bodyFailure(prepared));
  } finally {
    reader.releaseLock();
  }
  return { args: { ...prepared.args, body: EMPTY, contentLength: 0 }, length: 0, finished: undefined, arrived: () => 0 };
}

/**
 * Why an upload body failed, once send() threw RequestBodyError: the verifying stage's
 * PayloadError (bad signature, checksum, length), else the body ended early (IncompleteBody).
 */
export async function bodyFailure(body: PreparedBody): Promise<S3Error> {
  if (body.finished !== undefined) {
    const reason = await body.finished.then(() => undefined, (e: unknown) => e);
    if (isPayloadError(reason)) return payloadS3Error(reason);
  }
  return s3Error("IncompleteBody");
}
