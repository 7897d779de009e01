/**
 * An upstream that takes an upload's connection and request head, then never reads its body nor
 * answers. A body small enough to fit in the socket buffers on the way (all of it leaves the
 * client, so the listener's idle timeout never cuts it) went to fetch natively on the bun engine
 * (src/http/framed-body.ts) with a budget of s3.timeout + the body at 12 KiB/s + 70 s: the client
 * waited 110 s for a 400 KB PUT with s3.timeout 3 (240 s for 2 MB). Every engine and front now
 * answers the upstream's timeout soon after s3.timeout (504; 503 ServiceUnavailable on the S3 front), as the node engine did.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { S3Signer } from "../../src/s3/sigv4.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { rawHttp, rawStatus } from "../helpers/raw-http.ts";
import { startRawStore, type RawStore } from "../helpers/raw-store.ts";
import { bucket, startWriteEnv, WRITER } from "./plain-write-env.ts";

setDefaultTimeout(60_000);

const CLIENT = { accessKeyId: "AKIDSTOPSREADING0001", secretAccessKey: "stops-reading-client-secret-0123456789" };

let s3: S3Fixture;
/** Takes an upload's head and then reads nothing (its body) nor answers. */
let store: RawStore;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }], credentials: [WRITER] });
  store = await startRawStore(() => "stop-reading", { headOnly: true });
});
afterAll(async () => {
  store.close();
  await s3.stop();
});

describe("an upstream that stops reading an upload's body: a timeout soon after s3.timeout", () => {
  // (the two run at once: each its own proxy and keys, its upstream requests told apart by engine)
  for (const engine of ["bun", "node"] as const) {
    test.concurrent(`${engine} engine: plain front PUT and S3 front PutObject (UNSIGNED-PAYLOAD), 1 KiB and 400 KB`, async () => {
      await using env = await startWriteEnv(
        {
          engine,
          buckets: () => bucket("st", "/st", "data", `http://127.0.0.1:${store.port}`, "    access: read-write\n    auth: { anonymous_writes: true }\n").replace(" }\n", ", timeout: 1, retry: { max_attempts: 1 } }\n"),
          server: "  request_timeout: 600\n",
          s3Api: true,
          sts: false,
          s3Extra: `  credentials:\n    - { access_key_id: "${CLIENT.accessKeyId}", secret_access_key: "${CLIENT.secretAccessKey}", identity: c, buckets: { st: [read, write] } }\n`,
        },
        s3,
      );
      const host = `127.0.0.1:${env.s3Port}`;
      const signer = new S3Signer(CLIENT, "us-east-1");
      const outcomes = await Promise.all(
        [1024, 400_000].flatMap((size) => {
          const body = "x".repeat(size);
          const plainKey = `plain-${engine}-${size}.bin`;
          const s3Key = `front-${engine}-${size}.bin`;
          const signed = signer.signRequest({ method: "PUT", host, path: `/st/${s3Key}`, headers: { "content-length": String(size) }, payloadHash: "UNSIGNED-PAYLOAD" });
          const lines = Object.entries(signed.headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
          return [
            rawHttp(env.port, `PUT /st/${plainKey} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: ${size}\r\n\r\n${body}`).then((r) => ({ what: `plain ${size}`, r })),
            rawHttp(env.s3Port!, `PUT ${signed.path} HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\ncontent-length: ${size}\r\n${lines}\r\n${body}`).then((r) => ({ what: `s3 ${size}`, r })),
          ];
        }),
      );
      // (the S3 front says an upstream timeout as S3 says its own: 503 ServiceUnavailable, which SDKs retry)
      for (const { what, r } of outcomes) {
        if (what.startsWith("s3")) {
          expect(rawStatus(r), `${what}: ${r.slice(0, 300)}`).toBe(503);
          expect(r, what).toContain("<Code>ServiceUnavailable</Code>");
        } else {
          expect(rawStatus(r), `${what}: ${r.slice(0, 300)}`).toBe(504);
          expect(r, what).toContain('"error":"GatewayTimeout"');
        }
      }
      expect(store.seen.filter((h) => h.startsWith("PUT ") && h.includes(`-${engine}-`))).toHaveLength(4);
    });
  }
});
