/**
 * Reading config files: the one base-directory rule, the size cap on files that lie about their
 * size, and loadConfigOffThread (the worker-thread load a reload uses) agreeing with loadConfig.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { ConfigError, configBaseDir, deepFreeze, deepFreezeSliced, loadConfig, loadConfigOffThread, loadConfigSourceOffThread, MAX_CONFIG_BYTES, MAX_FROZEN_ARRAY, parseConfig, readConfigText } from "../../src/config/load.ts";
import { loadWorkerSpecifier } from "../../src/config/offthread.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const B = `buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n`;
let dir: string;
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "yata-load-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("configBaseDir", () => {
  test("is the absolute folder of the config file", () => {
    expect(configBaseDir("/etc/yatagarasu/config.yaml")).toBe("/etc/yatagarasu");
    expect(configBaseDir("/config.yaml")).toBe("/"); // the old slice(0, lastIndexOf("/")) gave "", i.e. the working directory
    expect(configBaseDir("config.yaml")).toBe(process.cwd());
    expect(configBaseDir("conf/../conf/c.yaml")).toBe(join(process.cwd(), "conf"));
  });

  test("the loaded Config carries it; text without a file gets the working directory", async () => {
    const p = file("base.yaml", B);
    expect((await loadConfig(p)).baseDir).toBe(dir);
    expect(parseConfig(B, { env: {} }).baseDir).toBe(process.cwd());
    expect(parseConfig(B, { env: {}, file: p }).baseDir).toBe(dir);
  });

  test("a relative PEM path resolves against the config's folder, not the working directory", async () => {
    mkdirSync(join(dir, "keys"), { recursive: true });
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    writeFileSync(join(dir, "keys", "jwt.pem"), publicKey.export({ type: "spki", format: "pem" }));
    const p = file("pem.yaml", `jwt: { algorithm: ES256, ecdsa_public_key_path: keys/jwt.pem }\n${B}`);
    // Given relative to the working directory, so a cwd-relative resolution would look in the wrong place.
    const c = await loadConfig(relative(process.cwd(), p));
    expect(c.baseDir).toBe(dir);
    expect(c.jwt?.ecdsa_public_key_path).toBe("keys/jwt.pem");
    // a missing one names where it was looked for (through a symlinked config, that folder may surprise)
    const missing = file("pem-missing.yaml", `jwt: { algorithm: ES256, ecdsa_public_key_path: keys/none.pem }\n${B}`);
    const err = await loadConfig(missing).catch((e) => e);
    expect(err.message).toContain(`cannot read PEM file keys/none.pem (${join(dir, "keys", "none.pem")}): file not found`);
  });
});

describe("JWT PEM keys that cannot verify their algorithm", () => {
  const pem = (name: string, type: "rsa" | "ec", opts: { modulusLength: number } | { namedCurve: string }) => {
    mkdirSync(join(dir, "keys"), { recursive: true });
    const { publicKey } = type === "rsa" ? generateKeyPairSync("rsa", opts as { modulusLength: number }) : generateKeyPairSync("ec", opts as { namedCurve: string });
    writeFileSync(join(dir, "keys", name), publicKey.export({ type: "spki", format: "pem" }));
    return `keys/${name}`;
  };
  const said = async (jwt: string) => {
    const err = await loadConfig(file("jwt-fit.yaml", `jwt:\n  enabled: true\n${jwt}${B}    auth: { enabled: true }\n`)).catch((e) => e);
    return err instanceof ConfigError ? err.issues.map((i) => `${i.path}: ${i.message}`) : "loaded";
  };

  // --check said OK; the start then failed with exit 3 and a bare "Invalid key type" / "Named curve mismatch"
  test("a jwt.keys entry whose PEM is another key type or curve is a config error naming the entry's path", async () => {
    const ec256 = pem("ec256.pem", "ec", { namedCurve: "P-256" });
    const ec384 = pem("ec384.pem", "ec", { namedCurve: "P-384" });
    const rsa = pem("rsa2048.pem", "rsa", { modulusLength: 2048 });
    expect(await said(`  algorithm: RS256\n  keys: [ { id: k1, algorithm: RS256, path: ${ec256} } ]\n`)).toEqual([
      `jwt.keys[0].path: ${ec256} holds an EC P-256 key, which cannot verify RS256 (an RSA key goes with RS256)`,
    ]);
    expect(await said(`  algorithm: ES256\n  keys: [ { id: k1, algorithm: ES256, path: ${ec384} } ]\n`)).toEqual([
      `jwt.keys[0].path: ${ec384} holds an EC P-384 key, which cannot verify ES256 (an EC P-256 key goes with ES256)`,
    ]);
    expect(await said(`  algorithm: ES384\n  keys: [ { id: k1, algorithm: ES384, path: ${rsa} } ]\n`)).toEqual([
      `jwt.keys[0].path: ${rsa} holds an RSA key, which cannot verify ES384 (an EC P-384 key goes with ES384)`,
    ]);
    // each key with its own algorithm loads
    expect(await said(`  algorithm: RS256\n  keys: [ { id: k1, algorithm: RS256, path: ${rsa} }, { id: k2, algorithm: ES256, path: ${ec256} }, { id: k3, algorithm: ES384, path: ${ec384} }, { id: k4, algorithm: PS256, path: ${rsa} } ]\n`)).toBe("loaded");
  });

  // --check said OK (at most a note that the file fits no algorithm); every token was then 401 "no key for the token's algorithm"
  test("an algorithm whose only key files cannot verify it, or that no key file is read for, is a config error at that algorithm", async () => {
    const ec256 = pem("fit-ec256.pem", "ec", { namedCurve: "P-256" });
    const rsa = pem("fit-rsa2048.pem", "rsa", { modulusLength: 2048 });
    expect(await said(`  algorithm: RS256\n  rsa_public_key_path: ${ec256}\n`)).toEqual([
      `jwt.algorithm: no key can verify RS256: rsa_public_key_path (${ec256}) holds an EC P-256 key (an RSA key goes with RS256), so every RS256 token would be refused`,
    ]);
    expect(await said(`  algorithm: ES256\n  public_key_path: ${rsa}\n`)).toEqual([
      `jwt.algorithm: no key can verify ES256: public_key_path (${rsa}) holds an RSA key (an EC P-256 key goes with ES256), so every ES256 token would be refused`,
    ]);
    expect(await said(`  algorithm: RS256\n  algorithms: [ES256]\n  rsa_public_key_path: ${rsa}\n`)).toEqual([
      "jwt.algorithms[0]: algorithm ES256 needs a key source: set jwks_url, ecdsa_public_key_path, public_key_path or a jwt.keys entry of ES256 with a path (rsa_public_key_path is not read for ES256)",
    ]);
    expect(await said(`  algorithm: ES256\n  keys: [ { id: k1, algorithm: RS256, path: ${rsa} } ]\n`)).toEqual([
      "jwt.algorithm: algorithm ES256 needs a key source: set jwks_url, ecdsa_public_key_path, public_key_path or a jwt.keys entry of ES256 with a path",
    ]);
    // a file of the right type, a jwt.keys entry of the algorithm, or a JWKS: loaded
    expect(await said(`  algorithm: RS256\n  algorithms: [ES256]\n  rsa_public_key_path: ${rsa}\n  ecdsa_public_key_path: ${ec256}\n`)).toBe("loaded");
    expect(await said(`  algorithm: ES256\n  public_key_path: ${rsa}\n  keys: [ { id: k1, algorithm: ES256, path: ${ec256} } ]\n`)).toBe("loaded");
    expect(await said(`  algorithm: RS256\n  rsa_public_key_path: ${ec256}\n  jwks_url: https://idp.example.com/jwks\n`)).toBe("loaded");
  });

  // with no key source at all, every algorithm was told at jwt.algorithm to set any PEM key, the
  // EC one for RS256 too (which cannot verify it: the next --check then refused that file)
  test("an algorithm with no key source at all is named at its own line, with only the key files that can verify it", async () => {
    expect(await said(`  algorithm: RS256\n`)).toEqual([
      "jwt.algorithm: algorithm RS256 needs a key source: set jwks_url, rsa_public_key_path, public_key_path or a jwt.keys entry of RS256 with a path",
    ]);
    expect(await said(`  algorithm: HS256\n  secret: ${"s".repeat(32)}\n  algorithms: [HS256, EdDSA]\n`)).toEqual([
      "jwt.algorithms[1]: algorithm EdDSA needs a key source: set jwks_url, public_key_path or a jwt.keys entry of EdDSA with a path",
    ]);
  });

  // --check and the start said nothing; every token, correctly signed, was then 401 "signature verification failed"
  test("an RSA key under 2048 bits (which the JWT library refuses when it verifies) is a config error, wherever it is named", async () => {
    const weak = pem("rsa1024.pem", "rsa", { modulusLength: 1024 });
    const msg = `${weak} is a 1024-bit RSA key: RS*/PS* tokens need a key of at least 2048 bits (a shorter one is refused at every verification, so every token would be refused)`;
    expect(await said(`  algorithm: RS256\n  rsa_public_key_path: ${weak}\n`)).toEqual([`jwt.rsa_public_key_path: ${msg}`]);
    expect(await said(`  algorithm: PS256\n  public_key_path: ${weak}\n`)).toEqual([`jwt.public_key_path: ${msg}`]);
    expect(await said(`  algorithm: RS256\n  keys: [ { id: k1, algorithm: RS256, path: ${weak} } ]\n`)).toEqual([`jwt.keys[0].path: ${msg}`]);
  });
});

describe("readConfigText", () => {
  test("a file larger than the cap is refused from its size, naming the limit", async () => {
    const p = file("big.yaml", B + `# ${"x".repeat(MAX_CONFIG_BYTES)}\n`);
    const err = await readConfigText(p).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(`${p}: the config is ${MAX_CONFIG_BYTES + B.length + 3} bytes; the limit is 1 MiB (1048576 bytes)`);
  });

  test("a file with no real size that never ends (/dev/zero) stops at the cap", async () => {
    const err = await readConfigText("/dev/zero").catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(`/dev/zero: the config is more than ${MAX_CONFIG_BYTES} bytes; the limit is 1 MiB (1048576 bytes)`);
  });

  test("a directory is a ConfigError, not a raw fs error", async () => {
    const err = await readConfigText(dir).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toStartWith(`${dir}: cannot read config:`);
  });

  test("a path that cannot be opened says why, with the system's code, the path shown cut (a 4 KB path said only 'cannot be read')", async () => {
    const said = async (p: string) => ((await readConfigText(p).catch((e) => e)) as ConfigError).message;
    const long = join(dir, "a".repeat(300) + ".yaml");
    expect(await said(long)).toBe(`${long.slice(0, 200)}... (${long.length} characters): cannot read config: the path is too long (ENAMETOOLONG: a name in it over 255 bytes, or the whole path over 4095)`);
    const deep = join(dir, ...Array.from({ length: 21 }, () => "d".repeat(200)), "c.yaml");
    expect(await said(deep)).toEndWith(`... (${deep.length} characters): cannot read config: the path is too long (ENAMETOOLONG: a name in it over 255 bytes, or the whole path over 4095)`);
    writeFileSync(join(dir, "plain"), "x");
    expect(await said(join(dir, "plain", "c.yaml"))).toBe(`${join(dir, "plain", "c.yaml")}: cannot read config: a part of the path is a file, not a folder (ENOTDIR)`);
  });

  test("bytes that are not UTF-8 (a secret saved as Latin-1) are refused with their line and column, never replaced and never shown", async () => {
    // "é" in Latin-1 is the lone byte 0xE9: decoded as UTF-8 with replacement, the secret
    // silently became "caf\uFFFD-…" and every signature made with it was refused by S3.
    const head = `buckets:\n  - name: b\n    path_prefix: /b\n    s3:\n      bucket: bkt\n      access_key: AKIAX\n      secret_key: "caf`;
    const latin1 = Buffer.concat([Buffer.from(head), Buffer.from([0xe9]), Buffer.from(`-0123456789"\n`)]);
    const p = join(dir, "latin1.yaml");
    writeFileSync(p, latin1);
    for (const load of [readConfigText, (f: string) => loadConfigOffThread(f, { env: {} })]) {
      const err = await load(p).catch((e) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toBe(`${p}:7:23: the config is not UTF-8 text: this line holds a byte sequence that is not UTF-8 (not shown: it may be part of a secret); save the file as UTF-8`);
      expect(err.message).not.toContain("caf");
    }
    // Windows' "Unicode" (UTF-16) is named as such; a UTF-8 byte order mark and a literal U+FFFD stay fine.
    const p16 = join(dir, "utf16.yaml");
    writeFileSync(p16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(B, "utf16le")]));
    expect((await readConfigText(p16).catch((e) => e)).message).toBe(`${p16}: the config is UTF-16 text (it starts with a UTF-16 byte order mark): save the file as UTF-8`);
    const ok = join(dir, "bom.yaml");
    writeFileSync(ok, `\uFEFF${B}# \uFFFD\n`);
    expect((await loadConfig(ok, {})).buckets[0]!.name).toBe("b");
  });
});

describe("loadConfigOffThread", () => {
  test("gives the same frozen Config as loadConfig", async () => {
    const p = file("same.yaml", `server: { port: 9999 }\njwt: { secret: "\${YATA_OT_SECRET}" }\n${B}    auth: { enabled: true, claims: [{ claim: role, operator: in, value: [a, b] }] }\n`);
    const env = { YATA_OT_SECRET: "s3cr3t-0123456789abcdef0123456789" };
    const [off, on] = await Promise.all([loadConfigOffThread(p, { env }), loadConfig(p, env)]);
    expect(off).toEqual(on);
    expect(off.jwt?.secret).toBe("s3cr3t-0123456789abcdef0123456789");
    expect(off.baseDir).toBe(dir);
    expect(Object.isFrozen(off)).toBe(true);
    expect(Object.isFrozen(off.buckets[0].auth.claims[0].value)).toBe(true);
  });

  // The worker's stack is smaller than the main thread's: block nesting built over lines (each
  // line's 60 `- ` indented under the last's, 7,200 deep in 870 KB), which the pre-pass of single
  // lines does not follow, overflowed the yaml package's parser there, and the load ended "cannot
  // load config: cannot load config: Maximum call stack size exceeded."
  test("block nesting over many lines past the parser's stack is the nesting error, not a stack overflow", async () => {
    const lines = ["x-deep:"];
    for (let k = 0, indent = 2; k < 120; k++, indent += 120) lines.push(" ".repeat(indent) + "- ".repeat(60));
    const p = file("deep-lines.yaml", `${lines.join("\n")}a\n${B}`);
    const off = await loadConfigOffThread(p, { env: {} }).catch((e) => e);
    expect(off).toBeInstanceOf(ConfigError);
    // (where the stack runs out decides whether the package reports it, with a line, or throws: either reads so)
    expect(off.message).toMatch(/^[^\n]*: (?:invalid YAML: )?mappings or lists nested more than 64 deep \(a config needs fewer than 10\)$/);
  });

  test("an invalid config rejects with the same ConfigError (issues, file, lines)", async () => {
    const p = file("bad.yaml", `server: { bogus: 1 }\n${B}`);
    const off = await loadConfigOffThread(p, { env: {} }).catch((e) => e);
    const on = await loadConfig(p, {}).catch((e) => e);
    expect(off).toBeInstanceOf(ConfigError);
    expect(off.issues).toEqual(on.issues);
    expect(off.message).toBe(`${p}:1: server.bogus: unknown key 'bogus'`);
  });

  test("hands back the exact text it validated; given a text (a worker process: its primary's), never reads the file", async () => {
    const text = `server: { port: 9998 }\n${B}`;
    const p = file("source.yaml", text);
    const read = await loadConfigSourceOffThread(p, { env: {} });
    expect(read.text).toBe(text);
    expect(read.config).toEqual(await loadConfig(p, {}));
    // The file now says something else (invalid even): the text given is what counts, resolved in the folder given.
    writeFileSync(p, "buckets: nope\n");
    const sent = await loadConfigSourceOffThread(p, { env: {}, text, baseDir: "/srv/conf" });
    expect(sent.text).toBe(text);
    expect(sent.config.server.port).toBe(9998);
    expect(sent.config.baseDir).toBe("/srv/conf");
    const bad = await loadConfigSourceOffThread(join(dir, "absent.yaml"), { env: {}, text: "buckets: nope\n", baseDir: dir }).catch((e) => e);
    expect(bad).toBeInstanceOf(ConfigError);
    expect(bad.message).toStartWith(`${join(dir, "absent.yaml")}:1: buckets: `);
  });

  test("a missing file rejects with 'file not found'", async () => {
    const err = await loadConfigOffThread(join(dir, "nope.yaml")).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(`${join(dir, "nope.yaml")}: cannot read config: file not found`);
  });

  test("a load that never finishes (a FIFO nobody writes to) times out instead of hanging every later reload", async () => {
    const fifo = join(dir, "fifo.yaml");
    const mk = Bun.spawn(["mkfifo", fifo]);
    expect(await mk.exited).toBe(0);
    const err = await loadConfigOffThread(fifo, { timeoutMs: 300 }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(`${fifo}: loading the config took longer than 0.3 s`);
  });

  test("loads that time out on a FIFO leave the runtime's file I/O threads free (a disk cache read still completes)", async () => {
    // The read blocked in open(2) is not cut by the timeout: done with the async fs API it held one
    // of the runtime's few shared I/O threads for good, and a couple of such reloads (a config on a
    // hung mount, a FIFO) left every later async file operation of the process waiting (disk cache
    // hits hung until their clients gave up).
    const fifo = join(dir, "stall.yaml");
    expect(await Bun.spawn(["mkfifo", fifo]).exited).toBe(0);
    const n = availableParallelism() + 2;
    const errs = await Promise.all(Array.from({ length: n }, () => loadConfigOffThread(fifo, { timeoutMs: 1500 }).catch((e) => e)));
    for (const e of errs) expect(e).toBeInstanceOf(ConfigError);
    const plain = file("plain.txt", "still readable\n");
    const read = readFile(plain, "utf8");
    const late = Bun.sleep(3000).then(() => "stuck");
    const got = await Promise.race([read, late]);
    // (release whatever still waits on the FIFO: a writer that opens and closes at once)
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {}
    expect(got).toBe("still readable\n");
  });

  test("in the compiled executable the worker is the embedded entry, never a file in the working directory", () => {
    expect(loadWorkerSpecifier("file:///$bunfs/root/yatagarasu-linux-x64")).toBe("/$bunfs/root/config/load-worker.js");
    expect(loadWorkerSpecifier("file:///work/src/config/offthread.ts")).toBe("file:///work/src/config/load-worker.ts");
  });
});

describe("deepFreeze", () => {
  test("freezes every object and list, but leaves lists over MAX_FROZEN_ARRAY writable (their elements frozen)", () => {
    const long = Array.from({ length: MAX_FROZEN_ARRAY + 1 }, (_, i) => ({ i }));
    const short = [1, 2, 3];
    const o = deepFreeze({ a: { short, long } });
    expect(Object.isFrozen(o.a)).toBe(true);
    expect(Object.isFrozen(short)).toBe(true);
    expect(Object.isFrozen(long)).toBe(false);
    expect(long.every((x) => Object.isFrozen(x))).toBe(true);
  });

  test("deepFreezeSliced yields to the event loop while it works", async () => {
    const big = { list: Array.from({ length: 20_000 }, (_, i) => ({ i, inner: { i } })) };
    let turns = 0;
    let spinning = true;
    const spin = () => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    await deepFreezeSliced(big, 0);
    spinning = false;
    expect(big.list.every((x) => Object.isFrozen(x) && Object.isFrozen(x.inner))).toBe(true);
    expect(turns).toBeGreaterThan(10);
  });

  test("loadConfigOffThread keeps a non-finite number (not representable in JSON) intact", async () => {
    const p = file("inf.yaml", `jwt: { secret: s0123456789abcdef0123456789abcdef, claims: [{ claim: x, operator: equals, value: .inf }] }\n${B}`);
    const c = await loadConfigOffThread(p, { env: {} });
    expect(c.jwt?.claims[0].value).toBe(Infinity);
  });
});
