import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { Metrics, renderMerged, type CacheStats } from "../../src/observe/metrics.ts";
import { mergeSnapshots, Registry, renderSnapshot } from "../../src/observe/registry.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

// ------------------------------------------------------------------ a tiny exposition parser

interface Sample { name: string; labels: Record<string, string>; value: number }
interface Parsed { help: Map<string, string>; type: Map<string, string>; samples: Sample[] }

function unescape(s: string, quotes: boolean): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== "\\") { out += s[i]; continue; }
    const n = s[++i];
    if (n === "n") out += "\n";
    else if (n === "\\") out += "\\";
    else if (n === '"' && quotes) out += '"';
    else throw new Error(`bad escape \\${n}`);
  }
  return out;
}

function parseValue(s: string): number {
  if (s === "+Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  if (s === "NaN") return NaN;
  const v = Number(s);
  if (s.trim() === "" || Number.isNaN(v)) throw new Error(`bad value ${s}`);
  return v;
}

/** Parses text format 0.0.4 strictly: HELP/TYPE once per family, samples right after their TYPE. */
function parse(text: string): Parsed {
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  const samples: Sample[] = [];
  let current = "";
  if (text.length > 0 && !text.endsWith("\n")) throw new Error("output must end with a newline");
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("# HELP ")) {
      const rest = line.slice(7);
      const name = rest.slice(0, rest.indexOf(" "));
      if (help.has(name)) throw new Error(`duplicate HELP ${name}`);
      help.set(name, unescape(rest.slice(name.length + 1), false));
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [name, t, extra] = line.slice(7).split(" ");
      if (type.has(name) || extra !== undefined || !["counter", "gauge", "histogram"].includes(t)) throw new Error(`bad TYPE ${line}`);
      if (!help.has(name)) throw new Error(`TYPE before HELP for ${name}`);
      type.set(name, t);
      current = name;
      continue;
    }
    if (line.startsWith("#")) throw new Error(`unexpected comment ${line}`);
    let i = 0;
    while (i < line.length && line[i] !== "{" && line[i] !== " ") i++;
    const name = line.slice(0, i);
    const labels: Record<string, string> = {};
    if (line[i] === "{") {
      i++;
      while (line[i] !== "}") {
        const eq = line.indexOf("=", i);
        const lname = line.slice(i, eq);
        if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(lname) || line[eq + 1] !== '"') throw new Error(`bad label in ${line}`);
        let j = eq + 2;
        while (line[j] !== '"') j += line[j] === "\\" ? 2 : 1;
        if (lname in labels) throw new Error(`duplicate label ${lname}`);
        labels[lname] = unescape(line.slice(eq + 2, j), true);
        i = j + 1;
        if (line[i] === ",") i++;
        else if (line[i] !== "}") throw new Error(`bad label list in ${line}`);
      }
      i++;
    }
    if (line[i] !== " ") throw new Error(`no value separator in ${line}`);
    const family = type.get(current) === "histogram" ? name.replace(/_(bucket|sum|count)$/, "") : name;
    if (family !== current) throw new Error(`sample ${name} outside its family (current ${current})`);
    samples.push({ name, labels, value: parseValue(line.slice(i + 1)) });
  }
  return { help, type, samples };
}

function find(p: Parsed, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels);
  const hit = p.samples.find(
    (s) => s.name === name && Object.keys(s.labels).length === want.length && want.every(([k, v]) => s.labels[k] === v),
  );
  return hit?.value;
}

const EXPECTED: [string, string][] = [
  ["yatagarasu_http_requests_total", "counter"],
  ["yatagarasu_http_request_duration_seconds", "histogram"],
  ["yatagarasu_http_requests_in_flight", "gauge"],
  ["yatagarasu_http_response_bytes_total", "counter"],
  ["yatagarasu_http_throttled_total", "counter"],
  ["yatagarasu_s3_requests_total", "counter"],
  ["yatagarasu_s3_request_duration_seconds", "histogram"],
  ["yatagarasu_s3_retries_total", "counter"],
  ["yatagarasu_http_response_body_errors_total", "counter"],
  ["yatagarasu_auth_total", "counter"],
  ["yatagarasu_authz_decisions_total", "counter"],
  ["yatagarasu_rate_limited_total", "counter"],
  ["yatagarasu_circuit_breaker_state", "gauge"],
  ["yatagarasu_s3_replica_requests_total", "counter"],
  ["yatagarasu_s3_failovers_total", "counter"],
  ["yatagarasu_s3_replica_circuit_breaker_state", "gauge"],
  ["yatagarasu_config_reloads_total", "counter"],
  ["yatagarasu_config_generation", "gauge"],
  ["yatagarasu_tls_certificate_not_after_timestamp_seconds", "gauge"],
  ["yatagarasu_build_info", "gauge"],
  ["yatagarasu_cache_hits_total", "counter"],
  ["yatagarasu_cache_misses_total", "counter"],
  ["yatagarasu_cache_stale_total", "counter"],
  ["yatagarasu_cache_evictions_total", "counter"],
  ["yatagarasu_cache_bytes", "gauge"],
  ["yatagarasu_cache_items", "gauge"],
  ["yatagarasu_cache_coalesced_total", "counter"],
  ["yatagarasu_write_requests_total", "counter"],
  ["yatagarasu_write_errors_total", "counter"],
  ["yatagarasu_http_request_bytes_total", "counter"],
  ["process_resident_memory_bytes", "gauge"],
  ["process_cpu_seconds_total", "counter"],
  ["process_start_time_seconds", "gauge"],
];

const make = (buckets = ["photos", "docs"]) => new Metrics({ version: "1.2.3", commit: "abc1234", buckets });

describe("exposition format", () => {
  test("every metric has HELP and TYPE, and the output parses", () => {
    const m = make();
    const p = parse(m.render());
    for (const [name, t] of EXPECTED) {
      expect(p.type.get(name)).toBe(t);
      expect((p.help.get(name) ?? "").length).toBeGreaterThan(5);
    }
    // Nothing outside the documented set (process_open_fds and process_max_fds only where /proc exists).
    const extra = [...p.type.keys()].filter((n) => !EXPECTED.some(([e]) => e === n) && n !== "process_open_fds" && n !== "process_max_fds");
    expect(extra).toEqual([]);
    expect(p.help.get("yatagarasu_circuit_breaker_state")).toContain("0 closed, 1 open, 2 half-open");
  });

  test("fixed label sets are precreated at zero", () => {
    const p = parse(make().render());
    for (const r of ["success", "missing", "invalid", "forbidden", "error"]) expect(find(p, "yatagarasu_auth_total", { result: r })).toBe(0);
    for (const s of ["global", "per_ip", "bucket", "concurrency"]) expect(find(p, "yatagarasu_rate_limited_total", { scope: s })).toBe(0);
    for (const authorizer of ["opa", "openfga"]) for (const result of ["allow", "deny", "error", "fail_open"]) expect(find(p, "yatagarasu_authz_decisions_total", { authorizer, result })).toBe(0);
    expect(find(p, "yatagarasu_config_reloads_total", { result: "failure" })).toBe(0);
    expect(find(p, "yatagarasu_s3_retries_total", { bucket: "photos" })).toBe(0);
    expect(find(p, "yatagarasu_http_request_duration_seconds_count", { bucket: "_health", method: "GET" })).toBe(0);
    expect(find(p, "yatagarasu_build_info", { version: "1.2.3", commit: "abc1234" })).toBe(1);
    expect(find(p, "yatagarasu_http_requests_in_flight")).toBe(0);
  });

  test("authorizer results: bounded labels (the two authorizers, three results)", () => {
    const m = make();
    m.authzDecision("opa", "allow");
    m.authzDecision("opa", "allow");
    m.authzDecision("openfga", "error");
    m.authzDecision("nope" as "opa", "allow"); // not a label value: not counted
    const p = parse(m.render());
    expect(find(p, "yatagarasu_authz_decisions_total", { authorizer: "opa", result: "allow" })).toBe(2);
    expect(find(p, "yatagarasu_authz_decisions_total", { authorizer: "openfga", result: "error" })).toBe(1);
    expect(m.render().match(/^yatagarasu_authz_decisions_total\{/gm)).toHaveLength(8);
  });

  test("histograms are cumulative, include +Inf, and le is inclusive", () => {
    const m = make();
    for (const d of [0.0004, 0.003, 0.003, 0.1, 0.2, 20]) m.observeRequest("photos", "GET", 200, d, 0);
    const p = parse(m.render());
    const le = (b: string) => find(p, "yatagarasu_http_request_duration_seconds_bucket", { bucket: "photos", method: "GET", le: b });
    expect(le("0.0005")).toBe(1);
    expect(le("0.001")).toBe(1);
    expect(le("0.0025")).toBe(1);
    expect(le("0.005")).toBe(3);
    expect(le("0.05")).toBe(3);
    expect(le("0.1")).toBe(4); // 0.1 lands in le="0.1"
    expect(le("0.25")).toBe(5);
    expect(le("10")).toBe(5);
    expect(le("+Inf")).toBe(6);
    expect(find(p, "yatagarasu_http_request_duration_seconds_count", { bucket: "photos", method: "GET" })).toBe(6);
    expect(find(p, "yatagarasu_http_request_duration_seconds_sum", { bucket: "photos", method: "GET" })).toBeCloseTo(20.3064, 6);
    const buckets = p.samples.filter((s) => s.name.endsWith("_bucket") && s.labels.bucket === "photos" && s.name.startsWith("yatagarasu_http"));
    expect(buckets.length).toBe(15);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i].value).toBeGreaterThanOrEqual(buckets[i - 1].value);
  });

  test("label values and HELP are escaped", () => {
    const r = new Registry();
    const nasty = 'a\\b"c\nd';
    r.counter("t_total", "line one\nback\\slash", ["v"]).labels(nasty).inc(2);
    const text = r.render();
    expect(text).toContain('t_total{v="a\\\\b\\"c\\nd"} 2');
    expect(text).toContain("# HELP t_total line one\\nback\\\\slash");
    const p = parse(text);
    expect(find(p, "t_total", { v: nasty })).toBe(2);
    expect(p.help.get("t_total")).toBe("line one\nback\\slash");
  });

  test("special values render as +Inf, -Inf and NaN", () => {
    const r = new Registry();
    const g = r.gauge("g", "g", ["k"]);
    g.labels("a").set(Infinity);
    g.labels("b").set(-Infinity);
    g.labels("c").set(NaN);
    const text = r.render();
    expect(text).toContain('g{k="a"} +Inf\ng{k="b"} -Inf\ng{k="c"} NaN\n');
  });

  test("registry rejects invalid or duplicate definitions", () => {
    const r = new Registry();
    r.counter("ok_total", "x");
    expect(() => r.counter("ok_total", "x")).toThrow();
    expect(() => r.counter("bad-name", "x")).toThrow();
    expect(() => r.counter("c", "x", ["bad-label"])).toThrow();
    expect(() => r.counter("c2", "x", ["__reserved"])).toThrow();
    expect(() => r.histogram("h", "x", ["le"], [1])).toThrow();
    expect(() => r.histogram("h2", "x", [], [2, 1])).toThrow();
    expect(() => r.counter("c3", "x", ["a", "b"]).labels("only-one")).toThrow();
  });

  test("an empty registry renders nothing; a collector that throws does not break the scrape", () => {
    const r = new Registry();
    expect(r.render()).toBe("");
    r.gauge("g", "g").labels().set(3);
    r.onCollect(() => {
      throw new Error("boom");
    });
    expect(r.render()).toBe("# HELP g g\n# TYPE g gauge\ng 3\n");
  });
});

describe("Metrics", () => {
  test("observeRequest: bucket, normalised method, status, bytes", () => {
    const m = make();
    m.observeRequest("photos", "GET", 200, 0.01, 100);
    m.observeRequest("photos", "GET", 200, 0.01, 50);
    m.observeRequest("photos", "head", 304, 0.01, 0);
    m.observeRequest("photos", "POST", 405, 0.01, 10);
    m.observeRequest("photos", "PUT", 200, 0.01, 0);
    m.observeRequest("photos", "delete", 204, 0.01, 0);
    m.observeRequest("photos", "PROPFIND", 405, 0.01, 10);
    m.observeRequest("photos", "PATCH", 405, 0.01, 0);
    m.observeRequest("docs", "OPTIONS", 204, 0.01, 0);
    m.observeRequest("_health", "GET", 200, 0.001, 2);
    const p = parse(m.render());
    const req = (bucket: string, method: string, status: string) => find(p, "yatagarasu_http_requests_total", { bucket, method, status });
    expect(req("photos", "GET", "200")).toBe(2);
    expect(req("photos", "HEAD", "304")).toBe(1);
    // Writes are told apart; any other method shares OTHER (bounded labels).
    expect(req("photos", "POST", "405")).toBe(1);
    expect(req("photos", "PUT", "200")).toBe(1);
    expect(req("photos", "DELETE", "204")).toBe(1);
    expect(req("photos", "OTHER", "405")).toBe(2);
    expect(req("docs", "OPTIONS", "204")).toBe(1);
    expect(req("_health", "GET", "200")).toBe(1);
    expect(find(p, "yatagarasu_http_response_bytes_total", { bucket: "photos" })).toBe(170);
    expect(find(p, "yatagarasu_http_response_bytes_total", { bucket: "_health" })).toBe(2);
  });

  test("labels stay bounded: unknown buckets count as _none, odd statuses as 0", () => {
    const m = make();
    for (let i = 0; i < 1000; i++) m.observeRequest(`/photos/user-${i}/secret.jpg`, `M${i}`, 200 + (i % 2), 0.001, 1);
    m.observeRequest("photos", "GET", 1234, 0.001, 0);
    m.observeRequest("photos", "GET", NaN, 0.001, 0);
    const p = parse(m.render());
    const series = p.samples.filter((s) => s.name === "yatagarasu_http_requests_total");
    expect(series.length).toBe(3);
    expect(find(p, "yatagarasu_http_requests_total", { bucket: "_none", method: "OTHER", status: "200" })).toBe(500);
    expect(find(p, "yatagarasu_http_requests_total", { bucket: "photos", method: "GET", status: "0" })).toBe(2);
    expect(m.render()).not.toContain("secret");
  });

  test("writes: by operation and status; errors by code, whose label set stays bounded; body bytes taken in", () => {
    const m = make();
    m.observeWrite("photos", "PutObject", 200, undefined);
    m.observeWrite("photos", "PutObject", 400, "BadDigest");
    m.observeWrite("photos", "UploadPart", 200, "ClientClosedRequest"); // a 2xx whose body failed
    m.observeWrite("nope", "DeleteObject", 404, "NotFound");
    m.observeWrite("photos", "CopyObject", 403, "evil\"} 1\nx{");
    for (let i = 0; i < 300; i++) m.observeWrite("photos", "PutObject", 500, `Code${i}`);
    m.receivedBytes("photos", 1000);
    m.receivedBytes("photos", 24);
    m.receivedBytes("photos", NaN);
    m.receivedBytes("elsewhere", 5);
    const p = parse(m.render());
    const w = (bucket: string, operation: string, status: string) => find(p, "yatagarasu_write_requests_total", { bucket, operation, status });
    const e = (bucket: string, operation: string, code: string) => find(p, "yatagarasu_write_errors_total", { bucket, operation, code });
    expect([w("photos", "PutObject", "200"), w("photos", "PutObject", "400"), w("photos", "UploadPart", "200"), w("_none", "DeleteObject", "404")]).toEqual([1, 1, 1, 1]);
    expect([e("photos", "PutObject", "BadDigest"), e("photos", "UploadPart", "ClientClosedRequest"), e("_none", "DeleteObject", "NotFound"), e("photos", "CopyObject", "other")]).toEqual([1, 1, 1, 1]);
    expect(e("photos", "PutObject", "200")).toBeUndefined();
    // 100 distinct codes are kept (3 above, then 97 of the loop); the rest count as "other"
    const codes = new Set(p.samples.filter((s) => s.name === "yatagarasu_write_errors_total").map((s) => s.labels.code));
    expect(codes.size).toBe(101);
    expect(e("photos", "PutObject", "other")).toBe(300 - 97);
    expect(find(p, "yatagarasu_http_request_bytes_total", { bucket: "photos" })).toBe(1024);
    expect(find(p, "yatagarasu_http_request_bytes_total", { bucket: "_none" })).toBe(5);
  });

  test("in-flight gauge, S3 outcomes, retries", () => {
    const m = make();
    m.inFlight(1);
    m.inFlight(1);
    m.inFlight(-1);
    m.observeS3("photos", 200, 0.02);
    m.observeS3("photos", 503, 0.5);
    m.observeS3("photos", "timeout", 20);
    m.observeS3("photos", "error", 0.001);
    m.s3Retry("photos");
    m.s3Retry("photos");
    const p = parse(m.render());
    expect(find(p, "yatagarasu_http_requests_in_flight")).toBe(1);
    for (const s of ["200", "503", "timeout", "error"]) expect(find(p, "yatagarasu_s3_requests_total", { bucket: "photos", status: s })).toBe(1);
    expect(find(p, "yatagarasu_s3_request_duration_seconds_count", { bucket: "photos" })).toBe(4);
    expect(find(p, "yatagarasu_s3_request_duration_seconds_bucket", { bucket: "photos", le: "10" })).toBe(3);
    expect(find(p, "yatagarasu_s3_retries_total", { bucket: "photos" })).toBe(2);
    expect(find(p, "yatagarasu_s3_retries_total", { bucket: "docs" })).toBe(0);
  });

  test("auth, rate limits, breaker state, reloads, generation", () => {
    const m = make();
    m.auth("success");
    m.auth("success");
    m.auth("forbidden");
    m.rateLimited("per_ip");
    m.rateLimited("concurrency");
    m.setBreakerState("photos", 1);
    m.setBreakerState("docs", 2);
    m.setBreakerState("nope", 1); // not configured: ignored
    m.setBreakerState("_none", 1);
    m.configReload("success");
    m.configReload("failure");
    m.configReload("failure");
    m.setGeneration(7);
    const p = parse(m.render());
    expect(find(p, "yatagarasu_auth_total", { result: "success" })).toBe(2);
    expect(find(p, "yatagarasu_auth_total", { result: "forbidden" })).toBe(1);
    expect(find(p, "yatagarasu_rate_limited_total", { scope: "per_ip" })).toBe(1);
    expect(find(p, "yatagarasu_rate_limited_total", { scope: "concurrency" })).toBe(1);
    expect(find(p, "yatagarasu_circuit_breaker_state", { bucket: "photos" })).toBe(1);
    expect(find(p, "yatagarasu_circuit_breaker_state", { bucket: "docs" })).toBe(2);
    expect(p.samples.filter((s) => s.name === "yatagarasu_circuit_breaker_state").length).toBe(2);
    expect(find(p, "yatagarasu_config_reloads_total", { result: "success" })).toBe(1);
    expect(find(p, "yatagarasu_config_reloads_total", { result: "failure" })).toBe(2);
    expect(find(p, "yatagarasu_config_generation")).toBe(7);
  });

  test("cache metrics come from the collector at scrape time", () => {
    const m = make();
    let stats: CacheStats = { hits: { photos: 5, ghost: 1 }, misses: { photos: 2, docs: 3 }, stale: { photos: 2, docs: 0 }, evictions: 4, bytes: 1024, items: 9, coalesced: 6 };
    let fail = false;
    m.setCacheCollector(() => {
      if (fail) throw new Error("cache busy");
      return stats;
    });
    let p = parse(m.render());
    expect(find(p, "yatagarasu_cache_hits_total", { bucket: "photos" })).toBe(5);
    expect(find(p, "yatagarasu_cache_hits_total", { bucket: "_none" })).toBe(1);
    expect(find(p, "yatagarasu_cache_misses_total", { bucket: "docs" })).toBe(3);
    expect(find(p, "yatagarasu_cache_stale_total", { bucket: "photos" })).toBe(2);
    expect(find(p, "yatagarasu_cache_stale_total", { bucket: "docs" })).toBeUndefined();
    expect(find(p, "yatagarasu_cache_evictions_total")).toBe(4);
    expect(find(p, "yatagarasu_cache_bytes")).toBe(1024);
    expect(find(p, "yatagarasu_cache_items")).toBe(9);
    expect(find(p, "yatagarasu_cache_coalesced_total")).toBe(6);
    stats = { ...stats, hits: { photos: 8 }, bytes: 10 };
    p = parse(m.render());
    expect(find(p, "yatagarasu_cache_hits_total", { bucket: "photos" })).toBe(8);
    expect(find(p, "yatagarasu_cache_hits_total", { bucket: "_none" })).toBeUndefined();
    expect(find(p, "yatagarasu_cache_bytes")).toBe(10);
    fail = true; // values of the last good scrape stay
    p = parse(m.render());
    expect(find(p, "yatagarasu_cache_hits_total", { bucket: "photos" })).toBe(8);
  });

  test("process metrics", () => {
    const p = parse(make().render());
    expect(find(p, "process_resident_memory_bytes")!).toBeGreaterThan(1_000_000);
    expect(find(p, "process_cpu_seconds_total")!).toBeGreaterThan(0);
    const start = find(p, "process_start_time_seconds")!;
    expect(Math.abs(start - Date.now() / 1000)).toBeLessThan(3600);
    if (process.platform === "linux") expect(find(p, "process_open_fds")!).toBeGreaterThan(2);
    if (process.platform === "linux") {
      // Merged across workers (each reports its own limit), the limit is one process's, not their sum.
      const max = find(p, "process_max_fds")!;
      expect(max).toBeGreaterThan(2);
      expect(find(parse(renderSnapshot(mergeSnapshots([make().snapshot(), make().snapshot()]))), "process_max_fds")).toBe(max);
    }
    const off = parse(new Metrics({ version: "x", processMetrics: false }).render());
    expect([...off.type.keys()].some((n) => n.startsWith("process_"))).toBe(false);
  });

  test("resetBucketSet keeps a removed bucket's counters (an in-flight request still counts under it; back again, it continues), drops its breaker gauge, adds new buckets", () => {
    const m = make(["photos", "docs"]);
    m.observeRequest("docs", "GET", 200, 0.01, 5);
    m.observeS3("docs", 200, 0.01);
    m.setBreakerState("docs", 1);
    m.observeRequest("photos", "GET", 200, 0.01, 5);
    m.resetBucketSet(["photos", "videos"]);
    m.observeRequest("docs", "GET", 200, 0.01, 5); // in-flight request of the old config
    m.setBreakerState("docs", 1); // (its old upstream's breaker: not re-created)
    const p = parse(m.render());
    expect(find(p, "yatagarasu_http_requests_total", { bucket: "docs", method: "GET", status: "200" })).toBe(2);
    expect(find(p, "yatagarasu_http_requests_total", { bucket: "_none", method: "GET", status: "200" })).toBeUndefined();
    expect(find(p, "yatagarasu_http_response_bytes_total", { bucket: "docs" })).toBe(10);
    expect(find(p, "yatagarasu_circuit_breaker_state", { bucket: "docs" })).toBeUndefined();
    expect(find(p, "yatagarasu_http_requests_total", { bucket: "photos", method: "GET", status: "200" })).toBe(1);
    expect(find(p, "yatagarasu_s3_retries_total", { bucket: "videos" })).toBe(0);
    m.resetBucketSet(["photos", "docs"]);
    m.observeRequest("docs", "GET", 200, 0.01, 5);
    expect(find(parse(m.render()), "yatagarasu_http_requests_total", { bucket: "docs", method: "GET", status: "200" })).toBe(3); // never back to zero
  });

  test("snapshot is JSON-able and renders exactly like render()", () => {
    const m = make();
    m.observeRequest("photos", "GET", 200, 0.3, 10);
    m.observeS3("photos", "timeout", 20);
    const viaJson = renderSnapshot(JSON.parse(JSON.stringify(m.snapshot())));
    const direct = m.render();
    const strip = (s: string) => s.split("\n").filter((l) => !l.startsWith("process_")).join("\n");
    expect(strip(viaJson)).toBe(strip(direct));
  });
});

describe("renderMerged", () => {
  // A child's counts moved to the retired total when it died: the same float numbers added in
  // another grouping came out a hair lower (a _sum of 61.8445970810001 then 61.844597081000096),
  // which Prometheus reads as a counter reset.
  test("a counter or histogram sum a rounding error lower than the last scrape's stays at the last value; a real drop passes", () => {
    const snap = (sum: number, value: number) =>
      [
        { name: "h", help: "h", type: "histogram", labelNames: ["b"], merge: "sum", bounds: [1], series: [{ labels: ["x"], counts: [1, 1], sum, count: 1 }] },
        { name: "c_total", help: "c", type: "counter", labelNames: [], merge: "sum", series: [{ labels: [], value }] },
      ] as unknown as Parameters<typeof renderMerged>[0][number];
    const seen = new Map<string, number>();
    const sumOf = (text: string) => Number(/^h_sum\{b="x"\} (\S+)$/m.exec(text)?.[1]);
    const valueOf = (text: string) => Number(/^c_total (\S+)$/m.exec(text)?.[1]);
    const first = renderMerged([snap(61.8445970810001, 0.30000000000000004)], seen);
    expect([sumOf(first), valueOf(first)]).toEqual([61.8445970810001, 0.30000000000000004]);
    const second = renderMerged([snap(61.844597081000096, 0.3)], seen);
    expect([sumOf(second), valueOf(second)]).toEqual([61.8445970810001, 0.30000000000000004]);
    const grown = renderMerged([snap(62, 1)], seen);
    expect([sumOf(grown), valueOf(grown)]).toEqual([62, 1]);
    const reset = renderMerged([snap(10, 0.5)], seen);
    expect([sumOf(reset), valueOf(reset)]).toEqual([10, 0.5]);
  });

  // With server.workers > 1, a dead child's counters stay in the merged output (worker 0's
  // `retired`); a reload that removed a replica dropped that replica's counters from the live
  // processes only, so its merged series fell back to the dead child's share: a reset to
  // Prometheus (an increase() spike for a replica no longer configured). A removed replica now
  // keeps its counters, as a removed bucket keeps its own; only its breaker gauge goes.
  test("a replica a reload removes keeps its counters: the merged series with a dead child's share does not go down", () => {
    const worker0 = make();
    const child = make();
    for (const m of [worker0, child]) {
      const two = m.replicas.configure(new Map([["photos", ["one", "two"]]])).get("photos")!.get("two")!;
      two.success.value += 3;
      two.failoverTo.get("one")!.value += 2;
    }
    const retired = JSON.parse(JSON.stringify(child.snapshot())); // (the child died: what it last reported)
    const merged = () => parse(renderMerged([worker0.snapshot(), retired]));
    const before = merged();
    expect(find(before, "yatagarasu_s3_replica_requests_total", { bucket: "photos", replica: "two", result: "success" })).toBe(6);
    expect(find(before, "yatagarasu_s3_failovers_total", { bucket: "photos", from: "two", to: "one" })).toBe(4);
    worker0.replicas.configure(new Map([["photos", ["one"]]])); // the reload
    const after = merged();
    expect(find(after, "yatagarasu_s3_replica_requests_total", { bucket: "photos", replica: "two", result: "success" })).toBe(6);
    expect(find(after, "yatagarasu_s3_failovers_total", { bucket: "photos", from: "two", to: "one" })).toBe(4);
    // (the gauge goes: a removed replica's breaker is nobody's)
    expect(find(parse(worker0.render()), "yatagarasu_s3_replica_circuit_breaker_state", { bucket: "photos", replica: "two" })).toBeUndefined();
  });

  test("sums counters, histograms and summable gauges; max for generation, build_info, breaker", () => {
    const a = make();
    const b = make();
    a.observeRequest("photos", "GET", 200, 0.003, 100);
    b.observeRequest("photos", "GET", 200, 0.2, 50);
    b.observeRequest("photos", "GET", 404, 0.001, 0);
    a.inFlight(2);
    b.inFlight(3);
    a.setGeneration(4);
    b.setGeneration(5);
    a.setBreakerState("photos", 1);
    b.setBreakerState("photos", 0);
    a.auth("invalid");
    b.auth("invalid");
    const cache = (bytes: number, hits: number): CacheStats => ({ hits: { photos: hits }, misses: {}, evictions: 1, bytes, items: 2, coalesced: 0 });
    a.setCacheCollector(() => cache(100, 1));
    b.setCacheCollector(() => cache(300, 2));
    const sa = a.snapshot();
    const sb = JSON.parse(JSON.stringify(b.snapshot()));
    const p = parse(renderMerged([sa, sb]));
    expect(find(p, "yatagarasu_http_requests_total", { bucket: "photos", method: "GET", status: "200" })).toBe(2);
    expect(find(p, "yatagarasu_http_requests_total", { bucket: "photos", method: "GET", status: "404" })).toBe(1);
    expect(find(p, "yatagarasu_http_response_bytes_total", { bucket: "photos" })).toBe(150);
    const le = (x: string) => find(p, "yatagarasu_http_request_duration_seconds_bucket", { bucket: "photos", method: "GET", le: x });
    expect([le("0.001"), le("0.005"), le("0.25"), le("+Inf")]).toEqual([1, 2, 3, 3]);
    expect(find(p, "yatagarasu_http_request_duration_seconds_count", { bucket: "photos", method: "GET" })).toBe(3);
    expect(find(p, "yatagarasu_http_requests_in_flight")).toBe(5);
    expect(find(p, "yatagarasu_config_generation")).toBe(5);
    expect(find(p, "yatagarasu_build_info", { version: "1.2.3", commit: "abc1234" })).toBe(1);
    expect(find(p, "yatagarasu_circuit_breaker_state", { bucket: "photos" })).toBe(1);
    expect(find(p, "yatagarasu_auth_total", { result: "invalid" })).toBe(2);
    expect(find(p, "yatagarasu_cache_bytes")).toBe(400);
    expect(find(p, "yatagarasu_cache_items")).toBe(4);
    expect(find(p, "yatagarasu_cache_hits_total", { bucket: "photos" })).toBe(3);
    expect(find(p, "yatagarasu_cache_evictions_total")).toBe(2);
    const rss = (s: typeof sa) => (s.find((f) => f.name === "process_resident_memory_bytes")!.series[0] as { value: number }).value;
    expect(find(p, "process_resident_memory_bytes")).toBe(rss(sa) + rss(sb));
    for (const [name, t] of EXPECTED) expect(p.type.get(name)).toBe(t);
    // Every family appears once even though both processes have it.
    expect(renderMerged([sa, sb]).split("\n").filter((l) => l.startsWith("# TYPE yatagarasu_http_requests_total")).length).toBe(1);
  });

  test("gauge merge modes and label sets present in only one process", () => {
    const mk = (v: number, extra: boolean) => {
      const r = new Registry();
      r.gauge("g_sum", "s").labels().set(v);
      r.gauge("g_max", "m", [], "max").labels().set(v);
      r.gauge("g_min", "n", [], "min").labels().set(v);
      const c = r.counter("c_total", "c", ["k"]);
      c.labels("both").inc(v);
      if (extra) c.labels("only").inc(1);
      return r.snapshot();
    };
    const p = parse(renderSnapshot(mergeSnapshots([mk(3, false), mk(10, true), mk(5, false)])));
    expect(find(p, "g_sum")).toBe(18);
    expect(find(p, "g_max")).toBe(10);
    expect(find(p, "g_min")).toBe(3);
    expect(find(p, "c_total", { k: "both" })).toBe(18);
    expect(find(p, "c_total", { k: "only" })).toBe(1);
    expect(renderSnapshot(mergeSnapshots([]))).toBe("");
  });

  test("merging does not modify the input snapshots", () => {
    const m = make();
    m.observeRequest("photos", "GET", 200, 0.01, 1);
    const s = m.snapshot();
    const before = JSON.stringify(s);
    mergeSnapshots([s, s, s]);
    expect(JSON.stringify(s)).toBe(before);
  });
});

describe("hot path cost", () => {
  test("observeRequest micro-benchmark (reported, not asserted)", () => {
    const m = make();
    const N = 2_000_000;
    const statuses = [200, 206, 304, 404];
    for (let i = 0; i < 10_000; i++) m.observeRequest("photos", "GET", statuses[i & 3], 0.004, 1000);
    const t0 = Bun.nanoseconds();
    for (let i = 0; i < N; i++) m.observeRequest(i & 1 ? "photos" : "docs", "GET", statuses[i & 3], 0.004, 1000);
    const perCall = (Bun.nanoseconds() - t0) / N;
    console.log(`observeRequest: ${perCall.toFixed(1)} ns/call (target <= ~200 ns)`);
    const t1 = Bun.nanoseconds();
    for (let i = 0; i < 100; i++) m.render();
    console.log(`render: ${((Bun.nanoseconds() - t1) / 100 / 1000).toFixed(1)} us/scrape`);
  });
});
