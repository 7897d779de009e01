/**
 * A write in flight across a reload that adds a caching bucket on the written store (or switches
 * one's cache on): the write's purge reaches that bucket too. Its mates were taken from the
 * generation the write was admitted in, so a GET through the new bucket while the write was under
 * way cached the old object, served as a HIT after the write's answer until its TTL.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";
import { token } from "./plain-write-env.ts";

setDefaultTimeout(30_000);

const KEY = { accessKeyId: "AKIARELOADMATES00001", secretAccessKey: "reload-mates-secret-0123456789abcdefgh" };
const SECRET = "plain-write-jwt-secret-0123456789abcdef";
let s3: S3Fixture;
let px: InProcessProxy;
const dir = mkdtempSync(join(tmpdir(), "yata-reload-mates-"));
const configPath = join(dir, "config.yaml");

const yaml = (mirror: "none" | "off" | "on") => {
  const b = (name: string, extra: string) => bucketYaml({ name, prefix: `/${name}`, bucket: "data", endpoint: s3.endpoint, key: KEY.accessKeyId, secret: KEY.secretAccessKey, extra });
  return (
    `server: { address: 127.0.0.1, port: 0, readiness_probe_interval_seconds: 3600 }\nlogging: { level: error }\n` +
    `jwt: { enabled: true, algorithm: HS256, secret: "${SECRET}" }\ncache: { enabled: true }\nbuckets:\n` +
    b("rw", "    access: read-write\n    auth: { enabled: true }\n") +
    (mirror === "none" ? "" : b("mirror", `    cache: { enabled: ${mirror === "on"}, ttl_seconds: 600 }\n`))
  );
};

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...KEY, buckets: ["data"], write: true }] });
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

for (const before of ["none", "off"] as const) {
  test(`a write under way while a reload ${before === "none" ? "adds a caching bucket on its store" : "switches a mate's cache on"} purges that bucket too`, async () => {
    await px?.stop();
    writeFileSync(configPath, yaml(before));
    px = await startInProcess(yaml(before), { configPath, probeIntervalMs: 3_600_000 });
    const key = `k-${before}.txt`;
    await s3.put("data", key, "old");
    // The PUT is held upstream until the read below is done (a fixed delay ran out on a loaded
    // host before the reload and the read had, and the read got "new"); 20 s at most.
    const release = Promise.withResolvers<void>();
    s3.faults.set(`/data/${key}`, { kind: "delay", ms: 20_000, until: release.promise, times: 1, method: "PUT" });
    const put = fetch(px.url(`/rw/${key}`), { method: "PUT", body: "new", headers: { authorization: `Bearer ${token({}, SECRET)}` } });
    // the PUT is admitted and held upstream (the fixture has taken it, with its delay fault)
    await s3.waitForRequest((e) => e.method === "PUT" && e.fault === "delay" && e.pathname === `/data/${key}`);
    writeFileSync(configPath, yaml("on"));
    expect((await px.app.reload()).ok).toBe(true);
    // Read through the new bucket while the write is under way: the old object, cached.
    try {
      expect(await (await fetch(px.url(`/mirror/${key}`))).text()).toBe("old");
    } finally {
      release.resolve();
    }
    expect((await put).status).toBe(200);
    const after = await fetch(px.url(`/mirror/${key}`));
    expect(await after.text()).toBe("new");
  });
}
