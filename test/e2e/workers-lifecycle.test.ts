/**
 * server.workers: 2, what happens to a process of the group: a child killed and restarted (the
 * merged counters never go backwards), and the group's shutdown when a signal reaches the whole
 * process group (each process counts it once; a second one cuts every drain, and the cut transfers
 * are still logged).
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { command, startProxy, type ProxyProcess, stoppedWorkers } from "./harness.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const BIG = 200_000;
let s3: S3Fixture;

const config = () =>
  // (buffer_threshold_bytes small: the trickled big.bin, chunked, is held only up to it, then streams)
  `server: { address: 127.0.0.1, port: 0, workers: 2, shutdown_timeout: 30, buffer_threshold_bytes: 4096 }\nmetrics: { enabled: true, address: 127.0.0.1, port: 0 }\n` +
  `buckets:\n  - name: one\n    path_prefix: /one\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n`;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true }], credentials: [] });
  await s3.put("data", "obj.txt", "shared body", { contentType: "text/plain" });
  await s3.put("data", "big.bin", "x".repeat(BIG));
});
afterAll(async () => {
  await s3?.stop();
});

async function startGroup(): Promise<{ px: ProxyProcess; pids: number[] }> {
  const px = await startProxy(config());
  const listening = await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "listening" && l.worker === w)));
  return { px, pids: listening.map((l) => Number(l.pid)) };
}

/** Counter and histogram samples of a scrape, by series (gauges left out). */
function cumulative(text: string): Map<string, number> {
  const types = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1], m[2]);
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const series = line.slice(0, line.lastIndexOf(" "));
    const name = series.replace(/\{.*$/, "");
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, "");
    if (types.get(family) === "counter" || types.get(family) === "histogram") out.set(series, Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  return out;
}

/**
 * GETs of /one/obj.txt counted by the test, the merged counter of them in a scrape, and a wait
 * until `worker` has served some (its access lines tell).
 */
function counting(px: ProxyProcess, workers: number) {
  const scrape = async () => (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
  const requests = (text: string) => Number(/^yatagarasu_http_requests_total\{bucket="one",method="GET",status="200"\} (\S+)$/m.exec(text)?.[1] ?? 0);
  const servedBy = (w: number) => px.logs().filter((l) => l.msg === "request" && l.path === "/one/obj.txt" && l.worker === w).length;
  let served = 0;
  const get = async () => {
    const res = await fetch(px.url("/one/obj.txt"), { headers: { connection: "close" } });
    expect(await res.text()).toBe("shared body");
    served++;
  };
  /** Sends GETs in fours until `done()` holds, every access line of them logged first. */
  const serveUntil = (done: () => boolean, message: string) =>
    waitFor(
      async () => {
        await Promise.all(Array.from({ length: 4 }, get));
        await px.waitForLog(() => Array.from({ length: workers }, (_, w) => servedBy(w)).reduce((a, b) => a + b, 0) === served);
        return done();
      },
      { timeoutMs: 10_000, intervalMs: 0, message },
    );
  return { scrape, requests, servedBy, serveUntil, served: () => served };
}

/** A group of two whose child has served some GETs, and a scrape taken then (its count checked). */
async function groupServing() {
  const group = await startGroup();
  const px = group.px;
  const c = counting(px, 2);
  try {
    // Until the child has served some (its access lines tell).
    await c.serveUntil(() => c.servedBy(1) > 0, "the child to serve some requests");
    const before = await c.scrape();
    expect(c.requests(before)).toBe(c.served());
    return { group, px, before, ...c };
  } catch (err) {
    await px.stop();
    throw err;
  }
}

/** The counter and histogram series of `before` that are lower (or missing) in `after`. */
const wentDown = (before: string, after: string) => {
  const [b, a] = [cumulative(before), cumulative(after)];
  return [...b].filter(([series, v]) => !((a.get(series) ?? -1) >= v));
};

test("a child killed with SIGKILL is restarted and the merged counters and histograms do not go backwards", async () => {
  const { group, px, scrape, requests, serveUntil, served, before } = await groupServing();
  await using _px = px;

  expect(group.pids[1]).not.toBe(px.proc.pid!);
  process.kill(group.pids[1], "SIGKILL");
  const restarted = await px.waitForLog((l) => l.msg === "listening" && l.worker === 1 && Number(l.pid) !== group.pids[1]);
  const after = await scrape();
  expect(wentDown(before, after)).toEqual([]);
  expect(requests(after)).toBe(served());
  // Gauges are the live processes' only.
  expect(after).toContain("yatagarasu_http_requests_in_flight 0\n");
  expect(after).toMatch(/\nyatagarasu_build_info\{version="0\.1\.0",commit="[^"]+"\} 1\n/);

  // The replacement's own counts add to what its predecessor had counted.
  await serveUntil(
    () =>
      px
        .logs()
        .slice(px.logs().indexOf(restarted))
        .some((l) => l.msg === "request" && l.worker === 1),
    "the restarted child to serve some requests",
  );
  expect(requests(await scrape())).toBe(served());
  expect(await px.stop()).toBe(0);
});

test("a child that does not answer a scrape in time (stopped, busy) keeps its last counts in the merged counters", async () => {
  const { group, px, scrape, requests, served, before } = await groupServing();
  await using _px = px;
  process.kill(group.pids[1], "SIGSTOP");
  let during: string;
  try {
    during = await scrape(); // the child cannot answer: the primary waits 1 s for it
  } finally {
    process.kill(group.pids[1], "SIGCONT");
  }
  expect(wentDown(before, during)).toEqual([]);
  expect(requests(during)).toBe(served());
  expect(await px.stop()).toBe(0);
});

test("a child that does not answer a scrape in time still counts in the merged gauges with what it last reported (a busy child's share did not vanish from cache bytes, in-flight...)", async () => {
  const cached = config().replace(`endpoint: "${s3.endpoint}" }\n`, `endpoint: "${s3.endpoint}" }\n    cache: { enabled: true }\n`);
  expect(cached).toContain("cache: { enabled: true }");
  const px = await startProxy(cached);
  await using _px = px;
  const listening = await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "listening" && l.worker === w)));
  const { scrape, servedBy, serveUntil } = counting(px, 2);
  await serveUntil(() => servedBy(0) > 0 && servedBy(1) > 0, "both workers to serve (and cache) obj.txt");
  const items = (text: string) => Number(/^yatagarasu_cache_items (\S+)$/m.exec(text)?.[1] ?? 0);
  expect(items(await scrape())).toBe(2);
  process.kill(Number(listening[1].pid), "SIGSTOP");
  let during: string;
  try {
    during = await scrape(); // the child cannot answer: the primary waits 1 s for it
  } finally {
    process.kill(Number(listening[1].pid), "SIGCONT");
  }
  expect(items(during)).toBe(2);
  expect(during).toMatch(/\nyatagarasu_build_info\{version="0\.1\.0",commit="[^"]+"\} 1\n/);
  expect(await px.stop()).toBe(0);
});

test("a child that dies while a scrape waits for another is not counted twice (its counts are retired once)", async () => {
  const px = await startProxy(config().replace("workers: 2", "workers: 3"));
  await using _px = px;
  const listening = await Promise.all([0, 1, 2].map((w) => px.waitForLog((l) => l.msg === "listening" && l.worker === w)));
  const pids = listening.map((l) => Number(l.pid));
  const { scrape, requests, servedBy, serveUntil, served } = counting(px, 3);
  await serveUntil(() => servedBy(1) > 0, "worker 1 to serve some requests");
  expect(requests(await scrape())).toBe(served());
  // Worker 2 cannot answer (the scrape waits 1 s for it); worker 1 answers at once, then dies.
  process.kill(pids[2], "SIGSTOP");
  let during: string;
  try {
    const pending = scrape();
    await Bun.sleep(300);
    process.kill(pids[1], "SIGKILL");
    during = await pending;
  } finally {
    process.kill(pids[2], "SIGCONT");
  }
  expect(requests(during)).toBe(served());
  expect(requests(await scrape())).toBe(served());
  expect(await px.stop()).toBe(0);
});

// The last four run at once: each has its own group and mostly waits (a copy of the executable,
// a drain's deadline, a trickled body); none scrapes metrics, and only the last one touches the
// fixture's faults (big.bin, which no other test reads).
test.concurrent("ps tells a child apart: its argv[0] is \"yatagarasu: worker N\" and its process name yatagarasu-wN, not /proc/self/exe and exe", async () => {
  const { px, pids } = await startGroup();
  await using _px = px;
  expect(pids[1]).not.toBe(px.proc.pid!);
  expect(readFileSync(`/proc/${pids[1]}/cmdline`, "utf8").split("\0")[0]).toBe("yatagarasu: worker 1");
  expect(readFileSync(`/proc/${pids[1]}/comm`, "utf8").trim()).toBe("yatagarasu-w1");
  // the primary keeps the command line it was started with
  expect(readFileSync(`/proc/${px.proc.pid}/cmdline`, "utf8")).not.toContain("worker");
  expect(await px.stop()).toBe(0);
});

test.concurrent("a child that dies after the executable was removed or replaced on disk (an upgrade in place) is restarted from the one running: the group keeps serving", async () => {
  const dir = mkdtempSync(join(tmpdir(), "yata-exe-"));
  try {
    // The group runs from a copy of the runtime (or binary), removed once it serves.
    const exe = join(dir, "exe");
    copyFileSync(command()[0], exe);
    chmodSync(exe, 0o755);
    await using px = await startProxy(config(), { prefix: ["sh", "-c", 'shift; exec "$0" "$@"', exe] });
    const first = await px.waitForLog((l) => l.msg === "listening" && l.worker === 1);
    rmSync(exe);
    process.kill(Number(first.pid), "SIGKILL");
    await px.waitForLog((l) => l.msg === "listening" && l.worker === 1 && l.pid !== first.pid);
    expect((await fetch(px.url("/one/obj.txt"))).status).toBe(200);
    expect(await px.stop()).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.concurrent("a child that cannot drain (stopped, wedged) is killed once the drain's deadline passes: the group exits, nothing is left on the port", async () => {
  const px = await startProxy(config().replace("shutdown_timeout: 30", "shutdown_timeout: 1"));
  await using _px = px;
  const listening = await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "listening" && l.worker === w)));
  const child = Number(listening[1].pid);
  process.kill(child, "SIGSTOP");
  const started = Date.now();
  try {
    px.signal("SIGTERM");
    // shutdown_timeout (1 s) + the 5 s grace, with room for a loaded machine
    const code = await Promise.race([px.exited, Bun.sleep(15_000).then(() => "still running")]);
    expect(code).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(5_000);
    await waitFor(
      () => {
        try {
          process.kill(child, 0);
          return false;
        } catch {
          return true;
        }
      },
      { timeoutMs: 5_000, message: "the stopped child to be gone" },
    );
    expect(px.logs().some((l) => l.msg === "workers still running after the drain: killing them")).toBe(true);
  } finally {
    try {
      process.kill(child, "SIGCONT");
    } catch {
      // gone
    }
  }
});

test.concurrent("SIGTERM to the whole process group drains each worker once; a second one cuts every drain and the cut transfers are still logged", async () => {
  const { pids, ...group } = await startGroup();
  await using px = group.px;
  s3.faults.set("/data/big.bin", { kind: "slowBody", bytesPerTick: 1000, ms: 50 });
  try {
    // Several transfers on separate connections: the kernel spreads them over both workers.
    const bodies = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const res = await fetch(px.url("/one/big.bin"), { headers: { connection: "close" } });
        expect(res.status).toBe(200);
        // Wrapped: an async function returning the body's promise would wait for the whole body.
        return {
          body: res.arrayBuffer().then(
            () => "complete",
            () => "cut",
          ),
        };
      }),
    );
    // What `kill -TERM -<pgid>` or a supervisor's control-group stop does: every process gets it.
    for (const pid of pids) process.kill(pid, "SIGTERM");
    await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "draining" && l.worker === w)));
    // Still draining: the one signal each got (twice, for the child: its own and the primary's word) cut nothing.
    expect(px.logs().filter((l) => l.msg === "request" && l.path === "/one/big.bin")).toEqual([]);
    expect(px.logs().some((l) => String(l.msg).startsWith("second signal"))).toBe(false);
    px.signal("SIGTERM");
    expect(await px.exited).toBe(0);
    expect(await Promise.all(bodies.map((b) => b.body))).toEqual(["cut", "cut", "cut", "cut"]);
    expect(px.logs().filter((l) => String(l.msg).startsWith("second signal")).map((l) => l.worker)).toEqual([0]);
    const lines = px.logs().filter((l) => l.msg === "request" && l.path === "/one/big.bin");
    expect(lines.length).toBe(4);
    for (const l of lines) expect(l).toMatchObject({ status: 200, error: "ClientClosedRequest" });
    expect(stoppedWorkers(px)).toEqual([0, 1]);
  } finally {
    s3.faults.delete("/data/big.bin");
  }
});
