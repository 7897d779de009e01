import { afterAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { Authenticator } from "../../src/auth/index.ts";
import { hmacToken, jwtConfig, nowSec } from "../fixtures/jwt.ts";
import { expectProxyError } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SECRET = "authenticate-secret-0123456789";
const opened: Authenticator[] = [];
afterAll(() => opened.forEach((a) => a.close()));

async function make(extra: Record<string, unknown> = {}) {
  const a = await Authenticator.create(
    jwtConfig({
      secret: SECRET,
      token_sources: [{ type: "bearer" }, { type: "query", name: "token" }],
      claims: [{ claim: "role", operator: "in", value: ["admin", "editor"] }],
      admin_claims: [{ claim: "org.admin", operator: "equals", value: true }],
      ...extra,
    }),
  );
  opened.push(a);
  return a;
}
const token = (claims: Record<string, unknown>) => hmacToken({ alg: "HS256", typ: "JWT" }, { sub: "alice", exp: nowSec() + 300, ...claims }, SECRET);
const bearer = (t: string) => new Headers({ authorization: `Bearer ${t}` });
const url = (q = "") => new URL(`http://proxy.local/b/k${q}`);

describe("authenticate", () => {
  test("no token → Unauthorized with a Bearer challenge", async () => {
    const a = await make();
    const e = await expectProxyError(a.authenticate(new Headers(), url()), "Unauthorized", /token is required \(Authorization: Bearer, query parameter token\)/);
    expect(e.status).toBe(401);
    expect(e.headers).toEqual({ "WWW-Authenticate": 'Bearer realm="yatagarasu"' });
  });
  // a token sent in the header without its prefix was told "a token is required (header X-Auth-Token)": the header it sent
  test("a header source with a prefix is named with it, so a token sent without the prefix is told what the header must hold", async () => {
    const a = await make({ token_sources: [{ type: "header", name: "X-Auth-Token", prefix: "Token " }, { type: "header", name: "X-Api-Key" }] });
    const t = token({ role: "admin" });
    await expectProxyError(a.authenticate(new Headers({ "x-auth-token": t }), url()), "Unauthorized", /token is required \(header X-Auth-Token: Token <token>, header X-Api-Key\)/);
    expect((await a.authenticate(new Headers({ "x-auth-token": `token ${t}` }), url())).claims.sub).toBe("alice");
  });
  test("an S3 client's signature (header or presigned query) instead of a token: the 401 says where S3 clients go; a plain one does not", async () => {
    const a = await make();
    const sigv4 = new Headers({ authorization: "AWS4-HMAC-SHA256 Credential=AKID/20261203/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00" });
    for (const [h, u] of [[sigv4, url()], [new Headers({ authorization: "AWS AKID:c2ln" }), url()], [new Headers(), url("?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00")], [new Headers(), url("?AWSAccessKeyId=AKID&Expires=1&Signature=c2ln")]] as const) {
      await expectProxyError(a.authenticate(h, u), "Unauthorized", /token is required .*S3 clients use the S3 API listener \(s3_api\.port\)/);
    }
    const e = await expectProxyError(a.authenticate(new Headers({ authorization: "Basic eDp5" }), url()), "Unauthorized", /token is required/);
    expect(e.message).not.toContain("S3");
  });
  // (a JWT sent where this bucket does not read one was told only where tokens are read: "a token is required (Authorization: Bearer)")
  test("a token sent where the bucket does not read one: the 401 says where it was found (never the token)", async () => {
    const a = await make({ token_sources: [{ type: "bearer" }] });
    const t = token({ role: "admin" });
    const bare = await expectProxyError(a.authenticate(new Headers({ authorization: t }), url()), "Unauthorized", /token is required \(Authorization: Bearer\); the Authorization header holds no 'Bearer ' before its value/);
    expect(bare.message).not.toContain(t.slice(0, 20));
    await expectProxyError(a.authenticate(new Headers(), url(`?token=${t}`)), "Unauthorized", /; a query parameter 'token' was sent, which this listener does not read a token from/);
    await expectProxyError(a.authenticate(new Headers(), url(`?access_token=${t}`)), "Unauthorized", /query parameter 'access_token'/);
    // nothing to add for no token at all, or a Basic credential
    for (const h of [new Headers(), new Headers({ authorization: "Basic eDp5" })]) {
      const e = await expectProxyError(a.authenticate(h, url()), "Unauthorized", /token is required/);
      expect(e.message).not.toContain(";");
    }
    // a query parameter a source reads is no hint (it was read: an empty one is missing)
    const q = await make({ token_sources: [{ type: "query", name: "token" }] });
    const e = await expectProxyError(q.authenticate(new Headers(), url("?token=")), "Unauthorized", /token is required/);
    expect(e.message).not.toContain("was sent");
  });
  test("invalid token → InvalidToken with error=invalid_token", async () => {
    const a = await make();
    const t = hmacToken({ alg: "HS256" }, { sub: "x", role: "admin" }, "wrong");
    const e = await expectProxyError(a.authenticate(bearer(t), url()), "InvalidToken", /signature/, t);
    expect(e.headers).toEqual({ "WWW-Authenticate": 'Bearer realm="yatagarasu", error="invalid_token", error_description="signature verification failed"' });
  });
  test("valid token + rules hold → claims and where the token came from", async () => {
    const a = await make();
    const t = token({ role: "editor" });
    expect(await a.authenticate(bearer(t), url())).toEqual({ claims: expect.objectContaining({ role: "editor" }), source: { type: "bearer" } });
    const u = url(`?x=1&token=${t}`);
    const res = await a.authenticate(new Headers(), u);
    expect(res.source).toEqual({ type: "query", name: "token" });
  });
  test("a failed jwt.claims rule → Forbidden naming the rule, not the claim's value", async () => {
    const a = await make();
    const t = token({ role: "very-secret-role-value" });
    const e = await expectProxyError(a.authenticate(bearer(t), url()), "Forbidden", "claim 'role' must be in [admin, editor]", t);
    expect(e.status).toBe(403);
    expect(await e.toResponse("r").text()).not.toContain("very-secret-role-value");
    await expectProxyError(a.authenticate(bearer(token({})), url()), "Forbidden", /claim 'role'/);
  });
  test("bucket rules are ANDed with jwt.claims", async () => {
    const a = await make();
    const rules = [
      { claim: "org.tier", operator: "equals" as const, value: "gold" },
      { claim: "level", operator: "gte" as const, value: 3 },
    ];
    const ok = token({ role: "admin", org: { tier: "gold" }, level: 3 });
    expect((await a.authenticate(bearer(ok), url(), rules)).claims.sub).toBe("alice");
    await expectProxyError(a.authenticate(bearer(token({ role: "admin", org: { tier: "silver" }, level: 3 })), url(), rules), "Forbidden", "claim 'org.tier' must equal gold");
    await expectProxyError(a.authenticate(bearer(token({ role: "admin", org: { tier: "gold" }, level: "9" })), url(), rules), "Forbidden", "claim 'level' must be a number >= 3");
    await expectProxyError(a.authenticate(bearer(token({ org: { tier: "gold" }, level: 3 })), url(), rules), "Forbidden", /claim 'role'/);
  });
});

describe("authenticateAdmin", () => {
  test("admin_claims must hold, and jwt.claims too (the global rules gate every token: a tenant, an iat cut-off)", async () => {
    const a = await make();
    expect(await a.authenticateAdmin(bearer(token({ role: "admin", org: { admin: true } })), url())).toMatchObject({ sub: "alice" });
    // an admin by admin_claims whose token the global rules refuse everywhere else is refused here too
    await expectProxyError(a.authenticateAdmin(bearer(token({ role: "viewer", org: { admin: true } })), url()), "Forbidden", "claim 'role' must be in [admin, editor]");
    await expectProxyError(a.authenticateAdmin(bearer(token({ org: { admin: true } })), url()), "Forbidden", /claim 'role'/);
    await expectProxyError(a.authenticateAdmin(bearer(token({ role: "admin", org: { admin: "true" } })), url()), "Forbidden", "claim 'org.admin' must equal true");
    await expectProxyError(a.authenticateAdmin(new Headers(), url()), "Unauthorized", undefined);
    const bad = hmacToken({ alg: "HS256" }, { org: { admin: true } }, "nope");
    await expectProxyError(a.authenticateAdmin(bearer(bad), url()), "InvalidToken", /signature/, bad);
  });
  test("no admin_claims configured → nobody is admin", async () => {
    const a = await make({ admin_claims: [] });
    await expectProxyError(a.authenticateAdmin(bearer(token({ role: "admin" })), url()), "Forbidden", /no jwt.admin_claims/);
  });
});

test("readiness is ok without JWKS; close is idempotent", async () => {
  const a = await make();
  expect(a.readiness()).toEqual({ ok: true });
  a.close();
  a.close();
});
