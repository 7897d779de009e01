import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { freshnessSeconds, mergeHeaders, pickHeaders } from "../../src/cache/freshness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

describe("freshnessSeconds", () => {
  const f = (cc: string | null, bucket?: number) => freshnessSeconds(cc, bucket, 3600);
  test("no Cache-Control: bucket ttl_seconds, else the default", () => {
    expect(f(null)).toBe(3600);
    expect(f("")).toBe(3600);
    expect(f(null, 600)).toBe(600);
    expect(f(null, 0)).toBe(0);
    expect(f("public", 600)).toBe(600);
    expect(f("must-revalidate")).toBe(3600);
  });
  test("no-store and private are never stored", () => {
    expect(f("no-store")).toBeNull();
    expect(f("private")).toBeNull();
    expect(f("max-age=60, private")).toBeNull();
    expect(f('private="set-cookie"')).toBeNull();
    expect(f("No-Store", 600)).toBeNull();
    expect(f("public, max-age=60, no-store")).toBeNull();
  });
  test("no-cache: stored, revalidated every time", () => {
    expect(f("no-cache")).toBe(0);
    expect(f("no-cache, max-age=600")).toBe(0);
    expect(f('no-cache="x-foo"', 600)).toBe(0);
  });
  test("max-age and s-maxage beat the bucket ttl; s-maxage beats max-age", () => {
    expect(f("max-age=120", 600)).toBe(120);
    expect(f("public, max-age=120")).toBe(120);
    expect(f("s-maxage=30, max-age=120", 600)).toBe(30);
    expect(f("max-age=120, s-maxage=30")).toBe(30);
    expect(f("S-MaxAge=30")).toBe(30);
    expect(f(' max-age = "90" ')).toBe(90);
    expect(f("max-age=10, max-age=20")).toBe(10); // first occurrence
  });
  test("max-age=0: stored but stale at once", () => {
    expect(f("max-age=0", 600)).toBe(0);
  });
  test("malformed or huge deltas", () => {
    expect(f("max-age=abc", 600)).toBe(0);
    expect(f("max-age=-5", 600)).toBe(0);
    expect(f("max-age", 600)).toBe(0);
    expect(f("max-age=99999999999999")).toBe(2147483648);
  });
});

describe("Expires (no max-age / s-maxage): never fresh past it, never longer than the TTL", () => {
  const NOW = Date.parse("Sat, 05 Dec 2026 12:00:00 GMT");
  const at = (expires: string | null, date: string | null, cc: string | null = null, bucket?: number) => freshnessSeconds(cc, bucket, 3600, { expires, date, now: NOW });
  test("in the past, or invalid (Expires: 0): stale at once, stored for revalidation", () => {
    expect(at("Thu, 01 Jan 1970 00:00:00 GMT", null)).toBe(0);
    expect(at("Sat, 05 Dec 2026 11:59:59 GMT", "Sat, 05 Dec 2026 12:00:00 GMT")).toBe(0);
    expect(at("0", null, null, 600)).toBe(0);
    expect(at("2030-01-01T00:00:00Z", null)).toBe(0);
  });
  test("sooner than the TTL: until then, measured from the upstream's Date", () => {
    expect(at("Sat, 05 Dec 2026 12:05:00 GMT", null)).toBe(300);
    expect(at("Sat, 05 Dec 2026 12:05:00 GMT", null, null, 600)).toBe(300);
    // (the upstream's clock 2 minutes behind the proxy's: Expires - Date, 5 minutes)
    expect(at("Sat, 05 Dec 2026 12:03:00 GMT", "Sat, 05 Dec 2026 11:58:00 GMT")).toBe(300);
  });
  test("later than the TTL: the TTL; max-age, s-maxage, no-cache, no-store decide before it", () => {
    expect(at("Fri, 01 Jan 2100 00:00:00 GMT", null)).toBe(3600);
    expect(at("Fri, 01 Jan 2100 00:00:00 GMT", null, null, 600)).toBe(600);
    expect(at("Thu, 01 Jan 1970 00:00:00 GMT", null, "max-age=120")).toBe(120);
    expect(at("Thu, 01 Jan 1970 00:00:00 GMT", null, "public, s-maxage=60")).toBe(60);
    expect(at("Fri, 01 Jan 2100 00:00:00 GMT", null, "no-cache")).toBe(0);
    expect(at("Fri, 01 Jan 2100 00:00:00 GMT", null, "no-store")).toBeNull();
    expect(at(null, null)).toBe(3600);
  });
});

describe("stored headers", () => {
  const upstream = new Headers({
    etag: '"e"',
    "last-modified": "Wed, 21 Oct 2015 07:28:00 GMT",
    "content-type": "image/png",
    "content-length": "12",
    "cache-control": "max-age=60",
    "content-disposition": "inline",
    "content-encoding": "gzip",
    "content-language": "en",
    expires: "Thu, 22 Oct 2015 07:28:00 GMT",
    "x-amz-meta-owner": "me",
    "x-amz-request-id": "REQ",
    "x-amz-id-2": "ID2",
    server: "AmazonS3",
    "accept-ranges": "bytes",
    date: "Wed, 21 Oct 2015 07:28:00 GMT",
    "set-cookie": "a=b",
  });
  test("only the listed headers and x-amz-meta-* are kept; content-length is recomputed elsewhere", () => {
    expect(pickHeaders(upstream)).toEqual({
      etag: '"e"',
      "last-modified": "Wed, 21 Oct 2015 07:28:00 GMT",
      "content-type": "image/png",
      "cache-control": "max-age=60",
      "content-disposition": "inline",
      "content-encoding": "gzip",
      "content-language": "en",
      expires: "Thu, 22 Oct 2015 07:28:00 GMT",
      "x-amz-meta-owner": "me",
    });
  });
  test("a 304 updates what it carries, never content-length", () => {
    const merged = mergeHeaders(
      { etag: '"e"', "cache-control": "max-age=60", "content-length": "12", "content-type": "a/b" },
      new Headers({ "cache-control": "max-age=5", "content-length": "0", "x-amz-request-id": "R" }),
    );
    expect(merged).toEqual({ etag: '"e"', "cache-control": "max-age=5", "content-length": "12", "content-type": "a/b" });
  });
});
