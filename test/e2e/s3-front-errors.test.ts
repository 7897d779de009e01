/**
 * Every bad input of issue 11 against the S3 front, in front of the real S3 fixture: the exact S3
 * error code and status, an S3 XML body whose RequestId is the request id, and nothing reaching
 * the upstream (the fixture's request log stays empty).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { connect } from "node:net";
import { smithyPresigned, smithySigned, type SmithyRequest } from "../fronts/s3/helpers.ts";
import { APP, LISTER, startS3FrontEnv, type S3FrontEnv } from "./s3-front-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let env: S3FrontEnv;
beforeAll(async () => {
  env = await startS3FrontEnv();
  await env.s3.put("data", "hello.txt", "hello");
  await env.s3.put("private", "secret.txt", "secret");
});
afterAll(() => env.stop());

type Req = Omit<SmithyRequest, "creds" | "date" | "host"> & { creds?: SmithyRequest["creds"]; date?: Date };

async function send(method: string, target: string, headers: Headers | Record<string, string>, payload?: string): Promise<{ status: number; code: string; message: string; body: string; headers: Headers }> {
  const h = new Headers(headers);
  h.delete("host"); // fetch writes the same 127.0.0.1:PORT the request was signed for
  const res = await fetch(env.endpoint + target, { method, headers: h, body: payload });
  const body = await res.text();
  return { status: res.status, code: /<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? "", message: /<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? "", body, headers: res.headers };
}

async function signed(r: Req) {
  const v = await smithySigned({ creds: APP, date: new Date(), ...r, host: `127.0.0.1:${env.port}` });
  return send(v.method, v.rawPath + (v.rawQuery ? `?${v.rawQuery}` : ""), v.headers, r.body);
}

/** A request written byte for byte on a socket (fetch would resolve dot segments, and sends no GET body). */
/**
 * One request on its own connection; the raw answer. `close: false` sends no `Connection: close`
 * (a header the test may need absent) and ends once the answer's Content-Length bytes are in.
 */
function rawExchange(head: string, body = "", close = true): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = connect(env.port, "127.0.0.1", () => sock.write(`${head}\r\n${close ? "connection: close\r\n" : ""}\r\n${body}`));
    const whole = () => {
      const text = Buffer.concat(chunks).toString();
      const end = text.indexOf("\r\n\r\n");
      const length = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, end));
      return end >= 0 && length !== null && Buffer.byteLength(text.slice(end + 4)) >= Number(length[1]);
    };
    sock.on("data", (d: Buffer) => {
      chunks.push(d);
      if (!close && whole()) sock.destroy();
    });
    sock.on("error", reject);
    sock.on("close", () => resolve(Buffer.concat(chunks).toString()));
  });
}

async function presigned(r: Req & { expiresIn: number }) {
  const v = await smithyPresigned({ creds: APP, date: new Date(), ...r, host: `127.0.0.1:${env.port}` });
  return { target: v.rawPath + "?" + v.rawQuery, headers: v.headers };
}

/** Asserts the S3 error and that the fixture saw nothing. */
async function refused(p: Promise<Awaited<ReturnType<typeof send>>>, status: number, code: string, message?: string | RegExp) {
  env.mark();
  const r = await p;
  expect({ status: r.status, code: r.code }).toEqual({ status, code });
  if (message !== undefined) expect(r.message).toMatch(message);
  expect(r.headers.get("content-type")).toBe("application/xml");
  const id = r.headers.get("x-request-id")!;
  expect(r.body).toContain(`<RequestId>${id}</RequestId>`);
  expect(r.headers.get("x-amz-request-id")).toBe(id);
  expect(r.body).not.toContain(APP.secretAccessKey);
  expect(env.upstreamCalls()).toEqual([]);
  return r;
}

describe("signatures", () => {
  test("the baseline: a correctly signed GetObject is served (the refusals below are not a broken setup)", async () => {
    env.mark();
    const r = await signed({ path: "/data/hello.txt" });
    expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: "hello" });
    expect(env.upstreamCalls().length).toBe(1);
  });

  test("a wrong secret → 403 SignatureDoesNotMatch", async () => {
    const r = await refused(signed({ path: "/data/hello.txt", creds: { ...APP, secretAccessKey: "not-the-secret-0123456789" } }), 403, "SignatureDoesNotMatch");
    expect(r.body).toContain("<StringToSign>AWS4-HMAC-SHA256&#10;");
  });

  test("an unknown access key → 403 InvalidAccessKeyId", async () => {
    const r = await refused(signed({ path: "/data/hello.txt", creds: { accessKeyId: "AKIDNOBODYATALL", secretAccessKey: "whatever-0123456789" } }), 403, "InvalidAccessKeyId");
    expect(r.body).toContain("<AWSAccessKeyId>AKIDNOBODYATALL</AWSAccessKeyId>");
  });

  test("a clock 20 minutes off (either way) → 403 RequestTimeTooSkewed", async () => {
    await refused(signed({ path: "/data/hello.txt", date: new Date(Date.now() - 20 * 60_000) }), 403, "RequestTimeTooSkewed");
    await refused(signed({ path: "/data/hello.txt", date: new Date(Date.now() + 20 * 60_000) }), 403, "RequestTimeTooSkewed");
  });

  test("a signature for another region → 400 AuthorizationHeaderMalformed", async () => {
    await refused(signed({ path: "/data/hello.txt", region: "eu-west-1" }), 400, "AuthorizationHeaderMalformed", /eu-west-1/);
  });

  test("a tampered signed header (Range changed after signing) → 403 SignatureDoesNotMatch", async () => {
    const v = await smithySigned({ creds: APP, date: new Date(), path: "/data/hello.txt", headers: { range: "bytes=0-1" }, host: `127.0.0.1:${env.port}` });
    v.headers.set("range", "bytes=0-4");
    await refused(send("GET", v.rawPath, v.headers), 403, "SignatureDoesNotMatch");
  });

  test("an x-amz-* header that was not signed → 403 AccessDenied", async () => {
    const v = await smithySigned({ creds: APP, date: new Date(), path: "/data/hello.txt", host: `127.0.0.1:${env.port}` });
    v.headers.set("x-amz-meta-extra", "1");
    await refused(send("GET", v.rawPath, v.headers), 403, "AccessDenied", "There were headers present in the request which were not signed");
  });

  test("a session token beside a long-term key → 400 InvalidToken", async () => {
    await refused(signed({ path: "/data/hello.txt", creds: { ...APP, sessionToken: "YGS1.abc.def" } }), 400, "InvalidToken");
  });

  test("SigV2, header or query form → 400 InvalidRequest naming AWS4-HMAC-SHA256", async () => {
    await refused(send("GET", "/data/hello.txt", { authorization: `AWS ${APP.accessKeyId}:frJIUN8DYpKDtOLCwo//yllqDzg=`, date: new Date().toUTCString() }), 400, "InvalidRequest", /AWS4-HMAC-SHA256/);
    await refused(send("GET", `/data/hello.txt?AWSAccessKeyId=${APP.accessKeyId}&Expires=9999999999&Signature=abc%3D`, {}), 400, "InvalidRequest", /AWS4-HMAC-SHA256/);
  });

  test("another Authorization scheme (a bearer token) → 400 InvalidArgument, and the token is not echoed", async () => {
    const r = await refused(send("GET", "/data/hello.txt", { authorization: "Bearer eyJhbGciOiJIUzI1NiJ9.secret-token.sig" }), 400, "InvalidArgument", "Unsupported Authorization Type");
    expect(r.body).not.toContain("secret-token");
  });
});

describe("presigned URLs", () => {
  test("a valid one is served", async () => {
    const p = await presigned({ path: "/data/hello.txt", expiresIn: 60 });
    const r = await send("GET", p.target, p.headers);
    expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: "hello" });
  });

  test("expired → 403 AccessDenied 'Request has expired'", async () => {
    const p = await presigned({ path: "/data/hello.txt", expiresIn: 60, date: new Date(Date.now() - 2 * 3600_000) });
    await refused(send("GET", p.target, p.headers), 403, "AccessDenied", "Request has expired");
  });

  test("not yet valid (dated an hour ahead) → 403 AccessDenied", async () => {
    const p = await presigned({ path: "/data/hello.txt", expiresIn: 60, date: new Date(Date.now() + 3600_000) });
    await refused(send("GET", p.target, p.headers), 403, "AccessDenied", "Request is not yet valid");
  });

  test("X-Amz-Expires beyond a week or below 1 s → 400 AuthorizationQueryParametersError", async () => {
    const p = await presigned({ path: "/data/hello.txt", expiresIn: 60 });
    await refused(send("GET", p.target.replace("X-Amz-Expires=60", "X-Amz-Expires=604801"), p.headers), 400, "AuthorizationQueryParametersError", /less than a week/);
    await refused(send("GET", p.target.replace("X-Amz-Expires=60", "X-Amz-Expires=0"), p.headers), 400, "AuthorizationQueryParametersError", /at least 1 second/);
    await refused(send("GET", p.target.replace("X-Amz-Expires=60", "X-Amz-Expires=-5"), p.headers), 400, "AuthorizationQueryParametersError", /X-Amz-Expires must be non-negative/);
  });

  test("a tampered query: an added parameter, a changed one, another key → 403 SignatureDoesNotMatch", async () => {
    const p = await presigned({ path: "/data/hello.txt", expiresIn: 60, query: { "response-content-type": "text/plain" } });
    await refused(send("GET", `${p.target}&response-content-disposition=attachment`, p.headers), 403, "SignatureDoesNotMatch");
    await refused(send("GET", p.target.replace("response-content-type=text%2Fplain", "response-content-type=text%2Fhtml"), p.headers), 403, "SignatureDoesNotMatch");
    await refused(send("GET", p.target.replace("/data/hello.txt", "/private/secret.txt"), p.headers), 403, "SignatureDoesNotMatch");
  });
});

describe("partial credentials: never anonymous", () => {
  test("a session token without a signature (query or header) → 400 InvalidToken, where the same request without it is served anonymously; a lone X-Amz-Credential, X-Amz-Signature or X-Amz-Algorithm → 400 AuthorizationQueryParametersError", async () => {
    expect((await send("GET", "/data/hello.txt", {})).status).toBe(200);
    await refused(send("GET", "/data/hello.txt?X-Amz-Security-Token=garbage", {}), 400, "InvalidToken");
    await refused(send("GET", "/data/hello.txt", { "x-amz-security-token": "garbage" }), 400, "InvalidToken");
    await refused(send("GET", `/data/hello.txt?X-Amz-Credential=${APP.accessKeyId}%2F20240601%2Fus-east-1%2Fs3%2Faws4_request`, {}), 400, "AuthorizationQueryParametersError");
    await refused(send("GET", "/data/hello.txt?X-Amz-Signature=abcd", {}), 400, "AuthorizationQueryParametersError");
    await refused(send("GET", "/data/hello.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256", {}), 400, "AuthorizationQueryParametersError");
  });
});

describe("permissions", () => {
  test("a bucket the identity was not granted → 403 AccessDenied", async () => {
    await refused(signed({ path: "/jwtonly/secret.txt" }), 403, "AccessDenied");
    await refused(signed({ path: "/open/hello.txt" }), 403, "AccessDenied");
  });

  test("read without list, list without read → 403 AccessDenied", async () => {
    await refused(signed({ path: "/private/", query: { "list-type": "2" } }), 403, "AccessDenied");
    await refused(signed({ path: "/data/hello.txt", creds: LISTER }), 403, "AccessDenied");
  });

  test("a sub-resource this front does not serve is 501 only once the request is authenticated and the bucket granted: unsigned, mis-signed or ungranted it is S3's 403 (it was 501 whoever asked)", async () => {
    for (const sub of ["restore", "retention", "legal-hold", "torrent"]) {
      await refused(send("GET", `/data/hello.txt?${sub}`, {}), 403, "AccessDenied");
      await refused(signed({ path: "/data/hello.txt", query: { [sub]: "" }, creds: { ...APP, secretAccessKey: "not-the-secret-0123456789" } }), 403, "SignatureDoesNotMatch");
      await refused(signed({ path: "/private/secret.txt", query: { [sub]: "" }, creds: LISTER }), 403, "AccessDenied");
      await refused(signed({ path: "/data/hello.txt", query: { [sub]: "" } }), 501, "NotImplemented");
    }
    await refused(send("PUT", "/data/hello.txt?retention", {}), 403, "AccessDenied");
    await refused(send("POST", "/data/hello.txt?select&select-type=2", {}), 403, "AccessDenied");
    // (as get-object-acl, which the front serves, is refused to the same identity)
    await refused(signed({ path: "/private/secret.txt", query: { acl: "" }, creds: LISTER }), 403, "AccessDenied");
  });

  test("anonymous: a bucket with auth, a listing, ListBuckets → 403 AccessDenied", async () => {
    await refused(send("GET", "/private/secret.txt", {}), 403, "AccessDenied");
    await refused(send("GET", "/data/?list-type=2", {}), 403, "AccessDenied");
    await refused(send("GET", "/", {}), 403, "AccessDenied");
  });

  test("anonymous response-* overrides → 400 InvalidRequest (S3 allows them on signed requests only)", async () => {
    await refused(send("GET", "/data/hello.txt?response-content-type=text%2Fhtml", {}), 400, "InvalidRequest", /anonymous/);
  });
});

describe("requests S3 refuses before any permission check", () => {
  test("an unknown bucket → 404 NoSuchBucket", async () => {
    const r = await refused(signed({ path: "/nosuch/key" }), 404, "NoSuchBucket");
    expect(r.body).toContain("<BucketName>nosuch</BucketName>");
    expect(r.body).toContain("<Resource>/nosuch/key</Resource>");
    // an operation this front does not serve, on an unknown bucket: NoSuchBucket too (DeleteBucket
    // of a typo was NotImplemented); on a configured bucket it is AccessDenied (s3-front-bucket-config.test.ts)
    const rb = await refused(signed({ method: "DELETE", path: "/nosuch" }), 404, "NoSuchBucket");
    expect(rb.body).toContain("<BucketName>nosuch</BucketName>");
    await refused(signed({ path: "/nosuch", query: { policy: "" } }), 404, "NoSuchBucket");
    await refused(signed({ method: "DELETE", path: "/data" }), 403, "AccessDenied");
  });

  test("writes to a read-only bucket → 403 AccessDenied; other sub-resources → 501 NotImplemented", async () => {
    await refused(signed({ method: "PUT", path: "/data/new.txt", body: "x" }), 403, "AccessDenied");
    await refused(signed({ method: "DELETE", path: "/data/hello.txt" }), 403, "AccessDenied");
    await refused(signed({ method: "PUT", path: "/data/hello.txt", query: { acl: "" }, headers: { "x-amz-acl": "private" } }), 403, "AccessDenied");
    await refused(signed({ path: "/data/hello.txt", query: { torrent: "" } }), 501, "NotImplemented");
    await refused(signed({ path: "/data/", query: { abac: "" } }), 501, "NotImplemented");
    // (a bucket's configuration documents are answered from config, at a key's path too: bucket-config.ts)
    await refused(signed({ path: "/data/hello.txt", query: { cors: "" } }), 404, "NoSuchCORSConfiguration");
    // (a bucket's policy is S3's answer for a bucket without one: bucket-config.ts)
    await refused(signed({ path: "/data/", query: { policy: "" } }), 404, "NoSuchBucketPolicy");
  });

  test("CreateBucket (PUT on a bucket): a configured bucket is what S3 answers for a bucket one owns (us-east-1: 200, as `aws s3 mb` expects; elsewhere 409 BucketAlreadyOwnedByYou, which rclone's bucket check accepts); another name, or no signature, is AccessDenied", async () => {
    env.mark();
    const mine = await signed({ method: "PUT", path: "/data" });
    expect([mine.status, mine.body, mine.headers.get("location")]).toEqual([200, "", "/data"]);
    expect(env.upstreamCalls()).toEqual([]);
    await using eu = await startS3FrontEnv({ region: "eu-west-1" }, env.s3);
    const v = await smithySigned({ creds: APP, date: new Date(), method: "PUT", path: "/data", region: "eu-west-1", host: `127.0.0.1:${eu.port}` });
    const h = new Headers(v.headers);
    h.delete("host");
    const owned = await fetch(`${eu.endpoint}/data`, { method: "PUT", headers: h });
    const body = await owned.text();
    expect([owned.status, /<Code>([^<]*)<\/Code>/.exec(body)?.[1]]).toEqual([409, "BucketAlreadyOwnedByYou"]);
    expect(body).toContain("<BucketName>data</BucketName>");
    await refused(signed({ method: "PUT", path: "/brand-new-bucket" }), 403, "AccessDenied", /does not create buckets/);
    await refused(send("PUT", "/data", {}), 403, "AccessDenied");
  });

  test("CreateBucket of a configured bucket asking Object Lock or an ObjectOwnership other than BucketOwnerEnforced → 409 InvalidBucketState (it was 200: the lock asked for, never enabled); the settings it has pass", async () => {
    await refused(signed({ method: "PUT", path: "/data", headers: { "x-amz-bucket-object-lock-enabled": "true" } }), 409, "InvalidBucketState", "Object Lock configuration cannot be enabled on existing buckets");
    await refused(signed({ method: "PUT", path: "/data", headers: { "x-amz-bucket-object-lock-enabled": "TRUE" } }), 409, "InvalidBucketState");
    for (const ownership of ["ObjectWriter", "BucketOwnerPreferred"]) {
      await refused(signed({ method: "PUT", path: "/data", headers: { "x-amz-object-ownership": ownership } }), 409, "InvalidBucketState", /BucketOwnerEnforced/);
    }
    const bad = await refused(signed({ method: "PUT", path: "/data", headers: { "x-amz-object-ownership": "Nobody" } }), 400, "InvalidArgument");
    expect(bad.body).toContain("<ArgumentName>x-amz-object-ownership</ArgumentName>");
    // (neither true nor false, the header twice included: it was 200, a lock perhaps asked for and never enabled)
    for (const value of ["yes", "1", "true, true", "On"]) {
      const lock = await refused(signed({ method: "PUT", path: "/data", headers: { "x-amz-bucket-object-lock-enabled": value } }), 400, "InvalidArgument", "Invalid x-amz-bucket-object-lock-enabled header");
      expect(lock.body).toContain("<ArgumentName>x-amz-bucket-object-lock-enabled</ArgumentName>");
      // (the value as the client sent it, not lower-cased)
      expect(lock.body).toContain(`<ArgumentValue>${value}</ArgumentValue>`);
    }
    for (const headers of [{ "x-amz-bucket-object-lock-enabled": "false" }, { "x-amz-bucket-object-lock-enabled": " FALSE" }, { "x-amz-object-ownership": "BucketOwnerEnforced" }] as Record<string, string>[]) {
      const r = await signed({ method: "PUT", path: "/data", headers });
      expect([r.status, r.body]).toEqual([200, ""]);
    }
  });

  test("CreateBucket whose LocationConstraint names no region (1 MiB of text, upper case) → 400 InvalidLocationConstraint, the value not echoed (it was IllegalLocationConstraintException with the whole value in its Message)", async () => {
    const config = (lc: string) => `<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>${lc}</LocationConstraint></CreateBucketConfiguration>`;
    const huge = "x".repeat(1 << 20);
    // (shaped as a region's name, but longer than any: us-<1 MiB of letters>-1, us-east-100)
    for (const lc of [huge, `us-${"a".repeat(1 << 20)}-1`, "us-east-100", "US-EAST-1", "not a region"]) {
      const r = await refused(signed({ method: "PUT", path: "/data", headers: { "content-type": "application/xml" }, body: config(lc) }), 400, "InvalidLocationConstraint", "The specified location-constraint is not valid");
      expect(r.body.length).toBeLessThan(1000);
    }
    // us-east-1 named (S3's default region is asked for by naming none): S3's InvalidLocationConstraint,
    // here where s3_api.region is us-east-1 too (it was 200)
    const east = await refused(signed({ method: "PUT", path: "/data", headers: { "content-type": "application/xml" }, body: config("us-east-1") }), 400, "InvalidLocationConstraint", "The specified location-constraint is not valid");
    expect(east.body).toContain("<LocationConstraint>us-east-1</LocationConstraint>");
    // (an empty one, as the SDKs send for us-east-1 when asked to: no constraint)
    const none = await signed({ method: "PUT", path: "/data", headers: { "content-type": "application/xml" }, body: config("") });
    expect([none.status, none.body]).toEqual([200, ""]);
    // a region's name, another than s3_api.region: as before
    await refused(signed({ method: "PUT", path: "/data", headers: { "content-type": "application/xml" }, body: config("us-gov-west-1") }), 400, "IllegalLocationConstraintException", /^The us-gov-west-1 location constraint/);
  });

  test("CreateBucket with two LocationConstraint elements (or one holding an element) → 400 MalformedXML (it took the first and answered 200)", async () => {
    const body = (inner: string) => `<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${inner}</CreateBucketConfiguration>`;
    for (const inner of ["<LocationConstraint>us-east-1</LocationConstraint><LocationConstraint>eu-west-1</LocationConstraint>", "<LocationConstraint>us-east-1</LocationConstraint><LocationConstraint/>", "<LocationConstraint>us-east-1<x/></LocationConstraint>"]) {
      await refused(signed({ method: "PUT", path: "/data", headers: { "content-type": "application/xml" }, body: body(inner) }), 400, "MalformedXML");
    }
    // (one, naming us-east-1, this endpoint's region: S3's InvalidLocationConstraint, us-east-1 is asked for by naming none)
    await refused(signed({ method: "PUT", path: "/data", headers: { "content-type": "application/xml" }, body: body("<LocationConstraint>us-east-1</LocationConstraint>") }), 400, "InvalidLocationConstraint");
  });

  test("a HEAD's error answer has no body and the GET's Content-Length, never 0 (RFC 9110 §8.6)", async () => {
    const get = await signed({ path: "/data/no-such-key.txt" });
    expect(get.status).toBe(404);
    const head = await signed({ method: "HEAD", path: "/data/no-such-key.txt" });
    expect([head.status, head.body]).toEqual([404, ""]);
    expect(head.headers.get("content-length")).toBe(String(Buffer.byteLength(get.body)));
  });

  test("a URI over max_uri_length: KeyTooLongError only when the key is what is long; a long query → InvalidURI (it was KeyTooLongError for a listing)", async () => {
    const longPrefix = "a".repeat(9000);
    await refused(send("GET", `/data?list-type=2&prefix=${longPrefix}`, {}), 400, "InvalidURI", /longer than this endpoint accepts/);
    await refused(send("GET", `/data/hello.txt?x=${longPrefix}`, {}), 400, "InvalidURI");
    const r = await refused(send("GET", `/data/${longPrefix}`, {}), 400, "KeyTooLongError");
    expect(r.body).toContain("<Size>9000</Size>");
  });

  test("an empty bucket segment before a key (//bucket/key, signed as sent) → 400 InvalidURI, not the service's ListBuckets", async () => {
    env.mark();
    for (const [method, path] of [["GET", "//data/hello.txt"], ["PUT", "//data/x"], ["POST", "//data"]] as const) {
      const v = await smithySigned({ creds: APP, date: new Date(), method, path, host: `127.0.0.1:${env.port}` });
      const raw = await rawExchange([`${method} ${path} HTTP/1.1`, ...[...v.headers].map(([k, val]) => `${k}: ${val}`), "content-length: 0"].join("\r\n"));
      expect(raw).toStartWith("HTTP/1.1 400");
      expect(raw).toContain("<Code>InvalidURI</Code>");
      expect(raw).not.toContain("ListAllMyBucketsResult");
    }
    expect(env.upstreamCalls()).toEqual([]);
  });

  test("dot segments in a key (signed as sent) → 400 InvalidArgument; a malformed escape → 400 InvalidURI", async () => {
    // (at the end too: Bun's URL resolves `/data/a/..` to `/data/`, a slash the client never sent and did not sign)
    for (const path of ["/data/a/../hello.txt", "/data/a/..", "/data/a/.", "/data/a/b/.."]) {
      env.mark();
      const v = await smithySigned({ creds: APP, date: new Date(), path, host: `127.0.0.1:${env.port}` });
      const raw = await rawExchange([`GET ${path} HTTP/1.1`, ...[...v.headers].map(([k, val]) => `${k}: ${val}`)].join("\r\n"));
      expect(raw).toStartWith("HTTP/1.1 400");
      expect(raw).toContain("<Code>InvalidArgument</Code>");
      expect(env.upstreamCalls()).toEqual([]);
    }
    await refused(send("GET", "/data/%E0%A4%A", {}), 400, "InvalidURI");
  });

  test("an empty key segment (a leading '/' or '//', signed as sent) → 400 InvalidArgument, nothing upstream: a store that normalizes paths would serve another key than the one authorized", async () => {
    for (const path of ["/data//hello.txt", "/data/a//hello.txt"]) {
      env.mark();
      const r = await refused(signed({ path }), 400, "InvalidArgument", /empty path segment/);
      expect(r.body).toContain("<ArgumentName>key</ArgumentName>");
    }
    // a trailing "/" (a folder marker's key) is a key like any other
    env.mark();
    const marker = await signed({ path: "/data/folder/" });
    expect(marker.status).toBe(404);
    expect(marker.code).toBe("NoSuchKey");
  });

  test("a NUL in a key or a listing prefix → 400 InvalidArgument, nothing upstream (as the plain front refuses it; a store keeping keys as file names fails with a 5xx that counts against the breaker)", async () => {
    const r = await refused(signed({ path: "/data/a%00b.txt" }), 400, "InvalidArgument", /NUL character/);
    expect(r.body).toContain("<ArgumentName>key</ArgumentName>");
    await refused(signed({ method: "PUT", path: "/data/nul%00.txt", body: "x" }), 400, "InvalidArgument", /NUL character/);
    await refused(signed({ path: "/data", query: { "list-type": "2", prefix: "a\u0000" } }), 400, "InvalidArgument", /NUL character/);
  });

  test("a listing parameter the listing echoes holding a character XML 1.0 cannot carry → 400 InvalidArgument without encoding-type=url (it was echoed as &#x1;, the whole listing unreadable); with it, echoed url-encoded", async () => {
    const asked: Array<[Record<string, string>, string]> = [
      [{ "list-type": "2", prefix: "a\u0001" }, "prefix"],
      [{ "list-type": "2", "start-after": "a\u001f" }, "start-after"],
      [{ "list-type": "2", delimiter: "\u000b" }, "delimiter"],
      [{ marker: "a\u0008" }, "marker"],
      [{ "list-type": "2", prefix: "a\uffff" }, "prefix"],
      [{ versions: "", "key-marker": "k\u0002" }, "key-marker"],
      [{ uploads: "", "key-marker": "k", "upload-id-marker": "u\u0003" }, "upload-id-marker"],
    ];
    for (const [query, name] of asked) {
      const r = await refused(signed({ path: "/data", query }), 400, "InvalidArgument", /encoding-type=url/);
      expect(r.body).toContain(`<ArgumentName>${name}</ArgumentName>`);
      expect(r.body).not.toMatch(/[\x00-\x08\x0b\x0c\x0e-\x1f]|&#x?[0-9a-f]+;/i);
    }
    // an upload's id is echoed as text even with encoding-type=url (it encodes keys, prefixes, delimiters): refused then too
    const id = await refused(signed({ path: "/data", query: { uploads: "", "encoding-type": "url", "key-marker": "k", "upload-id-marker": "u\u0003" } }), 400, "InvalidArgument", /names no upload/);
    expect(id.body).toContain("<ArgumentName>upload-id-marker</ArgumentName>");
    const ok = await signed({ path: "/data", query: { "list-type": "2", "encoding-type": "url", prefix: "a\u0001", "start-after": "a\u0001b" } });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain("<Prefix>a%01</Prefix>");
    expect(ok.body).toContain("<StartAfter>a%01b</StartAfter>");
    expect(ok.body).not.toMatch(/[\x00-\x08\x0b\x0c\x0e-\x1f]|&#x?[0-9a-f]+;/i);
  });

  test("a C0 control character in a missing key: the error's Key and Resource write it as S3 and the listings do, &#x1; (it was U+FFFD, another key); a NUL's 400 keeps U+FFFD (no XML form)", async () => {
    const r = await signed({ path: "/data/missing%01x" });
    expect(`${r.status} ${r.code}`).toBe("404 NoSuchKey");
    expect(r.body).toContain("<Key>missing&#x1;x</Key>");
    expect(r.body).toContain("<Resource>/data/missing&#x1;x</Resource>");
    const nul = await refused(signed({ path: "/data/a%00b.txt" }), 400, "InvalidArgument");
    expect(nul.body).toContain("<Resource>/data/a\ufffdb.txt</Resource>");
  });

  test("a HEAD error has the status and no body", async () => {
    env.mark();
    const res = await fetch(env.endpoint + "/private/secret.txt", { method: "HEAD" });
    expect(res.status).toBe(403);
    expect(await res.text()).toBe("");
    expect(env.upstreamCalls()).toEqual([]);
  });

  test("a signed payload hash that is not the empty body's → 400 XAmzContentSHA256Mismatch", async () => {
    const v = await smithySigned({ creds: APP, date: new Date(), path: "/data/hello.txt", host: `127.0.0.1:${env.port}`, headers: { "x-amz-content-sha256": "a".repeat(64) } });
    await refused(send("GET", v.rawPath, v.headers), 400, "XAmzContentSHA256Mismatch");
  });

  test("a GET with a body → 400 UnexpectedContent", async () => {
    env.mark();
    const v = await smithySigned({ creds: APP, date: new Date(), path: "/data/hello.txt", host: `127.0.0.1:${env.port}` });
    const raw = await rawExchange([`GET /data/hello.txt HTTP/1.1`, ...[...v.headers].map(([k, val]) => `${k}: ${val}`), "content-length: 5"].join("\r\n"), "hello");
    expect(raw).toStartWith("HTTP/1.1 400");
    expect(raw).toContain("<Code>UnexpectedContent</Code>");
    expect(env.upstreamCalls()).toEqual([]);
  });

  test("a GET whose Content-Length is signed too (every header signed) → 400 UnexpectedContent", async () => {
    env.mark();
    const v = await smithySigned({ creds: APP, date: new Date(), path: "/data/hello.txt", host: `127.0.0.1:${env.port}`, headers: { "content-length": "5" } });
    expect(v.headers.get("authorization")).toContain("content-length");
    // (no Connection header: every header of the request is a signed one)
    const raw = await rawExchange([`GET /data/hello.txt HTTP/1.1`, ...[...v.headers].map(([k, val]) => `${k}: ${val}`)].join("\r\n"), "hello", false);
    expect(raw).toStartWith("HTTP/1.1 400");
    expect(raw).toContain("<Code>UnexpectedContent</Code>");
    expect(env.upstreamCalls()).toEqual([]);
  });
});
