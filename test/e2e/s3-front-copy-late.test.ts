/**
 * A copy across proxy buckets that takes longer than the keep-alive interval (S3's 200 with
 * spaces, src/fronts/s3/patient.ts), on both engines and both upstream clients, with sources
 * that hold their answer until the test lets them go, or stall part-way: no timing is measured,
 * only the order of events (the client has its head while the source still holds).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { startFrontsOn } from "./s3-front-helpers.ts";
import { signedFetch, UPSTREAM_WRITER, uploadYaml, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

const T = 60_000;
const COPIER = { accessKeyId: "AKIDCOPIERLATE001", secretAccessKey: "copier-late-secret-0123456789abcd" };
const CONTENT = "held until the test lets it go";

/**
 * A store on a raw socket. GET /held/...: the answer waits for release(), then comes whole.
 * GET /stall/...: a 20 MiB Content-Length, 9 MiB of it (past the 8 MiB a GET's body is read
 * whole up to), then nothing. HEAD: 200.
 */
function startStore() {
  const socks = new Set<Socket>();
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const state = { port: 0, gets: 0, stallClosed: 0, trickleClosed: 0, release, close: () => (server.close(), socks.forEach((s) => s.destroy())) };
  const server = createServer((sock) => {
    socks.add(sock);
    sock.on("error", () => {});
    sock.on("close", () => socks.delete(sock));
    sock.once("data", (d) => {
      const line = d.toString("latin1").split("\r\n", 1)[0]!;
      if (!line.startsWith("GET ")) return void sock.end("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      state.gets++;
      if (line.includes("/trickle/")) {
        // 32 KiB at 4 KiB/s (8 s): never silent for long, but slower than any body is given time for
        sock.on("close", () => state.trickleClosed++);
        sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${32 * 1024}\r\nContent-Type: application/octet-stream\r\n\r\n`);
        let sent = 0;
        const tick = setInterval(() => {
          if (sock.destroyed || sent >= 32 * 1024) return clearInterval(tick);
          sock.write(Buffer.alloc(1024, 5));
          sent += 1024;
        }, 250);
        return;
      }
      if (line.includes("/stall/")) {
        sock.on("close", () => state.stallClosed++);
        sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${20 * 1024 * 1024}\r\nContent-Type: application/octet-stream\r\n\r\n`);
        sock.write(Buffer.alloc(9 * 1024 * 1024, 3));
        return;
      }
      // (one request per connection: the proxy's pool must not send the next one here)
      void released.then(() => sock.end(`HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: ${CONTENT.length}\r\nContent-Type: text/plain\r\nETag: "held"\r\n\r\n${CONTENT}`));
    });
  });
  server.listen(0, "127.0.0.1");
  state.port = (server.address() as AddressInfo).port;
  return state;
}

const saved = process.env.YATAGARASU_S3_KEEPALIVE_MS;
let s3: S3Fixture;
beforeAll(async () => {
  process.env.YATAGARASU_S3_KEEPALIVE_MS = "100";
  s3 = await startS3Fixture({ buckets: [{ name: "up" }], credentials: [{ ...UPSTREAM_WRITER, buckets: ["up"], write: true }] });
});
afterAll(async () => {
  if (saved === undefined) delete process.env.YATAGARASU_S3_KEEPALIVE_MS;
  else process.env.YATAGARASU_S3_KEEPALIVE_MS = saved;
  await s3?.stop();
});

describe.each([
  ["bun", "auto"],
  ["node", "auto"],
  ["bun", "fetch"],
] as const)("engine %s, upstream client %s", (engine, client) => {
  let store: ReturnType<typeof startStore>;
  let env: UploadEnv;
  beforeAll(async () => {
    store = startStore();
    const src = (name: string, path: string) => `  - name: ${name}\n    path_prefix: /${name}\n    s3: { bucket: ${path}, endpoint: "http://127.0.0.1:${store.port}", timeout: 1, retry: { max_attempts: 1 } }\n`;
    const yaml = uploadYaml(s3.endpoint, {
      engine,
      moreBuckets: () =>
        src("held", "held") +
        src("stall", "stall") +
        // the stalling store at the default s3.timeout (20 s), and a destination nobody listens on
        `  - name: stall20\n    path_prefix: /stall20\n    s3: { bucket: stall, endpoint: "http://127.0.0.1:${store.port}", retry: { max_attempts: 1 } }\n` +
        `  - name: deadend\n    path_prefix: /deadend\n    access: read-write\n    s3: { bucket: dead, endpoint: "http://127.0.0.1:1", retry: { max_attempts: 1 }, circuit_breaker: { failure_threshold: 1, timeout_seconds: 300 } }\n`,
      moreCredentials: `    - { access_key_id: "${COPIER.accessKeyId}", secret_access_key: "${COPIER.secretAccessKey}", identity: copier, buckets: { up: [read, write], held: [read], stall: [read], stall20: [read], deadend: [write] } }\n`,
    }).replace(`engine: ${engine}`, `engine: ${engine}, upstream_client: ${client}, max_concurrent_uploads: 1, max_concurrent_uploads_per_ip: 1`);
    env = await startFrontsOn(yaml, s3, false);
  });
  afterAll(async () => {
    await env?.[Symbol.asyncDispose]();
    store?.close();
  });

  const copy = (dest: string, source: string) => signedFetch(env, { method: "PUT", path: dest, headers: { "x-amz-copy-source": source }, creds: COPIER });

  test(
    "the 200 head and the XML declaration reach the client while the source still holds its answer (a second streamed copy meanwhile: 503 SlowDown, the upload slot is taken); the result follows once it answers",
    async () => {
      const key = `late/${engine}-${client}.txt`;
      const res = await copy(`/up/${key}`, "/held/src.txt");
      // (the head is here; the source is asked, and has not answered: the keep-alive head may
      // leave before the source's GET reaches it on a loaded host)
      expect(res.status).toBe(200);
      await waitFor(() => store.gets >= 1, { message: "the source to be asked" });
      expect(store.gets).toBe(1);
      expect(await s3.exists("up", key)).toBe(false);
      // A streamed copy holds an upload slot (server.max_concurrent_uploads: 1 here): a second
      // one is refused before its source is read.
      const second = await copy(`/up/${key}.2`, "/held/src.txt");
      expect([second.status, /<Code>([^<]+)<\/Code>/.exec(await second.text())?.[1]]).toEqual([503, "SlowDown"]);
      expect(store.gets).toBe(1);
      const reader = res.body!.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      expect(first).toStartWith('<?xml version="1.0" encoding="UTF-8"?>');
      store.release();
      let rest = "";
      for (;;) {
        const r = await reader.read();
        if (r.done) break;
        rest += new TextDecoder().decode(r.value);
      }
      expect((first + rest).replace(/^<\?xml[^>]*\?>\s*/, "")).toMatch(/^<CopyObjectResult xmlns="[^"]+"><ETag>&quot;[0-9a-f]{32}&quot;<\/ETag><LastModified>/);
      expect(new TextDecoder().decode((await s3.read("up", key))!)).toBe(CONTENT);
    },
    T,
  );

  test(
    "a source that stalls part-way (s3.timeout 1 s): the <Error> document after the spaces, the destination's upload aborted, nothing stored",
    async () => {
      const key = `late/stalled-${engine}-${client}.bin`;
      s3.resetLog();
      const res = await copy(`/up/${key}`, "/stall/src.bin");
      expect(res.status).toBe(200);
      const body = await res.text();
      expect(body).toMatch(/^<\?xml[^>]*\?>\n *<Error><Code>InternalError<\/Code><Message>[^<]*nothing was written/);
      await waitFor(() => s3.requests.some((e) => e.method === "PUT" && e.pathname === `/up/${key}` && e.body === "aborted"), { message: "the upload to be aborted" });
      expect(await s3.exists("up", key)).toBe(false);
      // counted as the failed write it is, though its status was 200
      const metrics = env.app.metrics.render();
      expect(metrics).toMatch(/^yatagarasu_write_errors_total\{bucket="up",operation="CopyObject",code="InternalError"\} 1$/m);
    },
    T,
  );

  test(
    "a destination that refuses the write before taking its body (its circuit breaker open): the source's connection is closed at once, not left open",
    async () => {
      // (refused: 503, or, when the refusal took longer than the 100 ms keep-alive interval on a
      // loaded host, the 200 head then the <Error> document; either way ServiceUnavailable)
      const refusal = async (res: Response) => `${res.status === 200 ? "late" : res.status} ${/<Code>([^<]+)<\/Code>/.exec(await res.text())?.[1]}`;
      // the first copy finds the destination unreachable and opens its breaker (threshold 1)
      const first = await copy("/deadend/x.bin", "/stall20/src.bin");
      expect(["503 ServiceUnavailable", "late ServiceUnavailable"]).toContain(await refusal(first));
      await waitFor(() => store.stallClosed >= 1, { message: "the first copy's source connection to be closed" });
      const closed = store.stallClosed;
      // the second is refused by the open breaker before the write is even tried
      const a = await copy("/deadend/x.bin", "/stall20/src.bin");
      expect(["503 ServiceUnavailable", "late ServiceUnavailable"]).toContain(await refusal(a));
      await waitFor(() => store.stallClosed > closed, { message: "the source's connection to be closed", timeoutMs: 5000 });
    },
    T,
  );
});

describe.concurrent("a source that trickles, never stalling", () => {
  // Before, only a read waiting s3.timeout failed a streamed copy: 1 KiB every 250 ms held it (and
  // its upload slot) for as long as the source kept that up. Now the reads may wait s3.timeout plus
  // 1 s per 16 KiB in all (3 s for these 32 KiB), as a held body may.
  // The two run at once (each mostly waits on its trickle): each has its own store and proxy, and
  // writes its own key to the shared fixture, whose log it searches for that key only.
  for (const client of ["auto", "fetch"] as const) {
    test(
      `upstream client ${client}: the copy fails with the <Error> document, the source's connection is closed, the upload aborted, nothing stored`,
      async () => {
        const store = startStore();
        const yaml = uploadYaml(s3.endpoint, {
          moreBuckets: () => `  - name: trickle\n    path_prefix: /trickle\n    s3: { bucket: trickle, endpoint: "http://127.0.0.1:${store.port}", timeout: 1, retry: { max_attempts: 1 } }\n`,
          moreCredentials: `    - { access_key_id: "${COPIER.accessKeyId}", secret_access_key: "${COPIER.secretAccessKey}", identity: copier, buckets: { up: [read, write], trickle: [read] } }\n`,
          // (a body this small is streamed, not read whole inside its attempt)
        }).replace("engine: bun", `engine: bun, upstream_client: ${client}, buffer_threshold_bytes: 1024`);
        const env = await startFrontsOn(yaml, s3, false).catch((e) => {
          store.close();
          throw e;
        });
        try {
          const key = `late/trickled-${client}.bin`;
          const res = await signedFetch(env, { method: "PUT", path: `/up/${key}`, headers: { "x-amz-copy-source": "/trickle/src.bin" }, creds: COPIER });
          const body = await res.text();
          expect(body).toMatch(/<Error><Code>InternalError<\/Code><Message>The copy source&apos;s upstream sent the object too slowly: nothing was written/);
          await waitFor(() => store.trickleClosed >= 1, { message: "the source's connection to be closed" });
          await waitFor(() => s3.requests.some((e) => e.method === "PUT" && e.pathname === `/up/${key}` && e.body === "aborted"), { message: "the upload to be aborted" });
          expect(await s3.exists("up", key)).toBe(false);
        } finally {
          await env[Symbol.asyncDispose]();
          store.close();
        }
      },
      T,
    );
  }
});
