/**
 * The one error type of request-body verification (aws-chunked decoding, checksum and hash
 * checks). It carries the S3 error code and status to answer with, and a fixed client-safe
 * message; `reason` is a finer tag for logs and tests. It never holds secrets or body bytes.
 *
 * Choices where S3's behaviour is not documented precisely:
 * - a body that ends early (EOF mid-frame, client disconnect) -> IncompleteBody;
 * - fewer decoded bytes than x-amz-decoded-content-length / Content-Length -> IncompleteBody;
 * - malformed framing (non-hex size, missing CRLF, over-long line, chunk above the cap, bytes after
 *   the final chunk, more bytes than declared, malformed or undeclared trailer) -> 400 InvalidRequest,
 *   so a client bug is told apart from a truncated upload.
 */

export type PayloadErrorCode =
  | "SignatureDoesNotMatch"
  | "BadDigest"
  | "XAmzContentSHA256Mismatch"
  | "InvalidDigest"
  | "IncompleteBody"
  | "InvalidChunkSizeError"
  | "RequestTimeout"
  | "SlowDown"
  | "InvalidRequest";

export type PayloadErrorReason =
  | "chunk-signature" // a chunk's signature is not the next one in the chain
  | "trailer-signature"
  | "checksum" // an x-amz-checksum-* header or trailer does not match the bytes
  | "content-md5"
  | "content-sha256" // x-amz-content-sha256 (hex) does not match the bytes
  | "bad-header" // a checksum / MD5 / length header is malformed, or the options are inconsistent
  | "truncated" // the body ended inside the framing, or the client went away
  | "short" // fewer bytes than declared
  | "too-long" // more bytes than declared
  | "framing" // malformed aws-chunked framing
  | "chunk-too-large"
  | "chunk-too-small"
  | "idle" // the source stopped sending for SOURCE_IDLE_MS
  | "busy" // the process-wide budget for held chunks is used up
  | "trailer"; // malformed, missing or undeclared trailer

const STATUS: Record<PayloadErrorCode, number> = {
  SignatureDoesNotMatch: 403,
  BadDigest: 400,
  XAmzContentSHA256Mismatch: 400,
  InvalidDigest: 400,
  IncompleteBody: 400,
  // S3's answer to a signed chunk under 8 KiB that is not the last (as the SDKs' reports show it)
  InvalidChunkSizeError: 403,
  // the client stopped sending mid-body (pump.ts SOURCE_IDLE_MS)
  RequestTimeout: 400,
  // (the held-chunk budget is used up: the client should retry, as S3 asks with SlowDown)
  SlowDown: 503,
  InvalidRequest: 400,
};

export const SIGNATURE_MISMATCH_MESSAGE =
  "The request signature we calculated does not match the signature you provided. Check your key and signing method.";

export class PayloadError extends Error {
  readonly code: PayloadErrorCode;
  readonly status: number;
  readonly reason: PayloadErrorReason;
  /** S3's extra elements for the error (hex digests only: no body bytes, no secrets). */
  details?: Record<string, string>;

  /** `message` is shown to the client as S3's <Message>: keep it free of secrets and body bytes. */
  constructor(code: PayloadErrorCode, reason: PayloadErrorReason, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "PayloadError";
    this.code = code;
    this.status = STATUS[code];
    this.reason = reason;
  }
}

export function isPayloadError(err: unknown): err is PayloadError {
  return err instanceof PayloadError;
}

export function framingError(message: string): PayloadError {
  return new PayloadError("InvalidRequest", "framing", message);
}

export function truncatedError(cause?: unknown): PayloadError {
  return new PayloadError("IncompleteBody", "truncated", "The request body terminated unexpectedly", cause);
}
