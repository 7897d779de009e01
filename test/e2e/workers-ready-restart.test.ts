/**
 * server.workers: 2, a child restarted after a crash: it listened (SO_REUSEPORT: the kernel gives
 * it a share of the connections at once) before its first readiness probe round had answered, so
 * for as long as that round took it answered /ready 503 "not probed yet" beside a ready primary,
 * and a scrape then read `yatagarasu_ready` 0 (min over the workers) for a group that was ready.
 * A child now listens once its first probe round is done. The upstream here answers the probe's
 * HEAD after PROBE_MS, so that window is wide enough to be seen every time.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { startProxy } from "./harness.ts";
import { waitFor } from "../helpers/wait.ts";

setDefaultTimeout(60_000);

const PROBE_MS = 1500;
let upstream: Server;
let endpoint: string;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    if (req.method === "HEAD") setTimeout(() => res.writeHead(200, { "content-length": "0" }).end(), PROBE_MS);
    else res.writeHead(404, { "content-type": "application/xml" }).end("<Error><Code>NoSuchKey</Code></Error>");
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  endpoint = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
afterAll(() => {
  upstream.closeAllConnections();
  upstream.close();
});

test("a restarted child listens only once its first probe round is done: /ready stays 200 and yatagarasu_ready 1 across the restart", async () => {
  await using px = await startProxy(
    `server: { address: 127.0.0.1, port: 0, workers: 2, readiness_probe_interval_seconds: 3600 }\nmetrics: { enabled: true, address: 127.0.0.1, port: 0 }\nbuckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: data, endpoint: "${endpoint}" }\n`,
  );
  const first = await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "listening" && l.worker === w)));
  const scrapeReady = async () => /^yatagarasu_ready (\d)/m.exec(await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text())?.[1];
  await waitFor(async () => (await scrapeReady()) === "1", { timeoutMs: 20_000, message: () => "the group ready" });
  const pid = Number(first[1]!.pid);
  process.kill(pid, "SIGKILL");
  await px.waitForLog((l) => l.msg === "listening" && l.worker === 1 && Number(l.pid) !== pid, 20_000);
  // at once: the replacement serves now (a share of fresh connections reaches it)
  const [metric, ...ready] = await Promise.all([scrapeReady(), ...Array.from({ length: 12 }, async () => (await fetch(px.url("/ready"), { headers: { connection: "close" } })).status)]);
  expect({ metric, ready }).toEqual({ metric: "1", ready: Array(12).fill(200) });
});
