/**
 * Who may sign requests to the S3 front, for one config generation (built by buildRuntime, so a
 * reload swaps it with everything else): the static credentials of `s3_api.credentials`, and the
 * STS sessions issued from `s3_api.sts.session_key`. `lookup` is verifySigV4's CredentialLookup.
 *
 * Sessions are stateless (sts.ts); verifying one costs three HMACs, so a verified session is
 * remembered here by its token until it expires. A reload builds a new S3Identities, so rotating
 * the session key drops every remembered session at once.
 */
import type { Claims } from "../../auth/rules.ts";
import { bindKeyRef } from "../../auth/authenticator.ts";
import type { S3ApiConfig, S3Permission } from "../../config/s3-api.ts";
import type { RequestContext } from "../../proxy/context.ts";
import { TtlLru } from "../../util/lru.ts";
import { s3Error, type S3Error } from "./errors.ts";
import { SigningKeyCache } from "./signing-keys.ts";
import { verifySessionToken, type SessionPrincipal } from "./sts.ts";
import type { CredentialLookup, VerifyOptions } from "./verify.ts";

export interface StaticPrincipal {
  readonly kind: "static";
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The configured identity: the subject in logs and authorization input. */
  readonly identity: string;
  /** The configured claims with `sub` = identity; frozen. */
  readonly claims: Claims;
  /** bucket name → permissions */
  readonly grants: ReadonlyMap<string, ReadonlySet<S3Permission>>;
}

export interface SessionPrincipalEntry {
  readonly kind: "session";
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The web identity token's `sub`. */
  readonly identity: string;
  /** The token's claims (its own timing claims kept as issued: exp, iat, nbf) with `sub`; frozen. */
  readonly claims: Claims;
  readonly session: SessionPrincipal;
}

export type S3Principal = StaticPrincipal | SessionPrincipalEntry;

/** A verified S3 principal as the request's identity (the access line, the audit trail, the authorizer's input). */
export function adoptPrincipal(ctx: RequestContext, principal: S3Principal): void {
  ctx.subject = principal.identity;
  ctx.claims = principal.claims;
  ctx.principal = principal.kind === "session" ? "s3_session" : "s3_static";
  if (principal.kind === "session") ctx.session = principal.session.sessionId;
}

/** Verified sessions remembered per generation (each costs ~1 KiB). */
const SESSION_CACHE_SIZE = 10_000;

export class S3Identities {
  readonly region: string;
  readonly maxSkewSeconds: number;
  /** Lower-case; virtual-hosted style applies to `<bucket>.<domain>`. */
  readonly domain: string | undefined;
  readonly sts: { readonly sessionKey: string; readonly previousKeys: readonly string[]; readonly maxSessionSeconds: number } | undefined;
  readonly keyCache = new SigningKeyCache();
  /**
   * The clock requests are verified against (ms). Tests replace it to replay AWS's published
   * examples, whose signatures are dated 2013; nothing else changes it.
   */
  now: () => number = Date.now;
  /** verifySigV4's options, one object for the generation (see verifyOptions). */
  private readonly verifying: VerifyOptions;
  private readonly byKey = new Map<string, StaticPrincipal>();
  private readonly sessions = new TtlLru<SessionPrincipalEntry>(SESSION_CACHE_SIZE);

  constructor(cfg: S3ApiConfig) {
    this.region = cfg.region;
    this.maxSkewSeconds = cfg.max_clock_skew_seconds;
    this.domain = cfg.domain;
    this.verifying = { region: this.region, now: 0, maxSkewSeconds: this.maxSkewSeconds, keyCache: this.keyCache };
    this.sts = cfg.sts?.enabled && cfg.sts.session_key
      ? { sessionKey: cfg.sts.session_key, previousKeys: cfg.sts.previous_session_keys ?? [], maxSessionSeconds: cfg.sts.max_session_seconds }
      : undefined;
    for (const c of cfg.credentials) {
      const grants = new Map<string, ReadonlySet<S3Permission>>();
      for (const [bucket, perms] of Object.entries(c.buckets)) grants.set(bucket, new Set(perms));
      this.byKey.set(c.access_key_id, {
        kind: "static",
        accessKeyId: c.access_key_id,
        secretAccessKey: c.secret_access_key,
        identity: c.identity,
        claims: Object.freeze({ ...c.claims, sub: c.identity }),
        grants,
      });
    }
  }

  /**
   * verifySigV4's options for a request now: the generation's one object with the clock read
   * (verifySigV4 is synchronous and keeps nothing of it: a literal per request was one more object).
   */
  verifyOptions(): VerifyOptions {
    this.verifying.now = this.now();
    return this.verifying;
  }

  /** verifySigV4's credential lookup: a principal, S3's error, or undefined for an unknown key. */
  readonly lookup: CredentialLookup<S3Principal> = (accessKeyId: string, token: string | undefined, now: number): S3Principal | S3Error | undefined => {
    if (token === undefined) return this.byKey.get(accessKeyId);
    // S3 refuses a session token beside a long-term key; without STS every token is foreign.
    if (this.byKey.has(accessKeyId) || this.sts === undefined) return s3Error("InvalidToken");
    const hit = this.sessions.get(token, now);
    if (hit !== undefined) {
      return hit.accessKeyId === accessKeyId ? hit : s3Error("InvalidAccessKeyId", undefined, { AWSAccessKeyId: accessKeyId.slice(0, 128) });
    }
    let verified = verifySessionToken(this.sts.sessionKey, accessKeyId, token, now);
    // (a session issued before a rotation: not issued with the current key, so its tag failed)
    for (let i = 0; "code" in verified && verified.code === "InvalidToken" && i < this.sts.previousKeys.length; i++) {
      verified = verifySessionToken(this.sts.previousKeys[i]!, accessKeyId, token, now);
    }
    if ("code" in verified) return verified;
    const entry: SessionPrincipalEntry = {
      kind: "session",
      accessKeyId: verified.accessKeyId,
      secretAccessKey: verified.secretAccessKey,
      identity: verified.subject,
      claims: Object.freeze({ ...verified.claims, sub: verified.subject }),
      session: verified,
    };
    if (verified.keyRef !== undefined) bindKeyRef(entry.claims, verified.keyRef);
    this.sessions.set(token, entry, verified.expiresAt);
    return entry;
  };

  /** The static principal of an access key (tests, ListBuckets). */
  staticKey(accessKeyId: string): StaticPrincipal | undefined {
    return this.byKey.get(accessKeyId);
  }
}
