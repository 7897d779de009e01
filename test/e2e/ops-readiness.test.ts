/**
 * /ready and /health end to end: the background probe (period set with
 * YATAGARASU_PROBE_INTERVAL_MS) follows the upstream going away and coming back; /health does not.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "./harness.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
let px: ProxyProcess;

interface Report {
  ready: boolean;
  reasons: string[];
  buckets: Record<string, { ok: boolean; reason?: string }>;
}

async function ready(): Promise<{ status: number; body: Report }> {
  const res = await fetch(px.url("/ready"));
  return { status: res.status, body: (await res.json()) as Report };
}

async function health(): Promise<number> {
  const res = await fetch(px.url("/health"));
  await res.arrayBuffer();
  return res.status;
}

/** Polls /ready (checking /health on every round) until it answers `status`, with a deadline. */
async function readyBecomes(status: number, timeoutMs = 5000): Promise<Report> {
  let last: Report | undefined;
  return waitFor(
    async () => {
      expect(await health()).toBe(200);
      const r = await ready();
      last = r.body;
      return r.status === status ? r.body : undefined;
    },
    { timeoutMs, intervalMs: 20, message: () => `/ready to become ${status}: ${JSON.stringify(last)}` },
  );
}

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "pub", public: true }], credentials: [] });
  await s3.put("pub", "x.txt", "x");
  px = await startProxy(`server: { address: 127.0.0.1, port: 0 }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`, {
    env: { YATAGARASU_PROBE_INTERVAL_MS: "100" },
  });
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

test("/ready is 200 while the upstream answers the probe", async () => {
  const body = await readyBecomes(200);
  expect(body.ready).toBe(true);
  expect(body.reasons).toEqual([]);
  expect(body.buckets.pub.ok).toBe(true);
});

test("/health and /ready answer GET, HEAD and OPTIONS (HAProxy's httpchk); another method is 405 with Allow, not the report", async () => {
  for (const path of ["/health", "/ready"]) {
    for (const method of ["GET", "HEAD", "OPTIONS"]) {
      const res = await fetch(px.url(path), { method });
      await res.arrayBuffer();
      expect({ path, method, status: res.status }).toEqual({ path, method, status: 200 });
    }
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      const res = await fetch(px.url(path), { method });
      const body = await res.text();
      expect({ path, method, status: res.status, allow: res.headers.get("allow") }).toEqual({ path, method, status: 405, allow: "GET, HEAD, OPTIONS" });
      expect(body).not.toContain('"buckets"');
    }
  }
});

test("upstream down: /ready turns 503 naming the bucket and the reason while /health stays 200; back up: 200 again", async () => {
  await s3.pause();
  try {
    const down = await readyBecomes(503);
    expect(down.ready).toBe(false);
    // the reason names what failed (the code), never where (no host or port)
    expect(down.buckets.pub).toMatchObject({ ok: false, reason: "upstream unreachable (ECONNREFUSED)" });
    expect(down.reasons).toEqual(["bucket pub: upstream unreachable (ECONNREFUSED)"]);
    const res = await fetch(px.url("/pub/x.txt"), { headers: { "x-request-id": "while-down" } });
    expect(res.status).toBe(502);
    await res.arrayBuffer();
    // and the access line says why there was no answer
    const line = await px.waitForLog((l) => l.msg === "request" && l.request_id === "while-down");
    expect({ error: line.error, upstream_error: line.upstream_error }).toEqual({ error: "UpstreamUnreachable", upstream_error: "ECONNREFUSED" });
  } finally {
    await s3.resume();
  }
  const up = await readyBecomes(200);
  expect(up.buckets.pub.ok).toBe(true);
  expect(await health()).toBe(200);
  const res = await fetch(px.url("/pub/x.txt"));
  expect(res.status).toBe(200);
  expect(await res.text()).toBe("x");
});

/** /ready once every named bucket has been probed. */
function probedReady(p: ProxyProcess, names: string[]): Promise<{ status: number; body: Report }> {
  return waitFor(
    async () => {
      const res = await fetch(p.url("/ready"));
      const body = (await res.json()) as Report;
      return names.every((n) => body.buckets[n] !== undefined && body.buckets[n].reason !== "not probed yet") ? { status: res.status, body } : undefined;
    },
    { timeoutMs: 5000, intervalMs: 20, message: () => `/ready to probe ${names.join(", ")}` },
  );
}

test("credentials: a bucket whose key the upstream refuses (a wrong secret) is not ready, naming S3's code; a read-only key's 403 is fine", async () => {
  const RO = { accessKeyId: "AKIDREADONLYPROBE1", secretAccessKey: "read-only-probe-secret-0123456789", buckets: ["priv"], list: false };
  await using fx = await startS3Fixture({ buckets: [{ name: "priv" }], credentials: [RO] });
  const p = await startProxy(
    `server: { address: 127.0.0.1, port: 0 }\nbuckets:\n` +
      bucketYaml({ name: "ro", prefix: "/ro", bucket: "priv", endpoint: fx.endpoint, key: RO.accessKeyId, secret: RO.secretAccessKey }) +
      bucketYaml({ name: "bad", prefix: "/bad", bucket: "priv", endpoint: fx.endpoint, key: RO.accessKeyId, secret: "not-the-secret-0123456789abcdefgh" }),
    { env: { YATAGARASU_PROBE_INTERVAL_MS: "100" } },
  );
  try {
    const report = (await probedReady(p, ["bad", "ro"])).body;
    expect(report.buckets.bad).toMatchObject({ ok: false, reason: "the upstream refuses the bucket's credentials (SignatureDoesNotMatch)" });
    expect(report.buckets.ro.ok).toBe(true);
  } finally {
    await p.stop();
  }
});

test("a bucket signed for another region than its store's (S3: 400 AuthorizationHeaderMalformed) is not ready, naming the code; its neighbour is", async () => {
  const KEY = { accessKeyId: "AKIDWRONGREGIONPRB1", secretAccessKey: "wrong-region-probe-secret-0123456789", buckets: ["priv"] };
  await using fx = await startS3Fixture({ buckets: [{ name: "priv" }], credentials: [KEY] });
  const yaml = (name: string, region: string) => bucketYaml({ name, prefix: `/${name}`, bucket: "priv", endpoint: fx.endpoint, key: KEY.accessKeyId, secret: KEY.secretAccessKey }).replace("s3: { ", `s3: { region: ${region}, `);
  const p = await startProxy(`server: { address: 127.0.0.1, port: 0 }\nbuckets:\n` + yaml("elsewhere", "eu-west-1") + yaml("here", "us-east-1"), { env: { YATAGARASU_PROBE_INTERVAL_MS: "100" } });
  try {
    const report = await probedReady(p, ["elsewhere", "here"]);
    expect(report.status).toBe(503);
    expect(report.body.buckets.elsewhere).toMatchObject({ ok: false, reason: "the upstream refuses the bucket's signature: is s3.region the bucket's region? (AuthorizationHeaderMalformed)" });
    expect(report.body.buckets.here.ok).toBe(true);
  } finally {
    await p.stop();
  }
});

test("a bucket the upstream does not have (misnamed or deleted) is not ready, naming NoSuchBucket; its neighbour on the same store is", async () => {
  const KEY = { accessKeyId: "AKIDNOSUCHBUCKETPRB", secretAccessKey: "no-such-bucket-probe-secret-012345", buckets: ["real", "gone"] };
  await using fx = await startS3Fixture({ buckets: [{ name: "real" }], credentials: [KEY] });
  const p = await startProxy(
    `server: { address: 127.0.0.1, port: 0 }\nbuckets:\n` +
      bucketYaml({ name: "real", prefix: "/real", bucket: "real", endpoint: fx.endpoint, key: KEY.accessKeyId, secret: KEY.secretAccessKey }) +
      bucketYaml({ name: "gone", prefix: "/gone", bucket: "gone", endpoint: fx.endpoint, key: KEY.accessKeyId, secret: KEY.secretAccessKey }),
    { env: { YATAGARASU_PROBE_INTERVAL_MS: "100" } },
  );
  try {
    const report = await probedReady(p, ["gone", "real"]);
    expect(report.status).toBe(503);
    expect(report.body.buckets.gone).toMatchObject({ ok: false, reason: "the upstream bucket does not exist (NoSuchBucket)" });
    expect(report.body.buckets.real.ok).toBe(true);
  } finally {
    await p.stop();
  }
});
