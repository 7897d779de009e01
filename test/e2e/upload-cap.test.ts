/**
 * server.max_concurrent_uploads[_per_ip]: requests whose body is still arriving are capped, so
 * stalled upload heads (each holds an upstream connection, on fetch one of its 256 request slots)
 * cannot take every slot: beyond the cap an upload is refused at once with 503 and Retry-After
 * (S3 front: SlowDown), and reads go on being served. A black-box pass held 260 stalled heads:
 * a 3-byte PUT waited 22 s, and on fetch, GETs and the readiness probes timed out.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Socket } from "bun";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { signedFetch } from "./s3-front-upload-helpers.ts";
import { bucket, startWriteEnv, WRITER, type WriteEnv } from "./plain-write-env.ts";

setDefaultTimeout(30_000);

let s3: S3Fixture;
let env: WriteEnv;
let perIp: WriteEnv;
const stalled: Socket[] = [];

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }, { name: "ro" }], credentials: [WRITER] });
  await s3.put("rw", "hello.txt", "hello");
  const buckets = (ep: string) => bucket("open", "/open", "rw", ep, "    access: read-write\n    auth: { enabled: false, anonymous_writes: true }\n");
  env = await startWriteEnv({ s3Api: true, server: "  max_concurrent_uploads: 2\n  max_concurrent_uploads_per_ip: 10\n", buckets, s3Extra: `  credentials:\n    - { access_key_id: "${WRITER.accessKeyId}", secret_access_key: "${WRITER.secretAccessKey}", identity: w, buckets: { open: [read, write] } }\n` }, s3);
  perIp = await startWriteEnv({ server: "  max_concurrent_uploads: 100\n  max_concurrent_uploads_per_ip: 1\n", buckets }, s3);
});
afterAll(async () => {
  for (const s of stalled) s.end();
  await env?.stop();
  await perIp?.stop();
  await s3?.stop();
});

/** A PUT head announcing a body that never comes. */
async function stallUpload(port: number, key: string): Promise<Socket> {
  const sock = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, close() {}, error() {} } });
  sock.write(`PUT /open/${key} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n`);
  stalled.push(sock);
  return sock;
}

const put = (e: WriteEnv, key: string) => fetch(e.url(`/open/${key}`), { method: "PUT", body: "abc" });

describe("server.max_concurrent_uploads", () => {
  test("with the uploads in flight at the cap, another upload is 503 at once (S3 front: SlowDown), reads are served; a slot freed, uploads go through again", async () => {
    const a = await stallUpload(env.port, "stall-a");
    const b = await stallUpload(env.port, "stall-b");
    await waitFor(() => env.app.uploads.inFlight === 2, { message: "both stalled uploads admitted" });
    // (an operator sees the slots in use: there was only the refusals' counter)
    expect(env.app.metrics.render()).toContain("\nyatagarasu_uploads_in_flight 2\n");
    const refused = await put(env, "legit.txt");
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(await refused.text()).toContain("Too many uploads in progress");
    const viaS3 = await signedFetch({ endpoint: env.s3Endpoint!, port: env.s3Port! }, { method: "PUT", path: "/open/legit-s3.txt", body: "abc", creds: WRITER });
    expect(viaS3.status).toBe(503);
    expect(await viaS3.text()).toContain("<Code>SlowDown</Code>");
    const read = await fetch(env.url("/open/hello.txt"));
    expect([read.status, await read.text()]).toEqual([200, "hello"]);
    expect(await s3.exists("rw", "legit.txt")).toBe(false);

    a.end();
    b.end();
    await waitFor(() => env.app.uploads.inFlight === 0, { message: "the stalled uploads' slots released" });
    const ok = await put(env, "legit.txt");
    expect(ok.status).toBe(200);
    expect(await s3.read("rw", "legit.txt")).toEqual(new TextEncoder().encode("abc"));
  });

  test("per client address: one address at its cap is refused, reads still served (counted once the uploads in flight reach the per-address cap: at most twice it)", async () => {
    const a = await stallUpload(perIp.port, "stall-c");
    await waitFor(() => perIp.app.uploads.inFlight === 1, { message: "the stalled upload admitted" });
    const b = await stallUpload(perIp.port, "stall-d");
    await waitFor(() => perIp.app.uploads.inFlight === 2, { message: "the second stalled upload admitted (counted for its address)" });
    const refused = await put(perIp, "legit2.txt");
    expect(refused.status).toBe(503);
    expect(await refused.text()).toContain("from your address");
    expect((await fetch(perIp.url("/open/hello.txt"))).status).toBe(200);
    a.end();
    b.end();
    await waitFor(() => perIp.app.uploads.inFlight === 0, { message: "the slots released" });
    expect((await put(perIp, "legit2.txt")).status).toBe(200);
  });

  test("bodiless requests and a PUT of 0 bytes take no upload slot", async () => {
    expect((await fetch(env.url("/open/empty.txt"), { method: "PUT", body: "" })).status).toBe(200);
    expect(env.app.uploads.inFlight).toBe(0);
  });
});
