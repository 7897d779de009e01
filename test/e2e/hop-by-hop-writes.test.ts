/**
 * A write's headers that the client's Connection header names are hop-by-hop (RFC 9110 §7.6.1): a
 * proxy removes them before forwarding, as the plain front's GET already did for Range. A PUT
 * with `Connection: close, x-amz-meta-hop, content-type` stored x-amz-meta-hop and the
 * Content-Type, on both fronts and engines; only the other fields reach S3 now.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { S3Signer, sha256Hex } from "../../src/s3/sigv4.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { rawHttp, rawStatus } from "../helpers/raw-http.ts";
import { bucket, startWriteEnv, WRITER } from "./plain-write-env.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const CLIENT = { accessKeyId: "AKIDHOPBYHOPCLIENT01", secretAccessKey: "hop-by-hop-client-secret-0123456789" };
const HOP: Record<string, string> = { connection: "close, x-amz-meta-hop, content-type", "x-amz-meta-hop": "listed", "x-amz-meta-kept": "yes", "content-type": "text/x-hop" };
/** (the Connection field itself is not signed: clients sign what they mean S3 to see) */
const { connection: _, ...PAYLOAD_HEADERS } = HOP;
const lines = (h: Record<string, string>) => Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join("");

let s3: S3Fixture;
beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }, { name: "ro" }], credentials: [WRITER] });
});
afterAll(() => s3.stop());

/** The PutObject the fixture received for `key`: its headers. */
function putHeaders(key: string): Record<string, string> {
  const put = s3.requests.find((r) => r.method === "PUT" && r.pathname === `/rw/${key}`);
  if (put === undefined) throw new Error(`no PUT of ${key} reached S3`);
  return put.headers;
}

describe("a write's Connection-named headers never reach S3", () => {
  for (const engine of ["bun", "node"] as const) {
    test(`${engine} engine: plain front PUT and S3 front PutObject`, async () => {
      await using env = await startWriteEnv(
        {
          engine,
          buckets: (ep) => bucket("rw", "/rw", "rw", ep, "    access: read-write\n    auth: { anonymous_writes: true }\n"),
          s3Api: true,
          sts: false,
          s3Extra: `  credentials:\n    - { access_key_id: "${CLIENT.accessKeyId}", secret_access_key: "${CLIENT.secretAccessKey}", identity: c, buckets: { rw: [read, write] } }\n`,
        },
        s3,
      );
      const plainKey = `plain-${engine}.txt`;
      const plain = await rawHttp(env.port, `PUT /rw/${plainKey} HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n${lines(HOP)}\r\nabc`);
      expect(rawStatus(plain)).toBe(200);

      const s3Key = `front-${engine}.txt`;
      const host = `127.0.0.1:${env.s3Port}`;
      const signed = new S3Signer(CLIENT, "us-east-1").signRequest({ method: "PUT", host, path: `/rw/${s3Key}`, headers: { ...PAYLOAD_HEADERS, "content-length": "3" }, payloadHash: sha256Hex("abc") });
      const front = await rawHttp(env.s3Port!, `PUT ${signed.path} HTTP/1.1\r\nhost: ${host}\r\ncontent-length: 3\r\n${lines(HOP)}${lines(signed.headers)}\r\nabc`);
      expect(rawStatus(front), front).toBe(200);

      for (const key of [plainKey, s3Key]) {
        const h = putHeaders(key);
        expect(h["x-amz-meta-kept"], key).toBe("yes");
        expect(h["x-amz-meta-hop"], key).toBeUndefined();
        expect(h["content-type"] ?? "", key).not.toContain("text/x-hop");
      }
    });
  }
});
