/**
 * JWT authentication: token lookup, signature + registered-claim verification, claim rules.
 *
 * Only the configured algorithms are accepted (see keys.ts): this refuses `alg: none` and HS/RS
 * key confusion. HS* tokens are verified on a synchronous fast path (keyed Bun.CryptoHasher,
 * timing-safe comparison); other algorithms go through jose's compactVerify with an explicit
 * `algorithms` list. Registered claims are checked the same way for both (jwt.ts).
 *
 * Key selection: a token's `kid` picks jwt.keys[] entries with that id (and the same algorithm),
 * then JWKS keys with that kid (refetching the JWKS, rate-limited, when the kid is unknown); when
 * nothing matches, or the token has no kid, the legacy single-key fields (secret,
 * rsa_public_key_path, ecdsa_public_key_path, public_key_path) are used. A token without a kid also
 * tries jwt.keys[] and JWKS keys of its algorithm (refetching the JWKS, rate-limited, when none verifies it).
 *
 * Errors never contain the token, a claim value or a stack: InvalidToken details say what failed.
 */
import { compactVerify } from "jose";
import type { ClaimRule, JwtConfig, TokenSource } from "../config/schema.ts";
import { ClaimRuleRefusal, ProxyError } from "../errors.ts";
import { JwksClient, type JwksSeed, type Logger } from "./jwks.ts";
import type { Tracer } from "../observe/trace/tracer.ts";
import { assertBase64url, checkRegisteredClaims, claimPolicy, decodePayload, HmacKey, parseToken, TokenError, type ClaimPolicy, type ParsedToken } from "./jwt.ts";
import { allowedAlgorithms, isHmacAlg, loadStaticKeys, type AsymKey, type StaticKeys, type VerifyKey } from "./keys.ts";
import { monotonicClock } from "../limits/token-bucket.ts";
import { TtlLru } from "../util/lru.ts";
import { describeRule, firstFailedRule, type Claims } from "./rules.ts";
import { extractToken, urlOf, type UrlSource } from "./sources.ts";

export interface AuthenticatorOptions {
  /** Folder that relative PEM paths are resolved against (the config file's folder). */
  baseDir?: string;
  fetch?: typeof fetch;
  /** Tracing: one span per JWKS fetch. */
  tracer?: Tracer;
  /** Wall clock in milliseconds (tests inject one). */
  now?: () => number;
  log?: Logger;
  /**
   * Max entries of the verified-token cache (default 10 000; 0 disables it). Keyed by the exact token
   * text; an entry lives until min(exp, now + 60 s) and the cache is emptied when the JWKS key set
   * changes. Claim rules are always evaluated afresh. bench/jwt.bench.test.ts: a hit costs ~0.2-0.4 µs
   * against ~2 µs for HS256 and 50-150 µs for RS256/ES256/EdDSA.
   */
  verifyCacheSize?: number;
  /**
   * The previous generation's authenticator (a reload): with the same jwks_url, its loaded JWKS
   * keys are taken over, so the new generation verifies at once whether or not the JWKS answers.
   */
  previous?: Authenticator;
}

const REALM = 'Bearer realm="yatagarasu"';
/**
 * The challenge of a refused token (RFC 6750 §3): error="invalid_token" and, as error_description,
 * the error's client-safe detail (the JSON body's message: never the token or a claim value), kept
 * to the characters §3 allows there (no quote, backslash or control character).
 */
export const invalidTokenHeaders = (detail: string) => ({
  "WWW-Authenticate": `${REALM}, error="invalid_token", error_description="${detail.replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, "?").slice(0, 200)}"`,
});
const CACHE_MAX_AGE_MS = 60_000;
/** Verifications of one token that a JWKS change may overtake before it gives up (503): rotations are rare, a loop needs a broken JWKS. */
const MAX_KEY_SET_RACES = 3;
const NONE: readonly VerifyKey[] = [];
export const DEFAULT_VERIFY_CACHE_SIZE = 10_000;

const invalid = (detail: string) => new ProxyError("InvalidToken", { detail, headers: invalidTokenHeaders(detail) });
/** Echo an alg only when it is short and plain (it is attacker-controlled). */
const showAlg = (alg: string) => (/^[A-Za-z0-9]{1,16}$/.test(alg) ? alg : "(unprintable)");

function describeSource(s: TokenSource): string {
  // (a header's prefix too: a token sent without it counts as none, and "header X-Auth-Token" alone did not say why)
  if (s.type === "header") return s.prefix ? `header ${s.name}: ${s.prefix}${s.prefix.endsWith(" ") ? "" : " "}<token>` : `header ${s.name}`;
  return s.type === "bearer" ? "Authorization: Bearer" : `query parameter ${s.name}`;
}

/**
 * The keyRef (jwt.ts) of the key that verified a token, by its claims object (frozen, shared by the
 * verified-token cache); an STS session's claims carry its own (bindKeyRef). See holdsKey.
 */
const KEY_REFS = new WeakMap<Claims, string>();
export const keyRefOf = (claims: Claims): string | undefined => KEY_REFS.get(claims);

/**
 * What a plain-front refusal adds for an S3 client pointed at that listener (SigV4 or SigV2, in
 * `Authorization` or the query string): where its signature is read. "" for any other request.
 */
export function s3ListenerHint(auth: string | null, q: URLSearchParams): string {
  const signed = (auth !== null && /^AWS4?[- ]/i.test(auth)) || q.has("X-Amz-Signature") || (q.has("AWSAccessKeyId") && q.has("Signature"));
  return signed ? "; this request carries an S3 (AWS) signature: S3 clients use the S3 API listener (s3_api.port), not this one" : "";
}
/** Query parameter names a token is commonly sent in. */
const TOKEN_PARAMETERS = ["token", "access_token", "jwt", "id_token"];

/**
 * What a refusal for a missing token adds when one was sent where this bucket does not read it
 * (a JWT in the Authorization header without `Bearer `, or in a query parameter no source names):
 * where it was found, never the token. "" otherwise. On the refusal path only.
 */
function misplacedTokenHint(sources: readonly TokenSource[], auth: string | null, q: URLSearchParams): string {
  const bearer = sources.some((s) => s.type === "bearer");
  if (bearer && auth !== null && auth.trim() !== "" && !/^\s*(bearer|basic|digest|negotiate)\s/i.test(auth)) {
    return "; the Authorization header holds no 'Bearer ' before its value";
  }
  const read = new Set(sources.filter((s) => s.type === "query").map((s) => s.name));
  for (const name of TOKEN_PARAMETERS) if (q.has(name) && !read.has(name)) return `; a query parameter '${name}' was sent, which this listener does not read a token from`;
  return "";
}

export const bindKeyRef = (claims: Claims, ref: string): void => void KEY_REFS.set(claims, ref);

/** Tokens longer than this are not kept in the verified-token cache (their claims can weigh tens of KB). */
const MAX_CACHED_TOKEN = 4096;

export class Authenticator {
  private readonly allowed: ReadonlySet<string>;
  private readonly policy: ClaimPolicy;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly cache: TtlLru<Claims> | undefined;
  private jwks: JwksClient | undefined;
  /** Precomputed candidate lists (the HS fast path must not allocate them per request). */
  private readonly legacyByAlg = new Map<string, VerifyKey[]>();
  private readonly noKidByAlg = new Map<string, VerifyKey[]>();
  /** keyRefs of the static keys (jwt.secret, PEMs, jwt.keys[]). */
  private readonly staticRefs: ReadonlySet<string>;

  private constructor(
    private readonly cfg: JwtConfig,
    private readonly keys: StaticKeys,
    opts: AuthenticatorOptions,
  ) {
    this.allowed = allowedAlgorithms(cfg);
    this.policy = claimPolicy(cfg);
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? (() => {});
    const size = opts.verifyCacheSize ?? DEFAULT_VERIFY_CACHE_SIZE;
    this.cache = size > 0 ? new TtlLru<Claims>(size) : undefined;
    const add = (m: Map<string, VerifyKey[]>, k: VerifyKey) => m.set(k.alg, [...(m.get(k.alg) ?? []), k]);
    for (const k of keys.legacy) add(this.legacyByAlg, k);
    for (const k of [...keys.legacy, ...keys.byKid.values()]) add(this.noKidByAlg, k);
    this.staticRefs = new Set([...keys.legacy, ...keys.byKid.values()].map((k) => k.ref));
  }

  /**
   * Whether the key of this keyRef still verifies tokens: a static key of this generation, or a
   * JWKS key of the current set (true while no JWKS set is loaded yet: nothing to tell). An STS
   * session issued from a token of a key removed since (a reload, a JWKS rotation) is refused.
   */
  holdsKey(ref: string): boolean {
    if (this.staticRefs.has(ref)) return true;
    return this.jwks === undefined ? false : (this.jwks.holdsRef(ref) ?? true);
  }

  static async create(cfg: JwtConfig, opts: AuthenticatorOptions = {}): Promise<Authenticator> {
    const keys = await loadStaticKeys(cfg, opts.baseDir);
    // (built outside this async scope: its closures must not keep opts.previous, the previous
    // generation's authenticator, reachable; each reload's would chain to all the earlier ones)
    return Authenticator.assemble(cfg, keys, { ...opts, previous: undefined }, opts.previous?.jwksSeed());
  }

  private static assemble(cfg: JwtConfig, keys: StaticKeys, opts: AuthenticatorOptions, seed: JwksSeed | undefined): Authenticator {
    const a = new Authenticator(cfg, keys, opts);
    for (const f of keys.unusedFiles) a.log("warn", "public key file fits none of the configured algorithms; it is not used", { file: f });
    if (cfg.jwks_url) {
      a.jwks = new JwksClient({
        url: cfg.jwks_url,
        intervalMs: cfg.jwks_refresh_interval_secs * 1000,
        allowed: allowedAlgorithms(cfg),
        fetch: opts.fetch ?? fetch,
        // (its refetch limits count elapsed time: on the wall clock, one stepped back an hour
        // refused every token of a key rotated in meanwhile until the periodic refresh, with a
        // Retry-After of an hour; a test's injected clock drives both)
        now: opts.now ?? monotonicClock,
        log: a.log,
        onChange: () => a.cache?.clear(),
        tracer: opts.tracer,
        seed,
      });
      a.jwks.start();
    }
    return a;
  }

  extract(headers: Headers, url: UrlSource): { token: string; source: TokenSource } | null {
    return extractToken(this.cfg.token_sources, headers, url);
  }

  /** Claims of a valid token. The object is frozen: it may be shared with later calls through the cache. */
  async verify(token: string): Promise<Claims> {
    return this.verifyFast(token);
  }

  /**
   * verify(), synchronous whenever nothing has to be awaited: a verified-token cache hit, or an
   * HMAC token (Bun.CryptoHasher). Asymmetric tokens (jose, JWKS) return a Promise. Throws
   * synchronously on a bad token.
   */
  verifyFast(token: string): Claims | Promise<Claims> {
    const max = this.cfg.max_token_bytes;
    // length counts UTF-16 units, never more than the UTF-8 bytes; count bytes only when it could matter
    if (token.length > max || (token.length * 3 > max && Buffer.byteLength(token) > max)) throw invalid(`token larger than max_token_bytes (${max})`);
    const now = this.now();
    this.jwks?.tick();
    const hit = this.cache?.get(token, now);
    if (hit !== undefined) return hit;
    try {
      const t = parseToken(token);
      const alg = t.header.alg;
      if (!this.allowed.has(alg)) throw invalid(`token algorithm ${showAlg(alg)} is not accepted (allowed: ${[...this.allowed].join(", ")})`);
      if (!isHmacAlg(alg)) return this.verifyAsymAndKeep(token, t, now);
      const { claims, key } = this.verifyHmac(t);
      return this.keep(token, claims, now, key.ref);
    } catch (err) {
      if (err instanceof TokenError) throw invalid(err.message);
      throw err;
    }
  }

  /**
   * The asynchronous path. The JWKS can change while jose checks a signature; a result is only
   * accepted (and cached) if the key that verified it is still in the key set at that moment, both
   * checked in one synchronous step. Otherwise the token is checked again against the current keys,
   * so a removed key never verifies once the new set is loaded, and a kept key still does.
   */
  private async verifyAsymAndKeep(token: string, t: ParsedToken, startedAt: number): Promise<Claims> {
    try {
      for (let attempt = 1; ; attempt++) {
        const { claims, key } = await this.verifyAsym(token, t);
        if (!key.fromJwks || this.jwks?.holds(key)) return this.keep(token, claims, Math.max(startedAt, this.now()), key.ref);
        if (attempt === MAX_KEY_SET_RACES)
          throw new ProxyError("KeysUnavailable", { detail: "the token verification keys (JWKS) kept changing during verification", headers: { "Retry-After": "1" } });
      }
    } catch (err) {
      if (err instanceof TokenError) throw invalid(err.message);
      throw err;
    }
  }

  /** Registered-claims check (exp, nbf, iss, aud...), then freeze and remember a valid token. */
  private keep(token: string, claims: Claims, now: number, ref: string): Claims {
    checkRegisteredClaims(claims, this.policy, now);
    Object.freeze(claims);
    KEY_REFS.set(claims, ref);
    // (a large token is verified each time, not kept: 10,000 distinct 6 KB tokens with 430 claims
    // each held ~290 MB; an ordinary token is well under 2 KB)
    if (this.cache && token.length <= MAX_CACHED_TOKEN) {
      const exp = typeof claims.exp === "number" ? claims.exp * 1000 : Infinity;
      this.cache.set(token, claims, Math.min(exp, now + CACHE_MAX_AGE_MS));
    }
    return claims;
  }

  /**
   * authenticate() for the request path: returns the claims synchronously whenever verifyFast
   * does, throws ProxyError synchronously; the URL is only built when a query source needs it.
   */
  authenticateFast(headers: Headers, url: UrlSource, extraRules: readonly ClaimRule[] = []): Claims | Promise<Claims> {
    const found = this.extract(headers, url);
    if (!found) throw this.missing(headers, url);
    const c = this.verifyFast(found.token);
    return c instanceof Promise ? this.admitLater(c, extraRules) : this.admit(c, extraRules);
  }

  /** (a method of its own: the closure over authenticateFast's arguments made it allocate a scope on every call) */
  private admitLater(pending: Promise<Claims>, extraRules: readonly ClaimRule[]): Promise<Claims> {
    return pending.then((claims) => this.admit(claims, extraRules));
  }

  /** The global jwt.claims rules, then the bucket's: the claims, or a 403. */
  private admit(claims: Claims, extraRules: readonly ClaimRule[]): Claims {
    this.enforce(this.cfg.claims, claims);
    this.enforce(extraRules, claims);
    return claims;
  }

  private missing(headers: Headers, url: UrlSource): ProxyError {
    const where = this.cfg.token_sources.map(describeSource).join(", ");
    // (an S3 client pointed at this listener: say where its signature is read, not only "a token")
    const auth = headers.get("authorization");
    const q = urlOf(url).searchParams;
    const hint = s3ListenerHint(auth, q) || misplacedTokenHint(this.cfg.token_sources, auth, q);
    return new ProxyError("Unauthorized", { detail: `a token is required (${where})${hint}`, headers: { "WWW-Authenticate": REALM } });
  }

  async authenticate(headers: Headers, url: URL, extraRules: readonly ClaimRule[] = []): Promise<{ claims: Claims; source: TokenSource }> {
    const { claims, source } = await this.verified(headers, url);
    return { claims: this.admit(claims, extraRules), source };
  }

  /**
   * A valid token whose claims satisfy jwt.claims (every token the proxy accepts must: a tenant
   * rule, an iat cut-off after a revocation) and then jwt.admin_claims. With no admin_claims
   * configured, nobody is admin. `verifiedAs`: told the claims of a valid token before the rules
   * are checked, so a refused one (403) is still logged with who sent it.
   */
  async authenticateAdmin(headers: Headers, url: URL, verifiedAs?: (claims: Claims) => void): Promise<Claims> {
    const { claims } = await this.verified(headers, url);
    verifiedAs?.(claims);
    if (this.cfg.admin_claims.length === 0) throw new ProxyError("Forbidden", { detail: "no jwt.admin_claims are configured, so no token grants admin access" });
    this.enforce(this.cfg.claims, claims);
    this.enforce(this.cfg.admin_claims, claims);
    return claims;
  }

  readiness(exposed = false): { ok: boolean; reason?: string } {
    return this.jwks?.readiness(exposed) ?? { ok: true };
  }

  /**
   * For a reload, before this generation is swapped in: ok once the JWKS keys are loaded (taken
   * over, or fetched within `ms`), or when no jwks_url is configured; else why not. Never rejects.
   */
  keysSettled(ms: number): Promise<{ ok: boolean; reason?: string }> {
    return this.jwks?.settle(ms) ?? Promise.resolve({ ok: true });
  }

  /** The loaded JWKS key set, for the next generation (see AuthenticatorOptions.previous). */
  private jwksSeed(): JwksSeed | undefined {
    return this.jwks?.seed();
  }

  /** Fetches the JWKS now, or joins the fetch in flight; resolves once its result is applied. Never rejects. */
  refreshKeys(): Promise<void> {
    return this.jwks?.refresh() ?? Promise.resolve();
  }

  close(): void {
    this.jwks?.close();
    this.cache?.clear();
  }

  private async verified(headers: Headers, url: URL): Promise<{ claims: Claims; source: TokenSource }> {
    const found = this.extract(headers, url);
    if (!found) throw this.missing(headers, url);
    return { claims: await this.verify(found.token), source: found.source };
  }

  private enforce(rules: readonly ClaimRule[], claims: Claims): void {
    const failed = firstFailedRule(rules, claims);
    if (failed) throw new ClaimRuleRefusal(describeRule(failed), claims);
  }

  /** A kid's jwt.keys[] entry, else (legacyFallback) the legacy keys; without a kid, legacy keys then jwt.keys[]; all of algorithm `alg`. */
  private staticCandidates(kid: string | undefined, alg: string, legacyFallback: boolean): readonly VerifyKey[] {
    if (kid !== undefined) {
      const k = this.keys.byKid.get(kid);
      if (k !== undefined && k.alg === alg) return [k];
      return legacyFallback ? (this.legacyByAlg.get(alg) ?? NONE) : NONE;
    }
    return this.noKidByAlg.get(alg) ?? NONE;
  }

  private verifyHmac(t: ParsedToken): { claims: Claims; key: VerifyKey } {
    const keys = this.staticCandidates(t.header.kid, t.header.alg, true);
    if (keys.length === 0) throw invalid(t.header.kid !== undefined ? "unknown key id (kid)" : "no key for the token's algorithm");
    for (const k of keys) if ((k as HmacKey).verify(t)) return { claims: decodePayload(t.payloadB64), key: k };
    assertBase64url(t); // a clearer message when the token is mangled
    throw invalid("signature verification failed");
  }

  private async asymCandidates(kid: string | undefined, alg: string): Promise<AsymKey[]> {
    const jwks = this.jwks;
    if (kid !== undefined) {
      const s = this.staticCandidates(kid, alg, false);
      if (s.length) return s as AsymKey[];
      if (jwks) {
        if (jwks.find(kid, alg).length === 0) await jwks.refetchLimited();
        const j = jwks.find(kid, alg);
        if (j.length) return j;
      }
      return (this.legacyByAlg.get(alg) ?? []) as AsymKey[];
    }
    const c = [...this.staticCandidates(undefined, alg, true)] as AsymKey[];
    if (jwks) {
      if (!jwks.loaded) await jwks.refetchLimited();
      c.push(...jwks.find(undefined, alg));
    }
    return c;
  }

  /** The claims and the key whose signature check passed. */
  private async verifyAsym(token: string, t: ParsedToken): Promise<{ claims: Claims; key: AsymKey }> {
    const { alg, kid } = t.header;
    assertBase64url(t);
    const keys = await this.asymCandidates(kid, alg);
    let tried = keys.length;
    let found = await this.firstVerifying(token, t, keys);
    const jwks = this.jwks;
    if (found === undefined && kid === undefined && jwks?.loaded) {
      // A token without a kid names no key to look for, so an identity provider that rotated to a
      // key published since the last fetch is seen only here: refetch (rate-limited, as for an
      // unknown kid) and try the keys that are new (its tokens were refused until the periodic
      // refresh, jwks_refresh_interval_secs later).
      await jwks.refetchLimited();
      const fresh = jwks.find(undefined, alg).filter((k) => !keys.includes(k));
      tried += fresh.length;
      found = await this.firstVerifying(token, t, fresh);
    }
    if (found !== undefined) return found;
    // No key verified it (a kid naming a jwt.keys entry is never looked up in the JWKS) and the
    // JWKS, which may hold its key, is not loaded, or its last fetch failed and the key is not
    // among those kept (no kid, or an unknown one: a rotation the failed fetch would have
    // brought): "try again" (503), never "your token is bad" (a 401 makes clients drop a good
    // token; STS's InvalidIdentityToken is not retried as IDPCommunicationError is).
    if (jwks && (kid === undefined || this.keys.byKid.get(kid)?.alg !== alg)) {
      const retry = { "Retry-After": String(jwks.retryAfterSeconds()) };
      if (!jwks.loaded) throw new ProxyError("KeysUnavailable", { detail: "token verification keys (JWKS) are not loaded yet", headers: retry });
      if (jwks.failing && (kid === undefined || jwks.find(kid, alg).length === 0))
        throw new ProxyError("KeysUnavailable", { detail: "the token's key is not among the JWKS keys loaded, and the JWKS could not be fetched", headers: retry });
    }
    throw invalid(tried > 0 ? "signature verification failed" : kid !== undefined ? "unknown key id (kid)" : "no key for the token's algorithm");
  }

  /** The claims and the first of `keys` whose signature check passes, else undefined. */
  private async firstVerifying(token: string, t: ParsedToken, keys: readonly AsymKey[]): Promise<{ claims: Claims; key: AsymKey } | undefined> {
    for (const k of keys) {
      try {
        await compactVerify(token, k.key, { algorithms: [t.header.alg] });
      } catch (err) {
        const code = (err as { code?: string }).code;
        // Not this key (its signature does not match, or the key itself cannot verify: jose's
        // TypeError for a key it refuses): the next candidate may be the one.
        if (code === "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" || err instanceof TypeError) continue;
        throw invalid(code === "ERR_JOSE_NOT_SUPPORTED" ? "unsupported token header" : "token rejected by the verifier");
      }
      // (outside the try: a signed payload that is not a JSON object is its TokenError, "payload is
      // not ...", as on the HMAC path, not the verifier's generic refusal)
      return { claims: decodePayload(t.payloadB64), key: k };
    }
    return undefined;
  }
}
