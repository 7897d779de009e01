/** Http1Pool: Connections: stale keep-alive sockets, refusal, header injection, the idle stack, close and exit. */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { Http1Pool, UpstreamProtocolError } from "../../../src/s3/http1/index.ts";
import { waitFor } from "../../helpers/wait.ts";
import { cleanup, T, ok, pool, rawServer, rejection } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

afterEach(cleanup);

describe("Http1Pool: connections", () => {
  test("a stale keep-alive socket (server closed it while idle) is replaced transparently", async () => {
    const srv = rawServer((c) => {
      c.socket.write(ok(`conn${c.id}`));
      c.socket.end(); // closes the idle socket right after the response (without connection: close)
    });
    const p = pool(srv.port);
    expect(await (await p.request("GET", "/1", {}, T)).text()).toBe("conn0");
    await waitFor(() => srv.conns[0].closed, { message: "server to close" });
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
    expect(await rejection(p.request("PATCH" as "GET", "/x", {}, T))).toBeInstanceOf(Error);
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
    await waitFor(() => srv.openCount() === 2, { message: "the third socket to be closed" });
    await waitFor(() => p.idleCount === 0 && srv.openCount() === 0, { message: "idle sockets to expire" });
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
    await waitFor(() => srv.conns.some((c) => c.requests.some((r) => r.startsWith("GET /hang"))), { message: "hanging request to arrive" });
    p.close();
    expect(await rejection(hanging)).toBeInstanceOf(Error);
    expect(p.idleCount).toBe(0);
    await waitFor(() => srv.openCount() === 0, { message: "server to see every connection closed" });
    expect(await rejection(p.request("GET", "/x", {}, T))).toBeInstanceOf(Error);
  });

  test("the process can exit with a pool (timers unref'd, idle sockets unref'd) and after close()", async () => {
    const srv = rawServer((c) => c.socket.write(ok("bye")));
    const script = (closeIt: boolean) => `
      import { Http1Pool } from ${JSON.stringify(new URL("../../../src/s3/http1/index.ts", import.meta.url).pathname)};
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
    await waitFor(() => srv.openCount() === 0, { message: "child sockets to close" });
  });
});
