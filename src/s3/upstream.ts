/**
 * One bucket's upstream: everything about reaching S3 that can be computed once per config load
 * (base URL, Host, bucket path, signer with its cached signing key, breaker, retry policy) is
 * computed in the constructor; `fetchObject` does only per-request work.
 *
 * Retries happen before anything is returned to the pipeline, so before any byte reaches the
 * client. 4xx is never retried; connect errors and 500/502/503/504 are, with full-jitter backoff
 * (at least the answer's Retry-After; one longer than max_backoff_ms is passed on, not retried).
 * A timeout (no response headers within s3.timeout) is a 504 and is not retried.
 *
 * `send` is any other signed S3 request, with a request body or not (src/s3/send.ts holds its
 * request shape and the fetch body path; src/s3/operations/ builds each S3 operation on it).
 */
import { type BucketConfig, DEFAULT_CONNECT_TIMEOUT_SECONDS, type RetryConfig } from "../config/schema.ts";
import { outOfDescriptors, ProxyError, toProxyError } from "../errors.ts";
import { backoffDelay, CircuitBreaker, isRetryableStatus } from "../limits/index.ts";
import type { Metrics } from "../observe/metrics.ts";
import { endClient, errorType, startAttempt } from "../observe/trace/client.ts";
import type { Span } from "../observe/trace/span.ts";
import { type Http1Pool, UpstreamConnectTimeoutError, UpstreamPools, UpstreamProtocolError, UpstreamTimeoutError } from "./http1/index.ts";
import { RequestBodyError } from "./http1/index.ts";
import { isFramedBody } from "../http/framed-body.ts";
import { fetchedAnswer } from "../http/headers.ts";
import { contentLengthOf, exchangeController, fetchFramed, fetchWithBody, holdPaced, prepareSend, type PreparedSend, type SendRequest, wholeAnswer } from "./send.ts";
import { canonicalQuery, encodeS3Path, S3Signer } from "./sigv4.ts";
import { readUpstreamCapped } from "../http/read-capped.ts";
import { CREDENTIAL_CODES, MINIO_ERROR_CODE, parseS3ErrorCode, readErrorPrefix, retryAfterMs, slowDownPhrase, codeTold } from "./errors.ts";
import { decodeComponent, listed } from "../util/text.ts";
import { certRefusalHint } from "../util/tls-refusal.ts";

export { RequestBodyError } from "./http1/index.ts";
export type { SendRequest, UpstreamMethod } from "./send.ts";

export interface UpstreamTiming {
  /** Milliseconds spent waiting for upstream response headers (all attempts). */
  upstreamMs: number;
  attempts: number;
  /** The replica that answered, for buckets with s3.replicas (src/s3/replicas.ts). */
  replica?: string;
  /** The request's span (tracing on): each attempt gets a client span under it and sends traceparent. */
  trace?: Span;
  /**
   * Set (to the error answered) when the request was given up before its answer was ready
   * (server.request_timeout): its exchanges still in flight are cut, and no new attempt starts.
   * The own pool looks at it on its sweep; fetch attempts register in onAbandon.
   */
  abandoned?: unknown;
  onAbandon?: Array<() => void>;
  /**
   * performance.now() when the attempt in flight started (retrying() sets and clears it): a request
   * given up meanwhile has that attempt's time counted at once (abandonUpstream), since its access
   * line is written before the attempt's own ending is seen.
   */
  attemptFrom?: number | undefined;
  /**
   * Set by a cache fill of a bucket with replicas (CachePolicy.fillBodyMs): each replica's
   * attempt but the last is bounded by the replica's timeout plus this, past which it is that
   * replica's failure (ReplicaSet).
   */
  attemptBodyMs?: number | undefined;
  /**
   * With attemptBodyMs: a body of known length up to this (the fill's buffer) is read whole within the
   * attempt's bound, so that a replica sending it too slowly is failed over from (ReplicaSet).
   */
  attemptHoldBytes?: number | undefined;
  /**
   * A cache fill's own timing while its read is in flight (proxy/phases/object.ts fillRead): the
   * access line of a leader written meanwhile (its client left) counts the fill's attempt too.
   */
  fill?: UpstreamTiming | undefined;
}


/**
 * The S3 error code of an error answer, and the answer to hand on in its place: a 503's reason
 * phrase "Slow Down" (S3's own: SlowDown), MinIO's x-minio-error-code header (it writes "503
 * Service Unavailable" and, on a HEAD, no body), a code already told (codeTold: a body read here
 * before, or a HEAD's told by a GET of its key, tellHeadCode), else the <Code> of its error body,
 * whose first 64 KiB are read (what errorFromResponse reads too) and handed on in a Response of the
 * same status and headers (Content-Length dropped when the rest was not read), its code recorded so
 * that it is read once. One mechanism for a 503's SlowDown (the breaker, failover) and a replica's
 * refusal of its own credentials (CREDENTIAL_CODES: failover).
 */
export async function answerCodeOf(res: Response): Promise<{ code: string | undefined; res: Response }> {
  if (slowDownPhrase(res)) return { code: "SlowDown", res };
  const minio = res.headers.get(MINIO_ERROR_CODE);
  if (minio !== null) return { code: minio, res };
  if (codeTold.has(res) || res.body === null) return { code: codeTold.get(res), res };
  const { code, res: copy } = await errorCodeOf(res);
  codeTold.set(copy, code);
  return { code, res: copy };
}

/**
 * `res`, a HEAD's error answer, with its code for answerCodeOf told by `ask`, a GET of the key's
 * first byte, whose error body says what the HEAD's cannot (a 503's SlowDown, a 400's or 403's
 * refusal of the credentials), when it answers the same status; not asked when the HEAD says it
 * already (a 503's "Slow Down" reason phrase, MinIO's header).
 */
export async function tellHeadCode(res: Response, ask: () => Promise<Response>): Promise<Response> {
  if (slowDownPhrase(res) || res.headers.has(MINIO_ERROR_CODE)) return res;
  const got = await ask().catch(() => undefined);
  if (got?.status === res.status) codeTold.set(res, (await answerCodeOf(got)).code);
  else got?.body?.cancel().catch(() => {});
  return res;
}

/**
 * The <Code> of an error answer's body (its first 64 KiB, read within ERROR_BODY_WAIT_MS:
 * readErrorPrefix), and the answer to hand on in its place: a Response of the same status and
 * headers with what was read (Content-Length dropped when the rest was not).
 */
async function errorCodeOf(res: Response): Promise<{ code: string | undefined; res: Response }> {
  const { raw, whole, code } = await readErrorPrefix(res);
  const headers = new Headers(res.headers);
  if (!whole) headers.delete("content-length");
  return { code, res: new Response(raw, { status: res.status, statusText: res.statusText, headers }) };
}

/**
 * Gives up a request's upstream work: a request answered 504 by server.request_timeout must not
 * leave its upstream exchange running (an upstream trickling a body would hold the connection,
 * and a file descriptor, for as long as it likes, outside max_concurrent_requests).
 */
export function abandonUpstream(timing: UpstreamTiming, reason: unknown): void {
  if (timing.abandoned !== undefined) return;
  timing.abandoned = reason;
  if (timing.attemptFrom !== undefined) {
    timing.upstreamMs += performance.now() - timing.attemptFrom;
    timing.attemptFrom = undefined;
  }
  const listeners = timing.onAbandon;
  timing.onAbandon = undefined;
  if (listeners !== undefined) for (const f of listeners) f();
}

export interface UpstreamDeps {
  metrics?: Metrics;
  fetch?: typeof fetch;
  random?: () => number;
  /** "auto": the native HTTP/1.1 pool for http:// endpoints, fetch for https:// (default "fetch" here; the runtime passes the config's choice). */
  client?: "auto" | "fetch";
  /** Bodies up to this size are read whole by the native client before the response is handed over. */
  bufferBodyUpTo?: number;
  /** Where the native client's connection pools come from (the App's; a process-wide default until it passes one). */
  pools?: UpstreamPools;
  /** The operator's log: a breaker's transitions are written there (warn when it opens). */
  log?: (level: "info" | "warn", msg: string, fields: Record<string, unknown>) => void;
  /**
   * The circuit breaker to take over instead of a new one: the previous generation's, for a
   * reload that left this upstream's s3 section as it was (an open breaker stays open; a reload
   * closed it silently, sending requests at a dead upstream again).
   */
  breaker?: CircuitBreaker;
}

/** Logs a breaker's transition (an open breaker refuses the bucket's or replica's requests: warn). */
export function logBreaker(log: UpstreamDeps["log"], fields: Record<string, unknown>, to: string, from: string): void {
  log?.(to === "open" ? "warn" : "info", `circuit breaker ${to.replace("_", "-")}`, { ...fields, from, to });
}

/** Bun's fetch runs at most this many requests at once per process unless BUN_CONFIG_MAX_HTTP_REQUESTS is set at start-up. */
const FETCH_DEFAULT_MAX_REQUESTS = 256;

/**
 * The upstream base URL of a bucket: its endpoint, or AWS S3 in its region (https). The China
 * regions are a partition of their own, under amazonaws.com.cn (s3.cn-north-1.amazonaws.com names
 * no host).
 */
function baseUrlOf(s3: BucketConfig["s3"]): URL {
  return s3.endpoint ? new URL(s3.endpoint) : new URL(`https://s3.${s3.region}.amazonaws.com${s3.region.startsWith("cn-") ? ".cn" : ""}`);
}

/** Which client a bucket's requests use: the own HTTP/1.1 pool for plain http with "auto", fetch otherwise. */
export function upstreamClientFor(cfg: BucketConfig, choice: "auto" | "fetch" | undefined): "native" | "fetch" {
  return choice === "auto" && baseUrlOf(cfg.s3).protocol === "http:" ? "native" : "fetch";
}

/**
 * A warning for the operator when some bucket goes through fetch, the proxy admits more concurrent
 * requests than fetch will run, and BUN_CONFIG_MAX_HTTP_REQUESTS (read only at start-up) is unset.
 */
export function fetchConcurrencyWarning(buckets: readonly BucketConfig[], choice: "auto" | "fetch", maxConcurrent: number, env: Record<string, string | undefined>): string | undefined {
  if (env.BUN_CONFIG_MAX_HTTP_REQUESTS || maxConcurrent <= FETCH_DEFAULT_MAX_REQUESTS) return undefined;
  const viaFetch = buckets.filter((b) => upstreamClientFor(b, choice) === "fetch").map((b) => b.name);
  if (viaFetch.length === 0) return undefined;
  return `buckets ${listed(viaFetch)} reach S3 through fetch, which runs at most ${FETCH_DEFAULT_MAX_REQUESTS} requests at once per process (the rest wait) while server.max_concurrent_requests is ${maxConcurrent}: set BUN_CONFIG_MAX_HTTP_REQUESTS=${maxConcurrent} in the environment (read at start-up only)`;
}

/**
 * A note for the operator (start-up log, --check) when s3.connect_timeout cannot be enforced:
 * buckets that reach S3 through fetch (https endpoints, AWS, or upstream_client: fetch), because
 * Bun's fetch has no connect-phase timeout. There, s3.timeout bounds connecting. Buckets whose
 * connect_timeout is not below their timeout lose nothing and are not named, nor those that do
 * not set it (the bucket's or the replica's): a default config for AWS got the note for a
 * setting it never wrote.
 */
export function connectTimeoutNote(buckets: readonly BucketConfig[], choice: "auto" | "fetch"): string | undefined {
  // Each endpoint a bucket reaches: its own, or each replica's with the replica's own timeouts.
  const affected: string[] = [];
  for (const b of buckets) {
    const ends = b.s3.replicas
      ? b.s3.replicas.map((r) => ({ name: `${b.name}/${r.name}`, s3: { endpoint: r.endpoint, region: r.region }, connect: r.connect_timeout ?? b.s3.connect_timeout, timeout: r.timeout ?? b.s3.timeout }))
      : [{ name: b.name, s3: b.s3, connect: b.s3.connect_timeout, timeout: b.s3.timeout }];
    for (const e of ends) {
      const viaFetch = !(choice === "auto" && baseUrlOf(e.s3 as BucketConfig["s3"]).protocol === "http:");
      if (viaFetch && e.connect !== undefined && e.connect < e.timeout) affected.push(`${e.name} (${e.connect} s → ${e.timeout} s)`);
    }
  }
  if (affected.length === 0) return undefined;
  const list = listed(affected);
  return `s3.connect_timeout is not enforced for buckets that reach S3 through fetch (https endpoints, AWS, or upstream_client: fetch): Bun's fetch has no connect timeout, so s3.timeout bounds connecting instead: ${list}`;
}

/** The original's s3.connection_pool_size is accepted and has no effect here: said when a config sets it. */
export function poolSizeNote(buckets: readonly BucketConfig[]): string | undefined {
  const set = buckets.filter((b) => b.s3.connection_pool_size !== undefined).map((b) => b.name);
  if (set.length === 0) return undefined;
  return `s3.connection_pool_size is accepted for the original's configs and has no effect (${listed(set)}): upstream connections are opened as requests need them and kept alive for reuse (idle ones closed after 15 s); bound concurrency with server.max_concurrent_requests`;
}

const DEFAULT_RETRY: RetryConfig = { max_attempts: 3, initial_backoff_ms: 100, max_backoff_ms: 1000 };

/** The own client's default (pool.ts) when no server.buffer_threshold_bytes is passed. */
const DEFAULT_BUFFER_BODY_UP_TO = 1024 * 1024;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

class TimeoutError extends Error {
  override name = "TimeoutError";
}

/**
 * The abort reasons of a replica's own attempt deadline (ReplicaSet's boundedAttempt, a cache
 * fill's share per replica): the upstream's timeout, counted by its breaker and metrics, not a
 * client that went away.
 */
export const attemptDeadlines = new WeakSet<object>();

/** Whether `signal` aborted because the client went away (not a replica's own attempt deadline). */
function clientAborted(signal: AbortSignal): boolean {
  return signal.aborted && !attemptDeadlines.has(signal.reason as object);
}

export class BucketUpstream {
  readonly name: string;
  /** The bucket's name upstream (s3.bucket): what x-amz-copy-source names. */
  readonly bucket: string;
  readonly breaker: CircuitBreaker | undefined;
  /** e.g. "http://127.0.0.1:9000" (never userinfo: the config refuses it) */
  readonly origin: string;
  private readonly host: string;
  /** "/bucket" for path-style, "" for virtual-host style. */
  private readonly bucketPath: string;
  private readonly signer: S3Signer | undefined;
  private readonly retry: RetryConfig;
  /** s3.timeout (a replica's own, when it overrides the bucket's), in ms. */
  readonly timeoutMs: number;
  /** GET bodies up to this size are read whole inside the attempt (the own client's bufferBodyUpTo, on fetch too). */
  private readonly bufferBodyUpTo: number;
  private readonly fetchImpl: typeof fetch;
  /** The keep-alive HTTP/1.1 pool, for plain-http endpoints with client "auto" (public: a reload keeps the pools in use). */
  readonly pool: Http1Pool | undefined;
  private readonly connectTimeoutMs: number;
  private readonly metrics: Metrics | undefined;
  private readonly random: () => number;
  private readonly log: UpstreamDeps["log"];
  /** A failed TLS handshake is logged once per upstream (per config generation), not per request. */
  private tlsLogged = false;

  constructor(cfg: BucketConfig, deps: UpstreamDeps = {}) {
    const s3 = cfg.s3;
    this.name = cfg.name;
    this.bucket = s3.bucket;
    const endpoint = s3.endpoint ? new URL(s3.endpoint) : undefined;
    const base = baseUrlOf(s3);
    // Virtual-host style for AWS unless forced; path-style for custom endpoints unless forced off.
    // Bucket names with dots cannot be virtual-hosted over TLS (the certificate is *.s3...).
    const pathStyle = s3.force_path_style ?? (endpoint !== undefined || s3.bucket.includes("."));
    const host = pathStyle ? base.host : `${s3.bucket}.${base.host}`;
    this.origin = `${base.protocol}//${host}`;
    this.host = host;
    // URL holds the endpoint's path percent-encoded (a space is %20), and every request path is
    // encoded once from raw text: taken as it is, it went out encoded twice (/my%2520store/...).
    const trimmed = endpoint?.pathname.replace(/\/+$/, "") ?? "";
    // (as raw text: one that does not decode, a stray %, is taken as written)
    const basePath = decodeComponent(trimmed) ?? trimmed;
    this.bucketPath = basePath + (pathStyle ? `/${s3.bucket}` : "");
    this.signer = s3.access_key && s3.secret_key
      ? new S3Signer({ accessKeyId: s3.access_key, secretAccessKey: s3.secret_key, sessionToken: s3.session_token }, s3.region)
      : undefined;
    this.retry = s3.retry ?? DEFAULT_RETRY;
    this.timeoutMs = s3.timeout * 1000;
    this.bufferBodyUpTo = deps.bufferBodyUpTo ?? DEFAULT_BUFFER_BODY_UP_TO;
    this.connectTimeoutMs = (s3.connect_timeout ?? DEFAULT_CONNECT_TIMEOUT_SECONDS) * 1000;
    this.breaker = s3.circuit_breaker ? (deps.breaker ?? new CircuitBreaker(s3.circuit_breaker)) : undefined;
    this.fetchImpl = deps.fetch ?? fetch;
    this.pool =
      upstreamClientFor(cfg, deps.client) === "native"
        ? // The App passes the pools it owns (shared across generations, retired on reload, closed
          // on shutdown); an upstream built on its own (tests, tools) gets pools of its own.
          (deps.pools ?? new UpstreamPools()).get({
            host: base.hostname.replace(/^\[|\]$/g, ""),
            port: Number(base.port || 80),
            hostHeader: host,
            bufferBodyUpTo: deps.bufferBodyUpTo,
          })
        : undefined;
    this.metrics = deps.metrics;
    this.log = deps.log;
    this.random = deps.random ?? Math.random;
    if (this.breaker && (this.metrics || deps.log)) {
      const m = this.metrics;
      const name = this.name;
      const log = deps.log;
      this.breaker.onStateChange = (to, from) => {
        m?.setBreakerState(name, to === "closed" ? 0 : to === "open" ? 1 : 2);
        logBreaker(log, { bucket: name }, to, from);
      };
    }
  }

  /** The encoded URL path and the headers for one signed (or anonymous) request. */
  /** `signed`: headers to sign besides the signer's own (S3 refuses an unsigned x-amz-* header). */
  private prepare(method: string, key: string, signed?: Record<string, string>): { path: string; headers: Record<string, string> } {
    const raw = this.bucketPath + "/" + key;
    const path = encodeS3Path(raw);
    const headers = this.signer ? this.signer.sign({ method, host: this.host, path: raw, headers: signed }) : {};
    return { path, headers };
  }


  /**
   * GET/HEAD an object. Resolves with S3's final response (after retries) for every HTTP status,
   * body unread: the caller decides what a 404 means (the object phase maps it with
   * errorFromResponse; the cache drops an entry deleted upstream). Throws ProxyError only when
   * there was no HTTP answer (unreachable, timeout, breaker open). `forward` holds the client's
   * Range/conditional headers. `maxAttempts` caps this call's attempts below s3.retry.max_attempts
   * (a replica set fails over instead of retrying; see src/s3/replicas.ts).
   */
  fetchObject(method: "GET" | "HEAD", key: string, forward: Record<string, string>, signal: AbortSignal, timing: UpstreamTiming, maxAttempts?: number): Promise<Response> {
    const max = maxAttempts ?? this.retry.max_attempts;
    // Given up already (server.request_timeout): nothing is sent, and the breaker is not asked (a
    // request refused before it went out says nothing about this upstream).
    if (timing.abandoned !== undefined) return Promise.reject(timing.abandoned);
    // Without a breaker there is nothing to release: no async layer of its own (one promise less per request).
    // (a HEAD's 503 told by a GET where it matters: tellHead503)
    if (this.breaker === undefined) return this.attempts(method, key, forward, signal, timing, max, undefined, maxAttempts !== undefined);
    // A streamed answer whose body the upstream then cut or stalled counts against the breaker
    // (own client): a replica that sends heads and then fails every large body is skipped after
    // failure_threshold of them, as one that fails before the head is. (The admission's bodyEnded:
    // a body that ends after the breaker moved on to another state is not counted.)
    return this.guarded(this.breaker, signal, (bodyEnded) => this.attempts(method, key, forward, signal, timing, max, bodyEnded, true));
  }

  /**
   * `run` (reads or send()'s attempts) through the circuit breaker: refused with CircuitOpen while
   * it is open, and counted as a success or a failure of the upstream. Answers below 500, 501
   * NotImplemented and 503 SlowDown are not upstream failures. The client's abort and a failed
   * request body are neither a success nor a failure: the upstream did not get to answer, so the
   * request is dropped (counted as a success, a half-open probe whose client left closed the
   * breaker over a dead upstream, and clients that time out sooner than s3.timeout kept resetting
   * the failure streak, so it never opened).
   */
  private async guarded(breaker: CircuitBreaker, signal: AbortSignal, run: (bodyEnded: (whole: boolean) => void) => Promise<Response>, slot = true): Promise<Response> {
    const admission = breaker.tryAcquire(slot);
    if (!admission.ok) throw new ProxyError("CircuitOpen", { headers: { "retry-after": String(admission.retryAfterSeconds) } });
    let success = false;
    let neutral = false;
    try {
      const res = await run(admission.bodyEnded);
      // S3's 503 SlowDown is a throttle on one prefix by a store that is up, which its clients back
      // off from; counted, three GETs under one throttled prefix opened the breaker for every key
      // of the bucket (and, with readiness, the whole proxy). Still retried with backoff. Any other
      // 503 (ServiceUnavailable, a balancer's bare 503: a store that is down) is a failure: counted
      // as a success, a primary answering nothing but 503 never opened its breaker, and every read
      // paid a round trip to it before failing over.
      // 501 NotImplemented refuses a header the store does not implement: a healthy answer too.
      const status = res.status;
      if (status === 503) {
        const told = await answerCodeOf(res);
        success = told.code === "SlowDown";
        return told.res;
      }
      success = status < 500 || status === 501;
      return res;
    } catch (err) {
      // (the proxy's own lack of file descriptors says nothing about the upstream either)
      neutral = clientAborted(signal) || err instanceof RequestBodyError || outOfDescriptors(err instanceof ProxyError ? err.cause : err);
      success = err instanceof ProxyError && err.status < 500;
      throw err;
    } finally {
      if (neutral) admission.drop();
      else admission.release(success);
    }
  }

  private attempts(method: "GET" | "HEAD", key: string, forward: Record<string, string>, signal: AbortSignal, timing: UpstreamTiming, max: number, bodyEnded: ((whole: boolean) => void) | undefined, tell = false): Promise<Response> {
    const got = this.retrying(method, key, timing, signal, max, (span) => this.once(method, key, forward, signal, timing, span, bodyEnded));
    return tell && method === "HEAD" ? got.then((res) => (res.status === 503 ? this.tellHead503(res, key, signal, timing) : res)) : got;
  }

  /**
   * A HEAD's 503 that says neither SlowDown nor what else it is (no "Slow Down" reason phrase, no
   * x-minio-error-code, no body): a GET of the key's first byte asks the store which it is, as a
   * GET's 503 says it in its body (tellHeadCode). Without it a throttled store's HEAD was failed
   * over (and charged to its breaker) while a GET of the same key got its 503 SlowDown. Asked only
   * where the verdict is used: a breaker, or a replica but the last.
   */
  private tellHead503(res: Response, key: string, signal: AbortSignal, timing: UpstreamTiming): Promise<Response> {
    return tellHeadCode(res, () => this.once("GET", key, { range: "bytes=0-0" }, signal, timing, undefined, undefined));
  }

  /**
   * The one retry loop, for reads (attempts) and for send(): each attempt with its span, its share
   * of the upstream time and its S3 metric. A retryable status is retried while attempts remain; an
   * attempt without an HTTP answer goes to failedAttempt (the pool's timeout converted here, once).
   * The client's abort, and an error `passOn` picks, end the loop with that error as it is.
   */
  private async retrying(
    method: string,
    key: string,
    timing: UpstreamTiming,
    signal: AbortSignal,
    max: number,
    attemptOnce: (span: Span | undefined) => Promise<Response>,
    passOn?: (err: unknown) => boolean,
    /** When given, an attempt that failed without an answer is retried only if this says so (else it is the last). */
    retryable?: (err: unknown) => boolean,
  ): Promise<Response> {
    for (let attempt = 1; ; attempt++) {
      timing.attempts = attempt;
      const last = attempt >= max;
      let res: Response;
      const started = performance.now();
      const span = timing.trace === undefined ? undefined : startAttempt(timing.trace, method, this.origin, this.bucket, key, attempt);
      // (not when given up already: its attempt is refused before anything is sent)
      const sent = timing.abandoned === undefined;
      if (sent) timing.attemptFrom = started;
      try {
        res = await attemptOnce(span);
      } catch (thrown) {
        // (a replica's own attempt deadline is this upstream's timeout: failed, not dropped)
        const err = thrown instanceof UpstreamTimeoutError ? new TimeoutError("upstream timeout", { cause: thrown }) : signal.aborted && !clientAborted(signal) ? new TimeoutError("upstream timeout", { cause: signal.reason }) : thrown;
        if (span !== undefined) endClient(span, { error: err });
        const elapsed = performance.now() - started;
        // (an attempt cut by server.request_timeout had its time counted by abandonUpstream)
        const cut = sent && timing.attemptFrom === undefined;
        if (timing.attemptFrom !== undefined) timing.upstreamMs += elapsed;
        timing.attemptFrom = undefined;
        if (cut && !clientAborted(signal)) {
          // The attempt was cut by server.request_timeout: the upstream had not answered in that
          // time, an S3 timeout as the metrics count them.
          this.metrics?.observeS3(this.name, "timeout", elapsed / 1000);
        }
        if (clientAborted(signal) || timing.abandoned !== undefined || passOn?.(err)) throw err;
        const fatal = this.failedAttempt(err, elapsed, last || (retryable !== undefined && !retryable(err)));
        if (fatal !== undefined) throw fatal;
        await this.backoff(attempt, signal);
        continue;
      }
      if (span !== undefined) endClient(span, res.status);
      const elapsed = performance.now() - started;
      if (timing.attemptFrom !== undefined) timing.upstreamMs += elapsed;
      timing.attemptFrom = undefined;
      this.metrics?.observeS3(this.name, res.status, elapsed / 1000);
      if (isRetryableStatus(res.status) && !last) {
        // The upstream's Retry-After is honoured: waited for when it is within max_backoff_ms, else
        // its answer is passed on at once (with that Retry-After) for the client to wait.
        const told = retryAfterMs(res.headers.get("retry-after"));
        if (told <= this.retry.max_backoff_ms) {
          res.body?.cancel().catch(() => {});
          await this.backoff(attempt, signal, told);
          continue;
        }
      }
      return res;
    }
  }

  /**
   * An attempt that got no HTTP answer: counted, and either the error to answer with or undefined
   * (retry). A timeout waiting for the response head is final (504). A connect timeout
   * (s3.connect_timeout, own client) is retried like a connect error, as the AWS SDKs do: nothing
   * reached S3. If the last attempt also times out, the client gets 504, not 502: the upstream did
   * not answer in time, it did not refuse. A certificate the TLS handshake refused is final too
   * (the next attempt meets the same certificate; until 2026-12-07 tried max_attempts times).
   */
  private failedAttempt(err: unknown, elapsedMs: number, last: boolean): ProxyError | undefined {
    if (err instanceof TimeoutError) {
      this.metrics?.observeS3(this.name, "timeout", elapsedMs / 1000);
      return new ProxyError("GatewayTimeout", { cause: err });
    }
    const connectTimeout = err instanceof UpstreamConnectTimeoutError;
    this.metrics?.observeS3(this.name, connectTimeout ? "timeout" : "error", elapsedMs / 1000);
    this.logTlsFailure(err);
    // (a certificate the handshake refused is refused again on every attempt: not retried)
    if (!last && !certificateRefused(err)) return undefined;
    // The proxy had no file descriptor for the connection: nothing is wrong with the upstream.
    if (outOfDescriptors(err)) return toProxyError(err);
    // An answer the own client could not read (a malformed head, conflicting lengths, a bad
    // chunk): the upstream was reached, it answered wrongly. The message is the client's own fixed
    // text, never the upstream's bytes.
    if (err instanceof UpstreamProtocolError && !err.closed) return new ProxyError("BadGateway", { detail: `The upstream sent a response the proxy cannot read (${err.message})`, cause: err });
    const unreadable = fetchUnreadable(err);
    if (unreadable !== undefined) return new ProxyError("BadGateway", { detail: `The upstream sent a response the proxy cannot read (${unreadable})`, cause: err });
    // (it answered, then the connection was cut: not "could not be reached")
    if (err instanceof UpstreamProtocolError && err.midBody) return new ProxyError("BadGateway", { detail: "The upstream connection failed while sending the object", cause: err });
    // The request went out and the connection closed (reset, cut) with no answer: the upstream
    // was reached; it may even have acted on it (a write that is not resent: isResendable).
    if (!connectTimeout && !surelyNotSent(err)) return new ProxyError("BadGateway", { detail: "The upstream connection closed before it answered", cause: err });
    return new ProxyError(connectTimeout ? "GatewayTimeout" : "UpstreamUnreachable", { cause: err });
  }

  private async backoff(attempt: number, signal: AbortSignal, atLeastMs = 0): Promise<void> {
    this.metrics?.s3Retry(this.name);
    const ms = Math.max(atLeastMs, backoffDelay(attempt, this.retry.initial_backoff_ms, this.retry.max_backoff_ms, this.random));
    if (ms > 0) await sleep(ms, signal);
  }

  /**
   * Any S3 request, signed with the bucket's credentials (src/s3/operations/ build on it). The
   * contract is fetchObject's: resolves with S3's final response for every HTTP status, body
   * unread; throws ProxyError only when there was no HTTP answer (unreachable, timeout, breaker
   * open), the client's abort reason when `signal` aborted, and RequestBodyError when the request
   * body failed (its stream errored, or gave more or fewer bytes than contentLength: `cause` holds
   * the stream's error). In every failure the upstream connection is cut before the body's last
   * byte, so S3 sees an aborted request and stores nothing. Bad arguments throw TypeError.
   *
   * Retries (connect errors, 500/502/503/504, as fetchObject) only when the body is replayable:
   * none or bytes. A streamed body is read once, so it gets exactly one attempt.
   *
   * Timeouts: s3.timeout bounds the wait for the response head, counted from the moment a
   * streamed body was all sent (on fetch: handed over); while sending, an upstream that takes no
   * bytes for s3.timeout is a timeout (504). A slow source is the client's pace: the front's idle
   * timeout and `signal` bound it. `timing.upstreamMs` includes the time spent sending the body.
   */
  send(req: SendRequest): Promise<Response> {
    // Not async (an async layer of its own was one more promise per write): bad arguments still reject.
    let prepared: PreparedSend;
    try {
      prepared = prepareSend(req);
    } catch (err) {
      return Promise.reject(err);
    }
    const { body, streamed, payloadHash, headers } = prepared;
    // Given up already (server.request_timeout passed while an authorizer held the request):
    // nothing is sent, and the breaker is not asked, as in fetchObject (charged a failure, one
    // slow authorizer decision opened the breaker of a healthy upstream for the whole bucket).
    if (req.timing.abandoned !== undefined) {
      if (streamed) (body as ReadableStream<Uint8Array>).cancel(req.timing.abandoned).catch(() => {});
      return Promise.reject(req.timing.abandoned);
    }
    const max = streamed ? 1 : (req.maxAttempts ?? this.retry.max_attempts);
    // A request that is not idempotent (see resendable) is sent again only when it surely never
    // reached the upstream; an answer lost after it was sent is the client's to handle (a 502/503),
    // since the upstream may have applied it: re-sent, a conditional create that won would be
    // answered 412, a completed upload NoSuchUpload.
    const resendable = isResendable(req.method, req.query, headers, req.conditional === true);
    const attempt = (span: Span | undefined) => this.sendOnce(req, headers, body, payloadHash, resendable, span);
    const retryable = resendable ? undefined : surelyNotSent;
    // (without a breaker, no closure around the loop: one function less per write)
    if (this.breaker === undefined) return this.retrying(req.method, req.key, req.timing, req.signal, max, attempt, isBodyError, retryable);
    // A streamed body arrives at its client's pace: in half-open it takes no probe slot (a slow
    // upload held one for minutes, refusing the bucket's other requests over a recovered upstream).
    return this.guarded(this.breaker, req.signal, () => this.retrying(req.method, req.key, req.timing, req.signal, max, attempt, isBodyError, retryable), !streamed);
  }

  /** One attempt. Not async: the pool's promise is returned as it is (retrying() awaits it and catches a synchronous throw). */
  private sendOnce(req: SendRequest, extra: Record<string, string>, body: Uint8Array | ReadableStream<Uint8Array> | null, payloadHash: string | undefined, resendable: boolean, span?: Span): Promise<Response> {
    const method = req.method;
    const rawPath = req.key === "" ? this.bucketPath || "/" : `${this.bucketPath}/${req.key}`;
    const query = req.query && req.query.length > 0 ? (req.query as Array<[string, string]>) : undefined;
    let path: string;
    let qs: string;
    let headers: Record<string, string>;
    if (this.signer) {
      const signed = this.signer.signRequest({ method, host: this.host, path: rawPath, query, headers: extra, payloadHash });
      path = signed.path;
      qs = signed.query;
      // The signer's headers are this attempt's own object; `extra` (never one of the signer's
      // names: prepareSend drops those) is shared by every attempt, so it is copied, not changed.
      headers = signed.headers;
    } else {
      path = encodeS3Path(rawPath);
      qs = query ? canonicalQuery(query) : "";
      headers = {};
    }
    for (const k in extra) headers[k] = extra[k]!;
    // traceparent is not signed (added after signing): S3 ignores unsigned headers it does not know.
    if (span !== undefined) span.inject(headers);
    const target = qs === "" ? path : `${path}?${qs}`;
    const contentLength = body === null ? undefined : body instanceof Uint8Array ? body.byteLength : req.contentLength!;
    const clientSignal = req.signal;
    const hold = req.emptyAnswer || req.holdAnswer;
    const timeoutMs = req.timeoutMs ?? this.timeoutMs;
    // The pool's UpstreamTimeoutError is converted by retrying().
    if (body instanceof ReadableStream && isFramedBody(body, contentLength!)) return fetchFramed(this.fetchImpl, method, this.origin + target, headers, body, contentLength!, clientSignal, timeoutMs, req.timing, this.bufferBodyUpTo, hold);
    if (this.pool) return this.pool.request(method, target, headers, { timeoutMs, connectTimeoutMs: this.connectTimeoutMs, signal: clientSignal, abandon: req.timing, body, contentLength, noResend: !resendable, releaseChunks: req.releaseChunks, holdUnknownLength: hold });
    return fetchWithBody(this.fetchImpl, method, this.origin + target, headers, body, contentLength, clientSignal, timeoutMs, req.timing, this.bufferBodyUpTo, hold);
  }

  /** One attempt. Not async for the pool (its UpstreamTimeoutError is converted by retrying()): no promise of its own. */
  private once(method: "GET" | "HEAD", key: string, forward: Record<string, string>, clientSignal: AbortSignal, timing: UpstreamTiming, span: Span | undefined, bodyEnded: ((whole: boolean) => void) | undefined): Promise<Response> {
    // The forwarded Range and validators are not x-amz-* headers: they need no signature. The
    // checksum mode is, so it is signed when present.
    const mode = forward["x-amz-checksum-mode"];
    const { path, headers } = this.prepare(method, key, mode === undefined ? undefined : { "x-amz-checksum-mode": mode });
    for (const k in forward) headers[k] = forward[k];
    // traceparent is not signed (added after signing): S3 ignores unsigned headers it does not know.
    if (span !== undefined) span.inject(headers);
    // The pool enforces both timeouts and notices the client's abort itself (one sweep timer for
    // all requests), so nothing per request is allocated here.
    if (this.pool) return this.pool.request(method, path, headers, { timeoutMs: this.timeoutMs, connectTimeoutMs: this.connectTimeoutMs, signal: clientSignal, abandon: timing, onBodyEnd: bodyEnded, holdUnknownLength: true });
    return this.fetchOnce(method, path, headers, clientSignal, timing);
  }

  private async fetchOnce(method: "GET" | "HEAD", path: string, headers: Record<string, string>, clientSignal: AbortSignal, timing: UpstreamTiming): Promise<Response> {
    const url = this.origin + path;
    // fetch has no connect-phase timeout (its `timeout` option is a socket idle timer that does
    // not run while connecting; checked on Bun 1.4.5), so on this path s3.connect_timeout is not
    // enforced: the timer below (s3.timeout, until response headers) bounds connecting too. The
    // start-up log says so (connectTimeoutNote).
    const timeout = exchangeController(clientSignal, timing);
    const timer = setTimeout(() => timeout.abort(new TimeoutError("upstream timeout")), this.timeoutMs);
    try {
      const res = fetchedAnswer(
        await this.fetchImpl(url, {
          method,
          headers,
          signal: timeout.signal,
          decompress: false,
          redirect: "manual",
        } as RequestInit),
      );
      const answer = method === "GET" && (res.status === 200 || res.status === 206);
      const length = answer ? contentLengthOf(res) : -1;
      if (answer && length < 0 && res.body !== null && this.bufferBodyUpTo > 0) {
        // A body of unknown length (chunked, until close): held up to bufferBodyUpTo inside the
        // attempt, paced as the own client holds one.
        clearTimeout(timer);
        return await holdPaced(res, this.bufferBodyUpTo, timeout, this.timeoutMs);
      }
      if (!answer) return res;
      // A body the object phase would read whole anyway is read here, inside the attempt, as the
      // own client does: a body the upstream cuts or stalls before any byte reaches the client is
      // then this attempt's failure (retried, failed over to another replica, counted by the
      // breaker) instead of a 502 after the attempt succeeded.
      clearTimeout(timer);
      return await wholeAnswer(res, this.bufferBodyUpTo, timeout, this.timeoutMs);
    } catch (err) {
      if (timeout.signal.aborted && !clientSignal.aborted) throw timeout.signal.reason;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A read that is not an object's (ObjectUpstream.read): one endpoint, nothing to fail over to. */
  read(_signal: AbortSignal, _timing: UpstreamTiming, send: (upstream: BucketUpstream, maxAttempts: number | undefined, replica?: string) => Promise<Response>): Promise<Response> {
    return send(this, undefined);
  }

  /** Where writes go: a single-endpoint bucket is its own primary (a ReplicaSet answers its primary replica). */
  primary(): BucketUpstream {
    return this;
  }

  private probeRequest(method: "HEAD" | "GET", key: string, timeoutMs: number): Promise<Response> {
    const { path, headers } = this.prepare(method, key);
    return this.pool
      ? this.pool.request(method, path, headers, { timeoutMs, connectTimeoutMs: this.connectTimeoutMs })
      : this.fetchImpl(this.origin + path, { method, headers, signal: AbortSignal.timeout(timeoutMs), redirect: "manual" } as RequestInit);
  }

  /** The S3 error code of a GET of a key that does not exist (what a bodiless HEAD answer could not say), with its status and Location. */
  private async probeMissingKey(timeoutMs: number): Promise<{ status: number; code: string | undefined; location: string | null; failed: boolean }> {
    const get = await this.probeRequest("GET", `.yatagarasu-readiness-probe-${crypto.randomUUID()}`, timeoutMs);
    const body = await readUpstreamCapped(get, 64 * 1024).catch(() => undefined);
    const code = body === undefined ? undefined : parseS3ErrorCode(new TextDecoder().decode(body));
    // failed: a 5xx that is neither a 501 nor S3's SlowDown (its code, or its "Slow Down" reason
    // phrase when the body is empty): the store's reads fail, so the bucket is not ready
    const failed = get.status >= 500 && get.status !== 501 && code !== "SlowDown" && !slowDownPhrase(get);
    return { status: get.status, code, location: get.headers.get("location"), failed };
  }

  /**
   * A cheap signed request for readiness: HEAD of the bucket root (any HTTP answer but 5xx means
   * reachable, and S3's 503 SlowDown: throttled, up; a 404 is asked again: a bucket that does not
   * exist is not ready; a 501, a store without HeadBucket, is asked again as a 403 is). A 403 there has no body to say why, so a GET of a key that does not exist asks
   * again: an upstream that refuses the bucket's credentials themselves (a wrong secret, an
   * unknown or expired key) makes every request fail, so the bucket is not ready; a read-only
   * policy's AccessDenied is fine.
   */
  async probe(timeoutMs: number): Promise<{ ok: boolean; reason?: string; note?: string }> {
    const r = await this.probeOnce(timeoutMs);
    if (r.ok) this.breaker?.probeSucceeded();
    return r;
  }

  private async probeOnce(timeoutMs: number): Promise<{ ok: boolean; reason?: string; note?: string }> {
    try {
      const res = await this.probeRequest("HEAD", "", timeoutMs);
      await res.body?.cancel().catch(() => {});
      // S3's 503 SlowDown (told by its reason phrase: a HEAD has no body) is a throttle by a store
      // that is up, as the breaker and failover count it: ready.
      if (slowDownPhrase(res)) return SLOWED_DOWN;
      if (res.status === 503) {
        // A store that says SlowDown in its error body only, under the usual reason phrase (MinIO,
        // whose Go server writes "Service Unavailable"): a HEAD has no body to tell it by, and the
        // throttled primary was not ready, its reads sent to a secondary; a GET of a missing key says
        // which 503 it is.
        const got = await this.probeMissingKey(timeoutMs);
        return got.status === 503 && !got.failed ? SLOWED_DOWN : { ok: false, reason: "upstream answered 503" };
      }
      // (a 501: a store that does not implement HeadBucket, asked again below with a GET)
      if (res.status >= 500 && res.status !== 501) return { ok: false, reason: `upstream answered ${res.status}` };
      if (res.status === 404) {
        // HeadBucket's 404 has no body: a GET of a key that does not exist says whether the bucket
        // is missing (NoSuchBucket: a misnamed or deleted bucket fails every read) or the store
        // answers HEAD of a bucket so (NoSuchKey: fine).
        const { status, code, failed } = await this.probeMissingKey(timeoutMs);
        if (failed) return { ok: false, reason: `upstream answered ${status}` };
        if (code === "NoSuchBucket") return NO_SUCH_BUCKET;
        // A 404 with no S3 error at all is no S3 API answering (a web server, a balancer's default
        // site, an endpoint with a wrong path): every read is a 404, as the probe's was.
        if (code === undefined && status === 404) return { ok: false, reason: "the endpoint answered 404 without an S3 error: is s3.endpoint the store's S3 API, with its scheme, port and path?" };
        return { ok: true };
      }
      if (res.status === 403 || res.status === 400 || res.status === 501 || (res.status >= 300 && res.status < 400)) {
        // (S3 answers a request signed for another region 400 AuthorizationHeaderMalformed, and
        // one sent to another region's endpoint 301 PermanentRedirect: every read fails so too)
        const got = await this.probeMissingKey(timeoutMs);
        const code = got.code;
        // (after a 501 to the HEAD: the store's reads answer 5xx too, or its bucket is missing)
        if (got.failed) return { ok: false, reason: `upstream answered ${got.status}` };
        if (code === "NoSuchBucket") return NO_SUCH_BUCKET;
        if (code === "AuthorizationHeaderMalformed") return { ok: false, reason: "the upstream refuses the bucket's signature: is s3.region the bucket's region? (AuthorizationHeaderMalformed)" };
        // (not the credentials: this host's clock, which every signature carries)
        if (code === "RequestTimeTooSkewed") return { ok: false, reason: "the upstream refuses the request's time: is this host's clock right (NTP)? (RequestTimeTooSkewed)" };
        if (code !== undefined && CREDENTIAL_CODES.has(code)) return { ok: false, reason: `the upstream refuses the bucket's credentials (${code})` };
        if (code === "PermanentRedirect") return { ok: false, reason: "the upstream bucket is in another region: set s3.region or s3.endpoint to it (PermanentRedirect)" };
        if (code === "TemporaryRedirect") return { ok: false, reason: "the upstream sends the bucket's requests to another endpoint for now: set s3.region (or s3.endpoint) to the bucket's region (TemporaryRedirect)" };
        // No S3 error document at all, and no answer a read could use: not an S3 API answering
        // (an https port asked in plain http, a web server, a balancer redirecting to https);
        // the proxy follows no redirect, so every request fails (502) as the probe did.
        if (code === undefined && (got.status === 400 || (got.status >= 300 && got.status < 400))) {
          if (got.status >= 300 && this.origin.startsWith("http:") && got.location?.toLowerCase().startsWith("https:")) {
            return { ok: false, reason: `the endpoint redirects to https (HTTP ${got.status}): write s3.endpoint with https://` };
          }
          return { ok: false, reason: `the endpoint answered ${got.status} without an S3 error: is s3.endpoint the store's S3 API, with its scheme and port? (an https port asked in plain http answers so)` };
        }
        // A read-only IAM policy (GetObject without ListBucket) answers a bucket HEAD with 403:
        // the upstream is reachable, which is what readiness is about.
        // (unsigned, the 403 may as well be a private bucket asked without the keys it needs: say so)
        if (res.status === 403) return { ok: true, note: this.signer ? "the probe got 403 (fine for read-only credentials)" : "the probe got 403, unsigned: no s3.access_key (fine for a bucket anyone may read but not list)" };
        if (res.status === 501) return { ok: true, note: `the upstream does not implement HeadBucket (501); a GET got ${got.status}${code === undefined ? "" : ` (${code})`}` };
        return { ok: true, note: `the probe got ${res.status}${code === undefined ? "" : ` (${code})`}` };
      }
      return { ok: true };
    } catch (err) {
      const name = (err as Error)?.name;
      if (err instanceof UpstreamConnectTimeoutError) return { ok: false, reason: "upstream did not accept the connection in time" };
      const tls = tlsFailure(err);
      if (tls !== undefined) {
        this.logTlsFailure(err);
        return { ok: false, reason: `upstream unreachable: ${tls}` };
      }
      // An http:// endpoint whose answer is no HTTP (a TLS port closing on plain text, or
      // answering with a TLS alert): the hint /ready's EPROTO gives the other way round.
      if (err instanceof UpstreamProtocolError && this.origin.startsWith("http:")) {
        return { ok: false, reason: "upstream unreachable (UpstreamProtocolError): it closed the connection or answered in something other than HTTP: does the endpoint speak https? (then write https://)" };
      }
      // (the failure's code, never its message: /ready is public and messages name hosts)
      return { ok: false, reason: name === "TimeoutError" || err instanceof UpstreamTimeoutError ? "upstream did not answer in time" : `upstream unreachable (${errorType(err)})` };
    }
  }

  /** The operator's log (warn, once) for a TLS handshake that failed: the access log has only its code. */
  private logTlsFailure(err: unknown): void {
    if (this.tlsLogged) return;
    const tls = tlsFailure(err);
    if (tls === undefined) return;
    this.tlsLogged = true;
    this.log?.("warn", `upstream ${tls}`, { bucket: this.name, endpoint: this.origin, upstream_error: errorType(err) });
  }
}

/** The probe's verdict on a store throttling it (S3's 503 SlowDown): up, as the breaker and failover count it. */
const SLOWED_DOWN = { ok: true, note: "the probe got 503 SlowDown (throttled)" } as const;

/** The probe's verdict on a bucket the upstream does not have. */
const NO_SUCH_BUCKET = { ok: false, reason: "the upstream bucket does not exist (NoSuchBucket)" } as const;

/** The codes of a certificate the TLS handshake refused. */
const CERT_REFUSED_CODES = new Set([
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "UNABLE_TO_GET_ISSUER_CERT", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT", "CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID", "CERT_UNTRUSTED", "CERT_REVOKED", "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * A failed TLS handshake, in words for /ready and the log (its code, never the runtime's message),
 * or undefined. Bun 1.4.5's fetch says EPROTO ("The TLS handshake failed") when the endpoint
 * answers the handshake with something that is not TLS: an https:// endpoint that speaks http.
 */
/** The upstream's certificate refused in the TLS handshake (CERT_REFUSED_CODES): no request went out, and another attempt meets the same certificate. */
const certificateRefused = (err: unknown): boolean => CERT_REFUSED_CODES.has((err as { code?: unknown } | null)?.code as string);

export function tlsFailure(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === "EPROTO") return "TLS handshake failed (EPROTO): does the endpoint speak https, with TLS 1.2 or later? (one that speaks plain http is written http://)";
  if (typeof code === "string" && CERT_REFUSED_CODES.has(code)) {
    return `TLS handshake failed: the endpoint's certificate was refused (${code}${certRefusalHint(code, "the endpoint")})`;
  }
  return undefined;
}

const isBodyError = (err: unknown) => err instanceof RequestBodyError;

/**
 * Whether a request may be sent again after an attempt whose outcome is unknown (the connection
 * closed after the request went out, with no answer). GET, HEAD, PUT and DELETE are idempotent
 * (RFC 9110 §9.2.2): sending one twice leaves what sending it once does. Not so a POST (a
 * CompleteMultipartUpload that succeeded is NoSuchUpload the second time, CreateMultipartUpload
 * opens another upload), except DeleteObjects (deleting keys twice deletes them), nor a write
 * conditional on the object's state (If-Match / If-None-Match, or a DeleteObjects with <ETag>s,
 * `conditional`: the first one changed that state).
 */
export function isResendable(method: string, query: ReadonlyArray<readonly [string, string]> | undefined, headers: Record<string, string>, conditional = false): boolean {
  if (headers["if-match"] !== undefined || headers["if-none-match"] !== undefined) return method === "GET" || method === "HEAD";
  if (conditional) return false;
  if (method !== "POST") return true;
  return query !== undefined && query.length === 1 && query[0]![0] === "delete";
}

/** Errors of an attempt that never reached the upstream: no connection was made. */
const NOT_CONNECTED = /\((?:ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ConnectionRefused|FailedToOpenSocket)\)/;
const NOT_CONNECTED_CODES = new Set([
  "ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ConnectionRefused", "FailedToOpenSocket", "EMFILE", "ENFILE",
  // the upstream's certificate refused during the handshake: no HTTP byte went out. (Not EPROTO:
  // Bun's fetch reports any failure of the TLS layer so, one after the request went out included:
  // a CompleteMultipartUpload or a conditional create resent would be sent twice.)
  ...CERT_REFUSED_CODES,
]);

/**
 * fetch's errors (https endpoints, `upstream_client: fetch`) for an answer it could not parse, as
 * the own client's parser names them: the upstream answered, wrongly. They read "The upstream
 * connection closed before it answered" (a cut, not a bad answer: an operator looked at the
 * network instead of the store). Still retried as before (failedAttempt), never a surelyNotSent.
 */
const FETCH_UNREADABLE: ReadonlyMap<string, string> = new Map([
  ["Malformed_HTTP_Response", "malformed upstream response head"],
  ["InvalidContentLength", "invalid upstream Content-Length"],
  ["ResponseHeadersTooLarge", "upstream response head too large"],
]);

function fetchUnreadable(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? FETCH_UNREADABLE.get(code) : undefined;
}

export function surelyNotSent(err: unknown): boolean {
  if (err instanceof UpstreamConnectTimeoutError) return true;
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && NOT_CONNECTED_CODES.has(code)) return true;
  return NOT_CONNECTED.test(err.message);
}
