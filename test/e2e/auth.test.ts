/**
 * Authentication and authorization end to end: the real proxy process, the real S3 fixture behind
 * it, a JWKS server, a PEM file next to the config, and the local OPA / OpenFGA stand-ins.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { hmacToken, JwksServer, makeKeyPair, nowSec, rawToken, sign, signWith, tempDir, type TestKey } from "../fixtures/jwt.ts";
import { waitFor } from "../helpers/wait.ts";
import { OpaServer } from "../fixtures/opa.ts";
import { OpenFgaServer } from "../fixtures/openfga.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SECRET = "e2e-hs256-secret-0123456789abcdef";
const ISS = "https://issuer.test";
const AUD = "yatagarasu-e2e";
const CREDS = { accessKeyId: "AKIAE2EAUTH", secretAccessKey: "e2e-auth-secret" };
const BODY = "private object body\n";

let s3: S3Fixture;
let px: ProxyProcess;
let jwks: JwksServer;
let opa: OpaServer;
let fga: OpenFgaServer;
let rsKey: TestKey;
let esKey: TestKey;
let keys: { dir: string; cleanup: () => void };

const good = (extra: Record<string, unknown> = {}) => ({ iss: ISS, aud: AUD, sub: "alice", tenant: "acme", role: "reader", exp: nowSec() + 600, ...extra });
const hs = (claims: Record<string, unknown>) => sign(claims, { alg: "HS256", key: SECRET });
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (r: Response): Promise<any> => r.json();
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

function bucket(name: string, prefix: string, extra = "") {
  return bucketYaml({ name, prefix, bucket: "data", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra });
}

/** Object requests the proxy sent to S3 (not the test's seeding, not the bucket-level readiness probes). */
// Object requests only: the readiness probe (HEAD of the bucket root, every few seconds) may land at any time.
const proxied = () => s3.requests.filter((r) => !r.admin && r.pathname.startsWith("/data/") && !(r.method === "HEAD" && r.pathname === "/data/"));

beforeAll(async () => {
  keys = tempDir();
  rsKey = await makeKeyPair("RS256", keys.dir, "rs-jwks");
  esKey = await makeKeyPair("ES256", keys.dir, "es-pem");
  jwks = JwksServer.start([rsKey.jwk]);
  opa = OpaServer.start({ "yatagarasu/allow": (input) => input?.jwt_claims?.sub === "alice" && input?.key.startsWith("docs/") });
  fga = OpenFgaServer.start({ tuples: [{ user: "user:alice", relation: "viewer", object: "folder:fga/" }, { user: "folder:fga/", relation: "parent", object: "file:fga/docs/a.txt" }] });
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...CREDS, buckets: ["data"] }] });
  await s3.put("data", "docs/a.txt", BODY, { contentType: "text/plain" });
  await s3.put("data", "docs/shared.txt", BODY, { contentType: "text/plain", cacheControl: "public, max-age=3600, s-maxage=7200, no-transform" });
  const yaml = `server: { address: 127.0.0.1, port: 0 }
metrics: { enabled: true, address: 127.0.0.1, port: 0 }
jwt:
  enabled: true
  algorithm: HS256
  algorithms: [RS256, ES256]
  secret: "${SECRET}"
  jwks_url: "${jwks.url}"
  ecdsa_public_key_path: es.pem
  issuer: "${ISS}"
  audience: "${AUD}"
  leeway_seconds: 0
  token_sources:
    - { type: bearer }
    - { type: header, name: X-Auth-Token, prefix: "Token " }
    - { type: query, name: access_token }
  claims:
    - { claim: tenant, operator: equals, value: acme }
buckets:
${bucket("pub", "/pub")}${bucket("priv", "/priv", "    auth: { enabled: true, claims: [{ claim: role, operator: in, value: [reader, admin] }] }\n")}${bucket(
    "opa",
    "/opa",
    `    auth: { enabled: true }\n    authorization: { type: opa, opa_url: "${opa.url}", opa_policy_path: yatagarasu/allow, opa_cache_ttl_seconds: 0, opa_timeout_ms: 2000 }\n`,
  )}${bucket(
    "opaopen",
    "/opaopen",
    `    auth: { enabled: true }\n    authorization: { type: opa, opa_url: "${opa.url}", opa_policy_path: yatagarasu/allow, opa_cache_ttl_seconds: 0, opa_timeout_ms: 2000, opa_fail_mode: open }\n`,
  )}${bucket("fga", "/fga", `    auth: { enabled: true }\n    authorization: { type: openfga, openfga_endpoint: "${fga.url}", openfga_store_id: "${fga.storeId}", openfga_cache_ttl_seconds: 0, openfga_timeout_ms: 2000 }\n`)}`;
  // es.pem is relative: it resolves against the config file's folder, not the working directory.
  px = await startProxy(yaml, { files: { "es.pem": esKey.pem } });
});

afterAll(async () => {
  await px?.stop();
  await s3?.stop();
  jwks?.close();
  opa?.close();
  fga?.close();
  keys?.cleanup();
});

describe("public and private buckets", () => {
  test("a public bucket serves without any token", async () => {
    const res = await fetch(px.url("/pub/docs/a.txt"));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(BODY);
  });

  test("a private bucket without a token answers 401 with a Bearer challenge and S3 sees nothing", async () => {
    s3.resetLog();
    const res = await fetch(px.url("/priv/docs/a.txt"));
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="yatagarasu"');
    expect((await json(res)).error).toBe("Unauthorized");
    expect(proxied()).toHaveLength(0);
  });

  test("invalid tokens (bad signature, expired, wrong iss, wrong aud, alg none, malformed) get 401 invalid_token and never reach S3", async () => {
    const valid = await hs(good());
    const [h, p] = valid.split(".");
    const cases: Record<string, string> = {
      "bad signature": `${h}.${p}.${hmacToken({ alg: "HS256", typ: "JWT" }, good(), "another-secret").split(".")[2]}`,
      expired: await hs(good({ exp: nowSec() - 60 })),
      "wrong iss": await hs(good({ iss: "https://evil.test" })),
      "wrong aud": await hs(good({ aud: "someone-else" })),
      "alg none": rawToken({ alg: "none", typ: "JWT" }, good()),
      malformed: "not-a-jwt",
      "garbage segments": "a.b.c",
    };
    s3.resetLog();
    for (const [what, token] of Object.entries(cases)) {
      const res = await fetch(px.url("/priv/docs/a.txt"), { headers: bearer(token) });
      expect({ what, status: res.status }).toEqual({ what, status: 401 });
      // RFC 6750 §3: the description is the body's message (what failed, never the token or a claim value)
      const body = await json(res);
      expect(body.error).toBe("InvalidToken");
      const www = res.headers.get("www-authenticate")!;
      expect({ what, www }).toEqual({ what, www: `Bearer realm="yatagarasu", error="invalid_token", error_description="${body.message}"` });
      expect(www).not.toContain(token);
    }
    expect(proxied()).toHaveLength(0);
  });

  test("a valid token failing the global jwt.claims or the bucket's auth.claims gets 403 and never reaches S3", async () => {
    s3.resetLog();
    const wrongTenant = await fetch(px.url("/priv/docs/a.txt"), { headers: bearer(await hs(good({ tenant: "other" }))) });
    expect(wrongTenant.status).toBe(403);
    expect((await json(wrongTenant)).error).toBe("Forbidden");
    const wrongRole = await fetch(px.url("/priv/docs/a.txt"), { headers: bearer(await hs(good({ role: "guest" }))) });
    expect(wrongRole.status).toBe(403);
    await wrongRole.body?.cancel();
    expect(proxied()).toHaveLength(0);
  });

  test("a valid token satisfying all claims gets the object", async () => {
    const res = await fetch(px.url("/priv/docs/a.txt"), { headers: bearer(await hs(good())) });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(BODY);
  });
});

describe("answers only a token holder may have", () => {
  test("carry Cache-Control: private (the object's shared-cache directives dropped), so no CDN in front keeps them; a public bucket's pass as stored", async () => {
    const token = await hs(good());
    const viaHeader = await fetch(px.url("/priv/docs/shared.txt"), { headers: bearer(token) });
    expect(viaHeader.status).toBe(200);
    expect(await viaHeader.text()).toBe(BODY);
    expect(viaHeader.headers.get("cache-control")).toBe("private, max-age=3600, no-transform");
    // a query token (no Authorization header: a shared cache could store the answer heuristically)
    const viaQuery = await fetch(px.url(`/priv/docs/a.txt?access_token=${token}`));
    expect(viaQuery.status).toBe(200);
    expect(viaQuery.headers.get("cache-control")).toBe("private");
    await viaQuery.body?.cancel();
    const head = await fetch(px.url("/priv/docs/shared.txt"), { method: "HEAD", headers: bearer(token) });
    expect(head.headers.get("cache-control")).toBe("private, max-age=3600, no-transform");
    const etag = viaHeader.headers.get("etag")!;
    const notModified = await fetch(px.url("/priv/docs/shared.txt"), { headers: { ...bearer(token), "if-none-match": etag } });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.get("cache-control")).toBe("private, max-age=3600, no-transform");
    const pub = await fetch(px.url("/pub/docs/shared.txt"));
    expect(pub.headers.get("cache-control")).toBe("public, max-age=3600, s-maxage=7200, no-transform");
    await pub.body?.cancel();
  });

  test("an error answer to a HEAD carries the Content-Length its GET's body has (not 0)", async () => {
    for (const [path, headers] of [["/priv/docs/a.txt", {}], ["/pub/docs/none.txt", {}]] as const) {
      const get = await fetch(px.url(path), { headers });
      const body = await get.arrayBuffer();
      const head = await fetch(px.url(path), { method: "HEAD", headers });
      expect(head.status).toBe(get.status);
      expect(get.status === 401 || get.status === 404).toBe(true);
      expect(head.headers.get("content-length")).toBe(String(body.byteLength));
      expect(body.byteLength).toBeGreaterThan(0);
      expect((await head.arrayBuffer()).byteLength).toBe(0);
    }
  });
});

describe("token sources and carrier stripping", () => {
  test("bearer, custom header with prefix and query parameter all authenticate; none of them reaches S3 or the logs", async () => {
    const tokens = [await hs(good({ sub: "bearer-user" })), await hs(good({ sub: "header-user" })), await hs(good({ sub: "query-user" }))];
    s3.resetLog();
    const r1 = await fetch(px.url("/priv/docs/a.txt"), { headers: { authorization: `Bearer ${tokens[0]}`, "x-request-id": "src-bearer" } });
    const r2 = await fetch(px.url("/priv/docs/a.txt"), { headers: { "x-auth-token": `Token ${tokens[1]}`, "x-request-id": "src-header" } });
    const r3 = await fetch(px.url(`/priv/docs/a.txt?access_token=${tokens[2]}`), { headers: { "x-request-id": "src-query" } });
    for (const r of [r1, r2, r3]) {
      expect(r.status).toBe(200);
      expect(await r.text()).toBe(BODY);
    }
    const seen = proxied();
    expect(seen).toHaveLength(3);
    for (const r of seen) {
      expect(r.pathname).toBe("/data/docs/a.txt");
      expect(r.query).toEqual({});
      expect(r.headers["x-auth-token"]).toBeUndefined();
      expect(r.headers.authorization.startsWith("AWS4-HMAC-SHA256 ")).toBe(true);
      expect(r.signed).toBe(true);
      const all = JSON.stringify(r);
      for (const t of tokens) expect(all.includes(t.split(".")[2])).toBe(false);
    }
    const line = await px.waitForLog((l) => l.msg === "request" && l.request_id === "src-query");
    expect(line.path).toBe("/priv/docs/a.txt");
    await px.waitForLog((l) => l.request_id === "src-bearer");
    await px.waitForLog((l) => l.request_id === "src-header");
    const out = px.output();
    for (const t of tokens) expect(out.includes(t.split(".")[2])).toBe(false);
    expect(out.includes("access_token=")).toBe(false);
  });

  test("a header token without its configured prefix is not accepted", async () => {
    const res = await fetch(px.url("/priv/docs/a.txt"), { headers: { "x-auth-token": await hs(good()) } });
    expect(res.status).toBe(401);
    await res.body?.cancel();
  });
});

describe("asymmetric keys", () => {
  test("RS256 verifies through the JWKS server", async () => {
    const res = await fetch(px.url("/priv/docs/a.txt"), { headers: bearer(await signWith(rsKey, good())) });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(BODY);
  });

  test("RS256 signed by a key the JWKS does not hold is rejected as invalid_token", async () => {
    const other = await makeKeyPair("RS256", px.dir, "rs-jwks");
    const res = await fetch(px.url("/priv/docs/a.txt"), { headers: bearer(await signWith(other, good())) });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
    await res.body?.cancel();
  });

  test("ES256 verifies with the PEM file named relative to the config file", async () => {
    const res = await fetch(px.url("/priv/docs/a.txt"), { headers: bearer(await signWith(esKey, good(), null)) });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(BODY);
  });
});

describe("authorization backends", () => {
  test("OPA allows what the policy allows and denies the rest with 403, before S3", async () => {
    const n = opa.requests.length;
    const ok = await fetch(px.url("/opa/docs/a.txt"), { headers: bearer(await hs(good())) });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe(BODY);
    const input = (opa.requests[n].body as { input: Record<string, unknown> }).input;
    expect(input).toMatchObject({ bucket: "opa", key: "docs/a.txt", method: "GET", principal: "jwt" });
    expect((input.jwt_claims as Record<string, unknown>).sub).toBe("alice");
    s3.resetLog();
    const denied = await fetch(px.url("/opa/docs/a.txt"), { headers: bearer(await hs(good({ sub: "mallory" }))) });
    expect(denied.status).toBe(403);
    await denied.body?.cancel();
    expect(proxied()).toHaveLength(0);
  });

  test("OPA failing with fail mode closed answers 503 AuthorizerUnavailable with Retry-After (not 403: clients retry it), and S3 sees nothing", async () => {
    opa.failWith({ status: 500 });
    try {
      s3.resetLog();
      const res = await fetch(px.url("/opa/docs/a.txt"), { headers: bearer(await hs(good({ sub: "alice", jti: "opa-down" }))) });
      expect([res.status, res.headers.get("retry-after"), (await json(res)).error]).toEqual([503, "1", "AuthorizerUnavailable"]);
      expect(proxied()).toHaveLength(0);
      await px.waitForLog((l) => l.level === "warn" && String(l.msg).startsWith("opa unavailable; failing closed"));
    } finally {
      opa.failWith(null);
    }
  });

  test("fail mode open allows through an outage (5xx) but not through a configuration error (4xx): that is 503, logged at error; the metrics and the recovery line count each apart (the allowed ones were `error` and failed_requests)", async () => {
    const token = await hs(good({ sub: "mallory", jti: "opa-open" })); // denied by the policy
    const counts = async () => {
      const text = await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
      return ["fail_open", "error"].map((r) => Number(new RegExp(`^yatagarasu_authz_decisions_total\\{authorizer="opa",result="${r}"\\} (\\d+)$`, "m").exec(text)?.[1] ?? NaN));
    };
    const before = await counts();
    const from = px.logs().length;
    try {
      opa.failWith({ status: 500 });
      for (let i = 0; i < 2; i++) {
        const outage = await fetch(px.url("/opaopen/docs/a.txt"), { headers: bearer(token) });
        expect([outage.status, await outage.text()]).toEqual([200, BODY]);
      }
      for (const status of [400, 401, 404]) {
        opa.failWith({ status, body: { code: "unauthorized", message: "the API token is wrong" } });
        s3.resetLog();
        const res = await fetch(px.url("/opaopen/docs/a.txt"), { headers: bearer(token) });
        expect([res.status, (await json(res)).error]).toEqual([503, "AuthorizerUnavailable"]);
        expect(proxied()).toHaveLength(0);
      }
      await px.waitForLog((l) => l.level === "error" && String(l.msg).startsWith("opa refused the check: a configuration error") && l.error === "HTTP 400 (unauthorized)");
    } finally {
      opa.failWith(null);
    }
    // two let through without a decision, three refused
    expect((await counts()).map((n, i) => n - before[i])).toEqual([2, 3]);
    const back = await fetch(px.url("/opaopen/docs/a.txt"), { headers: bearer(await hs(good({ jti: "opa-open-back" }))) });
    expect(back.status).toBe(200);
    await back.arrayBuffer();
    const line = await px.waitForLog((l) => l.msg === "opa available again" && px.logs().indexOf(l) >= from);
    expect([line.failed_requests, line.fail_open_requests]).toEqual([3, 2]);
  });

  test("a redirect from OPA is not followed (its Location, answering allow, is never asked): 503", async () => {
    const elsewhere = OpaServer.start({ "yatagarasu/allow": () => true });
    try {
      for (const status of [302, 307]) {
        opa.redirectTo(status, `${elsewhere.url}/v1/data/yatagarasu/allow`);
        const res = await fetch(px.url("/opa/docs/a.txt"), { headers: bearer(await hs(good({ sub: "mallory", jti: `redirect-${status}` }))) });
        expect([res.status, (await json(res)).error]).toEqual([503, "AuthorizerUnavailable"]);
      }
      expect(elsewhere.requests).toHaveLength(0);
    } finally {
      opa.restore();
      elsewhere.close();
    }
  });

  test("OpenFGA allows a viewer through folder inheritance and denies others with 403, before S3", async () => {
    const ok = await fetch(px.url("/fga/docs/a.txt"), { headers: bearer(await hs(good())) });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe(BODY);
    expect(fga.requests.at(-1)!.body.tuple_key).toEqual({ user: "user:alice", relation: "viewer", object: "file:fga/docs/a.txt" });
    s3.resetLog();
    const denied = await fetch(px.url("/fga/docs/a.txt"), { headers: bearer(await hs(good({ sub: "bob" }))) });
    expect(denied.status).toBe(403);
    await denied.body?.cancel();
    expect(proxied()).toHaveLength(0);
  });
});

describe("JWKS not loaded at start", () => {
  test("503 with Retry-After and /ready 503 naming jwt until the JWKS answers, then requests succeed", async () => {
    const down = JwksServer.start([rsKey.jwk]);
    down.failWith({ status: 503 });
    const p = await startProxy(`server: { address: 127.0.0.1, port: 0 }
jwt: { enabled: true, algorithm: RS256, jwks_url: "${down.url}", jwks_refresh_interval_secs: 1 }
buckets:
${bucket("priv", "/priv", "    auth: { enabled: true }\n")}`);
    try {
      const token = await signWith(rsKey, { sub: "alice", exp: nowSec() + 600 });
      await waitFor(() => down.fetchCount > 0, { message: "the first JWKS fetch" });
      s3.resetLog();
      const res = await fetch(p.url("/priv/docs/a.txt"), { headers: bearer(token) });
      expect(res.status).toBe(503);
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect((await json(res)).error).toBe("KeysUnavailable");
      expect(proxied()).toHaveLength(0);
      const ready = await fetch(p.url("/ready"));
      expect(ready.status).toBe(503);
      const report = await json(ready);
      expect(report.ready).toBe(false);
      expect(report.reasons.some((r: string) => r.startsWith("jwt:"))).toBe(true);
      // anyone may read /ready: the reason says what failed, never where (the log names the URL)
      expect(report.jwks).toEqual({ ok: false, reason: "JWKS keys not loaded: HTTP 503 (the log names the URL)" });
      expect(JSON.stringify(report)).not.toContain(String(new URL(down.url).port));

      down.failWith(null);
      await p.waitForLog((l) => l.msg === "JWKS keys loaded", 10_000); // the retry after the failed first fetch
      const ok = await fetch(p.url("/priv/docs/a.txt"), { headers: bearer(token) });
      await ok.body?.cancel();
      expect(ok.status).toBe(200);
      const readyAfter = await fetch(p.url("/ready"));
      const after = await json(readyAfter);
      expect(after.jwks).toEqual({ ok: true });
    } finally {
      await p.stop();
      down.close();
    }
  }, 20_000);
});
