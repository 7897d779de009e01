/**
 * The S3 front: S3's addressing, SigV4 identities and XML errors over the shared request phases.
 *
 *   guard → s3Parse (address, verify SigV4, operation) → admit → s3Permit (grants / session rules,
 *         bucket access) → authorize (OPA / OpenFGA, with the S3 action) → s3Operate
 *
 * Writes (PutObject, multipart, DeleteObject(s), CopyObject) run on the same phases; their bodies
 * are verified as they stream upstream (upload-body.ts), never buffered whole.
 *
 * Nothing reaches the upstream before the signature, the operation and the permissions are
 * settled. The path and query are decoded once (uri.ts), the same way for the signature and for
 * routing, so the key that is served is the key that was signed. Errors are S3's XML with S3's
 * statuses (RequestId = the request id); the STS endpoint answers in STS's dialect.
 */
import { guessedFromStatus, ProxyError } from "../../errors.ts";
import { announcesBody, chunkedBodyEmpty, chunkedOnly, collapseRepeatedLength, REFUSED_BODY_CLOSE } from "../../http/body-policy.ts";
import type { RequestContext, S3Action } from "../../proxy/context.ts";
import { admit } from "../../proxy/phases/admit.ts";
import { authorize, mayAlso } from "../../proxy/phases/authorize.ts";
import { guard, splitUrl } from "../../proxy/phases/guard.ts";
import { failed, type Front } from "../../proxy/runner.ts";
import { patiently } from "./patient.ts";
import { s3Cors, s3PreflightRefusal, stsCors } from "../cors-phases.ts";
import { EMPTY_SHA256, utf8HeaderValue } from "../../s3/sigv4.ts";
import { clientsArgument, upstreamBucketsOf, withUpstreamWords } from "./relay.ts";
import { fromProxyError, s3Error, s3ErrorResponse, type S3Error } from "./errors.ts";
import { s3ErrorOf, s3Fail } from "./fail.ts";
import { adoptPrincipal, type S3Identities, type S3Principal } from "./identities.ts";
import { listObjects } from "./list.ts";
import { copyObjectOp, copySourceLabel, uploadPartCopyOp } from "./copy.ts";
import { getBucketAclOp, getObjectAclOp, putAclOp } from "./acl.ts";
import { bucketConfigOp, createBucketOp } from "./bucket-config.ts";
import { deleteObjectOp, deleteObjectsOp } from "./delete.ts";
import {
  abortMultipartUploadOp,
  completeMultipartUploadOp,
  createMultipartUploadOp,
  listMultipartUploadsOp,
  listPartsOp,
} from "./multipart.ts";
import { bucketLocation, bucketVersioning, getObject, getObjectDirect, headBucket, listBuckets, objectAttributes, responseOverrides, versionIdOf } from "./operations.ts";
import { accessRefusal, mayAccess, refusalReason, sessionAdmitted } from "./permissions.ts";
import { putObjectOp, uploadPartOp } from "./put-object.ts";
import { postObjectOp } from "./post-object.ts";
import { deleteObjectTaggingOp, objectTagging, putObjectTaggingOp } from "./tagging.ts";
import type { PayloadInfo } from "./upload-body.ts";
import { ACTION_OF, address, type Addressed, bucketFromHost, configuredBucket, EMPTY_SEGMENT_REFUSAL, isStsCall, KEY_IGNORED, keyRefusal, keyTooLong, MAX_KEY_BYTES, operationOf, type S3Operation, unservedAction } from "./route.ts";
import { stsError, stsErrorResponse } from "./sts-api.ts";
import { stsEndpoint } from "./sts-endpoint.ts";
import { decodeComponent, NO_PARAMETERS, parseRawQuery } from "./uri.ts";
import { isS3Error } from "./auth-params.ts";
import { UNSIGNED_PAYLOAD, verifyRequest } from "./verify.ts";
import { queryValue, refuseAcls } from "./writes.ts";

/** What the S3 front learns about a request, beside the shared context. */
export interface S3State {
  readonly api: S3Identities;
  readonly op: S3Operation;
  /** undefined: an anonymous (unsigned) request. */
  readonly principal: S3Principal | undefined;
  /** The decoded query, in order (as verified). */
  readonly query: ReadonlyArray<readonly [string, string]>;
  /** GetObject/HeadObject response-* overrides. */
  readonly overrides: ReadonlyArray<readonly [string, string]>;
  /** How the request body is covered by the signature (uploads verify the body with it). */
  readonly payload?: PayloadInfo;
  /**
   * The request's headers as S3 reads them: the listener's, plus, for a presigned URL, the x-amz-*
   * headers its signer hoisted into the query (withHoistedHeaders). Writes build their upstream
   * request from these.
   */
  readonly headers: Headers;
  /** The bucket's authorizer denied s3:ListBucket to this caller (set on a missing key: it is AccessDenied). */
  listDenied?: boolean;
}

/** The context of an S3-front request: the shared one plus the S3 state, set by s3Parse. */
export type S3RequestContext = RequestContext & {
  s3?: S3State;
  /** The request's address (s3Address), for s3Parse. */
  s3Addressed?: Addressed;
};

const fail = (e: S3Error): never => {
  throw s3Fail(e);
};

/**
 * `op`'s error once the bucket's authorizer has allowed the request (its refusal is thrown
 * instead). Its own function: a closure in s3Parse would give every S3 request a scope.
 */
function failAuthorized(ctx: RequestContext, op: S3Error): Promise<never> {
  return authorize(ctx)!.then(() => fail(op));
}

/** Whether a verified request carries a body (S3 refuses content on GET and HEAD): when every header present is signed, no lookup is needed unless a body header is among them. */
function verifiedHasBody(v: { allSigned: boolean; signedHeaders: readonly string[] }, h: Headers): boolean {
  if (v.allSigned && !v.signedHeaders.includes("content-length") && !v.signedHeaders.includes("transfer-encoding")) return false;
  return announcesBody(h);
}

/**
 * Phase: the request's address (path or virtual host), the STS endpoint, and the refusals that
 * need no signature (InvalidURI, an OPTIONS no CORS phase answered). It names the configured
 * bucket, so that admission (rate limits, the concurrency cap, the bucket's ip_filter) runs before
 * any signature is verified, as the plain front admits before it authenticates: a spent budget
 * costs no verification, and an address the bucket blocks learns nothing of a key (a right
 * secret's later refusals told it from a wrong one's SignatureDoesNotMatch). Synchronous.
 */
export function s3Address(ctx: RequestContext): undefined {
  const api = ctx.rt.s3Api;
  if (api === undefined) throw new ProxyError("ServiceUnavailable", { detail: "The S3 API is not enabled in this configuration" });
  const decoded = decodeComponent(ctx.rawPath);
  if (decoded === undefined) return fail(s3Error("InvalidURI"));
  ctx.path = decoded;
  const req = ctx.req;
  // (before admission, which reads an upload's length, and the signature check)
  if (ctx.method !== "GET" && ctx.method !== "HEAD") collapseRepeatedLength(req.headers);
  const hostBucket = api.domain === undefined ? undefined : bucketFromHost(req.headers.get("host"), api.domain);
  const a = address(decoded, hostBucket);
  // "//bucket/key": an empty bucket segment before a key is no S3 address (it was served as the
  // service: a GetObject of "//b/k" answered 200 with the ListBuckets XML).
  if (a.bucket === "" && a.key !== "") return fail(s3Error("InvalidURI"));

  // STS first: AssumeRoleWithWebIdentity is unsigned (the web identity token is the credential),
  // GetCallerIdentity is signed for the service `sts` and verified by the endpoint once it has read
  // the body its signature covers. A GET of the
  // service naming an STS `Action` (STS's query-string form, which no S3 request has) is an STS
  // call too, as AWS STS answers it. (A POST whose query names no Action but something else, an S3
  // sub-resource such as `?delete`, or one with no query signed for s3, is S3's: operationOf's 405.
  // The query is read decoded, as STS reads it; one that cannot be decoded is no STS call.)
  if (a.bucket === "" && (ctx.method === "POST" || ctx.method === "GET") && isStsCall(ctx.method, parseRawQuery(ctx.query), req.headers)) {
    ctx.action = ACTION_OF.AssumeRoleWithWebIdentity;
    ctx.operation = "AssumeRoleWithWebIdentity";
    (ctx as S3RequestContext).s3 = { api, op: "AssumeRoleWithWebIdentity", principal: undefined, query: [], overrides: [], headers: req.headers };
    return undefined;
  }

  // An OPTIONS the CORS phase did not answer: one without Origin is S3's 400, which S3 answers
  // before it looks at a CORS configuration (it was 403 on a bucket without `cors`, and on the
  // service); any other to a bucket without `cors` (or the service, the STS endpoint, without
  // s3_api.sts.cors) S3's 403; to one with it, a preflight lacking Access-Control-Request-Method
  // (browsers send both), S3's 400.
  if (ctx.method === "OPTIONS") {
    // With Origin: an Access-Control-Request-Method naming no S3 method is S3's 400 (it was the
    // 403 of a method the rules do not allow); a bucket that does not exist S3's "Bucket not
    // found"; the 403s name the method asked about and the resource, as S3's do.
    const bucket = a.bucket === "" ? undefined : configuredBucket(ctx.rt, a.bucket);
    // (counted and logged under the bucket it names, as a bucket with cors's preflight and the
    // plain front's are: a bucket without cors's was `_none`)
    if (bucket !== undefined) {
      ctx.bucket = bucket;
      ctx.bucketName = bucket.name;
    }
    const cors = a.bucket === "" ? stsCors(ctx) : bucket?.cfg.cors;
    const missing = req.headers.has("origin") ? "Access-Control-Request-Method" : "Origin";
    if (cors === undefined && missing !== "Origin") {
      // (the access log's reason: S3's message says as much, but the line had only its code)
      if (a.bucket !== "" && bucket === undefined) {
        ctx.errorReason = `CORS preflight refused: no bucket ${a.bucket.slice(0, 64)} is configured`;
        return fail(s3PreflightRefusal(ctx, "CORSResponse: Bucket not found", true));
      }
      ctx.errorReason = `CORS preflight refused: ${a.bucket === "" ? "s3_api.sts.cors is not set" : `bucket ${bucket!.name} has no cors`}`;
      return fail(s3PreflightRefusal(ctx, `CORSResponse: CORS is not enabled for this ${a.bucket === "" ? "endpoint" : "bucket"}.`));
    }
    return fail(s3Error("BadRequest", `Insufficient information. ${missing} request header needed.`));
  }
  if (a.bucket !== "") {
    const bucket = configuredBucket(ctx.rt, a.bucket);
    if (bucket !== undefined) {
      ctx.bucket = bucket;
      ctx.bucketName = bucket.name;
    }
  }
  // Virtual-hosted, a key starting with "/" (a target starting "//") is never served (keyRefusal),
  // and the bun listener cannot see a target with two leading empty segments raw (`///k`: it hands
  // it over as a dot segment, src/http/raw-target.ts), so its signature never verified: a client
  // with the key `//k` was told SignatureDoesNotMatch, as if its secret were wrong. Refused here,
  // before the signature, as the path-style "//bucket/key" is: a refusal whoever asks.
  if (hostBucket !== undefined && a.key.charCodeAt(0) === 47) return fail(s3Error("InvalidArgument", EMPTY_SEGMENT_REFUSAL, { ArgumentName: "key" }));
  (ctx as S3RequestContext).s3Addressed = a;
  return undefined;
}

/** The bucket a virtual-hosted request's Host names (s3Address's reading), for the rare paths that need it again. */
function hostBucketOf(ctx: RequestContext, api: S3Identities): string | undefined {
  return api.domain === undefined ? undefined : bucketFromHost(ctx.req.headers.get("host"), api.domain);
}

/** Phase (after admission): SigV4 identity, operation, bucket and key. Synchronous, but for a chunked body to an operation that takes none (noContent). */
export function s3Parse(ctx: RequestContext): undefined | Promise<undefined> {
  const addressed = (ctx as S3RequestContext).s3Addressed;
  if (addressed === undefined) return undefined; // (the STS endpoint: s3Address set it up)
  const api = ctx.rt.s3Api!;
  const req = ctx.req;
  let a = addressed;
  const metrics = ctx.svc.metrics;
  const v = verifyRequest(ctx, api.lookup, api.verifyOptions());
  if (v.kind === "error") {
    metrics.auth("invalid");
    // (a presigned URL refused, expired or mis-signed, is logged as one: the line tells why a link failed)
    ctx.presigned = QUERY_SIGNED.test(ctx.query);
    // (which client is misconfigured: the key it named, cut as S3's error body cuts it)
    if (v.accessKeyId !== undefined) ctx.accessKeyId = v.accessKeyId.slice(0, 128);
    addressedBy(ctx, a);
    return fail({ code: v.code, status: v.status, message: v.message, details: v.details, headers: v.headers });
  }
  // Signed with every raw "+" read as a space (S3's reading): the key is read so too.
  if (v.kind === "ok" && v.plusAsSpace === true) {
    const spaced = decodeComponent(ctx.rawPath.replaceAll("+", "%20"));
    if (spaced === undefined) return fail(s3Error("InvalidURI"));
    ctx.path = spaced;
    a = address(spaced, hostBucketOf(ctx, api));
  }
  let principal: S3Principal | undefined;
  let payload: PayloadInfo = ANONYMOUS_PAYLOAD;
  const bodied = v.kind === "ok" ? verifiedHasBody(v, req.headers) : announcesBody(req.headers);
  if (v.kind === "ok") {
    principal = v.principal;
    ctx.presigned = v.presigned;
    // (counted "success" by s3Permit once the grants allow the request: a request they refuse is
    // one outcome, "forbidden", as a claim rule's refusal is on the plain front)
    adoptPrincipal(ctx, principal);
    // The signed payload of a bodiless request must be the empty one.
    if (v.mode === "sha256" && v.payloadHash !== EMPTY_SHA256 && !bodied) {
      return fail(s3Error("XAmzContentSHA256Mismatch", undefined, { ClientComputedContentSHA256: v.payloadHash, S3ComputedContentSHA256: EMPTY_SHA256 }));
    }
    // (what the uploads read: a GET or HEAD has no body to verify, none is made for it)
    if (ctx.method !== "GET" && ctx.method !== "HEAD") {
      payload = { mode: v.mode, hash: v.payloadHash, signedHeaders: v.signedHeaders, headerHash: !v.presigned };
      // The seed of the chunk-signature chain (the two signed aws-chunked modes).
      if (v.mode === "streaming" || v.mode === "streaming-trailer") {
        payload.signing = { signingKey: v.signingKey, amzDate: v.amzDate, scope: v.scope, seedSignature: v.seedSignature };
      }
    }
  }

  // A presigned URL's x-amz-* headers hoisted into its query count as the headers they stand for
  // (a presigned CopyObject carries X-Amz-Copy-Source there: read as a PutObject it would replace
  // the destination with an empty body).
  const headers = v.kind === "ok" && v.presigned ? withHoistedHeaders(req.headers, v.query) : req.headers;
  const op = operationOf(ctx.method, a, v.query, ctx.method === "PUT" && headers.has("x-amz-copy-source"));
  if (typeof op !== "string") {
    // An operation this front does not serve (or a bucket setting it refuses), on a bucket it does not serve either: S3's
    // NoSuchBucket (`aws s3 rb s3://typo` was told DeleteBucket is not implemented).
    const bucket = a.bucket === "" ? undefined : a === addressed ? ctx.bucket : configuredBucket(ctx.rt, a.bucket);
    if ((op.code === "NotImplemented" || op.code === "AccessDenied") && a.bucket !== "" && bucket === undefined) {
      return fail(s3Error("NoSuchBucket", undefined, { BucketName: a.bucket.slice(0, 255) }));
    }
    // S3 authenticates and authorizes before it finds an operation unsupported: an unsigned
    // `?restore` or `?retention`, or one from an identity without a grant on the bucket, is
    // AccessDenied, not 501 (which told anyone the proxy's gaps, and a caller refused get-object-acl
    // was told get-object-retention merely did not exist). (On this error path only: a served
    // operation's grant is s3Permit's.)
    if (op.code === "NotImplemented" && (bucket === undefined ? principal === undefined : !mayAccess(ctx.rt, principal, bucket, ANY_GRANT))) {
      ctx.errorReason = refusalReason(ctx.rt, principal, bucket, ANY_GRANT);
      return fail(accessRefusal(ctx.rt, principal, metrics));
    }
    // (and the bucket's authorizer, with the operation's own action: a caller its policy refuses
    // was told the operation merely is not implemented, without it being asked)
    if (op.code === "NotImplemented" && bucket?.authorizer !== undefined) {
      ctx.bucket = bucket;
      ctx.bucketName = bucket.name;
      ctx.key = a.key;
      ctx.action = unservedAction(ctx.method, a.key, v.query);
      return failAuthorized(ctx, op);
    }
    return fail(op);
  }
  ctx.operation = op;
  if (op === "CopyObject" || op === "UploadPartCopy") ctx.copySource = copySourceLabel(headers.get("x-amz-copy-source"));
  // (a chunked body, whose length is told when it ends, is read below: empty, it is no content)
  let unread = false;
  if (bodied && (ctx.method === "GET" || ctx.method === "HEAD" || TAKES_NO_BODY.has(op))) {
    if (ctx.method === "GET" || ctx.method === "HEAD" || !chunkedOnly(req.headers)) return fail(s3Error("UnexpectedContent"));
    unread = true;
  }
  ctx.action = ACTION_OF[op];
  if (op === "GetObjectAttributes" && v.query.some(([k]) => k === "versionId")) ctx.action = "s3:GetObjectVersionAttributes";
  else if ((op === "GetObjectAcl" || op === "PutObjectAcl") && v.query.some(([k]) => k === "versionId")) ctx.action = op === "GetObjectAcl" ? "s3:GetObjectVersionAcl" : "s3:PutObjectVersionAcl";

  if (a.bucket !== "") {
    // (s3Address looked it up, for admission; again only when the key's reading moved the address)
    const bucket = a === addressed ? ctx.bucket : configuredBucket(ctx.rt, a.bucket);
    // The proxy serves the buckets its config names; it creates none.
    if (bucket === undefined && op === "CreateBucket") return fail(s3Error("AccessDenied", "This proxy does not create buckets: the buckets it serves are those its configuration names."));
    if (bucket === undefined) return fail(s3Error("NoSuchBucket", hostBucketOf(ctx, api) !== undefined && /[A-Z]/.test(req.headers.get("host") ?? "") ? UPPERCASE_HOST : undefined, { BucketName: a.bucket.slice(0, 255) }));
    ctx.bucket = bucket;
    ctx.bucketName = bucket.name;
    // (a bucket's document asked at a key's path is the bucket's: the key is not its)
    if (a.key !== "" && (op === "GetObject" || !KEY_IGNORED.has(op))) {
      // (a UTF-16 unit is at most 3 UTF-8 bytes: only a long key needs counting)
      if (keyTooLong(a.key)) return fail(s3Error("KeyTooLongError", undefined, { Size: String(Buffer.byteLength(a.key)), MaxSizeAllowed: String(MAX_KEY_BYTES) }));
      const refusal = keyRefusal(a.key);
      if (refusal !== undefined) return fail(s3Error("InvalidArgument", refusal, { ArgumentName: "key" }));
      ctx.key = a.key;
    }
  }
  if (LISTINGS.has(op)) {
    const prefix = listingPrefix(v.query);
    if (typeof prefix !== "string") return fail(prefix);
    ctx.key = prefix;
  }
  let overrides: ReadonlyArray<readonly [string, string]> = NO_PARAMETERS;
  if (OBJECT_READS.has(op) || op === "GetObjectAttributes") {
    if (op !== "GetObjectAttributes") {
      const o = responseOverrides(v.query, principal !== undefined);
      if (isS3Error(o)) return fail(o);
      overrides = o;
    }
    // A customer key (SSE-C) is not sent upstream (and a cached copy would be served without it):
    // refused, as on writes, rather than dropped. (Every x-amz-* header present is signed: the
    // signed names tell, with no header lookup on an ordinary GetObject. A presigned URL's
    // parameters hoisted into its query, as the Ruby SDK's presigner puts a customer key there
    // and S3 reads it, are no signed header: looked up among the headers they stand for.)
    // GetObjectAttributes too: S3 needs the key to read an SSE-C object's attributes, and the
    // upstream was asked without it.
    if (v.kind === "ok" && headers === req.headers ? v.signedHeaders.some(isCustomerKeyHeader) : headers.has(SSE_C_ALGORITHM) || headers.has("x-amz-server-side-encryption-customer-key")) {
      return fail(s3Error("NotImplemented", "Customer-provided encryption keys (x-amz-server-side-encryption-customer-*) are not supported through this proxy.", { Header: SSE_C_ALGORITHM }));
    }
  }
  (ctx as S3RequestContext).s3 = { api, op, principal, query: v.query, overrides, payload, headers };
  return unread ? noContent(ctx, payload) : undefined;
}

/**
 * A request that takes no body, sent a chunked one (Transfer-Encoding, no length): S3 accepts it
 * when it turns out empty (`0\r\n\r\n`: some HTTP stacks frame bodiless requests so); one with
 * content is UnexpectedContent, as a body of a declared length is at once. Empty, a signed payload
 * hash must be the empty body's, as for a request sent without a body.
 */
async function noContent(ctx: RequestContext, payload: PayloadInfo): Promise<undefined> {
  if (!(await chunkedBodyEmpty(ctx.req, ctx))) return fail(s3Error("UnexpectedContent", undefined, undefined, REFUSED_BODY_CLOSE));
  if (payload.mode === "sha256" && payload.hash !== EMPTY_SHA256) {
    return fail(s3Error("XAmzContentSHA256Mismatch", undefined, { ClientComputedContentSHA256: payload.hash, S3ComputedContentSHA256: EMPTY_SHA256 }));
  }
  return undefined;
}

/**
 * A request refused before its signature was verified (SignatureDoesNotMatch, InvalidAccessKeyId,
 * a malformed Authorization): the configured bucket, the key and the operation (and a copy's
 * source) its path and query name, as labels for the access log and the audit trail (the plain
 * front records them for its 401/403 too). Nothing is served, authorized or asked upstream on them.
 */
function addressedBy(ctx: RequestContext, a: { bucket: string; key: string }): void {
  const query = parseRawQuery(ctx.query);
  if (query !== undefined) {
    const op = operationOf(ctx.method, a, query, ctx.method === "PUT" && ctx.req.headers.has("x-amz-copy-source"));
    if (typeof op === "string") {
      ctx.action = ACTION_OF[op];
      ctx.operation = op;
      if (op === "CopyObject" || op === "UploadPartCopy") ctx.copySource = copySourceLabel(ctx.req.headers.get("x-amz-copy-source"));
    }
  }
  const bucket = configuredBucket(ctx.rt, a.bucket);
  if (bucket === undefined) return;
  ctx.bucket = bucket;
  ctx.bucketName = bucket.name;
  if (a.key !== "" && !keyTooLong(a.key)) ctx.key = a.key;
}

/** A query string that signs its request (SigV4's X-Amz-Algorithm, -Credential, -Signature). */
const QUERY_SIGNED = /[?&]X-Amz-(?:Algorithm|Credential|Signature)=/;

/** A presigned URL's own parameters (SigV4 query auth), never headers. */
const QUERY_AUTH = new Set(["x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires", "x-amz-signedheaders", "x-amz-signature", "x-amz-security-token", "x-amz-content-sha256"]);

/**
 * The headers of a presigned request with the x-amz-* headers its signer moved into the query
 * string (the AWS SDKs' presigners hoist x-amz-meta-*, x-amz-tagging, x-amz-acl, … there unless
 * told not to). S3 reads them as the headers they stand for: a presigned PutObject stores that
 * metadata and those tags, and an ACL there is refused as in a header. They were signed as part of
 * the query. A header sent as well wins. A non-ASCII value goes on as its UTF-8 bytes (the
 * JS SDK's presigner percent-encodes a metadata value's UTF-8 there). Checksum values are not taken: S3 does not enforce a
 * checksum hoisted into a presigned URL either.
 */
function withHoistedHeaders(headers: Headers, query: ReadonlyArray<readonly [string, string]>): Headers {
  let out: Headers | undefined;
  for (const [k, v] of query) {
    if (k.length < 7 || (k.charCodeAt(0) | 0x20) !== 0x78 /* x */) continue;
    const name = k.toLowerCase();
    if (!name.startsWith("x-amz-") || QUERY_AUTH.has(name) || name.startsWith("x-amz-checksum-") || name === "x-amz-sdk-checksum-algorithm") continue;
    if (headers.has(name)) continue;
    // (the query's value is text, decoded from its percent-encoded UTF-8; a header value is bytes,
    // one Latin-1 character each, as the listener gives them: its UTF-8 bytes, as S3 reads it)
    (out ??= new Headers(headers)).append(name, utf8HeaderValue(v));
  }
  return out ?? headers;
}

/**
 * The prefix a listing names, its key for the authorizer, as the plain front asks about the folder
 * it lists (a policy can then allow listing some prefixes only): the key of the listing's
 * s3:ListBucket (s3:ListBucketVersions, s3:ListBucketMultipartUploads). A parameter given twice is
 * refused: the authorizer must be asked about exactly the prefix the upstream lists (S3 reads the
 * first `prefix=`; checking another one let `?prefix=&prefix=pub/` list the whole bucket under a
 * policy that allows `pub/` only).
 */
function listingPrefix(query: ReadonlyArray<readonly [string, string]>): string | S3Error {
  const repeated = repeatedParameter(query);
  if (repeated !== undefined) return s3Error("InvalidArgument", `The ${repeated.slice(0, 64)} parameter may appear only once in a listing.`, { ArgumentName: repeated.slice(0, 64) });
  let prefix = "";
  let encoded = false;
  for (const [k, val] of query) {
    if (k === "prefix") prefix = val;
    else if (k === "encoding-type") encoded = val === "url";
  }
  for (const [k, val] of query) {
    if (!ECHOED_LISTING_PARAMETERS.has(k) || !NOT_XML_TEXT.test(val)) continue;
    // (and a position or delimiter echoed in the listing: a NUL has no form in XML, not even S3's &#x0;)
    if (val.includes("\0")) return s3Error("InvalidArgument", `A ${k} with a NUL character is not served by this proxy.`, { ArgumentName: k });
    // Echoed as text, any other character XML 1.0 cannot hold (a C0 control, U+FFFE/U+FFFF, a lone
    // surrogate) made the whole listing unreadable to every client; url-encoded, it is plain text.
    if (!encoded) return s3Error("InvalidArgument", `A ${k} holding a character XML 1.0 cannot carry (a control character, U+FFFE or U+FFFF) can be listed only with encoding-type=url.`, { ArgumentName: k });
    // (an upload's or a version's id is echoed as text even then: encoding-type=url encodes keys, prefixes and delimiters)
    if (k.endsWith("-id-marker")) return s3Error("InvalidArgument", `A ${k} holding a character XML 1.0 cannot carry (a control character, U+FFFE or U+FFFF) names no upload or version.`, { ArgumentName: k });
  }
  return prefix;
}

/** A character XML 1.0 cannot hold, as text or as a reference: C0 controls but TAB/LF/CR, U+FFFE/U+FFFF, a lone surrogate. */
const NOT_XML_TEXT = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The listing parameters a listing echoes as text (not url-encoded without encoding-type=url). */
const ECHOED_LISTING_PARAMETERS: ReadonlySet<string> = new Set(["prefix", "delimiter", "marker", "start-after", "key-marker", "version-id-marker", "upload-id-marker"]);

/** The first parameter name that appears more than once, or undefined. */
function repeatedParameter(query: ReadonlyArray<readonly [string, string]>): string | undefined {
  for (let i = 1; i < query.length; i++) {
    const k = query[i]![0];
    for (let j = 0; j < i; j++) if (query[j]![0] === k) return k;
  }
  return undefined;
}

/**
 * Why a virtual-hosted request whose Host has uppercase letters names no bucket: a host name is
 * read in lowercase, as S3 reads it, so a bucket whose name has uppercase letters (a legacy name,
 * which S3 too serves path-style only) is not reached that way.
 */
const UPPERCASE_HOST = "The specified bucket does not exist. A host name is read in lowercase: a bucket whose name has uppercase letters is reached path-style only.";

/** The bucket listings (their authorizer key is the prefix). */
const LISTINGS: ReadonlySet<S3Operation> = new Set<S3Operation>(["ListObjects", "ListObjectsV2", "ListObjectVersions", "ListMultipartUploads"]);

/**
 * The operations on one existing key (its reads, and the writes of its tags and ACL): a missing key
 * is NoSuchKey to a caller who may list the bucket, AccessDenied to others.
 */
const KEY_OPS: ReadonlySet<S3Operation> = new Set<S3Operation>([
  "GetObject", "HeadObject", "GetObjectPart", "HeadObjectPart", "GetObjectVersion", "HeadObjectVersion",
  "GetObjectTagging", "GetObjectAttributes", "GetObjectAcl", "PutObjectTagging", "DeleteObjectTagging", "PutObjectAcl",
]);

const SSE_C_ALGORITHM = "x-amz-server-side-encryption-customer-algorithm";
const isCustomerKeyHeader = (name: string) => name.startsWith("x-amz-server-side-encryption-customer-");

/**
 * The writes whose request has no body in S3's API: one sent a body is refused before anything is
 * done (S3's UnexpectedContent, as a GET's), not carried out while its body is still arriving (a
 * client cut off half-way was left without an answer, its object deleted or copied over) and its
 * signed payload hash never compared with the body it came with.
 */
const TAKES_NO_BODY: ReadonlySet<S3Operation> = new Set<S3Operation>(["DeleteObject", "DeleteObjectVersion", "DeleteObjectTagging", "AbortMultipartUpload", "CreateMultipartUpload", "CopyObject", "UploadPartCopy"]);
/** The object reads that take S3's response-* overrides. */
const OBJECT_READS: ReadonlySet<S3Operation> = new Set<S3Operation>(["GetObject", "HeadObject", "GetObjectPart", "HeadObjectPart", "GetObjectVersion", "HeadObjectVersion"]);

/** An action any grant on a bucket (or a session its rules admit) allows, and no unsigned request: what an operation this front does not serve needs before its 501. */
const ANY_GRANT: S3Action = "s3:GetBucketLocation";

const ANONYMOUS_PAYLOAD: PayloadInfo = Object.freeze({ mode: "unsigned", hash: UNSIGNED_PAYLOAD });

/** Phase: the principal's grants (static keys) or plain-front rules (sessions, anonymous). */
export function s3Permit(ctx: RequestContext): undefined {
  const s = (ctx as S3RequestContext).s3!;
  // PostObject's principal and key are in its form: post-object.ts checks them once it has read them.
  if (s.op === "AssumeRoleWithWebIdentity" || s.op === "PostObject") return undefined;
  // (bucket-less: ListBuckets; a session a reload no longer admits is refused it too)
  const allowed = ctx.bucket === undefined ? s.principal !== undefined && (s.principal.kind !== "session" || sessionAdmitted(ctx.rt, s.principal.claims)) : s.op === "DeleteObjects" ? mayBatchDelete(ctx, s) : mayAccess(ctx.rt, s.principal, ctx.bucket, ctx.action);
  // (a session whose token's key a reload removed: S3's InvalidToken, which says to get new
  // credentials; AccessDenied says they will never do)
  if (!allowed) {
    ctx.errorReason = refusalReason(ctx.rt, s.principal, ctx.bucket, ctx.action);
    return fail(accessRefusal(ctx.rt, s.principal, ctx.svc.metrics));
  }
  if (s.principal !== undefined) ctx.svc.metrics.auth("success");
  return undefined;
}

/**
 * DeleteObjects is decided per key (delete.ts): the request itself needs a read-write bucket and a
 * principal that holds some grant on it (an identity without `delete` then gets AccessDenied per key).
 */
function mayBatchDelete(ctx: RequestContext, s: S3State): boolean {
  const bucket = ctx.bucket!;
  if (bucket.cfg.access !== "read-write" || s.principal === undefined) return false;
  return s.principal.kind === "session" || s.principal.grants.has(bucket.name);
}

/**
 * Phase: the bucket's authorizer, except for DeleteObjects, whose keys it is asked about one by
 * one, and PostObject, whose key is in its form. A write that sets the object's tags
 * (x-amz-tagging on PutObject, CreateMultipartUpload, or CopyObject with tagging directive
 * REPLACE) also needs s3:PutObjectTagging, as in S3: a policy that refuses tagging is not
 * bypassed by tagging on the write.
 */
export function s3Authorize(ctx: RequestContext): undefined | Promise<undefined> {
  const s = (ctx as S3RequestContext).s3!;
  const op = s.op;
  if (op === "DeleteObjects" || op === "PostObject") return undefined;
  const checked = authorize(ctx);
  if (checked === undefined || !setsTags(op, s.headers)) return checked;
  return thenMayTag(ctx, checked);
}

/**
 * The authorizer's decision, then its s3:PutObjectTagging for a write that sets tags. (Functions of
 * their own here and below, not closures in the phases: a closure over a phase's `ctx` made the
 * phase allocate a scope on every request, a GetObject's too.)
 */
async function thenMayTag(ctx: RequestContext, checked: Promise<undefined>): Promise<undefined> {
  await checked;
  if (!(await mayAlso(ctx, "s3:PutObjectTagging"))) throw new ProxyError("Forbidden", { detail: "The authorization policy denied setting the object's tags" });
  return undefined;
}

/** Whether a write sets the object's tags from its x-amz-tagging header. */
function setsTags(op: S3Operation, h: Headers): boolean {
  if (op !== "PutObject" && op !== "CreateMultipartUpload" && op !== "CopyObject") return false;
  if (!h.has("x-amz-tagging")) return false;
  return op !== "CopyObject" || (h.get("x-amz-tagging-directive") ?? "").trim() === "REPLACE";
}

/** Phase: the operation itself. */
export function s3Operate(ctx: RequestContext): Response | Promise<Response> {
  const s = (ctx as S3RequestContext).s3!;
  if (ctx.bucket?.authorizer === undefined || !KEY_OPS.has(s.op)) return operate(ctx, s);
  // A missing key is NoSuchKey only to a caller who may list the bucket: with an authorizer, the
  // grants alone do not say so (renderError), the authorizer is asked for s3:ListBucket too.
  let out: Response | Promise<Response>;
  try {
    out = operate(ctx, s);
  } catch (err) {
    return missingKey(ctx, s, err);
  }
  return out instanceof Promise ? catchMissingKey(ctx, s, out) : out;
}

function catchMissingKey(ctx: RequestContext, s: S3State, out: Promise<Response>): Promise<Response> {
  return out.catch((err: unknown) => missingKey(ctx, s, err));
}

/** Rethrows `err`; a NoSuchKey first asks the authorizer whether the caller may list the key's name. */
async function missingKey(ctx: RequestContext, s: S3State, err: unknown): Promise<never> {
  if (err instanceof ProxyError && (s3ErrorOf(err) ?? fromProxyError(err)).code === "NoSuchKey" && mayAccess(ctx.rt, s.principal, ctx.bucket!, "s3:ListBucket")) {
    // Fails closed, as the plain front's folder check: an authorizer that cannot answer (even one
    // set to fail open) does not say the caller may learn which keys exist (AccessDenied).
    if (!(await mayAlso(ctx, "s3:ListBucket", true).catch(() => false))) s.listDenied = true;
  }
  throw err;
}

function operate(ctx: RequestContext, s: S3State): Response | Promise<Response> {
  switch (s.op) {
    case "AssumeRoleWithWebIdentity":
      return stsEndpoint(ctx, s.api);
    case "ListBuckets":
      return listBuckets(ctx, s.api, s.principal!, s.query);
    case "HeadBucket":
      return headBucket(ctx, s.api);
    case "GetBucketLocation":
      return bucketLocation(ctx, s.api);
    case "GetBucketVersioning":
      return bucketVersioning(ctx);
    case "GetBucketAcl":
      return getBucketAclOp(ctx);
    case "GetObjectAcl":
      return getObjectAclOp(ctx);
    case "GetBucketPolicy":
    case "GetBucketPolicyStatus":
    case "GetBucketCors":
    case "GetBucketRequestPayment":
    case "GetBucketEncryption":
    case "GetBucketTagging":
    case "GetBucketLifecycleConfiguration":
    case "GetBucketWebsite":
    case "GetPublicAccessBlock":
    case "GetBucketOwnershipControls":
    case "GetBucketLogging":
    case "GetBucketNotificationConfiguration":
    case "GetBucketAccelerateConfiguration":
    case "GetObjectLockConfiguration":
    case "GetBucketReplication":
    case "ListBucketAnalyticsConfigurations":
    case "ListBucketInventoryConfigurations":
    case "ListBucketMetricsConfigurations":
    case "ListBucketIntelligentTieringConfigurations":
    case "GetBucketAnalyticsConfiguration":
    case "GetBucketInventoryConfiguration":
    case "GetBucketMetricsConfiguration":
    case "GetBucketIntelligentTieringConfiguration":
      return bucketConfigOp(ctx, s.op);
    case "PutBucketAcl":
    case "PutObjectAcl":
      return putAclOp(ctx);
    case "CreateBucket":
      return createBucketOp(ctx, s.api.region);
    case "ListObjects":
    case "ListObjectsV2":
    case "ListObjectVersions":
      return listObjects(ctx, s.op, s.query);
    case "GetObject":
    case "HeadObject":
      return getObject(ctx, s.overrides);
    case "GetObjectPart":
    case "HeadObjectPart":
    case "GetObjectVersion":
    case "HeadObjectVersion":
      return getObjectDirect(ctx, s.overrides);
    case "GetObjectTagging":
      return objectTagging(ctx);
    case "GetObjectAttributes":
      return objectAttributes(ctx);
    case "PutObjectTagging":
      return putObjectTaggingOp(ctx);
    case "DeleteObjectTagging":
      return deleteObjectTaggingOp(ctx);
    case "PutObject":
      refuseAcls(ctx);
      return putObjectOp(ctx);
    case "PostObject":
      return postObjectOp(ctx);
    case "CopyObject":
      refuseAcls(ctx);
      return patientlyAnswered(ctx, copyObjectOp(ctx));
    case "UploadPart":
      return uploadPartOp(ctx);
    case "UploadPartCopy":
      return patientlyAnswered(ctx, uploadPartCopyOp(ctx));
    case "CreateMultipartUpload":
      refuseAcls(ctx);
      return createMultipartUploadOp(ctx);
    case "CompleteMultipartUpload":
      return patientlyAnswered(ctx, completeMultipartUploadOp(ctx));
    case "AbortMultipartUpload":
      return abortMultipartUploadOp(ctx);
    case "ListParts":
      return listPartsOp(ctx);
    case "ListMultipartUploads":
      return listMultipartUploadsOp(ctx);
    case "DeleteObject":
    case "DeleteObjectVersion":
      return deleteObjectOp(ctx);
    case "DeleteObjects":
      return deleteObjectsOp(ctx);
  }
}

/** `work` answered patiently (patient.ts), a failure rendered as this front's error. */
function patientlyAnswered(ctx: RequestContext, work: Promise<Response>): Promise<Response> {
  return patiently(ctx, work, (e) => failed(s3Front, ctx, e));
}

/**
 * A request target over server.security_limits.max_uri_length: S3's KeyTooLongError when the key
 * is what is long (over 1024 bytes), else InvalidURI saying so (a long query or bucket name has no
 * key to blame: it was KeyTooLongError for a listing with a long prefix).
 */
function uriTooLong(ctx: RequestContext): S3Error {
  const path = splitUrl(ctx.target).path;
  const decoded = decodeComponent(path) ?? path;
  const domain = ctx.rt.s3Api?.domain;
  const key = address(decoded, domain === undefined ? undefined : bucketFromHost(ctx.req.headers.get("host"), domain)).key;
  if (keyTooLong(key)) return s3Error("KeyTooLongError", undefined, { Size: String(Buffer.byteLength(key)), MaxSizeAllowed: String(MAX_KEY_BYTES) });
  return s3Error("InvalidURI", "The request URI is longer than this endpoint accepts.");
}

/** A shared phase's error (rate limit, overload) on the STS endpoint, in STS's dialect. */
function stsFailure(e: S3Error, ctx: RequestContext): Response {
  const code = e.code === "RequestTimeout" ? "RequestTimeout" : e.status === 403 ? "AccessDenied" : e.status >= 500 ? "ServiceUnavailable" : "InvalidParameterValue";
  const res = stsErrorResponse(stsError(code, e.message), ctx.id);
  for (const [k, v] of Object.entries(e.headers ?? {})) res.headers.set(k, v);
  // (a 503 says when to retry, as the S3 answers' do)
  if (res.status === 503 && !res.headers.has("retry-after")) res.headers.set("retry-after", "1");
  return res;
}

export const s3Front: Front = {
  name: "s3",
  phases: [guard, s3Cors(() => s3Front), s3Address, admit, s3Parse, s3Permit, s3Authorize, s3Operate],
  renderError(err, ctx) {
    // A request refused before s3Parse read it (a rate limit, a concurrency or upload cap, the
    // bucket's ip_filter) is named by the operation, bucket and key its path and query address, as
    // one refused for its signature is: the write metrics count it, the access log and the audit
    // trail name it.
    const addressed = (ctx as S3RequestContext).s3Addressed;
    if (ctx.operation === undefined && addressed !== undefined && (ctx as S3RequestContext).s3 === undefined) addressedBy(ctx, addressed);
    let e = err.code === "UriTooLong" ? uriTooLong(ctx) : (s3ErrorOf(err) ?? fromProxyError(err));
    // (a shared read's upstream refusal keeps S3's message and details, as a write's does)
    if (ctx.bucket !== undefined && s3ErrorOf(err) === undefined) e = withUpstreamWords(e, err.cause, upstreamBucketsOf(ctx.bucket.upstream));
    // (and an upstream's ArgumentValue only when the client wrote it)
    e = clientsArgument(e, ctx);
    const s = (ctx as S3RequestContext).s3;
    // S3 answers a missing key with 404 only to a caller who may list the bucket (s3:ListBucket),
    // and 403 AccessDenied to anyone else, so that a reader cannot learn which keys exist.
    if (e.code === "NoSuchKey" && s !== undefined && ctx.bucket !== undefined && KEY_OPS.has(s.op)) {
      if (s.listDenied === true || !mayAccess(ctx.rt, s.principal, ctx.bucket, "s3:ListBucket")) e = s3Error("AccessDenied");
      else if (ctx.key !== "" && e.details?.Key === undefined) e.details = { ...e.details, Key: ctx.key };
    }
    // (S3's NoSuchVersion names the key and the version asked for)
    if (e.code === "NoSuchVersion" && e.details?.VersionId === undefined && s !== undefined && ctx.key !== "") {
      const versionId = queryValue(ctx, "versionId");
      if (versionId !== undefined) e.details = { ...e.details, Key: ctx.key, VersionId: versionId.slice(0, 1024) };
    }
    // (S3's NoSuchUpload names the upload asked for, as the client wrote it: the upstream's answer
    // is not relayed word for word, and an empty id is refused before it goes out)
    if (e.code === "NoSuchUpload" && e.details?.UploadId === undefined && s !== undefined) {
      const id = queryValue(ctx, "uploadId");
      if (id !== undefined) e.details = { ...e.details, UploadId: id.slice(0, 1024) };
    }
    // (S3's NoSuchBucket names the bucket: here the proxy's, never the upstream's, which a store
    // that lost its bucket answers with)
    if (e.code === "NoSuchBucket" && e.details?.BucketName === undefined && ctx.bucket !== undefined) e.details = { ...e.details, BucketName: ctx.bucket.name };
    // (S3's InvalidRange names the range asked for and the object's size)
    if (e.code === "InvalidRange" && e.details === undefined) {
      const size = /^bytes \*\/(\d+)$/.exec(e.headers?.["content-range"] ?? "")?.[1];
      const range = ctx.req.headers.get("range");
      if (size !== undefined && range !== null) e.details = { RangeRequested: range.slice(0, 256), ActualObjectSize: size };
    }
    // (the access log, audit trail and write metrics name an authorizer's failure as such; the
    // client sees S3's ServiceUnavailable, which SDKs retry)
    ctx.errorCode = err.code === "AuthorizerUnavailable" ? err.code : e.code;
    // S3 names the condition that failed; on a read it is If-Match, else If-Unmodified-Since (the
    // only two that answer 412 on GetObject/HeadObject, If-Match deciding when both are sent).
    if (e.code === "PreconditionFailed" && e.details?.Condition === undefined && (ctx.method === "GET" || ctx.method === "HEAD")) {
      // (an empty If-Match is not forwarded, nor checked: it cannot be the one that failed)
      e.details = { ...e.details, Condition: (ctx.req.headers.get("if-match") ?? "").trim() !== "" ? "If-Match" : "If-Unmodified-Since" };
    }
    if ((ctx as S3RequestContext).s3?.op === "AssumeRoleWithWebIdentity") return stsFailure(e, ctx);
    // S3 names a bucket's region on HeadBucket whatever the answer (a caller without access
    // included): the SDKs and tools discover the region to sign for that way.
    if (ctx.operation === "HeadBucket" && ctx.bucket !== undefined && e.status === 403 && ctx.rt.s3Api !== undefined && e.headers?.["x-amz-bucket-region"] === undefined) {
      e = { ...e, headers: { ...e.headers, "x-amz-bucket-region": ctx.rt.s3Api.region } };
    }
    // (the access log's s3_error is the S3 code of every error answer, the proxy's own too; an
    // upstream's refusal keeps the upstream's code, set with its s3_request_id)
    ctx.s3Code ??= e.code;
    // (a version's bodiless 404 may be S3's NoSuchVersion, not the NoSuchKey guessed: no length either)
    const guessed = guessedFromStatus(err.cause) || ((err.cause as { bareStatus?: unknown } | undefined)?.bareStatus === 404 && versionIdOf(ctx) !== undefined);
    return s3ErrorResponse(e, { requestId: ctx.id, resource: ctx.path || undefined, method: ctx.method, unknownLength: guessed });
  },
};
