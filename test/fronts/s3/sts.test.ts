/** Stateless STS sessions: issue, verify on any replica, expire, refuse anything forged. */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { issueSession, MAX_CLAIMS_BYTES, verifySessionToken, type SessionCredentials } from "../../../src/fronts/s3/sts.ts";
import { verifySigV4 } from "../../../src/fronts/s3/verify.ts";
import { smithySigned } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const KEY = "k".repeat(32) + "-session-key";
const NOW = Date.UTC(2024, 5, 1, 12);
const issue = (over: Partial<Parameters<typeof issueSession>[0]> = {}): SessionCredentials => {
  const r = issueSession({ sessionKey: KEY, subject: "alice", claims: { team: "a", groups: ["x", "y"], exp: 1, iat: 2, nbf: 3 }, expiresAt: NOW + 3600_000, now: NOW, ...over });
  if (r.kind !== "ok") throw new Error(r.message);
  return r;
};

describe("issueSession", () => {
  test("AWS-shaped credentials: ASIA + 16 base32 chars, a 40-char secret, an expiry", () => {
    const c = issue();
    expect(c.accessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/);
    expect(c.secretAccessKey).toMatch(/^[A-Za-z0-9+/]{40}$/);
    expect(c.sessionToken).toStartWith("YGS2.");
    expect(c.expiration).toBe(NOW + 3600_000);
  });

  test("each session is distinct (random id), even for the same subject and time", () => {
    const a = issue();
    const b = issue();
    expect(a.accessKeyId).not.toBe(b.accessKeyId);
    expect(a.secretAccessKey).not.toBe(b.secretAccessKey);
  });

  test("the token does not contain the secret, and stays under 4 KiB with the largest allowed claims", () => {
    const c = issue();
    expect(c.sessionToken).not.toContain(c.secretAccessKey);
    expect(Buffer.from(c.sessionToken.split(".")[1], "base64url").toString()).not.toContain(c.secretAccessKey);
    const big = issue({ subject: "s".repeat(256), claims: { blob: "x".repeat(MAX_CLAIMS_BYTES - 12) } });
    expect(big.sessionToken.length).toBeLessThan(4096);
  });

  test("the largest allowed subject and claims still become a session when it has an AssumedRoleUser (the role made the token too long: it was refused, where it was issued before the role was kept)", () => {
    const assumedRole = { arn: "arn:aws:sts::123456789012:assumed-role/web-identity-reader/" + "s".repeat(64), id: "AROA0123456789ABCDEF0:" + "s".repeat(64) };
    const big = issue({ subject: "s".repeat(256), claims: { blob: "x".repeat(MAX_CLAIMS_BYTES - 12) }, assumedRole });
    expect(big.sessionToken.length).toBeLessThanOrEqual(4096);
    expect(verifySessionToken(KEY, big.accessKeyId, big.sessionToken, NOW + 1000)).toMatchObject({ subject: "s".repeat(256) });
    // a role that fits is kept
    const small = issue({ assumedRole });
    expect(verifySessionToken(KEY, small.accessKeyId, small.sessionToken, NOW + 1000)).toMatchObject({ assumedRole });
  });

  test("claims above the cap, a long subject or an already-past expiry are refused, not trimmed", () => {
    const r = issueSession({ sessionKey: KEY, subject: "a", claims: { blob: "x".repeat(MAX_CLAIMS_BYTES) }, expiresAt: NOW + 1000, now: NOW });
    expect(r).toMatchObject({ kind: "error" });
    expect(issueSession({ sessionKey: KEY, subject: "é".repeat(129), claims: {}, expiresAt: NOW + 1000, now: NOW })).toMatchObject({ kind: "error" });
    expect(issueSession({ sessionKey: KEY, subject: "a", claims: {}, expiresAt: NOW, now: NOW })).toMatchObject({ kind: "error" });
  });

  test("a subject and claims that escape to more than the verifier accepts are refused at issuance; whatever is issued verifies", () => {
    // 256 quotes are 256 bytes raw but 512 in JSON, written twice (sub and claims.sub): the sealed
    // token grew past the 4096 characters verifySessionToken accepts, a session dead on arrival.
    const quotes = '"'.repeat(256);
    const claims = { sub: quotes, blob: "\u0001".repeat(200) + "x".repeat(MAX_CLAIMS_BYTES - 512 - 200 * 6 - 40) };
    expect(Buffer.byteLength(JSON.stringify(claims))).toBeLessThanOrEqual(MAX_CLAIMS_BYTES);
    const r = issueSession({ sessionKey: KEY, subject: quotes, claims, expiresAt: NOW + 3600_000, now: NOW });
    expect(r).toMatchObject({ kind: "error" });
    if (r.kind === "error") expect(r.message).toContain("4096");
    for (const n of [0, 64, 128, 200]) {
      const c = issueSession({ sessionKey: KEY, subject: '"'.repeat(n), claims: { sub: '"'.repeat(n), blob: "x".repeat(1500) }, expiresAt: NOW + 3600_000, now: NOW });
      if (c.kind === "ok") expect(verifySessionToken(KEY, c.accessKeyId, c.sessionToken, NOW + 1000)).toMatchObject({ subject: '"'.repeat(n) });
      else expect(c.message).toContain("too large");
    }
  });

  test("the token is opaque: the claims, the subject and the session id are not readable in it (it travels in presigned URLs)", () => {
    const c = issue({ subject: "alice@corp.example", claims: { email: "alice@corp.example", ssn: "123-45-6789", groups: ["payroll"] } });
    const [, sealed] = c.sessionToken.split(".");
    const decoded = Buffer.from(sealed!, "base64url").toString("latin1");
    for (const secret of ["alice@corp.example", "123-45-6789", "payroll", "email", "claims"]) {
      expect(decoded).not.toContain(secret);
      expect(c.sessionToken).not.toContain(secret);
    }
    const p = verifySessionToken(KEY, c.accessKeyId, c.sessionToken, NOW + 1000);
    expect(p).toMatchObject({ subject: "alice@corp.example", claims: { email: "alice@corp.example", ssn: "123-45-6789", groups: ["payroll"] } });
  });

  test("a token of the earlier clear format (YGS1) issued with the same key still verifies until it expires", () => {
    // built as the previous version issued it: base64url(payload) + HMAC tag, keys derived from the payload
    const hmac = (label: string, data: string) => new Bun.CryptoHasher("sha256", KEY).update(label + "\n" + data).digest();
    const payload = Buffer.from(JSON.stringify({ sub: "old", iat: NOW / 1000, exp: NOW / 1000 + 600, jti: "j", claims: { team: "a" } })).toString("base64url");
    const token = "YGS1." + payload + "." + Buffer.from(hmac("token", payload)).toString("base64url");
    const b32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let acc = 0, bits = 0, akid = "ASIA";
    for (const b of hmac("akid", payload)) {
      acc = (acc << 8) | b;
      bits += 8;
      while (bits >= 5 && akid.length < 20) { akid += b32[(acc >>> (bits - 5)) & 31]; bits -= 5; }
      acc &= (1 << bits) - 1;
      if (akid.length >= 20) break;
    }
    expect(verifySessionToken(KEY, akid, token, NOW + 1000)).toMatchObject({ subject: "old", claims: { team: "a" } });
    expect(verifySessionToken(KEY, akid, token, NOW + 700_000)).toMatchObject({ code: "ExpiredToken" });
  });

  test("a session key shorter than 32 bytes is a configuration error", () => {
    expect(() => issueSession({ sessionKey: "short", subject: "a", claims: {}, expiresAt: NOW + 1000, now: NOW })).toThrow(RangeError);
    expect(() => verifySessionToken("short", "ASIA", "YGS1.a.b", NOW)).toThrow(RangeError);
  });
});

describe("verifySessionToken", () => {
  test("any replica with the key re-derives the same principal; the token's exp/iat/nbf stay among its claims, the session's lifetime is its own", () => {
    const c = issue();
    const p = verifySessionToken(KEY, c.accessKeyId, c.sessionToken, NOW + 1000);
    expect(p).toMatchObject({
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      subject: "alice",
      claims: { team: "a", groups: ["x", "y"] },
      issuedAt: NOW,
      expiresAt: NOW + 3600_000,
    });
    expect((p as { claims: object }).claims).toEqual({ team: "a", groups: ["x", "y"], exp: 1, iat: 2, nbf: 3 });
  });

  test("a claim named __proto__ survives as data and pollutes nothing", () => {
    const claims = JSON.parse('{"__proto__": {"admin": true}, "team": "a"}');
    const c = issue({ claims });
    const p = verifySessionToken(KEY, c.accessKeyId, c.sessionToken, NOW) as { claims: Record<string, unknown> };
    expect(Object.hasOwn(p.claims, "__proto__")).toBe(true);
    expect((p.claims as { admin?: unknown }).admin).toBeUndefined();
  });

  test("expired → 400 ExpiredToken (the SDKs refresh on it)", () => {
    const c = issue();
    expect(verifySessionToken(KEY, c.accessKeyId, c.sessionToken, NOW + 3599_999)).toHaveProperty("subject", "alice");
    expect(verifySessionToken(KEY, c.accessKeyId, c.sessionToken, NOW + 3600_000)).toMatchObject({ code: "ExpiredToken", status: 400 });
  });

  test("another session key (a rotation) → 400 InvalidToken", () => {
    const c = issue();
    expect(verifySessionToken("z".repeat(40), c.accessKeyId, c.sessionToken, NOW)).toMatchObject({ code: "InvalidToken", status: 400 });
  });

  test("a token with its payload edited (a flipped byte of the sealed payload, or a clear payload of one's own under either prefix) → InvalidToken", () => {
    const c = issue();
    const [prefix, payload, tag] = c.sessionToken.split(".");
    const bytes = Buffer.from(payload!, "base64url");
    for (const at of [0, 12, bytes.byteLength - 1]) {
      const flipped = Buffer.from(bytes);
      flipped[at]! ^= 1;
      expect(verifySessionToken(KEY, c.accessKeyId, `${prefix}.${flipped.toString("base64url")}.${tag}`, NOW)).toMatchObject({ code: "InvalidToken" });
    }
    for (const body of [{ sub: "root", iat: NOW / 1000, exp: NOW / 1000 + 86400, jti: "j", claims: { team: "admin" } }]) {
      const forged = Buffer.from(JSON.stringify(body)).toString("base64url");
      for (const p of ["YGS1", "YGS2"]) expect(verifySessionToken(KEY, c.accessKeyId, `${p}.${forged}.${tag}`, NOW)).toMatchObject({ code: "InvalidToken" });
    }
  });

  test("a tag that only differs in base64url's unused bits is not the tag", () => {
    const c = issue();
    const last = c.sessionToken.at(-1)!;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const twin = alphabet[alphabet.indexOf(last) ^ 1]; // same first 4 bits, other padding bits
    expect(Buffer.from(c.sessionToken.slice(-43, -1) + twin, "base64url")).toEqual(Buffer.from(c.sessionToken.slice(-43), "base64url"));
    expect(verifySessionToken(KEY, c.accessKeyId, c.sessionToken.slice(0, -1) + twin, NOW)).toMatchObject({ code: "InvalidToken" });
  });

  test("garbage tokens → InvalidToken without throwing", () => {
    const c = issue();
    for (const t of ["", "YGS1.", "YGS1..", "YGS2.", "YGS2..", "nope", c.sessionToken + "x", c.sessionToken.slice(0, -1), "YGS1.!!!." + "a".repeat(43), "YGS1.a." + "a".repeat(43), "YGS2.a." + "a".repeat(43), "YGS1." + "a".repeat(5000), c.sessionToken.replace("YGS2.", "YGS1.")]) {
      expect(verifySessionToken(KEY, c.accessKeyId, t, NOW)).toMatchObject({ code: "InvalidToken", status: 400 });
    }
  });

  test("the access key of another session → 403 InvalidAccessKeyId", () => {
    const a = issue();
    const b = issue();
    expect(verifySessionToken(KEY, b.accessKeyId, a.sessionToken, NOW)).toMatchObject({ code: "InvalidAccessKeyId", status: 403 });
    expect(verifySessionToken(KEY, "AKIASTATIC", a.sessionToken, NOW)).toMatchObject({ code: "InvalidAccessKeyId" });
  });
});

describe("the AssumedRoleUser a session was issued as", () => {
  test("is kept in the sealed token and read back (GetCallerIdentity answers it); a token issued without it has none", () => {
    const assumedRole = { arn: "arn:aws:sts::123456789012:assumed-role/reader/s1", id: "AROA0123456789ABCDEFG:s1" };
    const c = issueSession({ sessionKey: KEY, subject: "alice", claims: { team: "a" }, now: NOW, expiresAt: NOW + 600_000, assumedRole });
    if (c.kind !== "ok") throw new Error(c.message);
    expect(c.sessionToken).not.toContain("reader"); // (encrypted, as the claims)
    expect(verifySessionToken(KEY, c.accessKeyId, c.sessionToken, NOW)).toMatchObject({ subject: "alice", assumedRole });
    const old = issueSession({ sessionKey: KEY, subject: "alice", claims: {}, now: NOW, expiresAt: NOW + 600_000 });
    if (old.kind !== "ok") throw new Error(old.message);
    expect("assumedRole" in (verifySessionToken(KEY, old.accessKeyId, old.sessionToken, NOW) as object)).toBe(false);
  });
});

describe("session credentials through verifySigV4", () => {
  const lookup = (akid: string, sessionToken: string | undefined, now: number) =>
    sessionToken === undefined ? undefined : verifySessionToken(KEY, akid, sessionToken, now);

  test("a request signed with session credentials verifies, and carries the token's claims", async () => {
    const c = issue();
    const when = new Date(NOW + 60_000);
    const req = await smithySigned({ path: "/bucket/key", creds: c, date: when });
    const r = verifySigV4(req, lookup, { region: "us-east-1", now: when.getTime(), maxSkewSeconds: 900 });
    expect(r).toMatchObject({ kind: "ok", accessKeyId: c.accessKeyId, principal: { subject: "alice", claims: { team: "a" } } });
  });

  test("the same request after expiry → ExpiredToken; without its token → InvalidAccessKeyId", async () => {
    const c = issue({ expiresAt: NOW + 120_000 });
    const when = new Date(NOW + 119_000);
    const req = await smithySigned({ path: "/bucket/key", creds: c, date: when });
    expect(verifySigV4(req, lookup, { region: "us-east-1", now: NOW + 121_000, maxSkewSeconds: 900 })).toMatchObject({ kind: "error", code: "ExpiredToken" });
    const unsignedToken = await smithySigned({ path: "/bucket/key", creds: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey }, date: when });
    expect(verifySigV4(unsignedToken, lookup, { region: "us-east-1", now: when.getTime(), maxSkewSeconds: 900 })).toMatchObject({ kind: "error", code: "InvalidAccessKeyId" });
  });
});
