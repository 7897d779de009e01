/**
 * Bucket and object configuration the S3 front relays: GetBucketVersioning (the upstream bucket's
 * versioning state) and GetObjectTagging (an object's tag set; aws-cli reads it to copy the tags
 * in a multipart copy).
 */
import type { BucketUpstream } from "../upstream.ts";
import type { OperationContext } from "./common.ts";

/** GET /bucket?versioning: S3's VersioningConfiguration document, or its error. */
export function getBucketVersioning(upstream: BucketUpstream, ctx: OperationContext): Promise<Response> {
  return upstream.send({ method: "GET", key: "", query: [["versioning", ""]], ...ctx });
}

/** GET /bucket/key?tagging: S3's Tagging document, or its error. */
export function getObjectTagging(upstream: BucketUpstream, key: string, ctx: OperationContext): Promise<Response> {
  return upstream.send({ method: "GET", key, query: [["tagging", ""]], ...ctx });
}
