/** Http1Pool: Truncated and malformed responses: never a short body that looks complete. */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { isOwnedBytes } from "../../../src/http/owned-response.ts";
import { UpstreamProtocolError } from "../../../src/s3/http1/index.ts";
import { waitFor } from "../../helpers/wait.ts";
import { cleanup, T, ok, pool, rawServer, rejection, writePaced } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

afterEach(cleanup);

/** An object GET's options: a 200/206 body of unknown length is held up to bufferBodyUpTo. */
const HOLD = { ...T, holdUnknownLength: true };

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

  test("premature close of a chunked body errors the stream (handed over: past bufferBodyUpTo)", async () => {
    const srv = rawServer((c) => {
      c.socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nabc");
      void writePaced(c.socket, ["def"]).then(() => c.socket.end());
    });
    const p = pool(srv.port, { bufferBodyUpTo: 4 });
    const res = await p.request("GET", "/x", {}, T);
    const err = await rejection(res.text());
    expect(err).toBeInstanceOf(UpstreamProtocolError);
    expect(err.message).toBe("upstream closed the connection mid-body");
  });

  test("a chunked body missing its final CRLF is not complete (held: the request rejects; handed over: the stream errors)", async () => {
    const srv = rawServer((c) => {
      c.socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n");
      void writePaced(c.socket, ["x-trailer: 1\r\n"]).then(() => c.socket.end());
    });
    expect(await rejection(pool(srv.port).request("GET", "/x", {}, HOLD))).toBeInstanceOf(UpstreamProtocolError);
    const res = await pool(srv.port, { bufferBodyUpTo: 4 }).request("GET", "/x", {}, HOLD);
    expect(await rejection(res.text())).toBeInstanceOf(UpstreamProtocolError);
  });

  test("a body of unknown length (chunked, or until close) cut within bufferBodyUpTo rejects the request: nothing was handed over, the attempt can be retried or failed over", async () => {
    const chunked = rawServer((c) => {
      c.socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n");
      void writePaced(c.socket, ["10\r\nabc"]).then(() => c.socket.end());
    });
    const e1 = await rejection(pool(chunked.port).request("GET", "/x", {}, HOLD));
    expect(e1).toBeInstanceOf(UpstreamProtocolError);
    expect((e1 as UpstreamProtocolError).message).toBe("upstream closed the connection mid-body");
    // until close: only a reset (not a clean close) is a cut
    const reset = rawServer((c) => {
      c.socket.write("HTTP/1.1 200 OK\r\n\r\npartial");
      void writePaced(c.socket, ["more"]).then(() => c.socket.terminate());
    });
    expect(await rejection(pool(reset.port).request("GET", "/x", {}, HOLD))).toBeInstanceOf(UpstreamProtocolError);
  });

  test("a body of unknown length that ends within bufferBodyUpTo is answered as bytes; a longer one streams whole and in order, the held part first", async () => {
    const small = rawServer((c) => {
      c.socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n");
      void writePaced(c.socket, ["6\r\n world\r\n", "0\r\n\r\n"]);
    });
    const a = await pool(small.port).request("GET", "/x", {}, HOLD);
    expect(isOwnedBytes(a)).toBe(true);
    expect(await a.text()).toBe("hello world");
    const parts = Array.from({ length: 40 }, (_, i) => String(i).padStart(3, "0").repeat(10));
    const big = rawServer((c) => {
      c.socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
      void writePaced(c.socket, [...parts.map((p) => `${p.length.toString(16)}\r\n${p}\r\n`), "0\r\n\r\n"]);
    });
    const b = await pool(big.port, { bufferBodyUpTo: 100 }).request("GET", "/x", {}, HOLD);
    expect(isOwnedBytes(b)).toBe(false);
    expect(await b.text()).toBe(parts.join(""));
    const closeDelimited = rawServer((c) => {
      c.socket.write("HTTP/1.1 200 OK\r\n\r\nuntil ");
      void writePaced(c.socket, ["close"]).then(() => c.socket.end());
    });
    expect(await (await pool(closeDelimited.port).request("GET", "/x", {}, HOLD)).text()).toBe("until close");
  });

  test("a chunked body malformed in the bytes that came with the head rejects the request: nothing was handed over", async () => {
    for (const body of ["ZZ\r\nhello", "FFFFFFFFFFFFFFFFF\r\nhello", "5\r\nhelloXX"]) {
      const srv = rawServer((c) => {
        c.socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + body);
      });
      const p = pool(srv.port);
      const err = await rejection(p.request("GET", "/x", {}, HOLD));
      expect(err).toBeInstanceOf(UpstreamProtocolError);
    }
  });

  test("a whole chunked body in the head's read is served, and one malformed later still errors the stream", async () => {
    const whole = rawServer((c) => c.socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
    expect(await (await pool(whole.port).request("GET", "/x", {}, HOLD)).text()).toBe("hello");
    let sock: { write(s: string): unknown } | undefined;
    const later = rawServer((c) => {
      sock = c.socket;
      c.socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n");
    });
    const res = await pool(later.port, { bufferBodyUpTo: 4 }).request("GET", "/x", {}, HOLD);
    expect(res.status).toBe(200);
    sock!.write("ZZ\r\n"); // (after the answer was handed over: a separate read)
    expect(await rejection(res.text())).toBeInstanceOf(UpstreamProtocolError);
  });

  test("without holdUnknownLength (a Complete's long-held answer, an error), a body of unknown length is handed over at once and streamed", async () => {
    let sock: { write(s: string): unknown; end(): unknown } | undefined;
    const srv = rawServer((c) => {
      sock = c.socket;
      c.socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\n \r\n");
    });
    const res = await pool(srv.port).request("POST", "/x", {}, T); // (resolves before the body ends)
    sock!.write("5\r\nhello\r\n0\r\n\r\n");
    expect(await res.text()).toBe(" hello");
    const notOk = rawServer((c) => c.socket.write("HTTP/1.1 503 Slow Down\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n"));
    expect((await pool(notOk.port).request("GET", "/x", {}, HOLD)).status).toBe(503);
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
      await waitFor(() => srv.openCount() === 0, { message: "server to see the connection closed" });
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
