/**
 * A streamed copy (source and destination on different endpoints: the proxy reads the source and
 * writes it) whose source bucket has replicas reads the source's primary only, as a server-side
 * copy does: a copy is a write, and a secondary's lagging object written to the destination stays
 * there (an UploadPartCopy per part could even take parts from different replicas' versions). It
 * failed over like a read. And no replica's upstream bucket name reaches the client in an error.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import type { S3Fixture } from "../fixtures/s3.ts";
import { startReplicatedSource, type ReplicatedEnv } from "./s3-front-replica-helpers.ts";
import { answerOf, signedFetch, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

const KEY = { accessKeyId: "AKIDCOPYREPLICA0001", secretAccessKey: "copy-replica-secret-0123456789abcdef" };
let dest: S3Fixture;
let primary: S3Fixture;
let secondary: S3Fixture;
let env: UploadEnv;
let world: ReplicatedEnv;

beforeAll(async () => {
  world = await startReplicatedSource({ key: KEY, primaryBucket: "primary-src-7f3a", secondaryBucket: "secondary-src-9c1e" });
  ({ env, dest, primary, secondary } = world);
  await primary.put("primary-src-7f3a", "k.txt", "from primary");
  await secondary.put("secondary-src-9c1e", "k.txt", "from secondary");
});

afterAll(async () => {
  await world?.[Symbol.asyncDispose]();
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
