/** writeNodeResponse (node engine): what it sends when a body fails, and what it reports. */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import http from "node:http";
import { connect } from "node:net";
import { UpstreamProtocolError, UpstreamTimeoutError } from "../../src/s3/http1/index.ts";
import { type NodeWriteResult, writeNodeResponse } from "../../src/server/node-response.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A node:http server answering every request with `make()`; resolves each write's result. */
async function serve(make: () => Response): Promise<{ url: string; port: number; results: NodeWriteResult[] }> {
  const results: NodeWriteResult[] = [];
  const server = http.createServer((req, res) => {
    void writeNodeResponse(res, make(), req.method === "HEAD").then((r) => results.push(r));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/`, port, results };
}

/** A body that yields `chunks`, then fails with `err`. */
function failing(chunks: Uint8Array[], err: unknown): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (i < chunks.length) c.enqueue(chunks[i++]);
      else c.error(err);
    },
  });
}

/** The raw bytes a client receives until the server closes or `ms` pass (`keepAlive`: the request does not ask for close). */
async function rawGet(port: number, ms = 3000, keepAlive = false): Promise<{ text: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect(port, "127.0.0.1", () => s.write(`GET / HTTP/1.1\r\nhost: x\r\n${keepAlive ? "" : "connection: close\r\n"}\r\n`));
    const done = (closedByServer: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString("latin1"), closedByServer });
    };
    const t = setTimeout(() => done(false), ms);
    s.on("data", (d: Buffer) => chunks.push(d));
    s.on("close", () => done(true));
    s.on("error", () => {});
  });
}

describe("writeNodeResponse", () => {
  test("a complete small body without a length gets one; the result has the bytes and no error", async () => {
    const body = () =>
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(Buffer.from("hel"));
          c.enqueue(Buffer.from("lo"));
          c.close();
        },
      });
    const srv = await serve(() => new Response(body(), { headers: { "x-request-id": "r1" } }));
    const res = await fetch(srv.url);
    expect(res.headers.get("content-length")).toBe("5");
    expect(await res.text()).toBe("hello");
    await waitFor(() => srv.results.length === 1);
    expect(srv.results[0]).toEqual({ status: 200, bytes: 5 });
  });

  test("a body failing before anything was sent becomes 502 with the request id, never an empty 200", async () => {
    const srv = await serve(() => new Response(failing([Buffer.from("hello")], new UpstreamProtocolError("upstream closed the connection mid-body")), { headers: { "x-request-id": "r2", "content-type": "text/plain" } }));
    const res = await fetch(srv.url);
    expect(res.status).toBe(502);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("x-request-id")).toBe("r2");
    expect(await res.json()).toEqual({ error: "BadGateway", message: "The upstream connection failed while sending the object", request_id: "r2" });
    await waitFor(() => srv.results.length === 1);
    const r = srv.results[0];
    expect(r.status).toBe(502);
    expect(r.error).toBeInstanceOf(UpstreamProtocolError);
  });

  test("an upstream stall before anything was sent is 504; an unknown body error (fetch's TypeError) is 502", async () => {
    const stall = await serve(() => new Response(failing([], new UpstreamTimeoutError("upstream stalled mid-body"))));
    expect((await fetch(stall.url)).status).toBe(504);
    const reset = await serve(() => new Response(failing([], new TypeError("ECONNRESET"))));
    const res = await fetch(reset.url);
    expect(res.status).toBe(502);
    expect(await res.text()).not.toContain("ECONNRESET");
  });

  test("a Content-Length body failing after the head went out is cut short, and reported", async () => {
    const srv = await serve(() => new Response(failing([Buffer.alloc(1000, 97)], new UpstreamProtocolError("upstream closed the connection mid-body")), { headers: { "content-length": "5000" } }));
    const got = await rawGet(srv.port);
    expect(got.closedByServer).toBe(true);
    expect(got.text).toStartWith("HTTP/1.1 200");
    expect(got.text.toLowerCase()).toContain("content-length: 5000");
    expect(got.text.length - (got.text.indexOf("\r\n\r\n") + 4)).toBe(1000);
    await waitFor(() => srv.results.length === 1);
    expect(srv.results[0]).toMatchObject({ status: 200, bytes: 1000 });
    expect(srv.results[0].error).toBeInstanceOf(UpstreamProtocolError);
  });

  /** A body of `chunks`, then its end. */
  const ending = (chunks: string[]) => {
    let i = 0;
    return new ReadableStream<Uint8Array>({
      pull(c) {
        if (i < chunks.length) c.enqueue(Buffer.from(chunks[i++]));
        else c.close();
      },
    });
  };
  const bodyOf = (text: string) => text.slice(text.indexOf("\r\n\r\n") + 4);
  const INJECTED = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Injected: yes\r\n\r\nINJECTED";

  test("a body longer than its Content-Length: no byte past it is sent (it would answer the client's next request); the connection is cut", async () => {
    const srv = await serve(() => new Response(ending(["A".repeat(10), INJECTED]), { headers: { "content-length": "10" } }));
    const got = await rawGet(srv.port, 3000, true);
    expect(got.closedByServer).toBe(true);
    expect(got.text).toStartWith("HTTP/1.1 200");
    expect(bodyOf(got.text)).toBe("A".repeat(10));
    expect(got.text).not.toContain("X-Injected");
    await waitFor(() => srv.results.length === 1);
    expect(srv.results[0]).toMatchObject({ status: 200, bytes: 10 });
    expect(srv.results[0].error).toBeDefined();
  });

  test("a body longer than its Content-Length in its first chunk is answered 502, nothing of it sent", async () => {
    const srv = await serve(() => new Response(ending(["A".repeat(10) + INJECTED]), { headers: { "content-length": "10", "x-request-id": "r9" } }));
    const got = await rawGet(srv.port);
    expect(got.text).toStartWith("HTTP/1.1 502");
    expect(got.text).not.toContain("X-Injected");
    await waitFor(() => srv.results.length === 1);
    expect(srv.results[0].status).toBe(502);
  });

  test("a body shorter than its Content-Length is cut, not ended (the client would wait for the rest on a kept-alive connection)", async () => {
    const srv = await serve(() => new Response(ending(["A".repeat(6)]), { headers: { "content-length": "10" } }));
    const got = await rawGet(srv.port, 3000, true);
    expect(got.closedByServer).toBe(true);
    expect(bodyOf(got.text)).toBe("A".repeat(6));
    await waitFor(() => srv.results.length === 1);
    expect(srv.results[0]).toMatchObject({ status: 200, bytes: 6 });
    expect(srv.results[0].error).toBeDefined();
  });

  test("a body of exactly its Content-Length is completed", async () => {
    const srv = await serve(() => new Response(ending(["A".repeat(4), "A".repeat(6)]), { headers: { "content-length": "10" } }));
    const got = await rawGet(srv.port);
    expect(bodyOf(got.text)).toBe("A".repeat(10));
    await waitFor(() => srv.results.length === 1);
    expect(srv.results[0]).toEqual({ status: 200, bytes: 10 });
  });

  test("a chunked body failing after the head went out has no terminating chunk", async () => {
    const big = Buffer.alloc(100 * 1024, 98); // above the small-body buffer: streamed chunked
    const srv = await serve(() => new Response(failing([big], new UpstreamProtocolError("upstream closed the connection mid-body"))));
    const got = await rawGet(srv.port);
    expect(got.closedByServer).toBe(true);
    expect(got.text.toLowerCase()).toContain("transfer-encoding: chunked");
    expect(got.text.endsWith("0\r\n\r\n")).toBe(false);
    await waitFor(() => srv.results.length === 1);
    expect(srv.results[0].error).toBeInstanceOf(UpstreamProtocolError);
  });

  test("a client that goes away mid-body is reported as an error, not as a complete response", async () => {
    const srv = await serve(
      () =>
        new Response(
          new ReadableStream<Uint8Array>({ pull: (c) => c.enqueue(Buffer.alloc(64 * 1024, 99)) }, { highWaterMark: 0 }),
          { headers: { "content-length": String(1 << 30) } },
        ),
    );
    const s = connect(srv.port, "127.0.0.1", () => s.write("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
    s.on("error", () => {});
    let received = 0;
    await new Promise<void>((resolve) =>
      s.on("data", (d) => {
        received += d.length;
        if (received > 256 * 1024) resolve();
      }),
    );
    s.destroy();
    await waitFor(() => srv.results.length === 1);
    expect(srv.results[0].error).toBeDefined();
    expect(srv.results[0].bytes).toBeLessThan(1 << 30);
  });

  test("HEAD, 204 and 304 send no body", async () => {
    const srv = await serve(() => new Response("ignored", { status: 200 }));
    const res = await fetch(srv.url, { method: "HEAD" });
    expect(res.status).toBe(200);
    await waitFor(() => srv.results.length === 1);
    expect(srv.results[0]).toEqual({ status: 200, bytes: 0 });
  });
});
