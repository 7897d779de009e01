/**
 * ListObjects V1 and V2 on the S3 front: the listing parameters pass through (and only they), the
 * upstream's XML comes back with <Name> = the proxy bucket's name (never the upstream bucket's),
 * V1 markers and V2 tokens page to the end, bad parameters are refused before the upstream, and an
 * upstream 400 (a forged token) keeps its code.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { ListObjectsCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { issueSession } from "../../src/fronts/s3/sts.ts";
import { smithyPresigned, smithySigned } from "../fronts/s3/helpers.ts";
import { APP, startS3FrontEnv, STS_KEY, UPSTREAM, type S3FrontEnv } from "./s3-front-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const KEYS = ["a.txt", "b/1.txt", "b/2.txt", "c d.txt", "e+f.txt", "ü.txt"];
const byUtf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
let env: S3FrontEnv;
let session: { accessKeyId: string; secretAccessKey: string; sessionToken: string };
beforeAll(async () => {
  env = await startS3FrontEnv();
  for (const k of KEYS) await env.s3.put("data", k, k);
  const s = issueSession({ sessionKey: STS_KEY, subject: "alice", claims: {}, expiresAt: Date.now() + 600_000, now: Date.now() });
  if (s.kind !== "ok") throw new Error(s.message);
  session = { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey, sessionToken: s.sessionToken };
});
afterAll(() => env.stop());

const sdk = (credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } = APP) =>
  new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, credentials, maxAttempts: 1 });

async function raw(path: string, query: Record<string, string>, creds: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } = APP, headers?: Record<string, string>) {
  const v = await smithySigned({ creds, date: new Date(), path, query, host: `127.0.0.1:${env.port}`, headers });
  const h = new Headers(v.headers);
  h.delete("host");
  const res = await fetch(`${env.endpoint}${v.rawPath}?${v.rawQuery}`, { headers: h });
  const body = await res.text();
  return { status: res.status, body, code: /<Code>([^<]*)</.exec(body)?.[1] };
}

const s3Fault = (path: string, spec: Parameters<S3FrontEnv["s3"]["faults"]["set"]>[1]) => env.s3.faults.set(path, { ...spec, method: "GET" });

describe("ListObjectsV2", () => {
  test("a presigned listing with a session token and a long prefix whose first page fits max_uri_length (8 KiB) is continued: the proxy's token does not count against it (the next page was 414 InvalidURI)", async () => {
    const big = issueSession({ sessionKey: STS_KEY, subject: "bob", claims: { groups: "g".repeat(2540) }, expiresAt: Date.now() + 600_000, now: Date.now() });
    if (big.kind !== "ok") throw new Error(big.message);
    const creds = { accessKeyId: big.accessKeyId, secretAccessKey: big.secretAccessKey, sessionToken: big.sessionToken };
    const prefix = ("é".repeat(120) + "/").repeat(4); // (folders: the fixture stores keys as files)
    const keys = [0, 1, 2].map((i) => prefix + "k".repeat(58) + i);
    for (const k of keys) await env.s3.put("data", k, "x");
    const page = async (token?: string) => {
      const v = await smithyPresigned({ creds, date: new Date(), path: "/open", query: { "list-type": "2", "max-keys": "1", prefix, ...(token === undefined ? {} : { "continuation-token": token }) }, host: `127.0.0.1:${env.port}`, expiresIn: 300 });
      const target = `${v.rawPath}?${v.rawQuery}`;
      const res = await fetch(`${env.endpoint}${target}`);
      const body = await res.text();
      return { length: target.length, status: res.status, code: /<Code>([^<]*)</.exec(body)?.[1], keys: [...body.matchAll(/<Key>([^<]*)</g)].map((m) => m[1]), next: /<NextContinuationToken>([^<]*)</.exec(body)?.[1] };
    };
    try {
      const listed: string[] = [];
      let p = await page();
      expect([p.status, p.length < 8192]).toEqual([200, true]);
      listed.push(...p.keys);
      let longest = 0;
      while (p.next !== undefined) {
        p = await page(p.next);
        longest = Math.max(longest, p.length);
        expect([p.status, p.code]).toEqual([200, undefined]);
        listed.push(...p.keys);
      }
      expect(longest).toBeGreaterThan(8192);
      expect(listed).toEqual(keys);
    } finally {
      for (const k of keys) await env.s3.remove("data", k);
    }
  });

  test("a continuation-token longer than the proxy's (2 KiB) gets no room beyond max_uri_length: a 9 KiB one on a short listing is InvalidURI, never passed upstream (it was read as an upstream's token and sent there)", async () => {
    const before = env.s3.requests.length;
    const fake = "A".repeat(9000);
    const r = await raw("/open", { "list-type": "2", "continuation-token": fake }, session);
    expect([r.status, r.code]).toEqual([400, "InvalidURI"]);
    expect(env.s3.requests.slice(before).filter((q) => !q.admin && q.query["continuation-token"] !== undefined)).toHaveLength(0);
    // (one of the proxy's size still gets the room: refused for what it is, not for the URI's length)
    const room = await raw("/open", { "list-type": "2", prefix: "p".repeat(7000), "continuation-token": "A".repeat(2000) }, session);
    expect(room.code).not.toBe("InvalidURI");
  });

  test("<Name> is the proxy bucket's name: bucket `open` lists upstream bucket `data` and never names it", async () => {
    const c = sdk(session); // a session may list a bucket without auth
    try {
      const r = await c.send(new ListObjectsV2Command({ Bucket: "open" }));
      expect(r.Name).toBe("open");
      expect((r.Contents ?? []).map((o) => o.Key)).toEqual([...KEYS].sort(byUtf8));
      const xml = (await raw("/open/", { prefix: "b/" }, session)).body;
      expect(xml).toContain("<Name>open</Name>");
      expect(xml).not.toContain("<Name>data</Name>");
      expect(xml).toContain("<Key>b/1.txt</Key>");
    } finally {
      c.destroy();
    }
  });

  test("prefix + delimiter → CommonPrefixes; start-after and fetch-owner reach the upstream; nothing else does", async () => {
    env.mark();
    const r = await raw("/data/", { "list-type": "2", delimiter: "/", "start-after": "a.txt", "fetch-owner": "true", "x-unknown": "1", prefix: "" });
    expect(r.status).toBe(200);
    expect(r.body).toContain("<CommonPrefixes><Prefix>b/</Prefix></CommonPrefixes>");
    expect(r.body).not.toContain("<Key>a.txt</Key>");
    // the Owner is the requesting identity's (as ListBuckets says), never the upstream's principal
    expect(r.body).toContain(`<Owner><ID>${new Bun.CryptoHasher("sha256").update("app1").digest("hex")}</ID><DisplayName>app1</DisplayName></Owner>`);
    expect(r.body).not.toContain(UPSTREAM.accessKeyId);
    const calls = env.upstreamCalls();
    expect(calls.length).toBe(1);
    expect(calls[0]!.query).toEqual({ "list-type": "2", delimiter: "/", "start-after": "a.txt", "fetch-owner": "true", prefix: "" });
  });

  test("the SDK paginator with MaxKeys 2 pages to the end", async () => {
    const c = sdk();
    try {
      const keys: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const r = await c.send(new ListObjectsV2Command({ Bucket: "data", MaxKeys: 2, ContinuationToken: token }));
        keys.push(...(r.Contents ?? []).map((o) => o.Key!));
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
        pages++;
      } while (token !== undefined && pages < 10);
      expect(keys).toEqual([...KEYS].sort(byUtf8));
      expect(pages).toBe(3);
    } finally {
      c.destroy();
    }
  });

  test("bad max-keys or encoding-type → 400 InvalidArgument before the upstream; a forged token → the upstream's 400 InvalidArgument", async () => {
    env.mark();
    expect(await raw("/data/", { "list-type": "2", "max-keys": "-1" })).toMatchObject({ status: 400, code: "InvalidArgument" });
    expect(await raw("/data/", { "list-type": "2", "max-keys": "lots" })).toMatchObject({ status: 400, code: "InvalidArgument" });
    expect(await raw("/data/", { "list-type": "2", "encoding-type": "base64" })).toMatchObject({ status: 400, code: "InvalidArgument" });
    expect(env.upstreamCalls()).toEqual([]);
    const forged = await raw("/data/", { "list-type": "2", "continuation-token": "not-a-token" });
    expect(forged).toMatchObject({ status: 400, code: "InvalidArgument" });
    // S3's own words and the argument it names, as the upstream gave them (it was "Invalid Argument", no name)
    expect(forged.body).toContain("<Message>The continuation token provided is incorrect</Message>");
    expect(forged.body).toContain("<ArgumentName>continuation-token</ArgumentName>");
    expect(env.upstreamCalls().length).toBe(1);
  });

  test("a negative max-keys is refused with S3's words for it, field by field as the S3 fixture answers it: 'Argument maxKeys must be an integer between 0 and 2147483647', ArgumentName maxKeys (it said 'Provided max-keys not an integer…', the words for a value that is no integer)", async () => {
    const fields = (body: string) => Object.fromEntries(["Code", "Message", "ArgumentName", "ArgumentValue"].map((n) => [n, new RegExp(`<${n}>([^<]*)</${n}>`).exec(body)?.[1]]));
    for (const query of [{ "list-type": "2", "max-keys": "-1" }, { "max-keys": "-1" }, { "list-type": "2", "max-keys": "-2147483648" }, { "list-type": "2", "max-keys": "lots" }] as Array<Record<string, string>>) {
      const direct = await smithySigned({ creds: UPSTREAM, date: new Date(), path: "/data/", query, host: new URL(env.s3.endpoint).host });
      const h = new Headers(direct.headers);
      h.delete("host");
      const s3 = await fetch(`${env.s3.endpoint}${direct.rawPath}?${direct.rawQuery}`, { headers: h });
      const expected = { query, status: s3.status, ...fields(await s3.text()) };
      env.mark();
      const r = await raw("/data/", query);
      expect({ query, status: r.status, ...fields(r.body) }).toEqual(expected);
      expect(env.upstreamCalls()).toEqual([]); // refused before the upstream
    }
  });

  test("an upstream 200 that is not a listing (an <Error> document naming its internals) → 500 InternalError, nothing of it relayed (aws-cli read it as an empty bucket)", async () => {
    for (const path of ["/data", "/data/"]) s3Fault(path, { kind: "error", status: 200, code: "InternalError", message: "backend rgw1.dc2.acme.de 10.1.2.3 failed for arn:aws:iam::123456789012:role/internal" });
    try {
      for (const query of [{ "list-type": "2" }, {}, { versions: "" }] as Array<Record<string, string>>) {
        const r = await raw("/data/", query);
        expect(`${JSON.stringify(query)} ${r.status} ${r.code}`).toBe(`${JSON.stringify(query)} 500 InternalError`);
        expect(r.body).not.toMatch(/rgw1|10\.1\.2\.3|arn:|123456789012/);
      }
    } finally {
      for (const path of ["/data", "/data/"]) env.s3.faults.delete(path);
    }
  });

  test("max-keys with leading zeros is its number (an integer parse, as S3's): 0002 lists 2 keys, on V2, V1 and versions; the upstream gets 2", async () => {
    // It was refused 400 InvalidArgument (the check counted digits, not the value).
    for (const query of [{ "list-type": "2", "max-keys": "0002" }, { "max-keys": "0002" }, { versions: "", "max-keys": "0002" }] as Array<Record<string, string>>) {
      env.mark();
      const r = await raw("/data/", query);
      expect(`${JSON.stringify(query)} ${r.status}`).toBe(`${JSON.stringify(query)} 200`);
      expect(r.body).toContain("<MaxKeys>2</MaxKeys>");
      expect(env.upstreamCalls().map((c) => c.query["max-keys"])).toEqual(["2"]);
    }
    expect(await raw("/data/", { "list-type": "2", "max-keys": "0" + "2147483648" })).toMatchObject({ status: 400, code: "InvalidArgument" });
  });

  test("an empty max-keys is as if none were given, as MinIO, Ceph RGW and versitygw read it: the default page (1000), on V2, V1 and versions; the upstream gets none", async () => {
    // It was refused 400 InvalidArgument ("Provided max-keys not an integer...").
    const seen: string[] = [];
    for (const op of [{ "list-type": "2" }, {}, { versions: "" }] as Array<Record<string, string>>) {
      env.mark();
      const r = await raw("/data/", { ...op, "max-keys": "" });
      seen.push(`${JSON.stringify(op)} ${r.status} ${/<MaxKeys>(\d+)</.exec(r.body)?.[1]} ${env.upstreamCalls().map((c) => c.query["max-keys"] ?? "none")}`);
    }
    expect(seen).toEqual(['{"list-type":"2"} 200 1000 none', "{} 200 1000 none", '{"versions":""} 200 1000 none']);
  });
});

describe("characters XML 1.0 cannot carry", () => {
  const RAW_CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f]/;
  test("a C0 control in a listed key is written as S3 writes it (&#x1;), never raw (the document was one no parser reads); in an echoed marker, start-after, prefix or delimiter it is 400 InvalidArgument without encoding-type=url; url-encoded with it; a NUL one is 400 InvalidArgument", async () => {
    await env.s3.put("data", "ctl/a\u0001b.txt", "x");
    try {
      const v1 = await raw("/data", { prefix: "ctl/" });
      expect([v1.status, RAW_CONTROL.test(v1.body)]).toEqual([200, false]);
      expect(v1.body).toContain("<Key>ctl/a&#x1;b.txt</Key>");
      for (const q of [{ marker: "ctl/a\u0001", prefix: "ctl/" }, { "list-type": "2", "start-after": "ctl/\u0002" }, { "list-type": "2", prefix: "ctl/a\u0001" }, { "list-type": "2", delimiter: "\u0003" }] as Array<Record<string, string>>) {
        const r = await raw("/data", q);
        expect([r.status, r.code, /<ArgumentName>([^<]*)</.exec(r.body)?.[1]]).toEqual([400, "InvalidArgument", Object.keys(q).find((k) => /[\x00-\x1f]/.test(q[k]!))]);
      }
      const v2 = await raw("/data", { "list-type": "2", "start-after": "ctl/\u0002", prefix: "ctl/a\u0001", delimiter: "\u0003", "encoding-type": "url" });
      expect([v2.status, RAW_CONTROL.test(v2.body)]).toEqual([200, false]);
      expect(v2.body).toContain("<StartAfter>ctl/%02</StartAfter>");
      expect(v2.body).toContain("<Prefix>ctl/a%01</Prefix>");
      expect(v2.body).toContain("<Delimiter>%03</Delimiter>");
      expect(v2.body).toContain("<Key>ctl/a%01b.txt</Key>");
      for (const q of [{ marker: "a\u0000" }, { "list-type": "2", "start-after": "a\u0000" }, { "list-type": "2", delimiter: "\u0000" }] as Array<Record<string, string>>) {
        const r = await raw("/data", q);
        expect([r.status, r.code, /<ArgumentName>([^<]*)</.exec(r.body)?.[1]]).toEqual([400, "InvalidArgument", Object.keys(q).at(-1)]);
      }
    } finally {
      await env.s3.remove("data", "ctl/a\u0001b.txt");
    }
  });
});

describe("x-amz-optional-object-attributes", () => {
  test("reaches the upstream on V2, V1 and ListObjectVersions (S3 returns RestoreStatus only when asked; it was dropped)", async () => {
    for (const query of [{ "list-type": "2" }, {}, { versions: "" }] as Array<Record<string, string>>) {
      env.mark();
      const r = await raw("/data/", query, APP, { "x-amz-optional-object-attributes": "RestoreStatus" });
      expect(`${JSON.stringify(query)} ${r.status}`).toBe(`${JSON.stringify(query)} 200`);
      const calls = env.upstreamCalls();
      expect(calls.length).toBe(1);
      expect(calls[0]!.headers["x-amz-optional-object-attributes"]).toBe("RestoreStatus");
    }
    const c = sdk();
    try {
      env.mark();
      await c.send(new ListObjectsV2Command({ Bucket: "data", OptionalObjectAttributes: ["RestoreStatus"] }));
      expect(env.upstreamCalls()[0]!.headers["x-amz-optional-object-attributes"]).toBe("RestoreStatus");
      env.mark(); // none asked: none sent
      await c.send(new ListObjectsV2Command({ Bucket: "data" }));
      expect(env.upstreamCalls()[0]!.headers["x-amz-optional-object-attributes"]).toBeUndefined();
    } finally {
      c.destroy();
    }
  });
});

describe("ListObjects (V1)", () => {
  test("Marker paging with MaxKeys 2 to the end; encoding-type=url relayed", async () => {
    const c = sdk();
    try {
      const keys: string[] = [];
      let marker: string | undefined;
      for (let i = 0; i < 10; i++) {
        const r = await c.send(new ListObjectsCommand({ Bucket: "data", MaxKeys: 2, Marker: marker }));
        expect(r.Name).toBe("data");
        const page = (r.Contents ?? []).map((o) => o.Key!);
        keys.push(...page);
        if (!r.IsTruncated) break;
        marker = r.NextMarker ?? page.at(-1);
      }
      expect(keys).toEqual([...KEYS].sort(byUtf8));
    } finally {
      c.destroy();
    }
    const enc = await raw("/data/", { prefix: "c", "encoding-type": "url" });
    expect(enc.body).toContain("<Key>c+d.txt</Key>");
    expect(enc.body).toContain("<EncodingType>url</EncodingType>");
  });
});
