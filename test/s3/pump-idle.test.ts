/**
 * pipeStage (src/s3/aws-chunked/pump.ts), the pump under every verified upload body: a source that
 * stops sending mid-body (a client gone quiet, still connected) fails the stream with S3's
 * RequestTimeout once a read has waited SOURCE_IDLE_MS; a source that is merely slow, or a
 * consumer that does not read, is never timed.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { pipeStage, SOURCE_IDLE_MS } from "../../src/s3/aws-chunked/pump.ts";
import { isPayloadError } from "../../src/s3/aws-chunked/errors.ts";

setDefaultTimeout(30_000);

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

// ---- the listener's slow-body rule (Bun.serve closes a connection whose body comes under 16 KiB/s)

/** A source that gives `size`-byte pieces every `everyMs` until `total` bytes. */
function paced(size: number, everyMs: number, total: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (sent >= total) return c.close();
      await Bun.sleep(everyMs); // the client's pace: what is under test
      sent += size;
      c.enqueue(new Uint8Array(size));
    },
  });
}

async function drain(piped: ReturnType<typeof pipeStage>, pauseMs = 0): Promise<{ got: number; err: unknown }> {
  const reader = piped.stream.getReader();
  let got = 0;
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) return { got, err: undefined };
      got += r.value.byteLength;
      if (pauseMs > 0) await Bun.sleep(pauseMs);
    }
  } catch (err) {
    return { got, err };
  }
}

test("with the listener's rule, a body that keeps trickling (never idle for the 20 s limit) is answered RequestTimeout before the listener would cut it", async () => {
  // rule: 100 bytes per window, answer after 300 ms spent waiting; the trickle gives 5 bytes per 20 ms
  const piped = pipeStage(paced(5, 20, 10_000), passThrough, { total: 10_000 }, 5_000, { bytes: 100, waitMs: 300 });
  const { got, err } = await drain(piped);
  expect(isPayloadError(err) && { code: err.code, status: err.status }).toEqual({ code: "RequestTimeout", status: 400 });
  expect(got).toBeLessThan(100);
  // and without the rule (the node engine), the same trickle is read to its end
  const plain = pipeStage(paced(5, 2, 200), passThrough, { total: 200 }, 5_000);
  expect(await drain(plain)).toEqual({ got: 200, err: undefined });
});

test("with the listener's rule, a body fast enough to restart the listener's count each window, and a consumer that pauses, are never answered first", async () => {
  // 50 bytes per 20 ms: 100 bytes (the window) well within 1 s of waiting, for 1.2 s in all
  const fast = pipeStage(paced(50, 20, 3_000), passThrough, { total: 3_000 }, 5_000, { bytes: 100, waitMs: 1_000 });
  expect(await drain(fast)).toEqual({ got: 3_000, err: undefined });
  // a slow body whose waits stay under 300 ms because the consumer holds the pipe (an upstream that is slow): not the client's fault
  const held = pipeStage(paced(5, 20, 60), passThrough, { total: 60 }, 5_000, { bytes: 1_000, waitMs: 300 });
  expect(await drain(held, 100)).toEqual({ got: 60, err: undefined });
});

test("the rule is Bun.serve's (16 KiB/s over the listener's 60 s, answered 5 s before), which the node engine's listener applies too", async () => {
  const { LISTENER_SLOW_BODY, BUN_LISTENER_IDLE_SECONDS } = await import("../../src/http/framed-body.ts");
  expect(BUN_LISTENER_IDLE_SECONDS).toBe(60);
  // (one rule for both engines: the node listener's watchedNodeBody enforces the same, src/server.ts)
  expect(LISTENER_SLOW_BODY).toEqual({ bytes: 16 * 1024 * 60, waitMs: 55_000 });
});
