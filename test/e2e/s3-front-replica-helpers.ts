/**
 * Both fronts over a writable bucket `up` (its own fixture) and a bucket `src` with two replicas,
 * each a fixture of its own ("one", the primary, and "two"), which the writer may read and list.
 */
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startFrontsOn } from "./s3-front-helpers.ts";
import { UPSTREAM_WRITER, uploadYaml, type UploadEnv } from "./s3-front-upload-helpers.ts";

export interface ReplicatedEnv extends AsyncDisposable {
  env: UploadEnv;
  dest: S3Fixture;
  primary: S3Fixture;
  secondary: S3Fixture;
  /** The config the proxy runs (for a reload of a variant of it). */
  yaml: string;
}

export async function startReplicatedSource(o: { key: { accessKeyId: string; secretAccessKey: string }; primaryBucket: string; secondaryBucket: string; bucketExtra?: string }): Promise<ReplicatedEnv> {
  const { key } = o;
  const dest = await startS3Fixture({ buckets: [{ name: "up" }], credentials: [{ ...UPSTREAM_WRITER, buckets: ["up"], write: true }] });
  const primary = await startS3Fixture({ buckets: [{ name: o.primaryBucket }], credentials: [{ ...key, buckets: [o.primaryBucket] }] });
  const secondary = await startS3Fixture({ buckets: [{ name: o.secondaryBucket }], credentials: [{ ...key, buckets: [o.secondaryBucket] }] });
  const replica = (name: string, bucket: string, s3: S3Fixture, priority: number) =>
    `        - { name: ${name}, bucket: ${bucket}, region: us-east-1, endpoint: "${s3.endpoint}", access_key: "${key.accessKeyId}", secret_key: "${key.secretAccessKey}", priority: ${priority} }\n`;
  const yaml =
    uploadYaml(dest.endpoint, {
      moreBuckets: () =>
        `  - name: src\n    path_prefix: /src\n${o.bucketExtra ?? ""}    s3:\n      retry: { max_attempts: 1 }\n      replicas:\n` +
        replica("one", o.primaryBucket, primary, 1) +
        replica("two", o.secondaryBucket, secondary, 2),
      // (the writer may read and list the replicated bucket too)
    }).replace("buckets: { up: [read, list, write, delete], ro:", "buckets: { src: [read, list], up: [read, list, write, delete], ro:");
  const env = await startFrontsOn(yaml, dest, true);
  return {
    env,
    dest,
    primary,
    secondary,
    yaml,
    async [Symbol.asyncDispose]() {
      await env[Symbol.asyncDispose]();
      await primary.stop();
      await secondary.stop();
    },
  };
}
