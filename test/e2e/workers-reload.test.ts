/**
 * server.workers: 2, what a reload's answer promises: POST /admin/reload (and a SIGHUP's log line)
 * settles only once every worker runs the new generation, or says which did not.
 *
 * - After a 200, no worker serves the old config: an s3_api credential the reload removed is
 *   refused by every worker, at once (before, the primary answered as soon as it had reloaded
 *   itself, and the child went on accepting the key until it had reloaded too). The child's
 *   reload is made slow on purpose: the config changes jwt.jwks_url each time, and the JWKS
 *   answers every fetch but the first (the primary's) of each URL late, so a child that is still
 *   reloading when the answer comes shows whatever process got the admin call.
 * - A child that cannot apply the reload (its fetch of the new JWKS fails) makes the answer a 500
 *   "partial" naming it, with where every worker stands.
 * - A child that does not answer (stopped) makes the SIGHUP's reload end, after the reload wait,
 *   with an error line naming it; it catches up once it runs again.
 * - A child restarting when the reload comes is waited for (its replacement starts on the new
 *   generation); two reloads at once each answer with workers on their generation or a later one.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { renameSync, writeFileSync } from "node:fs";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { freePort } from "../fixtures/services.ts";
import { makeKeyPair, nowSec, signWith, tempDir, type TestKey } from "../fixtures/jwt.ts";
import { smithyPresigned } from "../fronts/s3/helpers.ts";
import { waitFor } from "../helpers/wait.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(60_000);

const UPSTREAM = { accessKeyId: "AKIDUPSTREAMREAD", secretAccessKey: "upstream-secret-key-0123456789" };
const KEPT = { accessKeyId: "AKIDWORKERSKEPT1", secretAccessKey: "workers-kept-secret-0123456789" };
const GONE = { accessKeyId: "AKIDWORKERSGONE1", secretAccessKey: "workers-gone-secret-0123456789" };
/** How late the JWKS answers a URL's second and later fetches in "slow" mode (a child's reload). */
const SLOW_MS = 1500;

let s3: S3Fixture;
let keys: { dir: string; cleanup: () => void };
let key: TestKey;
let admin: string;
let jwks: ReturnType<typeof Bun.serve>;
/** Fetches of each JWKS path so far, and how each path answers its second and later fetches. */
const jwksFetches = new Map<string, number>();
const jwksMode = new Map<string, "slow" | "fail">();
let jwksPaths = 0;

/** A new JWKS URL (a reload to it loads its keys before the swap, in every process), answering later fetches as `mode` says. */
function jwksUrl(mode?: "slow" | "fail"): string {
  const path = `/jwks-${++jwksPaths}.json`;
  if (mode) jwksMode.set(path, mode);
  return `http://127.0.0.1:${jwks.port}${path}`;
}

beforeAll(async () => {
  keys = tempDir();
  key = await makeKeyPair("RS256", keys.dir, "workers-reload");
  admin = await signWith(key, { sub: "ops", role: "admin", exp: nowSec() + 3600 });
  jwks = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      const n = (jwksFetches.get(path) ?? 0) + 1;
      jwksFetches.set(path, n);
      const mode = n > 1 ? jwksMode.get(path) : undefined;
      if (mode === "fail") return new Response("down", { status: 503 });
      if (mode === "slow") await Bun.sleep(SLOW_MS); // a slow JWKS: what keeps the child's reload going
      return Response.json({ keys: [key.jwk] });
    },
  });
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...UPSTREAM, buckets: ["data"] }] });
  await s3.put("data", "obj.txt", "shared body", { contentType: "text/plain" });
});
afterAll(async () => {
  jwks?.stop(true);
  await s3?.stop();
  keys?.cleanup();
});

function config(o: { s3Port: number; jwksUrl: string; gone: boolean }): string {
  const cred = (c: typeof KEPT, id: string) => `    - access_key_id: "${c.accessKeyId}"\n      secret_access_key: "${c.secretAccessKey}"\n      identity: ${id}\n      buckets: { data: [read] }\n`;
  return `server: { address: 127.0.0.1, port: 0, workers: 2 }
jwt:
  enabled: true
  algorithm: RS256
  jwks_url: "${o.jwksUrl}"
  admin_claims: [{ claim: role, operator: equals, value: admin }]
buckets:
  - name: data
    path_prefix: /data
    s3: { bucket: data, endpoint: "${s3.endpoint}", access_key: "${UPSTREAM.accessKeyId}", secret_key: "${UPSTREAM.secretAccessKey}" }
s3_api:
  enabled: true
  address: 127.0.0.1
  port: ${o.s3Port}
  region: us-east-1
  credentials:
${cred(KEPT, "kept")}${o.gone ? cred(GONE, "gone") : ""}`;
}

/** Replaces the config file atomically (a reload never reads a half-written file). */
function writeConfig(px: ProxyProcess, yaml: string): void {
  const tmp = `${px.configPath}.tmp`;
  writeFileSync(tmp, yaml);
  renameSync(tmp, px.configPath);
}

interface Group {
  px: ProxyProcess;
  s3Port: number;
  pids: number[];
}

async function startGroup(opts: { env?: Record<string, string> } = {}): Promise<Group> {
  const s3Port = freePort();
  const px = await startProxy(config({ s3Port, jwksUrl: jwksUrl(), gone: true }), opts);
  const listening = await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "listening" && l.worker === w)));
  return { px, s3Port, pids: listening.map((l) => Number(l.pid)) };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function adminReload(px: ProxyProcess): Promise<{ status: number; body: any }> {
  const res = await fetch(px.url("/admin/reload"), { method: "POST", headers: { authorization: `Bearer ${admin}`, connection: "close" } });
  return { status: res.status, body: await res.json() };
}

/** Which process served the n-th admin call (from 0): its access line (calls are sequential). */
async function adminServedBy(px: ProxyProcess, n: number): Promise<unknown> {
  const lines = () => px.logs().filter((l) => l.msg === "request" && l.path === "/admin/reload");
  await px.waitForLog(() => lines().length > n);
  return lines()[n]!.worker;
}

/**
 * A presigned GET with GONE's key on new connections (SO_REUSEPORT spreads them over both
 * processes) until each process has answered at least `perWorker` since now (the S3 access log
 * names the process). Returns every status seen.
 */
async function goneKeyStatuses(g: Group, perWorker = 4): Promise<number[]> {
  const mark = g.px.logs().length;
  const statuses: number[] = [];
  const answered = (w: number) =>
    g.px
      .logs()
      .slice(mark)
      .filter((l) => l.msg === "request" && l.front === "s3" && l.worker === w).length;
  await waitFor(
    async () => {
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          const v = await smithyPresigned({ creds: GONE, date: new Date(), host: `127.0.0.1:${g.s3Port}`, path: "/data/obj.txt", expiresIn: 300 });
          const res = await fetch(`http://127.0.0.1:${g.s3Port}${v.rawPath}?${v.rawQuery}`, { headers: { connection: "close" } });
          await res.arrayBuffer();
          statuses.push(res.status);
        }),
      );
      return answered(0) >= perWorker && answered(1) >= perWorker;
    },
    { timeoutMs: 20_000, intervalMs: 0, message: () => `both workers to answer (worker 0: ${answered(0)}, worker 1: ${answered(1)})` },
  );
  return statuses;
}

// The four run at once: each has its own group (its own S3 port) and its own JWKS paths, and
// mostly waits (slow JWKS fetches, a stopped child's reload wait, a child's restart).
test.concurrent("after POST /admin/reload answers 200, every worker refuses the s3_api key it removed and accepts it once another restores it (on whichever process the call lands)", async () => {
  const g = await startGroup();
  await using px = g.px;
  expect(new Set(await goneKeyStatuses(g))).toEqual(new Set([200]));
  const servedBy = new Set<unknown>();
  const answers: Array<{ status: number; body: unknown }> = [];
  for (let generation = 2; servedBy.size < 2; generation++) {
    if (generation > 30) throw new Error(`admin reloads only reached workers ${[...servedBy]}`);
    // Every other reload removes the key, the next one restores it; the child's reload is slow each time.
    const gone = generation % 2 === 1;
    writeConfig(px, config({ s3Port: g.s3Port, jwksUrl: jwksUrl("slow"), gone }));
    const r = await adminReload(px);
    // At once, on every worker (a worker still on the previous generation shows here): the
    // answers that are not the new config's.
    const statuses = await goneKeyStatuses(g);
    expect({ generation, stale: statuses.filter((s) => s !== (gone ? 200 : 403)).length, of: statuses.length }).toEqual({ generation, stale: 0, of: statuses.length });
    answers.push(r);
    servedBy.add(await adminServedBy(px, generation - 2));
  }
  // Every answer said so: both workers on its generation.
  expect(answers).toEqual(
    answers.map((_, i) => ({
      status: 200,
      body: {
        status: "reloaded",
        generation: i + 2,
        workers: [
          { worker: 0, status: "reloaded", generation: i + 2 },
          { worker: 1, status: "reloaded", generation: i + 2 },
        ],
      },
    })),
  );
  expect(await px.stop()).toBe(0);
});

test.concurrent("a child that cannot apply the reload: 500 'partial' naming it, with where every worker stands; the next good reload brings both back together", async () => {
  const g = await startGroup();
  await using px = g.px;
  writeConfig(px, config({ s3Port: g.s3Port, jwksUrl: jwksUrl("fail"), gone: false }));
  const r = await adminReload(px);
  expect(r.status).toBe(500);
  expect(r.body).toMatchObject({
    status: "partial",
    generation: 2,
    workers: [
      { worker: 0, status: "reloaded", generation: 2 },
      { worker: 1, status: "failed", generation: 1 },
    ],
  });
  expect(r.body.workers[1].error).toContain("jwt.jwks_url");
  expect(r.body.error).toContain("worker 1: failed");
  // The primary logs it too.
  const line = await px.waitForLog((l) => l.msg === "reload incomplete: not every worker runs the new generation");
  expect(line).toMatchObject({ generation: 2, not_reloaded: [{ worker: 1, status: "failed", generation: 1 }] });
  // (the workers disagree now: the primary refuses the key, the child still takes it)
  expect(new Set(await goneKeyStatuses(g))).toEqual(new Set([200, 403]));

  writeConfig(px, config({ s3Port: g.s3Port, jwksUrl: jwksUrl(), gone: false }));
  const again = await adminReload(px);
  expect(again).toMatchObject({ status: 200, body: { status: "reloaded", generation: 3, workers: [{ worker: 0, generation: 3 }, { worker: 1, status: "reloaded", generation: 3 }] } });
  expect(new Set(await goneKeyStatuses(g))).toEqual(new Set([403]));
  expect(await px.stop()).toBe(0);
});

test.concurrent("a child that does not answer (stopped): the SIGHUP's reload ends after the reload wait with an error line naming it; it catches up once it runs again", async () => {
  const g = await startGroup({ env: { YATAGARASU_RELOAD_WAIT_MS: "1000" } });
  await using px = g.px;
  process.kill(g.pids[1]!, "SIGSTOP");
  try {
    writeConfig(px, config({ s3Port: g.s3Port, jwksUrl: jwksUrl(), gone: false }));
    px.signal("SIGHUP");
    const line = await px.waitForLog((l) => l.msg === "reload incomplete: not every worker runs the new generation");
    expect(line).toMatchObject({ generation: 2, not_reloaded: [{ worker: 1, status: "no answer", generation: 1 }] });
  } finally {
    process.kill(g.pids[1]!, "SIGCONT");
  }
  await px.waitForLog((l) => l.msg === "config reloaded" && l.worker === 1 && l.generation === 2);
  expect(new Set(await goneKeyStatuses(g))).toEqual(new Set([403]));
  // The next reload reaches both, and says so. (On a loaded machine the child may take longer than
  // this test's 1 s reload wait to apply one: then the primary says so, and the next SIGHUP tries again.)
  let reached: Record<string, unknown> | undefined;
  for (let generation = 3; reached === undefined && generation < 8; generation++) {
    px.signal("SIGHUP");
    const l = await px.waitForLog((l) => (l.msg === "every worker reloaded" || l.msg === "reload incomplete: not every worker runs the new generation") && l.generation === generation);
    if (l.msg === "every worker reloaded") reached = l;
  }
  expect(reached).toMatchObject({ workers: 2 });
  expect(await px.stop()).toBe(0);
});

test.concurrent("a child restarting when the reload comes is waited for (its replacement reports the new generation); two reloads at once each answer with every worker on their generation or later", async () => {
  const g = await startGroup();
  await using px = g.px;
  process.kill(g.pids[1]!, "SIGKILL");
  await px.waitForLog((l) => l.msg === "worker exited unexpectedly; restarting");
  // Only the primary listens now: the call is its own, while the child's slot is empty.
  writeConfig(px, config({ s3Port: g.s3Port, jwksUrl: jwksUrl(), gone: false }));
  const r = await adminReload(px);
  expect(r).toEqual({
    status: 200,
    body: {
      status: "reloaded",
      generation: 2,
      workers: [
        { worker: 0, status: "reloaded", generation: 2 },
        { worker: 1, status: "reloaded", generation: 2 },
      ],
    },
  });
  // (worker 1's report came from the replacement: the killed child never ran generation 2)
  expect(new Set(await goneKeyStatuses(g))).toEqual(new Set([403]));

  // Two at once (the queued reload of src/app.ts: the second is one more reload after the first).
  writeConfig(px, config({ s3Port: g.s3Port, jwksUrl: jwksUrl("slow"), gone: true }));
  const both = await Promise.all([adminReload(px), adminReload(px)]);
  expect(both.map((a) => a.status)).toEqual([200, 200]);
  expect(both.map((a) => a.body.generation).sort()).toEqual([3, 4]);
  for (const a of both) {
    expect(a.body.workers.map((w: { worker: number; status: string }) => [w.worker, w.status])).toEqual([
      [0, "reloaded"],
      [1, "reloaded"],
    ]);
    for (const w of a.body.workers) expect(w.generation).toBeGreaterThanOrEqual(a.body.generation);
  }
  expect(new Set(await goneKeyStatuses(g))).toEqual(new Set([200]));
  expect(await px.stop()).toBe(0);
});
