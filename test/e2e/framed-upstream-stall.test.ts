/**
 * An upload of FRAMED_MIN_BYTES or more is handed to Bun's fetch as the listener's own body stream
 * (src/http/framed-body.ts), where no chunk passes through JavaScript. An upstream that took the
 * head and some of the body, then stopped reading and never answered, held the client until the
 * listener's idle timeout (60 s) cut its connection with no answer, logged as the client's 499
 * (32 MiB, 100 MiB and 1 GiB alike, plain PUT, PutObject and UploadPart, s3.timeout 3). The
 * client's socket, whose receive queue then stays full, is watched now (src/http/receive-queue.ts):
 * 504 (503 on the S3 front) after s3.timeout, and the upstream request is cut.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket, TCPSocketListener } from "bun";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { FRAMED_MIN_BYTES } from "../../src/http/framed-body.ts";
import { nullLogger } from "../../src/observe/log.ts";
import { listenBun, type Listener } from "../../src/server.ts";
import { listenS3 } from "../../src/server/s3-listener.ts";
import { waitFor } from "../helpers/wait.ts";

setDefaultTimeout(90_000);

const CLIENT = { id: "AKIDFRAMEDSTALL01", secret: "framed-stall-secret-0123456789" };
/** s3.timeout (seconds): the answer must come well before the listener's 60 s idle cut. */
const TIMEOUT_S = 1;
const BOUND_MS = 30_000;
const SIZE = FRAMED_MIN_BYTES + (8 << 20);

let upstream: TCPSocketListener<{ n: number; head: string }>;
/** The upstream connections cut so far: the request line each carried and the body bytes taken. */
const cut: Array<{ head: string; n: number }> = [];
let app: App;
let main: Listener;
let front: Listener;
let dir: string;
let file: string;

beforeAll(async () => {
  // Takes the head and 1 MiB of body, then never reads again and never answers.
  upstream = Bun.listen<{ n: number; head: string }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { n: 0, head: "" };
      },
      data(s: Socket<{ n: number; head: string }>, d) {
        if (s.data.n === 0) s.data.head = new TextDecoder().decode(d.subarray(0, 200)).split("\r\n")[0]!;
        s.data.n += d.byteLength;
        if (s.data.n >= 1 << 20) s.pause();
      },
      close(s) {
        cut.push({ head: s.data.head, n: s.data.n });
      },
      error() {},
    },
  });
  const config = parseConfig(`server: { address: 127.0.0.1, port: 0, engine: bun, security_limits: { max_body_size: 104857600 } }
logging: { level: error }
buckets:
  - name: rw
    path_prefix: /rw
    s3: { bucket: rw, endpoint: "http://127.0.0.1:${upstream.port}", access_key: "AKIDUPSTREAM00001", secret_key: "upstream-secret-0123456789", timeout: ${TIMEOUT_S}, retry: { max_attempts: 1 } }
    access: read-write
    auth: { enabled: false, anonymous_writes: true }
s3_api: { enabled: true, address: 127.0.0.1, port: 0, region: us-east-1, credentials: [{ access_key_id: "${CLIENT.id}", secret_access_key: "${CLIENT.secret}", identity: t, buckets: { rw: [read, list, write] } }] }
`);
  app = await App.create(config, { log: nullLogger, probeIntervalMs: 600_000 });
  main = listenBun(app, config);
  front = (await listenS3(app, config))!;
  dir = mkdtempSync(join(tmpdir(), "framed-stall-"));
  file = join(dir, "body.bin");
  writeFileSync(file, new Uint8Array(SIZE));
});

afterAll(async () => {
  await front?.stop(true);
  await main?.stop(true);
  app?.close();
  upstream?.stop(true);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function curl(args: string[]): Promise<{ status: string; ms: number }> {
  const started = performance.now();
  const p = Bun.spawn(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "120", "-T", file, ...args], { stdout: "pipe", stderr: "ignore" });
  const status = await new Response(p.stdout).text();
  await p.exited;
  return { status, ms: performance.now() - started };
}

const signed = ["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", `${CLIENT.id}:${CLIENT.secret}`, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"];

// The three run at once (each mostly waits out s3.timeout); each writes its own key, by which its
// upstream connection is told from the others'.
test.concurrent.each([
  ["plain PUT", "plain.bin", (key: string) => [`http://127.0.0.1:${main.port}/rw/${key}`], "504"],
  ["S3 PutObject, UNSIGNED-PAYLOAD", "put.bin", (key: string) => [...signed, `http://127.0.0.1:${front.port}/rw/${key}`], "503"],
  ["S3 UploadPart, UNSIGNED-PAYLOAD", "part.bin", (key: string) => [...signed, `http://127.0.0.1:${front.port}/rw/${key}?partNumber=1&uploadId=abc`], "503"],
] as const)("%s of FRAMED_MIN_BYTES + 8 MiB to an upstream that stops reading: answered after s3.timeout, upstream request cut", async (_name, key, args, status) => {
  const r = await curl(args(key));
  expect(r.status).toBe(status);
  expect(r.ms).toBeLessThan(BOUND_MS);
  // the upstream request was cut before its last byte (Bun may deliver more after pause())
  const n = await waitFor(() => cut.find((c) => c.head.startsWith(`PUT /rw/${key}`))?.n, { timeoutMs: 10_000 });
  expect(n).toBeLessThan(SIZE);
});
