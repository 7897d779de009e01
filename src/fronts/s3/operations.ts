/**
 * The S3 front's read operations. ListBuckets, HeadBucket and GetBucketLocation answer from config;
 * GetObject and HeadObject are the shared object phase (cache, ranges, conditionals, If-Range) plus
 * S3's response-content-* overrides, and of one part (?partNumber) or one version (?versionId)
 * straight from the upstream;
 * ListObjects V1/V2 relay the upstream's listing (list.ts), and GetBucketVersioning the upstream
 * bucket's versioning state (tags: tagging.ts).
 */
import type { RequestContext } from "../../proxy/context.ts";
import { answeredPrivately, endToEnd, forwardRequestHeaders } from "../../http/headers.ts";
import { mapAnswer } from "../../http/map-answer.ts";
import { fetchIfRange, respond, sandboxed, serveObject } from "../../proxy/phases/object.ts";
import { getBucketVersioning, getObjectAttributes as getAttributesUpstream, getObjectDirect as getDirectUpstream } from "../../s3/operations/index.ts";
import { errorOf, MAX_RESULT_BODY, readErrorDoc, readUpstreamCapped, relayError, tryParse } from "./relay.ts";
import { callOf, partNumberOf, queryValue, requestHeaders } from "./writes.ts";
import { S3_FRONT_BUCKET_NAME } from "../../config/s3-api.ts";
import { s3Error, type S3Error } from "./errors.ts";
import { NO_PARAMETERS } from "./uri.ts";
import { s3Fail } from "./fail.ts";
import type { S3Identities, S3Principal } from "./identities.ts";
import { visibleBuckets } from "./permissions.ts";
import { ownerOf, renderListBuckets, renderLocationConstraint } from "./xml.ts";

/** The proxy has no bucket creation dates of its own: every bucket reports this fixed one. */
const BUCKET_CREATION_DATE = Date.UTC(2000, 0, 1);

/** response-* query parameter → the response header it sets (S3 GetObject). */
// (a Map: looked up by the client's query names, where a plain object also answered `constructor`,
// `toString`, ... with Object.prototype's functions)
const OVERRIDES: ReadonlyMap<string, string> = new Map([
  ["response-content-type", "content-type"],
  ["response-content-language", "content-language"],
  ["response-expires", "expires"],
  ["response-cache-control", "cache-control"],
  ["response-content-disposition", "content-disposition"],
  ["response-content-encoding", "content-encoding"],
]);
/** A header value as the Headers API accepts it (no CR, LF, NUL; Latin-1 only). */
export const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

export function xmlResponse(ctx: RequestContext, xml: string, status = 200): Response {
  const headers: Record<string, string> = { "content-type": "application/xml", "x-amz-request-id": ctx.id };
  // An answer to a signed request (a listing, tags, an ACL, attributes) is that caller's: a shared
  // cache keeps none (a presigned listing URL was heuristically cacheable under its URL, past its
  // expiry, for anyone holding it), as GetObject on a restricted bucket says `private`.
  if (ctx.principal !== "anonymous") headers["cache-control"] = "private";
  if (ctx.method !== "HEAD") {
    ctx.bytes = Buffer.byteLength(xml);
    return new Response(xml, { status, headers });
  }
  // the GET's length, no body (Bun.serve would say content-length: 0)
  headers["content-length"] = String(Buffer.byteLength(xml));
  return new Response(null, { status, headers });
}

const MAX_BUCKETS_LIMIT = 10_000;

/**
 * ListBuckets: the principal's buckets, with S3's prefix, max-buckets, continuation-token and
 * bucket-region (every bucket is in s3_api.region, as BucketRegion says: another region has none),
 * each read from its first occurrence.
 */
export function listBuckets(ctx: RequestContext, api: S3Identities, principal: S3Principal, query: ReadonlyArray<readonly [string, string]>): Response {
  let prefix: string | undefined;
  let max = MAX_BUCKETS_LIMIT;
  let after: string | undefined;
  let region: string | undefined;
  // A parameter given more than once is read from its first occurrence, as S3 reads it (the later
  // ones are ignored, unchecked): the last one was read, so `continuation-token=A&continuation-token=B`
  // resumed after B.
  const seen = new Set<string>();
  for (const [k, v] of query) {
    if (seen.has(k)) continue;
    seen.add(k);
    if (k === "prefix") prefix = v;
    else if (k === "bucket-region") region = v;
    else if (k === "max-buckets") {
      if (!/^\d{1,5}$/.test(v) || +v < 1 || +v > MAX_BUCKETS_LIMIT) throw s3Fail(s3Error("InvalidArgument", "max-buckets must be an integer between 1 and 10000", { ArgumentName: "max-buckets", ArgumentValue: v.slice(0, 32) }));
      max = +v;
    } else if (k === "continuation-token") {
      // A token this front gave out: a bucket name, base64url. Anything else is S3's refusal (a
      // garbage token restarted the listing at its first page, and a paginating client looped).
      after = Buffer.from(v, "base64url").toString("utf8");
      if (!S3_FRONT_BUCKET_NAME.test(after) || Buffer.from(after, "utf8").toString("base64url") !== v) {
        throw s3Fail(s3Error("InvalidArgument", "The continuation token provided is incorrect", { ArgumentName: "continuation-token" }));
      }
    }
  }
  let names = visibleBuckets(ctx.rt, principal, (n) => S3_FRONT_BUCKET_NAME.test(n)).map((b) => b.name).sort();
  if (prefix !== undefined) names = names.filter((n) => n.startsWith(prefix));
  if (after !== undefined) names = names.filter((n) => n > after);
  if (region !== undefined && region !== "" && region !== api.region) names = [];
  const page = names.slice(0, max);
  const more = names.length > page.length;
  const owner = ownerOf(principal.identity);
  return xmlResponse(ctx, renderListBuckets(page.map((name) => ({ name, creationDate: BUCKET_CREATION_DATE, region: api.region })), {
    owner,
    prefix,
    continuationToken: more ? Buffer.from(page[page.length - 1]!, "utf8").toString("base64url") : undefined,
  }));
}

/**
 * HeadBucket: 200 with the region clients sign for, and, as S3 answers for a bucket named by its
 * own name, `x-amz-access-point-alias: false` (the SDKs' AccessPointAlias: false, not unset).
 */
export function headBucket(ctx: RequestContext, api: S3Identities): Response {
  return new Response(null, { status: 200, headers: { "x-amz-bucket-region": api.region, "x-amz-access-point-alias": "false", "x-amz-request-id": ctx.id } });
}

/**
 * GetBucketLocation: the region clients sign for (this endpoint's), not the upstream's: a client
 * that followed the upstream region would sign for a region this front refuses.
 */
export function bucketLocation(ctx: RequestContext, api: S3Identities): Response {
  return xmlResponse(ctx, renderLocationConstraint(api.region));
}

/** A VersioningConfiguration or a Tagging (at most 10 tags) is a few short elements; anything near this is not one. */
const MAX_CONFIGURATION_BYTES = 64 * 1024;

/**
 * GetBucketVersioning: the upstream bucket's state, relayed (whether old versions are kept is the
 * upstream's, and clients such as rclone ask before deleting). The document names no bucket.
 */
export async function bucketVersioning(ctx: RequestContext): Promise<Response> {
  const upstream = ctx.bucket!.upstream.primary();
  return relayDocument(ctx, await getBucketVersioning(upstream, callOf(ctx)), "VersioningConfiguration", upstream.bucket);
}

/** A small upstream XML document relayed as it is, once it is known to be a `root` (it names no bucket). */
export async function relayDocument(ctx: RequestContext, res: Response, root: string, upstreamBucket: string): Promise<Response> {
  if (res.status !== 200) return relayError(res, upstreamBucket);
  const bytes = await readUpstreamCapped(res, MAX_CONFIGURATION_BYTES);
  if (bytes === undefined || tryParse(bytes)?.name !== root) {
    throw s3Fail(s3Error("InternalError", `The upstream's ${root} document could not be read.`));
  }
  const answer = xmlResponse(ctx, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
  const version = endToEnd(res.headers, "x-amz-version-id");
  if (version !== null) answer.headers.set("x-amz-version-id", version);
  return answer;
}

/**
 * The response-* overrides of a GetObject/HeadObject. S3 honours them only on authenticated
 * requests; an anonymous request that sends one is refused (InvalidRequest), as S3 does.
 */
export function responseOverrides(query: ReadonlyArray<readonly [string, string]>, signed: boolean): ReadonlyArray<readonly [string, string]> | S3Error {
  let out: Array<[string, string]> | undefined;
  for (const [k, v] of query) {
    const header = OVERRIDES.get(k);
    if (header === undefined) {
      // (a `response-` parameter S3 does not know, a typo of one: S3 refuses it rather than
      // answer without the header asked for; one char code first, the X-Amz-* ones pass at once)
      if (k.charCodeAt(0) === 114 /* r */ && k.startsWith("response-")) {
        return s3Error("InvalidArgument", `${k.slice(0, 64)} is not in the set of overridable response headers. Please refer to the S3 API documentation for a complete list of overridable response headers.`, { ArgumentName: k.slice(0, 64), ArgumentValue: v.slice(0, 256) });
      }
      continue;
    }
    if (!signed) return s3Error("InvalidRequest", "Request specific response headers cannot be used for anonymous GET requests.");
    // (an empty override sets nothing: the stored value stays, and the answer keeps one
    // Content-Type; set empty, the listener added its own default beside it)
    if (v === "") continue;
    // S3's own refusal (a character beyond Latin-1, as in a UTF-8 file name; RFC 5987's filename*=UTF-8''… is the way), or a control character
    if (!HEADER_VALUE.test(v)) {
      const message = /[^\x00-\xff]/.test(v) ? "Header value cannot be represented using ISO-8859-1." : `${k} is not a valid header value`;
      return s3Error("InvalidArgument", message, { ArgumentName: k, ArgumentValue: v.slice(0, 256) });
    }
    (out ??= []).push([header, v]);
  }
  return out ?? NO_PARAMETERS;
}

/**
 * The response-* overrides on an answer with the object: all of them on a 200 or 206; on a 304
 * the two it carries as the 200 would (RFC 9110 §15.4.5: Cache-Control and Expires), so a client
 * cache that revalidates keeps the lifetime it was asked for.
 */
function applyOverrides(res: Response, overrides: ReadonlyArray<readonly [string, string]>): Response {
  if (res.status === 200 || res.status === 206) for (const [h, v] of overrides) res.headers.set(h, v);
  else if (res.status === 304) for (const [h, v] of overrides) if (h === "cache-control" || h === "expires") res.headers.set(h, v);
  return res;
}

/** S3's version ids are short opaque strings ("null" for an object stored before versioning). */
const MAX_VERSION_ID = 1024;

/** What is wrong with a version id (S3's InvalidArgument message), or undefined. */
export function versionIdProblem(v: string): string | undefined {
  if (v === "") return "Version id cannot be the empty string";
  if (v.length > MAX_VERSION_ID) return "Invalid version id specified";
  return undefined;
}

/** The ?versionId of a request, checked as S3 checks it; undefined when there is none. */
export function versionIdOf(ctx: RequestContext): string | undefined {
  const v = queryValue(ctx, "versionId");
  if (v === undefined) return undefined;
  const problem = versionIdProblem(v);
  if (problem !== undefined) throw s3Fail(s3Error("InvalidArgument", problem, { ArgumentName: "versionId", ArgumentValue: v.slice(0, 64) }));
  return v;
}

/** Headers of a direct read the client gets besides the object's own (S3 sends them; the cache path has no use for them). */
const DIRECT_READ_HEADERS = ["x-amz-mp-parts-count", "x-amz-version-id", "x-amz-delete-marker"];
const DIRECT_READ_VALUE = /^[\x21-\x7e]{1,1024}$/;

/**
 * GetObject / HeadObject of one part (?partNumber, as multipart downloaders such as the Java SDK's
 * and Go's transfer managers ask: S3 answers the range that part covers, with
 * x-amz-mp-parts-count) and of one version (?versionId; with a Range, conditionals, or a part).
 * Straight from the bucket's primary upstream, never from or into the cache: a cached copy is the
 * current version and does not know its parts. A Range beside partNumber is S3's InvalidRequest;
 * a part past the last is its 416 InvalidPartNumber, relayed; so are NoSuchVersion and a delete
 * marker's 405 (with x-amz-delete-marker).
 */
export async function getObjectDirect(ctx: RequestContext, overrides: ReadonlyArray<readonly [string, string]>): Promise<Response> {
  const part = queryValue(ctx, "partNumber");
  const partNumber = part === undefined ? undefined : partNumberOf(part);
  if (typeof partNumber === "object") throw s3Fail(partNumber);
  if (partNumber !== undefined && ctx.req.headers.has("range")) throw s3Fail(s3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter"));
  const versionId = versionIdOf(ctx);
  const method = ctx.method as "GET" | "HEAD";
  const headers = forwardRequestHeaders(ctx.req.headers);
  if (partNumber !== undefined) delete headers["if-range"];
  const upstream = ctx.bucket!.upstream.primary();
  const fetch = (h: Record<string, string>) => getDirectUpstream(upstream, { method, key: ctx.key, partNumber, versionId, headers: h }, callOf(ctx));
  // (If-Range as on the current object: version null is overwritten in place, and S3 does not document If-Range)
  const res = headers["if-range"] === undefined ? await fetch(headers) : await fetchIfRange(fetch, headers, headers["if-range"]);
  if (res.status === 416 && partNumber !== undefined) {
    // A HEAD's 416 has no body: it is the part's (S3's InvalidPartNumber), as the GET says, whose
    // message and details the HEAD cannot know (its answer has no length: guessedFromStatus).
    if (method === "HEAD") {
      await res.body?.cancel().catch(() => {});
      throw s3Fail(s3Error("InvalidPartNumber"), undefined, res.status);
    }
    return relayError(res, upstream.bucket);
  }
  if (versionId !== undefined && (res.status === 400 || res.status === 404 || res.status === 405)) {
    // S3's word on the version: NoSuchVersion, an invalid id, or a delete marker (405, with x-amz-delete-marker).
    const doc = await readErrorDoc(res);
    const e = errorOf(res.status, doc, upstream.bucket);
    if (res.headers.get("x-amz-delete-marker") === "true") e.headers = { ...e.headers, "x-amz-delete-marker": "true" };
    // (a HEAD's has no document: the code is guessed from the status, as relayError says)
    throw s3Fail(e, undefined, doc?.name === "Error" && doc.children.some((c) => c.name === "Code") ? undefined : res.status);
  }
  const extra: Array<[string, string]> = [];
  // (none the upstream's Connection header names: hop-by-hop, dropped from the answer itself too)
  for (const name of DIRECT_READ_HEADERS) {
    const v = endToEnd(res.headers, name);
    if (v !== null && DIRECT_READ_VALUE.test(v)) extra.push([name, v]);
  }
  const out = await respond(ctx, res, method);
  if (out.status < 400) for (const [k, v] of extra) out.headers.set(k, v);
  // (user content, as serveObject answers it: a part or an old version of an uploaded page too)
  if (ctx.bucket!.sandboxed) sandboxed(out);
  // (a version is never an anonymous read: answered privately on any bucket, its overrides too, see getObject)
  const overridden = applyOverrides(out, overrides);
  return (ctx.bucket!.restricted || versionId !== undefined) && method !== "HEAD" ? answeredPrivately(overridden) : overridden;
}

/**
 * GetObject / HeadObject: the shared object phase, then the overrides on the client's copy only
 * (never the cache's). On a bucket anonymous requests may not read, the stored Cache-Control is
 * made private first, as the plain front does for its authenticated answers: a shared cache
 * between a client and this front would otherwise keep an object stored `public` under its URL,
 * without the signature, and serve it to anyone (RFC 9111 §3.5 lets `public` override the
 * Authorization rule). A response-cache-control the signed request itself asks for is its own,
 * made private alike: `public` or `s-maxage` asked for let a shared cache keep the restricted
 * object under its URL (a header-signed request's has no signature) and serve it to anyone (it
 * replaced `private`); its other directives (no-store, max-age, ...) stay.
 */
export function getObject(ctx: RequestContext, overrides: ReadonlyArray<readonly [string, string]>): Response | Promise<Response> {
  const out = serveObject(ctx);
  // HeadObject reports the stored Cache-Control as S3 does: it has no body a shared cache could
  // keep, and aws-cli/boto3 copy an object in parts by sending what HeadObject reported to
  // CreateMultipartUpload (a made-up `private` was stored on every such copy).
  const restricted = ctx.bucket!.restricted && ctx.method !== "HEAD";
  if (overrides.length === 0 && !restricted) return out;
  return overridden(out, overrides, restricted);
}

/** getObject's answer with the response-* overrides applied, and made private if `restricted` (its own function: the closure's scope, made on entry, was a GetObject's even with neither). */
function overridden(out: Response | Promise<Response>, overrides: ReadonlyArray<readonly [string, string]>, restricted: boolean): Response | Promise<Response> {
  return mapAnswer(out, (r) => (restricted ? answeredPrivately(applyOverrides(r, overrides)) : applyOverrides(r, overrides)));
}


/** The attributes GetObjectAttributes may ask for (x-amz-object-attributes), as S3 names them. */
const OBJECT_ATTRIBUTES = new Set(["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]);

/**
 * GetObjectAttributes: an object's (or a version's) ETag, size, storage class, checksum and parts,
 * relayed from the primary (the document names no bucket). x-amz-object-attributes is checked
 * here first, as S3 checks it; Last-Modified and the version id come back with it.
 */
export async function objectAttributes(ctx: RequestContext): Promise<Response> {
  // (a presigned URL's headers hoisted into its query count, as S3 reads them: the JS SDK's presigner puts x-amz-object-attributes there)
  const headers = requestHeaders(ctx);
  const asked = headers.get("x-amz-object-attributes");
  if (asked === null || asked.trim() === "") throw s3Fail(s3Error("InvalidRequest", "Missing required header for this request: x-amz-object-attributes"));
  for (const a of asked.split(",")) {
    if (!OBJECT_ATTRIBUTES.has(a.trim())) throw s3Fail(s3Error("InvalidArgument", "Invalid attribute name specified.", { ArgumentName: "x-amz-object-attributes", ArgumentValue: a.trim().slice(0, 64) }));
  }
  for (const name of ["x-amz-max-parts", "x-amz-part-number-marker"]) {
    const v = headers.get(name);
    // (S3 reads a 32-bit integer: 9 digits refused 1000000000 and a zero-padded 1, which S3 takes)
    if (v !== null && !(/^\d{1,64}$/.test(v.trim()) && Number(v) <= 2147483647)) throw s3Fail(s3Error("InvalidArgument", `${name} must be a non-negative integer`, { ArgumentName: name, ArgumentValue: v.slice(0, 64) }));
  }
  const versionId = versionIdOf(ctx);
  const upstream = ctx.bucket!.upstream.primary();
  const res = await getAttributesUpstream(upstream, { key: ctx.key, versionId, headers }, callOf(ctx));
  if (res.status !== 200) return relayError(res, upstream.bucket);
  const bytes = await readUpstreamCapped(res, MAX_RESULT_BODY);
  if (bytes === undefined || tryParse(bytes)?.name !== "GetObjectAttributesResponse") {
    throw s3Fail(s3Error("InternalError", "The upstream's GetObjectAttributesResponse document could not be read."));
  }
  const answer = xmlResponse(ctx, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
  for (const name of ["last-modified", "x-amz-version-id", "x-amz-delete-marker"]) {
    const v = endToEnd(res.headers, name);
    if (v !== null && /^[\x20-\x7e]{1,256}$/.test(v)) answer.headers.set(name, v);
  }
  return answer;
}
