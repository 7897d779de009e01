/**
 * If-Range holds on every bucket, cached or not, whatever the upstream does with the header (S3
 * does not document it; the fixture, like s3rver, ignores it). A client resuming a download with a
 * stale validator must get the whole current object (200), never a 206 of the new bytes.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const KEY = { accessKeyId: "AKIAIFRANGE000000000", secretAccessKey: "if-range-secret-0123456789abcdefghijklmn" };
let s3: S3Fixture;
let px: ProxyProcess;
const OLD_DATE = "Mon, 01 Jan 2001 00:00:00 GMT";

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "ifr" }], credentials: [{ ...KEY, buckets: ["ifr"] }] });
  const creds = { endpoint: s3.endpoint, key: KEY.accessKeyId, secret: KEY.secretAccessKey };
  px = await startProxy(
    `server: { address: 127.0.0.1, port: 0 }\ncache: { enabled: true }\nbuckets:\n` +
      bucketYaml({ name: "plain", prefix: "/plain", bucket: "ifr", ...creds }) +
      bucketYaml({ name: "cached", prefix: "/cached", bucket: "ifr", ...creds, extra: "    cache: { enabled: true }\n" }),
  );
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

for (const prefix of ["/plain", "/cached"]) {
  describe(`If-Range on ${prefix}`, () => {
    let n = 0;
    /** A fresh key per test (the cached bucket must not have it yet), replaced after the client saw v1. */
    async function replaced(): Promise<{ path: string; oldEtag: string; v2: string; newEtag: string; newLastModified: string }> {
      const key = `obj-${prefix.slice(1)}-${n++}.txt`;
      const { etag: oldEtag } = await s3.put("ifr", key, "version-one-0123456789");
      const v2 = "VERSION-TWO-abcdefghijklmnopqrstuvwxyz";
      const { etag: newEtag } = await s3.put("ifr", key, v2);
      expect(newEtag).not.toBe(oldEtag);
      // Written a minute ago: a Last-Modified a second or more before the answer's Date is a
      // strong validator (RFC 9110 §8.8.2.2), as If-Range requires of a date.
      s3.setLastModified("ifr", key, new Date(Date.now() - 60_000));
      // Last-Modified through the uncached bucket, so the cached bucket has not seen the key yet
      // (its range requests then take the cache's bypass path to the upstream).
      const ph = await fetch(px.url(`/plain/${key}`), { method: "HEAD" });
      return { path: `${prefix}/${key}`, oldEtag, v2, newEtag, newLastModified: ph.headers.get("last-modified")! };
    }

    test("a stale entity-tag → 200 with the whole current object", async () => {
      const o = await replaced();
      const res = await fetch(px.url(o.path), { headers: { range: "bytes=5-9", "if-range": o.oldEtag } });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(o.v2);
      expect(res.headers.get("etag")).toBe(o.newEtag);
    });

    test("the current entity-tag → 206 of the range", async () => {
      const o = await replaced();
      const res = await fetch(px.url(o.path), { headers: { range: "bytes=5-9", "if-range": o.newEtag } });
      expect(res.status).toBe(206);
      expect(await res.text()).toBe(o.v2.slice(5, 10));
    });

    test("a date that is not Last-Modified → 200 whole; the exact Last-Modified → 206", async () => {
      const o = await replaced();
      const stale = await fetch(px.url(o.path), { headers: { range: "bytes=0-3", "if-range": OLD_DATE } });
      expect(stale.status).toBe(200);
      expect(await stale.text()).toBe(o.v2);
      const current = await fetch(px.url(o.path), { headers: { range: "bytes=0-3", "if-range": o.newLastModified } });
      expect(current.status).toBe(206);
      expect(await current.text()).toBe(o.v2.slice(0, 4));
    });

    test("the exact Last-Modified when it is not a second or more before the answer's Date → 200 whole (a weak date)", async () => {
      const o = await replaced();
      // (in the future: the same second as the upstream's Date would depend on the clock's ticking)
      const now = new Date(Math.floor(Date.now() / 1000) * 1000 + 5_000);
      s3.setLastModified("ifr", o.path.slice(prefix.length + 1), now);
      const lm = now.toUTCString();
      const res = await fetch(px.url(o.path), { headers: { range: "bytes=0-3", "if-range": lm } });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(o.v2);
    });

    test("a weak entity-tag never matches → 200 whole", async () => {
      const o = await replaced();
      const res = await fetch(px.url(o.path), { headers: { range: "bytes=0-3", "if-range": `W/${o.newEtag}` } });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(o.v2);
    });

    test("a list or `*` is no If-Range validator, even with the current tag first → 200 whole", async () => {
      const o = await replaced();
      for (const ifRange of [`${o.newEtag}, ${o.oldEtag}`, `${o.newEtag} ${o.oldEtag}`, "*"]) {
        // (a cached copy must answer as the upstream path does: fetch twice)
        for (let i = 0; i < 2; i++) {
          const res = await fetch(px.url(o.path), { headers: { range: "bytes=0-3", "if-range": ifRange } });
          expect(`${ifRange}: ${res.status}`).toBe(`${ifRange}: 200`);
          expect(await res.text()).toBe(o.v2);
        }
      }
    });

    test("a stale entity-tag with a range past the new end → 200 whole, not 416", async () => {
      const o = await replaced();
      const res = await fetch(px.url(o.path), { headers: { range: "bytes=1000-2000", "if-range": o.oldEtag } });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(o.v2);
    });

    test("the current entity-tag with a range past the end → 416", async () => {
      const o = await replaced();
      const res = await fetch(px.url(o.path), { headers: { range: "bytes=1000-2000", "if-range": o.newEtag } });
      expect(res.status).toBe(416);
      await res.text();
    });
  });
}
