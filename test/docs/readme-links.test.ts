/**
 * The README's internal links: every `[text](#anchor)` names a heading, as GitHub makes its anchor
 * (lower case, punctuation dropped, spaces as `-`, a repeated heading's anchor suffixed `-1`, `-2`),
 * so a heading renamed or removed by a merge is caught here rather than by a reader.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";

setDefaultTimeout(30_000);

const README = readFileSync(join(import.meta.dir, "../../README.md"), "utf8").replace(/^```[\s\S]*?^```/gm, "");

/** GitHub's anchors of `text`'s headings. */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of text.matchAll(/^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$/gm)) {
    const slug = m[1]!.toLowerCase().replace(/<[^>]+>/g, "").replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/ /g, "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

test("every [..](#anchor) in the README names a heading", () => {
  const known = anchors(README);
  const links = [...README.matchAll(/\]\(#([^)\s]+)\)/g)].map((m) => decodeURIComponent(m[1]!));
  expect(links.length).toBeGreaterThan(0);
  expect(links.filter((a) => !known.has(a))).toEqual([]);
});

test("the anchors are GitHub's: punctuation dropped, a repeated heading numbered", () => {
  expect([...anchors("## Upgrading and rolling back\n### Cache layers\n## Known limits\n## Known limits\n#### Set up (fresh machine)\n")]).toEqual(["upgrading-and-rolling-back", "cache-layers", "known-limits", "known-limits-1", "set-up-fresh-machine"]);
});
