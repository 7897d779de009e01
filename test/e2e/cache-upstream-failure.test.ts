/**
 * Every answer of a cached bucket says X-Cache, and its access line has `cache`, an upstream that
 * gave no answer included (refused, reset, timed out: 502/504). Such a failure was counted as a
 * miss (or a bypass) in the metrics while its answer and its access line said nothing: a failing
 * upstream did not show among the misses an operator filters the log by.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import type { AccessRecord } from "../../src/observe/log.ts";
import { recordingLogger } from "../helpers/logger.ts";
import { startInProcess } from "./harness.ts";

setDefaultTimeout(30_000);

test("an upstream that refuses the connection: the 502 of a miss says MISS, of a ranged miss BYPASS, in the answer and the access line", async () => {
  const gone = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
  const port = gone.port;
  gone.stop(true);
  const access: AccessRecord[] = [];
  await using px = await startInProcess(
    `server: { address: 127.0.0.1, port: 0 }
buckets:
  - { name: c, path_prefix: /c, cache: { enabled: true }, s3: { bucket: bk, endpoint: "http://127.0.0.1:${port}", retry: { max_attempts: 1 } } }
`,
    { probeIntervalMs: 600_000, log: { ...recordingLogger(), access: (r: AccessRecord) => void access.push(r) } },
  );
  const seen: unknown[] = [];
  for (const [method, headers] of [["GET", {}], ["HEAD", {}], ["GET", { range: "bytes=0-3" }]] as const) {
    const res = await fetch(px.url("/c/k.txt"), { method, headers });
    await res.arrayBuffer();
    const line = access.find((r) => r.request_id === res.headers.get("x-request-id"));
    seen.push([method, headers.range ?? "", res.status, res.headers.get("x-cache"), line?.cache]);
  }
  expect(seen).toEqual([
    ["GET", "", 502, "MISS", "MISS"],
    ["HEAD", "", 502, "MISS", "MISS"],
    ["GET", "bytes=0-3", 502, "BYPASS", "BYPASS"],
  ]);
});
