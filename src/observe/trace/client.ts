/**
 * Client spans: one per upstream S3 attempt (retries and failovers each get their own, so they
 * show in the trace), one per OPA/OpenFGA call, one per JWKS fetch; and the internal span of a
 * cache-layer lookup. OpenTelemetry HTTP client attributes; a URL is recorded without its query
 * or credentials.
 */
import type { CacheLayer, CachedObject, MaybePromise, SharedWait } from "../../cache/types.ts";
import { SpanKind, type Span } from "./span.ts";

/** server.address / server.port from "http://host:port" (IPv6 hosts keep their brackets off). */
function setServer(span: Span, origin: string): void {
  const hostStart = origin.indexOf("//") + 2;
  const pathStart = origin.indexOf("/", hostStart);
  const host = pathStart < 0 ? origin.slice(hostStart) : origin.slice(hostStart, pathStart);
  const colon = host.lastIndexOf(":");
  const bracket = host.lastIndexOf("]");
  const https = origin.startsWith("https:");
  if (colon > bracket && colon > 0) {
    span.set("server.address", host.slice(0, colon).replace(/^\[|\]$/g, ""));
    span.set("server.port", Number(host.slice(colon + 1)));
  } else {
    span.set("server.address", host.replace(/^\[|\]$/g, ""));
    span.set("server.port", https ? 443 : 80);
  }
}

/** Starts the span of one upstream S3 attempt (attempt 1 is the first try). */
export function startAttempt(parent: Span, method: string, origin: string, bucket: string, key: string, attempt: number): Span {
  const span = parent.child(method, SpanKind.CLIENT);
  if (!span.recording) return span;
  span.set("http.request.method", method);
  setServer(span, origin);
  span.set("rpc.system", "aws-api");
  span.set("rpc.service", "S3");
  span.set("aws.s3.bucket", bucket);
  if (key !== "") span.set("aws.s3.key", key);
  if (attempt > 1) span.set("http.request.resend_count", attempt - 1);
  return span;
}

/**
 * The error.type of a failure: the error's code (ECONNREFUSED, ...) or name (UpstreamTimeoutError,
 * a DOMException's AbortError or TimeoutError); never its message. The name, not the class: the
 * compiled binary minifies class names (a constructor.name of "Re"), and every error class here
 * sets its name.
 */
export function errorType(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && /^[A-Za-z0-9_]{1,64}$/.test(code)) return code;
  const name = (err as { name?: unknown } | null)?.name;
  if (err instanceof Error && typeof name === "string" && /^[A-Za-z0-9_]{1,64}$/.test(name)) return name;
  return "_OTHER";
}

/**
 * Ends an HTTP client span at the response head (a status) or at the failure (anything else).
 * OpenTelemetry: a client span is an error for 4xx and 5xx as well as for no answer at all.
 */
export function endClient(span: Span, outcome: number | { error: unknown }): void {
  if (!span.recording) return;
  if (typeof outcome === "number") {
    span.set("http.response.status_code", outcome);
    if (outcome >= 400) span.fail(String(outcome));
  } else {
    // An HTTP error answer already recorded (then thrown by the caller) is typed by its status.
    const status = span.attrs["http.response.status_code"];
    span.fail(typeof status === "number" && status >= 400 ? String(status) : errorType(outcome.error));
  }
  span.end();
}

/** Starts the span of an HTTP call to a service by URL (OPA, OpenFGA, JWKS); the URL is recorded without userinfo or query. */
export function startHttpCall(parent: Span, name: string, method: string, url: string): Span {
  const span = parent.child(name, SpanKind.CLIENT);
  if (span.recording) describeHttpCall(span, method, url);
  return span;
}

export function describeHttpCall(span: Span, method: string, url: string): void {
  span.set("http.request.method", method);
  const u = URL.parse(url);
  if (u === null) return; // not a URL: nothing to record
  setServer(span, u.origin);
  span.set("url.full", `${u.origin}${u.pathname}`);
}

/** One cache layer's lookup as an internal span (hit, miss or error), keeping the layer's sync/async answer. */
export function tracedLayerGet(layer: CacheLayer, key: string, parent: Span, wait?: SharedWait, maxBytes?: number): MaybePromise<CachedObject | undefined> {
  const span = parent.child(`cache lookup ${layer.name}`, SpanKind.INTERNAL);
  span.set("yatagarasu.cache.layer", layer.name);
  const done = (obj: CachedObject | undefined) => {
    span.set("yatagarasu.cache.result", obj === undefined ? "miss" : "hit");
    if (obj !== undefined) span.set("yatagarasu.cache.fresh", Date.now() < obj.expiresAt);
    span.end();
    return obj;
  };
  let found: MaybePromise<CachedObject | undefined>;
  try {
    found = layer.get(key, wait, maxBytes);
  } catch (err) {
    span.fail(errorType(err));
    span.end();
    throw err;
  }
  if (!(found instanceof Promise)) return done(found);
  return found.then(done, (err) => {
    span.fail(errorType(err));
    span.end();
    throw err;
  });
}
