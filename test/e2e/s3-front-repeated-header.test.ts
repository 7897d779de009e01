/**
 * A signed header sent more than once. SigV4 joins its values with "," in the order sent
 * (aws-sig-v4-test-suite's get-header-key-duplicate); both listeners hand it over joined with ", ",
 * and every such request was refused with SignatureDoesNotMatch. Written byte for byte on a
 * socket (fetch joins repeated headers itself), on both engines.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { amzDate, credentialScope, deriveSigningKey, sha256Hex, signature, stringToSign } from "../../src/s3/sigv4.ts";
import { lines, rawRequest, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

/** A PUT of `body` to /up/<key> with x-amz-meta-tag sent once per value, signed over `signedTag` as its canonical value. */
function putRepeated(env: UploadEnv, key: string, values: string[], signedTag: string, body: string) {
  const when = amzDate(new Date());
  const day = when.slice(0, 8);
  const host = `127.0.0.1:${env.port}`;
  const hash = sha256Hex(body);
  const signed = "host;x-amz-content-sha256;x-amz-date;x-amz-meta-tag";
  const creq = `PUT\n/up/${key}\n\nhost:${host}\nx-amz-content-sha256:${hash}\nx-amz-date:${when}\nx-amz-meta-tag:${signedTag}\n\n${signed}\n${hash}`;
  const scope = credentialScope(day, "us-east-1", "s3");
  const sig = signature(deriveSigningKey(WRITER.secretAccessKey, day, "us-east-1", "s3"), stringToSign(when, scope, creq));
  const head = lines(`PUT /up/${key} HTTP/1.1`, {
    host,
    "x-amz-date": when,
    "x-amz-content-sha256": hash,
    "content-length": String(body.length),
    authorization: `AWS4-HMAC-SHA256 Credential=${WRITER.accessKeyId}/${scope}, SignedHeaders=${signed}, Signature=${sig}`,
  });
  head.splice(1, 0, ...values.map((v) => `x-amz-meta-tag: ${v}`));
  return rawRequest(env.port, head, [new TextEncoder().encode(body)]);
}

for (const engine of ["bun", "node"] as const) {
  describe(`engine ${engine}`, () => {
    let env: UploadEnv;
    beforeAll(async () => {
      env = await startUploadEnv({ engine });
    });
    afterAll(async () => {
      await env?.stop();
    });

    test("signed as SigV4 joins the values: stored; joined in another order: 403 SignatureDoesNotMatch", async () => {
      const ok = await putRepeated(env, "repeated/a.txt", ["one", "two", "three"], "one,two,three", "joined");
      expect([ok.status, ok.body]).toEqual([200, ""]);
      expect(new TextDecoder().decode(await env.s3.read("up", "repeated/a.txt"))).toBe("joined");
      const wrong = await putRepeated(env, "repeated/b.txt", ["one", "two"], "two,one", "reordered");
      expect(wrong.status).toBe(403);
      expect(wrong.body).toContain("<Code>SignatureDoesNotMatch</Code>");
      expect(await env.s3.exists("up", "repeated/b.txt")).toBe(false);
    });
  });
}
