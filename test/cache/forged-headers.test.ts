/**
 * An entry written under the Redis layer's key_prefix (or a disk file) by another process (a hostile or buggy
 * client of the same Redis) with the right key, store stamp and length but headers the cache never
 * stores (Set-Cookie, Location, Access-Control-Allow-Origin, Content-Range) is corrupt: a miss,
 * never served with those headers to whoever asks next.
 */
import { RedisClient } from "bun";
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startRedis, type RedisServer } from "../fixtures/services.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "../e2e/harness.ts";
import { waitFor } from "../helpers/wait.ts";
import { decodeEntry, encodeEntry } from "../../src/cache/redis-format.ts";
import { decodeHead, encodeHead } from "../../src/cache/disk-format.ts";

setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIAREDISFORGED", secretAccessKey: "redis-forged-secret" };
let s3: S3Fixture;
let redis: RedisServer;
let px: ProxyProcess;

beforeAll(async () => {
  [s3, redis] = await Promise.all([startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...CREDS, buckets: ["data"] }] }), startRedis()]);
  await s3.put("data", "a.txt", "the real body\n", { contentType: "text/plain" });
  await s3.put("data", "lock.txt", "locked body\n", { contentType: "text/plain" });
  await s3.put("data", "old.txt", "an old entry\n", { contentType: "text/plain" });
  px = await startProxy(`server: { address: 127.0.0.1, port: 0 }
cache:
  enabled: true
  cache_layers: [redis]
  redis: { url: "${redis.url}", key_prefix: "f:", connect_timeout_ms: 1000, operation_timeout_ms: 1000 }
buckets:
${bucketYaml({ name: "c", prefix: "/c", bucket: "data", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: "    cache: { enabled: true }\n" })}`);
  await waitFor(async () => (await fetch(px.url("/ready"))).status === 200, { message: "the proxy to be ready" });
});

afterAll(async () => {
  await px?.stop();
  await Promise.all([s3?.stop(), redis?.stop()]);
});

test("a Redis entry carrying headers the cache never stores is a miss, not served", async () => {
  const first = await fetch(px.url("/c/a.txt"));
  expect([first.status, await first.text()]).toEqual([200, "the real body\n"]);
  const client = new RedisClient(redis.url);
  try {
    await waitFor(async () => (await client.exists("f:obj:c/a.txt")) === true, { message: "the fill to reach Redis" });
    expect((await fetch(px.url("/c/a.txt"))).headers.get("x-cache")).toBe("HIT");
    // Another process rewrites the entry: same key, store stamp and length, its own headers added.
    const stored = (await client.getBuffer("f:obj:c/a.txt"))!;
    const meta = JSON.parse(new TextDecoder().decode(stored.subarray(8, 8 + new DataView(stored.buffer, stored.byteOffset).getUint32(4, true))));
    const real = decodeEntry(stored, "c/a.txt", meta.store);
    if (typeof real === "string") throw new Error(real);
    const body = new TextEncoder().encode("forged body!!\n");
    const forged = { ...real, headers: { ...real.headers, "set-cookie": "session=attacker; Path=/", location: "https://evil.example/", "access-control-allow-origin": "*" } };
    await client.set("f:obj:c/a.txt", Buffer.from(encodeEntry(forged, body, meta.store)));
    const r = await fetch(px.url("/c/a.txt"));
    expect([r.status, r.headers.get("set-cookie"), r.headers.get("location"), r.headers.get("access-control-allow-origin"), await r.text()]).toEqual([200, null, null, null, "the real body\n"]);
    expect(r.headers.get("x-cache")).toBe("MISS");
  } finally {
    client.close();
  }
});

/** The entry of `key` a fill stored in Redis (key_prefix "f:"), decoded, and its store stamp. */
async function storedEntry(client: RedisClient, key: string) {
  await waitFor(async () => (await client.exists(`f:obj:${key}`)) === true, { message: "the fill to reach Redis" });
  const stored = (await client.getBuffer(`f:obj:${key}`))!;
  const meta = JSON.parse(new TextDecoder().decode(stored.subarray(8, 8 + new DataView(stored.buffer, stored.byteOffset).getUint32(4, true))));
  const entry = decodeEntry(stored, key, meta.store);
  if (typeof entry === "string") throw new Error(entry);
  return { entry, body: stored.subarray(stored.byteLength - entry.size), store: meta.store as string };
}

const LOCK = { "x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": "2030-01-01T00:00:00.000Z", "x-amz-object-lock-legal-hold": "ON" };

test("an entry an earlier release stored with the Object Lock headers is served without them (a HIT, not corrupt)", async () => {
  expect((await fetch(px.url("/c/lock.txt"))).status).toBe(200);
  const client = new RedisClient(redis.url);
  try {
    const { entry, body, store } = await storedEntry(client, "c/lock.txt");
    await client.set("f:obj:c/lock.txt", Buffer.from(encodeEntry({ ...entry, headers: { ...entry.headers, ...LOCK } }, body, store)));
    for (const method of ["GET", "HEAD"]) {
      const r = await fetch(px.url("/c/lock.txt"), { method });
      const lock = Object.keys(LOCK).map((h) => r.headers.get(h));
      expect([r.status, r.headers.get("x-cache"), ...lock, await r.text()]).toEqual([200, "HIT", null, null, null, method === "GET" ? "locked body\n" : ""]);
    }
  } finally {
    client.close();
  }
});

test("an entry without the upstream's Date (only releases that stored Vary: * answers wrote one) is revalidated once, never a HIT as it is", async () => {
  expect((await fetch(px.url("/c/old.txt"))).status).toBe(200);
  const client = new RedisClient(redis.url);
  try {
    const { entry, body, store } = await storedEntry(client, "c/old.txt");
    const conditional = () => s3.requests.filter((r) => r.method === "GET" && r.pathname === "/data/old.txt" && r.headers["if-none-match"] !== undefined).length;
    const before = conditional();
    await client.set("f:obj:c/old.txt", Buffer.from(encodeEntry({ ...entry, date: undefined }, body, store)), "PX", 600_000);
    const seen: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await fetch(px.url("/c/old.txt"));
      seen.push(`${r.status} ${r.headers.get("x-cache")} ${await r.text()}`);
      // (the revalidated entry's store reaches Redis after the answer)
      if (i === 0) await waitFor(async () => { const e = decodeEntry((await client.getBuffer("f:obj:c/old.txt"))!, "c/old.txt", store); return typeof e !== "string" && e.date !== undefined; }, { message: "the revalidated entry in Redis" });
    }
    expect(seen).toEqual(["200 REVALIDATED an old entry\n", "200 HIT an old entry\n"]);
    expect(conditional() - before).toBe(1);
  } finally {
    client.close();
  }
});

test("a disk file's head naming such a header is corrupt too (the same check)", () => {
  const meta = { key: "c/a.txt", headers: { "content-type": "text/plain", "content-length": "3" }, storedAt: 1, expiresAt: 2, size: 3 };
  const size = (h: Uint8Array) => h.byteLength + 3;
  const ok = encodeHead(meta, "s");
  expect(typeof decodeHead(ok, size(ok))).toBe("object");
  const forged = encodeHead({ ...meta, headers: { ...meta.headers, "set-cookie": "session=attacker" } }, "s");
  expect(decodeHead(forged, size(forged))).toBe("corrupt metadata");
  // (an earlier release's Object Lock headers: dropped when the head is read, the entry kept)
  const locked = encodeHead({ ...meta, headers: { ...meta.headers, ...LOCK } }, "s");
  expect((decodeHead(locked, size(locked)) as { headers?: unknown }).headers).toEqual(meta.headers);
  // (a head without the upstream's Date, an earlier release's: stale, revalidated once)
  const dated = { ...meta, storedAt: 1000, expiresAt: 9000 };
  expect(decodeHead(encodeHead({ ...dated, date: 500 }, "s"), size(encodeHead({ ...dated, date: 500 }, "s")))).toMatchObject({ storedAt: 1000, expiresAt: 9000 });
  expect(decodeHead(encodeHead(dated, "s"), size(encodeHead(dated, "s")))).toMatchObject({ storedAt: 1000, expiresAt: 1000 });
});
