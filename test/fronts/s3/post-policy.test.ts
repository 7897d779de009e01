import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { checkPostPolicy } from "../../../src/fronts/s3/post-policy.ts";

setDefaultTimeout(30_000);

const NOW = Date.parse("2026-12-02T12:00:00Z");
const b64 = (doc: unknown) => Buffer.from(JSON.stringify(doc)).toString("base64");
const fields = (o: Record<string, string>) => new Map(Object.entries({ bucket: "up", policy: "p", "x-amz-signature": "s", ...o }));
const check = (conditions: unknown[], f: Record<string, string>, expiration = "2026-12-02T13:00:00.000Z") => {
  const r = checkPostPolicy(b64({ expiration, conditions }), fields(f), NOW);
  return "code" in r ? `${r.code}: ${r.message}` : r;
};

describe("checkPostPolicy", () => {
  test("exact, eq, starts-with (empty: anything) and content-length-range (numbers or digit strings); names case-insensitive", () => {
    expect(check([{ bucket: "up" }, ["eq", "$Key", "a/b.txt"], ["starts-with", "$content-type", "image/"], ["starts-with", "$x-amz-meta-tag", ""], ["content-length-range", "1", 10]], { key: "a/b.txt", "content-type": "image/png", "x-amz-meta-tag": "anything" })).toEqual({
      expiration: Date.parse("2026-12-02T13:00:00.000Z"),
      minLength: 1,
      maxLength: 10,
    });
  });

  test("a failed condition, a field no condition names (but x-ignore-*, policy, signature, file are exempt), an expired policy: AccessDenied", () => {
    expect(check([["starts-with", "$key", "user/"]], { key: "admin/x" })).toStartWith("AccessDenied: Invalid according to Policy: Policy Condition failed");
    expect(check([{ key: "k" }], { key: "k", acl: "public-read" })).toBe("AccessDenied: Invalid according to Policy: Extra input fields: acl");
    expect(check([{ key: "k" }], { key: "k", "x-ignore-me": "1" })).toMatchObject({ minLength: 0 });
    expect(check([{ key: "k" }], { key: "k" }, "2026-12-02T11:59:59Z")).toBe("AccessDenied: Invalid according to Policy: Policy expired.");
    // at its expiration instant too (it was accepted for that last millisecond)
    expect(check([{ key: "k" }], { key: "k" }, "2026-12-02T12:00:00.000Z")).toBe("AccessDenied: Invalid according to Policy: Policy expired.");
    expect(check([{ key: "k" }], { key: "k" }, "2026-12-02T12:00:00.001Z")).toMatchObject({ minLength: 0 });
  });

  test("a Content-Type with commas is a list for starts-with, as S3 documents: each item must start with the prefix (image/png,text/html passed an image/ condition, and browsers read the last type)", () => {
    const ct = (value: string, prefix = "image/") => check([["starts-with", "$Content-Type", prefix]], { "content-type": value });
    expect(ct("image/jpg,image/png, image/gif")).toMatchObject({ minLength: 0 });
    expect(ct("image/png,text/html")).toStartWith("AccessDenied: Invalid according to Policy: Policy Condition failed");
    expect(ct("image/png, text/html")).toStartWith("AccessDenied: Invalid according to Policy: Policy Condition failed");
    expect(ct("image/png,")).toStartWith("AccessDenied: Invalid according to Policy: Policy Condition failed");
    expect(ct("text/html,image/png", "")).toMatchObject({ minLength: 0 });
    // other fields are strings, commas or not; eq compares the whole value
    expect(check([["starts-with", "$key", "user/"]], { key: "user/a,b" })).toMatchObject({ minLength: 0 });
    expect(check([["eq", "$Content-Type", "image/png,text/html"]], { "content-type": "image/png,text/html" })).toMatchObject({ minLength: 0 });
  });

  test("an expiration without an offset is UTC, whatever the server's time zone", () => {
    const tz = process.env.TZ;
    try {
      for (const zone of ["Asia/Tokyo", "America/New_York", "UTC"]) {
        process.env.TZ = zone;
        // (Python's datetime.utcnow().isoformat(): no offset, microseconds)
        expect([zone, check([{ key: "k" }], { key: "k" }, "2026-12-02T12:30:00.123456")]).toEqual([zone, { expiration: Date.parse("2026-12-02T12:30:00.123Z"), minLength: 0, maxLength: Infinity }]);
        expect([zone, check([{ key: "k" }], { key: "k" }, "2026-12-02T11:30:00")]).toEqual([zone, "AccessDenied: Invalid according to Policy: Policy expired."]);
        // an explicit offset is kept
        expect([zone, check([{ key: "k" }], { key: "k" }, "2026-12-02T21:30:00+09:00")]).toMatchObject([zone, { expiration: Date.parse("2026-12-02T12:30:00Z") }]);
      }
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });

  test("a document that is not a policy: InvalidPolicyDocument", () => {
    const bad = (text: string) => {
      const r = checkPostPolicy(text, fields({}), NOW);
      return "code" in r ? r.code : "ok";
    };
    expect(bad("!!!")).toBe("InvalidPolicyDocument");
    expect(bad(Buffer.from("not json").toString("base64"))).toBe("InvalidPolicyDocument");
    expect(bad(b64({ conditions: [] }))).toBe("InvalidPolicyDocument");
    expect(bad(b64({ expiration: "tomorrow", conditions: [] }))).toBe("InvalidPolicyDocument");
    expect(bad(b64({ expiration: "2026-12-03T00:00:00Z" }))).toBe("InvalidPolicyDocument");
    expect(bad(b64({ expiration: "2026-12-03T00:00:00Z", conditions: [["content-length-range", 5, 1]] }))).toBe("InvalidPolicyDocument");
    expect(bad(b64({ expiration: "2026-12-03T00:00:00Z", conditions: [["matches", "$key", ".*"]] }))).toBe("InvalidPolicyDocument");
    expect(bad(b64({ expiration: "2026-12-03T00:00:00Z", conditions: [{ a: "1", b: "2" }] }))).toBe("InvalidPolicyDocument");
    expect(bad(b64({ expiration: "2026-12-03T00:00:00Z", conditions: [] }))).toBe("ok");
  });
});
