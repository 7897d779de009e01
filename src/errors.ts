/**
 * The one error type of the proxy, and the catalogue of every error code a client can see.
 *
 * Every library error (fetch, jose, zod, S3 XML) is converted into a ProxyError at the boundary
 * where it happens. `toResponse()` is the only place that turns an error into HTTP, so clients
 * never see stack traces, upstream internals or secrets: only `code`, a fixed human message and
 * the request id.
 */

import type { AuthResult } from "./observe/metrics.ts";

export interface ErrorSpec {
  status: number;
  message: string;
}

/** The catalogue. Keys are the `error` field of the JSON body. */
export const CATALOGUE = {
  BadRequest: { status: 400, message: "The request is malformed" },
  InvalidPath: { status: 400, message: "The request path is not allowed" },
  KeyTooLong: { status: 400, message: "The object key is longer than 1024 bytes of UTF-8 (S3's limit)" },
  Unauthorized: { status: 401, message: "Authentication required" },
  InvalidToken: { status: 401, message: "The token is not valid" },
  Forbidden: { status: 403, message: "Access denied" },
  AccessDenied: { status: 403, message: "The upstream denied access to this object" },
  NotFound: { status: 404, message: "No bucket is mapped to this path" },
  NoSuchKey: { status: 404, message: "The object does not exist" },
  NoSuchBucket: { status: 404, message: "The upstream bucket does not exist" },
  MethodNotAllowed: { status: 405, message: "Only GET, HEAD and OPTIONS are allowed" },
  Conflict: { status: 409, message: "A conflicting request for this object is in progress; retry" },
  LengthRequired: { status: 411, message: "An upload needs a Content-Length" },
  PreconditionFailed: { status: 412, message: "A precondition did not hold" },
  EntityTooLarge: { status: 413, message: "The upload is larger than allowed" },
  UriTooLong: { status: 414, message: "The request URI is too long" },
  RangeNotSatisfiable: { status: 416, message: "The requested range is not satisfiable" },
  TooManyRequests: { status: 429, message: "Rate limit exceeded" },
  HeadersTooLarge: { status: 431, message: "The request headers are too large" },
  InternalError: { status: 500, message: "Internal error" },
  NotImplemented: { status: 501, message: "This proxy does not offer that here" },
  BadGateway: { status: 502, message: "The upstream failed" },
  UpstreamUnreachable: { status: 502, message: "The upstream could not be reached" },
  ServiceUnavailable: { status: 503, message: "The service is temporarily unavailable" },
  SlowDown: { status: 503, message: "The upstream asked to slow down" },
  CircuitOpen: { status: 503, message: "The upstream is failing; requests are paused" },
  Overloaded: { status: 503, message: "Too many concurrent requests" },
  KeysUnavailable: { status: 503, message: "Token verification keys are not loaded yet" },
  AuthorizerUnavailable: { status: 503, message: "The authorization service could not decide this request; retry later" },
  GatewayTimeout: { status: 504, message: "The upstream did not answer in time" },
  RequestTimeout: { status: 408, message: "The request body did not arrive in time" },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof CATALOGUE;

/** The detail of the 504 that answers `Cache-Control: only-if-cached` with no fresh copy: the S3 front tells it by this (its own NotCached, not a failing store). */
export const ONLY_IF_CACHED_MISS = "Cache-Control: only-if-cached, and no fresh copy of the object is cached";

export class ProxyError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  /** Extra response headers (Retry-After, WWW-Authenticate, Allow, Content-Range...). */
  readonly headers: Record<string, string> | undefined;
  /** Detail safe to show the client (never secrets, tokens or upstream internals). */
  readonly detail: string | undefined;

  constructor(
    code: ErrorCode,
    opts: { detail?: string; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(opts.detail ?? CATALOGUE[code].message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "ProxyError";
    this.code = code;
    this.status = CATALOGUE[code].status;
    this.headers = opts.headers;
    this.detail = opts.detail;
  }

  toResponse(requestId: string, method = "GET"): Response {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "cache-control": "no-store",
      "x-request-id": requestId,
      ...this.headers,
    };
    const body = JSON.stringify({ error: this.code, message: this.message, request_id: requestId });
    // (also what the access log counts). A HEAD gets the length the GET's body would have (RFC
    // 9110 §9.3.2, §8.6), not 0; none when that is unknown (guessedFromStatus).
    if (method !== "HEAD" || !guessedFromStatus(this.cause)) headers["content-length"] = String(Buffer.byteLength(body));
    return new Response(method === "HEAD" ? null : body, { status: this.status, headers });
  }
}

/**
 * Whether an error stands for an upstream answer whose error document was not read (a HEAD's has
 * none): its code and words are guessed from the status, where the same request as a GET gets
 * S3's document, which may name another code and say more (a 400's InvalidArgument and its
 * message, a 416's InvalidPartNumber, a 403's InvalidObjectState). A HEAD's answer then cannot
 * carry the GET's Content-Length (RFC 9110 §8.6: that or none). A 404 is S3's NoSuchKey (a
 * missing bucket fails readiness) and a 412 its PreconditionFailed, in S3's fixed words: their
 * guesses are the GET's. `cause`: a
 * ProxyError's (mapS3Error's s3Status without an s3Code, or the S3 front's s3Fail with a bareStatus).
 */
export function guessedFromStatus(cause: unknown): boolean {
  const c = cause as { s3Status?: unknown; s3Code?: unknown; bareStatus?: unknown } | undefined;
  if (c === undefined || c === null) return false;
  const status = typeof c.bareStatus === "number" ? c.bareStatus : c.s3Code === undefined ? c.s3Status : undefined;
  return typeof status === "number" && status !== 404 && status !== 412;
}

/** What a refused authentication counts as in yatagarasu_auth_total (both fronts and STS). */
export function authResultOf(err: unknown): AuthResult {
  if (!(err instanceof ProxyError)) return "error";
  if (err.code === "Unauthorized") return "missing";
  if (err.code === "InvalidToken") return "invalid";
  if (err.code === "Forbidden") return "forbidden";
  return "error";
}

/**
 * A 403 from a claim rule: the token was valid, so who was refused is known (the audit trail and
 * the access log name them, not "anonymous").
 */
export class ClaimRuleRefusal extends ProxyError {
  constructor(
    detail: string,
    readonly claims: Readonly<Record<string, unknown>>,
  ) {
    super("Forbidden", { detail });
  }
}

/**
 * A 503 from a bucket's authorizer (OPA, OpenFGA) that could not decide: an outage with
 * `*_fail_mode: closed`, or a configuration error (a 4xx, a redirect, an answer that is not a
 * decision) in either mode (src/authz/decide.ts). Not a denial: clients (SDKs) retry a 503, never a 403.
 */
export class AuthorizerUnavailable extends ProxyError {
  constructor() {
    super("AuthorizerUnavailable", { headers: { "retry-after": "1" } });
  }
}

/** Error codes of a connection that was cut (Bun's fetch: "ECONNRESET: The socket connection was closed unexpectedly"). */
const CUT_CODES: ReadonlySet<string> = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED"]);

/**
 * The process (EMFILE) or the system (ENFILE) has no file descriptor left: a connection flood, or
 * a low `ulimit -n`. Nothing is wrong with the request or the object; the same request succeeds
 * once connections close, so it is a 503 the client retries, never a 500 nor a cache miss.
 */
export function outOfDescriptors(err: unknown): boolean {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return code === "EMFILE" || code === "ENFILE";
}

/** Converts anything thrown into a ProxyError; unknown errors become a bare 500 (logged by the caller). */
export function toProxyError(err: unknown): ProxyError {
  if (err instanceof ProxyError) return err;
  // The native upstream client's errors (src/s3/http1/errors.ts), when they surface from a body read
  // (a stall or a truncated/malformed response after the headers were handed over).
  const name = (err as Error | undefined)?.name;
  if (name === "UpstreamTimeoutError") return new ProxyError("GatewayTimeout", { detail: "The upstream stalled while sending the object", cause: err });
  if (name === "UpstreamProtocolError") return new ProxyError("BadGateway", { detail: "The upstream connection failed while sending the object", cause: err });
  // fetch's own (https endpoints, upstream_client: fetch): a connection cut while a body was read
  // (a cache fill reading it whole) is the upstream's failure, not the proxy's.
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === "string" && CUT_CODES.has(code)) return new ProxyError("BadGateway", { detail: "The upstream connection failed while sending the object", cause: err });
  if (outOfDescriptors(err)) return new ProxyError("ServiceUnavailable", { detail: "The proxy has too many open connections and files; retry", headers: { "retry-after": "1" }, cause: err });
  return new ProxyError("InternalError", { cause: err });
}
