import { afterAll, afterEach, beforeAll, describe, expect, setSystemTime, spyOn, test, setDefaultTimeout } from "bun:test";
import { Authenticator } from "../../src/auth/index.ts";
import { keyRefOf } from "../../src/auth/authenticator.ts";
import { JwksServer, jwtConfig, logCapture, makeKeyPair, nowSec, sign, signWith, tempDir, type TestKey } from "../fixtures/jwt.ts";
import { waitFor } from "../helpers/wait.ts";
import { expectProxyError } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const tmp = tempDir();
let rs1: TestKey, rs2: TestKey, es1: TestKey, ed1: TestKey;
const cleanup: Array<() => void> = [];

beforeAll(async () => {
  [rs1, rs2, es1, ed1] = await Promise.all([makeKeyPair("RS256", tmp.dir, "rs-1"), makeKeyPair("RS256", tmp.dir, "rs-2"), makeKeyPair("ES256", tmp.dir, "es-1"), makeKeyPair("EdDSA", tmp.dir, "ed-1")]);
});
afterEach(() => cleanup.splice(0).forEach((f) => f()));
afterAll(() => tmp.cleanup());

const claims = () => ({ sub: "alice", exp: nowSec() + 86_400 }); // tests move the clock by minutes
/** A forged signature: its last six characters replaced, never by themselves. */
const flip6 = (t: string) => t.slice(0, -6) + (t.endsWith("AAAAAA") ? "BBBBBB" : "AAAAAA");

/** A JWKS server + an Authenticator on a controllable clock. */
async function setup(keys = [rs1.jwk], cfg: Record<string, unknown> = {}) {
  const server = JwksServer.start(keys);
  const clock = { now: Date.now() };
  const logs = logCapture();
  const auth = await Authenticator.create(jwtConfig({ algorithm: "RS256", algorithms: ["ES256", "EdDSA"], jwks_url: server.url, jwks_refresh_interval_secs: 300, ...cfg }), {
    now: () => clock.now,
    log: logs.log,
  });
  cleanup.push(() => auth.close(), () => server.close());
  return { server, clock, auth, logs };
}
const loaded = (auth: Authenticator) => waitFor(() => auth.readiness().ok, { message: "JWKS loaded" });

/**
 * Holds every WebCrypto signature check (jose's) until release(), so a verification stays in
 * flight for as long as the test needs: the interleavings below are forced, not timed.
 */
function holdSignatureChecks() {
  const real = crypto.subtle.verify.bind(crypto.subtle);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let entered!: () => void;
  const firstCheck = new Promise<void>((r) => (entered = r));
  const spy = spyOn(crypto.subtle, "verify").mockImplementation(async (...args: Parameters<SubtleCrypto["verify"]>) => {
    entered();
    await gate;
    return real(...args);
  });
  return { firstCheck, release, [Symbol.dispose]: () => spy.mockRestore() };
}

test("create does not wait for the JWKS; the first verification joins the fetch in flight", async () => {
  const { server, auth } = await setup([rs1.jwk, es1.jwk, ed1.jwk]);
  expect(await auth.verify(await signWith(rs1, claims()))).toMatchObject({ sub: "alice" });
  expect(auth.readiness()).toEqual({ ok: true });
  expect(await auth.verify(await signWith(es1, claims()))).toMatchObject({ sub: "alice" });
  expect(await auth.verify(await signWith(ed1, claims()))).toMatchObject({ sub: "alice" });
  expect(server.fetchCount).toBe(1);
});

test("a token without kid tries the JWKS keys of its algorithm; JWKs without alg are typed by kty/crv", async () => {
  const { alg: _a, ...rsNoAlg } = rs2.jwk;
  const { alg: _b, ...esNoAlg } = es1.jwk;
  const { auth } = await setup([rs1.jwk, rsNoAlg, esNoAlg, { kty: "oct", k: "c2VjcmV0", kid: "hmac" }, { ...ed1.jwk, use: "enc" }]);
  await loaded(auth);
  expect(await auth.verify(await signWith(rs2, claims(), null))).toMatchObject({ sub: "alice" });
  expect(await auth.verify(await signWith(rs2, claims()))).toMatchObject({ sub: "alice" });
  expect(await auth.verify(await signWith(es1, claims(), null))).toMatchObject({ sub: "alice" });
  const enc = await signWith(ed1, claims()); // its key is marked use: enc → not a verification key
  await expectProxyError(auth.verify(enc), "InvalidToken", /unknown key id/, enc);
  const hs = await sign(claims(), { alg: "HS256", key: "c2VjcmV0", kid: "hmac" }); // oct JWKS keys never count
  await expectProxyError(auth.verify(hs), "InvalidToken", /HS256 is not accepted/, hs);
});

test("refresh every jwks_refresh_interval_secs (driven by the clock)", async () => {
  const { server, auth, clock } = await setup();
  await loaded(auth);
  server.setKeys([rs1.jwk, rs2.jwk]);
  clock.now += 299_000;
  await auth.verify(await signWith(rs1, claims()));
  expect(server.fetchCount).toBe(1);
  clock.now += 1_000;
  await auth.verify(await signWith(rs1, claims())); // due: starts a background refresh
  await waitFor(() => server.fetchCount === 2, { message: "the refresh" });
  expect(await auth.verify(await signWith(rs2, claims()))).toMatchObject({ sub: "alice" }); // joins the refresh if still in flight
  expect(server.fetchCount).toBe(2);
});

test("refresh also runs on its own timer", async () => {
  const { server, auth } = await setup([rs1.jwk], { jwks_refresh_interval_secs: 1 });
  await loaded(auth);
  await waitFor(() => server.fetchCount >= 2, { message: "a refresh by the timer" }); // the timer is what is tested
});

test("rotation: an unknown kid triggers a refetch that finds the new key", async () => {
  const { server, auth, clock } = await setup();
  await loaded(auth);
  server.setKeys([rs2.jwk]);
  clock.now += 10_000;
  expect(await auth.verify(await signWith(rs2, claims()))).toMatchObject({ sub: "alice" });
  expect(server.fetchCount).toBe(2);
});

test("holdsKey: the key that verified a token (keyRefOf its claims) is held while the JWKS has it, not once a rotation removed it; the same key as a PEM has the same keyRef", async () => {
  const { server, auth, clock } = await setup();
  await loaded(auth);
  const ref = keyRefOf(await auth.verify(await signWith(rs1, claims())))!;
  expect(auth.holdsKey(ref)).toBe(true);
  const pem = await Authenticator.create(jwtConfig({ algorithm: "RS256", public_key_path: rs1.pemPath }));
  cleanup.push(() => pem.close());
  expect(keyRefOf(await pem.verify(await signWith(rs1, claims(), null)))).toBe(ref);
  server.setKeys([rs2.jwk]);
  clock.now += 10_000;
  await auth.refreshKeys();
  expect(auth.holdsKey(ref)).toBe(false);
  expect(auth.holdsKey(keyRefOf(await auth.verify(await signWith(rs2, claims())))!)).toBe(true);
});

test("rotation after the wall clock stepped back an hour (NTP, a restored VM): the unknown kid is refetched 10 s later, not after the periodic refresh", async () => {
  // The clocks the proxy runs with (no injected one): the wall clock is stepped back below, and the
  // monotonic one, performance.now(), is moved on by the test instead of waiting 10 real seconds.
  let monotonic = performance.now();
  const held = spyOn(performance, "now").mockImplementation(() => monotonic);
  const server = JwksServer.start([rs1.jwk]);
  const auth = await Authenticator.create(jwtConfig({ algorithm: "RS256", jwks_url: server.url, jwks_refresh_interval_secs: 300 }));
  cleanup.push(() => auth.close(), () => server.close(), () => setSystemTime(), () => held.mockRestore());
  expect(await auth.keysSettled(20_000)).toEqual({ ok: true }); // (not loaded(): its deadline reads performance.now())
  server.setKeys([rs1.jwk, rs2.jwk]);
  setSystemTime(new Date(Date.now() - 3_600_000));
  const rotated = await signWith(rs2, claims());
  // within 10 s of the last fetch: refused, no refetch
  await expectProxyError(auth.verify(rotated), "InvalidToken", /unknown key id/, rotated);
  expect(server.fetchCount).toBe(1);
  // (1 ms past: performance.now() is fractional, and x + 10000 - x may come out below 10000 in
  // floating point, which read as "not 10 s yet" about one run in five)
  monotonic += 10_001;
  expect(await auth.verify(rotated)).toMatchObject({ sub: "alice" });
  expect(server.fetchCount).toBe(2);
});

test("rotation without kids: a token without kid that no loaded key verifies triggers a refetch (rate-limited) that finds the new key", async () => {
  const noKid = ({ jwk: { kid: _, ...jwk } }: TestKey) => jwk;
  const { server, auth, clock } = await setup([noKid(rs1)]);
  await loaded(auth);
  server.setKeys([noKid(rs1), noKid(rs2)]);
  const fresh = await signWith(rs2, claims(), null);
  // within 10 s of the last fetch: refused, no refetch (as for an unknown kid)
  await expectProxyError(auth.verify(fresh), "InvalidToken", /signature verification failed/, fresh);
  expect(server.fetchCount).toBe(1);
  clock.now += 10_000;
  expect(await auth.verify(fresh)).toMatchObject({ sub: "alice" });
  expect(server.fetchCount).toBe(2);
  // a forged token without kid refetches at most once per 10 s
  const forged = await signWith(await makeKeyPair("RS256", tmp.dir, "forger"), claims(), null);
  await expectProxyError(auth.verify(forged), "InvalidToken", /signature verification failed/, forged);
  await expectProxyError(auth.verify(forged), "InvalidToken", /signature verification failed/, forged);
  expect(server.fetchCount).toBe(2);
});

test("unknown-kid refetches are rate-limited to one per 10 s", async () => {
  const { server, auth, clock } = await setup();
  await loaded(auth);
  const t1 = await sign(claims(), { alg: "RS256", key: rs2.privateKey, kid: "ghost-1" });
  const t2 = await sign(claims(), { alg: "RS256", key: rs2.privateKey, kid: "ghost-2" });
  // within 10 s of the initial fetch: no refetch at all
  await expectProxyError(auth.verify(t1), "InvalidToken", /unknown key id/, t1);
  expect(server.fetchCount).toBe(1);
  clock.now += 10_000;
  // two unknown kids at once, then another one 5 s later: one fetch
  await Promise.all([expectProxyError(auth.verify(t1), "InvalidToken", /unknown key id/, t1), expectProxyError(auth.verify(t2), "InvalidToken", /unknown key id/, t2)]);
  clock.now += 5_000;
  await expectProxyError(auth.verify(t2), "InvalidToken", /unknown key id/, t2);
  expect(server.fetchCount).toBe(2);
  clock.now += 5_000;
  await expectProxyError(auth.verify(t2), "InvalidToken", /unknown key id/, t2);
  expect(server.fetchCount).toBe(3);
});

test("an unknown kid while the JWKS cannot be fetched: KeysUnavailable (try again), not a 401; a known kid's bad signature stays a 401", async () => {
  const { server, auth, clock } = await setup();
  await loaded(auth);
  server.failWith({ status: 503 });
  clock.now += 10_000;
  const rotated = await signWith(rs2, claims());
  const e = await expectProxyError(auth.verify(rotated), "KeysUnavailable", /could not be fetched/, rotated);
  expect(e.headers?.["Retry-After"]).toMatch(/^\d+$/);
  expect(server.fetchCount).toBe(2);
  // (rate-limited: the failed fetch is not retried at once, and the answer is the same)
  await expectProxyError(auth.verify(rotated), "KeysUnavailable", /could not be fetched/, rotated);
  expect(server.fetchCount).toBe(2);
  const forged = await sign(claims(), { alg: "RS256", key: rs2.privateKey, kid: "rs-1" });
  await expectProxyError(auth.verify(forged), "InvalidToken", /signature verification failed/, forged);
  server.restore();
  server.setKeys([rs1.jwk, rs2.jwk]);
  clock.now += 10_000;
  expect(await auth.verify(rotated)).toMatchObject({ sub: "alice" });
});

test("a failed refresh keeps the last good keys", async () => {
  const { server, auth, clock, logs } = await setup();
  await loaded(auth);
  for (const failure of [{ status: 500 }, { status: 200, body: "not json" }, { status: 200, body: '{"keys":[]}' }]) {
    server.failWith(failure);
    const before = server.fetchCount;
    clock.now += 300_000;
    await auth.refreshKeys();
    expect(server.fetchCount).toBe(before + 1);
    expect(logs.lines.at(-1)).toMatchObject({ level: "warn", msg: expect.stringContaining("keeping the last good keys") });
    expect(await auth.verify(await signWith(rs1, claims()))).toMatchObject({ sub: "alice" });
    expect(auth.readiness().ok).toBe(true);
  }
});

describe("a key removed from the JWKS never verifies once the new key set is loaded", () => {
  test("tokens in the verified-token cache are dropped", async () => {
    const { server, auth, clock } = await setup();
    await loaded(auth);
    const withKid = await signWith(rs1, claims());
    const noKid = await signWith(rs1, claims(), null);
    await auth.verify(withKid);
    await auth.verify(noKid);
    server.setKeys([rs2.jwk]); // rs-1 revoked
    clock.now += 1_000; // the cached entries are still fresh (60 s), and no refresh is due
    await auth.refreshKeys();
    await expectProxyError(auth.verify(withKid), "InvalidToken", /unknown key id/, withKid);
    await expectProxyError(auth.verify(noKid), "InvalidToken", /signature verification failed/, noKid);
    expect(await auth.verify(await signWith(rs2, claims()))).toMatchObject({ sub: "alice" });
  });

  // The flake of "keys changed → cached verifications are dropped": with the cache entry expired,
  // the verification that started the refresh checked the signature with the old key; the refresh
  // landed (and cleared the cache) before that check finished, and the stale result was then cached.
  test("a refresh that lands while a verification is in flight: the result is refused, and not cached", async () => {
    const { server, auth, clock } = await setup();
    await loaded(auth);
    const t = await signWith(rs1, claims());
    await auth.verify(t);
    server.setKeys([rs2.jwk]);
    clock.now += 300_000; // cache entry expired and a refresh is due
    {
      using held = holdSignatureChecks();
      const inFlight = auth.verify(t); // starts the refresh, picks rs-1 from the old set, then waits in jose
      await held.firstCheck;
      await auth.refreshKeys(); // joins the refresh; the new set is applied when it resolves
      expect(server.fetchCount).toBe(2);
      held.release(); // the signature is valid for rs-1's key...
      await expectProxyError(inFlight, "InvalidToken", /unknown key id/, t); // ...which has left the set
    }
    await expectProxyError(auth.verify(t), "InvalidToken", /unknown key id/, t);
    expect(server.fetchCount).toBe(2);
  });

  test("a refresh in flight that keeps the key: the verification checks again and passes", async () => {
    const { server, auth, clock } = await setup();
    await loaded(auth);
    server.setKeys([rs2.jwk, rs1.jwk]); // changed set, rs-1 still in it (new key objects)
    clock.now += 300_000;
    const t = await signWith(rs1, claims());
    {
      using held = holdSignatureChecks();
      const inFlight = auth.verify(t);
      await held.firstCheck;
      await auth.refreshKeys();
      held.release();
      expect(await inFlight).toMatchObject({ sub: "alice" });
    }
    expect(await auth.verify(t)).toMatchObject({ sub: "alice" });
  });

  test("a refresh in flight that finds the same set: nothing to check again", async () => {
    const { auth, clock } = await setup();
    await loaded(auth);
    clock.now += 300_000;
    const t = await signWith(rs1, claims());
    using held = holdSignatureChecks();
    const spy = crypto.subtle.verify as unknown as { mock: { calls: unknown[] } };
    const inFlight = auth.verify(t);
    await held.firstCheck;
    await auth.refreshKeys();
    held.release();
    expect(await inFlight).toMatchObject({ sub: "alice" });
    expect(spy.mock.calls).toHaveLength(1);
  });
});

describe("JWKS never loaded", () => {
  test("readiness false with a reason; requests get KeysUnavailable with Retry-After; recovers", async () => {
    const server = JwksServer.start([rs1.jwk]);
    server.failWith({ status: 503 });
    const clock = { now: Date.now() };
    const logs = logCapture();
    const auth = await Authenticator.create(jwtConfig({ algorithm: "RS256", jwks_url: `${server.url}?api_key=hunter2` }), { now: () => clock.now, log: logs.log });
    cleanup.push(() => auth.close(), () => server.close());
    await auth.refreshKeys(); // joins the first fetch, started by create()
    expect(logs.lines.some((l) => l.level === "error")).toBe(true);
    const r = auth.readiness();
    expect(r.ok).toBe(false);
    expect(r.reason).toContain("HTTP 503");
    expect(r.reason).toContain(new URL(server.url).pathname);
    expect(r.reason).not.toContain("hunter2");
    const t = await signWith(rs1, claims());
    const e = await expectProxyError(auth.verify(t), "KeysUnavailable", /not loaded/, t);
    expect(e.status).toBe(503);
    expect(Number(e.headers?.["Retry-After"])).toBeGreaterThanOrEqual(1);
    expect(Number(e.headers?.["Retry-After"])).toBeLessThanOrEqual(10);
    await expectProxyError(auth.authenticate(new Headers({ authorization: `Bearer ${t}` }), new URL("http://x/")), "KeysUnavailable", undefined, t);

    server.failWith(null);
    clock.now += 10_000;
    expect(await auth.verify(t)).toMatchObject({ sub: "alice" });
    expect(auth.readiness()).toEqual({ ok: true });
  });
  test("a legacy key of the same algorithm does not turn a JWKS-signed token into a 401 while the JWKS is not loaded", async () => {
    const server = JwksServer.start([rs1.jwk]);
    server.failWith({ status: 503 });
    const clock = { now: Date.now() };
    const auth = await Authenticator.create(
      jwtConfig({ algorithm: "RS256", rsa_public_key_path: rs2.pemPath, keys: [{ id: es1.kid, algorithm: "ES256", path: es1.pemPath }], jwks_url: server.url }),
      { now: () => clock.now },
    );
    cleanup.push(() => auth.close(), () => server.close());
    await auth.refreshKeys(); // joins the first fetch
    expect(auth.readiness().ok).toBe(false);
    // a kid naming a jwt.keys entry is that key's alone: a bad signature is a 401 whatever the JWKS
    const forgedEs = flip6(await signWith(es1, claims()));
    await expectProxyError(auth.verify(forgedEs), "InvalidToken", /signature verification failed/, forgedEs);
    // the legacy key still verifies its own tokens
    expect(await auth.verify(await signWith(rs2, claims(), null))).toMatchObject({ sub: "alice" });
    // a token of a JWKS key (with its kid, or without one) is "try again", not "your token is bad"
    for (const t of [await signWith(rs1, claims()), await signWith(rs1, claims(), null)]) {
      const e = await expectProxyError(auth.verify(t), "KeysUnavailable", /not loaded/, t);
      expect(e.status).toBe(503);
    }
    server.failWith(null);
    clock.now += 10_000;
    expect(await auth.verify(await signWith(rs1, claims()))).toMatchObject({ sub: "alice" });
    // once loaded, a token no key verifies is a 401 again
    const forged = flip6(await signWith(rs1, claims(), null));
    await expectProxyError(auth.verify(forged), "InvalidToken", /signature verification failed/, forged);
  });
  test("a redirect is not followed (the keys would come from wherever it points): not loaded, the error names the target", async () => {
    const elsewhere = JwksServer.start([rs1.jwk]); // would verify the token
    const server = JwksServer.start([]);
    server.redirectTo(302, `${elsewhere.url}?sig=secret`);
    const logs = logCapture();
    const auth = await Authenticator.create(jwtConfig({ algorithm: "RS256", jwks_url: server.url }), { log: logs.log });
    cleanup.push(() => auth.close(), () => server.close(), () => elsewhere.close());
    await auth.refreshKeys(); // joins the first fetch
    expect(server.fetchCount).toBe(1);
    expect(elsewhere.fetchCount).toBe(0);
    expect(auth.readiness().ok).toBe(false);
    expect(auth.readiness(true).reason).toBe("JWKS keys not loaded: HTTP 302 redirect not followed (the log names the URL)");
    expect(logs.lines.at(-1)).toMatchObject({ level: "error", fields: { error: `HTTP 302 redirect to ${elsewhere.url} not followed: set jwks_url to the final URL` } });
    const t = await signWith(rs1, claims());
    await expectProxyError(auth.verify(t), "KeysUnavailable", undefined, t);
  });
  test("unreachable JWKS host", async () => {
    const dead = JwksServer.start();
    dead.down(); // connections refused
    const auth = await Authenticator.create(jwtConfig({ algorithm: "ES256", jwks_url: dead.url }));
    cleanup.push(() => auth.close(), () => dead.close());
    await auth.refreshKeys(); // joins the first fetch
    expect(auth.readiness().ok).toBe(false);
    expect(auth.readiness().reason).not.toContain("first fetch in progress");
    const t = await signWith(es1, claims(), null);
    await expectProxyError(auth.verify(t), "KeysUnavailable", undefined, t);
  });
});

describe("a reload's authenticator (AuthenticatorOptions.previous, keysSettled)", () => {
  const make = async (url: string, previous?: Authenticator, cfg: Record<string, unknown> = {}) => {
    const auth = await Authenticator.create(jwtConfig({ algorithm: "RS256", jwks_url: url, ...cfg }), { previous });
    cleanup.push(() => auth.close());
    return auth;
  };

  test("the same jwks_url: the previous keys verify at once, even with the JWKS down; the fetch still happens", async () => {
    const { server, auth: old } = await setup([rs1.jwk]);
    await loaded(old);
    server.down();
    const next = await make(server.url, old, { algorithms: ["ES256", "EdDSA"] });
    expect(next.readiness()).toEqual({ ok: true });
    expect(await next.keysSettled(50)).toEqual({ ok: true });
    expect(await next.verify(await signWith(rs1, claims()))).toMatchObject({ sub: "alice" });
    await next.refreshKeys(); // joins the fetch create() started: it fails, the taken-over keys stay
    expect(await next.verify(await signWith(rs1, claims(), null))).toMatchObject({ sub: "alice" });
  });

  test("keys of an algorithm the new config no longer accepts are not taken over (none left: not loaded)", async () => {
    const { server, auth: old } = await setup([rs1.jwk, es1.jwk]);
    await loaded(old);
    server.down();
    const es = await make(server.url, old, { algorithm: "ES256" });
    expect(es.readiness()).toEqual({ ok: true });
    expect(await es.verify(await signWith(es1, claims()))).toMatchObject({ sub: "alice" });
    const ed = await make(server.url, old, { algorithm: "EdDSA" });
    const r = await ed.keysSettled(6_000);
    expect(r.ok).toBe(false);
    expect(ed.readiness().ok).toBe(false);
  });

  test("another jwks_url takes nothing over: keysSettled waits for its first fetch and says why it failed", async () => {
    const { auth: old } = await setup([rs1.jwk]);
    await loaded(old);
    const dead = JwksServer.start([rs2.jwk]);
    dead.down();
    cleanup.push(() => dead.close());
    const next = await make(dead.url, old);
    const r = await next.keysSettled(6_000);
    expect(r.ok).toBe(false);
    expect(r.reason).toContain(dead.url);
    expect(r.reason).not.toContain("first fetch in progress");

    const other = JwksServer.start([rs2.jwk]);
    cleanup.push(() => other.close());
    const working = await make(other.url, old);
    expect(await working.keysSettled(6_000)).toEqual({ ok: true });
    expect(await working.verify(await signWith(rs2, claims()))).toMatchObject({ sub: "alice" });
    const t = await signWith(rs1, claims());
    await expectProxyError(working.verify(t), "InvalidToken", undefined, t);
  });

  test("keysSettled gives up after its time while the fetch hangs", async () => {
    const hanging = JwksServer.start([rs1.jwk]);
    hanging.hang();
    cleanup.push(() => hanging.close());
    const auth = await make(hanging.url);
    const r = await auth.keysSettled(100);
    expect(r).toEqual({ ok: false, reason: `JWKS keys from ${hanging.url} not loaded: no answer within 1 s` });
  });
});

describe("the readiness reason /ready shows (anyone may read it)", () => {
  test("names the kind of failure, never the URL, host or address", async () => {
    const { JwksClient } = await import("../../src/auth/jwks.ts");
    const reasons: string[] = [];
    for (const message of ["getaddrinfo ENOTFOUND idp-internal.corp.example", "connect ECONNREFUSED 10.1.2.3:8443", "self signed certificate in certificate chain (DEPTH_ZERO_SELF_SIGNED_CERT) idp.corp", "HTTP 500", "something odd at 10.9.9.9"]) {
      const c = new JwksClient({ url: "https://idp-internal.corp.example:8443/realms/prod/certs?x=1", allowed: new Set(["RS256"] as const), intervalMs: 60_000, now: () => Date.now(), log: () => {}, fetch: (async () => { throw new Error(message); }) as unknown as typeof fetch });
      await c.refresh();
      const exposed = c.readiness(true).reason!;
      reasons.push(exposed);
      expect(exposed).not.toMatch(/idp|corp|10\.|8443|realms/);
      expect(c.readiness().reason).toContain("idp-internal.corp.example"); // the operator's (logs, reload errors)
      c.close();
    }
    expect(reasons).toEqual([
      "JWKS keys not loaded: the host does not resolve (the log names the URL)",
      "JWKS keys not loaded: connection refused (the log names the URL)",
      "JWKS keys not loaded: TLS handshake failed (the log names the URL)",
      "JWKS keys not loaded: HTTP 500 (the log names the URL)",
      "JWKS keys not loaded: fetch failed (the log names the URL)",
    ]);
  });
});

// A JWKS host that does not resolve was logged as Bun's raw "getaddrinfo ENOTFOUND idp.example.com",
// again at every retry (every 10 s while the keys are missing, at each refresh after): said in our
// words, as the Redis messages say it, once; the end of a run of failures is said too.
test("a JWKS host that does not resolve is logged once, in our words, naming the URL without its query or credentials", async () => {
  const { JwksClient } = await import("../../src/auth/jwks.ts");
  const lines: Array<{ level: string; msg: string; fields?: object }> = [];
  // (Bun's fetch error for a name that does not resolve: a TypeError with code ENOTFOUND)
  const dns = () => Object.assign(new TypeError("getaddrinfo ENOTFOUND idp.example.com"), { code: "ENOTFOUND", errno: 4, syscall: "getaddrinfo" });
  let answer: (() => Response) | undefined;
  const c = new JwksClient({
    url: "https://user:pw@idp.example.com/realms/prod/certs?token=s3cret",
    allowed: new Set(["RS256"] as const),
    intervalMs: 60_000,
    now: () => Date.now(),
    log: (level, msg, fields) => void lines.push({ level, msg, fields }),
    fetch: (async () => {
      if (answer === undefined) throw dns();
      return answer();
    }) as unknown as typeof fetch,
  });
  cleanup.push(() => c.close());
  for (let i = 0; i < 3; i++) await c.refresh();
  expect(lines).toEqual([{ level: "error", msg: "JWKS fetch failed; no keys yet", fields: { url: "https://idp.example.com/realms/prod/certs", error: "the URL's host name does not resolve" } }]);
  expect(c.readiness().reason).toBe("JWKS keys from https://idp.example.com/realms/prod/certs not loaded: the URL's host name does not resolve");
  expect(c.readiness(true).reason).toBe("JWKS keys not loaded: the host does not resolve (the log names the URL)");
  // loaded, then away again for three refreshes, then back with the same keys: one failure line, and its end
  answer = () => Response.json({ keys: [rs1.jwk] });
  await c.refresh();
  answer = undefined;
  for (let i = 0; i < 3; i++) await c.refresh();
  answer = () => Response.json({ keys: [rs1.jwk] });
  await c.refresh();
  expect(lines.slice(1).map((l) => `${l.level} ${l.msg}`)).toEqual(["info JWKS keys loaded", "warn JWKS refresh failed; keeping the last good keys", "info JWKS fetch succeeded again"]);
});

test("an RSA key under 2048 bits in the JWKS is skipped (logged), never tried: listed first, under the token's kid too, it made other keys' valid tokens fail", async () => {
  const { generateKeyPairSync } = await import("node:crypto");
  const weak = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ format: "jwk" });
  const { server, auth, logs } = await setup([{ ...weak, alg: "RS256", use: "sig", kid: "weak" }, { ...weak, alg: "RS256", use: "sig", kid: "rs-1" }, rs1.jwk]);
  await loaded(auth);
  expect(await auth.verify(await signWith(rs1, claims(), null))).toMatchObject({ sub: "alice" });
  expect(await auth.verify(await signWith(rs1, claims()))).toMatchObject({ sub: "alice" });
  expect(logs.lines.filter((l) => l.msg === "JWKS key skipped: an RSA key under 2048 bits").map((l) => (l.fields as { kid?: string }).kid)).toEqual(["weak", "rs-1"]);
  expect(server.fetchCount).toBe(1);
});

test("a JWKS answer over 1 MiB without a Content-Length is cut as it comes, not read whole first", async () => {
  let sent = 0;
  const big = Bun.serve({
    port: 0,
    fetch() {
      // 64 MiB of JSON-ish bytes, chunked (no Content-Length), counted as they are pulled
      const chunk = new Uint8Array(64 * 1024).fill(32);
      let n = 0;
      return new Response(
        new ReadableStream({
          pull(c) {
            if (n++ >= 1024) return c.close();
            sent += chunk.byteLength;
            c.enqueue(chunk);
          },
        }),
        { headers: { "content-type": "application/json" } },
      );
    },
  });
  const logs = logCapture();
  const auth = await Authenticator.create(jwtConfig({ algorithm: "RS256", jwks_url: `http://127.0.0.1:${big.port}/jwks.json`, jwks_refresh_interval_secs: 300 }), { log: logs.log });
  cleanup.push(() => auth.close(), () => big.stop(true));
  await waitFor(() => logs.lines.find((l) => l.msg === "JWKS fetch failed; no keys yet"), { message: "the fetch failed" });
  expect(auth.readiness().reason ?? "").toContain("larger than 1 MiB");
  expect(sent).toBeLessThan(16 * 1024 * 1024);
});

test("keys skipped for their use or algorithm are named, with why, in the JWKS keys loaded line (a token of theirs is refused with nothing else to explain it)", async () => {
  const { auth, logs } = await setup([rs1.jwk, { ...rs2.jwk, kid: "enc-key", use: "enc" }, { ...rs2.jwk, kid: "rs384-key", alg: "RS384" }], { algorithms: [] });
  await loaded(auth);
  const line = logs.lines.find((l) => l.msg === "JWKS keys loaded");
  expect(line?.fields).toMatchObject({
    kids: ["rs-1"],
    skipped: [
      { kid: "enc-key", reason: "use is enc, not sig" },
      { kid: "rs384-key", reason: "algorithm RS384 is not accepted" },
    ],
  });
});

test("a key whose key_ops omit verify is no verification key (RFC 7517 §4.3), as one with use: enc", async () => {
  // (key_ops was dropped before import: a key published for encryption only verified tokens)
  const { auth, logs } = await setup([rs1.jwk, { ...rs2.jwk, use: undefined, key_ops: ["encrypt", "wrapKey"] }, { ...es1.jwk, use: undefined, key_ops: ["verify"] }]);
  await loaded(auth);
  expect(logs.lines.find((l) => l.msg === "JWKS keys loaded")?.fields).toMatchObject({ kids: ["rs-1", "es-1"], skipped: [{ kid: "rs-2", reason: "key_ops do not include verify" }] });
  const enc = await signWith(rs2, claims());
  await expectProxyError(auth.verify(enc), "InvalidToken", /unknown key id/, enc);
  expect(await auth.verify(await signWith(es1, claims()))).toMatchObject({ sub: "alice" });
});

test("a JWKS whose every key is skipped: the failed fetch's log line names them, with why", async () => {
  const { auth, logs } = await setup([{ ...rs2.jwk, kid: "enc-only", use: "enc" }, es1.jwk], { algorithms: [] });
  await waitFor(() => logs.lines.some((l) => l.msg === "JWKS fetch failed; no keys yet"), { message: "the failed fetch logged" });
  expect(auth.readiness().ok).toBe(false);
  expect(logs.lines.find((l) => l.msg === "JWKS fetch failed; no keys yet")?.fields).toMatchObject({
    error: "no usable key for the configured algorithms",
    skipped: [
      { kid: "enc-only", reason: "use is enc, not sig" },
      { kid: "es-1", reason: "algorithm ES256 is not accepted" },
    ],
  });
});

test("a JWKS of more than 100 keys: the keys loaded line says how many were not read", async () => {
  const many = Array.from({ length: 103 }, (_, i) => ({ ...rs1.jwk, kid: `k-${i}` }));
  const { auth, logs } = await setup(many);
  await loaded(auth);
  const line = logs.lines.find((l) => l.msg === "JWKS keys loaded");
  expect((line?.fields as { kids?: string[] }).kids).toHaveLength(100);
  expect(line?.fields).toMatchObject({ skipped: [{ kid: undefined, reason: "3 keys past the first 100 are not read" }] });
});

test("a JWKS endpoint that closes the connection unanswered: the log and readiness say so in our words, without Bun's `verbose: true` hint", async () => {
  // (a raw listener that accepts and closes: fetch's error message ended "pass `verbose: true` in the second argument to fetch()")
  const closer = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: (s) => void s.end(), data: () => {} } });
  const logs = logCapture();
  const auth = await Authenticator.create(jwtConfig({ algorithm: "RS256", jwks_url: `http://127.0.0.1:${closer.port}/jwks.json`, jwks_refresh_interval_secs: 300 }), { log: logs.log });
  cleanup.push(() => auth.close(), () => closer.stop(true));
  const line = await waitFor(() => logs.lines.find((l) => l.msg === "JWKS fetch failed; no keys yet"), { message: "the fetch failed" });
  const error = String((line.fields as { error?: unknown }).error);
  expect(error).not.toContain("verbose");
  expect(error).toContain("closed");
  expect(auth.readiness().reason ?? "").not.toContain("verbose");
});
