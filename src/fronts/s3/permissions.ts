/**
 * What an S3-front principal may do with a bucket, before the bucket's authorizer (OPA, OpenFGA)
 * is asked:
 *
 * - A bucket with `access: read-only` (the default) refuses every write-family action (PutObject
 *   and the multipart calls, DeleteObject(s), and the multipart bookkeeping) to everyone, whatever
 *   the grants say: grants only narrow further.
 * - A static credential: its grants. `read` covers GetObject, HeadObject (of any version),
 *   GetObjectAttributes and GetObjectTagging, `list` the listings (ListObjectVersions too), `write` PutObject, CopyObject,
 *   the multipart calls (UploadPartCopy too) and setting or removing an object's tags, `delete`
 *   DeleteObject(s), of a key or of a version;
 *   AbortMultipartUpload, ListParts and ListMultipartUploads need `write` or `delete`.
 *   GetObjectAcl needs `read`, PutObjectAcl and PutBucketAcl `write` (acl.ts: ACLs are read, not changed);
 *   GetBucketLocation, GetBucketAcl, the other bucket configuration reads (bucket-config.ts) and CreateBucket
 *   (answered BucketAlreadyOwnedByYou) need any grant (all answer from config, revealing no more than
 *   the grant itself and the bucket's `cors`, which a preflight tells anyone), and so does GetBucketVersioning
 *   (the bucket's versioning state, which a writer needs as much as a reader); HeadBucket is
 *   s3:ListBucket, as in S3, so it needs `list`. A bucket it was not granted is AccessDenied.
 * - An STS session: what its token's user may do on the plain front. Reads: a bucket without
 *   `auth` is open to it; a bucket with `auth` needs the token's claims to pass jwt.claims and the
 *   bucket's auth.claims. Writes: the plain front's own rule (writeRefusal: a read-write bucket;
 *   with auth, the claims also pass auth.write_claims; without auth, only when
 *   auth.anonymous_writes lets anyone write). Checked again on every request, so a reload that
 *   tightens a rule applies at once.
 * - Anonymous: what an anonymous plain-front request may do: GetObject and HeadObject on a bucket
 *   without `auth`. Nothing else (no listing, no older versions, no writes).
 */
import { keyRefOf } from "../../auth/authenticator.ts";
import { describeRule, firstFailedRule } from "../../auth/rules.ts";
import type { S3Permission } from "../../config/s3-api.ts";
import { isWriteAction, type S3Action } from "../../proxy/context.ts";
import type { BucketRuntime, Runtime } from "../../runtime.ts";
import { writeRefusal } from "../plain-write.ts";
import type { S3Principal } from "./identities.ts";
import { s3Error, type S3Error } from "./errors.ts";
import type { Metrics } from "../../observe/metrics.ts";

const READ: readonly S3Permission[] = ["read"];
const LIST: readonly S3Permission[] = ["list"];
const WRITE: readonly S3Permission[] = ["write"];
const DELETE: readonly S3Permission[] = ["delete"];
const WRITE_OR_DELETE: readonly S3Permission[] = ["write", "delete"];

/** The permissions of which an action needs one; undefined: any grant will do. */
function permissionsFor(action: S3Action): readonly S3Permission[] | undefined {
  switch (action) {
    case "s3:GetObject":
    case "s3:GetObjectVersion":
    case "s3:GetObjectAttributes":
    case "s3:GetObjectVersionAttributes":
    case "s3:GetObjectTagging":
    case "s3:GetObjectAcl":
    case "s3:GetObjectVersionAcl":
      return READ;
    case "s3:ListBucket":
    case "s3:ListBucketVersions":
      return LIST;
    case "s3:PutObject":
    case "s3:PutObjectTagging":
    case "s3:DeleteObjectTagging":
    case "s3:PutBucketAcl":
    case "s3:PutObjectAcl":
    case "s3:PutObjectVersionAcl":
      return WRITE;
    case "s3:DeleteObject":
    case "s3:DeleteObjectVersion":
      return DELETE;
    case "s3:AbortMultipartUpload":
    case "s3:ListMultipartUploadParts":
    case "s3:ListBucketMultipartUploads":
      return WRITE_OR_DELETE;
    default:
      return undefined;
  }
}

/**
 * Whether the token a session came from still meets jwt.issuer and jwt.audience as they are now
 * (the verifier's rule: iss equal, aud sharing a value): a reload that stops trusting an issuer
 * or an audience ends the sessions of its tokens at once, as it refuses those tokens on the plain
 * front (they kept working on the S3 front until they expired, up to max_session_seconds).
 */
function issuedByTrusted(issuer: string | undefined, audience: string | readonly string[] | undefined, claims: Record<string, unknown>): boolean {
  if (issuer !== undefined && claims.iss !== issuer) return false;
  if (audience === undefined) return true;
  const wanted = typeof audience === "string" ? [audience] : audience;
  const aud = claims.aud;
  return typeof aud === "string" ? wanted.includes(aud) : Array.isArray(aud) && aud.some((a) => typeof a === "string" && wanted.includes(a));
}

/**
 * Whether the token a session came from is still admitted, bucket aside: jwt.issuer, jwt.audience
 * and jwt.claims as they are now, and the key that verified it still held (Authenticator.holdsKey).
 * A session they no longer admit is refused everything, the
 * bucket-less ListBuckets included (it answered an empty list, as if the session were still good).
 */
export function sessionAdmitted(rt: Runtime, claims: Record<string, unknown>): boolean {
  const jwt = rt.config.jwt?.enabled ? rt.config.jwt : undefined;
  if (jwt === undefined) return true;
  // (the key its token was verified with, removed since: the token is refused now, and so is the session)
  if (sessionKeyRemoved(rt, claims)) return false;
  return issuedByTrusted(jwt.issuer, jwt.audience, claims) && firstFailedRule(jwt.claims, claims) === undefined;
}

/** The message of a session refused by sessionKeyRemoved. */
export const SESSION_KEY_REMOVED = "The session's token was issued from a web identity token whose signing key this proxy no longer trusts; assume the role again with a new token.";

/**
 * Whether the key that verified the token a session came from is gone (a reload dropped its
 * jwt.keys entry, or changed jwt.secret): the session no longer verifies, S3's InvalidToken (STS's
 * InvalidClientTokenId), which tells its client to get a new token, where a session the rules
 * refuse (an iat cut-off) is AccessDenied.
 */
export function sessionKeyRemoved(rt: Runtime, claims: Record<string, unknown>): boolean {
  if (!rt.config.jwt?.enabled || rt.auth === undefined) return false;
  const ref = keyRefOf(claims);
  return ref !== undefined && !rt.auth.holdsKey(ref);
}

/**
 * S3's refusal of a request `principal`'s grants or rules refuse, counted in
 * yatagarasu_auth_total: a session whose token's key a reload removed is 400 InvalidToken
 * (sessionKeyRemoved: it no longer verifies), an unsigned request AccessDenied counted missing,
 * anyone else AccessDenied. s3Permit's and PostObject's (whose form a session signed too: it was
 * AccessDenied while the session's other requests were InvalidToken).
 */
export function accessRefusal(rt: Runtime, principal: S3Principal | undefined, metrics: Metrics): S3Error {
  if (principal?.kind === "session" && sessionKeyRemoved(rt, principal.claims)) {
    metrics.auth("invalid");
    return s3Error("InvalidToken", SESSION_KEY_REMOVED);
  }
  // (an unsigned request refused counts as a plain-front request without a token: missing)
  metrics.auth(principal === undefined ? "missing" : "forbidden");
  return s3Error("AccessDenied");
}

/**
 * Whether a session's claims pass the bucket's plain-front read rules (jwt.claims, then auth.claims).
 * jwt.claims hold on every bucket, those without `auth` included: they say which tokens are still
 * good (a revocation cut-off on iat written after the session was issued ends it everywhere, not
 * only where a bucket asks for a token; AWS's aws:TokenIssueTime deny applies to every action).
 */
function sessionPasses(rt: Runtime, bucket: BucketRuntime, claims: Record<string, unknown>): boolean {
  if (!sessionAdmitted(rt, claims)) return false;
  if (!bucket.authRequired) return true;
  if (!rt.config.jwt?.enabled) return false; // auth without a jwt section cannot be configured; fail closed
  return firstFailedRule(bucket.extraRules, claims) === undefined;
}

/** True when `principal` (undefined: anonymous) may perform `action` on `bucket`. */
export function mayAccess(rt: Runtime, principal: S3Principal | undefined, bucket: BucketRuntime, action: S3Action): boolean {
  // (s3:GetObject, every GetObject's, is no write: told without a set lookup)
  const write = action !== "s3:GetObject" && isWriteAction(action);
  if (write && bucket.cfg.access !== "read-write") return false;
  if (principal === undefined) return action === "s3:GetObject" && !bucket.authRequired;
  if (principal.kind === "session") return sessionPasses(rt, bucket, principal.claims) && (!write || writeRefusal(bucket, principal.claims) === undefined);
  const grant = principal.grants.get(bucket.name);
  if (grant === undefined) return false;
  const needed = permissionsFor(action);
  if (needed === undefined) return true;
  for (let i = 0; i < needed.length; i++) if (grant.has(needed[i]!)) return true;
  return false;
}

const ANONYMOUS_REFUSED = "an unsigned request may only GetObject or HeadObject a bucket without auth";

/** Why `sessionAdmitted` refuses a session, bucket aside (none when its token's key is gone: that is InvalidToken, whose message says so). */
function sessionRefusal(rt: Runtime, claims: Record<string, unknown>): string | undefined {
  const jwt = rt.config.jwt;
  if (jwt === undefined || sessionKeyRemoved(rt, claims)) return undefined;
  if (!issuedByTrusted(jwt.issuer, jwt.audience, claims)) return "the session's token is not of jwt.issuer or jwt.audience as they are now";
  const failed = firstFailedRule(jwt.claims, claims);
  return failed === undefined ? undefined : `jwt.claims: ${describeRule(failed)}`;
}

/**
 * Why s3Permit refused `principal` (the access log's reason: the client is told S3's bare
 * AccessDenied, the operator which grant or rule was missing). On the refusal path only.
 */
export function refusalReason(rt: Runtime, principal: S3Principal | undefined, bucket: BucketRuntime | undefined, action: S3Action): string | undefined {
  if (principal === undefined) return ANONYMOUS_REFUSED;
  if (principal.kind === "session" && (bucket === undefined || !sessionAdmitted(rt, principal.claims))) return sessionRefusal(rt, principal.claims);
  if (bucket === undefined) return undefined;
  const write = isWriteAction(action);
  if (write && bucket.cfg.access !== "read-write") return `bucket ${bucket.name} is read-only (its access is not read-write)`;
  if (principal.kind === "session") {
    const failed = bucket.authRequired ? firstFailedRule(bucket.extraRules, principal.claims) : undefined;
    if (failed !== undefined) return `bucket ${bucket.name}'s auth.claims: ${describeRule(failed)}`;
    return write ? writeRefusal(bucket, principal.claims) : undefined;
  }
  const grant = principal.grants.get(bucket.name);
  if (grant === undefined) return `identity ${principal.identity} has no grant on bucket ${bucket.name} (s3_api.credentials buckets)`;
  return `identity ${principal.identity}'s grant on bucket ${bucket.name} has ${[...grant].join(", ") || "nothing"}; ${action} needs ${(permissionsFor(action) ?? []).join(" or ")}`;
}

/** The buckets ListBuckets shows: those the principal may at least see, in config order. */
export function visibleBuckets(rt: Runtime, principal: S3Principal, isAddressable: (name: string) => boolean): BucketRuntime[] {
  const out: BucketRuntime[] = [];
  for (const b of rt.buckets.values()) {
    if (!isAddressable(b.name)) continue;
    if (principal.kind === "static" ? principal.grants.has(b.name) : sessionPasses(rt, b, principal.claims)) out.push(b);
  }
  return out;
}
