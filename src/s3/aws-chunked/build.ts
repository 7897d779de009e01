/**
 * Client-side builders of whole aws-chunked bodies (buffered), for tests, the S3 test fixture and
 * test clients: not on the proxy's data path (decoding is streamed; see ../aws-chunked.ts).
 */
import { EMPTY_SHA256, sha256Hex, signature } from "../sigv4.ts";
import type { ChunkSigningContext } from "./decoder.ts";

export interface BuiltBody {
  body: Uint8Array;
  /** Each chunk's signature in order (the final 0-size chunk last); empty when unsigned. */
  chunkSignatures: string[];
  trailerSignature?: string;
}

export interface BuildOptions {
  /** Sign the chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]); unsigned when absent. */
  signing?: ChunkSigningContext;
  /** Data bytes per chunk (the last may be smaller). */
  chunkSize: number;
  /** Trailer header lines, e.g. [["x-amz-checksum-crc32", "..."]] (a *-TRAILER mode). */
  trailers?: Array<[string, string]>;
}

export function chunkStringToSign(ctx: ChunkSigningContext, previousSignature: string, dataSha256Hex: string): string {
  return "AWS4-HMAC-SHA256-PAYLOAD\n" + ctx.amzDate + "\n" + ctx.scope + "\n" + previousSignature + "\n" +
    EMPTY_SHA256 + "\n" + dataSha256Hex;
}

/** `canonicalTrailers`: "name:value\n" per trailer header, names lowercase, in sent order. */
export function trailerStringToSign(ctx: ChunkSigningContext, previousSignature: string, canonicalTrailers: string): string {
  return "AWS4-HMAC-SHA256-TRAILER\n" + ctx.amzDate + "\n" + ctx.scope + "\n" + previousSignature + "\n" +
    sha256Hex(canonicalTrailers);
}

export function buildAwsChunkedBody(payload: Uint8Array, opts: BuildOptions): BuiltBody {
  const { signing, chunkSize, trailers } = opts;
  if (!(chunkSize > 0)) throw new RangeError("chunkSize must be positive");
  const parts: Uint8Array[] = [];
  const sigs: string[] = [];
  let prev = signing?.seedSignature ?? "";
  const enc = (s: string) => Buffer.from(s, "latin1");
  const frame = (data: Uint8Array) => {
    let head = data.length.toString(16);
    if (signing) {
      prev = signature(signing.signingKey, chunkStringToSign(signing, prev, sha256Hex(data)));
      sigs.push(prev);
      head += ";chunk-signature=" + prev;
    }
    parts.push(enc(head + "\r\n"), data, enc(data.length > 0 ? "\r\n" : ""));
  };
  for (let off = 0; off < payload.length; off += chunkSize) frame(payload.subarray(off, off + chunkSize));
  frame(new Uint8Array(0));

  let trailerSignature: string | undefined;
  if (trailers) {
    let canonical = "";
    for (const [name, value] of trailers) {
      parts.push(enc(name + ":" + value + "\r\n"));
      canonical += name.toLowerCase() + ":" + value.trim() + "\n";
    }
    if (signing) {
      trailerSignature = signature(signing.signingKey, trailerStringToSign(signing, prev, canonical));
      parts.push(enc("x-amz-trailer-signature:" + trailerSignature + "\r\n"));
    }
  }
  parts.push(enc("\r\n"));
  return { body: new Uint8Array(Buffer.concat(parts)), chunkSignatures: sigs, trailerSignature };
}
