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

/** The GetObjectAttributes request headers passed on (which attributes; the parts' page). */
const ATTRIBUTE_HEADERS = ["x-amz-object-attributes", "x-amz-max-parts", "x-amz-part-number-marker"] as const;

/** GET /bucket/key?attributes[&versionId=V]: S3's GetObjectAttributesResponse or its error. */
export function getObjectAttributes(upstream: BucketUpstream, args: { key: string; versionId?: string; headers: Headers }, ctx: OperationContext): Promise<Response> {
  const headers: Record<string, string> = {};
  for (const name of ATTRIBUTE_HEADERS) {
    const v = args.headers.get(name);
    if (v !== null) headers[name] = v;
  }
  const query: Array<[string, string]> = [["attributes", ""]];
  if (args.versionId !== undefined) query.push(["versionId", args.versionId]);
  // (its document is read whole: held inside the attempt, as the listings are)
  return upstream.send({ method: "GET", key: args.key, query, headers, holdAnswer: true, ...ctx });
}
