/**
 * Rate limits shared by every process that uses the same Redis (`server.rate_limit.backend:
 * redis`): the global, per-bucket and per-IP limits hold across all of them together. One EVALSHA
 * of RATE_SCRIPT per request (redis-script.ts) decides atomically.
 *
 * Redis failing is not an outage. A request whose Redis answer does not come within
 * `redis_timeout_ms` is decided by the local limiter, and so is every request until that late
 * answer comes (Redis answers in order: they would wait as long). After SLOW_STRIKES such
 * requests in a row (redis-wait.ts, as the cache layer's link), or a failure (a lost connection,
 * a refusal), or no answer at all for SILENT_MS, every request is decided locally, without asking
 * Redis, until a background check (every `retryMs`) gets Redis to answer again as fast as a
 * request needs it (RECHECK_PINGS PINGs in a row, each within the timeout: a
 * Redis merely slower than `redis_timeout_ms` keeps the decisions local instead of flapping) and
 * to run the script (a Redis that answers PING but refuses EVALSHA stays local, logged once). The local limiter enforces this process's share of the limits: 1/(instances × workers)
 * of each rate. Each change of state is logged once, and each other reason while local once more (OutageReasons).
 *
 * A connection whose flow is lost without a close (a NAT or conntrack entry dropped: no FIN, no
 * RST) still reports connected, and the kernel would give up on it only after many minutes: when
 * a command sent on it has had no answer at all, not even a late one, for SILENT_MS (or 4 ×
 * redis_timeout_ms if longer: redis-wait.ts), the background check closes it and connects a new one.
 *
 * Not the same as the memory backend: server.rate_limit.per_ip.max_entries does not apply (per-IP
 * keys expire in Redis once full again), and a single Redis is assumed (the keys of one request
 * are used together in one script, which Redis Cluster would refuse across slots).
 */
import { RedisClient } from "bun";
import { LruMap } from "../util/lru.ts";
import { OutageReasons } from "../util/outage-reasons.ts";
import { redisAuthFailure, worthAskingWhy } from "../util/redis-auth.ts";
import { keepAlivePeriod, newRedisClient, redisIdleTimeout, RedisTimeout, silentAfter, SLOW_STRIKES, SlowStrikes, STALL_MS, withTimeout } from "../util/redis-wait.ts";
import type { RateConfig } from "../config/schema.ts";
import type { Logger } from "../observe/log.ts";
import { RateLimiter, type RateCheck, type RateLimitSource, type RateScope } from "./rate-limiter.ts";
import { DRAIN_SCRIPT, RATE_SCRIPT, RATE_SCRIPT_SHA1 } from "./redis-script.ts";
import { ADMIT, MAX_RETRY_AFTER } from "./token-bucket.ts";

export interface RedisLimiterOptions {
  url: string;
  /** Prefix of every key (default "yatagarasu:"); the limiter's keys are `${prefix}rl:...`. */
  keyPrefix?: string;
  /** Longest wait for Redis's answer to one check before it is decided locally (ms). */
  timeoutMs: number;
  /** The local fallback enforces 1/share of each configured rate (instances × workers). */
  share: number;
  log: Logger;
  /** How often Redis is asked again while it is unavailable (default 500 ms). */
  retryMs?: number;
  /** false (--check): never connect. */
  connect?: boolean;
  /**
   * What the limiter this one replaces (a reload, the same Redis) last reported (shared or not):
   * a reload that changes nothing about Redis logs nothing about it ("each change is logged once").
   */
  reported?: boolean;
  /**
   * The limiter this one replaces (a reload that changed the limits): the refusals it holds for the
   * limits this one has as they were carry over (carryRefusals).
   */
  previous?: RedisRateLimiter;
}

interface Limit {
  readonly rate: string;
  readonly burst: string;
}

/**
 * PINGs in a row, each answered within redis_timeout_ms, that make the limits shared again: the
 * same bar as a request's (a Redis slower than it would be dropped again by the next request, and
 * the state would flap), with a margin for a round trip that just made it.
 */
const RECHECK_PINGS = 3;


/**
 * While the limits are shared and no request asks Redis, a PING goes this often (or every
 * 4 × retryMs if longer): a Redis that stopped answering (frozen, a lost flow) is then found with
 * no traffic too, within SILENT_MS after it, so /ready and yatagarasu_rate_limit_shared say so
 * before the next request pays a timeout.
 */
const IDLE_PING_MS = 1000;

/** The probe bucket's rate and capacity: the background check's script run never runs it dry. */
const PROBE_LIMIT = "1000000";

/** The Redis URLs whose eviction policy this process has looked at (once each: a reload does not warn again). */
const evictionChecked = new Set<string>();

const NOT_THE_SCRIPT = "Redis answered the rate-limit script with something other than its result";

/**
 * After Redis refused a request's script (an error reply, not a timeout or a lost connection), the
 * background check shares the limits again no sooner than retryMs, doubled at each refusal that
 * comes within REFUSAL_HOLD_CHECKS × retryMs of the limits shared again, up to that (30 s by
 * default). Its probe may run where the requests' scripts do not: a Redis at its maxmemory with
 * noeviction refuses every write while its memory is over the limit, and keys expiring bring it
 * under for a moment. The limits flipped shared/local at every check (two log lines each time,
 * and the Redis buckets and the local share both admitting: twice the limit went through).
 */
const REFUSAL_HOLD_CHECKS = 60;

/** Refused limits remembered for the switch to local (RedisRateLimiter.refused): an address each, beyond the global and the buckets' few. */
const MAX_REFUSED = 10_000;

/** Keys a DRAIN_SCRIPT call drains. */
const DRAIN_BATCH = 500;

/** Whether `reply` is RATE_SCRIPT's answer for `keys` keys: {0, 0}, or {i, µs} with KEYS[i] the short one. */
function isRateReply(reply: unknown, keys: number): reply is [number, number] {
  if (!Array.isArray(reply) || reply.length !== 2) return false;
  const [i, wait] = reply as unknown[];
  return Number.isInteger(i) && (i as number) >= 0 && (i as number) <= keys && typeof wait === "number" && wait >= 0;
}

/** Records a refusal of the `scope` limit (`key`: the address or bucket name) now: the latest of each, the oldest forgotten beyond MAX_REFUSED (LruMap: a capped Map evicting through `keys().next()` took ~50 µs a refusal once 200k addresses had churned it). */
function remember(m: LruMap<number>, scope: RateScope, key: string): void {
  m.set(`${scope} ${key}`, performance.now());
}

const splitRefused = (id: string): [RateScope, string] => {
  const sp = id.indexOf(" ");
  return [id.slice(0, sp) as RateScope, id.slice(sp + 1)];
};

const limitOf = (r: RateConfig): Limit => ({ rate: String(r.requests_per_second), burst: String(Math.max(1, r.burst ?? r.requests_per_second)) });

export class RedisRateLimiter {
  /** The fallback while Redis is unavailable (this process's share of the limits). */
  readonly local: RateLimiter;
  private client: RedisClient;
  /** When the oldest command still without an answer on `client` was sent (undefined: none known). */
  private silentSince: number | undefined;
  /** When the last command was sent (performance.now()). */
  private lastSend = 0;
  /** When the background check last ran. */
  private lastTick = performance.now();
  private readonly idlePingMs: number;
  /** idlePingMs, or less to stay under Redis's idle timeout (keepAlivePeriod, read at each connection). */
  private keepAliveMs: number;
  private readonly silentMs: number;
  /** The longest wait for a connection (and the slower background questions): 4 × redis_timeout_ms, at least 250 ms. */
  private readonly connectMs: number;
  private readonly url: string;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly retryMs: number;
  private readonly log: Logger;
  private readonly global: Limit | undefined;
  private readonly perIp: Limit | undefined;
  private readonly buckets = new Map<string, Limit & { key: string }>();
  private readonly globalKey: string;
  private up = false;
  /** undefined until the first outcome, so the first one is logged whichever it is. */
  private reported: boolean | undefined;
  /** The reasons the current outage has logged (local): each once, OUTAGE_REASONS at most. */
  private readonly reasons = new OutageReasons();
  /** The last failed check's own error, and what Redis said about it when asked (redisAuthFailure). */
  private asked: { raw: string; why: string | undefined } | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private checking = false;
  private closed = false;
  private waiters: Array<() => void> = [];
  /** The first background check (started). */
  private firstCheck: Promise<void> = Promise.resolve();
  /** Requests in a row whose answer did not come in time (SLOW_STRIKES). */
  private readonly strikes = new SlowStrikes();
  /** When the limits were last shared again; the hold after the last refusal; until when the background check waits (REFUSAL_HOLD_CHECKS). */
  private sharedAt = -Infinity;
  private refusalHoldMs = 0;
  private localUntil = 0;
  /**
   * The limits Redis refused since the last local decision (scope and key, e.g. `bucket b`), with
   * when (the latest): the local share's buckets for them are drained as of then (RateLimiter.spentAt)
   * before the next local decision (localCheck), the share's of a limit being hit being spent too.
   * Left full, each switch to local (Redis frozen or restarted: seconds without an answer) let a
   * whole extra burst of each refused limit through, in every process. A limit only admitting
   * keeps its full local share (a bursty client under it is not refused at a slow answer).
   */
  private readonly refused = new LruMap<number>(MAX_REFUSED);
  /**
   * The limits the local share refused while the limits were local (as `refused`): drained in
   * Redis before they are shared again (DRAIN_SCRIPT), since nobody charged the Redis buckets
   * meanwhile. They had refilled, and a whole extra burst went through as the limits came back.
   */
  private readonly refusedLocally = new LruMap<number>(MAX_REFUSED);

  constructor(cfg: RateLimitSource, opts: RedisLimiterOptions) {
    this.local = RateLimiter.fromConfig(cfg, { share: opts.share });
    this.prefix = `${opts.keyPrefix ?? "yatagarasu:"}rl:`;
    this.globalKey = `${this.prefix}global`;
    this.timeoutMs = opts.timeoutMs;
    this.retryMs = opts.retryMs ?? 500;
    this.log = opts.log;
    const server = cfg.server.rate_limit;
    const on = server !== undefined && server.enabled !== false;
    this.global = on && server.global ? limitOf(server.global) : undefined;
    this.perIp = on && server.per_ip ? limitOf(server.per_ip) : undefined;
    for (const b of cfg.buckets) if (b.s3.rate_limit) this.buckets.set(b.name, { ...limitOf(b.s3.rate_limit), key: `${this.prefix}b:${b.name}` });
    // No offline queue: a command while disconnected fails at once (and is decided locally)
    // instead of waiting. Reconnection is ours (recheck), not the client's.
    this.url = opts.url;
    this.reported = opts.reported;
    this.silentMs = silentAfter(this.timeoutMs);
    this.connectMs = Math.max(250, this.timeoutMs * 4);
    this.idlePingMs = Math.max(IDLE_PING_MS, this.retryMs * 4);
    this.keepAliveMs = this.idlePingMs;
    this.client = this.newClient();
    if (opts.previous) this.carryRefusals(opts.previous);
    if (opts.connect !== false) {
      this.timer = setInterval(() => void this.recheck(), this.retryMs);
      this.timer.unref?.();
      this.firstCheck = this.recheck();
    }
  }

  /**
   * The refusals `prev` remembers for the limits this one has unchanged (the same rate and burst):
   * the local share's buckets start drained as of them, and those refused locally are drained in
   * Redis when it is back, as they would have been. A reload that changed another limit while the
   * limits were local gave each client being refused a fresh local burst, and its Redis bucket,
   * refilled meanwhile, a whole one more.
   */
  private carryRefusals(prev: RedisRateLimiter): void {
    const same = (id: string): boolean => {
      const [scope, key] = splitRefused(id);
      const a = this.keyedLimit(scope, key);
      const b = prev.keyedLimit(scope, key);
      return a !== undefined && b !== undefined && a.rate === b.rate && a.burst === b.burst;
    };
    for (const [id, at] of prev.refused.entries()) if (same(id)) this.refused.set(id, at);
    for (const [id, at] of prev.refusedLocally.entries())
      if (same(id)) {
        this.refusedLocally.set(id, at);
        const [scope, key] = splitRefused(id);
        this.local.spentAt(scope, key, at);
      }
  }

  private newClient(): RedisClient {
    const c = newRedisClient(this.url, this.connectMs);
    // Closed while connecting is recheck()'s to report (with its cause); only a lost link is this.
    c.onclose = () => {
      if (this.up && this.client === c) this.lost("connection closed");
    };
    return c;
  }

  /**
   * A command on the connection: its answer (even one too late for its caller, or an error reply)
   * shows the flow is alive, and a failure the client sees (a closed connection) is recheck()'s
   * usual business; until either, silentSince holds the oldest send (Redis answers in order).
   */
  private send(cmd: string, args: string[]): Promise<unknown> {
    const c = this.client;
    const at = performance.now();
    this.lastSend = at;
    if (this.silentSince === undefined) this.silentSince = at;
    const p = c.send(cmd, args);
    const answered = () => {
      if (this.client === c && this.silentSince !== undefined && this.silentSince <= at) this.silentSince = undefined;
    };
    p.then(answered, answered);
    return p;
  }

  /**
   * Start-up waits for this before it listens: the first check (connect, the PINGs and the script),
   * within 4 × redis_timeout_ms more than its connection's, so that a new process's first requests
   * are counted in the shared limits instead of a full local bucket's. Not shared by then: local.
   */
  started(): Promise<void> {
    return withTimeout(this.firstCheck, this.connectMs + 4 * this.timeoutMs, "start").catch(() => undefined);
  }

  /** True while the limits are decided by Redis (shared); false while decided locally. */
  get shared(): boolean {
    return this.up;
  }

  /** Resolves once the limiter is in the given state (tests and the readiness report). */
  whenShared(state: boolean): Promise<void> {
    if (this.up === state) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => (this.up === state ? resolve() : this.waiters.push(check));
      this.waiters.push(check);
    });
  }

  /**
   * Admits or rejects one request, as RateLimiter.check. Synchronous while Redis is unavailable
   * (the local decision); a promise while the limits are shared.
   */
  check(clientIp: string, bucket?: string): RateCheck | Promise<RateCheck> {
    if (!this.up) {
      const r = this.local.check(clientIp, bucket);
      if (!r.ok) remember(this.refusedLocally, r.scope, r.scope === "per_ip" ? clientIp : r.scope === "bucket" ? bucket! : "");
      return r;
    }
    const keys: string[] = [];
    const args: string[] = [];
    const scopes: RateScope[] = [];
    if (this.global) {
      keys.push(this.globalKey);
      args.push(this.global.rate, this.global.burst);
      scopes.push("global");
    }
    if (this.perIp) {
      keys.push(`${this.prefix}ip:${clientIp}`);
      args.push(this.perIp.rate, this.perIp.burst);
      scopes.push("per_ip");
    }
    const b = bucket === undefined ? undefined : this.buckets.get(bucket);
    if (b) {
      keys.push(b.key);
      args.push(b.rate, b.burst);
      scopes.push("bucket");
    }
    if (keys.length === 0) return ADMIT;
    // A command already waited past the timeout and its answer is not in yet: this one would wait as long.
    const sent = performance.now();
    if (this.silentSince !== undefined && sent - this.silentSince >= this.timeoutMs) return this.localCheck(clientIp, bucket);
    return this.run(keys, args).then(
      (reply) => {
        this.strikes.answered(sent);
        // (anything but the script's answer: a server that only looks like Redis; its answer admitted nothing, every request 429)
        if (!isRateReply(reply, keys.length)) {
          this.lost(NOT_THE_SCRIPT);
          return this.localCheck(clientIp, bucket);
        }
        const [i, waitUs] = reply;
        if (i === 0) return ADMIT;
        const scope = scopes[i - 1]!;
        remember(this.refused, scope, scope === "per_ip" ? clientIp : scope === "bucket" ? bucket! : "");
        // (answered after another request's failure made the limits local: drained now, lost() has run)
        if (!this.up) this.drainRefused();
        const s = Math.ceil(waitUs / 1e6 - 1e-9);
        return { ok: false, scope, retryAfterSeconds: s > 1 ? (s < MAX_RETRY_AFTER ? s : MAX_RETRY_AFTER) : 1 };
      },
      (err) => {
        const reason = err instanceof Error ? err.message : String(err);
        // One slow answer (a fork, another client's slow command) is this request's local decision
        // only: local at the first, a Redis answering around the timeout went local and shared
        // again (logged both times, a fresh local burst) at every slow answer.
        if (!(err instanceof RedisTimeout)) this.lost(reason, (err as { code?: string }).code === "ERR_REDIS_SERVER_ERROR");
        else if (this.strikes.timedOut(sent)) this.lost(`${reason} (${SLOW_STRIKES} requests in a row)`);
        return this.localCheck(clientIp, bucket);
      },
    );
  }

  /** A local decision while the limits are shared, or were until this request's answer failed: after the refused limits' drain. */
  private localCheck(clientIp: string, bucket: string | undefined): RateCheck {
    if (this.refused.size > 0) this.drainRefused();
    return this.local.check(clientIp, bucket);
  }

  private drainRefused(): void {
    for (const [id, at] of this.refused.entries()) {
      const [scope, key] = splitRefused(id);
      this.local.spentAt(scope, key, at);
    }
    this.refused.clear();
  }

  /** The limit `scope` applies to `key` (the address, the bucket name; "" for the global one) in this limiter, with its Redis key. */
  private keyedLimit(scope: RateScope, key: string): (Limit & { key: string }) | undefined {
    if (scope === "global") return this.global && { ...this.global, key: this.globalKey };
    if (scope === "per_ip") return this.perIp && { ...this.perIp, key: `${this.prefix}ip:${key}` };
    return this.buckets.get(key);
  }

  /**
   * DRAIN_SCRIPT over the limits refused locally, every batch sent at once (Redis runs them before
   * any command sent after them). The entries it drained are forgotten once Redis has answered; a
   * failure (no answer within connectMs, a refusal) rejects and keeps them all, for the next drain:
   * ignored, the limits were shared with them lost, and a Redis that had not answered the drain
   * answered no request either (local again, shared again: flapping, two lines each time).
   */
  private async drainShared(): Promise<void> {
    if (this.refusedLocally.size === 0) return;
    const keys: string[] = [];
    const args: string[] = [];
    const taken: Array<[string, number]> = [];
    const now = performance.now();
    // (a snapshot: entries are deleted on the way, which would end a walk of the live list)
    for (const [id, at] of [...this.refusedLocally.entries()]) {
      const [scope, key] = splitRefused(id);
      const limit = this.keyedLimit(scope, key);
      if (limit === undefined) {
        this.refusedLocally.delete(id);
        continue;
      }
      keys.push(limit.key);
      args.push(limit.rate, limit.burst, String(Math.round((now - at) * 1000)));
      taken.push([id, at]);
    }
    // (DRAIN_BATCH keys a call: up to MAX_REFUSED addresses would hold Redis up for one long script)
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < keys.length; i += DRAIN_BATCH) {
      const k = keys.slice(i, i + DRAIN_BATCH);
      calls.push(withTimeout(this.send("EVAL", [DRAIN_SCRIPT, String(k.length), ...k, ...args.slice(3 * i, 3 * (i + DRAIN_BATCH))]), this.connectMs, "Redis"));
    }
    await Promise.all(calls);
    // (a limit refused again since it was sent keeps its later refusal, for the next drain)
    for (const [id, at] of taken) if (this.refusedLocally.peek(id) === at) this.refusedLocally.delete(id);
  }

  /** EVALSHA within the timeout; EVAL when Redis does not hold the script (a restarted Redis). */
  private run(keys: string[], args: string[]): Promise<unknown> {
    const n = String(keys.length);
    const call = this.send("EVALSHA", [RATE_SCRIPT_SHA1, n, ...keys, ...args]).catch((err: unknown) => {
      if (err instanceof Error && err.message.startsWith("NOSCRIPT")) return this.send("EVAL", [RATE_SCRIPT, n, ...keys, ...args]);
      throw err;
    });
    return withTimeout(call, this.timeoutMs, "Redis");
  }

  /** Redis failed: decide locally from now on, until recheck() gets an answer (after a refusal: no sooner than its hold). */
  private lost(reason: string, refusal = false): void {
    if (this.closed) return;
    if (refusal && this.up) {
      const now = performance.now();
      const cap = this.retryMs * REFUSAL_HOLD_CHECKS;
      this.refusalHoldMs = now - this.sharedAt < cap ? Math.min(cap, Math.max(this.retryMs, this.refusalHoldMs * 2)) : this.retryMs;
      this.localUntil = now + this.refusalHoldMs;
    }
    this.up = false;
    if (this.refused.size > 0) this.drainRefused();
    this.strikes.reset();
    this.report(false, reason);
  }

  /**
   * The background check: reconnect if needed, then share the limits again when Redis answers as
   * fast as a request needs it (RECHECK_PINGS within redis_timeout_ms each).
   */
  private async recheck(): Promise<void> {
    // A check that runs more than STALL_MS late follows a stall of this process: an answer that
    // came meanwhile may not be read yet (timers run first, and one more turn was not always
    // enough on a loaded host); the next check decides.
    const now = performance.now();
    const stalled = now - this.lastTick > this.retryMs + STALL_MS;
    this.lastTick = now;
    if (this.up) return this.watch(stalled);
    if (this.checking || this.closed || now < this.localUntil) return;
    this.checking = true;
    try {
      // Connected by its own account, but silent for silentMs: the flow is lost (no FIN or RST came). A
      // new connection; not at a check that follows a stall of this process (as watch()): the answers
      // that came meanwhile are not read yet, and a live connection was closed for a new one.
      if (!stalled && this.silentSince !== undefined && performance.now() - this.silentSince >= this.silentMs) this.replaceClient();
      if (!this.client.connected) {
        // (Bun's own connect timeout is beyond ours, a stall of this process included
        // (newRedisClient): it came first, as `Connection closed`, and a Redis back by the time
        // redisAuthFailure asked refused nothing: another reason logged at every outage of a frozen
        // Redis. Ours abandons the attempt, whose close says nothing.)
        await withTimeout(this.client.connect(), this.connectMs, "Redis").catch((err: unknown) => {
          if (err instanceof RedisTimeout) this.replaceClient();
          throw err;
        });
        // A Redis whose idle timeout is shorter than the idle PING's period (`timeout 1`) closed the
        // connection under idle limits: local, logged, shared again, every two seconds.
        this.keepAliveMs = keepAlivePeriod(await redisIdleTimeout(this.client, this.connectMs), this.idlePingMs);
      }
      for (let i = 0; i < RECHECK_PINGS; i++) await withTimeout(this.send("PING", []), this.timeoutMs, "Redis");
      // A Redis that answers PING but refuses the script (an ACL without EVALSHA/EVAL, a read-only
      // replica, OOM under noeviction) would be shared again only to fail the next request: the
      // script itself, on a probe key, must run. Its error stays the logged reason, once.
      if (!isRateReply(await this.run([`${this.prefix}probe`], [PROBE_LIMIT, PROBE_LIMIT]), 1)) throw new Error(NOT_THE_SCRIPT);
      // (no answer, or a refusal: still local, the entries kept for the next check's drain)
      await this.drainShared();
      if (this.closed) return;
      if (!evictionChecked.has(this.url)) {
        evictionChecked.add(this.url);
        void this.checkEviction();
      }
      this.up = true;
      // The limits refused locally while that drain ran (decided locally until now): drained ahead of
      // every request's script sent from here on (one connection, answered in order). Left for the
      // next outage's drain, they had been lost: a whole burst of each went through in Redis.
      if (this.refusedLocally.size > 0) this.drainShared().catch(() => undefined);
      this.sharedAt = performance.now();
      this.report(true);
    } catch (err) {
      const raw = err instanceof Error ? err.message : String(err);
      const auth = worthAskingWhy(err, this.client.connected, this.url) ? await this.whyRefused(raw) : undefined;
      if (!this.closed) this.report(false, auth ?? raw);
    } finally {
      this.checking = false;
    }
  }

  /**
   * What Redis says about a failed connect (redisAuthFailure), asked again only when the client's
   * own error changes: asked at the first check alone, a Redis whose password changed after the
   * connection was lost was logged as the lost connection only; asked at every check, it would
   * be a second connection each retryMs for as long as the refusal lasts.
   */
  private async whyRefused(raw: string): Promise<string | undefined> {
    if (this.asked?.raw === raw) return this.asked.why;
    const why = await redisAuthFailure(this.url, this.connectMs);
    this.asked = { raw, why };
    return why;
  }

  /**
   * While shared: a command without an answer for silentMs means Redis stopped answering (the
   * requests' own timeouts find it only when requests come); with no command for idlePingMs, a
   * PING asks.
   */
  private watch(stalled: boolean): void {
    if (this.closed) return;
    const now = performance.now();
    if (this.silentSince !== undefined) {
      // (one more turn first, as in redis-wait.ts: after a stall of this process the answer may be in,
      // and a command sent since, by a request that came with it, is not the silent one)
      const since = this.silentSince;
      if (!stalled && now - since >= this.silentMs)
        setTimeout(() => {
          if (this.silentSince === since && this.up) this.lost(`no answer for ${Math.round(performance.now() - since)} ms`);
        }, 0);
      return;
    }
    if (now - this.lastSend >= this.keepAliveMs) this.send("PING", []).catch(() => {});
  }

  /**
   * A Redis that may evict these keys (maxmemory set, a maxmemory-policy other than noeviction)
   * undoes the limits under memory pressure: an evicted bucket reads as a full one. Said once, as
   * a warning; a Redis that does not let us ask (INFO refused) is taken on trust.
   */
  private async checkEviction(): Promise<void> {
    try {
      const info = String(await withTimeout(this.send("INFO", ["memory"]), this.connectMs, "Redis"));
      const field = (name: string) => new RegExp(`^${name}:(\\S*)`, "m").exec(info)?.[1];
      const policy = field("maxmemory_policy");
      const max = Number(field("maxmemory") ?? "0");
      if (policy !== undefined && policy !== "noeviction" && max > 0 && !this.closed) {
        this.log.warn("Redis may evict the rate-limit keys (an evicted bucket is a full one, so the shared limits are exceeded while Redis is short of memory): give the limits a Redis with maxmemory-policy noeviction, or one of their own", {
          maxmemory_policy: policy,
          maxmemory: max,
        });
      }
    } catch {
      // INFO not allowed, or no answer: nothing to say
    }
  }

  private replaceClient(): void {
    const old = this.client;
    old.onclose = null;
    old.close();
    this.silentSince = undefined;
    this.client = this.newClient();
  }

  /** What this limiter last reported: shared (true), local only (false), nothing yet (undefined). */
  get lastReported(): boolean | undefined {
    return this.reported;
  }

  /** The Redis it shares the limits through. */
  get redisUrl(): string {
    return this.url;
  }

  private report(up: boolean, reason?: string): void {
    if (this.reported !== up) {
      this.reported = up;
      if (up) {
        this.asked = undefined;
        this.log.info("rate limits are shared through Redis", {});
      } else {
        this.reasons.start(reason ?? "");
        this.log.warn("Redis is unavailable for the rate limits: this process enforces its local share until it is back", { error: reason });
      }
    } else if (!up && this.reasons.isNew(reason ?? "")) {
      // (a reason that changes while the limits are local, once each, not at every check: OutageReasons)
      this.log.warn("Redis is still unavailable for the rate limits, for another reason", { error: reason });
    }
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  close(): void {
    this.closed = true;
    this.up = false;
    if (this.timer) clearInterval(this.timer);
    this.client.onclose = null;
    this.client.close();
  }
}
