/**
 * The client's address: the TCP peer, or — only when the peer is a trusted proxy — the right-most
 * X-Forwarded-For hop that is not itself a trusted proxy (the left-most hops are client-supplied
 * and can be forged). A hop is believed only when it is an IP address (the `ip:port` and
 * `[v6]:port` forms some load balancers send are read as their IP); at the first hop that is not,
 * the walk stops and the trusted hop that passed it on (the peer, or the next trusted hop to its
 * right) is the client: nothing unparsed ever becomes the client address (logs, audit, ip_filter,
 * rate-limit keys). X-Real-IP and Forwarded are not read.
 */
import { anyContains, canonicalIp, type Cidr } from "./cidr.ts";

/** A TCP port, 1 to 65535 (`:0` and `:99999` are no port: the entry is not an address). */
function isPort(s: string): boolean {
  if (!/^\d{1,5}$/.test(s)) return false;
  const n = Number(s);
  return n >= 1 && n <= 65535;
}

/**
 * One X-Forwarded-For entry as a bare IP address in its canonical form (its port and brackets
 * removed; see canonicalIp: ::ffff:10.0.0.7, 010.0.0.7 and 10.0.0.7 are one client), or null when
 * it is not one.
 */
export function forwardedAddress(hop: string): string | null {
  let ip = hop;
  if (hop.startsWith("[")) {
    const close = hop.indexOf("]");
    if (close < 0) return null;
    const rest = hop.slice(close + 1);
    if (rest !== "" && !(rest.startsWith(":") && isPort(rest.slice(1)))) return null;
    ip = hop.slice(1, close);
    if (!ip.includes(":")) return null;
  } else {
    const colon = hop.indexOf(":");
    // One colon: IPv4 with a port (an IPv6 address has at least two).
    if (colon >= 0 && hop.indexOf(":", colon + 1) < 0) {
      if (!isPort(hop.slice(colon + 1))) return null;
      ip = hop.slice(0, colon);
      if (ip.includes(":")) return null;
    }
  }
  // A zone (fe80::1%eth0) means nothing past the proxy that saw it, and its text is free-form.
  if (ip.includes("%") || ip.length > 45) return null;
  return canonicalIp(ip);
}

/**
 * The most X-Forwarded-For entries read (empty ones too), from the right: far more than any chain
 * of proxies, and a bound on the work one header causes. Every entry inside a trusted range was
 * parsed and walked past, and a client whose own address is trusted (a workload inside a broad
 * range such as 10.0.0.0/8, or any client of a balancer that passes the header on unchanged)
 * chose how many: 1,700 (a 15 KB header) cost 4-5 ms of CPU per request, ~18 times fewer requests
 * a second. Past the bound, the trusted hop reached is the client, as at an entry that is not an
 * address.
 */
const MAX_FORWARDED_HOPS = 32;

/** `onInvalid` is called when a trusted proxy passed on an entry that is not an IP address. */
export function clientIpOf(trusted: readonly Cidr[], peer: string, h: Headers, onInvalid?: () => void): string {
  if (trusted.length === 0 || !anyContains(trusted, peer)) return peer;
  const xff = h.get("x-forwarded-for");
  if (!xff) return peer;
  let nearest = peer;
  // (from the right, entry by entry: a split read the whole header whatever the walk needed)
  for (let end = xff.length, hops = 0; end >= 0 && hops < MAX_FORWARDED_HOPS; hops++) {
    const comma = end === 0 ? -1 : xff.lastIndexOf(",", end - 1);
    const raw = xff.slice(comma + 1, end).trim();
    end = comma;
    if (raw === "") continue;
    const ip = forwardedAddress(raw);
    if (ip === null) {
      onInvalid?.();
      return nearest;
    }
    if (!anyContains(trusted, ip)) return ip;
    nearest = ip;
  }
  return nearest;
}
