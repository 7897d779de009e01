/**
 * CORS for a bucket's `cors` config (src/config/cors.ts), the same on both fronts.
 *
 * - A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here, before
 *   admission and authentication: 204 (the S3 listener: 200, as S3) with the Access-Control-Allow-* headers when the origin, the
 *   method and every requested header are allowed, else 403 without any CORS header (the browser
 *   then refuses the real request).
 * - Any other request with an allowed Origin and method runs its front's remaining phases and gets
 *   Access-Control-Allow-Origin (the origin itself, with Vary: Origin) and
 *   Access-Control-Expose-Headers on whatever it is answered, errors included, so a script can
 *   read a 401 or 403 as well as an ETag.
 * - Requests without Origin (every non-browser client) cost one header lookup.
 *
 * The origin is always echoed, never "*" (a configured "*" matches any origin): an echoed origin
 * with Vary keeps shared caches from serving one origin's answer to another.
 * Access-Control-Allow-Credentials: true goes with a grant to a listed origin (or pattern), as S3
 * sends it, so a page whose fetches use credentials: "include" (axios' withCredentials) is not
 * refused by its browser; never for "*" (S3 answers a "*" rule without it). No cookie or other
 * ambient credential authenticates here: tokens travel in the Authorization header.
 */
import { matchesPattern, type CorsConfig } from "../config/cors.ts";
import { ProxyError } from "../errors.ts";
import { editHeaders } from "./headers.ts";
import type { RequestContext } from "../proxy/context.ts";
import { failed, runPhases, type Front, type Phase } from "../proxy/runner.ts";
import type { Runtime } from "../runtime.ts";

export type PreflightAnswer = { ok: true; headers: Record<string, string> } | { ok: false; reason: string };

export function originAllowed(cors: CorsConfig, origin: string): boolean {
  const list = cors.allowed_origins;
  if (list[0] === "*") return true;
  const o = origin.toLowerCase();
  for (const allowed of list) if (matchesPattern(allowed, o)) return true;
  return false;
}

/** Whether a request header a preflight asks for is allowed (exact names, or patterns with one "*"). */
function headerAllowed(cors: CorsConfig, name: string): boolean {
  for (const allowed of cors.allowed_headers) if (matchesPattern(allowed, name)) return true;
  return false;
}

/** Request header names of an Access-Control-Request-Headers value, lower-case, empty ones dropped. */
export function requestedHeaders(value: string | null): string[] {
  if (value === null) return [];
  const out: string[] = [];
  for (const part of value.split(",")) {
    const h = part.trim().toLowerCase();
    if (h !== "") out.push(h);
  }
  return out;
}

/** The answer to a preflight: the headers of its 204 (200), or why it is refused. */
export function preflight(cors: CorsConfig, origin: string, method: string, requestHeaders: string | null): PreflightAnswer {
  if (!originAllowed(cors, origin)) return { ok: false, reason: "the origin is not allowed" };
  const m = method.trim().toUpperCase();
  if (!(cors.allowed_methods as string[]).includes(m)) return { ok: false, reason: `the method ${m.slice(0, 16)} is not allowed` };
  const asked = requestedHeaders(requestHeaders);
  if (cors.allowed_headers[0] !== "*") {
    for (const h of asked) if (!headerAllowed(cors, h)) return { ok: false, reason: `the header ${h.slice(0, 64)} is not allowed` };
  }
  const headers: Record<string, string> = {
    "access-control-allow-origin": origin,
    "access-control-allow-methods": cors.allowed_methods.join(", "),
    "access-control-max-age": String(cors.max_age),
    vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
  };
  if (asked.length > 0) headers["access-control-allow-headers"] = asked.join(", ");
  if (cors.allowed_origins[0] !== "*") headers["access-control-allow-credentials"] = "true";
  return { ok: true, headers };
}

/** True for a CORS preflight: OPTIONS with Origin and Access-Control-Request-Method. */
export function isPreflight(method: string, headers: Headers): boolean {
  return method === "OPTIONS" && headers.has("access-control-request-method");
}

/**
 * Adds the actual-response headers for an allowed origin (and Vary: Origin for any origin). A
 * Response whose headers cannot be changed (one straight from fetch) is copied first.
 */
export function withCorsHeaders(res: Response, cors: CorsConfig, origin: string, method: string): Response {
  return editHeaders(res, (h) => apply(h, cors, origin, method));
}

/** Vary: Origin alone: the answer to a request without Origin, on a bucket with CORS. */
function withVaryOrigin(res: Response): Response {
  return editHeaders(res, addVaryOrigin);
}

function addVaryOrigin(h: Headers): void {
  const vary = h.get("vary");
  if (vary === null) h.set("vary", "Origin");
  else if (!/(^|,)\s*origin\s*(,|$)/i.test(vary)) h.set("vary", `${vary}, Origin`);
}

/** The grant goes to an allowed origin using an allowed method (S3 matches a rule's AllowedMethod on actual requests too). */
function apply(h: Headers, cors: CorsConfig, origin: string, method: string): void {
  addVaryOrigin(h);
  if (!originAllowed(cors, origin) || !(cors.allowed_methods as readonly string[]).includes(method)) return;
  h.set("access-control-allow-origin", origin);
  if (cors.allowed_origins[0] !== "*") h.set("access-control-allow-credentials", "true");
  if (cors.expose_headers.length > 0) h.set("access-control-expose-headers", cors.expose_headers.join(", "));
}

/**
 * The CORS phase of a front. `bucketCors(ctx)` finds the addressed bucket's cors config (the phase
 * runs before the front's own routing, so that routing, admission and authentication errors carry
 * CORS headers too). `front()` is the front this phase belongs to: for a CORS request the phase
 * runs the phases after itself and decorates their answer, errors rendered by that front.
 */
export function corsPhase(
  front: () => Front,
  bucketCors: (ctx: RequestContext) => CorsConfig | undefined,
  /** What a refused preflight throws (its front renders it); default a 403 Forbidden. */
  refusal: (reason: string, ctx: RequestContext) => unknown = (reason) => new ProxyError("Forbidden", { detail: `CORS preflight refused: ${reason}` }),
  /** The status of an allowed preflight's answer (the S3 listener's is S3's 200). */
  allowed: 200 | 204 = 204,
): Phase {
  let next = -1;
  const phase: Phase = (ctx) => {
    const origin = ctx.req.headers.get("origin");
    // A request without Origin on a bucket with CORS still gets Vary: Origin (the Fetch standard's
    // "CORS protocol and HTTP caches"): otherwise a browser or CDN cache could answer a later
    // CORS request with this answer, which lacks Access-Control-Allow-Origin.
    if (origin === null && !anyCors(ctx.rt)) return undefined;
    const cors = bucketCors(ctx);
    if (cors === undefined) return undefined;
    const headers = ctx.req.headers;
    if (origin === null) return runRest(ctx, withVaryOrigin);
    if (isPreflight(ctx.method, headers)) {
      const answer = preflight(cors, origin, headers.get("access-control-request-method")!, headers.get("access-control-request-headers"));
      // (refused: no CORS header, but Vary: Origin, as on every answer of a bucket with CORS)
      if (!answer.ok) return withVaryOrigin(failed(front(), ctx, refusal(answer.reason, ctx)));
      return new Response(null, { status: allowed, headers: answer.headers });
    }
    return runRest(ctx, corsDecorator(cors, origin, ctx.method));
  };
  /** Runs the front's phases after this one and decorates their answer, errors included. */
  const runRest = (ctx: RequestContext, decorate: (res: Response) => Response): Response | Promise<Response> => {
    const f = front();
    if (next < 0) next = f.phases.indexOf(phase) + 1;
    ctx.corsHeaders = decorate;
    let out: Response | Promise<Response>;
    try {
      out = runPhases(f.phases, ctx, next);
    } catch (thrown) {
      return decorate(failed(f, ctx, thrown));
    }
    if (out instanceof Response) return decorate(out);
    return out.then(decorate, (thrown) => decorate(failed(f, ctx, thrown)));
  };
  return phase;
}

/**
 * The decoration of a CORS request's answer. (Made here, not in the phase: a closure there over its
 * locals made every request allocate the phase's scope, those without Origin or CORS too.)
 */
function corsDecorator(cors: CorsConfig, origin: string, method: string): (res: Response) => Response {
  return (res) => withCorsHeaders(res, cors, origin, method);
}

const corsBuckets = new WeakMap<Runtime, boolean>();

/** Whether any bucket (or the STS endpoint) of this configuration has CORS (else a request without Origin skips the lookup). */
function anyCors(rt: Runtime): boolean {
  let any = corsBuckets.get(rt);
  if (any === undefined) {
    any = [...rt.buckets.values()].some((b) => b.cfg.cors !== undefined) || (rt.config.s3_api?.sts?.enabled === true && rt.config.s3_api.sts.cors !== undefined);
    corsBuckets.set(rt, any);
  }
  return any;
}
