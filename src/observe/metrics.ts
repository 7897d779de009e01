/**
 * The proxy's Prometheus metrics. Hot-path methods do a Map lookup or two and a few additions;
 * no strings are built once a series exists.
 *
 * Label cardinality is bounded by construction: `bucket` is a configured bucket name or one of
 * `_none` (unmapped), `_health`, `_admin`, `_metrics` — any other string is counted as `_none`;
 * `method` is GET/HEAD/OPTIONS/PUT/POST/DELETE/OTHER; `status` a number in 100..599 (anything else is "0").
 * Bucket names beginning with "_" would share a series with the fixed values.
 *
 * Reload: `resetBucketSet(names)` keeps the counters and histograms of buckets no longer configured
 * (they never go back to zero, and requests in flight on the old config are counted under their
 * bucket), drops their breaker gauge, and adds zero-valued series for new buckets.
 *
 * Workers: each process exposes `snapshot()` (JSON-able); `renderMerged(snapshots)` sums counters,
 * histograms and most gauges, and takes the max for generation, build_info and breaker state.
 */
import { registerProcessMetrics } from "./process.ts";
import { ReplicaMetrics } from "./replica-metrics.ts";
import { mergeSnapshots, Registry, renderSnapshot, type CounterChild, type HistogramChild, type Snapshot } from "./registry.ts";

const FIXED_BUCKET_LABELS = ["_none", "_health", "_admin", "_metrics"] as const;
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const AUTH_RESULTS = ["success", "missing", "invalid", "forbidden", "error"] as const;
const AUTHORIZERS = ["opa", "openfga"] as const;
const AUTHZ_RESULTS = ["allow", "deny", "error", "fail_open"] as const;
const RATE_LIMIT_SCOPES = ["global", "per_ip", "bucket", "concurrency", "concurrency_per_ip", "uploads", "uploads_per_ip"] as const;
export type AuthResult = (typeof AUTH_RESULTS)[number];
export type AuthzResult = (typeof AUTHZ_RESULTS)[number];
export type RateLimitScope = (typeof RATE_LIMIT_SCOPES)[number];
/** An S3 HTTP status, or why there was none. */
export type S3Outcome = number | "error" | "timeout";
export type ReloadResult = "success" | "failure";

/** What the cache owner reports at scrape time (its own running totals). */
export interface CacheStats {
  hits: Record<string, number>;
  misses: Record<string, number>;
  /** Stale copies answered while the store failed (stale_if_error_seconds), by bucket. */
  stale?: Record<string, number>;
  evictions: number;
  bytes: number;
  items: number;
  coalesced: number;
}

export interface MetricsOptions {
  version: string;
  /** The build's commit (COMMIT: "source" when run from source), build_info's `commit` label. */
  commit?: string;
  /** Configured bucket names (see resetBucketSet). */
  buckets?: readonly string[];
  /** Register process_* metrics (default true). */
  processMetrics?: boolean;
}

const METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "DELETE", "OTHER"] as const;
const OTHER_METHOD = METHODS.length - 1;
const BODY_ERROR_REASONS = new Set(["UpstreamBodyIncomplete", "UpstreamBodyTooLong", "UpstreamStalled", "ClientClosedRequest"]);

function methodIndex(method: string): number {
  if (method === "GET") return 0;
  const i = METHODS.indexOf(method.toUpperCase() as (typeof METHODS)[number]);
  return i < 0 ? OTHER_METHOD : i;
}

/** Cached children of one bucket label value. */
interface BucketSeries {
  name: string;
  /** Key: method index * 1000 + status. */
  requests: Map<number, CounterChild>;
  /** By method index (GET's created with the bucket, the others at their first request). */
  duration: (HistogramChild | undefined)[];
  bytes: CounterChild;
  throttled: CounterChild;
  s3: Map<S3Outcome, CounterChild>;
  s3Duration: HistogramChild | undefined;
  s3Retries: CounterChild | undefined;
  /** By operation, then status (no key string joined per write). */
  writes: Map<string, Map<number, CounterChild>>;
  /** Key: operation + " " + code. */
  writeErrors: Map<string, CounterChild>;
  requestBytes: CounterChild | undefined;
}

/** Distinct error-code label values kept before the rest are counted as "other" (codes come from the proxy's catalogues, and from an upstream's refusals). */
const MAX_ERROR_CODES = 100;
const CODE_LABEL = /^[A-Za-z][A-Za-z0-9]{0,63}$/;

export class Metrics {
  readonly registry = new Registry();
  private readonly r = this.registry;
  private readonly requests = this.r.counter("yatagarasu_http_requests_total", "HTTP requests answered, by bucket, method and status.", ["bucket", "method", "status"]);
  private readonly duration = this.r.histogram(
    "yatagarasu_http_request_duration_seconds",
    "Time from request arrival to response headers, in seconds, by bucket and method (a PUT's or POST's includes receiving its body).",
    ["bucket", "method"],
    DURATION_BUCKETS,
  );
  private readonly inflight = this.r.gauge("yatagarasu_http_requests_in_flight", "HTTP requests currently being handled.").labels();
  private readonly bytes = this.r.counter("yatagarasu_http_response_bytes_total", "Response body bytes sent.", ["bucket"]);
  private readonly throttled = this.r.counter(
    "yatagarasu_http_throttled_total",
    "Requests answered 503 to make the client slow down (also in yatagarasu_http_requests_total): refused by a rate, concurrency or upload limit of the proxy (SlowDown on the S3 front; on the plain front a concurrency or upload cap's Overloaded, its rate limits answering 429), or the upstream's SlowDown passed on. Not a failure of the proxy or the upstream.",
    ["bucket"],
  );
  private readonly bodyErrors = this.r.counter("yatagarasu_http_response_body_errors_total", "Responses whose body failed after the head was sent (upstream cut or stalled, client gone), by reason.", ["bucket", "reason"]);
  private readonly s3 = this.r.counter("yatagarasu_s3_requests_total", "Upstream S3 requests by status (error: connection failure, timeout: no answer in time).", ["bucket", "status"]);
  private readonly s3Duration = this.r.histogram("yatagarasu_s3_request_duration_seconds", "Upstream S3 request time until response headers, in seconds.", ["bucket"], DURATION_BUCKETS);
  private readonly s3Retries = this.r.counter("yatagarasu_s3_retries_total", "Upstream S3 requests retried.", ["bucket"]);
  private readonly authC = new Map<string, CounterChild>();
  /** authC's "success" child, the S3 front's every verified request's: no map lookup for it. */
  private readonly authSuccessC: CounterChild;
  private readonly authzC = new Map<string, Map<string, CounterChild>>();
  private readonly rateC = new Map<string, CounterChild>();
  private readonly breaker = this.r.gauge("yatagarasu_circuit_breaker_state", "Circuit breaker state per bucket: 0 closed, 1 open, 2 half-open.", ["bucket"], "max");
  /** Per-replica series of buckets with s3.replicas (replica-metrics.ts). */
  readonly replicas = new ReplicaMetrics(this.r);
  private readonly reloads = this.r.counter("yatagarasu_config_reloads_total", "Configuration reloads by result (with several workers: once per reload of the group, plus each worker that failed to apply it).", ["result"]);
  private readonly generation = this.r.gauge("yatagarasu_config_generation", "Generation number of the active configuration.", [], "max").labels();
  private readonly certificateNotAfter = this.r.gauge(
    "yatagarasu_tls_certificate_not_after_timestamp_seconds",
    "When the certificate the TLS listeners serve expires (its notAfter), in seconds since the epoch; absent without server.https (several processes: the earliest).",
    [],
    "min",
  );
  private readonly writes = this.r.counter(
    "yatagarasu_write_requests_total",
    "Uploads, copies, deletes and multipart calls answered (S3 front, and PUT/DELETE on the plain front), by bucket, S3 operation and status.",
    ["bucket", "operation", "status"],
  );
  private readonly writeErrors = this.r.counter(
    "yatagarasu_write_errors_total",
    "Uploads, copies, deletes and multipart calls refused or failed (status >= 400, or a body that did not complete), by bucket, S3 operation and error code (the S3 code on the S3 front, the JSON error on the plain front).",
    ["bucket", "operation", "code"],
  );
  private readonly requestBytes = this.r.counter("yatagarasu_http_request_bytes_total", "Request body bytes received from clients and passed on (upload payloads; aws-chunked framing not counted).", ["bucket"]);
  private readonly errorCodes = new Set<string>();
  private readonly cacheHits = this.r.counter("yatagarasu_cache_hits_total", "Cache lookups that found the object.", ["bucket"]);
  private readonly cacheMisses = this.r.counter("yatagarasu_cache_misses_total", "Cache lookups that did not find the object.", ["bucket"]);
  private readonly cacheStale = this.r.counter("yatagarasu_cache_stale_total", "Expired cached objects answered (X-Cache: STALE) because the store failed to revalidate them (stale_if_error_seconds).", ["bucket"]);
  private readonly cacheEvictions = this.r.counter("yatagarasu_cache_evictions_total", "Objects evicted from the cache.").labels();
  private readonly cacheBytes = this.r.gauge("yatagarasu_cache_bytes", "Bytes currently held by the cache.").labels();
  private readonly cacheItems = this.r.gauge("yatagarasu_cache_items", "Objects currently held by the cache.").labels();
  private readonly cacheCoalesced = this.r.counter("yatagarasu_cache_coalesced_total", "Requests served by joining an upstream fetch already in progress.").labels();
  private readonly series = new Map<string, BucketSeries>();
  private none!: BucketSeries;
  /** Bucket names configured at some point in this process's life (their series are kept). */
  private known = new Set<string>();
  /** Bucket names of the current config. */
  private configured = new Set<string>();
  private cacheCollector: (() => CacheStats) | undefined;

  constructor(opts: MetricsOptions) {
    const auth = this.r.counter("yatagarasu_auth_total", "Authentication outcomes.", ["result"]);
    for (const a of AUTH_RESULTS) this.authC.set(a, auth.labels(a));
    this.authSuccessC = this.authC.get("success")!;
    const authz = this.r.counter(
      "yatagarasu_authz_decisions_total",
      "Bucket authorizer (OPA, OpenFGA) results per request, cached decisions included: allow, deny, error (no decision, refused with 503: an outage under fail_mode closed, or a configuration error), or fail_open (no decision, an outage, the request allowed by fail_mode open).",
      ["authorizer", "result"],
    );
    for (const a of AUTHORIZERS) this.authzC.set(a, new Map(AUTHZ_RESULTS.map((r) => [r, authz.labels(a, r)])));
    const rate = this.r.counter("yatagarasu_rate_limited_total", "Requests refused by a rate or concurrency limit, by scope.", ["scope"]);
    for (const s of RATE_LIMIT_SCOPES) this.rateC.set(s, rate.labels(s));
    this.reloads.labels("success");
    this.reloads.labels("failure");
    this.r.gauge("yatagarasu_build_info", "Build information; the value is always 1.", ["version", "commit"], "max").labels(opts.version, opts.commit ?? "unknown").set(1);
    this.resetBucketSet(opts.buckets ?? []);
    this.r.onCollect(() => this.collectCache());
    if (opts.processMetrics !== false) registerProcessMetrics(this.r);
  }

  /** The served TLS certificate's notAfter (ms since the epoch), at start and after each renewal. */
  tlsCertificate(notAfterMs: number): void {
    this.certificateNotAfter.labels().set(notAfterMs / 1000);
  }

  /** One answered HTTP request. `bucket`: configured name or a fixed label value. */
  observeRequest(bucket: string, method: string, status: number, durationSec: number, bytes: number): void {
    const s = this.series.get(bucket) ?? this.none;
    const m = methodIndex(method);
    const st = status >= 100 && status <= 599 ? status | 0 : 0;
    const key = m * 1000 + st;
    let c = s.requests.get(key);
    if (c === undefined) {
      c = this.requests.labels(s.name, METHODS[m], String(st));
      s.requests.set(key, c);
    }
    c.value++;
    (s.duration[m] ??= this.duration.labels(s.name, METHODS[m])).observe(durationSec);
    if (bytes > 0) s.bytes.value += bytes;
  }

  /** A request answered 503 to slow down (see yatagarasu_http_throttled_total); also counted by observeRequest. */
  throttle(bucket: string): void {
    (this.series.get(bucket) ?? this.none).throttled.value++;
  }

  /** A response whose body did not complete. `reason` is one of a few fixed codes (bounded cardinality). */
  bodyFailed(bucket: string, reason: string): void {
    const s = this.series.get(bucket) ?? this.none;
    this.bodyErrors.labels(s.name, BODY_ERROR_REASONS.has(reason) ? reason : "other").value++;
  }

  /**
   * One answered write (an upload, copy, delete or multipart call). `operation` is one of the S3
   * front's operation names (a bounded set); `code` the error it was refused or failed with (its
   * label is kept as is for the first MAX_ERROR_CODES distinct codes, "other" after).
   */
  observeWrite(bucket: string, operation: string, status: number, code: string | undefined): void {
    const s = this.series.get(bucket) ?? this.none;
    const st = status >= 100 && status <= 599 ? status | 0 : 0;
    let byStatus = s.writes.get(operation);
    if (byStatus === undefined) s.writes.set(operation, (byStatus = new Map()));
    let c = byStatus.get(st);
    if (c === undefined) {
      c = this.writes.labels(s.name, operation, String(st));
      byStatus.set(st, c);
    }
    c.value++;
    if (st < 400 && code === undefined) return;
    const label = this.codeLabel(code);
    const ekey = `${operation} ${label}`;
    let e = s.writeErrors.get(ekey);
    if (e === undefined) {
      e = this.writeErrors.labels(s.name, operation, label);
      s.writeErrors.set(ekey, e);
    }
    e.value++;
  }

  /** Request body bytes taken from a client and passed on. */
  receivedBytes(bucket: string, n: number): void {
    if (!(n > 0)) return;
    const s = this.series.get(bucket) ?? this.none;
    (s.requestBytes ??= this.requestBytes.labels(s.name)).value += n;
  }

  private codeLabel(code: string | undefined): string {
    if (code === undefined || !CODE_LABEL.test(code)) return code === undefined ? "unknown" : "other";
    if (this.errorCodes.has(code)) return code;
    if (this.errorCodes.size >= MAX_ERROR_CODES) return "other";
    this.errorCodes.add(code);
    return code;
  }

  inFlight(delta: number): void {
    this.inflight.value += delta;
  }

  observeS3(bucket: string, status: S3Outcome, durationSec: number): void {
    const s = this.series.get(bucket) ?? this.none;
    const st: S3Outcome = typeof status === "number" ? (status >= 100 && status <= 599 ? status | 0 : 0) : status === "timeout" ? "timeout" : "error";
    let c = s.s3.get(st);
    if (c === undefined) {
      c = this.s3.labels(s.name, String(st));
      s.s3.set(st, c);
    }
    c.value++;
    (s.s3Duration ??= this.s3Duration.labels(s.name)).observe(durationSec);
  }

  s3Retry(bucket: string): void {
    const s = this.series.get(bucket) ?? this.none;
    (s.s3Retries ??= this.s3Retries.labels(s.name)).value++;
  }

  auth(result: AuthResult): void {
    const c = result === "success" ? this.authSuccessC : this.authC.get(result);
    if (c !== undefined) c.value++;
  }

  /** One bucket authorizer result (see yatagarasu_authz_decisions_total). */
  authzDecision(authorizer: (typeof AUTHORIZERS)[number], result: AuthzResult): void {
    const c = this.authzC.get(authorizer)?.get(result);
    if (c !== undefined) c.value++;
  }

  rateLimited(scope: RateLimitScope): void {
    const c = this.rateC.get(scope);
    if (c !== undefined) c.value++;
  }

  /** Drops the breaker series of buckets without a breaker (a reload removed it: the gauge stayed at its last value). */
  retainBreakers(buckets: ReadonlySet<string>): void {
    this.breaker.retain("bucket", (b) => buckets.has(b));
  }

  /** 0 closed, 1 open, 2 half-open. Ignored for names that are not configured buckets. */
  setBreakerState(bucket: string, code: 0 | 1 | 2): void {
    if (this.configured.has(bucket) && !(FIXED_BUCKET_LABELS as readonly string[]).includes(bucket)) this.breaker.labels(bucket).set(code);
  }

  configReload(result: ReloadResult): void {
    this.reloads.labels(result === "success" ? "success" : "failure").value++;
  }

  setGeneration(n: number): void {
    this.generation.set(n);
  }

  /** The cache registers a function returning its running totals; called at every scrape. */
  setCacheCollector(fn: (() => CacheStats) | undefined): void {
    this.cacheCollector = fn;
  }

  /**
   * Sets the configured bucket names. Counters and histograms of buckets not in `names` are kept
   * (see the module comment), their breaker gauge dropped; new buckets get zero-valued series so
   * dashboards see them at once.
   */
  resetBucketSet(names: readonly string[]): void {
    const all = [...FIXED_BUCKET_LABELS, ...names];
    this.configured = new Set(all);
    // A removed bucket keeps its counters and histograms (a counter that went back to zero when
    // the bucket returns reads as a reset to Prometheus, and requests still in flight on the old
    // config finish under its name, not under _none); its gauge (breaker state) goes. The names
    // kept are those configured during this process's life.
    for (const name of all) this.known.add(name);
    this.breaker.retain("bucket", (b) => this.configured.has(b));
    for (const name of all) {
      if (this.series.has(name)) continue;
      const configured = !(FIXED_BUCKET_LABELS as readonly string[]).includes(name);
      this.series.set(name, {
        name,
        requests: new Map(),
        duration: [this.duration.labels(name, "GET")],
        bytes: this.bytes.labels(name),
        throttled: this.throttled.labels(name),
        s3: new Map(),
        s3Duration: configured ? this.s3Duration.labels(name) : undefined,
        s3Retries: configured ? this.s3Retries.labels(name) : undefined,
        writes: new Map(),
        writeErrors: new Map(),
        requestBytes: configured ? this.requestBytes.labels(name) : undefined,
      });
    }
    this.none = this.series.get("_none")!;
  }

  snapshot(): Snapshot {
    return this.registry.snapshot();
  }

  render(): string {
    return this.registry.render();
  }

  /** Renders the merged snapshots of several processes (see mergeSnapshots in registry.ts). */
  static renderMerged(snapshots: readonly Snapshot[]): string {
    return renderMerged(snapshots);
  }

  private collectCache(): void {
    const fn = this.cacheCollector;
    if (fn === undefined) return;
    const st = fn(); // if this throws, the previous values stay
    this.cacheHits.clear();
    this.cacheMisses.clear();
    for (const [b, n] of Object.entries(st.hits)) this.cacheHits.labels(this.known.has(b) ? b : "_none").value += n;
    for (const [b, n] of Object.entries(st.misses)) this.cacheMisses.labels(this.known.has(b) ? b : "_none").value += n;
    this.cacheStale.clear();
    for (const [b, n] of Object.entries(st.stale ?? {})) if (n > 0) this.cacheStale.labels(this.known.has(b) ? b : "_none").value += n;
    this.cacheEvictions.value = st.evictions;
    this.cacheBytes.set(st.bytes);
    this.cacheItems.set(st.items);
    this.cacheCoalesced.value = st.coalesced;
  }
}

/** Merges the snapshots of several processes and renders the result. */
export function renderMerged(snapshots: readonly Snapshot[], seen?: Map<string, number>): string {
  const merged = mergeSnapshots(snapshots);
  if (seen !== undefined) keepMonotonic(merged, seen);
  return renderSnapshot(merged);
}

/** Below this relative difference, a lower counter or histogram sum is float rounding, not a reset. */
const ROUNDING = 1e-9;

/**
 * Counters and histogram sums that came out a hair lower than the scrape before (`seen`: each
 * series' last value): a child's counts move to the retired total when it dies, and the same
 * floating-point numbers added in another grouping differ in the last bits (a `_sum` of
 * 61.8445970810001 then 61.844597081000096). Prometheus reads any decrease as a reset (rate()
 * spikes): such a value is the last one again. A real drop passes.
 */
function keepMonotonic(snap: Snapshot, seen: Map<string, number>): void {
  for (const f of snap) {
    if (f.type === "gauge") continue;
    for (const s of f.series) {
      const key = f.name + "\u0001" + s.labels.join("\u0001");
      const v = "counts" in s ? s.sum : s.value;
      const last = seen.get(key);
      if (last !== undefined && v < last && last - v <= ROUNDING * Math.abs(last)) {
        if ("counts" in s) s.sum = last;
        else s.value = last;
        continue;
      }
      seen.set(key, v);
    }
  }
}
