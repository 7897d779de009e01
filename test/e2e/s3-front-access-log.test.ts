/**
 * What the access log and the audit trail record of a request body, end to end (the S3 fixture
 * upstream, the App's listeners in the test process, the JSON log written to a file as in
 * production). S3's own server access log names every request's Operation and its Object Size;
 * this log had `bytes` (the response body) only: a 1 MiB PutObject or an UploadPart was logged
 * with bytes=0, CreateMultipartUpload and CompleteMultipartUpload as a bare "POST path", and a
 * CopyObject as s3:PutObject on the destination with its source nowhere.
 *
 * - operation: the S3 front's operation name (PutObject, UploadPart, CopyObject, GetObject...);
 * - bytes_in: the request body's payload taken from the client and passed on, as it really came
 *   (a cut upload is never logged with its declared length), in each body path: read whole
 *   (small), verified on the way (a payload hash), decoded (aws-chunked: framing not counted) and
 *   handed to fetch natively (the framed pass-through: logged when the upstream answered 2xx);
 * - copy_source: a copy's source as the client named it;
 * - the audit trail records the same three.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { presignUrl } from "../../src/fronts/presign.ts";
import { createLogger } from "../../src/observe/log.ts";
import { S3Signer } from "../../src/s3/sigv4.ts";
import { waitFor } from "../helpers/wait.ts";
import { startFrontsOn } from "./s3-front-helpers.ts";
import { bytesOf, chunkedRequest, hs256, lines, NODELETE, rawRequest, READER, sha256, signedFetch, startUploadFixture, uploadYaml, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const MiB = 1024 * 1024;
const APP = "http://app.example.test:3000";
const COPIER = { accessKeyId: "AKIDLOGCOPIER0001", secretAccessKey: "log-copier-secret-0123456789abcd" };
type Line = Record<string, unknown>;

describe.each(["bun", "node"] as const)("on the %s engine", (engine) => {
  let env: UploadEnv;
  let dir: string;
  let logFd: number;
  let log: ReturnType<typeof createLogger>;
  const logPath = () => join(dir, "access.log");
  const auditPath = () => join(dir, "audit.log");
  const host = () => `127.0.0.1:${env.port}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "yata-access-log-"));
    logFd = openSync(logPath(), "w");
    log = createLogger({ level: "info", format: "json", fd: logFd });
    const s3 = await startUploadFixture();
    // (upalt: the fixture's bucket `up` through other keys, so a copy between up and upalt is streamed through the proxy)
    const admin = s3.adminCredentials;
    // (upweb: the same with cors, for the preflights' reasons)
    const moreBuckets = () =>
      `  - name: upalt\n    path_prefix: /upalt\n    access: read-write\n    s3: { bucket: up, endpoint: "${s3.endpoint}", access_key: "${admin.accessKeyId}", secret_key: "${admin.secretAccessKey}" }\n` +
      `  - name: upweb\n    path_prefix: /upweb\n    s3: { bucket: up, endpoint: "${s3.endpoint}", access_key: "${admin.accessKeyId}", secret_key: "${admin.secretAccessKey}" }\n    cors: { allowed_origins: ["${APP}"], allowed_methods: [GET, PUT], allowed_headers: [content-type] }\n`;
    const moreCredentials = `    - { access_key_id: "${COPIER.accessKeyId}", secret_access_key: "${COPIER.secretAccessKey}", identity: copier, buckets: { up: [read, write], upalt: [read, write] } }\n`;
    const yaml = `${uploadYaml(s3.endpoint, { engine, moreBuckets, moreCredentials })}audit:\n  enabled: true\n  path: ${auditPath()}\n`;
    env = await startFrontsOn(yaml, s3, true, log);
  });
  afterAll(async () => {
    await env?.stop();
    closeSync(logFd);
    rmSync(dir, { recursive: true, force: true });
  });

  const parse = (text: string): Line[] => text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Line);

  /** The access line of request `id`, once written (the line is written when the request's body is over). */
  async function accessLine(id: string): Promise<Line> {
    return waitFor(
      () => {
        log.flush();
        return parse(readFileSync(logPath(), "utf8")).find((l) => l.msg === "request" && l.request_id === id);
      },
      { timeoutMs: 10_000, message: `the access line of ${id}` },
    );
  }

  async function auditLine(id: string): Promise<Line> {
    return waitFor(
      async () => {
        await env.app.audit!.flush();
        return parse(readFileSync(auditPath(), "utf8")).find((l) => l.request_id === id);
      },
      { timeoutMs: 10_000, message: `the audit line of ${id}` },
    );
  }

  const put = (id: string, path: string, body: Uint8Array, o: { payloadHash?: string; query?: Array<[string, string]> } = {}) =>
    signedFetch(env, { method: "PUT", path, body, headers: { "x-request-id": id }, payloadHash: o.payloadHash, query: o.query });

  test("a 1 MiB PutObject (the body passed on untouched): operation PutObject, bytes_in 1048576, bytes 0; the audit line too", async () => {
    const r = await put(`put-1m-${engine}`, "/up/log/one.bin", bytesOf(MiB, 1));
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    const l = await accessLine(`put-1m-${engine}`);
    expect(l).toMatchObject({ method: "PUT", path: "/up/log/one.bin", status: 200, bytes: 0, front: "s3", operation: "PutObject", bytes_in: MiB });
    expect(l.copy_source).toBeUndefined();
    expect(await auditLine(`put-1m-${engine}`)).toMatchObject({ action: "s3:PutObject", operation: "PutObject", key: "log/one.bin", status: 200, bytes: 0, bytes_in: MiB });
  });

  test("PutObject verified on its way (a signed payload hash) and read whole (a small body): bytes_in is the payload", async () => {
    const big = bytesOf(MiB + 3, 2);
    const r1 = await put(`put-sha-${engine}`, "/up/log/sha.bin", big, { payloadHash: sha256(big) });
    expect(r1.status).toBe(200);
    const small = bytesOf(2000, 3);
    const r2 = await put(`put-small-${engine}`, "/up/log/small.bin", small);
    expect(r2.status).toBe(200);
    expect(await accessLine(`put-sha-${engine}`)).toMatchObject({ operation: "PutObject", status: 200, bytes_in: MiB + 3 });
    expect(await accessLine(`put-small-${engine}`)).toMatchObject({ operation: "PutObject", status: 200, bytes_in: 2000 });
  });

  test("an aws-chunked PutObject: bytes_in is the decoded payload, not the framed body", async () => {
    const payload = bytesOf(200_000, 4);
    const req = chunkedRequest({ mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", host: host(), path: "/up/log/chunked.bin", payload, chunkSize: 65_536 });
    expect(req.body.byteLength).toBeGreaterThan(payload.byteLength);
    const r = await rawRequest(env.port, lines("PUT /up/log/chunked.bin HTTP/1.1", { ...req.headers, "x-request-id": `put-chunked-${engine}` }), [req.body]);
    expect(r.status).toBe(200);
    expect(await accessLine(`put-chunked-${engine}`)).toMatchObject({ operation: "PutObject", status: 200, bytes_in: 200_000 });
  });

  test("a multipart upload: CreateMultipartUpload and CompleteMultipartUpload by name, UploadPart with its part size", async () => {
    const path = "/up/log/mp.bin";
    const created = await signedFetch(env, { method: "POST", path, query: [["uploads", ""]], headers: { "x-request-id": `mp-create-${engine}` } });
    expect(created.status).toBe(200);
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await created.text())![1]!;
    const part = bytesOf(300_000, 5);
    const p = await put(`mp-part-${engine}`, path, part, { query: [["partNumber", "1"], ["uploadId", uploadId]] });
    expect(p.status).toBe(200);
    const xml = `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>${p.headers.get("etag")}</ETag></Part></CompleteMultipartUpload>`;
    const done = await signedFetch(env, { method: "POST", path, query: [["uploadId", uploadId]], body: xml, headers: { "x-request-id": `mp-complete-${engine}` } });
    expect(done.status).toBe(200);
    await done.text();

    const create = await accessLine(`mp-create-${engine}`);
    expect(create).toMatchObject({ method: "POST", status: 200, operation: "CreateMultipartUpload" });
    expect(create.bytes_in).toBeUndefined();
    expect(await accessLine(`mp-part-${engine}`)).toMatchObject({ method: "PUT", status: 200, bytes: 0, operation: "UploadPart", bytes_in: 300_000 });
    expect(await accessLine(`mp-complete-${engine}`)).toMatchObject({ method: "POST", status: 200, operation: "CompleteMultipartUpload", bytes_in: Buffer.byteLength(xml) });
    expect(await auditLine(`mp-part-${engine}`)).toMatchObject({ action: "s3:PutObject", operation: "UploadPart", bytes_in: 300_000 });
  });

  test("a CopyObject names its source (copy_source); a GetObject logs its operation and no bytes_in", async () => {
    expect((await put(`copy-src-${engine}`, "/up/log/src.bin", bytesOf(5000, 6))).status).toBe(200);
    const c = await signedFetch(env, { method: "PUT", path: "/up/log/dst.bin", headers: { "x-request-id": `copy-${engine}`, "x-amz-copy-source": "/up/log/src.bin" } });
    expect(c.status).toBe(200);
    await c.text();
    const copy = await accessLine(`copy-${engine}`);
    expect(copy).toMatchObject({ path: "/up/log/dst.bin", status: 200, operation: "CopyObject", copy_source: "up/log/src.bin" });
    expect(copy.bytes_in).toBeUndefined();
    expect(await auditLine(`copy-${engine}`)).toMatchObject({ action: "s3:PutObject", operation: "CopyObject", key: "log/dst.bin", copy_source: "up/log/src.bin" });

    const g = await signedFetch(env, { method: "GET", path: "/up/log/src.bin", headers: { "x-request-id": `get-${engine}` } });
    expect(g.status).toBe(200);
    expect((await g.arrayBuffer()).byteLength).toBe(5000);
    const get = await accessLine(`get-${engine}`);
    expect(get).toMatchObject({ method: "GET", status: 200, bytes: 5000, operation: "GetObject" });
    expect("bytes_in" in get).toBe(false);
    expect("copy_source" in get).toBe(false);
  });

  test("a CopyObject answered 200 with S3's <Error> keeps the upstream's request id in its line; one whose 200 holds no result names HTTP_200 (both were logged as the proxy's own failure)", async () => {
    await env.s3.put("up", "log/src200.bin", bytesOf(100, 7));
    const copy = async (key: string, body: string, id: string) => {
      env.s3.faults.set(`/up/log/${key}`, { kind: "reply", status: 200, body, headers: { "x-amz-request-id": id }, method: "PUT", times: 1 });
      const res = await signedFetch(env, { method: "PUT", path: `/up/log/${key}`, headers: { "x-request-id": `${key}-${engine}`, "x-amz-copy-source": "/up/log/src200.bin" } });
      return { status: res.status, code: /<Code>([^<]*)<\/Code>/.exec(await res.text())?.[1] };
    };
    const err = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`;
    expect(await copy("err200.bin", err, "7F1C2A3B4D5E6F70")).toEqual({ status: 503, code: "SlowDown" });
    expect(await copy("cut200.bin", "<CopyObjectResult><ETa", "0A1B2C3D4E5F6071")).toEqual({ status: 500, code: "InternalError" });
    const coded = await accessLine(`err200.bin-${engine}`);
    expect(coded).toMatchObject({ status: 503, operation: "CopyObject", s3_error: "SlowDown", s3_request_id: "7F1C2A3B4D5E6F70" });
    expect("upstream_error" in coded).toBe(false);
    expect(await accessLine(`cut200.bin-${engine}`)).toMatchObject({ status: 500, operation: "CopyObject", s3_error: "InternalError", s3_request_id: "0A1B2C3D4E5F6071", upstream_error: "HTTP_200" });
  });

  test("a write the upstream refuses for the proxy's own signature (a rotated key; GCS refusing a checksum so) is logged with the upstream's code, SignatureDoesNotMatch, as a read is; the client is told AccessDenied", async () => {
    env.s3.faults.set("/up/log/refused-sig.bin", { kind: "error", status: 403, code: "SignatureDoesNotMatch", message: "Invalid argument." });
    try {
      const write = await put(`sig-put-${engine}`, "/up/log/refused-sig.bin", bytesOf(100, 3));
      const del = await signedFetch(env, { method: "DELETE", path: "/up/log/refused-sig.bin", headers: { "x-request-id": `sig-del-${engine}` } });
      const read = await signedFetch(env, { method: "GET", path: "/up/log/refused-sig.bin", headers: { "x-request-id": `sig-get-${engine}` } });
      const told = async (r: Response) => [r.status, /<Code>([^<]*)<\/Code>/.exec(await r.text())?.[1]];
      expect([await told(write), await told(del), await told(read)]).toEqual([[403, "AccessDenied"], [403, "AccessDenied"], [403, "AccessDenied"]]);
      for (const [id, operation] of [[`sig-put-${engine}`, "PutObject"], [`sig-del-${engine}`, "DeleteObject"], [`sig-get-${engine}`, "GetObject"]]) {
        const l = await accessLine(id!);
        expect({ operation: l.operation, status: l.status, s3_error: l.s3_error, upstream: typeof l.s3_request_id }).toEqual({ operation, status: 403, s3_error: "SignatureDoesNotMatch", upstream: "string" });
      }
    } finally {
      env.s3.faults.clear();
    }
  });

  // The line did not say a request was presigned: a link that failed (expired, mis-signed) or a
  // download through one read like any signed request.
  test("a presigned request's line says presigned: true, verified or refused; a header-signed one has no such field", async () => {
    expect((await put(`pre-src-${engine}`, "/up/log/pre.bin", bytesOf(100, 7))).status).toBe(200);
    const url = (expires: number, now = Date.now()) =>
      presignUrl({ origin: `http://${host()}`, bucket: "up", key: "log/pre.bin", region: "us-east-1", ...WRITER, now, method: "GET", expires });
    const ok = await fetch(url(60), { headers: { "x-request-id": `pre-ok-${engine}` } });
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
    const expired = await fetch(url(1, Date.now() - 60_000), { headers: { "x-request-id": `pre-expired-${engine}` } });
    expect(expired.status).toBe(403);
    await expired.text();
    expect(await accessLine(`pre-ok-${engine}`)).toMatchObject({ status: 200, operation: "GetObject", presigned: true });
    expect(await accessLine(`pre-expired-${engine}`)).toMatchObject({ status: 403, presigned: true });
    expect("presigned" in (await accessLine(`pre-src-${engine}`))).toBe(false);
  });

  // A copy streamed between buckets of different keys moves the source's bytes through the proxy
  // into the destination, as an upload does: its line had no bytes_in, so those bytes showed nowhere.
  test("a streamed CopyObject and UploadPartCopy log the bytes they wrote as bytes_in", async () => {
    expect((await put(`scopy-src-${engine}`, "/up/log/scopy.bin", bytesOf(70_000, 8))).status).toBe(200);
    const c = await signedFetch(env, { method: "PUT", path: "/upalt/log/scopy-dst.bin", headers: { "x-request-id": `scopy-${engine}`, "x-amz-copy-source": "/up/log/scopy.bin" }, creds: COPIER });
    expect(c.status).toBe(200);
    await c.text();
    expect(await accessLine(`scopy-${engine}`)).toMatchObject({ status: 200, operation: "CopyObject", copy_source: "up/log/scopy.bin", bytes_in: 70_000 });
    const created = await signedFetch(env, { method: "POST", path: "/upalt/log/spart.bin", query: [["uploads", ""]], creds: COPIER });
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await created.text())![1]!;
    const p = await signedFetch(env, { method: "PUT", path: "/upalt/log/spart.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], headers: { "x-request-id": `spart-${engine}`, "x-amz-copy-source": "/up/log/scopy.bin", "x-amz-copy-source-range": "bytes=0-999" }, creds: COPIER });
    expect(p.status).toBe(200);
    await p.text();
    expect(await accessLine(`spart-${engine}`)).toMatchObject({ status: 200, operation: "UploadPartCopy", bytes_in: 1000 });
  });

  test("a copy source that parses is cut in the logs as one that does not is: any client can send one near the header limit", async () => {
    const key = "k".repeat(12_000);
    for (const [id, source] of [
      [`copy-long-key-${engine}`, `/up/${key}`],
      [`copy-long-version-${engine}`, `/up/log/src.bin?versionId=${key}`],
    ] as const) {
      // Unsigned: refused, but still labelled with the copy it names (a request nobody authenticated).
      const r = await fetch(`http://${host()}/up/log/dst.bin`, { method: "PUT", headers: { "x-request-id": id, "x-amz-copy-source": source } });
      expect(r.status).toBe(403);
      await r.text();
      for (const l of [await accessLine(id), await auditLine(id)]) {
        expect(l.operation).toBe("CopyObject");
        expect((l.copy_source as string).startsWith("up/")).toBe(true);
        expect((l.copy_source as string).length).toBeLessThanOrEqual(2048);
      }
    }
  });

  // The cut fell wherever the 2048th UTF-16 unit was: a source with a character outside the BMP
  // across it was written as half a surrogate pair (a lone \ud83d escape), which strict JSON
  // readers (RFC 7493, serde_json) refuse: the whole access and audit line was lost to them.
  test("a copy source cut for the logs never keeps half of a surrogate pair", async () => {
    const id = `copy-cut-pair-${engine}`;
    const source = `/up/${"k".repeat(2044)}${"%F0%9F%98%80".repeat(4)}`;
    const r = await fetch(`http://${host()}/up/log/dst.bin`, { method: "PUT", headers: { "x-request-id": id, "x-amz-copy-source": source } });
    expect(r.status).toBe(403);
    await r.text();
    const lone = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
    for (const l of [await accessLine(id), await auditLine(id)]) {
      const cut = l.copy_source as string;
      expect(cut.startsWith("up/kkk")).toBe(true);
      expect(cut.length).toBeLessThanOrEqual(2048);
      expect(lone.test(cut)).toBe(false);
    }
  });

  // A JWT's sub is JSON text, which may hold a lone surrogate ("\ud800"): it was written as that
  // escape in the access line (subject) and the audit line (identity), which strict JSON readers
  // refuse, for the plain front, STS, and the S3 requests of the session STS gave for the token.
  test("a JWT sub with a lone surrogate is logged with U+FFFD in its place", async () => {
    const lone = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
    const token = hs256({ sub: "a\ud800b", team: "a", role: "writer", exp: Math.floor(Date.now() / 1000) + 600 });
    const plain = await fetch(env.mainUrl("/teamw/log/none.txt"), { headers: { authorization: `Bearer ${token}`, "x-request-id": `lone-plain-${engine}` } });
    expect(plain.status).toBe(404);
    await plain.text();
    const form = `Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn:aws:iam::123456789012:role/r&RoleSessionName=lone&WebIdentityToken=${token}`;
    const sts = await fetch(`http://${host()}/`, { method: "POST", body: form, headers: { "content-type": "application/x-www-form-urlencoded", "x-request-id": `lone-sts-${engine}` } });
    const xml = await sts.text();
    expect(sts.status).toBe(200);
    const field = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)![1]!;
    const creds = { accessKeyId: field("AccessKeyId"), secretAccessKey: field("SecretAccessKey"), sessionToken: field("SessionToken") };
    const s3 = await signedFetch(env, { method: "GET", path: "/teamw/log/none.txt", creds, headers: { "x-request-id": `lone-s3-${engine}` } });
    expect(s3.status).toBe(404);
    await s3.text();
    for (const id of [`lone-plain-${engine}`, `lone-sts-${engine}`, `lone-s3-${engine}`]) {
      const [access, audit] = [await accessLine(id), await auditLine(id)];
      expect({ id, subject: access.subject, identity: audit.identity }).toEqual({ id, subject: "a\ufffdb", identity: "a\ufffdb" });
      expect(lone.test(String(access.subject)) || lone.test(String(audit.identity))).toBe(false);
    }
  });

  // The S3 front answers a refusal S3's bare AccessDenied; its access line had only
  // "error":"AccessDenied", so an operator could not tell which grant or claim rule was missing
  // (the plain front's line names the rule as `reason`).
  test("an S3-front AccessDenied names in the access line's reason the grant or rule that refused it", async () => {
    const session = async (claims: Record<string, unknown>) => {
      const token = hs256({ sub: "r", ...claims, exp: Math.floor(Date.now() / 1000) + 600 });
      const form = `Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn:aws:iam::123456789012:role/r&RoleSessionName=why&WebIdentityToken=${token}`;
      const xml = await (await fetch(`http://${host()}/`, { method: "POST", body: form, headers: { "content-type": "application/x-www-form-urlencoded" } })).text();
      const field = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)![1]!;
      return { accessKeyId: field("AccessKeyId"), secretAccessKey: field("SecretAccessKey"), sessionToken: field("SessionToken") };
    };
    const cases: Array<[string, Promise<Response>, string]> = [
      ["other-team", signedFetch(env, { method: "GET", path: "/teamw/log/why.txt", creds: await session({ team: "b" }), headers: { "x-request-id": `why-team-${engine}` } }), "bucket teamw's auth.claims: claim 'team' must equal a"],
      ["no-write-claim", signedFetch(env, { method: "PUT", path: "/teamw/log/why.txt", body: "x", creds: await session({ team: "a", role: "reader" }), headers: { "x-request-id": `why-role-${engine}` } }), "Writes need: claim 'role' must equal writer"],
      ["no-write-grant", signedFetch(env, { method: "PUT", path: "/up/log/why.txt", body: "x", creds: READER, headers: { "x-request-id": `why-grant-${engine}` } }), "identity reader's grant on bucket up has read, list; s3:PutObject needs write"],
      ["no-grant", signedFetch(env, { method: "GET", path: "/teamw/log/why.txt", creds: READER, headers: { "x-request-id": `why-bucket-${engine}` } }), "identity reader has no grant on bucket teamw (s3_api.credentials buckets)"],
      ["read-only", signedFetch(env, { method: "PUT", path: "/ro/log/why.txt", body: "x", headers: { "x-request-id": `why-ro-${engine}` } }), "bucket ro is read-only (its access is not read-write)"],
      ["unsigned", fetch(`http://${host()}/teamw/log/why.txt`, { headers: { "x-request-id": `why-anon-${engine}` } }), "an unsigned request may only GetObject or HeadObject a bucket without auth"],
    ];
    const ids = { "other-team": "team", "no-write-claim": "role", "no-write-grant": "grant", "no-grant": "bucket", "read-only": "ro", unsigned: "anon" } as Record<string, string>;
    for (const [name, answer, reason] of cases) {
      const r = await answer;
      expect({ name, status: r.status, body: (await r.text()).includes("<Code>AccessDenied</Code>") }).toEqual({ name, status: 403, body: true });
      const line = await accessLine(`why-${ids[name]}-${engine}`);
      expect({ name, error: line.error, reason: line.reason }).toEqual({ name, error: "AccessDenied", reason });
    }
  });

  // A DeleteObjects answers 200 with an AccessDenied per refused key; its access line said nothing
  // of why (one field for up to 1,000 keys: their count and the first one's reason).
  test("a DeleteObjects whose keys are refused names in the access line's reason how many and why the first was", async () => {
    const xml = `<Delete><Object><Key>log/why-a.txt</Key></Object><Object><Key></Key></Object><Object><Key>log/why-b.txt</Key><VersionId>v1</VersionId></Object></Delete>`;
    const md5 = new Bun.CryptoHasher("md5").update(xml).digest("base64");
    const r = await signedFetch(env, { method: "POST", path: "/up", query: [["delete", ""]], body: xml, headers: { "content-md5": md5, "x-request-id": `why-batch-${engine}` }, creds: NODELETE });
    expect(r.status).toBe(200);
    expect((await r.text()).match(/<Code>AccessDenied<\/Code>/g)?.length).toBe(2);
    const line = await accessLine(`why-batch-${engine}`);
    expect(line).toMatchObject({ operation: "DeleteObjects", status: 200, reason: "AccessDenied for 2 of 3 keys; the first, log/why-a.txt: identity nodelete's grant on bucket up has read, list, write; s3:DeleteObject needs delete" });
    expect(line.error).toBeUndefined();
  });

  // S3's refusal of a preflight names none of origin, method or header (and a browser shows its
  // page no body anyway): the access line said only "error":"AccessForbidden", while the plain
  // front's says which was refused.
  test("a CORS preflight the S3 listener refuses names in the access line's reason what was refused", async () => {
    const cases: Array<[string, string, string, string | undefined, string]> = [
      ["header", "/upweb/k.txt", APP, "content-type,amz-sdk-request", "CORS preflight refused: the header amz-sdk-request is not allowed"],
      ["origin", "/upweb/k.txt", "http://evil.example.test", undefined, "CORS preflight refused: the origin is not allowed"],
      ["method", "/upweb/k.txt", APP, undefined, "CORS preflight refused: the method DELETE is not allowed"],
      ["no-cors", "/up/k.txt", APP, undefined, "CORS preflight refused: bucket up has no cors"],
      ["no-bucket", "/nope/k.txt", APP, undefined, "CORS preflight refused: no bucket nope is configured"],
      ["no-sts-cors", "/", APP, undefined, "CORS preflight refused: s3_api.sts.cors is not set"],
    ];
    for (const [name, path, origin, headers, reason] of cases) {
      const method = name === "method" ? "DELETE" : name === "no-sts-cors" ? "POST" : "PUT";
      const r = await fetch(`http://${host()}${path}`, { method: "OPTIONS", headers: { origin, "access-control-request-method": method, ...(headers ? { "access-control-request-headers": headers } : {}), "x-request-id": `cors-${name}-${engine}` } });
      expect({ name, status: r.status, body: (await r.text()).includes("<Code>AccessForbidden</Code>") }).toEqual({ name, status: 403, body: true });
      const line = await accessLine(`cors-${name}-${engine}`);
      expect({ name, error: line.error, reason: line.reason }).toEqual({ name, error: "AccessForbidden", reason });
    }
  });

  test("a plain-front PUT logs its bytes_in (and no operation: that is the S3 front's)", async () => {
    const token = hs256({ sub: "w", team: "a", role: "writer", exp: Math.floor(Date.now() / 1000) + 600 });
    const body = bytesOf(100_000, 7);
    const r = await fetch(env.mainUrl("/teamw/log/plain.bin"), { method: "PUT", body, headers: { authorization: `Bearer ${token}`, "x-request-id": `plain-put-${engine}` } });
    expect(r.status).toBe(200);
    await r.text();
    const l = await accessLine(`plain-put-${engine}`);
    expect(l).toMatchObject({ method: "PUT", status: 200, bytes_in: 100_000 });
    expect(l.operation).toBeUndefined();
  });

  /**
   * A PUT declaring 1,000,000 bytes whose client sends 300,000, waits until the proxy is sending
   * them upstream, then goes away.
   */
  async function cutPut(id: string, key: string, payloadHash: string): Promise<void> {
    const signed = new S3Signer(WRITER, "us-east-1").signRequest({ method: "PUT", host: host(), path: `/up/${key}`, payloadHash });
    const head = lines(`PUT /up/${key} HTTP/1.1`, { host: host(), "content-length": "1000000", "x-request-id": id, ...signed.headers });
    const sock = connect(env.port, "127.0.0.1");
    sock.on("error", () => {});
    await new Promise<void>((resolve) => sock.on("connect", resolve));
    sock.write(head.join("\r\n") + "\r\n\r\n");
    sock.write(bytesOf(300_000, 8));
    // the upstream PUT has begun: the proxy is passing the body on
    await waitFor(() => env.s3.requests.some((e) => !e.admin && e.method === "PUT" && e.pathname === `/up/${key}`), { timeoutMs: 10_000, message: "the upstream PUT" });
    sock.destroy();
  }

  test("an upload the client cuts half-way is never logged with its declared length", async () => {
    // verified on its way (a payload hash that the cut body never reaches): what came is counted
    await cutPut(`cut-sha-${engine}`, "log/cut-sha.bin", "a".repeat(64));
    const counted = await accessLine(`cut-sha-${engine}`);
    expect(counted.operation).toBe("PutObject");
    expect(counted.bytes_in).toBeGreaterThan(0);
    expect(counted.bytes_in).toBeLessThanOrEqual(300_000);
    // passed on untouched (UNSIGNED-PAYLOAD, no checksum; on Bun handed to fetch natively): what
    // came of it is not counted, and with no upstream 2xx its declared length is not logged either
    await cutPut(`cut-framed-${engine}`, "log/cut-framed.bin", "UNSIGNED-PAYLOAD");
    const framed = await accessLine(`cut-framed-${engine}`);
    expect(framed.operation).toBe("PutObject");
    expect(framed.bytes_in).toBeUndefined();
    expect(await env.s3.exists("up", "log/cut-framed.bin")).toBe(false);
  });
});
