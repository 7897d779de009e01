/** Every way a SigV4 request can be refused, with S3's code and status; and the anonymous case. */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { hexBytes, verifyRequest, verifySigV4, type VerifyInput } from "../../../src/fronts/s3/verify.ts";
import {
  EMPTY_SHA256,
  canonicalHeaders,
  canonicalRequest,
  credentialScope,
  deriveSigningKey,
  signature,
  stringToSign,
} from "../../../src/s3/sigv4.ts";
import { input, lookupOf, smithyPresigned, smithySigned } from "./helpers.ts";
import { StringToSignMac } from "../../../src/fronts/s3/signing-keys.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIDERRORS", secretAccessKey: "errors-secret" };
const WHEN = new Date("2024-06-01T12:00:00Z");
const T = WHEN.getTime();
const opts = { region: "us-east-1", now: T, maxSkewSeconds: 900 };
const lookup = lookupOf(CREDS);
const signed = (extra: Partial<Parameters<typeof smithySigned>[0]> = {}) => smithySigned({ path: "/bucket/key", creds: CREDS, date: WHEN, ...extra });
const presigned = (expiresIn = 3600, extra: Partial<Parameters<typeof smithySigned>[0]> = {}) =>
  smithyPresigned({ path: "/bucket/key", creds: CREDS, date: WHEN, expiresIn, ...extra });
const withHeader = (req: VerifyInput, name: string, value: string | null): VerifyInput => {
  const h = new Headers(req.headers);
  if (value === null) h.delete(name);
  else h.set(name, value);
  return { ...req, headers: h };
};
const verify = (req: VerifyInput, o: Partial<typeof opts> = {}) => verifySigV4(req, lookup, { ...opts, ...o });
const err = (code: string, status: number) => ({ kind: "error", code, status });

describe("no authentication", () => {
  test("no Authorization header and no auth query parameters → anonymous (the caller decides)", () => {
    const r = verify(input("GET", "/bucket/k?prefix=a%20b&x-amz-credential=lowercase-is-not-auth", { host: "h" }));
    expect(r).toEqual({ kind: "anonymous", query: [["prefix", "a b"], ["x-amz-credential", "lowercase-is-not-auth"]] });
  });

  test("an anonymous request with a malformed query → 400 InvalidURI", () => {
    expect(verify(input("GET", "/b/k?prefix=%zz", { host: "h" }))).toMatchObject(err("InvalidURI", 400));
  });
});

describe("credentials and signature", () => {
  test("a baseline signed request verifies (so the failures below are caused by their one change)", async () => {
    expect(verify(await signed()).kind).toBe("ok");
    expect(verify(await presigned()).kind).toBe("ok");
  });

  test("wrong secret → 403 SignatureDoesNotMatch with S3's debugging details", async () => {
    const req = await smithySigned({ path: "/bucket/key", creds: { ...CREDS, secretAccessKey: "wrong" }, date: WHEN });
    const r = verify(req);
    expect(r).toMatchObject(err("SignatureDoesNotMatch", 403));
    if (r.kind !== "error") return;
    expect(r.accessKeyId).toBe(CREDS.accessKeyId);
    expect(r.details!.AWSAccessKeyId).toBe(CREDS.accessKeyId);
    expect(r.details!.StringToSign).toStartWith("AWS4-HMAC-SHA256\n20240601T120000Z\n20240601/us-east-1/s3/aws4_request\n");
    expect(r.details!.CanonicalRequest).toStartWith("GET\n/bucket/key\n\nhost:");
    // the string to sign names the hash of the canonical request shown
    expect(r.details!.StringToSign.split("\n")[3]).toBe(new Bun.CryptoHasher("sha256").update(r.details!.CanonicalRequest!, "latin1").digest("hex"));
    expect(r.details!.CanonicalRequest).toEndWith("\nhost;x-amz-content-sha256;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(JSON.stringify(r)).not.toContain(CREDS.secretAccessKey);
  });

  test("SignatureDoesNotMatch also shows the string to sign and the canonical request as bytes, in S3's order", async () => {
    const req = await smithySigned({ path: "/bucket/key", creds: { ...CREDS, secretAccessKey: "wrong" }, date: WHEN, headers: { "x-amz-meta-name": "caf\u00c3\u00a9" } /* café in UTF-8, as a listener gives the bytes */ });
    const r = verify(req);
    if (r.kind !== "error") throw new Error("verified");
    const d = r.details!;
    expect(Object.keys(d)).toEqual(["AWSAccessKeyId", "StringToSign", "SignatureProvided", "StringToSignBytes", "CanonicalRequest", "CanonicalRequestBytes"]);
    const hex = (s: string) => [...Buffer.from(s, "latin1")].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    expect(d.StringToSignBytes).toStartWith("41 57 53 34 2d 48 4d 41 43 2d 53 48 41 32 35 36 0a 32 30 32 34");
    expect(d.StringToSignBytes).toBe(hex(d.StringToSign!));
    expect(d.CanonicalRequestBytes).toBe(hex(d.CanonicalRequest!));
    // the bytes hashed: é as UTF-8 (c3 a9), as the client sent it
    expect(d.CanonicalRequestBytes).toContain(" 63 61 66 c3 a9 0a ");
  });

  test("the session token never appears in the SignatureDoesNotMatch details", async () => {
    const token = "SECRET-SESSION/TOKEN+==";
    const req = await smithySigned({ path: "/bucket/key", creds: { accessKeyId: "ASIAT", secretAccessKey: "wrong", sessionToken: token }, date: WHEN });
    const r = verifySigV4(req, () => ({ secretAccessKey: "right" }), opts);
    expect(r).toMatchObject(err("SignatureDoesNotMatch", 403));
    expect(JSON.stringify(r)).not.toContain("SECRET-SESSION");
    if (r.kind === "error") expect(r.details!.CanonicalRequest).toContain("x-amz-security-token:<redacted>");
  });

  test("an SSE-C key (signed as any x-amz-* header, or a presigned URL's query parameter) never appears in the SignatureDoesNotMatch details; its MD5 does, as S3 shows it", async () => {
    const key = Buffer.from("CUSTOMER-KEY-0123456789abcdefghi").toString("base64");
    const copyKey = Buffer.from("COPY-SOURCE-KEY-0123456789abcdef").toString("base64");
    const md5 = "3uX1YjBbNAlEjjxxDgBy7A==";
    const headers = {
      "x-amz-server-side-encryption-customer-algorithm": "AES256",
      "x-amz-server-side-encryption-customer-key": key,
      "x-amz-server-side-encryption-customer-key-md5": md5,
      "x-amz-copy-source-server-side-encryption-customer-key": copyKey,
    };
    const wrong = { ...CREDS, secretAccessKey: "wrong" };
    const inHeaders = verify(await smithySigned({ path: "/bucket/key", creds: wrong, date: WHEN, headers }));
    const inQuery = verify(await smithySigned({ path: "/bucket/key", creds: wrong, date: WHEN, query: { "X-Amz-Server-Side-Encryption-Customer-Key": key, "x-amz-copy-source-server-side-encryption-customer-key": copyKey, "x-id": "GetObject" } }));
    for (const r of [inHeaders, inQuery]) {
      expect(r).toMatchObject(err("SignatureDoesNotMatch", 403));
      const text = JSON.stringify(r);
      for (const secret of [key, copyKey, encodeURIComponent(key), encodeURIComponent(copyKey)]) expect(text).not.toContain(secret);
      // (nor as the bytes shown: CanonicalRequestBytes is the redacted text's)
      const hex = (s: string) => [...Buffer.from(s, "latin1")].map((b) => b.toString(16).padStart(2, "0")).join(" ");
      if (r.kind === "error") expect(r.details!.CanonicalRequestBytes).toBe(hex(r.details!.CanonicalRequest!));
    }
    if (inHeaders.kind !== "error" || inQuery.kind !== "error") throw new Error("verified");
    expect(inHeaders.details!.CanonicalRequest).toContain("\nx-amz-server-side-encryption-customer-key:<redacted>\n");
    expect(inHeaders.details!.CanonicalRequest).toContain("\nx-amz-copy-source-server-side-encryption-customer-key:<redacted>\n");
    expect(inHeaders.details!.CanonicalRequest).toContain(`\nx-amz-server-side-encryption-customer-key-md5:${md5}\n`);
    expect(inQuery.details!.CanonicalRequest.split("\n")[2]).toBe("X-Amz-Server-Side-Encryption-Customer-Key=<redacted>&x-amz-copy-source-server-side-encryption-customer-key=<redacted>&x-id=GetObject");
  });

  test("unknown access key → 403 InvalidAccessKeyId", async () => {
    const req = await smithySigned({ path: "/bucket/key", creds: { accessKeyId: "AKIDUNKNOWN", secretAccessKey: "x" }, date: WHEN });
    expect(verify(req)).toMatchObject({ ...err("InvalidAccessKeyId", 403), details: { AWSAccessKeyId: "AKIDUNKNOWN" } });
  });

  test("an error from the lookup (an expired session) is returned as is", async () => {
    const req = await signed();
    const r = verifySigV4(req, () => ({ code: "ExpiredToken" as const, status: 400, message: "The provided token has expired." }), opts);
    expect(r).toMatchObject({ ...err("ExpiredToken", 400), accessKeyId: CREDS.accessKeyId });
  });

  test("a session token sent with a static key is refused by the lookup → 400 InvalidToken", async () => {
    const req = withHeader(await signed({ headers: { "x-amz-security-token": "tok" } }), "x-amz-security-token", "tok");
    expect(verify(req)).toMatchObject(err("InvalidToken", 400));
  });

  test("a signature that differs only in case, or in length, does not match", async () => {
    const req = await signed();
    const auth = req.headers.get("authorization")!;
    const sig = /Signature=([0-9a-f]{64})/.exec(auth)![1];
    expect(verify(withHeader(req, "authorization", auth.replace(sig, sig.toUpperCase())))).toMatchObject(err("SignatureDoesNotMatch", 403));
    expect(verify(withHeader(req, "authorization", auth.replace(sig, sig.slice(0, 63))))).toMatchObject(err("SignatureDoesNotMatch", 403));
    expect(verify(withHeader(req, "authorization", auth.replace(sig, sig + "0")))).toMatchObject(err("SignatureDoesNotMatch", 403));
  });

  test("a signature that differs in any one hex digit does not match (every digit is compared)", async () => {
    const req = await signed();
    const auth = req.headers.get("authorization")!;
    const sig = /Signature=([0-9a-f]{64})/.exec(auth)![1]!;
    for (let i = 0; i < 64; i++) {
      const other = sig.slice(0, i) + (sig[i] === "0" ? "1" : "0") + sig.slice(i + 1);
      const r = verify(withHeader(req, "authorization", auth.replace(sig, other)));
      expect([i, r.kind === "error" ? r.code : r.kind]).toEqual([i, "SignatureDoesNotMatch"]);
    }
  });

  test("tampered path, query, signed header or method → 403 SignatureDoesNotMatch", async () => {
    const req = await signed({ query: { prefix: "a" }, headers: { range: "bytes=0-9" } });
    expect(verify({ ...req, rawPath: "/bucket/other" })).toMatchObject(err("SignatureDoesNotMatch", 403));
    expect(verify({ ...req, rawQuery: "prefix=b" })).toMatchObject(err("SignatureDoesNotMatch", 403));
    expect(verify({ ...req, rawQuery: "prefix=a&extra=1" })).toMatchObject(err("SignatureDoesNotMatch", 403));
    expect(verify(withHeader(req, "range", "bytes=0-99"))).toMatchObject(err("SignatureDoesNotMatch", 403));
    expect(verify(withHeader(req, "host", "evil.example"))).toMatchObject(err("SignatureDoesNotMatch", 403));
    expect(verify({ ...req, method: "DELETE" })).toMatchObject(err("SignatureDoesNotMatch", 403));
  });

  test("a malformed percent-escape in a signed request's path → 400 InvalidURI", async () => {
    expect(verify({ ...(await signed()), rawPath: "/bucket/%E0%A4%A" })).toMatchObject(err("InvalidURI", 400));
  });
});

describe("which headers are signed", () => {
  test("an unsigned x-amz-* header → 403 AccessDenied, naming it", async () => {
    const r = verify(withHeader(await signed(), "x-amz-acl", "public-read"));
    expect(r).toMatchObject({ ...err("AccessDenied", 403), message: "There were headers present in the request which were not signed" });
    if (r.kind === "error") expect(r.details).toEqual({ HeadersNotSigned: "x-amz-acl" });
  });

  test("an unsigned x-amz-* header beside common unsigned ones (User-Agent, Accept, …) is still found; those alone pass", async () => {
    let req = await signed();
    for (const [k, v] of [["user-agent", "aws-cli/2"], ["accept", "*/*"], ["accept-encoding", "identity"], ["x-amzn-trace-id", "Root=1-x"]]) req = withHeader(req, k!, v!);
    expect(verify(req).kind).toBe("ok");
    const r = verify(withHeader(req, "x-amz-acl", "public-read"));
    expect(r).toMatchObject(err("AccessDenied", 403));
    if (r.kind === "error") expect(r.details).toEqual({ HeadersNotSigned: "x-amz-acl" });
    // an uncommon unsigned header beside it: every name is looked at
    const r2 = verify(withHeader(withHeader(req, "x-custom", "1"), "x-amz-meta-a", "1"));
    if (r2.kind === "error") expect(r2.details).toEqual({ HeadersNotSigned: "x-amz-meta-a" });
    expect(r2.kind).toBe("error");
    expect(verify(withHeader(req, "x-custom", "1")).kind).toBe("ok");
  });

  test("an unsigned x-amz-security-token → 403 AccessDenied naming it (a session token is only taken from a signed header)", async () => {
    const r = verify(withHeader(await signed(), "x-amz-security-token", "some-token"));
    expect(r).toMatchObject(err("AccessDenied", 403));
    if (r.kind === "error") expect(r.details).toEqual({ HeadersNotSigned: "x-amz-security-token" });
  });

  test("a request signing many headers (more than verification keeps read values of) verifies; a change to any of them does not", async () => {
    const headers = Object.fromEntries(Array.from({ length: 14 }, (_, i) => [`x-amz-meta-h${String(i).padStart(2, "0")}`, `value ${i}`]));
    const req = await signed({ headers });
    expect(req.headers.get("authorization")).toContain("x-amz-meta-h13");
    expect(verify(req).kind).toBe("ok");
    for (const name of ["x-amz-meta-h00", "x-amz-meta-h07", "x-amz-meta-h13", "x-amz-date", "x-amz-content-sha256"]) {
      expect(verify(withHeader(req, name, name === "x-amz-date" ? "20240601T120001Z" : name === "x-amz-content-sha256" ? "UNSIGNED-PAYLOAD" : "changed"))).toMatchObject(err("SignatureDoesNotMatch", 403));
    }
    // and the next request is read afresh (nothing of this one's values is kept)
    expect(verify(await signed()).kind).toBe("ok");
  });

  test("allSigned: whether every header present is signed (or the Authorization header)", async () => {
    const req = await signed();
    const r = verify(req);
    expect(r.kind === "ok" && r.allSigned).toBe(true);
    const r2 = verify(withHeader(req, "user-agent", "aws-cli/2"));
    expect(r2.kind === "ok" && !r2.allSigned).toBe(true);
    const r3 = verify(await presigned());
    expect(r3.kind === "ok" && r3.allSigned).toBe(true);
  });

  test("host not signed → 403 AccessDenied", async () => {
    const req = await signed();
    const auth = req.headers.get("authorization")!.replace("SignedHeaders=host;", "SignedHeaders=");
    const r = verify(withHeader(req, "authorization", auth));
    expect(r).toMatchObject(err("AccessDenied", 403));
    if (r.kind === "error") expect(r.details!.HeadersNotSigned).toBe("host");
  });

  test("host not signed on a request without a Host header (HTTP/1.0) → 403 AccessDenied", async () => {
    const req = withHeader(await signed(), "host", null);
    const auth = req.headers.get("authorization")!.replace("SignedHeaders=host;", "SignedHeaders=");
    const r = verify(withHeader(req, "authorization", auth));
    expect(r).toMatchObject(err("AccessDenied", 403));
    if (r.kind === "error") expect(r.details!.HeadersNotSigned).toBe("host");
  });

  describe("a header sent more than once (SigV4 joins its values with ',', in the order sent)", () => {
    const amz = "20240601T120000Z";
    const key = deriveSigningKey(CREDS.secretAccessKey, "20240601", "us-east-1", "s3");
    const scope = credentialScope("20240601", "us-east-1", "s3");
    /** The request with `wire` as its headers, signed over `canonicalMeta` as x-amz-meta-a's canonical value (written by hand, as the spec gives it). */
    const repeated = (wire: Array<[string, string]>, canonicalMeta: string): VerifyInput => {
      const creq = `GET\n/bucket/key\n\nhost:h\nx-amz-content-sha256:${EMPTY_SHA256}\nx-amz-date:${amz}\nx-amz-meta-a:${canonicalMeta}\n\nhost;x-amz-content-sha256;x-amz-date;x-amz-meta-a\n${EMPTY_SHA256}`;
      const sig = signature(key, stringToSign(amz, scope, creq));
      return input("GET", "/bucket/key", [
        ["host", "h"], ["x-amz-date", amz], ["x-amz-content-sha256", EMPTY_SHA256], ...wire,
        ["authorization", `AWS4-HMAC-SHA256 Credential=${CREDS.accessKeyId}/${scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-a, Signature=${sig}`],
      ]);
    };

    test("as aws-sig-v4-test-suite's get-header-key-duplicate and get-header-value-order sign it: verifies", () => {
      expect(verify(repeated([["x-amz-meta-a", "value2"], ["x-amz-meta-a", "value2"], ["x-amz-meta-a", "value1"]], "value2,value2,value1")).kind).toBe("ok");
      expect(verify(repeated([["x-amz-meta-a", "value4"], ["x-amz-meta-a", " value1"], ["x-amz-meta-a", "value3 "], ["x-amz-meta-a", "value2"]], "value4,value1,value3,value2")).kind).toBe("ok");
    });

    test("a single value with ', ' in it, signed as sent, still verifies; other values do not", () => {
      expect(verify(repeated([["x-amz-meta-a", "a, b"]], "a, b")).kind).toBe("ok");
      expect(verify(repeated([["x-amz-meta-a", "one"], ["x-amz-meta-a", "two"]], "two,one"))).toMatchObject(err("SignatureDoesNotMatch", 403));
      expect(verify(repeated([["x-amz-meta-a", "one"], ["x-amz-meta-a", "two"]], "one,two,three"))).toMatchObject(err("SignatureDoesNotMatch", 403));
    });

    test("a repeated header signed along with other headers whose values hold ', ' (read as sent, not as joins): verifies", () => {
      // botocore signs x-amz-meta-a sent twice as "b,c", and x-amz-meta-name and If-Match as they are
      const others = "if-match:\"e1\", \"e2\"\nx-amz-meta-a:b,c\nx-amz-meta-name:Smith, John\n";
      const signedLine = "host;if-match;x-amz-content-sha256;x-amz-date;x-amz-meta-a;x-amz-meta-name";
      const creq = `GET\n/bucket/key\n\nhost:h\n${others.split("\n")[0]}\nx-amz-content-sha256:${EMPTY_SHA256}\nx-amz-date:${amz}\n${others.split("\n").slice(1).join("\n")}\n${signedLine}\n${EMPTY_SHA256}`;
      const sig = signature(key, stringToSign(amz, scope, creq));
      const req = (meta: Array<[string, string]>) => input("GET", "/bucket/key", [
        ["host", "h"], ["if-match", '"e1", "e2"'], ["x-amz-date", amz], ["x-amz-content-sha256", EMPTY_SHA256], ...meta, ["x-amz-meta-name", "Smith, John"],
        ["authorization", `AWS4-HMAC-SHA256 Credential=${CREDS.accessKeyId}/${scope}, SignedHeaders=${signedLine}, Signature=${sig}`],
      ]);
      expect(verify(req([["x-amz-meta-a", "b"], ["x-amz-meta-a", "c"]])).kind).toBe("ok");
      // and the values still count: another one, or the other header read as joined, does not verify
      expect(verify(req([["x-amz-meta-a", "b"], ["x-amz-meta-a", "d"]]))).toMatchObject(err("SignatureDoesNotMatch", 403));
    });

    test("a repeated header one of whose own values holds ', ' (as sent twice: 'Smith, John' then 'Doe'): verifies", () => {
      expect(verify(repeated([["x-amz-meta-a", "Smith, John"], ["x-amz-meta-a", "Doe"]], "Smith, John,Doe")).kind).toBe("ok");
      expect(verify(repeated([["x-amz-meta-a", "a,\t b"], ["x-amz-meta-a", ""], ["x-amz-meta-a", "c ,  d"]], "a, b,,c , d")).kind).toBe("ok");
      // (values in another order, or changed, are still refused)
      expect(verify(repeated([["x-amz-meta-a", "Smith, John"], ["x-amz-meta-a", "Doe"]], "Doe,Smith, John"))).toMatchObject(err("SignatureDoesNotMatch", 403));
      expect(verify(repeated([["x-amz-meta-a", "Smith, John"], ["x-amz-meta-a", "Doe"]], "Smith, Joan,Doe"))).toMatchObject(err("SignatureDoesNotMatch", 403));
    });

    test("a refused request with ', ' in large signed headers hashes a few readings, not every subset (each hashes the whole request)", () => {
      const big = "x".repeat(4000);
      const metas = ["x-amz-meta-a", "x-amz-meta-b", "x-amz-meta-c", "x-amz-meta-d"];
      const req = input("GET", "/bucket/key?a=b+c", [
        ["host", "h"], ["x-amz-date", amz], ["x-amz-content-sha256", EMPTY_SHA256], ...metas.map((m): [string, string] => [m, `${big}, ${big}`]),
        ["authorization", `AWS4-HMAC-SHA256 Credential=${CREDS.accessKeyId}/${scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date;${metas.join(";")}, Signature=${"0".repeat(64)}`],
      ]);
      const sign = StringToSignMac.prototype.sign;
      let readings = 0;
      StringToSignMac.prototype.sign = function (this: StringToSignMac, ...a: Parameters<typeof sign>) {
        readings++;
        return sign.apply(this, a);
      };
      try {
        expect(verify(req)).toMatchObject(err("SignatureDoesNotMatch", 403));
      } finally {
        StringToSignMac.prototype.sign = sign;
      }
      // (the literal and all-joined readings, each with "+" as sent and as a space; every subset was 32)
      expect(readings).toBe(4);
    });
  });

  test("an unsigned x-amz-* header on a presigned request → 403 AccessDenied", async () => {
    expect(verify(withHeader(await presigned(), "x-amz-copy-source", "/other/key"))).toMatchObject(err("AccessDenied", 403));
  });
});

describe("malformed Authorization header", () => {
  const base = `Credential=${CREDS.accessKeyId}/20240601/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${"0".repeat(64)}`;
  const headers = (authorization: string) => input("GET", "/b/k", {
    host: "h", "x-amz-date": "20240601T120000Z", "x-amz-content-sha256": EMPTY_SHA256, authorization,
  });

  test("the baseline reaches the signature check (so each case below fails on its own defect)", () => {
    expect(verify(headers("AWS4-HMAC-SHA256 " + base))).toMatchObject(err("SignatureDoesNotMatch", 403));
  });

  const malformed: Array<[string, string]> = [
    ["missing Signature", base.replace(/, Signature=.*/, "")],
    ["missing Credential", base.replace(/^Credential=[^,]*, /, "")],
    ["duplicate component", base + ", Signature=" + "1".repeat(64)],
    ["unknown component", base + ", Foo=bar"],
    ["component without =", base + ", junk"],
    ["credential with 4 parts", base.replace("/s3/aws4_request", "/s3")],
    ["credential with a bad date", base.replace("/20240601/", "/2024061/")],
    ["credential date of 7 digits (a prefix of the request's date)", base.replace("/20240601/", "/2024060/")],
    ["credential with 6 parts", base.replace("/aws4_request", "/aws4_request/x")],
    ["credential with an empty access key", base.replace(`Credential=${CREDS.accessKeyId}/`, "Credential=/")],
    ["credential with an empty part", base.replace("/us-east-1/", "//")],
    ["uppercase signed header", base.replace("SignedHeaders=host", "SignedHeaders=Host")],
    ["empty signed header name", base.replace("SignedHeaders=host;", "SignedHeaders=host;;")],
    ["duplicate signed header", base.replace("SignedHeaders=host;", "SignedHeaders=host;host;")],
    ["wrong service", base.replace("/s3/", "/iam/")],
    ["wrong terminal", base.replace("aws4_request", "aws5_request")],
    ["credential date not the request's date", base.replace("/20240601/", "/20240531/")],
  ];
  for (const [name, value] of malformed) {
    test(`${name} → 400 AuthorizationHeaderMalformed`, () => {
      expect(verify(headers("AWS4-HMAC-SHA256 " + value))).toMatchObject(err("AuthorizationHeaderMalformed", 400));
    });
  }

  test("wrong region → 400 AuthorizationHeaderMalformed with the expected Region (SDKs redirect on it)", () => {
    const r = verify(headers("AWS4-HMAC-SHA256 " + base.replace("us-east-1", "eu-west-1")));
    expect(r).toMatchObject({
      ...err("AuthorizationHeaderMalformed", 400),
      message: "The authorization header is malformed; the region 'eu-west-1' is wrong; expecting 'us-east-1'",
      details: { Region: "us-east-1" },
    });
  });

  test("the scheme alone → 400 AuthorizationHeaderMalformed: the three components are required", () => {
    expect(verify(headers("AWS4-HMAC-SHA256"))).toMatchObject({
      ...err("AuthorizationHeaderMalformed", 400),
      message: "The authorization header is malformed; the authorization header requires three components: Credential, SignedHeaders, and Signature.",
    });
  });

  test("SigV2 header → 400 InvalidRequest asking for AWS4-HMAC-SHA256", () => {
    expect(verify(headers("AWS AKIDERRORS:c2lnbmF0dXJl"))).toMatchObject({
      ...err("InvalidRequest", 400),
      message: "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
    });
  });

  test("another scheme → 400 InvalidArgument, without echoing the credential", () => {
    const r = verify(headers("Bearer eyJsecret.token.here"));
    expect(r).toMatchObject({ ...err("InvalidArgument", 400), message: "Unsupported Authorization Type" });
    expect(JSON.stringify(r)).not.toContain("eyJsecret");
    expect(verify(headers(""))).toMatchObject(err("InvalidArgument", 400));
  });

  test("SigV4A (AWS4-ECDSA-P256-SHA256) → 501 NotImplemented", () => {
    expect(verify(headers("AWS4-ECDSA-P256-SHA256 " + base))).toMatchObject(err("NotImplemented", 501));
  });
});

describe("request time", () => {
  test("clock skew beyond max_clock_skew_seconds → 403 RequestTimeTooSkewed, either direction", async () => {
    const req = await signed();
    for (const delta of [901_000, -901_000]) {
      const r = verify(req, { now: T + delta });
      expect(r).toMatchObject(err("RequestTimeTooSkewed", 403));
      if (r.kind === "error") expect(r.details).toMatchObject({ RequestTime: "20240601T120000Z", MaxAllowedSkewMilliseconds: "900000" });
    }
    // beyond by less than a second is still beyond (the past side counts from the end of the
    // request time's second: the client signed at some instant of it)
    expect(verify(req, { now: T + 900_999 }).kind).toBe("ok");
    expect(verify(req, { now: T + 901_000 })).toMatchObject(err("RequestTimeTooSkewed", 403));
    expect(verify(req, { now: T - 900_001 })).toMatchObject(err("RequestTimeTooSkewed", 403));
  });

  test("max_clock_skew_seconds: 1 admits a client whose clock is right, whatever instant of its x-amz-date's second it signed at (it refused one that signed late in the second and arrived a little later)", async () => {
    const req = await signed();
    // signed at T + 0.95 s (x-amz-date says T), arrived 100 ms later; or signed at T, arrived after 1 s
    for (const now of [T, T + 1050, T + 1999, T - 1000]) expect({ now: now - T, kind: verify(req, { now, maxSkewSeconds: 1 }).kind }).toEqual({ now: now - T, kind: "ok" });
    for (const now of [T + 2000, T - 1001]) expect(verify(req, { now, maxSkewSeconds: 1 })).toMatchObject(err("RequestTimeTooSkewed", 403));
    expect(verify(req, { now: T + 900_000 }).kind).toBe("ok");
    expect(verify(req, { now: T - 900_000 }).kind).toBe("ok");
  });

  test("a Date header that is not a valid IMF-fixdate (minute 60, second 60) → 403 AccessDenied", () => {
    const auth = `AWS4-HMAC-SHA256 Credential=${CREDS.accessKeyId}/20240601/us-east-1/s3/aws4_request, SignedHeaders=date;host;x-amz-content-sha256, Signature=${"0".repeat(64)}`;
    for (const date of ["Sat, 01 Jun 2024 11:60:00 GMT", "Sat, 01 Jun 2024 11:59:60 GMT"]) {
      const r = verify(input("GET", "/b/k", { host: "h", date, "x-amz-content-sha256": EMPTY_SHA256, authorization: auth }));
      expect([date, r]).toMatchObject([date, { ...err("AccessDenied", 403), message: "AWS authentication requires a valid Date or x-amz-date header" }]);
    }
  });

  test("missing or malformed x-amz-date (and no Date) → 403 AccessDenied", async () => {
    const req = await signed();
    for (const v of [null, "2024-06-01T12:00:00Z", "20240631T120000Z", "20240601T250000Z", "20240601T120000Zjunk"]) {
      expect(verify(withHeader(req, "x-amz-date", v))).toMatchObject({ ...err("AccessDenied", 403), message: "AWS authentication requires a valid Date or x-amz-date header" });
    }
  });

  test("the Date header stands in for x-amz-date when that is absent", () => {
    // smithy never signs Date, so this request is signed by hand with the shared primitives
    const headers = { host: "h", date: "Sat, 01 Jun 2024 12:00:00 GMT", "x-amz-content-sha256": EMPTY_SHA256 };
    const c = canonicalHeaders(headers);
    const creq = canonicalRequest("GET", "/b/k", "", c.canonical, c.signed, EMPTY_SHA256);
    const sts = stringToSign("20240601T120000Z", credentialScope("20240601", "us-east-1", "s3"), creq);
    const sig = signature(deriveSigningKey(CREDS.secretAccessKey, "20240601", "us-east-1", "s3"), sts);
    const authorization = `AWS4-HMAC-SHA256 Credential=${CREDS.accessKeyId}/20240601/us-east-1/s3/aws4_request, SignedHeaders=${c.signed}, Signature=${sig}`;
    const req = input("GET", "/b/k", { ...headers, authorization });
    expect(verify(req)).toMatchObject({ kind: "ok", amzDate: "20240601T120000Z" });
    expect(verify(withHeader(req, "date", "Sat, 01 Jun 2024 12:00:01 GMT"))).toMatchObject(err("SignatureDoesNotMatch", 403));
    expect(verify(withHeader(req, "date", "Sat, 01 Jun 2024 12:00:00 XYZ"))).toMatchObject(err("AccessDenied", 403));
    expect(verify(withHeader(req, "date", "Sun, 31 Jun 2024 12:00:00 GMT"))).toMatchObject(err("AccessDenied", 403));
  });
});

describe("request time signed", () => {
  /** Signed by hand (smithy never signs Date) over `signedNames` of `headers`. */
  const byHand = (headers: Record<string, string>, signedNames: string[]): VerifyInput => {
    const c = canonicalHeaders(Object.fromEntries(signedNames.map((n) => [n, headers[n]!])));
    const creq = canonicalRequest("GET", "/b/k", "", c.canonical, c.signed, EMPTY_SHA256);
    const sts = stringToSign("20240601T120000Z", credentialScope("20240601", "us-east-1", "s3"), creq);
    const sig = signature(deriveSigningKey(CREDS.secretAccessKey, "20240601", "us-east-1", "s3"), sts);
    const authorization = `AWS4-HMAC-SHA256 Credential=${CREDS.accessKeyId}/20240601/us-east-1/s3/aws4_request, SignedHeaders=${c.signed}, Signature=${sig}`;
    return input("GET", "/b/k", { ...headers, authorization });
  };

  test("a Date header that times the request but is not signed → 403 AccessDenied (its time would not be authenticated)", () => {
    const req = byHand({ host: "h", date: "Sat, 01 Jun 2024 12:00:00 GMT", "x-amz-content-sha256": EMPTY_SHA256 }, ["host", "x-amz-content-sha256"]);
    const r = verify(req);
    expect(r).toMatchObject({ ...err("AccessDenied", 403), message: "There were headers present in the request which were not signed", details: { HeadersNotSigned: "date" } });
    // (replayed a day later with a fresh Date: refused the same way, never accepted)
    expect(verify(withHeader(req, "date", "Sun, 02 Jun 2024 12:00:00 GMT"), { now: T + 86_400_000 })).toMatchObject(err("AccessDenied", 403));
  });

  test("a signed Date in ISO 8601 basic format (as S3 documents a Date used for signing) times the request", () => {
    const req = byHand({ host: "h", date: "20240601T120000Z", "x-amz-content-sha256": EMPTY_SHA256 }, ["date", "host", "x-amz-content-sha256"]);
    expect(verify(req)).toMatchObject({ kind: "ok", amzDate: "20240601T120000Z" });
    expect(verify(req, { now: T - 901_000 })).toMatchObject({ ...err("RequestTimeTooSkewed", 403), details: { RequestTime: "20240601T120000Z" } });
    expect(verify(withHeader(req, "date", "20240601T120001Z"))).toMatchObject(err("SignatureDoesNotMatch", 403));
    expect(verify(withHeader(req, "date", "20240631T120000Z"))).toMatchObject({ ...err("AccessDenied", 403), message: "AWS authentication requires a valid Date or x-amz-date header" });
  });

  test("RequestTimeTooSkewed echoes the Date header that timed the request as sent, not rebuilt as an x-amz-date", () => {
    const req = byHand({ host: "h", date: "Sat, 01 Jun 2024 12:00:00 GMT", "x-amz-content-sha256": EMPTY_SHA256 }, ["date", "host", "x-amz-content-sha256"]);
    expect(verify(req).kind).toBe("ok");
    const r = verify(req, { now: T + 901_000 });
    expect(r).toMatchObject({ ...err("RequestTimeTooSkewed", 403), details: { RequestTime: "Sat, 01 Jun 2024 12:00:00 GMT" } });
  });

  test("an unsigned Date beside a signed x-amz-date is only a header (x-amz-date times the request)", async () => {
    const req = withHeader(await signed(), "date", "Sat, 01 Jun 2024 12:00:00 GMT");
    expect(verify(req).kind).toBe("ok");
  });
});

describe("x-amz-content-sha256", () => {
  const sha = async (value: string | null) => {
    const req = await signed(value === null ? {} : { headers: { "x-amz-content-sha256": value } });
    return value === null ? withHeader(req, "x-amz-content-sha256", null) : req;
  };

  test("missing on header auth → 400 InvalidRequest", async () => {
    expect(verify(await sha(null))).toMatchObject({ ...err("InvalidRequest", 400), message: "Missing required header for this request: x-amz-content-sha256" });
  });

  test("not a valid form → 400 InvalidArgument", async () => {
    for (const v of ["abc", EMPTY_SHA256.toUpperCase(), EMPTY_SHA256 + "0", "unsigned-payload", "STREAMING-PAYLOAD"]) {
      expect(verify(await sha(v))).toMatchObject({ ...err("InvalidArgument", 400), details: { ArgumentName: "x-amz-content-sha256", ArgumentValue: v } });
    }
  });

  test("each accepted form is reported with its mode", async () => {
    const modes: Array<[string, string]> = [
      [EMPTY_SHA256, "sha256"],
      ["UNSIGNED-PAYLOAD", "unsigned"],
      ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "streaming"],
      ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "streaming-trailer"],
      ["STREAMING-UNSIGNED-PAYLOAD-TRAILER", "streaming-unsigned-trailer"],
    ];
    for (const [value, mode] of modes) {
      expect(verify(await sha(value))).toMatchObject({ kind: "ok", mode, payloadHash: value });
    }
  });

  test("SigV4A streaming payloads → 501 NotImplemented", async () => {
    for (const v of ["STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER"]) {
      expect(verify(await sha(v))).toMatchObject(err("NotImplemented", 501));
    }
  });
});

describe("presigned URLs", () => {
  const q = (req: VerifyInput, edit: (p: URLSearchParams) => void): VerifyInput => {
    const p = new URLSearchParams(req.rawQuery);
    edit(p);
    return { ...req, rawQuery: p.toString() };
  };

  test("expired → 403 AccessDenied Request has expired", async () => {
    const req = await presigned(60);
    expect(verify(req, { now: T + 59_999 }).kind).toBe("ok");
    expect(verify(req, { now: T + 60_000 })).toMatchObject({ ...err("AccessDenied", 403), message: "Request has expired" });
    expect(verify(req, { now: T + 61_000 })).toMatchObject({ ...err("AccessDenied", 403), message: "Request has expired" });
  });

  test("a URL whose session ends with it: at that instant the URL's AccessDenied, not the session's 400 ExpiredToken", async () => {
    const req = await presigned(60, { creds: { ...CREDS, sessionToken: "session-token" } });
    const expired = { code: "ExpiredToken" as const, status: 400, message: "The provided token has expired." };
    // the session's bound: valid while now < its end (as verifySessionToken and the session memo)
    const sessionLookup = (accessKeyId: string, _token: string | undefined, now: number) => (now >= T + 60_000 ? expired : accessKeyId === CREDS.accessKeyId ? CREDS : undefined);
    expect(verifySigV4(req, sessionLookup, { ...opts, now: T + 59_999 }).kind).toBe("ok");
    expect(verifySigV4(req, sessionLookup, { ...opts, now: T + 60_000 })).toMatchObject({ ...err("AccessDenied", 403), message: "Request has expired" });
  });

  test("dated in the future beyond the allowed skew → 403 AccessDenied", async () => {
    const req = await presigned(3600);
    expect(verify(req, { now: T - 900_000 }).kind).toBe("ok");
    expect(verify(req, { now: T - 901_000 })).toMatchObject({ ...err("AccessDenied", 403), message: "Request is not yet valid" });
  });

  test("not yet valid: S3's details, X-Amz-Date in epoch milliseconds, Expires and ServerTime", async () => {
    const r = verify(await presigned(3600), { now: T - 86_400_000 });
    expect(r).toMatchObject({
      ...err("AccessDenied", 403),
      message: "Request is not yet valid",
      details: { "X-Amz-Date": String(T), Expires: "2024-06-01T13:00:00Z", ServerTime: "2024-05-31T12:00:00Z" },
    });
  });

  test("X-Amz-Expires outside 1..604800 or not a number → 400 AuthorizationQueryParametersError", async () => {
    const req = await presigned(60);
    for (const v of ["0", "604801", "-1", "1e3", "abc", ""]) {
      expect(verify(q(req, (p) => p.set("X-Amz-Expires", v)))).toMatchObject(err("AuthorizationQueryParametersError", 400));
    }
    // 604800 itself is accepted (the signature then fails because the URL was signed for 60)
    expect(verify(q(req, (p) => p.set("X-Amz-Expires", "604800")))).toMatchObject(err("SignatureDoesNotMatch", 403));
  });

  test("a credential date other than X-Amz-Date's, or malformed X-Amz-SignedHeaders → 400 AuthorizationQueryParametersError", async () => {
    const req = await presigned();
    const cred = new URLSearchParams(req.rawQuery).get("X-Amz-Credential")!;
    expect(verify(q(req, (p) => p.set("X-Amz-Credential", cred.replace("/20240601/", "/20240531/"))))).toMatchObject(err("AuthorizationQueryParametersError", 400));
    for (const v of ["Host", "host;;x-amz-date", "host;host"]) {
      expect([v, verify(q(req, (p) => p.set("X-Amz-SignedHeaders", v)))]).toMatchObject([v, err("AuthorizationQueryParametersError", 400)]);
    }
  });

  test("each required parameter missing → 400 AuthorizationQueryParametersError", async () => {
    const req = await presigned();
    for (const name of ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"]) {
      expect(verify(q(req, (p) => p.delete(name)))).toMatchObject(err("AuthorizationQueryParametersError", 400));
    }
  });

  test("a repeated auth parameter, a wrong algorithm, a malformed date or credential → 400 AuthorizationQueryParametersError", async () => {
    const req = await presigned();
    expect(verify({ ...req, rawQuery: req.rawQuery + "&X-Amz-Signature=" + "0".repeat(64) })).toMatchObject(err("AuthorizationQueryParametersError", 400));
    // (a second session token or payload hash: which one counts would be the reader's choice)
    for (const name of ["X-Amz-Security-Token", "X-Amz-Content-Sha256"]) {
      expect(verify({ ...req, rawQuery: `${req.rawQuery}&${name}=a&${name}=b` })).toMatchObject({ ...err("AuthorizationQueryParametersError", 400), message: `The ${name} query parameter may appear only once.` });
    }
    expect(verify(q(req, (p) => p.set("X-Amz-Algorithm", "AWS4-HMAC-SHA1")))).toMatchObject(err("AuthorizationQueryParametersError", 400));
    expect(verify(q(req, (p) => p.set("X-Amz-Date", "2024-06-01")))).toMatchObject(err("AuthorizationQueryParametersError", 400));
    expect(verify(q(req, (p) => p.set("X-Amz-Credential", "AKID/20240601/us-east-1/s3")))).toMatchObject(err("AuthorizationQueryParametersError", 400));
  });

  test("wrong region → 400 AuthorizationQueryParametersError with the expected Region", async () => {
    const req = await presigned();
    const r = verify(req, { region: "eu-central-1" });
    expect(r).toMatchObject({ ...err("AuthorizationQueryParametersError", 400), details: { Region: "eu-central-1" } });
  });

  test("tampered signature or signed parameter → 403 SignatureDoesNotMatch", async () => {
    const req = await presigned(60);
    expect(verify(q(req, (p) => p.set("X-Amz-Signature", "0".repeat(64))))).toMatchObject(err("SignatureDoesNotMatch", 403));
    expect(verify(q(req, (p) => p.set("X-Amz-Expires", "61")))).toMatchObject(err("SignatureDoesNotMatch", 403));
    expect(verify(q(req, (p) => p.set("X-Amz-Content-Sha256", EMPTY_SHA256)))).toMatchObject(err("SignatureDoesNotMatch", 403));
  });

  test("a streaming payload mode in a URL → 400 InvalidArgument", async () => {
    const req = await presigned();
    expect(verify(q(req, (p) => p.set("X-Amz-Content-Sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")))).toMatchObject(err("InvalidArgument", 400));
  });

  test("SigV2 query auth → 400 InvalidRequest", () => {
    const r = verify(input("GET", "/b/k?AWSAccessKeyId=AKID&Expires=1700000000&Signature=abc%3D", { host: "h" }));
    expect(r).toMatchObject({ ...err("InvalidRequest", 400), message: "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256." });
  });

  test("header auth and query auth together → 400 InvalidArgument", async () => {
    const header = await signed();
    const query = await presigned();
    expect(verify({ ...header, rawQuery: query.rawQuery })).toMatchObject(err("InvalidArgument", 400));
    expect(verify({ ...header, rawQuery: "AWSAccessKeyId=x&Signature=y" })).toMatchObject(err("InvalidArgument", 400));
  });
});

describe("verifyRequest: one answer object, kept for the process", () => {
  const asContext = (i: VerifyInput) => ({ method: i.method, rawPath: i.rawPath, query: i.rawQuery, req: { headers: i.headers } });
  const anyToken = () => CREDS;

  test("each request's answer is its own: a presigned URL's session and expiry, a '+'-as-space reading, do not carry over to the next request", async () => {
    const url = await presigned(60, { creds: { ...CREDS, sessionToken: "session-token" } });
    const spaced = await signed({ path: "/bucket/a%20b" });
    const plain = await signed();
    const first = verifyRequest(asContext(url), anyToken, opts);
    expect(first).toMatchObject({ kind: "ok", presigned: true, sessionToken: "session-token", expiresAt: T + 60_000 });
    const second = verifyRequest(asContext({ ...spaced, rawPath: "/bucket/a+b" }), anyToken, opts);
    expect(second).toMatchObject({ kind: "ok", presigned: false, plusAsSpace: true, sessionToken: undefined, expiresAt: undefined });
    const third = verifyRequest(asContext(plain), anyToken, opts);
    expect(third).toMatchObject({ kind: "ok", presigned: false, plusAsSpace: undefined, sessionToken: undefined, expiresAt: undefined, query: [] });
    // (as verifySigV4 answers the same request)
    const { plusAsSpace: _p, sessionToken: _s, expiresAt: _e, ...fields } = third as Extract<typeof third, { kind: "ok" }>;
    expect(verifySigV4(plain, anyToken, opts)).toMatchObject(fields);
  });
});

test("SignatureDoesNotMatch's byte lists are each character's code (a byte: the text is Latin-1) as two hex digits, space-separated, over every byte value", () => {
  const every = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join("");
  const oneByOne = (t: string) => Array.from(t, (c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join(" ");
  for (const text of ["", "a", "GET\n/b/k\n", every, every.repeat(40)]) expect(hexBytes(text)).toBe(oneByOne(text));
});
