/**
 * A new user's walk through the proxy's S3 front with real clients, for what the other client
 * tests leave out: object headers stored as the client sent them (S3 keeps them verbatim); a
 * client configured for another region than s3_api.region (S3 tells it the right one, and the
 * SDKs re-sign for it, also for a HEAD, whose error has no body).
 * The S3 fixture (which stores what it is sent) is the upstream; the proxy runs in the test
 * process (test/e2e/s3-front-upload-helpers.ts: bucket `up`, credentials WRITER).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout } from "bun:test";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { startUploadEnv, WRITER, type UploadEnv } from "../e2e/s3-front-upload-helpers.ts";
import { awsCli } from "./aws.ts";
import { boto3Client } from "./boto3.ts";
import { join } from "node:path";
import { clientTest, tempDir } from "./run.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const T = 120_000; // real clients start Python programs on a loaded 2-core machine
let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv();
});
afterAll(async () => {
  await env?.stop();
});

/** The Content-Encoding the upstream stored for `key` (read from the fixture, not through the proxy). */
async function storedEncoding(key: string): Promise<string | undefined> {
  const h = await env.s3.client().send(new HeadObjectCommand({ Bucket: "up", Key: key }));
  return h.ContentEncoding;
}

clientTest("python3", "boto3")(
  "boto3 put_object, create_multipart_upload and copy_object (REPLACE) with a Content-Encoding list: stored as sent, as S3 stores it",
  async () => {
    const b = boto3Client({ endpoint: env.endpoint, credentials: WRITER });
    const [put, put2, create] = await b.run([
      { op: "put_object", Bucket: "up", Key: "walk/ce-list", BodyText: "abc", Params: { ContentEncoding: "gzip, br" } },
      { op: "put_object", Bucket: "up", Key: "walk/ce-odd", BodyText: "abc", Params: { ContentEncoding: "x-custom;q=1 ,  br" } },
      { op: "call", method: "create_multipart_upload", params: { Bucket: "up", Key: "walk/ce-mp", ContentEncoding: "gzip, br" } },
    ]);
    expect([put!.ok, put2!.ok, create!.ok]).toEqual([true, true, true]);
    const uploadId = (create as { value: { UploadId: string } }).value.UploadId;
    const [part] = await b.run([{ op: "call", method: "upload_part", params: { Bucket: "up", Key: "walk/ce-mp", UploadId: uploadId, PartNumber: 1, Body: "xyz" } }]);
    if (!part!.ok) throw new Error(JSON.stringify(part!.error));
    const [done, copied] = await b.run([
      {
        op: "call",
        method: "complete_multipart_upload",
        params: { Bucket: "up", Key: "walk/ce-mp", UploadId: uploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part!.value.ETag }] } },
      },
      {
        op: "call",
        method: "copy_object",
        params: { Bucket: "up", Key: "walk/ce-copy", CopySource: { Bucket: "up", Key: "walk/ce-list" }, MetadataDirective: "REPLACE", ContentEncoding: "deflate, gzip" },
      },
    ]);
    expect([done!.ok, copied!.ok]).toEqual([true, true]);
    expect({
      put: await storedEncoding("walk/ce-list"),
      odd: await storedEncoding("walk/ce-odd"),
      multipart: await storedEncoding("walk/ce-mp"),
      copy: await storedEncoding("walk/ce-copy"),
    }).toEqual({ put: "gzip, br", odd: "x-custom;q=1 ,  br", multipart: "gzip, br", copy: "deflate, gzip" });
  },
  T,
);

clientTest("python3", "boto3")(
  "boto3 upload_file in parts of a key holding a C0 control (U+0001): the upload completes and the object is stored under that key (the proxy's Initiate/Complete results write it as U+FFFD, which botocore reads; S3's &#x1; it refuses)",
  async () => {
    using dir = tempDir();
    const file = join(dir.path, "ctl.txt");
    await Bun.write(file, "control in the key");
    const b = boto3Client({ endpoint: env.endpoint, credentials: WRITER });
    const [up, list] = await b.run([
      { op: "upload_file", Bucket: "up", Key: "walk/ctl/x\u0001y.txt", Filename: file, multipartThreshold: 1 },
      { op: "call", method: "list_multipart_uploads", params: { Bucket: "up", Prefix: "walk/ctl/", EncodingType: "url" } },
    ]);
    expect(up).toEqual({ ok: true, value: {} });
    expect(new TextDecoder().decode((await env.s3.read("up", "walk/ctl/x\u0001y.txt"))!)).toBe("control in the key");
    expect(list!.ok && (list!.value.Uploads ?? [])).toEqual([]);
  },
  T,
);

clientTest("aws")(
  "aws-cli configured for another region: aws s3 cp down (HeadObject first), head-object and head-bucket re-sign for the proxy's region, as against S3",
  async () => {
    await env.s3.put("up", "walk/region.txt", "the right region");
    // the proxy's s3_api.region is us-east-1; a new user's default region is often another
    using aws = awsCli({ endpoint: env.endpoint, credentials: WRITER, region: "eu-west-1" });
    // three processes at once (each aws start costs seconds on a loaded machine; they only read)
    const [cp, head, bucket] = await Promise.all([
      aws.s3("cp", "s3://up/walk/region.txt", "-"),
      aws.s3api("head-object", "--bucket", "up", "--key", "walk/region.txt", "--query", "ContentLength"),
      aws.s3api("head-bucket", "--bucket", "up"),
    ]);
    expect({ cp: [cp.code, cp.stdout, cp.stderr], head: [head.code, head.stdout.trim(), head.stderr], bucket: [bucket.code, bucket.stderr] }).toEqual({
      cp: [0, "the right region", ""],
      head: [0, "16", ""],
      bucket: [0, ""],
    });
  },
  T,
);

clientTest("aws")(
  "aws s3api select-object-content (POST ?select&select-type=2): 501 NotImplemented naming ?select (it said the request named several sub-resources), nothing upstream",
  async () => {
    await env.s3.put("up", "walk/select.csv", "a,b\n1,2\n");
    using aws = awsCli({ endpoint: env.endpoint, credentials: WRITER });
    env.mark();
    const r = await aws.s3api(
      "select-object-content", "--bucket", "up", "--key", "walk/select.csv", "--expression", "select * from s3object", "--expression-type", "SQL",
      "--input-serialization", '{"CSV":{}}', "--output-serialization", '{"CSV":{}}', "/dev/null",
    );
    expect({ code: r.code, stderr: r.stderr.trim() }).toEqual({
      code: 254,
      stderr: "An error occurred (NotImplemented) when calling the SelectObjectContent operation (reached max retries: 0): The ?select sub-resource is not implemented by this proxy.",
    });
    expect(env.upstreamCalls()).toEqual([]);
  },
  T,
);

clientTest("aws")(
  "aws s3api create-bucket of a configured bucket with a LocationConstraint naming another region: S3's IllegalLocationConstraintException (it printed a Location, a bucket 'created' in eu-west-1 that reports us-east-1); with --acl public-read S3's InvalidBucketAclWithObjectOwnership (it succeeded); without either, S3's legacy 200 in us-east-1",
  async () => {
    using aws = awsCli({ endpoint: env.endpoint, credentials: WRITER });
    env.mark();
    const [other, plain, pub] = await Promise.all([
      aws.s3api("create-bucket", "--bucket", "up", "--create-bucket-configuration", "LocationConstraint=eu-west-1"),
      aws.s3api("create-bucket", "--bucket", "up"),
      aws.s3api("create-bucket", "--bucket", "up", "--acl", "public-read"),
    ]);
    expect({ code: other.code, stderr: other.stderr.trim() }).toEqual({
      code: 254,
      stderr:
        "An error occurred (IllegalLocationConstraintException) when calling the CreateBucket operation (reached max retries: 0): The eu-west-1 location constraint is incompatible for the region specific endpoint this request was sent to.",
    });
    expect({ code: plain.code, location: JSON.parse(plain.stdout).Location, stderr: plain.stderr }).toEqual({ code: 0, location: "/up", stderr: "" });
    // ACLs are disabled (GetBucketOwnershipControls: BucketOwnerEnforced): a public bucket is S3's refusal, not a success
    expect({ code: pub.code, stderr: pub.stderr.trim() }).toEqual({
      code: 254,
      stderr: "An error occurred (InvalidBucketAclWithObjectOwnership) when calling the CreateBucket operation (reached max retries: 0): Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
    });
    expect(env.upstreamCalls()).toEqual([]);
  },
  T,
);
