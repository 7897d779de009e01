/**
 * Folder listings on the plain front, end to end: the proxy (in process) in front of the S3
 * fixture. JSON pages followed to the end, HTML for browsers, auth and authorization applied as to
 * objects, listing off → 404 as before, upstream errors mapped, never a listing outside the folder.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { encodeToken } from "../fixtures/s3/list.ts";
import { nowSec, sign } from "../fixtures/jwt.ts";
import { OpaServer } from "../fixtures/opa.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SECRET = "e2e-listing-hs256-secret-0123456789";
const CREDS = { accessKeyId: "AKIAE2ELISTING", secretAccessKey: "e2e-listing-secret" };
const HOSTILE = `<script>alert(1)<\\script> <img src=x onerror=alert(2)> & "q" 'a'.txt`;

/** Top level: 5 folders and 4 objects; docs/ holds awkward names and a sub-folder. */
const KEYS: Record<string, string> = {
  "a.txt": "a",
  "b b.txt": "bb",
  "c+c.txt": "c+",
  "z~.txt": "z",
  "docs/readme.md": "# readme",
  [`docs/${HOSTILE}`]: "hostile",
  "docs/100% ü.txt": "unicode",
  "docs/deep/x.txt": "x",
  "img/1.png": "1",
  "open/o.txt": "open",
  "closed/c.txt": "closed",
  "zz/last": "last",
};

interface Entry {
  name: string;
  type: "folder" | "object";
  size?: number;
  last_modified?: string;
  served?: boolean;
}
interface Page {
  bucket: string;
  prefix: string;
  entries: Entry[];
  next: string | null;
}

let s3: S3Fixture;
let px: InProcessProxy;
let opa: OpaServer;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data" }, { name: "shadow" }, { name: "void" }], credentials: [{ ...CREDS, buckets: ["data", "shadow", "void"] }] });
  for (const [k, v] of Object.entries(KEYS)) await s3.put("data", k, v);
  opa = OpaServer.start({ "yatagarasu/allow": (input) => input?.action === "s3:GetObject" || (input?.action === "s3:ListBucket" && String(input?.key).startsWith("open/")) });
  const b = (name: string, prefix: string, extra: string, bucket = "data") =>
    bucketYaml({ name, prefix, bucket, endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra });
  px = await startInProcess(`server: { address: 127.0.0.1, port: 0 }
jwt: { enabled: true, algorithm: HS256, secret: "${SECRET}", token_sources: [{ type: bearer }, { type: query, name: token }] }
buckets:
${b("files", "/files", "    listing: { enabled: true, max_keys: 3 }\n")}${b("privpaged", "/pp", "    auth: { enabled: true }\n    listing: { enabled: true, max_keys: 3 }\n")}${b("nolist", "/nolist", "")}${b(
    "priv",
    "/priv",
    "    auth: { enabled: true }\n    listing: { enabled: true }\n",
  )}${b("opa", "/opa", `    listing: { enabled: true }\n    authorization: { type: opa, opa_url: "${opa.url}", opa_policy_path: yatagarasu/allow, opa_cache_ttl_seconds: 0, opa_timeout_ms: 5000 }\n`)}${b(
    "gone",
    "/gone",
    "    listing: { enabled: true }\n",
    "no-such-bucket",
  )}`);
});

afterAll(async () => {
  await px?.stop();
  await s3?.stop();
  opa?.close();
});

/** The proxy's ListObjects requests to the fixture. */
const listings = () => s3.requests.filter((r) => !r.admin && r.method === "GET" && r.query["list-type"] === "2");

/** An attribute value as a browser reads it (the escapes render.ts writes). */
const unescapeHtml = (s: string) => s.replace(/&(amp|lt|gt|quot|#39);/g, (_m, e: string) => ({ amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'" })[e]!);

async function allPages(path: string): Promise<{ pages: Page[]; entries: Entry[] }> {
  const pages: Page[] = [];
  let next: string | null = path;
  while (next !== null && pages.length < 20) {
    const res = await fetch(px.url(next));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const page = (await res.json()) as Page;
    pages.push(page);
    next = page.next;
  }
  return { pages, entries: pages.flatMap((p) => p.entries) };
}

describe("JSON listings", () => {
  test("the bucket root, 3 entries a page, followed to the end: every entry once, folders first on each page", async () => {
    s3.resetLog();
    const { pages, entries } = await allPages("/files/");
    expect(pages.map((p) => p.entries.length)).toEqual([3, 3, 3]);
    for (const p of pages) {
      const kinds = p.entries.map((e) => e.type);
      expect(kinds).toEqual([...kinds].sort()); // "folder" < "object"
      expect(p.prefix).toBe("");
      expect(p.bucket).toBe("files");
    }
    const folders = entries.filter((e) => e.type === "folder").map((e) => e.name);
    const objects = entries.filter((e) => e.type === "object");
    expect(folders.sort()).toEqual(["closed/", "docs/", "img/", "open/", "zz/"]);
    expect(objects.map((e) => e.name).sort()).toEqual(["a.txt", "b b.txt", "c+c.txt", "z~.txt"]);
    expect(objects.find((e) => e.name === "b b.txt")).toMatchObject({ size: 2, last_modified: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    // one upstream listing per page, each for the folder with "/" as delimiter
    expect(listings().length).toBe(3);
    for (const r of listings()) expect({ prefix: r.query.prefix ?? null, delimiter: r.query.delimiter, maxKeys: r.query["max-keys"] } as unknown).toEqual({ prefix: null, delimiter: "/", maxKeys: "3" });
  });

  test("a folder: keys with markup, %, unicode and a sub-folder; only that folder, whatever the query says", async () => {
    s3.resetLog();
    const { entries } = await allPages("/files/docs/?prefix=closed/&delimiter=&max-keys=1000");
    expect(entries.map((e) => e.name).sort()).toEqual([HOSTILE, "100% ü.txt", "deep/", "readme.md"].sort());
    expect(entries.find((e) => e.name === HOSTILE)).toMatchObject({ type: "object", size: 7 });
    expect(listings().every((r) => r.query.prefix === "docs/" && r.query.delimiter === "/")).toBe(true);
    const encoded = await fetch(px.url(`/files/${encodeURIComponent("docs")}/deep/`));
    expect(((await encoded.json()) as Page).entries).toEqual([{ name: "x.txt", type: "object", size: 1, last_modified: expect.any(String) }]);
  });

  test("a continuation token from elsewhere still lists only the folder", async () => {
    // a token the fixture would accept, resuming before everything in the bucket
    const token = encodeToken("data", "");
    const res = await fetch(px.url(`/files/img/?continuation-token=${encodeURIComponent(token)}`));
    expect(res.status).toBe(200);
    expect(((await res.json()) as Page).entries.map((e) => e.name)).toEqual(["1.png"]);
  });

  test("a folder of long keys pages to the end: S3's continuation token grows with the key (a ~900-byte key's is over 1,000 characters), and such a token was refused 400 \"too long\" on page 2", async () => {
    const folder = `zz/${"l".repeat(230)}/${"m".repeat(230)}/${"n".repeat(230)}/`;
    const names = ["1", "2", "3", "4"].map((d) => d + "x".repeat(200));
    for (const n of names) await s3.put("data", folder + n, n);
    const { pages, entries } = await allPages(`/files/${folder}`);
    expect(pages.length).toBe(2);
    expect(new URL(pages[0]!.next!, "http://x").searchParams.get("continuation-token")!.length).toBeGreaterThan(1024);
    expect(entries.map((e) => e.name)).toEqual(names);
  });

  test("HEAD answers the headers only; Accept: text/html gets the HTML index under a no-script CSP", async () => {
    const head = await fetch(px.url("/files/docs/"), { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toBe("application/json");
    expect(await head.text()).toBe("");
    const get = await fetch(px.url("/files/docs/"));
    expect(head.headers.get("content-length")).toBe(String((await get.arrayBuffer()).byteLength));
    const html = await fetch(px.url("/files/docs/"), { headers: { accept: "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8" } });
    expect(html.status).toBe(200);
    expect(html.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(html.headers.get("cache-control")).toBe("no-store");
    expect(html.headers.get("content-security-policy")).toContain("default-src 'none'");
    const text = await html.text();
    expect(text).toContain("&lt;script&gt;alert(1)&lt;\\script&gt; &lt;img src=x onerror=alert(2)&gt; &amp; &quot;q&quot; &#39;a&#39;.txt");
    expect(text).not.toContain("<script>");
    expect(text).not.toContain("<img");
    const notHtml = await fetch(px.url("/files/docs/"), { headers: { accept: "text/html;q=0, application/json" } });
    expect(notHtml.headers.get("content-type")).toBe("application/json");
  });

  test("preconditions hold on an index as RFC 9110 says for any 2xx: an If-Match tag never matches (412), If-None-Match: * does (304), the rest proceed (they were all ignored: 200)", async () => {
    const status = async (headers: Record<string, string>, method = "GET") => (await fetch(px.url("/files/docs/"), { method, headers })).status;
    expect(await status({ "if-match": '"abc"' })).toBe(412);
    expect(await status({ "if-match": '"abc"' }, "HEAD")).toBe(412);
    expect(await status({ "if-none-match": "*" })).toBe(304);
    expect(await status({ "if-match": "*" })).toBe(200);
    expect(await status({ "if-none-match": '"abc"' })).toBe(200);
    expect(await status({ "if-modified-since": new Date(Date.now() + 86_400_000).toUTCString() })).toBe(200);
    expect(await status({ "if-unmodified-since": "Sun, 06 Dec 1999 09:00:00 GMT" })).toBe(200);
    // (a folder that is not there stays 404: a precondition never answers for a non-2xx)
    expect(await status({ "if-none-match": "*" }, "HEAD")).toBe(304);
    expect((await fetch(px.url("/files/nothing-here/"), { headers: { "if-match": '"abc"' } })).status).toBe(404);
  });
});

describe("access and errors", () => {
  test("a folder longer than S3's 1024-byte keys → 400 KeyTooLong, never listed upstream (it can hold nothing)", async () => {
    s3.resetLog();
    const res = await fetch(px.url(`/files/${"a/".repeat(600)}`));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe("KeyTooLong");
    expect(listings()).toHaveLength(0);
  });

  test("a bucket that requires a JWT refuses an anonymous listing (401) before S3 is asked, and lists with a token", async () => {
    s3.resetLog();
    const anon = await fetch(px.url("/priv/"));
    expect(anon.status).toBe(401);
    expect(((await anon.json()) as { error: string }).error).toBe("Unauthorized");
    expect(listings()).toHaveLength(0);
    const token = await sign({ sub: "alice", exp: nowSec() + 600 }, { alg: "HS256", key: SECRET });
    const ok = await fetch(px.url("/priv/docs/"), { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as Page).entries.map((e) => e.name)).toContain("readme.md");
  });

  test("a client that authenticated with ?token= gets links that carry it: every page, folder and object opens with the token alone", async () => {
    const token = await sign({ sub: "alice", exp: nowSec() + 600 }, { alg: "HS256", key: SECRET });
    const q = `token=${token}`;
    // JSON: `next` followed to the end with no header at all
    let next: string | null = `/pp/?${q}`;
    const names: string[] = [];
    for (let i = 0; next !== null && i < 10; i++) {
      const res = await fetch(px.url(next));
      expect(res.status).toBe(200);
      const page = (await res.json()) as Page;
      names.push(...page.entries.map((e) => e.name));
      next = page.next;
      if (next !== null) expect(next).toContain(q);
    }
    expect(names.sort()).toEqual(["a.txt", "b b.txt", "c+c.txt", "closed/", "docs/", "img/", "open/", "z~.txt", "zz/"].sort());
    // HTML: breadcrumbs, folders, objects and the next page all carry it, and each opens
    const html = await (await fetch(px.url(`/pp/docs/?${q}`), { headers: { accept: "text/html" } })).text();
    const hrefs = [...html.matchAll(/href="([^"]+)"/g)].map((m) => unescapeHtml(m[1]!));
    expect(hrefs.length).toBeGreaterThanOrEqual(5);
    for (const href of hrefs) {
      expect(href).toContain(q);
      const res = await fetch(px.url(href));
      expect({ href, status: res.status }).toEqual({ href, status: 200 });
      await res.body?.cancel();
    }
    // a token from a header is never copied into links
    const viaHeader = (await (await fetch(px.url("/pp/"), { headers: { authorization: `Bearer ${token}` } })).json()) as Page;
    expect(viaHeader.next).not.toBeNull();
    expect(viaHeader.next).not.toContain(token);
    // nor on a bucket that needs no token
    const open = (await (await fetch(px.url(`/files/?${q}`))).json()) as Page;
    expect(open.next).not.toContain(token);
  });

  test("the authorizer decides on s3:ListBucket with the folder as key", async () => {
    const open = await fetch(px.url("/opa/open/"));
    expect(open.status).toBe(200);
    const closed = await fetch(px.url("/opa/closed/"));
    expect(closed.status).toBe(403);
    const root = await fetch(px.url("/opa/"));
    expect(root.status).toBe(403);
  });

  test("a folder's path without its trailing slash is 302 to the folder (the query kept), only when something is under it and the authorizer lets the caller list it; else 404", async () => {
    const go = async (path: string) => {
      const res = await fetch(px.url(path), { redirect: "manual" });
      return [path, res.status, res.headers.get("location")];
    };
    expect(await go("/files/docs")).toEqual(["/files/docs", 302, "/files/docs/"]);
    expect(await go("/files/docs/deep?v=1")).toEqual(["/files/docs/deep?v=1", 302, "/files/docs/deep/?v=1"]);
    expect(await go("/files/doc")).toEqual(["/files/doc", 404, null]);
    expect(await go("/opa/open")).toEqual(["/opa/open", 302, "/opa/open/"]);
    // (listing closed/ is denied: the redirect would tell that something is in it)
    expect(await go("/opa/closed")).toEqual(["/opa/closed", 404, null]);
    // listing off: no listing upstream, as before
    s3.resetLog();
    expect(await go("/nolist/docs")).toEqual(["/nolist/docs", 404, null]);
    expect(listings()).toHaveLength(0);
  });

  // (S3 allows them, the S3 front serves them: until 2026-12-07 this front refused such paths, and
  // its index listed their entries without a link)
  test("a folder and a key with control characters: the redirect's Location and the links percent-encode them, the page shows code points, the link opens the object", async () => {
    await s3.put("data", "tab\tnl\n/k\x01.txt", "ctl");
    const folder = await fetch(px.url("/files/tab%09nl%0A"), { redirect: "manual" });
    expect([folder.status, folder.headers.get("location")]).toEqual([302, "/files/tab%09nl%0A/"]);
    const page = (await (await fetch(px.url("/files/tab%09nl%0A/"))).json()) as Page;
    expect(page.entries).toEqual([{ name: "k\x01.txt", type: "object", size: 3, last_modified: expect.any(String) }]);
    const html = await (await fetch(px.url("/files/tab%09nl%0A/"), { headers: { accept: "text/html" } })).text();
    expect(html).toContain('href="/files/tab%09nl%0A/k%01.txt"');
    expect(html).toContain("k<span class=\"ctl\">⟨U+0001⟩</span>.txt");
    const res = await fetch(px.url("/files/tab%09nl%0A/k%01.txt"));
    expect([res.status, await res.text()]).toEqual([200, "ctl"]);
  });

  test("a folder whose name holds a control character XML 1.0 forbids (ESC): redirected to (its check listing with encoding-type=url, as the index does) and listed, as its objects are served", async () => {
    await s3.put("data", "esc\x1b/in\x1b.txt", "esc");
    s3.resetLog();
    const folder = await fetch(px.url("/files/esc%1B"), { redirect: "manual" });
    expect([folder.status, folder.headers.get("location")]).toEqual([302, "/files/esc%1B/"]);
    // (the redirect's check asks as the index does: S3 documents encoding-type=url as the way to
    // list keys XML 1.0 cannot carry; it asked without, on a store answering such keys raw or not at all)
    expect(listings().map((r) => [r.query.prefix, r.query["encoding-type"]])).toEqual([["esc\x1b/", "url"]]);
    const page = (await (await fetch(px.url("/files/esc%1B/"))).json()) as Page;
    expect(page.entries).toEqual([{ name: "in\x1b.txt", type: "object", size: 3, last_modified: expect.any(String) }]);
    expect((await allPages("/files/")).entries).toContainEqual({ name: "esc\x1b/", type: "folder" });
    const res = await fetch(px.url("/files/esc%1B/in%1B.txt"));
    expect([res.status, await res.text()]).toEqual([200, "esc"]);
  });

  test("listing off: the folder path is an object key as before (404 NoSuchKey), no listing upstream", async () => {
    s3.resetLog();
    for (const path of ["/nolist/", "/nolist", "/nolist/docs/"]) {
      const res = await fetch(px.url(path));
      const body = (await res.json()) as { error: string; message: string };
      expect({ path, status: res.status, error: body.error }).toEqual({ path, status: 404, error: "NoSuchKey" });
      // (the bucket's root says why it is no index: it said only that the path named no key)
      if (path !== "/nolist/docs/") expect(body.message).toBe("The path names a bucket but no object key (folder listings are off for this bucket: listing.enabled)");
    }
    // an S3 client pointed at this listener (aws s3 ls: GET / and GET /<bucket>?list-type=2, signed):
    // both 404s say where S3 requests go (the root's pointed it at listing.enabled, the miss at nothing)
    const sigv4 = { authorization: "AWS4-HMAC-SHA256 Credential=AKID/20261207/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00" };
    const elsewhere = "; this request carries an S3 (AWS) signature: S3 clients use the S3 API listener (s3_api.port), not this one";
    for (const path of ["/", "/nolist?list-type=2&prefix=&delimiter=%2F"]) {
      const res = await fetch(px.url(path), { headers: sigv4 });
      const body = (await res.json()) as { message: string };
      expect({ path, status: res.status, hint: body.message.endsWith(elsewhere) }).toEqual({ path, status: 404, hint: true });
    }
    expect(((await (await fetch(px.url("/"))).json()) as { message: string }).message).toBe("No bucket is mapped to this path");
    expect(listings()).toHaveLength(0);
    // and an object still reads on a bucket with listing on
    const obj = await fetch(px.url("/files/docs/readme.md"));
    expect(await obj.text()).toBe("# readme");
  });

  test("upstream errors map as for objects: a missing upstream bucket 404 NoSuchBucket, a bad token 400 saying it is the token", async () => {
    const gone = await fetch(px.url("/gone/"));
    expect(gone.status).toBe(404);
    expect(((await gone.json()) as { error: string }).error).toBe("NoSuchBucket");
    const bad = await fetch(px.url("/files/?continuation-token=not-a-token"));
    expect(bad.status).toBe(400);
    const body = await bad.text();
    expect(body).not.toContain("<Error>");
    expect(JSON.parse(body)).toMatchObject({ error: "BadRequest", message: "The continuation-token is not one this listing gave: start again without it" });
  });
});

describe("folders that hold nothing", () => {
  test("a folder with nothing under it is 404 NoSuchKey (a mistyped path answered 200 \"This folder is empty.\"); one with only its marker object is an empty folder; the bucket root always lists", async () => {
    await s3.put("shadow", "inner/hollow/", "");
    const b = (name: string, prefix: string, bucket: string) => bucketYaml({ name, prefix, bucket, endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: "    listing: { enabled: true }\n" });
    await using p = await startInProcess(`server: { address: 127.0.0.1, port: 0 }\nbuckets:\n${b("sh", "/sh", "shadow")}${b("void", "/void", "void")}`);
    for (const accept of ["application/json", "text/html"]) {
      const missing = await fetch(p.url("/sh/no-such-folder/"), { headers: { accept } });
      expect({ accept, status: missing.status, error: ((await missing.json()) as { error: string }).error }).toEqual({ accept, status: 404, error: "NoSuchKey" });
    }
    expect((await fetch(p.url("/sh/no-such-folder/"), { method: "HEAD" })).status).toBe(404);
    const hollow = await fetch(p.url("/sh/inner/hollow/"));
    expect(hollow.status).toBe(200);
    expect(((await hollow.json()) as Page).entries).toEqual([]);
    // the root of a bucket with nothing in it is an empty listing
    const root = await fetch(p.url("/void/"));
    expect(root.status).toBe(200);
    expect(((await root.json()) as Page).entries).toEqual([]);
  });
});

describe("links that other routes take", () => {
  test("under a bucket at / beside one at /inner: keys the proxy's own paths or the other bucket take are listed without a link (they opened /health, the other bucket); every link opens this bucket's entry", async () => {
    const stored: Record<string, string> = { health: "my health notes", ready: "ready?", "admin/x": "ax", "%68ealth": "encoded", "inner/a.txt": "shadowed", "innerx.txt": "own", "health/h.txt": "hh" };
    for (const [k, v] of Object.entries(stored)) await s3.put("shadow", k, v);
    const b = (name: string, prefix: string) => bucketYaml({ name, prefix, bucket: "shadow", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: "    listing: { enabled: true }\n" });
    await using top = await startInProcess(`server: { address: 127.0.0.1, port: 0 }\nbuckets:\n${b("top", "/")}${b("inner", "/inner")}`);
    const page = (await (await fetch(top.url("/"))).json()) as Page;
    expect(Object.fromEntries(page.entries.map((e) => [e.name, e.served ?? true]))).toEqual({
      "admin/": false,
      "health/": true,
      "inner/": false,
      "%68ealth": true,
      health: false,
      "innerx.txt": true,
      ready: false,
    });
    const html = await (await fetch(top.url("/"), { headers: { accept: "text/html" } })).text();
    const links = [...html.matchAll(/<tr class="(folder|object)"><td><a href="([^"]+)"/g)].map((m) => ({ folder: m[1] === "folder", href: unescapeHtml(m[2]!) }));
    expect(links.length).toBe(3);
    for (const { folder, href } of links) {
      const res = await fetch(top.url(href));
      const key = decodeURIComponent(href.slice(1));
      if (folder) expect({ href, bucket: ((await res.json()) as Page).bucket }).toEqual({ href, bucket: "top" });
      else expect({ href, body: await res.text() }).toEqual({ href, body: stored[key]! });
    }
  });
});
