import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/config/load.ts";
import { fetchConcurrencyWarning, upstreamClientFor } from "../../src/s3/upstream.ts";

const config = (server: string) =>
  parseConfig(
    `server: { ${server} }
buckets:
  - { name: minio, path_prefix: /m, s3: { bucket: data, endpoint: "http://minio:9000" } }
  - { name: aws, path_prefix: /a, s3: { bucket: data, region: eu-west-1 } }
  - { name: r2, path_prefix: /r, s3: { bucket: data, endpoint: "https://acct.r2.cloudflarestorage.com" } }
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
});
