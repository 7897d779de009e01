/**
 * The server span's client.address when neither the access log (a level above info) nor the
 * audit trail asked for the client's address while the request ran: a client that leaves
 * mid-body is still traced with its address, read before it left (Bun.serve no longer knows the
 * peer of a closed connection). Both engines, the App in this process, exporting to the OTLP test
 * receiver.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { frontYaml, startFrontsOn, UPSTREAM, type S3FrontEnv } from "../../e2e/s3-front-helpers.ts";
import { startS3Fixture, type S3Fixture } from "../../fixtures/s3.ts";
import { startReceiver, type OtlpReceiver, type ReceivedSpan } from "./receiver.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SERVER = 2;
const BIG = 32 * 1024 * 1024;

let s3: S3Fixture;
let otlp: OtlpReceiver;

beforeAll(async () => {
  otlp = startReceiver();
  s3 = await startS3Fixture({ buckets: [{ name: "data" }, { name: "private" }], credentials: [{ ...UPSTREAM, buckets: ["data", "private"] }] });
  await s3.put("data", "big.bin", new Uint8Array(BIG));
});

afterAll(async () => {
  otlp?.close();
  await s3?.stop();
});

const serverSpan = (id: string): Promise<ReceivedSpan> => otlp.waitFor((all) => all.find((s) => s.kind === SERVER && s.attrs["yatagarasu.request_id"] === id));

for (const engine of ["bun", "node"] as const) {
  describe(`engine ${engine}, logging at warn, no audit trail`, () => {
    let env: S3FrontEnv;
    beforeAll(async () => {
      const yaml = frontYaml(s3.endpoint, { engine, extra: `tracing: { enabled: true, otlp_endpoint: "${otlp.url}", sample_ratio: 1.0, export_interval_ms: 20 }\n` }).replace("logging: { level: error }", "logging: { level: warn }");
      env = await startFrontsOn(yaml, s3, false);
    });
    afterAll(() => env?.stop());

    test("a client that leaves mid-body is traced with its address, as one that stays", async () => {
      const gone = `gone-${engine}`;
      const ac = new AbortController();
      const res = await fetch(env.mainUrl("/open/big.bin"), { headers: { "x-request-id": gone }, signal: ac.signal });
      expect(res.status).toBe(200);
      await res.body!.getReader().read();
      ac.abort();
      const stay = `stay-${engine}`;
      const ok = await fetch(env.mainUrl("/open/big.bin"), { headers: { "x-request-id": stay } });
      expect((await ok.arrayBuffer()).byteLength).toBe(BIG);
      for (const id of [gone, stay]) expect({ id, ip: (await serverSpan(id)).attrs["client.address"] }).toEqual({ id, ip: "127.0.0.1" });
    });
  });
}
