/**
 * Circuit breakers across a reload: a bucket whose s3 section is as it was keeps its breaker (an
 * open one stays open: a reload for another reason closed it silently, sending requests at a dead
 * upstream again and clearing the alert); yatagarasu_circuit_breaker_state shows each bucket's
 * breaker as it stands, loses the series of a bucket whose breaker a reload removed (it stayed at
 * 1: the alert fired until a restart), and has one from the start for a bucket a reload added.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";
import { waitFor } from "../helpers/wait.ts";
import { nullLogger } from "../../src/observe/log.ts";

setDefaultTimeout(30_000);

/** An origin that answers 500 to everything, counting the object requests (not the readiness probes); `/bkt/slow*` waits for `release`. */
let calls = 0;
let arrived = 0;
let release: () => void = () => {};
let gate = new Promise<void>((r) => (release = r));
const dead = Bun.serve({
  port: 0,
  async fetch(req) {
    const path = new URL(req.url).pathname;
    if (path.startsWith("/bkt/slow")) {
      arrived++;
      await gate;
    }
    if (path.startsWith("/bkt/k")) calls++;
    return new Response("broken", { status: 500 });
  },
});
const dir = mkdtempSync(join(tmpdir(), "yata-breaker-reload-"));
const configPath = join(dir, "config.yaml");
const BREAKER = ", retry: { max_attempts: 1 }, circuit_breaker: { failure_threshold: 2, success_threshold: 1, timeout_seconds: 600 }";
const bucket = (name: string, breaker: boolean) => bucketYaml({ name, prefix: `/${name}`, bucket: "bkt", endpoint: `http://127.0.0.1:${dead.port}` }).replace(" }\n", `${breaker ? BREAKER : ""} }\n`);
const yaml = (buckets: string, level = "error") => `server: { address: 127.0.0.1, port: 0, readiness_probe_interval_seconds: 3600 }\nlogging: { level: ${level} }\nbuckets:\n${buckets}`;
let px: InProcessProxy;
/** The breaker transitions the proxy logged: "<msg> <bucket> <from>-><to>". */
const breakerLines: string[] = [];
const log = { ...nullLogger, log: (_level: string, msg: string, f?: Record<string, unknown>) => void (msg.startsWith("circuit breaker") && breakerLines.push(`${msg} ${String(f?.bucket)} ${String(f?.from)}->${String(f?.to)}`)) };

beforeAll(async () => {
  const text = yaml(bucket("a", true) + bucket("b", true));
  writeFileSync(configPath, text);
  px = await startInProcess(text, { configPath, probeIntervalMs: 3_600_000, log });
});
afterAll(async () => {
  await px?.stop();
  dead.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

const gauge = (bucketName: string): number | undefined => {
  const line = px.app.metrics.render().split("\n").find((l) => l.startsWith(`yatagarasu_circuit_breaker_state{bucket="${bucketName}"}`));
  return line === undefined ? undefined : Number(line.split(" ").pop());
};

test("an open breaker stays open across a reload that leaves its bucket as it was; removed, its series goes; added, its series is there at once", async () => {
  for (let i = 0; i < 2; i++) expect((await fetch(px.url(`/a/k${i}`))).status).toBe(502);
  expect((await fetch(px.url("/a/k"))).status).toBe(503);
  expect(gauge("a")).toBe(1);
  expect(gauge("b")).toBe(0);

  // a reload for another reason (a logging level): bucket a is as it was
  writeFileSync(configPath, yaml(bucket("a", true) + bucket("b", true), "warn"));
  expect((await px.app.reload()).ok).toBe(true);
  const before = calls;
  const refused = await fetch(px.url("/a/k"));
  expect([refused.status, ((await refused.json()) as { error: string }).error]).toEqual([503, "CircuitOpen"]);
  expect(calls).toBe(before); // not sent at the dead upstream
  expect(gauge("a")).toBe(1);

  // a's breaker removed, c added with one
  writeFileSync(configPath, yaml(bucket("a", false) + bucket("b", true) + bucket("c", true), "warn"));
  expect((await px.app.reload()).ok).toBe(true);
  expect(gauge("a")).toBeUndefined();
  expect(gauge("c")).toBe(0);
  expect(gauge("b")).toBe(0);
  // a bucket whose s3 section changed gets a new breaker (closed)
  writeFileSync(configPath, yaml(bucket("a", false) + bucket("b", true) + bucket("c", true).replace("timeout_seconds: 600", "timeout_seconds: 601"), "warn"));
  expect((await px.app.reload()).ok).toBe(true);
  expect(gauge("c")).toBe(0);
});

test("a request the previous generation began, failing after the reload, does not move the gauge of a breaker that was replaced or removed", async () => {
  writeFileSync(configPath, yaml(bucket("d", true) + bucket("e", true)));
  expect((await px.app.reload()).ok).toBe(true);
  gate = new Promise<void>((r) => (release = r));
  arrived = 0;
  // two each: enough failures to open the (old) breakers (failure_threshold: 2)
  const slow = ["/d/slow1", "/d/slow2", "/e/slow1", "/e/slow2"].map((p) => fetch(px.url(p)));
  await waitFor(() => arrived === 4, { message: "the requests at the upstream" });
  // d's breaker replaced (its config changed), e's removed
  writeFileSync(configPath, yaml(bucket("d", true).replace("timeout_seconds: 600", "timeout_seconds: 601") + bucket("e", false)));
  expect((await px.app.reload()).ok).toBe(true);
  release();
  expect(await Promise.all(slow.map(async (r) => (await r).status))).toEqual([502, 502, 502, 502]);
  expect(gauge("d")).toBe(0);
  expect(gauge("e")).toBeUndefined();
});

test("a replica whose breaker a reload removes does not keep showing it open (yatagarasu_s3_replica_circuit_breaker_state stayed at 1)", async () => {
  const replicaSet = (name: string, breaker: boolean) =>
    `  - name: ${name}\n    path_prefix: /${name}\n    s3:\n      retry: { max_attempts: 1 }\n${breaker ? "      circuit_breaker: { failure_threshold: 2, success_threshold: 1, timeout_seconds: 600 }\n" : ""}      replicas:\n` +
    `        - { name: first, bucket: bkt, endpoint: "http://127.0.0.1:${dead.port}", priority: 1 }\n` +
    `        - { name: second, bucket: bkt, endpoint: "http://127.0.0.1:${dead.port}", priority: 2 }\n`;
  const replicaGauge = (replica: string): number | undefined => {
    const line = px.app.metrics.render().split("\n").find((l) => l.startsWith(`yatagarasu_s3_replica_circuit_breaker_state{bucket="r",replica="${replica}"}`));
    return line === undefined ? undefined : Number(line.split(" ").pop());
  };
  writeFileSync(configPath, yaml(replicaSet("r", true)));
  expect((await px.app.reload()).ok).toBe(true);
  for (let i = 0; i < 2; i++) expect((await fetch(px.url(`/r/k${i}`))).status).toBe(502);
  expect([replicaGauge("first"), replicaGauge("second")]).toEqual([1, 1]);
  writeFileSync(configPath, yaml(replicaSet("r", false)));
  expect((await px.app.reload()).ok).toBe(true);
  // no breaker: nothing is open (the series says closed, or is gone)
  expect([replicaGauge("first") ?? 0, replicaGauge("second") ?? 0]).toEqual([0, 0]);
});

// A replica's breaker was keyed by its bucket's whole s3 section: a reload that added, removed or
// reordered another replica closed it (and dropped its probe result: /ready 503 "not probed yet").
test("an open replica breaker stays open across a reload that adds a replica or reorders them", async () => {
  const entry = (name: string, priority: number) => `        - { name: ${name}, bucket: bkt, endpoint: "http://127.0.0.1:${dead.port}", priority: ${priority} }\n`;
  const set = (...entries: string[]) =>
    `  - name: rr\n    path_prefix: /rr\n    s3:\n      retry: { max_attempts: 1 }\n      circuit_breaker: { failure_threshold: 2, success_threshold: 1, timeout_seconds: 600 }\n      replicas:\n${entries.join("")}`;
  const state = (replica: string) => px.app.metrics.render().split("\n").find((l) => l.startsWith(`yatagarasu_s3_replica_circuit_breaker_state{bucket="rr",replica="${replica}"}`))?.split(" ").pop();
  writeFileSync(configPath, yaml(set(entry("first", 1), entry("second", 2))));
  expect((await px.app.reload()).ok).toBe(true);
  for (let i = 0; i < 2; i++) expect((await fetch(px.url(`/rr/k${i}`))).status).toBe(502);
  expect([state("first"), state("second")]).toEqual(["1", "1"]);
  // a third replica added: the two open breakers are kept, only the new replica is asked
  writeFileSync(configPath, yaml(set(entry("first", 1), entry("second", 2), entry("third", 3))));
  expect((await px.app.reload()).ok).toBe(true);
  expect([state("first"), state("second"), state("third")]).toEqual(["1", "1", "0"]);
  const before = calls;
  expect((await fetch(px.url("/rr/k"))).status).toBe(502);
  expect(calls - before).toBe(1);
  // the order changed, the third removed: still open, nothing sent
  writeFileSync(configPath, yaml(set(entry("second", 1), entry("first", 2))));
  expect((await px.app.reload()).ok).toBe(true);
  expect([state("first"), state("second")]).toEqual(["1", "1"]);
  const refused = await fetch(px.url("/rr/k"));
  expect(refused.status).toBe(503);
  expect(calls - before).toBe(1);
});

// A breaker logged open ("circuit breaker open", warn) and then replaced by a reload (the bucket's
// endpoint fixed: a new breaker, closed) or removed never had a line saying so: a log reader kept
// the bucket refused for good. The reload now logs it closed.
test("an open breaker a reload replaces or removes is logged closed", async () => {
  writeFileSync(configPath, yaml(bucket("f", true) + bucket("g", true)));
  expect((await px.app.reload()).ok).toBe(true);
  breakerLines.length = 0;
  for (const b of ["f", "g"]) for (let i = 0; i < 2; i++) expect((await fetch(px.url(`/${b}/k${i}`))).status).toBe(502);
  expect(breakerLines.sort()).toEqual(["circuit breaker open f closed->open", "circuit breaker open g closed->open"]);
  // f's breaker replaced (its config changed), g's removed
  writeFileSync(configPath, yaml(bucket("f", true).replace("timeout_seconds: 600", "timeout_seconds: 601") + bucket("g", false)));
  expect((await px.app.reload()).ok).toBe(true);
  expect(breakerLines.slice(2).sort()).toEqual(["circuit breaker closed f open->closed", "circuit breaker closed g open->closed"]);
  // a reload that keeps f's breaker (closed now) logs nothing more
  writeFileSync(configPath, yaml(bucket("f", true).replace("timeout_seconds: 600", "timeout_seconds: 601") + bucket("g", false), "warn"));
  expect((await px.app.reload()).ok).toBe(true);
  expect(breakerLines.length).toBe(4);
});
