/**
 * The CORS phase of each front (src/http/cors.ts does the work): how each finds the addressed
 * bucket before its own routing has run. A path that does not route has no CORS config: the front's
 * own phases answer it as usual (one the plain front will refuse as malformed is matched as sent).
 */
import type { CorsConfig } from "../config/cors.ts";
import { corsPhase } from "../http/cors.ts";
import type { RequestContext } from "../proxy/context.ts";
import type { Front, Phase } from "../proxy/runner.ts";
import { normalizePath } from "../router.ts";
import { s3Error, type S3Error } from "./s3/errors.ts";
import { s3Fail } from "./s3/fail.ts";
import { address, bucketFromHost, configuredBucket } from "./s3/route.ts";
import { decodeComponent } from "../util/text.ts";

/** Plain front: the path prefix names the bucket. */
function plainBucketCors(ctx: RequestContext): CorsConfig | undefined {
  let path: string;
  try {
    path = normalizePath(ctx.rawPath);
  } catch {
    // The route phase answers the 400 (a dot segment, a control character...): the bucket is
    // found on the path as sent, so that the 400 carries its CORS headers and a page can read it.
    path = ctx.rawPath;
  }
  const bucket = ctx.rt.router.match(path)?.bucket;
  if (bucket?.cfg.cors !== undefined) ctx.bucketName = bucket.name; // a preflight answered here is counted under its bucket
  return bucket?.cfg.cors;
}

/** S3 front: path-style `/<bucket>/…`, or virtual-hosted `<bucket>.<s3_api.domain>`. */
function s3BucketCors(ctx: RequestContext): CorsConfig | undefined {
  const api = ctx.rt.s3Api;
  if (api === undefined) return undefined;
  // A path that does not decode (a stray "%" or invalid UTF-8 in the key) is S3's 400 InvalidURI
  // (s3Address): the bucket is read from the path's first segment as sent (or the host), so that
  // the 400, and its preflight, carry the bucket's CORS headers and a page can read it.
  const decoded = decodeComponent(ctx.rawPath) ?? decodeComponent(bucketSegment(ctx.rawPath));
  if (decoded === undefined) return undefined;
  const { bucket } = address(decoded, bucketFromHost(ctx.req.headers.get("host"), api.domain));
  // The service itself: AssumeRoleWithWebIdentity (POST /) takes s3_api.sts.cors.
  if (bucket === "") return ctx.method === "POST" || ctx.method === "OPTIONS" ? stsCors(ctx) : undefined;
  const b = configuredBucket(ctx.rt, bucket);
  if (b?.cfg.cors !== undefined) ctx.bucketName = b.name;
  return b?.cfg.cors;
}

/** "/<bucket>/" of a path-style path as sent ("/" when it has no bucket segment). */
function bucketSegment(rawPath: string): string {
  const end = rawPath.indexOf("/", 1);
  return end < 0 ? "/" : rawPath.slice(0, end + 1);
}

/** s3_api.sts.cors when STS is on. */
export function stsCors(ctx: RequestContext): CorsConfig | undefined {
  const sts = ctx.rt.config.s3_api?.sts;
  return sts?.enabled ? sts.cors : undefined;
}

export const plainCors = (front: () => Front): Phase => corsPhase(front, plainBucketCors);
/** The methods a preflight may ask S3 about (its Access-Control-Request-Method). */
const PREFLIGHT_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "PUT", "POST", "DELETE"]);

/**
 * S3's refusal of an OPTIONS request that has an Origin: a 400 BadRequest for an
 * Access-Control-Request-Method naming no S3 method (before the bucket is looked at), else 403
 * AccessForbidden with `message`, naming the method asked about (OPTIONS when none) and the
 * resource, as S3 does (`bucketOnly`: the bucket was not found, S3 names the bucket).
 */
export function s3PreflightRefusal(ctx: RequestContext, message: string, bucketOnly = false): S3Error {
  const asked = ctx.req.headers.get("access-control-request-method");
  const method = asked === null ? "OPTIONS" : asked.trim().toUpperCase();
  if (asked !== null && !PREFLIGHT_METHODS.has(method)) return s3Error("BadRequest", `Invalid Access-Control-Request-Method: ${asked.slice(0, 32)}`);
  const key = bucketOnly ? "" : address(decodeComponent(ctx.rawPath) ?? ctx.rawPath, bucketFromHost(ctx.req.headers.get("host"), ctx.rt.s3Api?.domain)).key;
  return s3Error("AccessForbidden", message, { Method: method.slice(0, 32), ResourceType: key === "" ? "BUCKET" : "OBJECT" });
}

/**
 * S3's answer to a preflight its CORS rules refuse (403 AccessForbidden, with S3's message, which
 * names none of origin, method or header); the access log's reason says which was refused, as the
 * plain front's does.
 */
const s3Refusal = (reason: string, ctx: RequestContext) => {
  ctx.errorReason = `CORS preflight refused: ${reason}`;
  return s3Fail(s3PreflightRefusal(ctx, "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."));
};

/** (an allowed preflight is S3's 200: it was 204, which S3 never answers one) */
export const s3Cors = (front: () => Front): Phase => corsPhase(front, s3BucketCors, s3Refusal, 200);
