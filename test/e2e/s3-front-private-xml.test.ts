/**
 * The S3 front's XML answers to a signed request (a listing, an ACL, tags, ListBuckets) are the
 * caller's: they say Cache-Control: private, as GetObject on a restricted bucket does. They said
 * nothing, so a presigned listing URL was heuristically cacheable by a shared cache under its URL,
 * past its expiry, for anyone holding it.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { signedFetch, startUploadEnv, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

let env: UploadEnv;

beforeAll(async () => {
  env = await startUploadEnv();
  await env.s3.put("up", "self.txt", "bytes");
});

afterAll(async () => {
  await env?.[Symbol.asyncDispose]();
});

test("XML answers to a signed request (a listing, an ACL, tags, ListBuckets) say Cache-Control: private: a shared cache keeps none of them", async () => {
  for (const [path, query] of [["/up", [["list-type", "2"]]], ["/up", [["acl", ""]]], ["/", undefined], ["/up/self.txt", [["tagging", ""]]]] as const) {
    const res = await signedFetch(env, { method: "GET", path, query: query?.map(([k, v]) => [k, v] as [string, string]) });
    await res.arrayBuffer();
    expect([path, query?.[0]?.[0], res.status, res.headers.get("cache-control")]).toEqual([path, query?.[0]?.[0], 200, "private"]);
  }
});

test("ListMultipartUploads and ListParts say Cache-Control: private too (they said nothing: a presigned URL listing the uploads, their ids and parts was cacheable by a shared cache)", async () => {
  const created = await signedFetch(env, { method: "POST", path: "/up/mp.bin", query: [["uploads", ""]] });
  const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await created.text())?.[1];
  expect(uploadId).toBeDefined();
  try {
    for (const [path, query] of [["/up", [["uploads", ""]]], ["/up/mp.bin", [["uploadId", uploadId!]]]] as Array<[string, Array<[string, string]>]>) {
      const res = await signedFetch(env, { method: "GET", path, query });
      const body = await res.text();
      expect([path, query[0]![0], res.status, res.headers.get("cache-control"), body.includes(uploadId!)]).toEqual([path, query[0]![0], 200, "private", true]);
    }
  } finally {
    await (await signedFetch(env, { method: "DELETE", path: "/up/mp.bin", query: [["uploadId", uploadId!]] })).arrayBuffer();
  }
});
