/**
 * cfgfuzz: a key or certificate path naming a FIFO blocked the open forever (at start on the main
 * thread, where SIGTERM then never got through; --check until its 30 s limit, naming no key), and
 * one naming a device such as /dev/zero was read until memory ran out. Each is a config error
 * naming the key. Checked in a child process: before the fix the parse never returned.
 */
import { afterAll, expect, test, setDefaultTimeout } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

setDefaultTimeout(30_000);
const dir = mkdtempSync(join(tmpdir(), "yata-keyfiles-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
Bun.spawnSync(["mkfifo", join(dir, "fifo")]);
const load = join(import.meta.dir, "../../src/config/load.ts");

async function parseInChild(yaml: string, wrap: string[] = []): Promise<{ out: string; timedOut: boolean }> {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  const script = `import { parseConfig } from ${JSON.stringify(load)}; import { readFileSync } from "node:fs";
try { parseConfig(readFileSync(${JSON.stringify(file)}, "utf8"), { env: {}, file: "c.yaml", baseDir: ${JSON.stringify(dir)} }); console.log("ACCEPTED"); } catch (e) { console.log(e.message); }`;
  const p = Bun.spawn([...wrap, process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
  let timedOut = false;
  const t = setTimeout(() => { timedOut = true; p.kill(9); }, 10_000);
  const out = await new Response(p.stdout).text();
  await p.exited;
  clearTimeout(t);
  return { out, timedOut };
}

const B = `buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n`;

test("a jwt key path that is a FIFO or a device is refused at once, naming the key", async () => {
  for (const [path, why] of [["fifo", "not a regular file"], ["/dev/zero", "not a regular file"], [".", "it is a folder"]] as const) {
    const r = await parseInChild(`${B}jwt:\n  enabled: true\n  algorithm: RS256\n  rsa_public_key_path: ${path}\n`);
    expect(r.timedOut).toBe(false);
    expect(r.out).toContain("jwt.rsa_public_key_path");
    expect(r.out).toContain(why);
  }
});

test("a TLS certificate or key path that is a FIFO is refused at once", async () => {
  const r = await parseInChild(`server:\n  https: { cert_path: fifo, key_path: /dev/zero }\n${B}`);
  expect(r.timedOut).toBe(false);
  expect(r.out).toContain("server.https.cert_path");
  expect(r.out).toContain("server.https.key_path");
  expect(r.out).toContain("not a regular file");
});

test("a TLS key the proxy's user may not read says permission denied, not a bare EACCES", async () => {
  writeFileSync(join(dir, "locked.key"), "-----BEGIN PRIVATE KEY-----\n");
  chmodSync(join(dir, "locked.key"), 0o000);
  // root reads any file: the child runs without the capabilities that let it
  const asRoot = process.getuid?.() === 0;
  if (asRoot && Bun.which("setpriv") === null) throw new Error("running as root needs setpriv to drop CAP_DAC_OVERRIDE");
  const r = await parseInChild(`server:\n  https: { cert_path: locked.key, key_path: locked.key }\n${B}`, asRoot ? ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] : []);
  expect(r.out).toContain(`server.https.key_path: cannot read locked.key (${join(dir, "locked.key")}): permission denied: the proxy's user (uid ${process.getuid?.()}) may not read it`);
  expect(r.out).not.toContain("EACCES");
});
