#!/usr/bin/env bun
/**
 * Builds the single-file executables:
 *
 *   dist/yatagarasu-linux-x64     (glibc, x86-64)
 *   dist/yatagarasu-linux-arm64   (glibc, aarch64)
 *
 * Usage:
 *   bun run build                      both targets
 *   bun run build --target arm64       one target (also: x64, amd64, aarch64, all; repeatable or comma-separated)
 *   bun build.ts --entry PATH          another entry point (default src/main.ts)
 *   bun build.ts --outdir DIR          another output folder (default dist)
 *   bun build.ts --baseline            x64 for CPUs without AVX2 (same output name)
 *   bun build.ts --no-bytecode         skip the precompiled bytecode (slower start, smaller binary)
 *   bun build.ts --no-smoke            do not run the host-native binary's `--version` after building
 *
 * Cross-compiling fetches Bun's runtime for the other target (the @oven/bun-linux-* package of the
 * same Bun version) from the npm registry once and caches it in ~/.bun/install/cache.
 *
 * Embedded constants (use with `typeof X === "string" ? X : fallback`, they are absent under `bun src/main.ts`):
 *   YATAGARASU_VERSION       package.json version
 *   YATAGARASU_COMMIT        $YATAGARASU_COMMIT if set, else the short git commit, else "unknown"
 *   YATAGARASU_BUILD_TARGET  e.g. "linux-x64"
 *
 * Exits non-zero when any target fails to build or fails its checks.
 */
import { parseArgs } from "node:util";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pkg from "./package.json" with { type: "json" };
import { SHIPPED_HEADER_LIMIT } from "./src/http/header-limit.ts";

export const BINARY_NAME = "yatagarasu";
export const ARCHES = ["x64", "arm64"] as const;
export type Arch = (typeof ARCHES)[number];
export const DEFAULT_ENTRY = "src/main.ts";
/**
 * Worker-thread entry points, bundled beside the main one: Bun only embeds a worker in the
 * executable when it is listed as an entry point. Inside the executable they keep their path
 * relative to src/ (src/config/load-worker.ts → /$bunfs/root/config/load-worker.js; see
 * src/config/offthread.ts, which relies on that layout).
 */
export const WORKER_ENTRIES = ["src/config/load-worker.ts"];
export const DEFAULT_OUTDIR = "dist";

/** The file name build.ts writes for an architecture (the Dockerfile and the packaging tests rely on it). */
export function artifactName(arch: Arch): string {
  return `${BINARY_NAME}-linux-${arch}`;
}

const ARCH_ALIASES: Record<string, Arch> = {
  x64: "x64",
  amd64: "x64",
  x86_64: "x64",
  arm64: "arm64",
  aarch64: "arm64",
};

/** ELF e_machine values, to prove a file is really for the architecture its name says. */
const ELF_MACHINE: Record<Arch, number> = { x64: 0x3e, arm64: 0xb7 };

export function compileTarget(arch: Arch, baseline = false): Bun.Build.CompileTarget {
  if (arch === "x64") return baseline ? "bun-linux-x64-baseline" : "bun-linux-x64";
  return "bun-linux-arm64";
}

/** Parses `--target` values: aliases, "all", comma lists. Throws on an unknown name. */
export function parseTargets(values: readonly string[]): Arch[] {
  if (values.length === 0) return [...ARCHES];
  const out = new Set<Arch>();
  for (const v of values.flatMap((s) => s.split(","))) {
    const name = v.trim().toLowerCase();
    if (name === "") continue;
    if (name === "all") ARCHES.forEach((a) => out.add(a));
    else if (ARCH_ALIASES[name]) out.add(ARCH_ALIASES[name]);
    else throw new Error(`unknown target '${v}': use x64, arm64 or all`);
  }
  if (out.size === 0) throw new Error("no target given");
  return ARCHES.filter((a) => out.has(a));
}

function gitCommit(): string {
  const fromEnv = process.env.YATAGARASU_COMMIT?.trim();
  if (fromEnv && fromEnv !== "unknown") return fromEnv;
  try {
    const r = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { stdout: "pipe", stderr: "ignore" });
    const s = r.stdout.toString().trim();
    return r.exitCode === 0 && /^[0-9a-f]+$/.test(s) ? s : "unknown";
  } catch {
    return "unknown";
  }
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

async function elfMachine(path: string): Promise<number | undefined> {
  const head = new Uint8Array(await Bun.file(path).slice(0, 20).arrayBuffer());
  if (head.length < 20 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return undefined;
  return head[18]! | (head[19]! << 8);
}

function hostArch(): Arch | undefined {
  if (process.platform !== "linux") return undefined;
  return ARCH_ALIASES[process.arch];
}

interface Built {
  arch: Arch;
  /** The commit embedded (what --version names). */
  commit: string;
  path: string;
  bytes: number;
  ms: number;
}

async function buildOne(arch: Arch, opts: { entry: string; outdir: string; bytecode: boolean; baseline: boolean; commit: string }): Promise<Built> {
  const outfile = join(opts.outdir, artifactName(arch));
  // Never leave a stale binary from an earlier build looking like this build's output.
  rmSync(outfile, { force: true });
  rmSync(`${outfile}.map`, { force: true });
  const target = compileTarget(arch, opts.baseline);
  const t0 = performance.now();
  const result = await Bun.build({
    entrypoints: [opts.entry, ...WORKER_ENTRIES.map((e) => resolve(import.meta.dir, e))],
    target: "bun",
    // Bytecode needs ES module output when the entry uses top-level await.
    format: "esm",
    bytecode: opts.bytecode,
    // keepNames: class and function names stay readable in logs and `error.name`-style checks.
    minify: { whitespace: true, syntax: true, identifiers: true, keepNames: true },
    // The source map is embedded in the executable, so stack traces name src/ files and lines.
    sourcemap: "linked",
    define: {
      YATAGARASU_VERSION: JSON.stringify(pkg.version),
      YATAGARASU_COMMIT: JSON.stringify(opts.commit),
      YATAGARASU_BUILD_TARGET: JSON.stringify(`linux-${arch}`),
    },
    compile: {
      target,
      outfile,
      // Bun.serve's own request-head limit (16 KiB by default) raised to the default
      // server.security_limits.max_header_size (src/proxy/phases/guard.ts).
      execArgv: [`--max-http-header-size=${SHIPPED_HEADER_LIMIT}`],
      // A server binary must not pick up .env or bunfig.toml from whatever directory it is started in.
      autoloadDotenv: false,
      autoloadBunfig: false,
      autoloadTsconfig: false,
      autoloadPackageJson: false,
    },
    throw: false,
  });
  const ms = performance.now() - t0;
  if (!result.success) {
    const msgs = result.logs
      .map((l) => {
        const pos = l.position ? `${l.position.file}:${l.position.line}:${l.position.column}: ` : "";
        return `    ${pos}${l.level}: ${l.message}`;
      })
      .join("\n");
    throw new Error(`${target}: build failed\n${msgs}`);
  }
  // The maps are already inside the binary; the copies beside it (one per entry point) are not shipped.
  rmSync(`${outfile}.map`, { force: true });
  for (const o of result.outputs) if (o.path.endsWith(".map")) rmSync(o.path, { force: true });
  if (!existsSync(outfile)) throw new Error(`${target}: build reported success but ${outfile} does not exist`);
  const machine = await elfMachine(outfile);
  if (machine !== ELF_MACHINE[arch]) {
    throw new Error(`${target}: ${outfile} is not an ELF executable for ${arch} (e_machine=${machine ?? "not ELF"})`);
  }
  return { arch, commit: opts.commit, path: outfile, bytes: statSync(outfile).size, ms };
}

/** Runs the binary built for this machine with --version and checks its answer. */
function smoke(b: Built): void {
  const r = Bun.spawnSync([b.path, "--version"], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  const out = r.stdout.toString().trim();
  const want = `${BINARY_NAME} ${pkg.version} (commit ${b.commit}, linux-${b.arch})`;
  if (r.exitCode !== 0 || out !== want) {
    throw new Error(
      `${b.path} --version: expected exit 0 and '${want}', got exit ${r.exitCode} and '${out}'${r.stderr.length ? `\nstderr: ${r.stderr.toString().trim()}` : ""}`,
    );
  }
  // --check loads the config on the worker thread a reload uses: proves the worker entry is embedded.
  const dir = mkdtempSync(join(tmpdir(), "yata-build-"));
  try {
    const config = join(dir, "config.yaml");
    writeFileSync(config, 'buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9" }\n');
    const c = Bun.spawnSync([b.path, "--check", "--config", config], { stdout: "pipe", stderr: "pipe", cwd: dir });
    if (c.exitCode !== 0) throw new Error(`${b.path} --check (config loader worker): exit ${c.exitCode}\nstderr: ${c.stderr.toString().trim()}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * SHA256SUMS lists what this build produced, never a binary an earlier build left beside it (a
 * `--target arm64` run keeps an older dist/yatagarasu-linux-x64, of another commit).
 */
async function writeChecksums(outdir: string, built: readonly Built[]): Promise<void> {
  const lines: string[] = [];
  for (const { arch } of built) {
    const p = join(outdir, artifactName(arch));
    const h = new Bun.CryptoHasher("sha256");
    // Stream the file so a 100 MiB binary is not held twice in memory.
    for await (const chunk of Bun.file(p).stream()) h.update(chunk);
    lines.push(`${h.digest("hex")}  ${artifactName(arch)}`);
  }
  const sums = join(outdir, "SHA256SUMS");
  if (lines.length === 0) {
    rmSync(sums, { force: true });
    return;
  }
  await Bun.write(sums, lines.join("\n") + "\n");
}

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        target: { type: "string", multiple: true, short: "t" },
        entry: { type: "string" },
        outdir: { type: "string" },
        baseline: { type: "boolean", default: false },
        "no-bytecode": { type: "boolean", default: false },
        "no-smoke": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    console.error(`build: ${(e as Error).message}`);
    return 2;
  }
  if (args.help) {
    console.log("usage: bun build.ts [--target x64|arm64|all]... [--entry PATH] [--outdir DIR] [--baseline] [--no-bytecode] [--no-smoke]");
    return 0;
  }
  let arches: Arch[];
  try {
    arches = parseTargets(args.target ?? []);
  } catch (e) {
    console.error(`build: ${(e as Error).message}`);
    return 2;
  }
  const entry = resolve(args.entry ?? DEFAULT_ENTRY);
  const outdir = resolve(args.outdir ?? DEFAULT_OUTDIR);
  if (!existsSync(entry)) {
    console.error(`build: entry point ${entry} does not exist`);
    return 1;
  }
  if (typeof pkg.version !== "string" || pkg.version === "") {
    console.error("build: package.json has no version");
    return 1;
  }
  mkdirSync(outdir, { recursive: true });
  const commit = gitCommit();
  const bytecode = !args["no-bytecode"];
  console.log(
    `building ${BINARY_NAME} ${pkg.version} (${commit}) with Bun ${Bun.version} from ${entry}: ${arches.join(", ")}${bytecode ? "" : " (no bytecode)"}${args.baseline ? " (x64 baseline)" : ""}`,
  );

  const built: Built[] = [];
  let failures = 0;
  const host = hostArch();
  for (const arch of arches) {
    try {
      const b = await buildOne(arch, { entry, outdir, bytecode, baseline: args.baseline, commit });
      if (arch === host && !args["no-smoke"]) smoke(b);
      built.push(b);
      console.log(`  ok   ${artifactName(arch).padEnd(24)} ${mib(b.bytes).padStart(10)}  ${(b.ms / 1000).toFixed(1)}s${arch === host && !args["no-smoke"] ? "  (--version checked)" : ""}`);
    } catch (e) {
      failures++;
      console.error(`  FAIL ${artifactName(arch)}: ${(e as Error).message}`);
      if (arch !== host && /download|fetch|registry|network|ENOTFOUND|ECONN/i.test((e as Error).message)) {
        console.error(
          `       cross-compiling needs @oven/bun-linux-${arch === "arm64" ? "aarch64" : "x64"}@${Bun.version} from the npm registry (cached in ~/.bun/install/cache)`,
        );
      }
    }
  }
  await writeChecksums(outdir, built);
  const present = readdirSync(outdir).filter((f) => f.startsWith(`${BINARY_NAME}-linux-`));
  console.log(`${built.length} built, ${failures} failed; ${outdir} holds: ${present.join(", ") || "nothing"}`);
  return failures === 0 ? 0 : 1;
}

if (import.meta.main) {
  process.exit(await main(process.argv.slice(2)));
}
