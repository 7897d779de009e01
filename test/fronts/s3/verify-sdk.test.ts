/**
 * Round trips: requests signed by the AWS SDK's own signer (@smithy/signature-v4) and by
 * @aws-sdk/client-s3 (captured, never sent) must verify; so must presigned URLs. Keys cover what
 * real clients trip on: spaces, +, %, unicode, ~, =, reserved characters, odd slashes.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { verifySigV4, type VerifyInput } from "../../../src/fronts/s3/verify.ts";
import { SigningKeyCache } from "../../../src/fronts/s3/signing-keys.ts";
import { lookupOf, sdkPath, smithyPresigned, smithySigned } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIDROUNDTRIP", secretAccessKey: "round/trip+secret=" };
const WHEN = new Date("2024-02-29T23:59:59Z");
const opts = { region: "us-east-1", now: WHEN.getTime(), maxSkewSeconds: 900 };
const lookup = lookupOf(CREDS);

const KEYS = [
  "plain.txt",
  "a b+c.jpg",
  "100% done.txt",
  "x=y&z=w.txt",
  "~tilde~/x_y-z.v",
  "!*'()",
  "日本語/ファイル名.txt",
  "emoji 😀🎉.gif",
  "dir//double//slash",
  "trailing/",
  "./dot/../seg",
  "q?a=b#frag",
  "semi;colon:at@dollar$,comma",
  "pre-encoded%2Fslash%20space",
];

const expectOk = (r: ReturnType<typeof verifySigV4>) => {
  if (r.kind === "error") throw new Error(`${r.code}: ${r.message} ${JSON.stringify(r.details ?? {})}`);
  expect(r.kind).toBe("ok");
  return r as Extract<typeof r, { kind: "ok" }>;
};

describe("@smithy/signature-v4 header auth", () => {
  for (const key of KEYS) {
    test(`GET ${JSON.stringify(key)}`, async () => {
      const req = await smithySigned({ path: sdkPath("bucket", key), creds: CREDS, date: WHEN, headers: { range: "bytes=0-9" } });
      const r = expectOk(verifySigV4(req, lookup, opts));
      expect(r.signedHeaders).toContain("range");
    });
  }

  test("a listing query with repeated names, empty values and reserved characters", async () => {
    const req = await smithySigned({
      path: "/bucket",
      creds: CREDS,
      date: WHEN,
      query: {
        "list-type": "2",
        prefix: "a b+c/日本 ~=&",
        delimiter: "/",
        "continuation-token": "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=",
        "encoding-type": "url",
        "fetch-owner": "",
        tag: ["b", "a"],
      },
    });
    expectOk(verifySigV4(req, lookup, opts));
  });

  test("a raw '(' on the wire where the client signed %28 still verifies (S3 re-encodes the decoded path)", async () => {
    const req = await smithySigned({ path: "/bucket/photo%20%281%29.png", creds: CREDS, date: WHEN });
    expectOk(verifySigV4({ ...req, rawPath: "/bucket/photo%20(1).png" }, lookup, opts));
  });

  test("a header value with bytes above 0x7F verifies against the bytes received (S3 signs bytes, not text)", async () => {
    // smithy signs the text's UTF-8 bytes; a listener hands each received byte over as a Latin-1 character
    const req = await smithySigned({ method: "PUT", path: "/bucket/k", creds: CREDS, date: WHEN, body: "x", headers: { "x-amz-meta-name": "café ü" } });
    const received = new Headers(req.headers);
    received.set("x-amz-meta-name", Buffer.from("café ü", "utf8").toString("latin1"));
    expectOk(verifySigV4({ ...req, headers: received }, lookup, opts));
    // another byte there is another request
    received.set("x-amz-meta-name", Buffer.from("cafe ü", "utf8").toString("latin1"));
    expect(verifySigV4({ ...req, headers: received }, lookup, opts)).toMatchObject({ kind: "error", code: "SignatureDoesNotMatch" });
  });

  test("a canonical request far above the verifier's first buffer (long signed values, a long query) verifies, and a byte changed at its end does not", async () => {
    const big = "v".repeat(20_000);
    const query = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`p${i}`, `value-${i}-${"q".repeat(30)}`]));
    const req = await smithySigned({ path: "/bucket/k", creds: CREDS, date: WHEN, query, headers: { "x-amz-meta-big": big, "x-amz-meta-last": "z" } });
    expectOk(verifySigV4(req, lookup, opts));
    const changed = new Headers(req.headers);
    changed.set("x-amz-meta-last", "y");
    expect(verifySigV4({ ...req, headers: changed }, lookup, opts)).toMatchObject({ kind: "error", code: "SignatureDoesNotMatch" });
    // and a small request after it still verifies (the grown buffer is reused)
    expectOk(verifySigV4(await smithySigned({ path: "/bucket/small", creds: CREDS, date: WHEN }), lookup, opts));
  });

  test("PUT with a body: the signed SHA-256 is returned as the payload hash", async () => {
    const req = await smithySigned({ method: "PUT", path: "/bucket/k", creds: CREDS, date: WHEN, body: "hello" });
    const r = expectOk(verifySigV4(req, lookup, opts));
    expect(r.mode).toBe("sha256");
    expect(r.payloadHash).toBe("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  });

  test("with a session token (the lookup sees the token)", async () => {
    const token = "FwoGZXIvYXdzEJr//////////wEaDH+token/with+chars==";
    const seen: Array<string | undefined> = [];
    const sessionLookup = (akid: string, sessionToken: string | undefined) => {
      seen.push(sessionToken);
      return akid === "ASIASESSION" ? { secretAccessKey: "session-secret" } : undefined;
    };
    const req = await smithySigned({ path: sdkPath("b", "a b"), creds: { accessKeyId: "ASIASESSION", secretAccessKey: "session-secret", sessionToken: token }, date: WHEN });
    const r = expectOk(verifySigV4(req, sessionLookup, opts));
    expect(seen).toEqual([token]);
    expect(r.sessionToken).toBe(token);
    expect(r.signedHeaders).toContain("x-amz-security-token");
  });

  test("the signing key cache derives once per (key, day, region) and re-derives when the secret changes", async () => {
    const cache = new SigningKeyCache(4);
    const req = await smithySigned({ path: "/bucket/k", creds: CREDS, date: WHEN });
    for (let i = 0; i < 3; i++) expectOk(verifySigV4(req, lookup, { ...opts, keyCache: cache }));
    expect(cache.derivations).toBe(1);
    // rotated secret: the cached key must not verify the old signature
    const rotated = lookupOf({ accessKeyId: CREDS.accessKeyId, secretAccessKey: "new-secret" });
    const r = verifySigV4(req, rotated, { ...opts, keyCache: cache });
    expect(r).toMatchObject({ kind: "error", code: "SignatureDoesNotMatch" });
    expect(cache.derivations).toBe(2);
  });

  test("the cache is bounded", async () => {
    const cache = new SigningKeyCache(2);
    for (let i = 0; i < 5; i++) {
      const c = { accessKeyId: `AKID${i}`, secretAccessKey: `s${i}` };
      const req = await smithySigned({ path: "/b/k", creds: c, date: WHEN });
      expectOk(verifySigV4(req, lookupOf(c), { ...opts, keyCache: cache }));
    }
    expect(cache.size).toBe(2);
  });
});

describe("presigned URLs (@smithy/signature-v4 presign, as s3-request-presigner does)", () => {
  for (const key of KEYS) {
    test(`GET ${JSON.stringify(key)}`, async () => {
      const req = await smithyPresigned({ path: sdkPath("bucket", key), creds: CREDS, date: WHEN, expiresIn: 3600 });
      expect(req.rawQuery).toContain("X-Amz-Content-Sha256=UNSIGNED-PAYLOAD");
      const r = expectOk(verifySigV4(req, lookup, { ...opts, now: WHEN.getTime() + 3_599_000 }));
      expect(r.presigned).toBe(true);
      expect(r.mode).toBe("unsigned");
      expect(r.expiresAt).toBe(WHEN.getTime() + 3_600_000);
    });
  }

  test("response-content-* overrides and a session token in the query", async () => {
    const token = "IQoJb3JpZ2luX2VjE+/token==";
    const req = await smithyPresigned({
      path: sdkPath("bucket", "report 2024.pdf"),
      query: { "response-content-disposition": 'attachment; filename="r 1.pdf"', "response-content-type": "application/pdf" },
      creds: { accessKeyId: "ASIAPRESIGN", secretAccessKey: "ps", sessionToken: token },
      date: WHEN,
      expiresIn: 60,
    });
    expect(req.rawQuery).toContain("X-Amz-Security-Token=");
    const r = expectOk(verifySigV4(req, (akid, sessionToken) => (akid === "ASIAPRESIGN" && sessionToken === token ? { secretAccessKey: "ps" } : undefined), opts));
    expect(r.sessionToken).toBe(token);
  });

  test("a tampered override is refused", async () => {
    const req = await smithyPresigned({ path: "/bucket/k", query: { "response-content-type": "text/plain" }, creds: CREDS, date: WHEN, expiresIn: 60 });
    const tampered: VerifyInput = { ...req, rawQuery: req.rawQuery.replace("text%2Fplain", "text%2Fhtml") };
    expect(verifySigV4(tampered, lookup, opts)).toMatchObject({ kind: "error", code: "SignatureDoesNotMatch", status: 403 });
  });
});

describe("@aws-sdk/client-s3 requests (captured before sending)", () => {
  const capture = async (command: unknown, creds: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } = CREDS): Promise<VerifyInput> => {
    let captured: { method: string; path: string; query: Record<string, string | string[]>; headers: Record<string, string> } | undefined;
    const client = new S3Client({
      region: "us-east-1",
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
    const c = captured!;
    const parts: string[] = [];
    for (const [k, v] of Object.entries(c.query ?? {})) {
      for (const one of Array.isArray(v) ? v : [v]) parts.push(one === null ? encodeURIComponent(k) : `${encodeURIComponent(k)}=${encodeURIComponent(one)}`);
    }
    return { method: c.method, rawPath: c.path, rawQuery: parts.join("&"), headers: new Headers(c.headers) };
  };
  const nowOf = (req: VerifyInput) => {
    const d = req.headers.get("x-amz-date")!;
    return Date.parse(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}T${d.slice(9, 11)}:${d.slice(11, 13)}:${d.slice(13, 15)}Z`);
  };

  for (const key of ["a b+c/日本語 (1)!*'~%.jpg", "x=y.txt", "~/tilde"]) {
    test(`GetObject with Range: ${JSON.stringify(key)}`, async () => {
      const req = await capture(new GetObjectCommand({ Bucket: "bkt", Key: key, Range: "bytes=0-9" }));
      expectOk(verifySigV4(req, lookup, { ...opts, now: nowOf(req) }));
    });
  }

  test("ListObjectsV2 with prefix, delimiter, start-after and a continuation token", async () => {
    const req = await capture(new ListObjectsV2Command({
      Bucket: "bkt", Prefix: "a b/日本+", Delimiter: "/", StartAfter: "a b/x", ContinuationToken: "tok/+=", MaxKeys: 2, EncodingType: "url", FetchOwner: true,
    }));
    expectOk(verifySigV4(req, lookup, { ...opts, now: nowOf(req) }));
  });

  test("PutObject (whatever payload mode the SDK picks today is accepted and reported)", async () => {
    const req = await capture(new PutObjectCommand({ Bucket: "bkt", Key: "up load+.txt", Body: "hello world", ContentType: "text/plain" }));
    const r = expectOk(verifySigV4(req, lookup, { ...opts, now: nowOf(req) }));
    expect(r.payloadHash).toBe(req.headers.get("x-amz-content-sha256")!);
    expect(["sha256", "unsigned", "streaming", "streaming-trailer", "streaming-unsigned-trailer"]).toContain(r.mode);
  });

  test("GetObject with session credentials", async () => {
    const token = "SESSION/TOKEN+==";
    const req = await capture(new GetObjectCommand({ Bucket: "bkt", Key: "k" }), { accessKeyId: "ASIAX", secretAccessKey: "sx", sessionToken: token });
    const r = expectOk(verifySigV4(req, (_akid, sessionToken) => (sessionToken === token ? { secretAccessKey: "sx" } : undefined), { ...opts, now: nowOf(req) }));
    expect(r.accessKeyId).toBe("ASIAX");
  });
});
