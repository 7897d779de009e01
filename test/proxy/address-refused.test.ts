/** ip_filter's decision for one client address (src/proxy/phases/admit.ts addressRefused). */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { parseCidr, type Cidr } from "../../src/http/cidr.ts";
import type { RequestContext } from "../../src/proxy/context.ts";
import { addressRefused } from "../../src/proxy/phases/admit.ts";

setDefaultTimeout(30_000);

const cidrs = (...s: string[]): Cidr[] => s.map((c) => parseCidr(c)!);
// (the address resolved once per request: clientIp reads it from the context)
const from = (ip: string) => ({ clientIp: ip }) as unknown as RequestContext;

describe("addressRefused", () => {
  test("a blocklist refuses its addresses, an allowlist all others; no filter refuses none", () => {
    const block = { block: cidrs("1.2.3.0/24"), allow: [] };
    const allow = { block: [], allow: cidrs("10.0.0.0/8") };
    expect([addressRefused(from("1.2.3.4"), block), addressRefused(from("5.6.7.8"), block)]).toEqual([true, false]);
    expect([addressRefused(from("10.1.2.3"), allow), addressRefused(from("5.6.7.8"), allow)]).toEqual([false, true]);
    expect(addressRefused(from(""), { block: [], allow: [] })).toBe(false);
  });

  test("no client address (the listener lost the peer: the client left as it sent) is refused by a blocklist too", () => {
    // It could be any address, one on the list included: a blocklist let it through.
    expect(addressRefused(from(""), { block: cidrs("1.2.3.0/24"), allow: [] })).toBe(true);
    expect(addressRefused(from(""), { block: [], allow: cidrs("10.0.0.0/8") })).toBe(true);
  });
});
