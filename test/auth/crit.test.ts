/**
 * Defect 9: `crit` header parameters (RFC 7515 §4.1.11). This proxy implements no JWS extension,
 * so a token whose header has a crit member is refused on every algorithm path, however validly
 * signed. The tokens here are really signed; a control token with the same key passes each time.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { compactVerify, FlattenedSign } from "jose";
import { Authenticator } from "../../src/auth/index.ts";
import { asymToken, b64url, hmacToken, JwksServer, jwtConfig, makeKeyPair, nowSec, tempDir, type AsymAlg, type TestKey } from "../fixtures/jwt.ts";
import { expectProxyError } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SECRET = "crit-secret-0123456789-abcdefghijkl";
const tmp = tempDir();
const keys = {} as Record<"RS256" | "PS256" | "ES256" | "EdDSA", TestKey>;
const opened: Array<{ close(): void }> = [];
beforeAll(async () => {
  for (const alg of ["RS256", "PS256", "ES256", "EdDSA"] as const) keys[alg] = await makeKeyPair(alg, tmp.dir, `crit-${alg}`);
});
afterAll(() => {
  for (const o of opened) o.close();
  tmp.cleanup();
});

const claims = () => ({ sub: "alice", exp: nowSec() + 600 });
/** Each forbidden header shape, given the base header. Payload: the claims (b64: false signs the same segment bytes). */
const critHeaders = (h: Record<string, unknown>): Array<[string, Record<string, unknown>]> => [
  ['crit ["b64"], b64: false (RFC 7797)', { ...h, crit: ["b64"], b64: false }],
  ["crit naming a private extension", { ...h, crit: ["urn:example:ext"], "urn:example:ext": 1 }],
  ["crit: [] (empty)", { ...h, crit: [] }],
  ['crit: "b64" (not an array)', { ...h, crit: "b64", b64: false }],
  ["crit: null", { ...h, crit: null }],
];

async function expectCritRefused(a: Authenticator, sign: (header: Record<string, unknown>) => Promise<string> | string, base: Record<string, unknown>) {
  expect(await a.verify(await sign(base))).toMatchObject({ sub: "alice" }); // control: the same key and signer
  for (const [what, header] of critHeaders(base)) {
    const t = await sign(header);
    const e = await expectProxyError(a.verify(t), "InvalidToken", /unsupported token header: crit/, t);
    expect([what, e.status]).toEqual([what, 401]);
  }
}

describe("static keys: every algorithm family refuses crit", () => {
  test("HS256 (HMAC fast path)", async () => {
    const a = await Authenticator.create(jwtConfig({ algorithm: "HS256", secret: SECRET }));
    opened.push(a);
    await expectCritRefused(a, (h) => hmacToken(h, claims(), SECRET), { alg: "HS256" });
  });
  for (const alg of ["RS256", "PS256", "ES256", "EdDSA"] as const)
    test(`${alg} (jose path, key by kid and legacy key)`, async () => {
      const k = keys[alg];
      const byKid = await Authenticator.create(jwtConfig({ algorithm: alg, keys: [{ id: k.kid, algorithm: alg, path: k.pemPath }] }));
      const legacy = await Authenticator.create(jwtConfig({ algorithm: alg, public_key_path: k.pemPath }));
      opened.push(byKid, legacy);
      await expectCritRefused(byKid, (h) => asymToken(k, h, claims()), { alg, kid: k.kid });
      await expectCritRefused(legacy, (h) => asymToken(k, h, claims()), { alg });
    });
});

test("JWKS keys (RS256, ES256, EdDSA) refuse crit, without fetching the key set again", async () => {
  const server = JwksServer.start([keys.RS256.jwk, keys.ES256.jwk, keys.EdDSA.jwk]);
  const a = await Authenticator.create(jwtConfig({ algorithm: "RS256", algorithms: ["ES256", "EdDSA"], jwks_url: server.url }));
  opened.push(a, server);
  await a.refreshKeys(); // joins the first fetch
  for (const alg of ["RS256", "ES256", "EdDSA"] as const satisfies readonly AsymAlg[]) {
    const k = keys[alg];
    await expectCritRefused(a, (h) => asymToken(k, h, claims()), { alg, kid: k.kid });
    await expectCritRefused(a, (h) => asymToken(k, h, claims()), { alg }); // no kid: every JWKS key of the algorithm
    const ghost = await asymToken(k, { alg, kid: "ghost", crit: ["b64"], b64: false }, claims());
    await expectProxyError(a.verify(ghost), "InvalidToken", /crit/, ghost); // refused before any key lookup
  }
  expect(server.fetchCount).toBe(1); // so crit tokens cannot make the proxy refetch the JWKS
});

test("the reported token: jose produces and accepts RS256 with crit [b64], b64: false; the proxy refuses it", async () => {
  const k = keys.RS256;
  // With b64: false the payload segment is the payload itself; here it is base64url text, so the
  // proxy (which decodes the segment as base64url) would read claims the issuer never signed as such.
  const segment = b64url(JSON.stringify(claims()));
  const jws = await new FlattenedSign(new TextEncoder().encode(segment)).setProtectedHeader({ alg: "RS256", kid: k.kid, crit: ["b64"], b64: false }).sign(k.privateKey);
  const t = `${jws.protected}.${segment}.${jws.signature}`; // jose leaves an unencoded payload detached
  expect((await compactVerify(t, k.publicKey)).protectedHeader.b64).toBe(false); // a genuinely valid JWS
  const a = await Authenticator.create(jwtConfig({ algorithm: "RS256", keys: [{ id: k.kid, algorithm: "RS256", path: k.pemPath }] }));
  opened.push(a);
  await expectProxyError(a.verify(t), "InvalidToken", /crit/, t);
  await expectProxyError(a.authenticate(new Headers({ authorization: `Bearer ${t}` }), new URL("http://x/")), "InvalidToken", /crit/, t);
});
