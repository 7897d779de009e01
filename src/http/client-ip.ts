/**
 * The client's address: the TCP peer, or — only when the peer is a trusted proxy — the right-most
 * X-Forwarded-For hop that is not itself a trusted proxy (the left-most hops are client-supplied
 * and can be forged).
 */
import { anyContains, type Cidr } from "./cidr.ts";

export function clientIpOf(trusted: readonly Cidr[], peer: string, h: Headers): string {
  if (trusted.length === 0 || !anyContains(trusted, peer)) return peer;
  const xff = h.get("x-forwarded-for");
  if (!xff) return peer;
  const hops = xff.split(",").map((s) => s.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) if (!anyContains(trusted, hops[i])) return hops[i];
  return hops[0] ?? peer;
}
