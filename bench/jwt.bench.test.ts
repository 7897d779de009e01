/**
 * JWT verification cost per algorithm, with and without the verified-token cache.
 * Run: bun test bench/jwt.bench.test.ts
 * "no cache" = verifyCacheSize 0; "cache hit" = the default cache, every token of the pool cached.
 */
import { afterAll, expect, test, setDefaultTimeout } from "bun:test";

// Figures, not assertions on time; on a loaded machine a measurement can take longer than bun's 5 s default.
setDefaultTimeout(120_000);
import { Authenticator } from "../src/auth/index.ts";
import { hmacToken, jwtConfig, makeKeyPair, nowSec, signWith, tempDir } from "../test/fixtures/jwt.ts";
import { measureAsync } from "./measure.ts";

const tmp = tempDir();
const opened: Authenticator[] = [];
afterAll(() => {
  opened.forEach((a) => a.close());
  tmp.cleanup();
});

/**
 * Awaits `fn(i)` `warmup` then `iterations` times; returns ns per op. `i` cycles through a pool of
 * POOL distinct tokens: JSC caches some per-string work (regex results, string hashes), so
 * verifying one string over and over would flatter every number. For the same reason each token is
 * taken as `header.slice(7)` of a pooled "Bearer <token>" string, a fresh string every time, as
 * in a real request (so a cache lookup pays for hashing the whole token, as it would in production).
 */
const POOL = 1024;
const measure = (fn: (i: number) => Promise<unknown>, iterations: number, warmup?: number): Promise<number> => measureAsync((i) => fn(i % POOL), iterations, warmup);

/** A typical ~270-byte access token; `jti` makes every token of the pool distinct. */
const claims = (i: number) => ({ sub: "user-1234", iss: "https://idp.example.com", aud: "yatagarasu", role: "editor", groups: ["eng", "ops"], iat: nowSec(), exp: nowSec() + 3600, jti: `t-${i}` });
const rows: Array<{ case: string; "µs/op": string }> = [];
const row = (name: string, ns: number) => rows.push({ case: name, "µs/op": (ns / 1000).toFixed(2) });

async function make(cfg: Record<string, unknown>, verifyCacheSize: number): Promise<Authenticator> {
  const a = await Authenticator.create(jwtConfig({ issuer: "https://idp.example.com", audience: "yatagarasu", ...cfg }), { verifyCacheSize });
  opened.push(a);
  return a;
}

test("HS256 verify (fast path), with and without the cache", async () => {
  const secret = "bench-secret-0123456789abcdef0123456789";
  const [noCache, withCache] = [await make({ algorithm: "HS256", secret }, 0), await make({ algorithm: "HS256", secret }, 10_000)];
  const headers = Array.from({ length: POOL }, (_, i) => `Bearer ${hmacToken({ alg: "HS256", typ: "JWT" }, claims(i), secret)}`);
  expect(await noCache.verify(headers[0].slice(7))).toMatchObject({ sub: "user-1234" });
  const plain = await measure((i) => noCache.verify(headers[i].slice(7)), 300_000);
  const hit = await measure((i) => withCache.verify(headers[i].slice(7)), 300_000);
  row("HS256 (no cache)", plain);
  row("HS256 (cache hit)", hit);
  expect(plain).toBeLessThan(50_000); // generous sanity ceiling; the target is ≤ 2 µs
  expect(hit).toBeLessThan(50_000);
});

for (const alg of ["RS256", "ES256", "EdDSA"] as const)
  test(`${alg} verify, with and without the cache`, async () => {
    const key = await makeKeyPair(alg, tmp.dir);
    const cfg = { algorithm: alg, public_key_path: key.pemPath };
    const [noCache, withCache] = [await make(cfg, 0), await make(cfg, 10_000)];
    const headers = await Promise.all(Array.from({ length: POOL }, async (_, i) => `Bearer ${await signWith(key, claims(i), null)}`));
    expect(await noCache.verify(headers[0].slice(7))).toMatchObject({ sub: "user-1234" });
    row(`${alg} (no cache)`, await measure((i) => noCache.verify(headers[i].slice(7)), 3_000));
    const hit = await measure((i) => withCache.verify(headers[i].slice(7)), 300_000);
    row(`${alg} (cache hit)`, hit);
    expect(hit).toBeLessThan(50_000);
  });

test("report", () => {
  console.table(rows);
  expect(rows.length).toBe(8);
});
