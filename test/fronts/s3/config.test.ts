/** The `s3_api` section: defaults, every cross-field rule with its YAML path, and a --check summary without secrets. */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { ConfigError, parseConfig, type ConfigIssue } from "../../../src/config/load.ts";
import { summarize } from "../../../src/config/summary.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const BUCKETS = `buckets:
  - name: products
    path_prefix: /products
    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }
  - name: "has space"
    path_prefix: /space
    s3: { bucket: bkt2, endpoint: "http://127.0.0.1:9000" }
`;
const JWT = `jwt: { enabled: true, algorithm: HS256, secret: "jwt-secret-0123456789abcdef012345" }\n`;
const SECRET = "SECRET-VALUE-abcdefghijklmnop";
const STS_KEY = "STS-SESSION-KEY-abcdefghijklmnopqrstuvwxyz";

function issues(yaml: string): ConfigIssue[] {
  try {
    parseConfig(yaml, { env: {} });
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error("expected a ConfigError");
}
const paths = (yaml: string) => issues(yaml).map((i) => `${i.path}: ${i.message}`);

describe("s3_api", () => {
  test("defaults: enabled, 0.0.0.0:9000, us-east-1, path-style, 900 s skew, 256 MiB of form upload buffers, no credentials", () => {
    const c = parseConfig(`${BUCKETS}s3_api: {}\n`, { env: {} });
    expect(c.s3_api).toEqual({ enabled: true, address: "0.0.0.0", port: 9000, region: "us-east-1", max_clock_skew_seconds: 900, form_upload_buffer_mib: 256, credentials: [] });
    expect(parseConfig(BUCKETS, { env: {} }).s3_api).toBeUndefined();
  });

  test("a full section parses; the domain is lower-cased; secrets come from ${VAR}", () => {
    const c = parseConfig(
      `${BUCKETS}${JWT}s3_api:
  port: 9100
  region: eu-west-1
  domain: S3.Example.COM
  sts: { session_key: "\${STS}", max_session_seconds: 7200 }
  credentials:
    - { access_key_id: "\${AK}", secret_access_key: "\${SK}", identity: app1, claims: { team: a }, buckets: { products: [read, list] } }
`,
      { env: { AK: "AKIDAPP1", SK: SECRET, STS: STS_KEY } },
    );
    expect(c.s3_api!.domain).toBe("s3.example.com");
    expect(c.s3_api!.sts).toEqual({ enabled: true, session_key: STS_KEY, max_session_seconds: 7200 });
    expect(c.s3_api!.credentials[0]).toEqual({ access_key_id: "AKIDAPP1", secret_access_key: SECRET, identity: "app1", claims: { team: "a" }, buckets: { products: ["read", "list"] } });
  });

  test("shape errors name their path: permissions, key id, short secret, domain, region, skew, a form upload budget one upload outgrows, unknown keys", () => {
    const got = paths(`${BUCKETS}s3_api:
  domain: "https://s3.example.com/"
  region: "US EAST"
  max_clock_skew_seconds: 0
  form_upload_buffer_mib: 8
  bogus: 1
  credentials:
    - { access_key_id: "a/b", secret_access_key: short, identity: "-bad", buckets: { products: [upload] } }
`);
    expect(got).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^s3_api\.domain: must be a DNS name/),
        // (the value given, as a bucket's s3.region names it: it was "must be a region name such as us-east-1" alone)
        "s3_api.region: 'US EAST' is not a region name (lowercase letters, digits and '-', as us-east-1)",
        expect.stringMatching(/^s3_api\.max_clock_skew_seconds: /),
        // (8 MiB: a form upload of a 6 MiB file, which holds 10 MiB, was 503 SlowDown "retry shortly" at every try)
        expect.stringMatching(/^s3_api\.form_upload_buffer_mib: must be at least 15 /),
        "s3_api.bogus: unknown key 'bogus'",
        expect.stringMatching(/^s3_api\.credentials\[0\]\.access_key_id: must be 3-128/),
        "s3_api.credentials[0].secret_access_key: must be at least 16 characters, got 5 characters",
        expect.stringMatching(/^s3_api\.credentials\[0\]\.identity: /),
        "s3_api.credentials[0].buckets.products[0]: unknown permission, got \"upload\"; use read, list, write, delete",
      ]),
    );
    // grants written as a list: "expected a mapping, got a list" alone did not show the form to write
    const grants = (g: string) => paths(`${BUCKETS}s3_api:\n  credentials:\n    - { access_key_id: AKIDONE, secret_access_key: "${"s".repeat(20)}", identity: one, buckets: ${g} }\n`);
    expect(grants("[products]")).toEqual(["s3_api.credentials[0].buckets: expected a mapping, got a list (each bucket's name maps to its permissions: write buckets: { products: [read, list] })"]);
    expect(grants("[{ products: [read, write] }, uploads]")).toEqual([
      "s3_api.credentials[0].buckets: expected a mapping, got a list (each bucket's name maps to its permissions: write buckets: { products: [read, write], uploads: [read, list] })",
    ]);
    expect(grants("[a, b, c, d]")[0]).toEndWith("write buckets: { a: [read, list], b: [read, list], c: [read, list], ... })");
    expect(paths(`${BUCKETS}s3_api: { region: ${"a".repeat(70)} }\n`)).toEqual(["s3_api.region: must be a region name such as us-east-1 (1 to 64 of a-z, 0-9 and '-'), got 70 characters"]);
  });

  test("cross-field rules: unknown or unaddressable bucket, duplicate key, ASIA prefix, sub claim, ports, STS needs a key and jwt", () => {
    const got = paths(`${BUCKETS}server: { port: 8080 }
metrics: { enabled: true, port: 9091 }
s3_api:
  port: 8080
  sts: { enabled: true, session_key: "too short" }
  credentials:
    - { access_key_id: AKIDONE, secret_access_key: "${SECRET}", identity: one, buckets: { nosuch: [read], "has space": [read] } }
    - { access_key_id: AKIDONE, secret_access_key: "${SECRET}", identity: two, claims: { sub: x }, buckets: { products: [read] } }
    - { access_key_id: ASIAXYZ, secret_access_key: "${SECRET}", identity: three, buckets: { products: [list] } }
`);
    expect(got).toEqual(
      expect.arrayContaining([
        "s3_api.port: the S3 API needs its own port: it must not be the proxy's main port",
        "s3_api.credentials[0].buckets.nosuch: no bucket is named 'nosuch' (a grant names a bucket's `name`)",
        "s3_api.credentials[0].buckets.has space: S3 clients cannot address this bucket name: use letters, digits, '.', '-' and '_' only",
        "s3_api.credentials[1].access_key_id: duplicate access key id (also credentials[0])",
        "s3_api.credentials[1].claims.sub: sub is always the identity: remove it (set identity instead)",
        "s3_api.credentials[2].access_key_id: must not start with ASIA: that prefix marks temporary (STS) credentials",
        "s3_api.sts.session_key: must be at least 32 bytes, got 9",
        "s3_api.sts.enabled: temporary credentials are issued for JWTs: configure an enabled top-level `jwt:` section",
      ]),
    );
    expect(got).toHaveLength(8);
    // a credential's claims are free-form, and aliases multiply them: a few lines made megabytes
    // (here 9^5 = 59,049 strings, 1.2 MB as JSON) that every reload parsed on the serving thread
    const bomb = ["x-a: &a [" + Array(9).fill('"lolololololololol"').join(",") + "]", ..."bcde".split("").map((n, i) => `x-${n}: &${n} [${Array(9).fill(`*${"abcde"[i]}`).join(",")}]`)].join("\n");
    const claimed = (claims: string) => `${bomb}\n${BUCKETS}s3_api:\n  credentials:\n    - { access_key_id: AKIDONE, secret_access_key: "${SECRET}", identity: one, claims: ${claims}, buckets: { products: [read] } }\n`;
    expect(paths(claimed("{ groups: *e }"))).toEqual(["s3_api.credentials[0].claims: must be at most 65536 bytes as JSON (YAML aliases expanded), got 1195752"]);
    expect(parseConfig(claimed("{ groups: *c }"), { env: {} }).s3_api!.credentials[0]!.claims!.groups).toHaveLength(9); // (16 KB: taken)
    // a grant naming the store's bucket (s3.bucket, what its console shows) read only "no bucket is named 'bkt'"
    expect(paths(`${BUCKETS}s3_api:\n  credentials:\n    - { access_key_id: AKIDONE, secret_access_key: "${SECRET}", identity: one, buckets: { bkt: [read] } }\n`)).toEqual([
      "s3_api.credentials[0].buckets.bkt: no bucket is named 'bkt': that is buckets[0].s3.bucket, the store's name; a grant names the bucket's `name`, 'products', as S3 clients do (s3://products/...)",
    ]);
    // a typo of a bucket's name read the same bare "no bucket is named" as a name nowhere near one
    expect(paths(`${BUCKETS}s3_api:\n  credentials:\n    - { access_key_id: AKIDONE, secret_access_key: "${SECRET}", identity: one, buckets: { product: [read], Products: [list] } }\n`)).toEqual([
      "s3_api.credentials[0].buckets.product: no bucket is named 'product' (did you mean 'products'?)",
      "s3_api.credentials[0].buckets.Products: no bucket is named 'Products' (did you mean 'products'?)",
    ]);
    expect(paths(`${BUCKETS}metrics: { enabled: true, port: 9091 }\ns3_api: { port: 9091 }\n`)).toEqual(["s3_api.port: the S3 API must not use the metrics listener's port"]);
    expect(paths(`${BUCKETS}${JWT}s3_api: { sts: { enabled: true } }\n`)).toEqual([
      "s3_api.sts.session_key: required when sts is enabled (at least 32 bytes, the same on every replica)",
    ]);
    expect(paths(`${BUCKETS}server: { workers: 2 }\ns3_api: { port: 0 }\n`)).toEqual([
      "s3_api.port: with server.workers > 1 every worker listens on the same S3 port: set a fixed port (not 0)",
    ]);
  });

  test("a disabled section is not cross-checked", () => {
    expect(parseConfig(`${BUCKETS}s3_api: { enabled: false, credentials: [{ access_key_id: AKIDX, secret_access_key: "${SECRET}", identity: x, buckets: { nosuch: [read] } }] }\n`, { env: {} }).s3_api!.enabled).toBe(false);
  });

  test("--check summary: listener, style, STS and grants, never a secret or an access key id", () => {
    const c = parseConfig(
      `${BUCKETS}${JWT}s3_api:
  address: 127.0.0.1
  port: 9100
  domain: s3.example.com
  sts: { session_key: "${STS_KEY}" }
  credentials:
    - { access_key_id: AKIDVISIBLE1, secret_access_key: "${SECRET}", identity: app1, buckets: { products: [read, list] } }
`,
      { env: {} },
    );
    const text = summarize(c, "config.yaml");
    expect(text).toContain("s3 api      http://127.0.0.1:9100  region=us-east-1 path + virtual-hosted (*.s3.example.com) max_skew=900s");
    expect(text).toContain("  sts: on (session_key set, max 3600s); 1 credential");
    expect(text).toMatch(/ {2}app1 +secret set; products:read\+list/);
    for (const secret of [SECRET, STS_KEY, "AKIDVISIBLE1"]) expect(text).not.toContain(secret);
    expect(summarize(parseConfig(BUCKETS, { env: {} }), "c.yaml")).toContain("s3 api      off");
    expect(summarize(parseConfig(`${BUCKETS}s3_api: { engine: node }\n`, { env: {} }), "c.yaml")).toContain("max_skew=900s engine=node");
    expect(paths(`${BUCKETS}s3_api: { engine: deno }\n`)).toEqual([expect.stringMatching(/^s3_api\.engine: /)]);
  });
});
