/**
 * encodeAwsChunkedUnsignedTrailer: the framing toward S3. Round trips through our decoder, an exact
 * precomputed length, byte-identical framing to what @aws-sdk/client-s3 sends, and errors (never a
 * final chunk) when the source is shorter or longer than declared.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { Readable } from "node:stream";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { deriveSigningKey } from "../../src/s3/sigv4.ts";
import {
  PayloadError,
  awsChunkedEncodedLength,
  buildAwsChunkedBody,
  decodeAwsChunked,
  encodeAwsChunkedUnsignedTrailer,
} from "../../src/s3/aws-chunked.ts";
import { CHECKSUM_ALGORITHMS, checksumBase64, checksumHeaderName } from "../../src/s3/checksum.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

function source(body: Uint8Array, piece: number): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  let off = 0;
  return {
    stream: new ReadableStream<Uint8Array>({
      pull(c) {
        if (off >= body.length) return c.close();
        c.enqueue(body.slice(off, off + piece));
        off += piece;
      },
    }, { highWaterMark: 0 }),
    pulled: () => Math.min(off, body.length),
  };
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<{ data: Uint8Array; error?: unknown }> {
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) return { data: cat(...parts) };
      parts.push(r.value);
    }
  } catch (error) {
    return { data: cat(...parts), error };
  }
}

const payload = new Uint8Array(200_003).map((_, i) => (i * 29 + 3) & 255);

describe("encodeAwsChunkedUnsignedTrailer", () => {
  for (const alg of CHECKSUM_ALGORITHMS) {
    test(`${alg}: exact length, decodes back, trailer is the payload's checksum`, async () => {
      for (const [chunkSize, piece] of [[65536, 1000], [8192, 100_000], [65536, 65536]] as const) {
        const enc = encodeAwsChunkedUnsignedTrailer(source(payload, piece).stream, alg, { decodedLength: payload.length, chunkSize });
        const out = await collect(enc.stream);
        expect(out.error).toBeUndefined();
        await enc.finished;
        expect(out.data.length).toBe(enc.encodedLength);
        expect(enc.headers).toEqual({
          "content-encoding": "aws-chunked",
          "content-length": String(out.data.length),
          "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
          "x-amz-decoded-content-length": String(payload.length),
          "x-amz-trailer": checksumHeaderName(alg),
        });
        const text = Buffer.from(out.data.subarray(-80)).toString("latin1");
        expect(text.endsWith(`0\r\n${checksumHeaderName(alg)}:${checksumBase64(alg, payload)}\r\n\r\n`)).toBe(true);
        // Every chunk but the last is exactly chunkSize (the decoder enforces the minimum).
        const dec = decodeAwsChunked(source(out.data, 7777).stream, {
          mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
          decodedContentLength: payload.length,
          trailer: checksumHeaderName(alg),
          minChunkSize: chunkSize,
        });
        const back = await collect(dec.stream);
        expect(back.error).toBeUndefined();
        expect(Buffer.from(back.data).equals(Buffer.from(payload))).toBe(true);
      }
    });
  }

  test("the empty body", async () => {
    const enc = encodeAwsChunkedUnsignedTrailer(source(new Uint8Array(0), 1).stream, "CRC32", { decodedLength: 0 });
    const out = await collect(enc.stream);
    expect(Buffer.from(out.data).toString("latin1")).toBe("0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n");
    expect(enc.encodedLength).toBe(out.data.length);
  });

  test("lengths at chunk boundaries", () => {
    for (const n of [0, 1, 8191, 8192, 8193, 65535, 65536, 65537, 5 * 1024 * 1024]) {
      const built = buildAwsChunkedBody(new Uint8Array(n), { chunkSize: 65536, trailers: [["x-amz-checksum-crc64nvme", "AAAAAAAAAAA="]] });
      expect(awsChunkedEncodedLength(n, "CRC64NVME")).toBe(built.body.length);
    }
  });

  test("a short source errors the stream and never writes the final chunk", async () => {
    const enc = encodeAwsChunkedUnsignedTrailer(source(payload.subarray(0, 150_000), 10_000).stream, "CRC32", { decodedLength: payload.length });
    const out = await collect(enc.stream);
    expect((out.error as PayloadError).code).toBe("IncompleteBody");
    expect(out.data.length).toBeLessThan(enc.encodedLength);
    expect(Buffer.from(out.data).includes(Buffer.from("0\r\nx-amz-checksum"))).toBe(false);
    await expect(enc.finished).rejects.toBe(out.error);
  });

  test("a long source errors the stream", async () => {
    const enc = encodeAwsChunkedUnsignedTrailer(source(payload, 10_000).stream, "CRC32", { decodedLength: payload.length - 1 });
    const out = await collect(enc.stream);
    expect((out.error as PayloadError).reason).toBe("too-long");
    expect(Buffer.from(out.data).includes(Buffer.from("0\r\nx-amz-checksum"))).toBe(false);
  });

  test("holds at most one chunk (plus one source piece)", async () => {
    const src = source(payload, 5000);
    const enc = encodeAwsChunkedUnsignedTrailer(src.stream, "CRC32C", { decodedLength: payload.length });
    const reader = enc.stream.getReader();
    let written = 0;
    let maxHeld = 0;
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      written += r.value.length;
      maxHeld = Math.max(maxHeld, src.pulled() - written);
    }
    expect(maxHeld).toBeLessThanOrEqual(65536 + 5000);
  });

  test("a chunk filled from tiny pieces is held in a few buffers, not one view per piece (16-byte TCP segments made a 256 KiB re-framed chunk hold ~3.5 MiB of views)", async () => {
    const enc = encodeAwsChunkedUnsignedTrailer(source(payload, 16).stream, "CRC32", { decodedLength: payload.length, chunkSize: 131072 });
    const parts: Uint8Array[] = [];
    for await (const p of enc.stream) parts.push(p);
    await enc.finished;
    const back = decodeAwsChunked(new Blob([cat(...parts)]).stream(), { mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", decodedContentLength: payload.length, trailer: "x-amz-checksum-crc32" });
    expect((await collect(back.stream)).data).toEqual(payload);
    // a chunk header, one 64 KiB staging buffer per 64 KiB, the trailer: where every 16-byte piece was its own view (12,501 of them)
    expect(parts.length).toBeLessThanOrEqual(12);
  });

  test("rejects a chunk size below S3's 8 KiB minimum", () => {
    expect(() => encodeAwsChunkedUnsignedTrailer(source(payload, 1).stream, "CRC32", { decodedLength: 1, chunkSize: 4096 })).toThrow(RangeError);
  });

  test("signed chunks in, verified and re-framed unsigned out, decoded back (the proxy's path)", async () => {
    const ctx = {
      signingKey: deriveSigningKey("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3"),
      amzDate: "20130524T000000Z",
      scope: "20130524/us-east-1/s3/aws4_request",
      seedSignature: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    };
    const signed = buildAwsChunkedBody(payload, { signing: ctx, chunkSize: 65536 }).body;
    const decoded = decodeAwsChunked(source(signed, 3000).stream, { mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", signing: ctx, decodedContentLength: payload.length });
    const reframed = encodeAwsChunkedUnsignedTrailer(decoded.stream, "CRC64NVME", { decodedLength: payload.length });
    const back = decodeAwsChunked(reframed.stream, { mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", decodedContentLength: payload.length, trailer: "x-amz-checksum-crc64nvme" });
    const out = await collect(back.stream);
    expect(out.error).toBeUndefined();
    expect(Buffer.from(out.data).equals(Buffer.from(payload))).toBe(true);
  });
});

describe("compatibility with @aws-sdk/client-s3", () => {
  test("byte-identical to the SDK's own aws-chunked body for the same chunking", async () => {
    let captured: Uint8Array | undefined;
    using server = Bun.serve({
      port: 0,
      async fetch(req) {
        captured = new Uint8Array(await req.arrayBuffer());
        return new Response("", { headers: { etag: '"e"' } });
      },
    });
    const client = new S3Client({
      region: "us-east-1",
      endpoint: `http://127.0.0.1:${server.port}`,
      forcePathStyle: true,
      credentials: { accessKeyId: "AKID", secretAccessKey: "SECRET" },
    });
    const piece = 50_000; // the SDK frames each piece of the body stream as one chunk
    const body = new Readable({ read() {} });
    for (let o = 0; o < payload.length; o += piece) body.push(Buffer.from(payload.subarray(o, o + piece)));
    body.push(null);
    await client.send(new PutObjectCommand({ Bucket: "b", Key: "k", Body: body, ContentLength: payload.length }));
    client.destroy();

    const enc = encodeAwsChunkedUnsignedTrailer(source(payload, 7000).stream, "CRC32", { decodedLength: payload.length, chunkSize: piece });
    const ours = await collect(enc.stream);
    expect(Buffer.from(ours.data).equals(Buffer.from(captured!))).toBe(true);
  });
});
