/**
 * Replica selection and failover (src/s3/replicas.ts) over real BucketUpstreams (their signers,
 * retry loops and circuit breakers), with an injected fetch standing in for each replica's
 * endpoint. The end-to-end behaviour against two real S3 fixtures is in test/e2e/failover.test.ts.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { cappedTtl } from "../../src/cache/freshness.ts";
import { parseConfig } from "../../src/config/load.ts";
import { ProxyError } from "../../src/errors.ts";
import { Metrics } from "../../src/observe/metrics.ts";
import { buildUpstream, readOrder, ReplicaSet } from "../../src/s3/replicas.ts";
import { listObjectsV2 } from "../../src/s3/operations/list-objects.ts";
import { abandonUpstream, answerCodeOf, BucketUpstream } from "../../src/s3/upstream.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

type Behaviour = number | "refuse" | "hang" | "slowdown" | "minio-slowdown" | "mute-slowdown";

/** A fetch whose answer depends on the host: each replica is its own "endpoint". */
function endpoints(initial: Record<string, Behaviour>) {
  const behaviour = { ...initial };
  const calls: string[] = [];
  const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    const host = url.hostname;
    calls.push(`${host} ${init?.method ?? "GET"} ${url.pathname}`);
    const b = behaviour[host];
    if (b === "refuse") throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    if (b === "hang") {
      return new Promise<Response>((_, reject) => {
        const signal = init?.signal;
        signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    }
    // (S3's throttle: 503 with the SlowDown code, a HEAD's told by its reason phrase only)
    if (b === "slowdown") return new Response(init?.method === "HEAD" ? null : "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>", { status: 503, statusText: "Slow Down" });
    // (MinIO's: the usual reason phrase, the code in the body, a HEAD's in x-minio-error-code; a
    // store that tells a HEAD nothing at all)
    if (b === "minio-slowdown" || b === "mute-slowdown") {
      const head = init?.method === "HEAD";
      const headers: Record<string, string> = head && b === "minio-slowdown" ? { "x-minio-error-code": "SlowDown" } : {};
      return new Response(head ? null : "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>", { status: 503, statusText: "Service Unavailable", headers });
    }
    return new Response(b === 200 ? `body from ${host}` : `<Error><Code>E${b}</Code></Error>`, { status: b ?? 599 });
  }) as typeof fetch;
  return { behaviour, calls, fetchImpl, count: (host: string) => calls.filter((c) => c.startsWith(host + " ")).length };
}

const bucketCfg = (s3extra: string, replicas = ["primary", "secondary", "tertiary"]) =>
  parseConfig(
    `buckets:
  - name: products
    path_prefix: /products
    s3:
      { ${s3extra}, replicas: [
${replicas.map((r, i) => `        { name: ${r}, bucket: b-${r}, region: r-${i}, endpoint: "http://${r}.test:9000", access_key: AK${i}, secret_key: SK${i}, priority: ${(i + 1) * 10} }`).join(",\n")}
      ] }
`,
    { env: {} },
  ).buckets[0];

const FAST_RETRY = "retry: { max_attempts: 3, initial_backoff_ms: 1, max_backoff_ms: 1 }";

function setup(behaviour: Record<string, Behaviour>, s3extra = FAST_RETRY, replicas?: string[]) {
  const ep = endpoints(behaviour);
  const metrics = new Metrics({ version: "t", buckets: ["products"], processMetrics: false });
  const cfg = bucketCfg(s3extra, replicas);
  const series = metrics.replicas.configure(new Map([["products", cfg.s3.replicas!.map((r) => r.name)]]));
  const set = buildUpstream(cfg, { fetch: ep.fetchImpl, metrics }, series.get("products")) as ReplicaSet;
  const timing = () => ({ upstreamMs: 0, attempts: 0 }) as { upstreamMs: number; attempts: number; replica?: string };
  const get = (t = timing(), signal = new AbortController().signal) => set.fetchObject("GET", "dir/k.txt", {}, signal, t);
  const sample = (series: string) => {
    for (const line of metrics.render().split("\n")) if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
    return undefined;
  };
  return { ...ep, set, get, timing, sample, metrics };
}

describe("config", () => {
  test("replicas are sorted by priority; the top-level keys hold the primary's; a bucket without replicas is a plain BucketUpstream", () => {
    const c = parseConfig(
      `buckets:
  - name: p
    path_prefix: /p
    s3:
      replicas:
        - { name: second, bucket: b2, region: us-west-2, endpoint: "http://h2:9000", priority: 2 }
        - { name: first, bucket: b1, region: us-east-1, endpoint: "http://h1:9000", access_key: AK, secret_key: SK, priority: 1 }
  - { name: single, path_prefix: /s, s3: { bucket: one, endpoint: "http://h3:9000" } }
`,
      { env: {} },
    );
    const s3 = c.buckets[0].s3;
    expect(s3.replicas!.map((r) => r.name)).toEqual(["first", "second"]);
    expect([s3.bucket, s3.region, s3.endpoint, s3.access_key]).toEqual(["b1", "us-east-1", "http://h1:9000", "AK"]);
    expect(c.buckets[1].s3.replicas).toBeUndefined();
    expect(c.buckets[1].s3.region).toBe("us-east-1");
    const single = buildUpstream(c.buckets[1], {});
    expect(single).toBeInstanceOf(BucketUpstream);
    expect(single.primary()).toBe(single as BucketUpstream);
    const set = buildUpstream(c.buckets[0], {}) as ReplicaSet;
    expect(set).toBeInstanceOf(ReplicaSet);
    expect(set.replicas.map((r) => [r.name, r.priority])).toEqual([["first", 1], ["second", 2]]);
  });

  test("the replica form is checked: connection keys beside replicas, unpaired keys, userinfo, duplicates, no bucket at all", () => {
    const bad = (s3: string) => {
      try {
        parseConfig(`buckets:\n  - name: p\n    path_prefix: /p\n    s3:\n${s3}`, { env: {} });
      } catch (e) {
        return (e as Error).message;
      }
      throw new Error("accepted");
    };
    const m = bad(`      endpoint: "http://x:1"
      replicas:
        - { name: a, bucket: ba, endpoint: "http://user:pw@h:1", access_key: AK, priority: 1 }
        - { name: a, bucket: bb, priority: 1, session_token: T }
`);
    expect(m).toContain("buckets[0].s3.endpoint: with s3.replicas, each replica names its own endpoint");
    expect(m).toContain("buckets[0].s3.replicas[0].secret_key: access_key and secret_key must be given together");
    expect(m).toContain("buckets[0].s3.replicas[0].endpoint: must not contain a user name or password");
    expect(m).not.toContain("pw");
    expect(m).toContain("buckets[0].s3.replicas[1].name: duplicate replica name 'a'");
    expect(m).toContain("buckets[0].s3.replicas[1].priority: duplicate priority 1");
    expect(m).toContain("buckets[0].s3.replicas[1].session_token: a session_token needs access_key and secret_key");
    expect(bad(`      timeout: 5\n`)).toContain("buckets[0].s3.bucket: required (or list the bucket's replicas under s3.replicas)");
    expect(bad(`      replicas: []\n`)).toContain("buckets[0].s3.replicas: list at least one replica");
    expect(bad(`      replicas: [{ name: "a b", bucket: bb }]\n`)).toContain("buckets[0].s3.replicas[0].name: must be 1-64 letters");
  });
});

describe("read order", () => {
  test("by priority; an open breaker is skipped; a failed probe demotes to the end unless the breaker asks for a trial", async () => {
    // (timeout_seconds 1: the open state is read from the clock, and a loaded host stalled these
    // synchronous checks past 50 ms, reading it half-open already)
    const { set } = setup({}, `${FAST_RETRY}, circuit_breaker: { failure_threshold: 1, success_threshold: 1, timeout_seconds: 1, half_open_max_requests: 1 }`);
    const [p, s, t] = set.replicas;
    expect(readOrder(set.replicas)).toEqual([p, s, t]);
    s.probeFailed = true;
    expect(readOrder(set.replicas)).toEqual([p, t, s]);
    s.probeFailed = false;
    // Trip the primary's breaker: one failure (failure_threshold 1).
    const a = p.upstream.breaker!.tryAcquire();
    if (a.ok) a.release(false);
    expect(p.breakerState).toBe("open");
    expect(p.standing).toBe("skipped");
    expect(readOrder(set.replicas)).toEqual([s, t]);
    // Half-open: tried in its priority place again, even with a failed probe (the breaker asks for a trial).
    p.probeFailed = true;
    await waitFor(() => p.breakerState === "half_open", { timeoutMs: 5000 });
    expect(readOrder(set.replicas)).toEqual([p, s, t]);
  });
});

describe("failover within one request", () => {
  test("the primary answers: it serves, nothing else is asked, timing names it", async () => {
    const { get, count, timing, sample } = setup({ "primary.test": 200, "secondary.test": 200 });
    const t = timing();
    const res = await get(t);
    expect(await res.text()).toBe("body from primary.test");
    expect(t.replica).toBe("primary");
    expect(t.attempts).toBe(1);
    expect(count("secondary.test")).toBe(0);
    expect(sample('yatagarasu_s3_replica_requests_total{bucket="products",replica="primary",result="success"}')).toBe(1);
  });

  test("a refused connection on the primary: one attempt there (no retry), then the secondary serves", async () => {
    const { get, count, timing, sample } = setup({ "primary.test": "refuse", "secondary.test": 200 });
    const t = timing();
    const res = await get(t);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("body from secondary.test");
    expect(count("primary.test")).toBe(1);
    expect(t.replica).toBe("secondary");
    expect(t.attempts).toBe(2);
    expect(sample('yatagarasu_s3_failovers_total{bucket="products",from="primary",to="secondary"}')).toBe(1);
    expect(sample('yatagarasu_s3_replica_requests_total{bucket="products",replica="primary",result="failure"}')).toBe(1);
    expect(sample('yatagarasu_s3_replica_requests_total{bucket="products",replica="secondary",result="success"}')).toBe(1);
  });

  for (const status of [500, 503]) {
    test(`a ${status} from the primary fails over to the secondary`, async () => {
      const { get, count } = setup({ "primary.test": status, "secondary.test": 200 });
      const res = await get();
      expect(await res.text()).toBe("body from secondary.test");
      expect(count("primary.test")).toBe(1);
    });
  }

  test("a timeout on the primary fails over", async () => {
    const { get, count, timing } = setup({ "primary.test": "hang", "secondary.test": 200 }, `${FAST_RETRY}, timeout: 0.1`);
    const t = timing();
    const res = await get(t);
    expect(await res.text()).toBe("body from secondary.test");
    expect(count("primary.test")).toBe(1);
    expect(t.upstreamMs).toBeGreaterThanOrEqual(90);
  });

  // (a 501 NotImplemented too: the breaker counts it a success; failed over, the primary was
  // charged a failure and the secondary's outage, a 503, reached the client)
  for (const status of [404, 403, 412, 501]) {
    test(`a ${status} from the primary is an answer: no failover`, async () => {
      const { get, set, count, timing, sample } = setup({ "primary.test": status, "secondary.test": 503 });
      const t = timing();
      const res = await get(t);
      expect(res.status).toBe(status);
      expect(t.replica).toBe("primary");
      expect(count("primary.test")).toBe(1);
      expect(count("secondary.test")).toBe(0);
      expect(sample('yatagarasu_s3_replica_requests_total{bucket="products",replica="primary",result="success"}')).toBe(1);
      // a listing alike
      const listed = await set.read(new AbortController().signal, timing(), (u, maxAttempts) => listObjectsV2(u, {}, { signal: new AbortController().signal, timing: timing(), maxAttempts }));
      expect(listed.status).toBe(status);
      expect(count("secondary.test")).toBe(0);
    });
  }

  // S3's 503 SlowDown: a throttle by a store that is up, which the breaker does not count; failed
  // over, the primary was charged a failure and its throttled reads went to a secondary that may lag
  test("S3's 503 SlowDown from the primary is passed on (body and all), no failover, the primary not charged (a bare 503 fails over, above)", async () => {
    const { get, set, count, timing, sample } = setup({ "primary.test": "slowdown", "secondary.test": 200 });
    const t = timing();
    const res = await get(t);
    expect(res.status).toBe(503);
    expect(await res.text()).toContain("<Code>SlowDown</Code>");
    expect(t.replica).toBe("primary");
    expect(count("secondary.test")).toBe(0);
    // (one attempt, as every replica but the last gets: README, the proxy's retry is the last one's)
    expect([count("primary.test"), t.attempts]).toEqual([1, 1]);
    expect(sample('yatagarasu_s3_replica_requests_total{bucket="products",replica="primary",result="success"}')).toBe(1);
    expect(sample('yatagarasu_s3_replica_requests_total{bucket="products",replica="primary",result="failure"}')).toBe(0);
    const head = await set.fetchObject("HEAD", "dir/k.txt", {}, new AbortController().signal, timing());
    expect(head.status).toBe(503);
    const listed = await set.read(new AbortController().signal, timing(), (u, maxAttempts) => listObjectsV2(u, {}, { signal: new AbortController().signal, timing: timing(), maxAttempts }));
    expect(listed.status).toBe(503);
    expect(count("secondary.test")).toBe(0);
  });

  // With a breaker, guarded reads a 503's body to tell SlowDown, and failover asked the copy again:
  // a second 64 KiB read and parse, a third Response, per 503
  test("a 503's body is read once: asked again, answerCodeOf answers the copy it made as it is", async () => {
    for (const code of ["SlowDown", "ServiceUnavailable"]) {
      const first = await answerCodeOf(new Response(`<Error><Code>${code}</Code></Error>`, { status: 503 }));
      const again = await answerCodeOf(first.res);
      expect(again.code).toBe(code);
      expect(again.res).toBe(first.res);
      expect(await again.res.text()).toBe(`<Error><Code>${code}</Code></Error>`);
    }
  });

  // A HEAD's 503 has no body: a store that says SlowDown in the body only (MinIO, under "503 Service
  // Unavailable") had its HEAD failed over (and the primary charged a failure) while a GET of the
  // same key got the primary's 503 SlowDown
  for (const b of ["minio-slowdown", "mute-slowdown"] as const) {
    test(`${b}: a HEAD of a throttled primary gets its 503 as a GET does, no failover, the primary not charged; a bare 503 to a HEAD still fails over`, async () => {
      const { get, set, count, timing, sample, behaviour } = setup({ "primary.test": b, "secondary.test": 200 });
      const head = () => set.fetchObject("HEAD", "dir/k.txt", {}, new AbortController().signal, timing());
      expect((await get()).status).toBe(503);
      expect((await head()).status).toBe(503);
      expect(count("secondary.test")).toBe(0);
      // (MinIO's header tells it at once; a HEAD told nothing is asked again as a GET of the key's first byte)
      expect(count("primary.test")).toBe(b === "minio-slowdown" ? 2 : 3);
      expect(sample('yatagarasu_s3_replica_requests_total{bucket="products",replica="primary",result="failure"}')).toBe(0);
      behaviour["primary.test"] = 503;
      expect((await head()).status).toBe(200);
      expect(count("secondary.test")).toBe(1);
      // with a breaker (one failure opens it): the throttled HEAD is no failure, as the GET is not
      const guarded = setup({ "primary.test": b, "secondary.test": 200 }, `${FAST_RETRY}, circuit_breaker: { failure_threshold: 1, timeout_seconds: 60 }`);
      expect((await guarded.set.fetchObject("HEAD", "dir/k.txt", {}, new AbortController().signal, timing())).status).toBe(503);
      expect(guarded.set.replicas[0].breakerState).toBe("closed");
      expect(guarded.count("secondary.test")).toBe(0);
    });
  }

  test("failing replicas are passed in order; the last one gets the whole retry budget and its 5xx is the answer", async () => {
    const { get, count, timing } = setup({ "primary.test": 502, "secondary.test": "refuse", "tertiary.test": 500 });
    const t = timing();
    const res = await get(t);
    expect(res.status).toBe(500);
    expect([count("primary.test"), count("secondary.test"), count("tertiary.test")]).toEqual([1, 1, 3]);
    expect(t.attempts).toBe(5); // (replicas - 1) + max_attempts
    expect(t.replica).toBe("tertiary");
  });

  test("no replica reachable: UpstreamUnreachable (502), every replica tried", async () => {
    const { get, count } = setup({ "primary.test": "refuse", "secondary.test": "refuse", "tertiary.test": "refuse" });
    const err = await get().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ProxyError);
    expect((err as ProxyError).code).toBe("UpstreamUnreachable");
    expect([count("primary.test"), count("secondary.test"), count("tertiary.test")]).toEqual([1, 1, 3]);
  });

  test("a client that went away is not failed over", async () => {
    const { get, count } = setup({ "primary.test": "hang", "secondary.test": 200 });
    const ac = new AbortController();
    const p = get(undefined, ac.signal);
    await waitFor(() => count("primary.test") === 1);
    ac.abort(new Error("client gone"));
    expect(await p.then(() => "resolved", () => "rejected")).toBe("rejected");
    expect(count("secondary.test")).toBe(0);
  });
});

describe("how long a cache may keep the answer", () => {
  test("a secondary's answer (a 304 too) is capped at the breaker's timeout_seconds, at most 5 s; the primary's is not", async () => {
    const { get, behaviour, set } = setup({ "primary.test": 200, "secondary.test": 200 });
    expect(set.secondaryTtlSeconds).toBe(5); // no breaker: the default bound
    const fromPrimary = await get();
    expect(cappedTtl(600, fromPrimary)).toBe(600);
    behaviour["primary.test"] = 500;
    const fromSecondary = await get();
    expect(await fromSecondary.text()).toBe("body from secondary.test");
    expect([cappedTtl(600, fromSecondary), cappedTtl(2, fromSecondary), cappedTtl(null, fromSecondary)]).toEqual([5, 2, null]);
    behaviour["secondary.test"] = 304;
    expect(cappedTtl(600, await get())).toBe(5);
    behaviour["primary.test"] = "refuse";
    behaviour["secondary.test"] = "refuse";
    behaviour["tertiary.test"] = 200;
    expect(cappedTtl(600, await get())).toBe(5);
    const breaker = (timeout: number) => `${FAST_RETRY}, circuit_breaker: { failure_threshold: 5, timeout_seconds: ${timeout} }`;
    expect(setup({}, breaker(1)).set.secondaryTtlSeconds).toBe(1);
    expect(setup({}, breaker(60)).set.secondaryTtlSeconds).toBe(5);
  });
});

describe("breakers per replica", () => {
  const BREAKER = `${FAST_RETRY}, circuit_breaker: { failure_threshold: 2, success_threshold: 1, timeout_seconds: 0.2, half_open_max_requests: 1 }`;

  test("a tripped primary is skipped (no request reaches it), then tried again when its breaker half-opens, and serves again", async () => {
    const { get, count, behaviour, set, sample, timing } = setup({ "primary.test": 500, "secondary.test": 200 }, BREAKER);
    for (let i = 0; i < 2; i++) expect((await get()).status).toBe(200);
    expect(set.replicas[0].breakerState).toBe("open");
    expect(sample('yatagarasu_circuit_breaker_state{bucket="products"}')).toBe(0); // the bucket still serves
    expect(sample('yatagarasu_s3_replica_circuit_breaker_state{bucket="products",replica="primary"}')).toBe(1);
    for (let i = 0; i < 5; i++) expect(await (await get()).text()).toBe("body from secondary.test");
    expect(count("primary.test")).toBe(2);
    expect(sample('yatagarasu_s3_replica_requests_total{bucket="products",replica="primary",result="skipped"}')).toBe(5);
    behaviour["primary.test"] = 200; // the primary recovers
    await waitFor(() => set.replicas[0].breakerState === "half_open", { timeoutMs: 10_000, message: "the breaker half-open" });
    const t = timing();
    expect(await (await get(t)).text()).toBe("body from primary.test");
    expect(t.replica).toBe("primary");
    expect(set.replicas[0].breakerState).toBe("closed");
    expect(sample('yatagarasu_s3_replica_circuit_breaker_state{bucket="products",replica="primary"}')).toBe(0);
  });

  test("a secondary no read reaches (the primary healthy again) leaves half-open on its successful readiness probes; a failed probe does not reopen it", async () => {
    const { get, behaviour, set, sample } = setup({ "primary.test": 500, "secondary.test": 500 }, BREAKER, ["primary", "secondary"]);
    for (let i = 0; i < 2; i++) expect((await get()).status).toBe(500);
    expect(set.replicas.map((r) => r.breakerState)).toEqual(["open", "open"]);
    behaviour["primary.test"] = 200;
    await waitFor(() => set.replicas[1].breakerState === "half_open", { timeoutMs: 10_000, message: "the breaker half-open" });
    expect(await (await get()).text()).toBe("body from primary.test");
    expect(set.replicas.map((r) => r.breakerState)).toEqual(["closed", "half_open"]);
    // still failing: its probe fails, and the breaker stays half-open (reads decide)
    expect((await set.replicas[1].probe(1000)).ok).toBe(false);
    expect(set.replicas[1].breakerState).toBe("half_open");
    behaviour["secondary.test"] = 200;
    for (let i = 0; i < 3; i++) expect(await (await get()).text()).toBe("body from primary.test");
    // (before: half-open for good, the gauge at 2 and YatagarasuReplicaBreakerOpen firing, though every probe passed)
    expect(set.replicas[1].breakerState).toBe("half_open");
    expect((await set.replicas[1].probe(1000)).ok).toBe(true);
    expect(set.replicas[1].breakerState).toBe("closed");
    expect(sample('yatagarasu_s3_replica_circuit_breaker_state{bucket="products",replica="secondary"}')).toBe(0);
  });

  // (94900fe0 left a skip between two replicas counted: primary failed, secondary refused by its
  // half-open breaker, tertiary served, and the failover was counted primary -> secondary, a
  // replica the read never asked, none to tertiary, which it moved on to)
  test("a failover past a replica its half-open breaker refused is counted to the replica asked next, not to the skipped one", async () => {
    const { get, count, set, sample } = setup({ "primary.test": 500, "secondary.test": 200, "tertiary.test": 200 }, BREAKER.replace("failure_threshold: 2", "failure_threshold: 1"));
    const secondary = set.replicas[1].upstream.breaker!;
    const trip = secondary.tryAcquire();
    if (trip.ok) trip.release(false);
    await waitFor(() => set.replicas[1].breakerState === "half_open", { timeoutMs: 10_000, message: "the breaker half-open" });
    // (its one trial slot taken: the read is refused there)
    expect(secondary.tryAcquire().ok).toBe(true);
    expect(await (await get()).text()).toBe("body from tertiary.test");
    expect(count("secondary.test")).toBe(0);
    const failovers = (from: string, to: string) => sample(`yatagarasu_s3_failovers_total{bucket="products",from="${from}",to="${to}"}`) ?? 0;
    expect([failovers("primary", "secondary"), failovers("primary", "tertiary"), failovers("secondary", "tertiary")]).toEqual([0, 1, 0]);
    expect(sample('yatagarasu_s3_replica_requests_total{bucket="products",replica="secondary",result="skipped"}')).toBe(1);
  });

  test("every breaker open: the client gets CircuitOpen (503) with Retry-After, and no replica is asked", async () => {
    const { get, calls, set } = setup({ "primary.test": 500, "secondary.test": 500 }, BREAKER.replace("timeout_seconds: 0.2", "timeout_seconds: 30"), ["primary", "secondary"]);
    for (let i = 0; i < 2; i++) expect((await get()).status).toBe(500);
    expect(set.replicas.map((r) => r.breakerState)).toEqual(["open", "open"]);
    const before = calls.length;
    const err = await get().then(() => undefined, (e: unknown) => e);
    expect((err as ProxyError).code).toBe("CircuitOpen");
    expect((err as ProxyError).status).toBe(503);
    expect(Number((err as ProxyError).headers?.["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(calls.length).toBe(before);
  });
});

describe("writes", () => {
  test("primary() is the highest-priority replica whatever its health; the set itself only reads", async () => {
    const { set } = setup({ "primary.test": "refuse", "secondary.test": 200 });
    set.replicas[0].probeFailed = true;
    expect(set.primary()).toBe(set.replicas[0].upstream);
    const t = { upstreamMs: 0, attempts: 0 };
    const err = await set.fetchObject("PUT" as "GET", "k", {}, new AbortController().signal, t).then(() => undefined, (e: unknown) => e);
    expect((err as ProxyError).code).toBe("InternalError");
  });
});

describe("server.request_timeout", () => {
  const BREAKER = `${FAST_RETRY}, circuit_breaker: { failure_threshold: 1, success_threshold: 1, timeout_seconds: 30, half_open_max_requests: 1 }`;

  test("a read given up while a replica is asked is not failed over: the next replica is neither asked nor charged a failure", async () => {
    const { get, count, set, sample, timing } = setup({ "primary.test": "hang", "secondary.test": 200 }, BREAKER, ["primary", "secondary"]);
    const t = timing() as ReturnType<typeof timing> & { abandoned?: unknown };
    const p = get(t);
    await waitFor(() => count("primary.test") === 1);
    abandonUpstream(t, new ProxyError("GatewayTimeout", { detail: "server.request_timeout" }));
    const err = await p.then(() => undefined, (e: unknown) => e);
    expect((err as ProxyError).code).toBe("GatewayTimeout");
    expect(count("secondary.test")).toBe(0);
    // the secondary, never asked, is still closed: the bucket keeps serving from it
    expect(set.replicas[1].breakerState).toBe("closed");
    expect(sample('yatagarasu_s3_replica_requests_total{bucket="products",replica="secondary",result="failure"}')).toBe(0);
    expect(sample('yatagarasu_s3_failovers_total{bucket="products",from="primary",to="secondary"}')).toBe(0);
    expect(await (await get()).text()).toBe("body from secondary.test");
  });
});

describe("a read given up by server.request_timeout, as the access line and the metrics see it", () => {
  test("the attempt in flight is counted at once (upstream time, the replica asked) and as an S3 timeout, once", async () => {
    const { get, count, sample, timing } = setup({ "primary.test": "hang", "secondary.test": 200 }, FAST_RETRY, ["primary", "secondary"]);
    const t = timing() as ReturnType<typeof timing> & { abandoned?: unknown };
    const p = get(t);
    await waitFor(() => count("primary.test") === 1);
    await Bun.sleep(60);
    abandonUpstream(t, new ProxyError("GatewayTimeout", { detail: "server.request_timeout" }));
    // (what the access line, written right then, reads)
    expect(t.upstreamMs).toBeGreaterThanOrEqual(50);
    expect(t.replica).toBe("primary");
    const spent = t.upstreamMs;
    await p.catch(() => {});
    expect(t.upstreamMs).toBe(spent); // not counted twice
    expect(sample('yatagarasu_s3_requests_total{bucket="products",status="timeout"}')).toBe(1);
  });
});
