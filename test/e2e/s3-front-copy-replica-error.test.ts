/**
 * A streamed copy (source and destination on different endpoints: the proxy reads the source and
 * writes it) whose source bucket has replicas reads the source's primary only, as a server-side
 * copy does: a copy is a write, and a secondary's lagging object written to the destination stays
 * there (an UploadPartCopy per part could even take parts from different replicas' versions). It
 * failed over like a read. And no replica's upstream bucket name reaches the client in an error.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startFrontsOn } from "./s3-front-helpers.ts";
import { answerOf, signedFetch, UPSTREAM_WRITER, uploadYaml, type UploadEnv } from "./s3-front-upload-helpers.ts";

const KEY = { accessKeyId: "AKIDCOPYREPLICA0001", secretAccessKey: "copy-replica-secret-0123456789abcdef" };
let dest: S3Fixture;
let primary: S3Fixture;
let secondary: S3Fixture;
let env: UploadEnv;

beforeAll(async () => {
  dest = await startS3Fixture({ buckets: [{ name: "up" }], credentials: [{ ...UPSTREAM_WRITER, buckets: ["up"], write: true }] });
  primary = await startS3Fixture({ buckets: [{ name: "primary-src-7f3a" }], credentials: [{ ...KEY, buckets: ["primary-src-7f3a"] }] });
  secondary = await startS3Fixture({ buckets: [{ name: "secondary-src-9c1e" }], credentials: [{ ...KEY, buckets: ["secondary-src-9c1e"] }] });
  const replica = (name: string, bucket: string, s3: S3Fixture, priority: number) =>
    `        - { name: ${name}, bucket: ${bucket}, region: us-east-1, endpoint: "${s3.endpoint}", access_key: "${KEY.accessKeyId}", secret_key: "${KEY.secretAccessKey}", priority: ${priority} }\n`;
  env = await startFrontsOn(
    uploadYaml(dest.endpoint, {
      moreBuckets: () =>
        `  - name: src\n    path_prefix: /src\n    s3:\n      retry: { max_attempts: 1 }\n      replicas:\n` + replica("one", "primary-src-7f3a", primary, 1) + replica("two", "secondary-src-9c1e", secondary, 2),
    // (the writer may read the replicated bucket too)
    }).replace("buckets: { up: [read, list, write, delete], ro:", "buckets: { src: [read, list], up: [read, list, write, delete], ro:"),
    dest,
    true,
  );
  await primary.put("primary-src-7f3a", "k.txt", "from primary");
  await secondary.put("secondary-src-9c1e", "k.txt", "from secondary");
});

afterAll(async () => {
  await env?.[Symbol.asyncDispose]();
  await primary?.stop();
  await secondary?.stop();
});

test("CopyObject from a replicated bucket on another endpoint reads the primary only: its error is the answer (no replica's bucket name in it), the secondary is never asked, nothing is stored; once the primary answers, its object is copied", async () => {
  primary.faults.set("/primary-src-7f3a/k.txt", { kind: "error", status: 500, code: "InternalError", message: "primary-src-7f3a: we encountered an internal error.", method: "GET" });
  secondary.resetLog();
  const res = await signedFetch(env, { method: "PUT", path: "/up/copied.txt", headers: { "x-amz-copy-source": "/src/k.txt" } });
  const text = await res.clone().text();
  const a = await answerOf(res);
  expect({ status: a.status, code: a.code }).toEqual({ status: 500, code: "InternalError" });
  expect(text).not.toContain("primary-src-7f3a");
  expect(text).not.toContain("secondary-src-9c1e");
  expect(secondary.requests.filter((r) => !r.admin && r.pathname === "/secondary-src-9c1e/k.txt")).toEqual([]);
  expect(await dest.exists("up", "copied.txt")).toBe(false);

  primary.faults.clear();
  const ok = await signedFetch(env, { method: "PUT", path: "/up/copied.txt", headers: { "x-amz-copy-source": "/src/k.txt" } });
  expect(ok.status).toBe(200);
  await ok.arrayBuffer();
  expect(new TextDecoder().decode((await dest.read("up", "copied.txt"))!)).toBe("from primary");
});
