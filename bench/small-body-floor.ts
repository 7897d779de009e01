/**
 * What reading a small request body costs Bun.serve itself, with no proxy logic: one bare Bun.serve
 * answers a 1 KiB GET with 1 KiB, and a 1 KiB PUT with an empty 200 after reading the body one way
 * or another (or not at all). wrk, 64 connections, interleaved rounds (order reversed every other
 * round); the server's CPU per request, median over the rounds.
 *
 * It is the floor under issue 12's "a 1 KiB PUT costs at most 15 % more than a 1 KiB GET": the
 * S3 front's PutObject must read the body (to verify it, and to keep it replayable for a retry),
 * and that read alone costs Bun.serve what the rest of a GET costs it.
 *
 *   bun bench/small-body-floor.ts              # ROUNDS (default 6), SECONDS per window (default 2)
 *   bun bench/small-body-floor.ts serve        # the server alone ({"port":N} on stdout)
 */
import { cpuSeconds, makeFixture, requireTools, runWrk, spawnServerMode } from "./lib.ts";
import { join } from "node:path";
import { writeFileSync } from "node:fs";

/** How the PUT body is taken: the path's last segment. */
const READS = ["none", "bytes", "arrayBuffer", "text", "reader"] as const;

function serve(): number {
  const body = new Uint8Array(1024).fill(97);
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      if (req.method !== "PUT") return new Response(body, { headers: { etag: '"x"' } });
      const how = req.url.slice(req.url.lastIndexOf("/") + 1);
      if (how === "bytes") await req.bytes();
      else if (how === "arrayBuffer") await req.arrayBuffer();
      else if (how === "text") await req.text();
      else if (how === "reader") {
        const r = req.body!.getReader();
        while (!(await r.read()).done);
      }
      return new Response(null, { status: 200, headers: { etag: '"x"' } });
    },
  }).port!;
}

if (process.argv[2] === "serve") {
  console.log(JSON.stringify({ port: serve() }));
} else {
  requireTools(["wrk"]);
  const rounds = Number(process.env.ROUNDS ?? 6);
  const seconds = Number(process.env.SECONDS ?? 2);
  const fx = makeFixture();
  const script = join(fx.dir, "put-1k.lua");
  writeFileSync(script, `wrk.method = "PUT"\nwrk.body = string.rep("a", 1024)\n`);
  const { proc, port } = await spawnServerMode(import.meta.path, ["serve"]);
  try {
    const ids = ["get", ...READS];
    const one = async (id: string) => {
      const c0 = cpuSeconds([proc.pid]);
      const w = await runWrk(`http://127.0.0.1:${port}/${id}`, { connections: 64, seconds, script: id === "get" ? undefined : script });
      if (w.errors || w.non2xx) throw new Error(`${id}: ${w.errors} errors, ${w.non2xx} non-2xx`);
      return ((cpuSeconds([proc.pid]) - c0) / w.requests) * 1e6;
    };
    for (const id of ids) await one(id); // warm-up
    const us: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++) for (const id of r % 2 ? [...ids].reverse() : ids) (us[id] ??= []).push(await one(id));
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const get = med(us.get!);
    console.log(`| bare Bun.serve, 1 KiB | CPU µs/req (median of ${rounds}) | over the GET |\n|---|---:|---:|`);
    for (const id of ids) console.log(`| ${id === "get" ? "GET, 1 KiB answered" : `PUT, body ${id === "none" ? "not read" : `read with ${id === "reader" ? "req.body.getReader()" : `req.${id}()`}`}`} | ${med(us[id]!).toFixed(1)} | ${(med(us[id]!) / get).toFixed(2)} |`);
  } finally {
    proc.kill();
    fx.cleanup();
  }
}
