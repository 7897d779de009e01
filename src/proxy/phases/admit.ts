/**
 * Phase: admit. Needs the bucket (set by the front's routing). Concurrency cap (503), the uploads
 * cap (requests with a body, in all and per client address: 503), the bucket's IP allow/block
 * lists (403), rate limits (429: global, per bucket, per client address). The lists come before
 * the limits: an address the bucket refuses spends none of its budget (counted first, the 403s of
 * an address outside a bucket's allowlist spent the bucket's budget, and its own clients got 429).
 * The admission slot is released by the logging step, when the body is done.
 */
import { ProxyError } from "../../errors.ts";
import { announcesBody } from "../../http/body-policy.ts";
import { anyContains, limitKey } from "../../http/cidr.ts";
import type { RateCheck } from "../../limits/index.ts";
import { clientIp, type RequestContext } from "../context.ts";
import type { BucketRuntime } from "../../runtime.ts";

export function admit(ctx: RequestContext): undefined | Promise<undefined> {
  const svc = ctx.svc;
  // (the address only from half the cap on: below it nobody is counted, and nothing is allocated)
  const slot = svc.concurrency.countsAddresses ? svc.concurrency.tryEnter(limitKey(clientIp(ctx))) : svc.concurrency.tryEnter();
  if (slot === "concurrency" || slot === "concurrency_per_ip") {
    svc.metrics.rateLimited(slot);
    throw new ProxyError("Overloaded", slot === "concurrency" ? { headers: { "retry-after": "1" } } : { detail: "Too many requests in progress from your address: try again shortly", headers: { "retry-after": "1" } });
  }
  ctx.entered = slot === "ok" ? "" : slot.ip;
  if (carriesBody(ctx)) enterUpload(ctx);
  filterIp(ctx);
  const limiter = ctx.rt.limiter;
  if (limiter) {
    const r = limiter.check(limitKey(clientIp(ctx)), ctx.bucketName);
    // Only the Redis-shared limiter answers with a promise (and only while Redis is reachable):
    // the memory backend keeps this phase synchronous.
    if (r instanceof Promise) return afterRateLater(ctx, r);
    return afterRate(ctx, r);
  }
  return undefined;
}

/**
 * Takes an upload slot (server.max_concurrent_uploads, _per_ip) for the request, released by the
 * logging step: 503 when none is free. Admission takes one for a request with a body; a copy
 * streamed through the proxy takes one too (src/fronts/s3/copy-streamed.ts).
 */
export function enterUpload(ctx: RequestContext): void {
  if (ctx.uploadSlot !== undefined) return;
  const svc = ctx.svc;
  const r = svc.uploads.tryEnter(uploaderKey, ctx);
  if (r === "uploads" || r === "uploads_per_ip") {
    svc.metrics.rateLimited(r);
    throw new ProxyError("Overloaded", {
      detail: r === "uploads" ? "Too many uploads in progress: try again shortly" : "Too many uploads in progress from your address: try again shortly",
      headers: { "retry-after": "1" },
    });
  }
  ctx.uploadSlot = r === "ok" ? "" : r.ip;
}

/** The address an upload is counted under, asked for only near the cap (a function, not a closure per upload). */
const uploaderKey = (ctx: RequestContext): string => limitKey(clientIp(ctx));

/** Whether `bucket`'s ip_filter refuses the request's client address. */
export function addressRefused(ctx: RequestContext, bucket: Pick<BucketRuntime, "allow" | "block">): boolean {
  if (bucket.block.length === 0 && bucket.allow.length === 0) return false;
  const ip = clientIp(ctx);
  // No address at all (the listener lost the connection's peer: the client left as it sent the
  // request): a blocklist cannot tell it is not on it, so the request is refused, as an allowlist
  // refuses it (it was let past a blocklist).
  if (ip === "") return true;
  return (bucket.block.length > 0 && anyContains(bucket.block, ip)) || (bucket.allow.length > 0 && !anyContains(bucket.allow, ip));
}

/** A request whose body is still to be received: a PUT or POST announcing one (a length above 0, or chunked). */
function carriesBody(ctx: RequestContext): boolean {
  const m = ctx.method;
  return (m === "PUT" || m === "POST" || m === "PATCH") && announcesBody(ctx.req.headers);
}

/** afterRate once the shared limiter answers. (Its own function: a closure in admit over `ctx` made admit allocate a scope on every request.) */
function afterRateLater(ctx: RequestContext, r: Promise<RateCheck>): Promise<undefined> {
  return r.then((rc) => afterRate(ctx, rc));
}

function afterRate(ctx: RequestContext, r: RateCheck): undefined {
  if (!r.ok) {
    ctx.svc.metrics.rateLimited(r.scope);
    throw new ProxyError("TooManyRequests", { detail: `Rate limit exceeded (${r.scope})`, headers: { "retry-after": String(r.retryAfterSeconds) } });
  }
  return undefined;
}

function filterIp(ctx: RequestContext): void {
  const bucket = ctx.bucket;
  if (bucket !== undefined && addressRefused(ctx, bucket)) throw new ProxyError("Forbidden", { detail: "Your address is not allowed" });
}
