/**
 * The audit trail end to end (App in the test process, both fronts, the S3 fixture upstream):
 * one line per front request with who/what/outcome, none for the control plane, no secret or
 * token anywhere in the file, metrics per result, and size rotation under real traffic.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, parseConfig } from "../../src/config/load.ts";
import { auditPath } from "../../src/observe/audit.ts";
import type { S3Fixture } from "../fixtures/s3.ts";
import { APP, hs256, JWT_SECRET, LISTER, STS_KEY, UPSTREAM } from "../e2e/s3-front-helpers.ts";
import { smithySigned } from "../fronts/s3/helpers.ts";
import { parseLines, removeDir, s3Fetch, startAuditEnv, startFixture, tempDir, type AuditEnv, type AuditLine } from "./audit-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
beforeAll(async () => {
  s3 = await startFixture();
});
afterAll(() => s3?.stop());

describe("lines for reads, listings and denials on both fronts", () => {
  let env: AuditEnv;
  let dir: string;
  const WRONG = { accessKeyId: APP.accessKeyId, secretAccessKey: "not-the-app-secret-0123456789" };
  const OTHER_SECRET = "another-jwt-secret-0123456789abcdef";
  const aliceToken = hs256({ sub: "alice", team: "a", exp: Math.floor(Date.now() / 1000) + 600 });
  const forgedToken = hs256({ sub: "mallory", exp: Math.floor(Date.now() / 1000) + 600 }, OTHER_SECRET);
  const bobToken = hs256({ sub: "bob", team: "b", exp: Math.floor(Date.now() / 1000) + 600 });
  const byId = new Map<string, AuditLine>();
  let all: AuditLine[] = [];

  beforeAll(async () => {
    dir = tempDir();
    env = await startAuditEnv(s3, `  enabled: true\n  path: ${join(dir, "audit.log")}\n`);
    const get = (path: string, id: string, token?: string) =>
      fetch(env.url(path), { headers: { "x-request-id": id, ...(token ? { authorization: `Bearer ${token}` } : {}) } }).then(async (r) => [r.status, await r.text()] as const);
    expect((await get("/open/doc.txt", "read-anon"))[0]).toBe(200);
    expect((await get("/private/p.txt", "read-alice", aliceToken))[0]).toBe(200);
    expect((await get("/private/p.txt", "no-token"))[0]).toBe(401);
    expect((await get("/private/p.txt", "forged", forgedToken))[0]).toBe(401);
    expect((await get("/jwtonly/p.txt", "wrong-team", bobToken))[0]).toBe(403);
    expect((await get("/open/missing.txt", "missing"))[0]).toBe(404);
    expect((await get("/health", "health"))[0]).toBe(200);
    await get("/ready", "ready");
    expect((await s3Fetch(env, "/data/doc.txt", APP)).status).toBe(200);
    expect((await s3Fetch(env, "/data/doc.txt", LISTER)).status).toBe(403);
    expect((await s3Fetch(env, "/data/doc.txt", WRONG)).status).toBe(403);
    expect((await s3Fetch(env, "/data", APP, { "list-type": "2" })).status).toBe(200);
    all = await env.lines();
    for (const l of all) byId.set(String(l.request_id), l);
  });
  afterAll(async () => {
    await env?.stop();
    removeDir(dir);
  });

  test("plain front: an anonymous read and a JWT read (identity = sub), with status, bytes and duration", () => {
    expect(byId.get("read-anon")).toMatchObject({ identity: "anonymous", client_ip: "127.0.0.1", front: "plain", action: "s3:GetObject", method: "GET", bucket: "open", key: "doc.txt", result: "allowed", status: 200, bytes: 10 });
    expect(byId.get("read-alice")).toMatchObject({ identity: "alice", front: "plain", action: "s3:GetObject", bucket: "private", key: "p.txt", result: "allowed", status: 200, bytes: 12 });
    const l = byId.get("read-anon")!;
    expect(typeof l.duration_ms === "number" && l.duration_ms > 0).toBe(true);
    expect(Math.abs(Date.parse(String(l.time)) - Date.now())).toBeLessThan(60_000);
    expect(l.reason).toBeUndefined();
  });

  test("plain front: denials carry the reason (401 no token / forged token, 403 claim rule); a 404 is a failure", () => {
    expect(byId.get("no-token")).toMatchObject({ identity: "anonymous", bucket: "private", key: "p.txt", result: "denied", reason: "Unauthorized", status: 401, bytes: expect.any(Number) });
    expect(byId.get("forged")).toMatchObject({ result: "denied", reason: "InvalidToken", status: 401 });
    // The token was valid: the refused identity is its subject, not "anonymous".
    expect(byId.get("wrong-team")).toMatchObject({ identity: "bob", bucket: "jwtonly", result: "denied", reason: "Forbidden", status: 403 });
    expect(byId.get("missing")).toMatchObject({ bucket: "open", key: "missing.txt", result: "failed", reason: "NoSuchKey", status: 404 });
  });

  test("the control plane (/health, /ready) is not audited", () => {
    expect(byId.has("health")).toBe(false);
    expect(byId.has("ready")).toBe(false);
    expect(all.some((l) => l.front === "control")).toBe(false);
  });

  test("S3 front: GetObject as an S3 identity, a refused identity, a bad signature, a listing", () => {
    const s3Lines = all.filter((l) => l.front === "s3");
    expect(s3Lines.length).toBe(4);
    expect(s3Lines).toContainEqual(expect.objectContaining({ identity: "app1", action: "s3:GetObject", operation: "GetObject", bucket: "data", key: "doc.txt", result: "allowed", status: 200, bytes: 10 }));
    expect(s3Lines).toContainEqual(expect.objectContaining({ identity: "lister", action: "s3:GetObject", bucket: "data", key: "doc.txt", result: "denied", reason: "AccessDenied", status: 403 }));
    expect(s3Lines).toContainEqual(expect.objectContaining({ identity: "anonymous", result: "denied", reason: "SignatureDoesNotMatch", status: 403 }));
    expect(s3Lines).toContainEqual(expect.objectContaining({ identity: "app1", action: "s3:ListBucket", operation: "ListObjectsV2", bucket: "data", result: "allowed", status: 200 }));
    // no request body: no bytes_in; the plain front names no S3 operation
    expect(all.some((l) => "bytes_in" in l)).toBe(false);
    expect(all.filter((l) => l.front === "plain").some((l) => "operation" in l)).toBe(false);
  });

  test("exactly one line per front request; events counted by result", () => {
    expect(all.length).toBe(10);
    expect(env.metric('yatagarasu_audit_events_total{result="allowed"}')).toBe(all.filter((l) => l.result === "allowed").length);
    expect(env.metric('yatagarasu_audit_events_total{result="denied"}')).toBe(5);
    expect(env.metric('yatagarasu_audit_events_total{result="failed"}')).toBe(1);
    expect(env.metric("yatagarasu_audit_write_errors_total")).toBe(0);
  });

  test("no secret and no token in the file", () => {
    const text = readFileSync(join(dir, "audit.log"), "utf8");
    const secrets = [JWT_SECRET, OTHER_SECRET, STS_KEY, APP.secretAccessKey, LISTER.secretAccessKey, WRONG.secretAccessKey, UPSTREAM.secretAccessKey, aliceToken, forgedToken, bobToken];
    for (const t of [aliceToken, forgedToken, bobToken]) secrets.push(...t.split(".")); // any part of a token
    for (const s of secrets) expect(text.includes(s)).toBe(false);
    for (const s of [APP.accessKeyId, LISTER.accessKeyId, UPSTREAM.accessKeyId, "Signature=", "Bearer", "X-Amz-"]) expect(text.includes(s)).toBe(false);
    expect(text.length).toBeGreaterThan(0);
  });
});

const exp = () => Math.floor(Date.now() / 1000) + 600;
/** The S3-front test buckets plus rw: read-write, writes for team a only. */
const buckets = (ep: string) => {
  const up = `access_key: "${UPSTREAM.accessKeyId}", secret_key: "${UPSTREAM.secretAccessKey}"`;
  return `buckets:
  - { name: data, path_prefix: /data, s3: { bucket: data, endpoint: "${ep}", ${up} } }
  - { name: private, path_prefix: /private, s3: { bucket: private, endpoint: "${ep}", ${up} }, auth: { enabled: true } }
  - { name: jwtonly, path_prefix: /jwtonly, s3: { bucket: private, endpoint: "${ep}", ${up} }, auth: { enabled: true, claims: [{ claim: team, operator: equals, value: a }] } }
  - name: writable
    path_prefix: /rw
    access: read-write
    s3: { bucket: private, endpoint: "${ep}", ${up} }
    auth: { enabled: true, write_claims: [{ claim: team, operator: equals, value: a }] }
`;
};

describe("who: the principal type, and an identity for every authenticated request", () => {
  let env: AuditEnv;
  let dir: string;
  const byId = new Map<string, AuditLine>();

  beforeAll(async () => {
    dir = tempDir();
    env = await startAuditEnv(s3, `  enabled: true\n  path: ${join(dir, "audit.log")}\n`, { buckets });
    const send = async (method: string, path: string, id: string, claims?: Record<string, unknown>) => {
      const headers: Record<string, string> = { "x-request-id": id };
      if (claims) headers.authorization = `Bearer ${hs256({ exp: exp(), ...claims })}`;
      const r = await fetch(env.url(path), { method, headers, body: method === "PUT" ? "x" : undefined });
      await r.text();
      return r.status;
    };
    expect(await send("GET", "/data/doc.txt", "anon")).toBe(200);
    expect(await send("GET", "/private/p.txt", "numeric", { sub: 12345 })).toBe(200);
    expect(await send("GET", "/private/p.txt", "object", { sub: { tenant: "t1", user: 7 } })).toBe(200);
    expect(await send("GET", "/private/p.txt", "nosub", {})).toBe(200);
    expect(await send("GET", "/private/p.txt", "literal", { sub: "anonymous" })).toBe(200);
    expect(await send("GET", "/private/p.txt", "long", { sub: "u".repeat(255) + "\u{1F600}" + "x".repeat(4_000) })).toBe(200);
    expect(await send("GET", "/private/p.txt", "forging", { sub: 'eve\n{"request_id":"forged","identity":"admin"}\u2028\u009b' })).toBe(200);
    expect(await send("GET", "/jwtonly/p.txt", "numeric-claim-refused", { sub: 12345, team: "b" })).toBe(403);
    expect(await send("PUT", "/rw/x.txt", "literal-put-refused", { sub: "anonymous", team: "b" })).toBe(403);
    expect(await send("PUT", "/rw/x.txt", "nosub-put-refused", { team: "b" })).toBe(403);
    expect((await s3Fetch(env, "/data/doc.txt", APP)).status).toBe(200);
    const sts = await fetch(`http://127.0.0.1:${env.s3Port}/`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-request-id": "sts-numeric" },
      body: new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: "arn:aws:iam::123456789012:role/r", RoleSessionName: "s1", WebIdentityToken: hs256({ sub: 12345, exp: exp() }) }),
    });
    expect(sts.status).toBe(400);
    await sts.text();
    for (const l of await env.lines()) byId.set(String(l.request_id), l);
  });
  afterAll(async () => {
    await env?.stop();
    removeDir(dir);
  });

  test("anonymous and S3 identities: principal anonymous / s3_static", () => {
    expect(byId.get("anon")).toMatchObject({ principal: "anonymous", identity: "anonymous", result: "allowed" });
    expect([...byId.values()].find((l) => l.front === "s3" && l.action === "s3:GetObject")).toMatchObject({ principal: "s3_static", identity: "app1" });
  });

  test("a JWT whose sub is not a string: its JSON text, or (no sub); never anonymous", () => {
    expect(byId.get("numeric")).toMatchObject({ principal: "jwt", identity: "12345", result: "allowed", bucket: "private" });
    expect(byId.get("object")).toMatchObject({ principal: "jwt", identity: '{"tenant":"t1","user":7}' });
    expect(byId.get("nosub")).toMatchObject({ principal: "jwt", identity: "(no sub)" });
    expect(byId.get("sts-numeric")).toMatchObject({ principal: "jwt", identity: "12345", action: "sts:AssumeRoleWithWebIdentity", result: "denied", reason: "InvalidIdentityToken" });
  });

  test("a string sub is cut to 256 characters (never half a character), and its controls cannot forge a line", () => {
    // (it went whole: a 4 KB sub made every audit line of its bearer 4 KB)
    expect(byId.get("long")).toMatchObject({ principal: "jwt", identity: "u".repeat(255), result: "allowed" });
    expect(byId.get("forging")).toMatchObject({ identity: 'eve\n{"request_id":"forged","identity":"admin"}\u2028\u009b' });
    expect(byId.has("forged")).toBe(false);
  });

  test("a sub that is literally 'anonymous' is told apart by the principal; refusals name who was refused", () => {
    expect(byId.get("literal")).toMatchObject({ principal: "jwt", identity: "anonymous", result: "allowed" });
    expect(byId.get("numeric-claim-refused")).toMatchObject({ principal: "jwt", identity: "12345", result: "denied", reason: "Forbidden" });
    expect(byId.get("literal-put-refused")).toMatchObject({ principal: "jwt", identity: "anonymous", action: "s3:PutObject", bucket: "writable", key: "x.txt", result: "denied", status: 403 });
    expect(byId.get("nosub-put-refused")).toMatchObject({ principal: "jwt", identity: "(no sub)", action: "s3:PutObject", result: "denied" });
  });
});

describe("S3 front: refusals before the signature is verified name what they addressed", () => {
  let env: AuditEnv;
  let dir: string;
  const byId = new Map<string, AuditLine>();

  beforeAll(async () => {
    dir = tempDir();
    env = await startAuditEnv(s3, `  enabled: true\n  path: ${join(dir, "audit.log")}\n`);
    const signed = async (id: string, path: string, creds: { accessKeyId: string; secretAccessKey: string }, query?: Record<string, string>) => {
      const host = `127.0.0.1:${env.s3Port}`;
      const v = await smithySigned({ creds, date: new Date(), path, query, host });
      const headers = new Headers(v.headers);
      headers.delete("host");
      headers.set("x-request-id", id);
      const r = await fetch(`http://${host}${v.rawPath}${v.rawQuery ? `?${v.rawQuery}` : ""}`, { method: v.method, headers });
      await r.text();
      return r.status;
    };
    const WRONG = { accessKeyId: APP.accessKeyId, secretAccessKey: "not-the-app-secret-0123456789" };
    expect(await signed("bad-sig", "/data/dir/doc.txt", WRONG)).toBe(403);
    expect(await signed("unknown-key", "/private/p.txt", { accessKeyId: "AKIDNOSUCHKEY0001", secretAccessKey: "whatever-secret-0123456789" })).toBe(403);
    expect(await signed("bad-sig-list", "/data", WRONG, { "list-type": "2", prefix: "dir/" })).toBe(403);
    expect(await signed("not-configured", "/nosuch/k.txt", WRONG)).toBe(403);
    const malformed = await fetch(`http://127.0.0.1:${env.s3Port}/data/doc.txt`, { headers: { "x-request-id": "malformed", authorization: "AWS4-HMAC-SHA256 garbage" } });
    expect(malformed.status).toBeGreaterThanOrEqual(400);
    await malformed.text();
    for (const l of await env.lines()) byId.set(String(l.request_id), l);
  });
  afterAll(async () => {
    await env?.stop();
    removeDir(dir);
  });

  test("SignatureDoesNotMatch, InvalidAccessKeyId, a malformed Authorization: bucket, key and operation", () => {
    expect(byId.get("bad-sig")).toMatchObject({ principal: "anonymous", identity: "anonymous", front: "s3", action: "s3:GetObject", bucket: "data", key: "dir/doc.txt", result: "denied", reason: "SignatureDoesNotMatch", status: 403 });
    expect(byId.get("unknown-key")).toMatchObject({ action: "s3:GetObject", bucket: "private", key: "p.txt", result: "denied", reason: "InvalidAccessKeyId" });
    expect(byId.get("bad-sig-list")).toMatchObject({ action: "s3:ListBucket", bucket: "data", result: "denied", reason: "SignatureDoesNotMatch" });
    expect(byId.get("malformed")).toMatchObject({ action: "s3:GetObject", bucket: "data", key: "doc.txt", result: expect.stringMatching(/denied|failed/) });
  });

  test("a bucket this proxy does not serve is not named (labels are configured buckets only)", () => {
    const l = byId.get("not-configured")!;
    expect(l).toMatchObject({ action: "s3:GetObject", reason: "SignatureDoesNotMatch" });
    expect(l.bucket).toBeUndefined();
    expect(l.key).toBeUndefined();
  });
});

test("issuing a presigned URL is audited as a presign for the action, not as that action", async () => {
  const dir = tempDir();
  try {
    // (the URL's origin is not used here: any public_url will do, the S3 listener's port is chosen at start)
    await using env = await startAuditEnv(s3, `  enabled: true\n  path: ${join(dir, "audit.log")}\n`, { buckets, s3Extra: "  public_url: http://s3.example.test\n" });
    const presign = async (id: string, query: string, team: string) => {
      const r = await fetch(env.url(`/rw/uploads/photo.txt?presign&${query}`), { method: "POST", headers: { "x-request-id": id, authorization: `Bearer ${hs256({ sub: "alice", team, exp: exp() })}` } });
      await r.text();
      return r.status;
    };
    expect(await presign("put", "method=PUT", "a")).toBe(200);
    expect(await presign("post", "method=POST", "a")).toBe(200);
    expect(await presign("get", "method=GET", "a")).toBe(200);
    expect(await presign("refused", "method=PUT", "b")).toBe(403);
    const byId = new Map((await env.lines()).map((l) => [String(l.request_id), l]));
    expect(byId.get("put")).toMatchObject({ action: "presign", presigned_action: "s3:PutObject", method: "POST", bucket: "writable", key: "uploads/photo.txt", identity: "alice", result: "allowed", status: 200 });
    expect(byId.get("post")).toMatchObject({ action: "presign", presigned_action: "s3:PutObject", result: "allowed" });
    expect(byId.get("get")).toMatchObject({ action: "presign", presigned_action: "s3:GetObject", result: "allowed" });
    expect(byId.get("refused")).toMatchObject({ action: "presign", presigned_action: "s3:PutObject", result: "denied", status: 403 });
    expect([...byId.values()].some((l) => l.action === "s3:PutObject")).toBe(false);
  } finally {
    removeDir(dir);
  }
});

test("an STS session is named by its id in the audit trail at issuance and on every request signed with it (two sessions of one user told apart); never the token or the secret", async () => {
  const dir = tempDir();
  try {
    await using env = await startAuditEnv(s3, `  enabled: true\n  path: ${join(dir, "audit.log")}\n`);
    const assume = async (id: string) => {
      const r = await fetch(`http://127.0.0.1:${env.s3Port}/`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", "x-request-id": id },
        body: new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: "arn:aws:iam::123456789012:role/r", RoleSessionName: "s1", WebIdentityToken: hs256({ sub: "dave", exp: exp() }) }),
      });
      const xml = await r.text();
      const el = (n: string) => new RegExp(`<${n}>([^<]*)</${n}>`).exec(xml)![1]!;
      return { accessKeyId: el("AccessKeyId"), secretAccessKey: el("SecretAccessKey"), sessionToken: el("SessionToken") };
    };
    const one = await assume("sts-one");
    const two = await assume("sts-two");
    for (const [id, creds] of [["get-one", one], ["get-two", two]] as const) {
      const v = await smithySigned({ creds, date: new Date(), path: "/data/doc.txt", host: `127.0.0.1:${env.s3Port}` });
      const headers = new Headers(v.headers);
      headers.delete("host");
      headers.set("x-request-id", id);
      const r = await fetch(`http://127.0.0.1:${env.s3Port}/data/doc.txt`, { headers });
      expect(r.status).toBe(200);
      await r.arrayBuffer();
    }
    // A forged session token (its MAC's last character changed) is S3's 400 InvalidToken: a refusal
    // of the credentials presented, denied as the plain front's 401 InvalidToken is (it was "failed").
    const last = one.sessionToken.at(-1) === "A" ? "B" : "A";
    const forged = { ...one, sessionToken: one.sessionToken.slice(0, -1) + last };
    const fv = await smithySigned({ creds: forged, date: new Date(), path: "/data/doc.txt", host: `127.0.0.1:${env.s3Port}` });
    const fh = new Headers(fv.headers);
    fh.delete("host");
    fh.set("x-request-id", "get-forged");
    const fr = await fetch(`http://127.0.0.1:${env.s3Port}/data/doc.txt`, { headers: fh });
    expect([fr.status, /<Code>([^<]*)</.exec(await fr.text())?.[1]]).toEqual([400, "InvalidToken"]);
    const lines = await env.lines();
    const byId = new Map(lines.map((l) => [String(l.request_id), l]));
    expect(byId.get("get-forged")).toMatchObject({ front: "s3", action: "s3:GetObject", result: "denied", reason: "InvalidToken", status: 400 });
    const session = (id: string) => byId.get(id)?.session;
    expect(session("sts-one")).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(session("sts-two")).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(session("sts-one")).not.toBe(session("sts-two"));
    expect([session("get-one"), session("get-two")]).toEqual([session("sts-one"), session("sts-two")]);
    expect(byId.get("get-one")).toMatchObject({ principal: "s3_session", identity: "dave" });
    const text = JSON.stringify(lines);
    for (const c of [one, two]) for (const secret of [c.secretAccessKey, c.sessionToken]) expect(text).not.toContain(secret);
  } finally {
    removeDir(dir);
  }
});

test("an STS answer (credentials or error) is counted in bytes like every other answer: audit line and bytes metric", async () => {
  const dir = tempDir();
  try {
    await using env = await startAuditEnv(s3, `  enabled: true\n  path: ${join(dir, "audit.log")}\n`);
    const bytesMetric = () => {
      let sum = 0;
      for (const line of env.app.metrics.render().split("\n")) if (line.startsWith("yatagarasu_http_response_bytes_total{")) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
      return sum;
    };
    const assume = async (id: string, token: string) => {
      const r = await fetch(`http://127.0.0.1:${env.s3Port}/`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", "x-request-id": id },
        body: new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: "arn:aws:iam::123456789012:role/r", RoleSessionName: "s1", WebIdentityToken: token }),
      });
      return [r.status, new TextEncoder().encode(await r.text()).length] as const;
    };
    const before = bytesMetric();
    const [okStatus, okBytes] = await assume("sts-ok", hs256({ sub: "carol", exp: exp() }));
    const [badStatus, badBytes] = await assume("sts-bad", "not-a-token");
    expect([okStatus, badStatus]).toEqual([200, 400]);
    expect(okBytes).toBeGreaterThan(500);
    const byId = new Map((await env.lines()).map((l) => [String(l.request_id), l]));
    expect(byId.get("sts-ok")).toMatchObject({ action: "sts:AssumeRoleWithWebIdentity", result: "allowed", status: 200, bytes: okBytes });
    expect(byId.get("sts-bad")).toMatchObject({ action: "sts:AssumeRoleWithWebIdentity", result: "denied", reason: "InvalidIdentityToken", status: 400, bytes: badBytes });
    expect(bytesMetric() - before).toBe(okBytes + badBytes);
  } finally {
    removeDir(dir);
  }
});

test("rotation under traffic: audit.log → .1 → .2, never more than max_files, whole lines, newest last", async () => {
  const dir = tempDir();
  try {
    // 0.002 MiB = 2097 bytes: about 6 lines a file
    await using env = await startAuditEnv(s3, `  enabled: true\n  path: ${join(dir, "audit.log")}\n  max_size_mb: 0.002\n  max_files: 2\n`);
    for (let i = 0; i < 40; i++) {
      const r = await fetch(env.url("/open/doc.txt"), { headers: { "x-request-id": `r${i}` } });
      await r.text();
      if (i % 7 === 0) await env.app.audit!.flush(); // several flushes, as the timer would
    }
    const current = await env.lines();
    expect(readdirSync(dir).sort()).toEqual(["audit.log", "audit.log.1", "audit.log.2"]);
    const files = ["audit.log.2", "audit.log.1", "audit.log"].map((f) => join(dir, f));
    const ids: string[] = [];
    for (const f of files) {
      expect(statSync(f).size).toBeLessThanOrEqual(Math.floor(0.002 * 1024 * 1024));
      for (const l of parseLines(readFileSync(f, "utf8"))) ids.push(String(l.request_id));
    }
    expect(current.at(-1)?.request_id).toBe("r39");
    // the newest lines, in order, with no gap: r(40-n) … r39
    expect(ids).toEqual(Array.from({ length: ids.length }, (_, k) => `r${40 - ids.length + k}`));
    expect(ids.length).toBeGreaterThan(10);
    expect(existsSync(join(dir, "audit.log.3"))).toBe(false);
  } finally {
    removeDir(dir);
  }
});

describe("config", () => {
  const base = `buckets:\n  - { name: b, path_prefix: /b, s3: { bucket: data } }\n`;
  const problems = (yaml: string) => {
    try {
      parseConfig(base + yaml);
      return "";
    } catch (e) {
      if (e instanceof ConfigError) return e.message;
      throw e;
    }
  };

  test("defaults: off; enabled needs a path; sizes and counts are checked with their YAML path", () => {
    expect(parseConfig(base).audit).toEqual({ enabled: false, max_size_mb: 100, max_files: 10 });
    expect(problems("audit: { enabled: true }")).toContain("audit.path: required while the audit trail is enabled");
    expect(problems("audit: { enabled: true, path: a.log, max_size_mb: 0 }")).toContain("audit.max_size_mb");
    expect(problems("audit: { enabled: true, path: a.log, max_files: 0 }")).toContain("audit.max_files");
    expect(problems("audit: { enabled: true, path: a.log, rotate: daily }")).toContain("rotate");
    expect(problems("audit: { enabled: true, path: a.log, max_size_mb: 0.5, max_files: 3 }")).toBe("");
  });

  test("the file: relative to the config folder; one per process with several workers", () => {
    const cfg = { enabled: true, path: "logs/audit.log", max_size_mb: 1, max_files: 1 };
    expect(auditPath(cfg, { baseDir: "/etc/y" })).toBe("/etc/y/logs/audit.log");
    expect(auditPath({ ...cfg, path: "/var/log/a.log" }, { baseDir: "/etc/y" })).toBe("/var/log/a.log");
    expect(auditPath(cfg, { baseDir: "/etc/y", share: 4, worker: undefined })).toBe("/etc/y/logs/audit.worker-0.log");
    expect(auditPath(cfg, { baseDir: "/etc/y", share: 4, worker: 3 })).toBe("/etc/y/logs/audit.worker-3.log");
    expect(auditPath({ ...cfg, path: "trail" }, { baseDir: "/x", share: 2, worker: 1 })).toBe("/x/trail.worker-1");
  });
});
