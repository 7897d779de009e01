/**
 * Uploads through the S3 front (issue 12), each beside its peer in the same run:
 * - 12a/12b: a 100 MiB PutObject with curl (UNSIGNED-PAYLOAD, Content-Length, Expect:
 *   100-continue) straight to the origin, and the same through the proxy's S3 front (SigV4
 *   verified, re-signed, streamed to the origin with its exact length); MiB/s from curl's total
 *   time, interleaved rounds (the side that goes first alternates). Target: proxy >= 0.8x direct.
 * - 11 vs 9: a 1 KiB PutObject and a 1 KiB GetObject through the S3 front (both verified and
 *   re-signed, same origin nginx: the PUT to a location that answers 200 without storing, the GET
 *   of a static file); the load.ts scenarios, measured here too when run alone.
 *   Target: PUT costs at most 15 % more (req/s ratio >= 1/1.15 = 0.87).
 *
 * The origin is the bench's nginx (scenarios.ts), which takes PUT with WebDAV and writes the file
 * under its root: a fast sink, so the ratio shows the proxy's own cost (the S3 test fixture, in
 * JavaScript, would bound both sides at ~170 MiB/s and hide it).
 *
 *   bun bench/uploads.ts      # BENCH_SECONDS (default 5) for the 1 KiB runs, BENCH_ROUNDS (default 3)
 */
import { cpuSeconds, makeFixture, requireTools, runWrk, type LoadResult } from "./lib.ts";
import { s3PutHeaders, startOrigin, startSetup, type Setup } from "./scenarios.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SIZE_MIB = 100;

export interface UploadThroughput {
  direct_mib_s: number;
  proxy_mib_s: number;
  /** proxy / direct */
  ratio: number;
  /** The proxy's CPU seconds per GiB uploaded through it. */
  proxy_cpu_s_per_gib: number;
  runs: Array<{ direct_s: number; proxy_s: number }>;
}

/** One curl PUT of `file`; curl's total time in seconds (connect to the answer). */
export async function curlPut(url: string, file: string, headers: Record<string, string> = {}): Promise<number> {
  const args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-T", file];
  for (const [k, v] of Object.entries(headers)) args.push("-H", `${k}: ${v}`);
  args.push(url);
  const p = Bun.spawn(args, { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const [status, seconds] = out.trim().split(" ");
  if (code !== 0 || !/^20[014]$/.test(status ?? "")) throw new Error(`bench: PUT ${url}: curl exit ${code}, status ${status}: ${err}`);
  return Number(seconds);
}

/** 12a/12b: the 100 MiB upload straight to the origin and through the S3 front, `rounds` times each. */
export async function measureUploadThroughput(s: Setup, file: string, rounds: number, log: (s: string) => void): Promise<UploadThroughput> {
  const s3Port = Number(new URL(s.targets.yata_s3_put!.url).port);
  const direct = () => curlPut(`http://127.0.0.1:${s.origin.ports.s3}/bucket/upload-direct.bin`, file);
  const via = () => curlPut(`http://127.0.0.1:${s3Port}/uploads/upload-proxy.bin`, file, s3PutHeaders(s3Port, "/uploads/upload-proxy.bin"));
  await direct(); // warm-up, both sides
  await via();
  const runs: Array<{ direct_s: number; proxy_s: number }> = [];
  let cpu = 0;
  for (let r = 0; r < rounds; r++) {
    const directFirst = r % 2 === 0;
    let d = directFirst ? await direct() : 0;
    const c0 = cpuSeconds(s.proxy.pids());
    const p = await via();
    cpu += cpuSeconds(s.proxy.pids()) - c0;
    if (!directFirst) d = await direct();
    runs.push({ direct_s: d, proxy_s: p });
    log(`  upload ${SIZE_MIB} MiB round ${r + 1}/${rounds}: direct ${(SIZE_MIB / d).toFixed(0)} MiB/s, through the S3 front ${(SIZE_MIB / p).toFixed(0)} MiB/s`);
  }
  const directMibS = (SIZE_MIB * rounds) / runs.reduce((n, x) => n + x.direct_s, 0);
  const proxyMibS = (SIZE_MIB * rounds) / runs.reduce((n, x) => n + x.proxy_s, 0);
  return {
    direct_mib_s: Math.round(directMibS),
    proxy_mib_s: Math.round(proxyMibS),
    ratio: Math.round((proxyMibS / directMibS) * 100) / 100,
    proxy_cpu_s_per_gib: Math.round((cpu / ((SIZE_MIB * rounds) / 1024)) * 100) / 100,
    runs,
  };
}

export interface UploadBenchResult {
  upload_100m: UploadThroughput;
  put_1k: { rps: number; cpu_us_per_req: number };
  get_1k: { rps: number; cpu_us_per_req: number };
  /** PUT req/s over GET req/s (>= 0.87 ⇔ PUT costs <= 1.15x). */
  put_vs_get: number;
}

async function main(): Promise<UploadBenchResult> {
  requireTools(["nginx", "wrk", "curl"]);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const fx = makeFixture();
  const origin = await startOrigin(fx);
  try {
    const s = await startSetup(fx, origin, 1);
    try {
      const upload_100m = await measureUploadThroughput(s, `${fx.root}/bucket/100m.bin`, ROUNDS, log);
      const one = async (id: "yata_s3_put" | "yata_s3_get") => {
        const t = s.targets[id]!;
        await runWrk(t.url, { connections: 64, seconds: 1, headers: t.headers, script: t.script });
        const c0 = cpuSeconds(s.proxy.pids());
        const res: LoadResult = await runWrk(t.url, { connections: 64, seconds: SECONDS, headers: t.headers, script: t.script });
        const cpu = cpuSeconds(s.proxy.pids()) - c0;
        if (res.errors > 0 || res.non2xx > 0) throw new Error(`${id}: ${res.errors} errors, ${res.non2xx} non-2xx`);
        log(`  ${t.label}: ${res.rps.toFixed(0)} req/s, ${((cpu / res.requests) * 1e6).toFixed(1)} µs/req`);
        return { rps: Math.round(res.rps), cpu_us_per_req: Math.round((cpu / res.requests) * 1e7) / 10 };
      };
      const puts: Array<{ rps: number; cpu_us_per_req: number }> = [];
      const gets: Array<{ rps: number; cpu_us_per_req: number }> = [];
      for (let r = 0; r < ROUNDS; r++) {
        if (r % 2 === 0) {
          puts.push(await one("yata_s3_put"));
          gets.push(await one("yata_s3_get"));
        } else {
          gets.push(await one("yata_s3_get"));
          puts.push(await one("yata_s3_put"));
        }
      }
      const mean = (xs: Array<{ rps: number; cpu_us_per_req: number }>) => ({
        rps: Math.round(xs.reduce((n, x) => n + x.rps, 0) / xs.length),
        cpu_us_per_req: Math.round((xs.reduce((n, x) => n + x.cpu_us_per_req, 0) / xs.length) * 10) / 10,
      });
      const put_1k = mean(puts);
      const get_1k = mean(gets);
      return { upload_100m, put_1k, get_1k, put_vs_get: Math.round((put_1k.rps / get_1k.rps) * 100) / 100 };
    } finally {
      await s.stop();
    }
  } finally {
    await origin.stop();
    fx.cleanup();
  }
}

if (import.meta.main) {
  const r = await main();
  console.log(JSON.stringify({ seconds: SECONDS, rounds: ROUNDS, ...r }, null, 2));
  console.log(`upload ${SIZE_MIB} MiB: ${r.upload_100m.proxy_mib_s} MiB/s through the S3 front vs ${r.upload_100m.direct_mib_s} MiB/s direct = ${r.upload_100m.ratio}x (target >= 0.8)`);
  console.log(`1 KiB: PutObject ${r.put_1k.rps} req/s (${r.put_1k.cpu_us_per_req} µs/req) vs GetObject ${r.get_1k.rps} req/s (${r.get_1k.cpu_us_per_req} µs/req) = ${r.put_vs_get}x (target >= 0.87, i.e. cost <= 1.15)`);
}

