/**
 * The node engine runs a connection's pipelined requests one after another (src/server.ts inTurn).
 * node:http under Bun goes on parsing every pipelined request however many wait, and a waiting
 * request writes nothing that pushes back on its client: one connection that wrote 100,000
 * pipelined GETs and read no answer took the process to 823 MB (a review, 2026-12-04). Past
 * MAX_PIPELINED_WAITING waiting requests the connection is closed; nothing is started for the
 * requests that were still waiting. A client that reads its answers is served as before.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { connect } from "node:net";
import { MAX_PIPELINED_WAITING } from "../../src/server.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";
import { waitFor } from "../helpers/wait.ts";

setDefaultTimeout(60_000);

const SIZE = 256 * 1024;
let s3: S3Fixture;
let px: InProcessProxy;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "pub", public: true }], credentials: [] });
  await s3.put("pub", "big.bin", new Uint8Array(SIZE).fill(0x61));
  px = await startInProcess(`server: { address: 127.0.0.1, port: 0, engine: node }\nbuckets:\n` + bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint }));
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

const upstreamGets = () => s3.requests.filter((r) => !r.admin && r.method === "GET" && r.pathname === "/pub/big.bin").length;

test("a connection that pipelines thousands of GETs and reads nothing is closed; the waiting requests are never started", async () => {
  s3.requests.length = 0;
  const sock = connect(px.port, "127.0.0.1");
  let closed = false;
  sock.on("close", () => (closed = true));
  sock.on("error", () => {});
  await new Promise<void>((resolve) => sock.once("connect", () => resolve()));
  sock.pause(); // reads nothing: every answer backs up behind the first ones
  sock.write("GET /pub/big.bin HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5_000));
  await waitFor(() => closed, { timeoutMs: 30_000, message: "the proxy closing the flooding connection" });
  // The answers that fitted in the socket buffers, the one running, none of the waiting ones.
  expect(upstreamGets()).toBeLessThan(200);
  sock.destroy();
});

test("a client that pipelines up to the limit in one write and reads its answers gets them all, in order", async () => {
  // one served at once, MAX_PIPELINED_WAITING waiting behind it
  const n = MAX_PIPELINED_WAITING + 1;
  const raw = await new Promise<string>((resolve, reject) => {
    const sock = connect(px.port, "127.0.0.1", () => {
      const one = (i: number, last: boolean) => `GET /pub/big.bin?i=${i} HTTP/1.1\r\nHost: x\r\nRange: bytes=${i}-${i}\r\n${last ? "Connection: close\r\n" : ""}\r\n`;
      sock.write(Array.from({ length: n }, (_, i) => one(i, i === n - 1)).join(""));
    });
    let buf = "";
    sock.on("data", (d) => (buf += d.toString("latin1")));
    sock.on("error", reject);
    sock.on("close", () => resolve(buf));
  });
  const ranges = [...raw.matchAll(/content-range: bytes (\d+)-\d+\/\d+/gi)].map((m) => Number(m[1]));
  expect(ranges).toEqual(Array.from({ length: n }, (_, i) => i));
});
