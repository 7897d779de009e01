/**
 * A listing bucket's folder path without its trailing slash is 302 to the folder: its HEAD must
 * carry the GET's header fields (RFC 9110 §9.3.2), on either engine. The node engine's HEAD had no
 * Content-Length (node:http adds `Content-Length: 0` to an empty GET only), the bun engine's had 0.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIAFOLDERHEAD000000", secretAccessKey: "folder-head-secret-0123456789abcdefghij" };
let s3: S3Fixture;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "fh" }], credentials: [{ ...CREDS, buckets: ["fh"] }] });
  await s3.put("fh", "docs/a.txt", "a");
});
afterAll(async () => {
  await s3?.stop();
});

for (const engine of ["bun", "node"] as const) {
  describe(`engine ${engine}`, () => {
    let px: InProcessProxy;
    beforeAll(async () => {
      px = await startInProcess(
        `server: { address: 127.0.0.1, port: 0, engine: ${engine} }\nbuckets:\n` +
          bucketYaml({ name: "files", prefix: "/files", bucket: "fh", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: "    listing: { enabled: true }\n" }),
      );
    });
    afterAll(async () => {
      await px?.stop();
    });

    test("HEAD of a folder's path without its slash answers the GET's 302 headers, Content-Length: 0 included", async () => {
      const seen: Record<string, unknown> = {};
      for (const method of ["GET", "HEAD"]) {
        const res = await fetch(px.url("/files/docs?v=1"), { method, redirect: "manual" });
        await res.arrayBuffer();
        seen[method] = [res.status, res.headers.get("location"), res.headers.get("content-length"), res.headers.get("cache-control")];
      }
      expect(seen).toEqual({ GET: [302, "/files/docs/?v=1", "0", "no-store"], HEAD: [302, "/files/docs/?v=1", "0", "no-store"] });
    });
  });
}
