/**
 * The runtime's floors (bench/ceiling.ts: serve-fixed, serve-raw, serve-pool, raw-proxy) in the same run as Apache Traffic Server + s3_auth,
 * Yatagarasu and nginx proxy_cache (issue 14): how far the targets are from what Bun.serve allows
 * at all. Interleaved rounds (the order alternates), wrk with 64 connections, 1 KiB, medians; req/s
 * as a multiple of ATS's signed GET and of ATS's cache hit, and CPU µs per request.
 *
 *   bun bench/floors-vs-ats.ts      (BENCH_ROUNDS=3, BENCH_SECONDS=3; needs nginx, wrk, traffic_server)
 */
import { cpuSeconds, makeFixture, requireTools, runWrk, spawnServerMode } from "./lib.ts";
import { atsInstalled } from "./ats.ts";
import { startOrigin, startSetup } from "./scenarios.ts";

const FLOORS = ["serve-fixed", "serve-raw", "serve-pool", "raw-proxy"];
const IDS = ["ats_signed", "yata_signed", "yata_jwt_signed", "ats_cached", "yata_cached", "nginx_proxy_cache"];

requireTools();
if (!atsInstalled()) {
  process.stderr.write("bench: /usr/bin/traffic_server (apt-get install -y trafficserver) is needed for this comparison\n");
  process.exit(2);
}
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const fx = makeFixture();
const origin = await startOrigin(fx);
const floors: { id: string; url: string; proc: ReturnType<typeof Bun.spawn> }[] = [];
let setup: Awaited<ReturnType<typeof startSetup>> | undefined;
try {
  setup = await startSetup(fx, origin, 1, "warn", { ats: true });
  for (const mode of FLOORS) {
    const { proc, port } = await spawnServerMode(`${import.meta.dir}/ceiling.ts`, [mode, String(origin.ports.s3)]);
    floors.push({ id: `floor ${mode}`, proc, url: `http://127.0.0.1:${port}/x/1k.bin` });
  }
  const s = setup;
  const targets = [
    ...IDS.map((id) => {
      const t = s.targets[id]!;
      return { id, url: t.url, headers: t.headers, pids: t.pids ?? (id.startsWith("nginx") ? s.peer.pids : s.proxy.pids) };
    }),
    ...floors.map((f) => ({ id: f.id, url: f.url, headers: undefined, pids: () => [f.proc.pid] })),
  ];
  const rps: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  for (const t of targets) await runWrk(t.url, { connections: 64, seconds: 1, headers: t.headers });
  for (let r = 0; r < rounds; r++) {
    for (const t of r % 2 ? [...targets].reverse() : targets) {
      const c0 = cpuSeconds(t.pids());
      const w = await runWrk(t.url, { connections: 64, seconds, headers: t.headers });
      const used = cpuSeconds(t.pids()) - c0;
      if (w.errors || w.non2xx) throw new Error(`${t.id}: ${w.errors} errors, ${w.non2xx} non-2xx`);
      (rps[t.id] ??= []).push(w.rps);
      (cpu[t.id] ??= []).push((used * 1e6) / w.requests);
    }
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  const ats = med(rps.ats_signed!);
  const atsc = med(rps.ats_cached!);
  console.log(`\n${rounds} interleaved rounds of ${seconds} s, 64 connections, 1 KiB (medians):\n`);
  console.log("| server | req/s | × ATS signed | × ATS cache hit | CPU µs/req |\n|---|---:|---:|---:|---:|");
  for (const t of targets) {
    const v = med(rps[t.id]!);
    console.log(`| ${t.id} | ${v.toFixed(0)} | ${(v / ats).toFixed(2)} | ${(v / atsc).toFixed(2)} | ${med(cpu[t.id]!).toFixed(1)} |`);
  }
} finally {
  for (const f of floors) f.proc.kill();
  await Promise.all(floors.map((f) => f.proc.exited));
  await setup?.stop();
  await origin.stop();
  fx.cleanup();
}
