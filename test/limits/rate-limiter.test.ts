import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { RateLimiter, type ServerRateLimit } from "../../src/limits/rate-limiter.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

function clock(start = 0) {
  const c = { t: start, now: () => c.t };
  return c;
}

const perIp = (rps: number, burst: number, max_entries = 100_000, idle_seconds = 300) => ({
  requests_per_second: rps,
  burst,
  max_entries,
  idle_seconds,
});

function admitted(rl: RateLimiter, n: number, ip = "1.1.1.1", bucket?: string): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (rl.check(ip, bucket).ok) ok++;
  return ok;
}

describe("RateLimiter scopes", () => {
  test("no configuration admits everything and reports inactive", () => {
    const rl = new RateLimiter(undefined);
    expect(rl.active).toBe(false);
    expect(admitted(rl, 10_000)).toBe(10_000);
  });

  test("global limit applies to all clients together", () => {
    const c = clock();
    const rl = new RateLimiter({ global: { requests_per_second: 2, burst: 3 } }, {}, { now: c.now });
    expect(rl.check("a").ok).toBe(true);
    expect(rl.check("b").ok).toBe(true);
    expect(rl.check("c").ok).toBe(true);
    expect(rl.check("d")).toEqual({ ok: false, scope: "global", retryAfterSeconds: 1 });
    c.t += 500;
    expect(rl.check("d").ok).toBe(true);
  });

  test("burst defaults to requests_per_second", () => {
    const c = clock();
    const rl = new RateLimiter({ global: { requests_per_second: 7 } }, {}, { now: c.now });
    expect(admitted(rl, 100)).toBe(7);
  });

  test("per-IP limits are independent per client", () => {
    const c = clock();
    const rl = new RateLimiter({ per_ip: perIp(1, 2) }, {}, { now: c.now });
    expect(admitted(rl, 5, "10.0.0.1")).toBe(2);
    expect(admitted(rl, 5, "10.0.0.2")).toBe(2);
    expect(rl.check("10.0.0.1")).toEqual({ ok: false, scope: "per_ip", retryAfterSeconds: 1 });
  });

  test("a client refused by its per-IP limit does not drain the global budget", () => {
    const c = clock();
    const rl = new RateLimiter(
      { global: { requests_per_second: 1, burst: 10 }, per_ip: perIp(1, 1) },
      {},
      { now: c.now },
    );
    expect(admitted(rl, 1000, "abuser")).toBe(1);
    // 9 global tokens remain for everybody else.
    let others = 0;
    for (let i = 0; i < 20; i++) if (rl.check(`client-${i}`).ok) others++;
    expect(others).toBe(9);
    expect(rl.check("client-99").ok).toBe(false);
  });

  test("the first exhausted scope is reported in the order global, per_ip, bucket", () => {
    const c = clock();
    const rl = new RateLimiter(
      { global: { requests_per_second: 1, burst: 1 }, per_ip: perIp(1, 1) },
      { b: { requests_per_second: 1, burst: 1 } },
      { now: c.now },
    );
    expect(rl.check("x", "b").ok).toBe(true);
    const r = rl.check("x", "b");
    expect(r.ok === false && r.scope).toBe("global");
  });

  test("per-bucket limits apply only to their bucket", () => {
    const c = clock();
    const rl = new RateLimiter(undefined, { slow: { requests_per_second: 0.5, burst: 2 }, fast: undefined }, { now: c.now });
    expect(rl.active).toBe(true);
    expect(admitted(rl, 10, "ip", "slow")).toBe(2);
    expect(rl.check("ip", "slow")).toEqual({ ok: false, scope: "bucket", retryAfterSeconds: 2 });
    expect(admitted(rl, 10, "ip", "fast")).toBe(10);
    expect(admitted(rl, 10, "ip")).toBe(10);
  });

  test("Retry-After is the wait until every short scope has a token; the first short one is named", () => {
    const c = clock();
    const rl = new RateLimiter({ per_ip: perIp(1, 1) }, { slow: { requests_per_second: 0.01, burst: 1 } }, { now: c.now });
    expect(rl.check("ip", "slow").ok).toBe(true);
    // (its address's token is back in 1 s, the bucket's in 100 s: a client told 1 s was refused again)
    expect(rl.check("ip", "slow")).toEqual({ ok: false, scope: "per_ip", retryAfterSeconds: 100 });
    c.t += 1_000;
    expect(rl.check("ip", "slow")).toEqual({ ok: false, scope: "bucket", retryAfterSeconds: 99 });
  });

  test("enabled: false switches off global and per-IP limits but not bucket limits", () => {
    const c = clock();
    const server: ServerRateLimit = { enabled: false, global: { requests_per_second: 1 }, per_ip: perIp(1, 1) };
    const rl = new RateLimiter(server, { b: { requests_per_second: 1, burst: 1 } }, { now: c.now });
    expect(admitted(rl, 50)).toBe(50);
    expect(rl.perIpSize).toBe(0);
    expect(admitted(rl, 5, "ip", "b")).toBe(1);
  });

  test("fromConfig reads server.rate_limit and each bucket's s3.rate_limit", () => {
    const c = clock();
    const rl = RateLimiter.fromConfig(
      {
        server: { rate_limit: { enabled: true, per_ip: perIp(1, 3) } },
        buckets: [
          { name: "a", s3: { rate_limit: { requests_per_second: 1, burst: 1 } } },
          { name: "b", s3: {} },
        ],
      },
      { now: c.now },
    );
    expect(admitted(rl, 5, "1", "a")).toBe(1);
    expect(admitted(rl, 5, "2", "b")).toBe(3);
  });
});

describe("RateLimiter share divisor", () => {
  test("N workers each enforce rate/N and burst/N; the total stays as configured", () => {
    const c = clock();
    const server: ServerRateLimit = { global: { requests_per_second: 100, burst: 40 } };
    const workers = Array.from({ length: 4 }, () => new RateLimiter(server, {}, { share: 4, now: c.now }));
    expect(workers.map((w) => admitted(w, 1000))).toEqual([10, 10, 10, 10]);
    c.t += 1000; // refill 25 per worker, capped at burst 10
    expect(workers.reduce((s, w) => s + admitted(w, 1000), 0)).toBe(40);
    c.t += 100; // 2.5 tokens per worker
    expect(workers.reduce((s, w) => s + admitted(w, 1000), 0)).toBe(8);
  });

  test("applies to per-IP and bucket limits too", () => {
    const c = clock();
    const rl = new RateLimiter({ per_ip: perIp(10, 10) }, { b: { requests_per_second: 20 } }, { share: 2, now: c.now });
    expect(admitted(rl, 100, "ip1")).toBe(5);
    expect(admitted(rl, 100, "ip2", "b")).toBe(5);
    expect(admitted(rl, 100, "ip3", "b")).toBe(5); // bucket: 10 total, 5 already taken
    expect(admitted(rl, 100, "ip4", "b")).toBe(0);
    c.t += 200; // per-IP refills at 5/s (not 10/s): one token; bucket at 10/s: two
    expect(admitted(rl, 100, "ip1")).toBe(1);
    expect(admitted(rl, 100, "ip5", "b")).toBe(2);
  });

  test("a share that would leave less than one token still admits one", () => {
    const c = clock();
    const rl = new RateLimiter({ global: { requests_per_second: 2, burst: 2 } }, {}, { share: 8, now: c.now });
    expect(admitted(rl, 10)).toBe(1);
  });

  test("rejects an invalid share", () => {
    expect(() => new RateLimiter(undefined, {}, { share: 0 })).toThrow(RangeError);
    expect(() => new RateLimiter(undefined, {}, { share: 0.5 })).toThrow(RangeError);
    expect(() => new RateLimiter(undefined, {}, { share: Number.NaN })).toThrow(RangeError);
  });
});

describe("RateLimiter per-IP table is bounded", () => {
  test("1,000,000 distinct IPs never grow the table beyond max_entries", () => {
    const c = clock();
    const max = 5_000;
    const rl = new RateLimiter({ per_ip: perIp(1, 1, max, 300) }, {}, { now: c.now });
    let largest = 0;
    for (let i = 0; i < 1_000_000; i++) {
      const ip = `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`;
      expect_ok(rl.check(ip).ok);
      if ((i & 1023) === 0 && rl.perIpSize > largest) largest = rl.perIpSize;
      c.t += 0.01; // 10 s in total: nothing goes idle, only LRU eviction bounds the table
    }
    largest = Math.max(largest, rl.perIpSize);
    expect(largest).toBe(max);
    expect(rl.perIpSize).toBe(max);
  });

  test("with steady traffic the table holds about rate x idle_seconds entries", () => {
    const c = clock();
    const rl = new RateLimiter({ per_ip: perIp(1, 1, 1_000_000, 1) }, {}, { now: c.now });
    let largest = 0;
    for (let i = 0; i < 200_000; i++) {
      rl.check(`ip-${i}`);
      c.t += 1; // 1000 new clients per second, idle after 1 s
      if (rl.perIpSize > largest) largest = rl.perIpSize;
    }
    // Sweeps run at most once per clock second, so up to ~2 s worth of clients may be held.
    expect(largest).toBeLessThanOrEqual(2_001);
  });

  test("idle entries expire; an expired client starts again with a full bucket", () => {
    const c = clock();
    const rl = new RateLimiter({ per_ip: perIp(1, 1, 100, 5) }, {}, { now: c.now });
    expect(rl.check("a").ok).toBe(true);
    expect(rl.check("a").ok).toBe(false);
    rl.check("b");
    expect(rl.perIpSize).toBe(2);
    c.t += 4_000;
    rl.check("b"); // b is active again, a is not
    c.t += 1_500;
    rl.prune();
    expect(rl.perIpSize).toBe(1);
    expect(rl.check("a").ok).toBe(true); // forgotten, so full again
    expect(rl.perIpSize).toBe(2);
  });

  test("an idle entry is kept until it has refilled: waiting idle_seconds is no fresh burst", () => {
    const c = clock();
    // 100 an hour, forgotten after 300 s idle
    const rl = new RateLimiter({ per_ip: perIp(100 / 3600, 100, 100, 300) }, {}, { now: c.now });
    expect(admitted(rl, 150, "a")).toBe(100);
    c.t += 301_000;
    rl.prune();
    expect(rl.perIpSize).toBe(1);
    // 301 s of refill at 100 an hour: 8 requests, not another 100
    expect(admitted(rl, 150, "a")).toBe(8);
    c.t += 3_601_000;
    rl.prune();
    expect(rl.perIpSize).toBe(0); // full again: forgetting it changes nothing
    expect(admitted(rl, 150, "a")).toBe(100);
  });

  test("a full table evicts the least recently used client", () => {
    const c = clock();
    const rl = new RateLimiter({ per_ip: perIp(0.001, 1, 3, 300) }, {}, { now: c.now });
    for (const ip of ["a", "b", "c"]) expect(rl.check(ip).ok).toBe(true);
    c.t += 1;
    expect(rl.check("a").ok).toBe(false); // a is now the most recently used
    expect(rl.check("d").ok).toBe(true); // evicts b
    expect(rl.perIpSize).toBe(3);
    expect(rl.check("a").ok).toBe(false); // a was kept (still empty)
    expect(rl.check("b").ok).toBe(true); // b was evicted, starts full (evicts c)
    expect(rl.check("d").ok).toBe(false);
    expect(rl.check("c").ok).toBe(true);
  });
});

function expect_ok(ok: boolean): void {
  // Cheap assertion for the million-iteration loop (expect() per iteration would dominate).
  if (!ok) throw new Error("a fresh client should be admitted");
}
