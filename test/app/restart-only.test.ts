import { expect, test, setDefaultTimeout } from "bun:test";
import { restartOnlyChanges } from "../../src/app.ts";
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
