/** The `--check` summary names every part of the deployment a config turns on, and no secret. */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { parseConfig } from "../../src/config/load.ts";
import { summarize } from "../../src/config/summary.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default).
setDefaultTimeout(30_000);

const SECRET = "s3cr3t-Ke7-9f2a";
const REDIS_PASSWORD = "r3dis-Pw-41c";

const FULL = `
server:
  rate_limit: { enabled: true, global: { requests_per_second: 100 }, backend: redis, instances: 3 }
cache:
  enabled: true
  cache_layers: [memory, disk, redis]
  disk: { path: /var/cache/yata, max_disk_size_mb: 2048 }
  redis: { url: "redis://:${REDIS_PASSWORD}@cache.internal:6379/0" }
tracing: { enabled: true, otlp_endpoint: "http://otel.internal:4318", sample_ratio: 0.25 }
audit: { enabled: true, path: /var/log/yata/audit.log }
buckets:
  - name: assets
    path_prefix: /assets
    s3:
      replicas:
        - { name: use1, bucket: a-use1, region: us-east-1, endpoint: "http://s3-a.internal:9000", access_key: AKIAREPLICA1, secret_key: ${SECRET} }
        - { name: usw2, bucket: a-usw2, region: us-west-2, access_key: AKIAREPLICA2, secret_key: ${SECRET} }
`;

test("--check shows shutdown_delay beside shutdown_timeout: what stands in for a Kubernetes preStop sleep (it showed only the timeout)", () => {
  const one = (server: string) => summarize(parseConfig(`server: { ${server} }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt } }\n`, { env: {} }), "c.yaml").split("\n")[1];
  expect(one("port: 18100, shutdown_delay: 7.5, shutdown_timeout: 20")).toEndWith(" shutdown_delay=7.5s shutdown_timeout=20s");
  expect(one("port: 18100")).toEndWith(" shutdown_delay=0s shutdown_timeout=30s");
});

describe("--check summary", () => {
  const text = summarize(parseConfig(FULL, { env: {} }), "c.yaml");
  const twoWorkers = summarize(parseConfig(FULL.replace("server:\n", "server:\n  workers: 2\n"), { env: {} }), "c.yaml");

  test("lists every cache layer in order, the shared limiter, tracing, audit and each replica", () => {
    expect(text).toContain("cache       memory 1024 MiB (items<=10 MiB) → disk /var/cache/yata 2048 MiB (items<=1024 MiB) → redis redis://cache.internal:6379/0 (items<=10 MiB), ttl 3600s");
    expect(text).toContain("rate limits shared in Redis redis://cache.internal:6379/0");
    expect(text).toContain("each of 3 process(es) enforces 1/3");
    expect(text).toContain("tracing     OTLP http://otel.internal:4318 sample=0.25");
    expect(text).toContain("audit       /var/log/yata/audit.log (rotate at 100 MiB, keep 10)");
    expect(text).toMatch(/replica 1 use1: s3:\/\/a-use1 @ http:\/\/s3-a\.internal:9000 signed/);
    expect(text).toMatch(/replica 2 usw2: s3:\/\/a-usw2 @ aws:us-west-2 signed/);
  });

  test("the shared limits' local fallback counts the workers too: 1/(instances × workers) per process (it said 1/instances)", () => {
    expect(twoWorkers).toContain("alone, each of 3 instance(s) enforces 1/3, each of its 2 workers 1/6)");
  });

  test("the buckets' limits shared in Redis with server.rate_limit.enabled: false are said, as the limiter shares them (no Redis line was printed); without any limit none is", () => {
    const bucketOnly = FULL.replace("enabled: true, global: { requests_per_second: 100 }, backend: redis", "enabled: false, backend: redis").replace("path_prefix: /assets\n    s3:\n", "path_prefix: /assets\n    s3:\n      rate_limit: { requests_per_second: 5 }\n");
    expect(summarize(parseConfig(bucketOnly, { env: {} }), "c.yaml")).toContain("bucket rate limits (server.rate_limit.enabled: false: no global or per-IP limit) shared in Redis redis://cache.internal:6379/0 (timeout 50 ms; alone, each of 3 process(es) enforces 1/3)");
    const none = summarize(parseConfig(FULL.replace("enabled: true, global: { requests_per_second: 100 }, backend: redis", "enabled: false, backend: redis"), { env: {} }), "c.yaml");
    expect(none).not.toContain("shared in Redis");
    // but says that none apply, and that the Redis backend (its URL) is unused (it said nothing of rate limits)
    expect(none).toContain("rate limits none apply (server.rate_limit.enabled: false, no bucket's s3.rate_limit): backend redis unused\n");
    const withUrl = summarize(parseConfig("server:\n  rate_limit: { enabled: false, backend: redis, redis_url: \"redis://:pw-s3cr3t@limits.internal:6379/1\" }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt } }\n", { env: {} }), "c.yaml");
    expect(withUrl).toContain("rate limits none apply (server.rate_limit.enabled: false, no bucket's s3.rate_limit): backend redis unused, no connection to redis://limits.internal:6379/1\n");
    expect(withUrl).not.toContain("pw-s3cr3t");
  });

  test("with workers the audit line names each worker's file (it named audit.log, which no process writes then)", () => {
    expect(twoWorkers).toContain("audit       /var/log/yata/audit.log (rotate at 100 MiB, keep 10, one file per worker: audit.worker-0.log … audit.worker-1.log)");
  });

  test("workers: auto is shown with the number of processes it starts here (it said workers=auto, the number nowhere)", () => {
    const auto = summarize(parseConfig("server: { workers: auto }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt } }\n", { env: {} }), "c.yaml");
    expect(auto).toContain(`workers=auto (${Math.max(1, navigator.hardwareConcurrency)} here) `);
  });

  test("prints no secret: neither the replicas' keys nor the Redis password", () => {
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(REDIS_PASSWORD);
  });

  test("an IPv6 listener is printed in brackets, as a URL writes it (it said http://::1:18102)", () => {
    const v6 = summarize(
      parseConfig(
        `server: { address: "[::1]:18102" }\nmetrics: { enabled: true, address: "::1", port: 18103 }\ns3_api:\n  enabled: true\n  address: "::"\n  port: 18104\n  credentials:\n    - { access_key_id: AKIAV6TEST, secret_access_key: "${SECRET}-0123456789", identity: app, buckets: { b: [read] } }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt } }\n`,
        { env: {} },
      ),
      "c.yaml",
    );
    expect(v6).toContain("listen      http://[::1]:18102  ");
    expect(v6).toContain("metrics     http://[::1]:18103/metrics\n");
    expect(v6).toContain("s3 api      http://[::]:18104  ");
  });

  test("each bucket says whether it takes writes (and under which rules), lists folders, filters addresses", () => {
    const b = summarize(
      parseConfig(
        "jwt: { enabled: true, secret: \"0123456789abcdef0123456789abcdef\" }\nbuckets:\n" +
          "  - { name: up, path_prefix: /up, access: read-write, auth: { enabled: true, write_claims: [{ claim: role, operator: equals, value: editor }] }, listing: { enabled: true }, s3: { bucket: bkt } }\n" +
          "  - { name: drop, path_prefix: /drop, access: read-write, auth: { anonymous_writes: true }, ip_filter: { allowlist: [10.0.0.0/8] }, s3: { bucket: bkt } }\n" +
          "  - { name: ro, path_prefix: /ro, s3: { bucket: bkt } }\n",
        { env: {} },
      ),
      "c.yaml",
    );
    expect(b).toMatch(/→ up \(s3:\/\/bkt @ aws:us-east-1\) anonymous auth read-write\+1 write rules listing\n/);
    expect(b).toMatch(/→ drop \(s3:\/\/bkt @ aws:us-east-1\) anonymous public read-write \(anonymous writes\) ip_filter\n/);
    expect(b).toMatch(/→ ro \(s3:\/\/bkt @ aws:us-east-1\) anonymous public\n/);
  });

  test("a bucket's own cache.stale_if_error_seconds is on its line when it differs from the cache section's (the line said only `cached`)", () => {
    const line = (section: number, own: string) =>
      summarize(parseConfig(`cache: { enabled: true, stale_if_error_seconds: ${section} }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt }, cache: { enabled: true${own} } }\n`, { env: {} }), "c.yaml").split("\n").find((l) => l.includes("→ b "))!;
    expect(line(0, ", stale_if_error_seconds: 60")).toEndWith(" anonymous public cached (stale-if-error 60s)");
    expect(line(300, ", stale_if_error_seconds: 0")).toEndWith(" anonymous public cached (stale-if-error off)");
    // (the section's default, said on the cache line, is not repeated)
    expect(line(60, ", stale_if_error_seconds: 60")).toEndWith(" anonymous public cached");
    expect(line(60, "")).toEndWith(" anonymous public cached");
  });

  test("a bucket's own cache.ttl_seconds and max_item_size_mb are on its line when they differ from the cache section's (the line said only `cached`, the cache line `ttl 3600s`)", () => {
    const line = (own: string, section = "") =>
      summarize(parseConfig(`cache: { enabled: true${section} }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt }, cache: { enabled: true${own} } }\n`, { env: {} }), "c.yaml").split("\n").find((l) => l.includes("→ b "))!;
    expect(line(", ttl_seconds: 60")).toEndWith(" anonymous public cached (ttl 60s)");
    expect(line(", ttl_seconds: 0")).toEndWith(" anonymous public cached (ttl 0s)");
    expect(line(", max_item_size_mb: 5")).toEndWith(" anonymous public cached (items<=5 MiB)");
    expect(line(", ttl_seconds: 60, max_item_size_mb: 2.5, stale_if_error_seconds: 30")).toEndWith(" anonymous public cached (ttl 60s, items<=2.5 MiB, stale-if-error 30s)");
    // (the section's defaults, said on the cache line, are not repeated; a size above the layers' is capped there, and said by a note)
    expect(line(", ttl_seconds: 3600, max_item_size_mb: 10")).toEndWith(" anonymous public cached");
    expect(line(", max_item_size_mb: 1024")).toEndWith(" anonymous public cached");
    expect(line(", ttl_seconds: 60", ", memory: { default_ttl_seconds: 60 }")).toEndWith(" anonymous public cached");
  });

  test("the limits line prints the rates that are set, and only those (a per-address rate alone printed global=-/s)", () => {
    const limits = (rate: string) => summarize(parseConfig(`server: { rate_limit: ${rate} }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt } }\n`, { env: {} }), "c.yaml").split("\n").find((l) => l.startsWith("limits"))!;
    expect(limits("{ per_ip: { requests_per_second: 5 } }")).toEndWith(" rate: per_ip=5/s");
    expect(limits("{ global: { requests_per_second: 100, burst: 200 } }")).toEndWith(" rate: global=100/s (burst 200)");
    expect(limits("{ global: { requests_per_second: 100 }, per_ip: { requests_per_second: 5, burst: 10 } }")).toEndWith(" rate: global=100/s per_ip=5/s (burst 10)");
    expect(limits("{ enabled: false, per_ip: { requests_per_second: 5 } }")).not.toContain("rate");
    expect(text).toContain(" rate: global=100/s\n");
  });

  test("a minimal config says off for what it does not use", () => {
    const min = summarize(parseConfig("buckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt } }\n", { env: {} }), "c.yaml");
    expect(min).toContain("cache       off");
    expect(min).toContain("tracing     off");
    expect(min).toContain("audit       off");
    expect(min).not.toContain("replica");
    expect(min).not.toContain("rate limits shared");
  });

  test("the jwt line counts claim rules in the singular for one (it said `1 claim rules`)", () => {
    const jwtLine = (claims: string) => summarize(parseConfig(`jwt: { enabled: true, secret: "0123456789abcdef0123456789abcdef", claims: ${claims} }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt } }\n`, { env: {} }), "c.yaml").split("\n").find((l) => l.startsWith("jwt"))!;
    expect(jwtLine('[{ claim: role, operator: equals, value: admin }]')).toContain("; 1 claim rule;");
    expect(jwtLine('[{ claim: role, operator: equals, value: admin }, { claim: team, operator: equals, value: a }]')).toContain("; 2 claim rules;");
  });
});

describe("--check summary: relative paths", () => {
  test("a relative disk-cache folder and audit file are shown resolved against the config's folder (where the proxy opens them), with what was written", () => {
    const yaml = `cache: { enabled: true, cache_layers: [memory, disk], disk: { path: ./cache } }\naudit: { enabled: true, path: logs/audit.log }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt } }\n`;
    const text = summarize(parseConfig(yaml, { env: {}, baseDir: "/etc/yata" }), "/etc/yata/config.yaml");
    expect(text).toContain(`disk /etc/yata/cache ("./cache", relative to the config's folder) `);
    expect(text).toContain(`audit       /etc/yata/logs/audit.log ("logs/audit.log", relative to the config's folder) (rotate at`);
  });
});
