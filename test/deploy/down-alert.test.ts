/**
 * deploy/prometheus/alerts.yml when the instance itself is gone: every other rule reads series the
 * process exports, which vanish with it, so without a rule on the scrape's own `up` nothing fires.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { waitFor } from "../helpers/wait.ts";
import { startPrometheus, type PromAlert } from "./prometheus.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); Prometheus applies its targets ~5 s after start.
setDefaultTimeout(30_000);

const RULES = join(import.meta.dir, "../../deploy/prometheus/alerts.yml");

test("a target that cannot be scraped (the process gone) makes YatagarasuDown pending for that instance", async () => {
  // A loopback port nothing listens on any more: the scrape is refused, as for a stopped proxy.
  const gone = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const target = `127.0.0.1:${gone.port}`;
  gone.stop(true);
  const prom = await startPrometheus({ targets: [target], ruleFiles: [RULES], intervalSeconds: 1 });
  try {
    let alerts: PromAlert[] = [];
    const down = await waitFor(
      async () => (alerts = await prom.alerts()).find((a) => a.labels.alertname === "YatagarasuDown"),
      { timeoutMs: 20_000, intervalMs: 100, message: () => `YatagarasuDown for ${target}: ${JSON.stringify(alerts)}` },
    );
    expect(down.labels).toMatchObject({ instance: target, job: "yatagarasu", severity: "critical" });
    expect(alerts.map((a) => a.labels.alertname)).toEqual(["YatagarasuDown"]);
  } finally {
    await prom.stop();
  }
});
