/**
 * GetBucketEncryption relayed from a replicated bucket: while the primary answers 5xx the rule
 * comes from the next replica, as a read's answer does (it was the primary's error); an upstream's
 * "not configured" (404 ServerSideEncryptionConfigurationNotFoundError) is S3's answer with the
 * client's BucketName (it had none); a 400 the upstream gives to the proxy's own request is no
 * client's error: S3's InternalError; a 503 is S3's ServiceUnavailable. No upstream bucket name
 * reaches the client.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { startReplicatedSource, type ReplicatedEnv } from "./s3-front-replica-helpers.ts";
import { answerOf, signedFetch } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(60_000);

const KEY = { accessKeyId: "AKIDENCREPLICA0001", secretAccessKey: "enc-replica-secret-0123456789abcdef" };
const PRIMARY = "primary-enc-7a1f";
const SECONDARY = "secondary-enc-3c9d";
let w: ReplicatedEnv;

beforeAll(async () => {
  w = await startReplicatedSource({ key: KEY, primaryBucket: PRIMARY, secondaryBucket: SECONDARY });
});
afterAll(async () => {
  await w?.[Symbol.asyncDispose]();
});

const encryption = async () => {
  const res = await signedFetch(w.env, { method: "GET", path: "/src", query: [["encryption", ""]] });
  const text = await res.clone().text();
  return { ...(await answerOf(res)), text };
};
const faultBoth = (s3: ReplicatedEnv["primary"], bucket: string, fault: Parameters<ReplicatedEnv["primary"]["faults"]["set"]>[1]) => {
  for (const path of [`/${bucket}`, `/${bucket}/`]) s3.faults.set(path, fault);
};

test("an upstream's 404 ServerSideEncryptionConfigurationNotFoundError: S3's answer naming the client's bucket", async () => {
  faultBoth(w.primary, PRIMARY, { kind: "error", status: 404, code: "ServerSideEncryptionConfigurationNotFoundError", method: "GET" });
  try {
    const a = await encryption();
    expect([a.status, a.code]).toEqual([404, "ServerSideEncryptionConfigurationNotFoundError"]);
    expect(a.text).toContain("<BucketName>src</BucketName>");
    expect(a.text).not.toContain(PRIMARY);
  } finally {
    w.primary.faults.clear();
  }
});

test("an upstream's other 404 sent gzipped: its code relayed (the body, decoded once, was decoded again and lost: NoSuchKey)", async () => {
  const xml = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>${PRIMARY}</BucketName></Error>`;
  faultBoth(w.primary, PRIMARY, { kind: "reply", status: 404, body: Bun.gzipSync(new TextEncoder().encode(xml)), headers: { "content-encoding": "gzip" }, method: "GET" });
  const a = await encryption().finally(() => w.primary.faults.clear());
  expect([a.status, a.code, a.text.includes(PRIMARY)]).toEqual([404, "NoSuchBucket", false]);
});

test("an upstream's 400 (to the proxy's own request) is S3's InternalError; its 503 S3's ServiceUnavailable; no upstream bucket named", async () => {
  faultBoth(w.primary, PRIMARY, { kind: "error", status: 400, code: "InvalidArgument", message: `bad ${PRIMARY}`, method: "GET" });
  try {
    const a = await encryption();
    expect([a.status, a.code]).toEqual([500, "InternalError"]);
    expect(a.text).not.toContain(PRIMARY);
  } finally {
    w.primary.faults.clear();
  }
  faultBoth(w.primary, PRIMARY, { kind: "error", status: 503, code: "ServiceUnavailable", method: "GET" });
  faultBoth(w.secondary, SECONDARY, { kind: "error", status: 503, code: "ServiceUnavailable", method: "GET" });
  try {
    const a = await encryption();
    expect([a.status, a.code]).toEqual([503, "ServiceUnavailable"]);
    expect(a.text).not.toContain(PRIMARY);
    expect(a.text).not.toContain(SECONDARY);
  } finally {
    w.primary.faults.clear();
    w.secondary.faults.clear();
  }
});

test("the primary answers 501 NotImplemented (a store without the call): the answer without it, as a single store's, the secondary not asked (it was taken for the primary's failure: the secondary's 503 reached the client)", async () => {
  faultBoth(w.primary, PRIMARY, { kind: "error", status: 501, code: "NotImplemented", method: "GET" });
  faultBoth(w.secondary, SECONDARY, { kind: "error", status: 503, code: "ServiceUnavailable", method: "GET" });
  const asked = w.secondary.requests.filter((r) => !r.admin && "encryption" in r.query).length;
  try {
    const a = await encryption();
    expect([a.status, a.code]).toEqual([404, "ServerSideEncryptionConfigurationNotFoundError"]);
    expect(a.text).toContain("<BucketName>src</BucketName>");
    expect(w.secondary.requests.filter((r) => !r.admin && "encryption" in r.query).length).toBe(asked);
  } finally {
    w.primary.faults.clear();
    w.secondary.faults.clear();
  }
});

test("the primary answers 500 (or is down): the rule from the secondary (last: the primary stays demoted until its next probe)", async () => {
  faultBoth(w.primary, PRIMARY, { kind: "error500" });
  try {
    const a = await encryption();
    expect(a.status).toBe(200);
    expect(a.text).toContain("<SSEAlgorithm>AES256</SSEAlgorithm>");
    expect(w.secondary.requests.some((r) => !r.admin && "encryption" in r.query)).toBe(true);
  } finally {
    w.primary.faults.clear();
  }
});
