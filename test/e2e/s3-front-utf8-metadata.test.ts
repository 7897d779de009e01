/**
 * Non-ASCII user metadata (x-amz-meta-*) on writes through the S3 front, as S3 takes it: values are
 * UTF-8, and S3's 2 KiB limit counts their UTF-8 bytes.
 *
 * - A presigned PutObject whose presigner hoisted x-amz-meta-* into the query (the JS SDK's
 *   getSignedUrl does, percent-encoding the value's UTF-8): the value decoded from the query is
 *   text; it was appended to the request's Headers as it was, so a character above U+00FF threw
 *   (500 InternalError, a stack trace in the log) and one in U+0080..U+00FF was re-signed and sent
 *   upstream as one Latin-1 byte (the upstream refused the signature: 403 AccessDenied).
 * - A browser form upload (PostObject): its fields are UTF-8 text too; a value above U+00FF was
 *   refused (400 InvalidArgument "not a valid header value"), one in U+0080..U+00FF went upstream
 *   as a Latin-1 byte (403 AccessDenied), and the form's metadata was not held to S3's 2 KiB at
 *   all (3,000 bytes were stored).
 * - Header values are bytes (one Latin-1 character per byte, as the listener gives them): the
 *   2 KiB check counted each byte above 0x7F as two (Buffer.byteLength of the character), so
 *   metadata of 1 to 2 KiB of UTF-8 was refused with MetadataTooLarge.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { smithyPresigned } from "../fronts/s3/helpers.ts";
import { presignPost } from "../../src/fronts/presign.ts";
import { answerOf, signedFetch, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

const T = 30_000;
let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv();
});
afterAll(async () => {
  await env?.[Symbol.asyncDispose]();
});

/** A header value's wire bytes (one Latin-1 character per byte) read back as UTF-8 text. */
const utf8Of = (wire: string | null) => (wire === null ? null : Buffer.from(wire, "latin1").toString("utf8"));
/** Text as the bytes a client sends for it in a header: its UTF-8, one Latin-1 character per byte. */
const wireOf = (text: string) => Buffer.from(text, "utf8").toString("latin1");

describe("non-ASCII user metadata", () => {
  for (const value of ["Résumé café.pdf", "日本語の資料 ✓", "ascii only"]) {
    test(
      `a presigned PutObject with hoisted x-amz-meta-name ${JSON.stringify(value)} stores it as UTF-8`,
      async () => {
        const path = `/up/utf8/${encodeURIComponent(value.replace(/[^a-z]/gi, ""))}.txt`;
        const v = await smithyPresigned({ method: "PUT", path, creds: WRITER, date: new Date(), expiresIn: 300, host: `127.0.0.1:${env.port}`, headers: { "x-amz-meta-name": value } });
        expect(v.rawQuery).toContain("x-amz-meta-name="); // hoisted
        const put = await answerOf(await fetch(`${env.endpoint}${v.rawPath}?${v.rawQuery}`, { method: "PUT", body: "hoisted" }));
        expect({ status: put.status, code: put.code }).toEqual({ status: 200, code: "" });
        const head = await signedFetch(env, { method: "HEAD", path });
        expect(head.status).toBe(200);
        expect(utf8Of(head.headers.get("x-amz-meta-name"))).toBe(value);
      },
      T,
    );
  }

  test(
    "S3's 2 KiB metadata limit counts UTF-8 bytes: 1,026 bytes of non-ASCII metadata pass, 2,049 are MetadataTooLarge",
    async () => {
      const ok = "日".repeat(341); // 1,023 bytes + "uni" = 1,026
      const put = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/utf8/kib.txt", headers: { "x-amz-meta-uni": wireOf(ok) }, body: "x" }));
      expect({ status: put.status, code: put.code }).toEqual({ status: 200, code: "" });
      const head = await signedFetch(env, { method: "HEAD", path: "/up/utf8/kib.txt" });
      expect(utf8Of(head.headers.get("x-amz-meta-uni"))).toBe(ok);
      const exact = "日".repeat(681) + "é"; // 2,043 + 2 + "uni" = 2,048
      const atLimit = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/utf8/exact.txt", headers: { "x-amz-meta-uni": wireOf(exact) }, body: "x" }));
      expect({ status: atLimit.status, code: atLimit.code }).toEqual({ status: 200, code: "" });
      const over = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/utf8/over.txt", headers: { "x-amz-meta-uni": wireOf("日".repeat(682)) }, body: "x" })); // 2,046 + 3 = 2,049
      expect({ status: over.status, code: over.code }).toEqual({ status: 400, code: "MetadataTooLarge" });
      expect(await env.s3.exists("up", "utf8/over.txt")).toBe(false);
    },
    T,
  );
});

/** A POST policy for `key` that also allows (and sets) `fields`, signed as boto3's generate_presigned_post signs it. */
function postPolicy(key: string, fields: Record<string, string>, on: UploadEnv = env): { url: string; fields: Record<string, string> } {
  const now = Math.floor(Date.now() / 1000) * 1000;
  const p = presignPost({ origin: on.endpoint, bucket: "up", key, region: "us-east-1", accessKeyId: WRITER.accessKeyId, secretAccessKey: WRITER.secretAccessKey, now, expiresAt: now + 300_000, maxSize: 1024 });
  const policy = JSON.parse(Buffer.from(p.fields.policy!, "base64").toString()) as { conditions: unknown[] };
  for (const [k, v] of Object.entries(fields)) policy.conditions.push({ [k]: v });
  const text = Buffer.from(JSON.stringify(policy)).toString("base64");
  const h = (k: Uint8Array | string, d: string) => new Bun.CryptoHasher("sha256", k).update(d).digest() as Uint8Array;
  const sk = h(h(h(h(`AWS4${WRITER.secretAccessKey}`, p.fields["x-amz-date"]!.slice(0, 8)), "us-east-1"), "s3"), "aws4_request");
  return { url: p.url, fields: { ...p.fields, ...fields, policy: text, "x-amz-signature": new Bun.CryptoHasher("sha256", sk).update(text).digest("hex") } };
}

async function postForm(key: string, fields: Record<string, string>, on: UploadEnv = env) {
  const p = postPolicy(key, fields, on);
  const form = new FormData();
  for (const [k, v] of Object.entries(p.fields)) form.append(k, v);
  form.append("file", new Blob(["form file"]), "f.txt");
  return answerOf(await fetch(p.url, { method: "POST", body: form, redirect: "manual" }));
}

describe("non-ASCII metadata in a browser form upload (PostObject)", () => {
  for (const value of ["Résumé café.pdf", "日本語の資料 ✓"]) {
    test(
      `x-amz-meta-name ${JSON.stringify(value)} is stored as UTF-8`,
      async () => {
        const key = `form/${value.replace(/[^a-z]/gi, "")}.txt`;
        const a = await postForm(key, { "x-amz-meta-name": value });
        expect({ status: a.status, code: a.code }).toEqual({ status: 204, code: "" });
        const head = await signedFetch(env, { method: "HEAD", path: `/up/${key}` });
        expect(utf8Of(head.headers.get("x-amz-meta-name"))).toBe(value);
      },
      T,
    );
  }

  test(
    "metadata over S3's 2 KiB is MetadataTooLarge and nothing is stored; 2 KiB exactly passes",
    async () => {
      const over = await postForm("form/over.txt", { "x-amz-meta-a": "x".repeat(3000) });
      expect({ status: over.status, code: over.code }).toEqual({ status: 400, code: "MetadataTooLarge" });
      expect(await env.s3.exists("up", "form/over.txt")).toBe(false);
      const exact = await postForm("form/exact.txt", { "x-amz-meta-a": "日".repeat(682) + "é" }); // 1 + 2,046 + 2 = 2,049
      expect({ status: exact.status, code: exact.code }).toEqual({ status: 400, code: "MetadataTooLarge" });
      const fits = await postForm("form/fits.txt", { "x-amz-meta-a": "日".repeat(682) + "x" }); // 1 + 2,046 + 1 = 2,048
      expect({ status: fits.status, code: fits.code }).toEqual({ status: 204, code: "" });
    },
    T,
  );
});

/**
 * success_action_redirect is a form field (UTF-8 text) that becomes the 303's Location (bytes): a
 * character above U+00FF threw (500 InternalError after the object was stored), one in
 * U+0080..U+00FF went as a Latin-1 byte, and a control character reached the wire (the bun engine
 * sent a malformed answer, the node engine threw). Now each goes as its UTF-8, percent-encoded.
 */
describe("a non-ASCII success_action_redirect", () => {
  for (const engine of ["bun", "node"] as const)
    test(
      `${engine} engine: the 303's Location carries it percent-encoded as UTF-8`,
      async () => {
        const on = engine === "bun" ? env : await startUploadEnv({ engine }, env.s3);
        try {
          const cases: Array<[string, string]> = [
            ["https://app.example/日本?x=1", "https://app.example/%E6%97%A5%E6%9C%AC?x=1&"],
            ["https://app.example/caf\u00e9", "https://app.example/caf%C3%A9?"],
            ["https://app.example/a\u0001b#t\u00e9", "https://app.example/a%01b?"],
          ];
          for (const [i, [redirect, starts]] of cases.entries()) {
            const a = await postForm(`form/redirect-${engine}-${i}.txt`, { success_action_redirect: redirect }, on);
            expect({ status: a.status, location: a.headers.get("location")?.slice(0, starts.length) }).toEqual({ status: 303, location: starts });
          }
          const last = (await postForm(`form/redirect-${engine}-frag.txt`, { success_action_redirect: "https://app.example/p#t\u00e9" }, on)).headers.get("location");
          expect(last?.endsWith("#t%C3%A9")).toBe(true);
        } finally {
          if (on !== env) await on.stop();
        }
      },
      T,
    );
});
