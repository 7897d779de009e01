/**
 * The App owns the upstream connection pools: a reload keeps the pool of an endpoint that is
 * still used (its keep-alive connection is reused) and retires the pool of one that is not (its
 * idle connection is closed at once), and shutdown closes them all.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import type { TCPSocketListener } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "../helpers/wait.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

setDefaultTimeout(30_000);

/** A tiny keep-alive origin that counts its open connections. */
function origin(): { server: TCPSocketListener<undefined>; open: () => number; accepted: () => number } {
  let open = 0;
  let accepted = 0;
  const server = Bun.listen<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open() {
        open++;
        accepted++;
      },
      close() {
        open--;
      },
      data(s, d) {
        const text = d.toString("latin1");
        for (const head of text.split("\r\n\r\n").slice(0, -1)) {
          const body = head.startsWith("HEAD") ? "" : "hello";
          s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${head.startsWith("HEAD") ? 0 : body.length}\r\nETag: "e"\r\n\r\n${body}`);
        }
      },
    },
  });
  return { server, open: () => open, accepted: () => accepted };
}

const a = origin();
const b = origin();
const dir = mkdtempSync(join(tmpdir(), "yata-pools-"));
const configPath = join(dir, "config.yaml");
const yaml = (port: number) => `server: { address: 127.0.0.1, port: 0, readiness_probe_interval_seconds: 3600 }\nbuckets:\n${bucketYaml({ name: "x", prefix: "/x", bucket: "bkt", endpoint: `http://127.0.0.1:${port}` })}${bucketYaml({ name: "keep", prefix: "/keep", bucket: "bkt", endpoint: `http://127.0.0.1:${b.server.port}` })}`;
let px: InProcessProxy;

beforeAll(async () => {
  writeFileSync(configPath, yaml(a.server.port));
  px = await startInProcess(yaml(a.server.port), { configPath, probeIntervalMs: 3_600_000 });
});
afterAll(async () => {
  await px?.stop();
  a.server.stop(true);
  b.server.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

test("a reload retires the pool of an endpoint no longer used and keeps the others", async () => {
  expect(await (await fetch(px.url("/x/o.txt"))).text()).toBe("hello");
  expect(await (await fetch(px.url("/keep/o.txt"))).text()).toBe("hello");
  await waitFor(() => a.open() >= 1 && b.open() >= 1, { message: "keep-alive connections to both origins" });
  const poolOf = (name: string) => (px.app.runtime.buckets.get(name)!.upstream as unknown as { pool: unknown }).pool;
  const keepPool = poolOf("keep");
  expect(keepPool).toBeDefined();

  // Bucket x moves to origin b: a's pool is no longer used by the new generation.
  writeFileSync(configPath, yaml(b.server.port));
  expect((await px.app.reload()).ok).toBe(true);
  await waitFor(() => a.open() === 0, { message: "the retired pool's idle connection to closed" });

  // b's pool was kept (same pool object, its keep-alive connections survive the reload), and
  // bucket x now shares it.
  expect(poolOf("keep")).toBe(keepPool);
  expect(poolOf("x")).toBe(keepPool);
  expect(b.open()).toBeGreaterThanOrEqual(1);
  expect(await (await fetch(px.url("/keep/o.txt"))).text()).toBe("hello");
  expect(await (await fetch(px.url("/x/o.txt"))).text()).toBe("hello");
});

test("shutdown closes every pool", async () => {
  await waitFor(() => b.open() >= 1, { message: "an idle connection to b" });
  await px.stop();
  await waitFor(() => b.open() === 0, { message: "b's connections closed by shutdown" });
});
