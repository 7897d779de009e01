/**
 * Static checks of deploy/grafana/yatagarasu.json and deploy/prometheus/alerts.yml (no Prometheus
 * needed; prometheus.test.ts runs them against a real one): every metric they name is one the
 * proxy registers, the panels tile the grid, and the required topics are covered.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { Metrics } from "../../src/observe/metrics.ts";
import { dashboardQueries, metricNamesOf } from "./queries.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const ROOT = join(import.meta.dir, "../..");
const dash = JSON.parse(readFileSync(join(ROOT, "deploy/grafana/yatagarasu.json"), "utf8"));
const rules = (parseYaml(readFileSync(join(ROOT, "deploy/prometheus/alerts.yml"), "utf8")) as {
  groups: Array<{ rules: Array<{ alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }> }>;
}).groups.flatMap((g) => g.rules);

/** Every metric family name registered in src/ (quoted "yatagarasu_…" / "process_…" strings). */
function registeredMetrics(): Set<string> {
  const names = new Set<string>();
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith(".ts")) for (const m of readFileSync(p, "utf8").matchAll(/"((?:yatagarasu|process)_[a-z0-9_]+)"/g)) names.add(m[1]);
    }
  };
  walk(join(ROOT, "src"));
  return names;
}
const known = registeredMetrics();
const isKnown = (n: string) => known.has(n) || known.has(n.replace(/_(bucket|sum|count)$/, ""));

test("every metric the dashboard and the alerts name is registered by the proxy", () => {
  const used = new Set([...dashboardQueries(dash).flatMap((q) => metricNamesOf(q.expr)), ...rules.flatMap((r) => metricNamesOf(r.expr))]);
  expect(used.size).toBeGreaterThan(20);
  expect([...used].filter((n) => !isKnown(n))).toEqual([]);
});

test("dashboard: unique ids, every panel on the Prometheus variable with queries, panels tile a 24-column grid without overlap", () => {
  const ps = dash.panels as Array<{ id: number; type: string; title: string; datasource?: { uid: string }; targets?: Array<{ expr: string; datasource: { uid: string } }>; gridPos: { x: number; y: number; w: number; h: number } }>;
  expect(new Set(ps.map((p) => p.id)).size).toBe(ps.length);
  expect(dash.templating.list.map((v: { name: string }) => v.name)).toEqual(["datasource", "instance", "bucket"]);
  for (const p of ps) {
    expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
    if (p.type === "row") continue;
    expect([p.title, p.datasource?.uid]).toEqual([p.title, "${datasource}"]);
    expect(p.targets!.length).toBeGreaterThan(0);
    for (const t of p.targets!) expect([p.title, t.datasource.uid, t.expr.length > 0]).toEqual([p.title, "${datasource}", true]);
  }
  for (let i = 0; i < ps.length; i++)
    for (let j = i + 1; j < ps.length; j++) {
      const a = ps[i].gridPos;
      const b = ps[j].gridPos;
      const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
      expect(overlap ? `${ps[i].title} overlaps ${ps[j].title}` : "").toBe("");
    }
});

test("dashboard covers requests, errors and latency by bucket, cache layers, upstream, breakers, auth, Redis", () => {
  const text = dashboardQueries(dash).map((q) => q.expr).join("\n");
  for (const needed of [
    /sum by \(bucket\) \(rate\(yatagarasu_http_requests_total/,
    /status=~"5\.\."/,
    /histogram_quantile\(0\.99, sum by \(bucket, method, le\) \(rate\(yatagarasu_http_request_duration_seconds_bucket/,
    /sum by \(layer\) \(rate\(yatagarasu_cache_layer_hits_total/,
    /sum by \(layer\) \(rate\(yatagarasu_cache_layer_evictions_total/,
    /yatagarasu_s3_request_duration_seconds_bucket/,
    /yatagarasu_s3_retries_total/,
    /yatagarasu_s3_failovers_total/,
    /yatagarasu_circuit_breaker_state/,
    /yatagarasu_auth_total\{[^}]*result!="success"/,
    /sum by \(authorizer, result\) \(rate\(yatagarasu_authz_decisions_total/,
    /yatagarasu_cache_layer_up\{[^}]*layer="redis"/,
  ])
    expect(needed.test(text) ? "" : String(needed)).toBe("");
});

test("dashboard: the open file descriptors panel plots the limit beside them (process_max_fds, as the README says)", () => {
  const ps = dash.panels as Array<{ title: string; targets?: Array<{ expr: string }> }>;
  const exprs = (ps.find((p) => p.title === "Open file descriptors")?.targets ?? []).map((t) => t.expr);
  expect(exprs.some((e) => e.startsWith("process_open_fds{"))).toBe(true);
  expect(exprs.some((e) => e.startsWith("process_max_fds{"))).toBe(true);
});

test("alerts: each has a severity and a summary; the required conditions are all there", () => {
  for (const r of rules) {
    expect([r.alert, ["critical", "warning"].includes(r.labels?.severity ?? "")]).toEqual([r.alert, true]);
    expect([r.alert, (r.annotations?.summary ?? "").length > 0]).toEqual([r.alert, true]);
  }
  const exprOf = (name: string) => rules.find((r) => r.alert === name)?.expr ?? "";
  expect(exprOf("YatagarasuHighErrorRatio")).toContain('status=~"5.."');
  expect(exprOf("YatagarasuHighLatencyP99")).toContain("histogram_quantile(0.99");
  expect(exprOf("YatagarasuCircuitBreakerOpen")).toContain("yatagarasu_circuit_breaker_state");
  expect(exprOf("YatagarasuNotReady")).toContain("yatagarasu_ready");
  expect(exprOf("YatagarasuRedisDegraded")).toContain('yatagarasu_cache_layer_up{layer="redis"}');
  expect(exprOf("YatagarasuAuditWriteFailing")).toContain("yatagarasu_audit_write_errors_total");
  expect(exprOf("YatagarasuAuthorizerFailing")).toContain('yatagarasu_authz_decisions_total{result=~"error|fail_open"}');
});

test("YatagarasuUploadsArriveDamaged names only codes a write is refused with for a damaged body (a code nothing answers never matches)", () => {
  const expr = rules.find((r) => r.alert === "YatagarasuUploadsArriveDamaged")?.expr ?? "";
  const codes = /code=~"([^"]+)"/.exec(expr)?.[1].split("|") ?? [];
  expect(codes.length).toBeGreaterThan(3);
  // Where the S3 front builds its refusals: a body check's PayloadError, or an s3Error of the
  // front (the catalogue of every code, src/fronts/s3/errors.ts, and STS's own are not answers to a write).
  const src: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith(".ts")) src.push(readFileSync(p, "utf8"));
    }
  };
  walk(join(ROOT, "src"));
  const answered = (code: string) => src.some((t) => t.includes(`PayloadError("${code}"`) || t.includes(`s3Error("${code}"`));
  expect(codes.filter((c) => !answered(c))).toEqual([]);
});

test("dashboard: $bucket lists every configured bucket, an idle one (no request yet) included: its query reads a series the proxy exports for each from the start", () => {
  const v = (dash.templating.list as Array<{ name: string; query: { query: string }; definition: string }>).find((x) => x.name === "bucket")!;
  expect(v.definition).toBe(v.query.query);
  const m = /^label_values\((\w+)\{instance=~"\$instance"\}, bucket\)$/.exec(v.query.query);
  expect(m?.[1]).toBeDefined();
  const text = new Metrics({ version: "t", buckets: ["idle"], processMetrics: false }).render();
  expect(text.split("\n").filter((l) => l.startsWith(`${m![1]}{`) && l.includes('bucket="idle"'))).toHaveLength(1);
});

test("dashboard: the 5xx ratios count what YatagarasuHighErrorRatio counts (no 501 NotImplemented, no 503 telling the client to slow down) over the same buckets", () => {
  const alert = rules.find((r) => r.alert === "YatagarasuHighErrorRatio")!.expr;
  const fiveXx = dashboardQueries(dash).filter((q) => /status=~"5\.\."/.test(q.expr));
  expect(fiveXx.map((q) => q.panel).sort()).toEqual(["5xx ratio", "Error ratio by bucket"]);
  // The alert's ratio with its grouping taken out, and the dashboard's with its variables (All): the same query.
  const strip = (e: string) =>
    e.replace(/sum by \([^)]*\)/g, "sum").replace(/instance=~"\.\*",bucket=~"\.\*",/g, "").replace(/\[[^\]]+\]/g, "[w]").replace(/\s+/g, "");
  const ratio = strip(alert.slice(0, alert.lastIndexOf(") > 0.05") + 1));
  for (const q of fiveXx) expect([q.panel, strip(q.expr)]).toEqual([q.panel, ratio]);
});

test("dashboard: latency from yatagarasu_http_request_duration_seconds is shown by method or for GET alone, never an upload's time mixed into a download's", () => {
  const latency = dashboardQueries(dash).filter((q) => q.expr.includes("yatagarasu_http_request_duration_seconds_bucket"));
  expect(latency.length).toBeGreaterThan(0);
  for (const q of latency) expect([q.panel, /sum by \([^)]*\bmethod\b[^)]*\)|method="GET"/.test(q.expr)]).toEqual([q.panel, true]);
});
