/**
 * Parsing of SigV4 authentication parameters, from the Authorization header or from a presigned
 * URL's query, into one shape, with S3's error codes and messages for every malformed input.
 * No cryptography and no credentials here; verify.ts does the rest.
 */
import { ALGORITHM, amzDate as formatAmzDate, parseAmzDate } from "../../s3/sigv4.ts";
import { LruMap } from "../../util/lru.ts";
import { utcMs } from "../../util/utc.ts";
import { s3Error, type S3Error } from "./errors.ts";

export interface Scope {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  terminal: string;
}

/** Where the signature came from and what it covers, before any credential is looked up. */
export interface AuthParams {
  presigned: boolean;
  scope: Scope;
  /** Signed header names as the client listed them (lowercase); sorted when from the memo, and then shared: never mutated. */
  signedHeaders: readonly string[];
  signature: string;
  /** The request time, "YYYYMMDDTHHMMSSZ", and the same in ms. */
  amzDate: string;
  dateMs: number;
  /** Presigned only: X-Amz-Expires in seconds. */
  expires?: number;
  /** Header auth parsed through the memo: `signedHeaders` is sorted, and this is its line of the canonical request (signedHeadersLine). */
  signedLine?: string;
  /**
   * Header auth through the memo (the params written `into` a kept object): the signature is not
   * cut from the Authorization value, `signature` is "" and the signature is
   * `signatureIn.slice(signatureAt)` (verify.ts compares it in place; signatureOf cuts it when
   * it is needed). -1 (or absent): `signature` is the signature.
   */
  signatureAt?: number;
  signatureIn?: string;
}

const ECDSA_ALGORITHM = "AWS4-ECDSA-P256-SHA256";
/** Query parameter names that make a request a presigned (SigV4 query) one. */
export const PRESIGN_MARKERS = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"];
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const CANONICAL_FORM = /^AWS4-HMAC-SHA256 Credential=([^\s,=]+), ?SignedHeaders=([^\s,=]+), ?Signature=([^\s,=]+)$/;
const HTTP_DATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const MONTHS = "JanFebMarAprMayJunJulAugSepOctNovDec";

export const V2_UNSUPPORTED = (): S3Error =>
  s3Error("InvalidRequest", "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.");
export const SIGV4A_UNSUPPORTED = (): S3Error =>
  s3Error("NotImplemented", "Signature Version 4A (AWS4-ECDSA-P256-SHA256) is not implemented; sign with AWS4-HMAC-SHA256.");

const malformed = (detail: string, details?: Record<string, string>): S3Error =>
  s3Error("AuthorizationHeaderMalformed", "The authorization header is malformed; " + detail, details);
const queryError = (message: string, details?: Record<string, string>): S3Error =>
  s3Error("AuthorizationQueryParametersError", message, details);
const THREE_COMPONENTS = "the authorization header requires three components: Credential, SignedHeaders, and Signature.";
export const CREDENTIAL_FORM = 'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".';

function isError(x: unknown): x is S3Error {
  return typeof x === "object" && x !== null && typeof (x as S3Error).code === "string" && typeof (x as S3Error).status === "number";
}

export function parseCredential(value: string): Scope | undefined {
  const parts = value.split("/");
  if (parts.length !== 5 || parts.some((p) => p === "") || !/^\d{8}$/.test(parts[1])) return undefined;
  return { accessKeyId: parts[0], date: parts[1], region: parts[2], service: parts[3], terminal: parts[4] };
}

/**
 * Region, service and terminal of the scope; `fail` words the error for header or query auth. A
 * request signed for another region is answered with the region in `x-amz-bucket-region` too, as
 * S3 answers it: a HEAD's error has no body to carry <Region>, and the SDKs (botocore's region
 * redirector) read the header to re-sign a HeadObject or HeadBucket for the right region (without
 * it, `aws s3 cp s3://b/k .` from a client configured for another region failed with a bare 400).
 */
export function checkScope(scope: Scope, region: string, fail: (detail: string, details?: Record<string, string>) => S3Error, service = "s3"): S3Error | undefined {
  if (scope.region !== region) {
    const e = fail(`the region '${scope.region}' is wrong; expecting '${region}'`, { Region: region });
    e.headers = { ...e.headers, "x-amz-bucket-region": region };
    return e;
  }
  if (scope.service !== service) return fail(`incorrect service '${scope.service.slice(0, 32)}'. This endpoint belongs to '${service}'.`);
  if (scope.terminal !== "aws4_request") return fail(`incorrect terminal '${scope.terminal}'. This endpoint uses 'aws4_request'.`);
  return undefined;
}

/** Above this many names the duplicate check uses a Set (indexOf per name is quadratic: 10,000 names cost ~0.5 s). */
const FEW_NAMES = 16;

function parseSignedHeaders(value: string): string[] | undefined {
  const names = value.split(";");
  if (names.length > FEW_NAMES) {
    const seen = new Set<string>();
    for (const name of names) {
      if (!HEADER_NAME.test(name) || seen.has(name)) return undefined;
      seen.add(name);
    }
    return names;
  }
  for (let i = 0; i < names.length; i++) {
    // a handful of names: indexOf beats building a Set
    if (!HEADER_NAME.test(names[i]) || names.indexOf(names[i]) !== i) return undefined;
  }
  return names;
}

/** RFC 7231 IMF-fixdate (the `Date` header) → ms; undefined otherwise. */
export function parseHttpDate(value: string): number | undefined {
  const m = HTTP_DATE.exec(value);
  if (m === null || +m[4] > 23 || +m[5] > 59 || +m[6] > 59) return undefined;
  const ms = utcMs(+m[3], MONTHS.indexOf(m[2]) / 3, +m[1], +m[4], +m[5], +m[6]);
  return Number.isFinite(ms) && new Date(ms).getUTCDate() === +m[1] ? ms : undefined;
}

/** Where header values are read from: a request's Headers, or a view that reads each name once (verify.ts). */
export type HeaderSource = Pick<Headers, "get">;

/**
 * A valid Credential + SignedHeaders pair, as parsed once: the signed names sorted, and their line
 * of the canonical request. Shared by every request that hits the memo, so never mutated (and not
 * frozen: element reads and `includes` on a frozen array take JavaScriptCore's slow path).
 */
export interface ParsedScope {
  scope: Scope;
  signedHeaders: readonly string[];
  signedLine: string;
}

/**
 * The parsed Credential + SignedHeaders of header auth, by the Authorization value before its
 * signature (and the region it was checked against). The last prefix seen is compared first: a
 * client signs a run of requests with the same one, and comparing it costs no string building.
 */
export class AuthMemo {
  private lastPrefix = "";
  private lastRegion = "";
  private last: ParsedScope | undefined;
  readonly lru: LruMap<ParsedScope>;

  constructor(maxEntries: number) {
    this.lru = new LruMap(maxEntries);
  }

  get size(): number {
    return this.lru.size;
  }

  /** The entry for `authorization`'s first `cut` characters, signed for `region`. */
  get(authorization: string, cut: number, region: string): ParsedScope | undefined {
    const last = this.last;
    if (last !== undefined && cut === this.lastPrefix.length && region === this.lastRegion && authorization.startsWith(this.lastPrefix)) return last;
    const prefix = authorization.slice(0, cut);
    const hit = this.lru.get(region + " " + prefix);
    if (hit !== undefined) this.remember(prefix, region, hit);
    return hit;
  }

  set(authorization: string, cut: number, region: string, parsed: ParsedScope): void {
    const prefix = authorization.slice(0, cut);
    this.lru.set(region + " " + prefix, parsed);
    this.remember(prefix, region, parsed);
  }

  private remember(prefix: string, region: string, parsed: ParsedScope): void {
    this.lastPrefix = prefix;
    this.lastRegion = region;
    this.last = parsed;
  }
}

const SDK_SIGNATURE = ", Signature=";
/**
 * Prefixes longer than this are parsed each time, never remembered: an SDK's is ~150-400
 * characters, and a memo of 1,024 entries of ~60 KiB Authorization headers (anyone can send them:
 * the memo is filled before the key is looked up) held ~270 MB.
 */
const MAX_MEMO_PREFIX = 1024;
const SIGNATURE_VALUE = /^[^\s,=]+$/;
/** SIGNATURE_VALUE tested in place: from `lastIndex` to the end of the Authorization value. */
const SIGNATURE_TAIL = /[^\s,=]+$/y;

/**
 * `AWS4-HMAC-SHA256 Credential=AKID/date/region/s3/aws4_request, SignedHeaders=a;b, Signature=hex`.
 *
 * `memo` (keyed with the region, which the scope was checked against): an SDK signs every request of a day with the
 * same Credential and SignedHeaders, only the signature and the time change; the part before
 * ", Signature=" is parsed and validated once and looked up afterwards. Only a prefix that parsed
 * without error on the fast path is remembered, so a hit answers exactly as a parse would.
 * `into`: an object the params are written into (verification keeps one for the process), not a
 * new one per request.
 */
export function parseHeaderAuth(authorization: string, headers: HeaderSource, region: string, memo?: AuthMemo, service = "s3", into?: AuthParams): AuthParams | S3Error {
  let cut = -1;
  if (memo !== undefined) {
    cut = authorization.lastIndexOf(SDK_SIGNATURE);
    const hit = cut > 0 && cut <= MAX_MEMO_PREFIX ? memo.get(authorization, cut, region) : undefined;
    if (hit !== undefined) {
      const at = cut + SDK_SIGNATURE.length;
      // (into a kept object, the signature is left in the Authorization value: no string is cut
      // for it unless it is needed, a streaming upload's seed or an error's SignatureProvided)
      SIGNATURE_TAIL.lastIndex = at;
      if (into !== undefined && SIGNATURE_TAIL.test(authorization)) return withRequestTime(hit, "", headers, into, authorization, at);
      const signature = authorization.slice(at);
      if (SIGNATURE_VALUE.test(signature)) return withRequestTime(hit, signature, headers, into);
    }
  }
  const sp = authorization.indexOf(" ");
  const algorithm = sp < 0 ? authorization : authorization.slice(0, sp);
  if (algorithm === "AWS") return V2_UNSUPPORTED();
  if (algorithm === ECDSA_ALGORITHM) return SIGV4A_UNSUPPORTED();
  // The value is not echoed back: a non-SigV4 header may well carry a bearer token.
  if (algorithm !== ALGORITHM) return s3Error("InvalidArgument", "Unsupported Authorization Type", { ArgumentName: "Authorization" });

  // Fast path: the exact form every SDK writes ("Credential=.., SignedHeaders=.., Signature=..").
  const m = CANONICAL_FORM.exec(authorization);
  const fields = new Map<string, string>();
  if (m !== null) {
    fields.set("Credential", m[1]).set("SignedHeaders", m[2]).set("Signature", m[3]);
  } else if (sp < 0) {
    // (the scheme alone: no component at all, not a malformed one named after the scheme)
    return malformed(THREE_COMPONENTS);
  } else for (const part of authorization.slice(sp + 1).split(",")) {
    const t = part.trim();
    const eq = t.indexOf("=");
    const name = eq < 0 ? t : t.slice(0, eq);
    if (eq <= 0 || !(name === "Credential" || name === "SignedHeaders" || name === "Signature") || fields.has(name)) {
      return malformed(`the authorization component "${t.slice(0, 64)}" is malformed.`);
    }
    fields.set(name, t.slice(eq + 1));
  }
  const credential = fields.get("Credential");
  const signedRaw = fields.get("SignedHeaders");
  const signature = fields.get("Signature");
  if (credential === undefined || signedRaw === undefined || signature === undefined) {
    return malformed(THREE_COMPONENTS);
  }
  const scope = parseCredential(credential);
  if (scope === undefined) return malformed(CREDENTIAL_FORM);
  const signedHeaders = parseSignedHeaders(signedRaw);
  if (signedHeaders === undefined) return malformed(`the authorization component "SignedHeaders=${signedRaw.slice(0, 64)}" is malformed.`);
  const scopeProblem = checkScope(scope, region, malformed, service);
  if (scopeProblem) return scopeProblem;
  if (memo !== undefined && m !== null && cut > 0 && cut <= MAX_MEMO_PREFIX) {
    const sorted = signedHeaders.slice().sort();
    const parsed: ParsedScope = { scope, signedHeaders: sorted, signedLine: signedHeadersLine(sorted) };
    memo.set(authorization, cut, region, parsed);
    return withRequestTime(parsed, signature, headers, into);
  }
  return withRequestTime({ scope, signedHeaders }, signature, headers, into);
}

/** The line of the canonical request that lists the signed headers (sorted): "\n" + "a;b;c" + "\n". */
export function signedHeadersLine(sorted: readonly string[]): string {
  return "\n" + sorted.join(";") + "\n";
}

/** The time part of header auth, which changes with every request; the params written `into` the object given (else a new one). */
function withRequestTime(parsed: Omit<ParsedScope, "signedLine"> & { signedLine?: string }, signature: string, headers: HeaderSource, into: AuthParams | undefined, signatureIn = signature, signatureAt = -1): AuthParams | S3Error {
  const scope = parsed.scope;
  // The request time: x-amz-date, else the Date header (both must be valid). A Date used for
  // signing is in ISO 8601 basic format, as S3 documents it (also read: an IMF-fixdate, as the
  // SigV4 test suite's requests have it).
  let amzDate = headers.get("x-amz-date");
  let dateMs: number | undefined;
  if (amzDate !== null) dateMs = parseAmzDate(amzDate);
  else {
    const d = headers.get("date");
    dateMs = d === null ? undefined : parseAmzDate(d) ?? parseHttpDate(d);
    if (dateMs !== undefined) {
      // The time a request is judged by must be signed (an unsigned x-amz-date is refused as any
      // unsigned x-amz-* header is): else a captured request replays past the skew window with a
      // fresh Date.
      if (!parsed.signedHeaders.includes("date")) return s3Error("AccessDenied", "There were headers present in the request which were not signed", { HeadersNotSigned: "date" });
      amzDate = formatAmzDate(new Date(dateMs));
    }
  }
  if (dateMs === undefined || amzDate === null) return s3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header");
  if (!amzDate.startsWith(scope.date)) return malformed("Invalid credential date. Date is not the same as X-Amz-Date.");
  // (one literal, signedLine included even when undefined: one shape for every request's params)
  if (into === undefined) return { presigned: false, scope, signedHeaders: parsed.signedHeaders, signature, amzDate, dateMs, signedLine: parsed.signedLine };
  into.presigned = false;
  into.scope = scope;
  into.signedHeaders = parsed.signedHeaders;
  into.signature = signature;
  into.amzDate = amzDate;
  into.dateMs = dateMs;
  into.signedLine = parsed.signedLine;
  into.signatureIn = signatureIn;
  into.signatureAt = signatureAt;
  return into;
}

/** The value of a query parameter that must appear at most once. */
function single(query: ReadonlyArray<readonly [string, string]>, name: string): string | undefined | S3Error {
  let found: string | undefined;
  for (const [k, v] of query) {
    if (k !== name) continue;
    if (found !== undefined) return queryError(`The ${name} query parameter may appear only once.`);
    found = v;
  }
  return found;
}

/** X-Amz-Algorithm, -Credential, -Date, -Expires, -SignedHeaders, -Signature of a presigned URL. */
export function parseQueryAuth(query: ReadonlyArray<readonly [string, string]>, region: string, service = "s3"): AuthParams | S3Error {
  const get: Record<string, string | undefined> = {};
  // (the session token and payload hash are read by verify.ts: checked here only for a repeat, which
  // would leave it to the reader which one counts)
  for (const name of ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token", "X-Amz-Content-Sha256"]) {
    const v = single(query, name);
    if (isError(v)) return v;
    get[name] = v;
  }
  const algorithm = get["X-Amz-Algorithm"];
  if (algorithm === ECDSA_ALGORITHM) return SIGV4A_UNSUPPORTED();
  if (algorithm !== undefined && algorithm !== ALGORITHM) return queryError('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
  const credential = get["X-Amz-Credential"];
  const amzDate = get["X-Amz-Date"];
  const expiresRaw = get["X-Amz-Expires"];
  const signedRaw = get["X-Amz-SignedHeaders"];
  const signature = get["X-Amz-Signature"];
  if (!algorithm || !credential || !amzDate || !expiresRaw || !signedRaw || !signature) {
    return queryError(
      "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
    );
  }
  const scope = parseCredential(credential);
  if (scope === undefined) return queryError("Error parsing the X-Amz-Credential parameter; " + CREDENTIAL_FORM);
  const scopeProblem = checkScope(scope, region, (detail, details) =>
    queryError("Error parsing the X-Amz-Credential parameter; " + detail, details), service);
  if (scopeProblem) return scopeProblem;
  const dateMs = parseAmzDate(amzDate);
  if (dateMs === undefined) return queryError("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
  if (scope.date !== amzDate.slice(0, 8)) {
    return queryError("Error parsing the X-Amz-Credential parameter; Invalid credential date. Date is not the same as X-Amz-Date.");
  }
  if (!/^-?\d{1,10}$/.test(expiresRaw)) return queryError("X-Amz-Expires should be a number");
  const expires = Number(expiresRaw);
  // (S3's words for a negative value; zero, a URL valid for no time at all, is refused too)
  if (expires < 0) return queryError("X-Amz-Expires must be non-negative");
  if (expires < 1) return queryError("X-Amz-Expires must be at least 1 second");
  if (expires > 604800) {
    return queryError("X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds");
  }
  const signedHeaders = parseSignedHeaders(signedRaw);
  if (signedHeaders === undefined) return queryError("X-Amz-SignedHeaders is malformed.");
  return { presigned: true, scope, signedHeaders, signature, amzDate, dateMs, expires };
}

export { isError as isS3Error };
