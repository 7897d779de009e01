/**
 * How the Redis layer stores one object: body and metadata under one key (so they can never
 * disagree), as one binary string:
 *
 *    0  "YTR1"         magic and format version
 *    4  u32 metaLen
 *    8  JSON {"key", "headers", "storedAt", "expiresAt", "date", "store"} ("date": the upstream's, since 2026-12-07)
 *    8 + metaLen       the body (content-length = its size, checked on read)
 *
 * Keys: <key_prefix>obj:<bucket>/<object key>. The key is repeated inside, and checked, so a
 * value can never be served for another key. `store` is the stamp of the store the object was
 * read from (its bucket's storeStamp, cache/config.ts): a replica serves an entry only when it
 * is its own bucket's stamp, so an entry filled for another store (the bucket was pointed
 * elsewhere, on every replica across a restart, or on some during a rolling change) is a miss,
 * never the other store's object. An entry without one (an earlier version's) is a miss too.
 *
 * A large entry (BULK_BYTES and more) is stored under <key> + BULK_SUFFIX, and <key> holds only a
 * stub ("YTRB" and the entry's length in decimal), both set in one script with one TTL: a lookup
 * reads <key> over the shared command connection (one round trip, a few bytes for a large item),
 * and the entry itself over a connection of its own with a deadline scaled with its size
 * (redis-link.ts runBulk). The suffix keeps it under <key>'s prefix (a prefix purge's SCAN finds it).
 */
import { storedEntryHeaders, storedExpiry, type CachedObject } from "./types.ts";

const MAGIC = 0x31525459; // "YTR1" read as little-endian u32
const FIXED = 8;

/** From this length on, an entry is stored apart from its stub (redis-link.ts STORE_BULK_BYTES). */
export const BULK_BYTES = 1 << 20;
/** A large entry's key: its stub's key and this (no S3 key holds a NUL). */
export const BULK_SUFFIX = "\u0000bulk";
const STUB = "YTRB";

export function encodeStub(length: number): string {
  return STUB + String(length);
}

/** The length of the large entry a stub stands for; undefined when `value` is no stub. */
export function stubLength(value: Uint8Array): number | undefined {
  if (value.byteLength < 5 || value.byteLength > 24 || value[0] !== 0x59 || value[1] !== 0x54 || value[2] !== 0x52 || value[3] !== 0x42) return undefined;
  const digits = new TextDecoder().decode(value.subarray(4));
  return /^\d+$/.test(digits) ? Number(digits) : undefined;
}

/** decodeEntry's answer for an entry of another store than the one asked for (not corrupt: a miss). */
export const OTHER_STORE = "another store";

export function encodeEntry(obj: CachedObject, body: Uint8Array, store?: string): Uint8Array {
  const meta = { key: obj.key, headers: obj.headers, storedAt: obj.storedAt, expiresAt: obj.expiresAt, date: obj.date };
  const json = new TextEncoder().encode(JSON.stringify(store === undefined ? meta : { ...meta, store }));
  const out = new Uint8Array(FIXED + json.byteLength + body.byteLength);
  const v = new DataView(out.buffer);
  v.setUint32(0, MAGIC, true);
  v.setUint32(4, json.byteLength, true);
  out.set(json, FIXED);
  out.set(body, FIXED + json.byteLength);
  return out;
}

/**
 * The object in `value`, or why it is not one (a corrupt or foreign value is a miss). `store`:
 * the stamp the entry must carry (OTHER_STORE when it does not; null: none will do); undefined: not checked.
 */
export function decodeEntry(value: Uint8Array, key: string, store?: string | null): CachedObject | string {
  if (value.byteLength < FIXED) return "too short";
  const v = new DataView(value.buffer, value.byteOffset, value.byteLength);
  if (v.getUint32(0, true) !== MAGIC) return "not a cache entry";
  const n = v.getUint32(4, true);
  if (FIXED + n > value.byteLength) return "truncated";
  let meta: { key?: unknown; headers?: unknown; storedAt?: unknown; expiresAt?: unknown; date?: unknown; store?: unknown } | null;
  try {
    meta = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(value.subarray(FIXED, FIXED + n)));
  } catch {
    return "corrupt metadata";
  }
  // (null read as an object threw: the lookup failed instead of missing, and the entry stayed)
  if (meta === null) return "corrupt metadata";
  if (meta.key !== key) return "another key";
  if (store !== undefined && meta.store !== store) return OTHER_STORE;
  if (typeof meta.storedAt !== "number" || typeof meta.expiresAt !== "number" || typeof meta.headers !== "object" || meta.headers === null) return "corrupt metadata";
  // (a value edited by hand under key_prefix: every hit on every replica was a 500 until its TTL)
  const headers = storedEntryHeaders(meta.headers);
  if (headers === undefined) return "corrupt metadata";
  const size = value.byteLength - FIXED - n;
  if (headers["content-length"] !== String(size)) return "body size does not match";
  const body = new Blob([value.subarray(FIXED + n)]);
  const date = typeof meta.date === "number" && Number.isFinite(meta.date) ? meta.date : undefined;
  return { key, body, headers, storedAt: meta.storedAt, expiresAt: storedExpiry(meta.storedAt, meta.expiresAt, date), date, size, tpl: undefined, source: "redis" };
}

/** SCAN MATCH pattern for keys starting with `prefix` (glob characters escaped). */
export function matchPrefix(prefix: string): string {
  return prefix.replace(/[*?[\]\\]/g, (c) => "\\" + c) + "*";
}

/** Stream ids ("ms-seq") in order. */
export function idAfter(a: string, b: string): boolean {
  const [am, as] = a.split("-").map(Number) as [number, number];
  const [bm, bs] = b.split("-").map(Number) as [number, number];
  return am > bm || (am === bm && as > bs);
}
