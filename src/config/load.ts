/**
 * Config loading: YAML (with line numbers) → ${VAR} substitution on parsed string values →
 * legacy-key hints → zod (strict) → cross-field validation → normalize → deep freeze.
 *
 * Substitution happens on parsed scalars rather than on the raw text, so a secret containing
 * `#`, `: ` or a newline cannot change the YAML's structure, and a `${VAR}` inside a comment
 * is never required.
 *
 * A config that fails never half-applies: loadConfig either returns a complete frozen Config or
 * throws a ConfigError listing every problem found.
 */
import { isMap, isPair, isScalar, isSeq, LineCounter, parse as parseYaml, parseDocument, visit, type Document } from "yaml";
import type { z } from "zod";
import { ConfigSchema, type RawConfig } from "./schema.ts";
import { validateConfig } from "./validate.ts";

export interface ConfigIssue {
  /** YAML path in the form `buckets[1].s3.region` ("" for the document root). */
  path: string;
  message: string;
  line?: number;
}

export class ConfigError extends Error {
  constructor(
    readonly issues: ConfigIssue[],
    readonly file?: string,
  ) {
    super(formatIssues(issues, file));
    this.name = "ConfigError";
  }
}

export function formatIssues(issues: ConfigIssue[], file?: string): string {
  return issues
    .map((i) => {
      const where = file ? `${file}${i.line ? `:${i.line}` : ""}` : i.line ? `line ${i.line}` : "";
      const path = i.path ? `${i.path}: ` : "";
      return `${where ? `${where}: ` : ""}${path}${i.message}`;
    })
    .join("\n");
}

/** The normalized, validated, frozen configuration. `server.port` is always a number. */
export type Config = Omit<RawConfig, "server"> & {
  server: Omit<RawConfig["server"], "port"> & { port: number };
};

export type PathSegment = string | number;

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

/** Keys the original project's README documented (or its code used) that we handle differently. */
const LEGACY_HINTS: Array<{ match: (p: PathSegment[]) => boolean; message: string }> = [
  {
    match: (p) => p.length === 4 && p[0] === "buckets" && p[2] === "auth" && p[3] === "jwt",
    message:
      "per-bucket JWT settings are not supported (the original README showed them, but the original never implemented them): " +
      "put the JWT settings in the top-level `jwt:` section, keep `auth.enabled: true` here, and put bucket-only claim rules in `auth.claims`",
  },
  {
    match: (p) => p.at(-1) === "claims_verification",
    message: "`claims_verification` is spelled `claims` (top-level `jwt.claims`, or a bucket's `auth.claims`)",
  },
  {
    match: (p) => p.length === 4 && p[0] === "buckets" && p[2] === "cache" && p[3] === "ttl",
    message: "use `ttl_seconds` (the original README's `ttl` was never read by the original either)",
  },
  {
    match: (p) => p.length === 4 && p[0] === "buckets" && p[2] === "cache" && p[3] === "max_size",
    message: "per-bucket `max_size` is not supported: set `max_item_size_mb` here, and the total in `cache.memory.max_cache_size_mb`",
  },
  {
    match: (p) => p.length === 4 && p[0] === "buckets" && p[2] === "s3" && p[3] === "replicas",
    message: "S3 replica sets (multi-region failover) are not supported yet: configure a single `bucket`/`region`/`endpoint`",
  },
  {
    match: (p) => p.length === 3 && p[0] === "buckets" && p[2] === "watermark",
    message: "image watermarking is not supported",
  },
];

const ENV_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

function lineOf(doc: Document, lines: LineCounter, path: PathSegment[]): number | undefined {
  // Walk to the deepest node that exists on the path, and report its line.
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range) return lines.linePos(range[0]).line;
    if (n > 0) {
      // A key whose value is null has no node: find the key's own position.
      const parent = n === 1 ? doc.contents : doc.getIn(path.slice(0, n - 1), true);
      if (isMap(parent)) {
        const pair = parent.items.find((it) => isScalar(it.key) && it.key.value === path[n - 1]);
        const kr = (pair?.key as { range?: [number, number, number] } | undefined)?.range;
        if (kr) return lines.linePos(kr[0]).line;
      }
    }
  }
  return undefined;
}

/**
 * Replaces ${VAR} and ${VAR:-default} in every string scalar of the document. An UNQUOTED scalar
 * that is exactly one placeholder takes the YAML type of its value (`port: ${PORT}` → a number);
 * quoted scalars always stay strings. Missing variables are collected with their path.
 */
function substitute(doc: Document, env: Record<string, string | undefined>, issues: Array<{ path: PathSegment[]; message: string }>): void {
  visit(doc, {
    Scalar(_key, node, ancestors) {
      if (typeof node.value !== "string" || !node.value.includes("${")) return;
      const path: PathSegment[] = [];
      ancestors.forEach((a, i) => {
        if (isPair(a) && isScalar(a.key)) path.push(String(a.key.value));
        else if (isSeq(a)) path.push(a.items.indexOf((ancestors[i + 1] ?? node) as never));
      });
      if (ancestors.length > 0) {
        const last = ancestors[ancestors.length - 1];
        if (isPair(last) && last.key === node) return; // a key, not a value
      }
      const text = node.value;
      let missing = false;
      const replaced = text.replace(ENV_RE, (whole: string, name: string, def: string | undefined) => {
        const v = env[name];
        if (v !== undefined && v !== "") return v;
        if (def !== undefined) return def;
        issues.push({ path, message: `environment variable ${name} is not set` });
        missing = true;
        return whole; // left as written, so the schema does not report a second, confusing error
      });
      const whole = /^\$\{[^}]+\}$/.test(text);
      if (!missing && whole && node.type === "PLAIN") {
        const typed: unknown = parseYaml(replaced);
        node.value = typeof typed === "number" || typeof typed === "boolean" ? typed : replaced;
      } else node.value = replaced;
    },
  });
}

function findLegacy(value: unknown, path: PathSegment[], out: Array<{ path: PathSegment[]; message: string }>): void {
  if (Array.isArray(value)) value.forEach((v, i) => findLegacy(v, [...path, i], out));
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      const p = [...path, k];
      const hint = LEGACY_HINTS.find((h) => h.match(p));
      if (hint) out.push({ path: p, message: hint.message });
      else findLegacy(v, p, out);
    }
  }
}

function zodMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `'${k}'`).join(", ")}`;
  if (issue.code === "invalid_type" && issue.input === undefined) return "required";
  return issue.message;
}

export function deepFreeze<T>(o: T): T {
  if (o && typeof o === "object" && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** Parses and validates config text. Throws ConfigError with every issue found. */
export function parseConfig(text: string, opts: { file?: string; env?: Record<string, string | undefined>; baseDir?: string } = {}): Config {
  const env = opts.env ?? process.env;
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({ path: "", message: `invalid YAML: ${e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "")}`, line: e.linePos?.[0]?.line })),
      opts.file,
    );
  }
  const found: Array<{ path: PathSegment[]; message: string }> = [];
  substitute(doc, env, found);
  const raw: unknown = doc.toJS();
  if (raw === null || raw === undefined) throw new ConfigError([{ path: "", message: "the config is empty" }], opts.file);
  if (typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError([{ path: "", message: "the config must be a YAML mapping" }], opts.file);

  const substituted = raw;
  findLegacy(substituted, [], found);
  const toIssue = (f: { path: PathSegment[]; message: string }): ConfigIssue => ({ path: formatPath(f.path), message: f.message, line: lineOf(doc, lines, f.path) });
  const hinted = new Set(found.map((f) => formatPath(f.path)));

  const parsed = ConfigSchema.safeParse(substituted);
  if (!parsed.success) {
    for (const i of parsed.error.issues) {
      const path = i.path.filter((s): s is PathSegment => typeof s !== "symbol");
      if (i.code === "unrecognized_keys") {
        // A legacy key already has its own, better message.
        const keys = i.keys.filter((k) => !hinted.has(formatPath([...path, k])));
        if (keys.length === 0) continue;
        for (const k of keys) found.push({ path: [...path, k], message: `unknown key '${k}'` });
        continue;
      }
      found.push({ path, message: zodMessage(i) });
    }
  }
  if (found.length > 0 || !parsed.success) throw new ConfigError(found.map(toIssue), opts.file);
  const semantic = validateConfig(parsed.data, { baseDir: opts.baseDir });
  if (semantic.issues.length > 0) throw new ConfigError(semantic.issues.map(toIssue), opts.file);
  return deepFreeze(semantic.config);
}

/** Reads a config file. Throws ConfigError (never a raw fs error) when it cannot be read. */
export async function loadConfig(path: string, env?: Record<string, string | undefined>): Promise<Config> {
  let text: string;
  try {
    text = await Bun.file(path).text();
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === "ENOENT" ? "file not found" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "is a directory" : "cannot be read";
    throw new ConfigError([{ path: "", message: `cannot read config: ${why}` }], path);
  }
  const baseDir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
  return parseConfig(text, { file: path, env, baseDir });
}
