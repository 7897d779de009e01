/** HeadBucket: does the upstream bucket exist, and may the bucket's credentials use it. */
import type { BucketUpstream } from "../upstream.ts";
import type { OperationContext } from "./common.ts";

/** HEAD /bucket: 200, or S3's 403/404 (no body: a HEAD answer carries no error XML). */
export function headBucket(upstream: BucketUpstream, ctx: OperationContext): Promise<Response> {
  return upstream.send({ method: "HEAD", key: "", ...ctx });
}
