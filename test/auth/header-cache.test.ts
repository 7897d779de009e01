/**
 * The parsed-header cache of src/auth/jwt.ts: bounded in entries, and holding only short headers
 * (an issuer's alg/typ/kid), since a header is cached before its token's signature is checked.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { cachedHeaders, parseToken } from "../../src/auth/jwt.ts";

setDefaultTimeout(30_000);

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
const token = (header: Record<string, unknown>) => `${b64(header)}.${b64({ sub: "x" })}.c2ln`;

test("a long header is parsed but not kept (64 of them, token-sized, were pinned before any signature check); short ones are kept, at most 64", () => {
  const before = cachedHeaders();
  const long = parseToken(token({ alg: "HS256", kid: "k".repeat(4000) }));
  expect(long.header.kid).toHaveLength(4000);
  expect(cachedHeaders()).toBe(before);
  for (let i = 0; i < 100; i++) parseToken(token({ alg: "HS256", kid: `short-${i}` }));
  expect(cachedHeaders()).toBeGreaterThan(0);
  expect(cachedHeaders()).toBeLessThanOrEqual(64);
  for (let i = 0; i < 100; i++) parseToken(token({ alg: "HS256", kid: `long-${i}-${"k".repeat(1000)}` }));
  expect(cachedHeaders()).toBeLessThanOrEqual(64);
  const shortNow = cachedHeaders();
  parseToken(token({ alg: "HS256", kid: "k".repeat(4000) }));
  expect(cachedHeaders()).toBe(shortNow);
});
