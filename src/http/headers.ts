/**
 * The header policy, in one place, for every path (cache or not, either front).
 *
 * Toward S3 we send only what S3 needs to answer the client's question: the validators and the
 * range (RFC 9110 §13.1 preconditions, §14.2 Range). If-Range is forwarded to the proxy's own
 * object phase, which makes its semantics hold whatever the upstream does with it (S3 does not
 * document If-Range). Never the client's Authorization, cookies, or hop-by-hop headers (RFC 9110
 * §7.6.1: Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*, and whatever
 * field a Connection header names, either way).
 *
 * Toward the client we pass an allowlist: the object's own headers (representation metadata,
 * RFC 9110 §8: Content-Type, -Encoding, -Language, -Disposition; validators §8.8: ETag,
 * Last-Modified; caching, RFC 9111: Cache-Control, Expires; user metadata x-amz-meta-*) plus the
 * per-response framing (Content-Length, Content-Range, Accept-Ranges). The cache stores exactly
 * the object's own headers, so a hit and a miss answer with the same set. S3 internals
 * (x-amz-request-id, x-amz-id-2, server, x-amz-server-side-encryption...) are not leaked.
 */
import { CHECKSUM_ALGORITHMS, checksumHeaderName } from "../s3/checksum.ts";
import { UpstreamProtocolError } from "../s3/http1/errors.ts";
import { MAX_HEAD } from "../s3/http1/head.ts";
import { upstreamRange } from "./range.ts";
import { parseHttpDate, quotedEtag, relayedHttpDate, upstreamEtagList } from "./conditional.ts";

/**
 * The Content-Type an object the upstream sent without one goes out with, on every path (uncached,
 * a cache hit from memory or disk, a fill, GET and HEAD, either engine): what a recipient assumes
 * of such a body (RFC 9110 §8.3). Before, each path made up its own (Bun's
 * `text/plain;charset=utf-8` for a memory hit, `application/octet-stream` for an uncached GET on
 * the bun engine, none on the node engine or for a HEAD). The stored headers stay as sent.
 */
export const UNTYPED_CONTENT_TYPE = "application/octet-stream";

/**
 * Client request headers that go upstream (lower-case). x-amz-checksum-mode: ENABLED asks S3 for
 * the object's stored checksum (the 2025 SDKs and CLIs send it on every GetObject, to validate
 * the body they receive).
 */
const FORWARDED_REQUEST_HEADERS = ["range", "if-range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "x-amz-checksum-mode"] as const;

/**
 * The object's own headers: stored with a cached copy and replayed with every answer. Besides its
 * representation metadata, the object's state as S3 reports it with every GetObject/HeadObject
 * (the SDKs surface it: VersionId, StorageClass, Restore, TagCount, ServerSideEncryption, Object
 * Lock...). Not the KMS key id (it names the upstream's account), nor S3's request ids.
 */
const OBJECT_HEADERS: ReadonlySet<string> = new Set([
  "etag",
  "last-modified",
  "content-type",
  "cache-control",
  "content-disposition",
  "content-encoding",
  "content-language",
  "expires",
  "x-amz-version-id",
  "x-amz-storage-class",
  "x-amz-restore",
  "x-amz-tagging-count",
  "x-amz-website-redirect-location",
  "x-amz-replication-status",
  "x-amz-expiration",
  "x-amz-missing-meta",
  "x-amz-server-side-encryption",
  "x-amz-server-side-encryption-bucket-key-enabled",
  "x-amz-server-side-encryption-customer-algorithm",
  "x-amz-server-side-encryption-customer-key-md5",
  // Not the object's, but how long an upstream cache (GCS's edge, S3 behind a CDN, another
  // Yatagarasu) has held this answer (RFC 9111 §5.1): passed on, and stored as the copy's age when
  // it arrived, so neither this cache nor one in front of it keeps it fresh past the origin's
  // lifetime (dropped, an answer 500 s into its max-age=600 was stored, and sent on, as new).
  "age",
]);

/**
 * Per-response headers passed with an upstream answer, never stored: the framing (recomputed from
 * the cached body) and the object's checksums, which S3 sends only when asked (x-amz-checksum-mode)
 * and only for the whole object. A cached answer (possibly a range cut from the whole) therefore
 * never carries one; the client then has nothing to validate against, never a wrong value.
 */
const CHECKSUM_HEADERS: readonly string[] = [...CHECKSUM_ALGORITHMS.map(checksumHeaderName), "x-amz-checksum-type"];
const FRAMING_HEADERS: ReadonlySet<string> = new Set(["content-length", "content-range", "accept-ranges", ...CHECKSUM_HEADERS]);

/**
 * Removes the object's checksum headers, in place. For a range: S3 sends none with one (the whole
 * object's would not describe the bytes sent), but some S3 look-alikes do (Ceph RGW before 19.2.2),
 * and every SDK that validates the range against it then fails the read.
 */
export function dropChecksumHeaders(h: Headers): void {
  for (let i = 0; i < CHECKSUM_HEADERS.length; i++) h.delete(CHECKSUM_HEADERS[i]!);
}

/**
 * An upstream answer framed by Transfer-Encoding with a Content-Length field too (the smuggling
 * shape), as fetch hands it over: the body is the decoded chunks, whatever the field claims, so the
 * field is dropped (RFC 9112 §6.3: TE overrides it, and a proxy forwarding the message MUST remove
 * it); kept, the answer to the client would be framed by a length its body does not have.
 * Content-Length repeated (fetch joins the fields: `5, 5`) is one length when the values agree
 * (RFC 9110 §8.6), and an UpstreamProtocolError (502, as the own client's parser makes it) when
 * they differ: a HEAD's joined value was relayed as it was, announced as `Content-Length: 0` by the
 * bun engine and as the list by the node engine. A body in a transfer coding other than chunked
 * (`gzip, chunked`: fetch undoes the chunks only) is an UpstreamProtocolError too: its bytes, still
 * gzipped, were a 200 of the object (and stored). Every other answer is returned as it is (two
 * lookups). The own HTTP/1.1 client's parser does all this itself.
 */
function withoutOverriddenLength(res: Response): Response {
  const h = res.headers;
  const coding = h.get("transfer-encoding");
  const te = coding !== null;
  const length = h.get("content-length");
  if (!te && (length === null || length.indexOf(",") < 0)) return res;
  if (te && res.body !== null && coding.trim().toLowerCase() !== "chunked") {
    res.body.cancel().catch(() => {});
    throw new UpstreamProtocolError("unsupported upstream Transfer-Encoding");
  }
  if (length === null) return res;
  const headers = new Headers(h);
  if (te) headers.delete("content-length");
  else {
    const one = agreedLength(length);
    if (one === undefined) {
      res.body?.cancel().catch(() => {});
      throw new UpstreamProtocolError("conflicting upstream Content-Length values");
    }
    headers.set("content-length", one);
  }
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
}

/** The one value of a Content-Length list (`5, 5`), or undefined when its values differ or are not lengths. */
function agreedLength(list: string): string | undefined {
  let one: string | undefined;
  for (const part of list.split(",")) {
    const v = part.trim();
    if (!/^\d{1,15}$/.test(v) || (one !== undefined && +v !== +one)) return undefined;
    one ??= v;
  }
  return one;
}

/** True for a header the cache keeps with an object (lower-case name). */
export function isObjectHeader(name: string): boolean {
  return OBJECT_HEADERS.has(name) || name.startsWith("x-amz-meta-");
}

/**
 * An object's Object Lock state, which S3 shows only to a requester that may read the object's
 * retention (s3:GetObjectRetention) or legal hold (s3:GetObjectLegalHold): no grant of this proxy
 * gives that (it serves neither, and refuses Object Lock writes), so no reader gets them, and the
 * cache no longer stores them. Entries an earlier release stored with them are not corrupt: read
 * from their layer without them (storedEntryHeaders, src/cache/types.ts).
 */
export const UNPASSED_OBJECT_LOCK_HEADERS: ReadonlySet<string> = new Set(["x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date", "x-amz-object-lock-legal-hold"]);

/**
 * The fields a message's Connection header names, lower-case, other than the `close` and
 * `keep-alive` options: hop-by-hop, which a proxy MUST NOT forward (RFC 9110 §7.6.1), whatever
 * they are called (`Connection: range` makes Range hop-by-hop). Undefined for none (the usual
 * `keep-alive` / `close`: one compare).
 */
export function connectionListed(h: Headers): string[] | undefined {
  const v = h.get("connection");
  if (v === null) return undefined;
  const l = v.toLowerCase();
  if (l === "keep-alive" || l === "close") return undefined;
  let out: string[] | undefined;
  for (const part of l.split(",")) {
    const t = part.trim();
    if (t !== "" && t !== "keep-alive" && t !== "close") (out ??= []).push(t);
  }
  return out;
}

/** The value of `name` (lower-case) in `h`, or null when absent or hop-by-hop (connectionListed names it). */
export function endToEnd(h: Headers, name: string): string | null {
  return connectionListed(h)?.includes(name) === true ? null : h.get(name);
}

/** The client headers to forward upstream (lowercase names). */
export function forwardRequestHeaders(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  const hop = connectionListed(h);
  for (const name of FORWARDED_REQUEST_HEADERS) {
    if (hop !== undefined && hop.includes(name)) continue;
    const v = h.get(name);
    if (v === null) continue;
    if (name === "range") {
      // (the range the cache would serve, or none: the same answer cached or not)
      const range = upstreamRange(v);
      if (range !== undefined) out.range = range;
    } else if (name === "if-modified-since" || name === "if-unmodified-since") {
      // An invalid HTTP-date is ignored (RFC 9110 §13.1.3-4), as the cache ignores it: never sent
      // for the upstream to read some other way (an ISO date, "0" were 304/412 uncached, 200 cached).
      // So is an If-Modified-Since in the future, which S3 ignores (evaluateConditions) and some
      // look-alikes (MinIO, Ceph) answer 304. A valid one goes as the IMF-fixdate the cache read:
      // an RFC 850 or asctime date (which HTTP recipients must accept) was sent as written.
      const at = parseHttpDate(v);
      if (!Number.isNaN(at) && !(name === "if-modified-since" && at > Date.now())) out[name] = new Date(at).toUTCString();
    } else if (name === "if-match" || name === "if-none-match") {
      // An empty one is absent, as for the cache (it was 412 uncached, 200 cached); any other is
      // sent as the list the cache reads (upstreamEtagList), never for the upstream to read otherwise.
      if (v.trim() !== "") out[name] = upstreamEtagList(v);
    } else out[name] = v;
  }
  return out;
}

/** The upstream response headers a client gets: the object's own headers and the framing. */
const isPassedResponseHeader = (k: string) => isObjectHeader(k) || FRAMING_HEADERS.has(k);

// fetchedAnswer's pass over the fields, with no closure per answer (forEach is synchronous).
let headSize = 0;
let bareEtag: string | undefined;
/** The Last-Modified to write in place of the upstream's (null: none), undefined to keep it as it came. */
let lastModified: string | null | undefined;
function sumField(v: string, k: string): void {
  headSize += k.length + v.length + 4;
  // (an ETag some S3-compatible stores send bare, quoted as the own client's parser quotes it: quotedEtag)
  if (k === "etag" && v.charCodeAt(0) !== 34) bareEtag = v;
  // (a Last-Modified that is no HTTP-date dropped, an obsolete one written as IMF-fixdate, as that parser does: relayedHttpDate)
  else if (k === "last-modified") {
    const date = relayedHttpDate(v);
    if (date !== v) lastModified = date ?? null;
  }
}

/**
 * A fetch answer (https endpoints, `upstream_client: fetch`) as the attempt hands it on: its head
 * no larger than the own HTTP/1.1 client reads (MAX_HEAD, 64 KiB: its fields' lengths summed, 4
 * more each for `: ` and CRLF), then withoutOverriddenLength's framing checks. fetch takes a head
 * of up to 1 MiB, and an x-amz-meta-* value of a megabyte or an ETag of 200 KB was relayed (and
 * stored) whole, a head most clients refuse; checked after the attempt (in the passes that relay or
 * store the fields), it was a 502 of an attempt counted a success: not retried, not counted by the
 * breaker, not failed over, where the own client's parser fails the attempt. Now an
 * UpstreamProtocolError inside the attempt, as the parser's: the same 502, "The upstream sent a
 * response the proxy cannot read (upstream response head too large)", on either client. The body
 * is cancelled, so fetch lets go of the connection at once. The own client's answers need no check
 * here: its parser refuses a head over MAX_HEAD (raw bytes, at least this sum). A bare ETag is
 * quoted here, as that parser quotes it (quotedEtag), so every consumer sees S3's form.
 */
export function fetchedAnswer(res: Response): Response {
  // fetch hands on any three-digit status (`HTTP/1.1 999`, `000`); the own client's parser reads
  // 1xx-5xx only. One outside them reached a cached bucket's `new Response(...)`, a RangeError:
  // the proxy's own 500 InternalError ("unexpected error" in the log), not a bad upstream answer.
  if (res.status > 599 || res.status < 100) {
    res.body?.cancel().catch(() => {});
    throw new UpstreamProtocolError("malformed upstream status line");
  }
  headSize = 0;
  bareEtag = undefined;
  lastModified = undefined;
  res.headers.forEach(sumField);
  const size = headSize;
  const bare = bareEtag;
  if (size > MAX_HEAD) {
    res.body?.cancel().catch(() => {});
    throw new UpstreamProtocolError("upstream response head too large");
  }
  if (bare !== undefined) res.headers.set("etag", quotedEtag(bare));
  if (lastModified === null) res.headers.delete("last-modified");
  else if (lastModified !== undefined) res.headers.set("last-modified", lastModified);
  return withoutOverriddenLength(res);
}

/** The Connection header's list of the answer a pass (passResponseHeaders, keepPassedResponseHeaders) is over. */
let passHop: string[] | undefined;
/**
 * Whether an upstream response header reaches the client: passed (isPassedResponseHeader) and not
 * named by the answer's Connection header (`passHop`, set by the pass that calls it).
 */
const reachesClient = (k: string) => isPassedResponseHeader(k) && (passHop === undefined || !passHop.includes(k));

/**
 * Copies the allowed upstream response headers into `out`. (forEach, not for-of: no [name, value]
 * array per header; a module function reading `passOut`, not a closure over `out` and the
 * Connection list: a function and a scope less per answer, as keepHeaders.)
 */
export function passResponseHeaders(upstream: Headers, out: Headers): Headers {
  passHop = connectionListed(upstream);
  passOut = out;
  try {
    upstream.forEach(copyPassed);
  } finally {
    passHop = passOut = undefined;
  }
  return out;
}
/** Where passResponseHeaders copies to, while it runs. */
let passOut: Headers | undefined;
/** passResponseHeaders' forEach callback: a header that reaches the client goes to `passOut`. */
function copyPassed(v: string, k: string): void {
  if (reachesClient(k)) passOut!.set(k, v);
}

/**
 * Removes, in place, every header `keep` refuses (a response the proxy owns, see
 * src/http/owned-response.ts). Names are gathered first: deleting while iterating skips entries.
 * (forEach calls one module function, which reads `keep` from keeping and gathers into dropped:
 * a closure over both, and the array, were 1 function, 2 scopes and 1 array per write's answer.
 * `keep` must not call keepHeaders.)
 */
export function keepHeaders(h: Headers, keep: (name: string) => boolean): void {
  keeping = keep;
  dropped.length = 0;
  try {
    h.forEach(gatherDropped);
  } finally {
    keeping = undefined;
  }
  for (let i = 0; i < dropped.length; i++) h.delete(dropped[i]!);
  dropped.length = 0;
}
let keeping: ((name: string) => boolean) | undefined;
const dropped: string[] = [];
function gatherDropped(_v: string, k: string): void {
  if (!keeping!(k)) dropped.push(k);
}

/**
 * Leaves in place exactly what passResponseHeaders copies; whether a Content-Type is among them
 * (told by the pass over the headers it makes anyway, not by another lookup).
 */
export function keepPassedResponseHeaders(h: Headers): boolean {
  passHop = connectionListed(h);
  passTyped = false;
  try {
    keepHeaders(h, passedNotingType);
  } finally {
    passHop = undefined;
  }
  return passTyped;
}
/** Whether keepPassedResponseHeaders' pass kept a Content-Type. */
let passTyped = false;
// (keepPassedResponseHeaders' predicate, with no closure per answer: a function, a scope and an
// array less per GET the own client answered)
function passedNotingType(k: string): boolean {
  if (!reachesClient(k)) return false;
  if (k === "content-type") passTyped = true;
  return true;
}

/** The object's own headers of an upstream response (lower-case names), as the cache stores them. */
export function objectHeaders(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  const hop = connectionListed(h);
  h.forEach((value, name) => {
    const n = name.toLowerCase();
    if (isObjectHeader(n) && (hop === undefined || !hop.includes(n))) out[n] = value;
  });
  return out;
}

/** Directives a shared cache obeys that must not reach one for an authenticated answer (RFC 9111 §5.2.2). */
const SHARED_CACHE_DIRECTIVE = /^(?:public|private|s-maxage|proxy-revalidate)(?:$|[\s=])/i;

/**
 * The Cache-Control of an answer that only an authenticated client may have: `private` (RFC 9111
 * §5.2.2.7), the object's other directives kept (max-age, no-cache, …), the ones addressed to
 * shared caches dropped. An object stored with `public` or `s-maxage` would otherwise let a CDN in
 * front of the proxy serve it to anyone (§3.5 lets a shared cache store an answer to a request with
 * Authorization when it says `public`), and an answer to a `?token=` request (no Authorization
 * header) with no Cache-Control at all could be stored by heuristic freshness (§4.2.2).
 */
/** An answer to an authenticated client, made private in place (see privateCacheControl); errors are left alone. */
export function answeredPrivately(res: Response): Response {
  if (res.status < 400) res.headers.set("cache-control", privateCacheControl(res.headers.get("cache-control")));
  return res;
}

export function privateCacheControl(value: string | null): string {
  if (value === null) return "private";
  let out = "private";
  for (const part of directives(value)) {
    const d = part.trim();
    if (d !== "" && !SHARED_CACHE_DIRECTIVE.test(d)) out += `, ${d}`;
  }
  return out;
}

/**
 * A Cache-Control value's directives: split at the commas outside quoted strings (a comma inside
 * one, `private="a, b"` or `no-cache="x, y"`, is part of its argument; split there, the list came
 * out as `private, b"`).
 */
function directives(value: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (quoted) {
      if (c === 0x5c) i++; // (a quoted-pair: the next character is literal)
      else if (c === 0x22) quoted = false;
    } else if (c === 0x22) quoted = true;
    else if (c === 0x2c) {
      out.push(value.slice(start, i));
      start = i + 1;
    }
  }
  out.push(value.slice(start));
  return out;
}

/**
 * `res` with `edit` applied to its headers: in place, or on a copy when they cannot be changed (a
 * Response straight from fetch has immutable headers).
 */
export function editHeaders(res: Response, edit: (h: Headers) => void): Response {
  try {
    edit(res.headers);
    return res;
  } catch {
    const copy = new Response(res.body, res);
    edit(copy.headers);
    return copy;
  }
}
