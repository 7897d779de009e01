/**
 * What may be stored, for how long, and with which headers.
 */
import { parseHttpDate } from "../http/conditional.ts";
import { isObjectHeader } from "../http/headers.ts";
import type { CachedObject } from "./types.ts";

/** RFC 9111 §1.2.2: delta-seconds too large to represent count as 2^31. */
const MAX_DELTA = 2147483648;

function delta(value: string | undefined): number {
  if (value === undefined) return 0;
  const v = value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  if (!/^\d+$/.test(v)) return 0; // invalid freshness information: treat as stale (RFC 9111 §4.2.1)
  return Math.min(Number(v), MAX_DELTA);
}

/**
 * Seconds an upstream response stays fresh in the cache, or null when it must not be stored.
 * - `no-store` or `private` (qualified or not) → null.
 * - `no-cache` → 0: stored, revalidated on every use (most restrictive directive wins).
 * - `s-maxage`, else `max-age` (a malformed value counts as 0) → that.
 * - otherwise the bucket's `ttl_seconds`, else the global `default_ttl_seconds`, cut short by an
 *   `Expires` (`expiry`): never fresh past it (RFC 9111 §4.2.4). One in the past, or invalid
 *   (`Expires: 0`), is stale at once (§5.3): such an object was served unrevalidated for the whole
 *   TTL after its uploader said it expired. A later one does not lengthen the TTL.
 */
export function freshnessSeconds(
  cacheControl: string | null,
  bucketTtl: number | undefined,
  defaultTtl: number,
  expiry?: { expires: string | null | undefined; date: string | null | undefined; now: number },
): number | null {
  let sMaxAge: number | undefined;
  let maxAge: number | undefined;
  let noCache = false;
  if (cacheControl !== null && cacheControl !== "") {
    for (const part of cacheControl.split(",")) {
      const eq = part.indexOf("=");
      const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
      const value = eq < 0 ? undefined : part.slice(eq + 1).trim();
      if (name === "no-store" || name === "private") return null;
      if (name === "no-cache") noCache = true;
      else if (name === "s-maxage") sMaxAge ??= delta(value);
      else if (name === "max-age") maxAge ??= delta(value);
    }
  }
  if (noCache) return 0;
  const explicit = sMaxAge ?? maxAge;
  if (explicit !== undefined) return explicit;
  const ttl = bucketTtl ?? defaultTtl;
  if (expiry === undefined || expiry.expires === null || expiry.expires === undefined) return ttl;
  const until = parseHttpDate(expiry.expires);
  if (Number.isNaN(until)) return 0;
  // (from the upstream's Date, as RFC 9111 §4.2.1 measures it: clocks need not agree)
  const sent = parseHttpDate(expiry.date ?? "");
  const lifetime = Math.floor((until - (Number.isNaN(sent) ? expiry.now : sent)) / 1000);
  return lifetime <= 0 ? 0 : Math.min(ttl, lifetime);
}

/** Upper bounds on how long an upstream answer may be stored, set by the one who fetched it (capFreshness). */
const caps = new WeakMap<Response, number>();

/**
 * Marks `res` as fresh for at most `seconds` in every cache layer (memory, disk, Redis), whatever
 * its Cache-Control or the bucket's TTL say: an answer from a bucket's secondary replica (see
 * src/s3/replicas.ts), which may lag behind the primary's writes. Returns `res`.
 */
export function capFreshness(res: Response, seconds: number): Response {
  caps.set(res, seconds);
  return res;
}

/** Vary's "*" member (a list member, or the whole value). */
const VARY_STAR = /(?:^|,)\s*\*\s*(?:,|$)/;

/**
 * `ttl` (from freshnessSeconds) as far as `res` may be stored: at most its capFreshness cap; null
 * when its Vary holds "*", which no stored response ever matches (RFC 9111 §4.1), or when it is of
 * an object encrypted with a customer key (SSE-C), readable only with that key, which a fill never
 * sends (an upstream that answered without it, as AWS S3 does not): each was stored and served as
 * a HIT to every later reader.
 */
export function cappedTtl(ttl: number | null, res: Response): number | null {
  if (ttl === null) return null;
  const vary = res.headers.get("vary");
  if (vary !== null && VARY_STAR.test(vary)) return null;
  if (res.headers.has("x-amz-server-side-encryption-customer-algorithm")) return null;
  const cap = caps.get(res);
  return cap === undefined || ttl <= cap ? ttl : cap;
}

/** The storable subset of upstream response headers: the one header policy (src/http/headers.ts). */
export { objectHeaders as pickHeaders, isObjectHeader as isStoredHeader } from "../http/headers.ts";

/**
 * Seconds old a stored answer was when it arrived: the upstream's Age (RFC 9111 §4.2.3's
 * age_value; 0 when it sent none or an invalid one).
 */
export function initialAge(headers: Record<string, string>): number {
  const v = headers.age;
  return v === undefined || !/^\d+$/.test(v) ? 0 : Math.min(Number(v), MAX_DELTA);
}

/** RFC 9111 §4.3.4: a 304 updates the stored headers it carries (never Content-Length). */
export function mergeHeaders(stored: Record<string, string>, fresh: Headers): Record<string, string> {
  const out = { ...stored };
  // (the copy is as old as the 304 says: one without Age comes from the origin, age 0)
  delete out.age;
  fresh.forEach((value, name) => {
    const n = name.toLowerCase();
    if (isObjectHeader(n)) out[n] = value;
  });
  return out;
}

/** A cache entry for `body`; `ttlSeconds` null means "serve once, don't store" (expires now); `date`: upstreamDate. */
export function makeObject(
  key: string,
  body: Blob,
  headers: Record<string, string>,
  now: number,
  ttlSeconds: number | null,
  date?: number,
): CachedObject {
  headers["content-length"] = String(body.size);
  const { storedAt, expiresAt } = storedTimes(headers, now, ttlSeconds);
  return { key, body, headers, storedAt, expiresAt, date, size: body.size, tpl: undefined };
}

/**
 * The Date of an upstream answer, epoch ms of the upstream's clock (0: none, or not a valid
 * HTTP-date), kept with the entry (CachedObject.date). The proxy's clock, which If-Range was
 * measured against, is not the upstream's: a proxy ahead of it took a Last-Modified written in
 * the second it was fetched for a strong validator (a 206 of bytes another write of that second
 * may have replaced), one behind it a strong one for weak, where an uncached answer said otherwise.
 */
export function upstreamDate(h: Headers): number {
  const d = parseHttpDate(h.get("date") ?? "");
  return Number.isNaN(d) ? 0 : d;
}

/**
 * An entry's times, the Age it came with taken out of `headers` and counted in storedAt (when its
 * age began: ageOf counts from it): fresh for what is left of its lifetime after that age (RFC 9111
 * §4.2); `ttlSeconds` null expires now. Kept as a header instead, each 304 of an upstream cache
 * (another Age each time) changed the stored headers, and the disk layer copied the whole object
 * to a new file at every revalidation instead of rewriting its times. (The disk layer's check that
 * a write is not older than the version it holds compares these: without an Age, fetch times.)
 */
export function storedTimes(headers: Record<string, string>, now: number, ttlSeconds: number | null): { storedAt: number; expiresAt: number } {
  const storedAt = now - initialAge(headers) * 1000;
  delete headers.age;
  return { storedAt, expiresAt: ttlSeconds === null ? now : storedAt + ttlSeconds * 1000 };
}
