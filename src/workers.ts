/**
 * server.workers: N > 1 runs N serving processes on one port with SO_REUSEPORT (the kernel spreads
 * connections): the primary (worker 0) serves like a single process and also spawns N-1 child
 * processes of the same executable (workers 1..N-1). No process only supervises.
 *
 * - Port: the primary listens first (with `port: 0` the kernel picks one) and passes the port to
 *   its children (YATAGARASU_PORT).
 * - Signals: SIGTERM/SIGINT to the primary are passed on to every child (over IPC, so a child
 *   that got the same signal from its process group does not count it twice) while the primary
 *   drains itself; it exits once it has drained and every child has exited. A second signal to
 *   the primary cuts every drain short.
 * - Config: the primary is the only process that reads the config file. A child gets the exact
 *   text the primary validated (with the file's name and folder, for messages and relative paths;
 *   ${VAR}s resolve in the environment it inherited) over IPC, never on its command line: it asks
 *   for the primary's current one when it starts (a child restarted after a crash joins the
 *   primary's current generation, whatever the file holds now), and gets the new one with every
 *   reload. A child that cannot apply what it was sent (the primary validated it, so only a file
 *   the config names changing in between could do that) logs it and keeps its config; at start-up
 *   it waits for the next one.
 * - Reload: SIGHUP to any process, or POST /admin/reload on any process. Every reload is the
 *   primary's: a child asks it over IPC; the primary reloads itself and, if that worked, sends
 *   every child the text it now runs and its generation; a child reloads to exactly that (the
 *   latest it was sent, one reload after the other, skipping a generation it has reached), so a
 *   burst of reloads ends with every process on the primary's generation and config. A child
 *   reports every outcome to the primary ("generation": what it runs, or the generation it could
 *   not apply), and the reload settles only once every child slot runs the new generation (or a
 *   later one), failed to apply it, or RELOAD_WAIT_MS passed: its answer (the admin API's, the
 *   primary's log line) says which worker is where, so a 200 means no worker serves the old config.
 *   A slot whose child is gone is waited for too (its replacement starts on the primary's current
 *   config, so it reports the new generation), unless the group is stopping.
 * - Metrics: the primary serves the metrics listener and merges its own snapshot with the
 *   children's (over IPC). Counters and histograms never go backwards while the primary lives:
 *   the last values a dead child reported are kept and added to the others' (gauges are not:
 *   they show the live processes only; a live child that does not answer in time counts with
 *   its last snapshot, gauges included).
 * - Cache purges: a purge in any process (a write, a delete, the admin API) goes to every other
 *   process over IPC (a child's through the primary), and the purging process waits until each has
 *   dropped the key from its own layers (memory, its disk folder), at most PURGE_WAIT_MS: a write's
 *   answer comes after no worker can serve the old object.
 * - Per process (not shared): memory cache, request coalescing, rate-limit buckets (each process
 *   enforces 1/N of every configured rate, so the total stays correct), concurrency cap (each
 *   process allows max_concurrent_requests / N).
 * - A child that dies unexpectedly is restarted (at most once per second per slot).
 */
import type { TlsMaterial } from "./server.ts";
import type { Subprocess } from "bun";
import { existsSync, writeFileSync } from "node:fs";
import type { Config } from "./config/load.ts";
import { workerProcesses } from "./config/schema.ts";
import { renderMerged } from "./observe/metrics.ts";
import type { Logger } from "./observe/log.ts";
import { mergeSnapshots, type Snapshot } from "./observe/registry.ts";
import type { RemoteInvalidation } from "./cache/types.ts";

/** How long a purge waits for the other processes to confirm it (a wedged worker must not hold every write). */
const PURGE_WAIT_MS = 2000;
/** Purges kept for a slot with no child to take them; beyond, its replacement drops everything. */
const MAX_MISSED_PURGES = 1000;

let purgeAsks = 0;
const pendingPurges = new Map<number, () => void>();

/** Resolves when `done` is called or after `ms`, whichever comes first. */
function settleWithin(ms: number, register: (done: () => void) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    register(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

/**
 * In a child: a purge made here, sent to the primary, which applies it and passes it to the other
 * children; resolves once they all have (or after PURGE_WAIT_MS). Undefined outside a child.
 */
export function askPrimaryToPurge(inv: RemoteInvalidation): Promise<void> | undefined {
  if (!process.send || !process.connected) return undefined;
  const id = ++purgeAsks;
  return settleWithin(PURGE_WAIT_MS, (done) => {
    pendingPurges.set(id, () => {
      pendingPurges.delete(id);
      done();
    });
    try {
      process.send!({ type: "purge", id, inv });
    } catch {
      pendingPurges.delete(id);
      done();
    }
  }).finally(() => pendingPurges.delete(id));
}

/** In a child: the primary's word that a purge this child asked for reached every process. */
export function purgeDone(m: { id?: number }): void {
  if (m.id !== undefined) pendingPurges.get(m.id)?.();
}

/** 1..N-1 in a child process; 0 in the primary of a multi-process group; undefined for a single process. */
export function workerIndex(): number | undefined {
  const v = process.env.YATAGARASU_WORKER;
  return v === undefined ? undefined : Number(v);
}

/** A child that exits sooner than this after its start did not really start (restarts back off). */
const QUICK_EXIT_MS = 10_000;
/** The longest wait before such a child is started again. */
const MAX_RESTART_DELAY_MS = 30_000;

export function workerCount(cfg: Config): number {
  return workerProcesses(cfg.server.workers);
}

/** The config text a worker process runs: the exact text its primary validated, and how it resolves. */
export interface ConfigText {
  text: string;
  /** The primary's config file: only the name errors carry (a worker never reads it). */
  file: string;
  /** The folder relative paths in the config resolve against (the config file's). */
  baseDir: string;
}

/** What the primary sends a child: the config text it runs, and that generation. */
export interface SentConfig extends ConfigText {
  generation: number;
  /**
   * server.https's certificate and key as the primary read them at its start: every worker serves
   * that pair, a child restarted after a crash included (reading the files itself, it served a
   * certificate renewed on disk since, beside its siblings' old one).
   */
  tls?: TlsMaterial;
}

/** Set in a child started with its group when the primary's start waited for Redis in vain: it does not wait again. */
export const START_WAITED_ENV = "YATAGARASU_REDIS_WAITED";

/** How long a starting child waits for the primary's config before it gives up (exit, restarted). */
const CONFIG_WAIT_MS = 30_000;

/** In a child: the newest config the primary sent, and who waits for a newer one. */
let sentLatest: SentConfig | undefined;
const sentWatchers = new Set<() => void>();
let askedForConfig = false;

/**
 * In a child: other processes' purges that came before this process had a cache to apply them to
 * (while it starts), and what applies them once it has one (applyPurgesFromPrimary).
 */
const queuedPurges: Array<{ id?: number; inv: RemoteInvalidation }> = [];
let purgeApplier: ((inv: RemoteInvalidation) => Promise<void>) | undefined;

function receivePurge(id: number | undefined, inv: RemoteInvalidation | undefined): void {
  const ack = () => {
    if (id !== undefined) process.send?.({ type: "purge-ack", id });
  };
  if (inv === undefined) return ack();
  if (purgeApplier === undefined) queuedPurges.push({ ...(id !== undefined ? { id } : undefined), inv });
  else void purgeApplier(inv).catch(() => undefined).then(ack);
}

/**
 * In a child: applies every purge another process of the group made, from now on and those that
 * came while this one started (with its config: the purges its slot missed while no child ran in
 * it), each confirmed to the primary once applied. Called before it serves: its disk folder may
 * hold an object written over meanwhile.
 */
export function applyPurgesFromPrimary(apply: (inv: RemoteInvalidation) => Promise<void>): void {
  purgeApplier = apply;
  for (const p of queuedPurges.splice(0)) receivePurge(p.id, p.inv);
}

/** In a child: a config from the primary (its answer at start-up, or with a reload); the newest generation wins. */
function receiveConfig(m: unknown): void {
  const msg = m as (Partial<SentConfig> & { type?: string; id?: number; inv?: RemoteInvalidation; purges?: RemoteInvalidation[] }) | null;
  if (msg?.type === "purge") return receivePurge(msg.id, msg.inv);
  if (msg?.type === "config" && Array.isArray(msg.purges)) for (const inv of msg.purges) receivePurge(undefined, inv);
  if (msg?.type !== "config" && msg?.type !== "reload") return;
  const { text, file, baseDir, generation, tls } = msg;
  if (typeof text !== "string" || typeof file !== "string" || typeof baseDir !== "string" || typeof generation !== "number") return;
  if (sentLatest && generation <= sentLatest.generation) return;
  sentLatest = { text, file, baseDir, generation };
  if (tls !== undefined && typeof tls.cert === "string" && typeof tls.key === "string") sentLatest.tls = { cert: tls.cert, key: tls.key };
  for (const w of [...sentWatchers]) w();
}

/**
 * In a child: the primary's config, with a generation above `after` (the first time, it asks the
 * primary for its current one). Rejects when there is no primary, it is gone, or (`after` 0: its
 * answer to that request) it sent nothing within CONFIG_WAIT_MS. A later one comes with the
 * primary's next successful reload, however long that takes.
 */
export function configFromPrimary(after = 0): Promise<SentConfig> {
  if (!process.send || !process.connected) return Promise.reject(new Error("no primary to get the config from (YATAGARASU_WORKER is set only in a worker process its primary started)"));
  if (!askedForConfig) {
    askedForConfig = true;
    process.on("message", receiveConfig);
    process.send({ type: "config-request" });
  }
  return new Promise<SentConfig>((resolve, reject) => {
    const check = () => {
      if (sentLatest && sentLatest.generation > after) settle(() => resolve(sentLatest!));
    };
    const gone = () => settle(() => reject(new Error("the primary is gone")));
    const t = after === 0 ? setTimeout(() => settle(() => reject(new Error(`no config from the primary within ${CONFIG_WAIT_MS / 1000} s`))), CONFIG_WAIT_MS) : undefined;
    const settle = (f: () => void) => {
      clearTimeout(t);
      sentWatchers.delete(check);
      process.off("disconnect", gone);
      f();
    };
    sentWatchers.add(check);
    process.on("disconnect", gone);
    check();
  });
}

/** In a child: the newest config the primary sent (undefined outside a child). */
export function latestSentConfig(): SentConfig | undefined {
  return sentLatest;
}

/** In a child: `f` runs whenever the primary sends a newer config. */
export function onSentConfig(f: () => void): void {
  sentWatchers.add(f);
}

/** Where one worker of a group stands after a reload of the group. */
export interface WorkerReload {
  worker: number;
  /**
   * reloaded: runs the reload's generation (or a later one); failed: could not apply it (`error`),
   * keeps serving `generation`; no answer: had not reported either within RELOAD_WAIT_MS (busy,
   * wedged, or restarting and not serving yet); stopped: exited while the group stops.
   */
  status: "reloaded" | "failed" | "no answer" | "stopped";
  /** The generation it serves, as it last reported (absent: it has not reported one yet). */
  generation?: number;
  error?: string;
}

export interface ReloadResult {
  ok: boolean;
  error?: string;
  generation: number;
  /**
   * A reload of a multi-process group: where every worker stands (worker 0 first). Present once
   * the primary reloaded; then `ok` is false when a worker failed or did not answer in time
   * (`partial`), and `error` names them.
   */
  workers?: WorkerReload[];
  /** The primary reloaded (`generation`), but not every other worker did. */
  partial?: boolean;
}

/**
 * How long a reload of the group waits for every child to report that it applied the new
 * generation (or failed to). A child's reload may have to load a changed jwks_url (up to 5 s) and
 * a replacement child must start (up to 1 s before it is spawned): this is beyond both.
 */
const RELOAD_WAIT_MS = 10_000;

/** How far apart the SIGHUPs of one signal to the whole group may reach its processes (Children.hup). */
const HUP_GROUP_MS = 1000;

let reloadAsks = 0;
const pendingReloads = new Map<number, (r: ReloadResult) => void>();

/**
 * In a child: asks the primary to reload every process (SIGHUP or the admin API on this child)
 * and resolves with the primary's answer once it has arrived: the primary answers once every
 * child (this one included) has reported its outcome, so the answer says where this child stands
 * too. In a single process or the primary: undefined (nobody to ask). `hup`: asked by a SIGHUP
 * (the primary counts one sent to the whole group once, see Children.hup).
 */
export function askPrimaryToReloadAll(ownGeneration: () => number, hup = false): Promise<ReloadResult> | undefined {
  if (!process.send || !process.connected) return undefined;
  const id = ++reloadAsks;
  return new Promise<ReloadResult>((resolve) => {
    // (it may have reloaded before it went: what the others run is unknown, not "unchanged")
    const gone = () => answer({ ok: false, partial: true, error: "worker 0 is gone (the group is stopping): the outcome of the reload is unknown", generation: ownGeneration() });
    const answer = (r: ReloadResult) => {
      pendingReloads.delete(id);
      process.off("disconnect", gone);
      resolve(r);
    };
    pendingReloads.set(id, answer);
    process.on("disconnect", gone);
    try {
      process.send!(hup ? { type: "reload-all", id, hup } : { type: "reload-all", id });
    } catch {
      gone();
    }
  });
}

/** In a child: the primary's answer to askPrimaryToReloadAll. */
export function reloadAnswered(m: { id?: number; result?: ReloadResult }): void {
  if (m.id !== undefined && m.result) pendingReloads.get(m.id)?.(m.result);
}

/**
 * In a child: tells the primary where this process stands: the generation it serves (undefined:
 * not serving yet) and, when it could not apply one the primary sent, that generation and why.
 * A reload of the group waits for these.
 */
export function reportGeneration(running: number | undefined, failed?: { generation: number; error: string }): void {
  if (!process.send || !process.connected) return;
  try {
    process.send({ type: "generation", running, ...(failed ? { failed: { generation: failed.generation, error: failed.error.slice(0, 2000) } } : undefined) });
  } catch {
    // the primary is gone: nobody waits
  }
}

/** argv to start this same program again (compiled binary or `bun src/main.ts`). */
function selfCommand(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/");
  // The executable this process runs, not the file now at its path: an upgrade in place (a package
  // manager renames the new version over it, or removes it) started a child of another version, or
  // none (posix_spawn ENOENT: the primary crashed, exit 70, and the group with it).
  const exe = existsSync(SELF_EXE) ? SELF_EXE : process.execPath;
  // The compiled binary adds its built-in execArgv itself; from source, the primary's own flags
  // (--max-http-header-size) go to the children too.
  return compiled ? [exe] : [exe, ...process.execArgv, Bun.main];
}

/** Linux: the running executable, even once removed or replaced on disk. */
const SELF_EXE = "/proc/self/exe";

/** A child's argv[0] (`ps -ef`, `pgrep -f`): "yatagarasu: worker 1". */
const childTitle = (i: number) => `yatagarasu: worker ${i}`;

/**
 * A child's process name (`ps -e`, top: the executable's file name, "exe" for /proc/self/exe),
 * "yatagarasu-w1" (the kernel keeps 15 bytes). Best effort: Linux only.
 */
export function nameWorkerProcess(i: number): void {
  try {
    writeFileSync("/proc/self/comm", `yatagarasu-w${i}`.slice(0, 15));
  } catch {
    // not Linux, or /proc not mounted: the name stays the executable's
  }
}

export interface Children {
  /** Merges the primary's own snapshot with every live child's (and what dead children had counted). */
  renderMetrics(): Promise<string>;
  /**
   * Reloads the primary, then (if that worked) every child to the generation it reached; resolves
   * once every child slot reports that generation (or a later one) or a failure to apply it, or
   * after the reload wait (RELOAD_WAIT_MS): `workers` says where each stands.
   */
  reloadAll(): Promise<ReloadResult>;
  /**
   * A SIGHUP received by process `from` (0: the primary): one sent to the whole group (`kill -HUP
   * -<pgid>`, `systemctl kill -s HUP`, a terminal's hangup) reaches every process at once, and is
   * one reload, not one per process: a SIGHUP of a process that has not had one within
   * HUP_GROUP_MS of the latest SIGHUP's reload joins that reload.
   */
  hup(from: number): Promise<ReloadResult>;
  /** Cuts every child's drain short (a second signal to the primary). */
  cut(): void;
  /**
   * SIGKILLs every child still running: one that did not finish its drain by its deadline (its
   * event loop wedged, or the process stopped) would keep the group alive, and its listening
   * socket would keep taking connections nobody answers.
   */
  kill(): number;
  /** A purge made by the primary (or passed on for child `from`): every other child applies it; resolves when all have, or after PURGE_WAIT_MS. */
  broadcastPurge(inv: RemoteInvalidation, from?: number): Promise<void>;
  /**
   * Stops restarting children, tells them to drain (`sig` for the log; after `delayS` seconds of
   * server.shutdown_delay, during which they answer /health and /ready 503) and resolves once every
   * child has exited.
   */
  stop(sig: NodeJS.Signals, delayS?: number): Promise<void>;
}

/** Sends an IPC message to a child; when the channel is gone, `fallback` (a signal) or nothing (it is exiting). */
function tell(c: Subprocess, message: object, fallback?: NodeJS.Signals): void {
  try {
    c.send(message);
  } catch {
    if (fallback) c.kill(fallback);
  }
}

/**
 * Spawns workers 1..n-1 on `port`. `own` returns the primary's metrics snapshot; `reloadSelf`
 * reloads the primary; `current` is the config the primary runs (what every child is sent).
 */
export function startChildren(opts: {
  n: number;
  port: number;
  log: Logger;
  own: () => Snapshot;
  reloadSelf: () => Promise<ReloadResult>;
  current: () => SentConfig | undefined;
  /** Applies a child's purge in the primary's own cache. */
  applyPurge: (inv: RemoteInvalidation) => Promise<void>;
  /** Applies a purge to the disk folder of a slot whose child could not take it (none running, or still starting). */
  purgeSlotFolder?: (slot: number, inv: RemoteInvalidation) => void;
  /** How long a reload waits for the children (default RELOAD_WAIT_MS). */
  reloadWaitMs?: number;
  /**
   * The primary's own start waited for Redis and did not find it: the children started with the
   * group skip that wait (START_WAITED_ENV), which the group already paid once. A child restarted
   * later waits, as a process starting alone does.
   */
  redisWaited?: boolean;
}): Children {
  const { n, port, log } = opts;
  const reloadWaitMs = opts.reloadWaitMs ?? RELOAD_WAIT_MS;
  const children: Array<Subprocess | undefined> = [];
  /** What each live child last reported (reportGeneration): reset with every spawn. */
  const reported: Array<{ running?: number; failed?: { generation: number; error: string } } | undefined> = [];
  /** Reloads waiting for the children's reports: each re-checks on every report, exit and spawn. */
  const reloadWaiters = new Set<() => void>();
  const reportsChanged = () => {
    for (const w of [...reloadWaiters]) w();
  };
  /**
   * Per slot: the scrapes waiting for its child's snapshot. Any answer serves every scrape waiting
   * (two at once, an HA pair of Prometheus servers: the second one's waiter replaced the first's,
   * which then waited its whole second and rendered without that child's gauges).
   */
  const pendingMetrics = new Map<number, Set<(s: Snapshot) => void>>();
  /**
   * Per slot: the snapshot its live child last reported. A scrape that gets no answer from it in
   * time (busy, stopped, CPU-starved) uses it, so the merged counters do not drop by that child's
   * share and come back at the next scrape (a reset to Prometheus's rate()), nor do the summed
   * gauges (cache bytes, in-flight requests: a busy child's share vanished from a few scrapes in a
   * hundred under load).
   */
  const lastReported: Array<Snapshot | undefined> = [];
  /** Each merged counter and histogram sum as the last scrape gave it (renderMerged: rounding never reads as a reset). */
  const seenTotals = new Map<string, number>();
  /** Purges sent to children, by id: the children still to confirm each. */
  const purgeAcks = new Map<number, { inv: RemoteInvalidation; waiting: Set<number>; done: () => void }>();
  let purgeIds = 0;
  /** Per slot: whether its child has asked for its config (it takes messages from then on). */
  const asked: boolean[] = [];
  /**
   * Per slot: the purges its child could not get (none running, one still starting, one that died
   * before it confirmed), sent to the next child with its config. Its disk folder outlives it: the
   * replacement indexes the files found there and would serve an object written over meanwhile.
   */
  const missed: Array<RemoteInvalidation[] | undefined> = [];
  const miss = (i: number, inv: RemoteInvalidation) => {
    // (from the folder at once too: the group may stop before a replacement starts)
    opts.purgeSlotFolder?.(i, inv);
    if (stopping) return;
    const m = (missed[i] ??= []);
    // (a long list, a child crash-looping under writes: dropping everything is as correct, and bounded)
    if (m.length >= MAX_MISSED_PURGES) missed[i] = [{ kind: "prefix", prefix: "" }];
    else m.push(inv);
  };
  const broadcastPurge = (inv: RemoteInvalidation, from?: number): Promise<void> => {
    const id = ++purgeIds;
    const waiting = new Set<number>();
    return settleWithin(PURGE_WAIT_MS, (done) => {
      purgeAcks.set(id, { inv, waiting, done });
      for (let i = 1; i < n; i++) {
        const c = children[i];
        if (i === from) continue;
        if (c === undefined || !asked[i]) {
          miss(i, inv);
          continue;
        }
        waiting.add(i);
        try {
          c.send({ type: "purge", id, inv });
        } catch {
          waiting.delete(i);
          miss(i, inv);
        }
      }
      if (waiting.size === 0) done();
    }).finally(() => purgeAcks.delete(id));
  };
  const purgeAcked = (id: number, child: number) => {
    const p = purgeAcks.get(id);
    if (p === undefined) return;
    p.waiting.delete(child);
    if (p.waiting.size === 0) p.done();
  };
  /** The counters and histograms of children that died, as they last reported them. */
  let retired: Snapshot = [];
  let stopping = false;
  /** Children this process ended itself (the drain's deadline, a third signal, one still starting). */
  const ended = new WeakSet<Subprocess>();
  const lastStart: number[] = [];
  /** Per slot: how many times in a row its child died within QUICK_EXIT_MS of its start. */
  const quickExits: number[] = [];
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const checkDone = () => {
    if (stopping && children.every((c) => c === undefined)) resolveDone();
  };

  /**
   * Where every child slot stands with respect to `target`; `final`: the wait is over (a slot
   * still short of it did not answer). Undefined while one may still get there.
   */
  const standing = (target: number, final: boolean): WorkerReload[] | undefined => {
    const out: WorkerReload[] = [];
    for (let i = 1; i < n; i++) {
      const r = children[i] ? reported[i] : undefined;
      const generation = r?.running;
      if (generation !== undefined && generation >= target) out.push({ worker: i, status: "reloaded", generation });
      else if (r?.failed && r.failed.generation >= target) out.push({ worker: i, status: "failed", ...(generation !== undefined ? { generation } : undefined), error: r.failed.error });
      // (no child in the slot: restarting, or gone for good when the group stops)
      else if (!children[i] && stopping) out.push({ worker: i, status: "stopped" });
      else if (final) out.push({ worker: i, status: "no answer", ...(generation !== undefined ? { generation } : undefined) });
      else return undefined;
    }
    return out;
  };
  /** Resolves with every child slot's standing once none may still reach `target`, or after the reload wait. */
  const waitForChildren = (target: number): Promise<WorkerReload[]> =>
    new Promise((resolve) => {
      const settle = (final: boolean) => {
        const out = standing(target, final);
        if (out === undefined) return;
        clearTimeout(t);
        reloadWaiters.delete(check);
        resolve(out);
      };
      const check = () => settle(false);
      const t = setTimeout(() => settle(true), reloadWaitMs);
      reloadWaiters.add(check);
      check();
    });

  /** How many reloads of the group have started (a SIGHUP joins the latest SIGHUP's only if it is the latest of all). */
  let reloads = 0;
  const reloadAll = async (): Promise<ReloadResult> => {
    reloads++;
    const r = await opts.reloadSelf();
    if (!r.ok) return r;
    // What the primary runs now (the text it validated), never the file as a child would find it.
    const current = opts.current();
    if (current) for (const c of children) if (c) tell(c, { type: "reload", ...current });
    const others = await waitForChildren(r.generation);
    const workers: WorkerReload[] = [{ worker: 0, status: "reloaded", generation: r.generation }, ...others];
    const short = others.filter((w) => w.status === "failed" || w.status === "no answer");
    if (short.length === 0) {
      log.log("info", "every worker reloaded", { generation: r.generation, workers: n }, true); // (whatever the level: see App.reload's line)
      return { ...r, workers };
    }
    const error = short.map((w) => `worker ${w.worker}: ${w.status === "failed" ? `failed (${w.error})` : `no answer within ${reloadWaitMs / 1000} s`}`).join("; ");
    log.error("reload incomplete: not every worker runs the new generation", { generation: r.generation, not_reloaded: short });
    return { ok: false, partial: true, generation: r.generation, error, workers };
  };

  /** The latest SIGHUP's reload: when it started, the processes whose SIGHUP it is. */
  let lastHup: { at: number; seq: number; from: Set<number>; result: Promise<ReloadResult> } | undefined;
  const hup = (from: number): Promise<ReloadResult> => {
    const now = performance.now();
    // (not once another reload has started since: a SIGHUP after an admin reload within the second
    // joined the earlier signal's reload, long done, and the file was never read again)
    if (lastHup !== undefined && now - lastHup.at < HUP_GROUP_MS && lastHup.seq === reloads && !lastHup.from.has(from)) {
      lastHup.from.add(from);
      return lastHup.result;
    }
    const result = reloadAll();
    lastHup = { at: now, seq: reloads, from: new Set([from]), result };
    return result;
  };

  const spawn = (i: number, first = false) => {
    lastStart[i] = performance.now();
    let child: Subprocess;
    try {
      child = spawnChild(i, first && opts.redisWaited === true);
    } catch (err) {
      // (no descriptor left for its pipes, a connection flood: EMFILE; no process left: EAGAIN)
      // Tried again as one that exited at once: thrown from the restart timer, this was an
      // uncaught exception, and the whole group exited 70.
      quickExits[i] = (quickExits[i] ?? 0) + 1;
      const wait = Math.min(MAX_RESTART_DELAY_MS, 1000 * 2 ** (quickExits[i]! - 1));
      log.error("could not start a worker; retrying", { child: i, error: String((err as Error)?.message ?? err), restart_in_ms: wait });
      setTimeout(() => !stopping && spawn(i), wait);
      return;
    }
    children[i] = child;
    reported[i] = {};
    asked[i] = false;
  };
  const spawnChild = (i: number, redisWaited: boolean): Subprocess => {
    /** The latest snapshot this child sent: what it had counted when it was last heard from. */
    let last: Snapshot | undefined;
    let exited = false;
    // No --config: a child never reads the file; it asks for the primary's config over IPC ("config-request").
    const child: Subprocess = Bun.spawn(selfCommand(), {
      // What ps shows for the child (it runs /proc/self/exe, which ps showed as is): which group and which worker.
      argv0: childTitle(i),
      env: { ...process.env, YATAGARASU_WORKER: String(i), YATAGARASU_PORT: String(port), YATAGARASU_WORKERS: String(n), ...(redisWaited ? { [START_WAITED_ENV]: "1" } : undefined) },
      stdio: ["ignore", "inherit", "inherit"],
      ipc(message) {
        const m = message as { type?: string; snapshot?: Snapshot; id?: number; hup?: boolean } | null;
        // A late answer from a child that has exited is not its replacement's (and is retired already).
        if (m?.type === "metrics" && m.snapshot && !exited) {
          last = m.snapshot;
          lastReported[i] = m.snapshot;
          const waiting = pendingMetrics.get(i);
          pendingMetrics.delete(i);
          if (waiting !== undefined) for (const w of waiting) w(m.snapshot);
        }
        if (m?.type === "config-request") {
          const current = opts.current();
          if (current && children[i] === child) {
            asked[i] = true;
            tell(child, { type: "config", ...current, ...(missed[i] ? { purges: missed[i] } : undefined) });
            missed[i] = undefined;
          }
        }
        if (m?.type === "generation" && children[i] === child) {
          const g = m as { running?: unknown; failed?: { generation?: unknown; error?: unknown } };
          const failed = g.failed && typeof g.failed.generation === "number" ? { generation: g.failed.generation, error: String(g.failed.error ?? "") } : undefined;
          reported[i] = { running: typeof g.running === "number" ? g.running : reported[i]?.running, failed: failed ?? reported[i]?.failed };
          reportsChanged();
        }
        if (m?.type === "purge-ack" && m.id !== undefined) purgeAcked(m.id, i);
        if (m?.type === "purge" && m.id !== undefined) {
          const inv = (m as { inv?: RemoteInvalidation }).inv;
          const answer = () => {
            if (children[i] === child) tell(child, { type: "purge-done", id: m.id });
          };
          if (inv === undefined) answer();
          else void Promise.all([opts.applyPurge(inv).catch(() => undefined), broadcastPurge(inv, i)]).then(answer);
        }
        if (m?.type === "reload-all") {
          void (m.hup === true ? hup(i) : reloadAll()).then((result) => {
            if (children[i] === child) tell(child, { type: "reload-result", id: m.id, result });
          });
        }
      },
      onExit(_p, code, signal) {
        exited = true;
        children[i] = undefined;
        reported[i] = undefined;
        // (a reload waiting for this slot waits for its replacement, or stops waiting when the group stops)
        reportsChanged();
        // (a purge waiting for this child: its memory is gone with it, its disk folder is not)
        for (const [id, p] of [...purgeAcks]) {
          if (p.waiting.has(i)) miss(i, p.inv);
          purgeAcked(id, i);
        }
        // Its counters stay in the merged output: a scrape must never see a counter go down.
        if (last) retired = mergeSnapshots([retired, last.filter((f) => f.type !== "gauge")]);
        last = undefined;
        lastReported[i] = undefined;
        if (stopping) {
          // A child that crashed or was killed (the OOM killer) during the drain took its
          // transfers with it, unlogged: without this line the group's log says nothing of them.
          if ((code !== 0 || signal !== null) && !ended.has(child)) log.error("worker exited during the drain", { child: i, code, signal });
          return checkDone();
        }
        // A child that dies soon after it started (it cannot start: its disk folder unusable, say,
        // exit 3) is restarted after 1, 2, 4... 30 s, not every second for ever; one that ran a
        // while is restarted at once (at most once a second).
        const ran = performance.now() - lastStart[i]!;
        quickExits[i] = ran < QUICK_EXIT_MS ? (quickExits[i] ?? 0) + 1 : 0;
        const wait = quickExits[i]! > 0 ? Math.min(MAX_RESTART_DELAY_MS, 1000 * 2 ** (quickExits[i]! - 1)) : Math.max(0, 1000 - ran);
        log.error("worker exited unexpectedly; restarting", { child: i, code, signal, restart_in_ms: wait });
        setTimeout(() => !stopping && spawn(i), wait);
      },
    });
    return child;
  };
  for (let i = 1; i < n; i++) spawn(i, true);

  return {
    async renderMetrics() {
      const asked = [...children];
      const snaps = await Promise.all(
        children.map(
          (c, i) =>
            new Promise<Snapshot | undefined>((resolve) => {
              if (!c) return resolve(undefined);
              // A child still starting (no generation reported: waiting for Redis, say) answers no
              // scrape before it serves, and has served nothing: it held every scrape a second.
              if (reported[i]?.running === undefined) return resolve(lastReported[i]);
              const waiting = pendingMetrics.get(i) ?? new Set<(s: Snapshot) => void>();
              pendingMetrics.set(i, waiting);
              const answered = (s: Snapshot) => {
                clearTimeout(t);
                resolve(s);
              };
              // No answer in time: what it last reported.
              const t = setTimeout(() => {
                waiting.delete(answered);
                resolve(lastReported[i]);
              }, 1000);
              waiting.add(answered);
              try {
                c.send({ type: "metrics" });
              } catch {
                clearTimeout(t);
                waiting.delete(answered);
                resolve(lastReported[i]);
              }
            }),
        ),
      );
      // A child that died while the others were awaited had its last snapshot (this one) added to
      // `retired` already: counting it here too would add it twice, and the next scrape would go down.
      const live = snaps.filter((s, i): s is Snapshot => s !== undefined && children[i] === asked[i]);
      return renderMerged([opts.own(), ...live, retired], seenTotals);
    },
    reloadAll,
    hup,
    broadcastPurge,
    cut() {
      for (const c of children) if (c) tell(c, { type: "shutdown", cut: true }, "SIGTERM");
    },
    kill() {
      let n = 0;
      for (const c of children) {
        if (!c) continue;
        n++;
        ended.add(c);
        try {
          c.kill("SIGKILL");
        } catch {
          // gone meanwhile
        }
      }
      return n;
    },
    stop(sig, delayS = 0) {
      stopping = true;
      children.forEach((c, i) => {
        if (!c) return;
        tell(c, { type: "shutdown", signal: sig, ...(delayS > 0 ? { delay_s: delayS } : undefined) }, sig);
        // A child still starting (no generation reported yet) may not be listening for messages:
        // the shutdown was lost and the group never stopped. The signal reaches it whatever it is
        // doing (caught early, or its default: the child ends); one that serves counts it once.
        if (reported[i]?.running === undefined) {
          ended.add(c);
          c.kill(sig);
        }
      });
      // (a reload waiting for a slot with no child stops waiting for it: no replacement comes)
      reportsChanged();
      checkDone();
      return done;
    },
  };
}
