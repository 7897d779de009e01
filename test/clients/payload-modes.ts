/**
 * What each real client sends when it uploads: run `bun test/clients/payload-modes.ts` and it
 * prints, per client and request, the payload mode (x-amz-content-sha256), Content-Encoding,
 * the length headers, the trailer and checksum headers, and the fixture's answer.
 *
 * A diagnostic, not a test: the answer depends on the installed client versions, which is
 * exactly what it is for (the upload work must accept what these versions send). Uploads
 * whose mode the fixture cannot decode yet fail; the request heads are logged all the same.
 */
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { writeFileSync } from "node:fs";
import { Readable } from "node:stream";
import { startS3Fixture, type RequestLogEntry } from "../fixtures/s3.ts";
import { awsCli } from "./aws.ts";
import { boto3Client } from "./boto3.ts";
import { pseudoRandom } from "./fixture-objects.ts";
import { rcloneClient } from "./rclone.ts";
import { tempDir } from "./run.ts";
import { s3cmdClient } from "./s3cmd.ts";

const BUCKET = "up";
const SMALL = 1024;
const LARGE = 20 * 1024 * 1024; // over aws-cli's and boto3's 8 MiB and s3cmd's 15 MiB multipart thresholds

await using s3 = await startS3Fixture({ buckets: [{ name: BUCKET }], credentials: [] });
using dir = tempDir("yata-modes-");
const small = dir.file("small.bin");
const large = dir.file("large.bin");
writeFileSync(small, pseudoRandom(SMALL, 1));
writeFileSync(large, pseudoRandom(LARGE, 2));
const target = { endpoint: s3.endpoint, credentials: s3.adminCredentials };

const HEADERS = [
  "x-amz-content-sha256",
  "content-encoding",
  "content-length",
  "transfer-encoding",
  "x-amz-decoded-content-length",
  "x-amz-trailer",
  "x-amz-sdk-checksum-algorithm",
  "content-md5",
  "expect",
];

function row(client: string, e: RequestLogEntry): string {
  const op = Object.keys(e.query).filter((q) => !q.startsWith("X-Amz-")).join("&") || "-";
  const checksums = Object.keys(e.headers).filter((h) => h.startsWith("x-amz-checksum-"));
  const cells = HEADERS.map((h) => {
    const v = e.headers[h];
    if (v === undefined) return "";
    return h === "content-md5" ? "yes" : v;
  });
  return `| ${client} | ${e.method} ${op} | ${cells.join(" | ")} | ${checksums.join(",")} | ${e.status}${e.errorCode ? ` ${e.errorCode}` : ""} |`;
}

async function observe(client: string, run: () => Promise<unknown>): Promise<void> {
  s3.resetLog();
  const outcome = await run().then(
    (r) => (r && typeof r === "object" && "code" in r ? `exit ${(r as { code: number }).code}` : "ok"),
    (e: unknown) => `threw ${String(e).slice(0, 120)}`,
  );
  const writes = s3.requests.filter((e) => !e.admin || e.method === "PUT" || e.method === "POST");
  for (const e of writes.filter((e) => e.method === "PUT" || e.method === "POST")) console.log(row(client, e));
  console.log(`| ${client} | (outcome: ${outcome.replace(/\n/g, " ")}) |`);
}

console.log(`| client | request | ${HEADERS.join(" | ")} | x-amz-checksum-* | status |`);
console.log(`|---|---|${HEADERS.map(() => "---").join("|")}|---|---|`);

{
  using aws = awsCli(target);
  console.error(await aws.version());
  await observe("aws s3 cp 1KiB", () => aws.s3("cp", small, `s3://${BUCKET}/aws-small`));
  await observe("aws s3 cp 20MiB", () => aws.s3("cp", large, `s3://${BUCKET}/aws-large`));
  await observe("aws s3 cp - (stdin, 1KiB)", () => aws.s3("cp", "-", `s3://${BUCKET}/aws-stdin`, { stdin: pseudoRandom(SMALL, 5) }));
  await observe("aws s3api put-object", () => aws.s3api("put-object", "--bucket", BUCKET, "--key", "aws-api", "--body", small));
  await observe("aws s3api put-object --checksum-algorithm CRC32", () =>
    aws.s3api("put-object", "--bucket", BUCKET, "--key", "aws-crc", "--body", small, "--checksum-algorithm", "CRC32"),
  );
}
{
  using s3cmd = s3cmdClient(target);
  console.error(await s3cmd.version());
  await observe("s3cmd put 1KiB", () => s3cmd.run("put", small, `s3://${BUCKET}/s3cmd-small`));
  await observe("s3cmd put 20MiB", () => s3cmd.run("put", large, `s3://${BUCKET}/s3cmd-large`));
}
{
  using rc = rcloneClient({ ...target, settings: { no_check_bucket: "true" } });
  console.error(await rc.version());
  await observe("rclone copyto 1KiB", () => rc.run("copyto", small, rc.remote(`${BUCKET}/rclone-small`)));
  await observe("rclone copyto 20MiB (upload_cutoff 5Mi)", () =>
    rc.run("copyto", large, rc.remote(`${BUCKET}/rclone-large`), "--s3-upload-cutoff", "5Mi", "--s3-chunk-size", "5Mi"),
  );
}
{
  const b = boto3Client(target);
  const full = await b.runFull([]);
  console.error(`boto3 ${full.versions.boto3} botocore ${full.versions.botocore}`);
  await observe("boto3 upload_file 1KiB", () => b.run([{ op: "upload_file", Bucket: BUCKET, Key: "boto-small", Filename: small }]));
  await observe("boto3 upload_file 20MiB", () => b.run([{ op: "upload_file", Bucket: BUCKET, Key: "boto-large", Filename: large }]));
  await observe("boto3 put_object", () => b.run([{ op: "put_object", Bucket: BUCKET, Key: "boto-put", BodyText: "hello" }]));
}
{
  // the SDK's defaults (no requestChecksumCalculation override), unlike the fixture's own client
  const sdk = new S3Client({ endpoint: s3.endpoint, region: "us-east-1", forcePathStyle: true, credentials: s3.adminCredentials, maxAttempts: 1 });
  const version = (await import("@aws-sdk/client-s3/package.json", { with: { type: "json" } })).default.version;
  console.error(`@aws-sdk/client-s3 ${version}`);
  const bytes = pseudoRandom(SMALL, 3);
  await observe("sdk PutObject buffer", () => sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: "sdk-buf", Body: bytes })));
  await observe("sdk PutObject stream+ContentLength", () =>
    sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: "sdk-stream-len", Body: Readable.from([bytes]), ContentLength: SMALL })),
  );
  await observe("sdk PutObject stream", () => sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: "sdk-stream", Body: Readable.from([bytes]) })));
  await observe("sdk PutObject web ReadableStream+ContentLength", () =>
    sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: "sdk-web", Body: new Blob([bytes]).stream(), ContentLength: SMALL })),
  );
  const whenRequired = new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: s3.adminCredentials,
    maxAttempts: 1,
    requestChecksumCalculation: "WHEN_REQUIRED",
  });
  await observe("sdk WHEN_REQUIRED PutObject stream+ContentLength", () =>
    whenRequired.send(new PutObjectCommand({ Bucket: BUCKET, Key: "sdk-wr", Body: Readable.from([bytes]), ContentLength: SMALL })),
  );
  whenRequired.destroy();
  await observe("sdk lib-storage Upload 12MiB stream", () =>
    new Upload({ client: sdk, params: { Bucket: BUCKET, Key: "sdk-upload", Body: Readable.from([pseudoRandom(12 << 20, 4)]) } }).done(),
  );
  sdk.destroy();
}
