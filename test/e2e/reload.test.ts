/**
 * Hot reload end to end (SIGHUP to the real process): new buckets route, bad configs and
 * restart-only changes are refused while the old config keeps serving, in-flight requests finish,
 * and repeated reloads under continuous load drop no request.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { renameSync, writeFileSync } from "node:fs";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
let px: ProxyProcess;

const bucket = (name: string) => `  - name: ${name}\n    path_prefix: /${name}\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n`;
const config = (names: string[], server = "address: 127.0.0.1, port: 0") =>
  `server: { ${server} }\nmetrics: { enabled: true, address: 127.0.0.1, port: 0 }\nbuckets:\n${names.map(bucket).join("")}`;

/** Replaces the config file atomically (a reload never reads a half-written file). */
function writeConfigAtomically(yaml: string): void {
  const tmp = `${px.configPath}.tmp`;
  writeFileSync(tmp, yaml);
  renameSync(tmp, px.configPath);
}

async function scrape(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
}
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const FAILED = "config reload failed; the previous config keeps serving";
const count = (msg: string) => px.logs().filter((l) => l.msg === msg).length;

/** Sends SIGHUP and waits for the next "config reloaded" / reload-failed line. */
async function reload(expectMsg: "config reloaded" | typeof FAILED): Promise<Record<string, unknown>> {
  const before = count(expectMsg);
  px.signal("SIGHUP");
  await px.waitForLog(() => count(expectMsg) > before);
  return px.logs().filter((l) => l.msg === expectMsg)[before];
}

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true }], credentials: [] });
  await s3.put("data", "obj.txt", "object body", { contentType: "text/plain" });
  await s3.put("data", "slow.txt", "slow body", { contentType: "text/plain" });
  px = await startProxy(config(["one"]));
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

describe("SIGHUP reload", () => {
  test("a bucket added to the file routes after SIGHUP; success counter 1, generation 2", async () => {
    const before = await fetch(px.url("/two/obj.txt"));
    expect(before.status).toBe(404);
    await before.arrayBuffer();

    writeConfigAtomically(config(["one", "two"]));
    const line = await reload("config reloaded");
    expect(line).toMatchObject({ level: "info", generation: 2, buckets: 2 });

    const res = await fetch(px.url("/two/obj.txt"));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("object body");
    const m = await scrape();
    expect(sample(m, 'yatagarasu_config_reloads_total{result="success"}')).toBe(1);
    expect(sample(m, 'yatagarasu_config_reloads_total{result="failure"}')).toBe(0);
    expect(sample(m, "yatagarasu_config_generation")).toBe(2);
  });

  test("an invalid config is refused: the old config keeps serving, the error is logged and counted", async () => {
    // (and 60 unknown keys: a file of thousands made one log line of megabytes, past what log shippers take as a line)
    writeConfigAtomically(`server: { address: 127.0.0.1, port: 0, workers: -1 }\nbuckets: []\n${Array.from({ length: 60 }, (_, i) => `k${i}: 1\n`).join("")}`);
    const line = await reload(FAILED);
    expect(line).toMatchObject({ level: "error", generation: 2 });
    expect(String(line.error)).toContain("buckets");
    // each problem on its own, as a refused start logs them (they were only joined by newlines in `error`)
    expect(line.problems).toEqual(String(line.error).split("\n"));
    // the first 50, then how many more
    expect((line.problems as string[]).length).toBe(51);
    expect((line.problems as string[])[50]).toBe("... and 12 more (yatagarasu --check --config PATH lists every one)");

    for (const p of ["/one/obj.txt", "/two/obj.txt"]) {
      const res = await fetch(px.url(p));
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("object body");
    }
    const m = await scrape();
    expect(sample(m, 'yatagarasu_config_reloads_total{result="failure"}')).toBe(1);
    expect(sample(m, 'yatagarasu_config_reloads_total{result="success"}')).toBe(1);
    expect(sample(m, "yatagarasu_config_generation")).toBe(2);
  });

  test("changing server.port on reload is refused with a message saying a restart is needed", async () => {
    writeConfigAtomically("# the listener\n" + config(["one", "two", "three"], "address: 127.0.0.1, port: 18099"));
    const line = await reload(FAILED);
    // (the running value and the one written, after where the file writes it: it named the key
    // only, then the key and both values without the file:line every other config message has)
    expect(String(line.error)).toStartWith(`${px.configPath}:2: server.port (0 → 18099) changed: `);
    expect(String(line.error)).toContain("restart the process");

    const res = await fetch(px.url("/three/obj.txt"));
    expect(res.status).toBe(404);
    await res.arrayBuffer();
    const m = await scrape();
    expect(sample(m, 'yatagarasu_config_reloads_total{result="failure"}')).toBe(2);
    expect(sample(m, "yatagarasu_config_generation")).toBe(2);
  });

  test("a request in flight when the reload completes finishes with 200 and the full body", async () => {
    // Longer than a reload takes (the config is parsed on a worker thread that starts per reload: 0.1-0.5 s).
    s3.faults.set("/data/slow.txt", { kind: "delay", ms: 3000 });
    try {
      const inflight = fetch(px.url("/one/slow.txt"));
      await s3.waitForRequest((r) => r.method === "GET" && r.pathname === "/data/slow.txt"); // not beforeAll's PUT
      writeConfigAtomically(config(["one"]));
      const line = await reload("config reloaded");
      expect(line.generation).toBe(3);
      // The proxy has not answered it yet (it logs every request when it answers).
      expect(px.logs().some((l) => l.msg === "request" && l.path === "/one/slow.txt")).toBe(false);
      const res = await inflight;
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("slow body");
    } finally {
      s3.faults.delete("/data/slow.txt");
    }
  });

  test("logging.level follows a reload: access lines stop at warn and come back at info; the reload to warn still says it succeeded (its info line was hidden by the new level)", async () => {
    const successes = async () => sample(await scrape(), 'yatagarasu_config_reloads_total{result="success"}')!;
    const before = await successes();
    writeConfigAtomically(config(["one", "two"]).replace("buckets:", "logging: { level: warn }\nbuckets:"));
    const line = await reload("config reloaded");
    expect(line).toMatchObject({ level: "info", generation: expect.any(Number) });
    expect(await successes()).toBe(before + 1);
    const quiet = await fetch(px.url("/one/obj.txt"), { headers: { "x-request-id": "while-warn" } });
    await quiet.arrayBuffer();
    writeConfigAtomically(config(["one", "two"]));
    await reload("config reloaded");
    const loud = await fetch(px.url("/one/obj.txt"), { headers: { "x-request-id": "while-info" } });
    await loud.arrayBuffer();
    await px.waitForLog((l) => l.msg === "request" && l.request_id === "while-info");
    expect(px.logs().filter((l) => l.request_id === "while-warn")).toEqual([]);
  });

  test("repeated reloads under continuous load (400 GETs, 8 at a time, SIGHUP every 30) drop no request", async () => {
    const configs = [config(["one", "two"]), config(["one"])];
    const successesBefore = sample(await scrape(), 'yatagarasu_config_reloads_total{result="success"}')!;
    const failuresBefore = sample(await scrape(), 'yatagarasu_config_reloads_total{result="failure"}')!;
    const total = 400;
    const statuses: number[] = [];
    let next = 0;
    let signals = 0;
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        if (i > 0 && i % 30 === 0) {
          writeConfigAtomically(configs[signals++ % 2]);
          px.signal("SIGHUP");
        }
        const res = await fetch(px.url("/one/obj.txt"));
        const body = await res.text();
        statuses.push(res.status === 200 && body === "object body" ? 200 : res.status || -1);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(signals).toBe(13);
    expect(statuses.length).toBe(total);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);

    // Every signal led to a reload or joined one already running; none failed.
    const m = await scrape();
    expect(sample(m, 'yatagarasu_config_reloads_total{result="failure"}')).toBe(failuresBefore);
    expect(sample(m, 'yatagarasu_config_reloads_total{result="success"}')!).toBeGreaterThan(successesBefore);
    const after = await fetch(px.url("/one/obj.txt"));
    expect(after.status).toBe(200);
    await after.arrayBuffer();
  });

  test("an S3 API listener or an audit trail that is off (enabled: false) does not make a reload restart-only, whatever its address, port or path say", async () => {
    // Written or dropped beside enabled: false, s3_api's address and port bind nothing; a reload
    // adding `s3_api: { enabled: false }` was refused ("s3_api.address, s3_api.port changed").
    for (const [names, s3Api] of [
      [["one", "two", "four"], "s3_api: { enabled: false }\n"],
      [["one", "two", "five"], "s3_api: { enabled: false, address: 127.0.0.2, port: 9 }\n"],
      [["one", "two", "six"], ""],
      // (the audit section too: a path beside enabled: false opens nothing)
      [["one", "two", "seven"], "audit: { enabled: false, path: /nonexistent/audit.log }\n"],
    ] as const) {
      const from = px.logs().length;
      writeConfigAtomically(config([...names]) + s3Api);
      px.signal("SIGHUP");
      // (an earlier test's queued reload of two buckets may still land: wait for the outcome of this file)
      const line = await waitFor(() => px.logs().slice(from).find((l) => (l.msg === "config reloaded" && l.buckets === 3) || (l.msg === FAILED && /s3_api|audit/.test(String(l.error)))));
      expect([line.msg, line.error]).toEqual(["config reloaded", undefined]);
      const res = await fetch(px.url(`/${names[2]}/obj.txt`));
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("object body");
    }
  });
});

describe("readiness across a reload", () => {
  type Ready = { ready: boolean; generation: number; reasons: string[]; buckets: Record<string, { ok: boolean }> };
  const readyNow = async () => {
    const r = await fetch(px.url("/ready"));
    return { status: r.status, body: (await r.json()) as Ready };
  };
  /** Polls /ready until `ok` holds (an earlier test's reloads may still be arriving). */
  const readyWhen = async (ok: (r: { status: number; body: Ready }) => boolean) => {
    for (let i = 0; i < 400; i++) {
      const r = await readyNow();
      if (ok(r)) return r;
      await Bun.sleep(10); // (polling /ready)
    }
    throw new Error(`/ready never matched: ${JSON.stringify(await readyNow())}`);
  };

  test("a reload that leaves a bucket's upstream as it was keeps its last probe result: /ready stays 200 (it answered 503 'not probed yet' until the new generation's first probe)", async () => {
    writeConfigAtomically(config(["one", "two"]));
    px.signal("SIGHUP");
    const before = await readyWhen((r) => r.status === 200 && r.body.buckets.one?.ok === true && r.body.buckets.two?.ok === true);
    // the new generation's first probes answer only after 1.5 s
    for (const path of ["/data", "/data/"]) s3.faults.set(path, { kind: "delay", ms: 1500, method: "HEAD", times: 1 });
    try {
      writeConfigAtomically(`${config(["one", "two"])}\n# a change that leaves every upstream as it was\n`);
      px.signal("SIGHUP");
      // the first answer of the new generation (well within the 1.5 s its own probes take)
      const after = await readyWhen((r) => r.body.generation > before.body.generation);
      expect([after.status, after.body.reasons]).toEqual([200, []]);
    } finally {
      for (const path of ["/data", "/data/"]) s3.faults.delete(path);
    }
  });
});
