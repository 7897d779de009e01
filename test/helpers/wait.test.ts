import { expect, test, setDefaultTimeout } from "bun:test";
import { waitFor } from "./wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

test("returns the first value that is not undefined/null/false, sync or async", async () => {
  let n = 0;
  expect(await waitFor(() => ++n >= 3)).toBe(true);
  expect(n).toBe(3);
  let m = 0;
  expect(await waitFor(async () => (++m === 2 ? { found: m } : undefined))).toEqual({ found: 2 });
  expect(await waitFor(() => 0)).toBe(0); // 0 is a value, not "not yet"
});

test("times out with the message (a function is evaluated at the deadline)", async () => {
  let polls = 0;
  const err = await waitFor(() => (polls++, false), { timeoutMs: 30, intervalMs: 1, message: () => `the impossible after ${polls} polls` }).catch((e: Error) => e);
  expect(err).toBeInstanceOf(Error);
  expect((err as Error).message).toMatch(/^timed out after 30 ms waiting for the impossible after \d+ polls$/);
  expect(polls).toBeGreaterThan(1);
});

test("an exception from the condition propagates at once", async () => {
  const started = performance.now();
  await expect(waitFor(() => { throw new Error("process exited"); }, { timeoutMs: 5000 })).rejects.toThrow("process exited");
  expect(performance.now() - started).toBeLessThan(1000);
});
