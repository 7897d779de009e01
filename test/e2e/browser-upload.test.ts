/**
 * The Mizuchi use case in a real browser (Debian's chromium through playwright-core): a page on
 * another origin holds a JWT, asks the plain front for a presigned PUT URL, uploads a file with
 * fetch straight to the proxy's S3 listener, and reads it back (presigned GET and the plain front),
 * byte-exact, with the ETag readable from script. Every request is cross-origin, so the browser
 * makes real CORS preflights. A page on an origin the bucket does not list cannot do any of it:
 * its fetches fail with a CORS error. The rest of the browser flows too: a multipart upload the
 * page drives with URLs its server presigns, a 30 MiB XHR upload with progress events, refusals
 * read while the body still goes out, uploads aborted mid-body (nothing stored), a real <form>
 * whose policy redirects. One Chromium for the file, a context per test.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout } from "bun:test";
import { launchBrowser, type BrowserSession } from "../clients/browser.ts";
import { clientTest } from "../clients/run.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { amzDate, canonicalQuery, canonicalRequest, credentialScope, deriveSigningKey, signature, stringToSign } from "../../src/s3/sigv4.ts";
import { bucket, startWriteEnv, token, WRITER, type WriteEnv } from "./plain-write-env.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SIZE = 1024 * 1024 + 3;
const BIG = 30 * 1024 * 1024;
/** The file's bytes, computed the same way in the page and here. */
const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + (i >> 8)) & 0xff);

let s3: S3Fixture;
let env: WriteEnv;
let app: ReturnType<typeof Bun.serve>;
let evil: ReturnType<typeof Bun.serve>;
/** One Chromium for the file, started by the first test that needs it; each test has a context of its own. */
let chromium: Promise<BrowserSession> | undefined;
const openPage = async () => (await (chromium ??= launchBrowser())).openPage();

const page = () => new Response("<!doctype html><title>uploader</title><p>uploader</p>", { headers: { "content-type": "text/html" } });

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }, { name: "ro" }], credentials: [WRITER] });
  app = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: page });
  evil = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: page });
  const cors = `    cors: { allowed_origins: ["http://127.0.0.1:${app.port}"], allowed_methods: [GET, PUT, POST, DELETE], allowed_headers: [authorization, content-type, "x-amz-meta-*"], expose_headers: [ETag, x-amz-meta-author] }\n`;
  // uploads up to 30 MiB (the XHR case), plain PUTs and presigned PUT URLs alike
  env = await startWriteEnv({ s3Api: true, server: `  security_limits: { max_body_size: ${BIG} }\n`, buckets: (ep) => bucket("web", "/web", "rw", ep, `    access: read-write\n    auth: { enabled: true }\n${cors}`) }, s3);
});

afterAll(async () => {
  await (await chromium?.catch(() => undefined))?.close();
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

// The tests run at once: each has a browser context of its own (one Chromium) and writes keys of its own.
clientTest("chromium").concurrent(
  "a page on an allowed origin presigns, PUTs a file straight to the S3 listener and reads it back byte-exact; another origin is refused by the browser",
  async () => {
    await using b = await openPage();
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
    await using b = await openPage();
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

/** STS session credentials for a token's user, as an app's server holds them to presign for its pages. */
async function sessionFor(jwt: string): Promise<{ id: string; secret: string; token: string }> {
  const form = new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: "arn:aws:iam::123456789012:role/web", RoleSessionName: "presigner", WebIdentityToken: jwt });
  const xml = await (await fetch(`${env.s3Endpoint}/`, { method: "POST", body: form })).text();
  const field = (n: string) => new RegExp(`<${n}>([^<]*)</${n}>`).exec(xml)?.[1] ?? "";
  return { id: field("AccessKeyId"), secret: field("SecretAccessKey"), token: field("SessionToken") };
}

/** A query-signed S3-front URL (host signed, UNSIGNED-PAYLOAD), as an app's server presigns multipart calls (Uppy's AwsS3 does). */
function presignCall(c: { id: string; secret: string; token: string }, method: string, path: string, query: Array<[string, string]>): string {
  const date = amzDate(new Date());
  const scope = credentialScope(date.slice(0, 8), "us-east-1", "s3");
  const q = canonicalQuery([...query, ["X-Amz-Algorithm", "AWS4-HMAC-SHA256"], ["X-Amz-Credential", `${c.id}/${scope}`], ["X-Amz-Date", date], ["X-Amz-Expires", "300"], ["X-Amz-Security-Token", c.token], ["X-Amz-SignedHeaders", "host"]]);
  const creq = canonicalRequest(method, path, q, `host:${new URL(env.s3Endpoint!).host}\n`, "host", "UNSIGNED-PAYLOAD");
  return `${env.s3Endpoint}${path}?${q}&X-Amz-Signature=${signature(deriveSigningKey(c.secret, date.slice(0, 8), "us-east-1", "s3"), stringToSign(date, scope, creq))}`;
}

/** Runs in the page: the rest of the browser flows, each answer read from script. */
async function flowsInPage(a: { plain: string; jwt: string; big: number }) {
  // (the page's window.presign is the app server's, bound by the test)
  const presignCall = (globalThis as unknown as { presign: (m: string, p: string, q: Array<[string, string]>) => Promise<string> }).presign;
  const auth = { authorization: `Bearer ${a.jwt}` };
  const presign = async (q: string) => (await (await fetch(`${a.plain}/web/${q}`, { method: "POST", headers: auth })).json()) as { url: string; headers: Record<string, string> };
  const code = (xml: string) => /<Code>(\w+)</.exec(xml)?.[1];
  // (the page's XMLHttpRequest: the project's types are Bun's, without the DOM)
  interface Xhr {
    upload: { onprogress: (e: { loaded: number; total: number }) => void };
    onload: () => void;
    onabort: () => void;
    onerror: () => void;
    status: number;
    getResponseHeader(name: string): string | null;
    open(method: string, url: string): void;
    setRequestHeader(name: string, value: string): void;
    send(body: Blob): void;
    abort(): void;
  }
  const XHR = (globalThis as unknown as { XMLHttpRequest: new () => Xhr }).XMLHttpRequest;
  const xhrPut = (url: string, body: Blob, headers: Record<string, string>, abortAt?: number) =>
    new Promise<{ status: number | string; etag?: string | null; events: number; last?: number }>((done) => {
      const x = new XHR();
      const loaded: number[] = [];
      x.upload.onprogress = (e) => {
        loaded.push(e.loaded);
        if (abortAt !== undefined && e.loaded >= abortAt && e.loaded < e.total) x.abort();
      };
      x.onload = () => done({ status: x.status, etag: x.getResponseHeader("etag"), events: loaded.length, last: loaded.at(-1) });
      x.onabort = () => done({ status: "aborted", events: loaded.length });
      x.onerror = () => done({ status: "network error", events: loaded.length });
      x.open("PUT", url);
      for (const [k, v] of Object.entries(headers)) x.setRequestHeader(k, v);
      x.send(body);
    });
  const big = new Blob([new Uint8Array(a.big).fill(0x61)]);

  // 1. a multipart upload driven from the page with URLs its server presigns; each part's ETag read from script
  const key = "/web/from-page/parts.bin";
  const create = await (await fetch(await presignCall("POST", key, [["uploads", ""]]), { method: "POST" })).text();
  const uploadId = /<UploadId>([^<]+)</.exec(create)?.[1] ?? "";
  const etags: Array<string | null> = [];
  for (const [n, size] of [[1, 5 * 1024 * 1024], [2, 1000]] as const) {
    const part = await fetch(await presignCall("PUT", key, [["partNumber", String(n)], ["uploadId", uploadId]]), { method: "PUT", body: new Uint8Array(size).fill(n) });
    etags.push(part.headers.get("etag"));
  }
  // (a string body: the browser sends it as text/plain, no preflight for the Content-Type)
  const xml = `<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join("")}</CompleteMultipartUpload>`;
  const complete = await fetch(await presignCall("POST", key, [["uploadId", uploadId]]), { method: "POST", body: xml });
  const multipart = { etags, complete: complete.status, etag: /<ETag>([^<]+)</.exec(await complete.text())?.[1] };

  // 2. a 30 MiB XHR upload to a presigned PUT URL, with its progress events
  const p = await presign("from-page/big.bin?presign&method=PUT&content_type=application/octet-stream");
  const xhr = await xhrPut(p.url, big, p.headers);

  // 3. refusals the page can read, answered before the body is read (the rest drained): a header
  // the URL does not sign, a body over the URL's limit, the plain front without a token
  const some = big.slice(0, 4 * 1024 * 1024);
  const unsigned = await fetch(p.url, { method: "PUT", body: some, headers: { ...p.headers, "content-type": "image/png" } });
  const over = await fetch(p.url, { method: "PUT", body: new Blob([big, "+"]), headers: p.headers });
  const noToken = await fetch(`${a.plain}/web/from-page/nope.bin`, { method: "PUT", body: some });
  const refusals = [`${unsigned.status} ${code(await unsigned.text())}`, `${over.status} ${code(await over.text())}`, `${noToken.status} ${((await noToken.json()) as { error: string }).error}`];

  // 4. uploads the page aborts mid-body (at the first progress event; the fetch after 20 ms): an XHR
  // PUT, a fetch PUT (AbortController), an UploadPart, then the multipart upload itself
  const aborted = await xhrPut((await presign("from-page/aborted.bin?presign&method=PUT")).url, big, {}, 1);
  const ac = new AbortController();
  const cut = fetch((await presign("from-page/cut.bin?presign&method=PUT")).url, { method: "PUT", body: big, signal: ac.signal }).then((r) => `status ${r.status}`, (e: Error) => e.name);
  setTimeout(() => ac.abort(), 20);
  const created = await (await fetch(await presignCall("POST", "/web/from-page/left.bin", [["uploads", ""]]), { method: "POST" })).text();
  const leftId = /<UploadId>([^<]+)</.exec(created)?.[1] ?? "";
  const part = await xhrPut(await presignCall("PUT", "/web/from-page/left.bin", [["partNumber", "1"], ["uploadId", leftId]]), big, {}, 1);
  const abortUpload = await fetch(await presignCall("DELETE", "/web/from-page/left.bin", [["uploadId", leftId]]), { method: "DELETE" });
  return { multipart, xhr, refusals, aborts: [aborted.status, await cut, part.status, abortUpload.status] };
}

clientTest("chromium").concurrent(
  "a page drives a multipart upload through presigned URLs (ETags read from script), a 30 MiB XHR upload with progress, reads refusals of large bodies, aborts uploads (nothing left at the store), and submits a real form that redirects",
  async () => {
    await using b = await openPage();
    const jwt = token({ sub: "flows-user" });
    const session = await sessionFor(jwt);
    await b.page.exposeFunction("presign", (method: string, path: string, query: Array<[string, string]>) => presignCall(session, method, path, query));
    // Uploads at 64 MiB/s at most (DevTools' network emulation, which leaves CORS alone): a 30 MiB
    // body takes 0.47 s or more, so the aborts below land mid-body however fast the machine is.
    const cdp = await b.context.newCDPSession(b.page);
    await cdp.send("Network.enable");
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 64 * 1024 * 1024 });
    await b.page.goto(`http://127.0.0.1:${app.port}/`);
    const r = await b.page.evaluate(flowsInPage, { plain: `http://127.0.0.1:${env.port}`, jwt, big: BIG });
    const md5 = (x: Uint8Array) => new Bun.CryptoHasher("md5").update(x).digest("hex");
    const parts = [new Uint8Array(5 * 1024 * 1024).fill(1), new Uint8Array(1000).fill(2)];
    expect(r.multipart.etags).toEqual(parts.map((x) => `"${md5(x)}"`));
    expect([r.multipart.complete, r.multipart.etag]).toEqual([200, `&quot;${md5(Buffer.concat([Buffer.from(md5(parts[0]!), "hex"), Buffer.from(md5(parts[1]!), "hex")]))}-2&quot;`]);
    expect((await s3.read("rw", "from-page/parts.bin"))?.length).toBe(5 * 1024 * 1024 + 1000);
    const big = new Uint8Array(BIG).fill(0x61);
    expect({ ...r.xhr, events: r.xhr.events > 1 }).toEqual({ status: 200, etag: `"${md5(big)}"`, events: true, last: BIG });
    expect(await s3.read("rw", "from-page/big.bin")).toEqual(big);
    expect(r.refusals).toEqual(["403 SignatureDoesNotMatch", "400 EntityTooLarge", "401 Unauthorized"]);
    expect(r.aborts).toEqual(["aborted", "AbortError", "aborted", 204]);
    for (const key of ["from-page/aborted.bin", "from-page/cut.bin", "from-page/left.bin", "from-page/nope.bin"]) expect([key, await s3.exists("rw", key)]).toEqual([key, false]);
    expect(s3.multipartUploads().filter((u) => u.key.startsWith("from-page/"))).toEqual([]);

    // A real <form> (a navigation, no CORS), with the policy's success_action_redirect: the browser lands on the app's page.
    const done = `http://127.0.0.1:${app.port}/done`;
    const res = await fetch(env.url(`/web/from-page/form.txt?presign&method=POST&content_type=text/plain&success_action_redirect=${encodeURIComponent(done)}`), { method: "POST", headers: { authorization: `Bearer ${jwt}` } });
    const post = (await res.json()) as { url: string; fields: Record<string, string> };
    await b.page.setContent(
      `<form method="post" enctype="multipart/form-data" action="${post.url}">${Object.entries(post.fields).map(([k, v]) => `<input type="hidden" name="${k}" value="${v}">`).join("")}<input type="file" name="file"><button>upload</button></form>`,
    );
    await b.page.setInputFiles("input[type=file]", { name: "form.txt", mimeType: "text/plain", buffer: Buffer.from("from a real form") });
    await Promise.all([b.page.waitForURL(`${done}?**`), b.page.click("button")]);
    const landed = new URL(b.page.url());
    expect([...landed.searchParams]).toEqual([["bucket", "web"], ["key", "from-page/form.txt"], ["etag", `"${md5(Buffer.from("from a real form"))}"`]]);
    expect(new TextDecoder().decode(await s3.read("rw", "from-page/form.txt"))).toBe("from a real form");
  },
  90_000,
);
