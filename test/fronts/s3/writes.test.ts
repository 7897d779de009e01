/**
 * The S3 front's write-side pure parts: who may do which write (permissions.ts), the
 * x-amz-copy-source parser, the CompleteMultipartUpload parts list, and how an upstream error
 * answer is translated for the client (relay.ts).
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { parseConfig } from "../../../src/config/load.ts";
import type { S3Action } from "../../../src/proxy/context.ts";
import type { BucketRuntime, Runtime } from "../../../src/runtime.ts";
import { parseCopySource } from "../../../src/fronts/s3/copy.ts";
import { s3ErrorOf } from "../../../src/fronts/s3/fail.ts";
import type { S3Principal } from "../../../src/fronts/s3/identities.ts";
import { partsOf } from "../../../src/fronts/s3/multipart.ts";
import { mayAccess } from "../../../src/fronts/s3/permissions.ts";
import { errorOf } from "../../../src/fronts/s3/relay.ts";
import { renderS3ErrorXml } from "../../../src/fronts/s3/errors.ts";
import { childrenNamed, parseXml, type XmlError } from "../../../src/fronts/s3/xml-reader.ts";
import { MAX_XML_BODY, parseClientXml, readWhole, XML_ELEMENT_LIMITS } from "../../../src/fronts/s3/writes.ts";
import { tagsOf } from "../../../src/fronts/s3/tagging.ts";
import { heapStats } from "bun:jsc";
import type { ProxyError } from "../../../src/errors.ts";

setDefaultTimeout(10_000); // explicit: the runner's 5 s default is not a choice made here

const config = parseConfig(`server: { port: 0 }
jwt: { enabled: true, algorithm: HS256, secret: "writes-test-secret-0123456789abcdef", claims: [{ claim: org, operator: equals, value: acme }] }
buckets:
  - { name: rw, path_prefix: /rw, access: read-write, s3: { bucket: bkt, endpoint: "http://127.0.0.1:1" } }
  - { name: ro, path_prefix: /ro, s3: { bucket: bkt, endpoint: "http://127.0.0.1:1" } }
  - name: rwauth
    path_prefix: /rwauth
    access: read-write
    s3: { bucket: bkt, endpoint: "http://127.0.0.1:1" }
    auth: { enabled: true, claims: [{ claim: team, operator: equals, value: a }], write_claims: [{ claim: role, operator: equals, value: writer }] }
  - { name: rwopen, path_prefix: /rwopen, access: read-write, s3: { bucket: bkt, endpoint: "http://127.0.0.1:1" }, auth: { anonymous_writes: true } }
`);
const buckets = new Map(config.buckets.map((b) => [b.name, { name: b.name, cfg: b, authRequired: b.auth.enabled, extraRules: b.auth.claims } as unknown as BucketRuntime]));
const rt = { config, buckets } as unknown as Runtime;
const staticWith = (grants: Record<string, string[]>): S3Principal =>
  ({ kind: "static", accessKeyId: "AK", secretAccessKey: "s", identity: "id", claims: {}, grants: new Map(Object.entries(grants).map(([b, p]) => [b, new Set(p)])) }) as unknown as S3Principal;
const session = (claims: Record<string, unknown>): S3Principal => ({ kind: "session", accessKeyId: "ASIA", secretAccessKey: "s", identity: "alice", claims, session: {} }) as unknown as S3Principal;
const may = (p: S3Principal | undefined, bucket: string, action: S3Action) => mayAccess(rt, p, buckets.get(bucket)!, action);

describe("mayAccess, writes", () => {
  test("static grants: write covers PutObject (and the multipart calls), delete DeleteObject; bookkeeping needs either; any grant for bucket-level reads", () => {
    const w = staticWith({ rw: ["write"] });
    const d = staticWith({ rw: ["delete"] });
    const r = staticWith({ rw: ["read", "list"] });
    expect([may(w, "rw", "s3:PutObject"), may(w, "rw", "s3:DeleteObject"), may(w, "rw", "s3:GetObject"), may(w, "rw", "s3:AbortMultipartUpload")]).toEqual([true, false, false, true]);
    expect([may(d, "rw", "s3:PutObject"), may(d, "rw", "s3:DeleteObject"), may(d, "rw", "s3:ListBucketMultipartUploads"), may(d, "rw", "s3:ListMultipartUploadParts")]).toEqual([false, true, true, true]);
    expect([may(r, "rw", "s3:PutObject"), may(r, "rw", "s3:AbortMultipartUpload"), may(r, "rw", "s3:GetObject"), may(w, "rw", "s3:GetBucketLocation")]).toEqual([false, false, true, true]);
  });

  test("each object-level action needs the grant the README names, and no other grant gives it", () => {
    const needs: Array<[S3Action, string[]]> = [
      ["s3:GetObject", ["read"]], ["s3:GetObjectVersion", ["read"]], ["s3:GetObjectAttributes", ["read"]], ["s3:GetObjectTagging", ["read"]], ["s3:GetObjectAcl", ["read"]],
      ["s3:ListBucket", ["list"]], ["s3:ListBucketVersions", ["list"]],
      ["s3:PutObject", ["write"]], ["s3:PutObjectTagging", ["write"]], ["s3:DeleteObjectTagging", ["write"]], ["s3:PutObjectAcl", ["write"]], ["s3:PutBucketAcl", ["write"]],
      ["s3:DeleteObject", ["delete"]], ["s3:DeleteObjectVersion", ["delete"]],
      ["s3:AbortMultipartUpload", ["write", "delete"]], ["s3:ListMultipartUploadParts", ["write", "delete"]], ["s3:ListBucketMultipartUploads", ["write", "delete"]],
    ];
    for (const [action, granting] of needs) {
      for (const perm of ["read", "list", "write", "delete"]) {
        expect(`${action} with ${perm}: ${may(staticWith({ rw: [perm] }), "rw", action)}`).toBe(`${action} with ${perm}: ${granting.includes(perm)}`);
      }
    }
  });

  test("a read-only bucket refuses every write-family action whatever the grant; reads follow the grant", () => {
    const all = staticWith({ ro: ["read", "list", "write", "delete"] });
    for (const a of ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:ListBucketMultipartUploads"] as S3Action[]) expect(`${a} ${may(all, "ro", a)}`).toBe(`${a} false`);
    expect(may(all, "ro", "s3:GetObject")).toBe(true);
  });

  test("sessions: the plain front's write rule (auth.write_claims; without auth only with anonymous_writes); anonymous never writes", () => {
    expect(may(session({ org: "acme", team: "a", role: "writer" }), "rwauth", "s3:PutObject")).toBe(true);
    expect(may(session({ org: "acme", team: "a", role: "reader" }), "rwauth", "s3:PutObject")).toBe(false);
    expect(may(session({ org: "acme", team: "a", role: "reader" }), "rwauth", "s3:GetObject")).toBe(true);
    expect(may(session({ org: "acme", team: "b", role: "writer" }), "rwauth", "s3:PutObject")).toBe(false);
    expect(may(session({ org: "other", team: "a", role: "writer" }), "rwauth", "s3:DeleteObject")).toBe(false);
    expect(may(session({ org: "acme" }), "rw", "s3:PutObject")).toBe(false);
    expect(may(session({ org: "acme" }), "rwopen", "s3:PutObject")).toBe(true);
    expect(may(session({ org: "acme", team: "a", role: "writer" }), "ro", "s3:PutObject")).toBe(false);
    expect([may(undefined, "rwopen", "s3:PutObject"), may(undefined, "rw", "s3:GetObject")]).toEqual([false, true]);
  });

  test("a session whose claims no longer pass jwt.claims (a revocation cut-off written after it was issued) is refused on every bucket, those without auth too", () => {
    // It was issued while jwt.claims held; a reload changed them. On a bucket without auth it kept
    // listing and writing, more than anonymous clients may, until it expired.
    for (const bucket of ["rw", "ro", "rwopen", "rwauth"]) {
      for (const action of ["s3:GetObject", "s3:ListBucket", "s3:PutObject"] as S3Action[]) {
        expect(`${bucket} ${action} ${may(session({ org: "revoked", team: "a", role: "writer" }), bucket, action)}`).toBe(`${bucket} ${action} false`);
      }
    }
    expect(may(session({ org: "acme" }), "ro", "s3:ListBucket")).toBe(true);
    expect(may(session({ org: "acme" }), "rwopen", "s3:GetObject")).toBe(true);
  });
});

describe("parseCopySource", () => {
  test("S3's forms: leading slash or not, URL-encoded, ?versionId", () => {
    expect(parseCopySource("/b/a%20b%2Bc/%C3%BC.txt")).toEqual({ bucket: "b", key: "a b+c/ü.txt" });
    // a raw "+" in the key is a space, as S3 reads it (SDKs send a plus as %2B)
    expect(parseCopySource("b/k+1")).toEqual({ bucket: "b", key: "k 1" });
    expect(parseCopySource("b/k%2B1+2")).toEqual({ bucket: "b", key: "k+1 2" });
    expect(parseCopySource("/b/k?versionId=v%201")).toEqual({ bucket: "b", key: "k", versionId: "v 1" });
    // a version id's "+" and "/" as botocore sends them (unencoded): S3 reads a plus, not a space
    expect(parseCopySource("b/k?versionId=3sL4kqtJ+rmSp/Xd3d")).toEqual({ bucket: "b", key: "k", versionId: "3sL4kqtJ+rmSp/Xd3d" });
  });
  test("no key, no bucket, a bad escape, another query parameter → InvalidArgument", () => {
    for (const bad of ["", "/", "/b", "/b/", "//k", "/b/%E0%A4%A", "/b/k?acl", "/b/k?versionId=a&versionId=b", "/b/k?versionId=%E0%A4"]) expect(`${bad} → ${"code" in parseCopySource(bad) ? "refused" : "parsed"}`).toBe(`${bad} → refused`);
  });
  test("an empty or overlong ?versionId= is S3's version id error, not one saying the bucket and key are missing", () => {
    const refusal = (raw: string) => {
      const r = parseCopySource(raw);
      return "code" in r ? `${r.code}: ${r.message}` : "parsed";
    };
    expect(refusal("/b/k?versionId=")).toBe("InvalidArgument: Version id cannot be the empty string");
    expect(refusal(`/b/k?versionId=${"v".repeat(1025)}`)).toBe("InvalidArgument: Invalid version id specified");
  });
});

describe("partsOf (CompleteMultipartUpload)", () => {
  const doc = (inner: string) => parseXml(`<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${inner}</CompleteMultipartUpload>`);
  const code = (fn: () => unknown) => {
    try {
      fn();
      return "ok";
    } catch (e) {
      return s3ErrorOf(e as ProxyError)!.code;
    }
  };
  test("parts in the order given, ETags as sent (quotes kept), each part's checksums", () => {
    expect(partsOf(doc('<Part><PartNumber>2</PartNumber><ETag>"b"</ETag></Part><Part><ETag>&quot;a&quot;</ETag><PartNumber> 1 </PartNumber><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>'))).toEqual([
      { partNumber: 2, etag: '"b"' },
      { partNumber: 1, etag: '"a"', checksumCRC32: "AAAAAA==" },
    ]);
  });
  test("no parts or no ETag → MalformedXML; a part number outside 1..10000 → InvalidArgument; over 10,000 parts → InvalidArgument", () => {
    expect(code(() => partsOf(doc("")))).toBe("MalformedXML");
    expect(code(() => partsOf(doc("<Part><PartNumber>1</PartNumber></Part>")))).toBe("MalformedXML");
    expect(code(() => partsOf(doc("<Part><PartNumber>10001</PartNumber><ETag>x</ETag></Part>")))).toBe("InvalidArgument");
    expect(code(() => partsOf(doc("<Part><PartNumber>1.5</PartNumber><ETag>x</ETag></Part>")))).toBe("InvalidArgument");
    const many = Array.from({ length: 10_001 }, (_, i) => `<Part><PartNumber>${(i % 10000) + 1}</PartNumber><ETag>x</ETag></Part>`).join("");
    expect(code(() => partsOf(doc(many)))).toBe("InvalidArgument");
  });
  test("an element S3's schema does not have there is MalformedXML, never skipped: a <Part> inside another element (the upload completed without it), stray children of a part; a newer checksum the proxy does not carry is NotImplemented", () => {
    const part = (n: number) => `<Part><PartNumber>${n}</PartNumber><ETag>"e${n}"</ETag></Part>`;
    expect(code(() => partsOf(doc(part(1) + `<Parts>${part(2)}</Parts>`)))).toBe("MalformedXML");
    expect(code(() => partsOf(doc(part(1) + `<Other/>`)))).toBe("MalformedXML");
    expect(code(() => partsOf(doc(`<Part><PartNumber>1</PartNumber><ETag>x</ETag><Part><PartNumber>2</PartNumber><ETag>y</ETag></Part></Part>`)))).toBe("MalformedXML");
    expect(code(() => partsOf(doc(`<Part><PartNumber>1</PartNumber><ETag>x</ETag><Size>5</Size></Part>`)))).toBe("MalformedXML");
    expect(code(() => partsOf(doc(`<Part><PartNumber>1</PartNumber><ETag>x</ETag><ChecksumSHA512>AAAA</ChecksumSHA512></Part>`)))).toBe("NotImplemented");
    // (comments and whitespace between parts are no elements)
    expect(partsOf(doc(`\n  <!-- first -->${part(1)}\n  ${part(2)}\n`)).map((p) => p.partNumber)).toEqual([1, 2]);
  });
});

describe("errorOf (an upstream error answer, for the client)", () => {
  test("an upstream's 429 (S3 never answers one) is S3's 503 SlowDown with Retry-After, with or without an S3 code", () => {
    const doc = parseXml("<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>");
    expect(errorOf(429, doc, "b", "7")).toMatchObject({ code: "SlowDown", status: 503, headers: { "retry-after": "7" } });
    expect(errorOf(429, undefined, "b", null)).toMatchObject({ code: "SlowDown", status: 503, headers: { "retry-after": "1" } });
  });
  const err = (xml: string) => parseXml(xml);
  test("S3's code and message kept, with the answer's status", () => {
    expect(errorOf(400, err("<Error><Code>InvalidPart</Code><Message>One part is missing.</Message></Error>"), "hidden")).toMatchObject({ code: "InvalidPart", status: 400, message: "One part is missing." });
  });
  test("a message naming the upstream bucket is replaced by S3's fixed one; request ids are never copied", () => {
    const e = errorOf(404, err("<Error><Code>NoSuchUpload</Code><Message>upload in hidden-bucket gone</Message><RequestId>R</RequestId></Error>"), "hidden-bucket");
    expect(e).toMatchObject({ code: "NoSuchUpload", status: 404 });
    expect(JSON.stringify(e)).not.toContain("hidden-bucket");
    expect(JSON.stringify(e)).not.toContain('"R"');
  });
  test("S3's details are relayed only as plain words or numbers that name nothing of the upstream (an ArgumentName of rgw1.dc2.acme.de reached the client)", () => {
    const e = errorOf(400, err("<Error><Code>InvalidArgument</Code><Message>bad</Message><ArgumentName>rgw1.dc2.acme.de</ArgumentName><PartNumberRequested>3</PartNumberRequested><ActualPartCount>hidden-bucket</ActualPartCount></Error>"), "hidden-bucket");
    expect(e.details).toEqual({ PartNumberRequested: "3" });
    expect(errorOf(400, err("<Error><Code>InvalidArgument</Code><Message>x</Message><ArgumentName>continuation-token</ArgumentName></Error>"), "b").details).toEqual({ ArgumentName: "continuation-token" });
  });
  test("an InvalidArgument's ArgumentValue is relayed beside its ArgumentName (it was dropped); never the value of an argument the proxy itself sent, nor one alone", () => {
    const bad = (name: string, value: string) => errorOf(400, err(`<Error><Code>InvalidArgument</Code><Message>x</Message><ArgumentName>${name}</ArgumentName><ArgumentValue>${value}</ArgumentValue></Error>`), "b").details;
    expect(bad("versionId", "abc")).toEqual({ ArgumentName: "versionId", ArgumentValue: "abc" });
    expect(bad("x-amz-content-sha256", "0".repeat(64))).toEqual({ ArgumentName: "x-amz-content-sha256" });
    expect(bad("X-Amz-Signature", "ab12")).toEqual({ ArgumentName: "X-Amz-Signature" });
    expect(errorOf(400, err("<Error><Code>InvalidArgument</Code><Message>x</Message><ArgumentValue>abc</ArgumentValue></Error>"), "b").details).toBeUndefined();
    expect(bad("versionId", "x".repeat(1025))).toEqual({ ArgumentName: "versionId" });
  });
  test("an ArgumentValue holding `+`, `/` or `.` (an S3 version id, a key) is relayed, escaped when written, up to 1,024 characters (it was dropped: the no-dots rule of the other details); never with a control character, the upstream bucket, or the upstream's continuation token or copy source", () => {
    // (read as the relay reads an upstream's answer: leniently, so a reference to a control character is one)
    const bad = (name: string, value: string, bucket = "hidden-bucket") => errorOf(400, parseXml(`<Error><Code>InvalidArgument</Code><Message>x</Message><ArgumentName>${name}</ArgumentName><ArgumentValue>${value}</ArgumentValue></Error>`, { lenient: true }), bucket).details;
    const version = "3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo.v2";
    expect(bad("versionId", version)).toEqual({ ArgumentName: "versionId", ArgumentValue: version });
    expect(bad("x-amz-copy-source-range", "bytes=a&lt;b")).toEqual({ ArgumentName: "x-amz-copy-source-range", ArgumentValue: "bytes=a<b" });
    const long = "k/" + "x".repeat(1022);
    expect(bad("versionId", long)).toEqual({ ArgumentName: "versionId", ArgumentValue: long });
    const doc = err("<Error><Code>InvalidArgument</Code><Message>x</Message><ArgumentName>versionId</ArgumentName><ArgumentValue>a&lt;b</ArgumentValue></Error>");
    expect(renderS3ErrorXml(errorOf(400, doc, "hidden-bucket"), { requestId: "r" })).toContain("<ArgumentName>versionId</ArgumentName><ArgumentValue>a&lt;b</ArgumentValue>");
    expect(bad("versionId", "a&#x1;b")).toEqual({ ArgumentName: "versionId" });
    expect(bad("versionId", "hidden-bucket/k.txt")).toEqual({ ArgumentName: "versionId" });
    expect(bad("continuation-token", "1/upstream.token+")).toEqual({ ArgumentName: "continuation-token" });
    // (the proxy's own credential and signature, which the no-dots rule happened to drop too)
    const auth = "AWS4-HMAC-SHA256 Credential=AKIDUPSTREAM/20261207/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab12";
    for (const name of ["Authorization", "X-Amz-Credential", "AWSAccessKeyId"]) expect(bad(name, auth)).toEqual({ ArgumentName: name });
    expect(bad("x-amz-copy-source", "src/k.txt", "other")).toEqual({ ArgumentName: "x-amz-copy-source" });
  });
  test("S3's messages and details with a list in brackets or a size of 100 MB or more are relayed (they were replaced by the generic text); an account id or a bracketed address is not", () => {
    const mp = "The provided 'x-amz-mp-object-size' header value 100000000 does not match what was computed: 3";
    expect(errorOf(400, err(`<Error><Code>InvalidRequest</Code><Message>${mp}</Message></Error>`), "b").message).toBe(mp);
    const algo = "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]";
    expect(errorOf(400, err(`<Error><Code>InvalidRequest</Code><Message>${algo}</Message></Error>`), "b").message).toBe(algo);
    const big = errorOf(400, err("<Error><Code>EntityTooLarge</Code><Message>Your proposed upload exceeds the maximum allowed size</Message><ProposedSize>5368709121</ProposedSize><MaxSizeAllowed>5368709120</MaxSizeAllowed></Error>"), "b");
    expect(big.details).toEqual({ ProposedSize: "5368709121", MaxSizeAllowed: "5368709120" });
    for (const leak of ["Access for account 123456789012 denied", "node [fd00::12] refused", "node [10.0.0.7] refused", "ask ops@acme refused"]) {
      expect(errorOf(400, err(`<Error><Code>InvalidRequest</Code><Message>${leak}</Message></Error>`), "b").message).not.toBe(leak);
    }
  });
  test("a message naming a host by a single label and its port (minio-3:9000, localhost:9000) is not relayed: a shared read's refusal relays messages too", () => {
    for (const leak of ["Invalid argument: node minio-3:9000 refused the read", "Invalid argument (endpoint localhost:9000)", "rgw1:7480 refused"]) {
      expect(errorOf(400, err(`<Error><Code>InvalidArgument</Code><Message>${leak}</Message></Error>`), "b").message).not.toBe(leak);
    }
    const lock = "Invalid argument: part number 5 is not between 1 and 10000 (x-amz-mp-parts-count: 4)";
    expect(errorOf(400, err(`<Error><Code>InvalidArgument</Code><Message>${lock}</Message></Error>`), "b").message).toBe(lock);
  });
  test("the upstream refusing the proxy's own credentials → AccessDenied; unknown codes by status; 503 with Retry-After", () => {
    expect(errorOf(403, err("<Error><Code>SignatureDoesNotMatch</Code></Error>"), "b").code).toBe("AccessDenied");
    expect(errorOf(400, err("<Error><Code>WeirdNewCode</Code></Error>"), "b").code).toBe("InvalidRequest");
    expect(errorOf(502, undefined, "b").code).toBe("InternalError");
    expect(errorOf(503, err("<Error><Code>SlowDown</Code></Error>"), "b", "7")).toMatchObject({ code: "SlowDown", status: 503, headers: { "retry-after": "7" } });
    expect(errorOf(200, err("<Error><Code>InternalError</Code></Error>"), "b")).toMatchObject({ code: "InternalError", status: 500 });
  });
});

describe("readWhole (the XML bodies the front reads itself: DeleteObjects, CompleteMultipartUpload, ACLs, tags)", () => {
  /** `total` bytes in `piece`-byte pieces, each its own buffer (as a request stream gives a TCP segment); `peak`: the heap's growth, after a GC every 32,768 pieces. */
  function dripped(total: number, piece: number) {
    let sent = 0;
    let pieces = 0;
    let peak = 0;
    Bun.gc(true);
    const base = heapStats().heapSize;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= total) return c.close();
        if (++pieces % 32768 === 0) {
          Bun.gc(true);
          peak = Math.max(peak, heapStats().heapSize - base);
        }
        const p = new Uint8Array(new ArrayBuffer(Math.min(piece, total - sent))).fill(sent & 255);
        sent += p.length;
        c.enqueue(p);
      },
    }, { highWaterMark: 0 });
    return { stream, peak: () => peak };
  }

  test("a 4 MiB body dripped in 16-byte pieces is copied into one buffer as it comes (new Response(stream).arrayBuffer() kept every piece: ~50 MiB)", async () => {
    const d = dripped(4 * 1024 * 1024, 16);
    const bytes = await readWhole(d.stream, 4 * 1024 * 1024);
    expect(bytes.byteLength).toBe(4 * 1024 * 1024);
    expect(bytes[16 * 1000]).toBe((16 * 1000) & 255);
    expect(d.peak()).toBeLessThan(24 * 1024 * 1024);
  });

  test("a short body and a long one come back with another length than declared (IncompleteBody)", async () => {
    expect((await readWhole(dripped(1000, 100).stream, 2000)).byteLength).toBe(1000);
    expect((await readWhole(dripped(3000, 100).stream, 2000)).byteLength).not.toBe(2000);
    expect((await readWhole(dripped(0, 100).stream, 0)).byteLength).toBe(0);
  });
});

describe("a client's XML document: the elements its kind's largest valid form needs, no more", () => {
  const repeat = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i)).join("");
  const largest = {
    Delete: "<Delete><Quiet>true</Quiet>" + repeat(1000, (i) => `<Object><Key>k${i}</Key><VersionId>v</VersionId><ETag>"e"</ETag><LastModifiedTime>2026-01-01T00:00:00Z</LastModifiedTime><Size>1</Size></Object>`) + "</Delete>",
    CompleteMultipartUpload: "<CompleteMultipartUpload>" + repeat(10000, (i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>&quot;${"0".repeat(32)}&quot;</ETag>` +
      // (every checksum element on every part, as a client that sends them all does: 5 more elements a part)
      `<ChecksumCRC32>AAAAAA==</ChecksumCRC32><ChecksumCRC32C>AAAAAA==</ChecksumCRC32C><ChecksumCRC64NVME>AAAAAAAAAAA=</ChecksumCRC64NVME><ChecksumSHA1>${"A".repeat(27)}=</ChecksumSHA1><ChecksumSHA256>${"A".repeat(43)}=</ChecksumSHA256></Part>`) + "</CompleteMultipartUpload>",
    Tagging: "<Tagging><TagSet>" + repeat(50, (i) => `<Tag><Key>k${i}</Key><Value>v</Value></Tag>`) + "</TagSet></Tagging>",
    AccessControlPolicy: "<AccessControlPolicy><Owner><ID>o</ID><DisplayName>o</DisplayName></Owner><AccessControlList>" +
      repeat(100, () => `<Grant><Grantee><ID>o</ID><DisplayName>o</DisplayName><EmailAddress>a@b</EmailAddress><URI>u</URI></Grantee><Permission>READ</Permission></Grant>`) + "</AccessControlList></AccessControlPolicy>",
  };
  const elements = (xml: string) => xml.match(/<[A-Za-z]/g)!.length;
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return s3ErrorOf(e as ProxyError)?.code;
    }
    return "none";
  };

  test("the largest valid document of each kind is exactly its limit and is read; one element more is MalformedXML", () => {
    for (const [root, xml] of Object.entries(largest) as Array<[keyof typeof largest, string]>) {
      expect([root, elements(xml)]).toEqual([root, XML_ELEMENT_LIMITS[root]]);
      expect(parseClientXml(xml, root).name).toBe(root);
      const over = xml.replace(/<\/[A-Za-z]+>$/, "<x/>$&");
      expect([root, elements(over), code(() => parseClientXml(over, root))]).toEqual([root, XML_ELEMENT_LIMITS[root] + 1, "MalformedXML"]);
    }
    // (and the checks after the reader still answer what S3 answers)
    const parts = partsOf(parseClientXml(largest.CompleteMultipartUpload, "CompleteMultipartUpload"));
    expect(parts.length).toBe(10000);
    expect(parts[9999]).toMatchObject({ partNumber: 10000, checksumCRC32: "AAAAAA==", checksumCRC32C: "AAAAAA==", checksumCRC64NVME: "AAAAAAAAAAA=", checksumSHA256: "A".repeat(43) + "=" });
    // (and it is within the body cap: a client's 10,000 parts with every checksum fit)
    expect(largest.CompleteMultipartUpload.length).toBeLessThan(MAX_XML_BODY);
    expect(code(() => tagsOf(parseClientXml(largest.Tagging, "Tagging")))).toBe("InvalidTag");
  });

  test("the reader stops at the element past the limit, before reading on", () => {
    for (const root of Object.keys(largest) as Array<keyof typeof largest>) {
      const limit = XML_ELEMENT_LIMITS[root];
      // (what follows the element past the limit is not XML at all: reading it would be another error)
      const xml = `<${root}>` + "<a/>".repeat(limit) + "<!DOCTYPE x>";
      let err: unknown;
      try {
        parseXml(xml, { maxElements: limit });
      } catch (e) {
        err = e;
      }
      expect([root, (err as XmlError).message]).toEqual([root, "too many XML elements"]);
    }
  });

  test("a start tag of thousands of namespace declarations and prefixed attributes is MalformedXML at once (it held the event loop ~14 s for 640 KB)", () => {
    const decl = Array.from({ length: 20000 }, (_, i) => `xmlns:p${i}=""`).join(" ");
    const uses = Array.from({ length: 20000 }, (_, i) => `p19999:a${i}=""`).join(" ");
    const started = performance.now();
    expect(code(() => parseClientXml(`<Delete ${decl} ${uses}><Object><Key>k</Key></Object></Delete>`, "Delete"))).toBe("MalformedXML");
    expect(performance.now() - started).toBeLessThan(1000);
  });

  test("a 4 MiB body of CRs (read as line ends) is read about as fast as one of spaces (its regex replace held the event loop 0.4-1 s, ~40 times longer)", () => {
    const body = (c: string) => new TextEncoder().encode("<Delete>" + c.repeat(MAX_XML_BODY - 100) + "<Object><Key>k</Key></Object></Delete>");
    const crs = body("\r");
    const spaces = body(" ");
    const fastest = (b: Uint8Array) => {
      let best = Infinity;
      for (let i = 0; i < 2; i++) {
        const started = performance.now();
        expect(childrenNamed(parseClientXml(b, "Delete"), "Object").length).toBe(1);
        best = Math.min(best, performance.now() - started);
      }
      return best;
    };
    // (compared with the same parse of spaces, so that a loaded machine slows both)
    expect(fastest(crs)).toBeLessThan(10 * fastest(spaces) + 50);
  });
});
