import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
let px: ProxyProcess;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "pub", public: true }], credentials: [] });
  await s3.put("pub", "hello.txt", "hello world\n", { contentType: "text/plain" });
  px = await startProxy(`server: { address: 127.0.0.1, port: 0 }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/public", bucket: "pub", endpoint: s3.endpoint })}`);
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

test("the real server proxies a public object and logs one access line for it", async () => {
  const res = await fetch(px.url("/public/hello.txt"), { headers: { "x-request-id": "smoke-1" } });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-length")).toBe("12");
  expect(res.headers.get("x-request-id")).toBe("smoke-1");
  expect(await res.text()).toBe("hello world\n");
  const line = await px.waitForLog((l) => l.msg === "request" && l.request_id === "smoke-1");
  expect(line).toMatchObject({ method: "GET", path: "/public/hello.txt", bucket: "pub", status: 200, bytes: 12 });
  expect(typeof line.duration_ms).toBe("number");
  expect(typeof line.upstream_ms).toBe("number");
});

test("SIGTERM drains and exits 0", async () => {
  expect(await px.stop()).toBe(0);
});
