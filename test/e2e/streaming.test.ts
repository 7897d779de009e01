/**
 * Body delivery on both engines: Content-Length, streaming above buffer_threshold_bytes,
 * memory under a slow client, and aborting the upstream when the client goes away.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startInProcess, startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const MiB = 1024 * 1024;
const THRESHOLD = 2 * MiB;

function pattern(size: number, seed: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed + (i >> 12)) & 0xff;
  return b;
}
const SMALL = pattern(MiB, 1);
const AT = pattern(THRESHOLD, 2);
const ABOVE = pattern(3 * MiB, 3);
const HUGE = pattern(40 * MiB, 4);
const sha = (b: Uint8Array | ArrayBuffer) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

let s3: S3Fixture;
const px: Record<"bun" | "node", ProxyProcess> = {} as never;
const cfg = (engine: string) =>
  `server: { address: 127.0.0.1, port: 0, engine: ${engine}, buffer_threshold_bytes: ${THRESHOLD} }\nbuckets:\n${bucketYaml({ name: "st", prefix: "/st", bucket: "stream", endpoint: s3.endpoint })}` +
  // (the same store, cached: the memory layer keeps items up to 10 MiB, so huge.bin passes through, BYPASS)
  bucketYaml({ name: "stc", prefix: "/stc", bucket: "stream", endpoint: s3.endpoint, extra: "    cache: { enabled: true }\n" });

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "stream", public: true }], credentials: [] });
  await s3.put("stream", "small.bin", SMALL);
  await s3.put("stream", "at.bin", AT);
  await s3.put("stream", "above.bin", ABOVE);
  await s3.put("stream", "huge.bin", HUGE);
  [px.bun, px.node] = await Promise.all([startProxy(cfg("bun")), startProxy(cfg("node"))]);
}, 30_000);
afterAll(async () => {
  await px.bun?.stop();
  await px.node?.stop();
  await s3?.stop();
});

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error("no VmRSS");
  return Number(m[1]) * 1024;
}

/** Raw response head for a GET (fetch hides Transfer-Encoding). */
function rawHead(port: number, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`));
    let data = "";
    s.on("data", (c) => {
      data += c.toString("latin1");
      const end = data.indexOf("\r\n\r\n");
      if (end >= 0) {
        s.destroy();
        resolve(data.slice(0, end).toLowerCase());
      }
    });
    s.on("error", reject);
  });
}

for (const engine of ["bun", "node"] as const) {
  describe(`engine ${engine}`, () => {
    test(`${engine} engine: a GET below buffer_threshold_bytes has an exact Content-Length and body`, async () => {
      const res = await fetch(px[engine].url("/st/small.bin"));
      expect(res.status).toBe(200);
      expect(res.headers.get("content-length")).toBe(String(MiB));
      expect(sha(await res.arrayBuffer())).toBe(sha(SMALL));
    });

    test(`${engine} engine: a GET exactly at buffer_threshold_bytes has an exact Content-Length`, async () => {
      const res = await fetch(px[engine].url("/st/at.bin"));
      expect(res.headers.get("content-length")).toBe(String(THRESHOLD));
      expect(sha(await res.arrayBuffer())).toBe(sha(AT));
    });

    test(`${engine} engine: a ranged GET has the range's Content-Length`, async () => {
      const res = await fetch(px[engine].url("/st/above.bin"), { headers: { range: "bytes=100-1099" } });
      expect(res.status).toBe(206);
      expect(res.headers.get("content-length")).toBe("1000");
      expect(sha(await res.arrayBuffer())).toBe(sha(ABOVE.subarray(100, 1100)));
    });
  });
}

test("node engine: a GET above buffer_threshold_bytes also has Content-Length and streams the exact body", async () => {
  const head = await rawHead(px.node.port, "/st/above.bin");
  expect(head).toContain(`content-length: ${3 * MiB}`);
  expect(head).not.toContain("transfer-encoding");
  const res = await fetch(px.node.url("/st/above.bin"));
  expect(sha(await res.arrayBuffer())).toBe(sha(ABOVE));
});

test("bun engine streams objects above buffer_threshold_bytes without Content-Length (Bun #10507)", async () => {
  const head = await rawHead(px.bun.port, "/st/above.bin");
  expect(head).toContain("transfer-encoding: chunked");
  expect(head).not.toContain("content-length");
  const res = await fetch(px.bun.url("/st/above.bin"));
  expect(sha(await res.arrayBuffer())).toBe(sha(ABOVE));
});

test("HEAD above buffer_threshold_bytes carries Content-Length on both engines", async () => {
  for (const engine of ["bun", "node"] as const) {
    const res = await fetch(px[engine].url("/st/above.bin"), { method: "HEAD" });
    expect(res.headers.get("content-length")).toBe(String(3 * MiB));
  }
});

for (const engine of ["bun", "node"] as const) {
  test(`${engine} engine: a slow client reading a 40 MiB object keeps proxy RSS growth under 64 MiB`, async () => {
    const p = px[engine];
    await (await fetch(p.url("/st/small.bin"))).arrayBuffer(); // warm up
    const before = rssBytes(p.proc.pid);
    const res = await fetch(p.url("/st/huge.bin"));
    expect(res.status).toBe(200);
    if (engine === "node") expect(res.headers.get("content-length")).toBe(String(40 * MiB));
    const reader = res.body!.getReader();
    const hasher = new Bun.CryptoHasher("sha256");
    let got = 0;
    let peak = 0;
    // Slow phase: the client's pacing (one read per 50 ms). A proxy without backpressure would
    // meanwhile pull the whole object from the local upstream into memory.
    for (let i = 0; i < 30; i++) {
      const { done, value } = await reader.read();
      if (done) break;
      hasher.update(value);
      got += value.byteLength;
      await Bun.sleep(50);
    }
    expect(got).toBeLessThan(40 * MiB);
    peak = Math.max(peak, rssBytes(p.proc.pid));
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      hasher.update(value);
      got += value.byteLength;
    }
    peak = Math.max(peak, rssBytes(p.proc.pid));
    expect(got).toBe(40 * MiB);
    expect(hasher.digest("hex")).toBe(sha(HUGE));
    expect(peak - before).toBeLessThan(64 * MiB);
  }, 30_000);
}

/**
 * Fetches `key` through an in-process proxy (the same App + listener, on the real fixture) whose
 * upstream fetch is observed, reads one chunk, disconnects, and reports what happened upstream.
 */
async function disconnectMidDownload(engine: "bun" | "node", key: string): Promise<string> {
  let settle!: (what: string) => void;
  const outcome = new Promise<string>((r) => (settle = r));
  const observingFetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const res = await fetch(input, init);
    if (!res.body || !String(input).endsWith(`/${key}`)) return res;
    init?.signal?.addEventListener("abort", () => settle("cancelled"), { once: true });
    const reader = res.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        const { done, value } = await reader.read();
        if (done) {
          settle("upstream body read to the end");
          c.close();
        } else c.enqueue(value);
      },
      cancel(reason) {
        settle("cancelled");
        return reader.cancel(reason);
      },
    });
    return new Response(body, { status: res.status, headers: res.headers });
  }) as typeof fetch;
  await using ip = await startInProcess(cfg(engine), { fetch: observingFetch });
  const ac = new AbortController();
  const res = await fetch(ip.url(`/st/${key}`), { signal: ac.signal });
  expect(res.status).toBe(200);
  const first = await res.body!.getReader().read();
  expect(first.value!.byteLength).toBeGreaterThan(0);
  ac.abort();
  return Promise.race([outcome, Bun.sleep(5000).then(() => "still reading after 5 s")]);
}

for (const engine of ["bun", "node"] as const) {
  test(`${engine} engine: a client that disconnects mid-download of a 40 MiB object cancels the upstream fetch`, async () => {
    expect(await disconnectMidDownload(engine, "huge.bin")).toBe("cancelled");
  }, 15_000);

  test(`${engine} engine: an upstream body of unknown length (chunked, trickled) past buffer_threshold_bytes is streamed, and a client disconnect cancels it`, async () => {
    // (up to the threshold such a body is held, as a known-length one is: the rest streams)
    await s3.put("stream", "trickle.bin", pattern(4 * THRESHOLD, 7));
    s3.faults.set("/stream/trickle.bin", { kind: "slowBody", bytesPerTick: 256 * 1024, ms: 20 });
    try {
      expect(await disconnectMidDownload(engine, "trickle.bin")).toBe("cancelled");
    } finally {
      s3.faults.delete("/stream/trickle.bin");
    }
  }, 15_000);
}

// A client that reads nothing after the head: the proxy takes from the upstream only what the
// socket toward the client took (the kernel's buffers, a few MiB), on a cached bucket (the object
// above the cache's largest item: BYPASS) as on an uncached one, never the object ahead of the
// client (a fill, a tee or a buffer reading on at the upstream's pace).
test.concurrent.each(["/st", "/stc"])("%s: a client that stops reading after the head: the upstream body is read no further ahead of it than the socket's buffers", async (prefix) => {
  let pulled = 0;
  const countingFetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const res = await fetch(input, init);
    if (!res.body || !String(input).endsWith("/huge.bin")) return res;
    const reader = res.body.getReader();
    const body = new ReadableStream<Uint8Array>(
      {
        async pull(c) {
          const { done, value } = await reader.read();
          if (done) return c.close();
          pulled += value.byteLength;
          c.enqueue(value);
        },
        cancel: (reason) => reader.cancel(reason),
      },
      { highWaterMark: 0 },
    );
    return new Response(body, { status: res.status, headers: res.headers });
  }) as typeof fetch;
  await using ip = await startInProcess(cfg("bun"), { fetch: countingFetch });
  let head = "";
  const s = connect(ip.port, "127.0.0.1");
  try {
    const headRead = new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      const onData = (d: Buffer) => {
        head += d.toString("latin1");
        if (!head.includes("\r\n\r\n")) return;
        s.pause(); // reads nothing more
        s.off("data", onData);
        resolve();
      };
      s.on("data", onData);
    });
    s.write(`GET ${prefix}/huge.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    await headRead;
    expect(head).toStartWith("HTTP/1.1 200");
    if (prefix === "/stc") expect(head.toLowerCase()).toContain("x-cache: bypass");
    await Bun.sleep(1000); // the client reading nothing for a second: what is under test
    expect(pulled).toBeGreaterThan(0);
    expect(pulled).toBeLessThan(20 * MiB);
  } finally {
    s.destroy();
  }
}, 15_000);

test("node engine: an upstream body of unknown length reaches the client complete (chunked)", async () => {
  s3.faults.set("/stream/above.bin", { kind: "slowBody", bytesPerTick: 512 * 1024, ms: 1 });
  try {
    const head = await rawHead(px.node.port, "/st/above.bin");
    expect(head).toContain("transfer-encoding: chunked");
    const res = await fetch(px.node.url("/st/above.bin"));
    expect(sha(await res.arrayBuffer())).toBe(sha(ABOVE));
  } finally {
    s3.faults.delete("/stream/above.bin");
  }
});

test("node engine: a small body of unknown length is buffered and gets a Content-Length", async () => {
  await s3.put("stream", "tiny.txt", "tiny body");
  s3.faults.set("/stream/tiny.txt", { kind: "slowBody", bytesPerTick: 3, ms: 1 });
  try {
    const head = await rawHead(px.node.port, "/st/tiny.txt");
    expect(head).toContain("content-length: 9");
    expect(head).not.toContain("transfer-encoding");
    expect(await (await fetch(px.node.url("/st/tiny.txt"))).text()).toBe("tiny body");
  } finally {
    s3.faults.delete("/stream/tiny.txt");
  }
});
