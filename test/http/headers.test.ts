import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { cellsPerCall } from "../helpers/alloc.ts";
import { forwardRequestHeaders, keepPassedResponseHeaders, objectHeaders, passResponseHeaders, privateCacheControl } from "../../src/http/headers.ts";
import { mapS3Error, errorFromResponse, parseS3ErrorCode, codeTold } from "../../src/s3/errors.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

describe("forwardRequestHeaders", () => {
  test("forwards only Range and the four conditional headers", () => {
    const h = new Headers({
      range: "bytes=0-4",
      "if-match": '"a"',
      "if-none-match": '"b"',
      "if-modified-since": "Wed, 21 Oct 2015 07:28:00 GMT",
      "if-unmodified-since": "Wed, 21 Oct 2015 07:28:00 GMT",
      authorization: "Bearer SECRET",
      cookie: "c=1",
      connection: "keep-alive",
      "x-amz-security-token": "t",
      host: "evil",
    });
    expect(forwardRequestHeaders(h)).toEqual({
      range: "bytes=0-4",
      "if-match": '"a"',
      "if-none-match": '"b"',
      "if-modified-since": "Wed, 21 Oct 2015 07:28:00 GMT",
      "if-unmodified-since": "Wed, 21 Oct 2015 07:28:00 GMT",
    });
  });

  test("a conditional the cache ignores is not sent for the upstream to read otherwise: an invalid HTTP-date, an empty If-Match / If-None-Match", () => {
    // The answer depended on whether the object was cached: an ISO date was a 304 uncached (the
    // upstream parsed it) and a 200 cached (RFC 9110 §13.1.3: an invalid date is ignored).
    for (const bad of ["2026-12-03T15:00:54Z", "thu, 03 dec 2026 15:00:54 gmt", "0", "yesterday"]) {
      expect(forwardRequestHeaders(new Headers({ "if-modified-since": bad, "if-unmodified-since": bad }))).toEqual({});
    }
    // Any of the three HTTP-date forms (RFC 9110 §5.6.7) goes upstream as the IMF-fixdate the cache
    // read it as: an RFC 850 or asctime date was sent as written, for the upstream to read otherwise
    // (or not at all: S3 documents the IMF-fixdate).
    for (const ok of ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", " Sun, 06 Nov 1994 08:49:37 GMT "]) {
      const sent = { "if-modified-since": "Sun, 06 Nov 1994 08:49:37 GMT", "if-unmodified-since": "Sun, 06 Nov 1994 08:49:37 GMT" };
      expect([ok, forwardRequestHeaders(new Headers({ "if-modified-since": ok, "if-unmodified-since": ok }))]).toEqual([ok, sent]);
    }
    expect(forwardRequestHeaders(new Headers({ "if-unmodified-since": "Thu Jan  1 00:00:00 0099" }))).toEqual({ "if-unmodified-since": "Thu, 01 Jan 0099 00:00:00 GMT" });
    expect(forwardRequestHeaders(new Headers({ "if-match": "", "if-none-match": "  " }))).toEqual({});
    // An If-Modified-Since later than now: S3 and the cache ignore it (200); MinIO and Ceph answered 304.
    const future = new Date(Date.now() + 86_400_000).toUTCString();
    expect(forwardRequestHeaders(new Headers({ "if-modified-since": future, "if-unmodified-since": future }))).toEqual({ "if-unmodified-since": future });
  });

  test("If-Match / If-None-Match go upstream as the list the cache reads, so a malformed one is not read another way", () => {
    // Each was answered one way by an uncached bucket (the upstream's parse) and the other way by a
    // cached one: `"x", *` 304 vs 200, `W/abc` 200 vs 304, `"x" "abc"` 412 vs 200.
    const fwd = (v: string) => forwardRequestHeaders(new Headers({ "if-match": v, "if-none-match": v }));
    expect(fwd('"x", *')).toEqual({ "if-match": '"x", "*"', "if-none-match": '"x", "*"' });
    expect(fwd("W/abc")["if-none-match"]).toBe('W/"abc"');
    expect(fwd('"x" "abc"')["if-match"]).toBe('"x", "abc"');
    expect(fwd("abc")["if-match"]).toBe('"abc"'); // unquoted, read as quoted (as S3 does)
    expect(fwd('"a", "b')["if-match"]).toBe('"a"'); // the cache stops at an unterminated tag
    expect(fwd('"b')["if-match"]).toBe('""'); // no tag: one no object has
    // a member the cache can never match (a quote inside a bare tag) is dropped, not re-quoted into another tag
    expect(fwd('ab"c, "x"')["if-match"]).toBe('"x"');
    expect(fwd('ab"c')["if-none-match"]).toBe('""');
    // well-formed values go as they were
    for (const ok of ["*", ' * ', '"abc"', 'W/"abc"', '"a", W/"b"', '"9b2cf535f27731c974343645a3985328-12"']) {
      expect(fwd(ok)["if-match"]).toBe(ok.trim() === "*" ? "*" : ok);
    }
  });
});

describe("passResponseHeaders", () => {
  test("passes representation, validator, caching and x-amz-meta-* headers; drops S3 internals", () => {
    const up = new Headers({
      etag: '"e"',
      "last-modified": "Wed, 21 Oct 2015 07:28:00 GMT",
      "content-type": "text/plain",
      "content-length": "5",
      "content-range": "bytes 0-4/10",
      "accept-ranges": "bytes",
      "cache-control": "max-age=60",
      "content-disposition": "attachment",
      "content-encoding": "gzip",
      "content-language": "en",
      expires: "Thu, 01 Dec 1994 16:00:00 GMT",
      "x-amz-meta-owner": "me",
      "x-amz-request-id": "R",
      "x-amz-id-2": "H",
      "x-amz-server-side-encryption": "AES256",
      "x-amz-version-id": "v",
      server: "AmazonS3",
      "set-cookie": "x=1",
    });
    const out = Object.fromEntries(passResponseHeaders(up, new Headers()));
    expect(Object.keys(out).sort()).toEqual([
      "accept-ranges", "cache-control", "content-disposition", "content-encoding", "content-language", "content-length",
      "content-range", "content-type", "etag", "expires", "last-modified", "x-amz-meta-owner",
      // the object's state, as S3 reports it with GetObject (the SDKs' ServerSideEncryption, VersionId)
      "x-amz-server-side-encryption", "x-amz-version-id",
    ]);
  });

  test("passes an upstream cache's Age on (else a CDN in front keeps the answer fresh for its whole max-age again)", () => {
    const out = passResponseHeaders(new Headers({ "cache-control": "max-age=600", age: "500", "content-length": "5" }), new Headers());
    expect(out.get("age")).toBe("500");
  });
});

describe("keepPassedResponseHeaders", () => {
  test("leaves in place exactly what passResponseHeaders copies (adjacent dropped headers included)", () => {
    const all: Record<string, string> = {
      server: "AmazonS3",
      "x-amz-id-2": "H",
      "x-amz-request-id": "R",
      etag: '"e"',
      date: "Wed, 21 Oct 2015 07:28:00 GMT",
      connection: "keep-alive",
      "content-length": "5",
      "x-amz-meta-owner": "me",
      "x-amz-version-id": "v",
      "x-amz-server-side-encryption": "AES256",
      "content-range": "bytes 0-4/10",
      "set-cookie": "x=1",
      "content-type": "text/plain",
    };
    const inPlace = new Headers(all);
    keepPassedResponseHeaders(inPlace);
    const copied = passResponseHeaders(new Headers(all), new Headers());
    expect([...inPlace].sort()).toEqual([...copied].sort());
    expect([...inPlace.keys()].sort()).toEqual(["content-length", "content-range", "content-type", "etag", "x-amz-meta-owner", "x-amz-server-side-encryption", "x-amz-version-id"]);
  });

  test("filtering an answer in place (every GET the own client answers) or copying it makes no closure, scope or array per answer", async () => {
    const up = () => new Headers({ server: "nginx", date: "Wed, 21 Oct 2015 07:28:00 GMT", "content-type": "text/plain", "content-length": "5", connection: "keep-alive", etag: '"e"' });
    const base = await cellsPerCall(up);
    const kept = await cellsPerCall(() => keepPassedResponseHeaders(up()));
    const copied = await cellsPerCall(() => passResponseHeaders(up(), new Headers()));
    // (before: 1 function and 1 scope each, and keepPassedResponseHeaders' array of the names to drop)
    for (const cells of [kept, copied]) {
      expect((cells.Function ?? 0) - (base.Function ?? 0)).toBe(0);
      expect((cells.JSLexicalEnvironment ?? 0) - (base.JSLexicalEnvironment ?? 0)).toBe(0);
    }
    expect((kept.Array ?? 0) - (base.Array ?? 0)).toBe(0);
    // (and the pass still reads each answer's own Connection list: a later answer without one keeps what the first dropped)
    const hop = new Headers({ connection: "x-amz-meta-a", "x-amz-meta-a": "1", etag: '"e"' });
    keepPassedResponseHeaders(hop);
    const plain = new Headers({ "x-amz-meta-a": "1", etag: '"e"' });
    keepPassedResponseHeaders(plain);
    expect([...hop.keys()]).toEqual(["etag"]);
    expect([...plain.keys()].sort()).toEqual(["etag", "x-amz-meta-a"]);
  });
});

describe("fields a Connection header names are hop-by-hop (RFC 9110 §7.6.1), either way", () => {
  test("a client's Connection: range, if-none-match keeps both from the upstream; keep-alive/close alone change nothing", () => {
    const h = new Headers({ connection: "keep-alive, Range, if-none-match", range: "bytes=0-0", "if-none-match": '"a"', "if-match": '"b"' });
    expect(forwardRequestHeaders(h)).toEqual({ "if-match": '"b"' });
    expect(forwardRequestHeaders(new Headers({ connection: "close", range: "bytes=0-0" }))).toEqual({ range: "bytes=0-0" });
  });
  test("an upstream's Connection: x-amz-meta-hop, etag keeps both from the client and from the cache", () => {
    const up = () => new Headers({ connection: "x-amz-meta-hop, ETag", "x-amz-meta-hop": "secret", etag: '"e"', "content-type": "text/plain", "content-length": "3" });
    const passed = passResponseHeaders(up(), new Headers());
    expect([passed.has("x-amz-meta-hop"), passed.has("etag"), passed.get("content-type")]).toEqual([false, false, "text/plain"]);
    const kept = up();
    keepPassedResponseHeaders(kept);
    expect([kept.has("x-amz-meta-hop"), kept.has("etag"), kept.has("connection"), kept.get("content-type")]).toEqual([false, false, false, "text/plain"]);
    expect(objectHeaders(up())).toEqual({ "content-type": "text/plain" });
  });
});

describe("privateCacheControl", () => {
  test("private, the shared-cache directives dropped, the others kept; a quoted argument's commas are not list separators", () => {
    expect(privateCacheControl(null)).toBe("private");
    expect(privateCacheControl("public, max-age=60, s-maxage=600")).toBe("private, max-age=60");
    // (split at every comma, this came out as `private, b"` and `no-cache="x`, `y"`)
    expect(privateCacheControl('private="a, b", max-age=5')).toBe("private, max-age=5");
    expect(privateCacheControl('no-cache="x, y", public')).toBe('private, no-cache="x, y"');
    expect(privateCacheControl('no-cache="a\\", b", max-age=1')).toBe('private, no-cache="a\\", b", max-age=1');
  });
});

describe("S3 error mapping", () => {
  const cases: Array<[number, string | undefined, string, number]> = [
    [404, "NoSuchKey", "NoSuchKey", 404],
    [404, "NoSuchBucket", "NoSuchBucket", 404],
    [403, "AccessDenied", "AccessDenied", 403],
    [403, "SignatureDoesNotMatch", "AccessDenied", 403],
    [403, "InvalidAccessKeyId", "AccessDenied", 403],
    [400, "ExpiredToken", "AccessDenied", 403],
    [503, "SlowDown", "SlowDown", 503],
    [503, "ServiceUnavailable", "ServiceUnavailable", 503],
    [503, undefined, "ServiceUnavailable", 503],
    [500, "InternalError", "BadGateway", 502],
    [502, undefined, "BadGateway", 502],
    [404, undefined, "NoSuchKey", 404],
    [403, undefined, "AccessDenied", 403],
    [400, "InvalidArgument", "BadRequest", 400],
    // a throttle without an S3 code (a balancer's 429, or a HEAD's, which has no body)
    [429, undefined, "SlowDown", 503],
    [429, "SlowDown", "SlowDown", 503],
  ];
  for (const [status, s3, code, ours] of cases) {
    test(`S3 ${status} ${s3 ?? "(no code)"} → ${ours} ${code}`, () => {
      const e = mapS3Error(status, s3);
      expect(e.code).toBe(code as never);
      expect(e.status).toBe(ours);
    });
  }

  test("SlowDown carries Retry-After from S3, or 1 when S3 gave none or garbage", () => {
    expect(mapS3Error(503, "SlowDown", "7").headers).toEqual({ "retry-after": "7" });
    expect(mapS3Error(503, "SlowDown", null).headers).toEqual({ "retry-after": "1" });
    expect(mapS3Error(503, "SlowDown", "soon; rm -rf").headers).toEqual({ "retry-after": "1" });
    expect(mapS3Error(429, undefined, "3").headers).toEqual({ "retry-after": "3" });
  });

  test("the XML code is read from the body; the client response never contains S3's XML", async () => {
    const xml = `<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>gone</Message><RequestId>RID123</RequestId><HostId>HID</HostId></Error>`;
    expect(parseS3ErrorCode(xml)).toBe("NoSuchKey");
    const e = await errorFromResponse(new Response(xml, { status: 404 }), "GET");
    const body = await e.toResponse("req-1").text();
    expect(JSON.parse(body)).toEqual({ error: "NoSuchKey", message: "The object does not exist", request_id: "req-1" });
    expect(body).not.toContain("RID123");
    expect(body).not.toContain("<");
  });

  test("a HEAD error (no body) maps by status", async () => {
    const e = await errorFromResponse(new Response(null, { status: 403 }), "HEAD");
    expect(e.code).toBe("AccessDenied");
  });

  test("a HEAD's 503 says SlowDown by S3's reason phrase, MinIO's x-minio-error-code, or a GET of its key's verdict; a bare one is ServiceUnavailable", async () => {
    const told = new Response(null, { status: 503, statusText: "Service Unavailable" });
    codeTold.set(told, "SlowDown");
    const answers = [
      new Response(null, { status: 503, statusText: "Slow Down" }),
      new Response(null, { status: 503, statusText: "Service Unavailable", headers: { "x-minio-error-code": "SlowDown" } }),
      told,
      new Response(null, { status: 503, statusText: "Service Unavailable" }),
      new Response(null, { status: 503, statusText: "Service Unavailable", headers: { "x-minio-error-code": "ServiceUnavailable" } }),
    ];
    const codes = await Promise.all(answers.map(async (r) => (await errorFromResponse(r, "HEAD")).code));
    expect(codes).toEqual(["SlowDown", "SlowDown", "SlowDown", "ServiceUnavailable", "ServiceUnavailable"]);
  });
});

test("an upstream <Code> that names an Object.prototype member (constructor, toString) is no code: mapped from the status (it threw building the error: a 500)", () => {
  for (const code of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
    expect([code, mapS3Error(500, code).code]).toEqual([code, "BadGateway"]);
    expect([code, mapS3Error(404, code).code]).toEqual([code, "NoSuchKey"]);
  }
});
