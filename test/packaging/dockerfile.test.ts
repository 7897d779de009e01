/**
 * Static checks of the Dockerfile and .dockerignore against build.ts (there is no Docker engine
 * or hadolint on the build machines). test/packaging/docker-build-stage.ts runs the build stage's
 * commands for real on a copy of the build context.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { ARCHES, BINARY_NAME, DEFAULT_ENTRY, DEFAULT_OUTDIR, artifactName, compileTarget, parseTargets } from "../../build.ts";
import { execForm, flagsAndWords, isIgnored, parseDockerfile, parseDockerignore, type Stage } from "./dockerfile.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const ROOT = join(import.meta.dir, "..", "..");
const dockerfileText = await Bun.file(join(ROOT, "Dockerfile")).text();
const ignoreRules = parseDockerignore(await Bun.file(join(ROOT, ".dockerignore")).text());
const { preamble, stages } = parseDockerfile(dockerfileText);
const build = stages[0] as Stage;
const runtime = stages.at(-1) as Stage;
const INSTALLED = "/usr/local/bin/yatagarasu";

const only = (stage: Stage, cmd: string) => stage.instructions.filter((i) => i.cmd === cmd);

describe("build.ts artifact names", () => {
  test("are dist/yatagarasu-linux-x64 and dist/yatagarasu-linux-arm64", () => {
    expect(DEFAULT_OUTDIR).toBe("dist");
    expect(ARCHES.map((a) => `${DEFAULT_OUTDIR}/${artifactName(a)}`)).toEqual(["dist/yatagarasu-linux-x64", "dist/yatagarasu-linux-arm64"]);
  });

  test("map to Bun's linux compile targets", () => {
    expect(compileTarget("x64")).toBe("bun-linux-x64");
    expect(compileTarget("x64", true)).toBe("bun-linux-x64-baseline");
    expect(compileTarget("arm64")).toBe("bun-linux-arm64");
  });

  test("--target accepts Docker's TARGETARCH names and aliases", () => {
    expect(parseTargets(["amd64"])).toEqual(["x64"]);
    expect(parseTargets(["aarch64"])).toEqual(["arm64"]);
    expect(parseTargets(["arm64,x64"])).toEqual(["x64", "arm64"]);
    expect(parseTargets(["all"])).toEqual(["x64", "arm64"]);
    expect(parseTargets([])).toEqual(["x64", "arm64"]);
    expect(() => parseTargets(["riscv64"])).toThrow(/unknown target/);
  });

  test("SHA256SUMS lists only what this build produced, not an older binary of the other arch left in the folder", async () => {
    const dir = mkdtempSync(join(tmpdir(), "yata-sums-"));
    try {
      const entry = join(dir, "entry.ts");
      writeFileSync(entry, 'console.log("hi");\n');
      const other = ARCHES.find((a) => a !== "x64")!;
      writeFileSync(join(dir, artifactName(other)), "an older build\n");
      const p = Bun.spawn(["bun", "build.ts", "--target", "x64", "--entry", entry, "--outdir", dir, "--no-smoke", "--no-bytecode"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
      expect(await p.exited).toBe(0);
      const sums = readFileSync(join(dir, "SHA256SUMS"), "utf8");
      const hash = new Bun.CryptoHasher("sha256").update(readFileSync(join(dir, artifactName("x64")))).digest("hex");
      expect(sums).toBe(`${hash}  ${artifactName("x64")}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("Dockerfile stages", () => {
  test("has a bun build stage and a distroless glibc runtime stage", () => {
    expect(stages.length).toBe(2);
    expect(build.name).toBe("build");
    expect(build.image).toMatch(/^oven\/bun:/);
    // base, not static: the executable links glibc dynamically.
    expect(runtime.image).toBe("gcr.io/distroless/base-debian12");
  });

  test("builds on the build machine's platform and cross-compiles for TARGETARCH", () => {
    expect(build.platform).toBe("$BUILDPLATFORM");
    expect(only(build, "ARG").map((i) => i.args)).toContain("TARGETARCH");
  });

  test("pins the same Bun minor version as this machine's", () => {
    const arg = preamble.find((i) => i.cmd === "ARG" && i.args.startsWith("BUN_VERSION="));
    expect(arg).toBeDefined();
    expect(build.image).toBe("oven/bun:${BUN_VERSION}");
    const pinned = arg!.args.split("=")[1]!;
    expect(pinned.split(".").slice(0, 2).join(".")).toBe(Bun.version.split(".").slice(0, 2).join("."));
  });

  test("installs with the frozen lockfile, then runs the build script for TARGETARCH", () => {
    const runs = only(build, "RUN").map((i) => i.args);
    expect(runs.some((r) => /\bbun install --frozen-lockfile\b/.test(r))).toBe(true);
    expect(runs.some((r) => /\bbun run build --target "\$\{TARGETARCH/.test(r))).toBe(true);
  });

  test("picks the binary by the exact names build.ts writes", () => {
    const run = only(build, "RUN").find((i) => i.args.includes("bun run build"))!;
    const m = /"(dist\/yatagarasu-linux-)\$\{arch\}"/.exec(run.args);
    expect(m).not.toBeNull();
    for (const arch of ARCHES) {
      expect(run.args).toMatch(new RegExp(`\\)\\s*arch=${arch}\\s*;;`));
      expect(`${m![1]}${arch}`).toBe(`${DEFAULT_OUTDIR}/${artifactName(arch)}`);
    }
    expect(run.args).toMatch(/install -D -m 0755 "dist\/yatagarasu-linux-\$\{arch\}" \/out\/yatagarasu/);
  });

  test("copies only files that exist and that .dockerignore lets into the context", () => {
    const copies = only(build, "COPY");
    expect(copies.length).toBeGreaterThan(0);
    for (const c of copies) {
      const { flags, words } = flagsAndWords(c.args);
      expect(flags.from).toBeUndefined();
      for (const src of words.slice(0, -1)) {
        expect(existsSync(join(ROOT, src))).toBe(true);
        expect(isIgnored(ignoreRules, src)).toBe(false);
      }
    }
  });

  test("copies build.ts, the lockfile and the entry point's folder into the build stage", () => {
    const copied = only(build, "COPY").flatMap((c) => flagsAndWords(c.args).words.slice(0, -1));
    for (const need of ["package.json", "bun.lock", "build.ts", "tsconfig.json", DEFAULT_ENTRY.split("/")[0]!]) {
      expect(copied).toContain(need);
    }
  });

  test("runtime copies the build stage's binary to /usr/local/bin/yatagarasu, and the disk-cache and audit folders owned by nonroot (65532)", () => {
    const copies = only(runtime, "COPY").map((c) => flagsAndWords(c.args));
    expect(copies).toEqual([
      { flags: { from: "build" }, words: ["/out/yatagarasu", INSTALLED] },
      { flags: { from: "build", chown: "65532:65532" }, words: ["/out/state/cache", "/var/cache/yatagarasu"] },
      { flags: { from: "build", chown: "65532:65532" }, words: ["/out/state/log", "/var/log/yatagarasu"] },
    ]);
    const runs = only(build, "RUN").map((r) => r.args).join("\n");
    expect(runs).toMatch(/install -d -m 0750 -o 65532 -g 65532 \/out\/state\/cache \/out\/state\/log/);
    expect(INSTALLED.endsWith(`/${BINARY_NAME}`)).toBe(true);
  });

  test("raises fetch's concurrent-request cap (read by Bun only at start-up) to the default max_concurrent_requests", () => {
    const envs = only(runtime, "ENV").map((i) => i.args);
    expect(envs).toContain("BUN_CONFIG_MAX_HTTP_REQUESTS=1024");
  });

  test("runs as nonroot, exposes 8080, 8081 and 9090", () => {
    expect(only(runtime, "USER").map((i) => i.args)).toEqual(["nonroot:nonroot"]);
    expect(only(runtime, "EXPOSE").flatMap((i) => i.args.split(/\s+/))).toEqual(["8080", "8081", "9090"]);
  });

  test("entrypoint is the binary (exec form), default command names the config", () => {
    expect(only(runtime, "ENTRYPOINT").map((i) => execForm(i.args))).toEqual([[INSTALLED]]);
    expect(only(runtime, "CMD").map((i) => execForm(i.args))).toEqual([["--config", "/etc/yatagarasu/config.yaml"]]);
  });

  test("healthcheck runs the binary itself (no shell, no curl in distroless)", () => {
    const hc = only(runtime, "HEALTHCHECK");
    expect(hc.length).toBe(1);
    const at = hc[0]!.args.indexOf("CMD ");
    expect(at).toBeGreaterThan(-1);
    const argv = execForm(hc[0]!.args.slice(at + 4));
    expect(argv).toBeDefined();
    expect(argv![0]).toBe(INSTALLED);
    expect(argv![1]).toBe("--healthcheck");
    // The URL it probes is on the exposed proxy port.
    if (argv![2] !== undefined) expect(new URL(argv![2]).port).toBe("8080");
    for (const opt of ["--interval=", "--timeout=", "--retries="]) expect(hc[0]!.args).toContain(opt);
  });

  test("has no shell-form RUN in the runtime stage (distroless has no shell)", () => {
    expect(only(runtime, "RUN")).toEqual([]);
  });
});

describe(".dockerignore", () => {
  function contextFiles(dir = ROOT, out: string[] = []): string[] {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      const rel = relative(ROOT, full);
      if (rel === ".git" || rel === "node_modules") continue;
      if (statSync(full).isDirectory()) contextFiles(full, out);
      else out.push(rel);
    }
    return out;
  }

  test("keeps node_modules, dist, .git, tests and local configs out of the context", () => {
    for (const p of ["node_modules/zod/package.json", "dist/yatagarasu-linux-x64", ".git/HEAD", "test/packaging/rootfs.sh", "config.yaml", ".env", "src/.env.local"]) {
      expect(isIgnored(ignoreRules, p)).toBe(true);
    }
  });

  test("lets in everything the build reads", () => {
    for (const p of ["package.json", "bun.lock", "bunfig.toml", "tsconfig.json", "build.ts", DEFAULT_ENTRY, "src/config/load.ts"]) {
      expect(isIgnored(ignoreRules, p)).toBe(false);
    }
  });

  test("every file under src/ except env files is in the context", () => {
    const src = contextFiles().filter((p) => p.startsWith("src/"));
    expect(src.filter((p) => isIgnored(ignoreRules, p) && !/(^|\/)\.env/.test(p))).toEqual([]);
  });
});

describe("Dockerfile reader", () => {
  test("joins continuations, drops comments and keeps the keyword's line", () => {
    const { stages: s } = parseDockerfile("# c\nFROM a AS b\nRUN x \\\n  # inner comment\n  && y\n");
    expect(s[0]!.name).toBe("b");
    expect(s[0]!.instructions).toEqual([{ cmd: "RUN", args: "x && y", line: 3 }]);
  });

  test("dockerignore: last matching rule wins, parents count, ** spans folders", () => {
    const rules = parseDockerignore("*\n!src/\nsrc/**/*.secret\n!keep/a.txt\n");
    expect(isIgnored(rules, "src/a/b.ts")).toBe(false);
    expect(isIgnored(rules, "src/x.secret")).toBe(true);
    expect(isIgnored(rules, "src/a/b/x.secret")).toBe(true);
    expect(isIgnored(rules, "other/file")).toBe(true);
    expect(isIgnored(rules, "keep/a.txt")).toBe(false);
  });
});
