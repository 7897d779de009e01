/**
 * IPv4/IPv6 addresses and CIDR ranges, for trusted_proxies and ip_filter.
 * Addresses are compared as 128-bit BigInts; IPv4 (and IPv4-mapped IPv6) live in ::ffff:0:0/96.
 */

export interface Cidr {
  base: bigint;
  mask: bigint;
  text: string;
}

const V4_MAPPED = 0xffffn << 32n;
const ALL = (1n << 128n) - 1n;

function parseV4(s: string): bigint | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(s: string): bigint | null {
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  let tail4: bigint | null = null;
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".", lastColon)) {
    tail4 = parseV4(s.slice(lastColon + 1));
    if (tail4 === null) return null;
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const rest = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail4 !== null) v = (v & ~0xffffffffn) | tail4;
  return v;
}

/** Parses an IP address to its 128-bit value (IPv4 is mapped into ::ffff:0:0/96), or null. */
export function parseIp(s: string): bigint | null {
  if (s.includes(":")) {
    if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
    return parseV6(s);
  }
  const v4 = parseV4(s);
  return v4 === null ? null : V4_MAPPED | v4;
}

/** Parses "10.0.0.0/8", "::1/128" or a bare address (a /32 or /128). */
export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf("/");
  const addr = slash >= 0 ? s.slice(0, slash) : s;
  const ip = parseIp(addr.trim());
  if (ip === null) return null;
  const isV4 = !addr.includes(":");
  const maxBits = isV4 ? 32 : 128;
  let bits = maxBits;
  if (slash >= 0) {
    const b = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b)) return null;
    bits = Number(b);
    if (bits > maxBits) return null;
  }
  const prefixBits = BigInt((isV4 ? 96 : 0) + bits);
  const mask = prefixBits === 0n ? 0n : (ALL << (128n - prefixBits)) & ALL;
  return { base: ip & mask, mask, text: s };
}

/**
 * Why a trusted_proxies or ip_filter entry is refused, or undefined. An IPv4-mapped address with
 * a prefix under 96 (`::ffff:10.0.0.0/8`, meant as 10.0.0.0/8) is what IPv6 notation says, `::/8`:
 * a range holding every IPv4 address, so an allowlist let in every IPv4 client and trusted_proxies
 * believed every IPv4 client's X-Forwarded-For.
 */
export function cidrProblem(s: string): string | undefined {
  const c = parseCidr(s);
  if (c === null) return `'${s}' is not an IP address or CIDR range`;
  const slash = s.indexOf("/");
  if (slash < 0 || !s.includes(":")) return undefined;
  const bits = Number(s.slice(slash + 1));
  const ip = parseIp(s.slice(0, slash).trim())!;
  if (bits >= 96 || ip >> 32n !== V4_MAPPED >> 32n) return undefined;
  const v4 = textOf(ip);
  const meant = bits <= 32 ? `${v4}/${bits}, or ::ffff:${v4}/${bits + 96}` : "it as IPv4, or IPv4-mapped with a prefix of 96 or more";
  return `'${s}' is the IPv6 range ${textOf(c.base)}/${bits}, which holds every IPv4 address: for an IPv4 range write ${meant}`;
}

export function cidrContains(c: Cidr, ip: bigint): boolean {
  return (ip & c.mask) === c.base;
}

export function anyContains(list: readonly Cidr[], ipText: string): boolean {
  if (list.length === 0) return false;
  const ip = parseIp(ipText);
  if (ip === null) return false;
  for (const c of list) if (cidrContains(c, ip)) return true;
  return false;
}

/**
 * One address, one text: an IPv4 address (or an IPv4-mapped IPv6 one, ::ffff:a.b.c.d in any
 * spelling) as its dotted quad without leading zeros, an IPv6 one in RFC 5952's form (lower case,
 * no leading zeros, the longest run of zero groups as "::"). Null when `s` is not an address.
 * A client reached through two load balancers (one writing 10.0.0.7, a dual-stack one
 * ::ffff:10.0.0.7) is one client in the logs, the audit trail, OPA's input and per-address limits.
 */
export function canonicalIp(s: string): string | null {
  const v = parseIp(s);
  return v === null ? null : textOf(v);
}

function textOf(v: bigint): string {
  if (v >> 32n === V4_MAPPED >> 32n) {
    const n = Number(v & 0xffffffffn);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  let best = -1;
  let bestLen = 1; // a single zero group stays "0" (RFC 5952 4.2.2)
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (a: number[]) => a.map((g) => g.toString(16)).join(":");
  return best < 0 ? hex(groups) : `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

/**
 * The key per-address limits count a client by: its IPv4 address, or the /64 of an IPv6 one (a
 * client is given a whole /64 and picks any address in it: keyed on the full address, one host
 * could evade every per-address cap and fill the tables).
 */
export function limitKey(ip: string): string {
  if (!ip.includes(":")) return ip;
  const v = parseIp(ip);
  if (v === null) return ip;
  if (v >> 32n === V4_MAPPED >> 32n) return canonicalIp(ip)!; // an IPv4-mapped address: the IPv4 client
  return `${(v >> 64n).toString(16)}::/64`;
}
