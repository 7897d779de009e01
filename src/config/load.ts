/**
 * Config loading: read (capped at MAX_CONFIG_BYTES) → YAML with line numbers, duplicate keys and
 * ${VAR} substitution (document.ts, linear) → legacy-key hints → zod (strict) → cross-field
 * validation → normalize → deep freeze.
 *
 * A config that fails never half-applies: loadConfig either returns a complete frozen Config or
 * throws a ConfigError listing every problem found. loadConfigOffThread (offthread.ts) does the
 * same work on a worker thread, for reloads in a serving process.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { z } from "zod";
import { ALIAS_CYCLE, MAX_EXPANDED_NODES, parseYamlConfig, safeYamlMessage, withinExpansionLimit, type StringTag } from "./document.ts";
import { adoptOriginal, findLegacy, listenerAddressNotes, otherAuthorizerKeys, renamedPath } from "./legacy.ts";
import { formatPath, gluedKeyName, shownKey, shownPath, type PathSegment } from "./path.ts";
import { cutText, ellipsized } from "../util/text.ts";
import { ConfigSchema, diskShareMb, workerProcesses, type RawConfig } from "./schema.ts";
import { unseenCharacterProblem, validateConfig } from "./validate.ts";
import { likelyKey } from "./likely.ts";

export { formatPath, type PathSegment } from "./path.ts";
export { loadConfigOffThread, loadConfigSourceOffThread } from "./offthread.ts";

export interface ConfigIssue {
  /** YAML path in the form `buckets[1].s3.region` ("" for the document root). */
  path: string;
  message: string;
  line?: number;
  /** (YAML syntax errors) the column on that line. */
  column?: number;
}

/** The most problems one log line lists (a 1 MiB file of unknown keys made a "could not start" line of 4 MB, past what log shippers take as one line). */
const MAX_LOGGED_PROBLEMS = 50;

/** A refused config's problems (the lines of its message) as a log line lists them: the first MAX_LOGGED_PROBLEMS, then how many more. */
export function loggedProblems(lines: readonly string[]): string[] {
  if (lines.length <= MAX_LOGGED_PROBLEMS) return [...lines];
  return [...lines.slice(0, MAX_LOGGED_PROBLEMS), `... and ${lines.length - MAX_LOGGED_PROBLEMS} more (yatagarasu --check --config PATH lists every one)`];
}

export class ConfigError extends Error {
  constructor(
    readonly issues: ConfigIssue[],
    readonly file?: string,
    /** The checks across keys (a duplicate prefix, a short secret...) could not run yet: a required value was refused. */
    readonly more = false,
  ) {
    super(formatIssues(issues, file));
    this.name = "ConfigError";
  }
}

/** Control characters (C0, DEL, C1) and bidirectional overrides: what a terminal would act on rather than show. */
const UNPRINTABLE = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

/**
 * One issue per line, as --check and a failed start print them to a terminal, each after the
 * file's name and line (`config.yaml:3: ...`). A file name shown otherwise than written (cut,
 * or its password hidden: shownArgument) is said once, on a line of its own, and each issue
 * gives its line only: a 200-character name was repeated on every line. A key or value the
 * config wrote with control characters (`"x\e[2J\r": 1`, quoted in the file) is shown escaped: it
 * cleared the terminal, or a carriage return hid the problem behind what followed it.
 */
export function formatIssues(issues: ConfigIssue[], file?: string): string {
  const shown = file === undefined ? undefined : shownArgument(file);
  const once = shown !== undefined && shown !== file && issues.length > 1;
  const lines = issues.map((i) => {
    const col = i.line && i.column ? `:${i.column}` : "";
    const where = shown && !once ? `${shown}${i.line ? `:${i.line}${col}` : ""}` : i.line ? `line ${i.line}${i.column ? `, column ${i.column}` : ""}` : "";
    const path = i.path ? `${i.path}: ` : "";
    return printable(`${where ? `${where}: ` : ""}${path}${i.message}`);
  });
  return (once ? [`${shown}:`, ...lines] : lines).join("\n");
}

/**
 * A command-line argument (a --config path, an unknown argument, a --healthcheck URL) as a message
 * shows it: without the user name and password of every URL in it, in both its forms
 * (`https://user:pass@host/x` → `https://host/x`, and so its resolved path, where the `//` is folded
 * into one `/`: `/cwd/https:/host/x`); a `user:pass@host` written without a scheme, or a password
 * holding a `/` (no URL has one: it is `%2F` there), is marked instead, everything up to the
 * word's last `@` hidden (`a:se/cr=et@b` → `***@b`, so not shown as another file's name, `b`;
 * `--option=user:pass@host` keeps its `--option=`). A password holding white space (`a:se cr@b`,
 * a tab, quoted or not) spans words: from the first word with a `user:` and no `@` of its own,
 * everything up to the argument's last `@` is hidden (it was shown whole). Then cut to
 * SHOWN_ARGUMENT characters with its length said, and its control characters escaped (printable).
 * Docker keeps a container's output in its health log; a 100 KB argument was echoed whole, twice.
 * (a scheme starts where no scheme character precedes it: tried at each letter of a long word, the search was quadratic, 128 KB ~10 s;
 * each word between white space is looked at once)
 */
export function shownArgument(a: string): string {
  // (the spanned password first: hidden word by word first, `a:s@e cr@b` showed `***@e cr@b`)
  const hidden = hideSpannedPassword(a).replace(/\S+/g, hideInWord);
  return printable(hidden.length > SHOWN_ARGUMENT ? `${cutText(hidden, SHOWN_ARGUMENT)}... (${hidden.length} characters)` : hidden);
}

/**
 * One word of shownArgument. A `user:password` before the word's last `@` is hidden up to that `@`
 * (`***@`), or, in a URL whose user information holds no `/`, `?` or `#` (the URL is what it looks
 * like), left out with its `@` (`https://h/x`). A password holding `/`, `?`, `#`, `@` or `:/` is
 * not told apart from a host and path by where an URL's user information ends: the last `@` ends it
 * (`https://u:p@ss#x@h/x` showed `https://ss#x@h/x`, `usr:PW1:/XQZ@h`, read as a folded `PW1:/`
 * scheme, showed `usr:PW1:/h`). A URL's user name without a password is left out up to its `@`.
 */
function hideInWord(word: string): string {
  const at = word.lastIndexOf("@");
  if (at < 0) return word;
  const start = passwordStart(word);
  // (the `:` after start is the one passwordStart found)
  if (start >= 0 && word.indexOf(":", start) < at) {
    const plain = SCHEME_END.test(word.slice(0, start)) && !/[/?#]/.test(word.slice(start, at));
    return `${word.slice(0, start)}${plain ? "" : "***@"}${word.slice(at + 1)}`;
  }
  return word.replace(/(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*:\/\/?)[^/?#]*@/, "$1");
}

/** Text ending with a scheme's name where one starts: at a word's start, after `/` (a resolved path) or `=` (`--config=`). */
const SCHEME_NAME_END = /(?:^|[/=])[A-Za-z][A-Za-z0-9+.-]*$/;
/** Text ending with a scheme (`https://`, or `https:/` folded in a resolved path). */
const SCHEME_END = /(?:^|[/=])[A-Za-z][A-Za-z0-9+.-]*:\/\/?$/;

/** Whether an `@` follows `from` in `word` before the next URL's `://` (or at all, with none). */
function atBeforeNextUrl(word: string, from: number): boolean {
  const at = word.indexOf("@", from);
  const next = word.indexOf("://", from);
  return at >= 0 && (next < 0 || at < next);
}

/**
 * Where a `user:pass` in `word` starts (after the last `/` or `=` before its `:`), or -1 when it has none.
 * The `:` is the word's first, or the first after it when that one ends a scheme's name and a `/`
 * follows (`https:/`; `usr:PW1:/x@h` has none: its password holds `:/`, as `https://u:/pw@h`'s
 * starts with `/`). An `@` without one before it, `me@host.yaml`, `http://h/a@b`, is no password;
 * nor is a URL's port, digits up to its path, unless an `@` follows (`http://h:8080/a@b` and
 * `redis://u:1234/x@h` cannot be told apart).
 */
function passwordStart(word: string): number {
  let colon = word.indexOf(":");
  const scheme = colon > 0 && word[colon + 1] === "/" && SCHEME_NAME_END.test(word.slice(0, colon));
  if (scheme) colon = word.indexOf(":", colon + 1);
  // (a port and a path holding an `@` read alike as a password of digits up to a `/` and its host,
  // `redis://u:1234/x@h`: hidden, a path lost from a message rather than part of a password shown;
  // an `@` only in a later URL of the word, `http://h:1/a,http://u:pw@h/b`, is that URL's)
  if (colon < 0 || (scheme && /^\d+(?:[/?#]|$)/.test(word.slice(colon + 1)) && !atBeforeNextUrl(word, colon))) return -1;
  return Math.max(word.lastIndexOf("/", colon), word.lastIndexOf("=", colon)) + 1;
}

/**
 * `text` with a password that holds white space (`a:se cr@b`: its words looked at one by one show
 * it) hidden up to the last `@` (shownArgument): from the first word with a `user:` whose own `@`,
 * if any, comes after that `:` (`a:s@e cr@b`, a password holding both, is hidden whole; the `@` of
 * `user@host:path` comes before it: no password). A word that runs up to the last `@` spans
 * nothing: hideInWord looks at it.
 */
function hideSpannedPassword(text: string): string {
  const at = text.lastIndexOf("@");
  if (at < 0) return text;
  for (const m of text.slice(0, at).matchAll(/\S+/g)) {
    if (m.index + m[0].length === at) break;
    const start = passwordStart(m[0]);
    const own = m[0].indexOf("@", start);
    if (start >= 0 && (own < 0 || own > m[0].indexOf(":", start))) return `${text.slice(0, m.index + start)}***${text.slice(at)}`;
  }
  return text;
}

/** The longest argument a message shows whole (shownArgument). */
const SHOWN_ARGUMENT = 200;

/** `text` with its control characters and bidirectional overrides (UNPRINTABLE) written as escapes, for a terminal (formatIssues, the CLI's usage errors). */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => (c === "\r" ? "\\r" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : c <= "\xff" ? `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}` : `\\u${c.charCodeAt(0).toString(16)}`));
}

/**
 * The normalized, validated, frozen configuration. `server.port` is always a number.
 * `baseDir` is the absolute folder relative paths in the config (PEM files, TLS files) resolve
 * against: the config file's folder (configBaseDir), or the working directory for text without a file.
 */
export type Config = Omit<RawConfig, "server"> & {
  server: Omit<RawConfig["server"], "port"> & { port: number };
  readonly baseDir: string;
  /** What loading the config has to say that is no problem (the original's keys that have no effect here): --check and the start-up log. */
  notes?: readonly string[];
  /** Those of `notes` that are warnings (valid but probably unwanted): logged at warn at start-up, the others at info. */
  warnings?: readonly string[];
};

/**
 * The largest config accepted. A real config is a few KiB; the cap bounds the time and memory one
 * (re)load can take, whatever the file holds.
 */
export const MAX_CONFIG_BYTES = 1024 * 1024;
const tooLarge = (bytes: string) => `the config is ${bytes} bytes; the limit is 1 MiB (${MAX_CONFIG_BYTES} bytes)`;

/** The one rule for the config base directory: the absolute folder of the config file. */
export function configBaseDir(configPath: string): string {
  return dirname(resolve(configPath));
}

/** The value at `path` in the parsed YAML (undefined when absent). */
function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v = raw;
  for (const seg of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

/** A `...` key: the original README's examples abbreviate a section so (`s3: { bucket: team-a-bucket, ... }`). */
const PLACEHOLDER_KEY = "'...' stands for the rest of this section in the original README's examples: write the section's keys in its place (see the configuration reference)";

/** What a value is, in YAML's words (never the value itself: it may be a secret). */
function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  // (the YAML tags that make other objects: !!binary, !!timestamp, !!set)
  if (v instanceof Uint8Array) return "binary data (!!binary)";
  if (v instanceof Date) return "a timestamp (!!timestamp)";
  if (v instanceof Set) return "a set (!!set)";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return "a string";
  if (typeof v === "number") return Number.isNaN(v) ? "not a number (.nan)" : !Number.isFinite(v) ? "infinity (.inf, or a number too large to hold: YAML reads 1e400 as infinity)" : Number.isInteger(v) ? "an integer" : "a number with a fraction";
  if (typeof v === "boolean") return "a boolean";
  return typeof v;
}

/**
 * Why a string stands where a number or a boolean goes, when it is a variable's doing: `$NAME`
 * (only ${NAME} is substituted), or the value of the ${NAME} the whole value was (named, never
 * shown: it may be a secret). Undefined otherwise.
 */
function variableHint(v: unknown, wants: "number" | "boolean", fromVar: string | undefined): string | undefined {
  if (typeof v !== "string") return undefined;
  const bare = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(v.trim());
  if (bare) return ` (it looks like an environment variable: write \${${bare[1]}}, only that form is substituted)`;
  if (fromVar !== undefined) return ` (the value of \${${fromVar}}, which is not ${wants === "number" ? "a number" : "true or false"}: set ${fromVar} to ${wants === "number" ? "a plain number" : "true or false"})`;
  return undefined;
}

/** A number schema's lower and upper bounds ([value, inclusive]), found along `path` through defaults, optionals, unions, lists and mappings. */
interface Bounds {
  min?: [number, boolean];
  max?: [number, boolean];
  /** A whole number (`.int()`): "more than 0" reads as "at least 1". */
  int?: boolean;
}

function numberBounds(schema: z.core.$ZodType, path: readonly PropertyKey[]): Bounds | undefined {
  const def = schema._zod.def as z.core.$ZodTypeDef & Record<string, unknown>;
  switch (def.type) {
    case "default":
    case "prefault":
    case "optional":
    case "nullable":
    case "readonly":
    case "nonoptional":
    case "catch":
      return numberBounds(def.innerType as z.core.$ZodType, path);
    case "pipe":
      return numberBounds(def.in as z.core.$ZodType, path);
    case "union":
      for (const o of def.options as z.core.$ZodType[]) {
        const b = numberBounds(o, path);
        if (b !== undefined) return b;
      }
      return undefined;
    case "object": {
      const field = path.length === 0 ? undefined : (def.shape as Record<PropertyKey, z.core.$ZodType | undefined>)[path[0]!];
      return field === undefined ? undefined : numberBounds(field, path.slice(1));
    }
    case "array":
      return path.length === 0 ? undefined : numberBounds(def.element as z.core.$ZodType, path.slice(1));
    case "record":
      return path.length === 0 ? undefined : numberBounds(def.valueType as z.core.$ZodType, path.slice(1));
    case "number": {
      if (path.length > 0) return undefined;
      const b: Bounds = { int: typeof def.format === "string" && def.format.includes("int") };
      for (const c of (def.checks ?? []) as z.core.$ZodCheck[]) {
        const cd = c._zod.def as { check: string; value?: unknown; inclusive?: boolean; format?: string };
        if (cd.check === "number_format" && cd.format?.includes("int")) b.int = true;
        if (typeof cd.value !== "number") continue;
        if (cd.check === "greater_than" && (b.min === undefined || cd.value >= b.min[0])) b.min = [cd.value, cd.inclusive === true];
        if (cd.check === "less_than" && (b.max === undefined || cd.value <= b.max[0])) b.max = [cd.value, cd.inclusive === true];
      }
      return b;
    }
    default:
      return undefined;
  }
}

/**
 * A number out of range, in the project's words: the range allowed (both bounds where the key has
 * them) and the value given ("must be from 0 to 65535, got 70000"); zod said "Too big: expected
 * number to be <=65535". Undefined for any other issue, and for a bound with its own message.
 */
function rangeMessage(issue: z.core.$ZodIssue, v: unknown, path: readonly PropertyKey[]): string | undefined {
  if (issue.code !== "too_big" && issue.code !== "too_small") return undefined;
  if ((issue.origin !== "number" && issue.origin !== "int") || typeof v !== "number" || !/^Too (?:big|small): /.test(issue.message)) return undefined;
  // zod's implicit bound of a whole number, met alone by a key with no bound of its own on that
  // side (one with its own says that one): it is no range of the key ("must be from 1 to
  // 9007199254740991" for max_concurrent_requests, documented as at least 1), but the largest
  // whole number held exactly.
  if (isSafeIntegerBound(issue)) return `must be ${issue.code === "too_big" ? `at most ${Number.MAX_SAFE_INTEGER}` : `at least ${-Number.MAX_SAFE_INTEGER}`}, got ${v}: a ${issue.code === "too_big" ? "larger" : "smaller"} whole number is not held exactly`;
  const b = numberBounds(ConfigSchema, path) ?? {};
  if (issue.code === "too_big") b.max = [Number(issue.maximum), issue.inclusive === true];
  else b.min = [Number(issue.minimum), issue.inclusive === true];
  // (a whole number's exclusive bound as the inclusive one past it: "at least 1", not "more than 0")
  if (b.int && b.min !== undefined && !b.min[1] && Number.isInteger(b.min[0])) b.min = [b.min[0] + 1, true];
  if (b.int && b.max !== undefined && !b.max[1] && Number.isInteger(b.max[0])) b.max = [b.max[0] - 1, true];
  const { min, max } = b;
  const range =
    min !== undefined && max !== undefined && min[1] && max[1]
      ? `from ${min[0]} to ${max[0]}`
      : [min && `${min[1] ? "at least" : "more than"} ${min[0]}`, max && `${max[1] ? "at most" : "less than"} ${max[0]}`].filter(Boolean).join(" and ");
  return `must be ${range}, got ${v}`;
}

/**
 * A value outside a key's fixed set (`logging.level: INFO`, `engine: Bun`), in the project's
 * words: the values allowed and the value given, and the one it differs from only in case ("did
 * you mean info?"); zod said "Invalid option: expected one of "trace"|"debug"|…". A value that
 * came from a ${VAR} is named by its variable, not shown. Undefined for any other issue, and for
 * a set with its own message.
 */
function optionMessage(issue: z.core.$ZodIssue, v: unknown, fromVar: string | undefined, partVar: string | undefined): string | undefined {
  if (issue.code !== "invalid_value" || !issue.values.every((x) => typeof x === "string")) return undefined;
  const values = issue.values as string[];
  // A set with its own message ("unknown operator; use one of equals, in, ...") said what was
  // allowed only: the value given goes after its first clause (`unknown operator "equal"; use ...`).
  const own = !issue.message.startsWith("Invalid option");
  const allowed = own ? issue.message : `expected one of ${values.join(", ")}`;
  const cut = allowed.indexOf(";");
  const said = (got: string, hint = "") => (own && cut > 0 ? `${allowed.slice(0, cut)}, got ${got}${allowed.slice(cut)}${hint}` : `${allowed}, got ${got}${hint}`);
  if (v === undefined) return undefined;
  if (typeof v !== "string") return said(kindOf(v));
  const match = values.find((x) => x.toLowerCase() === v.trim().toLowerCase());
  const cased = values.every((x) => x === x.toLowerCase()) ? "lower case" : "case-sensitive";
  if (fromVar !== undefined) return said(`the value of \${${fromVar}}`, match === undefined ? "" : ` (the values are ${cased}: set ${fromVar} to ${match})`);
  // (nor one holding a variable's value among other text: "x${SECRET}" showed it)
  if (partVar !== undefined) return said(`a value holding \${${partVar}}`);
  // (a near miss, `equal` for equals, `headers` for header, is named as a misspelt key is; not for a short one: `is` is not `in`)
  // (`bearer_header`, the slip the original's README warns of, is no near miss of either value: its
  // first part is the value meant, as in `bearer_token` or `query_param`)
  const head = match === undefined ? v.trim().toLowerCase().split(/[_\- ]/)[0] : undefined;
  const near = match === undefined ? (head !== v.trim().toLowerCase() ? values.find((x) => x === head) : undefined) ?? (v.trim().length > 3 ? likelyKey(v.trim(), values) : undefined) : undefined;
  // (cut as a key is: a 200 KB value was echoed whole, in the log and the admin reload's answer too)
  return said(JSON.stringify(ellipsized(v, 64)), match !== undefined ? ` (the values are ${cased}: did you mean ${match}?)` : near !== undefined ? ` (did you mean ${near}?)` : "");
}

/**
 * A bound with its own message (a timer's "must be at most 2147483 seconds (about 24.8 days): a
 * longer wait does not fit a timer"), or a string's length (zod's "Too big: expected string to have
 * <=255 characters"), with what was given: the number, or the string's length (never the string:
 * it may be a secret). They said what was allowed only. Undefined for any other issue.
 */
function givenBoundMessage(issue: z.core.$ZodIssue, v: unknown): string | undefined {
  if (issue.code !== "too_big" && issue.code !== "too_small") return undefined;
  const bound = Number(issue.code === "too_big" ? issue.maximum : issue.minimum);
  let message = issue.message;
  let got: string;
  if (typeof v === "number" && (issue.origin === "number" || issue.origin === "int")) got = String(v);
  else if (typeof v === "string" && issue.origin === "string") {
    // ("must not be empty": nothing to add)
    if (issue.code === "too_small" && bound <= 1) return undefined;
    if (/^Too (?:big|small): /.test(message)) message = `must be ${issue.code === "too_big" ? "at most" : "at least"} ${bound} characters`;
    got = `${v.length} character${v.length === 1 ? "" : "s"}`;
  } else return undefined;
  // (before the reason the message gives after ": ")
  const why = message.indexOf(": ");
  return why < 0 ? `${message}, got ${got}` : `${message.slice(0, why)}, got ${got}${message.slice(why)}`;
}

/**
 * What to drop from a string of digits (or true/false) where a number (or a boolean) goes: its
 * quotes, or the `!!str` / `!` tag that made it a string (`port: !!str 8080` has no quotes).
 */
function unquoteHint(tagged: StringTag | undefined, boolean = false): string {
  if (tagged === undefined) return boolean ? " (write true or false, without quotes)" : " (write it without quotes)";
  // (a block scalar, `|` or `>`, is a string without its tag too: it has no quotes to drop)
  const drop = `drop the ${tagged.tag} tag${tagged.written === "quoted" ? " and the quotes" : tagged.written === "block" ? " and write the value after the colon, not as a block scalar" : ""}`;
  return boolean ? ` (write true or false, and ${drop})` : ` (${drop})`;
}

function zodMessage(issue: z.core.$ZodIssue, raw: unknown, fromVar?: string, partVar?: string, tagged?: StringTag): string {
  const range = rangeMessage(issue, valueAt(raw, issue.path), issue.path) ?? givenBoundMessage(issue, valueAt(raw, issue.path));
  if (range !== undefined) return range;
  const option = optionMessage(issue, valueAt(raw, issue.path), fromVar, partVar);
  if (option !== undefined) return option;
  // (a path_prefix without its leading "/": it said "must start with /" only; a ${VAR}'s value is never shown)
  const given = valueAt(raw, issue.path);
  if (issue.code === "invalid_format" && issue.format === "starts_with" && typeof given === "string") {
    const p = (issue as { prefix?: string }).prefix ?? "";
    if (fromVar !== undefined) return `${issue.message}, got the value of \${${fromVar}}`;
    if (partVar !== undefined) return `${issue.message}, got a value holding \${${partVar}}`;
    // (an empty one: "/" alone would make the bucket catch every path, perhaps not what was meant)
    if (given === "" && p === "/") return `${issue.message}, got "" (write the URL prefix the bucket serves, such as "/products"; "/" makes it serve every path no other bucket's prefix takes)`;
    return `${issue.message}, got ${JSON.stringify(ellipsized(given, 64))} (write ${JSON.stringify(ellipsized(p + given, 64))})`;
  }
  if (issue.code === "unrecognized_keys") return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `'${shownKey(k)}'`).join(", ")}`;
  // A key of a fixed set left out (a claim rule without operator, a jwt.keys entry without
  // algorithm): it was "unknown operator" or zod's "Invalid option", as if one had been written.
  if (issue.code === "invalid_value" && valueAt(raw, issue.path) === undefined) return `required: one of ${issue.values.map(String).join(", ")}`;
  if (issue.code === "invalid_type") {
    const v = valueAt(raw, issue.path);
    if (v === undefined) return `required${MISSING_HINTS[formatPath(issue.path as PathSegment[]).replace(/\[\d+\]/g, "[]")] ?? ""}`;
    const expected = issue.expected;
    let hint = "";
    const numeric = expected === "number" || expected === "int";
    const byVar = numeric || expected === "boolean" ? variableHint(v, numeric ? "number" : "boolean", fromVar) : undefined;
    if (byVar !== undefined) hint = byVar;
    else if (typeof v === "string" && (expected === "number" || expected === "int") && /^\s*-?\d+(\.\d+)?\s*$/.test(v)) hint = unquoteHint(tagged);
    else if (typeof v === "string" && (expected === "number" || expected === "int") && v.includes("${")) hint = " (it still holds a ${...}: a ${NAME:-default} inside another one's default is not substituted; give the default as a plain value)";
    else if (typeof v === "string" && (expected === "number" || expected === "int") && issue.path.at(-1) === "port") hint = " (a port number, 0-65535, without quotes)";
    else if (typeof v === "string" && (expected === "number" || expected === "int")) hint = " (a plain number: seconds, bytes or a count, no unit)";
    else if (typeof v === "string" && expected === "boolean") hint = unquoteHint(tagged, true);
    // (the original's `address: 8080`: a port alone)
    else if (typeof v === "number" && expected === "string" && formatPath(issue.path as PathSegment[]) === "server.address") hint = " (an address such as 0.0.0.0, or host:port as the original wrote it; a port alone goes in server.port)";
    // (`secret: 12345`, `bucket: 2024`, `value: true`: YAML reads an unquoted number or true/false as one, and a secret's
    // digits may not even survive it: 0x1F is 31, 1e3 is 1000)
    else if ((typeof v === "number" || typeof v === "boolean") && expected === "string") hint = ` (YAML reads an unquoted ${typeof v === "number" ? "number" : "true or false"} as one: write it in quotes to make it text)`;
    // (a credential's grants written as a list, `buckets: [products]`: "expected a mapping" alone did not show the form)
    else if (Array.isArray(v) && expected === "record" && formatPath(issue.path as PathSegment[]).replace(/\[\d+\]/g, "[]") === "s3_api.credentials[].buckets") hint = grantsHint(v);
    // (`jwt:` with every line under it commented out: the original read that as no section at all)
    // (only a key the config can do without is told it may be removed: `s3:` cannot)
    else if (v === null && (expected === "object" || expected === "record")) {
      const entry = typeof issue.path.at(-1) === "number";
      // (cache.disk / cache.redis with cache_layers listing it: removed alone, it is "the cache.redis section is required")
      const layer = issue.path.length === 2 && issue.path[0] === "cache" && (issue.path[1] === "disk" || issue.path[1] === "redis") ? issue.path[1] : undefined;
      const listed = layer !== undefined && ([valueAt(raw, ["cache", "cache_layers"])].flat() as unknown[]).includes(layer);
      const or = entry ? ", or remove the entry" : listed ? `, or remove it and ${layer} from cache_layers` : optionalAt(issue.path) ? ", or remove the key" : "; it is required";
      hint = ` (the ${entry ? "entry" : "key"} has no value, as when every line under it is commented out: write its keys indented below it${or})`;
    }
    return `expected ${wanted(expected)}, got ${kindOf(v)}${hint}`;
  }
  if (issue.code === "invalid_union") {
    // A key that takes two forms (`workers: auto | 1..64`, `audience: a string or a list`): zod
    // says only "Invalid input"; name the forms. A branch the value had the type of (a number out
    // of range) says best what is wrong.
    const v = valueAt(raw, issue.path);
    if (v === undefined) return "required";
    const wants: string[] = [];
    for (const branch of issue.errors) {
      for (const sub of branch) {
        if (sub.path.length > 0) continue;
        if (sub.code === "invalid_type") wants.push(wanted(sub.expected));
        else if (sub.code === "invalid_value") wants.push(...sub.values.map((x) => JSON.stringify(x)));
        else return rangeMessage(sub, v, issue.path) ?? sub.message;
      }
    }
    if (wants.length === 0) return issue.message;
    const numeric = wants.some((w) => w === "a number" || w === "an integer");
    const byVar = numeric || wants.includes("a boolean") ? variableHint(v, numeric ? "number" : "boolean", fromVar) : undefined;
    const hint = byVar ?? (typeof v === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(v) && numeric ? unquoteHint(tagged) : "");
    return `expected ${[...new Set(wants)].join(" or ")}, got ${kindOf(v)}${hint}`;
  }
  return issue.message;
}

/** Whether a schema issue wants a number or a boolean where a string was given. */
function wantsNumberOrBoolean(issue: z.core.$ZodIssue): boolean {
  const numeric = (e: string) => e === "number" || e === "int" || e === "boolean";
  if (issue.code === "invalid_type") return numeric(issue.expected);
  if (issue.code === "invalid_union") return issue.errors.some((b) => b.some((e) => e.path.length === 0 && e.code === "invalid_type" && numeric(e.expected)));
  return false;
}

/**
 * What an unknown key that other tools' Redis settings use means here: the connection is one URL
 * (`cache.redis: { host, port, password }` read a bare "unknown key 'host'" for each).
 */
const REDIS_URL_PARTS = new Set(["host", "hostname", "port", "password", "username", "user", "db", "database", "tls", "ssl"]);
const REDIS_URL_HINT = " (the connection is one URL, url: redis://host:6379/0, rediss:// for TLS, its password and database in it, redis://:PASSWORD@host:6379/2, or beside it as redis_password and redis_db)";

/**
 * What to write for a section left out that the config cannot do without: the original README's
 * fragments (a `buckets` entry with only `auth`, a config of `server:` and `jwt:` alone) were
 * told a bare "required".
 */
const MISSING_HINTS: Record<string, string> = {
  buckets: " (the buckets to serve, a list of `- name: ..., path_prefix: /..., s3: { bucket: ..., region: ... }`; see the configuration reference)",
  "buckets[].s3": " (the S3 bucket this prefix serves: `s3: { bucket: my-bucket, region: us-east-1 }`, with its endpoint and access_key/secret_key as needed)",
  "buckets[].name": " (a unique name, used in metrics and the admin API)",
  "buckets[].path_prefix": " (the URL prefix it serves, such as /products)",
};

/**
 * The mapping form of a credential's grants written as a list (`buckets: [products]`, or a list of
 * one-key mappings, `- products: [read]`), with the names given: each bucket maps to its
 * permissions (those written, else read and list). The first 3 are shown.
 */
function grantsHint(v: readonly unknown[]): string {
  const plain = (x: unknown) => typeof x === "string" || typeof x === "number";
  const entries = v.flatMap((x): Array<[string, unknown]> => (plain(x) ? [[String(x), undefined]] : x !== null && typeof x === "object" && !Array.isArray(x) ? Object.entries(x) : []));
  const shown = entries.slice(0, 3).map(([name, perms]) => `${shownKey(ellipsized(name, 64))}: [${Array.isArray(perms) && perms.length > 0 && perms.every(plain) ? perms.slice(0, 4).join(", ") : "read, list"}]`);
  const form = `{ ${shown.length > 0 ? shown.join(", ") : "products: [read, list]"}${entries.length > 3 ? ", ..." : ""} }`;
  return ` (each bucket's name maps to its permissions: write buckets: ${form})`;
}

function wanted(expected: string): string {
  // (zod calls a mapping of free keys, such as a credential's `buckets`, a "record")
  return expected === "object" || expected === "record" ? "a mapping" : expected === "array" ? "a list" : expected === "int" ? "an integer" : `a ${expected}`;
}

/**
 * Arrays longer than this stay writable (their elements are still frozen). JSC freezes an array
 * element by element (measured 2-4 µs per element: an 80,000-entry list took 300 ms), which on a
 * reload would stall the event loop; an object's freeze costs ~0.1 µs. Config lists are only read.
 */
export const MAX_FROZEN_ARRAY = 1024;

/** One object frozen per step, iteratively (no recursion depth limit), each object once (YAML aliases share objects). */
function* freezeSteps(root: unknown): Generator<void> {
  const stack: unknown[] = [root];
  const seen = new Set<object>();
  while (stack.length > 0) {
    const o = stack.pop();
    if (!o || typeof o !== "object" || seen.has(o)) continue;
    seen.add(o);
    if (!Array.isArray(o) || o.length <= MAX_FROZEN_ARRAY) Object.freeze(o);
    // Object.values would copy a long list: index it instead.
    const values: ArrayLike<unknown> = Array.isArray(o) ? o : Object.values(o);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v && typeof v === "object") stack.push(v);
    }
    yield;
  }
}

export function deepFreeze<T>(o: T): T {
  for (const _ of freezeSteps(o));
  return o;
}

/** deepFreeze in slices of at most ~budgetMs, yielding to the event loop between them (for the serving thread). */
export async function deepFreezeSliced<T>(o: T, budgetMs = 1): Promise<T> {
  let start = performance.now();
  let n = 0;
  for (const _ of freezeSteps(o)) {
    if ((++n & 63) === 0 && performance.now() - start >= budgetMs) {
      await new Promise<void>((r) => setImmediate(r));
      start = performance.now();
    }
  }
  return o;
}

export interface ParseOptions {
  file?: string;
  env?: Record<string, string | undefined>;
  /** Defaults to configBaseDir(file), or the working directory without a file. */
  baseDir?: string;
  /**
   * server.https's pair as already read (a group's worker serves the one its primary read and sent):
   * validated instead of the files, which may have changed since (a renewal half done, a bad one
   * the primary refused), so that a worker restarted after a crash serves what its primary serves.
   */
  tls?: { cert: string; key: string };
  /**
   * Keys (`s3_api.address`) whose line in the text is wanted (a refused reload names where each
   * restart-only setting is written): filled into `lines`, a key with no line left out.
   */
  places?: { keys: readonly string[]; lines: Record<string, number> };
}

/** Whether the key at `path` may be left out (every schema found there takes no value), and false when none is found. */
function optionalAt(path: readonly PropertyKey[]): boolean {
  const at = schemasAt(path.filter((s): s is PathSegment => typeof s !== "symbol"));
  return at.length > 0 && at.every((s) => (s as z.ZodType).safeParse(undefined).success);
}

/** The keys the schema takes in the mapping at `path` (through lists, defaults, transforms and unions). */
function keysAt(path: readonly PathSegment[]): string[] {
  return [...new Set(schemasAt(path, true).flatMap((o) => Object.keys((o as { shape?: object }).shape ?? {})))];
}

/** The schemas of the value at `path` (through lists, defaults, transforms and unions); with `mappings`, what holds the keys there (their object definitions). */
function schemasAt(path: readonly PathSegment[], mappings = false): unknown[] {
  type Def = { type: string; shape?: Record<string, unknown>; element?: unknown; innerType?: unknown; in?: unknown; options?: unknown[]; getter?: () => unknown };
  const def = (s: unknown) => (s as { _zod: { def: Def } })._zod.def;
  // Down to what holds the keys: an object, or every branch of a union.
  const objects = (s: unknown, depth = 0): Def[] => {
    const d = def(s);
    if (depth > 16) return [];
    if (d.type === "object") return [d];
    if (d.type === "union") return (d.options ?? []).flatMap((o) => objects(o, depth + 1));
    const inner = d.innerType ?? d.in ?? d.getter?.();
    return inner ? objects(inner, depth + 1) : [];
  };
  const within = (s: unknown, depth = 0): unknown[] => {
    const d = def(s);
    if (depth > 16) return [];
    if (d.type === "array" && d.element) return [d.element];
    if (d.type === "union") return (d.options ?? []).flatMap((o) => within(o, depth + 1));
    const inner = d.innerType ?? d.in ?? d.getter?.();
    return inner ? within(inner, depth + 1) : [];
  };
  let at: unknown[] = [ConfigSchema];
  for (const seg of path) at = typeof seg === "number" ? at.flatMap((s) => within(s)) : at.flatMap((s) => objects(s).map((o) => o.shape?.[seg]).filter((x) => x !== undefined));
  return mappings ? at.flatMap((s) => objects(s)) : at;
}

/**
 * Where an unknown key would be known, one level down or up from where it was written (a bucket's
 * `region` is `s3.region`, a top-level `port` is `server.port`...), or undefined when nowhere
 * near, or in more than three places. A new user's misplaced key read "unknown key 'region'",
 * though the README documents `region`.
 */
function placesOf(key: string, path: readonly PathSegment[]): string[] | undefined {
  const found = new Set<string>();
  const look = (at: PathSegment[], shown: string) => {
    if (keysAt(at).includes(key)) found.add(shown ? `${shown}.${key}` : key);
  };
  for (const c of keysAt(path)) {
    look([...path, c], formatPath([...path, c]));
    look([...path, c, 0], `${formatPath([...path, c])}[]`);
  }
  // up: the mapping that holds this one (past the list it is an entry of)
  const up = typeof path.at(-1) === "number" ? path.slice(0, -2) : path.slice(0, -1);
  if (path.length > 0) look(up, formatPath(up));
  // the top-level cache section and a bucket's share a name, not their keys (a bucket's ttl_seconds
  // under the top-level cache: read a bare "unknown key 'ttl_seconds'")
  if (path.length === 1 && path[0] === "cache") look(["buckets", 0, "cache"], "buckets[].cache");
  else if (path.length === 3 && path[0] === "buckets" && path[2] === "cache") look(["cache"], "cache");
  return found.size > 0 && found.size <= 3 ? [...found] : undefined;
}

/** zod's implicit bound of an integer key (±(2^53-1)), which it checks beside the key's own. */
function isSafeIntegerBound(i: z.core.$ZodIssue): boolean {
  return (i.code === "too_big" || i.code === "too_small") && i.origin === "int" && Math.abs(Number(i.code === "too_big" ? i.maximum : i.minimum)) === Number.MAX_SAFE_INTEGER;
}

/**
 * The numbers a key takes as 0 that the file (or an unquoted ${VAR}) wrote as a number too small
 * to hold (`stale_if_error_seconds: !!float 1e-400`, read as 0): where 0 is allowed (off, none,
 * no limit) they loaded silently as it. Each is a problem, at its key; `skip` holds the keys
 * already refused (a range without 0 says "got 1e-400" itself). Ports are left to their own
 * check (a port written as a number that is not whole).
 */
function underflowedNumbers(raw: unknown, written: ParsedWritten, renamed: Parameters<typeof renamedPath>[1], skip: ReadonlySet<string>): Array<{ path: PathSegment[]; message: string }> {
  const out: Array<{ path: PathSegment[]; message: string }> = [];
  if (![...written.values()].some((n) => n.read === "0")) return out;
  const walk = (v: unknown, path: PathSegment[]): void => {
    if (v === 0) {
      const n = written.get(formatPath(renamedPath(path, renamed)));
      if (n !== undefined && n.read === "0" && path.at(-1) !== "port" && !skip.has(formatPath(path))) {
        out.push({ path, message: `${n.written} is too small for a number to hold: YAML reads it as 0, and it would load as 0 (here: off, or none); write 0 if that is meant, or a larger number` });
      }
    } else if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
    else if (typeof v === "object" && v !== null) for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
  };
  walk(raw, []);
  return out;
}
type ParsedWritten = ReadonlyMap<string, { written: string; read: string }>;

/** Whether a value is a placeholder of a variable reported unset (left as written). */
function namesMissingVar(v: unknown, missing: ReadonlySet<string>): boolean {
  if (typeof v !== "string" || missing.size === 0) return false;
  for (const m of v.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) if (missing.has(m[1]!)) return true;
  return false;
}

/** The config's listener ports (a whole number: a port written otherwise is refused, not read as the number next to it). */
const PORT_KEYS: readonly PathSegment[][] = [["server", "port"], ["metrics", "port"], ["s3_api", "port"]];

/**
 * Parses and validates config text into a plain (not yet frozen) Config. Throws ConfigError with
 * every issue found. The worker thread posts this result back as it is.
 */
export function parseConfigUnfrozen(text: string, opts: ParseOptions = {}): Config {
  const fail = (issues: ConfigIssue[], more = false) => new ConfigError(issues, opts.file, more);
  if (text.length > MAX_CONFIG_BYTES || Buffer.byteLength(text) > MAX_CONFIG_BYTES) throw fail([{ path: "", message: tooLarge(String(Buffer.byteLength(text))) }]);
  const y = parseYamlConfig(text, opts.env ?? process.env);
  if ("syntax" in y) throw fail(y.syntax.map((s) => ({ path: "", message: s.message, line: s.line, ...(s.column !== undefined ? { column: s.column } : undefined) })));
  for (const k of opts.places?.keys ?? []) {
    const line = y.lineOf(k.split("."));
    if (line !== undefined) opts.places!.lines[k] = line;
  }
  const found: Array<{ path: PathSegment[]; message: string }> = [...y.issues];
  // (set once the original's keys are adopted: a problem with one is reported where the file has it)
  let renamed: ReturnType<typeof adoptOriginal>["renamed"] = [];
  const toIssue = (f: { path: PathSegment[]; message: string; line?: number }): ConfigIssue => {
    const path = renamedPath(f.path, renamed);
    // (a number past 2^53 as written, not as JavaScript rounded it: "got 9007199254740993", not ...992)
    const n = y.writtenNumbers.size === 0 ? undefined : y.writtenNumbers.get(formatPath(path));
    const message = n === undefined ? f.message : f.message.replace(`got ${n.read}`, `got ${n.written}`);
    return { path: shownPath(path), message, line: f.line ?? y.lineOf(path) };
  };
  let raw: unknown;
  // The billion-laughs guard counts the expansion itself (withinExpansionLimit), not references.
  // (an alias inside what it names was found with its line by the walk: that is the whole story)
  if (!withinExpansionLimit(y)) throw fail(found.some((f) => f.message.startsWith(ALIAS_CYCLE)) ? found.map(toIssue) : [...found.map(toIssue), { path: "", message: `invalid YAML: its aliases expand to more than ${MAX_EXPANDED_NODES} nodes (aliases of aliases, or an alias inside what it names)` }]);
  try {
    raw = y.doc.toJS({ maxAliasCount: -1 });
  } catch (err) {
    // The walk's own findings first (an unresolved alias, with its key and line and without its name).
    if (found.length > 0) throw fail(found.map(toIssue));
    const message = (err as Error)?.message ?? String(err);
    throw fail([{ path: "", message: /unresolved alias/i.test(message) ? "invalid YAML: an alias that names no anchor" : `invalid YAML: ${safeYamlMessage({ message })}` }]);
  }
  if (raw === null || raw === undefined) throw fail([{ path: "", message: "the config is empty: it needs at least a buckets: list (see the README's Configuration reference, or config.yaml in the repository)" }]);
  if (typeof raw !== "object" || Array.isArray(raw)) throw fail([{ path: "", message: "the config must be a YAML mapping" }]);

  // Top-level `x-*` keys hold YAML anchors for merge keys (`<<: *s3defaults`), as in Compose files: not config.
  for (const k of Object.keys(raw)) if (k.startsWith("x-")) delete (raw as Record<string, unknown>)[k];
  const adopted = adoptOriginal(raw as Record<string, unknown>);
  renamed = adopted.renamed;
  found.push(...adopted.issues);
  findLegacy(raw, [], found);
  // A port written as a number that is not whole (`1e-400`, `0.0000001`): YAML reads it as 0 (a
  // random port) or as the whole number next to it, and it loaded silently so.
  for (const path of PORT_KEYS) {
    const n = y.writtenNumbers.size === 0 ? undefined : y.writtenNumbers.get(formatPath(path));
    if (n !== undefined && Number.isSafeInteger(Number(n.read))) {
      found.push({ path, message: `a port is a whole number from 0 to 65535, and ${n.written} is not one (YAML reads it as ${n.read}${n.read === "0" ? ", a random port" : ""}): write the port's digits` });
    }
  }
  const hinted = new Set(found.map((f) => formatPath(f.path)));
  const missingVars = new Set(y.issues.map((i) => /^environment variable ([A-Za-z_][A-Za-z0-9_]*) is/.exec(i.message)?.[1]).filter((n): n is string => n !== undefined));
  const parsed = ConfigSchema.safeParse(raw);
  const baseDir = opts.baseDir ?? (opts.file ? configBaseDir(opts.file) : process.cwd());
  if (y.writtenNumbers.size > 0) {
    const skip = new Set([...found.map((f) => formatPath(f.path)), ...(parsed.success ? [] : parsed.error.issues.map((i) => formatPath(i.path.filter((x): x is PathSegment => typeof x !== "symbol"))))]);
    found.push(...underflowedNumbers(raw, y.writtenNumbers, renamed, skip));
  }
  // Every problem in one report, in file order (a typo must not hide the next problem).
  const report = (issues: ConfigIssue[], more = false) => fail(issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)), more);
  if (!parsed.success) {
    const unknown: PathSegment[][] = [];
    // The values the schema refused (a wrong type, a bad value): left out for the second pass.
    const refused: PathSegment[][] = [];
    // The keys an unknown key was taken for a typo of (`requests_per_secnd` for
    // `requests_per_second`): that key's own "required" is the same slip, not a second problem.
    const meant = new Set<string>();
    // A whole number past 2^53 also breaks zod's implicit safe-integer bound: a second problem at
    // the same key, naming a range the key does not have ("must be from 0 to 9007199254740991"
    // beside "must be from 0 to 65535"; "from -9007199254740991 to 65535" for -1e20). The key's own bound says it.
    const bounded = new Set(parsed.error.issues.filter((i) => (i.code === "too_big" || i.code === "too_small") && !isSafeIntegerBound(i)).map((i) => formatPath(i.path as PathSegment[])));
    for (const i of parsed.error.issues) {
      const path = i.path.filter((s): s is PathSegment => typeof s !== "symbol");
      if (isSafeIntegerBound(i) && bounded.has(formatPath(path))) continue;
      if (i.code === "unrecognized_keys") {
        for (const k of i.keys) {
          unknown.push([...path, k]);
          // A legacy key already has its own, better message.
          // (a key with a no-break space or a zero width space in it looks like the right one)
          const unseen = unseenCharacterProblem(k);
          // (suggested for the first 100: a file of 40,000 unknown keys is not worth seconds of comparing)
          const like = unseen || unknown.length > 100 ? undefined : likelyKey(k, keysAt(path));
          const places = unseen || like || unknown.length > 100 ? undefined : placesOf(k, path);
          const glued = gluedKeyName(k);
          const where = glued !== undefined && keysAt(path).includes(glued)
            ? ` (a ':' with no space after it: inside { } YAML reads \`${glued}:value\` as one key; write \`${glued}: value\`)`
            : places ? ` (a key of another section: ${places.length > 1 ? `${places.slice(0, -1).join(", ")} or ${places.at(-1)}` : places[0]})`
            : formatPath(path) === "cache.redis" && REDIS_URL_PARTS.has(k.toLowerCase()) ? REDIS_URL_HINT : "";
          if (like !== undefined) meant.add(formatPath([...path, like]));
          if (!hinted.has(formatPath([...path, k]))) found.push({ path: [...path, k], message: k === "" ? "an empty key (written '', ~ or null): remove it" : k === "..." || k === "\u2026" ? PLACEHOLDER_KEY : `unknown key '${shownKey(k)}'${unseen ? ` (it ${unseen})` : like ? ` (did you mean '${like}'?)` : where}` });
        }
        continue;
      }
      if (path.length > 0) refused.push(path);
      // An unset ${VAR} left as written: "not set" says it all (not also "expected a number"), at
      // its own line and wherever a merge key (<<: *anchor) copied it.
      if (hinted.has(formatPath(path)) || namesMissingVar(valueAt(raw, path), missingVars)) continue;
      // An unquoted ${VAR} whose value reads as a number or boolean: the variable, never its value.
      const typedVar =
        (i.code === "invalid_type" && i.expected === "string") || (i.code === "invalid_union" && i.errors.some((b) => b.some((e) => e.path.length === 0 && e.code === "invalid_type" && e.expected === "string")))
          ? y.typedVars.get(formatPath(path))
          : undefined;
      // A quoted "${VAR}" where a number or a boolean goes: "write it without quotes" alone went in
      // a circle inside { } (there an unquoted ${ is YAML syntax); say what works.
      const quotedVar = y.quotedVars.get(formatPath(path));
      if (quotedVar !== undefined && typeof valueAt(raw, path) === "string" && wantsNumberOrBoolean(i)) {
        found.push({
          path,
          message: `"\${${quotedVar}}" is quoted, so its value is a string, and a number or a boolean goes here: write \${${quotedVar}} without quotes, and if it is inside { } or [ ], write that mapping in block style, one key per line (there an unquoted \${${quotedVar}} takes its value's type)`,
        });
        continue;
      }
      // `port: !!str ${PORT}`: a string by its tag (set PORT to a plain number said the opposite of what helps)
      const taggedVar = y.taggedVars.get(formatPath(path));
      if (taggedVar !== undefined && typeof valueAt(raw, path) === "string" && wantsNumberOrBoolean(i)) {
        found.push({ path, message: `"${taggedVar}" is tagged as a string, so its value is a string, and a number or a boolean goes here: drop the tag (an unquoted ${taggedVar.slice(taggedVar.indexOf(" ") + 1)} alone takes its value's type)` });
        continue;
      }
      if (typedVar !== undefined) {
        found.push({ path, message: `\${${typedVar}} was written without quotes and its value reads as a number or boolean: write "\${${typedVar}}" (quoted) to keep it a string` });
        continue;
      }
      found.push({ path, message: zodMessage(i, raw, y.stringVars.get(formatPath(path)), y.partVars.get(formatPath(path)), y.stringTags.get(formatPath(path))) });
    }
    for (let j = found.length - 1; j >= 0 && meant.size > 0; j--) if (found[j]!.message.startsWith("required") && meant.has(formatPath(found[j]!.path))) found.splice(j, 1);
    // The rest is checked as if the unknown keys and the refused values were not there (a refused
    // value with a default takes it), so the report also lists what the semantic checks would
    // say next (a duplicate prefix, a short secret...). When leaving them out still fails (a
    // required value was refused), those checks wait for the next run.
    const without = withoutKeys(raw, [...unknown, ...refused], standIn);
    const again = ConfigSchema.safeParse(without);
    if (!again.success) throw report(found.map(toIssue), true);
    // Not about a value already reported (an unset ${VAR} left as written is no short
    // secret), nor inside a list entry holding an unknown key (`param_name` explains the
    // missing `name` beside it).
    const reported = new Set(found.map((f) => formatPath(f.path)));
    const holders = new Set([...unknown, ...refused].filter((p) => typeof p.at(-2) === "number").map((p) => formatPath(p.slice(0, -1))));
    // Nor about a sibling of a refused value, judged against the default that stands in for
    // it (a refused `jwt.algorithm: ES512` read as HS256 said to set jwt.secret).
    // (a value no such check reads, given a stand-in, judges none of them)
    const refusedIn = new Set(refused.filter((p) => standIn(p) === undefined).map((p) => formatPath(p.slice(0, -1))));
    // Such a sibling's own checks (a short session_key beside a refused max_session_seconds, an
    // endpoint with a password beside a refused timeout) were not made either: the header says
    // more checks wait, so a run that lists one problem does not read as the whole list.
    let held = false;
    const covered = (path: PathSegment[]) => {
      if (reported.has(formatPath(path)) || path.some((_, k) => holders.has(formatPath(path.slice(0, k))))) return true;
      if (refusedIn.has(formatPath(path.slice(0, -1)))) return (held = true);
      return false;
    };
    for (const i of validateConfig(again.data, { baseDir, tls: opts.tls }).issues) if (!covered(i.path)) found.push(i);
    throw report(found.map(toIssue), held);
  }
  const semantic = validateConfig(parsed.data, { baseDir, tls: opts.tls });
  if (found.length > 0) {
    // (a duplicate key, an unset ${VAR}, a legacy key's hint: the rules across fields are still
    // checked, so one run lists them too, except where they are about a value already reported)
    const reported = new Set(found.map((f) => formatPath(f.path)));
    for (const i of semantic.issues) if (!reported.has(formatPath(i.path))) found.push(i);
    throw report(found.map(toIssue));
  }
  if (semantic.issues.length > 0) throw report(semantic.issues.map(toIssue));
  diskItemDefault(raw, semantic.config);
  // (what is valid but probably unwanted is a warning at start-up, as the README says: at info, a
  // secret with a secret file's newline or an S3 API open to every host went unsaid under level warn)
  const warnings = [...listenerAddressNotes(raw as Record<string, unknown>), ...unexpandedTemplates(raw), ...paddedSecrets(raw), ...unusedMemorySection(raw, semantic.config, (path) => formatIssues([{ path: "", message: "", line: y.lineOf(path) }], opts.file))];
  const notes = [...adopted.notes, ...otherAuthorizerKeys(raw), ...warnings];
  if (notes.length > 0) semantic.config.notes = notes;
  if (warnings.length > 0) semantic.config.warnings = warnings;
  return semantic.config;
}

/**
 * cache.memory's keys while the memory layer is not used (`cache_layers` leaves it out, or no
 * bucket is cached), named with where the file writes them (`at`: "config.yaml:12: "): read by
 * nothing, they were taken without a word, an operator sizing a layer that does not exist. With
 * the cache on, its default_ttl_seconds is still every layer's freshness, and with the disk alone
 * its item size how much a fill reads whole (bucketCachePolicy). (A cache on without any
 * bucket opting in, or buckets under cache.enabled: false, have notes of their own.)
 */
function unusedMemorySection(raw: unknown, config: Config, at: (path: PathSegment[]) => string): string[] {
  const cache = (raw as { cache?: unknown } | null)?.cache;
  const memory = cache !== null && typeof cache === "object" ? (cache as { memory?: unknown }).memory : undefined;
  if (memory === null || typeof memory !== "object" || Array.isArray(memory)) return [];
  const layers = config.cache.cache_layers;
  const cached = config.buckets.some((b) => b.cache?.enabled === true);
  let keys = Object.keys(memory);
  let why: (them: string) => string;
  if (!layers.includes("memory")) {
    why = (them) => `cache.cache_layers (${layers.join(", ")}) leaves the memory layer out: add memory to cache_layers to use it, or remove ${them}`;
    if (config.cache.enabled && cached) {
      // With the disk alone, memory's item size (its default: 10, or max_cache_size_mb when
      // smaller) is how much a fill reads whole before the client gets it (bucketCachePolicy's
      // bufferBytes): in use, and until 2026-12-07 named as having no effect.
      const m = config.cache.memory;
      const buffers = !layers.includes("redis") ? (k: string) => k === "max_item_size_mb" || (k === "max_cache_size_mb" && !("max_item_size_mb" in memory) && m.max_item_size_mb === m.max_cache_size_mb) : () => false;
      keys = keys.filter((k) => k !== "default_ttl_seconds" && !buffers(k));
    }
  } else if (!cached && (cache as { enabled?: unknown }).enabled !== true) {
    const off = (cache as { enabled?: unknown }).enabled === false ? "cache.enabled is false" : "no bucket is cached (a bucket caches only with its own cache: { enabled: true })";
    why = () => `${off}, so there is no memory layer`;
  } else return [];
  if (keys.length === 0) return [];
  const named = keys.map((k) => `cache.memory.${k}`).join(", ");
  return [`${at(["cache", "memory"])}${named} ${keys.length > 1 ? "have" : "has"} no effect: ${why(keys.length > 1 ? "them" : "it")}`];
}

/**
 * A disk layer's max_item_size_mb left out is 1024, or what each process holds when smaller: with
 * `server.workers` each holds 1/N of max_disk_size_mb (diskShareNote), and the default had been the
 * whole of it (workers: 2 over 256 MiB took items up to 256 MiB that no process had room for, and
 * start-up warned to raise max_disk_size_mb or lower max_item_size_mb, neither of them written).
 */
function diskItemDefault(raw: unknown, config: Config): void {
  const disk = config.cache.disk;
  const written = (raw as { cache?: { disk?: { max_item_size_mb?: unknown } } }).cache?.disk?.max_item_size_mb !== undefined;
  if (disk === undefined || written) return;
  disk.max_item_size_mb = Math.min(disk.max_item_size_mb, diskShareMb(disk.max_disk_size_mb, workerProcesses(config.server.workers)));
}

/** Secret-bearing keys of a bucket's s3 section (a value there that looks like an unexpanded template is named, never shown). */
const CREDENTIAL_KEYS = ["access_key", "secret_key", "session_token"] as const;
/** `$VAR` without braces (only `${VAR}` is substituted here), or a Helm/Go template left in. */
const TEMPLATE = /^\$[A-Za-z_][A-Za-z0-9_]*$|\{\{.*\}\}/;

/**
 * The secret-bearing values of the config as written (after ${VAR} substitution), with their
 * paths: `s3` for the ones sent to S3 (a bucket's or replica's keys), `internal` for the STS
 * session keys, which only this proxy (and its replicas) use on both ends.
 */
function secretValues(raw: unknown): Array<{ path: PathSegment[]; value: unknown; s3?: boolean; internal?: boolean }> {
  const out: Array<{ path: PathSegment[]; value: unknown; s3?: boolean; internal?: boolean }> = [];
  const obj = (v: unknown): Record<string, unknown> | undefined => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
  const doc = obj(raw);
  list(doc?.buckets).forEach((b, i) => {
    const s3 = obj(obj(b)?.s3);
    for (const k of CREDENTIAL_KEYS) out.push({ path: ["buckets", i, "s3", k], value: s3?.[k], s3: true });
    list(s3?.replicas).forEach((r, j) => {
      for (const k of CREDENTIAL_KEYS) out.push({ path: ["buckets", i, "s3", "replicas", j, k], value: obj(r)?.[k], s3: true });
    });
  });
  const s3Api = obj(doc?.s3_api);
  list(s3Api?.credentials).forEach((c, i) => out.push({ path: ["s3_api", "credentials", i, "secret_access_key"], value: obj(c)?.secret_access_key }));
  const sts = obj(s3Api?.sts);
  out.push({ path: ["s3_api", "sts", "session_key"], value: sts?.session_key, internal: true });
  list(sts?.previous_session_keys).forEach((k, i) => out.push({ path: ["s3_api", "sts", "previous_session_keys", i], value: k, internal: true }));
  const jwt = obj(doc?.jwt);
  out.push({ path: ["jwt", "secret"], value: jwt?.secret });
  list(jwt?.keys).forEach((k, i) => out.push({ path: ["jwt", "keys", i, "secret"], value: obj(k)?.secret }));
  return out;
}

/** Notes for secrets that look like templates nobody expanded: they are used (sent to S3) as they are. Named, never shown. */
function unexpandedTemplates(raw: unknown): string[] {
  return secretValues(raw)
    .filter((s) => typeof s.value === "string" && TEMPLATE.test(s.value))
    .map((s) => `${formatPath(s.path)} looks like a template that was not expanded ($VAR or {{ }}): only \${VAR} is substituted here, so it is ${s.s3 ? "sent to S3" : "used"} as written`);
}

/**
 * Notes for secrets with whitespace at either end (the newline a secret file or `echo` leaves):
 * they are used as written, so every signature or token made with the trimmed value is refused,
 * with nothing pointing at the whitespace. Named, never shown.
 */
function paddedSecrets(raw: unknown): string[] {
  return secretValues(raw)
    .filter((s): s is typeof s & { value: string } => !s.internal && typeof s.value === "string" && s.value !== "" && s.value.trim() !== s.value)
    .map((s) => {
      const v = s.value;
      const lead = /^\s*/.exec(v)![0],
        trail = v.trim() === "" ? "" : /\s*$/.exec(v)![0];
      const ends = [lead && `starts with ${spaces(lead)}`, trail && `ends with ${spaces(trail)}`].filter(Boolean).join(" and ");
      const guess = /\n$/.test(trail) ? " (the last line end of a secret file or of echo?)" : "";
      return `${formatPath(s.path)} ${ends}${guess}: it is used as written, whitespace included, so signatures or tokens made with the trimmed value are refused`;
    });
}

/** Whitespace at an end of a secret, in words ("a newline", "2 spaces"), never the secret. */
function spaces(w: string): string {
  const words: Record<string, string> = { "\n": "a newline", "\r\n": "a CR LF line end", " ": "a space", "\t": "a tab" };
  if (words[w]) return words[w];
  if (/^ +$/.test(w)) return `${w.length} spaces`;
  return `${w.length} whitespace characters (${[...w].map((c) => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`).join(" ")})`;
}

/** A deep copy of `raw` without the keys at `paths` (each the path of one key). */
function withoutKeys(raw: object, paths: PathSegment[][], standIn: (path: PathSegment[]) => unknown = () => undefined): unknown {
  const copy = structuredClone(raw) as Record<string | number, unknown>;
  for (const p of paths) {
    let node: unknown = copy;
    for (let k = 0; k < p.length - 1 && node !== null && typeof node === "object"; k++) node = (node as Record<string | number, unknown>)[p[k]!];
    if (node === null || typeof node !== "object") continue;
    const instead = standIn(p);
    if (instead === undefined) delete (node as Record<string | number, unknown>)[p[p.length - 1]!];
    else (node as Record<string | number, unknown>)[p[p.length - 1]!] = instead;
  }
  return copy;
}

/**
 * Required values that no check across keys reads, and a stand-in each takes in the second pass
 * in place of a refused or missing one: left out, its entry failed again and held every other
 * check back (a short secret_access_key held back a short sts.session_key, said a run later).
 */
const STAND_INS: Record<string, unknown> = { "s3_api.credentials[].secret_access_key": "(refused: a stand-in)" };

function standIn(path: PathSegment[]): unknown {
  return STAND_INS[formatPath(path).replace(/\[\d+\]/g, "[]")];
}

/** Parses and validates config text. Throws ConfigError with every issue found. */
export function parseConfig(text: string, opts: ParseOptions = {}): Config {
  return deepFreeze(parseConfigUnfrozen(text, opts));
}

/**
 * Reads a config file, at most MAX_CONFIG_BYTES of it: a huge file is refused from its size, and
 * one with no real size (/dev/zero, a pipe) cannot make it read forever. Throws ConfigError
 * (never a raw fs error). Asynchronous on purpose, at start-up (--check and reloads read on the
 * loader thread: readConfigTextBlocking): a SIGTERM or SIGHUP that arrives while the file is read
 * (a pipe, a slow mount) is handled then, "stopped before serving" (early-signals.test.ts); a
 * blocking read deferred it past the start.
 */
export function readConfigText(path: string): Promise<string> {
  return readConfigFile(path, async (p) => {
    const fh = await open(p, "r");
    return { stat: () => fh.stat(), read: async (buf, offset, length) => (await fh.read(buf, offset, length, null)).bytesRead, close: () => fh.close() };
  });
}

/**
 * readConfigText with blocking calls, for the config loader thread (load-worker.ts). A read that
 * never ends (a FIFO nobody writes to, a file on a hung network mount) then blocks that thread,
 * which the load's timeout abandons, and nothing else: the async fs API would run it on one of the
 * runtime's few shared I/O threads and keep that thread for good, and once a couple of such reloads
 * had timed out every later async file operation of the process (disk cache reads and writes, the
 * audit trail, the next reload's own read) waited behind them forever.
 */
export function readConfigTextBlocking(path: string): Promise<string> {
  return readConfigFile(path, (p) => {
    const fd = openSync(p, "r");
    return { stat: () => fstatSync(fd), read: (buf, offset, length) => readSync(fd, buf, offset, length, null), close: () => closeSync(fd) };
  });
}

/** An open config file: asynchronous calls (readConfigText) or blocking ones (readConfigTextBlocking). */
interface ConfigFile {
  stat(): { isFile(): boolean; size: number } | Promise<{ isFile(): boolean; size: number }>;
  read(buf: Buffer, offset: number, length: number): number | Promise<number>;
  close(): unknown;
}

/** The bounded read of readConfigText and readConfigTextBlocking, through `openFile`'s calls. */
async function readConfigFile(path: string, openFile: (path: string) => ConfigFile | Promise<ConfigFile>): Promise<string> {
  const fail = (message: string) => new ConfigError([{ path: "", message }], path);
  let file: ConfigFile | undefined;
  try {
    file = await openFile(path);
    const st = await file.stat();
    if (st.isFile() && st.size > MAX_CONFIG_BYTES) throw fail(tooLarge(String(st.size)));
    const buf = Buffer.allocUnsafe(MAX_CONFIG_BYTES + 1);
    let total = 0;
    for (;;) {
      const bytesRead = await file.read(buf, total, buf.length - total);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > MAX_CONFIG_BYTES) throw fail(tooLarge(`more than ${MAX_CONFIG_BYTES}`));
    }
    return decodeConfigText(buf.subarray(0, total), path);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw fail(`cannot read config${shownFull(path)}: ${readFailure(err)}`);
  } finally {
    try {
      await file?.close();
    } catch {}
  }
}

/**
 * The file's bytes as text, refused when they are not UTF-8: decoding with replacement turned a
 * secret saved as Latin-1 (`caf\xE9…`) into another secret (`caf\uFFFD…`) that --check passed
 * and S3 refused at every signature. Reported at the first bad byte's line and column, never
 * shown (it may be part of a secret). A UTF-8 byte order mark is dropped, as before.
 */
function decodeConfigText(bytes: Uint8Array, path: string): string {
  const fail = (message: string, line?: number, column?: number) => new ConfigError([{ path: "", message, line, column }], path);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    // (a UTF-16 file, Windows' "Unicode", starts with its byte order mark)
    if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) throw fail("the config is UTF-16 text (it starts with a UTF-16 byte order mark): save the file as UTF-8");
    // The shortest prefix that fails to decode ends at the first bad byte (a streaming decode
    // holds back an incomplete sequence at the end rather than failing on it).
    let lo = 0;
    let hi = bytes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      let ok = true;
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, mid + 1), { stream: true });
      } catch {
        ok = false;
      }
      if (ok) lo = mid + 1;
      else hi = mid;
    }
    // The sequence that failed starts at `lo`, or earlier when the bytes before it end with a
    // sequence left incomplete (held back by the streaming decode; also a file that ends in one):
    // at that sequence's lead byte.
    let bad = lo;
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, lo));
    } catch {
      while (bad > 0 && bytes[bad - 1]! < 0xc0) bad--;
      bad--;
    }
    const lineStart = bytes.lastIndexOf(0x0a, bad - 1) + 1;
    let line = 1;
    for (let i = 0; i < lineStart; i++) if (bytes[i] === 0x0a) line++;
    const column = new TextDecoder().decode(bytes.subarray(lineStart, bad)).length + 1;
    throw fail("the config is not UTF-8 text: this line holds a byte sequence that is not UTF-8 (not shown: it may be part of a secret); save the file as UTF-8", line, column);
  }
}

/** A relative config path's absolute form, in parentheses (the folder it was looked for in: a service's working directory is not always the one expected), or "". */
function shownFull(path: string): string {
  const full = resolve(path);
  return full === path ? "" : ` (${shownArgument(full)})`;
}

/** Why a config file could not be read, in words and with the system's code (a 4 KB path said only "cannot be read"). */
const READ_FAILURES: Record<string, string> = {
  ENOENT: "file not found",
  EACCES: "permission denied",
  EPERM: "permission denied (EPERM)",
  EISDIR: "is a directory",
  ENAMETOOLONG: "the path is too long (ENAMETOOLONG: a name in it over 255 bytes, or the whole path over 4095)",
  ENOTDIR: "a part of the path is a file, not a folder (ENOTDIR)",
  ELOOP: "too many symbolic links on the path, or a link loop (ELOOP)",
  ENXIO: "no device or reader behind it (ENXIO)",
  EMFILE: "too many open files (EMFILE)",
  ENFILE: "too many open files (ENFILE)",
  EIO: "an input/output error (EIO)",
};

function readFailure(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== "string") return "cannot be read";
  return READ_FAILURES[code] ?? (/^E[A-Z0-9]{1,15}$/.test(code) ? `cannot be read (${code})` : "cannot be read");
}

/** Reads a config file and validates it, on the calling thread (loadConfigSource without the text; tests and benchmarks). */
export async function loadConfig(path: string, env?: Record<string, string | undefined>): Promise<Config> {
  return (await loadConfigSource(path, env)).config;
}

/**
 * loadConfig, with the exact text it validated: with server.workers > 1 the primary hands that
 * text to its children (they never read the file themselves).
 */
export async function loadConfigSource(path: string, env?: Record<string, string | undefined>): Promise<{ config: Config; text: string }> {
  const text = await readConfigText(path);
  return { config: parseConfig(text, { file: path, env, baseDir: configBaseDir(path) }), text };
}
