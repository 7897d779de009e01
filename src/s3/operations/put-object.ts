/**
 * PutObject: the body streamed to S3 with its exact length (or re-framed as aws-chunked with an
 * unsigned trailer, see AwsChunkedBody), or sent as bytes (a small body read whole: replayable).
 * What describes the object passes through: Content-Type, Content-MD5, x-amz-meta-*,
 * Cache-Control, Content-Disposition, Content-Encoding (without aws-chunked), Content-Language,
 * Expires, the x-amz-checksum-* values, x-amz-sdk-checksum-algorithm, and the conditional-write
 * headers If-Match / If-None-Match. Nothing else (no ACLs, no storage
 * class, no encryption settings: those are the bucket owner's, not the client's).
 *
 * S3 answers with the ETag (and any checksum) in headers; the caller relays them as they are.
 */
import type { BucketUpstream, SendRequest } from "../upstream.ts";
import {
  uploadRequest,
  CHECKSUM_VALUE_HEADERS,
  framing,
  type HeaderSource,
  EXPECTED_OWNER,
  OBJECT_HEADERS,
  type OperationContext,
  pickHeaders,
  type UploadBodyArgs,
} from "./common.ts";

const PUT_HEADERS = {
  names: new Set([...OBJECT_HEADERS, "content-md5", ...CHECKSUM_VALUE_HEADERS, "x-amz-sdk-checksum-algorithm", "if-match", "if-none-match", "x-amz-tagging", EXPECTED_OWNER]),
  meta: true,
  contentEncoding: true,
};

export type PutObjectArgs = UploadBodyArgs & {
  key: string;
  /** The client's request headers: only the pass-through set above is used. */
  headers?: HeaderSource;
};

/**
 * PUT /bucket/key with the body. Not async (a layer of its own was one more promise and generator
 * per PutObject): bad arguments still reject, never throw.
 */
export function putObject(upstream: BucketUpstream, args: PutObjectArgs, ctx: OperationContext): Promise<Response> {
  let req: SendRequest;
  try {
    const headers = pickHeaders(args.headers, PUT_HEADERS, args.signedHeaders);
    req = uploadRequest(args.key, undefined, headers, framing(args, headers), args, ctx);
  } catch (err) {
    return Promise.reject(err);
  }
  return upstream.send(req);
}
