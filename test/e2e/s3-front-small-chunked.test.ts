/**
 * A small aws-chunked upload (x-amz-decoded-content-length at most 64 KiB: upload-body.ts
 * SMALL_BODY_BYTES), what the JS SDK v3 sends for a streamed body and boto3 1.36+ over TLS, is
 * read whole, decoded and verified completely (every chunk signature, the trailer signature and
 * checksum) before anything goes upstream, then sent as bytes with the trailer's checksum as its
 * x-amz-checksum-* header: replayable, so an upstream 500 is retried (s3.retry) as for a small
 * plain PutObject. Streamed and re-framed, it had one attempt: the 500 reached the client.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, GetObjectCommand, PutObjectCommand, S3Client, UploadPartCommand } from "@aws-sdk/client-s3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { checksumBase64 } from "../../src/s3/checksum.ts";
import { startFrontsOn } from "./s3-front-helpers.ts";
import { answerOf, bytesOf, chunkedRequest, lines, rawRequest, sha256, shortRefusedDrain, startUploadEnv, startUploadFixture, uploadYaml, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(60_000);

let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv();
});
afterAll(() => env.stop());

const crc32 = (b: Uint8Array) => checksumBase64("CRC32", b);
const host = () => `127.0.0.1:${env.port}`;
const puts = (key: string) => env.s3.requests.filter((e) => !e.admin && e.method === "PUT" && e.pathname === `/up/${key}`);
const sdk = () => new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, credentials: WRITER, maxAttempts: 1 });

describe("a small aws-chunked PutObject is retried after an upstream 500", () => {
  test.each(["STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"] as const)("%s, hand-signed", async (mode) => {
    const key = `small-chunked/${mode}.bin`;
    const payload = bytesOf(1024, mode.length + mode.indexOf("UNSIGNED"));
    const trailer = mode === "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" ? undefined : (["x-amz-checksum-crc32", crc32(payload)] as [string, string]);
    const req = chunkedRequest({ mode, host: host(), path: `/up/${key}`, payload, chunkSize: 65536, trailer });
    env.s3.faults.set(`/up/${key}`, { kind: "error500", method: "PUT", times: 1 });
    const r = await rawRequest(env.port, lines(`PUT /up/${key} HTTP/1.1`, req.headers), [req.body]);
    expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: "" });
    expect(puts(key).length).toBe(2);
    const last = { headers: puts(key).at(-1)!.headers as Record<string, string | undefined> };
    // Sent as the decoded bytes, with an exact length and the trailer's checksum as a header.
    expect({ length: last.headers["content-length"], encoding: last.headers["content-encoding"], trailer: last.headers["x-amz-trailer"], crc: last.headers["x-amz-checksum-crc32"] }).toEqual({
      length: "1024",
      encoding: undefined,
      trailer: undefined,
      crc: trailer?.[1],
    });
    expect(sha256((await env.s3.read("up", key))!)).toBe(sha256(payload));
  });

  test("STREAMING-UNSIGNED-PAYLOAD-TRAILER without Content-Length (Transfer-Encoding: chunked): read up to its framing's bound, retried", async () => {
    const key = "small-chunked/te.bin";
    const payload = bytesOf(30_000, 4);
    const req = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: host(), path: `/up/${key}`, payload, chunkSize: 8192, trailer: ["x-amz-checksum-crc32", crc32(payload)], contentLength: false });
    env.s3.faults.set(`/up/${key}`, { kind: "error500", method: "PUT", times: 1 });
    const res = await fetch(`${env.endpoint}/up/${key}`, { method: "PUT", headers: req.headers, body: new Blob([req.body]).stream(), duplex: "half" } as RequestInit);
    expect(res.status).toBe(200);
    expect(puts(key).map((e) => e.headers["content-length"])).toEqual(["30000", "30000"]);
    expect(sha256((await env.s3.read("up", key))!)).toBe(sha256(payload));
  });

  test("@aws-sdk/client-s3 (a streamed body, CRC32 trailer by default): 200 after the upstream's 500, its checksum stored and returned with ChecksumMode", async () => {
    const client = sdk();
    try {
      // (bucket `other` has no cache: a cached answer carries no checksum, src/http/headers.ts)
      const key = "small-chunked/sdk.bin";
      const payload = bytesOf(1000, 5);
      env.s3.faults.set(`/up/${key}`, { kind: "error500", method: "PUT", times: 1 });
      const put = await client.send(new PutObjectCommand({ Bucket: "other", Key: key, Body: Readable.from([Buffer.from(payload)]), ContentLength: payload.byteLength }));
      expect(put.ChecksumCRC32).toBe(crc32(payload));
      const sent = puts(key);
      expect(sent.length).toBe(2);
      expect(sent[0]!.headers["x-amz-checksum-crc32"]).toBe(crc32(payload));
      const got = await client.send(new GetObjectCommand({ Bucket: "other", Key: key, ChecksumMode: "ENABLED" }));
      expect(got.ChecksumCRC32).toBe(crc32(payload));
      expect(sha256(await got.Body!.transformToByteArray())).toBe(sha256(payload));
    } finally {
      client.destroy();
    }
  });

  test("@aws-sdk/client-s3 UploadPart of a multipart upload created with ChecksumAlgorithm CRC32: the part's checksum goes upstream, Complete takes it", async () => {
    const client = sdk();
    try {
      const key = "small-chunked/mpu.bin";
      const payload = bytesOf(3000, 6);
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: "up", Key: key, ChecksumAlgorithm: "CRC32" }));
      env.s3.faults.set(`/up/${key}`, { kind: "error500", method: "PUT", times: 1 });
      const part = await client.send(new UploadPartCommand({ Bucket: "up", Key: key, UploadId, PartNumber: 1, Body: Readable.from([Buffer.from(payload)]), ContentLength: payload.byteLength, ChecksumAlgorithm: "CRC32" }));
      expect(part.ChecksumCRC32).toBe(crc32(payload));
      const sent = puts(key);
      expect(sent.length).toBe(2);
      expect({ crc: sent[1]!.headers["x-amz-checksum-crc32"], alg: sent[1]!.headers["x-amz-sdk-checksum-algorithm"] }).toEqual({ crc: crc32(payload), alg: "CRC32" });
      await client.send(new CompleteMultipartUploadCommand({ Bucket: "up", Key: key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag, ChecksumCRC32: part.ChecksumCRC32 }] } }));
      expect(sha256((await env.s3.read("up", key))!)).toBe(sha256(payload));
    } finally {
      client.destroy();
    }
  });
});

describe("a small aws-chunked body that fails its checks: S3's error, nothing sent upstream", () => {
  shortRefusedDrain(); // (a body shorter than its Content-Length: answered after 0.5 s, not 5)
  const payload = bytesOf(20_000, 9);
  const refused = async (key: string, head: string[], body: Uint8Array, status: number, code: string) => {
    env.mark();
    const r = await rawRequest(env.port, head, [body]);
    expect({ status: r.status, code: /<Code>(\w+)/.exec(r.body)?.[1] }).toEqual({ status, code });
    expect(env.upstreamCalls()).toEqual([]);
    expect(await env.s3.exists("up", key)).toBe(false);
  };

  test("a forged chunk signature (chunk 2 of 3): 403 SignatureDoesNotMatch", async () => {
    const req = chunkedRequest({ mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", host: host(), path: "/up/small-bad/forged.bin", payload, chunkSize: 8192 });
    const sig = req.chunkSignatures[1]!;
    const text = Buffer.from(req.body).toString("latin1").replace(sig, sig.slice(0, 63) + (sig[63] === "0" ? "1" : "0"));
    await refused("small-bad/forged.bin", lines("PUT /up/small-bad/forged.bin HTTP/1.1", req.headers), Buffer.from(text, "latin1"), 403, "SignatureDoesNotMatch");
  });

  test("a forged trailer signature: 403 SignatureDoesNotMatch", async () => {
    const req = chunkedRequest({ mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", host: host(), path: "/up/small-bad/trailer-sig.bin", payload, chunkSize: 8192, trailer: ["x-amz-checksum-crc32", crc32(payload)] });
    const text = Buffer.from(req.body).toString("latin1").replace(/x-amz-trailer-signature:([0-9a-f]{63})([0-9a-f])/, (_, a, b) => `x-amz-trailer-signature:${a}${b === "0" ? "1" : "0"}`);
    await refused("small-bad/trailer-sig.bin", lines("PUT /up/small-bad/trailer-sig.bin HTTP/1.1", req.headers), Buffer.from(text, "latin1"), 403, "SignatureDoesNotMatch");
  });

  test("a wrong CRC32 trailer: 400 BadDigest", async () => {
    const req = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: host(), path: "/up/small-bad/crc.bin", payload, chunkSize: 65536, trailer: ["x-amz-checksum-crc32", crc32(bytesOf(10))] });
    await refused("small-bad/crc.bin", lines("PUT /up/small-bad/crc.bin HTTP/1.1", req.headers), req.body, 400, "BadDigest");
  });

  test("a body that ends before x-amz-decoded-content-length: 400 IncompleteBody", async () => {
    const req = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: host(), path: "/up/small-bad/short.bin", payload, chunkSize: 65536, trailer: ["x-amz-checksum-crc32", crc32(payload)], decodedLength: payload.byteLength + 1000 });
    await refused("small-bad/short.bin", lines("PUT /up/small-bad/short.bin HTTP/1.1", req.headers), req.body, 400, "IncompleteBody");
  });

  test("a framed length no framing of the decoded length can reach: 400 InvalidRequest, unread", async () => {
    // (Content-Length not signed: the proxy reads it, as S3 would, before the body)
    const req = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: host(), path: "/up/small-bad/long.bin", payload, chunkSize: 65536, trailer: ["x-amz-checksum-crc32", crc32(payload)], contentLength: false });
    const head = lines("PUT /up/small-bad/long.bin HTTP/1.1", { ...req.headers, "content-length": String(payload.byteLength + 100_000) });
    env.mark();
    const r = await rawRequest(env.port, head, [req.body]);
    expect({ status: r.status, code: (await answerOf(new Response(r.body))).code }).toEqual({ status: 400, code: "InvalidRequest" });
    expect(env.upstreamCalls()).toEqual([]);
    // without Content-Length: read up to the bound, then refused the same
    const te = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: host(), path: "/up/small-bad/long-te.bin", payload, chunkSize: 65536, trailer: ["x-amz-checksum-crc32", crc32(payload)], decodedLength: 1000, contentLength: false });
    const res = await fetch(`${env.endpoint}/up/small-bad/long-te.bin`, { method: "PUT", headers: te.headers, body: new Blob([te.body]).stream(), duplex: "half" } as RequestInit);
    expect({ status: res.status, code: (await answerOf(res)).code }).toEqual({ status: 400, code: "InvalidRequest" });
    expect(env.upstreamCalls()).toEqual([]);
  });
});

/** A python3 on PATH whose botocore is 1.36 or later (a CRC32 trailer by default over TLS); Debian's 1.26 sends Content-MD5. */
const newBoto3 = await (async () => {
  const p = Bun.spawn(["python3", "-c", "import botocore; print(botocore.__version__)"], { stdout: "pipe", stderr: "pipe" });
  const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  const [major, minor] = code === 0 ? out.trim().split(".").map(Number) : [0, 0];
  return major! > 1 || (major === 1 && minor! >= 36);
})();

const BOTO3 = `
import base64, json, sys, boto3
from botocore.config import Config
endpoint, bucket, key, body = sys.argv[1], sys.argv[2], sys.argv[3], base64.b64decode(sys.argv[4])
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=sys.argv[5], aws_secret_access_key=sys.argv[6],
                  config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}))
put = s3.put_object(Bucket=bucket, Key=key, Body=body)
got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
print(json.dumps({"put": put.get("ChecksumCRC32"), "get": got.get("ChecksumCRC32"), "body": base64.b64encode(got["Body"].read()).decode()}))
`;

test.skipIf(!newBoto3)("boto3 1.36+ (over TLS: a CRC32 trailer by default) put_object of 1 KiB after an upstream 500, get_object with ChecksumMode ENABLED", async () => {
  const dir = mkdtempSync(join(tmpdir(), "yata-small-chunked-"));
  try {
    const made = Bun.spawn(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdout: "pipe", stderr: "pipe" });
    expect(await made.exited).toBe(0);
    const s3 = await startUploadFixture();
    const yaml = uploadYaml(s3.endpoint).replace("engine: bun", `engine: bun, https: { cert_path: "${join(dir, "cert.pem")}", key_path: "${join(dir, "key.pem")}" }`);
    await using tls = await startFrontsOn(yaml, s3, true);
    const payload = bytesOf(1024, 8);
    const key = "boto3/small.bin";
    s3.faults.set(`/up/${key}`, { kind: "error500", method: "PUT", times: 1 });
    const py = Bun.spawn(["python3", "-c", BOTO3, tls.endpoint.replace("http://", "https://"), "other", key, Buffer.from(payload).toString("base64"), WRITER.accessKeyId, WRITER.secretAccessKey], {
      env: { ...process.env, AWS_CA_BUNDLE: join(dir, "cert.pem"), AWS_CONFIG_FILE: join(dir, "none"), AWS_SHARED_CREDENTIALS_FILE: join(dir, "none") },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err, code] = await Promise.all([new Response(py.stdout).text(), new Response(py.stderr).text(), py.exited]);
    expect({ code, err: code === 0 ? "" : err.slice(-2000) }).toEqual({ code: 0, err: "" });
    const r = JSON.parse(out) as { put: string; get: string; body: string };
    expect({ put: r.put, get: r.get }).toEqual({ put: crc32(payload), get: crc32(payload) });
    expect(sha256(new Uint8Array(Buffer.from(r.body, "base64")))).toBe(sha256(payload));
    // the upstream got the decoded bytes with the trailer's checksum as a header, twice (the 500, then the retry)
    const sent = s3.requests.filter((e) => !e.admin && e.method === "PUT" && e.pathname === `/up/${key}`);
    expect(sent.map((e) => [e.headers["content-length"], e.headers["x-amz-checksum-crc32"], e.headers["x-amz-trailer"]] as Array<string | undefined>)).toEqual([
      ["1024", crc32(payload), undefined],
      ["1024", crc32(payload), undefined],
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
