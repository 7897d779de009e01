import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { backoffDelay, isRetryableStatus } from "../../src/limits/retry.ts";
import { ConcurrencyLimiter } from "../../src/limits/concurrency.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

describe("backoffDelay", () => {
  test("the ceiling doubles per attempt and is capped at max", () => {
    const top = () => 1;
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, 100, 1000, top))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  test("full jitter: the delay is random() times the ceiling", () => {
    expect(backoffDelay(3, 100, 10_000, () => 0)).toBe(0);
    expect(backoffDelay(3, 100, 10_000, () => 0.25)).toBe(100);
    expect(backoffDelay(3, 100, 10_000, () => 0.5)).toBe(200);
  });

  test("with Math.random every delay lies in [0, ceiling)", () => {
    for (let attempt = 1; attempt <= 8; attempt++) {
      const ceiling = Math.min(2000, 50 * 2 ** (attempt - 1));
      for (let i = 0; i < 500; i++) {
        const d = backoffDelay(attempt, 50, 2000);
        expect(d >= 0 && d < ceiling).toBe(true);
      }
    }
  });

  test("huge attempt numbers stay at the cap; attempt < 1 counts as the first retry", () => {
    expect(backoffDelay(10_000, 100, 1000, () => 1)).toBe(1000);
    expect(backoffDelay(0, 100, 1000, () => 1)).toBe(100);
    expect(backoffDelay(-3, 100, 1000, () => 1)).toBe(100);
  });

  test("zero initial backoff means retry immediately", () => {
    expect(backoffDelay(5, 0, 1000, () => 1)).toBe(0);
  });
});

describe("isRetryableStatus", () => {
  test("500, 502, 503, 504 only", () => {
    for (const s of [500, 502, 503, 504]) expect(isRetryableStatus(s)).toBe(true);
    for (const s of [200, 206, 304, 400, 401, 403, 404, 408, 412, 416, 429, 499, 501, 505, 599]) {
      expect(isRetryableStatus(s)).toBe(false);
    }
  });
});

describe("ConcurrencyLimiter", () => {
  test("admits up to max, then refuses until someone leaves", () => {
    const l = new ConcurrencyLimiter(2);
    expect(l.tryEnter()).toBe("ok");
    expect(l.tryEnter()).toBe("ok");
    expect(l.tryEnter()).toBe("concurrency");
    expect(l.inFlight).toBe(2);
    l.leave();
    expect(l.inFlight).toBe(1);
    expect(l.tryEnter()).toBe("ok");
  });

  test("leave never goes below zero; max can change at runtime", () => {
    const l = new ConcurrencyLimiter(1);
    l.leave();
    l.leave();
    expect(l.inFlight).toBe(0);
    expect(l.tryEnter()).toBe("ok");
    l.max = 3;
    expect(l.tryEnter()).toBe("ok");
    expect(l.tryEnter()).toBe("ok");
    expect(l.tryEnter()).toBe("concurrency");
    l.max = 1; // lowering keeps the 3 in flight, admits nobody new until below 1
    l.leave();
    expect(l.tryEnter()).toBe("concurrency");
    expect(() => new ConcurrencyLimiter(0)).toThrow(RangeError);
  });

  test("a request whose address is not known (its client gone before admission) is not counted per address: \"\" never fills up (each such request held a slot of it for good)", () => {
    const l = new ConcurrencyLimiter(4, 2);
    expect(l.tryEnter()).toBe("ok");
    expect(l.tryEnter()).toBe("ok");
    expect(l.countsAddresses).toBe(true);
    for (let i = 0; i < 5; i++) {
      const r = l.tryEnter("");
      expect(r).toBe("ok");
      l.leave(typeof r === "object" ? r.ip : "");
    }
    expect(l.inFlight).toBe(2);
  });
});

describe("ConcurrencyLimiter per client address (from half the cap on)", () => {
  test("below half the cap no address is asked; from it on one address holds at most its cap, others still get in", () => {
    const l = new ConcurrencyLimiter(100, 25);
    let asked = 0;
    const got: Array<string> = [];
    for (let i = 0; i < 200; i++) {
      const r = l.countsAddresses ? (asked++, l.tryEnter("6.6.6.6")) : l.tryEnter();
      got.push(typeof r === "string" ? r : "counted");
    }
    expect(got.filter((r) => r === "ok").length).toBe(50); // uncounted, below half
    expect(got.filter((r) => r === "counted").length).toBe(25);
    expect(got.filter((r) => r === "concurrency_per_ip").length).toBe(125);
    expect(asked).toBe(150);
    expect(l.tryEnter("7.7.7.7")).toEqual({ ip: "7.7.7.7" }); // another client is served
    l.leave("6.6.6.6");
    expect(l.tryEnter("6.6.6.6")).toEqual({ ip: "6.6.6.6" });
  });
});
