#!/usr/bin/env bun
/**
 * Live A/B of the S3 front's two ratios (issue 11: GetObject over the plain front's signed GET;
 * issue 12: PutObject over GetObject) between source trees, on one origin, in one run: each tree
 * runs its own proxy (`bun <tree>/src/main.ts`), and every round measures each tree's three
 * scenarios back to back with wrk (64 connections), the order of trees and of scenarios reversed
 * every other round. Prints, per tree, the median of the per-round ratios (req/s, and from the
 * proxy's CPU per request) and the CPU µs per request of each scenario.
 *
 *   bun bench/live-ab.ts [tree ...]      (default: this tree; ROUNDS=6, SECONDS=3)
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { childPids, cpuSeconds, freePort, makeFixture, requireTools, runWrk, waitHttp } from "./lib.ts";
import { proxyYaml, s3GetHeaders, s3PutHeaders, startOrigin } from "./scenarios.ts";
import { SHIPPED_HEADER_LIMIT } from "../src/http/header-limit.ts";

requireTools(["nginx", "wrk"]);
const ROUNDS = Number(process.env.ROUNDS ?? 6);
const SECONDS = Number(process.env.SECONDS ?? 3);
const trees = process.argv.slice(2).length > 0 ? process.argv.slice(2).map((t) => resolve(t)) : [resolve(import.meta.dir, "..")];

const fx = makeFixture();
const origin = await startOrigin(fx);
const putScript = join(mkdtempSync(join(fx.dir, "lua-")), "put.lua");
writeFileSync(putScript, `wrk.method = "PUT"\nwrk.body = string.rep("a", 1024)\n`);

interface Running { tree: string; pid: number; port: number; s3Port: number; stop(): Promise<void> }
const procs: Running[] = [];
try {
  for (const tree of trees) {
    const port = await freePort();
    const s3Port = await freePort();
    const path = join(fx.dir, `proxy-${procs.length}.yaml`);
    writeFileSync(path, proxyYaml(1, origin.ports.s3, "warn", s3Port).replace("$PORT", String(port)));
    const proc = Bun.spawn([process.execPath, `--max-http-header-size=${SHIPPED_HEADER_LIMIT}`, join(tree, "src/main.ts"), "--config", path], { stdout: "ignore", stderr: "inherit" });
    await waitHttp(`http://127.0.0.1:${port}/health`, 15_000);
    procs.push({ tree, pid: proc.pid, port, s3Port, stop: async () => { proc.kill("SIGTERM"); await proc.exited; } });
  }
  interface Target { url: string; headers?: Record<string, string>; script?: string }
  const targets = (r: Running): Record<"signed" | "get" | "put", Target> => ({
    signed: { url: `http://127.0.0.1:${r.port}/signed/1k.bin` },
    get: { url: `http://127.0.0.1:${r.s3Port}/signed/1k.bin`, headers: s3GetHeaders(r.s3Port, "/signed/1k.bin") },
    put: { url: `http://127.0.0.1:${r.s3Port}/sink/put-1k.bin`, headers: s3PutHeaders(r.s3Port, "/sink/put-1k.bin"), script: putScript },
  });
  type Id = "signed" | "get" | "put";
  const rows = new Map<string, Array<Record<Id, { rps: number; us: number }>>>();
  const measure = async (r: Running, id: Id) => {
    const t = targets(r)[id];
    const pids = [r.pid, ...childPids(r.pid)];
    const c0 = cpuSeconds(pids);
    const w = await runWrk(t.url, { connections: 64, seconds: SECONDS, headers: t.headers, script: t.script });
    const cpu = cpuSeconds(pids) - c0;
    if (w.errors || w.non2xx) throw new Error(`${r.tree} ${id}: ${w.errors} errors, ${w.non2xx} non-2xx`);
    return { rps: w.rps, us: (cpu / w.requests) * 1e6 };
  };
  // warm-up
  for (const r of procs) for (const id of ["signed", "get", "put"] as Id[]) await runWrk(targets(r)[id].url, { connections: 64, seconds: 1, headers: targets(r)[id].headers, script: targets(r)[id].script });
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 ? [...procs].reverse() : procs;
    for (const r of order) {
      const ids: Id[] = round % 2 ? ["put", "get", "signed"] : ["signed", "get", "put"];
      const row = {} as Record<Id, { rps: number; us: number }>;
      for (const id of ids) row[id] = await measure(r, id);
      rows.set(r.tree, [...(rows.get(r.tree) ?? []), row]);
      console.log(`round ${round + 1} ${r.tree}: signed ${row.signed.rps.toFixed(0)} (${row.signed.us.toFixed(1)} µs)  get ${row.get.rps.toFixed(0)} (${row.get.us.toFixed(1)} µs)  put ${row.put.rps.toFixed(0)} (${row.put.us.toFixed(1)} µs)  get/signed ${(row.get.rps / row.signed.rps).toFixed(3)}  put/get ${(row.put.rps / row.get.rps).toFixed(3)}`);
    }
  }
  const med = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
  for (const r of procs) {
    const rs = rows.get(r.tree)!;
    console.log(`\n${r.tree}\n  get/signed ${med(rs.map((x) => x.get.rps / x.signed.rps)).toFixed(3)} (CPU ${med(rs.map((x) => x.signed.us / x.get.us)).toFixed(3)})  put/get ${med(rs.map((x) => x.put.rps / x.get.rps)).toFixed(3)} (CPU ${med(rs.map((x) => x.get.us / x.put.us)).toFixed(3)})\n  µs/req: signed ${med(rs.map((x) => x.signed.us)).toFixed(1)}  get ${med(rs.map((x) => x.get.us)).toFixed(1)}  put ${med(rs.map((x) => x.put.us)).toFixed(1)}`);
  }
} finally {
  for (const p of procs) await p.stop();
  await origin.stop();
}
