/**
 * A plain-front PUT whose upstream took the write (a 2xx head) and then stalled the body of its
 * answer (S3 sends none; a broken store or balancer sends a Content-Length and stops): the answer's
 * body is read whole by the upstream client, either one, within s3.timeout (plus the body at
 * 16 KiB/s), as a DELETE's is, and a stalled one is its 504 then, never a wait for
 * server.request_timeout (504 after 30 s for a write the store had taken within milliseconds). It
 * is not answered 200 unread either: a body cut short the same way is a broken answer (502,
 * write-answer-cut.test.ts), which only reading it tells.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startRawStore, type RawStore } from "../helpers/raw-store.ts";
import { startInProcess } from "./harness.ts";

setDefaultTimeout(30_000);

let store: RawStore;

beforeAll(async () => {
  // The write is taken; the answer's body is announced and never finished.
  store = await startRawStore(() => ({ bytes: `HTTP/1.1 200 OK\r\nETag: "stalled"\r\nContent-Length: 1000\r\n\r\n${"x".repeat(100)}`, end: false }));
});
afterAll(() => store.close());

const proxy = (client: "auto" | "fetch") =>
  startInProcess(
    `server: { address: 127.0.0.1, port: 0, request_timeout: 120, upstream_client: ${client} }
logging: { level: error }
buckets:
  - { name: b, path_prefix: /b, access: read-write, auth: { enabled: false, anonymous_writes: true }, s3: { bucket: data, endpoint: "http://127.0.0.1:${store.port}", access_key: AKIDSTALLED, secret_key: stalled-secret-0123456789, retry: { max_attempts: 1 }, timeout: 1 } }
`,
    { probeIntervalMs: 600_000 },
  );

for (const client of ["auto", "fetch"] as const)
  test(`${client === "auto" ? "own HTTP/1.1" : "fetch"} client: a PUT whose upstream answered 200 and stalled the answer's body is answered 504 after s3.timeout, not server.request_timeout`, async () => {
    await using px = await proxy(client);
    store.seen.length = 0;
    // (the test's own 30 s timeout is the bound: request_timeout is 120 s)
    const put = await fetch(px.url("/b/k.txt"), { method: "PUT", body: "brand new" });
    expect(put.status).toBe(504);
    expect(((await put.json()) as { error: string }).error).toBe("GatewayTimeout");
    expect(store.seen).toEqual(["PUT /data/k.txt"]);
  });
