/**
 * The configuration schema: strict zod objects (an unknown key is an error naming its YAML path),
 * defaults in the schema, types from z.infer. Cross-field rules live in validate.ts.
 *
 * Compatibility with the original (Rust) project's configs: every key its code accepted is accepted
 * here. Keys its README documented but its code never implemented are rejected with a message
 * that says what to write instead (see LEGACY_HINTS in load.ts).
 */
import { z } from "zod";
import { unbracketedIpv6, urlKey } from "./url.ts";
import { ReplicaSchema, resolveS3 } from "./replicas.ts";
import { S3ApiSchema } from "./s3-api.ts";
import { AuditSchema } from "./audit.ts";
import { CorsSchema } from "./cors.ts";
import { filePath } from "./path.ts";
import { TracingSchema } from "./tracing.ts";
import { timerMs, timerMsOrZero, timerSeconds, timerSecondsInt, timerSecondsOrZero } from "./durations.ts";

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const seconds = timerSeconds;
const nonEmpty = z.string().min(1, "must not be empty");

const ALGORITHMS = [
  "HS256", "HS384", "HS512",
  "RS256", "RS384", "RS512",
  "PS256", "PS384", "PS512",
  "ES256", "ES384",
  "EdDSA",
] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

const OPERATORS = ["equals", "in", "contains", "gt", "lt", "gte", "lte", "exists"] as const;

const jsonValue: z.ZodType<unknown> = z.unknown();

const ClaimRuleSchema = z.strictObject({
  claim: nonEmpty,
  operator: z.enum(OPERATORS, { error: () => `unknown operator; use one of ${OPERATORS.join(", ")}` }),
  value: jsonValue.optional(),
});
export type ClaimRule = z.infer<typeof ClaimRuleSchema>;

const TokenSourceSchema = z.strictObject({
  type: z.enum(["bearer", "header", "query"], {
    error: () => "unknown token source type; use bearer, header or query",
  }),
  name: nonEmpty.optional(),
  prefix: z.string().optional(),
});
export type TokenSource = z.infer<typeof TokenSourceSchema>;

const JwtKeySchema = z.strictObject({
  id: nonEmpty,
  algorithm: z.enum(ALGORITHMS),
  secret: nonEmpty.optional(),
  path: filePath.optional(),
});

export const JwtSchema = z.strictObject({
  enabled: z.boolean().default(true),
  algorithm: z.enum(ALGORITHMS, { error: () => `unsupported algorithm; use one of ${ALGORITHMS.join(", ")}` }).default("HS256"),
  /** Additional algorithms accepted besides `algorithm` (e.g. for several JWKS key types). */
  algorithms: z.array(z.enum(ALGORITHMS)).optional(),
  // (empty is refused when JWT is enabled, in validate.ts: with it off, `secret: ""` loads, as the original's configs write it)
  secret: z.string().optional(),
  rsa_public_key_path: filePath.optional(),
  ecdsa_public_key_path: filePath.optional(),
  /** PEM for PS* / EdDSA (or any asymmetric algorithm). */
  public_key_path: filePath.optional(),
  jwks_url: urlKey().optional(),
  jwks_refresh_interval_secs: timerSecondsInt.default(300),
  keys: z.array(JwtKeySchema).default([]),
  issuer: nonEmpty.optional(),
  audience: z.union([nonEmpty, z.array(nonEmpty).min(1)]).optional(),
  // (a leeway of hours or more makes exp meaningless: an expired token stays good that long)
  leeway_seconds: nonNegInt.max(3600).default(30),
  /** Refuse tokens without an `exp` claim (which would never expire). Off by default, as before. */
  require_exp: z.boolean().default(false),
  // (below a few hundred bytes no signed token fits: every one would be refused)
  max_token_bytes: posInt.min(256).max(1_048_576).default(8192),
  // (an empty list is refused when JWT is enabled, in validate.ts: with it off, as the original's own test configs write it, it loads)
  token_sources: z.array(TokenSourceSchema).default([{ type: "bearer" }]),
  claims: z.array(ClaimRuleSchema).default([]),
  admin_claims: z.array(ClaimRuleSchema).default([]),
});
export type JwtConfig = z.infer<typeof JwtSchema>;

const FailMode = z.enum(["closed", "open"]);

export const AuthorizationSchema = z.strictObject({
  type: z.enum(["opa", "openfga"]),
  opa_url: urlKey().optional(),
  opa_policy_path: nonEmpty.optional(),
  opa_timeout_ms: timerMs.default(100),
  opa_cache_ttl_seconds: nonNegInt.default(60),
  opa_fail_mode: FailMode.default("closed"),
  openfga_endpoint: urlKey().optional(),
  openfga_store_id: nonEmpty.optional(),
  openfga_authorization_model_id: nonEmpty.optional(),
  openfga_api_token: nonEmpty.optional(),
  openfga_timeout_ms: timerMs.default(100),
  openfga_cache_ttl_seconds: nonNegInt.default(60),
  openfga_fail_mode: FailMode.default("closed"),
  openfga_user_claim: nonEmpty.default("sub"),
  openfga_relation: nonEmpty.default("viewer"),
  /** The relation checked for writes (s3:PutObject, s3:DeleteObject, multipart): see src/authz/openfga.ts. */
  openfga_write_relation: nonEmpty.default("editor"),
  /**
   * The relation checked for s3:BypassGovernanceRetention (x-amz-bypass-governance-retention on a
   * delete); unset: never granted, not asked (see src/authz/openfga.ts).
   */
  openfga_bypass_relation: nonEmpty.optional(),
  /**
   * The relation a version needs (s3:GetObjectVersion, s3:ListBucketVersions, version ACLs and
   * attributes instead of openfga_relation; s3:DeleteObjectVersion and s3:PutObjectVersionAcl as
   * well as openfga_write_relation); unset: versions follow the object's relations (see src/authz/openfga.ts).
   */
  openfga_version_relation: nonEmpty.optional(),
});
export type AuthorizationConfig = z.infer<typeof AuthorizationSchema>;

const RetrySchema = z.strictObject({
  max_attempts: z.number().int().min(1).max(10).default(3),
  initial_backoff_ms: timerMsOrZero.default(100),
  max_backoff_ms: timerMsOrZero.default(1000),
});
export type RetryConfig = z.infer<typeof RetrySchema>;

const CircuitBreakerSchema = z.strictObject({
  failure_threshold: posInt.default(5),
  success_threshold: posInt.default(2),
  timeout_seconds: seconds.default(60),
  half_open_max_requests: posInt.default(3),
});
export type CircuitBreakerConfig = z.infer<typeof CircuitBreakerSchema>;

/**
 * Rates and bursts within what a limiter can hold: one request in ~12 days to a billion a second. A
 * config's `requests_per_second: 1e-300` (or a burst of 1e300) made the Redis limiter's key expiry
 * a number Redis refuses, so every request fell back to the local limits.
 */
const MIN_RATE = 1e-6;
const MAX_RATE = 1e9;
const RateSchema = z.strictObject({
  requests_per_second: z.number().min(MIN_RATE, `must be at least ${MIN_RATE} (one request in ~12 days)`).max(MAX_RATE, `must be at most ${MAX_RATE}`),
  /** Bucket capacity; defaults to requests_per_second. */
  burst: z.number().positive().max(MAX_RATE, `must be at most ${MAX_RATE}`).optional(),
});
export type RateConfig = z.infer<typeof RateSchema>;

/**
 * A bucket's upstream: one endpoint (bucket/region/endpoint/credentials here), or `replicas`, each
 * with its own connection keys (src/config/replicas.ts). Either way the parsed result holds the
 * primary's connection keys at the top level, and `replicas` (sorted by priority) when given.
 */
/** s3.connect_timeout when the config does not set it. */
export const DEFAULT_CONNECT_TIMEOUT_SECONDS = 5;

export const S3Schema = z.strictObject({
  bucket: nonEmpty.optional(),
  /** Default us-east-1 (applied by resolveS3, which refuses it beside `replicas`). */
  region: nonEmpty.optional(),
  endpoint: urlKey("must be a valid http(s) URL").optional(),
  access_key: nonEmpty.optional(),
  secret_key: nonEmpty.optional(),
  session_token: nonEmpty.optional(),
  force_path_style: z.boolean().optional(),
  /** Seconds until response headers arrive; 504 after. */
  timeout: seconds.default(20),
  /**
   * Seconds to connect, default DEFAULT_CONNECT_TIMEOUT_SECONDS. Left unset when not given: the
   * start-up note that fetch cannot enforce it (connectTimeoutNote) is for a config that sets it.
   */
  connect_timeout: seconds.optional(),
  /** Accepted for compatibility with the original; Bun's fetch pools connections per host itself. */
  connection_pool_size: posInt.optional(),
  retry: RetrySchema.optional(),
  circuit_breaker: CircuitBreakerSchema.optional(),
  rate_limit: RateSchema.optional(),
  replicas: z.array(ReplicaSchema).optional(),
}).transform(resolveS3);

const BucketAuthSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** Extra claim rules for this bucket only (AND with jwt.claims). */
  claims: z.array(ClaimRuleSchema).default([]),
  /** Extra claim rules for writes only (PUT, DELETE, presigned PUT), on top of `claims`. */
  write_claims: z.array(ClaimRuleSchema).default([]),
  /** access: read-write without auth: writes are refused unless this says anyone may write. */
  anonymous_writes: z.boolean().default(false),
});

const BucketCacheSchema = z.strictObject({
  enabled: z.boolean().default(false),
  ttl_seconds: nonNegInt.optional(),
  max_item_size_mb: z.number().positive().optional(),
  /** How long past its expiry a stale copy may answer while the store fails (0: never); default: the cache section's. */
  stale_if_error_seconds: nonNegInt.optional(),
});

const IpFilterSchema = z.strictObject({
  allowlist: z.array(nonEmpty).default([]),
  blocklist: z.array(nonEmpty).default([]),
});

const BucketSchema = z.strictObject({
  name: nonEmpty,
  path_prefix: z.string().startsWith("/", "must start with /"),
  s3: S3Schema,
  auth: BucketAuthSchema.prefault({}),
  authorization: AuthorizationSchema.optional(),
  cache: BucketCacheSchema.optional(),
  ip_filter: IpFilterSchema.prefault({}),
  /** A GET of a "folder" (key "" or ending in "/") answers an index of it (src/fronts/listing/). */
  listing: z.strictObject({ enabled: z.boolean().default(false), max_keys: posInt.max(1000).default(1000) }).prefault({}),
  /**
   * read-only (default): GET/HEAD/listing only, on both fronts (writes are 405 on the plain front,
   * AccessDenied on the S3 front, whatever an identity's grants say). read-write: PUT/DELETE with
   * a token that passes the bucket's rules on the plain front; on the S3 front, identities with
   * `write`/`delete` grants and web-identity sessions. Grants and authorizers only narrow further.
   */
  access: z.enum(["read-only", "read-write"], { error: () => "unknown access; use read-only or read-write" }).default("read-only"),
  /**
   * Objects answered with `Content-Security-Policy: sandbox` and `X-Content-Type-Options: nosniff`,
   * so an uploaded HTML or SVG page cannot run script in the proxy's origin (and read a viewer's
   * token). Unset: on for user content (a read-write bucket, and a read-only one that reads a
   * store a read-write bucket writes), off otherwise. false: served as stored (trusted active
   * content); true: sandboxed whatever the bucket's access.
   */
  sandbox_user_content: z.boolean().optional(),
  /** Browser origins allowed to call this bucket on both fronts (src/http/cors.ts). */
  cors: CorsSchema.optional(),
});
export type BucketConfig = z.infer<typeof BucketSchema>;

/** server.address left out: every IPv4 address. */
export const DEFAULT_SERVER_ADDRESS = "0.0.0.0";

const ServerSchema = z.strictObject({
  /** "0.0.0.0", "::", or "host:port" (the original README's form). */
  address: nonEmpty.default(DEFAULT_SERVER_ADDRESS),
  port: z.number().int().min(0).max(65535).optional(),
  shutdown_timeout: timerSecondsOrZero.default(30),
  /**
   * Seconds between the stop signal and closing the listeners, while /ready answers 503 and
   * requests are still served: the time a load balancer (or Kubernetes' endpoint removal) needs
   * to stop sending new ones. 0 (default): the listeners close at once.
   */
  shutdown_delay: z.number().nonnegative().max(3600).default(0),
  /** Seconds a whole request may take before headers are sent (original: request_timeout). */
  request_timeout: seconds.default(30),
  /**
   * bun: Bun.serve (fastest). Bodies up to buffer_threshold_bytes carry Content-Length; larger ones
   * stream chunked (Bun 1.4 drops Content-Length on streamed bodies).
   * node: Bun's node:http server: every response carries Content-Length, streamed with backpressure,
   * at a measured throughput cost (see README).
   */
  engine: z.enum(["bun", "node"]).default("bun"),
  workers: z.union([z.number().int().min(1).max(64), z.literal("auto")]).default(1),
  max_concurrent_requests: posInt.default(1000),
  /**
   * What one client address may hold of max_concurrent_requests once half of it is in use
   * (default: a quarter of it). Behind a load balancer, set trusted_proxies.
   */
  max_concurrent_requests_per_ip: posInt.optional(),
  /**
   * Requests whose body is being received (uploads: PUT and POST with a body), in all and per
   * client address; beyond either, 503 (S3 front: SlowDown) with Retry-After. An upload holds an
   * upstream connection from its head on; the default leaves half of fetch's 256 request slots to
   * reads and readiness probes.
   */
  max_concurrent_uploads: posInt.default(128),
  max_concurrent_uploads_per_ip: posInt.default(32),
  /** How often each bucket's upstream is probed in the background for /ready. */
  readiness_probe_interval_seconds: z.number().min(0.1).max(3600).default(5),
  trusted_proxies: z.array(nonEmpty).default([]),
  /**
   * Objects up to this size are buffered so Content-Length is exact; larger ones stream. At most
   * 4 GiB, the largest buffer Bun allocates: above it every object between 4 GiB and the setting
   * was a 502 at once (its buffer could not be made).
   */
  buffer_threshold_bytes: nonNegInt.max(2 ** 32, { message: "must be at most 4294967296 (4 GiB): a larger body cannot be held in one buffer (larger objects stream)" }).default(8 * 1024 * 1024),
  /**
   * auto: plain-http endpoints use the proxy's own keep-alive HTTP/1.1 client (src/s3/http1/,
   * about half the CPU of fetch per request); https endpoints use fetch (Bun's TLS stack).
   * fetch: fetch() for every endpoint.
   */
  upstream_client: z.enum(["auto", "fetch"]).default("auto"),
  rate_limit: z
    .strictObject({
      enabled: z.boolean().default(true),
      global: RateSchema.optional(),
      per_ip: RateSchema.extend({
        max_entries: posInt.default(100_000),
        idle_seconds: seconds.default(300),
      }).optional(),
      /**
       * memory: each process counts alone (workers split the rates). redis: the limits hold across
       * every process sharing the Redis (src/limits/redis-limiter.ts); each process falls back to
       * its local share while Redis is unavailable.
       */
      backend: z.enum(["memory", "redis"], { error: () => "unknown rate_limit backend; use memory or redis" }).default("memory"),
      /** Redis for the shared limits; default cache.redis.url. */
      redis_url: nonEmpty.optional(),
      /** Prefix of the limits' keys (`<prefix>rl:...`); default cache.redis.key_prefix, else "yatagarasu:". */
      redis_key_prefix: nonEmpty.max(128).optional(),
      /** Longest wait for a Redis answer before a request is decided locally. */
      redis_timeout_ms: posInt.max(10_000).default(50),
      /** How many Yatagarasu processes share the limits: each enforces 1/instances of them while Redis is unavailable. */
      instances: posInt.max(10_000).default(1),
    })
    .optional(),
  security_limits: z
    .strictObject({
      max_body_size: nonNegInt.default(10 * 1024 * 1024),
      max_header_size: posInt.default(65536),
      max_uri_length: posInt.default(8192),
    })
    .prefault({}),
  https: z
    .strictObject({
      enabled: z.boolean().default(true),
      cert_path: filePath,
      key_path: filePath,
      /** TLS 1.2 cipher suites (OpenSSL syntax); default TLS_CIPHERS. TLS 1.3's are always on. */
      ciphers: nonEmpty.optional(),
    })
    .optional(),
});

/** Cache layers, fastest first; `cache_layers` lists any subset in this order. */
const CACHE_LAYERS = ["memory", "disk", "redis"] as const;

/** The highest Redis database number accepted in a URL's path (Bun's client takes up to a 32-bit number; a server has 16 by default). */
export const MAX_REDIS_DB = 2147483647;

const NOT_A_REDIS_URL = "must be a redis:// or rediss:// URL with a host (e.g. redis://host:6379/0)";
const PERCENT_ENCODE =
  "must be a redis:// or rediss:// URL with a host (e.g. redis://user:password@host:6379/0); characters such as '/', '?', '#', '@' and '%' in the user name or password must be percent-encoded (%2F, %3F, %23, %40, %25)";

/** Whether a URL component's percent-escapes are whole (decodeURIComponent would not throw). */
function decodes(s: string): boolean {
  try {
    decodeURIComponent(s);
    return true;
  } catch {
    return false;
  }
}

/**
 * What is wrong with a Redis URL that Bun's client would refuse when the proxy starts (an
 * unhandled "Invalid database number in Redis URL" after --check said OK), or undefined. Never
 * echoes the URL: it may hold a password.
 */
export function redisUrlProblem(v: string): string | undefined {
  const u = URL.parse(v);
  if (u === null) {
    // (the usual cause: a password with '/', '?', '#' or '@' as it is, which ends the userinfo early)
    if (unbracketedIpv6(v)) return `${NOT_A_REDIS_URL}: an IPv6 host goes in brackets (redis://[::1]:6379/0)`;
    if (v.lastIndexOf("@") > v.indexOf("//")) return PERCENT_ENCODE;
    return NOT_A_REDIS_URL;
  }
  if ((u.protocol !== "redis:" && u.protocol !== "rediss:") || u.hostname === "") return NOT_A_REDIS_URL;
  // A '%' not followed by two hex digits (a password's own '%', not encoded) made the connection's
  // decodeURIComponent throw at start: an unhandled URIError, exit 70, after --check said OK. A
  // '/' or '#' before a later '@' ended the userinfo early: the rest read as a host and a path.
  if (!decodes(u.username) || !decodes(u.password) || u.hash !== "" || v.indexOf("@", v.indexOf("//") + 2) < v.lastIndexOf("@"))
    return PERCENT_ENCODE;
  if (u.port === "0") return "port 0 is no Redis port: give the server's port (6379 by default), or leave it out";
  const path = u.pathname;
  if (path !== "" && path !== "/" && !(/^\/\d{1,10}$/.test(path) && Number(path.slice(1)) <= MAX_REDIS_DB))
    return `the database number (the URL's path, after the host) must be a whole number from 0 to ${MAX_REDIS_DB}, as in redis://host:6379/0`;
  return undefined;
}

/** A Redis URL Bun's client takes (TLS: rediss), refused with what is wrong with it. */
export const redisUrl = z.string().superRefine((v, ctx) => {
  const problem = redisUrlProblem(v);
  if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
});

const DiskCacheSchema = z
  .strictObject({
    /** Directory of the disk layer (created when missing); relative to the config file's folder. */
    path: filePath,
    max_disk_size_mb: z.number().positive().default(10240),
    /** Default 1024, or max_disk_size_mb when that is smaller (a 500 MiB disk layer needs no second setting); with server.workers, each process's share of it (diskItemDefault, load.ts). */
    max_item_size_mb: z.number().positive().optional(),
    /** fsync each object before it becomes visible (survives power loss; a flush per fill). */
    fsync: z.boolean().default(false),
    /** Check the files found at start against their CRC-32 (bit rot): a start then reads the folder once. */
    verify_at_start: z.boolean().default(true),
  })
  .transform((d) => ({ ...d, max_item_size_mb: d.max_item_size_mb ?? Math.min(1024, d.max_disk_size_mb) }));

/** The processes `server.workers` runs (`auto`: one per CPU). */
export function workerProcesses(workers: number | "auto"): number {
  return workers === "auto" ? Math.max(1, navigator.hardwareConcurrency || 1) : workers;
}

/** What each of `workers` processes holds of the disk layer's max_disk_size_mb (MiB, to 2 decimals). */
export function diskShareMb(maxDiskMb: number, workers: number): number {
  return Math.floor((maxDiskMb / workers) * 100) / 100;
}

const RedisCacheSchema = z.strictObject({
  url: redisUrl,
  /** Every key, channel and stream of the layer starts with it; must not be empty (a purge-all deletes `<prefix>obj:*`). */
  key_prefix: nonEmpty.max(128).default("yatagarasu:"),
  /**
   * Redis strings are at most 512 MB (proto-max-bulk-len), and an entry is its body and its
   * metadata in one: 512 was accepted, and an object that size was refused by Redis at every fill.
   */
  max_item_size_mb: z
    .number()
    .positive()
    .max(511, "must be at most 511: a Redis string holds at most 512 MB (proto-max-bulk-len), and an entry holds the object's metadata beside its body")
    .default(10),
  /** A connection attempt that takes longer fails; the layer is skipped until a reconnect succeeds. */
  connect_timeout_ms: posInt.max(60_000).default(500),
  /** The longest wait for one Redis command; past it the layer is marked down and skipped. */
  operation_timeout_ms: posInt.max(60_000).default(500),
});

export const CacheSchema = z
  .strictObject({
    /** Not written: on when a bucket enables its cache (as the original's bucket override did); see validateConfig. */
    enabled: z.boolean().optional(),
    cache_layers: z
      .array(z.enum(CACHE_LAYERS, { error: () => `unknown cache layer; use ${CACHE_LAYERS.join(", ")}` }))
      .min(1, "list at least one layer")
      .default(["memory"]),
    memory: z
      .strictObject({
        max_item_size_mb: z.number().positive().optional(),
        max_cache_size_mb: z.number().positive().default(1024),
        default_ttl_seconds: nonNegInt.default(3600),
      })
      .prefault({})
      // (10 MiB, or the whole cache when it is smaller, as the disk layer's default)
      .transform((m) => ({ ...m, max_item_size_mb: m.max_item_size_mb ?? Math.min(10, m.max_cache_size_mb) })),
    disk: DiskCacheSchema.optional(),
    redis: RedisCacheSchema.optional(),
    /** Every cached bucket's stale_if_error_seconds unless it sets its own (0: off). */
    stale_if_error_seconds: nonNegInt.default(0),
  });
export type CacheConfig = z.infer<typeof CacheSchema>;

/**
 * The cache section's rules across its fields (paths below `cache`). Checked with the config's
 * other cross-field rules (validateConfig), not inside the parse: as a refinement there, one of
 * them failing kept every other rule of the file from being checked in that run.
 */
export function cacheLayerIssues(c: CacheConfig): Array<{ path: Array<string | number>; message: string }> {
  const out: Array<{ path: Array<string | number>; message: string }> = [];
  const layers = c.cache_layers;
  const order = layers.map((l) => CACHE_LAYERS.indexOf(l));
  if (new Set(layers).size !== layers.length) out.push({ path: ["cache_layers"], message: "a layer is listed twice" });
  else if (order.some((v, i) => i > 0 && v < order[i - 1]!)) out.push({ path: ["cache_layers"], message: "list the layers fastest first: memory, disk, redis" });
  for (const name of ["disk", "redis"] as const) {
    if (layers.includes(name) && c[name] === undefined) out.push({ path: [name], message: `cache_layers lists ${name}: the cache.${name} section is required` });
    if (!layers.includes(name) && c[name] !== undefined) out.push({ path: [name], message: `cache.${name} is set but cache_layers does not list ${name}: add it there or remove this section` });
  }
  if (c.disk && c.disk.max_item_size_mb > c.disk.max_disk_size_mb) out.push({ path: ["disk", "max_item_size_mb"], message: `must not exceed max_disk_size_mb (${c.disk.max_disk_size_mb}), got ${c.disk.max_item_size_mb}` });
  // (an item the layer could never hold: the start-up summary said "memory 1024 MiB (items<=2048 MiB)")
  if (layers.includes("memory") && c.memory.max_item_size_mb > c.memory.max_cache_size_mb) out.push({ path: ["memory", "max_item_size_mb"], message: `must not exceed max_cache_size_mb (${c.memory.max_cache_size_mb}), got ${c.memory.max_item_size_mb}` });
  return out;
}

const MetricsSchema = z.strictObject({
  enabled: z.boolean().default(false),
  address: nonEmpty.default("127.0.0.1"),
  port: z.number().int().min(0).max(65535).default(9090),
});

const LoggingSchema = z.strictObject({
  level: z.enum(["trace", "debug", "info", "warn", "error"]).default("info"),
  format: z.enum(["json", "text"]).default("json"),
});

export const ConfigSchema = z.strictObject({
  server: ServerSchema.prefault({}),
  buckets: z.array(BucketSchema).min(1, "at least one bucket is required"),
  jwt: JwtSchema.optional(),
  cache: CacheSchema.prefault({}),
  metrics: MetricsSchema.prefault({}),
  logging: LoggingSchema.prefault({}),
  s3_api: S3ApiSchema.optional(),
  audit: AuditSchema.prefault({}),
  tracing: TracingSchema.prefault({}),
});
export type RawConfig = z.infer<typeof ConfigSchema>;
