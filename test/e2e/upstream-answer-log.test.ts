/**
 * An upstream that answered, but not with something a read can use (a redirect with no S3 error,
 * a 5xx with none): the access line says what it answered, not an opaque "_OTHER".
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { bucketYaml, startProxy } from "./harness.ts";

setDefaultTimeout(30_000);

test("a redirect to https with no S3 error is logged as upstream_error HTTP_301; one with S3's code keeps only s3_error", async () => {
  using srv = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const u = new URL(req.url);
      if (u.pathname.startsWith("/coded/"))
        return new Response(`<?xml version="1.0"?><Error><Code>PermanentRedirect</Code><Message>m</Message><Endpoint>x.s3.eu-west-1.amazonaws.com</Endpoint></Error>`, { status: 301, headers: { "content-type": "application/xml" } });
      return new Response(null, { status: 301, headers: { location: `https://${u.host}${u.pathname}` } });
    },
  });
  const endpoint = `http://127.0.0.1:${srv.port}`;
  const p = await startProxy(`server: { address: 127.0.0.1, port: 0 }\nbuckets:\n${bucketYaml({ name: "plain", prefix: "/plain", bucket: "plain", endpoint })}${bucketYaml({ name: "coded", prefix: "/coded", bucket: "coded", endpoint })}`);
  try {
    const messages: string[] = [];
    for (const [name, id] of [["plain", "redir-plain"], ["coded", "redir-coded"]]) {
      const res = await fetch(p.url(`/${name}/x.txt`), { headers: { "x-request-id": id! } });
      expect(res.status).toBe(502);
      messages.push(((await res.json()) as { message: string }).message);
    }
    // the client is told why (it read "The upstream failed"), and nothing of where it was sent
    expect(messages).toEqual([
      "The upstream answered with a redirect (HTTP 301), which the proxy does not follow: the bucket's s3.endpoint or s3.region in the proxy's configuration does not name where the bucket is",
      "The upstream answered with a redirect (PermanentRedirect), which the proxy does not follow: the bucket's s3.endpoint or s3.region in the proxy's configuration does not name where the bucket is",
    ]);
    const plain = await p.waitForLog((l) => l.msg === "request" && l.request_id === "redir-plain");
    expect({ error: plain.error, upstream_error: plain.upstream_error, s3_error: plain.s3_error }).toEqual({ error: "BadGateway", upstream_error: "HTTP_301", s3_error: undefined });
    const coded = await p.waitForLog((l) => l.msg === "request" && l.request_id === "redir-coded");
    expect({ error: coded.error, upstream_error: coded.upstream_error, s3_error: coded.s3_error }).toEqual({ error: "BadGateway", upstream_error: undefined, s3_error: "PermanentRedirect" });
  } finally {
    await p.stop();
  }
});

test("an https port's 400 to plain http (Go's words) is the upstream's failure, 502 and upstream_error HTTP_400, not the client's 400; a balancer's 400 without an S3 error stays the request's, and a HEAD's bodiless 400 S3's", async () => {
  using srv = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) => {
      if (req.method === "HEAD") return new Response(null, { status: 400 });
      // (a balancer in front of the store refusing a header too large: the request's 400)
      if (new URL(req.url).pathname.endsWith("/big.txt")) return new Response("<html><body><h1>400 Bad request</h1>Your browser sent an invalid request.</body></html>", { status: 400, headers: { "content-type": "text/html" } });
      return new Response("Client sent an HTTP request to an HTTPS server.\n", { status: 400, headers: { "content-type": "text/plain" } });
    },
  });
  const endpoint = `http://127.0.0.1:${srv.port}`;
  const p = await startProxy(`server: { address: 127.0.0.1, port: 0 }\nbuckets:\n${bucketYaml({ name: "tls", prefix: "/tls", bucket: "tls", endpoint })}`);
  try {
    const get = await fetch(p.url("/tls/x.txt"), { headers: { "x-request-id": "https-port-get" } });
    expect(get.status).toBe(502);
    expect(await get.text()).not.toContain("HTTPS server");
    const line = await p.waitForLog((l) => l.msg === "request" && l.request_id === "https-port-get");
    expect({ error: line.error, upstream_error: line.upstream_error }).toEqual({ error: "BadGateway", upstream_error: "HTTP_400" });
    const big = await fetch(p.url("/tls/big.txt"));
    await big.arrayBuffer();
    expect(big.status).toBe(400);
    // (S3 answers a HEAD 400 with no body, e.g. for an SSE-C object read without its key)
    const head = await fetch(p.url("/tls/x.txt"), { method: "HEAD" });
    expect(head.status).toBe(400);
  } finally {
    await p.stop();
  }
});

test("a bare 503 or 429 (no S3 error code) is logged as upstream_error HTTP_503 / HTTP_429: the line tells it from the proxy's own 503 (circuit open, overload)", async () => {
  using srv = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) => new Response(null, { status: new URL(req.url).pathname.includes("429") ? 429 : 503, headers: { "retry-after": "4" } }),
  });
  const endpoint = `http://127.0.0.1:${srv.port}`;
  const p = await startProxy(`server: { address: 127.0.0.1, port: 0 }\nbuckets:\n${bucketYaml({ name: "busy", prefix: "/busy", bucket: "busy", endpoint })}`);
  try {
    for (const [path, id, error, upstream] of [
      ["/busy/503.txt", "bare-503", "ServiceUnavailable", "HTTP_503"],
      ["/busy/429.txt", "bare-429", "SlowDown", "HTTP_429"],
    ] as const) {
      const res = await fetch(p.url(path), { headers: { "x-request-id": id } });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("4");
      await res.arrayBuffer();
      const line = await p.waitForLog((l) => l.msg === "request" && l.request_id === id);
      expect({ error: line.error, upstream_error: line.upstream_error, s3_error: line.s3_error }).toEqual({ error, upstream_error: upstream, s3_error: undefined });
    }
  } finally {
    await p.stop();
  }
});
