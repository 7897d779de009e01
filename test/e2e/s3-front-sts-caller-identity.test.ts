/**
 * STS GetCallerIdentity on the S3 front: `aws sts get-caller-identity --endpoint-url`, boto3's sts
 * client and a request signed as the JS SDK signs (SignatureV4 from @smithy, service sts) say which
 * identity the keys are: a static credential (arn:aws:iam::000000000000:user/IDENTITY) or an STS
 * session (the AssumedRoleUser AssumeRoleWithWebIdentity answered). The hostile cases answer in
 * STS's dialect; a signature for the wrong service is refused both ways.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { Sha256 } from "@smithy/core/checksum";
import { SignatureV4 } from "@smithy/signature-v4";
import { writeFileSync } from "node:fs";
import { awsCli } from "../clients/aws.ts";
import { boto3Client } from "../clients/boto3.ts";
import { clientTest, tempDir } from "../clients/run.ts";
import { issueSession } from "../../src/fronts/s3/sts.ts";
import { APP, hs256, STS_KEY, startS3FrontEnv, type S3FrontEnv } from "./s3-front-helpers.ts";

setDefaultTimeout(30_000);

const ROLE = "arn:aws:iam::123456789012:role/reader";
const T = 120_000;
const FORM = "Action=GetCallerIdentity&Version=2011-06-15";
const APP_ARN = "arn:aws:iam::000000000000:user/app1";
let env: S3FrontEnv;
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  env = await startS3FrontEnv();
  await env.s3.put("data", "hello.txt", "hello");
});
afterAll(() => env.stop());

type Creds = { accessKeyId: string; secretAccessKey: string; sessionToken?: string };

/** Session credentials from AssumeRoleWithWebIdentity, with the AssumedRoleUser it names. */
async function assume(name: string): Promise<{ creds: Creds; arn: string; id: string }> {
  const body = new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: ROLE, RoleSessionName: name, WebIdentityToken: hs256({ sub: "alice", exp: now() + 3600 }) });
  const xml = await (await fetch(env.endpoint + "/", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: body.toString() })).text();
  const get = (tag: string) => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)![1]!;
  return { creds: { accessKeyId: get("AccessKeyId"), secretAccessKey: get("SecretAccessKey"), sessionToken: get("SessionToken") }, arn: get("Arn"), id: get("AssumedRoleId") };
}

/** POST / signed as the JS SDK signs (SignatureV4, the body's SHA-256 as payload hash); `send` replaces the body after signing. */
async function signedPost(creds: Creds, o: { service?: string; region?: string; body?: string; send?: string; path?: string; query?: string; method?: string; headers?: Record<string, string>; after?: Record<string, string>; date?: Date } = {}) {
  const url = new URL(env.endpoint);
  const body = o.body ?? FORM;
  const signer = new SignatureV4({ service: o.service ?? "sts", region: o.region ?? "us-east-1", credentials: creds, sha256: Sha256 });
  const method = o.method ?? "POST";
  const signed = await signer.sign({
    method,
    protocol: "http:",
    hostname: url.hostname,
    port: Number(url.port),
    path: o.path ?? "/",
    query: o.query === undefined ? undefined : Object.fromEntries(new URLSearchParams(o.query)),
    headers: { host: url.host, ...(method === "POST" ? { "content-type": "application/x-www-form-urlencoded; charset=utf-8" } : {}), ...o.headers },
    body: method === "POST" ? body : undefined,
  }, { signingDate: o.date });
  const res = await fetch(env.endpoint + (o.path ?? "/") + (o.query === undefined ? "" : "?" + o.query), { method, headers: { ...signed.headers, ...o.after }, body: method === "POST" ? (o.send ?? body) : undefined });
  const xml = await res.text();
  return { status: res.status, code: /<Code>([^<]*)<\/Code>/.exec(xml)?.[1], xml };
}

/** `aws sts get-caller-identity` with no config file at all (AWS_CONFIG_FILE an empty file). */
async function cliWhoAmI(creds: Creds) {
  using dir = tempDir("yata-whoami-");
  const empty = dir.file("config");
  writeFileSync(empty, "");
  using cli = awsCli({ endpoint: env.endpoint, credentials: creds, env: { AWS_CONFIG_FILE: empty } });
  return cli.sts("get-caller-identity");
}

describe("aws sts get-caller-identity", () => {
  clientTest("aws")("a static credential: its identity as an IAM user of account 000000000000", async () => {
    const r = await cliWhoAmI(APP);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const out = JSON.parse(r.stdout);
    expect(out.Arn).toBe(APP_ARN);
    expect(out.Account).toBe("000000000000");
    expect(out.UserId).toMatch(/^AIDA[0-9A-F]{17}$/);
  }, T);

  clientTest("aws")("an STS session (with its token): the AssumedRoleUser AssumeRoleWithWebIdentity answered", async () => {
    const s = await assume("cli");
    const r = await cliWhoAmI(s.creds);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const out = JSON.parse(r.stdout);
    expect(out).toEqual({ UserId: s.id, Account: "123456789012", Arn: s.arn });
    expect(s.arn).toBe("arn:aws:sts::123456789012:assumed-role/reader/cli");
  }, T);
});

describe("boto3 sts.get_caller_identity", () => {
  clientTest("boto3")("a static credential and a session", async () => {
    const s = await assume("boto");
    const [staticOut] = await boto3Client({ endpoint: env.endpoint, credentials: APP }).run([{ op: "call", service: "sts", method: "get_caller_identity" }]);
    const [sessionOut] = await boto3Client({ endpoint: env.endpoint, credentials: s.creds }).run([{ op: "call", service: "sts", method: "get_caller_identity" }]);
    expect(staticOut).toMatchObject({ ok: true, value: { Arn: APP_ARN, Account: "000000000000" } });
    expect(sessionOut).toMatchObject({ ok: true, value: { Arn: s.arn, UserId: s.id, Account: "123456789012" } });
  }, T);
});

describe("signed as the JS SDK signs", () => {
  test("static and session credentials; the parameters in the POST's query string with an empty body too", async () => {
    const ok = await signedPost(APP);
    expect(ok.status).toBe(200);
    expect(ok.xml).toContain('<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::000000000000:user/app1</Arn>');
    expect(ok.xml).toMatch(/<ResponseMetadata><RequestId>[^<]+<\/RequestId><\/ResponseMetadata><\/GetCallerIdentityResponse>$/);
    const s = await assume("js");
    expect(await signedPost(s.creds)).toMatchObject({ status: 200, xml: expect.stringContaining(`<Arn>${s.arn}</Arn><UserId>${s.id}</UserId><Account>123456789012</Account>`) });
    expect((await signedPost(APP, { query: FORM, body: "" })).status).toBe(200);
  });

  test("the Query protocol's GET form (GET /?Action=GetCallerIdentity), signed in its headers or presigned (as EKS's aws-iam-authenticator tokens are), as AWS STS answers it", async () => {
    const s = await assume("get");
    expect(await signedPost(APP, { method: "GET", query: FORM })).toMatchObject({ status: 200, xml: expect.stringContaining(`<Arn>${APP_ARN}</Arn>`) });
    expect(await signedPost(s.creds, { method: "GET", query: FORM })).toMatchObject({ status: 200, xml: expect.stringContaining(`<Arn>${s.arn}</Arn>`) });
    const url = new URL(env.endpoint);
    const signer = new SignatureV4({ service: "sts", region: "us-east-1", credentials: APP, sha256: Sha256 });
    const pre = await signer.presign({ method: "GET", protocol: "http:", hostname: url.hostname, port: Number(url.port), path: "/", query: Object.fromEntries(new URLSearchParams(FORM)), headers: { host: url.host } }, { expiresIn: 60 });
    const presigned = await fetch(`${env.endpoint}/?${new URLSearchParams(pre.query as Record<string, string>)}`);
    expect({ status: presigned.status, xml: await presigned.text() }).toMatchObject({ status: 200, xml: expect.stringContaining(`<Arn>${APP_ARN}</Arn>`) });
    // refused as a POST is: a wrong secret, unsigned
    expect(await signedPost({ ...APP, secretAccessKey: "wrong" }, { method: "GET", query: FORM })).toMatchObject({ status: 403, code: "SignatureDoesNotMatch" });
    const unsigned = await fetch(`${env.endpoint}/?${FORM}`);
    expect({ status: unsigned.status, code: /<Code>([^<]*)<\/Code>/.exec(await unsigned.text())?.[1] }).toEqual({ status: 403, code: "MissingAuthenticationToken" });
  });

  test("the GET form with an X-Amz-Security-Token in its query that is not the header's (or beside a static key): 400 IncompleteSignature, no token echoed (it was ignored: the header's identity answered); the same token in both is read", async () => {
    const [a, b] = await Promise.all([assume("one"), assume("two")]);
    const ask = async (creds: Creds, token: string) => {
      const r = await signedPost(creds, { method: "GET", query: `${FORM}&X-Amz-Security-Token=${encodeURIComponent(token)}` });
      return [r.status, r.code ?? /<Arn>([^<]*)</.exec(r.xml)?.[1], r.xml.includes(a.creds.sessionToken!) || r.xml.includes(b.creds.sessionToken!)];
    };
    expect(await ask(a.creds, b.creds.sessionToken!)).toEqual([400, "IncompleteSignature", false]);
    expect(await ask(APP, b.creds.sessionToken!)).toEqual([400, "IncompleteSignature", false]);
    expect(await ask(a.creds, a.creds.sessionToken!)).toEqual([200, a.arn, false]);
  });

  test("x-amz-* headers added after signing are not refused (STS, unlike S3, asks only host and the request time to be signed); a session token so added is read", async () => {
    expect(await signedPost(APP, { after: { "x-amz-user-agent": "aws-sdk-js/3", "x-amz-meta-x": "1" } })).toMatchObject({ status: 200, xml: expect.stringContaining(`<Arn>${APP_ARN}</Arn>`) });
    const s = await assume("after");
    const { sessionToken, ...keys } = s.creds;
    expect(await signedPost(keys, { after: { "x-amz-security-token": sessionToken! } })).toMatchObject({ status: 200, xml: expect.stringContaining(`<Arn>${s.arn}</Arn>`) });
  });

  test("nothing reaches the upstream", async () => {
    env.mark();
    expect((await signedPost(APP)).status).toBe(200);
    expect(env.upstreamCalls()).toEqual([]);
  });
});

describe("refusals, in STS's dialect", () => {
  test("unsigned → 403 MissingAuthenticationToken", async () => {
    const res = await fetch(env.endpoint + "/", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: FORM });
    const xml = await res.text();
    expect(res.status).toBe(403);
    expect(xml).toContain("<ErrorResponse");
    expect(xml).toContain("<Code>MissingAuthenticationToken</Code>");
  });

  test("a wrong secret → 403 SignatureDoesNotMatch; an unknown key → 403 InvalidClientTokenId; a session token beside a static key → 403 InvalidClientTokenId", async () => {
    expect(await signedPost({ ...APP, secretAccessKey: "not-the-secret-0123456789" })).toMatchObject({ status: 403, code: "SignatureDoesNotMatch" });
    expect(await signedPost({ accessKeyId: "AKIDNOSUCHKEY0000000", secretAccessKey: "whatever-secret-0123456789" })).toMatchObject({ status: 403, code: "InvalidClientTokenId" });
    const s = await assume("mix");
    expect(await signedPost({ ...APP, sessionToken: s.creds.sessionToken })).toMatchObject({ status: 403, code: "InvalidClientTokenId" });
  });

  test("an expired session → 403 ExpiredToken", async () => {
    const issued = issueSession({ sessionKey: STS_KEY, subject: "alice", claims: { sub: "alice" }, now: Date.now() - 7_200_000, expiresAt: Date.now() - 3_600_000 });
    if (issued.kind !== "ok") throw new Error(issued.message);
    const r = await signedPost({ accessKeyId: issued.accessKeyId, secretAccessKey: issued.secretAccessKey, sessionToken: issued.sessionToken });
    expect(r).toMatchObject({ status: 403, code: "ExpiredToken" });
    expect(r.xml).not.toContain(issued.sessionToken);
  });

  test("the signature covers the body: another body sent → 403 SignatureDoesNotMatch; UNSIGNED-PAYLOAD signed → 403 too", async () => {
    expect(await signedPost(APP, { send: FORM + "&Extra=1" })).toMatchObject({ status: 403, code: "SignatureDoesNotMatch" });
    expect(await signedPost(APP, { headers: { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" } })).toMatchObject({ status: 403, code: "SignatureDoesNotMatch" });
  });

  test("an s3-scoped signature on GetCallerIdentity → 403 SignatureDoesNotMatch; an sts-scoped one on GetObject → S3's 400 AuthorizationHeaderMalformed", async () => {
    const r = await signedPost(APP, { service: "s3" });
    expect(r).toMatchObject({ status: 403, code: "SignatureDoesNotMatch" });
    expect(r.xml).toContain("Credential should be scoped to correct service");
    const get = await signedPost(APP, { method: "GET", path: "/data/hello.txt", headers: { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" } });
    expect(get).toMatchObject({ status: 400, code: "AuthorizationHeaderMalformed" });
    // (the same request scoped to s3 reads)
    expect((await signedPost(APP, { service: "s3", method: "GET", path: "/data/hello.txt", headers: { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" } })).status).toBe(200);
  });

  test("another region, or a request time outside max_clock_skew_seconds → 403 SignatureDoesNotMatch", async () => {
    expect(await signedPost(APP, { region: "eu-west-1" })).toMatchObject({ status: 403, code: "SignatureDoesNotMatch", xml: expect.stringContaining("valid region") });
    expect(await signedPost(APP, { date: new Date(Date.now() - 3_600_000) })).toMatchObject({ status: 403, code: "SignatureDoesNotMatch", xml: expect.stringContaining("Signature expired") });
  });

  test("a body over the STS cap → 400 ValidationError; another Version → 400 InvalidAction", async () => {
    const big = FORM + "&Pad=" + "x".repeat(70 * 1024);
    expect(await signedPost(APP, { body: big })).toMatchObject({ status: 400, code: "ValidationError" });
    expect(await signedPost(APP, { body: "Action=GetCallerIdentity&Version=2010-01-01" })).toMatchObject({ status: 400, code: "InvalidAction" });
  });
});

describe("without s3_api.sts", () => {
  test("a static credential still learns its identity; AssumeRoleWithWebIdentity is InvalidAction; a session token is InvalidClientTokenId", async () => {
    const s = await assume("elsewhere");
    const main = env;
    await using noSts = await startS3FrontEnv({ sts: false }, env.s3);
    env = noSts;
    try {
      expect(await signedPost(APP)).toMatchObject({ status: 200, xml: expect.stringContaining(`<Arn>${APP_ARN}</Arn>`) });
      expect(await signedPost(s.creds)).toMatchObject({ status: 403, code: "InvalidClientTokenId" });
      const res = await fetch(noSts.endpoint + "/", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "Action=AssumeRoleWithWebIdentity&Version=2011-06-15" });
      expect({ status: res.status, code: /<Code>([^<]*)<\/Code>/.exec(await res.text())?.[1] }).toEqual({ status: 400, code: "InvalidAction" });
    } finally {
      env = main;
    }
  });
});
