/**
 * The cache's data model and the one interface every storage layer implements.
 *
 * A layer only stores and finds objects; freshness, coalescing, conditionals and ranges live in the
 * serving flow (serve.ts), so a disk or Redis layer can be added to `cache_layers` without touching
 * the request path.
 */

import type { FillFile } from "./fill-tap.ts";
import { isObjectHeader, UNPASSED_OBJECT_LOCK_HEADERS } from "../http/headers.ts";
import { quotedEtag } from "../http/conditional.ts";

/**
 * The stored body is a Blob, not a Uint8Array, on purpose (measured on Bun 1.4.5):
 * `new Response(uint8array)` copies the bytes (≈0.9 ms for 10 MiB, ≈300 ns for 1 KiB) while
 * `new Response(blob)` shares them (≈0.3 µs, ≈130 ns), and `blob.slice()` is a zero-copy view for
 * ranges. It also lets a disk layer return `Bun.file(path)` (a Blob) so responses keep
 * Content-Length and go out with sendfile, with no change to the serving code.
 */
export type CachedBody = Blob;

export interface CachedObject {
  /** `bucket + "/" + objectKey`. */
  key: string;
  body: CachedBody;
  /**
   * Lower-case names; only the headers worth replaying: etag, last-modified, content-type,
   * content-length (always = body size), cache-control, content-disposition, content-encoding,
   * content-language, expires, x-amz-meta-*.
   */
  headers: Record<string, string>;
  /** Epoch ms when the object was stored or last revalidated (Age is measured from it). */
  storedAt: number;
  /** Epoch ms after which the object must be revalidated before use. */
  expiresAt: number;
  /**
   * Epoch ms of the upstream answer's Date (its own clock), 0 when it sent none or an invalid one:
   * If-Range takes Last-Modified as strong only a second or more before it, as for an uncached
   * answer. Undefined in an entry written before it was kept (storedAt stands in, as it did).
   */
  date?: number | undefined;
  /** Body size in bytes. */
  size: number;
  /**
   * Epoch ms until which a layer that drops entries at their expiry (Redis, its PX) keeps this one:
   * expiresAt plus the bucket's stale_if_error_seconds, so that a stale copy is there to answer
   * while the store fails. Undefined: until expiresAt.
   */
  keepUntil?: number | undefined;
  /**
   * Derived per-process data (prebuilt response headers), filled lazily by the serving code.
   * Layers must not persist it; a layer that returns fresh objects simply rebuilds it.
   */
  tpl?: HitTemplate | undefined;
  /**
   * The layer that handed the object out, when not the memory layer (X-Cache-Layer of a HIT, the
   * per-layer hit counters). Not persisted; a promoted copy has none.
   */
  source?: "disk" | "redis" | undefined;
}

/** The stored part of an object before its body exists: what a streaming fill knows up front. */
export type ObjectMeta = Omit<CachedObject, "body" | "tpl" | "source">;

/** Prebuilt Headers of a HIT: the 200's for one value of Age (rebuilt at most once a second), and a 206 base. */
export interface HitTemplate {
  age: number;
  headers: Headers;
  /** Headers of a 304 for the same Age (built on first use). */
  notModified: Headers | undefined;
  /** Stored headers + Accept-Ranges + X-Cache, without Content-Length/Age: copied for each 206. */
  rangeBase: Headers | undefined;
}

export interface BucketLayerStats {
  items: number;
  bytes: number;
  evictions: number;
}

export interface LayerStats extends BucketLayerStats {
  maxBytes: number;
  /** Keyed by bucket name (the part of the key before the first "/"). */
  buckets: Record<string, BucketLayerStats>;
}

export type MaybePromise<T> = T | Promise<T>;

/**
 * A body being written to a layer while it streams to the first client (disk). `write` resolves
 * once the chunk is handed to the file; `commit` makes the object visible only when exactly
 * `meta.size` bytes were written; `abort` discards it. Either may be called once.
 */
export interface LayerWriter {
  write(chunk: Uint8Array): Promise<void>;
  /** Resolves true when the object was stored. */
  commit(): Promise<boolean>;
  abort(): void;
  /** The file the body goes to, when the layer writes one (disk): requests may follow the fill from it (fill-tap.ts). */
  readonly file?: FillFile | undefined;
}

/** An invalidation another process published (Redis layer) that local layers must apply. */
export type RemoteInvalidation = { kind: "key"; key: string } | { kind: "prefix"; prefix: string };

/** What /ready and the metrics show of a layer that can be unavailable (Redis). */
export interface LayerHealth {
  up: boolean;
  state: string;
  reason?: string | undefined;
}

/**
 * What one request has waited on the shared layer (Redis) so far, in ms: its lookup and its fill's
 * purge-generation read (fillToken) share one operation_timeout_ms.
 */
export interface SharedWait {
  ms: number;
}

export interface CacheLayer {
  readonly name: string;
  /**
   * Synchronous when the layer can be (memory): the hot path then has no extra await. A shared layer
   * adds its wait to `wait`. `maxBytes`: the bucket's largest item; a layer that can tell an entry's
   * size before reading it (Redis's large entries) refuses a larger one unread.
   */
  get(key: string, wait?: SharedWait, maxBytes?: number): MaybePromise<CachedObject | undefined>;
  /** Stores or replaces. A layer may refuse (too big); it never throws for that. */
  put(obj: CachedObject): MaybePromise<void>;
  delete(key: string): MaybePromise<boolean>;
  /** Removes every key starting with `prefix` ("" = everything); returns how many. */
  purgePrefix(prefix: string): MaybePromise<number>;
  stats(): LayerStats;
  /** Optional: new capacity (bytes) and item limit (bytes) after a config reload; evicts down. */
  resize?(maxBytes: number, maxItemBytes?: number): void;
  /** Whether put() would keep an object of `size` body bytes with that key and headers (promotion reads a body only for layers that want it). */
  accepts?(size: number, key: string, headers: Readonly<Record<string, string>>): boolean;
  /** True when the layer stores file-backed bodies itself (disk); other layers are given bytes in memory. */
  readonly storesFiles?: boolean;
  /** A streaming writer for an object too big to buffer, or undefined when the layer won't take it. */
  openWriter?(meta: ObjectMeta): LayerWriter | undefined;
  /** Shared layers (Redis): where invalidations published by other processes are delivered. */
  onRemoteInvalidation?(handler: (inv: RemoteInvalidation) => void | Promise<unknown>): void;
  health?(): LayerHealth;
  /** Errors met so far (counted in yatagarasu_cache_layer_errors_total). */
  errors?(): number;
  /** Releases files, connections and timers (shutdown). */
  close?(): MaybePromise<void>;
  /** Settles when the layer is ready to serve, or has given up waiting for its service (a bounded wait: Redis). */
  started?(): Promise<void>;
  /**
   * Layers that outlive the process (disk, Redis): the buckets that cache and the stamps of the
   * stores they read (cacheStores), after a reload; what they store from now on is stamped with them.
   */
  setStores?(stores: ReadonlyMap<string, string>): void;
  /**
   * A shared layer that keeps per-key purge generations (Redis): read when a fill begins, before
   * the upstream request; undefined when it cannot be read (the layer is down) or not within what
   * is left of the request's wait (`wait`, the lookup's).
   */
  fillToken?(key: string, wait?: SharedWait): MaybePromise<FillToken | undefined>;
  /**
   * Stores `obj` (with `store`; else only checks) only if no purge of its key, bucket or of
   * everything reached the layer since `token` was read, in one atomic step. True: unchanged
   * (stored when asked); false: purged meanwhile (store the fill nowhere); undefined: unknown
   * (the layer failed or is down).
   */
  putIf?(obj: ObjectMeta & { body?: Blob }, token: FillToken, store: boolean): Promise<boolean | undefined>;
}

/** What a fill read of the purge generations when it began (opaque outside the layer). */
export type FillToken = readonly string[];

/**
 * A layer whose entries outlive the process (disk), brought up to date by the Redis layer at
 * start: its restored entries are not served until the purges it missed are applied (release) or,
 * when those cannot be known, the entries are dropped.
 */
export interface StreamCheckpoint {
  /** Entries restored from an earlier process and still held (waits for the index). */
  restoredCount(): Promise<number>;
  /**
   * The purge-stream position the restored entries are up to date with, if known, and the life of
   * the stream it was read in (undefined: written by an earlier version).
   */
  loadPosition(stream: string): { id: string; epoch: string | undefined } | undefined;
  /** Records that every purge up to `id` of the stream's life `epoch` is applied (written to disk later, throttled). */
  savePosition(stream: string, id: string, epoch: string): void;
  /** Drops the restored entries (purges were missed that can no longer be known). */
  dropRestored(): Promise<unknown>;
  /** The catch-up is done: restored entries may be served. */
  release(): void;
}

/** True for a Blob backed by a file (Bun.file or a slice of one): it must not be held by a memory layer. */
export function isFileBody(body: Blob): boolean {
  return typeof (body as { name?: unknown }).name === "string";
}

/** Bucket name of a cache key. */
export function bucketOf(key: string): string {
  const i = key.indexOf("/");
  return i < 0 ? key : key.slice(0, i);
}

/**
 * Whether stored headers can be answered: a value with CR/LF or NUL, a name that is no token or a
 * character above U+00FF (bytes edited by hand or damaged in a layer that outlives the process)
 * made every hit of the entry a 500 (new Headers throws when the answer is built). So must each
 * name be one the cache stores (isObjectHeader, and the body's Content-Length): an entry written
 * under the layer's names by another process (a client of the same Redis, of the same folder) with
 * Set-Cookie, Location or Access-Control-Allow-Origin had them sent with every hit. Such an entry
 * is corrupt: a miss, and deleted.
 */
export function headersCanBeAnswered(headers: Record<string, string>): boolean {
  for (const name in headers) if (name !== "content-length" && !isObjectHeader(name)) return false;
  try {
    new Headers(headers);
    return true;
  } catch {
    return false;
  }
}

/**
 * The headers of an entry read from a layer that outlives the process (disk file head, Redis
 * entry: `raw`, parsed JSON), or undefined when they make it corrupt (a value that is no string,
 * headersCanBeAnswered). The Object Lock headers a release before 2026-12-07 stored are dropped
 * here, once per entry read (a disk file's at the index rebuild), never per hit: no reader may
 * see them (UNPASSED_OBJECT_LOCK_HEADERS), and such entries were served with them until their TTL.
 */
export function storedEntryHeaders(raw: object): Record<string, string> | undefined {
  const headers: Record<string, string> = {};
  for (const [k, val] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof val !== "string") return undefined;
    // (an ETag a release before 2026-12-07 stored bare, as a store sent it: quoted as it is now stored)
    if (!UNPASSED_OBJECT_LOCK_HEADERS.has(k)) headers[k] = k === "etag" ? quotedEtag(val) : val;
  }
  return headersCanBeAnswered(headers) ? headers : undefined;
}

/**
 * When an entry read from a layer that outlives the process must next be revalidated: at once for
 * one without the upstream's Date (CachedObject.date), which only releases before 2026-12-07 wrote:
 * they stored answers with `Vary: *` (the stored headers do not keep Vary), which no stored answer
 * may be reused for (RFC 9111 §4.1), and such entries were served as HITs until their TTL. Its
 * revalidation (a conditional GET, 304 when unchanged) drops it when the answer says `Vary: *`
 * (cappedTtl) and otherwise stores the Date, fresh again from then on.
 */
export function storedExpiry(storedAt: number, expiresAt: number, date: number | undefined): number {
  return date === undefined && expiresAt > storedAt ? storedAt : expiresAt;
}
