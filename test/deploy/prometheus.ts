/**
 * A real Prometheus (Debian's `prometheus` package) for tests, on a free loopback port with its
 * own config and TSDB folder (never a system service):
 *
 *   await using prom = await startPrometheus({ targets: ["127.0.0.1:9090"], ruleFiles: [path], intervalSeconds: 1 });
 *   await prom.query('sum(rate(yatagarasu_http_requests_total[15s]))')   // the API's data.result
 *   await prom.alerts()                                                  // /api/v1/alerts
 *
 * Readiness proves that OUR process answers (its storage.tsdb.path flag is our folder), as
 * test/fixtures/services.ts does for redis and haproxy; a lost race for the port is retried.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PortInUseError, withFreePort } from "../fixtures/services.ts";
import { waitFor } from "../helpers/wait.ts";

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}
export interface PromAlert {
  labels: Record<string, string>;
  state: "pending" | "firing" | "inactive";
  value: string;
}
export interface PromRule {
  name: string;
  query: string;
  health: string;
  lastError?: string;
  type: string;
  state?: string;
}

export interface Prometheus extends AsyncDisposable {
  readonly url: string;
  /** An instant query; throws (with Prometheus's error) unless the API says success. */
  query(expr: string): Promise<PromSample[]>;
  alerts(): Promise<PromAlert[]>;
  rules(): Promise<PromRule[]>;
  output(): string;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** host:port of each scrape target (job "yatagarasu", path /metrics). */
  targets: string[];
  ruleFiles?: string[];
  /** Scrape and rule evaluation interval (default 1 s). */
  intervalSeconds?: number;
}

/** Debian's prometheus package ships both; .ci/run installs it. */
function binary(name: "prometheus" | "promtool"): string {
  const path = `/usr/bin/${name}`;
  if (!existsSync(path)) throw new Error(`${path} is not installed (Debian package prometheus; .ci/run installs it)`);
  return path;
}

async function api<T>(base: string, path: string): Promise<T> {
  const r = await fetch(base + path, { signal: AbortSignal.timeout(5000) });
  const body = (await r.json()) as { status: string; data: T; error?: string; errorType?: string };
  if (body.status !== "success") throw new Error(`prometheus ${path}: ${body.errorType ?? r.status}: ${body.error ?? "?"}`);
  return body.data;
}

export async function startPrometheus(o: PrometheusOptions): Promise<Prometheus> {
  const bin = binary("prometheus");
  const dir = mkdtempSync(join(tmpdir(), "yata-prom-"));
  const every = `${o.intervalSeconds ?? 1}s`;
  const configPath = join(dir, "prometheus.yml");
  writeFileSync(
    configPath,
    JSON.stringify({
      global: { scrape_interval: every, evaluation_interval: every, scrape_timeout: every },
      rule_files: o.ruleFiles ?? [],
      scrape_configs: [{ job_name: "yatagarasu", static_configs: [{ targets: o.targets }] }],
    }),
  );
  const tsdb = join(dir, "data");
  let out = "";
  const start = async (port: number) => {
    const proc = Bun.spawn([bin, `--config.file=${configPath}`, `--storage.tsdb.path=${tsdb}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"], { cwd: dir, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const drain = async (s: ReadableStream<Uint8Array>) => {
      const dec = new TextDecoder();
      for await (const c of s) out = (out + dec.decode(c, { stream: true })).slice(-64 * 1024);
    };
    void drain(proc.stdout);
    void drain(proc.stderr);
    let exited: number | undefined;
    void proc.exited.then((c) => (exited = c));
    const base = `http://127.0.0.1:${port}`;
    try {
      await waitFor(
        async () => {
          if (exited !== undefined) {
            if (/address already in use/i.test(out)) throw new PortInUseError(out);
            throw new Error(`prometheus exited with ${exited}:\n${out}`);
          }
          try {
            const flags = await api<Record<string, string>>(base, "/api/v1/status/flags");
            return flags["storage.tsdb.path"] === tsdb && (await fetch(`${base}/-/ready`)).status === 200;
          } catch {
            return false;
          }
        },
        { timeoutMs: 20_000, intervalMs: 50, message: () => `prometheus to be ready:\n${out}` },
      );
    } catch (e) {
      proc.kill("SIGKILL");
      await proc.exited;
      throw e;
    }
    return { proc, base };
  };
  let started: Awaited<ReturnType<typeof start>>;
  try {
    started = await withFreePort(start);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const { proc, base } = started;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    proc.kill("SIGTERM");
    const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await proc.exited;
    clearTimeout(t);
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    url: base,
    query: (expr) => api<{ resultType: string; result: PromSample[] }>(base, `/api/v1/query?query=${encodeURIComponent(expr)}`).then((d) => (d.resultType === "scalar" ? [{ metric: {}, value: d.result as unknown as [number, string] }] : d.result)),
    alerts: () => api<{ alerts: PromAlert[] }>(base, "/api/v1/alerts").then((d) => d.alerts),
    rules: () => api<{ groups: Array<{ rules: PromRule[] }> }>(base, "/api/v1/rules").then((d) => d.groups.flatMap((g) => g.rules)),
    output: () => out,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** `promtool check rules FILE`: exit code and output. */
export async function promtoolCheckRules(file: string): Promise<{ code: number; output: string }> {
  const p = Bun.spawn([binary("promtool"), "check", "rules", file], { stdout: "pipe", stderr: "pipe" });
  const [a, b, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, output: a + b };
}

/** `promtool test rules <file>`: its unit tests (rule_files relative to the file's folder). */
export async function promtoolTestRules(file: string): Promise<{ code: number; output: string }> {
  const p = Bun.spawn([binary("promtool"), "test", "rules", file], { stdout: "pipe", stderr: "pipe" });
  const [a, b, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, output: a + b };
}
