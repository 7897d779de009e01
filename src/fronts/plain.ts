/**
 * The plain HTTP front: a path prefix names a bucket, the rest of the path is the object key, a
 * JWT (when the bucket requires one) is the identity. Errors are JSON.
 *
 *   guard → route → admit → authenticate → authorize → object | listing
 *
 * A GET/HEAD of a "folder" (the key is "" or ends in "/") on a bucket with `listing.enabled` is
 * the action s3:ListBucket with the key as prefix: it passes the same admission, authentication
 * and authorization as an object, and the last phase answers it with the folder's index
 * (src/fronts/listing/serve.ts). Without listing, such a path is what it always was: an object
 * key (404 NoSuchKey for the bucket root).
 *
 * The front owns only what is plain-HTTP-specific (routing by prefix, JWT extraction, the JSON
 * error dialect); admission, authorization and serving are the shared phases in src/proxy/.
 */
import type { Claims } from "../auth/rules.ts";
import { ProxyError, toProxyError } from "../errors.ts";
import type { AuthResult } from "../observe/metrics.ts";
import type { RequestContext } from "../proxy/context.ts";
import { admit } from "../proxy/phases/admit.ts";
import { authorize } from "../proxy/phases/authorize.ts";
import { guard } from "../proxy/phases/guard.ts";
import { serveObject } from "../proxy/phases/object.ts";
import { serveListing } from "./listing/serve.ts";
import type { Front } from "../proxy/runner.ts";
import { normalizePath } from "../router.ts";

const ALLOW = "GET, HEAD, OPTIONS";

/** Phase: which bucket and key (404 unmapped, 400 traversal, 405 other methods). */
export function route(ctx: RequestContext): Response | undefined {
  ctx.path = normalizePath(ctx.rawPath);
  const method = ctx.method;
  if (method === "OPTIONS") return new Response(null, { status: 204, headers: { allow: ALLOW } });
  if (method !== "GET" && method !== "HEAD") throw new ProxyError("MethodNotAllowed", { headers: { allow: ALLOW } });
  const found = ctx.rt.router.match(ctx.path);
  if (!found) throw new ProxyError("NotFound");
  ctx.bucket = found.bucket;
  ctx.bucketName = found.bucket.name;
  ctx.key = found.key;
  if ((found.key === "" || found.key.endsWith("/")) && found.bucket.cfg.listing.enabled) {
    ctx.action = "s3:ListBucket";
    return undefined;
  }
  if (found.key === "") throw new ProxyError("NoSuchKey", { detail: "The path names a bucket but no object key" });
  ctx.action = "s3:GetObject";
  return undefined;
}

/** Phase: the answer, by action: an object, or a folder's index. */
export function serve(ctx: RequestContext): Response | Promise<Response> {
  return ctx.action === "s3:ListBucket" ? serveListing(ctx) : serveObject(ctx);
}

function authResultOf(err: ProxyError): AuthResult {
  if (err.code === "Unauthorized") return "missing";
  if (err.code === "InvalidToken") return "invalid";
  if (err.code === "Forbidden") return "forbidden";
  return "error";
}

/** Phase: the JWT → claims (401/403), synchronously for HMAC tokens and verified-token cache hits. */
export function authenticate(ctx: RequestContext): undefined | Promise<undefined> {
  const bucket = ctx.bucket!;
  if (!bucket.authRequired) return undefined;
  const metrics = ctx.svc.metrics;
  const refuse = (err: unknown): never => {
    const e = toProxyError(err);
    metrics.auth(authResultOf(e));
    throw e;
  };
  const auth = ctx.rt.auth;
  if (!auth) return refuse(new ProxyError("InternalError"));
  const accept = (claims: Claims): undefined => {
    metrics.auth("success");
    ctx.claims = claims;
    if (typeof claims.sub === "string") ctx.subject = claims.sub;
    return undefined;
  };
  let claims: Claims | Promise<Claims>;
  try {
    const query = ctx.query;
    claims = auth.authenticateFast(ctx.req.headers, () => new URL(query ? `http://x/${query}` : "http://x/"), bucket.extraRules);
  } catch (err) {
    return refuse(err);
  }
  return claims instanceof Promise ? claims.then(accept, refuse) : accept(claims);
}

export const plainFront: Front = {
  name: "plain",
  phases: [guard, route, admit, authenticate, authorize, serve],
  renderError: (err, ctx) => err.toResponse(ctx.id, ctx.method),
};
