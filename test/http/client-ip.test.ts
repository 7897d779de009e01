import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { parseCidr, type Cidr } from "../../src/http/cidr.ts";
import { clientIpOf, forwardedAddress } from "../../src/http/client-ip.ts";

setDefaultTimeout(30_000);

const trusted: Cidr[] = [parseCidr("127.0.0.0/8")!, parseCidr("10.0.0.0/8")!];
const xff = (v: string) => new Headers({ "x-forwarded-for": v });

function resolve(peer: string, value: string): { ip: string; invalid: number } {
  let invalid = 0;
  const ip = clientIpOf(trusted, peer, xff(value), () => invalid++);
  return { ip, invalid };
}

describe("forwardedAddress", () => {
  test("an IP address is itself; ip:port and [v6]:port are read as their IP", () => {
    expect(forwardedAddress("1.2.3.4")).toBe("1.2.3.4");
    expect(forwardedAddress("2001:db8::1")).toBe("2001:db8::1");
    expect(forwardedAddress("1.2.3.4:5555")).toBe("1.2.3.4");
    expect(forwardedAddress("[2001:db8::1]:443")).toBe("2001:db8::1");
    expect(forwardedAddress("[2001:db8::1]")).toBe("2001:db8::1");
    expect(forwardedAddress("1.2.3.4:1")).toBe("1.2.3.4");
    expect(forwardedAddress("[::1]:65535")).toBe("::1");
  });

  test("one address is one text whatever its spelling: IPv4-mapped forms and leading zeros are the IPv4 address, IPv6 is RFC 5952's form", () => {
    // A dual-stack load balancer writes ::ffff:1.2.3.4 for the client another one writes 1.2.3.4:
    // each spelling was another client (its own per-IP limit, client_ip in logs, audit and OPA).
    for (const v of ["1.2.3.4", "::ffff:1.2.3.4", "::FFFF:1.2.3.4", "::ffff:102:304", "0:0:0:0:0:ffff:1.2.3.4", "[::ffff:1.2.3.4]:80", "001.002.003.004", "1.2.3.4:5555"]) {
      expect(`${v} → ${forwardedAddress(v)}`).toBe(`${v} → 1.2.3.4`);
    }
    for (const v of ["2001:DB8::1", "2001:0db8:0000:0000:0000:0000:0000:0001", "[2001:db8:0:0::1]:443", "2001:db8::0:1"]) {
      expect(`${v} → ${forwardedAddress(v)}`).toBe(`${v} → 2001:db8::1`);
    }
    expect(forwardedAddress("2001:db8:0:1:0:0:0:1")).toBe("2001:db8:0:1::1"); // the longest zero run
    expect(forwardedAddress("2001:db8:0:0:1:0:0:1")).toBe("2001:db8::1:0:0:1"); // the first of equal runs
    expect(forwardedAddress("2001:db8:0:1:1:1:1:1")).toBe("2001:db8:0:1:1:1:1:1"); // one zero group is not "::"
    expect(forwardedAddress("::")).toBe("::");
    expect(forwardedAddress("::1")).toBe("::1");
    expect(resolve("127.0.0.1", "::ffff:6.6.6.6").ip).toBe(resolve("127.0.0.1", "006.6.6.6").ip);
  });

  test("anything else is not an address", () => {
    for (const bad of ["not-an-ip", "<script>", "1.2.3.4\r\nX: y", "9".repeat(5000), "garbage", "unknown", "1.2.3.4:", "1.2.3.4:port", "1.2.3.4:123456", "1.2.3.4:99999", "1.2.3.4:65536", "1.2.3.4:0", "1.2.3.4:00000", "[::1]:0", "[2001:db8::1]:99999", "[1.2.3.4]:80", "[::1", "[::1]x", "[::1]:", "fe80::1%eth0", "[fe80::1%<b>]:1", "1.2.3.256", "1.2.3", ""]) {
      expect(forwardedAddress(bad)).toBeNull();
    }
  });
});

describe("clientIpOf", () => {
  test("an untrusted peer is the client whatever the header says", () => {
    let invalid = 0;
    expect(clientIpOf(trusted, "203.0.113.9", xff("garbage"), () => invalid++)).toBe("203.0.113.9");
    expect(clientIpOf([], "127.0.0.1", xff("1.2.3.4"))).toBe("127.0.0.1");
    expect(invalid).toBe(0);
  });

  test("behind a trusted peer: the right-most hop that is not trusted, normalized", () => {
    expect(resolve("127.0.0.1", "1.2.3.4")).toEqual({ ip: "1.2.3.4", invalid: 0 });
    expect(resolve("127.0.0.1", "9.9.9.9, 1.2.3.4:5555")).toEqual({ ip: "1.2.3.4", invalid: 0 });
    expect(resolve("127.0.0.1", "9.9.9.9, [2001:db8::7]:8443, 10.1.1.1")).toEqual({ ip: "2001:db8::7", invalid: 0 });
    expect(resolve("127.0.0.1", "10.2.2.2, 10.1.1.1")).toEqual({ ip: "10.2.2.2", invalid: 0 });
    expect(resolve("127.0.0.1", " , ")).toEqual({ ip: "127.0.0.1", invalid: 0 });
  });

  test("an entry that is not an IP address is never the client: the trusted hop that passed it on is", () => {
    for (const bad of ["not-an-ip", "<script>", "1.2.3.4\tX: y", "9".repeat(5000), "garbage", "unknown"]) {
      expect(resolve("127.0.0.1", bad)).toEqual({ ip: "127.0.0.1", invalid: 1 });
      expect(resolve("127.0.0.1", `${bad}, 10.1.1.1`)).toEqual({ ip: "10.1.1.1", invalid: 1 });
    }
    // Left of an untrusted address the hops are the client's own claims: not read at all.
    expect(resolve("127.0.0.1", "garbage, 1.2.3.4")).toEqual({ ip: "1.2.3.4", invalid: 0 });
  });

  test("a bounded number of entries is read: past them the trusted hop reached is the client, however long the header", () => {
    // A client whose own address is trusted (a workload inside 10.0.0.0/8) writes a header of trusted
    // addresses: every one was parsed and walked past, 4-5 ms of CPU per request for 1,700 of them.
    const trustedHops = (n: number) => Array.from({ length: n }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
    expect(resolve("127.0.0.1", ["1.2.3.4", ...trustedHops(8)].join(", "))).toEqual({ ip: "1.2.3.4", invalid: 0 }); // a real chain of proxies
    const far = resolve("127.0.0.1", ["1.2.3.4", ...trustedHops(1700)].join(","));
    expect(far.invalid).toBe(0);
    expect(far.ip).toMatch(/^10\.0\.\d+\.\d+$/);
    expect(trustedHops(1700).indexOf(far.ip)).toBeGreaterThan(1600); // one of the right-most
    expect(resolve("127.0.0.1", ",1.2.3.4")).toEqual({ ip: "1.2.3.4", invalid: 0 });
    expect(resolve("127.0.0.1", "1.2.3.4,")).toEqual({ ip: "1.2.3.4", invalid: 0 });
    expect(resolve("127.0.0.1", "1.2.3.4")).toEqual({ ip: "1.2.3.4", invalid: 0 });
  });
});
