/**
 * DeleteObjects whose integrity check is an aws-chunked checksum trailer (S3: "The Content-MD5 or
 * x-amz-sdk-checksum-algorithm header is required for all Multi-Object Delete requests"; the value
 * then comes in the trailer). It was refused as missing Content-MD5 / x-amz-checksum-*; it is now
 * taken, the trailer checked on the body (a wrong one: BadDigest, nothing deleted), and an
 * x-amz-trailer header on a body that has no trailer still counts for nothing.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { crc32 } from "node:zlib";
import { buildAwsChunkedBody } from "../../src/s3/aws-chunked.ts";
import { amzDate, canonicalHeaders, canonicalRequest, credentialScope, deriveSigningKey, signature, stringToSign } from "../../src/s3/sigv4.ts";
import { answerOf, lines, rawRequest, signedDeleteObjects, signedFetch, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv();
});
afterAll(() => env.stop());

const crc32Of = (b: Uint8Array) => {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(b) >>> 0);
  return out.toString("base64");
};

/** POST /up?delete with the XML as an aws-chunked body (STREAMING-UNSIGNED-PAYLOAD-TRAILER) and its CRC32 trailer, as the SDKs frame a body. */
function deleteWithTrailer(xml: string, trailerValue?: string) {
  const payload = new TextEncoder().encode(xml);
  const mode = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
  const date = amzDate(new Date());
  const scope = credentialScope(date.slice(0, 8), "us-east-1", "s3");
  const body = buildAwsChunkedBody(payload, { chunkSize: 8192, trailers: [["x-amz-checksum-crc32", trailerValue ?? crc32Of(payload)]] }).body;
  const headers: Record<string, string> = {
    "content-encoding": "aws-chunked",
    "content-length": String(body.byteLength),
    host: `127.0.0.1:${env.port}`,
    "x-amz-content-sha256": mode,
    "x-amz-date": date,
    "x-amz-decoded-content-length": String(payload.byteLength),
    "x-amz-sdk-checksum-algorithm": "CRC32",
    "x-amz-trailer": "x-amz-checksum-crc32",
  };
  const c = canonicalHeaders(headers);
  const key = deriveSigningKey(WRITER.secretAccessKey, date.slice(0, 8), "us-east-1", "s3");
  const sig = signature(key, stringToSign(date, scope, canonicalRequest("POST", "/up", "delete=", c.canonical, c.signed, mode)));
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${WRITER.accessKeyId}/${scope}, SignedHeaders=${c.signed}, Signature=${sig}`;
  return rawRequest(env.port, lines("POST /up?delete= HTTP/1.1", headers), [body]);
}

const xmlFor = (key: string) => `<Delete><Object><Key>${key}</Key></Object></Delete>`;

test("a CRC32 trailer is the integrity check: the keys are deleted", async () => {
  await env.s3.put("up", "trailer/a.txt", "a");
  const r = await deleteWithTrailer(xmlFor("trailer/a.txt"));
  expect({ status: r.status, deleted: /<Deleted><Key>trailer\/a\.txt<\/Key>/.test(r.body) }).toEqual({ status: 200, deleted: true });
  expect(await env.s3.exists("up", "trailer/a.txt")).toBe(false);
});

test("a trailer that is not the body's: 400 BadDigest, nothing reaches the upstream, the key stays", async () => {
  await env.s3.put("up", "trailer/b.txt", "b");
  env.mark();
  const r = await deleteWithTrailer(xmlFor("trailer/b.txt"), crc32Of(new TextEncoder().encode("other")));
  expect({ status: r.status, code: /<Code>([^<]*)</.exec(r.body)?.[1], upstream: env.upstreamCalls().length }).toEqual({ status: 400, code: "BadDigest", upstream: 0 });
  expect(await env.s3.exists("up", "trailer/b.txt")).toBe(true);
});

test("x-amz-trailer on a body without a trailer (UNSIGNED-PAYLOAD) is no integrity check: 400 InvalidRequest, nothing upstream", async () => {
  await env.s3.put("up", "trailer/c.txt", "c");
  env.mark();
  const a = await answerOf(await signedFetch(env, { method: "POST", path: "/up", query: [["delete", ""]], body: xmlFor("trailer/c.txt"), headers: { "x-amz-trailer": "x-amz-checksum-crc32" } }));
  expect({ status: a.status, code: a.code, upstream: env.upstreamCalls().length }).toEqual({ status: 400, code: "InvalidRequest", upstream: 0 });
  expect(await env.s3.exists("up", "trailer/c.txt")).toBe(true);
});

test("an S3-signed POST /?delete to the service (no bucket) is S3's 405 MethodNotAllowed (SERVICE), not STS's ValidationError; nothing upstream", async () => {
  await env.s3.put("up", "trailer/d.txt", "d");
  env.mark();
  const a = await answerOf(await signedDeleteObjects(env, "", xmlFor("trailer/d.txt")));
  expect({ status: a.status, code: a.code, type: /<ResourceType>([^<]*)</.exec(a.body)?.[1], sts: a.body.includes("ErrorResponse"), upstream: env.upstreamCalls().length }).toEqual({
    status: 405, code: "MethodNotAllowed", type: "SERVICE", sts: false, upstream: 0,
  });
  expect(await env.s3.exists("up", "trailer/d.txt")).toBe(true);
  // with no query at all, signed for s3 (the credential scope says so): S3's 405 too, not STS's
  // ValidationError "must be form-encoded"; an unsigned POST of the service stays STS's
  const bare = await answerOf(await signedFetch(env, { method: "POST", path: "/", body: xmlFor("trailer/d.txt"), headers: { "content-type": "application/xml" } }));
  expect({ status: bare.status, code: bare.code, sts: bare.body.includes("ErrorResponse") }).toEqual({ status: 405, code: "MethodNotAllowed", sts: false });
  const sts = await answerOf(await fetch(env.endpoint + "/", { method: "POST", headers: { "content-type": "application/xml" }, body: xmlFor("trailer/d.txt") }));
  expect({ status: sts.status, code: sts.code, sts: sts.body.includes("ErrorResponse") }).toEqual({ status: 400, code: "ValidationError", sts: true });
  expect(await env.s3.exists("up", "trailer/d.txt")).toBe(true);
});
