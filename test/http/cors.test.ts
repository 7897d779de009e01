/** The CORS decisions as pure functions (src/http/cors.ts). */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { CorsSchema, type CorsConfig } from "../../src/config/cors.ts";
import { corsPhase, isPreflight, originAllowed, preflight, requestedHeaders, withCorsHeaders } from "../../src/http/cors.ts";
import type { RequestContext } from "../../src/proxy/context.ts";
import type { Front } from "../../src/proxy/runner.ts";
import type { Runtime } from "../../src/runtime.ts";
import { cellsPerCall } from "../helpers/alloc.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const cfg = (c: Partial<CorsConfig> & { allowed_origins: string[] }): CorsConfig => CorsSchema.parse(c);
const app = cfg({ allowed_origins: ["https://app.example.com"], allowed_methods: ["GET", "PUT"], allowed_headers: ["authorization", "content-type"], max_age: 300 });

describe("preflight", () => {
  test("an allowed origin, method and headers: the Allow headers, the requested headers echoed, Vary", () => {
    expect(preflight(app, "https://app.example.com", "PUT", "Content-Type, authorization")).toEqual({
      ok: true,
      headers: {
        "access-control-allow-origin": "https://app.example.com",
        "access-control-allow-methods": "GET, PUT",
        "access-control-allow-headers": "content-type, authorization",
        "access-control-max-age": "300",
        vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        "access-control-allow-credentials": "true",
      },
    });
  });

  test("anything not configured is refused, with the reason", () => {
    expect(preflight(app, "https://evil.example.com", "GET", null)).toEqual({ ok: false, reason: "the origin is not allowed" });
    expect(preflight(app, "https://app.example.com:444", "GET", null)).toEqual({ ok: false, reason: "the origin is not allowed" });
    expect(preflight(app, "http://app.example.com", "GET", null)).toEqual({ ok: false, reason: "the origin is not allowed" });
    expect(preflight(app, "https://app.example.com", "DELETE", null)).toEqual({ ok: false, reason: "the method DELETE is not allowed" });
    expect(preflight(app, "https://app.example.com", "PUT", "content-type, x-amz-meta-a")).toEqual({ ok: false, reason: "the header x-amz-meta-a is not allowed" });
    expect(preflight(app, "null", "GET", null)).toEqual({ ok: false, reason: "the origin is not allowed" });
  });

  test('"*" origins and headers allow any, and the origin is still echoed (never a literal *)', () => {
    const any = cfg({ allowed_origins: ["*"], allowed_headers: ["*"] });
    const r = preflight(any, "http://localhost:3000", "GET", "x-anything");
    expect(r.ok && r.headers["access-control-allow-origin"]).toBe("http://localhost:3000");
    expect(r.ok && r.headers["access-control-allow-headers"]).toBe("x-anything");
    // (S3 answers a "*" rule without Access-Control-Allow-Credentials)
    expect(r.ok && r.headers["access-control-allow-credentials"]).toBeUndefined();
    expect(withCorsHeaders(new Response("x"), any, "http://localhost:3000", "GET").headers.get("access-control-allow-credentials")).toBeNull();
    expect(originAllowed(any, "https://whatever.example")).toBe(true);
  });

  test('patterns with one "*", as S3 takes them: origins (a host label or a port) and header names (x-amz-*)', () => {
    const c = cfg({ allowed_origins: ["https://*.example.com", "http://localhost:*"], allowed_methods: ["GET", "PUT"], allowed_headers: ["x-amz-*", "content-type", "amz-sdk-*"] });
    expect(originAllowed(c, "https://app.example.com")).toBe(true);
    expect(originAllowed(c, "https://a.b.example.com")).toBe(true);
    expect(originAllowed(c, "http://localhost:5173")).toBe(true);
    expect(originAllowed(c, "https://example.com")).toBe(false);
    expect(originAllowed(c, "https://evil-example.com")).toBe(false);
    expect(originAllowed(c, "http://app.example.com")).toBe(false);
    expect(originAllowed(c, "http://localhost")).toBe(false);
    const r = preflight(c, "https://app.example.com", "PUT", "x-amz-date, x-amz-content-sha256, amz-sdk-request, content-type");
    expect(r.ok).toBe(true);
    expect(preflight(c, "https://app.example.com", "PUT", "x-amz-date, authorization")).toEqual({ ok: false, reason: "the header authorization is not allowed" });
    expect(preflight(c, "https://app.example.com", "PUT", "x-amz-")).toEqual({ ok: false, reason: "the header x-amz- is not allowed" });
  });

  test("a pattern with two \"*\", or one that is not an origin around its \"*\", is refused at load", () => {
    for (const bad of ["https://*.*.example.com", "*.example.com", "https://example.com/*", "https://*"]) {
      const r = CorsSchema.safeParse({ allowed_origins: [bad] });
      expect([bad, r.success]).toEqual([bad, bad === "https://*"]);
    }
    expect(CorsSchema.safeParse({ allowed_origins: ["*"], allowed_headers: ["x-*-*"] }).success).toBe(false);
    expect(CorsSchema.safeParse({ allowed_origins: ["*"], expose_headers: ["x-amz-*"] }).success).toBe(false);
  });

  test("an origin with a port (the scheme's default, out of range, leading zero) or an IPv6 host no browser sends that way is refused at load, saying what to write", () => {
    // A browser serializes https://app.example.com:443 as https://app.example.com, and an IPv6 host
    // as the URL standard writes it (http://[::1]:3000): such an entry passed --check and never matched.
    for (const [bad, says] of [
      ["http://[0:0:0:0:0:0:0:1]:3000", 'a browser sends this origin as "http://[::1]:3000" (an IPv6 address as URLs write it): list it so'],
      ["http://[::FFFF:127.0.0.1]", 'a browser sends this origin as "http://[::ffff:7f00:1]" (an IPv6 address as URLs write it): list it so'],
      ["https://[2001:db8:0:0:1:0:0:1]", 'a browser sends this origin as "https://[2001:db8::1:0:0:1]" (an IPv6 address as URLs write it): list it so'],
      ["http://[0::1]:*", 'a browser sends this origin as "http://[::1]:*" (an IPv6 address as URLs write it): list it so'],
      ["http://[1::2::3]:3000", "[1::2::3] is not an IPv6 address"],
      ["https://app.example.com:443", 'list the origin without ":443"'],
      ["http://localhost:80", 'list the origin without ":80"'],
      ["https://*.example.com:443", 'list the origin without ":443"'],
      ["http://localhost:99999", "a port is 1-65535"],
      ["http://localhost:0", "a port is 1-65535"],
      ["http://localhost:03000", "write :3000"],
    ] as const) {
      const r = CorsSchema.safeParse({ allowed_origins: [bad] });
      expect([bad, r.success]).toEqual([bad, false]);
      expect(r.error?.issues.map((i) => i.message).join("; ")).toContain(says);
    }
    for (const ok of ["https://app.example.com:8443", "http://localhost:3000", "http://[::1]:3000", "http://[::1]", "http://localhost:*", "https://app.example.com", "https://[2001:db8::1]", "http://[::ffff:7f00:1]:8080", "http://[::1]:*", "HTTP://[2001:DB8::A]"]) {
      expect([ok, CorsSchema.safeParse({ allowed_origins: [ok] }).success]).toEqual([ok, true]);
    }
    expect(originAllowed(cfg({ allowed_origins: ["http://[2001:DB8::A]:3000"] }), "http://[2001:db8::a]:3000")).toBe(true);
  });

  test("a method listed twice (in any case) is allowed once, not repeated in Access-Control-Allow-Methods", () => {
    const r = preflight(CorsSchema.parse({ allowed_origins: ["*"], allowed_methods: ["GET", "get", "PUT", "GET"] }), "https://a.example", "PUT", null);
    expect(r.ok && r.headers["access-control-allow-methods"]).toBe("GET, PUT");
  });

  test("origins compare case-insensitively in scheme and host (browsers send them lower-case anyway)", () => {
    expect(originAllowed(app, "HTTPS://APP.EXAMPLE.COM")).toBe(true);
  });

  test("requestedHeaders splits, trims and lower-cases; isPreflight needs OPTIONS and the request method", () => {
    expect(requestedHeaders(" A, b ,,C ")).toEqual(["a", "b", "c"]);
    expect(requestedHeaders(null)).toEqual([]);
    expect(isPreflight("OPTIONS", new Headers({ "access-control-request-method": "PUT" }))).toBe(true);
    expect(isPreflight("OPTIONS", new Headers())).toBe(false);
    expect(isPreflight("GET", new Headers({ "access-control-request-method": "PUT" }))).toBe(false);
  });
});

describe("withCorsHeaders", () => {
  test("an allowed origin gets Allow-Origin, Expose-Headers and Vary: Origin added to an existing Vary", () => {
    const res = withCorsHeaders(new Response("x", { headers: { vary: "Accept" } }), app, "https://app.example.com", "GET");
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(res.headers.get("access-control-expose-headers")).toBe("etag, x-amz-checksum-crc32, x-amz-checksum-crc32c, x-amz-checksum-crc64nvme, x-amz-checksum-sha1, x-amz-checksum-sha256, x-amz-checksum-type, x-amz-version-id, content-range, accept-ranges");
    expect(res.headers.get("vary")).toBe("Accept, Origin");
    // (as S3 answers a listed origin: a page fetching with credentials: "include" is not refused)
    expect(res.headers.get("access-control-allow-credentials")).toBe("true");
  });

  test("another origin gets only Vary: Origin (no CORS grant)", () => {
    const res = withCorsHeaders(new Response("x"), app, "https://evil.example.com", "GET");
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect(res.headers.get("vary")).toBe("Origin");
  });

  test("a method the rules do not allow gets no grant on an actual request either (as S3 matches AllowedMethod), only Vary: Origin", () => {
    for (const m of ["POST", "DELETE", "OPTIONS"]) {
      const res = withCorsHeaders(new Response("x", { status: 405 }), app, "https://app.example.com", m);
      expect([m, res.headers.get("access-control-allow-origin"), res.headers.get("vary")]).toEqual([m, null, "Origin"]);
    }
    expect(withCorsHeaders(new Response("x"), app, "https://app.example.com", "PUT").headers.get("access-control-allow-origin")).toBe("https://app.example.com");
  });

  test("a Vary that already names Origin is kept as it is", () => {
    const res = withCorsHeaders(new Response("x", { headers: { vary: "origin, Accept" } }), app, "https://app.example.com", "GET");
    expect(res.headers.get("vary")).toBe("origin, Accept");
  });

  test("a Response with immutable headers is copied, body and status kept", async () => {
    const upstream = await fetch("data:text/plain,hello");
    const res = withCorsHeaders(upstream, app, "https://app.example.com", "GET");
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(await res.text()).toBe("hello");
  });
});

describe("corsPhase: objects per request", () => {
  test("a request without Origin, no bucket with CORS: the phase passes it on without allocating its scope (it did on every request of both fronts)", async () => {
    const front: Front = { name: "t", phases: [], renderError: () => new Response(null, { status: 500 }) };
    const phase = corsPhase(() => front, () => undefined);
    const ctx = { req: new Request("http://proxy.test/b/k"), method: "GET", rt: { buckets: new Map(), config: {} } as unknown as Runtime } as unknown as RequestContext;
    expect(phase(ctx)).toBeUndefined();
    // (2 scopes before: the decorating closure's captures made the phase allocate its own at entry)
    expect((await cellsPerCall(() => phase(ctx))).JSLexicalEnvironment ?? 0).toBeLessThan(0.5);
  });
});
