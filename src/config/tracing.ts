/**
 * `tracing`: OpenTelemetry traces exported over OTLP/HTTP (JSON) (src/observe/trace/).
 *
 *   tracing:
 *     enabled: true
 *     otlp_endpoint: http://otel-collector:4318     # the collector; /v1/traces is added to a bare origin
 *     sample_ratio: 0.1                             # new traces; a client's traceparent decides for its own
 *     service_name: yatagarasu
 *     max_queue_spans: 2048                         # beyond this, spans are dropped and counted
 *     max_export_batch: 512
 *     export_interval_ms: 5000
 *     export_timeout_ms: 10000
 *     headers: { authorization: "Bearer ${OTLP_TOKEN}" }   # sent to the collector only; never logged
 *
 * Everything here may change on reload (the exporter is rebuilt; spans already queued are flushed
 * to the old endpoint).
 */
import { z } from "zod";
import { OUTSIDE_LATIN1, outsideLatin1 } from "./replicas.ts";
import { urlKey, userinfoProblem } from "./url.ts";

const posInt = z.number().int().positive();
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Headers the exporter sets itself, or that would break the request. */
const OWNED = new Set(["content-type", "content-length", "host", "connection", "transfer-encoding", "traceparent", "tracestate"]);

export const TracingSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    otlp_endpoint: urlKey("must be an http(s) URL", /^https?$/).optional(),
    sample_ratio: z.number().min(0, "must be within 0..1").max(1, "must be within 0..1").default(1),
    service_name: z.string().min(1, "must not be empty").max(255).default("yatagarasu"),
    max_queue_spans: posInt.max(1_000_000).default(2048),
    max_export_batch: posInt.max(100_000).default(512),
    export_interval_ms: z.number().int().min(10).max(600_000).default(5000),
    export_timeout_ms: z.number().int().min(10).max(120_000).default(10_000),
    headers: z.record(z.string(), z.string()).optional(),
  })
  .superRefine((t, ctx) => {
    if (t.enabled && t.otlp_endpoint === undefined) ctx.addIssue({ code: "custom", path: ["otlp_endpoint"], message: "is required when tracing is enabled (the collector's OTLP/HTTP URL, e.g. http://127.0.0.1:4318)" });
    if (t.otlp_endpoint !== undefined) {
      const why = userinfoProblem(t.otlp_endpoint, "put the collector's credentials in tracing.headers");
      if (why) ctx.addIssue({ code: "custom", path: ["otlp_endpoint"], message: why });
    }
    if (t.max_export_batch > t.max_queue_spans) ctx.addIssue({ code: "custom", path: ["max_export_batch"], message: `must not exceed max_queue_spans (${t.max_queue_spans}), got ${t.max_export_batch}` });
    for (const [name, value] of Object.entries(t.headers ?? {})) {
      // Messages name the header, never its value (it is usually a credential).
      if (!HEADER_NAME.test(name)) ctx.addIssue({ code: "custom", path: ["headers", name], message: "is not a valid header name" });
      else if (OWNED.has(name.toLowerCase())) ctx.addIssue({ code: "custom", path: ["headers", name], message: "is set by the exporter itself" });
      else if (/[\0\r\n]/.test(value)) ctx.addIssue({ code: "custom", path: ["headers", name], message: "must not contain line breaks or NUL" });
      // (fetch sends any other control character but a tab as it is, and a collector refuses the
      // request as malformed, HTTP 400: --check said OK and every export failed)
      else if (/[\x01-\x08\x0b-\x1f\x7f]/.test(value)) ctx.addIssue({ code: "custom", path: ["headers", name], message: "holds a control character, which a header cannot carry: the collector would refuse every export (the value is not shown)" });
      // (fetch refuses the whole export: it was logged as "collector unreachable")
      else if (outsideLatin1(value)) ctx.addIssue({ code: "custom", path: ["headers", name], message: `holds ${OUTSIDE_LATIN1}, which a header cannot carry: every export would fail (the value is not shown)` });
    }
  });
export type TracingConfig = z.infer<typeof TracingSchema>;

/** The traces URL: a bare origin (no path, or "/") gets OTLP's default path /v1/traces. */
export function tracesUrl(endpoint: string): string {
  const u = new URL(endpoint);
  if (u.pathname === "" || u.pathname === "/") u.pathname = "/v1/traces";
  return u.toString();
}
