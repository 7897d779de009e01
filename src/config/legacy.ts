/**
 * Keys the original project's README documented (or its code used) that we handle differently:
 * each gets a message saying what to write instead of a bare "unknown key".
 */
import type { PathSegment } from "./path.ts";

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
    match: (p) => p.length === 3 && p[0] === "buckets" && p[2] === "watermark",
    message: "image watermarking is not supported: remove this section (objects are served as stored)",
  },
  {
    // The original README's "Common Pitfalls": its token sources take `name`.
    match: (p) => p.length === 4 && p[0] === "jwt" && p[1] === "token_sources" && (p[3] === "param_name" || p[3] === "header_name"),
    message: "a token source's parameter or header is given as `name` (e.g. `{ type: query, name: token }`), as the original's README says under Common Pitfalls",
  },
];

/** Appends a hint for every legacy key found in the parsed (plain JS) config. */
export function findLegacy(value: unknown, path: PathSegment[], out: Array<{ path: PathSegment[]; message: string }>): void {
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
