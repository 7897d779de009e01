/**
 * An upstream that answers a write 200 without the ETag S3 always gives: UploadPart is S3's 500
 * InternalError (which the SDKs retry), not a 200 without an ETag (a multipart client then had no
 * ETag to list in its Complete); CompleteMultipartUpload, whose object exists once it answered (a
 * retried Complete is NoSuchUpload), gets the object's ETag from a HEAD of it. A PutObject's (and a
 * PostObject's own PutObject's) is relayed as it came: the object is stored, and a WebDAV-style
 * store (a 201/204 is a success) gives no ETag.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { presignPost } from "../../src/fronts/presign.ts";
import { answerOf, bytesOf, signedFetch, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(60_000);

let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv();
});
afterAll(async () => {
  await env.stop();
});

test("PutObject answered 200 without an ETag: the 200 relayed (the object is stored), no ETag made up", async () => {
  env.s3.faults.set("/up/noetag/put.bin", { kind: "reply", status: 200, body: "", method: "PUT" });
  try {
    const res = await signedFetch(env, { method: "PUT", path: "/up/noetag/put.bin", body: bytesOf(100, 3) });
    await res.text();
    expect([res.status, res.headers.get("etag")]).toEqual([200, null]);
  } finally {
    env.s3.faults.clear();
  }
});

test("UploadPart answered 200 without an ETag: 500 InternalError", async () => {
  const created = await signedFetch(env, { method: "POST", path: "/up/noetag/part.bin", query: [["uploads", ""]] });
  const uploadId = /<UploadId>([^<]+)</.exec(await created.text())![1]!;
  env.s3.faults.set("/up/noetag/part.bin", { kind: "reply", status: 200, body: "", method: "PUT" });
  try {
    const a = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/noetag/part.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], body: bytesOf(100, 4) }));
    expect([a.status, a.code]).toEqual([500, "InternalError"]);
  } finally {
    env.s3.faults.clear();
  }
});

test("CompleteMultipartUpload answered without an ETag: the object's ETag, from a HEAD of it", async () => {
  const { etag } = await env.s3.put("up", "noetag/done.bin", bytesOf(100, 5));
  expect(etag).not.toBe("");
  const result = '<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>up</Bucket><Key>noetag/done.bin</Key></CompleteMultipartUploadResult>';
  env.s3.faults.set("/up/noetag/done.bin", { kind: "reply", status: 200, body: result, method: "POST" });
  try {
    const body = '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"0123456789abcdef0123456789abcdef"</ETag></Part></CompleteMultipartUpload>';
    const res = await signedFetch(env, { method: "POST", path: "/up/noetag/done.bin", query: [["uploadId", "some-upload"]], body, payloadHash: new Bun.CryptoHasher("sha256").update(body).digest("hex") });
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(/<ETag>([^<]*)<\/ETag>/.exec(text)?.[1]?.replaceAll("&quot;", '"')).toBe(etag);
  } finally {
    env.s3.faults.clear();
  }
});

test("PostObject whose PutObject is answered 200 without an ETag: its success relayed", async () => {
  const now = Math.floor(Date.now() / 1000) * 1000;
  const p = presignPost({ origin: env.endpoint, bucket: "up", key: "noetag/form.bin", region: "us-east-1", accessKeyId: WRITER.accessKeyId, secretAccessKey: WRITER.secretAccessKey, now, expiresAt: now + 300_000, maxSize: 1000 });
  const form = new FormData();
  for (const [k, v] of Object.entries(p.fields)) form.append(k, v);
  form.append("file", new Blob([bytesOf(100, 6)]), "form.bin");
  env.s3.faults.set("/up/noetag/form.bin", { kind: "reply", status: 200, body: "", method: "PUT" });
  try {
    const res = await fetch(`${env.endpoint}/up`, { method: "POST", body: form });
    await res.text();
    expect(res.status).toBe(204);
  } finally {
    env.s3.faults.clear();
  }
});
