/**
 * A client's own request body, framed by its Content-Length (src/http/framed-body.ts), goes
 * upstream through fetch natively, whichever client the bucket uses otherwise. Here a Bun.serve
 * front (as the listeners are) hands `framedRequestBody(req)` to putObject on a bucket whose
 * requests otherwise use the own HTTP/1.1 pool, against the S3 fixture and a raw upstream:
 * the body is stored byte-exact with its exact length, a client that leaves mid-body leaves no
 * object, an upstream that stops reading or never answers is a timeout, and only a body that is
 * framed (Content-Length, no Transfer-Encoding, not the node engine's) is marked.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import net from "node:net";
import type { BucketConfig } from "../../../src/config/schema.ts";
import { FRAMED_MIN_BYTES, framedBodyLimits, framedRequestBody, isFramedBody, markJsBody } from "../../../src/http/framed-body.ts";
import { UpstreamPools } from "../../../src/s3/http1/index.ts";
import { putObject } from "../../../src/s3/operations/index.ts";
import { FRAMED_STALL_MS, framedBudgetMs, framedLimits, framedTimeoutMs } from "../../../src/s3/send.ts";
import { BucketUpstream } from "../../../src/s3/upstream.ts";
import { startS3Fixture, type S3Fixture } from "../../fixtures/s3.ts";
import { waitFor } from "../../helpers/wait.ts";
import { ctx, patternBytes, rawServer, sha256 } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const WRITER = { accessKeyId: "AKIAFRAMEDUPLOADS001", secretAccessKey: "framed-uploads-secret-000000000000000000", buckets: ["fr"], write: true };
const MiB = 1024 * 1024;

let fx: S3Fixture;
beforeAll(async () => {
  fx = await startS3Fixture({ buckets: [{ name: "fr" }], credentials: [WRITER] });
  // (the native path itself is under test here: small bodies keep it, as bodies from 32 MiB do in production)
  framedBodyLimits.minBytes = 0;
});
afterAll(() => {
  framedBodyLimits.minBytes = FRAMED_MIN_BYTES;
  return fx?.stop();
});

/** A bucket on the own HTTP/1.1 pool (http endpoint, client auto), with fetch calls recorded. */
function upstreamOf(endpoint: string, timeoutSeconds = 10) {
  const calls: Array<{ body: unknown; headers: Record<string, string>; timeout: unknown; keepalive: unknown }> = [];
  const spy = ((url: string, init: RequestInit & { timeout?: unknown }) => {
    calls.push({ body: init.body, headers: { ...(init.headers as Record<string, string>) }, timeout: init.timeout, keepalive: init.keepalive });
    return fetch(url, init);
  }) as typeof fetch;
  const cfg = {
    name: "framed",
    path_prefix: "/p",
    s3: { bucket: "fr", region: "us-east-1", endpoint, access_key: WRITER.accessKeyId, secret_key: WRITER.secretAccessKey, timeout: timeoutSeconds, connect_timeout: 5, retry: { max_attempts: 3, initial_backoff_ms: 0, max_backoff_ms: 0 } },
  } as unknown as BucketConfig;
  const pools = new UpstreamPools();
  const upstream = new BucketUpstream(cfg, { client: "auto", pools, fetch: spy });
  if (upstream.pool === undefined) throw new Error("expected the own pool");
  return { upstream, calls, [Symbol.dispose]: () => pools.close() };
}

/**
 * A front that PUTs each request's framed body to `key` (the path) and answers the outcome.
 * `idleTimeout`: its listener's, in seconds (Bun.serve's default: 10).
 */
function front(upstream: BucketUpstream, idleTimeout?: number) {
  const outcomes: Array<{ key: string; status?: number; error?: string; framed: boolean }> = [];
  const server = Bun.serve({
    port: 0,
    maxRequestBodySize: 64 * MiB,
    ...(idleTimeout === undefined ? {} : { idleTimeout }),
    async fetch(req) {
      const key = new URL(req.url).pathname.slice(1);
      const length = Number(req.headers.get("content-length") ?? 0);
      const body = framedRequestBody(req, length)!;
      const framed = isFramedBody(body, length);
      try {
        const res = await putObject(upstream, { key, body, contentLength: length }, ctx(req.signal));
        await res.arrayBuffer();
        outcomes.push({ key, status: res.status, framed });
        return new Response(null, { status: res.status });
      } catch (err) {
        outcomes.push({ key, error: (err as Error).name, framed });
        return new Response(null, { status: 599 });
      }
    },
  });
  return { url: (key: string) => `http://127.0.0.1:${server.port}/${key}`, port: server.port!, outcomes, [Symbol.dispose]: () => server.stop(true) };
}

/** Sends a PUT head announcing `length` and `send` body bytes, then closes (fully, or only its write side). */
function partialPut(port: number, key: string, length: number, send: number, close: "destroy" | "end"): Promise<void> {
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1", () => {
      c.write(`PUT /${key} HTTP/1.1\r\nhost: x\r\ncontent-length: ${length}\r\n\r\n`);
      c.write(patternBytes(send), () => {
        if (close === "destroy") c.destroy();
        else c.end();
        resolve();
      });
    });
    c.on("error", () => {});
  });
}

const bodyState = (key: string) => fx.waitForRequest((e) => e.method === "PUT" && e.pathname === `/fr/${key}` && (e.body === "complete" || e.body === "aborted" || e.body === "rejected"), 15_000);

describe("framed request bodies go upstream through fetch natively", () => {
  test("toward an http endpoint each goes on its own connection, closed once answered (Bun's fetch pool kept idle sockets ~5 minutes)", async () => {
    using raw = rawServer();
    using up = upstreamOf(`http://127.0.0.1:${raw.port}`);
    using fr = front(up.upstream);
    for (const key of ["ka1.bin", "ka2.bin"]) expect((await fetch(fr.url(key), { method: "PUT", body: patternBytes(100 * 1024) })).status).toBe(200);
    expect(fr.outcomes.map((o) => o.framed)).toEqual([true, true]);
    expect(raw.conns.map((c) => c.requests.length)).toEqual([1, 1]);
    await waitFor(() => raw.conns.every((c) => c.closed), { message: "the upstream to see each upload's connection closed" });
  });

  test("a 20 MiB PUT: handed to fetch as the same stream with its exact length and a budget of s3.timeout plus the body at 12 KiB/s plus the listener's last idle period; stored byte-exact", async () => {
    using up = upstreamOf(fx.endpoint, 7);
    using fr = front(up.upstream);
    const body = patternBytes(20 * MiB + 3);
    const res = await fetch(fr.url("big.bin"), { method: "PUT", body });
    expect(res.status).toBe(200);
    expect(fr.outcomes).toEqual([{ key: "big.bin", status: 200, framed: true }]);
    expect(up.calls).toHaveLength(1);
    expect(up.calls[0]!.body).toBeInstanceOf(ReadableStream);
    expect(up.calls[0]!.headers["content-length"]).toBe(String(body.byteLength));
    expect(up.calls[0]!.timeout).toBe(framedBudgetMs(7000, body.byteLength));
    expect(up.calls[0]!.keepalive).toBe(false);
    // s3.timeout, the body at 12 KiB/s and the listener's last idle period (60 s, 4 s ticks) with a
    // margin: a client that stops sending is always cut by the listener, never answered 504 (and
    // counted by the breaker)
    expect(framedBudgetMs(7000, body.byteLength)).toBe(7000 + Math.ceil(((20 * MiB + 3) / (12 * 1024)) * 1000) + 70_000);
    expect(framedBudgetMs(7000, 100)).toBe(7000 + 9 + 70_000);
    // whatever the length, past the latest a stalled client is cut: the listener restarts its 60 s
    // clock (checked in 4 s ticks) only per 960 KiB received: up to 64 s per 960 KiB, then 64 s more
    for (const length of [0, 100, 959 * 1024, 960 * 1024 + 1, 1_024_000, 20 * MiB, 5 * 1024 * MiB]) {
      expect(framedBudgetMs(0, length)).toBeGreaterThan((Math.floor(length / (960 * 1024)) + 1) * 64_000);
    }
    // never beyond what a timer can wait
    expect(framedTimeoutMs(2_147_483_000, 10 * MiB)).toBe(2 ** 31 - 1);
    const seen = await bodyState("big.bin");
    expect(seen.body).toBe("complete");
    expect(seen.headers["transfer-encoding"]).toBeUndefined();
    expect(sha256((await fx.read("fr", "big.bin"))!)).toBe(sha256(body));
  });

  test("a stream that is not the request's own body still goes through the own pool", async () => {
    using up = upstreamOf(fx.endpoint);
    const bytes = patternBytes(MiB);
    const stream = new Response(bytes).body!;
    const res = await putObject(up.upstream, { key: "pool.bin", body: stream, contentLength: MiB }, ctx());
    expect(res.status).toBe(200);
    expect(up.calls).toHaveLength(0);
    expect(sha256((await fx.read("fr", "pool.bin"))!)).toBe(sha256(bytes));
  });

  for (const close of ["destroy", "end"] as const) {
    test(`a client that ${close === "destroy" ? "disconnects" : "half-closes"} mid-body: the upstream request is cut short, no object`, async () => {
      using up = upstreamOf(fx.endpoint);
      using fr = front(up.upstream);
      const key = `left-${close}.bin`;
      await partialPut(fr.port, key, 8 * MiB, 3 * MiB, close);
      expect((await bodyState(key)).body).toBe("aborted");
      await waitFor(() => fr.outcomes.length === 1);
      expect(fr.outcomes[0]!.framed).toBe(true);
      expect(fr.outcomes[0]!.error).toBeDefined();
      expect(await fx.exists("fr", key)).toBe(false);
    });
  }

  // These two run at once: each mostly waits (on the client's pace, on Bun's 4 s timer ticks), on
  // servers of its own. framedLimits.stallMs, which the second lowers, is no part of the first's
  // budget that matters: s3.timeout plus 2.5 MiB at the floor (minutes) against its ~10 s.
  test.concurrent("an upload still flowing after s3.timeout (+ Bun's 4-8 s tick) is not cut: fetch's timeout bounds the whole request, so a framed body gets s3.timeout plus its time at 16 KiB/s", async () => {
    using up = upstreamOf(fx.endpoint, 1);
    using fr = front(up.upstream);
    const chunk = patternBytes(128 * 1024);
    const chunks = 20; // one every 500 ms: ~10 s, past s3.timeout (1 s) and Bun's late tick (<= 8 s)
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (sent === chunks) return c.close();
        if (sent > 0) await Bun.sleep(500); // the client's pace (what is under test), not a wait for a condition
        sent++;
        c.enqueue(chunk);
      },
    });
    const res = await fetch(fr.url("slow.bin"), { method: "PUT", body, headers: { "content-length": String(chunks * chunk.byteLength) }, duplex: "half" } as RequestInit);
    expect(res.status).toBe(200);
    expect(fr.outcomes).toEqual([{ key: "slow.bin", status: 200, framed: true }]);
    expect((await bodyState("slow.bin")).body).toBe("complete");
    expect((await fx.read("fr", "slow.bin"))!.byteLength).toBe(chunks * chunk.byteLength);
  }, 40_000);

  test.concurrent("an upstream that stops reading mid-body, and one that never answers, time out (Bun checks the timer in 4 s ticks)", async () => {
    // Reads the head, then never reads again: the body backs up into the proxy, then the client.
    const stalled = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data(s) { s.pause(); }, error() {} } });
    using never = rawServer({ respond: () => "" });
    // (the budget's 70 s for a stalled client's last idle period, lowered so the silent upstream's budget shows in seconds)
    framedLimits.stallMs = 0;
    try {
      const one = async (name: string, port: number, size: number) => {
        using up = upstreamOf(`http://127.0.0.1:${port}`, 1);
        // (the stalled one's listener idles out after 4 s, Bun's tick, not its default 10 s; the silent
        // one's keeps 10 s, past the budget's latest tick, 8 s, so that the budget ends it)
        using fr = front(up.upstream, name === "stalled" ? 4 : undefined);
        const started = performance.now();
        const res = await fetch(fr.url(`${name}.bin`), { method: "PUT", body: patternBytes(size) }).catch((e: Error) => e);
        await waitFor(() => fr.outcomes.length === 1, { timeoutMs: 25_000 });
        const elapsed = performance.now() - started;
        // silent: the budget (a ProxyError: 504 upstream timeout); stalled: the listener's idle
        // timeout (4 s here, 60 s in the proxy; uWS counts a body arriving at
        // under 16 KB/s as idle) ends the request, which cuts
        // the upstream one
        const outcome = fr.outcomes[0]!;
        expect({ key: outcome.key, framed: outcome.framed, failed: outcome.error !== undefined }).toEqual({ key: `${name}.bin`, framed: true, failed: true });
        if (name === "silent") expect(outcome.error).toBe("ProxyError");
        if (res instanceof Response) expect(res.status).toBe(599);
        expect(elapsed).toBeLessThan(25_000);
      };
      // the silent one's budget: 1 s + 16 KiB at 12 KiB/s (a stall is the listener's idle timeout's to end)
      await Promise.all([one("stalled", stalled.port, 32 * MiB), one("silent", never.port, 16 * 1024)]);
      expect(never.requests()[0]!.bodyBytes).toBe(16 * 1024);
    } finally {
      stalled.stop(true);
      framedLimits.stallMs = FRAMED_STALL_MS;
    }
  }, 40_000);
});

describe("which bodies are framed", () => {
  async function markOf(init: { head: string; body: Uint8Array; length: number; js?: boolean; read?: boolean }): Promise<boolean> {
    let framed: boolean | undefined;
    using server = Bun.serve({
      port: 0,
      async fetch(req) {
        if (init.js) markJsBody(req);
        const body = framedRequestBody(req, init.length);
        if (init.read && body !== null) body.getReader();
        framed = body !== null && isFramedBody(body, init.length);
        return new Response("ok");
      },
    });
    await new Promise<void>((resolve) => {
      const c = net.connect(server.port!, "127.0.0.1", () => c.write(`PUT / HTTP/1.1\r\nhost: x\r\n${init.head}\r\n`, () => c.write(init.body)));
      c.on("data", () => {
        c.destroy();
        resolve();
      });
      c.on("error", () => resolve());
    });
    if (framed === undefined) throw new Error("the handler did not run");
    return framed;
  }

  test("Content-Length without Transfer-Encoding is framed; chunked, a length that differs, the node engine's and a locked body are not", async () => {
    const bytes = patternBytes(1000);
    const chunked = Buffer.concat([Buffer.from("3e8\r\n"), bytes, Buffer.from("\r\n0\r\n\r\n")]);
    expect(await markOf({ head: "content-length: 1000\r\n", body: bytes, length: 1000 })).toBe(true);
    expect(await markOf({ head: "content-length: 1000\r\n", body: bytes, length: 999 })).toBe(false);
    expect(await markOf({ head: "transfer-encoding: chunked\r\n", body: chunked, length: 1000 })).toBe(false);
    expect(await markOf({ head: "content-length: 1000\r\n", body: bytes, length: 1000, js: true })).toBe(false);
    expect(await markOf({ head: "content-length: 1000\r\n", body: bytes, length: 1000, read: true })).toBe(false);
  });

  test("a body below FRAMED_MIN_BYTES is not framed (an upstream that stops reading it is seen on the JavaScript path)", async () => {
    const bytes = patternBytes(1000);
    framedBodyLimits.minBytes = 1001;
    try {
      expect(await markOf({ head: "content-length: 1000\r\n", body: bytes, length: 1000 })).toBe(false);
      framedBodyLimits.minBytes = 1000;
      expect(await markOf({ head: "content-length: 1000\r\n", body: bytes, length: 1000 })).toBe(true);
    } finally {
      framedBodyLimits.minBytes = 0;
    }
  });
});
