/**
 * If-Range on a cached object weighs Last-Modified against the upstream answer's own Date, as an
 * uncached answer is weighed (RFC 9110 §8.8.2.2: strong only a second or more before it). The
 * cache measured it against the time it stored the copy, by the proxy's clock: an upstream whose
 * clock is behind the proxy's, answering in the second the object was written, had its
 * Last-Modified taken for strong once cached (206 of bytes another write of that second may have
 * replaced) where the uncached bucket answered 200 whole. Kept with the entry in every layer.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeHead, encodeHead, HEAD_BYTES } from "../../src/cache/disk-format.ts";
import { decodeEntry, encodeEntry } from "../../src/cache/redis-format.ts";
import { startRawStore, type RawStore } from "../helpers/raw-store.ts";
import { waitFor } from "../helpers/wait.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

// The upstream's clock says the object was written in the second it answers (its Date equals
// Last-Modified); the proxy's clock is years ahead of it.
const LM = "Wed, 01 Jan 2025 00:00:00 GMT";
const BODY = "abcdefghijklmnopqrstuvwxyz";
let store: RawStore;
const dir = mkdtempSync(join(tmpdir(), "yata-ifr-date-"));

beforeAll(async () => {
  store = await startRawStore(() => ({ bytes: `HTTP/1.1 200 OK\r\nDate: ${LM}\r\nETag: "abc"\r\nLast-Modified: ${LM}\r\nCache-Control: max-age=600\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`, end: false }));
});
afterAll(() => {
  store?.close();
  rmSync(dir, { recursive: true, force: true });
});

for (const layers of ["[memory]", "[disk]"]) {
  describe(`cache_layers ${layers}`, () => {
    let px: InProcessProxy;
    beforeAll(async () => {
      const b = (name: string, extra = "") => bucketYaml({ name, prefix: `/${name}`, bucket: "data", endpoint: `http://127.0.0.1:${store.port}`, key: "AKIAIFRANGEDATE", secret: "s3cret-if-range-date", extra });
      px = await startInProcess(`server: { address: 127.0.0.1, port: 0 }\ncache:\n  cache_layers: ${layers}\n${layers === "[disk]" ? `  disk: { path: ${join(dir, "disk")} }\n` : ""}buckets:\n${b("plain")}${b("cached", "    cache: { enabled: true }\n")}`);
    });
    afterAll(async () => {
      await px?.stop();
    });

    test("a Last-Modified not a second before the upstream's Date is weak on a cached object too: 200 whole, as uncached", async () => {
      expect((await fetch(px.url("/cached/k"))).headers.get("x-cache")).toBe("MISS"); // (the fill)
      // (a disk fill's file is indexed once written: a HIT from then on)
      await waitFor(async () => (await fetch(px.url("/cached/k"))).headers.get("x-cache") === "HIT", { message: "a HIT" });
      const seen: string[] = [];
      for (const path of ["/plain/k", "/cached/k", "/cached/k"]) {
        const res = await fetch(px.url(path), { headers: { range: "bytes=0-3", "if-range": LM } });
        seen.push(`${path} ${res.status} ${res.headers.get("x-cache")} ${await res.text()}`);
      }
      expect(seen).toEqual([`/plain/k 200 null ${BODY}`, `/cached/k 200 HIT ${BODY}`, `/cached/k 200 HIT ${BODY}`]);
    });
  });
}

test("the upstream's Date is kept in a disk file's head and a Redis entry; an entry written before has none", () => {
  const meta = { key: "b/k", headers: { "content-length": "3" }, storedAt: 2000, expiresAt: 3000, date: 1000, size: 3 };
  const head = encodeHead(meta);
  expect((decodeHead(head, head.byteLength + 3) as { date?: number }).date).toBe(1000);
  const undated = encodeHead({ ...meta, date: undefined });
  expect((decodeHead(undated, undated.byteLength + 3) as { date?: number }).date).toBeUndefined();
  expect(head.byteLength).toBeGreaterThan(HEAD_BYTES);
  const entry = decodeEntry(encodeEntry({ ...meta, body: new Blob([]), tpl: undefined }, new Uint8Array(3)), "b/k");
  expect(typeof entry === "string" ? entry : entry.date).toBe(1000);
});
