/**
 * The bun listener's route table (src/http/raw-target.ts): Bun's router keeps ~5 KB per route and
 * listener, so its size is memory: routes with one empty segment at every depth up to 32 (1,024 of
 * them, 1,152 in all) took ~10 MiB of RSS per process with two listeners (measured: two Bun.serve
 * with the table, 47.8 MiB, against 33.4 MiB with this one).
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { fallbackRewritten, MAX_DEPTH, MAX_EMPTY_DEPTH, rawPrefixPatterns, rawSegmentPatterns } from "../../src/http/raw-target.ts";

setDefaultTimeout(30_000);

test("the route table stays small: every depth without an empty segment, one empty segment up to MAX_EMPTY_DEPTH, and the wildcard routes", () => {
  const segments = rawSegmentPatterns();
  expect(segments.filter((p) => p.empty < 0)).toHaveLength(2 * MAX_DEPTH);
  expect(Math.max(...segments.filter((p) => p.empty >= 0).map((p) => p.pattern.split("/").length - 1 - (p.trailingSlash ? 1 : 0)))).toBe(MAX_EMPTY_DEPTH);
  expect(segments.length + rawPrefixPatterns().length).toBeLessThanOrEqual(200);
});

test("a URL in a form that has routes reached the fallback only because dot segments shortened it: refused; one in a form without routes is the client's", () => {
  expect(fallbackRewritten("http://h/pub/a//b")).toBe("/pub/a//b/..");
  expect(fallbackRewritten(`http://h/pub/${"d/".repeat(9)}/x`)).toBeUndefined();
  expect(fallbackRewritten("http://h/pub//a//b")).toBeUndefined();
  expect(fallbackRewritten("http://h/")).toBeUndefined();
});
