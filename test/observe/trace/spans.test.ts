/**
 * The spans each component makes, captured from a recording parent (no exporter): failover
 * between replicas, an OpenFGA call (its traceparent, never its API token), lookups in a tiered
 * cache with a slower (asynchronous) lower layer.
 */
import { afterAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { createAuthorizer } from "../../../src/authz/index.ts";
import { Cache } from "../../../src/cache/cache.ts";
import { MemoryLayer } from "../../../src/cache/memory.ts";
import type { CachedObject, CacheLayer } from "../../../src/cache/types.ts";
import { AuthorizationSchema } from "../../../src/config/schema.ts";
import { parseConfig } from "../../../src/config/load.ts";
import { errorType } from "../../../src/observe/trace/client.ts";
import { Span, SpanKind } from "../../../src/observe/trace/span.ts";
import { UpstreamTimeoutError } from "../../../src/s3/http1/errors.ts";
import { buildUpstream } from "../../../src/s3/replicas.ts";
import { OpenFgaServer } from "../../fixtures/openfga.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";

function capture() {
  const spans: Span[] = [];
  const root = new Span({ add: (s) => void spans.push(s) }, TRACE, "1111111111111111", undefined, undefined, "GET", SpanKind.SERVER, performance.now());
  return { spans, root };
}

describe("failover", () => {
  test("each replica asked is a client span of its own, with its address: the refused primary, then the secondary", async () => {
    const seen: Array<{ host: string; traceparent: string | null }> = [];
    const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
      const url = new URL(String(input));
      seen.push({ host: url.hostname, traceparent: new Headers(init?.headers).get("traceparent") });
      if (url.hostname === "primary.test") throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
      return new Response("ok", { status: 200 });
    }) as typeof fetch;
    const cfg = parseConfig(
      `buckets:
  - name: products
    path_prefix: /products
    s3: { retry: { max_attempts: 2, initial_backoff_ms: 1, max_backoff_ms: 1 }, replicas: [
        { name: primary, bucket: b-primary, endpoint: "http://primary.test:9000", access_key: AK0, secret_key: SK0, priority: 10 },
        { name: secondary, bucket: b-secondary, endpoint: "http://secondary.test:9001", access_key: AK1, secret_key: SK1, priority: 20 } ] }
`,
      { env: {} },
    ).buckets[0];
    const upstream = buildUpstream(cfg, { fetch: fetchImpl });
    const { spans, root } = capture();
    const res = await upstream.fetchObject("GET", "dir/k.txt", {}, new AbortController().signal, { upstreamMs: 0, attempts: 0, trace: root });
    expect(res.status).toBe(200);
    expect(spans.map((s) => [s.attrs["server.address"], s.attrs["server.port"], s.attrs["aws.s3.bucket"], s.attrs["error.type"] ?? s.attrs["http.response.status_code"]])).toEqual([
      ["primary.test", 9000, "b-primary", "ECONNREFUSED"],
      ["secondary.test", 9001, "b-secondary", 200],
    ]);
    expect(spans.every((s) => s.parentSpanId === root.spanId && s.kind === SpanKind.CLIENT)).toBe(true);
    expect(seen.map((s) => s.traceparent)).toEqual(spans.map((s) => `00-${TRACE}-${s.spanId}-01`));
  });
});

describe("OpenFGA", () => {
  const fga = OpenFgaServer.start({ apiToken: "fga-api-token-secret-42", tuples: [{ user: "user:alice", relation: "viewer", object: "file:b/k.txt" }] });
  afterAll(() => fga.close());

  test("a check is a client span under the request's, sent traceparent, and records no API token", async () => {
    const authz = createAuthorizer(AuthorizationSchema.parse({ type: "openfga", openfga_endpoint: fga.url, openfga_store_id: fga.storeId, openfga_api_token: "fga-api-token-secret-42", openfga_cache_ttl_seconds: 0, openfga_timeout_ms: 5000 }));
    const { spans, root } = capture();
    const input = { claims: { sub: "alice" }, principal: "jwt" as const, bucket: "b", key: "k.txt", path: "/b/k.txt", method: "GET", action: "s3:GetObject", clientIp: "10.0.0.1", trace: root };
    expect(await authz.authorize(input)).toBe(true);
    expect(await authz.authorize({ ...input, claims: { sub: "mallory" } })).toBe(false);
    expect(spans).toHaveLength(2);
    expect(spans[0]).toMatchObject({ name: "POST /stores/{store_id}/check", parentSpanId: root.spanId, attrs: { "http.response.status_code": 200, "yatagarasu.authz.decision": "allow" } });
    expect(spans[1].attrs["yatagarasu.authz.decision"]).toBe("deny");
    expect(fga.requests.map((r) => r.headers.get("traceparent"))).toEqual(spans.map((s) => `00-${TRACE}-${s.spanId}-01`));
    expect(JSON.stringify(spans.map((s) => s.attrs))).not.toContain("fga-api-token-secret-42");
    // The trace is not part of what OpenFGA is asked.
    expect(JSON.stringify(fga.requests.map((r) => r.body))).not.toContain(TRACE);
  });

  test("an unreachable OpenFGA: the span fails with the error's class, the fail mode decides", async () => {
    const dead = Bun.serve({ port: 0, fetch: () => new Response() });
    const url = `http://127.0.0.1:${dead.port}`;
    dead.stop(true);
    const authz = createAuthorizer(AuthorizationSchema.parse({ type: "openfga", openfga_endpoint: url, openfga_store_id: "s", openfga_fail_mode: "open", openfga_cache_ttl_seconds: 0 }));
    const { spans, root } = capture();
    expect(await authz.authorize({ claims: { sub: "alice" }, principal: "jwt", bucket: "b", key: "k", path: "/b/k", method: "GET", clientIp: "1.2.3.4", trace: root })).toBe(true);
    expect(spans[0]).toMatchObject({ status: 2, attrs: { "yatagarasu.authz.decision": "fail_open" } });
    expect(spans[0].attrs["error.type"]).toBeString();
  });
});

describe("error.type", () => {
  test("the error's code, else its name: never a class name the compiled binary minified, never a message", () => {
    // What the binary's minifier makes of an error class: constructor.name "Re", the name it sets kept.
    const Re = class extends Error {
      constructor() {
        super("upstream 10.0.0.5 secret-ish message");
        this.name = "UpstreamProtocolError";
      }
    };
    expect(new Re().constructor.name).toBe("Re");
    expect(errorType(new Re())).toBe("UpstreamProtocolError");
    expect(errorType(Object.assign(new Error("connect failed"), { code: "ECONNREFUSED" }))).toBe("ECONNREFUSED");
    expect(errorType(new UpstreamTimeoutError("stalled"))).toBe("UpstreamTimeoutError");
    expect(errorType(new DOMException("gone", "AbortError"))).toBe("AbortError");
    expect(errorType(new TypeError("x"))).toBe("TypeError");
    expect(errorType(new Error("with a message"))).toBe("Error");
    expect(errorType({ name: "NotAnError" })).toBe("_OTHER");
    expect(errorType("a string")).toBe("_OTHER");
    expect(errorType(Object.assign(new Error("m"), { name: "has a space in it" }))).toBe("_OTHER");
  });
});

describe("cache layers", () => {
  const obj = (key: string): CachedObject => ({ key, body: new Blob(["x"]), headers: { "content-length": "1" }, storedAt: Date.now(), expiresAt: Date.now() + 60_000, size: 1 });
  /** A slower layer answering asynchronously (as Redis does). */
  function slowLayer(held: Map<string, CachedObject>): CacheLayer {
    return {
      name: "redis",
      get: async (k) => held.get(k),
      put: (o) => void held.set(o.key, o),
      delete: (k) => held.delete(k),
      purgePrefix: () => 0,
      stats: () => ({ items: held.size, bytes: 0, evictions: 0, maxBytes: 0, buckets: {} }),
    };
  }

  test("a miss in memory then a hit in the lower layer: one span per layer asked, in order; a memory hit asks memory only", async () => {
    const lower = new Map([["b/k", obj("b/k")]]);
    const cache = new Cache([new MemoryLayer(1 << 20, 1 << 20), slowLayer(lower)]);
    const { spans, root } = capture();
    expect(await cache.get("b/k", root)).toBeDefined();
    expect(spans.map((s) => [s.name, s.attrs["yatagarasu.cache.result"]])).toEqual([
      ["cache lookup memory", "miss"],
      ["cache lookup redis", "hit"],
    ]);
    expect(spans.every((s) => s.parentSpanId === root.spanId && s.kind === SpanKind.INTERNAL)).toBe(true);
    // Once in memory, the lookup stops there, and stays synchronous (no promise for a memory hit).
    const again = capture();
    cache.put(obj("b/k"));
    const found = cache.get("b/k", again.root);
    expect(found).toBeDefined();
    expect(found).not.toBeInstanceOf(Promise);
    expect(again.spans.map((s) => [s.name, s.attrs["yatagarasu.cache.result"]])).toEqual([["cache lookup memory", "hit"]]);
    // Untraced lookups make no spans.
    const before = spans.length;
    cache.get("b/other");
    expect(spans.length).toBe(before);
  });
});
