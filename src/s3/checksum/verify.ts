/**
 * Verification of a request body against what its headers promise: x-amz-content-sha256 (a hex
 * hash), Content-MD5, one x-amz-checksum-* value and an exact length. Used on plain bodies (as a
 * pass-through stream) and by the aws-chunked decoder on the decoded bytes.
 */
import {
  CHECKSUM_ALGORITHMS,
  checksumHeaderName,
  create,
  isValidChecksumValue,
  type Checksum,
  type ChecksumAlgorithm,
} from "../checksum.ts";
import { PayloadError } from "../aws-chunked/errors.ts";
import { pipeStage, SOURCE_IDLE_MS, type Piped, type SlowSource } from "../aws-chunked/pump.ts";

export interface ExpectedChecksum {
  algorithm: ChecksumAlgorithm;
  /** base64, as in the x-amz-checksum-* header */
  value: string;
}

export interface PayloadExpectations {
  /** x-amz-content-sha256 when it is a hash (lowercase hex), not UNSIGNED-PAYLOAD / STREAMING-*. */
  sha256Hex?: string;
  /** Content-MD5 (base64 of 16 bytes). */
  contentMd5?: string;
  /** The one x-amz-checksum-* header. */
  checksum?: ExpectedChecksum;
  /** Exact byte count (Content-Length of a plain body). */
  length?: number;
}

const HEX64 = /^[0-9a-fA-F]{64}$/;
const MD5_B64 = /^[A-Za-z0-9+/]{22}==$/;

type HeaderSource = Headers | Record<string, string | undefined>;

/** Each algorithm with its value header's name, built once (every upload looks each one up). */
const CHECKSUM_HEADERS = CHECKSUM_ALGORITHMS.map((algorithm) => [algorithm, checksumHeaderName(algorithm)] as const);

/** `h` as read by name: Headers as they are (no getter closure per upload), a record with its names lower-cased. */
function readable(h: HeaderSource): HeaderSource {
  if (h instanceof Headers) return h;
  const lower: Record<string, string | undefined> = {};
  for (const k of Object.keys(h)) lower[k.toLowerCase()] = h[k];
  return lower;
}

/** The value of the (lower-case) header `n` of readable()'s result. */
const valueOf = (h: HeaderSource, n: string): string | undefined => (h instanceof Headers ? (h.get(n) ?? undefined) : h[n]);

/**
 * The expectations a request's headers set, validated. Throws PayloadError with S3's answer for a
 * malformed Content-MD5 (InvalidDigest), a malformed checksum value or several checksum headers
 * (InvalidRequest), or an x-amz-content-sha256 that is neither a hash nor a known mode.
 * `signed`: the signed header names of a request whose signature verified (SigV4 refuses an
 * unsigned x-amz-* header), so a checksum header not among them is absent.
 * `objectChecksums`: the x-amz-checksum-* headers describe the object the request makes, not its
 * body (CompleteMultipartUpload's full-object or composite checksum): they are not this body's.
 * `payloadKnown`: the caller settles the payload hash (a verified signature's, already checked)
 * and the body's length itself: x-amz-content-sha256 and Content-Length are not read.
 */
export function expectationsFromHeaders(headers: HeaderSource, opts: { signed?: readonly string[]; objectChecksums?: boolean; payloadKnown?: boolean } = {}): PayloadExpectations {
  const h = readable(headers);
  const exp: PayloadExpectations = {};

  const sha = opts.payloadKnown === true ? undefined : valueOf(h, "x-amz-content-sha256")?.trim();
  if (sha !== undefined && sha !== "" && sha !== "UNSIGNED-PAYLOAD" && !sha.startsWith("STREAMING-")) {
    if (!HEX64.test(sha)) {
      throw new PayloadError("InvalidRequest", "bad-header", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a SHA-256 hex value.");
    }
    exp.sha256Hex = sha.toLowerCase();
  }

  const md5 = valueOf(h, "content-md5")?.trim();
  if (md5 !== undefined) {
    if (!MD5_B64.test(md5) || Buffer.from(md5, "base64").length !== 16) {
      throw new PayloadError("InvalidDigest", "bad-header", "The Content-MD5 you specified is not valid.");
    }
    exp.contentMd5 = md5;
  }

  if (opts.objectChecksums !== true) for (const [algorithm, name] of CHECKSUM_HEADERS) {
    // (a verified request's x-amz-* headers are all among its signed ones: no lookup for the others)
    if (opts.signed !== undefined && !opts.signed.includes(name)) continue;
    const value = valueOf(h, name)?.trim();
    if (value === undefined) continue;
    if (exp.checksum) {
      throw new PayloadError("InvalidRequest", "bad-header", "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.");
    }
    if (!isValidChecksumValue(algorithm, value)) {
      throw new PayloadError("InvalidRequest", "bad-header", `Value for ${name} header is invalid.`);
    }
    exp.checksum = { algorithm, value };
  }

  if (opts.payloadKnown === true) return exp;
  const len = valueOf(h, "content-length")?.trim();
  if (len !== undefined && /^\d{1,16}$/.test(len) && Number.isSafeInteger(Number(len))) exp.length = Number(len);
  return exp;
}

/** Hashes bytes as they pass and checks every expectation at the end. */
export class PayloadVerifier {
  private readonly sha256: Bun.CryptoHasher | undefined;
  private readonly md5: Bun.CryptoHasher | undefined;
  private readonly sums: Checksum[] = [];
  private readonly expected = new Map<ChecksumAlgorithm, string>();
  private readonly length: number | undefined;
  bytes = 0;
  private passed = false;

  /** `trailerAlgorithm`: a checksum whose value only arrives at the end (expectTrailer()). */
  constructor(private readonly exp: PayloadExpectations, trailerAlgorithm?: ChecksumAlgorithm) {
    if (exp.sha256Hex) this.sha256 = new Bun.CryptoHasher("sha256");
    if (exp.contentMd5) this.md5 = new Bun.CryptoHasher("md5");
    if (exp.checksum) {
      this.sums.push(create(exp.checksum.algorithm));
      this.expected.set(exp.checksum.algorithm, exp.checksum.value);
    }
    if (trailerAlgorithm && trailerAlgorithm !== exp.checksum?.algorithm) this.sums.push(create(trailerAlgorithm));
    this.length = exp.length;
  }

  /** Throws (too-long) before counting bytes beyond the expected length. */
  update(piece: Uint8Array): void {
    if (this.length !== undefined && this.bytes + piece.length > this.length) {
      throw new PayloadError("InvalidRequest", "too-long", "The request body is longer than its Content-Length.");
    }
    this.bytes += piece.length;
    this.sha256?.update(piece);
    this.md5?.update(piece);
    for (const s of this.sums) s.update(piece);
  }

  /** The value that arrived in a trailer for `algorithm` (declared in the constructor). */
  expectTrailer(algorithm: ChecksumAlgorithm, value: string): void {
    this.expected.set(algorithm, value);
  }

  /** Computed base64 value of a tracked checksum, once finish() passed. */
  computed(algorithm: ChecksumAlgorithm): string | undefined {
    if (!this.passed) return undefined;
    return this.sums.find((s) => s.algorithm === algorithm)?.digestBase64();
  }

  /** Checks everything; throws the first mismatch as S3 would report it. */
  finish(): void {
    if (this.length !== undefined && this.bytes < this.length) {
      throw new PayloadError("IncompleteBody", "short", "You did not provide the number of bytes specified by the Content-Length HTTP header.");
    }
    if (this.md5 && this.md5.digest("base64") !== this.exp.contentMd5) {
      throw new PayloadError("BadDigest", "content-md5", "The Content-MD5 you specified did not match what we received.");
    }
    for (const s of this.sums) {
      const want = this.expected.get(s.algorithm);
      if (want !== undefined && s.digestBase64() !== want) {
        throw new PayloadError("BadDigest", "checksum", `The ${s.algorithm} you specified did not match the calculated checksum.`);
      }
    }
    const sha256Hex = this.sha256?.digest("hex");
    if (sha256Hex !== undefined && sha256Hex !== this.exp.sha256Hex) {
      const e = new PayloadError("XAmzContentSHA256Mismatch", "content-sha256", "The provided 'x-amz-content-sha256' header does not match what was computed.");
      // (as S3 names both, and as the front's GET-with-a-body check does)
      e.details = { ClientComputedContentSHA256: String(this.exp.sha256Hex), S3ComputedContentSHA256: sha256Hex };
      throw e;
    }
    this.passed = true;
  }
}

/**
 * A pass-through of a plain body that errors (instead of closing) when the bytes do not match the
 * expectations. The piece that completes the body is held until the checks passed, so an upstream
 * PUT fed from this stream never receives a complete body that failed verification.
 */
export function verifyPayloadStream(source: ReadableStream<Uint8Array>, exp: PayloadExpectations, slow?: SlowSource): Piped {
  const verifier = new PayloadVerifier(exp);
  return pipeStage(
    source,
    {
      feed(piece, out) {
        verifier.update(piece);
        out.push(piece);
      },
      end() {
        verifier.finish();
      },
    },
    exp.length !== undefined ? { total: exp.length } : "last-piece",
    SOURCE_IDLE_MS,
    slow,
  );
}
