/**
 * The runtime's ceiling, measured in the same run as nginx: what Bun itself reaches with no proxy
 * logic at all. It answers "how close to the targets could any Bun proxy get on this machine?".
 *
 *   serve-fixed   Bun.serve answering a fixed 1 KiB body synchronously (the floor of a cache hit)
 *   serve-fetch   Bun.serve + fetch() to the origin, body buffered (the floor of a fetch-based proxy)
 *   serve-raw     Bun.serve + the raw keep-alive Bun.connect pool below, the answer as bytes with a
 *                 plain-object header set (the floor of any proxy built on Bun.serve, as ours is)
 *   serve-pool    Bun.serve + Yatagarasu's own upstream client (src/s3/http1), the upstream's Response
 *                 returned as it is: no routing, signing, checks, metrics (what the pipeline adds is
 *                 the distance between this and a Yatagarasu GET)
 *   raw-proxy     Bun.listen + a keep-alive Bun.connect pool, minimal HTTP/1.1, no checks at all
 *                 (the floor of any proxy written in JavaScript on Bun's sockets)
 *
 * Standalone:  bun bench/ceiling.ts            (starts nginx origin + peer, prints a table)
 * Server mode: bun bench/ceiling.ts <mode> <originPort>   (prints {"port":N} on stdout)
 */
import { cpuSeconds, type Fixture, makeFixture, type Nginx, requireTools, runWrk, spawnServerMode } from "./lib.ts";
import { startOrigin, startPeer } from "./scenarios.ts";
import { Http1Pool } from "../src/s3/http1/pool.ts";

export const CEILING_MODES = ["serve-fixed", "serve-fetch", "serve-raw", "serve-pool", "raw-proxy"] as const;
export type CeilingMode = (typeof CEILING_MODES)[number];

const CRLF2 = Buffer.from("\r\n\r\n");
const SIGNED = "x-amz-date: 20261122T000000Z\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nauthorization: AWS4-HMAC-SHA256 Credential=AKIDBENCH/20261122/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000\r\n";

/** "/x/1k.bin" → "/bucket/1k.bin" */
function originPath(path: string): string {
  return `/bucket${path.slice(path.indexOf("/", 1))}`;
}

function serveFixed(): number {
  const body = Buffer.alloc(1024, 97);
  const headers = new Headers({ "content-type": "application/octet-stream", etag: '"ceiling"' });
  return Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(body, { headers }) }).port!;
}

function serveFetch(originPort: number): number {
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const u = req.url;
      const r = await fetch(`http://127.0.0.1:${originPort}${originPath(u.slice(u.indexOf("/", 8)))}`, { decompress: false } as RequestInit);
      return new Response(await r.arrayBuffer(), { status: r.status, headers: { "content-type": "application/octet-stream" } });
    },
  }).port!;
}

interface Up {
  buf: Buffer | null;
  remaining: number;
  onBody: ((head: string, chunk: Buffer, done: boolean) => void) | null;
}

/** A keep-alive Bun.connect pool to the origin. No validation, no timeouts, no errors handled. */
function originPool(originPort: number): (path: string, onBody: Up["onBody"]) => Promise<void> {
  const idle: Bun.Socket<Up>[] = [];
  const connect = () =>
    Bun.connect<Up>({
      hostname: "127.0.0.1",
      port: originPort,
      data: { buf: null, remaining: -1, onBody: null },
      socket: {
        data(s, d) {
          const st = s.data;
          let head = "";
          let chunk: Buffer = d;
          if (st.remaining < 0) {
            const b = st.buf ? Buffer.concat([st.buf, d]) : d;
            const e = b.indexOf(CRLF2);
            if (e < 0) {
              st.buf = b;
              return;
            }
            head = b.toString("latin1", 0, e);
            st.buf = null;
            st.remaining = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
            chunk = b.subarray(e + 4);
          }
          st.remaining -= chunk.length;
          const done = st.remaining === 0;
          if (done) {
            st.remaining = -1;
            idle.push(s);
          }
          st.onBody!(head, chunk, done);
        },
        close(s) {
          const i = idle.indexOf(s);
          if (i >= 0) idle.splice(i, 1);
        },
      },
    });
  return async (path, onBody) => {
    const up = idle.pop() ?? (await connect());
    up.data.onBody = onBody;
    up.write(`GET ${originPath(path)} HTTP/1.1\r\nhost: 127.0.0.1:${originPort}\r\n${SIGNED}\r\n`);
  };
}

/** Bun.serve in front of the raw pool: one 1 KiB answer gathered, sent as bytes. A floor, not a proxy. */
function serveRaw(originPort: number): number {
  const get = originPool(originPort);
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const u = req.url;
      return new Promise<Response>((resolve) => {
        const parts: Buffer[] = [];
        let status = 200;
        void get(u.slice(u.indexOf("/", 8)), (head, chunk, done) => {
          if (head) status = Number(head.slice(9, 12));
          parts.push(chunk);
          if (done) resolve(new Response(parts.length === 1 ? parts[0] : Buffer.concat(parts), { status, headers: { "content-type": "application/octet-stream" } }));
        });
      });
    },
  }).port!;
}

/** Bun.serve + the project's own HTTP/1.1 client, with a fixed pre-signed head. A floor, not a proxy. */
function servePool(originPort: number): number {
  const pool = new Http1Pool({ host: "127.0.0.1", port: originPort, hostHeader: `127.0.0.1:${originPort}` });
  const headers: Record<string, string> = {};
  for (const line of SIGNED.split("\r\n")) if (line) headers[line.slice(0, line.indexOf(":"))] = line.slice(line.indexOf(":") + 2);
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const u = req.url;
      return pool.request("GET", originPath(u.slice(u.indexOf("/", 8))), headers, { timeoutMs: 10_000 });
    },
  }).port!;
}

/** Bun.listen in front of the raw pool, minimal HTTP/1.1. A floor, not a proxy. */
function rawProxy(originPort: number): number {
  const get = originPool(originPort);
  interface Client {
    buf: Buffer | null;
    busy: boolean;
  }
  const next = async (c: Bun.Socket<Client>) => {
    if (c.data.busy || !c.data.buf) return;
    const b = c.data.buf;
    const e = b.indexOf(CRLF2);
    if (e < 0) return;
    const line = b.toString("latin1", 0, b.indexOf(13));
    c.data.buf = b.length > e + 4 ? b.subarray(e + 4) : null;
    c.data.busy = true;
    const path = line.slice(line.indexOf(" ") + 1, line.lastIndexOf(" "));
    await get(path, (head, chunk, done) => {
      const out = head
        ? Buffer.concat([Buffer.from(`HTTP/1.1 ${head.slice(9, 12)} OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0}\r\n\r\n`, "latin1"), chunk])
        : chunk;
      c.write(out);
      if (done) {
        c.data.busy = false;
        void next(c);
      }
    });
  };
  return Bun.listen<Client>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { buf: null, busy: false };
      },
      data(s, d) {
        s.data.buf = s.data.buf ? Buffer.concat([s.data.buf, d]) : Buffer.from(d);
        void next(s);
      },
    },
  }).port;
}

export interface CeilingRow {
  id: string;
  label: string;
  rps: number;
  cpuUsPerReq: number;
  errors: number;
}

/** Measures nginx proxy_pass / proxy_cache and the three Bun floors, side by side, `rounds` times. */
export async function measureCeiling(origin: Nginx, peer: Nginx, o: { seconds: number; warmup: number; connections: number; log?: (s: string) => void }): Promise<CeilingRow[]> {
  const procs: { mode: CeilingMode; proc: ReturnType<typeof Bun.spawn>; port: number }[] = [];
  try {
    for (const mode of CEILING_MODES) {
      const { proc, port } = await spawnServerMode(import.meta.path, [mode, String(origin.ports.s3)]);
      procs.push({ mode, proc, port });
    }
    const targets: { id: string; label: string; url: string; pids: () => number[] }[] = [
      { id: "nginx_proxy_pass", label: "nginx proxy_pass (keepalive)", url: `http://127.0.0.1:${peer.ports.pass}/bucket/1k.bin`, pids: peer.pids },
      ...procs.map((p) => ({ id: p.mode, label: `Bun floor: ${p.mode}`, url: `http://127.0.0.1:${p.port}/x/1k.bin`, pids: () => [p.proc.pid] })),
      { id: "nginx_proxy_cache", label: "nginx proxy_cache", url: `http://127.0.0.1:${peer.ports.cache}/bucket/1k.bin`, pids: peer.pids },
    ];
    const rows: CeilingRow[] = [];
    for (const t of targets) {
      await runWrk(t.url, { connections: o.connections, seconds: o.warmup });
      const c0 = cpuSeconds(t.pids());
      const r = await runWrk(t.url, { connections: o.connections, seconds: o.seconds });
      const cpu = cpuSeconds(t.pids()) - c0;
      const row = { id: t.id, label: t.label, rps: r.rps, cpuUsPerReq: r.requests > 0 ? (cpu * 1e6) / r.requests : NaN, errors: r.errors + r.non2xx };
      o.log?.(`  ${t.label}: ${row.rps.toFixed(0)} req/s, ${row.cpuUsPerReq.toFixed(1)} µs CPU/req`);
      rows.push(row);
    }
    return rows;
  } finally {
    for (const p of procs) p.proc.kill();
    await Promise.all(procs.map((p) => p.proc.exited));
  }
}

export function ceilingMarkdown(rows: CeilingRow[]): string {
  const get = (id: string) => rows.find((r) => r.id === id);
  const pass = get("nginx_proxy_pass")?.rps ?? NaN;
  const cache = get("nginx_proxy_cache")?.rps ?? NaN;
  const lines = ["| server (1 process) | wrk req/s | CPU µs/req | errors | vs nginx proxy_pass | vs nginx proxy_cache |", "|---|---:|---:|---:|---:|---:|"];
  for (const r of rows) lines.push(`| ${r.label} | ${r.rps.toFixed(0)} | ${r.cpuUsPerReq.toFixed(1)} | ${r.errors} | ${(r.rps / pass).toFixed(2)} | ${(r.rps / cache).toFixed(2)} |`);
  return lines.join("\n");
}

async function standalone(): Promise<number> {
  requireTools();
  const fx: Fixture = makeFixture();
  const origin = await startOrigin(fx);
  const peer = await startPeer(fx, 1, origin.ports.s3);
  try {
    const seconds = Number(process.env.BENCH_SECONDS ?? 6);
    const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
    for (let i = 1; i <= rounds; i++) {
      console.error(`== round ${i}`);
      const rows = await measureCeiling(origin, peer, { seconds, warmup: 2, connections: 64, log: (s) => console.error(s) });
      console.log(`\nRound ${i} (${seconds} s each, 64 connections, wrk -t1):\n\n${ceilingMarkdown(rows)}\n`);
    }
  } finally {
    await peer.stop();
    await origin.stop();
    fx.cleanup();
  }
  return 0;
}

if (import.meta.main) {
  const [mode, port] = process.argv.slice(2);
  if (mode === undefined) process.exit(await standalone());
  const originPort = Number(port);
  const bound = mode === "serve-fixed" ? serveFixed() : mode === "serve-fetch" ? serveFetch(originPort) : mode === "serve-raw" ? serveRaw(originPort) : mode === "serve-pool" ? servePool(originPort) : mode === "raw-proxy" ? rawProxy(originPort) : NaN;
  if (!Number.isFinite(bound)) {
    console.error(`unknown mode ${mode}; one of ${CEILING_MODES.join(", ")}`);
    process.exit(2);
  }
  // An orderly exit on SIGTERM, so `bun --cpu-prof` writes its profile.
  process.on("SIGTERM", () => process.exit(0));
  console.log(JSON.stringify({ port: bound }));
}
