/**
 * server.workers: 2 end to end: exactly two processes, the primary (worker 0, which serves too)
 * and one child (worker 1), sharing one port (SO_REUSEPORT); both serve requests, SIGHUP and
 * POST /admin/reload (on either process) reload both to the same generation, the primary's metrics listener merges both,
 * and SIGTERM stops everything with exit code 0.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { nowSec, sign } from "../fixtures/jwt.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { runCli, startProxy, type ProxyProcess, stoppedWorkers } from "./harness.ts";
import { waitFor } from "../helpers/wait.ts";
import { alive, childrenOf } from "../helpers/procs.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SECRET = "e2e-workers-hs256-secret-0123456789";

let s3: S3Fixture;
let px: ProxyProcess;
let workerPids: number[] = [];
let served200 = 0;

const config = (names: string[]) =>
  `server: { address: 127.0.0.1, port: 0, workers: 2 }\nmetrics: { enabled: true, address: 127.0.0.1, port: 0 }\n` +
  `jwt: { enabled: true, algorithm: HS256, secret: "${SECRET}", admin_claims: [{ claim: role, operator: equals, value: admin }] }\nbuckets:\n` +
  names.map((n) => `  - name: ${n}\n    path_prefix: /${n}\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n`).join("");

async function getOk(path: string): Promise<void> {
  const res = await fetch(px.url(path), { headers: { connection: "close" } });
  expect(res.status).toBe(200);
  expect(await res.text()).toBe("shared body");
  served200++;
}

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true }], credentials: [] });
  await s3.put("data", "obj.txt", "shared body", { contentType: "text/plain" });
  px = await startProxy(config(["one"]));
  const listening = await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "listening" && l.worker === w)));
  workerPids = listening.map((l) => Number(l.pid));
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

test("the primary logs 'primary started' with the shared port and the metrics port; it and its one child listen on that port", () => {
  const primary = px.logs().find((l) => l.msg === "primary started")!;
  expect(primary).toMatchObject({ workers: 2, port: px.port });
  expect(Number(primary.metrics_port)).toBe(px.metricsPort!);
  const workers = px.logs().filter((l) => l.msg === "listening");
  expect(workers.map((l) => [l.worker, l.port]).sort()).toEqual([
    [0, px.port],
    [1, px.port],
  ]);
  expect(new Set(workerPids).size).toBe(2);
  // Worker 0 is the primary itself; worker 1 is its only child: two processes in all, none only supervises.
  expect(workerPids[0]).toBe(px.proc.pid!);
  expect(childrenOf(px.proc.pid!)).toEqual([workerPids[1]]);
});

test("requests on the shared port succeed and both workers serve some of them", async () => {
  const seen = () => new Set(px.logs().filter((l) => l.msg === "request" && l.path === "/one/obj.txt").map((l) => l.worker));
  await waitFor(
    async () => {
      await Promise.all(Array.from({ length: 4 }, () => getOk("/one/obj.txt")));
      return seen().size === 2;
    },
    { timeoutMs: 10_000, intervalMs: 0, message: () => `both workers to serve requests (only ${[...seen()]} did)` },
  );
  // The access-log lines arrive on the shared stdout; every 200 sent so far is logged by one worker.
  await px.waitForLog(() => px.logs().filter((l) => l.msg === "request" && l.status === 200).length === served200);
  expect([...seen()].sort()).toEqual([0, 1]);
});

test("the primary's metrics listener merges both workers: requests_total equals the sum", async () => {
  const perWorker = [0, 1].map((w) => px.logs().filter((l) => l.msg === "request" && l.worker === w && l.bucket === "one" && l.status === 200).length);
  expect(perWorker[0] + perWorker[1]).toBe(served200);
  expect(perWorker[0]).toBeGreaterThan(0);
  expect(perWorker[1]).toBeGreaterThan(0);
  const text = await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
  const series = 'yatagarasu_http_requests_total{bucket="one",method="GET",status="200"} ';
  expect(text.split("\n").find((l) => l.startsWith(series))).toBe(series + served200);
  expect(text).toMatch(/\nyatagarasu_build_info\{version="0\.1\.0",commit="[^"]+"\} 1\n/);
});

test("two scrapes at once (an HA pair of Prometheus servers) both get every worker's gauges, at once", async () => {
  // Requests held in flight on both processes (20 connections: each lands on either worker).
  await s3.put("data", "held.txt", "held body", { contentType: "text/plain" });
  s3.faults.set("/data/held.txt", { kind: "delay", ms: 20_000 });
  const leave = new AbortController();
  const held = Array.from({ length: 20 }, () => fetch(px.url("/one/held.txt"), { headers: { connection: "close" }, signal: leave.signal }).catch(() => undefined));
  const inFlight = async () => {
    const text = await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
    return Number(/^yatagarasu_http_requests_in_flight (\d+)$/m.exec(text)?.[1]);
  };
  try {
    await waitFor(async () => (await inFlight()) === 20, { timeoutMs: 10_000, message: () => "20 requests in flight" });
    // The second scrape's wait for the child replaced the first's: that one waited its whole
    // second for an answer already taken, and rendered without the child's gauges.
    expect(await Promise.all([inFlight(), inFlight()])).toEqual([20, 20]);
  } finally {
    leave.abort();
    await Promise.all(held);
    s3.faults.delete("/data/held.txt");
  }
  await waitFor(async () => (await inFlight()) === 0, { timeoutMs: 10_000, message: () => "no request in flight" });
});

test("SIGHUP to the primary reloads every worker", async () => {
  px.writeConfig(config(["one", "two"]));
  px.signal("SIGHUP");
  const lines = await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "config reloaded" && l.worker === w)));
  for (const l of lines) expect(l).toMatchObject({ generation: 2, buckets: 2 });
  for (let i = 0; i < 6; i++) await getOk("/two/obj.txt");
  const text = await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
  expect(text).toContain("yatagarasu_config_generation 2\n");
  expect(text).toContain('yatagarasu_http_requests_total{bucket="two",method="GET",status="200"} 6\n');
  // one reload of the group is counted once, not once per worker (a refused one is counted once too)
  expect(text).toContain('yatagarasu_config_reloads_total{result="success"} 1\n');
  expect(text).toContain('yatagarasu_config_reloads_total{result="failure"} 0\n');
});

test("POST /admin/reload on either process reloads both", async () => {
  const admin = await sign({ sub: "ops", role: "admin", exp: nowSec() + 600 }, { alg: "HS256", key: SECRET });
  const servedBy = new Set<unknown>();
  let names = ["one", "two"];
  for (let generation = 3; servedBy.size < 2; generation++) {
    if (generation > 40) throw new Error(`admin reloads only reached workers ${[...servedBy]}`);
    names = [...names, `b${generation}`];
    px.writeConfig(config(names));
    const res = await fetch(px.url("/admin/reload"), { method: "POST", headers: { authorization: `Bearer ${admin}`, connection: "close" } });
    // Answered once both run it, and says so.
    expect(await res.json()).toEqual({
      status: "reloaded",
      generation,
      workers: [
        { worker: 0, status: "reloaded", generation },
        { worker: 1, status: "reloaded", generation },
      ],
    });
    // Which process served it: the access line of this call (calls are sequential, so it is the latest one).
    const adminLines = () => px.logs().filter((l) => l.msg === "request" && l.path === "/admin/reload");
    await px.waitForLog(() => adminLines().length === generation - 2);
    const line = adminLines()[generation - 3];
    expect(line.status).toBe(200);
    servedBy.add(line.worker);
    // Both processes reach this generation, whichever one got the call.
    const reloaded = await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "config reloaded" && l.worker === w && l.generation === generation)));
    for (const l of reloaded) expect(l).toMatchObject({ buckets: names.length });
  }
  expect([...servedBy].sort()).toEqual([0, 1]);
});

/** The generations a worker has logged "config reloaded" for, in order. */
const generations = (w: number) => px.logs().filter((l) => l.msg === "config reloaded" && l.worker === w).map((l) => Number(l.generation));
const latest = (w: number) => Math.max(1, ...generations(w));

test("SIGHUP to the child (not the primary) reloads every worker, to the same generation", async () => {
  const from = latest(0);
  expect(latest(1)).toBe(from);
  const names = ["one", "two", "hup"];
  px.writeConfig(config(names));
  process.kill(workerPids[1], "SIGHUP");
  const lines = await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "config reloaded" && l.worker === w && Number(l.generation) > from)));
  for (const l of lines) expect(l).toMatchObject({ generation: from + 1, buckets: names.length });
  const text = await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
  expect(text).toContain(`yatagarasu_config_generation ${from + 1}\n`);
});

test("a burst of SIGHUPs to both processes ends with both on the primary's generation", async () => {
  const from = latest(0);
  const seen = generations(1).length;
  // As `pkill -HUP` does, several times in a row: each process gets every signal.
  for (let i = 0; i < 5; i++) for (const pid of workerPids) process.kill(pid, "SIGHUP");
  await waitFor(() => latest(0) > from && latest(1) === latest(0), { timeoutMs: 15_000, message: () => `the same generation (primary ${generations(0)}, child ${generations(1)})` });
  // The child only ever reaches generations the primary reached: it follows the primary's.
  const primary = new Set(generations(0));
  expect(generations(1).slice(seen).filter((g) => !primary.has(g))).toEqual([]);
});

test("another instance with workers started on the same port is refused (exit 3, already in use), not let in to share the connections", async () => {
  const port = px.port;
  const dir = mkdtempSync(join(tmpdir(), "yata-second-"));
  try {
    const file = join(dir, "second.yaml");
    writeFileSync(file, config(["other"]).replace("port: 0, workers: 2", `port: ${port}, workers: 2`).replace(/metrics: \{[^}]*\}\n/, ""));
    const second = await runCli(["--config", file]);
    expect(second.code).toBe(3);
    expect(second.stderr + second.stdout).toContain(`main address 127.0.0.1:${port} is already in use`);
    // the first instance still answers every request on its port
    for (let i = 0; i < 6; i++) await getOk("/one/obj.txt");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("SIGTERM stops the primary and its child; exit code 0", async () => {
  expect(workerPids.every(alive)).toBe(true);
  expect(await px.stop()).toBe(0);
  expect(workerPids.filter(alive)).toEqual([]);
  expect(stoppedWorkers(px)).toEqual([0, 1]);
  expect(px.logs().some((l) => l.msg === "primary stopped")).toBe(true);
});
