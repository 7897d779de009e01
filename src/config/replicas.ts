/**
 * Bucket replicas (`s3.replicas`, the original project's multi-region form):
 *
 *   s3:
 *     replicas:
 *       - { name: primary,   bucket: p-use1, region: us-east-1, endpoint: …, access_key: …, secret_key: …, priority: 1 }
 *       - { name: secondary, bucket: p-usw2, region: us-west-2, endpoint: …, access_key: …, secret_key: …, priority: 2 }
 *
 * Each replica carries its own connection keys (bucket, region, endpoint, credentials); the
 * bucket's other s3 keys (timeout, connect_timeout, retry, circuit_breaker, rate_limit) apply to
 * every replica, each with its own breaker and retry budget. A lower priority is preferred.
 *
 * `resolveS3` runs inside the schema (S3Schema's transform), so the rest of the program sees one
 * shape: the top-level connection keys always hold the primary's (the single-endpoint form is a
 * set of one), and `replicas`, when given, is sorted by priority.
 */
import { z } from "zod";
import { emptyLabelHostProblem, NO_SCHEME, schemeless, urlKey, userinfoProblem } from "./url.ts";
import { timerSeconds } from "./durations.ts";

const nonEmpty = z.string().min(1, "must not be empty");
const seconds = timerSeconds;

/** Replica names show up in metric labels, /ready and the access log: keep them plain. */
const REPLICA_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** The rule for a bucket's (and a replica's) s3.bucket. */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.\-_]{1,254}$/i;

/**
 * A bucket's `access_key` or `session_token` is sent to S3 in a request header (Authorization's
 * Credential=, x-amz-security-token), and `openfga_api_token` to OpenFGA (Authorization: Bearer):
 * a line break or another control character (the newline a secret file leaves, read through
 * ${VAR}) cannot be, so every request failed before it left the proxy, reported as "the upstream
 * connection closed before it answered" (502) and /ready's "upstream unreachable (Error)"; nor can
 * a character outside Latin-1 (a curly quote pasted from a document: fetch refuses the request).
 * Refused; the value is never shown. (A secret key is not sent: whitespace at its ends is a note,
 * see notes.ts.)
 */
export function headerCredentialProblem(key: "access_key" | "session_token" | "openfga_api_token", v: unknown, to = "S3"): string | undefined {
  if (typeof v !== "string") return undefined;
  const what = /[\r\n]/.test(v) ? "a line break (the newline of a secret file?)" : /[\x00-\x1f\x7f]/.test(v) ? "a control character" : outsideLatin1(v) ? OUTSIDE_LATIN1 : undefined;
  if (what === undefined) return undefined;
  return `contains ${what}: the ${key} is sent to ${to} in a request header, which cannot carry it, so every request would fail before reaching ${to}; remove it (the value is not shown)`;
}

/** What an HTTP header value cannot hold besides control characters (fetch: "Header ... has invalid value"). */
export const outsideLatin1 = (v: string) => /[^\x00-\xff]/.test(v);
export const OUTSIDE_LATIN1 = "a character outside Latin-1 (a curly quote or a dash pasted from a document?)";

/**
 * Why `force_path_style: false` cannot be honoured, or undefined: an endpoint that is an IP address
 * has no name to put the bucket in front of (the upstream got `Host: bkt.[::1]:9000`, not a host at
 * all, or `bkt.10.0.0.5:9000`; AWS's SDKs use path-style with such an endpoint whatever the setting).
 */
function virtualHostProblem(endpoint: string | undefined, forcePathStyle: boolean | undefined): string | undefined {
  if (forcePathStyle !== false || endpoint === undefined || !URL.canParse(endpoint)) return undefined;
  const host = new URL(endpoint).hostname;
  if (!host.startsWith("[") && !/^\d+\.\d+\.\d+\.\d+$/.test(host)) return undefined;
  return `force_path_style: false puts the bucket's name in front of the endpoint's host, and ${host} is an IP address: remove it (path-style), or give the endpoint's host name`;
}

/** Why a region cannot go in a SigV4 credential scope, or undefined (the value is shown, cut short). */
export function regionProblem(region: string | undefined): string | undefined {
  if (region === undefined || /^[a-z0-9-]+$/.test(region)) return undefined;
  return `'${region.slice(0, 40)}' is not a region name (lowercase letters, digits and '-', as us-east-1)`;
}

/** Why an endpoint's query or fragment is refused, or undefined. */
export function endpointQueryProblem(endpoint: string | undefined): string | undefined {
  if (endpoint === undefined || !/[?#]/.test(endpoint)) return undefined;
  return "must not have a query or a fragment: they would be dropped (give the scheme, host, port and, for a path-based store, its path)";
}

/**
 * An AWS endpoint that is the bucket's own URL (virtual-hosted, `my-bucket.s3.us-east-1.amazonaws.com`,
 * as the console shows an object's URL), or undefined. It loaded, and every key was read under
 * `my-bucket/` (path-style: each GET a 404 NoSuchKey; virtual-hosted, the bucket named twice).
 */
export function bucketUrlProblem(endpoint: string | undefined, bucket: string): string | undefined {
  if (endpoint === undefined || !/amazonaws\.com/i.test(endpoint)) return undefined;
  let host: string;
  try {
    host = new URL(endpoint).hostname.toLowerCase().replace(/\.$/, "");
  } catch {
    return undefined;
  }
  const named = `${bucket.toLowerCase()}.`;
  const store = host.slice(named.length);
  if (!host.startsWith(named) || !/^s3[.-]/.test(store) || !/\.amazonaws\.com(\.cn)?$/.test(store)) return undefined;
  return `is the bucket's own URL (its host names the bucket ${bucket}, so every key would be read under ${bucket}/): write the store's, https://${store}, or leave endpoint out for AWS`;
}

/** What is wrong with an S3 bucket name, with the rule BUCKET_NAME checks (the name is no secret, but is not echoed), or undefined. */
export function bucketNameProblem(name: string): string | undefined {
  if (BUCKET_NAME.test(name)) return undefined;
  const n = [...name].length;
  const why = n < 2 || n > 255 ? `it is ${n} character${n === 1 ? "" : "s"} long` : !/^[a-z0-9]/i.test(name) ? "it does not start with a letter or a digit" : "it holds a character other than those";
  return `is not a valid S3 bucket name (${why}): S3 bucket names are 3 to 63 characters (accepted here: up to 255, as a legacy us-east-1 bucket's, and 2 with a warning) of letters, digits, '.', '-' and '_', starting with a letter or a digit`;
}
const MAX_REPLICAS = 8;

export const ReplicaSchema = z.strictObject({
  name: z.string().regex(REPLICA_NAME, "must be 1-64 letters, digits, '.', '_' or '-' (it names metrics and log fields)"),
  bucket: nonEmpty,
  region: nonEmpty.default("us-east-1"),
  endpoint: urlKey("must be a valid http(s) URL").optional(),
  access_key: nonEmpty.optional(),
  secret_key: nonEmpty.optional(),
  session_token: nonEmpty.optional(),
  force_path_style: z.boolean().optional(),
  /** Lower is preferred (1 = primary). Defaults to the position in the list (1, 2, ...). */
  priority: z.number().int().nonnegative().optional(),
  /** Overrides the bucket's s3.timeout / s3.connect_timeout for this replica. */
  timeout: seconds.optional(),
  connect_timeout: seconds.optional(),
});
export type ReplicaInput = z.infer<typeof ReplicaSchema>;
export type ReplicaConfig = Omit<ReplicaInput, "priority"> & { priority: number };

/** The connection keys a replica carries itself; with `replicas` they may not appear beside it. */
const CONNECTION_KEYS = ["bucket", "region", "endpoint", "access_key", "secret_key", "session_token", "force_path_style"] as const;

/** What S3Schema's object parse yields before resolveS3. */
export interface S3Fields {
  bucket?: string;
  region?: string;
  endpoint?: string;
  access_key?: string;
  secret_key?: string;
  session_token?: string;
  force_path_style?: boolean;
  replicas?: ReplicaInput[];
}

export type ResolvedS3<T extends S3Fields> = Omit<T, "bucket" | "region" | "replicas"> & {
  bucket: string;
  region: string;
  /** Sorted by priority (primary first); absent for the single-endpoint form. */
  replicas?: ReplicaConfig[];
};

type Ctx = z.core.$RefinementCtx<unknown>;
const issue = (ctx: Ctx, path: PropertyKey[], message: string) => ctx.addIssue({ code: "custom", message, path });

/** S3Schema's transform: checks the replica form and fills the top-level keys from the primary. */
export function resolveS3<T extends S3Fields>(s3: T, ctx: Ctx): ResolvedS3<T> {
  const list = s3.replicas;
  if (list === undefined) {
    if (s3.bucket === undefined) {
      issue(ctx, ["bucket"], "required (or list the bucket's replicas under s3.replicas)");
      return z.NEVER;
    }
    const vh = virtualHostProblem(s3.endpoint, s3.force_path_style);
    if (vh !== undefined) {
      issue(ctx, ["force_path_style"], vh);
      return z.NEVER;
    }
    return { ...s3, bucket: s3.bucket, region: s3.region ?? "us-east-1" } as ResolvedS3<T>;
  }
  let problems = 0;
  const bad = (path: PropertyKey[], message: string) => {
    problems++;
    issue(ctx, path, message);
  };
  for (const k of CONNECTION_KEYS)
    if (s3[k] !== undefined) bad([k], `with s3.replicas, each replica names its own ${k}: move it into the replicas (the other s3 keys apply to every replica)`);
  if (list.length < 1) bad(["replicas"], "list at least one replica");
  if (list.length > MAX_REPLICAS) bad(["replicas"], `at most ${MAX_REPLICAS} replicas`);
  const names = new Map<string, number>();
  const priorities = new Map<number, number>();
  const resolved: ReplicaConfig[] = list.map((r, j) => {
    const at = (...p: PropertyKey[]) => ["replicas", j, ...p];
    if (names.has(r.name)) bad(at("name"), `duplicate replica name '${r.name}' (also replicas[${names.get(r.name)}])`);
    names.set(r.name, j);
    const priority = r.priority ?? j + 1;
    if (priorities.has(priority)) bad(at("priority"), `duplicate priority ${priority} (also replicas[${priorities.get(priority)}]): the order must be unambiguous`);
    priorities.set(priority, j);
    if (!!r.access_key !== !!r.secret_key)
      bad(at(r.access_key ? "secret_key" : "access_key"), "access_key and secret_key must be given together (or neither, for anonymous access)");
    if (r.session_token && !r.access_key) bad(at("session_token"), "a session_token needs access_key and secret_key");
    for (const k of ["access_key", "session_token"] as const) {
      const p = headerCredentialProblem(k, r[k]);
      if (p) bad(at(k), p);
    }
    if (r.endpoint !== undefined) {
      if (!/^https?:\/\//i.test(r.endpoint)) bad(at("endpoint"), `must be an http:// or https:// URL${schemeless(r.endpoint) ? `: ${NO_SCHEME}` : ""}`);
      const p = userinfoProblem(r.endpoint, "S3 credentials go in access_key and secret_key") ?? endpointQueryProblem(r.endpoint) ?? emptyLabelHostProblem(r.endpoint) ?? bucketUrlProblem(r.endpoint, r.bucket);
      if (p) bad(at("endpoint"), p);
    }
    // (checked here, each replica at its own place: the bucket's checks see only the primary's)
    const rp = regionProblem(r.region);
    if (rp) bad(at("region"), rp);
    const nameProblem = bucketNameProblem(r.bucket);
    if (nameProblem) bad(at("bucket"), nameProblem);
    const vh = virtualHostProblem(r.endpoint, r.force_path_style);
    if (vh) bad(at("force_path_style"), vh);
    return { ...r, priority };
  });
  if (problems > 0) return z.NEVER;
  // Stable: equal priorities are refused above, so the order is fully determined.
  resolved.sort((a, b) => a.priority - b.priority);
  const p = resolved[0];
  return {
    ...s3,
    bucket: p.bucket,
    region: p.region,
    endpoint: p.endpoint,
    access_key: p.access_key,
    secret_key: p.secret_key,
    session_token: p.session_token,
    force_path_style: p.force_path_style,
    replicas: resolved,
  } as ResolvedS3<T>;
}
