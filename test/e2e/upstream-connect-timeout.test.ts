/**
 * s3.connect_timeout through the real proxy (issue 10, defect 3), against a black-holed upstream
 * on 127.0.0.1 (a full accept queue: SYNs go unanswered).
 * - own client (http endpoint, upstream_client auto): 504 GatewayTimeout after connect_timeout
 *   per attempt, long before s3.timeout;
 * - fetch: no connect-phase timeout exists, so s3.timeout bounds connecting; the start-up log and
 *   --check say so.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { blackHole, blackHoleSupported, type BlackHole } from "../helpers/blackhole.ts";
import { runCli, startProxy, type ProxyProcess } from "./harness.ts";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let hole: BlackHole;
const px: Record<"auto" | "fetch", ProxyProcess> = {} as never;
// (the own client's s3.timeout far above its connect_timeout: its bound can leave a loaded host's
// pause several seconds and still tell one from the other; 2 s against 3 s left it 1.5 s)
const cfg = (client: string, port: number, timeout: number) =>
  `server: { address: 127.0.0.1, port: 0, upstream_client: ${client} }\n` +
  `buckets:\n  - name: hole\n    path_prefix: /hole\n    s3: { bucket: hole-bucket, endpoint: "http://127.0.0.1:${port}", timeout: ${timeout}, connect_timeout: 0.5, retry: { max_attempts: 1 } }\n`;

async function timedGet(url: string): Promise<{ status: number; body: Record<string, unknown>; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(url, { headers: { "x-request-id": "ct-1" } });
  const body = (await res.json()) as Record<string, unknown>;
  return { status: res.status, body, ms: performance.now() - t0 };
}

describe.skipIf(!blackHoleSupported)("s3.connect_timeout against a black-holed upstream", () => {
  beforeAll(async () => {
    hole = await blackHole();
    [px.auto, px.fetch] = await Promise.all([startProxy(cfg("auto", hole.port, 20)), startProxy(cfg("fetch", hole.port, 3))]);
  }, 30_000);
  afterAll(async () => {
    await Promise.all([px.auto?.stop(), px.fetch?.stop()]);
    hole?.close();
  });

  test("own client: 504 GatewayTimeout within connect_timeout (0.5 s) + margin, not s3.timeout (20 s)", async () => {
    const r = await timedGet(px.auto.url("/hole/k"));
    expect(r.status).toBe(504);
    expect(r.body).toMatchObject({ error: "GatewayTimeout", request_id: "ct-1" });
    expect(r.ms).toBeGreaterThanOrEqual(450);
    expect(r.ms).toBeLessThan(10_000);
  });

  test("fetch: s3.timeout (3 s) bounds connecting, and the start-up log says connect_timeout is not enforced there", async () => {
    const note = await px.fetch.waitForLog((l) => typeof l.msg === "string" && l.msg.startsWith("s3.connect_timeout is not enforced"));
    expect(String(note.msg)).toContain("hole (0.5 s → 3 s)");
    // The own client's proxy has nothing to say about it.
    expect(px.auto.logs().some((l) => String(l.msg).startsWith("s3.connect_timeout is not enforced"))).toBe(false);
    const r = await timedGet(px.fetch.url("/hole/k"));
    expect(r.status).toBe(504);
    expect(r.ms).toBeGreaterThanOrEqual(2900);
    expect(r.ms).toBeLessThan(15_000); // (no answer at all without it: the hole never answers)
  });
});

test("--check notes the fetch buckets where connect_timeout is not enforced", async () => {
  const dir = mkdtempSync(join(tmpdir(), "yata-ct-"));
  try {
    const path = join(dir, "config.yaml");
    writeFileSync(path, `buckets:\n  - { name: aws, path_prefix: /a, s3: { bucket: data, connect_timeout: 2, timeout: 10 } }\n  - { name: local, path_prefix: /l, s3: { bucket: data, endpoint: "http://127.0.0.1:9" } }\n`);
    const r = await runCli(["--check", "--config", path]);
    expect(r.code).toBe(0);
    const note = r.stdout.split("\n").find((l) => l.startsWith("note: s3.connect_timeout is not enforced for buckets that reach S3 through fetch"));
    expect(note).toContain("aws (2 s → 10 s)");
    expect(note).not.toContain("local"); // the own client enforces it
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
