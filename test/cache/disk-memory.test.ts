/**
 * Memory stays flat: a 200 MiB object is written to disk while a slow client downloads it, and is
 * then served from disk; the proxy's resident memory must not grow with the object.
 *
 * The upstream is a plain HTTP server generating the bytes (an anonymous bucket), so the test
 * measures the proxy, not an S3 implementation. RSS is sampled from /proc while the body flows.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import http from "node:http";
import { join } from "node:path";
import { startProxy, type ProxyProcess } from "../e2e/harness.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const MiB = 1024 * 1024;
const SIZE = 200 * MiB;
/** Growth allowed while 200 MiB go through: buffers, JIT, the runtime's own slack. */
const FLAT = 64 * MiB;

const CHUNK = Buffer.from(new Uint8Array(256 * 1024).map((_, i) => (i * 7) & 255));
let upstreamGets = 0;
// node:http, not Bun.serve: Bun.serve drops Content-Length on a streamed body (see README).
const upstream = http.createServer((req, res) => {
  if (req.method === "HEAD") return void res.writeHead(200).end();
  if (req.url !== "/gen/big.bin") return void res.writeHead(404, { "content-length": "0" }).end();
  upstreamGets++;
  res.writeHead(200, { "content-length": String(SIZE), etag: '"gen"', "content-type": "application/octet-stream" });
  let sent = 0;
  const pump = () => {
    while (sent < SIZE) {
      sent += CHUNK.byteLength;
      if (!res.write(CHUNK)) return void res.once("drain", pump);
    }
    res.end();
  };
  pump();
});
const upstreamPort = await new Promise<number>((resolve) => upstream.listen(0, "127.0.0.1", () => resolve((upstream.address() as { port: number }).port)));

let dir: string;
let px: ProxyProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "yata-disk-rss-"));
  px = await startProxy(`server: { address: 127.0.0.1, port: 0 }
cache:
  enabled: true
  cache_layers: [memory, disk]
  memory: { max_item_size_mb: 1, max_cache_size_mb: 16 }
  disk: { path: "${dir}", max_disk_size_mb: 512, max_item_size_mb: 256 }
buckets:
  - name: g
    path_prefix: /g
    s3: { bucket: gen, endpoint: "http://127.0.0.1:${upstreamPort}" }
    cache: { enabled: true }
`);
});
afterAll(async () => {
  await px?.stop();
  upstream.closeAllConnections();
  upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

function rss(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${px.proc.pid}/status`, "utf8"));
  return Number(m![1]) * 1024;
}

/** Downloads `path`, pausing after every `pauseEvery` bytes (a slow client); returns bytes and the peak RSS seen. */
async function download(path: string, pauseEvery = 0): Promise<{ bytes: number; peak: number; headers: Headers }> {
  let peak = rss();
  const sampler = setInterval(() => (peak = Math.max(peak, rss())), 10);
  try {
    const r = await fetch(px.url(path));
    let bytes = 0;
    let sincePause = 0;
    for await (const chunk of r.body!) {
      bytes += chunk.byteLength;
      sincePause += chunk.byteLength;
      if (pauseEvery > 0 && sincePause >= pauseEvery) {
        sincePause = 0;
        await Bun.sleep(4); // the client's pace, not a wait for a condition
      }
    }
    peak = Math.max(peak, rss());
    return { bytes, peak, headers: r.headers };
  } finally {
    clearInterval(sampler);
  }
}

test("a 200 MiB streaming fill to a slow client, then a 200 MiB disk hit: resident memory stays flat", async () => {
  // Warm up the paths once (JIT, pools) on a tiny request, then take the baseline.
  await (await fetch(px.url("/g/warmup-404"))).arrayBuffer();
  const base = rss();

  const fill = await download("/g/big.bin", MiB);
  expect(fill.bytes).toBe(SIZE);
  expect(fill.headers.get("x-cache")).toBe("MISS");
  await waitFor(hasObject, { timeoutMs: 10_000, message: "the object on disk" });

  const hit = await download("/g/big.bin");
  expect(hit.bytes).toBe(SIZE);
  expect(hit.headers.get("x-cache-layer")).toBe("disk");
  expect(hit.headers.get("content-length")).toBe(String(SIZE));
  expect(upstreamGets).toBe(1);

  const report = { base_mib: base / MiB, fill_peak_mib: fill.peak / MiB, hit_peak_mib: hit.peak / MiB };
  console.log("proxy RSS during 200 MiB transfers:", JSON.stringify(report));
  expect(fill.peak - base).toBeLessThan(FLAT);
  expect(hit.peak - base).toBeLessThan(FLAT);
}, 60_000);

function hasObject(): boolean {
  try {
    const base = join(dir, "objects");
    return readdirSync(base).some((sub) => readdirSync(join(base, sub)).length > 0);
  } catch {
    return false;
  }
}
