/**
 * App.retireOtherDiskLayouts runs once the listeners are bound: a folder of another
 * server.workers layout that cannot be deleted is logged, and the process serves on (the call
 * became asynchronous and its rejection went unhandled: an exit of a process already serving).
 */
import { expect, spyOn, test, setDefaultTimeout } from "bun:test";
import * as fs from "node:fs";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { waitFor } from "../helpers/wait.ts";
import { recordingLogger } from "../helpers/logger.ts";

setDefaultTimeout(30_000);

test("a layout folder that cannot be deleted is an error line, not an unhandled rejection", async () => {
  const base = mkdtempSync(join(tmpdir(), "yata-retire-"));
  mkdirSync(join(base, "worker-1", "objects"), { recursive: true });
  const log = recordingLogger();
  const lines = log.lines;
  const cfg = parseConfig(`server: { address: 127.0.0.1, port: 0 }\ncache:\n  enabled: true\n  cache_layers: [memory, disk]\n  disk: { path: "${base}" }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, endpoint: "http://127.0.0.1:9" }, cache: { enabled: true } }\n`, { env: {} });
  const app = await App.create(cfg, { log, probeIntervalMs: 600_000 });
  const rm = spyOn(fs, "rmSync").mockImplementation(() => {
    throw new Error("EROFS: read-only file system");
  });
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => void unhandled.push(err);
  process.on("unhandledRejection", onUnhandled);
  try {
    app.retireOtherDiskLayouts();
    const line = await waitFor(() => lines.find((l) => l.msg === "disk cache: the folders of another server.workers layout could not be deleted"));
    expect(line.fields?.error).toBe("EROFS: read-only file system");
    expect(unhandled).toEqual([]);
  } finally {
    process.off("unhandledRejection", onUnhandled);
    rm.mockRestore();
    await app.close();
    rmSync(base, { recursive: true, force: true });
  }
});

