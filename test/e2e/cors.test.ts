/**
 * CORS per bucket on both fronts, over HTTP as a browser speaks it (the real browser is in
 * browser-upload.test.ts): preflights answered without authentication for configured origins only,
 * Access-Control-Allow-Origin / Expose-Headers on actual answers (errors included), nothing for
 * other origins or buckets without `cors`.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bearer, bucket, rawRequest, startWriteEnv, WRITER, type WriteEnv } from "./plain-write-env.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const T = 20_000;
const APP = "http://app.example.test:3000";
const EVIL = "http://evil.example.test";

let s3: S3Fixture;
let env: WriteEnv;

const CORS = `    cors: { allowed_origins: ["${APP}"], allowed_methods: [GET, PUT, POST, DELETE], allowed_headers: [authorization, content-type], expose_headers: [ETag, x-request-id], max_age: 120 }\n`;
const buckets = (ep: string) =>
  bucket("web", "/web", "rw", ep, `    access: read-write\n    auth: { enabled: true }\n${CORS}`) +
  bucket("plain", "/plain", "rw", ep, "    auth: { enabled: true }\n") +
  bucket("ro-cors", "/ro-cors", "rw", ep, `    cors: { allowed_origins: ["${APP}", "http://*.example.test:3000"], allowed_headers: ["x-amz-*", "amz-sdk-*"] }\n`);

const preflight = (url: string, origin: string, method: string, headers?: string) =>
  fetch(url, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": method, ...(headers ? { "access-control-request-headers": headers } : {}) },
  });

const CORS_HEADERS = ["access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers", "access-control-expose-headers", "access-control-max-age"];
const corsHeadersOf = (res: Response) => CORS_HEADERS.filter((h) => res.headers.has(h));

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }, { name: "ro" }], credentials: [WRITER] });
  await s3.put("rw", "page.txt", "hello");
  env = await startWriteEnv({ buckets, s3Api: true }, s3);
});

afterAll(async () => {
  await env?.stop();
  await s3?.stop();
});

describe("plain front", () => {
  test("a preflight from a configured origin is 204 without a token (the bucket needs one), and nothing reaches S3", async () => {
    const from = s3.requests.length;
    const res = await preflight(env.url("/web/page.txt"), APP, "PUT", "authorization, content-type");
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
    expect(res.headers.get("access-control-allow-methods")).toBe("GET, PUT, POST, DELETE");
    expect(res.headers.get("access-control-allow-headers")).toBe("authorization, content-type");
    expect(res.headers.get("access-control-max-age")).toBe("120");
    expect(res.headers.get("vary")).toContain("Origin");
    expect(s3.requests.slice(from).filter((r) => !r.admin && r.method !== "HEAD")).toEqual([]);
  }, T);

  test("preflights and OPTIONS are counted under their bucket, not _none", async () => {
    const count = (bucket: string) => Number(new RegExp(`^yatagarasu_http_requests_total\\{bucket="${bucket}",method="OPTIONS",status="(204|403)"\\} (\\d+)$`, "m").exec(env.app.metrics.render())?.[2] ?? 0);
    const [web, plain] = [count("web"), count("plain")];
    await preflight(env.url("/web/page.txt"), APP, "GET");
    await fetch(env.url("/plain/page.txt"), { method: "OPTIONS" });
    expect([count("web"), count("plain")]).toEqual([web + 1, plain + 1]);
  }, T);

  test("a preflight from another origin, or for a method or header not configured, is 403 without CORS headers", async () => {
    for (const [origin, method, headers] of [
      [EVIL, "GET", undefined],
      [APP, "PATCH", undefined],
      [APP, "PUT", "authorization, x-custom"],
    ] as const) {
      const res = await preflight(env.url("/web/page.txt"), origin, method, headers);
      expect(res.status).toBe(403);
      expect(corsHeadersOf(res)).toEqual([]);
      expect(res.headers.get("vary")).toContain("Origin"); // as every answer of a CORS bucket
      expect(((await res.json()) as { message: string }).message).toStartWith("CORS preflight refused: ");
    }
  }, T);

  test("actual answers carry Allow-Origin and Expose-Headers for the configured origin: a read, a write (ETag readable) and an error", async () => {
    const get = await fetch(env.url("/web/page.txt"), { headers: { origin: APP, ...bearer() } });
    expect(get.status).toBe(200);
    expect(get.headers.get("access-control-allow-origin")).toBe(APP);
    expect(get.headers.get("access-control-expose-headers")).toBe("etag, x-request-id");
    expect(get.headers.get("vary")).toContain("Origin");
    const put = await fetch(env.url("/web/new.txt"), { method: "PUT", body: "new", headers: { origin: APP, ...bearer() } });
    expect(put.status).toBe(200);
    expect(put.headers.get("etag")).toBeTruthy();
    expect(put.headers.get("access-control-allow-origin")).toBe(APP);
    // a 401 is readable by the page, so it can ask its user to log in again
    const denied = await fetch(env.url("/web/page.txt"), { headers: { origin: APP } });
    expect(denied.status).toBe(401);
    expect(denied.headers.get("access-control-allow-origin")).toBe(APP);
    const missing = await fetch(env.url("/web/none.txt"), { headers: { origin: APP, ...bearer() } });
    expect(missing.status).toBe(404);
    expect(missing.headers.get("access-control-allow-origin")).toBe(APP);
  }, T);

  test("another origin's actual request is served as usual but gets no CORS grant; no Origin, no CORS headers but Vary: Origin (a cache must not reuse it for a CORS request)", async () => {
    const evil = await fetch(env.url("/web/page.txt"), { headers: { origin: EVIL, ...bearer() } });
    expect(evil.status).toBe(200);
    expect(corsHeadersOf(evil)).toEqual([]);
    expect(evil.headers.get("vary")).toContain("Origin");
    const none = await fetch(env.url("/web/page.txt"), { headers: bearer() });
    expect([none.status, await none.text()]).toEqual([200, "hello"]);
    expect(corsHeadersOf(none)).toEqual([]);
    expect(none.headers.get("vary")).toContain("Origin");
    const error = await fetch(env.url("/web/missing.txt"), { headers: bearer() });
    expect([error.status, error.headers.get("vary")]).toEqual([404, "Origin"]);
    // a bucket without cors: no Vary added
    expect((await fetch(env.url("/plain/page.txt"), { headers: bearer() })).headers.get("vary")).toBeNull();
  }, T);

  test("a path the front refuses as malformed (a dot segment, a NUL) is a 400 the page can read: it carries the bucket's CORS grant", async () => {
    for (const path of ["/web/a%2F..%2Fb", "/web/a%00b"]) {
      const res = await fetch(env.url(path), { headers: { origin: APP, ...bearer() } });
      expect([path, res.status, res.headers.get("access-control-allow-origin"), res.headers.get("vary")]).toEqual([path, 400, APP, "Origin"]);
    }
  }, T);

  test("an actual request whose method the rules do not allow gets no grant (S3 matches AllowedMethod), only Vary: Origin", async () => {
    // GET-only origin rules: a simple cross-origin POST (no preflight) to the bucket is refused, unreadable
    const res = await fetch(env.url("/ro-cors/page.txt"), { method: "POST", body: "x", headers: { origin: APP, "content-type": "text/plain" } });
    expect([res.status, res.headers.get("access-control-allow-origin"), res.headers.get("vary")]).toEqual([405, null, "Origin"]);
    const get = await fetch(env.url("/ro-cors/page.txt"), { headers: { origin: APP } });
    expect([get.status, get.headers.get("access-control-allow-origin")]).toEqual([200, APP]);
  }, T);

  test('allowed_headers and allowed_origins take one "*", as S3 does ("x-amz-*", "http://*.example.test:3000")', async () => {
    const ok = await preflight(env.url("/ro-cors/page.txt"), "http://other.example.test:3000", "GET", "x-amz-date, x-amz-content-sha256, amz-sdk-request");
    expect([ok.status, ok.headers.get("access-control-allow-origin")]).toEqual([204, "http://other.example.test:3000"]);
    const no = await preflight(env.url("/ro-cors/page.txt"), "http://other.example.test:3000", "GET", "x-amz-date, authorization");
    expect(no.status).toBe(403);
    expect((await preflight(env.url("/ro-cors/page.txt"), "http://example.test:3000", "GET")).status).toBe(403);
  }, T);

  // (it was 204 with Allow and no CORS header, a preflight too)
  test("a path no bucket maps: a preflight is 403 without CORS headers (as S3 answers one to a bucket that does not exist, and the S3 listener does), any other OPTIONS 404 NotFound, as a GET of it", async () => {
    const answer = async (res: Response) => [res.status, res.headers.get("allow"), corsHeadersOf(res), res.headers.get("content-type"), await res.json()];
    const pre = await preflight(env.url("/nosuch/x"), APP, "GET");
    expect(await answer(pre)).toEqual([403, null, [], "application/json", expect.objectContaining({ error: "Forbidden", message: "CORS preflight refused: no bucket is mapped to this path" })]);
    const get = await fetch(env.url("/nosuch/x"), { headers: { origin: APP } });
    const { request_id: _, ...getBody } = (await get.json()) as Record<string, unknown>;
    for (const headers of [{}, { origin: APP }, { "access-control-request-method": "GET" }] as Record<string, string>[]) {
      expect(await answer(await fetch(env.url("/nosuch/x"), { method: "OPTIONS", headers }))).toEqual([404, null, [], "application/json", { ...getBody, request_id: expect.any(String) }]);
    }
    expect(get.status).toBe(404);
  }, T);

  // (the commit that made the above 404 made this one 404 too: every proxy behind HAProxy's default check went down)
  test("OPTIONS / where no bucket maps the root, as HAProxy's `option httpchk` sends it by default (OPTIONS / HTTP/1.0, no Host), is 204 with the server's Allow", async () => {
    const res = await rawRequest(Number(new URL(env.url("/")).port), "OPTIONS / HTTP/1.0\r\n\r\n");
    expect(res.status).toBe(204);
    expect(res.text).toMatch(/\r\nallow: GET, HEAD, PUT, (?:POST, )?DELETE, OPTIONS\r\n/i);
    expect((await preflight(env.url("/"), APP, "GET")).status).toBe(403);
  }, T);

  test("a bucket without cors answers as before: OPTIONS 204 with Allow and no CORS headers, GET without them", async () => {
    const res = await preflight(env.url("/plain/page.txt"), APP, "GET");
    expect(res.status).toBe(204);
    expect(res.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
    expect(corsHeadersOf(res)).toEqual([]);
    const get = await fetch(env.url("/plain/page.txt"), { headers: { origin: APP, ...bearer() } });
    expect(corsHeadersOf(get)).toEqual([]);
  }, T);
});

describe("S3 front", () => {
  const s3Url = (p: string) => `${env.s3Endpoint}${p}`;

  test("a preflight to the S3 listener is answered from the bucket's cors config, unauthenticated: S3's 200 (it was 204, which S3 never answers one)", async () => {
    const ok = await preflight(s3Url("/web/up/file.bin"), APP, "PUT", "content-type");
    expect([ok.status, await ok.text()]).toEqual([200, ""]);
    expect(ok.headers.get("access-control-allow-origin")).toBe(APP);
    expect(ok.headers.get("access-control-allow-headers")).toBe("content-type");
    const evil = await preflight(s3Url("/web/up/file.bin"), EVIL, "PUT");
    expect(evil.status).toBe(403);
    expect(corsHeadersOf(evil)).toEqual([]);
    // S3's code and message for a preflight its rules refuse
    const refusal = await evil.text();
    expect(refusal).toContain("<Code>AccessForbidden</Code>");
    expect(refusal).toContain("CORSResponse: This CORS request is not allowed.");
  }, T);

  test("S3 answers (a presigned GET, and an S3 error) carry the CORS grant for the configured origin", async () => {
    const p = (await (await fetch(env.url("/web/page.txt?presign&method=GET"), { method: "POST", headers: { origin: APP, ...bearer() } })).json()) as { url: string };
    const got = await fetch(p.url, { headers: { origin: APP } });
    expect(got.status).toBe(200);
    expect(await got.text()).toBe("hello");
    expect(got.headers.get("access-control-allow-origin")).toBe(APP);
    expect(got.headers.get("access-control-expose-headers")).toBe("etag, x-request-id");
    const unsigned = await fetch(s3Url("/web/page.txt"), { headers: { origin: APP } });
    expect(unsigned.status).toBe(403);
    expect(unsigned.headers.get("access-control-allow-origin")).toBe(APP);
    const evil = await fetch(p.url, { headers: { origin: EVIL } });
    expect(evil.status).toBe(200);
    expect(corsHeadersOf(evil)).toEqual([]);
  }, T);

  test("a key that does not decode (a stray %, invalid UTF-8) is S3's 400 InvalidURI the page can read: it and its preflight carry the bucket's CORS grant", async () => {
    for (const path of ["/web/50%off.png", "/web/%C0%AF", "/web/a%ZZ/b"]) {
      const pre = await preflight(s3Url(path), APP, "PUT", "content-type");
      expect([path, pre.status, pre.headers.get("access-control-allow-origin")]).toEqual([path, 200, APP]);
      const res = await fetch(s3Url(path), { method: "PUT", body: "x", headers: { origin: APP } });
      const body = await res.text();
      expect([path, res.status, /<Code>(\w+)/.exec(body)?.[1], res.headers.get("access-control-allow-origin"), res.headers.get("vary")]).toEqual([path, 400, "InvalidURI", APP, "Origin"]);
    }
    // a bucket without cors, or an unknown one: no grant
    for (const path of ["/plain/50%off.png", "/nope/%ZZ", "/%ZZ/a"]) {
      const res = await fetch(s3Url(path), { headers: { origin: APP } });
      expect([path, res.status, res.headers.get("access-control-allow-origin")]).toEqual([path, 400, null]);
    }
  }, T);

  test("an OPTIONS to a bucket with cors that lacks Origin or Access-Control-Request-Method is S3's 400 naming the header (not 'CORS is not enabled')", async () => {
    for (const [headers, missing] of [[{ origin: APP }, "Access-Control-Request-Method"], [{ "access-control-request-method": "GET" }, "Origin"]] as const) {
      const res = await fetch(s3Url("/web/page.txt"), { method: "OPTIONS", headers });
      const body = await res.text();
      expect([missing, res.status, /<Code>(\w+)/.exec(body)?.[1]]).toEqual([missing, 400, "BadRequest"]);
      expect(body).toContain(`Insufficient information. ${missing} request header needed.`);
    }
  }, T);

  test("a bucket without cors: the S3 listener's preflight is S3's 403 AccessForbidden (CORS is not enabled for this bucket), without CORS headers; an OPTIONS without Origin its 400, as on a bucket with cors", async () => {
    const res = await preflight(s3Url("/plain/page.txt"), APP, "GET");
    expect(res.status).toBe(403);
    const body = await res.text();
    expect(/<Code>(\w+)/.exec(body)?.[1]).toBe("AccessForbidden");
    expect(body).toContain("CORS is not enabled for this bucket");
    expect(corsHeadersOf(res)).toEqual([]);
    // S3 reads Origin before the bucket's CORS configuration: an OPTIONS without one is its 400 on
    // a bucket without cors too (it was the 403); one with Origin alone is the 403
    for (const headers of [{}, { "access-control-request-method": "GET" }] as Record<string, string>[]) {
      const r = await fetch(s3Url("/plain/page.txt"), { method: "OPTIONS", headers });
      const text = await r.text();
      expect([r.status, /<Code>(\w+)/.exec(text)?.[1], text.includes("Insufficient information. Origin request header needed.")]).toEqual([400, "BadRequest", true]);
    }
    const originOnly = await fetch(s3Url("/plain/page.txt"), { method: "OPTIONS", headers: { origin: APP } });
    expect([originOnly.status, /<Code>(\w+)/.exec(await originOnly.text())?.[1]]).toEqual([403, "AccessForbidden"]);
  }, T);
  test("the S3 listener's preflights and OPTIONS are counted under the bucket they name, with cors or without (a bucket without cors's were _none)", async () => {
    const count = (bucket: string, status: number) => Number(new RegExp(`^yatagarasu_http_requests_total\\{bucket="${bucket}",method="OPTIONS",status="${status}"\\} (\\d+)$`, "m").exec(env.app.metrics.render())?.[1] ?? 0);
    const before = [count("web", 200), count("plain", 403), count("plain", 400)];
    await (await preflight(s3Url("/web/page.txt"), APP, "GET")).arrayBuffer();
    await (await preflight(s3Url("/plain/page.txt"), APP, "GET")).arrayBuffer();
    await (await fetch(s3Url("/plain/page.txt"), { method: "OPTIONS" })).arrayBuffer();
    expect([count("web", 200), count("plain", 403), count("plain", 400)]).toEqual(before.map((n) => n + 1));
  }, T);
  test("S3's preflight refusals: an Access-Control-Request-Method naming no S3 method is its 400 BadRequest; an unknown bucket 'Bucket not found'; the 403s name the method and the resource", async () => {
    const read = async (res: Response) => {
      const body = await res.text();
      return [res.status, ...["Code", "Message", "Method", "ResourceType"].map((e) => new RegExp(`<${e}>([^<]*)</${e}>`).exec(body)?.[1] ?? null)];
    };
    // (with cors, without it, and on an unknown bucket alike: S3 reads the method first)
    for (const path of ["/web/page.txt", "/plain/page.txt", "/nope/page.txt"]) {
      expect([path, ...(await read(await preflight(s3Url(path), APP, "FOO")))]).toEqual([path, 400, "BadRequest", "Invalid Access-Control-Request-Method: FOO", null, null]);
    }
    expect(await read(await preflight(s3Url("/nope/page.txt"), APP, "GET"))).toEqual([403, "AccessForbidden", "CORSResponse: Bucket not found", "GET", "BUCKET"]);
    expect(await read(await fetch(s3Url("/nope/"), { method: "OPTIONS", headers: { origin: APP } }))).toEqual([403, "AccessForbidden", "CORSResponse: Bucket not found", "OPTIONS", "BUCKET"]);
    expect(await read(await preflight(s3Url("/plain/page.txt"), APP, "PUT"))).toEqual([403, "AccessForbidden", "CORSResponse: CORS is not enabled for this bucket.", "PUT", "OBJECT"]);
    expect(await read(await preflight(s3Url("/plain"), APP, "GET"))).toEqual([403, "AccessForbidden", "CORSResponse: CORS is not enabled for this bucket.", "GET", "BUCKET"]);
    const [status, code, , method, type] = await read(await preflight(s3Url("/web/page.txt"), EVIL, "PUT"));
    expect([status, code, method, type]).toEqual([403, "AccessForbidden", "PUT", "OBJECT"]);
  }, T);
});

describe("server.request_timeout", () => {
  test("the answer the deadline gives (504 on the plain front, S3's 503 on the S3 front) carries the CORS grant, as every other error does: a page can read it", async () => {
    await using late = await startWriteEnv({ buckets, s3Api: true, server: "  request_timeout: 0.5\n" }, s3);
    await s3.put("rw", "late.txt", "late");
    s3.faults.set("/rw/late.txt", { kind: "delay", ms: 3000 });
    try {
      const p = (await (await fetch(late.url("/web/late.txt?presign&method=GET"), { method: "POST", headers: bearer() })).json()) as { url: string };
      for (const [front, url, init, status] of [
        ["plain", late.url("/web/late.txt"), { headers: { origin: APP, ...bearer() } }, 504],
        ["s3", p.url, { headers: { origin: APP } }, 503],
      ] as const) {
        const res = await fetch(url, init);
        await res.arrayBuffer();
        expect([front, res.status, res.headers.get("access-control-allow-origin"), res.headers.get("vary")]).toEqual([front, status, APP, "Origin"]);
        // (the S3 front's own 503 says when to retry, as its limits' and the plain front's 503s do)
        if (front === "s3") expect(res.headers.get("retry-after")).toBe("1");
      }
    } finally {
      s3.faults.delete("/rw/late.txt");
    }
  }, T);
});
