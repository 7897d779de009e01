/** Http1Pool: Backpressure: a reader that does not read holds the upstream, memory stays bounded. */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { waitFor } from "../../helpers/wait.ts";
import { cleanup, pool, rawServer, writeAll } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

afterEach(cleanup);

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
    await waitFor(
      () => {
        if (written === last) stable++;
        else stable = 0;
        last = written;
        return stable >= 20;
      },
      { message: "server writes to stop progressing" },
    );
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
    const payload = Buffer.alloc(size, 1); // allocated before the clock starts
    const srv = rawServer((c) => {
      c.socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`);
      void writeAll(c.socket, payload);
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
