/**
 * A chunked upstream answer whose body is held inside the attempt (up to
 * server.buffer_threshold_bytes: the own client holds a body of unknown length as a known one) and
 * that turns malformed in the same read that passes the threshold: the attempt fails (502, or
 * retried), as one malformed within the threshold does. It was handed over as a streamed 200 in the
 * middle of that read, and failed before anything observed it: the client's connection was cut
 * before a byte reached it, and Bun printed the error's stack trace on the process's stderr.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { startInProcess } from "./harness.ts";
import { useFaultUpstream } from "../helpers/fault-upstream.ts";

setDefaultTimeout(30_000);

const w = useFaultUpstream();

for (const cached of [false, true]) {
  test(`cache ${cached ? "on" : "off"}: a held chunked body malformed in the read that passes buffer_threshold_bytes is a failed attempt (502, retried), not a 200 cut before its first byte`, async () => {
    await using px = await startInProcess(
      `server: { address: 127.0.0.1, port: 0, buffer_threshold_bytes: 1024 }\n` +
        (cached ? "cache: { enabled: true, memory: { max_item_size_mb: 1, max_cache_size_mb: 8 } }\n" : "") +
        `buckets:\n  - name: b\n    path_prefix: /b\n` +
        (cached ? "    cache: { enabled: true }\n" : "") +
        `    s3: { bucket: up, region: us-east-1, endpoint: "${w.up.endpoint}", timeout: 5, retry: { max_attempts: 2, initial_backoff_ms: 1, max_backoff_ms: 1 } }\n`,
    );
    // one 5000-byte chunk (past the 1024 held), then a chunk size that is no number, in one write
    w.fault = { kind: "cut", status: 200, body: "x".repeat(5000), send: 5000, chunked: true, tail: "zz\r\n", then: "stall", headers: { ETag: '"e"' } };
    for (const range of [undefined, "bytes=0-4999"]) {
      const key = `${cached ? "c" : "u"}-${range ? "ranged" : "whole"}`;
      const got = await fetch(px.url(`/b/${key}`), { headers: range ? { range } : {} }).then(
        async (res) => [res.status, await res.text().then((t) => JSON.parse(t).error, () => "cut")],
        () => ["connection cut"],
      );
      expect([range, ...got, w.up.requests.filter((r) => r.target.startsWith(`/up/${key}`)).length]).toEqual([range, 502, "BadGateway", 2]);
    }
  });
}
