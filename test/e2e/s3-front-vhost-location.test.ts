/**
 * The Location an upload answers (PostObject's header and PostResponse, CompleteMultipartUpload's
 * <Location>) on a virtual-hosted request (`<bucket>.<s3_api.domain>`) is the object's
 * virtual-hosted URL, as S3 gives it: the path is the key alone. It was path-style on the
 * virtual-hosted host (`http://up.s3.test/up/key`), a URL that names key `up/key` there.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { connect } from "node:net";
import { presignPost } from "../../src/fronts/presign.ts";
import { S3Signer } from "../../src/s3/sigv4.ts";
import { startUploadFixture, uploadYaml, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";
import { startFrontsOn } from "./s3-front-helpers.ts";

setDefaultTimeout(30_000);

let env: UploadEnv;
beforeAll(async () => {
  const s3 = await startUploadFixture();
  const yaml = uploadYaml(s3.endpoint).replace("s3_api:\n  address: 127.0.0.1\n", "s3_api:\n  address: 127.0.0.1\n  domain: s3.test\n");
  expect(yaml).toContain("domain: s3.test");
  env = await startFrontsOn(yaml, s3, true);
});
afterAll(async () => {
  await env?.[Symbol.asyncDispose]();
});

const vhost = () => `up.s3.test:${env.port}`;

/** A request signed for `host` (virtual-hosted: `path` is "/<key>"), sent to the listener with that Host. */
function vhostFetch(method: string, path: string, query: Array<[string, string]>, body?: string): Promise<Response> {
  const signed = new S3Signer(WRITER, "us-east-1").signRequest({ method, host: vhost(), path, query, headers: {}, payloadHash: "UNSIGNED-PAYLOAD" });
  return fetch(`${env.endpoint}${signed.path}${signed.query ? `?${signed.query}` : ""}`, { method, headers: { ...signed.headers, host: vhost() }, body });
}

test("PostObject on a virtual-hosted host: Location (header and PostResponse) is the virtual-hosted URL; path-style stays path-style", async () => {
  const now = Math.floor(Date.now() / 1000) * 1000;
  const post = (origin: string, virtualHosted: boolean, key: string, host: string) => {
    const p = presignPost({ origin, virtualHosted, bucket: "up", key, region: "us-east-1", accessKeyId: WRITER.accessKeyId, secretAccessKey: WRITER.secretAccessKey, now, expiresAt: now + 300_000, maxSize: 1000, successStatus: "201" });
    const form = new FormData();
    for (const [k, v] of Object.entries(p.fields)) form.append(k, v);
    form.append("file", new Blob(["hi"]), "f.txt");
    return fetch(`${env.endpoint}${new URL(p.url).pathname}`, { method: "POST", body: form, headers: { host } });
  };
  const v = await post(`http://${vhost()}`, true, "vh/a b.txt", vhost());
  expect(v.status).toBe(201);
  expect(v.headers.get("location")).toBe(`http://${vhost()}/vh/a%20b.txt`);
  expect(await v.text()).toContain(`<Location>http://${vhost()}/vh/a%20b.txt</Location>`);
  const p = await post(env.endpoint, false, "ph/a.txt", `127.0.0.1:${env.port}`);
  expect(p.status).toBe(201);
  expect(p.headers.get("location")).toBe(`${env.endpoint}/up/ph/a.txt`);
});

test("CompleteMultipartUpload on a virtual-hosted host: <Location> is the virtual-hosted URL", async () => {
  const created = await (await vhostFetch("POST", "/mp/obj.txt", [["uploads", ""]])).text();
  const id = /<UploadId>(.*?)<\/UploadId>/.exec(created)?.[1];
  expect(id).toBeDefined();
  const part = await vhostFetch("PUT", "/mp/obj.txt", [["partNumber", "1"], ["uploadId", id!]], "part one");
  expect(part.status).toBe(200);
  const xml = `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>${part.headers.get("etag")}</ETag></Part></CompleteMultipartUpload>`;
  const done = await vhostFetch("POST", "/mp/obj.txt", [["uploadId", id!]], xml);
  expect(done.status).toBe(200);
  expect(await done.text()).toContain(`<Location>http://${vhost()}/mp/obj.txt</Location>`);
  expect(new TextDecoder().decode((await env.s3.read("up", "mp/obj.txt"))!)).toBe("part one");
});

test("the virtual host is read in lowercase, as S3 reads it: UP.s3.test is bucket up; a host naming no bucket with uppercase letters is NoSuchBucket saying such a bucket is reached path-style only", async () => {
  const signedFor = (host: string) => {
    const signed = new S3Signer(WRITER, "us-east-1").signRequest({ method: "GET", host, path: "/", query: [["list-type", "2"]], headers: {}, payloadHash: "UNSIGNED-PAYLOAD" });
    return fetch(`${env.endpoint}${signed.path}?${signed.query}`, { headers: { ...signed.headers, host } });
  };
  const up = await signedFor(`UP.s3.test:${env.port}`);
  expect([up.status, /<Name>([^<]*)/.exec(await up.text())?.[1]]).toEqual([200, "up"]);
  const mixed = await signedFor(`MyBucket.s3.test:${env.port}`);
  const body = await mixed.text();
  expect([mixed.status, /<Code>(\w+)/.exec(body)?.[1], /<BucketName>([^<]*)/.exec(body)?.[1]]).toEqual([404, "NoSuchBucket", "mybucket"]);
  expect(body).toContain("a bucket whose name has uppercase letters is reached path-style only");
  // (a lowercase host naming no bucket: S3's plain words)
  expect(await (await signedFor(`nope.s3.test:${env.port}`)).text()).toContain("<Message>The specified bucket does not exist</Message>");
});

/** A vhost request signed for `path` and written byte for byte on a socket (fetch turns `///k` into `/k`); the raw answer. */
function vhostRaw(method: string, path: string, body = ""): Promise<string> {
  const signed = new S3Signer(WRITER, "us-east-1").signRequest({ method, host: vhost(), path, query: [], headers: {}, payloadHash: "UNSIGNED-PAYLOAD" });
  const head = [`${method} ${signed.path} HTTP/1.1`, `host: ${vhost()}`, ...Object.entries(signed.headers).map(([k, v]) => `${k}: ${v}`), `content-length: ${body.length}`, "connection: close"];
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = connect(env.port, "127.0.0.1", () => sock.write(`${head.join("\r\n")}\r\n\r\n${body}`));
    sock.on("data", (d: Buffer) => chunks.push(d));
    sock.on("error", reject);
    sock.on("close", () => resolve(Buffer.concat(chunks).toString()));
  });
}

test("virtual-hosted, a key starting with '//' (target `///k`) is 400 InvalidArgument naming the empty segment, as path-style and the node engine answer it, nothing upstream; it was SignatureDoesNotMatch on the bun engine (its listener hands `///k` over as a dot segment), as if the secret were wrong", async () => {
  for (const [method, path] of [["PUT", "///double.txt"], ["GET", "///double.txt"], ["DELETE", "////a/b.txt"], ["GET", "//lead.txt"]] as const) {
    env.mark();
    const raw = await vhostRaw(method, path, method === "PUT" ? "x" : "");
    expect([method, path, raw.slice(0, 12), /<Code>(\w+)/.exec(raw)?.[1]]).toEqual([method, path, "HTTP/1.1 400", "InvalidArgument"]);
    expect(raw).toContain("empty path segment");
    expect(env.upstreamCalls()).toEqual([]);
  }
});
