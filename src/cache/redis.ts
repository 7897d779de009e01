/**
 * The Redis layer: a cache shared by every replica, and the channel through which a purge made on
 * one replica reaches the memory and disk layers of all the others.
 *
 * - An object is one key (redis-format.ts) with a Redis TTL equal to its remaining freshness:
 *   Redis expires it exactly when this proxy would have to revalidate it. A large one (1 MiB and
 *   more) is a stub under that key and the entry beside it: a lookup reads the stub over the
 *   shared connection and the entry over a connection of its own (getBulk), so a slow large read
 *   neither holds up the small lookups nor marks the layer down.
 * - A purge deletes the keys (SCAN + UNLINK for a bucket or everything), appends the invalidation
 *   to a capped stream (<prefix>invalidations) and PUBLISHes it on <prefix>invalidate (with
 *   `:db<n>` after it for a database other than 0: pub/sub spans a server's databases). Every
 *   replica's subscribed connection receives it at once and drops the key or prefix from its own
 *   layers (Cache.applyRemote). The stream is how a replica that was cut off from Redis catches up
 *   when it reconnects; if it missed more than the stream holds, it drops its local layers whole.
 * - While Redis is unreachable, purges are applied locally and queued (bounded; past the bound,
 *   everything under the prefix is purged on return), then replayed and published when it is back.
 *   A purge Redis refuses while reachable (a full Redis with noeviction refuses XADD) is still
 *   PUBLISHed to the replicas connected now, logged, queued, and retried on a timer.
 * - Purge generations: a key's purge sets <prefix>gen:k:<key> to a new value in the same script
 *   as its DEL (a bucket's purge gen:b:<bucket>, any other prefix gen:all, before its UNLINKs). A
 *   fill reads the three before it asks upstream (fillToken) and stores (putIf) only if they are
 *   unchanged, atomically with the SET; the Cache puts it into the local layers only after that.
 *   So a fill that began before a write stores nothing once the write's purge reached Redis.
 *   Writes of the last few seconds are also deleted again when an invalidation covering them
 *   arrives (a fill that began while Redis was down stores into no shared layer).
 * - At the first connection the stream is replayed from the disk layer's saved position (its
 *   entries survived a restart and are held until then; dropped when the position is missing or
 *   was trimmed away) or from START_SKEW_MS before this process started; the position advances
 *   with every purge seen (StreamCheckpoint, written by the disk layer). A position is saved with
 *   the stream's life (epoch: STREAM_LIFE), made at the first connection of any replica and lost
 *   with the stream: when Redis lost its data (or the stream), the next catch-up of every replica
 *   finds another life than its position's, running or restarted, and empties its local layers
 *   (the purges of the lost life are unknown), whether or not a stream was created again since.
 *   A stream that went back in the same life (Redis restored from an older snapshot, an AOF that
 *   lost its last second, a failover to a lagging replica: its last id below the position) lost
 *   the purges after it, and the objects they deleted may be back in Redis: the replica that sees
 *   it purges every object in Redis (gen:all too), gives the stream a new life and announces the
 *   purge; every replica empties its local layers.
 * - Each entry records the store it was read from (its bucket's stamp, `stores`); an entry of
 *   another store (the bucket was repointed on every replica across a restart, or replicas of a
 *   rolling change disagree) or with none (an earlier version's) is a miss, not an error: left
 *   for the replicas it is right for, or its TTL, and replaced by the next fill here.
 * - Failure is not an outage: reads and writes are skipped while the link is down (redis-link.ts).
 */
import { PurgeLog } from "./purge-log.ts";
import { BULK_BYTES, BULK_SUFFIX, decodeEntry, encodeEntry, encodeStub, idAfter, matchPrefix, OTHER_STORE, stubLength } from "./redis-format.ts";
import { RedisLink, redisDatabase, RedisUnavailable, type LinkLogger } from "./redis-link.ts";
import { RedisTimeout, withTimeout } from "../util/redis-wait.ts";
import { bucketOf, type CachedObject, type CacheLayer, type FillToken, type LayerHealth, type LayerStats, type ObjectMeta, type RemoteInvalidation, type SharedWait, type StreamCheckpoint } from "./types.ts";

export interface RedisLayerOptions {
  url: string;
  keyPrefix: string;
  maxItemBytes: number;
  connectTimeoutMs: number;
  operationTimeoutMs: number;
  log?: LinkLogger;
  /** Reconnect backoff bounds (tests shorten them). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** The subscribed connection's PING period and deadline (redis-link.ts; tests shorten them). */
  subscriptionCheckMs?: number;
  subscriptionTimeoutMs?: number;
  /** How often the run-id key is read (RUN_ID_TOUCH_MS; tests shorten it). */
  runIdTouchMs?: number;
  /**
   * The buckets that cache here, with their store's stamp (CacheDeps.stores): stamped into each
   * entry stored, and an entry is served only with its bucket's stamp (redis-format.ts).
   * Undefined: nothing stamped or checked.
   */
  stores?: ReadonlyMap<string, string> | undefined;
}

/**
 * What an entry holds besides its body (redis-format.ts): its magic, the metadata JSON (its key,
 * the stored headers of an upstream head of at most 64 KiB, escaped), generously.
 */
const ENTRY_META_BYTES = 256 * 1024;
/** Entries kept in the invalidation stream (approximately: MAXLEN ~). */
const STREAM_MAXLEN = 10_000;
const PENDING_LIMIT = 1000;
/** Our own SETs are remembered this long, to be deleted again by an invalidation that covers them. */
const RECENT_MS = 10_000;
const RECENT_LIMIT = 10_000;
const SCAN_COUNT = "1000";
/** Retry backoff of purges Redis refused while connected. */
const REPLAY_MIN_MS = 250;
const REPLAY_MAX_MS = 10_000;
/** At close (shutdown), the longest wait for the purges still under way or queued. */
const CLOSE_FLUSH_MS = 2_000;

/**
 * How long a purge generation lives: a fill that began before the purge and stores after this
 * would not see it (buffered fills have a deadline far below; see fillTimeoutMs).
 */
const GEN_TTL_MS = 3_600_000;
/** At the first connection, purges published this long before the process started are applied too (clock skew between hosts). */
const START_SKEW_MS = 60_000;

/**
 * Stores (or, with an empty value, only checks) when the three generations (everything, bucket,
 * key) are those the fill read when it began. KEYS: gen all, gen bucket, gen key, object, its
 * large entry's key; ARGV: the three generations read ("" = none), value, PX, the stub ("" for a
 * value stored under the object's key: redis-format.ts). A generation of another type (another
 * program's key) is none, as MGET reads it (fillToken): its WRONGTYPE failed every fill's store
 * for as long as it lived; a purge replaces it with a string.
 */
const STORE_IF = `for i = 1, 3 do
  local g = redis.pcall('GET', KEYS[i])
  if type(g) == 'table' and g.err then
    if string.sub(g.err, 1, 10) ~= 'WRONGTYPE ' then return redis.error_reply(g.err) end
    g = nil
  end
  if (g or '') ~= ARGV[i] then return 0 end
end
if ARGV[4] ~= '' then
  if ARGV[6] ~= '' then
    redis.call('SET', KEYS[5], ARGV[4], 'PX', ARGV[5])
    redis.call('SET', KEYS[4], ARGV[6], 'PX', ARGV[5])
  else
    redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[5])
    redis.call('UNLINK', KEYS[5])
  end
end
return 1`;
/**
 * An entry's time to live in Redis (PX, ms): until its expiry, or `stale_if_error_seconds` past it
 * (keepUntil). Capped at 2^53-1 ms (~285,000 years): a ttl_seconds and a stale_if_error_seconds
 * each near their config bound add up past what Redis takes (a signed 64-bit time), and the SET
 * was refused, the entry never stored.
 */
function pxOf(obj: { keepUntil?: number | undefined; expiresAt: number }): number {
  return Math.min(Math.floor((obj.keepUntil ?? obj.expiresAt) - Date.now()), Number.MAX_SAFE_INTEGER);
}

/** A large entry and its stub (KEYS: object, large entry; ARGV: value, stub, PX). */
const SET_BULK = `redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])`;
/**
 * The purge stream's life (KEYS: the stream; ARGV: "epoch:<uuid>" for a new life): made sure to
 * exist, with a consumer group named by its epoch (a group lives and dies with its stream, so a
 * stream Redis lost and that was created again, or one created by an XADD after a loss, gets a new
 * epoch; the group is never read from). Another program's key of another type there (its
 * WRONGTYPE kept the layer down for as long as it lived) is replaced: a new life. Returns the
 * epoch, then the stream's XINFO fields the catch-up needs: last-generated-id, entries-added,
 * length, first-entry (its id, "" when empty).
 */
const STREAM_LIFE = `local s = KEYS[1]
local g = redis.call('EXISTS', s) == 1 and redis.pcall('XINFO', 'GROUPS', s)
if type(g) == 'table' and g.err and string.sub(g.err, 1, 10) == 'WRONGTYPE ' then redis.call('DEL', s) end
if redis.call('EXISTS', s) == 0 then redis.call('XGROUP', 'CREATE', s, ARGV[1], '$', 'MKSTREAM') end
local epoch
for _, g in ipairs(redis.call('XINFO', 'GROUPS', s)) do
  for i = 1, #g - 1, 2 do
    local n = g[i + 1]
    if g[i] == 'name' and string.sub(n, 1, 6) == 'epoch:' and (epoch == nil or n < epoch) then epoch = n end
  end
end
if epoch == nil then
  redis.call('XGROUP', 'CREATE', s, ARGV[1], '$')
  epoch = ARGV[1]
end
local info = redis.call('XINFO', 'STREAM', s)
local r = {epoch, '0-0', '', '', ''}
for i = 1, #info - 1, 2 do
  local k, v = info[i], info[i + 1]
  if k == 'last-generated-id' then r[2] = v
  elseif k == 'entries-added' then r[3] = tostring(v)
  elseif k == 'length' then r[4] = tostring(v)
  elseif k == 'first-entry' and v then r[5] = v[1] end
end
return r`;
/**
 * A new life for a stream that went back (KEYS: the stream; ARGV: the life seen, "epoch:<uuid>"
 * for the new one): while the life seen is still the stream's, its epoch groups are replaced by
 * the new one (another replica that saw the same rollback may have done it first: left alone).
 */
const NEW_LIFE = `local s = KEYS[1]
if redis.call('EXISTS', s) == 0 then return 0 end
local names = {}
local seen = false
for _, g in ipairs(redis.call('XINFO', 'GROUPS', s)) do
  for i = 1, #g - 1, 2 do
    if g[i] == 'name' and string.sub(g[i + 1], 1, 6) == 'epoch:' then
      names[#names + 1] = g[i + 1]
      if g[i + 1] == ARGV[1] then seen = true end
    end
  end
end
if not seen then return 0 end
for _, n in ipairs(names) do redis.call('XGROUP', 'DESTROY', s, n) end
redis.call('XGROUP', 'CREATE', s, ARGV[2], '$')
return 1`;
/**
 * A key's purge: a new generation and the DEL (of the object and its large entry) in one step (a
 * fill's conditional store lands before both or sees the new generation). The deletes come first:
 * a full Redis (maxmemory, noeviction) refuses a script's first write that needs memory but not
 * the ones after a write (SET_GEN). The generation was refused there while the DEL went through,
 * and the memory it freed took a fill that began before the purge: its stale object, served to
 * every replica.
 */
const PURGE_KEY = `redis.call('UNLINK', KEYS[3])
local n = redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return n`;
/**
 * A bucket's (or everything's) new generation (KEYS: its key; ARGV: value, PX), set even in a full
 * Redis: a script that has written (the DEL) may go on writing past maxmemory, and refused, the
 * purge's UNLINKs freed memory for the stale store of a fill that began before it (PURGE_KEY).
 */
const SET_GEN = `redis.call('DEL', KEYS[1])
return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])`;

/**
 * A purge's announcement (KEYS: the stream; ARGV: MAXLEN, origin, kind, value, channel): its
 * stream entry and its message in one step, so that the messages go out in the stream's order.
 * Sent apart, a later purge's message could come first: a replica that heard it and lost Redis
 * before the earlier one's message caught up from past both, and served what the earlier one purged.
 */
const ANNOUNCE = `local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'o', ARGV[2], 'k', ARGV[3], 'v', ARGV[4])
redis.call('PUBLISH', ARGV[5], cjson.encode({ id = id, o = ARGV[2], k = ARGV[3], v = ARGV[4] }))
return id`;

const noop = () => {};
/** A key no object has (a bucket name never ends in a slash): read at each connection (resync). */
const PROBE_KEY = "probe//";
/** A refused store is logged at most this often (storeRefused). */
const STORE_REFUSAL_LOG_MS = 30_000;
/** How often the run-id key is read (kept recently used, see checkRestart). */
const RUN_ID_TOUCH_MS = 30_000;

/** Redis's refusal of a command on another program's key of another type. */
function wrongType(err: unknown): boolean {
  return /^WRONGTYPE /.test((err as { message?: string }).message ?? "");
}

function matches(inv: RemoteInvalidation, key: string): boolean {
  return inv.kind === "key" ? inv.key === key : key.startsWith(inv.prefix);
}

export class RedisLayer implements CacheLayer {
  readonly name = "redis";
  private readonly link: RedisLink;
  /** Who published an invalidation (a process ignores its own). */
  private readonly origin = crypto.randomUUID();
  private readonly objPrefix: string;
  /** STRLEN before a large entry's GET (getBulk); off once Redis refuses it to this user (NOPERM). */
  private strlenAllowed = true;
  private readonly channel: string;
  private readonly stream: string;
  private readonly purges = new PurgeLog();
  private readonly recent = new Map<string, number>();
  private pending: RemoteInvalidation[] = [];
  private pendingOverflow = false;
  /** Purges whose commands are still running (close() lets them finish). */
  private readonly underway = new Set<Promise<void>>();
  /** The last invalidation-stream id seen (published or received). */
  private lastSeen: string | undefined;
  /** The life of the stream lastSeen is a position in (STREAM_LIFE), once known. */
  private epoch: string | undefined;
  private handler: ((inv: RemoteInvalidation) => void | Promise<unknown>) | undefined;
  private maxItemBytes: number;
  private readonly operationTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private corrupt = 0;
  private readonly log: LinkLogger | undefined;
  /** Purges refused while the link is up: retried on this timer (refused). */
  private refusing = false;
  /** When a store's refusal was last logged (storeRefused). */
  private storeRefusalLogged = -Infinity;
  private replayTimer: ReturnType<typeof setTimeout> | undefined;
  private replayDelayMs = REPLAY_MIN_MS;
  private readonly genPrefix: string;
  /** Where the Redis server's run_id was last seen (checkRestart). */
  private readonly runIdKey: string;
  /** The run_id recorded at the last (re)connection, and the timer that keeps its key from eviction. */
  private runId: string | undefined;
  private runIdTimer: ReturnType<typeof setInterval> | undefined;
  private readonly runIdTouchMs: number;
  private readonly startedAt = Date.now();
  /** The first catch-up (checkpoint or start of the process) is done. */
  private synced = false;
  /** A layer whose entries outlive the process (disk): caught up at the first connection. */
  private checkpoint: StreamCheckpoint | undefined;
  /** RedisLayerOptions.stores; a reload sets them (setStores). */
  private stores: ReadonlyMap<string, string> | undefined;

  constructor(opts: RedisLayerOptions) {
    this.stores = opts.stores;
    this.objPrefix = opts.keyPrefix + "obj:";
    // Pub/sub is server-wide, keys are per database: deployments on one Redis in different
    // databases (the same key_prefix) must not hear each other's purges (a foreign stream id
    // would also set this replica's catch-up position into a stream it does not read).
    const db = redisDatabase(opts.url);
    this.channel = opts.keyPrefix + "invalidate" + (db > 0 ? `:db${db}` : "");
    this.stream = opts.keyPrefix + "invalidations";
    this.genPrefix = opts.keyPrefix + "gen:";
    this.runIdKey = opts.keyPrefix + "run-id";
    this.runIdTouchMs = opts.runIdTouchMs ?? RUN_ID_TOUCH_MS;
    this.maxItemBytes = opts.maxItemBytes;
    this.operationTimeoutMs = opts.operationTimeoutMs;
    this.connectTimeoutMs = opts.connectTimeoutMs;
    this.log = opts.log;
    this.link = new RedisLink({
      url: opts.url,
      connectTimeoutMs: opts.connectTimeoutMs,
      operationTimeoutMs: opts.operationTimeoutMs,
      channel: this.channel,
      onMessage: (m) => this.onMessage(m),
      onUp: () => this.resync(),
      log: opts.log,
      minBackoffMs: opts.minBackoffMs,
      maxBackoffMs: opts.maxBackoffMs,
      subscriptionCheckMs: opts.subscriptionCheckMs,
      subscriptionTimeoutMs: opts.subscriptionTimeoutMs,
    });
  }

  onRemoteInvalidation(handler: (inv: RemoteInvalidation) => void | Promise<unknown>): void {
    this.handler = handler;
  }

  /** After a reload: the caching buckets and their stores (what is stamped and served from now on). */
  setStores(stores: ReadonlyMap<string, string>): void {
    this.stores = stores;
  }

  /** The stamp `key`'s entry must carry here (undefined: not checked; null: the bucket does not cache here). */
  private storeOf(key: string): string | null | undefined {
    return this.stores === undefined ? undefined : (this.stores.get(bucketOf(key)) ?? null);
  }

  /** The disk layer to bring up to date at the first connection (set before it connects: Cache's constructor). */
  setCheckpoint(cp: StreamCheckpoint): void {
    this.checkpoint = cp;
  }

  /** Generation keys: everything, the key's bucket, the key. */
  private genKeys(key: string): string[] {
    return [this.genPrefix + "all", this.genPrefix + "b:" + bucketOf(key), this.genPrefix + "k:" + key];
  }

  /**
   * `wait`: the request's lookup waited that long for Redis already; the read gets what is left of
   * operation_timeout_ms (then the fill stores in the local layers only). Each given the whole
   * timeout, a Redis answering just under it held a miss twice as long before it went upstream.
   * The command itself keeps its own deadline (a late answer counts against the link as any).
   */
  fillToken(key: string, wait?: SharedWait): Promise<FillToken | undefined> | undefined {
    if (!this.link.up) return undefined;
    const left = this.operationTimeoutMs - (wait?.ms ?? 0);
    if (left <= 0) return undefined;
    const read = this.link.run("MGET", (c) => c.send("MGET", this.genKeys(key)) as Promise<(string | null)[]>).then(
      (v) => v.map((g) => g ?? ""),
      () => undefined,
    );
    return wait === undefined || wait.ms <= 0 ? read : withTimeout(read, left, "MGET").catch(() => undefined);
  }

  async putIf(obj: ObjectMeta & { body?: Blob }, token: FillToken, store: boolean): Promise<boolean | undefined> {
    if (!this.link.up) return undefined;
    let value: Uint8Array | string = "";
    let ttl = 0;
    if (store && obj.body !== undefined && this.accepts(obj.size)) {
      ttl = pxOf(obj);
      if (ttl >= 1) value = encodeEntry(obj as CachedObject, new Uint8Array(await obj.body.arrayBuffer()), this.storeOf(obj.key) ?? undefined);
      ttl = pxOf(obj);
      if (ttl < 1) value = "";
    }
    if (value !== "") this.remember(obj.key);
    const k = this.objPrefix + obj.key;
    const stub = value.length >= BULK_BYTES ? encodeStub(value.length) : "";
    try {
      const r = await this.link.runStore("EVAL", value.length, (c) => c.send("EVAL", [STORE_IF, "5", ...this.genKeys(obj.key), k, k + BULK_SUFFIX, ...token, value as string, String(ttl), stub]));
      return Number(r) === 1;
    } catch (err) {
      this.storeRefused(err);
      return undefined;
    }
  }

  /**
   * A store Redis refused with the link up (an error reply: a full Redis, maxmemory with
   * noeviction, refuses every write; NOREPLICAS): the layer still serves what Redis holds but
   * shares no new object, which only yatagarasu_cache_layer_errors_total said (a purge's refusal
   * was logged, a store's never). Logged at most every STORE_REFUSAL_LOG_MS: a Redis at its
   * maxmemory, under it whenever keys expire, refuses some stores and takes others.
   */
  private storeRefused(err: unknown): void {
    if (!this.link.up || (err as { code?: string }).code !== "ERR_REDIS_SERVER_ERROR") return;
    const now = performance.now();
    if (now - this.storeRefusalLogged < STORE_REFUSAL_LOG_MS) return;
    this.storeRefusalLogged = now;
    this.log?.warn("redis cache layer refused to store an object: objects it refuses are not shared through Redis (the local layers keep them)", {
      reason: (err instanceof Error ? err.message : String(err)).slice(0, 200),
      errors: this.errors(),
    });
  }

  accepts(size: number): boolean {
    return this.link.up && size <= this.maxItemBytes;
  }

  /**
   * Undefined at once while the link is down: a request never waits for a Redis that is known to be
   * away. The wait for the GET is added to `wait` (fillToken); a large entry's own read is not (it
   * has a deadline of its own).
   */
  get(key: string, wait?: SharedWait, maxBytes?: number): CachedObject | undefined | Promise<CachedObject | undefined> {
    if (!this.link.up) return undefined;
    const k = this.objPrefix + key;
    const sent = wait === undefined ? 0 : performance.now();
    return this.link.run("GET", (c) => c.getBuffer(k)).then(
      (value) => {
        if (wait !== undefined) wait.ms += performance.now() - sent;
        if (value === null) return undefined;
        const length = stubLength(value);
        const limit = Math.min(maxBytes ?? this.maxItemBytes, this.maxItemBytes) + ENTRY_META_BYTES;
        // An entry larger than any this bucket stores here, written whole or behind a stub that
        // says so: a miss, its entry never read (a stub's). Trusted, a forged or damaged one
        // (written under key_prefix by another client) had its entry read whatever its size, up
        // to Redis's 512 MB, into this process, for every lookup of the key. Not deleted, nor
        // counted as corrupt: a replica sharing this Redis with a larger max_item_size_mb (a
        // rolling change of it) wrote it, and serves it. (A stub claiming less than its entry
        // holds is corrupt: getBulk.)
        if (length === undefined) return value.byteLength > limit ? undefined : this.decode(key, value);
        if (length > limit) return undefined;
        return this.getBulk(key, length, limit);
      },
      () => {
        if (wait !== undefined) wait.ms += performance.now() - sent;
        return undefined;
      },
    );
  }

  /**
   * A large entry, over a connection of its own within a deadline scaled with its length: its
   * failure is this lookup's miss, the link stays up (redis-link.ts runBulk). Read apart from its
   * stub, it may be a later fill's, as whole (a purge deletes both; a miss when gone). One past
   * `limit` is corrupt as its stub would have been: a stub claiming less than its entry holds (a
   * forged one) had the entry served whatever its size. Its length is asked first (STRLEN, on
   * the same connection): the GET of one past `limit` had the whole of it, up to Redis's 512 MB,
   * read into this process (within the deadline its stub's length gave) before it was found too
   * large. (Bun's client gives bytes for GET only, not GETRANGE; one round trip more per large read.)
   */
  private getBulk(key: string, length: number, limit: number): Promise<CachedObject | undefined> {
    const k = this.objPrefix + key + BULK_SUFFIX;
    const read = async (c: Bun.RedisClient): Promise<Uint8Array | null | "too large"> => {
      if (this.strlenAllowed) {
        try {
          if ((await c.strlen(k)) > limit) return "too large";
        } catch (err) {
          // A user made with an ACL line from before STRLEN was used (no +strlen): read as before
          // (the GET's deadline bounds it), rather than every large entry being a miss.
          if (!/NOPERM/i.test(String((err as Error)?.message))) throw err;
          this.strlenAllowed = false;
        }
      }
      return c.getBuffer(k);
    };
    return this.link.runBulk("read", "GET", length, read).then(
      (value) => (value === null ? undefined : value === "too large" || value.byteLength > limit ? this.corruptEntry(key) : this.decode(key, value)),
      () => undefined,
    );
  }

  private decode(key: string, value: Uint8Array): CachedObject | undefined {
    const obj = decodeEntry(value, key, this.storeOf(key));
    if (typeof obj !== "string") return obj;
    if (obj === OTHER_STORE) return undefined; // another store's (or an earlier version's): a miss, that a fill replaces
    return this.corruptEntry(key);
  }

  /** A corrupt entry: counted, deleted (with its large entry), a miss. */
  private corruptEntry(key: string): undefined {
    this.corrupt++;
    const k = this.objPrefix + key;
    this.link.run("DEL", (c) => c.send("UNLINK", [k, k + BULK_SUFFIX])).catch(noop);
    return undefined;
  }

  async put(obj: CachedObject): Promise<void> {
    if (!this.accepts(obj.size)) return;
    const since = this.purges.now;
    const body = new Uint8Array(await obj.body.arrayBuffer());
    const ttl = pxOf(obj);
    // Expired (nothing to share, nor kept for stale_if_error_seconds), or purged while the body was read.
    if (ttl < 1 || this.purges.purgedSince(since, obj.key)) return;
    this.remember(obj.key);
    const value = encodeEntry(obj, body, this.storeOf(obj.key) ?? undefined);
    const k = this.objPrefix + obj.key;
    const set = (c: Bun.RedisClient) => (value.length >= BULK_BYTES ? c.send("EVAL", [SET_BULK, "2", k, k + BULK_SUFFIX, value as unknown as string, encodeStub(value.length), String(ttl)]) : c.set(k, value, "PX", ttl));
    await this.link.runStore("SET", value.length, set).then(
      // A large value goes over a connection of its own: a purge sent meanwhile may have reached
      // Redis first (one that arrives after this is answered deletes it again: remember()).
      () => (this.purges.purgedSince(since, obj.key) ? this.link.run("DEL", (c) => c.send("UNLINK", [k, k + BULK_SUFFIX])) : undefined),
      (err) => this.storeRefused(err),
    ).catch(noop);
  }

  /**
   * A write's answer waits for this: its commands (the purge, then its announcement: ANNOUNCE)
   * share one operation_timeout_ms, and what is not done by then goes on behind it (queued
   * if it fails). Each given the whole timeout, a Redis answering just under it held every write
   * three times as long.
   */
  async delete(key: string): Promise<boolean> {
    this.purges.key(key);
    return (await this.invalidate({ kind: "key", key }, this.operationTimeoutMs)) > 0;
  }

  /**
   * An admin purge's answer and a reload wait for this: bounded likewise (its generation, scan,
   * unlinks and announcement each had the whole timeout, without bound on the scan's rounds: a
   * slow Redis held them for seconds); the count is what was deleted by then, the rest goes on.
   */
  purgePrefix(prefix: string): Promise<number> {
    this.purges.prefix(prefix);
    return this.invalidate({ kind: "prefix", prefix }, this.operationTimeoutMs);
  }

  resize(_maxBytes: number, maxItemBytes: number = this.maxItemBytes): void {
    this.maxItemBytes = maxItemBytes;
  }

  /** Redis holds the shared entries; their count and size are Redis's (INFO), not this process's. */
  stats(): LayerStats {
    return { items: 0, bytes: 0, evictions: 0, maxBytes: 0, buckets: {} };
  }

  /**
   * Start-up waits for this before it listens: the first connection (and its catch-up) within
   * connect_timeout_ms + operation_timeout_ms, so the first requests are served from a warm Redis
   * instead of missing it while it connects. A Redis that does not come up by then is skipped.
   */
  started(): Promise<void> {
    return withTimeout(this.link.firstAttempt, this.connectTimeoutMs + this.operationTimeoutMs, "start").catch(noop);
  }

  health(): LayerHealth {
    return { up: this.link.up, state: this.link.state, reason: this.link.reason };
  }

  errors(): number {
    return this.link.errors + this.corrupt;
  }

  /**
   * Purges still under way (a write's, past its answer's bound) or queued (refused, awaiting their
   * retry) are sent first, for at most CLOSE_FLUSH_MS: closed at once, they were lost with the
   * process, and replicas that did not hear them kept the object until its TTL. Nothing is
   * waited for while Redis is down (the queue is then lost: see Known limits).
   */
  async close(): Promise<void> {
    clearTimeout(this.replayTimer);
    clearInterval(this.runIdTimer);
    if (this.link.up && (this.underway.size > 0 || this.pending.length > 0 || this.pendingOverflow)) {
      const flush = Promise.allSettled([...this.underway]).then(() => (this.pending.length > 0 || this.pendingOverflow ? this.replayPending() : undefined));
      await withTimeout(flush, CLOSE_FLUSH_MS, "close").catch(noop);
      clearTimeout(this.replayTimer);
    }
    this.link.close();
  }

  /**
   * Deletes from Redis and announces it; queued for later when Redis can't be reached or refuses
   * (a full Redis with maxmemory-policy noeviction refuses XADD: "OOM command not allowed").
   * Returns keys deleted (so far, when `withinMs` passed first).
   */
  private async invalidate(inv: RemoteInvalidation, withinMs?: number): Promise<number> {
    const deleted = { n: 0 };
    const done = (async () => {
      await this.removeFromRedis(inv, deleted);
      await this.announce(inv);
    })().catch((err) => {
      this.enqueue(inv);
      this.refused(err);
    });
    this.underway.add(done);
    void done.finally(() => this.underway.delete(done));
    await (withinMs === undefined ? done : withTimeout(done, withinMs, "purge").catch(noop));
    return deleted.n;
  }

  /**
   * A purge Redis did not take although the link is up (an error reply, not a lost connection:
   * those are replayed when the link comes back, resync): logged once per streak, retried on a
   * timer with backoff until Redis takes the queue.
   */
  private refused(err: unknown): void {
    if (!this.link.up) return;
    // (no answer in time, or one still awaited, while the link stays up: Redis slow once, not refusing)
    const slow = err instanceof RedisTimeout || err instanceof RedisUnavailable;
    if (!this.refusing && !slow) {
      this.refusing = true;
      this.log?.warn("redis cache layer refused a purge: queued and retried until it is taken (other replicas may serve the purged object meanwhile)", {
        reason: (err instanceof Error ? err.message : String(err)).slice(0, 200),
      });
    }
    if (this.replayTimer !== undefined) return;
    const delay = this.replayDelayMs;
    this.replayDelayMs = Math.min(delay * 2, REPLAY_MAX_MS);
    this.replayTimer = setTimeout(() => {
      this.replayTimer = undefined;
      // (down meanwhile: the reconnection's resync replays the queue)
      if (this.link.up) this.replayPending().catch((e) => this.refused(e));
    }, delay);
    this.replayTimer.unref?.();
  }

  /** Deletes `inv`'s entries from Redis, counting them into `deleted` as they go. */
  private async removeFromRedis(inv: RemoteInvalidation, deleted: { n: number } = { n: 0 }): Promise<void> {
    const gen = crypto.randomUUID();
    if (inv.kind === "key") {
      const [genKey] = this.genKeys(inv.key).slice(2);
      try {
        deleted.n += Number(await this.link.run("PURGE", (c) => c.send("EVAL", [PURGE_KEY, "3", genKey!, this.objPrefix + inv.key, this.objPrefix + inv.key + BULK_SUFFIX, gen, String(GEN_TTL_MS)])));
      } catch (err) {
        // Refused all the same (a Redis busy with a script, ...): the DEL at least.
        if ((err as { code?: string }).code !== "ERR_REDIS_SERVER_ERROR") throw err;
        this.link.run("DEL", (c) => c.send("UNLINK", [this.objPrefix + inv.key + BULK_SUFFIX])).catch(noop);
        deleted.n += await this.link.run("DEL", (c) => c.del(this.objPrefix + inv.key));
      }
      return;
    }
    // A bucket's generation, or everything's for any other prefix, is bumped before its keys go.
    const genKey = inv.prefix.indexOf("/") === inv.prefix.length - 1 && inv.prefix.length > 1 ? this.genPrefix + "b:" + inv.prefix.slice(0, -1) : this.genPrefix + "all";
    await this.link.run("SET", (c) => c.send("EVAL", [SET_GEN, "1", genKey, gen, String(GEN_TTL_MS)])).catch((err) => {
      if ((err as { code?: string }).code !== "ERR_REDIS_SERVER_ERROR") throw err;
    });
    const pattern = matchPrefix(this.objPrefix + inv.prefix);
    let cursor = "0";
    do {
      const [next, keys] = await this.link.run("SCAN", (c) => c.scan(cursor, "MATCH", pattern, "COUNT", SCAN_COUNT));
      cursor = next;
      // (a large entry's key is counted with its stub's)
      if (keys.length > 0) deleted.n += Math.max(0, Number(await this.link.run("UNLINK", (c) => c.send("UNLINK", keys))) - keys.filter((k) => k.endsWith(BULK_SUFFIX)).length);
    } while (cursor !== "0");
  }

  private async announce(inv: RemoteInvalidation): Promise<void> {
    const value = inv.kind === "key" ? inv.key : inv.prefix;
    const xadd = async () => String(await this.link.run("XADD", (c) => c.send("EVAL", [ANNOUNCE, "1", this.stream, String(STREAM_MAXLEN), this.origin, inv.kind, value, this.channel])));
    let id: string;
    try {
      id = await xadd().catch(async (err: unknown) => {
        if (!wrongType(err)) throw err;
        // Another program's key of another type written there since the catch-up: replaced, as at
        // connect (a new life, which the other replicas' next catch-up sees). Left, it refused
        // every purge (queued, logged, retried) for as long as it lived.
        const [now, last] = await this.streamLife();
        this.epoch = now;
        this.lastSeen = last;
        return xadd();
      });
    } catch (err) {
      // The stream refused it (a full Redis refuses XADD, not PUBLISH): the replicas connected now
      // still hear of it at once; the caller queues it for the stream, for those that are not.
      await this.link.run("PUBLISH", (c) => c.publish(this.channel, JSON.stringify({ o: this.origin, k: inv.kind, v: value }))).catch(noop);
      throw err;
    }
    this.seen(id);
  }

  private enqueue(inv: RemoteInvalidation): void {
    if (this.pendingOverflow) return;
    if (this.pending.length >= PENDING_LIMIT) {
      this.pendingOverflow = true;
      this.pending = [];
      return;
    }
    this.pending.push(inv);
  }

  private seen(id: string): void {
    if (this.lastSeen === undefined || idAfter(id, this.lastSeen)) this.lastSeen = id;
    this.savePosition();
  }

  /** Records the position (and the stream's life it is in) once the first catch-up is done. */
  private savePosition(): void {
    if (this.synced && this.lastSeen !== undefined && this.epoch !== undefined) this.checkpoint?.savePosition(this.stream, this.lastSeen, this.epoch);
  }

  private onMessage(message: string): void {
    let m: { id?: unknown; o?: unknown; k?: unknown; v?: unknown } | null;
    try {
      m = JSON.parse(message);
    } catch {
      return;
    }
    // (JSON that is no object, `null` published by another client: thrown here, out of the
    // subscription's callback, it was an uncaught exception that stopped every replica at once)
    if (typeof m?.v !== "string" || (m.k !== "key" && m.k !== "prefix")) return;
    // (not while the link comes up: the catch-up reads the stream from the position, which a message
    // heard meanwhile moved past the purges missed while away; the catch-up's end covers it)
    if (typeof m.id === "string" && this.link.up) this.seen(m.id);
    if (m.o === this.origin) return;
    this.applyRemote(m.k === "key" ? { kind: "key", key: m.v } : { kind: "prefix", prefix: m.v });
  }

  /** Resolves once the local layers applied it. */
  private applyRemote(inv: RemoteInvalidation): Promise<unknown> {
    if (inv.kind === "key") this.purges.key(inv.key);
    else this.purges.prefix(inv.prefix);
    const again: string[] = [];
    for (const key of this.recent.keys()) if (matches(inv, key)) again.push(this.objPrefix + key, this.objPrefix + key + BULK_SUFFIX);
    if (again.length > 0) this.link.run("UNLINK", (c) => c.send("UNLINK", again)).catch(noop);
    return Promise.resolve(this.handler?.(inv)).catch(noop);
  }

  private remember(key: string): void {
    const now = Date.now();
    this.recent.delete(key);
    this.recent.set(key, now);
    if (this.recent.size <= RECENT_LIMIT) return;
    for (const [k, t] of this.recent) {
      if (now - t < RECENT_MS && this.recent.size <= RECENT_LIMIT) break;
      this.recent.delete(k);
    }
  }

  /**
   * On (re)connection: catch up on invalidations missed while away, then replay our own queued
   * purges. The first time, "away" is since the disk layer's saved position (its entries survived
   * the restart; they are held until this is done) or, without one, since this process started.
   */
  private async resync(): Promise<void> {
    await this.checkRestart();
    // The lookups' commands, which nothing else here runs (GET only when INFO is allowed), asked
    // once: refused (NOPERM, an ACL without them), the layer stays down, logged once, as for the
    // others. Left to the first lookup, it came up and went down again, logged both times, at
    // every reconnect (every 100 ms to 2 s) for as long as the ACL lasted.
    // And a write (DEL of a key no object has): a Redis demoted to a replica (a failover) answers
    // every read here and refuses writes (READONLY), so the layer came up on it, served what the
    // purges it refused could not delete, and went down at the next fill's store, up again at the
    // next reconnect, every second or two (two log lines each time) for as long as it was a replica.
    await Promise.all([
      this.link.run("MGET", (c) => c.send("MGET", this.genKeys(PROBE_KEY))),
      this.link.run("GET", (c) => c.get(this.objPrefix + PROBE_KEY)),
      this.link.run("DEL", (c) => c.del(this.objPrefix + PROBE_KEY)),
    ]);
    if (!this.synced) await this.firstSync();
    else await this.catchUp(this.lastSeen ?? "0-0", this.epoch);
    await this.replayPending();
  }

  /**
   * A Redis that restarted since a replica last saw it (its run_id differs from the one recorded
   * under <prefix>run-id: a restart that loaded an RDB or AOF, a failover to a replica) may hold
   * objects that writes made while it was down have replaced: those writes' purges wait in their
   * replica's queue until it reconnects (and are lost if it restarts first), and the stream does
   * not tell (it did not go back). Every object in Redis is dropped (gen:all too, so no fill
   * begun before stores) before the run_id is recorded, so that no replica serves from it until
   * then; the local layers are left to the purges replayed (see README, Known limits). A Redis
   * that lost its data has no run-id key: the stream's new life empties the local layers (catchUp).
   * INFO refused (an ACL without +info): not checked.
   */
  private async checkRestart(): Promise<void> {
    let info: string;
    try {
      info = String(await this.link.run("INFO", (c) => c.send("INFO", ["server"]), true));
    } catch (err) {
      if ((err as { code?: string }).code === "ERR_REDIS_SERVER_ERROR") return;
      throw err;
    }
    const runId = /^run_id:([0-9a-f]+)\r?$/m.exec(info)?.[1];
    if (runId === undefined) return;
    // (another program's key of another type there: no record of ours, replaced as another run_id's;
    // its WRONGTYPE kept the layer down for as long as it lived)
    const seen = await this.link.run("GET", (c) => c.get(this.runIdKey)).catch((err: unknown) => {
      if (wrongType(err)) return "";
      throw err;
    });
    if (seen === runId) return;
    if (seen !== null) {
      this.log?.info("redis cache layer: Redis restarted since it was last seen (another run_id): every object in it dropped, since writes made while it was away may not have purged them", {});
      await this.removeFromRedis({ kind: "prefix", prefix: "" });
    }
    await this.link.run("SET", (c) => c.set(this.runIdKey, runId));
    this.runId = runId;
    // Read now and then, so that an allkeys-lru/lfu Redis does not evict it as its least used key
    // (a restart would then look like a first start: nothing dropped); put back if it was evicted.
    this.runIdTimer ??= setInterval(() => {
      const id = this.runId;
      if (!this.link.up || id === undefined) return;
      // (another program's key of another type written there meanwhile is replaced, as at connect:
      // left, the next connection took it for another run_id's and dropped every object in Redis)
      this.link
        .run("GET", (c) => c.get(this.runIdKey))
        .catch((err: unknown) => (wrongType(err) ? "" : Promise.reject(err)))
        .then((seen) => (seen === null ? this.link.run("SET", (c) => c.set(this.runIdKey, id, "NX")) : seen === "" ? this.link.run("SET", (c) => c.set(this.runIdKey, id)) : undefined))
        .catch(noop);
    }, this.runIdTouchMs);
    this.runIdTimer.unref?.();
  }

  private async firstSync(): Promise<void> {
    let from = `${Math.max(0, this.startedAt - START_SKEW_MS)}-0`;
    let epoch: string | undefined;
    const cp = this.checkpoint;
    if (cp !== undefined && (await cp.restoredCount()) > 0) {
      const p = cp.loadPosition(this.stream);
      // Without the stream's life it is a position in (missing, or written by an earlier version),
      // it cannot be told from a position in a stream Redis lost since.
      if (p === undefined || p.epoch === undefined) await cp.dropRestored();
      else {
        // Exactly from there: it precedes this process, so it covers what memory filled before this
        // connection too; replaying from earlier would drop entries filled after those purges.
        from = p.id;
        epoch = p.epoch;
      }
    }
    await this.catchUp(from, epoch);
    this.synced = true;
    cp?.release();
    this.savePosition();
  }

  /**
   * Applies the stream's entries after `from` (and waits until the local layers did). Drops
   * everything local when the stream is not in the life `epoch` (the one `from` was read in: Redis
   * lost its data, or the stream, since; what was purged before that is unknown), or when entries
   * after `from` were trimmed away. `epoch` undefined: `from` is no position read from the stream
   * (the first start), nothing to compare.
   */
  private async catchUp(from: string, epoch: string | undefined): Promise<void> {
    let [now, last, added, length, first] = await this.streamLife();
    if (epoch !== undefined && now === epoch && idAfter(from, last)) {
      // The stream went back (Redis restored from an older snapshot, an AOF that lost its last
      // second, a failover to a lagging replica): the purges after `last` are lost, and the
      // objects they deleted may be back in Redis. Purged there (with gen:all, so no fill begun
      // before stores), then the stream gets a new life (the other replicas empty their local
      // layers at their catch-up, whether or not they see the rollback themselves) and the purge
      // is announced (those connected now empty them at once).
      this.log?.info("redis cache layer: the purge stream went back (Redis restored from an older snapshot, or a failover to a lagging replica): every object in Redis and in the local layers dropped", { position: from, stream: last });
      const all: RemoteInvalidation = { kind: "prefix", prefix: "" };
      await this.removeFromRedis(all);
      await this.link.run("STREAM", (c) => c.send("EVAL", [NEW_LIFE, "1", this.stream, now, "epoch:" + crypto.randomUUID()]));
      [now, last] = await this.streamLife();
      this.epoch = now;
      this.lastSeen = last;
      await this.applyRemote(all);
      await this.announce(all);
      this.savePosition();
      return;
    }
    if (epoch !== undefined && now !== epoch) {
      // Another life of the stream: its ids have nothing to do with `from` (and may be lower).
      this.log?.info("redis cache layer: the purge stream has another life (Redis lost its data, or was restored from an older snapshot): the local layers emptied", { stream: this.stream });
      this.epoch = now;
      this.lastSeen = last;
      await this.applyRemote({ kind: "prefix", prefix: "" });
      this.savePosition();
      return;
    }
    this.epoch = now;
    // Entries were removed (entries-added > length: Redis 7) from the oldest on, up to the first
    // one kept, or all of them (up to the last id) when none is kept: some after `from` may be gone.
    const trimmed = added !== "" && Number(added) > Number(length) && idAfter(first !== "" ? first : last, from);
    const missed = trimmed ? [] : ((await this.link.run("XRANGE", (c) => c.send("XRANGE", [this.stream, "(" + from, "+", "COUNT", String(STREAM_MAXLEN)]))) as [string, string[]][]);
    const applied: Promise<unknown>[] = [];
    if (trimmed || missed.length >= STREAM_MAXLEN) applied.push(this.applyRemote({ kind: "prefix", prefix: "" })); // too much missed: drop everything local
    else {
      for (const [, fields] of missed) {
        const f: Record<string, string> = {};
        for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
        if (f.o === this.origin || f.v === undefined) continue;
        if (f.k === "key") applied.push(this.applyRemote({ kind: "key", key: f.v }));
        else if (f.k === "prefix") applied.push(this.applyRemote({ kind: "prefix", prefix: f.v }));
      }
    }
    await Promise.all(applied);
    // Ids of the stream only (not `from` when it is a time: the first start), so that a position
    // above the stream's last id means the stream went back (above).
    const ids = [last, missed.at(-1)?.[0] ?? last];
    for (const id of ids) if (this.lastSeen === undefined || idAfter(id, this.lastSeen)) this.lastSeen = id;
    this.savePosition();
  }

  /** STREAM_LIFE: the stream's life (epoch), last-generated-id, entries-added, length, first-entry. */
  private async streamLife(): Promise<[string, string, string, string, string]> {
    const r = await this.link.run("STREAM", (c) => c.send("EVAL", [STREAM_LIFE, "1", this.stream, "epoch:" + crypto.randomUUID()]));
    // (a server that only speaks Redis's protocol: its TypeError, quoting this source, was the reason /ready showed)
    if (!Array.isArray(r) || r.length !== 5) throw new Error("the purge stream's script got an answer that is not its result (is the URL a Redis server?)");
    return r.map(String) as [string, string, string, string, string];
  }

  /** Our own queued purges, deleted and announced in order; what Redis does not take stays queued. */
  private async replayPending(): Promise<void> {
    const queued = this.pendingOverflow ? [{ kind: "prefix", prefix: "" } as RemoteInvalidation] : this.pending;
    this.pending = [];
    this.pendingOverflow = false;
    for (let i = 0; i < queued.length; i++) {
      try {
        await this.removeFromRedis(queued[i]!);
        await this.announce(queued[i]!);
      } catch (err) {
        for (const inv of queued.slice(i)) this.enqueue(inv); // Redis went away again, or refuses: next time
        throw err;
      }
    }
    if (this.pending.length === 0 && !this.pendingOverflow) {
      this.replayDelayMs = REPLAY_MIN_MS;
      if (this.refusing) this.log?.info("redis cache layer took the queued purges");
      this.refusing = false;
    }
  }
}
