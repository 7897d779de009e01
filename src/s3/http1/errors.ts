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

/** Malformed response from upstream (or the upstream closed the connection mid-response). */
export class UpstreamProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UpstreamProtocolError";
  }
}
