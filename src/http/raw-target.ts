/**
 * Bun.serve builds `request.url` with the WHATWG URL parser, which turns a literal `\` into `/`
 * and resolves `.`/`..` segments (also spelled %2e) before the handler runs. So `GET
 * /cached/..\products/x` would reach bucket `products`, and `GET /products/a\b` the key `a/b`:
 * the path a WAF or ACL in front of us sees is not the one we would route.
 *
 * Bun 1.4.5 does keep the raw target for its `routes` table: parameters are taken from the raw
 * bytes (percent-decoded per segment). So the bun listener registers one parametrised route per
 * depth (`/:s0`, `/:s0/:s1`, ... with and without a trailing slash) and this module compares the
 * raw segments with the URL Bun built:
 *
 * - a `.` or `..` raw segment → the target is rebuilt with it, so routing answers 400 InvalidPath
 *   exactly as on the node engine (which sees the raw target);
 * - a literal `\` → the target is rebuilt from the raw segments with `\` encoded as %5C, so the
 *   key is the one the client sent (`a\b`), encoded toward S3 like any other character;
 * - otherwise (nearly always) nothing is rebuilt: the URL is what the client sent.
 *
 * Not covered: targets with an empty segment (`//`) or deeper than MAX_DEPTH segments take Bun's
 * fallback `fetch` without parameters (README Known limits).
 */

export const MAX_DEPTH = 32;

/** `/:s0`, `/:s0/`, `/:s0/:s1`, ... — the route patterns that expose raw segments. */
export function rawSegmentPatterns(): string[] {
  const out: string[] = [];
  let p = "";
  for (let i = 0; i < MAX_DEPTH; i++) {
    p += `/:s${i}`;
    out.push(p, `${p}/`);
  }
  return out;
}

function countBackslashes(s: string): number {
  let n = 0;
  for (let i = s.indexOf("\\"); i >= 0; i = s.indexOf("\\", i + 1)) n++;
  return n;
}

/** Occurrences of %5C / %5c in an encoded path. */
function countEncodedBackslashes(s: string): number {
  let n = 0;
  for (let i = s.indexOf("%5"); i >= 0; i = s.indexOf("%5", i + 1)) {
    const c = s.charCodeAt(i + 2);
    if (c === 67 || c === 99) n++;
  }
  return n;
}

/**
 * The request target to route on, given Bun's URL, the raw segments of a parametrised route and
 * whether the route's pattern ends in `/` (the raw target did); `undefined` when the URL is already
 * what the client sent. The trailing slash comes from the pattern, never from Bun's URL: Bun
 * resolves `/b/a/..` to `/b/` and reads `/b/a\` as `/b/a/`, a slash the client never sent.
 */
export function rawTargetFor(url: string, params: Record<string, string>, trailingSlash: boolean): string | undefined {
  let dots = false;
  let backslashes = 0;
  for (const k in params) {
    const v = params[k];
    if (v === "." || v === "..") dots = true;
    backslashes += countBackslashes(v);
  }
  if (!dots && backslashes === 0) return undefined;
  const schemeEnd = url.indexOf("://");
  const pathStart = url.indexOf("/", schemeEnd + 3);
  const q = url.indexOf("?", pathStart);
  const path = q < 0 ? url.slice(pathStart) : url.slice(pathStart, q);
  // A %5C the client sent is still %5C in Bun's URL; only literal backslashes were rewritten.
  if (!dots && backslashes === countEncodedBackslashes(path)) return undefined;
  // Bun decodes the parameters leniently (%FF, %ZZ, a lone % become U+FFFD): rebuilt from them, a
  // malformed escape became a key character. Bun's URL keeps the client's escapes: a target with
  // one is routed as it is, and refused (400) as it is without the backslash and on node.
  try {
    decodeURIComponent(path);
  } catch {
    return url.slice(pathStart);
  }
  // Bun orders the parameters by position (s0, s1, ...); sort to be safe.
  const ordered = Object.keys(params)
    .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))
    .map((k) => params[k]);
  const trailing = trailingSlash ? "/" : "";
  return `/${ordered.map((s) => encodeSegment(s)).join("/")}${trailing}${q < 0 ? "" : url.slice(q)}`;
}

/** Percent-encodes one decoded segment so that the router's single decode gives it back (`.` and `..` stay literal). */
function encodeSegment(s: string): string {
  if (s === "." || s === "..") return s;
  return encodeURIComponent(s);
}
