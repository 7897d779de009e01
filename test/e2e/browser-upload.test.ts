/**
 * The Mizuchi use case in a real browser (Debian's chromium through playwright-core): a page on
 * another origin holds a JWT, asks the plain front for a presigned PUT URL, uploads a file with
 * fetch straight to the proxy's S3 listener, and reads it back (presigned GET and the plain front),
 * byte-exact, with the ETag readable from script. Every request is cross-origin, so the browser
 * makes real CORS preflights. A page on an origin the bucket does not list cannot do any of it:
 * its fetches fail with a CORS error.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout } from "bun:test";
import { launchBrowser } from "../clients/browser.ts";
import { clientTest } from "../clients/run.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucket, startWriteEnv, token, WRITER, type WriteEnv } from "./plain-write-env.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SIZE = 1024 * 1024 + 3;
/** The file's bytes, computed the same way in the page and here. */
const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + (i >> 8)) & 0xff);

let s3: S3Fixture;
let env: WriteEnv;
let app: ReturnType<typeof Bun.serve>;
let evil: ReturnType<typeof Bun.serve>;

const page = () => new Response("<!doctype html><title>uploader</title><p>uploader</p>", { headers: { "content-type": "text/html" } });

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }, { name: "ro" }], credentials: [WRITER] });
  app = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: page });
  evil = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: page });
  const cors = `    cors: { allowed_origins: ["http://127.0.0.1:${app.port}"], allowed_methods: [GET, PUT, POST], allowed_headers: [authorization, content-type, "x-amz-meta-*"], expose_headers: [ETag, x-amz-meta-author] }\n`;
  env = await startWriteEnv({ s3Api: true, buckets: (ep) => bucket("web", "/web", "rw", ep, `    access: read-write\n    auth: { enabled: true }\n${cors}`) }, s3);
});

afterAll(async () => {
  await env?.stop();
  app?.stop(true);
  evil?.stop(true);
  await s3?.stop();
});

interface PageResult {
  presignStatus: number;
  putStatus: number;
  etag: string | null;
  viaPresigned: number[] | string;
  viaPlain: number[] | string;
  /** The URL's headers (content type and metadata, signed), and the metadata read back from script. */
  headers: Record<string, string>;
  author: string | null;
  /** The same reads with credentials: "include" (axios' withCredentials): refused unless Access-Control-Allow-Credentials: true. */
  credentialed: string[];
}

/** Runs in the page: presign, upload, read back. Byte arrays come back as hex digests to keep the payload small. */
async function uploadInPage(a: { plain: string; jwt: string; size: number }): Promise<PageResult> {
  const bytes = new Uint8Array(a.size);
  for (let i = 0; i < a.size; i++) bytes[i] = (i * 31 + (i >> 8)) & 0xff;
  const auth = { authorization: `Bearer ${a.jwt}` };
  const hex = async (buf: ArrayBuffer) => [...new Uint8Array(await crypto.subtle.digest("SHA-256", buf))];
  const presign = await fetch(`${a.plain}/web/from-browser/photo.bin?presign&method=PUT&content_type=application/octet-stream&meta_author=browser-user`, { method: "POST", headers: auth });
  const p = (await presign.json()) as { url: string; headers: Record<string, string> };
  const put = await fetch(p.url, { method: "PUT", body: new Blob([bytes]), headers: p.headers });
  const getUrl = (await (await fetch(`${a.plain}/web/from-browser/photo.bin?presign&method=GET`, { method: "POST", headers: auth })).json()) as { url: string };
  const viaPresigned = await fetch(getUrl.url);
  const viaPlain = await fetch(`${a.plain}/web/from-browser/photo.bin`, { headers: auth });
  const credentialed: string[] = [];
  for (const [url, headers] of [[getUrl.url, {}], [`${a.plain}/web/from-browser/photo.bin`, auth]] as const) {
    try {
      const res = await fetch(url, { headers, credentials: "include" });
      credentialed.push(`status ${res.status} ${(await res.arrayBuffer()).byteLength}`);
    } catch (e) {
      credentialed.push(`${(e as Error).name}: ${(e as Error).message}`);
    }
  }
  return {
    credentialed,
    presignStatus: presign.status,
    headers: p.headers,
    author: viaPlain.headers.get("x-amz-meta-author"),
    putStatus: put.status,
    etag: put.headers.get("etag"),
    viaPresigned: viaPresigned.ok ? await hex(await viaPresigned.arrayBuffer()) : `status ${viaPresigned.status}`,
    viaPlain: viaPlain.ok ? await hex(await viaPlain.arrayBuffer()) : `status ${viaPlain.status}`,
  };
}

// The two tests run at once: each has a browser of its own and writes keys of its own.
clientTest("chromium").concurrent(
  "a page on an allowed origin presigns, PUTs a file straight to the S3 listener and reads it back byte-exact; another origin is refused by the browser",
  async () => {
    await using b = await launchBrowser();
    const expected = pattern(SIZE);
    const digest = [...new Uint8Array(await crypto.subtle.digest("SHA-256", expected))];
    const jwt = token({ sub: "browser-user" });

    await b.page.goto(`http://127.0.0.1:${app.port}/`);
    const r = await b.page.evaluate(uploadInPage, { plain: `http://127.0.0.1:${env.port}`, jwt, size: SIZE });
    expect(r.presignStatus).toBe(200);
    expect(r.putStatus).toBe(200);
    // the page sends the signed metadata header (a preflighted one) and reads it back (exposed)
    expect([r.headers, r.author]).toEqual([{ "content-type": "application/octet-stream", "x-amz-meta-author": "browser-user" }, "browser-user"]);
    expect(r.etag).toBe(`"${new Bun.CryptoHasher("md5").update(expected).digest("hex")}"`);
    expect(r.viaPresigned).toEqual(digest);
    expect(r.viaPlain).toEqual(digest);
    expect(r.credentialed).toEqual([`status 200 ${SIZE}`, `status 200 ${SIZE}`]);
    expect(await s3.read("rw", "from-browser/photo.bin")).toEqual(expected);
    expect(b.errors).toEqual([]);

    // Another origin: the same calls fail in the browser (CORS), and nothing new is stored.
    await b.page.goto(`http://127.0.0.1:${evil.port}/`);
    const refused = await b.page.evaluate(
      async (a: { plain: string; s3: string; jwt: string }) => {
        const tryFetch = async (url: string, init: RequestInit) => {
          try {
            const res = await fetch(url, init);
            return `status ${res.status}`;
          } catch (e) {
            return `${(e as Error).name}: ${(e as Error).message}`;
          }
        };
        return {
          presign: await tryFetch(`${a.plain}/web/evil.bin?presign&method=PUT`, { method: "POST", headers: { authorization: `Bearer ${a.jwt}` } }),
          put: await tryFetch(`${a.s3}/web/evil.bin`, { method: "PUT", body: "evil", headers: { "content-type": "application/octet-stream" } }),
          get: await tryFetch(`${a.plain}/web/from-browser/photo.bin`, { headers: { authorization: `Bearer ${a.jwt}` } }),
        };
      },
      { plain: `http://127.0.0.1:${env.port}`, s3: env.s3Endpoint!, jwt },
    );
    expect(refused).toEqual({ presign: "TypeError: Failed to fetch", put: "TypeError: Failed to fetch", get: "TypeError: Failed to fetch" });
    expect(await s3.exists("rw", "evil.bin")).toBe(false);
    // the browser reports each refusal as a CORS error in the console
    expect(b.errors.some((e) => /CORS policy/.test(e))).toBe(true);
  },
  90_000,
);

/** Runs in the page: a presigned POST policy, then S3's form upload with FormData (the file last). */
async function formUploadInPage(a: { plain: string; jwt: string; size: number; maxSize: number }) {
  const bytes = new Uint8Array(a.size);
  for (let i = 0; i < a.size; i++) bytes[i] = (i * 31 + (i >> 8)) & 0xff;
  const presign = await fetch(`${a.plain}/web/from-form/photo.bin?presign&method=POST&content_type=image/png&max_size=${a.maxSize}`, { method: "POST", headers: { authorization: `Bearer ${a.jwt}` } });
  const p = (await presign.json()) as { url: string; fields: Record<string, string> };
  const form = new FormData();
  for (const [k, v] of Object.entries(p.fields)) form.append(k, v);
  form.append("success_action_status", "201");
  form.append("file", new Blob([bytes]), "photo.bin");
  const extra = await fetch(p.url, { method: "POST", body: form });
  // the same form without the success_action_status field the policy does not name
  const form2 = new FormData();
  for (const [k, v] of Object.entries(p.fields)) form2.append(k, v);
  form2.append("file", new Blob([bytes]), "photo.bin");
  const post = await fetch(p.url, { method: "POST", body: form2 });
  // a file past the policy's maximum: S3's EntityTooLarge, naming the bound
  const form3 = new FormData();
  for (const [k, v] of Object.entries(p.fields)) form3.append(k, v);
  form3.append("file", new Blob([new Uint8Array(3 * a.maxSize + 4097)]), "photo.bin");
  const over = await fetch(p.url, { method: "POST", body: form3 });
  return { presignStatus: presign.status, url: p.url, extraStatus: extra.status, extraBody: await extra.text(), postStatus: post.status, etag: post.headers.get("etag"), overStatus: over.status, overBody: await over.text() };
}

clientTest("chromium").concurrent(
  "a page on an allowed origin gets a presigned POST policy and uploads with an HTML-form POST (FormData) to the S3 listener, byte-exact; a field the policy does not name is refused",
  async () => {
    await using b = await launchBrowser();
    const expected = pattern(SIZE);
    await b.page.goto(`http://127.0.0.1:${app.port}/`);
    const r = await b.page.evaluate(formUploadInPage, { plain: `http://127.0.0.1:${env.port}`, jwt: token({ sub: "form-user" }), size: SIZE, maxSize: 2 * SIZE });
    expect(r.url).toBe(`${env.s3Endpoint}/web`);
    expect([r.presignStatus, r.extraStatus, r.postStatus]).toEqual([200, 403, 204]);
    expect(r.extraBody).toContain("Extra input fields: success_action_status");
    expect([r.overStatus, /<Code>(\w+)</.exec(r.overBody)?.[1], /<ProposedSize>(\d+)</.exec(r.overBody)?.[1], /<MaxSizeAllowed>(\d+)</.exec(r.overBody)?.[1]]).toEqual([400, "EntityTooLarge", undefined, String(2 * SIZE)]);
    expect(r.etag).toBe(`"${new Bun.CryptoHasher("md5").update(expected).digest("hex")}"`);
    expect(await s3.read("rw", "from-form/photo.bin")).toEqual(expected);
    expect(b.errors.filter((e) => !/403|400/.test(e))).toEqual([]);
  },
  90_000,
);
