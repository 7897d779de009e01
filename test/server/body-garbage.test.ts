import { expect, test } from "bun:test";
import { bodyGarbageWatch } from "../../src/server/body-garbage.ts";

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
