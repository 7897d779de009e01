/**
 * Verification keys: the configured algorithm set, static keys (jwt.keys[] by id, and the legacy
 * single-key fields), PEM and JWK import.
 *
 * The algorithm set is the ONLY list of algorithms a token may use (`alg: none` is never in it),
 * and every key is bound to exactly one algorithm: an HMAC key only ever comes from a configured
 * secret, a PEM only ever becomes an asymmetric verification key, so an RS256 public key can never
 * be used as an HMAC secret (the classic key-confusion attack).
 */
import { createPublicKey } from "node:crypto";
import { isAbsolute, join } from "node:path";
import { importJWK, importSPKI } from "jose";
import type { Algorithm, JwtConfig } from "../config/schema.ts";
import { HmacKey, keyRef } from "./jwt.ts";

export interface AsymKey {
  alg: Algorithm;
  kid?: string;
  key: CryptoKey;
  /** keyRef of its public members (an STS session remembers it, see Authenticator.holdsKey). */
  ref: string;
  /** From the JWKS, which can drop it at any refresh (static keys live as long as the config). */
  fromJwks?: true;
}
export type VerifyKey = HmacKey | AsymKey;

export const isHmacAlg = (alg: string): boolean => alg === "HS256" || alg === "HS384" || alg === "HS512";

/** Every algorithm a token may carry: algorithm, algorithms[] and the algorithms of keys[]. */
export function allowedAlgorithms(cfg: JwtConfig): Set<Algorithm> {
  return new Set<Algorithm>([cfg.algorithm, ...(cfg.algorithms ?? []), ...cfg.keys.map((k) => k.algorithm)]);
}

const publicRef = (jwk: Record<string, unknown>): string => keyRef(JSON.stringify([jwk.kty, jwk.crv, jwk.n, jwk.e, jwk.x, jwk.y]));

/** Reads any public-key PEM (SPKI, PKCS#1 RSA, or an X.509 certificate) and imports it for one algorithm. */
async function importPem(file: string, alg: Algorithm, baseDir: string | undefined): Promise<{ key: CryptoKey; ref: string }> {
  const full = isAbsolute(file) || !baseDir ? file : join(baseDir, file);
  const pem = await Bun.file(full).text();
  const pub = createPublicKey(pem);
  const spki = pub.export({ type: "spki", format: "pem" }) as string;
  return { key: await importSPKI(spki, alg), ref: publicRef(pub.export({ format: "jwk" }) as Record<string, unknown>) };
}

/** Algorithms a JWK can serve, among those allowed (its own `alg` when it names one). */
export function jwkAlgorithms(jwk: Record<string, unknown>, allowed: ReadonlySet<Algorithm>): Algorithm[] {
  const asym = [...allowed].filter((a) => !isHmacAlg(a));
  if (typeof jwk.alg === "string") return asym.includes(jwk.alg as Algorithm) ? [jwk.alg as Algorithm] : [];
  switch (jwk.kty) {
    case "RSA":
      return asym.filter((a) => a.startsWith("RS") || a.startsWith("PS"));
    case "EC":
      return asym.filter((a) => (jwk.crv === "P-256" && a === "ES256") || (jwk.crv === "P-384" && a === "ES384"));
    case "OKP":
      return jwk.crv === "Ed25519" && asym.includes("EdDSA") ? ["EdDSA"] : [];
    default:
      // "oct" (symmetric) JWKS keys are not supported: HMAC secrets come from the config only.
      return [];
  }
}

const PUBLIC_MEMBERS: Record<string, string[]> = { RSA: ["n", "e"], EC: ["crv", "x", "y"], OKP: ["crv", "x"] };

/** Imports the public part of a JWK for one algorithm (private members, if any, are dropped). */
export async function importPublicJwk(jwk: Record<string, unknown>, alg: Algorithm): Promise<{ key: CryptoKey; ref: string }> {
  const kty = String(jwk.kty);
  const pub: Record<string, unknown> = { kty };
  for (const m of PUBLIC_MEMBERS[kty] ?? []) pub[m] = jwk[m];
  const key = await importJWK(pub, alg);
  if (key instanceof Uint8Array) throw new Error("symmetric JWK");
  return { key, ref: publicRef(pub) };
}

export interface StaticKeys {
  /** jwt.keys[] by id (ids are unique: validate.ts checks). */
  byKid: Map<string, VerifyKey>;
  /** jwt.secret / rsa_public_key_path / ecdsa_public_key_path / public_key_path, one entry per usable algorithm. */
  legacy: VerifyKey[];
  /** Legacy PEM files whose key fits none of the configured algorithms (worth a warning). */
  unusedFiles: string[];
}

async function tryImport(file: string, alg: Algorithm, baseDir: string | undefined): Promise<{ key: CryptoKey; ref: string } | undefined> {
  try {
    return await importPem(file, alg, baseDir);
  } catch {
    return undefined; // this PEM's key type does not fit this algorithm
  }
}

export async function loadStaticKeys(cfg: JwtConfig, baseDir: string | undefined): Promise<StaticKeys> {
  const allowed = allowedAlgorithms(cfg);
  const byKid = new Map<string, VerifyKey>();
  for (const k of cfg.keys) {
    let key: VerifyKey;
    if (isHmacAlg(k.algorithm)) {
      if (!k.secret) throw new Error(`jwt.keys '${k.id}': ${k.algorithm} needs a secret`);
      key = new HmacKey(k.algorithm, k.secret);
    } else {
      if (!k.path) throw new Error(`jwt.keys '${k.id}': ${k.algorithm} needs a PEM path`);
      key = { alg: k.algorithm, kid: k.id, ...(await importPem(k.path, k.algorithm, baseDir)) };
    }
    byKid.set(k.id, key);
  }

  const legacy: VerifyKey[] = [];
  const used = new Set<string>();
  // jwt.secret serves only the HS* algorithms declared for it (algorithm, algorithms[]): one named
  // only by a jwt.keys entry is that entry's, so a token signed with jwt.secret under it (an HS256
  // secret, a header saying HS512) is refused, not verified by a hash the issuer never chose.
  const declared = new Set<Algorithm>([cfg.algorithm, ...(cfg.algorithms ?? [])]);
  for (const alg of allowed) {
    if (isHmacAlg(alg)) {
      if (cfg.secret && declared.has(alg)) legacy.push(new HmacKey(alg, cfg.secret));
      continue;
    }
    const files: string[] = [];
    if ((alg.startsWith("RS") || alg.startsWith("PS")) && cfg.rsa_public_key_path) files.push(cfg.rsa_public_key_path);
    if (alg.startsWith("ES") && cfg.ecdsa_public_key_path) files.push(cfg.ecdsa_public_key_path);
    if (cfg.public_key_path) files.push(cfg.public_key_path);
    for (const f of files) {
      const key = await tryImport(f, alg, baseDir);
      if (key) {
        legacy.push({ alg, ...key });
        used.add(f);
      }
    }
  }
  const files = [cfg.rsa_public_key_path, cfg.ecdsa_public_key_path, cfg.public_key_path].filter((f): f is string => !!f);
  return { byKid, legacy, unusedFiles: files.filter((f) => !used.has(f)) };
}
