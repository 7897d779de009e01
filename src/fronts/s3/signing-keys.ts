/**
 * Bounded cache of SigV4 signing keys for incoming requests, per (access key, date, region); the
 * service is always "s3". Deriving a key costs four HMACs; a client signs with the same key all
 * day, so a hit saves them on every request. The entry also keeps the key as a ready keyed HMAC
 * (copied per use: PostObject's policy), and the HMAC of verification's string to sign prepared as
 * two kept blocks (`StringToSignMac`), so that a verification makes no hasher.
 *
 * An entry remembers the secret it was derived from and is re-derived when the secret differs,
 * so a reload that rotates a secret never verifies against the old one. One cache per config
 * generation (no module-level state).
 */
import { ALGORITHM, credentialScope, deriveSigningKey } from "../../s3/sigv4.ts";
import { type TextBuffer, writeHex } from "../../s3/byte-view.ts";
import { LruMap } from "../../util/lru.ts";
import { AuthMemo } from "./auth-params.ts";

interface Entry {
  accessKeyId: string;
  day: string;
  region: string;
  secret: string;
  key: Uint8Array;
  keyed: Bun.CryptoHasher;
  mac: StringToSignMac;
}

/** What verification uses of a key: the key (an aws-chunked chain's seed), a keyed HMAC, the string to sign's MAC. */
export type SigningKey = Pick<Entry, "key" | "keyed" | "mac">;

const AMZ_DATE_LENGTH = 16; // "YYYYMMDDTHHMMSSZ"

/**
 * HMAC-SHA256 of a SigV4 string to sign under one signing key, with no hasher per call: the string
 * to sign is written after the key's inner pad block in a buffer kept with the key, where everything
 * but the request's time and the canonical request's hash is written once (the algorithm, the
 * scope: one per key), and the MAC is two one-shot SHA-256 (RFC 2104: H(K^opad || H(K^ipad || m))).
 * Verification is synchronous: one per key serves every request signed with it.
 */
export class StringToSignMac {
  /** "AWS4-HMAC-SHA256\n<date>\n<scope>\n" + the canonical request's hash in hex, after the inner pad. */
  private readonly inner: TextBuffer;
  /** The outer pad block, then the inner hash. */
  private readonly outer = new Uint8Array(96);
  private readonly innerHash = this.outer.subarray(64);
  private readonly dateAt = 64 + ALGORITHM.length + 1;
  private readonly hexAt: number;

  /** `scope`: "yyyymmdd/region/service/aws4_request", the same for every string signed with the key. */
  constructor(key: Uint8Array, readonly scope: string) {
    // (a signing key is 32 bytes: shorter than the block, padded with zeros, never hashed first)
    this.inner = <TextBuffer>Buffer.alloc(64 + ALGORITHM.length + 1 + AMZ_DATE_LENGTH + 1 + scope.length + 1 + 64);
    for (let i = 0; i < 64; i++) {
      const k = i < key.length ? key[i]! : 0;
      this.inner[i] = k ^ 0x36;
      this.outer[i] = k ^ 0x5c;
    }
    this.inner.latin1Write(ALGORITHM + "\n", 64);
    this.inner[this.dateAt + AMZ_DATE_LENGTH] = 0x0a;
    this.hexAt = this.inner.latin1Write(scope + "\n", this.dateAt + AMZ_DATE_LENGTH + 1) + this.dateAt + AMZ_DATE_LENGTH + 1;
  }

  /**
   * The string to sign for `amzDate` (16 ASCII characters, as parseAmzDate accepts) and the
   * canonical request's SHA-256 `digest`, MACed into `mac` (its first 32 bytes).
   */
  sign(amzDate: string, digest: Uint8Array, mac: Uint8Array): void {
    const b = this.inner;
    for (let i = 0, at = this.dateAt; i < AMZ_DATE_LENGTH; i++) b[at + i] = amzDate.charCodeAt(i);
    writeHex(b, digest, 32, this.hexAt);
    Bun.SHA256.hash(b, this.innerHash);
    Bun.SHA256.hash(this.outer, mac);
  }

  /** The last string signed, as text (S3's SignatureDoesNotMatch shows it). */
  lastStringToSign(): string {
    return this.inner.latin1Slice(64, this.inner.length);
  }
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
  get(accessKeyId: string, secret: string, yyyymmdd: string, region: string): SigningKey {
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
): SigningKey {
  // (the cache holds s3's keys only: another service's is derived each time)
  return cache && service === "s3" ? cache.get(accessKeyId, secret, yyyymmdd, region) : derive(accessKeyId, secret, yyyymmdd, region, service);
}

function derive(accessKeyId: string, secret: string, yyyymmdd: string, region: string, service = "s3"): Entry {
  const key = deriveSigningKey(secret, yyyymmdd, region, service);
  return { accessKeyId, day: yyyymmdd, region, secret, key, keyed: new Bun.CryptoHasher("sha256", key), mac: new StringToSignMac(key, credentialScope(yyyymmdd, region, service)) };
}
