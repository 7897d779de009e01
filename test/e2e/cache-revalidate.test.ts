/**
 * The cache's upstream contract on the real path: the upstream answers every HTTP status (a 404
 * included) and the cache decides what it means. An object deleted upstream, then revalidated,
 * is a 404 for the client and is dropped from the cache: the next version is a MISS, never the
 * old bytes. With stale_if_error_seconds, a revalidation the store fails to answer (no answer, a
 * 5xx, the breaker open) is answered from the stale copy (STALE) within the window; its word on the
 * object (404, 403) never is.
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
  const creds = { bucket: "reval", endpoint: s3.endpoint, key: KEY.accessKeyId, secret: KEY.secretAccessKey };
  // (one attempt: a store failure is answered at once)
  const stale = (seconds: number, s3Extra = "") => `    cache: { enabled: true, stale_if_error_seconds: ${seconds} }\n    s3: { bucket: reval, endpoint: "${s3.endpoint}", access_key: "${KEY.accessKeyId}", secret_key: "${KEY.secretAccessKey}", retry: { max_attempts: 1 }${s3Extra} }\n`;
  const staleBucket = (name: string, seconds: number, s3Extra = "") => `  - name: ${name}\n    path_prefix: /${name}\n` + stale(seconds, s3Extra);
  px = await startProxy(
    `server: { address: 127.0.0.1, port: 0 }\nmetrics: { enabled: true, address: 127.0.0.1, port: 0 }\ncache: { enabled: true }\nbuckets:\n` +
      bucketYaml({ name: "c", prefix: "/c", ...creds, extra: "    cache: { enabled: true }\n" }) +
      staleBucket("s", 60) +
      staleBucket("sw", 1) +
      staleBucket("sb", 60, ", circuit_breaker: { failure_threshold: 1, timeout_seconds: 60 }") +
      staleBucket("st", 60, ", timeout: 0.3") +
      staleBucket("sh", 60, ", timeout: 0.3"),
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

/** Puts `key` (stale at once: max-age=0 unless `cacheControl` says otherwise) and fills bucket `b`'s cache with it. */
async function cached(b: string, key: string, body: string, cacheControl = "max-age=0"): Promise<string> {
  await s3.put("reval", key, body, { cacheControl });
  const first = await fetch(px.url(`/${b}/${key}`));
  expect([first.status, first.headers.get("x-cache"), await first.text()]).toEqual([200, "MISS", body]);
  return first.headers.get("etag")!;
}

test("stale_if_error_seconds: a stale entry whose revalidation fails (500, 502, 503 SlowDown, 504, a reset) is answered STALE with its Age; the store back, the next GET revalidates it", async () => {
  const kinds = [
    ["500", { kind: "error500" }],
    ["502", { kind: "error", status: 502, code: "BadGateway" }],
    ["slowdown", { kind: "slowdown" }],
    ["504", { kind: "error", status: 504, code: "GatewayTimeout" }],
    ["reset", { kind: "reset" }],
  ] as const;
  // (one after another: after a failure, the bucket's other stale entries are answered at once
  // while a request asks the store; the last test says so)
  for (const [name, fault] of kinds) {
    const key = `stale-${name}.txt`;
    await cached("s", key, `old ${name}`);
    s3.faults.set(`/reval/${key}`, fault);
    try {
      const res = await fetch(px.url(`/s/${key}`));
      expect([name, res.status, res.headers.get("x-cache"), await res.text()]).toEqual([name, 200, "STALE", `old ${name}`]);
      expect(Number(res.headers.get("age"))).toBeGreaterThanOrEqual(0);
      expect(s3.faults.hits(`/reval/${key}`)).toBeGreaterThanOrEqual(1); // (the store was asked)
    } finally {
      s3.faults.delete(`/reval/${key}`);
    }
    const back = await fetch(px.url(`/s/${key}`));
    expect([name, back.status, back.headers.get("x-cache"), await back.text()]).toEqual([name, 200, "REVALIDATED", `old ${name}`]);
  }
  const log = px.logs().find((l) => l.msg === "request" && l.path === "/s/stale-500.txt" && l.cache === "STALE");
  expect(log?.status).toBe(200);
  const text = await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
  expect(text).toContain('yatagarasu_cache_stale_total{bucket="s"} 5');
});

test("stale_if_error_seconds: a revalidation the store does not answer within s3.timeout is answered STALE", async () => {
  await cached("st", "slow.txt", "old slow");
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  s3.faults.set("/reval/slow.txt", { kind: "delay", ms: 30_000, until: held });
  try {
    const res = await fetch(px.url("/st/slow.txt"));
    expect([res.status, res.headers.get("x-cache"), await res.text()]).toEqual([200, "STALE", "old slow"]);
  } finally {
    s3.faults.delete("/reval/slow.txt");
    release();
  }
});

test("a stale answer takes Range, HEAD and conditionals as a hit does; a changed object is served new once the store answers", async () => {
  const etag = await cached("s", "stale-forms.txt", "0123456789");
  s3.faults.set("/reval/stale-forms.txt", { kind: "error500" });
  try {
    const ranged = await fetch(px.url("/s/stale-forms.txt"), { headers: { range: "bytes=2-4" } });
    expect([ranged.status, ranged.headers.get("x-cache"), ranged.headers.get("content-range"), await ranged.text()]).toEqual([206, "STALE", "bytes 2-4/10", "234"]);
    const head = await fetch(px.url("/s/stale-forms.txt"), { method: "HEAD" });
    expect([head.status, head.headers.get("x-cache"), head.headers.get("content-length"), await head.text()]).toEqual([200, "STALE", "10", ""]);
    const same = await fetch(px.url("/s/stale-forms.txt"), { headers: { "if-none-match": etag } });
    expect([same.status, same.headers.get("x-cache"), same.headers.get("etag")]).toEqual([304, "STALE", etag]);
    const other = await fetch(px.url("/s/stale-forms.txt"), { headers: { "if-match": '"nope"' } });
    expect([other.status, other.headers.get("x-cache")]).toEqual([412, "STALE"]);
  } finally {
    s3.faults.delete("/reval/stale-forms.txt");
  }
  await s3.put("reval", "stale-forms.txt", "new bytes", { cacheControl: "max-age=0" });
  const fresh = await fetch(px.url("/s/stale-forms.txt"));
  expect([fresh.status, fresh.headers.get("x-cache"), await fresh.text()]).toEqual([200, "MISS", "new bytes"]);
});

test("stale_if_error_seconds: never in place of the store's word on the object (404, 403, 412), nor by default, nor when the object's Cache-Control forbids it or its stale-if-error is shorter", async () => {
  const answers = [
    ["404", { kind: "error", status: 404, code: "NoSuchKey" }, 404],
    ["403", { kind: "error", status: 403, code: "AccessDenied" }, 403],
    // (a 412 to a GET that asked no If-Match is no answer a client could use: 502, as uncached)
    ["412", { kind: "error", status: 412, code: "PreconditionFailed" }, 502],
  ] as const;
  for (const [name, fault, status] of answers) {
    await cached("s", `word-${name}.txt`, "old");
    s3.faults.set(`/reval/word-${name}.txt`, fault);
    try {
      const res = await fetch(px.url(`/s/word-${name}.txt`));
      expect([name, res.status, res.headers.get("x-cache")]).toEqual([name, status, "MISS"]);
      expect(await res.text()).not.toContain("old");
    } finally {
      s3.faults.delete(`/reval/word-${name}.txt`);
    }
  }
  // off by default (bucket c sets nothing), forbidden by the object, or its own window of 0 seconds
  const cases = [
    ["c", "off.txt", "max-age=0"],
    ["s", "must.txt", "max-age=0, must-revalidate"],
    ["s", "nocache.txt", "no-cache"],
    ["s", "sie0.txt", "max-age=0, stale-if-error=0"],
  ] as const;
  for (const [b, key, cc] of cases) {
    await cached(b, key, "old", cc);
    s3.faults.set(`/reval/${key}`, { kind: "error500" });
    try {
      const res = await fetch(px.url(`/${b}/${key}`));
      expect([key, res.status, res.headers.get("x-cache")]).toEqual([key, 502, "MISS"]);
      expect(await res.text()).not.toContain("old");
    } finally {
      s3.faults.delete(`/reval/${key}`);
    }
  }
});

test("stale_if_error_seconds: a request whose Cache-Control refuses a stale answer (no-cache, max-age=0, Pragma: no-cache, max-stale=0 past its expiry) gets the failure (it was STALE); max-stale or no directive still STALE", async () => {
  const asks = [
    ["no-cache", { "cache-control": "no-cache" }, 502],
    ["max-age", { "cache-control": "max-age=0" }, 502],
    ["min-fresh", { "cache-control": "min-fresh=1" }, 502],
    ["pragma", { pragma: "no-cache" }, 502],
    ["max-stale-0", { "cache-control": "max-stale=0" }, 502],
    ["max-age-max-stale", { "cache-control": "max-age=0, max-stale" }, 200],
    ["max-stale-long", { "cache-control": "max-stale=3600" }, 200],
    ["none", {}, 200],
  ] as const;
  for (const [fault, gone] of [[{ kind: "error500" }, 502], [{ kind: "reset" }, 502]] as const) {
    await Promise.all(
      asks.map(async ([name, headers, status]) => {
        const key = `refuse-${fault.kind}-${name}.txt`;
        await cached("s", key, "old");
        // (its expiry, the fill, at least 2 ms past when asked: max-stale=0 refuses it)
        const filled = Date.now();
        await waitFor(() => Date.now() >= filled + 2);
        s3.faults.set(`/reval/${key}`, fault);
        try {
          const res = await fetch(px.url(`/s/${key}`), { headers });
          const body = await res.text();
          const expected = status === 200 ? [200, "STALE", "old"] : [gone, "MISS", false];
          expect([fault.kind, name, res.status, res.headers.get("x-cache"), status === 200 ? body : body.includes("old")]).toEqual([fault.kind, name, ...expected]);
        } finally {
          s3.faults.delete(`/reval/${key}`);
        }
      }),
    );
  }
});

test("stale_if_error_seconds: 1 serves the stale copy for 1 s past its expiry only", async () => {
  // (taken before the fill: the entry expires after it, so an answer within 1 s of it is inside the
  // window whatever the host's load, and the window's end comes at least 1 s after it)
  const before = Date.now();
  await cached("sw", "window.txt", "old");
  s3.faults.set("/reval/window.txt", { kind: "error500" });
  try {
    const res = await fetch(px.url("/sw/window.txt"));
    const body = await res.text();
    if (Date.now() - before < 1000) expect([res.headers.get("x-cache"), body]).toEqual(["STALE", "old"]);
    let last: Response | undefined;
    await waitFor(async () => {
      last = await fetch(px.url("/sw/window.txt"));
      await last.arrayBuffer();
      return last.headers.get("x-cache") !== "STALE";
    }, { timeoutMs: 5000, intervalMs: 100, message: "the window to end" });
    expect([last!.status, last!.headers.get("x-cache")]).toEqual([502, "MISS"]);
    expect(Date.now() - before).toBeGreaterThanOrEqual(1000);
  } finally {
    s3.faults.delete("/reval/window.txt");
  }
});

test("stale_if_error_seconds with the bucket's circuit breaker open: the stale copy answers without the store being asked", async () => {
  await cached("sb", "breaker.txt", "old");
  s3.faults.set("/reval/breaker.txt", { kind: "error500" });
  try {
    const res = await fetch(px.url("/sb/breaker.txt"));
    expect([res.headers.get("x-cache"), await res.text()]).toEqual(["STALE", "old"]);
  } finally {
    s3.faults.delete("/reval/breaker.txt");
  }
  // (failure_threshold 1: open now; the store, healthy again, is not asked for 60 s)
  const asked = () => s3.requests.filter((e) => e.pathname === "/reval/breaker.txt").length;
  const before = asked();
  const open = await fetch(px.url("/sb/breaker.txt"));
  expect([open.status, open.headers.get("x-cache"), await open.text()]).toEqual([200, "STALE", "old"]);
  expect(asked()).toBe(before);
});

test("stale_if_error_seconds: once a revalidation found the store not answering, the bucket's other stale entries (and the same key) are answered STALE at once while one request asks the store; the store back, that request refreshes", async () => {
  const keys = ["hold-a.txt", "hold-b.txt", "hold-c.txt"];
  for (const key of keys) await cached("sh", key, `old ${key}`);
  const asked = (key: string) => s3.requests.filter((e) => e.pathname === `/reval/${key}`).length;
  const before = Object.fromEntries(keys.map((k) => [k, asked(k)]));
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  for (const key of keys) s3.faults.set(`/reval/${key}`, { kind: "delay", ms: 30_000, until: held });
  const timed = async (key: string) => {
    const t0 = performance.now();
    const res = await fetch(px.url(`/sh/${key}`));
    return { answer: [key, res.status, res.headers.get("x-cache"), await res.text()], ms: performance.now() - t0 };
  };
  try {
    // the first waits for its revalidation to fail (s3.timeout: 0.3 s)
    const first = await timed("hold-a.txt");
    expect(first.answer).toEqual(["hold-a.txt", 200, "STALE", "old hold-a.txt"]);
    // the next one asks the store (the probe; its client waits for it) ...
    const probe = timed("hold-b.txt");
    await waitFor(() => asked("hold-b.txt") > before["hold-b.txt"]!, { message: "the probe to reach the store" });
    // ... while another key, and the first key again, are answered at once without asking it
    const other = await timed("hold-c.txt");
    const again = await timed("hold-a.txt");
    expect(other.answer).toEqual(["hold-c.txt", 200, "STALE", "old hold-c.txt"]);
    expect(again.answer).toEqual(["hold-a.txt", 200, "STALE", "old hold-a.txt"]);
    expect(asked("hold-c.txt")).toBe(before["hold-c.txt"]);
    expect(asked("hold-a.txt")).toBe(before["hold-a.txt"]! + 1);
    expect(other.ms).toBeLessThan(first.ms / 2);
    expect(again.ms).toBeLessThan(first.ms / 2);
    // a client refusing a stale answer (no-cache) is not answered from the hold: it asks the store, and gets its failure
    const refusing = await fetch(px.url("/sh/hold-c.txt"), { headers: { "cache-control": "no-cache" } });
    await refusing.arrayBuffer();
    expect([refusing.status >= 500, refusing.headers.get("x-cache")]).toEqual([true, "MISS"]);
    expect(asked("hold-c.txt")).toBe(before["hold-c.txt"]! + 1);
    expect((await probe).answer).toEqual(["hold-b.txt", 200, "STALE", "old hold-b.txt"]);
  } finally {
    for (const key of keys) s3.faults.delete(`/reval/${key}`);
    release();
  }
  // the store back: the next request asks it and refreshes its entry, which ends the hold
  const back = await fetch(px.url("/sh/hold-c.txt"));
  expect([back.status, back.headers.get("x-cache"), await back.text()]).toEqual([200, "REVALIDATED", "old hold-c.txt"]);
  const next = await fetch(px.url("/sh/hold-a.txt"));
  expect([next.status, next.headers.get("x-cache"), await next.text()]).toEqual([200, "REVALIDATED", "old hold-a.txt"]);
});

test("Cache-Control: only-if-cached (RFC 9111 §5.2.1.7): a fresh cached copy answers; with none (a miss, a stale copy) 504, the store not asked", async () => {
  await s3.put("reval", "oic-fresh.txt", "fresh", { cacheControl: "max-age=600" });
  await s3.put("reval", "oic-miss.txt", "never cached");
  const asked = (key: string) => s3.requests.filter((e) => e.pathname === `/reval/${key}`).length;
  const first = await fetch(px.url("/c/oic-fresh.txt"));
  expect([first.headers.get("x-cache"), await first.text()]).toEqual(["MISS", "fresh"]);
  const only = { headers: { "cache-control": "only-if-cached" } };
  const hit = await fetch(px.url("/c/oic-fresh.txt"), only);
  expect([hit.status, hit.headers.get("x-cache"), await hit.text()]).toEqual([200, "HIT", "fresh"]);
  const before = asked("oic-miss.txt");
  const missesOf = async (bucket: string) => Number(new RegExp(`yatagarasu_cache_misses_total\\{bucket="${bucket}"\\} (\\d+)`).exec(await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text())?.[1]);
  const misses = await missesOf("c");
  const miss = await fetch(px.url("/c/oic-miss.txt"), { headers: { "cache-control": "max-stale=0, Only-If-Cached" } });
  // (X-Cache, as every answer of a cached bucket has, and counted as the miss it is)
  expect([miss.status, miss.headers.get("x-cache"), ((await miss.json()) as { error: string }).error]).toEqual([504, "MISS", "GatewayTimeout"]);
  expect(asked("oic-miss.txt")).toBe(before);
  expect(await missesOf("c")).toBe(misses + 1);
  // a stale copy (max-age=0): not answered, the store not asked either
  await cached("c", "oic-stale.txt", "stale");
  const staleBefore = asked("oic-stale.txt");
  const stale = await fetch(px.url("/c/oic-stale.txt"), only);
  expect([stale.status, stale.headers.get("x-cache")]).toEqual([504, "MISS"]);
  await stale.arrayBuffer();
  expect(asked("oic-stale.txt")).toBe(staleBefore);
});
