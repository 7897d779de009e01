/**
 * Hostile tokens against the real proxy process (jose-made where jose makes them): claims nested
 * thousands deep, and the headers and claims an attacker chooses. None may reach S3 or OPA unless
 * the token is good, and none may answer a 500.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { hmacToken, nowSec, sign } from "../fixtures/jwt.ts";
import { OpaServer } from "../fixtures/opa.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SECRET = "e2e-hostile-secret-0123456789abcdef";
const CREDS = { accessKeyId: "AKIAE2EHOSTILE", secretAccessKey: "e2e-hostile-secret" };
const BODY = "hostile body\n";
const KEY512 = "e2e-hostile-hs512-key-0123456789abcdef";

let s3: S3Fixture, px: ProxyProcess, opa: OpaServer;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (r: Response): Promise<any> => r.json();
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const good = (extra: Record<string, unknown> = {}) => ({ sub: "alice", exp: nowSec() + 600, ...extra });
const hs = (claims: Record<string, unknown>) => sign(claims, { alg: "HS256", key: SECRET });
/** `{"a": [[[ ... ]]]}`, `depth` arrays deep. */
const nested = (depth: number): unknown => JSON.parse(`${"[".repeat(depth)}${"]".repeat(depth)}`);

beforeAll(async () => {
  opa = OpaServer.start({ "yatagarasu/allow": (input) => input?.jwt_claims?.sub === "alice" });
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...CREDS, buckets: ["data"] }] });
  await s3.put("data", "docs/a.txt", BODY, { contentType: "text/plain" });
  const b = (name: string, extra: string) => bucketYaml({ name, prefix: `/${name}`, bucket: "data", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra });
  const yaml = `server: { address: 127.0.0.1, port: 0 }
jwt:
  enabled: true
  algorithm: HS256
  secret: "${SECRET}"
  keys: [{ id: k512, algorithm: HS512, secret: "${KEY512}" }]
  leeway_seconds: 0
  max_token_bytes: 60000
buckets:
${b("priv", "    auth: { enabled: true }\n")}${b("opa", `    auth: { enabled: true }\n    authorization: { type: opa, opa_url: "${opa.url}", opa_policy_path: yatagarasu/allow, opa_cache_ttl_seconds: 0, opa_timeout_ms: 2000 }\n`)}`;
  px = await startProxy(yaml);
});

afterAll(async () => {
  await px?.stop();
  await s3?.stop();
  opa?.close();
});

describe("claims nested deep", () => {
  test("a token whose claims nest 15,000 deep is refused, 401 naming the depth, on a plain and on an OPA bucket (it overflowed the stack hashing the claims for OPA's cache: a 500)", async () => {
    const token = hmacToken({ alg: "HS256" }, good({ a: nested(15_000) }), SECRET);
    expect(token.length).toBeLessThan(60_000);
    const asked = opa.requests.length;
    for (const path of ["/opa/docs/a.txt", "/priv/docs/a.txt"]) {
      const res = await fetch(px.url(path), { headers: bearer(token) });
      const body = await json(res);
      expect({ path, status: res.status, error: body.error }).toEqual({ path, status: 401, error: "InvalidToken" });
      expect(body.message).toMatch(/nest deeper than \d+ levels/);
    }
    expect(opa.requests.length).toBe(asked);
    // claims nested as deep as real ones are fine, and a good token still passes OPA
    const ok = await fetch(px.url("/opa/docs/a.txt"), { headers: bearer(await hs(good({ org: { team: { unit: ["x"] } } }))) });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe(BODY);
  });
});

describe("hostile headers and timing claims (jose-made tokens)", () => {
  test("jku, x5u, an embedded jwk and a kid naming a path are ignored (the configured secret decides); crit is refused; nbf in the future and exp exactly now are refused", async () => {
    const status = async (token: string) => {
      const res = await fetch(px.url("/priv/docs/a.txt"), { headers: bearer(token) });
      const body = res.status === 200 ? await res.text() : (await json(res)).message;
      return `${res.status} ${body}`;
    };
    const withHeader = (header: Record<string, unknown>, key = SECRET) => sign(good(), { alg: "HS256", key, header });
    for (const header of [{ jku: "http://127.0.0.1:1/jwks.json" }, { x5u: "http://127.0.0.1:1/cert.pem" }, { jwk: { kty: "oct", k: "AAAA" } }, { kid: "../../../../../dev/null" }])
      expect({ header, got: await status(await withHeader(header)) }).toEqual({ header, got: `200 ${BODY}` });
    // signed with what those headers point at (an attacker's key, an empty file's contents): refused
    for (const header of [{ jku: "http://127.0.0.1:1/jwks.json" }, { kid: "../../../../../dev/null" }])
      expect(await status(await withHeader(header, "attacker-key-0123456789abcdef0123"))).toBe("401 signature verification failed");
    expect(await status(hmacToken({ alg: "HS256", crit: ["exp"] }, good(), SECRET))).toStartWith("401 unsupported token header: crit");
    expect(await status(await hs(good({ nbf: nowSec() + 60 })))).toBe("401 token not valid yet (nbf)");
    expect(await status(await hs(good({ exp: nowSec() })))).toBe("401 token expired");
  });

  test("jwt.secret (HS256) does not verify a token whose header says HS512, the algorithm of a jwt.keys entry; that entry's own key does", async () => {
    for (const kid of [null, "k512"]) {
      const res = await fetch(px.url("/priv/docs/a.txt"), { headers: bearer(await sign(good(), { alg: "HS512", key: SECRET, kid })) });
      expect({ kid, status: res.status, message: (await json(res)).message }).toEqual({ kid, status: 401, message: "signature verification failed" });
    }
    for (const kid of [null, "k512"]) expect((await fetch(px.url("/priv/docs/a.txt"), { headers: bearer(await sign(good(), { alg: "HS512", key: KEY512, kid })) })).status).toBe(200);
  });
});
