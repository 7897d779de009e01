/**
 * server.workers: 2 end to end: a primary and two worker processes sharing one port
 * (SO_REUSEPORT); both serve requests, SIGHUP reloads every worker, the primary's metrics listener
 * merges both workers, and SIGTERM stops everything with exit code 0.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

let s3: S3Fixture;
let px: ProxyProcess;
let workerPids: number[] = [];
let served200 = 0;

const config = (names: string[]) =>
  `server: { address: 127.0.0.1, port: 0, workers: 2 }\nmetrics: { enabled: true, address: 127.0.0.1, port: 0 }\nbuckets:\n` +
  names.map((n) => `  - name: ${n}\n    path_prefix: /${n}\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n`).join("");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

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

test("the primary logs 'primary started' with the shared port and the metrics port; both workers listen on that port", () => {
  const primary = px.logs().find((l) => l.msg === "primary started")!;
  expect(primary).toMatchObject({ workers: 2, port: px.port });
  expect(Number(primary.metrics_port)).toBe(px.metricsPort!);
  const workers = px.logs().filter((l) => l.msg === "listening");
  expect(workers.map((l) => [l.worker, l.port]).sort()).toEqual([
    [0, px.port],
    [1, px.port],
  ]);
  expect(new Set(workerPids).size).toBe(2);
  expect(workerPids).not.toContain(px.proc.pid);
});

test("requests on the shared port succeed and both workers serve some of them", async () => {
  const seen = () => new Set(px.logs().filter((l) => l.msg === "request" && l.path === "/one/obj.txt").map((l) => l.worker));
  const deadline = Date.now() + 10_000;
  while (seen().size < 2) {
    if (Date.now() > deadline) throw new Error(`only workers ${[...seen()]} served requests`);
    await Promise.all(Array.from({ length: 4 }, () => getOk("/one/obj.txt")));
  }
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
  expect(text).toContain('yatagarasu_build_info{version="0.1.0"} 1\n');
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
});

test("SIGTERM stops the primary and both workers; exit code 0", async () => {
  expect(workerPids.every(alive)).toBe(true);
  expect(await px.stop()).toBe(0);
  expect(workerPids.filter(alive)).toEqual([]);
  expect(px.logs().filter((l) => l.msg === "stopped").map((l) => l.worker).sort()).toEqual([0, 1]);
  expect(px.logs().some((l) => l.msg === "primary stopped")).toBe(true);
});
