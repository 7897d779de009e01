/**
 * The immutable runtime of one config generation: router, upstreams (with their signers and
 * breakers; a ReplicaSet per bucket with s3.replicas), authenticator, authorizers, rate limiter
 * (memory, or shared through Redis), readiness prober.
 *
 * Hot reload builds a whole new Runtime and swaps one reference; requests in flight keep the
 * Runtime they started with. State that must outlive a reload (the cache, metrics, the
 * concurrency counter) lives in the App, not here.
 */
import { Authenticator } from "./auth/index.ts";
import { FETCH_TIMEOUT_MS } from "./auth/jwks.ts";
import { createAuthorizer, type Authorizer, type DecisionResult } from "./authz/index.ts";
import { bucketCachePolicy, type CachePolicy } from "./cache/index.ts";
import type { Config } from "./config/load.ts";
import type { BucketConfig, ClaimRule } from "./config/schema.ts";
import { bucketsByStore, isSandboxed, sharingStores, userContentReaders } from "./config/writes.ts";
import { parseCidr, type Cidr } from "./http/cidr.ts";
import { buildLimiter, limiterKeyPrefix, limiterRedisUrl, type CircuitBreaker, type Limiter } from "./limits/index.ts";
import type { Logger } from "./observe/log.ts";
import type { Metrics } from "./observe/metrics.ts";
import type { Tracer } from "./observe/trace/tracer.ts";
import { probeId, Prober, type ProbeTarget } from "./observe/readiness.ts";
import { Router } from "./router.ts";
import { logBreaker, type BucketUpstream } from "./s3/upstream.ts";
import type { Http1Pool, UpstreamPools } from "./s3/http1/index.ts";
import { S3Identities } from "./fronts/s3/identities.ts";
import { buildUpstream, replicaConfig, ReplicaSet, type ObjectUpstream, type Replica } from "./s3/replicas.ts";

export interface BucketRuntime {
  readonly name: string;
  readonly cfg: BucketConfig;
  /**
   * Reads (GET/HEAD) go through `upstream.fetchObject`: with s3.replicas, a ReplicaSet that fails
   * over. Writes must go to `upstream.primary()` (never a secondary).
   */
  readonly upstream: ObjectUpstream;
  /** The replicas by priority, for buckets with s3.replicas (undefined: one endpoint). */
  readonly replicas: readonly Replica[] | undefined;
  readonly authRequired: boolean;
  /**
   * Not everyone may read: auth, an authorizer or an IP filter. Its answers go out `private`
   * (answeredPrivately): a shared cache in front must not hand them to whoever asks next.
   */
  readonly restricted: boolean;
  /** Objects are answered sandboxed (user content: a read-write bucket, or a read-only one reading its store; sandbox_user_content decides when set). */
  readonly sandboxed: boolean;
  readonly extraRules: readonly ClaimRule[];
  readonly authorizer: Authorizer | undefined;
  readonly cachePolicy: CachePolicy | null;
  /**
   * The caching buckets (this one included, if it caches) that read a store this bucket's writes
   * land in: a write or delete of a key purges it from each of them (two prefixes on one S3
   * bucket, say an anonymous cached mirror beside a read-write one, must not serve the old object).
   */
  readonly cacheMates: readonly string[];
  readonly allow: readonly Cidr[];
  readonly block: readonly Cidr[];
}

export interface Runtime {
  readonly generation: number;
  readonly config: Config;
  readonly router: Router<BucketRuntime>;
  readonly buckets: ReadonlyMap<string, BucketRuntime>;
  readonly auth: Authenticator | undefined;
  /** check() is synchronous with the memory backend; with redis it may return a promise. */
  readonly limiter: Limiter | undefined;
  /** What the limiter was built from (a reload that leaves it as it was keeps the limiter and its budgets). */
  readonly limiterSignature: string;
  readonly trustedProxies: readonly Cidr[];
  readonly prober: Prober;
  /** The own client's connection pools this generation's upstreams use (the App retires the others on reload). */
  readonly pools: readonly Http1Pool[];
  /** The S3 front's credentials and sessions of this generation (s3_api enabled), else undefined. */
  readonly s3Api: S3Identities | undefined;
  /** `successor`: the generation replacing this one, whose parts taken over (the limiter) stay open. */
  close(successor?: Runtime): void;
}

export interface RuntimeDeps {
  metrics?: Metrics;
  log: Logger;
  baseDir?: string;
  /** Rate-limit share for multi-process workers (each enforces 1/share of the configured rates). */
  share?: number;
  fetch?: typeof fetch;
  probeIntervalMs?: number;
  /** Start background probes and JWKS refresh (off for `--check`). */
  start?: boolean;
  /** Tracing: JWKS fetches get their own spans (the App's tracer, which outlives reloads). */
  tracer?: Tracer;
  /** The App's upstream connection pools (shared by generations; see App.reload). */
  pools?: UpstreamPools;
}

const cidrs = (list: readonly string[]): Cidr[] => list.map((c) => parseCidr(c)).filter((c): c is Cidr => c !== null);

/**
 * BucketRuntime.cacheMates: the buckets that read any store `b` reads (a write reaches its
 * replicas by replication) and may hold cached entries: those that cache here, and, with a
 * shared (Redis) layer, also those whose cache is off here, since another replica may cache them
 * (a rolling reload). Without a shared layer a bucket that does not cache holds nothing (a reload
 * that switches its cache off drops its entries), so its writes cost no purge.
 */
export function cacheMatesOf(config: Config): (b: Config["buckets"][number]) => string[] {
  if (!config.cache.enabled) return () => [];
  const shared = config.cache.cache_layers.includes("redis");
  const byStore = bucketsByStore(config.buckets, (c) => shared || bucketCachePolicy(config.cache, c) !== null);
  return (b) => sharingStores(byStore, b);
}

/** How long a reload waits for a new jwks_url's first fetch (the fetch itself gives up after FETCH_TIMEOUT_MS). */
const RELOAD_JWKS_WAIT_MS = FETCH_TIMEOUT_MS + 1_000;

/**
 * A reload must not leave the proxy unable to verify tokens it verified before (defect: a reload
 * to an unreachable jwks_url was accepted, then every JWT request, /ready and the admin API
 * itself answered 503 until a SIGHUP). So the new generation's JWKS keys must be there before it
 * is swapped in: taken over from the previous generation (jwks_url unchanged), or fetched within
 * RELOAD_JWKS_WAIT_MS (a new or changed jwks_url). Otherwise the reload is refused whole, as an
 * invalid config is. Not when the previous generation had no JWKS keys loaded either (down since
 * start-up): there is nothing to lose then, and refusing would block every other change.
 * Start-up (no previous generation) never waits for the JWKS.
 */
async function checkJwksForReload(auth: Authenticator, previous: Runtime, log: Logger): Promise<void> {
  const keys = await auth.keysSettled(RELOAD_JWKS_WAIT_MS);
  if (keys.ok) return;
  if (previous.auth?.readiness().ok === false) {
    log.warn("JWKS keys of the new config not loaded; the reload goes ahead, the previous config had none loaded either", { reason: keys.reason });
    return;
  }
  throw new Error(`jwt.jwks_url: ${keys.reason}; the reload is refused so that tokens keep verifying with the previous config's keys`);
}

/**
 * Builds one generation. `previous`: the generation a reload replaces (its JWKS keys are taken
 * over for an unchanged jwks_url, and a new one must load first: see checkJwksForReload).
 */
/**
 * What a bucket's (or replica's) probe and breaker depend on: its s3 section, a replica's as it
 * reads its store (replicaConfig: its own connection keys and timeouts, the bucket's other keys),
 * so a reload that changes none of it keeps the last probe result and the breaker. (It was the
 * bucket's whole s3 section for each replica: a reload that added, removed or reordered a replica
 * dropped every replica's, /ready answered 503 "not probed yet" for the bucket, on every proxy so
 * reloaded at once, and an open breaker closed, sending reads at a dead replica again.)
 */
function probeKey(cfg: BucketConfig, replica?: string): string {
  const r = replica === undefined ? undefined : cfg.s3.replicas?.find((x) => x.name === replica);
  return JSON.stringify([replica ?? "", r === undefined ? cfg.s3 : replicaConfig(cfg, r).s3]);
}

export async function buildRuntime(config: Config, generation: number, deps: RuntimeDeps, previous?: Runtime): Promise<Runtime> {
  const authLog = (level: "info" | "warn" | "error", msg: string, fields?: object) => deps.log.log(level, msg, fields as Record<string, unknown>);
  const jwt = config.jwt?.enabled ? config.jwt : undefined;
  const auth = jwt ? await Authenticator.create(jwt, { baseDir: deps.baseDir, log: authLog, fetch: deps.fetch, tracer: deps.tracer, previous: previous?.auth }) : undefined;
  if (auth !== undefined && previous !== undefined) {
    // Before anything else is built: a refused generation leaves no trace (metrics series, probes).
    try {
      await checkJwksForReload(auth, previous, deps.log);
    } catch (err) {
      auth.close();
      throw err;
    }
  }

  const buckets = new Map<string, BucketRuntime>();
  const metrics = deps.metrics;
  const authzCount = metrics === undefined ? undefined : (a: "opa" | "openfga", r: DecisionResult) => metrics.authzDecision(a, r);
  const matesOf = cacheMatesOf(config);
  const userContent = userContentReaders(config.buckets);
  const replicaSets = new Map<string, readonly string[]>();
  for (const b of config.buckets) if (b.s3.replicas) replicaSets.set(b.name, b.s3.replicas.map((r) => r.name));
  const series = deps.metrics?.replicas.configure(replicaSets);
  // Breakers a reload takes over: a bucket (or replica) whose s3 section is as it was keeps its
  // breaker, open or not (a reload for any reason closed every open breaker, silently, and sent
  // requests at a dead upstream again).
  const breakers = new Map(previous === undefined ? [] : breakerEntries(previous).map(([k, b]) => [k, b] as const));
  try {
    for (const b of config.buckets) {
      const upstream = buildUpstream(
        b,
        {
          metrics: deps.metrics,
          fetch: deps.fetch,
          // An injected fetch (tests) means every request must go through it.
          client: deps.fetch ? "fetch" : config.server.upstream_client,
          bufferBodyUpTo: config.server.buffer_threshold_bytes,
          pools: deps.pools,
          log: (level, msg, fields) => deps.log.log(level, msg, fields),
        },
        series?.get(b.name),
        (replica) => breakers.get(breakerKey(b.name, probeKey(b, replica))),
      );
      buckets.set(b.name, {
        name: b.name,
        cfg: b,
        upstream,
        replicas: upstream instanceof ReplicaSet ? upstream.replicas : undefined,
        authRequired: b.auth.enabled,
        restricted: b.auth.enabled || b.authorization !== undefined || b.ip_filter.allowlist.length > 0 || b.ip_filter.blocklist.length > 0,
        sandboxed: isSandboxed(b, userContent),
        extraRules: b.auth.claims,
        authorizer: b.authorization ? createAuthorizer(b.authorization, { log: authLog, fetch: deps.fetch, onDecision: authzCount }) : undefined,
        cachePolicy: bucketCachePolicy(config.cache, b),
        cacheMates: matesOf(b),
        allow: cidrs(b.ip_filter.allowlist),
        block: cidrs(b.ip_filter.blocklist),
      });
    }
  } catch (err) {
    auth?.close();
    throw err;
  }
  // A reload that leaves the limits as they were keeps the limiter (a reload for another reason gave
  // every client a fresh burst): the in-memory budgets, and the Redis one's connection, for a new
  // one decides locally, with full local buckets, until it has found Redis.
  const limits = limiterSignature(config);
  const limiter: Limiter | undefined =
    previous !== undefined && previous.limiterSignature === limits
      ? previous.limiter
      : buildLimiter(config, { share: deps.share ?? 1, log: deps.log, connect: deps.start !== false, previous: previous?.limiter });
  const targets: ProbeTarget[] = [];
  for (const b of buckets.values()) {
    if (b.replicas) for (const r of b.replicas) targets.push({ id: probeId(b.name, r.name), key: probeKey(b.cfg, r.name), upstream: r.upstream.origin, probe: (ms) => r.probe(ms) });
    else {
      const u = b.upstream.primary();
      targets.push({ id: b.name, key: probeKey(b.cfg), upstream: u.origin, probe: (ms) => u.probe(ms) });
    }
  }
  const prober = new Prober(targets, deps.probeIntervalMs ?? config.server.readiness_probe_interval_seconds * 1000, undefined, previous?.prober, (level, msg, fields) =>
    deps.log.log(level, msg, fields),
  );
  // Let go of the previous generation: this async function's scope outlives it in the closures
  // below (close()), and holding `previous` there kept every generation since start reachable (a
  // black-box soak: ~0.5 MB per reload with 200 buckets, never freed).
  previous = undefined;
  if (deps.start !== false) prober.start();

  return {
    generation,
    config,
    router: new Router([...buckets.values()].map((b) => ({ prefix: b.cfg.path_prefix, bucket: b }))),
    buckets,
    auth,
    limiter,
    limiterSignature: limits,
    trustedProxies: cidrs(config.server.trusted_proxies),
    prober,
    pools: [...buckets.values()].flatMap((b) => (b.replicas ? b.replicas.map((r) => r.upstream.pool) : [(b.upstream as BucketUpstream).pool])).filter((p): p is Http1Pool => p !== undefined),
    s3Api: config.s3_api?.enabled ? new S3Identities(config.s3_api) : undefined,
    close(successor) {
      prober.stop();
      if (limiter !== successor?.limiter) limiter?.close?.();
      auth?.close();
      for (const b of buckets.values()) b.authorizer?.close?.();
    },
  };
}

/** Which breaker a bucket (or one of its replicas) takes over on reload: its name and its s3 section. */
function breakerKey(bucket: string, probe: string): string {
  return `${bucket}\u0000${probe}`;
}

/** Every circuit breaker of a generation (its buckets' and their replicas'), with its breakerKey and the log fields naming it. */
function breakerEntries(rt: Runtime): Array<[string, CircuitBreaker, Record<string, string>]> {
  const out: Array<[string, CircuitBreaker, Record<string, string>]> = [];
  for (const b of rt.buckets.values()) {
    if (b.replicas) {
      for (const r of b.replicas) if (r.upstream.breaker) out.push([breakerKey(b.name, probeKey(b.cfg, r.name)), r.upstream.breaker, { bucket: b.name, replica: r.name }]);
    } else {
      const single = (b.upstream as BucketUpstream).breaker;
      if (single) out.push([breakerKey(b.name, probeKey(b.cfg)), single, { bucket: b.name }]);
    }
  }
  return out;
}

/** Every circuit breaker of a generation. */
function breakersOf(rt: Runtime): Set<CircuitBreaker> {
  return new Set(breakerEntries(rt).map(([, b]) => b));
}

/**
 * The breakers of `old` that `next` did not take over (their s3 section changed, or they were
 * removed): they still see the requests the old generation started, but their transitions no
 * longer reach the gauge or the log (a request begun before the reload opened a replaced breaker
 * and set the bucket's gauge to 1 while its new breaker was closed, or brought back a removed
 * one's series). One that was not closed is logged closed by the reload: its "circuit breaker
 * open" line had no sequel, and a log reader kept the bucket refused for good.
 */
export function retireBreakers(old: Runtime, next: Runtime, log: Logger): void {
  const carried = breakersOf(next);
  for (const [, b, fields] of breakerEntries(old)) {
    if (carried.has(b)) continue;
    b.onStateChange = undefined;
    const was = b.state;
    if (was !== "closed") logBreaker((level, msg, f) => log.log(level, msg, f), { ...fields, reason: "replaced or removed by a reload" }, "closed", was);
  }
}

/**
 * yatagarasu_circuit_breaker_state for every bucket with a breaker, as its breaker stands (one taken
 * over by a reload may be open), and no series for a bucket without one. After resetBucketSet, so
 * that a bucket a reload added has its series from the start.
 */
export function publishBreakerStates(rt: Runtime, metrics: Metrics): void {
  const withBreaker = new Set<string>();
  for (const b of rt.buckets.values()) {
    if (!b.cfg.s3.circuit_breaker) continue;
    withBreaker.add(b.name);
    const code = b.upstream instanceof ReplicaSet ? b.upstream.breakerCode() : ((b.upstream as BucketUpstream).breaker?.stateCode ?? 0);
    metrics.setBreakerState(b.name, code);
  }
  metrics.retainBreakers(withBreaker);
}

/**
 * The config the rate limiter is built from, as one comparable string. Only buckets with their own
 * limit: adding or removing one without changes no limit (it gave every client a fresh burst).
 */
function limiterSignature(config: Config): string {
  const redisPrefix = limiterKeyPrefix(config);
  const buckets = config.buckets.filter((b) => b.s3.rate_limit).map((b) => [b.name, b.s3.rate_limit]);
  return JSON.stringify([config.server.rate_limit ?? null, buckets, limiterRedisUrl(config) ?? null, redisPrefix ?? null]);
}
