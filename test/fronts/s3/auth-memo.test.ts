/**
 * The Credential + SignedHeaders memo of header auth (auth-params.ts, kept in the SigningKeyCache):
 * a request that hits it is judged exactly as one that is parsed, only valid prefixes are kept,
 * and the region is part of the key.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { parseHeaderAuth } from "../../../src/fronts/s3/auth-params.ts";
import { SigningKeyCache } from "../../../src/fronts/s3/signing-keys.ts";
import { verifySigV4, type VerifyInput } from "../../../src/fronts/s3/verify.ts";
import { lookupOf, smithySigned } from "./helpers.ts";
import { cellsPerCall } from "../../helpers/alloc.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIDMEMO", secretAccessKey: "memo-secret-0123456789" };
const WHEN = new Date("2024-06-01T12:00:00Z");
const opts = (keyCache: SigningKeyCache, o: { region?: string; now?: number } = {}) => ({ region: "us-east-1", now: WHEN.getTime(), maxSkewSeconds: 900, keyCache, ...o });
const lookup = lookupOf(CREDS);
const signed = (path = "/bucket/key", date = WHEN, region?: string) => smithySigned({ path, creds: CREDS, date, region });
const withAuth = (req: VerifyInput, auth: string): VerifyInput => {
  const h = new Headers(req.headers);
  h.set("authorization", auth);
  return { ...req, headers: h };
};

describe("header-auth memo", () => {
  test("the second request of a day hits the memo and verifies like the first; the same answers without a cache", async () => {
    const cache = new SigningKeyCache();
    const a = await signed("/bucket/a");
    const b = await signed("/bucket/b", new Date(WHEN.getTime() + 60_000));
    expect(verifySigV4(a, lookup, opts(cache)).kind).toBe("ok");
    expect(cache.authMemo.size).toBe(1);
    const hit = verifySigV4(b, lookup, opts(cache));
    const fresh = verifySigV4(b, lookup, { ...opts(cache), keyCache: undefined });
    expect(hit).toEqual(fresh);
    expect(hit).toMatchObject({ kind: "ok", signedHeaders: ["host", "x-amz-content-sha256", "x-amz-date"], amzDate: "20240601T120100Z" });
    expect(cache.authMemo.size).toBe(1);
  });

  test("a hit still checks the signature, the time and the date against the scope", async () => {
    const cache = new SigningKeyCache();
    const a = await signed();
    expect(verifySigV4(a, lookup, opts(cache)).kind).toBe("ok");
    const auth = a.headers.get("authorization")!;
    const forged = withAuth(a, auth.replace(/Signature=\w+/, `Signature=${"0".repeat(64)}`));
    expect(verifySigV4(forged, lookup, opts(cache))).toMatchObject({ kind: "error", code: "SignatureDoesNotMatch" });
    // (the signature a hit leaves in the header, compared there, is the one the error shows)
    expect(verifySigV4(forged, lookup, opts(cache))).toEqual(verifySigV4(forged, lookup, { ...opts(cache), keyCache: undefined }));
    expect(verifySigV4(forged, lookup, opts(cache))).toMatchObject({ details: { SignatureProvided: "0".repeat(64) } });
    for (const sig of ["a b", "a,b", "a=b"]) {
      const odd = withAuth(a, auth.replace(/Signature=\w+/, `Signature=${sig}`));
      expect(verifySigV4(odd, lookup, opts(cache))).toEqual(verifySigV4(odd, lookup, { ...opts(cache), keyCache: undefined }));
    }
    const h = new Headers(a.headers);
    h.set("x-amz-date", "20240602T120000Z"); // another day than the Credential's
    expect(verifySigV4({ ...a, headers: h }, lookup, opts(cache, { now: Date.parse("2024-06-02T12:00:00Z") }))).toMatchObject({ kind: "error", code: "AuthorizationHeaderMalformed" });
    h.delete("x-amz-date");
    expect(verifySigV4({ ...a, headers: h }, lookup, opts(cache))).toMatchObject({ kind: "error", code: "AccessDenied" });
  });

  test("a hit whose signature matches only the other reading of the target (a raw \"+\" as a space) verifies as a parse does", async () => {
    const cache = new SigningKeyCache();
    expect(verifySigV4(await signed(), lookup, opts(cache)).kind).toBe("ok");
    const spaced = await signed("/bucket/a%20b");
    const plus = { ...spaced, rawPath: "/bucket/a+b" };
    const hit = verifySigV4(plus, lookup, opts(cache));
    expect(hit).toMatchObject({ kind: "ok", plusAsSpace: true });
    expect(hit).toEqual(verifySigV4(plus, lookup, { ...opts(cache), keyCache: undefined }));
    expect(cache.authMemo.size).toBe(1);
  });

  test("a request signing more headers than a remembered one (whose prefix it extends) is judged on its own list", async () => {
    const cache = new SigningKeyCache();
    const few = await signed();
    const more = await smithySigned({ path: "/bucket/key", creds: CREDS, date: WHEN, headers: { "x-amz-meta-a": "1" } });
    expect(more.headers.get("authorization")!.split(", Signature=")[0]!.startsWith(few.headers.get("authorization")!.split(", Signature=")[0]!)).toBe(true);
    expect(verifySigV4(few, lookup, opts(cache)).kind).toBe("ok");
    expect(verifySigV4(more, lookup, opts(cache))).toMatchObject({ kind: "ok", signedHeaders: ["host", "x-amz-content-sha256", "x-amz-date", "x-amz-meta-a"] });
  });

  test("only prefixes that parsed are remembered; the region is part of the key", async () => {
    const cache = new SigningKeyCache();
    const eu = await signed("/bucket/key", WHEN, "eu-west-1");
    expect(verifySigV4(eu, lookup, opts(cache))).toMatchObject({ kind: "error", code: "AuthorizationHeaderMalformed" });
    expect(cache.authMemo.size).toBe(0);
    expect(verifySigV4(eu, lookup, opts(cache, { region: "eu-west-1" })).kind).toBe("ok");
    expect(cache.authMemo.size).toBe(1);
    // the eu-west-1 entry does not make the same header pass for us-east-1
    expect(verifySigV4(eu, lookup, opts(cache))).toMatchObject({ kind: "error", code: "AuthorizationHeaderMalformed" });
  });

  test("parseHeaderAuth with a memo returns the same shape as without, whatever the spacing", async () => {
    const cache = new SigningKeyCache();
    const a = await signed();
    const auth = a.headers.get("authorization")!;
    const first = parseHeaderAuth(auth, a.headers, "us-east-1", cache.authMemo);
    const second = parseHeaderAuth(auth, a.headers, "us-east-1", cache.authMemo);
    expect(second).toEqual(first);
    const tight = auth.replaceAll(", ", ",");
    expect(parseHeaderAuth(tight, a.headers, "us-east-1", cache.authMemo)).toEqual(parseHeaderAuth(tight, a.headers, "us-east-1"));
  });
});

describe("hostile SignedHeaders (unauthenticated: parsed before the key is looked up)", () => {
  const amz = "20240601T120000Z";
  const authWith = (akid: string, names: string[]) =>
    `AWS4-HMAC-SHA256 Credential=${akid}/20240601/us-east-1/s3/aws4_request, SignedHeaders=${names.join(";")}, Signature=${"0".repeat(64)}`;
  const headers = new Headers({ "x-amz-date": amz });

  test("~10,000 distinct names parse in linear time", () => {
    const names: string[] = [];
    for (let i = 0, n = 0; n < 60_000; i++) n += (names[names.push(`h${i.toString(16)}`) - 1]!.length + 1);
    // (counted, not timed: an indexOf over the names for each name was ~10,000 scans of ~10,000, ~460 ms)
    const indexOf = Array.prototype.indexOf;
    let scans = 0;
    Array.prototype.indexOf = function (this: unknown[], ...args: [unknown, number?]) {
      scans++;
      return indexOf.apply(this, args);
    };
    let r: ReturnType<typeof parseHeaderAuth>;
    try {
      r = parseHeaderAuth(authWith("AKIDX", names), headers, "us-east-1");
    } finally {
      Array.prototype.indexOf = indexOf;
    }
    expect("signedHeaders" in r && r.signedHeaders.length).toBe(names.length);
    expect(scans).toBeLessThan(100);
    // a repeated name is still refused
    expect(parseHeaderAuth(authWith("AKIDX", [...names, "h1"]), headers, "us-east-1")).toMatchObject({ code: "AuthorizationHeaderMalformed" });
  });

  test("a long Credential + SignedHeaders prefix is not remembered (the memo cannot be filled with 60 KiB entries)", () => {
    const cache = new SigningKeyCache();
    for (let k = 0; k < 20; k++) {
      const names = Array.from({ length: 1000 }, (_, i) => `x${k}-${i}-${"a".repeat(50)}`);
      expect("signedHeaders" in parseHeaderAuth(authWith(`AKID${k}`, names), headers, "us-east-1", cache.authMemo)).toBe(true);
    }
    expect(cache.authMemo.size).toBe(0);
    // an SDK's ordinary prefix still is
    expect("signedHeaders" in parseHeaderAuth(authWith("AKIDSDK", ["host", "x-amz-content-sha256", "x-amz-date"]), headers, "us-east-1", cache.authMemo)).toBe(true);
    expect(cache.authMemo.size).toBe(1);
  });
});

describe("verification: allocation per request", () => {
  test("a good signature costs no closure (nor its scope): the other readings are tried in their own function", async () => {
    const cache = new SigningKeyCache();
    const a = await signed();
    const o = opts(cache);
    // (a lookup that allocates nothing itself, as the front's: lookupOf's find takes a closure per call)
    const one = (akid: string) => (akid === CREDS.accessKeyId ? CREDS : undefined);
    expect(verifySigV4(a, one, o).kind).toBe("ok");
    const cells = await cellsPerCall(() => verifySigV4(a, one, o));
    // (one Function and one JSLexicalEnvironment per request before: the `fail` and `matches` closures)
    expect(cells.Function ?? 0).toBeLessThan(0.5);
    expect(cells.JSLexicalEnvironment ?? 0).toBeLessThan(0.5);
  });
});
