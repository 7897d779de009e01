/**
 * Phase: authorize. The bucket's authorizer (OPA / OpenFGA), asked with the identity's claims and
 * the S3 action, on both fronts. Claim rules and per-identity grants are checked by the fronts
 * when they authenticate; this phase is the policy engines' turn. Always asynchronous.
 *
 * A denial is 403 Forbidden (S3 front: AccessDenied); an authorizer that could not decide throws
 * AuthorizerUnavailable (503 with Retry-After; S3 front: ServiceUnavailable), see src/authz/decide.ts.
 */
import { ProxyError } from "../../errors.ts";
import { clientIp, type RequestContext } from "../context.ts";
import type { BucketRuntime } from "../../runtime.ts";
import type { PresignParams } from "../../fronts/presign.ts";

/**
 * OPA's `input.path`. Plain front: the request path (`/<path_prefix>/<key>`). S3 front: always
 * `/<bucket>/<key>` (a listing's key is its prefix; a bucket-level call's `/<bucket>/`), whatever
 * the addressing: a virtual-hosted request (Host: <bucket>.<domain>) has the path `/<key>`, and
 * a policy on the path it sent could be dodged by addressing the bucket the other way.
 */
function authzPath(ctx: RequestContext): string {
  return ctx.front === "s3" ? `/${ctx.bucketName}/${ctx.key}` : ctx.path;
}

export function authorize(ctx: RequestContext): undefined | Promise<undefined> {
  if (ctx.bucket?.authorizer === undefined) return undefined;
  return mayAlso(ctx, ctx.action).then((allowed) => {
    if (!allowed) throw new ProxyError("Forbidden", { detail: "The authorization policy denied this request" });
    return undefined;
  });
}

/**
 * Whether the bucket's authorizer allows this request's caller `action` on its bucket and key (no
 * authorizer: true). The S3 front asks it for s3:ListBucket before a missing key is told apart
 * from a forbidden one.
 */
/**
 * The same question about another object the request reads (a copy's source): `from`'s
 * authorizer, asked as a GET of `key` in that bucket. True when the bucket has none.
 */
export function mayOnSource(ctx: RequestContext, from: BucketRuntime, key: string, action: string, failClosed = false): Promise<boolean> {
  const authorizer = from.authorizer;
  if (authorizer === undefined) return Promise.resolve(true);
  return authorizer.authorize({ claims: ctx.claims, principal: ctx.principal, bucket: from.name, key, path: `/${from.name}/${key}`, method: "GET", action, clientIp: clientIp(ctx), trace: ctx.span, failClosed });
}

/**
 * OPA's `input.method`: the request's, but for a plain-front presign request (POST ?presign) the
 * presigned URL's (GET, PUT or POST: what the URL will be used for, as its `action` says). It was
 * the presign call's own POST, so a policy on `input.method` (GET only, say) refused GET URLs and
 * would have granted a PUT URL where POSTs are allowed.
 */
export function mayAlso(ctx: RequestContext, action: string, failClosed = false, key = ctx.key, path = authzPath(ctx)): Promise<boolean> {
  const authorizer = ctx.bucket?.authorizer;
  if (authorizer === undefined) return Promise.resolve(true);
  const method = (ctx.presign as PresignParams | undefined)?.method ?? ctx.method;
  return authorizer.authorize({ claims: ctx.claims, principal: ctx.principal, bucket: ctx.bucketName, key, path, method, action, clientIp: clientIp(ctx), trace: ctx.span, failClosed });
}
