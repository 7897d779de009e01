/**
 * How the S3 front reads a request target: the path and query are decoded exactly once, the same
 * way for routing (bucket, key, list parameters) and for the SigV4 canonical request, so what is
 * verified is what is served.
 *
 * "+" is a literal plus in both the path and the query here. S3 also accepts a signature over
 * the reading where a raw "+" is a space (clients that serialize with URLSearchParams send spaces
 * so): verify.ts tries that reading second, and the S3 front then reads the key and query so.
 */
import { uriEncode } from "../../s3/sigv4.ts";
import { decodeComponent } from "../../util/text.ts";

// (defined with the other text helpers: the plain front, CORS, the admin API and upstream paths use it too)
export { decodeComponent };

/**
 * The query of most requests: none. Shared, so never mutated (readonly), and not frozen: for-of
 * over a frozen array fails JavaScriptCore's speculation, and the callers are hot.
 */
export const NO_PARAMETERS: ReadonlyArray<readonly [string, string]> = [];

/**
 * Decoded query parameters in order, repeats kept (`?a&b=` gives ["a", ""], ["b", ""]).
 * Undefined when a name or value cannot be decoded (S3: 400 InvalidURI).
 */
export function parseRawQuery(rawQuery: string): ReadonlyArray<readonly [string, string]> | undefined {
  if (rawQuery === "" || rawQuery === "?") return NO_PARAMETERS;
  const q = rawQuery.charCodeAt(0) === 0x3f ? rawQuery.slice(1) : rawQuery; // tolerate a leading "?"
  const out: Array<[string, string]> = [];
  let start = 0;
  while (start <= q.length) {
    let end = q.indexOf("&", start);
    if (end < 0) end = q.length;
    if (end > start) {
      const part = q.slice(start, end);
      const eq = part.indexOf("=");
      const name = decodeComponent(eq < 0 ? part : part.slice(0, eq));
      const value = eq < 0 ? "" : decodeComponent(part.slice(eq + 1));
      if (name === undefined || value === undefined) return undefined;
      out.push([name, value]);
    }
    start = end + 1;
  }
  return out;
}

/**
 * The canonical URI S3 computes for SigV4: the decoded path, encoded once per RFC 3986 (all but
 * A-Z a-z 0-9 - . _ ~ and "/"), with no dot-segment or slash normalization. A client that sends
 * `%28` or a raw `(` gets the same canonical URI. Undefined when the path cannot be decoded.
 */
export function canonicalUri(rawPath: string): string | undefined {
  if (rawPath === "") return "/";
  const decoded = decodeComponent(rawPath);
  return decoded === undefined ? undefined : uriEncode(decoded, false);
}
