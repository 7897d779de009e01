/**
 * An aws-chunked upload's declared lengths, refused from the headers alike whether its payload is
 * small (x-amz-decoded-content-length at most 64 KiB: read whole) or streamed: a decoded length
 * over 5 GiB, or a Content-Length more than any framing of 5 GiB can take, is S3's EntityTooLarge
 * (ProposedSize, MaxSizeAllowed), unread, nothing sent upstream. The small path answered a 6 GiB
 * Content-Length InvalidRequest (EntityTooLarge only past 2^53), and the streaming one read on,
 * waiting for a body that never came.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { answerOf, bytesOf, chunkedRequest, lines, rawRequest, shortRefusedDrain, startUploadEnv, type UploadEnv } from "./s3-front-upload-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers on a loaded machine need more.
setDefaultTimeout(60_000);

const MAX = String(5 * 1024 ** 3);

// (each body here is shorter than declared: answered once the drain gives up, 0.5 s, not 5-10 s;
// a path that read on instead would still never answer)
shortRefusedDrain();

describe.each(["bun", "node"] as const)("engine %s", (engine) => {
  let env: UploadEnv;
  beforeAll(async () => {
    env = await startUploadEnv({ engine });
  });
  afterAll(() => env.stop());

  // [payload bytes (small: read whole; large: streamed), Content-Length (unsigned) or x-amz-decoded-content-length to declare]
  const cases = [
    ["small", 1000, { contentLength: "6442450944" }],
    ["streamed", 100_000, { contentLength: "6442450944" }],
    ["small", 1000, { contentLength: "36028797018963968" }],
    ["streamed", 100_000, { contentLength: "36028797018963968" }],
    ["small", 1000, { decodedLength: 6442450944 }],
    ["streamed", 100_000, { decodedLength: 6442450944 }],
  ] as const;
  test.each(cases)("%s (%d bytes), declared %o: 400 EntityTooLarge, unread, nothing upstream", async (_, size, declared) => {
    const payload = bytesOf(size, 3);
    const cl = "contentLength" in declared ? declared.contentLength : undefined;
    const dl = "decodedLength" in declared ? declared.decodedLength : undefined;
    const req = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: `127.0.0.1:${env.port}`, path: "/up/framed/huge.bin", payload, chunkSize: 65536, contentLength: cl === undefined, decodedLength: dl });
    const headers = cl === undefined ? req.headers : { ...req.headers, "content-length": cl };
    env.mark();
    // (the body is far shorter than declared: an answer at all means it was refused from the headers)
    const r = await rawRequest(env.port, lines("PUT /up/framed/huge.bin HTTP/1.1", headers), [req.body.subarray(0, 1000)], { timeoutMs: 10_000 });
    const a = await answerOf(new Response(r.body));
    expect({ status: r.status, code: a.code, proposed: /<ProposedSize>(\d+)</.exec(r.body)?.[1], max: /<MaxSizeAllowed>(\d+)</.exec(r.body)?.[1] }).toEqual({
      status: 400,
      code: "EntityTooLarge",
      proposed: cl ?? String(dl),
      max: MAX,
    });
    expect(env.upstreamCalls()).toEqual([]);
  });

  test("a Content-Length longer than the decoded length's framing, under 5 GiB's: 400 InvalidRequest, unread, on both paths", async () => {
    for (const size of [1000, 100_000]) {
      const payload = bytesOf(size, 4);
      const req = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: `127.0.0.1:${env.port}`, path: "/up/framed/long.bin", payload, chunkSize: 65536, contentLength: false });
      env.mark();
      const r = await rawRequest(env.port, lines("PUT /up/framed/long.bin HTTP/1.1", { ...req.headers, "content-length": String(size + 1_000_000) }), [req.body], { timeoutMs: 10_000 });
      expect({ size, status: r.status, code: (await answerOf(new Response(r.body))).code }).toEqual({ size, status: 400, code: "InvalidRequest" });
      expect(env.upstreamCalls()).toEqual([]);
    }
  });
});
