/**
 * A log reader that stops reading (a stalled log shipper, a full pipe) must not stop the proxy:
 * stdout is written without blocking the event loop (src/observe/log.ts). Before, the access
 * lines of a few hundred requests filled the pipe, the next write(2) blocked, and every request,
 * /health included, hung until the reader drained the pipe.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { command } from "./harness.ts";

setDefaultTimeout(60_000);

let s3: S3Fixture;
beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "pub", public: true }], credentials: [] });
  await s3.put("pub", "hello.txt", "hello");
});
afterAll(async () => {
  await s3?.stop();
});

async function freePort(): Promise<number> {
  const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = s.port!;
  await s.stop(true);
  return port;
}

test("stdout not read: 2000 requests (700 KB of access lines, ten times a pipe's buffer) and /health are all answered; the lines arrive once it is read", async () => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "yata-logstall-"));
  const config = join(dir, "config.yaml");
  writeFileSync(config, `server: { address: 127.0.0.1, port: ${port} }\nlogging: { level: info }\nbuckets:\n  - name: pub\n    path_prefix: /pub\n    s3: { bucket: pub, endpoint: "${s3.endpoint}" }\n`);
  // stdout is a FIFO held open here and never read until the end (as a stalled log shipper's pipe)
  const fifo = join(dir, "stdout.fifo");
  expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
  const reader = openSync(fifo, "r+"); // (read-write: opening does not wait for a writer)
  const writer = openSync(fifo, "w");
  const proc = Bun.spawn([...command(), "--config", config], { stdout: writer, stderr: "ignore" });
  closeSync(writer);
  try {
    let up = false;
    for (let i = 0; i < 200 && !up; i++) {
      up = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false);
      if (!up) await Bun.sleep(50); // (until the listener is up)
    }
    expect(up).toBe(true);
    let ok = 0;
    const worker = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const r = await fetch(`http://127.0.0.1:${port}/pub/hello.txt`, { signal: AbortSignal.timeout(5000) });
        if (r.status === 200 && (await r.text()) === "hello") ok++;
      }
    };
    await Promise.all(Array.from({ length: 8 }, () => worker(250)));
    expect(ok).toBe(2000);
    const health = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
    expect(health.status).toBe(200);
    // read what the proxy wrote: the access lines were kept while the pipe was full
    const buf = Buffer.alloc(1 << 20);
    let out = "";
    for (let i = 0; i < 400 && (out.match(/"path":"\/pub\/hello.txt"/g)?.length ?? 0) < 2000; i++) {
      const n = readSync(reader, buf, 0, buf.length, null);
      out += buf.toString("latin1", 0, n);
    }
    expect(out.match(/"path":"\/pub\/hello.txt"/g)?.length).toBe(2000);
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
    closeSync(reader);
  }
});
