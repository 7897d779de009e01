/**
 * Bucket-level documents and sub-resources real clients probe on the S3 front (s3cmd info, aws
 * s3api get-bucket-*, boto3): what S3 answers, never a 501 where S3 has an answer.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { awsCli } from "../clients/aws.ts";
import { boto3Client } from "../clients/boto3.ts";
import { clientTest } from "../clients/run.ts";
import { s3cmdClient } from "../clients/s3cmd.ts";
import { answerOf, READER, signedFetch, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(60_000);

const WEB = { accessKeyId: "AKIDBUCKETCONFIG", secretAccessKey: "bucket-config-secret-0123456789" };

let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv({
    // (a bucket with a `cors` section; WEB holds only `read` on it)
    moreBuckets: (endpoint) => `  - name: web
    path_prefix: /web
    s3: { bucket: up, endpoint: "${endpoint}", access_key: "AKIDUPSTREAMWRITE", secret_key: "upstream-writer-secret-0123456789" }
    cors: { allowed_origins: ["https://app.example.com", "https://*.example.org"], allowed_methods: [GET, PUT], allowed_headers: ["x-amz-*"], max_age: 300 }
`,
    moreCredentials: `    - { access_key_id: "${WEB.accessKeyId}", secret_access_key: "${WEB.secretAccessKey}", identity: webber, buckets: { web: [read] } }\n`,
  });
  await env.s3.put("up", "docs/a.txt", "hello");
});
afterAll(() => env.stop());

// ListMultipartUploads and ListObjectVersions are a bucket's: S3 answers them at a key's path with
// 400 InvalidRequest in these words; the proxy answered 501 NotImplemented.
test("GET ?uploads and ?versions at a key's path: S3's 400 InvalidRequest, nothing asked upstream", async () => {
  for (const [sub, message] of [
    ["uploads", "Key is not expected for the GET method ?uploads subresource"],
    ["versions", "There is no such thing as the ?versions sub-resource for a key"],
  ] as const) {
    env.mark();
    const a = await answerOf(await signedFetch(env, { method: "GET", path: "/up/docs/a.txt", query: [[sub, ""]], creds: WRITER }));
    expect({ sub, status: a.status, code: a.code, message: a.message, upstream: env.upstreamCalls().length }).toEqual({ sub, status: 400, code: "InvalidRequest", message, upstream: 0 });
  }
});

// S3 dispatches a bucket's sub-resources at a key's path too and answers the bucket's document, the
// key ignored (as it does ?location); the proxy answered 501 NotImplemented for ?cors, ?policy, ...
test("GET ?cors, ?policy, ?requestPayment at a key's path: the bucket's documents, the key (even one the proxy refuses) ignored", async () => {
  env.mark();
  const at = (path: string, sub: string, creds = WRITER) => signedFetch(env, { method: "GET", path, query: [[sub, ""]], creds });
  const [cors, policy, payer, refusedKey] = await Promise.all([
    answerOf(await at("/web/any/key.txt", "cors", WEB)),
    answerOf(await at("/up/docs/a.txt", "policy")),
    answerOf(await at("/up/no/such/key", "requestPayment")),
    answerOf(await at("/up/a//b", "requestPayment")),
  ]);
  expect([cors.status, cors.body]).toEqual([200, expect.stringContaining("<AllowedOrigin>https://app.example.com</AllowedOrigin>")]);
  expect([policy.status, policy.code, /<BucketName>([^<]*)</.exec(policy.body)?.[1]]).toEqual([404, "NoSuchBucketPolicy", "up"]);
  for (const p of [payer, refusedKey]) expect([p.status, p.body]).toEqual([200, expect.stringContaining("<Payer>BucketOwner</Payer>")]);
  expect(env.upstreamCalls()).toEqual([]);
});

// The bucket's configuration documents were 501 NotImplemented (GetBucketPolicy, GetBucketCors,
// GetBucketRequestPayment, ...): s3cmd info printed "none" for a CORS the bucket has, and
// aws-cli / boto3 callers got an error S3 never sends. Now: the bucket's `cors` as S3's
// CORSConfiguration, fixed answers for what the proxy decides (payer, object ownership, logging,
// notifications), and S3's own "not configured" 404 for the rest; from config, nothing upstream.
clientTest("aws")("aws-cli get-bucket-cors / -policy / -request-payment / -acl: the bucket's CORS, S3's not-configured errors, BucketOwner; any grant will do", async () => {
  using aws = awsCli({ endpoint: env.endpoint, credentials: WEB });
  using writer = awsCli({ endpoint: env.endpoint, credentials: WRITER });
  env.mark();
  const [cors, noCors, policy, payment, acl, denied] = await Promise.all([
    aws.s3api("get-bucket-cors", "--bucket", "web"),
    writer.s3api("get-bucket-cors", "--bucket", "up"),
    aws.s3api("get-bucket-policy", "--bucket", "web"),
    aws.s3api("get-bucket-request-payment", "--bucket", "web"),
    aws.s3api("get-bucket-acl", "--bucket", "web"),
    aws.s3api("get-bucket-cors", "--bucket", "up"),
  ]);
  expect(cors.stderr).toBe("");
  expect(JSON.parse(cors.stdout)).toEqual({
    CORSRules: [{
      AllowedHeaders: ["x-amz-*"], AllowedMethods: ["GET", "PUT"], AllowedOrigins: ["https://app.example.com", "https://*.example.org"],
      ExposeHeaders: ["etag", "x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-crc64nvme", "x-amz-checksum-sha1", "x-amz-checksum-sha256", "x-amz-checksum-type", "x-amz-version-id", "content-range", "accept-ranges"],
      MaxAgeSeconds: 300,
    }],
  });
  expect(noCors.stderr).toMatch(/\(NoSuchCORSConfiguration\) when calling the GetBucketCors operation.*: The CORS configuration does not exist/);
  expect(policy.stderr).toMatch(/\(NoSuchBucketPolicy\) when calling the GetBucketPolicy operation.*: The bucket policy does not exist/);
  expect(JSON.parse(payment.stdout)).toEqual({ Payer: "BucketOwner" });
  expect(JSON.parse(acl.stdout).Grants[0].Permission).toBe("FULL_CONTROL");
  // (WEB holds no grant on `up`)
  expect(denied.stderr).toContain("AccessDenied");
  expect(env.upstreamCalls()).toEqual([]);
});

// (GetBucketEncryption is relayed: s3-front-bucket-encryption.test.ts)
clientTest("boto3")("boto3: every bucket configuration read answers as S3 does for a bucket without it, or from config", async () => {
  const b = boto3Client({ endpoint: env.endpoint, credentials: READER });
  const calls: Array<[string, string]> = [
    ["get_bucket_policy", "NoSuchBucketPolicy"],
    ["get_bucket_policy_status", "NoSuchBucketPolicy"],
    ["get_bucket_tagging", "NoSuchTagSet"],
    ["get_bucket_lifecycle_configuration", "NoSuchLifecycleConfiguration"],
    ["get_bucket_website", "NoSuchWebsiteConfiguration"],
    ["get_public_access_block", "NoSuchPublicAccessBlockConfiguration"],
    ["get_object_lock_configuration", "ObjectLockConfigurationNotFoundError"],
    ["get_bucket_replication", "ReplicationConfigurationNotFoundError"],
    ["get_bucket_cors", "NoSuchCORSConfiguration"],
  ];
  const fixed: string[] = ["get_bucket_ownership_controls", "get_bucket_logging", "get_bucket_notification_configuration", "get_bucket_accelerate_configuration", "get_bucket_request_payment"];
  env.mark();
  const results = await b.run([...calls.map(([method]) => ({ op: "call" as const, method, params: { Bucket: "up" } })), ...fixed.map((method) => ({ op: "call" as const, method, params: { Bucket: "up" } }))]);
  for (const [i, [method, code]] of calls.entries()) {
    const r = results[i]!;
    expect({ method, got: r.ok ? "ok" : `${r.error.status} ${r.error.code}` }).toEqual({ method, got: `404 ${code}` });
  }
  const values = results.slice(calls.length).map((r) => (r.ok ? r.value : r.error));
  for (const v of values) delete v.ResponseMetadata;
  for (const v of values) delete v.HTTPStatusCode;
  expect(values).toEqual([
    { OwnershipControls: { Rules: [{ ObjectOwnership: "BucketOwnerEnforced" }] } },
    {},
    {},
    {},
    { Payer: "BucketOwner" },
  ]);
  expect(env.upstreamCalls()).toEqual([]);
});

// ListBucketAnalyticsConfigurations, ListBucketInventoryConfigurations, ListBucketMetricsConfigurations
// and ListBucketIntelligentTieringConfigurations were 501 NotImplemented: S3 answers a bucket with
// none an empty list, and one asked by its id NoSuchConfiguration.
clientTest("boto3")("boto3: the analytics, inventory, metrics and Intelligent-Tiering configurations: empty lists, NoSuchConfiguration by id, nothing upstream", async () => {
  const b = boto3Client({ endpoint: env.endpoint, credentials: READER });
  const kinds = ["analytics", "inventory", "metrics", "intelligent_tiering"];
  env.mark();
  const results = await b.run([
    ...kinds.map((k) => ({ op: "call" as const, method: `list_bucket_${k}_configurations`, params: { Bucket: "up" } })),
    ...kinds.map((k) => ({ op: "call" as const, method: `get_bucket_${k}_configuration`, params: { Bucket: "up", Id: "nope" } })),
  ]);
  const got = results.map((r) => (r.ok ? { IsTruncated: r.value.IsTruncated, keys: Object.keys(r.value).filter((k) => k !== "ResponseMetadata" && k !== "HTTPStatusCode").sort() } : `${r.error.status} ${r.error.code}`));
  expect(got).toEqual([...Array(4).fill({ IsTruncated: false, keys: ["IsTruncated"] }), ...Array(4).fill("404 NoSuchConfiguration")]);
  expect(env.upstreamCalls()).toEqual([]);
});

clientTest("aws")("aws-cli list-bucket-analytics-configurations / -metrics-: an empty list", async () => {
  using aws = awsCli({ endpoint: env.endpoint, credentials: READER });
  const [analytics, metrics] = await Promise.all([
    aws.s3api("list-bucket-analytics-configurations", "--bucket", "up"),
    aws.s3api("list-bucket-metrics-configurations", "--bucket", "up"),
  ]);
  for (const r of [analytics, metrics]) expect([r.stderr, JSON.parse(r.stdout)]).toEqual(["", { IsTruncated: false }]);
});

clientTest("s3cmd")("s3cmd info of a bucket and of a key: the payer, the bucket's CORS, no policy", async () => {
  using s3cmd = s3cmdClient({ endpoint: env.endpoint, credentials: WRITER });
  using webber = s3cmdClient({ endpoint: env.endpoint, credentials: WEB });
  const [bucket, key, web] = await Promise.all([s3cmd.run("info", "s3://up"), s3cmd.run("info", "s3://up/docs/a.txt"), webber.run("info", "s3://web")]);
  for (const r of [bucket, key, web]) expect([r.code, r.stderr]).toEqual([0, ""]);
  expect(bucket.stdout).toMatch(/Payer:\s+BucketOwner/);
  expect(bucket.stdout).toMatch(/Policy:\s+none/);
  expect(bucket.stdout).toMatch(/CORS:\s+none/);
  expect(key.stdout).toMatch(/ACL:\s+writer: FULL_CONTROL/);
  expect(web.stdout).toContain("<AllowedOrigin>https://app.example.com</AllowedOrigin>");
});

// Setting or deleting a bucket's configuration (s3cmd payer / delcors, aws s3api put-bucket-cors,
// delete-bucket-policy) was 501 NotImplemented, as if another server might take it. The setting is
// the proxy's configuration: S3's 403 AccessDenied for a caller without the permission, naming it;
// on a bucket the proxy does not serve, NoSuchBucket. Nothing reaches the upstream.
clientTest("s3cmd", "aws")("s3cmd payer / delcors, aws-cli put-bucket-cors / delete-bucket-policy: 403 AccessDenied naming the setting, nothing upstream", async () => {
  using s3cmd = s3cmdClient({ endpoint: env.endpoint, credentials: WRITER });
  using aws = awsCli({ endpoint: env.endpoint, credentials: WRITER });
  env.mark();
  const [payer, versioning, cors, policy, nope] = await Promise.all([
    s3cmd.run("payer", "s3://up"),
    s3cmd.run("delcors", "s3://up"),
    aws.s3api("put-bucket-cors", "--bucket", "up", "--cors-configuration", '{"CORSRules":[{"AllowedMethods":["GET"],"AllowedOrigins":["*"]}]}'),
    aws.s3api("delete-bucket-policy", "--bucket", "up"),
    aws.s3api("delete-bucket-policy", "--bucket", "nope"),
  ]);
  for (const r of [payer, versioning]) expect([r.code !== 0, r.stderr]).toEqual([true, expect.stringContaining("AccessDenied")]);
  expect(cors.stderr).toMatch(/\(AccessDenied\) when calling the PutBucketCors operation.*: This bucket.s \?cors setting is this proxy.s configuration/);
  expect(policy.stderr).toContain("(AccessDenied) when calling the DeleteBucketPolicy operation");
  expect(nope.stderr).toContain("(NoSuchBucket)");
  expect(env.upstreamCalls()).toEqual([]);
});

// S3 dispatches a bucket's sub-resources at a key's path, the key ignored (the reads above), and
// so a setting's write there is the bucket's: the proxy answered 501 NotImplemented where the
// bucket's path gives 403 AccessDenied naming the setting. DeleteBucket of a bucket the proxy
// serves was 501 too: the buckets are its configuration's, refused as CreateBucket of another name is.
clientTest("aws")("PUT ?cors / DELETE ?policy / PUT ?requestPayment at a key's path, DeleteBucket: 403 AccessDenied as at the bucket's path, nothing upstream", async () => {
  env.mark();
  const at = async (method: string, path: string, sub?: string, body?: string) => answerOf(await signedFetch(env, { method, path, query: sub === undefined ? [] : [[sub, ""]], body, creds: WRITER }));
  const cors = '<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>';
  const answers = await Promise.all([
    at("PUT", "/up/docs/a.txt", "cors", cors),
    at("DELETE", "/up/docs/a.txt", "policy"),
    at("PUT", "/up/no/such/key", "requestPayment", "<RequestPaymentConfiguration><Payer>Requester</Payer></RequestPaymentConfiguration>"),
    at("DELETE", "/up/docs/a.txt", "website"),
    at("DELETE", "/up"),
  ]);
  expect(answers.map((a) => `${a.status} ${a.code} ${a.message}`)).toEqual([
    "403 AccessDenied This bucket&apos;s ?cors setting is this proxy&apos;s configuration: it cannot be set or deleted through the S3 API.",
    "403 AccessDenied This bucket&apos;s ?policy setting is this proxy&apos;s configuration: it cannot be set or deleted through the S3 API.",
    "403 AccessDenied This bucket&apos;s ?requestPayment setting is this proxy&apos;s configuration: it cannot be set or deleted through the S3 API.",
    "403 AccessDenied This bucket&apos;s ?website setting is this proxy&apos;s configuration: it cannot be set or deleted through the S3 API.",
    "403 AccessDenied This proxy does not delete buckets: the buckets it serves are those its configuration names.",
  ]);
  // (a method the bucket's sub-resource does not take is its 405 at a key's path too)
  const post = await at("POST", "/up/docs/a.txt", "cors");
  expect([post.status, post.code, /<ResourceType>([^<]*)</.exec(post.body)?.[1]]).toEqual([405, "MethodNotAllowed", "CORS"]);
  using aws = awsCli({ endpoint: env.endpoint, credentials: WRITER });
  const rb = await aws.s3api("delete-bucket", "--bucket", "up");
  expect(rb.stderr).toContain("(AccessDenied) when calling the DeleteBucket operation");
  expect(env.upstreamCalls()).toEqual([]);
  expect(await env.s3.read("up", "docs/a.txt")).toBeDefined();
});

// S3's NoSuchUpload names the upload (<UploadId>), as its NoSuchKey names the key; the front
// relayed the upstream's refusal without it.
clientTest("boto3")("boto3: UploadPart, ListParts, AbortMultipartUpload and CompleteMultipartUpload of an unknown upload: NoSuchUpload with its <UploadId>; a missing key's NoSuchKey has <Key>", async () => {
  const b = boto3Client({ endpoint: env.endpoint, credentials: WRITER });
  const UploadId = "no-such-upload-id";
  const at = { Bucket: "up", Key: "docs/b.txt", UploadId };
  const results = await b.run([
    { op: "call", method: "upload_part", params: { ...at, PartNumber: 1, Body: "x" } },
    { op: "call", method: "list_parts", params: at },
    { op: "call", method: "abort_multipart_upload", params: at },
    { op: "call", method: "complete_multipart_upload", params: { ...at, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"x"' }] } } },
    { op: "call", method: "get_object", params: { Bucket: "up", Key: "docs/nope.txt" } },
  ]);
  const errors = results.map((r) => (r.ok ? "ok" : { code: r.error.code, UploadId: r.error.fields?.UploadId, Key: r.error.fields?.Key }));
  expect(errors).toEqual([...Array(4).fill({ code: "NoSuchUpload", UploadId, Key: undefined }), { code: "NoSuchKey", UploadId: undefined, Key: "docs/nope.txt" }]);
});

// A `response-` parameter S3 does not know (a typo of response-content-disposition) is S3's 400
// InvalidArgument naming it; the front ignored it and served the object without the header asked for.
test("GetObject / HeadObject with an unknown response-* parameter: S3's 400 InvalidArgument naming it; the known ones still apply", async () => {
  const get = (method: string, query: Array<[string, string]>) => signedFetch(env, { method, path: "/up/docs/a.txt", query });
  const typo = await answerOf(await get("GET", [["response-content-dispositon", "attachment"]]));
  expect([typo.status, typo.code, typo.message, /<ArgumentName>([^<]*)</.exec(typo.body)?.[1], /<ArgumentValue>([^<]*)</.exec(typo.body)?.[1]]).toEqual([
    400, "InvalidArgument", "response-content-dispositon is not in the set of overridable response headers. Please refer to the S3 API documentation for a complete list of overridable response headers.",
    "response-content-dispositon", "attachment",
  ]);
  expect((await get("HEAD", [["response-foo", ""]])).status).toBe(400);
  const ok = await get("GET", [["response-content-disposition", "attachment"], ["x-id", "GetObject"]]);
  expect([ok.status, ok.headers.get("content-disposition"), await ok.text()]).toEqual([200, "attachment", "hello"]);
});

// S3's NoSuchVersion names the key and the version (<Key>, <VersionId>); the front's had neither.
clientTest("boto3")("boto3: GetObject, GetObjectAcl and GetObjectAttributes of a version that does not exist: NoSuchVersion with <Key> and <VersionId>", async () => {
  const b = boto3Client({ endpoint: env.endpoint, credentials: WRITER });
  // (an id of S3's form that the fixture's buckets never hold)
  const VersionId = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrH";
  const at = { Bucket: "up", Key: "docs/a.txt", VersionId };
  const results = await b.run([
    { op: "call", method: "get_object", params: at },
    { op: "call", method: "get_object_acl", params: at },
    { op: "call", method: "get_object_attributes", params: { ...at, ObjectAttributes: ["ETag"] } },
  ]);
  const errors = results.map((r) => (r.ok ? "ok" : { code: r.error.code, Key: r.error.fields?.Key, VersionId: r.error.fields?.VersionId }));
  expect(errors).toEqual(Array(3).fill({ code: "NoSuchVersion", Key: "docs/a.txt", VersionId }));
});
