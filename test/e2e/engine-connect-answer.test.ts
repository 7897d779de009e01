/**
 * A CONNECT (a tunnel request, which an S3 proxy does not make) is answered by the front on both
 * engines, as any other method it does not take: 405 with Allow, the front's error body (JSON on
 * the plain listener, S3's XML on the S3 listener) carrying the request id of its headers, no-store,
 * then the connection closed. The node engine sent a bare 405 without a body or a request id.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { rawHttp, rawStatus } from "../helpers/raw-http.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { startBothFronts, oneBucketYaml } from "../helpers/both-fronts.ts";

setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIDCONNECTTEST1", secretAccessKey: "connect-test-secret-0123456789" };
let s3: S3Fixture;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ accessKeyId: "AKIDONEBUCKET", secretAccessKey: "one-bucket-secret-0123456789", buckets: ["data"] }] });
  await s3.put("data", "a.txt", "body of a");
});
afterAll(async () => {
  await s3?.stop();
});

function parse(raw: string) {
  const at = raw.indexOf("\r\n\r\n");
  const lines = raw.slice(0, at).split("\r\n").slice(1);
  const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
  return { status: rawStatus(raw), headers, body: raw.slice(at + 4) };
}

describe.each(["bun", "node"] as const)("%s engine", (engine) => {
  test("CONNECT gets the front's 405: its error body with the request id, Allow, no-store, then close; the in-flight slot is freed", async () => {
    const yaml = oneBucketYaml({ engine, port: Number(new URL(s3.endpoint).port), creds: CREDS, grants: "[read]" }).replace("server: {", "server: { max_concurrent_requests: 2,");
    await using px = await startBothFronts(engine, yaml);
    const listeners = [
      { port: Number(new URL(px.main).port), type: "application/json", idHeader: "x-request-id" },
      { port: px.front.port, type: "application/xml", idHeader: "x-amz-request-id" },
    ];
    for (const l of listeners) {
      for (const target of ["/b/a.txt", "example.com:443"]) {
        const a = parse(await rawHttp(l.port, `CONNECT ${target} HTTP/1.1\r\nHost: ${target.startsWith("/") ? "x" : target}\r\n\r\n`, 5_000));
        const id = a.headers.get(l.idHeader);
        expect({ target, status: a.status, type: a.headers.get("content-type"), cc: a.headers.get("cache-control"), connection: a.headers.get("connection") }).toEqual({ target, status: 405, type: l.type, cc: "no-store", connection: "close" });
        expect(a.headers.get("allow")).toContain("GET");
        expect(id).toBeString();
        expect(a.body).toContain(id!);
        expect(a.body).toContain("MethodNotAllowed");
        expect(Number(a.headers.get("content-length"))).toBe(Buffer.byteLength(a.body));
      }
    }
    // four CONNECTs on a limit of two requests at a time: none still holds a slot
    expect((await fetch(`${px.main}/b/a.txt`)).status).toBe(200);
  });
});
