/**
 * Browser-based uploads through the S3 front (S3's PostObject): a multipart/form-data POST to
 * /<bucket> carrying a SigV4-signed POST policy, against the S3 fixture.
 *
 * - boto3's generate_presigned_post makes the policy and fields; curl -F posts the form (both
 *   real programs), and the file arrives byte-exact, ${filename} replaced, Content-Type and
 *   x-amz-meta-* kept; success_action_status 201 answers S3's PostResponse.
 * - A file above 5 MiB goes up as a multipart upload; one that breaks the policy's
 *   content-length-range past that point is aborted: no object, no upload left behind.
 * - Every refusal is S3's error and stores nothing: a tampered policy or signature, an expired
 *   policy, a field the policy does not name, a key outside its condition, no file, a body that
 *   is not multipart/form-data or is malformed, an unsigned form, an identity without `write`, a
 *   read-only bucket, and a key the bucket's authorizer (OPA) denies.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { boto3Client } from "../clients/boto3.ts";
import { clientTest, runProcess, tempDir, type TempDir } from "../clients/run.ts";
import { OpaServer } from "../fixtures/opa.ts";
import { answerOf, bytesOf, lines, rawRequest, READER, sha256, startUploadEnv, uploadYaml, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";
import { presignPost } from "../../src/fronts/presign.ts";
import { recordingLogger } from "../helpers/logger.ts";
import { startFrontsOn } from "./s3-front-helpers.ts";
import { startProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(60_000);

const MiB = 1024 * 1024;
let env: UploadEnv;
let opa: OpaServer;
let dir: TempDir;
beforeAll(async () => {
  opa = OpaServer.start({
    "yatagarasu/allow": (input: { action: string; key: string }) =>
      !(input.action === "s3:PutObject" && input.key.startsWith("denied/")) && !(input.action === "s3:PutObjectTagging" && input.key.startsWith("notag/")),
  });
  env = await startUploadEnv({ opaUrl: opa.url });
  dir = tempDir("yata-post-");
});
afterAll(async () => {
  dir.remove();
  await env.stop();
  opa.close();
});

interface Post {
  url: string;
  fields: Record<string, string>;
}

/** A POST policy for `key` signed with `creds` (the proxy's own pure signer, like boto3's). */
function policyFor(bucket: string, key: string, o: { creds?: typeof WRITER; max?: number; expiresIn?: number; now?: number } = {}): Post {
  const creds = o.creds ?? WRITER;
  const now = Math.floor((o.now ?? Date.now()) / 1000) * 1000;
  return presignPost({
    origin: env.endpoint,
    bucket,
    key,
    region: "us-east-1",
    accessKeyId: creds.accessKeyId,
    secretAccessKey: creds.secretAccessKey,
    now,
    expiresAt: now + (o.expiresIn ?? 300) * 1000,
    maxSize: o.max ?? 5 * 1024 ** 3,
  });
}

/** POSTs the fields, then the file last (as a browser form does). */
function postForm(p: Post, file: Uint8Array | undefined, extra: Record<string, string> = {}, filename = "f.bin"): Promise<Response> {
  const form = new FormData();
  for (const [k, v] of Object.entries({ ...p.fields, ...extra })) form.append(k, v);
  if (file !== undefined) form.append("file", new Blob([file]), filename);
  return fetch(p.url, { method: "POST", body: form, redirect: "manual" });
}

/** Asserts S3's refusal, that no object is stored under `key`, and that no multipart upload is left. */
async function refused(res: Promise<Response>, status: number, code: string, key: string, message?: RegExp): Promise<void> {
  const a = await answerOf(await res);
  expect({ status: a.status, code: a.code }).toEqual({ status, code });
  if (message) expect(a.message).toMatch(message);
  expect(await env.s3.exists("up", key)).toBe(false);
  expect(env.s3.multipartUploads().filter((u) => u.key === key)).toEqual([]);
}

describe("uploads", () => {
  clientTest("python3", "boto3")("boto3 generate_presigned_post + curl -F: ${filename}, Content-Type and metadata kept, 201 PostResponse, byte-exact", async () => {
    const bytes = bytesOf(100_000, 41);
    const path = join(dir.path, "photo one.png");
    writeFileSync(path, bytes);
    const [made] = await boto3Client({ endpoint: env.endpoint, credentials: WRITER }).run([
      {
        op: "call",
        method: "generate_presigned_post",
        params: {
          Bucket: "up",
          Key: "form/${filename}",
          Fields: { "Content-Type": "image/png", "x-amz-meta-owner": "alice", success_action_status: "201" },
          Conditions: [{ "Content-Type": "image/png" }, { "x-amz-meta-owner": "alice" }, { success_action_status: "201" }, ["content-length-range", 1, 200_000]],
          ExpiresIn: 300,
        },
      },
    ]);
    if (!made!.ok) throw new Error(JSON.stringify(made));
    const p = made!.value as Post;
    expect(p.url).toBe(`${env.endpoint}/up`);
    const args = Object.entries(p.fields).flatMap(([k, v]) => ["-F", `${k}=${v}`]);
    const r = await runProcess(["curl", "-sS", "-i", ...args, "-F", `file=@${path};filename=photo one.png`, p.url]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 201/);
    expect(r.stdout).toContain("<Key>form/photo one.png</Key>");
    expect(r.stdout).toContain(`<ETag>&quot;${new Bun.CryptoHasher("md5").update(bytes).digest("hex")}&quot;</ETag>`);
    const stored = await env.s3.read("up", "form/photo one.png");
    expect(stored === undefined ? "missing" : sha256(stored)).toBe(sha256(bytes));
    const head = await env.s3.client().send(new (await import("@aws-sdk/client-s3")).HeadObjectCommand({ Bucket: "up", Key: "form/photo one.png" }));
    expect([head.ContentType, head.Metadata?.owner]).toEqual(["image/png", "alice"]);
  });

  test("a file above 5 MiB goes up as a multipart upload of 5 MiB parts, byte-exact; 204 with the ETag and Location", async () => {
    const bytes = bytesOf(20 * MiB + 5, 42);
    env.mark();
    const res = await postForm(policyFor("up", "form/big.bin"), bytes);
    expect(res.status).toBe(204);
    expect(res.headers.get("etag")).toMatch(/^"[0-9a-f]{32}-5"$/);
    expect(res.headers.get("location")).toBe(`${env.endpoint}/up/form/big.bin`);
    const stored = await env.s3.read("up", "form/big.bin");
    expect(stored === undefined ? "missing" : sha256(stored)).toBe(sha256(bytes));
    const calls = env.upstreamCalls().map((c) => `${c.method} ${Object.keys(c.query).join(",")}`);
    expect(calls).toEqual(["POST uploads", ...Array(5).fill("PUT partNumber,uploadId"), "POST uploadId"]);
  });

  test("a tagging field (S3's XML Tagging document) tags the object, small or multipart; a malformed or invalid one, or an acl that grants, stores nothing", async () => {
    const tagging = "<Tagging><TagSet><Tag><Key>team</Key><Value>a + b</Value></Tag><Tag><Key>tier 1</Key><Value>gold+</Value></Tag></TagSet></Tagging>";
    for (const [key, size] of [["form/tagged.txt", 10], ["form/tagged-big.bin", 6 * MiB]] as const) {
      const res = await postForm(presignWithExtra(policyFor("up", key), { tagging }), bytesOf(size, 7));
      expect(res.status).toBe(204);
      const tags = await env.s3.client().send(new (await import("@aws-sdk/client-s3")).GetObjectTaggingCommand({ Bucket: "up", Key: key }));
      expect(tags.TagSet?.map((t) => [t.Key, t.Value])).toEqual([["team", "a + b"], ["tier 1", "gold+"]]);
    }
    await refused(postForm(presignWithExtra(policyFor("up", "form/badtag.txt"), { tagging: "<Tagging><TagSet>" }), bytesOf(10, 7)), 400, "MalformedXML", "form/badtag.txt");
    const eleven = `<Tagging><TagSet>${Array.from({ length: 11 }, (_, i) => `<Tag><Key>k${i}</Key><Value>v</Value></Tag>`).join("")}</TagSet></Tagging>`;
    await refused(postForm(presignWithExtra(policyFor("up", "form/manytags.txt"), { tagging: eleven }), bytesOf(10, 7)), 400, "InvalidTag", "form/manytags.txt");
    // ACLs: a private one passes, one that would grant anything is refused as S3 refuses it with ACLs disabled
    expect((await postForm(presignWithExtra(policyFor("up", "form/acl-private.txt"), { acl: "private" }), bytesOf(10, 7))).status).toBe(204);
    await refused(postForm(presignWithExtra(policyFor("up", "form/acl-public.txt"), { acl: "public-read" }), bytesOf(10, 7)), 400, "AccessControlListNotSupported", "form/acl-public.txt");
  });

  test("a versioned store's x-amz-version-id (and its other write headers) reach the form's answer, small or multipart, as S3's PostObject answers them", async () => {
    const headers = { etag: '"0123456789abcdef0123456789abcdef"', "x-amz-version-id": "3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY", "x-amz-server-side-encryption": "AES256" };
    env.s3.faults.set("/up/form/versioned.txt", { kind: "reply", status: 200, body: "", method: "PUT", times: 1, headers });
    const res = await postForm(policyFor("up", "form/versioned.txt"), bytesOf(10, 3));
    expect([res.status, res.headers.get("etag"), res.headers.get("x-amz-version-id"), res.headers.get("x-amz-server-side-encryption")]).toEqual([204, headers.etag, headers["x-amz-version-id"], "AES256"]);
    // multipart: the version id comes with CompleteMultipartUpload's answer (set once the first part is on its way: Create is a POST too)
    const big = postForm(policyFor("up", "form/versioned-big.bin"), bytesOf(6 * MiB, 3));
    await env.s3.waitForRequest((r) => r.method === "PUT" && r.pathname === "/up/form/versioned-big.bin", 30_000);
    const complete = `<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>x</Location><Bucket>up</Bucket><Key>form/versioned-big.bin</Key><ETag>"0123456789abcdef0123456789abcdef-2"</ETag></CompleteMultipartUploadResult>`;
    env.s3.faults.set("/up/form/versioned-big.bin", { kind: "reply", status: 200, body: complete, method: "POST", times: 1, headers: { "x-amz-version-id": "v2-big" } });
    const done = await big;
    expect([done.status, done.headers.get("etag"), done.headers.get("x-amz-version-id")]).toEqual([204, '"0123456789abcdef0123456789abcdef-2"', "v2-big"]);
  });

  test("success_action_status 201: the PostResponse names a key holding a C0 control as U+FFFD (a browser's DOMParser refuses S3's &#x1;), the object is stored under the key itself", async () => {
    const res = await postForm(presignWithExtra(policyFor("up", "form/x\x01y.txt"), { success_action_status: "201" }), new TextEncoder().encode("c"), {}, "c.txt");
    const xml = await res.text();
    expect(res.status).toBe(201);
    expect(xml).toContain("<Key>form/x\ufffdy.txt</Key>");
    expect(new TextDecoder().decode((await env.s3.read("up", "form/x\x01y.txt"))!)).toBe("c");
  });

  test("success_action_redirect: 303 to it with bucket, key and etag", async () => {
    const p = policyFor("up", "form/redirect.txt");
    // the redirect field must be in the policy: re-sign one that names it
    const form = presignWithExtra(p, { success_action_redirect: "https://app.example/done?x=1" });
    const res = await postForm(form, new TextEncoder().encode("r"), {}, "r.txt");
    expect(res.status).toBe(303);
    const loc = new URL(res.headers.get("location")!);
    expect([loc.origin + loc.pathname, loc.searchParams.get("x"), loc.searchParams.get("bucket"), loc.searchParams.get("key"), loc.searchParams.get("etag")]).toEqual([
      "https://app.example/done", "1", "up", "form/redirect.txt", `"${new Bun.CryptoHasher("md5").update("r").digest("hex")}"`,
    ]);
    // a fragment stays last: the parameters go in the query the browser sends
    for (const target of ["https://app.example/done#tab", "https://app.example/done?x=1#a?b"]) {
      const fragged = await postForm(presignWithExtra(policyFor("up", "form/redirect-frag.txt"), { success_action_redirect: target }), new TextEncoder().encode("r"), {}, "r.txt");
      expect(fragged.status).toBe(303);
      const at = new URL(fragged.headers.get("location")!);
      expect([at.hash, at.searchParams.get("key"), at.searchParams.get("x")]).toEqual([target.slice(target.indexOf("#")), "form/redirect-frag.txt", target.includes("x=1") ? "1" : null]);
    }
  });
});

/** `p` with more fields that its policy names (re-signed with WRITER's key, as a server would). */
function presignWithExtra(p: Post, extra: Record<string, string>): Post {
  const policy = JSON.parse(Buffer.from(p.fields.policy!, "base64").toString()) as { expiration: string; conditions: unknown[] };
  for (const [k, v] of Object.entries(extra)) policy.conditions.push({ [k]: v });
  const text = Buffer.from(JSON.stringify(policy)).toString("base64");
  return { url: p.url, fields: { ...p.fields, ...extra, policy: text, "x-amz-signature": sign(text, p.fields["x-amz-date"]!.slice(0, 8)) } };
}

function sign(policy: string, day: string, secret = WRITER.secretAccessKey): string {
  const h = (k: Uint8Array | string, d: string) => new Bun.CryptoHasher("sha256", k).update(d).digest() as Uint8Array;
  const key = h(h(h(h(`AWS4${secret}`, day), "us-east-1"), "s3"), "aws4_request");
  return new Bun.CryptoHasher("sha256", key).update(policy).digest("hex");
}

describe("refusals store nothing", () => {
  const file = new TextEncoder().encode("nope");

  test("a tampered policy or signature: SignatureDoesNotMatch; an expired policy: AccessDenied", async () => {
    const p = policyFor("up", "bad/sig.txt");
    const policy = JSON.parse(Buffer.from(p.fields.policy!, "base64").toString());
    policy.conditions.push(["content-length-range", 0, 10]);
    await refused(postForm({ url: p.url, fields: { ...p.fields, policy: Buffer.from(JSON.stringify(policy)).toString("base64") } }, file), 403, "SignatureDoesNotMatch", "bad/sig.txt");
    await refused(postForm({ url: p.url, fields: { ...p.fields, "x-amz-signature": "0".repeat(64) } }, file), 403, "SignatureDoesNotMatch", "bad/sig.txt");
    await refused(postForm(policyFor("up", "bad/old.txt", { now: Date.now() - 600_000, expiresIn: 60 }), file), 403, "AccessDenied", "bad/old.txt", /Policy expired/);
  });

  test("a field the policy does not name, or a key outside its condition: AccessDenied", async () => {
    await refused(postForm(policyFor("up", "bad/extra.txt"), file, { "x-amz-meta-sneaky": "1" }), 403, "AccessDenied", "bad/extra.txt", /Extra input fields: x-amz-meta-sneaky/);
    const p = policyFor("up", "bad/key.txt");
    await refused(postForm({ url: p.url, fields: { ...p.fields, key: "bad/other.txt" } }, file), 403, "AccessDenied", "bad/other.txt", /Policy Condition failed/);
  });

  test("a Content-MD5 field is checked against the file, small or multipart: a mismatch is BadDigest and stores nothing (the upload aborted), one that is not an MD5 InvalidDigest (non-Latin-1 text or a line break in it too, and in a checksum field InvalidRequest: they were a 500); the right one stores", async () => {
    const md5 = (b: Uint8Array) => new Bun.CryptoHasher("md5").update(b).digest("base64");
    const small = new TextEncoder().encode("hello post");
    const big = bytesOf(6 * MiB, 47);
    const other = md5(new TextEncoder().encode("other"));
    await refused(postForm(presignWithExtra(policyFor("up", "bad/md5.txt"), { "Content-MD5": other }), small), 400, "BadDigest", "bad/md5.txt");
    await refused(postForm(presignWithExtra(policyFor("up", "bad/md5.bin"), { "Content-MD5": other }), big), 400, "BadDigest", "bad/md5.bin");
    await refused(postForm(presignWithExtra(policyFor("up", "bad/md5x.txt"), { "Content-MD5": "not-an-md5" }), small), 400, "InvalidDigest", "bad/md5x.txt");
    // (a value no header could hold, non-Latin-1 text or a line break inside: the same refusals, not a 500)
    await refused(postForm(presignWithExtra(policyFor("up", "bad/md5u.txt"), { "Content-MD5": "日本" }), small), 400, "InvalidDigest", "bad/md5u.txt");
    await refused(postForm(presignWithExtra(policyFor("up", "bad/crcnl.txt"), { "x-amz-checksum-crc32": "AAAA\r\nAAAA" }), small), 400, "InvalidRequest", "bad/crcnl.txt", /^Value for x-amz-checksum-crc32 header is invalid\.$/);
    expect((await postForm(presignWithExtra(policyFor("up", "form/md5.txt"), { "Content-MD5": md5(small) }), small)).status).toBe(204);
    expect(new TextDecoder().decode((await env.s3.read("up", "form/md5.txt"))!)).toBe("hello post");
    expect((await postForm(presignWithExtra(policyFor("up", "form/md5.bin"), { "Content-MD5": md5(big) }), big)).status).toBe(204);
    expect(await env.s3.exists("up", "form/md5.bin")).toBe(true);
  });

  clientTest("python3", "boto3")(
    "boto3 generate_presigned_post with an x-amz-checksum-* field: the file is checked against it, small or multipart (a mismatch is BadDigest, nothing stored), the small one stored with it; two, or an invalid value, S3's InvalidRequest; -sha512 501 (all were dropped: a wrong checksum answered 204)",
    async () => {
      const small = new TextEncoder().encode("checked form");
      const big = bytesOf(6 * MiB, 49);
      const crc32 = (b: Uint8Array) => Buffer.from(new Uint8Array(new Uint32Array([Bun.hash.crc32(b)]).buffer).reverse()).toString("base64");
      const sha256b64 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("base64");
      const wrong = crc32(new TextEncoder().encode("other"));
      const forms: Array<[string, Record<string, string>]> = [
        ["bad/crc.txt", { "x-amz-checksum-crc32": wrong }],
        ["bad/crc.bin", { "x-amz-checksum-crc32": wrong }],
        ["bad/two.txt", { "x-amz-checksum-crc32": crc32(small), "x-amz-checksum-sha256": sha256b64(small) }],
        ["bad/invalid.txt", { "x-amz-checksum-sha256": "not-a-sha256" }],
        ["bad/sha512.txt", { "x-amz-checksum-sha512": "AAAA" }],
        ["form/crc.txt", { "x-amz-checksum-crc32": crc32(small) }],
        ["form/sha256.bin", { "x-amz-checksum-sha256": sha256b64(big) }],
      ];
      const made = await boto3Client({ endpoint: env.endpoint, credentials: WRITER }).run(
        forms.map(([key, fields]) => ({ op: "call", method: "generate_presigned_post", params: { Bucket: "up", Key: key, Fields: fields, Conditions: Object.entries(fields).map(([k, v]) => ({ [k]: v })), ExpiresIn: 300 } })),
      );
      const post = (i: number, file: Uint8Array) => {
        if (!made[i]!.ok) throw new Error(JSON.stringify(made[i]));
        return postForm(made[i]!.value as Post, file);
      };
      await refused(post(0, small), 400, "BadDigest", "bad/crc.txt", /^The CRC32 you specified did not match the calculated checksum\.$/);
      await refused(post(1, big), 400, "BadDigest", "bad/crc.bin");
      await refused(post(2, small), 400, "InvalidRequest", "bad/two.txt", /^Expecting a single x-amz-checksum- header/);
      await refused(post(3, small), 400, "InvalidRequest", "bad/invalid.txt", /^Value for x-amz-checksum-sha256 header is invalid\.$/);
      await refused(post(4, small), 501, "NotImplemented", "bad/sha512.txt", /x-amz-checksum-sha512/);
      expect([(await post(5, small)).status, (await post(6, big)).status]).toEqual([204, 204]);
      const head = await env.s3.client().send(new (await import("@aws-sdk/client-s3")).HeadObjectCommand({ Bucket: "up", Key: "form/crc.txt", ChecksumMode: "ENABLED" }));
      expect(head.ChecksumCRC32).toBe(crc32(small));
      const stored = await env.s3.read("up", "form/sha256.bin");
      expect(stored === undefined ? "missing" : sha256(stored)).toBe(sha256(big));
    },
  );

  test("an x-amz-checksum-algorithm field alone (generate_presigned_post(Fields={'x-amz-checksum-algorithm': 'CRC32'})) has the small file stored with that checksum, computed by the proxy (it was ignored: stored with none); beside a checksum value of the same algorithm the value is checked and stored, beside one of another S3's InvalidRequest (it was accepted, the algorithm ignored); SHA512 501, an unknown one InvalidRequest", async () => {
    const small = new TextEncoder().encode("checksum asked for");
    const crc32 = (b: Uint8Array) => Buffer.from(new Uint8Array(new Uint32Array([Bun.hash.crc32(b)]).buffer).reverse()).toString("base64");
    const sha256b64 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("base64");
    await refused(postForm(presignWithExtra(policyFor("up", "bad/alg512.txt"), { "x-amz-checksum-algorithm": "SHA512" }), small), 501, "NotImplemented", "bad/alg512.txt", /SHA512/);
    await refused(postForm(presignWithExtra(policyFor("up", "bad/algx.txt"), { "x-amz-checksum-algorithm": "CRC33" }), small), 400, "InvalidRequest", "bad/algx.txt", /^Value for x-amz-checksum-algorithm header is invalid\.$/);
    expect((await postForm(presignWithExtra(policyFor("up", "form/alg.txt"), { "x-amz-checksum-algorithm": "crc32" }), small)).status).toBe(204);
    await refused(postForm(presignWithExtra(policyFor("up", "bad/alg-other.txt"), { "x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-sha256": sha256b64(small) }), small), 400, "InvalidRequest", "bad/alg-other.txt", /^Value for x-amz-checksum-algorithm header is invalid\.$/);
    expect((await postForm(presignWithExtra(policyFor("up", "form/alg-sha.txt"), { "x-amz-checksum-algorithm": "sha256", "x-amz-checksum-sha256": sha256b64(small) }), small)).status).toBe(204);
    const { HeadObjectCommand } = await import("@aws-sdk/client-s3");
    const head = (Key: string) => env.s3.client().send(new HeadObjectCommand({ Bucket: "up", Key, ChecksumMode: "ENABLED" }));
    const [alg, both] = await Promise.all([head("form/alg.txt"), head("form/alg-sha.txt")]);
    expect([alg.ChecksumCRC32, both.ChecksumCRC32, both.ChecksumSHA256]).toEqual([crc32(small), undefined, sha256b64(small)]);
  });

  test("the upload the proxy made for a large file refused as gone (another client aborted it: NoSuchUpload, or a codeless 404) is S3's 500 InternalError for a POST whose store failed, not the upload's NoSuchUpload the form's client never made; nothing stored, no upload left", async () => {
    const big = bytesOf(6 * MiB, 48);
    env.s3.faults.set("/up/bad/lost.bin", { kind: "error", status: 404, code: "NoSuchUpload", method: "PUT" });
    env.s3.faults.set("/up/bad/lost2.bin", { kind: "reply", status: 404, body: "", method: "PUT" });
    try {
      await refused(postForm(policyFor("up", "bad/lost.bin"), big), 500, "InternalError", "bad/lost.bin");
      await refused(postForm(policyFor("up", "bad/lost2.bin"), big), 500, "InternalError", "bad/lost2.bin");
    } finally {
      env.s3.faults.clear();
    }
  });

  test("Object Lock, customer (SSE-C) and KMS key fields are refused as PutObject's headers are (they were dropped: the object stored unlocked, with the bucket's encryption); AES256 passes", async () => {
    const cases: Array<[Record<string, string>, number, string]> = [
      [{ "x-amz-object-lock-mode": "COMPLIANCE", "x-amz-object-lock-retain-until-date": "2030-01-01T00:00:00Z" }, 400, "InvalidRequest"],
      [{ "x-amz-object-lock-legal-hold": "ON" }, 400, "InvalidRequest"],
      // (a storage class a general-purpose bucket does not take, as PutObject's header: it was accepted and dropped)
      [{ "x-amz-storage-class": "EXPRESS_ONEZONE" }, 400, "InvalidStorageClass"],
      [{ "x-amz-storage-class": "BOGUS" }, 400, "InvalidStorageClass"],
      [{ "x-amz-server-side-encryption": "aws:kms" }, 501, "NotImplemented"],
      [{ "x-amz-server-side-encryption-customer-algorithm": "AES256", "x-amz-server-side-encryption-customer-key": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" }, 501, "NotImplemented"],
    ];
    for (const [extra, status, code] of cases) await refused(postForm(presignWithExtra(policyFor("up", "bad/lock.txt"), extra), file), status, code, "bad/lock.txt");
    expect((await postForm(presignWithExtra(policyFor("up", "form/sse.txt"), { "x-amz-server-side-encryption": "AES256" }), file)).status).toBe(204);
  });

  test("content-length-range: a file past the limit is EntityTooLarge, also after parts went up (the upload is aborted); below it EntityTooSmall", async () => {
    await refused(postForm(policyFor("up", "bad/big.bin", { max: 10 * MiB }), bytesOf(12 * MiB, 43)), 400, "EntityTooLarge", "bad/big.bin");
    // the bound; no ProposedSize: the file's size is unknown while its end is unread (never the bytes read when the limit was passed)
    const a = await answerOf(await postForm(policyFor("up", "bad/big.bin", { max: 1000 }), bytesOf(3 * MiB + 7, 44)));
    expect([a.status, a.code, /<ProposedSize>(\d+)</.exec(a.body)?.[1], /<MaxSizeAllowed>(\d+)</.exec(a.body)?.[1]]).toEqual([400, "EntityTooLarge", undefined, "1000"]);
    const p = policyFor("up", "bad/small.bin");
    await refused(postForm(presignWithExtraRange(p, 10, 100), file), 400, "EntityTooSmall", "bad/small.bin");
  });

  test("no file, not multipart/form-data, a malformed body, an unsigned form: S3's errors", async () => {
    await refused(postForm(policyFor("up", "bad/nofile.txt"), undefined), 400, "IncorrectNumberOfFilesInPostRequest", "bad/nofile.txt");
    await refused(fetch(`${env.endpoint}/up`, { method: "POST", body: "key=x", headers: { "content-type": "application/x-www-form-urlencoded" } }), 412, "PreconditionFailed", "x");
    await refused(fetch(`${env.endpoint}/up`, { method: "POST", body: "garbage without a boundary", headers: { "content-type": "multipart/form-data; boundary=XYZ" } }), 400, "MalformedPOSTRequest", "x");
    const form = new FormData();
    form.append("key", "bad/anon.txt");
    form.append("file", new Blob([file]), "a.txt");
    await refused(fetch(`${env.endpoint}/up`, { method: "POST", body: form }), 403, "AccessDenied", "bad/anon.txt");
  });

  test("a form whose file comes first (an HTML form with the file input on top): its fields, after the file, are ignored as by S3, and S3's words name the cause (it was AccessDenied, as if the form were unsigned)", async () => {
    const p = policyFor("up", "bad/file-first.txt");
    const form = new FormData();
    form.append("file", new Blob([file]), "a.txt");
    for (const [k, v] of Object.entries(p.fields)) form.append(k, v);
    await refused(fetch(p.url, { method: "POST", body: form }), 400, "InvalidArgument", "bad/file-first.txt", /must contain a field named (&apos;|')key(&apos;|').+check the order of the fields/);
  });

  test("the fields before the file are at most 20 KiB, their names counted too: fields with long names and empty values are MaxPostPreDataLengthExceeded (they were read without limit, all held)", async () => {
    const p = policyFor("up", "bad/names.txt");
    const empty: Record<string, string> = {};
    for (let i = 0; i < 30; i++) empty[`x-ignore-${String(i).padStart(3, "0")}-${"n".repeat(1000)}`] = "";
    await refused(postForm(p, file, empty), 400, "MaxPostPreDataLengthExceeded", "bad/names.txt");
    // under the limit, the same kind of fields pass (x-ignore-* need no condition)
    const few = Object.fromEntries(Object.entries(empty).slice(0, 5));
    expect((await postForm(policyFor("up", "ok/names.txt"), file, few)).status).toBe(204);
  });

  test("the fields that become the object's headers fit S3's PUT limits: over 8 KB of headers is RequestHeaderSectionTooLarge (they went upstream, up to ~62 KB of head), over 2 KB of x-amz-meta-* MetadataTooLarge; under them the object is stored with them", async () => {
    // (conditions by prefix: the values named in the policy too would pass the fields' 20 KiB first)
    const startsWith = (p: Post, fields: Record<string, string>): Post => {
      const policy = JSON.parse(Buffer.from(p.fields.policy!, "base64").toString()) as { conditions: unknown[] };
      for (const k of Object.keys(fields)) policy.conditions.push(["starts-with", `$${k}`, ""]);
      const text = Buffer.from(JSON.stringify(policy)).toString("base64");
      return { url: p.url, fields: { ...p.fields, ...fields, policy: text, "x-amz-signature": sign(text, p.fields["x-amz-date"]!.slice(0, 8)) } };
    };
    const headers = (n: number) => ({ "Content-Disposition": `attachment; filename="${"d".repeat(n)}.txt"`, "Cache-Control": `max-age=60, ${"x".repeat(n)}` });
    await refused(postForm(startsWith(policyFor("up", "bad/heads.txt"), headers(4100)), file), 400, "RequestHeaderSectionTooLarge", "bad/heads.txt", /take \d+ bytes as headers; S3 takes at most 8192 bytes/);
    await refused(postForm(startsWith(policyFor("up", "bad/meta.txt"), { "x-amz-meta-big": "m".repeat(2100) }), file), 400, "MetadataTooLarge", "bad/meta.txt");
    expect((await postForm(startsWith(policyFor("up", "ok/heads.txt"), headers(3500)), file)).status).toBe(204);
    const head = await env.s3.client().send(new (await import("@aws-sdk/client-s3")).HeadObjectCommand({ Bucket: "up", Key: "ok/heads.txt" }));
    expect(head.CacheControl).toBe(headers(3500)["Cache-Control"]);
  });

  test("a key (or any field) that is not valid UTF-8 is MalformedPOSTRequest, never rewritten to U+FFFD (which made two keys one)", async () => {
    const p = policyFor("up", "po/");
    // the form written by hand: FormData would encode the value as UTF-8 itself
    const boundary = "----yataInvalidUtf8";
    const parts: Buffer[] = [];
    const field = (name: string, value: Buffer) => parts.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n`), value, Buffer.from("\r\n"));
    for (const [k, v] of Object.entries(p.fields)) if (k !== "key") field(k, Buffer.from(v));
    field("key", Buffer.concat([Buffer.from("po/"), Buffer.from([0xff]), Buffer.from("A")]));
    parts.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="a.txt"\r\n\r\n`), Buffer.from("x"), Buffer.from(`\r\n--${boundary}--\r\n`));
    const res = await fetch(p.url, { method: "POST", body: Buffer.concat(parts), headers: { "content-type": `multipart/form-data; boundary=${boundary}` } });
    await refused(Promise.resolve(res), 400, "MalformedPOSTRequest", "po/\uFFFDA", /not valid UTF-8/);
  });

  test("${filename} takes the text after the last slash or backslash of the file's name, as S3 documents (a browser sends a backslash as it is)", async () => {
    // AWS's example: C:\Program Files\directory1\file.txt -> file.txt. The form written by hand, as
    // Chromium writes it (a backslash unescaped; only " and newlines are percent-encoded).
    for (const [filename, key] of [["C:\\Program Files\\directory1\\file.txt", "bs/file.txt"], ["back\\slash.txt", "bs/slash.txt"], ["dir/sub\\x%22y.txt", "bs/x%22y.txt"]] as const) {
      const p = policyFor("up", "bs/${filename}");
      const boundary = "----yataBackslash";
      const parts: Buffer[] = [];
      for (const [k, v] of Object.entries(p.fields)) parts.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
      parts.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${filename}"\r\n\r\n`), Buffer.from("bs"), Buffer.from(`\r\n--${boundary}--\r\n`));
      const res = await fetch(p.url, { method: "POST", body: Buffer.concat(parts), headers: { "content-type": `multipart/form-data; boundary=${boundary}` } });
      expect([filename, res.status]).toEqual([filename, 204]);
      expect([filename, await env.s3.exists("up", key)]).toEqual([filename, true]);
    }
  });

  test("${filename} is the file's name as it is: a `$` in it is no replacement pattern (a file named $$cash.pdf was stored as $cash.pdf, x$`y as x<the key before ${filename}>y)", async () => {
    for (const filename of ["$$cash.pdf", "a$&b.txt", "x$`y.txt", "p$'q.txt"]) {
      const res = await postForm(policyFor("up", "dollar/${filename}"), new TextEncoder().encode("$"), {}, filename);
      expect([filename, res.status]).toEqual([filename, 204]);
      expect([filename, await env.s3.exists("up", `dollar/${filename}`)]).toEqual([filename, true]);
    }
  });

  test("a form submitted with no file chosen (a browser sends filename=\"\" and no bytes) is stored as a 0-byte object, as S3 stores it: ${filename} is empty; content-length-range from 1 refuses it", async () => {
    // S3 refuses a form without a `file` field (above), not an empty one: `file` is "file or text
    // content", and a 0-byte object is within the default content-length-range [0, max]
    const boundary = "----yataNoFileChosen";
    const noFile = (p: Post) => {
      const parts = Object.entries(p.fields).map(([k, v]) => `--${boundary}\r\ncontent-disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`);
      parts.push(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename=""\r\ncontent-type: application/octet-stream\r\n\r\n\r\n--${boundary}--\r\n`);
      return fetch(p.url, { method: "POST", body: parts.join(""), headers: { "content-type": `multipart/form-data; boundary=${boundary}` } });
    };
    expect((await noFile(policyFor("up", "nofile/${filename}"))).status).toBe(204);
    expect((await env.s3.read("up", "nofile/"))?.byteLength).toBe(0);
    await env.s3.put("up", "nofile/fixed.txt", "before");
    expect((await noFile(policyFor("up", "nofile/fixed.txt"))).status).toBe(204);
    expect((await env.s3.read("up", "nofile/fixed.txt"))?.byteLength).toBe(0);
    await refused(noFile(policyFor("up", "${filename}")), 400, "InvalidArgument", "", /User key must have a length greater than 0/);
    await refused(noFile(presignWithExtraRange(policyFor("up", "nofile/guarded.txt"), 1, 100)), 400, "EntityTooSmall", "nofile/guarded.txt");
  });

  test("who may write: an identity without `write`, a read-only bucket, a key the authorizer denies: AccessDenied", async () => {
    await refused(postForm(policyFor("up", "bad/reader.txt", { creds: READER }), file), 403, "AccessDenied", "bad/reader.txt");
    await refused(postForm(policyFor("ro", "bad/ro.txt"), file), 403, "AccessDenied", "bad/ro.txt");
    opa.requests.length = 0;
    await refused(postForm(policyFor("opa", "denied/x.txt"), file), 403, "AccessDenied", "denied/x.txt");
    expect(opa.requests.map((r) => (r.body as { input: { action: string; key: string } }).input).map((i) => `${i.action} ${i.key}`)).toEqual(["s3:PutObject denied/x.txt"]);
    expect((await postForm(policyFor("opa", "allowed/x.txt"), file)).status).toBe(204);
  });

  test("a form its grants refuse is one authentication outcome, forbidden (not success as well), as any S3-front request's", async () => {
    const auth = (r: string) => {
      for (const line of env.app.metrics.render().split("\n")) if (line.startsWith(`yatagarasu_auth_total{result="${r}"} `)) return Number(line.split(" ")[1]);
      return 0;
    };
    const before = { success: auth("success"), forbidden: auth("forbidden") };
    await refused(postForm(policyFor("up", "bad/reader-metric.txt", { creds: READER }), file), 403, "AccessDenied", "bad/reader-metric.txt");
    expect({ success: auth("success") - before.success, forbidden: auth("forbidden") - before.forbidden }).toEqual({ success: 0, forbidden: 1 });
    // an allowed form is one success
    expect((await postForm(policyFor("up", "ok/metric.txt"), file)).status).toBe(204);
    expect({ success: auth("success") - before.success, forbidden: auth("forbidden") - before.forbidden }).toEqual({ success: 1, forbidden: 1 });
  });

  test("a tagging field also needs s3:PutObjectTagging, as x-amz-tagging on PutObject does: a policy refusing tags under notag/ refuses the form, an untagged form passes", async () => {
    const tagging = "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>";
    opa.requests.length = 0;
    await refused(postForm(presignWithExtra(policyFor("opa", "notag/t.txt"), { tagging }), file), 403, "AccessDenied", "notag/t.txt");
    expect(opa.requests.map((r) => (r.body as { input: { action: string; key: string } }).input).map((i) => `${i.action} ${i.key}`)).toEqual(["s3:PutObject notag/t.txt", "s3:PutObjectTagging notag/t.txt"]);
    expect(await env.s3.exists("up", "notag/t.txt")).toBe(false);
    expect((await postForm(policyFor("opa", "notag/plain.txt"), file)).status).toBe(204);
    expect((await postForm(presignWithExtra(policyFor("opa", "tagok/t.txt"), { tagging }), file)).status).toBe(204);
  });
});

function presignWithExtraRange(p: Post, min: number, max: number): Post {
  const policy = JSON.parse(Buffer.from(p.fields.policy!, "base64").toString()) as { conditions: unknown[] };
  policy.conditions = policy.conditions.filter((c) => !(Array.isArray(c) && c[0] === "content-length-range"));
  policy.conditions.push(["content-length-range", min, max]);
  const text = Buffer.from(JSON.stringify(policy)).toString("base64");
  return { url: p.url, fields: { ...p.fields, policy: text, "x-amz-signature": sign(text, p.fields["x-amz-date"]!.slice(0, 8)) } };
}

test("a client that goes away after a part went up: the multipart upload is aborted and no object is stored", async () => {
  const p = policyFor("up", "cut/away.bin");
  const boundary = "----cutboundary";
  let head = "";
  for (const [k, v] of Object.entries(p.fields)) head += `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`;
  head += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="away.bin"\r\n\r\n`;
  const sent = bytesOf(9 * MiB, 44);
  let drained = () => {};
  const socket = await Bun.connect({ hostname: "127.0.0.1", port: env.port, socket: { data() {}, drain: () => drained() } });
  socket.write(`POST /up HTTP/1.1\r\nHost: 127.0.0.1:${env.port}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${head.length + 20 * MiB}\r\n\r\n${head}`);
  let at = 0;
  // (this upload's requests: the fixture's log also holds the earlier tests')
  const ours = (r: { pathname: string }) => r.pathname.endsWith("/cut/away.bin");
  const partUp = env.s3.waitForRequest((r) => ours(r) && r.method === "PUT" && r.query.uploadId !== undefined && r.status === 200, 30_000);
  while (at < sent.length) {
    const chunk = sent.subarray(at, at + 256 * 1024);
    const wait = new Promise<void>((resolve) => (drained = resolve));
    const n = socket.write(chunk);
    at += n;
    if (n < chunk.length) await wait; // the socket's buffer is full: on to its drain
  }
  await partUp;
  socket.end();
  const aborted = await env.s3.waitForRequest((r) => ours(r) && r.method === "DELETE" && r.query.uploadId !== undefined && r.status !== 0, 30_000);
  expect(aborted.status).toBe(204);
  expect(await env.s3.exists("up", "cut/away.bin")).toBe(false);
  expect(env.s3.multipartUploads().filter((u) => u.key === "cut/away.bin")).toEqual([]);
  // its part buffers went back to the process's budget before the abort
  expect(env.app.formBuffers.reserved).toBe(0);
});

/** Neither an object nor a multipart upload is left under `key`. */
async function nothingLeft(key: string): Promise<void> {
  expect(await env.s3.exists("up", key)).toBe(false);
  expect(env.s3.multipartUploads().filter((u) => u.key === key)).toEqual([]);
}

/**
 * A form of 20 MiB announced whose client goes away once a part's worth went and the upload's
 * Create reached the upstream, answered `delayMs` late; resolves once the client is gone, with
 * the Create's answer and the upload's abort as the upstream sees them.
 */
async function leaveDuringCreate(key: string, delayMs: number) {
  const p = policyFor("up", key);
  const boundary = "----createcut";
  let head = "";
  for (const [k, v] of Object.entries(p.fields)) head += `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`;
  head += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.bin"\r\n\r\n`;
  // (the Create answered late, as a store under load may: the client is gone meanwhile)
  env.s3.faults.set(`/up/${key}`, { kind: "delay", ms: delayMs, method: "POST", times: 1 });
  const ours = (r: { pathname: string }) => r.pathname.endsWith(`/${key}`);
  const aborted = env.s3.waitForRequest((r) => ours(r) && r.method === "DELETE" && r.query.uploadId !== undefined && r.status !== 0, 10_000);
  const answered = env.s3.waitForRequest((r) => ours(r) && r.method === "POST" && r.status !== 0, 10_000);
  let drained = () => {};
  const socket = await Bun.connect({ hostname: "127.0.0.1", port: env.port, socket: { data() {}, drain: () => drained() } });
  // (the Create's arrival at the upstream: logged before its delay)
  const created = env.s3.waitForRequest((r) => ours(r) && r.method === "POST", 10_000);
  socket.write(`POST /up HTTP/1.1\r\nHost: 127.0.0.1:${env.port}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${head.length + 20 * MiB}\r\n\r\n${head}`);
  // a part's worth and a bit: the Create goes out; once it reached the upstream, the client is gone
  const sent = bytesOf(5 * MiB + 4096, 45);
  let gone = false;
  const writing = (async () => {
    for (let at = 0; at < sent.length && !gone; ) {
      const chunk = sent.subarray(at, at + 256 * 1024);
      const wait = new Promise<void>((resolve) => (drained = resolve));
      const n = socket.write(chunk);
      at += n;
      if (n < chunk.length) await wait;
    }
  })();
  await created;
  gone = true;
  socket.terminate();
  drained();
  await writing;
  return { aborted, answered };
}

test("a client that goes away while the multipart upload's Create is on its way: the upload the upstream made is aborted all the same (it was left behind, its id never read)", async () => {
  const key = "cut/in-create.bin";
  try {
    const { aborted } = await leaveDuringCreate(key, 400);
    expect((await aborted).status).toBe(204);
  } finally {
    env.s3.faults.clear();
  }
  await nothingLeft(key);
});

test("a client gone while a slow Create is on its way is let go at once: its buffers (the shared form budget) are not held until the Create is answered (up to 30 s), the upload still aborted", async () => {
  const key = "cut/slow-create.bin";
  try {
    const { aborted, answered } = await leaveDuringCreate(key, 700);
    const first = await Promise.race([
      answered.then(() => "the Create answered"),
      (async () => {
        while (env.app.formBuffers.reserved > 0) await Bun.sleep(5);
        return "buffers released";
      })(),
    ]);
    expect(first).toBe("buffers released");
    expect((await aborted).status).toBe(204);
  } finally {
    env.s3.faults.clear();
  }
  await nothingLeft(key);
  expect(env.app.formBuffers.reserved).toBe(0);
});

test("a form upload cut by the shutdown's drain has its multipart upload aborted before the exit: the process waits for an abort slower than the cut requests' ~1 s (it exited first, the abort dropped, nothing logged)", async () => {
  const key = "cut/at-shutdown.bin";
  // (the spawned server, so that its shutdown runs: info lines, to read its s3_port)
  await using px = await startProxy(uploadYaml(env.s3.endpoint, { opaUrl: opa.url }).replace("level: error", "level: info"));
  const s3Port = Number(px.logs().find((l) => l.msg === "listening")?.s3_port);
  const p = policyFor("up", key);
  const boundary = "----shutdowncut";
  let head = "";
  for (const [k, v] of Object.entries(p.fields)) head += `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`;
  head += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.bin"\r\n\r\n`;
  const ours = (r: { pathname: string }) => r.pathname.endsWith(`/${key}`);
  // (the abort answered late, as a store under load may)
  env.s3.faults.set(`/up/${key}`, { kind: "delay", ms: 1500, method: "DELETE", times: 1 });
  let exitedAt = 0;
  const socket = await Bun.connect({ hostname: "127.0.0.1", port: s3Port, socket: { data() {} } });
  try {
    const part = env.s3.waitForRequest((r) => ours(r) && r.method === "PUT" && r.query.partNumber === "1", 10_000);
    // a part's worth and a bit, of a file said to be 20 MiB: the first part goes up, the rest never comes
    socket.write(`POST /up HTTP/1.1\r\nHost: 127.0.0.1:${s3Port}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${head.length + 20 * MiB}\r\n\r\n${head}`);
    const sent = bytesOf(5 * MiB + 4096, 46);
    for (let at = 0; at < sent.length; ) {
      at += socket.write(sent.subarray(at, at + 256 * 1024));
      await Bun.sleep(0);
    }
    await part;
    px.signal("SIGTERM");
    await px.waitForLog((l) => l.msg === "draining");
    px.signal("SIGTERM"); // (a second signal cuts the drain at once)
    expect(await px.exited).toBe(0);
    exitedAt = Date.now();
  } finally {
    socket.terminate();
    env.s3.faults.clear();
  }
  // the process waited for the abort's answer (the fixture carries out a request whose client is gone: the proxy's exit is what tells)
  const abort = env.s3.requests.find((r) => ours(r) && r.method === "DELETE" && r.query.uploadId !== undefined);
  expect({ status: abort?.status, answered: exitedAt - (abort?.at ?? exitedAt) >= 1_400 }).toEqual({ status: 204, answered: true });
  expect(env.s3.multipartUploads().filter((u) => u.key === key)).toEqual([]);
  expect(px.logs().filter((l) => l.level === "warn" && String(l.msg).includes("multipart upload"))).toEqual([]);
});

test("a client that stops sending half-way through the form (still connected) is answered S3's 400 RequestTimeout, not left to the listener's idle timeout; nothing stored, no upload left", async () => {
  const { formBodyLimits } = await import("../../src/fronts/s3/post-object.ts");
  const saved = { ...formBodyLimits };
  // (the bound lowered: production waits S3's 20 s, or the listener's slow-body rule's 55 s)
  formBodyLimits.idleMs = 300;
  formBodyLimits.slow = { bytes: 1024 * 1024 * 1024, waitMs: 1_000 };
  try {
    for (const [key, inFile] of [["stall/in-fields.bin", false], ["stall/in-file.bin", true]] as const) {
      const p = policyFor("up", key);
      const boundary = "----stallboundary";
      let form = "";
      for (const [k, v] of Object.entries(p.fields)) form += `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`;
      form += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="s.bin"\r\n\r\n` + "x".repeat(1000);
      // half of the form (in the fields, or in the file), then nothing more
      const sent = inFile ? form : form.slice(0, form.indexOf("policy") + 20);
      const started = performance.now();
      const reply = await rawRequest(env.port, lines("POST /up HTTP/1.1", { host: `127.0.0.1:${env.port}`, "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": String(form.length * 2) }), [new TextEncoder().encode(sent)], { timeoutMs: 20_000 });
      expect({ key, status: reply.status, code: /<Code>([^<]*)</.exec(reply.body)?.[1] }).toEqual({ key, status: 400, code: "RequestTimeout" });
      expect(reply.body).toContain("Your socket connection to the server was not read from or written to within the timeout period");
      expect(performance.now() - started).toBeLessThan(10_000);
      expect(await env.s3.exists("up", key)).toBe(false);
      expect(env.s3.multipartUploads().filter((u) => u.key === key)).toEqual([]);
    }
  } finally {
    Object.assign(formBodyLimits, saved);
  }
});

test("form uploads share the process's buffer budget (s3_api.form_upload_buffer_mib): one that would exceed it is 503 SlowDown with Retry-After, nothing stored; the budget is whole again after", async () => {
  const budget = env.app.formBuffers;
  const max = budget.max;
  budget.max = 1024 * 1024;
  try {
    const res = await postForm(policyFor("up", "budget/big.bin"), bytesOf(3 * MiB, 45));
    const a = await answerOf(res);
    expect({ status: a.status, code: a.code, retry: res.headers.get("retry-after") }).toEqual({ status: 503, code: "SlowDown", retry: "1" });
    expect(await env.s3.exists("up", "budget/big.bin")).toBe(false);
    expect((await postForm(policyFor("up", "budget/small.bin"), bytesOf(100_000, 46))).status).toBe(204);
    expect(budget.reserved).toBe(0);
  } finally {
    budget.max = max;
  }
});

// A form that fails while a part is in flight (here BadDigest, told once the file's end is read,
// after the first 5 MiB part went up) gave its buffers back to the budget before that part settled:
// up to a part's 5 MiB per failing upload held outside s3_api.form_upload_buffer_mib. Seen at the
// budget's release: the part's answer must have come first.
test("a form upload that fails while a part is in flight keeps its buffers in the shared budget until that part settled", async () => {
  const key = "budget/in-flight.bin";
  const budget = env.app.formBuffers;
  const partAnswered = () => env.s3.requests.some((r) => r.pathname.endsWith(`/${key}`) && r.method === "PUT" && r.query.uploadId !== undefined && r.status !== 0);
  const released: boolean[] = [];
  const release = budget.release;
  budget.release = (n: number) => {
    released.push(partAnswered());
    release.call(budget, n);
  };
  // (the part answered 300 ms late: the form's end is read, and refused, meanwhile)
  env.s3.faults.set(`/up/${key}`, { kind: "delay", ms: 300, method: "PUT", times: 1 });
  try {
    const other = new Bun.CryptoHasher("md5").update("other").digest("base64");
    await refused(postForm(presignWithExtra(policyFor("up", key), { "Content-MD5": other }), bytesOf(6 * MiB, 49)), 400, "BadDigest", key);
  } finally {
    budget.release = release;
    env.s3.faults.clear();
  }
  expect(released).toEqual([true]);
  expect(budget.reserved).toBe(0);
});

test("the form's credential is checked against the config live when its fields arrive: a key removed (or a grant narrowed) by a reload meanwhile is refused, nothing stored", async () => {
  const own = await startUploadEnv();
  try {
    const base = uploadYaml(own.s3.endpoint);
    const reloadTo = async (text: string) => expect((await own.app.reload(undefined, { text, file: "post-reload.yaml", baseDir: dir.path })).ok).toBe(true);
    // The form's first field, then a pause in which the config changes, then the rest.
    const trickled = async (key: string, change: () => Promise<void>, bucket = "up") => {
      const p = presignPost({ origin: own.endpoint, bucket, key, region: "us-east-1", accessKeyId: WRITER.accessKeyId, secretAccessKey: WRITER.secretAccessKey, now: Date.now(), expiresAt: Date.now() + 300_000, maxSize: 1000 });
      const b = "----reloadboundary";
      const part = (n: string, v: string) => `--${b}\r\nContent-Disposition: form-data; name="${n}"\r\n\r\n${v}\r\n`;
      const names = Object.keys(p.fields);
      let push!: (s: string) => void;
      let end!: () => void;
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          push = (s) => c.enqueue(new TextEncoder().encode(s));
          end = () => c.close();
        },
      });
      push(part(names[0]!, p.fields[names[0]!]!));
      const pending = fetch(p.url, { method: "POST", headers: { "content-type": `multipart/form-data; boundary=${b}` }, body, duplex: "half" } as RequestInit);
      // the request is in the front (admitted, its form being read) before the config changes
      while (own.app.uploads.inFlight === 0) await Bun.sleep(5);
      await change();
      push(names.slice(1).map((n) => part(n, p.fields[n]!)).join("") + `--${b}\r\nContent-Disposition: form-data; name="file"; filename="f.txt"\r\n\r\nwritten after the change\r\n--${b}--\r\n`);
      end();
      return answerOf(await pending);
    };
    const gone = base.replace(/^ {4}- \{ access_key_id: "AKIDUPLOADWRITER".*\n.*\n/m, "");
    expect(gone).not.toContain(WRITER.accessKeyId);
    const removed = await trickled("reload/removed.txt", () => reloadTo(gone));
    expect({ status: removed.status, code: removed.code }).toEqual({ status: 403, code: "InvalidAccessKeyId" });
    expect(await own.s3.exists("up", "reload/removed.txt")).toBe(false);

    await reloadTo(base);
    const narrowed = base.replace("buckets: { up: [read, list, write, delete], ro:", "buckets: { up: [read, list], ro:");
    expect(narrowed).not.toBe(base);
    const denied = await trickled("reload/narrowed.txt", () => reloadTo(narrowed));
    expect({ status: denied.status, code: denied.code }).toEqual({ status: 403, code: "AccessDenied" });
    expect(await own.s3.exists("up", "reload/narrowed.txt")).toBe(false);

    // an authorizer added meanwhile (OPA denies PutObject under denied/ in bucket opa) decides too
    await reloadTo(base);
    const withOpa = uploadYaml(own.s3.endpoint, { opaUrl: opa.url });
    const byOpa = await trickled("denied/reload.txt", () => reloadTo(withOpa), "opa");
    expect({ status: byOpa.status, code: byOpa.code }).toEqual({ status: 403, code: "AccessDenied" });
    expect(await own.s3.exists("up", "denied/reload.txt")).toBe(false);

    await reloadTo(base);
    const ok = await trickled("reload/kept.txt", () => reloadTo(base));
    expect(ok.status).toBe(204);
    expect(await own.s3.exists("up", "reload/kept.txt")).toBe(true);
  } finally {
    await own.stop();
  }
});

test("a large form's Create answered after s3.timeout: the client gets its 503, and the upload the store made once the answer comes is aborted (it was left behind, empty)", async () => {
  const key = "late/create.bin";
  // (a front with the bucket's s3.timeout at 0.1 s, on the same fixture; the Create answered 400 ms late)
  await using short = await startFrontsOn(uploadYaml(env.s3.endpoint, { upstreamTimeout: 0.1 }), env.s3, false);
  const ours = (r: { pathname: string }) => r.pathname.endsWith(`/${key}`);
  env.s3.faults.set(`/up/${key}`, { kind: "delay", ms: 400, method: "POST", times: 1 });
  try {
    const aborted = env.s3.waitForRequest((r) => ours(r) && r.method === "DELETE" && r.query.uploadId !== undefined && r.status !== 0, 10_000);
    const p = policyFor("up", key);
    const a = await answerOf(await postForm({ ...p, url: p.url.replace(env.endpoint, short.endpoint) }, bytesOf(6 * MiB, 50)));
    expect({ status: a.status, code: a.code }).toEqual({ status: 503, code: "ServiceUnavailable" });
    expect((await aborted).status).toBe(204);
  } finally {
    env.s3.faults.clear();
  }
  await nothingLeft(key);
});

test("a file above 5 MiB with a CRC checksum field (or an x-amz-checksum-algorithm CRC field alone) goes up as a FULL_OBJECT checksum multipart upload: each part with its checksum, the Complete with the whole file's, which the store checks and S3 keeps (it was checked by the proxy, then not sent); SHA-256 stays checked only", async () => {
  const { checksumBase64 } = await import("../../src/s3/checksum.ts");
  const big = bytesOf(6 * MiB, 51);
  const cases: Array<[string, Record<string, string>, string | undefined]> = [
    ["full/crc32.bin", { "x-amz-checksum-crc32": checksumBase64("CRC32", big) }, "crc32"],
    ["full/crc64.bin", { "x-amz-checksum-algorithm": "CRC64NVME" }, "crc64nvme"],
    ["full/sha256.bin", { "x-amz-checksum-sha256": checksumBase64("SHA256", big) }, undefined],
  ];
  for (const [key, fields, alg] of cases) {
    env.mark();
    expect({ key, status: (await postForm(presignWithExtra(policyFor("up", key), fields), big)).status }).toEqual({ key, status: 204 });
    const calls = env.upstreamCalls().filter((r) => r.pathname.endsWith(`/${key}`));
    const create = calls.find((r) => r.method === "POST" && r.query.uploads !== undefined);
    const parts = calls.filter((r) => r.method === "PUT" && r.query.uploadId !== undefined);
    const complete = calls.find((r) => r.method === "POST" && r.query.uploadId !== undefined);
    const header = alg === undefined ? undefined : `x-amz-checksum-${alg}`;
    const upper = alg?.toUpperCase() as "CRC32" | "CRC64NVME" | undefined;
    expect({
      key,
      create: [create?.headers["x-amz-checksum-algorithm"], create?.headers["x-amz-checksum-type"]],
      parts: parts.map((p) => (header === undefined ? undefined : p.headers[header])),
      complete: [complete?.status, header === undefined ? undefined : complete?.headers[header], complete?.headers["x-amz-checksum-type"]],
    }).toEqual({
      key,
      create: upper === undefined ? [undefined, undefined] : [upper, "FULL_OBJECT"],
      parts: upper === undefined ? [undefined, undefined] : [checksumBase64(upper, big.subarray(0, 5 * MiB)), checksumBase64(upper, big.subarray(5 * MiB))],
      complete: [200, upper === undefined ? undefined : checksumBase64(upper, big), upper === undefined ? undefined : "FULL_OBJECT"],
    });
    const stored = await env.s3.read("up", key);
    expect(stored === undefined ? "missing" : sha256(stored)).toBe(sha256(big));
  }
});
