/**
 * Defect 11: the YAML layer. Duplicate keys are found in one pass (the yaml package's own check
 * is quadratic), each reported with file:line and path; the config size is capped; parsing time
 * grows linearly with the size of a mapping.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { ConfigError, MAX_CONFIG_BYTES, parseConfig, type ConfigIssue } from "../../src/config/load.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const B = `buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n`;

function error(yaml: string, file?: string): ConfigError {
  try {
    parseConfig(yaml, { env: {}, file });
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}
const issues = (yaml: string): ConfigIssue[] => error(yaml).issues;

describe("duplicate keys", () => {
  test("every duplicate is reported with its path, its line and the line of the first", () => {
    const yaml = `server:\n  port: 1\n  port: 2\n${B}    s3: { bucket: again }\nserver: {}\n`;
    const err = error(yaml, "c.yaml");
    expect(err.issues).toEqual([
      { path: "server.port", message: "duplicate key 'port' (first defined at line 2)", line: 3 },
      { path: "buckets[0].s3", message: "duplicate key 's3' (first defined at line 7)", line: 8 },
      { path: "server", message: "duplicate key 'server' (first defined at line 1)", line: 9 },
    ]);
    expect(err.message.split("\n")[0]).toBe("c.yaml:3: server.port: duplicate key 'port' (first defined at line 2)");
  });

  test("in flow mappings and in mappings inside sequences too; the same key in two mappings is fine", () => {
    const yaml = `buckets:\n  - { name: a, path_prefix: /a, name: b, s3: { bucket: bkt } }\n  - name: c\n    path_prefix: /c\n    s3: { bucket: yyy, bucket: zzz }\n`;
    expect(issues(yaml).map((i) => `${i.line}: ${i.path}: ${i.message}`)).toEqual([
      "2: buckets[0].name: duplicate key 'name' (first defined at line 2)",
      "5: buckets[1].s3.bucket: duplicate key 'bucket' (first defined at line 5)",
    ]);
  });

  test("a key written as a number and as a string is one key once parsed, so it is a duplicate", () => {
    expect(issues(`${B}1: a\n"1": b\n`)).toContainEqual({ path: "1", message: "duplicate key '1' (first defined at line 5)", line: 6 });
  });

  test("a duplicate key does not hide the rules across fields: one run lists both (a reserved prefix, credentials in an endpoint)", () => {
    const yaml = `server: { port: 8080, port: 8081 }\nbuckets:\n  - name: a\n    path_prefix: /health\n    s3: { bucket: bkt, endpoint: "http://user:password@127.0.0.1:9" }\n`;
    expect(issues(yaml).map((i) => i.path)).toEqual(["server.port", "buckets[0].path_prefix", "buckets[0].s3.endpoint"]);
  });

  test("a very long duplicate key is shortened in the message", () => {
    const k = "k".repeat(500);
    const got = issues(`${B}${k}: 1\n${k}: 2\n`).find((i) => i.message.startsWith("duplicate"))!;
    expect(got.message.length).toBeLessThan(120);
  });
});

describe("where a problem is reported", () => {
  test("a key whose value is a block (a mapping or a list, maybe after comments) is reported on the key's own line", () => {
    const yaml = `${B}    auth:\n      enabled: true\n      jwt:\n        # copied from the original README\n\n        secret: "s-0123456789abcdef0123456789abcdef"\n`;
    // line 1 buckets, 5 auth, 6 enabled, 7 jwt, 8 comment, 9 blank, 10 secret
    expect(issues(yaml).find((i) => i.path === "buckets[0].auth.jwt")?.line).toBe(7);
    const list = issues(`server:\n  adress: x\n${B}`);
    expect(list.map((i) => [i.path, i.line])).toEqual([["server.adress", 2]]);
  });

  test("every problem in one report: a value of the wrong type does not hide what the checks after it find either", () => {
    const got = issues(`server: { port: abc }\njwt: { enabled: true, secret: "short" }\n${B}  - name: c\n    path_prefix: /b\n    s3: { bucket: bkt2, endpoint: "http://127.0.0.1:9000" }\n`);
    expect(got.map((i) => [i.path, i.line])).toEqual([
      ["server.port", 1],
      ["jwt.secret", 2],
      ["buckets[1].path_prefix", 8],
    ]);
  });

  test("every problem in one report, in file order: an unknown key does not hide what the checks after it find", () => {
    const got = issues(`server:\n  adress: 127.0.0.1\n${B}  - name: c\n    path_prefix: /b\n    s3: { bucket: bkt2, endpoint: "http://127.0.0.1:9000" }\n`);
    expect(got.map((i) => [i.path, i.line])).toEqual([
      ["server.adress", 2],
      ["buckets[1].path_prefix", 8],
    ]);
  });
});

describe("size cap", () => {
  test(`text over ${MAX_CONFIG_BYTES} bytes is refused before parsing, naming the limit`, () => {
    const yaml = B + `# ${"x".repeat(MAX_CONFIG_BYTES)}\n`;
    expect(issues(yaml)).toEqual([{ path: "", message: `the config is ${Buffer.byteLength(yaml)} bytes; the limit is 1 MiB (1048576 bytes)` }]);
  });

  test("the cap counts bytes, not characters", () => {
    const yaml = B + `# ${"é".repeat(MAX_CONFIG_BYTES / 2)}\n`; // 2 bytes each in UTF-8
    expect(yaml.length).toBeLessThan(MAX_CONFIG_BYTES);
    expect(issues(yaml)[0].message).toContain("the limit is 1 MiB");
  });

  test("a config just under the cap is accepted", () => {
    const yaml = B + `# ${"x".repeat(MAX_CONFIG_BYTES - B.length - 4)}\n`;
    expect(Buffer.byteLength(yaml)).toBeLessThanOrEqual(MAX_CONFIG_BYTES);
    expect(parseConfig(yaml, { env: {} }).buckets).toHaveLength(1);
  });
});

describe("hostile shapes", () => {
  test("deep nesting is a clear error, not a crash; a cascade of YAML errors is listed as 10 and a count", () => {
    expect(issues(`${B}x: ${"[".repeat(20_000)}\n`)).toEqual([{ path: "", message: "mappings or lists nested more than 64 deep (a config needs fewer than 10)", line: 5, column: 68 }]);
    const err = error(`${B}x: ${"[".repeat(60)}\n`);
    expect(err.issues[0].message).toStartWith("invalid YAML");
    expect(err.issues).toHaveLength(11);
    expect(err.issues[10].message).toMatch(/^invalid YAML: \d+ more errors not listed$/);
  });

  test("alias expansion (billion laughs) is a clear error", () => {
    let yaml = `${B}a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n`;
    for (let i = 1; i < 9; i++) yaml += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(", ")}]\n`;
    const err = error(yaml);
    expect(err.issues[0].message).toStartWith("invalid YAML: its aliases expand to more than");
  });

  test("an alias inside what it names is refused; one shared anchor merged into 300 buckets is not an attack", () => {
    expect(error(`${B}loop: &l [1, *l]\n`).issues[0].message).toStartWith("an alias (*name) inside the node its anchor (&name) names");
    const buckets = Array.from({ length: 300 }, (_, i) => `  - name: b${i}\n    path_prefix: /b${i}\n    s3: { <<: *s3d, bucket: bucket-${i} }\n    cache: *cache\n`).join("");
    const c = parseConfig(`x-s3: &s3d { endpoint: "http://127.0.0.1:9000", region: us-east-1 }\nx-cache: &cache { enabled: true, ttl_seconds: 60 }\nbuckets:\n${buckets}`, { env: {} });
    expect(c.buckets).toHaveLength(300);
    expect([c.buckets[299]!.s3.bucket, c.buckets[299]!.s3.region]).toEqual(["bucket-299", "us-east-1"]);
  });
});

describe("an alias inside what it names", () => {
  // It was "invalid YAML: its aliases expand to more than 1000000 nodes", with no line, no path
  // and no word of which alias it was.
  const CYCLE = "an alias (*name) inside the node its anchor (&name) names: it would expand without end";
  const said = (yaml: string) => error(yaml, "c.yaml").message.split("\n");
  test("is named with its line, its path and the anchor's line, alone", () => {
    expect(said(`${B}a: &x [*x]\n`)).toEqual([`c.yaml:5: a[0]: ${CYCLE} (the anchor is at line 5)`]);
    expect(said(`x-d: &d\n  a: 1\n  b:\n    - c: *d\n${B}`)).toEqual([`c.yaml:4: x-d.b[0].c: ${CYCLE} (the anchor is at line 1)`]);
    // a mapping merging itself, a bucket's own s3 mapping
    expect(said(`buckets:\n  - name: b\n    path_prefix: /b\n    s3: &s\n      bucket: bkt\n      <<: *s\n`)).toEqual([`c.yaml:6: buckets[0].s3.<<: ${CYCLE} (the anchor is at line 4)`]);
    // as a key (which is refused as a key too)
    expect(said(`${B}a: &x {*x : 1}\n`)).toEqual(["c.yaml:5: a: a key must be a plain name (a string), not a list or a mapping", `c.yaml:5: ${CYCLE} (the anchor is at line 5)`]);
  });

  test("an alias of an anchor named again later, or of a node beside it, is no cycle; aliases of aliases still meet the expansion cap", () => {
    const c = parseConfig(`x-a: &x [1]\nx-b: [*x, *x]\nx-c: &x [2, [3]]\nx-d: { e: *x, f: [*x] }\n${B}`, { env: {} });
    expect(c.buckets).toHaveLength(1);
    let yaml = `${B}a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n`;
    for (let i = 1; i < 9; i++) yaml += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(", ")}]\n`;
    expect(error(yaml).issues.map((i) => i.message)).toEqual(["invalid YAML: its aliases expand to more than 1000000 nodes (aliases of aliases, or an alias inside what it names)"]);
  });
});

/** A mapping with n keys under `junk:` (refused by the schema, after the whole YAML work is done). */
function wide(n: number): string {
  const parts = [B, "junk:\n"];
  for (let i = 0; i < n; i++) parts.push(`  k${i}: v\n`);
  return parts.join("");
}

/** CPU time of the best of `runs` (CPU, not wall time: less disturbed by other processes on the machine). */
function cpuMs(f: () => void, runs: number): number {
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = process.cpuUsage();
    f();
    const d = process.cpuUsage(t0);
    best = Math.min(best, (d.user + d.system) / 1000);
  }
  return best;
}

describe("complex keys (a list or a mapping as a key)", () => {
  // The yaml package stringifies such a key with a process warning on stderr ("Keys with collection
  // values will be stringified ... Set mapAsMap: true", then "Use `yatagarasu-linux-x64
  // --trace-warnings ...`", an option the binary refuses): a stray non-JSON line in the log
  // stream at start and on reload, and an anchor holder (`x-`) passed --check with it.
  function warningsDuring(f: () => void): string[] {
    const seen: string[] = [];
    const original = process.emitWarning;
    process.emitWarning = ((w: string | Error) => void seen.push(String(w))) as typeof process.emitWarning;
    try {
      f();
    } finally {
      process.emitWarning = original;
    }
    return seen;
  }

  test("is a config error with its path and line, and no runtime warning is printed", () => {
    let got: ConfigIssue[] = [];
    const warnings = warningsDuring(() => {
      got = issues(`${B}x-anchors:\n  ? [a, b]\n  : c\n`);
    });
    expect(warnings).toEqual([]);
    expect(got).toContainEqual({ path: "x-anchors", message: "a key must be a plain name (a string), not a list or a mapping", line: 6 });
  });

  test("an alias of a string as a key (`*name : value`) is a plain name, as it was: read, and checked for duplicates", () => {
    const cfg = parseConfig(`x-names:\n  p: &portkey port\nserver:\n  *portkey : 8081\n${B}`, { env: {} });
    expect(cfg.server.port).toBe(8081);
    expect(issues(`x-names:\n  p: &portkey port\nserver:\n  port: 1\n  *portkey : 2\n${B}`)).toContainEqual({ path: "server.port", message: "duplicate key 'port' (first defined at line 4)", line: 5 });
    // an alias of a list is still a complex key
    expect(issues(`x-names:\n  l: &list [a, b]\nserver:\n  *list : 2\n${B}`)).toEqual([{ path: "server", message: "a key must be a plain name (a string), not a list or a mapping", line: 4 }]);
  });

  test("outside x- too: named with its line, without the runtime warning", () => {
    let got: ConfigIssue[] = [];
    const warnings = warningsDuring(() => {
      got = issues(`${B}server:\n  ? { port: 1 }\n  : 8080\n`);
    });
    expect(warnings).toEqual([]);
    // once: not also `unknown key '{ port: 1 }'` (at the wrong line) from the schema
    expect(got).toEqual([{ path: "server", message: "a key must be a plain name (a string), not a list or a mapping", line: 6 }]);
    expect(issues(`buckets:\n  - name: b\n    ? [x]\n    : 1\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n`)).toEqual([{ path: "buckets[0]", message: "a key must be a plain name (a string), not a list or a mapping", line: 3 }]);
  });
});

describe("complexity", () => {
  test("parse time grows linearly with the keys of one mapping: 8x the keys costs well under 16x the time", () => {
    const small = wide(5_000);
    const large = wide(40_000); // ~390 KB, under the cap
    expect(Buffer.byteLength(large)).toBeLessThan(MAX_CONFIG_BYTES);
    const run = (text: string) => () => expect(() => parseConfig(text, { env: {} })).toThrow("unknown key 'junk'");
    run(small)(); // warm-up (JIT)
    const tSmall = cpuMs(run(small), 5);
    const tLarge = cpuMs(run(large), 3);
    // Linear: 4-7x measured. Quadratic (the yaml package's uniqueKeys check, uniqueKeys on): 40x measured.
    // 8x the keys leaves room for a loaded machine on both sides: at 4x the
    // keys with a bound of 8, a linear parse measured 8.98 once under CI load.
    expect(tLarge / tSmall).toBeLessThan(16);
  }, 60_000);

  const DEEP = "mappings or lists nested more than 64 deep (a config needs fewer than 10)";

  test("nesting deeper than 64 is refused at its line (the walk: the mapping at the root is one level)", () => {
    const nested = (depth: number) => `${B}x-deep: ${"[".repeat(depth)}${"]".repeat(depth)}\n`;
    expect(parseConfig(nested(60), { env: {} }).buckets).toHaveLength(1);
    expect(issues(nested(64))).toContainEqual(expect.objectContaining({ message: DEEP, line: 5 }));
  });

  // The yaml package's parser recurses at each level: a 1 MiB line of brackets took 4 s of CPU (20 s
  // on a loaded host) to be refused "invalid YAML: ... nested more than 64 deep" at the column where
  // its stack overflowed (5993), and 400,000 `- ` on one line ended the load with "cannot load
  // config: cannot load config: Maximum call stack size exceeded". Now refused before it parses, at
  // the bracket or indicator that passes 64.
  test("a 1 MiB line nested past 64 (brackets, or compact `- - -`) is refused at once, at the column where it passes 64", () => {
    for (const [text, line, column] of [
      [`x: ${"[".repeat(500_000)}${"]".repeat(500_000)}\n${B}`, 1, 3 + 65],
      [`x: ${"{a: ".repeat(200_000)}1${"}".repeat(200_000)}\n${B}`, 1, 3 + 64 * 4 + 1],
      [`${B}x:\n  ${"- ".repeat(400_000)}a\n`, 6, 3 + 64 * 2],
      [`${B}x:\n  - - ? - ${"[".repeat(70)}${"]".repeat(70)}\n`, 6, 11 + 60],
    ] as const) {
      expect(Buffer.byteLength(text)).toBeLessThan(MAX_CONFIG_BYTES);
      let err: ConfigError | undefined;
      const cpu = cpuMs(() => void (err = error(text, "c.yaml")), 1);
      expect(err!.issues).toEqual([{ path: "", message: DEEP, line, column }]);
      expect(err!.message.split("\n")[0]).toBe(`c.yaml:${line}:${column}: ${DEEP}`);
      expect(cpu).toBeLessThan(500); // 0.1-1 ms measured; 2-4 s before
    }
  });

  test("brackets and dashes that open nothing are not counted: in quotes, block scalars, plain values and comments", () => {
    const b = "[".repeat(100);
    const text = `${B}x-a: "${b}{{"\nx-b: '${b}'\nx-c: |\n  ${b}\n  ${"- ".repeat(100)}\nx-d: a${b}\nx-e: a ${"- ".repeat(100)}b\n# ${b}\nx-f: [${'"[[[[[[[[[[", '.repeat(10)}'[[[[[[[[[['] # ${b}\nx-g: [[[[${b.replace(/\[/g, "a")}]]]]\n`;
    expect(parseConfig(text, { env: {} }).buckets).toHaveLength(1);
  });

  test("a large legal config (18k keys in 2,000 buckets, ~330 KB) parses", () => {
    const parts = ["buckets:\n"];
    for (let i = 0; i < 2000; i++)
      parts.push(
        `  - { name: b${i}, path_prefix: /p${i}, s3: { bucket: d${i}, endpoint: "http://127.0.0.1:9000" },` +
          ` auth: { enabled: false }, ip_filter: { allowlist: ["10.${i % 256}.0.0/16"] } }\n`,
      );
    const text = parts.join("");
    expect(text.length).toBeGreaterThan(250_000);
    expect(text.length).toBeLessThan(350_000);
    const c = parseConfig(text, { env: {} });
    expect(c.buckets).toHaveLength(2000);
    expect(c.buckets[1999].path_prefix).toBe("/p1999");
  }, 30_000);
});

// A YAML syntax error used to print the yaml package's message, which quotes the next token:
// `Unexpected double-quoted-scalar token in YAML stream: "\"SEKRET-jwt-…\""` in --check and in the
// reload-failure log line. Every message is now the token's kind, file:line:column and a hint.
describe("YAML syntax errors never quote the document", () => {
  const S = "SEKRET";
  for (const [name, text, want] of [
    ["a stray bracket before a quoted secret", `server: { port: 0 } ]\njwt:\n  secret: "${S}-jwt-0123456789abcdef0123456789abcdef"\n${B}`, "unexpected double-quoted scalar"],
    ["a plain secret after a stray bracket", `server: { port: 0 } ]\njwt:\n  secret: ${S}-jwt\n${B}`, "unexpected plain scalar"],
    ["an invalid escape in a quoted secret", `${B}jwt:\n  secret: "${S}\\q-abc"\n`, "invalid escape sequence"],
    ["a block scalar header followed by text", `${B}jwt:\n  secret: |${S}\n    x\n`, "block scalar header"],
    ["a plain value starting with @", `${B}jwt:\n  secret: @${S}\n`, "cannot start with @"],
  ] as const) {
    test(name, () => {
      const err = error(text, "c.yaml");
      expect(err.message).not.toContain(S);
      expect(err.message).toContain(want);
    });
  }

  test("each error has its line and column; only ten are listed", () => {
    const err = error(`server: { port: 0 } ]\njwt:\n  secret: "${S}-0123456789abcdef0123456789abcdef"\n  enabled: true\n  algorithm: HS256\n${B}`, "c.yaml");
    const lines = err.message.split("\n");
    expect(lines[0]).toBe("c.yaml:1:21: invalid YAML: unexpected ']' (check the brackets, quotes and indentation here and on the line before)");
    expect(lines).toContain("c.yaml:3:11: invalid YAML: unexpected double-quoted scalar (check the brackets, quotes and indentation here and on the line before)");
    expect(err.issues.length).toBe(11);
    for (const i of err.issues) expect(i.message).not.toContain(S);
  });
});

describe("messages that say where and what to do", () => {
  // M1: "Source contains multiple documents; please use YAML.parseAllDocuments()"
  test("a second YAML document (also a trailing ---) is named with the line it starts on", () => {
    const two = error(`${B}---\n${B}`, "c.yaml");
    expect(two.message).toBe("c.yaml:5: invalid YAML: the file must hold one YAML document, and a second one starts on line 5 (a `---` line, or what follows a `...` line): remove that line, and put the second document in a file of its own");
    const trailing = error(`${B}---\n`, "c.yaml");
    expect(trailing.message).toBe("c.yaml:5: invalid YAML: the file must hold one YAML document, and a second one starts on line 5 (a `---` line, or what follows a `...` line): remove that line");
    expect(() => parseConfig(`---\n${B}`, { env: {} })).not.toThrow();
  });

  // M2: "Merge sources must be maps or map aliases", with no line and no path
  test("a merge key whose value is no mapping is named with its path and line", () => {
    const err = error(`buckets:\n  - name: a\n    path_prefix: /a\n    s3:\n      <<: "notamap"\n      bucket: test-public-bucket\n  - <<: 5\n`, "c.yaml");
    expect(err.message.split("\n")).toEqual([
      "c.yaml:5: buckets[0].s3.<<: a merge key (<<) takes a mapping, an alias of one (*name) or a list of them",
      "c.yaml:7: buckets[1].<<: a merge key (<<) takes a mapping, an alias of one (*name) or a list of them",
    ]);
    // what does merge still does
    const ok = parseConfig(`x-s3: &s3 { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\nx-more: &more { region: eu-west-1 }\nbuckets:\n  - name: a\n    path_prefix: /a\n    s3: { <<: [*s3, *more] }\n  - name: b\n    path_prefix: /b\n    s3:\n      <<: *s3\n`, { env: {} });
    expect(ok.buckets.map((b) => [b.s3.bucket, b.s3.region])).toEqual([["bkt", "eu-west-1"], ["bkt", expect.any(String)]]);
  });

  test("a merge key naming an anchor that is not defined before it says so (not that an alias is no merge source)", () => {
    const err = error(`buckets:\n  - <<: *base\n    name: a\n    path_prefix: /a\n    s3: { <<: [*s3, *other], bucket: b, endpoint: "http://127.0.0.1:9000" }\nx: &base { name: z }\n`, "c.yaml");
    expect(err.message.split("\n")).toEqual([
      "c.yaml:2: buckets[0].<<: a merge key (<<) names an alias (*name) with no anchor (&name) before it: define the anchor earlier in the file",
      "c.yaml:5: buckets[0].s3.<<: a merge key (<<) names an alias (*name) with no anchor (&name) before it: define the anchor earlier in the file",
    ]);
    // (the anchor's name is never echoed: an unquoted `*...` may be a secret)
    expect(err.message).not.toContain("base");
    expect(err.message).not.toContain("other");
  });

  test("a quoted \"${VAR:-default}\" where a number goes is quoted back with its default (the advice had dropped it: `write ${PORTX} without quotes`)", () => {
    expect(issues(`server:\n  port: "\${PORTX:-8081}"\n${B}`)).toEqual([
      {
        path: "server.port",
        line: 2,
        message:
          "\"${PORTX:-8081}\" is quoted, so its value is a string, and a number or a boolean goes here: write ${PORTX:-8081} without quotes, and if it is inside { } or [ ], write that mapping in block style, one key per line (there an unquoted ${PORTX:-8081} takes its value's type)",
      },
    ]);
    // and the advice works: unquoted, in block style, the default is a number
    expect(parseConfig(`server:\n  port: \${PORTX:-8081}\n${B}`, { env: {} }).server.port).toBe(8081);
  });

  // M3: the flow-style advice went in a circle: quoting "${PORTV}" then said "write it without quotes"
  test("a placeholder in flow style: the advice leads to block style for a number, and a quoted one says so too", () => {
    const flow = error(`server: { address: 127.0.0.1, port: \${PORTV} }\n${B}`).issues;
    expect(flow[0]!.message).toContain("for a number or a boolean (a port, a size, true/false) write that mapping in block style");
    let quoted: ConfigError | undefined;
    try {
      parseConfig(`server: { address: 127.0.0.1, port: "\${PORTV}" }\n${B}`, { env: { PORTV: "18080" } });
    } catch (err) {
      quoted = err as ConfigError;
    }
    expect(quoted).toBeInstanceOf(ConfigError);
    expect(quoted!.issues).toEqual([
      {
        path: "server.port",
        line: 1,
        message:
          "\"${PORTV}\" is quoted, so its value is a string, and a number or a boolean goes here: write ${PORTV} without quotes, and if it is inside { } or [ ], write that mapping in block style, one key per line (there an unquoted ${PORTV} takes its value's type)",
      },
    ]);
    // ... which works
    const c = parseConfig(`server:\n  address: 127.0.0.1\n  port: \${PORTV}\n${B}`, { env: { PORTV: "18080" } });
    expect(c.server.port).toBe(18080);
  });
});
