/**
 * Clients that never read their answers hold request slots (a slot is held until the body is
 * sent). One address may hold at most server.max_concurrent_requests_per_ip of them once half the
 * cap is in use (default: a quarter of the cap): before, 100 such sockets from one address took
 * every slot of the default config for a minute and every other client got 503.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { request } from "node:http";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

setDefaultTimeout(60_000);

let s3: S3Fixture;
let px: ProxyProcess;
const held: Socket[] = [];

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "pub", public: true }], credentials: [] });
  await s3.put("pub", "big.bin", new Uint8Array(24 * 1024 * 1024).fill(7));
  await s3.put("pub", "small.txt", "small");
  px = await startProxy(`server: { address: 0.0.0.0, port: 0, max_concurrent_requests: 40 }\nbuckets:\n  - name: pub\n    path_prefix: /pub\n    s3: { bucket: pub, endpoint: "${s3.endpoint}" }\n`);
});
afterAll(async () => {
  for (const s of held) s.destroy();
  await px?.stop();
  await s3?.stop();
});

/** A GET from `localAddress`: its status (0 when it failed). */
function get(path: string, localAddress: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port: px.port, path, localAddress, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", () => resolve(0));
    req.end();
  });
}

/** Opens a connection from 127.0.0.1 that asks for the large object and never reads; resolves with the status line once it has one. */
function hold(): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port: px.port, localAddress: "127.0.0.1" });
    held.push(s);
    let first = "";
    s.once("data", (d) => {
      first = d.toString("latin1").split("\r\n")[0]!;
      s.pause(); // never read the rest
      resolve(first);
    });
    s.on("error", () => resolve(first || "error"));
    s.write("GET /pub/big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  });
}

test("one address of clients that never read holds at most its share of the slots: another address is still served", async () => {
  const lines: string[] = [];
  for (let i = 0; i < 40; i++) lines.push(await hold());
  // half the cap (20) uncounted, then 10 per address (a quarter of 40): the rest refused at once
  expect(lines.filter((l) => l.includes(" 200 ")).length).toBe(30);
  expect(lines.filter((l) => l.includes(" 503 ")).length).toBe(10);
  expect(await get("/pub/small.txt", "127.0.0.2")).toBe(200);
});
