/**
 * What the S3 operations share: the call context, picking the headers an operation passes
 * through (an allowlist per operation: nothing else reaches S3), request bodies and their
 * aws-chunked framing, query building and XML text escaping.
 *
 * Operations own no policy: no authentication, no authorization, no limits. They sign with the
 * bucket's credentials (BucketUpstream.send) and resolve with S3's answer for every status.
 */
import { algorithmFromHeaderName, CHECKSUM_ALGORITHMS, checksumHeaderName } from "../checksum.ts";
import { STREAMING_UNSIGNED_PAYLOAD_TRAILER } from "../sigv4.ts";
import type { UpstreamTiming } from "../upstream.ts";
import type { SendRequest } from "../send.ts";
import { connectionListed } from "../../http/headers.ts";

export interface OperationContext {
  /** The client's abort: cuts the upstream request (and a body in flight, so nothing is stored). */
  signal: AbortSignal;
  timing: UpstreamTiming;
  /** Caps the attempts below s3.retry.max_attempts (a streamed body always gets one). */
  maxAttempts?: number;
  /** The wait for the answer's head in place of s3.timeout (SendRequest.timeoutMs). */
  timeoutMs?: number;
}

/** The client's request headers, as a Headers or a plain record (any case). */
export type HeaderSource = Headers | Record<string, string | undefined>;

/** The x-amz-checksum-* value headers, one per algorithm. */
export const CHECKSUM_VALUE_HEADERS: readonly string[] = CHECKSUM_ALGORITHMS.map(checksumHeaderName);

/** Headers that describe the stored object (PutObject, CreateMultipartUpload, CopyObject with REPLACE). */
export const OBJECT_HEADERS: readonly string[] = ["cache-control", "content-disposition", "content-language", "content-type", "expires"];

/**
 * S3's owner checks, passed on with the writes: the account the client expects to own the bucket
 * (and a copy's source bucket); the upstream refuses the request (403) when it does not.
 */
export const EXPECTED_OWNER = "x-amz-expected-bucket-owner";
export const SOURCE_EXPECTED_OWNER = "x-amz-source-expected-bucket-owner";

/** A write's headers when the owner check is all it passes on (AbortMultipartUpload, the tagging writes). */
export const OWNER_HEADERS = { names: new Set([EXPECTED_OWNER]) };

/** aws-chunked as one of a Content-Encoding's codings. */
const AWS_CHUNKED = /(?:^|,)\s*aws-chunked\s*(?:,|$)/i;

/** Header names passed as they are, plus every x-amz-meta-* when `meta`; Content-Encoding is added without aws-chunked. */
export interface HeaderAllowlist {
  names: ReadonlySet<string>;
  meta?: boolean;
  contentEncoding?: boolean;
}

/** Whether `allow` passes the (lower-case) header name. */
function allowed(allow: HeaderAllowlist, lower: string): boolean {
  return allow.names.has(lower) || (allow.meta === true && lower.startsWith("x-amz-meta-")) || (allow.contentEncoding === true && lower === "content-encoding");
}

/**
 * The allowed headers of `src`, names lower-cased. `signed`: names of which every x-amz-* header
 * of `src` is one (a verified S3-front request's signed names, UploadBodyArgs.signedHeaders): the
 * allowed x-amz-* names are looked up among them and the others by name, with no pass over
 * `src` (its keys() iterator made an object per header and a string per uncommon name: ~8 cells
 * per upload; 0.43 µs either way for 5 headers, 1.4 against 0.6 µs for an SDK's 14).
 */
export function pickHeaders(src: HeaderSource | undefined, allow: HeaderAllowlist, signed?: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  if (src === undefined) return out;
  // Names first, a value only for the names kept: forEach makes every value's string (the
  // Authorization header's too), 0.74 against 0.42 µs for an SDK's request headers.
  if (src instanceof Headers) {
    // A client's fields its Connection header names are hop-by-hop (RFC 9110 §7.6.1), as on a GET
    // (forwardRequestHeaders): a PUT with `Connection: x-amz-meta-a` stored x-amz-meta-a.
    const hop = connectionListed(src);
    if (signed !== undefined) {
      // (plain names sort before x-amz-*: `out` is in keys()' order, as below)
      const plain = plainNamesOf(allow);
      for (let i = 0; i < plain.length; i++) pick(out, allow, src, plain[i]!, hop);
      for (let i = 0; i < signed.length; i++) {
        const name = signed[i]!;
        if (name.startsWith("x-amz-") && allowed(allow, name)) pick(out, allow, src, name, hop);
      }
    } else for (const name of src.keys()) if (allowed(allow, name) && (hop === undefined || !hop.includes(name))) take(out, allow, name, src.get(name) ?? undefined);
  } else for (const name of Object.keys(src)) take(out, allow, name.toLowerCase(), src[name]);
  return out;
}

/** pickHeaders' step for a name looked up (present, and not hop-by-hop). */
function pick(out: Record<string, string>, allow: HeaderAllowlist, src: Headers, name: string, hop: string[] | undefined): void {
  const value = src.get(name);
  if (value !== null && (hop === undefined || !hop.includes(name))) take(out, allow, name, value);
}

const PLAIN_NAMES = new WeakMap<HeaderAllowlist, readonly string[]>();
/** The names `allow` passes that are no x-amz-* header (Content-Encoding included when it passes), sorted. */
function plainNamesOf(allow: HeaderAllowlist): readonly string[] {
  let plain = PLAIN_NAMES.get(allow);
  if (plain === undefined) {
    const names = [...allow.names].filter((n) => !n.startsWith("x-amz-"));
    if (allow.contentEncoding === true && !names.includes("content-encoding")) names.push("content-encoding");
    PLAIN_NAMES.set(allow, (plain = names.sort()));
  }
  return plain;
}

/** pickHeaders' step for one header (a function of its own: a closure over `out` was made per call). */
function take(out: Record<string, string>, allow: HeaderAllowlist, lower: string, value: string | undefined): void {
  if (value === undefined || !allowed(allow, lower)) return;
  if (lower !== "content-encoding" || allow.names.has(lower)) out[lower] = value;
  else {
    const stripped = withoutAwsChunked(value);
    if (stripped !== "") out[lower] = stripped;
  }
}

/**
 * Content-Encoding without the aws-chunked transfer framing (S3 does not store it either). A value
 * that names no aws-chunked is the object's own, stored as sent, as S3 stores it (it was rebuilt:
 * "gzip, br" was stored as "gzip,br").
 */
export function withoutAwsChunked(value: string): string {
  if (!AWS_CHUNKED.test(value)) return value;
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "" && s.toLowerCase() !== "aws-chunked")
    .join(",");
}

/** A body toward S3: bytes (replayable, retried), or a stream with its exact length (sent once). */
export type UploadBody =
  | { body: Uint8Array; contentLength?: number }
  | { body: ReadableStream<Uint8Array>; contentLength: number };

/**
 * The body is aws-chunked framing with an unsigned trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER,
 * as encodeAwsChunkedUnsignedTrailer makes it): contentLength is the framed length, S3 verifies
 * the trailer's checksum and stores the decoded payload.
 */
export interface AwsChunkedBody {
  /** x-amz-decoded-content-length: the payload's length. */
  decodedLength: number;
  /** x-amz-trailer: the checksum header the trailer carries, e.g. "x-amz-checksum-crc32". */
  trailer: string;
}

/** Body options of PutObject and UploadPart. */
export type UploadBodyArgs = UploadBody & {
  /** x-amz-content-sha256: hex SHA-256 of the body or UNSIGNED-PAYLOAD (default: computed for bytes, unsigned for streams). */
  payloadHash?: string;
  awsChunked?: AwsChunkedBody;
  /** A checksum of the bytes to send as its x-amz-checksum-* header (a small aws-chunked upload's trailer, decoded: the upstream checks and stores it). */
  checksum?: { name: string; value: string };
  /** The stream's chunks are this upload's own (SendRequest.releaseChunks). */
  releaseChunks?: boolean;
  /** Names among which is every x-amz-* header of the args' `headers` (the client's signed names, verified): see pickHeaders. */
  signedHeaders?: readonly string[];
};

/**
 * Headers and payload hash for an upload body. With aws-chunked framing: Content-Encoding gets
 * aws-chunked appended (after the object's own codings, as the AWS SDKs do), the decoded length
 * and trailer are declared, and x-amz-checksum-* value headers are dropped (the trailer carries the
 * checksum; S3 refuses two). Without it, `checksum` (if any) goes as its header. Throws TypeError
 * on an inconsistent framing.
 */
export function framing(args: UploadBodyArgs, headers: Record<string, string>): string | undefined {
  const chunked = args.awsChunked;
  if (chunked === undefined) {
    const c = args.checksum;
    if (c !== undefined) headers[c.name] = c.value;
    return args.payloadHash;
  }
  if (!Number.isSafeInteger(chunked.decodedLength) || chunked.decodedLength < 0) throw new TypeError("invalid awsChunked.decodedLength");
  const trailer = chunked.trailer.toLowerCase();
  if (algorithmFromHeaderName(trailer) === undefined) throw new TypeError("awsChunked.trailer must name an x-amz-checksum-* header");
  if (args.payloadHash !== undefined && args.payloadHash !== STREAMING_UNSIGNED_PAYLOAD_TRAILER) throw new TypeError("an aws-chunked body is sent as STREAMING-UNSIGNED-PAYLOAD-TRAILER");
  for (const name of CHECKSUM_VALUE_HEADERS) delete headers[name];
  const own = headers["content-encoding"];
  headers["content-encoding"] = own === undefined ? "aws-chunked" : `${own},aws-chunked`;
  headers["x-amz-decoded-content-length"] = String(chunked.decodedLength);
  headers["x-amz-trailer"] = trailer;
  return STREAMING_UNSIGNED_PAYLOAD_TRAILER;
}

/**
 * An upload's SendRequest: the body and its length as send() takes them (a stream's length is
 * checked there at run time too), built field by field (object spreads took JavaScriptCore's
 * generic copyDataProperties path, ~1-2 % of a 1 KiB PutObject's CPU samples).
 */
export function uploadRequest(key: string, query: Array<[string, string]> | undefined, headers: Record<string, string>, payloadHash: string | undefined, args: UploadBody & { releaseChunks?: boolean }, ctx: OperationContext): SendRequest {
  return { method: "PUT", key, query, headers, payloadHash, body: args.body, contentLength: args.contentLength, signal: ctx.signal, timing: ctx.timing, maxAttempts: ctx.maxAttempts, releaseChunks: args.releaseChunks, emptyAnswer: true } as SendRequest;
}

/** Query pairs for the defined parameters, in the given order (the signer sorts them). */
export function query(params: ReadonlyArray<readonly [string, string | number | boolean | undefined]>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [name, value] of params) if (value !== undefined) out.push([name, String(value)]);
  return out;
}

/** A part number as S3 takes it (S3 itself answers for one outside 1..10000). */
export function partNumberText(n: number): string {
  if (!Number.isSafeInteger(n)) throw new TypeError("partNumber must be an integer");
  return String(n);
}

// XML 1.0 cannot carry these at all, even as character references.
const XML_ILLEGAL = /[\0-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/;
const XML_SPECIAL = /[&<>"'\r\n\t]/g;
const XML_ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;", "\r": "&#13;", "\n": "&#10;", "\t": "&#9;" };

/**
 * `s` as XML text. CR, LF and TAB become character references so a parser keeps them (a literal
 * CR would be normalised to LF, and the key would change). Throws TypeError for characters XML 1.0
 * cannot express: such a key cannot be named in an S3 XML body at all.
 */
export function xmlText(s: string, what: string): string {
  if (XML_ILLEGAL.test(s)) throw new TypeError(`${what} contains a character that XML cannot carry`);
  return s.replace(XML_SPECIAL, (c) => XML_ENTITIES[c]);
}

export const S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/";
