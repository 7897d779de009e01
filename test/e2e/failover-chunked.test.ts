/**
 * A body of unknown length (the upstream answers `Transfer-Encoding: chunked`, as some S3-compatible
 * gateways do; S3 always sends Content-Length) that the upstream cuts within
 * server.buffer_threshold_bytes is that replica's failure, on both upstream clients: the bytes are
 * held inside the attempt, as a known-length body's are, so the next replica answers. Before, the
 * answer was handed over at its head: the client got a 502 (a cached bucket, reading it whole) or a
 * 200 whose connection was cut, and the secondary was never tried.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

setDefaultTimeout(30_000);

const KEY = { accessKeyId: "AKIACHUNKEDFAILOVER1", secretAccessKey: "chunked/failover/secret/EXAMPLE/000000" };
let primary: S3Fixture;
let secondary: S3Fixture;
const proxies: Record<"own" | "fetch", ProxyProcess> = {} as never;

const object = (c: string, n: number) => new Uint8Array(n).fill(c.charCodeAt(0));
const SIZE = 600 * 1024;

beforeAll(async () => {
  primary = await startS3Fixture({ buckets: [{ name: "p-bucket" }], credentials: [{ ...KEY, buckets: ["p-bucket"] }] });
  secondary = await startS3Fixture({ buckets: [{ name: "s-bucket" }], credentials: [{ ...KEY, buckets: ["s-bucket"] }] });
  for (const k of ["a.bin", "b.bin", "c.bin", "d.bin"]) {
    await primary.put("p-bucket", k, object("P", SIZE));
    await secondary.put("s-bucket", k, object("S", SIZE));
  }
  const replica = (name: string, bucket: string, endpoint: string, priority: number) =>
    `        - { name: ${name}, bucket: ${bucket}, region: us-east-1, endpoint: "${endpoint}", access_key: "${KEY.accessKeyId}", secret_key: "${KEY.secretAccessKey}", priority: ${priority} }\n`;
  const bucket = (name: string, cache: boolean) =>
    `  - name: ${name}\n    path_prefix: /${name}\n` +
    (cache ? "    cache: { enabled: true }\n" : "") +
    `    s3:\n      retry: { max_attempts: 1 }\n      replicas:\n` +
    replica("primary", "p-bucket", primary.endpoint, 1) +
    replica("secondary", "s-bucket", secondary.endpoint, 2);
  for (const client of ["own", "fetch"] as const) {
    proxies[client] = await startProxy(
      `server: { address: 127.0.0.1, port: 0, buffer_threshold_bytes: 1048576${client === "fetch" ? ", upstream_client: fetch" : ""} }\n` +
        `cache: { enabled: true, cache_layers: [memory], memory: { max_item_size_mb: 2, max_cache_size_mb: 16 } }\n` +
        `buckets:\n` + bucket("live", false) + bucket("cached", true),
    );
  }
});

afterAll(async () => {
  for (const p of Object.values(proxies)) await p?.stop();
  await primary?.stop();
  await secondary?.stop();
});

for (const client of ["own", "fetch"] as const) {
  describe(`a chunked body cut within buffer_threshold_bytes (${client === "own" ? "own client" : "fetch"})`, () => {
    test("uncached and cached buckets: the secondary answers the whole object; nothing of the cut primary reaches the client", async () => {
      const px = proxies[client];
      for (const [path, key] of [["/live/", client === "own" ? "a.bin" : "c.bin"], ["/cached/", client === "own" ? "b.bin" : "d.bin"]] as const) {
        primary.faults.set(`/p-bucket/${key}`, { kind: "truncate", afterBytes: 300 * 1024, times: 1 });
        const res = await fetch(px.url(path + key));
        expect(res.status).toBe(200);
        const body = new Uint8Array(await res.arrayBuffer());
        expect(body.byteLength).toBe(SIZE);
        expect(body.every((b) => b === 83)).toBe(true); // "S": the secondary's, whole
        // (the access line is written once the body went out: it may follow the client's last byte)
        const line = await waitFor(() => px.logs().find((l) => l.msg === "request" && l.path === path + key), { timeoutMs: 5000, message: `the access line of ${path + key}` });
        expect(line.replica).toBe("secondary");
      }
    });

    test("a whole chunked body within the threshold is answered with its Content-Length, and logged and metered with its size", async () => {
      const px = proxies[client];
      const key = client === "own" ? "a.bin" : "c.bin";
      // (the fixture's slowBody fault answers chunked, without Content-Length)
      primary.faults.set(`/p-bucket/${key}`, { kind: "slowBody", bytesPerTick: 256 * 1024, ms: 1 });
      try {
        const res = await fetch(px.url("/live/" + key));
        expect(res.headers.get("content-length")).toBe(String(SIZE));
        const body = new Uint8Array(await res.arrayBuffer());
        expect(body.byteLength).toBe(SIZE);
        expect(body.every((b) => b === 80)).toBe(true); // "P": the primary's
        const line = await waitFor(() => px.logs().findLast((l) => l.msg === "request" && l.path === "/live/" + key && l.replica === "primary"), { timeoutMs: 5000, message: "the access line" });
        expect(line.bytes).toBe(SIZE);
      } finally {
        primary.faults.delete(`/p-bucket/${key}`);
      }
    });
  });
}
