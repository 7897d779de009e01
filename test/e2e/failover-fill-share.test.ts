/**
 * (A) a cache fill of an object larger than buffer_threshold_bytes (but buffered by the
 * fill) from a trickling primary: the per-replica share does not bound its body (the attempt ended at
 * the head), the fill's whole deadline runs out: 504, the secondary never asked.
 * (B) a fill attempt cut by its share (fillBodyMs) is "neutral" for the primary's breaker (as a
 * client abort): the breaker never opens, every fill waits the share on the slow primary again.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import type { Socket } from "bun";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

setDefaultTimeout(60_000);
const KEY = { accessKeyId: "AKIAREVIEWFILLATTEMP", secretAccessKey: "review/fill/attempt/secret/EXAMPLE/00000" };
const BIG = 100_000;
let secondary: S3Fixture;
let slow: { port: number; stop(closeActive?: boolean): void };
const timers = new Set<ReturnType<typeof setInterval>>();
let pxA: ProxyProcess;
let pxB: ProxyProcess;

beforeAll(async () => {
  secondary = await startS3Fixture({ buckets: [{ name: "s-bucket" }], credentials: [{ ...KEY, buckets: ["s-bucket"] }] });
  for (const k of ["a.bin", "b1.bin", "b2.bin", "b3.bin", "b4.bin"]) await secondary.put("s-bucket", k, new Uint8Array(BIG).fill(83));
  slow = Bun.listen<{ timer?: ReturnType<typeof setInterval>; seen: string }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) { s.data = { seen: "" }; },
      data(s: Socket<{ timer?: ReturnType<typeof setInterval>; seen: string }>, chunk) {
        s.data.seen += chunk.toString();
        if (s.data.timer !== undefined || !s.data.seen.includes("\r\n\r\n")) return;
        s.write(`HTTP/1.1 200 OK\r\nConnection: close\r\nETag: "slow"\r\nContent-Length: ${BIG}\r\n\r\n`);
        let sent = 0;
        const t = setInterval(() => { if (sent >= BIG) { s.end(); clearInterval(t); return; } s.write("P".repeat(1000)); sent += 1000; }, 100);
        s.data.timer = t; timers.add(t);
      },
      close(s) { if (s.data?.timer) clearInterval(s.data.timer); },
    },
  });
  const replica = (name: string, bucket: string, endpoint: string, priority: number) =>
    `        - { name: ${name}, bucket: ${bucket}, region: us-east-1, endpoint: "${endpoint}", access_key: "${KEY.accessKeyId}", secret_key: "${KEY.secretAccessKey}", priority: ${priority} }\n`;
  const cfg = (threshold: number) =>
    `server: { address: 127.0.0.1, port: 0, request_timeout: 40, buffer_threshold_bytes: ${threshold} }\n` +
    `metrics: { enabled: true, address: 127.0.0.1, port: 0 }\n` +
    `cache: { enabled: true, cache_layers: [memory], memory: { max_item_size_mb: 1, max_cache_size_mb: 8 } }\n` +
    `buckets:\n  - name: cached\n    path_prefix: /cached\n    cache: { enabled: true }\n    s3:\n      timeout: 1\n      retry: { max_attempts: 1 }\n` +
    `      circuit_breaker: { failure_threshold: 2, success_threshold: 1, timeout_seconds: 60 }\n      replicas:\n` +
    replica("primary", "p-bucket", `http://127.0.0.1:${slow.port}`, 1) + replica("secondary", "s-bucket", secondary.endpoint, 2);
  pxA = await startProxy(cfg(16384)); // 100 KB > buffer_threshold: streamed after the head
  pxB = await startProxy(cfg(1048576)); // 100 KB held by the client (bound ~7 s), share 2 s
});

afterAll(async () => {
  await pxA?.stop(); await pxB?.stop();
  for (const t of timers) clearInterval(t);
  slow?.stop(true);
  await secondary?.stop();
});

async function metric(px: ProxyProcess, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
  for (const line of text.split("\n")) if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  return NaN;
}

test("(A) fill of a body above buffer_threshold_bytes from a trickling primary fails over", async () => {
  const t0 = performance.now();
  const res = await fetch(pxA.url("/cached/a.bin"));
  const body = new Uint8Array(await res.arrayBuffer());
  expect(res.status).toBe(200);
});

test("(B) fills cut by the primary's share open its breaker (failure_threshold 2)", async () => {
  for (const k of ["b1.bin", "b2.bin", "b3.bin"]) {
    const t0 = performance.now();
    const res = await fetch(pxB.url(`/cached/${k}`));
    await res.arrayBuffer();
  }
  const state = await metric(pxB, `yatagarasu_s3_replica_circuit_breaker_state{bucket="cached",replica="primary"}`);
  expect(state).toBe(1);
});
