/**
 * GetObject/HeadObject on the S3 front through the shared object phase: ranges, conditionals,
 * If-Range, response-* overrides (never stored in the cache), the cache (authorization before
 * it), OPA asked with the S3 action and the identity's claims, virtual-hosted addressing, and the
 * node engine.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { GetBucketVersioningCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListBucketsCommand, PutBucketVersioningCommand, S3Client } from "@aws-sdk/client-s3";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OpaServer } from "../fixtures/opa.ts";
import { smithyPresigned, smithySigned, type SmithyRequest } from "../fronts/s3/helpers.ts";
import { APP, hs256, LISTER, startS3FrontEnv, UPSTREAM, type S3FrontEnv } from "./s3-front-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const client = (env: S3FrontEnv, credentials = APP) => new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, credentials, maxAttempts: 1 });

async function signedFetch(env: S3FrontEnv, r: Omit<SmithyRequest, "creds" | "date" | "host"> & { creds?: SmithyRequest["creds"]; host?: string }) {
  const host = r.host ?? `127.0.0.1:${env.port}`;
  const v = await smithySigned({ creds: APP, date: new Date(), ...r, host });
  const headers = new Headers(v.headers);
  if (r.host === undefined) headers.delete("host");
  return fetch(env.endpoint + v.rawPath + (v.rawQuery ? `?${v.rawQuery}` : ""), { method: v.method, headers });
}

describe("objects (cached bucket)", () => {
  let env: S3FrontEnv;
  let etag = "";
  beforeAll(async () => {
    env = await startS3FrontEnv({ cache: true });
    etag = (await env.s3.put("data", "doc.txt", "0123456789", { contentType: "text/plain", metadata: { owner: "me" } })).etag;
    await env.s3.put("private", "p.txt", "private body");
  });
  afterAll(() => env.stop());

  test("GetObject and HeadObject: bytes, headers, metadata; the second GET is a cache hit that never reaches the upstream", async () => {
    const c = client(env);
    try {
      env.mark();
      const g = await c.send(new GetObjectCommand({ Bucket: "data", Key: "doc.txt" }));
      expect(await g.Body!.transformToString()).toBe("0123456789");
      expect([g.ContentType, g.ETag, g.Metadata]).toEqual(["text/plain", etag, { owner: "me" }]);
      // the SDK reports S3's x-amz-request-id with every call: ours (the access log's request_id)
      expect(g.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(env.upstreamCalls().length).toBe(1);
      env.mark();
      const h = await c.send(new HeadObjectCommand({ Bucket: "data", Key: "doc.txt" }));
      expect([h.ContentLength, h.ETag]).toEqual([10, etag]);
      expect(h.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(h.$metadata.requestId).not.toBe(g.$metadata.requestId);
      const again = await signedFetch(env, { path: "/data/doc.txt" });
      expect(again.headers.get("x-amz-request-id")).toBe(again.headers.get("x-request-id"));
      expect([again.status, again.headers.get("x-cache"), await again.text()]).toEqual([200, "HIT", "0123456789"]);
      expect(env.upstreamCalls()).toEqual([]);
    } finally {
      c.destroy();
    }
  });

  test("a bucket anonymous requests may not read: an object stored `public` is answered `private` (a shared cache must not keep it without the signature), miss and hit, GET, a version; HeadObject reports it as stored (aws-cli copies it to a multipart copy); an open bucket relays it", async () => {
    await env.s3.put("private", "pub.txt", "stored public", { cacheControl: "public, max-age=3600, s-maxage=600" });
    await env.s3.put("data", "pub.txt", "stored public", { cacheControl: "public, max-age=3600" });
    for (let i = 0; i < 2; i++) {
      const g = await signedFetch(env, { path: "/private/pub.txt" });
      expect([g.status, g.headers.get("cache-control"), await g.text()]).toEqual([200, "private, max-age=3600", "stored public"]);
    }
    const h = await signedFetch(env, { method: "HEAD", path: "/private/pub.txt" });
    expect(h.headers.get("cache-control")).toBe("public, max-age=3600, s-maxage=600");
    const hv = await signedFetch(env, { method: "HEAD", path: "/private/pub.txt", query: { versionId: "null" } });
    expect(hv.headers.get("cache-control")).toBe("public, max-age=3600, s-maxage=600");
    const v = await signedFetch(env, { path: "/private/pub.txt", query: { versionId: "null" } });
    expect([v.status, v.headers.get("cache-control")]).toEqual([200, "private, max-age=3600"]);
    // the signed request's own response-cache-control is what it asked for, kept private: `public`
    // or `s-maxage` asked for would let a shared cache keep the restricted object under its URL
    // (a header-signed request's URL has no signature) and serve it to anyone (it replaced `private`)
    const asked = await signedFetch(env, { path: "/private/pub.txt", query: { "response-cache-control": "no-store" } });
    expect(asked.headers.get("cache-control")).toBe("private, no-store");
    for (const [query, expected] of [[{ "response-cache-control": "public" }, "private"], [{ "response-cache-control": "public, max-age=60, s-maxage=600" }, "private, max-age=60"], [{ "response-cache-control": "public", versionId: "null" }, "private"]] as const) {
      const r = await signedFetch(env, { path: "/private/pub.txt", query: { ...query } });
      expect([r.status, r.headers.get("cache-control")]).toEqual([200, expected]);
    }
    // (an open bucket's answer is the overrides' as asked)
    const openAsked = await signedFetch(env, { path: "/data/pub.txt", query: { "response-cache-control": "public, s-maxage=5" } });
    expect(openAsked.headers.get("cache-control")).toBe("public, s-maxage=5");
    const open = await signedFetch(env, { path: "/data/pub.txt" });
    expect(open.headers.get("cache-control")).toBe("public, max-age=3600");
    // a version is never an anonymous read, on any bucket
    const version = await signedFetch(env, { path: "/data/pub.txt", query: { versionId: "null" } });
    expect([version.status, version.headers.get("cache-control")]).toEqual([200, "private, max-age=3600"]);
  });

  test("an object's Object Lock state (x-amz-object-lock-*) reaches no reader: S3 shows it only to one that may read its retention or legal hold, which no grant here gives; a miss and a hit", async () => {
    const lock = { etag: '"0123456789abcdef0123456789abcdef"', "last-modified": "Mon, 01 Jan 2024 00:00:00 GMT", "content-type": "text/plain", "x-amz-object-lock-mode": "COMPLIANCE", "x-amz-object-lock-retain-until-date": "2030-01-01T00:00:00.000Z", "x-amz-object-lock-legal-hold": "ON" };
    env.s3.faults.set("/data/locked.txt", { kind: "reply", status: 200, body: "locked", headers: lock, method: "GET" });
    try {
      for (let i = 0; i < 2; i++) {
        const g = await signedFetch(env, { path: "/data/locked.txt" });
        expect([g.status, await g.text(), g.headers.get("x-amz-object-lock-mode"), g.headers.get("x-amz-object-lock-retain-until-date"), g.headers.get("x-amz-object-lock-legal-hold")]).toEqual([200, "locked", null, null, null]);
      }
      const plain = await fetch(env.mainUrl("/data/locked.txt"));
      expect([plain.status, plain.headers.get("x-amz-object-lock-mode")]).toEqual([200, null]);
    } finally {
      env.s3.faults.clear();
    }
  });

  test("the object's state S3 reports (StorageClass here) reaches the SDK on a miss and on a cache hit, GetObject and HeadObject", async () => {
    await env.s3.put("data", "ia.txt", "infrequent", { storageClass: "STANDARD_IA" });
    const c = client(env);
    try {
      env.mark();
      const miss = await c.send(new GetObjectCommand({ Bucket: "data", Key: "ia.txt" }));
      expect(await miss.Body!.transformToString()).toBe("infrequent");
      expect(miss.StorageClass).toBe("STANDARD_IA");
      const hit = await signedFetch(env, { path: "/data/ia.txt" });
      expect([hit.headers.get("x-cache"), hit.headers.get("x-amz-storage-class"), await hit.text()]).toEqual(["HIT", "STANDARD_IA", "infrequent"]);
      const head = await c.send(new HeadObjectCommand({ Bucket: "data", Key: "ia.txt" }));
      expect(head.StorageClass).toBe("STANDARD_IA");
      expect(env.upstreamCalls().length).toBe(1);
    } finally {
      c.destroy();
    }
  });

  test("authorization runs before the cache: an identity without read gets AccessDenied for a cached object", async () => {
    await signedFetch(env, { path: "/data/doc.txt" }); // cached
    env.mark();
    const r = await signedFetch(env, { path: "/data/doc.txt", creds: LISTER });
    expect(r.status).toBe(403);
    expect(await r.text()).toContain("<Code>AccessDenied</Code>");
    expect(r.headers.get("x-cache")).toBeNull();
    expect(env.upstreamCalls()).toEqual([]);
  });

  test("Range → 206; If-None-Match → 304; If-Match mismatch → 412 PreconditionFailed; unsatisfiable → 416 InvalidRange; stale If-Range → 200 whole", async () => {
    const range = await signedFetch(env, { path: "/data/doc.txt", headers: { range: "bytes=2-4" } });
    expect([range.status, range.headers.get("content-range"), await range.text()]).toEqual([206, "bytes 2-4/10", "234"]);
    const notModified = await signedFetch(env, { path: "/data/doc.txt", headers: { "if-none-match": etag } });
    expect(notModified.status).toBe(304);
    const failed = await signedFetch(env, { path: "/data/doc.txt", headers: { "if-match": '"nope"' } });
    const failedBody = await failed.text();
    expect([failed.status, /<Code>(\w+)/.exec(failedBody)?.[1], /<Condition>([\w-]+)/.exec(failedBody)?.[1]]).toEqual([412, "PreconditionFailed", "If-Match"]);
    // (S3 names the failed condition; If-Match decides when both are sent)
    const old = "Thu, 01 Jan 1970 00:00:00 GMT";
    const unmodified = await signedFetch(env, { path: "/data/doc.txt", headers: { "if-unmodified-since": old } });
    expect([unmodified.status, /<Condition>([\w-]+)/.exec(await unmodified.text())?.[1]]).toEqual([412, "If-Unmodified-Since"]);
    const both = await signedFetch(env, { path: "/data/doc.txt", headers: { "if-unmodified-since": old, "if-match": '"nope"' } });
    expect([both.status, /<Condition>([\w-]+)/.exec(await both.text())?.[1]]).toEqual([412, "If-Match"]);
    // An empty If-Match is not forwarded nor checked: the failed condition is If-Unmodified-Since (it said If-Match)
    const emptyMatch = await signedFetch(env, { path: "/data/doc.txt", headers: { "if-unmodified-since": old, "if-match": "" } });
    expect([emptyMatch.status, /<Condition>([\w-]+)/.exec(await emptyMatch.text())?.[1]]).toEqual([412, "If-Unmodified-Since"]);
    const bad = await signedFetch(env, { path: "/data/doc.txt", headers: { range: "bytes=50-60" } });
    expect([bad.status, /<Code>(\w+)/.exec(await bad.text())?.[1], bad.headers.get("content-range")]).toEqual([416, "InvalidRange", "bytes */10"]);
    const stale = await signedFetch(env, { path: "/data/doc.txt", headers: { range: "bytes=0-1", "if-range": '"stale"' } });
    expect([stale.status, await stale.text()]).toEqual([200, "0123456789"]);
  });

  test("an upstream ETag without quotes (`ETag: abc123`, as some S3-compatible stores send it) reaches clients quoted, as S3 sends it: both fronts, cached (miss, hit) and not; conditions match either form", async () => {
    const put = await env.s3.put("data", "bare-etag.txt", "bare body");
    env.s3.faults.set("/data/bare-etag.txt", { kind: "unquotedEtag" });
    try {
      const bare = put.etag.replace(/"/g, "");
      const seen: string[] = [];
      const note = async (label: string, res: Response) => {
        seen.push(`${label} ${res.status} ${res.headers.get("etag")}`);
        await res.body?.cancel();
      };
      // (S3 front first: the cached bucket's miss, then the plain front's hit; /open is the same upstream bucket, uncached)
      await note("s3 get", await signedFetch(env, { path: "/data/bare-etag.txt" }));
      await note("s3 head", await signedFetch(env, { method: "HEAD", path: "/data/bare-etag.txt" }));
      await note("plain hit", await fetch(env.mainUrl("/data/bare-etag.txt")));
      await note("plain uncached", await fetch(env.mainUrl("/open/bare-etag.txt")));
      await note("plain uncached head", await fetch(env.mainUrl("/open/bare-etag.txt"), { method: "HEAD" }));
      for (const tag of [put.etag, bare]) {
        await note(`hit if-none-match ${tag === bare ? "bare" : "quoted"}`, await fetch(env.mainUrl("/data/bare-etag.txt"), { headers: { "if-none-match": tag } }));
        await note(`hit if-match ${tag === bare ? "bare" : "quoted"}`, await fetch(env.mainUrl("/data/bare-etag.txt"), { headers: { "if-match": tag } }));
      }
      expect(seen).toEqual([
        `s3 get 200 ${put.etag}`,
        `s3 head 200 ${put.etag}`,
        `plain hit 200 ${put.etag}`,
        `plain uncached 200 ${put.etag}`,
        `plain uncached head 200 ${put.etag}`,
        `hit if-none-match quoted 304 ${put.etag}`,
        `hit if-match quoted 200 ${put.etag}`,
        `hit if-none-match bare 304 ${put.etag}`,
        `hit if-match bare 200 ${put.etag}`,
      ]);
      expect(put.etag).toMatch(/^"[0-9a-f]{32}"$/);
      expect(env.s3.faults.hits("/data/bare-etag.txt")).toBe(3);
    } finally {
      env.s3.faults.delete("/data/bare-etag.txt");
    }
  });

  test("response-* overrides: applied to this answer only (signed and presigned), never to the cached copy", async () => {
    const over = await signedFetch(env, { path: "/data/doc.txt", query: { "response-content-type": "application/x-over", "response-content-disposition": 'attachment; filename="x.txt"', "response-cache-control": "no-cache" } });
    expect([over.status, over.headers.get("content-type"), over.headers.get("content-disposition"), over.headers.get("cache-control")]).toEqual([200, "application/x-over", 'attachment; filename="x.txt"', "no-cache"]);
    // Latin-1 goes out as its bytes; beyond it S3's own refusal (RFC 5987's filename*= is the way); RFC 5987 passes as written
    const latin1 = await signedFetch(env, { path: "/data/doc.txt", query: { "response-content-disposition": 'attachment; filename="caf\u00e9.txt"' } });
    expect([latin1.status, Buffer.from(await latin1.arrayBuffer()).length, latin1.headers.get("content-disposition")]).toEqual([200, 10, 'attachment; filename="caf\u00e9.txt"']);
    const wide = await signedFetch(env, { path: "/data/doc.txt", query: { "response-content-disposition": 'attachment; filename="\u00e9\u4e2d.txt"' } });
    const wideBody = await wide.text();
    expect([wide.status, /<Message>([^<]*)</.exec(wideBody)?.[1], /<ArgumentName>([^<]*)</.exec(wideBody)?.[1]]).toEqual([400, "Header value cannot be represented using ISO-8859-1.", "response-content-disposition"]);
    const rfc5987 = await signedFetch(env, { path: "/data/doc.txt", query: { "response-content-disposition": "attachment; filename*=UTF-8''%E4%B8%AD.txt" } });
    expect(rfc5987.headers.get("content-disposition")).toBe("attachment; filename*=UTF-8''%E4%B8%AD.txt");
    const v = await smithyPresigned({ creds: APP, date: new Date(), host: `127.0.0.1:${env.port}`, path: "/data/doc.txt", query: { "response-content-language": "fr" }, expiresIn: 60 });
    const pre = await fetch(`${env.endpoint}${v.rawPath}?${v.rawQuery}`);
    expect([pre.status, pre.headers.get("content-language")]).toEqual([200, "fr"]);
    const plain = await signedFetch(env, { path: "/data/doc.txt" });
    expect([plain.headers.get("content-type"), plain.headers.get("content-disposition"), plain.headers.get("content-language")]).toEqual(["text/plain", null, null]);
    // an empty override sets nothing: one Content-Type, the stored one (two were sent, boto3 read ", text/plain;charset=utf-8")
    const empty = await signedFetch(env, { path: "/data/doc.txt", query: { "response-content-type": "", "response-content-language": "" } });
    expect([empty.status, empty.headers.get("content-type"), empty.headers.get("content-language")]).toEqual([200, "text/plain", null]);
    // a 304 carries the Cache-Control and Expires its 200 would (RFC 9110 §15.4.5), the other overrides not
    const etag = over.headers.get("etag")!;
    const q = { "response-cache-control": "no-cache", "response-expires": "Thu, 01 Dec 1994 16:00:00 GMT", "response-content-type": "application/x-over" };
    const ok = await signedFetch(env, { path: "/data/doc.txt", query: q });
    const notModified = await signedFetch(env, { path: "/data/doc.txt", query: q, headers: { "if-none-match": etag } });
    expect([ok.status, ok.headers.get("cache-control"), ok.headers.get("expires")]).toEqual([200, "no-cache", "Thu, 01 Dec 1994 16:00:00 GMT"]);
    expect([notModified.status, notModified.headers.get("cache-control"), notModified.headers.get("expires")]).toEqual([304, "no-cache", "Thu, 01 Dec 1994 16:00:00 GMT"]);
    expect(notModified.headers.get("content-type")).not.toBe("application/x-over");
  });

  test("a missing key → 404 NoSuchKey in S3 XML (HEAD: status only)", async () => {
    const c = client(env);
    try {
      await expect(c.send(new GetObjectCommand({ Bucket: "data", Key: "nope.txt" }))).rejects.toMatchObject({ name: "NoSuchKey", $metadata: { httpStatusCode: 404 } });
      await expect(c.send(new HeadObjectCommand({ Bucket: "data", Key: "nope.txt" }))).rejects.toMatchObject({ name: "NotFound", $metadata: { httpStatusCode: 404 } });
    } finally {
      c.destroy();
    }
  });

  test("a missing key is 404 NoSuchKey (with <Key>, HostId, x-amz-id-2) only to a caller who may list the bucket; 403 AccessDenied to a reader without list and to an anonymous caller, as S3 answers without s3:ListBucket", async () => {
    const lister = await signedFetch(env, { path: "/data/nope%20key.txt" }); // APP: data [read, list]
    const body = await lister.text();
    expect([lister.status, /<Code>(\w+)/.exec(body)?.[1], /<Key>([^<]*)/.exec(body)?.[1]]).toEqual([404, "NoSuchKey", "nope key.txt"]);
    const hostId = lister.headers.get("x-amz-id-2");
    expect(hostId).toMatch(/^[A-Za-z0-9+/=]{16,}$/);
    expect(body).toContain(`<HostId>${hostId}</HostId>`);
    for (const method of ["GET", "HEAD"]) {
      const reader = await signedFetch(env, { method, path: "/private/nope.txt" }); // APP: private [read]
      expect([method, reader.status]).toEqual([method, 403]);
      if (method === "GET") expect(await reader.text()).toContain("<Code>AccessDenied</Code>");
      const anonymous = await fetch(`http://127.0.0.1:${env.port}/data/nope.txt`, { method });
      expect([method, anonymous.status]).toEqual([method, 403]);
      if (method === "GET") expect(await anonymous.text()).toContain("<Code>AccessDenied</Code>");
    }
    // an object that exists is still served to both
    expect((await signedFetch(env, { path: "/private/p.txt" })).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${env.port}/data/doc.txt`)).status).toBe(200);
    const c = client(env);
    try {
      await expect(c.send(new GetObjectCommand({ Bucket: "private", Key: "nope.txt" }))).rejects.toMatchObject({ name: "AccessDenied", $metadata: { httpStatusCode: 403 } });
    } finally {
      c.destroy();
    }
  });

  test("GetObject/HeadObject with a customer key (SSE-C) → 501 NotImplemented, never read with the key dropped (the cached or plain object was answered 200)", async () => {
    const key = Buffer.alloc(32, 7);
    const sse = {
      "x-amz-server-side-encryption-customer-algorithm": "AES256",
      "x-amz-server-side-encryption-customer-key": key.toString("base64"),
      "x-amz-server-side-encryption-customer-key-md5": new Bun.CryptoHasher("md5").update(key).digest("base64"),
    };
    env.mark();
    for (const method of ["GET", "HEAD"]) {
      const r = await signedFetch(env, { method, path: "/data/doc.txt", headers: sse });
      expect([method, r.status]).toEqual([method, 501]);
      if (method === "GET") expect(await r.text()).toContain("<Code>NotImplemented</Code>");
    }
    const anonymous = await fetch(`http://127.0.0.1:${env.port}/data/doc.txt`, { headers: sse });
    expect(anonymous.status).toBe(501);
    // a presigned URL with the key in its query, as the Ruby SDK's presigner hoists it (S3 reads it
    // there): refused the same way, never served with the key dropped (it was 200)
    for (const method of ["GET", "HEAD"]) {
      const v = await smithyPresigned({ method, creds: APP, date: new Date(), host: `127.0.0.1:${env.port}`, path: "/data/doc.txt", query: sse, expiresIn: 60 });
      expect(v.rawQuery).toContain("x-amz-server-side-encryption-customer-key=");
      const pre = await fetch(`${env.endpoint}${v.rawPath}?${v.rawQuery}`, { method });
      expect([method, pre.status]).toEqual([method, 501]);
    }
    // GetObjectAttributes likewise (the upstream was asked without the key)
    const attrs = await signedFetch(env, { method: "GET", path: "/data/doc.txt", query: { attributes: "" }, headers: { ...sse, "x-amz-object-attributes": "ETag" } });
    expect([attrs.status, (await attrs.text()).includes("<Code>NotImplemented</Code>")]).toEqual([501, true]);
    expect(env.upstreamCalls()).toEqual([]);
  });

  test("an edge-case Range header gets the same answer before and after the object is cached (the upstream is sent the range the cache reads, or none)", async () => {
    const cases: Array<[string, number, string]> = [
      ["bytes=1-2,", 206, "12"],
      ["bytes=,1-2", 206, "12"],
      ["bytes = 1-2", 200, "0123456789"],
      ["bytes=1 - 2", 200, "0123456789"],
    ];
    for (const [i, [range, status, body]] of cases.entries()) {
      const key = `ranges/r${i}.txt`;
      await env.s3.put("data", key, "0123456789");
      const before = await fetch(`${env.endpoint}/data/${key}`, { headers: { range } });
      expect([range, before.status, await before.text(), before.headers.get("x-cache")]).toEqual([range, status, body, status === 206 ? "BYPASS" : "MISS"]);
      if (status === 206) expect((await fetch(`${env.endpoint}/data/${key}`)).status).toBe(200); // fills the cache
      const after = await fetch(`${env.endpoint}/data/${key}`, { headers: { range } });
      expect([range, after.status, await after.text(), after.headers.get("x-cache")]).toEqual([range, status, body, "HIT"]);
    }
  });

  test("416 InvalidRange names the range asked for and the object's size, as S3 does", async () => {
    const r = await signedFetch(env, { path: "/data/doc.txt", headers: { range: "bytes=50-60" } });
    const body = await r.text();
    expect([r.status, /<RangeRequested>([^<]*)/.exec(body)?.[1], /<ActualObjectSize>(\d+)/.exec(body)?.[1]]).toEqual([416, "bytes=50-60", "10"]);
  });

  test("an upstream bucket that is gone (NoSuchBucket from the store) is S3's NoSuchBucket naming the proxy's bucket, never the upstream's", async () => {
    env.s3.faults.set("/data", { kind: "error", status: 404, code: "NoSuchBucket", times: 1, method: "GET" });
    const r = await signedFetch(env, { path: "/data/", query: { "list-type": "2" } });
    const text = await r.text();
    expect([r.status, /<Code>(\w+)/.exec(text)?.[1], /<BucketName>([^<]*)/.exec(text)?.[1]]).toEqual([404, "NoSuchBucket", "data"]);
  });

  test("HeadBucket and GetBucketLocation answer from config, without the upstream", async () => {
    env.mark();
    const c = client(env);
    try {
      const hb = await c.send(new HeadBucketCommand({ Bucket: "data" }));
      // as S3 answers for a bucket named by its own name (not an access point alias): false, not unset
      expect([hb.BucketRegion, hb.AccessPointAlias]).toEqual(["us-east-1", false]);
      const loc = await signedFetch(env, { path: "/data/", query: { location: "" } });
      expect(await loc.text()).toContain('<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>');
      // asked at a key's path, S3 answers the bucket's (the key ignored; it was 501 NotImplemented)
      const atKey = await signedFetch(env, { path: "/data/any/key.txt", query: { location: "" } });
      expect([atKey.status, await atKey.text()]).toEqual([200, await (await signedFetch(env, { path: "/data/", query: { location: "" } })).text()]);
      // refused (unsigned, a wrong secret), the bucket's region is still named, as S3 names it
      const anon = await fetch(`${env.endpoint}/data`, { method: "HEAD" });
      expect([anon.status, anon.headers.get("x-amz-bucket-region")]).toEqual([403, "us-east-1"]);
      const wrong = await signedFetch(env, { method: "HEAD", path: "/data", creds: { ...APP, secretAccessKey: "not-the-secret-0123456789" } });
      expect([wrong.status, wrong.headers.get("x-amz-bucket-region")]).toEqual([403, "us-east-1"]);
      // (an unknown bucket is no configured bucket: no region to name)
      expect((await fetch(`${env.endpoint}/nosuch`, { method: "HEAD" })).headers.get("x-amz-bucket-region")).toBeNull();
      expect(env.upstreamCalls()).toEqual([]);
    } finally {
      c.destroy();
    }
  });

  test("GetBucketVersioning relays the upstream bucket's state; it needs a grant on the bucket; setting it is the proxy's (AccessDenied)", async () => {
    const c = client(env);
    const lister = client(env, LISTER);
    try {
      env.mark();
      const v = await c.send(new GetBucketVersioningCommand({ Bucket: "data" }));
      // the fixture answers as S3 does for a bucket that never had versioning: an empty document
      expect([v.$metadata.httpStatusCode, v.Status, v.MFADelete]).toEqual([200, undefined, undefined]);
      const calls = env.upstreamCalls();
      expect(calls.map((r) => [r.method, r.pathname, Object.keys(r.query), r.status])).toEqual([["GET", "/data", ["versioning"], 200]]);
      env.mark();
      await expect(lister.send(new GetBucketVersioningCommand({ Bucket: "private" }))).rejects.toMatchObject({ name: "AccessDenied", $metadata: { httpStatusCode: 403 } });
      const anon = await fetch(`${env.endpoint}/open?versioning`);
      expect([anon.status, (await anon.text()).includes("<Code>AccessDenied</Code>")]).toEqual([403, true]);
      await expect(c.send(new PutBucketVersioningCommand({ Bucket: "data", VersioningConfiguration: { Status: "Enabled" } }))).rejects.toMatchObject({ name: "AccessDenied", $metadata: { httpStatusCode: 403 } });
      expect(env.upstreamCalls()).toEqual([]);
      // an upstream that refuses is relayed with S3's code and status; a busy one with Retry-After
      env.s3.faults.set("/data", { kind: "error", status: 403, code: "AccessDenied", times: 1, method: "GET" });
      const denied = await signedFetch(env, { path: "/data", query: { versioning: "" } });
      expect([denied.status, /<Code>(\w+)<\/Code>/.exec(await denied.text())?.[1]]).toEqual([403, "AccessDenied"]);
      env.s3.faults.set("/data", { kind: "slowdown", method: "GET" }); // every attempt (the bucket retries a 503)
      const busy = await signedFetch(env, { path: "/data", query: { versioning: "" } });
      env.s3.faults.delete("/data");
      expect([busy.status, busy.headers.get("retry-after"), /<Code>(\w+)<\/Code>/.exec(await busy.text())?.[1]]).toEqual([503, "1", "SlowDown"]);
    } finally {
      c.destroy();
      lister.destroy();
    }
  });

  test("anonymous GET/HEAD of a bucket without auth are served, as on the plain front", async () => {
    const g = await fetch(`${env.endpoint}/open/doc.txt`);
    expect([g.status, await g.text()]).toEqual([200, "0123456789"]);
    const h = await fetch(`${env.endpoint}/open/doc.txt`, { method: "HEAD" });
    expect([h.status, h.headers.get("content-length")]).toEqual([200, "10"]);
  });
});

describe("stored checksums (x-amz-checksum-mode: ENABLED, sent by the 2025 SDKs and CLIs)", () => {
  let env: S3FrontEnv;
  const BODY = "checksummed body, 0123456789";
  const crc32 = (s: string) => Buffer.from(new Uint32Array([Bun.hash.crc32(s)]).buffer).reverse().toString("base64");
  beforeAll(async () => {
    env = await startS3FrontEnv({ cache: true }); // `data` cached, `private` not
    await env.s3.put("private", "sum.txt", BODY, { checksumAlgorithm: "CRC32" });
    await env.s3.put("data", "sum.txt", BODY, { checksumAlgorithm: "CRC32" });
  });
  afterAll(() => env.stop());

  test("uncached bucket: GetObject and HeadObject of the whole object carry the stored checksum; the SDK validates the body with it", async () => {
    const c = client(env);
    try {
      const g = await c.send(new GetObjectCommand({ Bucket: "private", Key: "sum.txt", ChecksumMode: "ENABLED" }));
      expect([g.ChecksumCRC32, g.ChecksumType]).toEqual([crc32(BODY), "FULL_OBJECT"]);
      expect(await g.Body!.transformToString()).toBe(BODY); // read to the end: the SDK compared the CRC32
      const h = await c.send(new HeadObjectCommand({ Bucket: "private", Key: "sum.txt", ChecksumMode: "ENABLED" }));
      expect(h.ChecksumCRC32).toBe(crc32(BODY));
    } finally {
      c.destroy();
    }
    const raw = await signedFetch(env, { path: "/private/sum.txt", headers: { "x-amz-checksum-mode": "ENABLED" } });
    expect([raw.headers.get("x-amz-checksum-crc32"), raw.headers.get("x-amz-checksum-type"), await raw.text()]).toEqual([crc32(BODY), "FULL_OBJECT", BODY]);
  });

  test("no checksum when not asked, and never on a range (it would not describe the bytes sent)", async () => {
    const plain = await signedFetch(env, { path: "/private/sum.txt" });
    expect([plain.status, plain.headers.get("x-amz-checksum-crc32")]).toEqual([200, null]);
    await plain.arrayBuffer();
    const range = await signedFetch(env, { path: "/private/sum.txt", headers: { "x-amz-checksum-mode": "ENABLED", range: "bytes=0-3" } });
    expect([range.status, range.headers.get("x-amz-checksum-crc32"), await range.text()]).toEqual([206, null, BODY.slice(0, 4)]);
  });

  test("cached bucket: a hit or a range cut from the cached copy never carries a checksum (none is stored with it)", async () => {
    for (let i = 0; i < 2; i++) {
      const r = await signedFetch(env, { path: "/data/sum.txt", headers: { "x-amz-checksum-mode": "ENABLED" } });
      expect(await r.text()).toBe(BODY);
      if (r.headers.get("x-cache") === "HIT") expect(r.headers.get("x-amz-checksum-crc32")).toBeNull();
      else expect([null, crc32(BODY)]).toContain(r.headers.get("x-amz-checksum-crc32"));
    }
    const range = await signedFetch(env, { path: "/data/sum.txt", headers: { "x-amz-checksum-mode": "ENABLED", range: "bytes=0-3" } });
    expect([range.status, range.headers.get("x-amz-checksum-crc32"), await range.text()]).toEqual([206, null, BODY.slice(0, 4)]);
    const c = client(env);
    try {
      const g = await c.send(new GetObjectCommand({ Bucket: "data", Key: "sum.txt", ChecksumMode: "ENABLED" }));
      expect(await g.Body!.transformToString()).toBe(BODY);
    } finally {
      c.destroy();
    }
  });
});

describe("stored checksums on a cached bucket, for an object the cache does not take (BYPASS)", () => {
  let env: S3FrontEnv;
  const BIG = new Uint8Array(1536 * 1024).map((_, i) => (i * 7) & 255);
  const crc32 = (b: Uint8Array) => Buffer.from(new Uint32Array([Bun.hash.crc32(b)]).buffer).reverse().toString("base64");
  beforeAll(async () => {
    env = await startS3FrontEnv({
      cache: true,
      buckets: (ep) => `buckets:\n  - name: data\n    path_prefix: /data\n    s3: { bucket: data, endpoint: "${ep}", access_key: "${UPSTREAM.accessKeyId}", secret_key: "${UPSTREAM.secretAccessKey}" }\n    cache: { enabled: true, max_item_size_mb: 1 }\n  - name: private\n    path_prefix: /private\n    s3: { bucket: private, endpoint: "${ep}" }\n`,
    });
    await env.s3.put("data", "big.bin", BIG, { checksumAlgorithm: "CRC32" });
  });
  afterAll(() => env?.stop());

  test("the answer streamed from the upstream carries the checksum the client asked for, and none when not asked", async () => {
    const r = await signedFetch(env, { path: "/data/big.bin", headers: { "x-amz-checksum-mode": "ENABLED" } });
    expect([r.status, r.headers.get("x-cache"), r.headers.get("x-amz-checksum-crc32")]).toEqual([200, "BYPASS", crc32(BIG)]);
    expect(new Uint8Array(await r.arrayBuffer())).toEqual(BIG);
    const plain = await signedFetch(env, { path: "/data/big.bin" });
    expect([plain.headers.get("x-cache"), plain.headers.get("x-amz-checksum-crc32")]).toEqual(["BYPASS", null]);
    await plain.arrayBuffer();
  });

  test("what a fill asks the upstream is not its first client's choice; each client gets the checksums only when it asked, never with a range", async () => {
    // (the fill forwarded the first client's x-amz-checksum-mode as sent, so a fill shared with
    // other clients asked what that client chose, with the value it chose)
    await env.s3.put("data", "small.txt", "0123456789", { checksumAlgorithm: "CRC32" });
    const modes: Array<string | undefined> = [];
    for (const [key, mode] of [["big.bin", undefined], ["big.bin", "bogus"], ["small.txt", "ENABLED"]] as const) {
      env.mark();
      const r = await signedFetch(env, { path: `/data/${key}`, headers: mode === undefined ? {} : { "x-amz-checksum-mode": mode } });
      expect([key, mode, r.status, r.headers.get("x-amz-checksum-crc32")]).toEqual([key, mode, 200, null]);
      await r.arrayBuffer();
      modes.push(...env.upstreamCalls().filter((c) => c.method === "GET").map((c) => c.headers["x-amz-checksum-mode"]));
    }
    expect(modes).toEqual(["ENABLED", "ENABLED", "ENABLED"]);
    const ranged = await signedFetch(env, { path: "/data/big.bin", headers: { "x-amz-checksum-mode": "ENABLED", range: "bytes=0-9" } });
    expect([ranged.status, ranged.headers.get("x-amz-checksum-crc32"), ranged.headers.get("x-amz-checksum-type")]).toEqual([206, null, null]);
    await ranged.arrayBuffer();
  });
});

/** Bucket `data` with an OPA authorizer (fail mode `failMode`), and `private` without one. */
const opaBuckets = (ep: string, opaUrl: string, failMode: "open" | "closed") => `buckets:
  - name: data
    path_prefix: /data
    s3: { bucket: data, endpoint: "${ep}", access_key: "AKIDUPSTREAMREAD", secret_key: "upstream-secret-key-0123456789" }
    authorization: { type: opa, opa_url: "${opaUrl}", opa_policy_path: s3/allow, opa_cache_ttl_seconds: 0, opa_fail_mode: ${failMode}, opa_timeout_ms: 5000 }
  - name: private
    path_prefix: /private
    s3: { bucket: private, endpoint: "${ep}", access_key: "AKIDUPSTREAMREAD", secret_key: "upstream-secret-key-0123456789" }
`;

describe("OPA with the S3 action, virtual-hosted style, ListBuckets owner", () => {
  let env: S3FrontEnv;
  let opa: OpaServer;
  beforeAll(async () => {
    // app1 may read objects, and list only under open/: the policy sees the action, the identity's
    // claims, and a listing's prefix as its key
    opa = OpaServer.start({
      "s3/allow": (i) => i.jwt_claims?.sub === "app1" && i.jwt_claims?.team === "a" && (i.action === "s3:GetObject" || (i.action === "s3:ListBucket" && String(i.key).startsWith("open/"))),
    });
    auditDir = mkdtempSync(join(tmpdir(), "yata-s3-authz-"));
    env = await startS3FrontEnv({
      s3Extra: "  domain: s3.test\n",
      extra: `audit: { enabled: true, path: "${join(auditDir, "audit.log")}" }\n`,
      buckets: (ep) => opaBuckets(ep, opa.url, "closed"),
    });
    await env.s3.put("data", "a.txt", "AAA");
  });
  afterAll(async () => {
    await env.stop();
    opa.close();
    rmSync(auditDir, { recursive: true, force: true });
  });
  let auditDir = "";

  test("OPA's input.path is /<bucket>/<key> for both addressing styles: a policy on it cannot be dodged with virtual-hosted addressing", async () => {
    const n = opa.requests.length;
    const vhost = `data.s3.test:${env.port}`;
    const requests: Array<{ path: string; host?: string; query?: Record<string, string> }> = [
      { path: "/data/a.txt" },
      { path: "/a.txt", host: vhost },
      { path: "/data/", query: { "list-type": "2", prefix: "open/" } },
      { path: "/", host: vhost, query: { "list-type": "2", prefix: "open/" } },
      { path: "/data", query: { location: "" } },
      { path: "/", host: vhost, query: { location: "" } },
    ];
    for (const r of requests) await (await signedFetch(env, r)).arrayBuffer();
    expect(opa.requests.slice(n).map((r) => [(r.body as any).input.action, (r.body as any).input.path])).toEqual([
      ["s3:GetObject", "/data/a.txt"],
      ["s3:GetObject", "/data/a.txt"],
      ["s3:ListBucket", "/data/open/"],
      ["s3:ListBucket", "/data/open/"],
      ["s3:GetBucketLocation", "/data/"],
      ["s3:GetBucketLocation", "/data/"],
    ]);
  });

  test("an unserved sub-resource (?retention, ?legal-hold, ?restore) asks the authorizer its own action before the 501: AccessDenied to a caller the policy refuses (it was 501, the policy never asked); one it allows still gets the 501", async () => {
    env.mark();
    const asked: Array<[string, string, number, string, string]> = [];
    for (const [method, query] of [["GET", { retention: "" }], ["PUT", { "legal-hold": "" }], ["POST", { restore: "" }], ["GET", { annotation: "" }]] as Array<[string, Record<string, string>]>) {
      const n = opa.requests.length;
      const res = await signedFetch(env, { method, path: "/data/a.txt", query });
      const input = (opa.requests.slice(n)[0]?.body as any)?.input;
      asked.push([method, Object.keys(query)[0]!, res.status, /<Code>(\w+)/.exec(await res.text())?.[1] ?? "", `${input?.action} ${input?.path}`]);
    }
    expect(asked).toEqual([
      ["GET", "retention", 403, "AccessDenied", "s3:GetObjectRetention /data/a.txt"],
      ["PUT", "legal-hold", 403, "AccessDenied", "s3:PutObjectLegalHold /data/a.txt"],
      ["POST", "restore", 403, "AccessDenied", "s3:RestoreObject /data/a.txt"],
      // (a sub-resource S3 names no permission for: its method's read, which app1 may do)
      ["GET", "annotation", 501, "NotImplemented", "s3:GetObject /data/a.txt"],
    ]);
    expect(env.upstreamCalls()).toEqual([]);
  });

  test("OPA failing (fail mode closed): S3's 503 ServiceUnavailable with Retry-After (SDKs retry it), not AccessDenied; audited and counted as an authorizer error", async () => {
    const count = (result: string) => Number(new RegExp(`^yatagarasu_authz_decisions_total\\{authorizer="opa",result="${result}"\\} (\\d+)$`, "m").exec(env.app.metrics.render())?.[1]);
    const [allow, deny, error] = [count("allow"), count("deny"), count("error")];
    opa.failWith({ status: 500 });
    try {
      env.mark();
      for (const host of [undefined, `data.s3.test:${env.port}`]) {
        const r = await signedFetch(env, { path: host === undefined ? "/data/a.txt" : "/a.txt", host });
        const text = await r.text();
        expect([r.status, /<Code>(\w+)/.exec(text)?.[1], r.headers.get("retry-after")]).toEqual([503, "ServiceUnavailable", "1"]);
        expect(text).toContain("<Message>The authorization service could not decide this request; retry later</Message>");
      }
      expect(env.upstreamCalls()).toEqual([]);
    } finally {
      opa.failWith(null);
    }
    const denied = await signedFetch(env, { path: "/data/", query: { "list-type": "2", prefix: "closed/" } });
    expect([denied.status, /<Code>(\w+)/.exec(await denied.text())?.[1]]).toEqual([403, "AccessDenied"]);
    const ok = await signedFetch(env, { path: "/data/a.txt" });
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
    expect([count("allow") - allow, count("deny") - deny, count("error") - error]).toEqual([1, 1, 2]);
    await env.app.audit!.flush();
    const lines = readFileSync(join(auditDir, "audit.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).slice(-4);
    expect(lines.map((l) => [l.result, l.reason, l.status])).toEqual([
      ["failed", "AuthorizerUnavailable", 503],
      ["failed", "AuthorizerUnavailable", 503],
      ["denied", "AccessDenied", 403],
      ["allowed", undefined, 200],
    ]);
  });

  test("a missing key: AccessDenied when the policy denies s3:ListBucket on its name (GetObject and HEAD), NoSuchKey when it allows it, as S3 answers by the caller's list permission", async () => {
    for (const method of ["GET", "HEAD"] as const) {
      const closed = await signedFetch(env, { method, path: "/data/closed/nope.txt" });
      const closedText = await closed.text();
      expect([closed.status, method === "GET" ? /<Code>(\w+)/.exec(closedText)?.[1] : ""]).toEqual([403, method === "GET" ? "AccessDenied" : ""]);
      expect((opa.requests.at(-1)!.body as any).input).toMatchObject({ action: "s3:ListBucket", key: "closed/nope.txt", path: "/data/closed/nope.txt" });
      const open = await signedFetch(env, { method, path: "/data/open/nope.txt" });
      const openText = await open.text();
      expect([open.status, method === "GET" ? /<Code>(\w+)/.exec(openText)?.[1] : ""]).toEqual([404, method === "GET" ? "NoSuchKey" : ""]);
    }
    const there = await signedFetch(env, { path: "/data/a.txt" }); // an existing key is not a listing question
    expect([there.status, await there.text()]).toEqual([200, "AAA"]);
    expect((opa.requests.at(-1)!.body as any).input.action).toBe("s3:GetObject");
  });

  test("GetObject allowed; ListObjectsV2 denied by the policy before the upstream; the input carries the action and claims", async () => {
    const ok = await signedFetch(env, { path: "/data/a.txt" });
    expect([ok.status, await ok.text()]).toEqual([200, "AAA"]);
    expect((opa.requests.at(-1)!.body as any).input).toMatchObject({ action: "s3:GetObject", bucket: "data", key: "a.txt", jwt_claims: { sub: "app1", team: "a" } });
    env.mark();
    const list = await signedFetch(env, { path: "/data/", query: { "list-type": "2" } });
    expect([list.status, /<Code>(\w+)/.exec(await list.text())?.[1]]).toEqual([403, "AccessDenied"]);
    expect((opa.requests.at(-1)!.body as any).input).toMatchObject({ action: "s3:ListBucket", key: "" });
    const other = await signedFetch(env, { path: "/data/", query: { "list-type": "2", prefix: "closed/" } });
    expect(other.status).toBe(403);
    expect((opa.requests.at(-1)!.body as any).input).toMatchObject({ action: "s3:ListBucket", key: "closed/" });
    expect(env.upstreamCalls()).toEqual([]);
    const open = await signedFetch(env, { path: "/data/", query: { "list-type": "2", prefix: "open/" } });
    expect(open.status).toBe(200);
    expect((opa.requests.at(-1)!.body as any).input).toMatchObject({ action: "s3:ListBucket", key: "open/" });
    await open.arrayBuffer();
    // A repeated prefix is refused before anything is decided or listed: S3 lists the first one,
    // and the authorizer must never be asked about another (`prefix=&prefix=open/` listed the
    // whole bucket after an allow for open/).
    env.mark();
    for (const query of [{ "list-type": "2", prefix: ["", "open/"] }, { prefix: ["closed/", "open/"] }, { "list-type": ["2", "2"], prefix: "open/" }] as Record<string, string | string[]>[]) {
      const twice = await signedFetch(env, { path: "/data/", query });
      const text = await twice.text();
      expect([twice.status, /<Code>(\w+)/.exec(text)?.[1]]).toEqual([400, "InvalidArgument"]);
      expect(text).toMatch(/The (prefix|list-type) parameter may appear only once/);
    }
    expect(env.upstreamCalls()).toEqual([]);
  });

  test("virtual-hosted style: <bucket>.s3.test names the bucket, the path is the key", async () => {
    const r = await signedFetch(env, { path: "/a.txt", host: `data.s3.test:${env.port}` });
    expect([r.status, await r.text()]).toEqual([200, "AAA"]);
    // a fully qualified host name (trailing dot) too: it was path-style, bucket "a.txt"
    const fqdn = await signedFetch(env, { path: "/a.txt", host: `data.s3.test.:${env.port}` });
    expect([fqdn.status, await fqdn.text()]).toEqual([200, "AAA"]);
    const missing = await signedFetch(env, { path: "/a.txt", host: `nosuch.s3.test:${env.port}` });
    expect([missing.status, /<Code>(\w+)/.exec(await missing.text())?.[1]]).toEqual([404, "NoSuchBucket"]);
    // the domain itself (or an IP) is path-style
    const path = await signedFetch(env, { path: "/data/a.txt", host: `s3.test:${env.port}` });
    expect(path.status).toBe(200);
  });

  test("ListBuckets: the identity's buckets only, owner = the identity", async () => {
    const c = client(env, LISTER);
    try {
      const r = await c.send(new ListBucketsCommand({}));
      expect((r.Buckets ?? []).map((b) => b.Name)).toEqual(["data"]);
      expect(r.Owner?.DisplayName).toBe("lister");
    } finally {
      c.destroy();
    }
  });

  test("ListBuckets pages with max-buckets; a continuation token it never gave out is InvalidArgument (it restarted the listing)", async () => {
    const page = async (q: Record<string, string>) => {
      const r = await signedFetch(env, { path: "/", query: q });
      return { status: r.status, body: await r.text() };
    };
    const first = await page({ "max-buckets": "1" });
    expect(first.status).toBe(200);
    const names = (b: string) => [...b.matchAll(/<Name>([^<]+)<\/Name>/g)].map((m) => m[1]);
    const token = /<ContinuationToken>([^<]+)</.exec(first.body)?.[1];
    expect(names(first.body)).toEqual(["data"]);
    expect(token).toBeDefined();
    const second = await page({ "max-buckets": "1", "continuation-token": token! });
    expect(second.status).toBe(200);
    expect(names(second.body)).toEqual(["private"]);
    // a repeated parameter is read from its first occurrence, as S3 reads it (the last was read)
    const repeated = await signedFetch(env, { path: "/", query: { "max-buckets": ["1", "5"], "continuation-token": [token!, "garbage!"] } });
    const rb = await repeated.text();
    expect([repeated.status, names(rb)]).toEqual([200, ["private"]]);
    const back = await signedFetch(env, { path: "/", query: { prefix: ["d", "p"] } });
    expect(names(await back.text())).toEqual(["data"]);
    for (const bad of ["garbage!", "AAAA", Buffer.from("no/slash").toString("base64url"), `${token}=`]) {
      const r = await page({ "max-buckets": "1", "continuation-token": bad });
      expect({ bad, status: r.status, code: /<Code>(\w+)/.exec(r.body)?.[1], arg: /<ArgumentName>([^<]+)/.exec(r.body)?.[1] }).toEqual({ bad, status: 400, code: "InvalidArgument", arg: "continuation-token" });
    }
  });

  test("ListBuckets' bucket-region filters by the region its buckets report (s3_api.region): another region lists none (all were listed, each saying us-east-1)", async () => {
    const names = async (q: Record<string, string>) => {
      const r = await signedFetch(env, { path: "/", query: q });
      const body = await r.text();
      return { status: r.status, names: [...body.matchAll(/<Name>([^<]+)<\/Name>/g)].map((m) => m[1]), regions: [...new Set([...body.matchAll(/<BucketRegion>([^<]+)</g)].map((m) => m[1]))] };
    };
    expect(await names({})).toEqual({ status: 200, names: ["data", "private"], regions: ["us-east-1"] });
    expect(await names({ "bucket-region": "us-east-1" })).toEqual({ status: 200, names: ["data", "private"], regions: ["us-east-1"] });
    expect(await names({ "bucket-region": "eu-west-1" })).toEqual({ status: 200, names: [], regions: [] });
    expect(await names({ "bucket-region": "eu-west-1", "max-buckets": "1" })).toEqual({ status: 200, names: [], regions: [] });
  });
});

describe("OPA failing open (opa_fail_mode: open)", () => {
  let env: S3FrontEnv;
  let opa: OpaServer;
  beforeAll(async () => {
    opa = OpaServer.start({ "s3/allow": () => true });
    env = await startS3FrontEnv({
      buckets: (ep) => opaBuckets(ep, opa.url, "open"),
    });
    await env.s3.put("data", "a.txt", "AAA");
  });
  afterAll(async () => {
    await env.stop();
    opa.close();
  });

  test("a missing key while the authorizer cannot answer is AccessDenied, not NoSuchKey: whether the caller may list the bucket is not known (the check fails closed, as the plain front's folder check); an existing key is still served (fail open)", async () => {
    const allowed = await signedFetch(env, { path: "/data/nope.txt" });
    expect([allowed.status, /<Code>(\w+)/.exec(await allowed.text())?.[1]]).toEqual([404, "NoSuchKey"]);
    opa.failWith({ status: 500 });
    try {
      for (const method of ["GET", "HEAD"] as const) {
        const n = opa.requests.length;
        const r = await signedFetch(env, { method, path: "/data/nope.txt" });
        const text = await r.text();
        expect([method, r.status, method === "GET" ? /<Code>(\w+)/.exec(text)?.[1] : ""]).toEqual([method, 403, method === "GET" ? "AccessDenied" : ""]);
        // (it was asked: the answer is the outage's, not a grant's)
        expect(opa.requests.slice(n).map((q) => (q.body as any).input.action)).toContain("s3:ListBucket");
      }
      const there = await signedFetch(env, { path: "/data/a.txt" });
      expect([there.status, await there.text()]).toEqual([200, "AAA"]);
    } finally {
      opa.failWith(null);
    }
  });
});

describe("node engine", () => {
  test("the same front on engine: node (get, error, ListBuckets, STS)", async () => {
    await using env = await startS3FrontEnv({ engine: "node" });
    await env.s3.put("data", "n.txt", "node body");
    const c = client(env);
    try {
      expect(await (await c.send(new GetObjectCommand({ Bucket: "data", Key: "n.txt" }))).Body!.transformToString()).toBe("node body");
      expect(((await c.send(new ListBucketsCommand({}))).Buckets ?? []).map((b) => b.Name)).toEqual(["data", "private"]);
      await expect(c.send(new GetObjectCommand({ Bucket: "jwtonly", Key: "n.txt" }))).rejects.toMatchObject({ name: "AccessDenied" });
      // a POST body reaches the front on this engine too (the STS form)
      const form = new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: "arn:aws:iam::123456789012:role/r", RoleSessionName: "n1", WebIdentityToken: hs256({ sub: "bob", exp: Math.floor(Date.now() / 1000) + 600 }) });
      const sts = await fetch(`${env.endpoint}/`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form.toString() });
      expect([sts.status, /<SubjectFromWebIdentityToken>(\w+)/.exec(await sts.text())?.[1]]).toEqual([200, "bob"]);
    } finally {
      c.destroy();
    }
  });
});
