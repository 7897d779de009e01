/**
 * Range requests (RFC 9110 §14), with S3's behaviour where the RFC leaves a choice:
 * only a single byte range is served; anything the proxy cannot or will not honour
 * (syntax errors, other units, several ranges) is ignored, so the client gets the full 200 —
 * exactly what S3 answers for such headers.
 */
import { ProxyError } from "../errors.ts";


export type RangeResult =
  | { kind: "none" }
  | { kind: "ok"; start: number; /** inclusive */ end: number }
  | { kind: "unsatisfiable" };

const NONE: RangeResult = Object.freeze({ kind: "none" });
const UNSATISFIABLE: RangeResult = Object.freeze({ kind: "unsatisfiable" });

/** "bytes=" compared case-insensitively, char by char (c | 32 folds ASCII upper case only for letters). */
const UNIT = [98, 121, 116, 101, 115];

/**
 * Parses a Range header against a representation of `size` bytes.
 * - `none`: no header, a syntactically invalid one, a unit other than `bytes`, or more than one range
 *   (the header is ignored and the full representation is sent).
 * - `ok`: one satisfiable range, `end` clamped to `size - 1`; a suffix longer than the object is the whole object.
 * - `unsatisfiable`: first-pos ≥ size, `bytes=-0`, or any range on an empty representation (416).
 * The unit is case-insensitive; OWS (SP / HTAB) is allowed around the field value and around each
 * range-spec (list syntax), and empty list elements (`bytes=0-1,`) are skipped as RFC 9110 §5.6.1
 * requires. Hand-written scanner: this runs on every ranged cache hit.
 */
export function parseRange(header: string | null, size: number): RangeResult {
  if (header === null) return NONE;
  const spec = scanRange(header);
  if (spec === undefined) return NONE;
  const { first, last } = spec;
  if (first < 0) {
    if (last === 0 || size <= 0) return UNSATISFIABLE;
    return { kind: "ok", start: Math.max(0, size - last), end: size - 1 };
  }
  if (first >= size) return UNSATISFIABLE;
  return { kind: "ok", start: first, end: last < 0 || last >= size ? size - 1 : last };
}

/**
 * The Range header to send upstream: the one range parseRange reads, written as S3 reads it
 * (`bytes=first-last`, `bytes=first-`, `bytes=-suffix`), or undefined when parseRange ignores the
 * header (none is sent: the whole object). So an answer does not depend on whether the object was
 * cached: `bytes=1-2,` (an empty list element) and `bytes = 1-2` were read one way by the cache
 * and the other way by the upstream.
 */
export function upstreamRange(header: string): string | undefined {
  const spec = scanRange(header);
  if (spec === undefined) return undefined;
  const { first, last } = spec;
  // (positions beyond 2^53 are not exact numbers here: sent as written, S3 answers them 416)
  if (first > Number.MAX_SAFE_INTEGER || last > Number.MAX_SAFE_INTEGER) return header.trim();
  if (first < 0) return `bytes=-${last}`;
  return last < 0 ? `bytes=${first}-` : `bytes=${first}-${last}`;
}

/** The single range-spec of a Range header (first or last -1 when absent), or undefined when the header is to be ignored. */
function scanRange(header: string): { first: number; last: number } | undefined {
  const n = header.length;
  let i = 0;
  while (i < n && (header.charCodeAt(i) === 32 || header.charCodeAt(i) === 9)) i++;
  if (n - i < 6) return undefined;
  for (let u = 0; u < 5; u++) if ((header.charCodeAt(i + u) | 32) !== UNIT[u]) return undefined;
  if (header.charCodeAt(i + 5) !== 61) return undefined; // "="
  i += 6;
  let first = -1;
  let last = -1;
  let specs = 0;
  while (i < n) {
    let c = header.charCodeAt(i);
    if (c === 32 || c === 9 || c === 44) {
      i++;
      continue;
    }
    if (specs === 1) return undefined; // a second range: ignored, like S3
    specs = 1;
    for (; c >= 48 && c <= 57; c = header.charCodeAt(++i)) first = (first < 0 ? 0 : first * 10) + (c - 48);
    if (c !== 45) return undefined; // "-"
    for (c = header.charCodeAt(++i); c >= 48 && c <= 57; c = header.charCodeAt(++i)) last = (last < 0 ? 0 : last * 10) + (c - 48);
    if (i < n && c !== 32 && c !== 9 && c !== 44) return undefined;
  }
  if (specs === 0) return undefined;
  if (first < 0 && last < 0) return undefined; // "-"
  if (first >= 0 && last >= 0 && last < first) return undefined; // invalid range-spec: the whole header is ignored
  // Past 2^53 two positions may round to one number: `bytes=9007199254740993-9007199254740992` is
  // invalid (ignored, 200, as S3 reads it) and was 416 from the cache. Compared exactly then.
  if (last === first && first > Number.MAX_SAFE_INTEGER) {
    const m = /(\d+)-(\d+)/.exec(header)!;
    if (BigInt(m[2]!) < BigInt(m[1]!)) return undefined;
  }
  return { first, last };
}

/**
 * A 200's Content-Range (it has no meaning there, RFC 9110 §14.4: only 206 and 416 give it one):
 * false when there is none; true when it names the whole body of the 200's Content-Length (an
 * upstream that adds it to every GET: the caller drops it); any other (a part of a larger object,
 * or a body of unknown length) says the 200 carries part of the object, not the object: its body
 * is cancelled and a BadGateway thrown (relayed as the object, or cached as it, it was wrong).
 */
export function wholeRangeOf200(res: Response): boolean {
  const range = res.headers.get("content-range");
  if (range === null) return false;
  const m = /^\s*bytes\s+(?:(\d{1,16})-(\d{1,16})|\*)\/(\d{1,16})\s*$/i.exec(range);
  const declared = res.headers.get("content-length");
  const length = Number(declared);
  if (m !== null && declared !== null && Number(m[3]) === length && (m[1] === undefined ? length === 0 : Number(m[1]) === 0 && Number(m[2]) === length - 1)) return true;
  res.body?.cancel().catch(() => {});
  throw new ProxyError("BadGateway", { detail: m === null ? unreadableContentRange(200) : "The upstream answered 200 with a Content-Range for part of the object" });
}

/** A byte range's Content-Range, `bytes first-last/size` (size `*`: unknown), as a 206 carries it. */
const RANGE_206 = /^\s*bytes\s+(\d{1,16})-(\d{1,16})\/(\d{1,16}|\*)\s*$/i;

/** Whether a 206's Content-Range is a byte range at all (`bytes first-last/size`, first <= last). */
export function readableContentRange(header: string | null): boolean {
  const m = header === null ? null : RANGE_206.exec(header);
  return m !== null && Number(m[1]) <= Number(m[2]);
}

/**
 * The 502's words for an upstream answer whose Content-Range is no byte range (`garbage`, a 206
 * without one): what was wrong, never the upstream's value. (It read "for part of the object" on
 * a 200, and "other bytes than those asked for" on a 206, neither of which the proxy could know.)
 */
export function unreadableContentRange(status: 200 | 206, missing = false): string {
  return `The upstream answered ${status === 200 ? "200" : "206 Partial Content"} ${missing ? "without a Content-Range" : "with a Content-Range the proxy cannot parse (not a byte range)"}`;
}

/** `Content-Range` value of a 206: `bytes start-end/size`. */
/**
 * Whether an upstream's 206 Content-Range (`bytes first-last/size`) answers the Range header the
 * proxy sent (`sent`, as upstreamRange wrote it; undefined: none was sent). A store that answered
 * 206 to a request without a Range, or other bytes than those asked for, had them relayed as the
 * object's (an S3 client reading a ranged download writes them where it asked for its range).
 * A size of `*` (unknown) is accepted with the right first byte.
 */
export function answersRange(sent: string | undefined, contentRangeHeader: string | null): boolean {
  if (sent === undefined || contentRangeHeader === null) return false;
  const m = RANGE_206.exec(contentRangeHeader);
  if (m === null) return false;
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (last < first) return false;
  if (m[3] === "*") {
    const spec = scanRange(sent);
    return spec !== undefined && spec.first >= 0 && spec.first === first;
  }
  const r = parseRange(sent, Number(m[3]));
  return r.kind === "ok" && r.start === first && r.end === last;
}

export function contentRange(start: number, end: number, size: number): string {
  return `bytes ${start}-${end}/${size}`;
}

/** `Content-Range` value of a 416: `bytes *\/size`. */
export function unsatisfiedRange(size: number): string {
  return `bytes */${size}`;
}
