/**
 * Debian's rclone (/usr/bin/rclone) with its own rclone.conf in a temp dir.
 *
 *   using rc = rcloneClient({ endpoint: s3.endpoint, credentials });
 *   await rc.run("ls", rc.remote("bucket"));                 // "s3:bucket"
 *   await rc.run("copy", rc.remote("bucket/dir"), localDir);
 *
 * One remote of type s3 (provider Other, force_path_style true, the given region and
 * endpoint, env_auth false). Retries are off by default (--retries 1 --low-level-retries 1)
 * so a failure is seen on the first attempt; pass `retries` to change that.
 */
import { writeFileSync } from "node:fs";
import { isolatedEnv, requireBinary, runProcess, tempDir, type RunOptions, type RunResult, type S3Target } from "./run.ts";

export interface RcloneOptions extends S3Target {
  /** The remote's name. Default "s3". */
  name?: string;
  /** Default 1 (no retry). */
  retries?: number;
  /** More remote settings, e.g. { no_check_bucket: "true", upload_cutoff: "5Mi", chunk_size: "5Mi" }. */
  settings?: Record<string, string | number>;
}

export interface Rclone extends Disposable {
  readonly configPath: string;
  readonly env: Record<string, string>;
  readonly name: string;
  /** "<name>:<path>", e.g. remote("bucket/dir") → "s3:bucket/dir". */
  remote(path: string): string;
  /** `rclone --config <conf> <args> --retries N --low-level-retries N`; a trailing options object is RunOptions. */
  run(...args: Array<string | RunOptions>): Promise<RunResult>;
  version(): Promise<string>;
  close(): void;
}

export function rcloneClient(opts: RcloneOptions): Rclone {
  const dir = tempDir("yata-rclone-");
  const configPath = dir.file("rclone.conf");
  const name = opts.name ?? "s3";
  const c = opts.credentials;
  const settings: Record<string, string | number> = {
    type: "s3",
    provider: "Other",
    env_auth: "false",
    ...(c ? { access_key_id: c.accessKeyId, secret_access_key: c.secretAccessKey } : {}),
    ...(c?.sessionToken ? { session_token: c.sessionToken } : {}),
    endpoint: opts.endpoint,
    region: opts.region ?? "us-east-1",
    force_path_style: "true",
    ...opts.settings,
  };
  writeFileSync(configPath, [`[${name}]`, ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`), ""].join("\n"), {
    mode: 0o600,
  });
  // XDG_CACHE_HOME: rclone keeps a cache dir; keep it inside the temp dir too
  const env = isolatedEnv(dir.path, { XDG_CACHE_HOME: dir.file("cache"), XDG_CONFIG_HOME: dir.file("xdg") });
  const retries = String(opts.retries ?? 1);

  return {
    configPath,
    env,
    name,
    remote: (path) => `${name}:${path}`,
    run(...args) {
      const last = args[args.length - 1];
      const o = last !== undefined && typeof last !== "string" ? last : undefined;
      const a = (o ? args.slice(0, -1) : args) as string[];
      const cmd = [requireBinary("rclone"), "--config", configPath, ...a, "--retries", retries, "--low-level-retries", retries];
      return runProcess(cmd, { ...o, env: { ...env, ...o?.env } });
    },
    async version() {
      const r = await runProcess([requireBinary("rclone"), "version"], { env });
      return r.stdout.split("\n")[0]!.trim();
    },
    close: dir.remove,
    [Symbol.dispose]: dir.remove,
  };
}
