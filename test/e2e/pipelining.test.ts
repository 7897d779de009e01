/**
 * HTTP/1.1 pipelining. node:http answers pipelined requests in order whatever the handler does.
 * Bun.serve (1.4.5) closes the connection when a pipelined request arrives while an asynchronous
 * response is pending (uWS's HTTP_RESPONSE_PENDING branch; README Known limits has the minimal
 * reproduction): with engine: bun only synchronous answers (fresh cache hits, /health) survive
 * pipelining. The workaround is `server.engine: node`, which this test holds to its promise.
 */
import { rawHttp, rawStatuses as statuses } from "../helpers/raw-http.ts";
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
const proxies: Record<string, InProcessProxy> = {};

function pipelined(port: number, paths: string[]): Promise<string> {
  return rawHttp(port, paths.map((p, i) => `GET ${p} HTTP/1.1\r\nHost: x\r\n${i === paths.length - 1 ? "Connection: close\r\n" : ""}\r\n`).join(""));
}

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "pipe", public: true }], credentials: [] });
  for (const k of ["a.txt", "b.txt", "c.txt", "h#1.txt"]) await s3.put("pipe", k, `body of ${k}`);
  for (const engine of ["bun", "node"]) {
    proxies[engine] = await startInProcess(
      `server: { address: 127.0.0.1, port: 0, engine: ${engine} }\ncache: { enabled: true }\nbuckets:\n` +
        bucketYaml({ name: "pipe", prefix: "/pipe", bucket: "pipe", endpoint: s3.endpoint }) +
        bucketYaml({ name: "hot", prefix: "/hot", bucket: "pipe", endpoint: s3.endpoint, extra: "    cache: { enabled: true }\n" }),
    );
  }
});
afterAll(async () => {
  for (const p of Object.values(proxies)) await p.stop();
  await s3?.stop();
});

test("node engine: three pipelined proxied GETs get three answers, in order", async () => {
  const raw = await pipelined(proxies.node.port, ["/pipe/a.txt", "/pipe/b.txt", "/pipe/c.txt"]);
  expect(statuses(raw)).toEqual([200, 200, 200]);
  expect(raw.indexOf("body of a.txt")).toBeLessThan(raw.indexOf("body of b.txt"));
  expect(raw.indexOf("body of b.txt")).toBeLessThan(raw.indexOf("body of c.txt"));
});

test("bun engine: pipelined synchronous answers (fresh cache hits) are all answered", async () => {
  for (const k of ["a.txt", "b.txt", "c.txt"]) expect((await fetch(proxies.bun.url(`/hot/${k}`))).status).toBe(200); // fill
  const raw = await pipelined(proxies.bun.port, ["/hot/a.txt", "/hot/b.txt", "/hot/c.txt"]);
  expect(statuses(raw)).toEqual([200, 200, 200]);
});

/** One raw request on its own connection; the whole answer (the server closes, or the test's timeout ends it). */
const raw = rawHttp;

test("both engines: an absolute-form target routes on its path (RFC 9112 §3.2.2); CONNECT is answered 405, not left hanging", async () => {
  for (const engine of ["bun", "node"]) {
    const port = proxies[engine].port;
    const abs = await raw(port, `GET http://proxy.example/pipe/a.txt HTTP/1.1\r\nHost: proxy.example\r\nConnection: close\r\n\r\n`);
    expect({ engine, status: statuses(abs)[0] }).toEqual({ engine, status: 200 });
    expect(abs).toContain("body of a.txt");
    // Closed after the 405 on both engines: Bun.serve takes what follows a CONNECT as tunnel bytes
    // whatever the answer, so a kept connection swallowed the client's next requests until the
    // listener's idle timeout (60 s) closed it.
    const connectAnswer = await Promise.race([raw(port, `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n`), Bun.sleep(5_000).then(() => "still open after 5 s")]);
    expect({ engine, status: statuses(connectAnswer)[0] }).toEqual({ engine, status: 405 });
  }
});

test("both engines: a # in an absolute-form target's path or query stays in it, as in origin-form (the node engine answered 400 'The request is malformed')", async () => {
  for (const engine of ["bun", "node"]) {
    const port = proxies[engine].port;
    for (const target of ["/pipe/h#1.txt", "http://proxy.example/pipe/h#1.txt", "http://proxy.example/pipe/h%231.txt?v=#x"]) {
      const answer = await raw(port, `GET ${target} HTTP/1.1\r\nHost: proxy.example\r\nConnection: close\r\n\r\n`);
      expect({ engine, target, status: statuses(answer)[0] }).toEqual({ engine, target, status: 200 });
      expect(answer).toContain("body of h#1.txt");
    }
  }
});
