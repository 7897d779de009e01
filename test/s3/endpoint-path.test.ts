/**
 * An endpoint with a path (a store served under /s3, a gateway's prefix): its path goes on the
 * wire as the AWS SDK puts it, encoded once, before the bucket and the key.
 */
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { expect, test } from "bun:test";
import type { BucketConfig } from "../../src/config/schema.ts";
import { BucketUpstream } from "../../src/s3/upstream.ts";

/** The path the AWS SDK sends for a GetObject of `key` at `endpoint`, path-style. */
async function sdkPath(endpoint: string, bucket: string, key: string): Promise<string> {
  const c = new S3Client({ region: "us-east-1", endpoint, forcePathStyle: true, credentials: { accessKeyId: "a", secretAccessKey: "b" } });
  let path = "";
  c.middlewareStack.add(() => async (args: { request: unknown }) => {
    path = (args.request as { path: string }).path;
    throw new Error("recorded");
  }, { step: "finalizeRequest" });
  await c.send(new GetObjectCommand({ Bucket: bucket, Key: key })).catch(() => {});
  return path;
}

async function proxyPath(endpoint: string, bucket: string, key: string): Promise<string> {
  const urls: string[] = [];
  const fetchStub = (async (url: string) => {
    urls.push(url);
    return new Response("x", { status: 200, headers: { "content-length": "1" } });
  }) as unknown as typeof fetch;
  const cfg = { name: "b", path_prefix: "/b", s3: { bucket, region: "us-east-1", endpoint, access_key: "a", secret_key: "b", timeout: 5 } } as unknown as BucketConfig;
  const up = new BucketUpstream(cfg, { client: "fetch", fetch: fetchStub });
  const res = await up.fetchObject("GET", key, {}, new AbortController().signal, { upstreamMs: 0, attempts: 0 });
  await res.arrayBuffer();
  return new URL(urls[0]!).pathname;
}

test("an endpoint path with a space or a non-ASCII character is encoded once, as the AWS SDK sends it", async () => {
  for (const endpoint of ["http://127.0.0.1:9/my%20store/ストア/", "http://127.0.0.1:9/my store", "http://127.0.0.1:9/s3/", "http://127.0.0.1:9/s3", "http://127.0.0.1:9/a~b/"]) {
    for (const key of ["a b+c", "ü/x~y*z"]) {
      const sdk = await sdkPath(endpoint, "bk", key);
      expect({ endpoint, key, path: await proxyPath(endpoint, "bk", key) }).toEqual({ endpoint, key, path: sdk });
    }
  }
  expect(await proxyPath("http://127.0.0.1:9/my store/", "bk", "k")).toBe("/my%20store/bk/k");
});
