/**
 * The server span's name and attributes where the client chooses them: issuing a presigned URL is
 * traced as a presign (as the audit trail has it), not as the action it presigns; the Host header
 * (server.address) is cut like the User-Agent. Both fronts, the App in this process, exporting to
 * the OTLP test receiver.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { connect } from "node:net";
import { join } from "node:path";
import { hs256, UPSTREAM } from "../../e2e/s3-front-helpers.ts";
import type { S3Fixture } from "../../fixtures/s3.ts";
import { removeDir, startAuditEnv, startFixture, tempDir, type AuditEnv } from "../audit-helpers.ts";
import { startReceiver, type OtlpReceiver, type ReceivedSpan } from "./receiver.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SERVER = 2;

const buckets = (ep: string) => {
  const up = `access_key: "${UPSTREAM.accessKeyId}", secret_key: "${UPSTREAM.secretAccessKey}"`;
  return `buckets:
  - { name: data, path_prefix: /data, s3: { bucket: data, endpoint: "${ep}", ${up} } }
  - { name: private, path_prefix: /private, s3: { bucket: private, endpoint: "${ep}", ${up} }, auth: { enabled: true } }
  - name: writable
    path_prefix: /rw
    access: read-write
    s3: { bucket: private, endpoint: "${ep}", ${up} }
    auth: { enabled: true, write_claims: [{ claim: team, operator: equals, value: a }] }
`;
};

let s3: S3Fixture;
let otlp: OtlpReceiver;
let env: AuditEnv;
let dir: string;

beforeAll(async () => {
  s3 = await startFixture();
  otlp = startReceiver();
  dir = tempDir();
  env = await startAuditEnv(s3, `  enabled: true\n  path: ${join(dir, "audit.log")}\n`, {
    buckets,
    s3Extra: "  public_url: http://s3.example.test\n",
    extra: `tracing: { enabled: true, otlp_endpoint: "${otlp.url}", sample_ratio: 1.0, export_interval_ms: 20 }\n`,
  });
});

afterAll(async () => {
  await env?.stop();
  otlp?.close();
  await s3?.stop();
  if (dir) removeDir(dir);
});

/** The server span of the request with this x-request-id. */
const serverSpan = (id: string): Promise<ReceivedSpan> => otlp.waitFor((all) => all.find((s) => s.kind === SERVER && s.attrs["yatagarasu.request_id"] === id));

test("issuing a presigned URL is traced as a presign (name, action, presigned action), as the audit trail has it; the URL's own use is traced as its action", async () => {
  const exp = Math.floor(Date.now() / 1000) + 600;
  const presign = async (id: string, query: string, team: string) => {
    const r = await fetch(env.url(`/rw/uploads/photo.txt?presign&${query}`), { method: "POST", headers: { "x-request-id": id, authorization: `Bearer ${hs256({ sub: "alice", team, exp })}` } });
    await r.text();
    return r.status;
  };
  expect(await presign("span-put", "method=PUT", "a")).toBe(200);
  expect(await presign("span-get", "method=GET", "a")).toBe(200);
  expect(await presign("span-refused", "method=PUT", "b")).toBe(403);
  const put = await serverSpan("span-put");
  expect(put.name).toBe("POST presign");
  expect(put.attrs).toMatchObject({ "http.request.method": "POST", "yatagarasu.s3.action": "presign", "yatagarasu.s3.presigned_action": "s3:PutObject", "yatagarasu.bucket": "writable", "aws.s3.key": "uploads/photo.txt", "enduser.id": "alice", "http.response.status_code": 200 });
  const get = await serverSpan("span-get");
  expect(get.name).toBe("POST presign");
  expect(get.attrs).toMatchObject({ "yatagarasu.s3.action": "presign", "yatagarasu.s3.presigned_action": "s3:GetObject" });
  const refused = await serverSpan("span-refused");
  expect(refused.name).toBe("POST presign");
  expect(refused.attrs).toMatchObject({ "yatagarasu.s3.action": "presign", "yatagarasu.s3.presigned_action": "s3:PutObject", "http.response.status_code": 403 });
  // the audit trail says the same
  const audit = new Map((await env.lines()).map((l) => [String(l.request_id), l]));
  for (const id of ["span-put", "span-get", "span-refused"]) {
    const span = await serverSpan(id);
    expect(audit.get(id)).toMatchObject({ action: span.attrs["yatagarasu.s3.action"], presigned_action: span.attrs["yatagarasu.s3.presigned_action"] });
  }
  // a real read is still named by its action, with no presigned_action
  expect((await fetch(env.url("/data/doc.txt"), { headers: { "x-request-id": "span-read" } })).status).toBe(200);
  const read = await serverSpan("span-read");
  expect(read.name).toBe("GET s3:GetObject");
  expect(read.attrs["yatagarasu.s3.action"]).toBe("s3:GetObject");
  expect(read.attrs["yatagarasu.s3.presigned_action"]).toBeUndefined();
});

/** A raw HTTP/1.1 request (a GET unless told) with this Host header (fetch sets its own); resolves with the status line. */
function rawGet(port: number, path: string, host: string, id: string, method = "GET"): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    let got = "";
    sock.on("connect", () => sock.write(`${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: ${"u".repeat(1000)}\r\nX-Request-Id: ${id}\r\nConnection: close\r\n\r\n`));
    sock.on("data", (d) => (got += d.toString("latin1")));
    sock.on("end", () => resolve(got.split("\r\n")[0]!));
    sock.on("error", reject);
  });
}

test("a long Host header is cut to 256 characters in server.address, like the User-Agent, on both fronts; a port that is not one is left out; an IPv6 literal loses its brackets", async () => {
  const port = Number(new URL(env.url("/")).port);
  const long = `${"h".repeat(7000)}.example`;
  expect(await rawGet(port, "/data/doc.txt", long, "host-plain")).toContain(" 200 ");
  await rawGet(env.s3Port, "/data/doc.txt", `${long}:${env.s3Port}`, "host-s3");
  await rawGet(port, "/data/doc.txt", `${"p".repeat(300)}:99999999`, "host-badport");
  await rawGet(port, "/data/doc.txt", "[::1]:8080", "host-v6");
  for (const id of ["host-plain", "host-s3"]) {
    const span = await serverSpan(id);
    expect(span.attrs["server.address"]).toBe("h".repeat(256));
    expect(String(span.attrs["user_agent.original"]).length).toBe(256);
  }
  expect((await serverSpan("host-s3")).attrs["server.port"]).toBe(env.s3Port);
  const bad = await serverSpan("host-badport");
  expect(bad.attrs["server.address"]).toBe("p".repeat(256));
  expect(bad.attrs["server.port"]).toBeUndefined();
  await rawGet(port, "/data/doc.txt", "[::1]", "host-v6-noport");
  expect((await serverSpan("host-v6")).attrs).toMatchObject({ "server.address": "::1", "server.port": 8080 }); // without brackets, as client spans
  expect((await serverSpan("host-v6-noport")).attrs["server.address"]).toBe("::1");
  // no attribute of any exported span is longer than the longest the README allows for this request
  for (const s of otlp.spans) for (const [k, v] of Object.entries(s.attrs)) if (typeof v === "string") expect({ k, len: v.length <= 256 }).toEqual({ k, len: true });
});

test("a method outside OpenTelemetry's known set is traced as _OTHER, the span named HTTP, the method as sent in http.request.method_original, on both fronts", async () => {
  const port = Number(new URL(env.url("/")).port);
  await rawGet(port, "/data/doc.txt", "localhost", "method-plain", "PROPFIND");
  await rawGet(env.s3Port, "/data/doc.txt", "localhost", "method-s3", "PURGE");
  await rawGet(port, "/data/doc.txt", "localhost", "method-known", "DELETE");
  const plain = await serverSpan("method-plain");
  expect(plain.name.split(" ")[0]).toBe("HTTP");
  expect(plain.attrs).toMatchObject({ "http.request.method": "_OTHER", "http.request.method_original": "PROPFIND" });
  const s3front = await serverSpan("method-s3");
  expect(s3front.name.split(" ")[0]).toBe("HTTP");
  expect(s3front.attrs).toMatchObject({ "http.request.method": "_OTHER", "http.request.method_original": "PURGE" });
  const known = await serverSpan("method-known");
  expect(known.name.split(" ")[0]).toBe("DELETE");
  expect(known.attrs["http.request.method"]).toBe("DELETE");
  expect(known.attrs["http.request.method_original"]).toBeUndefined();
});
