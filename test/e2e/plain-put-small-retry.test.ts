/**
 * A small plain-front PUT (at most 64 KiB, as the S3 front's PutObject: upload-body.ts
 * SMALL_BODY_BYTES) is read whole and sent as bytes: replayable, so an upstream 500 is retried as
 * for a GET (s3.retry), and it goes over the pooled upstream connection. Streamed, it had one
 * attempt: the 500 reached the client (502) though a second attempt stored the object.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { rawHttp, rawStatus } from "../helpers/raw-http.ts";
import { bucket, startWriteEnv, WRITER } from "./plain-write-env.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }, { name: "ro" }], credentials: [WRITER] });
});
afterAll(() => s3.stop());

describe("a small plain-front PUT is retried after an upstream 500", () => {
  for (const engine of ["bun", "node"] as const) {
    test(`${engine} engine`, async () => {
      await using env = await startWriteEnv({ engine, buckets: (ep) => bucket("rw", "/rw", "rw", ep, "    access: read-write\n    auth: { anonymous_writes: true }\n") }, s3);
      const key = `small-${engine}.txt`;
      const body = "x".repeat(1024);
      s3.faults.set(`/rw/${key}`, { kind: "error500", method: "PUT", times: 1 });
      const res = await rawHttp(env.port, `PUT /rw/${key} HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      expect(rawStatus(res), res).toBe(200);
      expect(s3.requests.filter((r) => r.method === "PUT" && r.pathname === `/rw/${key}`).length).toBe(2);
      const got = await fetch(`http://127.0.0.1:${env.port}/rw/${key}`);
      expect(got.status).toBe(200);
      expect(await got.text()).toBe(body);
    });
  }
});
