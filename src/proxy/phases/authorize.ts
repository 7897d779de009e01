/**
 * Phase: authorize. The bucket's authorizer (OPA / OpenFGA), asked with the identity's claims and
 * the S3 action, on both fronts. Claim rules and per-identity grants are checked by the fronts
 * when they authenticate; this phase is the policy engines' turn. Always asynchronous.
 */
import { ProxyError } from "../../errors.ts";
import { clientIp, type RequestContext } from "../context.ts";

export function authorize(ctx: RequestContext): undefined | Promise<undefined> {
  const authorizer = ctx.bucket?.authorizer;
  if (authorizer === undefined) return undefined;
  return authorizer
    .authorize({ claims: ctx.claims, principal: ctx.principal, bucket: ctx.bucketName, key: ctx.key, path: ctx.path, method: ctx.method, action: ctx.action, clientIp: clientIp(ctx), trace: ctx.span })
    .then((allowed) => {
      if (!allowed) throw new ProxyError("Forbidden", { detail: "The authorization policy denied this request" });
      return undefined;
    });
}
