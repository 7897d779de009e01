/**
 * AWS Signature Version 4 for S3 requests: GET/HEAD (the hot path, empty-body hash) and, with
 * `payloadHash`, requests with a body (hex SHA-256, UNSIGNED-PAYLOAD or
 * STREAMING-UNSIGNED-PAYLOAD-TRAILER).
 *
 * Every step is an exported pure function (uriEncode → canonicalQuery →
 * canonicalHeaders → canonicalRequest → stringToSign → deriveSigningKey →
 * signature), shared with the S3 front's verifier of incoming requests
 * (src/fronts/s3/verify.ts). `S3Signer` composes them for the hot path, caching per UTC day
 * the signing key (as a keyed HMAC hasher) and the credential-scope strings,
 * and per second the x-amz-date string. Only Bun.CryptoHasher is used.
 */
import { utcMs } from "../util/utc.ts";
import { ASCII_TEXT, Scratch } from "./byte-view.ts";

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface SignableRequest {
  /** "GET" | "HEAD" (used verbatim, so pass it uppercase). */
  method: string;
  /** Host header value as sent (include :port when non-default). */
  host: string;
  /** URL path NOT yet encoded, e.g. "/my-bucket/photos/a b+c.jpg". */
  path: string;
  /** Raw (decoded) query params. */
  query?: Array<[string, string]>;
  /** Extra headers to sign (e.g. range). host/x-amz-date/x-amz-content-sha256/
   *  x-amz-security-token/authorization given here are ignored: the signer sets them. */
  headers?: Record<string, string>;
  /** x-amz-content-sha256 to sign and send (see isSignablePayloadHash); default EMPTY_SHA256 (no body). */
  payloadHash?: string;
}

export interface SignedRequest {
  /** Headers to add: authorization, x-amz-date, x-amz-content-sha256[, x-amz-security-token]. */
  headers: Record<string, string>;
  /** Encoded path that was signed; put exactly this on the wire. */
  path: string;
  /** Canonical query string that was signed (no leading "?"); valid to send as is. */
  query: string;
}

export const ALGORITHM = "AWS4-HMAC-SHA256";
/** sha256("") — the payload hash of a GET/HEAD. */
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/** The body is not hashed into the signature (S3 still checks any Content-MD5 / x-amz-checksum-*). */
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
/** An aws-chunked body without chunk signatures, ending in a checksum trailer named by x-amz-trailer. */
export const STREAMING_UNSIGNED_PAYLOAD_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

const HEX_SHA256 = /^[0-9a-f]{64}$/;

/**
 * Whether `value` is a payload hash this signer can sign for: the lowercase hex SHA-256 of the
 * body, UNSIGNED-PAYLOAD or STREAMING-UNSIGNED-PAYLOAD-TRAILER. The signed streaming modes
 * (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]) need a signature per chunk, which this signer
 * does not make.
 */
export function isSignablePayloadHash(value: string): boolean {
  return value === UNSIGNED_PAYLOAD || value === STREAMING_UNSIGNED_PAYLOAD_TRAILER || HEX_SHA256.test(value);
}

// ---------------------------------------------------------------- encoding

const PCT: string[] = [];
for (let b = 0; b < 256; b++) PCT.push("%" + (b < 16 ? "0" : "") + b.toString(16).toUpperCase());

/** 1 = ASCII char passes unencoded. SAFE: A-Za-z0-9-._~ ; SAFE_PATH: also "/". */
const SAFE = new Uint8Array(128);
for (const ch of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") SAFE[ch.charCodeAt(0)] = 1;
const SAFE_PATH = SAFE.slice();
SAFE_PATH[0x2f] = 1;

/**
 * Percent-encode every UTF-8 byte of `str` except A-Za-z0-9-._~ (and "/" when
 * `encodeSlash` is false), once, with uppercase hex. Lone surrogates are
 * encoded as U+FFFD, like TextEncoder does.
 */
export function uriEncode(str: string, encodeSlash: boolean): string {
  const safe = encodeSlash ? SAFE : SAFE_PATH;
  const n = str.length;
  let i = 0;
  for (; i < n; i++) {
    const c = str.charCodeAt(i);
    if (c >= 0x80 || safe[c] === 0) break;
  }
  if (i === n) return str; // nothing to encode: no allocation

  let out = str.slice(0, i);
  let run = i; // start of the pending run of safe chars
  for (; i < n; i++) {
    let c = str.charCodeAt(i);
    if (c < 0x80) {
      if (safe[c] === 1) continue;
      if (run < i) out += str.slice(run, i);
      out += PCT[c];
    } else {
      if (run < i) out += str.slice(run, i);
      if (c < 0x800) {
        out += PCT[0xc0 | (c >> 6)] + PCT[0x80 | (c & 0x3f)];
      } else {
        if (c >= 0xd800 && c <= 0xdfff) {
          const d = i + 1 < n ? str.charCodeAt(i + 1) : 0;
          if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
            const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
            out += PCT[0xf0 | (cp >> 18)] + PCT[0x80 | ((cp >> 12) & 0x3f)] +
              PCT[0x80 | ((cp >> 6) & 0x3f)] + PCT[0x80 | (cp & 0x3f)];
            i++;
            run = i + 1;
            continue;
          }
          c = 0xfffd; // lone surrogate
        }
        out += PCT[0xe0 | (c >> 12)] + PCT[0x80 | ((c >> 6) & 0x3f)] + PCT[0x80 | (c & 0x3f)];
      }
    }
    run = i + 1;
  }
  if (run < n) out += str.slice(run);
  return out;
}

/** S3 canonical URI: encode once, keep "/", no dot-segment normalization. Also the wire path. */
export function encodeS3Path(rawPath: string): string {
  return rawPath === "" ? "/" : uriEncode(rawPath, false);
}

/** Canonical query string: names and values encoded (incl. "/"), sorted by name then value. */
export function canonicalQuery(params: ReadonlyArray<readonly [string, string]>): string {
  const n = params.length;
  if (n === 0) return "";
  if (n === 1) return uriEncode(params[0][0], true) + "=" + uriEncode(params[0][1], true);
  const enc: Array<[string, string]> = new Array(n);
  for (let i = 0; i < n; i++) enc[i] = [uriEncode(params[i][0], true), uriEncode(params[i][1], true)];
  // Encoded strings are ASCII, so code-unit order is byte order.
  enc.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  let out = enc[0][0] + "=" + enc[0][1];
  for (let i = 1; i < n; i++) out += "&" + enc[i][0] + "=" + enc[i][1];
  return out;
}

// ---------------------------------------------------------------- canonical request

// ASCII whitespace only. Header values arrive one character per byte (Latin-1): JavaScript's \s
// (and String.trim) also match U+00A0, i.e. the byte 0xA0, a UTF-8 continuation byte (à is c3 a0,
// 你 e4 bd a0, Р d0 a0): such a value was hashed with that byte turned into a space or trimmed, so a
// Go client's (rclone's) valid signature over raw UTF-8 metadata failed, and the proxy's own
// signature toward the bucket covered other bytes than it sent.
const WS = /[\t\n\v\f\r ]/;
const WS_RUN = /[\t\n\v\f\r ]+/g;
const WS_EDGES = /^[\t\n\v\f\r ]+|[\t\n\v\f\r ]+$/g;

/** Trim and collapse internal whitespace runs to one space. */
export function canonicalHeaderValue(value: string): string {
  return WS.test(value) ? value.replace(WS_EDGES, "").replace(WS_RUN, " ") : value;
}

/**
 * Canonical headers block ("name:value\n" per header, names lowercased and
 * sorted) and the matching signed-headers list ("a;b;c").
 */
export function canonicalHeaders(headers: Record<string, string>): { canonical: string; signed: string } {
  const values = new Map<string, string>();
  for (const name of Object.keys(headers)) values.set(name.toLowerCase(), canonicalHeaderValue(headers[name]));
  const names = [...values.keys()].sort();
  let canonical = "";
  for (const name of names) canonical += name + ":" + values.get(name) + "\n";
  return { canonical, signed: names.join(";") };
}

/** The canonical request. `encodedPath` is used verbatim (already encoded by the caller's rules). */
export function canonicalRequest(
  method: string,
  encodedPath: string,
  canonicalQueryString: string,
  canonicalHeadersBlock: string,
  signedHeaders: string,
  payloadHash: string,
): string {
  return method + "\n" + encodedPath + "\n" + canonicalQueryString + "\n" + canonicalHeadersBlock + "\n" +
    signedHeaders + "\n" + payloadHash;
}

export function sha256Hex(data: string | Uint8Array): string {
  return Bun.CryptoHasher.hash("sha256", data, "hex");
}

/** "YYYYMMDDTHHMMSSZ" (UTC, whole seconds). */
export function amzDate(date: Date): string {
  const s = date.toISOString(); // 2013-05-24T00:00:00.000Z
  return s.slice(0, 4) + s.slice(5, 7) + s.slice(8, 10) + "T" + s.slice(11, 13) + s.slice(14, 16) + s.slice(17, 19) + "Z";
}

const AMZ_DATE_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

// The last string parsed and its result: requests signed within the same second share it.
let lastAmzDate = "";
let lastAmzMs: number | undefined;

/** Milliseconds since the epoch of a "YYYYMMDDTHHMMSSZ" string; undefined unless a real UTC instant. */
export function parseAmzDate(s: string): number | undefined {
  if (s === lastAmzDate) return lastAmzMs;
  const m = AMZ_DATE_RE.exec(s);
  let ms: number | undefined;
  if (m !== null) {
    const month = +m[2];
    const day = +m[3];
    // Date.UTC would roll 20240230 over to March 1st, and hour 24 to the next day: reject them
    if (month >= 1 && month <= 12 && day >= 1 && +m[4] <= 23 && +m[5] <= 59 && +m[6] <= 59) {
      const t = utcMs(+m[1], month - 1, day, +m[4], +m[5], +m[6]);
      if (new Date(t).getUTCDate() === day) ms = t;
    }
  }
  lastAmzDate = s;
  lastAmzMs = ms;
  return ms;
}

export function credentialScope(yyyymmdd: string, region: string, service: string): string {
  return yyyymmdd + "/" + region + "/" + service + "/aws4_request";
}

export function stringToSign(amzDateTime: string, scope: string, canonicalRequestText: string): string {
  return ALGORITHM + "\n" + amzDateTime + "\n" + scope + "\n" + sha256Hex(canonicalRequestText);
}

function hmac(key: string | Uint8Array, data: string): Uint8Array {
  return new Bun.CryptoHasher("sha256", key).update(data).digest();
}

export function deriveSigningKey(secret: string, yyyymmdd: string, region: string, service: string): Uint8Array {
  return hmac(hmac(hmac(hmac("AWS4" + secret, yyyymmdd), region), service), "aws4_request");
}

export function signature(signingKey: Uint8Array, stringToSignText: string): string {
  return new Bun.CryptoHasher("sha256", signingKey).update(stringToSignText).digest("hex");
}

// ---------------------------------------------------------------- signer

const ASCII = /^[\t\x20-\x7e]*$/;

/** Printable ASCII and tab only: a header value whose characters are its bytes in any encoding (the usual case). */
export function isAsciiHeaderValue(value: string): boolean {
  return ASCII.test(value);
}

/**
 * A header value as wire bytes, one Latin-1 character per byte: as received by a listener already;
 * the proxy's own text (a character above 0xFF) as UTF-8. Shared with the HTTP/1.1 client
 * (src/s3/http1/request.ts), which writes such values as these bytes.
 */
export function wireValue(value: string): string {
  return /[^\0-\xff]/.test(value) ? Buffer.from(value, "utf8").toString("latin1") : value;
}

/**
 * Text (a query parameter or form field, decoded from UTF-8) as a header value: its UTF-8 bytes,
 * one Latin-1 character each, as S3 reads such a value. ASCII text is its own bytes.
 */
export function utf8HeaderValue(text: string): string {
  return isAsciiHeaderValue(text) ? text : Buffer.from(text, "utf8").toString("latin1");
}

const RESERVED = new Set(["host", "authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"]);

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

/**
 * The signer's scratch: the canonical request, then the string to sign, then the Authorization
 * header are written here as bytes and hashed from here (no string joined per line, flattened and
 * encoded per request). Signing is synchronous, so one buffer serves every signer.
 */
const scratch = new Scratch(4096);
/** The SHA-256 of the canonical request, then the HMAC (CryptoHasher.digest into a TypedArray wants 64 bytes). */
const digest = new Uint8Array(32);
const mac = new Uint8Array(64);

export class S3Signer {
  private readonly accessKeyId: string;
  private readonly secret: string;
  private readonly token: string | undefined;
  private readonly now: (() => Date) | undefined;
  /** signed list and tail of the canonical request when only host + x-amz-* are signed */
  private readonly defaultSigned: string;
  private readonly defaultTail: string;
  /** The credentials, region or service are not all ASCII: what holds them is written as UTF-8. */
  private readonly utf8: boolean;

  private second = NaN;
  private date = "";
  private day = "";
  private scopeLine = "";
  private authBase = "";
  private authDefault = "";
  private keyed: Bun.CryptoHasher | null = null;
  private derivations = 0;

  constructor(
    creds: Credentials,
    readonly region: string,
    readonly service: string = "s3",
    now?: () => Date,
  ) {
    this.accessKeyId = creds.accessKeyId;
    this.secret = creds.secretAccessKey;
    this.token = creds.sessionToken || undefined;
    this.now = now;
    this.defaultSigned = "host;x-amz-content-sha256;x-amz-date" + (this.token ? ";x-amz-security-token" : "");
    // The canonical request after x-amz-date's line, up to the payload hash (appended per request).
    this.defaultTail = (this.token ? "x-amz-security-token:" + canonicalHeaderValue(this.token) + "\n" : "") +
      "\n" + this.defaultSigned + "\n";
    this.utf8 = !ASCII_TEXT.test(this.accessKeyId + (this.token ?? "") + region + service);
  }

  /** How many times the signing key was derived (once per UTC day in use). */
  get keyDerivations(): number {
    return this.derivations;
  }

  /** Headers to add to the outgoing request. The path on the wire must be encodeS3Path(req.path). */
  sign(req: SignableRequest): Record<string, string> {
    const q = req.query;
    return this.signEncoded(req.method, req.host, encodeS3Path(req.path), q && q.length ? canonicalQuery(q) : "", req.headers, req.payloadHash);
  }

  /** Like sign(), also returning the encoded path and query that were signed. */
  signRequest(req: SignableRequest): SignedRequest {
    const q = req.query;
    const path = encodeS3Path(req.path);
    const query = q && q.length ? canonicalQuery(q) : "";
    return { headers: this.signEncoded(req.method, req.host, path, query, req.headers, req.payloadHash), path, query };
  }

  private tick(): void {
    const ms = this.now ? this.now().getTime() : Date.now();
    const sec = Math.floor(ms / 1000);
    if (sec === this.second) return;
    const date = amzDate(new Date(sec * 1000)); // throws RangeError on an invalid clock
    this.second = sec;
    this.date = date;
    const day = date.slice(0, 8);
    if (day === this.day) return;
    const scope = credentialScope(day, this.region, this.service);
    this.keyed = new Bun.CryptoHasher("sha256", deriveSigningKey(this.secret, day, this.region, this.service));
    this.derivations++;
    this.day = day;
    this.scopeLine = "\n" + scope + "\n";
    this.authBase = ALGORITHM + " Credential=" + this.accessKeyId + "/" + scope + ", SignedHeaders=";
    this.authDefault = this.authBase + this.defaultSigned + ", Signature=";
  }

  private signEncoded(
    method: string,
    host: string,
    path: string,
    query: string,
    extra: Record<string, string> | undefined,
    payloadHash?: string,
  ): Record<string, string> {
    // A hash we cannot sign for would be sent and rejected by S3 with a less clear error.
    if (payloadHash !== undefined && !isSignablePayloadHash(payloadHash)) throw new Error("invalid payload hash for x-amz-content-sha256");
    this.tick();
    const date = this.date;
    const hash = payloadHash ?? EMPTY_SHA256;
    let bytes = false;
    if (extra === undefined || !hasKeys(extra)) {
      // Only the headers the signer sets (a GET, and a PUT with no object headers): no sort, no map.
      // (ASCII all: the method, the path and query as encoded, a URL's host, the hash and date;
      // the configured parts, the session token's line here, are written as UTF-8 if they need it)
      let n = scratch.put(method, 0);
      n = scratch.put("\n", n);
      n = scratch.put(path, n);
      n = scratch.put("\n", n);
      n = scratch.put(query, n);
      n = scratch.put("\nhost:", n);
      n = scratch.put(canonicalHeaderValue(host), n);
      n = scratch.put("\nx-amz-content-sha256:", n);
      n = scratch.put(hash, n);
      n = scratch.put("\nx-amz-date:", n);
      n = scratch.put(date, n);
      n = scratch.put("\n", n);
      n = scratch.put(this.defaultTail, n, this.utf8);
      n = scratch.put(hash, n);
      return this.signed(this.authorization(this.authDefault, n), date, hash);
    } else {
      const h: Record<string, string> = Object.create(null);
      if (extra !== undefined) {
        for (const name of Object.keys(extra)) {
          const lower = name.toLowerCase();
          if (RESERVED.has(lower)) continue;
          const value = extra[name];
          if (isAsciiHeaderValue(value)) h[lower] = value;
          else {
            h[lower] = wireValue(value);
            bytes = true;
          }
        }
      }
      h.host = host;
      h["x-amz-content-sha256"] = hash;
      h["x-amz-date"] = date;
      if (this.token) h["x-amz-security-token"] = this.token;
      const c = canonicalHeaders(h);
      const creq = canonicalRequest(method, path, query, c.canonical, c.signed, hash);
      return this.signed(this.authorization(this.authBase + c.signed + ", Signature=", scratch.put(creq, 0, !bytes)), date, hash);
    }
  }

  /**
   * The Authorization header: `prefix` then the signature of the canonical request written in the
   * scratch buffer (its first `creqBytes` bytes). The string to sign and the header are written
   * there too: one string made, the header's.
   */
  private authorization(prefix: string, creqBytes: number): string {
    Bun.SHA256.hash(scratch.view(creqBytes), digest);
    let n = scratch.put(ALGORITHM, 0);
    n = scratch.put("\n", n);
    n = scratch.put(this.date, n);
    n = scratch.put(this.scopeLine, n, this.utf8);
    n = scratch.putHex(digest, 32, n);
    this.keyed!.copy().update(scratch.view(n)).digest(mac);
    n = scratch.putHex(mac, 32, scratch.put(prefix, 0, this.utf8));
    return scratch.text(n, this.utf8);
  }

  /** The headers the signer sets. */
  private signed(authorization: string, date: string, hash: string): Record<string, string> {
    const out: Record<string, string> = {
      authorization,
      "x-amz-date": date,
      "x-amz-content-sha256": hash,
    };
    if (this.token) out["x-amz-security-token"] = this.token;
    return out;
  }
}
