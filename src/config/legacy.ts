/**
 * Keys the original project's README documented (or its code used) that we handle differently:
 * each gets a message saying what to write instead of a bare "unknown key".
 */
import { shownKey, type PathSegment } from "./path.ts";
import { DEFAULT_SERVER_ADDRESS, MAX_REDIS_DB } from "./schema.ts";
import { listed } from "../util/text.ts";

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** A bucket's `authorization` keys, as read without their opa_ / openfga_ prefix: for each, the types that have it. */
const UNPREFIXED_AUTHZ: Record<string, Array<"opa" | "openfga">> = {
  url: ["opa"],
  policy_path: ["opa"],
  endpoint: ["openfga"],
  store_id: ["openfga"],
  authorization_model_id: ["openfga"],
  api_token: ["openfga"],
  user_claim: ["openfga"],
  relation: ["openfga"],
  write_relation: ["openfga"],
  timeout_ms: ["opa", "openfga"],
  cache_ttl_seconds: ["opa", "openfga"],
  fail_mode: ["opa", "openfga"],
};
const isAuthzKey = (p: PathSegment[]) => p.length === 4 && p[0] === "buckets" && p[2] === "authorization";

const LEGACY_HINTS: Array<{ match: (p: PathSegment[]) => boolean; message: string | ((p: PathSegment[], parent: Record<string, unknown>) => string) }> = [
  {
    // `authorization: { type: opa, url, policy_path }`: every key here is prefixed by its type.
    match: (p) => isAuthzKey(p) && Object.hasOwn(UNPREFIXED_AUTHZ, p[3]!),
    message: (p, parent) => {
      const k = String(p[3]);
      const types = UNPREFIXED_AUTHZ[k]!.filter((t) => parent.type === t);
      const names = (types.length > 0 ? types : UNPREFIXED_AUTHZ[k]!).map((t) => `\`${t}_${k}\``);
      return `the authorization keys carry their type's prefix: write ${names.join(" (type: opa) or ")}${names.length > 1 ? " (type: openfga)" : ""}`;
    },
  },
  {
    match: (p) => isAuthzKey(p) && (p[3] === "opa" || p[3] === "openfga"),
    message: (p) => `write the ${p[3] === "opa" ? "OPA" : "OpenFGA"} settings beside \`type\`, each key with the prefix ${String(p[3])}_ (e.g. \`${p[3] === "opa" ? "opa_url" : "openfga_endpoint"}\`), not in an \`${String(p[3])}:\` section`,
  },
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
    // The original's kustomize production overlay: `cache.memory: { max_capacity: <bytes>, ttl_seconds }`.
    match: (p) => p.length === 3 && p[0] === "cache" && p[1] === "memory" && p[2] === "max_capacity",
    message: "write the memory cache's size as `max_cache_size_mb` (in MiB: 536870912 bytes is 512)",
  },
  {
    match: (p) => p.length === 3 && p[0] === "cache" && p[1] === "memory" && p[2] === "ttl_seconds",
    message: "write the memory cache's freshness as `default_ttl_seconds` (a bucket's own is its `cache.ttl_seconds`)",
  },
  {
    // (enabled: true is dropped with a note, adoptOriginalCacheKeys: the original never read it)
    match: (p) => p.length === 3 && p[0] === "cache" && p[1] === "memory" && p[2] === "enabled",
    message: "the memory layer is on when cache_layers lists memory (the original never read this key, and kept its memory layer): for no memory layer, write cache_layers without memory",
  },
  {
    match: (p) => p.length === 2 && p[0] === "cache" && p[1] === "warming",
    message: "cache pre-warming is not supported: remove this section (objects are cached by the requests that read them)",
  },
  {
    match: (p) => p.length === 3 && p[0] === "buckets" && p[2] === "watermark",
    message: "image watermarking is not supported: remove this section (objects are served as stored)",
  },
  {
    // The original README's "Common Pitfalls": its token sources take `name`.
    match: (p) => p.length === 4 && p[0] === "jwt" && p[1] === "token_sources" && (p[3] === "param_name" || p[3] === "header_name"),
    message: "a token source's parameter or header is given as `name` (e.g. `{ type: query, name: token }`), as the original's README says under Common Pitfalls",
  },
  // The original's config.example.yaml showed these (commented out); its code never read them.
  {
    match: (p) => p.length === 3 && p[0] === "server" && p[1] === "https" && p[2] === "min_tls_version",
    message: "the TLS version is not configurable: TLS 1.2 and 1.3 are accepted, 1.0 and 1.1 refused; remove this key",
  },
  {
    match: (p) => p.length === 1 && p[0] === "shutdown",
    message: "write the drain time as `server.shutdown_timeout` (seconds)",
  },
  {
    match: (p) => p.length === 1 && p[0] === "limits",
    message:
      "write request limits as `server.security_limits: { max_body_size, max_header_size, max_uri_length }` (bytes) and `server.request_timeout` (seconds)",
  },
  {
    match: (p) => p.length === 1 && p[0] === "rate_limiting",
    message: "write rate limits as `server.rate_limit: { enabled, global: { requests_per_second, burst }, per_ip: { requests_per_second, burst } }`",
  },
  {
    match: (p) => p.length === 1 && p[0] === "circuit_breaker",
    message: "a circuit breaker is set per bucket: `buckets[i].s3.circuit_breaker: { failure_threshold, success_threshold, timeout_seconds }`",
  },
];

/**
 * What adoption did: notes, problems, and each key it read under another name (`to`, ours) with
 * the key the file has (`from`, the original's), so a problem found later with the value is
 * reported at the key and line the user wrote (renamedPath), not at a name their file lacks.
 */
type Adopted = { notes: string[]; issues: Array<{ path: PathSegment[]; message: string }>; renamed: Array<{ to: PathSegment[]; from: PathSegment[] }> };

/** The path the config file has for a path of the adopted config (the longest renamed prefix wins). */
export function renamedPath(path: readonly PathSegment[], renamed: Adopted["renamed"]): PathSegment[] {
  let best: Adopted["renamed"][number] | undefined;
  for (const r of renamed) {
    if (r.to.length <= path.length && r.to.every((s, i) => s === path[i]) && (best === undefined || r.to.length > best.to.length)) best = r;
  }
  return best ? [...best.from, ...path.slice(best.to.length)] : [...path];
}
const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** The original's own keys read as ours, in place, before validation: its cache keys, then its audit_log and server.coalescing sections. */
export function adoptOriginal(raw: Record<string, unknown>): Adopted {
  const cache = adoptOriginalCacheKeys(raw);
  const sections = adoptOriginalSections(raw);
  return { notes: [...cache.notes, ...sections.notes], issues: [...cache.issues, ...sections.issues], renamed: [...cache.renamed, ...sections.renamed] };
}

/** Appends a hint for every legacy key found in the parsed (plain JS) config. */
export function findLegacy(value: unknown, path: PathSegment[], out: Array<{ path: PathSegment[]; message: string }>): void {
  if (Array.isArray(value)) value.forEach((v, i) => findLegacy(v, [...path, i], out));
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      const p = [...path, k];
      const hint = LEGACY_HINTS.find((h) => h.match(p));
      if (hint) out.push({ path: p, message: typeof hint.message === "string" ? hint.message : hint.message(p, value as Record<string, unknown>) });
      else findLegacy(v, p, out);
    }
  }
}

/**
 * The original's own cache keys (its src/cache/config.rs: `disk: { enabled, cache_dir,
 * max_disk_cache_size_mb, sendfile }`, `redis: { enabled, redis_url, redis_password, redis_db,
 * redis_key_prefix, redis_ttl_seconds }`), rewritten in place into ours before validation, so a
 * config written for the original loads:
 *
 * - `cache_dir` → `path` (the original's default `/var/cache/yatagarasu` when a section in its
 *   form names none), `max_disk_cache_size_mb` → `max_disk_size_mb`, `sendfile` dropped (disk hits
 *   are always sent with sendfile);
 * - `redis_url` → `url`, with `redis_password` and `redis_db` written into it (`redis://:pw@host/db`);
 *   when the URL already has one, the two must agree (else both fields are named), `redis_key_prefix` → `key_prefix`;
 * - `enabled: false` on a layer `cache_layers` does not list: the section is dropped (the original
 *   ignored it); `enabled: true` is dropped (ours: the layer is on when `cache_layers` lists it),
 *   and when `cache_layers` is not given at all, the layers so turned on are listed after memory
 *   (the original's full-stack example: `redis: { enabled: true, redis_url }`, no cache_layers);
 * - `redis_ttl_seconds` is dropped with a note: every layer here keeps an object for its freshness
 *   (the bucket's `ttl_seconds`, else `cache.memory.default_ttl_seconds`).
 *
 * Returns the notes (said by --check and at start) and the problems (a key given in both forms;
 * `enabled: false` on a layer `cache_layers` lists).
 */
function adoptOriginalCacheKeys(raw: unknown): Adopted {
  const notes: string[] = [];
  const issues: Adopted["issues"] = [];
  const renamed: Adopted["renamed"] = [];
  const cache = (raw as Record<string, unknown> | null)?.cache;
  if (!isMap(cache)) return { notes, issues, renamed };
  const c = cache as Record<string, unknown>;
  const listed = Array.isArray(c.cache_layers) ? (c.cache_layers as unknown[]) : undefined;
  const rename = (o: Record<string, unknown>, section: string, from: string, to: string) => {
    if (!(from in o)) return;
    if (to in o) issues.push({ path: ["cache", section, from], message: `\`${from}\` (the original's name) and \`${to}\` are both given: keep \`${to}\`` });
    else {
      o[to] = o[from];
      renamed.push({ to: ["cache", section, to], from: ["cache", section, from] });
    }
    delete o[from];
  };
  const adoptEnabled = (o: Record<string, unknown>, section: "disk" | "redis"): boolean => {
    if (!("enabled" in o)) return true;
    const enabled = o.enabled;
    if (enabled === false) {
      if (listed?.includes(section)) {
        issues.push({ path: ["cache", section, "enabled"], message: `cache_layers lists ${section} but this says it is off: remove ${section} from cache_layers, or this line` });
        return true;
      }
      delete c[section]; // off, as the original read it
      return false;
    }
    if (enabled === true) {
      delete o.enabled;
      // The original's form with no cache_layers: its `enabled: true` is what turns the layer on.
      if (listed === undefined) turnedOn.push(section);
    } else {
      // `enabled: "true"`, `yes`, 1: named as what it is (it read as an unknown key of a section
      // cache_layers does not list). The rest of the section is checked as if it were on.
      issues.push({ path: ["cache", section, "enabled"], message: notBoolean(enabled) });
      delete o.enabled;
      if (listed === undefined) turnedOn.push(section);
    }
    return true;
  };
  const turnedOn: Array<"disk" | "redis"> = [];
  const disk = c.disk;
  if (isMap(disk)) {
    const d = disk as Record<string, unknown>;
    const original = "enabled" in d || "cache_dir" in d || "max_disk_cache_size_mb" in d || "sendfile" in d;
    if (adoptEnabled(d, "disk")) {
      rename(d, "disk", "cache_dir", "path");
      rename(d, "disk", "max_disk_cache_size_mb", "max_disk_size_mb");
      if ("sendfile" in d) {
        adoptSendfile(d.sendfile, notes, issues);
        delete d.sendfile;
      }
      if (original && !("path" in d)) d.path = "/var/cache/yatagarasu";
    }
  }
  const redis = c.redis;
  if (isMap(redis)) {
    const r = redis as Record<string, unknown>;
    if (adoptEnabled(r, "redis")) {
      const urlKey = "redis_url" in r && !("url" in r) ? "redis_url" : "url";
      rename(r, "redis", "redis_url", "url");
      rename(r, "redis", "redis_key_prefix", "key_prefix");
      const password = r.redis_password;
      const db = r.redis_db;
      delete r.redis_password;
      delete r.redis_db;
      // redis_db: a whole number (the original read a u32); refused here with its own name,
      // not later as a bad database in the URL (or, before, not at all: Bun's client refused it at start).
      let dbNumber: number | undefined;
      if (db !== undefined && db !== null) {
        const n = typeof db === "number" ? db : typeof db === "string" && /^\s*\d{1,10}\s*$/.test(db) ? Number(db) : Number.NaN;
        if (Number.isInteger(n) && n >= 0 && n <= MAX_REDIS_DB) dbNumber = n;
        else issues.push({ path: ["cache", "redis", "redis_db"], message: `must be a whole number from 0 to ${MAX_REDIS_DB} (the Redis database)` });
      }
      const hasPassword = password !== undefined && password !== null && password !== "";
      if (typeof r.url === "string" && (hasPassword || dbNumber !== undefined)) {
        try {
          const u = new URL(r.url);
          const urlField = `cache.redis.${urlKey}`;
          // Given in both places: the same value is fine; two different ones are refused, naming
          // both fields (the URL's used to win silently). Neither password is ever echoed.
          if (hasPassword) {
            if (u.password === "") u.password = encodeURIComponent(String(password));
            else if (safeDecode(u.password) !== String(password))
              issues.push({ path: ["cache", "redis", "redis_password"], message: `differs from the password in ${urlField}: give the password in one place (remove redis_password, or the password from the URL)` });
          }
          if (dbNumber !== undefined) {
            if (u.pathname === "" || u.pathname === "/") u.pathname = `/${dbNumber}`;
            else if (!/^\/\d{1,10}$/.test(u.pathname) || Number(u.pathname.slice(1)) !== dbNumber)
              issues.push({ path: ["cache", "redis", "redis_db"], message: `(${dbNumber}) differs from the database in ${urlField} (its path): give the database in one place (remove redis_db, or the path from the URL)` });
          }
          r.url = u.toString();
        } catch {
          // a URL that does not parse: refused by the schema with its own message (never echoed)
        }
      }
      if ("redis_ttl_seconds" in r) {
        delete r.redis_ttl_seconds;
        notes.push("cache.redis.redis_ttl_seconds (the original's) has no effect here: every cache layer keeps an object for its freshness, the bucket's cache.ttl_seconds or else cache.memory.default_ttl_seconds");
      }
    }
  }
  // `layers` (the original's test configs' key, never read) listing a layer whose section is
  // written as here, without the original's `enabled: true`: the layers meant, under the other
  // name. It read "cache.disk is set but cache_layers does not list disk: add it there", though the
  // file listed it. Refused at `layers` as the key to rename, and checked as if renamed.
  const named = c.layers;
  const unlisted = listed === undefined && Array.isArray(named) ? (["disk", "redis"] as const).filter((l) => named.includes(l) && l in c && !turnedOn.includes(l)) : [];
  if (unlisted.length > 0) {
    issues.push({ path: ["cache", "layers"], message: `rename it cache_layers: the layers are listed there (\`layers\`, a key of the original's test configs, was never read, by the original either), and cache.${unlisted.join(" and cache.")} ${unlisted.length > 1 ? "are" : "is"} set for layers it lists` });
    c.cache_layers = named;
    delete c.layers;
    renamed.push({ to: ["cache", "cache_layers"], from: ["cache", "layers"] });
  }
  // Keys in the original's own test configs (config.streaming.yaml, config.multi-instance.yaml,
  // config.redis-ttl-test.yaml, config.memory-pressure.yaml, config.loadtest-tiered.yaml,
  // config/loadtest/config.loadtest-diskcache.yaml, config/benchmark/*.yaml) that its code never read: it ignored them, so a config with them
  // loads here too, and each is said with what does the job here (they were bare unknown keys).
  for (const [section, key, instead] of IGNORED_BY_ORIGINAL) {
    const o = section === "" ? c : c[section];
    if (!isMap(o) || !(key in o)) continue;
    if (section === "memory" && key === "enabled" && o.enabled === false) continue; // (meant: no memory layer: said as what it is below)
    delete (o as Record<string, unknown>)[key];
    notes.push(`cache.${section === "" ? "" : `${section}.`}${key} has no effect (the original never read it either): ${instead}`);
  }
  if (turnedOn.length > 0 && !("cache_layers" in c)) {
    const layers = ["memory", ...(["disk", "redis"] as const).filter((l) => turnedOn.includes(l) && l in c)];
    c.cache_layers = layers;
    notes.push(`cache.cache_layers is not given: the layers the original's \`enabled: true\` turns on are used (${layers.join(", ")}); write cache_layers: [${layers.join(", ")}] to say so`);
  }
  return { notes, issues, renamed };
}

const kindOf = (v: unknown): string =>
  v === null ? "null" : typeof v === "string" ? "a string" : typeof v === "number" ? "a number" : Array.isArray(v) ? "a list" : typeof v === "object" ? "a mapping" : typeof v;

const notBoolean = (v: unknown): string => `expected a boolean, got ${kindOf(v)} (write true or false${typeof v === "string" ? ", without quotes" : ""})`;

/**
 * The original's `cache.disk.sendfile` (its SendfileConfig: `{ enabled, threshold_bytes }`, "use
 * sendfile for files > 64KB"): every disk-cache hit is sent with sendfile here (Bun.file), whatever
 * its size, so `enabled: false` and `threshold_bytes` have no effect, and a note says so (until
 * 2026-12-07 only the bare `sendfile: false`, a form the original did not read, had one: the
 * mapping of its config.example.yaml was dropped in silence, a misspelt key in it too).
 */
function adoptSendfile(v: unknown, notes: string[], issues: Adopted["issues"]): void {
  const path = ["cache", "disk", "sendfile"];
  const always = "has no effect here: disk-cache hits are always sent with sendfile (Bun.file), whatever their size";
  if (v === true) return;
  if (v === false) {
    notes.push(`cache.disk.sendfile: false (the original's) ${always}`);
    return;
  }
  if (!isMap(v)) {
    issues.push({ path, message: `expected a mapping (the original's \`{ enabled, threshold_bytes }\`), true or false, got ${kindOf(v)}` });
    return;
  }
  for (const [k, x] of Object.entries(v)) {
    if (k === "enabled") {
      if (x === false) notes.push(`cache.disk.sendfile.enabled: false (the original's) ${always}`);
      else if (x !== true) issues.push({ path: [...path, k], message: notBoolean(x) });
    } else if (k === "threshold_bytes") {
      if (typeof x === "number" && Number.isInteger(x) && x >= 0) notes.push(`cache.disk.sendfile.threshold_bytes (the original's) ${always}`);
      else issues.push({ path: [...path, k], message: `must be a whole number of bytes, at least 0, got ${typeof x === "number" ? x : kindOf(x)}` });
    } else issues.push({ path: [...path, k], message: `unknown key '${k}': the original's sendfile section has \`enabled\` and \`threshold_bytes\`, and neither has an effect here (disk-cache hits are always sent with sendfile)` });
  }
}

/** Cache keys the original's test configs set and its code never read: [section ("": cache itself), key, what to write here]. */
const IGNORED_BY_ORIGINAL: ReadonlyArray<readonly [string, string, string]> = [
  ["", "layers", "the layers are listed in cache.cache_layers"],
  ["memory", "enabled", "the memory layer is on when cache_layers lists memory (the default)"],
  ["memory", "max_memory_cache_size_mb", "the memory layer's size is cache.memory.max_cache_size_mb"],
  ["memory", "max_memory_cache_mb", "the memory layer's size is cache.memory.max_cache_size_mb"],
  ["memory", "max_entry_size_bytes", "the largest object the memory layer keeps is cache.memory.max_item_size_mb"],
  ["memory", "max_entry_size_mb", "the largest object the memory layer keeps is cache.memory.max_item_size_mb"],
  ["redis", "connection_timeout_ms", "the connect timeout is cache.redis.connect_timeout_ms"],
  ["redis", "min_pool_size", "one pipelined connection serves every request"],
  ["redis", "max_pool_size", "one pipelined connection serves every request"],
];

/**
 * A bucket's `authorization` keys that belong to the other type (`opa_url` with `type: openfga`,
 * `openfga_api_token` with `type: opa`, ...): valid, but read by nothing, so said, naming each
 * (never its value: a token may be one). From the raw document, before defaults fill them in.
 */
export function otherAuthorizerKeys(raw: unknown): string[] {
  const buckets = (raw as Record<string, unknown> | null)?.buckets;
  if (!Array.isArray(buckets)) return [];
  const notes: string[] = [];
  buckets.forEach((b, i) => {
    const az = (b as Record<string, unknown> | null)?.authorization;
    if (az === null || typeof az !== "object" || Array.isArray(az)) return;
    const type = (az as Record<string, unknown>).type;
    if (type !== "opa" && type !== "openfga") return;
    const other = type === "opa" ? "openfga_" : "opa_";
    const ignored = Object.keys(az).filter((k) => k.startsWith(other));
    if (ignored.length > 0) notes.push(`${listed(ignored.map((k) => `buckets[${i}].authorization.${k}`))} ${ignored.length === 1 ? "has" : "have"} no effect with type: ${type} (only the ${type === "opa" ? "opa_" : "openfga_"} keys are read)`);
  });
  return notes;
}


/** The keys the original's audit_log read (its src/config/audit.rs), and those of its `file` output. */
const AUDIT_LOG_KEYS = new Set(["enabled", "outputs", "log_level", "file", "syslog", "s3_export"]);
const AUDIT_LOG_FILE_KEYS = new Set(["path", "max_file_size_mb", "max_backup_files", "rotation_policy", "buffer_size"]);

/**
 * The original's audit_log keys that have no counterpart here (its src/config/audit.rs):
 * `log_level` (a level that drops lines: here every request on a front gets one), the file's
 * `rotation_policy: daily` (here the file rotates by size) and `buffer_size` (here lines are
 * written within a second). Each is said when it asks for what is not done (until 2026-12-07 all
 * three were dropped in silence, a value the original refused too); a value outside the
 * original's own set is a problem, as it was there.
 */
function unreadAuditKeys(a: Record<string, unknown>, file: Record<string, unknown>, issues: Adopted["issues"]): string[] {
  const notes: string[] = [];
  const oneOf = (path: PathSegment[], v: unknown, values: readonly string[]): boolean => {
    if (typeof v === "string" && values.includes(v)) return true;
    issues.push({ path, message: `expected one of ${values.join(", ")}, got ${typeof v === "string" ? JSON.stringify(shownKey(v)) : v === null ? "null" : typeof v}` });
    return false;
  };
  if (a.log_level !== undefined && oneOf(["audit_log", "log_level"], a.log_level, ["debug", "info", "warn", "error"]) && (a.log_level === "warn" || a.log_level === "error"))
    notes.push(`audit_log.log_level: ${a.log_level} (the original's) has no effect here: the audit trail has a line for every request on a front (allowed, denied or failed; its \`result\` tells them apart)`);
  if (file.rotation_policy !== undefined && oneOf(["audit_log", "file", "rotation_policy"], file.rotation_policy, ["size", "daily"]) && file.rotation_policy === "daily")
    notes.push("audit_log.file.rotation_policy: daily (the original's) has no effect here: the audit file rotates by size only (max_file_size_mb, read as audit.max_size_mb)");
  if (file.buffer_size !== undefined) {
    if (typeof file.buffer_size === "number" && Number.isInteger(file.buffer_size) && file.buffer_size >= 0)
      notes.push("audit_log.file.buffer_size (the original's) has no effect here: audit lines are written at least once a second, sooner once 256 KiB are waiting");
    else issues.push({ path: ["audit_log", "file", "buffer_size"], message: "must be a whole number of bytes, at least 0" });
  }
  return notes;
}

/**
 * The original's `audit_log` (its src/proxy/init.rs: `enabled`, `outputs: [file | syslog | s3]`,
 * `file: { path, max_file_size_mb, max_backup_files }`) and `server.coalescing` (`enabled`,
 * `strategy`), rewritten in place before validation:
 *
 * - `audit_log` → `audit` (`file.path` → `path`, `max_file_size_mb` → `max_size_mb`,
 *   `max_backup_files` → `max_files`); its syslog and S3 outputs are not written here (a note);
 *   a config that also has `audit` gets a problem (which one is meant?).
 * - `server.coalescing` is dropped with a note: concurrent misses of a cached object always share
 *   one upstream request here (and stream to every waiting client).
 */
function adoptOriginalSections(raw: Record<string, unknown>): Adopted {
  const notes: string[] = [];
  const issues: Adopted["issues"] = [];
  const renamed: Adopted["renamed"] = [];
  const a = raw.audit_log;
  if (a !== undefined) {
    if (raw.audit !== undefined) issues.push({ path: ["audit_log"], message: "both `audit_log` (the original's form) and `audit` are given: keep `audit` only" });
    else if (!isMap(a)) {
      issues.push({ path: ["audit_log"], message: "must be a mapping (the original's audit_log: { enabled, outputs, file: { path, max_file_size_mb, max_backup_files } }); or write `audit` (see the README's Audit trail)" });
      delete raw.audit_log;
    } else {
      // A key the original never read is a typo (`enable`, `max_file_size`): refused, as
      // everywhere else, not dropped with the rest of what this section is not written from
      // (dropping `enable: true` left the audit trail off, and --check said OK).
      for (const k of Object.keys(a)) if (!AUDIT_LOG_KEYS.has(k)) issues.push({ path: ["audit_log", k], message: `unknown key '${shownKey(k)}'` });
      if (a.file !== undefined && a.file !== null && !isMap(a.file)) issues.push({ path: ["audit_log", "file"], message: "must be a mapping: { path, max_file_size_mb, max_backup_files }" });
      if (isMap(a.file)) for (const k of Object.keys(a.file)) if (!AUDIT_LOG_FILE_KEYS.has(k)) issues.push({ path: ["audit_log", "file", k], message: `unknown key '${shownKey(k)}'` });
      const file = isMap(a.file) ? a.file : {};
      const outputs = Array.isArray(a.outputs) ? a.outputs : ["file"];
      const audit: Record<string, unknown> = {};
      if (a.enabled !== undefined) audit.enabled = a.enabled;
      if (file.path !== undefined) audit.path = file.path;
      if (file.max_file_size_mb !== undefined) audit.max_size_mb = file.max_file_size_mb;
      if (file.max_backup_files !== undefined) audit.max_files = file.max_backup_files;
      const others = outputs.filter((o) => o !== "file");
      if (others.length > 0) notes.push(`audit_log.outputs (the original's) lists ${others.map(String).join(", ")}: the audit trail is written to its file only (audit.path); ship that file to syslog or S3 with the tools that collect your other logs`);
      if (a.enabled === true && !outputs.includes("file")) audit.enabled = false;
      notes.push(...unreadAuditKeys(a, file, issues));
      notes.push("audit_log (the original's section) is read as `audit` (file.path → path, max_file_size_mb → max_size_mb, max_backup_files → max_files): write it so");
      raw.audit = audit;
      delete raw.audit_log;
      renamed.push(
        { to: ["audit"], from: ["audit_log"] },
        { to: ["audit", "path"], from: ["audit_log", "file", "path"] },
        { to: ["audit", "max_size_mb"], from: ["audit_log", "file", "max_file_size_mb"] },
        { to: ["audit", "max_files"], from: ["audit_log", "file", "max_backup_files"] },
      );
    }
  }
  const server = raw.server;
  if (isMap(server) && server.coalescing !== undefined) {
    const off = isMap(server.coalescing) && server.coalescing.enabled === false;
    notes.push(
      off
        ? "server.coalescing.enabled: false (the original's) cannot be honoured: concurrent misses of a cached object always share one upstream request here; remove the section"
        : "server.coalescing (the original's) is built in: concurrent misses of a cached object share one upstream request, streamed to every waiting client; remove the section",
    );
    delete server.coalescing;
  }
  return { notes, issues, renamed };
}

/** A listener whose address, left out, is not where the proxy's own is (warnings: valid, but probably not what was meant). */
export function listenerAddressNotes(raw: Record<string, unknown>): string[] {
  return [loopbackMetricsNote(raw), everyAddressS3ApiNote(raw)].filter((n): n is string => n !== undefined);
}

/**
 * s3_api.address left out is every address (0.0.0.0), whatever server.address says: with the proxy
 * kept on the loopback (behind a local reverse proxy, or for local use), the S3 front added
 * without an address was reachable from other hosts, and only --check's `s3 api` line showed it.
 */
function everyAddressS3ApiNote(raw: Record<string, unknown>): string | undefined {
  const { s3_api, server } = raw;
  if (!isMap(s3_api) || s3_api.enabled === false || s3_api.address !== undefined || !isMap(server)) return undefined;
  const address = server.address;
  if (typeof address !== "string" || !/^(?:(?:127(?:\.\d{1,3}){3}|localhost)(?::\d+)?|::1|\[::1\](?::\d+)?)$/i.test(address)) return undefined;
  return `s3_api.address is not set, so the S3 API listens on every address (0.0.0.0, its default) while server.address keeps the proxy on the loopback (${address}): other hosts can reach the S3 API; set s3_api.address: 127.0.0.1 to keep it local too, or 0.0.0.0 to serve it there and quiet this note`;
}

/**
 * The original's configs have no metrics.address: here the metrics listener then binds the
 * loopback only, so with the proxy on every address (0.0.0.0, ::), a Prometheus on another host
 * (a Kubernetes scrape of the pod's metrics port) found nothing, and nothing said why.
 */
function loopbackMetricsNote(raw: Record<string, unknown>): string | undefined {
  const { metrics, server } = raw;
  if (!isMap(metrics) || metrics.enabled !== true || metrics.address !== undefined) return undefined;
  // (the effective address: left out, or with no server section, it is the default, every address;
  // the note was given only when server.address was written)
  const written = isMap(server) ? server.address : undefined;
  const address = written === undefined ? DEFAULT_SERVER_ADDRESS : written;
  // (a wildcard as the original wrote it too: "0.0.0.0:8080", "[::]:8080")
  if (typeof address !== "string" || !/^(?:0\.0\.0\.0|::|\[::\])(?::\d+)?$/.test(address)) return undefined;
  return "metrics.address is not set, so /metrics listens on 127.0.0.1 only while the proxy listens on every address: a Prometheus on another host (a Kubernetes scrape of the pod) cannot reach it; set metrics.address: 0.0.0.0 to serve it there, or 127.0.0.1 to keep it local and this note quiet";
}
