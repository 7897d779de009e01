import { expect, test, setDefaultTimeout } from "bun:test";
import type { BucketConfig } from "../../../src/config/schema.ts";
import { issueToken, nextToken, pastPrefix, RAW_TOKEN_GRACE_MS, readToken, s3UrlDecode, s3UrlEncode, sortsAfter } from "../../../src/fronts/s3/list-token.ts";

setDefaultTimeout(30_000);

const cfg = (secret: string) =>
  ({ name: "src", s3: { bucket: "one-b", secret_key: secret, replicas: [{ name: "one", bucket: "one-b", secret_key: secret }, { name: "two", bucket: "two-b", secret_key: "s2" }] } }) as unknown as BucketConfig;
const binding = { bucket: "src", prefix: "k/", delimiter: "" };
const t = { replica: "one", upstream: "eyJiIjoib25lLWIifQ==", after: "k/0399 é", past: false };

test("a token reads back in another process with the same config (the key is the config's, not the process's), and hides the upstream's token", () => {
  const token = issueToken(cfg("s1"), binding, t);
  expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
  expect(readToken(cfg("s1"), binding, token)).toEqual(t);
  expect(Buffer.from(token, "base64url").toString("latin1")).not.toContain(t.upstream);
  expect(Buffer.from(token, "base64url").toString("utf8")).not.toContain("k/0399");
  // every token differs (a fresh IV), each reads back the same
  expect(issueToken(cfg("s1"), binding, t)).not.toBe(token);
  const common = { ...t, after: "d/f01/", past: true };
  expect(readToken(cfg("s1"), binding, issueToken(cfg("s1"), binding, common))).toEqual(common);
});

test("another listing, an altered token or another key: refused", () => {
  const token = issueToken(cfg("s1"), binding, t);
  expect(readToken(cfg("s1"), { ...binding, prefix: "k" }, token)).toBeUndefined();
  expect(readToken(cfg("s1"), { ...binding, delimiter: "/" }, token)).toBeUndefined();
  expect(readToken(cfg("s1"), { ...binding, bucket: "up" }, token)).toBeUndefined();
  expect(readToken(cfg("s2"), binding, token)).toBeUndefined();
  const bytes = Buffer.from(token, "base64url");
  for (const at of [2, 20, bytes.length - 1]) {
    const altered = Buffer.from(bytes);
    altered[at]! ^= 0x40;
    expect(readToken(cfg("s1"), binding, altered.toString("base64url"))).toBeUndefined();
  }
  expect(readToken(cfg("s1"), binding, token.slice(0, -4))).toBeUndefined();
});

test("a token with one more base64url character, or other unused bits in its last one, is refused (base64url decoding ignored them: the token read as the same)", () => {
  const token = issueToken(cfg("s1"), binding, t);
  expect(readToken(cfg("s1"), binding, token)).toEqual(t);
  for (const c of ["A", "Q", "-", "_"]) expect(readToken(cfg("s1"), binding, token + c)).toBeUndefined();
  // the last character's unused low bits set (the same bytes decoded): another spelling, refused
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const unused = [0, 0, 15, 3][token.length % 4]!;
  if (unused > 0) {
    const last = alphabet.indexOf(token.at(-1)!);
    const respelled = token.slice(0, -1) + alphabet[last | unused];
    expect(Buffer.from(respelled, "base64url")).toEqual(Buffer.from(token, "base64url"));
    expect(readToken(cfg("s1"), binding, respelled)).toBeUndefined();
  }
});

test("an upstream's own token (from before the change) passes through for the grace period after the start, then is refused", () => {
  const raw = "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=";
  expect(readToken(cfg("s1"), binding, raw)).toBe("raw");
  expect(readToken(cfg("s1"), binding, raw, Date.now() + RAW_TOKEN_GRACE_MS)).toBeUndefined();
  expect(readToken(cfg("s1"), binding, "")).toBeUndefined();
});

test("S3's encoding-type=url round trip", () => {
  for (const k of ["a b+c/d", "é!'()*~.-_", "%41"]) expect(s3UrlDecode(s3UrlEncode(k))).toBe(k);
  expect(s3UrlEncode("a b+c/d*")).toBe("a+b%2Bc/d*");
});

test("past a common prefix: after every key under it of up to S3's 1,024 bytes, in UTF-8 byte order, before every key outside it", () => {
  // (the prefix followed by U+10FFFF alone sorted before "d/f01/\u{10FFFF}x": that common prefix was listed again)
  const cases: Array<[prefix: string, firstOutside: string]> = [
    ["d/f01/", "d/f010"],
    ["é/\u{10FFFF}/", "é/\u{10FFFF}0"],
    ["a\u{10FFFF}", "b"],
    ["x".repeat(1000) + "/", "x".repeat(1000) + "0"],
    ["y".repeat(1021) + "/", "y".repeat(1021) + "0"],
    ["z".repeat(1022) + "/", "z".repeat(1022) + "0"],
    ["w".repeat(1023) + "/", "w".repeat(1023) + "0"],
  ];
  for (const [p, outside] of cases) {
    const past = pastPrefix(p);
    const room = 1024 - Buffer.byteLength(p);
    expect(Buffer.byteLength(past)).toBe(room > 0 ? 1024 : 1028);
    const under = ["", "a", "\u{10FFFF}", "\u{10FFFF}x", "\uFFFF\uFFFF", "\u{10FFFF}".repeat(room >> 2) + ["", "\x7f", "\u07ff", "\uffff"][room & 3]];
    for (const k of under.map((s) => p + s).filter((k) => Buffer.byteLength(k) <= 1024)) expect(sortsAfter(past, k) || past === k).toBe(true);
    expect(sortsAfter(outside, past)).toBe(true);
  }
});

test("a version 1 token (a common prefix as the prefix followed by U+10FFFF) reads as that prefix", () => {
  const { createCipheriv, createHash } = require("node:crypto") as typeof import("node:crypto");
  const c = cfg("s1");
  const h = createHash("sha256").update("yatagarasu list token\0").update(c.name);
  for (const r of c.s3.replicas!) h.update("\0").update(r.bucket ?? "").update("\0").update(r.secret_key ?? "");
  const field = (s: string) => {
    const b = Buffer.from(s, "utf8");
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]);
  };
  const iv = Buffer.alloc(12, 7);
  const cipher = createCipheriv("aes-256-gcm", h.digest(), iv);
  cipher.setAAD(Buffer.concat([Buffer.from([0x59, 1]), Buffer.from(JSON.stringify([binding.bucket, binding.prefix, binding.delimiter]))]));
  const sealed = Buffer.concat([cipher.update(Buffer.concat([field("one"), field("U1"), field("k/d/\u{10FFFF}")])), cipher.final()]);
  const v1 = Buffer.concat([Buffer.from([0x59, 1]), iv, sealed, cipher.getAuthTag()]).toString("base64url");
  expect(readToken(c, binding, v1)).toEqual({ replica: "one", upstream: "U1", after: "k/d/", past: true });
});

test("a token today's proxy gives out is read by a release reading only version 1 (a fleet mid-upgrade or rolled back): the same replica, upstream token and start-after, and without an upstream token no replica's own ask", () => {
  const { createDecipheriv, createHash } = require("node:crypto") as typeof import("node:crypto");
  const c = cfg("s1");
  // 749f3f6's readToken and askResumed: version 1 only, the replica of the token asked with its upstream token (even empty)
  const readV1 = (token: string) => {
    const bytes = Buffer.from(token, "base64url");
    expect([bytes[0], bytes[1]]).toEqual([0x59, 1]);
    const h = createHash("sha256").update("yatagarasu list token\0").update(c.name);
    for (const r of c.s3.replicas!) h.update("\0").update(r.bucket ?? "").update("\0").update(r.secret_key ?? "");
    const decipher = createDecipheriv("aes-256-gcm", h.digest(), bytes.subarray(2, 14));
    decipher.setAAD(Buffer.concat([Buffer.from([0x59, 1]), Buffer.from(JSON.stringify([binding.bucket, binding.prefix, binding.delimiter]))]));
    decipher.setAuthTag(bytes.subarray(bytes.length - 16));
    const payload = Buffer.concat([decipher.update(bytes.subarray(14, bytes.length - 16)), decipher.final()]);
    const out: string[] = [];
    let at = 0;
    for (let i = 0; i < 3; i++) {
      const len = payload.readUInt16BE(at);
      out.push(payload.subarray(at + 2, at + 2 + len).toString("utf8"));
      at += 2 + len;
    }
    expect(at).toBe(payload.length);
    return { replica: out[0]!, upstream: out[1]!, after: out[2]! };
  };
  const asks = (token: string, served: string) => {
    const r = readV1(token);
    return r.replica === served ? { continuationToken: r.upstream } : { startAfter: r.after };
  };
  const earlier = { after: "k/0", past: false };
  const key = nextToken(c, binding, "one", "U1", { after: "k/0399 é", past: false }, earlier);
  expect(asks(key, "one")).toEqual({ continuationToken: "U1" });
  expect(asks(key, "two")).toEqual({ startAfter: "k/0399 é" });
  expect(asks(nextToken(c, binding, "one", "U1", { after: "k/d/", past: true }, earlier), "two")).toEqual({ startAfter: "k/d/\u{10FFFF}" });
  expect(asks(nextToken(c, binding, "one", "U1", undefined, earlier), "one")).toEqual({ continuationToken: "U1" });
  // (the long upstream token left out: start-after on every replica, the one that served the page too)
  const dropped = nextToken(c, binding, "one", "T".repeat(1400), { after: "k/long", past: false }, earlier);
  for (const served of ["one", "two", ""]) expect(asks(dropped, served)).toEqual({ startAfter: "k/long" });
  expect(readToken(c, binding, dropped)).toEqual({ replica: "*", upstream: "", after: "k/long", past: false });
  // (a key ending in U+10FFFF, which version 1 would read as a common prefix: version 2)
  const edge = { replica: "one", upstream: "U1", after: "k/\u{10FFFF}", past: false };
  expect(Buffer.from(issueToken(c, binding, edge), "base64url")[1]).toBe(2);
  expect(readToken(c, binding, issueToken(c, binding, edge))).toEqual(edge);
});

test("the tokens the previous release (3dab9c4) wrote, captured from it, are read here as it read them (a listing begun on an old replica goes on on a new one; decoding is strict about the spelling since)", () => {
  const c = cfg("s1");
  const old = {
    key: "WQGQTNh2XnqnTiucGAbhni86xbhXhyTIfa2SbJL--crd4s4x3o8DcDlNPnOeOGrsX3E",
    folder: "WQFU5kE_xXIXgu-nN0KNiXJckzscWgBg4Z4aQG5aFDzyjD9UK_V_znMlEub2E59gfg",
    empty: "WQHNpcODjc_tIQluCOWamIrmfUl-jEVAi0dHSUooUL_6-vLti_B80nyiKQQ",
    dropped: "WQH9ehsU8s7DOuWxquj-1p-7nnNPvMgnDmhgZkGZpzrXSaOtW61wiX28wg",
    edge: "WQJMMJy6AMbJU4O2suRk02UiTJuRkU3HrS_7zknhmA8DAH7g9hZ90h8VVvWCEmWM",
  };
  expect(readToken(c, binding, old.key)).toEqual({ replica: "one", upstream: "U1", after: "k/0399 é", past: false });
  expect(readToken(c, binding, old.folder)).toEqual({ replica: "one", upstream: "U1", after: "k/d/", past: true });
  expect(readToken(c, binding, old.empty)).toEqual({ replica: "one", upstream: "U1", after: "k/0", past: false });
  expect(readToken(c, binding, old.dropped)).toEqual({ replica: "*", upstream: "", after: "k/long", past: false });
  expect(readToken(c, binding, old.edge)).toEqual({ replica: "one", upstream: "U1", after: "k/\u{10FFFF}", past: false });
});

test("an upstream token longer than 256 bytes is left out when the page has a last entry (the next page resumes after it), kept when it has none", () => {
  const long = "T".repeat(1400);
  const last = { after: "k/" + "é".repeat(511), past: false };
  const earlier = { after: "k/0", past: false };
  const dropped = nextToken(cfg("s1"), binding, "one", long, last, earlier);
  expect(dropped.length).toBeLessThan(1500);
  expect(readToken(cfg("s1"), binding, dropped)).toEqual({ replica: "*", upstream: "", ...last });
  expect(readToken(cfg("s1"), binding, nextToken(cfg("s1"), binding, "one", "short", last, earlier))).toEqual({ replica: "one", upstream: "short", ...last });
  expect(readToken(cfg("s1"), binding, nextToken(cfg("s1"), binding, "one", long, undefined, earlier))).toEqual({ replica: "one", upstream: long, ...earlier });
});

test("a field over 65,535 bytes is never cut short: an upstream token that long is left out when the page has a last entry, else the page is the upstream's failure (BadGateway), as is a last entry that long", () => {
  const { ProxyError } = require("../../../src/errors.ts") as typeof import("../../../src/errors.ts");
  const huge = "T".repeat(70_000);
  const last = { after: "k/1", past: false };
  const earlier = { after: "k/0", past: false };
  expect(readToken(cfg("s1"), binding, nextToken(cfg("s1"), binding, "one", huge, last, earlier))).toEqual({ replica: "*", upstream: "", ...last });
  const refused = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      return err instanceof ProxyError ? err.code : String(err);
    }
    return "issued";
  };
  // (it was issued with the upstream token or the key cut to 65,535 bytes: the next page asked for another one)
  expect(refused(() => nextToken(cfg("s1"), binding, "one", huge, undefined, earlier))).toBe("BadGateway");
  expect(refused(() => nextToken(cfg("s1"), binding, "one", "short", { after: "k/" + "é".repeat(35_000), past: false }, earlier))).toBe("BadGateway");
  expect(refused(() => issueToken(cfg("s1"), binding, { ...t, after: "x".repeat(65_536) }))).not.toBe("issued");
  expect(readToken(cfg("s1"), binding, issueToken(cfg("s1"), binding, { ...t, after: "x".repeat(65_535) }))).toEqual({ ...t, after: "x".repeat(65_535) });
});
