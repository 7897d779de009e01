/**
 * An answer the bun engine's listener cannot send (a file body Bun fails to open: a disk-cache hit
 * whose file an eviction or purge unlinked after the lookup) gets the listener's own error answer:
 * S3's XML with x-amz-request-id on the S3 listener, the plain front's JSON with x-request-id on the
 * main one, no-store, nothing of the failure (its path) in it. It was a bare JSON 500 on both, with
 * no request id, the same on the S3 listener, whose clients parse XML.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { listenBun } from "../../src/server.ts";
import { fromProxyError, s3ErrorResponse } from "../../src/fronts/s3/errors.ts";
import { nullLogger } from "../../src/observe/log.ts";

setDefaultTimeout(30_000);

const MISSING = "/tmp/yatagarasu-listener-error-answer-no-such-file";
const cfg = parseConfig(`server: { address: 127.0.0.1, port: 0 }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bb, endpoint: "http://127.0.0.1:1" } }\n`);
let app: App;
beforeAll(async () => {
  app = await App.create(cfg, { log: nullLogger, probeIntervalMs: 600_000 });
});
afterAll(() => app?.close());

const unopenable = () => () => new Response(Bun.file(MISSING));

test.each([
  ["the S3 listener", "application/xml", "x-amz-request-id", (err: Parameters<typeof fromProxyError>[0], id: string) => s3ErrorResponse(fromProxyError(err), { requestId: id })],
  ["the main listener", "application/json", "x-request-id", undefined],
] as const)("%s: a body Bun cannot open is answered in the listener's dialect with a request id", async (_name, type, idHeader, errorAnswer) => {
  const l = listenBun(app, cfg, { as: { address: "127.0.0.1", port: 0, handler: unopenable, ...(errorAnswer ? { errorAnswer } : {}) } });
  try {
    const res = await fetch(`http://127.0.0.1:${l.port}/b/k`);
    const body = await res.text();
    expect(res.status).toBe(500);
    expect(res.headers.get("content-type")).toBe(type);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const id = res.headers.get(idHeader);
    expect(id).toBeString();
    expect(body).toContain(id!);
    expect(body).toContain("InternalError");
    expect(body).not.toContain(MISSING);
  } finally {
    await l.stop(true);
  }
});
