/**
 * RFC 9112 §3.2: a request with more than one Host header, or a Host that is not host[:port]
 * (userinfo, a list, whitespace, a path), is answered 400 on both engines and both fronts, and
 * never reaches the upstream. Before, both were served (a duplicate read as the joined value).
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { rawHttp, rawStatus } from "../helpers/raw-http.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";
import { startS3FrontEnv, type S3FrontEnv } from "./s3-front-helpers.ts";

setDefaultTimeout(30_000);

let s3: S3Fixture;
const proxies: Record<string, InProcessProxy> = {};
const fronts: Record<string, S3FrontEnv> = {};

const raw = rawHttp;
const status = rawStatus;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "hosts", public: true }], credentials: [] });
  await s3.put("hosts", "a.txt", "body of a");
  for (const engine of ["bun", "node"]) {
    proxies[engine] = await startInProcess(`server: { address: 127.0.0.1, port: 0, engine: ${engine} }\nbuckets:\n` + bucketYaml({ name: "h", prefix: "/h", bucket: "hosts", endpoint: s3.endpoint }));
    // the S3 front with virtual-hosted addressing (bucket `data` reads anonymously)
    fronts[engine] = await startS3FrontEnv({ engine: engine as "bun" | "node", s3Extra: "  domain: s3.test\n" });
    await fronts[engine].s3.put("data", "a.txt", "AAA");
  }
});
afterAll(async () => {
  for (const p of Object.values(proxies)) await p.stop();
  for (const f of Object.values(fronts)) await f.stop();
  await s3?.stop();
});

for (const engine of ["bun", "node"]) {
  test(`${engine} engine: two Host headers, or a Host with userinfo, a list or a path → 400; one plain Host (with or without a port, IPv6 too) is served`, async () => {
    const port = Number(new URL(proxies[engine].url("/")).port);
    const get = (hosts: string[]) => raw(port, `GET /h/a.txt HTTP/1.1\r\n${hosts.map((h) => `Host: ${h}\r\n`).join("")}Connection: close\r\n\r\n`);
    const before = s3.requests.filter((r) => !r.admin && r.pathname === "/hosts/a.txt").length;
    for (const hosts of [["x", "y"], ["u:p@evil"], ["a, b"], ["x/y"]]) expect([hosts, status(await get(hosts))]).toEqual([hosts, 400]);
    expect(s3.requests.filter((r) => !r.admin && r.pathname === "/hosts/a.txt").length).toBe(before);
    for (const hosts of [["example.com"], ["example.com:8080"], ["[::1]:8080"], ["127.0.0.1"]]) {
      const r = await get(hosts);
      expect([hosts, status(r)]).toEqual([hosts, 200]);
      expect(r).toEndWith("body of a");
    }
  });
}

// A port must be 1-5 digits, at most 65535 (RFC 3986 §3.2.3 with RFC 9110 §4.2's range). Before,
// only some characters were refused: `x:abc` was served on the plain front, and on the S3 front
// `data.s3.test:abc` was read as a virtual-hosted request for bucket `data`.
const BAD_PORTS = ["x:abc", "x:99999", "x:", "x:123456", "x:-1", "x:8o", ":80", "[::1]:abc", "[::1]x", "[::1", "[zz]", "exämple.com"];
const GOOD_PORTS = ["x:0", "x:65535", "x:08080", "[::1]", "[fe80::1%25eth0]:8080", "1.2.3.4:80", "a_b-c~d.e"];

for (const engine of ["bun", "node"]) {
  test(`${engine} engine, plain front: a Host with a port that is not 0-65535 (or no host before it) → JSON 400, never sent upstream`, async () => {
    const port = Number(new URL(proxies[engine].url("/")).port);
    const get = (host: string) => raw(port, `GET /h/a.txt HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    const before = s3.requests.filter((r) => !r.admin && r.pathname === "/hosts/a.txt").length;
    for (const host of BAD_PORTS) {
      const r = await get(host);
      expect([host, status(r)]).toEqual([host, 400]);
      expect(JSON.parse(r.slice(r.indexOf("\r\n\r\n") + 4))).toMatchObject({ error: "BadRequest" });
    }
    expect(s3.requests.filter((r) => !r.admin && r.pathname === "/hosts/a.txt").length).toBe(before);
    for (const host of GOOD_PORTS) {
      const r = await get(host);
      expect([host, status(r)]).toEqual([host, 200]);
      expect(r).toEndWith("body of a");
    }
  });

  test(`${engine} engine, S3 front (domain set): <bucket>.<domain> with a bad port, two Host headers, userinfo → S3 XML 400 saying what is wrong with the Host (it was S3's bare "Invalid Request"), not a virtual-hosted read`, async () => {
    const env = fronts[engine];
    const get = (...hosts: string[]) => raw(env.port, `GET /a.txt HTTP/1.1\r\n${hosts.map((h) => `Host: ${h}\r\n`).join("")}Connection: close\r\n\r\n`);
    env.mark();
    for (const hosts of [["data.s3.test:abc"], ["data.s3.test:99999"], ["data.s3.test:"], ["data.s3.test:1x"], ["data.s3.test", "private.s3.test"], ["private.s3.test@data.s3.test"]]) {
      const r = await get(...hosts);
      expect([hosts, status(r)]).toEqual([hosts, 400]);
      expect(r).toContain("<Code>InvalidRequest</Code><Message>The Host header must name one host (host or host:port)</Message>");
    }
    expect(env.upstreamCalls()).toEqual([]);
    for (const host of ["data.s3.test", `data.s3.test:${env.port}`, "data.s3.test:65535"]) {
      const r = await get(host);
      expect([host, status(r)]).toEqual([host, 200]);
      expect(r).toEndWith("AAA");
    }
  });
}

for (const engine of ["bun", "node"])
  test(`${engine} engine, both fronts: an HTTP/1.1 request without Host is 400, not chunked, and the connection closed (node: Content-Length: 0); HTTP/1.0 needs none`, async () => {
    // (the node engine's was Bun's node:http's own, chunked: Transfer-Encoding: chunked and a 0 chunk;
    // the bun engine's is Bun.serve's own, before any handler: no length, ended by the close)
    for (const port of [Number(new URL(proxies[engine].url("/")).port), fronts[engine].port]) {
      const got = await raw(port, "GET /h/a.txt HTTP/1.1\r\n\r\n", 5_000);
      const head = got.slice(0, got.indexOf("\r\n\r\n")).toLowerCase().split("\r\n");
      expect({ status: status(got), length: head.includes("content-length: 0"), chunked: head.some((l) => l.startsWith("transfer-encoding")), close: head.includes("connection: close") }).toEqual({ status: 400, length: engine === "node", chunked: false, close: true });
    }
    const old = await raw(Number(new URL(proxies[engine].url("/")).port), "GET /h/a.txt HTTP/1.0\r\n\r\n", 5_000);
    expect([status(old), old.endsWith("body of a")]).toEqual([200, true]);
  });

test("node engine, both fronts: an absolute-form target whose host part is no host (a # in it) is 400 in the front's dialect with a request id and a Content-Length (it was the plain front's JSON without either, chunked, on the S3 front too)", async () => {
  const fronts_ = [
    { port: Number(new URL(proxies.node.url("/")).port), prefix: "/h", dialect: (body: string) => JSON.parse(body).error === "BadRequest" && typeof JSON.parse(body).request_id === "string" },
    { port: fronts.node.port, prefix: "", dialect: (body: string) => body.includes("<Code>InvalidRequest</Code>") && body.includes("<RequestId>") },
  ];
  for (const { port, prefix, dialect } of fronts_) {
    for (const target of [`http://x#${prefix}/a.txt`, `https://x#y${prefix}/a.txt?q=1`]) {
      const r = await raw(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const head = r.slice(0, r.indexOf("\r\n\r\n")).toLowerCase();
      const body = r.slice(r.indexOf("\r\n\r\n") + 4);
      expect({ port, target, status: status(r), length: /\r\ncontent-length: \d+/.test(head), dialect: dialect(body) }).toEqual({ port, target, status: 400, length: true, dialect: true });
    }
  }
});
