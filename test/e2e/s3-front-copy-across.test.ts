/**
 * CopyObject and UploadPartCopy between proxy buckets (S3 front): server-side when the two buckets
 * are one upstream service reached with one identity, streamed through the proxy otherwise (the
 * fixture's bucket `far` is readable only with its own key, which cannot read `up`, and the reverse).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { createServer, type AddressInfo } from "node:net";
import { CopyObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { awsCli } from "../clients/aws.ts";
import { rcloneClient } from "../clients/rclone.ts";
import { OpaServer } from "../fixtures/opa.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startFrontsOn } from "./s3-front-helpers.ts";
import { answerOf, bytesOf, sha256, signedFetch, UPSTREAM_WRITER, uploadYaml, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

const T = 60_000;
const FAR_KEY = { accessKeyId: "AKIDUPSTREAMFAR01", secretAccessKey: "upstream-far-secret-0123456789abc" };
const COPIER = { accessKeyId: "AKIDCOPIERACROSS1", secretAccessKey: "copier-secret-0123456789abcdefgh" };

let s3: S3Fixture;
let env: UploadEnv;
/** Allows every action but s3:GetObjectTagging (a policy that lets objects be read, not their tags). */
let opa: OpaServer;

/**
 * A store that answers every GET with a 20 MiB Content-Length, sends 9 MiB of it (past the 8 MiB
 * server.buffer_threshold_bytes a GET's body is read whole up to) and closes the connection once
 * `cutWhen` resolves (HEAD: 200).
 */
function startCutter(cutWhen: () => Promise<unknown>): { port: number; gets: number; close(): void } {
  const state = { port: 0, gets: 0, close: () => server.close() };
  const server = createServer((sock) => {
    sock.on("error", () => {});
    sock.once("data", (d) => {
      if (!d.toString("latin1").startsWith("GET ")) return void sock.end("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
      state.gets++;
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${20 * 1024 * 1024}\r\nContent-Type: application/octet-stream\r\nETag: "cut"\r\n\r\n`);
      sock.write(Buffer.alloc(9 * 1024 * 1024, 7), () => void cutWhen().finally(() => sock.destroy()));
    });
  });
  server.listen(0, "127.0.0.1");
  state.port = (server.address() as AddressInfo).port;
  return state;
}
let cutter: ReturnType<typeof startCutter>;

beforeAll(async () => {
  // (cut once the copy's write is under way upstream: the failure is then mid-stream)
  cutter = startCutter(() => s3.waitForRequest((e) => e.method === "PUT" && e.pathname === "/up/cut/dst.bin", 10_000));
  opa = OpaServer.start({ "yatagarasu/allow": (input: { action: string }) => input.action !== "s3:GetObjectTagging" });
  s3 = await startS3Fixture({
    buckets: [{ name: "up" }, { name: "far" }],
    credentials: [
      { ...UPSTREAM_WRITER, buckets: ["up"], write: true },
      { ...FAR_KEY, buckets: ["far"], write: true },
    ],
  });
  const far = `bucket: far, endpoint: "${s3.endpoint}", access_key: "${FAR_KEY.accessKeyId}", secret_key: "${FAR_KEY.secretAccessKey}"`;
  const upWriter = `bucket: up, endpoint: "${s3.endpoint}", access_key: "${UPSTREAM_WRITER.accessKeyId}", secret_key: "${UPSTREAM_WRITER.secretAccessKey}"`;
  const admin = s3.adminCredentials;
  const authz = `    authorization: { type: opa, opa_url: "${opa.url}", opa_policy_path: yatagarasu/allow, opa_cache_ttl_seconds: 0, opa_timeout_ms: 5000 }\n`;
  env = await startFrontsOn(
    uploadYaml(s3.endpoint, {
      moreBuckets: () => `  - name: far
    path_prefix: /far
    access: read-write
    s3: { ${far} }
  - name: fenced
    path_prefix: /fenced
    s3: { ${far} }
    ip_filter: { allowlist: ["10.9.9.9/32"] }
  - name: cutter
    path_prefix: /cutter
    s3: { bucket: cut, endpoint: "http://127.0.0.1:${cutter.port}", retry: { max_attempts: 1 } }
  - name: opafar
    path_prefix: /opafar
    s3: { ${far} }
${authz}  - name: opaup
    path_prefix: /opaup
    s3: { ${upWriter} }
${authz}  - name: upalt
    path_prefix: /upalt
    access: read-write
    s3: { bucket: up, endpoint: "${s3.endpoint}", access_key: "${admin.accessKeyId}", secret_key: "${admin.secretAccessKey}" }
`,
      moreCredentials: `    - { access_key_id: "${COPIER.accessKeyId}", secret_access_key: "${COPIER.secretAccessKey}", identity: copier,
        buckets: { up: [read, list, write], other: [read, write], far: [read, list, write], fenced: [read], cutter: [read], opafar: [read], opaup: [read], upalt: [read, write] } }
`,
    }),
    s3,
    true,
  );
});

afterAll(async () => {
  await env?.[Symbol.asyncDispose]();
  cutter?.close();
  opa?.close();
});

const copy = (dest: string, source: string, headers: Record<string, string> = {}, creds = COPIER) =>
  signedFetch(env, { method: "PUT", path: dest, headers: { "x-amz-copy-source": source, ...headers }, creds });

const text = async (bucket: string, key: string) => new TextDecoder().decode((await s3.read(bucket, key))!);
const calls = () => env.upstreamCalls().map((c) => `${c.method} ${c.pathname}${c.query.uploadId === undefined ? "" : "?part"} ${c.accessKeyId}`);

describe("CopyObject across proxy buckets", () => {
  test(
    "one upstream service and identity (up → other): copied server-side from the source's upstream bucket, no byte through the proxy",
    async () => {
      await s3.put("up", "across/same.txt", "same account");
      env.mark();
      const r = await copy("/other/across/same-copy.txt", "/up/across/same.txt");
      expect(r.status).toBe(200);
      expect(await r.text()).toMatch(/<CopyObjectResult[^>]*><ETag>/);
      expect(env.upstreamCalls().map((c) => `${c.method} ${c.pathname} ${c.headers["x-amz-copy-source"]}`)).toEqual(["PUT /up/across/same-copy.txt /up/across/same.txt"]);
      expect(await text("up", "across/same-copy.txt")).toBe("same account");
    },
    T,
  );

  test(
    "other credentials (far → up): streamed, the source read with its key and written with the destination's; bytes, type, metadata and tags kept; S3's CopyObjectResult",
    async () => {
      await s3.put("far", "docs/a b.txt", "streamed across", { contentType: "text/x-far", cacheControl: "max-age=7", metadata: { owner: "far-team" } });
      // tags, through the proxy on the source
      const tag = await signedFetch(env, {
        method: "PUT", path: "/far/docs/a%20b.txt", query: [["tagging", ""]], creds: COPIER,
        body: "<Tagging><TagSet><Tag><Key>k</Key><Value>v 1</Value></Tag></TagSet></Tagging>", payloadHash: sha256(new TextEncoder().encode("<Tagging><TagSet><Tag><Key>k</Key><Value>v 1</Value></Tag></TagSet></Tagging>")),
      });
      expect(tag.status).toBe(200);
      env.mark();
      const r = await copy("/up/copied/a b.txt", "far/docs/a%20b.txt");
      const xml = await r.text();
      expect(r.status).toBe(200);
      expect(xml).toMatch(/^<\?xml[^>]*\?>\n?<CopyObjectResult xmlns="http:\/\/s3.amazonaws.com\/doc\/2006-03-01\/"><ETag>&quot;[0-9a-f]{32}&quot;<\/ETag><LastModified>\d{4}-\d\d-\d\dT[\d:.]+Z<\/LastModified>/);
      expect(calls()).toEqual([`GET /far/docs/a%20b.txt ${FAR_KEY.accessKeyId}`, `GET /far/docs/a%20b.txt ${FAR_KEY.accessKeyId}`, `PUT /up/copied/a%20b.txt ${UPSTREAM_WRITER.accessKeyId}`, `HEAD /up/copied/a%20b.txt ${UPSTREAM_WRITER.accessKeyId}`]);
      expect(await text("up", "copied/a b.txt")).toBe("streamed across");
      const head = await signedFetch(env, { method: "HEAD", path: "/up/copied/a%20b.txt", creds: COPIER });
      expect(head.headers.get("content-type")).toBe("text/x-far");
      expect(head.headers.get("cache-control")).toBe("max-age=7");
      expect(head.headers.get("x-amz-meta-owner")).toBe("far-team");
      const tags = await signedFetch(env, { method: "GET", path: "/up/copied/a%20b.txt", query: [["tagging", ""]], creds: COPIER });
      expect(await tags.text()).toContain("<Tag><Key>k</Key><Value>v 1</Value></Tag>");
    },
    T,
  );

  // The result's LastModified was the PutObject answer's Date (S3 sends no Last-Modified there):
  // when the answer was sent, not the stored object's time, which a HEAD of it then disagreed with.
  test(
    "streamed: the result's LastModified is the stored object's (a HEAD of what was written), not the write answer's Date",
    async () => {
      await s3.put("far", "docs/lm.txt", "last modified");
      const { etag } = await s3.put("up", "copied/lm.txt", "last modified");
      s3.faults.set("/up/copied/lm.txt", { kind: "reply", status: 200, body: "", method: "PUT", times: 1, headers: { etag, date: "Mon, 01 Jan 2001 00:00:00 GMT" } });
      try {
        const r = await copy("/up/copied/lm.txt", "/far/docs/lm.txt");
        const xml = await r.text();
        expect(r.status).toBe(200);
        const head = await signedFetch(env, { method: "HEAD", path: "/up/copied/lm.txt", creds: COPIER });
        const stored = new Date(head.headers.get("last-modified")!).toISOString();
        expect(/<LastModified>([^<]+)<\/LastModified>/.exec(xml)?.[1]).toBe(stored);
      } finally {
        s3.faults.clear();
      }
    },
    T,
  );

  // The HEAD's answer was taken whatever object it described: a store that ignores If-Match (or
  // another writer's object, when the write named no ETag) gave another object's Last-Modified.
  test(
    "streamed: a HEAD answered by another object (another ETag) leaves the result's LastModified the write's",
    async () => {
      await s3.put("far", "docs/lm2.txt", "last modified 2");
      const other = { etag: '"0123456789abcdef0123456789abcdef"', "last-modified": "Mon, 01 Jan 2001 00:00:00 GMT" };
      s3.faults.set("/up/copied/lm2.txt", { kind: "reply", status: 200, body: "", method: "HEAD", times: 1, headers: other });
      try {
        const before = Date.now() - 2000;
        const r = await copy("/up/copied/lm2.txt", "/far/docs/lm2.txt");
        const xml = await r.text();
        expect(r.status).toBe(200);
        expect(s3.faults.hits("/up/copied/lm2.txt")).toBe(1);
        expect(Date.parse(/<LastModified>([^<]+)<\/LastModified>/.exec(xml)![1]!)).toBeGreaterThan(before);
      } finally {
        s3.faults.clear();
      }
    },
    T,
  );

  // The HEAD is for the result's LastModified only (the copy is stored): an upstream's SlowDown on
  // it was retried as a read is (3 HEADs and their backoff before a done copy's answer).
  test(
    "streamed: the LastModified HEAD is asked once; a SlowDown leaves the write's time",
    async () => {
      await s3.put("far", "docs/lm3.txt", "last modified 3");
      s3.faults.set("/up/copied/lm3.txt", { kind: "slowdown", method: "HEAD" });
      try {
        const r = await copy("/up/copied/lm3.txt", "/far/docs/lm3.txt");
        const xml = await r.text();
        expect(r.status).toBe(200);
        expect(xml).toContain("<LastModified>");
        expect(s3.faults.hits("/up/copied/lm3.txt")).toBe(1);
        expect(await text("up", "copied/lm3.txt")).toBe("last modified 3");
      } finally {
        s3.faults.clear();
      }
    },
    T,
  );

  test(
    "x-amz-metadata-directive / x-amz-tagging-directive REPLACE: the request's type, metadata and tags instead of the source's",
    async () => {
      await s3.put("far", "docs/replace.txt", "replace me", { contentType: "text/x-old", metadata: { old: "1" } });
      const r = await copy("/up/copied/replaced.txt", "/far/docs/replace.txt", {
        "x-amz-metadata-directive": "REPLACE", "content-type": "text/x-new", "x-amz-meta-new": "2", "x-amz-tagging-directive": "REPLACE", "x-amz-tagging": "t=9",
      });
      expect(r.status).toBe(200);
      const head = await signedFetch(env, { method: "HEAD", path: "/up/copied/replaced.txt", creds: COPIER });
      expect(head.headers.get("content-type")).toBe("text/x-new");
      expect(head.headers.get("x-amz-meta-new")).toBe("2");
      expect(head.headers.get("x-amz-meta-old")).toBeNull();
      const tags = await signedFetch(env, { method: "GET", path: "/up/copied/replaced.txt", query: [["tagging", ""]], creds: COPIER });
      expect(await tags.text()).toContain("<Key>t</Key><Value>9</Value>");
    },
    T,
  );

  test(
    "12 MiB streamed byte-exact; x-amz-checksum-algorithm: the copy's checksum computed on the way (an aws-chunked trailer) and stored",
    async () => {
      const big = bytesOf(12 * 1024 * 1024, 7);
      await s3.put("far", "big/12m.bin", big);
      env.mark();
      const r = await copy("/up/big/12m.bin", "/far/big/12m.bin", { "x-amz-checksum-algorithm": "SHA256" });
      const xml = await r.text();
      expect(r.status).toBe(200);
      const want = Buffer.from(sha256(big), "hex").toString("base64");
      expect(xml).toContain(`<ChecksumSHA256>${want}</ChecksumSHA256>`);
      expect(sha256((await s3.read("up", "big/12m.bin"))!)).toBe(sha256(big));
      const put = env.upstreamCalls().find((c) => c.method === "PUT")!;
      expect({ enc: put.headers["content-encoding"], trailer: put.headers["x-amz-trailer"], decoded: put.headers["x-amz-decoded-content-length"] }).toEqual({ enc: "aws-chunked", trailer: "x-amz-checksum-sha256", decoded: String(big.byteLength) });
    },
    T,
  );

  test(
    "a source stored with a full-object checksum: the checksum goes with the write, so the destination verifies the bytes it stores",
    async () => {
      await s3.put("far", "sum/c.txt", "checked end to end", { checksumAlgorithm: "CRC32" });
      env.mark();
      const r = await copy("/up/sum/c.txt", "/far/sum/c.txt");
      expect(r.status).toBe(200);
      const put = env.upstreamCalls().find((c) => c.method === "PUT")!;
      const get = env.upstreamCalls().find((c) => c.method === "GET")!;
      expect(get.headers["x-amz-checksum-mode"]).toBe("ENABLED");
      expect(put.headers["x-amz-checksum-crc32"]).toMatch(/^[A-Za-z0-9+/]{6}==$/);
      expect(await text("up", "sum/c.txt")).toBe("checked end to end");
    },
    T,
  );

  test(
    "the source's conditions (x-amz-copy-source-if-*): 412 PreconditionFailed naming the condition, nothing written; a missing source: NoSuchKey",
    async () => {
      await s3.put("far", "cond/x.txt", "conditional");
      const etag = (await signedFetch(env, { method: "HEAD", path: "/far/cond/x.txt", creds: COPIER })).headers.get("etag")!;
      const a = await answerOf(await copy("/up/cond/y.txt", "/far/cond/x.txt", { "x-amz-copy-source-if-match": '"0000"' }));
      expect({ status: a.status, code: a.code }).toEqual({ status: 412, code: "PreconditionFailed" });
      expect(a.body).toContain("<Condition>x-amz-copy-source-If-Match</Condition>");
      const b = await answerOf(await copy("/up/cond/y.txt", "/far/cond/x.txt", { "x-amz-copy-source-if-none-match": etag }));
      expect({ status: b.status, code: b.code }).toEqual({ status: 412, code: "PreconditionFailed" });
      expect(b.body).toContain("<Condition>x-amz-copy-source-If-None-Match</Condition>");
      // `*` matches any source, streamed (far → up) or server-side (up → other: the store's 412, as S3's)
      await s3.put("up", "cond/w.txt", "conditional");
      for (const [dst, src] of [["/up/cond/y.txt", "/far/cond/x.txt"], ["/other/cond/y.txt", "/up/cond/w.txt"]]) {
        const star = await answerOf(await copy(dst!, src!, { "x-amz-copy-source-if-none-match": "*" }));
        expect([src, star.status, star.code, star.body.includes("<Condition>x-amz-copy-source-If-None-Match</Condition>")]).toEqual([src, 412, "PreconditionFailed", true]);
      }
      expect(await s3.exists("up", "cond/y.txt")).toBe(false);
      const ok = await copy("/up/cond/y.txt", "/far/cond/x.txt", { "x-amz-copy-source-if-match": etag });
      expect(ok.status).toBe(200);
      const missing = await answerOf(await copy("/up/cond/z.txt", "/far/cond/nothing.txt"));
      expect({ status: missing.status, code: missing.code }).toEqual({ status: 404, code: "NoSuchKey" });
      expect(await s3.exists("up", "cond/z.txt")).toBe(false);
    },
    T,
  );

  test(
    "the source cut part-way (a store that sends its Content-Length, then 9 of 20 MiB): 500 InternalError saying nothing was written; the destination's upload aborted, nothing stored",
    async () => {
      env.mark();
      const a = await answerOf(await copy("/up/cut/dst.bin", "/cutter/cut/src.bin"));
      // (S3 never answers 502: the upstream's failure is its 500 InternalError, which SDKs retry)
      expect({ status: a.status, code: a.code }).toEqual({ status: 500, code: "InternalError" });
      expect(a.message).toContain("nothing was written");
      const put = await s3.waitForRequest((e) => e.method === "PUT" && e.pathname === "/up/cut/dst.bin" && (e.body === "aborted" || e.body === "complete"));
      expect(put.body).toBe("aborted");
      expect(await s3.exists("up", "cut/dst.bin")).toBe(false);
      expect(cutter.gets).toBe(1);
    },
    T,
  );

  test(
    "copying the source's tags needs the source authorizer's s3:GetObjectTagging (streamed and server-side): refused for a tagged source, allowed for an untagged one or with x-amz-tagging-directive REPLACE",
    async () => {
      const tagXml = "<Tagging><TagSet><Tag><Key>class</Key><Value>secret</Value></Tag></TagSet></Tagging>";
      const tag = (path: string) => signedFetch(env, { method: "PUT", path, query: [["tagging", ""]], creds: COPIER, body: tagXml, payloadHash: sha256(new TextEncoder().encode(tagXml)) });
      await s3.put("far", "tags/t.txt", "tagged far");
      await s3.put("far", "tags/plain.txt", "untagged far");
      expect((await tag("/far/tags/t.txt")).status).toBe(200);
      await s3.put("up", "tags/t.txt", "tagged up");
      await s3.put("up", "tags/plain.txt", "untagged up");
      expect((await tag("/up/tags/t.txt")).status).toBe(200);
      // streamed (opafar → up) and server-side (opaup → other: one store and key)
      for (const [from, to] of [["opafar", "up"], ["opaup", "other"]]) {
        const denied = await answerOf(await copy(`/${to}/tags-copy/${from}-t.txt`, `/${from}/tags/t.txt`));
        expect({ from, status: denied.status, code: denied.code }).toEqual({ from, status: 403, code: "AccessDenied" });
        expect(await s3.exists("up", `tags-copy/${from}-t.txt`)).toBe(false);
        expect((await copy(`/${to}/tags-copy/${from}-plain.txt`, `/${from}/tags/plain.txt`)).status).toBe(200);
        expect((await copy(`/${to}/tags-copy/${from}-replaced.txt`, `/${from}/tags/t.txt`, { "x-amz-tagging-directive": "REPLACE", "x-amz-tagging": "k=v" })).status).toBe(200);
      }
      const tags = await signedFetch(env, { method: "GET", path: "/up/tags-copy/opafar-replaced.txt", query: [["tagging", ""]], creds: COPIER });
      expect(await tags.text()).toContain("<Key>k</Key><Value>v</Value>");
    },
    T,
  );

  test(
    "a copy between two proxy buckets on one store, same key (the upstream's object onto itself): 200 as S3 answers a copy between two buckets, metadata and tags kept, the object rewritten server-side; one proxy bucket onto itself stays InvalidRequest",
    async () => {
      for (const [from, to] of [["upalt", "up"], ["other", "up"], ["up", "other"]]) {
        const key = `self/${from}-${to}.txt`;
        await s3.put("up", key, "myself", { contentType: "text/x-before", cacheControl: "max-age=7", metadata: { owner: "qa" } });
        const tagXml = "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>";
        expect((await signedFetch(env, { method: "PUT", path: `/up/${key}`, query: [["tagging", ""]], creds: COPIER, body: tagXml, payloadHash: sha256(new TextEncoder().encode(tagXml)) })).status).toBe(200);
        const r = await copy(`/${to}/${key}`, `/${from}/${key}`, { "content-type": "text/x-ignored" });
        const body = await r.text();
        expect({ from, to, status: r.status }).toEqual({ from, to, status: 200 });
        expect(body).toMatch(/<CopyObjectResult[^>]*><ETag>/);
        expect(await text("up", key)).toBe("myself");
        const head = await signedFetch(env, { method: "HEAD", path: `/up/${key}`, creds: COPIER });
        expect([head.headers.get("content-type"), head.headers.get("cache-control"), head.headers.get("x-amz-meta-owner")]).toEqual(["text/x-before", "max-age=7", "qa"]);
        const tags = await signedFetch(env, { method: "GET", path: `/up/${key}`, query: [["tagging", ""]], creds: COPIER });
        expect(await tags.text()).toContain("<Key>k</Key><Value>v</Value>");
      }
      await s3.put("up", "self/x.txt", "myself", { contentType: "text/x-before" });
      const a = await answerOf(await copy("/up/self/x.txt", "/up/self/x.txt"));
      expect({ status: a.status, code: a.code }).toEqual({ status: 400, code: "InvalidRequest" });
      expect(a.message).toContain("copy an object to itself");
      const r = await copy("/up/self/x.txt", "/upalt/self/x.txt", { "x-amz-metadata-directive": "REPLACE", "content-type": "text/x-after" });
      expect(r.status).toBe(200);
      expect(await text("up", "self/x.txt")).toBe("myself");
      const head = await signedFetch(env, { method: "HEAD", path: "/up/self/x.txt", creds: COPIER });
      expect(head.headers.get("content-type")).toBe("text/x-after");
    },
    T,
  );

  test(
    "the same-key copy between two proxy buckets on one store, a store sending weak ETags (W/\"x\"): pinned to the strong form, which the store matches (200, metadata kept), not to W/\"x\" (412)",
    async () => {
      const key = "self/weak.txt";
      const put = await s3.put("up", key, "weakly", { contentType: "text/x-weak" });
      s3.faults.set(`/up/${key}`, { kind: "weakEtag", method: "HEAD" });
      try {
        env.mark();
        const r = await copy(`/up/${key}`, `/upalt/${key}`);
        await r.text();
        expect(r.status).toBe(200);
        const pinned = env.upstreamCalls().find((c) => c.method === "PUT" && c.pathname === `/up/${key}`);
        expect(pinned?.headers["x-amz-copy-source-if-match"]).toBe(put.etag);
      } finally {
        s3.faults.delete(`/up/${key}`);
      }
      const head = await signedFetch(env, { method: "HEAD", path: `/up/${key}`, creds: COPIER });
      expect(head.headers.get("content-type")).toBe("text/x-weak");
    },
    T,
  );

  test(
    "a source version id with + and / (as botocore sends it, unencoded) reaches the source's upstream as it is",
    async () => {
      await s3.put("far", "ver/v.txt", "versioned");
      env.mark();
      await (await copy("/up/ver/v.txt", "/far/ver/v.txt?versionId=3sL4kqtJ+rmSp/Xd3d")).text();
      const get = env.upstreamCalls().find((c) => c.method === "GET" && c.pathname === "/far/ver/v.txt");
      expect(get?.query.versionId).toBe("3sL4kqtJ+rmSp/Xd3d");
    },
    T,
  );

  test(
    "a source answering without Content-Length (chunked, past the 8 MiB held whole): refused before anything is written; the destination keeps its object",
    async () => {
      await s3.put("far", "nolen/big.bin", bytesOf(12 * 1024 * 1024, 17));
      await s3.put("up", "nolen/victim.txt", "still here");
      // (the fixture's slowBody fault sends the body chunked, without Content-Length)
      s3.faults.set("/far/nolen/big.bin", { kind: "slowBody", bytesPerTick: 4 * 1024 * 1024, ms: 1, method: "GET" });
      try {
        env.mark();
        const a = await answerOf(await copy("/up/nolen/victim.txt", "/far/nolen/big.bin"));
        expect({ status: a.status, code: a.code }).toEqual({ status: 500, code: "InternalError" });
        expect(a.message).toContain("no Content-Length");
        expect(env.upstreamCalls().filter((c) => c.method === "PUT")).toEqual([]);
        expect(await text("up", "nolen/victim.txt")).toBe("still here");
      } finally {
        s3.faults.clear();
      }
    },
    T,
  );

  test(
    "tags the source authorizer refuses to show, server-side: a source whose tag set cannot be read (GetObjectTagging fails) is refused too (fails closed)",
    async () => {
      await s3.put("up", "tags/t2.txt", "tagged up 2");
      const tagXml = "<Tagging><TagSet><Tag><Key>class</Key><Value>secret</Value></Tag></TagSet></Tagging>";
      const put = await signedFetch(env, { method: "PUT", path: "/up/tags/t2.txt", query: [["tagging", ""]], creds: COPIER, body: tagXml, payloadHash: sha256(new TextEncoder().encode(tagXml)) });
      expect(put.status).toBe(200);
      // (every request for the source fails: a HEAD, which would show no tag count, as well)
      s3.faults.set("/up/tags/t2.txt", { kind: "error500" });
      try {
        const a = await answerOf(await copy("/other/tags-copy/t2.txt", "/opaup/tags/t2.txt"));
        expect({ status: a.status, code: a.code }).toEqual({ status: 403, code: "AccessDenied" });
        expect(await s3.exists("up", "tags-copy/t2.txt")).toBe(false);
      } finally {
        s3.faults.clear();
      }
    },
    T,
  );

  test(
    "the source must be readable by the caller: no grant on it, or its bucket's ip_filter refuses the address: AccessDenied, nothing read",
    async () => {
      await s3.put("far", "fenced/k.txt", "fenced");
      env.mark();
      const a = await answerOf(await copy("/up/x/k.txt", "/far/fenced/k.txt", {}, WRITER));
      expect({ status: a.status, code: a.code }).toEqual({ status: 403, code: "AccessDenied" });
      const b = await answerOf(await copy("/up/x/k.txt", "/fenced/fenced/k.txt"));
      expect({ status: b.status, code: b.code }).toEqual({ status: 403, code: "AccessDenied" });
      expect(env.upstreamCalls()).toEqual([]);
    },
    T,
  );
});

describe("UploadPartCopy across proxy buckets (streamed)", () => {
  test(
    "two ranges of a far object copied as the parts of an upload to up; Complete gives the source's bytes; a range past the end: InvalidArgument",
    async () => {
      const src = bytesOf(6 * 1024 * 1024 + 123, 11);
      await s3.put("far", "parts/src.bin", src);
      const create = await signedFetch(env, { method: "POST", path: "/up/parts/dst.bin", query: [["uploads", ""]], creds: COPIER });
      const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await create.text())![1]!;
      const split = 5 * 1024 * 1024;
      const etags: string[] = [];
      for (const [n, range] of [[1, `bytes=0-${split - 1}`], [2, `bytes=${split}-${src.byteLength - 1}`]] as const) {
        const r = await signedFetch(env, { method: "PUT", path: "/up/parts/dst.bin", query: [["partNumber", String(n)], ["uploadId", uploadId]], headers: { "x-amz-copy-source": "/far/parts/src.bin", "x-amz-copy-source-range": range }, creds: COPIER });
        const xml = await r.text();
        expect(r.status).toBe(200);
        expect(xml).toContain("<CopyPartResult");
        etags.push(/<ETag>([^<]+)<\/ETag>/.exec(xml)![1]!.replaceAll("&quot;", '"'));
      }
      const past = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/parts/dst.bin", query: [["partNumber", "3"], ["uploadId", uploadId]], headers: { "x-amz-copy-source": "/far/parts/src.bin", "x-amz-copy-source-range": `bytes=${src.byteLength}-${src.byteLength + 10}` }, creds: COPIER }));
      expect({ status: past.status, code: past.code }).toEqual({ status: 400, code: "InvalidArgument" });
      const body = `<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join("")}</CompleteMultipartUpload>`;
      const done = await signedFetch(env, { method: "POST", path: "/up/parts/dst.bin", query: [["uploadId", uploadId]], body, payloadHash: sha256(new TextEncoder().encode(body)), creds: COPIER });
      expect(done.status).toBe(200);
      expect(await done.text()).toContain("<CompleteMultipartUploadResult");
      expect(sha256((await s3.read("up", "parts/dst.bin"))!)).toBe(sha256(src));
    },
    T,
  );
});

describe("UploadPartCopy into an upload created with a checksum algorithm (streamed)", () => {
  test(
    "each part is sent with that algorithm's checksum (an aws-chunked trailer), the CopyPartResult carries it, and a Complete naming them succeeds",
    async () => {
      const src = bytesOf(5 * 1024 * 1024 + 77, 13);
      await s3.put("far", "parts/crc.bin", src);
      const create = await signedFetch(env, { method: "POST", path: "/up/parts/crc.bin", query: [["uploads", ""]], headers: { "x-amz-checksum-algorithm": "CRC32" }, creds: COPIER });
      const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await create.text())![1]!;
      env.mark();
      const split = 5 * 1024 * 1024;
      const parts: Array<{ etag: string; crc: string }> = [];
      for (const [n, range] of [[1, `bytes=0-${split - 1}`], [2, `bytes=${split}-${src.byteLength - 1}`]] as const) {
        const r = await signedFetch(env, { method: "PUT", path: "/up/parts/crc.bin", query: [["partNumber", String(n)], ["uploadId", uploadId]], headers: { "x-amz-copy-source": "/far/parts/crc.bin", "x-amz-copy-source-range": range }, creds: COPIER });
        const xml = await r.text();
        expect(r.status).toBe(200);
        const crc = /<ChecksumCRC32>([^<]+)<\/ChecksumCRC32>/.exec(xml)?.[1];
        expect(crc).toMatch(/^[A-Za-z0-9+/]{6}==$/);
        parts.push({ etag: /<ETag>([^<]+)<\/ETag>/.exec(xml)![1]!.replaceAll("&quot;", '"'), crc: crc! });
      }
      const sent = env.upstreamCalls().filter((c) => c.method === "PUT" && c.query.partNumber !== undefined);
      expect(sent.map((c) => c.headers["x-amz-trailer"])).toEqual(["x-amz-checksum-crc32", "x-amz-checksum-crc32"]);
      const body = `<CompleteMultipartUpload>${parts.map((p, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${p.etag}</ETag><ChecksumCRC32>${p.crc}</ChecksumCRC32></Part>`).join("")}</CompleteMultipartUpload>`;
      const done = await signedFetch(env, { method: "POST", path: "/up/parts/crc.bin", query: [["uploadId", uploadId]], body, payloadHash: sha256(new TextEncoder().encode(body)), creds: COPIER });
      expect(done.status).toBe(200);
      expect(sha256((await s3.read("up", "parts/crc.bin"))!)).toBe(sha256(src));
    },
    T,
  );
});

// S3 may answer a copy 200 and report its failure in the body (an <Error> document after the head
// went out); a streamed copy's write whose answer was such a 200 was reported as the copy's success
// (the body was never read): nothing, or not the source, was stored while the client was told 200.
describe("a streamed copy's write answered 200 with an <Error> body", () => {
  const ERROR_BODY = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>`;
  test(
    "CopyObject and UploadPartCopy: the error is the answer (500 InternalError), not a result",
    async () => {
      await s3.put("far", "docs/err.txt", "will fail");
      s3.faults.set("/up/copied/err.txt", { kind: "reply", status: 200, body: ERROR_BODY, method: "PUT", times: 1 });
      const create = await signedFetch(env, { method: "POST", path: "/up/parts/err.bin", query: [["uploads", ""]], creds: COPIER });
      const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await create.text())![1]!;
      s3.faults.set("/up/parts/err.bin", { kind: "reply", status: 200, body: ERROR_BODY, method: "PUT", times: 1 });
      try {
        const object = await answerOf(await copy("/up/copied/err.txt", "/far/docs/err.txt"));
        const part = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/parts/err.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], headers: { "x-amz-copy-source": "/far/docs/err.txt" }, creds: COPIER }));
        expect([object.status, object.code, part.status, part.code]).toEqual([500, "InternalError", 500, "InternalError"]);
        expect(s3.faults.hits("/up/copied/err.txt") + s3.faults.hits("/up/parts/err.bin")).toBe(2);
      } finally {
        s3.faults.clear();
      }
    },
    T,
  );
});

// A streamed part copy's CopyPartResult LastModified was the UploadPart answer's Date (S3 sends no
// Last-Modified there): when the answer was sent, not the part's time, which ListParts then gave
// otherwise. S3's is the copied part's time ("when the object was uploaded": the part, as MinIO and
// moto answer it too).
describe("a streamed part copy's LastModified", () => {
  test(
    "is the stored part's (ListParts), not the UploadPart answer's Date; an answer whose part is another's keeps the Date",
    async () => {
      const body = "part copied for its time";
      await s3.put("far", "parts/lm-src.txt", body);
      const create = await signedFetch(env, { method: "POST", path: "/up/parts/lm.bin", query: [["uploads", ""]], creds: COPIER });
      const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await create.text())![1]!;
      // (the part stored first with the same bytes: the faked answer below then describes it)
      const put = await signedFetch(env, { method: "PUT", path: "/up/parts/lm.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], body, creds: COPIER });
      const etag = put.headers.get("etag")!;
      const old = "Mon, 01 Jan 2001 00:00:00 GMT";
      s3.faults.set("/up/parts/lm.bin", { kind: "reply", status: 200, body: "", method: "PUT", times: 1, headers: { etag, date: old } });
      try {
        const r = await signedFetch(env, { method: "PUT", path: "/up/parts/lm.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], headers: { "x-amz-copy-source": "/far/parts/lm-src.txt" }, creds: COPIER });
        const xml = await r.text();
        expect(r.status).toBe(200);
        const parts = await (await signedFetch(env, { method: "GET", path: "/up/parts/lm.bin", query: [["uploadId", uploadId]], creds: COPIER })).text();
        const stored = /<Part>.*?<LastModified>([^<]+)<\/LastModified>/s.exec(parts)![1]!;
        expect(/<LastModified>([^<]+)<\/LastModified>/.exec(xml)?.[1]).toBe(new Date(stored).toISOString());
        // (a part whose ETag is not the answer's: not this copy's time, the answer's Date stays)
        s3.faults.set("/up/parts/lm.bin", { kind: "reply", status: 200, body: "", method: "PUT", times: 1, headers: { etag: '"0123456789abcdef0123456789abcdef"', date: old } });
        const other = await signedFetch(env, { method: "PUT", path: "/up/parts/lm.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], headers: { "x-amz-copy-source": "/far/parts/lm-src.txt" }, creds: COPIER });
        expect(/<LastModified>([^<]+)<\/LastModified>/.exec(await other.text())?.[1]).toBe(new Date(old).toISOString());
      } finally {
        s3.faults.clear();
      }
    },
    T,
  );
});

describe("UploadPartCopy when ListParts is refused (a key without s3:ListMultipartUploadParts)", () => {
  test(
    "the part is still copied (without a checksum of its own)",
    async () => {
      const src = bytesOf(300_000, 19);
      await s3.put("far", "parts/lp-src.bin", src);
      const create = await signedFetch(env, { method: "POST", path: "/up/parts/lp.bin", query: [["uploads", ""]], creds: COPIER });
      const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await create.text())![1]!;
      s3.faults.set("/up/parts/lp.bin", { kind: "error", status: 403, code: "AccessDenied", method: "GET" });
      try {
        const r = await signedFetch(env, { method: "PUT", path: "/up/parts/lp.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], headers: { "x-amz-copy-source": "/far/parts/lp-src.bin" }, creds: COPIER });
        const xml = await r.text();
        expect(r.status).toBe(200);
        expect(xml).toContain("<CopyPartResult");
      } finally {
        s3.faults.clear();
      }
    },
    T,
  );
});

describe("real clients copy between proxy buckets (streamed: far → up)", () => {
  const target = () => ({ endpoint: env.endpoint, credentials: COPIER });

  test(
    "aws s3 cp s3://far/... s3://up/... (one CopyObject; 9 MiB, past aws-cli's 8 MiB threshold: a multipart copy, UploadPartCopy per part) and aws s3 sync between buckets",
    async () => {
      using aws = awsCli(target());
      const small = "small file via aws-cli";
      const big = bytesOf(9 * 1024 * 1024, 21); // (two parts: 8 MiB and 1 MiB)
      await s3.put("far", "cli/small.txt", small, { contentType: "text/x-small", metadata: { m: "1" } });
      await s3.put("far", "cli/big.bin", big);
      await s3.put("far", "cli/sub/two.txt", "two");
      const a = await aws.s3("cp", "s3://far/cli/small.txt", "s3://up/cli/small.txt");
      expect(a.code, a.stderr).toBe(0);
      expect(await text("up", "cli/small.txt")).toBe(small);
      const head = await signedFetch(env, { method: "HEAD", path: "/up/cli/small.txt", creds: COPIER });
      expect(head.headers.get("content-type")).toBe("text/x-small");
      expect(head.headers.get("x-amz-meta-m")).toBe("1");
      env.mark();
      const b = await aws.s3("cp", "s3://far/cli/big.bin", "s3://up/cli/big.bin");
      expect(b.code, b.stderr).toBe(0);
      expect(sha256((await s3.read("up", "cli/big.bin"))!)).toBe(sha256(big));
      // (the parts were streamed: each read from far with far's key, written to up with up's)
      const parts = env.upstreamCalls().filter((c) => c.method === "PUT" && c.query.partNumber !== undefined);
      expect(parts.length).toBeGreaterThan(1);
      expect(new Set(parts.map((c) => c.accessKeyId))).toEqual(new Set([UPSTREAM_WRITER.accessKeyId]));
      expect(parts.every((c) => c.headers["x-amz-copy-source"] === undefined)).toBe(true);
      const c = await aws.s3("sync", "s3://far/cli/", "s3://up/synced/");
      expect(c.code, c.stderr).toBe(0);
      expect(await text("up", "synced/sub/two.txt")).toBe("two");
      expect(sha256((await s3.read("up", "synced/big.bin"))!)).toBe(sha256(big));
    },
    120_000,
  );

  test(
    "rclone copy far:dir up:dir (its server-side copy: CopyObject through the proxy), then rclone check finds the two sides equal",
    async () => {
      using rc = rcloneClient({ ...target(), settings: { no_check_bucket: "true" } });
      await s3.put("far", "rc/one.txt", "one");
      await s3.put("far", "rc/deep/two.bin", bytesOf(300_000, 5));
      const r = await rc.run("copy", "-v", rc.remote("far/rc"), rc.remote("up/rc-copy"));
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain("Copied (server-side copy)");
      expect(await text("up", "rc-copy/one.txt")).toBe("one");
      const check = await rc.run("check", rc.remote("far/rc"), rc.remote("up/rc-copy"));
      expect(check.code, check.stderr).toBe(0);
    },
    120_000,
  );
});

describe("a copy slower than the keep-alive interval (YATAGARASU_S3_KEEPALIVE_MS, shortened here): S3's 200 with spaces, then the document", () => {
  const saved = process.env.YATAGARASU_S3_KEEPALIVE_MS;
  beforeAll(() => {
    process.env.YATAGARASU_S3_KEEPALIVE_MS = "100";
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.YATAGARASU_S3_KEEPALIVE_MS;
    else process.env.YATAGARASU_S3_KEEPALIVE_MS = saved;
    s3.faults.clear();
  });

  test(
    "a success: the head at once, the XML declaration, spaces while the source is slow, then the CopyObjectResult; the copy stored",
    async () => {
      await s3.put("far", "slow/src.txt", "slow source");
      s3.faults.set("/far/slow/src.txt", { kind: "delay", ms: 600 });
      const r = await copy("/up/slow/dst.txt", "/far/slow/src.txt");
      expect(r.status).toBe(200);
      const body = await r.text();
      expect(body).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n {2,}<CopyObjectResult xmlns="[^"]+"><ETag>&quot;[0-9a-f]{32}&quot;<\/ETag>/);
      expect(await text("up", "slow/dst.txt")).toBe("slow source");
    },
    T,
  );

  test(
    "a failure after the head: the <Error> document in the 200 (as S3 sends it); the JS SDK throws NoSuchKey, aws-cli (botocore: a 200 error is a 500) exits non-zero",
    async () => {
      s3.faults.set("/far/slow/missing.txt", { kind: "delay", ms: 600 });
      const r = await copy("/up/slow/never.txt", "/far/slow/missing.txt");
      expect(r.status).toBe(200);
      const body = await r.text();
      expect(body).toMatch(/^<\?xml[^>]*\?>\n {2,}<Error><Code>NoSuchKey<\/Code>/);
      using aws = awsCli({ endpoint: env.endpoint, credentials: COPIER });
      const cli = await aws.s3api("copy-object", "--bucket", "up", "--key", "slow/never.txt", "--copy-source", "far/slow/missing.txt");
      expect(cli.code).not.toBe(0);
      expect(cli.stderr).toContain("when calling the CopyObject operation");
      const sdk = new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, credentials: COPIER, maxAttempts: 1 });
      const err = await sdk.send(new CopyObjectCommand({ Bucket: "up", Key: "slow/never.txt", CopySource: "far/slow/missing.txt" })).then(() => undefined, (e: Error) => e);
      expect(err?.name).toBe("NoSuchKey");
      sdk.destroy();
      expect(await s3.exists("up", "slow/never.txt")).toBe(false);
    },
    T,
  );
});
