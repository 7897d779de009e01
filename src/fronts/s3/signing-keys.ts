/**
 * Bounded cache of SigV4 signing keys for incoming requests, per (access key, date, region); the
 * service is always "s3". Deriving a key costs four HMACs; a client signs with the same key all
 * day, so a hit saves them on every request. The entry also keeps the key as a ready keyed HMAC
 * (copied per use), as S3Signer does for the outgoing side.
 *
 * An entry remembers the secret it was derived from and is re-derived when the secret differs,
 * so a reload that rotates a secret never verifies against the old one. One cache per config
 * generation (no module-level state).
 */
import { deriveSigningKey } from "../../s3/sigv4.ts";
import { LruMap } from "../../util/lru.ts";
import type { ParsedScope } from "./auth-params.ts";

interface Entry {
  secret: string;
  key: Uint8Array;
  keyed: Bun.CryptoHasher;
}

export class SigningKeyCache {
  private readonly lru: LruMap<Entry>;
  private derived = 0;
  /** Parsed Credential + SignedHeaders of header auth, by the Authorization value before its signature (auth-params.ts). */
  readonly authMemo: LruMap<ParsedScope>;

  constructor(readonly maxEntries = 1024) {
    this.lru = new LruMap(maxEntries);
    this.authMemo = new LruMap(maxEntries);
  }

  /** How many keys were derived (misses), for tests and metrics. */
  get derivations(): number {
    return this.derived;
  }

  get size(): number {
    return this.lru.size;
  }

  /** The signing key and a keyed HMAC-SHA256 hasher for it (call `.copy()` before use). */
  get(accessKeyId: string, secret: string, yyyymmdd: string, region: string): { key: Uint8Array; keyed: Bun.CryptoHasher } {
    const id = accessKeyId + "\n" + yyyymmdd + "\n" + region;
    const hit = this.lru.get(id);
    if (hit !== undefined && hit.secret === secret) return hit;
    const entry = derive(secret, yyyymmdd, region);
    this.derived++;
    this.lru.set(id, entry);
    return entry;
  }
}

/** From the cache when one is given, else derived on the spot. */
export function signingKeyFor(
  cache: SigningKeyCache | undefined,
  accessKeyId: string,
  secret: string,
  yyyymmdd: string,
  region: string,
): { key: Uint8Array; keyed: Bun.CryptoHasher } {
  return cache ? cache.get(accessKeyId, secret, yyyymmdd, region) : derive(secret, yyyymmdd, region);
}

function derive(secret: string, yyyymmdd: string, region: string): Entry {
  const key = deriveSigningKey(secret, yyyymmdd, region, "s3");
  return { secret, key, keyed: new Bun.CryptoHasher("sha256", key) };
}
