/**
 * The benchmark's origin (bench/scenarios.ts startOrigin, nginx) takes the uploads the bench sends
 * through the S3 front as S3 would: the 1 KiB PutObject to `/sink/` (bench:gate's s3_put_vs_get,
 * bench/live-ab.ts, bench/uploads.ts) and the WebDAV PUT under `/uploads/` (the 100 MiB upload)
 * answer with an ETag, so the S3 front relays 200 (an upstream's 2xx without one is its 500
 * InternalError: every PutObject of the bench failed, and the gate with it).
 *
 * Skipped (with the reason) when nginx is not installed.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nginxBin, type Nginx } from "../../bench/lib.ts";
import { proxyYaml, s3PutHeaders, startOrigin } from "../../bench/scenarios.ts";
import { startBothFronts } from "../helpers/both-fronts.ts";

setDefaultTimeout(30_000);

const installed = nginxBin() !== null;
if (!installed) console.warn("test/bench/origin-put: skipped, nginx is not installed (apt-get install -y nginx-light)");

describe.skipIf(!installed)("the bench origin answers the bench's uploads as S3 does", () => {
  let dir: string;
  let origin: Nginx;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "yata-origin-put-"));
    const root = join(dir, "www");
    mkdirSync(join(root, "bucket"), { recursive: true });
    writeFileSync(join(root, "bucket", "1k.bin"), "a".repeat(1024));
    origin = await startOrigin({ dir, root, cleanup: () => {} });
  });
  afterAll(async () => {
    await origin?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("PutObject of 1 KiB to /sink and an upload to /uploads: 200 with an ETag through the S3 front; a GET keeps one ETag", async () => {
    await using proxy = await startBothFronts("bun", proxyYaml(1, origin.ports.s3, "warn", 0).replace("$PORT", "0"));
    for (const path of ["/sink/put-1k.bin", "/uploads/up.bin", "/uploads/up.bin"]) {
      const headers = s3PutHeaders(proxy.front.port, path);
      const r = await fetch(`${proxy.front.endpoint}${path}`, { method: "PUT", headers, body: "a".repeat(1024) });
      expect([path, r.status, await r.text()]).toEqual([path, 200, ""]);
      expect(r.headers.get("etag")).toMatch(/^"[^"]+"$/);
    }
    // (the stored file is served with nginx's own ETag alone)
    const got = await fetch(`http://127.0.0.1:${origin.ports.s3}/bucket/up.bin`);
    expect(got.status).toBe(200);
    expect(await got.text()).toBe("a".repeat(1024));
    expect(got.headers.get("etag")).toMatch(/^"[0-9a-f]+-400"$/);
  });
});
