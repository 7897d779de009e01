/**
 * Both upstream clients (server.upstream_client: auto → the own HTTP/1.1 pool for this http
 * endpoint; fetch → Bun's fetch) give the same answers against the real S3 fixture. Every other
 * e2e test runs with the default (auto), so this file keeps the fetch path covered too.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const A = { accessKeyId: "AKIAKEYAAAAAAAAAAAAA", secretAccessKey: "secretA/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
const BODY = "0123456789abcdefghij";
const BIG = 3 * 1024 * 1024 + 17; // above the 1 MiB buffer threshold set below: streamed

let s3: S3Fixture;
const proxies: Record<string, ProxyProcess> = {};
let etag = "";

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "priv" }], credentials: [{ ...A, buckets: ["priv"] }] });
  etag = (await s3.put("priv", "d.txt", BODY, { contentType: "text/plain" })).etag;
  const big = new Uint8Array(BIG);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  await s3.put("priv", "big.bin", big);
  const buckets = [
    bucketYaml({ name: "priv", prefix: "/priv", bucket: "priv", endpoint: s3.endpoint, key: A.accessKeyId, secret: A.secretAccessKey }),
    bucketYaml({ name: "wrong", prefix: "/wrong", bucket: "priv", endpoint: s3.endpoint, key: A.accessKeyId, secret: "not-the-right-secret-at-all-0000000000000" }),
  ].join("");
  for (const client of ["auto", "fetch"]) {
    proxies[client] = await startProxy(`server: { address: 127.0.0.1, port: 0, upstream_client: ${client}, buffer_threshold_bytes: 1048576 }\nbuckets:\n${buckets}`);
  }
});
afterAll(async () => {
  for (const p of Object.values(proxies)) await p.stop();
  await s3?.stop();
});

for (const client of ["auto", "fetch"]) {
  describe(`upstream_client: ${client}`, () => {
    const url = (p: string) => proxies[client].url(p);

    test("GET: body, Content-Length, ETag, Content-Type", async () => {
      const r = await fetch(url("/priv/d.txt"));
      expect(r.status).toBe(200);
      expect(await r.text()).toBe(BODY);
      expect(r.headers.get("content-length")).toBe(String(BODY.length));
      expect(r.headers.get("etag")).toBe(etag);
      expect(r.headers.get("content-type")).toBe("text/plain");
    });

    test("HEAD, Range and If-None-Match", async () => {
      const h = await fetch(url("/priv/d.txt"), { method: "HEAD" });
      expect(h.status).toBe(200);
      expect(h.headers.get("content-length")).toBe(String(BODY.length));
      const r = await fetch(url("/priv/d.txt"), { headers: { range: "bytes=5-9" } });
      expect(r.status).toBe(206);
      expect(r.headers.get("content-range")).toBe(`bytes 5-9/${BODY.length}`);
      expect(await r.text()).toBe("56789");
      const c = await fetch(url("/priv/d.txt"), { headers: { "if-none-match": etag } });
      expect(c.status).toBe(304);
    });

    test("S3 errors map the same way: 404 NoSuchKey, 403 on a wrong secret", async () => {
      const nf = await fetch(url("/priv/missing.txt"));
      expect(nf.status).toBe(404);
      expect(((await nf.json()) as { error: string }).error).toBe("NoSuchKey");
      const wrong = await fetch(url("/wrong/d.txt"));
      expect(wrong.status).toBe(403);
      await wrong.arrayBuffer();
    });

    test("an object above the buffer threshold streams intact", async () => {
      const r = await fetch(url("/priv/big.bin"));
      expect(r.status).toBe(200);
      const got = new Uint8Array(await r.arrayBuffer());
      expect(got.length).toBe(BIG);
      let bad = -1;
      for (let i = 0; i < got.length; i++) if (got[i] !== ((i * 7) & 0xff)) { bad = i; break; }
      expect(bad).toBe(-1);
    });

    test("many concurrent requests all succeed (keep-alive reuse under load)", async () => {
      const rs = await Promise.all(Array.from({ length: 40 }, () => fetch(url("/priv/d.txt")).then(async (r) => [r.status, await r.text()])));
      for (const r of rs) expect(r).toEqual([200, BODY]);
    });
  });
}
