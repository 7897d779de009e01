/**
 * S3's conditional writes through the proxy, against the S3 fixture (which answers them as S3
 * does: test/fixtures/s3/conditions.ts). PutObject / CompleteMultipartUpload with If-None-Match: *
 * or If-Match, CopyObject with x-amz-copy-source-if-* and the destination's If-Match /
 * If-None-Match: a refusal reaches the client as S3's (412 PreconditionFailed in S3's XML on the S3
 * front, 412 with the JSON error on the plain front), nothing is replaced upstream, and a cached
 * bucket still answers the old object after a refusal and the new one after an accepted write.
 *
 * Real clients: aws-cli 2.9 and boto3 1.26 (Debian's) predate S3's conditional writes (no
 * --if-none-match / IfNoneMatch): the headers are added before signing, through a test plugin
 * for aws-cli (test/clients/aws_conditional_writes.py) and a botocore event hook for boto3 (the
 * runner's `headers`); the JS SDK sends its own IfNoneMatch / IfMatch.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { awsCli } from "../clients/aws.ts";
import { boto3Client } from "../clients/boto3.ts";
import { clientTest, tempDir, type TempDir } from "../clients/run.ts";
import { bearer, bucket, startWriteEnv, WRITER as PLAIN_UPSTREAM, type WriteEnv } from "./plain-write-env.ts";
import { answerOf, signedFetch, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";
import { sdkErrorOf } from "../helpers/sdk-error.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const T = 120_000; // real clients start Python programs on a loaded 2-core machine
const OTHER_ETAG = '"0123456789abcdef0123456789abcdef"';
const text = (b: Uint8Array | undefined) => (b === undefined ? "missing" : new TextDecoder().decode(b));


describe("S3 front", () => {
  let env: UploadEnv;
  let dir: TempDir;
  let sdk: S3Client;
  beforeAll(async () => {
    env = await startUploadEnv();
    dir = tempDir("yata-cond-writes-");
    sdk = new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, credentials: WRITER, maxAttempts: 1 });
  });
  afterAll(async () => {
    sdk?.destroy();
    dir?.remove();
    await env?.stop();
  });

  /** The object as a client reads it through the proxy (bucket `up` is cached). */
  const viaProxy = async (key: string) => text(new Uint8Array(await (await sdk.send(new GetObjectCommand({ Bucket: "up", Key: key }))).Body!.transformToByteArray()));

  clientTest("aws")(
    "aws-cli put-object with If-None-Match: * twice: 200, then PreconditionFailed (412) and the first content stays, cached and upstream; If-Match wrong → 412, right → 200 and the new content is served",
    async () => {
      // the plugin is imported from test/clients: no __pycache__ left there
      using aws = awsCli({ endpoint: env.endpoint, credentials: WRITER, env: { PYTHONDONTWRITEBYTECODE: "1" } });
      appendFileSync(aws.configPath, `[plugins]\ncli_legacy_plugin_path = ${join(import.meta.dir, "../clients")}\nconditional_writes = aws_conditional_writes\n`);
      const first = join(dir.path, "first.txt");
      const second = join(dir.path, "second.txt");
      writeFileSync(first, "first content");
      writeFileSync(second, "second content");
      const putObject = (body: string, o: Record<string, string>) => aws.s3api("put-object", "--bucket", "up", "--key", "aws/once.txt", "--body", body, { env: o });

      env.mark();
      const created = await putObject(first, { AWS_TEST_IF_NONE_MATCH: "*" });
      expect({ code: created.code, stderr: created.stderr }).toEqual({ code: 0, stderr: "" });
      expect(env.upstreamCalls().find((c) => c.method === "PUT")?.headers["if-none-match"]).toBe("*");
      const etag = JSON.parse(created.stdout).ETag as string;
      expect(await viaProxy("aws/once.txt")).toBe("first content"); // now cached

      const refused = await putObject(second, { AWS_TEST_IF_NONE_MATCH: "*" });
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain("An error occurred (PreconditionFailed) when calling the PutObject operation");
      expect(refused.stderr).toContain("At least one of the pre-conditions you specified did not hold");
      expect(text(await env.s3.read("up", "aws/once.txt"))).toBe("first content");
      expect(await viaProxy("aws/once.txt")).toBe("first content");

      const wrong = await putObject(second, { AWS_TEST_IF_MATCH: OTHER_ETAG });
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toContain("(PreconditionFailed)");
      expect(text(await env.s3.read("up", "aws/once.txt"))).toBe("first content");
      expect(await viaProxy("aws/once.txt")).toBe("first content");

      const right = await putObject(second, { AWS_TEST_IF_MATCH: etag });
      expect({ code: right.code, stderr: right.stderr }).toEqual({ code: 0, stderr: "" });
      expect(text(await env.s3.read("up", "aws/once.txt"))).toBe("second content");
      expect(await viaProxy("aws/once.txt")).toBe("second content");
    },
    T,
  );

  test("the refusal is S3's answer: 412 PreconditionFailed in S3's XML with the proxy's request id; 501 NotImplemented for If-None-Match with an ETag; If-Match on no object → 404 NoSuchKey", async () => {
    await env.s3.put("up", "raw/exists.txt", "old");
    const put = (key: string, headers: Record<string, string>) => signedFetch(env, { method: "PUT", path: `/up/${key}`, headers, body: "new" });

    const refused = await answerOf(await put("raw/exists.txt", { "if-none-match": "*" }));
    expect({ status: refused.status, code: refused.code, message: refused.message }).toEqual({ status: 412, code: "PreconditionFailed", message: "At least one of the pre-conditions you specified did not hold" });
    expect(refused.headers.get("content-type")).toBe("application/xml");
    expect(refused.body).toContain(`<RequestId>${refused.headers.get("x-amz-request-id")}</RequestId>`);
    expect(refused.body).not.toContain(env.s3.endpoint);
    // S3 names the condition that failed (the upstream's <Condition> is kept)
    expect(refused.body).toContain("<Condition>If-None-Match</Condition>");

    const wrong = await answerOf(await put("raw/exists.txt", { "if-match": OTHER_ETAG }));
    expect({ status: wrong.status, code: wrong.code }).toEqual({ status: 412, code: "PreconditionFailed" });
    expect(wrong.body).toContain("<Condition>If-Match</Condition>");
    const unsupported = await answerOf(await put("raw/exists.txt", { "if-none-match": OTHER_ETAG }));
    expect({ status: unsupported.status, code: unsupported.code }).toEqual({ status: 501, code: "NotImplemented" });
    expect(text(await env.s3.read("up", "raw/exists.txt"))).toBe("old");

    const missing = await answerOf(await put("raw/missing.txt", { "if-match": OTHER_ETAG }));
    expect({ status: missing.status, code: missing.code }).toEqual({ status: 404, code: "NoSuchKey" });
    expect(await env.s3.exists("up", "raw/missing.txt")).toBe(false);

    const created = await put("raw/new.txt", { "if-none-match": "*" });
    expect(created.status).toBe(200);
    expect(text(await env.s3.read("up", "raw/new.txt"))).toBe("new");
  });

  test("JS SDK: PutObject IfNoneMatch / IfMatch on a cached object: refusals keep serving the old bytes, the accepted write the new ones", async () => {
    const first = await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "sdk/cas.txt", Body: "v1", IfNoneMatch: "*" }));
    expect(await viaProxy("sdk/cas.txt")).toBe("v1");
    expect(await sdkErrorOf(sdk.send(new PutObjectCommand({ Bucket: "up", Key: "sdk/cas.txt", Body: "v2", IfNoneMatch: "*" })))).toEqual({ code: "PreconditionFailed", status: 412 });
    expect(await sdkErrorOf(sdk.send(new PutObjectCommand({ Bucket: "up", Key: "sdk/cas.txt", Body: "v2", IfMatch: OTHER_ETAG })))).toEqual({ code: "PreconditionFailed", status: 412 });
    expect(await viaProxy("sdk/cas.txt")).toBe("v1");
    await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "sdk/cas.txt", Body: "v2", IfMatch: first.ETag }));
    expect(await viaProxy("sdk/cas.txt")).toBe("v2");
    expect(text(await env.s3.read("up", "sdk/cas.txt"))).toBe("v2");
  });

  async function openUpload(key: string, body: string) {
    const id = (await sdk.send(new CreateMultipartUploadCommand({ Bucket: "up", Key: key }))).UploadId!;
    const { ETag } = await sdk.send(new UploadPartCommand({ Bucket: "up", Key: key, UploadId: id, PartNumber: 1, Body: body }));
    return { id, parts: [{ PartNumber: 1, ETag: ETag! }] };
  }

  clientTest("python3", "boto3")(
    "boto3 CompleteMultipartUpload with If-None-Match: * on an existing (cached) key → 412 PreconditionFailed, nothing replaced; the upload stays open and completes without the condition",
    async () => {
      await env.s3.put("up", "mp/exists.txt", "original");
      expect(await viaProxy("mp/exists.txt")).toBe("original");
      const u = await openUpload("mp/exists.txt", "multipart replacement");
      const params = { Bucket: "up", Key: "mp/exists.txt", UploadId: u.id, MultipartUpload: { Parts: u.parts } };
      const [refused] = await boto3Client({ endpoint: env.endpoint, credentials: WRITER }).run([{ op: "call", method: "complete_multipart_upload", params, headers: { "If-None-Match": "*" } }]);
      expect(refused!.ok ? "completed" : { code: refused!.error.code, status: refused!.error.status }).toEqual({ code: "PreconditionFailed", status: 412 });
      expect(text(await env.s3.read("up", "mp/exists.txt"))).toBe("original");
      expect(await viaProxy("mp/exists.txt")).toBe("original");
      expect(env.s3.multipartUploads().map((x) => x.uploadId)).toContain(u.id);

      const [done] = await boto3Client({ endpoint: env.endpoint, credentials: WRITER }).run([{ op: "call", method: "complete_multipart_upload", params }]);
      expect(done!.ok).toBe(true);
      expect(await viaProxy("mp/exists.txt")).toBe("multipart replacement");
    },
    T,
  );

  test("JS SDK CompleteMultipartUpload: IfNoneMatch '*' on an existing key → 412, IfMatch wrong → 412, IfMatch right → completed", async () => {
    const { ETag } = await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "mp/sdk.txt", Body: "single" }));
    const u = await openUpload("mp/sdk.txt", "from parts");
    const complete = (extra: { IfNoneMatch?: string; IfMatch?: string }) =>
      sdk.send(new CompleteMultipartUploadCommand({ Bucket: "up", Key: "mp/sdk.txt", UploadId: u.id, MultipartUpload: { Parts: u.parts }, ...extra }));
    expect(await sdkErrorOf(complete({ IfNoneMatch: "*" }))).toEqual({ code: "PreconditionFailed", status: 412 });
    expect(await sdkErrorOf(complete({ IfMatch: OTHER_ETAG }))).toEqual({ code: "PreconditionFailed", status: 412 });
    expect(await viaProxy("mp/sdk.txt")).toBe("single");
    await complete({ IfMatch: ETag! });
    expect(await viaProxy("mp/sdk.txt")).toBe("from parts");
  });

  test("a store that writes its ETags without quotes (`ETag: abc123`): PutObject, UploadPart, CompleteMultipartUpload and CopyObject answer them quoted, as S3 does; the quoted one is accepted back in If-Match", async () => {
    env.s3.faults.set("/up/bare/*", { kind: "unquotedEtag" });
    try {
      const quoted = /^"[0-9a-f]{32}(?:-\d+)?"$/;
      const put = await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "bare/put.txt", Body: "bare put" }));
      const again = await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "bare/put.txt", Body: "bare put 2", IfMatch: put.ETag }));
      const copy = await sdk.send(new CopyObjectCommand({ Bucket: "up", Key: "bare/copy.txt", CopySource: "up/bare/put.txt" }));
      const { UploadId } = await sdk.send(new CreateMultipartUploadCommand({ Bucket: "up", Key: "bare/mp.txt" }));
      const part = await sdk.send(new UploadPartCommand({ Bucket: "up", Key: "bare/mp.txt", UploadId, PartNumber: 1, Body: "one part" }));
      const done = await sdk.send(new CompleteMultipartUploadCommand({ Bucket: "up", Key: "bare/mp.txt", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
      const etags = [put.ETag, again.ETag, copy.CopyObjectResult?.ETag, part.ETag, done.ETag];
      expect(etags.map((e) => quoted.test(e ?? ""))).toEqual([true, true, true, true, true]);
      expect(copy.CopyObjectResult?.ETag).toBe(again.ETag);
      expect(env.s3.faults.hits("/up/bare/*")).toBeGreaterThanOrEqual(6);
    } finally {
      env.s3.faults.delete("/up/bare/*");
    }
  });

  test("a store that writes its listings' ETags without quotes (`<ETag>abc</ETag>`): ListObjects V1 and V2, ListObjectVersions and ListParts give them quoted, as S3 does (and as HEAD gives them)", async () => {
    const a = await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "barelist/a.txt", Body: "a" }));
    const b = await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "barelist/b.txt", Body: "bb" }));
    const { UploadId } = await sdk.send(new CreateMultipartUploadCommand({ Bucket: "up", Key: "barelist/mp.txt" }));
    const part = await sdk.send(new UploadPartCommand({ Bucket: "up", Key: "barelist/mp.txt", UploadId, PartNumber: 1, Body: "one part" }));
    env.s3.faults.set("/up", { kind: "unquotedEtag" });
    env.s3.faults.set("/up/barelist/*", { kind: "unquotedEtag" });
    try {
      const prefix = "barelist/";
      const v2 = await sdk.send(new ListObjectsV2Command({ Bucket: "up", Prefix: prefix }));
      const v1 = await sdk.send(new ListObjectsCommand({ Bucket: "up", Prefix: prefix }));
      const versions = await sdk.send(new ListObjectVersionsCommand({ Bucket: "up", Prefix: prefix }));
      const parts = await sdk.send(new ListPartsCommand({ Bucket: "up", Key: "barelist/mp.txt", UploadId }));
      expect({
        v2: v2.Contents?.map((c) => c.ETag),
        v1: v1.Contents?.map((c) => c.ETag),
        versions: versions.Versions?.map((v) => v.ETag),
        parts: parts.Parts?.map((p) => p.ETag),
      }).toEqual({ v2: [a.ETag, b.ETag], v1: [a.ETag, b.ETag], versions: [a.ETag, b.ETag], parts: [part.ETag] });
      expect(a.ETag).toMatch(/^"[0-9a-f]{32}"$/);
      expect(env.s3.faults.hits("/up")).toBe(3);
      expect(env.s3.faults.hits("/up/barelist/*")).toBe(1);
    } finally {
      env.s3.faults.delete("/up");
      env.s3.faults.delete("/up/barelist/*");
      await sdk.send(new CompleteMultipartUploadCommand({ Bucket: "up", Key: "barelist/mp.txt", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
    }
  });

  test("a listing whose first <ETag> is quoted and a later one bare (objects written before and after a store's change) gives every one quoted", async () => {
    // Only the first <ETag> was looked at: the later bare one reached clients bare.
    const entry = (key: string, etag: string) => `<Contents><Key>${key}</Key><LastModified>2026-12-07T00:00:00.000Z</LastModified><ETag>${etag}</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>`;
    const body =
      `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>up</Name><Prefix>mixed/</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>` +
      entry("mixed/a", "&quot;aaaa&quot;") + entry("mixed/b", "bbbb") + entry("mixed/c", '"cccc"') + `</ListBucketResult>`;
    env.s3.faults.set("/up", { kind: "reply", status: 200, body, times: 1 });
    try {
      const v2 = await sdk.send(new ListObjectsV2Command({ Bucket: "up", Prefix: "mixed/" }));
      expect(v2.Contents?.map((c) => `${c.Key} ${c.ETag}`)).toEqual(['mixed/a "aaaa"', 'mixed/b "bbbb"', 'mixed/c "cccc"']);
    } finally {
      env.s3.faults.delete("/up");
    }
  });

  test("CopyObject: CopySourceIfMatch wrong → 412 and the (cached) destination keeps its bytes; right → copied and served", async () => {
    const { ETag } = await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "copy/src.txt", Body: "source" }));
    await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "copy/dst.txt", Body: "destination" }));
    expect(await viaProxy("copy/dst.txt")).toBe("destination");
    const copy = (extra: Record<string, unknown>) => sdkErrorOf(sdk.send(new CopyObjectCommand({ Bucket: "up", Key: "copy/dst.txt", CopySource: "up/copy/src.txt", ...extra })));
    expect(await copy({ CopySourceIfMatch: OTHER_ETAG })).toEqual({ code: "PreconditionFailed", status: 412 });
    expect(await copy({ CopySourceIfNoneMatch: ETag })).toEqual({ code: "PreconditionFailed", status: 412 });
    expect(await copy({ CopySourceIfUnmodifiedSince: new Date(Date.now() - 3_600_000) })).toEqual({ code: "PreconditionFailed", status: 412 });
    expect(text(await env.s3.read("up", "copy/dst.txt"))).toBe("destination");
    expect(await viaProxy("copy/dst.txt")).toBe("destination");
    expect(await copy({ CopySourceIfMatch: ETag })).toEqual({ code: "no error", status: 0 });
    expect(await viaProxy("copy/dst.txt")).toBe("source");
  });

  test("CopyObject's own If-None-Match / If-Match (the destination's) reach S3: an existing destination is not overwritten", async () => {
    await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "copy/src2.txt", Body: "source 2" }));
    const { ETag } = await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "copy/dst2.txt", Body: "destination 2" }));
    expect(await viaProxy("copy/dst2.txt")).toBe("destination 2");
    const copy = (extra: Record<string, unknown>) => sdkErrorOf(sdk.send(new CopyObjectCommand({ Bucket: "up", Key: "copy/dst2.txt", CopySource: "up/copy/src2.txt", ...extra })));
    expect(await copy({ IfNoneMatch: "*" })).toEqual({ code: "PreconditionFailed", status: 412 });
    expect(await copy({ IfMatch: OTHER_ETAG })).toEqual({ code: "PreconditionFailed", status: 412 });
    expect(text(await env.s3.read("up", "copy/dst2.txt"))).toBe("destination 2");
    expect(await viaProxy("copy/dst2.txt")).toBe("destination 2");
    expect(await copy({ IfMatch: ETag })).toEqual({ code: "no error", status: 0 });
    expect(await viaProxy("copy/dst2.txt")).toBe("source 2");
  });
});

describe("plain front", () => {
  let env: WriteEnv;
  beforeAll(async () => {
    const breaker = "circuit_breaker: { failure_threshold: 2, success_threshold: 1, timeout_seconds: 60, half_open_max_requests: 1 }";
    const buckets = (ep: string) =>
      bucket("cached", "/cached", "rw", ep, "    access: read-write\n    auth: { enabled: true }\n    cache: { enabled: true, ttl_seconds: 600 }\n") +
      `  - name: guarded\n    path_prefix: /guarded\n    access: read-write\n    auth: { enabled: true }\n` +
      `    s3: { bucket: rw, endpoint: "${ep}", access_key: "${PLAIN_UPSTREAM.accessKeyId}", secret_key: "${PLAIN_UPSTREAM.secretAccessKey}", ${breaker} }\n`;
    env = await startWriteEnv({ buckets, extra: "cache: { enabled: true }\n" });
  });
  afterAll(async () => {
    await env?.stop();
  });

  const get = async (key: string) => {
    const r = await fetch(env.url(`/cached/${key}`), { headers: bearer() });
    return `${r.status} ${await r.text()}`;
  };
  const put = (key: string, body: string, headers: Record<string, string>) => fetch(env.url(`/cached/${key}`), { method: "PUT", body, headers: { ...bearer(), ...headers } });

  test("PUT with If-None-Match: * → 200, then 412 with the JSON error; the cached object keeps its bytes; If-Match wrong → 412, right → 200 and the new bytes are served", async () => {
    const created = await put("plain/once.txt", "first", { "if-none-match": "*" });
    expect(created.status).toBe(200);
    const { etag } = (await created.json()) as { etag: string };
    expect(await get("plain/once.txt")).toBe("200 first"); // cached now

    const refused = await put("plain/once.txt", "second", { "if-none-match": "*" });
    expect(refused.status).toBe(412);
    expect(refused.headers.get("content-type")).toContain("application/json");
    expect(await refused.json()).toMatchObject({ error: "PreconditionFailed" });
    expect(text(await env.s3.read("rw", "plain/once.txt"))).toBe("first");
    expect(await get("plain/once.txt")).toBe("200 first");

    const wrong = await put("plain/once.txt", "second", { "if-match": OTHER_ETAG });
    expect(wrong.status).toBe(412);
    expect(await wrong.json()).toMatchObject({ error: "PreconditionFailed" });
    expect(await get("plain/once.txt")).toBe("200 first");

    const right = await put("plain/once.txt", "second", { "if-match": etag });
    expect(right.status).toBe(200);
    expect(await get("plain/once.txt")).toBe("200 second");
    expect(text(await env.s3.read("rw", "plain/once.txt"))).toBe("second");
  });

  test("PUT with If-Match on no object → 404; If-None-Match with an ETag → 501 NotImplemented (the client's header, not a gateway failure)", async () => {
    const missing = await put("plain/missing.txt", "x", { "if-match": OTHER_ETAG });
    expect(missing.status).toBe(404);
    expect(await env.s3.exists("rw", "plain/missing.txt")).toBe(false);
    const unsupported = await put("plain/missing.txt", "x", { "if-none-match": OTHER_ETAG });
    expect(unsupported.status).toBe(501);
    expect(await unsupported.json()).toMatchObject({ error: "NotImplemented" });
    expect(await env.s3.exists("rw", "plain/missing.txt")).toBe(false);
  });

  test("S3's 501 NotImplemented answers the client's header, the upstream is healthy: repeated ones do not open the bucket's circuit breaker", async () => {
    for (let i = 0; i < 4; i++) {
      const r = await fetch(env.url("/guarded/plain/breaker.txt"), { method: "PUT", body: "x", headers: { ...bearer(), "if-none-match": OTHER_ETAG } });
      expect(r.status).toBe(501);
    }
    const ok = await fetch(env.url("/guarded/plain/breaker.txt"), { method: "PUT", body: "fine", headers: bearer() });
    expect(ok.status).toBe(200);
    expect(text(await env.s3.read("rw", "plain/breaker.txt"))).toBe("fine");
  });
});
