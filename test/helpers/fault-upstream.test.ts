/** The raw fault upstream's answers are what its Fault kinds say, whatever their size. */
import { expect, setDefaultTimeout, test } from "bun:test";
import { startFaultUpstream } from "./fault-upstream.ts";
import { rawHttp, rawStatus } from "./raw-http.ts";

setDefaultTimeout(30_000);

test("cut writes all `send` bytes (12 MiB, more than a socket takes at once) before it closes", async () => {
  const body = "x".repeat(12 * 1024 * 1024);
  const up = await startFaultUpstream(() => ({ kind: "cut", status: 200, body, send: body.length, length: body.length + 1, then: "close" }));
  try {
    const port = Number(new URL(up.endpoint).port);
    // (a stall would end at the timeout with what came so far)
    const raw = await rawHttp(port, "GET /b/k HTTP/1.1\r\nHost: x\r\n\r\n", 10_000);
    const end = raw.indexOf("\r\n\r\n");
    expect([rawStatus(raw), /\r\nContent-Length: 12582913\r\n/.test(raw.slice(0, end + 2)), raw.length - end - 4]).toEqual([200, true, body.length]);
  } finally {
    up.stop();
  }
});
