/**
 * S3 error responses → ProxyError. The client sees our code and a fixed message; S3's own code
 * is kept on the error (for the logs) but its XML (RequestId, CanonicalRequest, ...) never is.
 */
import { ProxyError, type ErrorCode } from "../errors.ts";
import { decodeContent } from "../http/read-capped.ts";

const MAX_ERROR_BODY = 64 * 1024;

const BY_S3_CODE: Record<string, ErrorCode> = {
  NoSuchKey: "NoSuchKey",
  NoSuchBucket: "NoSuchBucket",
  AccessDenied: "AccessDenied",
  SignatureDoesNotMatch: "AccessDenied",
  InvalidAccessKeyId: "AccessDenied",
  RequestTimeTooSkewed: "AccessDenied",
  InvalidToken: "AccessDenied",
  ExpiredToken: "AccessDenied",
  AuthorizationHeaderMalformed: "AccessDenied",
  SlowDown: "SlowDown",
  // (a store that is down, not one throttling a prefix: the client is not told to slow down)
  ServiceUnavailable: "ServiceUnavailable",
  InvalidRange: "RangeNotSatisfiable",
  PreconditionFailed: "PreconditionFailed",
};

/**
 * S3 codes that mean the request's credentials themselves were refused (a wrong secret, an
 * unknown or expired key, a skewed clock, a wrong region): the bucket's configuration, not the client.
 */
export const CREDENTIAL_CODES: ReadonlySet<string> = new Set(["SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken", "InvalidToken", "RequestTimeTooSkewed", "AuthorizationHeaderMalformed", "AuthorizationQueryParametersError", "TokenRefreshRequired"]);

/** S3's reason phrase for SlowDown ("503 Slow Down"): it tells a throttle when no body can (a HEAD's). */
export const SLOW_DOWN_REASON = /^slow ?down$/i;

/** Whether `res` is a 503 whose reason phrase says SlowDown (SLOW_DOWN_REASON). */
export function slowDownPhrase(res: Response): boolean {
  return res.status === 503 && SLOW_DOWN_REASON.test(res.statusText);
}

/** MinIO's error code on an answer without a body (a HEAD's), where S3 says nothing. */
export const MINIO_ERROR_CODE = "x-minio-error-code";

/**
 * The S3 error code of an answer already told (src/s3/upstream.ts answerCodeOf), undefined when it
 * said none: the copy of a body it read, or a HEAD's told by a GET of its key (tellHeadCode).
 */
export const codeTold = new WeakMap<Response, string | undefined>();

/**
 * Whether a 503 says SlowDown without a body to say it in (a HEAD's): S3's "Slow Down" reason
 * phrase, MinIO's x-minio-error-code, or the code a GET of its key told (codeTold).
 */
function bodilessSlowDown(res: Response): boolean {
  return res.status === 503 && (SLOW_DOWN_REASON.test(res.statusText) || res.headers.get(MINIO_ERROR_CODE) === "SlowDown" || codeTold.get(res) === "SlowDown");
}

export function parseS3ErrorCode(xml: string): string | undefined {
  const m = /<Code>([^<]{1,64})<\/Code>/.exec(xml);
  return m?.[1];
}

/** The ProxyError for an S3 status and (optional) S3 error code. */
/** An upstream's x-amz-request-id, when it is one (S3's are 16 upper-case hex characters; others' vary): kept for the access log. */
export function s3RequestIdOf(headers: Headers): string | undefined {
  const v = headers.get("x-amz-request-id");
  return v !== null && /^[A-Za-z0-9+/=_.-]{1,128}$/.test(v) ? v : undefined;
}

/**
 * An upstream answer's Retry-After in milliseconds (delay-seconds or an HTTP-date, RFC 9110
 * 10.2.3); 0 when absent, unreadable or already past.
 */
export function retryAfterMs(value: string | null, now = Date.now()): number {
  if (value === null) return 0;
  const v = value.trim();
  // (any number of digits, as RFC 9110's delay-seconds: one of 10 or more was read as none, and
  // a store that asked for a pause that long was retried at once)
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? 0 : Math.max(0, at - now);
}

/**
 * The Retry-After the proxy relays for an upstream's: its delay-seconds as sent (up to 5 digits),
 * an HTTP-date as the seconds until it (rounded up, at most 99999), else 1.
 */
export function relayedRetryAfter(value: string | null | undefined, now = Date.now()): string {
  if (value == null) return "1";
  if (/^\d{1,5}$/.test(value)) return value;
  const ms = retryAfterMs(value, now);
  return ms > 0 ? String(Math.min(99999, Math.ceil(ms / 1000))) : "1";
}

export function mapS3Error(status: number, s3Code: string | undefined, retryAfter?: string | null, s3RequestId?: string, s3Body?: Uint8Array): ProxyError {
  // (own keys only: an upstream's <Code>constructor</Code> was Object.prototype's function, taken for a code)
  let code: ErrorCode | undefined = s3Code && Object.hasOwn(BY_S3_CODE, s3Code) ? BY_S3_CODE[s3Code] : undefined;
  if (!code) {
    if (status === 404) code = "NoSuchKey";
    else if (status === 403) code = "AccessDenied";
    else if (status === 503) code = "ServiceUnavailable";
    // A 429 (a store's or a balancer's throttle, with no S3 code, or a HEAD's, which has no body):
    // slow down, as S3 says it with 503 SlowDown; not an upstream failure (502).
    else if (status === 429) code = "SlowDown";
    else if (status === 409) code = "Conflict"; // ConditionalRequestConflict, OperationAborted: the client may retry
    // A bodiless 431: the upstream's head limit is below the proxy's and the client's own headers
    // (a long If-Match, metadata) passed it: the client's request, as S3 says it (400
    // RequestHeaderSectionTooLarge), not the upstream's failure (502; S3 front 500, which SDKs retry).
    else if (status === 431) code = "HeadersTooLarge";
    else if (status >= 500) code = "BadGateway";
    else if (status === 400) code = "BadRequest";
    else code = "BadGateway";
  }
  const headers: Record<string, string> = {};
  if (code === "SlowDown" || code === "ServiceUnavailable") headers["retry-after"] = relayedRetryAfter(retryAfter);
  return new ProxyError(code, { headers, detail: status >= 300 && status < 400 ? redirectDetail(status, s3Code) : (detailOf(code, s3Code) ?? unexpectedStatusDetail(status, code)), cause: s3Body === undefined ? { s3Status: status, s3Code, s3RequestId } : { s3Status: status, s3Code, s3RequestId, s3Body } });
}

/**
 * An upstream's redirect (S3's 301 PermanentRedirect or 307 TemporaryRedirect for a bucket in
 * another region, a balancer sending http to https): the proxy follows none, so it is the
 * bucket's configuration that is wrong, and every request fails so until it is fixed. Said to the
 * client on both fronts (it read "The upstream failed", and on the S3 front "We encountered an
 * internal error. Please try again."), and named by /ready.
 */
export function redirectDetail(status: number, s3Code: string | undefined): string {
  const what = s3Code !== undefined && /^[A-Za-z]{1,64}$/.test(s3Code) ? s3Code : `HTTP ${status}`;
  return `The upstream answered with a redirect (${what}), which the proxy does not follow: the bucket's s3.endpoint or s3.region in the proxy's configuration does not name where the bucket is`;
}

/**
 * An answer no S3 gives to the request (a 2xx other than the operation's, such as a balancer's 202
 * or 204, a 1xx, a 4xx that means nothing here, 418 or 499), named by its status: it read "The
 * upstream failed", as a 5xx does, and left the operator to find the status in the access log.
 */
function unexpectedStatusDetail(status: number, code: ErrorCode): string | undefined {
  return code === "BadGateway" && status < 500 ? `The upstream answered HTTP ${status}, which is no answer to this request` : undefined;
}

/**
 * What the plain front's error says when S3's code tells more than the status: an archived object
 * (it read "The upstream denied access to this object"), and a 400 or 409 S3 gave a code for (a
 * read of an SSE-C object read "The request is malformed"). The S3 front relays S3's own error.
 */
function detailOf(code: ErrorCode, s3Code: string | undefined): string | undefined {
  if (s3Code === undefined || !/^[A-Za-z]{1,64}$/.test(s3Code) || CREDENTIAL_CODES.has(s3Code)) return undefined;
  if (s3Code === "InvalidObjectState") return "The object is archived (InvalidObjectState): it must be restored before it can be read";
  if (code === "BadRequest" || code === "Conflict") return `The upstream refused the request (${s3Code})`;
  return undefined;
}

/**
 * How long an error body is waited for (ms): S3 sends its small error document with the head, and
 * the answer's status alone is enough to answer from. An upstream that announced a long
 * Content-Length and sent nothing held the client's answer for s3.timeout (504 instead of its 404),
 * or on the fetch client until server.request_timeout.
 */
export const ERROR_BODY_WAIT_MS = 1000;

/**
 * The first 64 KiB of an S3 error body (the rest cancelled) and the <Code> they carry, decoded from
 * the Content-Encoding as far as they were read, within ERROR_BODY_WAIT_MS (then what came so far).
 * `whole`: the body ended within them. Never throws: an unreadable body has no code.
 */
export async function readErrorPrefix(res: Response): Promise<{ raw: Uint8Array; whole: boolean; code: string | undefined; decoded?: Uint8Array }> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let whole = res.body === null;
  let code: string | undefined;
  let decoded: Uint8Array | undefined;
  try {
    if (res.body !== null) {
      const reader = res.body.getReader();
      const { promise: late, resolve } = Promise.withResolvers<undefined>();
      const timer = setTimeout(resolve, ERROR_BODY_WAIT_MS, undefined);
      try {
        while (size < MAX_ERROR_BODY) {
          const step = await Promise.race([reader.read(), late]);
          if (step === undefined) break; // (not whole: what came so far)
          if (step.done) {
            whole = true;
            break;
          }
          chunks.push(step.value);
          size += step.value.byteLength;
        }
      } finally {
        clearTimeout(timer);
        if (!whole) reader.cancel().catch(() => {});
      }
    }
    const raw = Buffer.concat(chunks);
    const coding = res.headers.get("content-encoding");
    // (a coded body is decoded, as far as it was read; past the cap it maps by status)
    const body = coding === null ? raw : decodeContent(raw, coding, MAX_ERROR_BODY, true);
    if (body !== undefined) code = parseS3ErrorCode(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
    if (code !== undefined) decoded = body;
  } catch {
    // unreadable: no code
  }
  return { raw: Buffer.concat(chunks), whole, code, decoded };
}

/** What a TLS port answers a plain-http request with: Go's net/http (MinIO), nginx. */
const PLAIN_TO_TLS_PORT = /Client sent an HTTP request to an HTTPS server|The plain HTTP request was sent to HTTPS port/i;

/**
 * Reads (at most 64 KiB of) an S3 error body and maps it. Never throws. The error document read
 * (one with a <Code>) goes with the error's cause as `s3Body`: the S3 front relays S3's message and
 * details from it, as it does a write's (fronts/s3/relay.ts withUpstreamWords); the plain front
 * keeps its own words.
 */
export async function errorFromResponse(res: Response, method: string): Promise<ProxyError> {
  const read = method !== "HEAD" && res.body ? await readErrorPrefix(res) : undefined;
  let s3Code = read?.code;
  // (no code, as a HEAD has none, but S3's "503 Slow Down" reason phrase, MinIO's header or a GET
  // of the key saying SlowDown: its SlowDown, as a GET's is; a HEAD's told by MinIO's header alone
  // was ServiceUnavailable until 2026-12-07, logged as an outage)
  if (s3Code === undefined && bodilessSlowDown(res)) s3Code = "SlowDown";
  // An https port asked in plain http (the bucket's s3.endpoint written http://) answers every
  // request 400 without an S3 error: the upstream's failure (502, logged as upstream_error
  // HTTP_400), not the client's 400, which no SDK retries and which blamed its request. Only on
  // those servers' words: another 400 with no S3 error (a balancer in front of the store refusing
  // a header too large) is the request's.
  if (s3Code === undefined && res.status === 400 && read !== undefined && PLAIN_TO_TLS_PORT.test(Buffer.from(read.raw).toString("latin1"))) {
    return new ProxyError("BadGateway", { detail: "The upstream answered 400 without an S3 error", cause: { s3Status: 400, s3Code: undefined, s3RequestId: s3RequestIdOf(res.headers) } });
  }
  return mapS3Error(res.status, s3Code, res.headers.get("retry-after"), s3RequestIdOf(res.headers), read?.decoded);
}
