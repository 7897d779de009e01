/**
 * Upload metrics end to end (the upload plan's "metrics updated on uploads"): the S3 fixture
 * upstream, both fronts in the test process, real writes that succeed and fail, then the
 * Prometheus text. `yatagarasu_http_requests_total` counts a PUT by method only: an operator could
 * not tell an UploadPart from a CopyObject, nor how many bytes came in, nor why uploads fail.
 *
 * - yatagarasu_write_requests_total{bucket,operation,status}: every write, delete and multipart
 *   call, by S3 operation (the plain front's PUT / DELETE as PutObject / DeleteObject), refused or not;
 * - yatagarasu_write_errors_total{bucket,operation,code}: the failed ones by error code;
 * - yatagarasu_http_request_bytes_total{bucket}: the payload bytes taken in (as the access log's bytes_in).
 * Reads are not counted as writes.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { bytesOf, hs256, READER, sha256, signedFetch, startUploadEnv, type UploadEnv } from "./s3-front-upload-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let env: UploadEnv;
let text = "";
let completeBytes = 0;

function sample(series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

beforeAll(async () => {
  env = await startUploadEnv();
  const token = hs256({ sub: "w", team: "a", role: "writer", exp: Math.floor(Date.now() / 1000) + 600 });
  const expect2 = async (p: Promise<Response>, status: number) => {
    const r = await p;
    await r.arrayBuffer();
    expect(r.status).toBe(status);
  };
  // S3 front: a PutObject of 2000 bytes, one whose payload hash is wrong (XAmzContentSHA256Mismatch),
  // one by an identity without write (AccessDenied), a multipart upload (Create, a part of
  // 300,000 bytes, ListParts and ListMultipartUploads, Complete), a DeleteObject, and a GetObject
  // (the reads and listings are not writes).
  await expect2(signedFetch(env, { method: "PUT", path: "/up/m/a.bin", body: bytesOf(2000, 1) }), 200);
  const body = bytesOf(3000, 2);
  await expect2(signedFetch(env, { method: "PUT", path: "/up/m/bad.bin", body, payloadHash: sha256(bytesOf(3000, 3)) }), 400);
  await expect2(signedFetch(env, { method: "PUT", path: "/up/m/denied.bin", body: bytesOf(10, 4), creds: READER }), 403);
  const created = await signedFetch(env, { method: "POST", path: "/up/m/mp.bin", query: [["uploads", ""]] });
  expect(created.status).toBe(200);
  const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await created.text())![1]!;
  const part = await signedFetch(env, { method: "PUT", path: "/up/m/mp.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], body: bytesOf(300_000, 5) });
  expect(part.status).toBe(200);
  // ListParts and ListMultipartUploads: listings (GETs), not writes, allowed or refused
  await expect2(signedFetch(env, { method: "GET", path: "/up/m/mp.bin", query: [["uploadId", uploadId]] }), 200);
  await expect2(signedFetch(env, { method: "GET", path: "/up", query: [["uploads", ""]] }), 200);
  await expect2(signedFetch(env, { method: "GET", path: "/up/m/mp.bin", query: [["uploadId", uploadId]], creds: READER }), 403);
  const xml = `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>${part.headers.get("etag")}</ETag></Part></CompleteMultipartUpload>`;
  completeBytes = Buffer.byteLength(xml);
  await expect2(signedFetch(env, { method: "POST", path: "/up/m/mp.bin", query: [["uploadId", uploadId]], body: xml }), 200);
  await expect2(signedFetch(env, { method: "DELETE", path: "/up/m/a.bin" }), 204);
  await expect2(signedFetch(env, { method: "GET", path: "/up/m/mp.bin" }), 200);
  // Plain front: a PUT of 100,000 bytes, a PUT to a read-only bucket (405), a DELETE.
  const auth = { authorization: `Bearer ${token}` };
  await expect2(fetch(env.mainUrl("/teamw/m/plain.bin"), { method: "PUT", body: bytesOf(100_000, 6), headers: auth }), 200);
  await expect2(fetch(env.mainUrl("/ro/m/plain.bin"), { method: "PUT", body: "x", headers: auth }), 405);
  await expect2(fetch(env.mainUrl("/teamw/m/plain.bin"), { method: "DELETE", headers: auth }), 204);
  text = env.app.metrics.render();
});
afterAll(async () => {
  await env?.stop();
});

test("writes are counted by bucket, S3 operation and status, refused ones included; reads are not", () => {
  expect(sample('yatagarasu_write_requests_total{bucket="up",operation="PutObject",status="200"}')).toBe(1);
  expect(sample('yatagarasu_write_requests_total{bucket="up",operation="PutObject",status="400"}')).toBe(1);
  expect(sample('yatagarasu_write_requests_total{bucket="up",operation="PutObject",status="403"}')).toBe(1);
  expect(sample('yatagarasu_write_requests_total{bucket="up",operation="CreateMultipartUpload",status="200"}')).toBe(1);
  expect(sample('yatagarasu_write_requests_total{bucket="up",operation="UploadPart",status="200"}')).toBe(1);
  expect(sample('yatagarasu_write_requests_total{bucket="up",operation="CompleteMultipartUpload",status="200"}')).toBe(1);
  expect(sample('yatagarasu_write_requests_total{bucket="up",operation="DeleteObject",status="204"}')).toBe(1);
  expect(text).not.toContain('operation="GetObject"');
  // (listings of a bucket's uploads and of an upload's parts are reads, refused ones too)
  expect(text).not.toContain('operation="ListParts"');
  expect(text).not.toContain('operation="ListMultipartUploads"');
  // the plain front's PUT and DELETE
  expect(sample('yatagarasu_write_requests_total{bucket="teamw",operation="PutObject",status="200"}')).toBe(1);
  expect(sample('yatagarasu_write_requests_total{bucket="teamw",operation="DeleteObject",status="204"}')).toBe(1);
  expect(sample('yatagarasu_write_requests_total{bucket="ro",operation="PutObject",status="405"}')).toBe(1);
});

test("failed writes are counted by their error code", () => {
  expect(sample('yatagarasu_write_errors_total{bucket="up",operation="PutObject",code="XAmzContentSHA256Mismatch"}')).toBe(1);
  expect(sample('yatagarasu_write_errors_total{bucket="up",operation="PutObject",code="AccessDenied"}')).toBe(1);
  expect(sample('yatagarasu_write_errors_total{bucket="ro",operation="PutObject",code="MethodNotAllowed"}')).toBe(1);
  const errors = text.split("\n").filter((l) => l.startsWith("yatagarasu_write_errors_total{"));
  expect(errors.length).toBe(3);
});

test("request body bytes taken in are counted per bucket (the payloads that went upstream)", () => {
  // S3 front: 2000 + 300,000 (the part) + the Complete document; plain front: 100,000.
  expect(sample('yatagarasu_http_request_bytes_total{bucket="up"}')).toBe(2000 + 300_000 + completeBytes);
  expect(sample('yatagarasu_http_request_bytes_total{bucket="teamw"}')).toBe(100_000);
  expect(sample('yatagarasu_http_request_bytes_total{bucket="ro"}')).toBe(0);
});
