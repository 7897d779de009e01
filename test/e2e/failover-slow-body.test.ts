/**
 * A primary that sends a body within buffer_threshold_bytes slowly but steadily (never a stall:
 * bytes keep arriving) is that replica's failure once the body has taken longer than s3.timeout
 * plus its length at 16 KiB/s, on both upstream clients, for a known length and for a chunked one:
 * the secondary answers. Before, the own client only checked that bytes kept arriving, so the
 * attempt (and the failover) waited for the whole trickle, up to the request's deadline (504).
 *
 * A cache fill of a bucket with replicas gives each replica its own share of the fill's deadline
 * (s3.timeout plus 1 s per MiB the fill buffers): a body the client's bound would still wait for
 * (100 KB at 16 KiB/s) is failed over from once that share is spent. Before, the fill's deadline
 * cut the whole failover short: 504 every time, the secondary never asked.
 *
 * The primary is a raw HTTP/1.1 server that answers every GET with a 200 head at once, then 100
 * bytes every 100 ms (known length: Content-Length 12000, or 100000 for `big` in the path;
 * `chunked` in the path: chunked).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Socket } from "bun";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

setDefaultTimeout(60_000);

const KEY = { accessKeyId: "AKIASLOWBODYFAILOVER", secretAccessKey: "slow/body/failover/secret/EXAMPLE/00000" };
const SIZE = 12_000;
const BIG = 100_000;
let secondary: S3Fixture;
let slow: ReturnType<typeof startSlowPrimary>;
const trickles = new Set<ReturnType<typeof setInterval>>();
const proxies: Record<"own" | "fetch" | "big", ProxyProcess> = {} as never;

/** A primary that answers at once and then trickles: 100 bytes ("P") every 100 ms. */
function startSlowPrimary() {
  return Bun.listen<{ timer?: ReturnType<typeof setInterval>; seen: string }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { seen: "" };
      },
      data(s: Socket<{ timer?: ReturnType<typeof setInterval>; seen: string }>, chunk) {
        s.data.seen += chunk.toString();
        if (s.data.timer !== undefined || !s.data.seen.includes("\r\n\r\n")) return;
        const line = s.data.seen.split("\r\n", 1)[0]!;
        const chunked = line.includes("chunked");
        const size = line.includes("big") ? BIG : SIZE;
        s.write(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nETag: "slow"\r\n${chunked ? "Transfer-Encoding: chunked" : `Content-Length: ${size}`}\r\n\r\n`);
        let sent = 0;
        const piece = "P".repeat(100);
        const timer = setInterval(() => {
          if (sent >= size) {
            if (chunked) s.write("0\r\n\r\n");
            s.end(); // one answer per connection
            clearInterval(timer);
            trickles.delete(timer);
            return;
          }
          s.write(chunked ? `64\r\n${piece}\r\n` : piece);
          sent += 100;
        }, 100);
        s.data.timer = timer;
        trickles.add(timer);
      },
      close(s) {
        if (s.data?.timer !== undefined) {
          clearInterval(s.data.timer);
          trickles.delete(s.data.timer);
        }
      },
    },
  });
}

async function metric(px: ProxyProcess, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
  for (const line of text.split("\n")) if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  return 0;
}

beforeAll(async () => {
  secondary = await startS3Fixture({ buckets: [{ name: "s-bucket" }], credentials: [{ ...KEY, buckets: ["s-bucket"] }] });
  for (const k of ["k.bin", "chunked.bin"]) await secondary.put("s-bucket", k, new Uint8Array(SIZE).fill(83));
  for (const k of ["big.bin", "big2.bin"]) await secondary.put("s-bucket", k, new Uint8Array(BIG).fill(83));
  slow = startSlowPrimary();
  const replica = (name: string, bucket: string, endpoint: string, priority: number) =>
    `        - { name: ${name}, bucket: ${bucket}, region: us-east-1, endpoint: "${endpoint}", access_key: "${KEY.accessKeyId}", secret_key: "${KEY.secretAccessKey}", priority: ${priority} }\n`;
  const bucket = (name: string, cache: boolean, extra = "") =>
    `  - name: ${name}\n    path_prefix: /${name}\n` +
    (cache ? "    cache: { enabled: true }\n" : "") +
    `    s3:\n      timeout: 1\n      retry: { max_attempts: 1 }\n${extra}      replicas:\n` +
    replica("primary", "p-bucket", `http://127.0.0.1:${slow.port}`, 1) +
    replica("secondary", "s-bucket", secondary.endpoint, 2);
  for (const client of ["own", "fetch"] as const) {
    proxies[client] = await startProxy(
      `server: { address: 127.0.0.1, port: 0, request_timeout: 40, buffer_threshold_bytes: 16384${client === "fetch" ? ", upstream_client: fetch" : ""} }\n` +
        `metrics: { enabled: true, address: 127.0.0.1, port: 0 }\n` +
        `cache: { enabled: true, cache_layers: [memory], memory: { max_item_size_mb: 1, max_cache_size_mb: 8 } }\n` +
        // a bucket per test (its own failure counter and breaker), so the tests can overlap
        `buckets:\n` + bucket("live-len", false) + bucket("live-chunked", false) + bucket("cached-len", true) + bucket("cached-chunked", true) +
        bucket("cached-breaker", true, "      circuit_breaker: { failure_threshold: 1, success_threshold: 1, timeout_seconds: 60, half_open_max_requests: 1 }\n"),
    );
  }
  // Bodies up to 1 MiB held by the client (bound: 1 s + 100 KB at 16 KiB/s, ~7 s); the fill
  // buffers up to 1 MiB (its share per replica: 1 s + 1 s).
  proxies.big = await startProxy(
    `server: { address: 127.0.0.1, port: 0, request_timeout: 40, buffer_threshold_bytes: 1048576 }\n` +
      `metrics: { enabled: true, address: 127.0.0.1, port: 0 }\n` +
      `cache: { enabled: true, cache_layers: [memory], memory: { max_item_size_mb: 1, max_cache_size_mb: 8 } }\n` +
      `buckets:\n` + bucket("cached", true),
  );
});

afterAll(async () => {
  for (const p of Object.values(proxies)) await p?.stop();
  for (const t of trickles) clearInterval(t);
  slow?.stop(true);
  await secondary?.stop();
});

for (const client of ["own", "fetch"] as const) {
  describe(`a primary trickling a body within buffer_threshold_bytes (${client === "own" ? "own client" : "fetch"})`, () => {
    for (const bucket of ["live", "cached"] as const) {
      for (const key of ["k.bin", "chunked.bin"] as const) {
        // each waits ~2 s on a trickle, sharing nothing with the others: they run together
        test.concurrent(`${bucket} bucket, ${key === "k.bin" ? "Content-Length" : "chunked"}: the secondary answers the whole object; the primary's failure is counted`, async () => {
          const px = proxies[client];
          const name = `${bucket}-${key === "k.bin" ? "len" : "chunked"}`;
          const failures = `yatagarasu_s3_replica_requests_total{bucket="${name}",replica="primary",result="failure"}`;
          const before = await metric(px, failures);
          const res = await fetch(px.url(`/${name}/${key}`));
          const body = new Uint8Array(await res.arrayBuffer());
          expect([res.status, body.byteLength, body.every((b) => b === 83)]).toEqual([200, SIZE, true]); // "S": the secondary's, whole
          expect(await metric(px, failures)).toBe(before + 1);
        });
      }
    }
  });
}

// The fill's body (above buffer_threshold_bytes) is read after the attempt's head, which the
// breaker had counted a success: the primary failed over from on every fill (its failure counted
// in the replica metrics) kept a closed breaker, and each fill paid its share (~2 s) again.
for (const client of ["own", "fetch"] as const) {
  test.concurrent(`a cache fill whose share the primary spends trickling is charged to its breaker (${client === "own" ? "own client" : "fetch"}): the next fill skips it`, async () => {
    const px = proxies[client];
    const served = async (key: string) => {
      const res = await fetch(px.url(`/cached-breaker/${key}`));
      const body = new Uint8Array(await res.arrayBuffer());
      return [res.status, body.byteLength, body.every((b) => b === 83)];
    };
    expect(await served("big.bin")).toEqual([200, BIG, true]);
    expect(await metric(px, `yatagarasu_s3_replica_circuit_breaker_state{bucket="cached-breaker",replica="primary"}`)).toBe(1);
    const asked = await metric(px, `yatagarasu_s3_replica_requests_total{bucket="cached-breaker",replica="primary",result="skipped"}`);
    expect(await served("big2.bin")).toEqual([200, BIG, true]);
    expect(await metric(px, `yatagarasu_s3_replica_requests_total{bucket="cached-breaker",replica="primary",result="skipped"}`)).toBe(asked + 1);
  });
}

test.concurrent("a cache fill: the primary's share of the fill's deadline spent, the secondary answers (the fill's deadline covers both)", async () => {
  const px = proxies.big;
  const failures = `yatagarasu_s3_replica_requests_total{bucket="cached",replica="primary",result="failure"}`;
  const before = await metric(px, failures);
  const res = await fetch(px.url("/cached/big.bin"));
  const body = new Uint8Array(await res.arrayBuffer());
  expect([res.status, body.byteLength, body.every((b) => b === 83)]).toEqual([200, BIG, true]);
  expect(await metric(px, failures)).toBe(before + 1);
  expect((await fetch(px.url("/cached/big.bin"))).headers.get("x-cache")).toBe("HIT");
});
