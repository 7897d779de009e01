/**
 * Where a token comes from (jwt.token_sources, tried in order) and how it is removed before the
 * request goes to S3 or into the access log.
 *
 * - bearer: `Authorization: Bearer <token>`; the scheme is case-insensitive.
 * - header: the named header; with a `prefix`, the value must start with it (case-insensitive) and
 *           the prefix is stripped; a value without the prefix counts as "no token here".
 * - query:  the named query parameter; when repeated, the first one is used.
 * An empty or all-whitespace value counts as absent, so the next source is tried.
 *
 * Query handling works on the raw query string so that other parameters keep their exact
 * encoding (URLSearchParams would re-serialize them, e.g. %20 → +, which changes what S3 sees).
 */
import type { TokenSource } from "../config/schema.ts";

function fromHeader(headers: Headers, source: TokenSource): string | null {
  if (source.type === "bearer") {
    const v = headers.get("authorization");
    if (v === null || v.length < 8 || v.slice(0, 7).toLowerCase() !== "bearer ") return null;
    const t = v.slice(7).trim();
    return t === "" ? null : t;
  }
  const v = headers.get(source.name ?? "");
  if (v === null) return null;
  let t = v;
  if (source.prefix) {
    if (t.length < source.prefix.length || t.slice(0, source.prefix.length).toLowerCase() !== source.prefix.toLowerCase()) return null;
    t = t.slice(source.prefix.length);
  }
  t = t.trim();
  return t === "" ? null : t;
}

function decodeComponent(s: string): string | null {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return null;
  }
}

/** Splits "a=1&b" (no leading "?") into [name, rawPair] without decoding values. */
function pairs(query: string): Array<{ name: string | null; raw: string }> {
  if (query === "") return [];
  return query.split("&").map((raw) => {
    const eq = raw.indexOf("=");
    return { name: decodeComponent(eq < 0 ? raw : raw.slice(0, eq)), raw };
  });
}

function queryValue(url: URL, name: string): string | null {
  const search = url.search;
  if (search.length < 2) return null;
  for (const p of pairs(search.slice(1))) {
    if (p.name !== name) continue;
    const eq = p.raw.indexOf("=");
    const v = eq < 0 ? "" : decodeComponent(p.raw.slice(eq + 1));
    // The first occurrence decides; an empty (or undecodable) first value means "no token here".
    return v === null || v.trim() === "" ? null : v.trim();
  }
  return null;
}

/** The query parameters a token may come in (sources of type query): a request may carry them beside its own parameters. */
export function queryTokenNames(sources: readonly TokenSource[]): string[] {
  const names: string[] = [];
  for (const s of sources) if (s.type === "query" && s.name !== undefined) names.push(s.name);
  return names;
}

/**
 * A request's URL as the token sources read it: the URL, a function that makes it, or the request's
 * raw query ("" or "?…"); the last two are made a URL only when it is read (urlOf), so a request
 * with its token in a header builds none (and its caller needs no closure to say so).
 */
export type UrlSource = URL | (() => URL) | string;

export function urlOf(url: UrlSource): URL {
  return typeof url === "string" ? new URL(`http://x/${url}`) : typeof url === "function" ? url() : url;
}

/** `url` may be a function or a raw query: it is only made a URL (once) when a query source is consulted. */
export function extractToken(sources: readonly TokenSource[], headers: Headers, url: UrlSource): { token: string; source: TokenSource } | null {
  let u: URL | undefined;
  for (const source of sources) {
    const token = source.type === "query" ? queryValue((u ??= urlOf(url)), source.name ?? "") : fromHeader(headers, source);
    if (token !== null) return { token, source };
  }
  return null;
}

/**
 * The `name=value` pair, exactly as the client wrote it, of the query parameter a token came from
 * (the first one named `name`), so that links the proxy generates for that client (a folder
 * index's) can carry the same credential. Undefined when there is none.
 */
export function rawQueryPair(query: string, name: string): string | undefined {
  for (const p of pairs(query)) if (p.name === name) return p.raw;
  return undefined;
}
