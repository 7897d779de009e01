/**
 * A server-side copy between two proxy buckets on one upstream account (the upstream copies from
 * the source's upstream bucket itself): an error the upstream words with the *source's* upstream
 * bucket name must not reach the client, as the destination's never does. Only the destination's
 * name was masked in the copy's relayed message.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startFrontsOn } from "./s3-front-helpers.ts";
import { answerOf, signedFetch, UPSTREAM_WRITER, uploadYaml, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

const SOURCE_UPSTREAM = "hidden-src-4d2b";
let s3: S3Fixture;
let env: UploadEnv;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "up" }, { name: SOURCE_UPSTREAM }], credentials: [{ ...UPSTREAM_WRITER, buckets: ["up", SOURCE_UPSTREAM], write: true }] });
  const creds = `access_key: "${UPSTREAM_WRITER.accessKeyId}", secret_key: "${UPSTREAM_WRITER.secretAccessKey}"`;
  env = await startFrontsOn(
    uploadYaml(s3.endpoint, { moreBuckets: (ep) => `  - name: src\n    path_prefix: /src\n    s3: { bucket: ${SOURCE_UPSTREAM}, endpoint: "${ep}", ${creds} }\n` })
      .replace("buckets: { up: [read, list, write, delete], ro:", "buckets: { src: [read, list], up: [read, list, write, delete], ro:"),
    s3,
    true,
  );
  await s3.put(SOURCE_UPSTREAM, "k.txt", "source bytes");
});

afterAll(async () => {
  await env?.[Symbol.asyncDispose]();
  await s3?.stop();
});

for (const [label, path] of [["CopyObject", "/up/copied.txt"], ["UploadPartCopy", "/up/part.bin"]] as const) {
  test(`${label} server-side: an upstream message naming the source's upstream bucket is not relayed`, async () => {
    s3.faults.set(`/up/${path.slice(4)}`, { kind: "error", status: 400, code: "InvalidRequest", message: `The source bucket ${SOURCE_UPSTREAM} cannot be read now.`, method: "PUT" });
    try {
      let uploadId = "";
      if (label === "UploadPartCopy") {
        const created = await signedFetch(env, { method: "POST", path, query: [["uploads", ""]] });
        const body = await created.text();
        uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(body)![1]!;
      }
      const res = await signedFetch(env, { method: "PUT", path, query: uploadId === "" ? undefined : [["partNumber", "1"], ["uploadId", uploadId]], headers: { "x-amz-copy-source": "/src/k.txt" } });
      const text = await res.clone().text();
      const a = await answerOf(res);
      expect({ status: a.status, code: a.code }).toEqual({ status: 400, code: "InvalidRequest" });
      expect(text).not.toContain(SOURCE_UPSTREAM);
    } finally {
      s3.faults.clear();
    }
  });
}

test("a copy of an object onto itself that changes only the storage class or website redirect (which the proxy drops) is refused saying so, not with the upstream's misleading 'without changing ... storage class'", async () => {
  await s3.put("up", "self.txt", "self bytes");
  // (x-amz-website-redirect-location is not stored either: alone, or with a class, it changes nothing upstream)
  for (const headers of [{ "x-amz-storage-class": "STANDARD_IA" }, { "x-amz-server-side-encryption": "AES256" }, { "x-amz-website-redirect-location": "/elsewhere.html" }, { "x-amz-storage-class": "STANDARD_IA", "x-amz-website-redirect-location": "/elsewhere.html" }] as Record<string, string>[]) {
    const a = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/self.txt", headers: { "x-amz-copy-source": "/up/self.txt", ...headers } }));
    expect({ status: a.status, code: a.code }).toEqual({ status: 400, code: "InvalidRequest" });
    expect(a.message).toContain("does not pass x-amz-storage-class or x-amz-server-side-encryption");
  }
  // With new metadata it is a real change: copied (the class is still dropped, as documented).
  const ok = await signedFetch(env, { method: "PUT", path: "/up/self.txt", headers: { "x-amz-copy-source": "/up/self.txt", "x-amz-storage-class": "STANDARD_IA", "x-amz-metadata-directive": "REPLACE", "x-amz-meta-a": "b" } });
  expect(ok.status).toBe(200);
  await ok.arrayBuffer();
  expect(new TextDecoder().decode((await s3.read("up", "self.txt"))!)).toBe("self bytes");
});

// A raw "+" in x-amz-copy-source named a key with a plus; S3 reads it as a space (the path's
// reading too), as the SDKs' users learnt (aws-sdk-js#1821: an unencoded "+0000.jpg" source is
// NoSuchKey on S3); a plus is sent as %2B, as every SDK sends it.
test("x-amz-copy-source: a raw '+' is a space, '%2B' a plus, as S3 reads them", async () => {
  await s3.put("up", "plus/a b.txt", "spaced");
  await s3.put("up", "plus/a+b.txt", "plussed");
  for (const [source, want] of [["/up/plus/a+b.txt", "spaced"], ["/up/plus/a%2Bb.txt", "plussed"], ["up/plus/a%20b.txt", "spaced"]] as const) {
    const res = await signedFetch(env, { method: "PUT", path: "/up/plus/dst.txt", headers: { "x-amz-copy-source": source } });
    expect(`${source} ${res.status}`).toBe(`${source} 200`);
    await res.arrayBuffer();
    expect(new TextDecoder().decode((await s3.read("up", "plus/dst.txt"))!)).toBe(want);
  }
});
