/**
 * One upstream trip on behalf of every request waiting for the same key: a fill (no stored entry)
 * or a revalidation (stale entry, sent with its validators). Its `shared` result is what all the
 * coalesced requests get; `stream` is for the leader only (a body too big to share): when it is
 * written to disk as it streams, the others follow it from the file (`fill`, fill-tap.ts).
 */
import { wholeRangeOf200 } from "../http/range.ts";
import { readErrorPrefix } from "../s3/errors.ts";
import { isRetryableStatus } from "../limits/retry.ts";
import { replicaOf } from "../s3/replicas.ts";
import { ProxyError } from "../errors.ts";
import { parseHttpDate } from "../http/conditional.ts";
import { cappedTtl, freshnessSeconds, makeObject, mergeHeaders, pickHeaders, storedTimes, upstreamDate } from "./freshness.ts";
import type { Cache } from "./cache.ts";
import { FillTap, resumeThrough } from "./fill-tap.ts";
import { teeToWriter, watchStalls } from "./stream-fill.ts";
import { isFileBody, type CachedObject, type FillToken, type LayerWriter, type ObjectMeta, type SharedWait } from "./types.ts";

/**
 * Performs the signed GET of the object to S3 with exactly `extraHeaders` as its conditional/range
 * request headers — never the client's own Range / If-* headers: the cache decides what to forward.
 *
 * The contract (BucketUpstream.fetchObject keeps it): resolves with S3's final response, after
 * retries, for ANY HTTP status (404 and 403 included, body unread); rejects only when no HTTP
 * answer was had (network error, timeout, breaker open, client abort), with a ProxyError. Must not
 * decompress (Bun fetch `decompress: false`), so the stored bytes match the stored Content-Encoding.
 *
 * `signal`: a fill's own (its deadline, see runFlight), or the client's for a request that goes
 * upstream on its own (bypass). Abort the request, body included, when it fires.
 *
 * A response marked with capFreshness (freshness.ts: an answer from a secondary replica) is stored,
 * or refreshed by its 304, for that many seconds at most.
 */
export type UpstreamFetch = (extraHeaders: Record<string, string>, signal: AbortSignal) => Promise<Response>;

export interface CachePolicy {
  /** Bucket `cache.ttl_seconds` (used when upstream sends no max-age / s-maxage). */
  ttlSeconds?: number | undefined;
  /** Global `cache.memory.default_ttl_seconds`. */
  defaultTtlSeconds: number;
  /** Bodies larger than this are streamed through and never stored. */
  maxItemBytes: number;
  /**
   * Bodies up to this are buffered (and shared with coalesced waiters); larger ones, up to
   * maxItemBytes, are written to a streaming layer (disk) while they stream to the first client.
   * Default: maxItemBytes.
   */
  bufferBytes?: number | undefined;
  /**
   * A fill that buffers must be complete within this (ms): coalesced waiters depend on it, so an
   * upstream that stalls mid-body must not hang them. Default: no deadline.
   */
  fillTimeoutMs?: number | undefined;
  /**
   * A bucket with replicas: each replica's attempt within a fill gets its own s3 timeout plus this
   * long (ms, the buffered body at 1 MiB/s), and a replica that takes longer is that replica's
   * failure, the next one asked (fillTimeoutMs then covers every replica's share). Without it the
   * fill's deadline cut the failover short: a primary sending slowly but steadily was never failed
   * over from (504 every time). The replica's own timeout, not the bucket's: a replica given a
   * longer one was cut short of it, its copy replaced by the next replica's. Default: none.
   */
  fillBodyMs?: number | undefined;
  /** A streamed body (bypass, streaming fill) is aborted when one read waits longer than this (ms). Default: never. */
  stallTimeoutMs?: number | undefined;
  /**
   * Bucket `cache.stale_if_error_seconds` (else the cache section's): how long past its expiry a
   * stale entry answers (STALE) when its revalidation fails (staleOnError). Absent: never.
   */
  staleIfErrorSeconds?: number | undefined;
  /** With staleIfErrorSeconds: whether the bucket's store is failing its revalidations (StaleHold). */
  staleHold?: StaleHold | undefined;
}

/**
 * A bucket's store while it fails revalidations (stale_if_error_seconds): once one failed in a way
 * that qualifies (staleOnError), the bucket's stale entries are answered STALE at once (serve.ts),
 * without asking the store, while one revalidation at a time (the probe, its client waiting for it)
 * still asks it; the first answer that is not such a failure, from any fill or revalidation of the
 * bucket, ends it. Per process and per config (a reload starts afresh).
 */
export class StaleHold {
  /** The store's last word on a revalidation was a failure that qualifies. */
  down = false;
  /** A revalidation asks the store while it is down: the bucket's other stale requests do not. */
  probing = false;
}

/** A failed revalidation answered STALE: what it threw, or its 5xx as a replay (read while STALE is answered). */
type StaleFailure = { error: unknown } | { replay: Promise<Shared> };

export type Shared =
  /**
   * A 200 (fill) or 304 (revalidation) turned into an object every waiter can be served from; stored
   * unless no-store/private. STALE: the stale entry itself, its revalidation failed (staleOnError),
   * nothing stored; `failed`, with STALE: the failure itself, answered to a request whose
   * Cache-Control refuses a stale answer (serve.ts refusesStale).
   */
  | { kind: "object"; obj: CachedObject; status: "MISS" | "REVALIDATED" | "STALE"; replica?: string | undefined; failed?: StaleFailure | undefined }
  /** Upstream answered something other than 200/304 (404, 403, 5xx...): replayed to every waiter, never stored. */
  | { kind: "replay"; status: number; headers: [string, string][]; body: Blob; replica?: string | undefined }
  /** Body too big to buffer: each request goes upstream on its own (the leader may use `stream`). */
  | { kind: "bypass" }
  /** Body too big to buffer, written to disk as it streams to the leader: the others follow it from the file. */
  | { kind: "fill"; tap: FillTap };

export interface FlightOutcome {
  shared: Shared;
  /** Leader only, with `bypass`: upstream's 200, its body still streaming. */
  stream?: Response | undefined;
  /** Leader only: `stream` is also being written to a streaming layer (disk): a miss that fills. */
  filling?: boolean;
  /**
   * The store of `shared`'s object while it waits for the shared layer's verdict (Cache.put): the
   * object is in no layer until then, so the flight stays joinable (serve.ts). Without it, a miss
   * arriving after the fill answered and before Redis took the object (a large one: the whole
   * value sent first) went upstream again.
   */
  stored?: Promise<void> | undefined;
}

/** Error bodies bigger than this are not buffered for replay (S3's are a few hundred bytes). */
const MAX_REPLAY_BYTES = 64 * 1024;

function validatorsOf(obj: CachedObject): Record<string, string> {
  const etag = obj.headers.etag;
  if (etag !== undefined) return { "if-none-match": etag };
  const lm = obj.headers["last-modified"];
  return lm !== undefined ? { "if-modified-since": lm } : {};
}

/**
 * Whether a 304 does not confirm the stored response: it names another ETag (RFC 9111 §4.3.4: a
 * 304 whose validator matches no stored response updates none; a broken or racing upstream's 304
 * for a newer version had the old bytes served under the new ETag), or another Last-Modified (an
 * object rewritten since, with the same ETag).
 */
function notTheStoredResponse(stale: CachedObject, fresh: Headers): boolean {
  const etag = fresh.get("etag");
  const stored = stale.headers.etag;
  if (etag !== null && stored !== undefined && etag.trim() !== stored.trim()) return true;
  const now = fresh.get("last-modified");
  const then = stale.headers["last-modified"];
  if (now === null || then === undefined || now === then) return false;
  const a = parseHttpDate(now);
  const b = parseHttpDate(then);
  return Number.isNaN(a) || Number.isNaN(b) ? true : a !== b;
}

/**
 * Whether a stale entry's body can still be read: a file-backed one (disk layer) is a lazy slice of
 * its file, which the layer unlinks at once when it evicts, replaces or purges the entry. Its layer
 * is asked again (its hit checks the file's length and identity): a file only checked to exist,
 * cut short while the upstream was asked, was sent as a 200 of fewer bytes (Bun sends a file
 * slice's bytes that are left, with their own Content-Length).
 */
async function bodyKept(cache: Cache, stale: CachedObject): Promise<boolean> {
  if (!isFileBody(stale.body)) return true;
  const name = (stale.body as Blob & { name: string }).name;
  const layer = stale.source === undefined ? undefined : cache.layer(stale.source);
  if (layer === undefined) return Bun.file(name).exists().catch(() => false);
  const now = await Promise.resolve(layer.get(stale.key)).catch(() => undefined);
  return now !== undefined && (now.body as Blob & { name?: string }).name === name;
}

/** Cache-Control directives under which a stored answer is never served stale (RFC 9111 §5.2.2.2, .4, .8, .10). */
const NEVER_STALE = /(?:^|,)\s*(?:must-revalidate|proxy-revalidate|no-cache|s-maxage)\s*(?:[=,]|$)/i;
/** Cache-Control's stale-if-error=N (RFC 5861 §4), its delta-seconds. */
const STALE_IF_ERROR = /(?:^|,)\s*stale-if-error\s*=\s*"?(\d+)"?\s*(?:,|$)/i;

/** Whether `failure` (what the upstream call threw, or its answer) is the store failing to answer: no answer (refused, reset, timed out, the breaker open), or 500, 502, 503 (SlowDown included), 504. */
function storeFailed(failure: unknown): boolean {
  return isRetryableStatus(failure instanceof Response ? failure.status : failure instanceof ProxyError ? failure.status : 0);
}

/**
 * Whether `stale` answers in place of a failed revalidation (`failure`): only a failure of the store
 * to answer about the object (storeFailed: never 501, or a 403/404/412, which is the store's word on
 * the object), which also marks the bucket's store down (StaleHold); and only while staleServable.
 */
async function staleOnError(cache: Cache, stale: CachedObject, policy: CachePolicy, failure: unknown, now: number): Promise<boolean> {
  if (policy.staleIfErrorSeconds === undefined || !storeFailed(failure)) return false;
  if (policy.staleHold !== undefined) policy.staleHold.down = true;
  return staleServable(cache, stale, policy.staleIfErrorSeconds, now);
}

/**
 * Whether `stale` may be answered STALE: only within `windowSeconds` past its expiry, the smaller of
 * that and the stored Cache-Control's stale-if-error=N; never when that Cache-Control forbids a stale
 * answer (must-revalidate, proxy-revalidate, no-cache, s-maxage); and only while its body can still
 * be read (bodyKept).
 */
export async function staleServable(cache: Cache, stale: CachedObject, windowSeconds: number, now: number): Promise<boolean> {
  const cc = stale.headers["cache-control"] ?? "";
  if (NEVER_STALE.test(cc)) return false;
  const asked = STALE_IF_ERROR.exec(cc);
  const seconds = asked === null ? windowSeconds : Math.min(windowSeconds, Number(asked[1]));
  if (now >= stale.expiresAt + seconds * 1000) return false;
  return bodyKept(cache, stale);
}

/** `obj`, kept (keepUntil) for the bucket's stale_if_error_seconds past its expiry. */
function kept(obj: CachedObject, policy: CachePolicy): CachedObject {
  if (policy.staleIfErrorSeconds !== undefined) obj.keepUntil = obj.expiresAt + policy.staleIfErrorSeconds * 1000;
  return obj;
}

/**
 * The stale entry as every waiter's answer (STALE), kept as it is: neither stored again nor dropped;
 * with the failure (`failed`: thrown, or the 5xx as a replay) for a waiter who refuses a stale answer.
 */
function staleAnswer(stale: CachedObject, failed: StaleFailure): Fetched {
  return { shared: { kind: "object", obj: stale, status: "STALE", failed } };
}

/** An upstream error answer as a replay: its body's first 64 KiB (readErrorPrefix), its status the answer. */
async function replayOf(res: Response): Promise<Shared> {
  const { raw, whole } = await readErrorPrefix(res);
  const headers = new Headers(res.headers);
  if (!whole) headers.delete("content-length");
  return { kind: "replay", status: res.status, headers: [...headers], body: new Blob([raw]), replica: replicaOf(res) };
}

/** Reads at most `limit` bytes; past that, hands back a stream that replays what was read, then the rest. */
async function readUpTo(body: ReadableStream<Uint8Array>, limit: number): Promise<Blob | ReadableStream<Uint8Array>> {
  const reader = body.getReader();
  let chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return new Blob(chunks);
    chunks.push(value);
    total += value.byteLength;
    if (total > limit) break;
  }
  return new ReadableStream<Uint8Array>({
    start(c) {
      for (const chunk of chunks) c.enqueue(chunk);
      chunks = [];
    },
    async pull(c) {
      const { done, value } = await reader.read();
      if (done) c.close();
      else c.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/**
 * Runs the upstream trip; stores what may be stored (unless a purge happened meanwhile).
 * `since`: the purge-log point of the request that starts it, taken when it was admitted (see
 * ServeArgs.since); a purge of the key after that point leaves the result unstored. Default: now.
 * `wait`: what the request's lookup waited on the shared layer, which the purge generations' read
 * shares (fillToken).
 */
export async function runFlight(
  cache: Cache,
  key: string,
  stale: CachedObject | undefined,
  policy: CachePolicy,
  upstream: UpstreamFetch,
  now: number,
  since?: number,
  wait?: SharedWait,
  head?: FillHead,
): Promise<FlightOutcome> {
  const epoch = since ?? cache.epoch;
  // The purge generations before upstream is asked: what it answers is stored only if they hold.
  const t = cache.fillToken(key, wait);
  const token = t instanceof Promise ? await t : t;
  // The fill's own deadline: it does not die with the client that started it.
  const controller = new AbortController();
  const stalled = () => controller.abort(new ProxyError("GatewayTimeout", { detail: "The upstream stalled while sending the object" }));
  const timer = policy.fillTimeoutMs !== undefined ? setTimeout(stalled, policy.fillTimeoutMs) : undefined;
  try {
    const out = await fetchAndShare(cache, key, stale, policy, upstream, now, { since: epoch, token }, controller.signal, head);
    const stream = out.stream;
    if (out.live === true && stream?.body) {
      // A body streamed to one client (and maybe to disk) is paced by that client: the deadline
      // no longer applies, a stalled read does.
      clearTimeout(timer);
      const tap = out.shared.kind === "fill" ? out.shared.tap : undefined;
      const resume = tap !== undefined ? resumeThrough(upstream, tap.meta) : undefined;
      const body = out.writer ? teeToWriter(stream.body, out.writer, out.size ?? -1, policy.stallTimeoutMs, stalled, tap, resume) : watchStalls(stream.body, policy.stallTimeoutMs, stalled);
      if (tap !== undefined && tap.joinable && !cache.purgedSince(epoch, key)) {
        // From now on a miss for the key follows this fill (until it is over or the key is purged).
        cache.fills.set(key, tap);
        tap.onEnd = () => {
          if (cache.fills.get(key) === tap) cache.fills.delete(key);
        };
      }
      return { shared: out.shared, stream: new Response(body, { status: stream.status, headers: stream.headers }), filling: out.writer !== undefined };
    }
    return { shared: out.shared, stream, stored: out.stored };
  } finally {
    clearTimeout(timer);
  }
}

/** A 200's stored metadata (its picked headers, Content-Length `size`), as a fill's file or a HEAD's answer has it before the body. */
function metaOf(key: string, res: Response, size: number, now: number, ttl: number | null): ObjectMeta {
  const headers = pickHeaders(res.headers);
  headers["content-length"] = String(size);
  return { key, headers, ...storedTimes(headers, now, ttl), date: upstreamDate(res.headers), size };
}

/**
 * The head of a buffered fill's 200 (a declared length within the buffer), once read, while its
 * body is still arriving: a HEAD waiting on the fill needs nothing more, and was answered only once
 * the body was in (a body that stalled gave it the fill's 504). Set by fetchAndShare, read by
 * serve.ts's HEADs (the leader's and those that join it).
 */
export class FillHead {
  private res: Response | undefined;
  private size = 0;
  private now = 0;
  private ttl: number | null = null;
  private wake: (() => void) | undefined;
  private waiting: Promise<void> | undefined;

  reached(res: Response, size: number, now: number, ttl: number | null): void {
    this.res = res;
    this.size = size;
    this.now = now;
    this.ttl = ttl;
    this.wake?.();
  }

  /** Resolves once the head is read (at once when it is). */
  read(): Promise<void> {
    if (this.res !== undefined) return Promise.resolve();
    return (this.waiting ??= new Promise<void>((resolve) => (this.wake = resolve)));
  }

  /** The head as the fill would store it (after read()), and the replica that sent it. */
  meta(key: string): { meta: ObjectMeta; replica: string | undefined } {
    const res = this.res!;
    return { meta: metaOf(key, res, this.size, this.now, this.ttl), replica: replicaOf(res) };
  }
}

interface Fetched extends FlightOutcome {
  /** `stream` still reads from the upstream connection (not a body already in memory). */
  live?: boolean;
  /** With `stream`: where its body is written while it streams (streaming fill), and its declared length. */
  writer?: LayerWriter | undefined;
  size?: number;
}

async function fetchAndShare(
  cache: Cache,
  key: string,
  stale: CachedObject | undefined,
  policy: CachePolicy,
  upstream: UpstreamFetch,
  now: number,
  fill: { since: number; token: FillToken | undefined },
  signal: AbortSignal,
  head: FillHead | undefined,
): Promise<Fetched> {
  const epoch = fill.since;
  let res: Response;
  try {
    res = await upstream(stale !== undefined ? validatorsOf(stale) : {}, signal);
  } catch (err) {
    if (stale !== undefined && (await staleOnError(cache, stale, policy, err, now))) return staleAnswer(stale, { error: err });
    throw err;
  }
  if (res.status >= 500 && stale !== undefined && (await staleOnError(cache, stale, policy, res, now))) {
    const replay = replayOf(res);
    replay.catch(() => {}); // (awaited only by a request refusing a stale answer)
    return staleAnswer(stale, { replay });
  }
  // (the store answered: a hold on its bucket's stale entries ends)
  if (policy.staleHold?.down === true && !storeFailed(res)) policy.staleHold.down = false;
  const bufferBytes = Math.min(policy.bufferBytes ?? policy.maxItemBytes, policy.maxItemBytes);

  if (res.status === 304 && stale !== undefined && (notTheStoredResponse(stale, res.headers) || !(await bodyKept(cache, stale)))) {
    // Another ETag: the 304 is not for the stored bytes; they are asked for again, whole.
    // The same ETag, a later Last-Modified: the object was rewritten with the same bytes (S3's
    // CopyObject onto itself with new metadata keeps a single-part object's ETag). A 304 carries
    // none of what changed (Content-Type, Content-Disposition, x-amz-meta-*): it is asked again,
    // whole, and stored as a fill.
    // Or the stale copy's file (disk layer) was evicted or purged while upstream was asked: the
    // 304 confirms bytes this process no longer has, so they are asked for again, whole
    // (RFC 9111 §4.3.4: a cache without the stored response makes a request without validators).
    void res.body?.cancel();
    res = await upstream({}, signal);
  }

  if (res.status === 304 && stale !== undefined) {
    void res.body?.cancel();
    const headers = mergeHeaders(stale.headers, res.headers);
    // A 304 from a secondary replica (capFreshness) refreshes the entry for its short bound only.
    const ttl = cappedTtl(freshnessSeconds(headers["cache-control"] ?? null, policy.ttlSeconds, policy.defaultTtlSeconds, { expires: headers.expires, date: res.headers.get("date"), now }), res);
    // (its Date, as a 304 updates the stored answer's; the stored one when it sent none)
    const date = upstreamDate(res.headers);
    // (0, none sent, when an earlier release's entry had none either: one kept from now on, storedExpiry)
    const obj = kept(makeObject(key, stale.body, headers, now, ttl, date === 0 ? (stale.date ?? 0) : date), policy);
    if (ttl === null) void cache.delete(key);
    const stored = ttl !== null && !cache.purgedSince(epoch, key) ? cache.put(obj, fill) : undefined;
    return { shared: { kind: "object", obj, status: "REVALIDATED", replica: replicaOf(res) }, stored };
  }

  if (res.status !== 200) {
    if (res.status === 404 && stale !== undefined) void cache.delete(key); // deleted upstream
    const len = Number(res.headers.get("content-length") ?? 0);
    if (len > MAX_REPLAY_BYTES) return { shared: { kind: "bypass" }, stream: res, live: true };
    if (res.status < 300 || res.body === null) {
      const body = await res.blob();
      return { shared: { kind: "replay", status: res.status, headers: [...res.headers], body, replica: replicaOf(res) } };
    }
    // An error's body is waited for only so long (readErrorPrefix): its status is the answer. (A
    // long Content-Length never sent held the fill until its deadline: 504 instead of a 404.)
    return { shared: await replayOf(res) };
  }

  // A 200 with a Content-Range for part of the object is not the object: never stored (see respond()).
  wholeRangeOf200(res);
  // A stale entry this 200 replaces without being stored itself (no-store, private, too big for
  // every layer) is dropped: it is of an object the upstream no longer has, and lingered (in
  // memory and in the shared layers) until evicted, asked about again by every request.
  const superseded = <T>(out: T): T => {
    if (stale !== undefined) void cache.delete(key);
    return out;
  };
  // An answer from a secondary replica is stored for its short bound only (capFreshness), in every layer.
  const ttl = cappedTtl(freshnessSeconds(res.headers.get("cache-control"), policy.ttlSeconds, policy.defaultTtlSeconds, { expires: res.headers.get("expires"), date: res.headers.get("date"), now }), res);
  const declared = res.headers.get("content-length");
  let body: Blob;
  if (declared !== null) {
    const size = Number(declared);
    if (size > bufferBytes) {
      // Too big to buffer: a streaming layer (disk) may take it while it streams to this client
      // (not when its key was purged since the request began: it would not be kept).
      if (ttl !== null && size <= policy.maxItemBytes && res.body !== null && !cache.purgedSince(epoch, key)) {
        const meta = metaOf(key, res, size, now, ttl);
        const writer = cache.openWriter(meta, epoch, fill.token);
        if (writer !== undefined) {
          const tap = writer.file !== undefined ? new FillTap(meta, epoch, writer.file) : undefined;
          if (tap !== undefined) tap.replica = replicaOf(res);
          const shared: Shared = tap !== undefined ? { kind: "fill", tap } : { kind: "bypass" };
          return { shared, stream: res, live: true, writer, size };
        }
      }
      return superseded({ shared: { kind: "bypass" }, stream: res, live: true });
    }
    // (a HEAD waiting on this fill has what it needs: it is answered now, not once the body is in, FillHead)
    head?.reached(res, size, now, ttl);
    body = await res.blob();
    if (body.size !== Number(declared)) {
      // Not the body Content-Length announced (a HEAD sent instead of a GET, or a decoded body):
      // never store or share it; the leader gets what came, the others ask upstream themselves.
      return { shared: { kind: "bypass" }, stream: new Response(body, { status: 200, headers: res.headers }) };
    }
  } else if (res.body === null) {
    body = new Blob([]);
  } else {
    const read = await readUpTo(res.body, bufferBytes);
    if (!(read instanceof Blob)) {
      return superseded({ shared: { kind: "bypass" }, stream: new Response(read, { status: 200, headers: res.headers }), live: true });
    }
    body = read;
  }
  const obj = kept(makeObject(key, body, pickHeaders(res.headers), now, ttl, upstreamDate(res.headers)), policy);
  const shared: Fetched = { shared: { kind: "object", obj, status: "MISS", replica: replicaOf(res) } };
  if (ttl === null || body.size > bufferBytes) return superseded(shared);
  if (!cache.purgedSince(epoch, key)) shared.stored = cache.put(obj, fill);
  return shared;
}
