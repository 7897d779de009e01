/**
 * Minimal JWS compact parsing, the HMAC fast path, and the registered-claim checks shared by every
 * algorithm. Nothing here ever puts the token (or a claim value) into an error message.
 *
 * Registered claims:
 * - exp: optional. A token WITHOUT exp is accepted (as jose and the original do); use a claim rule
 *   `{claim: exp, operator: exists}` to require it. With exp, the token is refused once
 *   now - leeway >= exp. A non-numeric exp is refused.
 * - nbf: optional; refused while now + leeway < nbf.
 * - iat: optional; a number, and refused while now + leeway < iat (a token issued in the future:
 *   a forged or mis-clocked issuer; PyJWT refuses it alike).
 * - iss: must equal jwt.issuer when that is set. aud (string or array) must share at least one
 *   value with jwt.audience when that is set.
 */
import type { Algorithm, JwtConfig } from "../config/schema.ts";
import type { Claims } from "./rules.ts";

export interface JoseHeader {
  alg: string;
  kid?: string;
  crit?: unknown;
  [k: string]: unknown;
}

export interface ParsedToken {
  header: JoseHeader;
  /** "<header>.<payload>" — the bytes the signature covers. */
  signingInput: string;
  payloadB64: string;
  signatureB64: string;
}

/** Thrown by the helpers here; the Authenticator maps it to ProxyError InvalidToken. */
export class TokenError extends Error {
  override name = "TokenError";
}

/** The message of the TokenError for an expired token (STS answers ExpiredTokenException for it: SDKs refresh on that). */
export const TOKEN_EXPIRED = "token expired";

const B64URL = /^[A-Za-z0-9_-]*$/;

// fatal: bytes that are not UTF-8 are refused (RFC 7519 §7.2), not read as U+FFFD; ignoreBOM: a
// byte order mark is kept, and JSON.parse refuses it, rather than silently dropped.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * How deep a token's header or claims may nest (objects and arrays). Real claims nest a few levels;
 * thousands overflowed the stack of whatever walks them recursively (the authorizers' cache key
 * hashed them: a 500). JSON text of n characters nests at most n/2 deep, so only text longer than
 * twice this is walked: an ordinary token costs nothing more.
 */
export const MAX_CLAIMS_DEPTH = 256;

/** Whether `v` nests deeper than `left` more levels (recursion bounded by `left`). */
function nestsDeeper(v: unknown, left: number): boolean {
  if (v === null || typeof v !== "object") return false;
  if (left === 0) return true;
  for (const x of Array.isArray(v) ? v : Object.values(v)) if (nestsDeeper(x, left - 1)) return true;
  return false;
}

function decodeJson(part: string, what: string): Record<string, unknown> {
  let v: unknown;
  let text: string;
  try {
    // Uint8Array.fromBase64 + TextDecoder: about half the cost of Buffer.from(x, "base64url").toString(),
    // and it throws on characters outside the alphabet instead of skipping them.
    text = utf8.decode(Uint8Array.fromBase64(part, { alphabet: "base64url" }));
    v = JSON.parse(text);
  } catch {
    throw new TokenError(`malformed token: ${what} is not base64url JSON`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new TokenError(`malformed token: ${what} is not a JSON object`);
  if (text.length > 2 * MAX_CLAIMS_DEPTH && nestsDeeper(v, MAX_CLAIMS_DEPTH)) throw new TokenError(`malformed token: the ${what} values nest deeper than ${MAX_CLAIMS_DEPTH} levels`);
  return v as Record<string, unknown>;
}

// Tokens from one issuer share a handful of distinct headers; caching their parse saves ~0.3 µs per
// verification. Bounded: when full it is simply cleared (attacker-chosen headers cannot grow it).
const headerCache = new Map<string, JoseHeader>();
const HEADER_CACHE_MAX = 64;
/** The longest header text cached (an issuer's header: alg, typ, kid; ~40-200 characters). */
const HEADER_CACHE_ENTRY_MAX = 512;
/** How many parsed headers are kept (what the bound holds: for tests). */
export const cachedHeaders = (): number => headerCache.size;

/**
 * Splits a compact JWS and decodes its header (validated as base64url JSON with a string alg, a
 * string kid if any, and no crit).
 * The payload and signature are NOT checked for base64url characters here: the HMAC fast path
 * compares the signature as canonical base64url text and covers the payload's exact text, so a
 * stray character can only make verification fail; `assertBase64url` is there for the other paths.
 */
export function parseToken(token: string): ParsedToken {
  const d1 = token.indexOf(".");
  const d2 = d1 < 0 ? -1 : token.indexOf(".", d1 + 1);
  if (d1 <= 0 || d2 < 0 || token.indexOf(".", d2 + 1) >= 0) throw new TokenError("malformed token: expected three dot-separated parts");
  if (d2 === d1 + 1) throw new TokenError("malformed token: invalid base64url (empty payload)");
  const h = token.slice(0, d1);
  let header = headerCache.get(h);
  if (header === undefined) {
    if (!B64URL.test(h)) throw new TokenError("malformed token: invalid base64url in the header");
    const raw = decodeJson(h, "header");
    if (typeof raw.alg !== "string") throw new TokenError("malformed token: header has no alg");
    if (raw.kid !== undefined && typeof raw.kid !== "string") throw new TokenError("malformed token: kid is not a string");
    // RFC 7515 §4.1.11: a recipient must refuse a token whose crit names an extension it does not
    // implement. This proxy implements none, so any crit is refused, here, for every algorithm
    // path (jose alone accepts crit ["b64"] with b64: false, RFC 7797's unencoded payload, whose
    // claims decodePayload would then read as base64url: not what the issuer signed). A refused
    // header is never cached, so this runs for every such token.
    if (raw.crit !== undefined) throw new TokenError("unsupported token header: crit (this proxy implements no JWS extension)");
    header = raw as JoseHeader;
    // (only an issuer's usual short header: a long one, unsigned as yet, pinned up to 64 of them,
    // token-sized each, whatever max_token_bytes allows)
    if (h.length <= HEADER_CACHE_ENTRY_MAX) {
      if (headerCache.size >= HEADER_CACHE_MAX) headerCache.clear();
      headerCache.set(h, header);
    }
  }
  return { header, signingInput: token.slice(0, d2), payloadB64: token.slice(d1 + 1, d2), signatureB64: token.slice(d2 + 1) };
}

/** Throws when the payload or signature has characters outside the base64url alphabet. */
export function assertBase64url(t: ParsedToken): void {
  if (!B64URL.test(t.payloadB64) || !B64URL.test(t.signatureB64)) throw new TokenError("malformed token: invalid base64url");
}

export function decodePayload(payloadB64: string): Claims {
  return decodeJson(payloadB64, "payload");
}

const HASH: Record<string, "sha256" | "sha384" | "sha512"> = { HS256: "sha256", HS384: "sha384", HS512: "sha512" };

/**
 * A key's name that is the same in every generation and on every replica: a hash of an HMAC
 * secret, or of a public key's members (as a PEM or as a JWK alike). An STS session keeps the
 * name of the key its web identity token was verified with, so a session whose key has since been
 * removed (a reload, a JWKS rotation) is refused, as its token now is.
 */
export const keyRef = (material: string): string => new Bun.CryptoHasher("sha256").update(material).digest("base64url").slice(0, 22);

/** Compares two strings in time that depends only on their length. */
function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * One HMAC key: a keyed Bun.CryptoHasher prepared once and copied per verification. The expected
 * signature is encoded as base64url and compared as text in constant time, which also refuses
 * non-canonical encodings of a correct signature (padding, stray characters).
 */
export class HmacKey {
  private readonly base: Bun.CryptoHasher;
  /** keyRef of the secret (keys.ts): what an STS session remembers of it. */
  readonly ref: string;
  constructor(
    readonly alg: Algorithm,
    secret: string,
  ) {
    const hash = HASH[alg];
    if (!hash) throw new Error(`${alg} is not an HMAC algorithm`);
    this.base = new Bun.CryptoHasher(hash, secret);
    this.ref = keyRef(`hmac\n${secret}`);
  }

  verify(t: ParsedToken): boolean {
    return constantTimeEqual(this.base.copy().update(t.signingInput).digest("base64url"), t.signatureB64);
  }
}

export interface ClaimPolicy {
  leewaySec: number;
  requireExp: boolean;
  issuer: string | undefined;
  audience: readonly string[] | undefined;
}

export function claimPolicy(cfg: JwtConfig): ClaimPolicy {
  const aud = cfg.audience === undefined ? undefined : Array.isArray(cfg.audience) ? cfg.audience : [cfg.audience];
  return { leewaySec: cfg.leeway_seconds, requireExp: cfg.require_exp, issuer: cfg.issuer, audience: aud };
}

const isNum = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

/** Throws TokenError when a registered claim fails. `nowMs` is wall-clock milliseconds. */
export function checkRegisteredClaims(c: Claims, policy: ClaimPolicy, nowMs: number): void {
  const now = nowMs / 1000;
  if (c.exp !== undefined) {
    if (!isNum(c.exp)) throw new TokenError("exp claim is not a number");
    if (now - policy.leewaySec >= c.exp) throw new TokenError(TOKEN_EXPIRED);
  } else if (policy.requireExp) throw new TokenError("token has no exp claim (jwt.require_exp)");
  if (c.nbf !== undefined) {
    if (!isNum(c.nbf)) throw new TokenError("nbf claim is not a number");
    if (now + policy.leewaySec < c.nbf) throw new TokenError("token not valid yet (nbf)");
  }
  if (c.iat !== undefined) {
    if (!isNum(c.iat)) throw new TokenError("iat claim is not a number");
    if (now + policy.leewaySec < c.iat) throw new TokenError("token issued in the future (iat)");
  }
  if (policy.issuer !== undefined && c.iss !== policy.issuer) throw new TokenError("iss does not match the configured issuer");
  if (policy.audience !== undefined) {
    const aud = c.aud;
    const ok = typeof aud === "string" ? policy.audience.includes(aud) : Array.isArray(aud) && aud.some((a) => typeof a === "string" && policy.audience!.includes(a));
    if (!ok) throw new TokenError("aud does not include the configured audience");
  }
}
