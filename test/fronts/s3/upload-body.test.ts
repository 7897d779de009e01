/**
 * The S3 front's upload body (upload-body.ts), without a network: which stream goes upstream in
 * each payload mode, with which length and payload hash; the header checks that answer before a
 * byte is read (411, EntityTooLarge, InvalidArgument, InvalidDigest); and the S3 error a failing
 * body is answered with. The re-framed trailer mode is decoded back with the project's decoder.
 */
import { describe, expect, jest, setDefaultTimeout, test } from "bun:test";
import { ProxyError } from "../../../src/errors.ts";
import { awsChunkedEncodedLength, buildAwsChunkedBody, decodeAwsChunked } from "../../../src/s3/aws-chunked.ts";
import { s3ErrorOf } from "../../../src/fronts/s3/fail.ts";
import { bodyFailure, prepareUploadBody, REFRAME_CHUNK_BYTES, type PayloadInfo } from "../../../src/fronts/s3/upload-body.ts";
import { SOURCE_IDLE_MS } from "../../../src/s3/aws-chunked/pump.ts";
import { deriveSigningKey } from "../../../src/s3/sigv4.ts";

setDefaultTimeout(10_000); // explicit: the runner's 5 s default is not a choice made here

const UNSIGNED: PayloadInfo = { mode: "unsigned", hash: "UNSIGNED-PAYLOAD" };
const TRAILER: PayloadInfo = { mode: "streaming-unsigned-trailer", hash: "STREAMING-UNSIGNED-PAYLOAD-TRAILER" };
const sha = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
const crc32 = (b: Uint8Array) => Buffer.from(new Uint8Array(new Uint32Array([Bun.hash.crc32(b)]).buffer).reverse()).toString("base64");
const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff);

/** A PUT as Bun.serve hands it over; `length: null` sends no Content-Length. */
function request(body: Uint8Array, headers: Record<string, string>, length: number | null = body.byteLength): Request {
  const h = new Headers(headers);
  // (without a length, a body on the wire is chunked: the listener gives the header as received)
  if (length !== null) h.set("content-length", String(length));
  else h.set("transfer-encoding", "chunked");
  // A stream body, so no length is inferred from it.
  return new Request("http://proxy/b/k", { method: "PUT", headers: h, body: new Blob([body]).stream(), duplex: "half" } as RequestInit);
}

/** The S3 error code prepareUploadBody threw with. */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ProxyError) {
      const s3 = s3ErrorOf(e)!;
      return `${s3.status} ${s3.code}`;
    }
    throw e;
  }
  throw new Error("expected a refusal");
}

async function drain(body: Uint8Array | ReadableStream<Uint8Array>): Promise<Uint8Array | Error> {
  if (body instanceof Uint8Array) return body;
  try {
    return new Uint8Array(await new Response(body).arrayBuffer());
  } catch (e) {
    return e as Error;
  }
}

describe("header checks, before a byte is read", () => {
  test("no Content-Length on a plain body → 411; no x-amz-decoded-content-length on an aws-chunked one → 411", () => {
    expect(refusal(() => prepareUploadBody(request(bytes(10), {}, null), UNSIGNED, 100))).toBe("411 MissingContentLength");
    expect(refusal(() => prepareUploadBody(request(bytes(10), { "content-encoding": "aws-chunked" }, null), TRAILER, 100))).toBe("411 MissingContentLength");
  });

  test("over the limit (Content-Length, or the decoded length) → 400 EntityTooLarge with S3's details", () => {
    try {
      prepareUploadBody(request(bytes(10), {}, 101), UNSIGNED, 100);
      throw new Error("not refused");
    } catch (e) {
      expect(s3ErrorOf(e as ProxyError)).toMatchObject({ code: "EntityTooLarge", status: 400, details: { ProposedSize: "101", MaxSizeAllowed: "100" } });
    }
    expect(refusal(() => prepareUploadBody(request(bytes(10), { "x-amz-decoded-content-length": "101" }, null), TRAILER, 100))).toBe("400 EntityTooLarge");
  });

  test("a length past 2^53 (up to S3's 64-bit integers) is EntityTooLarge with its exact digits, not InvalidArgument", () => {
    const refused = (name: string, value: string, payload: PayloadInfo) => {
      const h = new Headers({ [name]: value, "transfer-encoding": "chunked" });
      try {
        prepareUploadBody(new Request("http://proxy/b/k", { method: "PUT", headers: h, body: new Blob([bytes(10)]).stream(), duplex: "half" } as RequestInit), payload, 5 * 1024 ** 3);
      } catch (e) {
        const s3 = s3ErrorOf(e as ProxyError)!;
        return [s3.code, s3.details?.ProposedSize];
      }
      return ["accepted"];
    };
    for (const [name, payload] of [["content-length", UNSIGNED], ["x-amz-decoded-content-length", TRAILER]] as const) {
      expect(refused(name, "9007199254740993", payload)).toEqual(["EntityTooLarge", "9007199254740993"]);
      expect(refused(name, "9223372036854775807", payload)).toEqual(["EntityTooLarge", "9223372036854775807"]);
      expect(refused(name, "00000000000000000009007199254740993", payload)).toEqual(["EntityTooLarge", "9007199254740993"]);
      // past 2^63 - 1 it is no integer S3 reads
      expect(refused(name, "9223372036854775808", payload)).toEqual(["InvalidArgument", undefined]);
      expect(refused(name, "99999999999999999999", payload)).toEqual(["InvalidArgument", undefined]);
    }
  });

  test("aws-chunked framing under a non-streaming payload hash, a bad length, a bad Content-MD5, two checksums → S3's 400s", () => {
    expect(refusal(() => prepareUploadBody(request(bytes(10), { "content-encoding": "gzip, aws-chunked" }), UNSIGNED, 100))).toBe("400 InvalidArgument");
    expect(refusal(() => prepareUploadBody(request(bytes(10), { "x-amz-decoded-content-length": "ten" }), TRAILER, 100))).toBe("400 InvalidArgument");
    expect(refusal(() => prepareUploadBody(request(bytes(10), { "content-md5": "not-md5" }), UNSIGNED, 100))).toBe("400 InvalidDigest");
    expect(refusal(() => prepareUploadBody(request(bytes(10), { "x-amz-checksum-crc32": crc32(bytes(10)), "x-amz-checksum-sha1": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" }), UNSIGNED, 100))).toBe(
      "400 InvalidRequest",
    );
  });
});

describe("what goes upstream", () => {
  test("UNSIGNED-PAYLOAD without checksum headers: the client's own stream, its length, UNSIGNED-PAYLOAD (nothing added on the way)", () => {
    const req = request(bytes(1000), {});
    const p = prepareUploadBody(req, UNSIGNED, 10_000);
    expect(p.args.body).toBe(req.body!);
    expect({ length: p.args.contentLength, hash: p.args.payloadHash, finished: p.finished }).toEqual({ length: 1000, hash: "UNSIGNED-PAYLOAD", finished: undefined });
  });

  test("hex SHA-256: forwarded as the payload hash and checked on the way; a mismatch errors the stream and is XAmzContentSHA256Mismatch", async () => {
    const body = bytes(5000);
    const good = prepareUploadBody(request(body, {}), { mode: "sha256", hash: sha(body) }, 10_000);
    expect(good.args.payloadHash).toBe(sha(body));
    expect(await drain(good.args.body)).toEqual(body);
    const bad = prepareUploadBody(request(body, {}), { mode: "sha256", hash: sha(bytes(1)) }, 10_000);
    expect(await drain(bad.args.body)).toBeInstanceOf(Error);
    expect(await bodyFailure(bad)).toMatchObject({ code: "XAmzContentSHA256Mismatch", status: 400 });
    // S3 names both hashes (ClientComputedContentSHA256, S3ComputedContentSHA256), as the front's GET check does
    expect((await bodyFailure(bad))?.details).toEqual({ ClientComputedContentSHA256: sha(bytes(1)), S3ComputedContentSHA256: sha(body) });
  });

  test("a trailer mode is re-framed as STREAMING-UNSIGNED-PAYLOAD-TRAILER with the same algorithm and an exact length, which decodes back to the payload", async () => {
    const payload = bytes(600_000);
    const framed = buildAwsChunkedBody(payload, { chunkSize: 8192, trailers: [["x-amz-checksum-crc32", crc32(payload)]] }).body;
    const p = prepareUploadBody(
      request(framed, { "content-encoding": "aws-chunked", "x-amz-decoded-content-length": String(payload.byteLength), "x-amz-trailer": "x-amz-checksum-crc32" }, null),
      TRAILER,
      1_000_000,
    );
    expect(p.args.awsChunked).toEqual({ decodedLength: payload.byteLength, trailer: "x-amz-checksum-crc32" });
    expect(p.args.contentLength).toBe(awsChunkedEncodedLength(payload.byteLength, "CRC32", REFRAME_CHUNK_BYTES));
    const out = await drain(p.args.body);
    if (out instanceof Error) throw out;
    expect(out.byteLength).toBe(p.args.contentLength!);
    const back = decodeAwsChunked(new Blob([out]).stream(), { mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", decodedContentLength: payload.byteLength, trailer: "x-amz-checksum-crc32", minChunkSize: 8192 });
    expect(new Uint8Array(await new Response(back.stream).arrayBuffer())).toEqual(payload);
    await p.finished;
  });

  test("a chunk under 8 KiB that is not the last is S3's 403 InvalidChunkSizeError; the last may be small", async () => {
    const payload = bytes(20_000);
    const headers = { "content-encoding": "aws-chunked", "x-amz-decoded-content-length": String(payload.byteLength), "x-amz-trailer": "x-amz-checksum-crc32" };
    const small = buildAwsChunkedBody(payload, { chunkSize: 1000, trailers: [["x-amz-checksum-crc32", crc32(payload)]] }).body;
    const p = prepareUploadBody(request(small, headers, null), TRAILER, 100_000);
    expect(await drain(p.args.body)).toBeInstanceOf(Error);
    expect(await bodyFailure(p)).toMatchObject({ code: "InvalidChunkSizeError", status: 403 });
    const ok = buildAwsChunkedBody(payload, { chunkSize: 8192, trailers: [["x-amz-checksum-crc32", crc32(payload)]] }).body; // 8192, 8192, 3616
    expect(await drain(prepareUploadBody(request(ok, headers, null), TRAILER, 100_000).args.body)).not.toBeInstanceOf(Error);
  });

  test("a wrong trailer checksum fails the stream with BadDigest; a body that ends early with IncompleteBody", async () => {
    const payload = bytes(20_000);
    const headers = { "content-encoding": "aws-chunked", "x-amz-decoded-content-length": String(payload.byteLength), "x-amz-trailer": "x-amz-checksum-crc32" };
    const wrong = buildAwsChunkedBody(payload, { chunkSize: 8192, trailers: [["x-amz-checksum-crc32", crc32(bytes(3))]] }).body;
    let p = prepareUploadBody(request(wrong, headers, null), TRAILER, 100_000);
    expect(await drain(p.args.body)).toBeInstanceOf(Error);
    expect(await bodyFailure(p)).toMatchObject({ code: "BadDigest", status: 400 });
    const good = buildAwsChunkedBody(payload, { chunkSize: 8192, trailers: [["x-amz-checksum-crc32", crc32(payload)]] }).body;
    p = prepareUploadBody(request(good.subarray(0, 9000), headers, null), TRAILER, 100_000);
    expect(await drain(p.args.body)).toBeInstanceOf(Error);
    expect(await bodyFailure(p)).toMatchObject({ code: "IncompleteBody", status: 400 });
  });

  test("a signed trailer upload whose chunk arrives steadily over more than S3's idle limit is re-framed whole: only a client gone quiet is timed, not the wait for a held chunk", async () => {
    // STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: each signed chunk is held until its signature
    // is checked, so the re-framing stage waits for the whole chunk. That wait is not the
    // client's silence (the decoder times each read of the client itself): a 1 MiB chunk at
    // 40 KiB/s (25 s, pieces every 2.5 s) was answered 400 RequestTimeout after 20 s.
    const payload = bytes(1024 * 1024);
    const day = "20261207";
    const signing = { signingKey: deriveSigningKey("secret", day, "us-east-1", "s3"), amzDate: `${day}T000000Z`, scope: `${day}/us-east-1/s3/aws4_request`, seedSignature: "a".repeat(64) };
    const framed = buildAwsChunkedBody(payload, { signing, chunkSize: payload.byteLength, trailers: [["x-amz-checksum-crc32", crc32(payload)]] }).body;
    const PIECES = 10;
    const EVERY = (SOURCE_IDLE_MS * 1.25) / PIECES; // 2.5 s apart, 25 s in all
    jest.useFakeTimers();
    try {
      let sent = 0;
      const source = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (sent >= framed.byteLength) return c.close();
          await new Promise((r) => setTimeout(r, EVERY));
          const n = Math.ceil(framed.byteLength / PIECES);
          c.enqueue(framed.slice(sent, sent + n));
          sent += n;
        },
      });
      const headers = new Headers({ "content-encoding": "aws-chunked", "x-amz-decoded-content-length": String(payload.byteLength), "x-amz-trailer": "x-amz-checksum-crc32", "content-length": String(framed.byteLength) });
      const req = new Request("http://proxy/b/k", { method: "PUT", headers, body: source, duplex: "half" } as RequestInit);
      const p = prepareUploadBody(req, { mode: "streaming-trailer", hash: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", signing }, 10_000_000);
      const out = drain(p.args.body);
      let settled = false;
      void out.finally(() => (settled = true));
      for (let i = 0; i < PIECES * 4 && !settled; i++) {
        jest.advanceTimersByTime(EVERY / 2);
        for (let k = 0; k < 50; k++) await Promise.resolve();
      }
      const got = await out;
      expect(got instanceof Error ? got.message : got.byteLength).toBe(p.args.contentLength!);
      await p.finished;
    } finally {
      jest.useRealTimers();
    }
  });

  test("reframe: false (XML bodies the front reads itself): the decoded payload, Content-Length = the decoded length", async () => {
    const payload = new TextEncoder().encode("<Delete><Object><Key>k</Key></Object></Delete>");
    const framed = buildAwsChunkedBody(payload, { chunkSize: 8192, trailers: [["x-amz-checksum-crc32", crc32(payload)]] }).body;
    const p = prepareUploadBody(
      request(framed, { "content-encoding": "aws-chunked", "x-amz-decoded-content-length": String(payload.byteLength), "x-amz-trailer": "x-amz-checksum-crc32" }, null),
      TRAILER,
      1000,
      { reframe: false },
    );
    expect(p.args.awsChunked).toBeUndefined();
    expect(p.args.contentLength).toBe(payload.byteLength);
    expect(await drain(p.args.body)).toEqual(payload);
  });

  test("a failure without a verifying stage (the source ended short) is IncompleteBody", async () => {
    const p = prepareUploadBody(request(bytes(10), {}), UNSIGNED, 100);
    expect(await bodyFailure(p)).toMatchObject({ code: "IncompleteBody" });
  });
});
