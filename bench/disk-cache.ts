/**
 * Disk-cache hit of a 100 MiB object vs nginx serving the same file (issue 13's target: >= 0.9x
 * nginx, same run). Both sides send the file with sendfile; the proxy's disk layer holds it as one
 * file (a small head, then the body), served by Bun.file with an exact Content-Length.
 *
 *   bun bench/disk-cache.ts            # BENCH_SECONDS (default 5) x BENCH_ROUNDS (default 2), 4 connections
 *
 * Setup: nginx origin (1 worker) over the bench fixture; nginx static peer (1 worker) over the same
 * root; the proxy (1 process) with cache_layers [memory, disk] (memory's item limit far below
 * 100 MiB, so every hit is a disk hit). The object is filled once and checked to be a disk HIT with
 * Content-Length before anything is measured. Rounds interleave nginx and the proxy.
 */
import { join } from "node:path";
import { cpuSeconds, makeFixture, MIB, requireTools, runWrk, startNginx, startProxy, type LoadResult } from "./lib.ts";
import { startOrigin } from "./scenarios.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const CONNECTIONS = 4;

export interface DiskCacheResult {
  nginx: { mibPerSec: number; rps: number; cpuPerGiB: number };
  disk_hit: { mibPerSec: number; rps: number; cpuPerGiB: number };
  ratio: number;
}

export async function runDiskCacheBench(): Promise<DiskCacheResult> {
  requireTools();
  const fx = makeFixture();
  const origin = await startOrigin(fx);
  const peer = await startNginx("disk-peer", fx, 1, { static: () => `    location = /health { return 200 'ok'; }\n    root ${fx.root};` });
  const proxy = await startProxy(
    fx,
    "disk",
    `server: { address: 127.0.0.1, port: $PORT, max_concurrent_requests: 100000 }
logging: { level: warn }
cache:
  enabled: true
  cache_layers: [memory, disk]
  memory: { max_item_size_mb: 1, max_cache_size_mb: 64 }
  disk: { path: "${join(fx.dir, "disk-cache")}", max_disk_size_mb: 1024, max_item_size_mb: 512 }
buckets:
  - name: dc
    path_prefix: /dc
    s3: { bucket: bucket, endpoint: "http://127.0.0.1:${origin.ports.s3}" }
    cache: { enabled: true }
`,
  );
  try {
    const nginxUrl = `http://127.0.0.1:${peer.ports.static}/bucket/100m.bin`;
    const diskUrl = `http://127.0.0.1:${proxy.port}/dc/100m.bin`;
    await (await fetch(diskUrl)).arrayBuffer(); // the fill (streamed to this client and to disk)
    for (let i = 0; ; i++) {
      const r = await fetch(diskUrl);
      await r.arrayBuffer();
      if (r.headers.get("x-cache-layer") === "disk" && r.headers.get("content-length") === String(100 * MIB)) break;
      if (i > 200) throw new Error(`not a disk hit: x-cache ${r.headers.get("x-cache")}, layer ${r.headers.get("x-cache-layer")}`);
      await Bun.sleep(50); // poll interval while the fill is committed
    }
    const runs: Record<"nginx" | "disk_hit", { res: LoadResult; cpu: number }[]> = { nginx: [], disk_hit: [] };
    const measure = async (id: "nginx" | "disk_hit", url: string, pids: () => number[]) => {
      await runWrk(url, { connections: CONNECTIONS, seconds: 1 }); // warm-up
      const c0 = cpuSeconds(pids());
      const res = await runWrk(url, { connections: CONNECTIONS, seconds: SECONDS });
      if (res.errors > 0 || res.non2xx > 0) throw new Error(`${id}: ${res.errors} errors, ${res.non2xx} non-2xx`);
      runs[id].push({ res, cpu: cpuSeconds(pids()) - c0 });
    };
    for (let round = 0; round < ROUNDS; round++) {
      await measure("nginx", nginxUrl, peer.pids);
      await measure("disk_hit", diskUrl, proxy.pids);
    }
    const sum = (id: "nginx" | "disk_hit") => {
      const rs = runs[id];
      const bytes = rs.reduce((s, r) => s + r.res.bytesPerSec * SECONDS, 0);
      const mibPerSec = rs.reduce((s, r) => s + r.res.bytesPerSec, 0) / rs.length / MIB;
      const rps = rs.reduce((s, r) => s + r.res.rps, 0) / rs.length;
      const cpu = rs.reduce((s, r) => s + r.cpu, 0);
      return { mibPerSec: Math.round(mibPerSec), rps: Math.round(rps * 10) / 10, cpuPerGiB: Math.round((cpu / (bytes / (1024 * MIB))) * 1000) / 1000 };
    };
    const nginx = sum("nginx");
    const disk_hit = sum("disk_hit");
    return { nginx, disk_hit, ratio: Math.round((disk_hit.mibPerSec / nginx.mibPerSec) * 100) / 100 };
  } finally {
    await proxy.stop();
    await peer.stop();
    await origin.stop();
    fx.cleanup();
  }
}

if (import.meta.main) {
  const r = await runDiskCacheBench();
  console.log(JSON.stringify({ seconds: SECONDS, rounds: ROUNDS, connections: CONNECTIONS, ...r }, null, 2));
  console.log(`disk-cache hit 100 MiB: ${r.disk_hit.mibPerSec} MiB/s vs nginx static ${r.nginx.mibPerSec} MiB/s = ${r.ratio}x (target >= 0.9)`);
}
