/**
 * GetBucketEncryption, answered from config: since January 2023 every AWS S3 bucket encrypts new
 * objects with SSE-S3 and S3 answers that rule (AES256) where it answered
 * ServerSideEncryptionConfigurationNotFoundError before; the proxy answered "not configured" for
 * every bucket, an answer AWS S3 no longer gives. A store that is not AWS S3 stays "not configured"
 * (its encryption at rest is unknown to the proxy).
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { parseConfig } from "../../../src/config/load.ts";
import { defaultEncryption } from "../../../src/fronts/s3/bucket-config.ts";

setDefaultTimeout(30_000);

const bucket = (s3: string) => parseConfig(`buckets:\n  - { name: b, path_prefix: /b, s3: { ${s3.startsWith("replicas") ? "" : "bucket: bk, "}${s3} } }\n`, { env: {} }).buckets[0]!;

test("an AWS S3 bucket (no endpoint, or an amazonaws.com one, replicas too): S3's AES256 rule; any other store: not configured", () => {
  const aes = defaultEncryption(bucket("region: eu-west-1"));
  expect(aes).toContain("<ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>false</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>");
  expect(defaultEncryption(bucket('endpoint: "https://s3.us-east-2.amazonaws.com", region: us-east-2'))).toBe(aes);
  expect(defaultEncryption(bucket('endpoint: "http://127.0.0.1:9000"'))).toBeUndefined();
  expect(defaultEncryption(bucket('endpoint: "https://minio.example.com"'))).toBeUndefined();
  // (a host that merely begins with "aws" is not AWS S3)
  expect(defaultEncryption(bucket('endpoint: "http://aws-minio.internal:9000"'))).toBeUndefined();
  expect(defaultEncryption(bucket('endpoint: "https://awsstore.example.com"'))).toBeUndefined();
  expect(defaultEncryption(bucket('replicas: [{ name: a, bucket: bk, region: us-east-1 }, { name: r, bucket: bk2, region: eu-west-1 }]'))).toBe(aes);
  // (a replica elsewhere: what a read finds there is not promised encrypted)
  expect(defaultEncryption(bucket('replicas: [{ name: a, bucket: bk, region: us-east-1 }, { name: r, bucket: bk, endpoint: "http://10.0.0.1:9000", region: us-east-1 }]'))).toBeUndefined();
});
