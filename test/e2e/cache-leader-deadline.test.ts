/**
 * A fill is shared by every request that joins its flight: its leader's server.request_timeout
 * must not cut it. The leader is held by its authorizer (opa latency), so its deadline falls while
 * the fill waits for a slow upstream; a request that joined the fill has time left and gets the
 * object. (Under the leader's timing, the fill was cut with the leader, and the waiter got 504
 * "took longer than the proxy allows" well within its own deadline.)
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { OpaServer } from "../fixtures/opa.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
let px: InProcessProxy;
const opa = OpaServer.start({ "yatagarasu/allow": () => true });

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "slow-bucket", public: true }], credentials: [] });
  await s3.put("slow-bucket", "slow.txt", "the slow object");
  px = await startInProcess(
    `server: { address: 127.0.0.1, port: 0, readiness_probe_interval_seconds: 3600, request_timeout: 2 }\nlogging: { level: warn }\nbuckets:\n${bucketYaml({
      name: "slow",
      prefix: "/slow",
      bucket: "slow-bucket",
      endpoint: s3.endpoint,
      extra: `    cache: { enabled: true, ttl_seconds: 600 }\n    authorization: { type: opa, opa_url: "${opa.url}", opa_policy_path: yatagarasu/allow, opa_cache_ttl_seconds: 0, opa_timeout_ms: 10000 }\n`,
    })}`,
    { probeIntervalMs: 3_600_000 },
  );
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
  opa.close();
});

test("a request that joined a fill gets the object when the fill's leader reaches its request_timeout first", async () => {
  // The leader spends 1.5 s of its 2 s with its authorizer; the upstream then takes 1.2 s: the
  // leader's deadline falls 0.7 s before the answer, the waiter's (joined when the fill began) 0.8 s after.
  opa.delay(1500);
  s3.faults.set("/slow-bucket/slow.txt", { kind: "delay", ms: 1200, times: 1 });
  const leader = fetch(px.url("/slow/slow.txt")).then(async (r) => ({ status: r.status, body: await r.text() }));
  await s3.waitForRequest((e) => e.method === "GET" && e.pathname === "/slow-bucket/slow.txt");
  opa.delay(0);
  const waiter = await fetch(px.url("/slow/slow.txt"));
  expect({ status: waiter.status, body: await waiter.text(), cache: waiter.headers.get("x-cache") }).toEqual({ status: 200, body: "the slow object", cache: "MISS" });
  expect((await leader).status).toBe(504);
  // The fill was stored: the next request is a hit.
  const next = await fetch(px.url("/slow/slow.txt"));
  expect({ body: await next.text(), cache: next.headers.get("x-cache") }).toEqual({ body: "the slow object", cache: "HIT" });
});
