/**
 * What an S3-front principal may do with a bucket, before the bucket's authorizer (OPA, OpenFGA)
 * is asked:
 *
 * - A static credential: its grants. `read` covers GetObject and HeadObject, `list` the listings;
 *   HeadBucket and GetBucketLocation need either (they answer from config, revealing no more than
 *   the grant itself). A bucket it was not granted is AccessDenied.
 * - An STS session: what its token's user may do on the plain front. A bucket without `auth` is
 *   open to it; a bucket with `auth` needs the token's claims to pass jwt.claims and the bucket's
 *   auth.claims (checked again on every request, so a reload that tightens a rule applies at once).
 *   A session may read and list every bucket it passes.
 * - Anonymous: what an anonymous plain-front request may do: GetObject and HeadObject on a bucket
 *   without `auth`. Nothing else (no listing: the plain front has none either).
 */
import { firstFailedRule } from "../../auth/rules.ts";
import type { S3Permission } from "../../config/s3-api.ts";
import type { S3Action } from "../../proxy/context.ts";
import type { BucketRuntime, Runtime } from "../../runtime.ts";
import type { S3Principal } from "./identities.ts";

/** The permission an action needs; undefined: either permission will do. */
export function permissionFor(action: S3Action): S3Permission | undefined {
  if (action === "s3:GetObject") return "read";
  if (action === "s3:ListBucket") return "list";
  return undefined;
}

/** Whether a session's claims pass the bucket's plain-front rules (jwt.claims, then auth.claims). */
function sessionPasses(rt: Runtime, bucket: BucketRuntime, claims: Record<string, unknown>): boolean {
  if (!bucket.authRequired) return true;
  const global = rt.config.jwt?.enabled ? rt.config.jwt.claims : undefined;
  if (global === undefined) return false; // auth without a jwt section cannot be configured; fail closed
  return firstFailedRule(global, claims) === undefined && firstFailedRule(bucket.extraRules, claims) === undefined;
}

/** True when `principal` (undefined: anonymous) may perform `action` on `bucket`. */
export function mayAccess(rt: Runtime, principal: S3Principal | undefined, bucket: BucketRuntime, action: S3Action): boolean {
  if (principal === undefined) return action === "s3:GetObject" && !bucket.authRequired;
  if (principal.kind === "session") return sessionPasses(rt, bucket, principal.claims);
  const grant = principal.grants.get(bucket.name);
  if (grant === undefined) return false;
  const needed = permissionFor(action);
  return needed === undefined || grant.has(needed);
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
