import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { readCapped } from "../../src/http/read-capped.ts";

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
