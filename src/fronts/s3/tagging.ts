/**
 * An object's tags on the S3 front: GetObjectTagging relays the upstream's tag set (`read`);
 * PutObjectTagging and DeleteObjectTagging (`write`, refused on read-only buckets) change it. aws-cli
 * reads the source's tags before a multipart copy and sets them on the copy.
 *
 * A PutObjectTagging body is read (verified like any signed body), checked as S3 checks it (at
 * most 10 tags, keys of 1-128 and values of at most 256 characters of S3's tag alphabet, no key
 * twice, none starting `aws:`) and sent as XML built here with its Content-MD5, never relayed as
 * the client wrote it. A tag change drops the key from the cache layers (a cached answer carries
 * the tag count).
 */
import type { RequestContext } from "../../proxy/context.ts";
import { deleteObjectTagging, getObjectTagging, putObjectTagging } from "../../s3/operations/index.ts";
import { s3Error, type S3Error } from "./errors.ts";
import { s3Fail } from "./fail.ts";
import { relayDocument } from "./operations.ts";
import { emptyAnswer, relayError } from "./relay.ts";
import { callOf, fieldText, malformed, readXmlBody, requestHeaders, single, writeUpstream } from "./writes.ts";
import { purgeIfUnsure, purgeWritten } from "../purge.ts";
import type { XmlElement } from "./xml-reader.ts";

const MAX_TAGS = 10;
const MAX_KEY_CHARS = 128;
const MAX_VALUE_CHARS = 256;
/**
 * S3's tag alphabet (its Tag restrictions): letters, separators, digits and `_ . : / = + - @`.
 * S3 refuses a tag with anything else (`&`, `,`, `<`, a control character) in its key or value,
 * in a tag set and in x-amz-tagging alike; s3rver, which checks none, stores it.
 */
const TAG_TEXT = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

/** GetObjectTagging: the object's tag set, relayed. */
export async function objectTagging(ctx: RequestContext): Promise<Response> {
  const upstream = ctx.bucket!.upstream.primary();
  return relayDocument(ctx, await getObjectTagging(upstream, ctx.key, callOf(ctx)), "Tagging", upstream.bucket);
}

/** A `<Tagging><TagSet><Tag><Key/><Value/></Tag>…` document's tags, checked as S3 checks them (throws S3's error). */
export function tagsOf(doc: XmlElement): Array<[string, string]> {
  // (S3's elements only: a <Tag> inside another element, or beside the TagSet, was skipped and the
  // tag set stored without it, answered 200)
  if (doc.children.some((c) => c.name !== "TagSet")) throw s3Fail(malformed());
  const set = single(doc, "TagSet");
  if (set === undefined) throw s3Fail(malformed());
  const tags: Array<[string, string]> = [];
  for (const tag of set.children) {
    if (tag.name !== "Tag" || tag.children.some((c) => c.name !== "Key" && c.name !== "Value")) throw s3Fail(malformed());
    const key = fieldText(tag, "Key");
    const value = fieldText(tag, "Value");
    if (key === undefined || value === undefined) throw s3Fail(malformed());
    tags.push([key, value]);
  }
  const problem = tagProblem(tags);
  if (problem !== undefined) throw s3Fail(problem);
  return tags;
}

/** What S3 refuses in a tag set (a PutObjectTagging document or an x-amz-tagging header), or undefined. */
export function tagProblem(tags: ReadonlyArray<readonly [string, string]>): S3Error | undefined {
  if (tags.length > MAX_TAGS) return s3Error("InvalidTag", "Object tags cannot be greater than 10");
  const seen = new Set<string>();
  for (const [key, value] of tags) {
    const keyChars = [...key].length;
    if (keyChars === 0 || keyChars > MAX_KEY_CHARS) return s3Error("InvalidTag", `The TagKey you have provided is invalid: it must be 1 to ${MAX_KEY_CHARS} characters`);
    if ([...value].length > MAX_VALUE_CHARS) return s3Error("InvalidTag", `The TagValue you have provided is too long, max ${MAX_VALUE_CHARS}`);
    // (a prefix reserved for AWS's own tags: S3 refuses such a key, s3rver and other stores keep it)
    if (key.startsWith("aws:")) return s3Error("InvalidTag", "Your TagKey cannot be prefixed with aws:", { TagKey: key });
    if (!TAG_TEXT.test(key)) return s3Error("InvalidTag", "The TagKey you have provided is invalid", { TagKey: key });
    if (!TAG_TEXT.test(value)) return s3Error("InvalidTag", "The TagValue you have provided is invalid", { TagKey: key, TagValue: value });
    if (seen.has(key)) return s3Error("InvalidTag", "Cannot provide multiple Tags with the same key");
    seen.add(key);
  }
  return undefined;
}

/** Tags as the x-amz-tagging header carries them ("k1=v1&k2=v2", URL-encoded). */
export function taggingHeader(tags: ReadonlyArray<readonly [string, string]>): string {
  return tags.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
}

export async function putObjectTaggingOp(ctx: RequestContext): Promise<Response> {
  const tags = tagsOf(await readXmlBody(ctx, "Tagging"));
  const upstream = writeUpstream(ctx);
  let res: Response;
  try {
    // (a tag change whose answer is lost may have landed: the cached tag count goes too, see purgeIfUnsure)
    res = await purgeIfUnsure(ctx, [ctx.key], () => putObjectTagging(upstream, ctx.key, tags, callOf(ctx), requestHeaders(ctx)));
  } catch (err) {
    // A key or value XML 1.0 cannot carry (a control character): S3 cannot have received it either.
    if (err instanceof TypeError) throw s3Fail(s3Error("InvalidTag", "A tag key or value contains a character XML cannot carry"));
    throw err;
  }
  if (!res.ok) return relayError(res, upstream.bucket);
  await purgeWritten(ctx, ctx.key);
  return emptyAnswer(ctx, res, 200);
}

export async function deleteObjectTaggingOp(ctx: RequestContext): Promise<Response> {
  const upstream = writeUpstream(ctx);
  const res = await purgeIfUnsure(ctx, [ctx.key], () => deleteObjectTagging(upstream, ctx.key, callOf(ctx), requestHeaders(ctx)));
  if (!res.ok) return relayError(res, upstream.bucket);
  await purgeWritten(ctx, ctx.key);
  return emptyAnswer(ctx, res, 204);
}
