/**
 * An upstream answer with `Vary: *` is one no cache may reuse (RFC 9111 §4.1: a stored response
 * whose Vary holds "*" always fails to match): the cache stored it as any other 200 and served it
 * as a HIT. It is served to the request that asked (MISS), not stored; every request goes upstream.
 * A Vary naming request headers (the proxy sends none of the client's to a fill) is stored as before.
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
    const vary = head.includes(" /data/star ") ? "Vary: *\r\n" : head.includes(" /data/list ") ? "Vary: Accept-Encoding, *\r\n" : "Vary: Origin\r\n";
    return { bytes: `HTTP/1.1 200 OK\r\nETag: "abc"\r\nCache-Control: max-age=600\r\n${vary}Content-Type: text/plain\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`, end: false };
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
