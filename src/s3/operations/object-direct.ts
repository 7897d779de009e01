/**
 * GetObject / HeadObject of one part (?partNumber: S3 answers the range that part covers) and of
 * one version (?versionId), or both: read straight from the upstream, never through the cache.
 */
import type { BucketUpstream } from "../upstream.ts";
import { type OperationContext, partNumberText } from "./common.ts";

export interface ObjectDirectArgs {
  method: "GET" | "HEAD";
  key: string;
  partNumber?: number;
  versionId?: string;
  /** Request headers to send (validators; a Range only without partNumber: S3 refuses both). */
  headers?: Record<string, string>;
}

/** GET|HEAD /bucket/key?partNumber=N&versionId=V: S3's answer (206 with x-amz-mp-parts-count for a part) or its error. */
export function getObjectDirect(upstream: BucketUpstream, args: ObjectDirectArgs, ctx: OperationContext): Promise<Response> {
  const query: Array<[string, string]> = [];
  if (args.partNumber !== undefined) query.push(["partNumber", partNumberText(args.partNumber)]);
  if (args.versionId !== undefined) query.push(["versionId", args.versionId]);
  return upstream.send({ method: args.method, key: args.key, query, headers: args.headers, ...ctx });
}
