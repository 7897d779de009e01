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
import { AuthMemo } from "./auth-params.ts";

interface Entry {
  accessKeyId: string;
  day: string;
  region: string;
  secret: string;
  key: Uint8Array;
  keyed: Bun.CryptoHasher;
}

export class SigningKeyCache {
  private readonly lru: LruMap<Entry>;
  private derived = 0;
  private last: Entry | undefined;
  /** Parsed Credential + SignedHeaders of header auth, by the Authorization value before its signature (auth-params.ts). */
  readonly authMemo: AuthMemo;

  constructor(readonly maxEntries = 1024) {
    this.lru = new LruMap(maxEntries);
    this.authMemo = new AuthMemo(maxEntries);
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
    // A run of requests from one client: the last entry, compared field by field (no key string).
    const last = this.last;
    if (last !== undefined && last.secret === secret && last.accessKeyId === accessKeyId && last.day === yyyymmdd && last.region === region) return last;
    const id = accessKeyId + "\n" + yyyymmdd + "\n" + region;
    const hit = this.lru.get(id);
    if (hit !== undefined && hit.secret === secret) return (this.last = hit);
    const entry = derive(accessKeyId, secret, yyyymmdd, region);
    this.derived++;
    this.lru.set(id, entry);
    return (this.last = entry);
  }
}

/** From the cache when one is given (s3's keys), else derived on the spot. */
export function signingKeyFor(
  cache: SigningKeyCache | undefined,
  accessKeyId: string,
  secret: string,
  yyyymmdd: string,
  region: string,
  service = "s3",
): { key: Uint8Array; keyed: Bun.CryptoHasher } {
  // (the cache holds s3's keys only: another service's is derived each time)
  return cache && service === "s3" ? cache.get(accessKeyId, secret, yyyymmdd, region) : derive(accessKeyId, secret, yyyymmdd, region, service);
}

function derive(accessKeyId: string, secret: string, yyyymmdd: string, region: string, service = "s3"): Entry {
  const key = deriveSigningKey(secret, yyyymmdd, region, service);
  return { accessKeyId, day: yyyymmdd, region, secret, key, keyed: new Bun.CryptoHasher("sha256", key) };
}
