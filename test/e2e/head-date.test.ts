/**
 * Every HEAD answer carries `Date`, on both engines, as the GET's does (RFC 9110 §6.6.1; S3 sends
 * it on every HeadObject). Bun.serve 1.4.5 sends none on a HEAD answer of its own: the bun engine
 * adds it (src/server.ts headAnswer).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

setDefaultTimeout(30_000);

let s3: S3Fixture;
const proxies: Record<string, ProxyProcess> = {};

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true }], credentials: [] });
  await s3.put("data", "obj.txt", "hello", { contentType: "text/plain" });
  for (const engine of ["bun", "node"]) {
    proxies[engine] = await startProxy(
      `server: { address: 127.0.0.1, port: 0, engine: ${engine} }\nbuckets:\n  - name: data\n    path_prefix: /data\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n`,
    );
  }
});
afterAll(async () => {
  for (const px of Object.values(proxies)) await px.stop();
  await s3?.stop();
});

for (const engine of ["bun", "node"]) {
  for (const [what, path] of [
    ["an object", "/data/obj.txt"],
    ["a missing key", "/data/nope.txt"],
    ["/health", "/health"],
  ] as const) {
    test(`${engine} engine: a HEAD of ${what} carries a Date, as its GET does`, async () => {
      const px = proxies[engine];
      const get = await fetch(px.url(path));
      await get.arrayBuffer();
      const head = await fetch(px.url(path), { method: "HEAD" });
      expect(head.status).toBe(get.status);
      expect(get.headers.get("date")).not.toBeNull();
      const date = head.headers.get("date");
      expect(date).not.toBeNull();
      expect(Math.abs(Date.parse(date!) - Date.now())).toBeLessThan(10_000);
    });
  }
}
