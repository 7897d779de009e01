/**
 * A request admitted before a purge of its key (a write through either front, a reload that
 * pointed its bucket at another store) that reaches the cache only after it (held by its
 * authorizer, say): it may be answered from what it reads (it began before the purge), but
 * nothing it reads is stored in any layer (memory, disk, Redis), nor shared with a request
 * admitted after the purge (no joinable flight, no streaming fill to follow). Before, the flight
 * took its purge point when it started, after the purge: the old object was stored (stamped as
 * the new store's on disk and in Redis) and served as a HIT from then on, and later requests
 * joined its flight.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cache } from "../../src/cache/cache.ts";
import { DiskLayer } from "../../src/cache/disk.ts";
import { MemoryLayer } from "../../src/cache/memory.ts";
import { RedisLayer } from "../../src/cache/redis.ts";
import { serveWithCache, type ServeArgs } from "../../src/cache/serve.ts";
import type { CacheLayer } from "../../src/cache/types.ts";
import { startRedis, type RedisServer } from "../fixtures/services.ts";
import { waitFor } from "../helpers/wait.ts";
import { controlledUpstream } from "./helpers.ts";

setDefaultTimeout(30_000);

let redis: RedisServer;
const root = mkdtempSync(join(tmpdir(), "yata-admitted-"));
const open: Cache[] = [];
let n = 0;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await Promise.all(open.map((c) => c.close()));
  await redis?.stop();
  rmSync(root, { recursive: true, force: true });
});

const MEM_ITEM = 64 * 1024;
const BIG = 256 * 1024; // over the buffer limit: a streaming fill (disk)
const policy = { ttlSeconds: 600, defaultTtlSeconds: 3600, maxItemBytes: 8 << 20, bufferBytes: MEM_ITEM };

type Setup = "memory" | "memory+disk" | "memory+redis";

/** A cache of `setup`'s layers, each layer's stores of the key recorded (put, openWriter, Redis's putIf). */
function makeCache(setup: Setup): { cache: Cache; stores: string[] } {
  const layers: CacheLayer[] = [new MemoryLayer(16 << 20, MEM_ITEM)];
  if (setup === "memory+disk") layers.push(new DiskLayer({ dir: join(root, `d${++n}`), maxBytes: 64 << 20, maxItemBytes: 8 << 20 }));
  if (setup === "memory+redis") layers.push(new RedisLayer({ url: redis.url, keyPrefix: `adm${++n}:`, maxItemBytes: 1 << 20, connectTimeoutMs: 500, operationTimeoutMs: 500 }));
  const stores: string[] = [];
  for (const l of layers) {
    const put = l.put.bind(l);
    l.put = (obj) => {
      stores.push(`${l.name}.put ${obj.headers.etag}`);
      return put(obj);
    };
    const openWriter = l.openWriter?.bind(l);
    if (openWriter) l.openWriter = (meta) => (stores.push(`${l.name}.openWriter ${meta.headers.etag}`), openWriter(meta));
    const putIf = l.putIf?.bind(l);
    if (putIf) l.putIf = (obj, token, store) => (stores.push(`${l.name}.putIf ${obj.headers.etag}`), putIf(obj, token, store));
  }
  const cache = new Cache(layers);
  open.push(cache);
  return { cache, stores };
}

const object = (store: "old" | "new", size: number) =>
  new Response(new Uint8Array(size).fill(store === "old" ? 1 : 2), { headers: { etag: `"${store}"`, "content-length": String(size), "content-type": "application/octet-stream" } });
const storeOf = async (r: Response) => ((await r.arrayBuffer()).byteLength > 0 ? (r.headers.get("etag") ?? "") : "");

function serve(cache: Cache, upstream: ServeArgs["upstream"], since?: number) {
  return serveWithCache({ cache, bucket: "b", key: "k", method: "GET", reqHeaders: new Headers(), policy, upstream, since });
}

const purges = {
  write: (c: Cache) => c.delete("b/k"), // a PUT or DELETE through either front
  reload: (c: Cache) => c.purgeBucket("b"), // a reload that points the bucket at another store
};

for (const setup of ["memory", "memory+disk", "memory+redis"] as Setup[]) {
  for (const size of setup === "memory+disk" ? [1000, BIG] : [1000]) {
    const what = size === BIG ? " (a streaming fill)" : "";
    describe(`${setup}${what}`, () => {
      for (const [purge, run] of Object.entries(purges)) {
        test(`a request admitted before a ${purge} purge and reaching the cache after it is answered, but stores nothing; the next request is a MISS of the new object`, async () => {
          const { cache, stores } = makeCache(setup);
          const oldUp = controlledUpstream();
          const newUp = controlledUpstream();
          const since = cache.epoch; // admitted here, then held (its authorizer) ...
          await run(cache); // ... across the purge
          const held = serve(cache, oldUp.fn, since);
          await waitFor(() => oldUp.waiting === 1, { message: "the held request's upstream GET" });
          oldUp.respond(object("old", size));
          expect(await storeOf((await held).response)).toBe('"old"');
          await cache.idle();
          expect(stores).toEqual([]);

          const later = serve(cache, newUp.fn);
          await waitFor(() => newUp.waiting === 1, { message: "the later request's own upstream GET" });
          newUp.respond(object("new", size));
          const r = await later;
          expect(r.cacheStatus).toBe("MISS");
          expect(await storeOf(r.response)).toBe('"new"');
          await cache.idle();
          const hit = await waitFor(async () => {
            const h = await serve(cache, newUp.fn);
            return h.cacheStatus === "HIT" ? h : (await h.response.arrayBuffer(), false);
          }, { message: "the new object stored" });
          expect(await storeOf(hit.response)).toBe('"new"');
        });

        test(`after a ${purge} purge, a request admitted after it never joins the flight of one admitted before it`, async () => {
          const { cache } = makeCache(setup);
          const oldUp = controlledUpstream();
          const newUp = controlledUpstream();
          const since = cache.epoch;
          await run(cache);
          const held = serve(cache, oldUp.fn, since);
          await waitFor(() => oldUp.waiting === 1, { message: "the held request's upstream GET" });
          const later = serve(cache, newUp.fn);
          await waitFor(() => newUp.waiting === 1, { message: "the later request's own upstream GET (not the held request's flight)" });
          newUp.respond(object("new", size));
          oldUp.respond(object("old", size));
          expect(await storeOf((await later).response)).toBe('"new"');
          expect(await storeOf((await held).response)).toBe('"old"');
          await cache.idle();
          const again = serve(cache, newUp.fn);
          const r = await again;
          expect(await storeOf(r.response)).toBe('"new"');
        });
      }
    });
  }
}

test("a request admitted after a purge joins the flight of another admitted after it (coalescing is kept)", async () => {
  const { cache } = makeCache("memory");
  const up = controlledUpstream();
  await cache.purgeBucket("b");
  const a = serve(cache, up.fn, cache.epoch);
  const b = serve(cache, up.fn, cache.epoch);
  await waitFor(() => up.waiting === 1);
  up.respond(object("new", 1000));
  expect([await storeOf((await a).response), await storeOf((await b).response)]).toEqual(['"new"', '"new"']);
  expect(up.calls).toHaveLength(1);
});
