import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { Authenticator } from "../../src/auth/index.ts";
import type { TokenSource } from "../../src/config/schema.ts";
import { jwtConfig } from "../fixtures/jwt.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const auth = (token_sources: TokenSource[]) => Authenticator.create(jwtConfig({ secret: "s", token_sources }));
const url = (q = "") => new URL(`http://proxy.local/bucket/key.txt${q}`);

describe("bearer", () => {
  test("scheme is case-insensitive, surrounding space trimmed", async () => {
    const a = await auth([{ type: "bearer" }]);
    for (const v of ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR   abc  "])
      expect(a.extract(new Headers({ authorization: v }), url())).toEqual({ token: "abc", source: { type: "bearer" } });
  });
  test("missing, empty, other schemes → no token", async () => {
    const a = await auth([{ type: "bearer" }]);
    expect(a.extract(new Headers(), url())).toBeNull();
    for (const v of ["", "Bearer", "Bearer ", "Bearer    ", "Basic abc", "Bearerabc", "Token abc"])
      expect(a.extract(new Headers({ authorization: v }), url())).toBeNull();
  });
});

describe("header", () => {
  test("plain custom header", async () => {
    const a = await auth([{ type: "header", name: "X-Auth-Token" }]);
    expect(a.extract(new Headers({ "x-auth-token": " abc " }), url())?.token).toBe("abc");
    expect(a.extract(new Headers({ "x-auth-token": "" }), url())).toBeNull();
    expect(a.extract(new Headers({ authorization: "Bearer abc" }), url())).toBeNull();
  });
  test("prefix is stripped (case-insensitive); absent prefix → no token", async () => {
    const a = await auth([{ type: "header", name: "X-Token", prefix: "Token " }]);
    expect(a.extract(new Headers({ "x-token": "Token abc" }), url())?.token).toBe("abc");
    expect(a.extract(new Headers({ "x-token": "token abc" }), url())?.token).toBe("abc");
    expect(a.extract(new Headers({ "x-token": "abc" }), url())).toBeNull();
    expect(a.extract(new Headers({ "x-token": "Token " }), url())).toBeNull();
    expect(a.extract(new Headers({ "x-token": "Tok" }), url())).toBeNull();
  });
});

describe("query", () => {
  test("named param, decoded; first of repeated params wins", async () => {
    const a = await auth([{ type: "query", name: "token" }]);
    expect(a.extract(new Headers(), url("?token=abc"))?.token).toBe("abc");
    expect(a.extract(new Headers(), url("?x=1&token=a%2Eb&y=2"))?.token).toBe("a.b");
    expect(a.extract(new Headers(), url("?token=first&token=second"))?.token).toBe("first");
  });
  test("missing or empty → no token", async () => {
    const a = await auth([{ type: "query", name: "token" }]);
    expect(a.extract(new Headers(), url())).toBeNull();
    expect(a.extract(new Headers(), url("?tokens=abc"))).toBeNull();
    expect(a.extract(new Headers(), url("?token="))).toBeNull();
    expect(a.extract(new Headers(), url("?token"))).toBeNull();
    expect(a.extract(new Headers(), url("?token=&token=abc"))).toBeNull(); // the first one decides
  });
});

test("sources are tried in order; the first present token wins", async () => {
  const a = await auth([{ type: "header", name: "X-Token" }, { type: "query", name: "jwt" }, { type: "bearer" }]);
  const h = new Headers({ authorization: "Bearer from-bearer" });
  expect(a.extract(h, url("?jwt=from-query"))).toEqual({ token: "from-query", source: { type: "query", name: "jwt" } });
  expect(a.extract(h, url())).toEqual({ token: "from-bearer", source: { type: "bearer" } });
  h.set("x-token", "from-header");
  expect(a.extract(h, url("?jwt=from-query"))?.token).toBe("from-header");
});
