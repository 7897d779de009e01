/**
 * What OPA and OpenFGA share: a decision cache, in-flight de-duplication, timeouts and fail modes.
 *
 * - A decision (allow or deny) is cached for the configured TTL (0 = no cache), keyed by
 *   everything the backend is asked: (principal type, identity, bucket, key, method, action) plus
 *   whatever else its input holds (OPA: the client IP). identity = a SHA-256 of the canonical JSON
 *   of ALL the claims (OPA sees them all), or "anonymous". (Until 2026-12-02 it was the `sub` claim
 *   alone: a token of the same `sub` with other roles, an S3 identity named like a token's user,
 *   and a session of a down-scoped token shared cached decisions: an authorization bypass.)
 * - Bounded: at most 10 000 entries (least recently used evicted).
 * - Concurrent identical checks share one request.
 * - No answer is a decision unless it is a 2xx with a readable decision. Failures are never cached
 *   and come in two kinds:
 *   - an outage: a timeout, a network error, a 5xx, a 429 (overloaded) or 408. The fail mode
 *     answers: closed → AuthorizerUnavailable (503 with Retry-After: SDKs retry it, never a 403),
 *     open → allowed. Logged at warn once per outage.
 *   - a configuration error: a redirect (never followed: a 3xx would turn the check into a GET
 *     without input, or POST the claims, key and client address to another origin, whose answer
 *     would then decide), any other 4xx (400 a model without the relation asked, 401 a wrong API
 *     token, 404 an unknown store), an answer that is not JSON or too large, a TLS handshake that
 *     failed (a certificate refused: unknown CA, another name, expired; or an https URL to a
 *     server that speaks http: until 2026-12-06 an outage, so fail_mode open allowed every
 *     request while whoever answered on that address could not prove to be the authorizer), an
 *     answer that is not HTTP at all (another service on that port, see notHttp). Refused
 *     (AuthorizerUnavailable) in BOTH modes: fail_mode open covers an authorizer that is down,
 *     not one that is misconfigured. Logged at error once until it answers again.
 * - Every call is counted (onDecision: allow, deny, error, fail_open), cache hits included: a call
 *   without a decision is `error` when refused (503) and `fail_open` when fail_mode open let it
 *   through (until 2026-12-07 both were `error`, read as that many requests failed). The end of a
 *   failure is logged with as many: failed_requests (refused) and fail_open_requests (allowed).
 */
import { TtlLru } from "../util/lru.ts";
import type { Claims } from "../auth/rules.ts";
import { endClient, startHttpCall } from "../observe/trace/client.ts";
import type { Span } from "../observe/trace/span.ts";
import { readCapped } from "../http/read-capped.ts";
import { AuthorizerUnavailable } from "../errors.ts";
import { tlsFailure } from "../s3/upstream.ts";
import { fetchErrorMessage } from "../util/text.ts";

export type Logger = (level: "info" | "warn" | "error", msg: string, fields?: object) => void;

export interface AuthzInput {
  claims: Claims | undefined;
  bucket: string;
  key: string;
  path: string;
  method: string;
  /** The S3 action ("s3:GetObject", "s3:PutObject", ...), the same on both fronts. */
  action?: string;
  /**
   * Who the claims describe: "jwt" (a token on the plain front), "s3_static" (an S3-front identity
   * from s3_api.credentials), "s3_session" (an STS session from a web-identity token), "anonymous".
   */
  principal: PrincipalType;
  clientIp: string;
  /** The request's span (tracing on): the call gets a child span and sends traceparent. Not part of the decision or its cache key. */
  trace?: Span;
  /**
   * A permission that fail_mode open must not grant when the authorizer is down (503 instead):
   * one beyond what the request's own authorization gave (s3:BypassGovernanceRetention, which
   * makes governance-retained versions deletable). Not part of the decision or its cache key.
   */
  failClosed?: boolean;
}

export type PrincipalType = "jwt" | "s3_static" | "s3_session" | "anonymous";

export interface Authorizer {
  /**
   * true: allowed, false: denied by the policy. Throws AuthorizerUnavailable (503) when there is no
   * decision and the fail mode does not allow (see above).
   */
  authorize(input: AuthzInput): Promise<boolean>;
  close?(): void;
}

const DECISION_CACHE_MAX = 10_000;

/** What a call counts as (yatagarasu_authz_decisions_total's `result`): a decision, or none, refused (`error`) or allowed by fail_mode open (`fail_open`). */
export type DecisionResult = "allow" | "deny" | "error" | "fail_open";

/**
 * Raised by a backend when it could not get a decision. `outage`: the fail mode applies (a 5xx, a
 * 429 or 408); otherwise a configuration error, refused in both modes. `detail`: the backend's
 * own explanation (OpenFGA's "relation 'file#editor' not found"), for the error log.
 */
export class BackendError extends Error {
  override name = "BackendError";
  constructor(
    message: string,
    readonly outage = false,
    readonly detail?: string,
  ) {
    super(message);
  }
}

/** What one check came to: a decision, or no decision (an outage, or a configuration error). */
type Outcome = "allow" | "deny" | "outage" | "broken";

function canonical(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .filter((k) => o[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(",")}}`;
}

/** Claims objects are frozen and shared (the verified-token cache, an S3 identity's): hashed once each. */
const IDENTITY_MEMO = new WeakMap<object, string>();

export function identityOf(claims: Claims | undefined): string {
  if (claims === undefined) return "anonymous";
  let id = IDENTITY_MEMO.get(claims);
  if (id === undefined) {
    id = `claims:${new Bun.CryptoHasher("sha256").update(canonical(claims)).digest("base64url")}`;
    if (Object.isFrozen(claims)) IDENTITY_MEMO.set(claims, id);
  }
  return id;
}

export interface BackendSpec {
  name: "opa" | "openfga";
  ttlSeconds: number;
  failMode: "closed" | "open";
  timeoutMs: number;
  /** Extra cache-key parts beyond identity, bucket, key and method. */
  extraKey?: (input: AuthzInput) => string;
  /** Asks the backend; resolves allow/deny, throws BackendError (or anything) when it cannot decide. `span`: give it to postJson. */
  ask: (input: AuthzInput, signal: AbortSignal, span?: Span) => Promise<boolean>;
  /** The URL asked (tracing: the span's name and server attributes). */
  url?: string;
  /** The span name (OpenTelemetry: method and URL template). */
  spanName?: string;
  /** Each authorize() call's result (metrics). */
  onDecision?: (result: DecisionResult) => void;
}

export class DecidingAuthorizer implements Authorizer {
  private readonly cache: TtlLru<boolean> | undefined;
  private readonly inflight = new Map<string, Promise<Outcome>>();

  /** Failing since the last answer, and how (logged once, see decide). */
  private down: "outage" | "broken" | undefined;
  /** The requests refused (503) and let through (fail_mode open) without a decision since then (authorize counts them, each request, shared checks too). */
  private failedWhileDown = 0;
  private openWhileDown = 0;

  constructor(
    private readonly spec: BackendSpec,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {
    this.cache = spec.ttlSeconds > 0 ? new TtlLru<boolean>(DECISION_CACHE_MAX) : undefined;
  }

  async authorize(input: AuthzInput): Promise<boolean> {
    const outcome = await this.outcome(input);
    const count = this.spec.onDecision;
    if (outcome === "allow" || outcome === "deny") {
      count?.(outcome);
      return outcome === "allow";
    }
    if (outcome === "outage" && this.spec.failMode === "open" && input.failClosed !== true) {
      this.openWhileDown++;
      count?.("fail_open");
      return true;
    }
    this.failedWhileDown++;
    count?.("error");
    throw new AuthorizerUnavailable();
  }

  private outcome(input: AuthzInput): Promise<Outcome> | Outcome {
    // The action is part of the key: on the S3 front GET of a bucket is ListBucket or GetBucketLocation.
    const key = JSON.stringify([input.principal, identityOf(input.claims), input.bucket, input.key, input.method, input.action ?? "", this.spec.extraKey?.(input) ?? ""]);
    const hit = this.cache?.get(key, this.now());
    if (hit !== undefined) return hit ? "allow" : "deny";
    const pending = this.inflight.get(key);
    if (pending) return pending;
    const p = this.decide(input, key).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  close(): void {
    this.cache?.clear();
  }

  private async decide(input: AuthzInput, key: string): Promise<Outcome> {
    const span = input.trace === undefined ? undefined : startHttpCall(input.trace, this.spec.spanName ?? `POST ${this.spec.name}`, "POST", this.spec.url ?? "");
    try {
      const allowed = await this.spec.ask(input, AbortSignal.timeout(this.spec.timeoutMs), span);
      this.cache?.set(key, allowed, this.now() + this.spec.ttlSeconds * 1000);
      if (this.down !== undefined) {
        this.log("info", `${this.spec.name} available again`, { failed_requests: this.failedWhileDown, fail_open_requests: this.openWhileDown });
        this.down = undefined;
        this.failedWhileDown = 0;
        this.openWhileDown = 0;
      }
      if (span !== undefined) {
        span.set("yatagarasu.authz.decision", allowed ? "allow" : "deny");
        span.end();
      }
      return allowed ? "allow" : "deny";
    } catch (err) {
      // Thrown by the transport (refused, reset, DNS, TLS, the timeout) or a BackendError. A TLS
      // handshake that failed, or an answer that is not HTTP, is a configuration error: something
      // answered on that address, and it is not the authorizer (not an authorizer that is down).
      const tls = err instanceof BackendError ? undefined : (tlsFailure(err) ?? notHttp(err));
      const outage = tls === undefined && (!(err instanceof BackendError) || err.outage);
      const open = outage && this.spec.failMode === "open";
      if (span !== undefined) {
        span.set("yatagarasu.authz.decision", open ? "fail_open" : "fail_closed");
        endClient(span, { error: err });
      }
      const name = (err as Error)?.name;
      const error = tls ?? (name === "TimeoutError" || name === "AbortError" ? `timed out after ${this.spec.timeoutMs} ms` : fetchErrorMessage(err));
      const kind = outage ? "outage" : "broken";
      // Once per outage, not once per request (that doubled the log volume while it lasted): the
      // first failure is logged, the others are counted (authorize) and reported when it answers again.
      if (this.down !== kind) {
        if (this.down === undefined) this.failedWhileDown = this.openWhileDown = 0;
        this.down = kind;
        if (outage) {
          this.log("warn", `${this.spec.name} unavailable; failing ${open ? "open (requests allowed)" : "closed (requests refused with 503)"} until it answers again`, {
            bucket: input.bucket,
            key: input.key,
            error,
          });
        } else {
          // A configuration error (or a hostile redirect) never fails open: an operator must act.
          this.log("error", `${this.spec.name} refused the check: a configuration error (URL, TLS certificate, store or policy, API token, model); requests are refused with 503 until it answers`, {
            bucket: input.bucket,
            key: input.key,
            error,
            detail: (err as BackendError).detail,
          });
        }
      }
      return kind;
    }
  }
}

/**
 * Why the answer was not HTTP (fetch's error code), or undefined: another service answers on that
 * port (a Redis its error line, an SSH server its banner), or an upgrade nobody asked for. Until 2026-12-07 an outage: fail_mode open allowed every request while
 * the URL pointed at a port where the authorizer never answered.
 */
function notHttp(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === "Malformed_HTTP_Response" || code === "UnrequestedUpgrade") {
    return `the answer is not an HTTP/1.1 response (${code}): does the URL name the service's HTTP API (OPA's port 8181, OpenFGA's HTTP port 8080)?`;
  }
  return undefined;
}

/** The most of an authorizer's answer that is read (OPA's result, OpenFGA's {"allowed": …}). */
export const MAX_ANSWER_BYTES = 1024 * 1024;

/** Statuses that mean the backend is down or overloaded (the fail mode applies); any other non-2xx is a configuration error. */
const isOutageStatus = (status: number) => status >= 500 || status === 429 || status === 408;

/** Control characters and the like out of a backend's message before it is logged. */
const printable = (s: string) => s.replace(/[^\x20-\x7e]/g, "?").slice(0, 200);

/**
 * POSTs JSON and returns the parsed 2xx body; anything else is a BackendError. A redirect is
 * never followed (redirect: "manual"): the check would go, with the claims, key and client
 * address, wherever the Location points, and its answer would decide.
 */
export async function postJson(fetchFn: typeof fetch, url: string, body: unknown, signal: AbortSignal, headers: Record<string, string> = {}, span?: Span): Promise<unknown> {
  const sent: Record<string, string> = { "content-type": "application/json", accept: "application/json", ...headers };
  span?.inject(sent); // traceparent (tracing on)
  const res = await fetchFn(url, { method: "POST", headers: sent, body: JSON.stringify(body), signal, redirect: "manual" });
  span?.set("http.response.status_code", res.status);
  if (res.status >= 300 && res.status < 400) {
    await res.body?.cancel().catch(() => {});
    throw new BackendError(`HTTP ${res.status} (a redirect: not followed; point the URL at the service itself)`);
  }
  // A decision is a few bytes: a broken or hostile backend's endless answer is cut, not held.
  const bytes = await readCapped(res, MAX_ANSWER_BYTES);
  if (bytes === undefined) throw new BackendError(`answer larger than ${MAX_ANSWER_BYTES} bytes`, isOutageStatus(res.status));
  const text = new TextDecoder().decode(bytes);
  if (!res.ok) {
    let code = "";
    let message = "";
    try {
      const doc = JSON.parse(text) as { code?: unknown; message?: unknown };
      code = String(doc.code ?? "");
      if (typeof doc.message === "string") message = printable(doc.message);
    } catch {}
    throw new BackendError(`HTTP ${res.status}${code ? ` (${printable(code).slice(0, 60)})` : ""}`, isOutageStatus(res.status), message || undefined);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new BackendError("answer is not JSON");
  }
}
