/**
 * Admission (rate limits, the concurrency cap, the bucket's ip_filter) runs before any signature is
 * verified, as on the plain front (where a refused request counts too): a request whose signature
 * fails, or that a verified signature would have refused, counts against the budgets, a spent
 * budget costs no verification, and an address the bucket blocks gets the block's answer whatever
 * it signed, so it learns nothing of a key. Before, the S3 front verified signatures before
 * admission: unlimited verifications from anywhere, and a blocked address could tell a right
 * secret (AccessDenied, or a later refusal) from a wrong one (SignatureDoesNotMatch).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startS3Fixture } from "../fixtures/s3.ts";
import { startFrontsOn } from "./s3-front-helpers.ts";
import { signedFetch } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

const UP = { accessKeyId: "AKIDADMISSIONUP00001", secretAccessKey: "admission-upstream-secret-0123456789" };
const C = { accessKeyId: "AKIDADMISSIONCLIENT1", secretAccessKey: "admission-client-secret-0123456789ab" };
const WRONG = { ...C, secretAccessKey: "not-the-secret-0123456789abcdefghijk" };

async function start(extraServer: string, bucketExtra = "") {
  const s3 = await startS3Fixture({ buckets: [{ name: "up" }], credentials: [{ ...UP, buckets: ["up"], write: true }] });
  await s3.put("up", "a.txt", "a");
  const yaml = `server: { address: 127.0.0.1, port: 0${extraServer} }
logging: { level: error }
buckets:
  - name: b
    path_prefix: /b
    s3: { bucket: up, endpoint: "${s3.endpoint}", access_key: "${UP.accessKeyId}", secret_key: "${UP.secretAccessKey}" }
${bucketExtra}s3_api:
  address: 127.0.0.1
  port: 0
  credentials:
    - { access_key_id: "${C.accessKeyId}", secret_access_key: "${C.secretAccessKey}", identity: c, buckets: { b: [read] } }
`;
  return startFrontsOn(yaml, s3, true);
}

const codeOf = async (r: Response) => `${r.status} ${/<Code>(\w+)<\/Code>/.exec(await r.text())?.[1]}`;

describe("rate limits", () => {
  let env: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    env = await start(", rate_limit: { enabled: true, per_ip: { requests_per_second: 0.01, burst: 3 } }");
  });
  afterAll(() => env?.stop());

  test("requests with a wrong secret spend the address's budget, then get SlowDown like any other", async () => {
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) answers.push(await codeOf(await signedFetch(env, { method: "GET", path: "/b/a.txt", creds: WRONG })));
    expect(answers).toEqual(["403 SignatureDoesNotMatch", "403 SignatureDoesNotMatch", "403 SignatureDoesNotMatch", "503 SlowDown", "503 SlowDown"]);
    // and the right secret from the same address is throttled too now, whatever it asks
    expect(await codeOf(await signedFetch(env, { method: "GET", path: "/b/a.txt", creds: C }))).toBe("503 SlowDown");
    expect(await codeOf(await signedFetch(env, { method: "GET", path: "/nosuchbucket/k", creds: C }))).toBe("503 SlowDown");
    expect(await codeOf(await signedFetch(env, { method: "GET", path: "/b/a.txt", creds: C, payloadHash: "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881" }))).toBe("503 SlowDown");
  });
});

describe("ip_filter", () => {
  let env: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    env = await start(", rate_limit: { enabled: true, global: { requests_per_second: 0.01, burst: 2 } }", "    ip_filter: { blocklist: [127.0.0.0/8] }\n");
  });
  afterAll(() => env?.stop());

  test("a blocked address gets the same answer whether its secret is right or wrong", async () => {
    const right = await codeOf(await signedFetch(env, { method: "GET", path: "/b/a.txt", creds: C }));
    const wrong = await codeOf(await signedFetch(env, { method: "GET", path: "/b/a.txt", creds: WRONG }));
    expect(right).toBe("403 AccessDenied");
    expect(wrong).toBe(right);
    // nor do the refusals a verified signature would get (a signed payload hash on a GET, a listing's repeated parameter)
    const sha = await codeOf(await signedFetch(env, { method: "GET", path: "/b/a.txt", creds: C, payloadHash: "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881" }));
    const twice = await codeOf(await signedFetch(env, { method: "GET", path: "/b", query: [["prefix", "a"], ["prefix", "b"]], creds: C }));
    expect([sha, twice]).toEqual([right, right]);
  });

  test("a blocked address is refused before the rate limits count it: it spends no budget, and is never told SlowDown", async () => {
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) answers.push(await codeOf(await signedFetch(env, { method: "GET", path: "/b/a.txt", creds: C })));
    expect(answers).toEqual(Array(4).fill("403 AccessDenied"));
    // the global budget is whole: a request no bucket refuses is admitted twice, then throttled
    const service: string[] = [];
    for (let i = 0; i < 3; i++) service.push(await codeOf(await signedFetch(env, { method: "GET", path: "/", creds: C })));
    expect(service).toEqual(["200 undefined", "200 undefined", "503 SlowDown"]);
  });
});
