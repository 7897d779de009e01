/**
 * Memory + disk under the serving flow: streaming fills of objects too big to buffer, disk hits
 * (Content-Length, Range, X-Cache-Layer), promotion, the failure paths of a streaming fill, and
 * the misses that follow a streaming fill in progress instead of going upstream.
 */
import { afterAll, beforeEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cache } from "../../src/cache/cache.ts";
import { DiskLayer } from "../../src/cache/disk.ts";
import { capFreshness } from "../../src/cache/freshness.ts";
import { MemoryLayer } from "../../src/cache/memory.ts";
import { ProxyError } from "../../src/errors.ts";
import { serveWithCache, type ServeArgs } from "../../src/cache/serve.ts";
import { waitFor } from "../helpers/wait.ts";
import { bytesOf, controlledUpstream, instantUpstream } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const root = mkdtempSync(join(tmpdir(), "yata-tiered-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

const MEM_ITEM = 64 * 1024;
const BIG = 1024 * 1024 + 17; // over the buffer limit: a streaming fill
const policy = { ttlSeconds: 600, defaultTtlSeconds: 3600, maxItemBytes: 8 << 20, bufferBytes: MEM_ITEM, stallTimeoutMs: 300 };
let memory: MemoryLayer;
let disk: DiskLayer;
let cache: Cache;

beforeEach(async () => {
  memory = new MemoryLayer(16 << 20, MEM_ITEM);
  disk = new DiskLayer({ dir: join(root, `d${++n}`), maxBytes: 64 << 20, maxItemBytes: 8 << 20 });
  await disk.ready;
  cache = new Cache([memory, disk]);
});

const headers = (size: number, extra: Record<string, string> = {}) => ({ etag: '"big"', "content-type": "application/zip", "content-length": String(size), ...extra });

function serve(upstream: ServeArgs["upstream"], h: Record<string, string> = {}, method: "GET" | "HEAD" = "GET") {
  return serveWithCache({ cache, bucket: "b", key: "big.zip", method, reqHeaders: new Headers(h), policy, upstream });
}

/** A body of `size` bytes in `chunk`-sized pieces; `cutAt` ends it early with an error. */
function body(size: number, chunk = 64 * 1024, opts: { cutAt?: number; stallAt?: number } = {}): ReadableStream<Uint8Array> {
  const all = bytesOf(size);
  let off = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (opts.cutAt !== undefined && off >= opts.cutAt) return c.error(new Error("upstream reset"));
      if (opts.stallAt !== undefined && off >= opts.stallAt) return new Promise(() => {}); // never answers
      if (off >= size) return c.close();
      const end = Math.min(off + chunk, size);
      c.enqueue(all.slice(off, end));
      off = end;
    },
  });
}

/** The disk layer's writes fail with ENOSPC once `limit` bytes went in (`slow`: each write waits a turn first). */
function failDiskAfter(limit: number, o: { slow?: boolean } = {}): void {
  const open = disk.openWriter.bind(disk);
  disk.openWriter = (meta) => {
    const w = open(meta);
    if (w === undefined) return w;
    const write = w.write.bind(w);
    let bytes = 0;
    w.write = async (chunk: Uint8Array) => {
      if (o.slow) await new Promise((r) => setImmediate(r));
      bytes += chunk.byteLength;
      if (bytes > limit) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
      return write(chunk);
    };
    return w;
  };
}

const committed = () => waitFor(() => disk.keys().includes("b/big.zip"), { message: "the disk fill to be committed" });
const tmpFiles = () => readdirSync(join(disk.dir, "tmp"));

describe("streaming fill", () => {
  test("the first client gets the whole body while it is written to disk; the next request is a disk HIT with Content-Length", async () => {
    const up = instantUpstream(() => new Response(body(BIG), { headers: headers(BIG) }));
    const first = await serve(up.fn);
    expect(first).toMatchObject({ cacheStatus: "MISS", passthrough: true });
    expect(new Uint8Array(await first.response.arrayBuffer())).toEqual(bytesOf(BIG));
    await committed();

    const hit = await serve(up.fn);
    expect(hit).toMatchObject({ cacheStatus: "HIT", upstreamCalls: 0, passthrough: false });
    const h = hit.response.headers;
    expect(h.get("x-cache")).toBe("HIT");
    expect(h.get("x-cache-layer")).toBe("disk");
    expect(h.get("content-length")).toBe(String(BIG));
    expect(h.get("content-disposition")).toBe("inline"); // Bun.serve would invent one for a file body
    expect(new Uint8Array(await hit.response.arrayBuffer())).toEqual(bytesOf(BIG));
    expect(up.calls).toHaveLength(1);
    expect(memory.stats().items).toBe(0); // too big for memory: not promoted
    expect(cache.stats().layers.disk).toMatchObject({ items: 1, hits: 1 });
    expect(cache.stats().layers.memory!.hits).toBe(0);
  });

  test("an answer from a secondary replica (capFreshness) is written to disk for its cap only", async () => {
    const before = Date.now();
    const up = instantUpstream(() => capFreshness(new Response(body(BIG), { headers: headers(BIG) }), 5));
    const first = await serve(up.fn);
    expect(first.cacheStatus).toBe("MISS");
    await first.response.arrayBuffer();
    await committed();
    const stored = await disk.get("b/big.zip");
    expect(stored!.expiresAt - stored!.storedAt).toBe(5000);
    expect(stored!.storedAt).toBeGreaterThanOrEqual(before);
  });

  test("over Bun.serve, a disk hit of an application/* object carries no invented file name", async () => {
    const up = instantUpstream(() => new Response(body(BIG), { headers: headers(BIG) }));
    await (await serve(up.fn)).response.arrayBuffer();
    await committed();
    await using server = Bun.serve({ port: 0, fetch: async () => (await serve(up.fn)).response });
    const r = await fetch(server.url);
    expect(r.headers.get("content-type")).toBe("application/zip");
    expect(r.headers.get("content-disposition")).toBe("inline");
    expect(r.headers.get("content-length")).toBe(String(BIG));
    expect(new Uint8Array(await r.arrayBuffer())).toEqual(bytesOf(BIG));
  });

  test("a HEAD of a disk hit carries no Content-Disposition the object lacks (a HEAD sends no file; aws-cli copies HeadObject's headers to a multipart copy)", async () => {
    const up = instantUpstream(() => new Response(body(BIG), { headers: headers(BIG) }));
    await (await serve(up.fn)).response.arrayBuffer();
    await committed();
    const head = await serve(up.fn, {}, "HEAD");
    expect([head.cacheStatus, head.response.headers.get("x-cache-layer"), head.response.headers.get("content-disposition")]).toEqual(["HIT", "disk", null]);
    expect(head.response.headers.get("content-length")).toBe(String(BIG));
    const ranged = await serve(up.fn, { range: "bytes=0-9" }, "HEAD");
    expect([ranged.response.status, ranged.response.headers.get("content-disposition")]).toEqual([206, null]);
    // the GET of the same hit still gets `inline` (Bun.serve would invent a file name)
    const get = await serve(up.fn);
    expect(get.response.headers.get("content-disposition")).toBe("inline");
    await get.response.arrayBuffer();
    const again = await serve(up.fn, {}, "HEAD");
    expect(again.response.headers.get("content-disposition")).toBeNull();
  });

  test("a 412 answered from the cache says so (X-Cache), as its 304 and 416 do", async () => {
    const up = instantUpstream(() => new Response(body(BIG), { headers: headers(BIG) }));
    await (await serve(up.fn)).response.arrayBuffer();
    await committed();
    const refused = await serve(up.fn, { "if-match": '"other"' }).then(
      () => undefined,
      (e: unknown) => e as { status: number; headers?: Record<string, string> },
    );
    expect(refused?.status).toBe(412);
    expect(refused?.headers).toMatchObject({ "x-cache": "HIT", "x-cache-layer": "disk" });
  });

  test("Range on a disk hit: 206 of the file's bytes with an exact Content-Length", async () => {
    const up = instantUpstream(() => new Response(body(BIG), { headers: headers(BIG) }));
    await (await serve(up.fn)).response.arrayBuffer();
    await committed();
    const r = await serve(up.fn, { range: "bytes=1000-200999" });
    expect(r.response.status).toBe(206);
    expect(r.response.headers.get("content-length")).toBe("200000");
    expect(r.response.headers.get("content-range")).toBe(`bytes 1000-200999/${BIG}`);
    expect(new Uint8Array(await r.response.arrayBuffer())).toEqual(bytesOf(BIG).subarray(1000, 201000));
    const tail = await serve(up.fn, { range: "bytes=-10" });
    expect(new Uint8Array(await tail.response.arrayBuffer())).toEqual(bytesOf(BIG).subarray(BIG - 10));
    expect(up.calls).toHaveLength(1);
  });

  test("the client going away mid-body does not waste the fill: the rest is read into the file", async () => {
    const up = instantUpstream(() => new Response(body(BIG), { headers: headers(BIG) }));
    const first = await serve(up.fn);
    const reader = first.response.body!.getReader();
    await reader.read();
    await reader.cancel();
    await committed();
    expect(new Uint8Array(await (await serve(up.fn)).response.arrayBuffer())).toEqual(bytesOf(BIG));
    expect(up.calls).toHaveLength(1);
  });

  test("a HEAD miss of a big object fills the disk too (its body is read in the background)", async () => {
    const up = instantUpstream(() => new Response(body(BIG), { headers: headers(BIG) }));
    const head = await serve(up.fn, {}, "HEAD");
    expect(head.response.body).toBeNull();
    await committed();
  });

  test("an upstream cut mid-body: the client's body fails, nothing is stored", async () => {
    const up = instantUpstream(() => new Response(body(BIG, 64 * 1024, { cutAt: 512 * 1024 }), { headers: headers(BIG) }));
    const first = await serve(up.fn);
    expect(first.response.arrayBuffer()).rejects.toThrow();
    await waitFor(() => tmpFiles().length === 0, { message: "the temporary file to be deleted" });
    expect(disk.keys()).toEqual([]);
  });

  test("a body shorter than its Content-Length is not stored", async () => {
    const up = instantUpstream(() => new Response(body(BIG - 1), { headers: headers(BIG) }));
    await (await serve(up.fn)).response.arrayBuffer();
    await waitFor(() => tmpFiles().length === 0, { message: "the temporary file to be deleted" });
    expect(disk.keys()).toEqual([]);
  });

  test("a stalled upstream ends the client's body with a timeout error after stallTimeoutMs; nothing is stored", async () => {
    let aborted: unknown;
    const up = controlledUpstream();
    const pending = serve((extra, signal) => {
      signal.addEventListener("abort", () => (aborted = signal.reason));
      return up.fn(extra);
    });
    await waitFor(() => up.waiting === 1);
    up.respond(new Response(body(BIG, 64 * 1024, { stallAt: 256 * 1024 }), { headers: headers(BIG) }));
    const first = await pending;
    const started = performance.now();
    const err = await first.response.arrayBuffer().then(() => undefined, (e) => e);
    expect(err).toMatchObject({ code: "GatewayTimeout" });
    expect(performance.now() - started).toBeLessThan(3000);
    expect(aborted).toMatchObject({ code: "GatewayTimeout" });
    await waitFor(() => tmpFiles().length === 0, { message: "the temporary file to be deleted" });
    expect(disk.keys()).toEqual([]);
  });

  test("a purge during a streaming fill: the fill is not committed", async () => {
    const up = instantUpstream(() => new Response(body(BIG), { headers: headers(BIG) }));
    const first = await serve(up.fn);
    const reader = first.response.body!.getReader();
    await reader.read();
    await cache.purgeBucket("b");
    for (let r = await reader.read(); !r.done; r = await reader.read());
    await waitFor(() => tmpFiles().length === 0, { message: "the temporary file to be deleted" });
    expect(disk.keys()).toEqual([]);
  });

  test("no-store objects are not written to disk", async () => {
    const up = instantUpstream(() => new Response(body(BIG), { headers: headers(BIG, { "cache-control": "no-store" }) }));
    await (await serve(up.fn)).response.arrayBuffer();
    expect(tmpFiles()).toEqual([]);
    expect(disk.keys()).toEqual([]);
  });
});

describe("revalidation of a disk entry", () => {
  /** A stale disk entry revalidated with `fault` done to it while the conditional GET is in flight: the 304 must not be answered from it. */
  async function revalidatedAfter(fault: () => unknown): Promise<void> {
    const up = controlledUpstream();
    const first = serve(up.fn);
    await waitFor(() => up.waiting === 1);
    up.respond(new Response(body(BIG), { headers: headers(BIG, { "cache-control": "max-age=0" }) }));
    expect(new Uint8Array(await (await first).response.arrayBuffer())).toEqual(bytesOf(BIG));
    await committed();

    const second = serve(up.fn); // stale at once: revalidated
    await waitFor(() => up.waiting === 1, { message: "the conditional GET" });
    expect(up.calls[1]).toEqual({ "if-none-match": '"big"' });
    await fault();
    up.respond(new Response(null, { status: 304, headers: { etag: '"big"', "cache-control": "max-age=60" } }));
    await waitFor(() => up.waiting === 1, { message: "the object asked for again, whole" });
    expect(up.calls[2]).toEqual({});
    up.respond(new Response(body(BIG), { headers: headers(BIG, { "cache-control": "max-age=60" }) }));
    const r = await second;
    expect(r.response.status).toBe(200);
    expect(new Uint8Array(await r.response.arrayBuffer())).toEqual(bytesOf(BIG));
    await committed();
    const hit = await serve(up.fn);
    expect(hit.cacheStatus).toBe("HIT");
    expect(new Uint8Array(await hit.response.arrayBuffer())).toEqual(bytesOf(BIG));
    expect(up.calls).toHaveLength(3);
  }

  test("its file evicted while the conditional GET is in flight: the 304 is not answered from the gone file, the object is fetched again whole", async () => {
    // the layer drops the file (an eviction, another fill's room): no purge the cache knows of
    await revalidatedAfter(() => disk.delete("b/big.zip"));
  });

  test("its file cut short while the conditional GET is in flight: the 304 is not answered from it (a short 200), the object is fetched again whole", async () => {
    await revalidatedAfter(() => {
      const [sub] = readdirSync(join(disk.dir, "objects"));
      const [file] = readdirSync(join(disk.dir, "objects", sub!));
      truncateSync(join(disk.dir, "objects", sub!, file!), 1000); // behind the layer's back
    });
  });

  test("its file still there when the 304 comes: answered from it, REVALIDATED, nothing fetched again", async () => {
    const up = controlledUpstream();
    const first = serve(up.fn);
    await waitFor(() => up.waiting === 1);
    up.respond(new Response(body(BIG), { headers: headers(BIG, { "cache-control": "max-age=0" }) }));
    await (await first).response.arrayBuffer();
    await committed();
    const second = serve(up.fn);
    await waitFor(() => up.waiting === 1);
    up.respond(new Response(null, { status: 304, headers: { etag: '"big"', "cache-control": "max-age=60" } }));
    const r = await second;
    expect(r.cacheStatus).toBe("REVALIDATED");
    expect(new Uint8Array(await r.response.arrayBuffer())).toEqual(bytesOf(BIG));
    expect(up.calls).toHaveLength(2);
  });
});

describe("stale_if_error_seconds on a disk entry", () => {
  const stalePolicy = { ...policy, staleIfErrorSeconds: 60 };
  const serveStale = (upstream: ServeArgs["upstream"]) => serveWithCache({ cache, bucket: "b", key: "big.zip", method: "GET", reqHeaders: new Headers(), policy: stalePolicy, upstream });

  /** A disk-only entry (too big for memory), stale at once; its revalidation then fails with `failure`. */
  async function revalidationFails(failure: (up: ReturnType<typeof controlledUpstream>) => void, before?: () => unknown) {
    const up = controlledUpstream();
    const first = serveStale(up.fn);
    await waitFor(() => up.waiting === 1);
    up.respond(new Response(body(BIG), { headers: headers(BIG, { "cache-control": "max-age=0" }) }));
    await (await first).response.arrayBuffer();
    await committed();
    const second = serveStale(up.fn).catch((err: unknown) => err);
    await waitFor(() => up.waiting === 1, { message: "the conditional GET" });
    await before?.();
    failure(up);
    return second;
  }

  test("the store unreachable: the stale file answers, STALE, whole", async () => {
    const r = await revalidationFails((up) => up.fail(new ProxyError("UpstreamUnreachable")));
    expect((r as { cacheStatus: string }).cacheStatus).toBe("STALE");
    const res = (r as { response: Response }).response;
    expect([res.status, res.headers.get("x-cache"), res.headers.get("content-length")]).toEqual([200, "STALE", String(BIG)]);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytesOf(BIG));
    expect(cache.counter("b").stale).toBe(1);
  });

  test("its file evicted while the store was asked: the failure is the answer, not a short stale body", async () => {
    const r = await revalidationFails((up) => up.respond(new Response("<Error><Code>SlowDown</Code></Error>", { status: 503 })), () => disk.delete("b/big.zip"));
    expect((r as { cacheStatus: string }).cacheStatus).toBe("MISS");
    expect((r as { response: Response }).response.status).toBe(503);
  });
});

describe("small objects", () => {
  test("a fill is stored in memory and on disk; a disk hit after a memory purge is promoted back to memory", async () => {
    const up = instantUpstream(() => new Response(bytesOf(1000), { headers: headers(1000) }));
    expect((await serve(up.fn)).cacheStatus).toBe("MISS");
    await waitFor(() => disk.keys().length === 1);
    memory.purgePrefix("");
    const fromDisk = await serve(up.fn);
    expect(fromDisk.response.headers.get("x-cache-layer")).toBe("disk");
    expect(new Uint8Array(await fromDisk.response.arrayBuffer())).toEqual(bytesOf(1000));
    await waitFor(() => memory.peek("b/big.zip") !== undefined, { message: "the promotion to memory" });
    const fromMemory = await serve(up.fn);
    expect(fromMemory.response.headers.get("x-cache-layer")).toBe("memory");
    expect(fromMemory.response.headers.get("content-disposition")).toBeNull();
    expect(up.calls).toHaveLength(1);
  });

  test("a disk entry's file cut short before its bytes are copied into memory: the short copy is not kept (memory hits sent it as a whole 200)", async () => {
    await disk.put({ key: "b/k", body: new Blob([bytesOf(1000)]), headers: headers(1000), storedAt: Date.now(), expiresAt: Date.now() + 60_000, size: 1000, tpl: undefined });
    const found = (await disk.get("b/k"))!;
    const [sub] = readdirSync(join(disk.dir, "objects"));
    const [file] = readdirSync(join(disk.dir, "objects", sub!));
    const path = join(disk.dir, "objects", sub!, file!);
    truncateSync(path, statSync(path).size - 500); // behind the layer's back, after its check
    let copied = false;
    const read = found.body.arrayBuffer.bind(found.body);
    Object.defineProperty(found.body, "arrayBuffer", { value: () => read().finally(() => (copied = true)) });
    cache.put({ ...found, source: undefined });
    await waitFor(() => copied, { message: "the file read for the memory copy" });
    await new Promise((r) => setImmediate(r)); // (the copy's store runs in the microtasks after the read)
    const kept = memory.peek("b/k");
    expect(kept === undefined || kept.body.size === 1000).toBe(true);
  });

  test("a stale memory entry whose new version is too big for memory is dropped (no refill loop)", async () => {
    let version = 1;
    const up = instantUpstream(() => (version === 1 ? new Response(bytesOf(1000), { headers: headers(1000, { etag: '"v1"', "cache-control": "max-age=0" }) }) : new Response(body(BIG), { headers: headers(BIG, { etag: '"v2"' }) })));
    await (await serve(up.fn)).response.arrayBuffer();
    expect(memory.peek("b/big.zip")).toBeDefined();
    version = 2;
    const second = await serve(up.fn); // stale: revalidated, answered 200 with the big version
    expect(new Uint8Array(await second.response.arrayBuffer())).toEqual(bytesOf(BIG));
    await waitFor(() => disk.keys().includes("b/big.zip") && memory.peek("b/big.zip") === undefined, { message: "the big version on disk, the old one gone from memory" });
    const third = await serve(up.fn);
    expect(third.cacheStatus).toBe("HIT");
    expect(third.response.headers.get("etag")).toBe('"v2"');
    expect(up.calls).toHaveLength(2);
  });
});

/**
 * An upstream body the test lets out by hand: `allow(n)` lets n more bytes go, `cut()` ends it with
 * an error where it is. No timers: the test waits for the conditions it needs.
 */
function gatedBody(size: number, chunk = 64 * 1024) {
  const all = bytesOf(size);
  let off = 0;
  let allowed = 0;
  let isCut = false;
  let wake: (() => void) | undefined;
  const stream = new ReadableStream<Uint8Array>({
    async pull(c) {
      while (off >= allowed && off < size && !isCut) await new Promise<void>((r) => (wake = r));
      if (isCut) return c.error(new Error("upstream reset"));
      if (off >= size) return c.close();
      const end = Math.min(off + chunk, allowed, size);
      c.enqueue(all.slice(off, end));
      off = end;
    },
  });
  return {
    stream,
    allow(n: number) {
      allowed = Math.min(size, allowed + n);
      wake?.();
    },
    cut() {
      isCut = true;
      wake?.();
    },
    get sent() {
      return off;
    },
  };
}

const sha = (b: ArrayBuffer | Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
const fdCount = () => readdirSync("/proc/self/fd").length;

describe("following a streaming fill", () => {
  // No stall guard: a gated body waits as long as the test needs.
  const followPolicy = { ttlSeconds: 600, defaultTtlSeconds: 3600, maxItemBytes: 8 << 20, bufferBytes: MEM_ITEM };
  const get = (upstream: ServeArgs["upstream"], h: Record<string, string> = {}, method: "GET" | "HEAD" = "GET") =>
    serveWithCache({ cache, bucket: "b", key: "big.zip", method, reqHeaders: new Headers(h), policy: followPolicy, upstream });
  const fillOf = () => cache.fills.get("b/big.zip");

  test("N concurrent misses of an object over the memory limit: one upstream GET, every body byte-exact (MISS, counted as coalesced)", async () => {
    const gate = gatedBody(BIG);
    const up = controlledUpstream();
    // 8 arrive before the upstream answers (they join the flight), 8 more while the body streams.
    const early = Array.from({ length: 8 }, () => get(up.fn));
    await waitFor(() => up.waiting === 1);
    up.respond(new Response(gate.stream, { headers: headers(BIG) }));
    const first = await Promise.all(early);
    gate.allow(300 * 1024);
    await waitFor(() => (fillOf()?.written ?? 0) >= 256 * 1024, { message: "part of the body in the file" });
    const late = await Promise.all(Array.from({ length: 8 }, () => get(up.fn)));
    gate.allow(BIG);
    const all = [...first, ...late];
    const bodies = await Promise.all(all.map((r) => r.response.arrayBuffer()));
    const want = sha(bytesOf(BIG));
    for (const b of bodies) expect(sha(b)).toBe(want);
    expect(up.calls).toHaveLength(1);
    expect(all.filter((r) => r.upstreamCalls === 1)).toHaveLength(1);
    for (const r of all) {
      expect(r.cacheStatus).toBe("MISS");
      // (the leader's is upstream's answer: the pipeline sets its X-Cache)
      if (!r.passthrough) expect(r.response.headers.get("x-cache")).toBe("MISS");
    }
    const follower = late[0]!.response.headers;
    expect(follower.get("content-length")).toBe(String(BIG));
    expect(follower.get("etag")).toBe('"big"');
    expect(follower.get("content-type")).toBe("application/zip");
    expect(cache.stats().total).toMatchObject({ misses: 16, coalesced: 15 });
    await committed();
    expect(fillOf()).toBeUndefined();
    expect((await get(up.fn)).cacheStatus).toBe("HIT");
  });

  test("a follower that arrives mid-fill gets the whole object, waiting for the bytes not yet written; HEAD, 304 and Range from the fill's metadata", async () => {
    const gate = gatedBody(BIG);
    const up = instantUpstream(() => new Response(gate.stream, { headers: headers(BIG, { "last-modified": "Tue, 01 Dec 2026 10:00:00 GMT" }) }));
    const leader = await get(up.fn);
    gate.allow(100 * 1024);
    const reader = leader.response.body!.getReader();
    await reader.read();
    const follower = await get(up.fn);
    expect(follower).toMatchObject({ cacheStatus: "MISS", upstreamCalls: 0, passthrough: false, following: true });
    const head = await get(up.fn, {}, "HEAD");
    expect(head.response.body).toBeNull();
    expect(head.response.headers.get("content-length")).toBe(String(BIG));
    const notModified = await get(up.fn, { "if-none-match": '"big"' });
    expect(notModified.response.status).toBe(304);
    expect(notModified.response.headers.get("x-cache")).toBe("MISS");
    const ims = await get(up.fn, { "if-modified-since": "Tue, 01 Dec 2026 10:00:00 GMT" });
    expect(ims.response.status).toBe(304);
    const range = await get(up.fn, { range: "bytes=500000-500099" });
    expect(range.response.status).toBe(206);
    expect(range.response.headers.get("content-range")).toBe(`bytes 500000-500099/${BIG}`);
    const rangeBody = range.response.arrayBuffer();
    const body = follower.response.arrayBuffer();
    gate.allow(BIG);
    expect(new Uint8Array(await body)).toEqual(bytesOf(BIG));
    expect(new Uint8Array(await rangeBody)).toEqual(bytesOf(BIG).subarray(500000, 500100));
    const rest = await new Response(new ReadableStream({ pull: async (c) => { const r = await reader.read(); if (r.done) c.close(); else c.enqueue(r.value); } })).arrayBuffer();
    expect(rest.byteLength).toBe(BIG - 64 * 1024);
    expect(up.calls).toHaveLength(1);
    await committed();
  });

  test("a fill that fails mid-body cuts every follower's body; a request after the failure goes upstream", async () => {
    const gate = gatedBody(BIG);
    let n = 0;
    const up = instantUpstream(() => (++n === 1 ? new Response(gate.stream, { headers: headers(BIG) }) : new Response(body(BIG), { headers: headers(BIG) })));
    const leader = await get(up.fn);
    gate.allow(200 * 1024);
    const leaderBody = leader.response.arrayBuffer().then(() => "whole", () => "cut");
    await waitFor(() => (fillOf()?.written ?? 0) >= 128 * 1024, { message: "part of the body in the file" });
    const followers = await Promise.all([get(up.fn), get(up.fn), get(up.fn, { range: "bytes=0-" })]);
    const bodies = followers.map((f) => f.response.arrayBuffer().then(() => "whole", () => "cut"));
    gate.cut();
    expect(await leaderBody).toBe("cut");
    expect(await Promise.all(bodies)).toEqual(["cut", "cut", "cut"]);
    expect(up.calls).toHaveLength(1);
    await waitFor(() => tmpFiles().length === 0, { message: "the temporary file to be deleted" });
    expect(fillOf()).toBeUndefined();
    const after = await get(up.fn);
    expect(after.upstreamCalls).toBe(1);
    expect(new Uint8Array(await after.response.arrayBuffer())).toEqual(bytesOf(BIG));
  });

  test("a disk error mid-fill (the disk full): the leader and every follower get the rest of their body from the upstream (Range + If-Match), byte-exact; nothing is stored", async () => {
    // They were cut (the fill's failure ended every reader), though the upstream was fine: with
    // the cache disk full, concurrent requests for one object failed on every round.
    const LIMIT = 300 * 1024;
    failDiskAfter(LIMIT);
    const gate = gatedBody(BIG);
    const all = bytesOf(BIG);
    const up = instantUpstream((extra) => {
      if (extra.range === undefined) return new Response(gate.stream, { headers: headers(BIG) });
      const [, a, b] = /^bytes=(\d+)-(\d+)$/.exec(extra.range)!;
      if (extra["if-match"] !== '"big"') return new Response(null, { status: 412 });
      return new Response(all.slice(Number(a), Number(b) + 1), { status: 206, headers: { ...headers(Number(b) - Number(a) + 1), "content-range": `bytes ${a}-${b}/${BIG}` } });
    });
    const leader = await get(up.fn);
    const leaderReader = leader.response.body!.getReader();
    const parts: Uint8Array[] = [];
    gate.allow(200 * 1024);
    for (let got = 0; got < 192 * 1024; ) {
      const v = (await leaderReader.read()).value!;
      parts.push(v);
      got += v.byteLength;
    }
    await waitFor(() => (fillOf()?.written ?? 0) >= 128 * 1024, { message: "part of the body in the file" });
    // followers: from the start, and a range crossing the point where the disk fails
    const followers = await Promise.all([get(up.fn), get(up.fn, { range: "bytes=100000-700000" })]);
    const bodies = followers.map((f) => f.response.arrayBuffer());
    gate.allow(BIG);
    for (let r = await leaderReader.read(); !r.done; r = await leaderReader.read()) parts.push(r.value);
    expect(sha(await new Blob(parts).arrayBuffer())).toBe(sha(all));
    const [whole, ranged] = await Promise.all(bodies);
    expect(sha(whole!)).toBe(sha(all));
    expect(new Uint8Array(ranged!)).toEqual(all.subarray(100000, 700001));
    const resumed = up.calls.filter((c) => c.range !== undefined);
    expect(resumed.length).toBe(3); // the leader (reading from the file since the followers came) and both followers
    for (const c of resumed) expect(c["if-match"]).toBe('"big"');
    await waitFor(() => tmpFiles().length === 0, { message: "the temporary file to be deleted" });
    expect(disk.keys()).not.toContain("b/big.zip");
  });

  test("a reader that goes away while its resume waits for the upstream's answer aborts that request (it held an upstream connection until S3 answered)", async () => {
    failDiskAfter(300 * 1024);
    const gate = gatedBody(BIG);
    const signals: AbortSignal[] = [];
    const fn: ServeArgs["upstream"] = async (extra, signal) => {
      if (extra.range === undefined) return new Response(gate.stream, { headers: headers(BIG) });
      signals.push(signal);
      return new Promise<Response>((_resolve, reject) => signal.addEventListener("abort", () => reject(signal.reason))); // answers only when aborted
    };
    const leader = await get(fn);
    const lr = leader.response.body!.getReader();
    gate.allow(200 * 1024);
    for (let got = 0; got < 192 * 1024; ) got += (await lr.read()).value!.byteLength;
    await waitFor(() => (fillOf()?.written ?? 0) >= 128 * 1024, { message: "part of the body in the file" });
    const follower = await get(fn);
    const fr = follower.response.body!.getReader();
    const reading = (async () => {
      for (;;) if ((await fr.read()).done) return;
    })().catch(() => undefined);
    gate.allow(BIG);
    await waitFor(() => signals.length >= 1, { message: "a resume asked" });
    await fr.cancel();
    await waitFor(() => signals[0]!.aborted, { message: "the follower's resume request aborted" });
    await reading;
    await lr.cancel();
  });

  test("a slow disk (bytes the leader got not yet in the file) then a disk error: the leader and ranged followers (from an offset, a suffix) byte-exact", async () => {
    failDiskAfter(500 * 1024, { slow: true });
    const gate = gatedBody(BIG, 16 * 1024);
    const all = bytesOf(BIG);
    const up = instantUpstream((extra) => {
      if (extra.range === undefined) return new Response(gate.stream, { headers: headers(BIG) });
      const [, a, b] = /^bytes=(\d+)-(\d+)$/.exec(extra.range)!;
      return new Response(all.slice(Number(a), Number(b) + 1), { status: 206, headers: { ...headers(Number(b) - Number(a) + 1), "content-range": `bytes ${a}-${b}/${BIG}` } });
    });
    const leader = await get(up.fn);
    const lr = leader.response.body!.getReader();
    const parts: Uint8Array[] = [];
    gate.allow(400 * 1024);
    for (let got = 0; got < 400 * 1024; ) {
      const v = (await lr.read()).value!;
      parts.push(v);
      got += v.byteLength;
    }
    const followers = await Promise.all([get(up.fn), get(up.fn, { range: "bytes=450000-" }), get(up.fn, { range: "bytes=-1000" })]);
    const bodies = followers.map((f) => f.response.arrayBuffer());
    gate.allow(BIG);
    for (let r = await lr.read(); !r.done; r = await lr.read()) parts.push(r.value);
    expect(sha(await new Blob(parts).arrayBuffer())).toBe(sha(all));
    const [w, r1, r2] = await Promise.all(bodies);
    expect(sha(w!)).toBe(sha(all));
    expect(sha(r1!)).toBe(sha(all.subarray(450000)));
    expect(sha(r2!)).toBe(sha(all.subarray(BIG - 1000)));
  });

  test("after a disk error, a resume the upstream cannot give as the same object (another ETag: 412) is a cut, never another version's bytes", async () => {
    failDiskAfter(256 * 1024);
    const gate = gatedBody(BIG);
    const up = instantUpstream((extra) => (extra.range === undefined ? new Response(gate.stream, { headers: headers(BIG) }) : new Response(null, { status: 412 })));
    const leader = await get(up.fn);
    const leaderReader = leader.response.body!.getReader();
    gate.allow(200 * 1024);
    for (let got = 0; got < 192 * 1024; ) got += (await leaderReader.read()).value!.byteLength;
    await waitFor(() => (fillOf()?.written ?? 0) >= 128 * 1024, { message: "part of the body in the file" });
    const follower = await get(up.fn);
    const body = follower.response.arrayBuffer().then(() => "whole", () => "cut");
    gate.allow(BIG);
    expect(await body).toBe("cut");
    const rest = await new Response(new ReadableStream({ pull: async (c) => { const r = await leaderReader.read(); if (r.done) c.close(); else c.enqueue(r.value); } })).arrayBuffer().then(() => "whole", () => "cut");
    expect(["whole", "cut"]).toContain(rest); // the leader went on from the upstream, or (switched to the file) was cut
  });

  test("a slow follower does not hold the leader back; a leader that does not read does not hold the followers back", async () => {
    const up = instantUpstream(() => new Response(body(BIG), { headers: headers(BIG) }));
    const leader = await get(up.fn);
    // The leader has not read a byte: the follower still gets the whole body.
    const fast = await get(up.fn);
    expect(new Uint8Array(await fast.response.arrayBuffer())).toEqual(bytesOf(BIG));
    // A follower that reads one chunk and stops.
    const slow = await get(up.fn);
    const slowReader = slow.response.body!.getReader();
    const firstChunk = await slowReader.read();
    expect(firstChunk.done).toBe(false);
    // The leader reads its whole body while the slow follower is still at its first chunk.
    expect(new Uint8Array(await leader.response.arrayBuffer())).toEqual(bytesOf(BIG));
    const parts: Uint8Array[] = [firstChunk.value!];
    for (let r = await slowReader.read(); !r.done; r = await slowReader.read()) parts.push(r.value);
    expect(new Uint8Array(await new Blob(parts).arrayBuffer())).toEqual(bytesOf(BIG));
    expect(up.calls).toHaveLength(1);
  });

  test("followers that go away release the fill's read handle: no file descriptor is left open", async () => {
    const before = fdCount();
    const gate = gatedBody(BIG);
    const up = instantUpstream(() => new Response(gate.stream, { headers: headers(BIG) }));
    const leader = await get(up.fn);
    const leaderReader = leader.response.body!.getReader();
    gate.allow(256 * 1024);
    await leaderReader.read();
    const tap = fillOf()!;
    const gone = await Promise.all(Array.from({ length: 5 }, () => get(up.fn)));
    for (const f of gone) {
      const r = f.response.body!.getReader();
      await r.read();
      await r.cancel();
    }
    await waitFor(() => tap.readers === 1, { message: "only the leader reading the file" }); // the leader reads from the file now
    const stays = await get(up.fn);
    const whole = stays.response.arrayBuffer();
    gate.allow(BIG);
    expect(new Uint8Array(await whole)).toEqual(bytesOf(BIG));
    let leaderBytes = 64 * 1024;
    for (let r = await leaderReader.read(); !r.done; r = await leaderReader.read()) leaderBytes += r.value.byteLength;
    expect(leaderBytes).toBe(BIG);
    await committed();
    expect(tap.readers).toBe(0);
    await waitFor(() => fdCount() <= before, { message: () => `the file descriptors to be closed (${fdCount()} open, ${before} before)` });
    expect(up.calls).toHaveLength(1);
  });

  test("a purge during the fill: the followers that joined before it keep their body; a request after it goes upstream for the new object", async () => {
    const gate = gatedBody(BIG);
    let n = 0;
    const up = instantUpstream(() => (++n === 1 ? new Response(gate.stream, { headers: headers(BIG) }) : new Response(body(BIG), { headers: headers(BIG, { etag: '"v2"' }) })));
    const leader = await get(up.fn);
    gate.allow(128 * 1024);
    const before = await get(up.fn);
    expect(before.upstreamCalls).toBe(0);
    await cache.delete("b/big.zip");
    const after = await get(up.fn);
    expect(after.upstreamCalls).toBe(1);
    expect(after.response.headers.get("etag")).toBe('"v2"');
    const bodies = Promise.all([leader, before, after].map((r) => r.response.arrayBuffer()));
    gate.allow(BIG);
    for (const b of await bodies) expect(new Uint8Array(b)).toEqual(bytesOf(BIG));
    expect(up.calls).toHaveLength(2);
  });

  test("a waiter that joined the flight before a purge does not follow the fill the purge detached; a fill begun after the purge is followed", async () => {
    const up = controlledUpstream();
    const leaderP = get(up.fn);
    const waiterP = get(up.fn);
    await waitFor(() => up.waiting === 1);
    expect(cache.inflight.has("b/big.zip")).toBe(true);
    await cache.delete("b/big.zip");
    up.respond(new Response(body(BIG), { headers: headers(BIG) }));
    const leader = await leaderP;
    await waitFor(() => up.waiting === 1, { message: "the waiter to go upstream itself" });
    up.respond(new Response(body(BIG), { headers: headers(BIG, { etag: '"v2"' }) }));
    const waiter = await waiterP;
    expect(waiter.response.headers.get("etag")).toBe('"v2"');
    expect(waiter.upstreamCalls).toBe(1);
    // A fill that began after the purge is followed.
    const nextP = get(up.fn);
    await waitFor(() => up.waiting === 1);
    up.respond(new Response(body(BIG), { headers: headers(BIG, { etag: '"v2"' }) }));
    const next = await nextP;
    const follower = await get(up.fn);
    expect(follower).toMatchObject({ upstreamCalls: 0, following: true });
    expect(follower.response.headers.get("etag")).toBe('"v2"');
    for (const r of [leader, waiter, next, follower]) expect(new Uint8Array(await r.response.arrayBuffer())).toEqual(bytesOf(BIG));
    expect(up.calls).toHaveLength(3);
  });
});
