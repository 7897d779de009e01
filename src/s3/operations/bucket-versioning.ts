/** GetBucketVersioning: the upstream bucket's versioning state (S3 keeps it per bucket, not per object). */
import type { BucketUpstream } from "../upstream.ts";
import type { OperationContext } from "./common.ts";

/** GET /bucket?versioning: S3's VersioningConfiguration document, or its error. */
export function getBucketVersioning(upstream: BucketUpstream, ctx: OperationContext): Promise<Response> {
  return upstream.send({ method: "GET", key: "", query: [["versioning", ""]], ...ctx });
}
