/**
 * A Redis answer awaited with a deadline, for both Redis clients (the cache layer's link and the
 * shared rate limits).
 */
import { RedisClient } from "bun";

/** withTimeout's rejection: no answer in time (the command may still be answered, late). */
export class RedisTimeout extends Error {
  override name = "RedisTimeout";
}

/**
 * Commands in a row whose answer did not come within the timeout (late, or not at all) before
 * Redis is declared down (the cache layer skipped, the rate limits local). One slow answer (a
 * fork, a slow command of another client) fails its own request only: declared down at the
 * first, a Redis answering around the timeout took the layer down and up again (logged,
 * resynced, the metrics and readiness flipping) dozens of times a minute. Commands that timed out
 * together (sent before the first of them did) count once: one stall, not three.
 */
export const SLOW_STRIKES = 3;

/** SLOW_STRIKES counted, for the cache layer's link and the shared rate limits alike. */
export class SlowStrikes {
  private n = 0;
  /** When the last strike counted: a command sent before it timed out in the same stall. */
  private at = -Infinity;

  /** A command sent at `sent` was answered (in time, or with an error reply): the run ends. */
  answered(sent: number): void {
    if (sent > this.at) this.n = 0;
  }

  /** A command sent at `sent` timed out: true when that makes SLOW_STRIKES in a row. */
  timedOut(sent: number): boolean {
    if (sent <= this.at) return false; // the same stall as the last strike
    this.at = performance.now();
    return ++this.n >= SLOW_STRIKES;
  }

  reset(): void {
    this.n = 0;
    this.at = -Infinity;
  }
}

/**
 * A command with no answer at all (not even a late one) for this long, or 4 × the timeout if
 * longer, means Redis stopped answering (frozen, a flow lost without FIN or RST): far above the
 * answers of a merely slow Redis, which come late but come.
 */
export const SILENT_MS = 1000;

export function silentAfter(timeoutMs: number): number {
  return Math.max(SILENT_MS, timeoutMs * 4);
}

/** How late a deadline's timer may fire before it is taken for a stall of this process (withTimeout). */
export const STALL_MS = 50;

/**
 * A Redis client whose connect is awaited with withTimeout(…, connectMs) (the cache layer's
 * connections, the shared rate limits'): no offline queue, no reconnect of its own, and Bun's own
 * connect timeout a backstop that does not come first: after a stall of this process at the
 * deadline, withTimeout refuses 2 × connectMs and the stall after the start; at 2 × connectMs
 * (1 × on the cache layer's bulk connections), Bun's came first on a loaded host, and its
 * `Connection closed` was logged as another reason for the outage (or failed the command as one).
 */
export function newRedisClient(url: string, connectMs: number): RedisClient {
  return new RedisClient(url, { enableOfflineQueue: false, autoReconnect: false, connectionTimeout: connectMs * 4 });
}

/**
 * `p`, or a rejection ("<what>: no answer within <ms> ms") once it has not settled within `ms`.
 * After a stall of this process (a GC pause, a starved CPU) the timer and an answer that came
 * meanwhile are both due, and timers run first, so a Redis that had answered in time was taken
 * for a slow one (the cache layer down and logged, the rate limits local with a fresh burst): a
 * timer that fires more than STALL_MS late gives Redis its `ms` again, once, from then (one more
 * turn of the event loop was not always enough on a loaded host), and the refusal itself waits
 * one more turn.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what?: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let due = performance.now() + ms;
    let again = true;
    const fire = () => {
      const now = performance.now();
      if (again && now - due > STALL_MS) {
        again = false;
        due = now + ms;
        timer = setTimeout(fire, ms);
      } else timer = setTimeout(() => reject(new RedisTimeout(`${what ? `${what}: ` : ""}no answer within ${ms} ms`)), 0);
    };
    let timer = setTimeout(fire, ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/**
 * How long Redis lets a client idle before it closes it (its `timeout` setting, CONFIG GET): in
 * ms, 0 when it never does, undefined when it does not say (an ACL without CONFIG, a managed
 * Redis that renames it, no answer within `ms`).
 */
export async function redisIdleTimeout(c: { send(cmd: string, args: string[]): Promise<unknown> }, ms: number): Promise<number | undefined> {
  try {
    const r = (await withTimeout(c.send("CONFIG", ["GET", "timeout"]), ms, "CONFIG GET timeout")) as Record<string, string> | string[];
    const seconds = Number(Array.isArray(r) ? r[1] : r.timeout);
    return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** Redis's lowest idle timeout (`timeout 1`). */
const REDIS_MIN_IDLE_TIMEOUT_MS = 1000;

/**
 * The PING period (at most `maxMs`) that keeps a connection open under Redis's idle timeout
 * (redisIdleTimeout): half of it, or of Redis's lowest when it does not say.
 */
export function keepAlivePeriod(idleTimeoutMs: number | undefined, maxMs: number): number {
  const limit = idleTimeoutMs ?? REDIS_MIN_IDLE_TIMEOUT_MS;
  return limit === 0 ? maxMs : Math.min(maxMs, limit / 2);
}
