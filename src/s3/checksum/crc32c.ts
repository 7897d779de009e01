/**
 * CRC-32C (Castagnoli: reflected polynomial 0x82f63b78, init and xorout 0xffffffff), the
 * algorithm behind S3's x-amz-checksum-crc32c. Bun has no native CRC-32C, so this is table-driven
 * JavaScript using slicing-by-16 (16 tables of 256 entries, 16 KiB): one table lookup per input
 * byte with no serial dependency inside a 16-byte block. Measured on the dev box (Bun 1.4.5,
 * x64): ~1.9-2.2 GB/s on 64 KiB pieces, vs ~1.5-1.7 GB/s for slicing-by-8 and ~0.4 GB/s for the
 * byte-at-a-time loop; word-aligned Int32Array reads were not faster than byte loads.
 */

const POLY = 0x82f63b78;

function makeTables(): Int32Array[] {
  const t0 = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let j = 0; j < 8; j++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[i] = c;
  }
  const tables = [t0];
  // T[k][i] = the CRC of byte i followed by k zero bytes.
  for (let k = 1; k < 16; k++) {
    const prev = tables[k - 1];
    const next = new Int32Array(256);
    for (let i = 0; i < 256; i++) next[i] = (prev[i] >>> 8) ^ t0[prev[i] & 255];
    tables.push(next);
  }
  return tables;
}

// Module-level constants so the JIT sees 16 fixed typed arrays in the hot loop.
const [T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15] = makeTables();

/**
 * CRC-32C of `data`, continuing from `previous` (the finished CRC of the bytes before, 0 to
 * start): crc32c(b, crc32c(a)) === crc32c(a ++ b), the same contract as Bun.hash.crc32.
 */
export function crc32c(data: Uint8Array, previous = 0): number {
  let crc = ~previous;
  let i = 0;
  const n = data.length;
  const end = n - 15;
  const d = data;
  for (; i < end; i += 16) {
    const a = crc ^ (d[i] | (d[i + 1] << 8) | (d[i + 2] << 16) | (d[i + 3] << 24));
    crc = T15[a & 255] ^ T14[(a >>> 8) & 255] ^ T13[(a >>> 16) & 255] ^ T12[a >>> 24] ^
      T11[d[i + 4]] ^ T10[d[i + 5]] ^ T9[d[i + 6]] ^ T8[d[i + 7]] ^
      T7[d[i + 8]] ^ T6[d[i + 9]] ^ T5[d[i + 10]] ^ T4[d[i + 11]] ^
      T3[d[i + 12]] ^ T2[d[i + 13]] ^ T1[d[i + 14]] ^ T0[d[i + 15]];
  }
  for (; i < n; i++) crc = (crc >>> 8) ^ T0[(crc ^ d[i]) & 255];
  return ~crc >>> 0;
}
