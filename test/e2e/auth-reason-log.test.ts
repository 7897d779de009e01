/**
 * The access line of a refused token or claim says why (the original plan: "Logs auth failures
 * with reason"): the client's 401/403 body names the cause, and an operator who only has the
 * logs must be able to tell an expired token from a bad signature or a failed claim rule.
 * The reason is the client-safe detail (never the token or a claim's value).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { nowSec, sign } from "../fixtures/jwt.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "./harness.ts";

setDefaultTimeout(30_000);

const SECRET = "e2e-auth-reason-secret-0123456789abcdef";
let s3: S3Fixture;
let px: ProxyProcess;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ accessKeyId: "AKIAREASON", secretAccessKey: "reason-secret", buckets: ["data"] }] });
  await s3.put("data", "a.txt", "hello\n", { contentType: "text/plain" });
  px = await startProxy(`server: { address: 127.0.0.1, port: 0 }
jwt:
  enabled: true
  algorithm: HS256
  secret: "${SECRET}"
  claims:
    - { claim: role, operator: equals, value: admin }
buckets:
${bucketYaml({ name: "priv", prefix: "/priv", bucket: "data", endpoint: s3.endpoint, key: "AKIAREASON", secret: "reason-secret", extra: "    auth: { enabled: true }\n" })}`);
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

async function lineFor(headers: Record<string, string>): Promise<Record<string, unknown>> {
  const r = await fetch(px.url("/priv/a.txt"), { headers });
  await r.arrayBuffer();
  const id = r.headers.get("x-request-id");
  return px.waitForLog((l) => l.msg === "request" && l.request_id === id);
}

test("an expired token's access line names the cause", async () => {
  const token = await sign({ role: "admin", exp: nowSec() - 3600 }, { alg: "HS256", key: SECRET });
  const l = await lineFor({ authorization: `Bearer ${token}` });
  expect(l).toMatchObject({ status: 401, error: "InvalidToken", reason: "token expired" });
  expect(JSON.stringify(l)).not.toContain(token);
});

test("a bad signature and a failed claim rule are told apart", async () => {
  const forged = await sign({ role: "admin" }, { alg: "HS256", key: "another-secret-0123456789abcdef-xyz" });
  expect(await lineFor({ authorization: `Bearer ${forged}` })).toMatchObject({ status: 401, reason: "signature verification failed" });
  const user = await sign({ role: "user" }, { alg: "HS256", key: SECRET });
  expect(await lineFor({ authorization: `Bearer ${user}` })).toMatchObject({ status: 403, error: "Forbidden", reason: "claim 'role' must equal admin" });
});

test("successful and tokenless requests carry no reason", async () => {
  const ok = await sign({ role: "admin" }, { alg: "HS256", key: SECRET });
  expect((await lineFor({ authorization: `Bearer ${ok}` })).reason).toBeUndefined();
  expect(await lineFor({})).toMatchObject({ status: 401, error: "Unauthorized" });
});
