/**
 * A client that announces a body and stops sending it, on the S3 front: once server.request_timeout
 * passes while the proxy is still reading that body (a small one is read whole and checked before
 * anything goes upstream), the answer is S3's for a client that went quiet, 400 RequestTimeout,
 * not a 503 "reduce your request rate" that blames the upstream. Nothing reaches the upstream.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { S3Signer } from "../../src/s3/sigv4.ts";
import { lines, rawRequest, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv({ requestTimeout: 1 });
});
afterAll(() => env?.stop());

test("a PutObject body that stops half-way (client still connected) → 400 RequestTimeout after request_timeout; nothing upstream", async () => {
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

test("an STS form body that stops half-way → STS's 400 RequestTimeout (not a retryable 503)", async () => {
  const reply = await rawRequest(env.port, lines("POST / HTTP/1.1", { host: `127.0.0.1:${env.port}`, "content-type": "application/x-www-form-urlencoded", "content-length": "2000" }), [new TextEncoder().encode("Action=AssumeRoleWithWebIdentity&")], { timeoutMs: 15_000 });
  expect(reply.status).toBe(400);
  expect(reply.body).toContain("<ErrorResponse");
  expect(reply.body).toContain("<Code>RequestTimeout</Code>");
});
