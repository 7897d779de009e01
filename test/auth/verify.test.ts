import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { CompactSign } from "jose";
import { Authenticator } from "../../src/auth/index.ts";
import { MAX_CLAIMS_DEPTH } from "../../src/auth/jwt.ts";
import { b64url, hmacToken, jwtConfig, makeKeyPair, nowSec, rawToken, sign, signWith, tempDir, type AsymAlg, type TestKey } from "../fixtures/jwt.ts";
import { expectProxyError } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SECRET = "test-secret-0123456789-abcdefghij";
const tmp = tempDir();
const keys: Partial<Record<AsymAlg, TestKey>> = {};
const opened: Authenticator[] = [];
const make = async (cfg: Record<string, unknown>, opts: Parameters<typeof Authenticator.create>[1] = {}) => {
  const a = await Authenticator.create(jwtConfig(cfg), opts);
  opened.push(a);
  return a;
};

beforeAll(async () => {
  for (const alg of ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"] as const) keys[alg] = await makeKeyPair(alg, tmp.dir);
});
afterAll(() => {
  for (const a of opened) a.close();
  tmp.cleanup();
});

const fresh = (extra: Record<string, unknown> = {}) => ({ sub: "alice", exp: nowSec() + 600, ...extra });

describe("every algorithm verifies", () => {
  for (const [alg, hash] of [["HS256", "sha256"], ["HS384", "sha384"], ["HS512", "sha512"]] as const)
    test(alg, async () => {
      const a = await make({ algorithm: alg, secret: SECRET });
      expect(await a.verify(await sign(fresh(), { alg, key: SECRET }))).toMatchObject({ sub: "alice" });
      expect(await a.verify(hmacToken({ alg }, fresh(), SECRET, hash))).toMatchObject({ sub: "alice" });
    });
  for (const alg of ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"] as const)
    test(`${alg} (public_key_path, and as a jwt.keys entry)`, async () => {
      const k = keys[alg]!;
      const legacy = await make({ algorithm: alg, public_key_path: k.pemPath });
      expect(await legacy.verify(await signWith(k, fresh(), null))).toMatchObject({ sub: "alice" });
      const byId = await make({ algorithm: alg, keys: [{ id: k.kid, algorithm: alg, path: k.pemPath }] });
      expect(await byId.verify(await signWith(k, fresh()))).toMatchObject({ sub: "alice" });
    });
  test("rsa_public_key_path / ecdsa_public_key_path, relative to baseDir", async () => {
    const rs = await make({ algorithm: "RS256", rsa_public_key_path: keys.RS256!.pemPath.split("/").pop() }, { baseDir: tmp.dir });
    expect(await rs.verify(await signWith(keys.RS256!, fresh(), null))).toMatchObject({ sub: "alice" });
    const es = await make({ algorithm: "ES384", ecdsa_public_key_path: keys.ES384!.pemPath });
    expect(await es.verify(await signWith(keys.ES384!, fresh(), null))).toMatchObject({ sub: "alice" });
  });
});

describe("rejections (InvalidToken; the token never appears in the error)", () => {
  let hs: Authenticator;
  beforeAll(async () => {
    hs = await make({ algorithm: "HS256", secret: SECRET, leeway_seconds: 30, issuer: "https://idp", audience: ["api", "web"] });
  });
  const good = (extra: Record<string, unknown> = {}) => ({ iss: "https://idp", aud: "api", ...fresh(extra) });
  const bad = async (token: string, detail: RegExp, a = hs) => expectProxyError(a.verify(token), "InvalidToken", detail, token);

  test("valid baseline, aud as array intersecting", async () => {
    expect(await hs.verify(hmacToken({ alg: "HS256" }, good(), SECRET))).toMatchObject({ sub: "alice" });
    expect(await hs.verify(hmacToken({ alg: "HS256" }, good({ aud: ["other", "web"] }), SECRET))).toMatchObject({ sub: "alice" });
  });
  test("bad signature", async () => {
    await bad(hmacToken({ alg: "HS256" }, good(), "wrong-secret"), /signature verification failed/);
    const t = hmacToken({ alg: "HS256" }, good(), SECRET);
    await bad(`${t.slice(0, -2)}${t.endsWith("AA") ? "BB" : "AA"}`, /signature/);
    await bad(`${t.split(".").slice(0, 2).join(".")}.`, /signature verification failed/); // empty signature
  });
  test("the WWW-Authenticate header says invalid_token", async () => {
    const e = await bad(hmacToken({ alg: "HS256" }, good(), "nope"), /signature/);
    expect(e.headers?.["WWW-Authenticate"]).toBe('Bearer realm="yatagarasu", error="invalid_token", error_description="signature verification failed"');
    // RFC 6750 §3: no quote, backslash or control character in error_description, whatever the detail says
    const alg = await bad(`${Buffer.from('{"alg":"x\\"\\u0001"}').toString("base64url")}.${Buffer.from("{}").toString("base64url")}.AA`, /algorithm/);
    expect(alg.headers?.["WWW-Authenticate"]).toMatch(/^Bearer realm="yatagarasu", error="invalid_token", error_description="[\x20\x21\x23-\x5b\x5d-\x7e]+"$/);
    expect(e.status).toBe(401);
  });
  test("a token without exp: accepted by default (it never expires), refused with jwt.require_exp", async () => {
    const { exp: _, ...noExp } = good();
    expect(await hs.verify(hmacToken({ alg: "HS256" }, noExp, SECRET))).toMatchObject({ sub: "alice" });
    const strict = await make({ algorithm: "HS256", secret: SECRET, require_exp: true });
    await bad(hmacToken({ alg: "HS256" }, noExp, SECRET), /no exp claim/, strict);
    expect(await strict.verify(hmacToken({ alg: "HS256" }, good(), SECRET))).toMatchObject({ sub: "alice" });
  });
  test("expired / not yet valid, and the leeway", async () => {
    const now = nowSec();
    await bad(hmacToken({ alg: "HS256" }, good({ exp: now - 31 }), SECRET), /expired/);
    expect(await hs.verify(hmacToken({ alg: "HS256" }, good({ exp: now - 20 }), SECRET))).toBeTruthy(); // within leeway
    await bad(hmacToken({ alg: "HS256" }, good({ nbf: now + 60 }), SECRET), /not valid yet/);
    expect(await hs.verify(hmacToken({ alg: "HS256" }, good({ nbf: now + 20 }), SECRET))).toBeTruthy(); // within leeway
    await bad(hmacToken({ alg: "HS256" }, good({ exp: "tomorrow" }), SECRET), /exp claim is not a number/);
    await bad(hmacToken({ alg: "HS256" }, good({ nbf: "now" }), SECRET), /nbf claim is not a number/);
  });
  test("iat in the future beyond the leeway is refused; within it, or in the past, accepted", async () => {
    const now = nowSec();
    await bad(hmacToken({ alg: "HS256" }, good({ iat: now + 3600 }), SECRET), /issued in the future/);
    expect(await hs.verify(hmacToken({ alg: "HS256" }, good({ iat: now + 20 }), SECRET))).toBeTruthy(); // within leeway
    expect(await hs.verify(hmacToken({ alg: "HS256" }, good({ iat: now - 3600 }), SECRET))).toBeTruthy();
    await bad(hmacToken({ alg: "HS256" }, good({ iat: "now" }), SECRET), /iat claim is not a number/);
  });
  test("no exp is accepted (documented policy)", async () => {
    const { exp: _, ...noExp } = good();
    expect(await hs.verify(hmacToken({ alg: "HS256" }, noExp, SECRET))).toMatchObject({ sub: "alice" });
  });
  test("wrong or missing iss / aud", async () => {
    await bad(hmacToken({ alg: "HS256" }, good({ iss: "https://evil" }), SECRET), /iss/);
    await bad(hmacToken({ alg: "HS256" }, good({ iss: undefined }), SECRET), /iss/);
    await bad(hmacToken({ alg: "HS256" }, good({ aud: "other" }), SECRET), /aud/);
    await bad(hmacToken({ alg: "HS256" }, good({ aud: ["x", "y"] }), SECRET), /aud/);
    await bad(hmacToken({ alg: "HS256" }, good({ aud: undefined }), SECRET), /aud/);
  });
  test("malformed: parts, base64, JSON", async () => {
    const h = b64url(JSON.stringify({ alg: "HS256" }));
    const p = b64url(JSON.stringify(good()));
    await bad(`${h}.${p}`, /three dot-separated parts/);
    await bad(`${h}.${p}.sig.extra`, /three dot-separated parts/);
    await bad(`.${p}.sig`, /three/);
    await bad("not-a-jwt-at-all", /three/);
    await bad(`${h}.${p}!.c2ln`, /base64url/);
    await bad(`${h}..c2ln`, /base64url/);
    await bad(rawToken(b64url("{not json"), good(), "c2ln"), /header is not base64url JSON/);
    await bad(rawToken(b64url("[1,2]"), good(), "c2ln"), /header is not a JSON object/);
    await bad(rawToken({ typ: "JWT" }, good(), "c2ln"), /no alg/);
    await bad(rawToken({ alg: "HS256", kid: 5 }, good(), "c2ln"), /kid is not a string/);
    // a validly signed payload that is not JSON / not an object
    for (const payload of ["not json", "[1]", "42"]) {
      const input = `${h}.${b64url(payload)}`;
      const sig = new Bun.CryptoHasher("sha256", SECRET).update(input).digest("base64url");
      await bad(`${input}.${sig}`, /payload/);
    }
  });
  test("a header or payload that is not valid UTF-8, or starts with a byte order mark, is refused (RFC 7519 §7.2)", async () => {
    // (decoded leniently, a byte that is no UTF-8 became U+FFFD, so distinct signed bytes read as one
    // claim value, and a BOM was silently dropped: both were accepted)
    const signed = (header: Uint8Array | string, payload: Uint8Array | string) => {
      const input = `${b64url(header)}.${b64url(payload)}`;
      return `${input}.${new Bun.CryptoHasher("sha256", SECRET).update(input).digest("base64url")}`;
    };
    const claims = JSON.stringify(good());
    const header = JSON.stringify({ alg: "HS256" });
    const bom = (s: string) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(s)]);
    expect(await hs.verify(signed(header, claims))).toMatchObject({ sub: "alice" });
    await bad(signed(header, Buffer.from(claims.replace('"alice"', '"ali\xffce"'), "latin1")), /payload is not base64url JSON/);
    await bad(signed(header, bom(claims)), /payload is not base64url JSON/);
    await bad(signed(bom(header), claims), /header is not base64url JSON/);
    await bad(signed(Buffer.from('{"alg":"HS256","x":"\xc3"}', "latin1"), claims), /header is not base64url JSON/);
    const k = keys.RS256!;
    const rs = await make({ algorithm: "RS256", rsa_public_key_path: k.pemPath });
    const token = await new CompactSign(Buffer.from(claims.replace('"alice"', '"ali\xffce"'), "latin1")).setProtectedHeader({ alg: "RS256" }).sign(k.privateKey);
    await bad(token, /payload is not base64url JSON/, rs);
  });
  test("an asymmetric token whose validly signed payload is not a JSON object says so (as the HMAC path does)", async () => {
    const k = keys.RS256!;
    const rs = await make({ algorithm: "RS256", rsa_public_key_path: k.pemPath });
    for (const payload of ["not json", "[1]", "42"]) {
      const token = await new CompactSign(new TextEncoder().encode(payload)).setProtectedHeader({ alg: "RS256" }).sign(k.privateKey);
      await bad(token, /malformed token: payload is not (base64url JSON|a JSON object)/, rs);
    }
  });
  test("algorithm not configured; alg none with an empty signature", async () => {
    await bad(hmacToken({ alg: "HS512" }, good(), SECRET, "sha512"), /algorithm HS512 is not accepted/);
    await bad(rawToken({ alg: "none" }, good(), ""), /algorithm none is not accepted/);
    await bad(rawToken({ alg: "None", typ: "JWT" }, good(), ""), /not accepted/);
    await bad(rawToken({ alg: "RS256" }, good(), "c2ln"), /RS256 is not accepted/);
  });
  test("HS/RS key confusion: HS256 signed with the RS256 public key PEM fails", async () => {
    const k = keys.RS256!;
    const rsOnly = await make({ algorithm: "RS256", rsa_public_key_path: k.pemPath });
    expect(await rsOnly.verify(await signWith(k, fresh(), null))).toMatchObject({ sub: "alice" });
    for (const secret of [k.pem, k.pem.trim(), Buffer.from(k.pem)]) await bad(hmacToken({ alg: "HS256" }, fresh(), secret), /HS256 is not accepted/, rsOnly);
    await bad(rawToken({ alg: "none" }, fresh(), ""), /not accepted/, rsOnly);
    // Even with HS256 also configured, the PEM is never an HMAC key.
    const both = await make({ algorithm: "RS256", algorithms: ["HS256"], secret: SECRET, rsa_public_key_path: k.pemPath });
    await bad(hmacToken({ alg: "HS256" }, fresh(), k.pem), /signature verification failed/, both);
    await bad(hmacToken({ alg: "HS256", kid: k.kid }, fresh(), k.pem), /signature verification failed/, both);
    expect(await both.verify(hmacToken({ alg: "HS256" }, fresh(), SECRET))).toMatchObject({ sub: "alice" });
  });
  test("a token over max_token_bytes is refused before parsing", async () => {
    const big = hmacToken({ alg: "HS256" }, good({ pad: "x".repeat(9000) }), SECRET);
    await bad(big, /max_token_bytes \(8192\)/);
    await bad("x".repeat(8193), /max_token_bytes/); // not even a JWT: refused on size alone
    await bad("é".repeat(4097), /max_token_bytes/); // 4097 characters, 8194 UTF-8 bytes
    const small = await make({ algorithm: "HS256", secret: SECRET, max_token_bytes: 256 });
    await bad(hmacToken({ alg: "HS256" }, { ...fresh(), pad: "p".repeat(300) }, SECRET), /max_token_bytes \(256\)/, small);
  });
  test("asymmetric: bad signature, wrong key type, expired", async () => {
    const es = await make({ algorithm: "ES256", public_key_path: keys.ES256!.pemPath });
    const other = await makeKeyPair("ES256", tmp.dir);
    await bad(await signWith(other, fresh(), null), /signature verification failed/, es);
    const t = await signWith(keys.ES256!, fresh(), null);
    await bad(`${t.slice(0, -4)}${t.endsWith("AAAA") ? "BBBB" : "AAAA"}`, /signature/, es);
    await bad(await signWith(keys.ES256!, fresh({ exp: nowSec() - 120 }), null), /expired/, es);
    await bad(await signWith(keys.RS256!, fresh(), null), /RS256 is not accepted/, es);
  });
});

describe("claims nesting", () => {
  test("a payload nesting deeper than MAX_CLAIMS_DEPTH is refused; as deep is accepted, and a short payload is never walked", async () => {
    const a = await make({ algorithm: "HS256", secret: SECRET, max_token_bytes: 65536 });
    // the payload object is one level: `a` holds depth - 1 more
    const deep = (depth: number) => fresh({ a: JSON.parse(`${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}`) });
    expect(await a.verify(hmacToken({ alg: "HS256" }, deep(MAX_CLAIMS_DEPTH), SECRET))).toMatchObject({ sub: "alice" });
    for (const depth of [MAX_CLAIMS_DEPTH + 1, 20_000]) {
      const t = hmacToken({ alg: "HS256" }, deep(depth), SECRET);
      await expectProxyError(a.verify(t), "InvalidToken", `malformed token: the payload values nest deeper than ${MAX_CLAIMS_DEPTH} levels`, t);
    }
    const o = hmacToken({ alg: "HS256" }, fresh({ a: JSON.parse(`${'{"b":'.repeat(MAX_CLAIMS_DEPTH)}1${"}".repeat(MAX_CLAIMS_DEPTH)}`) }), SECRET);
    await expectProxyError(a.verify(o), "InvalidToken", /nest deeper/, o);
  });
});

describe("kid selection", () => {
  test("jwt.keys by kid; unknown kid; no kid tries keys of the algorithm; legacy fallback", async () => {
    const [k1, k2] = [keys.RS256!, await makeKeyPair("RS256", tmp.dir)];
    const a = await make({ algorithm: "RS256", keys: [{ id: k1.kid, algorithm: "RS256", path: k1.pemPath }, { id: k2.kid, algorithm: "RS256", path: k2.pemPath }] });
    expect(await a.verify(await signWith(k2, fresh()))).toMatchObject({ sub: "alice" });
    const swapped = await sign(fresh(), { alg: "RS256", key: k2.privateKey, kid: k1.kid });
    await expectProxyError(a.verify(swapped), "InvalidToken", /signature verification failed/, swapped);
    const unknown = await sign(fresh(), { alg: "RS256", key: k2.privateKey, kid: "nobody" });
    await expectProxyError(a.verify(unknown), "InvalidToken", /unknown key id/, unknown);
    expect(await a.verify(await signWith(k2, fresh(), null))).toMatchObject({ sub: "alice" });

    const withLegacy = await make({ algorithm: "RS256", rsa_public_key_path: k2.pemPath, keys: [{ id: k1.kid, algorithm: "RS256", path: k1.pemPath }] });
    expect(await withLegacy.verify(unknown)).toMatchObject({ sub: "alice" }); // unknown kid → legacy key
    expect(await withLegacy.verify(await signWith(k1, fresh()))).toMatchObject({ sub: "alice" });
  });
  test("HS keys by kid with different secrets", async () => {
    const a = await make({ algorithm: "HS256", keys: [{ id: "a", algorithm: "HS256", secret: "secret-a" }, { id: "b", algorithm: "HS384", secret: "secret-b" }] });
    expect(await a.verify(hmacToken({ alg: "HS256", kid: "a" }, fresh(), "secret-a"))).toMatchObject({ sub: "alice" });
    expect(await a.verify(hmacToken({ alg: "HS384", kid: "b" }, fresh(), "secret-b", "sha384"))).toMatchObject({ sub: "alice" });
    const t = hmacToken({ alg: "HS256", kid: "b" }, fresh(), "secret-b");
    await expectProxyError(a.verify(t), "InvalidToken", /unknown key id/, t); // kid b is HS384 only
  });
  test("jwt.secret verifies only the HS* algorithms declared for it (algorithm, algorithms[]), not one named only by a jwt.keys entry", async () => {
    const keySecret = "key-secret-0123456789abcdefghijklmnop";
    const a = await make({ algorithm: "HS256", secret: SECRET, keys: [{ id: "k512", algorithm: "HS512", secret: keySecret }] });
    expect(await a.verify(hmacToken({ alg: "HS256" }, fresh(), SECRET))).toMatchObject({ sub: "alice" });
    expect(await a.verify(hmacToken({ alg: "HS512", kid: "k512" }, fresh(), keySecret, "sha512"))).toMatchObject({ sub: "alice" });
    expect(await a.verify(hmacToken({ alg: "HS512" }, fresh(), keySecret, "sha512"))).toMatchObject({ sub: "alice" });
    for (const [alg, hash] of [["HS512", "sha512"], ["HS384", "sha384"]] as const) {
      for (const kid of [undefined, "k512", "nobody"]) {
        const t = hmacToken({ alg, ...(kid ? { kid } : {}) }, fresh(), SECRET, hash);
        await expectProxyError(a.verify(t), "InvalidToken", alg === "HS384" ? /not accepted/ : kid === "nobody" ? /unknown key id/ : /signature verification failed/, t);
      }
    }
    // declared in algorithms[]: the secret serves it
    const b = await make({ algorithm: "HS256", algorithms: ["HS512"], secret: SECRET });
    expect(await b.verify(hmacToken({ alg: "HS512" }, fresh(), SECRET, "sha512"))).toMatchObject({ sub: "alice" });
  });
  test("rotating `secret` without an outage (README): the old secret under jwt.keys still verifies kid-less tokens, the new one too, a third never", async () => {
    const oldSecret = "old-secret-0123456789abcdefghijklmnop";
    const newSecret = "new-secret-0123456789abcdefghijklmnop";
    const a = await make({ algorithm: "HS256", secret: newSecret, keys: [{ id: "previous", algorithm: "HS256", secret: oldSecret }] });
    expect(await a.verify(hmacToken({ alg: "HS256" }, fresh(), oldSecret))).toMatchObject({ sub: "alice" });
    expect(await a.verify(hmacToken({ alg: "HS256" }, fresh(), newSecret))).toMatchObject({ sub: "alice" });
    const other = hmacToken({ alg: "HS256" }, fresh(), "other-secret-0123456789abcdefghijklm");
    await expectProxyError(a.verify(other), "InvalidToken", /signature verification failed/, other);
  });
});

describe("verified-token cache (asymmetric)", () => {
  test("a cached token still expires at exp", async () => {
    let now = Date.now();
    const a = await make({ algorithm: "ES256", public_key_path: keys.ES256!.pemPath, leeway_seconds: 0 }, { now: () => now });
    const exp = Math.floor(now / 1000) + 5;
    const t = await signWith(keys.ES256!, { sub: "alice", exp }, null);
    const first = await a.verify(t);
    expect(await a.verify(t)).toBe(first); // served from the cache: same (frozen) object
    expect(Object.isFrozen(first)).toBe(true);
    now = exp * 1000 + 1;
    await expectProxyError(a.verify(t), "InvalidToken", /expired/, t);
  });
  test("a token over 4 KB is verified each time, never kept (10,000 large tokens held ~290 MB of claims)", async () => {
    const a = await make({ algorithm: "ES256", public_key_path: keys.ES256!.pemPath });
    const big = await signWith(keys.ES256!, { ...fresh(), groups: Array.from({ length: 300 }, (_, i) => `group-${i}`) }, null);
    expect(big.length).toBeGreaterThan(4096);
    expect(await a.verify(big)).not.toBe(await a.verify(big));
    const small = await signWith(keys.ES256!, fresh(), null);
    expect(await a.verify(small)).toBe(await a.verify(small));
  });
  test("disabled with verifyCacheSize 0", async () => {
    const a = await make({ algorithm: "ES256", public_key_path: keys.ES256!.pemPath }, { verifyCacheSize: 0 });
    const t = await signWith(keys.ES256!, fresh(), null);
    expect(await a.verify(t)).not.toBe(await a.verify(t));
  });
});
