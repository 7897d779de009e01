/**
 * Temporary credentials from a JWT on the S3 front: `aws sts assume-role-with-web-identity
 * --endpoint-url` and the JS SDK's web-identity provider get credentials, and those credentials
 * read exactly what the token's user may read on the plain front (bucket auth + claim rules);
 * every STS error in STS's dialect; the session ends at the token's exp.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { GetObjectCommand, ListBucketsCommand, S3Client } from "@aws-sdk/client-s3";
import { fromTokenFile, fromWebToken } from "@aws-sdk/credential-provider-web-identity";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { awsCli } from "../clients/aws.ts";
import { clientTest } from "../clients/run.ts";
import { waitFor } from "../helpers/wait.ts";
import { hs256, startS3FrontEnv, type S3FrontEnv } from "./s3-front-helpers.ts";
import { signedFetch } from "./s3-front-upload-helpers.ts";
import { ALGORITHM, amzDate, canonicalQuery, canonicalRequest, credentialScope, deriveSigningKey, signature, stringToSign, UNSIGNED_PAYLOAD } from "../../src/s3/sigv4.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const ROLE = "arn:aws:iam::123456789012:role/reader";
const T = 120_000;
let env: S3FrontEnv;
const now = () => Math.floor(Date.now() / 1000);
const token = (claims: Record<string, unknown>, ttl = 3600) => hs256({ sub: "alice", iat: now(), exp: now() + ttl, ...claims });

beforeAll(async () => {
  env = await startS3FrontEnv();
  await env.s3.put("data", "hello.txt", "hello");
  await env.s3.put("private", "secret.txt", "team a only");
});
afterAll(() => env.stop());

/** POSTs an AssumeRoleWithWebIdentity form; returns status, code and the raw XML. */
async function assume(fields: Record<string, string>, contentType = "application/x-www-form-urlencoded") {
  const body = new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: ROLE, RoleSessionName: "s1", ...fields });
  const res = await fetch(env.endpoint + "/", { method: "POST", headers: { "content-type": contentType }, body: body.toString() });
  const xml = await res.text();
  return { status: res.status, code: /<Code>([^<]*)<\/Code>/.exec(xml)?.[1], xml, headers: res.headers };
}

const s3With = (credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | (() => Promise<{ accessKeyId: string; secretAccessKey: string }>)) =>
  new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, credentials, maxAttempts: 1 });

/** What the credentials of an AssumeRoleWithWebIdentity answer read of jwtonly/secret.txt. */
async function readsWith(xml: string): Promise<string> {
  const get = (tag: string) => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)![1]!;
  const client = s3With({ accessKeyId: get("AccessKeyId"), secretAccessKey: get("SecretAccessKey"), sessionToken: get("SessionToken") });
  try {
    return await (await client.send(new GetObjectCommand({ Bucket: "jwtonly", Key: "secret.txt" }))).Body!.transformToString();
  } finally {
    client.destroy();
  }
}

clientTest("aws")(
  "aws sts assume-role-with-web-identity, then aws s3 cp with the temporary credentials",
  async () => {
    using anon = awsCli({ endpoint: env.endpoint });
    const r = await anon.sts("assume-role-with-web-identity", "--role-arn", ROLE, "--role-session-name", "cli", "--web-identity-token", token({ team: "a", aud: "yata" }), "--duration-seconds", "900");
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const out = JSON.parse(r.stdout);
    expect(out.Credentials.AccessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/);
    expect(out.SubjectFromWebIdentityToken).toBe("alice");
    expect(out.Audience).toBe("yata");
    expect(out.AssumedRoleUser.Arn).toBe("arn:aws:sts::123456789012:assumed-role/reader/cli");
    const exp = Date.parse(out.Credentials.Expiration);
    expect(Math.abs(exp - (Date.now() + 900_000))).toBeLessThan(10_000);
    expect(r.stdout).not.toContain(hs256({}).split(".")[2]); // no token echo

    using cli = awsCli({ endpoint: env.endpoint, credentials: { accessKeyId: out.Credentials.AccessKeyId, secretAccessKey: out.Credentials.SecretAccessKey, sessionToken: out.Credentials.SessionToken } });
    const cp = await cli.s3("cp", "s3://jwtonly/secret.txt", "-");
    expect({ code: cp.code, stderr: cp.stderr, out: cp.stdout }).toEqual({ code: 0, stderr: "", out: "team a only" });
  },
  T,
);

describe("JS SDK web-identity provider", () => {
  test("fromWebToken → S3Client: reads what the token may read on the plain front, nothing else", async () => {
    const provider = (claims: Record<string, unknown>) =>
      fromWebToken({ roleArn: ROLE, webIdentityToken: token(claims), roleSessionName: "sdk", clientConfig: { endpoint: env.endpoint, region: "us-east-1", maxAttempts: 1 } });
    const teamA = s3With(provider({ team: "a" }));
    const teamB = s3With(provider({ team: "b" }));
    try {
      const body = await (await teamA.send(new GetObjectCommand({ Bucket: "jwtonly", Key: "secret.txt" }))).Body!.transformToString();
      expect(body).toBe("team a only");
      // `private` needs a token (any): both sessions; `jwtonly` needs team=a
      expect(await (await teamB.send(new GetObjectCommand({ Bucket: "private", Key: "secret.txt" }))).Body!.transformToString()).toBe("team a only");
      env.mark();
      await expect(teamB.send(new GetObjectCommand({ Bucket: "jwtonly", Key: "secret.txt" }))).rejects.toMatchObject({ name: "AccessDenied", $metadata: { httpStatusCode: 403 } });
      expect(env.upstreamCalls()).toEqual([]);
      const names = async (c: S3Client) => ((await c.send(new ListBucketsCommand({}))).Buckets ?? []).map((b) => b.Name);
      expect(await names(teamA)).toEqual(["data", "jwtonly", "open", "private"]);
      expect(await names(teamB)).toEqual(["data", "open", "private"]);
    } finally {
      teamA.destroy();
      teamB.destroy();
    }
  });
});

describe("JS SDK token-file provider", () => {
  test("fromTokenFile with a token file that ends in a newline (as `echo` writes it) gets credentials", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sts-token-"));
    try {
      const file = join(dir, "token");
      writeFileSync(file, `${hs256({ sub: "alice", team: "a", exp: now() + 600 })}\n`);
      const c = s3With(fromTokenFile({ roleArn: ROLE, webIdentityTokenFile: file, roleSessionName: "file", clientConfig: { endpoint: env.endpoint, region: "us-east-1", maxAttempts: 1 } }));
      try {
        expect(await (await c.send(new GetObjectCommand({ Bucket: "jwtonly", Key: "secret.txt" }))).Body!.transformToString()).toBe("team a only");
      } finally {
        c.destroy();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("Provider in the answer", () => {
  const provider = (xml: string) => /<Provider>([^<]*)<\/Provider>/.exec(xml)?.[1];

  test("is the token's iss (an OpenID Connect token), whatever ProviderId says; ProviderId only stands in for a token without iss", async () => {
    const withIss = await assume({ WebIdentityToken: token({ iss: "https://idp.example" }), ProviderId: "www.amazon.com" });
    expect(withIss.status).toBe(200);
    expect(provider(withIss.xml)).toBe("https://idp.example");
    const noIss = await assume({ WebIdentityToken: token({}), ProviderId: "www.amazon.com" });
    expect(provider(noIss.xml)).toBe("www.amazon.com");
  });
});

describe("STS errors (STS's XML, status and code; no token or key in the body)", () => {
  test("a forged token → 400 InvalidIdentityToken", async () => {
    const r = await assume({ WebIdentityToken: hs256({ sub: "alice", exp: now() + 60 }, "another-secret-0123456789abcdefghij") });
    expect({ status: r.status, code: r.code }).toEqual({ status: 400, code: "InvalidIdentityToken" });
    expect(r.xml).toContain("<ErrorResponse");
    expect(r.xml).toContain(`<RequestId>${r.headers.get("x-request-id")}</RequestId>`);
    expect(r.xml).not.toContain("another-secret");
  });

  test("an expired token → 400 ExpiredTokenException", async () => {
    const r = await assume({ WebIdentityToken: hs256({ sub: "alice", exp: now() - 3600 }) });
    expect({ status: r.status, code: r.code }).toEqual({ status: 400, code: "ExpiredTokenException" });
  });

  test("a token without sub → 400 InvalidIdentityToken", async () => {
    const r = await assume({ WebIdentityToken: hs256({ exp: now() + 60 }) });
    expect({ status: r.status, code: r.code }).toEqual({ status: 400, code: "InvalidIdentityToken" });
  });

  test("DurationSeconds above s3_api.sts.max_session_seconds, a session policy, a missing parameter → 400", async () => {
    expect((await assume({ WebIdentityToken: token({}), DurationSeconds: "7200" })).code).toBe("ValidationError");
    expect((await assume({ WebIdentityToken: token({}), Policy: "{}" })).code).toBe("InvalidParameterValue");
    expect((await assume({})).code).toBe("MissingParameter");
  });

  test("not a form → 400 ValidationError; another action → 400 InvalidAction", async () => {
    expect((await assume({ WebIdentityToken: token({}) }, "application/json")).code).toBe("ValidationError");
    expect((await assume({ WebIdentityToken: token({}), Action: "AssumeRole" })).code).toBe("InvalidAction");
  });

  test("STS's query-string form (GET /?Action=…, STS's documented sample request) → credentials that read, validated as the POST's", async () => {
    const q = (fields: Record<string, string>) => new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: ROLE, RoleSessionName: "get", ...fields });
    const res = await fetch(`${env.endpoint}/?${q({ WebIdentityToken: token({ team: "a" }), DurationSeconds: "900" })}`);
    const xml = await res.text();
    expect({ status: res.status, code: /<Code>([^<]*)<\/Code>/.exec(xml)?.[1] }).toEqual({ status: 200, code: undefined });
    expect(xml).toContain("<AssumeRoleWithWebIdentityResponse");
    expect(await readsWith(xml)).toBe("team a only");
    // the same validation as a POST: a bad token, a long duration, a missing parameter, another action
    const code = async (fields: Record<string, string>) => {
      const r = await fetch(`${env.endpoint}/?${q(fields)}`);
      return `${r.status} ${/<Code>([^<]*)<\/Code>/.exec(await r.text())?.[1]}`;
    };
    expect(await code({ WebIdentityToken: token({}, -60) })).toBe("400 ExpiredTokenException");
    expect(await code({ WebIdentityToken: "not-a-jwt" })).toBe("400 InvalidIdentityToken");
    expect(await code({ WebIdentityToken: token({}), DurationSeconds: "7200" })).toBe("400 ValidationError");
    expect(await code({})).toBe("400 MissingParameter");
    expect(await code({ WebIdentityToken: token({}), Action: "AssumeRole" })).toBe("400 InvalidAction");
    // a plain GET of the service is still ListBuckets (anonymous: S3's AccessDenied)
    expect((await fetch(`${env.endpoint}/?x-id=ListBuckets`)).status).toBe(403);
  });

  test("the parameters in the POST's query string with no body (minio-go's web-identity provider) → credentials that read; a body that is not a form beside them, or a parameter in both → 400", async () => {
    const q = new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: ROLE, RoleSessionName: "mc", WebIdentityToken: token({ team: "a" }), DurationSeconds: "900" });
    // as minio-go sends it: POST, the parameters in the query, no body and no Content-Type
    const res = await fetch(`${env.endpoint}/?${q}`, { method: "POST" });
    const xml = await res.text();
    expect({ status: res.status, code: /<Code>([^<]*)<\/Code>/.exec(xml)?.[1] }).toEqual({ status: 200, code: undefined });
    expect(await readsWith(xml)).toBe("team a only");
    const notForm = await fetch(`${env.endpoint}/?${q}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect({ status: notForm.status, code: /<Code>([^<]*)<\/Code>/.exec(await notForm.text())?.[1] }).toEqual({ status: 400, code: "ValidationError" });
    const both = await fetch(`${env.endpoint}/?${q}`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "DurationSeconds=1200" });
    expect({ status: both.status, code: /<Code>([^<]*)<\/Code>/.exec(await both.text())?.[1] }).toEqual({ status: 400, code: "InvalidParameterValue" });
    // split between the two: read together
    const { WebIdentityToken, ...rest } = Object.fromEntries(q);
    const split = await fetch(`${env.endpoint}/?${new URLSearchParams(rest)}`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ WebIdentityToken: WebIdentityToken! }).toString() });
    expect(split.status).toBe(200);
    // a body-form client that also names the action in its URL: the same value twice is read once
    const named = await fetch(`${env.endpoint}/?Action=AssumeRoleWithWebIdentity&Version=2011-06-15`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: q.toString() });
    expect(named.status).toBe(200);
  });

  test("the service's STS-or-S3 rule reads the query decoded, one rule for every reader: ?%41ction= names Action (GET and POST), an empty query (?&) is none, a bare Action is one", async () => {
    const q = new URLSearchParams({ Version: "2011-06-15", RoleArn: ROLE, RoleSessionName: "enc", WebIdentityToken: token({ team: "a" }), DurationSeconds: "900" });
    const form = { "content-type": "application/x-www-form-urlencoded" };
    const answer = async (url: string, init?: RequestInit) => {
      const r = await fetch(env.endpoint + url, init);
      const xml = await r.text();
      return `${r.status} ${/<Code>([^<]*)<\/Code>/.exec(xml)?.[1] ?? (xml.includes("<AssumeRoleWithWebIdentityResponse") ? "credentials" : xml.slice(0, 80))}`;
    };
    // STS decodes its parameters' names: %41ction is Action, on a GET as on a POST
    expect(await answer(`/?%41ction=AssumeRoleWithWebIdentity&${q}`)).toBe("200 credentials");
    expect(await answer(`/?%41ction=AssumeRoleWithWebIdentity&${q}`, { method: "POST" })).toBe("200 credentials");
    // an empty query is no query: a form posted to /?& is STS's
    expect(await answer("/?&", { method: "POST", headers: form, body: `Action=AssumeRoleWithWebIdentity&${q}` })).toBe("200 credentials");
    // a bare Action (no '=') names the action too: STS's (its parser asks for the value)
    expect(await answer(`/?Action&${q}`, { method: "POST" })).toBe("400 InvalidAction");
  });

  test("yatagarasu_auth_total counts STS's outcomes (a forged, an expired, a sub-less token: invalid; credentials issued: success) and an unsigned S3 request refused as missing", async () => {
    const count = (result: string) => Number(new RegExp(`^yatagarasu_auth_total\\{result="${result}"\\} (\\d+)$`, "m").exec(env.app.metrics.render())?.[1] ?? 0);
    const before = Object.fromEntries(["success", "missing", "invalid", "forbidden"].map((r) => [r, count(r)]));
    expect((await assume({ WebIdentityToken: hs256({ sub: "alice", exp: now() + 60 }, "another-secret-0123456789abcdefghij") })).code).toBe("InvalidIdentityToken");
    expect((await assume({ WebIdentityToken: hs256({ sub: "alice", exp: now() - 3600 }) })).code).toBe("ExpiredTokenException");
    expect((await assume({ WebIdentityToken: hs256({ exp: now() + 60 }) })).code).toBe("InvalidIdentityToken");
    expect((await assume({ WebIdentityToken: token({}) })).status).toBe(200);
    // an unsigned GetObject of a bucket that needs a token: S3's AccessDenied, counted as a request without credentials
    expect((await fetch(`${env.endpoint}/private/secret.txt`)).status).toBe(403);
    const after = Object.fromEntries(["success", "missing", "invalid", "forbidden"].map((r) => [r, count(r) - before[r]!]));
    expect(after).toEqual({ success: 1, missing: 1, invalid: 3, forbidden: 0 });
  });

  test("nothing of it reached the upstream", async () => {
    env.mark();
    await assume({ WebIdentityToken: token({}) });
    await assume({ WebIdentityToken: "x.y.z" });
    expect(env.upstreamCalls()).toEqual([]);
  });
});

/** A session's credentials for a token of `team`. */
async function session(team: string) {
  const r = await assume({ WebIdentityToken: token({ team }) });
  const get = (tag: string) => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(r.xml)![1]!;
  return { accessKeyId: get("AccessKeyId"), secretAccessKey: get("SecretAccessKey"), sessionToken: get("SessionToken") };
}

test("header auth with an X-Amz-Security-Token in the query too that is not the header's: 400 InvalidArgument, neither token read (the query's was ignored, served as the header's session); the same token twice is read", async () => {
  const [a, b] = await Promise.all([session("a"), session("b")]);
  const read = async (query: Array<[string, string]>) => {
    const r = await signedFetch(env, { method: "GET", path: "/jwtonly/secret.txt", query, creds: a });
    const body = await r.text();
    return [r.status, /<Code>(\w+)</.exec(body)?.[1] ?? body, body.includes(a.sessionToken) || body.includes(b.sessionToken)];
  };
  env.mark();
  expect(await read([["X-Amz-Security-Token", b.sessionToken]])).toEqual([400, "InvalidArgument", false]);
  expect(env.upstreamCalls()).toEqual([]);
  expect(await read([["X-Amz-Security-Token", a.sessionToken]])).toEqual([200, "team a only", false]);
});

test("a presigned URL whose X-Amz-Security-Token is not its signed x-amz-security-token header's: 400 InvalidArgument before the signature (it was served as the query's session, and a wrong signature showed the header's token); the same token in both is read", async () => {
  const [a, b] = await Promise.all([session("a"), session("b")]);
  // host and x-amz-security-token signed into a URL carrying a's session (presignUrl signs no such header)
  const read = async (headerToken: string, secret = a.secretAccessKey) => {
    const date = amzDate(new Date());
    const scope = credentialScope(date.slice(0, 8), "us-east-1", "s3");
    const signed = "host;x-amz-security-token";
    const query = canonicalQuery([["X-Amz-Algorithm", ALGORITHM], ["X-Amz-Credential", `${a.accessKeyId}/${scope}`], ["X-Amz-Date", date], ["X-Amz-Expires", "300"], ["X-Amz-SignedHeaders", signed], ["X-Amz-Security-Token", a.sessionToken]]);
    const creq = canonicalRequest("GET", "/jwtonly/secret.txt", query, `host:${new URL(env.endpoint).host}\nx-amz-security-token:${headerToken}\n`, signed, UNSIGNED_PAYLOAD);
    const sig = signature(deriveSigningKey(secret, date.slice(0, 8), "us-east-1", "s3"), stringToSign(date, scope, creq));
    const r = await fetch(`${env.endpoint}/jwtonly/secret.txt?${query}&X-Amz-Signature=${sig}`, { headers: { "x-amz-security-token": headerToken } });
    const body = await r.text();
    return [r.status, /<Code>(\w+)</.exec(body)?.[1] ?? body, body.includes(a.sessionToken) || body.includes(b.sessionToken)];
  };
  env.mark();
  expect(await read(b.sessionToken)).toEqual([400, "InvalidArgument", false]);
  expect(await read(b.sessionToken, "wrong")).toEqual([400, "InvalidArgument", false]);
  expect(env.upstreamCalls()).toEqual([]);
  expect(await read(a.sessionToken)).toEqual([200, "team a only", false]);
});

describe("session lifetime", () => {
  test("capped by the token's exp; afterwards the SDK sees 400 ExpiredToken and nothing reaches the upstream", async () => {
    // (4 s: the token must still be valid when AssumeRoleWithWebIdentity is answered on a loaded host)
    const r = await assume({ WebIdentityToken: token({ team: "a" }, 4) });
    expect(r.status).toBe(200);
    const get = (tag: string) => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(r.xml)![1]!;
    const expiration = Date.parse(get("Expiration"));
    expect(expiration).toBeLessThanOrEqual((now() + 4) * 1000);
    const client = s3With({ accessKeyId: get("AccessKeyId"), secretAccessKey: get("SecretAccessKey"), sessionToken: get("SessionToken") });
    try {
      // Whether or not the first read still falls inside the session, the session must end:
      const err = await waitFor(
        async () => {
          try {
            await client.send(new GetObjectCommand({ Bucket: "data", Key: "hello.txt" }));
            return undefined;
          } catch (e) {
            return e as { name: string; $metadata: { httpStatusCode: number } };
          }
        },
        { timeoutMs: 10_000, intervalMs: 200, message: "the session to expire" },
      );
      expect({ name: err.name, status: err.$metadata.httpStatusCode }).toEqual({ name: "ExpiredToken", status: 400 });
      env.mark();
      await expect(client.send(new GetObjectCommand({ Bucket: "data", Key: "hello.txt" }))).rejects.toMatchObject({ name: "ExpiredToken" });
      expect(env.upstreamCalls()).toEqual([]);
    } finally {
      client.destroy();
    }
  });
});
