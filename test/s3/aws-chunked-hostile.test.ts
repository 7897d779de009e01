/**
 * aws-chunked decoding under hostile or broken input: forged signatures (and what was released
 * before the failure), bad framing, oversized chunks, truncation, wrong lengths, bad trailers,
 * source errors, cancellation, and how much is held (backpressure).
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { deriveSigningKey } from "../../src/s3/sigv4.ts";
import {
  PayloadError,
  buildAwsChunkedBody,
  decodeAwsChunked,
  type ChunkSigningContext,
  type DecodeOptions,
} from "../../src/s3/aws-chunked.ts";
import { checksumBase64 } from "../../src/s3/checksum.ts";
import { ByteBudget } from "../../src/limits/byte-budget.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const KEY = deriveSigningKey("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3");
const SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
const CTX: ChunkSigningContext = { signingKey: KEY, amzDate: "20130524T000000Z", scope: "20130524/us-east-1/s3/aws4_request", seedSignature: SEED };
const latin1 = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const str = (b: Uint8Array) => Buffer.from(b).toString("latin1");

// chunk 1: 65536 x 'a', chunk 2: 1024 x 'b'
const PAYLOAD = cat(new Uint8Array(65536).fill(0x61), new Uint8Array(1024).fill(0x62));
const SIGNED: DecodeOptions = { mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", signing: CTX, decodedContentLength: PAYLOAD.length };
const BUILT = buildAwsChunkedBody(PAYLOAD, { signing: CTX, chunkSize: 65536 });
const BODY = BUILT.body;

function replaceOnce(body: Uint8Array, from: string, to: string): Uint8Array {
  const s = str(body);
  const i = s.indexOf(from);
  if (i < 0) throw new Error("pattern not found");
  return latin1(s.slice(0, i) + to + s.slice(i + from.length));
}
const flipHex = (sig: string) => (sig[0] === "0" ? "1" : "0") + sig.slice(1);

interface Source {
  stream: ReadableStream<Uint8Array>;
  pulledBytes: () => number;
  cancelled: () => unknown;
}

/** Yields `body` in `piece`-byte pieces, then (optionally) an error or endless filler. */
function source(body: Uint8Array, piece = body.length || 1, tail?: "error" | "endless"): Source {
  let off = 0;
  let pulled = 0;
  let cancelReason: unknown;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (off >= body.length) {
        if (tail === "error") return c.error(new Error("socket reset"));
        if (tail === "endless") {
          pulled += 65536;
          return c.enqueue(new Uint8Array(65536).fill(0x7a));
        }
        return c.close();
      }
      const p = body.slice(off, off + piece);
      off += p.length;
      pulled += p.length;
      c.enqueue(p);
    },
    cancel(reason) {
      cancelReason = reason ?? "cancelled";
    },
  }, { highWaterMark: 0 });
  return { stream, pulledBytes: () => pulled, cancelled: () => cancelReason };
}

async function run(src: Source | Uint8Array, opts: DecodeOptions): Promise<{ data: Uint8Array; error?: PayloadError }> {
  const s = src instanceof Uint8Array ? source(src) : src;
  const { stream, finished } = decodeAwsChunked(s.stream, opts);
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
    expect(error).toBeInstanceOf(PayloadError);
    await expect(finished).rejects.toBe(error);
    return { data: cat(...parts), error: error as PayloadError };
  }
}

describe("forged and replayed signatures", () => {
  test("a forged chunk-2 signature: chunk 1's bytes were released, chunk 2's never", async () => {
    const forged = replaceOnce(BODY, BUILT.chunkSignatures[1], flipHex(BUILT.chunkSignatures[1]));
    for (const piece of [forged.length, 4096, 1]) {
      const r = await run(source(forged, piece), SIGNED);
      expect(r.error?.code).toBe("SignatureDoesNotMatch");
      expect(r.error?.reason).toBe("chunk-signature");
      expect(r.data.length).toBe(65536);
      expect(r.data.every((b) => b === 0x61)).toBe(true); // not one 'b'
    }
  });

  test("a chunk signature that differs only in its last hex digit fails (every digit is compared)", async () => {
    const sig = BUILT.chunkSignatures[0]!;
    const forged = replaceOnce(BODY, sig, sig.slice(0, 63) + (sig[63] === "0" ? "1" : "0"));
    const r = await run(forged, SIGNED);
    expect(r.error?.reason).toBe("chunk-signature");
    expect(r.data.length).toBe(0);
  });

  test("chunk 2's data altered (signature kept): nothing of chunk 2 is released", async () => {
    const altered = BODY.slice();
    altered[BODY.length - 200] = 0x63; // inside chunk 2's data
    const r = await run(altered, SIGNED);
    expect(r.error?.code).toBe("SignatureDoesNotMatch");
    expect(r.data.length).toBe(65536);
  });

  test("a forged final-chunk signature: the body is never released complete", async () => {
    const forged = replaceOnce(BODY, BUILT.chunkSignatures[2], flipHex(BUILT.chunkSignatures[2]));
    const r = await run(source(forged, 1000), SIGNED);
    expect(r.error?.code).toBe("SignatureDoesNotMatch");
    expect(r.data.length).toBeLessThan(PAYLOAD.length);
  });

  test("chunks in another order (each correctly signed for its own position) fail the chain", async () => {
    const small = new Uint8Array(30).map((_, i) => 0x30 + i);
    const a = buildAwsChunkedBody(small, { signing: CTX, chunkSize: 10 });
    const s = str(a.body);
    const frames = s.split(/(?=[0-9a-f]+;chunk-signature=)/);
    const swapped = latin1([frames[1], frames[0], ...frames.slice(2)].join(""));
    const r = await run(swapped, { ...SIGNED, decodedContentLength: 30 });
    expect(r.error?.reason).toBe("chunk-signature");
    expect(r.data.length).toBe(0);
  });

  test("a chunk without a signature in a signed mode, and a signed header in the unsigned mode", async () => {
    const unsigned = buildAwsChunkedBody(PAYLOAD, { chunkSize: 65536 }).body;
    expect((await run(unsigned, SIGNED)).error?.reason).toBe("framing");
    const r = await run(BODY, { mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", decodedContentLength: PAYLOAD.length });
    expect(r.error?.reason).toBe("framing");
  });
});

describe("malformed framing", () => {
  const sig = ";chunk-signature=" + "0".repeat(64);
  const cases: Array<[string, Uint8Array, string]> = [
    ["a huge hex size", latin1("ffffffffffffffff" + sig + "\r\n"), "chunk-too-large"],
    ["17 hex digits", latin1("10000000000000000" + sig + "\r\n"), "framing"],
    ["a non-hex size", latin1("zz" + sig + "\r\n"), "framing"],
    ["a 0x prefix", latin1("0x10" + sig + "\r\n"), "framing"],
    ["a negative size", latin1("-1" + sig + "\r\n"), "framing"],
    ["a space before the size", latin1(" 10" + sig + "\r\n"), "framing"],
    ["an empty size", latin1(sig + "\r\n"), "framing"],
    ["a bare LF line end", latin1("10000" + sig + "\n"), "framing"],
    ["another chunk extension", latin1("10000;foo=bar" + sig + "\r\n"), "framing"],
    ["a line with no end", latin1("1".repeat(2000)), "framing"],
  ];
  for (const [name, head, reason] of cases) {
    test(`${name} is rejected before any data is read`, async () => {
      const src = source(head, head.length, "endless");
      const r = await run(src, SIGNED);
      expect(r.error?.reason).toBe(reason as PayloadError["reason"]);
      expect(r.error?.status).toBe(400);
      expect(r.data.length).toBe(0);
      expect(src.pulledBytes()).toBeLessThanOrEqual(head.length + 65536); // no attempt to buffer a huge chunk
      expect(src.cancelled()).toBeDefined(); // the request body is cancelled
    });
  }

  test("a chunk extension after a valid chunk signature", async () => {
    const sig = BUILT.chunkSignatures[0]!;
    const r = await run(replaceOnce(BODY, sig + "\r\n", sig + ";foo=bar\r\n"), SIGNED);
    expect(r.error?.reason).toBe("framing");
    expect(r.data.length).toBe(0);
  });

  test("a chunk above a configured cap", async () => {
    const r = await run(BODY, { ...SIGNED, maxChunkSize: 65535 });
    expect(r.error?.reason).toBe("chunk-too-large");
  });

  test("chunk data not followed by CRLF", async () => {
    const s = str(BODY);
    const at = s.indexOf("\r\n", s.indexOf("\r\n") + 2 + 65536 - 1); // the CRLF after chunk 1's data
    for (const bad of ["XX", "\rX", "\n\r", "\n", "X\n", "\n\n"]) {
      const r = await run(latin1(s.slice(0, at) + bad + s.slice(at + 2)), SIGNED);
      expect(r.error?.reason).toBe("framing");
      expect(r.data.length).toBeLessThan(PAYLOAD.length);
    }
  });

  test("bytes after the final chunk", async () => {
    for (const extra of ["x", "\r\n", "0\r\n\r\n"]) {
      const r = await run(cat(BODY, latin1(extra)), SIGNED);
      expect(r.error?.reason).toBe("framing");
      expect(r.data.length).toBeLessThan(PAYLOAD.length); // the upstream never gets the whole body
    }
  });

  test("a trailer in the non-trailer signed mode", async () => {
    const withTrailer = latin1(str(BODY).slice(0, -2) + "x-amz-checksum-crc32:AAAAAA==\r\n\r\n");
    expect((await run(withTrailer, SIGNED)).error?.reason).toBe("framing");
  });
});

describe("truncation and lengths", () => {
  const small = new Uint8Array(40).map((_, i) => 0x41 + (i % 26));
  const body = buildAwsChunkedBody(small, { signing: CTX, chunkSize: 16 }).body;
  const opts: DecodeOptions = { ...SIGNED, decodedContentLength: 40 };

  test("every proper prefix of the body is IncompleteBody, never a complete payload", async () => {
    for (let n = 0; n < body.length; n++) {
      const r = await run(body.subarray(0, n), opts);
      if (!r.error) throw new Error(`prefix ${n} decoded cleanly`);
      expect(r.error.code).toBe("IncompleteBody");
      expect(r.data.length).toBeLessThan(40);
    }
    expect((await run(body, opts)).data.length).toBe(40);
  });

  test("a source that errors mid-body (client disconnect) is IncompleteBody", async () => {
    const r = await run(source(BODY.subarray(0, 30_000), 10_000, "error"), SIGNED);
    expect(r.error?.code).toBe("IncompleteBody");
    expect(r.error?.reason).toBe("truncated");
  });

  test("fewer decoded bytes than x-amz-decoded-content-length", async () => {
    const r = await run(BODY, { ...SIGNED, decodedContentLength: PAYLOAD.length + 1 });
    expect(r.error?.code).toBe("IncompleteBody");
    expect(r.error?.reason).toBe("short");
  });

  test("more decoded bytes than declared: refused at the chunk header, before its data", async () => {
    const r = await run(BODY, { ...SIGNED, decodedContentLength: 65536 + 10 });
    expect(r.error?.reason).toBe("too-long");
    expect(r.data.length).toBe(65536); // chunk 1 fitted; chunk 2's header announced too much
    // (nothing of chunk 2's data needs to arrive for the refusal)
    const head2 = str(BODY).indexOf("\r\n", str(BODY).indexOf(BUILT.chunkSignatures[1]!)) + 2;
    expect((await run(BODY.subarray(0, head2), { ...SIGNED, decodedContentLength: 65536 + 10 })).error?.reason).toBe("too-long");
    const r0 = await run(BODY, { ...SIGNED, decodedContentLength: 0 });
    expect(r0.error?.reason).toBe("too-long");
    expect(r0.data.length).toBe(0);
  });

  test("S3's 8 KiB minimum, when enforced, applies to every chunk but the last", async () => {
    const opt = { ...opts, minChunkSize: 8192 };
    expect((await run(body, opt)).error?.reason).toBe("chunk-too-small");
    const oneChunk = buildAwsChunkedBody(small, { signing: CTX, chunkSize: 64 }).body;
    expect((await run(oneChunk, opt)).error).toBeUndefined();
    const data = new Uint8Array(8192 * 2).fill(0x41);
    const at = (chunkSize: number) => run(buildAwsChunkedBody(data, { signing: CTX, chunkSize }).body, { ...SIGNED, decodedContentLength: data.length, minChunkSize: 8192 });
    expect((await at(8191)).error?.reason).toBe("chunk-too-small");
    expect((await at(8192)).error).toBeUndefined();
  });

  test("an empty payload", async () => {
    const empty = buildAwsChunkedBody(new Uint8Array(0), { signing: CTX, chunkSize: 64 }).body;
    const r = await run(empty, { ...SIGNED, decodedContentLength: 0 });
    expect(r.error).toBeUndefined();
    expect(r.data.length).toBe(0);
  });
});

describe("trailers", () => {
  const payload = new Uint8Array(1000).fill(0x55);
  const crc = checksumBase64("CRC32", payload);
  const opts: DecodeOptions = { mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", decodedContentLength: 1000, trailer: "x-amz-checksum-crc32" };
  const body = (trailers: Array<[string, string]>) => buildAwsChunkedBody(payload, { chunkSize: 400, trailers }).body;

  test("well-formed passes (control)", async () => {
    expect((await run(body([["x-amz-checksum-crc32", crc]]), opts)).error).toBeUndefined();
  });

  const bad: Array<[string, Array<[string, string]>]> = [
    ["missing", []],
    ["undeclared", [["x-amz-checksum-sha1", checksumBase64("SHA1", payload)]]],
    ["repeated", [["x-amz-checksum-crc32", crc], ["x-amz-checksum-crc32", crc]]],
    ["not base64 of 4 bytes", [["x-amz-checksum-crc32", "AAAA"]]],
    ["a signature in the unsigned mode", [["x-amz-checksum-crc32", crc], ["x-amz-trailer-signature", "0".repeat(64)]]],
    ["an unrelated header", [["x-amz-checksum-crc32", crc], ["x-foo", "1"]]],
    ["too many lines", Array.from({ length: 9 }, () => ["x-amz-checksum-crc32", crc] as [string, string])],
  ];
  for (const [name, trailers] of bad) {
    test(`${name} trailer -> InvalidRequest, body not completed`, async () => {
      const r = await run(body(trailers), opts);
      expect(r.error?.code).toBe("InvalidRequest");
      expect(r.error?.reason).toBe("trailer");
      expect(r.data.length).toBeLessThan(1000);
    });
  }

  test("too many trailer lines are refused as they come, not once the trailer section ends", async () => {
    const lines = Array.from({ length: 9 }, (_, i) => `x-amz-meta-${i}:1\r\n`).join("");
    const r = await run(latin1(str(body([])).slice(0, -2) + lines), opts);
    expect(r.error?.reason).toBe("trailer");
  });

  test("the trailer signature must be the last trailer line", async () => {
    const signedOpts: DecodeOptions = { mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", signing: CTX, decodedContentLength: 1000, trailer: "x-amz-checksum-crc32" };
    const built = str(buildAwsChunkedBody(payload, { signing: CTX, chunkSize: 400, trailers: [["x-amz-checksum-crc32", crc]] }).body);
    expect((await run(latin1(built), signedOpts)).error).toBeUndefined(); // (control)
    const m = /(x-amz-checksum-crc32:[^\r]*\r\n)(x-amz-trailer-signature:[^\r]*\r\n)\r\n$/.exec(built)!;
    const swapped = built.slice(0, m.index) + m[2] + m[1] + "\r\n";
    const r = await run(latin1(swapped), signedOpts);
    expect(r.error?.reason).toBe("trailer");
    expect(r.data.length).toBeLessThan(1000);
  });

  test("a trailer line without a colon", async () => {
    const b = latin1(str(body([])).slice(0, -2) + "garbage\r\n\r\n");
    expect((await run(b, opts)).error?.reason).toBe("trailer");
  });
});

describe("options are validated before any byte is read", () => {
  const src = () => source(BODY).stream;
  const err = (opts: DecodeOptions) => {
    try {
      decodeAwsChunked(src(), opts);
    } catch (e) {
      return e;
    }
    return undefined;
  };
  test("bad headers throw PayloadError synchronously", () => {
    const unsigned: DecodeOptions = { mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", decodedContentLength: 10 };
    expect((err({ ...unsigned, trailer: "x-amz-checksum-md5" }) as PayloadError).code).toBe("InvalidRequest");
    expect((err({ ...unsigned, decodedContentLength: -1 }) as PayloadError).code).toBe("InvalidRequest");
    expect((err({ ...unsigned, decodedContentLength: NaN }) as PayloadError).code).toBe("InvalidRequest");
    expect((err({ ...SIGNED, trailer: "x-amz-checksum-crc32" }) as PayloadError).code).toBe("InvalidRequest");
    expect((err({ ...unsigned, trailer: "x-amz-checksum-crc32", expect: { checksum: { algorithm: "SHA1", value: "x" } } }) as PayloadError).message).toContain("Multiple");
    expect((err({ ...unsigned, mode: "UNSIGNED-PAYLOAD" as never }) as PayloadError).code).toBe("InvalidRequest");
    expect(err({ ...SIGNED, signing: undefined })).toBeInstanceOf(TypeError);
  });
});

describe("backpressure and memory", () => {
  const CHUNK = 65536;
  const big = new Uint8Array(CHUNK * 20 + 5).map((_, i) => i & 255);
  const signed = buildAwsChunkedBody(big, { signing: CTX, chunkSize: CHUNK }).body;
  const opts: DecodeOptions = { ...SIGNED, decodedContentLength: big.length };

  for (const piece of [16384, 100_000]) {
    test(`holds at most one chunk plus one source piece (${piece}-byte source pieces)`, async () => {
      const src = source(signed, piece);
      const { stream, finished } = decodeAwsChunked(src.stream, opts);
      const reader = stream.getReader();
      let got = 0;
      let maxHeld = 0;
      const first = await reader.read();
      got += first.value!.length;
      // One read must not drain the source.
      expect(src.pulledBytes()).toBeLessThan(2 * CHUNK + piece);
      for (;;) {
        maxHeld = Math.max(maxHeld, src.pulledBytes() - got);
        const r = await reader.read();
        if (r.done) break;
        got += r.value.length;
        await Bun.sleep(0); // a slow consumer
      }
      await finished;
      expect(got).toBe(big.length);
      expect(maxHeld).toBeLessThanOrEqual(CHUNK + piece + 200); // + framing of the chunks in a piece
    });
  }

  test("a held chunk dripped in tiny pieces is kept in a few buffers, not one view per piece (a 16 MiB chunk in 16-byte TCP segments held ~220 MiB of views, the byte budget counting 15)", async () => {
    const payload = new Uint8Array(1024 * 1024 + 8192).map((_, i) => (i * 7) & 255);
    const body = buildAwsChunkedBody(payload, { signing: CTX, chunkSize: 1024 * 1024 }).body;
    const { stream, finished } = decodeAwsChunked(source(body, 16).stream, { ...SIGNED, decodedContentLength: payload.length });
    const parts: Uint8Array[] = [];
    for await (const p of stream) parts.push(p);
    await finished;
    expect(cat(...parts)).toEqual(payload);
    // one 64 KiB staging buffer per 64 KiB held, where every 16-byte piece used to be its own view (66,048 of them)
    expect(parts.length).toBeLessThanOrEqual(20);
  });

  test("a held chunk dripped as tiny pieces between large ones costs about its size (each tiny piece took a 64 KiB staging buffer of its own: 16x the chunk)", async () => {
    const payload = new Uint8Array(1024 * 1024 + 8192).map((_, i) => (i * 7) & 255);
    const body = buildAwsChunkedBody(payload, { signing: CTX, chunkSize: 1024 * 1024 }).body;
    // 16 bytes, then 4096, then 16, ...: every tiny piece is staged, every large one kept as a view
    let off = 0;
    let small = true;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (off >= body.length) return c.close();
        const n = small ? 16 : 4096;
        small = !small;
        c.enqueue(body.slice(off, off + n));
        off += n;
      },
    });
    const { stream: out, finished } = decodeAwsChunked(stream, { ...SIGNED, decodedContentLength: payload.length });
    const parts: Uint8Array[] = [];
    for await (const p of out) parts.push(p);
    await finished;
    expect(cat(...parts)).toEqual(payload);
    const buffers = new Set(parts.map((p) => p.buffer));
    let held = 0;
    for (const b of buffers) held += b.byteLength;
    expect(held).toBeLessThanOrEqual(payload.length + 2 * 65536);
  });

  test("a consumer cancel cancels the request body and rejects `finished`", async () => {
    const src = source(signed, 16384);
    const { stream, finished } = decodeAwsChunked(src.stream, opts);
    const reader = stream.getReader();
    await reader.read();
    await reader.cancel(new Error("upstream gone"));
    expect(src.cancelled()).toBeDefined();
    await expect(finished).rejects.toThrow("upstream gone");
  });
});

describe("held chunks count against a process-wide budget (a signed chunk is held whole until its signature is checked)", () => {
  const BIG = new Uint8Array(3 * 1024 * 1024).fill(0x63); // one 3 MiB chunk
  const big = buildAwsChunkedBody(BIG, { signing: CTX, chunkSize: BIG.length }).body;
  const bigOpts = { mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", signing: CTX, decodedContentLength: BIG.length } as const;

  test("a chunk above 1 MiB whose bytes beyond the first MiB do not fit the budget → 503 SlowDown, nothing released; a fitting one passes and gives its bytes back", async () => {
    const budget = new ByteBudget(4 * 1024 * 1024);
    expect(budget.tryReserve(3 * 1024 * 1024)).toBe(true); // another upload holds 3 MiB: 1 MiB left, the chunk needs 2
    const refused = await run(big, { ...bigOpts, budget });
    expect(refused.error?.code).toBe("SlowDown");
    expect(refused.error?.status).toBe(503);
    expect(refused.data.length).toBe(0);
    expect(budget.reserved).toBe(3 * 1024 * 1024);
    budget.release(3 * 1024 * 1024);
    const ok = await run(big, { ...bigOpts, budget });
    expect(ok.error).toBeUndefined();
    expect(ok.data).toEqual(BIG);
    expect(budget.reserved).toBe(0);
  });

  test("a held chunk's reservation is given back when the body fails (forged signature, truncation)", async () => {
    const budget = new ByteBudget(64 * 1024 * 1024);
    const sig = /chunk-signature=([0-9a-f]{64})/.exec(str(big))![1]!;
    expect((await run(replaceOnce(big, sig, flipHex(sig)), { ...bigOpts, budget })).error?.code).toBe("SignatureDoesNotMatch");
    expect(budget.reserved).toBe(0);
    expect((await run(big.slice(0, 2 * 1024 * 1024), { ...bigOpts, budget })).error?.code).toBe("IncompleteBody");
    expect(budget.reserved).toBe(0);
  });

  test("a chunk is counted as its bytes arrive, not as its size line announces it: stalled uploads announcing 16 MiB chunks hold nothing of the budget (16 of them took all 256 MiB and refused everyone's uploads)", async () => {
    const budget = new ByteBudget(2 * 1024 * 1024);
    const header = latin1(`${(16 * 1024 * 1024).toString(16)};chunk-signature=${"0".repeat(64)}\r\n`);
    const stalled = (body: Uint8Array) => {
      let sent = false;
      let pulled = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent) return new Promise<void>(() => {}); // the client stops sending
          sent = true;
          pulled = body.length;
          c.enqueue(body);
        },
      }, { highWaterMark: 0 });
      return { stream, pulled: () => pulled };
    };
    const opts = { mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", signing: CTX, decodedContentLength: 16 * 1024 * 1024 } as const;
    const readers: Array<{ cancel(reason?: unknown): Promise<void> }> = [];
    const finishes: Promise<void>[] = [];
    const failed: string[] = [];
    const sources = Array.from({ length: 16 }, () => stalled(cat(header, new Uint8Array(1).fill(0x61))));
    for (const src of sources) {
      const { stream, finished } = decodeAwsChunked(src.stream, { ...opts, budget });
      finishes.push(finished.catch((e: PayloadError) => void failed.push(e.code)));
      const reader = stream.getReader();
      void reader.read().catch(() => {});
      readers.push(reader);
    }
    while (sources.some((x) => x.pulled() === 0)) await Bun.sleep(1); // (until every header has been read)
    await Bun.sleep(0);
    expect(budget.reserved).toBe(0);
    // one that sends 1.5 MiB of a 3 MiB chunk holds its bytes beyond the first MiB
    const half = stalled(cat(latin1(`${(3 * 1024 * 1024).toString(16)};chunk-signature=${"0".repeat(64)}\r\n`), new Uint8Array(1536 * 1024)));
    const { stream, finished } = decodeAwsChunked(half.stream, { ...opts, decodedContentLength: 3 * 1024 * 1024, budget });
    finishes.push(finished.catch(() => {}));
    const reader = stream.getReader();
    void reader.read().catch(() => {});
    readers.push(reader);
    for (let i = 0; budget.reserved === 0 && failed.length === 0 && i < 5000; i++) await Bun.sleep(1);
    expect(failed).toEqual([]);
    expect(budget.reserved).toBe(512 * 1024);
    for (const r of readers) await r.cancel("test done").catch(() => {});
    await Promise.all(finishes);
    expect(budget.reserved).toBe(0);
  });

  test("the SDKs' 64 KiB chunks are not counted: they pass with the budget used up", async () => {
    const budget = new ByteBudget(0);
    const r = await run(BODY, { ...SIGNED, budget });
    expect(r.error).toBeUndefined();
    expect(r.data).toEqual(PAYLOAD);
  });
});
