/**
 * A refused upload (403 before its body is read) whose request says `Connection: close`, its
 * chunked body sent right after the head (@aws-sdk/client-s3's 2025 defaults: a stream body sent
 * chunked, `Expect: 100-continue`, a fresh client's `Connection: close`). Both engines close the
 * connection after such an answer; closed with the body still arriving, the socket went out as a
 * TCP reset: the SDK got `write EPIPE` and no status 1-4 times in 12 on the bun engine, and a raw
 * client saw EPIPE before it finished writing (always, both engines). The rest of the body is now
 * read and dropped (within bounds) before the closing answer.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { refusedDrainLimits } from "../../src/server/refused-body.ts";
import { startUploadEnv, startUploadFixture, uploadYaml } from "./s3-front-upload-helpers.ts";
import { startFrontsOn } from "./s3-front-helpers.ts";
import { waitFor } from "../helpers/wait.ts";

setDefaultTimeout(30_000);

/** One PUT with a `size`-byte chunked body written at once after the head: what the client saw. */
function refusedPut(port: number, path: string, size: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect(port, "127.0.0.1");
    const chunk = Buffer.alloc(64 * 1024, 1);
    const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]);
    let written = 0;
    let wrote = false;
    let error = "";
    let answer = "";
    const status = () => /HTTP\/1\.1 ([2-5]\d\d)/.exec(answer)?.[1] ?? "none";
    const pump = () => {
      while (written < size && !sock.destroyed) {
        written += chunk.length;
        if (!sock.write(frame)) return void sock.once("drain", pump);
      }
      if (!sock.destroyed)
        sock.write("0\r\n\r\n", (e) => {
          wrote = e == null;
        });
    };
    sock.on("data", (d) => (answer += d.toString("latin1")));
    sock.on("error", (e: Error & { code?: string }) => (error ||= e.code ?? e.message));
    sock.on("close", () => resolve(`${status()} wrote:${wrote} error:${error || "none"}`));
    sock.write(`PUT ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
    pump();
  });
}

for (const engine of ["bun", "node"] as const)
  test(`${engine} engine: a refused chunked upload asking Connection: close gets its 403, and the socket is not reset before the client has sent its whole body`, async () => {
    await using env = await startUploadEnv({ engine });
    const seen: string[] = [];
    // the S3 front (an anonymous PUT: 403 AccessDenied) and the plain front (a read-only bucket: 405)
    for (const [port, answer] of [[env.port, "403"], [Number(new URL(env.mainUrl("/")).port), "405"]] as const)
      for (let i = 0; i < 6; i++) seen.push(`${answer}: ${await refusedPut(port, "/ro/deny/x", 8 * 1024 * 1024)}`);
    expect(seen).toEqual([...Array(6).fill("403: 403 wrote:true error:none"), ...Array(6).fill("405: 405 wrote:true error:none")]);
  });

test("the drain is bounded: a client that sends part of its body and then nothing still gets its 403, after REFUSED_DRAIN_MS, on both engines", async () => {
  const saved = { ...refusedDrainLimits };
  refusedDrainLimits.ms = 300;
  try {
    for (const engine of ["bun", "node"] as const) {
      await using env = await startUploadEnv({ engine });
      const got = await new Promise<string>((resolve) => {
        const sock = connect(env.port, "127.0.0.1");
        let answer = "";
        sock.on("data", (d) => (answer += d.toString("latin1")));
        sock.on("error", () => {});
        sock.on("close", () => resolve(/HTTP\/1\.1 ([2-5]\d\d)/.exec(answer)?.[1] ?? "none"));
        sock.write(`PUT /ro/deny/x HTTP/1.1\r\nHost: 127.0.0.1:${env.port}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n`);
      });
      expect(`${engine}: ${got}`).toBe(`${engine}: 403`);
    }
  } finally {
    Object.assign(refusedDrainLimits, saved);
  }
});

for (const engine of ["bun", "node"] as const)
  test(`${engine} engine: a refused body being drained holds no request or upload slot (stalled anonymous uploads do not take the proxy)`, async () => {
    const saved = { ...refusedDrainLimits };
    refusedDrainLimits.ms = 20_000;
    const s3 = await startUploadFixture();
    const caps = "max_concurrent_requests: 16, max_concurrent_requests_per_ip: 16, max_concurrent_uploads: 16, max_concurrent_uploads_per_ip: 16";
    await using env = await startFrontsOn(uploadYaml(s3.endpoint, { engine }).replace(`engine: ${engine}`, `engine: ${engine}, ${caps}`), s3, true);
    const socks: Socket[] = [];
    try {
      let admitted = 0;
      const tryEnter = env.app.concurrency.tryEnter.bind(env.app.concurrency);
      env.app.concurrency.tryEnter = (ip) => (admitted++, tryEnter(ip));
      // each: an anonymous PUT (403 AccessDenied), Connection: close, a first chunk and then nothing
      for (let i = 0; i < 16; i++) {
        const sock = connect(env.port, "127.0.0.1");
        sock.on("error", () => {});
        sock.write(`PUT /ro/deny/x HTTP/1.1\r\nHost: 127.0.0.1:${env.port}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n`);
        socks.push(sock);
      }
      await waitFor(() => admitted >= 16, { message: () => `16 admitted (${admitted})` });
      await waitFor(() => env.app.concurrency.inFlight === 0 && env.app.uploads.inFlight === 0, {
        timeoutMs: 3000,
        message: () => `slots given back (requests ${env.app.concurrency.inFlight}, uploads ${env.app.uploads.inFlight})`,
      });
      expect((await fetch(env.endpoint + "/ro/x")).status).toBe(403);
    } finally {
      for (const s of socks) s.destroy();
      Object.assign(refusedDrainLimits, saved);
    }
  });
