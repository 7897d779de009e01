/**
 * No request body is buffered whole: a 1 GiB streamed PUT through either client keeps the
 * process's RSS growth under 64 MiB. Measured in a child process of its own (memory-child.ts):
 * RSS is process-wide, and inside the test runner it would also count what other test files
 * left on the heap. The upstream is a raw server that counts and drops the bytes.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { CLIENTS } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const GiB = 1024 ** 3;
const LIMIT = 64 * 1024 * 1024;

describe.each(CLIENTS)("memory on the %s client", (client) => {
  test(
    "a 1 GiB streamed PUT keeps RSS growth under 64 MiB",
    async () => {
      const p = Bun.spawn([process.execPath, join(import.meta.dir, "memory-child.ts"), client], { stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      expect(err).toBe("");
      expect(code).toBe(0);
      const r = JSON.parse(out.trim().split("\n").at(-1)!) as { status: number; growth: number; received: number };
      if (process.env.OPS_DEBUG) console.log(client, "RSS growth MiB", (r.growth / 2 ** 20).toFixed(1));
      expect(r.status).toBe(200);
      expect(r.received).toBe(GiB);
      expect(r.growth).toBeLessThan(LIMIT);
    },
    60_000,
  );
});
