/**
 * S3's conditional deletes through the proxy, against the S3 fixture (which answers them as S3
 * does on a general purpose bucket: test/fixtures/s3/conditions.ts). DeleteObject with If-Match (an
 * ETag, or `*`) and DeleteObjects with an <ETag> per object: a refusal reaches the client as S3's
 * (412 PreconditionFailed in S3's XML, per key in DeleteObjects, on the S3 front; 412 with the JSON
 * error on the plain front), the object stays upstream and a cached bucket keeps serving it; an
 * accepted delete deletes and invalidates the cache. Conditions the proxy does not carry (S3's
 * directory-bucket x-amz-if-match-last-modified-time / -size, <LastModifiedTime> / <Size>, and
 * If-None-Match / If-Unmodified-Since) are refused with 501 NotImplemented, nothing sent upstream,
 * never dropped.
 *
 * Real client: boto3 (the runner's `headers` add If-Match before signing, for a botocore that
 * predates DeleteObject's IfMatch); the JS SDK sends its own IfMatch and ObjectIdentifier ETag.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { boto3Client } from "../clients/boto3.ts";
import { clientTest } from "../clients/run.ts";
import { bearer, bucket, startWriteEnv, type WriteEnv } from "./plain-write-env.ts";
import { answerOf, expectRefused, signedDeleteObjects, signedFetch, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";
import { sdkErrorOf } from "../helpers/sdk-error.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const T = 120_000; // real clients start Python programs on a loaded 2-core machine
const OTHER_ETAG = '"0123456789abcdef0123456789abcdef"';
const text = (b: Uint8Array | undefined) => (b === undefined ? "missing" : new TextDecoder().decode(b));

describe("S3 front", () => {
  let env: UploadEnv;
  let sdk: S3Client;
  beforeAll(async () => {
    env = await startUploadEnv();
    sdk = new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, credentials: WRITER, maxAttempts: 1 });
  });
  afterAll(async () => {
    sdk?.destroy();
    await env?.stop();
  });

  /** The object as a client reads it through the proxy (bucket `up` is cached): its text, or the SDK's error code. */
  const viaProxy = async (key: string) => {
    try {
      return text(new Uint8Array(await (await sdk.send(new GetObjectCommand({ Bucket: "up", Key: key }))).Body!.transformToByteArray()));
    } catch (e) {
      return (e as Error).name;
    }
  };
  const del = (key: string, headers: Record<string, string>) => signedFetch(env, { method: "DELETE", path: `/up/${key}`, headers });

  test("JS SDK DeleteObject: IfMatch wrong → 412 PreconditionFailed, the (cached) object stays; IfMatch right → deleted, the cache no longer serves it", async () => {
    const { ETag } = await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "sdk/cas.txt", Body: "v1" }));
    expect(await viaProxy("sdk/cas.txt")).toBe("v1"); // cached now

    env.mark();
    expect(await sdkErrorOf(sdk.send(new DeleteObjectCommand({ Bucket: "up", Key: "sdk/cas.txt", IfMatch: OTHER_ETAG })))).toEqual({ code: "PreconditionFailed", status: 412 });
    expect(env.upstreamCalls().find((c) => c.method === "DELETE")?.headers["if-match"]).toBe(OTHER_ETAG);
    expect(text(await env.s3.read("up", "sdk/cas.txt"))).toBe("v1");
    expect(await viaProxy("sdk/cas.txt")).toBe("v1");

    await sdk.send(new DeleteObjectCommand({ Bucket: "up", Key: "sdk/cas.txt", IfMatch: ETag }));
    expect(await env.s3.exists("up", "sdk/cas.txt")).toBe(false);
    expect(await viaProxy("sdk/cas.txt")).toBe("NoSuchKey");
  });

  test("the refusal is S3's answer: 412 PreconditionFailed in S3's XML naming If-Match; If-Match: * deletes an existing object; If-Match on no object → 404 NoSuchKey", async () => {
    await env.s3.put("up", "raw/k.txt", "kept");
    const refused = await answerOf(await del("raw/k.txt", { "if-match": '"nope"' }));
    expect({ status: refused.status, code: refused.code }).toEqual({ status: 412, code: "PreconditionFailed" });
    expect(refused.headers.get("content-type")).toBe("application/xml");
    expect(refused.body).toContain("<Condition>If-Match</Condition>");
    expect(refused.body).toContain(`<RequestId>${refused.headers.get("x-amz-request-id")}</RequestId>`);
    expect(text(await env.s3.read("up", "raw/k.txt"))).toBe("kept");

    expect((await del("raw/k.txt", { "if-match": "*" })).status).toBe(204);
    expect(await env.s3.exists("up", "raw/k.txt")).toBe(false);
    for (const v of ["*", OTHER_ETAG]) {
      const missing = await answerOf(await del("raw/k.txt", { "if-match": v }));
      expect({ status: missing.status, code: missing.code }).toEqual({ status: 404, code: "NoSuchKey" });
    }
    // without a condition a missing key is still S3's 204
    expect((await del("raw/k.txt", {})).status).toBe(204);
  });

  test("DeleteObject conditions the proxy does not carry → 501 NotImplemented naming the header, nothing sent upstream, the object stays", async () => {
    await env.s3.put("up", "raw/unkept.txt", "kept");
    for (const h of [
      { "x-amz-if-match-size": "4" },
      { "x-amz-if-match-last-modified-time": new Date().toUTCString() },
      { "if-none-match": "*" },
      { "if-unmodified-since": new Date(Date.now() - 3_600_000).toUTCString() },
    ] as Record<string, string>[]) {
      await expectRefused(env, del("raw/unkept.txt", h), 501, "NotImplemented");
      const again = await answerOf(await del("raw/unkept.txt", h));
      expect(again.body).toContain(`<Header>${Object.keys(h)[0]}</Header>`);
    }
    expect(text(await env.s3.read("up", "raw/unkept.txt"))).toBe("kept");
  });

  test("AbortMultipartUpload with S3's x-amz-if-match-initiated-time (directory buckets) → 501 NotImplemented naming it, nothing sent upstream, the upload stays open", async () => {
    const created = await answerOf(await signedFetch(env, { method: "POST", path: "/up/raw/mpu.bin", query: [["uploads", ""]] }));
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(created.body)![1]!;
    const h = { "x-amz-if-match-initiated-time": new Date(Date.now() - 86_400_000).toUTCString() };
    const abort = () => signedFetch(env, { method: "DELETE", path: "/up/raw/mpu.bin", query: [["uploadId", uploadId]], headers: h });
    await expectRefused(env, abort(), 501, "NotImplemented");
    expect((await answerOf(await abort())).body).toContain("<Header>x-amz-if-match-initiated-time</Header>");
    expect(env.s3.multipartUploads().map((u) => u.uploadId)).toContain(uploadId);
    // without the condition the abort is done
    expect((await signedFetch(env, { method: "DELETE", path: "/up/raw/mpu.bin", query: [["uploadId", uploadId]] })).status).toBe(204);
    expect(env.s3.multipartUploads().map((u) => u.uploadId)).not.toContain(uploadId);
  });

  test("JS SDK DeleteObjects: a mismatched <ETag> is that key's PreconditionFailed (it stays, cached and upstream), the matching, `*` and unconditional keys are deleted, a missing key with an ETag is NoSuchKey", async () => {
    const a = await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "multi/a.txt", Body: "a" }));
    for (const k of ["b", "c", "d"]) await sdk.send(new PutObjectCommand({ Bucket: "up", Key: `multi/${k}.txt`, Body: k }));
    for (const k of ["a", "b", "c", "d"]) expect(await viaProxy(`multi/${k}.txt`)).toBe(k); // all cached

    env.mark();
    const out = await sdk.send(
      new DeleteObjectsCommand({
        Bucket: "up",
        Delete: {
          Objects: [
            { Key: "multi/a.txt", ETag: a.ETag },
            { Key: "multi/b.txt", ETag: OTHER_ETAG },
            { Key: "multi/c.txt" },
            { Key: "multi/d.txt", ETag: "*" },
            { Key: "multi/none.txt", ETag: "*" },
          ],
        },
      }),
    );
    expect((out.Deleted ?? []).map((d) => d.Key).sort()).toEqual(["multi/a.txt", "multi/c.txt", "multi/d.txt"]);
    expect((out.Errors ?? []).map((e) => [e.Key, e.Code]).sort()).toEqual([
      ["multi/b.txt", "PreconditionFailed"],
      ["multi/none.txt", "NoSuchKey"],
    ]);
    // one DeleteObjects upstream, not resent
    expect(env.upstreamCalls().filter((c) => c.method === "POST").length).toBe(1);
    expect(text(await env.s3.read("up", "multi/b.txt"))).toBe("b");
    expect(await viaProxy("multi/b.txt")).toBe("b");
    for (const k of ["a", "c", "d"]) {
      expect(await env.s3.exists("up", `multi/${k}.txt`)).toBe(false);
      expect(await viaProxy(`multi/${k}.txt`)).toBe("NoSuchKey");
    }
  });

  test("DeleteObjects: an <ETag> is carried as XML text (escaped); Quiet lists only the refusal; <Size> / <LastModifiedTime> → 501 NotImplemented, nothing sent upstream", async () => {
    await env.s3.put("up", "multi/q1.txt", "q1");
    await env.s3.put("up", "multi/q2.txt", "q2");
    const xml = `<Delete><Quiet>true</Quiet><Object><Key>multi/q1.txt</Key><ETag>"x&amp;y&lt;/ETag&gt;"</ETag></Object><Object><Key>multi/q2.txt</Key><ETag>*</ETag></Object></Delete>`;
    const quiet = await signedDeleteObjects(env, "up", xml);
    const body = await quiet.text();
    expect(quiet.status).toBe(200);
    expect(body).toContain("<Error><Key>multi/q1.txt</Key><Code>PreconditionFailed</Code>");
    expect(body).not.toContain("<Deleted>");
    expect(text(await env.s3.read("up", "multi/q1.txt"))).toBe("q1");
    expect(await env.s3.exists("up", "multi/q2.txt")).toBe(false);

    for (const cond of ["<Size>2</Size>", "<LastModifiedTime>2024-01-02T03:04:05.000Z</LastModifiedTime>"]) {
      await expectRefused(env, signedDeleteObjects(env, "up", `<Delete><Object><Key>multi/q1.txt</Key>${cond}</Object></Delete>`), 501, "NotImplemented");
    }
    const twice = await answerOf(await signedDeleteObjects(env, "up", `<Delete><Object><Key>multi/q1.txt</Key><ETag>*</ETag><ETag>"a"</ETag></Object></Delete>`));
    expect({ status: twice.status, code: twice.code }).toEqual({ status: 400, code: "MalformedXML" });
    expect(text(await env.s3.read("up", "multi/q1.txt"))).toBe("q1");
  });

  test("DeleteObjects naming one key twice, with a wrong <ETag> and without one: S3 deletes it; the answer says so and the cache no longer serves it (both entries said PreconditionFailed and the cached copy stayed)", async () => {
    for (const entries of [
      `<Object><Key>dup/k.txt</Key><ETag>${OTHER_ETAG}</ETag></Object><Object><Key>dup/k.txt</Key></Object>`,
      `<Object><Key>dup/k.txt</Key></Object><Object><Key>dup/k.txt</Key><ETag>${OTHER_ETAG}</ETag></Object>`,
    ]) {
      await env.s3.put("up", "dup/k.txt", "dup");
      expect(await viaProxy("dup/k.txt")).toBe("dup"); // cached now
      const r = await signedDeleteObjects(env, "up", `<Delete>${entries}</Delete>`);
      const body = await r.text();
      expect(r.status).toBe(200);
      expect(await env.s3.exists("up", "dup/k.txt")).toBe(false);
      // the unconditional entry is the one deleted; the other keeps its own answer
      expect(body).toContain("<Deleted><Key>dup/k.txt</Key></Deleted>");
      expect(await viaProxy("dup/k.txt")).toBe("NoSuchKey");
    }
  });

  clientTest("python3", "boto3")(
    "boto3 delete_object with If-Match: a wrong ETag → PreconditionFailed (412) and the object stays; the right one deletes it",
    async () => {
      const { ETag } = await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "boto/k.txt", Body: "boto" }));
      const b = boto3Client({ endpoint: env.endpoint, credentials: WRITER });
      const [wrong] = await b.run([{ op: "call", method: "delete_object", params: { Bucket: "up", Key: "boto/k.txt" }, headers: { "If-Match": OTHER_ETAG } }]);
      expect(wrong!.ok ? "deleted" : { code: wrong!.error.code, status: wrong!.error.status }).toEqual({ code: "PreconditionFailed", status: 412 });
      expect(text(await env.s3.read("up", "boto/k.txt"))).toBe("boto");
      const [right] = await b.run([{ op: "call", method: "delete_object", params: { Bucket: "up", Key: "boto/k.txt" }, headers: { "If-Match": ETag! } }]);
      expect(right!.ok).toBe(true);
      expect(await env.s3.exists("up", "boto/k.txt")).toBe(false);
    },
    T,
  );
});

describe("plain front", () => {
  let env: WriteEnv;
  beforeAll(async () => {
    const buckets = (ep: string) => bucket("cached", "/cached", "rw", ep, "    access: read-write\n    auth: { enabled: true }\n    cache: { enabled: true, ttl_seconds: 600 }\n");
    env = await startWriteEnv({ buckets, extra: "cache: { enabled: true }\n" });
  });
  afterAll(async () => {
    await env?.stop();
  });

  const get = async (key: string) => {
    const r = await fetch(env.url(`/cached/${key}`), { headers: bearer() });
    return `${r.status} ${r.status === 200 ? await r.text() : (await r.arrayBuffer(), "")}`.trim();
  };
  const del = (key: string, headers: Record<string, string>) => fetch(env.url(`/cached/${key}`), { method: "DELETE", headers: { ...bearer(), ...headers } });

  test("DELETE with If-Match wrong → 412 with the JSON error, the (cached) object stays; right → 204, gone and no longer served", async () => {
    const { etag } = await env.s3.put("rw", "plain/cas.txt", "v1");
    expect(await get("plain/cas.txt")).toBe("200 v1"); // cached now

    const refused = await del("plain/cas.txt", { "if-match": '"nope"' });
    expect(refused.status).toBe(412);
    expect(refused.headers.get("content-type")).toContain("application/json");
    expect(await refused.json()).toMatchObject({ error: "PreconditionFailed" });
    expect(text(await env.s3.read("rw", "plain/cas.txt"))).toBe("v1");
    expect(await get("plain/cas.txt")).toBe("200 v1");

    const ok = await del("plain/cas.txt", { "if-match": etag });
    expect(ok.status).toBe(204);
    expect(await env.s3.exists("rw", "plain/cas.txt")).toBe(false);
    expect(await get("plain/cas.txt")).toBe("404");
  });

  test("DELETE with If-Match: * deletes an existing object; If-Match on no object → 404", async () => {
    await env.s3.put("rw", "plain/star.txt", "x");
    expect((await del("plain/star.txt", { "if-match": "*" })).status).toBe(204);
    expect(await env.s3.exists("rw", "plain/star.txt")).toBe(false);
    const missing = await del("plain/star.txt", { "if-match": "*" });
    expect(missing.status).toBe(404);
    await missing.arrayBuffer();
  });

  test("DELETE with If-None-Match, If-Unmodified-Since or S3's x-amz-if-match-size / -last-modified-time → 501 NotImplemented, the object stays", async () => {
    await env.s3.put("rw", "plain/unkept.txt", "kept");
    for (const h of [
      { "if-none-match": "*" },
      { "if-unmodified-since": new Date(Date.now() - 3_600_000).toUTCString() },
      { "x-amz-if-match-size": "4" },
      { "x-amz-if-match-last-modified-time": new Date().toUTCString() },
    ] as Record<string, string>[]) {
      const r = await del("plain/unkept.txt", h);
      expect(r.status).toBe(501);
      expect(await r.json()).toMatchObject({ error: "NotImplemented" });
    }
    expect(text(await env.s3.read("rw", "plain/unkept.txt"))).toBe("kept");
  });
});
