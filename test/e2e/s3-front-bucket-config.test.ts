/**
 * Bucket-level documents and sub-resources real clients probe on the S3 front (s3cmd info, aws
 * s3api get-bucket-*, boto3): what S3 answers, never a 501 where S3 has an answer.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { answerOf, signedFetch, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(60_000);

let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv();
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
