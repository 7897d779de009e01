/**
 * The config keys of plain-front uploads and browser access: buckets[].cors, auth.write_claims,
 * auth.anonymous_writes, authorization.openfga_write_relation, s3_api.public_url and
 * s3_api.presign_max_seconds. Every mistake names its YAML path.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { ConfigError, parseConfig, type ConfigIssue } from "../../src/config/load.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const JWT = `jwt: { enabled: true, algorithm: HS256, secret: "0123456789abcdef0123456789abcdef" }\n`;
const yaml = (bucketExtra: string, top = "") => `${JWT}buckets:
  - name: b
    path_prefix: /b
    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }
${bucketExtra}${top}`;

function issues(y: string): Array<Pick<ConfigIssue, "path" | "message">> {
  try {
    parseConfig(y, { env: {} });
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map(({ path, message }) => ({ path, message }));
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("buckets[].cors", () => {
  test("defaults and normalization: origins and header names lower-case, methods upper-case, ETag and the checksums exposed, max_age 600", () => {
    const c = parseConfig(yaml("    cors: { allowed_origins: [HTTPS://App.Example.com:8443], allowed_methods: [get, put], allowed_headers: [Authorization] }\n"), { env: {} });
    expect(c.buckets[0]!.cors).toEqual({
      allowed_origins: ["https://app.example.com:8443"],
      allowed_methods: ["GET", "PUT"],
      allowed_headers: ["authorization"],
      expose_headers: ["etag", "x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-crc64nvme", "x-amz-checksum-sha1", "x-amz-checksum-sha256", "x-amz-checksum-type", "x-amz-version-id", "content-range", "accept-ranges"],
      max_age: 600,
    });
    expect(parseConfig(yaml(""), { env: {} }).buckets[0]!.cors).toBeUndefined();
  });

  test("bad values name their path", () => {
    expect(issues(yaml("    cors: { allowed_origins: [https://app.example.com/path] }\n"))).toEqual([
      { path: "buckets[0].cors.allowed_origins[0]", message: 'must be an origin such as "https://app.example.com" (scheme, host and optional port; no path), a pattern with one "*" such as "https://*.example.com", or "*"' },
    ]);
    expect(issues(yaml('    cors: { allowed_origins: ["*", https://a.example] }\n'))).toEqual([
      { path: "buckets[0].cors.allowed_origins", message: '"*" allows every origin: list it alone' },
    ]);
    expect(issues(yaml("    cors: { allowed_origins: [] }\n"))).toEqual([{ path: "buckets[0].cors.allowed_origins", message: "list at least one origin" }]);
    expect(issues(yaml("    cors: { allowed_origins: [https://a.example], allowed_methods: [PATCH] }\n"))[0]).toEqual({
      path: "buckets[0].cors.allowed_methods[0]",
      message: 'unknown method, got "PATCH"; use GET, HEAD, PUT, POST, DELETE',
    });
    expect(issues(yaml('    cors: { allowed_origins: [https://a.example], allowed_headers: ["bad header"] }\n'))[0]!.path).toBe("buckets[0].cors.allowed_headers[0]");
    expect(issues(yaml('    cors: { allowed_origins: [https://a.example], expose_headers: ["*"] }\n'))[0]!.path).toBe("buckets[0].cors.expose_headers[0]");
    expect(issues(yaml("    cors: { allowed_origins: [https://a.example], max_age: 100000 }\n"))[0]!.path).toBe("buckets[0].cors.max_age");
    expect(issues(yaml("    cors: { allowed_origins: [https://a.example], credentials: true }\n"))[0]!.path).toBe("buckets[0].cors.credentials");
  });
});

describe("write keys", () => {
  test("write_claims need auth and a read-write bucket; their values are checked like claims", () => {
    expect(issues(yaml("    access: read-write\n    auth: { write_claims: [{ claim: role, operator: equals, value: editor }] }\n"))).toEqual([
      { path: "buckets[0].auth.write_claims", message: "claim rules need auth.enabled: true" },
    ]);
    expect(issues(yaml("    auth: { enabled: true, write_claims: [{ claim: role, operator: equals, value: editor }] }\n"))).toEqual([
      { path: "buckets[0].auth.write_claims", message: "write rules apply to writes: this bucket is read-only (set access: read-write)" },
    ]);
    expect(issues(yaml("    access: read-write\n    auth: { enabled: true, write_claims: [{ claim: level, operator: gt, value: high }] }\n"))[0]!.path).toBe("buckets[0].auth.write_claims[0].value");
    const ok = parseConfig(yaml("    access: read-write\n    auth: { enabled: true, write_claims: [{ claim: role, operator: equals, value: editor }] }\n"), { env: {} });
    expect(ok.buckets[0]!.auth.write_claims).toEqual([{ claim: "role", operator: "equals", value: "editor" }]);
  });

  test("anonymous_writes only on a read-write bucket without auth", () => {
    expect(issues(yaml("    access: read-write\n    auth: { enabled: true, anonymous_writes: true }\n"))).toEqual([
      { path: "buckets[0].auth.anonymous_writes", message: "a bucket with auth.enabled never takes anonymous writes: remove this key" },
    ]);
    expect(issues(yaml("    auth: { anonymous_writes: true }\n"))).toEqual([
      { path: "buckets[0].auth.anonymous_writes", message: "this bucket is read-only: set access: read-write for writes" },
    ]);
    expect(parseConfig(yaml("    access: read-write\n    auth: { anonymous_writes: true }\n"), { env: {} }).buckets[0]!.auth.anonymous_writes).toBe(true);
  });

  test("openfga_write_relation defaults to editor", () => {
    const c = parseConfig(yaml('    auth: { enabled: true }\n    authorization: { type: openfga, openfga_endpoint: "http://127.0.0.1:8080", openfga_store_id: s }\n'), { env: {} });
    expect(c.buckets[0]!.authorization!.openfga_write_relation).toBe("editor");
  });
});

describe("s3_api presign keys", () => {
  const api = (extra: string) => `s3_api:\n  port: 9100\n  sts: { session_key: "0123456789abcdef0123456789abcdef" }\n${extra}`;
  test("public_url must be an origin; presign_max_seconds 1..604800", () => {
    const c = parseConfig(yaml("", api('  public_url: "https://s3.example.com"\n  presign_max_seconds: 3600\n')), { env: {} });
    expect(c.s3_api!.public_url).toBe("https://s3.example.com");
    expect(c.s3_api!.presign_max_seconds).toBe(3600);
    expect(issues(yaml("", api('  public_url: "https://s3.example.com/prefix"\n')))).toEqual([
      { path: "s3_api.public_url", message: "must be an origin only: scheme, host and optional port (no path, query or credentials)" },
    ]);
    expect(issues(yaml("", api('  public_url: "https://user:pw@s3.example.com"\n')))[0]!.path).toBe("s3_api.public_url");
    expect(issues(yaml("", api('  public_url: "ftp://s3.example.com"\n')))[0]!.path).toBe("s3_api.public_url");
    expect(issues(yaml("", api("  presign_max_seconds: 604801\n")))[0]!.path).toBe("s3_api.presign_max_seconds");
  });
});
