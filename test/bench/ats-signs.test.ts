/**
 * The benchmark's C peer really signs: Apache Traffic Server with s3_auth v4, configured exactly as
 * bench/ats.ts configures it for bench:load / bench:gate, pointed at the SigV4-verifying S3 fixture
 * (which rejects a wrong signature with 403). With the right secret a GET through ATS is 200 with
 * the object's bytes; with a wrong secret it is the fixture's 403. The uncached rule reaches the
 * origin on every request; the cached rule only on the first.
 *
 * Skipped (with the reason) when the Debian package `trafficserver` is not installed.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Ats, atsInstalled, startAts, TRAFFIC_SERVER } from "../../bench/ats.ts";
import { type S3Fixture, startS3Fixture } from "../fixtures/s3.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers on a loaded machine need more.
setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIDATSBENCHCHECK", secretAccessKey: "ats-bench-check-secret-0123456789" };
const BODY = new Uint8Array(3000).map((_, i) => (i * 7 + 3) & 0xff);
const installed = atsInstalled();
if (!installed) console.warn(`test/bench/ats-signs: skipped, ${TRAFFIC_SERVER} or its s3_auth plugin is not installed (apt-get install -y trafficserver)`);

describe.skipIf(!installed)("ATS + s3_auth v4 against the SigV4-verifying S3 fixture", () => {
  let s3: S3Fixture;
  let dir: string;
  const started: Ats[] = [];

  beforeAll(async () => {
    s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...CREDS, buckets: ["data"] }] });
    await s3.put("data", "obj.bin", BODY);
    dir = mkdtempSync(join(tmpdir(), "yata-ats-test-"));
  });
  afterAll(async () => {
    for (const a of started) await a.stop();
    await s3?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const start = async (name: string, secretKey: string) => {
    const ats = await startAts({
      dir: join(dir, name),
      origin: new URL(s3.endpoint).host,
      threads: 1,
      accessKey: CREDS.accessKeyId,
      secretKey,
      remaps: [
        { from: "/signed/", to: "/data/", cache: false },
        { from: "/cached/", to: "/data/", cache: true },
      ],
    });
    started.push(ats);
    return ats;
  };
  const originGets = () => s3.requests.filter((r) => !r.admin && r.method === "GET" && r.pathname === "/data/obj.bin");

  test("with the right secret: 200 and the object's bytes; every request reaches the origin signed, the cached rule only once", async () => {
    const ats = await start("good", CREDS.secretAccessKey);
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`http://127.0.0.1:${ats.port}/signed/obj.bin`);
      expect(r.status).toBe(200);
      expect(new Uint8Array(await r.arrayBuffer())).toEqual(BODY);
    }
    expect(originGets().map((r) => [r.status, r.signed, r.accessKeyId, r.headers.authorization?.startsWith("AWS4-HMAC-SHA256 ")])).toEqual([
      [200, true, CREDS.accessKeyId, true],
      [200, true, CREDS.accessKeyId, true],
    ]);
    // The signed headers are the ones the bench configures (v4-include-headers).
    expect(originGets()[0].headers.authorization).toContain("SignedHeaders=host;x-amz-content-sha256;x-amz-date,");

    for (let i = 0; i < 3; i++) {
      const r = await fetch(`http://127.0.0.1:${ats.port}/cached/obj.bin`);
      expect(r.status).toBe(200);
      expect(new Uint8Array(await r.arrayBuffer())).toEqual(BODY);
    }
    expect(originGets()).toHaveLength(3);
    const hit = await fetch(`http://127.0.0.1:${ats.port}/cached/obj.bin`, { headers: { "cache-control": "only-if-cached" } });
    expect(hit.status).toBe(200);
    await hit.arrayBuffer();
  });

  test("with a wrong secret: the fixture's 403 SignatureDoesNotMatch comes back through ATS", async () => {
    const ats = await start("bad", "not-the-secret-0123456789");
    const before = originGets().length;
    const r = await fetch(`http://127.0.0.1:${ats.port}/signed/obj.bin`);
    expect(r.status).toBe(403);
    expect(await r.text()).toContain("SignatureDoesNotMatch");
    expect(originGets().slice(before).map((e) => [e.status, e.errorCode])).toEqual([[403, "SignatureDoesNotMatch"]]);
  });
});
