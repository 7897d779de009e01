/**
 * Allocation budgets of the S3 front's hot requests (bench/load.ts's s3_get_vs_signed and
 * s3_put_vs_get): a SigV4-verified GetObject and a 1 KiB UNSIGNED-PAYLOAD PutObject, handed to the
 * front's handler directly, the upstream an in-process fetch. Cell counts are exact (load does not
 * change them), so a change that brings back a per-request object fails here; the figures are the
 * loop's own Request included (bench/signed-vs-anon.ts ALLOC=1 counts the same way). The client's
 * signature and the verifier's clock are fixed (a second rolling over mid-count makes new strings).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { App } from "../../../src/app.ts";
import { parseConfig } from "../../../src/config/load.ts";
import { s3Front } from "../../../src/fronts/s3/front.ts";
import { nullLogger } from "../../../src/observe/log.ts";
import { createHandler } from "../../../src/proxy/runner.ts";
import { S3Signer } from "../../../src/s3/sigv4.ts";
import { cellsPerCall } from "../../helpers/alloc.ts";

setDefaultTimeout(10_000); // explicit: the runner's 5 s default is not a choice made here

const AT = new Date("2026-12-07T05:00:00Z");
const body = new Uint8Array(1024).fill(97);
const upstream = (async (_url: string | URL | Request, init?: RequestInit) =>
  init?.method === "PUT"
    ? new Response(null, { headers: { "content-length": "0", etag: '"e"' } })
    : new Response(body, { headers: { "content-length": "1024", etag: '"e"', "content-type": "application/octet-stream" } })) as typeof fetch;
const YAML = `logging: { level: warn }
buckets:
  - { name: pub, path_prefix: /pub, s3: { bucket: pub, endpoint: "http://upstream.test:9000" } }
  - { name: sink, path_prefix: /sink, access: read-write, s3: { bucket: sink, endpoint: "http://upstream.test:9000" } }
s3_api:
  address: 127.0.0.1
  port: 0
  credentials:
    - { access_key_id: AKIABUDGET0000000000, secret_access_key: budget-secret-0123456789abcdef, identity: budget, buckets: { pub: [read], sink: [write] } }
`;

let app: App;
let handle: ReturnType<typeof createHandler>;
const signer = new S3Signer({ accessKeyId: "AKIABUDGET0000000000", secretAccessKey: "budget-secret-0123456789abcdef" }, "us-east-1", "s3", () => AT);
const getHeaders = { ...signer.sign({ method: "GET", host: "s3.test", path: "/pub/1k.bin" }), host: "s3.test" };
const putHeaders = { ...signer.sign({ method: "PUT", host: "s3.test", path: "/sink/1k.bin", payloadHash: "UNSIGNED-PAYLOAD" }), host: "s3.test", "content-length": "1024" };

beforeAll(async () => {
  app = await App.create(parseConfig(YAML, { env: {} }), { log: nullLogger, fetch: upstream, probeIntervalMs: 3_600_000 });
  app.runtime.s3Api!.now = () => AT.getTime();
  handle = createHandler(app, s3Front, () => "127.0.0.1");
});
afterAll(() => app.close());

async function served(req: Request): Promise<void> {
  const res = await handle(req, "127.0.0.1");
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
}
const getCells = () => cellsPerCall(() => served(new Request("http://s3.test/pub/1k.bin", { headers: getHeaders })));
const putCells = () => cellsPerCall(() => served(new Request("http://s3.test/sink/1k.bin", { method: "PUT", headers: putHeaders, body })));

describe("S3 front: objects per request", () => {
  test("GetObject: verifySigV4's options are the generation's one object, and its credential lookup takes plain arguments, not a context object; verification's input, its header-auth params and its payload answer are objects kept for the process; no PayloadInfo for a bodiless request; s3Address's address is the one object s3Parse reads; verification's answer (Verified) is kept too, filled anew by each request; no scope for the closure that applies response-* overrides (its own function)", async () => {
    const cells = await getCells();
    // (23.9 objects with the options literal; 22.9 with the generation's; 21.9 without the lookup's context;
    // 16.9 without verifySigV4's input, withRequestTime's params, payloadOf's { hash, mode }, the PayloadInfo, s3Address's { a, hostBucket };
    // 15.9 with the Verified kept;
    // 29 scopes, 27 once getObject's closure over its overrides is made in its own function;
    // 26 scopes and 15 functions once passResponseHeaders copies with a module function, not a closure)
    expect(cells.Object).toBeLessThanOrEqual(16.4);
    expect(cells.JSLexicalEnvironment).toBeLessThanOrEqual(26.5);
    expect(cells.Function).toBeLessThanOrEqual(15.5);
  });

  test("PutObject of 1 KiB: the small body's placeholder replaced in place; no getter, take or reframe closure; one promise less in send(); one async layer to the upstream write, not five (readingBody, readSmallBody, sendBody, putObject folded in; no closures carry the write)", async () => {
    const cells = await putCells();
    // (before: 40.9 objects, 44 scopes, 24 functions, 15 promises; 38.9, 39, 22, 14 after; 37.9 objects without the lookup's context;
    // 31 scopes, 21 functions, 14 promises, 7 async generators, 3 arrays with the five layers, 26, 17, 11, 5, 2 with two;
    // 16 functions without send()'s closure around the retry loop, a bucket without a breaker;
    // 23 scopes, 15 functions, 10 promises, 4 async generators with one layer, sendBody's folded in;
    // 1 array once send() reads the upstream headers' names with for-in, not Object.keys)
    expect(cells.Object).toBeLessThanOrEqual(38.4);
    expect(cells.JSLexicalEnvironment).toBeLessThanOrEqual(23.5);
    expect(cells.Function).toBeLessThanOrEqual(15.5);
    expect(cells.Promise).toBeLessThanOrEqual(10.5);
    expect(cells.AsyncFunctionGenerator).toBeLessThanOrEqual(4.5);
    expect(cells.Array).toBeLessThanOrEqual(1.5);
  });

  test("PutObject of 1 KiB: the object headers it passes on are looked up by the signed names, with no pass over the request's headers; the write metric's series is found without joining a key string", async () => {
    const cells = await putCells();
    // (before: 37.9 objects, 19 strings and a Headers Iterator: keys() made a result object per header; 31.9, 17 and none after;
    // 16 strings once the write metric's series is found without joining a key string; 15 once verification
    // does not cut the signature from the Authorization header; 14 once the address reuses the last bucket's name)
    expect(cells.Object).toBeLessThanOrEqual(32.4);
    expect(cells.string).toBeLessThanOrEqual(14.5);
    expect(cells["Headers Iterator"] ?? 0).toBe(0);
  });

  test("verification compares the signature in the Authorization header without cutting it out", async () => {
    const cells = await getCells();
    // (before: 20 strings per GetObject)
    expect(cells.string).toBeLessThanOrEqual(19.5);
  });

  test("the address of a path-style request names the same bucket as the last one with the last one's name: no string cut from the path for it", async () => {
    const cells = await getCells();
    // (before: 19 strings per GetObject)
    expect(cells.string).toBeLessThanOrEqual(18.5);
  });

  test("verification makes no hasher: the string to sign's HMAC is two one-shot SHA-256 over the signing key's kept pad blocks, not a copy of a keyed CryptoHasher", async () => {
    const [get, put] = [await getCells(), await putCells()];
    // (before: one CryptoHasher per request, verification's keyed.copy())
    expect(get.CryptoHasher ?? 0).toBe(0);
    expect(put.CryptoHasher ?? 0).toBe(0);
  });

  test("admission makes no scope of its own (its rate-limit continuation closed over the request), nor a closure for an upload's slot", async () => {
    const [get, put] = [await getCells(), await putCells()];
    // (before: 35 scopes per GetObject; 37 scopes and 22 functions per PutObject)
    expect(get.JSLexicalEnvironment).toBeLessThanOrEqual(34.5);
    expect(put.JSLexicalEnvironment).toBeLessThanOrEqual(35.5);
    expect(put.Function).toBeLessThanOrEqual(21.5);
  });

  test("the S3 phases (authorize, operate) make no scope of their own: their rarely used continuations are functions apart", async () => {
    const [get, put] = [await getCells(), await putCells()];
    // (before: 34 scopes per GetObject, 35 per PutObject)
    expect(get.JSLexicalEnvironment).toBeLessThanOrEqual(30.5);
    expect(put.JSLexicalEnvironment).toBeLessThanOrEqual(31.5);
  });
});
