/**
 * The URL of an object written through the S3 front (PostObject's `Location` header,
 * CompleteMultipartUpload's `<Location>`), where clients reach this listener.
 */
import type { RequestContext } from "../../proxy/context.ts";
import { uriEncode } from "../../s3/sigv4.ts";
import { bucketFromHost } from "./route.ts";

/**
 * `s3_api.public_url` (an origin: a load balancer that terminates TLS in front of the proxy), else
 * the request's Host with the listener's scheme. At a host the S3 API reads as the bucket
 * (virtual-hosted, `<bucket>.<s3_api.domain>`) the path is the key alone: a path-style path there
 * names key `<bucket>/<key>`.
 */
export function objectLocation(ctx: RequestContext, bucket: string, key: string): string {
  const publicUrl = ctx.rt.config.s3_api?.public_url;
  const origin = publicUrl !== undefined ? new URL(publicUrl) : undefined;
  const host = origin?.host ?? ctx.req.headers.get("host") ?? "localhost";
  const base = origin?.origin ?? `${ctx.rt.config.server.https?.enabled ? "https" : "http"}://${host}`;
  const bucketPath = bucketFromHost(host, ctx.rt.s3Api?.domain) === bucket ? "" : `/${uriEncode(bucket, true)}`;
  return `${base}${bucketPath}/${uriEncode(key, false)}`;
}
