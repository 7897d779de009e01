/**
 * An upstream 200 that carries a Content-Range (it has no meaning on a 200, RFC 9110 §14.4): one
 * naming part of a larger object (`bytes 0-9/100` on a 10-byte body) says the body is not the
 * object, and is 502, never cached (it was relayed with its Content-Range, and a caching bucket
 * stored the 10 bytes as the whole object); one naming the whole body is harmless and only dropped.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { startInProcess } from "./harness.ts";
import { useFaultUpstream } from "../helpers/fault-upstream.ts";

setDefaultTimeout(30_000);

const w = useFaultUpstream();

for (const cached of [false, true]) {
  test(`cache ${cached ? "on" : "off"}: a 200 with a Content-Range for part of the object is 502 and not stored, one that is no byte range a 502 that says so; one for the whole body is answered without it`, async () => {
    await using px = await startInProcess(
      `server: { address: 127.0.0.1, port: 0 }\n` +
        (cached ? "cache: { enabled: true, memory: { max_item_size_mb: 1, max_cache_size_mb: 8 } }\n" : "") +
        `buckets:\n  - name: b\n    path_prefix: /b\n` +
        (cached ? "    cache: { enabled: true }\n" : "") +
        `    s3: { bucket: up, region: us-east-1, endpoint: "${w.up.endpoint}", timeout: 5 }\n`,
    );
    w.fault = { kind: "whole", status: 200, body: "abcdefghij", headers: { "Content-Range": "bytes 0-9/100", ETag: '"e"' } };
    for (const method of ["GET", "HEAD"]) {
      const res = await fetch(px.url("/b/part"), { method });
      await res.arrayBuffer();
      expect([method, res.status, res.headers.get("content-range")]).toEqual([method, 502, null]);
    }
    // nothing was stored: the upstream, now sending the object, is asked again
    w.fault = { kind: "whole", status: 200, body: "x".repeat(100), headers: { ETag: '"f"' } };
    const again = await fetch(px.url("/b/part"));
    expect([again.status, (await again.text()).length]).toEqual([200, 100]);

    // One that is no byte range at all: the 502 says so (it said "for part of the object"), never the value.
    w.fault = { kind: "whole", status: 200, body: "abcdefghij", headers: { "Content-Range": "garbage-from-rgw1.internal", ETag: '"e"' } };
    for (const method of ["GET", "HEAD"]) {
      const res = await fetch(px.url("/b/garbled"), { method });
      const body = await res.text();
      expect([method, res.status, res.headers.get("content-range")]).toEqual([method, 502, null]);
      if (method === "GET") expect(JSON.parse(body).message).toBe("The upstream answered 200 with a Content-Range the proxy cannot parse (not a byte range)");
    }

    w.fault = { kind: "whole", status: 200, body: "abcdefghij", headers: { "Content-Range": "bytes 0-9/10", ETag: '"e"' } };
    const whole = await fetch(px.url("/b/whole"));
    expect([whole.status, whole.headers.get("content-range"), await whole.text()]).toEqual([200, null, "abcdefghij"]);
  });
}
