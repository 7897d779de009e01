/** validHost: the Host forms the guard phase and the metrics listener accept (src/http/host.ts). */
import { expect, test, setDefaultTimeout } from "bun:test";
import { validHost } from "../../src/http/host.ts";

setDefaultTimeout(30_000);

test("host[:port] with a reg-name, IPv4 or [IPv6] and a port of 1-5 digits up to 65535; an empty Host", () => {
  for (const h of ["", "a", "example.com", "EXAMPLE.com:8080", "x:0", "x:65535", "x:00080", "1.2.3.4", "1.2.3.4:9000", "a_b-c~d.e", "a%41b", "bucket.s3.example.com:443", "[::1]", "[::1]:8080", "[2001:db8::1]", "[::ffff:1.2.3.4]:80", "[fe80::1%25eth0]", "[fe80::1%25en%2d0]:1", "a!$&'()*+;=b"]) {
    expect([h, validHost(h)]).toEqual([h, true]);
  }
});

test("refused: a port that is not 0-65535, userinfo, a list, whitespace, a path, a bad literal, non-ASCII", () => {
  for (const h of ["x:", "x:abc", "x:1x", "x:-1", "x:65536", "x:99999", "x:123456", "x: 80", ":80", ":", "u:p@a", "a@b", "a, b", "a,b", "a b", " a", "a\t", "a/b", "a\\b", "a?b", "a#b", "a%4", "a%zz", "a%", "[::1", "[::1]x", "[::1]:", "[::1]:abc", "[]", "[1]", "[zz::1]", "[fe80::1%eth0]", "[fe80::1%25]", "x:80:80", "exämple.com", "a\u0000b"]) {
    expect([h, validHost(h)]).toEqual([h, false]);
  }
});
