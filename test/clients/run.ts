/**
 * Shared plumbing for the real-client helpers (aws-cli, s3cmd, rclone, boto3, chromium):
 *
 * - `runProcess`: async Bun.spawn with a timeout. Never spawnSync: the S3 fixture and the
 *   proxy usually run inside the test process and must keep answering while a client runs.
 * - `clientTest`: `test` when the client is installed, or when CI is set (a missing client
 *   is then a failure with a clear message); `test.skip` with a warning otherwise.
 * - `isolatedEnv` / `tempDir`: each client sees only the files and variables we give it,
 *   never the developer's ~/.aws, ~/.s3cfg or rclone.conf.
 */
import { test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Where and as whom a client talks S3: the fixture's or the proxy's S3 front. */
export interface S3Target {
  /** "http://127.0.0.1:PORT" */
  endpoint: string;
  /** Default "us-east-1". */
  region?: string;
  /** Omitted: the client runs with no credentials at all (unsigned calls such as STS web identity). */
  credentials?: Credentials;
}

export interface RunResult {
  code: number;
  /** stdout as UTF-8 text. */
  stdout: string;
  /** stdout as raw bytes, for byte-exact comparisons of downloads to "-". */
  bytes: Uint8Array;
  stderr: string;
  /** True when the process was killed because it outlived `timeoutMs`. */
  timedOut: boolean;
}

export interface RunOptions {
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string | Uint8Array;
  /** Default 120 000. The process is SIGKILLed after it, and `timedOut` is set. */
  timeoutMs?: number;
}

/** Debian's binaries, by absolute path: pyenv and other shims must not shadow them. */
export const BINARIES = {
  aws: "/usr/bin/aws",
  s3cmd: "/usr/bin/s3cmd",
  rclone: "/usr/bin/rclone",
  python3: "/usr/bin/python3",
  /** Not a binary: Debian's boto3 package directory, checked for existence like the others. */
  boto3: "/usr/lib/python3/dist-packages/boto3",
  chromium: "/usr/bin/chromium",
  redisServer: "/usr/bin/redis-server",
  haproxy: "/usr/sbin/haproxy",
} as const;

/** Debian package that provides each binary; named in the "missing" messages. */
export const PACKAGES: Record<keyof typeof BINARIES, string> = {
  aws: "awscli",
  s3cmd: "s3cmd",
  rclone: "rclone",
  python3: "python3",
  boto3: "python3-boto3",
  chromium: "chromium",
  redisServer: "redis-server",
  haproxy: "haproxy",
};

export function missingMessage(name: keyof typeof BINARIES): string {
  return `${BINARIES[name]} is not installed (Debian package ${PACKAGES[name]}; .ci/run installs it)`;
}

/** Throws the clear "not installed" error; called by each helper before it spawns. */
export function requireBinary(name: keyof typeof BINARIES): string {
  if (!existsSync(BINARIES[name])) throw new Error(missingMessage(name));
  return BINARIES[name];
}

const warned = new Set<string>();

/**
 * `test` when every named binary exists or CI is set (then a missing binary fails the test
 * through requireBinary's error); otherwise `test.skip`, with one warning per binary.
 */
export function clientTest(...names: Array<keyof typeof BINARIES>): typeof test {
  const missing = names.filter((n) => !existsSync(BINARIES[n]));
  if (missing.length === 0 || process.env.CI) return test;
  for (const n of missing) {
    if (warned.has(n)) continue;
    warned.add(n);
    console.warn(`[skip] ${missingMessage(n)}; tests that need it are skipped (CI is not set)`);
  }
  return test.skip as unknown as typeof test;
}

/** A temporary directory that removes itself on dispose. */
export interface TempDir extends Disposable {
  readonly path: string;
  file(name: string): string;
  remove(): void;
}

export function tempDir(prefix = "yata-client-"): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  const remove = () => rmSync(path, { recursive: true, force: true });
  return { path, file: (name) => join(path, name), remove, [Symbol.dispose]: remove };
}

/**
 * A minimal environment: PATH, LANG and a HOME inside `home` (so no ~/.aws, ~/.s3cfg,
 * ~/.config/rclone of the developer is read), plus `extra`. Proxy variables are dropped:
 * every client talks to loopback directly.
 */
export function isolatedEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    LANG: "C.UTF-8",
    LC_ALL: "C.UTF-8",
    HOME: home,
    TMPDIR: tmpdir(),
    NO_PROXY: "*",
    ...extra,
  };
}

export async function runProcess(cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
  const proc = Bun.spawn(cmd, {
    cwd: opts.cwd,
    env: opts.env,
    stdin: opts.stdin === undefined ? "ignore" : new Blob([opts.stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, opts.timeoutMs ?? 120_000);
  try {
    const [out, stderr, code] = await Promise.all([
      new Response(proc.stdout).arrayBuffer(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    const bytes = new Uint8Array(out);
    const note = timedOut ? `\n[runProcess] killed after ${opts.timeoutMs ?? 120_000} ms: ${cmd[0]}` : "";
    return { code, stdout: new TextDecoder().decode(bytes), bytes, stderr: stderr + note, timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/** "host:port" of an http endpoint, as s3cmd's host_base wants it. */
export function hostPort(endpoint: string): string {
  return new URL(endpoint).host;
}
