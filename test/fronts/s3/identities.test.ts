/** Who may sign (static keys, STS sessions) and what each may do with which bucket. */
import { afterAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { parseConfig } from "../../../src/config/load.ts";
import { S3Identities, type S3Principal } from "../../../src/fronts/s3/identities.ts";
import { mayAccess, visibleBuckets } from "../../../src/fronts/s3/permissions.ts";
import { issueSession } from "../../../src/fronts/s3/sts.ts";
import { nullLogger } from "../../../src/observe/log.ts";
import { buildRuntime, type Runtime } from "../../../src/runtime.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const STS_KEY = "identities-test-session-key-0123456789";
const EP = "http://127.0.0.1:9";
const yaml = (stsKey = STS_KEY, secret = "app-secret-0123456789") => `
jwt: { enabled: true, algorithm: HS256, secret: "jwt-secret-0123456789abcdef012345", claims: [{ claim: org, operator: equals, value: acme }] }
buckets:
  - { name: pub, path_prefix: /pub, s3: { bucket: b1, endpoint: "${EP}" } }
  - { name: team, path_prefix: /team, s3: { bucket: b2, endpoint: "${EP}" }, auth: { enabled: true, claims: [{ claim: team, operator: equals, value: a }] } }
  - { name: auth, path_prefix: /auth, s3: { bucket: b3, endpoint: "${EP}" }, auth: { enabled: true } }
s3_api:
  sts: { session_key: "${stsKey}" }
  credentials:
    - { access_key_id: AKIDREADER, secret_access_key: "${secret}", identity: reader, claims: { team: b }, buckets: { team: [read], pub: [list] } }
`;
const NOW = Date.UTC(2030, 0, 1);
const runtimes: Runtime[] = [];
const runtime = async (y = yaml()) => {
  const rt = await buildRuntime(parseConfig(y, { env: {} }), 1, { log: nullLogger, start: false });
  runtimes.push(rt);
  return rt;
};
afterAll(() => runtimes.forEach((r) => r.close()));

const session = (claims: Record<string, unknown>, key = STS_KEY, ttl = 3600_000) => {
  const s = issueSession({ sessionKey: key, subject: "alice", claims, expiresAt: NOW + ttl, now: NOW });
  if (s.kind !== "ok") throw new Error(s.message);
  return s;
};
/** The token with its last character changed (always, and in bits base64url decodes: a fixed "AA" was the same text 1 time in 4096). */
const tamper = (t: string) => t.slice(0, -1) + (t.endsWith("A") ? "Q" : "A");
const ok = (p: unknown): S3Principal => {
  if (p === undefined || typeof p !== "object" || !("kind" in (p as object))) throw new Error(`not a principal: ${JSON.stringify(p)}`);
  return p as S3Principal;
};

describe("S3Identities.lookup", () => {
  test("a static key: its secret, identity and claims (sub = identity, frozen); unknown key: undefined", async () => {
    const api = (await runtime()).s3Api!;
    const p = ok(api.lookup("AKIDREADER", undefined, NOW));
    expect(p).toMatchObject({ kind: "static", secretAccessKey: "app-secret-0123456789", identity: "reader", claims: { team: "b", sub: "reader" } });
    expect(Object.isFrozen(p.claims)).toBe(true);
    expect(api.lookup("AKIDNOBODY", undefined, NOW)).toBeUndefined();
  });

  test("a static key with a session token is InvalidToken (as S3 for long-term keys)", async () => {
    const api = (await runtime()).s3Api!;
    expect(api.lookup("AKIDREADER", "YGS1.x.y", NOW)).toMatchObject({ code: "InvalidToken", status: 400 });
  });

  test("a session: verified once, then remembered; the wrong key id, an expired one, a forged token", async () => {
    const api = (await runtime()).s3Api!;
    const s = session({ team: "a", org: "acme" });
    const p = ok(api.lookup(s.accessKeyId, s.sessionToken, NOW));
    expect(p).toMatchObject({ kind: "session", secretAccessKey: s.secretAccessKey, identity: "alice", claims: { team: "a", org: "acme", sub: "alice" } });
    // remembered: the same object comes back
    expect(api.lookup(s.accessKeyId, s.sessionToken, NOW + 1000)).toBe(p);
    // its key id without its token is no key at all (S3: InvalidAccessKeyId), remembered or not
    expect(api.lookup(s.accessKeyId, undefined, NOW + 1000)).toBeUndefined();
    expect(api.lookup("ASIAAAAAAAAAAAAAAAAA", s.sessionToken, NOW)).toMatchObject({ code: "InvalidAccessKeyId" });
    expect(api.lookup(s.accessKeyId, s.sessionToken, NOW + 3600_000)).toMatchObject({ code: "ExpiredToken", status: 400 });
    expect(api.lookup(s.accessKeyId, tamper(s.sessionToken), NOW)).toMatchObject({ code: "InvalidToken" });
  });

  test("a reload with another session key revokes every session; one without STS refuses tokens", async () => {
    const s = session({ org: "acme" });
    const rotated = (await runtime(yaml("another-session-key-0123456789abcdef"))).s3Api!;
    expect(rotated.lookup(s.accessKeyId, s.sessionToken, NOW)).toMatchObject({ code: "InvalidToken" });
    const noSts = (await runtime(yaml().replace(/ {2}sts: .*\n/, ""))).s3Api!;
    expect(noSts.lookup(s.accessKeyId, s.sessionToken, NOW)).toMatchObject({ code: "InvalidToken" });
  });

  test("previous_session_keys: a rotation keeps earlier sessions until they expire; new ones use session_key", async () => {
    const NEW_KEY = "another-session-key-0123456789abcdef";
    const old = session({ org: "acme" });
    const rt = await runtime(yaml(NEW_KEY).replace(/( {2}sts: \{ session_key: "[^"]*")/, `$1, previous_session_keys: ["${STS_KEY}"]`));
    const api = rt.s3Api!;
    expect(ok(api.lookup(old.accessKeyId, old.sessionToken, NOW))).toMatchObject({ kind: "session", secretAccessKey: old.secretAccessKey });
    const fresh = session({ org: "acme" }, NEW_KEY);
    expect(ok(api.lookup(fresh.accessKeyId, fresh.sessionToken, NOW))).toMatchObject({ kind: "session", secretAccessKey: fresh.secretAccessKey });
    // still expired, forged and mismatched as with the current key
    const late = session({ org: "acme" }, STS_KEY, 1000);
    expect(api.lookup(late.accessKeyId, late.sessionToken, NOW + 2000)).toMatchObject({ code: "ExpiredToken" });
    const lateFresh = session({ org: "acme" }, NEW_KEY, 1000); // expired, issued with the current key
    expect(api.lookup(lateFresh.accessKeyId, lateFresh.sessionToken, NOW + 2000)).toMatchObject({ code: "ExpiredToken" });
    expect(api.lookup(fresh.accessKeyId, old.sessionToken, NOW)).toMatchObject({ code: "InvalidAccessKeyId" });
    expect(api.lookup(old.accessKeyId, tamper(old.sessionToken), NOW)).toMatchObject({ code: "InvalidToken" });
    // a key neither current nor previous: refused
    const other = session({ org: "acme" }, "third-session-key-0123456789abcdefgh");
    expect(api.lookup(other.accessKeyId, other.sessionToken, NOW)).toMatchObject({ code: "InvalidToken" });
  });

  test("previous_session_keys: each at least 32 bytes", () => {
    expect(() => parseConfig(yaml().replace(/( {2}sts: \{ session_key: "[^"]*")/, '$1, previous_session_keys: ["short"]'), { env: {} })).toThrow(/previous_session_keys\[0\]: must be at least 32 bytes, got 5$/m);
  });

  test("a reload that rotates a static secret verifies with the new one only", async () => {
    const api = (await runtime(yaml(STS_KEY, "rotated-secret-0123456789"))).s3Api!;
    expect(ok(api.lookup("AKIDREADER", undefined, NOW)).secretAccessKey).toBe("rotated-secret-0123456789");
  });
});

describe("permissions", () => {
  test("static grants: read → GetObject, list → ListBucket, either → HeadBucket/GetBucketLocation; ungranted bucket → none", async () => {
    const rt = await runtime();
    const p = ok(rt.s3Api!.lookup("AKIDREADER", undefined, NOW));
    const b = (n: string) => rt.buckets.get(n)!;
    const table = (bucket: string) => ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation"].map((a) => mayAccess(rt, p, b(bucket), a as never));
    expect(table("team")).toEqual([true, true, false, false, true]); // grant wins over the bucket's claim rules (team: b ≠ a)
    expect(table("pub")).toEqual([false, false, true, true, true]);
    expect(table("auth")).toEqual([false, false, false, false, false]);
    expect(visibleBuckets(rt, p, () => true).map((x) => x.name)).toEqual(["pub", "team"]);
  });

  test("sessions act as their token on the plain front: public buckets, and auth buckets whose rules pass", async () => {
    const rt = await runtime();
    const look = (claims: Record<string, unknown>) => {
      const s = session(claims);
      return ok(rt.s3Api!.lookup(s.accessKeyId, s.sessionToken, NOW));
    };
    const names = (p: S3Principal) => visibleBuckets(rt, p, () => true).map((x) => x.name);
    expect(names(look({ org: "acme", team: "a" }))).toEqual(["pub", "team", "auth"]);
    expect(names(look({ org: "acme", team: "b" }))).toEqual(["pub", "auth"]);
    // jwt.claims fails (only possible after a reload changed them: STS checks them at issuance): the
    // session is revoked, on buckets without auth too (it kept listing them, more than anonymous may)
    expect(names(look({ org: "other", team: "a" }))).toEqual([]);
    const p = look({ org: "acme", team: "a" });
    expect(["s3:GetObject", "s3:ListBucket"].map((a) => mayAccess(rt, p, rt.buckets.get("team")!, a as never))).toEqual([true, true]);
  });

  test("a reload that changes jwt.issuer or jwt.audience ends the sessions of tokens it no longer trusts", async () => {
    const withTrust = (trust: string) => yaml().replace('secret: "jwt-secret-0123456789abcdef012345",', `secret: "jwt-secret-0123456789abcdef012345", ${trust},`);
    const s = session({ org: "acme", team: "a", iss: "https://idp.test", aud: ["other", "yata"] });
    const names = async (trust: string) => {
      const rt = await runtime(withTrust(trust));
      const p = ok(rt.s3Api!.lookup(s.accessKeyId, s.sessionToken, NOW));
      return visibleBuckets(rt, p, () => true).map((x) => x.name);
    };
    expect(await names('issuer: "https://idp.test", audience: yata')).toEqual(["pub", "team", "auth"]);
    expect(await names('audience: [x, other]')).toEqual(["pub", "team", "auth"]);
    // the plain front refuses this token now: so does the S3 front its session, on every bucket
    expect(await names('issuer: "https://new-idp.test", audience: yata')).toEqual([]);
    expect(await names('issuer: "https://idp.test", audience: [x, y]')).toEqual([]);
  });

  test("anonymous: GetObject/HeadObject on buckets without auth, nothing else", async () => {
    const rt = await runtime();
    expect(mayAccess(rt, undefined, rt.buckets.get("pub")!, "s3:GetObject")).toBe(true);
    expect(mayAccess(rt, undefined, rt.buckets.get("pub")!, "s3:GetObjectVersion")).toBe(false);
    expect(mayAccess(rt, undefined, rt.buckets.get("pub")!, "s3:ListBucket")).toBe(false);
    expect(mayAccess(rt, undefined, rt.buckets.get("pub")!, "s3:GetBucketLocation")).toBe(false);
    expect(mayAccess(rt, undefined, rt.buckets.get("auth")!, "s3:GetObject")).toBe(false);
  });
});
