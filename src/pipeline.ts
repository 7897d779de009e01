/**
 * The request path, top to bottom. `handle(req, clientAddr)` is independent of the listener
 * (Bun.serve or node:http), so most tests call it with `new Request(...)`.
 *
 *   0 guard        URI length (414), header size (431), method (405/OPTIONS)
 *   1 route        reserved endpoints, then longest prefix → bucket + key (404, 400 traversal)
 *   2 admit        concurrency cap (503), rate limits (429), ip_filter (403)
 *   3 authenticate JWT → claims (401), before anything touches S3 or the cache
 *   4 authorize    claim rules, OPA / OpenFGA (403)
 *   5 serve        cache (HIT/REVALIDATED/MISS/BYPASS) or signed upstream fetch
 *   6 respond      header allowlist, Content-Length, 206/304/412/416 as answers
 *   7 log+measure  always, in `finally`
 */
import type { App } from "./app.ts";
import { handleAdmin } from "./admin.ts";
import { serveHit, serveWithCache } from "./cache/index.ts";
import { ProxyError, toProxyError } from "./errors.ts";
import { anyContains } from "./http/cidr.ts";
import { forwardRequestHeaders, passResponseHeaders } from "./http/headers.ts";
import type { AuthResult } from "./observe/metrics.ts";
import { normalizePath } from "./router.ts";
import type { BucketRuntime, Runtime } from "./runtime.ts";
import type { UpstreamTiming } from "./s3/upstream.ts";

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;
const ALLOW = "GET, HEAD, OPTIONS";
/** Bun.serve and node:http both answer 431 themselves when the request head exceeds 16 KiB. */
const LISTENER_HEADER_LIMIT = 16 * 1024;

export interface RequestContext {
  id: string;
  start: number;
  method: string;
  /** Normalized path without the query string (never logged with its query: tokens live there). */
  path: string;
  /** Resolved on first use (see clientIp()): asking Bun for the peer address costs on every request. */
  clientIp: string | undefined;
  bucket: string;
  status: number;
  bytes: number;
  timing: UpstreamTiming;
  cache?: string;
  errorCode?: string;
  s3Code?: string;
  /** Holds an admission (concurrency) slot to release. */
  entered: boolean;
  rt: Runtime;
  req: Request;
  peer: string | undefined;
  peerOf: (req: Request) => string;
}

/** Splits an absolute request URL into raw path and query without building a URL object. */
export function splitUrl(url: string): { path: string; query: string } {
  // Origin-form ("/path?q", from node:http) or absolute ("http://host/path?q", from Bun.serve).
  const schemeEnd = url.charCodeAt(0) === 47 ? -1 : url.indexOf("://");
  const pathStart = schemeEnd >= 0 ? url.indexOf("/", schemeEnd + 3) : 0;
  if (pathStart < 0) return { path: "/", query: "" };
  const q = url.indexOf("?", pathStart);
  return q < 0 ? { path: url.slice(pathStart), query: "" } : { path: url.slice(pathStart, q), query: url.slice(q) };
}

function headerBytes(h: Headers): number {
  let n = 0;
  for (const [k, v] of h) n += k.length + v.length + 4;
  return n;
}

/** The client's address: the peer, or — only when the peer is a trusted proxy — the right-most untrusted X-Forwarded-For hop. */
export function clientIpOf(rt: Runtime, peer: string, h: Headers): string {
  if (rt.trustedProxies.length === 0 || !anyContains(rt.trustedProxies, peer)) return peer;
  const xff = h.get("x-forwarded-for");
  if (!xff) return peer;
  const hops = xff.split(",").map((s) => s.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) if (!anyContains(rt.trustedProxies, hops[i])) return hops[i];
  return hops[0] ?? peer;
}

/** The client's address for this request (see clientIpOf), resolved once. */
function clientIp(rt: Runtime, ctx: RequestContext): string {
  if (ctx.clientIp === undefined) ctx.clientIp = clientIpOf(rt, ctx.peer ?? ctx.peerOf(ctx.req), ctx.req.headers);
  return ctx.clientIp;
}

function authResultOf(err: ProxyError): AuthResult {
  if (err.code === "Unauthorized") return "missing";
  if (err.code === "InvalidToken") return "invalid";
  if (err.code === "Forbidden") return "forbidden";
  return "error";
}

/**
 * `rawTarget` is the request target exactly as received ("/path?query"), when the listener knows
 * it (node:http does; Bun.serve only exposes the URL after dot-segment resolution).
 */
/** `peer`: the TCP peer's address when the listener has it at hand; otherwise `peerOf(req)` is asked, only if needed. */
export type Handler = (req: Request, peer?: string, rawTarget?: string) => Response | Promise<Response>;

/**
 * Returns a Response synchronously when no phase has to wait (a fresh cache hit on a bucket
 * without authentication): Bun.serve answers a plain Response measurably faster than a Promise,
 * and every `async` layer costs a promise and a microtask per request.
 */
export function createHandler(app: App, peerOf: (req: Request) => string = () => ""): Handler {
  return function handle(req: Request, peer?: string, rawTarget?: string): Response | Promise<Response> {
    const rt = app.runtime; // captured: a reload mid-request does not affect this request
    const incomingId = req.headers.get("x-request-id");
    const ctx: RequestContext = {
      id: incomingId !== null && REQUEST_ID.test(incomingId) ? incomingId : crypto.randomUUID(),
      start: performance.now(),
      method: req.method,
      path: "",
      clientIp: undefined,
      rt,
      req,
      peer,
      peerOf,
      bucket: "_none",
      status: 0,
      bytes: 0,
      timing: { upstreamMs: 0, attempts: 0 },
      entered: false,
    };
    app.metrics.inFlight(1);
    let out: Response | Promise<Response>;
    try {
      out = phases(app, rt, req, ctx, rawTarget);
    } catch (thrown) {
      return finish(app, ctx, failed(app, req, ctx, thrown));
    }
    if (out instanceof Response) return finish(app, ctx, answered(ctx, out));
    return out.then(
      (res) => finish(app, ctx, answered(ctx, res)),
      (thrown) => finish(app, ctx, failed(app, req, ctx, thrown)),
    );
  };
}

function answered(ctx: RequestContext, res: Response): Response {
  ctx.status = res.status;
  res.headers.set("x-request-id", ctx.id);
  return res;
}

function failed(app: App, req: Request, ctx: RequestContext, thrown: unknown): Response {
  const err = toProxyError(thrown);
  if (req.signal.aborted && !(thrown instanceof ProxyError)) {
    ctx.status = 499; // client closed the request; nobody is listening for an answer
    ctx.errorCode = "ClientClosedRequest";
    return new Response(null, { status: 499 });
  }
  if (err.code === "InternalError") app.log.error("unexpected error", { request_id: ctx.id, error: String((thrown as Error)?.stack ?? thrown) });
  ctx.status = err.status;
  ctx.errorCode = err.code;
  const cause = err.cause as { s3Code?: string } | undefined;
  if (cause?.s3Code) ctx.s3Code = cause.s3Code;
  return err.toResponse(ctx.id, req.method);
}

/** Phase 7, for every request however it ended: release the admission slot, measure, log. */
function finish(app: App, ctx: RequestContext, res: Response): Response {
  if (ctx.entered) app.concurrency.leave();
  app.metrics.inFlight(-1);
  const durationMs = performance.now() - ctx.start;
  app.metrics.observeRequest(ctx.bucket, ctx.method, ctx.status, durationMs / 1000, ctx.bytes);
  if (app.log.enabled("info")) {
    app.log.access({
      request_id: ctx.id,
      method: ctx.method,
      path: ctx.path,
      bucket: ctx.bucket,
      status: ctx.status,
      bytes: ctx.bytes,
      duration_ms: Math.round(durationMs * 1000) / 1000,
      upstream_ms: Math.round(ctx.timing.upstreamMs * 1000) / 1000,
      client_ip: clientIp(ctx.rt, ctx),
      cache: ctx.cache ? ctx.cache : undefined,
      error: ctx.errorCode ? ctx.errorCode : undefined,
      s3_error: ctx.s3Code ? ctx.s3Code : undefined,
      attempts: ctx.timing.attempts > 1 ? ctx.timing.attempts : undefined,
    });
  }
  return res;
}

/** Phases 0-6. Throws ProxyError (synchronously or as a rejection) for every refusal. */
function phases(app: App, rt: Runtime, req: Request, ctx: RequestContext, rawTarget?: string): Response | Promise<Response> {
  // 0 guard
  const limits = rt.config.server.security_limits;
  const target = rawTarget ?? req.url;
  if (target.length > limits.max_uri_length + 64) throw new ProxyError("UriTooLong");
  const { path: rawPath, query } = splitUrl(target);
  if (rawPath.length + query.length > limits.max_uri_length) throw new ProxyError("UriTooLong");
  // Bun.serve answers 431 itself above 16 KiB, so under it only a lower limit needs counting;
  // node:http's own limit follows the configured one (see listenNode), so there it always counts.
  if ((limits.max_header_size < LISTENER_HEADER_LIMIT || rt.config.server.engine === "node") && headerBytes(req.headers) > limits.max_header_size) {
    throw new ProxyError("HeadersTooLarge");
  }

  // 1 route: reserved endpoints first
  ctx.path = rawPath; // logged as received if normalization rejects it
  ctx.path = normalizePath(rawPath);
  const p = ctx.path;
  if (p === "/health" || p === "/ready" || p === "/metrics" || p === "/admin" || p.startsWith("/admin/")) {
    ctx.bucket = p.startsWith("/admin") ? "_admin" : p === "/metrics" ? "_metrics" : "_health";
    return reserved(app, rt, req, p);
  }
  const method = req.method;
  if (method === "OPTIONS") return new Response(null, { status: 204, headers: { allow: ALLOW } });
  if (method !== "GET" && method !== "HEAD") throw new ProxyError("MethodNotAllowed", { headers: { allow: ALLOW } });
  const route = rt.router.match(p);
  if (!route) throw new ProxyError("NotFound");
  const bucket = route.bucket;
  ctx.bucket = bucket.name;
  if (route.key === "") throw new ProxyError("NoSuchKey", { detail: "The path names a bucket but no object key" });

  // 2 admit
  if (!app.concurrency.tryEnter()) {
    app.metrics.rateLimited("concurrency");
    throw new ProxyError("Overloaded", { headers: { "retry-after": "1" } });
  }
  ctx.entered = true;
  if (rt.limiter) {
    const r = rt.limiter.check(clientIp(rt, ctx), bucket.name);
    if (!r.ok) {
      app.metrics.rateLimited(r.scope);
      throw new ProxyError("TooManyRequests", { detail: `Rate limit exceeded (${r.scope})`, headers: { "retry-after": String(r.retryAfterSeconds) } });
    }
  }
  if (bucket.block.length > 0 && anyContains(bucket.block, clientIp(rt, ctx))) throw new ProxyError("Forbidden", { detail: "Your address is not allowed" });
  if (bucket.allow.length > 0 && !anyContains(bucket.allow, clientIp(rt, ctx))) throw new ProxyError("Forbidden", { detail: "Your address is not allowed" });

  // 3 authenticate (synchronous for HMAC tokens and verified-token cache hits)
  let claims: Claims | undefined;
  if (bucket.authRequired) {
    const c = authenticate(app, rt, bucket, req, query);
    if (c instanceof Promise) return c.then((v) => authorizeThenServe(app, rt, bucket, route.key, p, method, req, ctx, v));
    claims = c;
  }
  // 4 authorize (OPA / OpenFGA: always asynchronous)
  if (bucket.authorizer) return authorizeThenServe(app, rt, bucket, route.key, p, method, req, ctx, claims);

  // 5 serve + 6 respond
  return serve(app, rt, bucket, route.key, method, req, ctx);
}

type Claims = Record<string, unknown>;

function authorizeThenServe(app: App, rt: Runtime, bucket: BucketRuntime, key: string, p: string, method: "GET" | "HEAD", req: Request, ctx: RequestContext, claims: Claims | undefined): Response | Promise<Response> {
  if (!bucket.authorizer) return serve(app, rt, bucket, key, method, req, ctx);
  return bucket.authorizer.authorize({ claims, bucket: bucket.name, key, path: p, method, clientIp: clientIp(rt, ctx) }).then((allowed) => {
    if (!allowed) throw new ProxyError("Forbidden", { detail: "The authorization policy denied this request" });
    return serve(app, rt, bucket, key, method, req, ctx);
  });
}

/** Phase 3: the claims (synchronously when the authenticator can), counted in the auth metric either way. */
function authenticate(app: App, rt: Runtime, bucket: BucketRuntime, req: Request, query: string): Claims | Promise<Claims> {
  const refuse = (err: unknown): never => {
    const e = toProxyError(err);
    app.metrics.auth(authResultOf(e));
    throw e;
  };
  if (!rt.auth) return refuse(new ProxyError("InternalError"));
  let claims: Claims | Promise<Claims>;
  try {
    claims = rt.auth.authenticateFast(req.headers, () => new URL(query ? `http://x/${query}` : "http://x/"), bucket.extraRules);
  } catch (err) {
    return refuse(err);
  }
  if (claims instanceof Promise) {
    return claims.then((c) => {
      app.metrics.auth("success");
      return c;
    }, refuse);
  }
  app.metrics.auth("success");
  return claims;
}

function serve(app: App, rt: Runtime, bucket: BucketRuntime, key: string, method: "GET" | "HEAD", req: Request, ctx: RequestContext): Response | Promise<Response> {
  if (bucket.cachePolicy) {
    const hit = serveHit(app.cache, bucket.name, key, method, req.headers);
    if (hit !== undefined) {
      ctx.cache = "HIT";
      ctx.bytes = bodyBytes(hit, method);
      return hit;
    }
    return serveCached(app, rt, bucket, key, method, req, ctx);
  }
  return bucket.upstream.fetchObject(method, key, forwardRequestHeaders(req.headers), req.signal, ctx.timing).then((upstream) => respond(rt, upstream, method, ctx));
}

async function serveCached(app: App, rt: Runtime, bucket: BucketRuntime, key: string, method: "GET" | "HEAD", req: Request, ctx: RequestContext): Promise<Response> {
  // Coalesced fills must not die with the client that happened to start them: a signal of their
  // own with a deadline (see fill()), created only on a miss (an AbortController per hit cost
  // ~9 % of the cache-hit path's CPU).
  const result = await serveWithCache({
    cache: app.cache,
    bucket: bucket.name,
    key,
    method,
    reqHeaders: req.headers,
    policy: bucket.cachePolicy!,
    // Always GET: a HEAD miss still fills the cache (serveWithCache answers the HEAD itself).
    upstream: (extra) => (extra.range ? bucket.upstream.fetchObject("GET", key, extra, req.signal, ctx.timing) : fill(bucket, key, extra, ctx)),
  });
  ctx.cache = result.cacheStatus;
  if (!result.passthrough) {
    ctx.bytes = bodyBytes(result.response, method);
    return result.response;
  }
  const res = await respond(rt, result.response, method, ctx);
  res.headers.set("x-cache", result.cacheStatus);
  return res;
}

/** Body bytes a response built from the cache sends (its Content-Length; none for HEAD). */
function bodyBytes(res: Response, method: string): number {
  return method === "HEAD" ? 0 : Number(res.headers.get("content-length") ?? 0);
}

/**
 * A cache fill: coalesced waiters all depend on it, so it has its own deadline. S3's `timeout`
 * covers the wait for response headers; the body then gets time for at least 1 MiB/s on top.
 * Without it, an upstream that stalls mid-body would hang the fill, and every later request for
 * the key would join it. The timer only fires after the deadline (aborting a finished fetch is a
 * no-op), so nothing has to cancel it.
 */
function fill(bucket: BucketRuntime, key: string, extra: Record<string, string>, ctx: RequestContext): Promise<Response> {
  const controller = new AbortController();
  const maxBytes = bucket.cachePolicy?.maxItemBytes ?? 0;
  const deadlineMs = bucket.cfg.s3.timeout * 1000 + (maxBytes / (1024 * 1024)) * 1000;
  const timer = setTimeout(() => controller.abort(new ProxyError("GatewayTimeout", { detail: "The upstream stalled while sending the object" })), deadlineMs);
  timer.unref?.();
  return bucket.upstream.fetchObject("GET", key, extra, controller.signal, ctx.timing);
}

/** Builds the client response from S3's (200/206/304/412/416). */
async function respond(rt: Runtime, upstream: Response, method: string, ctx: RequestContext): Promise<Response> {
  const status = upstream.status;
  if (status === 412 || status === 416) {
    upstream.body?.cancel().catch(() => {});
    const headers: Record<string, string> = {};
    const cr = upstream.headers.get("content-range");
    if (status === 416 && cr) headers["content-range"] = cr;
    throw new ProxyError(status === 412 ? "PreconditionFailed" : "RangeNotSatisfiable", { headers });
  }
  const headers = passResponseHeaders(upstream.headers, new Headers());
  if (method === "HEAD" || status === 304) {
    upstream.body?.cancel().catch(() => {});
    return new Response(null, { status, headers });
  }
  const declared = upstream.headers.get("content-length");
  const length = declared === null ? -1 : Number(declared);
  if (length >= 0 && length <= rt.config.server.buffer_threshold_bytes) {
    // A known-size body keeps Content-Length under Bun.serve (a stream would lose it).
    let body: ArrayBuffer;
    try {
      body = await upstream.arrayBuffer();
    } catch (err) {
      throw new ProxyError("BadGateway", { detail: "The upstream connection failed while sending the object", cause: err });
    }
    ctx.bytes = body.byteLength;
    return new Response(body, { status, headers });
  }
  ctx.bytes = Math.max(length, 0);
  return new Response(upstream.body, { status, headers });
}

async function reserved(app: App, rt: Runtime, req: Request, p: string): Promise<Response> {
  const json = (status: number, body: unknown, extra?: Record<string, string>) =>
    new Response(req.method === "HEAD" ? null : JSON.stringify(body), { status, headers: { "content-type": "application/json", "cache-control": "no-store", ...extra } });
  if (p === "/health") return json(app.draining ? 503 : 200, { status: app.draining ? "draining" : "ok" });
  if (p === "/ready") {
    const r = app.readiness(rt);
    return json(r.ready ? 200 : 503, r);
  }
  if (p === "/metrics") throw new ProxyError("NotFound", { detail: "Metrics are served on the separate metrics listener (metrics.address:metrics.port)" });
  return handleAdmin(app, rt, req, p);
}
