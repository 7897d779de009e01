/**
 * The App: what outlives a config reload (cache, metrics, logger, concurrency counter) and the
 * one mutable reference to the current Runtime.
 *
 * reload(): read → validate fully → build a new Runtime (whose JWKS keys must be loaded first:
 * see buildRuntime) → swap. Anything failing on the way changes nothing: the old runtime keeps
 * serving, the error is logged and counted.
 */
import { normalize } from "node:path";
import { renewalNameNote, renewalRefusal } from "./config/notes.ts";
import { applyCacheConfig, bucketCachePolicy, cacheRestartChanges, cacheRestartKey, cacheStores, createCache, registerCacheMetrics, retireOtherDiskLayouts, upstreamIdentity, type Cache } from "./cache/index.ts";
import type { DiskLayer } from "./cache/disk.ts";
import { ConfigError, loadConfigSourceOffThread, loggedProblems, printable, shownArgument, type Config } from "./config/load.ts";
import { resolveConfigPath } from "./config/validate.ts";
import { readinessOf } from "./control/ready.ts";
import { ByteBudget, ConcurrencyLimiter, RedisRateLimiter, UploadLimiter } from "./limits/index.ts";
import { DEFAULT_FORM_UPLOAD_BUFFER_MIB } from "./config/s3-api.ts";
import { createAuditTrail, type AuditTrail } from "./observe/audit.ts";
import { createLogger, type Logger } from "./observe/log.ts";
import { Metrics } from "./observe/metrics.ts";
import { Tracer } from "./observe/trace/tracer.ts";
import { buildRuntime, publishBreakerStates, retireBreakers, type Runtime, type RuntimeDeps } from "./runtime.ts";
import { UpstreamPools } from "./s3/http1/index.ts";
import { COMMIT, VERSION } from "./version.ts";
import { workerIndex, type ConfigText, type ReloadResult, type SentConfig } from "./workers.ts";
import { readTls, type Listener, type TlsMaterial } from "./server.ts";
import { X509Certificate } from "node:crypto";
import { OpenWork } from "./util/open-work.ts";

/**
 * What a request's phases may use besides their RequestContext: the current generation and the
 * services that outlive a reload. The App is the one implementation; tests may provide another.
 */
export interface Services {
  readonly runtime: Runtime;
  readonly metrics: Metrics;
  readonly cache: Cache;
  readonly log: Logger;
  readonly concurrency: ConcurrencyLimiter;
  /** Requests whose body is being received (server.max_concurrent_uploads[_per_ip]). */
  readonly uploads: UploadLimiter;
  /** Bytes browser form uploads may hold in their part buffers together (s3_api.form_upload_buffer_mib). */
  readonly formBuffers: ByteBudget;
  /** Form uploads' multipart uploads not yet completed or aborted: a shutdown waits for them (OpenWork). */
  readonly openWork: OpenWork;
  readonly draining: boolean;
  /** The audit trail (audit.enabled), written by the logging step. */
  readonly audit?: AuditTrail;
  /** Tracing (src/observe/trace/); absent or disabled: requests carry no span. */
  readonly tracer?: Tracer;
}

export interface AppOptions {
  /** The config file a reload reads. A worker process has none: it runs only what its primary sends. */
  configPath?: string;
  /** The exact text `config` was validated from (a primary hands it to its worker processes). */
  configText?: string;
  /** The first generation's number (a worker process joins its primary's current one); default 1. */
  generation?: number;
  log?: Logger;
  share?: number;
  fetch?: typeof fetch;
  probeIntervalMs?: number;
  /**
   * A reload asked for through the admin API, for the whole multi-process group (main.ts wires
   * it to the worker supervisor; the control plane itself knows nothing of processes): it settles
   * once every worker has applied it (or failed, or not answered in time) and says which did.
   * Undefined, or a call that answers undefined: this process only.
   */
  reloadAll?: () => Promise<ReloadResult> | undefined;
  /** server.https's certificate and key the listeners serve (read at start; sent to the workers). */
  tls?: TlsMaterial;
}

/** The form uploads' buffer budget of this process. */
/** The upload caps of one process (a worker's share, as max_concurrent_requests). */
/** This process's share of max_concurrent_requests, and of what one address may hold (default: a quarter of the cap). */
/**
 * One process's part of a cap the group shares: 1/N of it, but at least `floor` (never more than
 * the cap itself). The kernel spreads a client's connections over the processes at random, not
 * evenly: with server.workers: 32 the default upload caps came to 4 per process and 1 per address,
 * and `aws s3 sync`'s 10 concurrent uploads met SlowDown whenever three of them landed on one
 * process (about one sync in eight), failing after the CLI's retries with larger files.
 */
function perProcess(cap: number, share: number, floor: number): number {
  return Math.max(1, Math.floor(cap / share), Math.min(cap, floor));
}

function requestCaps(c: Config, share = 1): [number, number] {
  const perIp = c.server.max_concurrent_requests_per_ip ?? Math.ceil(c.server.max_concurrent_requests / 4);
  return [perProcess(c.server.max_concurrent_requests, share, 16), perProcess(perIp, share, 8)];
}

function uploadCaps(c: Config, share = 1): [number, number] {
  // Both per process, as requestCaps: a per-address cap left whole let one address take every
  // upload slot of a worker (it is counted only once that many are in flight).
  return [perProcess(c.server.max_concurrent_uploads, share, 8), perProcess(c.server.max_concurrent_uploads_per_ip, share, 4)];
}

function formBufferBytes(c: Config): number {
  return (c.s3_api?.form_upload_buffer_mib ?? DEFAULT_FORM_UPLOAD_BUFFER_MIB) * 1024 * 1024;
}

/**
 * Settings a running process cannot change, by name: a reload that changes one is refused. A
 * listener that is off binds nothing, so its address, port and engine are not among them (adding
 * `s3_api: { enabled: false }` was refused as an address and port change).
 */
function restartOnly(c: Config): Record<string, unknown> {
  const s = c.server;
  const metrics = c.metrics.enabled;
  const s3Api = c.s3_api?.enabled ?? false;
  return {
    "server.address": s.address,
    "server.port": s.port,
    "server.workers": s.workers,
    "server.engine": s.engine,
    // Whether the listeners serve TLS, and from which files, however the paths are written
    // (./cert.pem, the absolute path): the same pair is no change. (enabled: false serves plain HTTP.)
    // (and the suites it offers: a listener's are set when it binds)
    "server.https": s.https?.enabled === true ? [...[s.https.cert_path, s.https.key_path].map((p) => normalize(resolveConfigPath(p, c.baseDir))), s.https.ciphers ?? ""] : false,
    "metrics.enabled": metrics,
    "metrics.address": metrics ? c.metrics.address : undefined,
    "metrics.port": metrics ? c.metrics.port : undefined,
    "s3_api.enabled": s3Api,
    "s3_api.address": s3Api ? c.s3_api?.address : undefined,
    "s3_api.port": s3Api ? c.s3_api?.port : undefined,
    "s3_api.engine": s3Api ? c.s3_api?.engine : undefined,
  };
}

/**
 * The audit section as a reload compares it (restart-only: the App holds its file): a trail that
 * is off is off whatever path it names, and the file is the one its path names, however written
 * (a path beside enabled: false, or audit.log written ./audit.log, refused the reload).
 */
function auditRestartKey(c: Config): string {
  const a = c.audit;
  return a.enabled ? JSON.stringify([a.path === undefined ? undefined : normalize(resolveConfigPath(a.path, c.baseDir)), a.max_size_mb, a.max_files]) : "off";
}

/** The restart-only settings a reload from `old` to `next` would change, by name (tests; a reload names them with restartOnlyChangesShown). */
export function restartOnlyChanges(next: Config, old: Config): string[] {
  return changedKeys(restartOnly(next), restartOnly(old));
}

/** The settings whose values differ between two restartOnly maps (`a`: the next config's). */
function changedKeys(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const changed = Object.keys(a).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  // A listener switched on or off is that change alone: its address and port were not changed
  // ("metrics.enabled, metrics.address, metrics.port changed" named an address left as it was).
  return changed.filter((k) => !/^(metrics|s3_api)\.(address|port|engine)$/.test(k) || !changed.includes(`${k.slice(0, k.indexOf("."))}.enabled`));
}

/** A restart-only setting as a refused reload names it: `on`/`off`, a TLS pair's files, else the value. */
function shownSetting(v: unknown): string {
  if (v === undefined || v === false) return "off";
  if (v === true) return "on";
  if (Array.isArray(v)) return v.filter((x) => x !== "").join(" + ");
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

/**
 * The restart-only settings a reload would change, each with the value running and the one written
 * ("server.port (8080 → 8081)"), after where the file writes it as a config error gives it
 * (`config.yaml:3: server.port (8080 → 8081)`) when `written` has its line (`lines`, from the load).
 */
export function restartOnlyChangesShown(next: Config, old: Config, written?: { file: string; lines: Readonly<Record<string, number>> }): string[] {
  const [now, was] = [restartOnly(next), restartOnly(old)];
  const file = written === undefined ? "" : printable(shownArgument(written.file));
  // In file order, as config errors are (a file writing s3_api before metrics, as the demo's does)
  const keys = changedKeys(now, was).sort((a, b) => (written?.lines[a] ?? Infinity) - (written?.lines[b] ?? Infinity));
  return keys.map((k) => {
    const line = written?.lines[k];
    return `${line === undefined ? "" : `${file}:${line}: `}${k} (${shownSetting(was[k])} → ${shownSetting(now[k])})`;
  });
}

/** What a reload reads instead of the file: a worker's primary's config text, and the TLS pair it serves. */
type ReloadSource = ConfigText & { tls?: TlsMaterial };

export class App implements Services {
  runtime: Runtime;
  readonly metrics: Metrics;
  readonly cache: Cache;
  readonly log: Logger;
  readonly concurrency: ConcurrencyLimiter;
  readonly uploads: UploadLimiter;
  readonly formBuffers: ByteBudget;
  readonly openWork = new OpenWork();
  draining = false;
  audit: AuditTrail | undefined;
  /** Outlives reloads: a reload reconfigures it (doReload). */
  tracer: Tracer | undefined;
  private reloading: Promise<{ ok: boolean; error?: string; generation: number }> | undefined;
  /** The one reload queued behind the running one (every call made while it runs shares it). */
  private queuedReload: Promise<{ ok: boolean; error?: string; generation: number }> | undefined;
  /** The text the current generation was validated from. */
  private configText: string | undefined;
  /** server.https's pair the listeners serve (renewTls). */
  private tls: TlsMaterial | undefined;
  private listeners: readonly Listener[] = [];

  private constructor(
    runtime: Runtime,
    metrics: Metrics,
    cache: Cache,
    log: Logger,
    private readonly opts: AppOptions,
    private readonly deps: RuntimeDeps,
  ) {
    this.runtime = runtime;
    this.metrics = metrics;
    this.cache = cache;
    this.log = log;
    this.concurrency = new ConcurrencyLimiter(...requestCaps(runtime.config, opts.share));
    this.uploads = new UploadLimiter(...uploadCaps(runtime.config, opts.share));
    // (read at scrape time: an upload pays nothing for it; with workers, summed over the processes)
    const uploading = metrics.registry.gauge("yatagarasu_uploads_in_flight", "Requests whose body is being received now (server.max_concurrent_uploads counts them).").labels();
    metrics.registry.onCollect(() => uploading.set(this.uploads.inFlight));
    this.formBuffers = new ByteBudget(formBufferBytes(runtime.config));
    this.tls = opts.tls;
    if (this.tls !== undefined) this.servedCertificate(this.tls.cert);
  }

  /** The metric of the served certificate's expiry (a certificate that does not parse: none). */
  private servedCertificate(pem: string): void {
    const notAfter = certificateFacts(pem).not_after;
    if (notAfter !== undefined) this.metrics.tlsCertificate(Date.parse(notAfter));
  }

  /**
   * Deletes the disk cache folders another `server.workers` layout left, once this process's
   * listeners are bound (cli.ts): an instance that cannot start must change nothing.
   */
  retireOtherDiskLayouts(): void {
    (this.cache.layer("disk") as DiskLayer | undefined)?.claimLock();
    const c = this.runtime.config;
    // (the instance, as the disk layer's: its own lock in a folder is no other proxy's)
    // (a folder that cannot be deleted: logged, the process serving on; it was an unhandled rejection, an exit)
    retireOtherDiskLayouts(c.cache, { baseDir: c.baseDir, log: this.log, share: this.opts.share, worker: workerIndex(), instance: String(c.server.port) }).catch((err) =>
      this.log.error("disk cache: the folders of another server.workers layout could not be deleted", { path: c.cache.disk?.path, error: String((err as Error)?.message ?? err) }),
    );
  }

  /**
   * A start that could not bind (cli.ts, exit 3): the disk layer's starting lock removed at once.
   * Not close(), which waits for the disk index rebuild (as a stop must): a large folder's, or a
   * verified one's, held the exit for as long (40,000 files: 11 s, a failed start's exit 0.6 s before).
   */
  abandonStart(): void {
    (this.cache.layer("disk") as DiskLayer | undefined)?.abandonStart();
  }

  static async create(config: Config, opts: AppOptions = {}): Promise<App> {
    const log = opts.log ?? createLogger({ level: config.logging.level, format: config.logging.format });
    const metrics = new Metrics({ version: VERSION, commit: COMMIT, buckets: config.buckets.map((b) => b.name) });
    // Throws (could not start) when a disk layer's folder cannot be used. `stores`: the disk layer
    // drops at start what a reload would have purged (files of buckets that do not cache, or
    // stamped with another store than their bucket reads now); the Redis layer serves only
    // entries stamped with the bucket's store.
    const cache = createCache(config.cache, { baseDir: config.baseDir, log, share: opts.share, worker: workerIndex(), instance: String(config.server.port), stores: cacheStores(config) });
    registerCacheMetrics(metrics.registry, cache);
    metrics.setCacheCollector(() => {
      const st = cache.stats();
      const hits: Record<string, number> = {};
      const misses: Record<string, number> = {};
      const stale: Record<string, number> = {};
      // (a bucket a reload removed keeps its counts: a counter never goes down)
      for (const [name, b] of Object.entries(cache.meteredCounts())) {
        hits[name] = b.hits;
        misses[name] = b.misses;
        stale[name] = b.stale;
      }
      return { hits, misses, stale, evictions: st.total.evictions, bytes: st.total.bytes, items: st.total.items, coalesced: st.total.coalesced };
    });
    const tracer = new Tracer(config.tracing, { registry: metrics.registry, version: VERSION, log: (level, msg, fields) => log.log(level, msg, fields) });
    // The upstream connection pools outlive a reload (keep-alive connections to an unchanged
    // endpoint are reused); a reload retires the ones the new generation no longer uses.
    const pools = new UpstreamPools();
    const deps: RuntimeDeps = { metrics, log, baseDir: config.baseDir, share: opts.share, fetch: opts.fetch, probeIntervalMs: opts.probeIntervalMs, tracer, pools };
    const generation = opts.generation ?? 1;
    const runtime = await buildRuntime(config, generation, deps);
    publishBreakerStates(runtime, metrics);
    metrics.setGeneration(generation);
    const app = new App(runtime, metrics, cache, log, opts, deps);
    app.configText = opts.configText;
    app.tracer = tracer;
    app.audit = createAuditTrail(config.audit, { baseDir: config.baseDir, log, registry: metrics.registry, share: opts.share, worker: workerIndex() });
    // /ready's verdict at scrape time, for alerts (min over workers: one unready process shows).
    const ready = metrics.registry.gauge("yatagarasu_ready", "1 while /ready answers 200, else 0 (an upstream unreachable or its breaker open, JWKS not loaded, draining).", [], "min").labels();
    // Which bucket made it 0 (an alert can name it): the series of the buckets this generation serves only.
    const bucketReady = metrics.registry.gauge("yatagarasu_bucket_ready", "1 while a bucket's upstream is ready as /ready reports it (probe answered, breaker not open; with s3.replicas: some replica healthy), else 0.", ["bucket"], "min");
    metrics.registry.onCollect(() => {
      const report = readinessOf(app.runtime, app.draining);
      ready.set(report.ready ? 1 : 0);
      bucketReady.clear();
      for (const [name, b] of Object.entries(report.buckets)) bucketReady.labels(name).set(b.ok ? 1 : 0);
    });
    // (with the redis backend only: an alert on local decisions needs no /ready scraping)
    const shared = metrics.registry.gauge("yatagarasu_rate_limit_shared", "With server.rate_limit.backend redis: 1 while the limits are shared through Redis, 0 while each process enforces its local share (Redis unavailable).", [], "min");
    metrics.registry.onCollect(() => {
      const l = app.runtime.limiter;
      if (l instanceof RedisRateLimiter) shared.labels().set(l.shared ? 1 : 0);
      else shared.clear();
    });
    return app;
  }

  /** A reload asked for through the admin API: every process of the group (the primary's first), or this one alone. */
  reloadEverywhere(): Promise<ReloadResult> {
    return this.opts.reloadAll?.() ?? this.reload();
  }

  /**
   * What this process runs, as a primary hands it to its worker processes: the exact text the
   * current generation was validated from, and the generation. Undefined without a config file.
   */
  currentConfig(): SentConfig | undefined {
    if (this.configText === undefined || !this.opts.configPath) return undefined;
    const sent: SentConfig = { text: this.configText, file: this.opts.configPath, baseDir: this.runtime.config.baseDir, generation: this.runtime.generation };
    if (this.tls !== undefined) sent.tls = this.tls;
    return sent;
  }

  /**
   * Reloads the config file, or (`sent`, in a worker process) the text the primary sent.
   * A call made while a reload runs gets one more reload after it: the running one may have read
   * the file before the edit this call was made for (a second SIGHUP right after an edit was
   * otherwise answered with the first one's outcome, and the edit not applied). Every call made
   * while one runs shares that one follow-up. `generation`: the generation to reach (a worker
   * follows its primary's; main.ts calls it one reload at a time); by default the next one.
   */
  reload(generation?: number, sent?: ReloadSource): Promise<{ ok: boolean; error?: string; generation: number }> {
    if (this.reloading === undefined) {
      this.reloading = this.doReload(generation, sent).finally(() => (this.reloading = undefined));
      return this.reloading;
    }
    const next = () => {
      this.queuedReload = undefined;
      return this.reload(generation, sent);
    };
    this.queuedReload ??= this.reloading.then(next, next);
    return this.queuedReload;
  }

  private async doReload(generation?: number, sent?: ReloadSource): Promise<{ ok: boolean; error?: string; generation: number }> {
    const old = this.runtime;
    // The audit file is opened again if it was moved or deleted (logrotate's mv + SIGHUP), whatever the config's fate.
    void this.audit?.reopen();
    // (`problems`: a refused file's problems one by one, as a refused start logs them: the reload's
    // line had them only joined by newlines in `error`, which a log pipeline shows as one line)
    // (the line lists at most loggedProblems' count: the answer to POST /admin/reload has them all)
    const fail = (error: string, problems?: string[]) => {
      this.metrics.configReload("failure");
      const listed = problems && loggedProblems(problems);
      const logged = listed && listed.length < problems.length ? listed.join("\n") : error;
      this.log.error("config reload failed; the previous config keeps serving", { error: logged, ...(listed && { problems: listed }), generation: old.generation });
      return { ok: false, error, generation: old.generation };
    };
    // A worker process never reads the file: it runs only what its primary read and validated.
    if (!sent && !this.opts.configPath) return fail(workerIndex() !== undefined ? "a worker process runs only the config its primary sends" : "no config file to reload");
    let config: Config;
    let text: string;
    let lines: Record<string, number>;
    const file = sent ? sent.file : this.opts.configPath!;
    try {
      // Read, parse and validate on a worker thread: serving never waits for the parse. (with the
      // lines of the restart-only settings, which a refused reload names)
      const places = Object.keys(restartOnly(old.config));
      ({ config, text, lines } = await loadConfigSourceOffThread(file, sent ? { text: sent.text, baseDir: sent.baseDir, places } : { places }));
    } catch (err) {
      return err instanceof ConfigError ? fail(err.message, err.message.split("\n")) : fail("cannot load config");
    }
    if (cacheRestartKey(config.cache, config.baseDir) !== cacheRestartKey(old.config.cache, old.config.baseDir))
      return fail(`${cacheRestartChanges(old.config.cache, config.cache, config.baseDir).join(", ")} changed: the cache's disk and redis layers (cache.enabled with them, cache_layers, disk.path, disk.fsync, the redis connection: redis.url, key_prefix, connect_timeout_ms, operation_timeout_ms) cannot change on reload: restart the process`);
    if (auditRestartKey(config) !== auditRestartKey(old.config)) return fail("the audit section cannot change on reload: restart the process");
    const changed = restartOnlyChangesShown(config, old.config, { file, lines });
    if (changed.length > 0)
      return fail(`${changed.join(", ")} changed: the listeners (server.address, server.port, server.workers, server.engine, server.https, the metrics listener and the S3 API listener: s3_api enabled/address/port/engine) cannot change on reload: restart the process`);
    // A renewal that every client would refuse (an expired pair copied back) fails the reload, as a
    // key that does not match its certificate does: it was logged, and the reload answered
    // "reloaded" (200 to POST /admin/reload, a success to a renewal hook and the reload metric).
    const tls = this.renewedTls(config, sent);
    if (typeof tls === "string") return fail(tls);
    let next: Runtime;
    try {
      next = await buildRuntime(config, generation ?? old.generation + 1, this.deps, old);
    } catch (err) {
      return fail(`cannot build the new runtime: ${(err as Error)?.message ?? String(err)}`);
    }
    // A new Redis limiter (the limits changed) decides locally, with full local buckets, until it
    // has found Redis: while the one it replaces shares the limits, the swap waits for the new
    // one's first check (bounded, as at start), so a reload lets no limited client through.
    if (next.limiter !== old.limiter && old.limiter instanceof RedisRateLimiter && old.limiter.shared) await next.limiter?.started?.();
    this.runtime = next; // the swap: one reference
    // Breakers the new generation did not take over: detached from the gauge and the log (see retireBreakers).
    retireBreakers(old, next, this.log);
    this.configText = text;
    this.log.reconfigure?.({ level: config.logging.level, format: config.logging.format });
    this.tracer?.configure(config.tracing);
    [this.concurrency.max, this.concurrency.maxPerIp] = requestCaps(config, this.opts.share);
    [this.uploads.max, this.uploads.maxPerIp] = uploadCaps(config, this.opts.share);
    this.formBuffers.max = formBufferBytes(config);
    applyCacheConfig(this.cache, config.cache);
    // In the same turn as the swap: every fill of the new generation stamps its bucket's new store.
    this.cache.setStores(cacheStores(config));
    // Every purge below is marked in the purge log and detaches the buckets' flights in this same
    // turn too (each call's synchronous start), then awaited: no request of the new generation
    // joins a flight of the old one, and a request admitted before the swap (RequestContext.cacheSince)
    // stores nothing it reads from the old store, however late it reaches the cache.
    const purging: Promise<unknown>[] = [];
    const kept = new Set(config.buckets.map((b) => b.name));
    for (const b of old.config.buckets) if (!kept.has(b.name)) purging.push(this.cache.removeBucket(b.name));
    // A kept bucket that now reads another store (another S3 bucket, endpoint or region, its
    // primary's with replicas: upstreamIdentity) or with another access key: its cached objects are the old store's (or what the old
    // key could read), so they go (the cache is keyed by the proxy
    // bucket's name). Every cache layer, Redis included: the other replicas drop them too.
    const before = new Map(old.config.buckets.map((b) => [b.name, upstreamIdentity(b)]));
    const policyBefore = new Map(old.config.buckets.map((b) => [b.name, bucketCachePolicy(old.config.cache, b)]));
    const bounded = new Map<string, NonNullable<ReturnType<typeof bucketCachePolicy>>>();
    for (const b of config.buckets) {
      const was = before.get(b.name);
      const policy = bucketCachePolicy(config.cache, b);
      const oldPolicy = policyBefore.get(b.name);
      if (was !== undefined && was !== upstreamIdentity(b)) {
        purging.push(this.cache.purgeBucket(b.name).then(() => this.log.info("cache purged: the bucket reads another store, or with another access key, since this reload", { bucket: b.name })));
      } else if (oldPolicy && policy === null) {
        // Its cache is off from now on: its entries (here, and in Redis for the other replicas)
        // would come back, stale, if it were switched on again.
        purging.push(this.cache.purgeBucket(b.name).then(() => this.log.info("cache purged: the bucket no longer caches since this reload", { bucket: b.name })));
      } else if (oldPolicy && policy && (policy.ttlSeconds !== oldPolicy.ttlSeconds || policy.defaultTtlSeconds !== oldPolicy.defaultTtlSeconds || policy.maxItemBytes < oldPolicy.maxItemBytes)) {
        // Another TTL or a smaller largest item: what memory holds is bounded by them (the lower
        // layers' entries are bounded as they are read).
        bounded.set(b.name, policy);
      }
    }
    // (one walk over memory for every such bucket: a default_ttl_seconds change names them all)
    if (bounded.size > 0) this.cache.boundBuckets(bounded);
    await Promise.all(purging);
    this.metrics.resetBucketSet([...kept]);
    publishBreakerStates(next, this.metrics);
    this.metrics.setGeneration(next.generation);
    // Counted once per reload of a group: by the process that read the file (a single process, or
    // a group's primary), not again by each worker that follows it (the merged /metrics summed
    // them: 3 successes for one reload with 3 workers, against 1 failure for a refused one). A
    // worker that fails to apply its primary's config does count its failure.
    if (sent === undefined) this.metrics.configReload("success");
    old.close(next);
    // Pools of endpoints the new generation no longer uses: idle sockets close now, requests
    // still in flight on the old generation finish on theirs.
    this.deps.pools?.retainOnly(next.pools);
    // Written whatever the new logging.level (at info, as the start's listening line): a reload to
    // `warn` left no line saying it had happened, the success line being info.
    this.log.log("info", "config reloaded", { generation: next.generation, buckets: config.buckets.length }, true);
    if (tls !== undefined) this.renewTls(config, tls);
    return { ok: true, generation: next.generation };
  }

  /** The listeners a renewed certificate goes to (cli.ts, once they are bound). */
  setListeners(listeners: readonly Listener[]): void {
    this.listeners = listeners;
  }

  /**
   * The pair a reload renews server.https with: undefined when there is none to renew (no TLS, the
   * same pair, draining, or the files gone since they were validated), or why it is refused (a
   * certificate outside its validity period in place of one within it: every client would refuse
   * it). A worker takes the pair its primary read (`sent.tls`), so every process of a group serves
   * the same one.
   */
  private renewedTls(config: Config, sent: ReloadSource | undefined): TlsMaterial | string | undefined {
    const served = this.tls;
    // (draining: the listeners are closing; a new one would accept what the exit then cuts)
    if (served === undefined || !config.server.https?.enabled || this.draining) return undefined;
    let next: TlsMaterial | undefined = sent?.tls;
    if (sent === undefined) {
      try {
        next = readTls(config, config.baseDir);
      } catch {
        return undefined; // (validated readable just before; gone since: nothing to serve)
      }
    }
    if (next === undefined || (next.cert === served.cert && next.key === served.key)) return undefined;
    const refusal = renewalRefusal(next.cert, served.cert);
    return refusal === undefined ? next : `server.https.cert_path (${config.server.https.cert_path}): ${refusal}: clients would refuse it; the previous pair keeps serving`;
  }

  /**
   * A certificate and key renewed in place (certbot, cert-manager: the same paths, new files) are
   * served from this reload on: each TLS listener binds a new one with the new pair beside it and
   * retires the old one, which finishes what it has (Listener.renewTls). A pair that cannot be
   * served (a key that does not match the certificate: certbot swaps the two files one after the
   * other) is logged and the previous one kept; the next reload tries again.
   */
  private renewTls(config: Config, next: TlsMaterial): void {
    // (a drain begun while the reload was applied: the listeners are closing)
    if (this.draining) return;
    const cert_path = config.server.https!.cert_path;
    let renewed = 0;
    const errors: string[] = [];
    for (const l of this.listeners) {
      if (l.renewTls === undefined) continue;
      try {
        void l.renewTls(next);
        renewed++;
      } catch (err) {
        errors.push(String((err as Error)?.message ?? err));
      }
    }
    if (renewed > 0) {
      const dropped = this.tls === undefined ? undefined : renewalNameNote(next.cert, this.tls.cert);
      this.tls = next;
      this.servedCertificate(next.cert);
      this.log.info("server.https: the renewed certificate is served to new connections", { cert_path, ...certificateFacts(next.cert) });
      if (dropped !== undefined) this.log.warn(`server.https: ${dropped}`, { cert_path });
    }
    if (errors.length > 0) this.log.error(`server.https: the certificate or key files changed, but ${renewed > 0 ? "a listener" : "the listeners"} cannot serve them; the previous pair is served until a reload finds a usable one`, { cert_path, error: errors[0] });
  }

  /** Resolves once the audit trail is written and closed, and the cache layers closed. */
  close(): Promise<void> {
    // main.ts awaits tracer.shutdown() first (a bounded flush); here it only stops what is left.
    void this.tracer?.shutdown();
    this.runtime.close();
    this.deps.pools?.close();
    // Awaited: the disk layer writes its purge-stream position last (see StreamCheckpoint).
    const cacheClosed = this.cache.close().catch(() => {});
    this.log.flush();
    return Promise.all([cacheClosed, this.audit?.close()]).then(() => {});
  }
}

/** What the log says of a certificate (never the key): its subject, expiry and SHA-256 fingerprint. */
function certificateFacts(pem: string): Record<string, string> {
  try {
    const c = new X509Certificate(pem);
    return { subject: c.subject.replace(/\n/g, ", "), not_after: new Date(c.validTo).toISOString(), sha256: c.fingerprint256 };
  } catch {
    return {};
  }
}
