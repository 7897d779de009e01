/**
 * Phase: guard. Limits on the request head that hold before anything else looks at it: URI length
 * (414) and header size (431). Splits the target into raw path and query.
 */
import { ProxyError } from "../../errors.ts";
import type { RequestContext } from "../context.ts";
import { listenerHeaderLimit } from "../../http/header-limit.ts";
import { validHost } from "../../http/host.ts";

const LISTENER_HEADER_LIMIT = listenerHeaderLimit();

/** Splits a request target (origin-form "/p?q" or absolute "http://h/p?q") into raw path and query, without a URL object. */
export function splitUrl(url: string): { path: string; query: string } {
  const schemeEnd = url.charCodeAt(0) === 47 ? -1 : url.indexOf("://");
  const pathStart = schemeEnd >= 0 ? url.indexOf("/", schemeEnd + 3) : 0;
  if (pathStart < 0) return { path: "/", query: "" };
  const q = url.indexOf("?", pathStart);
  return q < 0 ? { path: url.slice(pathStart), query: "" } : { path: url.slice(pathStart, q), query: url.slice(q) };
}

function headerBytes(h: Headers): number {
  let n = 0;
  for (const [k, v] of h) n += k.length + v.length + 4;
  return n;
}

/**
 * Room a listing's continuation-token takes beyond max_uri_length: the proxy's own tokens
 * (src/fronts/s3/list-token.ts) hold up to a 1,024-byte key and a 256-byte upstream token, ~1.8
 * KiB in base64url. A listing whose first page fitted (a long prefix, a presigned URL with a
 * session token) is then always continued: its next page, the same URL with the token, was 414
 * (InvalidURI on the S3 front) once the token passed the limit.
 */
const CONTINUATION_ROOM = 2048;
const CONTINUATION = /[?&]continuation-token=([^&]*)/;

/**
 * The length of a query's first continuation-token parameter when it is at most CONTINUATION_ROOM,
 * else 0: a longer token is none of the proxy's and gets no room (2 KiB of any longer one was not
 * counted, so a 9 KiB token on a short listing passed an 8 KiB limit, and during the raw-token
 * grace went upstream as the store's own).
 */
function continuationLength(query: string): number {
  const m = CONTINUATION.exec(query);
  return m === null || m[0].length > CONTINUATION_ROOM ? 0 : m[0].length;
}

export function guard(ctx: RequestContext): undefined {
  const server = ctx.rt.config.server;
  const limits = server.security_limits;
  const target = ctx.target;
  if (target.length > limits.max_uri_length + 64 + CONTINUATION_ROOM) throw new ProxyError("UriTooLong");
  const { path, query } = splitUrl(target);
  ctx.rawPath = path;
  ctx.path = path; // logged as received until routing normalizes it
  ctx.query = query;
  if (path.length + query.length > limits.max_uri_length && path.length + query.length - continuationLength(query) > limits.max_uri_length) throw new ProxyError("UriTooLong");
  // RFC 9112 §3.2: more than one Host (the listeners join them with ", ") or a Host that is not
  // host[:port] (userinfo, whitespace, a path, a port that is not 0-65535) is a 400, never read as
  // some host (the S3 front's virtual-hosted addressing took `bucket.domain:abc` as the bucket).
  const host = ctx.req.headers.get("host");
  if (host !== null && !validHost(host)) throw new ProxyError("BadRequest", { detail: "The Host header must name one host (host or host:port)" });
  // Bun.serve answers 431 itself above its own limit, so under it only a lower limit needs counting;
  // node:http's own limit follows the configured one (see listenNode), so there it always counts.
  if ((limits.max_header_size < LISTENER_HEADER_LIMIT || server.engine === "node") && headerBytes(ctx.req.headers) > limits.max_header_size) {
    throw new ProxyError("HeadersTooLarge");
  }
  return undefined;
}
