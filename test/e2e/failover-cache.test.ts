/**
 * A caching bucket with replicas: what a secondary answered while the primary failed is cached for
 * a short time only (the bucket's breaker timeout_seconds, at most 5 s), never for the bucket's
 * TTL. Before, one transient 5xx of the primary after a write (or a delete) had the lagging
 * secondary's old copy cached, and served as a HIT, for the whole TTL (600 s here).
 *
 * Each fixture holds its own bytes for the same key, so a body (or an ETag) shows which replica
 * it came from. The breaker's timeout_seconds is 1: the secondary's copy lives at most 1 s.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

setDefaultTimeout(30_000);

const PRIMARY_KEY = { accessKeyId: "AKIAPRIMARYEXAMPLE01", secretAccessKey: "primary/secret/key/EXAMPLE/000000000000" };
const SECONDARY_KEY = { accessKeyId: "AKIASECONDARYEXAMP02", secretAccessKey: "secondary/secret/key/EXAMPLE/0000000000" };
/** The secondary's copy may be served this long after it was fetched (timeout_seconds 1), plus slack for a loaded machine. */
const BOUND_MS = 4000;

let primary: S3Fixture;
let secondary: S3Fixture;
let px: ProxyProcess;
/** Each replica's ETag of head.txt. */
const headEtag = { primary: "", secondary: "" };

async function get(path: string, init?: RequestInit): Promise<{ status: number; body: string; cache: string | null; etag: string | null }> {
  const res = await fetch(px.url(path), init);
  return { status: res.status, body: await res.text(), cache: res.headers.get("x-cache"), etag: res.headers.get("etag") };
}

beforeAll(async () => {
  primary = await startS3Fixture({ region: "us-east-1", buckets: [{ name: "p-use1" }], credentials: [{ ...PRIMARY_KEY, buckets: ["p-use1"], write: true }] });
  secondary = await startS3Fixture({ region: "us-west-2", buckets: [{ name: "p-usw2" }], credentials: [{ ...SECONDARY_KEY, buckets: ["p-usw2"], write: true }] });
  for (const k of ["put.txt", "del.txt", "head.txt", "wait.txt"]) {
    const p = await primary.put("p-use1", k, `P:${k}`);
    const s = await secondary.put("p-usw2", k, `S:${k}`);
    if (k === "head.txt") Object.assign(headEtag, { primary: p.etag, secondary: s.etag });
  }
  const replica = (name: string, bucket: string, region: string, s3: S3Fixture, key: typeof PRIMARY_KEY, priority: number) =>
    `        - { name: ${name}, bucket: ${bucket}, region: ${region}, endpoint: "${s3.endpoint}", access_key: "${key.accessKeyId}", secret_key: "${key.secretAccessKey}", priority: ${priority} }\n`;
  px = await startProxy(
    `server: { address: 127.0.0.1, port: 0 }\n` +
      `cache: { enabled: true, memory: { default_ttl_seconds: 600 } }\n` +
      `buckets:\n` +
      `  - name: c\n` +
      `    path_prefix: /c\n` +
      `    access: read-write\n` +
      `    auth: { anonymous_writes: true }\n` +
      `    cache: { enabled: true }\n` +
      `    s3:\n` +
      `      retry: { max_attempts: 2, initial_backoff_ms: 5, max_backoff_ms: 10 }\n` +
      // A failure threshold the test never reaches: the primary's breaker stays closed.
      `      circuit_breaker: { failure_threshold: 50, success_threshold: 1, timeout_seconds: 1, half_open_max_requests: 1 }\n` +
      `      replicas:\n` +
      replica("primary", "p-use1", "us-east-1", primary, PRIMARY_KEY, 1) +
      replica("secondary", "p-usw2", "us-west-2", secondary, SECONDARY_KEY, 2),
  );
});

afterAll(async () => {
  await px?.stop();
  await primary?.stop();
  await secondary?.stop();
});

/** Polls `path` until `done` holds; every answer before it must be the secondary's copy (`stale`). */
async function servedAgainFromPrimary(path: string, init: RequestInit, stale: (a: Awaited<ReturnType<typeof get>>) => boolean, done: (a: Awaited<ReturnType<typeof get>>) => boolean) {
  const seen: Array<Awaited<ReturnType<typeof get>>> = [];
  const t0 = performance.now();
  const answer = await waitFor(
    async () => {
      const a = await get(path, init);
      seen.push(a);
      if (done(a)) return a;
      expect(stale(a)).toBe(true);
      return undefined;
    },
    { timeoutMs: BOUND_MS, intervalMs: 50, message: () => `the primary's answer again (last: ${JSON.stringify(seen.at(-1))})` },
  );
  return { answer, ms: performance.now() - t0, seen };
}

// The tests run at once: each on a key (and fixture faults) of its own; the primary's four 500s in
// all stay far under the breaker's failure_threshold.
describe.concurrent("a caching bucket with replicas", () => {
  test("after a write, one 5xx of the primary: the secondary's old copy is served once, cached briefly, then the primary's new version", async () => {
    expect(await get("/c/put.txt")).toMatchObject({ status: 200, body: "P:put.txt", cache: "MISS" });
    expect(await get("/c/put.txt")).toMatchObject({ status: 200, body: "P:put.txt", cache: "HIT" });
    expect((await get("/c/put.txt", { method: "PUT", body: "P:NEWVERSION" })).status).toBe(200);
    primary.faults.set("/p-use1/put.txt", { kind: "error500", method: "GET", times: 1 });
    expect(await get("/c/put.txt")).toMatchObject({ status: 200, body: "S:put.txt", cache: "MISS" });
    expect(primary.faults.hits("/p-use1/put.txt")).toBe(1);
    const { answer } = await servedAgainFromPrimary("/c/put.txt", {}, (a) => a.body === "S:put.txt", (a) => a.body === "P:NEWVERSION");
    expect(answer.status).toBe(200);
    // The primary's answer is cached as usual.
    expect(await get("/c/put.txt")).toMatchObject({ status: 200, body: "P:NEWVERSION", cache: "HIT" });
  });

  test("after a delete, one 5xx of the primary: the secondary's copy does not resurrect the object for the TTL", async () => {
    expect(await get("/c/del.txt")).toMatchObject({ status: 200, body: "P:del.txt" });
    expect((await get("/c/del.txt", { method: "DELETE" })).status).toBe(204);
    primary.faults.set("/p-use1/del.txt", { kind: "error500", method: "GET", times: 1 });
    expect(await get("/c/del.txt")).toMatchObject({ status: 200, body: "S:del.txt", cache: "MISS" });
    const { answer } = await servedAgainFromPrimary("/c/del.txt", {}, (a) => a.body === "S:del.txt", (a) => a.status === 404);
    expect(answer.status).toBe(404);
  });

  test("requests that waited on a fill the secondary answered name it in their access lines, as the one that asked does", async () => {
    primary.faults.set("/p-use1/wait.txt", { kind: "error500", method: "GET", times: 1 });
    // (the secondary takes a while: the other two arrive while the fill is under way, and wait on it)
    secondary.faults.set("/p-usw2/wait.txt", { kind: "delay", ms: 500, method: "GET", times: 1 });
    const answers = await Promise.all([0, 1, 2].map(() => get("/c/wait.txt")));
    for (const a of answers) expect(a).toMatchObject({ status: 200, body: "S:wait.txt", cache: "MISS" });
    const lines = await waitFor(() => {
      const l = px.logs().filter((x) => x.msg === "request" && x.path === "/c/wait.txt");
      return l.length === 3 ? l : undefined;
    }, { message: "three access lines" });
    // one asked upstream (the primary failed, the secondary answered); the other two waited on it
    expect(lines.map((l) => l.replica)).toEqual(["secondary", "secondary", "secondary"]);
  });

  test("a HEAD whose fill the secondary answered follows the same rule", async () => {
    const { primary: fromPrimary, secondary: fromSecondary } = headEtag;
    expect(fromSecondary).not.toBe(fromPrimary);
    primary.faults.set("/p-use1/head.txt", { kind: "error500", method: "GET", times: 1 });
    expect(await get("/c/head.txt", { method: "HEAD" })).toMatchObject({ status: 200, cache: "MISS", etag: fromSecondary });
    const { answer } = await servedAgainFromPrimary("/c/head.txt", { method: "HEAD" }, (a) => a.etag === fromSecondary, (a) => a.etag === fromPrimary);
    expect(answer.status).toBe(200);
    expect(await get("/c/head.txt", { method: "HEAD" })).toMatchObject({ status: 200, cache: "HIT", etag: fromPrimary });
  });
});
