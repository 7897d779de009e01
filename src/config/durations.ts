/**
 * Durations that become timers. A JavaScript timer waits at most 2^31-1 ms (about 24.8 days): a
 * longer delay fires after 1 ms instead (with a TimeoutOverflowWarning on stderr), so a generous
 * `s3.timeout: 10000000` answered every request 504 at once, `jwks_refresh_interval_secs: 3000000`
 * fetched the JWKS about once a millisecond and `shutdown_timeout: 3000000` cut the drain after
 * 1 ms. Every such setting is refused beyond it, naming the limit.
 */
import { z } from "zod";

const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_TIMER_SECONDS = Math.floor(MAX_TIMER_MS / 1000);

const tooLong = (unit: "seconds" | "ms") => ({
  message: `must be at most ${unit === "seconds" ? MAX_TIMER_SECONDS : MAX_TIMER_MS} ${unit} (about 24.8 days): a longer wait does not fit a timer`,
});

/**
 * The shortest wait in seconds a fractional key takes: a timer's smallest step is 1 ms, so a
 * `request_timeout: 1e-9` passed --check and answered every request 504 after 1 ms.
 */
const MIN_TIMER_SECONDS = 0.001;

/** Seconds (fractions allowed), at least 1 ms. */
export const timerSeconds = z.number().min(MIN_TIMER_SECONDS).max(MAX_TIMER_SECONDS, tooLong("seconds"));
/** Seconds (fractions allowed): 0, or at least 1 ms. */
export const timerSecondsOrZero = z
  .number()
  .nonnegative()
  .max(MAX_TIMER_SECONDS, tooLong("seconds"))
  .refine((s) => !(s > 0 && s < MIN_TIMER_SECONDS), { error: (i) => `must be 0 or at least ${MIN_TIMER_SECONDS} (1 ms, a timer's smallest step), got ${String(i.input)}` });
/** Whole seconds, > 0. */
export const timerSecondsInt = z.number().int().positive().max(MAX_TIMER_SECONDS, tooLong("seconds"));
/** Whole milliseconds, > 0. */
export const timerMs = z.number().int().positive().max(MAX_TIMER_MS, tooLong("ms"));
/** Whole milliseconds, >= 0. */
export const timerMsOrZero = z.number().int().nonnegative().max(MAX_TIMER_MS, tooLong("ms"));

/** `ms`, at most what a timer can wait (a computed delay: a timeout plus a body's time). */
export function timerDelay(ms: number): number {
  return Math.min(ms, MAX_TIMER_MS);
}
