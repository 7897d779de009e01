#!/usr/bin/env bun
/**
 * The two fronts' phases, one by one, hot and with the data caches disturbed between requests (as
 * bench/cold-verify.ts does for verification): a ladder of fronts, each the real front's first k
 * phases followed by a fixed 1 KiB answer, both fronts in one process on bench/in-process.ts's
 * config (the S3 front's GetObject of /signed/1k.bin, the plain front's signed GET of the same
 * object, the upstream a fetch stub). A rung's figure is the handler's time (createHandler:
 * context, phases, delivery) to its answer's body, read; the difference between two rungs is the
 * phase between them. The fronts' phases pair up to k=7 (guard, CORS, address/route, admit,
 * s3Parse/authenticate, s3Permit/authorize, s3Authorize/serve); k=8 is the S3 front's s3Operate.
 * `walk` reads one word per 64-byte line of a WALK_MIB buffer before each request (not timed).
 *
 *   bun bench/cold-phases.ts                     (R=8 rounds, N=4000 requests per rung; a round's
 *                                                 median request, the median over rounds)
 *   bun bench/cold-phases.ts <before> <after>    (A/B of trees: every rung of each tree in every
 *                                                 round, interleaved; the later tree's median paired
 *                                                 difference per rung and in how many rounds it was lower)
 *   K=5,8 limits the rungs timed.
 *
 * A whole request moves by several µs from round to round, more than one phase's change: with
 * DIRECT=1 each phase function is timed alone instead, called again and again on one request's
 * context set up by the phases before it (the S3 front's s3Address, s3Parse, s3Permit and
 * s3Authorize, the plain front's route, authenticate and authorize; each repeatable on its context).
 */
import { resolve } from "node:path";
import { BENCH_S3_CLIENT, cacheWalker, interleavedRounds, median, printPairedDiffs, STUB_BODY, treeApp } from "./in-process.ts";

const trees = process.argv.length > 2 ? process.argv.slice(2).map((t) => resolve(t)) : [resolve(import.meta.dir, "..")];
const R = Number(process.env.R ?? 8);
const N = Number(process.env.N ?? 4000);
const WALK_MIB = Number(process.env.WALK_MIB ?? 4);
const KS = process.env.K?.split(",").map(Number);

type Handler = (r: Request, ip: string) => Response | Promise<Response>;
interface Rung { name: string; handle: Handler; s3: boolean; direct?: () => unknown }
const rungs: Rung[][] = [];
let getH: Record<string, string> = {};
const fixed = () => new Response(STUB_BODY, { headers: { "content-type": "application/octet-stream" } });
for (const t of trees) {
  const { app, s3Front, createHandler, S3Signer } = await treeApp(t);
  const { plainFront } = await import(`${t}/src/fronts/plain.ts`);
  getH = { ...new S3Signer(BENCH_S3_CLIENT, "us-east-1").sign({ method: "GET", host: "s3.test", path: "/signed/1k.bin" }), host: "s3.test" };
  const mine: Rung[] = [];
  if (process.env.DIRECT === "1") {
    const { createContext } = await import(`${t}/src/proxy/context.ts`);
    const none = () => "127.0.0.1";
    for (const [front, s3] of [[s3Front, true], [plainFront, false]] as const) {
      const req = s3 ? new Request("http://s3.test/signed/1k.bin", { headers: getH }) : new Request("http://proxy.test/signed/1k.bin");
      const ctx = createContext(app, front.name, req, req.url, "127.0.0.1", none);
      // guard, CORS, then each phase once: the context as the next one finds it
      for (const phase of front.phases.slice(0, -1)) if (phase(ctx) !== undefined) throw new Error(`${front.name}: ${phase.name} answered`);
      for (const [k, phase] of front.phases.slice(0, -1).entries()) {
        if (k < 2 || phase.name === "admit" || (KS !== undefined && !KS.includes(k + 1))) continue;
        mine.push({ name: `${s3 ? "s3   " : "plain"} k=${k + 1} ${phase.name}`, handle: fixed, s3, direct: () => phase(ctx) });
      }
    }
    rungs.push(mine);
    continue;
  }
  for (const [front, s3] of [[s3Front, true], [plainFront, false]] as const) {
    const n = front.phases.length;
    for (let k = 1; k <= n; k++) {
      if (KS !== undefined && !KS.includes(k)) continue;
      const phases = k === n ? front.phases : [...front.phases.slice(0, k), fixed];
      mine.push({ name: `${s3 ? "s3   " : "plain"} k=${k} ${front.phases[k - 1].name || "cors"}`, handle: createHandler(app, { ...front, phases }, () => "127.0.0.1"), s3 });
    }
  }
  rungs.push(mine);
}

const walk = cacheWalker(WALK_MIB);
const calls = new Float64Array(N);
async function round(r: Rung, mode: string): Promise<number> {
  const direct = r.direct;
  for (let i = 0; direct !== undefined && i < N; i++) {
    if (mode === "walk") walk();
    const t0 = Bun.nanoseconds();
    direct();
    calls[i] = Bun.nanoseconds() - t0;
  }
  for (let i = 0; direct === undefined && i < N; i++) {
    if (mode === "walk") walk();
    const req = r.s3 ? new Request("http://s3.test/signed/1k.bin", { headers: getH }) : new Request("http://proxy.test/signed/1k.bin");
    const t0 = Bun.nanoseconds();
    const res = await r.handle(req, "127.0.0.1");
    if (res.status !== 200) throw new Error(`${r.name}: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
    calls[i] = Bun.nanoseconds() - t0;
  }
  return median(calls) / 1000;
}
const times = await interleavedRounds(R, rungs, round);
console.log(`µs per request (a round's median), median of ${R} rounds of ${N} (walk: ${WALK_MIB} MiB read between requests)`);
for (const [ti, t] of trees.entries()) {
  console.log(t.split("/").pop());
  let prev: Record<string, number> = {};
  for (const rung of rungs[ti]!) {
    const hot = median(times.get(`${ti}\t${rung.name}\thot`)!), cold = median(times.get(`${ti}\t${rung.name}\twalk`)!);
    const side = rung.s3 ? "s3" : "plain";
    const step = prev[side] === undefined || rung.direct !== undefined ? "" : `   step hot ${(hot - prev[side]!).toFixed(2).padStart(6)} walk ${(cold - prev[`${side}w`]!).toFixed(2).padStart(6)}`;
    prev[side] = hot;
    prev[`${side}w`] = cold;
    console.log(`  ${rung.name.padEnd(26)} hot ${hot.toFixed(2).padStart(6)}   walk ${cold.toFixed(2).padStart(6)}${step}`);
  }
}
printPairedDiffs(trees, rungs, times);
