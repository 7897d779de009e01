/**
 * End-to-end harness: the real proxy (as a subprocess running src/main.ts, or the compiled binary
 * when YATAGARASU_BIN is set) in front of the real S3 fixture (s3rver + SigV4 verification).
 *
 *   await using px = await startProxy(configYaml);      // port 0; the port is read from the log
 *   const res = await fetch(px.url("/bucket/key"));
 *   px.logs()                                           // parsed JSON log lines so far
 *
 * `startInProcess` runs the same App + listener inside the test process (faster; used where a
 * test needs to reach into the App, e.g. to count reloads).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { nullLogger, type Logger } from "../../src/observe/log.ts";
import { listenBun, listenNode, type Listener } from "../../src/server.ts";
import { waitFor } from "../helpers/wait.ts";
import { SHIPPED_HEADER_LIMIT } from "../../src/http/header-limit.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";

const MAIN = join(import.meta.dir, "../../src/main.ts");

export interface ProxyProcess extends AsyncDisposable {
  port: number;
  metricsPort?: number;
  proc: ReturnType<typeof Bun.spawn>;
  dir: string;
  configPath: string;
  url(path: string): string;
  /** Parsed JSON log lines printed so far (stdout). */
  logs(): Array<Record<string, unknown>>;
  /** Raw stdout + stderr so far. */
  output(): string;
  /** Waits until a log line matches (no sleeps). */
  waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Rewrites the config file (for reload tests). */
  writeConfig(yaml: string): void;
  signal(sig: NodeJS.Signals): void;
  exited: Promise<number>;
  stop(): Promise<number>;
}

/** The workers of a group that logged "stopped", in order. */
export function stoppedWorkers(px: ProxyProcess): unknown[] {
  return px
    .logs()
    .filter((l) => l.msg === "stopped")
    .map((l) => l.worker)
    .sort();
}

export function command(): string[] {
  // As `bun run start` runs it (the binary has the flag built in).
  return process.env.YATAGARASU_BIN ? [process.env.YATAGARASU_BIN] : [process.execPath, `--max-http-header-size=${SHIPPED_HEADER_LIMIT}`, MAIN];
}

/** Runs the CLI to completion (for --check, --version, bad configs). */
export async function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([...command(), ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...opts.env }, cwd: opts.cwd });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/**
 * How long startProxy waits for the proxy's first line ("listening" or "primary started"). A start
 * (`bun src/main.ts` or the compiled binary) takes well under a second alone, but a CI run beside
 * other engineers' suites on 2 cores once printed nothing for 15 s (the limit then), failing the
 * set-up of a whole file (failover-body). A proxy that fails to start exits, and that fails the wait
 * at once: only a start that is merely slow waits this long. A hook or test that starts one needs a
 * time limit past this (STARTUP_MS plus its own work).
 */
export const STARTUP_MS = 60_000;

/** `prefix`: a command the proxy is run under (`prlimit --nofile=64:64 --`). */
export async function startProxy(configYaml: string, opts: { env?: Record<string, string>; files?: Record<string, string>; prefix?: string[] } = {}): Promise<ProxyProcess> {
  const dir = mkdtempSync(join(tmpdir(), "yata-e2e-"));
  const configPath = join(dir, "config.yaml");
  writeFileSync(configPath, configYaml);
  for (const [name, content] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), content);
  const proc = Bun.spawn([...(opts.prefix ?? []), ...command(), "--config", configPath], { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...opts.env } });
  let out = "";
  let err = "";
  const lines: Array<Record<string, unknown>> = [];
  const pump = async (stream: ReadableStream<Uint8Array>, isOut: boolean) => {
    const dec = new TextDecoder();
    let partial = "";
    for await (const chunk of stream) {
      const text = dec.decode(chunk, { stream: true });
      if (!isOut) {
        err += text;
        continue;
      }
      out += text;
      partial += text;
      let nl: number;
      while ((nl = partial.indexOf("\n")) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        try {
          lines.push(JSON.parse(line));
        } catch {
          // text format or a stray line
        }
      }
    }
  };
  void pump(proc.stdout as ReadableStream<Uint8Array>, true);
  void pump(proc.stderr as ReadableStream<Uint8Array>, false);
  let exitedFlag = false;
  const exited = proc.exited.then((c) => {
    exitedFlag = true; // waiters fail at once when the proxy dies at startup
    return c;
  });

  const waitForLog = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 15000): Promise<Record<string, unknown>> =>
    waitFor(
      () => {
        const hit = lines.find(pred);
        if (!hit && exitedFlag) throw new Error(`proxy exited before the expected log line.\nstdout:\n${out}\nstderr:\n${err}`);
        return hit;
      },
      { timeoutMs, message: () => `a log line.\nstdout:\n${out}\nstderr:\n${err}` },
    );

  let listening: Record<string, unknown>;
  try {
    listening = await waitForLog((l) => l.msg === "listening" || l.msg === "primary started", STARTUP_MS);
  } catch (err) {
    // (never listened in time: killed, not left running after the test that gave up on it)
    if (!exitedFlag) proc.kill("SIGKILL");
    await exited;
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const stop = async () => {
    if (!exitedFlag) proc.kill("SIGTERM");
    const code = await exited;
    rmSync(dir, { recursive: true, force: true });
    return code;
  };
  return {
    port: Number(listening.port),
    metricsPort: listening.metrics_port === undefined ? undefined : Number(listening.metrics_port),
    proc,
    dir,
    configPath,
    url: (p) => `http://127.0.0.1:${Number(listening.port)}${p}`,
    logs: () => lines,
    output: () => out + err,
    waitForLog,
    writeConfig: (yaml) => writeFileSync(configPath, yaml),
    signal: (sig) => proc.kill(sig),
    exited,
    stop,
    [Symbol.asyncDispose]: async () => {
      if (!exitedFlag) proc.kill("SIGKILL");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface InProcessProxy extends AsyncDisposable {
  app: App;
  port: number;
  url(path: string): string;
  stop(): Promise<void>;
}

/** The same App and listener, inside the test process. Logs are discarded unless `log` is given. */
export async function startInProcess(configYaml: string, opts: { configPath?: string; fetch?: typeof fetch; probeIntervalMs?: number; log?: Logger } = {}): Promise<InProcessProxy> {
  const config = parseConfig(configYaml, { file: opts.configPath });
  const app = await App.create(config, { configPath: opts.configPath, log: opts.log ?? nullLogger, fetch: opts.fetch, probeIntervalMs: opts.probeIntervalMs });
  const listener: Listener = config.server.engine === "node" ? await listenNode(app, config) : listenBun(app, config);
  const stop = async () => {
    await listener.stop(true);
    app.close();
  };
  return { app, port: listener.port, url: (p) => `http://127.0.0.1:${listener.port}${p}`, stop, [Symbol.asyncDispose]: stop };
}

/** A minimal config for one or more buckets on the fixture. */
export function bucketYaml(b: { name: string; prefix: string; bucket: string; endpoint: string; key?: string; secret?: string; extra?: string }): string {
  const creds = b.key ? `, access_key: "${b.key}", secret_key: "${b.secret}"` : "";
  return `  - name: ${b.name}\n    path_prefix: ${b.prefix}\n    s3: { bucket: ${b.bucket}, endpoint: "${b.endpoint}"${creds} }\n${b.extra ?? ""}`;
}

/** An S3 fixture with a bucket `rw` the given key may write, and an in-process proxy on the node engine writing to it anonymously at /rw. */
export async function startNodeWriteWorld(key: string, secret: string): Promise<{ s3: S3Fixture; px: InProcessProxy; stop(): Promise<void> }> {
  const s3 = await startS3Fixture({ buckets: [{ name: "rw" }], credentials: [{ accessKeyId: key, secretAccessKey: secret, buckets: ["rw"], write: true }] });
  let px: InProcessProxy;
  try {
    px = await startInProcess(
      `server: { address: 127.0.0.1, port: 0, engine: node }\nbuckets:\n` +
        bucketYaml({ name: "rw", prefix: "/rw", bucket: "rw", endpoint: s3.endpoint, key, secret, extra: "    access: read-write\n    auth: { anonymous_writes: true }\n" }),
    );
  } catch (err) {
    await s3.stop();
    throw err;
  }
  return {
    s3,
    px,
    stop: async () => {
      await px.stop();
      await s3.stop();
    },
  };
}
