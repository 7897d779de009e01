/**
 * resumeThrough: the rest of a fill's body after a disk error is taken from the upstream only as
 * the exact 206 of the fill's own version.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { resumeThrough } from "../../src/cache/fill-tap.ts";
import type { ObjectMeta } from "../../src/cache/types.ts";
import { fetchedAnswer } from "../../src/http/headers.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { signedFetch } from "../fixtures/s3/testkit.ts";

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

describe("resumeThrough against a store that writes its ETags bare (`ETag: abc123`)", () => {
  // The fill's ETag is the quoted form (quotedEtag, where the answer is read); a store that compares
  // If-Match with its bare tag as text answered 412 to it, and every reader of a fill whose disk
  // failed was cut though the object was unchanged.
  let s3: S3Fixture;
  const BODY = "0123456789abcdefghij";
  let bare = "";
  beforeAll(async () => {
    s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [] });
    bare = (await s3.put("data", "bare.bin", BODY)).etag.replace(/"/g, "");
  });
  afterAll(() => s3?.stop());
  /** The fixture's object through fetch and the proxy's read of a fetched answer (which quotes a bare ETag). */
  const upstream = async (extra: Record<string, string>) => fetchedAnswer(await signedFetch(s3.endpoint, s3.adminCredentials, { method: "GET", path: "/data/bare.bin", headers: extra }));
  const metaOf = (etag: string) => ({ key: "data/bare.bin", headers: { etag, "content-length": "20" }, storedAt: 0, expiresAt: 1, size: 20 }) as unknown as ObjectMeta;

  test("the rest of the object: the store's own form is sent when the quoted one is refused (412); another version is still no resume", async () => {
    s3.faults.set("/data/bare.bin", { kind: "unquotedEtag", literalIfMatch: true });
    try {
      const body = await resumeThrough(upstream, metaOf(`"${bare}"`))!(12, 20, new AbortController().signal);
      expect(body === undefined ? "no resume" : await new Response(body).text()).toBe(BODY.slice(12));
      expect(await resumeThrough(upstream, metaOf('"0123456789abcdef0123456789abcdef"'))!(12, 20, new AbortController().signal)).toBeUndefined();
    } finally {
      s3.faults.delete("/data/bare.bin");
    }
  });
});

