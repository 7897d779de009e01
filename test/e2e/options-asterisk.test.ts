/**
 * `OPTIONS *` (RFC 9110 §9.3.7) asks about the server, not a resource: a 200 with the methods the
 * listener takes in Allow and no content (Content-Length: 0). The S3 front answers it as the plain
 * front does (S3 documents no answer to it): S3's methods and a CORS preflight's.
 *
 * On the node engine node:http's parser reports the asterisk-form target as a parse error; it was
 * answered a bare 400. On the bun engine Bun.serve's parser answers its own bare 400 before any
 * handler runs, so nothing of ours can answer it (README, Known limits): asserted here, so a Bun
 * that starts passing it to the handler is noticed.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { listenNode } from "../../src/server.ts";
import { startS3Fixture } from "../fixtures/s3.ts";
import { rawHttp, rawStatus, rawStatuses } from "../helpers/raw-http.ts";
import { startS3FrontEnv, UPSTREAM, type S3FrontEnv } from "./s3-front-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const ASK = "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/** The answer's head fields (lower-case names) and its body. */
function parse(raw: string): { status: number; fields: Record<string, string>; body: string } {
  const end = raw.indexOf("\r\n\r\n");
  const fields: Record<string, string> = {};
  for (const line of raw.slice(0, end).split("\r\n").slice(1)) {
    const i = line.indexOf(":");
    fields[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: rawStatus(raw), fields, body: raw.slice(end + 4) };
}

describe("node engine", () => {
  let env: S3FrontEnv;
  beforeAll(async () => {
    env = await startS3FrontEnv({ engine: "node", s3Extra: "  engine: node\n" });
  });
  afterAll(async () => {
    await env?.stop();
  });

  test("plain front: 200, Allow naming its methods, no content", async () => {
    const a = parse(await rawHttp(Number(new URL(env.mainUrl("/")).port), ASK, 10_000));
    expect([a.status, a.fields.allow, a.fields["content-length"], a.body]).toEqual([200, "GET, HEAD, OPTIONS", "0", ""]);
    // (the listener still serves)
    expect((await fetch(env.mainUrl("/health"))).status).toBe(200);
  });

  test("S3 front: 200, Allow naming S3's methods and OPTIONS, no content", async () => {
    const a = parse(await rawHttp(env.port, ASK, 10_000));
    expect([a.status, a.fields.allow, a.fields["content-length"], a.body]).toEqual([200, "GET, HEAD, PUT, POST, DELETE, OPTIONS", "0", ""]);
  });

  test("another target Bun's node:http cannot parse is still the bare 400", async () => {
    expect(rawStatus(await rawHttp(env.port, "GET * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 10_000))).toBe(400);
  });
});

describe("node engine, a bucket taking writes", () => {
  test("the plain front's Allow names the writes", async () => {
    await using env = await startS3FrontEnv({
      engine: "node",
      buckets: (endpoint) =>
        `buckets:\n  - name: data\n    path_prefix: /data\n    access: read-write\n    s3: { bucket: data, endpoint: "${endpoint}" }\n    auth: { anonymous_writes: true }\n` +
        `  - name: private\n    path_prefix: /private\n    s3: { bucket: private, endpoint: "${endpoint}" }\n`,
    });
    const a = parse(await rawHttp(Number(new URL(env.mainUrl("/")).port), ASK, 10_000));
    expect([a.status, a.fields.allow]).toEqual([200, "GET, HEAD, PUT, DELETE, OPTIONS"]);
  });
});

describe("node engine with server.workers > 1 (connections handed over by a node:net listener)", () => {
  test("the same answer, and the connection goes on", async () => {
    const s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...UPSTREAM, buckets: ["data"] }] });
    const config = parseConfig(`server: { address: 127.0.0.1, port: 0, engine: node }\nlogging: { level: error }\nbuckets:\n  - name: data\n    path_prefix: /data\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n`);
    const app = await App.create(config, { probeIntervalMs: 600_000 });
    const main = await listenNode(app, config, { reusePort: true });
    try {
      const raw = await rawHttp(main.port, `${ASK}GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, 10_000);
      const a = parse(raw);
      expect([a.status, a.fields.allow, a.fields["content-length"]]).toEqual([200, "GET, HEAD, OPTIONS", "0"]);
      expect(rawStatuses(raw)).toEqual([200, 200]);
    } finally {
      await main.stop(true);
      app.close();
      await s3.stop();
    }
  });
});

describe("bun engine (Known limits: Bun.serve answers it itself)", () => {
  test("a bare 400 on both listeners", async () => {
    await using env = await startS3FrontEnv({ engine: "bun" });
    for (const port of [Number(new URL(env.mainUrl("/")).port), env.port]) {
      const a = parse(await rawHttp(port, ASK, 10_000));
      expect(a.status).toBe(400);
      expect(a.fields.allow).toBeUndefined();
    }
  });
});
