/**
 * A listing whose body the primary cuts, stalls or trickles after a good head fails over to the
 * next replica, as an object read's does. S3 sends listings chunked: such a body was not held
 * inside the attempt, so a cut one answered 502 ("The upstream connection failed while sending
 * the listing") and a trickling one ran to server.request_timeout (504), while the secondary was
 * healthy. The primary here is a raw TCP upstream that answers the head, then misbehaves.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startInProcess, type InProcessProxy } from "./harness.ts";
import { type Fault, listingXml, startFaultUpstream, type FaultUpstream } from "../helpers/fault-upstream.ts";

setDefaultTimeout(30_000);

let secondary: FaultUpstream;
const full = listingXml(["docs/p.txt", ...Array.from({ length: 20 }, (_, i) => `docs/p${i}.txt`)]);

beforeAll(async () => {
  secondary = await startFaultUpstream(() => ({ kind: "whole", status: 200, body: listingXml(["docs/s.txt"]) }));
});

afterAll(() => {
  secondary?.stop();
});

const config = (client: string, primary: string) =>
  `server: { address: 127.0.0.1, port: 0, upstream_client: ${client}, request_timeout: 8 }\n` +
  `buckets:\n  - name: b\n    path_prefix: /b\n    listing: { enabled: true }\n    s3:\n      timeout: 1\n` +
  `      retry: { max_attempts: 1, initial_backoff_ms: 0, max_backoff_ms: 0 }\n      replicas:\n` +
  `        - { name: primary, bucket: up, region: us-east-1, endpoint: "${primary}", priority: 1 }\n` +
  `        - { name: secondary, bucket: up, region: us-east-1, endpoint: "${secondary.endpoint}", priority: 2 }\n`;

/** A primary answering every request with `fault`, and a proxy in front of it and the secondary. */
async function world(client: string, fault: Fault): Promise<{ px: InProcessProxy } & AsyncDisposable> {
  const primary = await startFaultUpstream(() => fault);
  const px = await startInProcess(config(client, primary.endpoint));
  return {
    px,
    [Symbol.asyncDispose]: async () => {
      await px.stop();
      primary.stop();
    },
  };
}

const faults: Record<string, Fault> = {
  "cut after its head (chunked)": { kind: "cut", status: 200, body: full, send: 300, chunked: true, then: "close" },
  "stalled after its head (chunked)": { kind: "cut", status: 200, body: full, send: 300, chunked: true, then: "stall" },
  "trickled a byte every 200 ms (chunked)": { kind: "trickle", status: 200, body: full, everyMs: 200 },
};

// Every test has a primary and a proxy of its own (the secondary only answers, the same to all)
// and mostly waits out s3.timeout on its primary: they run at once.
for (const client of ["auto", "fetch"]) {
  describe(`upstream_client: ${client}`, () => {
    test.concurrent("a whole listing comes from the primary", async () => {
      await using w = await world(client, { kind: "whole", status: 200, body: full });
      const res = await fetch(w.px.url("/b/docs/"), { headers: { accept: "application/json" } });
      expect(res.status).toBe(200);
      expect(await res.text()).toContain("p.txt");
    });

    // (S3's throttle, which the breaker does not count: until 2026-12-07 it failed over, the primary
    // charged a failure and its throttled reads sent to a secondary that may lag)
    test.concurrent("S3's 503 SlowDown on the primary is its answer (503 with Retry-After), an object's and a listing's: the secondary is not asked", async () => {
      // (S3's reason phrase too: its readiness probe, a HEAD, tells SlowDown by it alone; a primary
      // whose probe failed would be asked after the secondary)
      const slowDown = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
      await using w = await world(client, { kind: "whole", status: 503, reason: "Slow Down", body: slowDown, headers: { "retry-after": "2" } });
      for (const path of [`/b/slow-${client}.txt`, `/b/slow-${client}/`]) {
        const res = await fetch(w.px.url(path), { headers: { accept: "application/json" } });
        expect([path, res.status, res.headers.get("retry-after")]).toEqual([path, 503, "2"]);
        await res.arrayBuffer();
      }
      expect(secondary.requests.filter((r) => r.target.includes(`slow-${client}`))).toEqual([]);
    });

    for (const [name, f] of Object.entries(faults)) {
      test.concurrent(`the primary's listing ${name}: the secondary's, within a few s3.timeout, not request_timeout`, async () => {
        await using w = await world(client, f);
        const t0 = performance.now();
        const res = await fetch(w.px.url("/b/docs/"), { headers: { accept: "application/json" } });
        const text = await res.text();
        expect(res.status).toBe(200);
        expect(text).toContain("s.txt");
        expect(text).not.toContain("p.txt");
        expect(performance.now() - t0).toBeLessThan(5000);
      });
    }
  });
}
