import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { heapStats } from "bun:jsc";
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from "node:zlib";
import { ProxyError } from "../../src/errors.ts";
import { decodeContent, readCapped, readUpstreamCapped } from "../../src/http/read-capped.ts";

setDefaultTimeout(30_000);

/** A body of `n` bytes in 1 KiB pieces, with no Content-Length (as a chunked upstream answer). */
function streamed(n: number): { body: ReadableStream<Uint8Array>; headers: Headers; read: () => number } {
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent >= n) return c.close();
      const k = Math.min(1024, n - sent);
      sent += k;
      c.enqueue(new Uint8Array(k).fill(120));
    },
  });
  return { body, headers: new Headers(), read: () => sent };
}

describe("readCapped", () => {
  test("a body within the cap is read whole", async () => {
    expect((await readCapped(streamed(3000), 4096))?.byteLength).toBe(3000);
    expect((await readCapped(new Response("hello"), 5))?.byteLength).toBe(5);
    expect((await readCapped(new Response(null), 5))?.byteLength).toBe(0);
  });
  test("a longer body without Content-Length is refused while reading, and not read to its end", async () => {
    const s = streamed(10 * 1024 * 1024);
    expect(await readCapped(s, 4096)).toBeUndefined();
    expect(s.read()).toBeLessThan(64 * 1024);
  });
  test("a declared Content-Length above the cap is refused before reading", async () => {
    const s = streamed(8192);
    expect(await readCapped({ body: s.body, headers: new Headers({ "content-length": "8192" }) }, 4096)).toBeUndefined();
    expect(s.read()).toBeLessThanOrEqual(1024);
  });
  test("a body that fails rejects", async () => {
    const body = new ReadableStream<Uint8Array>({ pull: (c) => c.error(new Error("cut")) });
    await expect(readCapped({ body, headers: new Headers() }, 4096)).rejects.toThrow("cut");
  });
});

describe("readUpstreamCapped: an upstream XML answer decoded from its Content-Encoding", () => {
  const XML = Buffer.from("<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>");
  const answer = (body: Uint8Array, coding?: string) => new Response(body, { headers: coding ? { "content-encoding": coding } : {} });
  const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : Buffer.from(b).toString());

  test("no coding or identity: the bytes as they are; gzip, x-gzip, deflate (zlib or raw), br, and a list of codings: decoded", async () => {
    expect(text(await readUpstreamCapped(answer(XML), 1024))).toBe(XML.toString());
    expect(text(await readUpstreamCapped(answer(XML, "identity"), 1024))).toBe(XML.toString());
    for (const [coding, bytes] of [["gzip", gzipSync(XML)], ["X-Gzip", gzipSync(XML)], ["deflate", deflateSync(XML)], ["deflate", deflateRawSync(XML)], ["br", brotliCompressSync(XML)], ["deflate, gzip", gzipSync(deflateSync(XML))]] as const) {
      expect({ coding, text: text(await readUpstreamCapped(answer(bytes, coding), 1024)) }).toEqual({ coding, text: XML.toString() });
    }
    expect(text(await readUpstreamCapped(answer(new Uint8Array(0), "gzip"), 1024))).toBe("");
  });

  test("a coding it cannot read, or bytes that do not decode: BadGateway; decoded beyond the cap: undefined", async () => {
    for (const [coding, bytes] of [["compress", XML], ["gzip", XML], ["br", Buffer.from("not brotli at all")]] as const) {
      const err = await readUpstreamCapped(answer(bytes, coding), 1024).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ProxyError);
      expect((err as ProxyError).code).toBe("BadGateway");
    }
    const bomb = gzipSync(Buffer.alloc(1024 * 1024, 32));
    expect(bomb.byteLength).toBeLessThan(4096);
    expect(await readUpstreamCapped(answer(bomb, "gzip"), 64 * 1024)).toBeUndefined();
  });

  test("partial: the first part of a coded body decodes as far as it goes", () => {
    const whole = gzipSync(Buffer.from("<Error><Code>SlowDown</Code>" + "<X>filler</X>".repeat(2000) + "</Error>"));
    const out = decodeContent(whole.subarray(0, 200), "gzip", 65536, true);
    expect(Buffer.from(out!).toString()).toStartWith("<Error><Code>SlowDown</Code>");
  });
});

describe("readCapped's memory", () => {
  test("a body dripped in 1-byte pieces is copied as it comes, not kept a piece each (an STS form of 64 KiB held ~65,536 views and buffers, MiBs for 64 KiB)", async () => {
    const total = 64 * 1024;
    let peak = 0;
    Bun.gc(true);
    const base = heapStats().heapSize;
    // each byte its own buffer, as a request stream gives a 1-byte TCP segment; the heap measured every 8,192
    async function* drip() {
      for (let i = 1; i <= total; i++) {
        if (i % 8192 === 0) {
          Bun.gc(true);
          peak = Math.max(peak, heapStats().heapSize - base);
        }
        yield new Uint8Array([i & 255]);
      }
    }
    const pieces = drip();
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        const { done, value } = await pieces.next();
        if (done) c.close();
        else c.enqueue(value);
      },
    }, { highWaterMark: 0 });
    const bytes = await readCapped({ body, headers: new Headers() }, total);
    expect(bytes!.byteLength).toBe(total);
    expect(bytes![1000]).toBe(1001 & 255);
    expect(peak).toBeLessThan(1024 * 1024);
  });
});
