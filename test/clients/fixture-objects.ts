/**
 * A bucket of objects for real-client read tests: nested folders, the awkward key characters
 * (space, "+", "%", "~", unicode) and one object big enough that aws-cli and boto3 download
 * it in ranged parts (their multipart threshold is 8 MiB).
 */
import type { S3Fixture } from "../fixtures/s3.ts";

export const BUCKET = "data";
export const READER = { accessKeyId: "AKIDCLIENTREADER", secretAccessKey: "client-reader-secret/+=" };
export const BIG_KEY = "big.bin";
export const BIG_SIZE = 12 * 1024 * 1024 + 123;

/** Deterministic pseudo-random bytes (xorshift32): incompressible, and any misplaced range shows. */
export function pseudoRandom(size: number, seed = 0x9e3779b9): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, Math.floor(size / 4));
  let x = seed >>> 0;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (let i = words.length * 4; i < size; i++) out[i] = i & 0xff;
  return out;
}

export const SPECIAL_KEYS = [
  "special/with space.txt",
  "special/plus+sign.txt",
  "special/percent%41.txt",
  "special/ünï©ødé 日本.txt",
  "special/tilde~x.txt",
];

export async function seedClientObjects(s3: S3Fixture): Promise<Map<string, Uint8Array>> {
  const enc = new TextEncoder();
  const objects = new Map<string, Uint8Array>([
    ["hello.txt", enc.encode("Hello from the fixture\n")],
    ["dir/a.txt", enc.encode("A")],
    ["dir/b.txt", enc.encode("BB")],
    ["dir/sub/c.txt", enc.encode("CCC")],
    ...SPECIAL_KEYS.map((k, i) => [k, enc.encode(`body of ${k} #${i}`)] as [string, Uint8Array]),
    [BIG_KEY, pseudoRandom(BIG_SIZE)],
  ]);
  for (const [key, body] of objects) await s3.put(BUCKET, key, body);
  return objects;
}

export function sha256(b: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(b).digest("hex");
}
