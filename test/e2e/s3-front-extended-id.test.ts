/**
 * S3 answers every request with x-amz-request-id and x-amz-id-2 (the SDKs report both: RequestId
 * and the extended request id). The S3 front sent x-amz-id-2 only with its errors: a successful
 * GetObject, HeadObject, PutObject, listing (a cache hit too) now carries one, this process's id;
 * an error's stays its own (the HostId in its body).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { answerOf, signedFetch, startUploadEnv, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(60_000);

let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv();
});
afterAll(() => env.stop());

test("successful answers carry x-amz-id-2 beside x-amz-request-id; an error's is its HostId", async () => {
  const put = await signedFetch(env, { method: "PUT", path: "/up/id2/a.txt", body: "hello" });
  const get = await signedFetch(env, { method: "GET", path: "/up/id2/a.txt" });
  const hit = await signedFetch(env, { method: "GET", path: "/up/id2/a.txt" });
  const head = await signedFetch(env, { method: "HEAD", path: "/up/id2/a.txt" });
  const list = await signedFetch(env, { method: "GET", path: "/up", query: [["list-type", "2"]] });
  const ids = new Set<string>();
  for (const [name, res] of [["put", put], ["get", get], ["hit", hit], ["head", head], ["list", list]] as const) {
    await res.arrayBuffer();
    const id2 = res.headers.get("x-amz-id-2");
    expect({ name, status: res.status, requestId: res.headers.get("x-amz-request-id") !== null, id2: id2 !== null && /^[A-Za-z0-9+/=]{8,}$/.test(id2) }).toEqual({ name, status: 200, requestId: true, id2: true });
    ids.add(id2!);
  }
  expect(ids.size).toBe(1);
  const missing = await signedFetch(env, { method: "GET", path: "/up/id2/missing.txt" });
  const id2 = missing.headers.get("x-amz-id-2");
  const a = await answerOf(missing);
  expect(a.status).toBe(404);
  expect(a.body).toContain(`<HostId>${id2}</HostId>`);
});
