/**
 * Who may write through the S3 front (issue 12), against the S3 fixture:
 * - a read-only bucket refuses every write, whatever the identity's grants say;
 * - static credentials need `write` (PutObject, multipart, CopyObject) and `delete`
 *   (DeleteObject, and per key in DeleteObjects);
 * - web-identity (STS) sessions write where their token's user may write on the plain front
 *   (auth.write_claims), and a token whose claims deny writes still reads;
 * - the bucket's authorizer (OPA here) sees s3:PutObject / s3:DeleteObject / s3:GetObject with
 *   the key, so a policy can allow reads and deny writes, or deny single keys of a DeleteObjects;
 *   OpenFGA is asked the write relation (editor) for writes and viewer for reads;
 * - CopyObject within one proxy bucket (the source read-checked), and a clear refusal across two.
 * Every refusal: S3's error, and the upstream holds no object (or still holds the old one).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { OpaServer } from "../fixtures/opa.ts";
import { OpenFgaServer } from "../fixtures/openfga.ts";
import { answerOf, hs256, NODELETE, openFgaBucketYaml, READER, expectRefused, signedDeleteObjects, signedFetch, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const T = 30_000;
let env: UploadEnv;
let opa: OpaServer;
let fga: OpenFgaServer;
const ALICE = { accessKeyId: "AKIDUPLOADALICE1", secretAccessKey: "upload-alice-secret-0123456789ab" };
const READS = new Set(["s3:GetObject", "s3:ListBucket"]);

beforeAll(async () => {
  opa = OpaServer.start({
    // reads for everyone but under secret/; writes for role=writer only, never under keep/; no
    // tagging under notag/
    "yatagarasu/allow": (input: { action: string; key: string; jwt_claims: { role?: string } | null }) =>
      READS.has(input.action)
        ? !input.key.startsWith("secret/")
        : input.jwt_claims?.role === "writer" && !input.key.startsWith("keep/") && !(input.action === "s3:PutObjectTagging" && input.key.startsWith("notag/")),
  });
  // alice may read the whole bucket and write under drop/ only (folder:fga/drop/#editor)
  fga = OpenFgaServer.start({
    tuples: [
      { user: "user:alice", relation: "viewer", object: "folder:fga/" },
      { user: "user:alice", relation: "editor", object: "folder:fga/drop/" },
      { user: "folder:fga/", relation: "parent", object: "folder:fga/drop/" },
      { user: "folder:fga/", relation: "parent", object: "file:fga/doc.txt" },
      { user: "folder:fga/drop/", relation: "parent", object: "file:fga/drop/new.txt" },
      // bucket fgav (openfga_version_relation: versions): alice views it all, edits drop/ and
      // both/, and holds `versions` on hist/ and both/
      { user: "user:alice", relation: "viewer", object: "folder:fgav/" },
      ...["drop", "both"].map((d) => ({ user: "user:alice", relation: "editor", object: `folder:fgav/${d}/` })),
      ...["hist", "both"].map((d) => ({ user: "user:alice", relation: "versions", object: `folder:fgav/${d}/` })),
      { user: "folder:fgav/", relation: "parent", object: "file:fgav/doc.txt" },
      ...["drop", "hist", "both"].flatMap((d) => [
        { user: "folder:fgav/", relation: "parent", object: `folder:fgav/${d}/` },
        { user: `folder:fgav/${d}/`, relation: "parent", object: `file:fgav/${d}/v.txt` },
        // (a listing of the folder is asked about file:fgav/<d>/)
        { user: `folder:fgav/${d}/`, relation: "parent", object: `file:fgav/${d}/` },
      ]),
    ],
  });
  const fgaBucket = (name: string, endpoint: string, extra = "") => openFgaBucketYaml(name, endpoint, fga, extra);
  env = await startUploadEnv({
    opaUrl: opa.url,
    moreBuckets: (endpoint) => fgaBucket("fga", endpoint) + fgaBucket("fgav", endpoint, ", openfga_version_relation: versions"),
    moreCredentials: `    - { access_key_id: "${ALICE.accessKeyId}", secret_access_key: "${ALICE.secretAccessKey}", identity: alice, buckets: { fga: [read, list, write, delete], fgav: [read, list, write, delete] } }
`,
  });
});
afterAll(async () => {
  await env.stop();
  opa.close();
  fga.close();
});

const put = (path: string, body: string, creds = WRITER) => signedFetch(env, { method: "PUT", path, body, creds });
const deleteXml = (keys: string[], quiet = false) => `<Delete>${quiet ? "<Quiet>true</Quiet>" : ""}${keys.map((k) => `<Object><Key>${k}</Key></Object>`).join("")}</Delete>`;
const deleteObjects = (bucket: string, xml: string, creds = WRITER) => signedDeleteObjects(env, bucket, xml, creds);
const refused = (p: Promise<Response>, status: number, code: string) => expectRefused(env, p, status, code);

describe("bucket access and grants", () => {
  test(
    "a read-only bucket refuses PutObject, DeleteObject, CreateMultipartUpload and DeleteObjects to an identity granted write and delete; reads still work",
    async () => {
      await env.s3.put("up", "ro/kept.txt", "kept");
      await refused(put("/ro/ro/new.txt", "x"), 403, "AccessDenied");
      await refused(signedFetch(env, { method: "DELETE", path: "/ro/ro/kept.txt" }), 403, "AccessDenied");
      await refused(signedFetch(env, { method: "POST", path: "/ro/ro/mp.bin", query: [["uploads", ""]] }), 403, "AccessDenied");
      await refused(deleteObjects("ro", deleteXml(["ro/kept.txt"])), 403, "AccessDenied");
      expect(await env.s3.exists("up", "ro/new.txt")).toBe(false);
      expect(await env.s3.exists("up", "ro/kept.txt")).toBe(true);
      expect(await (await signedFetch(env, { method: "GET", path: "/ro/ro/kept.txt" })).text()).toBe("kept");
    },
    T,
  );

  test(
    "an identity without write: PutObject and CreateMultipartUpload → AccessDenied, no object",
    async () => {
      await refused(put("/up/reader/new.txt", "x", READER), 403, "AccessDenied");
      await refused(signedFetch(env, { method: "POST", path: "/up/reader/mp.bin", query: [["uploads", ""]], creds: READER }), 403, "AccessDenied");
      expect(await env.s3.exists("up", "reader/new.txt")).toBe(false);
    },
    T,
  );

  test(
    "an identity with write but without delete: it uploads, DeleteObject → AccessDenied, DeleteObjects → AccessDenied per key, objects kept",
    async () => {
      expect((await put("/up/nodel/a.txt", "a", NODELETE)).status).toBe(200);
      await env.s3.put("up", "nodel/b.txt", "b");
      await refused(signedFetch(env, { method: "DELETE", path: "/up/nodel/a.txt", creds: NODELETE }), 403, "AccessDenied");
      env.mark();
      const r = await deleteObjects("up", deleteXml(["nodel/a.txt", "nodel/b.txt"]), NODELETE);
      expect(r.status).toBe(200);
      const xml = await r.text();
      expect(xml.match(/<Error><Key>nodel\/[ab]\.txt<\/Key><Code>AccessDenied<\/Code>/g)?.length).toBe(2);
      expect(xml).not.toContain("<Deleted>");
      expect(env.upstreamCalls()).toEqual([]);
      expect(await env.s3.exists("up", "nodel/a.txt")).toBe(true);
      expect(await env.s3.exists("up", "nodel/b.txt")).toBe(true);
    },
    T,
  );

  test(
    "DeleteObjects with delete: per-key results in request order (a missing key is Deleted, as in S3; a dot-segment key is refused), Quiet lists errors only",
    async () => {
      await env.s3.put("up", "del/1.txt", "1");
      await env.s3.put("up", "del/2.txt", "2");
      const r = await deleteObjects("up", deleteXml(["del/1.txt", "del/missing.txt", "del/../x", "del/2.txt"]));
      const xml = await r.text();
      expect(r.status).toBe(200);
      const entries = [...xml.matchAll(/<(Deleted|Error)><Key>([^<]*)<\/Key>(?:<Code>([^<]*)<\/Code>)?/g)].map((m) => `${m[1]} ${m[2]}${m[3] ? ` ${m[3]}` : ""}`);
      expect(entries).toEqual(["Deleted del/1.txt", "Deleted del/missing.txt", "Error del/../x InvalidArgument", "Deleted del/2.txt"]);
      expect(await env.s3.exists("up", "del/1.txt")).toBe(false);
      expect(await env.s3.exists("up", "del/2.txt")).toBe(false);

      await env.s3.put("up", "del/3.txt", "3");
      const quiet = await (await deleteObjects("up", deleteXml(["del/3.txt", "del/./y"], true))).text();
      expect(quiet).not.toContain("<Deleted>");
      expect(quiet).toContain("<Error><Key>del/./y</Key><Code>InvalidArgument</Code>");
      expect(await env.s3.exists("up", "del/3.txt")).toBe(false);

      // a key holding a CR, which the store (s3rver) writes raw in its answer where S3 writes
      // &#13;: XML reads it as LF; the key's result is still its own (it was "did not report")
      await env.s3.put("up", "del/cr\rx", "cr");
      const cr = await (await deleteObjects("up", "<Delete><Object><Key>del/cr&#13;x</Key></Object></Delete>")).text();
      expect(cr).toContain("<Deleted><Key>del/cr&#13;x</Key></Deleted>");
      expect(await env.s3.exists("up", "del/cr\rx")).toBe(false);
      // (with a VersionId too)
      await env.s3.put("up", "del/cr\ry", "cr");
      const crv = await (await deleteObjects("up", "<Delete><Object><Key>del/cr&#13;y</Key><VersionId>null</VersionId></Object></Delete>")).text();
      expect(crv).toContain("<Deleted><Key>del/cr&#13;y</Key><VersionId>null</VersionId></Deleted>");
      expect(await env.s3.exists("up", "del/cr\ry")).toBe(false);
    },
    T,
  );

  test(
    "DeleteObjects: no integrity header → InvalidRequest; not XML, no keys, 1001 keys, an entry with two keys or a Quiet that is not a boolean → MalformedXML; nothing upstream",
    async () => {
      const xml = deleteXml(["del/x"]);
      await refused(signedFetch(env, { method: "POST", path: "/up", query: [["delete", ""]], body: xml }), 400, "InvalidRequest");
      await refused(deleteObjects("up", "<Delete><Object><Key>a</Key></Object>"), 400, "MalformedXML");
      await refused(deleteObjects("up", "<Delete></Delete>"), 400, "MalformedXML");
      await refused(deleteObjects("up", deleteXml(Array.from({ length: 1001 }, (_, i) => `k${i}`))), 400, "MalformedXML");
      await refused(deleteObjects("up", '<!DOCTYPE d [<!ENTITY x "y">]><Delete><Object><Key>&x;</Key></Object></Delete>'), 400, "MalformedXML");
      // one entry naming two keys (the second was silently dropped) or two versions
      await refused(deleteObjects("up", "<Delete><Object><Key>del/a</Key><Key>del/b</Key></Object></Delete>"), 400, "MalformedXML");
      await refused(deleteObjects("up", "<Delete><Object><Key>del/a</Key><VersionId>1</VersionId><VersionId>2</VersionId></Object></Delete>"), 400, "MalformedXML");
      // Quiet is a boolean in S3's schema
      await refused(deleteObjects("up", "<Delete><Quiet>maybe</Quiet><Object><Key>del/a</Key></Object></Delete>"), 400, "MalformedXML");
      // documents S3's schema refuses were acted on: a key holding an element (text joined), an
      // undeclared prefix, an <Object> nested in another (skipped, the outer one deleted), stray text
      for (const xml of [
        "<Delete><Object><Key>del/<b/>a</Key></Object></Delete>",
        "<x:Delete><x:Object><x:Key>del/a</x:Key></x:Object></x:Delete>",
        "<Delete><Object><Object><Key>del/a</Key></Object><Key>del/a</Key></Object></Delete>",
        "<Delete>del/a<Object><Key>del/a</Key></Object></Delete>",
        "<Delete><Other/><Object><Key>del/a</Key></Object></Delete>",
      ]) await refused(deleteObjects("up", xml), 400, "MalformedXML");
    },
    T,
  );
});

describe("web-identity sessions act as their token's user on the plain front", () => {
  const ROLE = "arn:aws:iam::123456789012:role/uploader";
  const now = () => Math.floor(Date.now() / 1000);
  async function session(claims: Record<string, unknown>) {
    const body = new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: ROLE, RoleSessionName: "uploader", WebIdentityToken: hs256({ sub: "alice", iat: now(), exp: now() + 900, ...claims }) });
    const xml = await (await fetch(env.endpoint + "/", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: body.toString() })).text();
    const get = (n: string) => new RegExp(`<${n}>([^<]*)</${n}>`).exec(xml)![1]!;
    return { accessKeyId: get("AccessKeyId"), secretAccessKey: get("SecretAccessKey"), sessionToken: get("SessionToken") };
  }

  test(
    "a token that passes auth.write_claims writes; one whose claims deny writes gets AccessDenied but still reads",
    async () => {
      const writer = await session({ team: "a", role: "writer" });
      const reader = await session({ team: "a", role: "reader" });
      expect((await put("/teamw/sts/w.txt", "from a session", writer)).status).toBe(200);
      expect(new TextDecoder().decode(await env.s3.read("up", "sts/w.txt"))).toBe("from a session");
      await refused(put("/teamw/sts/r.txt", "denied", reader), 403, "AccessDenied");
      await refused(signedFetch(env, { method: "DELETE", path: "/teamw/sts/w.txt", creds: reader }), 403, "AccessDenied");
      expect(await env.s3.exists("up", "sts/r.txt")).toBe(false);
      expect(await (await signedFetch(env, { method: "GET", path: "/teamw/sts/w.txt", creds: reader })).text()).toBe("from a session");
      expect((await signedFetch(env, { method: "DELETE", path: "/teamw/sts/w.txt", creds: writer })).status).toBe(204);
    },
    T,
  );

  test(
    "a session may not write where its token may not read (team b), nor on a read-only bucket",
    async () => {
      const teamB = await session({ team: "b", role: "writer" });
      await refused(put("/teamw/sts/b.txt", "x", teamB), 403, "AccessDenied");
      const teamA = await session({ team: "a", role: "writer" });
      await refused(put("/ro/sts/a.txt", "x", teamA), 403, "AccessDenied");
    },
    T,
  );
});

describe("the bucket authorizer (OPA) decides with the S3 action and the key", () => {
  test(
    "a policy that allows reads and denies writes: READER (granted write) is refused by OPA, WRITER passes; OPA saw s3:PutObject",
    async () => {
      opa.requests.length = 0;
      await refused(put("/opa/o/r.txt", "x", READER), 403, "AccessDenied");
      expect(await env.s3.exists("up", "o/r.txt")).toBe(false);
      const asked = opa.requests.map((r) => (r.body as { input: { action: string; key: string } }).input);
      expect(asked).toEqual([expect.objectContaining({ action: "s3:PutObject", key: "o/r.txt", principal: "s3_static" })]);
      expect((await put("/opa/o/w.txt", "ok", WRITER)).status).toBe(200);
      expect(await (await signedFetch(env, { method: "GET", path: "/opa/o/w.txt", creds: READER })).text()).toBe("ok");
    },
    T,
  );

  test(
    "a write that sets tags (x-amz-tagging on PutObject, CreateMultipartUpload, CopyObject with REPLACE) also needs s3:PutObjectTagging: a policy refusing tags under notag/ refuses them, untagged writes pass",
    async () => {
      const tagged = { "x-amz-tagging": "k=v" };
      expect((await put("/opa/notag/plain.txt", "plain", WRITER)).status).toBe(200);
      opa.requests.length = 0;
      await refused(signedFetch(env, { method: "PUT", path: "/opa/notag/t.txt", body: "tagged", headers: tagged, creds: WRITER }), 403, "AccessDenied");
      const asked = opa.requests.map((r) => (r.body as { input: { action: string; key: string } }).input).map((i) => `${i.action} ${i.key}`);
      expect(asked).toEqual(["s3:PutObject notag/t.txt", "s3:PutObjectTagging notag/t.txt"]);
      await refused(signedFetch(env, { method: "POST", path: "/opa/notag/mp.bin", query: [["uploads", ""]], headers: tagged, creds: WRITER }), 403, "AccessDenied");
      await refused(signedFetch(env, { method: "PUT", path: "/opa/notag/c.txt", headers: { "x-amz-copy-source": "/opa/notag/plain.txt", "x-amz-tagging-directive": "REPLACE", ...tagged }, creds: WRITER }), 403, "AccessDenied");
      expect(await env.s3.exists("up", "notag/t.txt")).toBe(false);
      // elsewhere the same tagged write passes
      expect((await signedFetch(env, { method: "PUT", path: "/opa/tagok/t.txt", body: "tagged", headers: tagged, creds: WRITER })).status).toBe(200);
    },
    T,
  );

  test(
    "DeleteObjects asks OPA per key with s3:DeleteObject: a denied key gets AccessDenied and stays, the others are deleted",
    async () => {
      await env.s3.put("up", "keep/a.txt", "a");
      await env.s3.put("up", "gone/b.txt", "b");
      opa.requests.length = 0;
      const xml = await (await deleteObjects("opa", deleteXml(["keep/a.txt", "gone/b.txt"]))).text();
      expect(xml).toContain("<Error><Key>keep/a.txt</Key><Code>AccessDenied</Code>");
      expect(xml).toContain("<Deleted><Key>gone/b.txt</Key></Deleted>");
      expect(await env.s3.exists("up", "keep/a.txt")).toBe(true);
      expect(await env.s3.exists("up", "gone/b.txt")).toBe(false);
      const asked = opa.requests.map((r) => (r.body as { input: { action: string; key: string } }).input).map((i) => `${i.action} ${i.key}`).sort();
      expect(asked).toEqual(["s3:DeleteObject gone/b.txt", "s3:DeleteObject keep/a.txt"]);
      expect(opa.requests.every((r) => (r.body as { input: { principal: string } }).input.principal === "s3_static")).toBe(true);
    },
    T,
  );

  test(
    "OPA failing: DeleteObjects fails whole with 503 ServiceUnavailable (SDKs retry it; a per-key AccessDenied would not be), nothing deleted",
    async () => {
      await env.s3.put("up", "gone/c.txt", "c");
      opa.failWith({ status: 500 });
      try {
        env.mark();
        const a = await answerOf(await deleteObjects("opa", deleteXml(["gone/c.txt", "gone/d.txt"])));
        expect([a.status, a.code, a.headers.get("retry-after")]).toEqual([503, "ServiceUnavailable", "1"]);
        expect(env.upstreamCalls()).toEqual([]);
      } finally {
        opa.failWith(null);
      }
      expect(await env.s3.exists("up", "gone/c.txt")).toBe(true);
    },
    T,
  );
});

describe("the bucket authorizer (OpenFGA) checks openfga_write_relation (editor) for writes, viewer for reads", () => {
  test(
    "alice, a viewer of the bucket and an editor of drop/: reads doc.txt, may not overwrite it, uploads under drop/",
    async () => {
      await env.s3.put("up", "doc.txt", "doc");
      fga.requests.length = 0;
      expect(await (await signedFetch(env, { method: "GET", path: "/fga/doc.txt", creds: ALICE })).text()).toBe("doc");
      await refused(put("/fga/doc.txt", "overwritten", ALICE), 403, "AccessDenied");
      expect(new TextDecoder().decode(await env.s3.read("up", "doc.txt"))).toBe("doc");
      expect((await put("/fga/drop/new.txt", "new", ALICE)).status).toBe(200);
      const checks = fga.requests.map((r) => (r.body as { tuple_key: { relation: string; object: string } }).tuple_key).map((t) => `${t.relation} ${t.object}`);
      expect(checks).toEqual(["viewer file:fga/doc.txt", "editor file:fga/doc.txt", "editor file:fga/drop/new.txt"]);
    },
    T,
  );

  test(
    "object tags: reading them is viewer, setting or removing them is editor (alice may not tag doc.txt, may tag drop/new.txt)",
    async () => {
      await env.s3.put("up", "doc.txt", "doc");
      await env.s3.put("up", "drop/new.txt", "new");
      const body = "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>";
      const tag = (path: string) =>
        signedFetch(env, { method: "PUT", path, query: [["tagging", ""]], body, payloadHash: new Bun.CryptoHasher("sha256").update(body).digest("hex"), creds: ALICE });
      fga.requests.length = 0;
      expect((await signedFetch(env, { method: "GET", path: "/fga/doc.txt", query: [["tagging", ""]], creds: ALICE })).status).toBe(200);
      await refused(tag("/fga/doc.txt"), 403, "AccessDenied");
      await refused(signedFetch(env, { method: "DELETE", path: "/fga/doc.txt", query: [["tagging", ""]], creds: ALICE }), 403, "AccessDenied");
      expect((await tag("/fga/drop/new.txt")).status).toBe(200);
      const checks = fga.requests.map((r) => (r.body as { tuple_key: { relation: string; object: string } }).tuple_key).map((t) => `${t.relation} ${t.object}`);
      expect(checks).toEqual(["viewer file:fga/doc.txt", "editor file:fga/doc.txt", "editor file:fga/doc.txt", "editor file:fga/drop/new.txt"]);
    },
    T,
  );
});

describe("OpenFGA and versions (openfga_version_relation)", () => {
  const checks = (from: number) => fga.requests.slice(from).map((r) => (r.body as { tuple_key: { relation: string; object: string } }).tuple_key).map((t) => `${t.relation} ${t.object}`);
  const as = (method: string, path: string, query: Array<[string, string]>) => signedFetch(env, { method, path, query, creds: ALICE });
  test(
    "unset: a version is the object's (a viewer reads older versions); set: a version read needs that relation, a version delete it and the write relation",
    async () => {
      await env.s3.put("up", "doc.txt", "doc");
      for (const d of ["drop", "hist", "both"]) await env.s3.put("up", `${d}/v.txt`, d);
      let from = fga.requests.length;
      expect(await (await as("GET", "/fga/doc.txt", [["versionId", "null"]])).text()).toBe("doc");
      expect(checks(from)).toEqual(["viewer file:fga/doc.txt"]);
      // (a viewer of file:fgav/doc.txt read its older versions, and listed them)
      from = fga.requests.length;
      expect(await (await as("GET", "/fgav/doc.txt", [])).text()).toBe("doc");
      await refused(as("GET", "/fgav/doc.txt", [["versionId", "null"]]), 403, "AccessDenied");
      expect((await as("HEAD", "/fgav/doc.txt", [["versionId", "null"]])).status).toBe(403);
      await refused(as("GET", "/fgav", [["versions", ""]]), 403, "AccessDenied");
      expect(await (await as("GET", "/fgav/hist/v.txt", [["versionId", "null"]])).text()).toBe("hist");
      expect(await (await as("GET", "/fgav", [["versions", ""], ["prefix", "hist/"]])).text()).toContain("<Key>hist/v.txt</Key>");
      expect(checks(from)).toEqual(["viewer file:fgav/doc.txt", "versions file:fgav/doc.txt", "versions file:fgav/doc.txt", "versions file:fgav/", "versions file:fgav/hist/v.txt", "versions file:fgav/hist/"]);
      // a version delete: the write relation and the version relation, each alone is not enough
      from = fga.requests.length;
      await refused(as("DELETE", "/fgav/drop/v.txt", [["versionId", "null"]]), 403, "AccessDenied");
      await refused(as("DELETE", "/fgav/hist/v.txt", [["versionId", "null"]]), 403, "AccessDenied");
      expect((await as("DELETE", "/fgav/both/v.txt", [["versionId", "null"]])).status).toBe(204);
      expect(checks(from)).toEqual(["editor file:fgav/drop/v.txt", "versions file:fgav/drop/v.txt", "editor file:fgav/hist/v.txt", "editor file:fgav/both/v.txt", "versions file:fgav/both/v.txt"]);
      expect([await env.s3.exists("up", "drop/v.txt"), await env.s3.exists("up", "hist/v.txt"), await env.s3.exists("up", "both/v.txt")]).toEqual([true, true, false]);
    },
    T,
  );
});

describe("CopyObject", () => {
  const copy = (dest: string, source: string, creds = WRITER, headers: Record<string, string> = {}) =>
    signedFetch(env, { method: "PUT", path: dest, headers: { "x-amz-copy-source": source, ...headers }, creds });

  test(
    "within one proxy bucket: copied server-side, S3's CopyObjectResult, the destination readable byte-exact",
    async () => {
      await env.s3.put("up", "copy/src with space.txt", "copy me", { contentType: "text/x-src" });
      env.mark();
      const r = await copy("/up/copy/dst.txt", "/up/copy/src%20with%20space.txt");
      const xml = await r.text();
      expect(r.status).toBe(200);
      expect(xml).toMatch(/<CopyObjectResult[^>]*><ETag>[^<]+<\/ETag><LastModified>/);
      expect(new TextDecoder().decode(await env.s3.read("up", "copy/dst.txt"))).toBe("copy me");
      const calls = env.upstreamCalls();
      expect(calls.map((c) => `${c.method} ${c.pathname} ${c.headers["x-amz-copy-source"]}`)).toEqual(["PUT /up/copy/dst.txt /up/copy/src%20with%20space.txt"]);
      const head = await signedFetch(env, { method: "HEAD", path: "/up/copy/dst.txt" });
      expect(head.headers.get("content-type")).toBe("text/x-src");
    },
    T,
  );

  test(
    "an unknown source bucket: NoSuchBucket; an unknown metadata or tagging directive: InvalidArgument; nothing upstream (copies across proxy buckets: s3-front-copy-across.test.ts)",
    async () => {
      env.mark();
      await refused(copy("/up/copy/x.txt", "/nosuch/k"), 404, "NoSuchBucket");
      await refused(copy("/up/copy/x.txt", "/up"), 400, "InvalidArgument");
      // a directive S3 does not know (S3: InvalidArgument; an upstream could read it otherwise)
      await refused(copy("/up/copy/x.txt", "/up/copy/src%20with%20space.txt", WRITER, { "x-amz-metadata-directive": "BOGUS" }), 400, "InvalidArgument");
      await refused(copy("/up/copy/x.txt", "/up/copy/src%20with%20space.txt", WRITER, { "x-amz-tagging-directive": "replace" }), 400, "InvalidArgument");
      expect(env.upstreamCalls()).toEqual([]);
    },
    T,
  );

  test(
    "without write on the destination, or when the source may not be read (OPA denies s3:GetObject on secret/): AccessDenied, no copy",
    async () => {
      await refused(copy("/up/copy/r.txt", "/up/copy/src%20with%20space.txt", READER), 403, "AccessDenied");
      await env.s3.put("up", "secret/s.txt", "secret");
      opa.requests.length = 0;
      await refused(copy("/opa/copy/leak.txt", "/opa/secret/s.txt"), 403, "AccessDenied");
      // a copy source with an empty segment would be authorized as "/secret/s.txt" and read as
      // "secret/s.txt" by a store that normalizes paths: refused before the source is authorized
      // or read (the destination's s3:PutObject, asked first, is left out of the list below)
      const before = opa.requests.length;
      await refused(copy("/opa/copy/leak2.txt", "/opa//secret/s.txt"), 400, "InvalidArgument");
      expect(await env.s3.exists("up", "copy/leak2.txt")).toBe(false);
      opa.requests.splice(before);
      expect(await env.s3.exists("up", "copy/r.txt")).toBe(false);
      expect(await env.s3.exists("up", "copy/leak.txt")).toBe(false);
      expect(opa.requests.map((r) => (r.body as { input: { action: string; principal: string } }).input).map((i) => `${i.principal} ${i.action}`)).toEqual(["s3_static s3:PutObject", "s3_static s3:GetObject"]);
    },
    T,
  );
});

describe("UploadPartCopy and GetObjectTagging", () => {
  const MiB = 1024 * 1024;
  const source = new Uint8Array(6 * MiB + 10).map((_, i) => (i * 31 + 7) & 0xff);
  const create = async (key: string, creds = WRITER) => {
    const r = await signedFetch(env, { method: "POST", path: `/up/${key}`, query: [["uploads", ""]], headers: { "x-amz-checksum-algorithm": "CRC32" }, creds });
    return /<UploadId>([^<]+)<\/UploadId>/.exec(await r.text())![1]!;
  };
  const partCopy = (key: string, uploadId: string, part: string, headers: Record<string, string>, creds = WRITER) =>
    signedFetch(env, { method: "PUT", path: `/up/${key}`, query: [["partNumber", part], ["uploadId", uploadId]], headers, creds });

  test(
    "two ranged parts copied server-side within the bucket (S3's CopyPartResult with ETag and the upload's checksum), completed byte-exact",
    async () => {
      await env.s3.put("up", "pc/src.bin", source);
      const uploadId = await create("pc/dst.bin");
      env.mark();
      const parts: Array<{ etag: string; crc: string }> = [];
      for (const [n, range] of [["1", `bytes=0-${5 * MiB - 1}`], ["2", `bytes=${5 * MiB}-${source.length - 1}`]] as const) {
        const r = await partCopy("pc/dst.bin", uploadId, n, { "x-amz-copy-source": "/up/pc/src.bin", "x-amz-copy-source-range": range });
        const xml = await r.text();
        expect(r.status).toBe(200);
        expect(xml).toMatch(/^<\?xml[^>]*\?>\n?<CopyPartResult xmlns="http:\/\/s3\.amazonaws\.com\/doc\/2006-03-01\/"><ETag>[^<]+<\/ETag><LastModified>[^<]+<\/LastModified><ChecksumCRC32>[^<]+<\/ChecksumCRC32><\/CopyPartResult>$/);
        parts.push({ etag: /<ETag>([^<]+)</.exec(xml)![1]!.replaceAll("&quot;", '"'), crc: /<ChecksumCRC32>([^<]+)</.exec(xml)![1]! });
      }
      const calls = env.upstreamCalls();
      expect(calls.map((c) => [c.method, c.pathname, c.query.partNumber, c.headers["x-amz-copy-source"], c.headers["x-amz-copy-source-range"], c.status])).toEqual([
        ["PUT", "/up/pc/dst.bin", "1", "/up/pc/src.bin", `bytes=0-${5 * MiB - 1}`, 200],
        ["PUT", "/up/pc/dst.bin", "2", "/up/pc/src.bin", `bytes=${5 * MiB}-${source.length - 1}`, 200],
      ]);
      const body = `<CompleteMultipartUpload>${parts.map((p, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${p.etag}</ETag><ChecksumCRC32>${p.crc}</ChecksumCRC32></Part>`).join("")}</CompleteMultipartUpload>`;
      const done = await signedFetch(env, { method: "POST", path: "/up/pc/dst.bin", query: [["uploadId", uploadId]], body, payloadHash: new Bun.CryptoHasher("sha256").update(body).digest("hex") });
      expect(done.status).toBe(200);
      expect(Buffer.from((await env.s3.read("up", "pc/dst.bin"))!).equals(Buffer.from(source))).toBe(true);
    },
    T,
  );

  test(
    "refused with S3's errors: a malformed range, no write, a source in another proxy bucket not granted, or not readable (before the upstream); a range past the source's end, a missing source or upload (the upstream's answer)",
    async () => {
      const uploadId = await create("pc/refused.bin");
      const src = { "x-amz-copy-source": "/up/pc/src.bin" };
      await refused(partCopy("pc/refused.bin", uploadId, "1", { ...src, "x-amz-copy-source-range": "bytes=5-1" }), 400, "InvalidArgument");
      await refused(partCopy("pc/refused.bin", uploadId, "1", { ...src, "x-amz-copy-source-range": "bytes=0-" }), 400, "InvalidArgument");
      // a part is at most 5 GiB: a longer range is refused before the upstream (it went there as it was)
      env.mark();
      await refused(partCopy("pc/refused.bin", uploadId, "1", { ...src, "x-amz-copy-source-range": `bytes=0-${5 * 1024 ** 3}` }), 400, "InvalidRequest");
      expect(env.upstreamCalls().filter((c) => c.method === "PUT")).toEqual([]);
      await refused(partCopy("pc/refused.bin", uploadId, "0", src), 400, "InvalidArgument");
      await refused(partCopy("pc/refused.bin", uploadId, "1", src, READER), 403, "AccessDenied");
      // (another proxy bucket the identity has no grant on)
      await refused(partCopy("pc/refused.bin", uploadId, "1", { "x-amz-copy-source": "/teamw/pc/src.bin" }), 403, "AccessDenied");
      await env.s3.put("up", "secret/pc.txt", "secret");
      await refused(signedFetch(env, { method: "PUT", path: "/opa/pc/leak.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], headers: { "x-amz-copy-source": "/opa/secret/pc.txt" } }), 403, "AccessDenied");
      const upstream = async (headers: Record<string, string>, id = uploadId) => {
        const a = await answerOf(await partCopy("pc/refused.bin", id, "1", headers));
        return [a.status, a.code];
      };
      expect(await upstream({ ...src, "x-amz-copy-source-range": `bytes=0-${source.length}` })).toEqual([400, "InvalidArgument"]);
      expect(await upstream({ "x-amz-copy-source": "/up/pc/nope.bin" })).toEqual([404, "NoSuchKey"]);
      expect(await upstream(src, "no-such-upload")).toEqual([404, "NoSuchUpload"]);
      expect(await upstream({ ...src, "x-amz-copy-source-if-match": '"not-the-etag"' })).toEqual([412, "PreconditionFailed"]);
    },
    T,
  );

  test(
    "GetObjectTagging relays the object's tag set; anonymous → AccessDenied; with another sub-resource → NotImplemented",
    async () => {
      env.mark();
      const r = await signedFetch(env, { method: "GET", path: "/up/pc/src.bin", query: [["tagging", ""]] });
      expect([r.status, (await r.text()).replace(/\s+/g, "")]).toEqual([200, expect.stringMatching(/<Tagging[^>]*><TagSet\/?>(<\/TagSet>)?<\/Tagging>$/)]);
      expect(env.upstreamCalls().map((c) => [c.method, c.pathname, Object.keys(c.query)])).toEqual([["GET", "/up/pc/src.bin", ["tagging"]]]);
      await refused(fetch(`${env.endpoint}/up/pc/src.bin?tagging`), 403, "AccessDenied");
      await refused(signedFetch(env, { method: "GET", path: "/up/pc/src.bin", query: [["tagging", ""], ["versionId", "v1"]] }), 501, "NotImplemented");
    },
    T,
  );
});

describe("object tags: PutObjectTagging, DeleteObjectTagging, x-amz-tagging on PutObject and CopyObject", () => {
  const tagsOf = async (key: string) => {
    const r = await signedFetch(env, { method: "GET", path: `/up/${key}`, query: [["tagging", ""]] });
    const xml = await r.text();
    expect(r.status).toBe(200);
    return [...xml.matchAll(/<Tag><Key>([^<]*)<\/Key><Value>([^<]*)<\/Value><\/Tag>/g)].map((m) => `${m[1]}=${m[2]}`);
  };
  const putTags = (key: string, tags: Array<[string, string]>, creds = WRITER, bucket = "up") => {
    const body = `<Tagging><TagSet>${tags.map(([k, v]) => `<Tag><Key>${k}</Key><Value>${v}</Value></Tag>`).join("")}</TagSet></Tagging>`;
    return signedFetch(env, { method: "PUT", path: `/${bucket}/${key}`, query: [["tagging", ""]], body, payloadHash: sha(body), headers: { "content-md5": new Bun.CryptoHasher("md5").update(body).digest("base64") }, creds });
  };
  const sha = (s: string) => new Bun.CryptoHasher("sha256").update(s).digest("hex");

  test(
    "set, read and remove an object's tags; the upstream gets XML built by the proxy with its Content-MD5",
    async () => {
      await env.s3.put("up", "tags/a.txt", "a");
      env.mark();
      const r = await putTags("tags/a.txt", [["team", "blue"], ["note", "a + b"]]);
      expect(r.status).toBe(200);
      const call = env.upstreamCalls()[0]!;
      expect([call.method, call.pathname, Object.keys(call.query), call.status, typeof call.headers["content-md5"]]).toEqual(["PUT", "/up/tags/a.txt", ["tagging"], 200, "string"]);
      expect(await tagsOf("tags/a.txt")).toEqual(["team=blue", "note=a + b"]);
      const d = await signedFetch(env, { method: "DELETE", path: "/up/tags/a.txt", query: [["tagging", ""]] });
      expect(d.status).toBe(204);
      expect(await tagsOf("tags/a.txt")).toEqual([]);
    },
    T,
  );

  test(
    "refused as S3 refuses, before the upstream: 11 tags, a key twice, a key of 129 characters, a key starting aws:, a character outside S3's tag alphabet in a key or a value (the fixture stored them), malformed XML (InvalidTag / MalformedXML); no write grant or a read-only bucket (AccessDenied)",
    async () => {
      const eleven = Array.from({ length: 11 }, (_, i) => [`k${i}`, "v"] as [string, string]);
      await refused(putTags("tags/a.txt", eleven), 400, "InvalidTag");
      await refused(putTags("tags/a.txt", [["k", "1"], ["k", "2"]]), 400, "InvalidTag");
      await refused(putTags("tags/a.txt", [["k".repeat(129), "1"]]), 400, "InvalidTag");
      await refused(putTags("tags/a.txt", [["team", "1"], ["aws:cost-center", "1"]]), 400, "InvalidTag");
      await refused(putTags("tags/a.txt", [["ke&amp;y", "1"]]), 400, "InvalidTag");
      await refused(putTags("tags/a.txt", [["platform", "metal,openstack"]]), 400, "InvalidTag");
      await refused(signedFetch(env, { method: "PUT", path: "/up/tags/a.txt", query: [["tagging", ""]], body: "<Tagging><Tag>", payloadHash: sha("<Tagging><Tag>") }), 400, "MalformedXML");
      // a second tag set, or a tag with two keys, was dropped (only the first stored)
      for (const body of [
        "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet><TagSet><Tag><Key>c</Key><Value>d</Value></Tag></TagSet></Tagging>",
        "<Tagging><TagSet><Tag><Key>a</Key><Key>c</Key><Value>b</Value></Tag></TagSet></Tagging>",
      ]) await refused(signedFetch(env, { method: "PUT", path: "/up/tags/a.txt", query: [["tagging", ""]], body, payloadHash: sha(body) }), 400, "MalformedXML");
      await refused(putTags("tags/a.txt", [["k", "1"]], READER), 403, "AccessDenied");
      await refused(putTags("x.txt", [["k", "1"]], WRITER, "ro"), 403, "AccessDenied");
      await refused(signedFetch(env, { method: "DELETE", path: "/up/tags/a.txt", query: [["tagging", ""]], creds: READER }), 403, "AccessDenied");
    },
    T,
  );

  test(
    "x-amz-tagging on PutObject sets the tags (a later PUT without it has none); CopyObject copies the source's tags, or REPLACEs them",
    async () => {
      const put = (key: string, headers: Record<string, string> = {}) => signedFetch(env, { method: "PUT", path: `/up/${key}`, body: "data", headers });
      expect((await put("tags/p.txt", { "x-amz-tagging": "a=1&b=two%20words" })).status).toBe(200);
      expect(await tagsOf("tags/p.txt")).toEqual(["a=1", "b=two words"]);
      const copy = (dest: string, headers: Record<string, string> = {}) => signedFetch(env, { method: "PUT", path: `/up/${dest}`, headers: { "x-amz-copy-source": "/up/tags/p.txt", ...headers } });
      expect((await copy("tags/c1.txt")).status).toBe(200);
      expect(await tagsOf("tags/c1.txt")).toEqual(["a=1", "b=two words"]);
      expect((await copy("tags/c2.txt", { "x-amz-tagging-directive": "REPLACE", "x-amz-tagging": "x=y" })).status).toBe(200);
      expect(await tagsOf("tags/c2.txt")).toEqual(["x=y"]);
      expect((await put("tags/p.txt")).status).toBe(200);
      expect(await tagsOf("tags/p.txt")).toEqual([]);
      // (a key twice: the header is no query of distinct names, S3's InvalidArgument)
      const bad = await answerOf(await put("tags/bad.txt", { "x-amz-tagging": "a=1&a=2" }));
      expect([bad.status, bad.code]).toEqual([400, "InvalidArgument"]);
      expect(await env.s3.exists("up", "tags/bad.txt")).toBe(false);
    },
    T,
  );
});

describe("GetObject and HeadObject of one part (?partNumber)", () => {
  const MiB = 1024 * 1024;
  const body = new Uint8Array(11 * MiB + 7).map((_, i) => (i * 13 + 5) & 0xff);
  const part = (key: string, n: string, method = "GET", headers: Record<string, string> = {}) =>
    signedFetch(env, { method, path: `/up/${key}`, query: [["partNumber", n]], headers });

  test(
    "a multipart object: each part is its range (206, Content-Range, x-amz-mp-parts-count), the parts joined are the object; HEAD says the same without a body",
    async () => {
      const id = /<UploadId>([^<]+)</.exec(await (await signedFetch(env, { method: "POST", path: "/up/parts/mpu.bin", query: [["uploads", ""]] })).text())![1]!;
      const cuts = [0, 5 * MiB, 10 * MiB, body.length];
      const etags: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await signedFetch(env, { method: "PUT", path: "/up/parts/mpu.bin", query: [["partNumber", String(i + 1)], ["uploadId", id]], body: body.subarray(cuts[i], cuts[i + 1]) });
        etags.push(r.headers.get("etag")!);
      }
      const xml = `<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join("")}</CompleteMultipartUpload>`;
      expect((await signedFetch(env, { method: "POST", path: "/up/parts/mpu.bin", query: [["uploadId", id]], body: xml, payloadHash: new Bun.CryptoHasher("sha256").update(xml).digest("hex") })).status).toBe(200);
      env.mark();
      const got: Uint8Array[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await part("parts/mpu.bin", String(i + 1));
        expect([r.status, r.headers.get("content-range"), r.headers.get("x-amz-mp-parts-count")]).toEqual([206, `bytes ${cuts[i]}-${cuts[i + 1]! - 1}/${body.length}`, "3"]);
        got.push(new Uint8Array(await r.arrayBuffer()));
      }
      expect(Buffer.concat(got).equals(Buffer.from(body))).toBe(true);
      expect(env.upstreamCalls().map((c) => c.query.partNumber)).toEqual(["1", "2", "3"]);
      const head = await part("parts/mpu.bin", "2", "HEAD");
      expect([head.status, head.headers.get("content-length"), head.headers.get("x-amz-mp-parts-count"), (await head.arrayBuffer()).byteLength]).toEqual([206, String(5 * MiB), "3", 0]);
      const past = await answerOf(await part("parts/mpu.bin", "4"));
      expect([past.status, past.code]).toEqual([416, "InvalidPartNumber"]);
      // a HEAD's 416 from the upstream has no body to name it: still the part's 416, not a 400
      const pastHead = await part("parts/mpu.bin", "4", "HEAD");
      expect([pastHead.status, (await pastHead.arrayBuffer()).byteLength]).toEqual([416, 0]);
    },
    T,
  );

  test(
    "a single-part object is part 1 (no parts count); refused before the upstream: a Range beside partNumber, part 0 or 10001; no read grant",
    async () => {
      await env.s3.put("up", "parts/single.txt", "single part");
      const r = await part("parts/single.txt", "1");
      expect([r.status, r.headers.get("content-range"), r.headers.get("x-amz-mp-parts-count"), await r.text()]).toEqual([206, "bytes 0-10/11", null, "single part"]);
      const two = await answerOf(await part("parts/single.txt", "2"));
      expect([two.status, two.code]).toEqual([416, "InvalidPartNumber"]);
      // S3's details say which part of how many (they were dropped)
      expect(two.body).toContain("<PartNumberRequested>2</PartNumberRequested>");
      expect(two.body).toContain("<ActualPartCount>1</ActualPartCount>");
      await refused(part("parts/single.txt", "1", "GET", { range: "bytes=0-1" }), 400, "InvalidRequest");
      await refused(part("parts/single.txt", "0"), 400, "InvalidArgument");
      await refused(part("parts/single.txt", "10001"), 400, "InvalidArgument");
      await refused(signedFetch(env, { method: "GET", path: "/other/parts/single.txt", query: [["partNumber", "1"]], creds: NODELETE }), 403, "AccessDenied");
    },
    T,
  );
});
