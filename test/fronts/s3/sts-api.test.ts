/**
 * The STS wire format: parsing AssumeRoleWithWebIdentity, rendering its answer and STS errors, and
 * real clients reading them: the JS SDK's web-identity provider and `aws sts
 * assume-role-with-web-identity --endpoint-url` (when aws-cli is installed).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { existsSync } from "node:fs";
import { fromWebToken } from "@aws-sdk/credential-provider-web-identity";
import {
  assumedRoleArn,
  assumedRoleId,
  callerIdentityResponse,
  parseAssumeRoleWithWebIdentity,
  parseGetCallerIdentity,
  renderGetCallerIdentity,
  sessionCallerIdentity,
  staticCallerIdentity,
  renderAssumeRoleWithWebIdentity,
  renderStsError,
  stsError,
  stsErrorResponse,
  stsResponse,
} from "../../../src/fronts/s3/sts-api.ts";
import { issueSession, verifySessionToken } from "../../../src/fronts/s3/sts.ts";
import { child, childText, parseXml } from "../../../src/fronts/s3/xml-reader.ts";
import { BINARIES } from "../../clients/run.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const ROLE = "arn:aws:iam::123456789012:role/app/reader";
const form = (params: Record<string, string>) => new URLSearchParams(params).toString();
const base = { Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: ROLE, RoleSessionName: "cli-session", WebIdentityToken: "eyJ.token.sig" };
const parse = (params: Record<string, string>, maxSessionSeconds = 3600) => parseAssumeRoleWithWebIdentity(form(params), { maxSessionSeconds });

describe("parseAssumeRoleWithWebIdentity", () => {
  test("a complete request; DurationSeconds defaults to 3600 capped by the configured maximum", () => {
    expect(parse(base)).toEqual({ kind: "ok", request: { roleArn: ROLE, roleSessionName: "cli-session", webIdentityToken: "eyJ.token.sig", durationSeconds: 3600 } });
    expect(parse(base, 1800)).toMatchObject({ request: { durationSeconds: 1800 } });
    expect(parse({ ...base, DurationSeconds: "900", ProviderId: "idp.example" })).toMatchObject({ request: { durationSeconds: 900, providerId: "idp.example" } });
  });

  test("form encoding: + is a space, %2B a plus", () => {
    expect(parseAssumeRoleWithWebIdentity(form(base).replace("eyJ.token.sig", "a+b%2Bc"), { maxSessionSeconds: 3600 }))
      .toMatchObject({ request: { webIdentityToken: "a b+c" } });
  });

  const cases: Array<[string, Record<string, string>, string]> = [
    ["no Action", { ...base, Action: "" }, "InvalidAction"],
    ["another action", { ...base, Action: "AssumeRole" }, "InvalidAction"],
    ["another version", { ...base, Version: "2010-01-01" }, "InvalidAction"],
    ["DurationSeconds below 900", { ...base, DurationSeconds: "899" }, "ValidationError"],
    ["DurationSeconds above 43200", { ...base, DurationSeconds: "43201" }, "ValidationError"],
    ["DurationSeconds above the configured maximum", { ...base, DurationSeconds: "3601" }, "ValidationError"],
    ["DurationSeconds not a number", { ...base, DurationSeconds: "1h" }, "ValidationError"],
    ["RoleArn too short", { ...base, RoleArn: "arn:x" }, "ValidationError"],
    ["RoleArn not an ARN", { ...base, RoleArn: "notanarn-xxxxxxxxxxxxx" }, "ValidationError"],
    ["DurationSeconds negative", { ...base, DurationSeconds: "-1" }, "ValidationError"],
    ["RoleSessionName with a space", { ...base, RoleSessionName: "a b" }, "ValidationError"],
    ["RoleSessionName too short", { ...base, RoleSessionName: "a" }, "ValidationError"],
    ["WebIdentityToken too short", { ...base, WebIdentityToken: "abc" }, "ValidationError"],
    ["a session policy", { ...base, Policy: "{}" }, "InvalidParameterValue"],
    ["a managed session policy", { ...base, "PolicyArns.member.1.arn": "arn:aws:iam::aws:policy/ReadOnlyAccess" }, "InvalidParameterValue"],
  ];
  for (const [name, params, code] of cases) {
    test(`${name} → ${code}`, () => {
      const r = parse(params);
      expect(r.kind).toBe("error");
      if (r.kind === "error") expect<unknown[]>([r.error.code, r.error.status]).toEqual([code, 400]);
    });
  }

  test("AWS's messages: a RoleArn that is no ARN, a negative DurationSeconds (a range error, not 'not an integer')", () => {
    expect(parse({ ...base, RoleArn: "notanarn-xxxxxxxxxxxxx" })).toMatchObject({ error: { code: "ValidationError", message: "Request ARN is invalid" } });
    expect(parse({ ...base, DurationSeconds: "-1" })).toMatchObject({ error: { code: "ValidationError", message: expect.stringContaining("greater than or equal to 900") } });
    expect(parse({ ...base, RoleArn: "arn:aws:iam::123456789012:role/reader" }).kind).toBe("ok");
  });

  test("a huge DurationSeconds is out of range (AWS's constraint message), not 'not an integer'", () => {
    expect(parse({ ...base, DurationSeconds: "999999999999" })).toMatchObject({
      error: { code: "ValidationError", message: "1 validation error detected: Value '999999999999' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200" },
    });
    expect(parse({ ...base, DurationSeconds: "9".repeat(20) })).toMatchObject({ error: { code: "ValidationError", message: expect.stringContaining("less than or equal to 43200") } });
    // (the bound that was crossed, as AWS words it)
    expect(parse({ ...base, DurationSeconds: "43201" })).toMatchObject({ error: { code: "ValidationError", message: "1 validation error detected: Value '43201' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200" } });
    expect(parse({ ...base, DurationSeconds: "899" })).toMatchObject({ error: { code: "ValidationError", message: expect.stringContaining("greater than or equal to 900") } });
    expect(parse({ ...base, DurationSeconds: "9".repeat(21) })).toMatchObject({ error: { code: "ValidationError", message: "DurationSeconds must be an integer." } });
  });

  test("missing parameters → MissingAction / MissingParameter", () => {
    const { Action: _a, ...noAction } = base;
    expect(parse(noAction)).toMatchObject({ error: { code: "MissingAction", status: 400 } });
    for (const name of ["Version", "RoleArn", "RoleSessionName", "WebIdentityToken"] as const) {
      const { [name]: _, ...rest } = base;
      expect(parse(rest)).toMatchObject({ error: { code: "MissingParameter", message: `The request must contain the parameter ${name}` } });
    }
  });

  test("a body of many distinct parameters is parsed in linear time (unauthenticated: no CPU amplification)", () => {
    const names: string[] = [];
    for (let i = 0, n = 0; n < 64_000; i++) {
      names.push(`p${i.toString(36)}=`);
      n += names[names.length - 1]!.length + 1;
    }
    const body = names.join("&");
    // (counted, not timed: getAll scans every parameter, and it was called once per distinct name,
    // ~12,000 scans of ~12,000, ~400 ms on a 2-core machine)
    const getAll = URLSearchParams.prototype.getAll;
    let scans = 0;
    URLSearchParams.prototype.getAll = function (this: URLSearchParams, name: string) {
      scans++;
      return getAll.call(this, name);
    };
    try {
      expect(parseAssumeRoleWithWebIdentity(body, { maxSessionSeconds: 3600 })).toMatchObject({ error: { code: "MissingAction" } });
    } finally {
      URLSearchParams.prototype.getAll = getAll;
    }
    expect(scans).toBeLessThan(10);
  });

  test("a repeated parameter or an oversized body is refused", () => {
    expect(parseAssumeRoleWithWebIdentity(form(base) + "&RoleArn=" + encodeURIComponent(ROLE), { maxSessionSeconds: 3600 })).toMatchObject({ error: { code: "InvalidParameterValue" } });
    expect(parseAssumeRoleWithWebIdentity(form({ ...base, WebIdentityToken: "x".repeat(70_000) }), { maxSessionSeconds: 3600 })).toMatchObject({ error: { code: "ValidationError" } });
  });
});

describe("GetCallerIdentity", () => {
  test("parses Action and Version only (other parameters ignored); another Version or action → InvalidAction; none → MissingAction", () => {
    expect(parseGetCallerIdentity("Action=GetCallerIdentity&Version=2011-06-15")).toEqual({ kind: "ok" });
    expect(parseGetCallerIdentity("Version=2011-06-15&Action=GetCallerIdentity&X-Amz-Date=20260101T000000Z")).toEqual({ kind: "ok" });
    expect(parseGetCallerIdentity("Action=GetCallerIdentity&Version=2010-01-01")).toMatchObject({ kind: "error", error: { code: "InvalidAction", status: 400 } });
    expect(parseGetCallerIdentity("Action=GetSessionToken&Version=2011-06-15")).toMatchObject({ kind: "error", error: { code: "InvalidAction" } });
    expect(parseGetCallerIdentity("Version=2011-06-15")).toMatchObject({ kind: "error", error: { code: "MissingAction" } });
    expect(parseGetCallerIdentity("Action=GetCallerIdentity")).toMatchObject({ kind: "error", error: { code: "MissingParameter" } });
    expect(parseGetCallerIdentity("Action=GetCallerIdentity&Version=2011-06-15&Action=GetCallerIdentity")).toMatchObject({ kind: "error", error: { code: "InvalidParameterValue" } });
    expect(parseGetCallerIdentity("Action=GetCallerIdentity&Version=2011-06-15&x=" + "a".repeat(70_000))).toMatchObject({ kind: "error", error: { code: "ValidationError" } });
  });

  test("a static identity is an IAM user of account 000000000000 with a stable AIDA… id; a session is its AssumedRoleUser", () => {
    const a = staticCallerIdentity("app1");
    expect(a).toEqual({ arn: "arn:aws:iam::000000000000:user/app1", userId: expect.stringMatching(/^AIDA[0-9A-F]{17}$/), account: "000000000000" });
    expect(staticCallerIdentity("app1")).toEqual(a);
    expect(staticCallerIdentity("app2").userId).not.toBe(a.userId);
    const arn = assumedRoleArn(ROLE, "s1");
    expect(sessionCallerIdentity(arn, assumedRoleId(ROLE, "s1"))).toEqual({ arn: "arn:aws:sts::123456789012:assumed-role/reader/s1", userId: assumedRoleId(ROLE, "s1"), account: "123456789012" });
    expect(assumedRoleId(ROLE, "s1")).toMatch(/^AROA[0-9A-F]{17}:s1$/);
    expect(sessionCallerIdentity(assumedRoleArn("not an arn", "s1"), "x").account).toBe("000000000000");
  });

  test("renders GetCallerIdentityResponse as botocore and the JS SDK read it, escaped", async () => {
    const xml = renderGetCallerIdentity({ arn: "arn:aws:iam::000000000000:user/a&b", userId: "AIDAX", account: "000000000000" }, "req-1");
    expect(xml).toEndWith('<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::000000000000:user/a&amp;b</Arn><UserId>AIDAX</UserId><Account>000000000000</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></GetCallerIdentityResponse>');
    const root = parseXml(xml);
    expect(childText(child(root, "GetCallerIdentityResult")!, "Arn")).toBe("arn:aws:iam::000000000000:user/a&b");
    const res = callerIdentityResponse(staticCallerIdentity("app1"), "req-2");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/xml");
    expect(Number(res.headers.get("content-length"))).toBe(Buffer.byteLength(await res.text()));
  });

  test("the STS errors of a signed call: 403 for an unsigned request, a wrong signature, an unknown key, an expired session", () => {
    for (const code of ["MissingAuthenticationToken", "SignatureDoesNotMatch", "InvalidClientTokenId", "ExpiredToken"] as const) expect(stsError(code, "m").status).toBe(403);
    expect(stsError("IncompleteSignature", "m").status).toBe(400);
  });
});

describe("rendering", () => {
  const answer = {
    credentials: { accessKeyId: "ASIAEXAMPLE", secretAccessKey: "s/e+c=", sessionToken: "YGS1.p.t", expiration: Date.UTC(2024, 5, 1, 13) },
    subject: "alice<&>",
    roleArn: ROLE,
    roleSessionName: "cli-session",
    audience: "yatagarasu",
    provider: "https://idp.example",
    requestId: "req-1",
  };

  test("AssumeRoleWithWebIdentityResponse carries what the SDKs read, escaped", () => {
    const doc = parseXml(renderAssumeRoleWithWebIdentity(answer));
    expect(doc.name).toBe("AssumeRoleWithWebIdentityResponse");
    expect(doc.attrs.xmlns).toBe("https://sts.amazonaws.com/doc/2011-06-15/");
    const result = child(doc, "AssumeRoleWithWebIdentityResult")!;
    const creds = child(result, "Credentials")!;
    expect([childText(creds, "AccessKeyId"), childText(creds, "SecretAccessKey"), childText(creds, "SessionToken"), childText(creds, "Expiration")])
      .toEqual(["ASIAEXAMPLE", "s/e+c=", "YGS1.p.t", "2024-06-01T13:00:00Z"]);
    expect(childText(result, "SubjectFromWebIdentityToken")).toBe("alice<&>");
    expect(childText(result, "Audience")).toBe("yatagarasu");
    expect(childText(result, "Provider")).toBe("https://idp.example");
    expect(childText(child(result, "AssumedRoleUser")!, "Arn")).toBe("arn:aws:sts::123456789012:assumed-role/reader/cli-session");
    expect(childText(child(result, "AssumedRoleUser")!, "AssumedRoleId")).toMatch(/^AROA[0-9A-F]{17}:cli-session$/);
    expect(childText(child(doc, "ResponseMetadata")!, "RequestId")).toBe("req-1");
  });

  test("assumed-role ARN: partition and account from the role ARN, a placeholder otherwise", () => {
    expect(assumedRoleArn("arn:aws-cn:iam::210987654321:role/r", "s")).toBe("arn:aws-cn:sts::210987654321:assumed-role/r/s");
    expect(assumedRoleArn("anything-at-all-but-an-arn", "s")).toBe("arn:aws:sts::000000000000:assumed-role/web-identity/s");
  });

  test("STS error body: ErrorResponse/Error/Type,Code,Message + RequestId", async () => {
    const doc = parseXml(renderStsError(stsError("InvalidIdentityToken", "bad <token>"), "req-2"));
    const e = child(doc, "Error")!;
    expect([doc.name, childText(e, "Type"), childText(e, "Code"), childText(e, "Message"), childText(doc, "RequestId")])
      .toEqual(["ErrorResponse", "Sender", "InvalidIdentityToken", "bad <token>", "req-2"]);
    const res = stsErrorResponse(stsError("IDPRejectedClaim", "no"), "r");
    expect([res.status, res.headers.get("content-type"), res.headers.get("x-amzn-requestid")]).toEqual([403, "text/xml", "r"]);
    expect(stsErrorResponse(stsError("InternalFailure", "x"), "r").status).toBe(500);
  });
});

// ------------------------------------------------------------------ real clients

const SESSION_KEY = "0123456789abcdef0123456789abcdef-sts";
const GOOD_TOKEN = "header.good-web-identity.sig";
let server: ReturnType<typeof Bun.serve>;
let endpoint: string;
const seen: Array<{ method: string; contentType: string | null }> = [];

beforeAll(() => {
  // A stand-in STS endpoint made of the pure functions; the token check is a fixed string here.
  server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      seen.push({ method: req.method, contentType: req.headers.get("content-type") });
      const parsed = parseAssumeRoleWithWebIdentity(await req.text(), { maxSessionSeconds: 7200 });
      if (parsed.kind === "error") return stsErrorResponse(parsed.error, "rid-err");
      if (parsed.request.webIdentityToken !== GOOD_TOKEN) return stsErrorResponse(stsError("InvalidIdentityToken", "The web identity token is not valid."), "rid-bad");
      const now = Date.now();
      const session = issueSession({ sessionKey: SESSION_KEY, subject: "alice", claims: { team: "a" }, expiresAt: now + parsed.request.durationSeconds * 1000, now });
      if (session.kind === "error") return stsErrorResponse(stsError("InvalidIdentityToken", session.message), "rid-big");
      return stsResponse({
        credentials: session, subject: "alice", roleArn: parsed.request.roleArn, roleSessionName: parsed.request.roleSessionName,
        audience: "yatagarasu", provider: "https://idp.example", requestId: "rid-ok",
      });
    },
  });
  endpoint = `http://127.0.0.1:${server.port}`;
});
afterAll(() => server.stop(true));

describe("the JS SDK's web-identity credential provider", () => {
  test("gets credentials that verify as a session on any replica", async () => {
    const provider = fromWebToken({ roleArn: ROLE, webIdentityToken: GOOD_TOKEN, roleSessionName: "sdk", durationSeconds: 1800, clientConfig: { endpoint, region: "us-east-1" } });
    const creds = await provider();
    expect(creds.accessKeyId).toMatch(/^ASIA/);
    expect(creds.expiration!.getTime()).toBeGreaterThan(Date.now() + 1700_000);
    expect(creds.accountId).toBe("123456789012");
    const p = verifySessionToken(SESSION_KEY, creds.accessKeyId, creds.sessionToken!, Date.now());
    expect(p).toMatchObject({ subject: "alice", claims: { team: "a" }, secretAccessKey: creds.secretAccessKey });
    expect(seen.at(-1)).toEqual({ method: "POST", contentType: expect.stringContaining("application/x-www-form-urlencoded") });
  });

  test("an STS error surfaces with its code", async () => {
    const provider = fromWebToken({ roleArn: ROLE, webIdentityToken: "header.bad.sig", clientConfig: { endpoint, region: "us-east-1", maxAttempts: 1 } });
    await expect(provider()).rejects.toMatchObject({ name: "InvalidIdentityTokenException", $metadata: { httpStatusCode: 400 } }); // the modeled error for code InvalidIdentityToken
  });
});

// Debian's aws-cli by its path: a pyenv shim on PATH may be another aws-cli (1.x) that refuses AWS_CONFIG_FILE=/dev/null.
const aws = existsSync(BINARIES.aws) ? BINARIES.aws : null;
describe.skipIf(!aws)("aws sts assume-role-with-web-identity --endpoint-url", () => {
  const run = async (token: string) => {
    const proc = Bun.spawn([aws!, "sts", "assume-role-with-web-identity", "--endpoint-url", endpoint, "--region", "us-east-1", "--output", "json",
      "--role-arn", ROLE, "--role-session-name", "cli", "--web-identity-token", token, "--duration-seconds", "900"], {
      env: { PATH: process.env.PATH!, HOME: process.env.HOME!, AWS_CONFIG_FILE: "/dev/null", AWS_SHARED_CREDENTIALS_FILE: "/dev/null", AWS_MAX_ATTEMPTS: "1" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { out, err, code };
  };

  test("prints the credentials", async () => {
    const { out, err, code } = await run(GOOD_TOKEN);
    expect({ code, err }).toEqual({ code: 0, err: "" });
    const json = JSON.parse(out);
    expect(json.Credentials.AccessKeyId).toMatch(/^ASIA/);
    expect(json.SubjectFromWebIdentityToken).toBe("alice");
    expect(json.AssumedRoleUser.Arn).toBe("arn:aws:sts::123456789012:assumed-role/reader/cli");
    expect(verifySessionToken(SESSION_KEY, json.Credentials.AccessKeyId, json.Credentials.SessionToken, Date.now())).toHaveProperty("subject", "alice");
  }, 30_000);

  test("reports an STS error code", async () => {
    const { err, code } = await run("header.bad.sig");
    expect(code).not.toBe(0);
    expect(err).toContain("InvalidIdentityToken");
  }, 30_000);
});

describe("Audience in the answer", () => {
  test("is the token's audience that jwt.audience matched, else the token's first", async () => {
    const { matchedAudience } = await import("../../../src/fronts/s3/sts-endpoint.ts");
    expect(matchedAudience(["x", "yata"], "yata")).toBe("yata");
    expect(matchedAudience(["x", "yata"], ["other", "yata"])).toBe("yata");
    expect(matchedAudience(["x", "yata"], undefined)).toBe("x");
    expect(matchedAudience("solo", "solo")).toBe("solo");
    expect(matchedAudience(undefined, "yata")).toBeUndefined();
  });
});
