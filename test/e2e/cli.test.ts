import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statfsSync, symlinkSync, writeFileSync } from "node:fs";
import { generateKeyPairSync } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { command, runCli, startProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let dir: string;
const SECRET = "sk-VERY-SECRET-9f8e7d6c";
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
const bucket = (extra = "") => `buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9", access_key: AKID, secret_key: "${SECRET}"${extra} }\n`;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "yata-cli-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Independent runs (each its own process, files and no listener) side by side: a run mostly waits for start-up. */
const runEach = (argsList: string[][]) => Promise.all(argsList.map((args) => runCli(args)));

test("--version prints 'yatagarasu <package.json version> (commit <c>, <target>)' and exits 0 (a running build can be told from another)", async () => {
  const r = await runCli(["--version"]);
  expect([r.code, r.stderr]).toEqual([0, ""]);
  // from source: "commit source"; the executable (YATAGARASU_BIN): the commit build.ts embedded
  expect(r.stdout).toMatch(new RegExp(`^yatagarasu ${pkg.version.replaceAll(".", "\\.")} \\(commit (source|[0-9a-f]{7,40}|unknown), linux-(x64|arm64)\\)\n$`));
  expect(pkg.version).toBe("0.1.0");
});

test("--help prints usage and exits 0", async () => {
  const r = await runCli(["--help"]);
  expect(r.code).toBe(0);
  expect(r.stdout).toStartWith(`yatagarasu ${pkg.version}`);
  expect(r.stdout).toContain("--check");
  // the short forms the parser takes are documented
  expect(r.stdout).toContain("Short forms: -c PATH (or --config=PATH) for --config PATH, -V for --version, -h for --help.\n");
  expect(r.stdout).toContain("Exit codes:");
});

test("an unknown flag exits 2 and names the flag on stderr, also beside --version or --help", async () => {
  for (const r of await runEach([["--frobnicate"], ["--version", "--frobnicate"], ["--frobnicate", "--help"]])) {
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toStartWith("error: unknown argument '--frobnicate'");
  }
  // the config test's other common spelling says which flag it is here
  const flags = ["--test", "-t"];
  for (const [i, r] of (await runEach(flags.map((flag) => [flag, "-c", "config.yaml"]))).entries()) {
    expect([r.code, r.stdout, r.stderr]).toEqual([2, "", `error: unknown argument '${flags[i]}': to check a config and exit, use --check\n`]);
  }
});

test("the original's -d/--daemon and --upgrade say they are not supported and what to do instead (they said only \"unknown argument\" and the usage)", async () => {
  const flags = ["-d", "--daemon", "--upgrade"];
  for (const [i, r] of (await runEach(flags.map((flag) => [flag, "-c", "config.yaml"]))).entries()) {
    expect([r.code, r.stdout]).toEqual([2, ""]);
    expect(r.stderr).toStartWith(`error: unknown argument '${flags[i]}': the original's `);
    expect(r.stderr).toContain(flags[i] === "--upgrade" ? "start the new version beside the old one behind a load balancer" : "run yatagarasu in the foreground under a supervisor");
    expect(r.stderr).not.toContain("Usage:");
  }
});

test("an unknown argument says what it was probably meant as: a config file without --config, an option with '=', a misspelt option", async () => {
  const cases: Array<[string[], string]> = [
    [["config.yaml"], "error: unknown argument 'config.yaml': to use it as the config file, write --config config.yaml"],
    [["--check", "my.yaml"], "error: unknown argument 'my.yaml': to use it as the config file, write --config my.yaml"],
    [["--config", "a.yaml", "b.yaml"], "error: unknown argument 'b.yaml'\n"],
    [["--healthcheck=http://127.0.0.1:1/health"], "error: unknown argument '--healthcheck=http://127.0.0.1:1/health': write --healthcheck http://127.0.0.1:1/health (with a space)"],
    [["--version=1"], "error: unknown argument '--version=1': --version takes no value"],
    [["--conifg", "config.yaml"], "error: unknown argument '--conifg' (did you mean --config?)"],
    [["--chek"], "error: unknown argument '--chek' (did you mean --check?)"],
    // a long option with one dash (Go's style) names the two-dash one
    [["-config", "config.yaml"], "error: unknown argument '-config' (did you mean --config?)"],
    [["-config=config.yaml"], "error: unknown argument '-config=config.yaml' (did you mean --config?)"],
    [["-check"], "error: unknown argument '-check' (did you mean --check?)"],
    // a config file named before --config is not told "write --config" (it was: "write --config a.yaml")
    [["a.yaml", "--config", "b.yaml"], "error: unknown argument 'a.yaml'\n"],
    [["a.yaml", "--config=b.yaml"], "error: unknown argument 'a.yaml'\n"],
  ];
  for (const [i, r] of (await runEach(cases.map(([args]) => args))).entries()) {
    expect([r.code, r.stdout]).toEqual([2, ""]);
    expect(r.stderr).toStartWith(cases[i]![1]);
  }
});

test("an unknown argument holding a URL with a user name and password is shown without them (Docker keeps the output in its health log)", async () => {
  const cases: Array<[string[], string]> = [
    [["--healthcheck=http://probe:Hc-secret-7@127.0.0.1:1/health"], "error: unknown argument '--healthcheck=http://127.0.0.1:1/health': write --healthcheck http://127.0.0.1:1/health (with a space)"],
    [["http://probe:Hc-secret-7@127.0.0.1:1/health"], "error: unknown argument 'http://127.0.0.1:1/health': to use it as the config file, write --config http://127.0.0.1:1/health"],
  ];
  for (const [i, r] of (await runEach(cases.map(([args]) => args))).entries()) {
    expect([r.code, r.stdout]).toEqual([2, ""]);
    expect(r.stderr).toStartWith(cases[i]![1]);
    expect(r.stderr).not.toContain("Hc-secret-7");
  }
});

test("a password with a space (or a tab, quoted or not; with or without a scheme), or in a second URL of one argument, is not shown either (the user name and password were cut only up to a space, and in the first URL only)", async () => {
  const cases: Array<[string[], string]> = [
    [["--healthcheck", "http://probe:Hc secret 8@127.0.0.1:1/health"], "healthcheck: http://127.0.0.1:1/health: "],
    [["--healthcheck=http://probe:Hc secret 8@127.0.0.1:1/health"], "error: unknown argument '--healthcheck=http://127.0.0.1:1/health': write --healthcheck http://127.0.0.1:1/health (with a space)"],
    [["http://127.0.0.1:1/a,http://probe:Hc-secret-8@127.0.0.1:1/b"], "error: unknown argument 'http://127.0.0.1:1/a,http://127.0.0.1:1/b': to use it as the config file, write --config http://127.0.0.1:1/a,http://127.0.0.1:1/b"],
    // without a scheme: its words were looked at one by one, and neither `a:Hc` nor `secret@b` holds a user:password@host (shown whole)
    [["a:Hc secret 8@b"], "error: unknown argument '***@b': to use it as the config file, write --config ***@b"],
    [["--check", "--config", "a:Hc\tsecret@b"], "invalid config (1 problem):\n***@b: cannot read config ("],
    [["--healthcheck", `a:"Hc secret"@b`], "error: --healthcheck takes an http:// or https:// URL, not '***@b'"],
  ];
  for (const [i, r] of (await runEach(cases.map(([args]) => args))).entries()) {
    expect(r.stderr).toStartWith(cases[i]![1]);
    expect(r.stderr).not.toContain("secret");
  }
});

test("an argument's control characters are shown escaped, as the config's problems show them (an escape sequence in it acted on the terminal)", async () => {
  const cases: Array<[string[], string]> = [
    [["--con\x1b[2Jfig"], "error: unknown argument '--con\\x1b[2Jfig'"],
    [["a\rb.yaml"], "error: unknown argument 'a\\rb.yaml': to use it as the config file, write --config a\\rb.yaml"],
    [["--healthcheck", "ftp://127.0.0.1:1/\x1b[2J"], "error: --healthcheck takes an http:// or https:// URL, not 'ftp://127.0.0.1:1/\\x1b[2J'"],
  ];
  for (const [i, r] of (await runEach(cases.map(([args]) => args))).entries()) {
    expect(r.stderr).toStartWith(cases[i]![1]);
    expect(r.stderr).not.toMatch(/[\x1b\r]/);
  }
});

test("a long unknown argument is answered at once (the search for a URL's user name in it started over at each of its letters: 128 KB took ~10 s)", async () => {
  // (its CPU time, not the wall clock: a start on a loaded host took 6 s. The `@` is what makes
  // the search run: a word without one is shown as it is.)
  const p = Bun.spawn([...command(), `${"x".repeat(130_000)}@h`], { stdout: "ignore", stderr: "ignore" });
  const code = await p.exited;
  const cpuMs = Number(p.resourceUsage()!.cpuTime.total) / 1000;
  expect({ code, fast: cpuMs < 3_000 }).toEqual({ code: 2, fast: true });
});

test("a long unknown argument is cut in the message, with its length (100 KB was echoed whole, twice)", async () => {
  const long = `${"x".repeat(100_000)}SEEN-AT-THE-END`;
  const [unknown, hc] = await runEach([[long], ["--healthcheck", `ftp://h/${long}`]]);
  expect(unknown!.code).toBe(2);
  expect(unknown!.stderr).toStartWith(`error: unknown argument '${"x".repeat(200)}... (100015 characters)': to use it as the config file, write --config ${"x".repeat(200)}... (100015 characters)\n`);
  expect(hc!.stderr).toBe(`error: --healthcheck takes an http:// or https:// URL, not 'ftp://h/${"x".repeat(192)}... (100023 characters)'\n`);
  for (const r of [unknown!, hc!]) expect(r.stderr).not.toContain("SEEN-AT-THE-END");
});

test("a --config path that looks like a URL or user:password@host is shown without the user name and password, in every problem's place too, alike in both its forms, a password with / or = too", async () => {
  const named = join(dir, "cfg:Cfg-secret-9@host");
  writeFileSync(named, "server: { port: 70000 }\n" + bucket());
  // a name shown cut (over 200 characters) is said once, not on each problem's line
  const long = join(dir, `${"d".repeat(220)}.yaml`);
  writeFileSync(long, "server: { port: 70000, address: 7 }\n" + bucket());
  const [url, schemeless, served, existing, slash, cut] = await runEach([
    ["--check", "--config=https://probe:Cfg-secret-9@example.invalid/x.yaml"],
    ["--check", "--config", "probe:Cfg-secret-9@example.invalid"],
    ["--config", "probe:Cfg-secret-9@example.invalid"],
    ["--check", "--config", named],
    ["--check", "--config", "a:Cfg-se/cr=et-9@b"],
    ["--check", "--config", long],
  ]);
  const cwd = process.cwd();
  expect([url!.code, url!.stderr]).toEqual([1, `invalid config (1 problem):\nhttps://example.invalid/x.yaml: cannot read config (${cwd}/https:/example.invalid/x.yaml): file not found (--config takes a file's path: a URL is not fetched)\n`]);
  expect([schemeless!.code, schemeless!.stderr]).toEqual([1, `invalid config (1 problem):\n***@example.invalid: cannot read config (${cwd}/***@example.invalid): file not found\n`]);
  expect([served!.code, served!.stderr]).toEqual([1, schemeless!.stderr]);
  expect([existing!.code, existing!.stderr]).toEqual([1, `invalid config (1 problem):\n${dir}/***@host:1: server.port: must be from 0 to 65535, got 70000\n`]);
  expect([slash!.code, slash!.stderr]).toEqual([1, `invalid config (1 problem):\n***@b: cannot read config (${cwd}/***@b): file not found\n`]);
  expect(cut!.code).toBe(1);
  const cutLines = cut!.stderr.split("\n");
  expect(cutLines[1]).toBe(`${`${long}`.slice(0, 200)}... (${long.length} characters):`);
  expect(cutLines.slice(2).map((l) => l.replace(/:.*/, ""))).toEqual(["line 1", "line 1", ""]);
  for (const r of [url!, schemeless!, served!, existing!, slash!]) expect(r.stderr + r.stdout).not.toMatch(/Cfg-se/);
});

test("conflicting options exit 2 with what conflicts on stderr, running nothing", async () => {
  const cases: Array<[string[], string]> = [
    [["--healthcheck", "--check"], "error: --healthcheck and --check cannot be combined\n"],
    [["--check", "--healthcheck", "http://127.0.0.1:1/health"], "error: --check and --healthcheck cannot be combined\n"],
    [["--version", "--check"], "error: --version and --check cannot be combined\n"],
    [["-V", "--help"], "error: --version and --help cannot be combined\n"],
    [["--check", "--check"], "error: --check given twice\n"],
    [["--config", "a.yaml", "--config", "b.yaml"], "error: --config given twice\n"],
    [["--check", "-c", "a.yaml", "--config=b.yaml"], "error: --config given twice\n"],
    [["--healthcheck", "--config", "a.yaml"], "error: --healthcheck and --config cannot be combined\n"],
    [["--config", "a.yaml", "--version"], "error: --version and --config cannot be combined\n"],
    [["--healthcheck", "not-a-url"], "error: --healthcheck takes an http:// or https:// URL, not 'not-a-url'\n"],
    // (the path left out: the option was read as the path, and the process started serving, exit 1 "cannot read config")
    [["--config", "--check"], "error: --config needs a path (the next argument, --check, is an option: write --config PATH)\n"],
    [["-c", "-h"], "error: --config needs a path (the next argument, -h, is an option: write -c PATH)\n"],
  ];
  const results = await runEach(cases.map(([args]) => args));
  for (const [i, [args, stderr]] of cases.entries()) expect({ args, ...results[i] }).toEqual({ args, code: 2, stdout: "", stderr });
});

test("an empty --config path is a usage error in either spelling (--config= read the path '' and said 'cannot read config: file not found', exit 1)", async () => {
  const cases = [["--config="], ["--check", "--config="], ["--check", "--config", ""]];
  const results = await runEach(cases);
  for (const [i, args] of cases.entries()) expect({ args, ...results[i] }).toEqual({ args, code: 2, stdout: "", stderr: "error: --config needs a path\n" });
});

test("--healthcheck with a URL that does not parse (a port past 65535, an unclosed IPv6 bracket) is a usage error, exit 2, never a crash with a stack trace", async () => {
  const urls = ["http://127.0.0.1:80800/health", "http://[::1/health"];
  const results = await runEach(urls.map((url) => ["--healthcheck", url]));
  for (const [i, url] of urls.entries()) {
    expect({ url, ...results[i] }).toEqual({ url, code: 2, stdout: "", stderr: `error: --healthcheck takes an http:// or https:// URL, not '${url}'\n` });
  }
  // a user name and password in it are not shown either (Docker keeps the output in its health log)
  const withUser = await runCli(["--healthcheck", "http://probe:s3cret-pw@127.0.0.1:80800/health"]);
  expect(withUser).toEqual({ code: 2, stdout: "", stderr: "error: --healthcheck takes an http:// or https:// URL, not 'http://127.0.0.1:80800/health'\n" });
});

test("--healthcheck: exit 0 on 200; otherwise 1 with the reason on stderr", async () => {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response("x", { status: new URL(req.url).pathname === "/health" ? 200 : 503 }) });
  try {
    expect(await runCli(["--healthcheck", `http://127.0.0.1:${s.port}/health`])).toEqual({ code: 0, stdout: "", stderr: "" });
    const down = await runCli(["--healthcheck", `http://127.0.0.1:${s.port}/ready`]);
    expect([down.code, down.stderr]).toEqual([1, `healthcheck: http://127.0.0.1:${s.port}/ready answered 503\n`]);
    // a user name and password in the URL never reach the output (Docker keeps it in its health log)
    const withUser = await runCli(["--healthcheck", `http://probe:s3cret-pw@127.0.0.1:${s.port}/ready`]);
    expect([withUser.code, withUser.stderr]).toEqual([1, `healthcheck: http://127.0.0.1:${s.port}/ready answered 503\n`]);
    // nor a token in its query (it was printed whole), nor in a usage error's or a connection failure's advice
    const withToken = await runCli(["--healthcheck", `http://127.0.0.1:${s.port}/ready?token=hc-s3cret-tok`]);
    expect([withToken.code, withToken.stderr]).toEqual([1, `healthcheck: http://127.0.0.1:${s.port}/ready?… answered 503\n`]);
    const withFragment = await runCli(["--healthcheck", `http://127.0.0.1:${s.port}/ready#hc-s3cret-tok`]);
    expect([withFragment.code, withFragment.stderr]).toEqual([1, `healthcheck: http://127.0.0.1:${s.port}/ready#… answered 503\n`]);
    // nor a password of digits up to a `/`, read as a port and a path (it was shown whole)
    const digits = await runCli(["--healthcheck", `http://probe:1234/s3cret@127.0.0.1:${s.port}/ready`]);
    expect(digits.stderr).not.toContain("s3cret");
    const bad = await runCli(["--healthcheck", "http://probe:p?w@127.0.0.1:80800/x?token=hc-s3cret-tok"]);
    expect(bad.stderr).toBe("error: --healthcheck takes an http:// or https:// URL, not 'http://***@127.0.0.1:80800/x?…'\n");
    // nor a query or fragment holding an `@` (an e-mail, a token) in a URL without a port: the cut
    // began after the last `@`, inside the query, and the token was shown whole
    const atInQuery = await runEach([["--healthcheck", "http://a^b/x?token=hc-s3cret-tok@x"], ["--healthcheck", "http://a^b/x#hc-s3cret-tok@x"]]);
    expect(atInQuery.map((r) => r.stderr)).toEqual([
      "error: --healthcheck takes an http:// or https:// URL, not 'http://a^b/x?…'\n",
      "error: --healthcheck takes an http:// or https:// URL, not 'http://a^b/x#…'\n",
    ]);
  } finally {
    s.stop(true);
  }
  const closed = await runCli(["--healthcheck", "http://127.0.0.1:1/health"]);
  expect([closed.code, closed.stderr]).toEqual([1, "healthcheck: http://127.0.0.1:1/health: connection refused by 127.0.0.1:1: nothing listens there (is the proxy running, and on this port?)\n"]);
});

test("--healthcheck does not follow a redirect: the answer is this URL's, not another server's 200 (or 'does not resolve' for the loopback)", async () => {
  const other = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok") });
  const s = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) =>
      new Response(null, { status: 302, headers: { location: new URL(req.url).pathname === "/health" ? `http://127.0.0.1:${other.port}/health` : "http://nonexistent.invalid/health" } }),
  });
  try {
    for (const path of ["/health", "/elsewhere"]) {
      const url = `http://127.0.0.1:${s.port}${path}`;
      expect({ url, ...(await runCli(["--healthcheck", url])) }).toEqual({ url, code: 1, stdout: "", stderr: `healthcheck: ${url} answered 302\n` });
    }
  } finally {
    s.stop(true);
    other.stop(true);
  }
});

test("--healthcheck never goes through the HTTP proxy the environment names (a container's egress proxy cannot reach its loopback: the check failed, or passed on the proxy's answer)", async () => {
  let relayed = 0;
  const egress = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => (relayed++, new Response("proxy", { status: 502 })) });
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok") });
  try {
    const via = `http://127.0.0.1:${egress.port}`;
    const env = { HTTP_PROXY: via, http_proxy: via, HTTPS_PROXY: via, https_proxy: via, ALL_PROXY: via, all_proxy: via };
    expect(await runCli(["--healthcheck", `http://127.0.0.1:${s.port}/health`], { env })).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(relayed).toBe(0);
  } finally {
    egress.stop(true);
    s.stop(true);
  }
});

test("--check on a valid config exits 0 with a summary that never prints the secret", async () => {
  const p = file("ok.yaml", `server: { address: "127.0.0.1:8089" }\n${bucket()}`);
  const r = await runCli(["--check", "--config", p]);
  expect(r.code).toBe(0);
  expect(r.stdout).toStartWith(`config ${p}: OK\n`);
  expect(r.stdout).toContain("http://127.0.0.1:8089");
  expect(r.stdout).toContain("/b");
  expect(r.stdout).toContain("signed");
  expect(r.stdout + r.stderr).not.toContain(SECRET);
});

test("--check says when a JWT key file fits none of the accepted algorithms (an ES256 key beside algorithm: HS256), and not once jwt.algorithms accepts it", async () => {
  const gen = Bun.spawnSync(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout"], { stdout: "pipe" });
  const pub = Bun.spawnSync(["openssl", "ec", "-pubout"], { stdin: gen.stdout, stdout: "pipe", stderr: "pipe" });
  file("ec.pem", pub.stdout.toString());
  const jwt = (extra: string) => `jwt: { enabled: true, algorithm: HS256, secret: "${"s".repeat(40)}", ecdsa_public_key_path: ec.pem${extra} }\n${bucket()}`;
  const unused = await runCli(["--check", "--config", file("jwt-unused.yaml", jwt(""))]);
  expect(unused.code).toBe(0);
  expect(unused.stdout).toContain("note: the JWT key file ec.pem fits none of the accepted algorithms (jwt.algorithm / jwt.algorithms), so it is not used\n");
  const used = await runCli(["--check", "--config", file("jwt-used.yaml", jwt(", algorithms: [HS256, ES256]"))]);
  expect([used.code, used.stdout.includes("fits none")]).toEqual([0, false]);
});

test("--check says when a JWT public-key path holds a private key (it works, but the file can sign tokens); not for the public key", async () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  file("rsa-private.pem", privateKey.export({ type: "pkcs8", format: "pem" }).toString());
  file("rsa-public.pem", publicKey.export({ type: "spki", format: "pem" }).toString());
  const jwt = (pem: string) => `jwt: { enabled: true, algorithm: RS256, rsa_public_key_path: ${pem} }\n${bucket()}`;
  const [priv, pub] = await runEach([
    ["--check", "--config", file("jwt-private.yaml", jwt("rsa-private.pem"))],
    ["--check", "--config", file("jwt-public.yaml", jwt("rsa-public.pem"))],
  ]);
  expect(priv!.code).toBe(0);
  expect(priv!.stdout).toContain("note: jwt.rsa_public_key_path (rsa-private.pem) holds a private key: ");
  expect(priv!.stdout + priv!.stderr).not.toContain("BEGIN PRIVATE KEY");
  expect([pub!.code, pub!.stdout.includes("private key")]).toEqual([0, false]);
});

test("--check fails (exit 1) when the disk layer's folder cannot be used by this user, as start-up would (exit 3), and says why in words; with server.workers, each worker's folder", async () => {
  // It was a note with exit 0: a deploy gated on --check went on into a crash loop.
  file("not-a-folder", "a file");
  const cfg = (path: string, extra = "") => `${extra}cache: { enabled: true, cache_layers: [memory, disk], disk: { path: "${path}", max_disk_size_mb: 10 } }\n${bucket()}`;
  const bad = await runCli(["--check", "--config", file("disk-bad.yaml", cfg("not-a-folder/cache"))]);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/error: cache\.disk\.path \S+not-a-folder\/cache: started as this user, the proxy could not use it: a part of the path is a file, not a folder \(ENOTDIR\); it would not start \(exit 3\)\n/);
  // Never "OK" with exit 1 (it printed "config x.yaml: OK", the summary, then the error), and the error comes first.
  expect(bad.stdout).toStartWith(`config ${join(dir, "disk-bad.yaml")}: NOT OK: valid, but the proxy would not start with it as this user (the error above)\n`);
  expect(bad.stdout).not.toContain(": OK");
  const both = Bun.spawnSync(["sh", "-c", 'exec "$@" 2>&1', "sh", ...command(), "--check", "--config", join(dir, "disk-bad.yaml")]);
  expect(both.stdout.toString()).toStartWith("error: cache.disk.path ");
  const serve = await runCli(["--config", file("disk-bad-serve.yaml", cfg("not-a-folder/cache", "server: { address: 127.0.0.1, port: 0 }\n"))]);
  expect(serve.code).toBe(3);
  const ok = await runCli(["--check", "--config", file("disk-ok.yaml", cfg("cache-dir/new"))]);
  expect([ok.code, ok.stdout.includes("could not use it"), ok.stderr.includes("could not use it")]).toEqual([0, false, false]);
  // server.workers: 2 uses <path>/worker-0 and <path>/worker-1: the second is a file here
  mkdirSync(join(dir, "workers-cache"), { recursive: true });
  file("workers-cache/worker-1", "a file");
  const workers = await runCli(["--check", "--config", file("disk-workers.yaml", cfg("workers-cache", "server: { workers: 2 }\n"))]);
  expect(workers.code).toBe(1);
  expect(workers.stderr).toMatch(/error: cache\.disk\.path \S+workers-cache\/worker-1: started as this user, the proxy could not use it: it is a file, not a folder \(ENOTDIR\)/);
  expect(workers.stderr).not.toContain("worker-0");
  // --check and start-up agree: a symbolic link to nothing (a mount not there yet), or `objects`
  // in the folder being a file, passed --check and stopped the start (exit 3)
  symlinkSync(join(dir, "no-such-mount"), join(dir, "dangling"));
  mkdirSync(join(dir, "objfile"));
  file("objfile/objects", "a file");
  for (const [name, why] of [["dangling", /it is a symbolic link to nothing \(ENOENT\)/], ["objfile", /objfile\/objects in it is a file, not a folder \(EEXIST\)/]] as const) {
    const check = await runCli(["--check", "--config", file(`disk-${name}.yaml`, cfg(name))]);
    expect(`${name} ${check.code}`).toBe(`${name} 1`);
    expect(check.stderr).toMatch(why);
    const start = await runCli(["--config", file(`disk-${name}-serve.yaml`, cfg(name, "server: { address: 127.0.0.1, port: 0 }\n"))]);
    expect(`${name} ${start.code}`).toBe(`${name} 3`);
  }
});

test("--check notes a max_disk_size_mb above the free space on the disk folder's file system (it said nothing of space), a warning: exit 0", async () => {
  const fs = statfsSync(dir);
  const mb = Math.ceil((fs.bavail * fs.bsize) / (1 << 20)) * 1000;
  const cfg = (size: number) => `cache: { enabled: true, cache_layers: [memory, disk], disk: { path: "room/cache", max_disk_size_mb: ${size} } }\n${bucket()}`;
  const [over, fits] = await runEach([["--check", "--config", file("disk-room-over.yaml", cfg(mb))], ["--check", "--config", file("disk-room-fits.yaml", cfg(10))]]);
  expect([over!.code, over!.stderr]).toEqual([0, ""]);
  expect(over!.stdout).toStartWith(`config ${join(dir, "disk-room-over.yaml")}: OK`);
  expect(over!.stdout).toMatch(new RegExp(`\nnote: cache\\.disk: max_disk_size_mb \\(${mb} MiB\\) is more than the file system holding ${join(dir, "room/cache")} has free \\(\\d+ MiB\\): the cache fills it, then evicts its least recently used objects and holds less than configured, and the file system's other users find it full; free some space, lower max_disk_size_mb, or set a folder on another file system\n`));
  expect([fits!.code, fits!.stdout.includes("has free")]).toEqual([0, false]);
});

test("claim-rule values holding an invisible character (zero width space, bidi control) are a note of --check, named by path and code point, never silently accepted", async () => {
  const secret = "cli-note-secret-0123456789abcdefghij";
  const cfg = `jwt: { enabled: true, secret: "${secret}", claims: [{ claim: role, operator: equals, value: "admin\u200b" }], admin_claims: [{ claim: team, operator: in, value: [ops, "\u202eops"] }] }\n${bucket()}`;
  const check = await runCli(["--check", "--config", file("claim-values-unseen.yaml", cfg)]);
  expect(check.code).toBe(0);
  expect(check.stdout).toContain(
    "note: claim-rule values holding a character that cannot be seen: jwt.claims[0].value (U+200B (zero width space) at position 6), jwt.admin_claims[0].value[1] (U+202E (right-to-left override) at position 1); a token matches only if its claim holds the same character: remove it unless the issuer's values really do\n",
  );
  const plain = await runCli(["--check", "--config", file("claim-values-plain.yaml", `jwt: { enabled: true, secret: "${secret}", claims: [{ claim: role, operator: equals, value: "a b" }] }\n${bucket()}`)]);
  expect(plain.stdout).not.toContain("cannot be seen");
});

test("an audit folder that does not exist (it is not created) is a note of --check and a warning at start-up, in the same words", async () => {
  const cfg = `audit: { enabled: true, path: "${join(dir, "no-audit-dir/audit.log")}" }\n${bucket()}`;
  const words = `audit.path ${join(dir, "no-audit-dir/audit.log")}: the folder ${join(dir, "no-audit-dir")} does not exist, and the proxy does not create it: create it (writable by this user), or point audit.path elsewhere; until then audit events would be queued, then dropped`;
  const check = await runCli(["--check", "--config", file("audit-missing.yaml", cfg)]);
  expect(check.code).toBe(0);
  expect(check.stdout).toContain(`note: ${words}\n`);
  await using px = await startProxy(`server: { address: 127.0.0.1, port: 0 }\n${cfg}`);
  expect(await px.waitForLog((l) => l.level === "warn" && l.msg === words)).toBeDefined();
});

test("what --check notes as probably unwanted from the file itself (a secret with a secret file's newline, an S3 API on every address beside a loopback proxy) is a warning at start-up, seen under logging.level: warn (it was logged at info)", async () => {
  await using px = await startProxy(
    `server: { address: 127.0.0.1, port: 0 }\nlogging: { level: warn }\njwt: { enabled: true, secret: "cli-padded-secret-0123456789abcdefgh\\n" }\ns3_api: { port: 0, credentials: [{ access_key_id: AKIACLIWARN, secret_access_key: "cli-warn-secret-0123456789", identity: w, buckets: { b: [read] } }] }\n${bucket()}`,
  );
  const warned = (start: string) => px.waitForLog((l) => l.level === "warn" && String(l.msg).startsWith(start));
  expect(await warned("s3_api.address is not set, so the S3 API listens on every address")).toBeDefined();
  expect(await warned("jwt.secret ")).toBeDefined();
});

// As an unprivileged user: a folder it may write into but not list (0733) holds a disk path that
// does not exist yet. Start-up makes it (mkdir needs write and search only), so --check passes.
test.skipIf(process.getuid?.() !== 0 || Bun.which("setpriv") === null)("--check passes a disk folder start-up can make in a parent the user may write but not read (0733)", async () => {
  const drop = mkdtempSync(join(tmpdir(), "yata-cli-drop-"));
  try {
    chmodSync(drop, 0o733);
    const cfgFile = join(drop, "..", `${drop.split("/").pop()}.yaml`);
    writeFileSync(cfgFile, `cache: { enabled: true, cache_layers: [memory, disk], disk: { path: "${join(drop, "cache")}", max_disk_size_mb: 10 } }\n${bucket()}`);
    chmodSync(cfgFile, 0o644);
    const p = Bun.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ...command(), "--check", "--config", cfgFile], { stdout: "pipe", stderr: "pipe", cwd: "/" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(`${code} ${err}`).toBe("0 ");
    expect(out).toContain("OK");
    rmSync(cfgFile, { force: true });
  } finally {
    rmSync(drop, { recursive: true, force: true });
  }
});

// As an unprivileged user: a cache folder of its own whose `objects` or `tmp`, or a folder in
// `objects`, a start as root left (root's, 0700: the folder given to the service user without
// chown -R). --check said OK and the proxy started, and every fill failed (EACCES, `disk cache
// error`), nothing ever cached (one folder in objects/: the keys that fall in it).
test.skipIf(process.getuid?.() !== 0 || Bun.which("setpriv") === null)("--check fails and start-up exits 3 when `objects`, `tmp` or a folder in `objects` is not this user's to write, naming it", async () => {
  const root = mkdtempSync(join(tmpdir(), "yata-cli-rootsub-"));
  try {
    chmodSync(root, 0o755);
    const asNobody = async (args: string[]) => {
      const p = Bun.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ...command(), ...args], { stdout: "pipe", stderr: "pipe", cwd: "/" });
      let out = "";
      const dec = new TextDecoder();
      for await (const chunk of p.stdout as ReadableStream<Uint8Array>) {
        out += dec.decode(chunk, { stream: true });
        if (out.includes('"msg":"listening"')) p.kill(); // (it started: the defect; never left running)
      }
      return { code: await p.exited, out, err: await new Response(p.stderr).text() };
    };
    // (the two folders, --check and the start, at once: four starts of the CLI)
    await Promise.all(
      ["objects", "tmp", "objects/8d"].map(async (sub) => {
        const cache = join(root, `cache-${sub.replace("/", "-")}`);
        mkdirSync(join(cache, "objects", "8d"), { recursive: true });
        mkdirSync(join(cache, "tmp"));
        for (const mine of [cache, join(cache, "objects"), join(cache, "objects", "8d"), join(cache, "tmp")]) if (mine !== join(cache, sub)) chownSync(mine, 65534, 65534);
        chmodSync(join(cache, sub), 0o700); // root's
        const cfgFile = join(root, `${sub.replace("/", "-")}.yaml`);
        writeFileSync(cfgFile, `server: { address: 127.0.0.1, port: 0 }\ncache: { enabled: true, cache_layers: [disk], disk: { path: "${cache}", max_disk_size_mb: 10 } }\n${bucket().replace("s3:", "cache: { enabled: true }\n    s3:")}`);
        chmodSync(cfgFile, 0o644);
        const why = `${join(cache, sub)} in it: permission denied (EACCES): give it and what it holds to the user this process runs as (uid 65534) (chown -R), or set a folder that user may write`;
        const [check, start] = await Promise.all([asNobody(["--check", "--config", cfgFile]), asNobody(["--config", cfgFile])]);
        expect(`${sub} ${check.code} ${check.err}`).toBe(`${sub} 1 error: cache.disk.path ${cache}: started as this user, the proxy could not use it: ${why}; it would not start (exit 3)\n`);
        expect(`${sub} ${start.code}`).toBe(`${sub} 3`);
        expect(start.err).toContain(`could not start: cache.disk.path: cannot use ${cache}: ${why}`);
      }),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("--check resolves ${VAR} from the environment", async () => {
  const p = file("env.yaml", bucket().replace("bkt", '"${YATA_TEST_BKT}"'));
  const r = await runCli(["--check", "--config", p], { env: { YATA_TEST_BKT: "from-env-bkt" } });
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("s3://from-env-bkt");
});

test("--check on an invalid config exits 1 and lists every problem on stderr, without the secret", async () => {
  const p = file("bad.yaml", `server: { address: "0.0.0.0:8080", port: 1, bogus: true }\n${bucket(', region: ""')}  - name: c\n    path_prefix: /health\n    s3: { bucket: c, endpoint: "nope" }\n`);
  const r = await runCli(["--check", "--config", p]);
  expect(r.code).toBe(1);
  expect(r.stdout).toBe("");
  expect(r.stderr).toStartWith("invalid config (");
  expect(r.stderr).toContain(`${p}:1: server.bogus: unknown key 'bogus'`);
  expect(r.stderr).toContain("buckets[0].s3.region: must not be empty");
  expect(r.stderr).toContain(`${p}:8: buckets[1].s3.endpoint: must be a valid http(s) URL`);
  expect(r.stderr).not.toContain(SECRET);
});

test("--check reports semantic problems (port twice, reserved prefix) together", async () => {
  const p = file("sem.yaml", `server: { address: "0.0.0.0:8080", port: 1 }\n${bucket()}  - name: c\n    path_prefix: /health\n    s3: { bucket: cbk }\n`);
  const r = await runCli(["--check", "--config", p]);
  expect(r.code).toBe(1);
  expect(r.stderr).toStartWith("invalid config (2 problems):\n");
  expect(r.stderr).toContain(`${p}:1: server.port: the port is given twice`);
  expect(r.stderr).toContain(`${p}:7: buckets[1].path_prefix: '/health' collides with the proxy's own /health endpoint`);
});

test("--check says when the checks across keys wait for a refused required value (it said '1 problem' and showed a short JWT secret only on the next run)", async () => {
  const p = file("later.yaml", `jwt: { enabled: true, secret: short }\n${bucket()}  - name: c\n    path_prefix: /c\n    s3: { bucket: "" }\n`);
  const r = await runCli(["--check", "--config", p]);
  expect(r.code).toBe(1);
  expect(r.stderr).toStartWith("invalid config (1 problem; the checks across keys run once these are fixed):\n");
});

test("a missing config file exits 1 with 'file not found'", async () => {
  const p = join(dir, "does-not-exist.yaml");
  const r = await runCli(["--check", "--config", p]);
  expect(r.code).toBe(1);
  expect(r.stderr).toBe(`invalid config (1 problem):\n${p}: cannot read config: file not found\n`);
});

test("a missing config given by a relative path, or the default ./config.yaml, names the folder it was looked for in (and the default says it is one)", async () => {
  const sub = join(dir, "no-config-here");
  mkdirSync(sub, { recursive: true });
  const [byDefault, relative, check] = await Promise.all([runCli([], { cwd: sub }), runCli(["--check", "--config", "my.yaml"], { cwd: sub }), runCli(["--check"], { cwd: sub })]);
  expect([byDefault.code, byDefault.stderr]).toEqual([1, `invalid config (1 problem):\nconfig.yaml: cannot read config (${join(sub, "config.yaml")}): file not found (no --config was given, and ./config.yaml is the default: give --config PATH)\n`]);
  expect([check.code, check.stderr]).toEqual([1, byDefault.stderr]);
  expect([relative.code, relative.stderr]).toEqual([1, `invalid config (1 problem):\nmy.yaml: cannot read config (${join(sub, "my.yaml")}): file not found\n`]);
});

test("serving with a missing config file also exits 1", async () => {
  const r = await runCli(["--config", join(dir, "nope.yaml")]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain("cannot read config: file not found");
});

test("serving with an invalid config writes a JSON error line on stdout too (a container's log shipper saw a crash loop over an unset ${VAR} with no line), the secret kept out", async () => {
  const p = file("unset-var.yaml", bucket().replace("bkt", '"${YATA_TEST_UNSET_BKT}"'));
  const [unset, missing] = await Promise.all([runCli(["--config", p], { env: { YATA_TEST_UNSET_BKT: "" } }), runCli(["--config", join(dir, "nope.yaml")])]);
  expect([unset.code, missing.code]).toEqual([1, 1]);
  expect(unset.stderr).toStartWith("invalid config (1 problem):\n");
  const line = JSON.parse(unset.stdout);
  expect([line.level, line.msg, line.error, line.problems]).toEqual(["error", "could not start", "invalid config (1 problem)", [`${p}:4: buckets[0].s3.bucket: environment variable YATA_TEST_UNSET_BKT is set but empty (give it a value, or write \${YATA_TEST_UNSET_BKT:-default} to use a default when it is empty)`]]);
  expect(unset.stdout).not.toContain(SECRET);
  expect(JSON.parse(missing.stdout).problems).toEqual([`${join(dir, "nope.yaml")}: cannot read config: file not found`]);
  // the line lists 50 problems, then how many more (a 1 MiB file of unknown keys made a line of 4 MB); stderr has them all
  const many = await runCli(["--config", file("many-keys.yaml", `${bucket()}${Array.from({ length: 120 }, (_, i) => `k${i}: 1\n`).join("")}`)]);
  expect(many.stderr.split("\n").filter((l) => l.includes("unknown key")).length).toBe(120);
  const problems = JSON.parse(many.stdout).problems as string[];
  expect(problems.length).toBe(51);
  expect(problems[50]).toBe("... and 70 more (yatagarasu --check --config PATH lists every one)");
});

test("a busy port: exit 3, and the message names the listener whose address is taken (main, or metrics)", async () => {
  const busy = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("taken") });
  try {
    const cfg = (server: number, metrics: number) =>
      `server: { address: 127.0.0.1, port: ${server} }\nmetrics: { enabled: true, address: 127.0.0.1, port: ${metrics} }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, endpoint: "http://127.0.0.1:9" } }\n`;
    for (const [which, yaml] of [["main address 127.0.0.1", cfg(busy.port!, 0)], ["metrics address 127.0.0.1", cfg(0, busy.port!)]] as const) {
      const path = join(dir, `busy-${which.length}.yaml`);
      writeFileSync(path, yaml);
      const r = await runCli(["--config", path]);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`could not start: ${which}:${busy.port} is already in use`);
    }
  } finally {
    busy.stop(true);
  }
});

test("a metrics port another instance's metrics listener holds: exit 3 naming it, not a second listener sharing the port (scrapes landing on either process)", async () => {
  // what another instance's metrics listener is: Bun.serve with development: false
  const other = Bun.serve({ hostname: "127.0.0.1", port: 0, development: false, fetch: () => new Response("other instance") });
  const path = join(dir, "busy-metrics-instance.yaml");
  writeFileSync(path, `server: { address: 127.0.0.1, port: 0 }\nmetrics: { enabled: true, address: 127.0.0.1, port: ${other.port} }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, endpoint: "http://127.0.0.1:9" } }\n`);
  const p = Bun.spawn([...command(), "--config", path], { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), 10_000); // (it served instead of exiting)
  try {
    const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    expect(code).toBe(3);
    expect(stderr).toContain(`could not start: metrics address 127.0.0.1:${other.port} is already in use`);
  } finally {
    clearTimeout(timer);
    p.kill("SIGKILL");
    other.stop(true);
  }
});

test("an address that does not resolve, or is not this machine's: exit 3, naming the listener, its address:port and the cause in plain words", async () => {
  const listeners = {
    main: (a: string) => `server: { address: "${a}", port: 8089 }\n`,
    metrics: (a: string) => `server: { address: 127.0.0.1, port: 0 }\nmetrics: { enabled: true, address: "${a}", port: 9099 }\n`,
    s3_api: (a: string) => `server: { address: 127.0.0.1, port: 0 }\ns3_api: { address: "${a}", port: 9098 }\n`,
  };
  const ports = { main: 8089, metrics: 9099, s3_api: 9098 };
  const causes = [
    ["nonexistent.invalid", "nonexistent.invalid:PORT: nonexistent.invalid does not resolve"],
    ["10.255.255.1", "10.255.255.1:PORT is not an address of this machine"],
  ] as const;
  const runs = (Object.entries(listeners) as Array<[keyof typeof listeners, (a: string) => string]>).flatMap(([name, head]) =>
    causes.map(async ([address, cause]) => {
      const path = join(dir, `bind-${name}-${address}.yaml`);
      writeFileSync(path, `${head(address)}buckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, endpoint: "http://127.0.0.1:9" } }\n`);
      const r = await runCli(["--config", path]);
      return [{ name, address, code: r.code, stderr: r.stderr }, { name, address, code: 3, stderr: `could not start: ${name} address ${cause.replace("PORT", String(ports[name]))}\n` }];
    }),
  );
  for (const [got, want] of await Promise.all(runs)) expect(got).toEqual(want);
});

test("request heads: the default max_header_size (64 KiB) holds on the bun engine (Bun's own 16 KiB limit is raised as the binary and `bun run start` do); a lower one is the proxy's JSON 431", async () => {
  const { startProxy } = await import("./harness.ts");
  const yaml = (limit: string) => `server: { address: 127.0.0.1, port: 0${limit} }\nbuckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bkt, endpoint: "http://127.0.0.1:9", retry: { max_attempts: 1 } } }\n`;
  const big = (n: number) => ({ "x-big": "y".repeat(n) });
  const px = await startProxy(yaml(""));
  try {
    // 30 KiB of headers: past Bun's default, within ours: routed (the upstream is down: 502)
    const ok = await fetch(px.url("/b/k"), { headers: big(30 * 1024) });
    expect(ok.status).toBe(502);
    await ok.arrayBuffer();
    const tooBig = await fetch(px.url("/b/k"), { headers: big(70 * 1024) });
    expect(tooBig.status).toBe(431);
    await tooBig.arrayBuffer();
  } finally {
    await px.stop();
  }
  const strict = await startProxy(yaml(", security_limits: { max_header_size: 8192 }"));
  try {
    const r = await fetch(strict.url("/b/k"), { headers: big(10 * 1024) });
    expect(r.status).toBe(431);
    expect(((await r.json()) as { error: string }).error).toBe("HeadersTooLarge");
  } finally {
    await strict.stop();
  }
});

test("--check shows the fetch concurrency warning the start-up log gives (fetch buckets, max_concurrent_requests above 256, BUN_CONFIG_MAX_HTTP_REQUESTS unset), and not once it is set", async () => {
  const p = file("fetchcap.yaml", `server: { max_concurrent_requests: 1000, upstream_client: fetch }\n${bucket()}`);
  const unset = await runCli(["--check", "--config", p], { env: { BUN_CONFIG_MAX_HTTP_REQUESTS: "" } });
  expect(unset.code).toBe(0);
  expect(unset.stdout).toContain("note: buckets b reach S3 through fetch, which runs at most 256 requests at once per process (the rest wait) while server.max_concurrent_requests is 1000: set BUN_CONFIG_MAX_HTTP_REQUESTS=1000 in the environment (read at start-up only)\n");
  const set = await runCli(["--check", "--config", p], { env: { BUN_CONFIG_MAX_HTTP_REQUESTS: "1024" } });
  expect(set.code).toBe(0);
  expect(set.stdout).not.toContain("BUN_CONFIG_MAX_HTTP_REQUESTS");
});

test("--check notes that the original's s3.connection_pool_size has no effect here (only when a config sets it)", async () => {
  const set = await runCli(["--check", "--config", file("pool.yaml", bucket(", connection_pool_size: 50"))]);
  expect(set.code).toBe(0);
  expect(set.stdout).toContain("note: s3.connection_pool_size is accepted for the original's configs and has no effect (b)");
  const unset = await runCli(["--check", "--config", file("nopool.yaml", bucket())]);
  expect(unset.code).toBe(0);
  expect(unset.stdout).not.toContain("connection_pool_size");
});

// --check's output went through process.exit right after the write: through a pipe (64 KiB) whose
// reader was not quick, the problem list and the summary were cut off at 64 or 128 KiB.
// These two run at once: the first mostly waits out the healthcheck's 3 s for a listener that never
// answers, the second is mostly its children's work and a reader's second of sleep; each has its
// own listeners and files.
test.concurrent("--healthcheck with the wrong scheme or a listener that never answers says so in its own words, never the runtime's ('pass `verbose: true` ... to fetch()')", async () => {
  const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=hc.example",
    "-keyout", join(dir, "hc-key.pem"), "-out", join(dir, "hc-cert.pem")], { stdout: "ignore", stderr: "ignore" });
  expect(gen.exitCode).toBe(0);
  const tls = Bun.serve({ hostname: "127.0.0.1", port: 0, tls: { key: Bun.file(join(dir, "hc-key.pem")), cert: Bun.file(join(dir, "hc-cert.pem")) }, fetch: () => new Response("ok") });
  const plain = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok") });
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    // (the https listener itself: certificate not verified on the loopback)
    expect((await runCli(["--healthcheck", `https://127.0.0.1:${tls.port}/health`])).code).toBe(0);
    const cases: Array<[string, string]> = [
      [`http://127.0.0.1:${tls.port}/health`, `connection reset by 127.0.0.1:${tls.port}: is the listener https? try https://127.0.0.1:${tls.port}/health`],
      [`https://127.0.0.1:${plain.port}/health`, `TLS handshake with 127.0.0.1:${plain.port} failed: is the listener plain http? try http://127.0.0.1:${plain.port}/health`],
      [`http://127.0.0.1:${silent.port}/health`, `no answer from 127.0.0.1:${silent.port} within 3 s`],
    ];
    const results = await runEach(cases.map(([url]) => ["--healthcheck", url]));
    for (const [i, [url, why]] of cases.entries()) expect({ url, ...results[i] }).toEqual({ url, code: 1, stdout: "", stderr: `healthcheck: ${url}: ${why}\n` });
  } finally {
    tls.stop(true);
    plain.stop(true);
    silent.stop(true);
  }
});

test.concurrent("--check's problem list (stderr) and summary (stdout) reach a slow reader through a pipe whole, and the exit code is kept", async () => {
  const bad = ["buckets:\n"];
  const good = ["buckets:\n"];
  for (let i = 0; i < 3000; i++) bad.push(`  - { name: b${i}, path_prefix: p${i}, s3: { bucket: my-products-bucket, endpoint: "http://127.0.0.1:9" } }\n`);
  for (let i = 0; i < 1000; i++) good.push(`  - { name: b${i}, path_prefix: /p${i}, s3: { bucket: my-products-bucket, endpoint: "http://127.0.0.1:9" } }\n`);
  const badPath = file("many-errors.yaml", bad.join(""));
  const goodPath = file("many-buckets.yaml", good.join(""));
  const [whole, summary] = await runEach([["--check", "--config", badPath], ["--check", "--config", goodPath]]);
  expect(whole.code).toBe(1);
  expect(whole.stderr.length).toBeGreaterThan(200_000);
  const slow = async (args: string[], which: "stdout" | "stderr") => {
    // the reader starts reading a second after the proxy has written everything
    const redirect = which === "stderr" ? "2>&1 >/dev/null" : "2>/dev/null";
    const p = Bun.spawn(["sh", "-c", `"$@" ${redirect} | (sleep 1; wc -c)`, "sh", ...command(), ...args], { stdout: "pipe", stderr: "inherit" });
    return (await new Response(p.stdout).text()).trim();
  };
  // (the three readers at once: each one's second of not reading is its own)
  const [checkErr, serveErr, checkOut] = await Promise.all([
    slow(["--check", "--config", badPath], "stderr"),
    // the serving mode's config-error path too
    slow(["--config", badPath], "stderr"),
    slow(["--check", "--config", goodPath], "stdout"),
  ]);
  expect(Number(checkErr.split("\n")[0])).toBe(Buffer.byteLength(whole.stderr));
  expect(Number(serveErr.split("\n")[0])).toBe(Buffer.byteLength(whole.stderr));
  expect(summary.code).toBe(0);
  expect(summary.stdout.length).toBeGreaterThan(70_000);
  expect(Number(checkOut.split("\n")[0])).toBe(Buffer.byteLength(summary.stdout));
}, 60_000);
