/**
 * SigV4 verification of incoming S3 requests (Authorization header and presigned URLs). Pure: the
 * clock, the credential lookup and the signing-key cache are passed in. The canonical request is
 * built with the same functions that sign toward S3 (src/s3/sigv4.ts), from the decoded path and
 * query re-encoded once (uri.ts), as S3 does. Signatures are compared in constant time (an
 * XOR-accumulate loop, as crypto.timingSafeEqual does, without two Buffers per request).
 *
 * A header sent more than once comes joined with ", " (`Headers`) where SigV4 joins its values
 * with ",": a signature that fails over the values as received is tried over them so joined, each
 * ", " read either way (another signed header's "Smith, John" is not a join, nor a repeated
 * header's own): every subset up to 4 of them, past that only all of them as joins.
 */
import {
  canonicalHeaderValue,
  canonicalQuery,
  uriEncode,
} from "../../s3/sigv4.ts";
import { isS3Error, parseHeaderAuth, parseQueryAuth, PRESIGN_MARKERS, V2_UNSUPPORTED, SIGV4A_UNSUPPORTED, type AuthParams, type HeaderSource, signedHeadersLine } from "./auth-params.ts";
import { s3Error, type S3Error } from "./errors.ts";
import { signingKeyFor, type SigningKeyCache, type StringToSignMac } from "./signing-keys.ts";
import { canonicalUri, parseRawQuery } from "./uri.ts";
import { HEX_DIGITS, viewOf } from "../../s3/byte-view.ts";

/** How the body is (or is not) covered by the signature; the upload path acts on it. */
export type PayloadMode = "sha256" | "unsigned" | "streaming" | "streaming-trailer" | "streaming-unsigned-trailer";

export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
// (a Map: looked up by the client's header value, where a plain object also answered `constructor`,
// `toString`, ... with Object.prototype's functions, taken for a mode: the body went up unverified)
const MODES: ReadonlyMap<string, PayloadMode> = new Map([
  ["UNSIGNED-PAYLOAD", "unsigned"],
  ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "streaming"],
  ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "streaming-trailer"],
  ["STREAMING-UNSIGNED-PAYLOAD-TRAILER", "streaming-unsigned-trailer"],
]);
const ECDSA_MODES = new Set(["STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER"]);
const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface VerifyInput {
  method: string;
  /** Path as sent, still percent-encoded ("/bucket/a%20b"). */
  rawPath: string;
  /** Query as sent, without or with the leading "?". */
  rawQuery: string;
  headers: Headers;
}

export interface VerifyOptions {
  /** The region clients must sign for (s3_api.region). */
  region: string;
  /** The current time in ms. */
  now: number;
  maxSkewSeconds: number;
  /** Per-generation cache of signing keys; without it each request derives its key. */
  keyCache?: SigningKeyCache;
  /**
   * An STS call (GetCallerIdentity): the credential scope's service must be `sts`, and the payload
   * hash is the body's SHA-256 computed by the caller (STS's signers send no x-amz-content-sha256),
   * whatever a header says. Neither the key cache nor the Authorization memo is used (both hold s3's).
   */
  sts?: { payloadHash: string };
}

/**
 * Finds the secret for an access key. Returns the principal (anything carrying the secret), an
 * S3Error (e.g. ExpiredToken for an expired session), or undefined for an unknown key. A static
 * key must reject a session token it does not expect (S3: InvalidToken). `sessionToken`:
 * x-amz-security-token (header auth) or X-Amz-Security-Token (presigned), if sent; `now` in ms.
 * (Plain arguments: a context object was one more allocation per verified request.)
 */
export type CredentialLookup<P extends { secretAccessKey: string }> = (accessKeyId: string, sessionToken: string | undefined, now: number) => P | S3Error | undefined;

export interface Verified<P> {
  kind: "ok";
  accessKeyId: string;
  principal: P;
  /** The payload hash that was signed: 64 hex chars or one of the UNSIGNED/STREAMING constants. */
  payloadHash: string;
  mode: PayloadMode;
  /**
   * The request's signing key and signature: the seed of an aws-chunked chunk-signature chain.
   * (verifyRequest's answer, header auth through the Authorization memo: the signature is cut
   * from the header only in the two signed streaming modes, the seed's one use; "" in the others.)
   */
  signingKey: Uint8Array;
  seedSignature: string;
  /** "yyyymmdd/region/s3/aws4_request" */
  scope: string;
  /** "YYYYMMDDTHHMMSSZ" */
  amzDate: string;
  presigned: boolean;
  /** Sorted; may be shared with other requests (the header-auth memo's list): never mutated. */
  signedHeaders: readonly string[];
  /** Every header present is a signed one (or the Authorization header). */
  allSigned: boolean;
  sessionToken?: string | undefined;
  /** Presigned only: the instant (ms) the URL stops being valid. */
  expiresAt?: number | undefined;
  /** The decoded query, in order (what was verified). */
  query: ReadonlyArray<readonly [string, string]>;
  /**
   * The signature matched only with every raw "+" of the path and query read as a space (S3's
   * reading: it signs such a path with %20; a client that sends spaces as "+", as URLSearchParams
   * and @aws-lite do, is accepted by S3): the request's key and query are then read that way too.
   */
  plusAsSpace?: true | undefined;
}

export type VerifyResult<P> =
  | { kind: "anonymous"; query: ReadonlyArray<readonly [string, string]> }
  | Verified<P>
  | ({ kind: "error"; accessKeyId?: string } & S3Error);

/** The mode for an x-amz-content-sha256 value, or S3's error for a bad one. */
export function payloadMode(value: string): PayloadMode | S3Error {
  if (SHA256_HEX.test(value)) return "sha256";
  const mode = MODES.get(value);
  if (mode !== undefined) return mode;
  if (ECDSA_MODES.has(value)) return SIGV4A_UNSUPPORTED();
  return s3Error(
    "InvalidArgument",
    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
    { ArgumentName: "x-amz-content-sha256", ArgumentValue: value.slice(0, 128) },
  );
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

export function verifySigV4<P extends { secretAccessKey: string }>(
  input: VerifyInput,
  lookup: CredentialLookup<P>,
  opts: VerifyOptions,
): VerifyResult<P> {
  reads.start(input.headers);
  try {
    return verify(input, lookup, opts);
  } finally {
    reads.end();
  }
}

/**
 * verifySigV4 of an incoming request, from its context (method, raw path and query, headers). The
 * input is one object kept for the process (verification is synchronous and keeps nothing of it):
 * it lets go of the request's headers and target when verification ends.
 */
export function verifyRequest<P extends { secretAccessKey: string }>(
  ctx: { readonly method: string; readonly rawPath: string; readonly query: string; readonly req: { readonly headers: Headers } },
  lookup: CredentialLookup<P>,
  opts: VerifyOptions,
): VerifyResult<P> {
  const input = requestInput;
  input.method = ctx.method;
  input.rawPath = ctx.rawPath;
  input.rawQuery = ctx.query;
  input.headers = ctx.req.headers;
  reads.start(input.headers);
  try {
    return verify(input, lookup, opts, verifiedKept as Verified<P>);
  } finally {
    reads.end();
    input.rawPath = input.rawQuery = "";
    input.headers = NO_HEADERS;
  }
}
const NO_HEADERS = new Headers();
const TWO_TOKENS = () => s3Error("InvalidArgument", "The X-Amz-Security-Token query parameter does not match the x-amz-security-token header: a request carries one session token", { ArgumentName: "X-Amz-Security-Token" });
const requestInput: VerifyInput = { method: "", rawPath: "", rawQuery: "", headers: NO_HEADERS };

function verify<P extends { secretAccessKey: string }>(
  input: VerifyInput,
  lookup: CredentialLookup<P>,
  opts: VerifyOptions,
  into?: Verified<P>,
): VerifyResult<P> {
  const query = parseRawQuery(input.rawQuery);
  if (query === undefined) return error(s3Error("InvalidURI"));
  const authorization = reads.get("authorization");
  let v4Query = false;
  let v2Query = false;
  let queryToken = false;
  for (const [name] of query) {
    if (PRESIGN_MARKERS.includes(name)) v4Query = true;
    else if (name === "AWSAccessKeyId" || name === "Signature") v2Query = true;
    else if (name === "X-Amz-Security-Token") queryToken = true;
  }
  const mechanisms = (authorization !== null ? 1 : 0) + (v4Query ? 1 : 0) + (v2Query ? 1 : 0);
  if (mechanisms === 0) {
    // A session token with no signature is a credential that cannot be verified: S3 refuses it
    // (InvalidToken), it never serves such a request as anonymous (it was, on a public bucket).
    // (STS reads a token on signed calls only; an unsigned one is its own, sts-endpoint.ts.)
    if (opts.sts === undefined && (queryToken || reads.get("x-amz-security-token") !== null)) return error(s3Error("InvalidToken"));
    return { kind: "anonymous", query };
  }
  if (mechanisms > 1) {
    return error(s3Error(
      "InvalidArgument",
      "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
      { ArgumentName: "Authorization" },
    ));
  }
  if (v2Query) return error(V2_UNSUPPORTED());

  const sts = opts.sts;
  const params = sts !== undefined
    ? (authorization !== null ? parseHeaderAuth(authorization, reads, opts.region, undefined, "sts") : parseQueryAuth(query, opts.region, "sts"))
    : authorization !== null ? parseHeaderAuth(authorization, reads, opts.region, opts.keyCache?.authMemo, "s3", headerParams) : parseQueryAuth(query, opts.region);
  if (isS3Error(params)) return error(params);
  const akid = params.scope.accessKeyId;

  const skewMs = opts.maxSkewSeconds * 1000;
  let expiresAt: number | undefined;
  if (!params.presigned) {
    // The request time is a whole second (x-amz-date, Date): a client whose clock is right signed
    // at any instant of that second, so the past side counts from its end. From its start, a
    // max_clock_skew_seconds of 1 refused such a client whenever the fraction of the second it
    // signed at plus the way here came to a second (with 50 ms on the way, one request in 20).
    const skewed = opts.now >= params.dateMs ? opts.now - (params.dateMs + 999) : params.dateMs - opts.now;
    if (skewed > skewMs) {
      return error(s3Error("RequestTimeTooSkewed", undefined, {
        // the header the time was read from, as sent (S3 echoes a Date header as an HTTP date)
        RequestTime: reads.get("x-amz-date") ?? reads.get("date") ?? params.amzDate,
        ServerTime: iso(opts.now),
        MaxAllowedSkewMilliseconds: String(skewMs),
      }), akid);
    }
  } else {
    expiresAt = params.dateMs + params.expires! * 1000;
    if (params.dateMs - opts.now > skewMs) {
      // (S3 names the URL's X-Amz-Date in epoch milliseconds here)
      return error(s3Error("AccessDenied", "Request is not yet valid", { "X-Amz-Date": String(params.dateMs), Expires: iso(expiresAt), ServerTime: iso(opts.now) }), akid);
    }
    // Valid for X-Amz-Expires seconds from X-Amz-Date, the end excluded: the same bound as a
    // session's (a presigned URL minted by ?presign carries a session that ends with it, and the
    // URL's own "Request has expired" must win at that last instant, not the session's 400).
    if (opts.now >= expiresAt) {
      return error(s3Error("AccessDenied", "Request has expired", {
        "X-Amz-Expires": String(params.expires),
        Expires: iso(expiresAt),
        ServerTime: iso(opts.now),
      }), akid);
    }
  }

  let payloadHash: string;
  let mode: PayloadMode;
  if (sts !== undefined) {
    payloadHash = sts.payloadHash;
    mode = "sha256";
  } else {
    const refused = payloadOf(params, query, reads);
    if (refused !== undefined) return error(refused, akid);
    payloadHash = signedPayload.hash;
    mode = signedPayload.mode;
  }

  // (a list from the memo is sorted: no check needed)
  const names = params.signedLine !== undefined || isSorted(params.signedHeaders) ? params.signedHeaders : params.signedHeaders.slice().sort();
  const present = readSignedValues(reads, names);
  const accounted = present + (params.presigned ? 0 : 1);
  // (read once: each read of Bun's count is a call into the runtime)
  const count = (input.headers as Headers & { count: number }).count;
  let unsigned = unsignedHeaders(input.headers, names, count - accounted);
  // Only S3 refuses an unsigned x-amz-* header: STS (as AWS's other Query-protocol services) asks
  // only host and the request time to be signed, and reads a session token added after signing.
  if (sts !== undefined && unsigned.length > 0) unsigned = unsigned.filter((h) => h === "host" || h === "x-amz-date");
  if (unsigned.length > 0) {
    return error(s3Error("AccessDenied", "There were headers present in the request which were not signed", { HeadersNotSigned: unsigned.join(", ") }), akid);
  }

  let sessionToken: string | undefined;
  if (params.presigned) {
    for (const [k, v] of query) if (k === "X-Amz-Security-Token") sessionToken = v;
    // A presigned URL's token beside a signed x-amz-security-token header that is not it: one
    // request, two sessions (it was served as the query's, the header's ignored, and a wrong
    // signature showed the header's token in CanonicalRequest). Refused as with header auth below.
    if (sessionToken !== undefined && names.includes("x-amz-security-token") && reads.get("x-amz-security-token") !== sessionToken) return error(TWO_TOKENS(), akid);
  }
  // (present, it is signed: an unsigned x-amz-* header was refused just above, but for STS)
  if (sessionToken === undefined && (sts !== undefined || names.includes("x-amz-security-token"))) sessionToken = reads.get("x-amz-security-token") ?? undefined;
  // With the Authorization header, a session token in the query too (signed or not) that is not the
  // header's: which one the request is made with would depend on the reader (it was served as the
  // header's identity, the query's ignored). A request carries one token: refused, as a repeated
  // query token is (parseQueryAuth); STS's GET form too (GetCallerIdentity answered the header
  // token's identity, or a static key's, beside another token). (a boolean read when the query holds none)
  if (queryToken && !params.presigned) {
    for (const [k, v] of query) if (k === "X-Amz-Security-Token" && v !== sessionToken) return error(TWO_TOKENS(), akid);
  }
  const principal = lookup(akid, sessionToken, opts.now);
  if (principal === undefined) return error(s3Error("InvalidAccessKeyId", undefined, { AWSAccessKeyId: akid }), akid);
  if (!("secretAccessKey" in principal)) return error(principal, akid);

  const creqBytes = writeCanonicalRequest(input, query, names, params.signedLine ?? signedHeadersLine(names), payloadHash, params.presigned);
  if (creqBytes < 0) return error(s3Error("InvalidURI"), akid);
  const key = sts !== undefined
    ? signingKeyFor(undefined, akid, principal.secretAccessKey, params.scope.date, opts.region, "sts")
    : signingKeyFor(opts.keyCache, akid, principal.secretAccessKey, params.scope.date, opts.region);
  signCanonicalRequest(key.mac, params.amzDate, creqBytes);

  let verifiedQuery = query;
  let plusAsSpace = false;
  if (!(params.signatureAt !== undefined && params.signatureAt >= 0 ? macMatches(params.signatureIn!, params.signatureAt) : macMatches(params.signature))) {
    signatureOf(params);
    // Other readings of what was received, tried only when the literal one failed. A header sent
    // more than once reaches here joined with ", " (Headers, on both engines) where SigV4 joins its
    // values with ",": a signed value with ", " is also read so. And S3 reads a raw "+" as a space,
    // and accepts a signature over either reading (a literal "+" signed as %2B, which curl and some
    // SDKs send, or a space signed as %20): the key and query follow the reading that was signed.
    // The error shows the literal reading's canonical request.
    const literal = scratch.creq.latin1Slice(0, creqBytes);
    const literalSts = key.mac.lastStringToSign();
    const other = otherReading(input, query, names, params, payloadHash, key.mac, creqBytes);
    if (other === undefined) return error(signatureMismatch(akid, literalSts, params.signature, literal, sessionToken), akid);
    verifiedQuery = other.query;
    plusAsSpace = other.plusAsSpace;
  }

  // (every field written, the optional ones too: a kept object carries nothing of an earlier request)
  const ok = into ?? unfilled<P>();
  ok.accessKeyId = akid;
  ok.principal = principal;
  ok.payloadHash = payloadHash;
  ok.mode = mode;
  ok.signingKey = key.key;
  // equal to the one computed (just compared): the seed of an aws-chunked chain
  // (verifyRequest's kept answer: cut only for the two signed streaming modes, the seed's one use)
  ok.seedSignature = into === undefined || mode === "streaming" || mode === "streaming-trailer" ? signatureOf(params) : params.signature;
  ok.scope = key.mac.scope;
  ok.amzDate = params.amzDate;
  ok.presigned = params.presigned;
  ok.signedHeaders = names;
  ok.allSigned = count === accounted;
  ok.query = verifiedQuery;
  ok.plusAsSpace = plusAsSpace ? true : undefined;
  ok.sessionToken = sessionToken;
  ok.expiresAt = expiresAt;
  return ok;
}

/** A Verified to fill, every field present (one shape, whether new or kept). */
function unfilled<P>(): Verified<P> {
  return {
    kind: "ok", accessKeyId: "", principal: undefined as P, payloadHash: "", mode: "sha256", signingKey: NO_KEY, seedSignature: "", scope: "", amzDate: "",
    presigned: false, signedHeaders: NO_NAMES, allSigned: false, query: NO_QUERY, plusAsSpace: undefined, sessionToken: undefined, expiresAt: undefined,
  };
}
const NO_KEY = new Uint8Array(0);
const NO_NAMES: readonly string[] = [];
const NO_QUERY: ReadonlyArray<readonly [string, string]> = [];
/**
 * verifyRequest's answer: one object kept for the process, filled anew by each verification (its
 * callers, s3Parse and STS's GetCallerIdentity, read it at once and keep only its fields).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const verifiedKept: Verified<any> = unfilled();

/**
 * The signature checked over verify's other readings of what was received (its own function: a
 * closure over verify's locals made every request allocate their scope, the signature good or not).
 * The reading that matched, or undefined when none does. Overwrites the scratch buffers.
 */
function otherReading(
  input: VerifyInput,
  query: ReadonlyArray<readonly [string, string]>,
  names: readonly string[],
  params: AuthParams,
  payloadHash: string,
  keyMac: StringToSignMac,
  creqBytes: number,
): { query: ReadonlyArray<readonly [string, string]>; plusAsSpace: boolean } | undefined {
  const signedLine = params.signedLine ?? signedHeadersLine(names);
  const matches = (target: VerifyInput, q: ReadonlyArray<readonly [string, string]>, joined: number): boolean => {
    const n = writeCanonicalRequest(target, q, names, signedLine, payloadHash, params.presigned, joined);
    if (n < 0) return false;
    signCanonicalRequest(keyMac, params.amzDate, n);
    return macMatches(params.signature);
  };
  // Which ", " in the signed values are joins is not known: each subset of them is read as the
  // joins (up to JOIN_SUBSETS_UP_TO of them; past that, only all of them). Before, only all of them
  // were: a repeated header signed along with another header whose value holds ", " (a metadata
  // "Smith, John", an If-Match list), or one of whose own values holds ", ", never verified.
  // (each reading hashes the whole canonical request: the subsets only for a request of at most
  // JOIN_SUBSETS_BYTES, so that a refused request's extra hashing stays small whatever its headers)
  const joinable = joinedValues(names.length);
  const last = joinable === 0 ? 0 : joinable <= JOIN_SUBSETS_UP_TO && creqBytes <= JOIN_SUBSETS_BYTES ? (1 << joinable) - 1 : ALL_JOINED;
  const first = last === ALL_JOINED ? ALL_JOINED : 1;
  const joinedMatch = (target: VerifyInput, q: ReadonlyArray<readonly [string, string]>): boolean => {
    if (last === ALL_JOINED) return matches(target, q, ALL_JOINED);
    for (let mask = first; mask <= last; mask++) if (matches(target, q, mask)) return true;
    return false;
  };
  if (joinable > 0 && joinedMatch(input, query)) return { query, plusAsSpace: false }; // (the literal path and query)
  const alt = plusAsSpaceVariant(input);
  const altQuery = alt === undefined ? undefined : parseRawQuery(alt.rawQuery);
  if (alt !== undefined && altQuery !== undefined && (matches(alt, altQuery, 0) || (joinable > 0 && joinedMatch(alt, altQuery)))) return { query: altQuery, plusAsSpace: true };
  return undefined;
}

/**
 * S3's SignatureDoesNotMatch, with what it shows to help debug a client, in S3's order: the string
 * to sign and the canonical request, each also as its bytes in hex (StringToSignBytes,
 * CanonicalRequestBytes: the bytes hashed, which the text, one Latin-1 character per byte, shows
 * garbled where a header value has UTF-8 in it).
 */
function signatureMismatch(akid: string, stringToSign: string, provided: string, creq: string, sessionToken: string | undefined): S3Error {
  // S3 returns the canonical request to help debug a client; the session token in it, and an
  // SSE-C key the SDKs sign as any x-amz-* header, are redacted so that an error body or a log
  // line never carries a credential.
  const shown = redactCustomerKeys(sessionToken ? redact(creq, sessionToken) : creq);
  return s3Error("SignatureDoesNotMatch", undefined, {
    AWSAccessKeyId: akid,
    StringToSign: stringToSign,
    SignatureProvided: provided.slice(0, 128),
    StringToSignBytes: hexBytes(stringToSign),
    CanonicalRequest: shown,
    CanonicalRequestBytes: hexBytes(shown),
  });
}

/**
 * Each character's code (a byte: the text is Latin-1) as two hex digits, space-separated, as S3
 * shows bytes. Written into one buffer: a regular expression putting in the spaces took 3-7 ms for
 * a 60 KB canonical request, twice per refused request (a large signed header made every wrong
 * signature cost that much CPU); this takes ~0.3-0.5 ms.
 */
export function hexBytes(latin1: string): string {
  const hex = Buffer.from(latin1, "latin1").toString("hex");
  const n = hex.length >> 1;
  if (n === 0) return "";
  const out = Buffer.allocUnsafe(3 * n - 1);
  for (let i = 0, j = 0; i < n; i++) {
    if (i > 0) out[j++] = 0x20;
    out[j++] = hex.charCodeAt(2 * i);
    out[j++] = hex.charCodeAt(2 * i + 1);
  }
  return out.toString("latin1");
}

/** The request target with every raw "+" read as a space (%20), or undefined when it has none. */
function plusAsSpaceVariant<T extends { rawPath: string; rawQuery: string }>(input: T): T | undefined {
  if (input.rawPath.indexOf("+") < 0 && input.rawQuery.indexOf("+") < 0) return undefined;
  return { ...input, rawPath: input.rawPath.replaceAll("+", "%20"), rawQuery: input.rawQuery.replaceAll("+", "%20") };
}

/**
 * The canonical request of an incoming request, as S3 computes it: decoded path re-encoded once,
 * decoded query re-encoded and sorted (without X-Amz-Signature when presigned), the signed
 * headers' values trimmed and whitespace-collapsed (empty if absent). `signedHeaders` must be
 * sorted. Undefined when the path cannot be decoded. (verifySigV4 writes it with the same two
 * steps; this string form is for the published test vectors, test/fronts/s3/verify-vectors.test.ts.)
 */
export function canonicalRequestOf(
  input: VerifyInput,
  query: ReadonlyArray<readonly [string, string]>,
  signedHeaders: readonly string[],
  payloadHash: string,
  presigned: boolean,
): string | undefined {
  readSignedValues(input.headers, signedHeaders);
  const n = writeCanonicalRequest(input, query, signedHeaders, signedHeadersLine(signedHeaders), payloadHash, presigned);
  return n < 0 ? undefined : scratch.creq.latin1Slice(0, n);
}

// ---------------------------------------------------------------- the signature, as bytes

/**
 * The canonical request is written as bytes into a buffer kept for the process, and the string to
 * sign into one kept with the signing key (StringToSignMac, signing-keys.ts), and hashed from
 * there: no string is built, flattened and encoded per request, and the signature is compared with
 * the digest's bytes (the hex string is never made). Verification is synchronous, so one set of
 * buffers serves every request.
 *
 * Bytes, as S3 hashes them: header values are taken as the listener received them (Bun.serve and
 * node:http give each byte as one Latin-1 character), and the path and query are ASCII once
 * URI-encoded. (Before, the text was hashed as UTF-8, so a header value with a byte above 0x7F
 * never verified.)
 */
interface Latin1Buffer extends Buffer {
  latin1Write(s: string, offset: number, length?: number): number;
  latin1Slice(start?: number, end?: number): string;
}
const bufferOf = (size: number) => Buffer.allocUnsafe(size) as Latin1Buffer;
const scratch = { creq: bufferOf(4096) };
/** The canonical request's SHA-256, then the HMAC (StringToSignMac.sign). */
const digest = new Uint8Array(32);
const mac = new Uint8Array(64);
const HEX = HEX_DIGITS;
const NL = 0x0a;

/**
 * Writes `s` at `at` in the canonical-request buffer; the offset after it. The buffer is grown so
 * that SLACK more bytes fit after `s`: the single bytes (":" and "\n") written between two puts.
 */
const SLACK = 4;
function put(s: string, at: number): number {
  const end = at + s.length;
  if (end + SLACK > scratch.creq.length) {
    const bigger = bufferOf(Math.max(end + SLACK, scratch.creq.length * 2));
    scratch.creq.copy(bigger, 0, 0, at);
    scratch.creq = bigger;
  }
  // (a JS loop, not latin1Write: a canonical request's pieces are short, and each call into the
  // runtime costs more than the loop when verification runs cold, as it does between requests)
  const b = scratch.creq;
  for (let i = 0; i < s.length; i++) b[at + i] = s.charCodeAt(i);
  return end;
}

/**
 * The canonical request into scratch.creq (the signed values read by readSignedValues); its
 * length, or -1 when the path cannot be decoded. `joined`: which ", " in the signed values are
 * read as a repeated header's, ", " joining them as "," (verify's second reading): bit j for the
 * j-th ", " in them, ALL_JOINED for every one.
 */
function writeCanonicalRequest(
  input: VerifyInput,
  query: ReadonlyArray<readonly [string, string]>,
  signedHeaders: readonly string[],
  signedLine: string,
  payloadHash: string,
  presigned: boolean,
  joined = 0,
): number {
  const uri = canonicalUri(input.rawPath);
  if (uri === undefined) return -1;
  const signedQuery = presigned ? query.filter(([k]) => k !== "X-Amz-Signature") : query;
  let n = put(input.method, 0);
  scratch.creq[n++] = NL;
  n = put(uri, n);
  scratch.creq[n++] = NL;
  if (signedQuery.length > 0) n = put(canonicalQuery(signedQuery), n);
  scratch.creq[n++] = NL;
  // (an index loop: signedValues is indexed alike; j counts the ", " read so far when joined)
  for (let i = 0, j = 0; i < signedHeaders.length; i++) {
    const name = signedHeaders[i]!;
    n = put(name, n);
    scratch.creq[n++] = 0x3a; // ":"
    const value = canonicalHeaderValue(signedValues[i] ?? "");
    if (joined === 0 || !value.includes(", ")) n = put(value, n);
    else if (joined === ALL_JOINED) n = put(value.replaceAll(", ", ","), n);
    else {
      let read = "";
      let from = 0;
      for (let at = value.indexOf(", "); at >= 0; at = value.indexOf(", ", at + 2)) {
        read += value.slice(from, at) + ((joined & (1 << j++)) !== 0 ? "," : ", ");
        from = at + 2;
      }
      n = put(read + value.slice(from), n);
    }
    scratch.creq[n++] = NL;
  }
  n = put(signedLine, n);
  return put(payloadHash, n);
}

/** The canonical request's SHA-256, then its string to sign's HMAC under the request's key, into `mac`. */
function signCanonicalRequest(keyMac: StringToSignMac, amzDate: string, creqBytes: number): void {
  Bun.SHA256.hash(viewOf(scratch.creq, creqBytes), digest);
  keyMac.sign(amzDate, digest, mac);
}

/**
 * The request's headers as verification reads them: each name is fetched from Headers once per
 * request (the payload hash and the date are needed both on their own and as signed values).
 * Verification is synchronous: one view serves every request, and lets go of the request's
 * headers when it ends. Only the first READS_KEPT names are kept (a request may sign hundreds of
 * names: the lookup stays a short scan).
 */
const READS_KEPT = 8;
class HeaderReads implements HeaderSource {
  private headers: Headers | undefined;
  private readonly names: string[] = [];
  private readonly values: Array<string | null> = [];
  private n = 0;

  start(headers: Headers): void {
    this.headers = headers;
    this.n = 0;
  }

  end(): void {
    this.headers = undefined;
    for (let i = 0; i < this.n; i++) this.values[i] = null;
    this.n = 0;
  }

  get(name: string): string | null {
    for (let i = 0; i < this.n; i++) if (this.names[i] === name) return this.values[i]!;
    const v = this.headers!.get(name);
    if (this.n < READS_KEPT) {
      this.names[this.n] = name;
      this.values[this.n++] = v;
    }
    return v;
  }
}
const reads = new HeaderReads();

/**
 * The signature provided (lowercase hex, as S3 compares it), `provided` from `at` to its end,
 * against `mac`, in constant time in its content.
 */
function macMatches(provided: string, at = 0): boolean {
  if (provided.length - at !== 64) return false;
  let diff = 0;
  for (let i = 0; i < 32; i++) {
    const x = mac[i]!;
    diff |= (HEX[x >> 4]! ^ provided.charCodeAt(at + 2 * i)) | (HEX[x & 15]! ^ provided.charCodeAt(at + 2 * i + 1));
  }
  return diff === 0;
}

/** The params' signature, cut from the Authorization value if it was left there (AuthParams.signatureAt). */
function signatureOf(params: AuthParams): string {
  if (params.signatureAt !== undefined && params.signatureAt >= 0) {
    params.signature = params.signatureIn!.slice(params.signatureAt);
    params.signatureAt = -1;
  }
  return params.signature;
}

function error(e: S3Error, accessKeyId?: string): { kind: "error"; accessKeyId?: string } & S3Error {
  return accessKeyId === undefined ? { kind: "error", ...e } : { kind: "error", accessKeyId, ...e };
}

/** Header auth's params (verification is synchronous and keeps nothing of them: one object serves every request). */
const headerParams: AuthParams = { presigned: false, scope: { accessKeyId: "", date: "", region: "", service: "", terminal: "" }, signedHeaders: [], signature: "", amzDate: "", dateMs: 0, signedLine: undefined, signatureIn: "", signatureAt: -1 };

/** payloadOf's answer (verification is synchronous: one object serves every request, read at once). */
const signedPayload: { hash: string; mode: PayloadMode } = { hash: "", mode: "sha256" };

/**
 * The signed payload hash, into signedPayload (or S3's error). Header auth: x-amz-content-sha256 is
 * required. Presigned: the X-Amz-Content-Sha256 query parameter, else a signed x-amz-content-sha256
 * header, else UNSIGNED-PAYLOAD; streaming modes make no sense for a URL and are refused.
 */
function payloadOf(params: AuthParams, query: ReadonlyArray<readonly [string, string]>, headers: HeaderSource): S3Error | undefined {
  let value: string | null = null;
  if (params.presigned) {
    for (const [k, v] of query) if (k === "X-Amz-Content-Sha256") value = v;
    if (value === null && params.signedHeaders.includes("x-amz-content-sha256")) value = headers.get("x-amz-content-sha256");
    if (value === null) {
      signedPayload.hash = UNSIGNED_PAYLOAD;
      signedPayload.mode = "unsigned";
      return undefined;
    }
  } else {
    value = headers.get("x-amz-content-sha256");
    if (value === null) return s3Error("InvalidRequest", "Missing required header for this request: x-amz-content-sha256");
  }
  const mode = payloadMode(value);
  if (isS3Error(mode)) return mode;
  if (params.presigned && mode !== "sha256" && mode !== "unsigned") {
    return s3Error("InvalidArgument", "A presigned URL must sign UNSIGNED-PAYLOAD or a SHA-256 payload hash.", { ArgumentName: "X-Amz-Content-Sha256" });
  }
  signedPayload.hash = value;
  signedPayload.mode = mode;
  return undefined;
}

/** Headers clients commonly send unsigned, most common first (none is an x-amz-* header): every upload's length, an SDK's User-Agent, … */
const COMMON_UNSIGNED = ["content-length", "user-agent", "accept-encoding", "accept", "connection", "amz-sdk-invocation-id", "amz-sdk-request", "expect", "content-type", "x-amzn-trace-id"];
const NONE: readonly string[] = [];
const HOST_ONLY: readonly string[] = ["host"];

/**
 * host, and every x-amz-* header present, must be signed (S3 refuses unsigned x-amz-* headers).
 * `unknown`: how many of the headers present are neither signed nor the Authorization header
 * (Bun's Headers.count less those). When they are all common non-x-amz-* headers (counted with
 * `has`), no header name is listed; else every name is looked at (keys(), a sorted copy: ~35 ns a
 * header). An SDK's GetObject usually has one such header (User-Agent).
 */
function unsignedHeaders(headers: Headers, signed: readonly string[], unknown: number): readonly string[] {
  for (let i = 0; unknown > 0 && i < COMMON_UNSIGNED.length; i++) {
    const name = COMMON_UNSIGNED[i]!;
    if (!signed.includes(name) && headers.has(name)) unknown--;
  }
  if (unknown === 0) return signed.includes("host") ? NONE : HOST_ONLY;
  const missing: string[] = [];
  if (!signed.includes("host")) missing.push("host");
  for (const name of headers.keys()) {
    if (name.startsWith("x-amz-") && !signed.includes(name)) missing.push(name);
  }
  return missing;
}

/** The signed headers' values (null: absent), read once per request into `signedValues`; how many are present. */
let signedValues: Array<string | null> = [];
function readSignedValues(headers: HeaderSource, names: readonly string[]): number {
  if (signedValues.length < names.length) signedValues = new Array<string | null>(names.length);
  let present = 0;
  for (let i = 0; i < names.length; i++) {
    const v = headers.get(names[i]!);
    if (v !== null) present++;
    signedValues[i] = v;
  }
  return present;
}

/** How many times ", " (a join of a header sent more than once, or a value's own) is in the first `n` signed values (readSignedValues), canonical. */
function joinedValues(n: number): number {
  let k = 0;
  for (let i = 0; i < n; i++) {
    const value = canonicalHeaderValue(signedValues[i] ?? "");
    for (let at = value.indexOf(", "); at >= 0; at = value.indexOf(", ", at + 2)) k++;
  }
  return k;
}
/** writeCanonicalRequest's `joined` reading every value holding ", " as joined. */
const ALL_JOINED = -1;
/** Up to this many ", " in the signed values, each subset of them is tried as the joins (2^4 - 1 = 15 readings at most). */
const JOIN_SUBSETS_UP_TO = 4;
/**
 * The subsets only for a literal canonical request of at most this many bytes (an SDK's is under
 * 2 KiB; S3 takes at most 2 KiB of user metadata): past it, all of them as joins, as before. Each
 * reading hashes the whole request: 30 readings of 64 KiB of signed headers (a "+" in the query
 * doubling them) cost a refused request ~9 ms more.
 */
const JOIN_SUBSETS_BYTES = 8192;

/** SDKs list the signed headers sorted (and memoized lists are): no copy and sort for them. */
function isSorted(names: readonly string[]): boolean {
  for (let i = 1; i < names.length; i++) if (names[i - 1]! >= names[i]!) return false;
  return true;
}

/** Constant time in the signature's content (its length is public: always 64). */
export function sameSignature(expected: string, provided: string): boolean {
  if (provided.length !== expected.length) return false;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) diff |= expected.charCodeAt(i) ^ provided.charCodeAt(i);
  return diff === 0;
}

/**
 * A canonical request's SSE-C key values (x-amz-server-side-encryption-customer-key and its
 * copy-source twin; not their -md5, which S3 shows), as headers ("name:value" lines) or as
 * query parameters of a presigned URL: <redacted>.
 */
const CUSTOMER_KEY_HEADER = /^(x-amz-(?:copy-source-)?server-side-encryption-customer-key):.*$/gm;
const CUSTOMER_KEY_PARAM = /(^|&)(x-amz-(?:copy-source-)?server-side-encryption-customer-key)=[^&\n]*/gim;

function redactCustomerKeys(creq: string): string {
  if (!creq.includes("-customer-key")) return creq;
  return creq.replace(CUSTOMER_KEY_HEADER, "$1:<redacted>").replace(CUSTOMER_KEY_PARAM, "$1$2=<redacted>");
}

function redact(text: string, secret: string): string {
  return text.replaceAll(secret, "<redacted>").replaceAll(uriEncode(secret, true), "<redacted>");
}
