/**
 * Debian's boto3 (python3-boto3, run by /usr/bin/python3) through boto3_runner.py.
 *
 *   const b = boto3Client({ endpoint: s3.endpoint, credentials });
 *   const [list, dl] = await b.run([
 *     { op: "list", Bucket: "b", PageSize: 2 },                  // list_objects_v2 paginator
 *     { op: "download_file", Bucket: "b", Key: "k", Filename: "/tmp/x" },
 *   ]);
 *   if (!list.ok) throw new Error(list.error.code);
 *
 * Ops run in order in ONE python process (importing boto3 costs ~0.3 s); each gets its own
 * result, so a failing op does not hide the next one. Path-style, SigV4, no retries
 * (total_max_attempts 1) unless `maxAttempts` says otherwise. The client has no config or
 * credentials files (AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE point at missing files),
 * and no credentials at all when `credentials` is omitted (requests are then unsigned).
 */
import { join } from "node:path";
import { isolatedEnv, requireBinary, runProcess, tempDir, type RunOptions, type S3Target } from "./run.ts";

const RUNNER = join(import.meta.dir, "boto3_runner.py");

export interface Boto3Options extends S3Target {
  addressingStyle?: "path" | "virtual";
  /** Total attempts per request. Default 1. */
  maxAttempts?: number;
  /** botocore >= 1.36 only; an older one fails every op with a TypeError when these are set. */
  requestChecksumCalculation?: "when_supported" | "when_required";
  responseChecksumValidation?: "when_supported" | "when_required";
}

interface Transfer {
  multipartThreshold?: number;
  multipartChunksize?: number;
  maxConcurrency?: number;
}

export type Boto3Op =
  /** A paginator (list_objects_v2 unless Method says list_objects or list_object_versions: StartAfter and FetchOwner V2's only); keys from Contents (Versions). */
  | { op: "list"; Method?: "list_objects_v2" | "list_objects" | "list_object_versions"; Bucket: string; Prefix?: string; Delimiter?: string; StartAfter?: string; EncodingType?: "url"; FetchOwner?: boolean; PageSize?: number }
  | ({ op: "download_file"; Bucket: string; Key: string; Filename: string } & Transfer)
  | ({ op: "upload_file"; Bucket: string; Key: string; Filename: string; ExtraArgs?: Record<string, unknown> } & Transfer)
  | { op: "put_object"; Bucket: string; Key: string; BodyBase64?: string; BodyText?: string; Params?: Record<string, unknown> }
  | { op: "delete_objects"; Bucket: string; Keys: string[]; Quiet?: boolean }
  | { op: "get_object"; Bucket: string; Key: string; Params?: Record<string, unknown> }
  /**
   * Any client method, e.g. { op: "call", method: "head_object", params: { Bucket, Key } } or service "sts".
   * `headers` are added to the request before it is signed (parameters Debian's boto3 1.26 does not know, such as If-None-Match).
   */
  | { op: "call"; method: string; params?: Record<string, unknown>; service?: "s3" | "sts"; headers?: Record<string, string> };

export interface Boto3Error {
  /** S3's error code ("NoSuchKey", "AccessDenied"), or a Python exception name. */
  code: string;
  message: string;
  status: number | null;
  /** The error document's other elements (<Key>, <UploadId>, <BucketName>, ...), as botocore read them; absent for a Python exception. */
  fields?: Record<string, string>;
}

/** `value` is the JSON of the response (ResponseMetadata folded into HTTPStatusCode). */
export type Boto3Result = { ok: true; value: any } | { ok: false; error: Boto3Error };

export interface Boto3Run {
  results: Boto3Result[];
  versions: { boto3: string; botocore: string; python: string };
  code: number;
  stderr: string;
}

export interface Boto3 {
  /** Runs the ops; throws if the runner itself failed (no JSON), with its stderr. */
  run(ops: Boto3Op[], opts?: RunOptions): Promise<Boto3Result[]>;
  /** The same, with the versions and the process's exit code and stderr. */
  runFull(ops: Boto3Op[], opts?: RunOptions): Promise<Boto3Run>;
}

/** Decodes a `{ base64 }` value from a get_object result's Body. */
export function bodyBytes(v: { base64: string }): Uint8Array {
  return Uint8Array.from(Buffer.from(v.base64, "base64"));
}

export function boto3Client(opts: Boto3Options): Boto3 {
  const client = {
    endpoint: opts.endpoint,
    region: opts.region ?? "us-east-1",
    credentials: opts.credentials ?? null,
    addressingStyle: opts.addressingStyle ?? "path",
    maxAttempts: opts.maxAttempts ?? 1,
    ...(opts.requestChecksumCalculation ? { requestChecksumCalculation: opts.requestChecksumCalculation } : {}),
    ...(opts.responseChecksumValidation ? { responseChecksumValidation: opts.responseChecksumValidation } : {}),
  };
  const runFull = async (ops: Boto3Op[], o: RunOptions = {}): Promise<Boto3Run> => {
    requireBinary("boto3");
    const python = requireBinary("python3");
    using dir = tempDir("yata-boto3-");
    const env = isolatedEnv(dir.path, {
      AWS_CONFIG_FILE: dir.file("none-config"),
      AWS_SHARED_CREDENTIALS_FILE: dir.file("none-credentials"),
      AWS_EC2_METADATA_DISABLED: "true",
      PYTHONDONTWRITEBYTECODE: "1",
      ...o.env,
    });
    const r = await runProcess([python, RUNNER], { ...o, env, stdin: JSON.stringify({ client, ops }) });
    let doc: { results: Boto3Result[]; versions: Boto3Run["versions"] };
    try {
      doc = JSON.parse(r.stdout);
    } catch {
      throw new Error(`boto3 runner failed (exit ${r.code}): ${r.stderr.slice(-2000)}`);
    }
    return { ...doc, code: r.code, stderr: r.stderr };
  };
  return {
    runFull,
    async run(ops, o) {
      return (await runFull(ops, o)).results;
    },
  };
}
