/**
 * The readiness probe against endpoints an operator got wrong, answering as the real thing does:
 * every request to such a bucket fails, so /ready must say not ready, and say why.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { parseConfig } from "../../src/config/load.ts";
import { UpstreamPools } from "../../src/s3/http1/index.ts";
import { BucketUpstream } from "../../src/s3/upstream.ts";

setDefaultTimeout(30_000);

const KEYS = "access_key: AKIAPROBEMISCONF, secret_key: probe-misconfig-secret-0123456789, ";
const bucketAt = (endpoint: string, keys = KEYS) =>
  parseConfig(`buckets:\n  - { name: b, path_prefix: /b, s3: { bucket: data, endpoint: "${endpoint}", ${keys}timeout: 5, retry: { max_attempts: 1 } } }\n`, { env: {} }).buckets[0]!;

async function probeOf(endpoint: string, keys?: string) {
  const pools = new UpstreamPools();
  try {
    return await new BucketUpstream(bucketAt(endpoint, keys), { client: "auto", pools }).probe(3000);
  } finally {
    pools.close();
  }
}

const s3Error = (status: number, code: string, extra = "", headers: Record<string, string> = {}) => (req: Request) =>
  new Response(req.method === "HEAD" ? null : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>m</Message>${extra}<RequestId>R</RequestId><HostId>H</HostId></Error>`, {
    status,
    headers: { "content-type": "application/xml", ...headers },
  });

test("an https server (Go's net/http, as MinIO's) reached with http://: its plain 400 is not ready, with a hint", async () => {
  // Go answers a plain HTTP request on a TLS port so, whatever was asked
  using srv = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data(s) { s.write("HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"); s.end(); } } });
  const r = await probeOf(`http://127.0.0.1:${srv.port}`);
  expect(r.ok).toBe(false);
  expect(r.reason).toBe("the endpoint answered 400 without an S3 error: is s3.endpoint the store's S3 API, with its scheme and port? (an https port asked in plain http answers so)");
});

test("an http:// endpoint that redirects to https is not ready, and is told to write https://", async () => {
  using srv = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(null, { status: 301, headers: { location: `https://${new URL(req.url).host}/` } }) });
  const r = await probeOf(`http://127.0.0.1:${srv.port}`);
  expect(r).toEqual({ ok: false, reason: "the endpoint redirects to https (HTTP 301): write s3.endpoint with https://" });
});

test("S3's 307 TemporaryRedirect (a bucket just created in another region) is not ready: every read is refused meanwhile", async () => {
  using srv = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: s3Error(307, "TemporaryRedirect", "<Endpoint>data.s3-eu-west-1.amazonaws.com</Endpoint>", { location: "https://data.s3-eu-west-1.amazonaws.com/" }) });
  const r = await probeOf(`http://127.0.0.1:${srv.port}`);
  expect(r).toEqual({ ok: false, reason: "the upstream sends the bucket's requests to another endpoint for now: set s3.region (or s3.endpoint) to the bucket's region (TemporaryRedirect)" });
});

test("RequestTimeTooSkewed names this host's clock, not the credentials", async () => {
  using srv = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: s3Error(403, "RequestTimeTooSkewed", "<MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>") });
  const r = await probeOf(`http://127.0.0.1:${srv.port}`);
  expect(r).toEqual({ ok: false, reason: "the upstream refuses the request's time: is this host's clock right (NTP)? (RequestTimeTooSkewed)" });
});

test("still ready: a store whose HEAD of a bucket is 400 but whose GET of a missing key is NoSuchKey; a read-only key's 403", async () => {
  using odd = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => (req.method === "HEAD" ? new Response(null, { status: 400 }) : s3Error(404, "NoSuchKey")(req)) });
  expect((await probeOf(`http://127.0.0.1:${odd.port}`)).ok).toBe(true);
  using ro = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: s3Error(403, "AccessDenied") });
  expect(await probeOf(`http://127.0.0.1:${ro.port}`)).toEqual({ ok: true, note: "the probe got 403 (fine for read-only credentials)" });
  // a bucket without keys is asked unsigned: its 403 may be a private bucket whose keys were left out
  // (the note spoke of read-only credentials the bucket does not have)
  expect(await probeOf(`http://127.0.0.1:${ro.port}`, "")).toEqual({ ok: true, note: "the probe got 403, unsigned: no s3.access_key (fine for a bucket anyone may read but not list)" });
});

test("a store that is up is ready: no HeadBucket (501) but a GET of a missing key NoSuchKey; S3's 503 Slow Down (a throttle); not when its GET fails too", async () => {
  const store = (head: Response, get: (req: Request) => Response) => Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req: Request) => (req.method === "HEAD" ? head.clone() : get(req)) as globalThis.Response });
  using noHead = store(new Response(null, { status: 501 }), s3Error(404, "NoSuchKey"));
  expect(await probeOf(`http://127.0.0.1:${noHead.port}`)).toEqual({ ok: true, note: "the upstream does not implement HeadBucket (501); a GET got 404 (NoSuchKey)" });
  // (S3's reason phrase, which Bun.serve does not send: a HEAD's SlowDown is told by it alone)
  using throttled = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data(s) { s.write("HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\n\r\n"); } } });
  expect(await probeOf(`http://127.0.0.1:${throttled.port}`)).toEqual({ ok: true, note: "the probe got 503 SlowDown (throttled)" });
  using down = store(new Response(null, { status: 501 }), s3Error(500, "InternalError"));
  expect(await probeOf(`http://127.0.0.1:${down.port}`)).toEqual({ ok: false, reason: "upstream answered 500" });
  using missing = store(new Response(null, { status: 501 }), s3Error(404, "NoSuchBucket"));
  expect(await probeOf(`http://127.0.0.1:${missing.port}`)).toEqual({ ok: false, reason: "the upstream bucket does not exist (NoSuchBucket)" });
  using unavailable = store(new Response(null, { status: 503 }), s3Error(503, "ServiceUnavailable"));
  expect(await probeOf(`http://127.0.0.1:${unavailable.port}`)).toEqual({ ok: false, reason: "upstream answered 503" });
  // a HEAD 404 whose GET of a missing key fails with a 5xx: the store's reads fail, not ready
  using broken404 = store(new Response(null, { status: 404 }), s3Error(500, "InternalError"));
  expect(await probeOf(`http://127.0.0.1:${broken404.port}`)).toEqual({ ok: false, reason: "upstream answered 500" });
  // the follow-up GET's SlowDown told by S3's reason phrase alone (an empty body): throttled, up
  using slowGet = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data(s, d) { s.write(d.toString().startsWith("HEAD") ? "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n" : "HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\n\r\n"); } } });
  expect(await probeOf(`http://127.0.0.1:${slowGet.port}`)).toEqual({ ok: true, note: "the upstream does not implement HeadBucket (501); a GET got 503" });
  // (a store that says SlowDown in the body only, its reason phrase the usual one, as MinIO's Go
  // server writes it: the HEAD cannot tell, a GET of a missing key does; it was not ready)
  using slowBody = store(new Response(null, { status: 503 }), s3Error(503, "SlowDown"));
  expect(await probeOf(`http://127.0.0.1:${slowBody.port}`)).toEqual({ ok: true, note: "the probe got 503 SlowDown (throttled)" });
});

test("an https port (one that closes on plain http, as Bun's and nginx's stream TLS do) reached with http:// gets the https hint", async () => {
  const { mkdtempSync, readFileSync, rmSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(join(tmpdir(), "yata-probe-tls-"));
  try {
    const gen = Bun.spawn(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=probe",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdout: "ignore", stderr: "ignore" });
    expect(await gen.exited).toBe(0);
    using srv = Bun.serve({ hostname: "127.0.0.1", port: 0, tls: { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8") }, fetch: () => new Response("x") });
    const r = await probeOf(`http://127.0.0.1:${srv.port}`);
    expect(r).toEqual({ ok: false, reason: "upstream unreachable (UpstreamProtocolError): it closed the connection or answered in something other than HTTP: does the endpoint speak https? (then write https://)" });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a web server (no S3 API) answering 404 to everything is not ready: every read would be a 404", async () => {
  using srv = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(req.method === "HEAD" ? null : "<html><body>404 Not Found</body></html>", { status: 404, headers: { "content-type": "text/html" } }) });
  const r = await probeOf(`http://127.0.0.1:${srv.port}`);
  expect(r).toEqual({ ok: false, reason: "the endpoint answered 404 without an S3 error: is s3.endpoint the store's S3 API, with its scheme, port and path?" });
  // (an S3 store's own 404s stay told apart: NoSuchKey is ready, NoSuchBucket is not)
  using store = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => (req.method === "HEAD" ? new Response(null, { status: 404 }) : s3Error(404, "NoSuchKey")(req)) });
  expect((await probeOf(`http://127.0.0.1:${store.port}`)).ok).toBe(true);
});
