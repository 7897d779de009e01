/**
 * The multipart calls on the S3 front (UploadPart is in put-object.ts). Upload ids pass through
 * untouched, so the proxy keeps no state and any replica of the proxy can take any call of an
 * upload. Checksum headers are forwarded on Create (x-amz-checksum-algorithm / -type) and on
 * Complete (the full-object value, -type, x-amz-mp-object-size), and each part's checksum in the
 * parts list; without them S3 answers InvalidPart for an upload created with an algorithm.
 *
 * S3's XML answers name the upstream bucket: the front writes its own documents from them with the
 * proxy bucket's name (and, for Complete, a Location on this endpoint). CompleteMultipartUpload may
 * answer 200 with an <Error> body (a failure after the head went out): that is relayed as the
 * error it is, never as a success. A 404 naming no code, to a call on an upload id, is S3's
 * NoSuchUpload (not the object's NoSuchKey, which SDKs and rclone take for a missing object).
 */
import { quotedEtag } from "../../http/conditional.ts";
import { utf8Text } from "../../http/read-capped.ts";
import { endToEnd } from "../../http/headers.ts";
import type { RequestContext } from "../../proxy/context.ts";
import type { BucketUpstream } from "../../s3/upstream.ts";
import {
  abortMultipartUpload,
  completeMultipartUpload,
  createMultipartUpload,
  getObjectDirect,
  listMultipartUploads,
  listParts,
  PART_CHECKSUMS,
  type CompletedPart,
} from "../../s3/operations/index.ts";
import { s3Error, type S3ErrorCode } from "./errors.ts";
import { objectLocation } from "./location.ts";
import { s3Fail } from "./fail.ts";
import { emptyAnswer, MAX_RESULT_BODY, readUpstreamCapped, relayError, resultFail, tryParse, xmlAnswer } from "./relay.ts";
import { xmlResponse } from "./operations.ts";
import { echoedMarker, markerAsked, withNextPartNumberMarker, withResumeMarker } from "./list.ts";
import { controlsAsReferences, el, isWellFormedResult, maskOwners, quoteListingEtags, rootOf, S3_XMLNS, setFirstElementText, XML_DECL } from "./xml.ts";
import { childText, type XmlElement } from "./xml-reader.ts";
import { callOf, fieldText, malformed, partNumberOf, queryValue, readingResult, readXmlBody, requestHeaders, unkeptWriteCondition, uploadIdOf, writeUpstream } from "./writes.ts";
import { purgeIfUnsure, purgeWritten } from "../purge.ts";
import { UNKEPT_ALGORITHMS, unkeptAlgorithm } from "./upload-body.ts";

const MAX_PARTS = 10_000;
const CHECKSUM_ELEMENTS = PART_CHECKSUMS.map(([element]) => element);
/** What a <Part> may hold (S3's CompletedPart): anything else is MalformedXML, never skipped. */
const PART_FIELDS: ReadonlySet<string> = new Set(["PartNumber", "ETag", ...CHECKSUM_ELEMENTS]);
/** S3's newer part checksums, which this proxy does not carry (as their headers, upload-body.ts): refused, never dropped. */
const UNKEPT_PART_CHECKSUMS: ReadonlySet<string> = new Set([...UNKEPT_ALGORITHMS].map((a) => "Checksum" + a));
/** Digits (leading zeros allowed, as an integer parse reads them; the value is checked where used). */
const INTEGER = /^\d{1,64}$/;

/** Reads a successful XML answer; a 200 carrying <Error> (or not XML at all) is thrown as the error. */
async function resultDoc(res: Response, root: string, upstreamBucket: string): Promise<XmlElement> {
  const doc = tryParse(await readUpstreamCapped(res, MAX_RESULT_BODY));
  if (doc?.name === root) return doc;
  throw resultFail(res, doc, upstreamBucket);
}

export async function createMultipartUploadOp(ctx: RequestContext): Promise<Response> {
  // An upload announced with one of S3's newer algorithms could never be completed through this
  // proxy (its parts' checksums are refused, upload-body.ts): said at once, before any part is sent.
  const algorithm = ctx.req.headers.get("x-amz-checksum-algorithm")?.trim().toUpperCase();
  if (algorithm !== undefined && UNKEPT_ALGORITHMS.has(algorithm)) {
    throw s3Fail(unkeptAlgorithm(algorithm));
  }
  const upstream = writeUpstream(ctx);
  const res = await createMultipartUpload(upstream, { key: ctx.key, headers: requestHeaders(ctx) }, callOf(ctx));
  if (res.status !== 200) return relayError(res, upstream.bucket);
  const doc = await resultDoc(res, "InitiateMultipartUploadResult", upstream.bucket);
  const uploadId = childText(doc, "UploadId");
  if (uploadId === undefined || uploadId === "") throw s3Fail(s3Error("InternalError"));
  const xml = XML_DECL + `<InitiateMultipartUploadResult xmlns="${S3_XMLNS}">` + el("Bucket", ctx.bucket!.name) + el("Key", ctx.key) + el("UploadId", uploadId) + "</InitiateMultipartUploadResult>";
  return xmlAnswer(ctx, res, xml);
}

/** The parts list of a CompleteMultipartUpload body, checked as S3 does before it reaches the upstream. */
export function partsOf(doc: XmlElement): CompletedPart[] {
  // (only <Part>s: one inside another element, a <Parts> or a misspelt wrapper, was skipped, and
  // the object completed without it, shorter than the client's)
  if (doc.children.some((c) => c.name !== "Part")) throw s3Fail(malformed());
  const parts = doc.children;
  if (parts.length === 0) throw s3Fail(malformed());
  if (parts.length > MAX_PARTS) throw s3Fail(s3Error("InvalidArgument", `A multipart upload has at most ${MAX_PARTS} parts.`, { ArgumentName: "Part" }));
  return parts.map((p) => {
    for (const c of p.children) {
      if (UNKEPT_PART_CHECKSUMS.has(c.name)) throw s3Fail(s3Error("NotImplemented", `A part's <${c.name}> is not supported through this proxy: the upload would complete without it.`));
      if (!PART_FIELDS.has(c.name)) throw s3Fail(malformed());
    }
    const n = partNumberOf(fieldText(p, "PartNumber")?.trim());
    if (typeof n !== "number") throw s3Fail(n);
    const etag = fieldText(p, "ETag")?.trim();
    // (an empty <ETag></ETag> is the schema's, and no part's tag: S3's 400 InvalidPart, which the
    // upstream answers, after NoSuchUpload; it was MalformedXML here)
    if (etag === undefined) throw s3Fail(malformed());
    const part: CompletedPart = { partNumber: n, etag };
    for (const [name, field] of PART_CHECKSUMS) {
      const v = fieldText(p, name)?.trim();
      if (v !== undefined) part[field] = v;
    }
    return part;
  });
}

export async function completeMultipartUploadOp(ctx: RequestContext): Promise<Response> {
  // (Complete is the write that replaces the object: If-Unmodified-Since, which S3 does not take,
  // is refused here as on PutObject, not dropped and the object replaced whatever its date)
  const unkept = unkeptWriteCondition(requestHeaders(ctx));
  if (unkept !== undefined) throw s3Fail(unkept);
  const uploadId = uploadIdOf(ctx);
  // Its x-amz-checksum-* header is the whole object's checksum (FULL_OBJECT, or COMPOSITE's
  // "value-N"), for S3 to check against the parts: relayed, never taken as the XML body's.
  const parts = partsOf(await readXmlBody(ctx, "CompleteMultipartUpload", { objectChecksums: true }));
  const upstream = writeUpstream(ctx);
  const key = ctx.key;
  const res = await purgeIfUnsure(ctx, [key], () => completeMultipartUpload(upstream, { key, uploadId, parts, headers: requestHeaders(ctx) }, callOf(ctx)));
  if (res.status !== 200) return relayError(res, upstream.bucket, "NoSuchUpload");
  // (a 200 whose result is cut or stalls, or carries an error, may have completed the object)
  let doc: XmlElement;
  try {
    doc = await readingResult(ctx, res, (r) => resultDoc(r, "CompleteMultipartUploadResult", upstream.bucket));
  } catch (err) {
    await purgeWritten(ctx, key);
    throw err;
  }
  await purgeWritten(ctx, key);
  const bucket = ctx.bucket!.name;
  let xml = XML_DECL + `<CompleteMultipartUploadResult xmlns="${S3_XMLNS}">` + el("Location", objectLocation(ctx, bucket, key)) + el("Bucket", bucket) + el("Key", key);
  const etag = childText(doc, "ETag") ?? (await completedEtag(ctx, upstream, res));
  // (a bare ETag some S3-compatible stores write, quoted as S3 writes it, as the header is: quotedEtag)
  if (etag !== undefined) xml += el("ETag", quotedEtag(etag.trim()));
  for (const name of [...CHECKSUM_ELEMENTS, "ChecksumType"]) {
    const v = childText(doc, name);
    if (v !== undefined) xml += el(name, v);
  }
  return xmlAnswer(ctx, res, xml + "</CompleteMultipartUploadResult>");
}

/**
 * The ETag of the object a Complete made, when its result had none (S3's always has): a HEAD of it
 * (of the version the Complete named, if any; else of the key, which a write since may have
 * replaced). Not an error: the object exists, and a retried Complete would be NoSuchUpload.
 * Undefined when the HEAD does not say.
 */
async function completedEtag(ctx: RequestContext, upstream: BucketUpstream, res: Response): Promise<string | undefined> {
  const versionId = res.headers.get("x-amz-version-id") ?? undefined;
  const head = await getObjectDirect(upstream, { method: "HEAD", key: ctx.key, versionId }, callOf(ctx)).catch(() => undefined);
  await head?.body?.cancel().catch(() => {});
  return head?.ok ? (endToEnd(head.headers, "etag") ?? undefined) : undefined;
}

/**
 * S3's condition on an abort (directory buckets only): abort only an upload initiated at that
 * time. The proxy does not carry it (its buckets are general purpose), so it is refused as
 * DeleteObject's directory-bucket conditions are (writes.ts unkeptDeleteCondition), never dropped:
 * the upload, and the parts another client is sending, would be discarded unconditionally.
 */
const ABORT_CONDITION = "x-amz-if-match-initiated-time";

export async function abortMultipartUploadOp(ctx: RequestContext): Promise<Response> {
  if (requestHeaders(ctx).has(ABORT_CONDITION)) {
    throw s3Fail(s3Error("NotImplemented", `An abort conditional on ${ABORT_CONDITION} is not supported through this proxy: the upload would be aborted without the condition.`, { Header: ABORT_CONDITION }));
  }
  const uploadId = uploadIdOf(ctx);
  const upstream = writeUpstream(ctx);
  const res = await abortMultipartUpload(upstream, { key: ctx.key, uploadId, headers: requestHeaders(ctx) }, callOf(ctx));
  if (!res.ok) return relayError(res, upstream.bucket, "NoSuchUpload");
  return emptyAnswer(ctx, res, 204);
}

/** A paging parameter S3 wants as a non-negative integer. */
function integerParam(ctx: RequestContext, name: string): string | undefined {
  const v = queryValue(ctx, name);
  if (v !== undefined && (!INTEGER.test(v) || Number(v) > 2147483647)) {
    throw s3Fail(s3Error("InvalidArgument", `Provided ${name} not an integer or within integer range`, { ArgumentName: name, ArgumentValue: v.slice(0, 64) }));
  }
  return v === undefined ? v : String(Number(v)); // (its number: "0002" is 2)
}

/**
 * Relays a listing with its <Bucket> (the first: the result's own) set to the proxy bucket's name.
 * A 200 whose document is not the listing asked for (an <Error> behind a 200, an empty body) is
 * InternalError, as for ListObjects: its text could name the store's internals. Answered as the
 * object listings are (xmlResponse): a signed caller's answer says Cache-Control: private.
 */
async function relayListing(ctx: RequestContext, res: Response, upstreamBucket: string, root: string, notFound?: S3ErrorCode, keyMarker?: string): Promise<Response> {
  if (res.status !== 200) return relayError(res, upstreamBucket, notFound);
  const bytes = await readUpstreamCapped(res, MAX_RESULT_BODY);
  if (bytes === undefined) throw s3Fail(s3Error("InternalError", "The upstream listing is too large."));
  const text = utf8Text(bytes);
  if (text === undefined || rootOf(text) !== root || !isWellFormedResult(text, MAX_RESULT_BODY)) throw s3Fail(s3Error("InternalError", "The upstream's listing could not be read."));
  // (as the other listings: Cache-Control private to a signed caller, never kept by a shared cache;
  // a ListParts' bare part ETags quoted, as the object listings')
  // (and a truncated page's resume markers, S3's, where the store left them out: list.ts)
  // (a key-marker asked past the common prefix it names: the client's own echoed, markerAsked)
  const resumable = root === "ListPartsResult" ? withNextPartNumberMarker(quoteListingEtags(text)) : withResumeMarker(text, "NextKeyMarker", "NextUploadIdMarker");
  const named = setFirstElementText(keyMarker === undefined ? resumable : echoedMarker(resumable, "KeyMarker", keyMarker), "Bucket", ctx.bucket!.name);
  return xmlResponse(ctx, controlsAsReferences(maskOwners(named, ctx.subject ?? "anonymous")));
}

export async function listPartsOp(ctx: RequestContext): Promise<Response> {
  const uploadId = uploadIdOf(ctx);
  const upstream = writeUpstream(ctx);
  const args = { key: ctx.key, uploadId, maxParts: integerParam(ctx, "max-parts"), partNumberMarker: integerParam(ctx, "part-number-marker") };
  return relayListing(ctx, await listParts(upstream, args, callOf(ctx)), upstream.bucket, "ListPartsResult", "NoSuchUpload");
}

export async function listMultipartUploadsOp(ctx: RequestContext): Promise<Response> {
  const encodingType = queryValue(ctx, "encoding-type");
  if (encodingType !== undefined && encodingType !== "url") {
    throw s3Fail(s3Error("InvalidArgument", "Invalid Encoding Method specified in Request", { ArgumentName: "encoding-type", ArgumentValue: encodingType.slice(0, 64) }));
  }
  const upstream = writeUpstream(ctx);
  const params = {
    prefix: queryValue(ctx, "prefix"),
    delimiter: queryValue(ctx, "delimiter"),
    maxUploads: integerParam(ctx, "max-uploads"),
    keyMarker: queryValue(ctx, "key-marker"),
    uploadIdMarker: queryValue(ctx, "upload-id-marker"),
    encodingType,
  };
  const keyMarker = !params.uploadIdMarker ? params.keyMarker : undefined;
  const asked = markerAsked(keyMarker, params.prefix ?? "", params.delimiter ?? "");
  const res = await listMultipartUploads(upstream, { ...params, keyMarker: asked ?? params.keyMarker }, callOf(ctx));
  return relayListing(ctx, res, upstream.bucket, "ListMultipartUploadsResult", undefined, asked !== keyMarker ? keyMarker : undefined);
}
