/**
 * Hot reload and jwt.jwks_url end to end (the real proxy process, real JWKS servers on port 0):
 * a reload never leaves the proxy unable to verify tokens it verified before.
 *
 * - A reload to a jwks_url whose keys cannot be loaded (refused connection, an error answer, no
 *   answer within the fetch timeout) is refused whole, through the admin API (400 naming the
 *   JWKS) and SIGHUP alike, for every worker; the old generation keeps serving with its keys.
 * - A reload to another working JWKS serves that JWKS's keys at once.
 * - A reload that keeps the jwks_url keeps the keys it had, even when the JWKS is down meanwhile.
 * - A JWKS that is down at start still does not block start-up, and a reload from there is not
 *   refused for a JWKS that is down too (the proxy verified nothing from it before).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { renameSync, writeFileSync } from "node:fs";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { JwksServer, makeKeyPair, nowSec, signWith, tempDir, type TestKey } from "../fixtures/jwt.ts";
import { waitFor } from "../helpers/wait.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const FAILED = "config reload failed; the previous config keeps serving";

let s3: S3Fixture;
let keys: { dir: string; cleanup: () => void };
let keyA: TestKey;
let keyB: TestKey;
let jwksA: JwksServer;
let jwksB: JwksServer;
/** A URL nothing listens on (a JWKS server started and closed: its port refuses connections). */
let deadUrl: string;
let tokenA: string;
let tokenB: string;
let adminA: string;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (r: Response): Promise<any> => r.json();
const bearer = (t: string) => ({ authorization: `Bearer ${t}`, connection: "close" });

function config(jwksUrl: string, opts: { workers?: number; extraBucket?: boolean } = {}): string {
  const bucket = (name: string) => `  - name: ${name}\n    path_prefix: /${name}\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n    auth: { enabled: true }\n`;
  return `server: { address: 127.0.0.1, port: 0${opts.workers ? `, workers: ${opts.workers}` : ""} }
jwt:
  enabled: true
  algorithm: RS256
  jwks_url: "${jwksUrl}"
  admin_claims: [{ claim: role, operator: equals, value: admin }]
buckets:
${bucket("priv")}${opts.extraBucket ? bucket("more") : ""}`;
}

/** Replaces the config file atomically (a reload never reads a half-written file). */
function writeConfig(px: ProxyProcess, yaml: string): void {
  const tmp = `${px.configPath}.tmp`;
  writeFileSync(tmp, yaml);
  renameSync(tmp, px.configPath);
}

async function getStatus(px: ProxyProcess, path: string, token: string): Promise<number> {
  const res = await fetch(px.url(path), { headers: bearer(token) });
  await res.arrayBuffer();
  return res.status;
}

async function ready(px: ProxyProcess): Promise<{ status: number; body: any }> {
  const res = await fetch(px.url("/ready"), { headers: { connection: "close" } });
  return { status: res.status, body: await res.json() };
}

const waitReady = (px: ProxyProcess) => waitFor(async () => (await ready(px)).status === 200, { timeoutMs: 15_000, message: "/ready 200" });

async function adminReload(px: ProxyProcess, token = adminA): Promise<{ status: number; body: any }> {
  const res = await fetch(px.url("/admin/reload"), { method: "POST", headers: bearer(token) });
  return { status: res.status, body: await json(res) };
}

beforeAll(async () => {
  keys = tempDir();
  keyA = await makeKeyPair("RS256", keys.dir, "key-a");
  keyB = await makeKeyPair("RS256", keys.dir, "key-b");
  jwksA = JwksServer.start([keyA.jwk]);
  jwksB = JwksServer.start([keyB.jwk]);
  const dead = JwksServer.start([]);
  deadUrl = dead.url;
  dead.close();
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true }], credentials: [] });
  await s3.put("data", "a.txt", "body a\n", { contentType: "text/plain" });
  tokenA = await signWith(keyA, { sub: "alice", exp: nowSec() + 3600 });
  tokenB = await signWith(keyB, { sub: "bob", exp: nowSec() + 3600 });
  adminA = await signWith(keyA, { sub: "ops", role: "admin", exp: nowSec() + 3600 });
});

afterAll(async () => {
  jwksA?.close();
  jwksB?.close();
  await s3?.stop();
  keys?.cleanup();
});

describe("a reload to a JWKS whose keys cannot be loaded is refused; the old generation keeps serving", () => {
  let px: ProxyProcess;
  beforeAll(async () => {
    px = await startProxy(config(jwksA.url));
    await waitReady(px);
  });
  afterAll(async () => {
    jwksA.restore();
    await px?.stop();
  });

  test("admin API, unreachable jwks_url: 400 naming the JWKS, generation 1, tokens still verify, /ready 200", async () => {
    expect(await getStatus(px, "/priv/a.txt", tokenA)).toBe(200);
    writeConfig(px, config(deadUrl, { extraBucket: true }));
    const r = await adminReload(px);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ status: "failed", generation: 1 });
    expect(r.body.error).toContain("jwt.jwks_url");
    expect(r.body.error).toContain(deadUrl);
    // (the log line may reach the test after the answer)
    const line = await px.waitForLog((l) => l.msg === FAILED && String(l.error).includes(deadUrl));
    expect(line).toMatchObject({ level: "error", generation: 1 });
    expect(String(line.error)).toContain("JWKS");

    expect(await getStatus(px, "/priv/a.txt", tokenA)).toBe(200);
    expect(await getStatus(px, "/more/a.txt", tokenA)).toBe(404); // the refused config's bucket does not route
    const rd = await ready(px);
    expect(rd.status).toBe(200);
    expect(rd.body).toMatchObject({ ready: true, generation: 1, jwks: { ok: true } });
    // the admin API still works (it needs a JWT): reloading back succeeds
    writeConfig(px, config(jwksA.url));
    expect(await adminReload(px)).toEqual({ status: 200, body: { status: "reloaded", generation: 2 } });
    expect(await getStatus(px, "/priv/a.txt", tokenA)).toBe(200);
  });

  test("SIGHUP, a jwks_url answering 503: refused and logged; tokens still verify", async () => {
    using failing = JwksServer.start([keyA.jwk]);
    failing.failWith({ status: 503 });
    writeConfig(px, config(failing.url));
    px.signal("SIGHUP");
    const line = await px.waitForLog((l) => l.msg === FAILED && String(l.error).includes(failing.url));
    expect(String(line.error)).toContain("HTTP 503");
    expect(failing.fetchCount).toBeGreaterThan(0);
    expect(await getStatus(px, "/priv/a.txt", tokenA)).toBe(200);
    expect((await ready(px)).status).toBe(200);
  });

  test("a jwks_url that never answers: refused within the JWKS fetch timeout (about 5 s)", async () => {
    using hanging = JwksServer.start([keyA.jwk]);
    hanging.hang();
    writeConfig(px, config(hanging.url));
    const started = performance.now();
    const r = await adminReload(px);
    const took = performance.now() - started;
    expect(r.status).toBe(400);
    expect(r.body.error).toContain("timed out");
    expect(took).toBeLessThan(9_000);
    expect(await getStatus(px, "/priv/a.txt", tokenA)).toBe(200);
    expect((await ready(px)).status).toBe(200);
  });

  test("a reload that keeps the jwks_url keeps its keys while the JWKS is down", async () => {
    jwksA.down();
    writeConfig(px, config(jwksA.url, { extraBucket: true }));
    const r = await adminReload(px);
    expect(r.status).toBe(200);
    expect(r.body.status).toBe("reloaded");
    expect(await getStatus(px, "/more/a.txt", tokenA)).toBe(200);
    expect(await getStatus(px, "/priv/a.txt", tokenA)).toBe(200);
    await waitReady(px);
    expect((await ready(px)).body.jwks).toEqual({ ok: true });
    jwksA.restore();
  });

  test("a reload to another working JWKS succeeds: its keys verify at once, the old JWKS's do not", async () => {
    writeConfig(px, config(jwksB.url));
    const r = await adminReload(px);
    expect(r.status).toBe(200);
    expect(r.body.status).toBe("reloaded");
    expect(await getStatus(px, "/priv/a.txt", tokenB)).toBe(200);
    expect(await getStatus(px, "/priv/a.txt", tokenA)).toBe(401);
    await waitReady(px);
  });
});

describe("a JWKS down at start", () => {
  test("start-up does not wait for it; a reload to another down JWKS is not refused; a reload to a working one then verifies", async () => {
    using down = JwksServer.start([keyA.jwk]);
    down.failWith({ status: 503 });
    const px = await startProxy(config(down.url));
    try {
      await waitFor(() => down.fetchCount > 0, { message: "the first JWKS fetch" });
      expect(await getStatus(px, "/priv/a.txt", tokenA)).toBe(503);
      // nothing to lose: the proxy could not verify JWKS tokens before this reload either
      writeConfig(px, config(deadUrl));
      px.signal("SIGHUP");
      await px.waitForLog((l) => l.msg === "config reloaded" && l.generation === 2);
      writeConfig(px, config(jwksA.url));
      px.signal("SIGHUP");
      await px.waitForLog((l) => l.msg === "config reloaded" && l.generation === 3);
      expect(await getStatus(px, "/priv/a.txt", tokenA)).toBe(200);
      await waitReady(px);
    } finally {
      await px.stop();
    }
  });
});

describe("server.workers: 2", () => {
  test("a reload to an unreachable JWKS is refused for every process: no worker reloads, every worker still verifies", async () => {
    const px = await startProxy(config(jwksA.url, { workers: 2 }));
    try {
      await Promise.all([0, 1].map((w) => px.waitForLog((l) => l.msg === "listening" && l.worker === w)));
      await waitReady(px);
      writeConfig(px, config(deadUrl, { workers: 2 }));
      const r = await adminReload(px);
      expect(r.status).toBe(400);
      expect(r.body.error).toContain("jwt.jwks_url");
      await px.waitForLog((l) => l.msg === FAILED && l.worker === 0);
      // SIGHUP to the primary too
      px.signal("SIGHUP");
      await px.waitForLog(() => px.logs().filter((l) => l.msg === FAILED && l.worker === 0).length === 2);
      expect(px.logs().filter((l) => l.msg === FAILED && l.worker === 1)).toEqual([]); // the child was never told to reload
      // Each request on a new connection (SO_REUSEPORT spreads them over both processes).
      const served = new Set<unknown>();
      for (let i = 0; i < 60 && served.size < 2; i++) {
        const res = await fetch(px.url("/priv/a.txt"), { headers: { ...bearer(tokenA), "x-request-id": `w-${i}` } });
        await res.arrayBuffer();
        expect(res.status).toBe(200);
        const line = await px.waitForLog((l) => l.msg === "request" && l.request_id === `w-${i}`);
        served.add(line.worker);
      }
      expect(served.size).toBe(2);
      expect(px.logs().filter((l) => l.msg === "config reloaded")).toEqual([]);
      expect((await ready(px)).status).toBe(200);
    } finally {
      await px.stop();
    }
  });
});
