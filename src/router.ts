/**
 * Routing: request path → (bucket, object key).
 *
 * - The path is percent-decoded once; a malformed escape is a 400.
 * - Any `.` or `..` segment (including ones spelled %2e%2e or hidden behind %2F) is a 400, and so
 *   is NUL: checked on the DECODED path, so no encoding slips by. The other control characters
 *   are key characters, as in S3 and on the S3 front (logs escape them; a header that names the
 *   key, the folder redirect's Location, percent-encodes them).
 * - Duplicate slashes are collapsed.
 * - Longest path_prefix wins, on segment boundaries: /products matches /products/a, never /productsX.
 *
 * Lookup is one Map probe per candidate depth (the depths that configured prefixes actually have),
 * so it costs the same for 1 or 1,000 buckets.
 */
import { ProxyError } from "./errors.ts";

export interface Route<B> {
  bucket: B;
  /** The decoded object key (no leading slash). */
  key: string;
  /** The normalized, decoded request path. */
  path: string;
}

/**
 * The target the bun listener routes a target with two or more leading empty segments on (`///x`,
 * src/http/raw-target.ts wildcardRewritten: Bun's URL no longer shows what the client sent after
 * them, so no raw segment names a bucket), refused as a dot segment; it was told "Path traversal
 * segments" though nothing in it traverses.
 */
export const LEADING_EMPTY_REFUSAL = "///..";
const LEADING_EMPTY = "The path starts with two or more empty segments (///), which this listener does not route; send it with one leading slash";

/** Decodes and normalizes a raw (still percent-encoded) path. Throws ProxyError InvalidPath. */
export function normalizePath(rawPath: string): string {
  let decoded: string;
  try {
    decoded = rawPath.includes("%") ? decodeURIComponent(rawPath) : rawPath;
  } catch {
    throw new ProxyError("InvalidPath", { detail: "The path contains a malformed percent-encoding" });
  }
  // (stores that keep keys as file names fail on a NUL with a 5xx, which would count against the
  // bucket's breaker; refused on the S3 front too. Until 2026-12-07 every C0 control and DEL was
  // refused here, while the S3 front served such keys.)
  if (decoded.includes("\0")) throw new ProxyError("InvalidPath", { detail: "The path contains a NUL character" });
  if (decoded.includes("//")) decoded = decoded.replace(/\/{2,}/g, "/");
  if (decoded.includes("/.")) {
    for (const seg of decoded.split("/")) {
      if (seg === ".." || seg === ".") throw new ProxyError("InvalidPath", { detail: rawPath === LEADING_EMPTY_REFUSAL ? LEADING_EMPTY : "Path traversal segments are not allowed" });
    }
  }
  return decoded;
}

export class Router<B> {
  private readonly byPrefix = new Map<string, B>();
  /** Segment depths of configured prefixes, deepest first ("/a/b" has depth 2). */
  private readonly depths: number[];
  private readonly root: B | undefined;

  constructor(entries: ReadonlyArray<{ prefix: string; bucket: B }>) {
    const depths = new Set<number>();
    let root: B | undefined;
    for (const { prefix, bucket } of entries) {
      if (prefix === "/") {
        root = bucket;
        continue;
      }
      this.byPrefix.set(prefix, bucket);
      depths.add(prefix.split("/").length - 1);
    }
    this.root = root;
    this.depths = [...depths].sort((a, b) => b - a);
  }

  /** Routes a normalized path. Returns undefined when no prefix matches. */
  match(path: string): Route<B> | undefined {
    // Find the end offsets of the first N segments, N = deepest prefix depth.
    const maxDepth = this.depths[0] ?? 0;
    const ends: number[] = [];
    let i = 0;
    while (ends.length < maxDepth) {
      const next = path.indexOf("/", i + 1);
      if (next === -1) {
        if (i + 1 < path.length || ends.length === 0) ends.push(path.length);
        break;
      }
      ends.push(next);
      i = next;
    }
    for (const d of this.depths) {
      if (d > ends.length) continue;
      const end = ends[d - 1];
      const bucket = this.byPrefix.get(path.slice(0, end));
      if (bucket !== undefined) return { bucket, key: path.slice(end + 1), path };
    }
    if (this.root !== undefined) return { bucket: this.root, key: path.slice(1), path };
    return undefined;
  }
}
