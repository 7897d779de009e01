/**
 * The node engine's timeouts: no limit on a whole request (node:http's 300 s requestTimeout cut
 * every longer upload with a bare 408), a body that stops arriving closes its connection after the
 * idle timeout (a client that stopped sending mid-body held its upload slot and upstream
 * connection until that 408), and an answer that takes long once the body is in (a slow
 * CompleteMultipartUpload) is not cut (a listener-wide socket timeout cut it at 60 s).
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import http from "node:http";
import { connect, type AddressInfo } from "node:net";
import { configureNodeServer, NODE_IDLE_MS, watchedNodeBody } from "../../src/server.ts";
import { waitFor } from "../helpers/wait.ts";

setDefaultTimeout(30_000);

test("requestTimeout off; the body idle timeout is Bun.serve's (60 s)", () => {
  const server = http.createServer();
  configureNodeServer(server);
  expect([server.requestTimeout, NODE_IDLE_MS]).toEqual([0, 60_000]);
});

test("a body that stops arriving is closed after the idle period, and so is one that trickles below the listener's rate; one that keeps coming fast enough is not; an answer slower than the period after a complete body is not cut", async () => {
  let release!: () => void;
  const upstream = new Promise<void>((r) => (release = r));
  const server = http.createServer(async (req, res) => {
    // (scaled down: a 600 ms period that needs 3 bytes, for Bun.serve's 60 s and 960 KiB)
    const body = await new Response(watchedNodeBody(req, 600, 3)).text().catch(() => "");
    if (req.url === "/slow-answer") await upstream; // an upstream taking longer than the idle timeout
    res.end(`stored ${body.length}`);
  });
  configureNodeServer(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  const replies = new Map<string, string>();
  const open = (path: string, head: string) => {
    replies.set(path, "");
    const c = connect(port, "127.0.0.1", () => c.write(`PUT ${path} HTTP/1.1\r\nHost: x\r\n${head}`));
    c.on("data", (d) => replies.set(path, replies.get(path) + String(d)));
    c.on("close", () => replies.set(path, replies.get(path) + "<closed>"));
    c.on("error", () => {});
    return c;
  };
  try {
    open("/stalled", "Content-Length: 100\r\n\r\nhalf");
    const slowAnswer = open("/slow-answer", "Content-Length: 4\r\n\r\nfull");
    const steady = open("/steady", "Content-Length: 16\r\n\r\n");
    // one byte every 400 ms: at most 2 in any 600 ms, never silent for a whole period (a socket
    // timeout, reset by every byte, kept such a client, and its upload slot, for ever)
    const trickle = open("/trickle", "Content-Length: 100\r\n\r\n");
    const trickling = setInterval(() => trickle.write("x"), 400);
    for (let i = 0; i < 16; i++) {
      await new Promise((r) => setTimeout(r, 100)); // a slow client still fast enough: one byte every 100 ms, 1.6 s in all (> the 600 ms period)
      steady.write("x");
    }
    await waitFor(() => replies.get("/stalled") === "<closed>", { timeoutMs: 5_000, message: "the stalled upload's connection to be closed, with no answer" });
    await waitFor(() => replies.get("/trickle") === "<closed>", { timeoutMs: 5_000, message: "the trickling upload's connection to be closed, with no answer" });
    clearInterval(trickling);
    await waitFor(() => replies.get("/steady")!.includes("stored 16"), { timeoutMs: 5_000, message: "the slow upload's answer" });
    // the complete body's answer, held past three idle timeouts, still comes
    expect(replies.get("/slow-answer")).toBe("");
    release();
    await waitFor(() => replies.get("/slow-answer")!.includes("stored 4"), { timeoutMs: 5_000, message: "the slow answer" });
    slowAnswer.destroy();
    steady.destroy();
  } finally {
    server.close();
  }
});
