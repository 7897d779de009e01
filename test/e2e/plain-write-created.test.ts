/**
 * A plain-front PUT to an S3-compatible store that answers 201 Created (WebDAV-style gateways,
 * some object stores) stored the object: the client gets the proxy's 200 with the ETag, and the
 * cache is purged, not a 502 for a write that happened. Likewise a DELETE answered 202 Accepted.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startInProcess } from "./harness.ts";

setDefaultTimeout(30_000);

let store: ReturnType<typeof Bun.serve>;
const objects = new Map<string, string>();

beforeAll(() => {
  store = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: async (req) => {
      const path = new URL(req.url).pathname;
      if (req.method === "PUT") {
        objects.set(path, await req.text());
        return new Response(null, { status: 201, headers: { etag: '"created"' } });
      }
      if (req.method === "DELETE") {
        objects.delete(path);
        return new Response(null, { status: 202 });
      }
      const body = objects.get(path);
      if (body === undefined) return new Response("<Error><Code>NoSuchKey</Code></Error>", { status: 404, headers: { "content-type": "application/xml" } });
      return new Response(req.method === "HEAD" ? null : body, { headers: { etag: `"${body.length}"`, "content-type": "text/plain", "content-length": String(body.length) } });
    },
  });
});
afterAll(() => store.stop(true));

/** A read-write, caching bucket on the store. */
const proxy = () =>
  startInProcess(
    `server: { address: 127.0.0.1, port: 0 }
buckets:
  - { name: b, path_prefix: /b, access: read-write, auth: { enabled: false, anonymous_writes: true }, cache: { enabled: true, ttl_seconds: 600 }, s3: { bucket: data, endpoint: "http://127.0.0.1:${store.port}", access_key: AKIDCREATED, secret_key: created-secret-0123456789, retry: { max_attempts: 1 } } }
`,
    { probeIntervalMs: 600_000 },
  );

test("a 201 Created answer to a plain-front PUT is the write's success: 200 with the ETag, and the cached copy is purged", async () => {
  await using px = await proxy();
  objects.set("/data/k.txt", "old");
  expect(await (await fetch(px.url("/b/k.txt"))).text()).toBe("old");
  const put = await fetch(px.url("/b/k.txt"), { method: "PUT", body: "brand new" });
  expect(put.status).toBe(200);
  expect(await put.json()).toEqual({ key: "k.txt", etag: '"created"' });
  expect(objects.get("/data/k.txt")).toBe("brand new");
  expect(await (await fetch(px.url("/b/k.txt"))).text()).toBe("brand new");
});

test("a 202 Accepted answer to a plain-front DELETE is the delete's success: 204, and the cached copy is purged (it was a 502 and the cached copy served on)", async () => {
  await using px = await proxy();
  objects.set("/data/gone.txt", "cached");
  expect(await (await fetch(px.url("/b/gone.txt"))).text()).toBe("cached");
  const del = await fetch(px.url("/b/gone.txt"), { method: "DELETE" });
  expect(del.status).toBe(204);
  expect(objects.has("/data/gone.txt")).toBe(false);
  expect((await fetch(px.url("/b/gone.txt"))).status).toBe(404);
});
