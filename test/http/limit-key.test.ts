import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { limitKey } from "../../src/http/cidr.ts";

setDefaultTimeout(30_000);

describe("limitKey: what per-address limits count a client by", () => {
  test("an IPv6 client is its /64 (a host picks any address of its /64: keyed on the address, it evaded every per-address cap)", () => {
    expect(limitKey("2001:db8:1:2:3:4:5:6")).toBe(limitKey("2001:db8:1:2:ffff::1"));
    expect(limitKey("2001:db8:1:2::1")).toBe("20010db800010002::/64");
    expect(limitKey("2001:db8:1:3::1")).not.toBe(limitKey("2001:db8:1:2::1"));
  });
  test("IPv4 (and IPv4-mapped) addresses are themselves; what does not parse stays as it is", () => {
    expect(limitKey("10.1.2.3")).toBe("10.1.2.3");
    expect(limitKey("::ffff:10.1.2.3")).toBe("10.1.2.3");
    expect(limitKey("::ffff:a01:203")).toBe("10.1.2.3");
    expect(limitKey("not-an-ip")).toBe("not-an-ip");
  });
});
