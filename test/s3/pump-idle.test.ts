/**
 * pipeStage (src/s3/aws-chunked/pump.ts), the pump under every verified upload body: a source that
 * stops sending mid-body (a client gone quiet, still connected) fails the stream with S3's
 * RequestTimeout once a read has waited SOURCE_IDLE_MS; a source that is merely slow, or a
 * consumer that does not read, is never timed.
 */
import { expect, test } from "bun:test";
import { pipeStage, SOURCE_IDLE_MS } from "../../src/s3/aws-chunked/pump.ts";
import { isPayloadError } from "../../src/s3/aws-chunked/errors.ts";

const passThrough = { feed: (p: Uint8Array, out: Uint8Array[]) => void out.push(p), end: () => {} };

test("S3's idle limit is about 20 s", () => {
  expect(SOURCE_IDLE_MS).toBe(20_000);
});

test("a source that stops mid-body: the stream errors with RequestTimeout (400), the source is cancelled, finished rejects", async () => {
  let cancelled: unknown;
  const source = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new Uint8Array(10)); // then nothing, ever
    },
    cancel(reason) {
      cancelled = reason;
    },
  });
  const piped = pipeStage(source, passThrough, { total: 100 }, 50);
  const reader = piped.stream.getReader();
  expect((await reader.read()).value?.byteLength).toBe(10);
  const err = await reader.read().then(() => undefined, (e: unknown) => e);
  expect(isPayloadError(err) && { code: err.code, status: err.status, reason: err.reason }).toEqual({ code: "RequestTimeout", status: 400, reason: "idle" });
  expect(await piped.finished.then(() => undefined, (e: unknown) => e)).toBe(err);
  expect(cancelled).toBe(err);
});

test("a slow source (each piece within the limit) and a consumer that pauses longer than the limit are not timed out", async () => {
  let n = 0;
  const source = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (n === 4) return c.close();
      await Bun.sleep(30); // the client's pace, under the 80 ms limit: what is under test
      n++;
      c.enqueue(new Uint8Array(25));
    },
  });
  const piped = pipeStage(source, passThrough, { total: 100 }, 80);
  const reader = piped.stream.getReader();
  let got = 0;
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    got += r.value.byteLength;
    await Bun.sleep(150); // the consumer (the upstream) busy: no read pending, nothing timed
  }
  expect(got).toBe(100);
  await piped.finished;
});
