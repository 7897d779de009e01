/**
 * The serving flow the proxy pipeline calls for a cache-enabled bucket (GET/HEAD), independent of
 * how S3 is reached (see UpstreamFetch in flight.ts).
 *
 * fresh entry                → HIT: 200/206/304 from memory (412/416 thrown as ProxyError)
 * stale entry                → revalidate (If-None-Match / If-Modified-Since), coalesced:
 *                              304 → REVALIDATED (expiry refreshed, body kept); 200 → MISS (replaced);
 *                              no answer or a 5xx, within stale_if_error_seconds → STALE (the entry as it is);
 *                              after such a failure, STALE at once while one request of the bucket asks (StaleHold)
 * no entry, no Range         → fill, coalesced: 200 ≤ max item → buffered, stored, MISS
 *                              (no-store/private: served, not stored, still MISS)
 * no entry, Range            → joins a fill already in flight, else BYPASS: the range goes upstream, nothing stored
 * object > buffer limit      → MISS when a streaming layer (disk) takes it: the leader's body is written to
 *                              disk as it streams; else BYPASS (and the others go upstream themselves)
 * streaming fill in progress → MISS, coalesced (GET, HEAD, Range, conditionals): a miss for the key follows
 *                              the fill (fill-tap.ts), its body read from the file being written, at its own
 *                              pace, headers from the fill's stored metadata; a fill that fails cuts every
 *                              follower's body. Once a request follows, the upstream is read into the file at
 *                              the disk's pace. Per process; a purge of the key detaches the fill (later
 *                              requests go upstream); a fill that failed, or whose file cannot be opened,
 *                              is not followed (normal path)
 * upstream error / non-200   → replayed to every waiter (passthrough), never stored; a thrown error reaches every waiter
 */
import { evaluateConditions } from "../http/conditional.ts";
import { forwardRequestHeaders } from "../http/headers.ts";
import { parseRange } from "../http/range.ts";
import { ONLY_IF_CACHED_MISS, ProxyError } from "../errors.ts";
import type { Cache } from "./cache.ts";
import { FillHead, runFlight, staleServable, type CachePolicy, type FlightOutcome, type Shared, type UpstreamFetch } from "./flight.ts";
import { followerBody, resumeThrough, type FillCursor, type FillTap } from "./fill-tap.ts";
import { notModified, respondFromFill, respondFromObject } from "./respond.ts";
import type { CachedObject, MaybePromise, SharedWait } from "./types.ts";
import type { Span } from "../observe/trace/span.ts";

export type CacheStatus = "HIT" | "MISS" | "BYPASS" | "REVALIDATED" | "STALE";

export interface ServeArgs {
  cache: Cache;
  bucket: string;
  /** Object key inside the bucket (no leading slash). */
  key: string;
  method: "GET" | "HEAD";
  /** The client's request headers (Range, If-Range, If-Match, If-None-Match, If-(Un)Modified-Since are read). */
  reqHeaders: Headers;
  policy: CachePolicy;
  upstream: UpstreamFetch;
  /** The client's signal: what a request that goes upstream on its own (bypass) is aborted with. */
  signal?: AbortSignal;
  /**
   * The cache's purge-log point (Cache.epoch) when the request was admitted, with the config it
   * reads through (`upstream`); default: when this call is made. A request admitted before a purge
   * of its key (a write, a reload that pointed its bucket at another store) but reaching the cache
   * after it may be answered from what it reads (it began before), but that is neither stored nor
   * shared: its flight is not joinable, and a later request starts its own.
   */
  since?: number;
  /** The request's recording span (tracing): each cache-layer lookup gets a span under it. */
  trace?: Span;
  now?: () => number;
}

export interface ServeResult {
  response: Response;
  cacheStatus: CacheStatus;
  /** Upstream requests this call made itself (0 for a hit or a coalesced waiter). */
  upstreamCalls: number;
  /**
   * True when `response` is upstream's own (raw S3 headers, any status: errors, range bypass,
   * oversize stream): run it through the pipeline's normal upstream handling (error mapping,
   * header filtering). False: built from the cache (stored header subset + Age + X-Cache).
   */
  passthrough: boolean;
  /**
   * True when `response` (not passthrough) has a body read from a streaming fill in progress: a
   * stream that may fail mid-body (the fill failed), to be delivered as a streamed body.
   */
  following?: boolean;
  /**
   * The replica (a bucket with replicas) that gave the answer this request was served from when it
   * did not ask upstream itself (a waiter on a flight, a follower of a fill): its access line names
   * it, as the leader's does.
   */
  replica?: string | undefined;
}


function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return v instanceof Promise;
}

function isFresh(found: MaybePromise<CachedObject | undefined>, now: number): found is CachedObject {
  return found !== undefined && !isPromise(found) && now < found.expiresAt;
}

/** A HIT from a fresh entry: counted, answered from memory (412/416 thrown as ProxyError). */
function hit(cache: Cache, bucket: string, obj: CachedObject, reqHeaders: Headers, method: "GET" | "HEAD", now: number): Response {
  cache.counter(bucket).hits++;
  return respondFromObject(obj, reqHeaders, method, now, "HIT");
}

/**
 * The synchronous hot path: a fresh entry in a synchronous layer answers without a promise.
 * `undefined` means "not a plain hit": the caller takes the full (asynchronous) path through
 * serveWithCache.
 */
export function serveHit(cache: Cache, bucket: string, key: string, method: "GET" | "HEAD", reqHeaders: Headers, now: number = Date.now()): Response | undefined {
  // Only the synchronous first layer: a slower layer is asked once, by serveWithCache.
  const found = cache.getFirst(bucket + "/" + key);
  return isFresh(found, now) ? hit(cache, bucket, found, reqHeaders, method, now) : undefined;
}

export function serveWithCache(args: ServeArgs): Promise<ServeResult> {
  const now = args.now !== undefined ? args.now() : Date.now();
  const key = args.bucket + "/" + args.key;
  const since = args.since ?? args.cache.epoch;
  // (a miss's lookup and its fill's purge generations wait on Redis within one operation_timeout_ms;
  // nothing to count, and no object per hit, without a shared layer)
  const wait: SharedWait | undefined = args.cache.shared ? { ms: 0 } : undefined;
  const found = args.cache.get(key, args.trace, wait, args.policy, now);
  if (!isFresh(found, now)) return serveSlow(args, key, now, found, since, wait);
  try {
    return Promise.resolve({ response: hit(args.cache, args.bucket, found, args.reqHeaders, args.method, now), cacheStatus: "HIT", upstreamCalls: 0, passthrough: false });
  } catch (err) {
    return Promise.reject(err);
  }
}

async function serveSlow(args: ServeArgs, key: string, now: number, found: MaybePromise<CachedObject | undefined>, since: number, wait: SharedWait | undefined): Promise<ServeResult> {
  const { cache, method, reqHeaders } = args;
  const counters = cache.counter(args.bucket);
  // (a stale entry of the first layer, answered synchronously: a lower layer may hold a fresh one)
  const fromFirst = found === undefined || isPromise(found) ? found : cache.below(key, found, args.trace, wait, args.policy, now);
  const obj = isPromise(fromFirst) ? await fromFirst : fromFirst;

  if (obj !== undefined && now < obj.expiresAt) {
    counters.hits++;
    if (obj.source !== undefined) cache.countLowerHit(obj.source);
    return { response: respondFromObject(obj, reqHeaders, method, now, "HIT"), cacheStatus: "HIT", upstreamCalls: 0, passthrough: false };
  }

  // A streaming fill of the key in progress: follow it from its file (a Range too) instead of
  // going upstream. A purge detaches it (Cache.detachFlights), so no request joins it afterwards.
  const fill = cache.fills.get(key);
  if (fill !== undefined) {
    const followed = await followFill(args, fill, 0, now, true);
    if (followed !== undefined) return followed;
    if (fill.state === "complete") {
      // Its file was being renamed into place: once committed, the object is a hit.
      await fill.ended;
      return serveSlow(args, key, now, cache.get(key, args.trace, wait, args.policy, now), since, wait);
    }
  }

  // A request for a stored answer only (only-if-cached, RFC 9111 §5.2.1.7) with none fresh here:
  // 504, the store not asked (it was asked, and the answer stored, as for any miss); a miss, with
  // its X-Cache and counted as one (it had neither: the access line's cache said `-`).
  const cacheControl = reqHeaders.get("cache-control") ?? "";
  if (ONLY_IF_CACHED.test(cacheControl)) {
    counters.misses++;
    throw withCacheStatus(new ProxyError("GatewayTimeout", { detail: ONLY_IF_CACHED_MISS }), "MISS");
  }

  // A Range S3 would honour (a single byte range) on a miss is not worth a full fill: pass it
  // through (a HEAD's too: S3's HeadObject answers a Range with 206, see respondFromObject).
  const ranged = parseRange(reqHeaders.get("range"), Number.MAX_SAFE_INTEGER).kind !== "none";
  const flight = joinableFlight(cache, key, now);
  if (obj === undefined && ranged && flight === undefined) return goUpstream(args, 0);
  // A request that says no-store: nothing of its answer may be stored (RFC 9111 §5.2.1.5, a MUST),
  // so with no fill to join it is passed through (a miss filled the cache with it, a stale entry
  // was revalidated and kept). A fresh entry still answers it (serving stores nothing).
  if (flight === undefined && NO_STORE.test(cacheControl)) return goUpstream(args, 0);

  // The bucket's store failing its revalidations (StaleHold): a stale entry is answered at once
  // while another request asks the store (the probe, or this key's flight); else this one probes.
  const hold = obj !== undefined ? args.policy.staleHold : undefined;
  // (a client refusing a stale answer, no-cache or max-age=0, takes the path below: the store's word or its failure)
  if (hold?.down === true && (hold.probing || flight !== undefined) && !refusesStale(args.reqHeaders, now - obj!.expiresAt) && (await staleServable(cache, obj!, args.policy.staleIfErrorSeconds!, now))) {
    return finish(args, { shared: { kind: "object", obj: obj!, status: "STALE" } }, 0, ranged, now);
  }

  let outcome: FlightOutcome | undefined;
  let calls = 0;
  let head: FillHead | undefined;
  try {
    if (flight !== undefined) {
      counters.coalesced++;
      head = method === "HEAD" ? heads.get(flight) : undefined;
      const o = head === undefined ? await untilClientGone(flight, args.signal) : await headFirst(flight, head, args.signal);
      outcome = o === undefined ? undefined : { shared: o.shared };
    } else {
      head = new FillHead();
      const p: Promise<FlightOutcome> = runFlight(cache, key, obj, args.policy, args.upstream, now, since, wait, head);
      heads.set(p, head);
      // (left once its object is stored: until then a miss joins it, the object in no layer yet)
      const leave = () => {
        if (cache.inflight.get(key) === p) cache.inflight.delete(key);
      };
      if (hold?.down === true && !hold.probing) {
        hold.probing = true;
        const probed = () => void (hold.probing = false);
        p.then(probed, probed);
      }
      p.then((o) => {
        if (o.stored === undefined) return leave();
        answered.set(p, o);
        void o.stored.then(leave);
      }, leave);
      // Joinable only if its key was not purged since this request was admitted: a request held
      // (by its authorizer, say) across a write or a reload that repointed its bucket reads what
      // the purge dropped, and no request admitted after the purge may get it. (A purge later on
      // detaches the flight: Cache.detachFlights.)
      if (!cache.purgedSince(since, key)) cache.inflight.set(key, p);
      calls = 1;
      outcome = method === "HEAD" ? await headFirst(p, head, args.signal) : await untilClientGone(p, args.signal);
    }
  } catch (err) {
    counters.misses++; // the upstream error (thrown) reaches the leader and every waiter alike
    throw withCacheStatus(err, "MISS");
  }
  if (outcome === undefined) {
    // A HEAD answered from the fill's head, its body still arriving (FillHead).
    counters.misses++;
    const { meta, replica } = head!.meta(key);
    return { response: respondFromFill(meta, NO_BODY, reqHeaders, method, now), cacheStatus: "MISS", upstreamCalls: calls, passthrough: false, replica };
  }
  return finish(args, outcome, calls, ranged, now);
}

/** The FillHead of each flight serveSlow started (a HEAD that joins reads it). */
const heads = new WeakMap<Promise<FlightOutcome>, FillHead>();
/** respondFromFill's body for a HEAD, which never reads one. */
const NO_BODY = (): ReadableStream<Uint8Array> => new ReadableStream();
const noop = () => {};

/**
 * A HEAD's wait on a flight: its outcome, or undefined as soon as the fill's head is read (the
 * headers are all a HEAD answers; the flight goes on for the others and the cache).
 */
function headFirst(p: Promise<FlightOutcome>, head: FillHead, signal: AbortSignal | undefined): Promise<FlightOutcome | undefined> {
  const outcome = untilClientGone(p, signal);
  const headRead = head.read().then(() => {
    outcome.catch(noop); // (the flight's own end is no longer this request's)
    return undefined;
  });
  return Promise.race([outcome, headRead]);
}

/** The outcomes of the flights that answered and stay joinable while their object is stored (Cache.put). */
const answered = new WeakMap<Promise<FlightOutcome>, FlightOutcome>();

/**
 * The key's flight to join, unless it answered already and its object is stale by `now`: kept
 * joinable until the shared layer took the object (its store's deadline, and its turn behind
 * others'), which can outlast the object's freshness (a 1 s max-age, a no-cache one at once), and
 * a request that came then was answered that copy as if fresh, never revalidated (RFC 9111 §4).
 * That flight leaves the table (its store goes on); the request makes its own. (A request that
 * joined while the flight was under way takes its answer, whatever its freshness, as before.)
 */
function joinableFlight(cache: Cache, key: string, now: number): Promise<FlightOutcome> | undefined {
  const flight = cache.inflight.get(key);
  const done = flight === undefined ? undefined : answered.get(flight);
  if (done === undefined || done.shared.kind !== "object" || now < done.shared.obj.expiresAt) return flight;
  cache.inflight.delete(key);
  return undefined;
}

/**
 * The flight's outcome, or the client's abort reason as soon as its client goes away: the flight
 * goes on for its other waiters and the cache (it has its own deadline), but the request that
 * left is answered (logged as ClientClosedRequest) now, not when the fill ends. A drain cut short
 * (shutdown_timeout, a second signal) waits for in-flight requests only briefly: a request held
 * by a slow fill had no access line at all. A leader's own stream that arrives after its client
 * left is cancelled, as a client leaving mid-body cancels it.
 */
function untilClientGone(p: Promise<FlightOutcome>, signal: AbortSignal | undefined): Promise<FlightOutcome> {
  if (signal === undefined) return p;
  const drop = (o: FlightOutcome) => void o.stream?.body?.cancel().catch(() => {});
  if (signal.aborted) {
    p.then(drop, () => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<FlightOutcome>((resolve, reject) => {
    const gone = () => {
      p.then(drop, () => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", gone, { once: true });
    p.then(
      (o) => {
        signal.removeEventListener("abort", gone);
        resolve(o);
      },
      (err) => {
        signal.removeEventListener("abort", gone);
        reject(err);
      },
    );
  });
}

async function finish(args: ServeArgs, outcome: FlightOutcome, calls: number, ranged: boolean, now: number): Promise<ServeResult> {
  const counters = args.cache.counter(args.bucket);
  let shared: Shared = outcome.shared;
  if (shared.kind === "object" && shared.failed !== undefined && refusesStale(args.reqHeaders, now - shared.obj.expiresAt)) {
    // (the failure this client asked not to have hidden: as with stale_if_error_seconds off)
    if ("error" in shared.failed) {
      counters.misses++;
      throw withCacheStatus(shared.failed.error, "MISS");
    }
    shared = await shared.failed.replay;
  }
  if (shared.kind === "object") {
    if (shared.status === "REVALIDATED") counters.revalidated++;
    else if (shared.status === "STALE") counters.stale++;
    else counters.misses++;
    const response = respondFromObject(shared.obj, args.reqHeaders, args.method, now, shared.status);
    return { response, cacheStatus: shared.status, upstreamCalls: calls, passthrough: false, replica: shared.replica };
  }
  if (shared.kind === "replay") {
    counters.misses++;
    const body = args.method === "HEAD" ? null : shared.body;
    const response = new Response(body, { status: shared.status, headers: shared.headers });
    return { response, cacheStatus: "MISS", upstreamCalls: calls, passthrough: true, replica: shared.replica };
  }
  const stream = outcome.stream;
  if (shared.kind === "fill" && (stream === undefined || ranged)) {
    // A waiter (or a ranged leader, whose stream drains into the file) follows the fill.
    void stream?.body?.cancel();
    const followed = await followFill(args, shared.tap, calls, now, false); // a waiter was counted as coalesced when it joined
    if (followed !== undefined) return followed;
  }
  // bypass: only a non-ranged leader can use the stream it holds; everyone else asks upstream itself.
  if (stream === undefined || ranged) {
    void stream?.body?.cancel();
    return goUpstream(args, calls);
  }
  // A streaming fill is a miss that fills the cache; otherwise the object just passed through.
  const status: CacheStatus = outcome.filling === true ? "MISS" : "BYPASS";
  if (outcome.filling === true) counters.misses++;
  else counters.bypassed++;
  const v = { etag: stream.headers.get("etag") ?? undefined, lastModified: stream.headers.get("last-modified") ?? undefined };
  const cond = stream.status === 200 ? evaluateConditions(args.reqHeaders, v, args.method, now) : "proceed";
  if (cond !== "proceed" || args.method === "HEAD") void stream.body?.cancel();
  if (cond === "precondition-failed") throw new ProxyError("PreconditionFailed", { headers: { "x-cache": status } });
  if (cond === "not-modified") {
    const h: Record<string, string> = {};
    stream.headers.forEach((value, name) => (h[name.toLowerCase()] = value));
    return { response: notModified(h, undefined, status), cacheStatus: status, upstreamCalls: calls, passthrough: false };
  }
  const response = args.method === "HEAD" ? new Response(null, { status: stream.status, headers: stream.headers }) : stream;
  return { response, cacheStatus: status, upstreamCalls: calls, passthrough: true };
}

/**
 * A miss answered from a streaming fill in progress: headers from the fill's stored metadata, the
 * body read from its file as it is written (fill-tap.ts). MISS, counted as a miss, and as
 * coalesced with `joined` (a request that found the fill; not one that waited on the flight,
 * already counted). Undefined when the fill cannot be followed any more (it
 * failed, was purged, or its file cannot be read): the caller takes the normal path.
 */
async function followFill(args: ServeArgs, tap: FillTap, calls: number, now: number, joined: boolean): Promise<ServeResult | undefined> {
  const { cache, method } = args;
  const key = tap.meta.key;
  if (!tap.joinable || cache.purgedSince(tap.since, key)) return undefined;
  let cursor: FillCursor | undefined;
  if (method === "GET") {
    cursor = await tap.follow();
    if (cursor === undefined) return undefined;
  }
  const counters = cache.counter(args.bucket);
  counters.misses++;
  if (joined) counters.coalesced++;
  let following = false;
  try {
    const response = respondFromFill(tap.meta, (start, end) => {
      following = true;
      // A disk error meanwhile: the rest from the upstream (fill-tap.ts).
      return followerBody(cursor!, start, end, tap, resumeThrough(args.upstream, tap.meta));
    }, args.reqHeaders, method, now);
    return { response, cacheStatus: "MISS", upstreamCalls: calls, passthrough: false, following, replica: tap.replica };
  } finally {
    if (!following) cursor?.close();
  }
}

/** Cache-Control's no-store directive (a list member, any case). */
const NO_STORE = /(?:^|,)\s*no-store\s*(?:,|$)/i;
/** Cache-Control's only-if-cached directive (a list member, any case). */
const ONLY_IF_CACHED = /(?:^|,)\s*only-if-cached\s*(?:,|$)/i;
/** A request's Cache-Control directives that bear on a stale answer (RFC 9111 §5.2.1). */
const STALE_REFUSALS = /(?:^|,)\s*(no-cache|max-age|min-fresh|max-stale)\s*(?:=\s*"?(\d*)"?)?\s*(?=,|$)/gi;

/**
 * Whether a request refuses an answer `staleMs` past its freshness (STALE; RFC 9111 §5.2.1): its
 * Cache-Control says no-cache (validation required), max-age or min-fresh without max-stale (no
 * stale response wanted), or max-stale=N with the answer more than N seconds stale; with no
 * Cache-Control, `Pragma: no-cache` counts as no-cache (§5.4). Read only when a STALE answer is due.
 */
function refusesStale(h: Headers, staleMs: number): boolean {
  const cc = h.get("cache-control");
  if (cc === null) return /(?:^|,)\s*no-cache\s*(?:,|$)/i.test(h.get("pragma") ?? "");
  let fresh = false;
  let maxStale: number | undefined;
  for (const [, name, value] of cc.matchAll(STALE_REFUSALS)) {
    const n = name!.toLowerCase();
    if (n === "no-cache") return true;
    if (n === "max-stale") maxStale = value === undefined || value === "" ? Infinity : Number(value);
    else fresh = true;
  }
  return maxStale !== undefined ? staleMs > maxStale * 1000 : fresh;
}

/** Sends the request upstream with the client's range/conditional headers; nothing is stored. */
async function goUpstream(args: ServeArgs, callsSoFar: number): Promise<ServeResult> {
  args.cache.counter(args.bucket).bypassed++;
  const res = await args.upstream(forwardRequestHeaders(args.reqHeaders), args.signal ?? new AbortController().signal).catch((err: unknown) => {
    throw withCacheStatus(err, "BYPASS");
  });
  let response = res;
  if (args.method === "HEAD") {
    void res.body?.cancel();
    response = new Response(null, { status: res.status, headers: res.headers });
  }
  return { response, cacheStatus: "BYPASS", upstreamCalls: callsSoFar + 1, passthrough: true };
}

/**
 * `err` (a ProxyError) with the X-Cache of the answer it becomes, as every answer of a cached bucket
 * has one (the access line's `cache` is read from it): an upstream that gave no answer (refused,
 * reset, timed out) was counted as a miss or a bypass, while its 502/504 and its access line said
 * nothing. One the cache set already (a 412/416 answered from an entry) is kept.
 */
export function withCacheStatus(err: unknown, status: string): unknown {
  if (err instanceof ProxyError && err.headers?.["x-cache"] === undefined) (err as { headers: Record<string, string> | undefined }).headers = { ...err.headers, "x-cache": status };
  return err;
}

/** Re-exported for callers that want the object behind a key without serving it (admin, tests). */
export type { CachedObject };
