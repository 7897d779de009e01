/**
 * A client's headers that pass the proxy's max_header_size (64 KiB) but not the upstream's own head
 * limit (the fixture is Bun.serve: 16 KiB), which answers a bodiless 431. That is the client's
 * request being too large, as S3 says it (400 RequestHeaderSectionTooLarge; the plain front's 431),
 * not the upstream failing: it was 500 InternalError on the S3 front's reads (which SDKs retry) and
 * 502 on the plain front. Node engine: its listener takes the configured 64 KiB in the test process.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { S3Signer, sha256Hex } from "../../src/s3/sigv4.ts";
import { APP, startS3FrontEnv, type S3FrontEnv } from "./s3-front-helpers.ts";

setDefaultTimeout(30_000);

let env: S3FrontEnv;
beforeAll(async () => {
  env = await startS3FrontEnv({ engine: "node" });
  await env.s3.put("data", "hello.txt", "hello");
});
afterAll(() => env?.stop());

const longTag = `"${"x".repeat(20_000)}"`;

async function signed(method: string, path: string, headers: Record<string, string>, body = "") {
  const host = `127.0.0.1:${env.port}`;
  const sr = new S3Signer(APP, "us-east-1").signRequest({ method, host, path, headers, payloadHash: sha256Hex(body) });
  const res = await fetch(`${env.endpoint}${sr.path}`, { method, headers: { ...headers, ...sr.headers }, body: method === "PUT" ? body : undefined });
  return { status: res.status, body: await res.text() };
}

test("S3 front: GetObject and HeadObject whose If-Match the upstream refuses as too large: 400 RequestHeaderSectionTooLarge", async () => {
  const get = await signed("GET", "/data/hello.txt", { "if-match": longTag });
  expect(get.status).toBe(400);
  expect(get.body).toContain("<Code>RequestHeaderSectionTooLarge</Code>");
  const head = await signed("HEAD", "/data/hello.txt", { "if-match": longTag });
  expect(head.status).toBe(400);
});

test("plain front: the same GET answers 431 HeadersTooLarge", async () => {
  const res = await fetch(env.mainUrl("/open/hello.txt"), { headers: { "if-match": longTag } });
  expect(res.status).toBe(431);
  expect(((await res.json()) as { error: string }).error).toBe("HeadersTooLarge");
});
