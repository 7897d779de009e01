/**
 * Stateless temporary credentials (the session behind AssumeRoleWithWebIdentity). Any replica
 * holding the same session key verifies them; rotating the key revokes every session.
 *
 *   sealed          = base64url(nonce(12) + AES-256-GCM(HMAC(key, "encrypt\n"), payload JSON) + gcm tag(16))
 *   sessionToken    = "YGS2." + sealed + "." + base64url(HMAC(key, "token\n" + sealed))
 *   accessKeyId     = "ASIA" + base32(HMAC(key, "akid\n" + sealed))[0..16)      (20 chars, as AWS)
 *   secretAccessKey = base64(HMAC(key, "secret\n" + sealed))[0..40)            (40 chars, as AWS)
 *
 * The payload is { sub, iat, exp, jti, claims, arn?, rid?, key? }, encrypted (key: the keyRef of
 * the key that verified the web identity token, so the session ends when that key is removed; arn and rid: the session's
 * AssumedRoleUser Arn and AssumedRoleId, which GetCallerIdentity answers; tokens issued before they
 * were kept have neither): a session token travels in presigned
 * URLs (browser history, proxies' and CDNs' logs, Referer), and the claims of the token it came
 * from (an e-mail address, groups...) must not be readable there, as AWS's own session tokens are
 * opaque. The verifier re-derives the secret from the token, so nothing is stored. Labels keep
 * the HMACs and the encryption key independent (the token's tag, which is public, reveals nothing
 * about the secret). Tokens of the earlier format ("YGS1.", the payload in clear) issued with the
 * same key are still verified until they expire (max_session_seconds after an upgrade).
 *
 * Size: the claims' JSON is capped at MAX_CLAIMS_BYTES and the subject at MAX_SUBJECT_BYTES, and
 * the sealed token itself at MAX_TOKEN_CHARS (what the verifier accepts): a subject or claims that
 * escape to more (quotes, control characters) are refused at issuance, never issued as a token that
 * every request would then refuse. Claims are copied whole, the JWT's own timing claims included
 * (rules and authorizers see the token as it was); the session's lifetime is its own iat/exp. A
 * token whose claims are larger is refused rather than trimmed, because dropping a claim could
 * change an authorization decision.
 */
import { createCipheriv, createDecipheriv, timingSafeEqual } from "node:crypto";
import { s3Error, type S3Error } from "./errors.ts";
import { wellFormed } from "../../util/text.ts";

const TOKEN_PREFIX = "YGS2.";
/** The earlier format (payload in clear): verified, no longer issued. */
const CLEAR_TOKEN_PREFIX = "YGS1.";
export const MAX_CLAIMS_BYTES = 2560;
export const MAX_SUBJECT_BYTES = 256;
/** Anything longer was not issued here; it is refused before any decoding. */
const MAX_TOKEN_CHARS = 4096;
const MIN_KEY_BYTES = 32;
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const utf8 = new TextEncoder();

export type Claims = Record<string, unknown>;

export interface SessionCredentials {
  kind: "ok";
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  /** ms since the epoch */
  expiration: number;
  /** The session's random id (its token's jti): the access line and the audit trail name it at issuance and on every use. */
  sessionId: string;
}

/** What a verified session token stands for; usable directly as a CredentialLookup principal. */
export interface SessionPrincipal {
  accessKeyId: string;
  secretAccessKey: string;
  subject: string;
  claims: Claims;
  /** ms since the epoch */
  issuedAt: number;
  expiresAt: number;
  /** Random per-session id, for logs and audit. */
  sessionId: string;
  /** The AssumedRoleUser it was issued as (absent from tokens issued before it was kept). */
  assumedRole?: AssumedRole;
  /** The keyRef of the key its web identity token was verified with (absent from tokens issued before it was kept). */
  keyRef?: string;
  /** The largest upload body it may send: a presigned PUT's session carries the plain front's max_body_size. */
  maxBodyBytes?: number;
}

/** AssumeRoleWithWebIdentity's AssumedRoleUser: its Arn and AssumedRoleId. */
export interface AssumedRole {
  arn: string;
  id: string;
}

function hmac(key: string | Uint8Array, label: string, data: string): Uint8Array {
  return new Bun.CryptoHasher("sha256", key).update(label + "\n" + data).digest();
}

function checkKey(key: string | Uint8Array): void {
  const n = typeof key === "string" ? utf8.encode(key).byteLength : key.byteLength;
  if (n < MIN_KEY_BYTES) throw new RangeError(`the STS session key must be at least ${MIN_KEY_BYTES} bytes`);
}

function base32(bytes: Uint8Array, chars: number): string {
  let out = "";
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5 && out.length < chars) {
      out += BASE32[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
    if (out.length >= chars) break;
  }
  return out;
}

/** The payload's AES-256-GCM key (its own label: independent of the tag and the derived secrets). */
function encryptionKey(key: string | Uint8Array): Uint8Array {
  return hmac(key, "encrypt", "");
}

function seal(key: string | Uint8Array, plaintext: string): string {
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const c = createCipheriv("aes-256-gcm", encryptionKey(key), nonce);
  const body = Buffer.concat([c.update(plaintext, "utf8"), c.final()]);
  return Buffer.concat([nonce, body, c.getAuthTag()]).toString("base64url");
}

/** The payload JSON of a sealed token part, or undefined when it does not open with this key. */
function unseal(key: string | Uint8Array, sealed: string): string | undefined {
  const bytes = Buffer.from(sealed, "base64url");
  if (bytes.byteLength < 12 + 16 + 2) return undefined;
  try {
    const d = createDecipheriv("aes-256-gcm", encryptionKey(key), bytes.subarray(0, 12));
    d.setAuthTag(bytes.subarray(bytes.byteLength - 16));
    return Buffer.concat([d.update(bytes.subarray(12, bytes.byteLength - 16)), d.final()]).toString("utf8");
  } catch {
    return undefined;
  }
}

function derive(key: string | Uint8Array, payload: string): { accessKeyId: string; secretAccessKey: string } {
  return {
    accessKeyId: "ASIA" + base32(hmac(key, "akid", payload), 16),
    secretAccessKey: Buffer.from(hmac(key, "secret", payload)).toString("base64").slice(0, 40),
  };
}

/**
 * Issues a session for a verified web identity. `expiresAt` must already be capped by the caller
 * (token exp, DurationSeconds, the configured maximum). An error when the claims are too large.
 */
export function issueSession(input: {
  sessionKey: string | Uint8Array;
  subject: string;
  claims: Claims;
  expiresAt: number;
  now: number;
  assumedRole?: AssumedRole;
  /** The keyRef of the key that verified the token (Authenticator keyRefOf). */
  keyRef?: string;
  /** The largest upload body the session may send (a presigned PUT: the plain front's limit). */
  maxBodyBytes?: number;
}): SessionCredentials | { kind: "error"; message: string; expired?: true } {
  checkKey(input.sessionKey);
  if (utf8.encode(input.subject).byteLength > MAX_SUBJECT_BYTES) {
    return { kind: "error", message: `the token's subject is longer than ${MAX_SUBJECT_BYTES} bytes` };
  }
  // Every claim of the token, its exp, iat and nbf included: the session's own lifetime is kept
  // apart (iat/exp of the session body), and claim rules and authorizers see the token as it was
  // (a rule on iat, a revocation cut-off written after the session was issued, holds for it on
  // every request). fromEntries defines own properties, so a claim named "__proto__" stays a claim.
  const claims = Object.fromEntries(Object.entries(input.claims));
  const claimsJson = JSON.stringify(claims);
  if (utf8.encode(claimsJson).byteLength > MAX_CLAIMS_BYTES) {
    return { kind: "error", message: `the token's claims are larger than ${MAX_CLAIMS_BYTES} bytes, too large for a session` };
  }
  const iat = Math.floor(input.now / 1000);
  const exp = Math.floor(input.expiresAt / 1000);
  if (!(exp > iat)) return { kind: "error", message: "the session would already be expired", expired: true };
  const jti = Buffer.from(crypto.getRandomValues(new Uint8Array(12))).toString("base64url");
  const key = input.keyRef === undefined ? "" : ',"key":' + JSON.stringify(input.keyRef);
  const max = input.maxBodyBytes === undefined ? "" : ',"max":' + input.maxBodyBytes;
  const sealed = (role: string) => {
    const payload = seal(input.sessionKey, '{"sub":' + JSON.stringify(input.subject) + ',"iat":' + iat + ',"exp":' + exp + ',"jti":"' + jti + '","claims":' + claimsJson + key + role + max + "}");
    return { payload, sessionToken: TOKEN_PREFIX + payload + "." + Buffer.from(hmac(input.sessionKey, "token", payload)).toString("base64url") };
  };
  const role = input.assumedRole === undefined ? "" : ',"arn":' + JSON.stringify(input.assumedRole.arn) + ',"rid":' + JSON.stringify(input.assumedRole.id);
  let { payload, sessionToken } = sealed(role);
  // The role is kept only when it fits: a subject and claims within their caps become a session,
  // as they did before it was kept (GetCallerIdentity then names the session without its role).
  if (sessionToken.length > MAX_TOKEN_CHARS && role !== "") ({ payload, sessionToken } = sealed(""));
  if (sessionToken.length > MAX_TOKEN_CHARS) {
    return { kind: "error", message: `the token's subject and claims make a session token longer than ${MAX_TOKEN_CHARS} characters, too large for a session` };
  }
  return { kind: "ok", ...derive(input.sessionKey, payload), sessionToken, expiration: exp * 1000, sessionId: jti };
}

const invalidToken = () => s3Error("InvalidToken");

/**
 * Verifies a session token sent with an access key: the tag, the access key derived from it, and
 * the expiry. InvalidToken for anything not issued with this key (including after a rotation),
 * InvalidAccessKeyId when the key does not belong to the token, ExpiredToken once expired.
 */
export function verifySessionToken(
  sessionKey: string | Uint8Array,
  accessKeyId: string,
  sessionToken: string,
  now: number,
): SessionPrincipal | S3Error {
  checkKey(sessionKey);
  if (sessionToken.length > MAX_TOKEN_CHARS) return invalidToken();
  const sealed = sessionToken.startsWith(TOKEN_PREFIX);
  if (!sealed && !sessionToken.startsWith(CLEAR_TOKEN_PREFIX)) return invalidToken();
  const rest = sessionToken.slice(TOKEN_PREFIX.length);
  const dot = rest.indexOf(".");
  if (dot <= 0) return invalidToken();
  const payload = rest.slice(0, dot);
  const tag = rest.slice(dot + 1);
  if (!/^[A-Za-z0-9_-]+$/.test(payload) || !/^[A-Za-z0-9_-]{43}$/.test(tag)) return invalidToken();
  // compared as text: base64url's unused low bits would otherwise let two strings pass as one tag
  const expected = Buffer.from(Buffer.from(hmac(sessionKey, "token", payload)).toString("base64url"));
  if (!timingSafeEqual(expected, Buffer.from(tag))) return invalidToken();

  const derived = derive(sessionKey, payload);
  const a = Buffer.from(derived.accessKeyId);
  const b = Buffer.from(accessKeyId);
  if (a.byteLength !== b.byteLength || !timingSafeEqual(a, b)) {
    return s3Error("InvalidAccessKeyId", undefined, { AWSAccessKeyId: accessKeyId.slice(0, 128) });
  }
  let body: { sub?: unknown; iat?: unknown; exp?: unknown; jti?: unknown; claims?: unknown; arn?: unknown; rid?: unknown; key?: unknown; max?: unknown };
  const json = sealed ? unseal(sessionKey, payload) : Buffer.from(payload, "base64url").toString("utf8");
  if (json === undefined) return invalidToken();
  try {
    body = JSON.parse(json);
  } catch {
    return invalidToken(); // cannot happen for a token we signed; kept as a guard
  }
  const { sub, iat, exp, jti, claims, arn, rid, key, max } = body;
  if (typeof sub !== "string" || typeof iat !== "number" || typeof exp !== "number" || typeof jti !== "string" ||
    typeof claims !== "object" || claims === null || Array.isArray(claims)) {
    return invalidToken();
  }
  if (now >= exp * 1000) return s3Error("ExpiredToken");
  const principal: SessionPrincipal = {
    accessKeyId: derived.accessKeyId,
    secretAccessKey: derived.secretAccessKey,
    // (the S3 principal's identity in logs and the audit trail: a lone surrogate as U+FFFD, see wellFormed)
    subject: wellFormed(sub),
    claims: claims as Claims,
    issuedAt: iat * 1000,
    expiresAt: exp * 1000,
    sessionId: jti,
  };
  if (typeof arn === "string" && typeof rid === "string") principal.assumedRole = { arn, id: rid };
  if (typeof key === "string") principal.keyRef = key;
  if (typeof max === "number") principal.maxBodyBytes = max;
  return principal;
}
