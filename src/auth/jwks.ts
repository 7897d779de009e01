/**
 * A JWKS (jwt.jwks_url) kept in memory.
 *
 * - The first fetch starts at once and does not block startup; until a fetch has succeeded,
 *   `loaded` is false (readiness fails, requests get KeysUnavailable 503 with Retry-After), and
 *   fetches are retried every 10 s.
 * - Refreshed every jwks_refresh_interval_secs (a timer, plus a check on each verification so an
 *   injected clock drives it too).
 * - An unknown kid, or a token without kid that no loaded key verifies, triggers a refetch, at most
 *   one per 10 s; concurrent callers share one fetch.
 * - A failed fetch (network, timeout, non-2xx, bad JSON, no usable key) keeps the last good keys.
 *   A redirect is a failed fetch (never followed; the error names its target): keys are taken
 *   from the configured URL only, never from another origin (or plain http) it points to.
 * - A key removed from the set never verifies once the new set is loaded: onChange drops cached
 *   verifications, and a verification that was in flight re-checks holds() before it counts.
 * - A reload's new client takes over the keys of the previous generation's client for the same URL
 *   (`seed`): it fetches at once as usual, but an unchanged jwks_url never depends on the JWKS
 *   answering during the reload. A new or changed URL has no keys until its first fetch, which a
 *   reload awaits (settle()) and refuses to swap in without (see buildRuntime).
 * - Keys are RSA, EC (P-256, P-384) and OKP (Ed25519) public keys, each bound to one configured
 *   algorithm (its `alg` member if it has one, else every configured algorithm of its type).
 *   Symmetric ("oct") JWKS keys are not supported; HMAC secrets come from the config only.
 */
import { readCapped } from "../http/read-capped.ts";
import { fetchErrorMessage, unresolvedHost, urlForLogs } from "../util/text.ts";
import type { Algorithm } from "../config/schema.ts";
import { importPublicJwk, jwkAlgorithms, type AsymKey } from "./keys.ts";
import { describeHttpCall, endClient } from "../observe/trace/client.ts";
import { SpanKind } from "../observe/trace/span.ts";
import type { Tracer } from "../observe/trace/tracer.ts";

export type Logger = (level: "info" | "warn" | "error", msg: string, fields?: object) => void;

const REFETCH_MIN_INTERVAL_MS = 10_000;
/** A fetch (connection, answer and body) gives up after this long. */
export const FETCH_TIMEOUT_MS = 5_000;
const MAX_KEYS = 100;
const MAX_BYTES = 1 << 20;

export interface JwksOptions {
  url: string;
  intervalMs: number;
  allowed: ReadonlySet<Algorithm>;
  fetch: typeof fetch;
  /** Milliseconds, monotonic: only intervals are measured. */
  now: () => number;
  log: Logger;
  /** Called when the key set changed (e.g. to drop cached verifications). */
  onChange?: () => void;
  /**
   * Tracing: each fetch is a span of its own trace (a fetch is shared by every request waiting
   * for it, and most are timer-driven, so none of them is its parent).
   */
  tracer?: Tracer;
  /** The keys of the previous generation's client (a reload); used only when its URL is this one. */
  seed?: JwksSeed;
}

/** A loaded key set, handed from one generation's client to the next (JwksClient.seed()). */
export interface JwksSeed {
  readonly url: string;
  readonly keys: readonly AsymKey[];
  readonly fingerprint: string;
}

export class JwksClient {
  private keys: AsymKey[] = [];
  private fingerprint = "";
  private loadedOnce = false;
  private lastAttempt = -Infinity;
  private lastError: string | undefined;
  /** Whether a failure was not logged again (the same as the one before it): its end is then logged. */
  private repeated = false;
  private inflight: Promise<void> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  /** Number of fetches started (observable for tests and metrics). */
  fetchCount = 0;

  constructor(private readonly o: JwksOptions) {
    const seed = o.seed;
    if (seed !== undefined && seed.url === o.url) {
      // Only keys of algorithms still accepted (a reload may change jwt.algorithms); the first
      // fetch adds the ones a newly accepted algorithm binds.
      const keys = seed.keys.filter((k) => o.allowed.has(k.alg));
      if (keys.length > 0) {
        this.keys = keys;
        this.fingerprint = keys.length === seed.keys.length ? seed.fingerprint : "";
        this.loadedOnce = true;
      }
    }
  }

  get loaded(): boolean {
    return this.loadedOnce;
  }

  /** The current key set, for the next generation's client (undefined until one has loaded). */
  seed(): JwksSeed | undefined {
    return this.loadedOnce ? { url: this.o.url, keys: this.keys, fingerprint: this.fingerprint } : undefined;
  }

  /**
   * Waits (at most `ms`) for the fetch in flight, if keys are not loaded yet; then the readiness.
   * Starts no fetch of its own. For a reload, which must not swap in a client without keys.
   */
  async settle(ms: number): Promise<{ ok: boolean; reason?: string }> {
    if (!this.loadedOnce && this.inflight !== undefined) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
      await Promise.race([this.inflight, late]);
      clearTimeout(timer);
    }
    if (this.loadedOnce) return { ok: true };
    if (this.inflight !== undefined) return { ok: false, reason: `JWKS keys from ${urlForLogs(this.o.url)} not loaded: no answer within ${Math.ceil(ms / 1000)} s` };
    return this.readiness();
  }

  start(): void {
    void this.refresh();
  }

  /** Fetches now (or joins the fetch in flight). Never rejects. */
  refresh(): Promise<void> {
    if (this.inflight) return this.inflight;
    this.lastAttempt = this.o.now();
    this.fetchCount++;
    this.inflight = this.load().finally(() => {
      this.inflight = undefined;
      this.schedule();
    });
    return this.inflight;
  }

  /** Cheap per-verification check: starts a background refresh when one is due. */
  tick(): void {
    if (this.inflight || this.closed) return;
    const due = this.loadedOnce ? this.o.intervalMs : Math.min(this.o.intervalMs, REFETCH_MIN_INTERVAL_MS);
    if (this.o.now() - this.lastAttempt >= due) void this.refresh();
  }

  /** For an unknown kid or missing keys: joins a fetch in flight, else refetches unless one started < 10 s ago. */
  refetchLimited(): Promise<void> {
    if (this.inflight) return this.inflight;
    if (this.closed || this.o.now() - this.lastAttempt < REFETCH_MIN_INTERVAL_MS) return Promise.resolve();
    return this.refresh();
  }

  /** Whether the last fetch failed (keys published since the last good one are missing). */
  get failing(): boolean {
    return this.lastError !== undefined;
  }

  /** Seconds until a refetch may happen (for Retry-After), at least 1. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil((this.lastAttempt + REFETCH_MIN_INTERVAL_MS - this.o.now()) / 1000));
  }

  /** Keys for an algorithm; with a kid, only that kid's. */
  find(kid: string | undefined, alg: string): AsymKey[] {
    return this.keys.filter((k) => k.alg === alg && (kid === undefined || k.kid === kid));
  }

  /**
   * Whether `key` (from an earlier find()) is still in the current key set. A verification checks
   * this after its asynchronous signature check, in the same synchronous step that caches the
   * result: a key-set change that landed meanwhile must not let a removed key verify (defect:
   * such a result was cached after the change had cleared the cache, and kept verifying).
   */
  holds(key: AsymKey): boolean {
    return this.keys.includes(key);
  }

  /** Whether a key of this keyRef is in the current key set; undefined while none is loaded (nothing to tell). */
  holdsRef(ref: string): boolean | undefined {
    return this.loadedOnce ? this.keys.some((k) => k.ref === ref) : undefined;
  }

  /**
   * Whether keys are loaded, and why not. `exposed`: for /ready, which anyone who reaches the
   * listener may read: the reason names no URL and no host (the identity provider's address is
   * internal; the log line of the failed fetch names it for the operator), only the kind of
   * failure.
   */
  readiness(exposed = false): { ok: boolean; reason?: string } {
    if (this.loadedOnce) return { ok: true };
    const why = this.lastError ?? (this.inflight ? "first fetch in progress" : "not fetched yet");
    if (exposed) return { ok: false, reason: `JWKS keys not loaded: ${failureKind(why)} (the log names the URL)` };
    return { ok: false, reason: `JWKS keys from ${urlForLogs(this.o.url)} not loaded: ${why}` };
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    const delay = this.loadedOnce ? this.o.intervalMs : Math.min(this.o.intervalMs, REFETCH_MIN_INTERVAL_MS);
    this.timer = setTimeout(() => void this.refresh(), delay);
    this.timer.unref?.();
  }

  private async load(): Promise<void> {
    const span = this.o.tracer?.startRoot("GET jwks", SpanKind.CLIENT);
    let status = 0;
    // (named in the log line of the fetch: a token of such a key is refused as an unknown kid or a
    // failed signature, and nothing else tells the operator why)
    const skipped: Array<{ kid: string | undefined; reason: string }> = [];
    try {
      const headers: Record<string, string> = { accept: "application/json" };
      if (span !== undefined) {
        describeHttpCall(span, "GET", this.o.url);
        span.inject(headers);
      }
      // A redirect is not followed: the keys that verify every token would come from wherever
      // the Location points (another origin, or http after https), not from the configured URL.
      const res = await this.o.fetch(this.o.url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), headers, redirect: "manual" });
      status = res.status;
      if (status >= 300 && status < 400) {
        await res.body?.cancel().catch(() => {});
        throw new Error(`HTTP ${status} redirect${redirectTarget(res.headers.get("location"), this.o.url)} not followed: set jwks_url to the final URL`);
      }
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      // Read with the cap as the bytes come: a body without a Content-Length was read whole first
      // (a 200 MB answer took the proxy from 74 to 405 MB of RSS on every refresh).
      const capped = await readCapped(res, MAX_BYTES);
      if (capped === undefined) throw new Error("response larger than 1 MiB");
      const text = new TextDecoder().decode(capped);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new Error("response is not JSON");
      }
      const list = (body as { keys?: unknown } | null)?.keys;
      if (!Array.isArray(list)) throw new Error("response has no `keys` array");
      const keys: AsymKey[] = [];
      const used: unknown[] = [];
      const shown = (v: unknown) => String(v).slice(0, 32);
      // (a key set larger than any identity provider publishes: the rest are never tried, and a
      // token of theirs is refused as an unknown kid, so the line says how many were left out)
      if (list.length > MAX_KEYS) skipped.push({ kid: undefined, reason: `${list.length - MAX_KEYS} keys past the first ${MAX_KEYS} are not read` });
      for (const jwk of list.slice(0, MAX_KEYS)) {
        if (jwk === null || typeof jwk !== "object" || Array.isArray(jwk)) continue;
        const j = jwk as Record<string, unknown>;
        const kid = typeof j.kid === "string" ? j.kid : undefined;
        if (j.use !== undefined && j.use !== "sig") {
          skipped.push({ kid, reason: `use is ${shown(j.use)}, not sig` });
          continue;
        }
        // (as jose's key sets: key_ops, when given, must name verify; the key is imported without them)
        if (j.key_ops !== undefined && !(Array.isArray(j.key_ops) && j.key_ops.includes("verify"))) {
          skipped.push({ kid, reason: "key_ops do not include verify" });
          continue;
        }
        // jose refuses RSA keys under 2048 bits when it verifies (a TypeError): such a key, loaded,
        // ended the search of the keys to try, so a token another key would have verified was refused.
        if (j.kty === "RSA" && typeof j.n === "string" && Buffer.from(j.n, "base64url").length * 8 < 2048) {
          this.o.log("warn", "JWKS key skipped: an RSA key under 2048 bits", { kid });
          continue;
        }
        const algs = jwkAlgorithms(j, this.o.allowed);
        if (algs.length === 0) skipped.push({ kid, reason: typeof j.alg === "string" ? `algorithm ${shown(j.alg)} is not accepted` : `no accepted algorithm for key type ${shown(j.kty)}` });
        for (const alg of algs) {
          try {
            keys.push({ alg, kid, ...(await importPublicJwk(j, alg)), fromJwks: true });
            used.push([alg, kid, j.n, j.e, j.x, j.y]);
          } catch {
            this.o.log("warn", "JWKS key skipped: cannot import", { kid, alg });
          }
        }
      }
      if (keys.length === 0) throw new Error("no usable key for the configured algorithms");
      const fp = JSON.stringify(used);
      if (this.repeated && fp === this.fingerprint) this.o.log("info", "JWKS fetch succeeded again", { url: urlForLogs(this.o.url), keys: keys.length });
      this.repeated = false;
      this.loadedOnce = true;
      this.lastError = undefined;
      // An unchanged set keeps its key objects, so a verification in flight across a routine
      // refresh still holds() its key; a change swaps the set and drops cached verifications in
      // the same synchronous step (no verification can observe one without the other).
      if (fp !== this.fingerprint) {
        this.keys = keys;
        this.fingerprint = fp;
        this.o.log("info", "JWKS keys loaded", { url: urlForLogs(this.o.url), keys: keys.length, kids: [...new Set(keys.map((k) => k.kid))], ...(skipped.length > 0 ? { skipped } : {}) });
        this.o.onChange?.();
      }
      if (span !== undefined) {
        span.set("yatagarasu.jwks.keys", keys.length);
        endClient(span, status);
      }
    } catch (err) {
      if (span !== undefined) {
        if (status !== 0) span.set("http.response.status_code", status);
        endClient(span, { error: err });
      }
      const name = (err as Error)?.name;
      const previous = this.lastError;
      this.lastError = name === "TimeoutError" || name === "AbortError" ? "timed out" : failureMessage(err);
      // (the same failure as the attempt before, every 10 s while the provider is away: said once,
      // and its end is said when keys come again, JWKS fetch succeeded again)
      this.repeated = previous === this.lastError;
      if (!this.repeated) this.o.log(this.loadedOnce ? "warn" : "error", this.loadedOnce ? "JWKS refresh failed; keeping the last good keys" : "JWKS fetch failed; no keys yet", {
        url: urlForLogs(this.o.url),
        error: this.lastError,
        ...(skipped.length > 0 ? { skipped } : {}),
      });
    }
  }
}

/** " to <url>" (no credentials or query) for a redirect's Location, or "" when it has none. */
function redirectTarget(location: string | null, base: string): string {
  if (location === null) return "";
  const u = URL.parse(location, base);
  return u === null ? "" : ` to ${urlForLogs(u.href)}`;
}

/**
 * A failed fetch's error for the log and readiness: a host name that does not resolve in our words,
 * as the Redis messages say it (Bun's was "getaddrinfo ENOTFOUND idp.example.com"; the log line
 * names the URL), else the runtime's message without its advice (fetchErrorMessage).
 */
function failureMessage(err: unknown): string {
  return unresolvedHost((err as { code?: unknown })?.code) ?? fetchErrorMessage(err);
}

/** The kind of a JWKS fetch failure, with no host, address or URL in it (see readiness). */
function failureKind(why: string): string {
  const redirect = /^HTTP (3\d\d) redirect/.exec(why);
  if (redirect !== null) return `HTTP ${redirect[1]} redirect not followed`;
  if (/^(HTTP \d{3}|timed out|first fetch in progress|not fetched yet|response larger than 1 MiB|response is not JSON|response has no `keys` array|no usable key for the configured algorithms)$/.test(why)) return why;
  if (/ENOTFOUND|EAI_AGAIN|getaddrinfo|DNS|host name does not resolve/i.test(why)) return "the host does not resolve";
  if (/ECONNREFUSED|refused/i.test(why)) return "connection refused";
  if (/ECONNRESET|socket|closed|hang up/i.test(why)) return "connection closed";
  if (/CERT|certificate|TLS|SSL|EPROTO/i.test(why)) return "TLS handshake failed";
  if (/ETIMEDOUT|timed? ?out/i.test(why)) return "timed out";
  return "fetch failed";
}
