/**
 * logging.level: warn keeps the access lines of failing requests (5xx, at warn), end to end: the
 * logger wrote a 5xx line at warn, but the request's end asked the log for info before building
 * any access line, so at warn no request was ever logged.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { createLogger } from "../../src/observe/log.ts";
import { listenBun } from "../../src/server.ts";
import { startRawStore, type RawStore } from "../helpers/raw-store.ts";
import { waitFor } from "../helpers/wait.ts";

setDefaultTimeout(30_000);

let store: RawStore;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "yata-access-warn-"));
  // (what no HTTP parser reads: a 502 BadGateway)
  store = await startRawStore(() => ({ bytes: "not http\r\n\r\n", end: true }));
});
afterAll(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

test("at logging level warn, a 502 gets its access line (at warn) and a 404 none", async () => {
  const file = join(dir, "log");
  const fd = openSync(file, "w");
  const log = createLogger({ level: "warn", format: "json", fd });
  const config = parseConfig(`server: { address: 127.0.0.1, port: 0 }
logging: { level: warn }
buckets:
  - { name: b, path_prefix: /b, s3: { bucket: data, endpoint: "http://127.0.0.1:${store.port}", access_key: AKIDWARNLEVEL, secret_key: warn-level-secret-0123456789, retry: { max_attempts: 1 } } }
`);
  const app = await App.create(config, { log, probeIntervalMs: 600_000 });
  const listener = listenBun(app, config);
  try {
    const bad = await fetch(`http://127.0.0.1:${listener.port}/b/k.txt`);
    await bad.arrayBuffer();
    expect(bad.status).toBe(502);
    const missing = await fetch(`http://127.0.0.1:${listener.port}/nowhere`);
    await missing.arrayBuffer();
    expect(missing.status).toBe(404);
    const lines = await waitFor(() => {
      log.flush();
      const all = readFileSync(file, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>);
      const requests = all.filter((l) => l.msg === "request");
      return requests.length > 0 ? requests : undefined;
    }, { timeoutMs: 5_000, message: "an access line" });
    expect(lines.map((l) => [l.level, l.status, l.path])).toEqual([["warn", 502, "/b/k.txt"]]);
  } finally {
    await listener.stop(true);
    app.close();
    closeSync(fd);
  }
});
