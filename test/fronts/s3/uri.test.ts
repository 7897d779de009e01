/** How the S3 front decodes a request target, and the two request-time formats. */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { canonicalUri, decodeComponent, parseRawQuery } from "../../../src/fronts/s3/uri.ts";
import { parseHttpDate } from "../../../src/fronts/s3/auth-params.ts";
import { parseAmzDate } from "../../../src/s3/sigv4.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

describe("parseRawQuery", () => {
  test("order and repeats kept; names without '=' have empty values; empty parts skipped", () => {
    expect(parseRawQuery("b=2&a&a=1&&c=")).toEqual([["b", "2"], ["a", ""], ["a", "1"], ["c", ""]]);
    expect(parseRawQuery("?x=1")).toEqual([["x", "1"]]);
    expect(parseRawQuery("")).toEqual([]);
  });
  test("decoded once; '+' stays a plus; '=' inside a value is kept", () => {
    expect(parseRawQuery("prefix=a%20b+c%2B%252F&t=x=y")).toEqual([["prefix", "a b+c+%2F"], ["t", "x=y"]]);
    expect(parseRawQuery("%E6%97%A5=%F0%9F%98%80")).toEqual([["日", "😀"]]);
  });
  test("a malformed escape or invalid UTF-8 → undefined", () => {
    for (const q of ["a=%zz", "a=%", "%E6%97=1", "a=%FF"]) expect(parseRawQuery(q)).toBeUndefined();
  });
});

describe("canonicalUri", () => {
  test("decoded then encoded once per RFC 3986, '/' kept, nothing normalized", () => {
    expect(canonicalUri("/b/a%20b+c%2Bd")).toBe("/b/a%20b%2Bc%2Bd");
    expect(canonicalUri("/b/photo%20(1)!'*.png")).toBe("/b/photo%20%281%29%21%27%2A.png");
    expect(canonicalUri("/b/%7etilde~")).toBe("/b/~tilde~");
    expect(canonicalUri("/b/100%25")).toBe("/b/100%25");
    expect(canonicalUri("/b/a%2Fb")).toBe("/b/a/b");
    expect(canonicalUri("/b/./x/../y//z/")).toBe("/b/./x/../y//z/");
    expect(canonicalUri("/b/%E6%97%A5")).toBe("/b/%E6%97%A5");
    expect(canonicalUri("")).toBe("/");
    expect(canonicalUri("/b/%E6%97")).toBeUndefined();
  });
  test("decodeComponent leaves strings without '%' alone", () => {
    expect(decodeComponent("a+b c")).toBe("a+b c");
    expect(decodeComponent("%zz")).toBeUndefined();
  });
});

describe("request times", () => {
  test("parseAmzDate: real UTC instants only", () => {
    expect(parseAmzDate("20240229T235959Z")).toBe(Date.UTC(2024, 1, 29, 23, 59, 59));
    for (const s of ["20230229T000000Z", "20241301T000000Z", "20240100T000000Z", "20240101T240000Z", "20240101T006000Z", "20240101T000060Z", "20240101T000000", "2024-01-01T00:00:00Z", " 20240101T000000Z"]) {
      expect([s, parseAmzDate(s)]).toEqual([s, undefined]);
    }
  });
  test("years 0000 to 0099 are those years, not 1900 to 1999 (Date.UTC's reading); far dates are instants", () => {
    expect(parseAmzDate("00990101T000000Z")).toBe(Date.parse("0099-01-01T00:00:00Z"));
    expect(parseAmzDate("00000229T000000Z")).toBe(Date.parse("0000-02-29T00:00:00Z"));
    expect(parseAmzDate("99991231T235959Z")).toBe(Date.parse("9999-12-31T23:59:59Z"));
    expect(parseHttpDate("Thu, 01 Jan 0099 00:00:00 GMT")).toBe(Date.parse("0099-01-01T00:00:00Z"));
    expect(parseHttpDate("Sat, 29 Feb 0000 00:00:00 GMT")).toBe(Date.parse("0000-02-29T00:00:00Z"));
  });
  test("parseAmzDate remembers only the last string: repeats and alternations answer as a fresh parse", () => {
    const good = "20261201T220000Z";
    const bad = "20261301T220000Z";
    const seq = [good, good, bad, bad, good, "20261201T220001Z", good, bad];
    expect(seq.map(parseAmzDate)).toEqual(seq.map((s) => (s === bad ? undefined : Date.UTC(2026, 11, 1, 22, 0, s.endsWith("01Z") ? 1 : 0))));
  });
  test("parseHttpDate: IMF-fixdate only", () => {
    expect(parseHttpDate("Fri, 24 May 2013 00:00:00 GMT")).toBe(Date.UTC(2013, 4, 24));
    for (const s of ["Fri, 24 May 2013 00:00:00 UTC", "Friday, 24-May-13 00:00:00 GMT", "Fri, 31 Jun 2013 00:00:00 GMT", "Fri, 24 May 2013 00:60:00 GMT", "24 May 2013"]) {
      expect([s, parseHttpDate(s)]).toEqual([s, undefined]);
    }
  });
});
