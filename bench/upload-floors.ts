/**
 * Where a 100 MiB upload's throughput goes: the same curl PUT (UNSIGNED-PAYLOAD for the S3 front,
 * Content-Length, Expect: 100-continue) to the bench's nginx origin (WebDAV PUT), interleaved
 * rounds, the side that goes first alternating:
 *
 *   direct      straight to the origin (the reference: 1.00)
 *   ngx_pass    nginx proxy_pass with proxy_request_buffering off (a C proxy that streams uploads)
 *   bun_js      Bun.serve reading req.body chunk by chunk in JavaScript into a raw Bun.connect
 *               socket (the floor of any proxy that sees the bytes in JavaScript)
 *   bun_fetch   Bun.serve handing req.body to fetch() untouched (Bun pipes it natively)
 *   yata        Yatagarasu's S3 front (SigV4 verified, re-signed, streamed to the origin)
 *
 * Prints MiB/s, the ratio to direct, and each proxy's CPU seconds per GiB.
 *
 *   bun bench/upload-floors.ts                 # ROUNDS (default 5)
 *   bun bench/upload-floors.ts serve <bun_js|bun_fetch> <originPort>   # one floor server ({"port":N})
 */
import { cpuSeconds, makeFixture, requireTools, spawnServerMode, startNginx } from "./lib.ts";
import { s3PutHeaders, startOrigin, startSetup } from "./scenarios.ts";
import { curlPut } from "./uploads.ts";

const MAX_BODY = 6 * 1024 ** 3;

/** Bun.serve + req.body read in JavaScript, written to a fresh Bun.connect socket with backpressure. */
function serveJs(originPort: number): number {
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    maxRequestBodySize: MAX_BODY,
    fetch(req) {
      const path = new URL(req.url).pathname;
      const len = req.headers.get("content-length");
      return new Promise<Response>((resolve) => {
        let pending: Uint8Array | null = null;
        let wake: (() => void) | null = null;
        void Bun.connect({
          hostname: "127.0.0.1",
          port: originPort,
          socket: {
            async open(sock) {
              sock.setNoDelay(true);
              sock.write(`PUT /bucket${path} HTTP/1.1\r\nhost: origin\r\ncontent-length: ${len}\r\nconnection: close\r\n\r\n`);
              const reader = req.body!.getReader();
              for (;;) {
                const r = await reader.read();
                if (r.done) break;
                const n = sock.write(r.value);
                if (n < r.value.byteLength) {
                  pending = r.value.subarray(n);
                  await new Promise<void>((res) => (wake = res));
                }
              }
            },
            data() {
              resolve(new Response(null, { status: 200 }));
            },
            drain(sock) {
              if (pending === null) return;
              const n = sock.write(pending);
              pending = n < pending.byteLength ? pending.subarray(n) : null;
              if (pending === null && wake !== null) {
                const w = wake;
                wake = null;
                w();
              }
            },
            close() {},
          },
        });
      });
    },
  }).port!;
}

/** Bun.serve + fetch() with req.body untouched and its Content-Length. */
function serveFetch(originPort: number): number {
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    maxRequestBodySize: MAX_BODY,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      const headers = { "content-length": req.headers.get("content-length")! };
      const r = await fetch(`http://127.0.0.1:${originPort}/bucket${path}`, { method: "PUT", body: req.body, headers, duplex: "half", decompress: false } as RequestInit);
      await r.arrayBuffer();
      return new Response(null, { status: r.status });
    },
  }).port!;
}

async function spawnFloor(mode: string, originPort: number): Promise<{ port: number; pid: number; stop(): void }> {
  const { proc, port } = await spawnServerMode(import.meta.path, ["serve", mode, String(originPort)]);
  return { port, pid: proc.pid, stop: () => proc.kill() };
}

async function main(): Promise<void> {
  requireTools(["nginx", "curl"]);
  const rounds = Number(process.env.ROUNDS ?? 5);
  const fx = makeFixture();
  const origin = await startOrigin(fx);
  const op = origin.ports.s3!;
  const s = await startSetup(fx, origin, 1);
  const pass = await startNginx("uppass", fx, 1, {
    pass: () => `    location = /health { return 200 'ok'; }\n    location / { proxy_pass http://127.0.0.1:${op}; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_request_buffering off; client_max_body_size 6g; }`,
  });
  const js = await spawnFloor("bun_js", op);
  const nat = await spawnFloor("bun_fetch", op);
  try {
    const file = `${fx.root}/bucket/100m.bin`;
    const s3Port = Number(new URL(s.targets.yata_s3_put!.url).port);
    const sides: Record<string, { run: () => Promise<number>; pids: () => number[] }> = {
      direct: { run: () => curlPut(`http://127.0.0.1:${op}/bucket/up-direct.bin`, file), pids: () => [] },
      ngx_pass: { run: () => curlPut(`http://127.0.0.1:${pass.ports.pass}/bucket/up-pass.bin`, file), pids: () => pass.pids() },
      bun_js: { run: () => curlPut(`http://127.0.0.1:${js.port}/up-js.bin`, file), pids: () => [js.pid] },
      bun_fetch: { run: () => curlPut(`http://127.0.0.1:${nat.port}/up-fetch.bin`, file), pids: () => [nat.pid] },
      yata: { run: () => curlPut(`http://127.0.0.1:${s3Port}/uploads/upload-proxy.bin`, file, s3PutHeaders(s3Port, "/uploads/upload-proxy.bin")), pids: () => s.proxy.pids() },
    };
    const keys = Object.keys(sides);
    const res: Record<string, { t: number[]; cpu: number[] }> = {};
    for (const k of keys) {
      await sides[k]!.run(); // warm-up
      res[k] = { t: [], cpu: [] };
    }
    for (let r = 0; r < rounds; r++) {
      for (const k of r % 2 === 0 ? keys : [...keys].reverse()) {
        const c0 = cpuSeconds(sides[k]!.pids());
        res[k]!.t.push(await sides[k]!.run());
        res[k]!.cpu.push(cpuSeconds(sides[k]!.pids()) - c0);
      }
    }
    const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
    const d = med(res.direct!.t);
    console.log(`100 MiB upload, ${rounds} interleaved rounds, medians`);
    for (const k of keys) {
      const t = med(res[k]!.t);
      const cpu = k === "direct" ? "-" : (med(res[k]!.cpu) * 10.24).toFixed(2);
      console.log(`${k.padEnd(10)} ${(100 / t).toFixed(0).padStart(5)} MiB/s  ${(d / t).toFixed(2)}x direct  CPU ${cpu} s/GiB  rounds ${res[k]!.t.map((x) => (100 / x).toFixed(0)).join(",")}`);
    }
  } finally {
    js.stop();
    nat.stop();
    await pass.stop();
    await s.stop();
    await origin.stop();
    fx.cleanup();
  }
}

if (import.meta.main) {
  if (process.argv[2] === "serve") {
    const originPort = Number(process.argv[4]);
    const port = process.argv[3] === "bun_js" ? serveJs(originPort) : serveFetch(originPort);
    console.log(JSON.stringify({ port }));
  } else {
    await main();
  }
}
