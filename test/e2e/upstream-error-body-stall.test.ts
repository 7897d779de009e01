/**
 * An upstream error whose body is announced (Content-Length) and never sent is answered from its
 * status after a short wait (ERROR_BODY_WAIT_MS), not after s3.timeout: the own client held the
 * body inside the attempt and failed it as a timeout (504 for a 404), the fetch client's reader
 * waited until server.request_timeout, and a caching bucket's fill until its deadline (504).
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { startInProcess } from "./harness.ts";
import { startFaultUpstream, type Fault } from "../helpers/fault-upstream.ts";

setDefaultTimeout(30_000);

const doc = (code: string) => `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>m</Message><RequestId>1</RequestId></Error>`;
// The four run at once: each has its own upstream and proxy, and mostly waits on stalled bodies.
for (const client of ["auto", "fetch"]) {
  for (const cached of [false, true]) {
    test.concurrent(`upstream_client ${client}, cache ${cached ? "on" : "off"}: a 404 or 403 whose body never comes is answered from its status within a few seconds, not s3.timeout`, async () => {
      const w = { fault: { kind: "whole", status: 200, body: "" } as Fault };
      const up = await startFaultUpstream(() => w.fault);
      await using _up = { [Symbol.asyncDispose]: async () => up.stop() };
      await using px = await startInProcess(
        `server: { address: 127.0.0.1, port: 0, upstream_client: ${client}, request_timeout: 20 }\n` +
          (cached ? "cache: { enabled: true, memory: { max_item_size_mb: 1, max_cache_size_mb: 8 } }\n" : "") +
          `buckets:\n  - name: b\n    path_prefix: /b\n` +
          (cached ? "    cache: { enabled: true }\n" : "") +
          `    s3: { bucket: up, region: us-east-1, endpoint: "${up.endpoint}", timeout: 8, retry: { max_attempts: 1, initial_backoff_ms: 0, max_backoff_ms: 0 } }\n`,
      );
      const cases = [[404, "GET", 0], [404, "GET", 30], [404, "HEAD", 0], [403, "GET", 0]] as const;
      for (const [status, method, send] of cases) {
        w.fault = { kind: "cut", status, body: doc(status === 404 ? "NoSuchKey" : "AccessDenied"), send, length: 5000, then: "stall" };
        const res = await fetch(px.url("/b/k"), { method, signal: AbortSignal.timeout(4000) });
        await res.arrayBuffer();
        expect([method, send, res.status]).toEqual([method, send, status]);
      }
      // A whole error body is still read for its code (a 404 NoSuchBucket is the store's, not the key's).
      w.fault = { kind: "whole", status: 404, body: doc("NoSuchKey") };
      const res = await fetch(px.url("/b/k2"));
      expect(res.status).toBe(404);
      expect(await res.text()).toContain("NoSuchKey");
    });
  }
}
