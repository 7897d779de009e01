/**
 * The S3 front's error dialect: S3's codes, statuses and messages (as documented in the S3 API
 * reference "Error responses"), rendered as S3's XML body. Messages are fixed strings or built
 * from client-supplied values only; never a stack trace, a secret or an upstream internal.
 */
import { ONLY_IF_CACHED_MISS, type ErrorCode, type ProxyError } from "../../errors.ts";
import { XML_DECL, el, keyEl } from "./xml.ts";
import { CREDENTIAL_CODES } from "../../s3/errors.ts";

export const S3_ERRORS = {
  AccessDenied: { status: 403, message: "Access Denied" },
  AccessForbidden: { status: 403, message: "CORSResponse: This CORS request is not allowed." },
  AuthorizationHeaderMalformed: { status: 400, message: "The authorization header you provided is invalid." },
  AuthorizationQueryParametersError: { status: 400, message: "The authorization query parameters are invalid." },
  BucketAlreadyOwnedByYou: { status: 409, message: "Your previous request to create the named bucket succeeded and you already own it." },
  ConditionalRequestConflict: { status: 409, message: "The conditional request cannot succeed due to a conflicting operation against this resource." },
  IllegalLocationConstraintException: { status: 400, message: "The location constraint is incompatible for the region specific endpoint this request was sent to." },
  InvalidLocationConstraint: { status: 400, message: "The specified location-constraint is not valid" },
  InvalidBucketState: { status: 409, message: "The request is not valid with the current state of the bucket." },
  InvalidBucketAclWithObjectOwnership: { status: 400, message: "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting" },
  InvalidStorageClass: { status: 400, message: "The storage class you specified is not valid." },
  BadRequest: { status: 400, message: "Bad Request" },
  BadDigest: { status: 400, message: "The Content-MD5 or checksum value that you specified did not match what the server received." },
  AccessControlListNotSupported: { status: 400, message: "The bucket does not allow ACLs" },
  EntityTooLarge: { status: 400, message: "Your proposed upload exceeds the maximum allowed size." },
  EntityTooSmall: { status: 400, message: "Your proposed upload is smaller than the minimum allowed object size." },
  // S3 documents ExpiredToken and InvalidToken as 400 (the SDKs do not refresh credentials on them:
  // they re-assume only near the credentials' Expiration; see s3_api.sts.previous_session_keys).
  ExpiredToken: { status: 400, message: "The provided token has expired." },
  IncorrectNumberOfFilesInPostRequest: { status: 400, message: "POST requires exactly one file upload per request." },
  IncompleteBody: { status: 400, message: "You did not provide the number of bytes specified by the Content-Length HTTP header." },
  InternalError: { status: 500, message: "We encountered an internal error. Please try again." },
  InvalidAccessKeyId: { status: 403, message: "The AWS Access Key Id you provided does not exist in our records." },
  InvalidArgument: { status: 400, message: "Invalid Argument" },
  InvalidChunkSizeError: { status: 403, message: "Only the last chunk is allowed to have a size less than 8192 bytes" },
  InvalidBucketName: { status: 400, message: "The specified bucket is not valid." },
  InvalidDigest: { status: 400, message: "The Content-MD5 you specified is not valid." },
  InvalidObjectState: { status: 403, message: "The operation is not valid for the current state of the object." },
  InvalidPolicyDocument: { status: 400, message: "The content of the form does not meet the conditions specified in the policy document." },
  InvalidPart: { status: 400, message: "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag." },
  InvalidPartNumber: { status: 416, message: "The requested partnumber is not satisfiable" },
  InvalidPartOrder: { status: 400, message: "The list of parts was not in ascending order. The parts list must be specified in order by part number." },
  InvalidRange: { status: 416, message: "The requested range is not satisfiable" },
  InvalidRequest: { status: 400, message: "Invalid Request" },
  InvalidTag: { status: 400, message: "The tag provided was not a valid tag." },
  InvalidToken: { status: 400, message: "The provided token is malformed or otherwise invalid." },
  InvalidURI: { status: 400, message: "Couldn't parse the specified URI." },
  KeyTooLongError: { status: 400, message: "Your key is too long" },
  MetadataTooLarge: { status: 400, message: "Your metadata headers exceed the maximum allowed metadata size." },
  MalformedTrailerError: { status: 400, message: "The request contained trailing data that was not well-formed or did not conform to our published schema." },
  MalformedPOSTRequest: { status: 400, message: "The body of your POST request is not well-formed multipart/form-data." },
  MalformedXML: { status: 400, message: "The XML you provided was not well-formed or did not validate against our published schema" },
  MaxMessageLengthExceeded: { status: 400, message: "Your request was too big." },
  MaxPostPreDataLengthExceeded: { status: 400, message: "Your POST request fields preceding the upload file were too large." },
  MethodNotAllowed: { status: 405, message: "The specified method is not allowed against this resource." },
  MissingContentLength: { status: 411, message: "You must provide the Content-Length HTTP header." },
  MissingSecurityHeader: { status: 400, message: "Your request is missing a required header." },
  NoSuchBucket: { status: 404, message: "The specified bucket does not exist" },
  NoSuchBucketPolicy: { status: 404, message: "The bucket policy does not exist" },
  NoSuchConfiguration: { status: 404, message: "The specified configuration does not exist." },
  NoSuchCORSConfiguration: { status: 404, message: "The CORS configuration does not exist" },
  NoSuchKey: { status: 404, message: "The specified key does not exist." },
  NoSuchLifecycleConfiguration: { status: 404, message: "The lifecycle configuration does not exist" },
  NoSuchPublicAccessBlockConfiguration: { status: 404, message: "The public access block configuration was not found" },
  NoSuchTagSet: { status: 404, message: "The TagSet does not exist" },
  NoSuchUpload: { status: 404, message: "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed." },
  NoSuchVersion: { status: 404, message: "The specified version does not exist." },
  NoSuchWebsiteConfiguration: { status: 404, message: "The specified bucket does not have a website configuration" },
  NotImplemented: { status: 501, message: "A header you provided implies functionality that is not implemented" },
  ObjectLockConfigurationNotFoundError: { status: 404, message: "Object Lock configuration does not exist for this bucket" },
  OperationAborted: { status: 409, message: "A conflicting conditional operation is currently in progress against this resource. Try again." },
  PreconditionFailed: { status: 412, message: "At least one of the pre-conditions you specified did not hold" },
  ReplicationConfigurationNotFoundError: { status: 404, message: "The replication configuration was not found" },
  RequestHeaderSectionTooLarge: { status: 400, message: "Your request header section exceeds the maximum allowed size." },
  RequestTimeTooSkewed: { status: 403, message: "The difference between the request time and the current time is too large." },
  RequestTimeout: { status: 400, message: "Your socket connection to the server was not read from or written to within the timeout period." },
  ServerSideEncryptionConfigurationNotFoundError: { status: 404, message: "The server side encryption configuration was not found" },
  ServiceUnavailable: { status: 503, message: "Please reduce your request rate." },
  SignatureDoesNotMatch: { status: 403, message: "The request signature we calculated does not match the signature you provided. Check your key and signing method." },
  SlowDown: { status: 503, message: "Please reduce your request rate." },
  UnexpectedContent: { status: 400, message: "This request does not support content." },
  XAmzContentSHA256Mismatch: { status: 400, message: "The provided 'x-amz-content-sha256' header does not match what was computed." },
  // Not S3's (S3 caches nothing): the answer to Cache-Control: only-if-cached with no fresh cached
  // copy, RFC 9111's 504 under a code of its own (it was 503 ServiceUnavailable, which SDKs and
  // operators read as an outage or a throttle).
  NotCached: { status: 504, message: "Cache-Control: only-if-cached, and no fresh copy of the object is cached." },
} as const satisfies Record<string, { status: number; message: string }>;
// Not in the list on purpose: S3 has no "TooManyParts"; part numbers outside 1..10000 are
// InvalidArgument ("Part number must be an integer between 1 and 10000, inclusive").

export type S3ErrorCode = keyof typeof S3_ERRORS;

/** An S3 error before rendering. `details` become extra child elements, as S3 adds them. */
export interface S3Error {
  code: S3ErrorCode;
  status: number;
  message: string;
  details?: Record<string, string>;
  /** Extra response headers (Retry-After, Content-Range, Allow...). */
  headers?: Record<string, string>;
  /** details.ArgumentValue is an upstream's word: written only when the client's request holds it (relay.ts clientWrote). */
  upstreamArgument?: true;
}

export function s3Error(
  code: S3ErrorCode,
  message?: string,
  details?: Record<string, string>,
  headers?: Record<string, string>,
): S3Error {
  const e: S3Error = { code, status: S3_ERRORS[code].status, message: message ?? S3_ERRORS[code].message };
  if (details !== undefined) e.details = details;
  if (headers !== undefined) e.headers = headers;
  return e;
}

/**
 * An element of what the client's request may have put in (a Key, the Resource, a message or
 * detail quoting either): its C0 controls as S3 writes them, numeric references (`&#x1;`), as the
 * listings write them (escapeListingText), not U+FFFD (`GET /b/missing%01x`'s Key was
 * `missing\uFFFDx`, another key than the client's). A NUL, which has no XML form at all (the
 * front refuses it in a key: its 400's Resource holds it), stays U+FFFD.
 */
const clientEl = (name: string, text: string): string => keyEl(name, text.includes("\0") ? text.replaceAll("\0", "\ufffd") : text);

/**
 * `<Error><Code/><Message/>[details]<Resource/><RequestId/></Error>` with every value escaped.
 * Detail names are element names chosen by this codebase, never by the client.
 */
export function renderS3ErrorXml(err: S3Error, opts: { resource?: string; requestId: string; hostId?: string }): string {
  let xml = XML_DECL + "<Error>" + el("Code", err.code) + clientEl("Message", err.message);
  if (err.details) for (const name of Object.keys(err.details)) xml += clientEl(name, err.details[name]);
  if (opts.resource !== undefined) xml += clientEl("Resource", opts.resource);
  xml += el("RequestId", opts.requestId);
  if (opts.hostId !== undefined) xml += el("HostId", opts.hostId);
  return xml + "</Error>";
}

/** The HTTP answer: XML body (none for HEAD, as S3), x-amz-request-id, no caching. */
export function s3ErrorResponse(err: S3Error, opts: { requestId: string; resource?: string; method?: string; unknownLength?: boolean }): Response {
  const headers: Record<string, string> = {
    "content-type": "application/xml",
    "cache-control": "no-store",
    "x-amz-request-id": escapeHeader(opts.requestId),
    ...err.headers,
  };
  // Every 503 says when to retry, as the plain front's do: the front's own (request_timeout, an
  // unreachable upstream, a payload budget, the listener's) lacked one that the limits' had.
  // (any case: an error carrying "Retry-After" got a second value, "7, 1")
  if (err.status === 503 && !Object.keys(headers).some((k) => k.toLowerCase() === "retry-after")) headers["retry-after"] = "1";
  // (S3's extended request id: SDKs report it as the error's HostId)
  const hostId = hostIdOf(opts.requestId);
  headers["x-amz-id-2"] = hostId;
  const xml = renderS3ErrorXml(err, { resource: opts.resource, requestId: opts.requestId, hostId });
  // (also what the access log counts). A HEAD gets the GET's length, no body: left without one,
  // Bun.serve said content-length: 0 (RFC 9110 §8.6: the GET's length or none). None when the
  // GET's document is unknown (`unknownLength`: guessedFromStatus). A signature's refusal names
  // the method in its CanonicalRequest (and CanonicalRequestBytes): the GET's says GET, shorter.
  if (opts.method === "HEAD" && opts.unknownLength === true) return new Response(null, { status: err.status, headers });
  const creq = err.details?.CanonicalRequest;
  const asGet = opts.method === "HEAD" && creq?.startsWith("HEAD\n") === true ? renderS3ErrorXml({ ...err, details: { ...err.details, ...headAsGet(creq!, err.details!.CanonicalRequestBytes) } }, { resource: opts.resource, requestId: opts.requestId, hostId }) : xml;
  headers["content-length"] = String(Buffer.byteLength(asGet));
  return new Response(opts.method === "HEAD" ? null : xml, { status: err.status, headers });
}

/** A HEAD's CanonicalRequest (and its bytes, "48 45 41 44 0a ...") as the GET's would show them. */
function headAsGet(creq: string, bytes: string | undefined): Record<string, string> {
  const out: Record<string, string> = { CanonicalRequest: "GET" + creq.slice(4) };
  if (bytes !== undefined) out.CanonicalRequestBytes = "47 45 54" + bytes.slice(11);
  return out;
}

/** An opaque id for the host that answered (S3's x-amz-id-2 / HostId): a random tag of this process and the request, base64. */
const PROCESS_TAG = crypto.randomUUID().slice(0, 13);
/**
 * The x-amz-id-2 of a successful answer: S3 sends one on every answer (SDKs report it as the
 * extended request id); this process's tag alone, made once (an error's names its request too).
 */
export const PROCESS_HOST_ID = Buffer.from(PROCESS_TAG).toString("base64");
function hostIdOf(requestId: string): string {
  return Buffer.from(`${PROCESS_TAG}/${requestId}`).toString("base64");
}

function escapeHeader(v: string): string {
  return /^[\x21-\x7e]*$/.test(v) ? v : encodeURIComponent(v);
}

/** Which S3 code the shared phases' errors (limits, breaker, upstream, authz) become on the S3 front. */
const FROM_PROXY: Partial<Record<ErrorCode, S3ErrorCode>> = {
  BadRequest: "InvalidRequest",
  InvalidPath: "InvalidURI",
  Unauthorized: "AccessDenied",
  InvalidToken: "AccessDenied",
  Forbidden: "AccessDenied",
  AccessDenied: "AccessDenied",
  NotFound: "NoSuchBucket",
  NoSuchKey: "NoSuchKey",
  NoSuchBucket: "NoSuchBucket",
  MethodNotAllowed: "MethodNotAllowed",
  PreconditionFailed: "PreconditionFailed",
  Conflict: "OperationAborted",
  UriTooLong: "InvalidURI",
  RangeNotSatisfiable: "InvalidRange",
  TooManyRequests: "SlowDown",
  HeadersTooLarge: "RequestHeaderSectionTooLarge",
  InternalError: "InternalError",
  // S3 never answers 502/504; SDKs retry 500 and 503 with backoff, so the upstream's failures
  // become those.
  BadGateway: "InternalError",
  UpstreamUnreachable: "ServiceUnavailable",
  ServiceUnavailable: "ServiceUnavailable",
  SlowDown: "SlowDown",
  CircuitOpen: "ServiceUnavailable",
  Overloaded: "SlowDown",
  KeysUnavailable: "ServiceUnavailable",
  AuthorizerUnavailable: "ServiceUnavailable",
  GatewayTimeout: "ServiceUnavailable",
  RequestTimeout: "RequestTimeout",
};

/** The failures that keep the proxy's own words (see fromProxyError). */
const OWN_WORDS: ReadonlySet<string> = new Set(["BadGateway", "UpstreamUnreachable", "CircuitOpen", "GatewayTimeout", "AuthorizerUnavailable"]);

/** Upstream codes that mean it refused the proxy's own credentials: the client gets AccessDenied (an operator problem, not theirs). */
export { CREDENTIAL_CODES };

/**
 * A shared-phase ProxyError in S3's dialect. The message is S3's fixed one (the ProxyError's
 * detail is written for the plain front); headers such as Retry-After and Content-Range are kept.
 * An upstream refusal (a GetObject's 403 InvalidObjectState for an archived object, say) keeps
 * S3's own code and status when the catalogue knows it, as the write operations relay theirs.
 */
export function fromProxyError(err: Pick<ProxyError, "code" | "headers"> & { cause?: unknown; message?: string; detail?: string }): S3Error {
  const headers = err.headers && Object.keys(err.headers).length ? { ...err.headers } : undefined;
  const upstream = err.cause as { s3Code?: unknown; s3Status?: unknown } | undefined;
  const s3Code = typeof upstream?.s3Code === "string" ? upstream.s3Code : undefined;
  if (s3Code !== undefined && Object.hasOwn(S3_ERRORS, s3Code) && !CREDENTIAL_CODES.has(s3Code)) {
    const e = s3Error(s3Code as S3ErrorCode, undefined, undefined, headers);
    // (S3 never answers 429: a store's throttle is S3's 503, which the SDKs back off from)
    if (typeof upstream!.s3Status === "number" && upstream!.s3Status >= 400 && upstream!.s3Status <= 599 && upstream!.s3Status !== 429) e.status = upstream!.s3Status;
    return e;
  }
  // (a bodiless refusal, a HEAD's, keeps the statuses S3 answers with and the SDKs do not retry)
  if (s3Code === undefined && upstream?.s3Status === 405) return s3Error("MethodNotAllowed", undefined, undefined, headers);
  if (s3Code === undefined && upstream?.s3Status === 501) return s3Error("NotImplemented", undefined, undefined, headers);
  if (err.code === "GatewayTimeout" && err.detail === ONLY_IF_CACHED_MISS) return s3Error("NotCached", undefined, undefined, headers);
  const code = FROM_PROXY[err.code] ?? "InternalError";
  // The upstream's and the authorizer's failures keep the proxy's own words (our fixed texts: "The
  // upstream could not be reached", "... stalled while sending the object", "The authorization
  // service could not decide..."), not S3's "Please reduce your request rate", which would send an
  // operator looking at the client's request rate.
  // A refusal of the client's own request head (the guard's: two Host headers, a Host that is not
  // host[:port]) keeps its words too; it read S3's bare "Invalid Request", naming nothing to fix.
  // (an upstream's 400 has a cause, and is S3's code above or its fixed words here)
  const own = OWN_WORDS.has(err.code) || (err.code === "BadRequest" && err.cause === undefined && err.detail !== undefined);
  return s3Error(code, own && err.message ? err.message : undefined, undefined, headers);
}
