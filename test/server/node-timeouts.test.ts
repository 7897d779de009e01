/**
 * The node engine's timeouts (configureNodeServer): no limit on a whole request (node:http's
 * 300 s requestTimeout cut every longer upload with a bare 408), and a socket idle for the
 * listener's idle timeout is closed (a client that stopped sending mid-body held its upload slot
 * and upstream connection until that 408).
 */
import { expect, test } from "bun:test";
import http from "node:http";
import { connect, type AddressInfo } from "node:net";
import { configureNodeServer, NODE_IDLE_MS } from "../../src/server.ts";
import { waitFor } from "../helpers/wait.ts";

test("requestTimeout off; the idle timeout is Bun.serve's (60 s)", () => {
  const server = http.createServer();
  configureNodeServer(server);
  expect([server.requestTimeout, server.timeout, NODE_IDLE_MS]).toEqual([0, 60_000, 60_000]);
});

test("a client that stops sending mid-body is closed after the idle timeout; one that keeps sending slowly, for longer, is not", async () => {
  let answered = 0;
  const server = http.createServer((req, res) => {
    req.on("data", () => {});
    req.on("end", () => {
      answered++;
      res.end("stored");
    });
  });
  configureNodeServer(server, 300);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  try {
    let closed = false;
    const stalled = connect(port, "127.0.0.1", () => stalled.write("PUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf"));
    stalled.on("close", () => (closed = true));
    stalled.on("error", () => {});
    await waitFor(() => closed, { timeoutMs: 5_000, message: "the stalled upload's connection to be closed" });
    expect(answered).toBe(0);

    let reply = "";
    const steady = connect(port, "127.0.0.1", () => steady.write("PUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"));
    steady.on("data", (d) => (reply += String(d)));
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 100)); // a slow client: one byte every 100 ms, 1 s in all (> the 300 ms idle timeout)
      steady.write("x");
    }
    await waitFor(() => reply.includes("stored"), { timeoutMs: 5_000, message: "the slow upload's answer" });
    steady.destroy();
  } finally {
    server.close();
  }
});
