/**
 * The Redis layer's connections (Bun's built-in client): one for commands, one subscribed to the
 * invalidation channel (a subscribed connection can run nothing else), and what happens when
 * Redis is down or slow:
 *
 * - A connection attempt gives up after connect_timeout_ms, a command after operation_timeout_ms
 *   (an answer that came in time during a stall of this process is still taken: redis-wait.ts).
 *   A failed connection, a lost one, or a refusal marks the link down at once: the layer is then
 *   skipped without waiting, and the failure is logged once per state change, not per request.
 * - A command without an answer within operation_timeout_ms fails its own lookup only (a miss:
 *   the origin serves it), and until its late answer comes every command is refused at once
 *   (Redis answers in order: the next would wait as long; no request pays a timeout twice). The
 *   link goes down after SLOW_STRIKES such commands in a row, or when one has had no answer at all
 *   for SILENT_MS (or 4 × operation_timeout_ms: a frozen Redis, a lost flow), as the rate limits
 *   (redis-wait.ts). Down at the first, a Redis answering around the timeout took the layer down
 *   and up again (logged, resynced, yatagarasu_cache_layer_up flipping) dozens of times a minute.
 *   Coming back takes the reconnection's commands (subscribe, the catch-up) each within the
 *   timeout, in a row. The connection stays open: the late answer is its own command's, never a
 *   later one's (the client pairs answers in order).
 * - While down, a reconnect is tried with exponential backoff (with jitter, capped), forever: when
 *   Redis is back the layer resumes by itself, without a restart.
 * - A store of a large value (STORE_BULK_BYTES and more) goes over a third connection of its own,
 *   opened when first needed, with a deadline of operation_timeout_ms plus the value's size at
 *   STORE_BYTES_PER_SECOND: it does not hold up the lookups behind it on the command connection,
 *   and its failure (a timeout, a lost connection) fails that store only: the store connection is
 *   closed (so no late reply or half-sent value remains on it) and the next large store opens a
 *   new one; the layer stays up.
 * - A large entry is read (runBulk) the same way, over a connection of its own, apart from the
 *   stores' (a read does not wait behind a store, nor fail with it): its failure fails that
 *   lookup only (a miss), never the link.
 * - Each time both connections are up, `onUp` runs first (catch-up of missed invalidations,
 *   replay of purges made meanwhile); only then does the layer serve reads again.
 * - The subscribed connection is checked with a PING every SUBSCRIPTION_CHECK_MS (it answers
 *   PING, nothing else): no answer within SUBSCRIPTION_TIMEOUT_MS (or operation_timeout_ms if
 *   longer) is the subscription lost, as a close of the connection would be (link down, reconnect,
 *   catch-up). A flow dropped silently on the way (a lost NAT or conntrack entry, a firewall: no
 *   FIN, no RST) closes nothing, and a subscriber never sends otherwise: without this check the
 *   purges of the other replicas would stop arriving, unnoticed, until the kernel gives up. A
 *   Redis busy for everyone (a slow script, a fork stall) answers neither connection: that is
 *   not a lost subscription unless it lasts SUBSCRIPTION_SILENT_CHECKS checks in a row.
 * - A Redis closes a client idle past its `timeout` setting (a subscriber is exempt): the command
 *   connection gets a PING every half of it (CONFIG GET at each connection), at most every
 *   SUBSCRIPTION_CHECK_MS, or every half of its lowest (1 s) when Redis does not say (an ACL without
 *   CONFIG), so that an idle layer is not taken down (and logged) at every idle sweep.
 *
 * The client's own reconnect and offline queue are off: a command to a dead Redis must fail now,
 * not wait in a queue while a request waits for it.
 */
import { RedisClient } from "bun";
import { redisAuthFailure, worthAskingWhy } from "../util/redis-auth.ts";
import { OutageReasons } from "../util/outage-reasons.ts";
import { keepAlivePeriod, newRedisClient, redisIdleTimeout, RedisTimeout, silentAfter, SLOW_STRIKES, SlowStrikes, withTimeout } from "../util/redis-wait.ts";

export type LinkState = "connecting" | "syncing" | "up" | "down" | "closed";

export interface LinkLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export interface RedisLinkOptions {
  url: string;
  connectTimeoutMs: number;
  operationTimeoutMs: number;
  /** The pub/sub channel the second connection subscribes to. */
  channel: string;
  onMessage(message: string): void;
  /** Runs when both connections are up, before reads are served again. */
  onUp(): Promise<void>;
  log?: LinkLogger;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** How often the subscribed connection is PINGed (default SUBSCRIPTION_CHECK_MS; tests shorten it). */
  subscriptionCheckMs?: number;
  /** How long its answer may take (default SUBSCRIPTION_TIMEOUT_MS, or operation_timeout_ms if longer). */
  subscriptionTimeoutMs?: number;
}

/** The link is not up: the layer is skipped. */
export class RedisUnavailable extends Error {
  override name = "RedisUnavailable";
}

/** Where Redis is, for logs: never the userinfo (it may hold a password). */
export function redisTarget(url: string): string {
  const u = URL.parse(url);
  if (u === null) return "redis";
  return `${u.protocol}//${u.host}${u.pathname !== "/" ? u.pathname : ""}`;
}

/** The database a Redis URL selects (its path; 0 when it has none). */
export function redisDatabase(url: string): number {
  const m = /^\/(\d+)$/.exec(URL.parse(url)?.pathname ?? "");
  return m ? Number(m[1]) : 0;
}

const noop = () => {};

/** A failure for the log: Redis's own words for an error reply (NOPERM, OOM, …), the client's code for the rest. */
function describe(err: unknown): string {
  const e = err as { code?: string; message?: string };
  // (Bun's code for a refused SELECT is ERR_REDIS_INVALID_COMMAND, its message Redis's NOPERM)
  if (e?.message && (e.code === "ERR_REDIS_SERVER_ERROR" || /^[A-Z][A-Z_]+ /.test(e.message))) return e.message;
  return e?.code ?? e?.message ?? String(err);
}

/**
 * A reason as /ready shows it, to anyone who can reach it: Redis 7.2 and later name the ACL user in
 * NOPERM ("User yatagarasu has no permissions to run the 'get' command"), and the key or channel
 * refused, which may hold an object's key; the log keeps Redis's words whole.
 */
export function withheldNames(reason: string): string {
  return reason.replace(/\bUser \S+ has no permissions/g, "User (withheld) has no permissions").replace(/\bthe '[^']*' (key|channel)\b/g, "a $1");
}

/**
 * A failure that takes the link down: any but an error reply, and of those READONLY and NOPERM
 * (refusesLayer).
 */
function takesLinkDown(err: unknown): boolean {
  return (err as { code?: string }).code !== "ERR_REDIS_SERVER_ERROR" || refusesLayer(err);
}

/**
 * Redis refusing the layer a command for as long as it is so set up, which at connect keeps the
 * link down (onUp's commands): a Redis demoted to a replica while connected (a failover) refuses
 * every store and purge yet still serves reads, so a purge it refused left this replica serving
 * the purged object from it; a command taken from the layer's user (ACL SETUSER -get) made every
 * lookup a silent miss (or every fill unstored) while the layer said it was up. Down, the purges
 * queue until it takes them, and the reason is logged.
 */
function refusesLayer(err: unknown): boolean {
  return /^(READONLY|NOPERM) /.test((err as { message?: string }).message ?? "");
}

/** How often the subscribed connection is PINGed, to find a flow lost without a close. */
const SUBSCRIPTION_CHECK_MS = 5000;
/** The longest wait for that PING's answer (operation_timeout_ms when it is longer). */
const SUBSCRIPTION_TIMEOUT_MS = 2000;
/** Checks in a row with no answer on either connection (a Redis busy for everyone, or every flow lost) before the subscription counts as lost. */
const SUBSCRIPTION_SILENT_CHECKS = 3;

/** From this size on, a store goes over the store connection (runStore). */
export const STORE_BULK_BYTES = 1 << 20;
/** The throughput a store's deadline assumes on top of operation_timeout_ms (a conservative 50 MiB/s). */
export const STORE_BYTES_PER_SECOND = 50 * (1 << 20);
/**
 * The bytes that may wait for a bulk connection (runBulk) besides the command running on it: a
 * large read queued behind more would wait longer than a fetch from the upstream takes (~1.3 s
 * at STORE_BYTES_PER_SECOND), and a queued store holds its value in memory. Beyond it, the
 * command is refused at once (a read's miss, a store skipped).
 */
export const BULK_QUEUE_BYTES = 64 * (1 << 20);
/**
 * How long a large read may wait for its turn, beyond operation_timeout_ms: BULK_QUEUE_BYTES at
 * STORE_BYTES_PER_SECOND (1.28 s). The byte bound assumes Redis moves them that fast; a Redis
 * slower than that (a congested link) ran each read to its deadline, and every read queued behind
 * waited for all those before it (16 clients at once: the last 9 s) before going upstream. A read
 * whose turn has not come by then is refused then (a miss); a store waits on (it holds no client).
 */
export const BULK_WAIT_MS = Math.ceil((BULK_QUEUE_BYTES / STORE_BYTES_PER_SECOND) * 1000);

/** A bulk connection's queue: one command at a time (runBulk), the bytes waiting, and its end. */
interface BulkQueue {
  tail: Promise<void>;
  waiting: number;
}

export class RedisLink {
  private stateValue: LinkState = "connecting";
  private reasonValue: string | undefined = "connecting";
  private cmd: RedisClient | undefined;
  private sub: RedisClient | undefined;
  /** The large stores' and the large reads' connections (runBulk), each opened when first needed. */
  private readonly bulk = new Map<"store" | "read", Promise<RedisClient>>();
  private readonly bulkQueues = new Map<"store" | "read", BulkQueue>();
  /** After a large connection's connect failed: no other opened before `until`; `ms`, the hold, doubled at each failure in a row (runBulkNow). */
  private readonly bulkHolds = new Map<"store" | "read", { until: number; ms: number; reason: string }>();
  private retry: ReturnType<typeof setTimeout> | undefined;
  private backoff: number;
  private attempt = 0;
  private errorCount = 0;
  /** Settles when the first connection attempt has ended, up or down (firstAttempt). */
  private readonly firstTry = Promise.withResolvers<void>();
  /** The last state logged ("up" or "down"): one line per change. */
  private logged: "up" | "down" | undefined;
  /** The reasons the current outage has logged (down): each once, OUTAGE_REASONS at most. */
  private readonly saidReasons = new OutageReasons();
  private readonly minBackoff: number;
  private readonly maxBackoff: number;
  /** The subscribed connection's PING timer (watchSubscription). */
  private watch: ReturnType<typeof setInterval> | undefined;
  /** The command connection's PING timer (keepAlive). */
  private keepAliveTimer: ReturnType<typeof setInterval> | undefined;
  private readonly subCheckMs: number;
  private readonly subTimeoutMs: number;
  /** Commands on the command connection that timed out and are still without an answer (run refuses meanwhile). */
  private late = 0;
  /** When the oldest of them was sent, and what it was. */
  private lateSince: number | undefined;
  private lateWhat = "";
  /** Down when they have had no answer for silentMs. */
  private lateTimer: ReturnType<typeof setTimeout> | undefined;
  /** Timed-out commands in a row (SLOW_STRIKES). */
  private readonly strikes = new SlowStrikes();
  private readonly silentMs: number;

  constructor(private readonly opts: RedisLinkOptions) {
    this.minBackoff = opts.minBackoffMs ?? 100;
    this.maxBackoff = opts.maxBackoffMs ?? 2000;
    this.subCheckMs = opts.subscriptionCheckMs ?? SUBSCRIPTION_CHECK_MS;
    this.subTimeoutMs = opts.subscriptionTimeoutMs ?? Math.max(SUBSCRIPTION_TIMEOUT_MS, opts.operationTimeoutMs);
    this.backoff = this.minBackoff;
    this.silentMs = silentAfter(opts.operationTimeoutMs);
    void this.connect().finally(() => this.firstTry.resolve());
  }

  /** Settles once the first connection attempt has ended (the link up, or down with a reason). */
  get firstAttempt(): Promise<void> {
    return this.firstTry.promise;
  }

  /** Serving reads and writes. */
  get up(): boolean {
    return this.stateValue === "up";
  }

  get state(): LinkState {
    return this.stateValue;
  }

  get reason(): string | undefined {
    return this.stateValue === "up" ? undefined : this.reasonValue;
  }

  get errors(): number {
    return this.errorCount;
  }

  /**
   * One command within operation_timeout_ms. Rejects when the link is down or the command fails;
   * a transport failure or a timeout also marks the link down (an error reply from Redis does not,
   * but READONLY and NOPERM: takesLinkDown). `optional`: a command the layer does without (INFO),
   * whose error reply is an answer.
   */
  async run<T>(what: string, fn: (c: RedisClient) => Promise<T>, optional = false): Promise<T> {
    const c = this.cmd;
    if ((this.stateValue !== "up" && this.stateValue !== "syncing") || c === undefined) throw new RedisUnavailable(this.reasonValue ?? "down");
    if (this.late > 0) throw new RedisUnavailable(`${what}: Redis has not answered a command sent ${Math.round(performance.now() - this.lateSince!)} ms ago yet`);
    const sent = performance.now();
    const p = fn(c);
    try {
      const v = await withTimeout(p, this.opts.operationTimeoutMs); // (down() says "<what>: ")
      this.strikes.answered(sent);
      return v;
    } catch (err) {
      this.errorCount++;
      const answered = (err as { code?: string }).code === "ERR_REDIS_SERVER_ERROR";
      if (answered) this.strikes.answered(sent);
      // (while syncing, a timeout keeps the link down: coming back takes answers in time)
      if (err instanceof RedisTimeout && this.stateValue === "up" && this.cmd === c) {
        this.awaitLate(c, p, sent, what);
        if (!this.strikes.timedOut(sent)) throw err;
        this.down(`${what}: ${describe(err)} (${SLOW_STRIKES} commands in a row)`);
        throw err;
      }
      if (takesLinkDown(err) && !(optional && answered) && this.cmd === c) this.down(`${what}: ${describe(err)}`);
      throw err;
    }
  }

  /** A command on `c` that timed out: commands are refused until its answer comes, the link down if none comes within silentMs. */
  private awaitLate(c: RedisClient, p: Promise<unknown>, sent: number, what: string): void {
    this.late++;
    if (this.lateSince === undefined || sent < this.lateSince) [this.lateSince, this.lateWhat] = [sent, what];
    const settle = () => {
      if (this.cmd !== c || --this.late > 0) return;
      this.lateSince = undefined;
      clearTimeout(this.lateTimer);
      this.lateTimer = undefined;
    };
    p.then(settle, settle);
    if (this.lateTimer !== undefined) return;
    const check = (again: boolean) => {
      if (this.cmd !== c || this.late === 0) return;
      // (one more turn first, as in redis-wait.ts: after a stall of this process the answer may be in)
      if (again) this.lateTimer = setTimeout(() => check(false), 0);
      else {
        this.lateTimer = undefined;
        this.errorCount++;
        this.down(`${this.lateWhat}: no answer for ${Math.round(performance.now() - this.lateSince!)} ms`);
      }
    };
    this.lateTimer = setTimeout(() => check(true), Math.max(0, this.silentMs - (performance.now() - sent)));
    this.lateTimer.unref?.();
  }

  /**
   * A store of a `bytes`-long value. A small one is run(); a large one goes over the store
   * connection within operation_timeout_ms + bytes at STORE_BYTES_PER_SECOND, and its failure
   * closes that connection only (the link stays up: the lookups never queued behind it).
   */
  async runStore<T>(what: string, bytes: number, fn: (c: RedisClient) => Promise<T>): Promise<T> {
    if (bytes < STORE_BULK_BYTES) return this.run(what, fn);
    return this.runBulk("store", what, bytes, fn);
  }

  /**
   * A command moving `bytes` (a large store or read) over the `use` connection within
   * operation_timeout_ms + bytes at STORE_BYTES_PER_SECOND; its failure closes that connection
   * only (the link stays up: the lookups never queued behind it). One command at a time per
   * connection, its deadline from its turn: pipelined, each deadline ran from its call while
   * Redis still moved the ones before, so two or three 20 MiB fills at once all timed out, and the
   * first timeout closed the connection under the others (none stored, every read a miss).
   * Beyond BULK_QUEUE_BYTES waiting, refused at once.
   */
  async runBulk<T>(use: "store" | "read", what: string, bytes: number, fn: (c: RedisClient) => Promise<T>): Promise<T> {
    if ((this.stateValue !== "up" && this.stateValue !== "syncing") || this.cmd === undefined) throw new RedisUnavailable(this.reasonValue ?? "down");
    let q = this.bulkQueues.get(use);
    if (q === undefined) this.bulkQueues.set(use, (q = { tail: Promise.resolve(), waiting: 0 }));
    if (q.waiting > 0 && q.waiting + bytes > BULK_QUEUE_BYTES) throw new Error(`${what}: ${q.waiting} bytes already wait for the ${use} connection`);
    q.waiting += bytes;
    const turn = q.tail;
    let done!: () => void;
    q.tail = new Promise<void>((r) => (done = r));
    if (use === "read") {
      const waitMs = this.opts.operationTimeoutMs + BULK_WAIT_MS;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = await Promise.race([turn.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), waitMs)))]); // (turn never rejects)
      clearTimeout(timer);
      if (late) {
        q.waiting -= bytes;
        void turn.then(done); // (the commands queued behind this one keep their order)
        throw new Error(`${what}: its turn on the ${use} connection did not come within ${waitMs} ms`);
      }
    } else await turn; // (never rejects)
    q.waiting -= bytes;
    try {
      return await this.runBulkNow(use, what, bytes, fn);
    } finally {
      done();
    }
  }

  private async runBulkNow<T>(use: "store" | "read", what: string, bytes: number, fn: (c: RedisClient) => Promise<T>): Promise<T> {
    if ((this.stateValue !== "up" && this.stateValue !== "syncing") || this.cmd === undefined) throw new RedisUnavailable(this.reasonValue ?? "down");
    const ms = this.opts.operationTimeoutMs + Math.ceil((bytes / STORE_BYTES_PER_SECOND) * 1000);
    let conn = this.bulk.get(use);
    if (conn === undefined) {
      // A connect that failed holds the next one off (minBackoffMs, doubled at each failure in a row
      // up to maxBackoffMs), the large commands meanwhile refused at once: with new connections to
      // Redis unanswered (a firewall or conntrack table dropping new flows, the established ones
      // working), each large read waited connect_timeout_ms for its own connection, then missed.
      const hold = this.bulkHolds.get(use);
      if (hold !== undefined && performance.now() < hold.until) throw new Error(`${what}: the ${use} connection could not be opened (${hold.reason}); tried again within ${hold.ms} ms`);
      const c = newRedisClient(this.opts.url, this.opts.connectTimeoutMs);
      const opened = withTimeout(c.connect(), this.opts.connectTimeoutMs, "connect").then(
        () => {
          this.bulkHolds.delete(use);
          return c;
        },
        (err) => {
          c.close();
          const ms = hold === undefined ? this.minBackoff : Math.min(hold.ms * 2, this.maxBackoff);
          this.bulkHolds.set(use, { until: performance.now() + ms, ms, reason: describe(err) });
          throw err;
        },
      );
      conn = opened;
      this.bulk.set(use, opened);
      opened.then((c) => (c.onclose = () => this.bulk.get(use) === opened && this.bulk.delete(use))).catch(noop);
    }
    try {
      const c = await conn;
      return await withTimeout(fn(c), ms, what);
    } catch (err) {
      this.errorCount++;
      if ((err as { code?: string }).code !== "ERR_REDIS_SERVER_ERROR" && this.bulk.get(use) === conn) this.dropBulk(use);
      else if (refusesLayer(err)) this.down(`${what}: ${describe(err)}`);
      throw err;
    }
  }

  private dropBulk(use: "store" | "read"): void {
    const conn = this.bulk.get(use);
    this.bulk.delete(use);
    conn?.then((c) => {
      c.onclose = null;
      c.close();
    }, noop);
  }

  private async connect(): Promise<void> {
    if (this.stateValue === "closed") return;
    const n = ++this.attempt;
    // (Bun's own connect timeout is beyond ours, a stall of this process included (newRedisClient):
    // it came first, as ERR_REDIS_CONNECTION_CLOSED, and a Redis back by the time redisAuthFailure
    // asked refused nothing: a frozen Redis with a password logged that as another reason at every
    // outage. Ours is `no answer within`.)
    const cmd = newRedisClient(this.opts.url, this.opts.connectTimeoutMs);
    const sub = newRedisClient(this.opts.url, this.opts.connectTimeoutMs);
    const current = () => n === this.attempt && this.stateValue !== "closed";
    let connected = false;
    try {
      await withTimeout(Promise.all([cmd.connect(), sub.connect()]), this.opts.connectTimeoutMs); // (down() says "connect: ")
      connected = true;
      await withTimeout(sub.subscribe(this.opts.channel, (m) => this.opts.onMessage(m)), this.opts.operationTimeoutMs, "subscribe");
      const idleTimeout = await redisIdleTimeout(cmd, this.opts.operationTimeoutMs);
      if (!current()) throw new Error("superseded");
      // (a lost connection and each failed reconnect count as errors: with every request served
      // by an upper layer no command fails, and the error counter stayed 0 while Redis was down)
      const lost = (err: Error) => {
        if (this.cmd !== cmd) return;
        this.errorCount++;
        this.down(`connection lost: ${describe(err)}`);
      };
      cmd.onclose = lost;
      sub.onclose = lost;
      this.cmd = cmd;
      this.sub = sub;
      this.watchSubscription(sub);
      this.keepAlive(cmd, idleTimeout);
      this.stateValue = "syncing";
      await this.opts.onUp();
      if (!current() || this.cmd !== cmd) return;
      this.stateValue = "up";
      this.reasonValue = undefined;
      this.backoff = this.minBackoff;
      if (this.logged !== "up") {
        this.logged = "up";
        this.opts.log?.info("redis cache layer up", { redis: redisTarget(this.opts.url) });
      }
    } catch (err) {
      if (this.cmd !== cmd) {
        cmd.close();
        sub.close();
      }
      if (!current()) return;
      const auth = worthAskingWhy(err, connected, this.opts.url) ? await redisAuthFailure(this.opts.url, this.opts.connectTimeoutMs) : undefined;
      if (!current()) return;
      this.errorCount++;
      this.down(`connect: ${auth ?? describe(err)}`);
    }
  }

  /**
   * PINGs the subscribed connection every subCheckMs; no answer within subTimeoutMs is the
   * subscription lost (as its close would be). An error reply is an answer: the flow is alive.
   */
  private watchSubscription(sub: RedisClient): void {
    clearInterval(this.watch);
    let waiting = false;
    /** Checks in a row without an answer on either connection. */
    let silent = 0;
    const answered = (err: unknown) => (err as { code?: string } | undefined)?.code === "ERR_REDIS_SERVER_ERROR";
    this.watch = setInterval(() => {
      if (waiting || this.sub !== sub) return;
      waiting = true;
      const ping = sub.send("PING", []);
      withTimeout(ping, this.subTimeoutMs, "PING on the subscribed connection").then(
        () => {
          waiting = false;
          silent = 0;
        },
        async (err) => {
          if (answered(err) || this.sub !== sub) {
            waiting = false;
            silent = 0;
            return;
          }
          // No answer on the subscription: its flow is lost, or Redis is busy for every client (a
          // long script, a fork stall). The command connection tells them apart: once it answers,
          // the subscription's PING (sent before) is answered too unless its flow is gone. If
          // neither answers, it counts as lost only after SUBSCRIPTION_SILENT_CHECKS such checks
          // in a row (every flow gone at once).
          const cmd = this.cmd;
          const cmdAlive = cmd !== undefined && (await withTimeout(cmd.send("PING", []), this.subTimeoutMs, "PING").then(() => true, (e) => answered(e)));
          const subLate = cmdAlive && (await withTimeout(ping, this.subTimeoutMs, "PING on the subscribed connection").then(() => true, (e) => answered(e)));
          waiting = false;
          if (this.sub !== sub) return;
          if (subLate) {
            silent = 0;
            return;
          }
          if (!cmdAlive && ++silent < SUBSCRIPTION_SILENT_CHECKS) return;
          this.errorCount++;
          this.down(`subscription lost: ${describe(err)}`);
        },
      );
    }, this.subCheckMs);
    this.watch.unref?.();
  }

  /**
   * PINGs the command connection often enough that Redis never finds it idle past its `timeout`:
   * pinged only at each subscription check (every 5 s), it was closed under an idle layer by a
   * Redis whose timeout is shorter, the layer down and logged each time.
   */
  private keepAlive(cmd: RedisClient, idleTimeoutMs: number | undefined): void {
    const ms = keepAlivePeriod(idleTimeoutMs, this.subCheckMs);
    clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = setInterval(() => cmd.send("PING", []).catch(noop), ms);
    this.keepAliveTimer.unref?.();
  }

  /** Marks the link down (closing both connections) and schedules a reconnect. */
  private down(reason: string): void {
    if (this.stateValue === "closed") return;
    this.stateValue = "down";
    this.reasonValue = reason;
    this.dropClients();
    // (a reason without the step that met it: the same refusal met by a lookup, then at reconnect, is no change)
    const what = reason.slice(reason.indexOf(": ") + 1);
    if (this.logged !== "down") {
      this.logged = "down";
      this.saidReasons.start(what);
      this.opts.log?.warn("redis cache layer unavailable: skipped until it answers again", { redis: redisTarget(this.opts.url), reason });
    } else if (this.saidReasons.isNew(what)) {
      // (a reason that changes while the layer is down, once each, not at every retry: OutageReasons)
      this.opts.log?.warn("redis cache layer still unavailable, for another reason", { redis: redisTarget(this.opts.url), reason });
    }
    if (this.retry !== undefined) return;
    const wait = this.backoff * (0.75 + Math.random() * 0.5);
    this.backoff = Math.min(this.backoff * 2, this.maxBackoff);
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.connect();
    }, wait);
    this.retry.unref?.();
  }

  private dropClients(): void {
    clearInterval(this.watch);
    this.watch = undefined;
    clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
    clearTimeout(this.lateTimer);
    this.lateTimer = undefined;
    this.late = 0;
    this.lateSince = undefined;
    this.strikes.reset();
    for (const c of [this.cmd, this.sub]) {
      if (c === undefined) continue;
      c.onclose = null;
      c.close();
    }
    this.cmd = undefined;
    this.sub = undefined;
    this.dropBulk("store");
    this.dropBulk("read");
  }

  close(): void {
    this.stateValue = "closed";
    this.reasonValue = "closed";
    clearTimeout(this.retry);
    this.retry = undefined;
    this.dropClients();
  }
}
