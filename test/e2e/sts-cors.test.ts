/**
 * s3_api.sts.cors: browser origins that may call AssumeRoleWithWebIdentity (POST / on the S3
 * listener). Preflights are answered for the configured origins only; answers (credentials and STS
 * errors alike) carry the origin's grant; other origins get none; without sts.cors the service
 * answers no preflight. browser-multipart.test.ts drives the same in Chromium.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { parseConfig } from "../../src/config/load.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucket, startWriteEnv, token, WRITER, type WriteEnv } from "./plain-write-env.ts";

setDefaultTimeout(30_000);

const APP = "https://app.example.com";
let s3: S3Fixture;
let env: WriteEnv;
let plain: WriteEnv;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }, { name: "ro" }], credentials: [WRITER] });
  const buckets = (ep: string) => bucket("web", "/web", "rw", ep, "    access: read-write\n    auth: { enabled: true }\n");
  env = await startWriteEnv({ s3Api: true, stsExtra: `cors: { allowed_origins: ["${APP}"], allowed_headers: [x-amz-user-agent], max_age: 120 }`, buckets }, s3);
  plain = await startWriteEnv({ s3Api: true, buckets }, s3);
});
afterAll(async () => {
  await env?.stop();
  await plain?.stop();
  await s3?.stop();
});

const form = (jwt: string) =>
  new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: "arn:aws:iam::123456789012:role/web", RoleSessionName: "web-session", WebIdentityToken: jwt }).toString();
const post = (e: WriteEnv, headers: Record<string, string>, jwt = token({ sub: "u" })) =>
  fetch(`${e.s3Endpoint}/`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", ...headers }, body: form(jwt) });
const preflight = (e: WriteEnv, origin: string, method = "POST", headers = "x-amz-user-agent") =>
  fetch(`${e.s3Endpoint}/`, { method: "OPTIONS", headers: { origin, "access-control-request-method": method, "access-control-request-headers": headers } });

describe("s3_api.sts.cors", () => {
  test("a preflight from a configured origin is 200 with the grant (the S3 listener's answer, as S3's; it was 204); another origin, method or header is 403 without one", async () => {
    const ok = await preflight(env, APP);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBe(APP);
    expect(ok.headers.get("access-control-allow-methods")).toBe("POST");
    expect(ok.headers.get("access-control-allow-headers")).toBe("x-amz-user-agent");
    expect(ok.headers.get("access-control-max-age")).toBe("120");
    for (const r of [await preflight(env, "https://evil.example"), await preflight(env, APP, "PUT"), await preflight(env, APP, "POST", "x-other")]) {
      expect(r.status).toBe(403);
      expect(r.headers.get("access-control-allow-origin")).toBeNull();
    }
  });

  test("credentials and STS errors alike carry the grant for a configured origin; other origins and no Origin get Vary: Origin only", async () => {
    const ok = await post(env, { origin: APP });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("<AccessKeyId>ASIA");
    expect(ok.headers.get("access-control-allow-origin")).toBe(APP);
    const bad = await post(env, { origin: APP }, "not-a-token");
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("<Code>InvalidIdentityToken</Code>");
    expect(bad.headers.get("access-control-allow-origin")).toBe(APP);
    for (const headers of [{ origin: "https://evil.example" }, {}] as Record<string, string>[]) {
      const r = await post(env, headers);
      expect(r.status).toBe(200); // (the browser, not the server, withholds the answer from the page)
      expect(r.headers.get("access-control-allow-origin")).toBeNull();
      expect(r.headers.get("vary")).toContain("Origin");
    }
  });

  test("bucket requests are not governed by sts.cors: a bucket without cors answers no preflight", async () => {
    const r = await fetch(`${env.s3Endpoint}/web/a.txt`, { method: "OPTIONS", headers: { origin: APP, "access-control-request-method": "PUT" } });
    expect(r.headers.get("access-control-allow-origin")).toBeNull();
  });

  test("without sts.cors the STS endpoint answers no preflight (S3's 403 AccessForbidden, as a bucket without cors) and grants no origin", async () => {
    const r = await preflight(plain, APP);
    const body = await r.text();
    expect([r.status, /<Code>(\w+)/.exec(body)?.[1]]).toEqual([403, "AccessForbidden"]);
    expect(body).toContain("CORSResponse: CORS is not enabled for this endpoint.");
    expect(r.headers.get("access-control-allow-origin")).toBeNull();
    // without Origin it is S3's 400, as on a bucket: S3 reads Origin first (it was the 403)
    const noOrigin = await fetch(`${plain.s3Endpoint}/`, { method: "OPTIONS" });
    expect([noOrigin.status, /<Code>(\w+)/.exec(await noOrigin.text())?.[1]]).toEqual([400, "BadRequest"]);
    // with sts.cors, an OPTIONS that is no preflight is S3's 400 naming the missing header
    const bare = await fetch(`${env.s3Endpoint}/`, { method: "OPTIONS", headers: { origin: APP } });
    const bareBody = await bare.text();
    expect([bare.status, /<Code>(\w+)/.exec(bareBody)?.[1]]).toEqual([400, "BadRequest"]);
    expect(bareBody).toContain("Insufficient information. Access-Control-Request-Method request header needed.");
    const ok = await post(plain, { origin: APP });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("s3_api.sts.cors in the config", () => {
  const yaml = (sts: string) => `jwt: { enabled: true, secret: "0123456789abcdef0123456789abcdef" }
buckets:
  - { name: bb, path_prefix: /b, s3: { bucket: bucket-b } }
s3_api:
  port: 0
  sts: { session_key: "0123456789abcdef0123456789abcdef", ${sts} }
`;
  const problems = (sts: string) => {
    try {
      parseConfig(yaml(sts), { env: {} });
      return [];
    } catch (e) {
      return String((e as Error).message).split("\n");
    }
  };
  test("methods default to POST; a list without POST, or cors while sts is disabled, is refused with its path", () => {
    expect(parseConfig(yaml(`cors: { allowed_origins: ["${APP}"] }`), { env: {} }).s3_api!.sts!.cors!.allowed_methods).toEqual(["POST"]);
    expect(problems(`cors: { allowed_origins: ["${APP}"], allowed_methods: [GET] }`).join("\n")).toMatch(/s3_api\.sts\.cors\.allowed_methods.*list POST/);
    expect(problems(`enabled: false, cors: { allowed_origins: ["${APP}"] }`).join("\n")).toMatch(/s3_api\.sts\.cors.*no effect while sts is disabled/);
  });
});
