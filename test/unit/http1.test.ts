import { afterEach, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import {
  closeSharedPools,
  Http1Pool,
  sharedPool,
  UpstreamProtocolError,
  UpstreamTimeoutError,
  type Http1PoolOptions,
} from "../../src/s3/http1.ts";

// ---- helpers ------------------------------------------------------------------------------

interface RawConn {
  id: number;
  socket: Socket<RawConn>;
  buf: string;
  requests: string[];
  closed: boolean;
}

interface RawServer {
  port: number;
  conns: RawConn[];
  openCount(): number;
  stop(): void;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) {
    try {
      cleanups.pop()!();
    } catch {
      // keep cleaning
    }
  }
  closeSharedPools();
});

/** A raw TCP server; `onRequest` is called for every complete request head received on a connection. */
function rawServer(onRequest: (c: RawConn, head: string) => void): RawServer {
  const conns: RawConn[] = [];
  const listener: TCPSocketListener<RawConn> = Bun.listen<RawConn>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        const c: RawConn = { id: conns.length, socket: s, buf: "", requests: [], closed: false };
        s.data = c;
        conns.push(c);
      },
      data(s, d) {
        const c = s.data;
        c.buf += d.toString("latin1");
        let i: number;
        while ((i = c.buf.indexOf("\r\n\r\n")) >= 0) {
          const head = c.buf.slice(0, i + 4);
          c.buf = c.buf.slice(i + 4);
          c.requests.push(head);
          onRequest(c, head);
        }
      },
      close(s) {
        s.data.closed = true;
      },
      error() {},
    },
  });
  const srv: RawServer = {
    port: listener.port,
    conns,
    openCount: () => conns.filter((c) => !c.closed).length,
    stop: () => listener.stop(true),
  };
  cleanups.push(srv.stop);
  return srv;
}

function pool(port: number, extra: Partial<Http1PoolOptions> = {}): Http1Pool {
  const p = new Http1Pool({ host: "127.0.0.1", port, hostHeader: `127.0.0.1:${port}`, sweepIntervalMs: 20, ...extra });
  cleanups.push(() => p.close());
  return p;
}

const T = { timeoutMs: 2000 };

async function until(cond: () => boolean, what = "condition", ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

/** Write pieces one at a time with a tiny pause in between, so that they arrive as separate reads. */
async function writePaced(s: Socket<RawConn>, pieces: Array<string | Uint8Array>): Promise<void> {
  for (const p of pieces) {
    if (s.data.closed) return;
    s.write(p);
    s.flush();
    await Bun.sleep(1);
  }
}

/** Write a large buffer honouring partial writes; resolves when all is handed to the kernel. */
function writeAll(s: Socket<RawConn>, data: Uint8Array, progress?: (n: number) => void): Promise<void> {
  return new Promise((resolve) => {
    let off = 0;
    const step = () => {
      while (off < data.length) {
        if (s.data.closed) return resolve();
        const n = s.write(data.subarray(off, Math.min(data.length, off + 1024 * 1024)));
        if (n <= 0) return void setTimeout(step, 1);
        off += n;
        progress?.(off);
      }
      resolve();
    };
    step();
  });
}

async function rejection(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

function ok(body: string, extra = ""): string {
  return `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
}

// ---- tests --------------------------------------------------------------------------------

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
    await until(() => srv.openCount() === 0, "server to see both connections closed");
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
    expect(await (await p.request("GET", "/c", {}, T)).text()).toBe("abc");
    expect(p.idleCount).toBe(0);
  });

  test("malformed chunk size is a protocol error", async () => {
    const srv = rawServer((c) => c.socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"));
    const p = pool(srv.port);
    const res = await p.request("GET", "/c", {}, T);
    expect(await rejection(res.text())).toBeInstanceOf(UpstreamProtocolError);
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
    cleanups.push(() => server.stop(true));
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
    cleanups.push(() => server.stop(true));
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

describe("Http1Pool: backpressure", () => {
  test("a 50 MiB streamed body is not buffered while the reader does not read", async () => {
    const size = 50 * 1024 * 1024;
    const payload = Buffer.alloc(size, 7);
    let written = 0;
    const srv = rawServer((c) => {
      c.socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`);
      void writeAll(c.socket, payload, (n) => (written = n));
    });
    const p = pool(srv.port, { bufferBodyUpTo: 1024 });
    const res = await p.request("GET", "/big", {}, { timeoutMs: 2000 });
    const reader = res.body!.getReader();
    // Not reading: the server's progress must stop well short of the full size.
    let last = -1;
    let stable = 0;
    await until(() => {
      if (written === last) stable++;
      else stable = 0;
      last = written;
      return stable >= 20;
    }, "server writes to stop progressing");
    if (process.env.HTTP1_DEBUG) console.log("server progress while not reading MiB", (written / 1048576).toFixed(1));
    expect(written).toBeLessThan(size / 2);
    // Now read everything.
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
    }
    expect(total).toBe(size);
    expect(p.idleCount).toBe(1);
  });

  test("a paused (backpressured) body is not a stall", async () => {
    const size = 8 * 1024 * 1024;
    const srv = rawServer((c) => {
      c.socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`);
      void writeAll(c.socket, Buffer.alloc(size, 1));
    });
    const p = pool(srv.port, { bufferBodyUpTo: 1024 });
    const res = await p.request("GET", "/big", {}, { timeoutMs: 150 });
    const reader = res.body!.getReader();
    await Bun.sleep(500); // a slow client: longer than timeoutMs while the socket is paused
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
    }
    expect(total).toBe(size);
  });

  test("RSS growth stays bounded while a slow reader consumes 50 MiB", async () => {
    const size = 50 * 1024 * 1024;
    const payload = Buffer.alloc(size, 3);
    const srv = rawServer((c) => {
      c.socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`);
      void writeAll(c.socket, payload);
    });
    const p = pool(srv.port, { bufferBodyUpTo: 1024 });
    Bun.gc(true);
    const rss0 = process.memoryUsage.rss();
    let peak = rss0;
    const res = await p.request("GET", "/big", {}, { timeoutMs: 5000 });
    const reader = res.body!.getReader();
    let total = 0;
    let reads = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (++reads % 4 === 0) {
        await Bun.sleep(2); // slow consumer: far slower than loopback
        // Collect the chunks already consumed (garbage, not buffering) so RSS reflects what is retained.
        Bun.gc(true);
        peak = Math.max(peak, process.memoryUsage.rss());
      }
    }
    expect(total).toBe(size);
    // The server side of the test holds the 50 MiB payload already (allocated before rss0).
    if (process.env.HTTP1_DEBUG) console.log("rss growth MiB", ((peak - rss0) / 1048576).toFixed(1));
    // Without backpressure this measured ~37 MiB; with it ~4-10 MiB.
    expect(peak - rss0).toBeLessThan(24 * 1024 * 1024);
  });
});

describe("Http1Pool: truncation and protocol errors", () => {
  test("premature close with Content-Length (buffered) rejects, never truncates", async () => {
    const srv = rawServer((c) => {
      c.socket.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this");
      c.socket.end();
    });
    const p = pool(srv.port);
    const err = await rejection(p.request("GET", "/x", {}, T));
    expect(err).toBeInstanceOf(UpstreamProtocolError);
    expect(err.message).toBe("upstream closed the connection mid-body");
  });

  test("premature close with Content-Length (streamed) errors the stream", async () => {
    const srv = rawServer((c) => {
      c.socket.write("HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + "x".repeat(5000));
      void writePaced(c.socket, ["y".repeat(100)]).then(() => c.socket.end());
    });
    const p = pool(srv.port, { bufferBodyUpTo: 10 });
    const res = await p.request("GET", "/x", {}, T);
    const err = await rejection(res.arrayBuffer());
    expect(err).toBeInstanceOf(UpstreamProtocolError);
    expect(err.message).toBe("upstream closed the connection mid-body");
  });

  test("premature close of a chunked body errors the stream", async () => {
    const srv = rawServer((c) => {
      c.socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nabc");
      void writePaced(c.socket, ["def"]).then(() => c.socket.end());
    });
    const p = pool(srv.port);
    const res = await p.request("GET", "/x", {}, T);
    const err = await rejection(res.text());
    expect(err).toBeInstanceOf(UpstreamProtocolError);
    expect(err.message).toBe("upstream closed the connection mid-body");
  });

  test("a chunked body missing its final CRLF is not complete", async () => {
    const srv = rawServer((c) => {
      c.socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n");
      void writePaced(c.socket, ["x-trailer: 1\r\n"]).then(() => c.socket.end());
    });
    const p = pool(srv.port);
    const res = await p.request("GET", "/x", {}, T);
    expect(await rejection(res.text())).toBeInstanceOf(UpstreamProtocolError);
  });

  test("close before any response is an error", async () => {
    const srv = rawServer((c) => c.socket.end());
    const p = pool(srv.port);
    expect(await rejection(p.request("GET", "/x", {}, T))).toBeInstanceOf(UpstreamProtocolError);
  });

  const bad: Array<[string, string]> = [
    ["malformed status line", "HTTP/1.1 OK\r\ncontent-length: 0\r\n\r\n"],
    ["not HTTP", "SSH-2.0-OpenSSH\r\n\r\n"],
    ["HTTP/2 status line", "HTTP/2 200 OK\r\ncontent-length: 0\r\n\r\n"],
    ["bad Content-Length", "HTTP/1.1 200 OK\r\ncontent-length: 12abc\r\n\r\n"],
    ["negative Content-Length", "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n"],
    ["conflicting Content-Lengths", "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd"],
    ["conflicting Content-Length list", "HTTP/1.1 200 OK\r\ncontent-length: 3, 4\r\n\r\nabcd"],
    ["obs-fold", "HTTP/1.1 200 OK\r\nx-a: 1\r\n  continued\r\ncontent-length: 0\r\n\r\n"],
    ["header without colon", "HTTP/1.1 200 OK\r\nno colon here\r\ncontent-length: 0\r\n\r\n"],
    ["space before colon", "HTTP/1.1 200 OK\r\ncontent-length : 0\r\n\r\n"],
    ["bare LF inside the head", "HTTP/1.1 200 OK\r\nx-a: 1\nx-b: 2\r\ncontent-length: 0\r\n\r\n"],
    ["status 600", "HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n"],
  ];
  for (const [name, wire] of bad) {
    test(`${name} → UpstreamProtocolError and the socket is closed`, async () => {
      const srv = rawServer((c) => c.socket.write(wire));
      const p = pool(srv.port);
      const err = await rejection(p.request("GET", "/x", {}, T));
      expect(err).toBeInstanceOf(UpstreamProtocolError);
      expect(p.idleCount).toBe(0);
      await until(() => srv.openCount() === 0, "server to see the connection closed");
    });
  }

  test("equal duplicate Content-Lengths are accepted", async () => {
    const srv = rawServer((c) => c.socket.write("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 3, 3\r\n\r\nabc"));
    const p = pool(srv.port);
    expect(await (await p.request("GET", "/x", {}, T)).text()).toBe("abc");
  });

  test("a response head larger than 64 KiB is rejected", async () => {
    const srv = rawServer((c) => {
      c.socket.write("HTTP/1.1 200 OK\r\n");
      for (let i = 0; i < 100; i++) c.socket.write(`x-filler-${i}: ${"a".repeat(1000)}\r\n`);
      c.socket.write("content-length: 0\r\n\r\n");
    });
    const p = pool(srv.port);
    const err = await rejection(p.request("GET", "/x", {}, T));
    expect(err).toBeInstanceOf(UpstreamProtocolError);
    expect(err.message).toContain("too large");
  });

  test("a large head under 64 KiB arriving in pieces is fine", async () => {
    let head = "HTTP/1.1 200 OK\r\n";
    for (let i = 0; i < 50; i++) head += `x-filler-${i}: ${"b".repeat(1000)}\r\n`;
    const wire = head + "content-length: 2\r\n\r\nok";
    const pieces: string[] = [];
    for (let i = 0; i < wire.length; i += 4093) pieces.push(wire.slice(i, i + 4093));
    const srv = rawServer((c) => void writePaced(c.socket, pieces));
    const p = pool(srv.port);
    const res = await p.request("GET", "/x", {}, T);
    expect(res.headers.get("x-filler-49")).toBe("b".repeat(1000));
    expect(await res.text()).toBe("ok");
  });
});

describe("Http1Pool: timeouts and aborts", () => {
  test("no response head within timeoutMs → UpstreamTimeoutError, socket destroyed", async () => {
    const srv = rawServer((c) => c.socket.write("HTTP/1.1 200 OK\r\n")); // never finishes the head
    const p = pool(srv.port);
    const t0 = performance.now();
    const err = await rejection(p.request("GET", "/x", {}, { timeoutMs: 200 }));
    expect(err).toBeInstanceOf(UpstreamTimeoutError);
    expect(err.name).toBe("UpstreamTimeoutError");
    expect(err.message).toBe("upstream did not send response headers in time");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
    await until(() => srv.openCount() === 0, "server to see the connection closed");
  });

  test("a body stalled mid-way errors the stream with UpstreamTimeoutError", async () => {
    const srv = rawServer((c) => c.socket.write("HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + "z".repeat(1000)));
    const p = pool(srv.port, { bufferBodyUpTo: 10 });
    const res = await p.request("GET", "/x", {}, { timeoutMs: 200 });
    const err = await rejection(res.arrayBuffer());
    expect(err).toBeInstanceOf(UpstreamTimeoutError);
    expect(err.message).toBe("upstream stalled mid-body");
    await until(() => srv.openCount() === 0, "server to see the connection closed");
  });

  test("a buffered body that stalls rejects with UpstreamTimeoutError", async () => {
    const srv = rawServer((c) => c.socket.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc"));
    const p = pool(srv.port);
    const err = await rejection(p.request("GET", "/x", {}, { timeoutMs: 200 }));
    expect(err).toBeInstanceOf(UpstreamTimeoutError);
    expect(err.message).toBe("upstream stalled mid-body");
  });

  test("a slow but progressing body is not a stall", async () => {
    const pieces = Array.from({ length: 30 }, (_, i) => `${i % 10}`.repeat(10));
    const srv = rawServer(async (c) => {
      c.socket.write("HTTP/1.1 200 OK\r\ncontent-length: 300\r\n\r\n");
      for (const piece of pieces) {
        await Bun.sleep(15);
        c.socket.write(piece);
      }
    });
    const p = pool(srv.port);
    const res = await p.request("GET", "/x", {}, { timeoutMs: 300 }); // total ~450 ms > timeoutMs
    expect(await res.text()).toBe(pieces.join(""));
  });

  test("abort via AbortController rejects with its reason and closes the connection", async () => {
    const srv = rawServer(() => {}); // never answers
    const p = pool(srv.port);
    const ac = new AbortController();
    const pending = p.request("GET", "/x", {}, { timeoutMs: 10_000, signal: ac.signal });
    await until(() => srv.conns.length === 1 && srv.conns[0].requests.length === 1, "request to reach the server");
    const reason = new Error("client went away");
    ac.abort(reason);
    expect(await rejection(pending)).toBe(reason);
    await until(() => srv.openCount() === 0, "server to see the connection closed");
  });

  test("abort while streaming the body errors the stream with the reason", async () => {
    const srv = rawServer((c) => c.socket.write("HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\nabc"));
    const p = pool(srv.port, { bufferBodyUpTo: 10 });
    const ac = new AbortController();
    const res = await p.request("GET", "/x", {}, { timeoutMs: 10_000, signal: ac.signal });
    const reader = res.body!.getReader();
    expect(Buffer.from((await reader.read()).value!).toString()).toBe("abc");
    ac.abort(new Error("stop"));
    const err = await rejection(reader.read());
    expect(err.message).toBe("stop");
    await until(() => srv.openCount() === 0, "server to see the connection closed");
  });

  test("an already-aborted signal rejects at once without connecting", async () => {
    const srv = rawServer(() => {});
    const p = pool(srv.port);
    const ac = new AbortController();
    ac.abort(new Error("already"));
    expect((await rejection(p.request("GET", "/x", {}, { timeoutMs: 1000, signal: ac.signal }))).message).toBe("already");
    await Bun.sleep(20);
    expect(srv.conns.length).toBe(0);
  });

  test("cancelling the body destroys the socket", async () => {
    const srv = rawServer((c) => c.socket.write("HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\nabc"));
    const p = pool(srv.port, { bufferBodyUpTo: 10 });
    const res = await p.request("GET", "/x", {}, T);
    await res.body!.cancel();
    await until(() => srv.openCount() === 0, "server to see the connection closed");
    expect(p.idleCount).toBe(0);
  });
});

describe("Http1Pool: connections", () => {
  test("a stale keep-alive socket (server closed it while idle) is replaced transparently", async () => {
    const srv = rawServer((c) => {
      c.socket.write(ok(`conn${c.id}`));
      c.socket.end(); // closes the idle socket right after the response (without connection: close)
    });
    const p = pool(srv.port);
    expect(await (await p.request("GET", "/1", {}, T)).text()).toBe("conn0");
    await until(() => srv.conns[0].closed, "server to close");
    expect(await (await p.request("GET", "/2", {}, T)).text()).toBe("conn1");
    expect(srv.conns.length).toBe(2);
  });

  test("a reused socket that closes before any response byte is retried once on a fresh connection", async () => {
    const srv = rawServer((c) => {
      if (c.id === 0 && c.requests.length === 2) {
        c.socket.end(); // the race: server dropped the keep-alive socket just as the request arrived
        return;
      }
      c.socket.write(ok(`conn${c.id}`));
    });
    const p = pool(srv.port);
    expect(await (await p.request("GET", "/1", {}, T)).text()).toBe("conn0");
    expect(p.idleCount).toBe(1);
    expect(await (await p.request("GET", "/2", {}, T)).text()).toBe("conn1");
    expect(srv.conns.length).toBe(2);
    expect(srv.conns[1].requests[0]).toStartWith("GET /2 ");
  });

  test("a fresh connection that closes before any byte is not retried", async () => {
    const srv = rawServer((c) => c.socket.end());
    const p = pool(srv.port);
    expect(await rejection(p.request("GET", "/x", {}, T))).toBeInstanceOf(UpstreamProtocolError);
    expect(srv.conns.length).toBe(1);
  });

  test("connection refused → 'unreachable' error without request headers", async () => {
    const srv = rawServer(() => {});
    const port = srv.port;
    srv.stop();
    const p = pool(port);
    const err = await rejection(p.request("GET", "/x", { authorization: "AWS4-HMAC-SHA256 SECRET-SIGNATURE" }, T));
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toContain("unreachable");
    expect(err.message).not.toContain("SECRET");
  });

  test("CR/LF/NUL in a header name or value is rejected before anything is sent", async () => {
    const srv = rawServer((c) => c.socket.write(ok("")));
    const p = pool(srv.port);
    for (const headers of <Record<string, string>[]>[{ "x-a": "v\r\nx-injected: 1" }, { "x-a": "v\nx" }, { "x-a": "v\0" }, { "x-a\r\nx-b": "v" }, { "x a": "v" }, { "": "v" }]) {
      const err = await rejection(p.request("GET", "/x", headers, T));
      expect(err).toBeInstanceOf(Error);
      expect(err.message).not.toContain("injected");
    }
    expect(await rejection(p.request("GET", "/x y", {}, T))).toBeInstanceOf(Error);
    expect(await rejection(p.request("GET", "x", {}, T))).toBeInstanceOf(Error);
    expect(await rejection(p.request("POST" as "GET", "/x", {}, T))).toBeInstanceOf(Error);
    await Bun.sleep(20);
    expect(srv.conns.length).toBe(0);
  });

  test("the caller cannot override Host or add body framing headers", async () => {
    const srv = rawServer((c) => c.socket.write(ok("")));
    const p = pool(srv.port, { hostHeader: "real.example" });
    await p.request("GET", "/x", { host: "evil.example", Host: "evil2.example", "content-length": "5", "transfer-encoding": "chunked", range: "bytes=0-1" }, T);
    expect(srv.conns[0].requests[0]).toBe("GET /x HTTP/1.1\r\nhost: real.example\r\nrange: bytes=0-1\r\n\r\n");
  });

  test("idle sockets are LIFO, capped by maxIdle, and expire after idleTimeoutMs", async () => {
    const srv = rawServer((c) => c.socket.write(ok(`c${c.id}`)));
    const p = pool(srv.port, { maxIdle: 2, idleTimeoutMs: 150 });
    const texts = await Promise.all([1, 2, 3].map(() => p.request("GET", "/x", {}, T).then((r) => r.text())));
    expect(texts.sort()).toEqual(["c0", "c1", "c2"]);
    expect(p.idleCount).toBe(2);
    await until(() => srv.openCount() === 2, "the third socket to be closed");
    await until(() => p.idleCount === 0 && srv.openCount() === 0, "idle sockets to expire");
  });

  test("close() closes idle and in-use sockets, rejects in-flight requests, and stops the timers", async () => {
    const srv = rawServer((c, head) => {
      if (head.startsWith("GET /hang")) return;
      c.socket.write(ok("x"));
    });
    const p = new Http1Pool({ host: "127.0.0.1", port: srv.port, hostHeader: "h", sweepIntervalMs: 20 });
    await Promise.all([1, 2, 3].map(() => p.request("GET", "/x", {}, T).then((r) => r.text())));
    expect(p.idleCount).toBe(3);
    const hanging = p.request("GET", "/hang", {}, { timeoutMs: 10_000 });
    await until(() => srv.conns.some((c) => c.requests.some((r) => r.startsWith("GET /hang"))), "hanging request to arrive");
    p.close();
    expect(await rejection(hanging)).toBeInstanceOf(Error);
    expect(p.idleCount).toBe(0);
    await until(() => srv.openCount() === 0, "server to see every connection closed");
    expect(await rejection(p.request("GET", "/x", {}, T))).toBeInstanceOf(Error);
  });

  test("sharedPool shares by endpoint, Host and buffering limit; closeSharedPools closes them", async () => {
    const srv = rawServer((c) => c.socket.write(ok("s")));
    const a = sharedPool({ host: "127.0.0.1", port: srv.port, hostHeader: "h1" });
    const b = sharedPool({ host: "127.0.0.1", port: srv.port, hostHeader: "h1", maxIdle: 3 });
    const c = sharedPool({ host: "127.0.0.1", port: srv.port, hostHeader: "h2" });
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    // A different body-buffering limit (a reloaded buffer_threshold_bytes) gets its own pool.
    const d = sharedPool({ host: "127.0.0.1", port: srv.port, hostHeader: "h1", bufferBodyUpTo: 4096 });
    expect(d).not.toBe(a);
    expect(sharedPool({ host: "127.0.0.1", port: srv.port, hostHeader: "h1", bufferBodyUpTo: 4096 })).toBe(d);
    await (await a.request("GET", "/x", {}, T)).text();
    await (await c.request("GET", "/x", {}, T)).text();
    closeSharedPools();
    await until(() => srv.openCount() === 0, "shared pool sockets to close");
    expect(sharedPool({ host: "127.0.0.1", port: srv.port, hostHeader: "h1" })).not.toBe(a);
  });

  test("the process can exit with a pool (timers unref'd, idle sockets unref'd) and after close()", async () => {
    const srv = rawServer((c) => c.socket.write(ok("bye")));
    const script = (closeIt: boolean) => `
      import { Http1Pool } from ${JSON.stringify(new URL("../../src/s3/http1.ts", import.meta.url).pathname)};
      const p = new Http1Pool({ host: "127.0.0.1", port: ${srv.port}, hostHeader: "h", sweepIntervalMs: 10 });
      const r = await p.request("GET", "/x", {}, { timeoutMs: 2000 });
      console.log(await r.text(), p.idleCount);
      ${closeIt ? "p.close();" : ""}
    `;
    for (const closeIt of [true, false]) {
      const child = Bun.spawn([process.execPath, "-e", script(closeIt)], { stdout: "pipe", stderr: "pipe" });
      const timer = setTimeout(() => child.kill(), 10_000);
      const code = await child.exited;
      clearTimeout(timer);
      expect(await new Response(child.stdout).text()).toBe("bye 1\n");
      expect(code).toBe(0);
    }
    await until(() => srv.openCount() === 0, "child sockets to close");
  });
});
