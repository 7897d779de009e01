/**
 * S3 addressing and operation resolution, as pure functions: which bucket and key a request names
 * (path-style, or virtual-hosted when s3_api.domain is set), and which S3 operation it is (method +
 * subresource, and for a PUT whether x-amz-copy-source is present). Anything else is NotImplemented.
 */
import type { S3Action } from "../../proxy/context.ts";
import { s3Error, type S3Error } from "./errors.ts";
import type { BucketRuntime, Runtime } from "../../runtime.ts";
import { S3_FRONT_BUCKET_NAME } from "../../config/s3-api.ts";

export type S3Operation =
  | "ListBuckets"
  | "HeadBucket"
  | "CreateBucket"
  | "GetBucketLocation"
  | "GetBucketVersioning"
  | "GetBucketAcl"
  | BucketConfigRead
  | "PutBucketAcl"
  | "GetObjectAcl"
  | "PutObjectAcl"
  | "ListObjects"
  | "ListObjectsV2"
  | "ListObjectVersions"
  | "GetObject"
  | "HeadObject"
  | "GetObjectVersion"
  | "HeadObjectVersion"
  | "GetObjectPart"
  | "HeadObjectPart"
  | "GetObjectTagging"
  | "GetObjectAttributes"
  | "PutObjectTagging"
  | "DeleteObjectTagging"
  | "PutObject"
  | "PostObject"
  | "CopyObject"
  | "UploadPartCopy"
  | "DeleteObject"
  | "DeleteObjectVersion"
  | "DeleteObjects"
  | "CreateMultipartUpload"
  | "UploadPart"
  | "CompleteMultipartUpload"
  | "AbortMultipartUpload"
  | "ListParts"
  | "ListMultipartUploads"
  | "AssumeRoleWithWebIdentity";

export const ACTION_OF: Readonly<Record<S3Operation, S3Action>> = {
  ListBuckets: "s3:ListAllMyBuckets",
  HeadBucket: "s3:ListBucket",
  CreateBucket: "s3:CreateBucket",
  GetBucketLocation: "s3:GetBucketLocation",
  GetBucketVersioning: "s3:GetBucketVersioning",
  GetBucketAcl: "s3:GetBucketAcl",
  GetBucketPolicy: "s3:GetBucketPolicy",
  GetBucketPolicyStatus: "s3:GetBucketPolicyStatus",
  GetBucketCors: "s3:GetBucketCORS",
  GetBucketRequestPayment: "s3:GetBucketRequestPayment",
  GetBucketEncryption: "s3:GetEncryptionConfiguration",
  GetBucketTagging: "s3:GetBucketTagging",
  GetBucketLifecycleConfiguration: "s3:GetLifecycleConfiguration",
  GetBucketWebsite: "s3:GetBucketWebsite",
  GetPublicAccessBlock: "s3:GetBucketPublicAccessBlock",
  GetBucketOwnershipControls: "s3:GetBucketOwnershipControls",
  GetBucketLogging: "s3:GetBucketLogging",
  GetBucketNotificationConfiguration: "s3:GetBucketNotification",
  GetBucketAccelerateConfiguration: "s3:GetAccelerateConfiguration",
  GetObjectLockConfiguration: "s3:GetBucketObjectLockConfiguration",
  GetBucketReplication: "s3:GetReplicationConfiguration",
  ListBucketAnalyticsConfigurations: "s3:GetAnalyticsConfiguration",
  ListBucketInventoryConfigurations: "s3:GetInventoryConfiguration",
  ListBucketMetricsConfigurations: "s3:GetMetricsConfiguration",
  ListBucketIntelligentTieringConfigurations: "s3:GetIntelligentTieringConfiguration",
  GetBucketAnalyticsConfiguration: "s3:GetAnalyticsConfiguration",
  GetBucketInventoryConfiguration: "s3:GetInventoryConfiguration",
  GetBucketMetricsConfiguration: "s3:GetMetricsConfiguration",
  GetBucketIntelligentTieringConfiguration: "s3:GetIntelligentTieringConfiguration",
  PutBucketAcl: "s3:PutBucketAcl",
  GetObjectAcl: "s3:GetObjectAcl",
  PutObjectAcl: "s3:PutObjectAcl",
  ListObjects: "s3:ListBucket",
  ListObjectsV2: "s3:ListBucket",
  ListObjectVersions: "s3:ListBucketVersions",
  GetObject: "s3:GetObject",
  HeadObject: "s3:GetObject",
  GetObjectVersion: "s3:GetObjectVersion",
  HeadObjectVersion: "s3:GetObjectVersion",
  GetObjectPart: "s3:GetObject",
  HeadObjectPart: "s3:GetObject",
  GetObjectTagging: "s3:GetObjectTagging",
  GetObjectAttributes: "s3:GetObjectAttributes",
  PutObjectTagging: "s3:PutObjectTagging",
  DeleteObjectTagging: "s3:DeleteObjectTagging",
  // As in S3's IAM actions: every step of a multipart upload is s3:PutObject, except its bookkeeping.
  PutObject: "s3:PutObject",
  PostObject: "s3:PutObject",
  CopyObject: "s3:PutObject",
  CreateMultipartUpload: "s3:PutObject",
  UploadPart: "s3:PutObject",
  UploadPartCopy: "s3:PutObject",
  CompleteMultipartUpload: "s3:PutObject",
  AbortMultipartUpload: "s3:AbortMultipartUpload",
  ListParts: "s3:ListMultipartUploadParts",
  ListMultipartUploads: "s3:ListBucketMultipartUploads",
  DeleteObject: "s3:DeleteObject",
  DeleteObjectVersion: "s3:DeleteObjectVersion",
  DeleteObjects: "s3:DeleteObject",
  AssumeRoleWithWebIdentity: "sts:AssumeRoleWithWebIdentity",
};

/** The bucket configuration reads, by sub-resource (GET /<bucket>?<sub>), answered from config (bucket-config.ts). */
const BUCKET_CONFIG_READS: ReadonlyMap<string, BucketConfigRead> = new Map<string, BucketConfigRead>([
  ["policy", "GetBucketPolicy"], ["policyStatus", "GetBucketPolicyStatus"], ["cors", "GetBucketCors"],
  ["requestPayment", "GetBucketRequestPayment"], ["encryption", "GetBucketEncryption"], ["tagging", "GetBucketTagging"],
  ["lifecycle", "GetBucketLifecycleConfiguration"], ["website", "GetBucketWebsite"], ["publicAccessBlock", "GetPublicAccessBlock"],
  ["ownershipControls", "GetBucketOwnershipControls"], ["logging", "GetBucketLogging"], ["notification", "GetBucketNotificationConfiguration"],
  ["accelerate", "GetBucketAccelerateConfiguration"], ["object-lock", "GetObjectLockConfiguration"], ["replication", "GetBucketReplication"],
  ["analytics", "ListBucketAnalyticsConfigurations"], ["inventory", "ListBucketInventoryConfigurations"], ["metrics", "ListBucketMetricsConfigurations"],
  ["intelligent-tiering", "ListBucketIntelligentTieringConfigurations"],
]);

/** The configurations a bucket holds by id: `GET /<bucket>?<sub>&id=<id>` reads one of those the list names. */
const BUCKET_CONFIG_BY_ID: ReadonlyMap<BucketConfigRead, BucketConfigRead> = new Map<BucketConfigRead, BucketConfigRead>([
  ["ListBucketAnalyticsConfigurations", "GetBucketAnalyticsConfiguration"], ["ListBucketInventoryConfigurations", "GetBucketInventoryConfiguration"],
  ["ListBucketMetricsConfigurations", "GetBucketMetricsConfiguration"], ["ListBucketIntelligentTieringConfigurations", "GetBucketIntelligentTieringConfiguration"],
]);

/** The bucket configuration reads, answered from config (bucket-config.ts). */
export type BucketConfigRead =
  | "GetBucketPolicy" | "GetBucketPolicyStatus" | "GetBucketCors" | "GetBucketRequestPayment" | "GetBucketEncryption" | "GetBucketTagging"
  | "GetBucketLifecycleConfiguration" | "GetBucketWebsite" | "GetPublicAccessBlock" | "GetBucketOwnershipControls" | "GetBucketLogging"
  | "GetBucketNotificationConfiguration" | "GetBucketAccelerateConfiguration" | "GetObjectLockConfiguration" | "GetBucketReplication"
  | "ListBucketAnalyticsConfigurations" | "ListBucketInventoryConfigurations" | "ListBucketMetricsConfigurations" | "ListBucketIntelligentTieringConfigurations"
  | "GetBucketAnalyticsConfiguration" | "GetBucketInventoryConfiguration" | "GetBucketMetricsConfiguration" | "GetBucketIntelligentTieringConfiguration";

/** The bucket configuration read `GET ?<sub>` names (one of a list by its `id`), or undefined. */
function bucketConfigRead(sub: string, query: ReadonlyArray<readonly [string, string]>): BucketConfigRead | undefined {
  const config = BUCKET_CONFIG_READS.get(sub);
  const byId = config === undefined ? undefined : BUCKET_CONFIG_BY_ID.get(config);
  return byId !== undefined && query.some(([k]) => k === "id") ? byId : config;
}

/** The bucket's operations S3 serves at a key's path too, the key ignored (not the request's key: no key checks, nothing asked about it). */
export const KEY_IGNORED: ReadonlySet<S3Operation> = new Set<S3Operation>(["GetBucketLocation", "GetBucketVersioning", ...BUCKET_CONFIG_READS.values(), ...BUCKET_CONFIG_BY_ID.values()]);

/** S3 limits keys to 1024 bytes of UTF-8. */
export const MAX_KEY_BYTES = 1024;

/** Whether `key` is over MAX_KEY_BYTES of UTF-8 (its byte length counted only when it could be). */
export function keyTooLong(key: string): boolean {
  return key.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(key) > MAX_KEY_BYTES;
}

/**
 * Query parameters that name a sub-resource: a request carrying one is another operation than the
 * plain GET/HEAD of a bucket or an object (S3's SigV2 sub-resource list plus later additions).
 * The plain front refuses writes that name one (fronts/plain.ts), from this same list.
 */
export const SUBRESOURCES: ReadonlySet<string> = new Set([
  "abac", "accelerate", "acl", "analytics", "annotation", "attributes", "cors", "delete", "encryption", "intelligent-tiering", "inventory",
  "legal-hold", "lifecycle", "location", "logging", "metadataAnnotationTable", "metadataConfiguration", "metadataInventoryTable",
  "metadataJournalTable", "metadataTable", "metrics", "notification", "object-lock",
  "ownershipControls", "partNumber", "policy", "policyStatus", "publicAccessBlock", "renameObject", "replication",
  "requestPayment", "restore", "retention", "select", "select-type", "session", "tagging", "torrent", "uploadId",
  "uploads", "versioning", "versions", "website",
]);

/**
 * Query parameters a write (PUT, POST, DELETE) may carry that name no sub-resource. S3 keeps adding
 * sub-resources (?annotation, ?abac, ?metadataConfiguration came in 2025): a write with a bare
 * parameter this front does not know is refused (NotImplemented) rather than taken for a plain
 * PutObject or DeleteObject, which would overwrite or delete the object (PutObjectAnnotation,
 * DeleteObjectAnnotation did until 2026-12-05). The SDKs' own marker `x-id` has a value.
 */
const WRITE_PARAMETERS = new Set(["x-id", "uploadId", "partNumber", "versionId", "list-type"]);

/** The configured bucket an S3 request names (a name the S3 front can address), or undefined. */
export function configuredBucket(rt: Runtime, name: string): BucketRuntime | undefined {
  return name !== "" && S3_FRONT_BUCKET_NAME.test(name) ? rt.buckets.get(name) : undefined;
}

export interface Addressed {
  /** "" for the service (ListBuckets, STS). */
  bucket: string;
  /** "" for a bucket-level request. */
  key: string;
}

/** The bucket named by the Host header (`<bucket>.<domain>[.][:port]`), or undefined (path-style). */
export function bucketFromHost(host: string | null, domain: string | undefined): string | undefined {
  if (domain === undefined || host === null) return undefined;
  let h = host.toLowerCase();
  if (h.charCodeAt(0) !== 91) {
    const colon = h.lastIndexOf(":");
    if (colon >= 0) h = h.slice(0, colon);
  }
  // A fully qualified name (`<bucket>.<domain>.`) is the same host: without the dot it was read as
  // path-style, taking the key's first segment for the bucket.
  if (h.charCodeAt(h.length - 1) === 46) h = h.slice(0, -1);
  if (h.length <= domain.length + 1 || !h.endsWith(domain) || h.charCodeAt(h.length - domain.length - 1) !== 46) return undefined;
  return h.slice(0, h.length - domain.length - 1);
}

/** Bucket and key from the decoded path ("/bucket/key" path-style; "/key" virtual-hosted). */
export function address(decodedPath: string, hostBucket: string | undefined): Addressed {
  const from = decodedPath.charCodeAt(0) === 47 ? 1 : 0;
  if (hostBucket !== undefined) return { bucket: hostBucket, key: decodedPath.slice(from) };
  const slash = decodedPath.indexOf("/", from);
  if (slash < 0) return { bucket: decodedPath.slice(from), key: "" };
  // (the bucket of the last such path, when this one names the same: no string cut out of the
  // path, which its readers, the name check and the bucket map, would first have to copy out)
  const bucket = slash - from === lastBucket.length && decodedPath.startsWith(lastBucket, from) ? lastBucket : (lastBucket = decodedPath.slice(from, slash));
  return { bucket, key: decodedPath.slice(slash + 1) };
}
let lastBucket = "";

/** keyRefusal's words for a key with an empty segment. */
export const EMPTY_SEGMENT_REFUSAL = "Object keys with an empty path segment (a leading '/' or '//') are not served by this proxy.";

/**
 * Why the proxy does not serve `key`, or undefined. Refused, on every operation that names a key
 * (the request's, a copy source's, a DeleteObjects entry's, a form's):
 * - a "." or ".." segment, as on the plain front (see README);
 * - a NUL character, as on the plain front (stores that keep keys as file names fail on it, with a
 *   5xx that would count against the bucket's circuit breaker);
 * - an empty segment (a leading "/", or "//"): S3 itself keeps "/a" and "a" apart, but stores that
 *   normalize paths (s3rver, some gateways) would write or read another key than the one the
 *   grants and the authorizer were asked about (`PUT //ro/x` checked as "/ro/x", stored as
 *   "ro/x"). A trailing "/" (a folder marker) is fine.
 */
export function keyRefusal(key: string): string | undefined {
  if (hasDotSegment(key)) return "Object keys with '.' or '..' path segments are not served by this proxy.";
  if (key.includes("\0")) return "Object keys with a NUL character are not served by this proxy.";
  if (key.charCodeAt(0) === 47 || key.includes("//")) return EMPTY_SEGMENT_REFUSAL;
  return undefined;
}

/** True when the key has a "." or ".." segment: refused, as on the plain front (see README). */
export function hasDotSegment(key: string): boolean {
  // Every "." that starts a segment (at 0 or after "/") and is followed by "/" or the end,
  // directly or after a second "." (no split: most keys have a dot, few a dot segment).
  for (let i = key.indexOf("."); i >= 0; i = key.indexOf(".", i + 1)) {
    if (i > 0 && key.charCodeAt(i - 1) !== 47) continue;
    let end = i + 1;
    if (key.charCodeAt(end) === 46) end++;
    if (end === key.length || key.charCodeAt(end) === 47) return true;
  }
  return false;
}

/** The methods S3 has operations for (OPTIONS is the CORS phase's, answered before routing). */
const S3_METHODS = new Set(["GET", "HEAD", "PUT", "POST", "DELETE"]);
/** A 405's Allow (RFC 9110 §15.5.6). */
const ALLOW = "GET, HEAD, PUT, POST, DELETE";
/** The methods the S3 front takes on some path (`OPTIONS *`): S3's and a CORS preflight's. */
export const S3_SERVER_ALLOW = `${ALLOW}, OPTIONS`;
/** The methods an object's own path takes (a POST goes to its bucket, or to an upload). */
const OBJECT_ALLOW = "GET, HEAD, PUT, DELETE";
/** The methods a sub-resource may take (a HEAD's 405 names those served). */
const SUBRESOURCE_METHODS = ["GET", "PUT", "POST", "DELETE"] as const;

/**
 * The writes (PUT, POST, DELETE) S3 has an operation for on a bucket's and on an object's
 * sub-resources, and the resource type its 405 names for any other: S3 answers a write a
 * sub-resource does not take (`DELETE ?acl`, `POST ?versioning`, `PUT ?location`) with 405
 * MethodNotAllowed before it looks for the bucket (measured against S3, 2026-09). A sub-resource
 * not listed here (a newer one, or one this front does not know) is 501 on any write.
 */
const subresource = (type: string, ...writes: string[]) => ({ type, writes });
const BUCKET_SUBRESOURCE_WRITES: ReadonlyMap<string, { type: string; writes: readonly string[] }> = new Map([
  ["abac", subresource("BUCKET_ABAC", "PUT")], ["accelerate", subresource("ACCELERATE", "PUT")], ["acl", subresource("ACL", "PUT")],
  ["analytics", subresource("ANALYTICS", "DELETE", "PUT")], ["cors", subresource("CORS", "DELETE", "PUT")], ["delete", subresource("MULTI_OBJECT_DELETE", "POST")],
  ["encryption", subresource("ENCRYPTION", "DELETE", "PUT")], ["intelligent-tiering", subresource("INTELLIGENT_TIERING", "DELETE", "PUT")],
  ["inventory", subresource("INVENTORY", "DELETE", "PUT")], ["lifecycle", subresource("LIFECYCLE", "DELETE", "PUT")], ["location", subresource("LOCATION")],
  ["logging", subresource("LOGGING_STATUS", "PUT")], ["metadataConfiguration", subresource("BUCKET_METADATA_CONFIGURATION", "DELETE", "POST")],
  ["metadataTable", subresource("BUCKET_METADATA_TABLE_CONFIGURATION", "DELETE", "POST")], ["metrics", subresource("METRICS", "DELETE", "PUT")],
  ["notification", subresource("NOTIFICATION", "PUT")], ["object-lock", subresource("OBJECT_LOCK_CONFIGURATION", "PUT")],
  ["ownershipControls", subresource("OWNERSHIP_CONTROLS", "DELETE", "PUT")], ["policy", subresource("BUCKETPOLICY", "DELETE", "PUT")],
  ["policyStatus", subresource("POLICY_STATUS")], ["publicAccessBlock", subresource("PUBLIC_ACCESS_BLOCK", "DELETE", "PUT")],
  ["replication", subresource("REPLICATION", "DELETE", "PUT")], ["requestPayment", subresource("REQUEST_PAYMENT", "PUT")],
  ["tagging", subresource("TAGGING", "DELETE", "PUT")], ["uploads", subresource("UPLOADS", "POST")], ["versioning", subresource("VERSIONING", "PUT")],
  ["versions", subresource("BUCKETVERSIONS")], ["website", subresource("WEBSITE", "DELETE", "PUT")],
]);
const OBJECT_SUBRESOURCE_WRITES: ReadonlyMap<string, { type: string; writes: readonly string[] }> = new Map([
  ["acl", subresource("ACL", "PUT")], ["attributes", subresource("OBJECT_ATTRIBUTES")], ["legal-hold", subresource("OBJECT_LOCK_LEGALHOLD", "PUT")],
  ["restore", subresource("RESTORE", "POST")], ["retention", subresource("OBJECT_LOCK_RETENTION", "PUT")], ["select", subresource("SELECT", "POST")],
  ["tagging", subresource("OBJECT_TAGGING", "DELETE", "PUT")], ["torrent", subresource("TORRENT")], ["uploads", subresource("UPLOADS", "POST")],
]);

/** The methods of SUBRESOURCE_METHODS (those S3 takes, `known`, when given) this front serves with `query` at `a`, as a 405's Allow. */
function servedMethods(a: Addressed, query: ReadonlyArray<readonly [string, string]>, known: readonly string[] = SUBRESOURCE_METHODS): string {
  return SUBRESOURCE_METHODS.filter((m) => known.includes(m) && typeof operationOf(m, a, query) === "string").join(", ");
}

/** A bucket setting the proxy answers from its configuration (?versioning, ?cors, ?policy, ...): a write to it is configWriteRefusal. */
const isBucketSetting = (sub: string) => sub === "versioning" || BUCKET_CONFIG_READS.has(sub);
const configWriteRefusal = (sub: string) =>
  s3Error("AccessDenied", `This bucket's ?${sub} setting is this proxy's configuration: it cannot be set or deleted through the S3 API.`);
const notImplemented = (what: string) => s3Error("NotImplemented", `${what} is not implemented by this proxy.`);

/** The S3 actions of the sub-resources this front does not serve (`METHOD sub`, `+v`: with ?versionId), as S3's permissions name them. */
const UNSERVED_ACTIONS: ReadonlyMap<string, S3Action> = new Map<string, S3Action>([
  ["GET retention", "s3:GetObjectRetention"], ["PUT retention", "s3:PutObjectRetention"],
  ["GET legal-hold", "s3:GetObjectLegalHold"], ["PUT legal-hold", "s3:PutObjectLegalHold"],
  ["POST restore", "s3:RestoreObject"], ["POST select", "s3:GetObject"], ["GET torrent", "s3:GetObjectTorrent"],
  ["GET tagging+v", "s3:GetObjectVersionTagging"], ["PUT tagging+v", "s3:PutObjectVersionTagging"], ["DELETE tagging+v", "s3:DeleteObjectVersionTagging"],
]);

/**
 * The action a bucket's authorizer is asked about a request this front does not serve (operationOf's
 * NotImplemented), before its 501: S3 authorizes first. A sub-resource S3 names a permission for has
 * it; any other the read, write or delete its method is (s3:GetObject, s3:ListBucket at the bucket,
 * s3:PutObject, s3:DeleteObject; with ?versionId their version forms).
 */
export function unservedAction(method: string, key: string, query: ReadonlyArray<readonly [string, string]>): S3Action {
  const versioned = query.some(([k]) => k === "versionId");
  for (const [k] of query) {
    const action = (versioned ? UNSERVED_ACTIONS.get(`${method} ${k}+v`) : undefined) ?? UNSERVED_ACTIONS.get(`${method} ${k}`);
    if (action !== undefined) return action;
  }
  if (method === "GET" || method === "HEAD") return key === "" ? "s3:ListBucket" : versioned ? "s3:GetObjectVersion" : "s3:GetObject";
  if (method === "DELETE") return versioned ? "s3:DeleteObjectVersion" : "s3:DeleteObject";
  return "s3:PutObject";
}

const SERVICE_POST = "The specified method is not allowed against this resource. (A POST to the service is an STS call, its parameters in a form-encoded body or with Action= in the query string; an S3 request names its bucket.)";

/**
 * Whether a request to the service (no bucket) is an STS call: a POST with no query parameter or
 * one naming an `Action` (STS's parameters in a form-encoded body, or in the query string as
 * minio-go sends them), a GET naming an `Action` (STS's query-string form). `query` is the parsed
 * (decoded) query, as STS reads its parameters: `?%41ction=` names Action, `?&` names nothing,
 * and a bare `?Action` names it too (STS asks for its value). The one rule: front.ts routes by
 * it, and operationOf leaves every service POST it did not take to S3.
 * A POST naming anything else (`?delete`) is S3's, and so is a POST with no query signed for the
 * service `s3` (its Authorization header's credential scope says s3) whose body is no form (an
 * XML body, say): S3's 405, not STS's ValidationError about a form it never meant to send. (A form
 * signed for s3 is a mis-scoped STS call: STS's SignatureDoesNotMatch naming the scope.) The
 * headers are read for such a POST only. A query that cannot be decoded (undefined) is S3's,
 * refused there.
 */
export function isStsCall(method: string, query: ReadonlyArray<readonly [string, string]> | undefined, headers: Headers): boolean {
  if (query === undefined) return false;
  if (method === "POST" && query.length === 0) return !S3_SCOPE.test(headers.get("authorization") ?? "") || FORM_TYPE.test(headers.get("content-type") ?? "");
  return query.some(([k]) => k === "Action");
}
/** A form-encoded body's Content-Type (STS's Query protocol). */
export const FORM_TYPE = /^application\/x-www-form-urlencoded\s*(;|$)/i;
/** An Authorization header's SigV4 credential scope naming the service s3 (`Credential=AKID/20260101/us-east-1/s3/aws4_request`). */
const S3_SCOPE = /Credential\s*=\s*[^,]*\/s3\/aws4_request\s*(?:,|$)/;

/** The operation of a request, or S3's error for one this front does not serve. `copySource`: x-amz-copy-source is present. */
export function operationOf(method: string, a: Addressed, query: ReadonlyArray<readonly [string, string]>, copySource = false): S3Operation | S3Error {
  // A method S3 has no operation for at all (PATCH, TRACE, PROPFIND, ...): S3's 405, naming it.
  if (!S3_METHODS.has(method)) {
    return s3Error("MethodNotAllowed", undefined, { Method: method.slice(0, 32), ResourceType: a.bucket === "" ? "SERVICE" : a.key === "" ? "BUCKET" : "OBJECT" }, { allow: ALLOW });
  }
  let sub: string | undefined;
  let subs = 0;
  let listType: string | undefined;
  let uploadId = false;
  let partNumber = false;
  let versionId = false;
  let selectType = false;
  for (const [k, v] of query) {
    if (k === "uploadId") uploadId = true;
    else if (k === "partNumber") partNumber = true;
    else if (k === "versionId") versionId = true;
    else if (k === "select-type") selectType = true;
    else if (SUBRESOURCES.has(k)) {
      sub ??= k;
      subs++;
    }
    else if (k === "list-type") listType = v;
    else if (v === "" && method !== "GET" && method !== "HEAD" && !WRITE_PARAMETERS.has(k) && !k.startsWith("X-Amz-") && !k.startsWith("x-amz-")) {
      // (an unknown bare parameter on a write: a sub-resource this front does not know, see WRITE_PARAMETERS)
      sub ??= k;
      subs++;
    }
  }
  // ?select-type is a parameter of ?select (SelectObjectContent sends `?select&select-type=2`),
  // a sub-resource of its own only without it (it made every SelectObjectContent "several sub-resources").
  if (selectType && sub !== "select") {
    sub ??= "select-type";
    subs++;
  }
  // A HEAD naming a sub-resource (or an upload): no sub-resource has a HEAD form, and S3 answers
  // 405 whether or not the bucket or key exists, its Allow naming the methods the sub-resource
  // takes (here: those this front serves on it). It was 501, as if HEAD might work elsewhere.
  // Two sub-resources at once are S3's 400, without Allow (measured against S3: `HEAD ?acl&versioning`;
  // it was a 405 with an empty Allow).
  if (method === "HEAD" && a.bucket !== "" && subs > 1) return s3Error("InvalidRequest", "A request may name one sub-resource only.");
  if (method === "HEAD" && a.bucket !== "" && (sub !== undefined || (uploadId && a.key !== ""))) {
    return s3Error("MethodNotAllowed", undefined, { Method: "HEAD", ResourceType: a.key === "" ? "BUCKET" : "OBJECT" }, { allow: servedMethods(a, query) });
  }
  // A write one sub-resource does not take: S3's 405 naming the sub-resource's type (it was 501,
  // or NoSuchBucket on a bucket not configured), its Allow the methods served there.
  // (at a key's path, a bucket's sub-resource is the bucket's, as S3 dispatches it there)
  const known = sub === undefined || subs > 1 || a.bucket === "" || method === "GET" ? undefined : (a.key === "" ? undefined : OBJECT_SUBRESOURCE_WRITES.get(sub)) ?? BUCKET_SUBRESOURCE_WRITES.get(sub);
  if (known !== undefined && !known.writes.includes(method)) {
    return s3Error("MethodNotAllowed", undefined, { Method: method, ResourceType: known.type }, { allow: servedMethods(a, query, ["GET", ...known.writes]) });
  }
  if (a.bucket === "") {
    if (method === "POST") {
      // (every STS call was sent to the STS endpoint before (isStsCall, on this parsed query): a
      // service POST here names something else, `?delete` without a bucket, or none and was signed
      // for s3 with no form. S3 has no POST on the service; it was answered by STS, in STS's
      // dialect, a ValidationError)
      return s3Error("MethodNotAllowed", SERVICE_POST, { Method: method, ResourceType: "SERVICE" }, { allow: "GET, POST" });
    }
    if (method === "GET" && sub === undefined && !uploadId && !partNumber && !versionId) return "ListBuckets";
    // (the service takes no PUT or DELETE: S3's 405 naming it, as for PATCH; it was 501)
    if (method === "PUT" || method === "DELETE") return s3Error("MethodNotAllowed", undefined, { Method: method, ResourceType: "SERVICE" }, { allow: "GET, POST" });
    return notImplemented(`${method} on the service`);
  }
  // Two sub-resources at once name no operation: which one was served depended on their order
  // (`GET ?location&acl` answered the location, `?acl&location` 501; `POST ?delete&acl` deleted).
  if (subs > 1) return notImplemented("A request naming several sub-resources");
  if (a.key === "") {
    if (uploadId || partNumber || versionId) return notImplemented(`${method} on a bucket with ?${uploadId ? "uploadId" : partNumber ? "partNumber" : "versionId"}`);
    return bucketOperation(method, sub, listType, query);
  }
  // A bucket's location, versioning or configuration document asked at a key's path: S3 answers
  // the bucket's, the key ignored, as S3 dispatches a bucket's sub-resources at a key path
  // (measured; `?location` there was 501, and so were `?cors`, `?policy`, ... until 2026-12).
  // (`?tagging` there is the object's own.)
  if (method === "GET" && sub !== undefined && sub !== "tagging" && !uploadId && !partNumber && !versionId) {
    if (sub === "location" || sub === "versioning") return sub === "location" ? "GetBucketLocation" : "GetBucketVersioning";
    const config = bucketConfigRead(sub, query);
    if (config !== undefined) return config;
  }
  // Setting or deleting a bucket's setting at a key's path: the bucket's, refused as at its path
  // (it was 501). (`?tagging` and `?acl` there are the object's own.)
  if (method !== "GET" && sub !== undefined && !uploadId && !partNumber && !versionId && !OBJECT_SUBRESOURCE_WRITES.has(sub) && isBucketSetting(sub)) {
    return configWriteRefusal(sub);
  }
  // A bucket's listing of uploads or versions asked at a key's path: S3 refuses it, 400
  // InvalidRequest in its own words, the key being no listing's (it was 501, as if served elsewhere).
  if (method === "GET" && (sub === "uploads" || sub === "versions")) {
    return s3Error("InvalidRequest", sub === "uploads" ? "Key is not expected for the GET method ?uploads subresource" : "There is no such thing as the ?versions sub-resource for a key");
  }
  // An object's metadata (ETag, size, storage class, parts), of the current object or a version.
  if (sub === "attributes" && !uploadId && !partNumber && method === "GET") return "GetObjectAttributes";
  if (sub === "acl" && !uploadId && !partNumber && (method === "GET" || method === "PUT")) return method === "GET" ? "GetObjectAcl" : "PutObjectAcl";
  if (sub === "tagging" && !uploadId && !partNumber && !versionId) {
    if (method === "GET") return "GetObjectTagging";
    if (method === "PUT") return "PutObjectTagging";
    if (method === "DELETE") return "DeleteObjectTagging";
  }
  if (sub !== undefined && !(sub === "uploads" && method === "POST")) return notImplemented(`The ?${sub} sub-resource${versionId ? " with ?versionId" : ""}`);
  if (versionId) {
    // A version of the object: read (whole, a range or one part) or deleted, straight upstream.
    if (uploadId) return notImplemented(`${method} with ?uploadId and ?versionId`);
    if (method === "GET" || method === "HEAD") return method === "GET" ? "GetObjectVersion" : "HeadObjectVersion";
    if (method === "DELETE" && !partNumber) return "DeleteObjectVersion";
    return notImplemented(`${method} of an object with ?versionId`);
  }
  switch (method) {
    case "GET":
    case "HEAD":
      if (uploadId && method === "GET" && !partNumber) return "ListParts";
      if (uploadId) return notImplemented(`${method} of an object with ?uploadId`);
      if (partNumber) return method === "GET" ? "GetObjectPart" : "HeadObjectPart";
      return method === "GET" ? "GetObject" : "HeadObject";
    case "PUT":
      if (uploadId !== partNumber) return s3Error("InvalidRequest", "UploadPart needs both partNumber and uploadId.");
      if (uploadId) return copySource ? "UploadPartCopy" : "UploadPart";
      return copySource ? "CopyObject" : "PutObject";
    case "POST":
      if (sub === "uploads") return uploadId ? s3Error("InvalidRequest", "?uploads and ?uploadId cannot be combined.") : "CreateMultipartUpload";
      if (uploadId && !partNumber) return "CompleteMultipartUpload";
      // An object takes no POST of its own (a browser form upload goes to the bucket): S3's 405
      // naming the object, as for a method S3 has no operation for (it was 501).
      if (!uploadId) return s3Error("MethodNotAllowed", undefined, { Method: "POST", ResourceType: "OBJECT" }, { allow: OBJECT_ALLOW });
      return notImplemented("POST on an object with ?partNumber (not a CompleteMultipartUpload)");
    case "DELETE":
      if (partNumber) return notImplemented("DELETE with ?partNumber");
      return uploadId ? "AbortMultipartUpload" : "DeleteObject";
    default:
      return notImplemented(`${method} on an object`);
  }
}

/**
 * The operation of a request at a bucket's own path (no key), naming at most one sub-resource
 * (`sub`) and no upload, part or version (operationOf).
 */
function bucketOperation(method: string, sub: string | undefined, listType: string | undefined, query: ReadonlyArray<readonly [string, string]>): S3Operation | S3Error {
  if (method === "HEAD" && sub === undefined) return "HeadBucket";
  if (sub === "acl" && (method === "GET" || method === "PUT")) return method === "GET" ? "GetBucketAcl" : "PutBucketAcl";
  if (method === "POST" && sub === "delete") return "DeleteObjects";
  // A browser form upload (S3's POST Object): authenticated by its signed policy, not the request.
  if (method === "POST" && sub === undefined) return "PostObject";
  if (method === "PUT" && sub === undefined) return "CreateBucket";
  // Setting or deleting a setting the bucket's configuration documents answer from config: the
  // proxy's, not the caller's to change (S3's 403 for a caller without the permission; it was 501,
  // as if another server might take it: `s3cmd payer`, `setcors`, `setversioning`, ...).
  if (method !== "GET" && sub !== undefined && isBucketSetting(sub)) return configWriteRefusal(sub);
  // DeleteBucket: the buckets are the configuration's, as for CreateBucket of another name (it was 501).
  if (method === "DELETE" && sub === undefined) return s3Error("AccessDenied", "This proxy does not delete buckets: the buckets it serves are those its configuration names.");
  if (method !== "GET") return notImplemented(`${method} on a bucket`);
  if (sub === "location") return "GetBucketLocation";
  if (sub === "versioning") return "GetBucketVersioning";
  if (sub === "uploads") return "ListMultipartUploads";
  if (sub === "versions") return "ListObjectVersions";
  const config = sub === undefined ? undefined : bucketConfigRead(sub, query);
  if (config !== undefined) return config;
  if (sub !== undefined) return notImplemented(`The ?${sub} sub-resource`);
  if (listType === undefined) return "ListObjects";
  if (listType === "2") return "ListObjectsV2";
  return s3Error("InvalidArgument", "Invalid List Type specified", { ArgumentName: "list-type", ArgumentValue: listType.slice(0, 64) });
}
