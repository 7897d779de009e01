/**
 * The S3 upstream's redirects are never followed, by either client (the own HTTP/1.1 pool, fetch):
 * a signed request (and a PUT's body) would go wherever the Location points, and its answer would
 * be served (and cached) as the bucket's object. A 3xx is the upstream's failure (502).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startInProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let elsewhere: ReturnType<typeof Bun.serve>;
let redirector: ReturnType<typeof Bun.serve>;
let asked = 0;
let status = 307;

beforeAll(() => {
  elsewhere = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: () => {
      asked++;
      return new Response("not the bucket's object", { headers: { "content-type": "text/plain", etag: '"x"' } });
    },
  });
  redirector = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (req) => new Response(null, { status, headers: { location: `http://127.0.0.1:${elsewhere.port}${new URL(req.url).pathname}` } }) });
});
afterAll(() => {
  redirector.stop(true);
  elsewhere.stop(true);
});

describe("an upstream redirect is not followed", () => {
  for (const client of ["auto", "fetch"] as const) {
    test(`upstream_client: ${client}`, async () => {
      await using px = await startInProcess(
        `server: { address: 127.0.0.1, port: 0, upstream_client: ${client} }
buckets:
  - { name: b, path_prefix: /b, s3: { bucket: data, endpoint: "http://127.0.0.1:${redirector.port}", access_key: AKIDREDIRECT, secret_key: redirect-secret-0123456789, retry: { max_attempts: 1 } } }
`,
        { probeIntervalMs: 600_000 },
      );
      for (status of [301, 302, 303, 307, 308]) {
        const get = await fetch(px.url("/b/secret.txt"));
        const body = await get.text();
        expect([get.status, JSON.parse(body).error]).toEqual([502, "BadGateway"]);
      }
      expect(asked).toBe(0);
    });
  }
});
