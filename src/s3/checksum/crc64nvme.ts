/**
 * CRC-64/NVME, S3's x-amz-checksum-crc64nvme: reflected polynomial 0x9a6c9329ac4bc9b5, init and
 * xorout all ones (check value of "123456789": 0xae8b14860a799888).
 *
 * BigInt arithmetic is two orders of magnitude too slow for a data path, so the 64-bit register is
 * kept as two int32 halves (lo = bits 0-31, hi = bits 32-63) and every table is split the same
 * way. Slicing-by-16 as in crc32c.ts: ~1.0-1.2 GB/s on the dev box (slicing-by-8: ~1.0 GB/s).
 */

const POLY_LO = 0xac4bc9b5 | 0;
const POLY_HI = 0x9a6c9329 | 0;

function makeTables(): { lo: Int32Array[]; hi: Int32Array[] } {
  const lo0 = new Int32Array(256);
  const hi0 = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let lo = i;
    let hi = 0;
    for (let j = 0; j < 8; j++) {
      const odd = lo & 1;
      lo = (lo >>> 1) | (hi << 31);
      hi = hi >>> 1;
      if (odd) {
        lo ^= POLY_LO;
        hi ^= POLY_HI;
      }
    }
    lo0[i] = lo;
    hi0[i] = hi;
  }
  const lo = [lo0];
  const hi = [hi0];
  for (let k = 1; k < 16; k++) {
    const pl = lo[k - 1];
    const ph = hi[k - 1];
    const ql = new Int32Array(256);
    const qh = new Int32Array(256);
    for (let i = 0; i < 256; i++) {
      const b = pl[i] & 255;
      ql[i] = ((pl[i] >>> 8) | (ph[i] << 24)) ^ lo0[b];
      qh[i] = (ph[i] >>> 8) ^ hi0[b];
    }
    lo.push(ql);
    hi.push(qh);
  }
  return { lo, hi };
}

const tables = makeTables();
const [L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11, L12, L13, L14, L15] = tables.lo;
const [H0, H1, H2, H3, H4, H5, H6, H7, H8, H9, H10, H11, H12, H13, H14, H15] = tables.hi;

/** Incremental CRC-64/NVME. The register holds the running (not yet xor-ed out) value. */
export class Crc64Nvme {
  private lo = -1;
  private hi = -1;

  update(d: Uint8Array): void {
    let lo = this.lo;
    let hi = this.hi;
    let i = 0;
    const n = d.length;
    const end = n - 15;
    for (; i < end; i += 16) {
      const a = lo ^ (d[i] | (d[i + 1] << 8) | (d[i + 2] << 16) | (d[i + 3] << 24));
      const b = hi ^ (d[i + 4] | (d[i + 5] << 8) | (d[i + 6] << 16) | (d[i + 7] << 24));
      const a0 = a & 255, a1 = (a >>> 8) & 255, a2 = (a >>> 16) & 255, a3 = a >>> 24;
      const b0 = b & 255, b1 = (b >>> 8) & 255, b2 = (b >>> 16) & 255, b3 = b >>> 24;
      const c0 = d[i + 8], c1 = d[i + 9], c2 = d[i + 10], c3 = d[i + 11];
      const e0 = d[i + 12], e1 = d[i + 13], e2 = d[i + 14], e3 = d[i + 15];
      lo = L15[a0] ^ L14[a1] ^ L13[a2] ^ L12[a3] ^ L11[b0] ^ L10[b1] ^ L9[b2] ^ L8[b3] ^
        L7[c0] ^ L6[c1] ^ L5[c2] ^ L4[c3] ^ L3[e0] ^ L2[e1] ^ L1[e2] ^ L0[e3];
      hi = H15[a0] ^ H14[a1] ^ H13[a2] ^ H12[a3] ^ H11[b0] ^ H10[b1] ^ H9[b2] ^ H8[b3] ^
        H7[c0] ^ H6[c1] ^ H5[c2] ^ H4[c3] ^ H3[e0] ^ H2[e1] ^ H1[e2] ^ H0[e3];
    }
    for (; i < n; i++) {
      const x = (lo ^ d[i]) & 255;
      lo = ((lo >>> 8) | (hi << 24)) ^ L0[x];
      hi = (hi >>> 8) ^ H0[x];
    }
    this.lo = lo;
    this.hi = hi;
  }

  /** The 8-byte big-endian digest (the form S3 base64-encodes). */
  digest(): Uint8Array {
    const out = new Uint8Array(8);
    const v = new DataView(out.buffer);
    v.setUint32(0, ~this.hi >>> 0);
    v.setUint32(4, ~this.lo >>> 0);
    return out;
  }
}
