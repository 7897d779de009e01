/**
 * The README's configuration reference against the schema (src/config): every key the schema takes
 * is named in the README, and every key its YAML examples mark `# the default` carries the default
 * the schema gives it, so a default changed in one place and not the other is caught here.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { ConfigSchema } from "../../src/config/schema.ts";
import { parseConfig } from "../../src/config/load.ts";

setDefaultTimeout(30_000);

const README = readFileSync(join(import.meta.dir, "../../README.md"), "utf8");

/** Every key path of the schema (`buckets[].s3.timeout`, `tracing.headers.*`), with its default when it has one. */
function schemaKeys(): Map<string, { def?: unknown }> {
  const out = new Map<string, { def?: unknown }>();
  const walk = (schema: unknown, path: string) => {
    let s = schema as { _zod?: { def: Record<string, any> } };
    let entry: { def?: unknown } | undefined;
    for (let d = s._zod?.def; d; d = s._zod?.def) {
      if (d.type === "default" || d.type === "prefault") entry ??= { def: typeof d.defaultValue === "function" ? d.defaultValue() : d.defaultValue };
      else if (d.type === "pipe") s = d.in._zod.def.type === "transform" ? d.out : d.in;
      else if (d.type === "lazy") s = d.getter();
      else if (!["optional", "nullable", "readonly", "catch"].includes(d.type)) break;
      if (d.type !== "pipe" && d.type !== "lazy") s = d.innerType;
    }
    if (path && !out.has(path)) out.set(path, entry ?? {});
    const d = s._zod?.def;
    if (d?.type === "object") for (const [k, v] of Object.entries(d.shape)) walk(v, path ? `${path}.${k}` : k);
    else if (d?.type === "array") walk(d.element, `${path}[]`);
    else if (d?.type === "record") walk(d.valueType, `${path}.*`);
    else if (d?.type === "union") for (const o of d.options) walk(o, path);
  };
  walk(ConfigSchema, "");
  return out;
}

const KEYS = schemaKeys();

test("the schema walk finds the sections and their defaults", () => {
  expect(KEYS.size).toBeGreaterThan(200);
  expect(KEYS.get("buckets[].s3.timeout")).toEqual({ def: 20 });
  expect(KEYS.get("tracing.headers.*")).toEqual({});
  expect(KEYS.get("s3_api.sts.max_session_seconds")).toEqual({ def: 3600 });
});

test("every key the schema takes is named in the README", () => {
  const names = new Set([...KEYS.keys()].map((p) => p.split(/[.[\]*]+/).filter(Boolean).at(-1)!));
  const missing = [...names].filter((n) => !new RegExp(`(?<![\\w-])${n}(?![\\w-])`).test(README));
  expect(missing).toEqual([]);
});

/**
 * Each `key: value   # the default...` line of the README's YAML blocks, with its key path (by
 * indentation; `- ` entries as `[]`), `partial` when its block starts below the top (`cors:` alone).
 */
function documentedDefaults(): { line: number; path: string; value: unknown; partial: boolean }[] {
  const out: { line: number; path: string; value: unknown; partial: boolean }[] = [];
  const lines = README.split("\n");
  let inBlock = false;
  let partial: boolean | undefined;
  let stack: { indent: number; key: string }[] = [];
  lines.forEach((text, i) => {
    if (/^```/.test(text)) {
      inBlock = !inBlock && text.startsWith("```yaml");
      stack = [];
      partial = undefined;
      return;
    }
    const m = inBlock ? /^(\s*)(- )?([a-z0-9_]+):(.*)$/.exec(text) : null;
    if (m === null) return;
    partial ??= m[1]!.length > 0 || m[2] !== undefined;
    const indent = m[1]!.length + (m[2] ? 2 : 0);
    while (stack.length > 0 && stack.at(-1)!.indent >= indent) stack.pop();
    if (m[2]) {
      const parent = stack.at(-1);
      if (parent && !parent.key.endsWith("[]")) parent.key += "[]";
    }
    stack.push({ indent, key: m[3]! });
    const [value, comment] = m[4]!.split(/\s#\s*/, 2);
    if (comment !== undefined && /^the defaults?\b/.test(comment) && value!.trim() !== "") out.push({ line: i + 1, path: stack.map((s) => s.key).join("."), value: parse(value!), partial });
  });
  return out;
}

/** The config a minimal file loads as: a key whose default is worked out from others (`server.port`, `cache.memory.max_item_size_mb`) has it here. */
const LOADED = parseConfig(`buckets:\n  - name: bbb\n    path_prefix: /b\n    s3: { bucket: bbb, region: us-east-1 }\ncache: { enabled: true }\n`, { env: {} });

/** What `path` holds in LOADED (a list's first entry for `[]`), undefined when the minimal file leaves it out. */
function loaded(path: string): unknown {
  let v: unknown = LOADED;
  for (const part of path.split(".")) {
    const [name, list] = [part.replace(/\[\]$/, ""), part.endsWith("[]")];
    v = (v as Record<string, unknown> | undefined)?.[name];
    if (list) v = (v as unknown[] | undefined)?.[0];
  }
  return v;
}

/** Defaults worked out where the setting is used, not in the schema nor at load: where, for the reader. */
const USED_DEFAULTS: Record<string, string> = {
  "buckets[].sandbox_user_content": "src/config/writes.ts: a read-write bucket's objects are user content",
};

test("every key the README's YAML marks `# the default` has that default in the schema", () => {
  const found = documentedDefaults();
  expect(found.length).toBeGreaterThan(15);
  const wrong: string[] = [];
  const bare = (p: string) => p.replace(/\[\]/g, "");
  for (const { line, path, value, partial } of found) {
    // A flow mapping (`retry: { max_attempts: 3, ... }   # the default`) states each key's default.
    const pairs = value !== null && typeof value === "object" && !Array.isArray(value) ? Object.entries(value).map(([k, v]) => [`${path}.${k}`, v] as const) : [[path, value] as const];
    for (const [p, v] of pairs) {
      // (a block that starts below the top, `cors:` alone: the schema's paths ending with its path)
      const matches = [...KEYS].filter(([k]) => bare(k) === bare(p) || (partial && bare(k).endsWith(`.${bare(p)}`)));
      if (matches.length === 0) wrong.push(`README.md:${line}: ${p} is no key of the schema`);
      for (const [k, e] of matches) {
        if (USED_DEFAULTS[k] !== undefined) continue;
        const actual = "def" in e ? e.def : loaded(k);
        if (JSON.stringify(actual) !== JSON.stringify(v)) wrong.push(`README.md:${line}: ${k} says ${JSON.stringify(v)}, the config loads ${JSON.stringify(actual)}`);
      }
    }
  }
  expect(wrong).toEqual([]);
});
