/**
 * pipeStage's count of what a stage let through (Piped.passed), the access log's bytes_in for a
 * verified or decoded upload body: the payload as it came (a held-back piece included), never
 * the aws-chunked framing, and only what came before a source that broke off.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { buildAwsChunkedBody, decodeAwsChunked } from "../../src/s3/aws-chunked.ts";
import { pipeStage } from "../../src/s3/aws-chunked/pump.ts";

setDefaultTimeout(30_000);

const passThrough = { feed: (p: Uint8Array, out: Uint8Array[]) => void out.push(p), end: () => {} };

function sourceOf(pieces: Uint8Array[], fail?: Error): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (i < pieces.length) return c.enqueue(pieces[i++]!);
      if (fail !== undefined) return c.error(fail);
      c.close();
    },
  });
}

test("a whole body: every byte counted, in each hold-back mode", async () => {
  for (const hold of [{ total: 30 }, "last-piece", "none"] as const) {
    const piped = pipeStage(sourceOf([new Uint8Array(10), new Uint8Array(20)]), passThrough, hold);
    expect(piped.passed()).toBe(0);
    await new Response(piped.stream).arrayBuffer();
    expect(piped.passed()).toBe(30);
  }
});

test("a source that breaks off: what came before it, not the declared total", async () => {
  const piped = pipeStage(sourceOf([new Uint8Array(1000), new Uint8Array(500)], new Error("cut")), passThrough, { total: 1_000_000 });
  await new Response(piped.stream).arrayBuffer().catch(() => {});
  expect(piped.passed()).toBe(1500);
});

test("an aws-chunked body: the decoded payload, not the framing", async () => {
  const payload = new Uint8Array(20_000).fill(7);
  const framed = buildAwsChunkedBody(payload, { chunkSize: 8192, trailers: [["x-amz-checksum-crc32", Buffer.from(new Uint8Array(new Uint32Array([Bun.hash.crc32(payload)]).buffer).reverse()).toString("base64")]] }).body;
  expect(framed.byteLength).toBeGreaterThan(payload.byteLength);
  const decoded = decodeAwsChunked(sourceOf([framed]), { mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", decodedContentLength: payload.byteLength, trailer: "x-amz-checksum-crc32" });
  expect((await new Response(decoded.stream).arrayBuffer()).byteLength).toBe(payload.byteLength);
  await decoded.finished;
  expect(decoded.passed()).toBe(payload.byteLength);
});
