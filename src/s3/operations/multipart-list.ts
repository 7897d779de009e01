/**
 * ListParts and ListMultipartUploads: only S3's paging and filtering parameters pass through. Their
 * answers are listings read whole (sent chunked, as S3 sends them): held inside the attempt
 * (holdAnswer), as the object listings are, so a body cut or stalled after its head is retried.
 */
import type { BucketUpstream } from "../upstream.ts";
import { type OperationContext, query } from "./common.ts";

export interface ListPartsArgs {
  key: string;
  uploadId: string;
  maxParts?: number | string;
  partNumberMarker?: number | string;
}

/** GET /bucket/key?uploadId=ID&max-parts&part-number-marker */
export function listParts(upstream: BucketUpstream, a: ListPartsArgs, ctx: OperationContext): Promise<Response> {
  return upstream.send({
    method: "GET",
    key: a.key,
    query: query([
      ["uploadId", a.uploadId],
      ["max-parts", a.maxParts],
      ["part-number-marker", a.partNumberMarker],
    ]),
    holdAnswer: true,
    ...ctx,
  });
}

export interface ListMultipartUploadsParams {
  prefix?: string;
  delimiter?: string;
  maxUploads?: number | string;
  keyMarker?: string;
  uploadIdMarker?: string;
  encodingType?: string;
}

/** GET /bucket?uploads&prefix&delimiter&max-uploads&key-marker&upload-id-marker&encoding-type */
export function listMultipartUploads(upstream: BucketUpstream, p: ListMultipartUploadsParams, ctx: OperationContext): Promise<Response> {
  return upstream.send({
    method: "GET",
    key: "",
    query: query([
      ["uploads", ""],
      ["prefix", p.prefix],
      ["delimiter", p.delimiter],
      ["max-uploads", p.maxUploads],
      ["key-marker", p.keyMarker],
      ["upload-id-marker", p.uploadIdMarker],
      ["encoding-type", p.encodingType],
    ]),
    holdAnswer: true,
    ...ctx,
  });
}
