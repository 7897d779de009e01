/**
 * The plain HTTP front: a path prefix names a bucket, the rest of the path is the object key, a
 * JWT (when the bucket requires one) is the identity. Errors are JSON.
 *
 *   guard → cors → route → admit → authenticate → authorize → object | listing | write | presign
 *
 * cors (src/http/cors.ts) answers preflights and puts CORS headers on every answer, errors
 * included, for buckets with a `cors` config. On `access: read-write` buckets PUT and DELETE are
 * the actions s3:PutObject and s3:DeleteObject (src/fronts/plain-write.ts); `POST …?presign` hands
 * a browser a presigned S3-API URL, authorized as the action it presigns (src/fronts/presign.ts).
 *
 * A GET/HEAD of a "folder" (the key is "" or ends in "/") on a bucket with `listing.enabled` is
 * the action s3:ListBucket with the key as prefix: it passes the same admission, authentication
 * and authorization as an object, and the last phase answers it with the folder's index
 * (src/fronts/listing/serve.ts). Without listing, such a path is what it always was: an object
 * key (404 NoSuchKey for the bucket root). With listing, a missing key that names a folder is a
 * 302 to the folder (orFolder).
 *
 * The front owns only what is plain-HTTP-specific (routing by prefix, JWT extraction, the JSON
 * error dialect); admission, authorization and serving are the shared phases in src/proxy/.
 */
import type { Claims } from "../auth/rules.ts";
import { s3ListenerHint } from "../auth/authenticator.ts";
import { announcesBody, chunkedOnly } from "../http/body-policy.ts";
import { isPreflight } from "../http/cors.ts";
import { answeredPrivately } from "../http/headers.ts";
import { mapAnswer } from "../http/map-answer.ts";
import { authResultOf, CATALOGUE, ClaimRuleRefusal, ProxyError, toProxyError } from "../errors.ts";
import { jwtSubject } from "../observe/audit.ts";
import { isWriteAction, type RequestContext } from "../proxy/context.ts";
import type { BucketRuntime, Runtime } from "../runtime.ts";
import { admit } from "../proxy/phases/admit.ts";
import { authorize, mayAlso } from "../proxy/phases/authorize.ts";
import { guard } from "../proxy/phases/guard.ts";
import { serveObject } from "../proxy/phases/object.ts";
import { serveListing } from "./listing/serve.ts";
import { encodePath } from "./listing/render.ts";
import { listObjectsV2 } from "../s3/operations/list-objects.ts";
import type { Front } from "../proxy/runner.ts";
import { normalizePath } from "../router.ts";
import { plainCors } from "./cors-phases.ts";
import { DELETE_BODY, READ_ALLOW, serveDelete, servePut, WRITE_ALLOW, writeRefusal } from "./plain-write.ts";
import { parsePresign, servePresign, type PresignContext } from "./presign.ts";
import { keyTooLong, SUBRESOURCES } from "./s3/route.ts";
import { decodeComponent } from "../util/text.ts";

function allowOf(bucket: BucketRuntime | undefined): string {
  return bucket?.cfg.access === "read-write" ? WRITE_ALLOW : READ_ALLOW;
}

/**
 * The methods the main listener takes on some path (`OPTIONS *`, RFC 9110 §9.3.7): a write
 * bucket's when there is one, and POST when presigned URLs (`?presign`: s3_api.sts, and a port
 * to name, publicOrigin) or the admin API (jwt.admin_claims) take it (it was left out).
 */
export function serverAllow(rt: Runtime): string {
  let write = false;
  for (const b of rt.buckets.values()) if (b.cfg.access === "read-write") write = true;
  const { jwt, s3_api: api } = rt.config;
  const presign = rt.s3Api?.sts !== undefined && (api?.public_url !== undefined || api?.port !== 0);
  const post = presign || (rt.auth !== undefined && jwt?.enabled === true && jwt.admin_claims.length > 0);
  if (!post) return write ? WRITE_ALLOW : READ_ALLOW;
  return write ? "GET, HEAD, PUT, POST, DELETE, OPTIONS" : "GET, HEAD, POST, OPTIONS";
}

/** 405 for a method the path's bucket does not take: Allow and the message name what it does take (as OPTIONS does). */
function methodNotAllowed(ctx: RequestContext, detail?: string): ProxyError {
  const allow = allowOf(ctx.rt.router.match(ctx.path)?.bucket);
  return new ProxyError("MethodNotAllowed", { detail: detail ?? `Only ${allow.replace(/, (?=[^,]*$)/, " and ")} are allowed`, headers: { allow } });
}

/** S3 keys are at most 1024 bytes of UTF-8: a longer one is refused here, never sent (and retried) upstream. */
function checkKeyLength(key: string): void {
  if (keyTooLong(key)) throw new ProxyError("KeyTooLong");
}

/**
 * The 404 of a path no bucket maps, or of a bucket's root (`detail`): an S3 client pointed at this
 * listener (aws s3 ls: `GET /`, `GET /<bucket>?list-type=2`) is told where S3 requests go.
 */
function notHere(ctx: RequestContext, code: "NotFound" | "NoSuchKey", detail?: string): ProxyError {
  const hint = s3ListenerHint(ctx.req.headers.get("authorization"), new URLSearchParams(ctx.query));
  return hint === "" && detail === undefined ? new ProxyError(code) : new ProxyError(code, { detail: (detail ?? CATALOGUE[code].message) + hint });
}

/** PUT, DELETE, and POST ?presign: the bucket, the key and the action, or why not (404/405/411/413/501). */
function routeWrite(ctx: RequestContext): undefined {
  const method = ctx.method;
  const presign = method === "POST" && /^\?(?:[^#]*&)?presign(?:[=&]|$)/.test(ctx.query);
  const found = ctx.rt.router.match(ctx.path);
  // (a path no bucket maps is 404 for every method, as for GET, PUT and DELETE)
  if (!found) throw notHere(ctx, "NotFound");
  ctx.bucket = found.bucket;
  ctx.bucketName = found.bucket.name;
  if (method === "POST" && !presign) throw methodNotAllowed(ctx);
  ctx.key = found.key;
  checkKeyLength(found.key);
  if (presign) {
    const p = parsePresign(ctx);
    (ctx as PresignContext).presign = p;
    ctx.action = p.method === "GET" ? "s3:GetObject" : "s3:PutObject";
    return undefined;
  }
  if (found.bucket.cfg.access !== "read-write") throw methodNotAllowed(ctx, "This bucket is read-only");
  if (found.key === "") throw new ProxyError("BadRequest", { detail: "The path names a bucket but no object key" });
  const op = ctx.query === "" ? undefined : s3SubresourceOf(ctx.query);
  if (op !== undefined) {
    // On S3, `DELETE ?versionId=` removes one old version, `DELETE ?uploadId=` aborts an upload,
    // `PUT ?tagging` sets tags: none touches the current object. The plain front writes and
    // deletes the current object only, so such a request is refused, never read as a plain write.
    throw new ProxyError("BadRequest", { detail: `?${op} names an S3 operation, which the plain front does not perform (it ${method === "PUT" ? "writes" : "deletes"} the current object only); use the S3 API front` });
  }
  if (method === "PUT" && ctx.req.headers.has("x-amz-copy-source")) {
    // On S3 this PUT is a CopyObject: read as a plain write it replaced the destination with the
    // request's body (most often empty) instead of the source's bytes.
    throw new ProxyError("BadRequest", { detail: "x-amz-copy-source names an S3 operation (CopyObject), which the plain front does not perform (it writes the request's body); use the S3 API front" });
  }
  if (method === "PUT") {
    // (its length, 411 or 413, is checked in servePut, after who may write: a 413 before the 401 or
    // 403 told a client no one lets write that the bucket takes writes; S3 authorizes first)
    ctx.action = "s3:PutObject";
  } else {
    // A DELETE's body would be ignored: the object was deleted while it was still arriving (a
    // client cut off half-way got no answer, its object gone), so one sent with a body is refused.
    // (a chunked one, whose length is told when it ends, is read before the delete: serveDelete)
    if (announcesBody(ctx.req.headers) && !chunkedOnly(ctx.req.headers)) throw new ProxyError("BadRequest", { detail: DELETE_BODY });
    ctx.action = "s3:DeleteObject";
  }
  return undefined;
}

/** Phase: which bucket and key (404 unmapped, 400 traversal, 405 other methods). */
export function route(ctx: RequestContext): Response | undefined {
  ctx.path = normalizePath(ctx.rawPath);
  const method = ctx.method;
  if (method === "OPTIONS") {
    const bucket = ctx.rt.router.match(ctx.path)?.bucket;
    // A path no bucket maps was 204 with Allow (a preflight to it too, without a CORS header): it is
    // 404, as for every other method; a CORS preflight (Origin and Access-Control-Request-Method)
    // 403, as a preflight a bucket's rules refuse, and as S3 refuses one to a bucket that does not
    // exist (403 "CORSResponse: Bucket not found", as the S3 front does).
    if (bucket === undefined) {
      if (ctx.req.headers.has("origin") && isPreflight(method, ctx.req.headers)) throw new ProxyError("Forbidden", { detail: "CORS preflight refused: no bucket is mapped to this path" });
      // (but the root, the server's own options: HAProxy's `option httpchk` default is `OPTIONS /
      // HTTP/1.0`, and a 404 there marked every proxy down; on the bun engine `OPTIONS *` never
      // reaches a handler)
      if (ctx.path === "/") return new Response(null, { status: 204, headers: { allow: serverAllow(ctx.rt) } });
      throw notHere(ctx, "NotFound");
    }
    ctx.bucketName = bucket.name;
    return new Response(null, { status: 204, headers: { allow: allowOf(bucket) } });
  }
  if (method === "PUT" || method === "DELETE" || method === "POST") return routeWrite(ctx);
  const found = ctx.rt.router.match(ctx.path);
  // (a path no bucket maps is 404 for every method; another method on a mapped one is 405,
  // counted and logged under its bucket. CONNECT names no path, an authority (`host:443`): 405,
  // as the S3 listener and the node engine answer it, whatever the router makes of it)
  if (!found) throw method === "CONNECT" ? methodNotAllowed(ctx) : notHere(ctx, "NotFound");
  ctx.bucket = found.bucket;
  ctx.bucketName = found.bucket.name;
  if (method !== "GET" && method !== "HEAD") throw methodNotAllowed(ctx);
  ctx.key = found.key;
  if ((found.key === "" || found.key.endsWith("/")) && found.bucket.cfg.listing.enabled) {
    // (a folder longer than a key can be holds nothing: refused here, never listed upstream)
    checkKeyLength(found.key);
    ctx.action = "s3:ListBucket";
    return undefined;
  }
  // (a folder index is what a GET of the bucket's root looks for: say it is off, not only that a key is missing)
  if (found.key === "") throw notHere(ctx, "NoSuchKey", "The path names a bucket but no object key (folder listings are off for this bucket: listing.enabled)");
  checkKeyLength(found.key);
  if (ctx.query !== "" && namesReadSelector(ctx.query)) {
    throw new ProxyError("BadRequest", { detail: "versionId and partNumber select what S3 returns and are not supported on the plain front (it serves the current object); use the S3 API front" });
  }
  ctx.action = "s3:GetObject";
  return undefined;
}

/**
 * Query parameters that, on S3, make a GET return something other than the current object. The
 * plain front ignores its query string otherwise (a cache-buster stays harmless), but answering
 * the current object to `?versionId=…` would let a client, or a CDN that treats versioned URLs as
 * immutable, keep the wrong bytes under that URL.
 */
const S3_READ_SELECTORS = /[?&](?:versionId|partNumber)(?:[=&]|$)/;

/**
 * Whether a raw query names versionId or partNumber, as sent or percent-encoded: S3 decodes the
 * names (`?version%49d=` is ?versionId=, and the S3 front reads it so), which the regular
 * expression alone missed (the current object was answered to a versioned URL).
 */
function namesReadSelector(rawQuery: string): boolean {
  if (S3_READ_SELECTORS.test(rawQuery)) return true;
  if (rawQuery.indexOf("%") < 0) return false;
  for (const part of rawQuery.replace(/^\?/, "").split("&")) {
    const eq = part.indexOf("=");
    const name = decodeComponent(eq < 0 ? part : part.slice(0, eq));
    if (name === "versionId" || name === "partNumber") return true;
  }
  return false;
}

/** S3's sub-resources and operation selectors: a query naming one asks S3 for another operation than a plain write. */
const S3_SUBRESOURCES: ReadonlySet<string> = new Set([...SUBRESOURCES, "versionId"]);

/** The first S3 sub-resource a raw query names (as sent or percent-encoded), or undefined. */
function s3SubresourceOf(rawQuery: string): string | undefined {
  for (const part of rawQuery.replace(/^\?/, "").split("&")) {
    const eq = part.indexOf("=");
    let name = eq < 0 ? part : part.slice(0, eq);
    try {
      name = decodeURIComponent(name.replaceAll("+", " "));
    } catch {
      continue;
    }
    if (S3_SUBRESOURCES.has(name)) return name;
    // A bare parameter this front does not know may be a sub-resource S3 adds later (as ?annotation
    // came in 2025: a PUT of it replaced the object): refused as one, as the S3 front refuses it.
    // A parameter with a value (a cache-buster, ?v=2) names none.
    if (name !== "" && (eq < 0 || eq === part.length - 1)) return name;
  }
  return undefined;
}

/** Phase: the answer, by action: an object, or a folder's index. */
export function serve(ctx: RequestContext): Response | Promise<Response> {
  const method = ctx.method;
  if (method === "GET" || method === "HEAD") {
    if (ctx.action === "s3:ListBucket") return serveListing(ctx);
    const res = ctx.bucket!.cfg.listing.enabled ? orFolder(ctx) : serveObject(ctx);
    if (!ctx.bucket!.restricted) return res;
    return mapAnswer(res, answeredPrivately);
  }
  if (method === "PUT") return servePut(ctx);
  if (method === "DELETE") return serveDelete(ctx);
  return servePresign(ctx);
}

/**
 * A listing bucket's object read whose key is missing but names a folder (`dir` with keys under
 * `dir/`): 302 to the folder's index (`dir/`, the query kept), as S3's website endpoint and web
 * servers answer such a path; it was a JSON 404. Only a missing key costs the one-key listing.
 */
function orFolder(ctx: RequestContext): Response | Promise<Response> {
  let res: Response | Promise<Response>;
  try {
    res = serveObject(ctx);
  } catch (err) {
    return folderOr(ctx, err);
  }
  return res instanceof Promise ? catchFolder(ctx, res) : res;
}

/** (a function of its own: a closure over orFolder's `ctx` made it allocate a scope on every read of a listing bucket, a cache hit's too) */
function catchFolder(ctx: RequestContext, res: Promise<Response>): Promise<Response> {
  return res.catch((err: unknown) => folderOr(ctx, err));
}

async function folderOr(ctx: RequestContext, err: unknown): Promise<Response> {
  if (!(err instanceof ProxyError) || err.code !== "NoSuchKey" || keyTooLong(ctx.key + "/")) throw err;
  // (only to a caller the authorizer lets list that folder: the redirect says something is in it)
  if (!(await mayAlso(ctx, "s3:ListBucket", true, ctx.key + "/", ctx.path + "/").catch(() => false))) throw err;
  const bucket = ctx.bucket!;
  // (encoding-type=url, as the index asks: S3's way to list a key XML 1.0 cannot carry, ESC say;
  // only whether a <Contents> came is read, so nothing to decode)
  const folder = await bucket.upstream
    .read(ctx.req.signal, ctx.timing, (u, maxAttempts) => listObjectsV2(u, { prefix: ctx.key + "/", maxKeys: 1, encodingType: "url" }, { signal: ctx.req.signal, timing: ctx.timing, maxAttempts }))
    .then(async (res) => res.status === 200 && /<(?:[A-Za-z_][\w.-]*:)?Contents>/.test(await res.text()))
    .catch(() => false);
  if (!folder) throw err;
  // (from the routed path, encoded: never the raw target, whose "//" could make it another host's)
  // Content-Length: 0 said by the answer itself, so a HEAD carries it as the GET does on either
  // engine (node:http adds it to an empty GET only: its HEAD had none).
  return new Response(null, { status: 302, headers: { location: encodePath(ctx.path) + "/" + ctx.query, "cache-control": "no-store", "content-length": "0" } });
}

/**
 * Phase: the JWT → claims (401/403), synchronously for HMAC tokens and verified-token cache hits.
 * (Its continuations are functions of their own, not closures in the phase: a closure over the
 * phase's locals made it allocate a scope, and the closures themselves, on every request, an
 * anonymous GET's too.)
 */
export function authenticate(ctx: RequestContext): undefined | Promise<undefined> {
  const bucket = ctx.bucket!;
  // A presigned URL is issued for a token's user, whether or not the bucket needs one to read.
  if (!bucket.authRequired && (ctx as PresignContext).presign === undefined) {
    refuseWrite(ctx, undefined);
    return undefined;
  }
  const auth = ctx.rt.auth;
  if (!auth) return refuseToken(ctx, new ProxyError("InternalError"));
  let claims: Claims | Promise<Claims>;
  try {
    // (the raw query: made a URL only when a query token source, or the 401's hint, reads it)
    claims = auth.authenticateFast(ctx.req.headers, ctx.query, bucket.extraRules);
  } catch (err) {
    return refuseToken(ctx, err);
  }
  return claims instanceof Promise ? acceptTokenLater(ctx, claims) : acceptToken(ctx, claims);
}

/** A write that write_claims refuses to `claims` (no token: undefined): 403. */
function refuseWrite(ctx: RequestContext, claims: Claims | undefined): void {
  const why = isWriteAction(ctx.action) ? writeRefusal(ctx.bucket!, claims) : undefined;
  if (why === undefined) return;
  ctx.svc.metrics.auth("forbidden");
  throw new ProxyError("Forbidden", { detail: why });
}

/** A token refused (missing, invalid, a claim rule's 403): counted, and thrown. */
function refuseToken(ctx: RequestContext, err: unknown): never {
  const e = toProxyError(err);
  ctx.svc.metrics.auth(authResultOf(e));
  // A valid token that a claim rule refused: the log and audit line name its subject.
  if (e instanceof ClaimRuleRefusal) {
    ctx.subject = jwtSubject(e.claims);
    ctx.principal = "jwt";
  }
  throw e;
}

function acceptToken(ctx: RequestContext, claims: Claims): undefined {
  // named even when write_claims refuses (the audit line says who was refused)
  ctx.subject = jwtSubject(claims);
  ctx.principal = "jwt";
  refuseWrite(ctx, claims);
  ctx.svc.metrics.auth("success");
  ctx.claims = claims;
  return undefined;
}

/** A token verified asynchronously (a JWKS key, not yet in the verified-token cache). */
function acceptTokenLater(ctx: RequestContext, claims: Promise<Claims>): Promise<undefined> {
  return claims.then(
    (c) => acceptToken(ctx, c),
    (err: unknown) => refuseToken(ctx, err),
  );
}

export const plainFront: Front = {
  name: "plain",
  phases: [guard, plainCors(() => plainFront), route, admit, authenticate, authorize, serve],
  renderError: (err, ctx) => err.toResponse(ctx.id, ctx.method),
};
