import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { cellsPerCall } from "../helpers/alloc.ts";
import { S3Client, GetObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import { SignatureV4 } from "@smithy/signature-v4";
import { Sha256 } from "@smithy/core/checksum";
import { extendedEncodeURIComponent } from "@smithy/core/protocols";
import type { HttpRequest } from "@smithy/types";
import {
  EMPTY_SHA256,
  S3Signer,
  amzDate,
  canonicalHeaders,
  canonicalQuery,
  canonicalRequest,
  credentialScope,
  deriveSigningKey,
  encodeS3Path,
  sha256Hex,
  signature,
  stringToSign,
  uriEncode,
  wireValue,
  type Credentials,
} from "../../src/s3/sigv4.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const at = (iso: string) => () => new Date(iso);

// ------------------------------------------------------------------ encoding

describe("uriEncode", () => {
  test("unreserved characters pass through untouched", () => {
    const s = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    expect(uriEncode(s, true)).toBe(s);
    expect(uriEncode("/a/b/", false)).toBe("/a/b/");
  });

  test("reserved ASCII is percent-encoded once with uppercase hex", () => {
    expect(uriEncode("a b+c/d~e", false)).toBe("a%20b%2Bc/d~e");
    expect(uriEncode("a b+c/d~e", true)).toBe("a%20b%2Bc%2Fd~e");
    expect(uriEncode("!*'()", false)).toBe("%21%2A%27%28%29");
    expect(uriEncode("100%.txt", false)).toBe("100%25.txt");
    expect(uriEncode("%2F", false)).toBe("%252F"); // no "already encoded" detection: encoded exactly once
    expect(uriEncode("=&?#:@,;$\\", true)).toBe("%3D%26%3F%23%3A%40%2C%3B%24%5C");
    expect(uriEncode("\t\n\x00\x7f", true)).toBe("%09%0A%00%7F");
  });

  test("UTF-8 bytes of 2, 3 and 4 byte sequences", () => {
    expect(uriEncode("é", true)).toBe("%C3%A9");
    expect(uriEncode("ሴ", true)).toBe("%E1%88%B4");
    expect(uriEncode("日本語", true)).toBe("%E6%97%A5%E6%9C%AC%E8%AA%9E");
    expect(uriEncode("😀", true)).toBe("%F0%9F%98%80");
    expect(uriEncode("a😀b/🎉", false)).toBe("a%F0%9F%98%80b/%F0%9F%8E%89");
  });

  test("lone surrogates become U+FFFD, as TextEncoder does", () => {
    expect(uriEncode("\uD800", true)).toBe("%EF%BF%BD");
    expect(uriEncode("a\uDC00b\uD83D", true)).toBe("a%EF%BF%BDb%EF%BF%BD");
  });

  test("matches a byte-wise reference on random strings", () => {
    const unreserved = /[A-Za-z0-9\-._~]/;
    const reference = (s: string, encodeSlash: boolean) => {
      let out = "";
      for (const b of new TextEncoder().encode(s)) {
        const ch = String.fromCharCode(b);
        out += b < 0x80 && (unreserved.test(ch) || (ch === "/" && !encodeSlash))
          ? ch
          : "%" + b.toString(16).toUpperCase().padStart(2, "0");
      }
      return out;
    };
    const pool = [0x20, 0x2f, 0x41, 0x7e, 0x25, 0x2b, 0xe9, 0x1234, 0xd83d, 0xde00, 0xdfff, 0xfffd, 0x7ff, 0x800];
    let seed = 12345; // mulberry32: deterministic, good low bits
    const rnd = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    for (let i = 0; i < 2000; i++) {
      let s = "";
      const len = rnd(12);
      for (let j = 0; j < len; j++) s += String.fromCharCode(rnd(2) ? rnd(128) : pool[rnd(pool.length)]);
      expect(uriEncode(s, true)).toBe(reference(s, true));
      expect(uriEncode(s, false)).toBe(reference(s, false));
    }
  });

  test("encodeS3Path: single encoding, no dot-segment or slash normalization", () => {
    expect(encodeS3Path("/my-bucket/photos/a b+c.jpg")).toBe("/my-bucket/photos/a%20b%2Bc.jpg");
    expect(encodeS3Path("/b/./x/../y//z/")).toBe("/b/./x/../y//z/");
    expect(encodeS3Path("")).toBe("/");
  });
});

describe("canonicalQuery", () => {
  test("empty and single", () => {
    expect(canonicalQuery([])).toBe("");
    expect(canonicalQuery([["lifecycle", ""]])).toBe("lifecycle=");
    expect(canonicalQuery([["prefix", "a b/c+d"]])).toBe("prefix=a%20b%2Fc%2Bd");
  });

  test("sorted by encoded name, then by value", () => {
    expect(canonicalQuery([["b", "2"], ["a", "2"], ["a", "1"]])).toBe("a=1&a=2&b=2");
    expect(canonicalQuery([["prefix", "J"], ["max-keys", "2"]])).toBe("max-keys=2&prefix=J");
    expect(canonicalQuery([["a+", "1"], ["a b", "1"], ["A", "1"]])).toBe("A=1&a%20b=1&a%2B=1");
    // by name first: sorting the joined "name=value" strings would put "a-=1" first
    expect(canonicalQuery([["a-", "1"], ["a", "2"]])).toBe("a=2&a-=1");
    expect(canonicalQuery([["Param2", "value2"], ["Param1", "value1"]])).toBe("Param1=value1&Param2=value2");
  });
});

describe("canonicalHeaders", () => {
  test("lowercases, sorts, trims and collapses whitespace", () => {
    const c = canonicalHeaders({ "X-Amz-Date": " 2 ", Host: "x", "My-Header": "  a   b \t c  " });
    expect(c.canonical).toBe("host:x\nmy-header:a b c\nx-amz-date:2\n");
    expect(c.signed).toBe("host;my-header;x-amz-date");
  });
  test("only ASCII whitespace is trimmed or collapsed: a value's bytes as Latin-1 (0xA0 is a UTF-8 continuation byte, not a space) are hashed as sent", () => {
    const wire = (s: string) => Buffer.from(s, "utf8").toString("latin1"); // how a header value reaches the handler
    for (const v of ["x你y", "voilà", "àb", "Рим"]) {
      expect(canonicalHeaders({ "x-amz-meta-t": wire(v) }).canonical).toBe(`x-amz-meta-t:${wire(v)}\n`);
    }
    expect(canonicalHeaders({ "x-amz-meta-t": wire(" x 你  y ") }).canonical).toBe(`x-amz-meta-t:${wire("x 你 y")}\n`);
  });
});

// ------------------------------------------------------------------ AWS S3 documentation vectors

const DOC_CREDS: Credentials = {
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};
const DOC_HOST = "examplebucket.s3.amazonaws.com";
const docSigner = () => new S3Signer(DOC_CREDS, "us-east-1", "s3", at("2013-05-24T00:00:00Z"));

describe("AWS S3 docs examples (single-chunk, Authorization header)", () => {
  test("deriving the signing key (20120215/us-east-1/iam)", () => {
    expect(hex(deriveSigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")))
      .toBe("f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
  });

  test("GET Object: each step", () => {
    const date = "20130524T000000Z";
    const h = canonicalHeaders({ host: DOC_HOST, range: "bytes=0-9", "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": date });
    const creq = canonicalRequest("GET", encodeS3Path("/test.txt"), "", h.canonical, h.signed, EMPTY_SHA256);
    expect(creq).toBe(
      "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n" +
        `x-amz-content-sha256:${EMPTY_SHA256}\nx-amz-date:20130524T000000Z\n\n` +
        `host;range;x-amz-content-sha256;x-amz-date\n${EMPTY_SHA256}`,
    );
    expect(sha256Hex(creq)).toBe("7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    const scope = credentialScope("20130524", "us-east-1", "s3");
    const sts = stringToSign(date, scope, creq);
    expect(sts).toBe(
      "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n" +
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
    );
    const key = deriveSigningKey(DOC_CREDS.secretAccessKey, "20130524", "us-east-1", "s3");
    expect(signature(key, sts)).toBe("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  });

  test("GET Object via S3Signer", () => {
    const out = docSigner().sign({ method: "GET", host: DOC_HOST, path: "/test.txt", headers: { range: "bytes=0-9" } });
    expect(out).toEqual({
      authorization:
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, " +
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
      "x-amz-date": "20130524T000000Z",
      "x-amz-content-sha256": EMPTY_SHA256,
    });
  });

  test("GET Bucket Lifecycle (GET /?lifecycle)", () => {
    const out = docSigner().sign({ method: "GET", host: DOC_HOST, path: "/", query: [["lifecycle", ""]] });
    expect(out.authorization).toBe(
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, " +
        "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    );
  });

  test("List Objects (GET /?max-keys=2&prefix=J)", () => {
    const out = docSigner().signRequest({ method: "GET", host: DOC_HOST, path: "/", query: [["prefix", "J"], ["max-keys", "2"]] });
    expect(out.path).toBe("/");
    expect(out.query).toBe("max-keys=2&prefix=J");
    expect(out.headers.authorization).toEndWith(
      "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    );
  });
});

// ------------------------------------------------------------------ aws-sig-v4-test-suite GET cases

describe("aws-sig-v4-test-suite GET cases (service 'service', no x-amz-content-sha256)", () => {
  const secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  const date = "20150830T123600Z";
  const scope = credentialScope("20150830", "us-east-1", "service");
  const key = deriveSigningKey(secret, "20150830", "us-east-1", "service");
  const sig = (encodedPath: string, query: Array<[string, string]>) => {
    const h = canonicalHeaders({ host: "example.amazonaws.com", "x-amz-date": date });
    expect(h.signed).toBe("host;x-amz-date");
    const creq = canonicalRequest("GET", encodedPath, canonicalQuery(query), h.canonical, h.signed, EMPTY_SHA256);
    return signature(key, stringToSign(date, scope, creq));
  };

  test("get-vanilla", () => {
    expect(sig("/", [])).toBe("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  });
  test("get-vanilla-query-order-key-case", () => {
    expect(sig("/", [["Param2", "value2"], ["Param1", "value1"]]))
      .toBe("b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  });
  test("get-vanilla-empty-query-key", () => {
    expect(sig("/", [["Param1", "value1"]])).toBe("a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb");
  });
  test("get-unreserved", () => {
    const path = "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    expect(sig(uriEncode(path, false), [])).toBe("07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f");
  });
  test("get-utf8 (raw path encoded once: /%E1%88%B4)", () => {
    expect(sig(uriEncode("/ሴ", false), [])).toBe("8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
  });
});

// ------------------------------------------------------------------ cross-check with @smithy/signature-v4

const KEYS = [
  "plain.txt",
  "a b+c.jpg",
  "100% done.txt",
  "photo (1).png",
  "~tilde~/x_y-z.v",
  "!*'()",
  "日本語/ファイル名.txt",
  "emoji 😀🎉.gif",
  "dir//double//slash",
  "trailing/",
  "./dot/../seg",
  "q?a=b&c=d#frag",
  "equals=,semi;colon:at@dollar$",
  "pre-encoded%2Fslash%20space",
];

async function smithyHeaders(
  creds: Credentials,
  when: Date,
  method: string,
  host: string,
  wirePath: string,
  query: Record<string, string>,
  extra: Record<string, string> = {},
) {
  const signer = new SignatureV4({
    credentials: creds, region: "eu-west-1", service: "s3", sha256: Sha256, uriEscapePath: false, applyChecksum: true,
  });
  const req: HttpRequest = { method, protocol: "https:", hostname: host, path: wirePath, query, headers: { host, ...extra } };
  return (await signer.sign(req, { signingDate: when })).headers;
}

/** How the AWS SDK puts a bucket/key on the wire (path-style): each segment extendedEncodeURIComponent'd. */
const sdkPath = (bucket: string, key: string) => `/${bucket}/` + key.split("/").map(extendedEncodeURIComponent).join("/");

describe("cross-check against @smithy/signature-v4 (S3 settings: uriEscapePath false)", () => {
  const when = new Date("2024-02-29T23:59:59Z");
  const creds: Credentials = { accessKeyId: "AKIDCROSS", secretAccessKey: "cross/check+secret=" };
  const withToken: Credentials = { ...creds, sessionToken: "FwoGZXIvYXdzEJr//////////wEaDH+token/with+chars==" };
  const host = "s3.eu-west-1.amazonaws.com";

  for (const key of KEYS) {
    for (const c of [creds, withToken]) {
      test(`GET ${JSON.stringify(key)}${c.sessionToken ? " + session token" : ""}`, async () => {
        const ours = new S3Signer(c, "eu-west-1", "s3", () => when).signRequest({ method: "GET", host, path: `/my-bucket/${key}` });
        const wire = sdkPath("my-bucket", key);
        expect(ours.path).toBe(wire);
        const ref = await smithyHeaders(c, when, "GET", host, wire, {});
        expect(ours.headers.authorization).toBe(ref.authorization);
        expect(ours.headers["x-amz-date"]).toBe(ref["x-amz-date"]);
        expect(ours.headers["x-amz-content-sha256"]).toBe(ref["x-amz-content-sha256"]);
        expect(ours.headers["x-amz-security-token"]).toBe(ref["x-amz-security-token"]);
        if (c.sessionToken) expect(ours.headers.authorization).toContain(";x-amz-security-token, Signature=");
      });
    }
  }

  // A PUT with only the headers the signer sets takes the signer's short path (no header map, no sort).
  for (const payloadHash of ["UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"]) {
    for (const c of [creds, withToken]) {
      test(`PUT with x-amz-content-sha256 ${payloadHash.slice(0, 20)}${c.sessionToken ? " + session token" : ""} and no other header`, async () => {
        const ours = new S3Signer(c, "eu-west-1", "s3", () => when).signRequest({ method: "PUT", host, path: "/my-bucket/a b+c.jpg", query: [["partNumber", "3"], ["uploadId", "x/y+z"]], payloadHash });
        const ref = await smithyHeaders(c, when, "PUT", host, sdkPath("my-bucket", "a b+c.jpg"), { partNumber: "3", uploadId: "x/y+z" }, { "x-amz-content-sha256": payloadHash });
        expect(ours.headers.authorization).toBe(ref.authorization);
        expect(ours.headers["x-amz-content-sha256"]).toBe(payloadHash);
      });
    }
  }

  test("a header value's bytes above 0x7F are signed as those bytes (as received: one Latin-1 character each); text above 0xFF as UTF-8", async () => {
    // smithy hashes text as UTF-8: the reference gets the text whose UTF-8 is the wire bytes
    const received = Buffer.from("café", "utf8").toString("latin1");
    const ours = new S3Signer(creds, "eu-west-1", "s3", () => when).signRequest({ method: "PUT", host, path: "/my-bucket/k", payloadHash: "UNSIGNED-PAYLOAD", headers: { "x-amz-meta-name": received, "x-amz-meta-text": "日本" } });
    const ref = await smithyHeaders(creds, when, "PUT", host, "/my-bucket/k", {}, { "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-meta-name": "café", "x-amz-meta-text": "日本" });
    expect(ours.headers.authorization).toBe(ref.authorization);
    expect(wireValue(received)).toBe(received);
    expect(wireValue("日本")).toBe(Buffer.from("日本", "utf8").toString("latin1"));
  });

  test("HEAD with range/if-none-match, query params with reserved chars, token", async () => {
    const query: Array<[string, string]> = [
      ["versionId", "3/L4kqtJl40Nr8X8gdRQBpUMLUo+="],
      ["response-content-disposition", "attachment; filename=\"a b.txt\""],
      ["x-id", "GetObject"],
    ];
    const extra = { range: "bytes=100-199", "if-none-match": "\"abc\"" };
    const key = "日本語 (2)/emoji 😀+.bin";
    const ours = new S3Signer(withToken, "eu-west-1", "s3", () => when)
      .sign({ method: "HEAD", host: "localhost:9000", path: `/b/${key}`, query, headers: extra });
    const ref = await smithyHeaders(withToken, when, "HEAD", "localhost:9000", sdkPath("b", key), Object.fromEntries(query), extra);
    expect(ours.authorization).toBe(ref.authorization);
    expect(ours.authorization).toContain(
      "SignedHeaders=host;if-none-match;range;x-amz-content-sha256;x-amz-date;x-amz-security-token, ",
    );
  });
});

// ------------------------------------------------------------------ cross-check with the real S3 client pipeline

describe("cross-check against @aws-sdk/client-s3 (captured, never sent)", () => {
  const capture = async (command: GetObjectCommand | HeadObjectCommand, creds: Credentials) => {
    let captured: { method: string; path: string; query: Record<string, string>; headers: Record<string, string> } | undefined;
    const client = new S3Client({
      region: "us-west-2",
      endpoint: "http://127.0.0.1:9000",
      forcePathStyle: true,
      credentials: creds,
      maxAttempts: 1,
      requestHandler: {
        handle: async (req: typeof captured) => {
          captured = req;
          throw new Error("captured");
        },
      } as never,
    });
    await expect(client.send(command as never)).rejects.toThrow("captured");
    return captured!;
  };

  for (const sessionToken of [undefined, "SESSION/TOKEN+=="]) {
    test(`GetObject + Range${sessionToken ? " + session token" : ""}`, async () => {
      const creds: Credentials = { accessKeyId: "AKIDSDK", secretAccessKey: "sdk/secret", sessionToken };
      const key = "a b+c/日本語 (1)!*'~%.jpg";
      const req = await capture(new GetObjectCommand({ Bucket: "bkt", Key: key, Range: "bytes=0-9" }), creds);
      const auth = req.headers.authorization;
      const signedNames = /SignedHeaders=([^,]+),/.exec(auth)![1].split(";");
      const extra: Record<string, string> = {};
      for (const n of signedNames) if (n !== "host" && !n.startsWith("x-amz-date") && n !== "x-amz-content-sha256" && n !== "x-amz-security-token") extra[n] = req.headers[n];
      expect(extra.range).toBe("bytes=0-9");
      const d = req.headers["x-amz-date"];
      const when = new Date(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}T${d.slice(9, 11)}:${d.slice(11, 13)}:${d.slice(13, 15)}Z`);
      const ours = new S3Signer(creds, "us-west-2", "s3", () => when).signRequest({
        method: req.method,
        host: req.headers.host,
        path: `/bkt/${key}`,
        query: Object.entries(req.query),
        headers: extra,
      });
      expect(ours.path).toBe(req.path);
      expect(ours.headers.authorization).toBe(auth);
      expect(ours.headers["x-amz-security-token"]).toBe(req.headers["x-amz-security-token"]);
    });
  }
});

// ------------------------------------------------------------------ signer behaviour

describe("S3Signer", () => {
  const creds: Credentials = { accessKeyId: "AKID", secretAccessKey: "secret" };

  test("signing key is derived once per UTC day and recomputed when the day changes", () => {
    let t = new Date("2024-01-01T10:00:00.000Z");
    const s = new S3Signer(creds, "us-east-1", "s3", () => t);
    const req = { method: "GET", host: "h", path: "/b/k" };
    expect(s.keyDerivations).toBe(0);
    s.sign(req);
    expect(s.keyDerivations).toBe(1);
    t = new Date("2024-01-01T10:00:00.999Z");
    expect(s.sign(req)["x-amz-date"]).toBe("20240101T100000Z");
    t = new Date("2024-01-01T23:59:59.999Z");
    expect(s.sign(req)["x-amz-date"]).toBe("20240101T235959Z");
    expect(s.keyDerivations).toBe(1);
    t = new Date("2024-01-02T00:00:00.000Z");
    const next = s.sign(req);
    expect(s.keyDerivations).toBe(2);
    expect(next.authorization).toContain("Credential=AKID/20240102/us-east-1/s3/aws4_request");
    // the cached state after a day change signs exactly like a fresh signer
    expect(next).toEqual(new S3Signer(creds, "us-east-1", "s3", () => t).sign(req));
    t = new Date("2024-01-01T12:00:00Z");
    s.sign(req);
    expect(s.keyDerivations).toBe(3);
  });

  test("cached key equals deriveSigningKey for the day", () => {
    const s = new S3Signer(creds, "ap-south-1", "s3", at("2023-07-04T05:06:07Z"));
    const out = s.sign({ method: "GET", host: "h", path: "/x" });
    const h = canonicalHeaders({ host: "h", "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": "20230704T050607Z" });
    const creq = canonicalRequest("GET", "/x", "", h.canonical, h.signed, EMPTY_SHA256);
    const scope = credentialScope("20230704", "ap-south-1", "s3");
    const sig = signature(deriveSigningKey("secret", "20230704", "ap-south-1", "s3"), stringToSign("20230704T050607Z", scope, creq));
    expect(out.authorization).toBe(`AWS4-HMAC-SHA256 Credential=AKID/${scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${sig}`);
  });

  test("headers the signer owns cannot be overridden via extra headers", () => {
    const s = new S3Signer(creds, "us-east-1", "s3", at("2024-01-01T00:00:00Z"));
    const base = s.sign({ method: "GET", host: "h", path: "/k" });
    const spoofed = s.sign({
      method: "GET", host: "h", path: "/k",
      headers: { Host: "evil", "X-Amz-Date": "19700101T000000Z", authorization: "x", "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
    });
    expect(spoofed).toEqual(base);
  });

  test("extra header names are lowercased and values canonicalized", () => {
    const s = new S3Signer(creds, "us-east-1", "s3", at("2024-01-01T00:00:00Z"));
    const a = s.sign({ method: "GET", host: "h", path: "/k", headers: { Range: "  bytes=0-9 " } });
    const b = s.sign({ method: "GET", host: "h", path: "/k", headers: { range: "bytes=0-9" } });
    expect(a).toEqual(b);
  });

  test("no session token → no x-amz-security-token header", () => {
    const out = new S3Signer(creds, "us-east-1", "s3", at("2024-01-01T00:00:00Z")).sign({ method: "GET", host: "h", path: "/" });
    expect(Object.keys(out).sort()).toEqual(["authorization", "x-amz-content-sha256", "x-amz-date"]);
  });

  test("default clock is the real time", () => {
    const before = amzDate(new Date());
    const out = new S3Signer(creds, "us-east-1").sign({ method: "GET", host: "h", path: "/" });
    const after = amzDate(new Date());
    const d = out["x-amz-date"];
    expect(d >= before && d <= after).toBe(true);
    expect(out.authorization).toContain(`/${d.slice(0, 8)}/us-east-1/s3/aws4_request`);
  });

  test("invalid clock throws", () => {
    const s = new S3Signer(creds, "us-east-1", "s3", () => new Date(NaN));
    expect(() => s.sign({ method: "GET", host: "h", path: "/" })).toThrow(RangeError);
  });
});

describe("S3Signer: allocation per signature", () => {
  test("a GET's signature makes one string (its Authorization), not one per line of the canonical request", async () => {
    // (a fixed clock: the real one's second rolling over mid-count makes the next x-amz-date's strings)
    const at = new Date("2026-12-07T05:00:00Z");
    const s = new S3Signer({ accessKeyId: "AKID", secretAccessKey: "secret" }, "us-east-1", "s3", () => at);
    const cells = await cellsPerCall(() => s.sign({ method: "GET", host: "127.0.0.1:9000", path: "/bucket/1k.bin" }));
    // (19 strings before: the canonical request and the string to sign joined piece by piece, two hex digests)
    expect(cells.string).toBeLessThanOrEqual(1);
  });
});
