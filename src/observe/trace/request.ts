/**
 * The request's server span, ended by the logging step (src/proxy/deliver.ts finish()) once the
 * body was sent or failed, with OpenTelemetry's HTTP server attributes plus the proxy's own.
 *
 * Only what the access line may show goes here: the decoded path without its query (tokens may
 * live there), the identity's subject, never a header value that carries credentials.
 *
 * On the S3 front, yatagarasu.s3.operation names the S3 operation (PutObject, UploadPart,
 * CompleteMultipartUpload, ...: several share one action), as the access log's `operation` does.
 *
 * Issuing a presigned URL (plain front, `POST …?presign`) is not the action it presigns, as in the
 * audit trail: "POST presign", yatagarasu.s3.action "presign", and the action the URL is for as
 * yatagarasu.s3.presigned_action (a trace must not count a PutObject that never happened).
 *
 * The two header values a span carries are cut to MAX_HEADER_ATTR characters: the User-Agent, and
 * the Host (server.address), which the client chooses too. The path is bounded by
 * server.security_limits.max_uri_length (checked before anything is served), the key by S3's 1024
 * bytes (or that same limit, for a key refused as too long).
 */
import type { RequestContext } from "../../proxy/context.ts";
import { clientIp } from "../../proxy/context.ts";
import { SpanStatus, type Span } from "./span.ts";

/** Longest header value (User-Agent, Host) a span carries; a DNS name is at most 253 characters. */
const MAX_HEADER_ATTR = 256;

/** The methods OpenTelemetry's HTTP conventions know (RFC 9110 and PATCH); any other is _OTHER. */
const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]);

export function endRequestSpan(ctx: RequestContext, span: Span): void {
  if (!span.recording) return;
  const now = performance.now();
  const req = ctx.req;
  const presign = ctx.presign !== undefined;
  const action = presign ? "presign" : ctx.action;
  // OpenTelemetry HTTP semantic conventions: a method outside the known set (methods are
  // case-sensitive: "get" is one) is recorded as _OTHER, the span named "HTTP", the method as sent
  // in http.request.method_original.
  const known = KNOWN_METHODS.has(ctx.method);
  const method = known ? ctx.method : "HTTP";
  span.name = action !== "none" ? `${method} ${action}` : method;
  span.set("http.request.method", known ? ctx.method : "_OTHER");
  if (!known) span.set("http.request.method_original", ctx.method.slice(0, MAX_HEADER_ATTR));
  span.set("url.path", ctx.path || undefined);
  span.set("url.scheme", ctx.target.startsWith("https:") ? "https" : "http");
  const host = req.headers.get("host");
  if (host !== null) {
    const colon = host.lastIndexOf(":");
    const bracket = host.lastIndexOf("]");
    const hasPort = colon > bracket && colon > 0;
    // An IPv6 literal without its brackets, as the client spans have it (OpenTelemetry: the address itself).
    span.set("server.address", (hasPort ? host.slice(0, colon) : host).replace(/^\[(.*)\]$/, "$1").slice(0, MAX_HEADER_ATTR));
    if (hasPort) {
      const port = Number(host.slice(colon + 1));
      if (Number.isInteger(port) && port >= 0 && port <= 65535) span.set("server.port", port);
    }
  }
  span.set("client.address", clientIp(ctx));
  if (ctx.peer !== undefined) span.set("network.peer.address", ctx.peer);
  span.set("network.protocol.name", "http");
  span.set("network.protocol.version", "1.1");
  const ua = req.headers.get("user-agent");
  if (ua !== null) span.set("user_agent.original", ua.slice(0, MAX_HEADER_ATTR));
  span.set("http.response.status_code", ctx.status);
  span.set("http.response.body.size", ctx.bytes);
  span.set("yatagarasu.request_id", ctx.id);
  span.set("yatagarasu.front", ctx.front);
  if (ctx.bucket !== undefined) span.set("yatagarasu.bucket", ctx.bucketName);
  if (action !== "none") span.set("yatagarasu.s3.action", action);
  if (presign) span.set("yatagarasu.s3.presigned_action", ctx.action);
  // The S3 front's operation, as the access log and the audit trail name it: the action alone does
  // not tell a CreateMultipartUpload, an UploadPart or a CopyObject from a PutObject.
  span.set("yatagarasu.s3.operation", ctx.operation);
  if (ctx.key !== "") span.set("aws.s3.key", ctx.key);
  span.set("yatagarasu.cache", ctx.cache);
  span.set("enduser.id", ctx.subject);
  if (ctx.timing.attempts > 0) span.set("yatagarasu.upstream.attempts", ctx.timing.attempts);
  span.set("yatagarasu.replica", ctx.timing.replica);
  const error = ctx.bodyError ?? ctx.errorCode;
  if (error !== undefined) span.set("yatagarasu.error", error);
  // OpenTelemetry: a server span is an error for 5xx (and here for a body that broke mid-way);
  // a 4xx is the client's problem, not this span's.
  if (ctx.status >= 500 || (ctx.bodyError !== undefined && ctx.bodyError !== "ClientClosedRequest")) {
    span.status = SpanStatus.ERROR;
    span.set("error.type", error ?? String(ctx.status));
  }
  span.end(now);
}
