/**
 * A session that a reload no longer admits (jwt.claims tightened, jwt.issuer or jwt.audience
 * changed) is refused on every request, ListBuckets and GetCallerIdentity included (they have no
 * bucket to check the rules on).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { ListBucketsCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { fromWebToken } from "@aws-sdk/credential-provider-web-identity";
import { startS3Fixture } from "../fixtures/s3.ts";
import { Sha256 } from "@smithy/core/checksum";
import { SignatureV4 } from "@smithy/signature-v4";
import { sign } from "../fixtures/jwt.ts";
import { presignPost } from "../../src/fronts/presign.ts";
import { APP, frontYaml, hs256, JWT_SECRET, startFrontsOn, UPSTREAM, type S3FrontEnv } from "./s3-front-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let env: S3FrontEnv;
let yaml: string;
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  // (write: the PostObject case writes to private)
  const s3 = await startS3Fixture({ buckets: [{ name: "data" }, { name: "private" }], credentials: [{ ...UPSTREAM, buckets: ["data", "private"], write: true }] });
  yaml = frontYaml(s3.endpoint);
  env = await startFrontsOn(yaml, s3, true);
});
afterAll(() => env.stop());

type Creds = { accessKeyId: string; secretAccessKey: string; sessionToken?: string };

/** Session credentials from AssumeRoleWithWebIdentity (POST), and the AssumedRoleUser's ARN. */
async function assume(webIdentityToken: string): Promise<{ session: Creds; arn: string }> {
  const form = new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: "arn:aws:iam::123456789012:role/r", RoleSessionName: "who", WebIdentityToken: webIdentityToken });
  const xml = await (await fetch(env.endpoint + "/", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form.toString() })).text();
  const get = (tag: string) => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)![1]!;
  return { session: { accessKeyId: get("AccessKeyId"), secretAccessKey: get("SecretAccessKey"), sessionToken: get("SessionToken") }, arn: get("Arn") };
}

/** GetCallerIdentity, signed as the JS SDK signs. */
async function whoAmI(credentials: Creds) {
  const url = new URL(env.endpoint);
  const body = "Action=GetCallerIdentity&Version=2011-06-15";
  const signed = await new SignatureV4({ service: "sts", region: "us-east-1", credentials, sha256: Sha256 }).sign({
    method: "POST", protocol: "http:", hostname: url.hostname, port: Number(url.port), path: "/",
    headers: { host: url.host, "content-type": "application/x-www-form-urlencoded" }, body,
  });
  const res = await fetch(env.endpoint + "/", { method: "POST", headers: signed.headers, body });
  const text = await res.text();
  return { status: res.status, code: /<Code>([^<]*)<\/Code>/.exec(text)?.[1], arn: /<Arn>([^<]*)<\/Arn>/.exec(text)?.[1] };
}


test("ListBuckets with a session a reload revoked (a cut-off on iat in jwt.claims) → 403 AccessDenied, not an empty list", async () => {
  const c = new S3Client({
    endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, maxAttempts: 1,
    credentials: fromWebToken({ roleArn: "arn:aws:iam::123456789012:role/r", webIdentityToken: hs256({ sub: "alice", iat: now() - 60, exp: now() + 600 }), roleSessionName: "s1", clientConfig: { endpoint: env.endpoint, region: "us-east-1", maxAttempts: 1 } }),
  });
  try {
    expect(((await c.send(new ListBucketsCommand({}))).Buckets ?? []).map((b) => b.Name)).toEqual(["data", "open", "private"]);
    const cutoff = `  claims: [{ claim: iat, operator: gte, value: ${now()} }]\n`;
    const r = await env.app.reload(undefined, { text: yaml.replace(`  secret: "`, `${cutoff}  secret: "`), file: "reload.yaml", baseDir: "/tmp" });
    expect(r).toMatchObject({ ok: true });
    await expect(c.send(new ListBucketsCommand({}))).rejects.toMatchObject({ name: "AccessDenied", $metadata: { httpStatusCode: 403 } });
  } finally {
    c.destroy();
  }
});

test("GetCallerIdentity with a session a reload revoked → 403 AccessDenied in STS's dialect (it answered the session's ARN as if still good); a static key still answers", async () => {
  expect(await env.app.reload(undefined, { text: yaml, file: "reload.yaml", baseDir: "/tmp" })).toMatchObject({ ok: true });
  const { session, arn } = await assume(hs256({ sub: "alice", iat: now() - 60, exp: now() + 600 }));
  expect(await whoAmI(session)).toEqual({ status: 200, code: undefined, arn });
  const cutoff = `  claims: [{ claim: iat, operator: gte, value: ${now()} }]\n`;
  expect(await env.app.reload(undefined, { text: yaml.replace(`  secret: "`, `${cutoff}  secret: "`), file: "reload.yaml", baseDir: "/tmp" })).toMatchObject({ ok: true });
  expect(await whoAmI(session)).toEqual({ status: 403, code: "AccessDenied", arn: undefined });
  expect(await whoAmI(APP)).toEqual({ status: 200, code: undefined, arn: "arn:aws:iam::000000000000:user/app1" });
});

test("a session whose token's signing key a reload removed (a jwt.keys entry dropped) → refused everything as a token that no longer verifies: S3's 400 InvalidToken (it was AccessDenied, which tells a client its credentials will never do), STS's 403 InvalidClientTokenId on GetCallerIdentity; a session of a kept key still works", async () => {
  const OLD = "s3-front-old-jwt-secret-0123456789abcdef";
  const withOld = yaml.replace(`  secret: "`, `  keys: [{ id: old, algorithm: HS256, secret: "${OLD}" }]\n  secret: "`);
  expect(await env.app.reload(undefined, { text: withOld, file: "reload.yaml", baseDir: "/tmp" })).toMatchObject({ ok: true });
  const old = await assume(await sign({ sub: "alice", exp: now() + 600 }, { alg: "HS256", key: OLD }));
  const kept = await assume(await sign({ sub: "bob", exp: now() + 600 }, { alg: "HS256", key: JWT_SECRET }));
  const list = async (credentials: Creds) => {
    const c = new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, maxAttempts: 1, credentials });
    try {
      return ((await c.send(new ListBucketsCommand({}))).Buckets ?? []).map((b) => b.Name).join(",");
    } catch (e) {
      return `${(e as Error).name} ${(e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode}`;
    } finally {
      c.destroy();
    }
  };
  /** A bucket's listing (ListObjectsV2): its status and code. */
  const listObjects = async (credentials: Creds) => {
    const c = new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, maxAttempts: 1, credentials });
    try {
      return String((await c.send(new ListObjectsV2Command({ Bucket: "data" }))).$metadata.httpStatusCode);
    } catch (e) {
      return `${(e as Error).name} ${(e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode}`;
    } finally {
      c.destroy();
    }
  };
  for (const s of [old, kept]) {
    expect(await list(s.session)).toBe("data,open,private");
    expect(await whoAmI(s.session)).toMatchObject({ status: 200, arn: s.arn });
  }
  expect(await env.app.reload(undefined, { text: yaml, file: "reload.yaml", baseDir: "/tmp" })).toMatchObject({ ok: true });
  expect(await list(old.session)).toBe("InvalidToken 400");
  expect(await listObjects(old.session)).toBe("InvalidToken 400");
  expect(await whoAmI(old.session)).toEqual({ status: 403, code: "InvalidClientTokenId", arn: undefined });
  expect(await list(kept.session)).toBe("data,open,private");
  expect(await listObjects(kept.session)).toBe("200");
  expect(await whoAmI(kept.session)).toMatchObject({ status: 200, arn: kept.arn });
});

test("a browser form upload (PostObject) signed by a session whose token's signing key a reload removed → 400 InvalidToken, as the session's other requests (it was 403 AccessDenied); a session of a kept key still uploads", async () => {
  const OLD = "s3-front-old-jwt-secret-0123456789abcdef";
  const writable = yaml.replace("    path_prefix: /private\n", "    path_prefix: /private\n    access: read-write\n");
  const withOld = writable.replace(`  secret: "`, `  keys: [{ id: old, algorithm: HS256, secret: "${OLD}" }]\n  secret: "`);
  expect(await env.app.reload(undefined, { text: withOld, file: "reload.yaml", baseDir: "/tmp" })).toMatchObject({ ok: true });
  const old = await assume(await sign({ sub: "alice", exp: now() + 600 }, { alg: "HS256", key: OLD }));
  const kept = await assume(await sign({ sub: "bob", exp: now() + 600 }, { alg: "HS256", key: JWT_SECRET }));
  /** A PostObject of a small file to `private`, signed with the session: its status and code. */
  const post = async (s: Creds, key: string) => {
    const t = Date.now();
    const p = presignPost({ origin: env.endpoint, bucket: "private", key, region: "us-east-1", accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey, sessionToken: s.sessionToken, now: t, expiresAt: t + 300_000, maxSize: 1000 });
    const form = new FormData();
    for (const [k, v] of Object.entries(p.fields)) form.append(k, v);
    form.append("file", new Blob(["form body"]), "f.txt");
    const res = await fetch(p.url, { method: "POST", body: form });
    const text = await res.text();
    return `${res.status} ${/<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? ""}`.trim();
  };
  expect(await post(old.session, "form/old-before")).toBe("204");
  expect(await env.app.reload(undefined, { text: writable, file: "reload.yaml", baseDir: "/tmp" })).toMatchObject({ ok: true });
  expect(await post(old.session, "form/old-after")).toBe("400 InvalidToken");
  expect(await post(kept.session, "form/kept-after")).toBe("204");
  expect(await env.app.reload(undefined, { text: yaml, file: "reload.yaml", baseDir: "/tmp" })).toMatchObject({ ok: true });
});
