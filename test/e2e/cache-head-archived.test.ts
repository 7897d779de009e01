/**
 * A HEAD that misses the cache is answered from a GET (the fill). S3 refuses the GET of an object
 * it can still describe (an archived object: 403 InvalidObjectState; one under a KMS key the
 * proxy may not decrypt with), while its HeadObject answers 200 with StorageClass and Restore. A
 * cached bucket's HEAD must answer as S3's HeadObject does, and as an uncached bucket's HEAD does.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "./harness.ts";

setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIAE2EARCHIVED", secretAccessKey: "e2e-archived-secret" };
let s3: S3Fixture;
let px: ProxyProcess;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...CREDS, buckets: ["data"] }] });
  await s3.put("data", "archived.txt", "archived body\n", { contentType: "text/plain" });
  const b = (name: string, prefix: string, extra = "") => bucketYaml({ name, prefix, bucket: "data", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra });
  px = await startProxy(`server: { address: 127.0.0.1, port: 0 }
buckets:
${b("c", "/c", "    cache: { enabled: true }\n")}${b("nc", "/nc")}`);
  s3.faults.set("/data/archived.txt", { kind: "error", status: 403, code: "InvalidObjectState", message: "The operation is not valid for the object's storage class", method: "GET" });
});

afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

describe("HEAD of an object S3 describes but will not GET", () => {
  test("a cached bucket's HEAD answers 200 with the object's headers, as the uncached bucket's does (it was 403 AccessDenied from the fill's GET)", async () => {
    for (const prefix of ["/nc", "/c", "/c"]) {
      const res = await fetch(px.url(`${prefix}/archived.txt`), { method: "HEAD" });
      expect({ prefix, status: res.status, length: res.headers.get("content-length"), type: res.headers.get("content-type") }).toEqual({ prefix, status: 200, length: "14", type: "text/plain" });
    }
    // a ranged HEAD too (it bypasses the cache with a GET of the range)
    const ranged = await fetch(px.url("/c/archived.txt"), { method: "HEAD", headers: { range: "bytes=0-3" } });
    expect(ranged.status).toBe(206);
    // the GET stays S3's refusal, and nothing is cached; it says the object is archived (it said
    // "The upstream denied access to this object", as for a permission problem)
    for (const prefix of ["/c", "/nc"]) {
      const get = await fetch(px.url(`${prefix}/archived.txt`));
      const body = (await get.json()) as { error: string; message: string };
      expect({ prefix, status: get.status, message: body.message }).toEqual({ prefix, status: 403, message: "The object is archived (InvalidObjectState): it must be restored before it can be read" });
    }
  });
});
