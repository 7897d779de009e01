/** Http1Pool: Responses: framing, reuse, interim heads, realistic origins. */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { isOwnedBytes } from "../../../src/http/owned-response.ts";
import { UpstreamProtocolError } from "../../../src/s3/http1/index.ts";
import { cellsPerCall } from "../../helpers/alloc.ts";
import { waitFor } from "../../helpers/wait.ts";
import { cleanup, T, ok, onCleanup, pool, rawServer, rejection, writePaced } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

afterEach(cleanup);

describe("Http1Pool: responses", () => {
  test("200 with Content-Length is buffered; status, statusText and headers are exposed", async () => {
    const srv = rawServer((c) => c.socket.write("HTTP/1.1 200 Fine Thanks\r\nContent-Length: 5\r\nETag: \"e1\"\r\nX-Amz-Meta-A:  x  \r\nx-dup: 1\r\nx-dup: 2\r\n\r\nhello"));
    const p = pool(srv.port);
    const res = await p.request("GET", "/b/k", {}, T);
    expect(res.status).toBe(200);
    expect(res.statusText).toBe("Fine Thanks");
    expect(res.headers.get("etag")).toBe('"e1"');
    expect(res.headers.get("x-amz-meta-a")).toBe("x");
    expect(res.headers.get("x-dup")).toBe("1, 2");
    expect(res.headers.get("content-length")).toBe("5");
    expect(await res.text()).toBe("hello");
    expect(srv.conns[0].requests[0]).toStartWith("GET /b/k HTTP/1.1\r\nhost: 127.0.0.1:");
  });

  test("an answer read whole (bytes, or no body) is marked as owned, a streamed one is not", async () => {
    const big = "x".repeat(64);
    const srv = rawServer((c) => c.socket.write(c.requests.length === 1 ? ok("small") : c.requests.length === 2 ? "HTTP/1.1 304 Not Modified\r\netag: \"e\"\r\n\r\n" : ok(big)));
    const p = pool(srv.port, { bufferBodyUpTo: 16 });
    const small = await p.request("GET", "/1", {}, T);
    expect(isOwnedBytes(small)).toBe(true);
    expect(await small.text()).toBe("small");
    const none = await p.request("GET", "/2", {}, T);
    expect(none.status).toBe(304);
    expect(isOwnedBytes(none)).toBe(true);
    const streamed = await p.request("GET", "/3", {}, T);
    expect(isOwnedBytes(streamed)).toBe(false);
    expect(await streamed.text()).toBe(big);
    // A fetch()-style Response (immutable headers) is never taken for one.
    expect(isOwnedBytes(new Response("x"))).toBe(false);
  });

  test("the request is sent as one well-formed head with the caller's headers", async () => {
    const srv = rawServer((c) => c.socket.write(ok("")));
    const p = pool(srv.port);
    await p.request("GET", "/b/k%20x?versionId=1", { range: "bytes=0-4", "x-amz-date": "20260101T000000Z" }, T);
    expect(srv.conns[0].requests[0]).toBe(`GET /b/k%20x?versionId=1 HTTP/1.1\r\nhost: 127.0.0.1:${srv.port}\r\nrange: bytes=0-4\r\nx-amz-date: 20260101T000000Z\r\n\r\n`);
  });

  test("a head split byte by byte is parsed, and so is a byte-split body", async () => {
    const wire = "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 0-9/100\r\ncontent-length: 10\r\n\r\n0123456789";
    const srv = rawServer((c) => void writePaced(c.socket, wire.split("")));
    const p = pool(srv.port);
    const res = await p.request("GET", "/x", {}, T);
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe("bytes 0-9/100");
    expect(await res.text()).toBe("0123456789");
    expect(p.idleCount).toBe(1);
  });

  test("head and body in one packet", async () => {
    const srv = rawServer((c) => c.socket.write(ok("abc", "content-type: text/plain\r\n")));
    const p = pool(srv.port);
    const res = await p.request("GET", "/x", {}, T);
    expect(res.headers.get("content-type")).toBe("text/plain");
    expect(await res.text()).toBe("abc");
  });

  test("two sequential requests reuse the same socket", async () => {
    const srv = rawServer((c) => c.socket.write(ok(`r${c.requests.length}`)));
    const p = pool(srv.port);
    expect(await (await p.request("GET", "/1", {}, T)).text()).toBe("r1");
    expect(p.idleCount).toBe(1);
    expect(await (await p.request("GET", "/2", {}, T)).text()).toBe("r2");
    expect(srv.conns.length).toBe(1);
    expect(srv.conns[0].requests.length).toBe(2);
    expect(p.idleCount).toBe(1);
  });

  test("bytes beyond the body (pipelined leftovers) mean the socket is not reused", async () => {
    const srv = rawServer((c) => c.socket.write(ok("one") + ok("two")));
    const p = pool(srv.port);
    expect(await (await p.request("GET", "/1", {}, T)).text()).toBe("one");
    expect(p.idleCount).toBe(0);
    expect(await (await p.request("GET", "/2", {}, T)).text()).toBe("one");
    expect(srv.conns.length).toBe(2);
    await waitFor(() => srv.openCount() === 0, { message: "server to see both connections closed" });
  });

  test("connection: close means the socket is not reused", async () => {
    const srv = rawServer((c) => c.socket.write(ok("x", "Connection: close\r\n")));
    const p = pool(srv.port);
    await (await p.request("GET", "/1", {}, T)).text();
    expect(p.idleCount).toBe(0);
    await (await p.request("GET", "/2", {}, T)).text();
    expect(srv.conns.length).toBe(2);
  });

  test("HTTP/1.0 responses are reused only with connection: keep-alive", async () => {
    const srv = rawServer((c) => c.socket.write(c.id === 0 ? "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\na" : "HTTP/1.0 200 OK\r\ncontent-length: 1\r\nconnection: Keep-Alive\r\n\r\nb"));
    const p = pool(srv.port);
    expect(await (await p.request("GET", "/1", {}, T)).text()).toBe("a");
    expect(p.idleCount).toBe(0);
    expect(await (await p.request("GET", "/2", {}, T)).text()).toBe("b");
    expect(p.idleCount).toBe(1);
  });

  test("chunked body with extensions and trailers, split at awkward boundaries", async () => {
    const wire =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "5;name=value;other\r\nhello\r\n" +
      "1\r\n \r\n" +
      "A \t;ext\r\n0123456789\r\n" +
      "0;last\r\nx-checksum: abc\r\nx-more: y\r\n\r\n";
    const bodies: string[] = [];
    const srv = rawServer((c) => {
      const n = c.requests.length;
      if (n === 1) c.socket.write(wire);
      else {
        // split into pieces of 1..7 bytes, deterministic
        const pieces: string[] = [];
        for (let i = 0, k = n; i < wire.length; k++) {
          const len = 1 + ((k * 5) % 7);
          pieces.push(wire.slice(i, i + len));
          i += len;
        }
        void writePaced(c.socket, pieces);
      }
    });
    const p = pool(srv.port);
    for (let i = 0; i < 3; i++) {
      const res = await p.request("GET", "/c", {}, T);
      expect(res.headers.get("transfer-encoding")).toBe("chunked");
      bodies.push(await res.text());
    }
    expect(bodies).toEqual(["hello 0123456789", "hello 0123456789", "hello 0123456789"]);
    expect(srv.conns.length).toBe(1);
    expect(p.idleCount).toBe(1);
  });

  test("chunked with Content-Length too: decoded as chunked, socket not reused", async () => {
    const srv = rawServer((c) => c.socket.write("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
    const p = pool(srv.port);
    const res = await p.request("GET", "/c", {}, T);
    // the decoded body's length, not the one the dropped field claimed
    expect(res.headers.get("content-length")).toBeNull();
    expect(await res.text()).toBe("abc");
    expect(p.idleCount).toBe(0);
  });

  test("malformed chunk size is a protocol error (with the head: the request rejects, nothing handed over)", async () => {
    const srv = rawServer((c) => c.socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"));
    const p = pool(srv.port);
    expect(await rejection(p.request("GET", "/c", {}, T))).toBeInstanceOf(UpstreamProtocolError);
  });

  test("close-delimited body is read until the server closes", async () => {
    const srv = rawServer((c) => {
      c.socket.write("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nsome ");
      void writePaced(c.socket, ["body ", "until close"]).then(() => c.socket.end());
    });
    const p = pool(srv.port);
    const res = await p.request("GET", "/x", {}, T);
    expect(await res.text()).toBe("some body until close");
    expect(p.idleCount).toBe(0);
  });

  test("HEAD with Content-Length has no body and the socket is reused", async () => {
    const srv = rawServer((c, head) =>
      c.socket.write(head.startsWith("HEAD") ? "HTTP/1.1 200 OK\r\ncontent-length: 12345\r\netag: \"h\"\r\n\r\n" : ok("after")),
    );
    const p = pool(srv.port);
    const res = await p.request("HEAD", "/x", {}, T);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe("12345");
    expect(res.body).toBeNull();
    expect(p.idleCount).toBe(1);
    expect(await (await p.request("GET", "/x", {}, T)).text()).toBe("after");
    expect(srv.conns.length).toBe(1);
    expect(srv.conns[0].requests[0]).toStartWith("HEAD /x HTTP/1.1\r\n");
  });

  test("204 and 304 have no body and the socket is reused", async () => {
    const srv = rawServer((c) =>
      c.socket.write(c.requests.length === 1 ? "HTTP/1.1 204 No Content\r\n\r\n" : "HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\ncontent-length: 99\r\n\r\n"),
    );
    const p = pool(srv.port);
    const a = await p.request("GET", "/x", {}, T);
    expect(a.status).toBe(204);
    expect(a.body).toBeNull();
    const b = await p.request("GET", "/x", { "if-none-match": '"x"' }, T);
    expect(b.status).toBe(304);
    expect(b.body).toBeNull();
    expect(srv.conns.length).toBe(1);
    expect(p.idleCount).toBe(1);
  });

  test("a 204 announcing a body (a Content-Length above 0, or Transfer-Encoding) closes its socket: the body's late bytes never precede the next answer", async () => {
    // A store that answers a DELETE 204 with `Content-Length: 5` and sends those 5 bytes late
    // (here: when the next request comes on the connection), then the next answer.
    for (const framing of ["content-length: 5", "transfer-encoding: chunked"]) {
      const late = framing.startsWith("content") ? "hello" : "5\r\nhello\r\n0\r\n\r\n";
      let asked = 0;
      const srv = rawServer((c) => c.socket.write(++asked === 1 ? `HTTP/1.1 204 No Content\r\n${framing}\r\n\r\n` : c.requests.length === 1 ? ok("fine") : `${late}${ok("fine")}`));
      const p = pool(srv.port);
      expect((await p.request("DELETE", "/x", {}, T)).status).toBe(204);
      const next = await p.request("GET", "/y", {}, T);
      expect([next.status, await next.text()]).toEqual([200, "fine"]);
      expect(srv.conns.length).toBe(2);
    }
  });

  test("1xx interim responses are skipped (100 Continue, 103 Early Hints)", async () => {
    const srv = rawServer((c) => {
      if (c.requests.length === 1) c.socket.write("HTTP/1.1 100 Continue\r\n\r\n" + ok("final"));
      else void writePaced(c.socket, ["HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r", "\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 20", "0 OK\r\ncontent-length: 2\r\n\r\nok"]);
    });
    const p = pool(srv.port);
    const a = await p.request("GET", "/x", {}, T);
    expect(a.status).toBe(200);
    expect(await a.text()).toBe("final");
    const b = await p.request("GET", "/x", {}, T);
    expect(b.status).toBe(200);
    expect(b.headers.get("link")).toBeNull();
    expect(await b.text()).toBe("ok");
  });

  test("101 Switching Protocols is a protocol error", async () => {
    const srv = rawServer((c) => c.socket.write("HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n"));
    const p = pool(srv.port);
    expect(await rejection(p.request("GET", "/x", {}, T))).toBeInstanceOf(UpstreamProtocolError);
  });

  test("Content-Length above bufferBodyUpTo is streamed and read fully (5 MiB from Bun.serve)", async () => {
    const data = Buffer.alloc(5 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >>> 10)) & 255;
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(data, { headers: { "content-type": "application/octet-stream" } }) });
    onCleanup(() => server.stop(true));
    const p = pool(server.port!, { bufferBodyUpTo: 64 * 1024 });
    for (let i = 0; i < 2; i++) {
      const res = await p.request("GET", "/big", {}, T);
      expect(res.headers.get("content-length")).toBe(String(data.length));
      expect(res.body).toBeInstanceOf(ReadableStream);
      const got = Buffer.from(await res.arrayBuffer());
      expect(got.length).toBe(data.length);
      expect(got.equals(data)).toBe(true);
    }
    expect(p.idleCount).toBe(1);
  });

  test("realistic Bun.serve origin: small buffered bodies, 404, HEAD, many concurrent requests", async () => {
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (r) => {
        const u = new URL(r.url);
        if (u.pathname === "/missing") return new Response("<Error><Code>NoSuchKey</Code></Error>", { status: 404, headers: { "content-type": "application/xml" } });
        return new Response(`path=${u.pathname} host=${r.headers.get("host")}`, { headers: { etag: '"e"' } });
      },
    });
    onCleanup(() => server.stop(true));
    const p = pool(server.port!, { hostHeader: "bucket.example:9000" });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => p.request("GET", `/k${i}`, {}, T).then((r) => r.text())));
    results.forEach((t, i) => expect(t).toBe(`path=/k${i} host=bucket.example:9000`));
    const nf = await p.request("GET", "/missing", {}, T);
    expect(nf.status).toBe(404);
    expect(nf.statusText).toBe("Not Found");
    expect(await nf.text()).toContain("NoSuchKey");
    const h = await p.request("HEAD", "/k", {}, T);
    expect(h.status).toBe(200);
    expect(h.headers.get("etag")).toBe('"e"');
    expect(p.idleCount).toBeGreaterThan(0);
    expect(p.idleCount).toBeLessThanOrEqual(50);
  });
});

describe("Http1Pool: objects per request", () => {
  test("a pooled GET makes no executor closure (nor the scope it held) for its promise", async () => {
    const srv = rawServer((c) => c.socket.write(ok("hello")));
    const p = pool(srv.port);
    const cells = await cellsPerCall(async () => {
      const res = await p.request("GET", "/b/k", {}, T);
      await res.arrayBuffer();
    });
    // (before: 3 scopes and 4 functions: the executor, and the request's scope it closed over)
    expect(cells.JSLexicalEnvironment ?? 0).toBeLessThan(0.5);
    expect(cells.Function).toBeLessThanOrEqual(3);
  });

  test("a bytes PUT goes out from the reused buffer without a view of it per request", async () => {
    const srv = rawServer((c) => c.socket.write(ok("")));
    const p = pool(srv.port);
    const body = new Uint8Array(1024).fill(97);
    const cells = await cellsPerCall(async () => {
      const res = await p.request("PUT", "/b/k", {}, { ...T, body });
      await res.arrayBuffer();
    });
    // (4 before: the head and body's view of the scratch buffer, written with write(buffer, 0, length) now)
    expect(cells.Uint8Array).toBeLessThanOrEqual(3);
  });
});
