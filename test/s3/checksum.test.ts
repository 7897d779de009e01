import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { createHash } from "node:crypto";
import { crc32 as zlibCrc32 } from "node:zlib";
import { Crc32cJs, Crc64NvmeJs } from "@aws-sdk/checksums/crc";
import {
  CHECKSUM_ALGORITHMS,
  algorithmFromHeaderName,
  base64Length,
  checksumBase64,
  checksumHeaderName,
  create,
  isValidChecksumValue,
  type ChecksumAlgorithm,
} from "../../src/s3/checksum.ts";
import { crc32c } from "../../src/s3/checksum/crc32c.ts";
import { PayloadVerifier, expectationsFromHeaders, verifyPayloadStream } from "../../src/s3/checksum/verify.ts";
import { PayloadError } from "../../src/s3/aws-chunked/errors.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const enc = (s: string) => new TextEncoder().encode(s);
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const be = (hex: string) => Buffer.from(hex, "hex").toString("base64");

function randomBytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 255;
  }
  return out;
}

/** Independent implementations (node:zlib, node:crypto, the AWS SDK's JS CRCs). */
async function reference(alg: ChecksumAlgorithm, data: Uint8Array): Promise<string> {
  switch (alg) {
    case "CRC32": {
      const v = Buffer.alloc(4);
      v.writeUInt32BE(zlibCrc32(data));
      return v.toString("base64");
    }
    case "CRC32C": {
      const c = new Crc32cJs();
      c.update(data);
      return b64(await c.digest());
    }
    case "CRC64NVME": {
      const c = new Crc64NvmeJs();
      c.update(data);
      return b64(await c.digest());
    }
    case "SHA1":
      return createHash("sha1").update(data).digest("base64");
    case "SHA256":
      return createHash("sha256").update(data).digest("base64");
  }
}

describe("check values", () => {
  const check = enc("123456789");
  test("published check values of \"123456789\" (big-endian digests)", () => {
    expect(checksumBase64("CRC32", check)).toBe(be("cbf43926"));
    expect(checksumBase64("CRC32C", check)).toBe(be("e3069283"));
    expect(checksumBase64("CRC64NVME", check)).toBe(be("ae8b14860a799888"));
    expect(checksumBase64("SHA1", check)).toBe(be("f7c3bc1d808e04732adf679965ccc34ca7ae3441"));
    expect(checksumBase64("SHA256", check)).toBe(be("15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"));
    expect(crc32c(check)).toBe(0xe3069283);
  });

  test("S3's values for the empty body", () => {
    expect(checksumBase64("CRC32", new Uint8Array(0))).toBe("AAAAAA==");
    expect(checksumBase64("CRC32C", new Uint8Array(0))).toBe("AAAAAA==");
    expect(checksumBase64("CRC64NVME", new Uint8Array(0))).toBe("AAAAAAAAAAA=");
    expect(checksumBase64("SHA1", new Uint8Array(0))).toBe("2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
    expect(checksumBase64("SHA256", new Uint8Array(0))).toBe("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
  });

  test("the CRC32C of AWS's 66560 'a' chunked-upload example is its documented trailer sOO8/Q==", () => {
    expect(checksumBase64("CRC32C", new Uint8Array(66560).fill(97))).toBe("sOO8/Q==");
  });

  test("Bun.hash.crc32 continues from a previous value", () => {
    const a = enc("12345");
    const b = enc("6789");
    expect(Bun.hash.crc32(b, Bun.hash.crc32(a))).toBe(0xcbf43926);
  });
});

describe("incremental = one-shot = independent implementations", () => {
  const data = randomBytes(100_003, 7);
  for (const alg of CHECKSUM_ALGORITHMS) {
    test(alg, async () => {
      const want = await reference(alg, data);
      expect(checksumBase64(alg, data)).toBe(want);
      // Splits of every awkward size: 1 byte, below/above the 16-byte slicing block, odd sizes.
      for (const step of [1, 3, 15, 16, 17, 4095, 65536]) {
        const c = create(alg);
        for (let o = 0; o < data.length; o += step) c.update(data.subarray(o, o + step));
        expect(c.digestBase64()).toBe(want);
      }
      // Unaligned views (byteOffset not a multiple of 4/8).
      const shifted = new Uint8Array(data.length + 3);
      shifted.set(data, 3);
      expect(checksumBase64(alg, shifted.subarray(3))).toBe(want);
      // Short inputs around the block size.
      for (let n = 0; n <= 40; n++) expect(checksumBase64(alg, data.subarray(0, n))).toBe(await reference(alg, data.subarray(0, n)));
    });
  }

  test("digest() can be called twice and returns the same value", () => {
    const c = create("SHA256");
    c.update(enc("x"));
    expect(c.digestBase64()).toBe(c.digestBase64());
  });
});

describe("names and values", () => {
  test("header names", () => {
    expect(checksumHeaderName("CRC64NVME")).toBe("x-amz-checksum-crc64nvme");
    expect(algorithmFromHeaderName("X-Amz-Checksum-CRC32C")).toBe("CRC32C");
    expect(algorithmFromHeaderName("x-amz-checksum-type")).toBeUndefined();
    expect(algorithmFromHeaderName("x-amz-checksum-algorithm")).toBeUndefined();
    expect(algorithmFromHeaderName("x-amz-meta-crc32")).toBeUndefined();
  });

  test("value validation: base64 of exactly the digest length", () => {
    for (const alg of CHECKSUM_ALGORITHMS) {
      const v = checksumBase64(alg, enc("abc"));
      expect(v.length).toBe(base64Length(alg));
      expect(isValidChecksumValue(alg, v)).toBe(true);
    }
    expect(isValidChecksumValue("CRC32", "AAAAAAA=")).toBe(false); // wrong length
    expect(isValidChecksumValue("CRC32", "AAAAAA=")).toBe(false);
    expect(isValidChecksumValue("CRC32", "AA*AAA==")).toBe(false);
    expect(isValidChecksumValue("CRC32", "AAAAAB==")).toBe(false); // non-canonical padding bits
    expect(isValidChecksumValue("CRC64NVME", "AAAAAA==")).toBe(false);
  });
});

// ---------------------------------------------------------------- body verification

const BODY = randomBytes(70_000, 3);
const sha256Hex = createHash("sha256").update(BODY).digest("hex");
const md5 = createHash("md5").update(BODY).digest("base64");

function pieces(data: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (off >= data.length) return c.close();
      c.enqueue(data.slice(off, off + size));
      off += size;
    },
  }, { highWaterMark: 0 });
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<{ bytes: number; error?: unknown }> {
  const reader = stream.getReader();
  let bytes = 0;
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) return { bytes };
      bytes += r.value.length;
    }
  } catch (error) {
    return { bytes, error };
  }
}

describe("expectationsFromHeaders", () => {
  test("reads the hash, MD5, one checksum and the length", () => {
    const crc = checksumBase64("CRC32", BODY);
    const exp = expectationsFromHeaders(new Headers({
      "x-amz-content-sha256": sha256Hex.toUpperCase(),
      "content-md5": md5,
      "x-amz-checksum-crc32": crc,
      "x-amz-checksum-type": "FULL_OBJECT",
      "content-length": String(BODY.length),
    }));
    expect(exp).toEqual({ sha256Hex, contentMd5: md5, checksum: { algorithm: "CRC32", value: crc }, length: BODY.length });
    expect(expectationsFromHeaders({ "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD" })).toEqual({});
    expect(expectationsFromHeaders({ "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER" })).toEqual({});
  });

  test("with the signed names of a verified request, a checksum header is read only when signed", () => {
    const crc = checksumBase64("CRC32", BODY);
    const h = new Headers({ "x-amz-checksum-crc32": crc, "content-length": String(BODY.length) });
    expect(expectationsFromHeaders(h, { signed: ["content-length", "host", "x-amz-checksum-crc32"] }).checksum).toEqual({ algorithm: "CRC32", value: crc });
    // (the verifier refuses an unsigned x-amz-* header before this is asked; here it shows the lookup is skipped)
    expect(expectationsFromHeaders(h, { signed: ["content-length", "host"] }).checksum).toBeUndefined();
    // the two-checksum refusal still holds among signed ones
    const two = new Headers({ "x-amz-checksum-crc32": crc, "x-amz-checksum-sha1": checksumBase64("SHA1", BODY) });
    expect(() => expectationsFromHeaders(two, { signed: ["x-amz-checksum-crc32", "x-amz-checksum-sha1"] })).toThrow("Multiple checksum");
  });

  test("malformed headers get S3's errors", () => {
    const err = (h: Record<string, string>) => {
      try {
        expectationsFromHeaders(h);
      } catch (e) {
        return e as PayloadError;
      }
      throw new Error("no error");
    };
    expect(err({ "content-md5": "not-md5" }).code).toBe("InvalidDigest");
    expect(err({ "content-md5": Buffer.alloc(15).toString("base64") }).code).toBe("InvalidDigest");
    const bad = err({ "x-amz-checksum-crc32": "AAAA" });
    expect([bad.code, bad.message]).toEqual(["InvalidRequest", "Value for x-amz-checksum-crc32 header is invalid."]);
    expect(err({ "x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": checksumBase64("SHA1", BODY) }).message).toContain("Multiple checksum");
    expect(err({ "x-amz-content-sha256": "abc" }).code).toBe("InvalidRequest");
  });
});

describe("verifyPayloadStream", () => {
  test("a matching body passes through byte for byte", async () => {
    const exp = expectationsFromHeaders({
      "x-amz-content-sha256": sha256Hex,
      "content-md5": md5,
      "x-amz-checksum-crc64nvme": checksumBase64("CRC64NVME", BODY),
    });
    const { stream, finished } = verifyPayloadStream(pieces(BODY, 4096), { ...exp, length: BODY.length });
    const out = new Uint8Array(await new Response(stream).arrayBuffer());
    expect(Buffer.from(out).equals(Buffer.from(BODY))).toBe(true);
    await finished;
  });

  const cases: Array<[string, Record<string, string>, string, string]> = [
    ["x-amz-content-sha256", { "x-amz-content-sha256": "0".repeat(64) }, "XAmzContentSHA256Mismatch", "content-sha256"],
    ["Content-MD5", { "content-md5": Buffer.alloc(16).toString("base64") }, "BadDigest", "content-md5"],
    ["x-amz-checksum-crc32", { "x-amz-checksum-crc32": "AAAAAA==" }, "BadDigest", "checksum"],
    ["x-amz-checksum-sha256", { "x-amz-checksum-sha256": checksumBase64("SHA256", "other") }, "BadDigest", "checksum"],
  ];
  for (const [name, headers, code, reason] of cases) {
    for (const withLength of [true, false]) {
      test(`a wrong ${name} errors the stream before the last byte (${withLength ? "with" : "without"} a length)`, async () => {
        const exp = expectationsFromHeaders(headers);
        if (withLength) exp.length = BODY.length;
        const { stream, finished } = verifyPayloadStream(pieces(BODY, 1000), exp);
        const r = await drain(stream);
        expect(r.error).toBeInstanceOf(PayloadError);
        expect((r.error as PayloadError).code as string).toBe(code);
        expect((r.error as PayloadError).reason as string).toBe(reason);
        expect(r.bytes).toBeLessThan(BODY.length); // the consumer never saw a complete body
        expect(r.bytes).toBeGreaterThan(0); // ...but was not held back wholesale either
        await expect(finished).rejects.toBe(r.error);
      });
    }
  }

  test("the CRC32 mismatch message is S3's", async () => {
    const { stream } = verifyPayloadStream(pieces(BODY, 1000), { checksum: { algorithm: "CRC32", value: "AAAAAA==" } });
    expect(((await drain(stream)).error as Error).message).toBe("The CRC32 you specified did not match the calculated checksum.");
  });

  test("shorter and longer than the length", async () => {
    const short = await drain(verifyPayloadStream(pieces(BODY, 1000), { length: BODY.length + 1 }).stream);
    expect((short.error as PayloadError).code).toBe("IncompleteBody");
    const long = await drain(verifyPayloadStream(pieces(BODY, 1000), { length: BODY.length - 1 }).stream);
    expect((long.error as PayloadError).reason).toBe("too-long");
    expect(long.bytes).toBeLessThan(BODY.length - 1);
  });

  test("a source error becomes IncompleteBody and errors the output", async () => {
    let n = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(c) {
        if (n++ === 3) c.error(new Error("client went away"));
        else c.enqueue(new Uint8Array(100));
      },
    });
    const r = await drain(verifyPayloadStream(source, {}).stream);
    expect((r.error as PayloadError).code).toBe("IncompleteBody");
  });

  test("PayloadVerifier with a trailer value set at the end", () => {
    const v = new PayloadVerifier({}, "CRC32C");
    v.update(BODY);
    v.expectTrailer("CRC32C", checksumBase64("CRC32C", BODY));
    v.finish();
    expect(v.computed("CRC32C")).toBe(checksumBase64("CRC32C", BODY));
    const w = new PayloadVerifier({}, "CRC32C");
    w.update(BODY);
    w.expectTrailer("CRC32C", "AAAAAA==");
    expect(() => w.finish()).toThrow("The CRC32C you specified did not match the calculated checksum.");
  });
});
