/**
 * A body of unknown length (chunked) that trickles below the floor (16 KiB/s) while it is held
 * before the answer is handed over: the attempt fails soon after s3.timeout, as one of known length
 * does, on both upstream clients, so a replica set fails over to the next replica. (The hold's
 * deadline was the one for the most it may hold, bufferBodyUpTo at 16 KiB/s: a chunked body at a
 * few KiB/s held its attempt, and the failover, until server.request_timeout answered 504.)
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import type { Socket } from "bun";
import { parseConfig } from "../../src/config/load.ts";
import { UpstreamPools } from "../../src/s3/http1/index.ts";
import { buildUpstream, type ReplicaSet } from "../../src/s3/replicas.ts";
import { BucketUpstream } from "../../src/s3/upstream.ts";

setDefaultTimeout(30_000);

/** GET: 200 chunked, 1000 bytes every 200 ms (5 KB/s), 100 KB in all (20 s). HEAD: 200. */
function trickler() {
  const timers = new Set<ReturnType<typeof setInterval>>();
  const srv = Bun.listen<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(s: Socket<undefined>, d) {
        if (d.toString("latin1").startsWith("HEAD")) return void s.write("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        s.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        let sent = 0;
        const t = setInterval(() => {
          if (sent >= 100_000) {
            clearInterval(t);
            s.write("0\r\n\r\n");
            return;
          }
          sent += 1000;
          s.write(`3e8\r\n${"x".repeat(1000)}\r\n`);
        }, 200);
        timers.add(t);
      },
      close() {},
    },
  });
  return { port: srv.port, stop: () => { for (const t of timers) clearInterval(t); srv.stop(true); } };
}

const cfg = (port: number) =>
  parseConfig(
    `buckets:
  - name: b
    path_prefix: /b
    s3: { bucket: bk, region: us-east-1, endpoint: "http://127.0.0.1:${port}", access_key: AK, secret_key: SK, timeout: 1, retry: { max_attempts: 1, initial_backoff_ms: 1, max_backoff_ms: 1 } }
`,
    { env: {} },
  ).buckets[0];

const timing = () => ({ upstreamMs: 0, attempts: 0 }) as { upstreamMs: number; attempts: number; replica?: string };

// The three run at once: each has its own trickler, pools and upstream, and mostly waits (~3 s)
// on a trickle of 5 KB/s, far under their 8 s bound.
describe.concurrent("a held body of unknown length trickling below the floor", () => {
  for (const client of ["auto", "fetch"] as const) {
    test(`${client === "auto" ? "own client" : "fetch"}: the attempt fails soon after s3.timeout, not when the whole hold's deadline passes`, async () => {
      const up = trickler();
      const pools = new UpstreamPools();
      try {
        const b = new BucketUpstream(cfg(up.port), { client, pools, bufferBodyUpTo: 1024 * 1024 });
        const started = performance.now();
        const outcome = await b.fetchObject("GET", "k", {}, new AbortController().signal, timing()).then(
          async (res) => `answered ${res.status} ${(await res.arrayBuffer()).byteLength}`,
          (e: Error) => `failed ${e.name}`,
        );
        const took = performance.now() - started;
        expect(outcome).toBe("failed ProxyError");
        // (2 s of grace plus 5 KB/s against 16 KiB/s: ~3 s; the whole body takes 20 s)
        expect(took).toBeLessThan(8000);
      } finally {
        pools.close();
        up.stop();
      }
    });
  }

  test("a replica set fails over from it to the next replica", async () => {
    const up = trickler();
    const ok = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("from secondary") });
    const pools = new UpstreamPools();
    try {
      const c = parseConfig(
        `buckets:
  - name: b
    path_prefix: /b
    s3:
      timeout: 1
      replicas:
        - { name: trickler, bucket: bk, region: us-east-1, endpoint: "http://127.0.0.1:${up.port}", access_key: AK, secret_key: SK, priority: 1 }
        - { name: secondary, bucket: bk2, region: us-east-1, endpoint: "http://127.0.0.1:${ok.port}", access_key: AK, secret_key: SK, priority: 2 }
`,
        { env: {} },
      ).buckets[0];
      const set = buildUpstream(c, { client: "auto", pools, bufferBodyUpTo: 1024 * 1024 }) as ReplicaSet;
      const t = timing();
      const started = performance.now();
      const res = await set.fetchObject("GET", "k", {}, new AbortController().signal, t);
      expect(await res.text()).toBe("from secondary");
      expect(t.replica).toBe("secondary");
      expect(performance.now() - started).toBeLessThan(8000);
    } finally {
      pools.close();
      ok.stop(true);
      up.stop();
    }
  });
});
