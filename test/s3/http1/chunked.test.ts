/** The chunked decoder, table-driven: every input is also fed in every split and byte by byte. */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { ChunkedDecoder, type ChunkedStatus } from "../../../src/s3/http1/chunked.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

interface Outcome {
  status: ChunkedStatus;
  data: string;
  /** For "done": bytes of the input left after the message. */
  leftover?: number;
  error?: string;
}

/** Feeds `wire` in pieces of the given sizes (the last piece takes the rest). */
function decode(wire: string, pieces: number[] = []): Outcome {
  const d = new ChunkedDecoder();
  const input = Buffer.from(wire, "latin1");
  const out: Uint8Array[] = [];
  const sink = { onChunkData: (c: Uint8Array) => void out.push(c.slice()) };
  let at = 0;
  let status: ChunkedStatus = "more";
  let leftover = 0;
  const sizes = [...pieces, input.length];
  for (const size of sizes) {
    if (status !== "more") break;
    const piece = input.subarray(at, Math.min(input.length, at + size));
    at += piece.length;
    status = d.feed(piece, sink);
    if (status === "done") leftover = piece.length - d.end + (input.length - at);
    if (at >= input.length) break;
  }
  const data = Buffer.concat(out).toString("latin1");
  if (status === "done") return { status, data, leftover };
  if (status === "error") return { status, data, error: d.error };
  return { status, data };
}

/** The same outcome whether fed whole, byte by byte, or split at every position. */
function decodeAllWays(wire: string): Outcome {
  const whole = decode(wire);
  const byByte = decode(wire, Array(wire.length).fill(1));
  expect(byByte.status).toBe(whole.status);
  expect(byByte.error).toBe(whole.error);
  expect(byByte.leftover).toBe(whole.leftover);
  if (whole.status !== "error") expect(byByte.data).toBe(whole.data);
  // Every split point for short inputs; a sample of them for long ones (quadratic otherwise).
  const step = wire.length > 2000 ? Math.ceil(wire.length / 50) : 1;
  for (let i = 1; i < wire.length; i += step) {
    const split = decode(wire, [i]);
    expect(split.status).toBe(whole.status);
    if (whole.status !== "error") expect(split.data).toBe(whole.data);
  }
  return whole;
}

describe("ChunkedDecoder: well-formed bodies", () => {
  const good: Array<[string, string, string, number?]> = [
    ["one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"],
    ["several chunks", "5\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n", "hello 0123456789"],
    ["empty body", "0\r\n\r\n", ""],
    ["upper and lower case hex", "a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n", "0123456789abcdefghijk"],
    ["leading zeros in a size", "0005\r\nhello\r\n000\r\n\r\n", "hello"],
    ["chunk extensions are skipped", "5;name=value;other\r\nhello\r\n0;last\r\n\r\n", "hello"],
    ["whitespace before an extension (BWS)", "5 \t;ext\r\nhello\r\n0\r\n\r\n", "hello"],
    ["quoted extension value", '5;a="x;y"\r\nhello\r\n0\r\n\r\n', "hello"],
    ["trailers are consumed and dropped", "5\r\nhello\r\n0\r\nx-checksum: abc\r\nx-more: y\r\n\r\n", "hello"],
    ["data containing CRLF and digits", "7\r\n\r\n0\r\n\r\n\r\n0\r\n\r\n", "\r\n0\r\n\r\n"],
    ["bytes after the message are left over", "5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n", "hello", 17],
  ];
  for (const [name, wire, data, leftover] of good) {
    test(name, () => {
      expect(decodeAllWays(wire)).toEqual({ status: "done", data, leftover: leftover ?? 0 });
    });
  }

  test("an unfinished body asks for more (no terminating chunk, no final CRLF)", () => {
    for (const wire of ["5\r\nhel", "5\r\nhello\r\n", "5\r\nhello\r\n0\r\n", "5\r\nhello\r\n0\r\nx-t: 1\r\n", "5\r\nhello\r\n0\r\n\r"]) {
      expect(decodeAllWays(wire).status).toBe("more");
    }
  });

  test("a 33-bit size is not wrapped (as a 32-bit parser would, to 5): what follows is data", () => {
    expect(decodeAllWays("100000005\r\nhello\r\n0\r\n\r\n")).toEqual({ status: "more", data: "hello\r\n0\r\n\r\n" });
  });

  test("data is handed out as slices of the input (no copy) and in order", () => {
    const d = new ChunkedDecoder();
    const input = Buffer.from("3\r\nabc\r\n0\r\n\r\n");
    const seen: Uint8Array[] = [];
    expect(d.feed(input, { onChunkData: (c) => void seen.push(c) })).toBe("done");
    expect(seen.length).toBe(1);
    expect(seen[0].buffer).toBe(input.buffer);
    expect(d.end).toBe(input.length);
  });

  test("after done, further input is not the message's", () => {
    const d = new ChunkedDecoder();
    const sink = { onChunkData: () => {} };
    expect(d.feed(Buffer.from("0\r\n\r\n"), sink)).toBe("done");
    expect(d.feed(Buffer.from("5\r\nhello\r\n"), sink)).toBe("done");
    expect(d.end).toBe(0);
  });
});

describe("ChunkedDecoder: hostile bodies are errors", () => {
  const bad: Array<[string, string, string]> = [
    ["non-hex size", "zz\r\nabc\r\n0\r\n\r\n", "invalid chunk size from upstream"],
    ["empty size line", "\r\nabc\r\n0\r\n\r\n", "invalid chunk size from upstream"],
    ["negative size", "-5\r\nhello\r\n0\r\n\r\n", "invalid chunk size from upstream"],
    ["0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", "invalid chunk size from upstream"],
    ["size overflow (13 hex digits, past 2^48)", "1000000000000\r\n", "invalid chunk size from upstream"],
    ["size overflow (64-bit wrap shape)", "ffffffffffffffff\r\n", "invalid chunk size from upstream"],
    ["whitespace before the size", " 5\r\nhello\r\n0\r\n\r\n", "invalid chunk size from upstream"],
    ["bare LF after the size", "5\nhello\r\n0\r\n\r\n", "invalid chunk size from upstream"],
    ["CR not followed by LF after the size", "5\rhello\r\n0\r\n\r\n", "invalid chunk size line from upstream"],
    ["bare LF in an extension", "5;a\nhello\r\n0\r\n\r\n", "invalid chunk extension from upstream"],
    ["NUL in an extension", "5;a\0\r\nhello\r\n0\r\n\r\n", "invalid chunk extension from upstream"],
    ["an extension longer than 4 KiB", `5;${"a".repeat(5000)}\r\nhello\r\n0\r\n\r\n`, "invalid chunk extension from upstream"],
    ["missing CRLF after data (more data than the size said)", "3\r\nhello\r\n0\r\n\r\n", "missing CRLF after chunk data from upstream"],
    ["bare LF after data", "5\r\nhello\n0\r\n\r\n", "missing CRLF after chunk data from upstream"],
    ["CR then junk after data", "5\r\nhello\rX0\r\n\r\n", "missing CRLF after chunk data from upstream"],
    ["bare LF ending the message", "5\r\nhello\r\n0\r\n\n", "malformed chunked trailer from upstream"],
    ["folded trailer line", "0\r\nx-a: 1\r\n continued\r\n\r\n", "malformed chunked trailer from upstream"],
    ["bare LF in a trailer", "0\r\nx-a: 1\nx-b: 2\r\n\r\n", "malformed chunked trailer from upstream"],
    ["NUL in a trailer", "0\r\nx-a: \0\r\n\r\n", "malformed chunked trailer from upstream"],
    ["CR not followed by LF in a trailer", "0\r\nx-a: 1\rx\r\n\r\n", "malformed chunked trailer from upstream"],
    ["CR not followed by LF at the end", "0\r\n\rX", "malformed chunked trailer from upstream"],
    ["trailers larger than 64 KiB", `0\r\n${`x-t: ${"a".repeat(1000)}\r\n`.repeat(70)}\r\n`, "upstream chunked trailers too large"],
  ];
  for (const [name, wire, error] of bad) {
    test(name, () => {
      const r = decodeAllWays(wire);
      expect(r.status).toBe("error");
      expect(r.error).toBe(error);
    });
  }

  test("after an error, the decoder stays failed", () => {
    const d = new ChunkedDecoder();
    const sink = { onChunkData: () => {} };
    expect(d.feed(Buffer.from("zz"), sink)).toBe("error");
    expect(d.feed(Buffer.from("5\r\nhello\r\n0\r\n\r\n"), sink)).toBe("error");
    expect(d.feed(Buffer.alloc(0), sink)).toBe("error");
  });
});
