import { expect, test, setDefaultTimeout } from "bun:test";
import { readableListing } from "../../../src/fronts/s3/list.ts";

setDefaultTimeout(30_000);

const top = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>`;
const entry = (key: string) => `<Contents><Key>${key}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>"e"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents >`;
const listing = (entries: string) => `${top}${entries}</ListBucketResult >`;

test("end tags written with white space before > (</Contents >) are made exact, and a key's CDATA text holding `</x >` is relayed as stored (it was rewritten to `</x>`)", () => {
  const out = readableListing(listing(entry("<![CDATA[a</x >b]]>") + entry("plain")), "ListBucketResult", "");
  expect(out).toContain("<Key><![CDATA[a</x >b]]></Key>");
  expect(out).not.toContain("</Contents >");
  expect(out.endsWith("</Contents></ListBucketResult>")).toBe(true);
});

test("a hostile listing of that shape (CDATA full of `</x >`, every end tag spaced) is read in linear time: 16 MiB takes about 4 times 4 MiB", () => {
  const of = (bytes: number) => {
    const one = entry(`<![CDATA[${"</x >".repeat(150)}]]>`);
    return listing(one.repeat(Math.floor((bytes - top.length - 64) / one.length)));
  };
  // (CPU time, best of three: wall time under a loaded host's other processes made the ratio swing
  // past the bound; a quadratic reader is ~16 here, a linear one ~4)
  const time = (xml: string) => {
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const t = process.cpuUsage();
      readableListing(xml, "ListBucketResult", "");
      const d = process.cpuUsage(t);
      best = Math.min(best, d.user + d.system);
    }
    return best;
  };
  const small = of(4 * 1024 * 1024);
  const big = of(16 * 1024 * 1024 - 1024);
  expect(readableListing(small, "ListBucketResult", "")).toContain(`<Key><![CDATA[${"</x >".repeat(150)}]]></Key>`);
  const [s, b] = [time(small), time(big)];
  const ratio = b / s;
  expect(ratio).toBeLessThan(7);
});
