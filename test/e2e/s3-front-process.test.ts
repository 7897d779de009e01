/**
 * The S3 listener in the real process (src/main.ts): it starts with the main listener (its port in
 * the "listening" line), serves from the current config generation across reloads (a rotated
 * secret or session key applies at once; a changed S3 port is refused), drains on SIGTERM with the
 * main listener, and `--check` describes it without printing a secret.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { freePort } from "../fixtures/services.ts";
import { waitFor } from "../helpers/wait.ts";
import { issueSession } from "../../src/fronts/s3/sts.ts";
import { runCli, startProxy } from "./harness.ts";
import { APP, frontYaml, STS_KEY, UPSTREAM } from "./s3-front-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data" }, { name: "private" }], credentials: [{ ...UPSTREAM, buckets: ["data", "private"] }] });
  await s3.put("data", "hello.txt", "hello");
  await s3.put("data", "slow.txt", "slow body");
});
afterAll(() => s3.stop());

const yaml = (over: { secret?: string; stsKey?: string; port?: number } = {}) => {
  let y = frontYaml(s3.endpoint).replace("logging: { level: error }", "logging: { level: info }");
  if (over.secret) y = y.replace(APP.secretAccessKey, over.secret);
  if (over.stsKey) y = y.replace(STS_KEY, over.stsKey);
  if (over.port !== undefined) y = y.replace(/(s3_api:\n {2}enabled: true\n {2}address: 127\.0\.0\.1\n {2}port: )0/, `$1${over.port}`);
  return y;
};
const sdk = (port: number, credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }) =>
  new S3Client({ endpoint: `http://127.0.0.1:${port}`, region: "us-east-1", forcePathStyle: true, credentials, maxAttempts: 1 });
const read = async (c: S3Client, key = "hello.txt") => (await c.send(new GetObjectCommand({ Bucket: "data", Key: key }))).Body!.transformToString();

test("starts with the process, follows reloads, refuses a port change on reload", async () => {
  await using px = await startProxy(yaml());
  const listening = px.logs().find((l) => l.msg === "listening")!;
  const port = Number(listening.s3_port);
  expect(port).toBeGreaterThan(0);
  expect(port).not.toBe(px.port);

  const old = sdk(port, APP);
  const session = issueSession({ sessionKey: STS_KEY, subject: "alice", claims: {}, expiresAt: Date.now() + 600_000, now: Date.now() });
  if (session.kind !== "ok") throw new Error(session.message);
  const viaSession = sdk(port, { accessKeyId: session.accessKeyId, secretAccessKey: session.secretAccessKey, sessionToken: session.sessionToken });
  try {
    expect(await read(old)).toBe("hello");
    expect(await read(viaSession)).toBe("hello");
    // the plain front on the main port is another protocol: /data/hello.txt is a path prefix there
    expect(await (await fetch(px.url("/data/hello.txt"))).text()).toBe("hello");

    px.writeConfig(yaml({ secret: "rotated-app-secret-0123456789", stsKey: "rotated-sts-session-key-0123456789abcdef" }));
    px.signal("SIGHUP");
    await px.waitForLog((l) => l.msg === "config reloaded");
    await expect(read(old)).rejects.toMatchObject({ name: "SignatureDoesNotMatch" });
    await expect(read(viaSession)).rejects.toMatchObject({ name: "InvalidToken" });
    const rotated = sdk(port, { ...APP, secretAccessKey: "rotated-app-secret-0123456789" });
    expect(await read(rotated)).toBe("hello");
    rotated.destroy();

    px.writeConfig(yaml({ port: port + 1 }));
    px.signal("SIGHUP");
    const failed = await px.waitForLog((l) => l.msg === "config reload failed; the previous config keeps serving");
    expect(String(failed.error)).toContain("s3_api");
    expect(await read(sdk(port, { ...APP, secretAccessKey: "rotated-app-secret-0123456789" }))).toBe("hello");
  } finally {
    old.destroy();
    viaSession.destroy();
  }
  // no secret in any log line
  expect(px.output()).not.toContain(APP.secretAccessKey);
  expect(px.output()).not.toContain(STS_KEY);
}, 60_000);

test("SIGTERM drains an in-flight S3 GetObject, then exits 0", async () => {
  const px = await startProxy(yaml());
  try {
    const port = Number(px.logs().find((l) => l.msg === "listening")!.s3_port);
    s3.faults.set("/data/slow.txt", { kind: "delay", ms: 1500, times: 1 });
    const c = sdk(port, APP);
    const pending = read(c, "slow.txt");
    await s3.waitForRequest((e) => !e.admin && e.method === "GET" && e.pathname === "/data/slow.txt");
    px.signal("SIGTERM");
    expect(await pending).toBe("slow body");
    expect(await px.exited).toBe(0);
    c.destroy();
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
  } finally {
    s3.faults.clear();
    await px.stop();
  }
}, 60_000);

test("--check: the S3 API line and grants, never a secret", async () => {
  await using px = await startProxy(yaml()); // only for its temp dir and config file
  const r = await runCli(["--check", "--config", px.configPath]);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("s3 api      http://127.0.0.1:0  region=us-east-1 path-style max_skew=900s");
  expect(r.stdout).toContain("sts: on (session_key set, max 3600s); 2 credentials");
  expect(r.stdout).toMatch(/app1 +secret set; data:read\+list private:read/);
  for (const secret of [APP.secretAccessKey, STS_KEY, APP.accessKeyId, UPSTREAM.secretAccessKey]) expect(r.stdout + r.stderr).not.toContain(secret);
}, 60_000);

test("server.workers 2: every worker serves the S3 port (a fixed one), each from its own config generation", async () => {
  const s3Port = freePort();
  await using px = await startProxy(yaml({ port: s3Port }).replace("  port: 0\n  engine: bun\n", "  port: 0\n  engine: bun\n  workers: 2\n"));
  await px.waitForLog((l) => l.msg === "listening" && l.worker === 1);
  const seen = new Set<unknown>();
  await waitFor(
    async () => {
      const c = sdk(s3Port, APP); // a new client: a new connection, which the kernel may give to either worker
      try {
        expect(await read(c)).toBe("hello");
      } finally {
        c.destroy();
      }
      for (const l of px.logs()) if (l.front === "s3" && l.status === 200) seen.add(l.worker);
      return seen.size === 2;
    },
    { timeoutMs: 30_000, intervalMs: 1, message: () => `both workers in the S3 access log (seen: ${[...seen].join(", ")})` },
  );
}, 60_000);
