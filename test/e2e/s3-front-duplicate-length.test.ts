/**
 * A Content-Length sent twice with the same value. Go programs that copy a presigned request's
 * signed headers into their request send both `Content-Length` and `content-length` (rclone did so
 * on every single-part upload before 1.59, and still does with --s3-use-presigned-request); S3 and
 * Go servers (MinIO) read it as the one value (RFC 9110 §8.6). Both listeners join the two as
 * "2, 2": the signature was checked over that and failed (SignatureDoesNotMatch), on either engine.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout } from "bun:test";
import { writeFileSync } from "node:fs";
import { rcloneClient } from "../clients/rclone.ts";
import { clientTest, tempDir } from "../clients/run.ts";
import { startUploadEnv, startUploadFixture, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";
import type { S3Fixture } from "../fixtures/s3.ts";

setDefaultTimeout(30_000);

const T = 120_000;
const dir = tempDir("yata-dup-length-");
let s3: S3Fixture;
beforeAll(async () => (s3 = await startUploadFixture()));
afterAll(async () => {
  dir.remove();
  await s3.stop();
});

for (const engine of ["bun", "node"] as const) {
  describe(`engine ${engine}`, () => {
    let env: UploadEnv;
    beforeAll(async () => {
      env = await startUploadEnv({ engine }, s3);
    });
    afterAll(() => env.stop());

    clientTest("rclone")(
      "rclone --s3-use-presigned-request (Content-Length sent twice): the upload is stored byte-exact",
      async () => {
        const bytes = new TextEncoder().encode(`presigned upload through the ${engine} engine\n`);
        const src = dir.file(`${engine}.txt`);
        writeFileSync(src, bytes);
        using rc = rcloneClient({ endpoint: env.endpoint, credentials: WRITER, settings: { no_check_bucket: "true" } });
        const r = await rc.run("copyto", "--s3-use-presigned-request", src, rc.remote(`up/dup-length/${engine}.txt`));
        expect({ code: r.code, stderr: r.code === 0 ? "" : r.stderr.slice(0, 400) }).toEqual({ code: 0, stderr: "" });
        const got = await s3.read("up", `dup-length/${engine}.txt`);
        expect(got === undefined ? "missing" : new TextDecoder().decode(got)).toBe(new TextDecoder().decode(bytes));
      },
      T,
    );
  });
}
