/**
 * The YAML layer of config loading, linear in the size of the document:
 *
 * - parse with the yaml package's own duplicate-key check OFF: it compares each new key with
 *   every earlier key of its mapping (yaml 2.x `mapIncludes`, `items.some(...)`), which is
 *   quadratic: 40k keys in one mapping took 11 s;
 * - one pass over the AST that finds every duplicate key with a Set per mapping, records the line
 *   of every path (for error messages), and substitutes ${VAR} in string values.
 *
 * Substitution happens on parsed scalars rather than on the raw text, so a secret containing
 * `#`, `: ` or a newline cannot change the YAML's structure, and a `${VAR}` inside a comment
 * is never required.
 */
import { ellipsized } from "../util/text.ts";
import { isAlias, isMap, isPair, isScalar, isSeq, Lexer, LineCounter, parse as parseYaml, parseDocument, Parser, type Document, type ScalarTag, type YAMLMap, type Node, type Scalar, type YAMLError } from "yaml";
import { formatPath, gluedKeyName, shownKey, type PathSegment } from "./path.ts";
import { unseenOnLine } from "./validate.ts";

export interface PathIssue {
  path: PathSegment[];
  message: string;
  line?: number;
  /** (YAML syntax errors) the column on that line. */
  column?: number;
}

/** A scalar tagged `!!str` or `!`: the tag, and how its text is written (plain, quoted, or a block scalar, `|` or `>`, a string with or without the tag). */
export type StringTag = { tag: string; written: "plain" | "quoted" | "block" };

export interface ParsedYaml {
  doc: Document;
  /** Line of the value at a formatted path (`buckets[0].s3`), or of its key when the value is empty. */
  lineOf(path: readonly PathSegment[]): number | undefined;
  /** Duplicate keys and missing ${VAR}s, in document order. */
  issues: PathIssue[];
  /** Formatted paths whose unquoted `${VAR}` took its value's YAML type (a number or boolean): the variable's name. */
  typedVars: Map<string, string>;
  /** Formatted paths whose value is one quoted `"${VAR}"` or `"${VAR:-default}"` (always a string): the placeholder as written, without `${` `}`. */
  quotedVars: Map<string, string>;
  /** Formatted paths whose value is one unquoted `${VAR}` tagged `!!str` or `!` (a string by its tag): the tag and the placeholder as written (`!!str ${PORT}`). */
  taggedVars: Map<string, string>;
  /** Formatted paths whose scalar is tagged `!!str` or `!` (a string by its tag, whatever its text): the tag as written, and how the text is written. */
  stringTags: Map<string, StringTag>;
  /** Formatted paths whose value was exactly one `${VAR}` from the environment and stayed a string (quoted, or its value reads as no number or boolean): the variable's name. */
  stringVars: Map<string, string>;
  /** Formatted paths whose value holds a `${VAR}` from the environment among other text: the (first) variable's name. */
  partVars: Map<string, string>;
  /** Each alias node and the node it names (null: no anchor of that name before it). */
  aliasTargets: Map<unknown, unknown>;
  /** Formatted paths whose number JavaScript cannot hold as written (past 2^53, `1e400`): the text written and the number read. */
  writtenNumbers: Map<string, { written: string; read: string }>;
}

/**
 * Every alias of the document and the node it names: the latest anchor of that name before it,
 * found in one pass in document order (yaml's Alias.resolve searches the whole document on each
 * call: 600 aliases in a 300-bucket config took 5 s).
 */
function aliasTargetsOf(doc: Document): Map<unknown, unknown> {
  const anchors = new Map<string, unknown>();
  const targets = new Map<unknown, unknown>();
  eachNode(doc, (node) => {
    if (isAlias(node)) targets.set(node, anchors.get(node.source) ?? null);
    else if (node.anchor) anchors.set(node.anchor, node);
  });
  return targets;
}

/**
 * Every node of the document in document order (a collection before what it holds, a key before
 * its value), with an explicit stack. The yaml package's visit() copies the path at each node: its
 * cost grew with the square of the nesting depth (5,500 closed brackets, 11 KB, took 10 s to load).
 */
function eachNode(doc: Document, fn: (node: Node) => void): void {
  const stack: unknown[] = [doc.contents];
  while (stack.length > 0) {
    const n = stack.pop();
    if (isPair(n)) {
      stack.push(n.value, n.key);
      continue;
    }
    if (!isMap(n) && !isSeq(n) && !isScalar(n) && !isAlias(n)) continue;
    fn(n);
    if (isMap(n) || isSeq(n)) for (let i = n.items.length - 1; i >= 0; i--) stack.push(n.items[i]);
  }
}

/** Each anchor name's first node in the document (an alias before it names none: YAML reads anchors in order). */
function firstAnchorsOf(doc: Document): Map<string, unknown> {
  const anchors = new Map<string, unknown>();
  eachNode(doc, (node) => {
    if (!isAlias(node) && node.anchor && !anchors.has(node.anchor)) anchors.set(node.anchor, node);
  });
  return anchors;
}

/** A placeholder, or `$${`: a literal `${` (as in Compose files). */
const ENV_RE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const WHOLE_RE = /^\$\{[^}]+\}$/;
/** ${NAME followed by anything but "}" or ":-": a shell expansion form that is not substituted. */
const UNSUPPORTED_RE = /(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?![A-Za-z0-9_}]|:-)(:?[^}A-Za-z0-9_]?)/g;
/** `${` not followed by a variable name (and not the `$${` of a literal one), up to its `}`. */
const NOT_A_NAME_RE = /(?<!\$)\$\{(?![A-Za-z_])[^}]*\}?/g;
/** ${NAME:-…${…: a variable inside a default (shells and Compose expand it; here the default is literal text). */
const NESTED_DEFAULT_RE = /(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*):-[^}]*\$\{/g;
/**
 * Keys whose value may be a secret (or hold one: a URL's password). A `${` inside such a value,
 * beside other text, may be part of the secret: what follows it is never shown in an issue.
 */
const SECRET_KEY_RE = /secret|password|passwd|token|session_key|api_key|credential|url$/i;

/** A node on the walk: its formatted path, and a link to its parent to rebuild the segments only when an issue needs them. */
interface Frame {
  node: unknown;
  fmt: string;
  seg: PathSegment | undefined;
  parent: Frame | undefined;
  /** Mappings and lists around the node. */
  depth: number;
}

function segments(f: Frame | undefined): PathSegment[] {
  const out: PathSegment[] = [];
  for (let x = f; x && x.seg !== undefined; x = x.parent) out.push(x.seg);
  return out.reverse();
}

function child(fmt: string, seg: PathSegment): string {
  return typeof seg === "number" ? `${fmt}[${seg}]` : fmt ? `${fmt}.${seg}` : seg;
}

function shortKey(k: string, parent: PathSegment | undefined): string {
  // (`{ secret_key:s3cr3t, secret_key:s3cr3t }`: not what follows the ':', see shownKey)
  return parent !== "claims" && gluedKeyName(k) !== undefined ? shownKey(k) : ellipsized(k, 60);
}

/**
 * Whether a line has a flow collection opened before an unquoted ${ (inside it): a `{` or `[`
 * with neither a closing bracket nor a quote between it and the `${`. One pass: the regular
 * expression it replaces, /[{[][^}\]"']*\$\{/, scanned on from every bracket, quadratic in a line
 * of brackets (a 100 KB config whose one line `x: a[[[…[ b: c` is a syntax error took minutes
 * to say so, and its load was cut after 30 s as "took longer than 30 s").
 */
function flowPlaceholderOn(line: string): boolean {
  let open = false;
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === 0x24 && open && line.charCodeAt(i + 1) === 0x7b) return true; // "${" after an open "{" or "["
    if (c === 0x7b || c === 0x5b) open = true; // "{" "["
    else if (c === 0x7d || c === 0x5d || c === 0x22 || c === 0x27) open = false; // "}" "]" '"' "'"
  }
  return false;
}

/** What YAML could read as a number or a boolean (1.2 core schema, as the yaml package's default). */
const SCALAR_RE = /^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+|0o[0-7]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|true|True|TRUE|false|False|FALSE)$/;

/**
 * Characters of variable values (and defaults) substituted into one config, in all. The file is at
 * most 1 MiB (load.ts), but each of its `${VAR}`s could bring any value: 100,000 references to a
 * 100 KB variable built 10 GB of strings. Inline PEM keys and certificates are a few KB each.
 */
const MAX_SUBSTITUTED_CHARS = 4 * 1024 * 1024;

/**
 * The YAML 1.2 core schema's `!!float` takes an integer's form too (`!!float 8080` is 8080.0), but
 * the yaml package's float tags each want a dot or an exponent, so `ttl: !!float 30` was called an
 * unknown tag. Listed after the core tags: a plain untagged `30` still resolves as an integer.
 */
const CORE_TAG_GAPS: ScalarTag[] = [{ tag: "tag:yaml.org,2002:float", default: true, test: /^[-+]?[0-9]+$/, resolve: (s: string) => parseFloat(s) }];

function parseYamlScalar(text: string): unknown {
  try {
    return parseYaml(text);
  } catch {
    return text;
  }
}

/** The tag that makes a scalar a string whatever its text (`!!str`, or the non-specific `!`), as written; undefined when it has neither. */
function stringTag(node: { tag?: string }): string | undefined {
  return node.tag === "tag:yaml.org,2002:str" ? "!!str" : node.tag === "!" ? "!" : undefined;
}

/**
 * Replaces ${VAR} and ${VAR:-default} in one string scalar. An UNQUOTED scalar that is exactly
 * one placeholder takes the YAML type of its value (`port: ${PORT}` → a number); quoted scalars,
 * and those tagged `!!str` or `!`, always stay strings. A missing variable is left as written (so the schema does not report a
 * second, confusing error) and reported.
 */
function substituteScalar(
  node: { value: unknown; type?: string; tag?: string },
  env: Record<string, string | undefined>,
  budget: { left: number },
  missing: (name: string, empty: boolean) => void,
  tooLarge: (name: string, chars: number) => void,
  /** (`text`: what was substituted, when it became a number) */
  typed?: (name: string, isString: boolean, text?: string) => void,
  part?: (name: string) => void,
): void {
  const text = node.value as string;
  let failed = false;
  let fromEnv: string | undefined;
  const replaced = text.replace(ENV_RE, (whole: string, name: string | undefined, def: string | undefined) => {
    if (name === undefined) return "${";
    const v = env[name];
    const value = v !== undefined && v !== "" ? v : def;
    if (value === undefined) {
      missing(name, v === "");
      failed = true;
      return whole;
    }
    // Past the budget, left as written (as a missing one) and reported: nothing more is built.
    if (value.length > budget.left) {
      tooLarge(name, value.length);
      budget.left = 0;
      failed = true;
      return whole;
    }
    budget.left -= value.length;
    if (value === v) fromEnv ??= name;
    return value;
  });
  if (!failed && fromEnv !== undefined && !WHOLE_RE.test(text)) part?.(fromEnv);
  // (`bucket: !!str ${B}`, or `! ${B}`: a string by its tag, as a quoted one is; B=2024 was the number 2024)
  const plain = node.type === "PLAIN" && stringTag(node) === undefined;
  if (!failed && !plain && WHOLE_RE.test(text)) {
    node.value = replaced;
    // A quoted "${VAR}" is its variable's value alike: named, never shown (a value outside a fixed
    // set, `format: "${SECRET}"`, showed it)
    const name = /^\$\{([A-Za-z_][A-Za-z0-9_]*)/.exec(text)?.[1];
    if (name !== undefined && env[name] !== undefined && env[name] !== "") typed?.(name, true);
  } else if (!failed && plain && WHOLE_RE.test(text)) {
    // Only a number or a boolean is adopted; anything else stays the string it is. The value is
    // never parsed as YAML text that could fail: a parse error would quote it, and it may be a
    // secret (`secret_key: ${SK}` with SK = "[abc…").
    const value: unknown = SCALAR_RE.test(replaced.trim()) ? parseYamlScalar(replaced) : replaced;
    const name = /^\$\{([A-Za-z_][A-Za-z0-9_]*)/.exec(text)![1]!;
    if (typeof value === "number" || typeof value === "boolean") {
      node.value = value;
      typed?.(name, false, replaced);
    } else {
      node.value = replaced;
      // (from the variable, not from a ${VAR:-default} written in the file)
      if (env[name] !== undefined && env[name] !== "") typed?.(name, true);
    }
  } else node.value = replaced;
}

/**
 * The last flow collection ("{", "[") or quoted scalar of the text that is never closed, from the
 * yaml package's concrete syntax tree, or undefined. An explicit stack: nesting depth is bounded
 * only by the file size cap.
 */
function unclosedAt(text: string): { offset: number; what: string } | undefined {
  let found: { offset: number; what: string } | undefined;
  const stack: unknown[] = [...new Parser().parse(text)];
  while (stack.length > 0) {
    const t = stack.pop();
    if (t === null || typeof t !== "object") continue;
    if (Array.isArray(t)) {
      stack.push(...t);
      continue;
    }
    const tok = t as { type?: string; offset?: number; source?: string; start?: { source?: string }; end?: Array<{ type?: string }> };
    if (typeof tok.offset === "number" && (found === undefined || tok.offset > found.offset)) {
      if (tok.type === "flow-collection" && !(tok.end ?? []).some((x) => x.type === "flow-map-end" || x.type === "flow-seq-end")) {
        found = { offset: tok.offset, what: `'${tok.start?.source ?? "{"}'` };
      } else if ((tok.type === "double-quoted-scalar" || tok.type === "single-quoted-scalar") && typeof tok.source === "string") {
        const q = tok.source[0]!;
        const body = tok.source.trimEnd();
        if (body.length < 2 || !body.endsWith(q) || (q === '"' && /(^|[^\\])(\\\\)*\\"$/.test(body))) found = { offset: tok.offset, what: `quote (${q})` };
      }
    }
    for (const v of Object.values(tok)) if (v !== null && typeof v === "object") stack.push(v);
  }
  return found;
}

/** A token type of the yaml package's parser, in words (never the token's text: it may be a secret). */
const TOKEN_WORDS: Record<string, string> = {
  "double-quoted-scalar": "double-quoted scalar",
  "single-quoted-scalar": "single-quoted scalar",
  "block-scalar": "block scalar (| or >)",
  scalar: "plain scalar",
  "flow-map-start": "'{'",
  "flow-map-end": "'}'",
  "flow-seq-start": "'['",
  "flow-seq-end": "']'",
  "map-value-ind": "':'",
  "seq-item-ind": "'-'",
  "explicit-key-ind": "'?'",
  comma: "','",
  "doc-start": "'---'",
  "doc-end": "'...'",
  anchor: "anchor (&name)",
  alias: "alias (*name)",
  tag: "tag (!name)",
  "block-map": "block mapping",
  "block-seq": "block sequence",
  "flow-collection": "flow collection",
};
const tokenWords = (t: string) => TOKEN_WORDS[t] ?? (/^[a-z-]{1,40}$/.test(t) ? t.replace(/-/g, " ") : "token");

/** The forms a YAML 1.2 core tag takes, for a value it cannot (`!!bool yes`). */
const CORE_FORMS: Record<string, string> = {
  int: "YAML 1.2: digits with an optional sign, 0x… or 0o…",
  float: "YAML 1.2: a decimal number, .inf, -.inf or .nan",
  bool: "YAML 1.2: true or false",
  null: "YAML 1.2: null, ~ or empty",
};
/**
 * Rewrites of the yaml package's messages that quote the document's text (a token, a tag, an
 * escape, a directive): what they say, without what they quote. The text may be a secret
 * (`secret: "…"` right after a stray bracket was echoed whole).
 */
const QUOTING: Array<[RegExp, (m: RegExpExecArray) => string]> = [
  [/^Unexpected ([a-z-]+) token in YAML (?:stream|document)/, (m) => `unexpected ${tokenWords(m[1]!)} (check the brackets, quotes and indentation here and on the line before)`],
  [/^Not a YAML token/, () => "not a YAML token"],
  // (the yaml package's own recursion, past some 6,000 levels: a RangeError it reports as its error)
  [/^Maximum call stack size exceeded/, () => NESTED_TOO_DEEP],
  // (its ": " would otherwise be cut as a quote: "Missing , or ")
  [/^Missing , or : between (flow (?:sequence|map) items)/, (m) => `missing , or : between ${m[1]}`],
  [/^Block scalar header includes extra characters/, () => "a block scalar header (| or >) has extra characters after it"],
  [/^Invalid escape sequence/, () => "invalid escape sequence in a double-quoted string (write \\\\ for a backslash, or use single quotes)"],
  [/^Plain value cannot start with reserved character/, () => "a plain value cannot start with @ or ` (quote it)"],
  // A core-schema tag on a value it cannot take (`!!bool yes`, `!!int abc`): the tag is known, the value is not one.
  [/^Unresolved tag: tag:yaml\.org,2002:(int|float|bool|null)$/, (m) => `not a valid !!${m[1]} value (${CORE_FORMS[m[1]!]})`],
  [/^(?:Unresolved tag|Could not resolve tag|Not a valid tag|The .* tag has no suffix|Verbatim tags)/, () => "unknown tag (a value that starts with ! is a YAML tag: quote it)"],
  [/^Unsupported YAML version/, () => "unsupported %YAML version directive"],
  [/^Unknown directive/, () => "unknown directive (a line that starts with %)"],
  [/^Ordered maps must not include duplicate keys/, () => "ordered maps must not include duplicate keys"],
  [/^Unresolved plain scalar/, () => "unresolved plain scalar"],
  [/^Expected a flow scalar value, but found: ([a-z-]+)$/, (m) => `expected a flow scalar value, but found ${tokenWords(m[1]!)}`],
  [/^Unexpected (\S+) in (.*)$/, (m) => (/^[?:,-]$/.test(m[1]!) ? m[0] : `unexpected indicator in ${m[2]}`)],
  [/^Anchors and tags must be after the (\S+) indicator/, (m) => (/^[?:-]$/.test(m[1]!) ? m[0] : "anchors and tags must be after the indicator")],
];

/**
 * A yaml package error's message, safe to print: its first line without the package's own "at
 * line, column" (given apart), rewritten where the package quotes the document's text; anything
 * else that could quote it (quotes, ": " and what follows) is cut.
 */
export function safeYamlMessage(e: { message: string }): string {
  const first = (e.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "");
  for (const [re, say] of QUOTING) {
    const m = re.exec(first);
    if (m) return say(m);
  }
  if (/^Missing closing (?:"|')quote$/.test(first)) return first;
  return first.replace(/: .*$/s, "").replace(/"(?:[^"\\]|\\.)*"?|'[^']*'?|`[^`]*`?/g, "…");
}

/**
 * YAML syntax errors as issues with lines. After the first few they are mostly a cascade of the
 * first: 10 are listed and the rest counted.
 */
function syntaxIssues(text: string, errors: readonly YAMLError[], counter: LineCounter): PathIssue[] {
  const lineOf = (n: number | undefined) => (n === undefined ? "" : text.slice(counter.lineStarts[n - 1] ?? text.length, counter.lineStarts[n] ?? text.length));
  const firstMessage = (e: YAMLError) => `invalid YAML: ${safeYamlMessage(e)}`;
  // An unquoted ${VAR} inside { } or [ ]: its "{" is flow syntax, and every error after the first
  // is that one's cascade. Say so, once, with the two ways out.
  // (The parser stops at that ${'s "{": so also after a quoted value, on a later line of the
  // collection, or in JSON, which the line pattern alone missed.)
  const first = errors[0]!;
  const firstLine = first.linePos?.[0]?.line;
  if (text.startsWith("${", first.pos[0] - 1) || flowPlaceholderOn(lineOf(firstLine))) {
    return [{ path: [], line: firstLine, column: first.linePos?.[0]?.col, message: `${firstMessage(first)} (an unquoted \${VAR} inside { } or [ ] is read as YAML syntax: for a number or a boolean (a port, a size, true/false) write that mapping in block style, one key per line, where an unquoted \${VAR} takes its value's type; for a string, quote it: "\${VAR}" (a quoted value is always a string))` }];
  }
  const end = text.trimEnd().length;
  let unclosed: { offset: number; what: string } | undefined | null = null; // (null: not looked for yet)
  const syntax: PathIssue[] = errors.slice(0, 10).map((e) => {
    // (the yaml package says "Source contains multiple documents; please use YAML.parseAllDocuments()")
    if (e.code === "MULTIPLE_DOCS") {
      const at = e.linePos?.[0]?.line;
      return { path: [], line: at, message: `invalid YAML: the file must hold one YAML document, and a second one starts${at ? ` on line ${at}` : ""} (a \`---\` line, or what follows a \`...\` line): remove that line${text.slice(e.pos[0]).trim().replace(/^(---|\.\.\.)/, "").trim() === "" ? "" : ", and put the second document in a file of its own"}` };
    }
    const message = firstMessage(e);
    // An error found at the end of the file (a bracket or quote never closed) is reported where
    // that bracket or quote was opened, not on a line past the last one.
    const atEnd = e.pos[0] >= end;
    if (atEnd || /end with an? [}\]]|Missing closing/.test(message)) {
      if (unclosed === null) unclosed = unclosedAt(text);
      if (unclosed !== undefined) {
        const at = counter.linePos(unclosed.offset).line;
        return { path: [], message: `${message} (the ${unclosed.what} opened on line ${at} is never closed)`, line: atEnd ? at : e.linePos?.[0]?.line, column: atEnd ? undefined : e.linePos?.[0]?.col };
      }
    }
    // A no-break space (indentation copied from a web page) is text to YAML: its errors say nothing of it.
    const at = e.linePos?.[0]?.line;
    const unseen = at === undefined ? undefined : unseenOnLine(lineOf(at));
    // (`port: !!int ${PORT}`: the tag is resolved on the text as written, before substitution)
    const tagged = message.startsWith("invalid YAML: not a valid !!") && lineOf(at).slice(e.linePos?.[0]?.col ?? 0).includes("${");
    const why =
      unseen !== undefined ? ` (line ${at} holds ${unseen}, which YAML reads as text, not as a space: retype that part of the line)`
      : tagged ? " (a tag is applied to the text as written, before ${VAR} substitution: drop the tag; an unquoted ${VAR} alone takes its value's type)"
      : "";
    return { path: [], message: `${message}${why}`, line: at, column: e.linePos?.[0]?.col };
  });
  if (errors.length > 10) syntax.push({ path: [], message: `invalid YAML: ${errors.length - 10} more errors not listed` });
  return syntax;
}

/** Whether a merge key's value is one the yaml package merges: a mapping, an alias of one, or a list of those. */
function isMergeSource(v: unknown, aliasTargets: Map<unknown, unknown>): boolean {
  const one = (x: unknown) => isMap(x) || (isAlias(x) && isMap(aliasTargets.get(x)));
  return one(v) || (isSeq(v) && v.items.every(one));
}

/**
 * The deepest nesting of mappings and lists accepted. Every path of the walk is kept as text for
 * the lines of messages, so its cost grows with the square of the depth (5,500 closed brackets,
 * 11 KB, took seconds to load), and a few hundred more overflowed the yaml package's stack.
 */
const MAX_NESTING = 64;
const NESTED_TOO_DEEP = `mappings or lists nested more than ${MAX_NESTING} deep (a config needs fewer than 10)`;

/**
 * Where the text first nests more than MAX_NESTING deep on one line (flow brackets, and the
 * compact block indicators `- - -` / `? ? ?` before them), as an offset, or undefined; found
 * before the yaml package parses it. The package's parser recurses at each level: a 1 MiB line
 * of 500,000 `[` and as many `]` took 4 s of CPU to be refused, at the column where its stack
 * overflowed (5998), and 400,000 `- ` on one line ended the load with "Maximum call stack size
 * exceeded". Two linear passes: a scan of the characters that counts every bracket and every
 * `- ` or `? ` of the line (it stops at once on a config that never comes near the limit), and
 * only when that count passes the limit, the yaml package's lexer, which tells brackets and
 * indicators from the same characters in quoted and block scalars, plain values and comments,
 * up to the first token past the limit. (Deeper nesting the scan does not see, such as brackets
 * inside quotes between the opening ones, is still refused by the walk or the parser's own error.)
 */
function nestedTooDeepAt(text: string): number | undefined {
  let flow = 0;
  let run = 0;
  let near = false;
  for (let i = 0; i < text.length && !near; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) near = ++flow + run > MAX_NESTING; // "[" "{"
    else if (c === 0x5d || c === 0x7d) flow = flow > 0 ? flow - 1 : 0; // "]" "}"
    else if (c === 0x0a) run = 0;
    else if (c === 0x2d || c === 0x3f) { // "-" "?" before a space, a tab or a line end
      const d = text.charCodeAt(i + 1);
      if (d === 0x20 || d === 0x09 || d === 0x0a || d === 0x0d || Number.isNaN(d)) near = flow + ++run > MAX_NESTING;
    }
  }
  if (!near) return undefined;
  // The lexer's tokens are slices of the text, but for its markers of a document, a flow's end
  // and a scalar (one character each, not in the text); a scalar's marker comes before it.
  flow = 0;
  run = 0;
  let offset = 0;
  let scalar = false;
  for (const tok of new Lexer().lex(text)) {
    if (scalar) scalar = false;
    else if (tok === "\x1f" || tok === "\x02" || tok === "\x18") {
      scalar = tok === "\x1f";
      continue;
    } else if (tok === "[" || tok === "{") {
      if (++flow + run > MAX_NESTING) return offset;
    } else if (tok === "]" || tok === "}") flow = flow > 0 ? flow - 1 : 0;
    else if (tok[0] === "\n" || tok[0] === "\r") run = 0;
    else if ((tok === "-" || tok === "?") && flow === 0 && ++run > MAX_NESTING) return offset;
    offset += tok.length;
  }
  return undefined;
}

/** The most nodes a config may expand to with its aliases resolved (a 1 MiB file of plain YAML has far fewer). */
export const MAX_EXPANDED_NODES = 1_000_000;

/**
 * Whether the document, with every alias replaced by what it names, stays within
 * MAX_EXPANDED_NODES: the guard against aliases of aliases expanding exponentially ("billion
 * laughs") and aliases that name their own ancestor, counted on the expansion itself (the yaml
 * package's maxAliasCount counts references, so a config that merged one shared anchor into 100
 * buckets was refused as an attack). The count stops at the limit: the work is bounded by it.
 */
export function withinExpansionLimit(y: Pick<ParsedYaml, "doc" | "aliasTargets">): boolean {
  let count = 0;
  const queue: unknown[] = [y.doc.contents];
  while (queue.length > 0) {
    const n = queue.pop();
    if (n === null || n === undefined) continue;
    if (++count > MAX_EXPANDED_NODES) return false;
    if (isAlias(n)) queue.push(y.aliasTargets.get(n));
    else if (isMap(n)) for (const p of n.items) queue.push((p as { key?: unknown }).key, (p as { value?: unknown }).value);
    else if (isSeq(n)) for (const item of n.items) queue.push(item);
  }
  return true;
}

/** The message for an alias that names a node holding it (see aliasInsideItsAnchor). */
export const ALIAS_CYCLE = "an alias (*name) inside the node its anchor (&name) names: it would expand without end";

/**
 * The first alias, in document order, that names a node holding it (`a: &x [*x]`, `&x { b: *x }`,
 * a merge of its own mapping, at any depth), or undefined. Such a document expands without end:
 * withinExpansionLimit refused it with no line ("more than 1000000 nodes"), and nothing said
 * which alias it was. (An alias names an anchor met before it: its node is either still open, an
 * ancestor, or closed; no cycle runs through other aliases without one of them being inside its own.)
 *
 * A depth-first walk in document order: a node still open (on the current path) met through an
 * alias closes a cycle; a node already closed is not walked again, so aliases of aliases cost
 * nothing. An explicit stack, as the walk: nesting is bounded only by the file size cap.
 */
function aliasInsideItsAnchor(root: unknown, aliasTargets: Map<unknown, unknown>): unknown {
  const OPEN = 1;
  const DONE = 2;
  const state = new Map<unknown, number>();
  const stack: Array<{ node: unknown; close?: boolean }> = [{ node: root }];
  while (stack.length > 0) {
    const e = stack.pop()!;
    let n = e.node;
    if (e.close === true) {
      state.set(n, DONE);
      continue;
    }
    if (n === null || n === undefined) continue;
    if (isAlias(n)) {
      const target = aliasTargets.get(n);
      if (target === null || target === undefined) continue;
      const s = state.get(target);
      if (s === OPEN) return n;
      if (s === DONE) continue;
      n = target;
    }
    if (!isMap(n) && !isSeq(n)) continue;
    state.set(n, OPEN);
    stack.push({ node: n, close: true });
    if (isMap(n)) {
      for (let i = n.items.length - 1; i >= 0; i--) {
        const p = n.items[i] as { key?: unknown; value?: unknown };
        stack.push({ node: p.value }, { node: p.key });
      }
    } else for (let i = n.items.length - 1; i >= 0; i--) stack.push({ node: n.items[i] });
  }
  return undefined;
}

/**
 * A number JavaScript does not hold as written (`9007199254740993`, past 2^53, is read as
 * ...992; `1e400` as Infinity; `1e-400` as 0): its text, so a problem with it shows the number in
 * the file, not the rounded one (cut: a line of digits may be long).
 */
function noteWrittenNumber(n: Scalar, fmt: string, out: Map<string, { written: string; read: string }>, written: unknown = (n as Scalar & { source?: unknown }).source): void {
  const v = n.value;
  if (typeof v !== "number") return;
  // (a whole number read from one that is not, `8080.0000000000000001`, is noted too: writtenWhole)
  if (Number.isFinite(v) && (!Number.isInteger(v) || Number.isSafeInteger(v)) && v !== 0 && (!Number.isInteger(v) || typeof written !== "string" || writtenWhole(written))) return;
  if (typeof written !== "string" || written === String(v)) return;
  // (a zero written otherwise, `0.0` or `0e5`, is one: only a mantissa with a digit past 0 underflowed)
  if (v === 0 && !/[1-9]/.test(written.replace(/e.*$/i, ""))) return;
  out.set(fmt, { written: ellipsized(written, 64), read: String(v) });
}

/**
 * Whether a number's decimal text is a whole number as written (`8080`, `8080.0`, `8.08e3`; not
 * `8080.0000000000000001` or `1e-400`, which JavaScript reads as 8080 and 0). Text of another form
 * (`0x1F`, `.inf`) counts as whole: it is read exactly or refused elsewhere.
 */
function writtenWhole(text: string): boolean {
  const m = /^[-+]?(\d*)(?:\.(\d*))?(?:e([-+]?\d+))?$/i.exec(text.replaceAll("_", ""));
  if (m === null) return true;
  const frac = m[2] ?? "";
  const digits = (m[1]! + frac).replace(/^0+/, "");
  // (how many of the digits stand after the point once the exponent is applied)
  const scale = frac.length - Number(m[3] ?? 0);
  if (digits === "" || scale <= 0) return true;
  return scale <= digits.length && /^0*$/.test(digits.slice(-scale));
}

/** What parseYamlConfig's walk keeps across the scalars holding `${`: its issues and ParsedYaml's variable records. */
interface Substitution {
  env: Record<string, string | undefined>;
  /** What may still be substituted, and whether going past it was said (once: every later placeholder is refused too). */
  budget: { left: number; said: boolean };
  issues: PathIssue[];
  typedVars: Map<string, string>;
  quotedVars: Map<string, string>;
  taggedVars: Map<string, string>;
  stringVars: Map<string, string>;
  partVars: Map<string, string>;
  /** ParsedYaml.writtenNumbers: an unquoted ${VAR} whose value is a number past 2^53 is shown as its variable gave it. */
  writtenNumbers: Map<string, { written: string; read: string }>;
}

/** A scalar holding `${` at frame `f` (its line `at`): its placeholders substituted, each one this loader does not take said. */
function placeholders(n: Scalar & { value: string }, f: Frame, at: number | undefined, s: Substitution): void {
  // A secret written in the file that holds `${` (beside other text) is not a placeholder to
  // name: the text after `${` is part of the secret (it was echoed by --check and the logs).
  // (an item of a list is named by the list's key: previous_session_keys[0])
  const named = typeof f.seg === "number" ? f.parent?.seg : f.seg;
  const hidden = typeof named === "string" && SECRET_KEY_RE.test(named) && !WHOLE_RE.test(n.value);
  const HIDDEN = "holds a `${` that is not a placeholder this loader substitutes, or names a variable that is not set (not shown: it may be part of a secret); a literal `${` is written `$${`";
  let hiddenSaid = false;
  const sayHidden = () => {
    if (!hiddenSaid) s.issues.push({ path: segments(f), message: HIDDEN, line: at });
    hiddenSaid = true;
  };
  // A shell form this loader does not expand (${VAR:?msg}, ${VAR:=x}, ${VAR+x}, ...) would stay
  // in the value as written: said, with the variable's name and the operator only.
  for (const m of n.value.matchAll(UNSUPPORTED_RE)) {
    if (hidden) sayHidden();
    else s.issues.push({ path: segments(f), message: `\${${m[1]}${m[2]}…} is not supported: only \${VAR} and \${VAR:-default} are substituted`, line: at });
  }
  // `${` before no variable name (`${1AK}`, `${ AK }`, `${}`): left in the value as written
  // (sent to S3 as a credential) with no word; a literal `${` is written `$${`.
  for (const m of n.value.matchAll(NOT_A_NAME_RE)) {
    if (hidden) sayHidden();
    else s.issues.push({ path: segments(f), message: `${m[0].length > 40 ? m[0].slice(0, 40) + "…" : m[0]} is not a placeholder: a variable name is letters, digits and _, not starting with a digit (a literal \`\${\` is written \`$\${\`)`, line: at });
  }
  // ${A:-${B}} read ${B as A's default: the value became the literal text "${B}" (sent to S3
  // as a credential, or a secret "too short"). Said, with the outer variable's name only (in
  // a secret too: no secret holds `${NAME:-${` by chance).
  for (const m of n.value.matchAll(NESTED_DEFAULT_RE)) {
    s.issues.push({ path: segments(f), message: `\${${m[1]}:-\${…}} is not supported: a default is taken as written, so write it without a variable (only \${VAR} and \${VAR:-default} are substituted)`, line: at });
  }
  substituteScalar(
    n,
    s.env,
    s.budget,
    (name, empty) => (hidden ? sayHidden() : s.issues.push({ path: segments(f), message: `environment variable ${name} is ${empty ? `set but empty (give it a value, or write \${${name}:-default} to use a default when it is empty)` : "not set"}`, line: at })),
    (name, chars) => {
      if (s.budget.said) return;
      s.budget.said = true;
      const who = hidden ? "a variable substituted here" : `environment variable ${name}`;
      s.issues.push({ path: segments(f), message: `${who} (${chars} characters) takes the values substituted into the config over ${MAX_SUBSTITUTED_CHARS} characters in all: substitute smaller values, or fewer times`, line: at });
    },
    (name, isString, text) => {
      (isString ? s.stringVars : s.typedVars).set(f.fmt, name);
      if (text !== undefined) noteWrittenNumber(n, f.fmt, s.writtenNumbers, text.trim());
    },
    (name) => s.partVars.set(f.fmt, name),
  );
  const whole = typeof n.source === "string" ? /^\$\{([A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?)\}$/.exec(n.source) : null;
  const tag = whole !== null && n.type === "PLAIN" ? stringTag(n) : undefined;
  if (whole !== null && n.type !== "PLAIN") s.quotedVars.set(f.fmt, whole[1]!);
  else if (tag !== undefined) s.taggedVars.set(f.fmt, `${tag} ${whole![0]}`);
}

/**
 * Parses YAML text. YAML syntax errors are returned as `syntax` (with lines); otherwise the
 * document comes back with ${VAR}s substituted and every duplicate key and missing variable listed.
 */
export function parseYamlConfig(text: string, env: Record<string, string | undefined>): ParsedYaml | { syntax: PathIssue[] } {
  const counter = new LineCounter();
  // merge: YAML 1.1 merge keys (`<<: *defaults`), which many configs with many buckets use.
  // logLevel "error": the package's warnings (a complex key "will be stringified ... Set mapAsMap")
  // would go to stderr through process.emitWarning, a stray non-JSON line; the walk below reports them.
  const deep = nestedTooDeepAt(text);
  if (deep !== undefined) {
    const lineStart = text.lastIndexOf("\n", deep - 1) + 1;
    let line = 1;
    for (let i = text.indexOf("\n"); i >= 0 && i < lineStart; i = text.indexOf("\n", i + 1)) line++;
    return { syntax: [{ path: [], message: NESTED_TOO_DEEP, line, column: deep - lineStart + 1 }] };
  }
  let doc: Document;
  try {
    doc = parseDocument(text, { lineCounter: counter, prettyErrors: true, uniqueKeys: false, merge: true, logLevel: "error", customTags: CORE_TAG_GAPS });
  } catch (err) {
    // Block nesting over many lines (each line's `- - -` indented under the last's) that the
    // pre-pass does not follow: the package's parser recursed out of the stack and threw, and the
    // load ended "cannot load config: cannot load config: Maximum call stack size exceeded."
    if (err instanceof RangeError && /call stack/i.test(err.message)) return { syntax: [{ path: [], message: NESTED_TOO_DEEP }] };
    throw err;
  }
  // A tag the package cannot resolve (`!vault x`, `!!js/function f`) is only its warning, and the
  // value would be read as the plain string after it (a `secret_key: !vault prod/s3` used as written).
  const unresolved = doc.warnings.filter((w) => w.code === "TAG_RESOLVE_FAILED");
  const fatal = unresolved.length === 0 ? doc.errors : [...doc.errors, ...unresolved].sort((a, b) => a.pos[0] - b.pos[0]);
  if (fatal.length > 0) return { syntax: syntaxIssues(text, fatal, counter) };
  const line = (n: unknown) => {
    const r = (n as Node | null | undefined)?.range;
    return r ? counter.linePos(r[0]).line : undefined;
  };
  const lines = new Map<string, number>();
  const writtenNumbers = new Map<string, { written: string; read: string }>();
  const stringTags = new Map<string, StringTag>();
  const sub: Substitution = { env, budget: { left: MAX_SUBSTITUTED_CHARS, said: false }, issues: [], typedVars: new Map(), quotedVars: new Map(), taggedVars: new Map(), stringVars: new Map(), partVars: new Map(), writtenNumbers };
  const { issues, typedVars, quotedVars, taggedVars, stringVars, partVars } = sub;
  const rootLine = line(doc.contents);
  const aliasTargets = aliasTargetsOf(doc);
  // An alias with no anchor before it: a value that starts with * (most often), or an anchor
  // defined further down (blocks moved around), which was also said to be "no anchor" at all.
  let firstAnchors: Map<string, unknown> | undefined;
  const noAnchor = (alias: unknown): string => {
    firstAnchors ??= firstAnchorsOf(doc);
    const at = line(firstAnchors.get((alias as { source: string }).source));
    return at === undefined
      ? "an alias (*name) that names no anchor: quote a value that starts with *"
      : `an alias (*name) above its anchor (&name, line ${at}): an anchor must come before its aliases: move the anchored value up`;
  };
  /** Where each alias the walk meets sits (a key's alias is met as a key, not here). */
  const aliasFrames = new Map<unknown, Frame>();
  /** Each pair whose key is a list or a mapping, and its mapping: taken out once the walk and the cycle check are done. */
  const collectionKeys = new Map<YAMLMap, Set<unknown>>();
  // An explicit stack, not recursion: nesting depth is bounded only by the file size cap.
  const stack: Frame[] = [{ node: doc.contents, fmt: "", seg: undefined, parent: undefined, depth: 0 }];
  while (stack.length > 0) {
    const f = stack.pop()!;
    const n = f.node;
    if ((isMap(n) || isSeq(n)) && f.depth >= MAX_NESTING) {
      issues.push({ path: segments(f), message: NESTED_TOO_DEEP, line: line(n) ?? lines.get(f.fmt) });
      continue;
    }
    if (isMap(n)) {
      const seen = new Map<string, number | undefined>();
      // (pushed last key first, so the walk reads a mapping in the file's order, as a list: the
      // substitution bound names the first key past it)
      const children: Frame[] = [];
      for (const pair of n.items) {
        if (!isPair(pair)) continue;
        // (`*name : value`: an alias of a string is that string as a key, as the yaml package reads it)
        const key = isAlias(pair.key) ? aliasTargets.get(pair.key) : pair.key;
        if (!isScalar(key)) {
          if (isAlias(pair.key) && !key) {
            issues.push({ path: segments(f), message: noAnchor(pair.key), line: line(pair.key) ?? lines.get(f.fmt) });
            continue;
          }
          // `? [a, b]\n: c`: the yaml package would stringify the key; no config key is one. The pair
          // is taken out of the document, so the schema does not call it `unknown key '[ a, b ]'` too.
          issues.push({ path: segments(f), message: "a key must be a plain name (a string), not a list or a mapping", line: line(pair.key) ?? lines.get(f.fmt) });
          (collectionKeys.get(n) ?? collectionKeys.set(n, new Set()).get(n)!).add(pair);
          continue;
        }
        const name = typeof key.value === "symbol" ? "<<" : String(key.value);
        const keyLine = line(pair.key);
        if (seen.has(name)) {
          const first = seen.get(name);
          issues.push({ path: [...segments(f), name], message: `duplicate key '${shortKey(name, segments(f).at(-1))}'${first ? ` (first defined at line ${first})` : ""}`, line: keyLine });
          continue;
        }
        seen.set(name, keyLine);
        const fmt = child(f.fmt, name);
        // A merge key takes a mapping, an alias of one, or a list of them; the yaml package says
        // only "Merge sources must be maps or map aliases", with no line or path, when it resolves them.
        if (typeof key.value === "symbol" && !isMergeSource(pair.value, aliasTargets)) {
          // (`<<: *base` before or without `&base`: the alias is what is wrong, not the merge key)
          const dangling = (isSeq(pair.value) ? pair.value.items : [pair.value]).some((x) => isAlias(x) && !aliasTargets.get(x));
          const message = dangling
            ? "a merge key (<<) names an alias (*name) with no anchor (&name) before it: define the anchor earlier in the file"
            : "a merge key (<<) takes a mapping, an alias of one (*name) or a list of them";
          issues.push({ path: [...segments(f), "<<"], message, line: keyLine });
          continue;
        }
        // A block value (a mapping or a list) starts on a later line, after any comment: its key's
        // line is where the reader looks. A scalar is reported where it is.
        const at = isMap(pair.value) || isSeq(pair.value) ? (keyLine ?? line(pair.value)) : (line(pair.value) ?? keyLine);
        if (at !== undefined) lines.set(fmt, at);
        children.push({ node: pair.value, fmt, seg: name, parent: f, depth: f.depth + 1 });
      }
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
    } else if (isSeq(n)) {
      for (let i = n.items.length - 1; i >= 0; i--) {
        const fmt = child(f.fmt, i);
        const at = line(n.items[i]);
        if (at !== undefined) lines.set(fmt, at);
        stack.push({ node: n.items[i], fmt, seg: i, parent: f, depth: f.depth + 1 });
      }
    } else if (isAlias(n)) {
      aliasFrames.set(n, f);
      const target = aliasTargets.get(n);
      if (isScalar(target)) noteWrittenNumber(target, f.fmt, writtenNumbers);
      // An alias to no anchor: `secret: *S3cret` (an unquoted value that starts with *). Never
      // echo its name: it may well be the secret.
      if (!target) issues.push({ path: segments(f), message: noAnchor(n), line: line(n) ?? lines.get(f.fmt) });
    } else if (isScalar(n) && typeof n.value === "string" && n.value.includes("${")) {
      placeholders(n as Scalar & { value: string }, f, lines.get(f.fmt), sub);
    } else if (isScalar(n)) noteWrittenNumber(n, f.fmt, writtenNumbers);
    // (`port: !!str 8080` has no quotes to drop: the tag is what made it a string)
    const tag = isScalar(n) ? stringTag(n) : undefined;
    if (tag !== undefined) {
      const type = (n as Scalar).type;
      stringTags.set(f.fmt, { tag, written: type === "BLOCK_LITERAL" || type === "BLOCK_FOLDED" ? "block" : type === "PLAIN" ? "plain" : "quoted" });
    }
  }
  const cycle = aliasInsideItsAnchor(doc.contents, aliasTargets);
  if (cycle !== undefined) {
    const f = aliasFrames.get(cycle);
    // (the anchor's own line: a block mapping's node starts a line below its `&name`)
    const target = aliasTargets.get(cycle) as Node;
    const at = target.anchor ? text.lastIndexOf(`&${target.anchor}`, target.range?.[0] ?? 0) : -1;
    const anchorLine = at >= 0 ? counter.linePos(at).line : line(target);
    issues.push({ path: f === undefined ? [] : segments(f), message: `${ALIAS_CYCLE}${anchorLine === undefined ? "" : ` (the anchor is at line ${anchorLine})`}`, line: line(cycle) ?? (f === undefined ? undefined : lines.get(f.fmt)) });
  }
  for (const [map, pairs] of collectionKeys) map.items = map.items.filter((p) => !pairs.has(p));
  // The walk pops mappings' children in reverse; report in document order.
  issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  const lineOf = (path: readonly PathSegment[]) => {
    // The deepest part of the path that exists in the document.
    for (let k = path.length; k > 0; k--) {
      const at = lines.get(formatPath(path.slice(0, k)));
      if (at !== undefined) return at;
    }
    return rootLine;
  };
  return { doc, lineOf, issues, typedVars, quotedVars, taggedVars, stringTags, stringVars, partVars, aliasTargets, writtenNumbers };
}
