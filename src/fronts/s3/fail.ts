/**
 * How the S3 front's own errors travel through the shared runner: as a ProxyError (so `failed`,
 * the logging step and the metrics treat them like any other) carrying the exact S3Error, which the
 * front's error renderer writes as it is. Shared-phase errors carry none and are translated
 * (errors.ts fromProxyError).
 */
import { ProxyError, type ErrorCode } from "../../errors.ts";
import type { S3Error } from "./errors.ts";

/** A ProxyError code of the same class (never InternalError: that one is logged as a crash). */
function proxyCodeOf(status: number): ErrorCode {
  if (status === 403) return "Forbidden";
  if (status === 404) return "NotFound";
  if (status === 405) return "MethodNotAllowed";
  if (status === 412) return "PreconditionFailed";
  if (status === 416) return "RangeNotSatisfiable";
  if (status === 503) return "ServiceUnavailable";
  return "BadRequest";
}

/**
 * `s3RequestId`: the upstream's x-amz-request-id when the error is its refusal (the access log
 * names it). `bareStatus`: the upstream's status when its answer carried no S3 error code (a
 * redirect, a balancer's HTML 502): the access log's upstream_error names it (HTTP_301), as for
 * the shared reads. `upstreamCode`: the upstream's own code when the client is told another (a
 * refusal of the proxy's credentials, told as AccessDenied): the access log's s3_error, as a
 * read's line has it.
 */
export function s3Fail(e: S3Error, s3RequestId?: string, bareStatus?: number, upstreamCode?: string): ProxyError {
  const s3Code = upstreamCode ?? e.code;
  return new ProxyError(proxyCodeOf(e.status), { headers: e.headers, cause: bareStatus === undefined ? { s3: e, s3Code, s3RequestId } : { s3: e, s3Code, s3RequestId, bareStatus } });
}

/** The S3Error a ProxyError was made from by s3Fail, if any. */
export function s3ErrorOf(err: ProxyError): S3Error | undefined {
  const s3 = (err.cause as { s3?: S3Error } | undefined)?.s3;
  return s3 !== undefined && typeof s3.code === "string" ? s3 : undefined;
}

/**
 * Whether a write failed on a refusal: an S3 error of the 4xx class, the upstream's answer or the
 * proxy's own before the write went out. Nothing was written, so the cached copy of its key is
 * still the object (purgeIfUnsure's rule); any other failure (a 5xx, a lost answer, a client that
 * left while it was under way) may have landed. `attempts` (UpstreamTiming.attempts, the last
 * upstream call's): a 4xx to a resent write says nothing of the attempt before it, which may have
 * landed (a self-copy's If-Unmodified-Since is 412 once it has).
 */
export function isRefusal(err: unknown, attempts: number): boolean {
  const s3 = err instanceof ProxyError ? s3ErrorOf(err) : undefined;
  return s3 !== undefined && s3.status >= 400 && s3.status < 500 && attempts <= 1;
}
