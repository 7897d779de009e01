/**
 * resumeThrough: the rest of a fill's body after a disk error is taken from the upstream only as
 * the exact 206 of the fill's own version.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { resumeThrough } from "../../src/cache/fill-tap.ts";
import type { ObjectMeta } from "../../src/cache/types.ts";

setDefaultTimeout(30_000);

const meta = { key: "b/k", headers: { etag: '"aaa"', "content-length": "100" }, storedAt: 0, expiresAt: 1, size: 100 } as unknown as ObjectMeta;

function answering(status: number, headers: Record<string, string>) {
  const asked: Record<string, string>[] = [];
  const upstream = async (extra: Record<string, string>) => {
    asked.push(extra);
    return new Response(new Uint8Array(40), { status, headers });
  };
  return { upstream, asked };
}

describe("resumeThrough", () => {
  test("the fill's version: its bytes", async () => {
    const { upstream, asked } = answering(206, { "content-range": "bytes 60-99/100", etag: '"aaa"' });
    const body = await resumeThrough(upstream, meta)!(60, 100, new AbortController().signal);
    expect(body).toBeDefined();
    expect(asked[0]).toEqual({ range: "bytes=60-99", "if-match": '"aaa"' });
  });

  // A secondary replica that ignores If-Match answered its own version (same size, other bytes):
  // its bytes were appended to the fill's, and every follower got a mixed body as a complete 200.
  test("another version's 206 (an upstream that ignores If-Match) is no resume", async () => {
    const { upstream } = answering(206, { "content-range": "bytes 60-99/100", etag: '"bbb"' });
    expect(await resumeThrough(upstream, meta)!(60, 100, new AbortController().signal)).toBeUndefined();
  });

  test("a 206 without an ETag is no resume", async () => {
    const { upstream } = answering(206, { "content-range": "bytes 60-99/100" });
    expect(await resumeThrough(upstream, meta)!(60, 100, new AbortController().signal)).toBeUndefined();
  });
});
