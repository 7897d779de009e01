/** The pipeline with `new Request(...)` and a scripted upstream fetch (no sockets). */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { nullLogger } from "../../src/observe/log.ts";
import { createMainHandler } from "../../src/fronts/index.ts";
import type { RequestContext } from "../../src/proxy/context.ts";
import { createHandler, runPhases, type Front, type Phase } from "../../src/proxy/runner.ts";
import { cellsPerCall } from "../helpers/alloc.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

type Seen = { url: string; method: string; headers: Headers };
const seen: Seen[] = [];
let answer: (s: Seen) => Response = () => new Response("hello", { headers: { "content-length": "5", etag: '"e"' } });
const fakeFetch = (async (input: string | URL | Request, init?: RequestInit) => {
  const s = { url: String(input), method: init?.method ?? "GET", headers: new Headers(init?.headers) };
  if (s.method === "HEAD" && s.url.endsWith("/bkt/")) return new Response(null, { status: 200 }); // readiness probe
  seen.push(s);
  return answer(s);
}) as typeof fetch;

const JWT_SECRET = "unit-jwt-secret-0123456789abcdefghij";
let app: App;
let handle: (req: Request, peer: string) => Promise<Response>;
const YAML = `server: { security_limits: { max_uri_length: 200, max_header_size: 2000 } }
jwt: { enabled: true, secret: "${JWT_SECRET}" }
buckets:
  - name: b
    path_prefix: /b
    s3: { bucket: bkt, endpoint: "http://s3.test:9000", access_key: AKIDUNIT, secret_key: "unit-secret-key", retry: { max_attempts: 1 } }
  - name: j
    path_prefix: /j
    auth: { enabled: true }
    s3: { bucket: bkt, endpoint: "http://s3.test:9000", access_key: AKIDUNIT, secret_key: "unit-secret-key", retry: { max_attempts: 1 } }
  - name: c
    path_prefix: /c
    cache: { enabled: true }
    s3: { bucket: bkt, endpoint: "http://s3.test:9000", access_key: AKIDUNIT, secret_key: "unit-secret-key", retry: { max_attempts: 1 } }
  - name: l
    path_prefix: /l
    listing: { enabled: true }
    cache: { enabled: true }
    s3: { bucket: bkt, endpoint: "http://s3.test:9000", access_key: AKIDUNIT, secret_key: "unit-secret-key", retry: { max_attempts: 1 } }
`;

beforeAll(async () => {
  app = await App.create(parseConfig(YAML, { env: {} }), { log: nullLogger, fetch: fakeFetch, probeIntervalMs: 60_000 });
  const h = createMainHandler(app);
  handle = async (req, peer) => h(req, peer);
});
afterAll(() => app.close());

const req = (path: string, init?: RequestInit) => handle(new Request(`http://proxy.test${path}`, init), "127.0.0.1");
const last = () => seen[seen.length - 1];

describe("pipeline", () => {
  test("GET signs the upstream request for the encoded key, without the client's query or Authorization", async () => {
    answer = () => new Response("hello", { headers: { "content-length": "5" } });
    const res = await req("/b/dir/a%20b+c.txt?token=T1&x=1", { headers: { authorization: "Bearer CLIENT", range: "bytes=0-1" } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("hello");
    expect(last().url).toBe("http://s3.test:9000/bkt/dir/a%20b%2Bc.txt");
    expect(last().headers.get("authorization")).toStartWith("AWS4-HMAC-SHA256 Credential=AKIDUNIT/");
    expect(last().headers.get("range")).toBe("bytes=0-1");
  });

  test("an unmapped path is 404 NotFound with a JSON body and x-request-id", async () => {
    const res = await req("/nope/x", { headers: { "x-request-id": "u-1" } });
    expect(res.status).toBe(404);
    expect(res.headers.get("x-request-id")).toBe("u-1");
    expect(await res.json()).toEqual({ error: "NotFound", message: "No bucket is mapped to this path", request_id: "u-1" });
  });

  test("the bucket prefix without a key is 404 NoSuchKey and never reaches S3", async () => {
    const n = seen.length;
    const res = await req("/b/");
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toBe("NoSuchKey");
    expect(seen.length).toBe(n);
  });

  test("an encoded traversal %2F..%2F is 400 InvalidPath", async () => {
    const res = await req("/b/x%2F..%2F..%2Fy");
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe("InvalidPath");
  });

  test("a malformed escape %zz is 400 InvalidPath", async () => {
    expect((await req("/b/%zz")).status).toBe(400);
  });

  test("a URI longer than max_uri_length is 414", async () => {
    expect((await req(`/b/${"x".repeat(300)}`)).status).toBe(414);
  });

  test("headers larger than max_header_size are 431", async () => {
    expect((await req("/b/x", { headers: { "x-big": "y".repeat(3000) } })).status).toBe(431);
  });

  test("POST is 405 with Allow, OPTIONS is 204 with Allow", async () => {
    const post = await req("/b/x", { method: "POST", body: "x" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
    const opt = await req("/b/x", { method: "OPTIONS" });
    expect(opt.status).toBe(204);
    expect(opt.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
  });

  test("HEAD of an error has no body", async () => {
    const res = await req("/nope/x", { method: "HEAD" });
    expect(res.status).toBe(404);
    expect(await res.text()).toBe("");
  });

  test("S3 416 becomes 416 RangeNotSatisfiable keeping Content-Range", async () => {
    answer = () => new Response("<Error><Code>InvalidRange</Code></Error>", { status: 416, headers: { "content-range": "bytes */5" } });
    const res = await req("/b/x", { headers: { range: "bytes=10-" } });
    expect(res.status).toBe(416);
    expect(res.headers.get("content-range")).toBe("bytes */5");
    expect(((await res.json()) as { error: string }).error).toBe("RangeNotSatisfiable");
  });

  test("S3 304 becomes 304 without a body, with the validators", async () => {
    answer = () => new Response(null, { status: 304, headers: { etag: '"e"', "x-amz-request-id": "R" } });
    const res = await req("/b/x", { headers: { "if-none-match": '"e"' } });
    expect(res.status).toBe(304);
    expect(res.headers.get("etag")).toBe('"e"');
    expect(res.headers.get("x-amz-request-id")).toBeNull();
    expect(await res.text()).toBe("");
  });

  test("S3 404 NoSuchKey XML becomes JSON NoSuchKey without the XML", async () => {
    answer = () => new Response("<Error><Code>NoSuchKey</Code><RequestId>SECRETRID</RequestId></Error>", { status: 404 });
    const res = await req("/b/missing");
    const body = await res.text();
    expect(res.status).toBe(404);
    expect(JSON.parse(body).error).toBe("NoSuchKey");
    expect(body).not.toContain("SECRETRID");
  });

  test("an upstream fetch that throws becomes 502 UpstreamUnreachable when nothing was sent (refused), BadGateway when the connection closed after the request went out", async () => {
    // (as Bun's fetch throws them: the code on the error)
    answer = () => {
      throw Object.assign(new TypeError("ECONNREFUSED: Unable to connect. Is the computer able to access the url?"), { code: "ECONNREFUSED" });
    };
    const res = await req("/b/x");
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: string }).error).toBe("UpstreamUnreachable");
    answer = () => {
      throw Object.assign(new TypeError("The socket connection was closed unexpectedly."), { code: "ECONNRESET" });
    };
    const reset = await req("/b/x");
    expect(reset.status).toBe(502);
    expect(((await reset.json()) as { error: string; message: string })).toMatchObject({ error: "BadGateway", message: "The upstream connection closed before it answered" });
  });

  test("/health answers 200 {status: ok} without touching S3", async () => {
    const n = seen.length;
    const res = await req("/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
    expect(seen.length).toBe(n);
  });
});

describe("the runner: allocation per request", () => {
  const res = new Response("x");
  const ctx = {} as RequestContext;
  test("phases run synchronously allocate no scope (the loop's closure allocated one per phase, on every request)", async () => {
    const phases: Phase[] = [() => undefined, () => undefined, () => res];
    expect(runPhases(phases, ctx)).toBe(res);
    expect((await cellsPerCall(() => runPhases(phases, ctx))).JSLexicalEnvironment ?? 0).toBeLessThan(0.5);
  });

  test("an answer that waits is delivered in its own reactions: no closure for the last phase, no second promise layer", async () => {
    const front: Front = { name: "t", phases: [() => Promise.resolve(res)], renderError: () => new Response(null, { status: 500 }) };
    const h = createHandler(app, front);
    expect(await h(new Request("http://proxy.test/t"))).toBe(res);
    const cells = await cellsPerCall(() => h(new Request("http://proxy.test/t")));
    // (8 functions and 5 promises before: runPhases' closure, a then() to deliver with two more)
    expect(cells.Function).toBeLessThanOrEqual(5);
    expect(cells.Promise).toBeLessThanOrEqual(4);
  });
});

describe("the plain front: allocation per request", () => {
  // (HS256 without exp: verified once, then answered by the verified-token cache, as a client's repeated token is)
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part({ sub: "budget" })}`;
  const bearer = { authorization: `Bearer ${unsigned}.${new Bun.CryptoHasher("sha256", JWT_SECRET).update(unsigned).digest("base64url")}` };
  const got = async (path: string, headers?: Record<string, string>): Promise<void> => {
    const res = await req(path, { headers });
    if (res.status !== 200) throw new Error(`${path}: status ${res.status}: ${await res.text()}`);
    await res.arrayBuffer();
  };
  const cellsOf = (path: string, headers?: Record<string, string>) => {
    answer = () => new Response("hello", { headers: { "content-length": "5", etag: '"e"' } });
    return cellsPerCall(() => got(path, headers));
  };

  test("authenticate makes no scope or closure of its own: a GET of a bucket without auth, and one with a JWT", async () => {
    const [plain, jwt] = [await cellsOf("/b/1k.bin"), await cellsOf("/j/1k.bin", bearer)];
    // (before: 30 scopes and 17 functions per plain GET, 34 and 20 per JWT GET: the phase's
    // refuseWrite, refuse and accept, the URL's maker and authenticateFast's admit were closures;
    // 28 scopes each while serveObjectAsStored relayed the upstream's answer in a closure of its own)
    expect(plain.JSLexicalEnvironment).toBeLessThanOrEqual(27.5);
    expect(plain.Function).toBeLessThanOrEqual(16.5);
    expect(jwt.JSLexicalEnvironment).toBeLessThanOrEqual(27.5);
    expect(jwt.Function).toBeLessThanOrEqual(16.5);
  });

  test("a cache hit makes no scope for a miss's continuation, nor a listing bucket's for its missing-key one", async () => {
    const [cached, listing] = [await cellsOf("/c/1k.bin"), await cellsOf("/l/1k.bin")];
    // (before: 5 scopes per hit, 6 on a listing bucket: serveObjectAsStored's relay of the
    // upstream's answer and orFolder's catch closed over the request; 7 and 8 scopes and 2
    // functions with authenticate's closures)
    for (const cells of [cached, listing]) {
      expect(cells.JSLexicalEnvironment).toBeLessThanOrEqual(3.5);
      expect(cells.Function).toBeLessThanOrEqual(1.5);
    }
  });
});
