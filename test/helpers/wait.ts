/**
 * The one wait-for-condition helper of the test suite. Tests never sleep a fixed time to "let
 * something happen": they wait for the condition that shows it happened, with a deadline.
 *
 * `cond` may be sync or async. It is polled until it returns something other than undefined, null
 * or false, and that value is returned (so a condition can hand back what it found). An exception
 * thrown by `cond` propagates at once: a condition that can no longer hold should fail fast.
 */
export interface WaitOptions {
  /** Deadline (default 5000 ms). */
  timeoutMs?: number;
  /** Pause between two polls (default 5 ms). */
  intervalMs?: number;
  /** What was awaited, for the timeout error; a function is called at the deadline (to show the last state). */
  message?: string | (() => string);
}

export async function waitFor<T>(cond: () => T | Promise<T>, opts: WaitOptions = {}): Promise<Exclude<T, undefined | null | false>> {
  const { timeoutMs = 5000, intervalMs = 5, message = "condition" } = opts;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v !== undefined && v !== null && v !== false) return v as Exclude<T, undefined | null | false>;
    if (performance.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof message === "function" ? message() : message}`);
    await Bun.sleep(intervalMs); // the poll interval of a condition with a deadline, not a wait
  }
}
