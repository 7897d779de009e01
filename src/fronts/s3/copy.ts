/**
 * CopyObject and UploadPartCopy on the S3 front. The destination needs `write` (s3:PutObject,
 * checked by the shared phases); the source needs `read` and its bucket authorizer's s3:GetObject
 * on the source key, checked here, as S3 checks both, and its bucket's ip_filter.
 *
 * x-amz-copy-source names a proxy bucket (`/bucket/key`, `bucket/key`, URL-encoded, a raw `+` a
 * space, optional `?versionId=`): the request's own, or another one. Within one S3 service reached with one
 * identity (the same bucket, or two proxy buckets whose primaries share endpoint, region and
 * keys: sameUpstreamAccount) the upstream copies server-side, no byte through the proxy.
 * Otherwise the two buckets may live on different endpoints with different credentials, where no
 * server-side copy exists: the proxy streams the source into the destination (copy-streamed.ts).
 */
import { quotedEtag, strongEtag } from "../../http/conditional.ts";
import type { RequestContext } from "../../proxy/context.ts";
import { addressRefused } from "../../proxy/phases/admit.ts";
import { mayOnSource } from "../../proxy/phases/authorize.ts";
import { COPY_SOURCE_CONDITIONS, copyObject, getObjectDirect, getObjectTagging, OBJECT_HEADERS, pickHeaders, uploadPartCopy } from "../../s3/operations/index.ts";
import { s3Error, type S3Error } from "./errors.ts";
import { isRefusal, s3ErrorOf, s3Fail } from "./fail.ts";
import { ProxyError } from "../../errors.ts";
import type { S3RequestContext } from "./front.ts";
import { mayAccess } from "./permissions.ts";
import { MAX_RESULT_BODY, readUpstreamCapped, relayError, resultFail, tryParse, xmlAnswer } from "./relay.ts";
import { keyRefusal, MAX_KEY_BYTES } from "./route.ts";
import { versionIdProblem } from "./operations.ts";
import { el, S3_XMLNS, XML_DECL } from "./xml.ts";
import { configuredBucket } from "./route.ts";
import { sameUpstreamAccount, storesOf } from "../../config/writes.ts";
import { copyObjectStreamed, MAX_COPY_BYTES, type ForeignSource, type StreamedResult, uploadPartCopyStreamed } from "./copy-streamed.ts";
import { childText } from "./xml-reader.ts";
import { callOf, readingResult, requestHeaders, unkeptSourceKey, uploadPartOf, writeUpstream } from "./writes.ts";
import { purgeWritten } from "../purge.ts";
import { cutText } from "../../util/text.ts";

export interface CopySource {
  bucket: string;
  key: string;
  versionId?: string;
}

const BAD_SOURCE = () => s3Error("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey", { ArgumentName: "x-amz-copy-source" });

/** Parses x-amz-copy-source as S3 does; an S3Error for one that names no bucket and key. */
export function parseCopySource(raw: string): CopySource | S3Error {
  let v = raw.trim();
  let versionId: string | undefined;
  const q = v.indexOf("?");
  if (q >= 0) {
    // Only `versionId=<id>`, percent-decoded as S3 reads it: a "+" is a plus (S3's version ids
    // have them, and botocore appends the id without encoding it), never a space.
    const m = /^versionId=([^&]*)$/.exec(v.slice(q + 1));
    if (m === null) return BAD_SOURCE();
    try {
      versionId = decodeURIComponent(m[1]!);
    } catch {
      return BAD_SOURCE();
    }
    // (S3's own words for an empty or overlong id, as for a GET's ?versionId: the source was named)
    const problem = versionIdProblem(versionId);
    if (problem !== undefined) return s3Error("InvalidArgument", problem, { ArgumentName: "x-amz-copy-source" });
    v = v.slice(0, q);
  }
  let decoded: string;
  try {
    // A raw "+" in the bucket and key is a space, as S3 reads it (an unencoded "k+1" names "k 1":
    // aws-sdk-js#1821, aws-sdk-php#379); a plus is "%2B", as every SDK encodes it.
    decoded = decodeURIComponent(v.includes("+") ? v.replaceAll("+", " ") : v);
  } catch {
    return BAD_SOURCE();
  }
  if (decoded.startsWith("/")) decoded = decoded.slice(1);
  const slash = decoded.indexOf("/");
  if (slash <= 0 || slash === decoded.length - 1) return BAD_SOURCE();
  const out: CopySource = { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1) };
  if (versionId !== undefined) out.versionId = versionId;
  return out;
}

/**
 * Longest x-amz-copy-source logged. A value that parses is no shorter: the label is written before
 * the key's 1024 bytes are checked, also for a request nobody authenticated, and a header near the
 * head limit (64 KiB) made every such request write that much into the log and the audit trail.
 */
const MAX_LOGGED_SOURCE = 2048;

/**
 * x-amz-copy-source as the access log and the audit trail record it: "bucket/key" decoded (as the
 * path is logged), with "?versionId=" when one was named; a value that does not parse is logged as
 * it came. Either is cut at 2 KiB. Undefined without the header.
 */
export function copySourceLabel(raw: string | null): string | undefined {
  if (raw === null) return undefined;
  const src = parseCopySource(raw);
  // (one that does not parse as written, without the leading "/" a parsed one's label has not either)
  const label = "code" in src ? (raw.startsWith("/") ? raw.slice(1) : raw) : src.versionId === undefined ? `${src.bucket}/${src.key}` : `${src.bucket}/${src.key}?versionId=${src.versionId}`;
  return cutText(label, MAX_LOGGED_SOURCE);
}

/**
 * The copy source of a CopyObject or UploadPartCopy (`from`: its proxy bucket), once it is known
 * to be readable by the request's principal: grants, the source bucket's authorizer (s3:GetObject
 * on the key) and its ip_filter. `copiesTags`: a CopyObject whose tagging directive is COPY (the
 * source's tags become the copy's): the authorizer is asked s3:GetObjectTagging too, as S3 needs
 * it to copy tags; a refusal is kept (tagsDenied) and the copy refused if the source has tags.
 */
async function readableSource(ctx: RequestContext, copiesTags = false): Promise<ForeignSource> {
  const parsed = parseCopySource(requestHeaders(ctx).get("x-amz-copy-source") ?? "");
  if ("code" in parsed) throw s3Fail(parsed);
  const bucket = ctx.bucket!;
  const from = parsed.bucket === bucket.name ? bucket : configuredBucket(ctx.rt, parsed.bucket);
  if (from === undefined) throw s3Fail(s3Error("NoSuchBucket", undefined, { BucketName: parsed.bucket.slice(0, 255) }));
  if (Buffer.byteLength(parsed.key) > MAX_KEY_BYTES) throw s3Fail(s3Error("KeyTooLongError"));
  const refusal = keyRefusal(parsed.key);
  if (refusal !== undefined) throw s3Fail(s3Error("InvalidArgument", refusal, { ArgumentName: "x-amz-copy-source" }));
  // (the source's ip_filter, as admission applied the destination's: a copy reads it for the client)
  if (from !== bucket && addressRefused(ctx, from)) throw s3Fail(s3Error("AccessDenied"));

  // The source is read: the identity needs read, and the authorizer's s3:GetObject (of a
  // version: s3:GetObjectVersion, as in S3) on it.
  const s = (ctx as S3RequestContext).s3!;
  const action = parsed.versionId === undefined ? "s3:GetObject" : "s3:GetObjectVersion";
  if (!mayAccess(ctx.rt, s.principal, from, action)) throw s3Fail(s3Error("AccessDenied"));
  if (!(await mayOnSource(ctx, from, parsed.key, action))) throw s3Fail(s3Error("AccessDenied"));
  if (copiesTags && !(await mayOnSource(ctx, from, parsed.key, "s3:GetObjectTagging"))) return { ...parsed, from, tagsDenied: true };
  return { ...parsed, from };
}

/**
 * A server-side copy of a source whose tags the caller may not read (tagsDenied): refused when the
 * source has tags, since the upstream would copy them. GetObjectTagging tells (a HEAD does not:
 * S3 sends x-amz-tagging-count with a GET only). Fails closed: an answer that does not show an
 * empty tag set refuses the copy, except a missing source (the copy's own NoSuchKey) and a store
 * without tagging (501: it keeps no tags to copy).
 */
async function refuseDeniedTags(ctx: RequestContext, src: ForeignSource): Promise<void> {
  if (src.tagsDenied !== true) return;
  const up = src.from.upstream.primary();
  const res = await getObjectTagging(up, src.key, callOf(ctx), src.versionId);
  if (res.status === 404 || res.status === 501) {
    await res.body?.cancel().catch(() => {});
    return;
  }
  const doc = res.status === 200 ? tryParse(await readUpstreamCapped(res, MAX_RESULT_BODY).catch(() => undefined)) : undefined;
  if (res.status !== 200) await res.body?.cancel().catch(() => {});
  const set = doc?.name === "Tagging" ? doc.children.find((c) => c.name === "TagSet") : undefined;
  if (set === undefined || set.children.some((c) => c.name === "Tag")) throw s3Fail(s3Error("AccessDenied"));
}

/** Whether the upstream can copy from the source server-side: one bucket, or one service and identity. */
function serverSide(ctx: RequestContext, src: ForeignSource): boolean {
  return src.from === ctx.bucket || sameUpstreamAccount(src.from.cfg, ctx.bucket!.cfg);
}

export async function copyObjectOp(ctx: RequestContext): Promise<Response> {
  const headers = requestHeaders(ctx);
  for (const name of DIRECTIVES) {
    const v = headers.get(name);
    // (S3's values, case-sensitive; another would reach an upstream that may read it otherwise)
    if (v !== null && v !== "COPY" && v !== "REPLACE") {
      throw s3Fail(s3Error("InvalidArgument", `Unknown ${name === DIRECTIVES[0] ? "metadata" : "tagging"} directive.`, { ArgumentName: name, ArgumentValue: v.slice(0, 64) }));
    }
  }
  const src = await readableSource(ctx, (headers.get("x-amz-tagging-directive") ?? "COPY") === "COPY");
  if (onlyDroppedChanges(ctx, src, headers)) {
    throw s3Fail(s3Error("InvalidRequest", "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes. (This proxy does not pass x-amz-storage-class or x-amz-server-side-encryption to its upstream: an object's storage class and encryption are the bucket's; nor x-amz-website-redirect-location: no website redirect is stored.)"));
  }
  let answer: Response;
  try {
    const alias = aliasedSelf(ctx, src, headers);
    if (alias || serverSide(ctx, src)) {
      await refuseDeniedTags(ctx, src);
      const upstream = writeUpstream(ctx);
      const sent = alias ? await keptAsReplaced(ctx, upstream, headers) : requestHeaders(ctx);
      const res = await copyObject(upstream, { key: ctx.key, sourceKey: src.key, sourceBucket: src.from.upstream.primary().bucket, sourceVersionId: src.versionId, headers: sent }, callOf(ctx));
      answer = await copyResult(ctx, res, "CopyObjectResult", [upstream.bucket, src.from.upstream.primary().bucket]);
    } else answer = streamedAnswer(ctx, await copyObjectStreamed(ctx, src), "CopyObjectResult");
  } catch (err) {
    // (the upstream may have copied all the same when its answer was lost, see purgeIfUnsure; a
    // refusal left the destination as it was, and its cached copy with it)
    if (!isRefusal(err, ctx.timing.attempts)) await purgeWritten(ctx, ctx.key);
    return hideMissingSource(ctx, src, err);
  }
  await purgeWritten(ctx, ctx.key);
  return answer;
}

/**
 * A copy between two proxy buckets on one store, the same key, no version, the metadata kept: the
 * client named two buckets, a copy S3 answers 200 (a new object with the source's bytes, metadata
 * and tags), but the upstream is asked to copy an object onto itself unchanged and refuses it (400
 * InvalidRequest). Sent server-side (one store: the destination's credentials copy within it)
 * as the self-copy S3 accepts (keptAsReplaced).
 */
function aliasedSelf(ctx: RequestContext, src: ForeignSource, headers: Headers): boolean {
  if (src.from === ctx.bucket || src.key !== ctx.key || src.versionId !== undefined) return false;
  if ((headers.get("x-amz-metadata-directive") ?? "COPY") === "REPLACE") return false;
  return storesOf(src.from.cfg)[0] === storesOf(ctx.bucket!.cfg)[0];
}

/**
 * The request's headers with x-amz-metadata-directive REPLACE and the object's own metadata (a
 * HEAD's Content-Type, Cache-Control, Content-Disposition, Content-Encoding, Content-Language,
 * Expires, x-amz-meta-*), so the upstream rewrites the object as it is (tags: the directive's, as
 * sent). Without a source condition of the client's the copy is pinned to the ETag the HEAD saw (strong: strongEtag)
 * (an object replaced in between is not given the old one's metadata). A HEAD that fails leaves
 * the request as it was: the upstream answers the copy (a missing source's NoSuchKey).
 */
async function keptAsReplaced(ctx: RequestContext, upstream: ReturnType<typeof writeUpstream>, headers: Headers): Promise<Headers> {
  const res = await getObjectDirect(upstream, { method: "HEAD", key: ctx.key }, callOf(ctx));
  await res.body?.cancel().catch(() => {});
  if (res.status !== 200) return headers;
  const out = new Headers(headers);
  for (const name of [...out.keys()]) if (OBJECT_HEADERS.includes(name) || name === "content-encoding" || name.startsWith("x-amz-meta-")) out.delete(name);
  for (const [name, v] of Object.entries(pickHeaders(res.headers, { names: new Set(OBJECT_HEADERS), meta: true, contentEncoding: true }))) out.set(name, v);
  out.set("x-amz-metadata-directive", "REPLACE");
  const etag = res.headers.get("etag");
  if (etag !== null && !hasCopySourceCondition(headers)) out.set("x-amz-copy-source-if-match", strongEtag(etag));
  return out;
}

/**
 * A copy of an object onto itself whose only changes are settings the proxy drops (storage class,
 * x-amz-server-side-encryption: AES256, x-amz-website-redirect-location): S3 would change them, but
 * the upstream is sent a self-copy that changes nothing and refuses it with a message naming them
 * as changed, which misleads (`aws s3 cp s3://b/k s3://b/k --storage-class STANDARD_IA`, `rclone
 * settier`, `aws s3api copy-object --website-redirect-location`). Refused here, saying what was dropped.
 */
function onlyDroppedChanges(ctx: RequestContext, src: ForeignSource, headers: Headers): boolean {
  if (src.from !== ctx.bucket || src.key !== ctx.key || src.versionId !== undefined) return false;
  if (!DROPPED_SETTINGS.some((name) => headers.has(name))) return false;
  for (const name of DIRECTIVES) if ((headers.get(name) ?? "COPY") === "REPLACE") return false;
  return true;
}

/** A copy's settings the proxy does not pass to its upstream (see onlyDroppedChanges). */
const DROPPED_SETTINGS = ["x-amz-storage-class", "x-amz-server-side-encryption", "x-amz-website-redirect-location"];

/**
 * Rethrows a copy's failure; a NoSuchKey becomes AccessDenied unless the caller may list the
 * source bucket (its grant, then its authorizer's s3:ListBucket with the source key as the
 * prefix), as S3 answers a read of a missing key: without it, a copy told which keys exist where
 * a GetObject of the same key is refused. (A NoSuchKey about the destination, an If-Match on a
 * missing one, is refused the same way to such a caller: the answer cannot say which key it names.)
 */
async function hideMissingSource(ctx: RequestContext, src: ForeignSource, err: unknown): Promise<never> {
  const e = err instanceof ProxyError ? s3ErrorOf(err) : undefined;
  if (e?.code !== "NoSuchKey") throw err;
  const from = src.from;
  const principal = (ctx as S3RequestContext).s3!.principal;
  // (failing closed, as a read's missing key (front.ts missingKey): an authorizer that cannot answer does not say so)
  const mayList = mayAccess(ctx.rt, principal, from, "s3:ListBucket") && (await mayOnSource(ctx, from, src.key, "s3:ListBucket", true).catch(() => false));
  // (the upstream's request id kept: the access log still names the refusal it came from)
  if (!mayList) throw s3Fail(s3Error("AccessDenied"), ((err as ProxyError).cause as { s3RequestId?: string } | undefined)?.s3RequestId);
  // S3's NoSuchKey names the missing source's key (as the client named it). Not with an If-Match,
  // whose NoSuchKey may be the destination's.
  if (e.details?.Key === undefined && !requestHeaders(ctx).has("if-match")) e.details = { ...e.details, Key: src.key };
  throw err;
}

const DIRECTIVES = ["x-amz-metadata-directive", "x-amz-tagging-directive"] as const;

/** S3's form of x-amz-copy-source-range: both offsets, first <= last (checked against the source's size upstream). */
const COPY_RANGE = /^bytes=(\d{1,15})-(\d{1,15})$/;

/**
 * UploadPartCopy: a part of a multipart upload copied server-side from an object of the same
 * bucket (aws s3 cp/mv between two keys of a bucket does this for objects above its multipart
 * threshold). The destination needs `write`, the source `read`, as for CopyObject.
 */
export async function uploadPartCopyOp(ctx: RequestContext): Promise<Response> {
  const { partNumber, uploadId } = uploadPartOf(ctx);
  const range = requestHeaders(ctx).get("x-amz-copy-source-range");
  if (range !== null) {
    const m = COPY_RANGE.exec(range.trim());
    if (m === null || Number(m[1]) > Number(m[2])) {
      throw s3Fail(s3Error("InvalidArgument", "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy", { ArgumentName: "x-amz-copy-source-range", ArgumentValue: range.slice(0, 64) }));
    }
    // A part is at most 5 GiB: a longer range went upstream as it was (a store that copies it
    // anyway held the request until s3.timeout), where S3 refuses it.
    if (Number(m[2]) - Number(m[1]) + 1 > MAX_COPY_BYTES) {
      throw s3Fail(s3Error("InvalidRequest", `The specified copy source is larger than the maximum allowable size for a copy source: ${MAX_COPY_BYTES}`));
    }
  }
  const refused = unkeptSourceKey(requestHeaders(ctx));
  if (refused !== undefined) throw s3Fail(refused);
  const src = await readableSource(ctx);
  const pinned = range !== null ? await pinToCached(ctx, src) : false;
  try {
    if (!serverSide(ctx, src)) {
      const r = range === null ? undefined : COPY_RANGE.exec(range.trim())!;
      const part = { uploadId, partNumber, range: r === undefined ? undefined : { first: Number(r[1]), last: Number(r[2]) } };
      return streamedAnswer(ctx, await uploadPartCopyStreamed(ctx, src, part), "CopyPartResult");
    }
    const upstream = writeUpstream(ctx);
    const res = await uploadPartCopy(upstream, { key: ctx.key, uploadId, partNumber, sourceKey: src.key, sourceBucket: src.from.upstream.primary().bucket, sourceVersionId: src.versionId, headers: requestHeaders(ctx) }, callOf(ctx));
    return await copyResult(ctx, res, "CopyPartResult", [upstream.bucket, src.from.upstream.primary().bucket]);
  } catch (err) {
    if (pinned && err instanceof ProxyError && s3ErrorOf(err)?.code === "PreconditionFailed") {
      await ctx.svc.cache.purgeObject(src.from.name, src.key);
      throw s3Fail(s3Error("PreconditionFailed", "The copy source changed since this proxy cached it: its size, which a HeadObject answered from the cache gave, may not be the object's. The cached copy is dropped; copy again."));
    }
    return hideMissingSource(ctx, src, err);
  }
}

/**
 * A part copied by range from a caching bucket, with no x-amz-copy-source-if-* condition of the
 * client's: pinned to the cached copy's ETag (the condition added to the request as if the client
 * had sent it). The client sized its ranges from a HeadObject, which the cache answers: an object
 * replaced upstream meanwhile (written around the proxy, within its TTL) was copied from the new
 * object with the old one's ranges, a truncated mix stored as a success. True when pinned.
 *
 * A client that sends a condition of its own guards its copy itself, and is not pinned: an added
 * -if-match that holds makes S3 ignore the client's -if-unmodified-since (CopyObject's documented
 * pair rule), so a cached source copied a part the client had said not to (S3 answers that request
 * 412 when no cache is involved); and a 412 the client's -if-none-match or -if-modified-since
 * earned was reported as the cached copy's fault, and that copy dropped.
 */
async function pinToCached(ctx: RequestContext, src: ForeignSource): Promise<boolean> {
  const state = (ctx as S3RequestContext).s3!;
  if (src.versionId !== undefined || src.from.cachePolicy === null || hasCopySourceCondition(state.headers)) return false;
  const cached = await ctx.svc.cache.get(src.from.name + "/" + src.key, undefined, undefined, src.from.cachePolicy);
  const etag = cached?.headers.etag;
  if (etag === undefined) return false;
  const headers = new Headers(state.headers);
  headers.set("x-amz-copy-source-if-match", strongEtag(etag));
  (state as { headers: Headers }).headers = headers;
  return true;
}


function hasCopySourceCondition(headers: Headers): boolean {
  return COPY_SOURCE_CONDITIONS.some((name) => headers.has(name));
}

/** A streamed copy's result, as S3 answers a copy (x-amz-copy-source-version-id: the version read). */
function streamedAnswer(ctx: RequestContext, r: StreamedResult, root: "CopyObjectResult" | "CopyPartResult"): Response {
  let xml = XML_DECL + `<${root} xmlns="${S3_XMLNS}">`;
  for (const [name, v] of r.fields) xml += el(name, v);
  const answer = xmlAnswer(ctx, r.res, xml + `</${root}>`);
  if (r.sourceVersionId !== undefined && /^[\x21-\x7e]{1,1024}$/.test(r.sourceVersionId)) answer.headers.set("x-amz-copy-source-version-id", r.sourceVersionId);
  return answer;
}

/**
 * The upstream's copy result, relayed: S3 may answer 200 with an <Error> document (a failure
 * after the head went out), so the body is read before the answer is called a success.
 * `upstreamBuckets`: the destination's and the source's (a server-side copy reads the source's
 * upstream bucket, which the upstream's message may name as well).
 */
async function copyResult(ctx: RequestContext, res: Response, root: "CopyObjectResult" | "CopyPartResult", upstreamBuckets: readonly string[]): Promise<Response> {
  if (res.status !== 200) return relayError(res, upstreamBuckets);
  const doc = tryParse(await readingResult(ctx, res, (r) => readUpstreamCapped(r, MAX_RESULT_BODY)));
  if (doc?.name !== root) throw resultFail(res, doc, upstreamBuckets);
  let xml = XML_DECL + `<${root} xmlns="${S3_XMLNS}">`;
  for (const name of ["ETag", "LastModified", "ChecksumType", "ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1", "ChecksumSHA256"]) {
    const v = childText(doc, name);
    // (a bare ETag some S3-compatible stores write, quoted as S3 writes it, as the header is: quotedEtag)
    if (v !== undefined) xml += el(name, name === "ETag" ? quotedEtag(v.trim()) : v);
  }
  return xmlAnswer(ctx, res, xml + `</${root}>`);
}
