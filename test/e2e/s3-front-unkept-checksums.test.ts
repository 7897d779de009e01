/**
 * S3's newer checksum algorithms (x-amz-checksum-sha512, -md5, -xxhash64, -xxhash3, -xxhash128;
 * the AWS SDKs name them since 2025), which this proxy neither checks nor carries upstream: a body
 * that comes with one is refused before anything is sent (501 NotImplemented, naming the header),
 * never stored with the checksum dropped (a wrong value was answered 200 where S3 answers BadDigest).
 * The five it checks (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) still pass.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { answerOf, bytesOf, chunkedRequest, lines, rawRequest, signedFetch, startUploadEnv, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv();
});
afterAll(() => env.stop());

const WRONG: Record<string, string> = {
  "x-amz-checksum-sha512": Buffer.alloc(64, 1).toString("base64"),
  "x-amz-checksum-md5": Buffer.alloc(16, 1).toString("base64"),
  "x-amz-checksum-xxhash64": Buffer.alloc(8, 1).toString("base64"),
  "x-amz-checksum-xxhash3": Buffer.alloc(8, 1).toString("base64"),
  "x-amz-checksum-xxhash128": Buffer.alloc(16, 1).toString("base64"),
};

test("PutObject, UploadPart and CompleteMultipartUpload with a checksum header of an algorithm the proxy does not carry: 501 NotImplemented naming it, nothing upstream, no object", async () => {
  for (const [name, value] of Object.entries(WRONG)) {
    env.mark();
    const a = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/newer/put.bin", body: "hello", headers: { [name]: value } }));
    expect({ name, status: a.status, code: a.code, header: /<Header>([^<]*)</.exec(a.body)?.[1], upstream: env.upstreamCalls().length }).toEqual({ name, status: 501, code: "NotImplemented", header: name, upstream: 0 });
  }
  expect(await env.s3.exists("up", "newer/put.bin")).toBe(false);

  const created = await signedFetch(env, { method: "POST", path: "/up/newer/mp.bin", query: [["uploads", ""]] });
  const uploadId = /<UploadId>([^<]*)</.exec(await created.text())![1]!;
  env.mark();
  const part = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/newer/mp.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], body: "part", headers: { "x-amz-checksum-sha512": WRONG["x-amz-checksum-sha512"]! } }));
  expect({ status: part.status, code: part.code, upstream: env.upstreamCalls().length }).toEqual({ status: 501, code: "NotImplemented", upstream: 0 });
  const xml = `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"x"</ETag></Part></CompleteMultipartUpload>`;
  env.mark();
  const done = await answerOf(await signedFetch(env, { method: "POST", path: "/up/newer/mp.bin", query: [["uploadId", uploadId]], body: xml, headers: { "x-amz-checksum-xxhash64": WRONG["x-amz-checksum-xxhash64"]! } }));
  expect({ status: done.status, code: done.code, upstream: env.upstreamCalls().length }).toEqual({ status: 501, code: "NotImplemented", upstream: 0 });
});

test("CreateMultipartUpload announcing such an algorithm (x-amz-checksum-algorithm): 501 NotImplemented at once, nothing upstream; one the proxy checks is created", async () => {
  for (const algorithm of ["SHA512", "md5", "XXHASH64", "XXHASH3", "XXHASH128"]) {
    env.mark();
    const a = await answerOf(await signedFetch(env, { method: "POST", path: "/up/newer/announced.bin", query: [["uploads", ""]], headers: { "x-amz-checksum-algorithm": algorithm } }));
    expect({ algorithm, status: a.status, code: a.code, header: /<Header>([^<]*)</.exec(a.body)?.[1], upstream: env.upstreamCalls().length }).toEqual({ algorithm, status: 501, code: "NotImplemented", header: "x-amz-checksum-algorithm", upstream: 0 });
  }
  const ok = await signedFetch(env, { method: "POST", path: "/up/newer/announced.bin", query: [["uploads", ""]], headers: { "x-amz-checksum-algorithm": "CRC32" } });
  expect(ok.status).toBe(200);
  expect(await ok.text()).toContain("<UploadId>");
});

test("an aws-chunked body whose trailer is such a checksum: 501 NotImplemented before the body is read, nothing upstream", async () => {
  const payload = bytesOf(20_000, 3);
  const req = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: `127.0.0.1:${env.port}`, path: "/up/newer/trailer.bin", payload, chunkSize: 8192, trailer: ["x-amz-checksum-sha512", WRONG["x-amz-checksum-sha512"]!] });
  env.mark();
  const r = await rawRequest(env.port, lines("PUT /up/newer/trailer.bin HTTP/1.1", req.headers), [req.body]);
  expect({ status: r.status, code: /<Code>([^<]*)</.exec(r.body)?.[1], upstream: env.upstreamCalls().length }).toEqual({ status: 501, code: "NotImplemented", upstream: 0 });
  expect(await env.s3.exists("up", "newer/trailer.bin")).toBe(false);
});

test("the checksums the proxy checks still pass: a right x-amz-checksum-sha256 stores the object, a wrong one is BadDigest", async () => {
  const sha256 = (s: string) => new Bun.CryptoHasher("sha256").update(s).digest("base64");
  expect((await signedFetch(env, { method: "PUT", path: "/up/newer/ok.bin", body: "hello", headers: { "x-amz-checksum-sha256": sha256("hello") } })).status).toBe(200);
  expect(new TextDecoder().decode(await env.s3.read("up", "newer/ok.bin"))).toBe("hello");
  const bad = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/newer/bad.bin", body: "hello", headers: { "x-amz-checksum-sha256": sha256("other") } }));
  expect({ status: bad.status, code: bad.code }).toEqual({ status: 400, code: "BadDigest" });
});
