/**
 * An upstream answer that does not answer the request is not relayed as the object: a 206 to a GET
 * without a Range, a 206 of other bytes than the Range asked for, a 304 to a GET without a
 * condition, a 412 to one without a condition. They were passed through (an uncached bucket): a client reading a ranged download
 * wrote those bytes where it asked for its range. The answers that do match pass as before.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { answersRange } from "../../src/http/range.ts";
import { startInProcess, type InProcessProxy } from "./harness.ts";
import { startBothFronts } from "../helpers/both-fronts.ts";
import { S3Signer } from "../../src/s3/sigv4.ts";

setDefaultTimeout(30_000);

const BODY = "0123456789".repeat(100); // 1000 bytes
let store: ReturnType<typeof Bun.serve>;
let px: InProcessProxy;

beforeAll(async () => {
  store = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      const key = new URL(req.url).pathname.split("/").pop();
      const range = req.headers.get("range");
      const partial = (first: number, last: number) =>
        new Response(BODY.slice(first, last + 1), { status: 206, headers: { "content-range": `bytes ${first}-${last}/1000`, etag: '"e"', "content-type": "text/plain" } });
      if (key === "always412.txt") return new Response(null, { status: 412 });
      if (req.method === "HEAD") return new Response(null, { headers: { "content-length": "1000", etag: '"e"' } });
      if (key === "always206.txt") return partial(0, 9);
      if (key === "garbled206.txt") return new Response(BODY.slice(0, 10), { status: 206, headers: { "content-range": "bytes=0-9 of rgw1.internal", etag: '"e"' } });
      if (key === "bare206.txt") return new Response(BODY.slice(0, 10), { status: 206, headers: { etag: '"e"' } });
      if (key === "shifted.txt" && range !== null) return partial(500, 509);
      if (key === "always304.txt") return new Response(null, { status: 304, headers: { etag: '"e"' } });
      if (key === "honest.txt" && range !== null) {
        const m = /^bytes=(\d+)-(\d+)$/.exec(range);
        if (m) return partial(Number(m[1]), Math.min(Number(m[2]), 999));
        const suffix = /^bytes=-(\d+)$/.exec(range);
        if (suffix) return partial(Math.max(0, 1000 - Number(suffix[1])), 999);
      }
      return new Response(BODY, { headers: { etag: '"e"', "content-type": "text/plain" } });
    },
  });
  px = await startInProcess(
    `server: { address: 127.0.0.1, port: 0 }
logging: { level: error }
buckets:
  - { name: b, path_prefix: /b, s3: { bucket: data, endpoint: "http://127.0.0.1:${store.port}", retry: { max_attempts: 1 } } }
  - { name: c, path_prefix: /c, s3: { bucket: data, endpoint: "http://127.0.0.1:${store.port}", retry: { max_attempts: 1 } }, cache: { enabled: true } }
`,
    { probeIntervalMs: 600_000 },
  );
});
afterAll(async () => {
  await px?.stop();
  store?.stop(true);
});

const get = async (key: string, headers: Record<string, string> = {}, bucket = "b") => {
  const res = await fetch(px.url(`/${bucket}/${key}`), { headers });
  return { status: res.status, body: await res.text(), range: res.headers.get("content-range") };
};

test("a 206 to a GET without a Range is the upstream's failure (502), not the object", async () => {
  const r = await get("always206.txt");
  expect(r.status).toBe(502);
  expect(r.body).toContain("206 Partial Content does not match the request's Range");
});

test("a 206 of other bytes than the Range asked for is the upstream's failure (502)", async () => {
  const r = await get("shifted.txt", { range: "bytes=0-9" });
  expect(r.status).toBe(502);
  expect(r.body).not.toContain("5678");
});

test("a 206 whose Content-Range is no byte range, or missing, is 502 saying so (never the value); a part's read (?partNumber=, S3 front) is 500 InternalError, not relayed", async () => {
  const said = async (key: string) => {
    const res = await fetch(px.url(`/b/${key}`), { headers: { range: "bytes=0-9" } });
    return `${res.status} ${JSON.parse(await res.text()).message}`;
  };
  expect([await said("garbled206.txt"), await said("bare206.txt")]).toEqual([
    "502 The upstream answered 206 Partial Content with a Content-Range the proxy cannot parse (not a byte range)",
    "502 The upstream answered 206 Partial Content without a Content-Range",
  ]);
  const creds = { accessKeyId: "AKIDPARTREAD0001", secretAccessKey: "part-read-secret-0123456789" };
  await using both = await startBothFronts(
    "bun",
    `server: { address: 127.0.0.1, port: 0 }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: data, endpoint: "http://127.0.0.1:${store.port}", retry: { max_attempts: 1 } } }\n` +
      `s3_api: { address: 127.0.0.1, port: 0, credentials: [{ access_key_id: ${creds.accessKeyId}, secret_access_key: ${creds.secretAccessKey}, identity: r, buckets: { b: [read] } }] }\n`,
  );
  const signed = new S3Signer(creds, "us-east-1").signRequest({ method: "GET", host: `127.0.0.1:${both.front.port}`, path: "/b/garbled206.txt", query: [["partNumber", "1"]] });
  const part = await fetch(`${both.front.endpoint}${signed.path}?${signed.query}`, { headers: signed.headers });
  const xml = await part.text();
  expect([part.status, /<Code>(\w+)</.exec(xml)?.[1], part.headers.get("content-range"), xml.includes("rgw1")]).toEqual([500, "InternalError", null, false]);
});

test("a 304 to a GET without a condition is the upstream's failure (502); with If-None-Match it is relayed", async () => {
  expect((await get("always304.txt")).status).toBe(502);
  expect((await get("always304.txt", { "if-none-match": '"e"' })).status).toBe(304);
});

test("a 412 to a GET or HEAD without a condition is the upstream's failure (502), uncached and cached; with If-Match it is relayed", async () => {
  for (const bucket of ["b", "c"]) {
    const r = await get("always412.txt", {}, bucket);
    expect(r.status).toBe(502);
    expect(r.body).toContain("412 Precondition Failed to a request without a condition");
    expect((await fetch(px.url(`/${bucket}/always412.txt`), { method: "HEAD" })).status).toBe(502);
  }
  expect((await get("always412.txt", { "if-match": '"x"' })).status).toBe(412);
});

test("a 206 that answers the Range (explicit, past the end, suffix) is relayed as before", async () => {
  expect(await get("honest.txt", { range: "bytes=10-19" })).toEqual({ status: 206, body: BODY.slice(10, 20), range: "bytes 10-19/1000" });
  expect(await get("honest.txt", { range: "bytes=990-5000" })).toEqual({ status: 206, body: BODY.slice(990), range: "bytes 990-999/1000" });
  expect(await get("honest.txt", { range: "bytes=-5" })).toEqual({ status: 206, body: BODY.slice(995), range: "bytes 995-999/1000" });
  expect((await get("honest.txt")).status).toBe(200);
});

test("answersRange: the Content-Range must be the forwarded range's, read against the size it names", () => {
  expect(answersRange("bytes=0-9", "bytes 0-9/1000")).toBe(true);
  expect(answersRange("bytes=0-", "bytes 0-999/1000")).toBe(true);
  expect(answersRange("bytes=-2000", "bytes 0-999/1000")).toBe(true);
  expect(answersRange("bytes=5-", "bytes 5-9/*")).toBe(true);
  expect(answersRange(undefined, "bytes 0-9/1000")).toBe(false);
  expect(answersRange("bytes=0-9", null)).toBe(false);
  expect(answersRange("bytes=0-9", "bytes 1-10/1000")).toBe(false);
  expect(answersRange("bytes=0-9", "bytes 0-8/1000")).toBe(false);
  expect(answersRange("bytes=-5", "bytes 0-4/1000")).toBe(false);
  expect(answersRange("bytes=0-9", "bytes 9-0/1000")).toBe(false);
  expect(answersRange("bytes=0-9", "items 0-9/1000")).toBe(false);
});
