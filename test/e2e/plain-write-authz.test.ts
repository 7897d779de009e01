/**
 * Authorizers see the write's action on the plain front: an OPA policy and an OpenFGA model can
 * allow a user to read and deny the same user writes. The denied write never reaches S3.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { OpaServer } from "../fixtures/opa.ts";
import { OpenFgaServer } from "../fixtures/openfga.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bearer, bucket, startWriteEnv, WRITER, type WriteEnv } from "./plain-write-env.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const T = 20_000;
const STORE = "01HWRITESTORE00000000000AB";

let s3: S3Fixture;
let opa: OpaServer;
let fga: OpenFgaServer;
let env: WriteEnv;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }, { name: "ro" }], credentials: [WRITER] });
  // reads for everyone with a token; writes for editors only; tags for editors, except under opa/notag/
  opa = OpaServer.start({
    "uploads/allow": (i) =>
      i.action === "s3:GetObject" ||
      ((i.action === "s3:PutObject" || i.action === "s3:DeleteObject") && i.jwt_claims?.role === "editor") ||
      (i.action === "s3:PutObjectTagging" && i.jwt_claims?.role === "editor" && !i.key.startsWith("opa/notag/")),
  });
  fga = OpenFgaServer.start({
    storeId: STORE,
    tuples: [
      { user: "user:alice", relation: "viewer", object: "folder:fga/" },
      { user: "user:bob", relation: "editor", object: "folder:fga/up/" },
      { user: "folder:fga/", relation: "parent", object: "folder:fga/up/" },
      { user: "folder:fga/up/", relation: "parent", object: "file:fga/up/a.txt" },
    ],
  });
  env = await startWriteEnv(
    {
      buckets: (ep) =>
        bucket("opa", "/opa", "rw", ep, `    access: read-write\n    auth: { enabled: true }\n    authorization: { type: opa, opa_url: "${opa.url}", opa_policy_path: uploads/allow, opa_cache_ttl_seconds: 60, opa_timeout_ms: 5000 }\n`) +
        bucket("fga", "/fga", "rw", ep, `    access: read-write\n    auth: { enabled: true }\n    authorization: { type: openfga, openfga_endpoint: "${fga.url}", openfga_store_id: "${STORE}", openfga_timeout_ms: 5000 }\n`),
    },
    s3,
  );
});

afterAll(async () => {
  await env?.stop();
  opa?.close();
  fga?.close();
  await s3?.stop();
});

describe("OPA", () => {
  test("the policy sees s3:PutObject / s3:DeleteObject: a reader reads but may not write, an editor writes", async () => {
    await s3.put("rw", "opa/doc.txt", "v1");
    const reader = bearer({ sub: "rita", role: "reader" });
    expect(await (await fetch(env.url("/opa/opa/doc.txt"), { headers: reader })).text()).toBe("v1");
    const from = s3.requests.length;
    const put = await fetch(env.url("/opa/opa/doc.txt"), { method: "PUT", body: "v2", headers: reader });
    expect(put.status).toBe(403);
    expect(((await put.json()) as { message: string }).message).toBe("The authorization policy denied this request");
    expect((await fetch(env.url("/opa/opa/doc.txt"), { method: "DELETE", headers: reader })).status).toBe(403);
    expect(s3.requests.slice(from).filter((r) => !r.admin && (r.method === "PUT" || r.method === "DELETE"))).toEqual([]);
    expect(new TextDecoder().decode(await s3.read("rw", "opa/doc.txt"))).toBe("v1");

    const asked = opa.requests.map((r) => r.body.input).filter((i) => i.jwt_claims?.sub === "rita" && i.method !== "GET");
    expect(asked.map((i) => [i.method, i.action, i.key])).toEqual([
      ["PUT", "s3:PutObject", "opa/doc.txt"],
      ["DELETE", "s3:DeleteObject", "opa/doc.txt"],
    ]);

    const editor = bearer({ sub: "eve", role: "editor" });
    expect((await fetch(env.url("/opa/opa/doc.txt"), { method: "PUT", body: "v2", headers: editor })).status).toBe(200);
    expect(new TextDecoder().decode(await s3.read("rw", "opa/doc.txt"))).toBe("v2");
    expect((await fetch(env.url("/opa/opa/doc.txt"), { method: "DELETE", headers: editor })).status).toBe(204);
    expect(await s3.exists("rw", "opa/doc.txt")).toBe(false);
  }, T);

  test("a PUT that sets tags (x-amz-tagging) also needs s3:PutObjectTagging, as on the S3 front: a policy refusing tags refuses the write, nothing stored", async () => {
    const editor = bearer({ sub: "tina", role: "editor" });
    const tagged = { ...editor, "x-amz-tagging": "k=v" };
    const from = s3.requests.length;
    const put = await fetch(env.url("/opa/opa/notag/t.txt"), { method: "PUT", body: "tagged", headers: tagged });
    expect(put.status).toBe(403);
    expect(s3.requests.slice(from).filter((r) => !r.admin && r.method === "PUT")).toEqual([]);
    expect(await s3.exists("rw", "opa/notag/t.txt")).toBe(false);
    const asked = opa.requests.map((r) => r.body.input).filter((i) => i.jwt_claims?.sub === "tina");
    expect(asked.map((i) => [i.method, i.action, i.key])).toEqual([
      ["PUT", "s3:PutObject", "opa/notag/t.txt"],
      ["PUT", "s3:PutObjectTagging", "opa/notag/t.txt"],
    ]);
    // the same write untagged, or tagged where the policy allows tags, is stored
    expect((await fetch(env.url("/opa/opa/notag/u.txt"), { method: "PUT", body: "untagged", headers: editor })).status).toBe(200);
    expect((await fetch(env.url("/opa/opa/tagok/t.txt"), { method: "PUT", body: "tagged", headers: tagged })).status).toBe(200);
    expect(await s3.exists("rw", "opa/tagok/t.txt")).toBe(true);
  }, T);

  test("a cached allow for a read is never reused for a write of the same key", async () => {
    await s3.put("rw", "opa/cached.txt", "v1");
    const reader = bearer({ sub: "rob", role: "reader" });
    for (let i = 0; i < 2; i++) expect((await fetch(env.url("/opa/opa/cached.txt"), { headers: reader })).status).toBe(200);
    expect((await fetch(env.url("/opa/opa/cached.txt"), { method: "PUT", body: "x", headers: reader })).status).toBe(403);
  }, T);
});

describe("OpenFGA", () => {
  test("writes are checked with the editor relation: a viewer reads but may not write; an editor of a folder writes (and reads) below it", async () => {
    await s3.put("rw", "up/a.txt", "v1");
    const alice = bearer({ sub: "alice" });
    expect(await (await fetch(env.url("/fga/up/a.txt"), { headers: alice })).text()).toBe("v1");
    const put = await fetch(env.url("/fga/up/a.txt"), { method: "PUT", body: "by alice", headers: alice });
    expect(put.status).toBe(403);
    expect(new TextDecoder().decode(await s3.read("rw", "up/a.txt"))).toBe("v1");

    const bob = bearer({ sub: "bob" });
    expect((await fetch(env.url("/fga/up/a.txt"), { method: "PUT", body: "by bob", headers: bob })).status).toBe(200);
    expect(await (await fetch(env.url("/fga/up/a.txt"), { headers: bob })).text()).toBe("by bob");

    const checks = fga.requests.map((r) => r.body.tuple_key as { user: string; relation: string; object: string });
    expect(checks).toContainEqual({ user: "user:alice", relation: "viewer", object: "file:fga/up/a.txt" });
    expect(checks).toContainEqual({ user: "user:alice", relation: "editor", object: "file:fga/up/a.txt" });
    expect(checks).toContainEqual({ user: "user:bob", relation: "editor", object: "file:fga/up/a.txt" });
    expect((await fetch(env.url("/fga/up/a.txt"), { method: "DELETE", headers: alice })).status).toBe(403);
    expect(await s3.exists("rw", "up/a.txt")).toBe(true);
  }, T);
});
