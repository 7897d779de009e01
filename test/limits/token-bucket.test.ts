import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { TokenBucket } from "../../src/limits/token-bucket.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

function clock(start = 0) {
  const c = { t: start, now: () => c.t };
  return c;
}

describe("TokenBucket", () => {
  test("starts full: admits exactly `burst` requests at one instant", () => {
    const c = clock();
    const b = new TokenBucket(10, 5, c.now);
    for (let i = 0; i < 5; i++) expect(b.take()).toEqual({ ok: true });
    expect(b.take().ok).toBe(false);
  });

  test("Retry-After stays a whole number of seconds, at most 2^31 (RFC 9111 1.2.2), for a rate the config made tiny: requests_per_second 1e-300 sent `9.999999999999999e+299`", () => {
    const c = clock();
    for (const rate of [1e-300, 1e-20, 1e-9]) {
      const b = new TokenBucket(rate, rate, c.now);
      b.take();
      const r = b.take();
      expect(r.ok).toBe(false);
      const header = String((r as { retryAfterSeconds: number }).retryAfterSeconds);
      expect(header).toMatch(/^\d+$/);
      expect(Number(header)).toBe(rate < 1 / 2 ** 31 ? 2 ** 31 : Math.ceil(1 / rate - 1e-9));
    }
  });

  test("refills continuously, in fractions of a token", () => {
    const c = clock();
    const b = new TokenBucket(10, 5, c.now);
    for (let i = 0; i < 5; i++) b.take();
    c.t += 250; // 2.5 tokens
    expect(b.take().ok).toBe(true);
    expect(b.take().ok).toBe(true);
    expect(b.take().ok).toBe(false);
    c.t += 50; // 0.5 + 0.5 = 1 token
    expect(b.take().ok).toBe(true);
    expect(b.take().ok).toBe(false);
  });

  test("never holds more than burst, however long it idles", () => {
    const c = clock();
    const b = new TokenBucket(100, 3, c.now);
    c.t += 3_600_000;
    let admitted = 0;
    while (b.take().ok) admitted++;
    expect(admitted).toBe(3);
  });

  test("Retry-After is the ceiling of the time until one token, at least 1", () => {
    const c = clock();
    const slow = new TokenBucket(0.25, 1, c.now); // one token per 4 s
    expect(slow.take().ok).toBe(true);
    expect(slow.take()).toEqual({ ok: false, retryAfterSeconds: 4 });
    c.t += 1500; // 2.5 s left
    expect(slow.take()).toEqual({ ok: false, retryAfterSeconds: 3 });
    c.t += 1300; // 1.2 s left: rounds up, not to nearest
    expect(slow.take()).toEqual({ ok: false, retryAfterSeconds: 2 });
    c.t += 1200;
    expect(slow.take().ok).toBe(true);

    const fast = new TokenBucket(1000, 1, c.now); // 1 ms per token: still 1 s minimum
    fast.take();
    expect(fast.take()).toEqual({ ok: false, retryAfterSeconds: 1 });

    const one = new TokenBucket(1, 1, c.now); // exactly 1 s, not 2 through float noise
    one.take();
    expect(one.take()).toEqual({ ok: false, retryAfterSeconds: 1 });
  });

  test("a refused take consumes nothing", () => {
    const c = clock();
    const b = new TokenBucket(1, 2, c.now);
    b.take();
    b.take();
    for (let i = 0; i < 10; i++) expect(b.take().ok).toBe(false);
    c.t += 1000;
    expect(b.take().ok).toBe(true);
  });

  test("take(n) takes several tokens at once", () => {
    const c = clock();
    const b = new TokenBucket(1, 5, c.now);
    expect(b.take(3).ok).toBe(true);
    expect(b.take(3)).toEqual({ ok: false, retryAfterSeconds: 1 });
    expect(b.take(2).ok).toBe(true);
  });

  test("a clock stepping backwards adds no tokens", () => {
    const c = clock(10_000);
    const b = new TokenBucket(1, 1, c.now);
    b.take();
    c.t = 0;
    expect(b.take().ok).toBe(false);
    c.t = 500;
    expect(b.take().ok).toBe(false);
    c.t = 1000;
    expect(b.take().ok).toBe(true);
  });

  test("burst below one is raised to one so the bucket can ever admit", () => {
    const c = clock();
    const b = new TokenBucket(1, 0.25, c.now);
    expect(b.capacity).toBe(1);
    expect(b.take().ok).toBe(true);
  });

  test("rejects nonsensical parameters", () => {
    expect(() => new TokenBucket(0, 1)).toThrow(RangeError);
    expect(() => new TokenBucket(-1, 1)).toThrow(RangeError);
    expect(() => new TokenBucket(Number.POSITIVE_INFINITY, 1)).toThrow(RangeError);
    expect(() => new TokenBucket(1, 0)).toThrow(RangeError);
  });
});
