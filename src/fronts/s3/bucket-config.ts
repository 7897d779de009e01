/**
 * A bucket's configuration documents, as clients probe them (s3cmd info, aws s3api get-bucket-*,
 * desktop S3 browsers): answered from this proxy's configuration, never relayed (but the default
 * encryption rule: bucketEncryption). The bucket a client sees is the proxy's: its access is
 * decided by the grants, claim rules and authorizers, not by the upstream bucket's policy, tags or
 * settings, which name the upstream's account, keys and principals and are no client's to read. What the proxy has no such setting for is S3's own
 * "not configured" answer for a bucket without it (404 with S3's code and <BucketName>), which the
 * clients take as "none". Any grant on the bucket will do, as for GetBucketLocation and GetBucketAcl.
 */
import type { CorsConfig } from "../../config/cors.ts";
import type { BucketConfig } from "../../config/schema.ts";
import { onAwsS3 } from "../../config/writes.ts";
import { announcesBody } from "../../http/body-policy.ts";
import type { RequestContext } from "../../proxy/context.ts";
import { s3Error, type S3Error, type S3ErrorCode } from "./errors.ts";
import { s3Fail } from "./fail.ts";
import { xmlResponse } from "./operations.ts";
import { getBucketEncryption } from "../../s3/operations/index.ts";
import { readUpstreamCapped, relayError, tryParse, upstreamBucketsOf } from "./relay.ts";
import { callOf, fieldText, grantsOthers, readXmlBody, requestHeaders } from "./writes.ts";
import { childText, type XmlElement } from "./xml-reader.ts";
import type { BucketConfigRead } from "./route.ts";
import { el, S3_XMLNS, XML_DECL } from "./xml.ts";

/**
 * S3's answer for a bucket without the setting. The proxy has no bucket policy (GetBucketPolicyStatus
 * is NoSuchBucketPolicy too, as on S3), tags, lifecycle rules, website, public access block, Object
 * Lock (writes with Object Lock settings are refused) or replication of its own, and sets no default
 * encryption (see defaultEncryption).
 */
const NOT_CONFIGURED: Partial<Record<BucketConfigRead, S3ErrorCode>> = {
  GetBucketPolicy: "NoSuchBucketPolicy",
  GetBucketPolicyStatus: "NoSuchBucketPolicy",
  GetBucketEncryption: "ServerSideEncryptionConfigurationNotFoundError",
  GetBucketTagging: "NoSuchTagSet",
  GetBucketLifecycleConfiguration: "NoSuchLifecycleConfiguration",
  GetBucketWebsite: "NoSuchWebsiteConfiguration",
  GetPublicAccessBlock: "NoSuchPublicAccessBlockConfiguration",
  GetObjectLockConfiguration: "ObjectLockConfigurationNotFoundError",
  GetBucketReplication: "ReplicationConfigurationNotFoundError",
  GetBucketAnalyticsConfiguration: "NoSuchConfiguration",
  GetBucketInventoryConfiguration: "NoSuchConfiguration",
  GetBucketMetricsConfiguration: "NoSuchConfiguration",
  GetBucketIntelligentTieringConfiguration: "NoSuchConfiguration",
};

/** S3's list of a bucket's analytics, inventory, metrics or S3 Intelligent-Tiering configurations, by its root: the proxy has none (an empty list). */
const CONFIG_LISTS: Partial<Record<BucketConfigRead, string>> = {
  ListBucketAnalyticsConfigurations: "ListBucketAnalyticsConfigurationResult",
  ListBucketInventoryConfigurations: "ListInventoryConfigurationsResult",
  ListBucketMetricsConfigurations: "ListMetricsConfigurationsResult",
  ListBucketIntelligentTieringConfigurations: "ListBucketIntelligentTieringConfigurationsOutput",
};

const doc = (root: string, inner: string) => XML_DECL + "<" + root + ' xmlns="' + S3_XMLNS + '">' + inner + "</" + root + ">";

/** The bucket's `cors` as S3's CORSConfiguration: one rule. */
function renderCors(cors: CorsConfig): string {
  let rule = "";
  for (const h of cors.allowed_headers) rule += el("AllowedHeader", h);
  for (const m of cors.allowed_methods) rule += el("AllowedMethod", m);
  for (const o of cors.allowed_origins) rule += el("AllowedOrigin", o);
  for (const h of cors.expose_headers) rule += el("ExposeHeader", h);
  return doc("CORSConfiguration", "<CORSRule>" + rule + el("MaxAgeSeconds", String(cors.max_age)) + "</CORSRule>");
}

/**
 * GetBucketEncryption's document, or undefined for S3's "not configured". Since January 2023 every
 * AWS S3 bucket encrypts new objects with SSE-S3 at least, and GetBucketEncryption answers that rule
 * (AES256) where it answered ServerSideEncryptionConfigurationNotFoundError before: so for a bucket
 * whose every store is AWS S3, when the store's own rule cannot be read (bucketEncryption relays it
 * otherwise). Another store's encryption at rest is unknown here and nothing the proxy promises.
 */
export function defaultEncryption(cfg: BucketConfig): string | undefined {
  if (!onAwsS3(cfg)) return undefined;
  return doc("ServerSideEncryptionConfiguration", "<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>false</BucketKeyEnabled></Rule>");
}

/** An upstream's ServerSideEncryptionConfiguration is a rule or two; anything near this is not one. */
const MAX_ENCRYPTION_BYTES = 64 * 1024;

/** The rules of an upstream's ServerSideEncryptionConfiguration, rebuilt (their key's ARN left out); undefined for another document. */
function relayedEncryption(upstreamDoc: XmlElement | undefined): string | undefined {
  if (upstreamDoc?.name !== "ServerSideEncryptionConfiguration") return undefined;
  let rules = "";
  for (const rule of upstreamDoc.children) {
    if (rule.name !== "Rule") continue;
    const byDefault = rule.children.find((c) => c.name === "ApplyServerSideEncryptionByDefault");
    const algorithm = byDefault === undefined ? undefined : childText(byDefault, "SSEAlgorithm");
    if (algorithm === undefined || !/^[A-Za-z0-9:_-]{1,32}$/.test(algorithm)) return undefined;
    const bucketKey = childText(rule, "BucketKeyEnabled");
    rules += "<Rule><ApplyServerSideEncryptionByDefault>" + el("SSEAlgorithm", algorithm) + "</ApplyServerSideEncryptionByDefault>" + (bucketKey === "true" || bucketKey === "false" ? el("BucketKeyEnabled", bucketKey) : "") + "</Rule>";
  }
  return rules === "" ? undefined : doc("ServerSideEncryptionConfiguration", rules);
}

/**
 * GetBucketEncryption: the upstream bucket's rule, asked with the bucket's credentials, so a bucket
 * set to SSE-KMS says so (it was AES256 from config for any AWS S3 bucket). Its KMSMasterKeyID, an
 * ARN naming the upstream's account, is left out, as object answers drop the KMS key id header.
 * Asked as a listing is: failing over between the bucket's replicas (the primary alone answered
 * its outage to the client). Credentials that may not read it (AccessDenied), a store without it
 * (NotImplemented, or another document than S3's): the answer from config (defaultEncryption). The
 * store's "not configured" (404 ServerSideEncryptionConfigurationNotFoundError) is S3's answer with
 * the client's BucketName (it had none). A 400 is the upstream refusing the proxy's own request,
 * no client's error: S3's InternalError (it was relayed, InvalidArgument and all). Another error
 * is relayed as S3's (relayError: never the upstream's bucket name or internals).
 */
async function bucketEncryption(ctx: RequestContext): Promise<Response> {
  const bucket = ctx.bucket!;
  const call = callOf(ctx);
  const res = await bucket.upstream.read(call.signal, call.timing, async (u, maxAttempts) => {
    const r = await getBucketEncryption(u, { ...call, maxAttempts });
    if (r.status !== 501) return r;
    // A store without the call (501 NotImplemented) has answered: as the 405 of one, which the
    // failover takes for an answer (a 5xx is a replica's failure: the next one was asked, and its
    // outage reached the client where this answer gives the config's rule).
    await r.body?.cancel().catch(() => {});
    return new Response(null, { status: 405 });
  });
  const notConfigured = () => s3Fail(s3Error("ServerSideEncryptionConfigurationNotFoundError", undefined, { BucketName: bucket.name }));
  if (res.status === 404) {
    const body = await readUpstreamCapped(res, MAX_ENCRYPTION_BYTES).catch(() => undefined);
    const upstreamDoc = tryParse(body);
    if (upstreamDoc?.name === "Error" && childText(upstreamDoc, "Code")?.trim() === "ServerSideEncryptionConfigurationNotFoundError") throw notConfigured();
    // (the body as read: decoded, so without the Content-Encoding it came in, which had relayError
    // decode it again, fail, and answer a bucket's NoSuchBucket as NoSuchKey)
    const headers = new Headers(res.headers);
    headers.delete("content-encoding");
    return relayError(new Response(body ?? null, { status: 404, headers }), upstreamBucketsOf(bucket.upstream));
  }
  if (res.status === 400) {
    await res.body?.cancel().catch(() => {});
    throw s3Fail(s3Error("InternalError", "The upstream refused the proxy's request for the bucket's encryption configuration."));
  }
  if (res.status !== 200 && res.status !== 403 && res.status !== 405 && res.status !== 501) return relayError(res, upstreamBucketsOf(bucket.upstream));
  const relayed = res.status === 200 ? relayedEncryption(tryParse(await readUpstreamCapped(res, MAX_ENCRYPTION_BYTES))) : undefined;
  if (res.status !== 200) await res.body?.cancel().catch(() => {});
  if (relayed !== undefined) return xmlResponse(ctx, relayed);
  const encryption = defaultEncryption(bucket.cfg);
  if (encryption === undefined) throw notConfigured();
  return xmlResponse(ctx, encryption);
}

export function bucketConfigOp(ctx: RequestContext, op: BucketConfigRead): Response | Promise<Response> {
  const bucket = ctx.bucket!;
  switch (op) {
    case "GetBucketEncryption":
      return bucketEncryption(ctx);
    case "GetBucketCors":
      if (bucket.cfg.cors === undefined) break;
      return xmlResponse(ctx, renderCors(bucket.cfg.cors));
    case "GetBucketRequestPayment":
      return xmlResponse(ctx, doc("RequestPaymentConfiguration", "<Payer>BucketOwner</Payer>"));
    // (ACLs are answered as on a bucket with ACLs disabled, S3's default since 2023: acl.ts)
    case "GetBucketOwnershipControls":
      return xmlResponse(ctx, doc("OwnershipControls", "<Rule><ObjectOwnership>BucketOwnerEnforced</ObjectOwnership></Rule>"));
    // (S3 answers these three with an empty document when nothing is set)
    case "GetBucketLogging":
      return xmlResponse(ctx, doc("BucketLoggingStatus", ""));
    case "GetBucketNotificationConfiguration":
      return xmlResponse(ctx, doc("NotificationConfiguration", ""));
    case "GetBucketAccelerateConfiguration":
      return xmlResponse(ctx, doc("AccelerateConfiguration", ""));
    default: {
      const list = CONFIG_LISTS[op];
      if (list !== undefined) return xmlResponse(ctx, doc(list, "<IsTruncated>false</IsTruncated>"));
    }
  }
  throw s3Fail(s3Error(NOT_CONFIGURED[op] ?? "NoSuchCORSConfiguration", undefined, { BucketName: bucket.name }));
}

/** The ObjectOwnership settings S3 knows (x-amz-object-ownership). */
const OBJECT_OWNERSHIPS: ReadonlySet<string> = new Set(["BucketOwnerEnforced", "BucketOwnerPreferred", "ObjectWriter"]);

/** S3's 400 InvalidArgument for a header whose value it has no meaning for (the value shown cut at 64 characters). */
function invalidHeader(name: string, value: string): S3Error {
  return s3Error("InvalidArgument", `Invalid ${name} header`, { ArgumentName: name, ArgumentValue: value.slice(0, 64) });
}

/**
 * A CreateBucket setting the configured bucket does not have, as S3's refusal: Object Lock
 * (x-amz-bucket-object-lock-enabled: true), which these buckets never have (GetObjectLockConfiguration
 * answers none), is 409 InvalidBucketState in S3's words for enabling it on a bucket that exists; an
 * ObjectOwnership other than BucketOwnerEnforced (what GetBucketOwnershipControls reports) 409
 * InvalidBucketState naming it; a value S3 has no setting for (an ownership it does not know, a
 * lock header neither true nor false, as a repeated one) 400 InvalidArgument. Both were a
 * success, the lock asked for never enabled.
 */
function unkeptBucketSetting(h: Headers): S3Error | undefined {
  const lock = h.get("x-amz-bucket-object-lock-enabled")?.trim();
  const asked = lock?.toLowerCase();
  if (asked === "true") return s3Error("InvalidBucketState", "Object Lock configuration cannot be enabled on existing buckets");
  // (neither true nor false: `yes`, `1`, the header twice, `true, true`: no way to tell it was not asked; shown as sent)
  if (lock !== undefined && asked !== "false") return invalidHeader("x-amz-bucket-object-lock-enabled", lock);
  const ownership = h.get("x-amz-object-ownership")?.trim();
  if (ownership === undefined || ownership === "BucketOwnerEnforced") return undefined;
  if (!OBJECT_OWNERSHIPS.has(ownership)) return invalidHeader("x-amz-object-ownership", ownership);
  return s3Error("InvalidBucketState", `This bucket's ObjectOwnership is BucketOwnerEnforced (ACLs disabled): it cannot be ${ownership}.`);
}

/**
 * What an AWS region's name looks like (us-east-1, us-gov-west-1, ap-southeast-5, eu-isoe-west-1,
 * cn-northwest-1): a LocationConstraint that is not one is no region at all. Each word is bounded,
 * at 12 letters (AWS's longest, northwest and southeast, have 9: room for a longer one to come): the
 * name goes back in IllegalLocationConstraintException's Message.
 */
const REGION_NAME = /^[a-z]{2}(?:-[a-z]{1,12}){1,3}-\d{1,2}$/;

/**
 * CreateBucket of a configured bucket the principal may use: S3's answer for a bucket one already
 * owns (clients such as rclone create the bucket before an upload and accept this): 409
 * BucketAlreadyOwnedByYou in every region but us-east-1, where S3 answers 200 (its legacy
 * behaviour: `aws s3 mb` of a bucket one owns succeeds there). Nothing is created either way. A
 * CreateBucketConfiguration whose LocationConstraint names another region than `region` (the
 * bucket's, s3_api.region) is S3's 400 IllegalLocationConstraintException, as a region's endpoint
 * answers a constraint naming another (`EU` is eu-west-1's old name): it was a success, a bucket
 * "created" in a region it is not in. A constraint that names no region (not region-shaped) is
 * S3's 400 InvalidLocationConstraint, the value not echoed, and so is `us-east-1` (S3's default
 * region is asked for by naming no constraint; S3 refuses it named). An ACL granting anyone but the owner (`x-amz-acl: public-read`,
 * an `x-amz-grant-*`) is S3's 400 InvalidBucketAclWithObjectOwnership, as S3 answers it for a bucket
 * whose ObjectOwnership is BucketOwnerEnforced (what GetBucketOwnershipControls reports here): it was
 * a success, a bucket the client took for public. Object Lock or another ObjectOwnership asked for
 * is refused too (unkeptBucketSetting).
 */
export async function createBucketOp(ctx: RequestContext, region: string): Promise<Response> {
  const h = requestHeaders(ctx);
  if (grantsOthers(h)) throw s3Fail(s3Error("InvalidBucketAclWithObjectOwnership"));
  const unkept = unkeptBucketSetting(h);
  if (unkept !== undefined) throw s3Fail(unkept);
  if (announcesBody(h)) {
    // (one LocationConstraint: a second is MalformedXML, as S3's schema says, never the first one taken)
    const asked = fieldText(await readXmlBody(ctx, "CreateBucketConfiguration"), "LocationConstraint")?.trim() ?? "";
    // us-east-1 is asked for by naming none: S3 refuses it named (it is not among the constraint's
    // valid values), whatever the endpoint's region; it was 200 where s3_api.region is us-east-1.
    if (asked === "us-east-1") throw s3Fail(s3Error("InvalidLocationConstraint", undefined, { LocationConstraint: asked }));
    if (asked !== "" && (asked === "EU" ? "eu-west-1" : asked) !== region) {
      // (a value no region has, S3's InvalidLocationConstraint, never shown back: it may be the body's 4 MiB)
      if (asked !== "EU" && !REGION_NAME.test(asked)) throw s3Fail(s3Error("InvalidLocationConstraint"));
      throw s3Fail(s3Error("IllegalLocationConstraintException", `The ${asked} location constraint is incompatible for the region specific endpoint this request was sent to.`));
    }
  }
  if (region === "us-east-1") return new Response(null, { status: 200, headers: { location: `/${ctx.bucketName}` } });
  throw s3Fail(s3Error("BucketAlreadyOwnedByYou", undefined, { BucketName: ctx.bucketName }));
}
