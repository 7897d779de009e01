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

/** A JSON answer with its Content-Length (a HEAD gets the GET's, no body); the access log counts its bytes. */
function json(ctx: RequestContext, status: number, body: unknown): Response {
  const text = JSON.stringify(body);
  const length = Buffer.byteLength(text);
  if (ctx.method !== "HEAD") ctx.bytes = length;
  return new Response(ctx.method === "HEAD" ? null : text, { status, headers: { "content-type": "application/json", "cache-control": "no-store", "content-length": String(length) } });
}

function control(ctx: RequestContext): Response | Promise<Response> {
  const p = (ctx.path = normalizePath(ctx.rawPath));
  const app = ctx.svc as App;
  if (p === "/health") {
    ctx.bucketName = "_health";
    return json(ctx, app.draining ? 503 : 200, { status: app.draining ? "draining" : "ok" });
  }
  if (p === "/ready") {
    ctx.bucketName = "_health";
    const r = readinessOf(ctx.rt, app.draining, app.cache);
    return json(ctx, r.ready ? 200 : 503, r);
  }
  if (p === "/metrics") {
    ctx.bucketName = "_metrics";
    throw new ProxyError("NotFound", { detail: "Metrics are served on the separate metrics listener (metrics.address:metrics.port)" });
  }
  ctx.bucketName = "_admin";
  return handleAdmin(app, ctx.rt, ctx.req, p).then((res) => {
    // (the admin API's answers are small JSON documents with their length)
    if (ctx.method !== "HEAD") ctx.bytes = Number(res.headers.get("content-length") ?? 0);
    return res;
  });
}

export const controlFront: Front = {
  name: "control",
  phases: [guard, control],
  renderError: (err, ctx) => err.toResponse(ctx.id, ctx.method),
};
