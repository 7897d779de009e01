/**
 * yatagarasu_tls_certificate_not_after_timestamp_seconds: the served certificate's expiry, at
 * start and after a renewal served by a reload (there was no metric of it: a renewal that kept
 * failing was seen when clients began to refuse the listener; the YatagarasuTlsCertificateExpiring
 * alert reads it).
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { nullLogger as quiet } from "../../src/observe/log.ts";

setDefaultTimeout(30_000);

const METRIC = "yatagarasu_tls_certificate_not_after_timestamp_seconds";

async function pair(dir: string, name: string, days: number): Promise<{ cert: string; key: string }> {
  const gen = Bun.spawn(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", String(days), "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.pem`)], { stdout: "ignore", stderr: "ignore" });
  expect(await gen.exited).toBe(0);
  return { cert: readFileSync(join(dir, `${name}.pem`), "utf8"), key: readFileSync(join(dir, `${name}.key`), "utf8") };
}
const notAfter = (pem: string) => Date.parse(new X509Certificate(pem).validTo) / 1000;
const sample = (text: string) => text.split("\n").find((l) => l.startsWith(`${METRIC} `));

test("the served certificate's notAfter is exported at start and follows a renewal; without server.https there is no sample", async () => {
  const dir = mkdtempSync(join(tmpdir(), "yata-tls-metric-"));
  const text = `server: { address: 127.0.0.1, port: 0, https: { cert_path: ${dir}/a.pem, key_path: ${dir}/a.key } }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, endpoint: "http://127.0.0.1:9" } }\n`;
  const plain = await App.create(parseConfig(`server: { address: 127.0.0.1, port: 0 }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, endpoint: "http://127.0.0.1:9" } }\n`, { env: {} }), { log: quiet, probeIntervalMs: 600_000 });
  try {
    expect(sample(plain.metrics.render())).toBeUndefined();
    const first = await pair(dir, "a", 10);
    const app = await App.create(parseConfig(text, { env: {} }), { log: quiet, probeIntervalMs: 600_000, tls: first });
    try {
      expect(sample(app.metrics.render())).toBe(`${METRIC} ${notAfter(first.cert)}`);
      const renewed = { cert: (await pair(dir, "r", 90)).cert, key: readFileSync(join(dir, "r.key"), "utf8") };
      const served: string[] = [];
      app.setListeners([{ port: 0, stop: async () => {}, renewTls: async (tls) => void served.push(tls.cert) }]);
      const r = await app.reload(undefined, { text, file: "reload.yaml", baseDir: dir, tls: renewed });
      expect(r.ok).toBe(true);
      expect(served).toEqual([renewed.cert]);
      expect(sample(app.metrics.render())).toBe(`${METRIC} ${notAfter(renewed.cert)}`);
    } finally {
      await app.close();
    }
  } finally {
    await plain.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
