import { expect, test } from "bun:test";
import type { BucketConfig } from "../../../src/config/schema.ts";
import { issueToken, PAST_PREFIX, RAW_TOKEN_GRACE_MS, readToken, s3UrlDecode, s3UrlEncode } from "../../../src/fronts/s3/list-token.ts";

const cfg = (secret: string) =>
  ({ name: "src", s3: { bucket: "one-b", secret_key: secret, replicas: [{ name: "one", bucket: "one-b", secret_key: secret }, { name: "two", bucket: "two-b", secret_key: "s2" }] } }) as unknown as BucketConfig;
const binding = { bucket: "src", prefix: "k/", delimiter: "" };
const t = { replica: "one", upstream: "eyJiIjoib25lLWIifQ==", after: "k/0399 é" };

test("a token reads back in another process with the same config (the key is the config's, not the process's), and hides the upstream's token", () => {
  const token = issueToken(cfg("s1"), binding, t);
  expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
  expect(readToken(cfg("s1"), binding, token)).toEqual(t);
  expect(Buffer.from(token, "base64url").toString("latin1")).not.toContain(t.upstream);
  expect(Buffer.from(token, "base64url").toString("utf8")).not.toContain("k/0399");
  // every token differs (a fresh IV), each reads back the same
  expect(issueToken(cfg("s1"), binding, t)).not.toBe(token);
  const common = { ...t, after: "d/f01/" + PAST_PREFIX };
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
