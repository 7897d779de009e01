/**
 * Multipart uploads: Create, UploadPart, Complete, Abort. Upload ids pass through untouched, so
 * the proxy keeps no state and any replica can carry any part.
 *
 * Checksums: Create forwards x-amz-checksum-algorithm and x-amz-checksum-type; UploadPart its
 * x-amz-checksum-* value (or an aws-chunked trailer) and Content-MD5; Complete the full-object
 * x-amz-checksum-* value, x-amz-checksum-type and x-amz-mp-object-size, and each part's checksum in
 * the XML. Without them S3 answers InvalidPart for an upload created with a checksum algorithm.
 */
import type { BucketUpstream } from "../upstream.ts";
import {
  uploadRequest,
  CHECKSUM_VALUE_HEADERS,
  framing,
  type HeaderSource,
  EXPECTED_OWNER,
  OBJECT_HEADERS,
  type OperationContext,
  OWNER_HEADERS,
  partNumberText,
  pickHeaders,
  S3_XMLNS,
  type UploadBodyArgs,
  xmlText,
} from "./common.ts";

const CREATE_HEADERS = {
  names: new Set([...OBJECT_HEADERS, "x-amz-checksum-algorithm", "x-amz-checksum-type", "x-amz-tagging", EXPECTED_OWNER]),
  meta: true,
  contentEncoding: true,
};
const PART_HEADERS = { names: new Set(["content-md5", ...CHECKSUM_VALUE_HEADERS, "x-amz-sdk-checksum-algorithm", EXPECTED_OWNER]) };
const COMPLETE_HEADERS = { names: new Set([...CHECKSUM_VALUE_HEADERS, "x-amz-checksum-type", "x-amz-mp-object-size", "if-match", "if-none-match", EXPECTED_OWNER]) };

/** POST /bucket/key?uploads: S3's XML answer carries the UploadId. */
export function createMultipartUpload(upstream: BucketUpstream, args: { key: string; headers?: HeaderSource }, ctx: OperationContext): Promise<Response> {
  return upstream.send({ method: "POST", key: args.key, query: [["uploads", ""]], headers: pickHeaders(args.headers, CREATE_HEADERS), ...ctx });
}

export type UploadPartArgs = UploadBodyArgs & {
  key: string;
  uploadId: string;
  partNumber: number;
  /** The client's request headers: Content-MD5 and the checksum headers are used. */
  headers?: HeaderSource;
};

/** PUT /bucket/key?partNumber=N&uploadId=ID with the part's body; S3 answers with its ETag. */
export async function uploadPart(upstream: BucketUpstream, args: UploadPartArgs, ctx: OperationContext): Promise<Response> {
  const headers = pickHeaders(args.headers, PART_HEADERS, args.signedHeaders);
  const payloadHash = framing(args, headers);
  const q: Array<[string, string]> = [["partNumber", partNumberText(args.partNumber)], ["uploadId", args.uploadId]];
  return upstream.send(uploadRequest(args.key, q, headers, payloadHash, args, ctx));
}

export interface CompletedPart {
  partNumber: number;
  /** As UploadPart answered it (quoted). */
  etag: string;
  checksumCRC32?: string;
  checksumCRC32C?: string;
  checksumCRC64NVME?: string;
  checksumSHA1?: string;
  checksumSHA256?: string;
}

/** A part's checksum elements in S3's XML (in S3's order), each with its CompletedPart field. */
export const PART_CHECKSUMS = [
  ["ChecksumCRC32", "checksumCRC32"],
  ["ChecksumCRC32C", "checksumCRC32C"],
  ["ChecksumCRC64NVME", "checksumCRC64NVME"],
  ["ChecksumSHA1", "checksumSHA1"],
  ["ChecksumSHA256", "checksumSHA256"],
] as const;

/** The CompleteMultipartUpload XML for `parts`, in the order given (S3 checks the order). */
function completeMultipartUploadXml(parts: readonly CompletedPart[]): string {
  let xml = `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload xmlns="${S3_XMLNS}">`;
  for (const p of parts) {
    xml += `<Part><PartNumber>${partNumberText(p.partNumber)}</PartNumber><ETag>${xmlText(p.etag, "an ETag")}</ETag>`;
    for (const [element, field] of PART_CHECKSUMS) {
      const value = p[field];
      if (value !== undefined) xml += `<${element}>${xmlText(value, "a checksum")}</${element}>`;
    }
    xml += "</Part>";
  }
  return `${xml}</CompleteMultipartUpload>`;
}

/**
 * POST /bucket/key?uploadId=ID with the parts list. S3 may answer 200 and still report an error in
 * the body (<Error> instead of <CompleteMultipartUploadResult>, for a failure after the head went
 * out): the caller reads the body before it calls it a success.
 */
export async function completeMultipartUpload(
  upstream: BucketUpstream,
  args: { key: string; uploadId: string; parts: readonly CompletedPart[]; headers?: HeaderSource },
  ctx: OperationContext,
): Promise<Response> {
  const body = new TextEncoder().encode(completeMultipartUploadXml(args.parts));
  const headers = pickHeaders(args.headers, COMPLETE_HEADERS);
  headers["content-type"] = "application/xml";
  return upstream.send({ method: "POST", key: args.key, query: [["uploadId", args.uploadId]], headers, body, ...ctx });
}

/** DELETE /bucket/key?uploadId=ID: 204; the parts are discarded. */
export function abortMultipartUpload(upstream: BucketUpstream, args: { key: string; uploadId: string; headers?: HeaderSource }, ctx: OperationContext): Promise<Response> {
  return upstream.send({ method: "DELETE", key: args.key, query: [["uploadId", args.uploadId]], headers: pickHeaders(args.headers, OWNER_HEADERS), emptyAnswer: true, ...ctx });
}
