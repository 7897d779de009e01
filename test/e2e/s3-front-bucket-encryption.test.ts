/**
 * GetBucketEncryption, relayed: the upstream bucket's rule (re-signed with the bucket's
 * credentials), so a bucket set to SSE-KMS says so (it was answered AES256 from config for every
 * AWS S3 bucket). The rule's KMSMasterKeyID (an ARN naming the upstream's account) is not relayed,
 * as object answers drop x-amz-server-side-encryption-aws-kms-key-id. Credentials that may not read
 * it (AccessDenied), a store that does not implement it (NotImplemented) or answers something else:
 * the answer from config, as before.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { startS3Fixture } from "../fixtures/s3.ts";
import { answerOf, signedFetch, startUploadEnv, UPSTREAM_WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(60_000);

const PROBER = { accessKeyId: "AKIDENCRYPTPROBER", secretAccessKey: "encryption-prober-secret-01234567" };
const KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555";

let env: UploadEnv;
beforeAll(async () => {
  const s3 = await startS3Fixture({
    buckets: [{ name: "up" }, { name: "kms", encryption: { algorithm: "aws:kms", kmsMasterKeyId: KEY_ARN, bucketKeyEnabled: true } }, { name: "locked", encryption: "AccessDenied" }],
    credentials: [{ ...UPSTREAM_WRITER, buckets: ["up", "kms", "locked"], write: true }],
  });
  const creds = `access_key: "${UPSTREAM_WRITER.accessKeyId}", secret_key: "${UPSTREAM_WRITER.secretAccessKey}"`;
  env = await startUploadEnv(
    {
      moreBuckets: (endpoint) =>
        ["kms", "locked"].map((b) => `  - name: ${b}\n    path_prefix: /${b}\n    s3: { bucket: ${b}, endpoint: "${endpoint}", ${creds} }\n`).join(""),
      moreCredentials: `    - { access_key_id: "${PROBER.accessKeyId}", secret_access_key: "${PROBER.secretAccessKey}", identity: prober, buckets: { up: [read], kms: [read], locked: [read] } }\n`,
    },
    s3,
  );
});
afterAll(async () => {
  await env.stop();
  await env.s3.stop();
});

const encryption = async (bucket: string) => answerOf(await signedFetch(env, { method: "GET", path: `/${bucket}`, query: [["encryption", ""]], creds: PROBER }));

test("an SSE-KMS bucket: its rule relayed (aws:kms, BucketKeyEnabled), the key's ARN not; asked upstream as GET ?encryption", async () => {
  env.mark();
  const a = await encryption("kms");
  expect(a.status).toBe(200);
  expect(a.body).toContain("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled></Rule>");
  expect(a.body).not.toContain("123456789012");
  expect(env.upstreamCalls().map((c) => `${c.method} ${c.pathname}`)).toEqual([expect.stringMatching(/^GET \/kms\/?$/)]);
  // and S3's default rule of a bucket without one of its own
  const d = await encryption("up");
  expect([d.status, /<SSEAlgorithm>([^<]*)</.exec(d.body)?.[1]]).toEqual([200, "AES256"]);
});

test("credentials that may not read it (AccessDenied), a store without it (NotImplemented, or another document): the answer from config (here, not AWS S3: not configured)", async () => {
  const locked = await encryption("locked");
  expect([locked.status, locked.code]).toEqual([404, "ServerSideEncryptionConfigurationNotFoundError"]);
  for (const path of ["/up", "/up/"]) env.s3.faults.set(path, { kind: "error", status: 501, code: "NotImplemented", method: "GET" });
  const none = await encryption("up");
  expect([none.status, none.code]).toEqual([404, "ServerSideEncryptionConfigurationNotFoundError"]);
  for (const path of ["/up", "/up/"]) env.s3.faults.set(path, { kind: "reply", status: 200, body: '<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>up</Name></ListBucketResult>', method: "GET" });
  const other = await encryption("up");
  expect([other.status, other.code]).toEqual([404, "ServerSideEncryptionConfigurationNotFoundError"]);
  for (const path of ["/up", "/up/"]) env.s3.faults.delete(path);
});
