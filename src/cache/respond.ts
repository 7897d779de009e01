/**
 * Responses built from a cached object: 200 (GET/HEAD), 304, 206 from a zero-copy Blob slice;
 * 412 and 416 are thrown as ProxyError so the caller renders them like every other error.
 */
import { ProxyError } from "../errors.ts";
import { evaluateConditions, ifRangeAllows } from "../http/conditional.ts";
import { UNTYPED_CONTENT_TYPE } from "../http/headers.ts";
import { contentRange, parseRange, unsatisfiedRange } from "../http/range.ts";
import { blobBodiesWanted, markBlobBody } from "../http/blob-body.ts";
import { initialAge } from "./freshness.ts";
import { isFileBody, type CachedObject, type ObjectMeta } from "./types.ts";

export type ObjectStatus = "HIT" | "MISS" | "REVALIDATED" | "STALE";

/** Headers a 304 repeats from the 200 it stands for (RFC 9110 §15.4.5). */
const NOT_MODIFIED_HEADERS = ["etag", "last-modified", "cache-control", "expires"];

/**
 * Age in whole seconds since the object's age began (storedTimes: the age it came with counted in),
 * plus an Age kept as a header (entries an earlier version stored).
 */
export function ageOf(obj: { storedAt: number; headers: Record<string, string> }, now: number): number {
  const age = Math.floor((now - obj.storedAt) / 1000);
  return (age > 0 ? age : 0) + initialAge(obj.headers);
}

/**
 * X-Cache-Layer names the layer a HIT came from (memory, disk, redis); X-Cache stays HIT for all.
 *
 * A file-backed body (disk layer) gets `Content-Disposition: inline` when the object has none:
 * Bun.serve otherwise adds `Content-Disposition: filename="<cache file name>"` to file bodies of
 * many content types (application/*, model/*, ...), leaking the internal name and, lacking a
 * disposition type, making some browsers download what they used to display. `inline` is what
 * an absent header means (RFC 6266 §4.2).
 */
function fullHeaders(obj: CachedObject, age: number, xCache: string): Headers {
  const h = new Headers(obj.headers);
  h.set("accept-ranges", "bytes");
  h.set("age", String(age));
  h.set("x-cache", xCache);
  if (xCache === "HIT") h.set("x-cache-layer", obj.source ?? "memory");
  if (obj.headers["content-disposition"] === undefined && isFileBody(obj.body)) h.set("content-disposition", "inline");
  // (else a memory hit went out with the type Bun gives the stored Blob, text/plain;charset=utf-8)
  if (obj.headers["content-type"] === undefined) h.set("content-type", UNTYPED_CONTENT_TYPE);
  return h;
}

/**
 * Headers for a 200 HIT, prebuilt once per entry per value of Age. Bun's Response copies the
 * Headers it is given, so sharing one instance between responses is safe (checked in the tests).
 */
function hitHeaders(obj: CachedObject, age: number): Headers {
  const t = obj.tpl;
  if (t !== undefined && t.age === age) return t.headers;
  const headers = fullHeaders(obj, age, "HIT");
  obj.tpl = { age, headers, notModified: undefined, rangeBase: t?.rangeBase };
  return headers;
}

/** Headers of a 206: a copy of the entry's prebuilt base (HIT) plus Age, Content-Range, Content-Length. */
function rangeHeaders(obj: CachedObject, age: number, xCache: string, start: number, end: number): Headers {
  let h: Headers;
  if (xCache === "HIT") {
    const t = obj.tpl ?? (obj.tpl = { age: -1, headers: new Headers(), notModified: undefined, rangeBase: undefined });
    if (t.rangeBase === undefined) {
      t.rangeBase = fullHeaders(obj, 0, xCache);
      t.rangeBase.delete("age");
    }
    h = new Headers(t.rangeBase);
    h.set("age", String(age));
  } else {
    h = fullHeaders(obj, age, xCache);
  }
  h.set("content-range", contentRange(start, end, obj.size));
  h.set("content-length", String(end - start + 1));
  return h;
}

/** X-Cache (and the layer of a HIT, as every HIT names it) on a 412 / 416 answered from a cached object. */
function refusalHeaders(obj: CachedObject, xCache: string): Record<string, string> {
  return xCache === "HIT" ? { "x-cache": xCache, "x-cache-layer": obj.source ?? "memory" } : { "x-cache": xCache };
}

/** `age` undefined: an answer passed on from the upstream, whose 200 carries only the upstream's own Age, if any. */
function notModifiedHeaders(headers: Record<string, string>, age: number | undefined, xCache: string, layer?: string): Headers {
  const h = new Headers({ "x-cache": xCache });
  const a = age === undefined ? headers.age : String(age);
  if (a !== undefined) h.set("age", a);
  if (layer !== undefined) h.set("x-cache-layer", layer);
  for (const name of NOT_MODIFIED_HEADERS) {
    const v = headers[name];
    if (v !== undefined) h.set(name, v);
  }
  return h;
}

/**
 * A 304 carrying `headers`' validators and cache headers (RFC 9110 §15.4.5). `age`: the Age of an
 * answer from the cache; undefined for one passed on from the upstream (a BYPASS, a streaming
 * fill's first client), which carries the Age its 200 would: the upstream's, if it sent one
 * (RFC 9111 §5.1: Age is a cache's estimate; it said `Age: 0` on an answer no cache gave).
 */
export function notModified(headers: Record<string, string>, age: number | undefined, xCache: string): Response {
  return new Response(null, { status: 304, headers: notModifiedHeaders(headers, age, xCache) });
}

/** A 304 for a cached object; a HIT reuses the entry's prebuilt 304 headers for the current Age. */
function notModifiedFrom(obj: CachedObject, age: number, xCache: string): Response {
  if (xCache !== "HIT") return notModified(obj.headers, age, xCache);
  hitHeaders(obj, age);
  const t = obj.tpl!;
  const h = t.notModified ?? (t.notModified = notModifiedHeaders(obj.headers, age, xCache, obj.source ?? "memory"));
  return new Response(null, { status: 304, headers: h });
}

/**
 * Answers a request from `obj`: conditionals first (304 / 412), then If-Range and Range (206 /
 * 416), else the full 200. A HEAD gets the GET's answer without its body, Range included: S3's
 * HeadObject takes a Range (206 with the range's Content-Length and Content-Range, or 416), and an
 * uncached bucket answers so (the upstream decides); RFC 9110 §9.3.2 asks a HEAD for the GET's
 * header fields. (§14.2 would have a HEAD ignore Range; S3, which the proxy fronts, does not.)
 */
export function respondFromObject(
  obj: CachedObject,
  reqHeaders: Headers,
  method: string,
  now: number,
  status: ObjectStatus,
): Response {
  const age = ageOf(obj, now);
  const cond = evaluateConditions(reqHeaders, { etag: obj.headers.etag, lastModified: obj.headers["last-modified"] }, method, now);
  if (cond === "not-modified") return notModifiedFrom(obj, age, status);
  if (cond === "precondition-failed") throw new ProxyError("PreconditionFailed", { headers: refusalHeaders(obj, status) });
  const isGet = method === "GET";
  const range = reqHeaders.get("range");
  if (range !== null) {
    const r = parseRange(range, obj.size);
    if (r.kind !== "none" && ifRangeAllows(reqHeaders.get("if-range"), { etag: obj.headers.etag, lastModified: obj.headers["last-modified"], date: obj.date ?? obj.storedAt })) {
      if (r.kind === "unsatisfiable") {
        // (X-Cache as on every answer from a cached object)
        throw new ProxyError("RangeNotSatisfiable", { headers: { "content-range": unsatisfiedRange(obj.size), ...refusalHeaders(obj, status) } });
      }
      const h = rangeHeaders(obj, age, status, r.start, r.end);
      if (!isGet) return new Response(null, { status: 206, headers: headHeaders(obj, h) });
      const part = obj.body.slice(r.start, r.end + 1);
      return memoryBody(obj, new Response(part, { status: 206, headers: h }), part);
    }
  }
  const headers = status === "HIT" ? hitHeaders(obj, age) : fullHeaders(obj, age, status);
  return isGet ? memoryBody(obj, new Response(obj.body, { status: 200, headers }), obj.body) : new Response(null, { status: 200, headers: headHeaders(obj, headers) });
}

/**
 * A body held in memory (not a disk layer's file, which is read from its path) is marked for the
 * node engine, which sends it in slices of the shared bytes (src/http/blob-body.ts).
 */
function memoryBody(obj: CachedObject, res: Response, body: Blob): Response {
  return !blobBodiesWanted() || isFileBody(obj.body) ? res : markBlobBody(res, body);
}

/**
 * A HEAD's headers: the GET's without the `Content-Disposition: inline` a file body gets (see
 * fullHeaders), which is no part of the object: a HEAD sends no file, and aws-cli/boto3 copy an
 * object in parts by sending what HeadObject reported to CreateMultipartUpload (the copy of a
 * disk hit was stored with a disposition its source never had).
 */
function headHeaders(obj: CachedObject, h: Headers): Headers {
  if (obj.headers["content-disposition"] !== undefined || !h.has("content-disposition")) return h;
  const out = new Headers(h);
  out.delete("content-disposition");
  return out;
}

/**
 * Answers a request from a streaming fill in progress (a MISS that follows it, serve.ts): the same
 * rules as respondFromObject, from the fill's stored headers, with `body(start, end)` giving the
 * bytes [start, end) as they reach the file. It is called only when a body is sent (a GET's 200 or
 * 206), so a HEAD or a 304 reads nothing.
 */
export function respondFromFill(
  meta: ObjectMeta,
  body: (start: number, end: number) => ReadableStream<Uint8Array>,
  reqHeaders: Headers,
  method: string,
  now: number,
): Response {
  const age = ageOf(meta, now);
  const v = { etag: meta.headers.etag, lastModified: meta.headers["last-modified"] };
  const cond = evaluateConditions(reqHeaders, v, method, now);
  if (cond === "not-modified") return notModified(meta.headers, age, "MISS");
  if (cond === "precondition-failed") throw new ProxyError("PreconditionFailed", { headers: { "x-cache": "MISS" } });
  const isGet = method === "GET";
  const h = new Headers(meta.headers);
  h.set("accept-ranges", "bytes");
  h.set("age", String(age));
  h.set("x-cache", "MISS");
  if (meta.headers["content-type"] === undefined) h.set("content-type", UNTYPED_CONTENT_TYPE);
  const range = reqHeaders.get("range");
  if (range !== null) {
    const r = parseRange(range, meta.size);
    if (r.kind !== "none" && ifRangeAllows(reqHeaders.get("if-range"), { ...v, date: meta.date ?? meta.storedAt })) {
      if (r.kind === "unsatisfiable") throw new ProxyError("RangeNotSatisfiable", { headers: { "content-range": unsatisfiedRange(meta.size), "x-cache": "MISS" } });
      h.set("content-range", contentRange(r.start, r.end, meta.size));
      h.set("content-length", String(r.end - r.start + 1));
      return new Response(isGet ? body(r.start, r.end + 1) : null, { status: 206, headers: h });
    }
  }
  return new Response(isGet ? body(0, meta.size) : null, { status: 200, headers: h });
}
