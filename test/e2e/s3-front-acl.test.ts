/**
 * ACLs on the S3 front (src/fronts/s3/acl.ts), as S3 answers them on a bucket with ACLs disabled:
 * read with real clients (aws-cli get-object-acl / get-bucket-acl, s3cmd info), set only to what
 * they already are (an owner-only canned ACL: 200, nothing changes), anything else refused
 * AccessControlListNotSupported; grants and read-only buckets apply as to any read or write.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { awsCli } from "../clients/aws.ts";
import { clientTest } from "../clients/run.ts";
import { s3cmdClient } from "../clients/s3cmd.ts";
import { ownerOf } from "../../src/fronts/s3/xml.ts";
import { answerOf, READER, signedFetch, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(60_000);

let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv();
  await env.s3.put("up", "docs/a.txt", "hello acl");
});
afterAll(() => env.stop());

const writer = ownerOf("writer");

clientTest("aws")("aws-cli: get-object-acl and get-bucket-acl read the owner's FULL_CONTROL; a missing key is NoSuchKey; a grant is still needed", async () => {
  using aws = awsCli({ endpoint: env.endpoint, credentials: WRITER });
  const obj = await aws.s3api("get-object-acl", "--bucket", "up", "--key", "docs/a.txt");
  expect(obj.stderr).toBe("");
  expect(JSON.parse(obj.stdout)).toEqual({
    Owner: { DisplayName: "writer", ID: writer.id },
    Grants: [{ Grantee: { DisplayName: "writer", ID: writer.id, Type: "CanonicalUser" }, Permission: "FULL_CONTROL" }],
  });
  const bucket = await aws.s3api("get-bucket-acl", "--bucket", "up");
  expect(JSON.parse(bucket.stdout).Grants[0].Permission).toBe("FULL_CONTROL");

  env.mark();
  const missing = await aws.s3api("get-object-acl", "--bucket", "up", "--key", "docs/nope.txt");
  expect(missing.code).not.toBe(0);
  expect(missing.stderr).toContain("NoSuchKey");
  // the existence check went upstream, re-signed with the bucket's own key
  expect(env.upstreamCalls().map((c) => c.method)).toEqual(["HEAD"]);

  // READER has no grant on `other`: AccessDenied, nothing upstream
  using reader = awsCli({ endpoint: env.endpoint, credentials: READER });
  env.mark();
  const denied = await reader.s3api("get-object-acl", "--bucket", "other", "--key", "docs/a.txt");
  expect(denied.stderr).toContain("AccessDenied");
  expect(env.upstreamCalls()).toEqual([]);
});

clientTest("aws")("aws-cli: put-object-acl / put-bucket-acl take an owner-only ACL (a no-op) and refuse any other; a read-only bucket or a reader is AccessDenied", async () => {
  using aws = awsCli({ endpoint: env.endpoint, credentials: WRITER });
  using reader = awsCli({ endpoint: env.endpoint, credentials: READER });
  // (the calls run side by side: none changes anything, which the last check shows; each is mostly
  // aws-cli's own start-up)
  const ownerOnly = { Owner: { ID: writer.id }, Grants: [{ Grantee: { Type: "CanonicalUser", ID: writer.id }, Permission: "FULL_CONTROL" }] };
  const otherOwner = { ...ownerOnly, Grants: [{ Grantee: { Type: "CanonicalUser", ID: ownerOf("someone").id }, Permission: "FULL_CONTROL" }] };
  const readToo = { ...ownerOnly, Grants: [...ownerOnly.Grants, { Grantee: { Type: "CanonicalUser", ID: writer.id }, Permission: "READ" }] };
  const allUsersRead = { Owner: { ID: writer.id }, Grants: [{ Grantee: { Type: "Group", URI: "http://acs.amazonaws.com/groups/global/AllUsers" }, Permission: "READ" }] };
  const cases: Array<[string, Promise<{ stderr: string }>, string]> = [
    ["canned private", aws.s3api("put-object-acl", "--bucket", "up", "--key", "docs/a.txt", "--acl", "private"), ""],
    ["canned bucket-owner-full-control", aws.s3api("put-object-acl", "--bucket", "up", "--key", "docs/a.txt", "--acl", "bucket-owner-full-control"), ""],
    ["bucket canned private", aws.s3api("put-bucket-acl", "--bucket", "up", "--acl", "private"), ""],
    ["canned public-read", aws.s3api("put-object-acl", "--bucket", "up", "--key", "docs/a.txt", "--acl", "public-read"), "AccessControlListNotSupported"],
    ["grant-read AllUsers", aws.s3api("put-object-acl", "--bucket", "up", "--key", "docs/a.txt", "--grant-read", "uri=http://acs.amazonaws.com/groups/global/AllUsers"), "AccessControlListNotSupported"],
    ["bucket document AllUsers READ", aws.s3api("put-bucket-acl", "--bucket", "up", "--access-control-policy", JSON.stringify(allUsersRead)), "AccessControlListNotSupported"],
    // the owner's full control as a document (what GetObjectAcl gave) is taken like the canned ACL; another owner or a second grantee is not
    ["document owner only", aws.s3api("put-object-acl", "--bucket", "up", "--key", "docs/a.txt", "--access-control-policy", JSON.stringify(ownerOnly)), ""],
    ["document another owner", aws.s3api("put-object-acl", "--bucket", "up", "--key", "docs/a.txt", "--access-control-policy", JSON.stringify(otherOwner)), "AccessControlListNotSupported"],
    ["document second grantee", aws.s3api("put-object-acl", "--bucket", "up", "--key", "docs/a.txt", "--access-control-policy", JSON.stringify(readToo)), "AccessControlListNotSupported"],
    ["missing key", aws.s3api("put-object-acl", "--bucket", "up", "--key", "docs/nope.txt", "--acl", "private"), "NoSuchKey"],
    // an ACL change is a write: a read-only bucket refuses it whatever the grants, and so does an identity without `write`
    ["read-only bucket", aws.s3api("put-bucket-acl", "--bucket", "ro", "--acl", "private"), "AccessDenied"],
    ["reader", reader.s3api("put-object-acl", "--bucket", "up", "--key", "docs/a.txt", "--acl", "private"), "AccessDenied"],
  ];
  const answers = await Promise.all(cases.map(([, run]) => run));
  for (const [i, [name, , want]] of cases.entries()) {
    const { stderr } = answers[i]!;
    if (want === "") expect({ name, stderr }).toEqual({ name, stderr: "" });
    else expect(`${name}: ${stderr}`).toContain(want);
  }
  // the object is untouched
  expect(new TextDecoder().decode((await aws.s3("cp", "s3://up/docs/a.txt", "-")).bytes)).toBe("hello acl");
});

clientTest("s3cmd")("s3cmd info reads the object's ACL (it printed an error for the 501 before)", async () => {
  using s3cmd = s3cmdClient({ endpoint: env.endpoint, credentials: WRITER });
  const info = await s3cmd.run("info", "s3://up/docs/a.txt");
  expect(info.code).toBe(0);
  expect(info.stdout).toMatch(/ACL:\s+writer: FULL_CONTROL/);
});

clientTest("s3cmd")("s3cmd cp and mv within a bucket: the copy's ACL (the owner's full control, written back as a document) is taken, so both succeed", async () => {
  using s3cmd = s3cmdClient({ endpoint: env.endpoint, credentials: WRITER });
  const cp = await s3cmd.run("cp", "s3://up/docs/a.txt", "s3://up/docs/copied.txt");
  expect([cp.code, cp.stderr]).toEqual([0, ""]);
  const mv = await s3cmd.run("mv", "s3://up/docs/copied.txt", "s3://up/docs/moved.txt");
  expect([mv.code, mv.stderr]).toEqual([0, ""]);
  expect(await env.s3.exists("up", "docs/copied.txt")).toBe(false);
  expect(new TextDecoder().decode(await env.s3.read("up", "docs/moved.txt"))).toBe("hello acl");
});

// GetObjectAcl of a version: the existence check's HEAD has no body, so S3's own code was lost
// (an invalid version id was a vague 400 InvalidRequest), and every 404 was NoSuchVersion, which
// skipped the rule that a missing key is AccessDenied to a caller without `list`.
test("GetObjectAcl with a versionId: S3's own error for the version (InvalidArgument for a bad id), and a missing key is AccessDenied without `list`, as GetObject's", async () => {
  const acl = (bucket: string, key: string, versionId: string) => signedFetch(env, { method: "GET", path: `/${bucket}/${key}`, query: [["acl", ""], ["versionId", versionId]] }).then(answerOf);
  const obj = (bucket: string, key: string, versionId: string) => signedFetch(env, { method: "GET", path: `/${bucket}/${key}`, query: [["versionId", versionId]] }).then(answerOf);
  for (const [bucket, key, version] of [["up", "docs/a.txt", "zz"], ["other", "docs/nope.txt", "null"], ["up", "docs/nope.txt", "null"]] as const) {
    const got = await acl(bucket, key, version);
    const read = await obj(bucket, key, version);
    expect({ bucket, key, version, status: got.status, code: got.code }).toEqual({ bucket, key, version, status: read.status, code: read.code });
  }
  expect((await acl("other", "docs/nope.txt", "null")).code).toBe("AccessDenied");
  expect((await acl("up", "docs/a.txt", "zz")).code).toBe("InvalidArgument");
  expect((await acl("up", "docs/a.txt", "null")).status).toBe(200);
});

// PutObjectAcl, PutObjectTagging and DeleteObjectTagging of a missing key relayed S3's NoSuchKey to
// a caller without `list`, so a writer could probe which keys exist where a GetObject would not tell.
test("PutObjectAcl, PutObjectTagging and DeleteObjectTagging of a missing key: NoSuchKey only with `list`, AccessDenied without, as GetObject's", async () => {
  const tags = "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>";
  const calls = (bucket: string) => [
    signedFetch(env, { method: "PUT", path: `/${bucket}/docs/nope.txt`, query: [["acl", ""]], headers: { "x-amz-acl": "private" } }),
    signedFetch(env, { method: "PUT", path: `/${bucket}/docs/nope.txt`, query: [["tagging", ""]], body: tags }),
    signedFetch(env, { method: "DELETE", path: `/${bucket}/docs/nope.txt`, query: [["tagging", ""]] }),
  ];
  const answers = async (bucket: string) => (await Promise.all(calls(bucket).map((p) => p.then(answerOf)))).map((a) => `${a.status} ${a.code}`);
  // (WRITER holds read and write on `other`, no list; read, list and write on `up`)
  expect(await answers("other")).toEqual(["403 AccessDenied", "403 AccessDenied", "403 AccessDenied"]);
  expect(await answers("up")).toEqual(["404 NoSuchKey", "404 NoSuchKey", "404 NoSuchKey"]);
});

// An ACL document is owner-only as a whole: a second AccessControlList, Grantee, Permission or ID,
// or a grant outside the list, grants what the first ones do not (the proxy read the first of
// each and answered 200, as if a public-read grant in a second list had been applied).
test("an ACL document that names more than the owner's FULL_CONTROL in a second element of any kind is AccessControlListNotSupported, nothing asked upstream; GetObjectAcl's own document is still taken", async () => {
  const id = writer.id;
  const xsi = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"';
  const ownerGrant = `<Grant><Grantee ${xsi} xsi:type="CanonicalUser"><ID>${id}</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant>`;
  const allUsers = `<Grant><Grantee ${xsi} xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant>`;
  const policy = (inner: string) => `<AccessControlPolicy><Owner><ID>${id}</ID></Owner>${inner}</AccessControlPolicy>`;
  const refused: Record<string, string> = {
    "a second AccessControlList": policy(`<AccessControlList>${ownerGrant}</AccessControlList><AccessControlList>${allUsers}</AccessControlList>`),
    "a Grant outside the list": policy(`<AccessControlList>${ownerGrant}</AccessControlList>${allUsers}`),
    "a second Permission": policy(`<AccessControlList><Grant><Grantee><ID>${id}</ID></Grantee><Permission>FULL_CONTROL</Permission><Permission>READ</Permission></Grant></AccessControlList>`),
    "a second Grantee": policy(`<AccessControlList><Grant><Grantee><ID>${id}</ID></Grantee><Grantee><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList>`),
    "a second ID": policy(`<AccessControlList><Grant><Grantee><ID>${id}</ID><ID>${ownerOf("someone").id}</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList>`),
    "a second Owner": `<AccessControlPolicy><Owner><ID>${id}</ID></Owner><Owner><ID>${ownerOf("someone").id}</ID></Owner><AccessControlList>${ownerGrant}</AccessControlList></AccessControlPolicy>`,
    "a Group grantee with the owner's ID": policy(`<AccessControlList><Grant><Grantee ${xsi} xsi:type="Group"><ID>${id}</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList>`),
  };
  for (const [name, xml] of Object.entries(refused)) {
    env.mark();
    const a = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/docs/a.txt", query: [["acl", ""]], body: xml }));
    expect({ name, status: a.status, code: a.code, upstream: env.upstreamCalls().length }).toEqual({ name, status: 400, code: "AccessControlListNotSupported", upstream: 0 });
  }
  const own = await (await signedFetch(env, { method: "GET", path: "/up/docs/a.txt", query: [["acl", ""]] })).text();
  expect((await signedFetch(env, { method: "PUT", path: "/up/docs/a.txt", query: [["acl", ""]], body: own })).status).toBe(200);
});
