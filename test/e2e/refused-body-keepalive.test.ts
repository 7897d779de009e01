/**
 * A refused upload on a kept-alive connection (403 on the S3 front, 405 on the plain front's
 * read-only bucket) whose body was left unread: the engines dropped that body at the client's pace
 * (a PUT declaring 1 GiB was read for as long as the client sent, ~60 s and more). S3 answers such a
 * request and closes. A chunked body, or one declared past 64 MiB (REFUSED_DRAIN_BYTES), now gets
 * an answer saying `Connection: close`, and the connection closes (within the refused-body
 * bounds); a refused body of a smaller declared length keeps its connection.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { connect } from "node:net";
import { parseConfig } from "../../src/config/load.ts";
import { closeAsAsked, listenMetrics } from "../../src/server.ts";
import { shortRefusedDrain, startUploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);
shortRefusedDrain(300);

/**
 * A kept-alive PUT declaring `declared` (a length, or chunked), refused; once the answer's head is
 * in, the client pushes body bytes without end (512 MiB). It sends none before the answer: bytes
 * in flight when the proxy closes make its kernel reset the connection, and a reset can overtake
 * the answer (the known refused-body reset; with the client pushing from the start these tests
 * lost that race about 1 run in 6 on a loaded host). The chunked body's drain before the answer
 * (the close path's, REFUSED_DRAIN_MS) is shortened.
 */
function pushing(port: number, framing: string, path = "/ro/deny/x"): Promise<{ head: string; pushed: number; closed: boolean }> {
  return new Promise((resolve) => {
    const sock = connect(port, "127.0.0.1");
    const chunk = Buffer.alloc(256 * 1024, 1);
    let answer = "";
    let pushed = 0;
    let closed = false;
    let stopAt = 0;
    const finish = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ head: answer.split("\r\n\r\n")[0], pushed, closed });
    };
    const timer = setTimeout(finish, 8000);
    const pump = () => {
      while (!sock.destroyed && pushed < stopAt) {
        pushed += chunk.length;
        if (!sock.write(framing === "chunked" ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]) : chunk)) return void sock.once("drain", pump);
      }
    };
    sock.on("data", (d) => {
      answer += d.toString("latin1");
      // once the answer is in, the client pushes 512 MiB: a proxy that drains it reads it all
      if (answer.includes("\r\n\r\n") && stopAt === 0) {
        stopAt = 512 * 1024 * 1024;
        pump();
      }
    });
    sock.on("error", () => {});
    sock.on("close", () => ((closed = true), finish()));
    const length = framing === "chunked" ? "Transfer-Encoding: chunked" : `Content-Length: ${framing}`;
    sock.write(`PUT ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${length}\r\n\r\n`);
  });
}

for (const engine of ["bun", "node"] as const)
  for (const framing of [String(1024 ** 3), "chunked"])
    test(`${engine} engine: a kept-alive refused upload declaring ${framing === "chunked" ? "a chunked body" : "1 GiB"} is answered with Connection: close and closed, not drained at the client's pace`, async () => {
      await using env = await startUploadEnv({ engine });
      for (const [port, status] of [[env.port, "403"], [Number(new URL(env.mainUrl("/")).port), "405"]] as const) {
        const got = await pushing(port, framing);
        expect(got.head).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
        expect(got.head.toLowerCase()).toContain("connection: close");
        expect(got.closed).toBe(true);
      }
    });

for (const engine of ["bun", "node"] as const)
  test(`${engine} engine: a small refused upload keeps its kept-alive connection, and the next request on it is answered`, async () => {
    await using env = await startUploadEnv({ engine });
    const got = await new Promise<string>((resolve) => {
      const sock = connect(env.port, "127.0.0.1");
      let answer = "";
      sock.on("data", (d) => {
        answer += d.toString("latin1");
        if ((answer.match(/HTTP\/1\.1 /g) ?? []).length === 2 && /\r\n\r\n[^]*\r\n\r\n/.test(answer)) sock.end();
      });
      sock.on("error", () => {});
      sock.on("close", () => resolve(answer));
      const body = "x".repeat(1000);
      sock.write(`PUT /ro/deny/x HTTP/1.1\r\nHost: 127.0.0.1:${env.port}\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      sock.write(`GET /ro/deny/x HTTP/1.1\r\nHost: 127.0.0.1:${env.port}\r\n\r\n`);
    });
    expect(got.match(/HTTP\/1\.1 \d\d\d/g)).toEqual(["HTTP/1.1 403", "HTTP/1.1 403"]);
    expect(got.toLowerCase()).not.toContain("connection: close");
  });

test("the metrics listener too: a kept-alive chunked PUT /metrics gets its 405 with Connection: close, not a read of the whole body", async () => {
  const cfg = parseConfig("metrics: { enabled: true, address: 127.0.0.1, port: 0 }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: data, endpoint: \"http://127.0.0.1:9\" } }\n", { env: {} });
  // (one declaring more than 128 MiB gets Bun's own 413, which closes)
  const m = listenMetrics(cfg, () => "");
  try {
    const got = await pushing(m.port, "chunked", "/metrics");
    expect(got.head).toMatch(/^HTTP\/1\.1 405 /);
    expect(got.head.toLowerCase()).toContain("connection: close");
    expect(got.closed).toBe(true);
  } finally {
    await m.stop(true);
  }
});

test("a kept-alive request framed within the bound (a small PutObject, a GET) is answered as it is, its body stream never made (a small PutObject reads it whole with req.bytes())", () => {
  let made = 0;
  const answer = new Response("ok");
  let read = 0;
  const request = (method: string, fields: Record<string, string>) => {
    const headers = new Headers(fields);
    const counted = { get: (name: string) => (name === "connection" || read++, headers.get(name)) };
    return { method, headers: counted, bodyUsed: false, get body() { made++; return null; } } as unknown as Request;
  };
  for (const fields of [{ "content-length": "1024" }, { "content-length": "0" }, {}] as Array<Record<string, string>>) expect(closeAsAsked(request("PUT", fields), answer)).toBe(answer);
  expect(made).toBe(0);
  // (and a GET or HEAD, whose body Bun never gives, reads no field past Connection)
  read = 0;
  for (const method of ["GET", "HEAD"]) expect(closeAsAsked(request(method, {}), answer)).toBe(answer);
  expect(read).toBe(0);
});
