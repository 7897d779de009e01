/**
 * Where a proxied 1 KiB GET's CPU goes above the runtime's floor, one piece at a time: Bun.serve +
 * the project's own upstream client (src/s3/http1) with nothing else, then the same with one piece
 * of per-request work added, each in its own process, against one nginx origin, measured in
 * interleaved wrk rounds (64 connections, CPU µs per request from /proc). Issue 14 asks for profiles
 * rather than guesses; these steps are the profile a sampling profiler cannot give on this host
 * (under load it spreads the cost of allocation and kernel work thinly over everything).
 *
 *   base      Bun.serve → Http1Pool.request with a fixed pre-signed head, the upstream's Response returned as is
 *   signal    + req.signal handed to the pool (client disconnects cancel the upstream)
 *   headers   + req.headers read (materialises the request's Headers)
 *   sign      + SigV4 signing of every request (src/s3/sigv4.ts)
 *   copy      + the answer rebuilt: allowed headers copied into new Headers, body read, a new Response, x-request-id set
 *   inplace   + the answer's headers filtered in place and x-request-id set (what the object phase does now)
 *   all       signal + headers + sign + inplace
 *   put       a 1 KiB PUT: req.bytes(), then Http1Pool.request PUT with the body (compare with base)
 *   s3h       base, but the client sends an SDK's GetObject headers (Authorization, x-amz-date, x-amz-content-sha256)
 *
 *   bun bench/floor-steps.ts               (BENCH_ROUNDS=6, BENCH_SECONDS=3, STEPS=base,signal,...)
 *   bun bench/floor-steps.ts <step> <originPort>   (server mode: prints {"port":N})
 */
import { writeFileSync } from "node:fs";
import { cpuSeconds, makeFixture, requireTools, runWrk, spawnServerMode } from "./lib.ts";
import { s3GetHeaders, startOrigin } from "./scenarios.ts";
import { Http1Pool } from "../src/s3/http1/pool.ts";
import { S3Signer } from "../src/s3/sigv4.ts";

const STEPS = ["base", "signal", "headers", "sign", "copy", "inplace", "all", "put", "s3h"] as const;
const PARTS: Record<string, string[]> = { all: ["signal", "headers", "sign", "inplace"] };

function serve(step: string, originPort: number): number {
  const pool = new Http1Pool({ host: "127.0.0.1", port: originPort, hostHeader: `127.0.0.1:${originPort}` });
  const signer = new S3Signer({ accessKeyId: "AKIDBENCH", secretAccessKey: "bench-secret-key" }, "us-east-1");
  const fixed: Record<string, string> = {
    "x-amz-date": "20261122T000000Z",
    "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
    authorization: "AWS4-HMAC-SHA256 Credential=AKIDBENCH/20261122/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
  };
  const parts = PARTS[step] ?? [step];
  const has = (p: string) => parts.includes(p);
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const u = req.url;
      if (has("put")) return pool.request("PUT", "/sink/x", fixed, { timeoutMs: 10_000, body: await req.bytes() });
      const path = "/bucket" + u.slice(u.indexOf("/", u.indexOf("/", 8) + 1));
      const signal = has("signal") ? req.signal : undefined;
      if (has("headers")) req.headers.get("range");
      const headers = has("sign") ? signer.sign({ method: "GET", host: `127.0.0.1:${originPort}`, path }) : fixed;
      const r = await pool.request("GET", path, headers, { timeoutMs: 10_000, signal });
      if (has("inplace")) {
        const h = r.headers;
        const drop: string[] = [];
        h.forEach((_v, k) => {
          if (k === "server" || k === "date" || k === "connection") drop.push(k);
        });
        for (const k of drop) h.delete(k);
        h.set("x-request-id", crypto.randomUUID());
        return r;
      }
      if (!has("copy")) return r;
      const out = new Headers();
      r.headers.forEach((v, k) => {
        if (k !== "server" && k !== "date" && k !== "connection") out.set(k, v);
      });
      const res = new Response(await r.arrayBuffer(), { status: r.status, headers: out });
      res.headers.set("x-request-id", crypto.randomUUID());
      return res;
    },
  }).port!;
}

async function standalone(): Promise<number> {
  requireTools();
  const steps = (process.env.STEPS ?? STEPS.join(",")).split(",");
  const rounds = Number(process.env.BENCH_ROUNDS ?? 6);
  const seconds = Number(process.env.BENCH_SECONDS ?? 3);
  const fx = makeFixture();
  const origin = await startOrigin(fx);
  const putScript = `${fx.dir}/put.lua`;
  writeFileSync(putScript, `wrk.method = "PUT"\nwrk.body = string.rep("a", 1024)\n`);
  const procs: { step: string; proc: ReturnType<typeof Bun.spawn>; url: string; script?: string; headers?: Record<string, string> }[] = [];
  try {
    for (const step of steps) {
      const { proc, port } = await spawnServerMode(import.meta.path, [step, String(origin.ports.s3)]);
      procs.push({ step, proc, url: `http://127.0.0.1:${port}/x/1k.bin`, script: step === "put" ? putScript : undefined, headers: step === "s3h" ? s3GetHeaders(port, "/x/1k.bin") : undefined });
    }
    const cpu: Record<string, number[]> = {};
    const rps: Record<string, number[]> = {};
    for (const p of procs) await runWrk(p.url, { connections: 64, seconds: 1, script: p.script, headers: p.headers });
    for (let r = 0; r < rounds; r++) {
      for (const p of r % 2 ? [...procs].reverse() : procs) {
        const c0 = cpuSeconds([p.proc.pid]);
        const w = await runWrk(p.url, { connections: 64, seconds, script: p.script, headers: p.headers });
        const used = cpuSeconds([p.proc.pid]) - c0;
        if (w.errors || w.non2xx) throw new Error(`${p.step}: ${w.errors} errors, ${w.non2xx} non-2xx`);
        (cpu[p.step] ??= []).push((used * 1e6) / w.requests);
        (rps[p.step] ??= []).push(w.rps);
      }
    }
    const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
    const base = med(cpu.base ?? [NaN]);
    console.log(`\n${rounds} interleaved rounds of ${seconds} s, 64 connections, 1 KiB (medians):\n`);
    console.log("| step | req/s | CPU µs/req | vs base |\n|---|---:|---:|---:|");
    for (const p of procs) console.log(`| ${p.step} | ${med(rps[p.step]!).toFixed(0)} | ${med(cpu[p.step]!).toFixed(1)} | ${(med(cpu[p.step]!) - base >= 0 ? "+" : "")}${(med(cpu[p.step]!) - base).toFixed(1)} |`);
  } finally {
    for (const p of procs) p.proc.kill();
    await Promise.all(procs.map((p) => p.proc.exited));
    await origin.stop();
    fx.cleanup();
  }
  return 0;
}

if (import.meta.main) {
  const [step, port] = process.argv.slice(2);
  if (step === undefined) process.exit(await standalone());
  if (!(STEPS as readonly string[]).includes(step)) {
    console.error(`unknown step ${step}; one of ${STEPS.join(", ")}`);
    process.exit(2);
  }
  process.on("SIGTERM", () => process.exit(0));
  console.log(JSON.stringify({ port: serve(step, Number(port)) }));
}
