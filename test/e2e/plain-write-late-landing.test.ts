/**
 * A plain-front write whose answer is lost (the store took it and gave no answer within
 * s3.timeout) may be applied by the store after the proxy gave up: S3 commits a body it took
 * whole. The key was purged at the 504, but a read before the store committed cached the old
 * object again, which was then served as a HIT for its whole TTL (600 s here) while the store held
 * the new object, or none. The key is now purged once more, s3.timeout after the lost answer.
 *
 * The upstream is a stand-in store in the test process: a write is taken and never answered, and
 * applied when the test says so.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { nullLogger } from "../../src/observe/log.ts";
import { listenBun, listenNode, type Listener } from "../../src/server.ts";
import { waitFor } from "../helpers/wait.ts";
import { bearer, SECRET } from "./plain-write-env.ts";

setDefaultTimeout(30_000);

/** A store holding one object, `/rw/k`, whose writes are taken and never answered; `land()` applies the last one. */
function lateStore() {
  let value: string | undefined = "old";
  let pending: (() => void) | undefined;
  let taken!: () => void;
  const writeTaken = new Promise<void>((r) => (taken = r));
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === "/rw/k" && (req.method === "PUT" || req.method === "DELETE")) {
        const body = req.method === "PUT" ? await req.text() : undefined;
        pending = () => (value = body);
        taken();
        return new Promise<Response>(() => {});
      }
      if (path === "/rw/k" && (req.method === "GET" || req.method === "HEAD")) {
        if (value === undefined) return new Response(req.method === "HEAD" ? null : "<Error><Code>NoSuchKey</Code></Error>", { status: 404, headers: { "content-type": "application/xml" } });
        return new Response(req.method === "HEAD" ? null : value, { headers: { etag: `"${value}"`, "content-type": "text/plain", "content-length": String(value.length), "last-modified": new Date(0).toUTCString() } });
      }
      return new Response(null, { status: 200 });
    },
  });
  return { server, writeTaken, land: () => pending!() };
}

// The four tests run at once (each has its own store and proxy, and mostly waits out s3.timeout).
for (const engine of ["bun", "node"] as const) {
  describe(`a lost write answer, applied later by the store (${engine} engine)`, () => {
    for (const method of ["PUT", "DELETE"] as const) {
      test.concurrent(`${method}: a read between the 504 and the store applying it does not leave the old object cached`, async () => {
        const cleanups: Array<() => Promise<void> | void> = [];
        try {
          const store = lateStore();
          cleanups.push(() => store.server.stop(true));
          const config = parseConfig(`server: { address: 127.0.0.1, port: 0, engine: ${engine} }
logging: { level: error }
jwt: { enabled: true, algorithm: HS256, secret: "${SECRET}" }
cache: { enabled: true }
buckets:
  - name: rw
    path_prefix: /rw
    access: read-write
    auth: { enabled: true }
    cache: { enabled: true, ttl_seconds: 600 }
    s3: { bucket: rw, endpoint: "http://127.0.0.1:${store.server.port}", access_key: AKIALATESTORE0000001, secret_key: "late-store-secret-00000000000000000000000", timeout: 1, retry: { max_attempts: 1 } }
`);
          const app = await App.create(config, { log: nullLogger, probeIntervalMs: 600_000 });
          const main: Listener = engine === "node" ? await listenNode(app, config) : listenBun(app, config);
          cleanups.push(async () => {
            await main.stop(true);
            app.close();
          });
          const url = `http://127.0.0.1:${main.port}/rw/k`;
          const read = async () => {
            const r = await fetch(url, { headers: bearer() });
            return { status: r.status, cache: r.headers.get("x-cache"), body: await r.text() };
          };
          expect((await read()).cache).toBe("MISS");
          expect(await read()).toEqual({ status: 200, cache: "HIT", body: "old" });

          const write = await fetch(url, { method, headers: bearer(), ...(method === "PUT" ? { body: "new" } : {}) });
          await write.text();
          await store.writeTaken;
          expect(write.status).toBe(504);
          // the store has not applied it yet: the old object, read and cached again
          expect(await read()).toEqual({ status: 200, cache: "MISS", body: "old" });
          store.land();
          // (before: a HIT of "old" for the 600 s TTL)
          const want = method === "PUT" ? { status: 200, body: "new" } : { status: 404 };
          await waitFor(
            async () => {
              const r = await read();
              return r.status === want.status && (want.body === undefined || r.body === want.body);
            },
            { timeoutMs: 10_000, intervalMs: 20, message: `the store's ${method === "PUT" ? "new object" : "delete"} to be served` },
          );
        } finally {
          while (cleanups.length > 0) await cleanups.pop()!();
        }
      });
    }
  });
}
