/**
 * A bucket's ip_filter refuses an address before the rate limits count it: an address the bucket
 * refuses spends none of the bucket's (nor the global) budget. Before, the limits counted first,
 * so an address outside a bucket's allowlist (or on its blocklist) could spend the bucket's
 * budget with 403s and the addresses the bucket serves got 429.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startProxy } from "./harness.ts";

setDefaultTimeout(30_000);

let s3: S3Fixture;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true }], credentials: [] });
  await s3.put("data", "a.txt", "aaa", { contentType: "text/plain" });
});
afterAll(async () => {
  await s3?.stop();
});

for (const engine of ["bun", "node"]) {
  test(`${engine} engine: refused addresses do not spend the bucket's or the global rate budget`, async () => {
    await using px = await startProxy(
      `server: { address: 127.0.0.1, port: 0, engine: ${engine}, trusted_proxies: [127.0.0.1/32], rate_limit: { enabled: true, global: { requests_per_second: 0.01, burst: 4 } } }\n` +
        `buckets:\n  - name: priv\n    path_prefix: /priv\n    s3: { bucket: data, endpoint: "${s3.endpoint}", rate_limit: { requests_per_second: 0.01, burst: 2 } }\n` +
        `    ip_filter: { allowlist: [10.0.0.0/8], blocklist: [10.9.0.0/16] }\n`,
    );
    const get = async (xff: string) => {
      const res = await fetch(px.url("/priv/a.txt"), { headers: { "x-forwarded-for": xff } });
      await res.arrayBuffer();
      return res.status;
    };
    const refused: number[] = [];
    for (let i = 0; i < 5; i++) refused.push(await get("203.0.113.9"), await get("10.9.1.1"));
    expect(refused).toEqual(Array(10).fill(403));
    // the bucket's budget is still whole for the addresses it serves, and then spent
    expect([await get("10.1.2.3"), await get("10.4.5.6"), await get("10.1.2.3")]).toEqual([200, 200, 429]);
  });
}
