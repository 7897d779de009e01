/**
 * A reload asked for while another runs is not folded into the running one: that one may have
 * read the file before the edit the second call was made for. Before, a second SIGHUP right
 * after an edit got the first reload's outcome and the edit was never applied (seen as a flaky
 * readiness test: the config named two buckets, the process kept serving one).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

setDefaultTimeout(30_000);

const dir = mkdtempSync(join(tmpdir(), "yata-reload-queue-"));
const configPath = join(dir, "config.yaml");
const yaml = (names: string[]) =>
  `server: { address: 127.0.0.1, port: 0, readiness_probe_interval_seconds: 3600 }\nlogging: { level: error }\nbuckets:\n${names
    .map((n) => bucketYaml({ name: n, prefix: `/${n}`, bucket: "bkt", endpoint: "http://127.0.0.1:9" }))
    .join("")}`;
let px: InProcessProxy;

beforeAll(async () => {
  writeFileSync(configPath, yaml(["one"]));
  px = await startInProcess(yaml(["one"]), { configPath, probeIntervalMs: 3_600_000 });
});
afterAll(async () => {
  await px?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const names = () => px.app.runtime.config.buckets.map((b) => b.name);

test("a reload asked for while one runs is followed by one more that reads the file again; every call made meanwhile shares it", async () => {
  const start = px.app.runtime.generation;
  writeFileSync(configPath, yaml(["one", "two"]));
  const first = px.app.reload();
  // The edit lands while the first reload runs (it may have read the file already), then three more asks.
  writeFileSync(configPath, yaml(["one", "two", "three"]));
  const asks = [px.app.reload(), px.app.reload(), px.app.reload()];
  const [r1, ...rest] = await Promise.all([first, ...asks]);
  expect(r1).toMatchObject({ ok: true, generation: start + 1 });
  // One follow-up, shared: not three.
  expect(rest.map((r) => [r.ok, r.generation])).toEqual([
    [true, start + 2],
    [true, start + 2],
    [true, start + 2],
  ]);
  expect(px.app.runtime.generation).toBe(start + 2);
  expect(names()).toEqual(["one", "two", "three"]);
});

test("a failed reload still lets the queued one run (and a later call starts afresh)", async () => {
  const start = px.app.runtime.generation;
  writeFileSync(configPath, "buckets: []\n");
  const bad = px.app.reload();
  writeFileSync(configPath, yaml(["one"]));
  const queued = px.app.reload();
  const [b, q] = await Promise.all([bad, queued]);
  // The first may have read either file; the queued one surely reads the good one.
  expect(q).toMatchObject({ ok: true });
  expect(names()).toEqual(["one"]);
  expect(px.app.runtime.generation).toBe(start + (b.ok ? 2 : 1));
  const later = await px.app.reload();
  expect(later).toMatchObject({ ok: true, generation: px.app.runtime.generation });
});

test("a replaced generation is not kept alive by the one that replaced it (each reload kept every earlier runtime reachable: ~0.5 MB per reload with 200 buckets)", async () => {
  const refs = (() => [new WeakRef(px.app.runtime), new WeakRef(px.app.runtime.auth ?? {})])();
  for (let i = 0; i < 4; i++) expect((await px.app.reload()).ok).toBe(true);
  let alive = true;
  for (let i = 0; i < 20 && alive; i++) {
    await Bun.sleep(0); // (lets finished reloads' promises settle)
    Bun.gc(true);
    alive = refs[0].deref() !== undefined;
  }
  expect(alive).toBe(false);
});
