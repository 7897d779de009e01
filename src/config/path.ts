import { z } from "zod";
import { ellipsized } from "../util/text.ts";

/** YAML paths as config errors name them: `buckets[1].s3.region` ("" for the document root). */
export type PathSegment = string | number;

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

/**
 * A key that is a name, ':' and more with no space between (`secret_key:value`; `secretKey:value`,
 * `SECRET_KEY:value` and `secret-key:value` too, as MinIO's JS client, an env file or a typo
 * spells the key: those were shown whole, the secret with them).
 */
const GLUED_VALUE = /^([A-Za-z_][A-Za-z0-9_-]*):(?!\/\/)(?=\S)/;

/** The key's name when YAML read a `name:value` written without a space as one key (see shownKey), else undefined. */
export function gluedKeyName(key: string): string | undefined {
  return GLUED_VALUE.exec(key)?.[1];
}

/** The longest key a config problem shows whole. */
const SHOWN_KEY_CHARS = 64;

/**
 * A key as a problem shows it: cut after SHOWN_KEY_CHARS characters. A key is the file's own text,
 * and a line read as one key (a file that is not a config: `--check --config /etc/shadow` as
 * root; a secret pasted where a key goes) was printed whole, twice per line.
 */
export function shownKey(key: string, parent?: PathSegment): string {
  // (`{ secret_key:s3cr3t }`, a ':' with no space after it, as JSON writes it: inside { } YAML
  // reads that as one key, and the unknown-key problem showed the secret, in --check, the "could
  // not start" line and a refused reload's answer; what follows the ':' is not shown. A claim name
  // that is a URL, `https://...`, is shown as written; so is every key of a credential's `claims`,
  // a claim's name, `cognito:groups` or `urn:example:role`, never a config key with its value.)
  const glued = parent === "claims" ? undefined : gluedKeyName(key);
  if (glued !== undefined) return `${glued}:…`;
  // (never between a surrogate pair's halves: the problem goes into JSON, the log's lines and the
  // admin reload's answer, where half of one is a lone \ud83d that strict readers refuse)
  return ellipsized(key, SHOWN_KEY_CHARS);
}

/** formatPath for a problem's reader: each key cut by shownKey. */
export function shownPath(path: readonly PathSegment[]): string {
  return formatPath(path.map((s, i) => (typeof s === "string" ? shownKey(s, path[i - 1]) : s)));
}

/**
 * A file or folder path (relative ones against the config's folder): not empty, and not starting
 * with `~` or a bare `$NAME`, which only a shell expands: read as written, `~/cache` or
 * `$HOME/cache` named a folder called "~" or "$HOME" under the config's folder (which the disk
 * cache then created).
 */
export const filePath = z
  .string()
  .min(1, "must not be empty")
  .superRefine((s, ctx) => {
    const bare = /^\$([A-Za-z_][A-Za-z0-9_]*)(\/|$)/.exec(s);
    if (/^~[A-Za-z0-9._-]*(\/|$)/.test(s)) ctx.addIssue({ code: "custom", message: "a leading ~ is not expanded here (a shell does that, not the config): write the full path, or ${HOME}/… (environment variables are substituted)" });
    else if (bare) ctx.addIssue({ code: "custom", message: `$${bare[1]} is not substituted (it looks like an environment variable: write \${${bare[1]}}, only that form is substituted)` });
  });
