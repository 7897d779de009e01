/**
 * An upstream 304 that carries a Content-Length (here 0, for a 26-byte object) was relayed with it
 * by an uncached bucket (and a cached bucket's BYPASS), where a cached bucket's 304 has none: a
 * hit and a miss answered differently, and a 304 saying 0 for an object whose 200 says 26 is what
 * RFC 9110 §8.6 forbids (a cache in front that takes it, against RFC 9111 §3.2, truncates its
 * copy). A relayed 304 now carries no Content-Length, as the cache's own, on both engines.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startRawStore, type RawStore } from "../helpers/raw-store.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const LM = "Wed, 01 Jan 2025 00:00:00 GMT";
const BODY = "abcdefghijklmnopqrstuvwxyz";
let store: RawStore;

beforeAll(async () => {
  store = await startRawStore((head) =>
    /\r\nif-none-match:/i.test(head)
      ? { bytes: `HTTP/1.1 304 Not Modified\r\nETag: "abc"\r\nLast-Modified: ${LM}\r\nCache-Control: max-age=60\r\nContent-Length: 0\r\n\r\n`, end: false }
      : { bytes: `HTTP/1.1 200 OK\r\nETag: "abc"\r\nLast-Modified: ${LM}\r\nCache-Control: max-age=60\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`, end: false },
  );
});
afterAll(() => store?.close());

for (const engine of ["bun", "node"] as const) {
  describe(`engine ${engine}`, () => {
    let px: InProcessProxy;
    beforeAll(async () => {
      const b = (name: string, extra = "") => bucketYaml({ name, prefix: `/${name}`, bucket: "data", endpoint: `http://127.0.0.1:${store.port}`, key: "AKIA304LENGTH", secret: "s3cret-304-length", extra });
      px = await startInProcess(`server: { address: 127.0.0.1, port: 0, engine: ${engine} }\ncache: { enabled: true }\nbuckets:\n${b("plain")}${b("cached", "    cache: { enabled: true }\n")}`);
    });
    afterAll(async () => {
      await px?.stop();
    });

    test("a relayed 304 carries the validators and Cache-Control, and no Content-Length, as the cache's own 304", async () => {
      const seen: string[] = [];
      // the uncached bucket (relayed), the cached one's miss and hit (built by the cache), and its BYPASS (relayed)
      for (const [path, extra] of [["/plain/k", {}], ["/cached/k", {}], ["/cached/k", {}], ["/cached/other", { "cache-control": "no-store" }]] as const) {
        const res = await fetch(px.url(path), { headers: { "if-none-match": '"abc"', ...extra } });
        expect(await res.text()).toBe("");
        seen.push(`${path} ${res.status} etag=${res.headers.get("etag")} cc=${res.headers.get("cache-control")} lm=${res.headers.get("last-modified") === LM} length=${res.headers.get("content-length")}`);
      }
      expect(seen).toEqual([
        `/plain/k 304 etag="abc" cc=max-age=60 lm=true length=null`,
        `/cached/k 304 etag="abc" cc=max-age=60 lm=true length=null`,
        `/cached/k 304 etag="abc" cc=max-age=60 lm=true length=null`,
        `/cached/other 304 etag="abc" cc=max-age=60 lm=true length=null`,
      ]);
      // (the object itself is still answered whole, with its length)
      const whole = await fetch(px.url("/plain/k"));
      expect([whole.status, whole.headers.get("content-length"), await whole.text()]).toEqual([200, String(BODY.length), BODY]);
    });
  });
}
