/**
 * A write whose outcome is unknown (its body failed mid-stream, its answer was lost) on a bucket
 * whose store is cached is purged again s3.timeout later (fronts/purge.ts). That timer must hold
 * the names alone: it held the whole request (its body stream, the aws-chunked decoder and its
 * held chunk, the hashers) until it fired, so failed uploads kept their memory for s3.timeout
 * (20 s by default) after their upload slot was given back: 20 broken 6 MiB uploads held ~100 MiB.
 *
 * Measured in the test process (the App runs in it): the live Request objects after a full GC come
 * back to what they were before the failed uploads, well before s3.timeout.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { heapStats } from "bun:jsc";
import { waitFor } from "../helpers/wait.ts";
import { bytesOf, chunkedRequest, lines, rawRequest, startUploadEnv, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(60_000);

let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv(); // bucket `up` caches, s3.timeout the default 20 s
});
afterAll(async () => {
  await env?.stop();
});

const liveRequests = (): number => {
  Bun.gc(true);
  return (heapStats().objectTypeCounts as Record<string, number>).BunRequest ?? 0;
};

test("aws-chunked uploads failing mid-body leave no request behind once answered", async () => {
  const baseline = liveRequests();
  const N = 20;
  const payload = bytesOf(64 * 1024);
  const answers = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const r = chunkedRequest({ mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", host: `127.0.0.1:${env.port}`, path: `/up/broken-${i}`, payload, chunkSize: 16 * 1024 });
      // the CRLF after the second chunk's data is broken: a framing error once the first chunk went upstream
      const body = r.body.slice();
      const first = Buffer.from(body).indexOf("\r\n") + 2 + 16 * 1024 + 2;
      const second = Buffer.from(body).indexOf("\r\n", first) + 2 + 16 * 1024;
      body[second] = 0x41;
      return rawRequest(env.port, lines(`PUT /up/broken-${i} HTTP/1.1`, r.headers), [body]);
    }),
  );
  expect(answers.map((a) => a.status)).toEqual(Array(N).fill(400));
  // (well inside s3.timeout: the delayed purges are still pending, the requests must not be)
  await waitFor(() => liveRequests() <= baseline + 2, { timeoutMs: 8000, intervalMs: 100, message: () => `live requests back to ${baseline} (+2 at most) (now ${liveRequests()})` });
});
