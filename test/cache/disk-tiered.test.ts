/**
 * Memory + disk under the serving flow: streaming fills of objects too big to buffer, disk hits
 * (Content-Length, Range, X-Cache-Layer), promotion, and the failure paths of a streaming fill.
 */
import { afterAll, beforeEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cache } from "../../src/cache/cache.ts";
import { DiskLayer } from "../../src/cache/disk.ts";
import { MemoryLayer } from "../../src/cache/memory.ts";
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
