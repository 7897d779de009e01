/**
 * Header hygiene, as pure functions.
 *
 * Toward S3 we send only what S3 needs to answer the client's question: the validators and the
 * range (RFC 9110 §13.1 preconditions, §14.2 Range). Never the client's Authorization, cookies,
 * or hop-by-hop headers (RFC 9110 §7.6.1: Connection, Keep-Alive, TE, Trailer, Transfer-Encoding,
 * Upgrade, Proxy-*), which are per-connection and meaningless to the next hop.
 *
 * Toward the client we pass an allowlist: representation metadata (RFC 9110 §8: Content-Type,
 * -Encoding, -Language, -Length, -Range, -Disposition), validators (§8.8: ETag, Last-Modified),
 * caching (RFC 9111: Cache-Control, Expires), Accept-Ranges (§14.3) and user metadata
 * (x-amz-meta-*). S3 internals (x-amz-request-id, x-amz-id-2, server, x-amz-server-side-encryption...)
 * are not leaked.
 */

export const FORWARDED_REQUEST_HEADERS = ["range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since"] as const;

const PASSED_RESPONSE_HEADERS = new Set([
  "etag",
  "last-modified",
  "content-type",
  "content-length",
  "content-range",
  "accept-ranges",
  "cache-control",
  "content-disposition",
  "content-encoding",
  "content-language",
  "expires",
]);

/** The client headers to forward upstream (lowercase names). */
export function forwardRequestHeaders(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const v = h.get(name);
    if (v !== null) out[name] = v;
  }
  return out;
}

/** Copies the allowed upstream response headers into `out`. */
export function passResponseHeaders(upstream: Headers, out: Headers): Headers {
  for (const [k, v] of upstream) {
    if (PASSED_RESPONSE_HEADERS.has(k) || k.startsWith("x-amz-meta-")) out.set(k, v);
  }
  return out;
}
