/**
 * A client that announces a body and stops sending it, on the S3 front: once server.request_timeout
 * passes while the proxy is still reading that body (a small one is read whole and checked before
 * anything goes upstream), the answer is S3's for a client that went quiet, 400 RequestTimeout,
 * not a 503 "reduce your request rate" that blames the upstream. Nothing reaches the upstream.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { S3Signer } from "../../src/s3/sigv4.ts";
import { CompleteMultipartUploadCommand, CopyObjectCommand, CreateMultipartUploadCommand, S3Client, UploadPartCommand } from "@aws-sdk/client-s3";
import { lines, rawRequest, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv({ requestTimeout: 1 });
});
afterAll(() => env?.stop());

// The four run at once, each mostly waiting (request_timeout, a trickled answer). The first three
// share env and none of them reaches the upstream, so each one's "nothing upstream since mark()"
// holds beside the others; the fourth, which does reach it, has an environment of its own.
test.concurrent("a PutObject body that stops half-way (client still connected) → 400 RequestTimeout after request_timeout; nothing upstream", async () => {
  const host = `127.0.0.1:${env.port}`;
  const hash = new Bun.CryptoHasher("sha256").update(new Uint8Array(1000)).digest("hex");
  const signed = new S3Signer(WRITER, "us-east-1").signRequest({ method: "PUT", host, path: "/up/stalled.bin", payloadHash: hash });
  env.mark();
  const started = performance.now();
  const reply = await rawRequest(env.port, lines("PUT /up/stalled.bin HTTP/1.1", { host, "content-length": "1000", ...signed.headers }), [new Uint8Array(10)], { timeoutMs: 15_000 });
  const took = performance.now() - started;
  expect(reply.status).toBe(400);
  expect(reply.body).toContain("<Code>RequestTimeout</Code>");
  expect(took).toBeGreaterThanOrEqual(900);
  expect(took).toBeLessThan(10_000);
  expect(env.upstreamCalls()).toEqual([]);
  expect(await env.s3.exists("up", "stalled.bin")).toBe(false);
});

test.concurrent("an XML body the proxy reads itself (DeleteObjects, CompleteMultipartUpload) that stops half-way → 400 RequestTimeout after request_timeout, not after the listener's idle timeout; nothing upstream", async () => {
  const host = `127.0.0.1:${env.port}`;
  for (const [path, name, value] of [["/up", "delete", ""], ["/up/stalled.xml", "uploadId", "abc"]] as const) {
    const query = `${name}=${value}`;
    const signed = new S3Signer(WRITER, "us-east-1").signRequest({ method: "POST", host, path, query: [[name, value]], payloadHash: "UNSIGNED-PAYLOAD" });
    env.mark();
    const started = performance.now();
    const reply = await rawRequest(env.port, lines(`POST ${path}?${query} HTTP/1.1`, { host, "content-length": "500", "content-md5": "AAAAAAAAAAAAAAAAAAAAAA==", ...signed.headers }), [new TextEncoder().encode("<Delete><Object><Key>a</Key>")], { timeoutMs: 20_000 });
    const took = performance.now() - started;
    expect({ path, status: reply.status, code: /<Code>([^<]*)</.exec(reply.body)?.[1] }).toEqual({ path, status: 400, code: "RequestTimeout" });
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(10_000);
    expect(env.upstreamCalls()).toEqual([]);
  }
});

test.concurrent("an STS form body that stops half-way → STS's 400 RequestTimeout (not a retryable 503)", async () => {
  const reply = await rawRequest(env.port, lines("POST / HTTP/1.1", { host: `127.0.0.1:${env.port}`, "content-type": "application/x-www-form-urlencoded", "content-length": "2000" }), [new TextEncoder().encode("Action=AssumeRoleWithWebIdentity&")], { timeoutMs: 15_000 });
  expect(reply.status).toBe(400);
  expect(reply.body).toContain("<ErrorResponse");
  expect(reply.body).toContain("<Code>RequestTimeout</Code>");
});

test.concurrent("a CompleteMultipartUpload (and a CopyObject) that S3 answers slowly (200 at once, then its result a few bytes at a time, as S3 keeps a long Complete alive) is not cut at request_timeout: the client gets S3's result", async () => {
  const env = await startUploadEnv({ requestTimeout: 1 });
  const sdk = new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, credentials: WRITER, maxAttempts: 1 });
  try {
    const { UploadId } = await sdk.send(new CreateMultipartUploadCommand({ Bucket: "up", Key: "slow/complete.bin" }));
    const part = await sdk.send(new UploadPartCommand({ Bucket: "up", Key: "slow/complete.bin", UploadId, PartNumber: 1, Body: new Uint8Array(1000).fill(7) }));
    // the result (~300 bytes) trickles over ~3 s: three times request_timeout
    env.s3.faults.set("/up/slow/complete.bin", { kind: "slowBody", bytesPerTick: 10, ms: 100, method: "POST", times: 1 });
    const started = performance.now();
    const done = await sdk.send(new CompleteMultipartUploadCommand({ Bucket: "up", Key: "slow/complete.bin", UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
    expect(performance.now() - started).toBeGreaterThan(1500);
    expect(done.ETag).toBeTruthy();
    expect((await env.s3.read("up", "slow/complete.bin"))?.length).toBe(1000);

    env.s3.faults.set("/up/slow/copy.bin", { kind: "slowBody", bytesPerTick: 10, ms: 100, method: "PUT", times: 1 });
    const copied = await sdk.send(new CopyObjectCommand({ Bucket: "up", Key: "slow/copy.bin", CopySource: "up/slow/complete.bin" }));
    expect(copied.CopyObjectResult?.ETag).toBeTruthy();
  } finally {
    sdk.destroy();
    await env.stop();
  }
});
