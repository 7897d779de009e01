/**
 * Browser multipart uploads (the Mizuchi use case with files too big for one PUT): a page that
 * holds a JWT exchanges it for temporary credentials at the S3 listener's STS endpoint
 * (AssumeRoleWithWebIdentity, allowed for its origin by s3_api.sts.cors), then runs the real AWS
 * SDK in the browser (client-s3 + lib-storage's Upload, bundled for the browser) to upload a file
 * in parts straight to the S3 front and read it back. Debian's chromium through playwright-core:
 * every request is cross-origin, with real preflights, the ETag of each part read from script.
 * A page on another origin gets no credentials (the browser refuses the STS answer). The bucket's
 * cors keeps the default expose_headers: the ETag and the checksums, which the SDK reads from each
 * UploadPart answer and must send back in CompleteMultipartUpload.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { launchBrowser } from "../clients/browser.ts";
import { clientTest } from "../clients/run.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucket, startWriteEnv, token, WRITER, type WriteEnv } from "./plain-write-env.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

/** Three parts of lib-storage's 5 MiB minimum, the last one short. */
const SIZE = 11 * 1024 * 1024 + 5;
const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + (i >> 8)) & 0xff);

let s3: S3Fixture;
let env: WriteEnv;
let app: ReturnType<typeof Bun.serve>;
let evil: ReturnType<typeof Bun.serve>;
let sdk: string;

beforeAll(async () => {
  const built = await Bun.build({ entrypoints: [join(import.meta.dir, "browser-sdk-entry.ts")], target: "browser", format: "esm", minify: true });
  if (!built.success) throw new Error(`bundling the SDK for the browser failed: ${built.logs.join("\n")}`);
  sdk = await built.outputs[0]!.text();
  const serve = (req: Request) =>
    new URL(req.url).pathname === "/sdk.js"
      ? new Response(sdk, { headers: { "content-type": "text/javascript" } })
      : new Response("<!doctype html><title>uploader</title><p>uploader</p>", { headers: { "content-type": "text/html" } });
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }, { name: "ro" }], credentials: [WRITER] });
  app = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: serve });
  evil = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: serve });
  const origin = `http://127.0.0.1:${app.port}`;
  env = await startWriteEnv(
    {
      s3Api: true,
      // The SDK's own headers (x-amz-user-agent, amz-sdk-*) make the STS call a preflighted one.
      stsExtra: `cors: { allowed_origins: ["${origin}"], allowed_headers: [content-type, x-amz-user-agent, amz-sdk-invocation-id, amz-sdk-request] }`,
      buckets: (ep) =>
        bucket("web", "/web", "rw", ep, `    access: read-write\n    auth: { enabled: true }\n    cors: { allowed_origins: ["${origin}"], allowed_methods: [GET, HEAD, PUT, POST, DELETE], allowed_headers: ["*"] }\n`),
    },
    s3,
  );
});

afterAll(async () => {
  await env?.stop();
  app?.stop(true);
  evil?.stop(true);
  await s3?.stop();
});

/** Runs in the page: STS with the JWT, then the SDK's multipart Upload and a GetObject. */
async function multipartInPage(a: { s3: string; jwt: string; size: number }) {
  const bytes = new Uint8Array(a.size);
  for (let i = 0; i < a.size; i++) bytes[i] = (i * 31 + (i >> 8)) & 0xff;
  const form = new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: "arn:aws:iam::123456789012:role/web", RoleSessionName: "browser", WebIdentityToken: a.jwt });
  const sts = await fetch(`${a.s3}/`, { method: "POST", body: form, headers: { "x-amz-user-agent": "aws-sdk-js/3 browser", "amz-sdk-request": "attempt=1; max=1" } });
  // @ts-ignore: DOMParser is the page's (the project's types are Bun's, without the DOM)
  const xml = new DOMParser().parseFromString(await sts.text(), "application/xml");
  const field = (name: string) => xml.getElementsByTagName(name)[0]?.textContent ?? "";
  const credentials = { accessKeyId: field("AccessKeyId"), secretAccessKey: field("SecretAccessKey"), sessionToken: field("SessionToken") };
  // @ts-ignore: the page's module, served by the app's origin
  const { S3Client, Upload, GetObjectCommand } = await import("/sdk.js");
  const client = new S3Client({ endpoint: a.s3, region: "us-east-1", forcePathStyle: true, credentials, maxAttempts: 1 });
  const parts: number[] = [];
  const upload = new Upload({ client, params: { Bucket: "web", Key: "from-browser/big.bin", Body: new Blob([bytes]), ContentType: "application/octet-stream" }, partSize: 5 * 1024 * 1024, queueSize: 2 });
  upload.on("httpUploadProgress", (p: { part?: number }) => p.part !== undefined && parts.push(p.part));
  const done = await upload.done();
  const got = await client.send(new GetObjectCommand({ Bucket: "web", Key: "from-browser/big.bin" }));
  const back: Uint8Array<ArrayBuffer> = await got.Body.transformToByteArray();
  const hex = async (b: Uint8Array<ArrayBuffer>) => [...new Uint8Array(await crypto.subtle.digest("SHA-256", b))];
  return { stsStatus: sts.status, keyPrefix: credentials.accessKeyId.slice(0, 4), etag: done.ETag as string, parts: [...new Set(parts)].sort(), back: await hex(back), length: back.length };
}

clientTest("chromium")(
  "a page on an allowed origin gets temporary credentials from STS and uploads in parts with the AWS SDK in the browser, byte-exact; another origin gets no credentials",
  async () => {
    await using b = await launchBrowser();
    const expected = pattern(SIZE);
    const jwt = token({ sub: "browser-user" });
    await b.page.goto(`http://127.0.0.1:${app.port}/`);
    const r = await b.page.evaluate(multipartInPage, { s3: env.s3Endpoint!, jwt, size: SIZE });
    expect(r.stsStatus).toBe(200);
    expect(r.keyPrefix).toBe("ASIA");
    expect(r.parts).toEqual([1, 2, 3]);
    expect(r.etag).toMatch(/^"[0-9a-f]{32}-3"$/); // a multipart ETag: three parts
    expect(r.length).toBe(SIZE);
    expect(r.back).toEqual([...new Uint8Array(await crypto.subtle.digest("SHA-256", expected))]);
    expect(await s3.read("rw", "from-browser/big.bin")).toEqual(expected);
    expect(b.errors).toEqual([]);

    // Another origin: the STS answer is refused by the browser; no credentials reach its script.
    await b.page.goto(`http://127.0.0.1:${evil.port}/`);
    const refused = await b.page.evaluate(async (a: { s3: string; jwt: string }) => {
      const form = new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: "arn:aws:iam::123456789012:role/web", RoleSessionName: "evil", WebIdentityToken: a.jwt });
      try {
        const res = await fetch(`${a.s3}/`, { method: "POST", body: form });
        return `status ${res.status}: ${(await res.text()).slice(0, 80)}`;
      } catch (e) {
        return `${(e as Error).name}: ${(e as Error).message}`;
      }
    }, { s3: env.s3Endpoint!, jwt });
    expect(refused).toBe("TypeError: Failed to fetch");
    expect(b.errors.some((e) => /CORS policy/.test(e))).toBe(true);
  },
  120_000,
);
