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
 * A target with one empty segment (`/b//../k`, `//..`) of up to MAX_EMPTY_DEPTH segments has routes
 * of its own (`/:s0//:s2`, `//:s1`, ...): Bun resolved `/b//../k` to `/b/k`, served as that key
 * (node refused the `..`), and `//..` to `/`, a ListBuckets. Deeper ones, targets with two or more
 * empty segments and those deeper than MAX_DEPTH segments take wildcard routes (rawPrefixPatterns), which expose only the raw segments before the
 * first empty one: a dot segment among them, or a URL that no longer starts with them, is refused,
 * so a dot segment further on cannot leave the client's bucket; one that stays inside it is resolved
 * as Bun did (README Known limits). A URL of a form that has routes (routed: fallbackRewritten)
 * was shortened by dot segments (it would have matched a route as sent), and
 * is refused as one.
 */

import { LEADING_EMPTY_REFUSAL } from "../router.ts";

export const MAX_DEPTH = 32;
/**
 * The deepest target with one empty segment that has routes of its own (every position of the
 * empty segment: 64 routes). Each route costs Bun's router ~5 KB of memory per listener: up to
 * MAX_DEPTH they were 1,024 routes, ~10 MiB of RSS per process (two listeners). A deeper one takes
 * the wildcard routes, as two empty segments do.
 */
export const MAX_EMPTY_DEPTH = 8;

/** Whether a target of `depth` segments, `empties` of them empty, has a parametrised route (rawSegmentPatterns). */
function routed(depth: number, empties: number): boolean {
  return depth <= (empties === 0 ? MAX_DEPTH : empties === 1 ? MAX_EMPTY_DEPTH : -1);
}

/** A route pattern exposing raw segments: `empty`, the position of its empty segment (-1: none). */
export interface RawSegmentPattern {
  pattern: string;
  trailingSlash: boolean;
  empty: number;
}

/** `/:s0`, `/:s0/`, `/:s0/:s1`, ... and each with one empty segment (`//:s1`, `/:s0//:s2`, `/:s0//`...). */
export function rawSegmentPatterns(): RawSegmentPattern[] {
  const out: RawSegmentPattern[] = [];
  for (let depth = 1; depth <= MAX_DEPTH; depth++) {
    for (let empty = -1; empty < (depth <= MAX_EMPTY_DEPTH ? depth : 0); empty++) {
      const p = "/" + Array.from({ length: depth }, (_, i) => (i === empty ? "" : `:s${i}`)).join("/");
      // (an empty last segment is a trailing slash after the one before: `/:s0//`)
      if (empty !== depth - 1) out.push({ pattern: p, trailingSlash: false, empty });
      out.push({ pattern: `${p}/`, trailingSlash: true, empty });
    }
  }
  return out;
}

/**
 * Wildcard routes for the targets the table above does not parametrise (two or more empty
 * segments, deeper than MAX_DEPTH): `/:s0/*` ... `/:s0/.../:s31/*`, and with a leading empty
 * segment `//*`, `//:s1/*` ... Bun takes the deepest that matches, so the parameters are the raw
 * segments before the first empty one (or the first MAX_DEPTH); `leading` is the raw target's
 * start they spell (`/a/b/`, `//a/`, `///`).
 */
export function rawPrefixPatterns(): { pattern: string; leadingEmpty: boolean }[] {
  const out: { pattern: string; leadingEmpty: boolean }[] = [{ pattern: "//*", leadingEmpty: true }];
  for (let depth = 1; depth <= MAX_DEPTH; depth++) {
    const params = Array.from({ length: depth }, (_, i) => `:s${i}`);
    out.push({ pattern: `/${params.join("/")}/*`, leadingEmpty: false });
    if (depth < MAX_DEPTH) out.push({ pattern: `//${params.map((_, i) => `:s${i + 1}`).join("/")}/*`, leadingEmpty: true });
  }
  return out;
}

/**
 * The target to route on for a wildcard route (rawPrefixPatterns): Bun resolved the dot segments
 * of these targets, so `/b/../other///k` reached bucket `other` and `/b/../admin///x` the control
 * plane (node refused both). A raw leading segment that is `.`/`..`, or a URL whose start is no
 * longer the raw one (a dot segment further on climbed into it), is refused as a dot segment
 * (InvalidPath), as on node, and so is a URL the table above would have matched (fallbackRewritten);
 * otherwise undefined (the URL keeps the client's start: Bun's own
 * normalization of the rest is README's Known limit).
 */
export function wildcardRewritten(url: string, params: Record<string, string>, leadingEmpty: boolean): string | undefined {
  const segs = Object.keys(params)
    .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))
    .map((k) => params[k]);
  const pathStart = url.indexOf("/", url.indexOf("://") + 3);
  const q = url.indexOf("?", pathStart);
  const path = q < 0 ? url.slice(pathStart) : url.slice(pathStart, q);
  // Refused with the raw start (up to its first dot segment) and a `..`: routed on the client's
  // bucket as on node (the S3 front names the bucket before it refuses the key), never Bun's.
  const dot = segs.findIndex((s) => s === "." || s === "..");
  const refused = `${leadingEmpty ? "/" : ""}/${(dot < 0 ? segs : segs.slice(0, dot + 1)).map(encodeSegment).join("/")}/..${q < 0 ? "" : url.slice(q)}`;
  if (dot >= 0) return refused;
  // `//*`: two or more leading empty segments, so no raw segment names the bucket (`///a/../b//k`
  // was bucket b, `///x/../health` the health check): refused unless the URL is still three or more
  // slashes only (`///..` became `//`, `///a/../../..` became `/`: ListBuckets on the S3 front).
  // (a target the router tells apart: nothing in it traverses)
  if (leadingEmpty && segs.length === 0) return /^\/{3,}$/.test(path) ? undefined : LEADING_EMPTY_REFUSAL + (q < 0 ? "" : url.slice(q));
  // (a URL the dot segments shortened into the parametrised form: refused as on the fallback)
  if (fallbackRewritten(url) !== undefined) return refused;
  // (a literal `\` is a `/` in Bun's URL, a %5C is still %5C: both compared as `/`; a %2F is one in the decoded path too)
  const leading = `${leadingEmpty ? "/" : ""}/${segs.join("/")}/`.replaceAll("\\", "/");
  let decoded: string;
  try {
    decoded = decodeURIComponent(path).replaceAll("\\", "/");
  } catch {
    return undefined; // a malformed escape: refused by the router as it is
  }
  return decoded.startsWith(leading) ? undefined : refused;
}

/**
 * Bun's fallback (no route matched) for a URL that was not sent as it is: the target to route on,
 * refused as a dot segment (InvalidPath) as the node engine refuses what the client sent; undefined
 * when the URL may be the client's (two or more empty segments, deeper than MAX_DEPTH, or `/`).
 */
export function fallbackRewritten(url: string): string | undefined {
  const pathStart = url.indexOf("/", url.indexOf("://") + 3);
  if (pathStart < 0) return undefined;
  const q = url.indexOf("?", pathStart);
  const path = q < 0 ? url.slice(pathStart) : url.slice(pathStart, q);
  if (path === "/") return undefined;
  let empties = 0;
  let depth = 0;
  for (let i = 0; i < path.length; i++) {
    if (path.charCodeAt(i) !== 47) continue;
    depth++;
    if (path.charCodeAt(i + 1) === 47) empties++;
  }
  if (path.endsWith("/")) depth--;
  return routed(depth, empties) ? `${path.endsWith("/") ? path.slice(0, -1) : path}/..${q < 0 ? "" : url.slice(q)}` : undefined;
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
export function rawTargetFor(url: string, params: Record<string, string>, trailingSlash: boolean, empty = -1): string | undefined {
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
  // Bun orders the parameters by position (s0, s1, ...); sort to be safe. (The empty segment where the pattern has it.)
  const ordered = Object.keys(params)
    .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))
    .map((k) => params[k]);
  if (empty >= 0) ordered.splice(empty, 0, "");
  const trailing = trailingSlash ? "/" : "";
  return `/${ordered.map((s) => encodeSegment(s)).join("/")}${trailing}${q < 0 ? "" : url.slice(q)}`;
}

/** Percent-encodes one decoded segment so that the router's single decode gives it back (`.` and `..` stay literal). */
function encodeSegment(s: string): string {
  if (s === "." || s === "..") return s;
  return encodeURIComponent(s);
}
