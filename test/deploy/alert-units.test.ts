/**
 * deploy/prometheus/alerts.test.yml: promtool's unit tests of the shipped alerts (each fires on
 * the series the proxy exports when its condition holds, for its `for`, with its labels and
 * annotations, and stays silent otherwise), and a test for every alert of alerts.yml.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { promtoolTestRules } from "./prometheus.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default).
setDefaultTimeout(30_000);

const DIR = join(import.meta.dir, "../../deploy/prometheus");

test("promtool test rules passes on alerts.test.yml", async () => {
  const r = await promtoolTestRules(join(DIR, "alerts.test.yml"));
  expect([r.code, r.output]).toEqual([0, expect.stringContaining("SUCCESS")]);
});

test("every alert of alerts.yml is unit-tested firing", () => {
  const alerts = (parseYaml(readFileSync(join(DIR, "alerts.yml"), "utf8")) as { groups: Array<{ rules: Array<{ alert: string }> }> }).groups.flatMap((g) => g.rules.map((r) => r.alert));
  const tests = (parseYaml(readFileSync(join(DIR, "alerts.test.yml"), "utf8")) as { tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }> }).tests;
  const firing = new Set(tests.flatMap((t) => (t.alert_rule_test ?? []).filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
  expect(alerts.filter((a) => !firing.has(a))).toEqual([]);
});
