/**
 * Misses that follow a streaming disk fill, end to end: the real proxy process in front of the S3
 * fixture (through a TCP relay that can cut answers). A herd of GETs of an uncached object too big
 * for memory makes one upstream GET, and every client gets the exact bytes; a fill cut mid-body
 * cuts every follower's body; clients that go away leave no file descriptor open in the proxy.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "../e2e/harness.ts";
import { waitFor } from "../helpers/wait.ts";
import { tcpRelay } from "./relay.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(60_000);

const CREDS = { accessKeyId: "AKIAFOLLOWE2E", secretAccessKey: "follow-e2e-secret" };
const SIZE = 20 * 1024 * 1024;
const N = 8;
const BODY = randomBytes(SIZE);
const SHA = sha(BODY);

function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(out.subarray(off, Math.min(off + 65536, n)));
  return out;
}

function sha(b: ArrayBuffer | Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(b).digest("hex");
}

let s3: S3Fixture;
let relay: Awaited<ReturnType<typeof tcpRelay>>;
let dir: string;
let px: ProxyProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "yata-follow-e2e-"));
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...CREDS, buckets: ["data"] }] });
  for (const key of ["herd.bin", "cut.bin", "fds.bin"]) await s3.put("data", key, BODY, { contentType: "text/plain" });
  relay = await tcpRelay(s3.port);
  px = await startProxy(`server: { address: 127.0.0.1, port: 0 }
metrics: { enabled: true, address: 127.0.0.1, port: 0 }
cache:
  enabled: true
  cache_layers: [memory, disk]
  memory: { max_item_size_mb: 1, max_cache_size_mb: 16, default_ttl_seconds: 600 }
  disk: { path: "${join(dir, "cache")}", max_disk_size_mb: 256, max_item_size_mb: 64 }
buckets:
${bucketYaml({ name: "d", prefix: "/d", bucket: "data", endpoint: `http://127.0.0.1:${relay.port}`, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: "    cache: { enabled: true }\n" })}`);
});

afterAll(async () => {
  await px?.stop();
  relay?.close();
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** GETs the proxy sent to S3 for `key`. */
const upstreamGets = (key: string) => s3.requests.filter((r) => !r.admin && r.pathname === `/data/${key}` && r.method === "GET").length;

async function coalesced(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
  const m = /^yatagarasu_cache_coalesced_total (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/**
 * N GETs of `key` at once. The S3 fixture holds the first upstream answer's head for a while
 * (delay fault), and the test waits until the metrics show the N - 1 others coalesced on the first
 * one: a request that came after the fill was over would not be counted, so this cannot pass by luck.
 */
async function herd(key: string): Promise<Promise<Response>[]> {
  const before = await coalesced();
  s3.faults.set(`/data/${key}`, { kind: "delay", ms: 2000, times: 1 });
  const responses = Array.from({ length: N }, () => fetch(px.url(`/d/${key}`)));
  await waitFor(async () => (await coalesced()) === before + N - 1, { timeoutMs: 15_000, message: "the others to join the first request's fill" });
  return responses;
}

/** How a body ended: its SHA-256 when it arrived whole, "cut" when the connection was closed mid-body. */
const outcome = (r: Response) => r.arrayBuffer().then((b) => (b.byteLength === SIZE ? sha(b) : `short ${b.byteLength}`), () => "cut");

test("N concurrent GETs of an uncached object over the memory limit: one upstream GET, every body byte-exact", async () => {
  const responses = await Promise.all(await herd("herd.bin"));
  for (const r of responses) {
    expect(r.status).toBe(200);
    expect(r.headers.get("x-cache")).toBe("MISS");
  }
  // Every answer carries the object's validators (the followers' from the fill's stored headers).
  // (Bun.serve sends a streamed body chunked, the first answer's and the followers' alike.)
  const etag = responses[0]!.headers.get("etag");
  expect(etag).toMatch(/^"[0-9a-f]{32}"$/);
  for (const r of responses) expect([r.headers.get("etag"), r.headers.get("content-type")]).toEqual([etag, "text/plain"]);
  expect(await Promise.all(responses.map(outcome))).toEqual(Array(N).fill(SHA));
  expect(upstreamGets("herd.bin")).toBe(1);
  const hit = await fetch(px.url("/d/herd.bin"));
  expect(hit.headers.get("x-cache")).toBe("HIT");
  expect(sha(await hit.arrayBuffer())).toBe(SHA);
  expect(upstreamGets("herd.bin")).toBe(1);
});

test("a fill cut mid-body cuts every follower's body (none looks complete); nothing is stored; the next GET fills", async () => {
  relay.truncateResponses(8 * 1024 * 1024); // every answer through the relay is cut after 8 MiB
  try {
    const results = await Promise.all((await herd("cut.bin")).map((p) => p.then(outcome, () => "cut")));
    expect(results).toEqual(Array(N).fill("cut"));
    expect(upstreamGets("cut.bin")).toBe(1);
  } finally {
    relay.truncateResponses(undefined);
  }
  const next = await fetch(px.url("/d/cut.bin"));
  expect(next.headers.get("x-cache")).toBe("MISS");
  expect(sha(await next.arrayBuffer())).toBe(SHA);
  expect(upstreamGets("cut.bin")).toBe(2);
});

test("followers that go away mid-body leave no file descriptor open in the proxy", async () => {
  // The proxy's descriptors open on files of the cache folder (the fill's, the followers' reads).
  const cacheFds = () =>
    readdirSync(`/proc/${px.proc.pid}/fd`).filter((fd) => {
      try {
        return readlinkSync(`/proc/${px.proc.pid}/fd/${fd}`).startsWith(dir);
      } catch {
        return false; // closed meanwhile
      }
    }).length;
  // The previous test's last fill may still be closing its file: wait for it (a leak times out).
  await waitFor(() => cacheFds() === 0, { message: () => `the earlier tests' cache file descriptors to be closed (${cacheFds()} open)` });
  const responses = await Promise.all(await herd("fds.bin"));
  // Half read one chunk and go away; the others read their whole body.
  const results = await Promise.all(
    responses.map(async (r, i) => {
      if (i % 2 === 0) return outcome(r);
      const reader = r.body!.getReader();
      await reader.read();
      await reader.cancel();
      return "gone";
    }),
  );
  expect(results.filter((x) => x === SHA)).toHaveLength(N / 2);
  expect(upstreamGets("fds.bin")).toBe(1);
  await waitFor(async () => (await fetch(px.url("/d/fds.bin"), { method: "HEAD" })).headers.get("x-cache") === "HIT", { message: "the fill to be committed" });
  await waitFor(() => cacheFds() === 0, { message: () => `the proxy's cache file descriptors to be closed (${cacheFds()} open)` });
});
