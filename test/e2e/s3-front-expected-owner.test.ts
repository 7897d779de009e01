/**
 * x-amz-expected-bucket-owner (and a copy's x-amz-source-expected-bucket-owner) on the S3 front's
 * writes: S3 refuses a request whose bucket another account owns (403), the guard against writing
 * into a bucket that is not the one the client meant. The proxy dropped both, so that guard never
 * held through it. They now go upstream with the write, whose owner the upstream knows (the proxy
 * knows no account ids); a streamed copy's source owner goes with its read of the source.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { signedFetch, startUploadEnv, UPSTREAM_WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
let env: UploadEnv;
/** The upstream's second key, for `upalt`; the proxy identity that copies. */
const [ALT, COPIER] = [
  { accessKeyId: "AKIDUPSTREAMALT01", secretAccessKey: "upstream-alt-secret-0123456789abc" },
  { accessKeyId: "AKIDOWNERCOPIER01", secretAccessKey: "owner-copier-secret-0123456789ab" },
];

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "up" }], credentials: [{ ...UPSTREAM_WRITER, buckets: ["up"], write: true }, { ...ALT, buckets: ["up"], write: true }] });
  // (upalt: the fixture's bucket `up` through other keys: a copy between up and upalt is streamed)
  const admin = ALT;
  env = await startUploadEnv(
    {
      moreBuckets: () => `  - name: upalt\n    path_prefix: /upalt\n    access: read-write\n    s3: { bucket: up, endpoint: "${s3.endpoint}", access_key: "${admin.accessKeyId}", secret_key: "${admin.secretAccessKey}" }\n`,
      moreCredentials: `    - { access_key_id: "${COPIER.accessKeyId}", secret_access_key: "${COPIER.secretAccessKey}", identity: copier, buckets: { up: [read, write, delete], upalt: [read, write] } }\n`,
    },
    s3,
  );
});

afterAll(async () => {
  await env?.stop();
  await s3?.stop();
});

const OWNER = { "x-amz-expected-bucket-owner": "111122223333" };
const BOTH = { ...OWNER, "x-amz-source-expected-bucket-owner": "444455556666" };
/** Each upstream request's method, path and the owner headers it carried. */
const sent = () => env.upstreamCalls().map((c) => `${c.method} ${c.pathname} ${c.headers["x-amz-expected-bucket-owner"] ?? "-"} ${c.headers["x-amz-source-expected-bucket-owner"] ?? "-"}`);

test("PutObject, a multipart upload and DeleteObject carry x-amz-expected-bucket-owner upstream", async () => {
  env.mark();
  expect((await signedFetch(env, { method: "PUT", path: "/up/owner/a.txt", body: "a", headers: OWNER, creds: COPIER })).status).toBe(200);
  const created = await signedFetch(env, { method: "POST", path: "/up/owner/mp.bin", query: [["uploads", ""]], headers: OWNER, creds: COPIER });
  const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await created.text())![1]!;
  const part = await signedFetch(env, { method: "PUT", path: "/up/owner/mp.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], body: "part", headers: OWNER, creds: COPIER });
  expect(part.status).toBe(200);
  const xml = `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>${part.headers.get("etag")}</ETag></Part></CompleteMultipartUpload>`;
  const done = await signedFetch(env, { method: "POST", path: "/up/owner/mp.bin", query: [["uploadId", uploadId]], body: xml, headers: OWNER, creds: COPIER });
  expect(done.status).toBe(200);
  await done.text();
  expect((await signedFetch(env, { method: "DELETE", path: "/up/owner/a.txt", headers: OWNER, creds: COPIER })).status).toBe(204);
  expect(sent().filter((l) => !l.startsWith("GET "))).toEqual([
    "PUT /up/owner/a.txt 111122223333 -",
    "POST /up/owner/mp.bin 111122223333 -",
    "PUT /up/owner/mp.bin 111122223333 -",
    "POST /up/owner/mp.bin 111122223333 -",
    "DELETE /up/owner/a.txt 111122223333 -",
  ]);
});

test("CopyObject: server-side, both headers go with the copy; streamed, the source's with its read and the destination's with its write", async () => {
  await s3.put("up", "owner/src.txt", "source");
  env.mark();
  const server = await signedFetch(env, { method: "PUT", path: "/up/owner/copy1.txt", headers: { ...BOTH, "x-amz-copy-source": "/up/owner/src.txt" }, creds: COPIER });
  expect(server.status).toBe(200);
  await server.text();
  expect(sent()).toEqual(["PUT /up/owner/copy1.txt 111122223333 444455556666"]);
  env.mark();
  const streamed = await signedFetch(env, { method: "PUT", path: "/upalt/owner/copy2.txt", headers: { ...BOTH, "x-amz-copy-source": "/up/owner/src.txt" }, creds: COPIER });
  expect(streamed.status).toBe(200);
  await streamed.text();
  const calls = sent();
  expect(calls).toContain("GET /up/owner/src.txt 444455556666 -");
  expect(calls).toContain("PUT /up/owner/copy2.txt 111122223333 -");
});

test("AbortMultipartUpload, PutObjectTagging and DeleteObjectTagging carry x-amz-expected-bucket-owner upstream (they were sent without it)", async () => {
  await s3.put("up", "owner/tagged.txt", "t");
  const created = await signedFetch(env, { method: "POST", path: "/up/owner/aborted.bin", query: [["uploads", ""]], creds: COPIER });
  const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await created.text())![1]!;
  env.mark();
  expect((await signedFetch(env, { method: "DELETE", path: "/up/owner/aborted.bin", query: [["uploadId", uploadId]], headers: OWNER, creds: COPIER })).status).toBe(204);
  const tagging = `<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>`;
  expect((await signedFetch(env, { method: "PUT", path: "/up/owner/tagged.txt", query: [["tagging", ""]], body: tagging, headers: OWNER, creds: COPIER })).status).toBe(200);
  expect((await signedFetch(env, { method: "DELETE", path: "/up/owner/tagged.txt", query: [["tagging", ""]], headers: OWNER, creds: COPIER })).status).toBe(204);
  expect(sent()).toEqual(["DELETE /up/owner/aborted.bin 111122223333 -", "PUT /up/owner/tagged.txt 111122223333 -", "DELETE /up/owner/tagged.txt 111122223333 -"]);
});
