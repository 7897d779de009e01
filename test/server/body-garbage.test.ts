import { expect, test, setDefaultTimeout } from "bun:test";
import { bodyGarbageWatch, collectWhenIdle, idleCollector } from "../../src/server/body-garbage.ts";

setDefaultTimeout(30_000);

const MiB = 1 << 20;

test("a full collection runs only once the RSS has grown 40 MiB past where the last one left it, read once per 4 MiB of body", () => {
  let rss = 100 * MiB;
  let reads = 0;
  const collections: number[] = [];
  const watch = bodyGarbageWatch(
    () => (reads++, rss),
    () => {
      collections.push(rss);
      rss -= 30 * MiB; // what the collection frees
    },
  );
  // 1 MiB chunks, each leaving 1 MiB of garbage behind
  const feed = (mib: number) => {
    for (let i = 0; i < mib; i++) {
      rss += MiB;
      watch(MiB);
    }
  };
  feed(3);
  expect(reads).toBe(0); // under 4 MiB of body: the RSS is not even read
  feed(1);
  expect(reads).toBe(1); // the floor: 104 MiB
  feed(36);
  expect(collections).toEqual([]); // 140 MiB: 36 MiB past the floor
  feed(4);
  expect(collections).toEqual([144 * MiB]); // 40 MiB past it: collected, the floor now 114 MiB
  feed(36);
  expect(collections).toHaveLength(1);
  feed(4);
  expect(collections).toEqual([144 * MiB, 154 * MiB]);
});

test("an RSS that falls (a collection of the runtime's own) lowers the floor growth is measured from", () => {
  let rss = 200 * MiB;
  let collected = 0;
  const watch = bodyGarbageWatch(() => rss, () => collected++);
  watch(4 * MiB); // floor 200
  rss = 120 * MiB;
  watch(4 * MiB); // floor 120
  rss = 190 * MiB;
  watch(4 * MiB);
  expect(collected).toBe(1); // 70 MiB past 120, though under 200 + 40
});

test("the idle collector: one full collection when a burst that grew the RSS 8 MiB ends, none under load, none again while idle", () => {
  let rss = 90 * MiB;
  let cpuUs = 0;
  const collections: number[] = [];
  const tick = idleCollector({
    rss: () => rss,
    cpuMicros: () => cpuUs,
    collect: () => {
      collections.push(rss);
      rss = 90 * MiB; // the burst's garbage freed
    },
  });
  const second = (busy: boolean, growMiB = 0) => {
    cpuUs += busy ? 900_000 : 1_000; // 90 % / 0.1 % of a core
    rss += growMiB * MiB;
    return tick(1_000);
  };
  expect(second(false)).toBe(false); // the floor: 90 MiB
  // under load the RSS grows (a burst's garbage): never collected while busy
  for (let i = 0; i < 30; i++) expect(second(true, 1)).toBe(false);
  expect(collections).toEqual([]);
  // the first idle second: one collection
  expect(second(false)).toBe(true);
  expect(collections).toEqual([120 * MiB]);
  // idle from then on: nothing more, however long
  for (let i = 0; i < 100; i++) expect(second(false)).toBe(false);
  expect(collections).toHaveLength(1);
  // growth under 8 MiB past the floor (a cache filling a little) is left alone
  for (let i = 0; i < 7; i++) second(true, 1);
  expect(second(false)).toBe(false);
  // a second burst: one more
  second(true, 2);
  expect(second(false)).toBe(true);
  expect(collections).toHaveLength(2);
});

test("the idle collector's timer is unref'd and stops", async () => {
  let reads = 0;
  const stop = collectWhenIdle({ rss: () => (reads++, 0), cpuMicros: () => 0, collect: () => {}, everyMs: 5 });
  while (reads < 3) await Bun.sleep(5);
  stop();
  const at = reads;
  await Bun.sleep(30);
  expect(reads).toBe(at);
});

test("an RSS that cannot be read (no file descriptor left for /proc) skips the check: neither watch throws, and both go on once it can be read", () => {
  let rss = 100 * MiB;
  let failing = true;
  const read = () => {
    if (failing) throw new Error("Failed to get memory usage");
    return rss;
  };
  let collections = 0;
  const watch = bodyGarbageWatch(read, () => collections++);
  const tick = idleCollector({ rss: read, cpuMicros: () => 0, collect: () => collections++ });
  expect(() => watch(64 * MiB)).not.toThrow();
  expect(tick(1000)).toBe(false);
  failing = false;
  watch(64 * MiB);
  tick(1000);
  rss += 64 * MiB;
  watch(64 * MiB);
  expect(tick(1000)).toBe(true);
  expect(collections).toBe(2);
});

test("the idle collector backs off when its collections free little (live growth: a memory cache filling under light load), and comes back to 8 MiB once one frees garbage again", () => {
  let rss = 100 * MiB;
  let collections = 0;
  let frees = 0; // what the next collection frees
  const tick = idleCollector({ rss: () => rss, cpuMicros: () => 0, collect: () => (collections++, (rss -= frees)) });
  tick(1000);
  // 160 MiB of live growth, 8 MiB per idle second: without the back-off, 20 full collections
  for (let i = 0; i < 20; i++) {
    rss += 8 * MiB;
    tick(1000);
  }
  expect(collections).toBeGreaterThanOrEqual(3);
  expect(collections).toBeLessThanOrEqual(5);
  // A burst's garbage again: collected, and the threshold is 8 MiB once more
  const before = collections;
  frees = 72 * MiB;
  rss += 72 * MiB; // past the back-off's ceiling (64 MiB)
  tick(1000);
  expect(collections).toBe(before + 1);
  frees = 8 * MiB;
  rss += 8 * MiB;
  expect(tick(1000)).toBe(true);
});
