/**
 * CopyObject and UploadPartCopy on one S3 service: S3 copies server-side, no byte passes through
 * the proxy. x-amz-copy-source is built here from an upstream bucket name (the destination's own
 * unless the caller names the source proxy bucket's, sourceBucket) and the source key
 * (URL-encoded, "/" kept), so a client can never name an upstream bucket itself.
 *
 * Passed through: x-amz-metadata-directive (COPY | REPLACE), the x-amz-copy-source-if-* conditions,
 * the destination's conditional-write headers If-Match / If-None-Match (a copy that must not
 * overwrite, or only overwrite a known version), the object headers and x-amz-meta-* (S3 uses them with REPLACE), x-amz-checksum-algorithm,
 * x-amz-tagging-directive and x-amz-tagging (the copy's tags: the source's by default).
 * S3 may answer 200 with an <Error> body (a failure after the head went out): the caller reads the
 * body before it calls it a success.
 */
import { uriEncode } from "../sigv4.ts";
import type { BucketUpstream } from "../upstream.ts";
import { EXPECTED_OWNER, type HeaderSource, OBJECT_HEADERS, type OperationContext, partNumberText, pickHeaders, SOURCE_EXPECTED_OWNER } from "./common.ts";

/** The copy source's conditions (CopyObject and UploadPartCopy), as S3 names them. */
export const COPY_SOURCE_CONDITIONS = ["x-amz-copy-source-if-match", "x-amz-copy-source-if-none-match", "x-amz-copy-source-if-modified-since", "x-amz-copy-source-if-unmodified-since"] as const;

const COPY_HEADERS = {
  names: new Set([
    ...OBJECT_HEADERS,
    "x-amz-metadata-directive",
    ...COPY_SOURCE_CONDITIONS,
    "if-match",
    "if-none-match",
    "x-amz-checksum-algorithm",
    "x-amz-tagging-directive",
    "x-amz-tagging",
    EXPECTED_OWNER,
    SOURCE_EXPECTED_OWNER,
  ]),
  meta: true,
  contentEncoding: true,
};

export interface CopyObjectArgs {
  /** The destination key. */
  key: string;
  /** The source key (decoded). */
  sourceKey: string;
  /** The source's upstream bucket, on the destination's service (default: the destination's own). */
  sourceBucket?: string;
  /** A version of the source (versioned buckets). */
  sourceVersionId?: string;
  /** The client's request headers: only the pass-through set above is used (its x-amz-copy-source is not). */
  headers?: HeaderSource;
}

/** "/bucket/key" URL-encoded, with "?versionId=" when given. */
export function copySource(bucket: string, key: string, versionId?: string): string {
  const source = `/${uriEncode(bucket, true)}/${uriEncode(key, false)}`;
  return versionId === undefined ? source : `${source}?versionId=${uriEncode(versionId, true)}`;
}

export interface UploadPartCopyArgs {
  /** The destination key (the multipart upload's). */
  key: string;
  uploadId: string;
  partNumber: number;
  /** The source key (decoded). */
  sourceKey: string;
  /** The source's upstream bucket, on the destination's service (default: the destination's own). */
  sourceBucket?: string;
  sourceVersionId?: string;
  /** The client's request headers: x-amz-copy-source-range and the x-amz-copy-source-if-* conditions are used. */
  headers?: HeaderSource;
}

const PART_COPY_HEADERS = {
  names: new Set([
    "x-amz-copy-source-range",
    ...COPY_SOURCE_CONDITIONS,
    EXPECTED_OWNER,
    SOURCE_EXPECTED_OWNER,
  ]),
  meta: false,
  contentEncoding: false,
};

/** PUT /bucket/key?partNumber&uploadId with x-amz-copy-source: S3's answer is a <CopyPartResult> (ETag, LastModified, checksum). */
export function uploadPartCopy(upstream: BucketUpstream, args: UploadPartCopyArgs, ctx: OperationContext): Promise<Response> {
  const headers = pickHeaders(args.headers, PART_COPY_HEADERS);
  headers["x-amz-copy-source"] = copySource(args.sourceBucket ?? upstream.bucket, args.sourceKey, args.sourceVersionId);
  const query: Array<[string, string]> = [["partNumber", partNumberText(args.partNumber)], ["uploadId", args.uploadId]];
  return upstream.send({ method: "PUT", key: args.key, query, headers, ...ctx });
}

/** PUT /bucket/key with x-amz-copy-source: S3's answer is a <CopyObjectResult> (ETag, LastModified). */
export function copyObject(upstream: BucketUpstream, args: CopyObjectArgs, ctx: OperationContext): Promise<Response> {
  const headers = pickHeaders(args.headers, COPY_HEADERS);
  headers["x-amz-copy-source"] = copySource(args.sourceBucket ?? upstream.bucket, args.sourceKey, args.sourceVersionId);
  return upstream.send({ method: "PUT", key: args.key, headers, ...ctx });
}
