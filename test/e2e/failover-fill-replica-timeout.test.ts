/**
 * A replica's own `timeout` in a cache fill. A replica may override the bucket's s3.timeout (a
 * remote one slower to answer); a fill gives each replica its share of the fill's deadline, and
 * that share must be the replica's own timeout plus the buffered body's allowance: one computed
 * from the bucket's timeout cut a primary that answers within its own timeout, so a cached bucket
 * served the secondary's copy (and charged the primary a failure) where an uncached one got the
 * primary's answer.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

setDefaultTimeout(60_000);

const KEY = { accessKeyId: "AKIAREPLICATIMEOUT01", secretAccessKey: "replica/timeout/secret/EXAMPLE/000000000" };
let primary: S3Fixture;
let secondary: S3Fixture;
let px: ProxyProcess;

beforeAll(async () => {
  primary = await startS3Fixture({ buckets: [{ name: "p-bucket" }], credentials: [{ ...KEY, buckets: ["p-bucket"] }] });
  secondary = await startS3Fixture({ buckets: [{ name: "s-bucket" }], credentials: [{ ...KEY, buckets: ["s-bucket"] }] });
  await primary.put("p-bucket", "k.txt", "from primary", { contentType: "text/plain" });
  await secondary.put("s-bucket", "k.txt", "from secondary", { contentType: "text/plain" });
  const replica = (name: string, bucket: string, s3: S3Fixture, priority: number, extra = "") =>
    `        - { name: ${name}, bucket: ${bucket}, region: us-east-1, endpoint: "${s3.endpoint}", access_key: "${KEY.accessKeyId}", secret_key: "${KEY.secretAccessKey}", priority: ${priority}${extra} }\n`;
  // The bucket's timeout (1 s) plus 1 s for the 1 MiB it buffers: 2 s; the primary's own timeout, 10 s.
  px = await startProxy(
    `server: { address: 127.0.0.1, port: 0, readiness_probe_interval_seconds: 3600 }\n` +
      `cache: { enabled: true, cache_layers: [memory], memory: { max_item_size_mb: 1, max_cache_size_mb: 8 } }\n` +
      `buckets:\n  - name: cached\n    path_prefix: /cached\n    cache: { enabled: true }\n    s3:\n      timeout: 1\n      retry: { max_attempts: 1 }\n      replicas:\n` +
      replica("primary", "p-bucket", primary, 1, ", timeout: 10") +
      replica("secondary", "s-bucket", secondary, 2),
  );
});

afterAll(async () => {
  await px?.stop();
  await primary?.stop();
  await secondary?.stop();
});

test("a fill waits for a primary that answers within its own timeout, past the bucket's: the primary's object, the secondary not asked", async () => {
  // (its answer's head after 4 s: past the bucket's 2 s share, well within the primary's 10 s + 1 s)
  primary.faults.set("/p-bucket/k.txt", { kind: "delay", ms: 4000, method: "GET" });
  secondary.resetLog();
  const res = await fetch(px.url("/cached/k.txt"));
  expect(res.status).toBe(200);
  expect(await res.text()).toBe("from primary");
  expect(secondary.requests.filter((r) => !r.admin && r.pathname === "/s-bucket/k.txt")).toEqual([]);
  const id = res.headers.get("x-request-id");
  const line = await px.waitForLog((l) => l.msg === "request" && l.request_id === id);
  expect(line).toMatchObject({ replica: "primary", cache: "MISS" });
});
