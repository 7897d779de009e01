/**
 * Health and readiness probes (/health, /ready) answered 2xx are logged at debug, not info: a
 * kubelet or load balancer probing every few seconds added an info access line each time, which
 * flooded a log kept at info. A failing probe keeps its usual level (a 503 at warn); the 503
 * `Draining` of a shutdown (what shutdown_delay is for) is at info, not warn.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { createLogger, type Level } from "../../src/observe/log.ts";
import { listenBun } from "../../src/server.ts";
import { waitFor } from "../helpers/wait.ts";

setDefaultTimeout(30_000);

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "yata-access-probes-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function linesAt(level: Level, draining = false): Promise<Array<Record<string, unknown>>> {
  const file = join(dir, `log-${level}${draining ? "-draining" : ""}`);
  const fd = openSync(file, "w");
  const log = createLogger({ level, format: "json", fd });
  const config = parseConfig(`server: { address: 127.0.0.1, port: 0 }
logging: { level: ${level} }
buckets:
  - { name: b, path_prefix: /b, s3: { bucket: data, endpoint: "http://127.0.0.1:9", access_key: AKIDPROBELEVEL, secret_key: probe-level-secret-0123456789 } }
`);
  const app = await App.create(config, { log, probeIntervalMs: 600_000 });
  const listener = listenBun(app, config);
  app.draining = draining; // (as a shutdown signal sets it: the shutdown_delay's 503s)
  try {
    for (const path of ["/health", "/ready", "/nowhere"]) {
      const res = await fetch(`http://127.0.0.1:${listener.port}${path}`);
      await res.arrayBuffer();
    }
    return await waitFor(() => {
      log.flush();
      const all = readFileSync(file, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>);
      const requests = all.filter((l) => l.msg === "request");
      return requests.some((l) => l.path === "/nowhere") ? requests : undefined;
    }, { timeoutMs: 5_000, message: "the access line of /nowhere" });
  } finally {
    await listener.stop(true);
    app.close();
    closeSync(fd);
  }
}

test("at info, a 200 /health gets no access line; /ready not ready (503) keeps its warn line", async () => {
  const lines = await linesAt("info");
  expect(lines.map((l) => [l.level, l.status, l.path])).toEqual([
    ["warn", 503, "/ready"],
    ["info", 404, "/nowhere"],
  ]);
});

test("at debug, the probe's line is there, at debug", async () => {
  const lines = await linesAt("debug");
  expect(lines.map((l) => [l.level, l.status, l.path])).toEqual([
    ["debug", 200, "/health"],
    ["warn", 503, "/ready"],
    ["info", 404, "/nowhere"],
  ]);
});

test("from a shutdown signal on, the probes' 503 (Draining, what shutdown_delay tells load balancers) is at info, not warn", async () => {
  const lines = await linesAt("info", true);
  expect(lines.map((l) => [l.level, l.status, l.path, l.error])).toEqual([
    ["info", 503, "/health", "Draining"],
    ["info", 503, "/ready", "Draining"],
    ["info", 404, "/nowhere", "NotFound"],
  ]);
});
