import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { CircuitBreaker, type BreakerState } from "../../src/limits/circuit-breaker.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const cfg = { failure_threshold: 3, success_threshold: 2, timeout_seconds: 10, half_open_max_requests: 2 };

function setup(over: Partial<typeof cfg> = {}) {
  const c = { t: 0 };
  const changes: [BreakerState, BreakerState][] = [];
  const br = new CircuitBreaker({ ...cfg, ...over }, () => c.t, (to, from) => changes.push([to, from]));
  return { c, br, changes };
}

function run(br: CircuitBreaker, success: boolean): boolean {
  const a = br.tryAcquire();
  if (!a.ok) return false;
  a.release(success);
  return true;
}

function trip(br: CircuitBreaker, n = cfg.failure_threshold): void {
  for (let i = 0; i < n; i++) run(br, false);
}

describe("CircuitBreaker", () => {
  test("starts closed and admits everything", () => {
    const { br } = setup();
    expect(br.state).toBe("closed");
    expect(br.stateCode).toBe(0);
    for (let i = 0; i < 100; i++) expect(run(br, true)).toBe(true);
  });

  test("a successful readiness probe is a half-open trial success (success_threshold of them close it, no slot taken); closed or open, it changes nothing", () => {
    const { br, c } = setup();
    br.probeSucceeded();
    expect(br.state).toBe("closed");
    trip(br);
    br.probeSucceeded();
    expect(br.state).toBe("open");
    c.t += cfg.timeout_seconds * 1000;
    const held = [br.tryAcquire(), br.tryAcquire()];
    expect(held.every((a) => a.ok)).toBe(true);
    br.probeSucceeded();
    expect(br.state).toBe("half_open");
    br.probeSucceeded();
    expect(br.state).toBe("closed");
  });

  test("opens only after failure_threshold CONSECUTIVE failures", () => {
    const { br, changes } = setup();
    trip(br, 2);
    run(br, true); // resets the streak
    trip(br, 2);
    expect(br.state).toBe("closed");
    run(br, false);
    expect(br.state).toBe("open");
    expect(br.stateCode).toBe(1);
    expect(changes).toEqual([["open", "closed"]]);
  });

  test("open rejects with the seconds left until the timeout", () => {
    const { br, c } = setup();
    trip(br);
    expect(br.tryAcquire()).toEqual({ ok: false, retryAfterSeconds: 10 });
    c.t += 2_500;
    expect(br.tryAcquire()).toEqual({ ok: false, retryAfterSeconds: 8 });
    c.t += 7_400;
    expect(br.tryAcquire()).toEqual({ ok: false, retryAfterSeconds: 1 });
  });

  test("becomes half-open after the timeout and admits at most half_open_max_requests probes", () => {
    const { br, c, changes } = setup();
    trip(br);
    c.t += 10_000;
    expect(br.state).toBe("half_open");
    expect(br.stateCode).toBe(2);
    const p1 = br.tryAcquire();
    const p2 = br.tryAcquire();
    expect(p1.ok && p2.ok).toBe(true);
    expect(br.tryAcquire()).toEqual({ ok: false, retryAfterSeconds: 1 });
    if (!p1.ok || !p2.ok) throw new Error("unreachable");
    p1.release(true); // one slot frees up
    const p3 = br.tryAcquire();
    expect(p3.ok).toBe(true);
    expect(br.tryAcquire().ok).toBe(false);
    p2.release(true); // second success closes the breaker
    expect(br.state).toBe("closed");
    expect(changes).toEqual([
      ["open", "closed"],
      ["half_open", "open"],
      ["closed", "half_open"],
    ]);
    // p3 was a probe of the previous period: its result must not affect the closed breaker.
    if (p3.ok) p3.release(false);
    trip(br, 2);
    expect(br.state).toBe("closed");
  });

  test("any failure in half-open reopens and restarts the timer", () => {
    const { br, c, changes } = setup();
    trip(br);
    c.t += 10_000;
    const p1 = br.tryAcquire();
    const p2 = br.tryAcquire();
    if (!p1.ok || !p2.ok) throw new Error("probes should be admitted");
    p1.release(true);
    p2.release(false);
    expect(br.state).toBe("open");
    expect(br.tryAcquire()).toEqual({ ok: false, retryAfterSeconds: 10 });
    c.t += 9_999;
    expect(br.state).toBe("open");
    c.t += 1;
    expect(br.state).toBe("half_open");
    expect(changes.map(([to]) => to)).toEqual(["open", "half_open", "open", "half_open"]);
  });

  test("success_threshold successes are needed to close", () => {
    const { br, c } = setup({ success_threshold: 3, half_open_max_requests: 1 });
    trip(br);
    c.t += 10_000;
    expect(run(br, true)).toBe(true);
    expect(run(br, true)).toBe(true);
    expect(br.state).toBe("half_open");
    expect(run(br, true)).toBe(true);
    expect(br.state).toBe("closed");
  });

  test("double release is a no-op", () => {
    const { br } = setup({ failure_threshold: 2 });
    const a = br.tryAcquire();
    if (!a.ok) throw new Error("should admit");
    a.release(false);
    a.release(false);
    a.release(false);
    expect(br.state).toBe("closed");

    const { br: br2, c } = setup({ half_open_max_requests: 1 });
    trip(br2);
    c.t += 10_000;
    const p = br2.tryAcquire();
    if (!p.ok) throw new Error("should admit");
    p.release(true);
    p.release(true); // must not count a second success nor free a second slot
    expect(br2.state).toBe("half_open");
  });

  test("results of requests admitted before the breaker opened are ignored", () => {
    const { br, c } = setup({ half_open_max_requests: 1, success_threshold: 1 });
    const slow = br.tryAcquire(); // admitted while closed
    trip(br);
    c.t += 10_000;
    const probe = br.tryAcquire();
    expect(probe.ok).toBe(true);
    if (slow.ok) slow.release(true); // stale: neither a success nor a freed probe slot
    expect(br.state).toBe("half_open");
    expect(br.tryAcquire().ok).toBe(false);
    if (probe.ok) probe.release(true);
    expect(br.state).toBe("closed");
  });

  test("drop(): a half-open probe that says nothing about the upstream frees its slot and counts neither way", () => {
    const { br, c } = setup({ half_open_max_requests: 1, success_threshold: 1 });
    trip(br);
    c.t += 10_000;
    const probe = br.tryAcquire();
    if (!probe.ok) throw new Error("should admit");
    expect(br.tryAcquire().ok).toBe(false); // the one slot is taken
    probe.drop();
    probe.release(true); // after a drop, a no-op
    expect(br.state).toBe("half_open");
    // the slot is free again: the next probe decides
    expect(run(br, false)).toBe(true);
    expect(br.state).toBe("open");
  });

  test("drop(): closed, a dropped request does not reset the failure streak", () => {
    const { br } = setup();
    trip(br, 2);
    const a = br.tryAcquire();
    if (!a.ok) throw new Error("should admit");
    a.drop();
    expect(br.state).toBe("closed");
    run(br, false);
    expect(br.state).toBe("open");
  });

  test("a throwing listener does not break the breaker", () => {
    const c = { t: 0 };
    const br = new CircuitBreaker(cfg, () => c.t, () => {
      throw new Error("listener bug");
    });
    trip(br);
    expect(br.state).toBe("open");
    br.onStateChange = undefined;
    c.t += 10_000;
    expect(br.state).toBe("half_open");
  });
});

describe("CircuitBreaker.recordBody: streamed bodies that fail after a good head", () => {
  /** A request whose head succeeded: its ticket's bodyEnded, to report how its body ended. */
  function head(br: CircuitBreaker): (whole: boolean) => void {
    const a = br.tryAcquire();
    if (!a.ok) throw new Error("should admit");
    a.release(true);
    return a.bodyEnded;
  }

  test("failure_threshold consecutive body failures open it although every head succeeded; a whole body resets the streak", () => {
    const { br, changes } = setup();
    for (let i = 0; i < 2; i++) head(br)(false); // a good head, then the body is cut
    head(br)(true); // a whole body: the streak starts again
    for (let i = 0; i < 2; i++) head(br)(false);
    expect(br.state).toBe("closed");
    head(br)(false);
    expect(br.state).toBe("open");
    expect(changes).toEqual([["open", "closed"]]);
  });

  test("half-open: one body failure opens it again", () => {
    const { br, c } = setup();
    trip(br);
    c.t += 10_000;
    expect(br.state).toBe("half_open");
    head(br)(false);
    expect(br.state).toBe("open");
  });

  test("the body of a request admitted in an earlier period is ignored: a failure does not reopen a half-open breaker", () => {
    const { br, c } = setup({ failure_threshold: 2, success_threshold: 2, half_open_max_requests: 3 });
    const old = head(br); // a long download admitted while closed: its head succeeded
    trip(br, 2);
    c.t += 10_000;
    expect(br.state).toBe("half_open");
    head(br); // one probe succeeded
    old(false); // the old download's body is cut now
    expect(br.state).toBe("half_open");
    head(br);
    expect(br.state).toBe("closed");
  });

  test("the body of a request admitted in an earlier period is ignored: a failure does not count in the new closed period, a whole one does not reset its streak", () => {
    const { br, c } = setup({ failure_threshold: 3, success_threshold: 1 });
    const oldCut = head(br);
    const oldWhole = head(br);
    trip(br, 3);
    c.t += 10_000;
    head(br); // the probe closes it: a new closed period
    expect(br.state).toBe("closed");
    head(br)(false);
    head(br)(false);
    oldCut(false); // stale: not the third
    expect(br.state).toBe("closed");
    oldWhole(true); // stale: does not reset the streak
    head(br)(false);
    expect(br.state).toBe("open");
  });
});
