import { expect, test, setDefaultTimeout } from "bun:test";
import { restartOnlyChanges, restartOnlyChangesShown } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";

setDefaultTimeout(30_000);

const B = "buckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, endpoint: \"http://127.0.0.1:9\" } }\n";
const cfg = (extra: string) => parseConfig(`server: { address: 127.0.0.1, port: 0 }\n${extra}${B}`, { env: {} });

test("a reload's restart-only changes: a listener switched on or off is named alone, an address or port change of a running one is named", () => {
  const off = cfg("metrics: { enabled: false }\n");
  const on = cfg("metrics: { enabled: true, address: 127.0.0.1, port: 19091 }\n");
  // (it said "metrics.enabled, metrics.address, metrics.port changed" of an address never touched)
  expect(restartOnlyChanges(on, off)).toEqual(["metrics.enabled"]);
  expect(restartOnlyChanges(off, on)).toEqual(["metrics.enabled"]);
  expect(restartOnlyChanges(cfg("metrics: { enabled: true, address: 127.0.0.1, port: 19092 }\n"), on)).toEqual(["metrics.port"]);
  expect(restartOnlyChanges(cfg("metrics: { enabled: true, address: 127.0.0.1, port: 19091 }\n"), on)).toEqual([]);
  const s3off = cfg("");
  const s3on = cfg("s3_api: { enabled: true, port: 0, credentials: [{ access_key_id: AKIDTESTTEST1, secret_access_key: secret-secret-secret-1, identity: t, buckets: { b: [read] } }] }\n");
  expect(restartOnlyChanges(s3on, s3off)).toEqual(["s3_api.enabled"]);
});

// A refused reload named the key only ("server.port changed: ... restart the process"): with a
// ${PORT} or an address that a deploy tool wrote, which value runs and which the file holds was
// not said anywhere.
test("a refused reload names each restart-only setting with the value running and the one written", () => {
  const on = cfg("metrics: { enabled: true, address: 127.0.0.1, port: 19091 }\n");
  expect(restartOnlyChangesShown(on, cfg("metrics: { enabled: false }\n"))).toEqual(["metrics.enabled (off → on)"]);
  expect(restartOnlyChangesShown(cfg("metrics: { enabled: true, address: \"::1\", port: 19092 }\n"), on)).toEqual(['metrics.address ("127.0.0.1" → "::1")', "metrics.port (19091 → 19092)"]);
});

// A refused reload named the key and both values but not where the file writes it, as every other
// config message does (`config.yaml:12: ...`): the line of the key, found by the loader.
test("a refused reload names where the file writes each restart-only setting (file:line, as config errors do)", () => {
  const s3 = (address: string) =>
    `s3_api:\n  enabled: true\n  port: 0\n  address: ${address}\n  credentials: [{ access_key_id: AKIDTESTTEST1, secret_access_key: secret-secret-secret-1, identity: t, buckets: { b: [read] } }]\n`;
  const places = { keys: ["server.port", "s3_api.address"], lines: {} as Record<string, number> };
  const next = parseConfig(`server: { address: 127.0.0.1, port: 0 }\n${s3('"::1"')}${B}`, { env: {}, places });
  expect(places.lines).toEqual({ "server.port": 1, "s3_api.address": 5 });
  expect(restartOnlyChangesShown(next, cfg(s3("127.0.0.1")), { file: "/etc/yatagarasu/config.yaml", lines: places.lines })).toEqual(['/etc/yatagarasu/config.yaml:5: s3_api.address ("127.0.0.1" → "::1")']);
});

// Two changed listeners were named in a fixed order, not the file's: a file writing s3_api before
// metrics (as the demo's config.yaml does) was told `config.yaml:69: metrics.address ..., config.yaml:48: s3_api.address ...`.
test("a refused reload names the restart-only settings it found changed in file order", () => {
  const s3 = (address: string) =>
    `s3_api:\n  enabled: true\n  port: 0\n  address: ${address}\n  credentials: [{ access_key_id: AKIDTESTTEST1, secret_access_key: secret-secret-secret-1, identity: t, buckets: { b: [read] } }]\n`;
  const metrics = (address: string) => `metrics:\n  enabled: true\n  port: 0\n  address: ${address}\n`;
  const places = { keys: ["metrics.address", "s3_api.address"], lines: {} as Record<string, number> };
  const next = parseConfig(`server: { address: 127.0.0.1, port: 0 }\n${s3('"::1"')}${metrics('"::1"')}${B}`, { env: {}, places });
  expect(places.lines).toEqual({ "s3_api.address": 5, "metrics.address": 10 });
  expect(restartOnlyChangesShown(next, cfg(`${s3("127.0.0.1")}${metrics("127.0.0.1")}`), { file: "config.yaml", lines: places.lines })).toEqual([
    'config.yaml:5: s3_api.address ("127.0.0.1" → "::1")',
    'config.yaml:10: metrics.address ("127.0.0.1" → "::1")',
  ]);
});
