/**
 * The readiness prober tells the log when a bucket's upstream stops (or starts again) answering its
 * probe. Until session 27 nothing was logged at any level: with `logging.level: warn`, a bucket
 * whose upstream went away (every request 502, /ready 503) left the log empty.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { probeId, Prober, type ProbeLog } from "../../src/observe/readiness.ts";

setDefaultTimeout(30_000);

function scripted(results: Array<{ ok: boolean; reason?: string }>) {
  let i = 0;
  return async () => results[Math.min(i++, results.length - 1)];
}

test("a target that fails is logged at warn once per reason (its first probe too), and at info when it is ready again", async () => {
  const lines: Array<[string, string, Record<string, unknown>]> = [];
  const log: ProbeLog = (level, msg, fields) => lines.push([level, msg, fields]);
  const prober = new Prober(
    [
      { id: "up", probe: scripted([{ ok: true }, { ok: false, reason: "upstream unreachable (ECONNREFUSED)" }, { ok: false, reason: "upstream unreachable (ECONNREFUSED)" }, { ok: false, reason: "HTTP 503" }, { ok: true }, { ok: true }]) },
      { id: probeId("rep", "secondary"), probe: scripted([{ ok: false, reason: "timed out" }, { ok: false, reason: "timed out" }]) },
      { id: "fine", probe: scripted([{ ok: true }]) },
    ],
    60_000,
    2000,
    undefined,
    log,
  );
  for (let i = 0; i < 6; i++) await prober.round();
  expect(lines).toEqual([
    ["warn", "upstream probe failed: not ready", { bucket: "rep", replica: "secondary", reason: "timed out" }],
    ["warn", "upstream probe failed: not ready", { bucket: "up", reason: "upstream unreachable (ECONNREFUSED)" }],
    ["warn", "upstream probe failed: not ready", { bucket: "up", reason: "HTTP 503" }],
    ["info", "upstream probe: ready again", { bucket: "up" }],
  ]);
  expect(prober.state("up")?.ok).toBe(true);
});

test("a reload's prober that carries a target's last result over logs nothing for it until its state changes", async () => {
  const lines: string[] = [];
  const log: ProbeLog = (level, msg) => lines.push(`${level} ${msg}`);
  const first = new Prober([{ id: "b", key: "k", probe: scripted([{ ok: false, reason: "HTTP 403" }]) }], 60_000, 2000, undefined, log);
  await first.round();
  expect(lines).toEqual(["warn upstream probe failed: not ready"]);
  const second = new Prober([{ id: "b", key: "k", probe: scripted([{ ok: false, reason: "HTTP 403" }, { ok: true }]) }], 60_000, 2000, first, log);
  await second.round();
  expect(lines.length).toBe(1);
  await second.round();
  expect(lines).toEqual(["warn upstream probe failed: not ready", "info upstream probe: ready again"]);
});

// A bucket logged "not ready" and then fixed by a reload (its endpoint, credentials or region
// corrected: the probe's key changes, so nothing carries over) never got its "ready again" line:
// a log reader kept the bucket down for good.
test("a target logged not ready, whose probe a reload changed, is logged ready again when the new probe answers", async () => {
  const lines: string[] = [];
  const log: ProbeLog = (level, msg, fields) => lines.push(`${level} ${msg} ${String(fields.bucket)}`);
  // (the bucket "b" down, "fine" up; each with the probe key a generation gives it)
  const targets = (key: string, b: { ok: boolean; reason?: string }) => [
    { id: "b", key, probe: scripted([b]) },
    { id: "fine", key, probe: scripted([{ ok: true }]) },
  ];
  const first = new Prober(targets("old", { ok: false, reason: "upstream unreachable (ECONNREFUSED)" }), 60_000, 2000, undefined, log);
  await first.round();
  expect(lines).toEqual(["warn upstream probe failed: not ready b"]);
  const second = new Prober(targets("new", { ok: true }), 60_000, 2000, first, log);
  // (two reloads in a row: the second before the first's generation probed)
  const third = new Prober(targets("newer", { ok: true }), 60_000, 2000, second, log);
  await third.round();
  await third.round();
  expect(lines).toEqual(["warn upstream probe failed: not ready b", "info upstream probe: ready again b"]);
});

// The second of two reloads in a row that changed nothing the probe asks (another bucket's edit)
// carries the first one's "not probed yet" over: the fix the first reload brought still gets its line.
test("a target logged not ready, whose probe a reload changed, is logged ready again also when a second reload that keeps its probe comes first", async () => {
  const lines: string[] = [];
  const log: ProbeLog = (level, msg, fields) => lines.push(`${level} ${msg} ${String(fields.bucket)}`);
  const targets = (key: string, b: { ok: boolean; reason?: string }) => [{ id: "b", key, probe: scripted([b]) }];
  const first = new Prober(targets("old", { ok: false, reason: "upstream unreachable (ECONNREFUSED)" }), 60_000, 2000, undefined, log);
  await first.round();
  const second = new Prober(targets("new", { ok: true }), 60_000, 2000, first, log);
  const third = new Prober(targets("new", { ok: true }), 60_000, 2000, second, log);
  await third.round();
  await third.round();
  expect(lines).toEqual(["warn upstream probe failed: not ready b", "info upstream probe: ready again b"]);
});

test("a probe still in flight when the prober stops (shutdown closes its connection) logs no failure", async () => {
  const lines: string[] = [];
  const log: ProbeLog = (level, msg) => lines.push(`${level} ${msg}`);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const prober = new Prober(
    [{ id: "b", probe: async () => (await gate, { ok: false, reason: "upstream unreachable (Error)" }) }],
    60_000,
    2000,
    undefined,
    log,
  );
  const round = prober.round();
  prober.stop();
  release();
  await round;
  expect(lines).toEqual([]);
});

// The shipped config.yaml run without the demo's S3 logged "upstream unreachable (ECONNREFUSED)"
// for each bucket, and nothing in the log said which endpoint (the 502s' access lines neither).
test("a failed probe's log line names the upstream it asked (scheme, host, port); /ready's reasons still do not", async () => {
  const lines: Array<Record<string, unknown>> = [];
  const log: ProbeLog = (_level, _msg, fields) => lines.push(fields);
  const prober = new Prober(
    [
      { id: "b", upstream: "http://127.0.0.1:9000", probe: scripted([{ ok: false, reason: "upstream unreachable (ECONNREFUSED)" }]) },
      { id: probeId("r", "west"), upstream: "https://s3.us-west-2.amazonaws.com", probe: scripted([{ ok: false, reason: "timed out" }]) },
    ],
    60_000,
    2000,
    undefined,
    log,
  );
  await prober.round();
  expect(lines).toEqual([
    { bucket: "b", upstream: "http://127.0.0.1:9000", reason: "upstream unreachable (ECONNREFUSED)" },
    { bucket: "r", replica: "west", upstream: "https://s3.us-west-2.amazonaws.com", reason: "timed out" },
  ]);
  expect(JSON.stringify(prober.state("b"))).not.toContain("9000");
});

test("the runtime's probe targets carry each bucket's (and replica's) upstream origin", async () => {
  const { parseConfig } = await import("../../src/config/load.ts");
  const { buildRuntime } = await import("../../src/runtime.ts");
  const { nullLogger } = await import("../../src/observe/log.ts");
  // two ports nothing listens on (taken, then let go)
  const [p1, p2] = [0, 0].map(() => {
    const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = l.port;
    l.stop(true);
    return port;
  });
  const cfg = parseConfig(
    `buckets:\n  - { name: a, path_prefix: /a, s3: { bucket: bkt, endpoint: "http://127.0.0.1:${p1}" } }\n  - name: r\n    path_prefix: /r\n    s3:\n      replicas:\n        - { name: one, bucket: rb, endpoint: "http://127.0.0.1:${p2}", priority: 1 }\n`,
    { env: {} },
  );
  const lines: Array<Record<string, unknown>> = [];
  const log = { ...nullLogger, log: (_level: string, msg: string, fields?: Record<string, unknown>) => void lines.push({ msg, ...fields }) };
  const rt = await buildRuntime(cfg, 1, { log, start: false });
  try {
    await rt.prober.round();
    const failed = lines.filter((l) => l.msg === "upstream probe failed: not ready").map((l) => [l.bucket, l.upstream]);
    expect(failed.sort()).toEqual([["a", `http://127.0.0.1:${p1}`], ["r", `http://127.0.0.1:${p2}`]]);
  } finally {
    rt.close();
  }
});

// A bucket (or replica) logged "not ready" and then removed by a reload had no closing line (a
// retired circuit breaker gets one): a log reader kept the bucket down for good.
test("a target logged not ready that a reload removes gets a closing line; one that was ready, or a probe of it still in flight, logs nothing", async () => {
  const lines: string[] = [];
  const log: ProbeLog = (level, msg, fields) => lines.push(`${level} ${msg} ${String(fields.bucket)}${fields.replica === undefined ? "" : `/${String(fields.replica)}`} ${String(fields.reason ?? "")}`.trim());
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let late = false;
  const first = new Prober(
    [
      { id: "gone", key: "k", probe: scripted([{ ok: false, reason: "HTTP 403" }]) },
      { id: probeId("rep", "west"), key: "k", probe: scripted([{ ok: false, reason: "timed out" }]) },
      { id: "fine", key: "k", probe: scripted([{ ok: true }]) },
      // ready at the first round; its second, in flight across the reload, fails
      { id: "late", key: "k", probe: async () => (late ? (await gate, { ok: false, reason: "timed out" }) : ((late = true), { ok: true })) },
      { id: "kept", key: "k", probe: scripted([{ ok: false, reason: "HTTP 403" }]) },
    ],
    60_000,
    2000,
    undefined,
    log,
  );
  await first.round();
  expect(lines).toEqual(["warn upstream probe failed: not ready gone HTTP 403", "warn upstream probe failed: not ready rep/west timed out", "warn upstream probe failed: not ready kept HTTP 403"]);
  const inFlight = first.round();
  lines.length = 0;
  new Prober([{ id: "kept", key: "k", probe: scripted([{ ok: false, reason: "HTTP 403" }]) }], 60_000, 2000, first, log);
  expect(lines).toEqual(["info upstream probe: no longer probed gone removed by a reload", "info upstream probe: no longer probed rep/west removed by a reload"]);
  release();
  await inFlight;
  expect(lines.length).toBe(2);
});
