/**
 * A reload that leaves the rate limits as they were keeps the budgets spent so far (README:
 * server.rate_limit), also when it adds or removes a bucket that has no `s3.rate_limit` of its
 * own: until 2026-12-06 any change to the bucket list built a new limiter, and every client got a
 * fresh burst (per address and global) from a reload that only added a bucket.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { nullLogger as quiet } from "../../src/observe/log.ts";

setDefaultTimeout(30_000);

const bucket = (name: string, extra = "") => `  - { name: ${name}, path_prefix: /${name}, s3: { bucket: bkt, endpoint: "http://127.0.0.1:9"${extra} } }\n`;
const yaml = (buckets: string) =>
  `server:\n  address: 127.0.0.1\n  port: 0\n  rate_limit: { global: { requests_per_second: 0.001, burst: 5 }, per_ip: { requests_per_second: 0.001, burst: 2 } }\nbuckets:\n${buckets}`;

test("adding or removing a bucket without its own rate limit keeps the spent budgets; changing a bucket's limit builds new ones", async () => {
  const first = yaml(bucket("a", ", rate_limit: { requests_per_second: 0.001, burst: 3 }"));
  const app = await App.create(parseConfig(first, { env: {} }), { log: quiet, probeIntervalMs: 600_000 });
  try {
    const check = () => app.runtime.limiter!.check("192.0.2.1", "a");
    expect([(await check()).ok, (await check()).ok, (await check()).ok]).toEqual([true, true, false]);
    const reload = async (text: string) => expect((await app.reload(undefined, { text, file: "reload.yaml", baseDir: "/tmp" })).ok).toBe(true);
    await reload(yaml(bucket("a", ", rate_limit: { requests_per_second: 0.001, burst: 3 }") + bucket("b")));
    expect((await check()).ok).toBe(false);
    await reload(first);
    expect((await check()).ok).toBe(false);
    // a limit that changes: new budgets
    await reload(yaml(bucket("a", ", rate_limit: { requests_per_second: 0.001, burst: 4 }")));
    expect((await check()).ok).toBe(true);
  } finally {
    app.close();
  }
});
