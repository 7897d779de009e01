/**
 * A plain-front PUT goes upstream as the listener's own body stream (framed: fetch pipes it
 * natively, src/s3/send.ts fetchFramed), whose only clock is fetch's whole-request budget. With
 * that budget at s3.timeout plus the body's time at 16 KiB/s, a client that sent half of a small
 * body and stopped was answered 504 "the upstream did not answer in time" (Bun's 4 s timer ticks
 * later), and three such clients opened the bucket's circuit breaker: every other client's reads
 * got 503 CircuitOpen. The budget is never below the listener's idle timeout now, so a stalled
 * client is the listener's to cut (its request ends as the client's, counted by no breaker).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import type { Socket } from "bun";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startWriteEnv, WRITER, type WriteEnv } from "./plain-write-env.ts";

setDefaultTimeout(60_000);

let s3: S3Fixture;
let env: WriteEnv;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }], credentials: [WRITER] });
  await s3.put("rw", "hello.txt", "hello");
  const buckets = (ep: string) =>
    `  - name: open\n    path_prefix: /open\n    s3: { bucket: rw, endpoint: "${ep}", access_key: "${WRITER.accessKeyId}", secret_key: "${WRITER.secretAccessKey}", timeout: 1, retry: { max_attempts: 1 }, circuit_breaker: { failure_threshold: 2, success_threshold: 1, timeout_seconds: 60 } }\n    access: read-write\n    auth: { enabled: false, anonymous_writes: true }\n`;
  env = await startWriteEnv({ buckets }, s3);
});
afterAll(async () => {
  await env?.stop();
  await s3?.stop();
});

test("clients that stop sending a small PUT body half-way get no 504 and do not open the bucket's circuit breaker; reads go on", async () => {
  const answers: string[] = [];
  const sockets: Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const sock = await Bun.connect({
      hostname: "127.0.0.1",
      port: env.port,
      socket: {
        data(_s, d) {
          answers.push(Buffer.from(d).toString("latin1").split("\r\n")[0]!);
        },
        close() {},
        error() {},
      },
    });
    sock.write(`PUT /open/stall-${i}.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n${"x".repeat(50)}`);
    sockets.push(sock);
  }
  // Before: the budget (1 s) fired on Bun's next 4 s tick, and every client had its 504 within ~9 s.
  // An absence is what is shown, so a window: 14 s, past the old budget's latest tick with a margin.
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 14_000);
    const poll = setInterval(() => {
      if (answers.length > 0) {
        clearTimeout(t);
        clearInterval(poll);
        resolve();
      }
    }, 50);
    setTimeout(() => clearInterval(poll), 14_100);
  });
  expect(answers).toEqual([]);
  for (const s of sockets) s.end();
  const read = await fetch(env.url("/open/hello.txt"));
  expect([read.status, await read.text()]).toEqual([200, "hello"]);
  expect(await s3.exists("rw", "stall-0.bin")).toBe(false);
});
