/** The real process: SIGTERM drains, then exports the spans still queued before it exits (main.ts). */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../../fixtures/s3.ts";
import { startProxy } from "../../e2e/harness.ts";
import { startReceiver, type OtlpReceiver } from "./receiver.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIATRACESTOP", secretAccessKey: "trace-stop-secret-0123456789" };
let s3: S3Fixture;
let rx: OtlpReceiver;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...CREDS, buckets: ["data"] }] });
  await s3.put("data", "k.txt", "hello\n");
  rx = startReceiver();
});
afterAll(async () => {
  rx?.close();
  await s3?.stop();
});

test("spans queued when SIGTERM arrives reach the collector before the process exits", async () => {
  await using px = await startProxy(`server: { address: 127.0.0.1, port: 0 }
tracing: { enabled: true, otlp_endpoint: "${rx.url}", export_interval_ms: 600000, service_name: stop-test }
buckets:
  - name: p
    path_prefix: /p
    s3: { bucket: data, endpoint: "${s3.endpoint}", access_key: "${CREDS.accessKeyId}", secret_key: "${CREDS.secretAccessKey}" }
`);
  for (let i = 0; i < 2; i++) expect((await fetch(px.url("/p/k.txt"))).status).toBe(200);
  expect(rx.spans).toHaveLength(0); // a 10-minute interval: still queued
  expect(await px.stop()).toBe(0);
  const traces = new Set(rx.spans.map((s) => s.traceId));
  expect(rx.spans).toHaveLength(4); // 2 × (server + upstream attempt)
  expect(traces.size).toBe(2);
  expect(rx.spans.every((s) => s.resource["service.name"] === "stop-test")).toBe(true);
  const logged = px.logs().filter((l) => l.msg === "request").map((l) => l.trace_id);
  expect(new Set(logged)).toEqual(traces);
});
