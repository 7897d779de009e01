import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { parseConfig } from "../../src/config/load.ts";
import { ProxyError } from "../../src/errors.ts";
import { UpstreamPools } from "../../src/s3/http1/index.ts";
import { BucketUpstream, connectTimeoutNote, fetchConcurrencyWarning, isResendable, upstreamClientFor } from "../../src/s3/upstream.ts";
import { blackHole, blackHoleSupported } from "../helpers/blackhole.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const config = (server: string, extra = "") =>
  parseConfig(
    `server: { ${server} }
buckets:
  - { name: minio, path_prefix: /m, s3: { bucket: data, endpoint: "http://minio:9000"${extra} } }
  - { name: aws, path_prefix: /a, s3: { bucket: data, region: eu-west-1${extra} } }
  - { name: r2, path_prefix: /r, s3: { bucket: data, endpoint: "https://acct.r2.cloudflarestorage.com"${extra} } }
`,
    { env: {} },
  );

describe("upstream client choice", () => {
  test("auto: the own client for plain http only; AWS (no endpoint) and https endpoints use fetch", () => {
    const c = config("upstream_client: auto");
    expect(c.buckets.map((b) => upstreamClientFor(b, "auto"))).toEqual(["native", "fetch", "fetch"]);
    expect(c.buckets.map((b) => upstreamClientFor(b, "fetch"))).toEqual(["fetch", "fetch", "fetch"]);
  });

  test("the fetch concurrency warning names the fetch buckets, and only when it can matter", () => {
    const c = config("max_concurrent_requests: 1000");
    const w = fetchConcurrencyWarning(c.buckets, "auto", 1000, {});
    expect(w).toContain("buckets aws, r2 reach S3 through fetch");
    expect(w).toContain("BUN_CONFIG_MAX_HTTP_REQUESTS=1000");
    expect(fetchConcurrencyWarning(c.buckets, "auto", 1000, { BUN_CONFIG_MAX_HTTP_REQUESTS: "1024" })).toBeUndefined();
    expect(fetchConcurrencyWarning(c.buckets, "auto", 256, {})).toBeUndefined();
    expect(fetchConcurrencyWarning(c.buckets.slice(0, 1), "auto", 1000, {})).toBeUndefined();
    expect(fetchConcurrencyWarning(c.buckets.slice(0, 1), "fetch", 1000, {})).toContain("buckets minio");
  });

  test("the connect-timeout note names the fetch buckets whose connect_timeout is below their timeout", () => {
    // A config that never sets connect_timeout: nothing to say (it named every https bucket, 5 s → 20 s).
    expect(connectTimeoutNote(config("").buckets, "auto")).toBeUndefined();
    expect(connectTimeoutNote(config("").buckets, "fetch")).toBeUndefined();
    const c = config("", ", connect_timeout: 5");
    const note = connectTimeoutNote(c.buckets, "auto");
    expect(note).toContain("s3.connect_timeout is not enforced for buckets that reach S3 through fetch");
    expect(note).toContain("aws (5 s → 20 s), r2 (5 s → 20 s)");
    expect(note).not.toContain("minio");
    expect(connectTimeoutNote(c.buckets, "fetch")).toContain("minio (5 s → 20 s), aws");
    // The own client enforces it: nothing to say.
    expect(connectTimeoutNote(c.buckets.slice(0, 1), "auto")).toBeUndefined();
    // connect_timeout >= timeout: the timeout bounds connecting anyway, nothing is lost.
    expect(connectTimeoutNote(config("", ", timeout: 3, connect_timeout: 3").buckets, "fetch")).toBeUndefined();
    // Replicas: each endpoint with its own timeouts (an https secondary of an http primary is named; its own timeout shown)
    const replicated = parseConfig(
      `buckets:\n  - name: p\n    path_prefix: /p\n    s3:\n      replicas:\n        - { name: primary, bucket: p1, region: us-east-1, endpoint: "http://127.0.0.1:9000", priority: 1 }\n        - { name: secondary, bucket: p2, region: us-west-2, endpoint: "https://s3.us-west-2.amazonaws.com", priority: 2, timeout: 10, connect_timeout: 2 }\n`,
      { env: {} },
    );
    expect(connectTimeoutNote(replicated.buckets, "auto")).toContain("p/secondary (2 s → 10 s)");
    expect(connectTimeoutNote(replicated.buckets, "auto")).not.toContain("p/primary");
  });
});

describe("resending after an unknown outcome", () => {
  test("idempotent requests are; a conditional one is not (If-Match / If-None-Match, a DeleteObjects with <ETag>s)", () => {
    expect(isResendable("DELETE", undefined, {})).toBe(true);
    expect(isResendable("DELETE", undefined, { "if-match": '"e"' })).toBe(false);
    expect(isResendable("GET", undefined, { "if-match": '"e"' })).toBe(true);
    expect(isResendable("POST", [["delete", ""]], {})).toBe(true);
    expect(isResendable("POST", [["delete", ""]], {}, true)).toBe(false);
    expect(isResendable("POST", [["uploads", ""]], {})).toBe(false);
  });
});

describe.skipIf(!blackHoleSupported)("s3.connect_timeout on the own client", () => {
  const bucketAt = (port: number, retry: string) =>
    parseConfig(
      `buckets:\n  - { name: hole, path_prefix: /h, s3: { bucket: hole-bucket, endpoint: "http://127.0.0.1:${port}", timeout: 10, connect_timeout: 0.3, retry: ${retry} } }\n`,
      { env: {} },
    ).buckets[0];

  test("a black-holed connect is retried like a connect error, then answers 504 GatewayTimeout", async () => {
    using hole = await blackHole();
    const pools = new UpstreamPools();
    try {
      const up = new BucketUpstream(bucketAt(hole.port, "{ max_attempts: 2, initial_backoff_ms: 1, max_backoff_ms: 1 }"), { client: "auto", pools });
      expect(up.pool).toBeDefined();
      const timing = { upstreamMs: 0, attempts: 0 };
      const t0 = performance.now();
      const err = await up.fetchObject("GET", "k", {}, new AbortController().signal, timing).then(
        () => undefined,
        (e: unknown) => e,
      );
      const took = performance.now() - t0;
      expect(err).toBeInstanceOf(ProxyError);
      expect((err as ProxyError).code).toBe("GatewayTimeout");
      expect((err as ProxyError).status).toBe(504);
      expect(timing.attempts).toBe(2);
      expect(took).toBeGreaterThanOrEqual(2 * 290);
      expect(took).toBeLessThan(2 * 300 + 1500); // two connect timeouts, not s3.timeout (10 s)
    } finally {
      pools.close();
    }
  });

  test("the readiness probe reports a connect timeout as such", async () => {
    using hole = await blackHole();
    const pools = new UpstreamPools();
    try {
      const up = new BucketUpstream(bucketAt(hole.port, "{ max_attempts: 1 }"), { client: "auto", pools });
      expect(await up.probe(5000)).toEqual({ ok: false, reason: "upstream did not accept the connection in time" });
    } finally {
      pools.close();
    }
  });
});
