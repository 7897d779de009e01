/**
 * CompleteMultipartUpload's <Location> names the object where clients reach this listener: with
 * s3_api.public_url set (a load balancer terminating TLS in front of the proxy) its origin, as a
 * browser form upload's Location does, not the request's Host with the listener's own scheme.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { signedFetch, startUploadFixture, uploadYaml } from "./s3-front-upload-helpers.ts";
import { startFrontsOn, type S3FrontEnv } from "./s3-front-helpers.ts";
import type { S3Fixture } from "../fixtures/s3.ts";

setDefaultTimeout(30_000);

let s3: S3Fixture;
let env: S3FrontEnv;
beforeAll(async () => {
  s3 = await startUploadFixture();
  const yaml = uploadYaml(s3.endpoint).replace("\ns3_api:\n", '\ns3_api:\n  public_url: "https://s3.example.com"\n');
  expect(yaml).toContain('public_url: "https://s3.example.com"');
  env = await startFrontsOn(yaml, s3, false);
});
afterAll(async () => {
  await env.stop();
  await s3.stop();
});

const text = (xml: string, name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];

describe("CompleteMultipartUpload's Location", () => {
  test("is on s3_api.public_url when it is set", async () => {
    const path = "/up/loc/a b.bin";
    const created = await (await signedFetch(env, { method: "POST", path: "/up/loc/a%20b.bin", query: [["uploads", ""]] })).text();
    const uploadId = text(created, "UploadId")!;
    const part = await signedFetch(env, { method: "PUT", path: "/up/loc/a%20b.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], body: "abc" });
    await part.arrayBuffer();
    expect(part.status).toBe(200);
    const etag = part.headers.get("etag")!;
    const done = await signedFetch(env, {
      method: "POST",
      path: "/up/loc/a%20b.bin",
      query: [["uploadId", uploadId]],
      body: `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>${etag}</ETag></Part></CompleteMultipartUpload>`,
    });
    const xml = await done.text();
    expect(done.status).toBe(200);
    expect(text(xml, "Key")).toBe(path.slice("/up/".length));
    expect(text(xml, "Location")).toBe("https://s3.example.com/up/loc/a%20b.bin");
  });
});
