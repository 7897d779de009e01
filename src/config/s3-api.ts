/**
 * `s3_api`: the S3-compatible front (its own listener; README "S3 clients").
 *
 *   s3_api:
 *     enabled: true
 *     address: 0.0.0.0
 *     port: 9000
 *     region: us-east-1                  # the region clients sign for
 *     domain: s3.example.com             # optional: virtual-hosted style (<bucket>.s3.example.com)
 *     max_clock_skew_seconds: 900
 *     sts: { enabled: true, session_key: "${STS_SESSION_KEY}", max_session_seconds: 3600 }
 *     credentials:
 *       - { access_key_id: "${APP1_AK}", secret_access_key: "${APP1_SK}", identity: app1,
 *           claims: { team: a }, buckets: { products: [read, list], uploads: [read, write, delete] } }
 *
 * The schema checks shapes; `validateS3Api` the rules that need the rest of the config (bucket
 * names, the JWT section STS depends on, ports). `summarizeS3Api` is the `--check` line: it says
 * whether secrets are set, never what they are.
 */
import { z } from "zod";
import type { PathSegment } from "./path.ts";
import { StsCorsSchema } from "./cors.ts";
import { bindsClash, listenerUrl, urlKey } from "./url.ts";
import { regionProblem } from "./replicas.ts";
import { likelyKey } from "./likely.ts";

const nonEmpty = z.string().min(1, "must not be empty");

/** AWS access key ids are 16-128 alphanumerics; '.', '_' and '-' are allowed too (none of them can break a Credential= scope). */
const ACCESS_KEY_ID = /^[A-Za-z0-9._-]{3,128}$/;
/** Identity names appear in logs, metrics-adjacent fields and authorization input. */
const IDENTITY = /^[A-Za-z0-9][A-Za-z0-9@._:+-]{0,127}$/;
/** What an S3 client can address as a bucket (botocore's and the SDKs' own check). */
export const S3_FRONT_BUCKET_NAME = /^[A-Za-z0-9.\-_]{1,255}$/;
/** STS access key ids start with this (sts.ts); a static key may not, or the two could be confused. */
const SESSION_KEY_PREFIX = "ASIA";
const MIN_SESSION_KEY_BYTES = 32;
const HOSTNAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * read: GetObject, HeadObject. list: the listings. write: PutObject, CopyObject (plus read on the
 * source), the multipart calls. delete: DeleteObject, DeleteObjects. AbortMultipartUpload,
 * ListParts and ListMultipartUploads need write or delete. A read-only bucket refuses every write
 * whatever the grant says (README "S3 clients: uploads").
 */
const S3_PERMISSIONS = ["read", "list", "write", "delete"] as const;
export type S3Permission = (typeof S3_PERMISSIONS)[number];

/** The largest `claims` of a static credential, as JSON (what OPA and OpenFGA are sent). */
const MAX_CREDENTIAL_CLAIMS_BYTES = 64 * 1024;

const S3CredentialSchema = z.strictObject({
  access_key_id: z.string().regex(ACCESS_KEY_ID, "must be 3-128 letters, digits, '.', '_' or '-'"),
  secret_access_key: z.string().min(16, "must be at least 16 characters"),
  identity: z.string().regex(IDENTITY, "must be 1-128 characters: letters, digits, '@', '.', '_', ':', '+' or '-', starting with a letter or digit"),
  /** Fed to claim rules, OPA and OpenFGA like JWT claims; `sub` is always the identity. */
  claims: z.record(z.string(), z.unknown()).optional(),
  buckets: z.record(
    z.string(),
    z.array(z.enum(S3_PERMISSIONS, { error: () => `unknown permission; use ${S3_PERMISSIONS.join(", ")}` })).min(1, "grant at least one of read, list, write, delete"),
  ),
});

const S3StsSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** HMAC key of the stateless sessions, shared by every replica; rotating it revokes every session. */
  session_key: z.string().optional(),
  /**
   * Earlier session keys, for a rotation without an outage: sessions issued under them are still
   * verified until they expire (new ones are issued under session_key only). SDKs do not refresh
   * credentials on S3's InvalidToken, so a bare rotation fails every running client until its
   * cached credentials near their expiry. Drop a key max_session_seconds after the rotation.
   */
  previous_session_keys: z.array(z.string()).max(4).optional(),
  /** STS allows 900..43200 seconds per session. */
  max_session_seconds: z.number().int().min(900).max(43200).default(3600),
  /** Browser origins that may call AssumeRoleWithWebIdentity (config/cors.ts StsCorsSchema). */
  cors: StsCorsSchema.optional(),
});

/** s3_api.form_upload_buffer_mib's default. */
export const DEFAULT_FORM_UPLOAD_BUFFER_MIB = 256;
/**
 * The most one upload holds of it: a signed aws-chunked chunk of 16 MiB at most, less its first
 * MiB (not counted); a form upload holds 10 MiB at most (two 5 MiB part buffers).
 */
const MIN_FORM_UPLOAD_BUFFER_MIB = 15;

export const S3ApiSchema = z.strictObject({
  enabled: z.boolean().default(true),
  address: nonEmpty.default("0.0.0.0"),
  port: z.number().int().min(0).max(65535).default(9000),
  // (named with the value, as a bucket's s3.region is: it said "must be a region name such as us-east-1" alone)
  region: z
    .string()
    .regex(/^[a-z0-9-]{1,64}$/, { error: (i) => (typeof i.input === "string" ? regionProblem(i.input) : undefined) ?? `must be a region name such as us-east-1 (1 to 64 of a-z, 0-9 and '-')${typeof i.input === "string" ? `, got ${i.input.length} characters` : ""}` })
    .default("us-east-1"),
  domain: z.string().transform((d) => d.toLowerCase()).pipe(z.string().regex(HOSTNAME, "must be a DNS name such as s3.example.com (no scheme, port or path)")).optional(),
  max_clock_skew_seconds: z.number().int().min(1).max(3600).default(900),
  /**
   * The S3 listener's engine; default server.engine. On bun, GetObject bodies above
   * server.buffer_threshold_bytes stream without Content-Length (Bun drops it), which some S3
   * clients (s3cmd) cannot read; node always sends it, at a higher CPU cost per request.
   */
  engine: z.enum(["bun", "node"]).optional(),
  sts: S3StsSchema.optional(),
  /**
   * Where browsers reach this listener ("https://s3.example.com"): the origin of the presigned URLs
   * the plain front hands out (POST /<prefix>/<key>?presign). Default: the plain request's host
   * name with this listener's scheme and port.
   */
  public_url: urlKey("must be an http(s) URL").refine((u) => /^https?:\/\/[^/?#@]+\/?$/i.test(u), "must be an origin only: scheme, host and optional port (no path, query or credentials)").optional(),
  /**
   * What browser form uploads (PostObject) may hold in their part buffers together, per process
   * (each holds 256 KiB to 10 MiB), with the signed aws-chunked chunks above 1 MiB held for their
   * signature check (up to 16 MiB each); an upload that would need more is answered 503 SlowDown.
   * At least what one upload may hold: with less, that upload was SlowDown at every try, however
   * idle the process ("retry shortly"; 8 refused every form upload of a file above 5 MiB).
   */
  form_upload_buffer_mib: z
    .number()
    .int()
    .min(MIN_FORM_UPLOAD_BUFFER_MIB, `must be at least ${MIN_FORM_UPLOAD_BUFFER_MIB} (MiB): one upload may hold 10 MiB (a form upload's two part buffers) or 15 MiB (a signed aws-chunked chunk of 16 MiB, its first MiB not counted); with less, such an upload is 503 SlowDown at every try`)
    .max(65536)
    .default(DEFAULT_FORM_UPLOAD_BUFFER_MIB),
  /** The longest lifetime of a presigned URL (SigV4 allows 7 days); also the default. Default 900. */
  presign_max_seconds: z.number().int().min(1).max(604800).optional(),
  credentials: z.array(S3CredentialSchema).default([]),
});
export type S3ApiConfig = z.infer<typeof S3ApiSchema>;

type Issue = { path: PathSegment[]; message: string };

/** The parts of the whole config the cross-field rules read. */
interface Whole {
  s3_api?: S3ApiConfig;
  buckets: ReadonlyArray<{ name: string; s3: { bucket: string } }>;
  jwt?: { enabled: boolean };
  server: { address: string; port?: number; workers: number | "auto" };
  metrics: { enabled: boolean; address: string; port: number };
}

/**
 * A grant naming no bucket: the S3 bucket's own name (its `s3.bucket`, what the store's console
 * shows) is the likely slip, and read "no bucket is named 'my-bucket'" though the config holds it;
 * else a typo of a bucket's name (`product` for `products`: "did you mean"), looked for among
 * `names` (undefined past the first 100 unknown grants: thousands are not worth seconds of comparing).
 */
function unknownGrant(b: string, buckets: Whole["buckets"], names: readonly string[] | undefined): string {
  const i = buckets.findIndex((x) => x.s3.bucket === b);
  const like = i < 0 && names !== undefined ? likelyKey(b, names) : undefined;
  if (like !== undefined) return `no bucket is named '${b}' (did you mean '${like}'?)`;
  if (i < 0) return `no bucket is named '${b}' (a grant names a bucket's \`name\`)`;
  return `no bucket is named '${b}': that is buckets[${i}].s3.bucket, the store's name; a grant names the bucket's \`name\`, '${buckets[i]!.name}', as S3 clients do (s3://${buckets[i]!.name}/...)`;
}

/** Cross-field rules of s3_api. `host`/`port`: the main listener's, once resolved. */
export function validateS3Api(cfg: Whole, main: { host: string; port: number }, issues: Issue[]): void {
  const s = cfg.s3_api;
  if (!s || !s.enabled) return;
  const at = (...p: PathSegment[]): PathSegment[] => ["s3_api", ...p];
  const sameAddress = (a: string) => bindsClash(a, s.address);
  if (s.port !== 0 && s.port === main.port && sameAddress(main.host)) issues.push({ path: at("port"), message: "the S3 API needs its own port: it must not be the proxy's main port" });
  if (cfg.metrics.enabled && s.port !== 0 && s.port === cfg.metrics.port && sameAddress(cfg.metrics.address))
    issues.push({ path: at("port"), message: "the S3 API must not use the metrics listener's port" });
  if (s.port === 0 && cfg.server.workers !== 1)
    issues.push({ path: at("port"), message: "with server.workers > 1 every worker listens on the same S3 port: set a fixed port (not 0)" });

  const bucketNames = cfg.buckets.map((b) => b.name);
  const names = new Set(bucketNames);
  const keys = new Map<string, number>();
  let unknown = 0;
  s.credentials.forEach((c, i) => {
    if (keys.has(c.access_key_id)) issues.push({ path: at("credentials", i, "access_key_id"), message: `duplicate access key id (also credentials[${keys.get(c.access_key_id)}])` });
    keys.set(c.access_key_id, i);
    if (s.sts?.enabled && c.access_key_id.startsWith(SESSION_KEY_PREFIX))
      issues.push({ path: at("credentials", i, "access_key_id"), message: `must not start with ${SESSION_KEY_PREFIX}: that prefix marks temporary (STS) credentials` });
    if (c.claims && "sub" in c.claims) issues.push({ path: at("credentials", i, "claims", "sub"), message: "sub is always the identity: remove it (set identity instead)" });
    // (free-form, and YAML aliases multiply them: a 2 KB file held 13 MB of claims, which the
    // serving thread parsed at every reload, ~0.1-0.4 s with nothing else answered, and an
    // authorizer was sent with every request; a token's claims are held to jwt.max_token_bytes)
    const claimBytes = c.claims === undefined ? 0 : Buffer.byteLength(JSON.stringify(c.claims));
    if (claimBytes > MAX_CREDENTIAL_CLAIMS_BYTES) issues.push({ path: at("credentials", i, "claims"), message: `must be at most ${MAX_CREDENTIAL_CLAIMS_BYTES} bytes as JSON (YAML aliases expanded), got ${claimBytes}` });
    for (const b of Object.keys(c.buckets)) {
      if (!names.has(b)) issues.push({ path: at("credentials", i, "buckets", b), message: unknownGrant(b, cfg.buckets, ++unknown <= 100 ? bucketNames : undefined) });
      else if (!S3_FRONT_BUCKET_NAME.test(b)) issues.push({ path: at("credentials", i, "buckets", b), message: "S3 clients cannot address this bucket name: use letters, digits, '.', '-' and '_' only" });
    }
  });

  const sts = s.sts;
  if (sts !== undefined && !sts.enabled && sts.cors !== undefined) issues.push({ path: at("sts", "cors"), message: "has no effect while sts is disabled (sts.enabled: false)" });
  if (sts?.enabled) {
    if (!sts.session_key) issues.push({ path: at("sts", "session_key"), message: `required when sts is enabled (at least ${MIN_SESSION_KEY_BYTES} bytes, the same on every replica)` });
    else if (Buffer.byteLength(sts.session_key) < MIN_SESSION_KEY_BYTES) issues.push({ path: at("sts", "session_key"), message: `must be at least ${MIN_SESSION_KEY_BYTES} bytes, got ${Buffer.byteLength(sts.session_key)}` });
    (sts.previous_session_keys ?? []).forEach((k, i) => {
      if (Buffer.byteLength(k) < MIN_SESSION_KEY_BYTES) issues.push({ path: at("sts", "previous_session_keys", i), message: `must be at least ${MIN_SESSION_KEY_BYTES} bytes, got ${Buffer.byteLength(k)}` });
    });
    if (!cfg.jwt?.enabled) issues.push({ path: at("sts", "enabled"), message: "temporary credentials are issued for JWTs: configure an enabled top-level `jwt:` section" });
  }
}

/** The `--check` line(s) for s3_api. Secrets: only whether they are set. */
export function summarizeS3Api(s: S3ApiConfig | undefined, https: boolean): string[] {
  if (!s || !s.enabled) return ["s3 api      off"];
  const style = s.domain ? `path + virtual-hosted (*.${s.domain})` : "path-style";
  const lines = [`s3 api      ${listenerUrl(https ? "https" : "http", s.address, s.port)}  region=${s.region} ${style} max_skew=${s.max_clock_skew_seconds}s${s.engine ? ` engine=${s.engine}` : ""}`];
  const stsCors = s.sts?.cors ? `, cors ${s.sts.cors.allowed_origins.join(" ")}` : "";
  const sts = s.sts?.enabled ? `on (session_key ${s.sts.session_key ? "set" : "NOT set"}${s.sts.previous_session_keys?.length ? ` + ${s.sts.previous_session_keys.length} previous` : ""}, max ${s.sts.max_session_seconds}s${stsCors})` : "off";
  lines.push(`  sts: ${sts}; ${s.credentials.length} credential${s.credentials.length === 1 ? "" : "s"}`);
  for (const c of s.credentials) {
    const grants = Object.entries(c.buckets).map(([b, p]) => `${b}:${[...new Set(p)].join("+")}`).join(" ");
    lines.push(`  ${c.identity.padEnd(20)} secret ${c.secret_access_key ? "set" : "NOT set"}; ${grants}`);
  }
  return lines;
}
