/**
 * The reserved paths of the main listener, in one place: they belong to the control plane and
 * are never routed to a bucket, even one mounted at "/".
 */
export const CONTROL_PATHS = ["/health", "/ready", "/metrics", "/admin"] as const;

function isControlPath(p: string): boolean {
  return p === "/health" || p === "/ready" || p === "/metrics" || p === "/admin" || p.startsWith("/admin/");
}

/**
 * True when a request target (origin-form or absolute URL) names a reserved path. Checked on the
 * raw path, and on its decoding when it has escapes, with repeated slashes collapsed (so /%68ealth,
 * //health and /%2Fhealth are /health, as routing would see them).
 */
export function isControlTarget(target: string): boolean {
  const schemeEnd = target.charCodeAt(0) === 47 ? -1 : target.indexOf("://");
  const start = schemeEnd >= 0 ? target.indexOf("/", schemeEnd + 3) : 0;
  if (start < 0) return false;
  // Fast exit for the common case: a reserved path starts with /h, /r, /m, /a, an escape, or
  // another slash (routing collapses "//health" to "/health", so must this).
  const c = target.charCodeAt(start + 1);
  if (c !== 104 && c !== 114 && c !== 109 && c !== 97 && c !== 37 && c !== 47) return false;
  let end = target.indexOf("?", start);
  if (end < 0) end = target.length;
  let p = target.slice(start, end);
  if (p.includes("%")) {
    try {
      p = decodeURIComponent(p);
    } catch {
      return false; // the plain front answers the malformed escape (400)
    }
  }
  if (p.includes("//")) p = p.replace(/\/{2,}/g, "/");
  return isControlPath(p);
}
