/**
 * Published vectors: AWS's aws-sig-v4-test-suite (service "service", through the verifier's own
 * canonical-request builder) and the S3 API reference's signing examples (through verifySigV4
 * end to end, with the documentation's clock).
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { credentialScope, deriveSigningKey, EMPTY_SHA256, sha256Hex, signature, stringToSign } from "../../../src/s3/sigv4.ts";
import { canonicalRequestOf, verifySigV4 } from "../../../src/fronts/s3/verify.ts";
import { parseRawQuery } from "../../../src/fronts/s3/uri.ts";
import { input, lookupOf, msOf } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

// ------------------------------------------------------------------ aws-sig-v4-test-suite

describe("aws-sig-v4-test-suite (20150830T123600Z, us-east-1, service)", () => {
  const key = deriveSigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "service");
  const scope = credentialScope("20150830", "us-east-1", "service");
  const date = "20150830T123600Z";
  const host = "example.amazonaws.com";

  /** Signs a request the way the verifier canonicalizes it; the suite gives the raw request. */
  const sign = (method: string, target: string, headers: Array<[string, string]>, body = "") => {
    const req = input(method, target, [["Host", host], ["X-Amz-Date", date], ...headers]);
    const names = [...new Set([...req.headers.keys()])].sort();
    const creq = canonicalRequestOf(req, parseRawQuery(req.rawQuery)!, names, sha256Hex(body), false)!;
    return { creq, sig: signature(key, stringToSign(date, scope, creq)) };
  };

  const cases: Array<[string, string, string, Array<[string, string]>, string, string]> = [
    ["get-vanilla", "GET", "/", [], "", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"],
    ["get-vanilla-query-order-key-case", "GET", "/?Param2=value2&Param1=value1", [], "", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"],
    ["get-vanilla-query-order-value", "GET", "/?Param1=value2&Param1=value1", [], "", "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"],
    ["get-vanilla-empty-query-key", "GET", "/?Param1=value1", [], "", "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"],
    ["get-vanilla-query-unreserved", "GET",
      "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
      [], "", "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"],
    ["get-vanilla-utf8-query", "GET", "/?ሴ=bar", [], "", "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"],
    ["get-unreserved", "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", [], "", "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"],
    ["get-utf8", "GET", "/ሴ", [], "", "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"],
    ["get-space", "GET", "/example space/", [], "", "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"],
    ["get-header-value-trim", "GET", "/", [["My-Header1", " value1"], ["My-Header2", ' "a   b   c"']], "", "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"],
    ["post-vanilla", "POST", "/", [], "", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"],
    ["post-vanilla-query", "POST", "/?Param1=value1", [], "", "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"],
    ["post-header-key-sort", "POST", "/", [["My-Header1", "value1"]], "", "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"],
    ["post-header-value-case", "POST", "/", [["My-Header1", "VALUE1"]], "", "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"],
    ["post-x-www-form-urlencoded", "POST", "/", [["Content-Type", "application/x-www-form-urlencoded"]], "Param1=value1",
      "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"],
    ["post-x-www-form-urlencoded-parameters", "POST", "/", [["Content-Type", "application/x-www-form-urlencoded; charset=utf8"]], "Param1=value1",
      "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"],
  ];
  for (const [name, method, target, headers, body, expected] of cases) {
    test(name, () => {
      expect(sign(method, target, headers, body).sig).toBe(expected);
    });
  }

  test("get-vanilla-query-order-key-case: the canonical request itself", () => {
    expect(sign("GET", "/?Param2=value2&Param1=value1", []).creq).toBe(
      `GET\n/\nParam1=value1&Param2=value2\nhost:${host}\nx-amz-date:${date}\n\nhost;x-amz-date\n${EMPTY_SHA256}`,
    );
  });

  test("S3 does not normalize paths (unlike the suite's get-slash/get-relative cases)", () => {
    expect(sign("GET", "/example/../a//b/./", []).creq.split("\n")[1]).toBe("/example/../a//b/./");
  });
});

// ------------------------------------------------------------------ S3 API reference examples

const DOC = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" };
const HOST = "examplebucket.s3.amazonaws.com";
const DATE = "20130524T000000Z";
const CRED = "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request";
const opts = (now = msOf(DATE)) => ({ region: "us-east-1", now, maxSkewSeconds: 900 });
const auth = (signed: string, sig: string) => `AWS4-HMAC-SHA256 Credential=${CRED}, SignedHeaders=${signed}, Signature=${sig}`;

describe("S3 API reference examples through verifySigV4", () => {
  test("GET Object with Range", () => {
    const r = verifySigV4(input("GET", "/test.txt", {
      host: HOST, range: "bytes=0-9", "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": DATE,
      authorization: auth("host;range;x-amz-content-sha256;x-amz-date", "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
    }), lookupOf(DOC), opts());
    expect(r.kind).toBe("ok");
    if (r.kind !== "ok") return;
    expect(r.accessKeyId).toBe(DOC.accessKeyId);
    expect(r.principal).toBe(DOC);
    expect(r.mode).toBe("sha256");
    expect(r.payloadHash).toBe(EMPTY_SHA256);
    expect(r.scope).toBe("20130524/us-east-1/s3/aws4_request");
    expect(r.amzDate).toBe(DATE);
    expect(r.presigned).toBe(false);
    expect(r.seedSignature).toBe("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    expect(Buffer.from(r.signingKey)).toEqual(Buffer.from(deriveSigningKey(DOC.secretAccessKey, "20130524", "us-east-1", "s3")));
  });

  test("PUT Object ($ in the key, Date and x-amz-storage-class signed)", () => {
    const body = "Welcome to Amazon S3.";
    const r = verifySigV4(input("PUT", "/test$file.text", {
      host: HOST, date: "Fri, 24 May 2013 00:00:00 GMT", "x-amz-date": DATE, "x-amz-storage-class": "REDUCED_REDUNDANCY",
      "x-amz-content-sha256": sha256Hex(body),
      authorization: auth("date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class", "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
    }), lookupOf(DOC), opts());
    expect(r.kind).toBe("ok");
    if (r.kind === "ok") expect(r.payloadHash).toBe("44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  });

  test("GET Bucket Lifecycle (?lifecycle, no value)", () => {
    const r = verifySigV4(input("GET", "/?lifecycle", {
      host: HOST, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": DATE,
      authorization: auth("host;x-amz-content-sha256;x-amz-date", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
    }), lookupOf(DOC), opts());
    expect(r.kind).toBe("ok");
  });

  test("List Objects (?max-keys=2&prefix=J), query sent unsorted", () => {
    const r = verifySigV4(input("GET", "/?prefix=J&max-keys=2", {
      host: HOST, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": DATE,
      authorization: auth("host;x-amz-content-sha256;x-amz-date", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    }), lookupOf(DOC), opts());
    expect(r.kind).toBe("ok");
    if (r.kind === "ok") expect(r.query).toEqual([["prefix", "J"], ["max-keys", "2"]]);
  });

  const presigned = "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" +
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host" +
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

  test("presigned GET, anywhere inside its 86400 s (the end excluded)", () => {
    for (const now of [msOf(DATE), msOf(DATE) + 86_400_000 - 1]) {
      const r = verifySigV4(input("GET", presigned, { host: HOST }), lookupOf(DOC), opts(now));
      expect(r.kind).toBe("ok");
      if (r.kind !== "ok") continue;
      expect(r.presigned).toBe(true);
      expect(r.mode).toBe("unsigned");
      expect(r.payloadHash).toBe("UNSIGNED-PAYLOAD");
      expect(r.expiresAt).toBe(msOf(DATE) + 86_400_000);
    }
  });

  test("presigned GET one second after expiry → 403 AccessDenied Request has expired", () => {
    const r = verifySigV4(input("GET", presigned, { host: HOST }), lookupOf(DOC), opts(msOf(DATE) + 86_401_000));
    expect(r).toMatchObject({ kind: "error", status: 403, code: "AccessDenied", message: "Request has expired" });
    if (r.kind === "error") expect(r.details).toEqual({ "X-Amz-Expires": "86400", Expires: "2013-05-25T00:00:00Z", ServerTime: "2013-05-25T00:00:01Z" });
  });

  test("chunked upload seed request (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)", () => {
    const r = verifySigV4(input("PUT", "/examplebucket/chunkObject.txt", {
      host: "s3.amazonaws.com", "x-amz-date": DATE, "x-amz-storage-class": "REDUCED_REDUNDANCY",
      "content-encoding": "aws-chunked", "content-length": "66824", "x-amz-decoded-content-length": "66560",
      "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
      authorization: auth(
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class",
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
      ),
    }), lookupOf(DOC), opts());
    expect(r.kind).toBe("ok");
    if (r.kind !== "ok") return;
    expect(r.mode).toBe("streaming");
    expect(r.seedSignature).toBe("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
    expect(r.payloadHash).toBe("STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
  });
});
