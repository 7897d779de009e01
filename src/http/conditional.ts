/**
 * Conditional requests (RFC 9110 §13) evaluated against a representation's validators, in the
 * precedence order of §13.2.2. Used by the cache (answering 304/412 without S3) and by anything
 * else holding an ETag / Last-Modified.
 *
 * Leniencies (documented choices): a header whose value is empty is treated as absent; an
 * unquoted entity-tag (`If-None-Match: abc`) is compared as if it were quoted, as S3 does;
 * an invalid HTTP-date is ignored (the condition is skipped), as §13.1.3/§13.1.4 require; so is
 * an If-Modified-Since later than the current time, as S3 does (it answers 200, RFC 2616 §14.25's
 * rule): a cached object must not be 304 where the upstream sends it.
 */
import { utcMs } from "../util/utc.ts";

export type ConditionResult = "proceed" | "not-modified" | "precondition-failed";

export interface Validators {
  /** As sent in ETag, e.g. `"9b2cf535f27731c974343645a3985328"` or `W/"x"`. */
  etag?: string | undefined;
  /** An HTTP-date, as sent in Last-Modified. */
  lastModified?: string | undefined;
  /**
   * Epoch ms of the Date the validators were current at (a response's Date; a cache entry's time
   * stored or revalidated): If-Range only (undefined or NaN: unknown).
   */
  date?: number | undefined;
}

function present(h: Headers, name: string): string | null {
  const v = h.get(name);
  return v === null || v.trim() === "" ? null : v;
}

/** Evaluates If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since, in that order, at `now` (epoch ms). */
export function evaluateConditions(reqHeaders: Headers, v: Validators, method: string, now: number = Date.now()): ConditionResult {
  const ifMatch = present(reqHeaders, "if-match");
  if (ifMatch !== null) {
    if (!etagListMatches(ifMatch, v.etag, true)) return "precondition-failed";
  } else {
    const ius = present(reqHeaders, "if-unmodified-since");
    if (ius !== null && v.lastModified !== undefined) {
      const since = parseHttpDate(ius);
      const lm = parseHttpDate(v.lastModified);
      if (!Number.isNaN(since) && !Number.isNaN(lm) && lm > since) return "precondition-failed";
    }
  }
  const safe = method === "GET" || method === "HEAD";
  const ifNoneMatch = present(reqHeaders, "if-none-match");
  if (ifNoneMatch !== null) {
    if (etagListMatches(ifNoneMatch, v.etag, false)) return safe ? "not-modified" : "precondition-failed";
  } else if (safe) {
    const ims = present(reqHeaders, "if-modified-since");
    if (ims !== null && v.lastModified !== undefined) {
      const since = parseHttpDate(ims);
      const lm = parseHttpDate(v.lastModified);
      if (!Number.isNaN(since) && !Number.isNaN(lm) && lm <= since && since <= now) return "not-modified";
    }
  }
  return "proceed";
}

/**
 * If-Range (RFC 9110 §13.1.5): true when the Range header may be honoured. An entity-tag must
 * match strongly; a date must equal Last-Modified exactly and be a strong validator: a cache (or
 * this proxy relaying an answer) may take Last-Modified as strong only when its Date is at least
 * one second after it (§8.8.2.2; an object written twice within that second has one Last-Modified
 * for both versions). So a date matches only when `v.date` is at least Last-Modified + 1 s.
 * Anything unparseable → false (send 200).
 */
export function ifRangeAllows(ifRange: string | null, v: Validators): boolean {
  if (ifRange === null) return true;
  const value = ifRange.trim();
  if (!ifRangeMayMatch(value)) return false;
  if (value.startsWith('"')) return etagListMatches(value, v.etag, true, true);
  if (v.lastModified === undefined) return false;
  const d = parseHttpDate(value);
  return !Number.isNaN(d) && d === parseHttpDate(v.lastModified) && v.date !== undefined && v.date >= d + 1000;
}

interface Tag {
  weak: boolean;
  opaque: string;
}

function parseTag(s: string): Tag {
  let weak = false;
  if (s.startsWith("W/")) {
    weak = true;
    s = s.slice(2);
  }
  if (s.length >= 2 && s.charCodeAt(0) === 34 && s.charCodeAt(s.length - 1) === 34) s = s.slice(1, -1);
  return { weak, opaque: s };
}

/** One strong entity-tag, as If-Range takes it (a list, `*` or a weak tag is no If-Range validator). */
const ONE_STRONG_TAG = /^"[\x21\x23-\x7e\x80-\xff]*"$/;

/**
 * Whether an If-Range value (trimmed) can match any representation: one strong entity-tag or a
 * valid HTTP-date. Anything else (a weak tag, a list, `*`, garbage) never matches: the Range is
 * ignored and the whole object sent.
 */
export function ifRangeMayMatch(value: string): boolean {
  if (value.startsWith('"')) return ONE_STRONG_TAG.test(value);
  return !value.startsWith("W/") && !Number.isNaN(parseHttpDate(value));
}

/**
 * Calls `visit` with each member of an entity-tag list (weak, opaque-tag), as the cache reads it:
 * quoted tags, or bare ones up to the next comma; an unterminated quoted tag ends the reading.
 * Stops when `visit` returns true.
 */
function eachTag(list: string, visit: (weak: boolean, opaque: string) => boolean): void {
  const n = list.length;
  let i = 0;
  while (i < n) {
    const c = list.charCodeAt(i);
    if (c === 32 || c === 9 || c === 44) {
      i++;
      continue;
    }
    let weak = false;
    if (list.startsWith("W/", i)) {
      weak = true;
      i += 2;
    }
    let opaque: string;
    if (list.charCodeAt(i) === 34) {
      const close = list.indexOf('"', i + 1);
      if (close < 0) return; // unterminated tag: malformed, read no further
      opaque = list.slice(i + 1, close);
      i = close + 1;
    } else {
      let j = list.indexOf(",", i);
      if (j < 0) j = n;
      opaque = list.slice(i, j).trim();
      i = j;
    }
    if (visit(weak, opaque)) return;
  }
}

/**
 * True if the list (`*` or 1#entity-tag) matches `etag`. Strong comparison: neither tag weak and
 * opaque-tags equal; weak comparison: opaque-tags equal. `single` stops after the first member.
 */
export function etagListMatches(list: string, etag: string | undefined, strong: boolean, single = false): boolean {
  if (list.trim() === "*") return !single; // a representation exists whenever we evaluate
  if (etag === undefined) return false;
  const cur = parseTag(etag.trim());
  if (strong && cur.weak) return false;
  let matched = false;
  eachTag(list, (weak, opaque) => {
    matched = opaque === cur.opaque && !(strong && weak);
    return matched || single;
  });
  return matched;
}

/** An opaque-tag's characters (RFC 9110 etagc): what etagListMatches can match. */
const OPAQUE_TAG = /^[\x21\x23-\x7e\x80-\xff]*$/;

/**
 * An upstream's ETag as S3 writes it: quoted. Some S3-compatible stores send it bare
 * (`ETag: abc123`), which was relayed and cached as is: an entity-tag must be quoted (RFC 9110
 * §8.8.3), so HTTP caches and browsers in front of the proxy may not take it as a validator, and
 * the If-Match / If-None-Match a client builds from it (or a multipart Complete's part ETags) then
 * differ from what every other S3 store hands out. A bare one made of etagc characters is quoted
 * (`W/abc` as `W/"abc"`); a quoted one, and anything that cannot be one entity-tag (empty, a
 * space, a quote inside), is left as sent. Conditions compare either form alike (etagListMatches).
 */
export function quotedEtag(v: string): string {
  if (v.charCodeAt(0) === 34) return v;
  const weak = v.startsWith("W/");
  const opaque = weak ? v.slice(2) : v;
  if (opaque === "" || opaque.charCodeAt(0) === 34 || !OPAQUE_TAG.test(opaque)) return v;
  return `${weak ? "W/" : ""}"${opaque}"`;
}

/**
 * An ETag as a condition sent upstream pins an object with it (x-amz-copy-source-if-match): its
 * strong form, quoted. S3's ETags are strong; a `W/` one comes from a layer in front of the store
 * (a compressing proxy weakens what it rewrites), and If-Match compares strongly (RFC 9110
 * §13.1.1), so `W/"x"` never matches: a copy pinned with it was 412 PreconditionFailed while the
 * object was unchanged. `"x"` matches the store's own tag, as S3's comparison of the text does.
 */
export function strongEtag(v: string): string {
  return quotedEtag(v.startsWith("W/") ? v.slice(2) : v);
}

/** Whether two ETags (or XML <ETag> texts) name the same tag, quoted or not (strong comparison: a weak one never matches). */
export function sameEtag(a: string, b: string): boolean {
  const x = parseTag(a.trim());
  const y = parseTag(b.trim());
  return !x.weak && !y.weak && x.opaque === y.opaque;
}

/**
 * The If-Match / If-None-Match value to send upstream: the entity-tags etagListMatches reads,
 * written as RFC 9110 writes them (`"a", W/"b"`), or `*` alone. So the upstream cannot read a
 * malformed list another way than the cache does (`"x", *` was 304 uncached and 200 cached,
 * `W/abc` and `"x" "abc"` the other way round): the answer does not depend on whether the object
 * was cached. A list the cache finds no tag in is sent as `""`, a tag no object has (If-Match:
 * 412, If-None-Match: no match, as cached). A member the cache can never match (an opaque-tag with
 * a quote or a control character) is dropped.
 */
export function upstreamEtagList(list: string): string {
  if (list.trim() === "*") return "*";
  const tags: string[] = [];
  eachTag(list, (weak, opaque) => {
    if (OPAQUE_TAG.test(opaque)) tags.push(`${weak ? "W/" : ""}"${opaque}"`);
    return false;
  });
  return tags.length === 0 ? '""' : tags.join(", ");
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MON = "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)";
const TIME = "(\\d\\d):(\\d\\d):(\\d\\d)";
const IMF = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d\\d) ${MON} (\\d{4}) ${TIME} GMT$`);
const RFC850 = new RegExp(
  `^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d\\d)-${MON}-(\\d\\d) ${TIME} GMT$`,
);
const ASCTIME = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MON} ([ \\d]\\d) ${TIME} (\\d{4})$`);

function build(year: number, mon: string, day: number, h: string, m: string, s: string): number {
  const month = MONTHS.indexOf(mon);
  const hh = Number(h);
  const mm = Number(m);
  const ss = Number(s);
  if (hh > 23 || mm > 59 || ss > 60 || day < 1) return NaN;
  const t = utcMs(year, month, day, hh, mm, Math.min(ss, 59));
  return new Date(t).getUTCDate() === day ? t : NaN; // rejects 31 Feb and the like
}

/**
 * An upstream's Last-Modified as the proxy relays it: an HTTP-date (RFC 9110 §5.6.7) written as
 * IMF-fixdate, or undefined when it is none. S3's own form (IMF-fixdate: 29 characters, `,` after
 * the day's name, ` GMT` at the end) passes on its shape, unparsed (three character reads an
 * answer); any other is parsed. One that is none ("yesterday", a store's ISO 8601 time) is dropped
 * by both upstream clients: relayed, every AWS SDK refused the whole GetObject and HeadObject (the
 * JS SDK "Invalid RFC7231 date-time value", boto3 "Invalid timestamp"), an object no SDK could read
 * through the proxy. The obsolete RFC 850 and asctime forms, which a sender must not write (RFC
 * 9110 §5.6.7), are written as IMF-fixdate: relayed as they came, the JS SDK refused an RFC 850
 * date on a Wednesday or a Saturday ("Wednesday, 01-Jan-25 00:00:00 GMT") as it refuses an ISO one.
 */
export function relayedHttpDate(v: string): string | undefined {
  if (v.length === 29 && v.charCodeAt(3) === 44 && v.endsWith(" GMT")) return v;
  let t = parseHttpDate(v);
  // (a day of one digit, as RFC 822 and 1123 allow and stores write: `rclone serve s3`, Java's
  // RFC_1123_DATE_TIME. Dropped, such an object had no Last-Modified on the 1st to the 9th of a
  // month, though the JS SDK and boto3 read it; the day padded, every client reads it.)
  if (Number.isNaN(t) && ONE_DIGIT_DAY.test(v)) t = parseHttpDate(`${v.slice(0, 5)}0${v.slice(5)}`);
  return Number.isNaN(t) ? undefined : new Date(t).toUTCString();
}
const ONE_DIGIT_DAY = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d /;

/**
 * Parses an HTTP-date (RFC 9110 §5.6.7) in any of its three forms — IMF-fixdate, obsolete RFC 850
 * and asctime — to epoch milliseconds; NaN if it is none of them. Two-digit RFC 850 years more than
 * 50 years in the future are taken as the past century.
 */
export function parseHttpDate(s: string): number {
  const v = s.trim();
  let m = IMF.exec(v);
  if (m !== null) return build(Number(m[3]), m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  m = RFC850.exec(v);
  if (m !== null) {
    const nowYear = new Date().getUTCFullYear();
    let year = Math.floor(nowYear / 100) * 100 + Number(m[3]);
    if (year > nowYear + 50) year -= 100;
    return build(year, m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  }
  m = ASCTIME.exec(v);
  if (m !== null) return build(Number(m[6]), m[1]!, Number(m[2]!.trim()), m[3]!, m[4]!, m[5]!);
  return NaN;
}
