/** server.https: the real process serves TLS with a certificate generated for this test. */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, runCli, STARTUP_MS, startProxy, type ProxyProcess } from "./harness.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);
/**
 * How long a SIGHUP's outcome ("config reloaded" or the refusal) is waited for: a reload reads and
 * checks the pair and builds the new generation, well under a second alone; waitFor's default 5 s
 * is no bound for a loaded host (a CI run beside other engineers' suites on 2 cores).
 */
const RELOAD_MS = 20_000;

let s3: S3Fixture;
let px: ProxyProcess;
let certDir: string;

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), "yata-tls-"));
  const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(certDir, "key.pem"), "-out", join(certDir, "cert.pem")], { stderr: "pipe" });
  if (gen.exitCode !== 0) throw new Error(`openssl failed: ${gen.stderr.toString()}`);
  s3 = await startS3Fixture({ buckets: [{ name: "pub", public: true }], credentials: [] });
  await s3.put("pub", "hello.txt", "hello over tls\n");
  px = await startProxy(`server: { address: 127.0.0.1, port: 0, https: { cert_path: cert.pem, key_path: key.pem } }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`, {
    files: { "cert.pem": readFileSync(join(certDir, "cert.pem"), "utf8"), "key.pem": readFileSync(join(certDir, "key.pem"), "utf8") },
  });
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
  rmSync(certDir, { recursive: true, force: true });
});

test("serves objects over HTTPS with the configured certificate (paths relative to the config file)", async () => {
  const ca = readFileSync(join(certDir, "cert.pem"), "utf8");
  const res = await fetch(`https://127.0.0.1:${px.port}/pub/hello.txt`, { tls: { ca } } as RequestInit);
  expect(res.status).toBe(200);
  expect(await res.text()).toBe("hello over tls\n");
});

test("--healthcheck https:// on the loopback checks this TLS listener (a self-signed certificate is not verified there)", async () => {
  expect(await runCli(["--healthcheck", `https://127.0.0.1:${px.port}/health`])).toEqual({ code: 0, stdout: "", stderr: "" });
});

test("TLS 1.2 offers forward-secret AEAD suites only: RSA key exchange and CBC/SHA-1 suites (Bun's default) are refused; TLS 1.3 is served", async () => {
  const negotiate = async (...args: string[]) => {
    const p = Bun.spawn(["openssl", "s_client", "-connect", `127.0.0.1:${px.port}`, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const out = await new Response(p.stdout).text();
    await p.exited;
    return /Cipher is (\S+)/.exec(out)?.[1];
  };
  expect(await negotiate("-tls1_2", "-cipher", "AES128-GCM-SHA256")).not.toBe("AES128-GCM-SHA256");
  expect(await negotiate("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA")).not.toBe("ECDHE-ECDSA-AES128-SHA");
  expect(await negotiate("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")).toBe("ECDHE-ECDSA-AES128-GCM-SHA256");
  expect(await negotiate("-tls1_3")).toMatch(/^TLS_/);
});

test("plain HTTP on the TLS port gets no object", async () => {
  const r = await fetch(`http://127.0.0.1:${px.port}/pub/hello.txt`).then((x) => x.text()).catch(() => "failed");
  expect(r).not.toBe("hello over tls\n");
});

test("a reload that writes server.https's paths another way (./cert.pem, the absolute path) changes no listener: it applies", async () => {
  const FAILED = "config reload failed; the previous config keeps serving";
  const yaml = (cert: string, key: string) => `server: { address: 127.0.0.1, port: 0, https: { cert_path: "${cert}", key_path: "${key}" } }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`;
  const reload = async (text: string) => {
    const from = px.logs().length;
    px.writeConfig(text);
    px.signal("SIGHUP");
    const line = await waitFor(() => px.logs().slice(from).find((l) => l.msg === "config reloaded" || l.msg === FAILED), { timeoutMs: RELOAD_MS, message: "the reload's outcome" });
    return [line.msg, line.error];
  };
  // (it was refused: "server.https changed ... restart the process", comparing the paths as written)
  expect(await reload(yaml("./cert.pem", join(dirname(px.configPath), "key.pem")))).toEqual(["config reloaded", undefined]);
  expect(await reload(yaml("cert.pem", "key.pem"))).toEqual(["config reloaded", undefined]);
  const [, error] = await reload(yaml("key.pem", "cert.pem"));
  expect(String(error)).toContain("server.https");
  await reload(yaml("cert.pem", "key.pem"));
}, 4 * RELOAD_MS + 10_000);

test("a reload that turns server.https off (enabled: false, the same files) is refused: the listener would stay TLS", async () => {
  const FAILED = "config reload failed; the previous config keeps serving";
  const text = `server: { address: 127.0.0.1, port: 0, https: { enabled: false, cert_path: cert.pem, key_path: key.pem } }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`;
  const from = px.logs().length;
  px.writeConfig(text);
  px.signal("SIGHUP");
  // (it was "config reloaded": only the two paths were compared, and the TLS listener kept serving)
  const line = await waitFor(() => px.logs().slice(from).find((l) => l.msg === "config reloaded" || l.msg === FAILED), { timeoutMs: RELOAD_MS, message: "the reload's outcome" });
  expect([line.msg, String(line.error)]).toEqual([FAILED, expect.stringContaining("server.https")]);
  px.writeConfig(`server: { address: 127.0.0.1, port: 0, https: { cert_path: cert.pem, key_path: key.pem } }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`);
}, RELOAD_MS + 10_000);

test("an unreadable certificate is a config error naming the key", async () => {
  const { runCli } = await import("./harness.ts");
  const dir = mkdtempSync(join(tmpdir(), "yata-tls-bad-"));
  try {
    await Bun.write(join(dir, "c.yaml"), `server: { https: { cert_path: nope.pem, key_path: nope.key } }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`);
    const r = await runCli(["--check", "--config", join(dir, "c.yaml")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("server.https.cert_path: cannot read nope.pem");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--check refuses a pair the listener would refuse, naming the file: swapped paths, a key of another certificate", async () => {
  const { runCli } = await import("./harness.ts");
  const dir = mkdtempSync(join(tmpdir(), "yata-tls-pair-"));
  try {
    // (async: the S3 fixture runs in this process)
    const openssl = async (...args: string[]) => expect(await Bun.spawn(["openssl", ...args], { stdout: "ignore", stderr: "ignore" }).exited).toBe(0);
    /** A pair of a key type `newkey` (openssl req -newkey and -pkeyopt): `name`.pem and `name`.key. */
    const newPair = (name: string, newkey: string[]) => openssl("req", "-x509", "-newkey", ...newkey, "-nodes", "-days", "1", "-subj", `/CN=${name}`, "-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.pem`));
    await Bun.write(join(dir, "cert.pem"), readFileSync(join(certDir, "cert.pem")));
    await Bun.write(join(dir, "key.pem"), readFileSync(join(certDir, "key.pem")));
    // a Windows editor's UTF-8 with BOM: the listener finds no start line; the key was called "not the certificate's" or damaged
    await Bun.write(join(dir, "bom-cert.pem"), "\ufeff" + readFileSync(join(certDir, "cert.pem"), "utf8"));
    await Bun.write(join(dir, "bom-key.pem"), "\ufeff" + readFileSync(join(certDir, "key.pem"), "utf8"));
    // The files first, then every --check at once (each a process of its own, with a config of its own).
    await Promise.all([
      openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=other", "-keyout", join(dir, "other-key.pem"), "-out", join(dir, "other-cert.pem")),
      // DER: X509Certificate reads it, the listener does not (a bare NO_START_LINE at start)
      openssl("x509", "-in", join(dir, "cert.pem"), "-outform", "der", "-out", join(dir, "cert.der")),
      newPair("pss", ["rsa-pss", "-pkeyopt", "rsa_keygen_bits:2048"]),
      newPair("weak", ["rsa:512"]),
      newPair("p224", ["ec", "-pkeyopt", "ec_paramgen_curve:secp224r1"]),
    ]);
    // the chain written before the server's certificate (`cat chain.pem cert.pem`)
    await Bun.write(join(dir, "reversed.pem"), readFileSync(join(dir, "other-cert.pem"), "utf8") + readFileSync(join(certDir, "cert.pem"), "utf8"));
    let configs = 0;
    const check = async (cert: string, key: string) => {
      const file = join(dir, `c${++configs}.yaml`);
      await Bun.write(file, `server: { https: { cert_path: ${cert}, key_path: ${key} } }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`);
      return runCli(["--check", "--config", file]);
    };
    const [swapped, mismatched, reversed, bom, derCheck, pss, weak, p224, good] = await Promise.all([
      check("key.pem", "cert.pem"),
      check("cert.pem", "other-key.pem"),
      check("reversed.pem", "key.pem"),
      check("bom-cert.pem", "bom-key.pem"),
      check("cert.der", "key.pem"),
      check("pss.pem", "pss.key"),
      check("weak.pem", "weak.key"),
      check("p224.pem", "p224.key"),
      check("cert.pem", "key.pem"),
    ]);
    expect(swapped.code).toBe(1);
    expect(swapped.stderr).toContain("server.https.cert_path: key.pem is not a PEM certificate");
    expect(swapped.stderr).toContain("are cert_path and key_path swapped?");
    expect(swapped.stderr).not.toContain("BEGIN EC PRIVATE KEY");
    expect(mismatched.code).toBe(1);
    expect(mismatched.stderr).toContain("server.https.key_path: other-key.pem is not the private key of the certificate in cert.pem");
    // the chain before the server's certificate: said so, not only "not the key"
    expect(reversed.code).toBe(1);
    expect(reversed.stderr).toContain("server.https.key_path: key.pem is not the private key of the certificate in reversed.pem (it is the key of certificate 2 in the file: the server's certificate comes first, then its chain)");
    expect(bom.code).toBe(1);
    expect(bom.stderr).toContain("server.https.cert_path: bom-cert.pem starts with a byte order mark (UTF-8 with BOM): save it without one");
    expect(bom.stderr).toContain("server.https.key_path: bom-key.pem starts with a byte order mark (UTF-8 with BOM): save it without one");
    expect(derCheck.code).toBe(1);
    expect(derCheck.stderr).toContain("server.https.cert_path: cert.der is not a PEM certificate");
    /** What --check said of a pair made by newPair. */
    const refusedPair = (name: string, r: { code: number; stderr: string }, says: string) => {
      expect({ name, code: r.code }).toEqual({ name, code: 1 });
      expect(r.stderr).toContain(`server.https.key_path: ${name}.key ${says}`);
    };
    // a PEM key of a type the runtime cannot use: said so, not "not a PEM private key"
    refusedPair("pss", pss, "holds a PEM private key that cannot be used");
    // an RSA key TLS refuses at every handshake (under 1024 bits): the listener started and no client connected
    refusedPair("weak", weak, "is a 512-bit RSA key: TLS refuses it at every handshake");
    // key types the listener cannot load (it failed to start with UNSUPPORTED_ALGORITHM after --check said OK)
    refusedPair("p224", p224, "is a secp224r1 key the listener cannot use");
    expect({ code: good.code, stderr: good.stderr }).toMatchObject({ code: 0 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000); // (five openssl key generations, then nine --check processes at once: a few seconds alone, past 30 s on a loaded 2-core host)

test("a certificate renewed in place is served from the next reload on, by every process of a group (a worker restarted after a crash too), nothing in flight cut; a pair that does not match is refused and the previous one served", async () => {
  const dir = mkdtempSync(join(tmpdir(), "yata-tls-renew-"));
  const make = (cn: string, name: string) => {
    const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", `/CN=${cn}`, "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.pem`)], { stderr: "pipe" });
    expect(gen.exitCode).toBe(0);
    return { cert: readFileSync(join(dir, `${name}.pem`), "utf8"), key: readFileSync(join(dir, `${name}.key`), "utf8") };
  };
  const big = new Uint8Array(24 * 1024 * 1024).fill(7);
  await s3.put("pub", "big.bin", big);
  try {
    const first = make("first", "first");
    const renewed = make("renewed", "renewed");
    await using w = await startProxy(`server: { address: 127.0.0.1, port: 0, workers: 2, https: { cert_path: cert.pem, key_path: key.pem } }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`, {
      files: { "cert.pem": first.cert, "key.pem": first.key },
    });
    const child = await w.waitForLog((l) => l.msg === "listening" && l.worker === 1);
    /** Every new connection (16, spread over the group's processes) verifies with `ca` only. */
    const handshakes = async (ca: string) => {
      const out: Array<number | string> = [];
      for (let i = 0; i < 16; i++) out.push(await fetch(`https://127.0.0.1:${w.port}/health`, { tls: { ca }, headers: { connection: "close" } } as RequestInit).then((r) => r.status, (e) => String(e?.code ?? e)));
      return out;
    };
    expect(new Set(await handshakes(first.cert))).toEqual(new Set([200]));
    // a download under way on the first pair's listeners
    const downloads = await Promise.all([0, 1, 2, 3].map(() => fetch(`https://127.0.0.1:${w.port}/pub/big.bin`, { tls: { ca: first.cert } } as RequestInit)));
    const readers = downloads.map((d) => d.body!.getReader());
    for (const r of readers) await r.read();
    // renewed in place (certbot's way), then a reload
    writeFileSync(join(w.dir, "cert.pem"), renewed.cert);
    writeFileSync(join(w.dir, "key.pem"), renewed.key);
    w.signal("SIGHUP");
    await w.waitForLog((l) => l.msg === "server.https: the renewed certificate is served to new connections" && l.worker === 1);
    const said = await w.waitForLog((l) => l.msg === "server.https: the renewed certificate is served to new connections" && l.worker === 0);
    expect(said.subject).toBe("CN=renewed");
    expect(said.cert_path).toBe("cert.pem");
    expect(JSON.stringify(w.logs())).not.toContain("PRIVATE KEY");
    // (the replaced listeners go on for RETIRE_GRACE_MS, answering Connection: close: a new
    // connection may still reach one meanwhile, with the first pair, valid too)
    // (one round of handshakes spread over the listeners may all reach new ones while a retiring
    // one is still open: wait until a round with the first pair fails everywhere and the round
    // with the renewed pair right after succeeds everywhere)
    let seen: unknown;
    await waitFor(
      async () => {
        const olds = await handshakes(first.cert);
        const news = olds.every((r) => r !== 200) ? await handshakes(renewed.cert) : [];
        seen = { first: [...new Set(olds)], renewed: [...new Set(news)] };
        return news.length > 0 && news.every((r) => r === 200);
      },
      { timeoutMs: 15_000, message: () => `the first pair's listeners retired, the renewed pair served everywhere (last round: ${JSON.stringify(seen)})` },
    );
    // the downloads begun before go on to their end
    for (const r of readers) {
      let n = 0;
      for (let c = await r.read(); !c.done; c = await r.read()) n += c.value.byteLength;
      expect(n).toBeGreaterThan(0);
    }
    // the child crashes and is restarted: it serves the group's (renewed) pair
    process.kill(Number(child.pid), "SIGKILL");
    const restarted = await w.waitForLog((l) => l.msg === "listening" && l.worker === 1 && l.pid !== child.pid);
    expect(new Set(await handshakes(renewed.cert))).toEqual(new Set([200]));
    // half-renewed (the key of another pair, as between certbot's two file swaps): the reload is
    // refused, naming the files, and the renewed pair is still served
    writeFileSync(join(w.dir, "key.pem"), first.key);
    w.signal("SIGHUP");
    const refused = await w.waitForLog((l) => l.level === "error" && l.msg === "config reload failed; the previous config keeps serving" && l.generation === 2);
    expect(String(refused.error)).toContain("server.https.key_path: key.pem is not the private key of the certificate in cert.pem");
    expect(new Set(await handshakes(renewed.cert))).toEqual(new Set([200]));
    // the child crashes while that half-renewed pair is on disk: restarted, it serves the pair its
    // primary serves (sent over IPC), not waiting for a reload that the files on disk would fail
    process.kill(Number(restarted.pid), "SIGKILL");
    await w.waitForLog((l) => l.msg === "listening" && l.worker === 1 && l.pid !== child.pid && l.pid !== restarted.pid, 10_000);
    expect(new Set(await handshakes(renewed.cert))).toEqual(new Set([200]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

/** A self-signed pair valid only in 2020 (openssl ca: `req -x509` cannot set a start date). */
function expiredPair(dir: string): { cert: string; key: string } {
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "serial"), "01\n");
  writeFileSync(join(dir, "ca.cnf"), `[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = ${join(dir, "index.txt")}\nnew_certs_dir = ${dir}\nserial = ${join(dir, "serial")}\ndefault_md = sha256\npolicy = p\ncopy_extensions = copy\n[ p ]\ncommonName = supplied\n`);
  const run = (args: string[]) => {
    const r = Bun.spawnSync(["openssl", ...args], { stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.toString()}`);
  };
  run(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=expired", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "expired.key"), "-out", join(dir, "expired.csr")]);
  run(["ca", "-batch", "-notext", "-config", join(dir, "ca.cnf"), "-selfsign", "-keyfile", join(dir, "expired.key"), "-in", join(dir, "expired.csr"), "-out", join(dir, "expired.pem"), "-startdate", "20200101000000Z", "-enddate", "20200102000000Z"]);
  return { cert: readFileSync(join(dir, "expired.pem"), "utf8"), key: readFileSync(join(dir, "expired.key"), "utf8") };
}

test("a renewal with an expired certificate (an old pair copied back) fails the reload, as a key that does not match does: the previous pair keeps serving", async () => {
  // It was logged as refused, but the reload answered "reloaded" (200 to POST /admin/reload, a
  // success to a renewal hook and to the reload metric).
  const dir = mkdtempSync(join(tmpdir(), "yata-tls-expired-"));
  try {
    const old = expiredPair(dir);
    const served = { cert: readFileSync(join(certDir, "cert.pem"), "utf8"), key: readFileSync(join(certDir, "key.pem"), "utf8") };
    await using p = await startProxy(`server: { address: 127.0.0.1, port: 0, https: { cert_path: cert.pem, key_path: key.pem } }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`, {
      files: { "cert.pem": served.cert, "key.pem": served.key },
    });
    writeFileSync(join(p.dir, "cert.pem"), old.cert);
    writeFileSync(join(p.dir, "key.pem"), old.key);
    p.signal("SIGHUP");
    const refused = await p.waitForLog((l) => l.msg === "config reload failed; the previous config keeps serving" || l.msg === "config reloaded");
    expect(refused.msg).toBe("config reload failed; the previous config keeps serving");
    expect(String(refused.error)).toContain("server.https.cert_path (cert.pem): the renewed certificate expired on 2020-01-02T00:00:00.000Z");
    const res = await fetch(`https://127.0.0.1:${p.port}/pub/hello.txt`, { tls: { ca: served.cert }, headers: { connection: "close" } } as RequestInit);
    expect([res.status, await res.text()]).toEqual([200, "hello over tls\n"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a certificate file cut inside its first certificate is named as cut, not as 'not a PEM certificate'", async () => {
  // It holds "BEGIN CERTIFICATE": "is not a PEM certificate (\"BEGIN CERTIFICATE\")" sent the reader looking for the wrong cause.
  const dir = mkdtempSync(join(tmpdir(), "yata-tls-cut-"));
  try {
    const cert = readFileSync(join(certDir, "cert.pem"), "utf8");
    writeFileSync(join(dir, "cert.pem"), cert.slice(0, 200));
    writeFileSync(join(dir, "key.pem"), readFileSync(join(certDir, "key.pem")));
    writeFileSync(join(dir, "config.yaml"), `server: { address: 127.0.0.1, port: 0, https: { cert_path: cert.pem, key_path: key.pem } }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`);
    const checked = await runCli(["--check", "--config", join(dir, "config.yaml")]);
    expect(checked.code).toBe(1);
    expect(checked.stderr).toContain("server.https.cert_path: cert.pem: certificate 1 of the chain is cut or damaged");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a chain cut short (cert.pem read while it was written) fails --check and the reload, naming the file: the listener would refuse the whole file", async () => {
  // --check said OK and start failed with a bare "PEM routines: BAD_END_LINE"; a reload answered
  // "reloaded" while its listeners went on serving the previous pair.
  const served = { cert: readFileSync(join(certDir, "cert.pem"), "utf8"), key: readFileSync(join(certDir, "key.pem"), "utf8") };
  const cut = served.cert + served.cert.slice(0, 200);
  const yaml = `server: { address: 127.0.0.1, port: 0, https: { cert_path: cert.pem, key_path: key.pem } }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`;
  await using p = await startProxy(yaml, { files: { "cert.pem": served.cert, "key.pem": served.key } });
  writeFileSync(join(p.dir, "cert.pem"), cut);
  const checked = await runCli(["--check", "--config", join(p.dir, "config.yaml")]);
  expect(checked.code).toBe(1);
  expect(checked.stderr).toContain("server.https.cert_path: cert.pem: certificate 2 of the chain is cut or damaged");
  p.signal("SIGHUP");
  const refused = await p.waitForLog((l) => l.msg === "config reload failed; the previous config keeps serving" || l.msg === "config reloaded");
  expect([refused.msg, String(refused.error)]).toEqual(["config reload failed; the previous config keeps serving", expect.stringContaining("certificate 2 of the chain is cut or damaged")]);
  const res = await fetch(`https://127.0.0.1:${p.port}/pub/hello.txt`, { tls: { ca: served.cert }, headers: { connection: "close" } } as RequestInit);
  expect([res.status, await res.text()]).toEqual([200, "hello over tls\n"]);
});

test("one process with TLS: a second instance on the same port does not start (the TLS listener shares its port only with its own renewals)", async () => {
  const files = { "cert.pem": readFileSync(join(certDir, "cert.pem"), "utf8"), "key.pem": readFileSync(join(certDir, "key.pem"), "utf8") };
  const second = await startProxy(`server: { address: 127.0.0.1, port: ${px.port}, https: { cert_path: cert.pem, key_path: key.pem } }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`, { files }).then(
    async (p) => {
      await p.stop();
      return "started";
    },
    (e: Error) => e.message,
  );
  expect(second).not.toBe("started");
  expect(second).toContain("in use");
}, STARTUP_MS + 10_000); // (the second instance's refusal ends startProxy's wait at once; a loaded host may take a while to get there)

test("Listener.renewTls: a pair that cannot be served throws and the listener goes on with the old one; a good one is served to new connections", async () => {
  const { App } = await import("../../src/app.ts");
  const { listenBun } = await import("../../src/server.ts");
  const { parseConfig } = await import("../../src/config/load.ts");
  const { nullLogger } = await import("../../src/observe/log.ts");
  const dir = mkdtempSync(join(tmpdir(), "yata-tls-listener-"));
  const make = (cn: string) => {
    const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", `/CN=${cn}`, "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, `${cn}.key`), "-out", join(dir, `${cn}.pem`)], { stderr: "pipe" });
    expect(gen.exitCode).toBe(0);
    return { cert: readFileSync(join(dir, `${cn}.pem`), "utf8"), key: readFileSync(join(dir, `${cn}.key`), "utf8") };
  };
  try {
    const a = make("a");
    const b = make("b");
    writeFileSync(join(dir, "a.yaml"), "");
    const config = parseConfig(`server: { address: 127.0.0.1, port: 0, https: { cert_path: a.pem, key_path: a.key } }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`, { file: join(dir, "a.yaml") });
    const app = await App.create(config, { log: nullLogger, probeIntervalMs: 600_000 });
    const listener = listenBun(app, config, { tls: a, baseDir: dir });
    const status = (ca: string) => fetch(`https://127.0.0.1:${listener.port}/health`, { tls: { ca }, headers: { connection: "close" } } as RequestInit).then((r) => r.status, () => "refused");
    try {
      expect(await status(a.cert)).toBe(200);
      expect(() => listener.renewTls!({ cert: b.cert, key: a.key })).toThrow();
      expect(() => listener.renewTls!({ cert: "-----BEGIN CERTIFICATE-----\ncut", key: b.key })).toThrow();
      expect(await status(a.cert)).toBe(200);
      // a keep-alive connection to the first listener: its next answer says Connection: close
      const kept = await fetch(`https://127.0.0.1:${listener.port}/health`, { tls: { ca: a.cert } } as RequestInit);
      expect(kept.headers.get("connection")).not.toBe("close");
      const retired = listener.renewTls!(b);
      const again = await fetch(`https://127.0.0.1:${listener.port}/health`, { tls: { ca: a.cert } } as RequestInit);
      expect([again.status, again.headers.get("connection")]).toEqual([200, "close"]);
      await retired; // the first listener no longer accepts
      for (let i = 0; i < 8; i++) expect([await status(b.cert), await status(a.cert)]).toEqual([200, "refused"]);
      // stopping: no renewal binds anything any more
      await listener.stop(false);
      expect(() => listener.renewTls!(a)).toThrow("stopping");
    } finally {
      await listener.stop(true);
      app.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
