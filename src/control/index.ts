/**
 * The control plane of the main listener: /health, /ready and /admin/* (the metrics live on their
 * own listener). It shares the request runner and the logging step with the proxy fronts, so it
 * is logged and counted the same way, but none of the proxy phases: no routing to buckets, no
 * rate limits, no cache, no upstream. It reads App state; nothing on the proxy path imports it.
 */
import type { App } from "../app.ts";
import { ProxyError } from "../errors.ts";
import type { RequestContext } from "../proxy/context.ts";
import { guard } from "../proxy/phases/guard.ts";
import type { Front } from "../proxy/runner.ts";
import { normalizePath } from "../router.ts";
import { handleAdmin } from "./admin.ts";
import { readinessOf } from "./ready.ts";

export { isControlTarget } from "./paths.ts";

function json(method: string, status: number, body: unknown): Response {
  return new Response(method === "HEAD" ? null : JSON.stringify(body), { status, headers: { "content-type": "application/json", "cache-control": "no-store" } });
}

function control(ctx: RequestContext): Response | Promise<Response> {
  const p = (ctx.path = normalizePath(ctx.rawPath));
  const app = ctx.svc as App;
  if (p === "/health") {
    ctx.bucketName = "_health";
    return json(ctx.method, app.draining ? 503 : 200, { status: app.draining ? "draining" : "ok" });
  }
  if (p === "/ready") {
    ctx.bucketName = "_health";
    const r = readinessOf(ctx.rt, app.draining, app.cache);
    return json(ctx.method, r.ready ? 200 : 503, r);
  }
  if (p === "/metrics") {
    ctx.bucketName = "_metrics";
    throw new ProxyError("NotFound", { detail: "Metrics are served on the separate metrics listener (metrics.address:metrics.port)" });
  }
  ctx.bucketName = "_admin";
  return handleAdmin(app, ctx.rt, ctx.req, p);
}

export const controlFront: Front = {
  name: "control",
  phases: [guard, control],
  renderError: (err, ctx) => err.toResponse(ctx.id, ctx.method),
};
