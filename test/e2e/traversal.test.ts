/**
 * Traversal through the real listeners, with raw request bytes (fetch would normalize the path
 * before sending it). node:http hands the proxy the request target as received, so every `..`
 * form is a 400; Bun.serve resolves literal and %2e dot segments before the handler runs (the
 * documented limit), so there they can only route to another prefix, never escape a bucket.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

let s3: S3Fixture;
const proxies: Record<string, InProcessProxy> = {};

function rawGet(port: number, target: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1", () => sock.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let buf = "";
    sock.on("data", (d) => (buf += d.toString("latin1")));
    sock.on("error", reject);
    sock.on("close", () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1] ?? 0)));
  });
}

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "pub", public: true }], credentials: [] });
  await s3.put("pub", "ok.txt", "ok");
  for (const engine of ["bun", "node"]) {
    proxies[engine] = await startInProcess(`server: { address: 127.0.0.1, port: 0, engine: ${engine} }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`);
  }
});
afterAll(async () => {
  for (const p of Object.values(proxies)) await p.stop();
  await s3?.stop();
});

const ESCAPES = ["/pub/../etc/passwd", "/pub/a/../../x", "/pub/%2e%2e/x", "/pub/%2E%2e/x", "/pub/.%2e/x", "/pub/./ok.txt"];
const ENCODED = ["/pub/a%2F..%2Fb", "/pub/%00x", "/pub/a%0d%0ab", "/pub/%zz"];

describe("node engine (raw request target)", () => {
  for (const t of [...ESCAPES, ...ENCODED]) test(`rejects ${t} with 400`, async () => expect(await rawGet(proxies.node.port, t)).toBe(400));
  test("a plain key still works", async () => expect(await rawGet(proxies.node.port, "/pub/ok.txt")).toBe(200));
});

describe("bun engine", () => {
  for (const t of ENCODED) test(`rejects ${t} with 400`, async () => expect(await rawGet(proxies.bun.port, t)).toBe(400));
  test("literal dot segments are resolved before routing (known limit): /pub/../etc/passwd is /etc/passwd, a 404 outside every bucket", async () => {
    expect(await rawGet(proxies.bun.port, "/pub/../etc/passwd")).toBe(404);
  });
});
