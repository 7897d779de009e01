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

const PORT = /^\d{1,5}$/;

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
    if (rest !== "" && !(rest.startsWith(":") && PORT.test(rest.slice(1)))) return null;
    ip = hop.slice(1, close);
    if (!ip.includes(":")) return null;
  } else {
    const colon = hop.indexOf(":");
    // One colon: IPv4 with a port (an IPv6 address has at least two).
    if (colon >= 0 && hop.indexOf(":", colon + 1) < 0) {
      if (!PORT.test(hop.slice(colon + 1))) return null;
      ip = hop.slice(0, colon);
      if (ip.includes(":")) return null;
    }
  }
  // A zone (fe80::1%eth0) means nothing past the proxy that saw it, and its text is free-form.
  if (ip.includes("%") || ip.length > 45) return null;
  return canonicalIp(ip);
}

/** `onInvalid` is called when a trusted proxy passed on an entry that is not an IP address. */
export function clientIpOf(trusted: readonly Cidr[], peer: string, h: Headers, onInvalid?: () => void): string {
  if (trusted.length === 0 || !anyContains(trusted, peer)) return peer;
  const xff = h.get("x-forwarded-for");
  if (!xff) return peer;
  const hops = xff.split(",");
  let nearest = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const raw = hops[i]!.trim();
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
