/**
 * Bucket and object configuration the S3 front relays: GetBucketVersioning (the upstream bucket's
 * versioning state), GetBucketEncryption (its default encryption rule) and an object's tag set (Get/Put/DeleteObjectTagging; aws-cli reads the
 * source's tags before a multipart copy and sets them on the copy). The Tagging XML is built here
 * from the tags, never relayed from the client, with the Content-MD5 S3 requires. The documents
 * read are read whole: held inside their attempt (holdAnswer), as the listings are, so a body cut
 * or stalled after its head is retried (it was a 500).
 */
import type { BucketUpstream } from "../upstream.ts";
import { type HeaderSource, type OperationContext, OWNER_HEADERS, pickHeaders, S3_XMLNS, xmlText } from "./common.ts";

/** GET /bucket?versioning: S3's VersioningConfiguration document, or its error. */
export function getBucketVersioning(upstream: BucketUpstream, ctx: OperationContext): Promise<Response> {
  return upstream.send({ method: "GET", key: "", query: [["versioning", ""]], holdAnswer: true, ...ctx });
}

/** GET /bucket?encryption: S3's ServerSideEncryptionConfiguration document, or its error. */
export function getBucketEncryption(upstream: BucketUpstream, ctx: OperationContext): Promise<Response> {
  return upstream.send({ method: "GET", key: "", query: [["encryption", ""]], holdAnswer: true, ...ctx });
}

/** The Tagging XML for `tags`, in order. Throws TypeError for a key or value XML cannot carry. */
function taggingXml(tags: ReadonlyArray<readonly [string, string]>): string {
  let xml = `<?xml version="1.0" encoding="UTF-8"?><Tagging xmlns="${S3_XMLNS}"><TagSet>`;
  for (const [k, v] of tags) xml += `<Tag><Key>${xmlText(k, "a tag key")}</Key><Value>${xmlText(v, "a tag value")}</Value></Tag>`;
  return `${xml}</TagSet></Tagging>`;
}

/** PUT /bucket/key?tagging: the object's tag set replaced (S3 answers 200, no body). */
export function putObjectTagging(upstream: BucketUpstream, key: string, tags: ReadonlyArray<readonly [string, string]>, ctx: OperationContext, passed?: HeaderSource): Promise<Response> {
  const body = new TextEncoder().encode(taggingXml(tags));
  const headers = { ...pickHeaders(passed, OWNER_HEADERS), "content-type": "application/xml", "content-md5": new Bun.CryptoHasher("md5").update(body).digest("base64") };
  return upstream.send({ method: "PUT", key, query: [["tagging", ""]], headers, body, emptyAnswer: true, ...ctx });
}

/** DELETE /bucket/key?tagging: the object's tags removed (S3 answers 204). */
export function deleteObjectTagging(upstream: BucketUpstream, key: string, ctx: OperationContext, passed?: HeaderSource): Promise<Response> {
  return upstream.send({ method: "DELETE", key, query: [["tagging", ""]], headers: pickHeaders(passed, OWNER_HEADERS), emptyAnswer: true, ...ctx });
}

/** GET /bucket/key?tagging: S3's Tagging document, or its error. */
export function getObjectTagging(upstream: BucketUpstream, key: string, ctx: OperationContext, versionId?: string): Promise<Response> {
  const query: Array<[string, string]> = [["tagging", ""]];
  if (versionId !== undefined) query.push(["versionId", versionId]);
  return upstream.send({ method: "GET", key, query, holdAnswer: true, ...ctx });
}
