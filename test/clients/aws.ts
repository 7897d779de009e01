/**
 * Debian's aws-cli (/usr/bin/aws) in an isolated environment.
 *
 *   using aws = awsCli({ endpoint: s3.endpoint, credentials: { accessKeyId, secretAccessKey } });
 *   const r = await aws.s3("cp", "s3://bucket/key", "-");   // r.bytes is the object
 *   const l = await aws.s3api("list-objects-v2", "--bucket", "b", "--max-keys", "2");
 *   const t = await aws.sts("assume-role-with-web-identity", "--role-arn", ..., { endpoint: stsUrl });
 *
 * The config and credentials files live in a temp dir (AWS_CONFIG_FILE and
 * AWS_SHARED_CREDENTIALS_FILE), HOME points there too, IMDS is disabled, there is no pager,
 * and every call gets `--endpoint-url`. Retries are off by default (max_attempts = 1) so a
 * failed first attempt is seen, not hidden by a retry.
 */
import { writeFileSync } from "node:fs";
import { isolatedEnv, requireBinary, runProcess, tempDir, type RunOptions, type RunResult, type S3Target } from "./run.ts";

export interface AwsCliOptions extends S3Target {
  /** Default "path" (the S3 fixture and the proxy's default are path-style). */
  addressingStyle?: "path" | "virtual";
  /** aws-cli >= 2.23 only; older versions ignore the setting. Omitted: the CLI's default. */
  requestChecksumCalculation?: "when_supported" | "when_required";
  responseChecksumValidation?: "when_supported" | "when_required";
  /** Total attempts per request (the config's max_attempts). Default 1. */
  maxAttempts?: number;
  /** More `s3 =` settings, e.g. { multipart_threshold: "8MB", multipart_chunksize: "8MB" }. */
  s3Settings?: Record<string, string | number>;
  /** Extra environment variables for every call. */
  env?: Record<string, string>;
}

export interface AwsRunOptions extends RunOptions {
  /** Endpoint for this call instead of the configured one; null: no --endpoint-url at all. */
  endpoint?: string | null;
}

type Arg = string | AwsRunOptions;

export interface AwsCli extends Disposable {
  readonly configPath: string;
  readonly credentialsPath: string;
  /** The environment every call runs with. */
  readonly env: Record<string, string>;
  /** `aws <args> --endpoint-url <endpoint> --no-cli-pager` */
  run(args: string[], opts?: AwsRunOptions): Promise<RunResult>;
  /** `aws s3 ...`; a trailing options object is taken as AwsRunOptions. */
  s3(...args: Arg[]): Promise<RunResult>;
  s3api(...args: Arg[]): Promise<RunResult>;
  sts(...args: Arg[]): Promise<RunResult>;
  /** `aws --version`, e.g. "aws-cli/2.9.19 Python/3.11.2 ..." */
  version(): Promise<string>;
  /** Remove the temp dir. Idempotent. */
  close(): void;
}

function splitArgs(args: Arg[]): [string[], AwsRunOptions | undefined] {
  const last = args[args.length - 1];
  if (last !== undefined && typeof last !== "string") return [args.slice(0, -1) as string[], last];
  return [args as string[], undefined];
}

export function awsCli(opts: AwsCliOptions): AwsCli {
  const dir = tempDir("yata-aws-");
  const region = opts.region ?? "us-east-1";
  const configPath = dir.file("config");
  const credentialsPath = dir.file("credentials");

  const s3Lines = Object.entries({ addressing_style: opts.addressingStyle ?? "path", ...opts.s3Settings }).map(
    ([k, v]) => `    ${k} = ${v}`,
  );
  const config = [
    "[default]",
    `region = ${region}`,
    "output = json",
    `max_attempts = ${opts.maxAttempts ?? 1}`,
    "retry_mode = standard",
    ...(opts.requestChecksumCalculation ? [`request_checksum_calculation = ${opts.requestChecksumCalculation}`] : []),
    ...(opts.responseChecksumValidation ? [`response_checksum_validation = ${opts.responseChecksumValidation}`] : []),
    "s3 =",
    ...s3Lines,
    "",
  ].join("\n");
  writeFileSync(configPath, config);

  const c = opts.credentials;
  writeFileSync(
    credentialsPath,
    c
      ? [
          "[default]",
          `aws_access_key_id = ${c.accessKeyId}`,
          `aws_secret_access_key = ${c.secretAccessKey}`,
          ...(c.sessionToken ? [`aws_session_token = ${c.sessionToken}`] : []),
          "",
        ].join("\n")
      : "",
    { mode: 0o600 },
  );

  const env = isolatedEnv(dir.path, {
    AWS_CONFIG_FILE: configPath,
    AWS_SHARED_CREDENTIALS_FILE: credentialsPath,
    AWS_DEFAULT_REGION: region,
    AWS_REGION: region,
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_PAGER: "",
    AWS_CLI_AUTO_PROMPT: "off",
    ...(c
      ? {
          AWS_ACCESS_KEY_ID: c.accessKeyId,
          AWS_SECRET_ACCESS_KEY: c.secretAccessKey,
          ...(c.sessionToken ? { AWS_SESSION_TOKEN: c.sessionToken } : {}),
        }
      : {}),
    ...opts.env,
  });

  const run = async (args: string[], o: AwsRunOptions = {}): Promise<RunResult> => {
    const bin = requireBinary("aws");
    const endpoint = o.endpoint === undefined ? opts.endpoint : o.endpoint;
    const tail = endpoint === null ? [] : ["--endpoint-url", endpoint];
    return runProcess([bin, ...args, ...tail, "--no-cli-pager"], { ...o, env: { ...env, ...o.env } });
  };
  const sub =
    (name: string) =>
    (...args: Arg[]) => {
      const [a, o] = splitArgs(args);
      return run([name, ...a], o);
    };

  return {
    configPath,
    credentialsPath,
    env,
    run,
    s3: sub("s3"),
    s3api: sub("s3api"),
    sts: sub("sts"),
    async version() {
      const r = await runProcess([requireBinary("aws"), "--version"], { env });
      return (r.stdout + r.stderr).trim();
    },
    close: dir.remove,
    [Symbol.dispose]: dir.remove,
  };
}
