/** The response-head parser, table-driven: framing decisions, reuse, and hostile heads. */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { type HeadParse, MAX_HEAD, parseResponseHead, type ResponseHead } from "../../../src/s3/http1/head.ts";
import { buildRequestHead } from "../../../src/s3/http1/request.ts";
import { cellsPerCall } from "../../helpers/alloc.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const bytes = (s: string) => Buffer.from(s, "latin1");
const parse = (wire: string, isHead = false) => parseResponseHead(bytes(wire), isHead);

function head(r: HeadParse): ResponseHead & { end: number } {
  if (r.kind !== "head") throw new Error(`expected a head, got ${JSON.stringify(r)}`);
  return { ...r.head, end: r.end };
}

describe("parseResponseHead: framing and reuse (RFC 9112 §6.3)", () => {
  const cases: Array<[string, string, { framing: string; contentLength?: number; keepAlive: boolean }, boolean?]> = [
    ["Content-Length", "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", { framing: "length", contentLength: 5, keepAlive: true }],
    ["Content-Length 0", "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", { framing: "length", contentLength: 0, keepAlive: true }],
    ["equal duplicate Content-Lengths", "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 3, 3\r\n\r\n", { framing: "length", contentLength: 3, keepAlive: true }],
    ["chunked", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", { framing: "chunked", keepAlive: true }],
    ["chunked, any case and spacing", "HTTP/1.1 200 OK\r\nTransfer-Encoding:  Chunked \r\n\r\n", { framing: "chunked", keepAlive: true }],
    ["smuggling shape: TE and CL → chunked, never reused", "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n", { framing: "chunked", keepAlive: false }],
    ["smuggling shape: CL after TE → chunked, never reused", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 99\r\n\r\n", { framing: "chunked", keepAlive: false }],
    ["chunked on HTTP/1.0 → never reused", "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n", { framing: "chunked", keepAlive: false }],
    ["no length → close-delimited", "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n", { framing: "close", keepAlive: false }],
    ["connection: close", "HTTP/1.1 200 OK\r\ncontent-length: 1\r\nConnection: Close\r\n\r\n", { framing: "length", contentLength: 1, keepAlive: false }],
    ["connection: close among other tokens", "HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: x-foo\r\nconnection: te, close\r\n\r\n", { framing: "length", contentLength: 1, keepAlive: false }],
    ["HTTP/1.0 without keep-alive", "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", { framing: "length", contentLength: 1, keepAlive: false }],
    ["HTTP/1.0 with keep-alive", "HTTP/1.0 200 OK\r\ncontent-length: 1\r\nconnection: Keep-Alive\r\n\r\n", { framing: "length", contentLength: 1, keepAlive: true }],
    ["204 has no body whatever it says; one announcing a body is not reused", "HTTP/1.1 204 No Content\r\ncontent-length: 10\r\n\r\n", { framing: "none", keepAlive: false }],
    ["204 with Content-Length: 0 is reused", "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n", { framing: "none", keepAlive: true }],
    ["204 with Transfer-Encoding is not reused", "HTTP/1.1 204 No Content\r\ntransfer-encoding: chunked\r\n\r\n", { framing: "none", keepAlive: false }],
    ["304 has no body whatever it says", "HTTP/1.1 304 Not Modified\r\ncontent-length: 99\r\ntransfer-encoding: chunked\r\n\r\n", { framing: "none", keepAlive: true }],
    ["205 with an explicit empty body is reused", "HTTP/1.1 205 Reset Content\r\ncontent-length: 0\r\n\r\n", { framing: "none", keepAlive: true }],
    ["205 with a body is not reused", "HTTP/1.1 205 Reset Content\r\ncontent-length: 3\r\n\r\n", { framing: "none", keepAlive: false }],
    ["a response to HEAD has no body", "HTTP/1.1 200 OK\r\ncontent-length: 12345\r\n\r\n", { framing: "none", keepAlive: true }, true],
  ];
  for (const [name, wire, want, isHead] of cases) {
    test(name, () => {
      const h = head(parse(wire, isHead));
      expect(h.framing).toBe(want.framing as ResponseHead["framing"]);
      expect(h.keepAlive).toBe(want.keepAlive);
      expect(h.contentLength).toBe(want.contentLength ?? -1);
      expect(h.end).toBe(wire.length);
    });
  }

  test("TE with CL: the Content-Length field is dropped, whichever comes first (RFC 9112 §6.3: a proxy must not forward it)", () => {
    for (const wire of ["HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nContent-Length: 99\r\n\r\n"]) {
      const h = head(parse(wire));
      expect(h.headers.get("content-length")).toBeNull();
      expect(h.headers.get("transfer-encoding")).toBe("chunked");
    }
    // a plain length stays
    expect(head(parse("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n")).headers.get("content-length")).toBe("3");
  });

  test("equal repeated Content-Lengths are one field of one value (RFC 9110 §8.6), for a GET or a HEAD: never the joined `5, 5` a client would be answered with", () => {
    for (const wire of ["HTTP/1.1 200 OK\r\ncontent-length: 5\r\nContent-Length: 5\r\n\r\n", "HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n", "HTTP/1.1 200 OK\r\ncontent-length: 5 ,5\r\ncontent-length: 5\r\n\r\n"]) {
      for (const isHead of [false, true]) expect(head(parse(wire, isHead)).headers.get("content-length")).toBe("5");
    }
  });

  test("status, reason phrase and headers (values trimmed of SP/HTAB only; repeats joined)", () => {
    const h = head(parse("HTTP/1.1 206 Partial Content\r\nETag: \"e\"\r\nX-Amz-Meta-A: \t x \u00a0 \r\nx-dup: 1\r\nx-dup: 2\r\n\r\nBODY"));
    expect(h.status).toBe(206);
    expect(h.statusText).toBe("Partial Content");
    expect(h.headers.get("etag")).toBe('"e"');
    expect(h.headers.get("x-amz-meta-a")).toBe("x \u00a0");
    expect(h.headers.get("x-dup")).toBe("1, 2");
  });

  test("a status line without a reason phrase", () => {
    expect(head(parse("HTTP/1.1 200\r\ncontent-length: 0\r\n\r\n")).statusText).toBe("");
  });

  test("`end` points just past the blank line; bytes after it are the body", () => {
    const wire = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    expect(head(parse(wire)).end).toBe(wire.length - 2);
  });
});

describe("parseResponseHead: interim and incomplete heads", () => {
  test("1xx (not 101) is interim, with where it ends", () => {
    const wire = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n";
    expect(parse(wire)).toEqual({ kind: "interim", status: 100, end: 25 });
    expect(parse("HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n")).toMatchObject({ kind: "interim", status: 103 });
  });

  test("no blank line yet is incomplete, and the scan resumes near the end (not from 0)", () => {
    const partial = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r";
    const r = parse(partial);
    expect(r).toEqual({ kind: "incomplete", scanFrom: partial.length - 3 });
    const whole = bytes(partial + "\n");
    expect(head(parseResponseHead(whole, false, (r as { scanFrom: number }).scanFrom)).end).toBe(whole.length);
  });

  test("a head with a bare LF is an error before its end is seen: lines ending in bare LF never show the CRLFCRLF awaited", () => {
    expect(parse('HTTP/1.1 200 OK\nContent-Type: text/plain\nETag: "lf"\nContent-Length: 26\n\nabcdefghijklmnopqrstuvwxyz')).toEqual({ kind: "error", message: "invalid characters in upstream response head" });
    expect(parse("HTTP/1.1 200 OK\r\nx-a: 1\n")).toEqual({ kind: "error", message: "invalid characters in upstream response head" });
    expect(parse("\n")).toEqual({ kind: "error", message: "invalid characters in upstream response head" });
    // a CRLF split between two reads is not a bare LF
    const first = "HTTP/1.1 200 OK\r";
    const r = parse(first);
    expect(r).toEqual({ kind: "incomplete", scanFrom: first.length - 3 });
    expect(parseResponseHead(bytes(first + "\ncontent-length: 0\r\n"), false, (r as { scanFrom: number }).scanFrom)).toMatchObject({ kind: "incomplete" });
  });

  test("an empty buffer is incomplete", () => {
    expect(parse("")).toEqual({ kind: "incomplete", scanFrom: 0 });
  });

  test("more than 64 KiB without an end of head is an error, not more waiting", () => {
    const big = "HTTP/1.1 200 OK\r\n" + "x-filler: " + "a".repeat(MAX_HEAD) + "\r\n";
    expect(parse(big)).toEqual({ kind: "error", message: "upstream response head too large" });
    expect(parse(big + "\r\n")).toEqual({ kind: "error", message: "upstream response head too large" });
  });
});

describe("parseResponseHead: hostile heads are errors", () => {
  const bad: Array<[string, string, string]> = [
    ["differing duplicate Content-Length", "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n", "conflicting upstream Content-Length values"],
    ["differing Content-Length list", "HTTP/1.1 200 OK\r\ncontent-length: 3, 4\r\n\r\n", "conflicting upstream Content-Length values"],
    ["Content-Length with a sign", "HTTP/1.1 200 OK\r\ncontent-length: +3\r\n\r\n", "invalid upstream Content-Length"],
    ["negative Content-Length", "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", "invalid upstream Content-Length"],
    ["Content-Length with trailing junk", "HTTP/1.1 200 OK\r\ncontent-length: 12abc\r\n\r\n", "invalid upstream Content-Length"],
    ["empty Content-Length", "HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n", "invalid upstream Content-Length"],
    ["empty member in a Content-Length list", "HTTP/1.1 200 OK\r\ncontent-length: 3,,3\r\n\r\n", "invalid upstream Content-Length"],
    ["Content-Length of 16 digits", "HTTP/1.1 200 OK\r\ncontent-length: 1000000000000000\r\n\r\n", "invalid upstream Content-Length"],
    ["hex Content-Length", "HTTP/1.1 200 OK\r\ncontent-length: 0x10\r\n\r\n", "invalid upstream Content-Length"],
    ["gzip transfer coding", "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n", "unsupported upstream Transfer-Encoding"],
    ["gzip, chunked (a coding we would pass on undecoded)", "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n", "unsupported upstream Transfer-Encoding"],
    ["chunked twice", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n", "unsupported upstream Transfer-Encoding"],
    ["chunked not last", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, identity\r\n\r\n", "unsupported upstream Transfer-Encoding"],
    ["TE with a lookalike token", "HTTP/1.1 200 OK\r\ntransfer-encoding: xchunked\r\n\r\n", "unsupported upstream Transfer-Encoding"],
    ["obs-fold (SP)", "HTTP/1.1 200 OK\r\nx-a: 1\r\n  continued\r\ncontent-length: 0\r\n\r\n", "obsolete line folding in upstream response"],
    ["obs-fold (HTAB) hiding a Transfer-Encoding", "HTTP/1.1 200 OK\r\nx-a: 1\r\n\ttransfer-encoding: chunked\r\ncontent-length: 0\r\n\r\n", "obsolete line folding in upstream response"],
    ["bare LF inside the head", "HTTP/1.1 200 OK\r\nx-a: 1\nx-b: 2\r\ncontent-length: 0\r\n\r\n", "invalid characters in upstream response head"],
    ["bare CR inside the head", "HTTP/1.1 200 OK\r\nx-a: 1\rtransfer-encoding: chunked\r\n\r\n", "invalid characters in upstream response head"],
    ["NUL in a value", "HTTP/1.1 200 OK\r\nx-a: a\0b\r\n\r\n", "invalid characters in upstream response head"],
    ["control character in a value", "HTTP/1.1 200 OK\r\nx-a: a\x01b\r\n\r\n", "invalid characters in upstream response header"],
    ["DEL in a value", "HTTP/1.1 200 OK\r\nx-a: a\x7fb\r\n\r\n", "invalid characters in upstream response header"],
    ["header without colon", "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed upstream response header"],
    ["space before colon (a second Content-Length for a lax parser)", "HTTP/1.1 200 OK\r\ncontent-length : 5\r\n\r\n", "malformed upstream response header"],
    ["empty header name", "HTTP/1.1 200 OK\r\n: v\r\n\r\n", "malformed upstream response header"],
    ["non-token header name", "HTTP/1.1 200 OK\r\nx(a): v\r\n\r\n", "malformed upstream response header"],
    ["malformed status line", "HTTP/1.1 OK\r\ncontent-length: 0\r\n\r\n", "malformed upstream status line"],
    ["two spaces after the version", "HTTP/1.1  200 OK\r\n\r\n", "malformed upstream status line"],
    ["lower-case protocol", "http/1.1 200 OK\r\n\r\n", "malformed upstream status line"],
    ["HTTP/2 status line", "HTTP/2 200 OK\r\ncontent-length: 0\r\n\r\n", "malformed upstream status line"],
    ["HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", "malformed upstream status line"],
    ["not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", "malformed upstream status line"],
    ["leading blank line", "\r\nHTTP/1.1 200 OK\r\n\r\n", "malformed upstream status line"],
    ["status 600", "HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n", "malformed upstream status line"],
    ["status 099", "HTTP/1.1 099 Odd\r\n\r\n", "malformed upstream status line"],
    ["two-digit status", "HTTP/1.1 20 OK\r\n\r\n", "malformed upstream status line"],
    ["101 Switching Protocols", "HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n", "unexpected upstream status 101"],
  ];
  for (const [name, wire, message] of bad) {
    test(name, () => {
      expect(parse(wire)).toEqual({ kind: "error", message });
    });
  }
});

describe("buildRequestHead: header values as bytes", () => {
  test("ASCII heads stay strings; a value's bytes above 0x7F go out as those bytes, text above 0xFF as UTF-8; CR/LF/NUL refused", () => {
    expect(buildRequestHead("GET", "/b/k", "h:1", { range: "bytes=0-1" })).toBe("GET /b/k HTTP/1.1\r\nhost: h:1\r\nrange: bytes=0-1\r\n\r\n");
    const received = Buffer.from("café", "utf8").toString("latin1"); // as a listener hands it over
    const head = buildRequestHead("PUT", "/b/k", "h:1", { "x-amz-meta-name": received, "x-amz-meta-text": "日本" }, 0);
    expect(head).toBeInstanceOf(Uint8Array);
    const text = Buffer.from(head as Uint8Array).toString("utf8");
    expect(text).toContain("x-amz-meta-name: café\r\n");
    expect(text).toContain("x-amz-meta-text: 日本\r\n");
    for (const bad of ["a\rb", "a\nb", "a\0b", "é\r\n"]) expect(buildRequestHead("GET", "/b/k", "h:1", { "x-amz-meta-x": bad })).toBeInstanceOf(Error);
  });
});

describe("the own client's heads: allocation per request", () => {
  test("a GET's request head is one string; a 7-field response head is read without an array or a string per line", async () => {
    const signed = { authorization: `AWS4-HMAC-SHA256 Credential=AKID/20261207/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${"a".repeat(64)}`, "x-amz-date": "20261207T040000Z", "x-amz-content-sha256": "UNSIGNED-PAYLOAD" };
    // (13 strings before: one per piece joined)
    expect((await cellsPerCall(() => buildRequestHead("GET", "/bucket/1k.bin", "127.0.0.1:9000", signed))).string).toBeLessThanOrEqual(1);
    const wire = bytes("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\netag: \"e\"\r\nlast-modified: Mon, 07 Dec 2026 00:00:00 GMT\r\nx-amz-request-id: A\r\nx-amz-id-2: B\r\ndate: Mon, 07 Dec 2026 04:00:00 GMT\r\ncontent-length: 1024\r\n\r\n");
    expect(head(parseResponseHead(wire, false)).statusText).toBe("OK");
    const cells = await cellsPerCall(() => parseResponseHead(wire, false));
    // (27 strings and 3 arrays before: the lines split, the status line matched, Content-Length split)
    expect(cells.Array ?? 0).toBeLessThan(0.5);
    expect(cells.string).toBeLessThanOrEqual(2 + 2 * 7); // the head's text, the reason phrase, each field's name and value
  });
});
