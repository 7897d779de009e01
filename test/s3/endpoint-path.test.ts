/**
 * An endpoint with a path (a store served under /s3, a gateway's prefix): its path goes on the
 * wire as the AWS SDK puts it, encoded once, before the bucket and the key.
 */
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { expect, test, setDefaultTimeout } from "bun:test";
import type { BucketConfig } from "../../src/config/schema.ts";
import { parseConfig } from "../../src/config/load.ts";
import { storesOf } from "../../src/config/writes.ts";
import { BucketUpstream } from "../../src/s3/upstream.ts";

setDefaultTimeout(30_000);

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
  return new URL((await proxyRequest(endpoint, "us-east-1", bucket, key)).url).pathname;
}

/** The URL and authorization header of the proxy's GET of `key` (no endpoint: AWS S3 in `region`). */
async function proxyRequest(endpoint: string | undefined, region: string, bucket: string, key: string): Promise<{ url: string; authorization: string }> {
  const sent: Array<{ url: string; authorization: string }> = [];
  const fetchStub = (async (url: string, init: { headers: Record<string, string> }) => {
    sent.push({ url, authorization: init.headers.authorization! });
    return new Response("x", { status: 200, headers: { "content-length": "1" } });
  }) as unknown as typeof fetch;
  const cfg = { name: "b", path_prefix: "/b", s3: { bucket, region, endpoint, access_key: "a", secret_key: "b", timeout: 5 } } as unknown as BucketConfig;
  const up = new BucketUpstream(cfg, { client: "fetch", fetch: fetchStub });
  const res = await up.fetchObject("GET", key, {}, new AbortController().signal, { upstreamMs: 0, attempts: 0 });
  await res.arrayBuffer();
  return sent[0]!;
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

// Without an endpoint, a China region's bucket was asked at s3.cn-north-1.amazonaws.com, a host
// that does not exist: the China regions are the aws-cn partition, under amazonaws.com.cn.
test("AWS S3 without an endpoint: the region's own host, the China regions' under amazonaws.com.cn", async () => {
  const at = async (region: string) => {
    const { url, authorization } = await proxyRequest(undefined, region, "bk", "k");
    return { host: new URL(url).host, scope: /Credential=a\/\d{8}\/([^/]+)\//.exec(authorization)?.[1] };
  };
  expect(await at("cn-north-1")).toEqual({ host: "bk.s3.cn-north-1.amazonaws.com.cn", scope: "cn-north-1" });
  expect(await at("cn-northwest-1")).toEqual({ host: "bk.s3.cn-northwest-1.amazonaws.com.cn", scope: "cn-northwest-1" });
  expect(await at("eu-central-1")).toEqual({ host: "bk.s3.eu-central-1.amazonaws.com", scope: "eu-central-1" });
  expect(await at("us-gov-west-1")).toEqual({ host: "bk.s3.us-gov-west-1.amazonaws.com", scope: "us-gov-west-1" });
  // and such a bucket is the same store as one naming the China endpoint, not a global one's namesake
  const stores = (s3: string) => storesOf(parseConfig(`buckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bk, ${s3} } }\n`, { env: {} }).buckets[0]!);
  expect(stores("region: cn-north-1")).toEqual(stores(`region: cn-north-1, endpoint: "https://s3.cn-north-1.amazonaws.com.cn"`));
  expect(stores("region: cn-north-1")).not.toEqual(stores("region: us-east-1"));
});
