/**
 * The upstream side of every S3 operation the S3 front and the uploads need, one small module per
 * operation, each a function (upstream, args, ctx) → S3's Response, on BucketUpstream.send:
 *   list-objects.ts    listObjectsV1, listObjectsV2, listObjectVersions (+ their parameters from a client's query)
 *   head-bucket.ts     headBucket
 *   configuration.ts   getBucketVersioning, getBucketEncryption, getObjectTagging, putObjectTagging, deleteObjectTagging
 *   put-object.ts      putObject (streamed; plain or aws-chunked with an unsigned trailer)
 *   multipart.ts       createMultipartUpload, uploadPart, completeMultipartUpload, abortMultipartUpload
 *   multipart-list.ts  listParts, listMultipartUploads
 *   object-direct.ts   getObjectDirect (GetObject / HeadObject ?partNumber, ?versionId), getObjectAttributes
 *   delete-objects.ts  deleteObject, deleteObjects (XML and Content-MD5 built here; versions too)
 *   copy-object.ts     copyObject, uploadPartCopy (within the bucket's upstream bucket)
 *   common.ts          context, header allowlists, body framing, XML text
 *
 * Contract (BucketUpstream.send's): resolves with S3's final response for every status, body
 * unread; throws ProxyError only without an HTTP answer, RequestBodyError when the request body
 * failed (nothing stored), the abort reason when ctx.signal aborted, TypeError on bad arguments.
 * With replicas, writes go to `bucket.upstream.primary()`.
 */
export * from "./configuration.ts";
export * from "./common.ts";
export * from "./copy-object.ts";
export * from "./delete-objects.ts";
export * from "./head-bucket.ts";
export * from "./list-objects.ts";
export * from "./multipart.ts";
export * from "./multipart-list.ts";
export * from "./object-direct.ts";
export * from "./put-object.ts";
