/**
 * The proxy with no file descriptor left (a connection flood, or a container's low `ulimit -n`):
 * the proxy runs under `prlimit --nofile`, its descriptor table is filled with kept-alive client
 * connections, and a disk-cache hit (whose file is opened only as the answer is written) is asked
 * on one of them. It is a 503 with Retry-After, the process stays up, the cached file stays, and
 * once the connections close the same object is served again without a restart.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { startProxy } from "./harness.ts";

setDefaultTimeout(60_000);

const LIMIT = 64;
const OBJECT = new Uint8Array(256 * 1024).map((_, i) => (i * 7) & 0xff);

let s3: S3Fixture;
let cacheRoot: string;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true }], credentials: [] });
  await s3.put("data", "obj.bin", OBJECT);
  cacheRoot = mkdtempSync(join(tmpdir(), "yata-fd-"));
});

afterAll(async () => {
  await s3?.stop();
  rmSync(cacheRoot, { recursive: true, force: true });
});

/** A raw kept-alive connection: sends one request and resolves with the first answer's status line and head. */
function exchange(sock: net.Socket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const onData = (d: Buffer) => {
      text += d.toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return;
      sock.off("data", onData);
      resolve(text.slice(0, end));
    };
    sock.on("data", onData);
    sock.once("error", reject);
    sock.once("close", () => reject(new Error(`the connection closed without an answer to ${path}`)));
    sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
}

const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

describe.each(["bun", "node"])("engine %s", (engine) => {
  test("a disk-cache hit with no file descriptor left is a 503 with Retry-After; the process stays up and serves the object again once connections close", async () => {
    const dir = join(cacheRoot, engine);
    await using px = await startProxy(
      `server: { address: 127.0.0.1, port: 0, engine: ${engine}, shutdown_timeout: 1 }
cache:
  cache_layers: [disk]
  disk: { path: ${dir}, max_disk_size_mb: 16 }
buckets:
  - name: data
    path_prefix: /data
    s3: { bucket: data, endpoint: "${s3.endpoint}" }
    cache: { enabled: true }
`,
      { prefix: ["prlimit", `--nofile=${LIMIT}:${LIMIT}`, "--"] },
    );
    const pid = px.proc.pid;
    const first = await fetch(px.url("/data/obj.bin"));
    expect(new Uint8Array(await first.arrayBuffer())).toEqual(OBJECT);
    await px.waitForLog((l) => l.msg === "request" && l.cache === "MISS");
    const file = await waitFor(() => readdirSync(dir, { recursive: true }).find((f) => String(f).endsWith(".obj")), { message: "the cached file" });

    const socks: net.Socket[] = [];
    try {
      // The connection the hit is asked on, accepted while descriptors are left.
      const asker = await connect(px.port);
      socks.push(asker);
      expect(await exchange(asker, "/health")).toStartWith("HTTP/1.1 200");
      // More kept-alive connections than the limit: the table fills, the rest wait in the backlog.
      for (let i = 0; i < LIMIT; i++) {
        const s = await connect(px.port);
        s.on("error", () => {});
        s.write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        socks.push(s);
      }
      await waitFor(() => fds(pid) >= LIMIT, { timeoutMs: 10_000, message: () => `the proxy's descriptor table to fill (${fds(pid)} of ${LIMIT})` });

      const head = await exchange(asker, "/data/obj.bin");
      expect(head).toStartWith("HTTP/1.1 503");
      expect(head.toLowerCase()).toContain("retry-after: 1");
    } finally {
      for (const s of socks) s.destroy();
    }

    const again = await waitFor(
      async () => {
        const r = await fetch(px.url("/data/obj.bin"));
        if (r.status === 200) return r;
        await r.body?.cancel();
        return undefined;
      },
      { timeoutMs: 10_000, message: "a 200 once the connections are closed" },
    );
    expect(again.headers.get("x-cache")).toBe("HIT");
    expect(new Uint8Array(await again.arrayBuffer())).toEqual(OBJECT);
    expect(readdirSync(dir, { recursive: true })).toContain(file);
    expect(px.proc.exitCode).toBeNull();
    expect(px.logs().filter((l) => l.msg === "unhandled rejection" || l.msg === "listener error")).toEqual([]);
  });
});
