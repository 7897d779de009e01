/**
 * The reserved paths (/health, /ready, /metrics, /admin/...) are never routed to a bucket, even one
 * mounted at "/", however the target spells them: routing decodes escapes and collapses repeated
 * slashes, so the control check must too (//health and /%2Fhealth read a root bucket's object).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { isControlTarget } from "../../src/control/paths.ts";
import { startInProcess } from "../e2e/harness.ts";

setDefaultTimeout(30_000);

describe("isControlTarget", () => {
  test("the reserved paths as routing reads them: escapes decoded, repeated slashes collapsed", () => {
    for (const t of ["/health", "/ready", "/metrics", "/admin", "/admin/reload", "/%68ealth", "//health", "///ready", "/%2Fhealth", "//admin/cache/stats", "/%2f%2fmetrics", "http://h//health?x=1"]) {
      expect([t, isControlTarget(t)]).toEqual([t, true]);
    }
    for (const t of ["/healthz", "/products/health", "//products/health", "/adminx", "/%zz", "/"]) {
      expect([t, isControlTarget(t)]).toEqual([t, false]);
    }
  });
});

let store: ReturnType<typeof Bun.serve>;
beforeAll(() => {
  store = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (req) => new Response(`object ${new URL(req.url).pathname}`, { headers: { etag: '"o"' } }) });
});
afterAll(() => store.stop(true));

test("a bucket mounted at / never answers //health, /%2Fhealth or //admin/...: the control plane does", async () => {
  await using px = await startInProcess(
    `server: { address: 127.0.0.1, port: 0 }
buckets:
  - { name: root, path_prefix: /, s3: { bucket: data, endpoint: "http://127.0.0.1:${store.port}", retry: { max_attempts: 1 } } }
`,
    { probeIntervalMs: 600_000 },
  );
  expect(await (await fetch(px.url("/some/key"))).text()).toBe("object /data/some/key");
  for (const p of ["//health", "/%2Fhealth"]) {
    const r = await fetch(px.url(p));
    expect([p, r.status, await r.json()]).toEqual([p, 200, { status: "ok" }]);
  }
  const admin = await fetch(px.url("//admin/cache/stats"));
  expect(await admin.text()).not.toContain("object ");
});
