/**
 * A write's upstream answer cut short: the store takes the request, sends a 2xx head announcing a
 * body, and closes before the body's last byte. The object may have been stored, but the answer is
 * broken, and a client retries a 5xx (PutObject and DeleteObject are idempotent): 502 BadGateway on
 * the plain front, S3's 500 InternalError on the S3 front (src/fronts/s3/errors.ts: S3 never answers
 * 502), with the access line naming the upstream's protocol error. The own HTTP/1.1 client read the
 * body whole and said so, but fetch handed the answer over unread and the write was answered 200:
 * on upstream_client fetch, and on every client for a body handed to fetch natively (a framed
 * upload, src/http/framed-body.ts).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { FRAMED_MIN_BYTES, framedBodyLimits } from "../../src/http/framed-body.ts";
import type { AccessRecord } from "../../src/observe/log.ts";
import { startRawStore, type RawStore } from "../helpers/raw-store.ts";
import { ENGINES_AND_CLIENTS, oneBucketYaml, startBothFronts } from "../helpers/both-fronts.ts";
import { signedFetch } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIDCUTANSWER001", secretAccessKey: "cut-answer-secret-0123456789abcd" };
/** What the store answers every write with, then closes: 100 bytes announced, 7 sent. */
const CUT = (status: string) => `HTTP/1.1 ${status}\r\nETag: "cut"\r\nContent-Length: 100\r\n\r\npartial`;

let store: RawStore;
let answer = "";
/** How the store ends its connection after `answer`. */
let cutEnd: boolean | "reset" = true;

beforeAll(async () => {
  store = await startRawStore(() => ({ bytes: answer, end: cutEnd }));
});
afterAll(() => {
  store.close();
  framedBodyLimits.minBytes = FRAMED_MIN_BYTES;
});

function start(engine: "bun" | "node", client: "auto" | "fetch") {
  return startBothFronts(engine, oneBucketYaml({ engine, client, port: store.port, creds: CREDS, grants: "[read, write, delete]", writable: true, s3Extra: ", timeout: 5" }));
}

/** The access line of the request that answered `res` (x-request-id on the plain front, x-amz-request-id on the S3 front). */
function lineOf(access: AccessRecord[], res: Response): AccessRecord | undefined {
  const id = res.headers.get("x-request-id") ?? res.headers.get("x-amz-request-id");
  return access.find((r) => r.request_id === id);
}

describe.each(ENGINES_AND_CLIENTS)("engine %s, upstream client %s", (engine, client) => {
  // (a framed upload is a Bun.serve body: the node engine's never is)
  const bodyPaths = engine === "bun" ? (["JavaScript", "framed"] as const) : (["JavaScript"] as const);
  for (const path of bodyPaths)
    test(`a PUT (${path} body path) whose answer is cut: plain front 502, S3 front 500 InternalError, the access line names the protocol error`, async () => {
      framedBodyLimits.minBytes = path === "framed" ? 1 : FRAMED_MIN_BYTES;
      await using px = await start(engine, client);
      cutEnd = true;
      answer = CUT("200 OK");
      store.seen.length = 0;

      const plain = await fetch(`${px.main}/b/plain.txt`, { method: "PUT", body: "brand new" });
      expect(plain.status).toBe(502);
      expect(((await plain.json()) as { error: string }).error).toBe("BadGateway");
      expect(lineOf(px.access, plain)).toMatchObject({ status: 502, error: "BadGateway", upstream_error: "UpstreamProtocolError" });

      const s3 = await signedFetch(px.front, { method: "PUT", path: "/b/s3.txt", body: "brand new", creds: CREDS });
      const text = await s3.text();
      expect([s3.status, /<Code>([^<]*)<\/Code>/.exec(text)?.[1]]).toEqual([500, "InternalError"]);
      expect(lineOf(px.access, s3)).toMatchObject({ status: 500, s3_error: "InternalError", upstream_error: "UpstreamProtocolError" });
      // the store was asked, and took both (the answer, not the request, was broken)
      expect(store.seen).toEqual(["PUT /data/plain.txt", "PUT /data/s3.txt"]);
    });

  test("a DELETE whose 200 answer is cut: plain front 502, S3 front 500 InternalError", async () => {
    await using px = await start(engine, client);
    cutEnd = true;
    answer = CUT("200 OK");
    store.seen.length = 0;
    const plain = await fetch(`${px.main}/b/plain.txt`, { method: "DELETE" });
    expect(plain.status).toBe(502);
    await plain.body?.cancel();
    const s3 = await signedFetch(px.front, { method: "DELETE", path: "/b/s3.txt", creds: CREDS });
    expect([s3.status, /<Code>([^<]*)<\/Code>/.exec(await s3.text())?.[1]]).toEqual([500, "InternalError"]);
    expect(store.seen).toEqual(["DELETE /data/plain.txt", "DELETE /data/s3.txt"]);
  });
});

/**
 * The same cut without a Content-Length: a chunked body closed before its last chunk, or a
 * close-delimited one ended by a TCP reset (a clean close is its end). S3 sends PutObject's and
 * UploadPart's (DeleteObject's, the tagging writes', AbortMultipartUpload's) 2xx empty, so such a
 * body was cancelled unread on both fronts and the write answered 200 (204) on every client. (Bun's fetch takes a reset as the end of a close-delimited body,
 * so only the own client can tell that cut: the fetch client, and a framed upload's, still cannot.)
 */
const TAGGING = `<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>`;
const CUT_CHUNKED = `HTTP/1.1 200 OK\r\nETag: "cut"\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n`;
const CUT_CLOSE = `HTTP/1.1 200 OK\r\nETag: "cut"\r\nConnection: close\r\n\r\npartial`;

describe.each(ENGINES_AND_CLIENTS)("engine %s, upstream client %s, no Content-Length", (engine, client) => {
  const cases: Array<[string, "JavaScript" | "framed", string, boolean | "reset"]> = [];
  for (const path of engine === "bun" ? (["JavaScript", "framed"] as const) : (["JavaScript"] as const)) {
    cases.push(["chunked", path, CUT_CHUNKED, true]);
    if (client === "auto" && path === "JavaScript") cases.push(["close-delimited", path, CUT_CLOSE, "reset"]);
  }
  for (const [framing, path, bytes, end] of cases)
    test(`a ${framing} 2xx answer cut short (${path} body path): plain PUT and DELETE 502, S3 PutObject, UploadPart, DeleteObject, tagging, Abort and Complete 500 InternalError`, async () => {
      framedBodyLimits.minBytes = path === "framed" ? 1 : FRAMED_MIN_BYTES;
      await using px = await start(engine, client);
      cutEnd = end;
      answer = bytes;
      store.seen.length = 0;

      const plain = await fetch(`${px.main}/b/plain.txt`, { method: "PUT", body: "brand new" });
      expect(plain.status).toBe(502);
      expect(((await plain.json()) as { error: string }).error).toBe("BadGateway");
      expect(lineOf(px.access, plain)).toMatchObject({ status: 502, error: "BadGateway", upstream_error: "UpstreamProtocolError" });

      const del = await fetch(`${px.main}/b/plain.txt`, { method: "DELETE" });
      expect(del.status).toBe(502);
      await del.body?.cancel();

      const put = await signedFetch(px.front, { method: "PUT", path: "/b/s3.txt", body: "brand new", creds: CREDS });
      expect([put.status, /<Code>([^<]*)<\/Code>/.exec(await put.text())?.[1]]).toEqual([500, "InternalError"]);
      expect(lineOf(px.access, put)).toMatchObject({ status: 500, s3_error: "InternalError", upstream_error: "UpstreamProtocolError" });

      const part = await signedFetch(px.front, { method: "PUT", path: "/b/mp.txt", query: [["partNumber", "1"], ["uploadId", "u1"]], body: "brand new", creds: CREDS });
      expect([part.status, /<Code>([^<]*)<\/Code>/.exec(await part.text())?.[1]]).toEqual([500, "InternalError"]);

      // the other writes S3 answers empty: DeleteObject, PutObjectTagging, DeleteObjectTagging, AbortMultipartUpload
      const others = [
        await signedFetch(px.front, { method: "DELETE", path: "/b/s3.txt", creds: CREDS }),
        await signedFetch(px.front, { method: "PUT", path: "/b/s3.txt", query: [["tagging", ""]], body: TAGGING, creds: CREDS }),
        await signedFetch(px.front, { method: "DELETE", path: "/b/s3.txt", query: [["tagging", ""]], creds: CREDS }),
        await signedFetch(px.front, { method: "DELETE", path: "/b/mp.txt", query: [["uploadId", "u1"]], creds: CREDS }),
      ];
      for (const r of others) expect([r.status, /<Code>([^<]*)<\/Code>/.exec(await r.text())?.[1]]).toEqual([500, "InternalError"]);

      const xml = `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"cut"</ETag></Part></CompleteMultipartUpload>`;
      const complete = await signedFetch(px.front, { method: "POST", path: "/b/mp.txt", query: [["uploadId", "u1"]], body: xml, creds: CREDS });
      expect([complete.status, /<Code>([^<]*)<\/Code>/.exec(await complete.text())?.[1]]).toEqual([500, "InternalError"]);
      expect(store.seen).toEqual([
        "PUT /data/plain.txt",
        "DELETE /data/plain.txt",
        "PUT /data/s3.txt",
        "PUT /data/mp.txt?partNumber=1&uploadId=u1",
        "DELETE /data/s3.txt",
        "PUT /data/s3.txt?tagging=",
        "DELETE /data/s3.txt?tagging=",
        "DELETE /data/mp.txt?uploadId=u1",
        "POST /data/mp.txt?uploadId=u1",
      ]);
    });
});
