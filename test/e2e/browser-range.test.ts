/**
 * A folder's URL without its trailing slash on a listing bucket: the browser is sent to the
 * folder's index (302 to `dir/`), as S3's website endpoint and web servers do; a missing key that
 * names no folder stays 404, an object named like the folder is served.
 *
 * A browser page reading an object by ranges from another origin (Debian's chromium through
 * playwright-core), on a bucket whose `cors` names no `expose_headers`: the default list lets the
 * script read Content-Range and Accept-Ranges, as pdf.js and zip or media readers need to learn the
 * object's size and which bytes came (Content-Length is CORS-safelisted; those two are not).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout } from "bun:test";
import { launchBrowser } from "../clients/browser.ts";
import { clientTest } from "../clients/run.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIAE2ERANGE", secretAccessKey: "e2e-range-secret" };

let s3: S3Fixture;
let px: InProcessProxy;
let app: ReturnType<typeof Bun.serve>;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "media" }], credentials: [{ ...CREDS, buckets: ["media"] }] });
  await s3.put("media", "doc.bin", "0123456789abcdefghij");
  await s3.put("media", "dir/a.txt", "a");
  await s3.put("media", "both", "object");
  await s3.put("media", "both/b.txt", "b");
  app = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("<!doctype html><title>reader</title>", { headers: { "content-type": "text/html" } }) });
  px = await startInProcess(`server: { address: 127.0.0.1, port: 0 }
buckets:
${bucketYaml({ name: "media", prefix: "/media", bucket: "media", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: `    listing: { enabled: true }\n    cors: { allowed_origins: ["http://127.0.0.1:${app.port}"] }\n` })}`);
});

afterAll(async () => {
  await px?.stop();
  app?.stop(true);
  await s3?.stop();
});

clientTest("chromium")(
  "a page on an allowed origin reads a range and can read its Content-Range and Accept-Ranges with the default expose_headers",
  async () => {
    await using b = await launchBrowser();
    await b.page.goto(`http://127.0.0.1:${app.port}/`);
    const got = await b.page.evaluate(async (url) => {
      const res = await fetch(url, { headers: { range: "bytes=5-9" } });
      return { status: res.status, text: await res.text(), range: res.headers.get("content-range"), accept: res.headers.get("accept-ranges"), length: res.headers.get("content-length") };
    }, px.url("/media/doc.bin"));
    expect(got).toEqual({ status: 206, text: "56789", range: "bytes 5-9/20", accept: "bytes", length: "5" });
  },
);

clientTest("chromium")(
  "a folder's URL without the trailing slash opens its index (302 to dir/); a missing key is still 404, an object named like a folder is served",
  async () => {
    await using b = await launchBrowser();
    const res = await b.page.goto(px.url("/media/dir"));
    expect([res?.status(), new URL(b.page.url()).pathname, await b.page.title()]).toEqual([200, "/media/dir/", "Index of media/dir/"]);
    expect(await b.page.textContent("tbody")).toContain("a.txt");
    for (const method of ["GET", "HEAD"]) {
      const r = await fetch(px.url("/media/dir?x=1"), { method, redirect: "manual" });
      expect([method, r.status, r.headers.get("location"), r.headers.get("cache-control")]).toEqual([method, 302, "/media/dir/?x=1", "no-store"]);
    }
    expect((await fetch(px.url("/media/di"), { redirect: "manual" })).status).toBe(404);
    expect((await fetch(px.url("/media/dir/a.tx"), { redirect: "manual" })).status).toBe(404);
    const both = await fetch(px.url("/media/both"), { redirect: "manual" });
    expect([both.status, await both.text()]).toEqual([200, "object"]);
  },
);
