#!/usr/bin/env bun
/**
 * Runs the Dockerfile's build stage without Docker: copies the build context that .dockerignore
 * lets through, replays the stage's WORKDIR/COPY/RUN on it (RUN with /bin/sh -c, --mount flags
 * dropped, /out redirected into a temp folder), once per TARGETARCH, and checks the binary that
 * the runtime stage would copy. Catches a .dockerignore that hides a file the build needs, a
 * lockfile that is out of date, and a Dockerfile that picks the wrong artifact name.
 *
 *   bun test/packaging/docker-build-stage.ts [amd64] [arm64]
 *
 * Prints PASS/FAIL lines and "SUMMARY docker-build-stage pass=N fail=N"; exits 1 when a check failed.
 */
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix, relative } from "node:path";
import { isIgnored, parseDockerfile, parseDockerignore, flagsAndWords, type Stage } from "./dockerfile.ts";
import pkg from "../../package.json" with { type: "json" };

const ROOT = join(import.meta.dir, "..", "..");
let passed = 0;
let failed = 0;
const pass = (name: string) => {
  passed++;
  console.log(`PASS: ${name}`);
};
const fail = (name: string, why: string) => {
  failed++;
  console.log(`FAIL: ${name}: ${why}`);
};

/** Copies the files of the build context (repo minus .dockerignore) into dest; returns their count. */
function copyContext(dest: string): number {
  const rules = parseDockerignore(existsSync(join(ROOT, ".dockerignore")) ? readFileSync(join(ROOT, ".dockerignore"), "utf8") : "");
  let n = 0;
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      const rel = relative(ROOT, full).split("\\").join("/");
      const isDir = statSync(full).isDirectory();
      // Big folders that are ignored as a whole are not walked (the Dockerfile re-includes nothing inside them).
      if (isDir && (rel === ".git" || rel === "node_modules" || rel === "dist") && isIgnored(rules, rel)) continue;
      if (isDir) walk(full);
      else if (!isIgnored(rules, rel)) {
        mkdirSync(dirname(join(dest, rel)), { recursive: true });
        cpSync(full, join(dest, rel));
        n++;
      }
    }
  };
  walk(ROOT);
  return n;
}

function elfMachine(path: string): number | undefined {
  const fd = openSync(path, "r");
  const buf = Buffer.alloc(20);
  readSync(fd, buf, 0, 20, 0);
  closeSync(fd);
  if (buf.readUInt32BE(0) !== 0x7f454c46) return undefined;
  return buf.readUInt16LE(18);
}

async function replay(stage: Stage, context: string, scratch: string, targetArch: string): Promise<string | undefined> {
  const fsRoot = join(scratch, "fs"); // stands in for the stage's / (only WORKDIR and /out are used)
  const args: Record<string, string> = { TARGETARCH: targetArch, BUILDPLATFORM: `linux/${process.arch === "arm64" ? "arm64" : "amd64"}` };
  let workdir = "/";
  const mapPath = (p: string) => join(fsRoot, posix.isAbsolute(p) ? p : posix.join(workdir, p));
  for (const ins of stage.instructions) {
    const where = `Dockerfile:${ins.line} ${ins.cmd}`;
    if (ins.cmd === "ARG") {
      const [name, def] = ins.args.split("=", 2) as [string, string | undefined];
      if (!(name in args)) args[name] = def ?? "";
    } else if (ins.cmd === "WORKDIR") {
      workdir = posix.resolve(workdir, ins.args);
      mkdirSync(mapPath("."), { recursive: true });
    } else if (ins.cmd === "ENV") {
      const m = /^(\S+?)[= ](.*)$/.exec(ins.args);
      if (m) args[m[1]!] = m[2]!;
    } else if (ins.cmd === "COPY") {
      const { flags, words } = flagsAndWords(ins.args);
      if (flags.from) return `${where}: COPY --from is not supported by this replay`;
      const dest = words.at(-1)!;
      for (const src of words.slice(0, -1)) {
        const from = join(context, src);
        if (!existsSync(from)) return `${where}: '${src}' is not in the build context (missing, or excluded by .dockerignore)`;
        const toDir = dest.endsWith("/") || words.length > 2;
        const to = statSync(from).isDirectory() ? mapPath(dest) : toDir ? join(mapPath(dest), posix.basename(src)) : mapPath(dest);
        mkdirSync(statSync(from).isDirectory() ? to : dirname(to), { recursive: true });
        cpSync(from, to, { recursive: true });
      }
    } else if (ins.cmd === "RUN") {
      const { words } = flagsAndWords(ins.args);
      // Keep the command text as written (flagsAndWords only splits the leading --mount flags off).
      const cmdText = ins.args.replace(/^(--\S+\s+)+/, "").replace(/(^|[\s"'=])\/out\//g, `$1${fsRoot}/out/`);
      if (words.length === 0) return `${where}: empty RUN`;
      const proc = Bun.spawn(["/bin/sh", "-c", cmdText], {
        cwd: mapPath("."),
        env: { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", HOME: process.env.HOME ?? "/root", ...args },
        stdout: "pipe",
        stderr: "pipe",
      });
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      if (code !== 0) return `${where} exited ${code}\n${(out + err).trim().split("\n").slice(-15).join("\n")}`;
    } else if (["LABEL", "EXPOSE", "USER", "HEALTHCHECK", "ENTRYPOINT", "CMD", "SHELL", "STOPSIGNAL"].includes(ins.cmd)) {
      // No effect on the files the stage produces.
    } else {
      return `${where}: not supported by this replay`;
    }
  }
  return undefined;
}

async function main(): Promise<number> {
  const archs = process.argv.slice(2).length ? process.argv.slice(2) : ["amd64", "arm64"];
  const text = await Bun.file(join(ROOT, "Dockerfile")).text();
  const { stages } = parseDockerfile(text);
  const build = stages.find((s) => s.name === "build");
  const runtime = stages.at(-1);
  if (!build || !runtime || build === runtime) {
    fail("docker: Dockerfile has a 'build' stage and a runtime stage", "not found");
    return 1;
  }
  const copyFromBuild = runtime.instructions.find((i) => i.cmd === "COPY" && flagsAndWords(i.args).flags.from === "build");
  const artifact = copyFromBuild ? flagsAndWords(copyFromBuild.args).words[0]! : "/out/yatagarasu";

  const scratch = mkdtempSync(join(tmpdir(), "yatagarasu-docker-"));
  try {
    const context = join(scratch, "context");
    const files = copyContext(context);
    pass(`docker: build context has ${files} files after .dockerignore`);
    for (const arch of archs) {
      const t0 = performance.now();
      const stageDir = join(scratch, `stage-${arch}`);
      const err = await replay(build, context, stageDir, arch);
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      if (err) {
        fail(`docker: build stage for TARGETARCH=${arch}`, err);
        continue;
      }
      pass(`docker: build stage for TARGETARCH=${arch} succeeds on the .dockerignore'd context (${secs}s)`);
      const bin = join(stageDir, "fs", artifact);
      const want = arch === "arm64" ? 0xb7 : 0x3e;
      if (!existsSync(bin)) {
        fail(`docker: ${artifact} for ${arch}`, "the stage did not produce it");
        continue;
      }
      const machine = elfMachine(bin);
      if (machine === want) pass(`docker: ${artifact} for ${arch} is an ELF executable for ${arch}`);
      else fail(`docker: ${artifact} for ${arch} is an ELF executable for ${arch}`, `e_machine ${machine}`);
      const native = (arch === "amd64" && process.arch === "x64") || (arch === "arm64" && process.arch === "arm64");
      if (native) {
        const r = Bun.spawnSync([bin, "--version"], { stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin" } });
        const outText = r.stdout.toString().trim();
        // "yatagarasu <version> (commit <c>, linux-<arch>)": the build stage passes YATAGARASU_COMMIT (unknown by default)
        if (r.exitCode === 0 && outText === `yatagarasu ${pkg.version} (commit unknown, linux-${arch === "amd64" ? "x64" : "arm64"})`) pass(`docker: ${artifact} for ${arch} --version`);
        else fail(`docker: ${artifact} for ${arch} --version`, `exit ${r.exitCode}, '${outText}' ${r.stderr.toString().trim()}`);
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  console.log(`SUMMARY docker-build-stage pass=${passed} fail=${failed}`);
  return failed === 0 ? 0 : 1;
}

process.exit(await main());
