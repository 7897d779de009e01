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
import { rcloneClient } from "./rclone.ts";
import { clientTest, tempDir } from "./run.ts";
import { s3cmdClient } from "./s3cmd.ts";

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

/** 147 keys (294 were checked once: ~30 s of real-client runs here) in nested folders with spaces, Latin-1, non-BMP, "+" and "%" in their names (under paging/). */
const PAGING_FOLDERS = ["", "a b/", "a b/c/", "é ü/", "😀 x/", "+%/", "z/deep/er/"];
const PAGING_NAMES = ["f 1.txt", "ü+ß", "😀.bin", "100% sure", "a+b", "plain"];
const PAGING_KEYS = Array.from({ length: 147 }, (_, i) => `paging/${PAGING_FOLDERS[i % PAGING_FOLDERS.length]}${PAGING_NAMES[i % PAGING_NAMES.length]}-${i}`);

clientTest("aws", "python3", "boto3", "rclone", "s3cmd")(
  "real clients paging with tiny pages through 147 keys in nested folders (spaces, é, 😀, +, %): aws s3 ls --page-size 7, s3api list-objects (V1) and list-object-versions, rclone lsf (V2 and V1), boto3 paginators with a delimiter (V1 and V2), s3cmd ls -r: each lists every key once",
  async () => {
    for (let i = 0; i < PAGING_KEYS.length; i += 25) await Promise.all(PAGING_KEYS.slice(i, i + 25).map((k) => env.s3.put("up", k, "x")));
    // the fixture's own full listing, straight from it
    const [own] = await boto3Client({ endpoint: env.s3.endpoint, credentials: env.s3.adminCredentials }).run([{ op: "list", Bucket: "up", Prefix: "paging/" }]);
    const all = (own as { value: { keys: Array<{ Key: string }> } }).value.keys.map((k) => k.Key);
    expect(all.toSorted()).toEqual(PAGING_KEYS.toSorted());
    // the delimited listing of paging/: its keys and folders
    const top = { keys: all.filter((k) => !k.slice(7).includes("/")), prefixes: [...new Set(all.filter((k) => k.slice(7).includes("/")).map((k) => k.slice(0, k.indexOf("/", 7) + 1)))] };
    using aws = awsCli({ endpoint: env.endpoint, credentials: WRITER });
    using rclone = rcloneClient({ endpoint: env.endpoint, credentials: WRITER });
    using s3cmd = s3cmdClient({ endpoint: env.endpoint, credentials: WRITER });
    const b = boto3Client({ endpoint: env.endpoint, credentials: WRITER });
    const [ls, v1, versions, lsf, lsf1, s3cmdLs, paged] = await Promise.all([
      aws.s3("ls", "s3://up/paging/", "--recursive", "--page-size", "7"),
      aws.s3api("list-objects", "--bucket", "up", "--prefix", "paging/", "--page-size", "7"),
      aws.s3api("list-object-versions", "--bucket", "up", "--prefix", "paging/", "--page-size", "3"),
      rclone.run("lsf", "-R", "--files-only", "--s3-list-chunk", "5", rclone.remote("up/paging")),
      rclone.run("lsf", "-R", "--files-only", "--s3-list-chunk", "5", "--s3-list-version", "1", rclone.remote("up/paging")),
      s3cmd.run("ls", "-r", "s3://up/paging/"),
      b.run([
        { op: "list", Method: "list_objects", Bucket: "up", Prefix: "paging/", Delimiter: "/", PageSize: 2 },
        { op: "list", Bucket: "up", Prefix: "paging/", Delimiter: "/", PageSize: 2 },
        { op: "list", Method: "list_objects", Bucket: "up", Prefix: "paging/", PageSize: 9 },
      ]),
    ]);
    const listed = (r: { code: number; stderr: string; stdout: string }, keys: (out: string) => string[]) => (r.code === 0 ? keys(r.stdout) : [`exit ${r.code}: ${r.stderr.slice(0, 500)}`]);
    const lines = (out: string) => out.split("\n").filter((l) => l !== "");
    const got = {
      "aws s3 ls": listed(ls, (o) => lines(o).map((l) => l.replace(/^\S+ \S+\s+\d+ /, ""))),
      "aws s3api list-objects": listed(v1, (o) => (JSON.parse(o) as { Contents: Array<{ Key: string }> }).Contents.map((c) => c.Key)),
      "aws s3api list-object-versions": listed(versions, (o) => (JSON.parse(o) as { Versions: Array<{ Key: string }> }).Versions.map((c) => c.Key)),
      "rclone lsf": listed(lsf, (o) => lines(o).map((l) => `paging/${l}`)),
      "rclone lsf v1": listed(lsf1, (o) => lines(o).map((l) => `paging/${l}`)),
      "s3cmd ls -r": listed(s3cmdLs, (o) => lines(o).map((l) => l.replace(/^.*?s3:\/\/up\//, ""))),
      "boto3 list_objects": paged[2]!.ok ? (paged[2]!.value as { keys: Array<{ Key: string }> }).keys.map((k) => k.Key) : [JSON.stringify(paged[2]!.error)],
    };
    // (each exactly once: sorted, so a repeat shows as a second copy)
    expect(Object.fromEntries(Object.entries(got).map(([k, v]) => [k, v.toSorted()]))).toEqual(Object.fromEntries(Object.keys(got).map((k) => [k, all.toSorted()])));
    const delimited = paged.slice(0, 2).map((r) => (r.ok ? { keys: (r.value as { keys: Array<{ Key: string }> }).keys.map((k) => k.Key).toSorted(), prefixes: (r.value as { prefixes: string[] }).prefixes.toSorted() } : r.error));
    expect(delimited).toEqual([0, 1].map(() => ({ keys: top.keys.toSorted(), prefixes: top.prefixes.toSorted() })));
  },
  T,
);
