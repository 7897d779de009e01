/**
 * A DeleteObjects is one request over many keys: its audit line names every entry with what
 * became of it (deleted, refused by the policy, refused as a key). Before, the line had no key at
 * all and said "allowed" even when the bucket's policy refused some of them: the trail could not
 * say who deleted an object in a bulk delete, nor show the refused attempts.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { OpaServer } from "../fixtures/opa.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { signedDeleteObjects } from "../e2e/s3-front-upload-helpers.ts";
import { removeDir, startAuditEnv, tempDir } from "./audit-helpers.ts";

setDefaultTimeout(30_000);

const UP = { accessKeyId: "AKIDAUDITDELUP001", secretAccessKey: "audit-delete-upstream-secret-0123" };
const DELETER = { accessKeyId: "AKIDAUDITDELETER1", secretAccessKey: "audit-deleter-secret-0123456789ab" };

let s3: S3Fixture;
let opa: OpaServer;
beforeAll(async () => {
  opa = OpaServer.start({ "yatagarasu/allow": (input: { key: string }) => !input.key.startsWith("secret/") });
  s3 = await startS3Fixture({ buckets: [{ name: "store" }], credentials: [{ ...UP, buckets: ["store"], write: true }] });
});
afterAll(async () => {
  await s3?.stop();
  opa?.close();
});

test("a DeleteObjects line names each entry with its own result: deleted, refused by the policy, refused as a key", async () => {
  const dir = tempDir();
  try {
    // (data and private: the buckets the helper's own identities are granted)
    const buckets = (ep: string) => `buckets:
  - name: store
    path_prefix: /store
    access: read-write
    s3: { bucket: store, endpoint: "${ep}", access_key: "${UP.accessKeyId}", secret_key: "${UP.secretAccessKey}" }
    authorization: { type: opa, opa_url: "${opa.url}", opa_policy_path: yatagarasu/allow, opa_cache_ttl_seconds: 0, opa_timeout_ms: 5000 }
  - { name: data, path_prefix: /data, s3: { bucket: store, endpoint: "${ep}", access_key: "${UP.accessKeyId}", secret_key: "${UP.secretAccessKey}" } }
  - { name: private, path_prefix: /private, s3: { bucket: store, endpoint: "${ep}", access_key: "${UP.accessKeyId}", secret_key: "${UP.secretAccessKey}" } }
`;
    const creds = `    - { access_key_id: "${DELETER.accessKeyId}", secret_access_key: "${DELETER.secretAccessKey}", identity: deleter, buckets: { store: [read, list, delete] } }\n`;
    await using env = await startAuditEnv(s3, `  enabled: true\n  path: ${join(dir, "audit.log")}\n`, { buckets, s3Extra: creds });
    await s3.put("store", "pub/a.txt", "a");
    await s3.put("store", "secret/b.txt", "b");
    const xml = "<Delete><Object><Key>pub/a.txt</Key></Object><Object><Key>secret/b.txt</Key></Object><Object><Key>x//y</Key></Object></Delete>";
    const res = await signedDeleteObjects({ endpoint: `http://127.0.0.1:${env.s3Port}`, port: env.s3Port }, "store", xml, DELETER);
    expect(res.status).toBe(200);
    await res.text();
    expect(await s3.exists("store", "pub/a.txt")).toBe(false);
    expect(await s3.exists("store", "secret/b.txt")).toBe(true);
    const line = (await env.lines()).find((l) => l.operation === "DeleteObjects");
    expect(line).toMatchObject({ action: "s3:DeleteObject", bucket: "store", identity: "deleter", status: 200 });
    expect(line!.objects).toEqual([
      { key: "pub/a.txt", result: "allowed" },
      { key: "secret/b.txt", result: "denied", reason: "AccessDenied" },
      { key: "x//y", result: "failed", reason: "InvalidArgument" },
    ]);
  } finally {
    removeDir(dir);
  }
});

/** The trail of a read-write bucket `store` without an authorizer, which DELETER may delete from. */
function startStoreEnv(dir: string) {
  const buckets = (ep: string) => `buckets:
  - { name: store, path_prefix: /store, access: read-write, s3: { bucket: store, endpoint: "${ep}", access_key: "${UP.accessKeyId}", secret_key: "${UP.secretAccessKey}" } }
  - { name: data, path_prefix: /data, s3: { bucket: store, endpoint: "${ep}", access_key: "${UP.accessKeyId}", secret_key: "${UP.secretAccessKey}" } }
  - { name: private, path_prefix: /private, s3: { bucket: store, endpoint: "${ep}", access_key: "${UP.accessKeyId}", secret_key: "${UP.secretAccessKey}" } }
`;
  const creds = `    - { access_key_id: "${DELETER.accessKeyId}", secret_access_key: "${DELETER.secretAccessKey}", identity: deleter, buckets: { store: [read, list, delete] } }\n`;
  return startAuditEnv(s3, `  enabled: true\n  path: ${join(dir, "audit.log")}\n`, { buckets, s3Extra: creds });
}

test("a DeleteObjects entry whose key or version id is too long to be one is named cut: a body of 4 MiB is not one audit line of 4 MiB", async () => {
  const dir = tempDir();
  try {
    await using env = await startStoreEnv(dir);
    const long = "k".repeat(200_000);
    const xml = `<Delete><Object><Key>${long}</Key></Object><Object><Key>a.txt</Key><VersionId>${long}</VersionId></Object></Delete>`;
    const res = await signedDeleteObjects({ endpoint: `http://127.0.0.1:${env.s3Port}`, port: env.s3Port }, "store", xml, DELETER);
    expect(res.status).toBe(200);
    await res.text();
    const line = (await env.lines()).find((l) => l.operation === "DeleteObjects");
    const objects = line!.objects as Array<{ key: string; version_id?: string; result: string; reason?: string }>;
    expect(objects.map((o) => [o.result, o.reason])).toEqual([
      ["failed", "InvalidArgument"],
      ["failed", "InvalidArgument"],
    ]);
    expect(objects[0]!.key.startsWith("kkk")).toBe(true);
    expect(objects[0]!.key.length).toBeLessThanOrEqual(1024);
    expect(objects[1]!.key).toBe("a.txt");
    expect(objects[1]!.version_id!.startsWith("kkk")).toBe(true);
    expect(objects[1]!.version_id!.length).toBeLessThanOrEqual(1024);
  } finally {
    removeDir(dir);
  }
});

// The cut was at 1024 UTF-16 units wherever it fell: a key (or version id) with a character
// outside the BMP across that point was written with half of its surrogate pair, a JSON string
// strict readers refuse (RFC 7493; serde_json, a Rust log shipper's parser, rejects the line), so a
// client could make its own bulk delete's audit line unreadable to them.
test("a too-long DeleteObjects entry is never cut between the halves of a surrogate pair", async () => {
  const dir = tempDir();
  try {
    await using env = await startStoreEnv(dir);
    const long = "k".repeat(1023) + "\u{1F600}".repeat(10);
    const xml = `<Delete><Object><Key>${long}</Key></Object><Object><Key>a.txt</Key><VersionId>${long}</VersionId></Object></Delete>`;
    const res = await signedDeleteObjects({ endpoint: `http://127.0.0.1:${env.s3Port}`, port: env.s3Port }, "store", xml, DELETER);
    expect(res.status).toBe(200);
    await res.text();
    const line = (await env.lines()).find((l) => l.operation === "DeleteObjects");
    const objects = line!.objects as Array<{ key: string; version_id?: string }>;
    expect(objects.length).toBe(2);
    const lone = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
    for (const text of [objects[0]!.key, objects[1]!.version_id!]) {
      expect(text.startsWith("kkk")).toBe(true);
      expect(text.length).toBeLessThanOrEqual(1024);
      expect(lone.test(text)).toBe(false);
    }
  } finally {
    removeDir(dir);
  }
});
