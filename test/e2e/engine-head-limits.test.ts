/**
 * With `max_header_size` lowered below the listener's own head limit, an over-long URI is the
 * proxy's 414 and over-large header fields its JSON 431, on both engines. node:http's parser was
 * given the configured size (+1 KiB) as its head limit, request line included, so on the node
 * engine a URI longer than that got node's bare 431 (no request id, no log line) where the bun
 * engine answered 414 UriTooLong.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { rawHttp, rawStatus } from "../helpers/raw-http.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { listenerHeaderLimit } from "../../src/http/header-limit.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

setDefaultTimeout(30_000);

const MAX_HEADER = 4096;
let s3: S3Fixture;
const proxies: Record<string, InProcessProxy> = {};

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "limits", public: true }], credentials: [] });
  for (const engine of ["bun", "node"]) {
    proxies[engine] = await startInProcess(
      `server: { address: 127.0.0.1, port: 0, engine: ${engine}, security_limits: { max_header_size: ${MAX_HEADER}, max_uri_length: 2048 } }\nbuckets:\n` +
        bucketYaml({ name: "l", prefix: "/l", bucket: "limits", endpoint: s3.endpoint }),
    );
  }
});
afterAll(async () => {
  for (const p of Object.values(proxies)) await p.stop();
  await s3?.stop();
});

const bodyOf = (raw: string): string => raw.slice(raw.indexOf("\r\n\r\n") + 4);

for (const engine of ["bun", "node"]) {
  test(`${engine} engine: under the listener's head limit, a long URI is the proxy's 414 and large header fields its 431`, async () => {
    const port = Number(new URL(proxies[engine].url("/")).port);
    // well above max_header_size, still under the listener's limit (16 KiB in `bun test`)
    const size = Math.floor((MAX_HEADER * 2 + listenerHeaderLimit()) / 3);
    expect(size).toBeGreaterThan(MAX_HEADER + 2048);
    const longUri = await rawHttp(port, `GET /l/a.txt?q=${"a".repeat(size)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(rawStatus(longUri)).toBe(414);
    expect(JSON.parse(bodyOf(longUri)).error).toBe("UriTooLong");
    const bigHead = await rawHttp(port, `GET /l/a.txt HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(size)}\r\nConnection: close\r\n\r\n`);
    expect(rawStatus(bigHead)).toBe(431);
    expect(JSON.parse(bodyOf(bigHead)).error).toBe("HeadersTooLarge");
  });
}
