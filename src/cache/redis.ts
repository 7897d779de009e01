/**
 * The Redis layer: a cache shared by every replica, and the channel through which a purge made on
 * one replica reaches the memory and disk layers of all the others.
 *
 * - An object is one key (redis-format.ts) with a Redis TTL equal to its remaining freshness:
 *   Redis expires it exactly when this proxy would have to revalidate it.
 * - A purge deletes the keys (SCAN + UNLINK for a bucket or everything), appends the invalidation
 *   to a capped stream (<prefix>invalidations) and PUBLISHes it on <prefix>invalidate. Every
 *   replica's subscribed connection receives it at once and drops the key or prefix from its own
 *   layers (Cache.applyRemote). The stream is how a replica that was cut off from Redis catches up
 *   when it reconnects; if it missed more than the stream holds, it drops its local layers whole.
 * - While Redis is unreachable, purges are applied locally and queued (bounded; past the bound,
 *   everything under the prefix is purged on return), then replayed and published when it is back.
 *   A purge Redis refuses while reachable (a full Redis with noeviction refuses XADD) is still
 *   PUBLISHed to the replicas connected now, logged, queued, and retried on a timer.
 * - A fill that started before a purge on another replica may send its SET just after that
 *   replica's UNLINK: writes of the last few seconds are deleted again when an invalidation that
 *   covers them arrives (this connection orders that DEL after the SET).
 * - Failure is not an outage: reads and writes are skipped while the link is down (redis-link.ts).
 */
import { PurgeLog } from "./purge-log.ts";
import { decodeEntry, encodeEntry, matchPrefix } from "./redis-format.ts";
import { RedisLink, type LinkLogger } from "./redis-link.ts";
import type { CachedObject, CacheLayer, LayerHealth, LayerStats, RemoteInvalidation } from "./types.ts";

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
}

/** Entries kept in the invalidation stream (approximately: MAXLEN ~). */
export const STREAM_MAXLEN = 10_000;
const PENDING_LIMIT = 1000;
/** Our own SETs are remembered this long, to be deleted again by an invalidation that covers them. */
const RECENT_MS = 10_000;
const RECENT_LIMIT = 10_000;
const SCAN_COUNT = "1000";
/** Retry backoff of purges Redis refused while connected. */
const REPLAY_MIN_MS = 250;
const REPLAY_MAX_MS = 10_000;

const noop = () => {};

/** Stream ids ("ms-seq") in order. */
function idAfter(a: string, b: string): boolean {
  const [am, as] = a.split("-").map(Number) as [number, number];
  const [bm, bs] = b.split("-").map(Number) as [number, number];
  return am > bm || (am === bm && as > bs);
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
  private readonly channel: string;
  private readonly stream: string;
  private readonly purges = new PurgeLog();
  private readonly recent = new Map<string, number>();
  private pending: RemoteInvalidation[] = [];
  private pendingOverflow = false;
  /** The last invalidation-stream id seen (published or received). */
  private lastSeen: string | undefined;
  private handler: ((inv: RemoteInvalidation) => void) | undefined;
  private maxItemBytes: number;
  private corrupt = 0;
  private readonly log: LinkLogger | undefined;
  /** Purges refused while the link is up: retried on this timer (refused). */
  private refusing = false;
  private replayTimer: ReturnType<typeof setTimeout> | undefined;
  private replayDelayMs = REPLAY_MIN_MS;

  constructor(opts: RedisLayerOptions) {
    this.objPrefix = opts.keyPrefix + "obj:";
    this.channel = opts.keyPrefix + "invalidate";
    this.stream = opts.keyPrefix + "invalidations";
    this.maxItemBytes = opts.maxItemBytes;
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
    });
  }

  onRemoteInvalidation(handler: (inv: RemoteInvalidation) => void): void {
    this.handler = handler;
  }

  accepts(size: number): boolean {
    return this.link.up && size <= this.maxItemBytes;
  }

  /** Undefined at once while the link is down: a request never waits for a Redis that is known to be away. */
  get(key: string): CachedObject | undefined | Promise<CachedObject | undefined> {
    if (!this.link.up) return undefined;
    const k = this.objPrefix + key;
    return this.link.run("GET", (c) => c.getBuffer(k)).then(
      (value) => {
        if (value === null) return undefined;
        const obj = decodeEntry(value, key);
        if (typeof obj !== "string") return obj;
        this.corrupt++;
        this.link.run("DEL", (c) => c.del(k)).catch(noop);
        return undefined;
      },
      () => undefined,
    );
  }

  async put(obj: CachedObject): Promise<void> {
    if (!this.accepts(obj.size)) return;
    const since = this.purges.now;
    const body = new Uint8Array(await obj.body.arrayBuffer());
    const ttl = Math.floor(obj.expiresAt - Date.now());
    // Expired (nothing to share), or purged while the body was read.
    if (ttl < 1 || this.purges.purgedSince(since, obj.key)) return;
    this.remember(obj.key);
    const value = encodeEntry(obj, body);
    await this.link.run("SET", (c) => c.set(this.objPrefix + obj.key, value, "PX", ttl)).catch(noop);
  }

  async delete(key: string): Promise<boolean> {
    this.purges.key(key);
    return (await this.invalidate({ kind: "key", key })) > 0;
  }

  purgePrefix(prefix: string): Promise<number> {
    this.purges.prefix(prefix);
    return this.invalidate({ kind: "prefix", prefix });
  }

  resize(_maxBytes: number, maxItemBytes: number = this.maxItemBytes): void {
    this.maxItemBytes = maxItemBytes;
  }

  /** Redis holds the shared entries; their count and size are Redis's (INFO), not this process's. */
  stats(): LayerStats {
    return { items: 0, bytes: 0, evictions: 0, maxBytes: 0, buckets: {} };
  }

  health(): LayerHealth {
    return { up: this.link.up, state: this.link.state, reason: this.link.reason };
  }

  errors(): number {
    return this.link.errors + this.corrupt;
  }

  close(): void {
    clearTimeout(this.replayTimer);
    this.link.close();
  }

  /**
   * Deletes from Redis and announces it; queued for later when Redis can't be reached or refuses
   * (a full Redis with maxmemory-policy noeviction refuses XADD: "OOM command not allowed").
   * Returns keys deleted.
   */
  private async invalidate(inv: RemoteInvalidation): Promise<number> {
    let n = 0;
    try {
      n = await this.removeFromRedis(inv);
      await this.announce(inv);
      return n;
    } catch (err) {
      this.enqueue(inv);
      this.refused(err);
      return n;
    }
  }

  /**
   * A purge Redis did not take although the link is up (an error reply, not a lost connection:
   * those are replayed when the link comes back, resync): logged once per streak, retried on a
   * timer with backoff until Redis takes the queue.
   */
  private refused(err: unknown): void {
    if (!this.link.up) return;
    if (!this.refusing) {
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

  private async removeFromRedis(inv: RemoteInvalidation): Promise<number> {
    if (inv.kind === "key") return this.link.run("DEL", (c) => c.del(this.objPrefix + inv.key));
    const pattern = matchPrefix(this.objPrefix + inv.prefix);
    let cursor = "0";
    let n = 0;
    do {
      const [next, keys] = await this.link.run("SCAN", (c) => c.scan(cursor, "MATCH", pattern, "COUNT", SCAN_COUNT));
      cursor = next;
      if (keys.length > 0) n += Number(await this.link.run("UNLINK", (c) => c.send("UNLINK", keys)));
    } while (cursor !== "0");
    return n;
  }

  private async announce(inv: RemoteInvalidation): Promise<void> {
    const value = inv.kind === "key" ? inv.key : inv.prefix;
    let id: string;
    try {
      id = String(await this.link.run("XADD", (c) => c.send("XADD", [this.stream, "MAXLEN", "~", String(STREAM_MAXLEN), "*", "o", this.origin, "k", inv.kind, "v", value])));
    } catch (err) {
      // The stream refused it (a full Redis refuses XADD, not PUBLISH): the replicas connected now
      // still hear of it at once; the caller queues it for the stream, for those that are not.
      await this.link.run("PUBLISH", (c) => c.publish(this.channel, JSON.stringify({ o: this.origin, k: inv.kind, v: value }))).catch(noop);
      throw err;
    }
    this.seen(id);
    await this.link.run("PUBLISH", (c) => c.publish(this.channel, JSON.stringify({ id, o: this.origin, k: inv.kind, v: value })));
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
  }

  private onMessage(message: string): void {
    let m: { id?: unknown; o?: unknown; k?: unknown; v?: unknown };
    try {
      m = JSON.parse(message);
    } catch {
      return;
    }
    if (typeof m.v !== "string" || (m.k !== "key" && m.k !== "prefix")) return;
    if (typeof m.id === "string") this.seen(m.id);
    if (m.o === this.origin) return;
    this.applyRemote(m.k === "key" ? { kind: "key", key: m.v } : { kind: "prefix", prefix: m.v });
  }

  private applyRemote(inv: RemoteInvalidation): void {
    if (inv.kind === "key") this.purges.key(inv.key);
    else this.purges.prefix(inv.prefix);
    const again: string[] = [];
    for (const key of this.recent.keys()) if (matches(inv, key)) again.push(this.objPrefix + key);
    if (again.length > 0) this.link.run("UNLINK", (c) => c.send("UNLINK", again)).catch(noop);
    this.handler?.(inv);
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

  /** On (re)connection: catch up on invalidations missed while away, then replay our own queued purges. */
  private async resync(): Promise<void> {
    const tail = (await this.link.run("XREVRANGE", (c) => c.send("XREVRANGE", [this.stream, "+", "-", "COUNT", "1"]))) as [string, string[]][];
    const last = tail[0]?.[0];
    if (this.lastSeen === undefined) {
      // First connection: what is in the stream predates this process's cache; follow from here.
      this.lastSeen = last ?? "0-0";
    } else if (last !== undefined && idAfter(last, this.lastSeen)) {
      const missed = (await this.link.run("XRANGE", (c) => c.send("XRANGE", [this.stream, "(" + this.lastSeen, "+", "COUNT", String(STREAM_MAXLEN)]))) as [string, string[]][];
      const head = (await this.link.run("XRANGE", (c) => c.send("XRANGE", [this.stream, "-", "+", "COUNT", "1"]))) as [string, string[]][];
      const trimmed = head[0] !== undefined && idAfter(head[0][0], this.lastSeen) && missed.length >= STREAM_MAXLEN * 0.9;
      if (trimmed || missed.length >= STREAM_MAXLEN) this.handler?.({ kind: "prefix", prefix: "" }); // too much missed: drop everything local
      else {
        for (const [, fields] of missed) {
          const f: Record<string, string> = {};
          for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
          if (f.o === this.origin || f.v === undefined) continue;
          if (f.k === "key") this.applyRemote({ kind: "key", key: f.v });
          else if (f.k === "prefix") this.applyRemote({ kind: "prefix", prefix: f.v });
        }
      }
      this.lastSeen = last;
    }
    await this.replayPending();
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
    if (this.refusing && this.pending.length === 0 && !this.pendingOverflow) {
      this.refusing = false;
      this.replayDelayMs = REPLAY_MIN_MS;
      this.log?.info("redis cache layer took the queued purges");
    }
  }
}
