/**
 * Audit trail tests: the App in the test process (both fronts) over the S3 fixture, with a
 * recording logger, the audit section given, and helpers to read the trail and make a folder
 * read-only (also as root).
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { listenBun, type Listener } from "../../src/server.ts";
import { listenS3 } from "../../src/server/s3-listener.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { smithySigned } from "../fronts/s3/helpers.ts";
import { frontYaml, UPSTREAM, type EnvOptions } from "../e2e/s3-front-helpers.ts";
import type { Logger } from "../../src/observe/log.ts";

/** A Logger that keeps every line (to check what was logged, and how often). */
export function recordingLog(): Logger & { lines: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> } {
  const lines: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
  return { lines, level: "info", enabled: () => true, log: (l, m, f) => at(l)(m, f), trace: at("trace"), debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), access: () => {}, flush: () => {} };
}

export type AuditLine = Record<string, unknown>;

export function tempDir(prefix = "yata-audit-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startFixture(): Promise<S3Fixture> {
  const s3 = await startS3Fixture({ buckets: [{ name: "data" }, { name: "private" }], credentials: [{ ...UPSTREAM, buckets: ["data", "private"] }] });
  await s3.put("data", "doc.txt", "0123456789", { contentType: "text/plain" });
  await s3.put("private", "p.txt", "private body");
  return s3;
}

export interface AuditEnv extends AsyncDisposable {
  app: App;
  log: ReturnType<typeof recordingLog>;
  url(path: string): string;
  s3Port: number;
  /** Flushes the trail and returns its lines (the current file). */
  lines(): Promise<AuditLine[]>;
  metric(series: string): number | undefined;
  stop(): Promise<void>;
}

/** `o`: the S3-front test config's options (other buckets, more top-level YAML after the audit section). */
export async function startAuditEnv(s3: S3Fixture, audit: string, o: EnvOptions = {}): Promise<AuditEnv> {
  const config = parseConfig(frontYaml(s3.endpoint, { ...o, extra: `audit:\n${audit}${o.extra ?? ""}` }));
  const log = recordingLog();
  const app = await App.create(config, { log, probeIntervalMs: 600_000 });
  const main: Listener = listenBun(app, config);
  const front = (await listenS3(app, config))!;
  const path = app.audit!.path;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await front.stop(true);
    await main.stop(true);
    await app.close();
  };
  return {
    app,
    log,
    url: (p) => `http://127.0.0.1:${main.port}${p}`,
    s3Port: front.port,
    async lines() {
      await app.audit!.flush();
      return existsSync(path) ? parseLines(readFileSync(path, "utf8")) : [];
    },
    metric: (series) => sample(app.metrics.render(), series),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

export function parseLines(text: string): AuditLine[] {
  return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as AuditLine);
}

/** The value of one series (exact label set) in a Prometheus text page. */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  return undefined;
}

/** A SigV4-signed request to the S3 front, as the AWS SDK signs it. */
export async function s3Fetch(env: AuditEnv, path: string, creds: { accessKeyId: string; secretAccessKey: string }, query?: Record<string, string>): Promise<Response> {
  const host = `127.0.0.1:${env.s3Port}`;
  const v = await smithySigned({ creds, date: new Date(), path, query, host });
  const headers = new Headers(v.headers);
  headers.delete("host");
  return fetch(`http://${host}${v.rawPath}${v.rawQuery ? `?${v.rawQuery}` : ""}`, { method: v.method, headers });
}

function writable(dir: string): boolean {
  const probe = join(dir, ".probe");
  try {
    writeFileSync(probe, "x");
    unlinkSync(probe);
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes `dir` read-only for this process: mode 0555, and, for root (whom modes do not stop), the
 * immutable attribute. Throws if the folder is still writable: the test must not pass vacuously.
 * Returns the undo.
 */
export async function makeReadOnly(dir: string): Promise<() => Promise<void>> {
  chmodSync(dir, 0o555);
  let immutable = false;
  if (writable(dir)) {
    const p = Bun.spawn(["chattr", "+i", dir], { stdout: "ignore", stderr: "pipe" });
    const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
    immutable = code === 0;
    if (writable(dir)) throw new Error(`cannot make ${dir} read-only for this process (chattr: ${err.trim() || code})`);
  }
  return async () => {
    if (immutable) await Bun.spawn(["chattr", "-i", dir]).exited;
    chmodSync(dir, 0o755);
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
