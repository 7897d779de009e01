/**
 * No request body is buffered whole: a 1 GiB streamed PUT through either client keeps the
 * process's RSS growth under 64 MiB. The upstream is a raw in-process server that counts and
 * drops the bytes (the S3 fixture would add its own buffers to the same process).
 */
import { describe, expect, test } from "bun:test";
import { CLIENTS, bulk, ctx, makeUpstream, rawServer } from "./helpers.ts";

const GiB = 1024 ** 3;
const LIMIT = 64 * 1024 * 1024;

describe.each(CLIENTS)("memory on the %s client", (client) => {
  test(
    "a 1 GiB streamed PUT keeps RSS growth under 64 MiB",
    async () => {
      using srv = rawServer();
      using u = makeUpstream(client, { bucket: "b", endpoint: `http://127.0.0.1:${srv.port}`, accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" });
      const body = bulk(GiB);
      Bun.gc(true);
      const base = process.memoryUsage.rss();
      let peak = base;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
      try {
        const res = await u.upstream.send({ method: "PUT", key: "big", body: body.stream, contentLength: GiB, ...ctx() });
        expect(res.status).toBe(200);
      } finally {
        clearInterval(sampler);
      }
      peak = Math.max(peak, process.memoryUsage.rss());
      if (process.env.OPS_DEBUG) console.log(client, "RSS growth MiB", ((peak - base) / 2 ** 20).toFixed(1));
      expect(srv.requests()[0].bodyBytes).toBe(GiB);
      expect(peak - base).toBeLessThan(LIMIT);
    },
    60_000,
  );
});
