/**
 * Real S3 clients upload through the proxy's S3 front to the S3 fixture (which verifies uploads
 * as S3 does), with credentials the proxy issued; every upload is read back byte-exact, straight
 * from the fixture's storage. aws-cli 2.9 and boto3 1.26 (Debian) send a hex SHA-256 with
 * Content-MD5; rclone UNSIGNED-PAYLOAD; the latest @aws-sdk/client-s3 a streamed body as
 * STREAMING-UNSIGNED-PAYLOAD-TRAILER without Content-Length (test/clients/payload-modes.ts).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout } from "bun:test";
import { CompleteMultipartUploadCommand, CopyObjectCommand, CreateMultipartUploadCommand, DeleteObjectTaggingCommand, GetObjectTaggingCommand, PutObjectCommand, PutObjectTaggingCommand, S3Client, UploadPartCopyCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { awsCli } from "../clients/aws.ts";
import { boto3Client } from "../clients/boto3.ts";
import { rcloneClient } from "../clients/rclone.ts";
import { clientTest, tempDir, type TempDir } from "../clients/run.ts";
import { s3cmdClient } from "../clients/s3cmd.ts";
import { bytesOf, sha256, signedFetch, startUploadEnv, UPSTREAM_WRITER, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const T = 180_000; // real clients start Python or Go programs on a loaded 2-core machine
const MiB = 1024 * 1024;
let env: UploadEnv;
let dir: TempDir;
beforeAll(async () => {
  env = await startUploadEnv();
  dir = tempDir("yata-upload-clients-");
});
afterAll(async () => {
  dir.remove();
  await env.stop();
});

const target = () => ({ endpoint: env.endpoint, credentials: WRITER });
const ok = (r: { code: number; stderr: string }) => expect({ code: r.code, stderr: r.code === 0 ? "" : r.stderr }).toEqual({ code: 0, stderr: "" });
const file = (name: string, bytes: Uint8Array) => {
  const p = join(dir.path, name);
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, bytes);
  return p;
};
/** The object as the upstream stored it must be `bytes`. */
async function storedExactly(key: string, bytes: Uint8Array): Promise<void> {
  const got = await env.s3.read("up", key);
  expect(got === undefined ? "missing" : `${got.byteLength} ${sha256(got)}`).toBe(`${bytes.byteLength} ${sha256(bytes)}`);
}
/**
 * Every upstream request since mark() was signed with the bucket's key and succeeded (a lookup of
 * a key that does not exist yet, as clients do before they upload, may be a 404).
 */
function reSigned(): void {
  const calls = env.upstreamCalls();
  expect(calls.length).toBeGreaterThan(0);
  const lookup404 = (c: { method: string; status: number }) => (c.method === "GET" || c.method === "HEAD") && c.status === 404;
  expect(calls.filter((c) => c.accessKeyId !== UPSTREAM_WRITER.accessKeyId || (c.errorCode !== undefined && !lookup404(c))).map((c) => `${c.method} ${c.path} ${c.errorCode}`)).toEqual([]);
}

clientTest("aws")(
  "aws s3 cp of 100 MiB up (multipart) and down, byte-exact",
  async () => {
    const big = bytesOf(100 * MiB + 17, 101);
    const src = file("aws/big.bin", big);
    using aws = awsCli(target());
    env.mark();
    ok(await aws.s3("cp", src, "s3://up/aws/big.bin"));
    await storedExactly("aws/big.bin", big);
    const calls = env.upstreamCalls();
    expect(calls.filter((c) => c.method === "PUT" && c.query.partNumber !== undefined).length).toBeGreaterThanOrEqual(12);
    expect(calls.filter((c) => c.method === "POST" && c.query.uploadId !== undefined).length).toBe(1);
    reSigned();
    const back = join(dir.path, "aws/back.bin");
    ok(await aws.s3("cp", "s3://up/aws/big.bin", back));
    expect(sha256(new Uint8Array(readFileSync(back)))).toBe(sha256(big));
  },
  T,
);

clientTest("aws")(
  "aws s3 cp and mv between two keys of a bucket, above the multipart threshold: GetObjectTagging, then UploadPartCopy server-side; byte-exact, tags kept",
  async () => {
    const bytes = bytesOf(20 * MiB + 3, 107);
    await env.s3.put("up", "aws-copy/src.bin", bytes);
    using aws = awsCli(target());
    ok(await aws.s3api("put-object-tagging", "--bucket", "up", "--key", "aws-copy/src.bin", "--tagging", "TagSet=[{Key=team,Value=blue green},{Key=n,Value=1}]"));
    const tagsOf = async (key: string) => JSON.parse((await aws.s3api("get-object-tagging", "--bucket", "up", "--key", key)).stdout).TagSet;
    env.mark();
    ok(await aws.s3("cp", "s3://up/aws-copy/src.bin", "s3://up/aws-copy/copy.bin"));
    await storedExactly("aws-copy/copy.bin", bytes);
    const calls = env.upstreamCalls();
    const partCopies = calls.filter((c) => c.method === "PUT" && c.query.partNumber !== undefined);
    expect(partCopies.length).toBeGreaterThanOrEqual(3); // 8 MiB parts
    for (const c of partCopies) {
      expect([c.headers["x-amz-copy-source"], c.headers["x-amz-copy-source-range"]?.startsWith("bytes="), c.status]).toEqual(["/up/aws-copy/src.bin", true, 200]);
      expect(c.headers["content-length"] ?? "0").toBe("0"); // no byte of the object passed through the proxy
    }
    expect(calls.some((c) => c.method === "GET" && "tagging" in c.query && c.status === 200)).toBe(true);
    reSigned();
    // aws-cli sends the source's tags as x-amz-tagging on CreateMultipartUpload
    expect(await tagsOf("aws-copy/copy.bin")).toEqual([{ Key: "team", Value: "blue green" }, { Key: "n", Value: "1" }]);
    ok(await aws.s3("mv", "s3://up/aws-copy/copy.bin", "s3://up/aws-copy/moved.bin"));
    await storedExactly("aws-copy/moved.bin", bytes);
    expect(await env.s3.exists("up", "aws-copy/copy.bin")).toBe(false);
    expect(await tagsOf("aws-copy/moved.bin")).toEqual([{ Key: "team", Value: "blue green" }, { Key: "n", Value: "1" }]);
  },
  T,
);

clientTest("aws")(
  "aws s3 sync of a folder up, then aws s3 rm --recursive removes it all",
  async () => {
    const files = new Map<string, Uint8Array>([
      ["a.txt", new TextEncoder().encode("a")],
      ["sub/b.bin", bytesOf(300_000, 102)],
      ["sub/deeper/c with space.txt", new TextEncoder().encode("c")],
      ["empty.txt", new Uint8Array(0)],
      ["ü+%~.txt", new TextEncoder().encode("awkward")],
    ]);
    for (const [name, bytes] of files) file(`sync/${name}`, bytes);
    using aws = awsCli(target());
    env.mark();
    ok(await aws.s3("sync", join(dir.path, "sync"), "s3://up/sync/"));
    for (const [name, bytes] of files) await storedExactly(`sync/${name}`, bytes);
    reSigned();
    env.mark();
    ok(await aws.s3("rm", "--recursive", "s3://up/sync/"));
    expect(env.upstreamCalls().filter((c) => c.method === "DELETE").length).toBe(files.size);
    for (const name of files.keys()) expect(await env.s3.exists("up", `sync/${name}`)).toBe(false);
  },
  T,
);

clientTest("aws")(
  "aws s3api put-object --checksum-algorithm CRC32: stored, and the CRC32 comes back",
  async () => {
    const bytes = bytesOf(123_457, 103);
    const src = file("crc.bin", bytes);
    using aws = awsCli(target());
    const r = await aws.s3api("put-object", "--bucket", "up", "--key", "aws/crc.bin", "--body", src, "--checksum-algorithm", "CRC32");
    ok(r);
    const crc = Buffer.from(new Uint8Array(new Uint32Array([Bun.hash.crc32(bytes)]).buffer).reverse()).toString("base64");
    expect(JSON.parse(r.stdout).ChecksumCRC32).toBe(crc);
    await storedExactly("aws/crc.bin", bytes);
  },
  T,
);

clientTest("s3cmd")(
  "s3cmd put with 15 MiB chunks (multipart) and del",
  async () => {
    const bytes = bytesOf(20 * MiB + 3, 104);
    const src = file("s3cmd.bin", bytes);
    using s3cmd = s3cmdClient({ ...target(), multipartChunkSizeMb: 15 });
    env.mark();
    ok(await s3cmd.run("put", src, "s3://up/s3cmd/big.bin"));
    await storedExactly("s3cmd/big.bin", bytes);
    expect(env.upstreamCalls().filter((c) => c.method === "PUT" && c.query.partNumber !== undefined).map((c) => c.headers["content-length"])).toEqual(
      expect.arrayContaining([String(15 * MiB), String(5 * MiB + 3)]),
    );
    ok(await s3cmd.run("del", "s3://up/s3cmd/big.bin"));
    expect(await env.s3.exists("up", "s3cmd/big.bin")).toBe(false);
  },
  T,
);

clientTest("rclone")(
  "rclone copy of a folder to the proxy (UNSIGNED-PAYLOAD, multipart above 5 MiB), then rclone delete",
  async () => {
    const files = new Map<string, Uint8Array>([
      ["one.txt", new TextEncoder().encode("one")],
      ["two/big.bin", bytesOf(12 * MiB + 1, 105)],
    ]);
    for (const [name, bytes] of files) file(`rclone/${name}`, bytes);
    using rc = rcloneClient({ ...target(), settings: { no_check_bucket: "true", upload_cutoff: "5Mi", chunk_size: "5Mi" } });
    env.mark();
    ok(await rc.run("copy", join(dir.path, "rclone"), rc.remote("up/rclone")));
    for (const [name, bytes] of files) await storedExactly(`rclone/${name}`, bytes);
    reSigned();
    ok(await rc.run("delete", rc.remote("up/rclone")));
    for (const name of files.keys()) expect(await env.s3.exists("up", `rclone/${name}`)).toBe(false);
  },
  T,
);

clientTest("rclone")(
  "rclone purge: it asks for the bucket's versioning (GetBucketVersioning, relayed), then deletes, with no error in its output",
  async () => {
    file("rclone-purge/a.txt", new TextEncoder().encode("a"));
    file("rclone-purge/b/c.txt", new TextEncoder().encode("c"));
    using rc = rcloneClient({ ...target(), settings: { no_check_bucket: "true" } });
    ok(await rc.run("copy", join(dir.path, "rclone-purge"), rc.remote("up/rclone-purge")));
    env.mark();
    const purge = await rc.run("purge", rc.remote("up/rclone-purge"));
    expect({ code: purge.code, errors: purge.stderr.split("\n").filter((l) => l.includes("ERROR")) }).toEqual({ code: 0, errors: [] });
    expect(env.upstreamCalls().some((c) => c.method === "GET" && "versioning" in c.query && c.status === 200)).toBe(true);
    for (const name of ["a.txt", "b/c.txt"]) expect(await env.s3.exists("up", `rclone-purge/${name}`)).toBe(false);
  },
  T,
);

clientTest("rclone")(
  "rclone move within a bucket (server-side CopyObject, then DeleteObject) of keys with a space, +, %, ~ and unicode, byte-exact",
  async () => {
    const names = ["with space.txt", "a+b.txt", "100%.txt", "~tilde.txt", "日本 語+%20.txt"];
    const files = new Map(names.map((n, i) => [n, new TextEncoder().encode(`${i} ${n}\n`)]));
    for (const [name, bytes] of files) file(`rclone-move/${name}`, bytes);
    using rc = rcloneClient({ ...target(), settings: { no_check_bucket: "true" } });
    ok(await rc.run("copy", join(dir.path, "rclone-move"), rc.remote("up/rclone-move/from")));
    env.mark();
    ok(await rc.run("move", rc.remote("up/rclone-move/from"), rc.remote("up/rclone-move/to")));
    // Copied upstream, not downloaded and uploaded again.
    expect(env.upstreamCalls().filter((c) => c.method === "PUT" && c.headers["x-amz-copy-source"] !== undefined && c.status === 200).length).toBe(names.length);
    for (const [name, bytes] of files) {
      await storedExactly(`rclone-move/to/${name}`, bytes);
      expect(await env.s3.exists("up", `rclone-move/from/${name}`)).toBe(false);
    }
  },
  T,
);

clientTest("rclone")(
  "rclone copyto with its default bucket check (CreateBucket first: 200 for a bucket one owns in us-east-1), byte-exact",
  async () => {
    const bytes = new TextEncoder().encode("checked bucket\n");
    const src = file("rclone-check.txt", bytes);
    using rc = rcloneClient(target());
    env.mark();
    ok(await rc.run("copyto", src, rc.remote("up/rclone-check/a.txt")));
    await storedExactly("rclone-check/a.txt", bytes);
    // The bucket check was answered by the proxy: S3 saw only the object.
    expect(env.upstreamCalls().filter((c) => c.method === "PUT" && c.pathname.split("/").filter(Boolean).length === 1)).toEqual([]);
  },
  T,
);

clientTest("python3", "boto3")(
  "boto3 upload_file (multipart, 8 MiB parts) and download_file, byte-exact; delete_objects (a DeleteObjects batch)",
  async () => {
    const bytes = bytesOf(20 * MiB + 9, 106);
    const src = file("boto.bin", bytes);
    const back = join(dir.path, "boto-back.bin");
    env.mark();
    const [up, down, small] = await boto3Client(target()).run([
      { op: "upload_file", Bucket: "up", Key: "boto/big.bin", Filename: src, multipartThreshold: 8 * MiB, multipartChunksize: 8 * MiB },
      { op: "download_file", Bucket: "up", Key: "boto/big.bin", Filename: back },
      { op: "put_object", Bucket: "up", Key: "boto/small.txt", BodyText: "small" },
    ]);
    expect(up).toEqual({ ok: true, value: {} });
    expect(down).toEqual({ ok: true, value: {} });
    expect(small?.ok).toBe(true);
    await storedExactly("boto/big.bin", bytes);
    expect(env.upstreamCalls().filter((c) => c.method === "PUT" && c.query.partNumber !== undefined).length).toBe(3);
    expect(sha256(new Uint8Array(readFileSync(back)))).toBe(sha256(bytes));
    const [del] = await boto3Client(target()).run([{ op: "delete_objects", Bucket: "up", Keys: ["boto/big.bin", "boto/small.txt", "boto/never.txt"] }]);
    expect(del).toEqual({ ok: true, value: { Deleted: [{ Key: "boto/big.bin" }, { Key: "boto/small.txt" }, { Key: "boto/never.txt" }], Errors: [] } });
    expect(await env.s3.exists("up", "boto/big.bin")).toBe(false);
    expect(await env.s3.exists("up", "boto/small.txt")).toBe(false);
  },
  T,
);

clientTest()(
  "@aws-sdk/client-s3 (latest, default checksums) over plain HTTP: a streamed body (aws-chunked trailer mode), a buffered body, and lib-storage Upload (multipart)",
  async () => {
    const sdk = new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, credentials: WRITER, maxAttempts: 1 });
    try {
      const streamed = bytesOf(3 * MiB + 5, 107);
      env.mark();
      await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "sdk/streamed.bin", Body: Readable.from([streamed.subarray(0, MiB), streamed.subarray(MiB)]), ContentLength: streamed.byteLength }));
      await storedExactly("sdk/streamed.bin", streamed);
      // what the proxy was sent and what it sent on: the SDK's trailer mode, re-framed with an exact length
      const up = env.upstreamCalls().find((c) => c.method === "PUT")!;
      expect({ mode: up.headers["x-amz-content-sha256"], trailer: up.headers["x-amz-trailer"] }).toEqual({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", trailer: "x-amz-checksum-crc32" });
      expect(up.headers["transfer-encoding"]).toBeUndefined();

      const buffered = bytesOf(200_001, 108);
      const out = await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "sdk/buffered.bin", Body: buffered }));
      expect(out.ETag).toBe(`"${new Bun.CryptoHasher("md5").update(buffered).digest("hex")}"`);
      await storedExactly("sdk/buffered.bin", buffered);

      const large = bytesOf(12 * MiB + 11, 109);
      env.mark();
      await new Upload({ client: sdk, params: { Bucket: "up", Key: "sdk/upload.bin", Body: Readable.from([large]) } }).done();
      await storedExactly("sdk/upload.bin", large);
      expect(env.upstreamCalls().filter((c) => c.method === "PUT" && c.query.partNumber !== undefined).length).toBe(3);
      reSigned();
    } finally {
      sdk.destroy();
    }
  },
  T,
);

clientTest()(
  "@aws-sdk/client-s3 (latest): metadata with UTF-8 bytes is verified, re-signed and stored as the bytes the client sent",
  async () => {
    const sdk = new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, credentials: WRITER, maxAttempts: 1 });
    // The SDK signs the headers' UTF-8 bytes and sends those bytes; a listener hands each byte
    // over as one Latin-1 character, so the same bytes read back as this string.
    const bytes = (text: string) => Buffer.from(text, "utf8").toString("latin1");
    try {
      env.mark();
      await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "sdk/utf8-meta.txt", Body: "hi", Metadata: { name: "café" } }));
      const up = env.upstreamCalls().find((c) => c.method === "PUT")!;
      expect(up.headers["x-amz-meta-name"]).toBe(bytes("café"));
      reSigned();
      const head = await signedFetch(env, { method: "HEAD", path: "/up/sdk/utf8-meta.txt" });
      expect(head.status).toBe(200);
      expect(head.headers.get("x-amz-meta-name")).toBe(bytes("café"));
    } finally {
      sdk.destroy();
    }
  },
  T,
);

clientTest()(
  "@aws-sdk/client-s3 (latest): object tags (Put/Get/DeleteObjectTagging with the SDK's checksum header, Tagging on PutObject, CopyObject's TaggingDirective) and UploadPartCopy",
  async () => {
    const sdk = new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, credentials: WRITER, maxAttempts: 1 });
    const tags = async (Key: string) => (await sdk.send(new GetObjectTaggingCommand({ Bucket: "up", Key }))).TagSet?.map((t) => `${t.Key}=${t.Value}`);
    try {
      await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "sdk-tags/a.txt", Body: "a", Tagging: "team=blue&note=x%2By%3Dz" }));
      expect(await tags("sdk-tags/a.txt")).toEqual(["team=blue", "note=x+y=z"]);
      await sdk.send(new PutObjectTaggingCommand({ Bucket: "up", Key: "sdk-tags/a.txt", Tagging: { TagSet: [{ Key: "k 1/@:", Value: "v + w" }] } }));
      expect(await tags("sdk-tags/a.txt")).toEqual(["k 1/@:=v + w"]);
      await sdk.send(new CopyObjectCommand({ Bucket: "up", Key: "sdk-tags/b.txt", CopySource: "up/sdk-tags/a.txt" }));
      expect(await tags("sdk-tags/b.txt")).toEqual(["k 1/@:=v + w"]);
      await sdk.send(new CopyObjectCommand({ Bucket: "up", Key: "sdk-tags/c.txt", CopySource: "up/sdk-tags/a.txt", TaggingDirective: "REPLACE", Tagging: "r=1" }));
      expect(await tags("sdk-tags/c.txt")).toEqual(["r=1"]);
      await sdk.send(new DeleteObjectTaggingCommand({ Bucket: "up", Key: "sdk-tags/a.txt" }));
      expect(await tags("sdk-tags/a.txt")).toEqual([]);

      const src = bytesOf(5 * MiB + 100, 110);
      await sdk.send(new PutObjectCommand({ Bucket: "up", Key: "sdk-tags/src.bin", Body: src }));
      const { UploadId } = await sdk.send(new CreateMultipartUploadCommand({ Bucket: "up", Key: "sdk-tags/joined.bin" }));
      const p1 = await sdk.send(new UploadPartCopyCommand({ Bucket: "up", Key: "sdk-tags/joined.bin", UploadId, PartNumber: 1, CopySource: "up/sdk-tags/src.bin" }));
      const p2 = await sdk.send(new UploadPartCopyCommand({ Bucket: "up", Key: "sdk-tags/joined.bin", UploadId, PartNumber: 2, CopySource: "up/sdk-tags/src.bin", CopySourceRange: "bytes=0-99" }));
      await sdk.send(new CompleteMultipartUploadCommand({ Bucket: "up", Key: "sdk-tags/joined.bin", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.CopyPartResult!.ETag }, { PartNumber: 2, ETag: p2.CopyPartResult!.ETag }] } }));
      const joined = new Uint8Array(src.byteLength + 100);
      joined.set(src);
      joined.set(src.subarray(0, 100), src.byteLength);
      await storedExactly("sdk-tags/joined.bin", joined);
    } finally {
      sdk.destroy();
    }
  },
  T,
);
