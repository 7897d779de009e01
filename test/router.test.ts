import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { ProxyError } from "../src/errors.ts";
import { normalizePath, Router } from "../src/router.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

function invalid(raw: string): ProxyError {
  try {
    normalizePath(raw);
  } catch (e) {
    if (e instanceof ProxyError) return e;
    throw e;
  }
  throw new Error(`normalizePath(${raw}) did not throw`);
}

describe("normalizePath", () => {
  test("decodes percent-encoding once", () => {
    expect(normalizePath("/b/a%20b%2Bc%25d")).toBe("/b/a b+c%d");
    expect(normalizePath("/b/%E6%97%A5%E6%9C%AC")).toBe("/b/日本");
  });

  test("collapses duplicate slashes", () => {
    expect(normalizePath("//b///x//y")).toBe("/b/x/y");
  });

  const traversal = ["/b/../etc/passwd", "/b/./x", "/b/%2e%2e/x", "/b/%2E%2E/x", "/b/%2e%2E/x", "/b/x%2F..%2Fy", "/b/%2e/x", "/b/%2E", "/b/..", "/b/x/%2e%2e"];
  for (const raw of traversal) {
    test(`rejects the dot segment in ${raw} with 400 InvalidPath`, () => {
      const e = invalid(raw);
      expect(e.status).toBe(400);
      expect(e.code).toBe("InvalidPath");
    });
  }

  test("a dot inside a name is not a traversal segment", () => {
    expect(normalizePath("/b/..x/a.b/.hidden")).toBe("/b/..x/a.b/.hidden");
  });

  for (const raw of ["/b/a%00b", "/b/%00", "/b/a/%00/b"]) {
    test(`rejects the NUL in ${raw} with 400 InvalidPath`, () => {
      const e = invalid(raw);
      expect(e.status).toBe(400);
      expect(e.code).toBe("InvalidPath");
      expect(e.message).toBe("The path contains a NUL character");
    });
  }

  // (key characters in S3, served on the S3 front: until 2026-12-07 this front refused them)
  test("the other control characters are key characters", () => {
    for (const c of ["\x01", "\n", "\r", "\t", "\x1f", "\x7f"]) expect(normalizePath(`/b/a${encodeURIComponent(c)}b`)).toBe(`/b/a${c}b`);
  });

  for (const raw of ["/b/%zz", "/b/%", "/b/%E6%97"]) {
    test(`rejects the malformed escape in ${raw} with 400 InvalidPath`, () => {
      const e = invalid(raw);
      expect(e.status).toBe(400);
      expect(e.message).toBe("The path contains a malformed percent-encoding");
    });
  }
});

describe("Router", () => {
  const r = new Router([
    { prefix: "/products", bucket: "products" },
    { prefix: "/products/images", bucket: "images" },
    { prefix: "/a/b/c", bucket: "deep" },
  ]);

  test("the longest matching prefix wins", () => {
    expect(r.match("/products/images/cat.png")).toEqual({ bucket: "images", key: "cat.png", path: "/products/images/cat.png" });
    expect(r.match("/products/imagesX/cat.png")).toEqual({ bucket: "products", key: "imagesX/cat.png", path: "/products/imagesX/cat.png" });
    expect(r.match("/products/x/images/y")?.bucket).toBe("products");
  });

  test("prefixes match on segment boundaries: /productsX is not /products", () => {
    expect(r.match("/productsX/a")).toBeUndefined();
    expect(r.match("/productsX")).toBeUndefined();
  });

  test("the key is everything after the prefix, nested folders kept", () => {
    expect(r.match("/a/b/c/d/e.txt")).toMatchObject({ bucket: "deep", key: "d/e.txt" });
  });

  test("the bare prefix routes to the bucket with an empty key", () => {
    expect(r.match("/products")).toMatchObject({ bucket: "products", key: "" });
  });

  test("a path shallower than a deep prefix does not match it", () => {
    expect(r.match("/a/b")).toBeUndefined();
  });

  test("an unmapped path is undefined (the pipeline answers 404)", () => {
    expect(r.match("/nothing/here")).toBeUndefined();
    expect(r.match("/")).toBeUndefined();
  });

  test("a decoded key with spaces and unicode routes unchanged", () => {
    expect(r.match(normalizePath("/products/%E6%97%A5%E6%9C%AC%20x.txt"))).toMatchObject({ bucket: "products", key: "日本 x.txt" });
  });

  test("duplicate slashes are collapsed before routing", () => {
    expect(r.match(normalizePath("//products//images//cat.png"))).toMatchObject({ bucket: "images", key: "cat.png" });
  });

  test("a root prefix / catches what nothing else matches", () => {
    const root = new Router([{ prefix: "/", bucket: "root" }, { prefix: "/x", bucket: "x" }]);
    expect(root.match("/x/k")).toMatchObject({ bucket: "x", key: "k" });
    expect(root.match("/y/k")).toMatchObject({ bucket: "root", key: "y/k" });
  });

  test("a 100-bucket router routes every bucket and its nested prefixes correctly", () => {
    const entries: Array<{ prefix: string; bucket: string }> = [];
    for (let i = 0; i < 100; i++) {
      entries.push({ prefix: `/b${i}`, bucket: `b${i}` });
      if (i % 10 === 0) entries.push({ prefix: `/b${i}/sub/deeper`, bucket: `b${i}-deep` });
    }
    const big = new Router(entries);
    for (let i = 0; i < 100; i++) {
      expect(big.match(`/b${i}/k/${i}`)).toEqual({ bucket: `b${i}`, key: `k/${i}`, path: `/b${i}/k/${i}` });
      expect(big.match(`/b${i}/sub/deeper/k`)?.bucket).toBe(i % 10 === 0 ? `b${i}-deep` : `b${i}`);
      expect(big.match(`/b${i}x/k`)).toBeUndefined();
    }
    expect(big.match("/b100/k")).toBeUndefined();
  });
});
