/**
 * The one per-request context every phase reads and writes. A phase needs nothing else: what it
 * needs (the bucket, the key, the claims, the services) it finds here, and what it learns (the
 * status, the cache outcome, the bytes sent) it records here for the logging step.
 */
import type { Claims } from "../auth/rules.ts";
import type { PrincipalType } from "../authz/decide.ts";
import type { Services } from "../app.ts";
import type { BucketRuntime, Runtime } from "../runtime.ts";
import type { UpstreamTiming } from "../s3/upstream.ts";
import { clientIpOf } from "../http/client-ip.ts";
import type { Span } from "../observe/trace/span.ts";

/** The S3 action a request performs: what authorizers, audit and metrics see on both fronts. */
export type S3Action =
  | "s3:GetObject"
  | "s3:GetObjectVersion"
  | "s3:GetObjectAttributes"
  | "s3:GetObjectVersionAttributes"
  | "s3:ListBucket"
  | "s3:ListBucketVersions"
  | "s3:ListAllMyBuckets"
  | "s3:CreateBucket"
  | "s3:GetBucketLocation"
  | "s3:GetBucketVersioning"
  | "s3:GetBucketAcl"
  | "s3:GetBucketPolicy"
  | "s3:GetBucketPolicyStatus"
  | "s3:GetBucketCORS"
  | "s3:GetBucketRequestPayment"
  | "s3:GetEncryptionConfiguration"
  | "s3:GetBucketTagging"
  | "s3:GetLifecycleConfiguration"
  | "s3:GetBucketWebsite"
  | "s3:GetBucketPublicAccessBlock"
  | "s3:GetBucketOwnershipControls"
  | "s3:GetBucketLogging"
  | "s3:GetBucketNotification"
  | "s3:GetAccelerateConfiguration"
  | "s3:GetBucketObjectLockConfiguration"
  | "s3:GetReplicationConfiguration"
  | "s3:GetAnalyticsConfiguration"
  | "s3:GetInventoryConfiguration"
  | "s3:GetMetricsConfiguration"
  | "s3:GetIntelligentTieringConfiguration"
  | "s3:PutBucketAcl"
  | "s3:GetObjectAcl"
  | "s3:GetObjectVersionAcl"
  | "s3:PutObjectAcl"
  | "s3:PutObjectVersionAcl"
  | "s3:GetObjectTagging"
  | "s3:PutObjectTagging"
  | "s3:DeleteObjectTagging"
  | "s3:PutObject"
  | "s3:DeleteObject"
  | "s3:DeleteObjectVersion"
  | "s3:AbortMultipartUpload"
  | "s3:ListMultipartUploadParts"
  | "s3:ListBucketMultipartUploads"
  // (the S3 front's unserved sub-resources: asked of the authorizer before their 501)
  | "s3:GetObjectRetention"
  | "s3:PutObjectRetention"
  | "s3:GetObjectLegalHold"
  | "s3:PutObjectLegalHold"
  | "s3:RestoreObject"
  | "s3:GetObjectTorrent"
  | "s3:GetObjectVersionTagging"
  | "s3:PutObjectVersionTagging"
  | "s3:DeleteObjectVersionTagging"
  | "sts:AssumeRoleWithWebIdentity"
  | "sts:GetCallerIdentity"
  | "none";

/**
 * The actions that change a bucket or belong to changing it: a read-only bucket refuses them (on
 * both fronts), and OpenFGA checks them with openfga_write_relation.
 */
export const WRITE_ACTIONS: ReadonlySet<S3Action> = new Set<S3Action>([
  "s3:PutObject",
  "s3:PutObjectTagging",
  "s3:DeleteObjectTagging",
  "s3:DeleteObject",
  "s3:DeleteObjectVersion",
  "s3:AbortMultipartUpload",
  "s3:ListMultipartUploadParts",
  "s3:ListBucketMultipartUploads",
  "s3:PutBucketAcl",
  "s3:PutObjectAcl",
  "s3:PutObjectVersionAcl",
  "s3:PutObjectRetention",
  "s3:PutObjectLegalHold",
  "s3:RestoreObject",
  "s3:PutObjectVersionTagging",
  "s3:DeleteObjectVersionTagging",
]);

export function isWriteAction(action: S3Action): boolean {
  return WRITE_ACTIONS.has(action);
}

export interface RequestContext {
  readonly id: string;
  /** performance.now() at arrival. */
  readonly start: number;
  readonly req: Request;
  readonly method: string;
  /** The config generation this request started with (a reload mid-request does not affect it). */
  readonly rt: Runtime;
  /**
   * The cache's purge-log point when the request arrived (Cache.epoch), read with `rt`: what it
   * reads from upstream is neither stored nor shared with later requests if its key was purged
   * since (a write, a reload that pointed its bucket at another store).
   */
  readonly cacheSince: number;
  readonly svc: Services;
  /** Which front parsed the request ("plain", "s3", "control"). */
  readonly front: string;
  /** The S3 front's operation (GetObject, PutObject, UploadPart, CopyObject, ...): the access log's and the audit trail's `operation`. */
  operation: string | undefined;
  /** CopyObject / UploadPartCopy: the source the client named in x-amz-copy-source ("bucket/key", decoded). */
  copySource: string | undefined;
  /**
   * DeleteObjects: what became of each entry (the audit trail's `objects`), so the trail names
   * every key a bulk delete removed or was refused, as it names the key of a DeleteObject.
   */
  auditObjects: Array<{ key: string; version_id?: string; result: "allowed" | "denied" | "failed"; reason?: string }> | undefined;
  /** The request target as the listener saw it ("/path?query" or an absolute URL). */
  readonly target: string;
  /** Raw (still percent-encoded) path and query ("" or "?a=b"). Set by the guard. */
  rawPath: string;
  query: string;
  /** The decoded, normalized path (logged; never with its query: tokens may live there). */
  path: string;

  /** Metrics/log label: a configured bucket name, or one of the fixed labels (_none, _health...). */
  bucketName: string;
  bucket: BucketRuntime | undefined;
  /** Object key inside the bucket ("" for bucket-level operations). */
  key: string;
  action: S3Action;
  /** Verified identity: JWT claims, or an S3 identity's configured claims. */
  claims: Claims | undefined;
  /** Who: the JWT `sub`, the S3 identity name, or undefined for anonymous. */
  subject: string | undefined;
  /** An STS session's id (the one issued, or the one a request is signed with), for the access line and the audit trail. */
  session: string | undefined;
  /** The S3 front: the request was signed in its query string (a presigned URL), for the access line. */
  presigned: boolean;
  /** Who `claims` describe, for the authorizers (set by the front that authenticated the request). */
  principal: PrincipalType;

  /** Holds an admission (concurrency) slot to release. */
  /** Admitted by the concurrency cap: "" (not counted per address) or the address counted; undefined: not admitted. */
  entered: string | undefined;
  /** Holds an upload slot (server.max_concurrent_uploads) for this client address, to release. */
  uploadSlot: string | undefined;
  /** True while a request body is streamed upstream: server.request_timeout waits for it (runner.ts). */
  uploading: boolean;
  /** A request body is being read whole before anything goes upstream: a deadline passing now is the client's (408 / S3's RequestTimeout), not the upstream's. */
  readingBody: boolean;
  timing: UpstreamTiming;

  // Outcome, recorded for the logging step.
  status: number;
  cache: string | undefined;
  errorCode: string | undefined;
  /** Why a token or claim rule was refused (the access log's reason): the error's client-safe detail. */
  errorReason: string | undefined;
  s3Code: string | undefined;
  /** The upstream's x-amz-request-id when it refused the request (the access log's s3_request_id). */
  s3RequestId: string | undefined;
  /** The S3 front: the access key id a request whose signature was refused named (the access log's access_key_id; unverified, never a secret: S3's own SignatureDoesNotMatch body carries it). */
  accessKeyId: string | undefined;
  /** The code of the failure that left the request without an upstream answer (the access log's upstream_error). */
  upstreamError: string | undefined;
  /** Body bytes handed to the listener (counted as they go for streamed bodies). */
  bytes: number;
  /** The body length announced to the client, when one was (a streamed body must reach it). */
  declaredBytes: number;
  /**
   * Request body bytes taken from the client and passed on (the access log's bytes_in): the
   * payload (aws-chunked framing not counted), as far as it really arrived. Undefined for a
   * request without a body, or one whose body was not read (refused first, or cut where it
   * cannot be counted: see src/fronts/s3/writes.ts bodyBytesIn).
   */
  bytesIn: number | undefined;
  /** True while a streamed body is still being sent: the logging step waits for its end. */
  streaming: boolean;
  /** Milliseconds from arrival to the response head (and, for streams, to the first body byte). */
  ttfbMs: number;
  /** Why a body that had started did not complete (upstream cut, stall, client gone). */
  bodyError: string | undefined;
  /** Set once the logging step has run (it runs exactly once). */
  finished: boolean;
  /**
   * The CORS phase's headers for this request's answer (src/http/cors.ts), kept for the answer the
   * request_timeout deadline gives outside the phases: without them a page could not read its 504.
   */
  corsHeaders: ((res: Response) => Response) | undefined;

  /** The TCP peer, when the listener had it at hand; otherwise asked lazily through peerOf. */
  peer: string | undefined;
  readonly peerOf: (req: Request) => string;
  clientIp: string | undefined;

  // Tracing (src/observe/trace/): all undefined when tracing is off.
  /** The request's server span (recording, or ids only when not sampled); also in timing.trace. */
  span: Span | undefined;
  traceId: string | undefined;
  spanId: string | undefined;

  // Front-specific state (S3RequestContext's `s3`, PresignContext's `presign`), declared here and
  // created undefined so every context has one shape: added later, they gave the contexts of the
  // two fronts different hidden classes, and the shared phases (admit, authorize, getObject...)
  // went polymorphic (JSC's BadCache OSR exits, ~100 per phase, in a process serving both fronts).
  s3?: unknown;
  /** The S3 front's address of the request, set before admission (S3RequestContext's `s3Addressed`). */
  s3Addressed?: unknown;
  presign?: unknown;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

export function createContext(svc: Services, front: string, req: Request, target: string, peer: string | undefined, peerOf: (req: Request) => string): RequestContext {
  const incomingId = req.headers.get("x-request-id");
  const start = performance.now();
  // Tracing off: this one check is all it costs.
  const tracer = svc.tracer;
  const span = tracer !== undefined && tracer.enabled ? tracer.startRequest(req.headers, start, req.method) : undefined;
  return {
    id: incomingId !== null && REQUEST_ID.test(incomingId) ? incomingId : crypto.randomUUID(),
    start,
    req,
    method: req.method,
    rt: svc.runtime,
    cacheSince: svc.cache.epoch,
    svc,
    front,
    operation: undefined,
    copySource: undefined,
    auditObjects: undefined,
    target,
    rawPath: "",
    query: "",
    path: "",
    bucketName: "_none",
    bucket: undefined,
    key: "",
    action: "none",
    claims: undefined,
    subject: undefined,
    session: undefined,
    presigned: false,
    principal: "anonymous",
    entered: undefined,
    uploadSlot: undefined,
    uploading: false,
    readingBody: false,
    timing: { upstreamMs: 0, attempts: 0, trace: span, attemptBodyMs: undefined, attemptHoldBytes: undefined, attemptFrom: undefined, replica: undefined, abandoned: undefined, onAbandon: undefined, fill: undefined },
    status: 0,
    cache: undefined,
    errorCode: undefined,
    errorReason: undefined,
    s3Code: undefined,
    s3RequestId: undefined,
    accessKeyId: undefined,
    upstreamError: undefined,
    bytes: 0,
    declaredBytes: -1,
    bytesIn: undefined,
    streaming: false,
    ttfbMs: 0,
    bodyError: undefined,
    finished: false,
    corsHeaders: undefined,
    peer,
    peerOf,
    clientIp: undefined,
    span,
    traceId: span?.traceId,
    spanId: span?.spanId,
    s3: undefined,
    s3Addressed: undefined,
    presign: undefined,
  };
}

let warnedForwardedFor = false;

/** The client's address for this request (trusted-proxy aware), resolved once and only when asked. */
/**
 * An IPv4 client of a dual-stack listener (`address: "::"`) arrives as an IPv4-mapped IPv6
 * address ("::ffff:10.0.0.7"): it is that IPv4 address, and is logged, audited and limited as one
 * (the CIDR rules matched it either way).
 */
function unmapped(peer: string): string {
  return peer.length > 7 && peer.charCodeAt(0) === 0x3a && /^::ffff:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/i.test(peer) ? peer.slice(7) : peer;
}

export function clientIp(ctx: RequestContext): string {
  if (ctx.clientIp === undefined) {
    const peer = unmapped(ctx.peer ?? ctx.peerOf(ctx.req));
    ctx.clientIp = clientIpOf(ctx.rt.trustedProxies, peer, ctx.req.headers, () => {
      // Once per process, and never the header's value (it is the client's, of any size and content).
      if (warnedForwardedFor) return;
      warnedForwardedFor = true;
      ctx.svc.log.warn("X-Forwarded-For from a trusted proxy holds an entry that is not an IP address; the trusted hop that passed it on is taken as the client (logged once)", { request_id: ctx.id, peer });
    });
  }
  return ctx.clientIp;
}
