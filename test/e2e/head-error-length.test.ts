/**
 * A HEAD's error answer carries no body, and its Content-Length, when it has one, must be the
 * length of the body the same request as a GET would get (RFC 9110 §8.6, §9.3.2): S3 and the SDKs
 * take a HEAD for the GET's headers. An upstream's answer to a HEAD has no error document to read
 * the code and message from, where the GET's has, so the proxy cannot know that length: the HEAD
 * said the length of its own guess (plain front: a 400 without S3's code, 40 bytes short of the
 * GET's; S3 front: InvalidRequest where the GET says InvalidArgument with S3's message). Such a
 * HEAD answer now has no Content-Length (on the bun engine, whose listener would add a 0, it says
 * Transfer-Encoding: chunked, as a GET of unknown length would). The proxy's own refusals keep
 * theirs, equal to the GET's: a SignatureDoesNotMatch names the method in its CanonicalRequest,
 * and the HEAD's was one byte longer than the GET's.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { connect } from "node:net";
import { oneBucketYaml, startBothFronts } from "../helpers/both-fronts.ts";
import { rawStatuses } from "../helpers/raw-http.ts";
import { signedFetch } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIDHEADLENGTH01", secretAccessKey: "head-length-secret-0123456789abcd" };
const ERROR_XML = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidArgument</Code><Message>Invalid version id specified</Message><ArgumentName>versionId</ArgumentName><ArgumentValue>abc</ArgumentValue><RequestId>R1</RequestId></Error>`;

const MISSING_XML = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>gone.txt</Key><RequestId>R2</RequestId></Error>`;
const PRECONDITION_XML = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-Match</Condition><RequestId>R3</RequestId></Error>`;

const PART_XML = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidPartNumber</Code><Message>The requested partnumber is not satisfiable</Message><PartNumberRequested>5</PartNumberRequested><ActualPartCount>1</ActualPartCount><RequestId>R4</RequestId></Error>`;

const VERSION_XML = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchVersion</Code><Message>The specified version does not exist.</Message><Key>k.txt</Key><VersionId>gone</VersionId><RequestId>R5</RequestId></Error>`;

let store: ReturnType<typeof Bun.serve>;

beforeAll(() => {
  // S3's answers to a refused object read: the GET's with its error document, the HEAD's without
  // (the bucket's root, the readiness probe's, is fine)
  store = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      const url = new URL(req.url);
      const path = url.pathname;
      if (path === "/data") return new Response(null, { status: 200 });
      const [status, xml] = url.searchParams.has("partNumber") ? [416, PART_XML] : url.searchParams.get("versionId") === "gone" ? [404, VERSION_XML] : path === "/data/gone.txt" ? [404, MISSING_XML] : path === "/data/cond.txt" ? [412, PRECONDITION_XML] : [400, ERROR_XML];
      if (req.method === "HEAD") return new Response(null, { status });
      return new Response(xml, { status, headers: { "content-type": "application/xml" } });
    },
  });
});
afterAll(() => store.stop(true));

function start(engine: "bun" | "node") {
  return startBothFronts(engine, oneBucketYaml({ engine, port: store.port!, creds: CREDS, grants: "[read, list]" }));
}

/** The GET's status and body length, and the HEAD's status and Content-Length. */
async function pair(send: (method: "GET" | "HEAD") => Promise<Response>) {
  const get = await send("GET");
  const body = new Uint8Array(await get.arrayBuffer());
  const head = await send("HEAD");
  await head.arrayBuffer();
  return { get: get.status, head: head.status, getLength: body.byteLength, headLength: head.headers.get("content-length") };
}

/** A HEAD of `path`, then, on the same connection once the HEAD's head is in, a GET: every byte the server sent until it closed. */
function headThenGet(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1", () => sock.write(`HEAD ${path} HTTP/1.1\r\nhost: x\r\n\r\n`));
    let buf = "";
    let asked = false;
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      if (!asked && buf.includes("\r\n\r\n")) {
        asked = true;
        sock.write(`GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
      }
    });
    sock.on("error", reject);
    sock.on("close", () => resolve(buf));
  });
}

/** The HEAD's Content-Length is absent or the GET's body length. */
function expectSameOrNone(p: Awaited<ReturnType<typeof pair>>, status: number) {
  expect([p.get, p.head]).toEqual([status, status]);
  expect(p.getLength).toBeGreaterThan(0);
  if (p.headLength !== null) expect(Number(p.headLength)).toBe(p.getLength);
}

describe.each(["bun", "node"] as const)("engine %s", (engine) => {
  test("an upstream's refusal of a HEAD (no error document): no Content-Length but the GET's, on both fronts", async () => {
    await using px = await start(engine);
    const plain = await pair((method) => fetch(`${px.main}/b/k.txt`, { method }));
    expectSameOrNone(plain, 400);
    const s3 = await pair((method) => signedFetch(px.front, { method, path: "/b/k.txt", creds: CREDS }));
    expectSameOrNone(s3, 400);
    // the S3 front's part and version reads (their own path: S3's InvalidPartNumber, a version's refusal)
    expectSameOrNone(await pair((method) => signedFetch(px.front, { method, path: "/b/k.txt", query: [["partNumber", "5"]], creds: CREDS })), 416);
    expectSameOrNone(await pair((method) => signedFetch(px.front, { method, path: "/b/k.txt", query: [["versionId", "abc"]], creds: CREDS })), 400);
    expectSameOrNone(await pair((method) => signedFetch(px.front, { method, path: "/b/k.txt", query: [["versionId", "gone"]], creds: CREDS })), 404);
    // the HEAD's answer ends at its head (no chunk written after it): on the kept connection, the
    // next request's answer follows it directly (asked once the head is in: the bun engine does
    // not take pipelined requests, README Known limits)
    const raw = await headThenGet(Number(new URL(px.main).port), "/b/k.txt");
    expect(rawStatuses(raw)).toEqual([400, 400]);
    expect(raw.slice(raw.indexOf("\r\n\r\n") + 4, raw.indexOf("HTTP/1.1", 1))).toBe("");
  });

  test("an upstream's 404 (NoSuchKey) and 412 (PreconditionFailed) to a HEAD: the GET's Content-Length, on both fronts", async () => {
    await using px = await start(engine);
    for (const [key, status, headers] of [["gone.txt", 404, {}], ["cond.txt", 412, { "if-match": '"x"' }]] as const) {
      const plain = await pair((method) => fetch(`${px.main}/b/${key}`, { method, headers }));
      expect([plain.get, plain.head, plain.headLength]).toEqual([status, status, String(plain.getLength)]);
      const s3 = await pair((method) => signedFetch(px.front, { method, path: `/b/${key}`, headers, creds: CREDS }));
      expect([s3.get, s3.head, s3.headLength]).toEqual([status, status, String(s3.getLength)]);
    }
  });

  test("the proxy's own refusal (SignatureDoesNotMatch): the HEAD's Content-Length is the GET's body length", async () => {
    await using px = await start(engine);
    const wrong = { ...CREDS, secretAccessKey: "not-the-secret-0123456789abcdefgh" };
    const p = await pair((method) => signedFetch(px.front, { method, path: "/b/k.txt", creds: wrong }));
    expect([p.get, p.head]).toEqual([403, 403]);
    expect(p.headLength).toBe(String(p.getLength));
    // and the proxy's own 404 on the plain front keeps the length it has
    const missing = await pair((method) => fetch(`${px.main}/nobucket/k.txt`, { method }));
    expect([missing.get, missing.head, missing.headLength]).toEqual([404, 404, String(missing.getLength)]);
  });
});
