/**
 * Every operation end to end against the S3 fixture (SigV4 verified independently, uploads
 * verified as S3 does), through both clients; objects read back byte-exact.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { encodeAwsChunkedUnsignedTrailer } from "../../../src/s3/aws-chunked.ts";
import {
  abortMultipartUpload,
  completeMultipartUpload,
  copyObject,
  createMultipartUpload,
  deleteObject,
  deleteObjects,
  deleteObjectsXml,
  headBucket,
  listMultipartUploads,
  listObjectsV1,
  listObjectsV2,
  listObjectsV2Params,
  listParts,
  putObject,
  uploadPart,
} from "../../../src/s3/operations/index.ts";
import type { BucketUpstream } from "../../../src/s3/upstream.ts";
import { checksumOf, startS3Fixture, type S3Fixture } from "../../fixtures/s3.ts";
import { CLIENTS, ctx, generated, makeUpstream, patternBytes } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const WRITER = { accessKeyId: "AKIAOPSWRITER0000001", secretAccessKey: "ops-writer-secret-000000000000000000000", buckets: ["ops"], write: true };

let fx: S3Fixture;
beforeAll(async () => {
  fx = await startS3Fixture({ buckets: [{ name: "ops" }], credentials: [WRITER] });
});
afterAll(() => fx?.stop());

const enc = (s: string) => new TextEncoder().encode(s);
const md5b64 = (b: Uint8Array) => new Bun.CryptoHasher("md5").update(b).digest("base64");
const tag = (xml: string, name: string) => [...xml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, "g"))].map((m) => m[1]);
const lastRequest = (method: string, pathname: string) => fx.requests.filter((e) => e.method === method && e.pathname === pathname).at(-1)!;

async function getBytes(up: BucketUpstream, key: string): Promise<Uint8Array | undefined> {
  const res = await up.fetchObject("GET", key, {}, new AbortController().signal, { upstreamMs: 0, attempts: 0 });
  if (res.status === 404) return (await res.body?.cancel(), undefined);
  expect(res.status).toBe(200);
  return new Uint8Array(await res.arrayBuffer());
}

describe.each(CLIENTS)("operations on the %s client", (client) => {
  let up: BucketUpstream;
  let dispose: () => void;
  const k = (key: string) => `${client}/${key}`;
  beforeAll(() => {
    const u = makeUpstream(client, { bucket: "ops", endpoint: fx.endpoint, ...WRITER });
    up = u.upstream;
    dispose = () => u[Symbol.dispose]();
  });
  afterAll(() => dispose());

  test("putObject: bytes and a stream, byte-exact; the object headers pass through, nothing else", async () => {
    const small = patternBytes(1000);
    const r1 = await putObject(
      up,
      {
        key: k("a b+c/ü (1).bin"),
        body: small,
        headers: new Headers({
          "content-type": "application/x-test",
          "cache-control": "max-age=60",
          "content-disposition": 'attachment; filename="x.bin"',
          "content-encoding": "aws-chunked,gzip",
          "content-language": "ja",
          "x-amz-meta-owner": "qa",
          "content-md5": md5b64(small),
          "x-amz-checksum-crc32": checksumOf("crc32", small),
          "x-amz-acl": "public-read", // the bucket owner's, not the client's: dropped
          "x-amz-storage-class": "GLACIER",
          "x-amz-decoded-content-length": "5",
        }),
      },
      ctx(),
    );
    expect(r1.status).toBe(200);
    expect(r1.headers.get("etag")).toBe(`"${new Bun.CryptoHasher("md5").update(small).digest("hex")}"`);
    expect(r1.headers.get("x-amz-checksum-crc32")).toBe(checksumOf("crc32", small));
    const sent = lastRequest("PUT", `/ops/${client}/a%20b%2Bc/%C3%BC%20%281%29.bin`).headers;
    expect(sent["content-encoding"]).toBe("gzip");
    expect(sent["x-amz-acl"]).toBeUndefined();
    expect(sent["x-amz-storage-class"]).toBeUndefined();
    expect(sent["x-amz-decoded-content-length"]).toBeUndefined();
    expect(await getBytes(up, k("a b+c/ü (1).bin"))).toEqual(small);
    const head = await up.fetchObject("HEAD", k("a b+c/ü (1).bin"), {}, new AbortController().signal, { upstreamMs: 0, attempts: 0 });
    expect(head.headers.get("content-type")).toBe("application/x-test");
    expect(head.headers.get("cache-control")).toBe("max-age=60");
    expect(head.headers.get("content-disposition")).toBe('attachment; filename="x.bin"');
    expect(head.headers.get("content-encoding")).toBe("gzip");
    expect(head.headers.get("x-amz-meta-owner")).toBe("qa");

    const size = 3 * 1024 * 1024 + 17;
    const r2 = await putObject(up, { key: k("streamed.bin"), body: generated(size, { chunkSize: 100_000 }), contentLength: size }, ctx());
    expect(r2.status).toBe(200);
    expect(lastRequest("PUT", `/ops/${client}/streamed.bin`).headers["x-amz-content-sha256"]).toBe("UNSIGNED-PAYLOAD");
    expect(await fx.read("ops", k("streamed.bin"))).toEqual(patternBytes(size));
  });

  test("putObject: S3's own checks are relayed (a wrong Content-MD5 → BadDigest, nothing stored)", async () => {
    const body = enc("checked");
    const res = await putObject(up, { key: k("bad-md5"), body, headers: { "content-md5": md5b64(enc("other")) } }, ctx());
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("<Code>BadDigest</Code>");
    expect(await fx.exists("ops", k("bad-md5"))).toBe(false);
  });

  test("putObject: aws-chunked with an unsigned CRC32 trailer is verified upstream and stored decoded", async () => {
    const size = 200_000;
    const framed = encodeAwsChunkedUnsignedTrailer(generated(size), "CRC32", { decodedLength: size });
    const res = await putObject(
      up,
      { key: k("chunked.bin"), body: framed.stream, contentLength: framed.encodedLength, awsChunked: { decodedLength: size, trailer: "x-amz-checksum-crc32" }, headers: { "content-type": "text/plain" } },
      ctx(),
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("x-amz-checksum-crc32")).toBe(checksumOf("crc32", patternBytes(size)));
    const sent = lastRequest("PUT", `/ops/${client}/chunked.bin`);
    expect(sent.headers["x-amz-content-sha256"]).toBe("STREAMING-UNSIGNED-PAYLOAD-TRAILER");
    expect(sent.headers["content-encoding"]).toBe("aws-chunked");
    expect(sent.headers["content-length"]).toBe(String(framed.encodedLength));
    expect(await fx.read("ops", k("chunked.bin"))).toEqual(patternBytes(size));
  });

  test("listObjectsV1/V2: the listing parameters pass through, nothing else", async () => {
    for (const name of ["l/a", "l/b", "l/c/d", "l/e"]) expect((await putObject(up, { key: k(name), body: enc(name) }, ctx())).status).toBe(200);
    const p = listObjectsV2Params(new URLSearchParams(`prefix=${client}/l/&delimiter=/&max-keys=2&acl=&versions=&x-id=1`));
    const page1 = await listObjectsV2(up, { ...p, fetchOwner: true }, ctx());
    expect(page1.status).toBe(200);
    const xml1 = await page1.text();
    expect(tag(xml1, "Key")).toEqual([k("l/a"), k("l/b")]);
    expect(tag(xml1, "IsTruncated")).toEqual(["true"]);
    expect(xml1).toContain("<Owner>");
    const q = lastRequest("GET", "/ops").query;
    expect(Object.keys(q).sort()).toEqual(["delimiter", "fetch-owner", "list-type", "max-keys", "prefix"]);
    const token = tag(xml1, "NextContinuationToken")[0];
    const xml2 = await (await listObjectsV2(up, { ...p, continuationToken: token }, ctx())).text();
    expect(tag(xml2, "Key")).toEqual([k("l/e")]);
    expect(tag(xml2, "Prefix")).toEqual([`${client}/l/`, k("l/c/")]);
    const xmlAfter = await (await listObjectsV2(up, { prefix: k("l/"), startAfter: k("l/b") }, ctx())).text();
    expect(tag(xmlAfter, "Key")).toEqual([k("l/c/d"), k("l/e")]);
    const v1 = await (await listObjectsV1(up, { prefix: k("l/"), marker: k("l/a"), maxKeys: 2 }, ctx())).text();
    expect(tag(v1, "Key")).toEqual([k("l/b"), k("l/c/d")]);
    expect(tag(v1, "Marker")).toEqual([k("l/a")]);
  });

  test("headBucket: 200 for the bucket; S3's 404 for a bucket that does not exist", async () => {
    expect((await headBucket(up, ctx())).status).toBe(200);
    using other = makeUpstream(client, { bucket: "no-such-bucket", endpoint: fx.endpoint, ...WRITER });
    expect((await headBucket(other.upstream, ctx())).status).toBe(404);
  });

  test("multipart: create with CRC32, parts (streamed and bytes) with checksums, list, complete, read back", async () => {
    const key = k("mp/big file.bin");
    const created = await createMultipartUpload(up, { key, headers: { "content-type": "video/mp4", "x-amz-meta-m": "1", "x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "COMPOSITE" } }, ctx());
    expect(created.status).toBe(200);
    const uploadId = tag(await created.text(), "UploadId")[0];
    expect(uploadId).toBeTruthy();
    const p1 = patternBytes(5 * 1024 * 1024);
    const p2 = patternBytes(1234, p1.byteLength);
    const r1 = await uploadPart(up, { key, uploadId, partNumber: 1, body: generated(p1.byteLength), contentLength: p1.byteLength, headers: { "x-amz-checksum-crc32": checksumOf("crc32", p1), "x-amz-sdk-checksum-algorithm": "CRC32" } }, ctx());
    const r2 = await uploadPart(up, { key, uploadId, partNumber: 2, body: p2, headers: { "x-amz-checksum-crc32": checksumOf("crc32", p2), "content-md5": md5b64(p2) } }, ctx());
    expect([r1.status, r2.status]).toEqual([200, 200]);
    const parts = await (await listParts(up, { key, uploadId, maxParts: 1 }, ctx())).text();
    expect(tag(parts, "PartNumber")).toEqual(["1"]);
    expect(tag(parts, "IsTruncated")).toEqual(["true"]);
    const uploads = await (await listMultipartUploads(up, { prefix: k("mp/") }, ctx())).text();
    expect(tag(uploads, "UploadId")).toEqual([uploadId]);
    const done = await completeMultipartUpload(
      up,
      {
        key,
        uploadId,
        parts: [
          { partNumber: 1, etag: r1.headers.get("etag")!, checksumCRC32: checksumOf("crc32", p1) },
          { partNumber: 2, etag: r2.headers.get("etag")!, checksumCRC32: checksumOf("crc32", p2) },
        ],
      },
      ctx(),
    );
    expect(done.status).toBe(200);
    expect(tag(await done.text(), "ETag")[0]).toMatch(/-2"$|-2&quot;$/);
    expect(await fx.read("ops", key)).toEqual(patternBytes(p1.byteLength + p2.byteLength));
    expect(fx.multipartUploads().filter((u) => u.uploadId === uploadId)).toEqual([]);
  });

  test("multipart: a part checksum left out of Complete is refused as S3 does; abort discards the upload", async () => {
    const key = k("mp/aborted");
    const uploadId = tag(await (await createMultipartUpload(up, { key, headers: { "x-amz-checksum-algorithm": "CRC32" } }, ctx())).text(), "UploadId")[0];
    const body = enc("only part");
    const r = await uploadPart(up, { key, uploadId, partNumber: 1, body, headers: { "x-amz-checksum-crc32": checksumOf("crc32", body) } }, ctx());
    const bad = await completeMultipartUpload(up, { key, uploadId, parts: [{ partNumber: 1, etag: r.headers.get("etag")! }] }, ctx());
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("<Code>InvalidRequest</Code><Message>The upload was created using a crc32 checksum.");
    expect((await abortMultipartUpload(up, { key, uploadId }, ctx())).status).toBe(204);
    expect(fx.multipartUploads().filter((u) => u.uploadId === uploadId)).toEqual([]);
    expect(await fx.exists("ops", key)).toBe(false);
  });

  test("deleteObject and deleteObjects (keys S3 tools get wrong: '0', ' ', XML specials, shared folders)", async () => {
    const keys = ["0", " ", "a&b<c>'\"", "d/x", "d/y", "tab\there"].map(k);
    for (const key of keys) expect((await putObject(up, { key, body: enc(key) }, ctx())).status).toBe(200);
    expect((await deleteObject(up, { key: keys[0] }, ctx())).status).toBe(204);
    expect(await fx.exists("ops", keys[0])).toBe(false);
    const res = await deleteObjects(up, { keys: keys.slice(1) }, ctx());
    expect(res.status).toBe(200);
    const xml = await res.text();
    expect(tag(xml, "Key").length).toBe(keys.length - 1);
    expect(xml).not.toContain("<Error>");
    for (const key of keys) expect(await fx.exists("ops", key)).toBe(false);
    expect(lastRequest("POST", "/ops").headers["content-md5"]).toBeDefined();
    await expect(deleteObjects(up, { keys: ["bad\u0001key"] }, ctx())).rejects.toThrow(TypeError);
  });

  test("conditional deletes: deleteObject's ifMatch as If-Match, deleteObjects' etag as each <Object>'s <ETag> (escaped)", async () => {
    const [a, b, c] = ["cond/a", "cond/b", "cond/c"].map(k);
    const etags: Record<string, string> = {};
    for (const key of [a!, b!, c!]) etags[key] = (await putObject(up, { key, body: enc(key) }, ctx())).headers.get("etag")!;
    const refused = await deleteObject(up, { key: a!, ifMatch: '"0123456789abcdef0123456789abcdef"' }, ctx());
    expect(refused.status).toBe(412);
    expect(lastRequest("DELETE", `/ops/${client}/cond/a`).headers["if-match"]).toBe('"0123456789abcdef0123456789abcdef"');
    expect(await fx.exists("ops", a!)).toBe(true);
    expect((await deleteObject(up, { key: a!, ifMatch: etags[a!] }, ctx())).status).toBe(204);
    expect(await fx.exists("ops", a!)).toBe(false);
    expect(deleteObjectsXml([{ key: "k", etag: '"x&y<z>"' }])).toContain("<Object><Key>k</Key><ETag>&quot;x&amp;y&lt;z&gt;&quot;</ETag></Object>");
    const res = await deleteObjects(up, { keys: [{ key: b!, etag: '"x&y<z>"' }, { key: c!, etag: etags[c!] }] }, ctx());
    const xml = await res.text();
    expect(xml).toContain(`<Error><Key>${b}</Key><Code>PreconditionFailed</Code>`);
    expect(xml).toContain(`<Deleted><Key>${c}</Key></Deleted>`);
    expect(await fx.exists("ops", b!)).toBe(true);
    expect(await fx.exists("ops", c!)).toBe(false);
  });

  test("copyObject within the bucket: source key encoded, metadata directive passed", async () => {
    // No "+" (or other URI-reserved character) in the source key: s3rver decodes x-amz-copy-source
    // with decodeURI, which leaves %2B encoded (S3 decodes it); a fixture limit, not ours.
    const src = k("copy/src ü%~(1).txt");
    const body = enc("copy me");
    await putObject(up, { key: src, body, headers: { "content-type": "text/plain", "x-amz-meta-a": "1" } }, ctx());
    const same = await copyObject(up, { key: k("copy/dst1"), sourceKey: src }, ctx());
    expect(same.status).toBe(200);
    expect(await same.text()).toContain("<CopyObjectResult");
    expect(lastRequest("PUT", `/ops/${client}/copy/dst1`).headers["x-amz-copy-source"]).toBe(`/ops/${client}/copy/src%20%C3%BC%25~%281%29.txt`);
    const replaced = await copyObject(up, { key: k("copy/dst2"), sourceKey: src, headers: { "x-amz-metadata-directive": "REPLACE", "content-type": "application/json", "x-amz-copy-source": "/elsewhere/x" } }, ctx());
    expect(replaced.status).toBe(200);
    expect(await getBytes(up, k("copy/dst1"))).toEqual(body);
    const head = await up.fetchObject("HEAD", k("copy/dst2"), {}, new AbortController().signal, { upstreamMs: 0, attempts: 0 });
    expect(head.headers.get("content-type")).toBe("application/json");
    expect(head.headers.get("x-amz-meta-a")).toBeNull();
    expect(await fx.read("ops", k("copy/dst2"))).toEqual(body);
  });
});
