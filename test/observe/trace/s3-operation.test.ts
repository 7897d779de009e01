/**
 * The S3 front's server spans name the S3 operation (yatagarasu.s3.operation), as the access log
 * and the audit trail do: a multipart upload's three requests all have the action s3:PutObject,
 * and a trace told them apart from a PutObject by nothing but the method.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, PutObjectCommand, S3Client, UploadPartCommand } from "@aws-sdk/client-s3";
import { bucket, startWriteEnv, WRITER, type WriteEnv } from "../../e2e/plain-write-env.ts";
import { startReceiver, type OtlpReceiver } from "./receiver.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SERVER = 2;
const CLIENT = { accessKeyId: "AKIDTRACEOPERATION01", secretAccessKey: "trace-operation-secret-0123456789abcdef" };

let otlp: OtlpReceiver;
let env: WriteEnv;

beforeAll(async () => {
  otlp = startReceiver();
  env = await startWriteEnv({
    s3Api: true,
    sts: false,
    s3Extra: `  credentials:\n    - { access_key_id: "${CLIENT.accessKeyId}", secret_access_key: "${CLIENT.secretAccessKey}", identity: tracer, buckets: { web: [read, write] } }\n`,
    extra: `tracing: { enabled: true, otlp_endpoint: "${otlp.url}", sample_ratio: 1.0, export_interval_ms: 20 }\n`,
    buckets: (ep) => bucket("web", "/web", "rw", ep, "    access: read-write\n"),
  });
});

afterAll(async () => {
  await env?.stop();
  otlp?.close();
});

test("a PutObject and a multipart upload's CreateMultipartUpload, UploadPart and CompleteMultipartUpload each name their operation", async () => {
  const sdk = new S3Client({ endpoint: env.s3Endpoint, region: "us-east-1", forcePathStyle: true, credentials: CLIENT, maxAttempts: 1 });
  try {
    await sdk.send(new PutObjectCommand({ Bucket: "web", Key: "op/single.txt", Body: "one" }));
    const { UploadId } = await sdk.send(new CreateMultipartUploadCommand({ Bucket: "web", Key: "op/multi.bin" }));
    const part = await sdk.send(new UploadPartCommand({ Bucket: "web", Key: "op/multi.bin", UploadId, PartNumber: 1, Body: "part one" }));
    await sdk.send(new CompleteMultipartUploadCommand({ Bucket: "web", Key: "op/multi.bin", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
  } finally {
    sdk.destroy();
  }
  const servers = (key: string) => otlp.spans.filter((s) => s.kind === SERVER && s.attrs["aws.s3.key"] === key);
  await otlp.waitFor((all) => servers("op/multi.bin").length === 3 && servers("op/single.txt").length === 1);
  const single = servers("op/single.txt")[0];
  expect(single.attrs).toMatchObject({ "yatagarasu.s3.action": "s3:PutObject", "yatagarasu.s3.operation": "PutObject", "http.response.status_code": 200 });
  const multi = servers("op/multi.bin").sort((a, b) => (a.start < b.start ? -1 : 1));
  expect(multi.map((s) => [s.name, s.attrs["yatagarasu.s3.operation"], s.attrs["http.response.status_code"]])).toEqual([
    ["POST s3:PutObject", "CreateMultipartUpload", 200],
    ["PUT s3:PutObject", "UploadPart", 200],
    ["POST s3:PutObject", "CompleteMultipartUpload", 200],
  ]);
});
