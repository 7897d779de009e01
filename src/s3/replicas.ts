/**
 * Bucket replicas (s3.replicas): reads fail over between replicas, writes go to the primary.
 *
 * Which replica a read goes to: the highest-priority healthy one. Each replica has its own
 * BucketUpstream, so its own signer, connection pool, retry policy and circuit breaker (configured
 * by the bucket's s3.circuit_breaker), and its own readiness probe. A replica's standing:
 *   - skipped:   its breaker is open (it failed failure_threshold times in a row); once the breaker
 *                half-opens, the replica is tried again in its priority place (its trial requests);
 *   - demoted:   its last readiness probe failed and its breaker is closed (no fresher evidence
 *                from the data path): tried only after every other replica;
 *   - preferred: otherwise, in priority order.
 *
 * Within one request, a connect error, a connection reset before the response head, a timeout,
 * a 5xx or a redirect (3xx but 304: never followed, the replica's failure) moves the read on to the next replica; a 4xx never does (a 404 is an answer)
 * but a 400/403 refusing the replica's own credentials (CREDENTIAL_CODES: its configuration, not the object), nor a 501
 * NotImplemented (a store refusing what it does not implement: its breaker counts it a success),
 * nor S3's 503 SlowDown (a throttle, passed on for the client to back off: not counted either). All this
 * happens before the response head is handed to the pipeline, so before any byte reaches the
 * client; a body that breaks later is not retried anywhere (bytes may have been sent).
 *
 * Retries and failover compose as "fail over first, retry last": while another replica remains
 * to be tried, a failing replica gets one attempt (no backoff wait on a replica that just refused
 * while a healthy one is available); the last replica tried gets the bucket's whole retry budget
 * (s3.retry.max_attempts). A read therefore makes at most (replicas − 1) + max_attempts upstream
 * attempts. A bucket without replicas is a plain BucketUpstream and pays nothing for any of this.
 *
 * An answer from a secondary is marked (capFreshness) so that a caching bucket stores it for
 * `secondaryTtlSeconds` at most (SECONDARY_TTL_SECONDS, or the breaker's timeout_seconds if
 * shorter), in every layer, a 304 refreshing a stored entry too: a secondary may lag behind the
 * primary's writes, and what it answered during one failure of the primary must not outlive the
 * primary's recovery by more than that. The primary's answers are not marked (nothing added to them).
 */
import { capFreshness } from "../cache/freshness.ts";
import type { BucketConfig } from "../config/schema.ts";
import type { ReplicaConfig } from "../config/replicas.ts";
import { timerDelay } from "../config/durations.ts";
import { ProxyError } from "../errors.ts";
import { isOwnedBytes, markOwnedBytes } from "../http/owned-response.ts";
import { BREAKER_STATE_CODE, type BreakerState, type CircuitBreaker } from "../limits/index.ts";
import type { Metrics } from "../observe/metrics.ts";
import type { ReplicaSeries } from "../observe/replica-metrics.ts";
import { answerCodeOf, attemptDeadlines, BucketUpstream, logBreaker, tellHeadCode, type UpstreamDeps, type UpstreamTiming } from "./upstream.ts";
import { CREDENTIAL_CODES } from "./errors.ts";

type ObjectMethod = "GET" | "HEAD";

export type ReadSend = (upstream: BucketUpstream, maxAttempts: number | undefined, replica?: string) => Promise<Response>;

/** What the object phase reads through: one BucketUpstream, or a ReplicaSet of several. */
export interface ObjectUpstream {
  fetchObject(method: ObjectMethod, key: string, forward: Record<string, string>, signal: AbortSignal, timing: UpstreamTiming): Promise<Response>;
  /**
   * A read that is not an object's (ListObjects, ListObjectsV2, the folder index): `send` asks one
   * upstream (`replica`: its name, undefined without replicas); a ReplicaSet fails it over as
   * fetchObject does, asking replica `prefer` first while it is healthy (a listing's next page).
   */
  read(signal: AbortSignal, timing: UpstreamTiming, send: ReadSend, prefer?: string): Promise<Response>;
  /** Where writes go, whatever the replicas' health: never a secondary. */
  primary(): BucketUpstream;
}

export interface ProbeResult {
  ok: boolean;
  reason?: string;
  note?: string;
}

export type Standing = "preferred" | "demoted" | "skipped";

export class Replica {
  /** The last readiness probe failed (false until the first probe: not probed yet does not demote). */
  probeFailed = false;

  constructor(
    readonly name: string,
    readonly priority: number,
    readonly upstream: BucketUpstream,
    readonly series?: ReplicaSeries,
  ) {}

  get breakerState(): BreakerState | undefined {
    return this.upstream.breaker?.state;
  }

  /** See the module comment. Reading the breaker's state turns an expired open breaker half-open. */
  get standing(): Standing {
    const st = this.upstream.breaker?.state;
    if (st === "open") return "skipped";
    if (st === "half_open") return "preferred";
    return this.probeFailed ? "demoted" : "preferred";
  }

  /** The readiness probe (run by the Prober); remembers the outcome for the read order. */
  async probe(timeoutMs: number): Promise<ProbeResult> {
    const r = await this.upstream.probe(timeoutMs);
    this.probeFailed = !r.ok;
    return r;
  }
}

/** The order a read tries `replicas` (given by priority) in: preferred ones, then demoted ones; skipped ones are left out. */
export function readOrder(replicas: readonly Replica[]): Replica[] {
  const preferred: Replica[] = [];
  const demoted: Replica[] = [];
  for (const r of replicas) {
    const s = r.standing;
    if (s === "preferred") preferred.push(r);
    else if (s === "demoted") demoted.push(r);
  }
  return demoted.length === 0 ? preferred : preferred.concat(demoted);
}

/**
 * The longest a cache keeps an answer from a secondary replica (seconds): short enough that a read
 * after the primary recovers gets the primary's version within it, long enough that during a long
 * outage of the primary a hot key costs the secondary one request per key every few seconds (per
 * process; per cluster with a Redis layer), not one per read.
 */
const SECONDARY_TTL_SECONDS = 5;

/** Breaker states, best first: the bucket-level gauge shows the best replica's (the bucket serves while one admits). */
const BEST_FIRST: readonly BreakerState[] = ["closed", "half_open", "open"];

export class ReplicaSet implements ObjectUpstream {
  constructor(
    readonly bucket: string,
    /** Sorted by priority: replicas[0] is the primary. */
    readonly replicas: readonly Replica[],
    private readonly metrics?: Metrics,
    log?: UpstreamDeps["log"],
    /** How long a cache may keep an answer from a secondary (see the module comment). */
    readonly secondaryTtlSeconds: number = SECONDARY_TTL_SECONDS,
  ) {
    if (replicas.length === 0) throw new RangeError("a replica set needs at least one replica");
    for (const r of replicas) {
      const breaker = r.upstream.breaker;
      // (without one, closed: its series outlives a reload that removed the breaker, and stayed at its last state, open)
      r.series?.breaker.set(breaker === undefined ? 0 : BREAKER_STATE_CODE[breaker.state]);
      if (breaker === undefined) continue;
      breaker.onStateChange = (to, from) => {
        r.series?.breaker.set(BREAKER_STATE_CODE[to]);
        this.metrics?.setBreakerState(this.bucket, BREAKER_STATE_CODE[this.bestBreakerState()]);
        logBreaker(log, { bucket: this.bucket, replica: r.name }, to, from);
      };
    }
  }

  primary(): BucketUpstream {
    return this.replicas[0].upstream;
  }

  /** The bucket's breaker state as yatagarasu_circuit_breaker_state shows it (the best replica's). */
  breakerCode(): 0 | 1 | 2 {
    return BREAKER_STATE_CODE[this.bestBreakerState()];
  }

  private bestBreakerState(): BreakerState {
    let best = 2;
    for (const r of this.replicas) best = Math.min(best, BEST_FIRST.indexOf(r.breakerState ?? "closed"));
    return BEST_FIRST[best];
  }

  /**
   * GET/HEAD with failover (see the module comment). Same contract as BucketUpstream.fetchObject:
   * resolves with the answering replica's response for any status below 500 but a redirect, 501 or 503 SlowDown (and for a 5xx or redirect from
   * the last replica tried); throws ProxyError when no replica gave an HTTP answer.
   * `timing.replica` names the replica that answered; `timing.attempts` counts every attempt.
   * A secondary's answer is marked with capFreshness(secondaryTtlSeconds).
   */
  async fetchObject(method: ObjectMethod, key: string, forward: Record<string, string>, signal: AbortSignal, timing: UpstreamTiming): Promise<Response> {
    if (method !== "GET" && method !== "HEAD") throw new ProxyError("InternalError", { detail: "only reads fail over between replicas; writes go to primary()" });
    return this.failover(signal, timing, true, async (r, last) => {
      // A cache fill's attempt but the last: bounded on its own (the replica's timeout plus the
      // body's allowance), so that a replica too slow for the fill's deadline is failed over from
      // instead of failing the fill.
      const bounded = last || timing.attemptBodyMs === undefined ? undefined : boundedAttempt(signal, timerDelay(r.upstream.timeoutMs + timing.attemptBodyMs), r.name);
      try {
        const pending = r.upstream.fetchObject(method, key, forward, bounded?.signal ?? signal, timing, last ? undefined : 1);
        if (bounded === undefined) {
          const res = await pending;
          // (a HEAD's refusal has no body to say whether it is of the replica's credentials: told by a
          // GET of the key's first byte, one attempt, whose error body says it)
          return method === "HEAD" && !last && (res.status === 403 || res.status === 400) ? await tellHeadCode(res, () => r.upstream.fetchObject("GET", key, { range: "bytes=0-0" }, signal, timing, 1)) : res;
        }
        // (the breaker admits the attempt synchronously, in fetchObject: this is the body recorder
        // of the state period it was admitted in, as its ticket's bodyEnded is)
        const bodyEnded = r.upstream.breaker?.bodyRecorder;
        const res = await pending;
        // A fill's body (up to what it buffers) within this replica's share, not after it: read
        // later, a replica trickling it ran out the fill's whole deadline (504, no failover).
        return await heldBody(res, timing.attemptHoldBytes, bounded.signal, signal, bodyEnded, r.upstream.pool !== undefined);
      } finally {
        bounded?.done();
      }
    });
  }

  /**
   * A read that is not an object's (a listing) with the same failover: `send` asks one replica's
   * upstream, with `maxAttempts` for its retries (fetchObject's contract). Its answers are not
   * marked for the caches (a listing is not cached). `prefer`, when healthy (not skipped or
   * demoted), is asked first.
   */
  read(signal: AbortSignal, timing: UpstreamTiming, send: ReadSend, prefer?: string): Promise<Response> {
    return this.failover(signal, timing, false, (r, last) => send(r.upstream, last ? undefined : 1, r.name), prefer);
  }

  /** The failover loop of every read: `attempt` asks replica `r` (`last`: no other remains after it). */
  private async failover(signal: AbortSignal, timing: UpstreamTiming, capSecondary: boolean, attempt: (r: Replica, last: boolean) => Promise<Response>, prefer?: string): Promise<Response> {
    const order = readOrder(this.replicas);
    const preferred = prefer === undefined ? -1 : order.findIndex((r) => r.name === prefer);
    if (preferred > 0 && order[preferred]!.standing === "preferred") order.unshift(...order.splice(preferred, 1));
    // Every breaker open: ask the primary anyway, so the client gets its CircuitOpen answer with
    // the right Retry-After (or, if its breaker has just half-opened, the trial request).
    if (order.length === 0) order.push(this.replicas[0]);
    if (order.length < this.replicas.length) for (const r of this.replicas) if (r.series && !order.includes(r)) r.series.skipped.value++;
    let attempts = 0;
    // The replica asked last that failed the read, whose failover is counted once the read asks
    // another: to that one (a replica skipped between them, its half-open breaker refusing, was
    // counted as the `to` of a failover it never took part in).
    let failedFrom: Replica | undefined;
    for (let i = 0; ; i++) {
      const r = order[i];
      const last = i === order.length - 1;
      timing.attempts = 0;
      let outcome: Response | unknown;
      let answered = false;
      // (the replica being asked: the one that answered, or failed last, or was asked when the
      // request was given up, as the access line names it)
      timing.replica = r.name;
      try {
        outcome = await attempt(r, last);
        answered = true;
      } catch (err) {
        outcome = err;
      }
      attempts += timing.attempts;
      timing.attempts = attempts;
      const skipped = !answered && outcome instanceof ProxyError && outcome.code === "CircuitOpen";
      if (failedFrom !== undefined && !skipped) {
        const moved = failedFrom.series?.failoverTo.get(r.name);
        if (moved) moved.value++;
        failedFrom = undefined;
      }
      if (answered) {
        let res = outcome as Response;
        // (a 501 NotImplemented, a store refusing what it does not implement, is its answer, as its
        // breaker counts it: failed over, the next replica's outage reached the client instead; so
        // is S3's 503 SlowDown, a throttle on one prefix by a store that is up, which the breaker
        // does not count either: failed over, a throttled primary's load, and its clients'
        // back-off, went to a secondary that may lag behind its writes)
        // A redirect (not a 304) is the replica's failure, as its client is told (502, the S3 front's
        // 500 InternalError: its s3.endpoint or s3.region does not name where its bucket is, or S3's
        // 307 while a new bucket's name spreads): failed over, as a 5xx is. Taken for the answer, a
        // healthy secondary holding the object was never asked, and the replica counted a success.
        const status = res.status;
        let answer = status < 500 ? status < 300 || status >= 400 || status === 304 : status === 501;
        if (status === 503) {
          const told = await answerCodeOf(res);
          res = told.res;
          answer = told.code === "SlowDown";
        } else if ((status === 403 || status === 400) && !last) {
          // A refusal of the replica's own credentials (InvalidAccessKeyId, SignatureDoesNotMatch,
          // ExpiredToken, InvalidToken...: a rotated key, an expired session token, a wrong region
          // configured for it) says nothing about the object: the next replica is asked, and this
          // one's failure counted (its breaker, which counts no 4xx, does not). AccessDenied,
          // NoSuchKey and any other 4xx are the object's answer. Answered, a client got 403 though
          // the next replica held the object, until the readiness probe demoted this one.
          const told = await answerCodeOf(res);
          res = told.res;
          answer = told.code === undefined || !CREDENTIAL_CODES.has(told.code);
        }
        if (answer || last) {
          if (r.series) (answer ? r.series.success : r.series.failure).value++;
          answeredBy.set(res, r.name);
          return r === this.replicas[0] || !capSecondary ? res : capFreshness(res, this.secondaryTtlSeconds);
        }
        res.body?.cancel().catch(() => {});
        if (r.series) r.series.failure.value++;
        // (given up meanwhile: the answer is discarded anyway, and no other replica is asked)
        if (timing.abandoned !== undefined) throw timing.abandoned;
      } else {
        const err = outcome;
        // A client that went away, or an answer mapped to a 4xx: not the replica's failure.
        if (signal.aborted || (err instanceof ProxyError && err.status < 500)) throw err;
        // Given up by server.request_timeout (abandonUpstream): no other replica is asked. Its
        // attempt would be refused before a byte went out and counted as that replica's failure
        // (opening the breaker of a healthy secondary that was never asked).
        if (timing.abandoned !== undefined) {
          if (r.series) r.series.failure.value++;
          throw err;
        }
        if (r.series) (skipped ? r.series.skipped : r.series.failure).value++;
        if (last) throw err;
        // A replica its half-open breaker refused (trial slots taken) was skipped, as one whose
        // breaker is open is left out of the order: neither is a failover (a read that moved on
        // from a replica it asked), which counted the first and not the second.
        if (skipped) continue;
      }
      failedFrom = r;
    }
  }
}

/**
 * A 200/206 of known length up to `upTo`, its body not read yet: read whole (aborted with
 * `signal`, the attempt's bound) and answered as owned bytes. Anything else as it is.
 */
async function holdBody(res: Response, upTo: number | undefined, signal: AbortSignal): Promise<Response> {
  if (upTo === undefined || res.body === null || isOwnedBytes(res) || (res.status !== 200 && res.status !== 206)) return res;
  const declared = res.headers.get("content-length");
  const length = declared === null ? -1 : Number(declared);
  if (!(length >= 0 && length <= upTo)) return res;
  let body: ArrayBuffer;
  try {
    body = await res.arrayBuffer();
  } catch (err) {
    throw signal.aborted ? signal.reason : err;
  }
  if (body.byteLength !== length) throw new ProxyError("BadGateway", { detail: `The upstream sent ${body.byteLength} of the ${length} bytes it announced` });
  const whole = new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  markOwnedBytes(whole);
  return whole;
}

/**
 * holdBody, its outcome told to the replica's breaker (`bodyEnded`: the recorder of the period the
 * attempt was admitted in). The breaker took the attempt for a success at its head; a body that
 * then fails here is a body failed after a good head (CircuitBreaker.recordBody), as a streamed
 * one's is. Uncounted, a replica that answered every fill's head and then trickled its body past
 * its share was failed over from every time (counted `failure` in the replica metrics) while its
 * breaker stayed closed: every fill paid its whole share again. Not counted: the caller's abort
 * (the fill's own deadline), and on the own client (`ownClient`) a cut or stall, which its pool
 * already counts (onBodyEnd); the attempt's share running out is counted on both.
 */
async function heldBody(res: Response, upTo: number | undefined, bounded: AbortSignal, caller: AbortSignal, bodyEnded: ((whole: boolean) => void) | undefined, ownClient: boolean): Promise<Response> {
  try {
    const out = await holdBody(res, upTo, bounded);
    // (held whole: the fetch client's body outcome, which nothing else records)
    if (!ownClient && out !== res) bodyEnded?.(true);
    return out;
  } catch (err) {
    if (!caller.aborted && (!ownClient || attemptDeadlines.has(err as object))) bodyEnded?.(false);
    throw err;
  }
}

/** An attempt's own signal: the caller's, or its time (`ms`) running out, a GatewayTimeout (the replica's failure). */
function boundedAttempt(signal: AbortSignal, ms: number, replica: string): { signal: AbortSignal; done(): void } {
  const own = new AbortController();
  const follow = () => own.abort(signal.reason);
  if (signal.aborted) follow();
  else signal.addEventListener("abort", follow, { once: true });
  const timer = setTimeout(() => {
    const reason = new ProxyError("GatewayTimeout", { detail: `Replica ${replica} did not send the object within ${ms} ms` });
    attemptDeadlines.add(reason); // (the replica's failure: its breaker counts it, not as a client's abort)
    own.abort(reason);
  }, ms);
  // (the listener stays: a body handed over still reads under this signal, and the caller's abort must reach it)
  return { signal: own.signal, done: () => clearTimeout(timer) };
}

/**
 * The upstream of one bucket: a plain BucketUpstream for the single-endpoint form, a ReplicaSet
 * when s3.replicas is given. `series` (from Metrics.replicas.configure) holds each replica's
 * metric handles by name.
 */
/**
 * A bucket's upstream: one endpoint, or a ReplicaSet. `breakerOf(replica)`: a breaker to take over
 * for the bucket (no replica) or one of its replicas (see UpstreamDeps.breaker).
 */
export function buildUpstream(cfg: BucketConfig, deps: UpstreamDeps, series?: ReadonlyMap<string, ReplicaSeries>, breakerOf?: (replica?: string) => CircuitBreaker | undefined): BucketUpstream | ReplicaSet {
  const list = cfg.s3.replicas;
  if (list === undefined) return new BucketUpstream(cfg, { ...deps, breaker: breakerOf?.() });
  const replicas = list.map((r) => new Replica(r.name, r.priority, new BucketUpstream(replicaConfig(cfg, r), { ...deps, breaker: breakerOf?.(r.name) }), series?.get(r.name)));
  return new ReplicaSet(cfg.name, replicas, deps.metrics, deps.log, Math.min(SECONDARY_TTL_SECONDS, cfg.s3.circuit_breaker?.timeout_seconds ?? SECONDARY_TTL_SECONDS));
}

/** One replica as a single-endpoint bucket config (the bucket's name, so S3 metrics stay per bucket). */
export function replicaConfig(cfg: BucketConfig, r: ReplicaConfig): BucketConfig {
  return {
    ...cfg,
    s3: {
      ...cfg.s3,
      bucket: r.bucket,
      region: r.region,
      endpoint: r.endpoint,
      access_key: r.access_key,
      secret_key: r.secret_key,
      session_token: r.session_token,
      force_path_style: r.force_path_style,
      timeout: r.timeout ?? cfg.s3.timeout,
      connect_timeout: r.connect_timeout ?? cfg.s3.connect_timeout,
      replicas: undefined,
    },
  };
}

/** The replica that gave each answer of a bucket with replicas (fetchObject). */
const answeredBy = new WeakMap<Response, string>();

/**
 * The replica that gave `res` (undefined for a bucket without replicas): a cache flight passes it
 * to the requests it serves that did not ask upstream themselves, so their access lines name it
 * as the leader's does.
 */
export function replicaOf(res: Response): string | undefined {
  return answeredBy.get(res);
}
