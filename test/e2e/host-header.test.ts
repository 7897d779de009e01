/**
 * RFC 9112 §3.2: a request with more than one Host header, or a Host that is not host[:port]
 * (userinfo, a list, whitespace, a path), is answered 400 on both engines and both fronts, and
 * never reaches the upstream. Before, both were served (a duplicate read as the joined value).
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { connect } from "node:net";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

setDefaultTimeout(30_000);

let s3: S3Fixture;
const proxies: Record<string, InProcessProxy> = {};

function raw(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1", () => sock.write(head));
    let buf = "";
    sock.on("data", (d) => (buf += d.toString("latin1")));
    sock.on("error", reject);
    sock.on("close", () => resolve(buf));
  });
}
const status = (r: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(r)?.[1] ?? 0);

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "hosts", public: true }], credentials: [] });
  await s3.put("hosts", "a.txt", "body of a");
  for (const engine of ["bun", "node"]) {
    proxies[engine] = await startInProcess(`server: { address: 127.0.0.1, port: 0, engine: ${engine} }\nbuckets:\n` + bucketYaml({ name: "h", prefix: "/h", bucket: "hosts", endpoint: s3.endpoint }));
  }
});
afterAll(async () => {
  for (const p of Object.values(proxies)) await p.stop();
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
