/**
 * A plain-front PUT whose upstream took the write (a 2xx head) and then stalled the body of its
 * answer (S3 sends none; a broken store or balancer sends a Content-Length and stops): the client
 * gets its answer at once. The body was awaited, so the answer waited for server.request_timeout
 * (504 after 30 s for a write the store had taken within milliseconds). (A DELETE's small answer
 * is read whole by the upstream client, within s3.timeout: a stalled one is its 504.)
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { createServer, type Server, type Socket } from "node:net";
import { startInProcess } from "./harness.ts";

setDefaultTimeout(30_000);

let store: Server;
let port = 0;
const sockets = new Set<Socket>();
const seen: string[] = [];

beforeAll(async () => {
  store = createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    let buf = Buffer.alloc(0);
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buf.subarray(0, end).toString("latin1");
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + length) return;
      seen.push(head.split(" ", 2).join(" "));
      buf = Buffer.alloc(0);
      // The write is taken; the answer's body is announced and never finished. (A HEAD, the
      // readiness probe's, is answered as S3 answers it.)
      if (head.startsWith("HEAD ")) sock.write(`HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n`);
      else sock.write(`HTTP/1.1 200 OK\r\nETag: "stalled"\r\nContent-Length: 1000\r\n\r\n${"x".repeat(100)}`);
    });
  });
  await new Promise<void>((resolve) => store.listen(0, "127.0.0.1", resolve));
  port = (store.address() as { port: number }).port;
});
afterAll(() => {
  for (const s of sockets) s.destroy();
  store.close();
});

const proxy = () =>
  startInProcess(
    `server: { address: 127.0.0.1, port: 0, request_timeout: 120 }
logging: { level: error }
buckets:
  - { name: b, path_prefix: /b, access: read-write, auth: { enabled: false, anonymous_writes: true }, s3: { bucket: data, endpoint: "http://127.0.0.1:${port}", access_key: AKIDSTALLED, secret_key: stalled-secret-0123456789, retry: { max_attempts: 1 }, timeout: 60 } }
`,
    { probeIntervalMs: 600_000 },
  );

test("a PUT whose upstream answered 200 and stalled the answer's body is answered 200 with the ETag, without waiting for the body", async () => {
  await using px = await proxy();
  const put = await fetch(px.url("/b/k.txt"), { method: "PUT", body: "brand new" });
  expect(put.status).toBe(200);
  expect(await put.json()).toEqual({ key: "k.txt", etag: '"stalled"' });
  expect(seen).toContain("PUT /data/k.txt");
});
