/**
 * `buckets[].cors`: which browser origins may call a bucket, on both fronts (src/http/cors.ts).
 *
 *   cors:
 *     allowed_origins: [https://app.example.com]      # origins, patterns with one "*" (https://*.example.com), or "*" alone
 *     allowed_methods: [GET, HEAD, PUT, POST, DELETE]  # default [GET, HEAD]
 *     allowed_headers: [authorization, content-type]   # request headers a preflight may ask for (one "*" in a name: x-amz-*); "*" = any
 *     expose_headers: [ETag]                           # response headers scripts may read (default: ETag, the checksums, Content-Range and Accept-Ranges, DEFAULT_EXPOSE)
 *     max_age: 600                                     # seconds a browser may cache a preflight
 *
 * Values are normalized here (origins and header names lower-case), so the request path compares
 * strings without converting them again. Everything stays plain JSON: the config crosses a worker
 * thread as JSON on reload.
 */
import { z } from "zod";

const CORS_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"] as const;

/** An origin as browsers serialize it: scheme://host[:port], no path, no trailing slash. */
const ORIGIN = /^https?:\/\/(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/;
/** An HTTP header name (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/** At most one "*" in a pattern, as S3's AllowedOrigin and AllowedHeader take it. */
const oneWildcard = (s: string) => s.indexOf("*") === s.lastIndexOf("*");

/**
 * An origin, "*" alone, or an origin pattern with one "*" (S3's AllowedOrigin:
 * "https://*.example.com", "http://localhost:*"): the pattern must read as an origin with the
 * "*" standing for a host label or a port, so it cannot span the scheme or a path.
 */
const origin = z
  .string()
  .transform((s) => s.toLowerCase())
  .refine(
    (s) => s === "*" || ORIGIN.test(s) || (oneWildcard(s) && (ORIGIN.test(s.replace("*", "a")) || ORIGIN.test(s.replace("*", "1")))),
    'must be an origin such as "https://app.example.com" (scheme, host and optional port; no path), a pattern with one "*" such as "https://*.example.com", or "*"',
  )
  .superRefine((s, ctx) => {
    const why = impossiblePort(s) ?? impossibleIpv6(s);
    if (why !== undefined) ctx.addIssue({ code: "custom", message: why });
  });

/**
 * Why an origin's IPv6 host is one no browser sends, or undefined: browsers write it as the URL
 * standard serializes it (the longest run of zeros as "::", no leading zeros, an IPv4-mapped tail
 * in hex), so `http://[0:0:0:0:0:0:0:1]:3000` or `http://[::ffff:127.0.0.1]` never matched.
 */
function impossibleIpv6(s: string): string | undefined {
  const m = /^(https?:\/\/)(\[[^\]]*\])/.exec(s);
  if (m === null) return undefined;
  const host = URL.parse(`http://${m[2]}`)?.hostname;
  if (host === undefined) return `${m[2]} is not an IPv6 address`;
  if (host === m[2]) return undefined;
  return `a browser sends this origin as "${m[1]}${host}${s.slice(m[0].length)}" (an IPv6 address as URLs write it): list it so`;
}

/**
 * Why an origin's literal port is one no browser sends in Origin (so the entry would never match),
 * or undefined: browsers serialize an origin without its scheme's default port, in decimal without
 * leading zeros, and only a port of 1-65535.
 */
function impossiblePort(s: string): string | undefined {
  const m = /^(https?):\/\/.*:(\d+)$/.exec(s);
  if (m === null) return undefined;
  const port = Number(m[2]);
  const bare = s.slice(0, s.length - m[2]!.length - 1);
  if (port === (m[1] === "https" ? 443 : 80)) return `a browser sends this origin as "${bare}" (no default port): list the origin without ":${port}"`;
  if (port < 1 || port > 65535) return "a port is 1-65535";
  if (m[2] !== String(port)) return `a browser sends the port without leading zeros: write :${port}`;
  return undefined;
}

/** A header name, "*" alone, or a name pattern with one "*" (S3's AllowedHeader: "x-amz-*"). */
const headerName = z
  .string()
  .transform((s) => s.toLowerCase())
  .refine((s) => s === "*" || (TOKEN.test(s) && oneWildcard(s)), 'must be a header name, a name with one "*" such as "x-amz-*", or "*"');

/** Whether `value` (lower-case) matches `pattern`: equal, or around the pattern's one "*" (which stands for one or more characters). */
export function matchesPattern(pattern: string, value: string): boolean {
  const star = pattern.indexOf("*");
  if (star < 0) return pattern === value;
  return value.length > pattern.length - 1 && value.startsWith(pattern.slice(0, star)) && value.endsWith(pattern.slice(star + 1));
}

const methods = z
  .array(z.string().transform((s) => s.toUpperCase()).pipe(z.enum(CORS_METHODS, { error: () => `unknown method; use ${CORS_METHODS.join(", ")}` })))
  .min(1, "list at least one method")
  // (once each: "GET" and "get" are the same method, listed once in Access-Control-Allow-Methods)
  .transform((m) => [...new Set(m)]);

/**
 * What scripts may read by default: the ETag, and the checksums S3 returns for a part or an
 * object. A browser multipart upload needs both: the 2025 AWS SDKs (lib-storage's Upload) create
 * the upload with a CRC32 checksum and must send each part's checksum, read from the UploadPart
 * answer, in CompleteMultipartUpload (S3 refuses the completion without them). And a range read's
 * Content-Range and Accept-Ranges (not CORS-safelisted, as Content-Length is): without them a
 * page's fetch with a Range header could not learn the object's size nor which bytes it got
 * (pdf.js, zip and media readers check them before reading by ranges).
 */
const DEFAULT_EXPOSE = ["etag", "x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-crc64nvme", "x-amz-checksum-sha1", "x-amz-checksum-sha256", "x-amz-checksum-type", "x-amz-version-id", "content-range", "accept-ranges"] as const;

export const CorsSchema = z.strictObject({
  allowed_origins: z
    .array(origin)
    .min(1, "list at least one origin")
    .refine((a) => !a.includes("*") || a.length === 1, '"*" allows every origin: list it alone'),
  allowed_methods: methods.default(["GET", "HEAD"]),
  allowed_headers: z.array(headerName).default([]),
  expose_headers: z.array(headerName.refine((s) => !s.includes("*"), "list the header names to expose (no \"*\")")).default([...DEFAULT_EXPOSE]),
  /** Chromium caps a preflight's cache at 2 hours, Firefox at 24. */
  max_age: z.number().int().min(0).max(86400).default(600),
});
export type CorsConfig = z.infer<typeof CorsSchema>;

/**
 * `s3_api.sts.cors`: which browser origins may call AssumeRoleWithWebIdentity (POST / on the S3
 * listener), so that a page holding a JWT can get temporary credentials and run an AWS SDK in the
 * browser (multipart uploads through the S3 front). The same keys as a bucket's cors; methods
 * default to POST, the only one STS takes.
 */
export const StsCorsSchema = CorsSchema.extend({
  allowed_methods: methods.default(["POST"]).refine((m) => m.includes("POST"), "AssumeRoleWithWebIdentity is a POST: list POST"),
  expose_headers: CorsSchema.shape.expose_headers.default([]),
});
