/**
 * Debian's s3cmd (/usr/bin/s3cmd) with its own .s3cfg in a temp dir.
 *
 *   using s3cmd = s3cmdClient({ endpoint: s3.endpoint, credentials });
 *   await s3cmd.run("ls", "s3://bucket/");
 *   await s3cmd.run("get", "s3://bucket/key", localPath);
 *
 * Path-style: host_base and host_bucket are both the endpoint's host:port (no "%(bucket)s"),
 * plain HTTP, SigV4 (signature_v2 False) for `region`. s3cmd's own retries (5, with growing
 * sleeps, on 5xx and connection errors) are built in and cannot be configured; tests that
 * provoke 5xx should expect that delay or use another client.
 */
import { writeFileSync } from "node:fs";
import { hostPort, isolatedEnv, requireBinary, runProcess, tempDir, type RunOptions, type RunResult, type S3Target } from "./run.ts";

export interface S3cmdOptions extends S3Target {
  /** multipart_chunk_size_mb (s3cmd's default is 15). */
  multipartChunkSizeMb?: number;
  /** More .s3cfg lines, e.g. { enable_multipart: "False" }. */
  settings?: Record<string, string | number>;
}

export interface S3cmd extends Disposable {
  readonly configPath: string;
  readonly env: Record<string, string>;
  /** `s3cmd -c <cfg> <args>`; a trailing options object is taken as RunOptions. */
  run(...args: Array<string | RunOptions>): Promise<RunResult>;
  version(): Promise<string>;
  close(): void;
}

export function s3cmdClient(opts: S3cmdOptions): S3cmd {
  const dir = tempDir("yata-s3cmd-");
  const configPath = dir.file("s3cfg");
  const host = hostPort(opts.endpoint);
  const c = opts.credentials;
  const settings: Record<string, string | number> = {
    access_key: c?.accessKeyId ?? "",
    secret_key: c?.secretAccessKey ?? "",
    access_token: c?.sessionToken ?? "",
    host_base: host,
    host_bucket: host,
    use_https: new URL(opts.endpoint).protocol === "https:" ? "True" : "False",
    check_ssl_certificate: "False",
    signature_v2: "False",
    bucket_location: opts.region ?? "us-east-1",
    multipart_chunk_size_mb: opts.multipartChunkSizeMb ?? 15,
    progress_meter: "False",
    ...opts.settings,
  };
  const text = ["[default]", ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`), ""].join("\n");
  writeFileSync(configPath, text, { mode: 0o600 });
  const env = isolatedEnv(dir.path);

  return {
    configPath,
    env,
    run(...args) {
      const last = args[args.length - 1];
      const o = last !== undefined && typeof last !== "string" ? last : undefined;
      const a = (o ? args.slice(0, -1) : args) as string[];
      return runProcess([requireBinary("s3cmd"), "-c", configPath, ...a], { ...o, env: { ...env, ...o?.env } });
    },
    async version() {
      const r = await runProcess([requireBinary("s3cmd"), "--version"], { env });
      return r.stdout.trim();
    },
    close: dir.remove,
    [Symbol.dispose]: dir.remove,
  };
}
