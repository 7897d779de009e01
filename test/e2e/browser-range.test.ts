/**
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
