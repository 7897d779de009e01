/**
 * A primary that sends a body within buffer_threshold_bytes part of the way and then goes silent
 * (the connection open, no byte more) is that replica's failure after s3.timeout of silence, on
 * both upstream clients, for a known length and for a chunked one: the secondary answers.
 *
 * The own client's sweep always ended such an attempt after s3.timeout without a byte. Through
 * fetch (https endpoints, upstream_client: fetch) the held body had only its whole-body bound:
 * s3.timeout plus its length at 16 KiB/s (a known length), or twice s3.timeout plus what came so
 * far at 16 KiB/s (chunked): 65 s for a 1 MiB object, 34 s for a chunked one silent after 512 KiB.
 * Past server.request_timeout either way, so the request was answered 504 there and the
 * secondary was never asked.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startRawStore, type RawStore } from "../helpers/raw-store.ts";
import { startInProcess, type InProcessProxy } from "./harness.ts";

setDefaultTimeout(60_000);

const KEY = { accessKeyId: "AKIASTALLEDBODYFAIL", secretAccessKey: "stalled/body/failover/secret/EXAMPLE/000" };
/** What the primary announces (known length), and what it sends before it goes silent. */
const SIZE = 1024 * 1024;
const SENT = 512 * 1024;
let secondary: S3Fixture;
let primary: RawStore;
const proxies: Partial<Record<"own" | "fetch", InProcessProxy>> = {};

beforeAll(async () => {
  secondary = await startS3Fixture({ buckets: [{ name: "s-bucket" }], credentials: [{ ...KEY, buckets: ["s-bucket"] }] });
  for (const k of ["k.bin", "chunked.bin"]) await secondary.put("s-bucket", k, new Uint8Array(SIZE).fill(83));
  // A 200 head and SENT bytes ("P"), then nothing: the connection left open and silent.
  primary = await startRawStore((head) => {
    const part = "P".repeat(SENT);
    const bytes = head.split("\r\n", 1)[0]!.includes("chunked")
      ? `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n${SENT.toString(16)}\r\n${part}\r\n`
      : `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${SIZE}\r\n\r\n${part}`;
    return { bytes, end: false };
  });
  const replica = (name: string, bucket: string, endpoint: string, priority: number) =>
    `        - { name: ${name}, bucket: ${bucket}, region: us-east-1, endpoint: "${endpoint}", access_key: "${KEY.accessKeyId}", secret_key: "${KEY.secretAccessKey}", priority: ${priority} }\n`;
  for (const client of ["own", "fetch"] as const) {
    proxies[client] = await startInProcess(
      `server: { address: 127.0.0.1, port: 0, request_timeout: 30, upstream_client: ${client === "own" ? "auto" : "fetch"} }\n` +
        `logging: { level: error }\n` +
        `buckets:\n  - name: live\n    path_prefix: /live\n    s3:\n      timeout: 1\n      retry: { max_attempts: 1 }\n      replicas:\n` +
        replica("primary", "p-bucket", `http://127.0.0.1:${primary.port}`, 1) +
        replica("secondary", "s-bucket", secondary.endpoint, 2),
      { probeIntervalMs: 600_000 },
    );
  }
});

afterAll(async () => {
  for (const p of Object.values(proxies)) await p?.stop();
  primary?.close();
  await secondary?.stop();
});

for (const client of ["own", "fetch"] as const) {
  describe(`a primary silent mid-body within buffer_threshold_bytes (${client === "own" ? "own client" : "fetch"})`, () => {
    // (the four run at once: no breaker, no counter, nothing read back but their own answers)
    for (const key of ["k.bin", "chunked.bin"] as const) {
      test.concurrent(`${key === "k.bin" ? "Content-Length" : "chunked"}: the secondary answers the whole object soon after s3.timeout`, async () => {
        const started = performance.now();
        const res = await fetch(proxies[client]!.url(`/live/${key}`));
        const body = new Uint8Array(await res.arrayBuffer());
        const seconds = (performance.now() - started) / 1000;
        expect([res.status, body.byteLength, body.every((b) => b === 83)]).toEqual([200, SIZE, true]); // "S": the secondary's, whole
        // s3.timeout (1 s) of silence, checked within a second or so; not the body's whole bound (34-65 s)
        expect(seconds).toBeLessThan(6);
      });
    }
  });
}
