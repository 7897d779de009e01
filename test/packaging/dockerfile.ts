/**
 * A small reader for the project's Dockerfile and .dockerignore, for the packaging checks
 * (no Docker engine or hadolint here). It knows the subset of the syntax the Dockerfile uses:
 * comments, line continuations, FROM [--platform] image [AS name], and exec-form JSON arrays.
 */

export interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, ... */
  cmd: string;
  /** Everything after the keyword, continuations joined with a space. */
  args: string;
  /** 1-based line of the keyword. */
  line: number;
}

export interface Stage {
  index: number;
  name?: string;
  image: string;
  platform?: string;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): { preamble: Instruction[]; stages: Stage[] } {
  const instructions: Instruction[] = [];
  const lines = text.split(/\r?\n/);
  let buf = "";
  let start = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const trimmed = raw.trim();
    // Comment lines (and parser directives) are dropped, even between continued lines.
    if (trimmed.startsWith("#")) continue;
    if (buf === "" && trimmed === "") continue;
    if (buf === "") start = i + 1;
    if (trimmed.endsWith("\\")) {
      buf += trimmed.slice(0, -1).trim() + " ";
      continue;
    }
    buf += trimmed;
    const m = /^(\S+)\s*(.*)$/s.exec(buf.trim());
    if (m) instructions.push({ cmd: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
    buf = "";
  }
  if (buf.trim() !== "") throw new Error(`line ${start}: unterminated continuation`);

  const preamble: Instruction[] = [];
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.cmd === "FROM") {
      const words = ins.args.split(/\s+/);
      let platform: string | undefined;
      while (words[0]?.startsWith("--")) {
        const flag = words.shift()!;
        if (flag.startsWith("--platform=")) platform = flag.slice("--platform=".length);
      }
      const image = words[0] ?? "";
      const name = words[1]?.toUpperCase() === "AS" ? words[2] : undefined;
      stages.push({ index: stages.length, name, image, platform, instructions: [] });
    } else if (stages.length === 0) {
      preamble.push(ins);
    } else {
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return { preamble, stages };
}

/** Parses an exec-form argument (`["a", "b"]`); undefined for shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.trimStart().startsWith("[")) return undefined;
  const v: unknown = JSON.parse(args);
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw new Error(`not a JSON string array: ${args}`);
  return v;
}

/** Splits an instruction's args into leading --flags and the remaining words. */
export function flagsAndWords(args: string): { flags: Record<string, string>; words: string[] } {
  const flags: Record<string, string> = {};
  const words: string[] = [];
  for (const w of args.split(/\s+/).filter(Boolean)) {
    if (words.length === 0 && w.startsWith("--")) {
      const eq = w.indexOf("=");
      flags[eq < 0 ? w.slice(2) : w.slice(2, eq)] = eq < 0 ? "" : w.slice(eq + 1);
    } else words.push(w);
  }
  return { flags, words };
}

function globToRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*" && pattern[i + 1] === "*") {
      // "**/" matches zero or more directories; a trailing "**" matches anything.
      if (pattern[i + 2] === "/") {
        re += "(?:.*/)?";
        i += 2;
      } else {
        re += ".*";
        i += 1;
      }
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

export interface IgnoreRule {
  negate: boolean;
  re: RegExp;
  source: string;
}

/** Reads .dockerignore text into rules (Docker's semantics: the last matching rule wins). */
export function parseDockerignore(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const negate = line.startsWith("!");
    if (negate) line = line.slice(1).trim();
    // Docker cleans patterns: no leading "/" or "./", no trailing "/".
    line = line.replace(/^(\.\/|\/)+/, "").replace(/\/+$/, "");
    if (line === "") continue;
    rules.push({ negate, re: globToRegExp(line), source: raw.trim() });
  }
  return rules;
}

/** Whether a context-relative path (posix, no leading "./") is left out of the build context. */
export function isIgnored(rules: readonly IgnoreRule[], path: string): boolean {
  const parts = path.split("/").filter(Boolean);
  const candidates: string[] = [];
  for (let i = 1; i <= parts.length; i++) candidates.push(parts.slice(0, i).join("/"));
  let ignored = false;
  for (const r of rules) {
    // A rule applies to a path when it matches the path or one of its parent directories.
    if (candidates.some((c) => r.re.test(c))) ignored = !r.negate;
  }
  return ignored;
}
