/** GetObject / HeadObject of one part (?partNumber): S3 answers it as the range that part covers. */
import type { BucketUpstream } from "../upstream.ts";
import { type OperationContext, partNumberText } from "./common.ts";

export interface ObjectPartArgs {
  method: "GET" | "HEAD";
  key: string;
  partNumber: number;
  /** Request headers to send (the client's validators, never a Range: S3 refuses both). */
  headers?: Record<string, string>;
}

/** GET|HEAD /bucket/key?partNumber=N: 206 with the part's Content-Range and x-amz-mp-parts-count, or S3's error. */
export function getObjectPart(upstream: BucketUpstream, args: ObjectPartArgs, ctx: OperationContext): Promise<Response> {
  return upstream.send({ method: args.method, key: args.key, query: [["partNumber", partNumberText(args.partNumber)]], headers: args.headers, ...ctx });
}
