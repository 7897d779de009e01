/**
 * fetchWithBody (src/s3/send.ts) with an upstream that answers before the request body has all
 * been sent (an early error with a large body, as S3 may answer a write it refuses): the
 * response-head timer, armed when the body ends, must not be armed once the answer is in. It was:
 * the body ending after the answer armed it again, past the `finally` that clears it, and
 * `s3.timeout` later it aborted the answer the client was still reading.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { fetchWithBody } from "../../src/s3/send.ts";
import { UpstreamProtocolError } from "../../src/s3/http1/index.ts";

setDefaultTimeout(30_000);

test("an answer that comes before the request body ends is not aborted s3.timeout after the body ends", async () => {
  const TIMEOUT_MS = 50;
  let answerAborted = false;
  let bodyDone!: () => void;
  const bodyRead = new Promise<void>((r) => (bodyDone = r));
  // The upstream: answers at once with a body it streams slowly, and reads the request body after.
  const fakeFetch = (async (_url: string, init: RequestInit) => {
    const signal = init.signal!;
    const answer = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode("first part;"));
        signal.addEventListener("abort", () => {
          answerAborted = true;
          c.error(signal.reason);
        });
      },
    });
    void (async () => {
      const reader = (init.body as ReadableStream<Uint8Array>).getReader();
      while (!(await reader.read()).done);
      bodyDone();
    })();
    return new Response(answer, { status: 403, headers: { "content-type": "application/xml" } });
  }) as unknown as typeof fetch;
  // A request body that ends a little after the answer is in.
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      await Bun.sleep(5);
      if (sent === 4) return c.close();
      sent++;
      c.enqueue(new Uint8Array(16));
    },
  });
  const res = await fetchWithBody(fakeFetch, "PUT", "http://upstream.test/b/k", {}, body, 64, new AbortController().signal, TIMEOUT_MS, undefined, 1024);
  expect(res.status).toBe(403);
  await bodyRead;
  // Well past s3.timeout after the body's end: the answer is still the client's to read.
  const until = performance.now() + TIMEOUT_MS * 4;
  while (performance.now() < until && !answerAborted) await Bun.sleep(TIMEOUT_MS / 5);
  expect(answerAborted).toBe(false);
  await res.body!.cancel();
});

test("a success before the request body was all handed over is the upstream's failure (it never got the object); a refusal is relayed", async () => {
  // The upstream: answers at once, reading none of the body.
  const answering = (status: number) =>
    (async () => new Response(null, { status, headers: { etag: '"e"' } })) as unknown as typeof fetch;
  // A body whose first chunk comes and whose rest never does (a slow client).
  const halfSent = () => {
    let first = true;
    return new ReadableStream<Uint8Array>({
      pull(c) {
        if (!first) return new Promise<void>(() => {});
        first = false;
        c.enqueue(new Uint8Array(16));
      },
    });
  };
  const err = await fetchWithBody(answering(200), "PUT", "http://upstream.test/b/k", {}, halfSent(), 1_000_000, new AbortController().signal, 5000, undefined, 1024).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UpstreamProtocolError);
  expect((err as Error).message).toContain("before the request body was sent");
  const refused = await fetchWithBody(answering(403), "PUT", "http://upstream.test/b/k", {}, halfSent(), 1_000_000, new AbortController().signal, 5000, undefined, 1024);
  expect(refused.status).toBe(403);
});

test("wholeAnswer reads a GET's answer of known length whole without its `body` (reading it made a ReadableStream for each answer on the fetch client: AWS S3, upstream_client: fetch)", async () => {
  const { wholeAnswer } = await import("../../src/s3/send.ts");
  const res = new Response(new Uint8Array(1024).fill(97), { headers: { "content-length": "1024" } });
  let read = 0;
  const body = Object.getOwnPropertyDescriptor(Response.prototype, "body")!.get!;
  Object.defineProperty(res, "body", { get: () => (read++, body.call(res)) });
  const whole = await wholeAnswer(res, 4096, new AbortController(), 1_000);
  expect([read, (await whole.arrayBuffer()).byteLength]).toEqual([0, 1024]);
});
