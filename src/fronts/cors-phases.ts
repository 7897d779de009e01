/**
 * The CORS phase of each front (src/http/cors.ts does the work): how each finds the addressed
 * bucket before its own routing has run. A path that does not route (or that the front will refuse
 * as malformed) has no CORS config: the front's own phases answer it as usual.
 */
import { S3_FRONT_BUCKET_NAME } from "../config/s3-api.ts";
import type { CorsConfig } from "../config/cors.ts";
import { corsPhase } from "../http/cors.ts";
import type { RequestContext } from "../proxy/context.ts";
import type { Front, Phase } from "../proxy/runner.ts";
import { normalizePath } from "../router.ts";
import { address, bucketFromHost } from "./s3/route.ts";
import { decodeComponent } from "./s3/uri.ts";

/** Plain front: the path prefix names the bucket. */
function plainBucketCors(ctx: RequestContext): CorsConfig | undefined {
  let path: string;
  try {
    path = normalizePath(ctx.rawPath);
  } catch {
    return undefined; // the route phase answers the 400
  }
  const bucket = ctx.rt.router.match(path)?.bucket;
  if (bucket?.cfg.cors !== undefined) ctx.bucketName = bucket.name; // a preflight answered here is counted under its bucket
  return bucket?.cfg.cors;
}

/** S3 front: path-style `/<bucket>/…`, or virtual-hosted `<bucket>.<s3_api.domain>`. */
function s3BucketCors(ctx: RequestContext): CorsConfig | undefined {
  const api = ctx.rt.s3Api;
  if (api === undefined) return undefined;
  const decoded = decodeComponent(ctx.rawPath);
  if (decoded === undefined) return undefined;
  const { bucket } = address(decoded, bucketFromHost(ctx.req.headers.get("host"), api.domain));
  // The service itself: AssumeRoleWithWebIdentity (POST /) takes s3_api.sts.cors.
  if (bucket === "") return ctx.method === "POST" || ctx.method === "OPTIONS" ? stsCors(ctx) : undefined;
  if (!S3_FRONT_BUCKET_NAME.test(bucket)) return undefined;
  const b = ctx.rt.buckets.get(bucket);
  if (b?.cfg.cors !== undefined) ctx.bucketName = b.name;
  return b?.cfg.cors;
}

/** s3_api.sts.cors when STS is on. */
export function stsCors(ctx: RequestContext): CorsConfig | undefined {
  const sts = ctx.rt.config.s3_api?.sts;
  return sts?.enabled ? sts.cors : undefined;
}

export const plainCors = (front: () => Front): Phase => corsPhase(front, plainBucketCors);
export const s3Cors = (front: () => Front): Phase => corsPhase(front, s3BucketCors);
