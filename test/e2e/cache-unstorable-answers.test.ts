/**
 * Upstream answers a cache must not reuse, which the cache stored as any other 200 and served as a
 * HIT: one with `Vary: *` (RFC 9111 §4.1: a stored response whose Vary holds "*" always fails to
 * match); one of an object encrypted with a customer key (SSE-C), readable only with that key,
 * which a fill never sends (AWS S3 answers such a read 400; an S3 look-alike that does not enforce
 * the key answered it). Each is served to the request that asked (MISS), not stored; every request
 * goes upstream. A Vary naming request headers (the proxy sends none of the client's to a fill) and
 * an SSE-S3 object are stored as before.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startRawStore, type RawStore } from "../helpers/raw-store.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

setDefaultTimeout(30_000);

const BODY = "abcdefghijklmnopqrstuvwxyz";
let store: RawStore;
let px: InProcessProxy;

beforeAll(async () => {
  store = await startRawStore((head) => {
    const key = / \/data\/(\w+) /.exec(head)?.[1] ?? "";
    const vary = ({ star: "Vary: *\r\n", list: "Vary: Accept-Encoding, *\r\n", origin: "Vary: Origin\r\n" } as Record<string, string>)[key] ?? "";
    const sse = key === "ssec" ? "x-amz-server-side-encryption-customer-algorithm: AES256\r\nx-amz-server-side-encryption-customer-key-MD5: ZjQrne1X/iTcskbY2m3tFg==\r\n" : "x-amz-server-side-encryption: AES256\r\n";
    return { bytes: `HTTP/1.1 200 OK\r\nETag: "abc"\r\nCache-Control: max-age=600\r\n${vary}${sse}Content-Type: text/plain\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`, end: false };
  });
  const b = bucketYaml({ name: "cached", prefix: "/cached", bucket: "data", endpoint: `http://127.0.0.1:${store.port}`, key: "AKIAVARYSTAR", secret: "s3cret-vary-star", extra: "    cache: { enabled: true }\n" });
  px = await startInProcess(`server: { address: 127.0.0.1, port: 0 }\ncache: { enabled: true }\nbuckets:\n${b}`);
});
afterAll(async () => {
  await px?.stop();
  store?.close();
});

test("a 200 with Vary: * (alone or in a list) is never stored; one with Vary: Origin is", async () => {
  const seen: string[] = [];
  for (const key of ["star", "star", "list", "list", "origin", "origin"]) {
    const res = await fetch(px.url(`/cached/${key}`));
    seen.push(`${key} ${res.status} ${res.headers.get("x-cache")} ${await res.text()}`);
  }
  expect(seen).toEqual([`star 200 MISS ${BODY}`, `star 200 MISS ${BODY}`, `list 200 MISS ${BODY}`, `list 200 MISS ${BODY}`, `origin 200 MISS ${BODY}`, `origin 200 HIT ${BODY}`]);
  expect(store.seen.filter((s) => s === "GET /data/star").length).toBe(2);
});

test("an answer marked as encrypted with a customer key is never stored; one with SSE-S3 is", async () => {
  const seen: string[] = [];
  for (const key of ["ssec", "ssec", "sses3", "sses3"]) {
    const res = await fetch(px.url(`/cached/${key}`));
    seen.push(`${key} ${res.status} ${res.headers.get("x-cache")} ${await res.text()}`);
  }
  expect(seen).toEqual([`ssec 200 MISS ${BODY}`, `ssec 200 MISS ${BODY}`, `sses3 200 MISS ${BODY}`, `sses3 200 HIT ${BODY}`]);
  expect(store.seen.filter((s) => s === "GET /data/ssec").length).toBe(2);
});
