/**
 * A streamed copy (source and destination on different endpoints: the proxy reads the source and
 * writes it) whose source bucket has replicas: the source read fails over, so the error the client
 * gets may be a secondary's, and no replica's upstream bucket name may reach the client in it (as
 * on GetObject). Only the primary's was hidden: a secondary's message naming its own bucket was
 * relayed as it was.
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

test("CopyObject from a replicated bucket on another endpoint: a secondary's error is relayed without its upstream bucket name", async () => {
  // the primary fails (the read fails over), the secondary refuses with a message that names its bucket
  primary.faults.set("/primary-src-7f3a/k.txt", { kind: "error", status: 500, code: "InternalError", message: "We encountered an internal error.", method: "GET" });
  secondary.faults.set("/secondary-src-9c1e/k.txt", { kind: "error", status: 400, code: "InvalidRequest", message: "Bucket secondary-src-9c1e is being migrated", method: "GET" });
  const res = await signedFetch(env, { method: "PUT", path: "/up/copied.txt", headers: { "x-amz-copy-source": "/src/k.txt" } });
  const text = await res.clone().text();
  const a = await answerOf(res);
  expect({ status: a.status, code: a.code }).toEqual({ status: 400, code: "InvalidRequest" });
  // the secondary was asked (its refusal is what the client got)
  expect(secondary.requests.some((r) => !r.admin && r.pathname === "/secondary-src-9c1e/k.txt")).toBe(true);
  expect(text).not.toContain("secondary-src-9c1e");
  expect(text).not.toContain("primary-src-7f3a");
  expect(await dest.exists("up", "copied.txt")).toBe(false);
});
