/**
 * S3's flexible checksums (x-amz-checksum-crc32 | crc32c | crc64nvme | sha1 | sha256), computed
 * incrementally so a body is checked as it streams.
 *
 * Values are the base64 of the big-endian digest, as S3 carries them in headers and trailers
 * (CRC32 of nothing: "AAAAAA=="). CRC32 is Bun's native Bun.hash.crc32, which continues from a
 * previous value (crc32(b, crc32(a)) === crc32(a ++ b)); CRC32C and CRC64NVME are table-driven
 * JavaScript (./checksum/); SHA-1 and SHA-256 are Bun.CryptoHasher.
 */
import { crc32c } from "./checksum/crc32c.ts";
import { Crc64Nvme } from "./checksum/crc64nvme.ts";

export type ChecksumAlgorithm = "CRC32" | "CRC32C" | "CRC64NVME" | "SHA1" | "SHA256";

export const CHECKSUM_ALGORITHMS: readonly ChecksumAlgorithm[] = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];

const DIGEST_BYTES: Record<ChecksumAlgorithm, number> = { CRC32: 4, CRC32C: 4, CRC64NVME: 8, SHA1: 20, SHA256: 32 };

export interface Checksum {
  readonly algorithm: ChecksumAlgorithm;
  update(bytes: Uint8Array): void;
  /** Big-endian digest. Ends the computation: call once (repeat calls return the same value). */
  digest(): Uint8Array;
  /** base64 of digest(), the x-amz-checksum-* form. */
  digestBase64(): string;
}

abstract class Base implements Checksum {
  private done: Uint8Array | undefined;
  constructor(readonly algorithm: ChecksumAlgorithm) {}
  abstract update(bytes: Uint8Array): void;
  protected abstract finish(): Uint8Array;
  digest(): Uint8Array {
    return (this.done ??= this.finish());
  }
  digestBase64(): string {
    return Buffer.from(this.digest()).toString("base64");
  }
}

function be32(v: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, v >>> 0);
  return out;
}

class Crc32 extends Base {
  private crc = 0;
  update(bytes: Uint8Array): void {
    this.crc = Bun.hash.crc32(bytes, this.crc);
  }
  protected finish(): Uint8Array {
    return be32(this.crc);
  }
}

class Crc32C extends Base {
  private crc = 0;
  update(bytes: Uint8Array): void {
    this.crc = crc32c(bytes, this.crc);
  }
  protected finish(): Uint8Array {
    return be32(this.crc);
  }
}

class Crc64 extends Base {
  private readonly crc = new Crc64Nvme();
  update(bytes: Uint8Array): void {
    this.crc.update(bytes);
  }
  protected finish(): Uint8Array {
    return this.crc.digest();
  }
}

class Sha extends Base {
  private readonly hasher: Bun.CryptoHasher;
  constructor(algorithm: "SHA1" | "SHA256") {
    super(algorithm);
    this.hasher = new Bun.CryptoHasher(algorithm === "SHA1" ? "sha1" : "sha256");
  }
  update(bytes: Uint8Array): void {
    this.hasher.update(bytes);
  }
  protected finish(): Uint8Array {
    return this.hasher.digest();
  }
}

export function create(algorithm: ChecksumAlgorithm): Checksum {
  switch (algorithm) {
    case "CRC32": return new Crc32(algorithm);
    case "CRC32C": return new Crc32C(algorithm);
    case "CRC64NVME": return new Crc64(algorithm);
    case "SHA1":
    case "SHA256": return new Sha(algorithm);
  }
  throw new TypeError("unknown checksum algorithm");
}

/** One-shot base64 checksum. */
export function checksumBase64(algorithm: ChecksumAlgorithm, data: Uint8Array | string): string {
  const c = create(algorithm);
  c.update(typeof data === "string" ? new TextEncoder().encode(data) : data);
  return c.digestBase64();
}

/** Length of the base64 value (fixed per algorithm; used to precompute aws-chunked lengths). */
export function base64Length(algorithm: ChecksumAlgorithm): number {
  return Math.ceil(DIGEST_BYTES[algorithm] / 3) * 4;
}

/** "CRC32" -> "x-amz-checksum-crc32". */
export function checksumHeaderName(algorithm: ChecksumAlgorithm): string {
  return "x-amz-checksum-" + algorithm.toLowerCase();
}

/** "x-amz-checksum-crc32" (any case) -> "CRC32"; undefined for anything else (including
 *  x-amz-checksum-type / -algorithm / -mode, which are not checksum values). */
export function algorithmFromHeaderName(name: string): ChecksumAlgorithm | undefined {
  const n = name.trim().toLowerCase();
  if (!n.startsWith("x-amz-checksum-")) return undefined;
  const alg = n.slice(15).toUpperCase();
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(alg) ? (alg as ChecksumAlgorithm) : undefined;
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** True when `value` is canonical base64 of exactly the algorithm's digest length. */
export function isValidChecksumValue(algorithm: ChecksumAlgorithm, value: string): boolean {
  if (value.length !== base64Length(algorithm) || !B64.test(value)) return false;
  const bytes = Buffer.from(value, "base64");
  return bytes.length === DIGEST_BYTES[algorithm] && bytes.toString("base64") === value;
}
