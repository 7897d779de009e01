/**
 * ListObjects V1 and V2: relayed from the upstream (placeholder until src/s3/operations lands).
 */
import type { RequestContext } from "../../proxy/context.ts";
import { s3Error } from "./errors.ts";
import { s3Fail } from "./fail.ts";

export function listObjects(_ctx: RequestContext, _op: "ListObjects" | "ListObjectsV2", _query: ReadonlyArray<readonly [string, string]>): Response {
  throw s3Fail(s3Error("NotImplemented", "Listing is not available yet."));
}
