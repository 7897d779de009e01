/**
 * Failover between bucket replicas end to end: the real proxy process in front of two real S3
 * fixtures (each its own region, bucket and key). The primary's endpoint dies under load and comes
 * back; the client sees no failed request, traffic moves to the secondary and back, /ready names
 * the failed replica, and the access log and metrics say which replica served.
 *
 * Each fixture holds its own bytes for the same key, so a body shows which replica served it.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const PRIMARY_KEY = { accessKeyId: "AKIAPRIMARYEXAMPLE01", secretAccessKey: "primary/secret/key/EXAMPLE/000000000000" };
const SECONDARY_KEY = { accessKeyId: "AKIASECONDARYEXAMP02", secretAccessKey: "secondary/secret/key/EXAMPLE/0000000000" };

let primary: S3Fixture;
let secondary: S3Fixture;
let px: ProxyProcess;

interface Ready {
  ready: boolean;
  reasons: string[];
  degraded?: string[];
  buckets: Record<string, { ok: boolean; serving?: string; replicas?: Record<string, { ok: boolean; reason?: string; circuit?: string; priority: number }> }>;
}

async function ready(): Promise<{ status: number; body: Ready }> {
  const res = await fetch(px.url("/ready"));
  return { status: res.status, body: (await res.json()) as Ready };
}

async function metric(series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`)).text();
  for (const line of text.split("\n")) if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  return 0;
}

/** Clients fetching the object in a loop until stopped; every answer is recorded. */
function load(concurrency: number) {
  const answers: Array<{ status: number; body: string }> = [];
  let running = true;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        const res = await fetch(px.url("/products/hello.txt"));
        answers.push({ status: res.status, body: await res.text() });
      } catch (e) {
        answers.push({ status: 0, body: String(e) });
      }
    }
  });
  return {
    answers,
    since: (n: number) => answers.slice(n),
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

beforeAll(async () => {
  primary = await startS3Fixture({ region: "us-east-1", buckets: [{ name: "p-use1" }], credentials: [{ ...PRIMARY_KEY, buckets: ["p-use1"] }] });
  secondary = await startS3Fixture({ region: "us-west-2", buckets: [{ name: "p-usw2" }], credentials: [{ ...SECONDARY_KEY, buckets: ["p-usw2"] }] });
  await primary.put("p-use1", "hello.txt", "from primary", { contentType: "text/plain" });
  await secondary.put("p-usw2", "hello.txt", "from secondary", { contentType: "text/plain" });
  await secondary.put("p-usw2", "only-on-secondary.txt", "replication has not reached the primary", { contentType: "text/plain" });
  // (the secondary's copy lags: an older, shorter version)
  await primary.put("p-use1", "resume.txt", "0123456789 the rest of the new version", { contentType: "text/plain" });
  await secondary.put("p-usw2", "resume.txt", "old", { contentType: "text/plain" });
  const replica = (name: string, bucket: string, region: string, s3: S3Fixture, key: typeof PRIMARY_KEY, priority: number) =>
    `        - { name: ${name}, bucket: ${bucket}, region: ${region}, endpoint: "${s3.endpoint}", access_key: "${key.accessKeyId}", secret_key: "${key.secretAccessKey}", priority: ${priority} }\n`;
  px = await startProxy(
    `server: { address: 127.0.0.1, port: 0, readiness_probe_interval_seconds: 0.2 }\n` +
      `metrics: { enabled: true, address: 127.0.0.1, port: 0 }\n` +
      `buckets:\n` +
      `  - name: products\n` +
      `    path_prefix: /products\n` +
      `    s3:\n` +
      `      retry: { max_attempts: 2, initial_backoff_ms: 5, max_backoff_ms: 10 }\n` +
      `      circuit_breaker: { failure_threshold: 3, success_threshold: 1, timeout_seconds: 0.5, half_open_max_requests: 1 }\n` +
      `      replicas:\n` +
      replica("primary", "p-use1", "us-east-1", primary, PRIMARY_KEY, 1) +
      replica("secondary", "p-usw2", "us-west-2", secondary, SECONDARY_KEY, 2),
  );
  await waitFor(async () => (await ready()).status === 200, { message: "/ready 200 at start" });
});

afterAll(async () => {
  await px?.stop();
  await primary?.stop();
  await secondary?.stop();
});

describe("bucket replicas", () => {
  test("both healthy: the primary serves, /ready lists both replicas, the access log names the primary", async () => {
    const res = await fetch(px.url("/products/hello.txt"));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("from primary");
    const id = res.headers.get("x-request-id");
    const line = await px.waitForLog((l) => l.msg === "request" && l.request_id === id);
    expect(line.replica).toBe("primary");
    const r = await ready();
    expect(r.status).toBe(200);
    expect(r.body.degraded).toBeUndefined();
    expect(r.body.buckets.products.serving).toBe("primary");
    expect(r.body.buckets.products.replicas?.primary).toMatchObject({ ok: true, priority: 1, circuit: "closed" });
    expect(r.body.buckets.products.replicas?.secondary).toMatchObject({ ok: true, priority: 2, circuit: "closed" });
  });

  test("a 404 on the primary is the answer: the secondary is not asked", async () => {
    secondary.resetLog();
    const res = await fetch(px.url("/products/only-on-secondary.txt"));
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toBe("NoSuchKey");
    expect(primary.requests.some((r) => r.pathname === "/p-use1/only-on-secondary.txt" && r.status === 404)).toBe(true);
    expect(secondary.requests.filter((r) => !r.admin && r.pathname.endsWith("/only-on-secondary.txt"))).toEqual([]);
  });

  // A redirect is the replica's failure (never followed: 502 naming its s3.endpoint/s3.region), so
  // the next replica is asked. It was taken for the answer: 502 though the secondary held the
  // object, and the primary counted a success.
  test("a redirect from the primary (S3's 307 TemporaryRedirect, 301 PermanentRedirect) fails over: the secondary answers, the primary's failure is counted", async () => {
    const failures = 'yatagarasu_s3_replica_requests_total{bucket="products",replica="primary",result="failure"}';
    try {
      for (const [status, code] of [[307, "TemporaryRedirect"], [301, "PermanentRedirect"]] as const) {
        const before = await metric(failures);
        primary.faults.set("/p-use1/hello.txt", { kind: "reply", status, body: `<Error><Code>${code}</Code><Message>Please re-send this request to the specified endpoint.</Message><Endpoint>p-use1.s3.us-west-2.amazonaws.com</Endpoint></Error>`, headers: { location: "https://p-use1.s3.us-west-2.amazonaws.com/hello.txt" } });
        for (const method of ["GET", "HEAD"]) {
          const res = await fetch(px.url("/products/hello.txt"), { method });
          expect([method, res.status, await res.text()]).toEqual([method, 200, method === "GET" ? "from secondary" : ""]);
        }
        expect(await metric(failures)).toBe(before + 2);
      }
    } finally {
      primary.faults.delete("/p-use1/hello.txt");
    }
  });

  // A 403 that refuses the proxy's own credentials for a replica (a rotated key, an expired session
  // token configured for it) says nothing about the object: the next replica is asked. It was the
  // answer: 403 though the secondary held the object, until the readiness probe demoted the primary.
  test("a primary that refuses the proxy's own credentials (InvalidAccessKeyId, SignatureDoesNotMatch, ExpiredToken, InvalidToken) fails over; AccessDenied stays the answer", async () => {
    const failures = 'yatagarasu_s3_replica_requests_total{bucket="products",replica="primary",result="failure"}';
    const refusal = (code: string) => ({ kind: "reply" as const, status: 403, body: `<Error><Code>${code}</Code><Message>Refused</Message></Error>` });
    try {
      for (const code of ["InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"]) {
        const before = await metric(failures);
        primary.faults.set("/p-use1/hello.txt", refusal(code));
        for (const method of ["GET", "HEAD"]) {
          const res = await fetch(px.url("/products/hello.txt"), { method });
          expect([code, method, res.status, await res.text()]).toEqual([code, method, 200, method === "GET" ? "from secondary" : ""]);
        }
        expect([code, await metric(failures)]).toEqual([code, before + 2]);
      }
      primary.faults.set("/p-use1/hello.txt", refusal("AccessDenied"));
      secondary.resetLog();
      for (const method of ["GET", "HEAD"]) expect([method, (await fetch(px.url("/products/hello.txt"), { method })).status]).toEqual([method, 403]);
      expect(secondary.requests.filter((r) => !r.admin && r.pathname.endsWith("/hello.txt"))).toEqual([]);
    } finally {
      primary.faults.delete("/p-use1/hello.txt");
    }
  });

  // A replica skipped, its breaker open (left out of the read's order) or half-open with its trial
  // slot taken (refused when asked), is no failover: yatagarasu_s3_failovers_total counts reads
  // that moved on from a replica they asked, each one after that replica's failure. The half-open
  // refusal was counted a failover, the open skip not.
  // A resumed download (Range past the end of the secondary's older copy, If-Range the primary's
  // ETag) whose first read the primary failed once: the secondary's 416 (its copy is shorter) was
  // kept because the whole-object read that followed, on the recovered primary, matched If-Range:
  // the client was told its range was unsatisfiable on the very version it holds (curl -C - takes
  // a 416 for a finished download). The 416 of one replica is not the other's answer.
  test("a resumed download whose first read fails over to a shorter, lagging copy is not answered 416 by the secondary's copy", async () => {
    const head = await fetch(px.url("/products/resume.txt"), { method: "HEAD" });
    const etag = head.headers.get("etag")!;
    primary.faults.set("/p-use1/resume.txt", { kind: "error500", times: 1, method: "GET" });
    try {
      const res = await fetch(px.url("/products/resume.txt"), { headers: { range: "bytes=10-", "if-range": etag } });
      const body = await res.text();
      expect(res.headers.get("etag")).toBe(etag);
      expect(res.status === 206 ? [res.status, body] : [res.status, body.slice(10)]).toEqual([res.status, " the rest of the new version"]);
    } finally {
      primary.faults.delete("/p-use1/resume.txt");
    }
  });

  test("yatagarasu_s3_failovers_total counts a read moved on after the primary failed, not one that skipped its open or half-open breaker", async () => {
    const series = (result: string) => `yatagarasu_s3_replica_requests_total{bucket="products",replica="primary",result="${result}"}`;
    const counts = async () => ({ failovers: await metric('yatagarasu_s3_failovers_total{bucket="products",from="primary",to="secondary"}'), failures: await metric(series("failure")), skipped: await metric(series("skipped")) });
    const get = async () => {
      const res = await fetch(px.url("/products/hello.txt"));
      return [res.status, await res.text()];
    };
    const before = await counts();
    const { promise: held, resolve: release } = Promise.withResolvers<void>();
    let trial: Promise<unknown[]> | undefined;
    try {
      // three failures (failure_threshold) open the primary's breaker; the next read skips it
      primary.faults.set("/p-use1/hello.txt", { kind: "error500" });
      for (let i = 0; i < 4; i++) expect(await get()).toEqual([200, "from secondary"]);
      primary.faults.delete("/p-use1/hello.txt");
      // half-open (timeout_seconds 0.5, half_open_max_requests 1): the trial read is held at the
      // primary (its probes too, so none closes the breaker meanwhile); the next read is refused there
      primary.faults.set("*", { kind: "delay", ms: 20_000, until: held });
      await waitFor(async () => (await ready()).body.buckets.products.replicas?.primary.circuit === "half_open", { message: "the primary's breaker to half-open" });
      const from = Date.now();
      trial = get();
      await waitFor(() => primary.requests.some((r) => r.pathname === "/p-use1/hello.txt" && r.at >= from), { message: "the trial read at the primary" });
      expect(await get()).toEqual([200, "from secondary"]);
    } finally {
      primary.faults.delete("*");
      primary.faults.delete("/p-use1/hello.txt");
      release();
    }
    expect(await trial).toEqual([200, "from primary"]);
    const after = await counts();
    // (every failover here follows a failure of the primary; skipped: the open skip and the refusal)
    expect(after.failures - before.failures).toBeGreaterThanOrEqual(3);
    expect(after.failovers - before.failovers).toBe(after.failures - before.failures);
    expect(after.skipped - before.skipped).toBeGreaterThanOrEqual(2);
  });

  test("the primary's endpoint dies under load: no failed request, traffic moves to the secondary, /ready names the failed replica; it recovers: traffic moves back", async () => {
    const failoversBefore = await metric('yatagarasu_s3_failovers_total{bucket="products",from="primary",to="secondary"}');
    const l = load(4);
    try {
      // (20 s: four loaders' first 20 answers took over 5 s on a loaded host in a full run)
      await waitFor(() => l.answers.filter((a) => a.body === "from primary").length >= 20, { timeoutMs: 20_000, message: () => `load on the primary (${l.answers.length} answers: ${[...new Set(l.answers.map((a) => a.body))].join(", ")})` });

      await primary.pause();
      const atDeath = l.answers.length;
      await waitFor(() => l.since(atDeath).filter((a) => a.body === "from secondary").length >= 50, { timeoutMs: 10_000, message: "traffic on the secondary" });
      const down = await waitFor(
        async () => {
          const r = await ready();
          return r.body.buckets.products.replicas?.primary.ok === false ? r : undefined;
        },
        { timeoutMs: 5000, message: "/ready to report the primary down" },
      );
      expect(down.status).toBe(200); // the bucket still serves from the secondary
      expect(down.body.ready).toBe(true);
      expect(down.body.buckets.products.ok).toBe(true);
      expect(down.body.buckets.products.serving).toBe("secondary");
      expect(down.body.degraded?.some((d) => d.includes("bucket products: replica primary"))).toBe(true);
      // The breaker opened: requests stop paying for the dead primary.
      await waitFor(async () => (await ready()).body.buckets.products.replicas?.primary.circuit !== "closed", { message: "the primary's breaker to open" });

      await primary.resume();
      const atRecovery = l.answers.length;
      await waitFor(() => l.since(atRecovery).filter((a) => a.body === "from primary").length >= 50, { timeoutMs: 10_000, message: "traffic back on the primary" });
      await waitFor(async () => (await ready()).body.degraded === undefined, { message: "/ready no longer degraded" });
    } finally {
      await l.stop();
    }
    const failed = l.answers.filter((a) => a.status !== 200);
    expect(failed).toEqual([]);
    expect(l.answers.every((a) => a.body === "from primary" || a.body === "from secondary")).toBe(true);
    expect(await metric('yatagarasu_s3_failovers_total{bucket="products",from="primary",to="secondary"}')).toBeGreaterThan(failoversBefore);
    expect(await metric('yatagarasu_s3_replica_requests_total{bucket="products",replica="secondary",result="success"}')).toBeGreaterThanOrEqual(50);
    expect(await metric('yatagarasu_s3_replica_circuit_breaker_state{bucket="products",replica="primary"}')).toBe(0);
    const served = px.logs().filter((x) => x.msg === "request" && x.path === "/products/hello.txt").map((x) => x.replica);
    expect(served).toContain("secondary");
    expect(served.at(-1)).toBe("primary");
  }, 30_000);

  test("both replicas down: /ready is 503 naming both; the client gets a 5xx, not a hang", async () => {
    await primary.pause();
    await secondary.pause();
    try {
      const r = await waitFor(
        async () => {
          const x = await ready();
          return x.status === 503 ? x : undefined;
        },
        { timeoutMs: 5000, message: "/ready 503" },
      );
      expect(r.body.reasons.some((s) => s.startsWith("bucket products: no healthy replica") && s.includes("replica primary") && s.includes("replica secondary"))).toBe(true);
      const res = await fetch(px.url("/products/hello.txt"));
      expect([502, 503]).toContain(res.status);
    } finally {
      await primary.resume();
      await secondary.resume();
    }
    await waitFor(async () => (await ready()).status === 200, { timeoutMs: 5000, message: "/ready 200 again" });
  });
});
