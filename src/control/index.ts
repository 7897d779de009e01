/**
 * The control plane of the main listener: /health, /ready and /admin/* (the metrics live on their
 * own listener). It shares the request runner, the guard phase and the logging step with the proxy
 * fronts, so it is logged and counted the same way, but none of the other proxy phases: no routing
 * to buckets, no rate limits, no cache, no upstream. It reads App state; nothing on the proxy path imports it.
 */
import type { App } from "../app.ts";
import { ProxyError } from "../errors.ts";
import type { RequestContext } from "../proxy/context.ts";
import { guard } from "../proxy/phases/guard.ts";
import type { Front } from "../proxy/runner.ts";
import { normalizePath } from "../router.ts";
import { handleAdmin } from "./admin.ts";
import { json } from "./admin.ts";
import { mapAnswer } from "../http/map-answer.ts";
import { readinessOf } from "./ready.ts";

export { isControlTarget } from "./paths.ts";

/** A HEAD gets the GET's headers (Content-Length included) without the body. */
function answer(ctx: RequestContext, res: Response): Response {
  return ctx.method === "HEAD" ? new Response(null, res) : res;
}

/** The access log counts the bytes of every control answer (all carry their Content-Length). */
function counted(ctx: RequestContext, res: Response): Response {
  if (ctx.method !== "HEAD") ctx.bytes = Number(res.headers.get("content-length") ?? 0);
  return res;
}

function control(ctx: RequestContext): Response | Promise<Response> {
  return mapAnswer(controlAnswer(ctx), (res) => counted(ctx, res));
}

/**
 * The methods /health and /ready answer: GET and HEAD, and OPTIONS (HAProxy's `option httpchk`
 * sends it by default). Another (a POST, a DELETE) is 405, as the metrics listener answers it: it
 * was a 200 with the report, as if the method meant something here.
 */
function probeMethod(ctx: RequestContext): void {
  const m = ctx.method;
  if (m !== "GET" && m !== "HEAD" && m !== "OPTIONS") throw new ProxyError("MethodNotAllowed", { headers: { allow: "GET, HEAD, OPTIONS" } });
}

/**
 * The code of a probe's 503 from the shutdown signal on (through shutdown_delay): the answer a load
 * balancer is meant to get, logged at info (src/observe/log.ts accessLevel), not as a failure at warn.
 */
const DRAINING = "Draining";

function controlAnswer(ctx: RequestContext): Response | Promise<Response> {
  const p = (ctx.path = normalizePath(ctx.rawPath));
  const app = ctx.svc as App;
  if (p === "/health") {
    ctx.bucketName = "_health";
    probeMethod(ctx);
    if (app.draining) ctx.errorCode = DRAINING;
    return answer(ctx, json(app.draining ? 503 : 200, { status: app.draining ? "draining" : "ok" }));
  }
  if (p === "/ready") {
    ctx.bucketName = "_health";
    probeMethod(ctx);
    if (app.draining) ctx.errorCode = DRAINING;
    const r = readinessOf(ctx.rt, app.draining, app.cache);
    return answer(ctx, json(r.ready ? 200 : 503, r));
  }
  if (p === "/metrics") {
    ctx.bucketName = "_metrics";
    throw new ProxyError("NotFound", { detail: "Metrics are served on the separate metrics listener (metrics.address:metrics.port)" });
  }
  ctx.bucketName = "_admin";
  return handleAdmin(app, ctx.rt, ctx.req, p, (subject) => (ctx.subject = subject), ctx.rawPath);
}

export const controlFront: Front = {
  name: "control",
  phases: [guard, control],
  renderError: (err, ctx) => err.toResponse(ctx.id, ctx.method),
};
