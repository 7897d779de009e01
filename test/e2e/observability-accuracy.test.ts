/**
 * What the metrics and the access log say matches what happened:
 * - an S3-front request its grants refuse is one authentication outcome, `forbidden` (it was
 *   counted `success` too, when its signature verified: two outcomes for one request, where the
 *   plain front counts a claim rule's refusal once);
 * - an S3-front upload refused by a rate limit before its signature was read is a write
 *   (`yatagarasu_write_requests_total` counts refused ones), named by its operation and key in the
 *   access log; and every S3-front error answer's access line has `s3_error` (a 412 the cache
 *   answered, a SlowDown, had only `error`); a 412/416 the cache answered (X-Cache: HIT, counted
 *   as a hit) has `cache` in its access line, as its 200 would;
 * - a bucket a reload removes keeps its cache counters: `yatagarasu_cache_hits_total{bucket}`,
 *   `_misses_total{bucket}` and `yatagarasu_cache_coalesced_total` went back to zero (the series
 *   gone), counters that must never go down.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { heapStats } from "bun:jsc";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AccessRecord } from "../../src/observe/log.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { recordingLogger } from "../helpers/logger.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";
import { startFrontsOn } from "./s3-front-helpers.ts";
import { READER, signedFetch, uploadYaml, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

const T = 30_000;

const sample = (text: string, series: string): number => {
  for (const line of text.split("\n")) if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  return 0;
};

describe("the S3 front", () => {
  let s3: S3Fixture;
  let env: UploadEnv;
  const access: AccessRecord[] = [];
  const lineOf = (id: string | null) => access.find((r) => r.request_id === id);

  beforeAll(async () => {
    s3 = await startS3Fixture({ buckets: [{ name: "up" }], credentials: [{ accessKeyId: "AKIDUPSTREAMWRITE", secretAccessKey: "upstream-writer-secret-0123456789", buckets: ["up"], write: true }] });
    env = await startFrontsOn(
      uploadYaml(s3.endpoint, {
        moreBuckets: (endpoint) => `  - name: slow
    path_prefix: /slow
    access: read-write
    s3: { bucket: up, endpoint: "${endpoint}", access_key: AKIDUPSTREAMWRITE, secret_key: upstream-writer-secret-0123456789, rate_limit: { requests_per_second: 0.01 } }
`,
        moreCredentials: `    - { access_key_id: AKIDSLOWWRITER01, secret_access_key: slow-writer-secret-0123456789ab, identity: slowwriter, buckets: { slow: [read, write] } }
`,
      }),
      s3,
      true,
      { ...recordingLogger(), access: (r: AccessRecord) => void access.push(r) },
    );
    await s3.put("up", "hello.txt", "hello");
  });
  afterAll(async () => {
    await env?.[Symbol.asyncDispose]();
  });

  test(
    "a write whose upstream answers without an S3 error code (a redirect, a balancer's HTML 502) names that status as upstream_error",
    async () => {
      s3.faults.set("/up/moved.txt", { kind: "reply", status: 301, body: "" });
      s3.faults.set("/up/gateway.txt", { kind: "reply", status: 502, body: "<html><body>502 Bad Gateway</body></html>" });
      try {
        for (const [key, status] of [["moved.txt", "HTTP_301"], ["gateway.txt", "HTTP_502"]] as const) {
          const res = await signedFetch(env, { method: "PUT", path: `/up/${key}`, body: "x", creds: WRITER });
          expect(res.status).toBe(500);
          await res.text();
          const line = lineOf(res.headers.get("x-amz-request-id"));
          expect({ operation: line?.operation, s3_error: line?.s3_error, upstream_error: line?.upstream_error }).toEqual({ operation: "PutObject", s3_error: "InternalError", upstream_error: status });
        }
      } finally {
        s3.faults.delete("/up/moved.txt");
        s3.faults.delete("/up/gateway.txt");
      }
    },
    T,
  );

  test(
    "a request refused before its signature verified names the access key it used (access_key_id), not a subject: which client is misconfigured",
    async () => {
      for (const [creds, code] of [
        [{ accessKeyId: READER.accessKeyId, secretAccessKey: "not-the-reader-secret-0123456789" }, "SignatureDoesNotMatch"],
        [{ accessKeyId: "AKIDNOBODYHASTHIS", secretAccessKey: "whatever-secret-0123456789abcdef" }, "InvalidAccessKeyId"],
      ] as const) {
        const res = await signedFetch(env, { method: "GET", path: "/up/hello.txt", creds });
        expect(res.status).toBe(403);
        await res.text();
        const line = lineOf(res.headers.get("x-amz-request-id"));
        expect({ s3_error: line?.s3_error, access_key_id: line?.access_key_id, subject: line?.subject }).toEqual({ s3_error: code, access_key_id: creds.accessKeyId, subject: undefined });
      }
      // a verified request's line has its subject, no access_key_id
      const ok = await signedFetch(env, { method: "GET", path: "/up/hello.txt", creds: READER });
      await ok.text();
      expect(lineOf(ok.headers.get("x-amz-request-id"))?.access_key_id).toBeUndefined();
    },
    T,
  );

  test(
    "a request the grants refuse is counted forbidden, not success as well",
    async () => {
      const before = env.app.metrics.render();
      const res = await signedFetch(env, { method: "PUT", path: "/up/refused.txt", body: "x", creds: READER });
      expect(res.status).toBe(403);
      await res.text();
      const after = env.app.metrics.render();
      const delta = (r: string) => sample(after, `yatagarasu_auth_total{result="${r}"}`) - sample(before, `yatagarasu_auth_total{result="${r}"}`);
      expect({ forbidden: delta("forbidden"), success: delta("success") }).toEqual({ forbidden: 1, success: 0 });
      // an allowed one is still one success
      const ok = await signedFetch(env, { method: "GET", path: "/up/hello.txt", creds: READER });
      expect(ok.status).toBe(200);
      await ok.text();
      expect(sample(env.app.metrics.render(), 'yatagarasu_auth_total{result="success"}') - sample(after, 'yatagarasu_auth_total{result="success"}')).toBe(1);
    },
    T,
  );

  test(
    "a 412 the cache answers has s3_error in the access log",
    async () => {
      const fill = await signedFetch(env, { method: "GET", path: "/up/hello.txt", creds: WRITER });
      await fill.text();
      const res = await signedFetch(env, { method: "GET", path: "/up/hello.txt", headers: { "if-match": '"nope"' }, creds: WRITER });
      expect(res.status).toBe(412);
      await res.text();
      const line = lineOf(res.headers.get("x-amz-request-id"));
      expect({ error: line?.error, s3_error: line?.s3_error, cache: res.headers.get("x-cache"), logged: line?.cache }).toEqual({ error: "PreconditionFailed", s3_error: "PreconditionFailed", cache: "HIT", logged: "HIT" });
    },
    T,
  );

  test(
    "an answer of known size is logged without turning its body into a stream (Bun.serve sends the bytes as they are)",
    async () => {
      // deliver() read `res.body` before asking whether the engine reports what it sent: on
      // Bun.serve that wrapped every GET's body (a miss on either front, a cache hit) in a
      // ReadableStream and its source, ~1 µs of CPU per 1 KiB answer, logged all the same.
      const gets = async () => {
        const answers = [
          await signedFetch(env, { method: "GET", path: "/up/hello.txt", creds: READER }), // a cache hit
          await fetch(env.mainUrl("/up/hello.txt")),
          await signedFetch(env, { method: "GET", path: "/ro/hello.txt", creds: WRITER }), // a miss (no cache)
          await fetch(env.mainUrl("/ro/hello.txt")),
        ];
        for (const r of answers) expect([r.status, await r.text()]).toEqual([200, "hello"]);
        return answers.map((r) => r.headers.get("x-request-id"));
      };
      await gets();
      const streams = () => (heapStats().objectTypeCounts as Record<string, number>).ReadableStream ?? 0;
      Bun.gc(true);
      const before = streams();
      env.mark();
      const ids: Array<string | null> = [];
      for (let i = 0; i < 5; i++) ids.push(...(await gets()));
      // (the fixture, in this process, makes its own for each object it sends: none is the proxy's)
      expect(streams() - before).toBeLessThanOrEqual(env.upstreamCalls().length);
      expect(ids.map((id) => lineOf(id)?.bytes)).toEqual(ids.map(() => 5));
    },
    T,
  );

  test(
    "an upload refused by the bucket's rate limit is a write in the metrics, named in the access log",
    async () => {
      const creds = { accessKeyId: "AKIDSLOWWRITER01", secretAccessKey: "slow-writer-secret-0123456789ab" };
      const first = await signedFetch(env, { method: "PUT", path: "/slow/a.txt", body: "x", creds });
      await first.text();
      const res = await signedFetch(env, { method: "PUT", path: "/slow/a.txt", body: "x", creds });
      expect(res.status).toBe(503);
      await res.text();
      const text = env.app.metrics.render();
      expect(sample(text, 'yatagarasu_write_requests_total{bucket="slow",operation="PutObject",status="503"}')).toBe(1);
      expect(sample(text, 'yatagarasu_write_errors_total{bucket="slow",operation="PutObject",code="SlowDown"}')).toBe(1);
      // a throttle, not a failure (the error-ratio alert leaves it out); the upstream's failures
      // answered on bucket up above (500, and their 5xx in the request counter) are not throttles
      expect(sample(text, 'yatagarasu_http_throttled_total{bucket="slow"}')).toBe(1);
      expect(sample(text, 'yatagarasu_http_requests_total{bucket="slow",method="PUT",status="503"}')).toBe(1);
      expect(text).toContain('yatagarasu_http_throttled_total{bucket="up"} 0\n');
      const line = lineOf(res.headers.get("x-amz-request-id"));
      expect({ operation: line?.operation, error: line?.error, s3_error: line?.s3_error, bucket: line?.bucket }).toEqual({ operation: "PutObject", error: "SlowDown", s3_error: "SlowDown", bucket: "slow" });
    },
    T,
  );
});

describe("a bucket a reload removes", () => {
  let s3: S3Fixture;
  let px: InProcessProxy;
  const dir = mkdtempSync(join(tmpdir(), "yata-obs-accuracy-"));
  const configPath = join(dir, "config.yaml");
  const yaml = (withPub: boolean) =>
    `server: { address: 127.0.0.1, port: 0, readiness_probe_interval_seconds: 3600 }\nlogging: { level: error }\ncache: { enabled: true }\nbuckets:\n` +
    (withPub ? bucketYaml({ name: "pub", prefix: "/pub", bucket: "bb", endpoint: s3.endpoint, extra: "    cache: { enabled: true }\n" }) : "") +
    bucketYaml({ name: "keep", prefix: "/keep", bucket: "bb", endpoint: s3.endpoint });

  beforeAll(async () => {
    s3 = await startS3Fixture({ buckets: [{ name: "bb", public: true }], credentials: [] });
    await s3.put("bb", "hello.txt", "hello");
    writeFileSync(configPath, yaml(true));
    px = await startInProcess(yaml(true), { configPath, probeIntervalMs: 3_600_000 });
  });
  afterAll(async () => {
    await px?.stop();
    await s3?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test(
    "keeps its cache hit and miss counters, and the coalesced total does not go down",
    async () => {
      const get = async () => (await fetch(px.url("/pub/hello.txt"))).text();
      // two concurrent misses (one joins the other's fetch), then two hits
      await Promise.all([get(), get()]);
      await get();
      await get();
      const m = () => px.app.metrics.render();
      const before = m();
      const counts = (t: string) => ({
        hits: sample(t, 'yatagarasu_cache_hits_total{bucket="pub"}'),
        misses: sample(t, 'yatagarasu_cache_misses_total{bucket="pub"}'),
        coalesced: sample(t, "yatagarasu_cache_coalesced_total"),
      });
      expect(counts(before).hits).toBe(2);
      expect(counts(before).misses).toBe(2);

      writeFileSync(configPath, yaml(false));
      expect((await px.app.reload()).ok).toBe(true);
      expect(counts(m())).toEqual(counts(before));

      writeFileSync(configPath, yaml(true));
      expect((await px.app.reload()).ok).toBe(true);
      await get(); // a miss again (the reload dropped its entries)
      await get(); // a hit
      const c = counts(m());
      expect({ hits: c.hits, misses: c.misses }).toEqual({ hits: counts(before).hits + 1, misses: counts(before).misses + 1 });
      expect(c.coalesced).toBe(counts(before).coalesced);
    },
    T,
  );
});
