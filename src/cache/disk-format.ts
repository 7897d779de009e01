/**
 * The disk layer's file format and names. One object is one file, so it becomes visible with one
 * rename and can never be half of one thing and half of another:
 *
 *    0  "YTC1"          magic and format version
 *    4  f64 storedAt    epoch ms  ┐ rewritten in place when a revalidation refreshes the entry
 *   12  f64 expiresAt   epoch ms  ┘ (16 bytes inside one sector)
 *   20  f64 size        body bytes
 *   28  u32 metaLen     bytes of the JSON that follows
 *   32  JSON {"hcrc", "key", "headers", "store", "owner", "date", "crc"}, "crc" last: 8 hex digits, the body's CRC-32
 *                       ("hcrc" first: the CRC-32 of the JSON from after its digits to the date's slot,
 *                       HCRC_PREFIX; none before 2026-12-08)
 *                       ("date": the upstream answer's, CachedObject.date; none before 2026-12-07;
 *                       since 2026-12-08 a number or null right-aligned in DATE_WIDTH characters,
 *                       JSON white space before it, just before "crc": rewritten in place with the
 *                       times by a revalidation, whose Date it is from then on: dateSlot)
 *   32 + metaLen        the body, exactly `size` bytes: served with Bun.file(path).slice(...)
 *
 * A file whose length is not 32 + metaLen + size (truncated, or grown by someone
 * else) is not an object. The CRC is computed as the body is written (~8 GB/s), written over the
 * head's placeholder before the rename (CRC_DIGITS: at a fixed place), and checked once per file
 * and process, before the file's first hit after a start (disk.ts verify): a body changed at the
 * same length (bit rot) is then a miss, never served. Files written before 2026-12-06 have no
 * "crc" and are served unchecked. The format stays "YTC1", which releases before the CRC read
 * (ignoring "crc" and "owner"), so a rollback or an older replica sharing the folder keeps the
 * files. Names: objects/<h2>/<h32>.<version>.obj, where h32 is the first 32 hex digits of the
 * key's SHA-256 and h2 its first two (256 folders); each write gets a new version, so a file that
 * a response is being sent from is never replaced under it. Temporary files:
 * tmp/<pid>.<random>.part (the pid says whether the writer is still alive).
 *
 * `store` records the upstream the object was read from (storeStamp of its bucket's store, see
 * cache/config.ts), inside the file it describes: it is written with the object and made visible
 * by the same rename, so it can never be torn from it or disagree with it. At start a file whose
 * stamp is not its bucket's current one (the bucket reads another store now, or does not cache)
 * is dropped. Files written before the stamp existed have none (and are dropped: their store
 * cannot be known); an older version reading a stamped file ignores the field.
 */
import { storedEntryHeaders, storedExpiry, type ObjectMeta } from "./types.ts";

export const HEAD_BYTES = 32;
const MAGIC = 0x31435459; // "YTC1" read as little-endian u32
/** The head's "crc" placeholder; its 8 hex digits are CRC_DIGITS bytes from the head's end (before `"}`). */
const CRC_PLACEHOLDER = "00000000";
export const CRC_DIGITS = 10;
/** What follows the date's slot: `,"crc":"<8 digits>"}`. */
const AFTER_DATE = 18;
/** The date's slot: epoch ms (13 digits until 2286) or null, right-aligned. */
const DATE_WIDTH = 16;
const DATE_KEY = new TextEncoder().encode('"date":');
/**
 * The head's own CRC-32 ("hcrc", first in the JSON: its 8 hex digits right after this prefix), over
 * the JSON from the end of those digits to the date's slot (key, headers, store, owner): the
 * times and the date, rewritten in place by a revalidation, and the body's "crc" are not in it.
 * A byte of the stored headers changed on disk (a Content-Type, an ETag) was served as the object's.
 */
const HCRC_PREFIX = new TextEncoder().encode('{"hcrc":"');
/** Metadata larger than this is refused (S3 caps user metadata at 2 KB; headers stay far below). */
const MAX_META_BYTES = 64 * 1024;

export interface DiskHead {
  key: string;
  headers: Record<string, string>;
  storedAt: number;
  expiresAt: number;
  size: number;
  /** Where the body starts. */
  bodyOffset: number;
  /** The body's CRC-32 recorded in the head ("crc"); undefined in a file written before it was. */
  crc?: number | undefined;
  /** The instance (DiskLayerOptions.instance) that wrote it; undefined: none named (or written before 2026-12-06). */
  owner?: string | undefined;
  /** The store the object was read from (its bucket's storeStamp when written); undefined in files written before it was recorded. */
  store?: string | undefined;
  /** The upstream answer's Date (CachedObject.date); undefined in files written before it was recorded. */
  date?: number | undefined;
  /** Whether the head holds the date in its fixed-width slot (dateBytes; not in files written before 2026-12-08). */
  dateSlot?: boolean;
}

export function keyHash(key: string): string {
  return new Bun.CryptoHasher("sha256").update(key).digest("hex").slice(0, 32);
}

let seq = 0;
/** A version suffix unique within this process and, with the random part, across processes. */
export function newVersion(): string {
  seq = (seq + 1) % 1_000_000;
  return Date.now().toString(36) + seq.toString(36) + Math.floor(Math.random() * 36 ** 4).toString(36);
}

/**
 * When the file at `file` (an objectPath) was put in place: the time its version begins with (8
 * base-36 digits from 1972 to 2059, newVersion), which no rewrite in place changes. Undefined for
 * a name of another form.
 */
export function namedAt(file: string): number | undefined {
  const m = /\.([0-9a-z]{9,})\.obj$/.exec(file);
  return m === null ? undefined : parseInt(m[1]!.slice(0, 8), 36);
}

/** objects/<h2>/<h32>.<version>.obj, relative to the layer's directory. */
export function objectPath(hash: string, version: string): string {
  return `objects/${hash.slice(0, 2)}/${hash}.${version}.obj`;
}

const NAME = /^([0-9a-f]{32})\.([0-9a-z]+)\.obj$/;

/** The hash part of an object file name, or undefined for anything else. */
export function hashOfName(name: string): string | undefined {
  return NAME.exec(name)?.[1];
}

/**
 * This process's start, in every temporary file name it writes beside its pid: a later process
 * that got the same pid (PID 1 in a container, on every start) tells the files a crashed earlier
 * run left from its own writes in progress (disk-scan.ts).
 */
export const START_ID: string = crypto.randomUUID().replace(/-/g, "").slice(0, 12);

export function tempName(): string {
  return `tmp/${process.pid}.${START_ID}.${crypto.randomUUID()}.part`;
}

/**
 * Who wrote a temporary file: its pid and, in a name written since 2026-12 (session 18), the
 * writer's START_ID (an older name has none). Undefined for a name that is not a temporary file's.
 */
export function ownerOfTemp(name: string): { pid: number; start: string | undefined } | undefined {
  const m = /^(\d+)\.(?:([0-9a-f]{12})\.)?[0-9a-f-]+\.part$/.exec(name);
  return m ? { pid: Number(m[1]), start: m[2] } : undefined;
}

export function timesBytes(storedAt: number, expiresAt: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setFloat64(0, storedAt, true);
  v.setFloat64(8, expiresAt, true);
  return b;
}

/**
 * The head of a file for `meta` (everything before the body); `store`: the stamp of the store it
 * was read from. Its CRC-32 is a placeholder, written over when the body is complete (crcDigits).
 */
export function encodeHead(meta: ObjectMeta, store?: string, owner?: string): Uint8Array {
  const fields = JSON.stringify({ hcrc: CRC_PLACEHOLDER, key: meta.key, headers: meta.headers, store, owner });
  const json = new TextEncoder().encode(`${fields.slice(0, -1)},"date":${dateField(meta.date)},"crc":"${CRC_PLACEHOLDER}"}`);
  json.set(crcDigits(Bun.hash.crc32(json.subarray(HCRC_PREFIX.byteLength + 8, json.byteLength - AFTER_DATE - DATE_WIDTH))), HCRC_PREFIX.byteLength);
  const out = new Uint8Array(HEAD_BYTES + json.byteLength);
  const v = new DataView(out.buffer);
  v.setUint32(0, MAGIC, true);
  out.set(timesBytes(meta.storedAt, meta.expiresAt), 4);
  v.setFloat64(20, meta.size, true);
  v.setUint32(28, json.byteLength, true);
  out.set(json, HEAD_BYTES);
  return out;
}

/** Bytes of the fixed part, then how many more to read for the JSON (or why it is not an object file). */
export function metaLength(fixed: Uint8Array): number | string {
  if (fixed.byteLength < HEAD_BYTES) return "shorter than a head";
  const v = new DataView(fixed.buffer, fixed.byteOffset, HEAD_BYTES);
  if (v.getUint32(0, true) !== MAGIC) return "not an object file";
  const n = v.getUint32(28, true);
  return n > MAX_META_BYTES ? "metadata too large" : n;
}

/**
 * Parses a head (the fixed part and the JSON, `head.byteLength` >= 32 + metaLen) of a file of
 * `fileSize` bytes. Returns why it is not a complete object when it is not.
 */
export function decodeHead(head: Uint8Array, fileSize: number): DiskHead | string {
  const n = metaLength(head);
  if (typeof n === "string") return n;
  if (head.byteLength < HEAD_BYTES + n) return "truncated metadata";
  const v = new DataView(head.buffer, head.byteOffset, HEAD_BYTES);
  const storedAt = v.getFloat64(4, true);
  const expiresAt = v.getFloat64(12, true);
  const size = v.getFloat64(20, true);
  if (!Number.isSafeInteger(size) || size < 0 || !Number.isFinite(storedAt) || !Number.isFinite(expiresAt)) return "corrupt head";
  const bodyOffset = HEAD_BYTES + n;
  if (fileSize !== bodyOffset + size) return fileSize < bodyOffset + size ? "truncated" : "longer than its head says";
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(head.subarray(HEAD_BYTES, bodyOffset)));
  } catch {
    return "corrupt metadata";
  }
  const p = parsed as { hcrc?: unknown; key?: unknown; headers?: unknown; store?: unknown; owner?: unknown; date?: unknown; crc?: unknown };
  if (typeof p.key !== "string" || typeof p.headers !== "object" || p.headers === null) return "corrupt metadata";
  const headers = storedEntryHeaders(p.headers);
  if (headers === undefined) return "corrupt metadata";
  if (headers["content-length"] !== String(size)) return "metadata does not match the body size";
  if (p.hcrc !== undefined && !headIntact(head, bodyOffset, p.hcrc)) return "metadata does not match its CRC-32";
  const crc = typeof p.crc === "string" && /^[0-9a-f]{8}$/.test(p.crc) ? parseInt(p.crc, 16) : undefined;
  const date = typeof p.date === "number" && Number.isFinite(p.date) ? p.date : undefined;
  return { key: p.key, headers, storedAt, expiresAt: storedExpiry(storedAt, expiresAt, date), size, bodyOffset, crc, store: typeof p.store === "string" ? p.store : undefined, owner: typeof p.owner === "string" ? p.owner : undefined, date, dateSlot: hasDateSlot(head, bodyOffset) };
}

/** Whether the head (ending at `bodyOffset`) still has the CRC-32 it recorded (`hcrc`) at HCRC_PREFIX, over what it covers. */
function headIntact(head: Uint8Array, bodyOffset: number, hcrc: unknown): boolean {
  const digits = HCRC_PREFIX.byteLength;
  const end = dateOffset(bodyOffset);
  if (typeof hcrc !== "string" || !/^[0-9a-f]{8}$/.test(hcrc) || end < HEAD_BYTES + digits + 8) return false;
  for (let i = 0; i < digits; i++) if (head[HEAD_BYTES + i] !== HCRC_PREFIX[i]) return false;
  return Bun.hash.crc32(head.subarray(HEAD_BYTES + digits + 8, end)) >>> 0 === parseInt(hcrc, 16);
}

/** A date's slot: the number (null for none, or one too wide) right-aligned in DATE_WIDTH characters. */
function dateField(date: number | undefined): string {
  const v = date !== undefined && Number.isSafeInteger(date) ? String(date) : "null";
  return (v.length <= DATE_WIDTH ? v : "null").padStart(DATE_WIDTH, " ");
}

/** Where the date's slot of a head ending at `bodyOffset` begins (written with dateBytes). */
export function dateOffset(bodyOffset: number): number {
  return bodyOffset - AFTER_DATE - DATE_WIDTH;
}

/** The bytes of a date's slot (at dateOffset of a head that has one: DiskHead.dateSlot). */
export function dateBytes(date: number | undefined): Uint8Array {
  return new TextEncoder().encode(dateField(date));
}

/** Whether `head` (ending at `bodyOffset`) holds its date in the slot a revalidation rewrites. */
function hasDateSlot(head: Uint8Array, bodyOffset: number): boolean {
  const at = dateOffset(bodyOffset) - DATE_KEY.byteLength;
  if (at < HEAD_BYTES) return false;
  for (let i = 0; i < DATE_KEY.byteLength; i++) if (head[at + i] !== DATE_KEY[i]) return false;
  return /^ *(?:-?\d+|null)$/.test(new TextDecoder().decode(head.subarray(at + DATE_KEY.byteLength, bodyOffset - AFTER_DATE)));
}

/** The head's "crc" digits for a body whose CRC-32 is `crc` (written CRC_DIGITS bytes before the head's end). */
export function crcDigits(crc: number): Uint8Array {
  return new TextEncoder().encode((crc >>> 0).toString(16).padStart(8, "0"));
}

/**
 * Whether the body of `file` (`size` bytes from `bodyOffset`) still has the CRC-32 its head
 * recorded (`expected`): read through once, a chunk at a time (memory flat). "gone": the file no longer exists
 * (purged or evicted meanwhile); "unreadable": it could not be read now (no file descriptor left,
 * an I/O error), which says nothing of its bytes.
 */
export async function bodyIntact(file: string, bodyOffset: number, size: number, expected: number): Promise<"intact" | "damaged" | "gone" | "unreadable"> {
  try {
    const f = Bun.file(file);
    let crc = 0;
    let read = 0;
    for await (const chunk of f.slice(bodyOffset, bodyOffset + size).stream()) {
      crc = Bun.hash.crc32(chunk, crc);
      read += chunk.byteLength;
    }
    return read === size && crc >>> 0 === expected ? "intact" : "damaged";
  } catch (err) {
    return (err as NodeJS.ErrnoException)?.code === "ENOENT" ? "gone" : "unreadable";
  }
}
