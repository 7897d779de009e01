/**
 * Object Lock's delete headers on the S3 front (DeleteObject, DeleteObjects): x-amz-mfa (the bucket
 * owner's MFA device, for a version's delete on a bucket with MFA delete) and
 * x-amz-bypass-governance-retention were dropped, so no client could ever delete a version under
 * governance retention or on an MFA-delete bucket through the proxy. x-amz-mfa is now passed on
 * (the upstream checks it); the bypass only when the bucket's authorizer allows
 * s3:BypassGovernanceRetention, a permission of its own in S3 that a delete grant does not include.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { OpaServer } from "../fixtures/opa.ts";
import { OpenFgaServer } from "../fixtures/openfga.ts";
import { openFgaBucketYaml, READER, signedFetch, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let env: UploadEnv;
let opa: OpaServer;
let fga: OpenFgaServer;
const ALICE = { accessKeyId: "AKIDLOCKALICE001", secretAccessKey: "lock-alice-secret-0123456789abcd" };

beforeAll(async () => {
  // everything, but the governance bypass for role=writer only, and never under legal/
  opa = OpaServer.start({
    "yatagarasu/allow": (input: { action: string; key: string; jwt_claims: { role?: string } | null }) =>
      input.action !== "s3:BypassGovernanceRetention" || (input.jwt_claims?.role === "writer" && !input.key.startsWith("legal/")),
  });
  // alice may write and delete under lock/ (editor), in both OpenFGA buckets
  fga = OpenFgaServer.start({
    tuples: ["fga", "fgab"].flatMap((b) => [
      { user: "user:alice", relation: "editor", object: `folder:${b}/lock/` },
      { user: `folder:${b}/lock/`, relation: "parent", object: `file:${b}/lock/f.txt` },
    ]),
  });
  const fgaBucket = (name: string, endpoint: string, extra = "") => openFgaBucketYaml(name, endpoint, fga, extra);
  env = await startUploadEnv({
    opaUrl: opa.url,
    moreBuckets: (endpoint) => fgaBucket("fga", endpoint) + fgaBucket("fgab", endpoint, ", openfga_bypass_relation: editor"),
    moreCredentials: `    - { access_key_id: "${ALICE.accessKeyId}", secret_access_key: "${ALICE.secretAccessKey}", identity: alice, buckets: { fga: [read, list, write, delete], fgab: [read, list, write, delete] } }
`,
  });
});

afterAll(async () => {
  await env?.stop();
  opa?.close();
  fga?.close();
});

const LOCK = { "x-amz-mfa": "arn:aws:iam::123456789012:mfa/root 123456", "x-amz-bypass-governance-retention": "true" };

/** What the upstream received of the two headers, per request that reached it. */
const sent = () => env.upstreamCalls().map((c) => `${c.method} mfa=${c.headers["x-amz-mfa"] ?? "-"} bypass=${c.headers["x-amz-bypass-governance-retention"] ?? "-"}`);

test("DeleteObject: x-amz-mfa passed on; the bypass only where the authorizer allows s3:BypassGovernanceRetention", async () => {
  const mfa = "mfa=arn:aws:iam::123456789012:mfa/root 123456";
  for (const [path, creds, want] of [
    ["/opa/lock/a.txt", WRITER, `DELETE ${mfa} bypass=true`],
    ["/opa/lock/b.txt", READER, `DELETE ${mfa} bypass=-`],
    // (no authorizer: a delete grant is no bypass)
    ["/up/lock/c.txt", WRITER, `DELETE ${mfa} bypass=-`],
  ] as const) {
    await env.s3.put("up", path.slice(path.indexOf("/", 1) + 1), "locked");
    env.mark();
    const r = await signedFetch(env, { method: "DELETE", path, query: [["versionId", "v1"]], headers: LOCK, creds });
    await r.arrayBuffer();
    expect(sent()).toEqual([want]);
  }
  // (none asked: none sent)
  env.mark();
  const plain = await signedFetch(env, { method: "DELETE", path: "/opa/lock/d.txt" });
  expect(plain.status).toBe(204);
  expect(sent()).toEqual(["DELETE mfa=- bypass=-"]);
});

test("DeleteObjects: the same", async () => {
  const xml = "<Delete><Object><Key>lock/e.txt</Key></Object></Delete>";
  const md5 = new Bun.CryptoHasher("md5").update(xml).digest("base64");
  for (const [creds, want] of [[WRITER, "bypass=true"], [READER, "bypass=-"]] as const) {
    env.mark();
    const r = await signedFetch(env, { method: "POST", path: "/opa", query: [["delete", ""]], body: xml, headers: { "content-md5": md5, ...LOCK }, creds });
    expect(r.status).toBe(200);
    await r.text();
    expect(sent()).toEqual([`POST mfa=arn:aws:iam::123456789012:mfa/root 123456 ${want}`]);
  }
});

test("DeleteObjects: the bypass is asked per key (a policy scoped by key), and sent only when every key sent has it", async () => {
  // (it was asked once with the bucket's empty key: a policy refusing the bypass under legal/ was
  // allowed for the request, whose header then applied to legal/'s retained versions too)
  for (const [keys, want] of [[["lock/g.txt", "legal/h.txt"], "bypass=-"], [["lock/g.txt", "lock/i.txt"], "bypass=true"]] as const) {
    const xml = `<Delete>${keys.map((k) => `<Object><Key>${k}</Key></Object>`).join("")}</Delete>`;
    const md5 = new Bun.CryptoHasher("md5").update(xml).digest("base64");
    env.mark();
    const r = await signedFetch(env, { method: "POST", path: "/opa", query: [["delete", ""]], body: xml, headers: { "content-md5": md5, ...LOCK }, creds: WRITER });
    expect(r.status).toBe(200);
    await r.text();
    expect(sent()).toEqual([`POST mfa=arn:aws:iam::123456789012:mfa/root 123456 ${want}`]);
  }
});

test("OpenFGA: the bypass is not granted by the read relation (a viewer's, which every editor has): never without openfga_bypass_relation, else only with that relation", async () => {
  // (it was asked with openfga_relation, viewer: every user who may delete a version bypassed its
  // governance retention, a permission S3 keeps apart from the delete)
  const mfa = "mfa=arn:aws:iam::123456789012:mfa/root 123456";
  for (const [bucket, want, relations] of [
    ["fga", `DELETE ${mfa} bypass=-`, ["editor"]],
    ["fgab", `DELETE ${mfa} bypass=true`, ["editor", "editor"]],
  ] as const) {
    await env.s3.put("up", "lock/f.txt", "locked");
    const from = fga.requests.length;
    env.mark();
    const r = await signedFetch(env, { method: "DELETE", path: `/${bucket}/lock/f.txt`, query: [["versionId", "v1"]], headers: LOCK, creds: ALICE });
    await r.arrayBuffer();
    expect([bucket, sent()]).toEqual([bucket, [want]]);
    // the delete's own check (editor), then the bypass's with openfga_bypass_relation only
    expect([bucket, fga.requests.slice(from).map((q) => (q.body as { tuple_key: { relation: string } }).tuple_key.relation)]).toEqual([bucket, [...relations]]);
  }
});
