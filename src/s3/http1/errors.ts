/**
 * Errors of the native HTTP/1.1 upstream client. They carry no request headers (which may hold
 * credentials): only what went wrong and, for connect failures, the upstream's host:port.
 */

/** No complete response head within the request's timeout, or a body that stopped arriving. */
export class UpstreamTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UpstreamTimeoutError";
  }
}

/**
 * The TCP connection was not established within the request's connect timeout. Kept apart from
 * UpstreamTimeoutError because the retry policy differs: nothing reached the upstream, so the
 * request may be retried (as the AWS SDKs do), where a response-head timeout is not.
 */
export class UpstreamConnectTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UpstreamConnectTimeoutError";
  }
}

/** Malformed response from upstream, or (`closed`) the upstream closed the connection mid-response. */
export class UpstreamProtocolError extends Error {
  constructor(
    message: string,
    readonly closed = false,
    /** The connection was cut after the response head, while its body was read. */
    readonly midBody = false,
  ) {
    super(message);
    this.name = "UpstreamProtocolError";
  }
}

/**
 * The request body could not be sent whole: its stream failed (`cause` is the stream's own
 * error, e.g. a PayloadError from the aws-chunked decoder or the client's disconnect), or it gave
 * fewer or more bytes than the declared Content-Length. Whichever client sent it, the upstream
 * connection was cut before the body's last byte, so the upstream saw an aborted request and
 * stored nothing. Not an upstream failure: never retried, and the breaker does not count it.
 */
export class RequestBodyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RequestBodyError";
  }
}
