/**
 * ListObjectsV2 continuation tokens of the S3 front: the proxy's own, not the upstream's.
 *
 * An upstream's NextContinuationToken is valid only on the store that issued it (a replica's is
 * refused by the others, so a listing failed when the primary failed over between pages) and may
 * carry its internals (a bucket name). The client gets instead base64url of
 *
 *   0x59 0x02 (magic, version) | 12-byte IV | AES-256-GCM of (flags | replica | upstream token |
 *   after, each but the flags byte a 2-byte length and UTF-8) | its 16-byte tag, authenticating
 *   the bucket, prefix and delimiter of the listing too
 *
 * `replica` served the page (empty for a bucket without replicas); `after` is the page's last entry:
 * its last key, or a common prefix (flags bit 0). The next page asks that replica with its token
 * while it is healthy; any other replica (the token's failed, was skipped, or refused its own
 * token) is asked with start-after = `after`, or past a common prefix pastPrefix(`after`), so no
 * key is repeated or skipped. (Version 1, without flags, holds a common prefix followed by
 * U+10FFFF: read as that prefix. It is still what issueToken writes when it says the same, for
 * the releases that read only it; see there.)
 *
 * An upstream token longer than KEEP_UPSTREAM_BYTES is left out when the page has a last entry
 * (S3's, MinIO's and others' encode the key it resumes after): the replica that gave it is then
 * asked with start-after too, the same page. Kept, a page ending on a 1,024-byte key gave a token
 * of ~3.3 KiB (the key twice, once in the upstream's base64), which with a long prefix and a
 * presigned query passed common request-line limits (8 KiB); now ~1.4 KiB at most.
 *
 * Encrypted, so the upstream's token (and what it holds) is not readable. The key comes from the bucket's configuration (its name and its replicas' secret keys), so
 * every process and worker with the same config accepts the tokens of the others, and a token
 * cannot be moved to another bucket, prefix or delimiter, or altered: such a token, or one in this
 * form made with another key, is S3's 400 InvalidArgument. A token not in this form (an upstream's,
 * given out before the change) is passed through as it was during RAW_TOKEN_GRACE_MS after the
 * process starts (a listing under way across an upgrade), then refused the same way.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import type { BucketConfig } from "../../config/schema.ts";
import { ProxyError } from "../../errors.ts";

const MAGIC = 0x59;
const VERSION = 2;
const VERSION_1 = 1;
/** S3's longest key, in UTF-8 bytes. */
const MAX_KEY_BYTES = 1024;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** The greatest code point (UTF-8 f4 8f bf bf). */
const MAX_CHAR = "\u{10FFFF}";
/** The greatest character of 1, 2 and 3 UTF-8 bytes. */
const MAX_CHAR_OF = ["", "\x7f", "\u07ff", "\uffff"];

/**
 * A start-after past every key under the common prefix `p`, in S3's order (UTF-8 bytes): `p`
 * filled up to S3's longest key with the greatest characters. `p` + U+10FFFF alone was passed by
 * the keys under `p` that go on after a U+10FFFF (the common prefix listed again on a store that
 * does not skip the prefix a start-after falls in).
 */
export function pastPrefix(p: string): string {
  const room = MAX_KEY_BYTES - Buffer.byteLength(p, "utf8");
  return room <= 0 ? p + MAX_CHAR : p + MAX_CHAR.repeat(room >> 2) + MAX_CHAR_OF[room & 3];
}

/** A page's last entry: a key, or a common prefix (`past`: the next page starts past every key under it). */
export interface LastEntry {
  after: string;
  past: boolean;
}

/** The later of two entries in S3's order (a key is never under a common prefix of the same page). */
export function laterEntry(a: LastEntry | undefined, b: LastEntry): LastEntry {
  if (a === undefined) return b;
  return sortsAfter(b.past ? b.after + MAX_CHAR : b.after, a.past ? a.after + MAX_CHAR : a.after) ? b : a;
}
/** Longest upstream token kept in a token whose page has a last entry (to resume from without it). */
const KEEP_UPSTREAM_BYTES = 256;
/** How long after the start an upstream's own token (from before this change) is still passed through. */
export const RAW_TOKEN_GRACE_MS = 60 * 60 * 1000;
const STARTED = Date.now();

export interface ListToken extends LastEntry {
  /** The replica that served the page ("" for a bucket without replicas). */
  replica: string;
  /** That replica's NextContinuationToken. */
  upstream: string;
  /** Start-after for any other replica ("" for the start), or (`past`) the common prefix to start past. */
  after: string;
}

/** What a listing's token is bound to. */
export interface ListBinding {
  bucket: string;
  prefix: string;
  delimiter: string;
}

const keys = new WeakMap<BucketConfig, Buffer>();

/** The bucket's token key: the same in every process with the same config. */
function keyOf(cfg: BucketConfig): Buffer {
  let key = keys.get(cfg);
  if (key === undefined) {
    const h = createHash("sha256").update("yatagarasu list token\0").update(cfg.name);
    // (the replicas by name, not in priority order: a reload that only reorders them keeps the
    // listings under way, whose tokens name their replica; in priority order they all became 400)
    const replicas = cfg.s3.replicas === undefined ? [cfg.s3] : cfg.s3.replicas.toSorted((a, b) => (a.name < b.name ? -1 : 1));
    for (const r of replicas) h.update("\0").update(r.bucket ?? "").update("\0").update(r.secret_key ?? "");
    keys.set(cfg, (key = h.digest()));
  }
  return key;
}

const HEAD = Buffer.from([MAGIC, VERSION]);
const HEAD_1 = Buffer.from([MAGIC, VERSION_1]);
const bound = (b: ListBinding) => Buffer.from(JSON.stringify([b.bucket, b.prefix, b.delimiter]), "utf8");

/** Longest field (its length is 2 bytes). */
const MAX_FIELD_BYTES = 0xffff;

function field(s: string): Buffer {
  const bytes = Buffer.from(s, "utf8");
  // (never cut short: a token resuming elsewhere than the page's end; nextToken keeps within it)
  if (bytes.length > MAX_FIELD_BYTES) throw new RangeError(`a list token field of ${bytes.length} bytes`);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

/**
 * The replica of a version 1 token without its upstream's token: a name no replica has (REPLICA_NAME),
 * so that every replica is asked with start-after (a release reading only version 1 asked the
 * replica of the token with an empty continuation-token).
 */
const NO_REPLICA = "*";

export function issueToken(cfg: BucketConfig, b: ListBinding, t: ListToken): string {
  // Version 1 whenever it says the same (version 2 only for a key ending in U+10FFFF, which it
  // would read as a common prefix): a fleet being upgraded from (or rolled back to) a release
  // reading only version 1 goes on with the listings its other replicas began.
  const after = t.past ? t.after + MAX_CHAR : t.after;
  const v1 = (t.past || !t.after.endsWith(MAX_CHAR)) && Buffer.byteLength(after, "utf8") <= MAX_FIELD_BYTES;
  const head = v1 ? HEAD_1 : HEAD;
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", keyOf(cfg), iv);
  cipher.setAAD(Buffer.concat([head, bound(b)]));
  const fields = v1
    ? [field(t.upstream === "" ? NO_REPLICA : t.replica), field(t.upstream), field(after)]
    : [Buffer.from([t.past ? 1 : 0]), field(t.replica), field(t.upstream), field(t.after)];
  const sealed = Buffer.concat([cipher.update(Buffer.concat(fields)), cipher.final()]);
  return Buffer.concat([head, iv, sealed, cipher.getAuthTag()]).toString("base64url");
}

/**
 * The token of a page replica `served` answered with NextContinuationToken `upstream`: it resumes
 * after the page's `last` entry, or (a page without entries) at `earlier` (where the page started).
 * An entry, or an upstream token needed to resume, over 64 KiB (S3's keys are at most 1 KiB, its
 * tokens far shorter) cannot be carried whole: the page is the upstream's failure (it was cut
 * short, and the next page resumed elsewhere).
 */
export function nextToken(cfg: BucketConfig, b: ListBinding, served: string, upstream: string, last: LastEntry | undefined, earlier: LastEntry): string {
  const at = last ?? earlier;
  const upstreamBytes = Buffer.byteLength(upstream, "utf8");
  const keep = last === undefined || upstreamBytes <= KEEP_UPSTREAM_BYTES;
  if ((keep && upstreamBytes > MAX_FIELD_BYTES) || Buffer.byteLength(at.after, "utf8") > MAX_FIELD_BYTES) {
    throw new ProxyError("BadGateway", { detail: "The upstream's listing cannot be resumed: an entry or its continuation token is over 64 KiB" });
  }
  return issueToken(cfg, b, { replica: served, upstream: keep ? upstream : "", after: at.after, past: at.past });
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * The client's token: a ListToken of this listing, "raw" (not in this form, passed through while
 * the grace lasts), or undefined (refused: InvalidArgument).
 */
export function readToken(cfg: BucketConfig, b: ListBinding, token: string, now = Date.now()): ListToken | "raw" | undefined {
  const bytes = BASE64URL.test(token) ? Buffer.from(token, "base64url") : undefined;
  if (bytes === undefined || bytes.length < 2 + IV_BYTES + 6 + TAG_BYTES || bytes[0] !== MAGIC || (bytes[1] !== VERSION && bytes[1] !== VERSION_1)) {
    return token !== "" && now - STARTED < RAW_TOKEN_GRACE_MS ? "raw" : undefined;
  }
  // Only the one spelling this proxy writes: base64url decoding drops a character past the last
  // whole byte (and the unused bits of the last one), so the token with one more character read
  // as the same token, where S3 refuses any change to its own.
  if (bytes.toString("base64url") !== token) return undefined;
  let payload: Buffer;
  try {
    const decipher = createDecipheriv("aes-256-gcm", keyOf(cfg), bytes.subarray(2, 2 + IV_BYTES));
    decipher.setAAD(Buffer.concat([bytes[1] === VERSION ? HEAD : HEAD_1, bound(b)]));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    payload = Buffer.concat([decipher.update(bytes.subarray(2 + IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
  } catch {
    return undefined; // (another listing's, altered, or another key's)
  }
  const out: string[] = [];
  const v1 = bytes[1] === VERSION_1;
  if (!v1 && (payload.length === 0 || payload[0]! > 1)) return undefined;
  let at = v1 ? 0 : 1;
  for (let i = 0; i < 3; i++) {
    if (at + 2 > payload.length) return undefined;
    const len = payload.readUInt16BE(at);
    if (at + 2 + len > payload.length) return undefined;
    out.push(payload.subarray(at + 2, at + 2 + len).toString("utf8"));
    at += 2 + len;
  }
  if (at !== payload.length) return undefined;
  if (v1) return out[2]!.endsWith(MAX_CHAR) ? { replica: out[0]!, upstream: out[1]!, after: out[2]!.slice(0, -MAX_CHAR.length), past: true } : { replica: out[0]!, upstream: out[1]!, after: out[2]!, past: false };
  return { replica: out[0]!, upstream: out[1]!, after: out[2]!, past: payload[0] === 1 };
}

/** What one page asks an upstream: its own continuation token, or a start-after (or neither: the start). */
export interface PageAsk {
  continuationToken?: string;
  startAfter?: string;
}

/**
 * One page of a listing resumed from `from` on replica `served`: with that replica's own token
 * while it is the one that gave it (and the token holds it), else (or when it refuses its own token: a store restarted)
 * start-after the token's last entry. `resumed`: the page was asked with start-after.
 */
export async function askResumed(from: ListToken, served: string, ask: (page: PageAsk) => Promise<Response>): Promise<{ res: Response; resumed: boolean }> {
  if (from.replica === served && from.upstream !== "") {
    const own = await ask({ continuationToken: from.upstream });
    if (own.status !== 400) return { res: own, resumed: false };
    await own.body?.cancel().catch(() => {});
  }
  const startAfter = from.past ? pastPrefix(from.after) : from.after;
  return { res: await ask({ continuationToken: undefined, startAfter: startAfter === "" ? undefined : startAfter }), resumed: true };
}

/** S3's encoding-type=url (Java's URLEncoder, space as "+", that also keeps "/"), undone. */
export function s3UrlDecode(s: string): string {
  return decodeURIComponent(s.replace(/\+/g, " "));
}

/**
 * Whether `s` can be a url-encoded key as a store writes one in an encoding-type=url listing: no
 * space, control or non-ASCII character, and every "%" an escape, the escapes UTF-8. Stores differ
 * on which ASCII characters they escape (S3 keeps only A-Za-z0-9 . - _ * /), so those are not read.
 */
export function isUrlEncodedForm(s: string): boolean {
  if (/[^!-~]/.test(s)) return false;
  if (!s.includes("%")) return true;
  try {
    decodeURIComponent(s);
    return true;
  } catch {
    return false;
  }
}

/** S3's encoding-type=url: A-Za-z0-9 . - _ * / kept, space as "+", every other byte %XX. */
export function s3UrlEncode(s: string): string {
  return encodeURIComponent(s).replace(/%20/g, "+").replace(/%2F/g, "/").replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

/** Whether `a` sorts after `b` in S3's order (UTF-8 bytes). */
export function sortsAfter(a: string, b: string): boolean {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")) > 0;
}
