/**
 * The readiness prober tells the log when a bucket's upstream stops (or starts again) answering its
 * probe. Until session 27 nothing was logged at any level: with `logging.level: warn`, a bucket
 * whose upstream went away (every request 502, /ready 503) left the log empty.
 */
import { expect, test } from "bun:test";
import { probeId, Prober, type ProbeLog } from "../../src/observe/readiness.ts";

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
