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
    for (const [name, id] of [["plain", "redir-plain"], ["coded", "redir-coded"]]) {
      const res = await fetch(p.url(`/${name}/x.txt`), { headers: { "x-request-id": id! } });
      expect(res.status).toBe(502);
      await res.arrayBuffer();
    }
    const plain = await p.waitForLog((l) => l.msg === "request" && l.request_id === "redir-plain");
    expect({ error: plain.error, upstream_error: plain.upstream_error, s3_error: plain.s3_error }).toEqual({ error: "BadGateway", upstream_error: "HTTP_301", s3_error: undefined });
    const coded = await p.waitForLog((l) => l.msg === "request" && l.request_id === "redir-coded");
    expect({ error: coded.error, upstream_error: coded.upstream_error, s3_error: coded.s3_error }).toEqual({ error: "BadGateway", upstream_error: undefined, s3_error: "PermanentRedirect" });
  } finally {
    await p.stop();
  }
});
