/**
 * The cache's upstream contract on the real path: the upstream answers every HTTP status (a 404
 * included) and the cache decides what it means. An object deleted upstream, then revalidated,
 * is a 404 for the client and is dropped from the cache: the next version is a MISS, never the
 * old bytes.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { waitFor } from "../helpers/wait.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const KEY = { accessKeyId: "AKIAREVALIDATE000000", secretAccessKey: "revalidate-secret-0123456789abcdefghijk" };
let s3: S3Fixture;
let px: ProxyProcess;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "reval" }], credentials: [{ ...KEY, buckets: ["reval"] }] });
  px = await startProxy(
    `server: { address: 127.0.0.1, port: 0 }\ncache: { enabled: true }\nbuckets:\n` +
      bucketYaml({ name: "c", prefix: "/c", bucket: "reval", endpoint: s3.endpoint, key: KEY.accessKeyId, secret: KEY.secretAccessKey, extra: "    cache: { enabled: true }\n" }),
  );
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

test("stale entry, object deleted upstream → 404 NoSuchKey, entry dropped; the object put back is a MISS", async () => {
  // max-age=0: stored, but stale at once, so every later GET revalidates.
  await s3.put("reval", "gone.txt", "old bytes", { cacheControl: "max-age=0" });
  const first = await fetch(px.url("/c/gone.txt"));
  expect(first.status).toBe(200);
  expect(first.headers.get("x-cache")).toBe("MISS");
  expect(await first.text()).toBe("old bytes");
  const again = await fetch(px.url("/c/gone.txt"));
  expect(again.headers.get("x-cache")).toBe("REVALIDATED");
  expect(await again.text()).toBe("old bytes");

  await s3.remove("reval", "gone.txt");
  const deleted = await fetch(px.url("/c/gone.txt"));
  expect(deleted.status).toBe(404);
  expect(((await deleted.json()) as { error: string }).error).toBe("NoSuchKey");

  // The same bytes again (same ETag): a kept entry would be REVALIDATED by a 304; a dropped one is a MISS.
  await s3.put("reval", "gone.txt", "old bytes", { cacheControl: "max-age=0" });
  const back = await fetch(px.url("/c/gone.txt"));
  expect(back.status).toBe(200);
  expect(back.headers.get("x-cache")).toBe("MISS");
  expect(await back.text()).toBe("old bytes");
});

test("a request with Cache-Control: no-store is passed through on a miss (BYPASS) and nothing is stored, a stale entry not refreshed; a fresh entry still answers it", async () => {
  await s3.put("reval", "nostore.txt", "first");
  const asked = await fetch(px.url("/c/nostore.txt"), { headers: { "cache-control": "No-Store" } });
  expect([asked.status, asked.headers.get("x-cache"), await asked.text()]).toEqual([200, "BYPASS", "first"]);
  // (it was stored: this was a HIT)
  const next = await fetch(px.url("/c/nostore.txt"));
  expect([next.headers.get("x-cache"), await next.text()]).toEqual(["MISS", "first"]);
  const fresh = await fetch(px.url("/c/nostore.txt"), { headers: { "cache-control": "max-age=0, no-store" } });
  expect([fresh.headers.get("x-cache"), await fresh.text()]).toEqual(["HIT", "first"]);
  // a stale entry: passed through, not revalidated (a REVALIDATED would have stored the 304's headers)
  await s3.put("reval", "nostore-stale.txt", "old", { cacheControl: "max-age=0" });
  expect((await fetch(px.url("/c/nostore-stale.txt"))).headers.get("x-cache")).toBe("MISS");
  const stale = await fetch(px.url("/c/nostore-stale.txt"), { headers: { "cache-control": "no-store" } });
  expect([stale.headers.get("x-cache"), await stale.text()]).toEqual(["BYPASS", "old"]);
});

test("a revalidation answered 403 is relayed as an error and the stale bytes are not served", async () => {
  await s3.put("reval", "denied.txt", "secret-ish", { cacheControl: "max-age=0" });
  expect((await fetch(px.url("/c/denied.txt"))).status).toBe(200);
  s3.faults.set("/reval/denied.txt", { kind: "error", status: 403, code: "AccessDenied" });
  try {
    const res = await fetch(px.url("/c/denied.txt"));
    expect(res.status).toBe(403);
    expect(await res.text()).not.toContain("secret-ish");
  } finally {
    s3.faults.delete("/reval/denied.txt");
  }
});

test("an object rewritten in place with the same bytes and new metadata (same ETag, later Last-Modified): the revalidation's 304 is not trusted for what it does not carry, the new headers are served", async () => {
  await s3.put("reval", "meta.txt", "same bytes", { cacheControl: "max-age=0", contentType: "text/plain", metadata: { v: "old" } });
  const first = await fetch(px.url("/c/meta.txt"));
  expect([first.headers.get("x-cache"), first.headers.get("content-type"), first.headers.get("x-amz-meta-v")]).toEqual(["MISS", "text/plain", "old"]);
  await first.text();
  const firstModified = first.headers.get("last-modified")!;
  // Last-Modified has one-second resolution: the rewrite must land in a later second.
  await waitFor(() => new Date().toUTCString() !== firstModified && Date.now() - Date.parse(firstModified) >= 1000);
  // The rewrite, until the store reports its later Last-Modified (the premise of this test).
  let etag = "";
  await waitFor(
    async () => {
      ({ etag } = await s3.put("reval", "meta.txt", "same bytes", { cacheControl: "max-age=0", contentType: "text/html", metadata: { v: "new" } }));
      const head = await s3.client().send(new HeadObjectCommand({ Bucket: "reval", Key: "meta.txt" }));
      return (head.LastModified?.getTime() ?? 0) > Date.parse(firstModified);
    },
    { timeoutMs: 10_000, intervalMs: 200, message: "the store to report a later Last-Modified" },
  );
  expect(`"${first.headers.get("etag")?.replaceAll('"', "")}"`).toBe(`"${etag.replaceAll('"', "")}"`);
  const again = await fetch(px.url("/c/meta.txt"));
  expect([again.status, again.headers.get("content-type"), again.headers.get("x-amz-meta-v"), await again.text()]).toEqual([200, "text/html", "new", "same bytes"]);
  expect(again.headers.get("last-modified")).not.toBe(firstModified);
  // and it is what is stored now: the next revalidation (a plain 304) keeps it
  const third = await fetch(px.url("/c/meta.txt"));
  expect([third.headers.get("x-cache"), third.headers.get("content-type"), third.headers.get("x-amz-meta-v")]).toEqual(["REVALIDATED", "text/html", "new"]);
});
