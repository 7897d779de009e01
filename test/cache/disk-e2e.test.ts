/**
 * The disk layer end to end: the real proxy process (bun engine) in front of the real S3 fixture.
 * A 20 MiB object (over the memory layer's item limit and over buffer_threshold_bytes, so the
 * first answer streams) is written to disk while it is served; then it is a disk HIT with an
 * exact Content-Length and native ranges, and still is after the proxy process restarts.
 * The node engine serves the same disk hit.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startInProcess, startProxy, type ProxyProcess } from "../e2e/harness.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIADISKE2E", secretAccessKey: "disk-e2e-secret" };
const SIZE = 20 * 1024 * 1024;
const BODY = randomBytes(SIZE);

function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(out.subarray(off, Math.min(off + 65536, n)));
  return out;
}

let s3: S3Fixture;
let dir: string;
let px: ProxyProcess | undefined;

const config = (engine: "bun" | "node") => `server: { address: 127.0.0.1, port: 0, engine: ${engine} }
cache:
  enabled: true
  cache_layers: [memory, disk]
  memory: { max_item_size_mb: 1, max_cache_size_mb: 16, default_ttl_seconds: 600 }
  disk: { path: "${join(dir, "cache")}", max_disk_size_mb: 256, max_item_size_mb: 64 }
buckets:
${bucketYaml({ name: "d", prefix: "/d", bucket: "data", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: "    cache: { enabled: true }\n" })}`;

/** GETs the proxy sent to S3 for the object. */
const upstreamGets = () => s3.requests.filter((r) => !r.admin && r.pathname === "/data/big.bin" && r.method === "GET").length;

const objectFiles = () => {
  const base = join(dir, "cache", "objects");
  try {
    return readdirSync(base).flatMap((sub) => readdirSync(join(base, sub)));
  } catch {
    return [];
  }
};

/** curl, to see the response head exactly as it went over the wire. */
async function curlHead(url: string, headers: string[] = []): Promise<{ head: string; size: number }> {
  const p = Bun.spawn(["curl", "-s", "-o", "/dev/null", "-D", "-", "-w", "SIZE=%{size_download}", ...headers.flatMap((h) => ["-H", h]), url], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(p.stdout).text();
  expect(await p.exited).toBe(0);
  const m = /SIZE=(\d+)$/.exec(out)!;
  return { head: out.slice(0, m.index).toLowerCase(), size: Number(m[1]) };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "yata-disk-e2e-"));
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...CREDS, buckets: ["data"] }] });
  // text/plain: the fixture serves objects with Bun.file too, and for application/* types Bun.serve
  // adds its own `Content-Disposition: filename="<fixture file>"`, which the proxy would store.
  await s3.put("data", "big.bin", BODY, { contentType: "text/plain" });
});

afterAll(async () => {
  await px?.stop();
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("bun engine", () => {
  test("the first GET streams the object and fills the disk; the next is a disk HIT with Content-Length", async () => {
    px = await startProxy(config("bun"));
    const first = await fetch(px.url("/d/big.bin"));
    expect(first.status).toBe(200);
    expect(first.headers.get("x-cache")).toBe("MISS");
    expect(new Uint8Array(await first.arrayBuffer())).toEqual(BODY);
    await waitFor(() => objectFiles().length === 1, { message: "the object file on disk" });

    const hit = await fetch(px.url("/d/big.bin"));
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(hit.headers.get("x-cache-layer")).toBe("disk");
    expect(hit.headers.get("content-length")).toBe(String(SIZE));
    expect(hit.headers.get("content-disposition")).toBe("inline");
    expect(new Uint8Array(await hit.arrayBuffer())).toEqual(BODY);

    const wire = await curlHead(px.url("/d/big.bin"));
    expect(wire.head).toContain(`content-length: ${SIZE}\r\n`);
    expect(wire.head).not.toContain("transfer-encoding");
    expect(wire.size).toBe(SIZE);
    expect(upstreamGets()).toBe(1);
  });

  test("Range on a disk HIT: 206 with Content-Range and an exact Content-Length", async () => {
    const r = await fetch(px!.url("/d/big.bin"), { headers: { range: "bytes=1048576-2097151" } });
    expect(r.status).toBe(206);
    expect(r.headers.get("content-range")).toBe(`bytes 1048576-2097151/${SIZE}`);
    expect(r.headers.get("content-length")).toBe("1048576");
    expect(new Uint8Array(await r.arrayBuffer())).toEqual(BODY.subarray(1048576, 2097152));
    const wire = await curlHead(px!.url("/d/big.bin"), ["Range: bytes=-100"]);
    expect(wire.head).toContain("content-length: 100\r\n");
    expect(wire.head).toContain(`content-range: bytes ${SIZE - 100}-${SIZE - 1}/${SIZE}\r\n`);
    expect(wire.size).toBe(100);
    expect(upstreamGets()).toBe(1);
  });

  test("a restart of the proxy process keeps the disk entry", async () => {
    expect(await px!.stop()).toBe(0);
    px = await startProxy(config("bun"));
    const r = await fetch(px.url("/d/big.bin"));
    expect(r.headers.get("x-cache")).toBe("HIT");
    expect(r.headers.get("x-cache-layer")).toBe("disk");
    expect(r.headers.get("content-length")).toBe(String(SIZE));
    expect(new Uint8Array(await r.arrayBuffer())).toEqual(BODY);
    const ranged = await fetch(px.url("/d/big.bin"), { headers: { range: "bytes=5-9" } });
    expect(ranged.status).toBe(206);
    expect(new Uint8Array(await ranged.arrayBuffer())).toEqual(BODY.subarray(5, 10));
    expect(upstreamGets()).toBe(1);
    expect(px.logs().some((l) => l.msg === "disk cache index rebuilt" && l.objects === 1)).toBe(true);
    await px.stop();
    px = undefined;
  });
});

test("node engine: the same disk HIT, with Content-Length and ranges", async () => {
  await using proxy = await startInProcess(config("node"));
  const r = await fetch(proxy.url("/d/big.bin"));
  expect(r.headers.get("x-cache-layer")).toBe("disk");
  expect(r.headers.get("content-length")).toBe(String(SIZE));
  expect(new Uint8Array(await r.arrayBuffer())).toEqual(BODY);
  const ranged = await fetch(proxy.url("/d/big.bin"), { headers: { range: "bytes=100-199" } });
  expect(ranged.headers.get("content-length")).toBe("100");
  expect(new Uint8Array(await ranged.arrayBuffer())).toEqual(BODY.subarray(100, 200));
  expect(upstreamGets()).toBe(1);
});
