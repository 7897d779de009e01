/**
 * The S3 front's reads that relay chosen upstream headers beside the shared object answer: a
 * part or version read (x-amz-mp-parts-count, x-amz-version-id, x-amz-delete-marker), a tag set's
 * and GetObjectAttributes' documents (x-amz-version-id, last-modified), and a streamed copy's
 * result (ETag and checksums from the write's answer, into CopyObjectResult). A field the
 * upstream's Connection header names is hop-by-hop (RFC 9110 §7.6.1), the proxy's alone, and the
 * other answers already drop it (src/http/headers.ts, src/fronts/s3/relay.ts); these relayed it.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startRawStore, type RawStore } from "../helpers/raw-store.ts";
import { oneBucketYaml, startBothFronts } from "../helpers/both-fronts.ts";
import { signedFetch } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIDHOPREADS0001", secretAccessKey: "hop-reads-secret-0123456789abcdef" };
const HOP = "Connection: close, x-amz-mp-parts-count, x-amz-version-id, last-modified, x-amz-delete-marker\r\nx-amz-mp-parts-count: 3\r\nx-amz-version-id: v1\r\nx-amz-delete-marker: false\r\nLast-Modified: Wed, 01 Jan 2025 00:00:00 GMT\r\n";
const xml = (body: string) => `HTTP/1.1 200 OK\r\n${HOP}Content-Type: application/xml\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

let store: RawStore;
beforeAll(async () => {
  store = await startRawStore((head) => {
    const target = head.split(" ", 2)[1]!;
    if (target.includes("tagging")) return { bytes: xml(`<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>`), end: true };
    if (head.startsWith("PUT ")) return { bytes: `HTTP/1.1 200 OK\r\nConnection: close, etag, x-amz-checksum-crc32, last-modified\r\nETag: "hop"\r\nx-amz-checksum-crc32: AAAAAA==\r\nLast-Modified: Wed, 01 Jan 2025 00:00:00 GMT\r\nContent-Length: 0\r\n\r\n`, end: true };
    if (target.startsWith("/data/src.txt")) return { bytes: `HTTP/1.1 200 OK\r\n${HOP}ETag: "e"\r\nContent-Length: 5\r\n\r\nhello`, end: true };
    if (target.includes("attributes")) return { bytes: xml(`<GetObjectAttributesResponse><ObjectSize>5</ObjectSize></GetObjectAttributesResponse>`), end: true };
    return { bytes: `HTTP/1.1 206 Partial Content\r\n${HOP}ETag: "e"\r\nContent-Range: bytes 0-4/15\r\nContent-Length: 5\r\n\r\nhello`, end: true };
  });
});
afterAll(() => store.close());

const hop = (r: Response) => ({ parts: r.headers.get("x-amz-mp-parts-count"), version: r.headers.get("x-amz-version-id"), marker: r.headers.get("x-amz-delete-marker"), modified: r.headers.get("last-modified") });
const NONE = { parts: null, version: null, marker: null, modified: null };

for (const engine of ["bun", "node"] as const)
  test(`${engine} engine: a part read, GetObjectTagging and GetObjectAttributes relay no field the upstream's Connection names`, async () => {
    await using px = await startBothFronts(engine, oneBucketYaml({ engine, port: store.port, creds: CREDS, grants: "[read, list]" }));
    const part = await signedFetch(px.front, { method: "GET", path: "/b/k.txt", query: [["partNumber", "1"]], creds: CREDS });
    expect([part.status, await part.text()]).toEqual([206, "hello"]);
    expect(hop(part)).toEqual(NONE);
    const tags = await signedFetch(px.front, { method: "GET", path: "/b/k.txt", query: [["tagging", ""]], creds: CREDS });
    expect([tags.status, (await tags.text()).includes("<Key>a</Key>")]).toEqual([200, true]);
    expect(hop(tags)).toEqual(NONE);
    const attrs = await signedFetch(px.front, { method: "GET", path: "/b/k.txt", query: [["attributes", ""]], headers: { "x-amz-object-attributes": "ObjectSize" }, creds: CREDS });
    expect([attrs.status, (await attrs.text()).includes("<ObjectSize>5</ObjectSize>")]).toEqual([200, true]);
    expect(hop(attrs)).toEqual(NONE);
  });

test("a copy streamed between buckets with other credentials: CopyObjectResult carries no ETag or checksum the write's answer made hop-by-hop", async () => {
  const yaml = oneBucketYaml({ engine: "bun", port: store.port, creds: CREDS, grants: "[read]" })
    .replace("buckets: { b: [read] }", "buckets: { b: [read], c: [read, write] }")
    .replace("\ns3_api:", `\n  - { name: c, path_prefix: /c, access: read-write, auth: { enabled: false }, s3: { bucket: data2, endpoint: "http://127.0.0.1:${store.port}", access_key: AKIDOTHERKEYS, secret_key: other-keys-secret-0123456789, retry: { max_attempts: 1 } } }\ns3_api:`);
  await using px = await startBothFronts("bun", yaml);
  const copy = await signedFetch(px.front, { method: "PUT", path: "/c/dst.txt", headers: { "x-amz-copy-source": "/b/src.txt" }, creds: CREDS });
  const body = await copy.text();
  expect([copy.status, body.includes("<CopyObjectResult"), body.includes("hop"), body.includes("<ChecksumCRC32>"), body.includes("2025-01-01")]).toEqual([200, true, false, false, false]);
  expect(copy.headers.get("x-amz-copy-source-version-id")).toBeNull();
  expect(store.seen).toContain("PUT /data2/dst.txt");
});
