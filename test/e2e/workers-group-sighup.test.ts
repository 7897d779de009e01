/**
 * server.workers: 2, a SIGHUP sent to the whole group (`kill -HUP -<pgid>`, `systemctl kill -s
 * HUP`, which signals every process of the unit, a terminal's hangup) reaches every process at
 * once: it is one reload, as the same SIGTERM is one drain. Until 2026-12-06 each process's SIGHUP
 * made a reload of the group of its own: two generations, two `every worker reloaded` lines and
 * yatagarasu_config_reloads_total counting two, for one signal (N with `workers: N`).
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { sign } from "../fixtures/jwt.ts";
import { startProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers on a loaded machine need more.
setDefaultTimeout(60_000);

const SECRET = "workers-group-sighup-secret-0123456789abcdef";

test("a SIGHUP that reaches every process of the group at once (a signal to the process group) is one reload", async () => {
  await using px = await startProxy(`server: { address: 127.0.0.1, port: 0, workers: 2 }
jwt:
  enabled: true
  algorithm: HS256
  secret: "${SECRET}"
  admin_claims: [{ claim: role, operator: equals, value: admin }]
buckets:
  - name: data
    path_prefix: /data
    s3: { bucket: data, endpoint: "http://127.0.0.1:9" }
logging: { level: info }
`);
  const child = await px.waitForLog((l) => l.msg === "listening" && l.worker === 1);
  // What a signal to the process group does: the same signal to each process, at once.
  px.signal("SIGHUP");
  process.kill(child.pid as number, "SIGHUP");
  await px.waitForLog((l) => l.msg === "every worker reloaded" && l.generation === 2);
  // The next reload (the admin API: never joined to a signal's) is generation 3: nothing else was reloaded meanwhile.
  const admin = await sign({ sub: "ops", role: "admin" }, { alg: "HS256", key: SECRET });
  const res = await fetch(px.url("/admin/reload"), { method: "POST", headers: { authorization: `Bearer ${admin}`, connection: "close" } });
  expect([res.status, ((await res.json()) as { generation: number }).generation]).toEqual([200, 3]);
  // (the line may come through the pipe after the answer)
  await px.waitForLog((l) => l.msg === "every worker reloaded" && l.generation === 3);
  expect(px.logs().filter((l) => l.msg === "every worker reloaded").map((l) => l.generation)).toEqual([2, 3]);
  // SIGHUP to the primary alone, an admin reload, then SIGHUP to the child within the grouping's
  // second: the child's is a reload of its own. It joined the primary's signal's reload, long done
  // (another reload since), and nothing was reloaded: the file edited meanwhile never applied.
  px.signal("SIGHUP");
  await px.waitForLog((l) => l.msg === "every worker reloaded" && l.generation === 4);
  const again = await fetch(px.url("/admin/reload"), { method: "POST", headers: { authorization: `Bearer ${admin}`, connection: "close" } });
  expect(again.status).toBe(200);
  process.kill(child.pid as number, "SIGHUP");
  await px.waitForLog((l) => l.msg === "every worker reloaded" && l.generation === 6, 5000);
});
