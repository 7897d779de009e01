import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { ENTRY_OVERHEAD, entryBytes, MemoryLayer } from "../../src/cache/memory.ts";
import { object } from "./helpers.ts";
import { respondFromObject } from "../../src/cache/respond.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

// body 100 + key "b/k1" (4) twice + ENTRY_OVERHEAD + "content-length"(14) + "100"(3) four times
const E = 100 + 2 * 4 + ENTRY_OVERHEAD + 4 * (14 + 3);

describe("entry accounting", () => {
  test("bytes = body + key twice + header names and values four times + overhead", () => {
    expect(ENTRY_OVERHEAD).toBe(2048);
    expect(entryBytes(object("b/k1", 100))).toBe(E);
    const o = object("b/k1", 100, { etag: '"x"', "content-type": "a/b" }); // +4+3 +12+3
    expect(entryBytes(o)).toBe(E + 4 * (7 + 15));
  });

  test("an entry's headers are counted for every copy kept of them: the record and the prebuilt 200 and 206 headers of its hits", () => {
    const meta: Record<string, string> = {};
    for (let i = 0; i < 20; i++) meta[`x-amz-meta-f${i}`] = "v".repeat(90);
    const o = object("b/k1", 1, meta);
    const held = (h: Headers) => [...h].reduce((n, [k, v]) => (k.startsWith("x-amz-meta-") ? n + k.length + v.length : n), 0);
    const served = respondFromObject(o, new Headers(), "GET", o.storedAt, "HIT");
    const ranged = respondFromObject(o, new Headers({ range: "bytes=0-0" }), "GET", o.storedAt, "HIT");
    expect([served.status, ranged.status]).toEqual([200, 206]);
    const metaBytes = held(new Headers(meta));
    expect(o.tpl?.headers && o.tpl.rangeBase).toBeDefined();
    const copies = metaBytes + held(o.tpl!.headers) + held(o.tpl!.rangeBase!);
    expect(entryBytes(o) - entryBytes(object("b/k1", 1))).toBeGreaterThanOrEqual(copies);
  });

  test("accepts() says what put() keeps: headers and key weighed as put() weighs them", () => {
    // (it weighed the body alone: an object with 2 KB of metadata was accepted, its file-backed
    // body read from disk on each hit to promote it, and then not kept)
    const limit = E + 4 * 200;
    for (const metaChars of [0, 150, 180, 190, 400, 2000]) {
      const meta = metaChars === 0 ? undefined : { "x-amz-meta-m": "v".repeat(metaChars) };
      const o = object("b/k1", 100, meta);
      const m = new MemoryLayer(limit, 1_000_000);
      const accepted = m.accepts(o.size, o.key, o.headers);
      m.put(o);
      expect([metaChars, accepted]).toEqual([metaChars, m.peek("b/k1") !== undefined]);
    }
    expect(new MemoryLayer(limit, 1_000_000).accepts(100, "b/k1", { "content-length": "100", "x-amz-meta-m": "v".repeat(400) })).toBe(false);
  });

  test("put/delete keep exact totals, per bucket too", () => {
    const m = new MemoryLayer(1_000_000, 1_000_000);
    m.put(object("b/k1", 100));
    m.put(object("b/k2", 100));
    m.put(object("c/k1", 100));
    expect(m.stats()).toMatchObject({ items: 3, bytes: 3 * E, evictions: 0, maxBytes: 1_000_000 });
    expect(m.stats().buckets).toEqual({ b: { items: 2, bytes: 2 * E, evictions: 0 }, c: { items: 1, bytes: E, evictions: 0 } });
    expect(m.delete("b/k1")).toBe(true);
    expect(m.delete("b/k1")).toBe(false);
    expect(m.stats()).toMatchObject({ items: 2, bytes: 2 * E });
  });

  test("replacing a key does not double count", () => {
    const m = new MemoryLayer(1_000_000, 1_000_000);
    m.put(object("b/k1", 100));
    m.put(object("b/k1", 100));
    m.put(object("b/k1", 200)); // E + 100
    expect(m.stats()).toMatchObject({ items: 1, bytes: E + 100 });
    expect(m.get("b/k1")!.size).toBe(200);
  });
});

describe("LRU eviction by bytes", () => {
  test("the least recently used entry goes first; get refreshes recency", () => {
    const m = new MemoryLayer(3 * E, 1_000_000);
    m.put(object("b/k1", 100));
    m.put(object("b/k2", 100));
    m.put(object("b/k3", 100));
    expect(m.stats().bytes).toBe(3 * E);
    expect(m.get("b/k1")).toBeDefined(); // k1 now most recent; k2 is LRU
    expect(m.keys()).toEqual(["b/k1", "b/k3", "b/k2"]);
    m.put(object("b/k4", 100));
    expect(m.keys()).toEqual(["b/k4", "b/k1", "b/k3"]);
    expect(m.get("b/k2")).toBeUndefined();
    expect(m.stats()).toMatchObject({ items: 3, bytes: 3 * E, evictions: 1 });
    expect(m.stats().buckets.b!.evictions).toBe(1);
  });

  test("a big entry evicts as many as needed", () => {
    const m = new MemoryLayer(3 * E, 1_000_000);
    for (const k of ["b/k1", "b/k2", "b/k3"]) m.put(object(k, 100));
    m.put(object("b/k9", 100 + E - 4)); // 2 * E bytes (its content-length has one digit more, counted four times): k1 and k2 must go
    expect(m.keys()).toEqual(["b/k9", "b/k3"]);
    expect(m.stats()).toMatchObject({ items: 2, bytes: 3 * E, evictions: 2 });
  });

  test("peek does not touch recency", () => {
    const m = new MemoryLayer(2 * E, 1_000_000);
    m.put(object("b/k1", 100));
    m.put(object("b/k2", 100));
    m.peek("b/k1");
    m.put(object("b/k3", 100));
    expect(m.peek("b/k1")).toBeUndefined();
  });

  test("items over the item limit or over the whole cache are never stored, and drop an older version", () => {
    const m = new MemoryLayer(2 * E, 150);
    m.put(object("b/k1", 100));
    m.put(object("b/k1", 151));
    expect(m.stats()).toMatchObject({ items: 0, bytes: 0, evictions: 0 });
    const tiny = new MemoryLayer(E - 1, 1_000_000);
    tiny.put(object("b/k1", 100));
    expect(tiny.stats().items).toBe(0);
  });

  test("at the exact limit it fits", () => {
    const m = new MemoryLayer(E, 100);
    m.put(object("b/k1", 100));
    expect(m.stats()).toMatchObject({ items: 1, bytes: E });
  });
});

describe("purge and resize", () => {
  test("purgePrefix by bucket, by key prefix, everything", () => {
    const m = new MemoryLayer(1_000_000, 1_000_000);
    for (const k of ["b/a/1", "b/a/2", "b/z", "bb/a", "c/x"]) m.put(object(k, 10));
    expect(m.purgePrefix("b/a/")).toBe(2);
    expect(m.purgePrefix("b/")).toBe(1); // not "bb/"
    expect(m.keys().sort()).toEqual(["bb/a", "c/x"]);
    expect(Object.keys(m.stats().buckets).sort()).toEqual(["bb", "c"]);
    expect(m.purgePrefix("")).toBe(2);
    expect(m.stats()).toMatchObject({ items: 0, bytes: 0, evictions: 0 });
  });

  test("resize evicts LRU entries down to the new size, and now-oversized items", () => {
    const m = new MemoryLayer(10 * E, 1000);
    for (let i = 0; i < 5; i++) m.put(object(`b/k${i}`, 100));
    m.put(object("b/big", 500));
    m.get("b/k0");
    m.resize(10 * E, 200); // big is now over the item limit
    expect(m.peek("b/big")).toBeUndefined();
    m.resize(2 * E);
    expect(m.keys()).toEqual(["b/k0", "b/k4"]);
    expect(m.stats()).toMatchObject({ items: 2, bytes: 2 * E, evictions: 4, maxBytes: 2 * E });
    m.put(object("b/k5", 201));
    expect(m.peek("b/k5")).toBeUndefined();
  });
});
