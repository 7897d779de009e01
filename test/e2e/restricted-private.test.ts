/**
 * A bucket not everyone may read answers `Cache-Control: private`, whatever restricts it: auth
 * (tested with the auth suites), an authorizer or an IP filter. A shared cache in front would
 * otherwise keep an object stored `public` and hand it to a client the filter or the authorizer
 * refuses (RFC 9111 §3.5); an open bucket relays the object's own Cache-Control.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startInProcess } from "./harness.ts";

setDefaultTimeout(30_000);

let store: ReturnType<typeof Bun.serve>;
beforeAll(() => {
  store = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("object", { headers: { etag: '"o"', "cache-control": "public, max-age=600, s-maxage=60", "content-type": "text/plain" } }) });
});
afterAll(() => store.stop(true));

test("an IP allow list or block list makes a bucket's answers private; an open bucket relays public", async () => {
  const s3 = (b: string) => `s3: { bucket: ${b}, endpoint: "http://127.0.0.1:${store.port}", retry: { max_attempts: 1 } }`;
  await using px = await startInProcess(
    `server: { address: 127.0.0.1, port: 0 }
buckets:
  - { name: allow, path_prefix: /allow, ip_filter: { allowlist: [127.0.0.0/8] }, ${s3("bkt-a")} }
  - { name: block, path_prefix: /block, ip_filter: { blocklist: [192.0.2.0/24] }, ${s3("bkt-b")} }
  - { name: open, path_prefix: /open, ${s3("bkt-c")} }
`,
    { probeIntervalMs: 600_000 },
  );
  for (const [path, cc] of [["/allow/k", "private, max-age=600"], ["/block/k", "private, max-age=600"], ["/open/k", "public, max-age=600, s-maxage=60"]]) {
    const r = await fetch(px.url(path!));
    expect([path, r.status, r.headers.get("cache-control"), await r.text()]).toEqual([path, 200, cc, "object"]);
  }
});
