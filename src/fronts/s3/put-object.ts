/**
 * PutObject and UploadPart on the S3 front: the body is verified as it streams to the bucket's
 * primary upstream (upload-body.ts), and the upstream's answer is relayed (ETag and checksums as
 * the upstream gave them). Limits, checked before a byte is read: a single PUT and a part are at
 * most 5 GiB (EntityTooLarge); a part number is 1..10000 (InvalidArgument). The 5 MiB minimum of
 * every part but the last is the upstream's to enforce, at CompleteMultipartUpload (EntityTooSmall):
 * only it knows which part is last. A plain body of at most 64 KiB (an aws-chunked one: decoded) is read whole and verified
 * before it is sent (upload-body.ts SMALL_BODY_BYTES): the upstream request can then be retried.
 *
 * S3 answers 200; any 2xx of an S3-compatible upstream (a WebDAV-style 201 or 204) is a success,
 * answered 200 as S3 does (a WebDAV-style store gives no ETag: relayed without one). An UploadPart
 * answered without the ETag S3 always gives is 500 InternalError (noEtagFailure): a multipart
 * client has nothing to name the part by in its Complete.
 *
 * Passed through to the upstream (src/s3/operations put-object.ts / multipart.ts): Content-Type,
 * Content-MD5, x-amz-meta-*, Cache-Control, Content-Disposition, Content-Encoding (without
 * aws-chunked), Content-Language, Expires, the x-amz-checksum-* values, x-amz-sdk-checksum-algorithm,
 * If-Match / If-None-Match, x-amz-tagging. A successful PUT invalidates the key in every cache layer.
 */
import type { RequestContext } from "../../proxy/context.ts";
import { putObject, uploadPart, type PutObjectArgs, type UploadPartArgs } from "../../s3/operations/index.ts";
import type { S3RequestContext } from "./front.ts";
import { emptyAnswer, noEtagFailure, relayError } from "./relay.ts";
import { MAX_UPLOAD_BYTES, prepareUploadBody, readSmallBody, unreadBody, wholeBodyRead, type PreparedBody } from "./upload-body.ts";
import { callOf, requestHeaders, sendBody, uploadPartOf, writeUpstream } from "./writes.ts";
import { purgedIfUnsure, purgeWritten } from "../purge.ts";

export function putObjectOp(ctx: RequestContext): Promise<Response> {
  return upload(ctx, false);
}

export function uploadPartOp(ctx: RequestContext): Promise<Response> {
  return upload(ctx, true);
}

/**
 * PutObject (`part` false) or UploadPart. Two async layers between the handler and the upstream
 * write, this one and sendBody's: a small body's req.bytes() is awaited here and the write's
 * promise handed to sendBody (readingBody, readSmallBody and putObject were three more layers, a
 * promise, a generator and a scope each, and two closures carried the write: per small PUT).
 */
async function upload(ctx: RequestContext, part: boolean): Promise<Response> {
  const p = part ? uploadPartOf(ctx) : undefined;
  const upstream = writeUpstream(ctx);
  const s = (ctx as S3RequestContext).s3!;
  // (a session the plain front's ?presign made for a PUT URL carries that front's limit)
  const max = !part && s.principal?.kind === "session" ? (s.principal.session.maxBodyBytes ?? MAX_UPLOAD_BYTES) : MAX_UPLOAD_BYTES;
  const req = ctx.req;
  let body: PreparedBody = prepareUploadBody(req, s.payload!, max, { small: true, budget: ctx.svc.formBuffers });
  // (a deadline passing while the body is read whole is the client's: see RequestContext.readingBody)
  ctx.readingBody = true;
  try {
    if (body.readWhole === undefined) body = await readSmallBody(req, body);
    else {
      let bytes: Uint8Array;
      try {
        bytes = await req.bytes();
      } catch (err) {
        return unreadBody(req, err);
      }
      wholeBodyRead(body, bytes);
    }
  } finally {
    ctx.readingBody = false;
  }
  const key = ctx.key;
  const a = body.args;
  const headers = requestHeaders(ctx);
  // (every x-amz-* header of a verified request is signed: looked up by the signed names, not
  // found by a pass over the headers; a presigned URL's hoisted ones are not among them)
  const signedHeaders = headers === req.headers ? s.payload!.signedHeaders : undefined;
  // (field by field: a spread of body.args took JavaScriptCore's generic copy, per PutObject)
  if (p !== undefined) {
    const res = await sendBody(ctx, body, uploadPart(upstream, { key, uploadId: p.uploadId, partNumber: p.partNumber, headers, signedHeaders, body: a.body, contentLength: a.contentLength, payloadHash: a.payloadHash, awsChunked: a.awsChunked, checksum: a.checksum } as UploadPartArgs, callOf(ctx)));
    if (!res.ok) return relayError(res, upstream.bucket, "NoSuchUpload");
    if (!res.headers.has("etag")) noEtagFailure(res);
    return emptyAnswer(ctx, res, 200);
  }
  const res = await purgedIfUnsure(ctx, key, sendBody(ctx, body, putObject(upstream, { key, headers, signedHeaders, body: a.body, contentLength: a.contentLength, payloadHash: a.payloadHash, awsChunked: a.awsChunked, checksum: a.checksum } as PutObjectArgs, callOf(ctx))));
  if (!res.ok) return relayError(res, upstream.bucket);
  const purged = purgeWritten(ctx, key);
  if (purged !== undefined) await purged;
  return emptyAnswer(ctx, res, 200);
}
