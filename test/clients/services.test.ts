/**
 * The service helpers (test/fixtures/services.ts) against the real Debian programs:
 * redis-server spoken to with Bun's built-in RedisClient, haproxy round-robin over two
 * Bun.serve backends.
 */
import { RedisClient } from "bun";
import { expect, setDefaultTimeout } from "bun:test";
import { freePort, haproxyConfig, startHaproxy, startRedis, withFreePort, PortInUseError } from "../fixtures/services.ts";
import { waitFor } from "../helpers/wait.ts";
import { clientTest } from "./run.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

clientTest()("freePort gives a bindable port; withFreePort retries only on PortInUseError", async () => {
  const port = freePort();
  const s = Bun.serve({ hostname: "127.0.0.1", port, fetch: () => new Response("ok") });
  try {
    expect(s.port).toBe(port);
    let calls = 0;
    const got = await withFreePort(async (p) => {
      calls++;
      if (calls < 3) throw new PortInUseError("taken");
      return p;
    });
    expect(calls).toBe(3);
    expect(got).toBeGreaterThan(0);
    let other = 0;
    const boom = withFreePort(async () => {
      other++;
      throw new Error("not a port problem");
    });
    await expect(boom).rejects.toThrow("not a port problem");
    expect(other).toBe(1);
  } finally {
    s.stop(true);
  }
});

clientTest("redisServer")("redis-server: PING/SET/GET with Bun's RedisClient; kill and start on the same port", async () => {
  await using redis = await startRedis();
  expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
  const client = new RedisClient(redis.url, { autoReconnect: false, connectionTimeout: 2000 });
  try {
    expect(await client.ping()).toBe("PONG");
    await client.set("yata:k", "v1");
    expect(await client.get("yata:k")).toBe("v1");
    expect(await client.get("yata:missing")).toBeNull();
  } finally {
    client.close();
  }

  await redis.kill();
  expect(redis.running).toBe(false);
  expect(await redis.ping()).toBe(false);

  await redis.start();
  expect(redis.running).toBe(true);
  const again = new RedisClient(redis.url, { autoReconnect: false, connectionTimeout: 2000 });
  try {
    // no persistence: the restarted server is empty
    expect(await again.get("yata:k")).toBeNull();
  } finally {
    again.close();
  }
});

clientTest("redisServer", "haproxy")("a taken port is reported as PortInUseError (what withFreePort retries on)", async () => {
  const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    // a wrongly "started" service is stopped at once, so a failing assertion leaks no process
    const r = await startRedis({ port: taken.port }).then(
      (x) => x.stop().then(() => "started"),
      (e: unknown) => e,
    );
    expect(r).toBeInstanceOf(PortInUseError);
    const h = await startHaproxy([1], { port: taken.port }).then(
      (x) => x.stop().then(() => "started"),
      (e: unknown) => e,
    );
    expect(h).toBeInstanceOf(PortInUseError);
  } finally {
    taken.stop(true);
  }
});

clientTest("haproxy")("haproxy: round-robin across two Bun.serve backends, and the config it runs", async () => {
  const a = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("A") });
  const b = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("B") });
  try {
    await using lb = await startHaproxy([a.port!, `http://127.0.0.1:${b.port}`]);
    const bodies: string[] = [];
    const servers: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await fetch(`${lb.url}/x`);
      expect(r.status).toBe(200);
      bodies.push(await r.text());
      servers.push(r.headers.get("x-haproxy-server") ?? "");
    }
    // strict alternation, whichever backend comes first
    expect(new Set(bodies)).toEqual(new Set(["A", "B"]));
    for (let i = 1; i < bodies.length; i++) expect(bodies[i]).not.toBe(bodies[i - 1]);
    expect(servers.map((s, i) => `${s}=${bodies[i]}`).every((x) => x === "s0=A" || x === "s1=B")).toBe(true);
  } finally {
    a.stop(true);
    b.stop(true);
  }
});

clientTest("haproxy")("haproxy with health checks takes a dead backend out of the rotation", async () => {
  const a = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("A") });
  const b = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("B") });
  try {
    await using lb = await startHaproxy([a.port!, b.port!], { healthCheck: { path: "/health", intervalMs: 100 } });
    b.stop(true);
    // wait (by condition) until the check has marked s1 down: then every answer is A
    let streak = 0;
    await waitFor(
      async () => {
        const r = await fetch(`${lb.url}/x`).catch(() => undefined);
        const body = r ? await r.text() : "";
        streak = r?.status === 200 && body === "A" ? streak + 1 : 0;
        return streak >= 4;
      },
      { timeoutMs: 10_000, intervalMs: 20, message: () => `s1 to leave the rotation\n${lb.output()}` },
    );
    expect(streak).toBe(4);
  } finally {
    a.stop(true);
    b.stop(true);
  }
});

clientTest()("haproxyConfig renders retries, redispatch and checks only when asked", () => {
  const plain = haproxyConfig(1234, [5000, { port: 5001 }]);
  expect(plain).toContain("bind 127.0.0.1:1234");
  expect(plain).toContain("balance roundrobin");
  expect(plain).toContain("server s0 127.0.0.1:5000\n");
  expect(plain).toContain("server s1 127.0.0.1:5001\n");
  expect(plain).toContain("retries 0");
  expect(plain).not.toContain("redispatch");
  expect(plain).not.toContain("httpchk");
  const checked = haproxyConfig(1, ["127.0.0.1:2"], { retries: 2, redispatch: true, healthCheck: { path: "/ready" }, serverHeader: null });
  expect(checked).toContain("option httpchk GET /ready");
  expect(checked).toContain("server s0 127.0.0.1:2 check inter 200ms fall 1 rise 1");
  expect(checked).toContain("option redispatch");
  expect(checked).not.toContain("set-header");
});
