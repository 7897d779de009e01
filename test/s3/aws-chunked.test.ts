/**
 * aws-chunked decoding: AWS's published examples (signed, signed with trailer), every split of the
 * framing, the unsigned trailer mode with each checksum, and a body produced by the real
 * @aws-sdk/client-s3. Hostile inputs: aws-chunked-hostile.test.ts; encoding: aws-chunked-encode.test.ts.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { Readable } from "node:stream";
import { createHash } from "node:crypto";
import { crc32 as zlibCrc32 } from "node:zlib";
import { Crc32cJs, Crc64NvmeJs } from "@aws-sdk/checksums/crc";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { canonicalHeaders, canonicalRequest, deriveSigningKey, signature, stringToSign } from "../../src/s3/sigv4.ts";
import {
  PayloadError,
  awsChunkedBytesDecoder,
  buildAwsChunkedBody,
  decodeAwsChunked,
  maxAwsChunkedLength,
  type ChunkSigningContext,
  type DecodeOptions,
} from "../../src/s3/aws-chunked.ts";
import { checksumBase64, checksumHeaderName, type ChecksumAlgorithm } from "../../src/s3/checksum.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

// AWS's example: "Signature Calculations for the Authorization Header: Transferring Payload in
// Multiple Chunks (Chunked Upload)" and its trailer variant. NB: the example's secret has a "/"
// after MDENG (the same secret as every other SigV4 example), not a "+".
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const DATE = "20130524T000000Z";
const SCOPE = "20130524/us-east-1/s3/aws4_request";
const KEY = deriveSigningKey(SECRET, "20130524", "us-east-1", "s3");
const A = (n: number) => new Uint8Array(n).fill(0x61);
const PAYLOAD = A(66560);

const DOC = {
  seed: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
  chunk1: "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
  chunk2: "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
  final: "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
};
const DOC_TRAILER = {
  seed: "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
  chunk1: "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
  chunk2: "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
  final: "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
  crc32c: "sOO8/Q==",
  trailer: "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435",
};

const ctx = (seed: string): ChunkSigningContext => ({ signingKey: KEY, amzDate: DATE, scope: SCOPE, seedSignature: seed });
const latin1 = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

/** The documented bodies, written out from the documented signatures (not from our builder). */
const DOC_BODY = cat(
  latin1(`10000;chunk-signature=${DOC.chunk1}\r\n`), A(65536), latin1("\r\n"),
  latin1(`400;chunk-signature=${DOC.chunk2}\r\n`), A(1024), latin1("\r\n"),
  latin1(`0;chunk-signature=${DOC.final}\r\n\r\n`),
);
const DOC_TRAILER_BODY = cat(
  latin1(`10000;chunk-signature=${DOC_TRAILER.chunk1}\r\n`), A(65536), latin1("\r\n"),
  latin1(`400;chunk-signature=${DOC_TRAILER.chunk2}\r\n`), A(1024), latin1("\r\n"),
  latin1(`0;chunk-signature=${DOC_TRAILER.final}\r\n`),
  latin1(`x-amz-checksum-crc32c:${DOC_TRAILER.crc32c}\r\n`),
  latin1(`x-amz-trailer-signature:${DOC_TRAILER.trailer}\r\n\r\n`),
);

/** A source that yields `body` cut at `cuts` (sorted offsets), one piece per pull. */
function source(body: Uint8Array, cuts: number[]): ReadableStream<Uint8Array> {
  const bounds = [0, ...cuts.filter((c) => c > 0 && c < body.length), body.length];
  let k = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (k >= bounds.length - 1) return c.close();
      c.enqueue(body.slice(bounds[k], bounds[k + 1]));
      k++;
    },
  }, { highWaterMark: 0 });
}
const everyN = (len: number, n: number) => Array.from({ length: Math.ceil(len / n) }, (_, i) => i * n);

async function decode(body: Uint8Array, opts: DecodeOptions, cuts: number[] = []): Promise<{ data: Uint8Array; error?: unknown }> {
  const { stream, finished } = decodeAwsChunked(source(body, cuts), opts);
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      parts.push(r.value);
    }
    await finished;
    return { data: cat(...parts) };
  } catch (error) {
    await expect(finished).rejects.toBe(error);
    return { data: cat(...parts), error };
  }
}

const SIGNED: DecodeOptions = { mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", signing: ctx(DOC.seed), decodedContentLength: 66560 };
const SIGNED_TRAILER: DecodeOptions = {
  mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
  signing: ctx(DOC_TRAILER.seed),
  decodedContentLength: 66560,
  trailer: "x-amz-checksum-crc32c",
};

function seedSignature(headers: Record<string, string>, payloadMode: string): string {
  const c = canonicalHeaders(headers);
  const creq = canonicalRequest("PUT", "/examplebucket/chunkObject.txt", "", c.canonical, c.signed, payloadMode);
  return signature(KEY, stringToSign(DATE, SCOPE, creq));
}

describe("AWS's published chunked-upload example", () => {
  test("the seed signature derives from the documented request", () => {
    expect(DOC_BODY.length).toBe(66824); // the documented Content-Length
    expect(seedSignature({
      "content-encoding": "aws-chunked",
      "content-length": "66824",
      host: "s3.amazonaws.com",
      "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
      "x-amz-date": DATE,
      "x-amz-decoded-content-length": "66560",
      "x-amz-storage-class": "REDUCED_REDUNDANCY",
    }, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")).toBe(DOC.seed);
  });

  test("our builder reproduces the documented body and signatures", () => {
    const built = buildAwsChunkedBody(PAYLOAD, { signing: ctx(DOC.seed), chunkSize: 65536 });
    expect(built.chunkSignatures).toEqual([DOC.chunk1, DOC.chunk2, DOC.final]);
    expect(Buffer.from(built.body).equals(Buffer.from(DOC_BODY))).toBe(true);
  });

  test("decodes to the 66560 bytes, whole and in 1-byte pieces", async () => {
    for (const cuts of [[], everyN(DOC_BODY.length, 1)]) {
      const r = await decode(DOC_BODY, SIGNED, cuts);
      expect(r.error).toBeUndefined();
      expect(Buffer.from(r.data).equals(Buffer.from(PAYLOAD))).toBe(true);
    }
  });

  test("a wrong seed (another request's signature) fails on chunk 1, releasing nothing", async () => {
    const r = await decode(DOC_BODY, { ...SIGNED, signing: ctx(DOC_TRAILER.seed) });
    expect((r.error as PayloadError).code).toBe("SignatureDoesNotMatch");
    expect((r.error as PayloadError).status).toBe(403);
    expect(r.data.length).toBe(0);
  });

  test("a wrong signing key fails", async () => {
    const other = deriveSigningKey("another-secret", "20130524", "us-east-1", "s3");
    const r = await decode(DOC_BODY, { ...SIGNED, signing: { ...ctx(DOC.seed), signingKey: other } });
    expect((r.error as PayloadError).reason).toBe("chunk-signature");
  });
});

describe("AWS's published chunked-upload example with a signed trailer", () => {
  test("the seed signature derives from the documented request", () => {
    expect(seedSignature({
      "content-encoding": "aws-chunked",
      host: "s3.amazonaws.com",
      "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
      "x-amz-date": DATE,
      "x-amz-decoded-content-length": "66560",
      "x-amz-storage-class": "REDUCED_REDUNDANCY",
      "x-amz-trailer": "x-amz-checksum-crc32c",
    }, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")).toBe(DOC_TRAILER.seed);
  });

  test("our builder reproduces the documented body, chunk and trailer signatures", () => {
    const built = buildAwsChunkedBody(PAYLOAD, {
      signing: ctx(DOC_TRAILER.seed),
      chunkSize: 65536,
      trailers: [["x-amz-checksum-crc32c", DOC_TRAILER.crc32c]],
    });
    expect(built.chunkSignatures).toEqual([DOC_TRAILER.chunk1, DOC_TRAILER.chunk2, DOC_TRAILER.final]);
    expect(built.trailerSignature).toBe(DOC_TRAILER.trailer);
    expect(Buffer.from(built.body).equals(Buffer.from(DOC_TRAILER_BODY))).toBe(true);
  });

  test("decodes, verifies the trailer signature and the CRC32C", async () => {
    const { stream, finished, trailerChecksum } = decodeAwsChunked(source(DOC_TRAILER_BODY, []), SIGNED_TRAILER);
    expect(trailerChecksum()).toBeUndefined(); // not before the end
    const data = new Uint8Array(await new Response(stream).arrayBuffer());
    await finished;
    expect(Buffer.from(data).equals(Buffer.from(PAYLOAD))).toBe(true);
    expect(trailerChecksum()).toBe(DOC_TRAILER.crc32c);
  });

  test("a forged trailer signature fails before the last byte is released", async () => {
    const forged = DOC_TRAILER_BODY.slice();
    const at = Buffer.from(forged).lastIndexOf("x-amz-trailer-signature:") + 24;
    forged[at] = forged[at] === 0x30 ? 0x31 : 0x30;
    const r = await decode(forged, SIGNED_TRAILER);
    expect((r.error as PayloadError).reason).toBe("trailer-signature");
    expect((r.error as PayloadError).code).toBe("SignatureDoesNotMatch");
    expect(r.data.length).toBeLessThan(66560);
  });

  test("a correctly signed trailer with the wrong CRC32C is BadDigest", async () => {
    const wrong = "AAAAAA==";
    const built = buildAwsChunkedBody(PAYLOAD, { signing: ctx(DOC_TRAILER.seed), chunkSize: 65536, trailers: [["x-amz-checksum-crc32c", wrong]] });
    const r = await decode(built.body, SIGNED_TRAILER);
    expect((r.error as PayloadError).code).toBe("BadDigest");
    expect((r.error as PayloadError).message).toBe("The CRC32C you specified did not match the calculated checksum.");
    expect(r.data.length).toBeLessThan(66560);
  });

  test("the trailer signature is required in the signed trailer mode", async () => {
    const noSig = cat(DOC_TRAILER_BODY.subarray(0, Buffer.from(DOC_TRAILER_BODY).lastIndexOf("x-amz-trailer-signature:")), latin1("\r\n"));
    const r = await decode(noSig, SIGNED_TRAILER);
    expect((r.error as PayloadError).reason).toBe("trailer");
  });
});

describe("every split of the framing", () => {
  // Small chunks so every byte of every size line, signature, CRLF and trailer line is a cut point.
  const payload = new Uint8Array(50).map((_, i) => 0x41 + (i % 26));
  const c32 = Buffer.alloc(4);
  c32.writeUInt32BE(zlibCrc32(payload));
  const trailerValue = c32.toString("base64");
  const seed = DOC_TRAILER.seed;
  const body = buildAwsChunkedBody(payload, { signing: ctx(seed), chunkSize: 20, trailers: [["x-amz-checksum-crc32", trailerValue]] }).body;
  const opts: DecodeOptions = { mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", signing: ctx(seed), decodedContentLength: 50, trailer: "x-amz-checksum-crc32" };

  test("one cut anywhere", async () => {
    for (let cut = 1; cut < body.length; cut++) {
      const r = await decode(body, opts, [cut]);
      if (r.error) throw new Error(`cut at ${cut}: ${(r.error as Error).message}`);
      expect(Buffer.from(r.data).toString()).toBe(Buffer.from(payload).toString());
    }
  });

  test("two cuts anywhere (every pair within a window over the first chunk's header)", async () => {
    for (let a = 1; a < 110; a++) {
      for (let b = a + 1; b < 112; b++) {
        const r = await decode(body, opts, [a, b]);
        if (r.error) throw new Error(`cuts at ${a},${b}: ${(r.error as Error).message}`);
        expect(r.data.length).toBe(50);
      }
    }
  });

  test("1-, 2-, 3- and 7-byte pieces, unsigned mode too", async () => {
    const unsigned = buildAwsChunkedBody(payload, { chunkSize: 7, trailers: [["x-amz-checksum-crc32", trailerValue]] }).body;
    for (const n of [1, 2, 3, 7]) {
      expect((await decode(body, opts, everyN(body.length, n))).data.length).toBe(50);
      const r = await decode(unsigned, { mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", decodedContentLength: 50, trailer: "x-amz-checksum-crc32" }, everyN(unsigned.length, n));
      expect(r.error).toBeUndefined();
      expect(Buffer.from(r.data).equals(Buffer.from(payload))).toBe(true);
    }
  });
});

async function referenceChecksum(alg: ChecksumAlgorithm, data: Uint8Array): Promise<string> {
  if (alg === "SHA1" || alg === "SHA256") return createHash(alg === "SHA1" ? "sha1" : "sha256").update(data).digest("base64");
  if (alg === "CRC32") {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(zlibCrc32(data));
    return b.toString("base64");
  }
  const c = alg === "CRC32C" ? new Crc32cJs() : new Crc64NvmeJs();
  c.update(data);
  return Buffer.from(await c.digest()).toString("base64");
}

describe("STREAMING-UNSIGNED-PAYLOAD-TRAILER", () => {
  const payload = new Uint8Array(200_001).map((_, i) => (i * 131) & 255);
  for (const alg of ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"] as const) {
    const name = checksumHeaderName(alg);
    const opts: DecodeOptions = { mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", decodedContentLength: payload.length, trailer: name };

    test(`${alg}: the right trailer passes, a wrong one is BadDigest before the last byte`, async () => {
      const value = await referenceChecksum(alg, payload);
      const good = buildAwsChunkedBody(payload, { chunkSize: 65536, trailers: [[name, value]] }).body;
      const ok = await decode(good, opts, everyN(good.length, 10_000));
      expect(ok.error).toBeUndefined();
      expect(Buffer.from(ok.data).equals(Buffer.from(payload))).toBe(true);

      const wrongValue = await referenceChecksum(alg, payload.subarray(1));
      const bad = buildAwsChunkedBody(payload, { chunkSize: 65536, trailers: [[name, wrongValue]] }).body;
      const r = await decode(bad, opts, everyN(bad.length, 10_000));
      expect((r.error as PayloadError).code).toBe("BadDigest");
      expect((r.error as PayloadError).message).toBe(`The ${alg} you specified did not match the calculated checksum.`);
      expect(r.data.length).toBeLessThan(payload.length);
      expect(r.data.length).toBeGreaterThan(0); // unsigned data streams as it comes
    });
  }

  test("the trailer name is matched case-insensitively, the value trimmed", async () => {
    const value = await referenceChecksum("CRC32", payload);
    const body = buildAwsChunkedBody(payload, { chunkSize: 65536, trailers: [["X-Amz-Checksum-CRC32", " " + value]] }).body;
    const r = await decode(body, { mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", decodedContentLength: payload.length, trailer: "X-Amz-Checksum-Crc32" });
    expect(r.error).toBeUndefined();
  });

  test("no x-amz-trailer and no trailer lines: the bytes are still counted", async () => {
    const body = buildAwsChunkedBody(payload, { chunkSize: 65536, trailers: [] }).body;
    expect((await decode(body, { mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", decodedContentLength: payload.length })).error).toBeUndefined();
  });

  test("a Content-MD5 header is checked against the decoded bytes", async () => {
    const body = buildAwsChunkedBody(payload, { chunkSize: 65536, trailers: [] }).body;
    const good = createHash("md5").update(payload).digest("base64");
    const base: DecodeOptions = { mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", decodedContentLength: payload.length };
    expect((await decode(body, { ...base, expect: { contentMd5: good } })).error).toBeUndefined();
    const r = await decode(body, { ...base, expect: { contentMd5: Buffer.alloc(16).toString("base64") } });
    expect((r.error as PayloadError).reason).toBe("content-md5");
  });
});

describe("a body from the real @aws-sdk/client-s3 (default checksums, streamed body)", () => {
  test("is STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32 trailer that decodes and verifies", async () => {
    let captured: { headers: Headers; body: Uint8Array } | undefined;
    using server = Bun.serve({
      port: 0,
      async fetch(req) {
        captured = { headers: req.headers, body: new Uint8Array(await req.arrayBuffer()) };
        return new Response("", { headers: { etag: '"e"' } });
      },
    });
    const client = new S3Client({
      region: "us-east-1",
      endpoint: `http://127.0.0.1:${server.port}`,
      forcePathStyle: true,
      credentials: { accessKeyId: "AKID", secretAccessKey: "SECRET" },
    });
    const payload = new Uint8Array(300_000).map((_, i) => (i * 7) & 255);
    const body = new Readable({ read() {} });
    for (let o = 0; o < payload.length; o += 50_000) body.push(Buffer.from(payload.subarray(o, o + 50_000)));
    body.push(null);
    await client.send(new PutObjectCommand({ Bucket: "b", Key: "k", Body: body, ContentLength: payload.length }));
    client.destroy();

    const h = captured!.headers;
    expect(h.get("content-encoding")).toBe("aws-chunked");
    expect(h.get("x-amz-content-sha256")).toBe("STREAMING-UNSIGNED-PAYLOAD-TRAILER");
    const r = await decode(captured!.body, {
      mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
      decodedContentLength: Number(h.get("x-amz-decoded-content-length")),
      trailer: h.get("x-amz-trailer"),
    }, everyN(captured!.body.length, 4096));
    expect(r.error).toBeUndefined();
    expect(Buffer.from(r.data).equals(Buffer.from(payload))).toBe(true);

    // The same body with one payload byte flipped fails the CRC.
    const tampered = captured!.body.slice();
    tampered[100] ^= 1;
    const bad = await decode(tampered, { mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", decodedContentLength: payload.length, trailer: h.get("x-amz-trailer") });
    expect((bad.error as PayloadError).code).toBe("BadDigest");
  });
});

describe("a whole body decoded at once (awsChunkedBytesDecoder, a small upload read whole)", () => {
  const whole = (body: Uint8Array, opts: DecodeOptions) => {
    try {
      return awsChunkedBytesDecoder(opts)(body);
    } catch (e) {
      return e;
    }
  };

  test("the documented bodies: the payload, and the trailer's checksum as it was checked", () => {
    const signed = whole(DOC_BODY, SIGNED) as { payload: Uint8Array; trailer?: unknown };
    expect(Buffer.from(signed.payload).equals(Buffer.from(PAYLOAD))).toBe(true);
    expect(signed.trailer).toBeUndefined();
    const trailer = whole(DOC_TRAILER_BODY, SIGNED_TRAILER) as { payload: Uint8Array; trailer?: unknown };
    expect(Buffer.from(trailer.payload).equals(Buffer.from(PAYLOAD))).toBe(true);
    expect(trailer.trailer).toEqual({ name: "x-amz-checksum-crc32c", value: DOC_TRAILER.crc32c });
  });

  test("what fails the stream decoder fails it too: a changed data byte, a changed trailer signature, a cut body", () => {
    const data = DOC_BODY.slice();
    data[data.length - 200] = 0x62;
    expect((whole(data, SIGNED) as PayloadError).code).toBe("SignatureDoesNotMatch");
    const sig = latin1(Buffer.from(DOC_TRAILER_BODY).toString("latin1").replace(DOC_TRAILER.trailer, DOC_TRAILER.trailer.slice(0, 63) + "0"));
    expect((whole(sig, SIGNED_TRAILER) as PayloadError).code).toBe("SignatureDoesNotMatch");
    expect((whole(DOC_TRAILER_BODY.subarray(0, DOC_TRAILER_BODY.length - 2), SIGNED_TRAILER) as PayloadError).code).toBe("IncompleteBody");
  });

  test("maxAwsChunkedLength bounds the longest framing the decoder takes (8 KiB chunks, signed, a trailer, padded size lines)", () => {
    const payload = A(65536);
    const built = buildAwsChunkedBody(payload, { signing: ctx(DOC.seed), chunkSize: 8192, trailers: [["x-amz-checksum-crc32", "AAAAAA=="]] });
    expect(built.body.byteLength).toBeLessThanOrEqual(maxAwsChunkedLength(65536, 8192));
    // size lines of 16 hex digits (leading zeros), as the decoder takes them
    const lines: Uint8Array[] = [];
    for (let i = 0; i < 8; i++) lines.push(latin1(`${(8192).toString(16).padStart(16, "0")}\r\n`), A(8192), latin1("\r\n"));
    lines.push(latin1(`${"0".repeat(16)}\r\nx-amz-checksum-crc32:${checksumBase64("CRC32", payload)}\r\n\r\n`));
    const padded = cat(...lines);
    const r = whole(padded, { mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", decodedContentLength: 65536, minChunkSize: 8192, trailer: "x-amz-checksum-crc32" });
    expect(r).not.toBeInstanceOf(PayloadError);
    expect(padded.byteLength).toBeLessThanOrEqual(maxAwsChunkedLength(65536, 8192));
  });
});
