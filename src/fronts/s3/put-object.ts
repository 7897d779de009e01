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
import { bodyBytesIn, callOf, requestHeaders, uploadFailure, uploadPartOf, writeUpstream } from "./writes.ts";
import { purgeAfterLoss, purgeUnsureAnswer, purgeWritten } from "../purge.ts";

export function putObjectOp(ctx: RequestContext): Promise<Response> {
  return upload(ctx, false);
}

export function uploadPartOp(ctx: RequestContext): Promise<Response> {
  return upload(ctx, true);
}

/**
 * PutObject (`part` false) or UploadPart, in one async function from the body's read to the
 * answer: a small body's req.bytes() is awaited here, and so is the upstream write (sendBody,
 * readingBody, readSmallBody and putObject were four more layers, a promise, a generator and a
 * scope each, and two closures carried the write: per small PUT). While the body streams,
 * ctx.uploading puts off server.request_timeout (see uploadFailure). A PutObject whose outcome
 * is unsure (no answer, a 5xx) purges the key as purgeIfUnsure does.
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
  const sending =
    p !== undefined
      ? uploadPart(upstream, { key, uploadId: p.uploadId, partNumber: p.partNumber, headers, signedHeaders, body: a.body, contentLength: a.contentLength, payloadHash: a.payloadHash, awsChunked: a.awsChunked, checksum: a.checksum } as UploadPartArgs, callOf(ctx))
      : putObject(upstream, { key, headers, signedHeaders, body: a.body, contentLength: a.contentLength, payloadHash: a.payloadHash, awsChunked: a.awsChunked, checksum: a.checksum } as PutObjectArgs, callOf(ctx));
  ctx.uploading = true;
  let res: Response;
  try {
    res = await sending;
  } catch (err) {
    const failure = await uploadFailure(ctx, body, err);
    if (p === undefined) await purgeAfterLoss(ctx, [key]);
    throw failure;
  }
  ctx.uploading = false;
  ctx.bytesIn = bodyBytesIn(body, res.ok);
  if (!res.ok) {
    if (p === undefined) await purgeUnsureAnswer(ctx, [key], res.status);
    return relayError(res, upstream.bucket, p === undefined ? undefined : "NoSuchUpload");
  }
  if (p !== undefined) {
    if (!res.headers.has("etag")) noEtagFailure(res);
  } else {
    const purged = purgeWritten(ctx, key);
    if (purged !== undefined) await purged;
  }
  return emptyAnswer(ctx, res, 200);
}
