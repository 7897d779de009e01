/**
 * `port: 0` at `logging.level: warn`: the start's `listening` line, the only place the chosen ports
 * are told, is still written (as info); nothing else below warn is. It was not: a proxy started so
 * could not be found.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { startProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers on a loaded machine need more.
setDefaultTimeout(30_000);

test("at logging.level warn, a port 0 listener's chosen port is logged in the listening line, and it answers there", async () => {
  const px = await startProxy(
    `server: { address: 127.0.0.1, port: 0 }\nmetrics: { enabled: true, address: 127.0.0.1, port: 0 }\nlogging: { level: warn }\n` +
      `buckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, endpoint: "http://127.0.0.1:1" } }\n`,
  );
  try {
    const listening = px.logs().find((l) => l.msg === "listening")!;
    expect(listening.level).toBe("info");
    expect(px.port).toBeGreaterThan(0);
    expect(px.metricsPort).toBeGreaterThan(0);
    const health = await fetch(px.url("/health"));
    await health.body?.cancel();
    expect(health.status).toBe(200);
    const metrics = await fetch(`http://127.0.0.1:${px.metricsPort}/metrics`);
    expect(await metrics.text()).toContain("yatagarasu_http_requests_total");
    // (the level still holds for everything else: the /health request's access line is not written)
    expect(px.logs().filter((l) => l.level === "info" && l.msg !== "listening")).toEqual([]);
  } finally {
    await px.stop();
  }
});
