/**
 * The aws-chunked framing parser: a synchronous state machine fed arbitrary slices of the body
 * (a split may fall anywhere: inside a size line, a signature, a CRLF), run by pump.ts.
 *
 *   signed:    <hex-size>;chunk-signature=<64 hex>\r\n <data> \r\n ... 0;chunk-signature=<sig>\r\n
 *   unsigned:  <hex-size>\r\n <data> \r\n ... 0\r\n
 *   then:      [<trailer-name>:<value>\r\n]* [x-amz-trailer-signature:<sig>\r\n] \r\n   EOF
 *
 * Signed chunks: the data of chunk N is pushed out only after chunk N's signature, the next link of
 * the chain that starts at the seed signature, has been verified. This holds at most one chunk
 * (as views into the source's pieces, not copies); the size is capped before any data is read.
 * Unsigned chunks are pushed out as they arrive (pump.ts holds back the final piece until the
 * trailer checksum has been verified).
 */
import { EMPTY_SHA256 } from "../sigv4.ts";
import { algorithmFromHeaderName, isValidChecksumValue } from "../checksum.ts";
import { PayloadVerifier } from "../checksum/verify.ts";
import { PayloadError, SIGNATURE_MISMATCH_MESSAGE, framingError } from "./errors.ts";
import type { Stage } from "./pump.ts";
import { Coalescer } from "./coalesce.ts";
import type { ByteBudget } from "../../limits/byte-budget.ts";

export interface ChunkSigningContext {
  /** deriveSigningKey(secret, yyyymmdd, region, "s3") of the request's credential. */
  signingKey: Uint8Array;
  /** The request's x-amz-date ("20130524T000000Z"). */
  amzDate: string;
  /** The credential scope ("20130524/us-east-1/s3/aws4_request"). */
  scope: string;
  /** The Authorization header's signature: the first link of the chain. */
  seedSignature: string;
}

export interface DecoderConfig {
  signing: ChunkSigningContext | undefined;
  trailers: boolean;
  decodedLength: number;
  /** The x-amz-trailer header (lowercase), if any. */
  trailerName: string | undefined;
  verifier: PayloadVerifier;
  maxChunkSize: number;
  minChunkSize: number;
  /**
   * What held chunks may use together in this process: a signed chunk is held whole until its
   * signature is checked, up to maxChunkSize (16 MiB) per upload. Beyond it, 503 SlowDown.
   */
  budget?: ByteBudget;
}

const enum State { SizeLine, Data, DataCR, DataLF, Trailer, Done }

/** Held chunks up to this size are not counted against DecoderConfig.budget. */
const UNCOUNTED_CHUNK_BYTES = 1024 * 1024;
const MAX_LINE = 1024; // a signed size line is < 100 bytes, a checksum trailer < 80
const MAX_TRAILER_LINES = 8;
const CR = 13;
const LF = 10;
const UNSIGNED_SIZE = /^([0-9a-fA-F]{1,16})$/;
const SIGNED_SIZE = /^([0-9a-fA-F]{1,16});chunk-signature=([^;]*)$/;

/**
 * The most bytes an aws-chunked body of `decodedLength` payload bytes can take and still be accepted
 * by the decoder with `minChunkSize` (> 0): every chunk but the last holds at least minChunkSize
 * bytes, each size line and trailer line is at most MAX_LINE, at most MAX_TRAILER_LINES trailer
 * lines. A longer body cannot decode: it may be refused from its length alone.
 */
export function maxAwsChunkedLength(decodedLength: number, minChunkSize: number): number {
  const chunks = Math.floor(decodedLength / minChunkSize) + 1;
  return decodedLength + (chunks + 1) * MAX_LINE + 2 * chunks + MAX_TRAILER_LINES * MAX_LINE + 2;
}

function sameString(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

export class ChunkedDecoder implements Stage {
  private state = State.SizeLine;
  private readonly line = new Uint8Array(MAX_LINE);
  private lineLen = 0;
  private remaining = 0;
  private decoded = 0;
  private lastSize = -1;
  private pieces: Uint8Array[] = [];
  /** Small pieces of the held chunk, copied together (coalesce.ts). */
  private readonly small = new Coalescer();
  /** Bytes of cfg.budget reserved for the chunk being held. */
  private reserved = 0;
  /** Bytes of the signed chunk being held that have arrived. */
  private held = 0;
  private chunkHash: Bun.CryptoHasher | undefined;
  private claimed = "";
  private prevSig: string;
  private readonly hmac: Bun.CryptoHasher | undefined;
  private readonly sigPrefix: string;
  private readonly trailerLines: Array<[string, string]> = [];

  constructor(private readonly cfg: DecoderConfig) {
    const s = cfg.signing;
    this.prevSig = s?.seedSignature ?? "";
    this.hmac = s ? new Bun.CryptoHasher("sha256", s.signingKey) : undefined;
    this.sigPrefix = s ? "\n" + s.amzDate + "\n" + s.scope + "\n" : "";
  }

  feed(piece: Uint8Array, out: Uint8Array[]): void {
    const n = piece.length;
    let i = 0;
    while (i < n) {
      switch (this.state) {
        case State.SizeLine:
        case State.Trailer: {
          const lf = piece.indexOf(LF, i);
          const stop = lf < 0 ? n : lf + 1;
          if (this.lineLen + (stop - i) > MAX_LINE) throw framingError("An aws-chunked line is too long.");
          this.line.set(piece.subarray(i, stop), this.lineLen);
          this.lineLen += stop - i;
          i = stop;
          if (lf >= 0) this.onLine();
          break;
        }
        case State.Data: {
          const take = Math.min(this.remaining, n - i);
          const part = piece.subarray(i, i + take);
          i += take;
          this.remaining -= take;
          this.cfg.verifier.update(part);
          if (this.chunkHash) {
            this.chunkHash.update(part);
            this.small.push(part, this.pieces, take + this.remaining);
            this.held += take;
            if (this.held > UNCOUNTED_CHUNK_BYTES) this.reserveHeld();
          } else {
            out.push(part);
          }
          if (this.remaining === 0) {
            if (this.chunkHash) this.verifyChunk(this.chunkHash.digest("hex"));
            this.state = State.DataCR;
          }
          break;
        }
        case State.DataCR:
          if (piece[i++] !== CR) throw framingError("Chunk data is not followed by CRLF.");
          this.state = State.DataLF;
          break;
        case State.DataLF:
          if (piece[i++] !== LF) throw framingError("Chunk data is not followed by CRLF.");
          // The chunk is verified and complete: commit it.
          this.small.flush(this.pieces);
          for (const p of this.pieces) out.push(p);
          this.pieces = [];
          this.dispose();
          this.state = State.SizeLine;
          break;
        case State.Done:
          throw framingError("Data follows the final aws-chunked chunk.");
      }
    }
  }

  /**
   * Counts the held chunk's bytes beyond its first UNCOUNTED_CHUNK_BYTES against cfg.budget as they
   * arrive (chunks up to 1 MiB, the SDKs' 64 KiB ones among them, are bounded by the uploads cap;
   * larger ones can hold up to 16 MiB each). Reserved as bytes arrive, not as a size line
   * announces them: a header announcing 16 MiB followed by nothing holds nothing, so stalled
   * uploads cannot take the budget from everyone else without sending the bytes.
   */
  private reserveHeld(): void {
    const budget = this.cfg.budget;
    if (budget === undefined) return;
    const need = this.held - UNCOUNTED_CHUNK_BYTES - this.reserved;
    if (need <= 0) return;
    if (!budget.tryReserve(need)) throw new PayloadError("SlowDown", "busy", "Please reduce your request rate.");
    this.reserved += need;
  }

  /** Releases the held chunk's reservation (budget), once. */
  dispose(): void {
    if (this.reserved > 0) {
      this.cfg.budget?.release(this.reserved);
      this.reserved = 0;
    }
  }

  end(_out: Uint8Array[]): void {
    if (this.state !== State.Done) throw new PayloadError("IncompleteBody", "truncated", "The request body terminated unexpectedly");
  }

  /** A complete line (ending in LF) is in this.line. */
  private onLine(): void {
    const len = this.lineLen;
    this.lineLen = 0;
    if (len < 2 || this.line[len - 2] !== CR) throw framingError("An aws-chunked line does not end in CRLF.");
    const text = Buffer.from(this.line.buffer, 0, len - 2).toString("latin1");
    if (this.state === State.SizeLine) this.onSizeLine(text);
    else this.onTrailerLine(text);
  }

  private onSizeLine(text: string): void {
    const m = (this.cfg.signing ? SIGNED_SIZE : UNSIGNED_SIZE).exec(text);
    if (!m) throw framingError("Malformed aws-chunked chunk header.");
    const size = parseInt(m[1], 16);
    if (size > this.cfg.maxChunkSize) {
      throw new PayloadError("InvalidRequest", "chunk-too-large", `An aws-chunked chunk is larger than ${this.cfg.maxChunkSize} bytes.`);
    }
    if (size > 0 && this.lastSize >= 0 && this.lastSize < this.cfg.minChunkSize) {
      throw new PayloadError("InvalidChunkSizeError", "chunk-too-small", `Only the last chunk is allowed to have a size less than ${this.cfg.minChunkSize} bytes`);
    }
    if (this.decoded + size > this.cfg.decodedLength) {
      throw new PayloadError("InvalidRequest", "too-long", "The aws-chunked body holds more bytes than x-amz-decoded-content-length.");
    }
    this.lastSize = size;
    this.decoded += size;
    if (this.cfg.signing) this.claimed = m[2];
    if (size > 0) {
      this.remaining = size;
      if (this.cfg.signing) {
        this.held = 0;
        this.chunkHash = new Bun.CryptoHasher("sha256");
      }
      this.state = State.Data;
      return;
    }
    // The final chunk.
    if (this.cfg.signing) this.verifyChunk(EMPTY_SHA256);
    this.chunkHash = undefined;
    if (this.decoded < this.cfg.decodedLength) {
      throw new PayloadError("IncompleteBody", "short", "You did not provide the number of bytes specified by the x-amz-decoded-content-length HTTP header.");
    }
    this.state = State.Trailer;
  }

  private verifyChunk(dataSha256Hex: string): void {
    const sts = "AWS4-HMAC-SHA256-PAYLOAD" + this.sigPrefix + this.prevSig + "\n" + EMPTY_SHA256 + "\n" + dataSha256Hex;
    const sig = this.hmac!.copy().update(sts).digest("hex");
    if (!sameString(sig, this.claimed)) {
      this.pieces = [];
      this.small.drop();
      throw new PayloadError("SignatureDoesNotMatch", "chunk-signature", SIGNATURE_MISMATCH_MESSAGE);
    }
    this.prevSig = sig;
  }

  private onTrailerLine(text: string): void {
    if (text !== "") {
      if (!this.cfg.trailers) throw framingError("The final aws-chunked chunk must be followed by an empty line.");
      if (this.trailerLines.length >= MAX_TRAILER_LINES) throw trailerError("Too many trailer lines.");
      const colon = text.indexOf(":");
      if (colon <= 0) throw trailerError("Malformed trailer line.");
      this.trailerLines.push([text.slice(0, colon).trim().toLowerCase(), text.slice(colon + 1).trim()]);
      return;
    }
    this.state = State.Done;
    this.checkTrailers();
    this.cfg.verifier.finish();
  }

  private checkTrailers(): void {
    const lines = this.trailerLines;
    let canonical = "";
    let signatureValue: string | undefined;
    for (let k = 0; k < lines.length; k++) {
      const [name, value] = lines[k];
      if (name === "x-amz-trailer-signature") {
        if (!this.cfg.signing || k !== lines.length - 1) throw trailerError("Unexpected x-amz-trailer-signature.");
        signatureValue = value;
        continue;
      }
      const alg = algorithmFromHeaderName(name);
      if (name !== this.cfg.trailerName || alg === undefined) throw trailerError("The trailer was not declared in x-amz-trailer.");
      if (lines.findIndex(([n]) => n === name) !== k) throw trailerError("A trailer is repeated.");
      if (!isValidChecksumValue(alg, value)) throw trailerError(`Value for ${name} trailing header is invalid.`);
      this.cfg.verifier.expectTrailer(alg, value);
      canonical += name + ":" + value + "\n";
    }
    if (this.cfg.trailerName && canonical === "") throw trailerError(`The ${this.cfg.trailerName} trailer declared in x-amz-trailer is missing.`);
    if (!this.cfg.signing || !this.cfg.trailers) return;
    if (signatureValue === undefined) throw trailerError("The x-amz-trailer-signature trailer is missing.");
    const sts = "AWS4-HMAC-SHA256-TRAILER" + this.sigPrefix + this.prevSig + "\n" +
      new Bun.CryptoHasher("sha256").update(canonical).digest("hex");
    const sig = this.hmac!.copy().update(sts).digest("hex");
    if (!sameString(sig, signatureValue)) {
      throw new PayloadError("SignatureDoesNotMatch", "trailer-signature", SIGNATURE_MISMATCH_MESSAGE);
    }
  }
}

function trailerError(message: string): PayloadError {
  return new PayloadError("InvalidRequest", "trailer", message);
}
