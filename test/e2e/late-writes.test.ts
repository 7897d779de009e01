/**
 * A write the client was told failed never lands later. A PUT whose authorizer answers only after
 * server.request_timeout is answered 504 (plain front) / 503 (S3 front), and "the upstream exchange
 * still in flight is cut": so must the one that had not started yet. Bodies that go upstream as the
 * listener's own stream (every plain-front PUT, an S3-front upload above 64 KiB with nothing to
 * check on the way) were still sent once the authorizer allowed it, seconds after the failure, and
 * overwrote a newer PUT of the same key that had succeeded meanwhile (a lost update).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { hs256, JWT_SECRET, startFrontsOn } from "./s3-front-helpers.ts";
import { signedFetch } from "./s3-front-upload-helpers.ts";
import { waitFor } from "../helpers/wait.ts";

setDefaultTimeout(30_000);

const W = { accessKeyId: "AKIDLATEWRITER00001", secretAccessKey: "late-writer-secret-0123456789abcdef" };
const UP = { accessKeyId: "AKIDLATEUPSTREAM0001", secretAccessKey: "late-upstream-secret-0123456789abcd" };
const SLOW_MS = 1500;
let s3: S3Fixture;
let env: Awaited<ReturnType<typeof startFrontsOn>>;
let opa: ReturnType<typeof Bun.serve>;
/** Decisions the slow OPA has answered (each request marked slow). */
let slowAnswered = 0;

beforeAll(async () => {
  // OPA: allows everything; a request whose token says slow (or whose key says so) is answered after SLOW_MS
  opa = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    async fetch(req) {
      const input = ((await req.json()) as { input?: { jwt_claims?: { slow?: boolean }; key?: string } }).input;
      if (input?.jwt_claims?.slow === true || String(input?.key).includes("slow")) {
        await Bun.sleep(SLOW_MS);
        slowAnswered++;
      }
      return Response.json({ result: true });
    },
  });
  s3 = await startS3Fixture({ buckets: [{ name: "up" }], credentials: [{ ...UP, buckets: ["up"], write: true }] });
  const yaml = `server: { address: 127.0.0.1, port: 0, request_timeout: 1 }
logging: { level: error }
jwt: { enabled: true, algorithm: HS256, secret: "${JWT_SECRET}" }
buckets:
  - name: opa
    path_prefix: /opa
    access: read-write
    auth: { enabled: true }
    s3: { bucket: up, endpoint: "${s3.endpoint}", access_key: "${UP.accessKeyId}", secret_key: "${UP.secretAccessKey}" }
    authorization: { type: opa, opa_url: "http://127.0.0.1:${opa.port}", opa_policy_path: yatagarasu/allow, opa_timeout_ms: 5000, opa_cache_ttl_seconds: 0 }
s3_api:
  address: 127.0.0.1
  port: 0
  credentials:
    - { access_key_id: "${W.accessKeyId}", secret_access_key: "${W.secretAccessKey}", identity: w, buckets: { opa: [read, list, write] } }
`;
  env = await startFrontsOn(yaml, s3, true);
});

afterAll(async () => {
  await env?.stop(); // (stops the fixture too)
  opa?.stop(true);
});

const now = () => Math.floor(Date.now() / 1000);
const jwt = (claims: Record<string, unknown> = {}) => hs256({ sub: "alice", iat: now(), exp: now() + 3600, ...claims });
const text = async (key: string) => new TextDecoder().decode(await s3.read("up", key));

test("plain front: a PUT answered 504 while its authorizer was slow is never sent; the newer PUT that succeeded meanwhile stays", async () => {
  const before = slowAnswered;
  const failed = await fetch(env.mainUrl("/opa/k/doc.txt"), { method: "PUT", body: "v1 (answered 504)", headers: { authorization: `Bearer ${jwt({ slow: true })}` } });
  expect(failed.status).toBe(504);
  await failed.body?.cancel();
  const ok = await fetch(env.mainUrl("/opa/k/doc.txt"), { method: "PUT", body: "v2 (answered 200)", headers: { authorization: `Bearer ${jwt()}` } });
  expect(ok.status).toBe(200);
  await ok.body?.cancel();
  // the slow decision comes (an allow), then the proxy would have sent v1: give it the time to
  await waitFor(() => slowAnswered > before, { timeoutMs: 5000, message: "the slow authorizer to answer" });
  await Bun.sleep(300); // (nothing to wait for: the check is that no write comes)
  expect(await text("k/doc.txt")).toBe("v2 (answered 200)");
});

test("S3 front: a 200 KiB UNSIGNED-PAYLOAD PutObject answered 503 while its authorizer was slow leaves no object, then or later", async () => {
  const before = slowAnswered;
  const res = await signedFetch(env, { method: "PUT", path: "/opa/k/slow-obj.bin", body: "a".repeat(200 * 1024), creds: W });
  expect(res.status).toBe(503);
  await res.body?.cancel();
  expect(await s3.exists("up", "k/slow-obj.bin")).toBe(false);
  await waitFor(() => slowAnswered > before, { timeoutMs: 5000, message: "the slow authorizer to answer" });
  await Bun.sleep(300); // (nothing to wait for: the check is that no write comes)
  expect(await s3.exists("up", "k/slow-obj.bin")).toBe(false);
});
